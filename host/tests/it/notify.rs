//! Failure notifications of `idhost run`, against a local webhook receiver and a tiny SMTP
//! server written here: one notice per incident (not per failing run), a recovery notice when
//! the source succeeds again, overdue syncs and missed schedules, HMAC signatures, and
//! incidents that survive a restart.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::daemon::{Daemon, plugin_dir, value, workdir};
use hmac::{KeyInit as _, Mac as _};

/// One POST the webhook receiver got.
#[derive(Debug, Clone)]
struct Post {
    path: String,
    signature: Option<String>,
    event_header: Option<String>,
    body: Vec<u8>,
}

impl Post {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

/// A webhook receiver on 127.0.0.1 answering 200 to every POST.
struct Webhook {
    url: String,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let posts: Arc<Mutex<Vec<Post>>> = Arc::default();
        let sink = posts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let sink = sink.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).is_err() {
                        return;
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("")
                        .to_owned();
                    let (mut length, mut signature, mut event_header) = (0usize, None, None);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        let (k, v) = line.split_once(':').unwrap_or((&line, ""));
                        let v = v.trim().to_owned();
                        match k.to_ascii_lowercase().as_str() {
                            "content-length" => length = v.parse().unwrap_or(0),
                            "x-idhost-signature" => signature = Some(v),
                            "x-idhost-event" => event_header = Some(v),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    sink.lock().unwrap().push(Post {
                        path,
                        signature,
                        event_header,
                        body,
                    });
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        Webhook { url, posts }
    }

    fn events(&self, path: &str) -> Vec<serde_json::Value> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.path == path)
            .map(Post::json)
            .collect()
    }
}

/// One mail the SMTP sink got.
#[derive(Debug, Clone)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

/// A minimal SMTP server on 127.0.0.1 (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no TLS).
struct SmtpSink {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
        let port = listener.local_addr().expect("addr").port();
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let sink = mails.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let sink = sink.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let _ = stream.write_all(b"220 localhost test SMTP\r\n");
                    let (mut from, mut to) = (String::new(), Vec::new());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO")
                        {
                            b"250 localhost\r\n"
                        } else if upper.starts_with("MAIL FROM:") {
                            from = line[10..].trim().to_owned();
                            b"250 OK\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            to.push(line[8..].trim().to_owned());
                            b"250 OK\r\n"
                        } else if upper.starts_with("DATA") {
                            let _ = stream.write_all(b"354 end with <CRLF>.<CRLF>\r\n");
                            let mut data = String::new();
                            loop {
                                let mut l = String::new();
                                if reader.read_line(&mut l).unwrap_or(0) == 0 {
                                    return;
                                }
                                if l == ".\r\n" {
                                    break;
                                }
                                data.push_str(&l);
                            }
                            sink.lock().unwrap().push(Mail {
                                from: std::mem::take(&mut from),
                                to: std::mem::take(&mut to),
                                data,
                            });
                            b"250 OK queued\r\n"
                        } else if upper.starts_with("QUIT") {
                            let _ = stream.write_all(b"221 bye\r\n");
                            return;
                        } else {
                            b"250 OK\r\n"
                        };
                        if stream.write_all(reply).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SmtpSink { port, mails }
    }

    fn subjects(&self) -> Vec<String> {
        self.mails
            .lock()
            .unwrap()
            .iter()
            .filter_map(|m| {
                m.data
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
            })
            .collect()
    }
}

const SECRET: &str = "notify-test-hmac-key";

fn write_config(
    dir: &std::path::Path,
    sources: &str,
    hook: &Webhook,
    smtp: &SmtpSink,
) -> std::path::PathBuf {
    let text = format!(
        r#"
plugin_dir = "{plugins}"
state_path = "{dir}/state.db"
{sources}

[notify.hook]
type = "webhook"
url = "{hook}/all"
secret = "{SECRET}"

[notify.recoveries]
type = "webhook"
url = "{hook}/recoveries"
events = ["recovered"]

[notify.mail]
type = "email"
host = "127.0.0.1"
port = {port}
tls = "none"
from = "idhost <idhost@example.com>"
to = ["it-ops@example.com"]
"#,
        plugins = plugin_dir().display(),
        dir = dir.display(),
        hook = hook.url,
        port = smtp.port,
    );
    let path = dir.join("idhost.toml");
    std::fs::write(&path, text).expect("writes config");
    path
}

fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn of(events: &[serde_json::Value], name: &str) -> Vec<serde_json::Value> {
    events
        .iter()
        .filter(|e| e["event"] == name)
        .cloned()
        .collect()
}

#[test]
fn a_failing_source_notifies_once_and_a_recovered_one_notifies_recovery() {
    let (hook, smtp, dir) = (Webhook::start(), SmtpSink::start(), workdir());
    // The jsonl sink's directory is blocked by a file: every sync of `flaky` fails until the
    // test removes it.
    let blocker = dir.path().join("blocked");
    std::fs::write(&blocker, "not a directory").expect("blocker");
    let sources = format!(
        r#"
[sources.flaky]
connector = "fixture"
schedule = "1s"

[sinks.out]
type = "jsonl"
path = "{}/out.jsonl"
"#,
        blocker.display()
    );
    let cfg = write_config(dir.path(), &sources, &hook, &smtp);
    let daemon = Daemon::start(&cfg, &[]);

    wait_until(Duration::from_secs(10), "three failed syncs", || {
        value(
            &daemon.metrics(),
            r#"idhost_source_sync_failures_total{source="flaky"}"#,
        ) >= 3.0
    });
    std::thread::sleep(Duration::from_millis(300));
    let all = hook.events("/all");
    assert_eq!(
        all.len(),
        1,
        "one notice for the incident, not one per failure: {all:#?}"
    );
    let failed = &all[0];
    assert_eq!(failed["kind"], "notification");
    assert_eq!(failed["event"], "sync_failed");
    assert_eq!(failed["source"], "flaky");
    assert_eq!(failed["connector"], "fixture");
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or("")
            .contains("sink `out`"),
        "{failed}"
    );
    assert!(
        hook.events("/recoveries").is_empty(),
        "the recovered-only target hears no failure"
    );
    wait_until(Duration::from_secs(5), "the failure mail", || {
        smtp.subjects().len() == 1
    });
    assert_eq!(
        smtp.subjects(),
        vec!["[idhost] flaky: sync failed".to_owned()]
    );
    {
        let mails = smtp.mails.lock().unwrap();
        assert_eq!(mails[0].from, "<idhost@example.com>");
        assert_eq!(mails[0].to, vec!["<it-ops@example.com>".to_owned()]);
        assert!(
            mails[0]
                .data
                .contains(failed["incident_id"].as_str().unwrap_or("?"))
        );
    }

    // The body is signed: HMAC-SHA256 under the target's secret, GitHub style.
    {
        let posts = hook.posts.lock().unwrap();
        let post = posts.iter().find(|p| p.path == "/all").expect("post");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(&post.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(post.signature.as_deref(), Some(expected.as_str()));
        assert_eq!(post.event_header.as_deref(), Some("sync_failed"));
        let unsigned = posts
            .iter()
            .any(|p| p.path == "/recoveries" && p.signature.is_some());
        assert!(!unsigned, "a target without a secret sends no signature");
    }

    std::fs::remove_file(&blocker).expect("unblock");
    wait_until(Duration::from_secs(8), "the recovery notice", || {
        of(&hook.events("/all"), "recovered").len() == 1
    });
    std::thread::sleep(Duration::from_millis(2500));
    let all = hook.events("/all");
    assert_eq!(of(&all, "sync_failed").len(), 1, "{all:#?}");
    assert_eq!(
        of(&all, "recovered").len(),
        1,
        "one recovery, not one per success: {all:#?}"
    );
    let recovered = &of(&all, "recovered")[0];
    assert_eq!(recovered["incident_id"], failed["incident_id"]);
    assert_eq!(recovered["resolves"], "sync_failed");
    assert_eq!(hook.events("/recoveries").len(), 1);
    wait_until(Duration::from_secs(5), "the recovery mail", || {
        smtp.subjects().len() == 2
    });
    assert_eq!(smtp.subjects()[1], "[idhost] flaky: recovered");
    let m = daemon.metrics();
    assert_eq!(
        value(
            &m,
            r#"idhost_notifications_total{outcome="sent",target="hook"}"#
        ),
        0.0,
        "labels are target, outcome"
    );
    assert_eq!(
        value(
            &m,
            r#"idhost_notifications_total{target="hook",outcome="sent"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            r#"idhost_notifications_total{target="mail",outcome="sent"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            r#"idhost_notifications_total{target="recoveries",outcome="sent"}"#
        ),
        1.0
    );
}

#[test]
fn an_overdue_sync_notifies_then_recovers_when_it_completes() {
    let (hook, smtp, dir) = (Webhook::start(), SmtpSink::start(), workdir());
    let sources = r#"
[sources.sluggish]
connector = "fixture"
schedule = "1h"
deadline = "1s"
[sources.sluggish.settings]
sleep_on = "list:user"
sleep_ms = 3000
"#;
    let cfg = write_config(dir.path(), sources, &hook, &smtp);
    let daemon = Daemon::start(&cfg, &[]);
    wait_until(Duration::from_secs(5), "the overdue notice", || {
        !of(&hook.events("/all"), "sync_overdue").is_empty()
    });
    let overdue = of(&hook.events("/all"), "sync_overdue").remove(0);
    assert_eq!(overdue["source"], "sluggish");
    assert!(
        overdue["summary"]
            .as_str()
            .unwrap_or("")
            .contains("deadline of 1s"),
        "{overdue}"
    );
    // Still running when the notice went out.
    assert_eq!(
        value(
            &daemon.metrics(),
            r#"idhost_source_sync_running{source="sluggish"}"#
        ),
        1.0
    );
    wait_until(Duration::from_secs(8), "the recovery", || {
        !of(&hook.events("/all"), "recovered").is_empty()
    });
    let all = hook.events("/all");
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(all[1]["resolves"], "sync_overdue");
    assert_eq!(all[1]["incident_id"], overdue["incident_id"]);
    wait_until(Duration::from_secs(5), "both mails", || {
        smtp.subjects().len() == 2
    });
    assert_eq!(smtp.subjects()[0], "[idhost] sluggish: sync overdue");
    assert_eq!(
        value(
            &daemon.metrics(),
            r#"idhost_source_overdue_syncs_total{source="sluggish"}"#
        ),
        1.0
    );
}

#[test]
fn a_missed_schedule_notifies() {
    let (hook, smtp, dir) = (Webhook::start(), SmtpSink::start(), workdir());
    // Every sync takes 2.5 s on a 1 s schedule: the slot at 1 s never runs.
    let sources = r#"
[sources.busy]
connector = "fixture"
schedule = "1s"
[sources.busy.settings]
sleep_on = "list:user"
sleep_ms = 2500
"#;
    let cfg = write_config(dir.path(), sources, &hook, &smtp);
    let daemon = Daemon::start(&cfg, &[]);
    wait_until(Duration::from_secs(8), "the missed-schedule notice", || {
        !of(&hook.events("/all"), "schedule_missed").is_empty()
    });
    let missed = of(&hook.events("/all"), "schedule_missed").remove(0);
    assert_eq!(missed["source"], "busy");
    assert!(
        missed["summary"]
            .as_str()
            .unwrap_or("")
            .contains("1 scheduled sync(s) before"),
        "{missed}"
    );
    assert!(
        value(
            &daemon.metrics(),
            r#"idhost_source_missed_schedules_total{source="busy"}"#
        ) >= 1.0
    );
    wait_until(Duration::from_secs(5), "the mail", || {
        smtp.subjects()
            .iter()
            .any(|s| s == "[idhost] busy: scheduled sync missed")
    });
}

#[test]
fn an_open_incident_survives_a_restart_and_is_resolved_after_it() {
    let (hook, smtp, dir) = (Webhook::start(), SmtpSink::start(), workdir());
    let failing = r#"
[sources.restarted]
connector = "fixture"
schedule = "1s"
[sources.restarted.settings]
fail_on = "list:user"
"#;
    let cfg = write_config(dir.path(), failing, &hook, &smtp);
    let mut daemon = Daemon::start(&cfg, &[]);
    wait_until(Duration::from_secs(8), "two failures", || {
        value(
            &daemon.metrics(),
            r#"idhost_source_sync_failures_total{source="restarted"}"#,
        ) >= 2.0
    });
    daemon.sigterm();
    assert!(
        daemon
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert_eq!(of(&hook.events("/all"), "sync_failed").len(), 1);

    // Restarted still failing: no second notice for the same incident.
    let mut daemon = Daemon::start(&cfg, &[]);
    wait_until(
        Duration::from_secs(8),
        "a failure after the restart",
        || {
            value(
                &daemon.metrics(),
                r#"idhost_source_sync_failures_total{source="restarted"}"#,
            ) >= 1.0
        },
    );
    daemon.sigterm();
    assert!(
        daemon
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert_eq!(of(&hook.events("/all"), "sync_failed").len(), 1);

    // Fixed and restarted: the incident opened before is resolved.
    let cfg = write_config(
        dir.path(),
        &failing.replace("fail_on = \"list:user\"", "users = 3"),
        &hook,
        &smtp,
    );
    let _daemon = Daemon::start(&cfg, &[]);
    wait_until(Duration::from_secs(8), "the recovery", || {
        !of(&hook.events("/all"), "recovered").is_empty()
    });
    let all = hook.events("/all");
    assert_eq!(
        of(&all, "recovered")[0]["incident_id"],
        of(&all, "sync_failed")[0]["incident_id"]
    );
}

#[test]
fn a_held_sync_notifies_once_however_often_the_daemon_runs_it() {
    let (hook, smtp, dir) = (Webhook::start(), SmtpSink::start(), workdir());
    let sources = |missing: &str| {
        format!(
            r#"
[sources.corp]
connector = "fixture"
schedule = "1s"
[sources.corp.settings]
users = 20
groups = 3
memberships = 30
missing_users = [{missing}]

[sinks.out]
type = "jsonl"
path = "{}/out.jsonl"
records = ["event"]
"#,
            dir.path().display()
        )
    };
    let cfg = write_config(dir.path(), &sources(""), &hook, &smtp);
    let out = idhost_e2e::output_within(
        {
            let mut cmd = idhost_e2e::idhost();
            cmd.args(["sync", "-c", cfg.to_str().unwrap()]);
            cmd
        },
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", idhost_e2e::text(&out));
    // 15 of the 20 users go: more than 20% of the 23 resources, and more than 10.
    let missing: Vec<String> = (1..=15).map(|n| n.to_string()).collect();
    let cfg = write_config(dir.path(), &sources(&missing.join(", ")), &hook, &smtp);
    let daemon = Daemon::start(&cfg, &[]);
    wait_until(Duration::from_secs(15), "three held syncs", || {
        value(
            &daemon.metrics(),
            r#"idhost_source_syncs_total{source="corp",status="held"}"#,
        ) >= 3.0
    });
    std::thread::sleep(Duration::from_millis(300));
    let held = of(&hook.events("/all"), "sync_held");
    assert_eq!(held.len(), 1, "one notice per held sync: {held:#?}");
    assert!(
        held[0]["summary"]
            .as_str()
            .unwrap_or("")
            .contains("idhost approve"),
        "{}",
        held[0]
    );
    let events = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap_or_default();
    assert_eq!(events, "", "a held sync sends no event");
}

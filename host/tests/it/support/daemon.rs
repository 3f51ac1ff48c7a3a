//! Helpers for the `idhost run` tests: start the real binary with JSON logs, read its address
//! from the "ready" line, scrape its endpoints, signal it, and check Prometheus text strictly.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use idhost_e2e::plugin_dir;

/// A running `idhost run`.
pub struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<serde_json::Value>>>,
    /// `host:port` of its endpoints.
    pub addr: String,
    /// Its replica id.
    pub replica: String,
}

impl Daemon {
    /// Starts `idhost run -c config` on an ephemeral port and waits until it is ready.
    pub fn start(config: &Path, extra: &[&str]) -> Daemon {
        let mut daemon = Self::spawn(config, extra);
        let ready = daemon.wait_for_log(Duration::from_secs(20), |l| {
            message(l) == "idhost run: ready"
        });
        let ready =
            ready.unwrap_or_else(|| panic!("daemon never got ready; logs:\n{}", daemon.dump()));
        daemon.replica = field(&ready, "replica");
        daemon
    }

    /// Starts `idhost run -c config` and waits only until its endpoints listen.
    pub fn spawn(config: &Path, extra: &[&str]) -> Daemon {
        let mut child = idhost_e2e::idhost()
            .args(["--log-format", "json", "--log-level", "info"])
            .arg("run")
            .arg("-c")
            .arg(config)
            .args(["--listen", "127.0.0.1:0", "--max-jitter", "0s"])
            .args(extra)
            .env_remove("IDHOST_LISTEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("idhost starts");
        let lines: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let stderr = child.stderr.take().expect("stderr piped");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({"fields": {"message": line}}));
                sink.lock().unwrap().push(value);
            }
        });
        let mut daemon = Daemon {
            child,
            lines,
            addr: String::new(),
            replica: String::new(),
        };
        let listening = daemon.wait_for_log(Duration::from_secs(20), |l| {
            message(l) == "idhost run: listening"
        });
        let listening =
            listening.unwrap_or_else(|| panic!("daemon never listened; logs:\n{}", daemon.dump()));
        daemon.addr = field(&listening, "listen");
        daemon
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Log lines so far.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.lines.lock().unwrap().clone()
    }

    /// The logs as text, for failure messages.
    pub fn dump(&self) -> String {
        self.logs()
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits for a log line matching `pred`.
    pub fn wait_for_log(
        &self,
        within: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Some(l) = self.logs().into_iter().find(|l| pred(l)) {
                return Some(l);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// GET `path`: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path)
    }

    /// The `/metrics` samples, checked to be valid Prometheus text.
    pub fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        parse_prometheus(&body).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{body}"))
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        signal(self.pid(), "TERM");
    }

    /// Kills with SIGKILL (a replica dying).
    pub fn kill9(&mut self) {
        signal(self.pid(), "KILL");
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, at most `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// The `fields.message` of a JSON log line.
pub fn message(line: &serde_json::Value) -> String {
    line["fields"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A field of a JSON log line, as text.
pub fn field(line: &serde_json::Value, name: &str) -> String {
    match &line["fields"][name] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A minimal blocking HTTP/1.1 GET (the tests need no client library).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("reads");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    )
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Samples by `name{labels}` (labels sorted, as written).
pub type Metrics = BTreeMap<String, f64>;

/// Parses Prometheus text format 0.0.4 strictly: every sample's family has a `# TYPE` line
/// before it, families are contiguous, names and labels are well-formed, values are numbers.
pub fn parse_prometheus(text: &str) -> Result<Metrics, String> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut finished: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut samples = Metrics::new();
    for (no, line) in text.lines().enumerate() {
        let no = no + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !valid_name(name) {
                return Err(format!("line {no}: bad metric name in `{line}`"));
            }
            if kw == "TYPE" {
                let kind = parts.next().unwrap_or("");
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(format!("line {no}: bad type `{kind}`"));
                }
                if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                    return Err(format!("line {no}: second TYPE for `{name}`"));
                }
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("line {no}: no value in `{line}`"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .map_err(|_| format!("line {no}: bad value `{v}`"))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (
                n,
                Some(
                    l.strip_suffix('}')
                        .ok_or_else(|| format!("line {no}: unclosed labels"))?,
                ),
            ),
            None => (series, None),
        };
        if !valid_name(name) {
            return Err(format!("line {no}: bad metric name `{name}`"));
        }
        if !types.contains_key(name) {
            return Err(format!("line {no}: sample of `{name}` before its # TYPE"));
        }
        if name != current {
            if finished.contains(&name.to_owned()) {
                return Err(format!("line {no}: family `{name}` is not contiguous"));
            }
            if !current.is_empty() {
                finished.push(current.clone());
            }
            current = name.to_owned();
        }
        if types[name] == "counter" && !name.ends_with("_total") {
            return Err(format!("line {no}: counter `{name}` should end in _total"));
        }
        if let Some(labels) = labels {
            // label="value" pairs; values may hold escaped quotes.
            let mut rest = labels;
            while !rest.is_empty() {
                let (key, after) = rest
                    .split_once("=\"")
                    .ok_or_else(|| format!("line {no}: bad label in `{labels}`"))?;
                if !valid_name(key) || key.contains(':') {
                    return Err(format!("line {no}: bad label name `{key}`"));
                }
                let mut end = None;
                let mut escaped = false;
                for (i, c) in after.char_indices() {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| format!("line {no}: unterminated label value"))?;
                rest = after[end + 1..].trim_start_matches(',');
            }
        }
        samples.insert(series.to_owned(), value);
    }
    Ok(samples)
}

/// The value of `series` (e.g. `idhost_source_syncs_total{source="a",status="succeeded"}`), 0 if absent.
pub fn value(metrics: &Metrics, series: &str) -> f64 {
    metrics.get(series).copied().unwrap_or(0.0)
}

/// A fresh directory for one test.
pub fn workdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Rows of `sql` in the SQLite file at `path`, as the first column.
pub fn sqlite_count(path: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("opens");
    conn.query_row(sql, [], |r| r.get(0)).expect("query")
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

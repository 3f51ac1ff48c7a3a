//! Issue 15, point 8: the daemon's listener cannot be starved (DESIGN §7.3): idle connections
//! past the cap of 256 do not keep `/healthz` from answering, and a request head that never
//! ends is closed after 10 s.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::daemon::{Daemon, plugin_dir, workdir};

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let text = format!(
        "plugin_dir = \"{}\"\nstate_path = \"{}/state.db\"\n[sources.a]\nconnector = \"fixture\"\nschedule = \"1h\"\n",
        plugin_dir().display(),
        dir.display(),
    );
    let path = dir.join("idhost.toml");
    std::fs::write(&path, text).expect("writes config");
    path
}

/// `GET /healthz` on a fresh connection, bounded by `limit`: the status, or why not.
fn healthz_within(addr: &str, limit: Duration) -> Result<u16, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| format!("no answer within {limit:?}: {e}"))?;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {answer:?}"))
}

#[test]
fn three_hundred_idle_connections_do_not_starve_healthz() {
    let dir = workdir();
    let cfg = config(dir.path());
    let mut daemon = Daemon::start(&cfg, &[]);
    // Idle: connected, nothing sent (a slowloris client), more than the cap of 256.
    let mut idle = Vec::new();
    for _ in 0..320 {
        idle.push(TcpStream::connect(&daemon.addr).expect("connects"));
    }
    // Some of them half-way through a head.
    for stream in idle.iter_mut().take(50) {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .expect("writes");
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = healthz_within(&daemon.addr, Duration::from_secs(3));
    let took = started.elapsed();
    assert_eq!(status, Ok(200), "after {took:?}; {}", daemon.dump());
    assert!(took < Duration::from_secs(2), "/healthz took {took:?}");
    drop(idle);
    daemon.sigterm();
    assert!(daemon.wait_exit(Duration::from_secs(10)).is_some());
}

#[test]
fn a_request_head_that_never_ends_is_closed_after_ten_seconds() {
    let dir = workdir();
    let cfg = config(dir.path());
    let mut daemon = Daemon::start(&cfg, &[]);
    let mut stream = TcpStream::connect(&daemon.addr).expect("connects");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("writes");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest);
    let took = started.elapsed();
    assert!(
        read.is_ok() || took < Duration::from_secs(19),
        "the connection was not closed: {read:?}"
    );
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(13),
        "closed after {took:?}, not after the 10 s head timeout"
    );
    daemon.sigterm();
    assert!(daemon.wait_exit(Duration::from_secs(10)).is_some());
}

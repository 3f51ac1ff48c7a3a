//! Issue 15: PostgreSQL sinks (and the export store and leases, through the same `pg::connect`)
//! take the URL's `sslmode` (host/src/pg.rs): `disable` and `require` reach the local server
//! (its TLS certificate is self-signed: `require`, as in libpq, encrypts without verifying it),
//! `verify-full` refuses a certificate no root vouches for, and `require` against a server
//! without TLS fails naming why. Without a server the first three print `SKIPPED: …`.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;

use crate::support::events::{PG_URL, config, pg_client, pg_schema};
use crate::support::{Scratch, text};

fn sink(url: &str) -> String {
    format!("[sinks.pg]\ntype = \"postgres\"\nurl = \"{url}\"\nrecords = [\"resource\"]\n")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

/// Syncs the fixture into the postgres sink at `url` + `sslmode`; the command's output.
fn sync_with(url: &str, sslmode: &str) -> std::process::Output {
    let s = Scratch::new();
    let sep = if url.contains('?') { '&' } else { '?' };
    let cfg = config(
        &s,
        "users = 3\ngroups = 1",
        &sink(&format!("{url}{sep}sslmode={sslmode}")),
    );
    s.output(&["sync", "-c", cfg.to_str().expect("utf-8")])
}

/// Whether the local server speaks TLS at all (`SHOW ssl`).
async fn server_has_tls() -> Result<bool, String> {
    let client = pg_client(PG_URL).await?;
    let row = client
        .query_one("SHOW ssl", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get::<_, String>(0) == "on")
}

#[test]
fn sslmode_disable_and_require_reach_the_local_server() {
    let rt = rt();
    let (client, schema, url) = match rt.block_on(pg_schema("idhost_pg_tls")) {
        Ok(x) => x,
        Err(reason) => {
            idhost_e2e::services::skip("postgres", &reason);
            return;
        }
    };
    let tls = rt.block_on(server_has_tls()).unwrap_or(false);
    let modes: &[&str] = if tls {
        &["disable", "prefer", "require"]
    } else {
        &["disable", "prefer"]
    };
    for mode in modes {
        let out = sync_with(&url, mode);
        assert!(out.status.success(), "sslmode={mode}: {}", text(&out));
    }
    let count: i64 = rt
        .block_on(client.query_one(&format!("SELECT count(*) FROM {schema}.resources"), &[]))
        .expect("resources")
        .get(0);
    assert!(count > 0);
    let _ = rt.block_on(client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")));
}

#[test]
fn sslmode_verify_full_refuses_a_certificate_no_root_vouches_for() {
    let rt = rt();
    match rt.block_on(server_has_tls()) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("SKIPPED: the local PostgreSQL has ssl = off");
            return;
        }
        Err(reason) => {
            idhost_e2e::services::skip("postgres", &reason);
            return;
        }
    }
    let out = sync_with(PG_URL, "verify-full");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("cannot connect") && all.to_lowercase().contains("certificate"),
        "{all}"
    );
}

#[test]
fn sslmode_require_against_a_server_without_tls_fails_saying_so() {
    // A server that declines TLS the way PostgreSQL does: the 8-byte SSLRequest answered 'N'.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 8];
            if stream.read_exact(&mut request).is_ok() {
                let _ = stream.write_all(b"N");
            }
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
        }
    });
    let out = sync_with(
        &format!("postgres://idhost@127.0.0.1:{port}/idhost"),
        "require",
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("server does not support TLS")
            && all.contains("use sslmode=prefer or disable"),
        "{all}"
    );
    drop(server);
}

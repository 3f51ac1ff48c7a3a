//! The cost of the plugin boundary, measured on the real fixture plugin (release build):
//!
//! ```text
//! cargo build --release -p fixture-connector
//! cargo bench -p idhost-connector-sdk --bench boundary
//! ```
//!
//! Prints one table: plugin load time (fresh copies of the library, since a path loads once per
//! process), an empty call across the boundary, a page of 1,000 users crossing from plugin to
//! host, and the same page's JSON encode + decode done in-process, so the overhead beyond
//! encoding is the difference of the last two rows.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use idhost_connector_sdk::host::{self, ConnectorInstance};
use idhost_connector_sdk::services::{HostServices, LogRecord};
use idhost_connector_sdk::{
    ConnectorError, HttpRequest, HttpResponse, Page, PageToken, Resource, SourceInfo,
};

struct NoServices;

impl HostServices for NoServices {
    fn http(&self, _: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, ConnectorError>> {
        Box::pin(async { Err(ConnectorError::unsupported("no HTTP in the benchmark")) })
    }
    fn log(&self, _: LogRecord) {}
    fn state_get(&self, _: &str) -> Option<String> {
        None
    }
    fn state_set(&self, _: &str, _: Option<String>) {}
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

fn fixture_path() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("release").join(format!(
        "{}fixture_connector{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn time_calls<F, Fut>(iterations: u32, rounds: u32, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut per_call = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..iterations {
            f().await;
        }
        per_call.push(started.elapsed() / iterations);
    }
    median(per_call)
}

fn main() {
    let path = fixture_path();
    if !path.exists() {
        eprintln!(
            "{} is missing: run `cargo build --release -p fixture-connector` first",
            path.display()
        );
        std::process::exit(2);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut loads = Vec::new();
    let mut plugin = None;
    for i in 0..15 {
        let copy = dir.path().join(format!("libfixture_copy_{i}.so"));
        std::fs::copy(&path, &copy).expect("copy plugin");
        let started = Instant::now();
        let loaded = host::load(&copy).expect("loads");
        loads.push(started.elapsed());
        plugin.get_or_insert(loaded);
    }
    let plugin = plugin.expect("loaded once");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let settings = serde_json::json!({ "users": 1000, "groups": 0, "page_size": 1000 });
        let instance: ConnectorInstance = plugin
            .open(
                &settings,
                {
                    let mut built = SourceInfo::default();
                    built.source = "bench".into();
                    built
                },
                1,
                Arc::new(NoServices),
            )
            .await
            .expect("opens");
        let noop = time_calls(20_000, 9, || async {
            instance.noop().await.expect("noop");
        })
        .await;
        let page = time_calls(50, 9, || async {
            let page = instance
                .list("user", PageToken::first())
                .await
                .expect("page");
            assert_eq!(page.items.len(), 1000);
        })
        .await;
        let sample = instance
            .list("user", PageToken::first())
            .await
            .expect("page");
        let bytes = serde_json::to_string(&sample).expect("encode").len();
        let codec = time_calls(50, 9, || {
            let sample = sample.clone();
            async move {
                let text = serde_json::to_string(&sample).expect("encode");
                let back: Page<Resource> = serde_json::from_str(&text).expect("decode");
                assert_eq!(back.items.len(), 1000);
            }
        })
        .await;
        let load = median(loads);
        println!(
            "plugin boundary (fixture plugin, release, {:.2} MB .so)",
            size as f64 / 1e6
        );
        println!("{:<52} {:>12}", "measure", "median");
        println!(
            "{:<52} {:>9.3} ms",
            "load + checks + manifest (fresh copy of the .so)",
            load.as_secs_f64() * 1e3
        );
        println!(
            "{:<52} {:>9.3} µs",
            "empty call across the boundary (noop)",
            noop.as_secs_f64() * 1e6
        );
        println!(
            "{:<52} {:>9.3} ms",
            format!(
                "page of 1,000 users plugin → host ({} KB JSON)",
                bytes / 1024
            ),
            page.as_secs_f64() * 1e3
        );
        println!(
            "{:<52} {:>9.3} ms",
            "same page: JSON encode + decode in-process",
            codec.as_secs_f64() * 1e3
        );
        let beyond = page.saturating_sub(codec);
        println!(
            "{:<52} {:>9.3} µs",
            "page overhead beyond encoding (difference)",
            beyond.as_secs_f64() * 1e6
        );
        println!("targets: load < 50 ms; overhead per call beyond encoding < 5 µs");
    });
}

//! Counters the host keeps per source and per sink; `idhost run` renders them for Prometheus,
//! `idhost sync` prints them in its summary.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of one source.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    requests_by_status: Mutex<BTreeMap<u16, u64>>,
    request_micros: AtomicU64,
    retries: AtomicU64,
    transport_errors: AtomicU64,
    /// Records received from the connector.
    pub records: AtomicU64,
    /// Pages received from the connector.
    pub pages: AtomicU64,
}

impl SourceMetrics {
    /// One upstream answer.
    pub fn record_request(&self, status: u16, took: Duration) {
        if let Ok(mut m) = self.requests_by_status.lock() {
            *m.entry(status).or_default() += 1;
        }
        self.request_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// One retry.
    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// One transport failure (no HTTP status).
    pub fn record_transport_error(&self) {
        self.transport_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Upstream answers by status.
    pub fn requests_by_status(&self) -> BTreeMap<u16, u64> {
        self.requests_by_status
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// All upstream answers.
    pub fn requests(&self) -> u64 {
        self.requests_by_status().values().sum()
    }

    /// Retries so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Transport failures so far.
    pub fn transport_errors(&self) -> u64 {
        self.transport_errors.load(Ordering::Relaxed)
    }
}

/// Counters of one sink under `idhost run`, kept by a metering wrapper around the sink.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    /// Records the sink accepted.
    pub records_written: AtomicU64,
    /// Failed begin/write/commit/abort calls.
    pub errors: AtomicU64,
    /// Syncs the sink committed.
    pub commits: AtomicU64,
}

/// Totals of one source across the syncs of a daemon's life.
#[derive(Debug, Default, Clone)]
struct SourceTotals {
    syncs: BTreeMap<&'static str, u64>,
    records: u64,
    pages: u64,
    requests_by_status: BTreeMap<u16, u64>,
    retries: u64,
    transport_errors: u64,
    missed: u64,
    overdue: u64,
    last_success: Option<f64>,
    last_duration: Option<f64>,
    running: bool,
    lease_held: Option<bool>,
}

/// What the daemon exposes on `/metrics`: per-source totals (folded in as each sync ends, from
/// that sync's [`SourceMetrics`]), per-sink counters, and notification deliveries.
#[derive(Debug, Default)]
pub struct DaemonMetrics {
    sources: Mutex<BTreeMap<String, SourceTotals>>,
    sinks: Mutex<BTreeMap<String, std::sync::Arc<SinkMetrics>>>,
    notifications: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Per (source, sink): events in the outbox the sink has not taken, and events it lost
    /// past the outbox's cap.
    sink_lag: Mutex<BTreeMap<(String, String), (u64, u64)>>,
}

impl DaemonMetrics {
    fn with_source(&self, source: &str, f: impl FnOnce(&mut SourceTotals)) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        f(sources.entry(source.to_owned()).or_default());
    }

    /// Makes `source` appear (with zeros) before its first sync.
    pub fn register_source(&self, source: &str) {
        self.with_source(source, |_| {});
    }

    /// The counters of sink `name` (created on first use).
    pub fn sink(&self, name: &str) -> std::sync::Arc<SinkMetrics> {
        let mut sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        sinks.entry(name.to_owned()).or_default().clone()
    }

    /// A sync of `source` started or ended.
    pub fn set_running(&self, source: &str, running: bool) {
        self.with_source(source, |t| t.running = running);
    }

    /// Whether this replica holds `source`'s lease (`None` without coordination).
    pub fn set_lease(&self, source: &str, held: Option<bool>) {
        self.with_source(source, |t| t.lease_held = held);
    }

    /// Scheduled syncs of `source` that were skipped.
    pub fn add_missed(&self, source: &str, n: u64) {
        self.with_source(source, |t| t.missed += n);
    }

    /// A sync of `source` passed its deadline.
    pub fn add_overdue(&self, source: &str) {
        self.with_source(source, |t| t.overdue += 1);
    }

    /// Folds one finished sync into the totals. `status` is `succeeded`, `failed` or `cancelled`.
    pub fn sync_finished(
        &self,
        source: &str,
        status: &'static str,
        took: Duration,
        metrics: &SourceMetrics,
    ) {
        let by_status = metrics.requests_by_status();
        self.with_source(source, |t| {
            *t.syncs.entry(status).or_default() += 1;
            t.records += metrics.records.load(Ordering::Relaxed);
            t.pages += metrics.pages.load(Ordering::Relaxed);
            for (code, n) in by_status {
                *t.requests_by_status.entry(code).or_default() += n;
            }
            t.retries += metrics.retries();
            t.transport_errors += metrics.transport_errors();
            t.last_duration = Some(took.as_secs_f64());
            t.running = false;
            if status == "succeeded" {
                t.last_success =
                    Some(time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9);
            }
        });
    }

    /// How far behind each sink that takes `source`'s events is, after one of its syncs.
    pub fn set_sink_lag(&self, source: &str, lag: &[crate::state::SinkLag]) {
        let mut all = self.sink_lag.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|(s, _), _| s != source);
        for l in lag {
            all.insert((source.to_owned(), l.sink.clone()), (l.events, l.dropped));
        }
    }

    /// One notification delivery to `target`, `sent` or `failed`.
    pub fn notification(&self, target: &str, outcome: &'static str) {
        let mut n = self.notifications.lock().unwrap_or_else(|p| p.into_inner());
        *n.entry((target.to_owned(), outcome)).or_default() += 1;
    }

    /// Everything in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let sources = self
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut out = Exposition::default();
        let per_source = |out: &mut Exposition,
                          name: &str,
                          kind: &str,
                          help: &str,
                          value: &dyn Fn(&SourceTotals) -> Option<f64>| {
            out.family(name, kind, help);
            for (source, totals) in &sources {
                if let Some(v) = value(totals) {
                    out.sample(name, &[("source", source)], v);
                }
            }
        };
        let lag = self
            .sink_lag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        out.family(
            "idhost_sink_lag_events",
            "gauge",
            "Change events of a source waiting in the outbox for a sink that has not taken them.",
        );
        for ((source, sink), (events, _)) in &lag {
            out.sample(
                "idhost_sink_lag_events",
                &[("source", source), ("sink", sink)],
                *events as f64,
            );
        }
        out.family(
            "idhost_sink_dropped_events",
            "gauge",
            "Change events a sink never received: dropped from the outbox past its cap.",
        );
        for ((source, sink), (_, dropped)) in &lag {
            out.sample(
                "idhost_sink_dropped_events",
                &[("source", source), ("sink", sink)],
                *dropped as f64,
            );
        }
        out.family(
            "idhost_source_syncs_total",
            "counter",
            "Syncs finished, by outcome (succeeded, failed, cancelled, held).",
        );
        for (source, totals) in &sources {
            for status in ["succeeded", "failed", "cancelled", "held"] {
                let n = totals.syncs.get(status).copied().unwrap_or(0);
                out.sample(
                    "idhost_source_syncs_total",
                    &[("source", source), ("status", status)],
                    n as f64,
                );
            }
        }
        per_source(
            &mut out,
            "idhost_source_sync_failures_total",
            "counter",
            "Syncs that failed.",
            &|t| Some(t.syncs.get("failed").copied().unwrap_or(0) as f64),
        );
        per_source(
            &mut out,
            "idhost_source_records_total",
            "counter",
            "Records (resources, entitlements, grants) received from the connector.",
            &|t| Some(t.records as f64),
        );
        per_source(
            &mut out,
            "idhost_source_pages_total",
            "counter",
            "Pages received from the connector.",
            &|t| Some(t.pages as f64),
        );
        out.family(
            "idhost_source_upstream_requests_total",
            "counter",
            "Upstream HTTP answers, by status code.",
        );
        for (source, totals) in &sources {
            for (code, n) in &totals.requests_by_status {
                out.sample(
                    "idhost_source_upstream_requests_total",
                    &[("source", source), ("status", &code.to_string())],
                    *n as f64,
                );
            }
        }
        per_source(
            &mut out,
            "idhost_source_upstream_retries_total",
            "counter",
            "Upstream requests retried (429, 5xx, transport errors).",
            &|t| Some(t.retries as f64),
        );
        per_source(
            &mut out,
            "idhost_source_upstream_transport_errors_total",
            "counter",
            "Upstream requests that got no HTTP answer.",
            &|t| Some(t.transport_errors as f64),
        );
        per_source(
            &mut out,
            "idhost_source_missed_schedules_total",
            "counter",
            "Scheduled syncs skipped because the previous one was still running or no replica ran them.",
            &|t| Some(t.missed as f64),
        );
        per_source(
            &mut out,
            "idhost_source_overdue_syncs_total",
            "counter",
            "Syncs that ran past the source's deadline.",
            &|t| Some(t.overdue as f64),
        );
        per_source(
            &mut out,
            "idhost_source_last_success_timestamp_seconds",
            "gauge",
            "Unix time the last successful sync finished.",
            &|t| t.last_success,
        );
        per_source(
            &mut out,
            "idhost_source_last_sync_duration_seconds",
            "gauge",
            "Wall time of the last finished sync.",
            &|t| t.last_duration,
        );
        per_source(
            &mut out,
            "idhost_source_sync_running",
            "gauge",
            "1 while a sync of the source runs in this replica.",
            &|t| Some(if t.running { 1.0 } else { 0.0 }),
        );
        per_source(
            &mut out,
            "idhost_source_lease_held",
            "gauge",
            "1 while this replica holds the source's lease (only with [coordination]).",
            &|t| t.lease_held.map(|h| if h { 1.0 } else { 0.0 }),
        );
        let sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let per_sink =
            |out: &mut Exposition, name: &str, help: &str, value: &dyn Fn(&SinkMetrics) -> u64| {
                out.family(name, "counter", help);
                for (sink, m) in &sinks {
                    out.sample(name, &[("sink", sink)], value(m) as f64);
                }
            };
        per_sink(
            &mut out,
            "idhost_sink_records_written_total",
            "Records the sink accepted.",
            &|m| m.records_written.load(Ordering::Relaxed),
        );
        per_sink(
            &mut out,
            "idhost_sink_errors_total",
            "Sink calls (begin, write, commit, abort) that failed.",
            &|m| m.errors.load(Ordering::Relaxed),
        );
        per_sink(
            &mut out,
            "idhost_sink_commits_total",
            "Source snapshots the sink committed.",
            &|m| m.commits.load(Ordering::Relaxed),
        );
        out.family(
            "idhost_notifications_total",
            "counter",
            "Notification deliveries, by target and outcome (sent, failed).",
        );
        let notifications = self
            .notifications
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for ((target, outcome), n) in notifications {
            out.sample(
                "idhost_notifications_total",
                &[("target", &target), ("outcome", outcome)],
                n as f64,
            );
        }
        out.family("idhost_build_info", "gauge", "The running idhost version.");
        out.sample(
            "idhost_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        out.text
    }
}

/// Prometheus text format writer: `# HELP`/`# TYPE` once per family, escaped label values.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        use std::fmt::Write as _;
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        use std::fmt::Write as _;
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let v = v
                    .replace('\\', r"\\")
                    .replace('"', "\\\"")
                    .replace('\n', r"\n");
                let _ = write!(self.text, "{k}=\"{v}\"");
            }
            self.text.push('}');
        }
        let _ = if value.is_nan() {
            writeln!(self.text, " NaN")
        } else if value.is_infinite() {
            writeln!(self.text, " {}Inf", if value > 0.0 { "+" } else { "-" })
        } else if value.fract() == 0.0 && value.abs() < 1e15 {
            writeln!(self.text, " {}", value as i64)
        } else {
            writeln!(self.text, " {value}")
        };
    }
}

/// Peak resident set size of this process in kB (`VmHWM` of /proc/self/status); `None` where
/// there is no procfs. Reported by `idhost sync --json` for sizing a container.
pub fn process_peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system, every thread) this process has used so far, in milliseconds, from
/// `utime` and `stime` of /proc/self/stat (in USER_HZ, which Linux fixes at 100 for every
/// userspace-visible interface); `None` where there is no procfs. Reported by
/// `idhost sync --json` beside the peak RSS, so `idhost bench` can print what a sync cost in
/// CPU, not only in wall time.
pub fn process_cpu_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is parenthesised and may hold spaces: count after its end.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_escapes_label_values_and_groups_families() {
        let metrics = DaemonMetrics::default();
        let source = SourceMetrics::default();
        source.record_request(200, Duration::from_millis(5));
        source.record_request(429, Duration::from_millis(5));
        source.record_retry();
        source.records.store(7, Ordering::Relaxed);
        metrics.sync_finished("we\"ird", "succeeded", Duration::from_secs(2), &source);
        metrics
            .sink("local")
            .records_written
            .store(7, Ordering::Relaxed);
        let text = metrics.render();
        assert!(
            text.contains(r#"idhost_source_syncs_total{source="we\"ird",status="succeeded"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"idhost_source_upstream_requests_total{source="we\"ird",status="429"} 1"#
            )
        );
        assert!(text.contains(r#"idhost_source_records_total{source="we\"ird"} 7"#));
        assert!(text.contains(r#"idhost_sink_records_written_total{sink="local"} 7"#));
        assert_eq!(
            text.matches("# TYPE idhost_source_syncs_total counter")
                .count(),
            1
        );
    }
}

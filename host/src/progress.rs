//! Progress: one indicatif line per source when stderr is a terminal, otherwise a log line per
//! source every few seconds. Log output goes through [`Progress::suspend`]-aware writers so the
//! two never fight over the screen.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::record::RunStatus;

/// The progress display of a command. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Bars when `enabled` and stderr is a terminal; log lines otherwise.
    pub fn new(enabled: bool) -> Self {
        let multi = (enabled && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self { multi }
    }

    /// No bars, no periodic lines.
    pub fn hidden() -> Self {
        Self { multi: None }
    }

    /// Clears the bars for good: what is printed next (the summary) is never redrawn over or
    /// followed by a bar.
    pub fn close(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
            m.set_draw_target(ProgressDrawTarget::hidden());
        }
    }

    /// Runs `f` with the bars cleared (for log output).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.multi {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }

    /// The progress of one source.
    pub fn source(&self, name: &str) -> SourceProgress {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:12} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        SourceProgress {
            name: name.to_owned(),
            bar,
            started: Instant::now(),
            pages: Arc::default(),
            records: Arc::default(),
            last_line: Arc::new(std::sync::Mutex::new(Instant::now())),
        }
    }
}

/// Progress of one source's sync.
#[derive(Debug)]
pub struct SourceProgress {
    name: String,
    bar: Option<ProgressBar>,
    started: Instant,
    pages: Arc<AtomicU64>,
    records: Arc<AtomicU64>,
    last_line: Arc<std::sync::Mutex<Instant>>,
}

impl SourceProgress {
    /// One page of `records` records of `rtype` arrived.
    pub fn page(&self, rtype: &str, records: u64) {
        let pages = self.pages.fetch_add(1, Ordering::Relaxed) + 1;
        let total = self.records.fetch_add(records, Ordering::Relaxed) + records;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = total as f64 / secs;
        let text = format!("{rtype}: {pages} pages, {total} records, {rate:.0}/s");
        match &self.bar {
            Some(bar) => bar.set_message(text),
            None => {
                let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    tracing::info!(source = %self.name, pages, records = total, rate = rate as u64, "syncing {rtype}");
                }
            }
        }
    }

    /// The sync ended.
    pub fn finish(&self, status: RunStatus, records: u64) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(format!(
                "{} — {records} records in {:.1}s",
                status.as_str(),
                self.started.elapsed().as_secs_f64()
            ));
        }
    }
}

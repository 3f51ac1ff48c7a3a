//! The host's tracing subscriber: pretty (default) or JSON lines on stderr, filtered by
//! `--log-level` (an `EnvFilter` directive such as `info` or `idhost=debug`).

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::progress::Progress;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Writes log lines to stderr with any progress bars cleared first.
#[derive(Clone)]
struct StderrAroundBars(Progress);

impl<'a> MakeWriter<'a> for StderrAroundBars {
    type Writer = BarAwareWriter;
    fn make_writer(&'a self) -> Self::Writer {
        BarAwareWriter {
            progress: self.0.clone(),
            buffer: Vec::new(),
        }
    }
}

struct BarAwareWriter {
    progress: Progress,
    buffer: Vec<u8>,
}

impl Write for BarAwareWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for BarAwareWriter {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        // Every log line passes the process-wide redactor (DESIGN §7.3: secrets in every form).
        let line = crate::redact::redact(&String::from_utf8_lossy(&buffer));
        self.progress.suspend(|| {
            let _ = std::io::stderr().write_all(line.as_bytes());
        });
    }
}

/// Installs the global subscriber. `level` is an EnvFilter directive.
pub fn init(level: &str, format: LogFormat, progress: &Progress) -> Result<(), String> {
    let filter = EnvFilter::try_new(level)
        .map_err(|e| format!("--log-level `{level}` is not a valid filter: {e}"))?;
    let writer = StderrAroundBars(progress.clone());
    let result = match format {
        LogFormat::Pretty => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(crate::color::stderr())
            .with_writer(writer)
            .with_target(false)
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_ansi(false)
            .with_env_filter(filter)
            .with_writer(writer)
            .with_current_span(false)
            .try_init(),
    };
    result.map_err(|e| e.to_string())
}

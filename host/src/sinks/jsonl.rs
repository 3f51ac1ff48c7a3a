//! JSON lines: one record per line, DESIGN §4 wire format.
//!
//! To a file, a sync's records are staged in a temporary file beside the target and appended
//! to it only on commit, followed by the `sync_run` record; a failed sync appends just its
//! `sync_run` (status failed). To stdout (`path = "-"`) records stream as they come, and the
//! closing `sync_run` record says whether the sync they belong to completed.
//!
//! Change events (`records = ["event"]`) are lines of kind `event` after the sync's records.
//! A resumed sync restages from scratch: staging files a killed process left for the source
//! are deleted when its next sync begins.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt as _;

use super::sink::{Sink, SinkError, SinkSession};
use crate::config::SinkConfig;
use crate::record::{Batch, ChangeEvent, SyncRun, wire_object};

/// The JSONL sink.
pub struct JsonlSink {
    config: SinkConfig,
    /// Serializes appends to the target from concurrent sources.
    append_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl JsonlSink {
    /// A sink per `config`.
    pub fn new(config: SinkConfig) -> Self {
        Self {
            config,
            append_lock: std::sync::Arc::default(),
        }
    }

    fn target(&self) -> Option<PathBuf> {
        match &self.config.path {
            Some(p) if p.as_os_str() != "-" => Some(p.clone()),
            _ => None,
        }
    }
}

#[async_trait]
impl Sink for JsonlSink {
    fn config(&self) -> &SinkConfig {
        &self.config
    }

    async fn begin(&self, source: &str, sync_id: &str) -> Result<Box<dyn SinkSession>, SinkError> {
        let io = |path: &Path, source| SinkError::Io {
            sink: self.config.name.clone(),
            path: path.to_owned(),
            source,
        };
        let staging = match self.target() {
            None => None,
            Some(target) => {
                let dir = target
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map(Path::to_owned)
                    .unwrap_or_else(|| PathBuf::from("."));
                std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
                remove_stale_staging(&dir, source);
                let file = tempfile::Builder::new()
                    .prefix(&format!(".idhost-{source}-{sync_id}-"))
                    .suffix(".jsonl.part")
                    .tempfile_in(&dir)
                    .map_err(|e| io(&dir, e))?;
                Some((target, std::io::BufWriter::new(file)))
            }
        };
        Ok(Box::new(JsonlSession {
            sink: self.config.name.clone(),
            source: source.to_owned(),
            staging,
            append_lock: self.append_lock.clone(),
        }))
    }
}

/// Deletes `.idhost-<source>-<sync id>-*.jsonl.part` files in `dir` (left by a killed run).
fn remove_stale_staging(dir: &Path, source: &str) {
    let prefix = format!(".idhost-{source}-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        // The sync id (a UUID) follows the source, so source `a` never takes `a-b`'s files.
        let owned = rest.len() > 37
            && uuid::Uuid::parse_str(&rest[..36]).is_ok()
            && rest[36..].starts_with('-')
            && name.ends_with(".jsonl.part");
        if owned && let Err(err) = std::fs::remove_file(entry.path()) {
            tracing::warn!(file = %entry.path().display(), error = %err, "cannot remove a stale staging file");
        }
    }
}

struct JsonlSession {
    sink: String,
    source: String,
    staging: Option<(PathBuf, std::io::BufWriter<tempfile::NamedTempFile>)>,
    append_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl JsonlSession {
    fn lines(&self, batch: &Batch) -> Vec<u8> {
        let mut out = Vec::with_capacity(batch.len() * 256);
        let mut push = |kind: &str, value: serde_json::Map<String, serde_json::Value>| {
            let _ = kind;
            if serde_json::to_writer(&mut out, &value).is_ok() {
                out.push(b'\n');
            }
        };
        for r in &batch.resources {
            push("resource", wire_object("resource", &self.source, r));
        }
        for e in &batch.entitlements {
            push("entitlement", wire_object("entitlement", &self.source, e));
        }
        for g in &batch.grants {
            push("grant", wire_object("grant", &self.source, g));
        }
        out
    }

    fn run_line(&self, run: &SyncRun) -> Vec<u8> {
        let mut line =
            serde_json::to_vec(&wire_object("sync_run", &run.source, run)).unwrap_or_default();
        line.push(b'\n');
        line
    }

    async fn append(
        &self,
        target: &Path,
        staged: Option<&Path>,
        tail: &[u8],
    ) -> Result<(), SinkError> {
        let io = |source| SinkError::Io {
            sink: self.sink.clone(),
            path: target.to_owned(),
            source,
        };
        let _guard = self.append_lock.lock().await;
        // Created 0600 (DESIGN §7.3); an existing file keeps its mode.
        let mut out = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(target)
            .await
            .map_err(io)?;
        if let Some(staged) = staged {
            let mut input = tokio::fs::File::open(staged).await.map_err(io)?;
            tokio::io::copy(&mut input, &mut out).await.map_err(io)?;
        }
        out.write_all(tail).await.map_err(io)?;
        out.sync_data().await.map_err(io)
    }
}

impl JsonlSession {
    /// Appends `lines` to the staging file, or writes them to stdout.
    async fn put(&mut self, lines: &[u8]) -> Result<(), SinkError> {
        match &mut self.staging {
            Some((_, file)) => file.write_all(lines).map_err(|source| SinkError::Io {
                sink: self.sink.clone(),
                path: file.get_ref().path().to_owned(),
                source,
            }),
            None => tokio::io::stdout()
                .write_all(lines)
                .await
                .map_err(|source| SinkError::Io {
                    sink: self.sink.clone(),
                    path: PathBuf::from("-"),
                    source,
                }),
        }
    }
}

#[async_trait]
impl SinkSession for JsonlSession {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let lines = self.lines(batch);
        self.put(&lines).await
    }

    async fn write_events(&mut self, events: &[ChangeEvent]) -> Result<(), SinkError> {
        let mut lines = Vec::with_capacity(events.len() * 256);
        for event in events {
            event.write_json(&mut lines);
            lines.push(b'\n');
        }
        self.put(&lines).await
    }

    async fn commit(mut self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        let tail = self.run_line(run);
        match self.staging.take() {
            Some((target, file)) => {
                let file = file.into_inner().map_err(|e| SinkError::Io {
                    sink: self.sink.clone(),
                    path: target.clone(),
                    source: e.into_error(),
                })?;
                self.append(&target, Some(file.path()), &tail).await
            }
            None => tokio::io::stdout()
                .write_all(&tail)
                .await
                .map_err(|source| SinkError::Io {
                    sink: self.sink.clone(),
                    path: PathBuf::from("-"),
                    source,
                }),
        }
    }

    async fn abort(mut self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        let tail = self.run_line(run);
        match self.staging.take() {
            // Dropping the temp file deletes it: nothing of the failed sync reaches the target.
            Some((target, _file)) => self.append(&target, None, &tail).await,
            None => tokio::io::stdout()
                .write_all(&tail)
                .await
                .map_err(|source| SinkError::Io {
                    sink: self.sink.clone(),
                    path: PathBuf::from("-"),
                    source,
                }),
        }
    }
}

//! JSON lines: one record per line, DESIGN §4 wire format, every line with its `sync_id`
//! (a record: the sync that listed it; an event: the sync that found the change; a
//! `sync_run`: its sync).
//!
//! To a file, commits are all-or-nothing, and readers can tell:
//! - a sync's lines (its records, then the events after the sink's outbox position, then its
//!   `sync_run` if `records` takes it) are staged in a temporary file beside the target and
//!   appended to it on commit, then fsynced;
//! - then the commit marker `<file>.idhost-commit` (JSON: `committed_bytes`, the length of the
//!   file's committed part, and each source's last committed sync) is replaced atomically
//!   (written beside, fsynced, renamed). **Only the first `committed_bytes` bytes of the file
//!   are committed**: whole syncs, never part of one;
//! - an append that fails part-way (a full disk, a write error) is truncated back at once; one
//!   cut by a crash is truncated away by the next commit to the file, before it appends;
//! - a redelivered sync (the host crashed after the sink committed, before it recorded that)
//!   is recognized by its sync id in the marker and not appended again.
//! - a marker that no longer parses is refused, never guessed at (see `read_marker`).
//!
//! A failed sync appends just its `sync_run` (status failed), when `records` takes
//! `sync_run`s. To stdout (`path = "-"`) records stream as they come, and the closing
//! `sync_run` record (when taken) says whether the sync they belong to completed. A resumed
//! sync restages from scratch: staging files a killed process left for the source are deleted
//! when its next sync begins.
//!
//! Fault hook (tests): with `IDHOST_FAULT_JSONL_CRASH_AFTER_BYTES=N`, a commit appends N bytes
//! of its sync, fsyncs them, and aborts the process, as a crash mid-append would.

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
                remove_stale_staging(&dir, &self.config.name, source);
                let file = tempfile::Builder::new()
                    .prefix(&format!(".idhost-{}.{source}-{sync_id}-", self.config.name))
                    .suffix(".jsonl.part")
                    .tempfile_in(&dir)
                    .map_err(|e| io(&dir, e))?;
                Some((target, std::io::BufWriter::new(file)))
            }
        };
        Ok(Box::new(JsonlSession {
            sink: self.config.name.clone(),
            source: source.to_owned(),
            sync_id: sync_id.to_owned(),
            staging,
            append_lock: self.append_lock.clone(),
            wants_runs: self.config.records.wants_kind("sync_run"),
        }))
    }
}

/// Deletes `.idhost-<sink>.<source>-<sync id>-*.jsonl.part` files in `dir` (left by a killed
/// run). The sink's name is in it (names have no `.`), so two JSONL sinks writing to one
/// directory never take each other's staging.
fn remove_stale_staging(dir: &Path, sink: &str, source: &str) {
    let prefix = format!(".idhost-{sink}.{source}-");
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
    sync_id: String,
    staging: Option<(PathBuf, std::io::BufWriter<tempfile::NamedTempFile>)>,
    append_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Whether `records` takes `sync_run` lines.
    wants_runs: bool,
}

/// The commit marker beside a JSONL file (see the module docs).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Marker {
    /// Length of the file's committed part.
    committed_bytes: u64,
    /// Each source's last committed sync.
    #[serde(default)]
    syncs: std::collections::BTreeMap<String, String>,
}

fn marker_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".idhost-commit");
    target.with_file_name(name)
}

/// Reads the commit marker of a file `len` bytes long. No marker: a file written before the
/// marker existed, all of it committed. A marker that cannot be read or parsed is refused:
/// guessing would either count a cut append as committed or truncate committed syncs away, so
/// the commit fails naming the marker and the operator decides (removing the marker counts
/// the whole file as committed).
fn read_marker(marker_file: &Path, len: u64) -> std::io::Result<Marker> {
    let refuse = |why: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "commit marker {} {why}; the committed length of the file is unknown, so nothing \
                 was appended (remove the marker to count the whole file as committed)",
                marker_file.display()
            ),
        )
    };
    match std::fs::read(marker_file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|err| refuse(format!("is not a valid marker ({err})"))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Marker {
            committed_bytes: len,
            ..Marker::default()
        }),
        Err(err) => Err(refuse(format!("cannot be read ({err})"))),
    }
}

/// Appends `staged` (if any) and `tail` to `target` as one commit (see the module docs);
/// `commit` names the source and sync a data commit marks (`None` for a failed sync's
/// `sync_run`). Blocking.
fn append_commit(
    target: &Path,
    staged: Option<&Path>,
    tail: &[u8],
    commit: Option<(&str, &str)>,
) -> std::io::Result<()> {
    use std::io::{Read as _, Seek as _};
    use std::os::unix::fs::OpenOptionsExt as _;
    let marker_file = marker_path(target);
    // Created 0600 (DESIGN §7.3); an existing file keeps its mode.
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .mode(0o600)
        .open(target)?;
    let len = out.metadata()?.len();
    let mut marker = read_marker(&marker_file, len)?;
    if len > marker.committed_bytes {
        // A crash cut an earlier append: its bytes were never committed.
        tracing::warn!(file = %target.display(), bytes = len - marker.committed_bytes, "removing the uncommitted tail a cut commit left");
        out.set_len(marker.committed_bytes)?;
        out.sync_data()?;
    } else if len < marker.committed_bytes {
        // Truncated or rotated from outside: what is there now is the committed part.
        marker.committed_bytes = len;
    }
    if let Some((source, sync_id)) = commit
        && marker.syncs.get(source).map(String::as_str) == Some(sync_id)
    {
        tracing::info!(file = %target.display(), source, sync_id, "sync already committed to this file; not appending it again");
        return Ok(());
    }
    let start = marker.committed_bytes;
    let crash_after = std::env::var("IDHOST_FAULT_JSONL_CRASH_AFTER_BYTES")
        .ok()
        .and_then(|n| n.parse::<u64>().ok());
    let written = (|| -> std::io::Result<()> {
        let mut budget = crash_after;
        let mut put = |out: &mut std::fs::File, bytes: &[u8]| -> std::io::Result<()> {
            if let Some(left) = budget.as_mut() {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                out.write_all(&bytes[..n])?;
                *left -= n as u64;
                if n < bytes.len() {
                    out.sync_data()?;
                    std::process::abort();
                }
                Ok(())
            } else {
                out.write_all(bytes)
            }
        };
        if let Some(staged) = staged {
            let mut input = std::fs::File::open(staged)?;
            input.rewind()?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                put(&mut out, &buf[..n])?;
            }
        }
        put(&mut out, tail)?;
        out.sync_data()
    })();
    if let Err(err) = written {
        // All or nothing: the part that made it goes again.
        let _ = out.set_len(start);
        let _ = out.sync_data();
        return Err(err);
    }
    marker.committed_bytes = out.metadata()?.len();
    if let Some((source, sync_id)) = commit {
        marker.syncs.insert(source.to_owned(), sync_id.to_owned());
    }
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let mut next = tempfile::NamedTempFile::new_in(dir)?;
    next.write_all(&serde_json::to_vec(&marker).unwrap_or_default())?;
    next.as_file().sync_data()?;
    next.persist(&marker_file).map_err(|e| e.error)?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

impl JsonlSession {
    fn lines(&self, batch: &Batch) -> Vec<u8> {
        let mut out = Vec::with_capacity(batch.len() * 256);
        let sync_id = serde_json::Value::from(self.sync_id.as_str());
        let mut push = |kind: &str, mut value: serde_json::Map<String, serde_json::Value>| {
            let _ = kind;
            value.insert("sync_id".into(), sync_id.clone());
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

    /// The `sync_run` line, if `records` takes it.
    fn run_line(&self, run: &SyncRun) -> Vec<u8> {
        if !self.wants_runs {
            return Vec::new();
        }
        let mut line =
            serde_json::to_vec(&wire_object("sync_run", &run.source, run)).unwrap_or_default();
        line.push(b'\n');
        line
    }

    async fn append(
        &self,
        target: &Path,
        staged: Option<tempfile::NamedTempFile>,
        tail: Vec<u8>,
        commit: bool,
    ) -> Result<(), SinkError> {
        let io = |source| SinkError::Io {
            sink: self.sink.clone(),
            path: target.to_owned(),
            source,
        };
        if staged.is_none() && tail.is_empty() {
            return Ok(());
        }
        let _guard = self.append_lock.lock().await;
        let (owned, source, sync_id) =
            (target.to_owned(), self.source.clone(), self.sync_id.clone());
        tokio::task::spawn_blocking(move || {
            let commit = commit.then_some((source.as_str(), sync_id.as_str()));
            // `staged` lives (and its file with it) until the append is done.
            append_commit(&owned, staged.as_ref().map(|f| f.path()), &tail, commit)
        })
        .await
        .map_err(|e| io(std::io::Error::other(e.to_string())))?
        .map_err(io)
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
                self.append(&target, Some(file), tail, true).await
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
            Some((target, _file)) => self.append(&target, None, tail, false).await,
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

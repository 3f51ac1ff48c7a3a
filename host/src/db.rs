//! SQLite, opened one way: the state database (and the daemon's schedule and the audit trail in
//! it), the SQLite sink, the SQLite export store and `idhost query` all open their file with
//! [`open`] (or [`open_read_only`]) and share one connection per file through [`Db`].
//!
//! One connection per file behind a mutex: several sources writing at once take turns, which
//! SQLite would make them do anyway (one writer at a time), without `SQLITE_BUSY` on a long
//! transaction. Statements run on tokio's blocking threads ([`Db::blocking`]) so a large page,
//! diff or swap never stalls the runtime.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

/// The settings every connection gets, whatever the file.
///
/// - `page_size = 16384` only applies to a new file (an existing one keeps its own): 16 KiB
///   pages hold four times the rows of the default 4 KiB, so a large sync balances, writes and
///   checkpoints far fewer pages.
/// - `journal_mode = WAL` with `synchronous = NORMAL`: a commit is in the WAL (it survives a
///   killed process, the next opener replays it) but not fsynced until a checkpoint, so a power
///   cut may take back the newest transactions, never half of one. Where a commit must be on
///   disk when it returns (the diff that writes the outbox, the swap that makes a snapshot
///   visible), it runs under [`durably`]. Readers never block the writer, nor it them.
/// - `busy_timeout = 60000`: another process (a second `idhost sync`, `idhost query`, the
///   daemon) holding the write lock through a large swap is waited for, up to a minute, rather
///   than failing with `SQLITE_BUSY`.
/// - `cache_size = -4096` (4 MiB per connection; see [`release_cache`] for why the pages are
///   handed back after large writes). A sync has up to four connections open (the state
///   database's writer, its reader and the diff's, and one per SQLite sink), and each one's
///   cache fills up to its size with what it touched, so the cache is the part of a sync's
///   memory that grows with the tenant until it is full: at 24 MiB each, the Ironclad bench
///   peaked at 137 MB with 12.5k users and 221 MB with 50k. From 8 to 4 MiB: an Ironclad sync
///   of 20,000 users 52 → 44 MB, the SQLite sink at 1M grants 56 → 40 MB and no slower
///   (244k → 260k records/s, within this machine's noise). The sorter of `CREATE INDEX` (and
///   of a diff's `ORDER BY`) also keeps up to `cache_size` in memory per thread before it
///   spills to a temporary file.
/// - `threads = 2` lets the sorter of `CREATE INDEX` use a helper thread.
pub const PRAGMAS: &str = "
PRAGMA page_size = 16384;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA busy_timeout = 60000;
PRAGMA cache_size = -4096;
PRAGMA threads = 2;
";

/// The settings of a read-only connection: those of [`PRAGMAS`] that do not write.
const READ_ONLY_PRAGMAS: &str = "
PRAGMA busy_timeout = 60000;
PRAGMA cache_size = -4096;
";

/// Opens (creating, with its directory) the database at `path` with [`PRAGMAS`].
pub fn open(path: &Path) -> Result<Connection, rusqlite::Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // If this fails, the open below fails too, naming the file.
        let _ = std::fs::create_dir_all(dir);
    }
    create_private(path);
    #[allow(
        clippy::disallowed_methods,
        reason = "the one place a writable connection is opened"
    )]
    let conn = Connection::open(path)?;
    conn.execute_batch(PRAGMAS)?;
    Ok(conn)
}

/// Creates `path` empty with mode 0600 if it does not exist (DESIGN §7.3: files idhost creates
/// are 0600; SQLite gives its `-wal` and `-shm` files the database's mode). An existing file
/// keeps the mode its operator gave it. If this fails, the open that follows fails too, naming
/// the file.
pub fn create_private(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt as _;
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
        return;
    }
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
}

/// Opens the existing database at `path` read-only (it is never created).
pub fn open_read_only(path: &Path) -> Result<Connection, rusqlite::Error> {
    #[allow(
        clippy::disallowed_methods,
        reason = "the one place a read-only connection is opened"
    )]
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(READ_ONLY_PRAGMAS)?;
    Ok(conn)
}

/// A failure of a [`Db`], naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// SQLite failed.
    #[error("{path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// The blocking task running the statements failed (it panicked or the runtime is
    /// shutting down).
    #[error("{path}: the database task failed: {message}")]
    Task {
        /// The database file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// One shared connection to a database file. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating) `path` with [`open`].
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let conn = open(path).map_err(|source| DbError::Sqlite {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::from_connection(path, conn))
    }

    /// Shares `conn`, the connection to `path`.
    pub fn from_connection(path: &Path, conn: Connection) -> Self {
        Self {
            path: path.to_owned(),
            conn: Arc::new(Mutex::new(conn)),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, locked, for work whose errors are not all SQLite's (the export store's
    /// merge); run it on a blocking thread.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // See `with_conn` on a poisoned lock.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the connection, here (for short statements).
    pub fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, DbError> {
        // A panic inside `f` poisons the mutex, not the connection: SQLite rolled back
        // whatever transaction was open when its statement handles were dropped.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|source| DbError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// Runs `f` on the connection on a blocking thread (for page writes, diffs, swaps).
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, DbError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.with_conn(f))
            .await
            .map_err(|e| DbError::Task {
                path: self.path.clone(),
                message: e.to_string(),
            })?
    }
}

/// Writes of at least this many records hand their connection's cached pages back with
/// [`release_cache`].
pub const LARGE_WRITE: usize = 10_000;

/// Hands the connection's unused cached pages back (`PRAGMA shrink_memory`), after a large
/// write or at the end of a phase, when the next work is on another connection.
///
/// The bundled SQLite is built with `SQLITE_ENABLE_MEMORY_MANAGEMENT`, so every connection of
/// the process draws its page cache from ONE shared pool, sized by the sum of their
/// `cache_size`s, and while the pool holds more pages than that, a page a connection stops
/// using is freed instead of kept. A connection that has just written a million records keeps
/// its whole share resident, so the next connection to work (the sink after the state
/// database, or the reverse) soon cannot keep any page cached: measured on the second sync of
/// 1M grants, the SQLite sink's swap re-read its B-tree roots from the file on every lookup
/// (4.6M reads) and took 3–6 s instead of 1.6 s.
pub fn release_cache(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.execute_batch("PRAGMA shrink_memory")
}

/// Runs `f` with `PRAGMA synchronous = FULL`, so the transaction it commits is on disk when it
/// returns (in WAL mode the WAL is synced at that commit, with every commit before it), then
/// goes back to `NORMAL`.
pub fn durably<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
) -> Result<T, rusqlite::Error> {
    conn.execute_batch("PRAGMA synchronous = FULL")?;
    let result = f(conn);
    let reset = conn.execute_batch("PRAGMA synchronous = NORMAL");
    let value = result?;
    reset?;
    Ok(value)
}

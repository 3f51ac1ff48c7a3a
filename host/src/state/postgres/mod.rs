//! The Postgres backend of the state database (`state_url = "postgres://…"`): the same
//! journal as SQLite's (snapshot generations, checkpoints, connector state, the outbox and
//! each sink's position), in tables every replica shares, so a source that moves to another
//! replica goes on from its last snapshot and delta link instead of starting a silent
//! baseline.
//!
//! Tables are prefixed `idhost_state_` (a `postgres` sink may share the database and has its
//! own `events` and `snapshots`) and created idempotently under an advisory lock, as the lease
//! table is. Record ids sort bytewise (`COLLATE "C"`), as in SQLite, so pages resume and
//! diffs merge in the same order.
//!
//! Connections come from a small pool: an operation takes one for its transaction and gives
//! it back; the diff reads through a cursor on a connection of its own (a repeatable-read
//! snapshot, fetched [`FETCH`] rows at a time) and writes its events through others, so no
//! generation is ever held in memory.

mod journal;
mod outbox;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, Transaction};

use super::fence::Fence;
use super::store::StateError;

/// Rows the diff's cursor fetches at a time (and events written per transaction).
pub(super) const FETCH: i32 = 2000;

/// Most connections one process holds to the state database.
const POOL: usize = 8;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The schema; [`LEASES_TABLE`] and the `COMMIT` follow it.
const SCHEMA: &str = r#"
BEGIN;
SELECT pg_advisory_xact_lock(7316101);
CREATE TABLE IF NOT EXISTS idhost_state_connector (
    source TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (source, key));
CREATE TABLE IF NOT EXISTS idhost_state_snapshots (
    source TEXT PRIMARY KEY, gen BIGINT NOT NULL, sync_id TEXT NOT NULL, finished_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idhost_state_resources (
    source TEXT NOT NULL, gen BIGINT NOT NULL, id TEXT COLLATE "C" NOT NULL, type TEXT NOT NULL,
    status TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (source, gen, id));
CREATE TABLE IF NOT EXISTS idhost_state_entitlements (
    source TEXT NOT NULL, gen BIGINT NOT NULL, id TEXT COLLATE "C" NOT NULL, rtype TEXT NOT NULL,
    resource TEXT COLLATE "C" NOT NULL, record TEXT NOT NULL, PRIMARY KEY (source, gen, id));
CREATE TABLE IF NOT EXISTS idhost_state_grants (
    source TEXT NOT NULL, gen BIGINT NOT NULL, id TEXT COLLATE "C" NOT NULL, rtype TEXT NOT NULL,
    entitlement TEXT COLLATE "C" NOT NULL, principal TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (source, gen, id));
CREATE TABLE IF NOT EXISTS idhost_state_removed (
    source TEXT NOT NULL, gen BIGINT NOT NULL, id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (source, gen, id));
CREATE TABLE IF NOT EXISTS idhost_state_tombstones (
    source TEXT NOT NULL, id TEXT COLLATE "C" NOT NULL, type TEXT NOT NULL, sync_id TEXT NOT NULL,
    PRIMARY KEY (source, id));
CREATE TABLE IF NOT EXISTS idhost_state_checkpoints (
    source TEXT PRIMARY KEY, sync_id TEXT NOT NULL, data TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idhost_state_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL, sync_id TEXT NOT NULL, event TEXT NOT NULL, subject TEXT NOT NULL,
    at TEXT NOT NULL, changes TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idhost_state_events_source ON idhost_state_events (source, seq);
CREATE INDEX IF NOT EXISTS idhost_state_events_sync ON idhost_state_events (source, sync_id, seq);
CREATE TABLE IF NOT EXISTS idhost_state_deliveries (
    source TEXT NOT NULL, sync_id TEXT NOT NULL, sink TEXT NOT NULL, delivered_at TEXT NOT NULL,
    PRIMARY KEY (source, sync_id, sink));
CREATE TABLE IF NOT EXISTS idhost_state_positions (
    source TEXT NOT NULL, sink TEXT NOT NULL, seq BIGINT NOT NULL,
    dropped BIGINT NOT NULL DEFAULT 0, updated_at TEXT NOT NULL,
    PRIMARY KEY (source, sink));
CREATE TABLE IF NOT EXISTS idhost_state_schedule (
    source TEXT PRIMARY KEY, last_slot_ms BIGINT, incidents TEXT NOT NULL DEFAULT '{}',
    last_started_ms BIGINT);
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'idhost_state_schedule' AND column_name = 'last_started_ms') THEN
        ALTER TABLE idhost_state_schedule ADD COLUMN last_started_ms BIGINT;
        UPDATE idhost_state_schedule SET last_started_ms = last_slot_ms;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS idhost_state_audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL,
    source TEXT NOT NULL, operation TEXT NOT NULL, target TEXT NOT NULL,
    dry_run BOOLEAN NOT NULL, result TEXT NOT NULL, detail TEXT NOT NULL);
"#;

/// The lease table, as the coordinator (the daemon's lease module) and the fenced commits
/// here both need it; whichever runs first creates it, both under advisory lock 7316101. The
/// epoch column is added only when missing: `ALTER TABLE` takes an exclusive lock on the table
/// even when it changes nothing, and waiting for it behind a running fenced commit (which holds
/// a row `FOR SHARE`) while holding other locks would deadlock.
pub(crate) const LEASES_TABLE: &str = "
CREATE TABLE IF NOT EXISTS idhost_leases (
    source TEXT PRIMARY KEY,
    holder TEXT,
    expires_at TIMESTAMPTZ,
    last_slot TIMESTAMPTZ,
    incidents TEXT NOT NULL DEFAULT '{}',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    epoch BIGINT NOT NULL DEFAULT 0,
    last_started TIMESTAMPTZ);
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'idhost_leases' AND column_name = 'epoch') THEN
        ALTER TABLE idhost_leases ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'idhost_leases' AND column_name = 'last_started') THEN
        ALTER TABLE idhost_leases ADD COLUMN last_started TIMESTAMPTZ;
        UPDATE idhost_leases SET last_started = last_slot;
    END IF;
END $$;
";

/// The Postgres state database. Cheap to clone; a clone made by [`PgState::with_fence`]
/// checks its fence in every committing transaction for the fenced source.
#[derive(Clone)]
pub struct PgState {
    pool: Arc<Pool>,
    fence: Option<Arc<Fence>>,
}

impl std::fmt::Debug for PgState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgState")
            .field("db", &self.pool.db)
            .field("fence", &self.fence)
            .finish()
    }
}

/// Idle connections, and a bound on how many exist.
struct Pool {
    target: crate::pg::Target,
    /// `postgres://host:port/db`, for messages.
    db: String,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

/// A pooled connection (derefs to the client), given back when dropped (unless it broke).
pub struct Conn {
    client: Option<Client>,
    pool: Arc<Pool>,
    /// `None` for a connection of its own ([`PgState::own_conn`]).
    permit: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        // Set from construction until drop.
        #[allow(clippy::unwrap_used, reason = "present until drop")]
        self.client.as_ref().unwrap()
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        #[allow(clippy::unwrap_used, reason = "present until drop")]
        self.client.as_mut().unwrap()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && self.permit.is_some()
            && !client.is_closed()
            && let Ok(mut idle) = self.pool.idle.lock()
        {
            idle.push(client);
        }
    }
}

impl super::StateStore {
    /// Connects to the Postgres state database at `url`, creating its tables if needed.
    pub async fn connect(url: &SecretString) -> Result<Self, StateError> {
        Ok(Self::from_backend(Arc::new(PgState::connect(url).await?)))
    }
}

impl PgState {
    /// Connects to `url` and creates the tables (idempotently, under an advisory lock).
    pub async fn connect(url: &SecretString) -> Result<Self, StateError> {
        let target =
            crate::pg::parse_url(url.expose_secret()).map_err(|message| StateError::Postgres {
                db: "state_url".into(),
                message,
            })?;
        let db = crate::pg::describe(&target);
        let state = Self {
            pool: Arc::new(Pool {
                target,
                db,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(POOL)),
            }),
            fence: None,
        };
        let conn = state.conn().await?;
        conn.batch_execute(&format!("{SCHEMA}{LEASES_TABLE}COMMIT;"))
            .await
            .map_err(|e| state.pg_error(&e))?;
        Ok(state)
    }

    /// A clone whose committing operations for `fence.source` check `fence`.
    pub fn with_fence(&self, fence: Fence) -> Self {
        Self {
            pool: self.pool.clone(),
            fence: Some(Arc::new(fence)),
        }
    }

    /// `postgres://host:port/db`.
    pub fn db(&self) -> &str {
        &self.pool.db
    }

    /// A connection from the pool (a new one when none is idle).
    pub async fn conn(&self) -> Result<Conn, StateError> {
        let permit = self
            .pool
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| self.error(format!("connection pool closed: {e}")))?;
        let idle = self.pool.idle.lock().ok().and_then(|mut idle| idle.pop());
        let client = match idle {
            Some(client) if !client.is_closed() => client,
            _ => self.new_client().await?,
        };
        Ok(Conn {
            client: Some(client),
            pool: self.pool.clone(),
            permit: Some(permit),
        })
    }

    /// A connection outside the pool's bound, for the diff's long read: a diff holding a
    /// pooled connection while it waits for another to write its events could, with as many
    /// diffs as the pool has connections, wait forever. Closed when dropped (the pool keeps only connections it counts).
    pub(super) async fn own_conn(&self) -> Result<Conn, StateError> {
        Ok(Conn {
            client: Some(self.new_client().await?),
            pool: self.pool.clone(),
            permit: None,
        })
    }

    async fn new_client(&self) -> Result<Client, StateError> {
        let connect = crate::pg::connect(&self.pool.target, &self.pool.db);
        let (client, _driver) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| self.error(format!("connecting timed out after {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| self.error(crate::pg::error_text(&e)))?;
        Ok(client)
    }

    pub(super) fn error(&self, message: String) -> StateError {
        StateError::Postgres {
            db: self.pool.db.clone(),
            message,
        }
    }

    pub(super) fn pg_error(&self, err: &tokio_postgres::Error) -> StateError {
        self.error(crate::pg::error_text(err))
    }

    /// Inside `tx`, refuses to go on when this handle is fenced for `source` and the lease it
    /// names is gone. `FOR SHARE` holds the lease row until `tx` ends, so the lease cannot
    /// change hands between this check and the commit.
    pub(super) async fn check_fence(
        &self,
        tx: &Transaction<'_>,
        source: &str,
    ) -> Result<(), Failure> {
        let Some(fence) = self.fence.as_deref() else {
            return Ok(());
        };
        if fence.source != source {
            return Ok(());
        }
        let rows = tx
            .query(
                "SELECT 1 FROM idhost_leases WHERE source = $1 AND holder = $2 AND epoch = $3 FOR SHARE",
                &[&fence.source, &fence.holder, &fence.epoch],
            )
            .await?;
        if rows.is_empty() {
            return Err(Failure::State(StateError::Fenced {
                source: fence.source.clone(),
                epoch: fence.epoch,
            }));
        }
        Ok(())
    }

    /// Starts a transaction on `conn`, checking the fence for `source` first.
    pub(super) async fn begin<'c>(
        &self,
        conn: &'c mut Conn,
        source: &str,
    ) -> Result<Transaction<'c>, Failure> {
        let tx = conn.transaction().await?;
        self.check_fence(&tx, source).await?;
        Ok(tx)
    }

    /// `result`, its Postgres error told as a [`StateError`].
    pub(super) fn told<T>(&self, result: Result<T, Failure>) -> Result<T, StateError> {
        result.map_err(|failure| match failure {
            Failure::Pg(err) => self.pg_error(&err),
            Failure::State(err) => err,
        })
    }
}

/// What an operation's body fails with: Postgres, or a state error of its own (fenced,
/// unreadable); [`PgState::told`] makes it a [`StateError`].
#[derive(Debug)]
pub(super) enum Failure {
    /// The server or connection.
    Pg(tokio_postgres::Error),
    /// Anything else.
    State(StateError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(err: tokio_postgres::Error) -> Self {
        Failure::Pg(err)
    }
}

impl From<StateError> for Failure {
    fn from(err: StateError) -> Self {
        Failure::State(err)
    }
}

/// Runs `work` on a connection to the state database at `url`, on a thread of its own with a
/// runtime of its own, and waits for it: for the synchronous commands that read or write a row
/// or two (the audit trail, provisioning's pre-check, `idhost audit`), callable from inside an
/// async context or outside one.
pub fn blocking<T: Send + 'static>(
    url: &SecretString,
    work: impl FnOnce(Conn) -> futures::future::BoxFuture<'static, Result<T, tokio_postgres::Error>>
    + Send
    + 'static,
) -> Result<T, StateError> {
    let url = url.clone();
    let failed = |message: String| StateError::Postgres {
        db: "state_url".into(),
        message,
    };
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(format!("cannot start a runtime: {e}")))?;
        runtime.block_on(async move {
            let state = PgState::connect(&url).await?;
            let conn = state.conn().await?;
            work(conn).await.map_err(|e| state.pg_error(&e))
        })
    })
    .join()
    .map_err(|_| failed("the database thread panicked".into()))?
}

//! PostgreSQL: the normalized tables, every source's snapshot, and an append-only events table.
//!
//! Tables (created or migrated when the sink starts or first connects; `idhost_schema` keeps
//! the version): `resources`, `entitlements`, `grants` (each keyed by `(source, id)`, traits
//! and profile as `jsonb`), `events` (`seq bigserial` increasing in commit order, `id` unique),
//! `sync_runs`, and `snapshots` (which sync each source's snapshot is from).
//!
//! A session has its own connection, at most `max_connections` (default 8) at once per sink:
//! a daemon syncing hundreds of sources would otherwise open one connection per running sync
//! and meet the server's `max_connections` (`FATAL 53300: too many clients`); a sync beyond
//! the cap waits for a session to end. Pages are loaded with binary `COPY` into the session's
//! temporary tables (gone with the connection, so a killed sync leaves nothing behind; a
//! resumed sync is replayed from the host's state database). The commit swaps the source's
//! snapshot in ONE transaction as a diff: rows no longer listed are deleted, new and changed
//! rows are upserted, unchanged rows are left alone (a 1M-grant source with a few changes
//! rewrites a few rows, not a million, and leaves no million dead tuples to vacuum); so a
//! row's `sync_id` is the sync that last changed it, and `snapshots.sync_id` the sync the
//! source's snapshot is from. Events are appended in the same transaction under an advisory
//! lock, so `seq` order is commit order for readers tailing the table; an event delivered
//! again (same `id`) is ignored. If the database is down at any point the session fails,
//! the source's sync fails, and the previous snapshot stays as it was.
//!
//! TLS is not offered by this build: use a loopback or otherwise protected connection.

use std::sync::Arc;

use async_trait::async_trait;
use idhost_connector_sdk::Resource;
use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::sink::{Sink, SinkError, SinkSession};
use crate::config::SinkConfig;
use crate::record::{Batch, ChangeEvent, SyncRun};

/// Schema migrations, applied in order; `idhost_schema.version` is how many ran.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE IF NOT EXISTS resources (
    source text NOT NULL, id text NOT NULL, type text NOT NULL, display_name text NOT NULL,
    status text NOT NULL, parent text, "user" jsonb, "group" jsonb, app jsonb, role jsonb,
    profile jsonb NOT NULL DEFAULT '{}', sync_id text NOT NULL, PRIMARY KEY (source, id));
CREATE INDEX IF NOT EXISTS resources_type ON resources (source, type);
CREATE TABLE IF NOT EXISTS entitlements (
    source text NOT NULL, id text NOT NULL, resource text NOT NULL, slug text NOT NULL,
    display_name text NOT NULL, purpose text NOT NULL, grantable_to jsonb NOT NULL,
    sync_id text NOT NULL, PRIMARY KEY (source, id));
CREATE TABLE IF NOT EXISTS grants (
    source text NOT NULL, id text NOT NULL, entitlement text NOT NULL, principal text NOT NULL,
    sync_id text NOT NULL, PRIMARY KEY (source, id));
CREATE INDEX IF NOT EXISTS grants_principal ON grants (principal);
CREATE INDEX IF NOT EXISTS grants_entitlement ON grants (entitlement);
CREATE TABLE IF NOT EXISTS events (
    seq bigserial PRIMARY KEY, id text NOT NULL UNIQUE, source text NOT NULL, event text NOT NULL,
    subject text NOT NULL, sync_id text NOT NULL, at timestamptz NOT NULL, changes jsonb NOT NULL);
CREATE INDEX IF NOT EXISTS events_source ON events (source, seq);
CREATE TABLE IF NOT EXISTS sync_runs (
    sync_id text PRIMARY KEY, source text NOT NULL, started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL, status text NOT NULL, counts jsonb NOT NULL, error text);
CREATE TABLE IF NOT EXISTS snapshots (
    source text PRIMARY KEY, sync_id text NOT NULL, finished_at timestamptz NOT NULL);
"#];

/// The per-session temporary tables pages and events are copied into.
const STAGING: &str = r#"
CREATE TEMP TABLE IF NOT EXISTS stage_resources (
    ord bigserial, id text, type text, display_name text, status text, parent text,
    "user" text, "group" text, app text, role text, profile text);
CREATE TEMP TABLE IF NOT EXISTS stage_entitlements (
    ord bigserial, id text, resource text, slug text, display_name text, purpose text,
    grantable_to text);
CREATE TEMP TABLE IF NOT EXISTS stage_grants (ord bigserial, id text, entitlement text, principal text);
CREATE TEMP TABLE IF NOT EXISTS stage_events (
    ord bigserial, id text, event text, subject text, at text, changes text);
"#;

/// Serializes every commit's event insert, so `events.seq` grows in commit order.
const EVENTS_LOCK: i64 = 0x6964_686f_7374; // "idhost"

/// The PostgreSQL sink.
pub struct PostgresSink {
    config: SinkConfig,
    pg: crate::pg::Target,
    /// The server without credentials, for messages.
    target: String,
    /// Whether the migrations ran in this process.
    migrated: tokio::sync::Mutex<bool>,
    /// One permit per session connection.
    sessions: Arc<tokio::sync::Semaphore>,
}

/// Session connections a sink holds at once unless `max_connections` says otherwise.
const DEFAULT_MAX_CONNECTIONS: usize = 8;

impl PostgresSink {
    /// Checks the `url`, then connects and migrates. A database that is down now is reported
    /// and tried again when a sync begins, so it fails only the sources routed to it.
    pub async fn open(config: SinkConfig) -> Result<Self, SinkError> {
        let url = config.url.clone().unwrap_or_default();
        let pg = crate::pg::parse_url(&url).map_err(|message| SinkError::Other {
            sink: config.name.clone(),
            message,
        })?;
        let sessions = Arc::new(tokio::sync::Semaphore::new(
            config
                .max_connections
                .unwrap_or(DEFAULT_MAX_CONNECTIONS)
                .max(1),
        ));
        let sink = Self {
            target: crate::pg::describe(&pg),
            config,
            pg,
            migrated: tokio::sync::Mutex::new(false),
            sessions,
        };
        if let Err(err) = sink.migrate().await {
            tracing::warn!(sink = %sink.config.name, error = %err, "PostgreSQL is not reachable yet; syncs routed to it will try again");
        }
        Ok(sink)
    }

    fn error(&self, message: impl std::fmt::Display) -> SinkError {
        SinkError::Remote {
            sink: self.config.name.clone(),
            url: self.target.clone(),
            message: message.to_string(),
        }
    }

    async fn connect(&self) -> Result<Client, SinkError> {
        let (client, _driver) = crate::pg::connect(&self.pg, &self.target)
            .await
            .map_err(|e| self.error(format!("cannot connect: {}", crate::pg::error_text(&e))))?;
        Ok(client)
    }

    /// Runs the migrations not yet applied (once per process).
    async fn migrate(&self) -> Result<(), SinkError> {
        let mut migrated = self.migrated.lock().await;
        if *migrated {
            return Ok(());
        }
        let mut client = self.connect().await?;
        let fail = |e: tokio_postgres::Error| {
            self.error(format!(
                "migrating the schema: {}",
                crate::pg::error_text(&e)
            ))
        };
        let tx = client.transaction().await.map_err(fail)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&(EVENTS_LOCK + 1)])
            .await
            .map_err(fail)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS idhost_schema (version integer NOT NULL)")
            .await
            .map_err(fail)?;
        let version: i32 = tx
            .query_opt("SELECT version FROM idhost_schema", &[])
            .await
            .map_err(fail)?
            .map_or(0, |row| row.get(0));
        let applied = usize::try_from(version).unwrap_or(0);
        for step in MIGRATIONS.iter().skip(applied) {
            tx.batch_execute(step).await.map_err(fail)?;
        }
        let latest = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
        if version == 0 {
            tx.execute(
                "INSERT INTO idhost_schema (version) VALUES ($1)",
                &[&latest],
            )
            .await
            .map_err(fail)?;
        } else if version < latest {
            tx.execute("UPDATE idhost_schema SET version = $1", &[&latest])
                .await
                .map_err(fail)?;
        } else if version > latest {
            return Err(self.error(format!(
                "the database schema is version {version}, newer than this idhost knows ({latest}); upgrade idhost"
            )));
        }
        tx.commit().await.map_err(fail)?;
        *migrated = true;
        Ok(())
    }
}

#[async_trait]
impl Sink for PostgresSink {
    fn config(&self) -> &SinkConfig {
        &self.config
    }

    async fn begin(&self, source: &str, sync_id: &str) -> Result<Box<dyn SinkSession>, SinkError> {
        let permit = match self.sessions.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                tracing::debug!(sink = %self.config.name, source, "every PostgreSQL session connection is in use; waiting for one");
                self.sessions
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| self.error("the sink is closing"))?
            }
        };
        self.migrate().await?;
        let client = self.connect().await?;
        client.batch_execute(STAGING).await.map_err(|e| {
            self.error(format!(
                "creating staging tables: {}",
                crate::pg::error_text(&e)
            ))
        })?;
        Ok(Box::new(PostgresSession {
            _permit: permit,
            client,
            shared: Arc::new(Shared {
                sink: self.config.name.clone(),
                target: self.target.clone(),
            }),
            source: source.to_owned(),
            sync_id: sync_id.to_owned(),
        }))
    }
}

struct Shared {
    sink: String,
    target: String,
}

struct PostgresSession {
    /// Held while the session's connection is open (dropped with it).
    _permit: tokio::sync::OwnedSemaphorePermit,
    client: Client,
    shared: Arc<Shared>,
    source: String,
    sync_id: String,
}

fn json_or_null<T: serde::Serialize>(value: &Option<T>) -> Option<String> {
    value.as_ref().and_then(|v| serde_json::to_string(v).ok())
}

fn resource_row(r: &Resource) -> [Option<String>; 10] {
    [
        Some(r.id.clone()),
        Some(r.rtype.clone()),
        Some(r.display_name.clone()),
        Some(r.status.as_str().to_owned()),
        r.parent.clone(),
        json_or_null(&r.user),
        json_or_null(&r.group),
        json_or_null(&r.app),
        json_or_null(&r.role),
        Some(serde_json::to_string(&r.profile).unwrap_or_else(|_| "{}".into())),
    ]
}

impl PostgresSession {
    fn error(&self, what: &str, err: &tokio_postgres::Error) -> SinkError {
        SinkError::Remote {
            sink: self.shared.sink.clone(),
            url: self.shared.target.clone(),
            message: format!(
                "{what} (source `{}`): {}",
                self.source,
                crate::pg::error_text(err)
            ),
        }
    }

    /// COPYs `rows` (each `columns.len()` text values) into temporary table `table`.
    async fn copy<const N: usize>(
        &self,
        table: &str,
        columns: &str,
        rows: impl Iterator<Item = [Option<String>; N]>,
    ) -> Result<(), SinkError> {
        let what = format!("loading {table}");
        let sink = self
            .client
            .copy_in(&format!("COPY {table} ({columns}) FROM STDIN BINARY"))
            .await
            .map_err(|e| self.error(&what, &e))?;
        let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT; N]);
        futures::pin_mut!(writer);
        for row in rows {
            let values: Vec<&(dyn ToSql + Sync)> =
                row.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            writer
                .as_mut()
                .write(&values)
                .await
                .map_err(|e| self.error(&what, &e))?;
        }
        writer.finish().await.map_err(|e| self.error(&what, &e))?;
        Ok(())
    }
}

/// Upserts the `sync_runs` row of `run`.
async fn record_run(
    client: &impl tokio_postgres::GenericClient,
    run: &SyncRun,
) -> Result<(), tokio_postgres::Error> {
    {
        let counts = serde_json::to_string(&run.counts).unwrap_or_else(|_| "{}".into());
        client
            .execute(
                "INSERT INTO sync_runs (sync_id, source, started_at, finished_at, status, counts, error)
                 VALUES ($1, $2, $3::text::timestamptz, $4::text::timestamptz, $5, $6::text::jsonb, $7)
                 ON CONFLICT (sync_id) DO UPDATE SET started_at = EXCLUDED.started_at,
                   finished_at = EXCLUDED.finished_at, status = EXCLUDED.status,
                   counts = EXCLUDED.counts, error = EXCLUDED.error",
                &[
                    &run.sync_id,
                    &run.source,
                    &run.started_at,
                    &run.finished_at,
                    &run.status.as_str(),
                    &counts,
                    &run.error,
                ],
            )
            .await
            .map(drop)
    }
}

/// The commit's statements and how many of `$1` source, `$2` sync id each takes. Each table
/// is swapped as a diff: delete what is gone, then upsert only the staged rows that are new or
/// differ (found by a join, so the million unchanged rows of a large source are read, not
/// written).
const SWAP: [(&str, usize); 6] = [
    (
        r#"DELETE FROM resources t WHERE t.source = $1
           AND NOT EXISTS (SELECT 1 FROM stage_resources s WHERE s.id = t.id)"#,
        1,
    ),
    (
        r#"INSERT INTO resources (source, id, type, display_name, status, parent, "user", "group", app, role, profile, sync_id)
           SELECT $1, s.id, s.type, s.display_name, s.status, s.parent, s."user", s."group", s.app, s.role, s.profile, $2
           FROM (SELECT DISTINCT ON (id) id, type, display_name, status, parent, "user"::jsonb AS "user",
                   "group"::jsonb AS "group", app::jsonb AS app, role::jsonb AS role, profile::jsonb AS profile
                 FROM stage_resources ORDER BY id, ord DESC) s
           LEFT JOIN resources t ON t.source = $1 AND t.id = s.id
           WHERE t.id IS NULL
              OR (t.type, t.display_name, t.status, t.parent, t."user", t."group", t.app, t.role, t.profile)
                 IS DISTINCT FROM (s.type, s.display_name, s.status, s.parent, s."user", s."group", s.app, s.role, s.profile)
           ON CONFLICT (source, id) DO UPDATE SET type = EXCLUDED.type, display_name = EXCLUDED.display_name,
             status = EXCLUDED.status, parent = EXCLUDED.parent, "user" = EXCLUDED."user",
             "group" = EXCLUDED."group", app = EXCLUDED.app, role = EXCLUDED.role,
             profile = EXCLUDED.profile, sync_id = EXCLUDED.sync_id"#,
        2,
    ),
    (
        r#"DELETE FROM entitlements t WHERE t.source = $1
           AND NOT EXISTS (SELECT 1 FROM stage_entitlements s WHERE s.id = t.id)"#,
        1,
    ),
    (
        r#"INSERT INTO entitlements (source, id, resource, slug, display_name, purpose, grantable_to, sync_id)
           SELECT $1, s.id, s.resource, s.slug, s.display_name, s.purpose, s.grantable_to, $2
           FROM (SELECT DISTINCT ON (id) id, resource, slug, display_name, purpose, grantable_to::jsonb AS grantable_to
                 FROM stage_entitlements ORDER BY id, ord DESC) s
           LEFT JOIN entitlements t ON t.source = $1 AND t.id = s.id
           WHERE t.id IS NULL
              OR (t.resource, t.slug, t.display_name, t.purpose, t.grantable_to)
                 IS DISTINCT FROM (s.resource, s.slug, s.display_name, s.purpose, s.grantable_to)
           ON CONFLICT (source, id) DO UPDATE SET resource = EXCLUDED.resource, slug = EXCLUDED.slug,
             display_name = EXCLUDED.display_name, purpose = EXCLUDED.purpose,
             grantable_to = EXCLUDED.grantable_to, sync_id = EXCLUDED.sync_id"#,
        2,
    ),
    (
        r#"DELETE FROM grants t WHERE t.source = $1
           AND NOT EXISTS (SELECT 1 FROM stage_grants s WHERE s.id = t.id)"#,
        1,
    ),
    (
        r#"INSERT INTO grants (source, id, entitlement, principal, sync_id)
           SELECT $1, s.id, s.entitlement, s.principal, $2
           FROM (SELECT DISTINCT ON (id) id, entitlement, principal FROM stage_grants ORDER BY id, ord DESC) s
           LEFT JOIN grants t ON t.source = $1 AND t.id = s.id
           WHERE t.id IS NULL OR (t.entitlement, t.principal) IS DISTINCT FROM (s.entitlement, s.principal)
           ON CONFLICT (source, id) DO UPDATE SET entitlement = EXCLUDED.entitlement,
             principal = EXCLUDED.principal, sync_id = EXCLUDED.sync_id"#,
        2,
    ),
];

#[async_trait]
impl SinkSession for PostgresSession {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if !batch.resources.is_empty() {
            self.copy(
                "stage_resources",
                r#"id, type, display_name, status, parent, "user", "group", app, role, profile"#,
                batch.resources.iter().map(resource_row),
            )
            .await?;
        }
        if !batch.entitlements.is_empty() {
            self.copy(
                "stage_entitlements",
                "id, resource, slug, display_name, purpose, grantable_to",
                batch.entitlements.iter().map(|e| {
                    let purpose = serde_json::to_value(e.purpose)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned));
                    [
                        Some(e.id.clone()),
                        Some(e.resource.clone()),
                        Some(e.slug.clone()),
                        Some(e.display_name.clone()),
                        purpose,
                        serde_json::to_string(&e.grantable_to).ok(),
                    ]
                }),
            )
            .await?;
        }
        if !batch.grants.is_empty() {
            self.copy(
                "stage_grants",
                "id, entitlement, principal",
                batch.grants.iter().map(|g| {
                    [
                        Some(g.id.clone()),
                        Some(g.entitlement.clone()),
                        Some(g.principal.clone()),
                    ]
                }),
            )
            .await?;
        }
        Ok(())
    }

    async fn write_events(&mut self, events: &[ChangeEvent]) -> Result<(), SinkError> {
        self.copy(
            "stage_events",
            "id, event, subject, at, changes",
            events.iter().map(|e| {
                [
                    Some(e.id.clone()),
                    Some(e.event.as_str().to_owned()),
                    Some(e.subject.clone()),
                    Some(e.at.clone()),
                    Some(e.changes.to_string()),
                ]
            }),
        )
        .await
    }

    async fn commit(mut self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        let (source, sync_id) = (self.source.clone(), self.sync_id.clone());
        let result = async {
            let tx = self.client.transaction().await?;
            // Sorting a large source's staged rows by id happens in memory.
            // Statistics let the planner hash-join the staged rows against the table.
            tx.batch_execute(
                "SET LOCAL work_mem = '256MB'; ANALYZE stage_resources; ANALYZE stage_entitlements;
                 ANALYZE stage_grants;",
            )
            .await?;
            let params: [&(dyn ToSql + Sync); 2] = [&source, &sync_id];
            for (statement, used) in SWAP {
                tx.execute(statement, &params[..used]).await?;
            }
            tx.execute(
                "INSERT INTO snapshots (source, sync_id, finished_at) VALUES ($1, $2, $3::text::timestamptz)
                 ON CONFLICT (source) DO UPDATE SET sync_id = EXCLUDED.sync_id, finished_at = EXCLUDED.finished_at",
                &[&source, &sync_id, &run.finished_at],
            )
            .await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&EVENTS_LOCK])
                .await?;
            tx.execute(
                "INSERT INTO events (id, source, event, subject, sync_id, at, changes)
                 SELECT id, $1, event, subject, $2, at::timestamptz, changes::jsonb
                 FROM stage_events ORDER BY ord
                 ON CONFLICT (id) DO NOTHING",
                &[&source, &sync_id],
            )
            .await?;
            record_run(&tx, run).await?;
            tx.commit().await
        }
        .await;
        result.map_err(|e| self.error("committing the snapshot", &e))
    }

    async fn abort(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        // The staged rows are temporary tables: they go with the connection.
        record_run(&self.client, run)
            .await
            .map_err(|e| self.error("recording the failed run", &e))
    }
}

//! Several replicas, one Postgres: each source is acted for by the one replica holding its
//! lease (a row of `idhost_leases` with a holder, an expiry that the holder renews, and an
//! epoch). A replica that dies stops renewing; once its leases expire another replica takes the
//! sources over and goes on from the last slot the table records, so every scheduled sync runs
//! once.
//!
//! Safety rests on Postgres, not on clocks:
//! - **One clock.** Expiry is `expires_at`, set and compared with the database's `now()` in the
//!   same statements that grant, renew and claim; replicas' wall clocks never enter it, so skew
//!   between replicas cannot make two of them think they hold a source.
//! - **Epochs (fencing tokens).** Every grant — each time a source is taken, by another replica
//!   or by the same one after its lease lapsed — sets `epoch = epoch + 1` in the granting
//!   `UPDATE` and hands the new epoch back (`RETURNING`). Renewals keep the epoch. Every grant,
//!   not only a change of holder, bumps it: a replica that lost a lease and took it back must
//!   still refuse the commits of the sync it started under the old grant (cancelled on the
//!   lapse, perhaps still winding down).
//! - **Fenced commits.** A sync runs with the state store fenced by (source, holder, epoch)
//!   (`crate::state::Fence`): each commit checks the lease row in its own transaction
//!   `FOR SHARE`, so a grant (which updates the row) waits for a commit under way and every
//!   commit after the grant is refused. Slot claims check holder, epoch and expiry in the one
//!   `UPDATE` that records the slot. Before each sink commit the sync checks, on the database,
//!   that its grant is still current and unexpired ([`PgCoordinator::check`]); what remains is
//!   a sink's own commit racing a takeover that happens between that check and the sink's
//!   commit (a replica paused exactly there): the sink may then receive a change twice, under
//!   two event ids, and the delivery record of the stale sync is refused.
//! - **The remaining clock** is this replica's monotonic clock, used only to stop early: a
//!   lease counts as valid here until three quarters of `lease_secs` after the renewal that
//!   granted it was *sent* (the database's expiry, set when the statement ran, comes later),
//!   and a running sync is cancelled the moment that passes. It bounds how long a healthy
//!   replica works on after losing its database; it is not what keeps two replicas apart —
//!   the epoch is. A paused process (SIGSTOP, a VM freeze) notices nothing until it runs
//!   again, which is why the commits, not the pauses, are fenced.
//!
//! Balance: replicas announce themselves in `idhost_replicas`; each aims at its fair share
//! (sources ÷ live replicas, rounded up), releases surplus sources while they are idle, and takes
//! a free source beyond its share only when nobody took it for a whole lease.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::seq::SliceRandom as _;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::{Mutex, RwLock, watch};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::store::{ScheduleStore, SourceState, StoreError};
use crate::metrics::DaemonMetrics;
use crate::notify::Incidents;

/// A lease this replica holds: until when it may act on it (its own monotonic clock, see the
/// module docs) and the epoch of the grant, which fences the commits of the syncs it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    /// Valid here until then.
    pub(crate) until: Instant,
    /// `idhost_leases.epoch` of the grant.
    pub(crate) epoch: i64,
}

/// The lease of a source here; `None` when this replica does not hold it.
pub(crate) type Validity = Option<Grant>;

/// Whether `validity` holds at `now`.
pub(crate) fn holds(validity: &Validity, now: Instant) -> bool {
    validity.is_some_and(|g| g.until > now)
}

/// One source's lease as the scheduler sees it.
pub(crate) struct SourceLease {
    /// Until when the lease is valid here.
    pub(crate) valid: watch::Sender<Validity>,
    /// Held by the scheduler while it claims and runs a slot: the coordinator releases a
    /// surplus source only when it can take this lock, so it never cuts a sync short.
    pub(crate) busy: Arc<Mutex<()>>,
}

impl SourceLease {
    /// A lease that never lapses (one replica, no coordination).
    pub(crate) fn forever() -> Self {
        let far = Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600);
        Self {
            valid: watch::Sender::new(Some(Grant {
                until: far,
                epoch: 0,
            })),
            busy: Arc::default(),
        }
    }

    /// A lease not held yet.
    pub(crate) fn none() -> Self {
        Self {
            valid: watch::Sender::new(None),
            busy: Arc::default(),
        }
    }
}

/// The leases of every scheduled source, by name.
pub(crate) type Leases = Arc<BTreeMap<String, Arc<SourceLease>>>;

/// Created under the coordinator's advisory lock and the shared state database's (which
/// creates `idhost_leases` too, for its fenced commits), so neither races the other; the lease
/// table itself is declared once, beside the fenced commits that read it.
fn schema() -> String {
    format!(
        "BEGIN;
SELECT pg_advisory_xact_lock(7316100);
SELECT pg_advisory_xact_lock(7316101);
{}
CREATE TABLE IF NOT EXISTS idhost_replicas (
    holder TEXT PRIMARY KEY,
    seen_at TIMESTAMPTZ NOT NULL);
COMMIT;",
        crate::state::postgres::LEASES_TABLE
    )
}

/// The coordinator: renews and balances leases, and is the schedule store under coordination.
pub(crate) struct PgCoordinator {
    url: SecretString,
    holder: String,
    lease: Duration,
    client: RwLock<Option<Arc<Client>>>,
    schema_ready: AtomicBool,
    leases: Leases,
    metrics: Arc<DaemonMetrics>,
}

fn pg(context: &str, err: &dyn crate::pg::ErrorText) -> StoreError {
    StoreError::Postgres {
        message: format!("{context}: {}", crate::pg::error_text(err)),
    }
}

impl PgCoordinator {
    pub(crate) fn new(
        url: SecretString,
        holder: String,
        lease: Duration,
        leases: Leases,
        metrics: Arc<DaemonMetrics>,
    ) -> Self {
        Self {
            url,
            holder,
            lease,
            client: RwLock::new(None),
            schema_ready: AtomicBool::new(false),
            leases,
            metrics,
        }
    }

    /// The replica's holder id.
    pub(crate) fn holder(&self) -> &str {
        &self.holder
    }

    /// A live connection, opened (with the schema) on first use and after a loss.
    pub(crate) async fn client(&self) -> Result<Arc<Client>, StoreError> {
        if let Some(client) = self.client.read().await.as_ref()
            && !client.is_closed()
        {
            return Ok(client.clone());
        }
        let mut slot = self.client.write().await;
        if let Some(client) = slot.as_ref()
            && !client.is_closed()
        {
            return Ok(client.clone());
        }
        let config = crate::pg::parse_url(self.url.expose_secret())
            .map_err(|message| StoreError::Postgres { message })?;
        let connect = crate::pg::connect(&config, "coordination database");
        let (client, _driver) = tokio::time::timeout(self.lease / 4, connect)
            .await
            .map_err(|_| StoreError::Postgres {
                message: format!("connecting timed out after {:?}", self.lease / 4),
            })?
            .map_err(|e| pg("connecting", &e))?;
        if !self.schema_ready.load(Ordering::Relaxed) {
            client
                .batch_execute(&schema())
                .await
                .map_err(|e| pg("creating idhost_leases", &e))?;
            self.schema_ready.store(true, Ordering::Relaxed);
        }
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    /// Renews and balances leases every quarter lease until `stop`, then releases them all.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.lease / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            let started = Instant::now();
            match tokio::time::timeout(self.lease / 4, self.pass(started)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "lease renewal failed"),
                Err(_) => tracing::warn!("lease renewal timed out"),
            }
            self.publish_metrics();
        }
    }

    fn publish_metrics(&self) {
        let now = Instant::now();
        for (name, lease) in self.leases.iter() {
            let held = holds(&lease.valid.borrow(), now);
            self.metrics.set_lease(name, Some(held));
        }
    }

    fn valid_after(&self, sent: Instant, epoch: i64) -> Validity {
        Some(Grant {
            until: sent + self.lease * 3 / 4,
            epoch,
        })
    }

    async fn pass(&self, sent: Instant) -> Result<(), StoreError> {
        let client = self.client().await?;
        let secs = self.lease_secs();
        client
            .execute(
                "INSERT INTO idhost_replicas (holder, seen_at) VALUES ($1, now())
                 ON CONFLICT (holder) DO UPDATE SET seen_at = now()",
                &[&self.holder],
            )
            .await
            .map_err(|e| pg("announcing this replica", &e))?;
        let live: i64 = client
            .query_one(
                "SELECT count(*) FROM idhost_replicas WHERE seen_at > now() - make_interval(secs => $1::float8)",
                &[&secs],
            )
            .await
            .map_err(|e| pg("counting replicas", &e))?
            .get(0);
        // Renew everything held, in one statement; a row whose epoch moved on (granted again
        // since) is not ours any more, whatever its holder says.
        let (held, epochs): (Vec<String>, Vec<i64>) = self
            .leases
            .iter()
            .filter_map(|(n, l)| l.valid.borrow().map(|g| (n.clone(), g.epoch)))
            .unzip();
        let renewed: Vec<String> = client
            .query(
                "UPDATE idhost_leases l SET expires_at = now() + make_interval(secs => $3::float8), updated_at = now()
                 FROM unnest($2::text[], $4::int8[]) AS h(source, epoch)
                 WHERE l.source = h.source AND l.epoch = h.epoch AND l.holder = $1 AND l.expires_at > now()
                 RETURNING l.source",
                &[&self.holder, &held, &secs, &epochs],
            )
            .await
            .map_err(|e| pg("renewing leases", &e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (name, epoch) in held.iter().zip(&epochs) {
            if let Some(lease) = self.leases.get(name) {
                if renewed.contains(name) {
                    lease.valid.send_replace(self.valid_after(sent, *epoch));
                } else {
                    tracing::warn!(source = %name, "lost the lease of this source");
                    lease.valid.send_replace(None);
                }
            }
        }
        let total = self.leases.len() as i64;
        let share = usize::try_from((total + live.max(1) - 1) / live.max(1)).unwrap_or(1);
        let mut mine = renewed.len();
        if mine > share {
            self.release_surplus(&client, &renewed, mine - share).await;
            mine = share;
        }
        let mut free: Vec<&String> = self
            .leases
            .iter()
            .filter(|(n, _)| !renewed.contains(n))
            .map(|(n, _)| n)
            .collect();
        free.shuffle(&mut rand::thread_rng());
        for name in free {
            // Within the fair share take any lapsed lease; beyond it only one nobody took for
            // a whole lease (so no source stays orphaned when replicas disagree on the count).
            let grace = if mine < share { 0.0 } else { secs };
            let got = client
                .query_opt(
                    "INSERT INTO idhost_leases (source, holder, expires_at, epoch) VALUES ($1, $2, now() + make_interval(secs => $3::float8), 1)
                     ON CONFLICT (source) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
                         epoch = idhost_leases.epoch + 1, updated_at = now()
                     WHERE (idhost_leases.holder IS NULL AND idhost_leases.updated_at < now() - make_interval(secs => $4::float8))
                        OR idhost_leases.expires_at < now() - make_interval(secs => $4::float8)
                     RETURNING epoch",
                    &[name, &self.holder, &secs, &grace],
                )
                .await
                .map_err(|e| pg("taking a lease", &e))?;
            if let Some(row) = got {
                let epoch: i64 = row.get(0);
                if let Some(lease) = self.leases.get(name) {
                    tracing::info!(source = %name, replica = %self.holder, epoch, "took the lease of this source");
                    lease.valid.send_replace(self.valid_after(sent, epoch));
                }
                mine += 1;
            }
        }
        Ok(())
    }

    /// Gives up to `n` idle sources back so replicas with fewer can take them.
    async fn release_surplus(&self, client: &Client, held: &[String], mut n: usize) {
        for name in held {
            if n == 0 {
                break;
            }
            let Some(lease) = self.leases.get(name) else {
                continue;
            };
            let Ok(_idle) = lease.busy.clone().try_lock_owned() else {
                continue;
            };
            lease.valid.send_replace(None);
            match client
                .execute(
                    "UPDATE idhost_leases SET holder = NULL, expires_at = NULL, updated_at = now() WHERE source = $1 AND holder = $2",
                    &[name, &self.holder],
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(source = %name, "released the lease of this source to balance replicas");
                    n -= 1;
                }
                Err(err) => tracing::warn!(source = %name, error = %err, "releasing a lease failed; it will expire"),
            }
        }
    }

    /// Gives every lease back (graceful stop), so another replica takes over at once.
    pub(crate) async fn release_all(&self) {
        for lease in self.leases.values() {
            lease.valid.send_replace(None);
        }
        let release = async {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE idhost_leases SET holder = NULL, expires_at = NULL, updated_at = now() - make_interval(secs => $2::float8) WHERE holder = $1",
                    &[&self.holder, &self.lease_secs()],
                )
                .await
                .map_err(|e| pg("releasing leases", &e))?;
            client
                .execute(
                    "DELETE FROM idhost_replicas WHERE holder = $1",
                    &[&self.holder],
                )
                .await
                .map_err(|e| pg("leaving the replica list", &e))
        };
        match tokio::time::timeout(Duration::from_secs(5), release).await {
            Ok(Ok(_)) => tracing::info!("released every lease"),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "releasing leases failed; they will expire")
            }
            Err(_) => tracing::warn!("releasing leases timed out; they will expire"),
        }
    }
}

#[async_trait]
impl ScheduleStore for PgCoordinator {
    async fn load(&self, source: &str) -> Result<SourceState, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT (extract(epoch FROM last_slot) * 1000)::int8, (extract(epoch FROM last_started) * 1000)::int8,
                        incidents FROM idhost_leases WHERE source = $1",
                &[&source],
            )
            .await
            .map_err(|e| pg("reading the schedule", &e))?;
        Ok(row.map_or_else(SourceState::default, |r| SourceState {
            last_slot: r.get(0),
            last_started: r.get(1),
            incidents: Incidents::from_json(r.get::<_, Option<&str>>(2)),
        }))
    }

    /// Claims `slot` under the grant `epoch`. Claiming the slot already claimed under the
    /// same grant succeeds again: only this holder claims under its epoch, so that slot is its
    /// own claim whose answer was lost (a timeout, a pause) and has not run yet (the scheduler
    /// moves past a slot once it ran it).
    async fn claim(&self, source: &str, slot: i64, epoch: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let ms = slot as f64;
        let n = client
            .execute(
                "UPDATE idhost_leases SET last_slot = to_timestamp($3::float8 / 1000), updated_at = now()
                 WHERE source = $1 AND holder = $2 AND epoch = $4 AND expires_at > now()
                   AND (last_slot IS NULL OR last_slot <= to_timestamp($3::float8 / 1000))",
                &[&source, &self.holder, &ms, &epoch],
            )
            .await
            .map_err(|e| pg("claiming a slot", &e))?;
        Ok(n == 1)
    }

    async fn started(&self, source: &str, slot: i64, epoch: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        let ms = slot as f64;
        client
            .execute(
                "UPDATE idhost_leases SET last_started = to_timestamp($3::float8 / 1000)
                 WHERE source = $1 AND holder = $2 AND epoch = $4",
                &[&source, &self.holder, &ms, &epoch],
            )
            .await
            .map_err(|e| pg("recording a slot's start", &e))
            .map(drop)
    }

    async fn save_incidents(&self, source: &str, incidents: &Incidents) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE idhost_leases SET incidents = $3 WHERE source = $1 AND holder = $2",
                &[&source, &self.holder, &incidents.to_json()],
            )
            .await
            .map_err(|e| pg("saving incidents", &e))
            .map(drop)
    }
}

#[async_trait]
impl crate::sync::LeaseCheck for PgCoordinator {
    /// Whether `fence` is still the current, unexpired grant of its source, by the database's
    /// clock (the row read `FOR SHARE`, so a grant under way is waited for, not raced).
    async fn check(&self, fence: &crate::state::Fence) -> Result<bool, String> {
        let client = self.client().await.map_err(|e| e.to_string())?;
        let row = client
            .query_opt(
                "SELECT 1 FROM idhost_leases WHERE source = $1 AND holder = $2 AND epoch = $3
                   AND expires_at > now() FOR SHARE",
                &[&fence.source, &fence.holder, &fence.epoch],
            )
            .await
            .map_err(|e| pg("checking the lease before a sink commit", &e).to_string())?;
        Ok(row.is_some())
    }
}

/// This replica's id in the lease table: the pod name (`HOSTNAME`) or host name, the process id
/// and a random suffix, so a restarted pod is a new holder.
pub(crate) fn replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "idhost".to_owned());
    let suffix: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(6)
        .collect();
    format!("{host}-{}-{suffix}", std::process::id())
}

#[cfg(test)]
mod tests {
    //! The epoch against a real Postgres (127.0.0.1:5432, database `test`, trust auth); each
    //! test prints "SKIPPED: ..." and passes when it does not answer.

    use super::*;
    use crate::sync::LeaseCheck as _;

    const PG: &str = "postgres://postgres@127.0.0.1:5432/test";

    fn coordinator(holder: &str, source: &str) -> (Arc<PgCoordinator>, Arc<SourceLease>) {
        let lease = Arc::new(SourceLease::none());
        let leases = Arc::new(BTreeMap::from([(source.to_owned(), lease.clone())]));
        let c = PgCoordinator::new(
            SecretString::from(PG.to_owned()),
            holder.to_owned(),
            Duration::from_secs(3),
            leases,
            Arc::new(DaemonMetrics::default()),
        );
        (Arc::new(c), lease)
    }

    fn unique(prefix: &str) -> String {
        format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
    }

    async fn expire(c: &PgCoordinator, source: &str) {
        let client = c.client().await.expect("client");
        client
            .execute(
                "UPDATE idhost_leases SET expires_at = now() - interval '1 hour' WHERE source = $1",
                &[&source],
            )
            .await
            .expect("expire");
    }

    fn fence(c: &PgCoordinator, source: &str, epoch: i64) -> crate::state::Fence {
        crate::state::Fence {
            source: source.to_owned(),
            holder: c.holder().to_owned(),
            epoch,
        }
    }

    #[tokio::test]
    async fn every_grant_bumps_the_epoch_and_only_the_current_grant_passes_the_check() {
        let source = unique("epoch-src");
        let (a, lease_a) = coordinator(&unique("a"), &source);
        if a.client().await.is_err() {
            println!("SKIPPED: Postgres does not answer on 127.0.0.1:5432 (database test)");
            return;
        }
        let (b, lease_b) = coordinator(&unique("b"), &source);
        a.pass(Instant::now()).await.expect("pass a");
        let first = lease_a.valid.borrow().expect("a holds the new source");
        assert_eq!(first.epoch, 1, "a new row starts at epoch 1");
        assert!(a.check(&fence(&a, &source, 1)).await.expect("check"));

        // A renewal keeps the epoch.
        a.pass(Instant::now()).await.expect("renew a");
        assert_eq!(lease_a.valid.borrow().map(|g| g.epoch), Some(1));

        // A paused holder: its lease expires and another replica takes the source.
        expire(&a, &source).await;
        assert!(
            !a.check(&fence(&a, &source, 1)).await.expect("check"),
            "an expired grant does not pass, even before anyone took it"
        );
        b.pass(Instant::now()).await.expect("pass b");
        let second = lease_b.valid.borrow().expect("b took the source");
        assert_eq!(second.epoch, 2, "the takeover is a new grant");
        assert!(b.check(&fence(&b, &source, 2)).await.expect("check"));
        assert!(!a.check(&fence(&a, &source, 1)).await.expect("check"));

        // The old holder wakes up: its renewal fails (another holder, another epoch).
        a.pass(Instant::now()).await.expect("pass a again");
        assert!(
            lease_a.valid.borrow().is_none(),
            "the old holder knows it lost the lease"
        );
        assert!(
            a.claim(&source, 1, 1).await.is_ok_and(|claimed| !claimed),
            "a stale grant cannot claim a slot"
        );

        // The same holder taking the source again gets a new epoch too: the sync it began
        // under the old grant stays fenced off.
        expire(&b, &source).await;
        a.release_all().await;
        b.pass(Instant::now()).await.expect("pass b again");
        let third = lease_b.valid.borrow().expect("b took it again");
        assert_eq!(third.epoch, 3);
        assert!(!b.check(&fence(&b, &source, 2)).await.expect("check"));
        assert!(b.claim(&source, 1, 3).await.expect("claim"));

        let client = b.client().await.expect("client");
        let _ = client
            .execute("DELETE FROM idhost_leases WHERE source = $1", &[&source])
            .await;
        let _ = client
            .execute(
                "DELETE FROM idhost_replicas WHERE holder = ANY($1)",
                &[&vec![a.holder().to_owned(), b.holder().to_owned()]],
            )
            .await;
    }
}

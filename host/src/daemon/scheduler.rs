//! One source under `idhost run`: wait for its lease, wait for its next slot (plus jitter), claim
//! the slot, sync, and turn the outcome into metrics and incidents. One task per source, and the
//! sync runs inside it, so a source never has two syncs at once in one replica; the lease (see
//! `lease`) makes that hold across replicas.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::lease::{SourceLease, Validity, holds};
use super::slots::{self, Due};
use super::store::ScheduleStore;
use crate::config::{NotifyEvent, SourceConfig};
use crate::metrics::DaemonMetrics;
use crate::notify::{Incidents, Notification, Notifier};
use crate::record::RunStatus;
use crate::schedule::Schedule;
use crate::state::Fence;
use crate::sync::{LeaseCheck, SyncEnv, SyncLease, SyncOptions};

/// What every source's scheduler shares.
pub(crate) struct Shared {
    /// The sync environment (each sync gets its own cancellation token).
    pub(crate) env: SyncEnv,
    /// Schedule position and incidents.
    pub(crate) store: Arc<dyn ScheduleStore>,
    /// Counters.
    pub(crate) metrics: Arc<DaemonMetrics>,
    /// Notices.
    pub(crate) notifier: Arc<Notifier>,
    /// This replica's id.
    pub(crate) replica: String,
    /// Graceful stop: start no new sync.
    pub(crate) stop: CancellationToken,
    /// Hard stop: cancel running syncs (they abort or checkpoint between pages).
    pub(crate) hard: CancellationToken,
    /// Most jitter before a slot.
    pub(crate) max_jitter: Duration,
    /// The coordinator, asked before each sink commit whether a sync's lease still holds
    /// (`None` without `[coordination]`).
    pub(crate) lease_check: Option<Arc<dyn LeaseCheck>>,
}

/// Resolves when the lease is not (or no longer) valid.
async fn lapsed(rx: &mut watch::Receiver<Validity>) {
    loop {
        let grant = *rx.borrow_and_update();
        match grant {
            Some(g) if g.until > Instant::now() => {
                tokio::select! {
                    () = tokio::time::sleep_until(g.until.into()) => {
                        // Renewed meanwhile under the same grant: still held. A new epoch is
                        // a new grant: the sync of the old one ends here.
                        let now = *rx.borrow();
                        if !holds(&now, Instant::now()) || now.map(|n| n.epoch) != Some(g.epoch) {
                            return;
                        }
                    }
                    changed = rx.changed() => {
                        if changed.is_err() || rx.borrow().map(|n| n.epoch) != Some(g.epoch) {
                            return;
                        }
                    }
                }
            }
            _ => return,
        }
    }
}

/// Resolves when the lease is valid.
async fn held(rx: &mut watch::Receiver<Validity>) {
    loop {
        if holds(&rx.borrow_and_update(), Instant::now()) {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Retries a store call with a short pause until it works or the daemon stops.
async fn persist<T, F, Fut>(shared: &Shared, what: &str, source: &str, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, super::store::StoreError>>,
{
    let mut pause = Duration::from_millis(250);
    loop {
        match f().await {
            Ok(v) => return Some(v),
            Err(err) => {
                tracing::warn!(source = %source, error = %err, "{what} failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = shared.stop.cancelled() => return None,
                }
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Runs `source` on `schedule` until the daemon stops.
pub(crate) async fn run_source(
    shared: Arc<Shared>,
    source: SourceConfig,
    schedule: Schedule,
    lease: Arc<SourceLease>,
) {
    let mut valid = lease.valid.subscribe();
    let name = source.name.clone();
    loop {
        tokio::select! {
            () = held(&mut valid) => {}
            () = shared.stop.cancelled() => return,
        }
        // What is loaded now holds for this grant only: under a new epoch another replica may
        // have run slots meanwhile, so the schedule is read again.
        let acting = valid.borrow().map(|g| g.epoch);
        let Some(state) = persist(&shared, "reading the schedule", &name, || {
            shared.store.load(&name)
        })
        .await
        else {
            return;
        };
        let mut claimed = state.last_slot;
        // No start recorded apart from the claim (a first claim whose replica died): nothing
        // was due before a first slot, so nothing is left to report.
        let mut started = state.last_started.or(claimed);
        let mut incidents = state.incidents;
        // Act for the source while the lease holds.
        loop {
            let due = slots::next_due_after(&schedule, started, claimed, crate::clock::now_ms());
            let wait = Duration::from_millis(
                u64::try_from(due.slot - crate::clock::now_ms()).unwrap_or(0),
            ) + slots::jitter(&schedule, shared.max_jitter);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = lapsed(&mut valid) => break,
                () = shared.stop.cancelled() => return,
            }
            let busy = lease.busy.clone().lock_owned().await;
            let grant = *valid.borrow();
            let Some(grant) = grant.filter(|g| g.until > Instant::now() && Some(g.epoch) == acting)
            else {
                break;
            };
            let claim = persist(&shared, "claiming a slot", &name, || {
                shared.store.claim(&name, due.slot, grant.epoch)
            })
            .await;
            match claim {
                None => return,
                Some(false) => {
                    // Another replica ran this slot, or the lease just went: read again.
                    drop(busy);
                    break;
                }
                Some(true) => {}
            }
            claimed = Some(due.slot);
            // The grant may have gone while the claim was answered (a pause): then the slot
            // stays claimed and unstarted, and the next holder reports it missed.
            if !valid
                .borrow()
                .is_some_and(|g| g.until > Instant::now() && g.epoch == grant.epoch)
            {
                drop(busy);
                break;
            }
            started = Some(due.slot);
            sync_slot(
                &shared,
                &source,
                due,
                grant.epoch,
                &mut incidents,
                &mut valid,
            )
            .await;
            drop(busy);
            if shared.stop.is_cancelled() {
                return;
            }
        }
        tracing::info!(source = %name, "not acting for this source until its lease is held again");
    }
}

/// Runs the sync of one claimed slot and reports on it.
async fn sync_slot(
    shared: &Shared,
    source: &SourceConfig,
    due: Due,
    epoch: i64,
    incidents: &mut Incidents,
    valid: &mut watch::Receiver<Validity>,
) {
    let name = &source.name;
    let replica = shared.replica.as_str();
    let before = incidents.clone();
    if due.skipped > 0 {
        shared.metrics.add_missed(name, due.skipped);
        let detail = format!(
            "{} scheduled sync(s) before {} did not run (the previous sync was still running, or no replica held the source)",
            due.skipped,
            crate::clock::ms_rfc3339(due.slot)
        );
        if let Some(incident) = incidents.open(
            NotifyEvent::ScheduleMissed,
            &detail,
            &crate::clock::now_rfc3339(),
        ) {
            shared.notifier.send(Notification::opened(
                &incident,
                NotifyEvent::ScheduleMissed,
                name,
                &source.connector,
                None,
                None,
                replica,
            ));
        }
    }
    tracing::info!(source = %name, slot = %crate::clock::ms_rfc3339(due.slot), slot_ms = due.slot, skipped = due.skipped, replica = %replica, epoch, "sync starting");
    // Until this lands, a replica taking the source over counts this slot (and the ones it
    // skipped) as missed; it is not worth delaying the sync for, so a failure is only logged.
    if let Err(err) = shared.store.started(name, due.slot, epoch).await {
        tracing::warn!(source = %name, error = %err, "recording the sync's start failed; a replica taking this source over will report this slot missed");
    }
    let cancel = shared.hard.child_token();
    // Under coordination every commit of this sync is checked against the grant it runs
    // under (see `lease`); a lone replica's lease never lapses and has no row to check.
    let lease = shared.lease_check.clone().map(|check| SyncLease {
        fence: Fence {
            source: name.clone(),
            holder: replica.to_owned(),
            epoch,
        },
        check,
    });
    let state = match &lease {
        Some(lease) => shared.env.state.fenced(lease.fence.clone()),
        None => shared.env.state.clone(),
    };
    let env = SyncEnv {
        cancel: cancel.clone(),
        state,
        lease,
        ..shared.env.clone()
    };
    shared.metrics.set_running(name, true);
    let options = SyncOptions::default();
    let sync = crate::sync::sync_source(&env, source, &options);
    tokio::pin!(sync);
    let overdue_at = tokio::time::sleep(source.deadline);
    tokio::pin!(overdue_at);
    let mut overdue_fired = false;
    let mut lease_cut = false;
    let outcome = loop {
        tokio::select! {
            outcome = &mut sync => break outcome,
            () = &mut overdue_at, if !overdue_fired => {
                overdue_fired = true;
                shared.metrics.add_overdue(name);
                let detail = format!(
                    "a sync started at {} is still running after its deadline of {}",
                    crate::clock::ms_rfc3339(crate::clock::now_ms() - i64::try_from(source.deadline.as_millis()).unwrap_or(0)),
                    humantime::format_duration(source.deadline)
                );
                if let Some(incident) = incidents.open(NotifyEvent::SyncOverdue, &detail, &crate::clock::now_rfc3339()) {
                    shared.notifier.send(Notification::opened(&incident, NotifyEvent::SyncOverdue, name, &source.connector, None, None, replica));
                    let _ = shared.store.save_incidents(name, incidents).await;
                }
            }
            () = lapsed(valid), if !lease_cut => {
                lease_cut = true;
                tracing::warn!(source = %name, "lease lapsed mid-sync; cancelling it so no other replica syncs alongside");
                cancel.cancel();
            }
        }
    };
    let status = outcome.status;
    shared
        .metrics
        .sync_finished(name, status.as_str(), outcome.elapsed, &outcome.metrics);
    tracing::info!(
        source = %name, sync_id = %outcome.sync_id, status = status.as_str(),
        records = outcome.counts.resource_total() + outcome.counts.entitlements + outcome.counts.grants,
        seconds = outcome.elapsed.as_secs_f64(), error = outcome.error.as_deref().unwrap_or(""),
        replica = %replica, "sync finished"
    );
    match status {
        RunStatus::Succeeded => {
            for incident in incidents.resolve_all() {
                shared.notifier.send(Notification::recovered(
                    &incident,
                    name,
                    &source.connector,
                    &outcome.sync_id,
                    replica,
                ));
            }
        }
        RunStatus::Failed => {
            let error = outcome
                .error
                .clone()
                .unwrap_or_else(|| "unknown error".to_owned());
            let detail = format!("sync failed: {error}");
            if let Some(incident) = incidents.open(
                NotifyEvent::SyncFailed,
                &detail,
                &crate::clock::now_rfc3339(),
            ) {
                shared.notifier.send(Notification::opened(
                    &incident,
                    NotifyEvent::SyncFailed,
                    name,
                    &source.connector,
                    Some(&outcome.sync_id),
                    Some(&error),
                    replica,
                ));
            }
        }
        // Stopped by us (shutdown or a lapsed lease): not the source's fault.
        RunStatus::Cancelled => {}
        // Held by the brake: one notice per held sync (the incident stays open while the
        // source's later runs report the same held sync, and closes when it is approved).
        RunStatus::Held => {
            let detail = outcome
                .error
                .clone()
                .unwrap_or_else(|| "sync held by the mass-removal brake".to_owned());
            if let Some(incident) =
                incidents.open(NotifyEvent::SyncHeld, &detail, &crate::clock::now_rfc3339())
            {
                shared.notifier.send(Notification::opened(
                    &incident,
                    NotifyEvent::SyncHeld,
                    name,
                    &source.connector,
                    Some(&outcome.sync_id),
                    None,
                    replica,
                ));
            }
        }
    }
    shared.metrics.set_sink_lag(name, &outcome.sink_lag);
    let behind: Vec<String> = outcome
        .sink_lag
        .iter()
        .filter(|l| l.events > 0 || l.dropped > 0)
        .map(|l| {
            if l.dropped > 0 {
                format!("sink `{}` is {} events behind and lost {} (past the outbox's cap; it needs a backfill)", l.sink, l.events, l.dropped)
            } else {
                format!("sink `{}` is {} events behind (they wait in the outbox for it)", l.sink, l.events)
            }
        })
        .collect();
    if !behind.is_empty()
        && let Some(incident) = incidents.open(
            NotifyEvent::SinkBehind,
            &behind.join("; "),
            &crate::clock::now_rfc3339(),
        )
    {
        shared.notifier.send(Notification::opened(
            &incident,
            NotifyEvent::SinkBehind,
            name,
            &source.connector,
            Some(&outcome.sync_id),
            None,
            replica,
        ));
    }
    if *incidents != before {
        let _ = persist(shared, "saving incidents", name, || {
            shared.store.save_incidents(name, incidents)
        })
        .await;
    }
}

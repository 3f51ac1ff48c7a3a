//! After the page loop: replaying a resumed (or approved) sync's committed pages to fresh
//! sink sessions, completing an incremental snapshot with what carries over, and delivering
//! the change events to every sink before it commits, each sink from its own position in the
//! outbox (see [`crate::state`]).

use std::sync::Arc;

use super::ctx::{Ctx, Stop};
use crate::record::{Batch, RunStatus, SyncRun};
use crate::route::RoutedSession;
use crate::state::{Checkpoint, RecordTable};

/// Records read from the state database per step (replay, carry-over, events).
const CHUNK: usize = 2000;

/// Writes what the interrupted attempts of this sync committed to the sessions (which start
/// empty: a sink drops a killed attempt's staging when a session begins).
pub(super) async fn replay(
    ctx: &Ctx<'_>,
    cp: &Checkpoint,
    sessions: &mut [RoutedSession],
) -> Result<(), Stop> {
    if !sessions.iter().any(RoutedSession::wants_records) {
        return Ok(());
    }
    let mut replayed = 0u64;
    for table in RecordTable::ALL {
        let mut after = String::new();
        loop {
            let (batch, last) = ctx
                .or_cancel(ctx.env.state.replay_chunk(
                    ctx.name(),
                    cp.generation,
                    table,
                    after.clone(),
                    CHUNK,
                ))
                .await?
                .map_err(Stop::failed)?;
            let Some(last) = last else { break };
            replayed += batch.len() as u64;
            write_all(ctx, sessions, &batch).await?;
            after = last;
        }
    }
    if replayed > 0 {
        tracing::info!(source = %ctx.name(), records = replayed, "replayed the interrupted sync's committed pages to the sinks");
    }
    Ok(())
}

/// Adds to the new snapshot, and sends to the sinks, what an incremental listing (or a
/// `--resources-only` sync) did not touch.
pub(super) async fn carry_over(
    ctx: &Ctx<'_>,
    cp: &mut Checkpoint,
    sessions: &mut [RoutedSession],
) -> Result<(), Stop> {
    let state = &ctx.env.state;
    let mut carried = 0u64;
    for table in RecordTable::ALL {
        let mut after = String::new();
        loop {
            let (batch, last) = ctx
                .or_cancel(state.carry_chunk(ctx.name(), cp, table, after.clone(), CHUNK))
                .await?
                .map_err(Stop::failed)?;
            let Some(last) = last else { break };
            write_all(ctx, sessions, &batch).await?;
            for r in &batch.resources {
                *cp.counts.resources.entry(r.rtype.clone()).or_default() += 1;
            }
            cp.counts.entitlements += batch.entitlements.len() as u64;
            cp.counts.grants += batch.grants.len() as u64;
            carried += batch.len() as u64;
            state
                .keep_carried(ctx.name(), cp, table, after, last.clone())
                .await
                .map_err(Stop::failed)?;
            ctx.progress.page("carried over", batch.len() as u64);
            after = last;
        }
    }
    if carried > 0 {
        tracing::info!(source = %ctx.name(), records = carried, "carried unchanged records over from the last snapshot");
    }
    Ok(())
}

/// How a delivery ended: the sinks that failed (each with why), and whether it was stopped.
pub(super) struct Delivery {
    pub(super) failures: Vec<String>,
    pub(super) cancelled: bool,
}

/// Hands each session the events after its sink's outbox position (what it missed before,
/// then this sync's), then commits it, all sessions at once; records each sink that
/// committed, with its new position. A sink that fails is aborted and reported; its position
/// stays, so its events wait for it. The others stay committed.
pub(super) async fn deliver(
    ctx: &Ctx<'_>,
    cp: &Checkpoint,
    sessions: Vec<RoutedSession>,
    run: &SyncRun,
) -> Result<Delivery, Stop> {
    let event_sinks: Vec<String> = ctx
        .env
        .router
        .routed_from(ctx.name())
        .filter(|sink| sink.config().records.wants_kind("event"))
        .map(|sink| sink.config().name.clone())
        .collect();
    let (positions, end) = ctx
        .or_cancel(
            ctx.env
                .state
                .open_delivery(ctx.name(), &cp.sync_id, event_sinks),
        )
        .await?
        .map_err(Stop::failed)?;
    let run = Arc::new(run.clone());
    let results = futures::future::join_all(sessions.into_iter().map(|session| {
        let position = positions
            .iter()
            .find(|(sink, _)| sink == session.sink())
            .map(|(_, seq)| *seq);
        deliver_one(ctx, cp, session, run.clone(), position, end)
    }))
    .await;
    let mut delivery = Delivery {
        failures: Vec::new(),
        cancelled: false,
    };
    for result in results {
        match result {
            Ok(()) => {}
            Err(Stop::Cancelled) => delivery.cancelled = true,
            Err(Stop::Failed(message)) => delivery.failures.push(message),
        }
    }
    Ok(delivery)
}

/// Logs (at error level) the sinks that lost events past the outbox's cap.
pub(super) fn report_lost(ctx: &Ctx<'_>, lost: &[(String, u64)]) {
    for (sink, events) in lost {
        tracing::error!(
            source = %ctx.name(), sink = %sink, events,
            "sink fell more than {} events behind: its oldest undelivered events were dropped from the outbox and it will never receive them; its tables are whole again after its next committed sync, but it needs a backfill of the change events it missed",
            crate::state::OUTBOX_CAP
        );
    }
}

/// Delivers to one session: the events after `position` up to `end` (for a sink that takes
/// events), then the commit, then the record of both.
async fn deliver_one(
    ctx: &Ctx<'_>,
    cp: &Checkpoint,
    mut session: RoutedSession,
    run: Arc<SyncRun>,
    position: Option<i64>,
    end: i64,
) -> Result<(), Stop> {
    let sink = session.sink().to_owned();
    let mut result = Ok(());
    let position = position.filter(|_| session.wants_events());
    if let Some(after) = position {
        result = send_events(ctx, &mut session, after, end).await;
    }
    if result.is_ok() {
        result = still_leased(ctx).await;
    }
    let result = match result {
        Ok(()) => ctx
            .or_cancel(session.commit(&run))
            .await
            .and_then(|r| r.map_err(Stop::failed)),
        Err(stop) => {
            let mut failed = (*run).clone();
            failed.finished_at = crate::clock::now_rfc3339();
            (failed.status, failed.error) = match &stop {
                Stop::Cancelled => (RunStatus::Cancelled, Some("cancelled by a signal".into())),
                Stop::Failed(m) => (RunStatus::Failed, Some(m.clone())),
            };
            if let Err(err) = session.abort(&failed).await {
                tracing::error!(source = %ctx.name(), sink = %sink, error = %err, "sink failed to record the failed delivery");
            }
            Err(stop)
        }
    };
    result?;
    ctx.env
        .state
        .record_delivery(ctx.name(), &cp.sync_id, &sink, position.map(|_| end))
        .await
        .map_err(Stop::failed)
}

/// Under a lease (`idhost run` with `[coordination]`): refuses the sink commit unless the
/// sync's grant is still the current, unexpired one, asked of the database right before it.
/// The delivery record that follows the commit is itself fenced in the state database's
/// transaction; what this check cannot close is a takeover between it and the sink's own
/// commit (a replica paused exactly there), which can deliver a change twice under two event
/// ids — never lose one.
async fn still_leased(ctx: &Ctx<'_>) -> Result<(), Stop> {
    let Some(lease) = &ctx.env.lease else {
        return Ok(());
    };
    match ctx.or_cancel(lease.check.check(&lease.fence)).await? {
        Ok(true) => Ok(()),
        Ok(false) => Err(Stop::failed(format!(
            "source `{}`: the lease of epoch {} is gone (another replica holds the source now, or it expired); the sink was not committed",
            lease.fence.source, lease.fence.epoch
        ))),
        Err(message) => Err(Stop::failed(format!(
            "cannot confirm the lease before committing: {message}"
        ))),
    }
}

/// Streams the outbox's events after `after`, up to `end`, into `session`.
async fn send_events(
    ctx: &Ctx<'_>,
    session: &mut RoutedSession,
    mut after: i64,
    end: i64,
) -> Result<(), Stop> {
    while after < end {
        let chunk = ctx
            .or_cancel(ctx.env.state.events_after(ctx.name(), after, CHUNK))
            .await?
            .map_err(Stop::failed)?;
        let events: Vec<_> = chunk
            .into_iter()
            .take_while(|(seq, _)| *seq <= end)
            .collect();
        let Some((last, _)) = events.last() else {
            return Ok(());
        };
        after = *last;
        let events: Vec<_> = events.into_iter().map(|(_, e)| e).collect();
        ctx.or_cancel(session.write_events(&events))
            .await?
            .map_err(Stop::failed)?;
    }
    Ok(())
}

/// Writes `batch` to every session at once; returns when all accepted it.
pub(super) async fn write_all(
    ctx: &Ctx<'_>,
    sessions: &mut [RoutedSession],
    batch: &Batch,
) -> Result<(), Stop> {
    if batch.is_empty() || sessions.is_empty() {
        return Ok(());
    }
    let writes = futures::future::try_join_all(sessions.iter_mut().map(|s| s.write(batch)));
    ctx.or_cancel(writes).await?.map_err(Stop::failed)?;
    Ok(())
}

//! After the page loop: replaying a resumed sync's committed pages to fresh sink sessions,
//! completing an incremental snapshot with what carries over, and delivering the change
//! events to every sink before it commits.

use std::sync::Arc;

use super::ctx::{Ctx, Stop};
use super::listing::write_all;
use crate::record::{RunStatus, SyncRun};
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

/// Hands each session the sync's events, then commits it, all sessions at once; records
/// each sink that committed. A sink that fails is aborted and fails the sync (its events stay
/// in the outbox for the next sync); the others stay committed.
pub(super) async fn deliver(
    ctx: &Ctx<'_>,
    cp: &Checkpoint,
    sessions: Vec<RoutedSession>,
    run: &SyncRun,
) -> Result<(), Stop> {
    let run = Arc::new(run.clone());
    let results = futures::future::join_all(
        sessions
            .into_iter()
            .map(|session| deliver_one(ctx, cp, session, run.clone())),
    )
    .await;
    let mut errors = Vec::new();
    let mut cancelled = false;
    for result in results {
        match result {
            Ok(()) => {}
            Err(Stop::Cancelled) => cancelled = true,
            Err(Stop::Failed(message)) => errors.push(message),
        }
    }
    if !errors.is_empty() {
        return Err(Stop::Failed(errors.join("; ")));
    }
    if cancelled {
        return Err(Stop::Cancelled);
    }
    Ok(())
}

async fn deliver_one(
    ctx: &Ctx<'_>,
    cp: &Checkpoint,
    mut session: RoutedSession,
    run: Arc<SyncRun>,
) -> Result<(), Stop> {
    let sink = session.sink().to_owned();
    let mut result = Ok(());
    if session.wants_events() {
        result = send_events(ctx, cp, &mut session).await;
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
        .record_delivery(ctx.name(), &cp.sync_id, &sink)
        .map_err(Stop::failed)
}

/// Streams the sync's events from the outbox into `session`.
async fn send_events(
    ctx: &Ctx<'_>,
    cp: &Checkpoint,
    session: &mut RoutedSession,
) -> Result<(), Stop> {
    let mut after = 0i64;
    loop {
        let chunk = ctx
            .or_cancel(
                ctx.env
                    .state
                    .events_after(ctx.name(), &cp.sync_id, after, CHUNK),
            )
            .await?
            .map_err(Stop::failed)?;
        let Some((last, _)) = chunk.last() else {
            return Ok(());
        };
        after = *last;
        let events: Vec<_> = chunk.into_iter().map(|(_, e)| e).collect();
        ctx.or_cancel(session.write_events(&events))
            .await?
            .map_err(Stop::failed)?;
    }
}

//! Schedule slots: the instants a source is due, kept as Unix milliseconds so they compare
//! exactly across restarts and replicas. A slot that came and went while the previous sync ran
//! (or while no replica held the source) is *skipped*, not queued: the daemon runs the latest
//! due slot once and reports the skipped ones as missed.

use std::time::Duration;

use crate::schedule::Schedule;

/// Cron slots walked at most when catching up after downtime (a per-second cron over a week).
const MAX_CRON_WALK: u64 = 1_000_000;

/// The next slot to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    /// Unix milliseconds of the slot (may be in the past: run at once).
    pub(crate) slot: i64,
    /// Slots between the last run one and this one that will never run.
    pub(crate) skipped: u64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

fn cron_after(schedule: &cron::Schedule, ms: i64) -> impl Iterator<Item = i64> + '_ {
    let start = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    schedule.after(&start).map(|t| t.timestamp_millis())
}

/// The slot after `last` (the last slot that ran; `None` if the source never ran here).
///
/// A source that never ran is due at once on an interval schedule (so a new deployment has data
/// without waiting a day) and at its next time on a cron schedule (whose user chose the times).
pub(crate) fn next_due(schedule: &Schedule, last: Option<i64>, now: i64) -> Due {
    match schedule {
        Schedule::Every(interval) => {
            let step = millis(*interval);
            let Some(last) = last else {
                return Due {
                    slot: now,
                    skipped: 0,
                };
            };
            let next = last.saturating_add(step);
            if next > now {
                return Due {
                    slot: next,
                    skipped: 0,
                };
            }
            let k = (now - last) / step;
            Due {
                slot: last + k * step,
                skipped: u64::try_from(k - 1).unwrap_or(0),
            }
        }
        Schedule::Cron(cron) => {
            let Some(last) = last else {
                let slot = cron_after(cron, now).next().unwrap_or(now + 86_400_000);
                return Due { slot, skipped: 0 };
            };
            let mut due = None;
            let mut passed = 0u64;
            for t in cron_after(cron, last) {
                if t > now {
                    if due.is_none() {
                        return Due {
                            slot: t,
                            skipped: 0,
                        };
                    }
                    break;
                }
                due = Some(t);
                passed += 1;
                if passed >= MAX_CRON_WALK {
                    break;
                }
            }
            match due {
                Some(slot) => Due {
                    slot,
                    skipped: passed - 1,
                },
                None => Due {
                    slot: now + 86_400_000,
                    skipped: 0,
                },
            }
        }
    }
}

/// The next slot to run when the store remembers `claimed`, the last slot a replica claimed,
/// and `reported`, the last one whose start (with the missed slots before it) a replica
/// reported.
///
/// A claimed slot is never due again: its replica may only be paused, and would run it on
/// waking. But a replica killed between its claim and its report took the claim's report with
/// it, so every slot after `reported` up to `claimed` counts as skipped here, and the next
/// start reports them as missed — a slot that did start on a replica killed a moment later is
/// then reported missed too, which is the side to err on.
pub(crate) fn next_due_after(
    schedule: &Schedule,
    reported: Option<i64>,
    claimed: Option<i64>,
    now: i64,
) -> Due {
    let mut due = next_due(schedule, claimed, now);
    if let (Some(reported), Some(claimed)) = (reported, claimed)
        && claimed > reported
    {
        due.skipped = due
            .skipped
            .saturating_add(slots_between(schedule, reported, claimed));
    }
    due
}

/// Slots `s` of `schedule` with `after < s <= until`.
fn slots_between(schedule: &Schedule, after: i64, until: i64) -> u64 {
    match schedule {
        Schedule::Every(interval) => {
            u64::try_from((until - after) / millis(*interval)).unwrap_or(0)
        }
        Schedule::Cron(cron) => cron_after(cron, after)
            .take_while(|t| *t <= until)
            .take(usize::try_from(MAX_CRON_WALK).unwrap_or(usize::MAX))
            .count() as u64,
    }
}

/// Random delay before a slot's sync: up to a tenth of the interval (a minute for cron), capped
/// by `max`, so sources and replicas sharing a schedule do not hit upstreams in lockstep.
pub(crate) fn jitter(schedule: &Schedule, max: Duration) -> Duration {
    use rand::Rng as _;
    let span = match schedule {
        Schedule::Every(interval) => *interval / 10,
        Schedule::Cron(_) => Duration::from_secs(60),
    }
    .min(max);
    if span.is_zero() {
        return Duration::ZERO;
    }
    let ms = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::thread_rng().gen_range(0..=ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(secs: u64) -> Schedule {
        Schedule::Every(Duration::from_secs(secs))
    }

    #[test]
    fn a_new_interval_source_is_due_now_and_then_every_interval() {
        assert_eq!(
            next_due(&every(60), None, 1_000),
            Due {
                slot: 1_000,
                skipped: 0
            }
        );
        assert_eq!(
            next_due(&every(60), Some(1_000), 30_000),
            Due {
                slot: 61_000,
                skipped: 0
            }
        );
    }

    #[test]
    fn a_slot_that_came_during_a_long_sync_runs_late_and_older_ones_are_skipped() {
        // Last ran at 0; a 60 s schedule; now 90 s: slot 60 s is due (late), nothing skipped.
        assert_eq!(
            next_due(&every(60), Some(0), 90_000),
            Due {
                slot: 60_000,
                skipped: 0
            }
        );
        // Now 200 s: slots 60 and 120 never ran; 180 runs.
        assert_eq!(
            next_due(&every(60), Some(0), 200_000),
            Due {
                slot: 180_000,
                skipped: 2
            }
        );
    }

    #[test]
    fn cron_slots_are_absolute_and_catch_up_once() {
        let hourly = Schedule::parse("0 * * * *").expect("cron");
        let hour = 3_600_000;
        // Never ran: the next full hour.
        assert_eq!(
            next_due(&hourly, None, 10 * hour + 5),
            Due {
                slot: 11 * hour,
                skipped: 0
            }
        );
        // Ran at 10:00, now 13:30: 11:00 and 12:00 skipped, 13:00 runs.
        assert_eq!(
            next_due(&hourly, Some(10 * hour), 13 * hour + hour / 2),
            Due {
                slot: 13 * hour,
                skipped: 2
            }
        );
    }

    #[test]
    fn a_claimed_slot_whose_start_was_never_reported_is_counted_missed_not_run_again() {
        // Reported through 0, claimed 60 s (its replica died before reporting): at 70 s the
        // claimed slot is not due again; 120 s is, with 60 s counted missed.
        assert_eq!(
            next_due_after(&every(60), Some(0), Some(60_000), 70_000),
            Due {
                slot: 120_000,
                skipped: 1
            }
        );
        // At 250 s: 120 s and 180 s passed too; 240 s runs, three missed in all.
        assert_eq!(
            next_due_after(&every(60), Some(0), Some(60_000), 250_000),
            Due {
                slot: 240_000,
                skipped: 3
            }
        );
        // Reported as far as claimed: the plain rule.
        assert_eq!(
            next_due_after(&every(60), Some(60_000), Some(60_000), 250_000),
            next_due(&every(60), Some(60_000), 250_000)
        );
        let hourly = Schedule::parse("0 * * * *").expect("cron");
        let hour = 3_600_000;
        assert_eq!(
            next_due_after(&hourly, Some(10 * hour), Some(12 * hour), 12 * hour + 5),
            Due {
                slot: 13 * hour,
                skipped: 2
            }
        );
    }

    #[test]
    fn jitter_is_bounded_by_a_tenth_of_the_interval_and_the_cap() {
        for _ in 0..100 {
            assert!(jitter(&every(10), Duration::from_secs(60)) <= Duration::from_secs(1));
            assert!(jitter(&every(3600), Duration::from_secs(5)) <= Duration::from_secs(5));
        }
        assert_eq!(jitter(&every(10), Duration::ZERO), Duration::ZERO);
    }
}

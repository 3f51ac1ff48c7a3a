//! Pacing for budgets an upstream counts per window ("600 requests per minute") without saying
//! when a window starts: a sliding log that never lets more than the allowance into any span of
//! one period. A token bucket (governor's GCRA) with a burst of the whole allowance admits up to
//! twice the allowance within one period (a burst, then the refill), which a fixed window of
//! unknown alignment refuses with 429s; this limiter admits the burst and then waits for the
//! oldest request to leave the window.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `limit` cost units in any `period`.
#[derive(Debug)]
pub struct WindowLimiter {
    limit: u32,
    period: Duration,
    /// When each admitted request went out, and its cost, oldest first.
    log: Mutex<VecDeque<(Instant, u32)>>,
}

impl WindowLimiter {
    /// `limit` (at least 1) units per `period`.
    pub fn new(limit: u32, period: Duration) -> Self {
        Self {
            limit: limit.max(1),
            period,
            log: Mutex::new(VecDeque::new()),
        }
    }

    /// How long until `cost` units fit, having admitted them if they fit now (`None`).
    fn try_admit(&self, cost: u32, now: Instant) -> Option<Duration> {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        while log
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= self.period)
        {
            log.pop_front();
        }
        let used: u32 = log.iter().map(|(_, c)| *c).sum();
        if used.saturating_add(cost) <= self.limit {
            log.push_back((now, cost));
            return None;
        }
        let mut still_used = used;
        for (at, c) in log.iter() {
            still_used -= c;
            if still_used.saturating_add(cost) <= self.limit {
                return Some((*at + self.period).saturating_duration_since(now));
            }
        }
        Some(self.period)
    }

    /// Waits until `cost` units fit in the window, then takes them. A cost above the whole
    /// allowance takes all of it.
    pub async fn acquire(&self, cost: u32) {
        let cost = cost.clamp(1, self.limit);
        while let Some(wait) = self.try_admit(cost, Instant::now()) {
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_the_allowance_in_any_period_and_the_wait_ends_with_the_oldest() {
        let limiter = WindowLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(
                limiter.try_admit(1, t0 + Duration::from_secs(i)),
                None,
                "the burst fits"
            );
        }
        // The fourth waits until the first is a minute old, however much time went by since.
        let at = t0 + Duration::from_secs(10);
        assert_eq!(limiter.try_admit(1, at), Some(Duration::from_secs(50)));
        assert_eq!(
            limiter.try_admit(2, at),
            Some(Duration::from_secs(51)),
            "two units wait for the two oldest"
        );
        assert_eq!(limiter.try_admit(1, t0 + Duration::from_secs(60)), None);
        assert_eq!(
            limiter.try_admit(1, t0 + Duration::from_secs(60)),
            Some(Duration::from_secs(1))
        );
    }
}

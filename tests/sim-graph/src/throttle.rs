//! Identity-and-access throttling: a resource-unit token bucket and a write quota per
//! application + tenant (concepts/throttling-limits.md, "Identity and access service limits").
//!
//! | Limit type | Resource unit quota | Write quota |
//! | application+tenant | S 3,500 / M 5,000 / L 8,000 per 10 s | 3,000 per 2 min 30 s |
//!
//! S is under 50 users, M 50–500, L above 500. The simulator has one registered app and one
//! tenant, so one pair of buckets is the whole app+tenant scope.

use std::time::{Duration, Instant};

use crate::directory::Rel;

/// Base cost and write flag of a request, before the query-option adjustments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cost {
    pub(crate) units: u32,
    pub(crate) write: bool,
}

impl Cost {
    /// throttling-limits.md base costs: GET `users` 2, GET `groups/{id}/members` 3, any other
    /// identity GET 1; POST/PATCH/PUT/DELETE 1 resource unit and 1 write.
    pub(crate) fn base(
        method_is_get: bool,
        users_collection: bool,
        group_rel: Option<Rel>,
    ) -> Self {
        if !method_is_get {
            return Self {
                units: 1,
                write: true,
            };
        }
        let units = if users_collection {
            2
        } else if group_rel == Some(Rel::Members) {
            3
        } else {
            1
        };
        Self {
            units,
            write: false,
        }
    }

    /// "Using `$select` decreases cost by 1; using `$expand` increases cost by 1; using `$top`
    /// with a value of less than 20 decreases cost by 1 … A request cost can never be lower than 1."
    pub(crate) fn adjusted(self, select: bool, expand: bool, small_top: bool) -> Self {
        let mut units = i64::from(self.units);
        if select {
            units -= 1;
        }
        if expand {
            units += 1;
        }
        if small_top {
            units -= 1;
        }
        Self {
            units: u32::try_from(units.max(1)).unwrap_or(1),
            write: self.write,
        }
    }
}

/// The outcome of charging a request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// Allowed; `limit_percentage` is set once more than 0.8 of the quota is used (the
    /// `x-ms-throttle-limit-percentage` header).
    Allowed { limit_percentage: Option<f64> },
    /// Throttled: wait this many seconds; `information` is the `x-ms-throttle-information` value.
    Throttled {
        retry_after_secs: u64,
        information: &'static str,
    },
}

#[derive(Debug, Clone)]
struct Bucket {
    capacity: f64,
    tokens: f64,
    per_sec: f64,
    last: Instant,
}

impl Bucket {
    fn new(capacity: f64, period: Duration, now: Instant) -> Self {
        Self {
            capacity,
            tokens: capacity,
            per_sec: capacity / period.as_secs_f64(),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.last = now;
    }

    fn wait_for(&self, amount: f64) -> u64 {
        let missing = (amount - self.tokens).max(0.0);
        ((missing / self.per_sec).ceil() as u64).max(1)
    }

    fn used(&self) -> f64 {
        1.0 - self.tokens / self.capacity
    }
}

/// The app+tenant buckets.
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    enabled: bool,
    units: Bucket,
    writes: Bucket,
}

impl Throttle {
    /// Sized by tenant: S (< 50 users) 3,500, M (50–500) 5,000, L (> 500) 8,000 units per 10 s.
    pub(crate) fn new(enabled: bool, users: usize, now: Instant) -> Self {
        let quota = if users < 50 {
            3_500.0
        } else if users <= 500 {
            5_000.0
        } else {
            8_000.0
        };
        Self {
            enabled,
            units: Bucket::new(quota, Duration::from_secs(10), now),
            writes: Bucket::new(3_000.0, Duration::from_secs(150), now),
        }
    }

    /// Resource units per 10 seconds for this tenant size.
    #[cfg(test)]
    pub(crate) fn quota(&self) -> f64 {
        self.units.capacity
    }

    /// Charges `cost`; throttled requests are not charged ("Only the requests exceeding the
    /// limits will be throttled").
    pub(crate) fn charge(&mut self, cost: Cost, now: Instant) -> Verdict {
        if !self.enabled {
            return Verdict::Allowed {
                limit_percentage: None,
            };
        }
        self.units.refill(now);
        self.writes.refill(now);
        let units = f64::from(cost.units);
        if self.units.tokens < units {
            return Verdict::Throttled {
                retry_after_secs: self.units.wait_for(units),
                information: "ResourceUnitLimitExceeded",
            };
        }
        if cost.write && self.writes.tokens < 1.0 {
            return Verdict::Throttled {
                retry_after_secs: self.writes.wait_for(1.0),
                information: "WriteLimitExceeded",
            };
        }
        self.units.tokens -= units;
        if cost.write {
            self.writes.tokens -= 1.0;
        }
        let used = self
            .units
            .used()
            .max(if cost.write { self.writes.used() } else { 0.0 });
        Verdict::Allowed {
            limit_percentage: (used > 0.8).then_some(used),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_follow_the_documented_table() {
        assert_eq!(Cost::base(true, true, None).units, 2);
        assert_eq!(Cost::base(true, false, Some(Rel::Members)).units, 3);
        assert_eq!(Cost::base(true, false, Some(Rel::Owners)).units, 1);
        let members = Cost::base(true, false, Some(Rel::Members));
        assert_eq!(members.adjusted(true, false, true).units, 1);
        assert_eq!(members.adjusted(false, true, false).units, 4);
        assert_eq!(
            Cost::base(true, true, None)
                .adjusted(true, false, true)
                .units,
            1
        );
        assert!(Cost::base(false, false, None).write);
    }

    #[test]
    fn bucket_refuses_past_quota_and_refills() {
        let start = Instant::now();
        let mut t = Throttle::new(true, 10, start);
        assert_eq!(t.quota(), 3_500.0);
        let cost = Cost {
            units: 700,
            write: false,
        };
        for _ in 0..5 {
            assert!(matches!(t.charge(cost, start), Verdict::Allowed { .. }));
        }
        match t.charge(cost, start) {
            Verdict::Throttled {
                retry_after_secs,
                information,
            } => {
                assert_eq!(retry_after_secs, 2);
                assert_eq!(information, "ResourceUnitLimitExceeded");
            }
            other => panic!("expected throttling, got {other:?}"),
        }
        let later = start + Duration::from_secs(2);
        assert!(matches!(t.charge(cost, later), Verdict::Allowed { .. }));
    }
}

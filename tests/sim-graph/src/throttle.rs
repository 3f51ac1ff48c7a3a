//! Microsoft Graph throttling as the simulator applies it (concepts/throttling-limits.md,
//! checked against the page at learn.microsoft.com/graph/throttling-limits).
//!
//! Every request is evaluated against every limit that applies; the first one reached throttles
//! ("The first limit to be reached triggers throttling behavior"):
//!
//! | scope | limit |
//! |---|---|
//! | global, per app across all tenants | 130,000 requests per 10 s (older copies of the page said 2,000 per second) |
//! | identity and access, app + tenant | resource units: S (< 50 users) 3,500 / M (50–500) 5,000 / L (> 500) 8,000 per 10 s; writes: 3,000 per 2 min 30 s |
//! | identity and access, app | resource units: 150,000 per 20 s; writes: 70,000 per 5 min |
//! | identity and access, tenant | writes: 18,000 per 5 min |
//!
//! The simulator has one registered app and one tenant, so each scope is one bucket; the app
//! and tenant buckets only bind when a test shrinks the app + tenant ones' neighbours through
//! [`Limits`]. A throttled answer carries `Retry-After`, and for the identity-and-access limits
//! `x-ms-throttle-scope` (`<Scope>/<Limit>/<ApplicationId>/<TenantId>`, Limit being `Read`,
//! `Write` or `ReadWrite`) and `x-ms-throttle-information`.

use std::time::{Duration, Instant};

use crate::directory::Rel;

/// The published figures, one field per limit (all per the period next to it).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Global limit: requests per app across all tenants per `global_period`.
    pub global_requests: f64,
    /// Period of the global limit (10 s).
    pub global_period: Duration,
    /// Resource units per app + tenant per 10 s for S, M and L tenants.
    pub tenant_app_units: [f64; 3],
    /// Writes per app + tenant per `tenant_app_write_period` (3,000 per 150 s).
    pub tenant_app_writes: f64,
    /// Period of the app + tenant write quota.
    pub tenant_app_write_period: Duration,
    /// Resource units per app across tenants per 20 s.
    pub app_units: f64,
    /// Writes per app across tenants per 5 min.
    pub app_writes: f64,
    /// Writes per tenant across apps per 5 min.
    pub tenant_writes: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            global_requests: 130_000.0,
            global_period: Duration::from_secs(10),
            tenant_app_units: [3_500.0, 5_000.0, 8_000.0],
            tenant_app_writes: 3_000.0,
            tenant_app_write_period: Duration::from_secs(150),
            app_units: 150_000.0,
            app_writes: 70_000.0,
            tenant_writes: 18_000.0,
        }
    }
}

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
        /// `Scope/Limit` of `x-ms-throttle-scope` (`None` for the global limit, which the page
        /// documents no such header for).
        scope: Option<&'static str>,
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

/// One bucket per limit.
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    enabled: bool,
    global: Bucket,
    units: Bucket,
    writes: Bucket,
    app_units: Bucket,
    app_writes: Bucket,
    tenant_writes: Bucket,
}

/// What a bucket refusal says.
struct Refusal {
    information: &'static str,
    scope: Option<&'static str>,
}

impl Throttle {
    /// Sized by tenant: S (< 50 users), M (50–500), L (> 500).
    pub(crate) fn new(enabled: bool, users: usize, limits: &Limits, now: Instant) -> Self {
        let size = if users < 50 {
            0
        } else if users <= 500 {
            1
        } else {
            2
        };
        let five_minutes = Duration::from_secs(300);
        Self {
            enabled,
            global: Bucket::new(limits.global_requests, limits.global_period, now),
            units: Bucket::new(limits.tenant_app_units[size], Duration::from_secs(10), now),
            writes: Bucket::new(
                limits.tenant_app_writes,
                limits.tenant_app_write_period,
                now,
            ),
            app_units: Bucket::new(limits.app_units, Duration::from_secs(20), now),
            app_writes: Bucket::new(limits.app_writes, five_minutes, now),
            tenant_writes: Bucket::new(limits.tenant_writes, five_minutes, now),
        }
    }

    /// Resource units per 10 seconds for this tenant size.
    #[cfg(test)]
    pub(crate) fn quota(&self) -> f64 {
        self.units.capacity
    }

    /// Charges `cost` against every limit; a throttled request is charged nowhere ("Only the
    /// requests exceeding the limits will be throttled").
    pub(crate) fn charge(&mut self, cost: Cost, now: Instant) -> Verdict {
        if !self.enabled {
            return Verdict::Allowed {
                limit_percentage: None,
            };
        }
        let units = f64::from(cost.units);
        let writes = if cost.write { 1.0 } else { 0.0 };
        let checks: [(&mut Bucket, f64, Refusal); 6] = [
            (
                &mut self.global,
                1.0,
                Refusal {
                    information: "GlobalLimitExceeded",
                    scope: None,
                },
            ),
            (
                &mut self.units,
                units,
                Refusal {
                    information: "ResourceUnitLimitExceeded",
                    scope: Some("Tenant_Application/ReadWrite"),
                },
            ),
            (
                &mut self.writes,
                writes,
                Refusal {
                    information: "WriteLimitExceeded",
                    scope: Some("Tenant_Application/Write"),
                },
            ),
            (
                &mut self.app_units,
                units,
                Refusal {
                    information: "ResourceUnitLimitExceeded",
                    scope: Some("Application/ReadWrite"),
                },
            ),
            (
                &mut self.app_writes,
                writes,
                Refusal {
                    information: "WriteLimitExceeded",
                    scope: Some("Application/Write"),
                },
            ),
            (
                &mut self.tenant_writes,
                writes,
                Refusal {
                    information: "WriteLimitExceeded",
                    scope: Some("Tenant/Write"),
                },
            ),
        ];
        let mut charges = Vec::with_capacity(checks.len());
        for (bucket, amount, refusal) in checks {
            bucket.refill(now);
            if amount > 0.0 && bucket.tokens < amount {
                return Verdict::Throttled {
                    retry_after_secs: bucket.wait_for(amount),
                    information: refusal.information,
                    scope: refusal.scope,
                };
            }
            charges.push((bucket, amount));
        }
        let mut used: f64 = 0.0;
        for (bucket, amount) in charges {
            if amount > 0.0 {
                bucket.tokens -= amount;
                used = used.max(bucket.used());
            }
        }
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
        let mut t = Throttle::new(true, 10, &Limits::default(), start);
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
                scope,
            } => {
                assert_eq!(retry_after_secs, 2);
                assert_eq!(information, "ResourceUnitLimitExceeded");
                assert_eq!(scope, Some("Tenant_Application/ReadWrite"));
            }
            other => panic!("expected throttling, got {other:?}"),
        }
        let later = start + Duration::from_secs(2);
        assert!(matches!(t.charge(cost, later), Verdict::Allowed { .. }));
    }

    #[test]
    fn the_global_limit_is_130000_requests_per_10_seconds_per_app() {
        let limits = Limits::default();
        assert_eq!(limits.global_requests, 130_000.0);
        assert_eq!(limits.global_period, Duration::from_secs(10));
        let start = Instant::now();
        // A global limit below the app + tenant quota is the first one reached.
        let small = Limits {
            global_requests: 5.0,
            ..Limits::default()
        };
        let mut t = Throttle::new(true, 10, &small, start);
        let read = Cost {
            units: 1,
            write: false,
        };
        for _ in 0..5 {
            assert!(matches!(t.charge(read, start), Verdict::Allowed { .. }));
        }
        match t.charge(read, start) {
            Verdict::Throttled {
                information, scope, ..
            } => {
                assert_eq!(information, "GlobalLimitExceeded");
                assert_eq!(scope, None);
            }
            other => panic!("expected the global limit, got {other:?}"),
        }
    }

    #[test]
    fn tenant_and_app_write_quotas_apply_across_the_pair() {
        let start = Instant::now();
        let limits = Limits {
            tenant_writes: 2.0,
            ..Limits::default()
        };
        let mut t = Throttle::new(true, 600, &limits, start);
        let write = Cost {
            units: 1,
            write: true,
        };
        assert!(matches!(t.charge(write, start), Verdict::Allowed { .. }));
        assert!(matches!(t.charge(write, start), Verdict::Allowed { .. }));
        match t.charge(write, start) {
            Verdict::Throttled {
                information,
                scope,
                retry_after_secs,
            } => {
                assert_eq!(information, "WriteLimitExceeded");
                assert_eq!(scope, Some("Tenant/Write"));
                // 2 writes per 300 s: one comes back after 150 s.
                assert_eq!(retry_after_secs, 150);
            }
            other => panic!("expected the tenant write quota, got {other:?}"),
        }
        // Reads still go through: only writes count against a write quota.
        let read = Cost {
            units: 1,
            write: false,
        };
        assert!(matches!(t.charge(read, start), Verdict::Allowed { .. }));
    }
}

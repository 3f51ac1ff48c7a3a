//! The one retry policy of the host, used by upstream HTTP (`services::http`), the webhook sink
//! and notify targets. The rules, in the order they are applied (octocrab's `RetryConfig`
//! shape):
//!
//! 1. **`Retry-After`** (delay-seconds or an HTTP date) on a 429 or a 503: wait exactly that,
//!    at most `max_attempts` attempts.
//! 2. **Rate-limit reset headers** on a 429 without `Retry-After` (`RateLimit-Reset`,
//!    `X-RateLimit-Reset`, `X-Rate-Limit-Reset`; delta seconds, or epoch seconds when the value
//!    is past 2001): wait until the reset, at most `max_attempts` attempts.
//! 3. **A 429 without either**: exponential backoff with full jitter. When the request names
//!    its upstream's rate window (a connector states Ironclad's "per minute"), the retries go
//!    on until the waits add up to one window (by then the window can have reset) and then one
//!    last attempt; otherwise at most `max_attempts` attempts.
//! 4. **408, 500, 502, 503, 504 and transport failures**: exponential backoff with full jitter,
//!    at most `max_attempts` attempts, only for requests that may be repeated (idempotent ones,
//!    and any request whose connection was never made).
//! 5. **Never** anything else: not 403 (a refusal no wait will change), not 401 (token renewal
//!    is the connector's), not other 4xx or 501.
//!
//! Every wait counts against the request's **maximum wait** (`max_wait`, default five minutes,
//! per source `max_retry_wait_secs`): a wait that would take the total past it is not made, and
//! the last answer goes back as it is (a 429 becomes a `RateLimited` error naming the wait it
//! asked for). So a request waits out a rate limit of a few minutes, but never parks a sync for
//! hours on an upstream's say-so.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use idhost_connector_sdk::http::parse_retry_after;
use rand::Rng as _;

/// The default of [`RetryPolicy::max_wait`] (and of a source's `max_retry_wait_secs`).
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(300);

/// Most attempts while waiting out a rate window (rule 3), however short the jittered waits.
const MAX_WINDOW_ATTEMPTS: u32 = 64;

/// How many times, how long between, and how long in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts per request, first included (rule 3 without a window, rule 4).
    pub max_attempts: u32,
    /// First backoff step; step `n` is `base_delay × 2ⁿ⁻¹`, capped at `max_delay`, jittered.
    pub base_delay: Duration,
    /// Largest backoff step (rules 3 and 4; a rate window caps it too).
    pub max_delay: Duration,
    /// Most time one request may spend waiting between its attempts, all waits together.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(60),
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

/// What an attempt ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An answer with this status (and, for 429/503, what its headers asked for).
    Status {
        /// HTTP status.
        status: u16,
        /// `Retry-After`, parsed.
        retry_after: Option<Duration>,
        /// Time until a rate-limit reset header says the limit resets.
        reset: Option<Duration>,
    },
    /// No answer: refused, reset, timed out.
    Transport {
        /// Whether a connection was made (a request that never reached the upstream may be
        /// repeated whatever its method).
        connected: bool,
    },
}

impl Outcome {
    /// An answer with `status` whose headers `header` reads (case-insensitive names).
    pub fn from_headers<'a>(status: u16, header: impl Fn(&str) -> Option<&'a str>) -> Self {
        let retry_after = header("retry-after").and_then(parse_retry_after);
        let reset = ["ratelimit-reset", "x-ratelimit-reset", "x-rate-limit-reset"]
            .into_iter()
            .find_map(|name| header(name).and_then(parse_reset));
        Outcome::Status {
            status,
            retry_after,
            reset,
        }
    }
}

/// A reset header's value as a wait: delta seconds, or a Unix time (GitHub's and Ironclad-style
/// `X-RateLimit-Reset` values are epoch seconds; the IETF `RateLimit-Reset` is a delta).
fn parse_reset(value: &str) -> Option<Duration> {
    let secs: u64 = value.trim().parse().ok()?;
    // Anything past 1,000,000,000 (2001-09-09) is a point in time, not a wait.
    if secs < 1_000_000_000 {
        return Some(Duration::from_secs(secs));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(secs.saturating_sub(now)))
}

/// The request being retried, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Attempts made so far, the one that just ended included (1 after the first).
    pub number: u32,
    /// Time already spent waiting between this request's attempts.
    pub waited: Duration,
    /// Whether the request may be repeated after a 5xx or a broken connection.
    pub idempotent: bool,
    /// The upstream's rate-limit window, when the request names one (rule 3).
    pub rate_window: Option<Duration>,
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then try again.
    Retry(Duration),
    /// Hand the last answer back.
    Stop(Stop),
}

/// Why the policy stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The outcome is not one the rules retry (including 403).
    NotRetryable,
    /// `max_attempts` (or, with a rate window, one full window) is spent.
    Exhausted,
    /// The next wait would pass `max_wait`: the wait it would have been.
    TooLong(Duration),
}

impl RetryPolicy {
    /// Backoff step `n` (1-based): `base_delay × 2ⁿ⁻¹`, capped at `cap`, with full jitter
    /// (uniform in `[0, step]`, AWS architecture blog "Exponential Backoff And Jitter").
    pub fn backoff(&self, n: u32, cap: Duration) -> Duration {
        let step = self
            .base_delay
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(cap);
        let millis = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::thread_rng().gen_range(0..=millis.max(1)))
    }

    /// The decision after `attempt` ended with `outcome` (the rules in the module docs).
    pub fn decide(&self, attempt: &Attempt, outcome: &Outcome) -> Decision {
        let within = |wait: Duration| {
            if attempt.waited.saturating_add(wait) > self.max_wait {
                Decision::Stop(Stop::TooLong(wait))
            } else {
                Decision::Retry(wait)
            }
        };
        let attempts_left = attempt.number < self.max_attempts;
        match outcome {
            Outcome::Status {
                status,
                retry_after,
                reset,
            } => {
                let status = *status;
                // Rule 1.
                if matches!(status, 429 | 503)
                    && let Some(wait) = retry_after
                {
                    let retryable = status == 429 || attempt.idempotent;
                    return match (retryable, attempts_left) {
                        (true, true) => within(*wait),
                        (true, false) => Decision::Stop(Stop::Exhausted),
                        (false, _) => Decision::Stop(Stop::NotRetryable),
                    };
                }
                if status == 429 {
                    // Rule 2.
                    if let Some(wait) = reset {
                        return if attempts_left {
                            within(*wait)
                        } else {
                            Decision::Stop(Stop::Exhausted)
                        };
                    }
                    // Rule 3.
                    return match attempt.rate_window {
                        Some(window)
                            if attempt.waited < window && attempt.number < MAX_WINDOW_ATTEMPTS =>
                        {
                            let left = window - attempt.waited;
                            let cap = self.max_delay.min(window);
                            within(self.backoff(attempt.number, cap).min(left).max(
                                // The last wait of a window may be short; never zero.
                                Duration::from_millis(1),
                            ))
                        }
                        Some(_) => Decision::Stop(Stop::Exhausted),
                        None if attempts_left => {
                            within(self.backoff(attempt.number, self.max_delay))
                        }
                        None => Decision::Stop(Stop::Exhausted),
                    };
                }
                // Rule 4 (rule 5 for everything else).
                let transient = matches!(status, 408 | 500 | 502 | 503 | 504);
                match (transient && attempt.idempotent, attempts_left) {
                    (true, true) => within(self.backoff(attempt.number, self.max_delay)),
                    (true, false) => Decision::Stop(Stop::Exhausted),
                    (false, _) => Decision::Stop(Stop::NotRetryable),
                }
            }
            Outcome::Transport { connected } => {
                match (attempt.idempotent || !connected, attempts_left) {
                    (true, true) => within(self.backoff(attempt.number, self.max_delay)),
                    (true, false) => Decision::Stop(Stop::Exhausted),
                    (false, _) => Decision::Stop(Stop::NotRetryable),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            max_wait: Duration::from_secs(120),
        }
    }

    fn attempt(number: u32, waited_secs: u64) -> Attempt {
        Attempt {
            number,
            waited: Duration::from_secs(waited_secs),
            idempotent: true,
            rate_window: None,
        }
    }

    fn status(status: u16, retry_after: Option<u64>, reset: Option<u64>) -> Outcome {
        Outcome::Status {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            reset: reset.map(Duration::from_secs),
        }
    }

    #[test]
    fn retry_after_is_waited_exactly_within_the_maximum_wait() {
        let p = policy();
        assert_eq!(
            p.decide(&attempt(1, 0), &status(429, Some(7), None)),
            Decision::Retry(Duration::from_secs(7))
        );
        assert_eq!(
            p.decide(&attempt(3, 0), &status(429, Some(0), None)),
            Decision::Stop(Stop::Exhausted),
            "a `Retry-After: 0` forever still ends"
        );
        assert_eq!(
            p.decide(&attempt(1, 115), &status(429, Some(7), None)),
            Decision::Stop(Stop::TooLong(Duration::from_secs(7)))
        );
        assert_eq!(
            p.decide(&attempt(1, 0), &status(429, Some(86_400), None)),
            Decision::Stop(Stop::TooLong(Duration::from_secs(86_400)))
        );
        let post = Attempt {
            idempotent: false,
            ..attempt(1, 0)
        };
        assert_eq!(
            p.decide(&post, &status(503, Some(2), None)),
            Decision::Stop(Stop::NotRetryable),
            "a 503 may have applied a write"
        );
        assert_eq!(
            p.decide(&post, &status(429, Some(2), None)),
            Decision::Retry(Duration::from_secs(2)),
            "a 429 was refused before it was applied"
        );
    }

    #[test]
    fn reset_headers_come_after_retry_after_and_before_backoff() {
        let p = policy();
        assert_eq!(
            p.decide(&attempt(1, 0), &status(429, None, Some(30))),
            Decision::Retry(Duration::from_secs(30))
        );
        assert_eq!(
            p.decide(&attempt(1, 0), &status(429, Some(3), Some(30))),
            Decision::Retry(Duration::from_secs(3))
        );
        let headers = [("x-ratelimit-reset", "12")];
        let outcome = Outcome::from_headers(429, |name| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        });
        assert_eq!(outcome, status(429, None, Some(12)));
        let in_a_minute = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() + 60)
            .unwrap_or_default()
            .to_string();
        let reset = parse_reset(&in_a_minute).expect("epoch seconds");
        assert!(reset > Duration::from_secs(55) && reset <= Duration::from_secs(60));
    }

    #[test]
    fn a_429_without_hints_backs_off_max_attempts_times_unless_the_request_names_a_window() {
        let p = policy();
        let bare = status(429, None, None);
        assert!(matches!(
            p.decide(&attempt(1, 0), &bare),
            Decision::Retry(d) if d <= Duration::from_millis(100)
        ));
        assert!(matches!(
            p.decide(&attempt(2, 0), &bare),
            Decision::Retry(d) if d <= Duration::from_millis(200)
        ));
        assert_eq!(
            p.decide(&attempt(3, 0), &bare),
            Decision::Stop(Stop::Exhausted)
        );
        let windowed = |number, waited_secs| Attempt {
            rate_window: Some(Duration::from_secs(60)),
            ..attempt(number, waited_secs)
        };
        // Past max_attempts, still within the window: keep waiting, never past what is left.
        assert!(matches!(
            p.decide(&windowed(12, 55), &bare),
            Decision::Retry(d) if d <= Duration::from_secs(5) && d > Duration::ZERO
        ));
        assert_eq!(
            p.decide(&windowed(13, 60), &bare),
            Decision::Stop(Stop::Exhausted),
            "a whole window waited: the limit is someone else's"
        );
        let short = RetryPolicy {
            max_wait: Duration::from_secs(2),
            ..policy()
        };
        assert!(matches!(
            short.decide(&windowed(12, 2), &bare),
            Decision::Stop(Stop::TooLong(_))
        ));
    }

    #[test]
    fn transient_failures_retry_only_when_repeatable_and_403_never() {
        let p = policy();
        for code in [408, 500, 502, 503, 504] {
            assert!(matches!(
                p.decide(&attempt(1, 0), &status(code, None, None)),
                Decision::Retry(_)
            ));
        }
        for code in [400, 401, 403, 404, 409, 501] {
            assert_eq!(
                p.decide(&attempt(1, 0), &status(code, None, None)),
                Decision::Stop(Stop::NotRetryable),
                "{code}"
            );
        }
        let post = Attempt {
            idempotent: false,
            ..attempt(1, 0)
        };
        assert_eq!(
            p.decide(&post, &status(500, None, None)),
            Decision::Stop(Stop::NotRetryable)
        );
        assert!(matches!(
            p.decide(&post, &Outcome::Transport { connected: false }),
            Decision::Retry(_)
        ));
        assert_eq!(
            p.decide(&post, &Outcome::Transport { connected: true }),
            Decision::Stop(Stop::NotRetryable)
        );
        assert_eq!(
            p.decide(&attempt(3, 0), &status(503, None, None)),
            Decision::Stop(Stop::Exhausted)
        );
    }
}

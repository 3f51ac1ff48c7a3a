//! A fixed-window request counter, the way most SaaS rate limits are documented
//! ("600 requests per minute").

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts requests per key in fixed windows of `period`; `check` says whether one more fits and,
/// when it does not, how long until the window resets.
#[derive(Debug)]
pub struct FixedWindow {
    limit: u32,
    period: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl FixedWindow {
    /// `limit` requests per `period` for each key.
    pub fn new(limit: u32, period: Duration) -> Self {
        Self {
            limit,
            period,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Records one request for `key`. `Ok(())` if it is within the limit, otherwise
    /// `Err(time until the window resets)`.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.period {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return Err(self.period.saturating_sub(now.duration_since(entry.0)));
        }
        entry.1 += 1;
        Ok(())
    }

    /// The configured limit per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_until_the_window_resets() {
        let w = FixedWindow::new(2, Duration::from_millis(50));
        assert!(w.check("a").is_ok());
        assert!(w.check("a").is_ok());
        assert!(w.check("a").is_err());
        assert!(w.check("b").is_ok(), "keys are counted separately");
        std::thread::sleep(Duration::from_millis(60));
        assert!(w.check("a").is_ok());
    }
}

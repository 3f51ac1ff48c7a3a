//! Source schedules: a humantime interval (`15m`, `24h`) or a cron expression.

use std::str::FromStr;
use std::time::Duration;

/// When a source syncs under `idhost run`.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every interval.
    Every(Duration),
    /// On a cron schedule (seconds field optional).
    Cron(Box<cron::Schedule>),
}

impl Schedule {
    /// The default when a source sets none: daily, as Oomnitza's integrations do.
    pub fn daily() -> Self {
        Schedule::Every(Duration::from_secs(24 * 3600))
    }

    /// Parses `15m`, `24h`, `1h 30m`, or a 5- or 6-field cron expression.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(interval) = humantime::parse_duration(text) {
            if interval < Duration::from_secs(1) {
                return Err(format!("schedule `{text}` is shorter than one second"));
            }
            return Ok(Schedule::Every(interval));
        }
        let fields = text.split_whitespace().count();
        let expression = match fields {
            5 => format!("0 {text}"),
            6 | 7 => text.to_owned(),
            _ => {
                return Err(format!(
                    "schedule must be an interval like `15m` or `24h`, or a cron expression like `0 2 * * *`; got `{text}`"
                ));
            }
        };
        cron::Schedule::from_str(&expression)
            .map(|s| Schedule::Cron(Box::new(s)))
            .map_err(|e| format!("schedule `{text}` is not a valid cron expression: {e}"))
    }

    /// Time from `now` until the next run.
    pub fn next_delay(&self, now: time::OffsetDateTime) -> Duration {
        match self {
            Schedule::Every(d) => *d,
            Schedule::Cron(schedule) => {
                let now_utc = chrono_like_now(now);
                schedule
                    .after(&now_utc)
                    .next()
                    .map(|next| {
                        let secs = (next.timestamp() - now_utc.timestamp()).max(0);
                        Duration::from_secs(u64::try_from(secs).unwrap_or(0))
                    })
                    .unwrap_or(Duration::from_secs(24 * 3600))
            }
        }
    }
}

fn chrono_like_now(now: time::OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(now.unix_timestamp(), 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_cron_parse_and_garbage_is_explained() {
        assert!(
            matches!(Schedule::parse("15m"), Ok(Schedule::Every(d)) if d == Duration::from_secs(900))
        );
        assert!(matches!(
            Schedule::parse("0 2 * * *"),
            Ok(Schedule::Cron(_))
        ));
        let err = Schedule::parse("every tuesday").expect_err("not a schedule");
        assert!(err.contains("`15m`"), "{err}");
        let err = Schedule::parse("99 * * * *").expect_err("bad cron");
        assert!(err.contains("not a valid cron"), "{err}");
    }

    #[test]
    fn cron_next_delay_is_within_a_day() {
        let s = Schedule::parse("0 2 * * *").expect("parses");
        let d = s.next_delay(time::OffsetDateTime::now_utc());
        assert!(d <= Duration::from_secs(24 * 3600));
    }
}

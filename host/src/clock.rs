//! The host's wall clock as text: every time the host writes (sync runs, checkpoints, events,
//! audit rows, vault entries, notices) is RFC 3339 in UTC, made here.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, RFC 3339 in UTC (`2026-11-23T08:15:02.123456789Z`).
pub fn now_rfc3339() -> String {
    format(OffsetDateTime::now_utc())
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Unix milliseconds as RFC 3339 (the number itself if it is out of range).
pub fn ms_rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(format)
        .unwrap_or_else(|_| ms.to_string())
}

fn format(at: OffsetDateTime) -> String {
    // Formatting a UTC time as RFC 3339 only fails for years past 9999.
    at.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_render_as_rfc3339_utc() {
        assert_eq!(ms_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(ms_rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert!(now_rfc3339().ends_with('Z'));
        assert!(now_ms() > 1_700_000_000_000);
    }
}

//! Local services a test may need (PostgreSQL on 127.0.0.1:5432, NATS on 127.0.0.1:4222).
//!
//! Where one is missing, the test prints `SKIPPED: <reason>` and passes, so a developer without
//! it still runs the rest; CI sets `IDHOST_REQUIRE_SERVICES` (a comma-separated list such as
//! `postgres,nats`), and there a missing service fails the test instead of skipping it.

/// The variable naming the services that must be there.
pub const REQUIRE_SERVICES: &str = "IDHOST_REQUIRE_SERVICES";

/// Whether `IDHOST_REQUIRE_SERVICES` names `service`.
pub fn required(service: &str) -> bool {
    std::env::var(REQUIRE_SERVICES).is_ok_and(|list| listed(&list, service))
}

/// Whether the comma-separated `list` names `service` (case and spaces aside).
fn listed(list: &str, service: &str) -> bool {
    list.split(',')
        .any(|s| s.trim().eq_ignore_ascii_case(service))
}

/// Reports that `service` is not available: prints `SKIPPED: <reason>` (the caller then
/// returns), or fails the test when `IDHOST_REQUIRE_SERVICES` names the service.
pub fn skip(service: &str, reason: &str) {
    assert!(
        !required(service),
        "{reason}, and {REQUIRE_SERVICES} requires `{service}`: start it (see .ci/run) or unset the variable"
    );
    eprintln!("SKIPPED: {reason}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_service_is_found_in_the_list_whatever_its_case_and_spacing() {
        assert!(listed("postgres,nats", "nats"));
        assert!(listed(" Postgres , NATS ", "postgres"));
        assert!(!listed("postgres", "nats"));
        assert!(!listed("", "postgres"));
    }
}

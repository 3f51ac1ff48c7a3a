//! Ironclad Clickwrap: envelopes and paging, user/site mapping, scope, memberships, errors: see
//! `idhost_clickwrap::fuzzing::clickwrap_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| idhost_clickwrap::fuzzing::clickwrap_parse(data));

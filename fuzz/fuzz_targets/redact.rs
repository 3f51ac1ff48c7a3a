//! The host's secret redactor: see `idhost::fuzzing::redact`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| idhost::fuzzing::redact(data));

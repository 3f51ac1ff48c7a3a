//! `idhost::config::parse` (TOML, `${VAR}` and `${file:…}` interpolation, validation) on arbitrary
//! text: see `idhost::fuzzing::config_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| idhost::fuzzing::config_parse(data));

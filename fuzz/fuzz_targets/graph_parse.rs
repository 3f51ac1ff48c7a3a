//! Microsoft Graph: collection pages and nextLinks, `$batch` answers, delta rounds, errors: see
//! `idhost_entra::fuzzing::graph_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| idhost_entra::fuzzing::graph_parse(data));

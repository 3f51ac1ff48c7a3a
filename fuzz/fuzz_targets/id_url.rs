//! Ids parsed and placed in upstream URLs: see `idhost_connector_sdk::fuzzing::id_url`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| idhost_connector_sdk::fuzzing::id_url(data));

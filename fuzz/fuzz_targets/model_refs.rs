//! Baton-style id parsing: see `idhost_connector_sdk::fuzzing::model_refs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| idhost_connector_sdk::fuzzing::model_refs(data));

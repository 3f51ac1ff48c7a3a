//! The SDK's handling of an upstream answer (JSON, status, errors, Retry-After, OAuth token
//! answers): see `idhost_connector_sdk::fuzzing::sdk_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| idhost_connector_sdk::fuzzing::sdk_response(data));

//! Replays the stored fuzz corpus of targets `sdk_response`, `model_refs` and `id_url` (fuzz/corpus/<target>/)
//! through the entry points the fuzz targets call, so `cargo test` checks every stored
//! input (crash regressions included) without nightly or cargo-fuzz. A missing or empty corpus
//! fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use std::path::Path;

use idhost_connector_sdk::fuzzing::assert_corpus_runs_clean;

fn replay(target: &str, run: fn(&[u8])) {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    assert_corpus_runs_clean(&corpus, target, run);
}

#[test]
fn every_stored_sdk_response_input_runs_clean() {
    replay("sdk_response", idhost_connector_sdk::fuzzing::sdk_response);
}

#[test]
fn every_stored_model_refs_input_runs_clean() {
    replay("model_refs", idhost_connector_sdk::fuzzing::model_refs);
}

#[test]
fn every_stored_id_url_input_runs_clean() {
    replay("id_url", idhost_connector_sdk::fuzzing::id_url);
}

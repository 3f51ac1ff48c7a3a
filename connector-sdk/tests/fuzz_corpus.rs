//! Replays the stored fuzz corpus of targets `sdk_response` and `model_refs` (fuzz/corpus/<target>/)
//! through the entry points the fuzz targets call, so `cargo test` checks every stored
//! input (crash regressions included) without nightly or cargo-fuzz. A missing or empty corpus
//! fails.

use std::path::Path;

use idhost_connector_sdk::fuzzing::replay_corpus;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let replayed = replay_corpus(&dir, run)
        .unwrap_or_else(|err| panic!("cannot read the corpus {}: {err}", dir.display()));
    assert!(replayed > 0, "no stored inputs in {}", dir.display());
}

#[test]
fn every_stored_sdk_response_input_runs_clean() {
    replay("sdk_response", idhost_connector_sdk::fuzzing::sdk_response);
}

#[test]
fn every_stored_model_refs_input_runs_clean() {
    replay("model_refs", idhost_connector_sdk::fuzzing::model_refs);
}

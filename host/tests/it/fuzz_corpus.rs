//! Replays the stored fuzz corpus of targets `config_parse` and `redact` (fuzz/corpus/<target>/)
//! through the entry points the fuzz targets call, so `cargo test` checks every stored
//! input (crash regressions included) without nightly or cargo-fuzz. A missing or empty corpus
//! fails.

use std::path::Path;

use idhost_connector_sdk::fuzzing::assert_corpus_runs_clean;

fn replay(target: &str, run: fn(&[u8])) {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    assert_corpus_runs_clean(&corpus, target, run);
}

#[test]
fn every_stored_config_parse_input_runs_clean() {
    replay("config_parse", idhost::fuzzing::config_parse);
}

#[test]
fn every_stored_redact_input_runs_clean() {
    replay("redact", idhost::fuzzing::redact);
}

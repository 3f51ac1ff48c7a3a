//! Replays the stored fuzz corpus of target `graph_parse` (fuzz/corpus/graph_parse/)
//! through the entry point the fuzz target calls, so `cargo test` checks every stored
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
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    assert_corpus_runs_clean(&corpus, target, run);
}

#[test]
fn every_stored_graph_parse_input_runs_clean() {
    replay("graph_parse", idhost_entra::fuzzing::graph_parse);
}

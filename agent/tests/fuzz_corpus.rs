//! Replays the fuzz corpus of the agent's targets on stable Rust: every file
//! of `fuzz/corpus/<target>/` goes through the target's function in
//! `hindsight_agent::fuzzing`, so an input that once broke a parser stays a test.
//!
//! `cargo test -p hindsight-agent --test fuzz_corpus -- --ignored` writes the
//! seed corpus (`seed-*` files) again.

use std::path::{Path, PathBuf};

use hindsight_agent::fuzzing::{TARGETS, seeds};

/// The cargo-fuzz crate at the root of the repository.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fuzz")
}

/// Every file of each target's corpus, through the target; a missing or empty corpus fails.
#[test]
fn corpus_replays() {
    for (target, run) in TARGETS {
        hindsight_fs::fuzzing::replay_corpus(&fuzz_dir(), target, *run);
    }
}

/// Writes the seed corpus (run by hand after changing a target's input format).
#[test]
#[ignore]
fn write_seed_corpus() {
    hindsight_fs::fuzzing::write_seeds(&fuzz_dir(), seeds());
}

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
        let dir = fuzz_dir().join("corpus").join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
        let mut files: Vec<PathBuf> =
            entries.map(|e| e.expect("corpus entry").path()).filter(|p| p.is_file()).collect();
        files.sort();
        assert!(!files.is_empty(), "corpus {} is empty", dir.display());
        for path in files {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if std::panic::catch_unwind(|| run(&bytes)).is_err() {
                panic!("{} fails target {target}", path.display());
            }
        }
        let file = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        assert!(file.is_file(), "target {target} has no {}", file.display());
    }
}

/// Writes the seed corpus (run by hand after changing a target's input format).
#[test]
#[ignore]
fn write_seed_corpus() {
    for (target, name, bytes) in seeds() {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
    }
}

//! Replays the fuzz corpus of this crate's targets on stable Rust: every file
//! of `fuzz/corpus/<target>/` goes through the target's function in
//! `hindsight_fs::fuzzing`, so an input that once broke a reader stays a test.
//!
//! `cargo test -p hindsight-fs --test fuzz_corpus -- --ignored` writes the
//! seed corpus (`seed-*` files) again.

use std::path::{Path, PathBuf};

use hindsight_fs::fuzzing::{TARGETS, seeds};

/// The cargo-fuzz crate at the root of the repository.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fuzz")
}

/// Runs every file of `target`'s corpus through it; fails on a missing or empty corpus.
fn replay(target: &str) {
    let run = TARGETS.iter().find(|(name, _)| *name == target).map(|(_, f)| *f);
    let run = run.unwrap_or_else(|| panic!("{target} is not a target of hindsight_fs::fuzzing"));
    hindsight_fs::fuzzing::replay_corpus(&fuzz_dir(), target, run);
}

macro_rules! corpus_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*

        /// Every target has a test above and a cargo-fuzz target file.
        #[test]
        fn every_target_is_replayed_and_fuzzed() {
            let tested = [$(stringify!($target)),*];
            for (name, _) in TARGETS {
                assert!(tested.contains(name), "target {name} has no corpus test");
                let file = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
                assert!(file.is_file(), "target {name} has no {}", file.display());
            }
        }
    };
}

corpus_tests!(
    index_rows,
    index_file,
    manifest,
    marker,
    tar,
    archive_check_tar,
    archive_check_gz,
    archive_members,
    xattrs,
    ssh_output,
);

/// Writes the seed corpus (run by hand after changing a target's input format).
#[test]
#[ignore]
fn write_seed_corpus() {
    hindsight_fs::fuzzing::write_seeds(&fuzz_dir(), seeds());
}

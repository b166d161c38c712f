//! Fuzz target: snapshot.json through Manifest::parse and check_identity
//! (`hindsight_fs::fuzzing::manifest`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hindsight_fs::fuzzing::manifest(data));

//! Fuzz target: tar header blocks, PAX records and paths; entries encoded and parsed back
//! (`hindsight_fs::fuzzing::tar`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hindsight_fs::fuzzing::tar(data));

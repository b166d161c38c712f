//! Fuzz target: ls and find output of an SSH destination, and the batches of a tree check
//! (`hindsight_fs::fuzzing::ssh_output`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hindsight_fs::fuzzing::ssh_output(data));

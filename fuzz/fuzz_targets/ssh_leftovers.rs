//! Fuzz target: the find listing of interrupted runs on an SSH destination, and its times
//! (`hindsight_agent::fuzzing::ssh_leftovers`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hindsight_agent::fuzzing::ssh_leftovers(data));

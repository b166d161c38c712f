//! Fuzz target: what GNU tar on an SSH server says while extracting a snapshot
//! (`hindsight_agent::fuzzing::ssh_tar_stderr`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hindsight_agent::fuzzing::ssh_tar_stderr(data));

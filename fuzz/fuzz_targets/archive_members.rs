//! Fuzz target: gzip members and a members table read by the compressed-archive reader
//! (`hindsight_fs::fuzzing::archive_members`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hindsight_fs::fuzzing::archive_members(data));

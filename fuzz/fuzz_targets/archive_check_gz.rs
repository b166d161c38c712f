//! Fuzz target: the input as data.tar.gz of a compressed snapshot, through its integrity check
//! (`hindsight_fs::fuzzing::archive_check_gz`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hindsight_fs::fuzzing::archive_check_gz(data));

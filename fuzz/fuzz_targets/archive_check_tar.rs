//! Fuzz target: the input as data.tar of an archived snapshot, through its integrity check
//! (`hindsight_fs::fuzzing::archive_check_tar`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hindsight_fs::fuzzing::archive_check_tar(data));

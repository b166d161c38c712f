//! Fuzz target: the xattrs column through Xattrs::decode and encode
//! (`hindsight_fs::fuzzing::xattrs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hindsight_fs::fuzzing::xattrs(data));

//! Fuzz target: the input as a whole index.sqlite, opened with IndexReader and queried
//! (`hindsight_fs::fuzzing::index_file`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hindsight_fs::fuzzing::index_file(data));

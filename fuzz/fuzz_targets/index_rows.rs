//! Fuzz target: an index with fuzz-chosen rows of any SQLite type, read through IndexReader and
//! checked as an archive (`hindsight_fs::fuzzing::index_rows`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hindsight_fs::fuzzing::index_rows(data));

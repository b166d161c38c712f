//! Fuzz target: the HINDSIGHT marker through Marker::parse (`hindsight_fs::fuzzing::marker`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hindsight_fs::fuzzing::marker(data));

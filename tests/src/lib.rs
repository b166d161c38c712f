//! End-to-end tests of Hindsight. The suite is one test binary,
//! `tests/e2e/main.rs`, with its harness in `tests/e2e/support/`; this library is
//! empty.

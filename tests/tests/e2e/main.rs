//! End-to-end tests of Hindsight: the real `hindsightd` on temporary state
//! dirs, driven only through the real `hindsight` CLI (plus raw HTTP for
//! malformed requests), checked on disk.
//!
//! Build the binaries first (`cargo build --workspace`), or point
//! `HINDSIGHTD_BIN` / `HINDSIGHT_BIN` at them. Work dirs go under
//! `$HINDSIGHT_TEST_DIR` (else the system temp dir). Run as root: the tests
//! chown, mknod, mount tmpfs and create the user `hsuser`.

mod support;

mod accounts;
mod agent;
mod archive;
mod archive_mount;
mod bad_input;
mod check;
mod crash;
mod database_dumps;
mod databases;
mod destinations;
mod docs;
mod faults;
mod history;
mod hooks;
mod metrics;
mod mount;
mod names;
mod notify;
mod reliability;
mod remote_archive;
mod remote_backup;
mod remote_check;
mod remote_destinations;
mod remote_ssh;
mod restore;
mod roundtrip;
mod runs;
mod schedules;
mod security;
mod selection;
mod services;
mod snapshots;

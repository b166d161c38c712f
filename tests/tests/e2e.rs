//! End-to-end tests of Hindsight: the real `hindsightd` on temporary state
//! dirs, driven only through the real `hindsight` CLI (plus raw HTTP for
//! malformed requests), checked on disk.
//!
//! Build the binaries first (`cargo build --workspace`), or point
//! `HINDSIGHTD_BIN` / `HINDSIGHT_BIN` at them. Work dirs go under
//! `$HINDSIGHT_TEST_DIR` (else the system temp dir). Run as root: the tests
//! chown, mknod, mount tmpfs and create the user `hsuser`.

#[path = "e2e/support/mod.rs"]
mod support;

#[path = "e2e/agent.rs"]
mod agent;
#[path = "e2e/archive.rs"]
mod archive;
#[path = "e2e/archive_mount.rs"]
mod archive_mount;
#[path = "e2e/bad_input.rs"]
mod bad_input;
#[path = "e2e/check.rs"]
mod check;
#[path = "e2e/crash.rs"]
mod crash;
#[path = "e2e/destinations.rs"]
mod destinations;
#[path = "e2e/faults.rs"]
mod faults;
#[path = "e2e/mount.rs"]
mod mount;
#[path = "e2e/names.rs"]
mod names;
#[path = "e2e/reliability.rs"]
mod reliability;
#[path = "e2e/remote_archive.rs"]
mod remote_archive;
#[path = "e2e/remote_backup.rs"]
mod remote_backup;
#[path = "e2e/remote_check.rs"]
mod remote_check;
#[path = "e2e/remote_destinations.rs"]
mod remote_destinations;
#[path = "e2e/remote_ssh.rs"]
mod remote_ssh;
#[path = "e2e/roundtrip.rs"]
mod roundtrip;
#[path = "e2e/runs.rs"]
mod runs;
#[path = "e2e/schedules.rs"]
mod schedules;
#[path = "e2e/security.rs"]
mod security;
#[path = "e2e/selection.rs"]
mod selection;
#[path = "e2e/services.rs"]
mod services;
#[path = "e2e/snapshots.rs"]
mod snapshots;

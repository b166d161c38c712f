//! The daemon's life cycle: one agent per state dir, a private API socket,
//! and a clean exit on SIGTERM.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use crate::support::daemon::run_to_exit;
use crate::support::{Daemon, Sandbox, s};

#[test]
fn second_agent_on_the_same_state_dir_refuses_to_start() {
    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let mut second = daemon.opts().clone();
    second.log = sb.path().join("second.log");

    let (status, log) = run_to_exit(&second);
    assert!(!status.success(), "the second agent exited {status}");
    assert!(log.contains("already running"), "the second agent did not say why:\n{log}");
    assert!(log.contains(s(&second.state_dir)), "the second agent did not name the state dir:\n{log}");
    daemon.cli_ok(&["status"]);
}

#[test]
fn api_socket_is_private() {
    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let md = std::fs::symlink_metadata(daemon.socket()).expect("stat the socket");
    assert!(md.file_type().is_socket(), "{} is not a socket", daemon.socket().display());
    assert_eq!(md.permissions().mode() & 0o777, 0o600, "socket mode");
}

#[test]
fn sigterm_stops_the_agent_and_removes_its_socket() {
    let sb = Sandbox::new();
    let mut daemon = Daemon::start(sb.daemon_opts());
    let socket = daemon.socket().to_path_buf();
    let status = daemon.stop();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    assert!(!socket.exists(), "{} is still there after SIGTERM", socket.display());
}

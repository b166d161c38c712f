//! The daemon's life cycle: one agent per state dir, a private API socket,
//! and a clean exit on SIGTERM.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

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

/// The messages a daemon sends to `sock` until one holds `until`.
fn notifications_until(sock: &std::os::unix::net::UnixDatagram, until: &str) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = m.lines().any(|l| l == until);
            got.push(m);
            if done {
                return got;
            }
        }
    }
    panic!("no {until} within 30 s; got {got:?}");
}

#[test]
fn under_systemd_the_agent_says_when_it_is_ready_what_it_does_and_when_it_stops() {
    let sb = Sandbox::new();
    let path = sb.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let mut opts = sb.daemon_opts();
    opts.env.push(("NOTIFY_SOCKET".into(), path.to_string_lossy().into_owned()));
    // WatchdogSec=1 (systemd passes microseconds): a ping at least every half second.
    opts.env.push(("WATCHDOG_USEC".into(), "1000000".into()));
    let mut daemon = Daemon::start(opts);
    let ready = notifications_until(&sock, "READY=1");
    assert_eq!(ready.len(), 1, "READY=1 comes first: {ready:?}");
    // The API answers once READY=1 is sent.
    daemon.cli_ok(&["status"]);
    let status = notifications_until(&sock, "STATUS=idle; no scheduled run");
    assert!(!status.iter().any(|m| m.contains("STOPPING")), "{status:?}");
    notifications_until(&sock, "WATCHDOG=1");
    let started = std::time::Instant::now();
    notifications_until(&sock, "WATCHDOG=1");
    assert!(started.elapsed() < Duration::from_secs(3), "watchdog pings too far apart for WatchdogSec=1");
    daemon.stop();
    let stopping = notifications_until(&sock, "STOPPING=1");
    assert!(stopping.last().is_some_and(|m| m.contains("STATUS=stopping")), "{stopping:?}");
}

#[test]
fn the_systemd_unit_verifies_with_the_built_agent() {
    let sb = Sandbox::new();
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/hindsightd.service"))
        .expect("read packaging/hindsightd.service");
    assert!(unit.contains("\nType=notify\n"), "the unit is not Type=notify");
    let bin = crate::support::hindsightd_bin();
    let copy = sb.path().join("hindsightd.service");
    std::fs::write(&copy, unit.replace("/usr/local/sbin/hindsightd", s(&bin))).expect("write the unit");
    let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&copy).output().expect("systemd-analyze");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
}

#[test]
fn under_systemd_log_lines_carry_their_syslog_priority() {
    use std::os::unix::fs::MetadataExt;
    let sb = Sandbox::new();
    let mut opts = sb.daemon_opts();
    std::fs::create_dir_all(&opts.root).expect("the daemon's directory");
    std::fs::write(&opts.log, b"").expect("create the log");
    // The daemon's stderr is the log file: say it is the journal's stream.
    let md = std::fs::metadata(&opts.log).expect("stat the log");
    opts.env.push(("JOURNAL_STREAM".into(), format!("{}:{}", md.dev(), md.ino())));
    let daemon = Daemon::start(opts);
    let src = sb.dir("src");
    daemon.add_destination("d", &sb.path().join("dest"), &[]);
    daemon.add_job("j", &[&src], &["d"], &[]);
    std::fs::remove_dir(&src).expect("remove the source");
    let (code, _) = daemon.run_wait("j");
    assert_eq!(code, 1);
    let log = daemon.log();
    assert!(log.lines().any(|l| l.starts_with("<6>hindsight_agent::daemon: hindsightd ready")), "{log}");
    assert!(log.lines().any(|l| l.starts_with("<3>hindsight_agent::runner: run ended: failed")), "{log}");
    assert!(log.lines().filter(|l| !l.is_empty()).all(|l| l.starts_with('<')), "a line without its priority:\n{log}");
}

#[test]
fn exit_codes_tell_failures_apart() {
    let sb = Sandbox::new();
    let mut daemon = Daemon::start(sb.daemon_opts());
    let src = sb.dir("src");
    daemon.add_destination("d", &sb.path().join("dest"), &[]);
    daemon.add_job("j", &[&src], &["d"], &[]);
    assert_eq!(daemon.cli(["status"]).code, 0);
    let usage = daemon.cli(["job", "frobnicate"]);
    assert_eq!(usage.code, 2, "a usage error: {usage}");
    daemon.cli(["job", "show", "nope"]).assert_error_code(5, &["no job named nope"]);
    daemon
        .cli(["job", "add", "j", "--source", s(&src), "--destination", "d"])
        .assert_error_code(6, &["already exists"]);
    let closed =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a port");
    daemon.cli_json(&["notify", "add", "w", "--type", "webhook", "--url", &format!("http://127.0.0.1:{closed}/")]);
    daemon.cli(["notify", "test", "w"]).assert_error_code(7, &["notification integration w"]);
    daemon.cli(["job", "add", "bad", "--source", "relative", "--destination", "d"]).assert_error_code(1, &["relative"]);
    std::fs::remove_dir(&src).expect("remove the source");
    assert_eq!(daemon.run_wait("j").0, 1, "a failed run");
    daemon.stop();
    daemon.cli(["status"]).assert_error_code(4, &["cannot reach hindsightd"]);
}

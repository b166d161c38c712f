//! Runs: queueing and `--wait` exit statuses, cancelling a large backup (no
//! snapshot; the next run reuses what was copied), and per-file errors with
//! the agent running unprivileged (run `partial`, the file named, exit 2).

use std::path::{Path, PathBuf};

use crate::support::daemon::str_field;
use crate::support::fixture::{self, chmod};
use crate::support::system::{UNPRIVILEGED_USER, chown_tree, unprivileged_user};
use crate::support::{DEST, Daemon, DaemonOpts, JOB, Sandbox, Setup, assert_same, describe, s};

#[test]
fn job_run_reports_the_queued_run_and_wait_exits_zero_on_completion() {
    let s = Setup::new(fixture::small_tree);
    let out = s.daemon.cli_ok(&["job", "run", JOB]);
    let id: i64 = out
        .stdout
        .trim()
        .strip_prefix("run ")
        .and_then(|r| r.strip_suffix(" queued"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("expected `run N queued`:\n{out}"));
    assert_eq!(s.daemon.wait_run_final(id)["state"], "completed");

    let queued = s.daemon.cli_json(&["job", "run", JOB]);
    assert_eq!(queued["id"], id + 1, "{queued:#}");
    assert_eq!(queued["job"], JOB, "{queued:#}");
    assert!(matches!(str_field(&queued, "state"), "queued" | "running"), "{queued:#}");
    assert_eq!(s.daemon.wait_run_final(id + 1)["state"], "completed");

    let waited = s.daemon.cli(["job", "run", JOB, "--wait"]);
    assert_eq!(waited.code, 0, "{waited}");
    assert!(waited.stdout.contains(&format!("run {} completed", id + 2)), "{waited}");
    let job = s.daemon.cli_json(&["job", "show", JOB]);
    assert_eq!(job["last_run"]["state"], "completed", "{job:#}");
    assert_eq!(job["last_run"]["id"], id + 2, "{job:#}");
}

#[test]
fn cancelled_backup_leaves_no_snapshot_and_the_next_run_reuses_its_copies() {
    let mut total = 0;
    let s = Setup::new(|src| total = fixture::big_files(src));
    let id = s.daemon.start_run(JOB);
    s.daemon.wait_mid_copy(id, &s.job_dir());
    let cancelling = s.daemon.cli_json(&["run", "cancel", &id.to_string()]);
    assert_eq!(cancelling["id"], id, "{cancelling:#}");

    let run = s.daemon.wait_run_final(id);
    assert_eq!(run["state"], "cancelled", "{run:#}");
    s.assert_next_run_resumes(&[], total);
}

/// An agent running as [`UNPRIVILEGED_USER`], which owns its state, the source and the destination.
/// Fields drop in order: the daemon goes before the sandbox.
struct Unprivileged {
    daemon: Daemon,
    src: PathBuf,
    _sb: Sandbox,
}

impl Unprivileged {
    /// `fill` fills the source before everything is given to the user.
    fn new(fill: impl FnOnce(&Path)) -> Self {
        let (uid, gid) = unprivileged_user();
        let sb = Sandbox::new();
        chmod(sb.path(), 0o755);
        let home = sb.dir("home");
        let src = sb.dir("home/src");
        fill(&src);
        let agent = sb.dir("home/agent");
        chown_tree(&home, uid, gid);
        let daemon = Daemon::start(DaemonOpts::in_dir(&agent).run_as(UNPRIVILEGED_USER));
        daemon.add_destination(DEST, &home.join("dest"), &[]);
        daemon.add_job(JOB, &[&src], &[DEST], &[]);
        Unprivileged { daemon, src, _sb: sb }
    }
}

#[test]
fn unreadable_file_makes_the_run_partial_and_is_left_out() {
    let u = Unprivileged::new(fixture::small_tree);
    let secret = u.src.join("b/secret.txt");
    fixture::write(&secret, b"only root may read this\n");
    let (uid, gid) = unprivileged_user();
    fixture::own(&secret, uid, gid, 0o000);

    let (code, run) = u.daemon.run_wait(JOB);
    assert_eq!(code, 3, "exit status of a partial run: {run:#}");
    assert_eq!(run["state"], "partial", "{run:#}");
    let shown = u.daemon.run_show(run["id"].as_i64().expect("run id"));
    let errors = shown["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        errors.iter().any(|e| e["path"] == s(&secret)),
        "the run's errors do not name {}: {shown:#}",
        secret.display()
    );

    let snap = u.daemon.snapshot_of(&run);
    let listed = u.daemon.cli_json(&["snapshot", "show", &snap.id.to_string()]);
    assert_eq!(listed["partial"], true, "{listed:#}");
    let expected = describe(&u.src).without(|rel| rel == b"b/secret.txt");
    assert_same(&expected, &describe(&snap.tree(&u.src)), "snapshot without the unreadable file");
}

/// Fails today: the engine also reports `/` and every ancestor of the source
/// as failed ("cannot set directory metadata: Operation not permitted"), so an
/// unprivileged agent never completes a run.
#[test]
fn unprivileged_agent_completes_a_readable_source() {
    let u = Unprivileged::new(fixture::small_tree);
    let (code, run) = u.daemon.run_wait(JOB);
    assert!(code == 0 && run["state"] == "completed", "exit {code}, run: {run:#}");
    assert_eq!(run["errors"], serde_json::json!([]), "{run:#}");
}

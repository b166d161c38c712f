//! Recovery after the agent stopped in the middle of a large backup, by
//! `kill -9` or by SIGTERM: no snapshot appears, earlier snapshots stay
//! intact, and the next run completes, reusing what was copied. A deletion
//! interrupted by a stop is finished at the next start.

use crate::support::fixture;
use crate::support::{JOB, Setup, assert_only_snapshots, assert_same, describe};

#[test]
fn kill_9_during_a_backup_leaves_no_snapshot_and_the_next_run_completes() {
    let mut s = Setup::new(fixture::small_tree);
    let first = s.daemon.backup(JOB);
    let old = describe(&s.src);
    let total = fixture::big_files(&s.src.join("big"));

    let id = s.daemon.start_run(JOB);
    s.daemon.wait_mid_copy(id, &s.job_dir());
    s.daemon.kill9();
    s.daemon.restart();

    let killed = s.daemon.run_show(id);
    assert_eq!(killed["state"], "failed", "the killed run after the restart: {killed:#}");
    assert_same(&old, &describe(&first.tree(&s.src)), "earlier snapshot after the crash");
    s.assert_next_run_resumes(&[&first], total);
}

#[test]
fn sigterm_during_a_backup_cancels_it_and_the_next_run_resumes() {
    let mut total = 0;
    let mut s = Setup::new(|src| total = fixture::big_files(src));
    let id = s.daemon.start_run(JOB);
    s.daemon.wait_mid_copy(id, &s.job_dir());
    let status = s.daemon.stop();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM during a backup");
    s.daemon.restart();

    let stopped = s.daemon.run_show(id);
    assert_eq!(stopped["state"], "cancelled", "{stopped:#}");
    assert!(stopped["message"].as_str().is_some_and(|m| m.contains("shut down")), "{stopped:#}");
    s.assert_next_run_resumes(&[], total);
}

#[test]
fn interrupted_deletion_is_finished_at_the_next_start() {
    let mut s = Setup::new(fixture::small_tree);
    let first = s.daemon.backup(JOB);
    fixture::write(&s.src.join("more.txt"), b"second snapshot\n");
    let second = s.daemon.backup(JOB);
    assert!(s.daemon.stop().success(), "the agent did not stop cleanly");

    let deleting = s.job_dir().join(format!(".deleting-{}", first.name));
    std::fs::rename(&first.path, &deleting).expect("rename the snapshot as a deletion would");
    s.daemon.restart();

    assert!(!deleting.exists(), "{} is still there after the restart", deleting.display());
    assert_eq!(s.daemon.snapshot_names(JOB), [second.name.as_str()], "snapshots listed after the restart");
    assert_only_snapshots(&s.job_dir(), &[&second.name]);
    assert_same(&describe(&s.src), &describe(&second.tree(&s.src)), "remaining snapshot");
}

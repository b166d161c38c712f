//! Recovery after the agent stopped in the middle of a large backup, by
//! `kill -9` or by SIGTERM: no snapshot appears, earlier snapshots stay
//! intact, and the next run completes, reusing what was copied. A deletion
//! interrupted by a stop is finished at the next start.

use crate::support::fixture;
use crate::support::{JOB, Setup, assert_only_snapshots, assert_same, describe, list_names};

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
fn a_resumed_run_drops_what_the_source_no_longer_has_and_follows_nothing_it_finds() {
    let mut total = 0;
    let mut s = Setup::new(|src| {
        total = fixture::big_files(&src.join("big"));
        fixture::small_tree(src);
    });
    let id = s.daemon.start_run(JOB);
    s.daemon.wait_mid_copy(id, &s.job_dir());
    assert!(s.daemon.stop().success(), "the agent did not stop cleanly");
    let partial = list_names(&s.job_dir()).into_iter().find(|n| n.starts_with(".partial-"));
    let partial = partial.expect("the cancelled run left its .partial- directory");
    let tree = s.job_dir().join(partial).join("tree").join(s.src.strip_prefix("/").expect("absolute source"));

    // Left by the interrupted run, or by anyone who could write there: names
    // the source does not have, and names of another kind than the source's.
    fixture::write(&tree.join("gone.txt"), b"stray\n");
    fixture::write(&tree.join("gone-dir/x"), b"stray\n");
    let outside = s.sb.dir("outside");
    fixture::write(&outside.join("keep.txt"), b"outside\n");
    let remove = |p: &std::path::Path| match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).expect("remove dir"),
        Ok(_) => std::fs::remove_file(p).expect("remove file"),
        Err(_) => {}
    };
    remove(&tree.join("b"));
    fixture::symlink(outside.as_os_str().as_encoded_bytes(), &tree.join("b"));
    remove(&tree.join("a.txt"));
    fixture::write(&tree.join("a.txt/inner"), b"stray\n");

    s.daemon.restart();
    s.assert_next_run_resumes(&[], total);
    assert_eq!(list_names(&outside), ["keep.txt"], "the directory a planted symlink pointed to");
    assert_eq!(std::fs::read(outside.join("keep.txt")).expect("read"), b"outside\n");
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

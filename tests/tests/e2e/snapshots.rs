//! Deleting a snapshot: it disappears from the list and the disk at once,
//! and the next snapshot, which shared its unchanged files, stays intact.

use crate::support::fixture;
use crate::support::{JOB, Setup, assert_same, describe, tree::show, wait_until};

#[test]
fn deleting_the_first_snapshot_keeps_the_second_intact() {
    let s = Setup::new(fixture::small_tree);
    let first = s.daemon.backup(JOB);
    fixture::write(&s.src.join("a.txt"), b"changed after the first snapshot\n");
    let second = s.daemon.backup(JOB);
    let before = describe(&second.tree(&s.src));
    let shared: Vec<Vec<u8>> = before.non_dirs().filter(|p| before.inode(p).nlink >= 2).cloned().collect();
    assert!(shared.len() >= 2, "the two snapshots share too few files to test anything: {shared:?}");

    s.daemon.cli_ok(&["snapshot", "delete", &first.id.to_string()]);
    assert_eq!(s.daemon.snapshot_names(JOB), [second.name.as_str()], "snapshots listed after the delete");
    assert!(!first.path.exists(), "{} is still there", first.path.display());
    s.daemon.cli(["snapshot", "show", &first.id.to_string()]).assert_error_code(5, &["no snapshot with id"]);
    let deleting = s.job_dir().join(format!(".deleting-{}", first.name));
    wait_until("the deleted snapshot's files to go", std::time::Duration::from_secs(30), || {
        (!deleting.exists()).then_some(())
    });

    let after = describe(&second.tree(&s.src));
    assert_same(&before, &after, "second snapshot after deleting the first");
    assert_same(&describe(&s.src), &after, "second snapshot against the source");
    for rel in &shared {
        assert_eq!(after.inode(rel).nlink, 1, "{} still has another name after the delete", show(rel));
    }
}

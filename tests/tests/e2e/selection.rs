//! What goes into a snapshot: exclude patterns (unanchored, anchored to one
//! directory, directories only) and one_file_system at mount points.

use crate::support::fixture::{self, glob_escape, write};
use crate::support::system::Mount;
use crate::support::tree::is_under;
use crate::support::{DEST, JOB, Setup, assert_same, describe};

#[test]
fn excludes_leave_out_exactly_what_they_match() {
    let s = Setup::without_job(|src| {
        for f in [
            "keep.txt",
            "a.tmp",
            "keep.tmpx",
            "sub/deep/b.tmp",
            "sub/deep/c.txt",
            "tmpdir.tmp/inside.txt",
            "x.log",
            "sub/y.log",
            "cache/blob",
            "sub/cache/blob",
            "other/cache",
        ] {
            write(&src.join(f), f.as_bytes());
        }
        fixture::stamp_times(src);
    });
    let anchored = format!("{}/*.log", glob_escape(&s.src));
    s.daemon.add_job(
        JOB,
        &[&s.src],
        &[DEST],
        &["--exclude", "*.tmp", "--exclude", &anchored, "--exclude", "**/cache/"],
    );
    let snap = s.daemon.backup(JOB);

    let excluded: [&[u8]; 6] = [b"a.tmp", b"sub/deep/b.tmp", b"tmpdir.tmp", b"x.log", b"cache", b"sub/cache"];
    let expected = describe(&s.src).without(|rel| excluded.iter().any(|e| is_under(rel, e)));
    for kept in ["keep.tmpx", "sub/y.log", "other/cache", "sub/deep/c.txt"] {
        assert!(expected.entries.contains_key(kept.as_bytes()), "the expectation lost {kept}");
    }
    assert_same(&expected, &describe(&snap.tree(&s.src)), "snapshot with excludes");
}

#[test]
fn one_file_system_keeps_mount_points_empty_until_turned_off() {
    let s = Setup::new(fixture::small_tree);
    let mnt = Mount::tmpfs(&s.src.join("mnt"), "size=4m,mode=0750");
    write(&mnt.path().join("inside/file.txt"), b"on another filesystem\n");
    fixture::stamp_times(mnt.path());
    let source = describe(&s.src);

    let first = s.daemon.backup(JOB);
    let expected = source.without(|rel| is_under(rel, b"mnt") && rel != b"mnt");
    assert_same(&expected, &describe(&first.tree(&s.src)), "snapshot staying on one filesystem");

    let job = s.daemon.cli_json(&["job", "edit", JOB, "--one-file-system", "false"]);
    assert_eq!(job["one_file_system"], false, "{job:#}");
    let second = s.daemon.backup(JOB);
    assert_same(&source, &describe(&second.tree(&s.src)), "snapshot crossing into the mount");
}

//! A snapshot is an exact copy of its source: every kind of entry with all
//! its metadata (bytes, mode, owner, ns mtimes, symlink targets, xattrs and
//! ACLs, hardlink groups, sparseness, fifos, devices, odd names). After
//! edits, the next snapshot equals the new source, the first one still
//! equals the old source, and unchanged entries share their inode with it.

use std::collections::BTreeSet;

use crate::support::fixture;
use crate::support::tree::{Kind, show};
use crate::support::{JOB, Setup, assert_same, describe};

#[test]
fn snapshot_equals_a_source_with_every_kind_of_entry() {
    let s = Setup::new(fixture::every_kind);
    let source = describe(&s.src);
    fixture::check_every_kind(&source);

    let snap = s.daemon.backup(JOB);
    assert_eq!(snap.path, s.job_dir().join(&snap.name), "snapshot path in the listing");
    let copy = describe(&snap.tree(&s.src));
    assert_same(&source, &copy, "snapshot of every kind of entry");
    fixture::assert_sparse(&copy, fixture::SPARSE.as_bytes());

    let shown = s.daemon.cli_json(&["snapshot", "show", &snap.id.to_string()]);
    let files: Vec<u64> = source.entries.values().filter(|e| e.kind == Kind::File).map(|e| e.size).collect();
    assert_eq!(shown["partial"], false, "{shown:#}");
    assert_eq!(shown["files"], files.len(), "file count in {shown:#}");
    assert_eq!(shown["bytes"], files.iter().sum::<u64>(), "byte count in {shown:#}");
}

#[test]
fn next_snapshot_follows_edits_and_shares_unchanged_entries() {
    let s = Setup::new(fixture::every_kind);
    let old = describe(&s.src);
    let first = s.daemon.backup(JOB);
    let changed = fixture::edit_every_kind(&s.src);
    let new = describe(&s.src);
    let second = s.daemon.backup(JOB);

    let (t1, t2) = (describe(&first.tree(&s.src)), describe(&second.tree(&s.src)));
    assert_same(&new, &t2, "second snapshot");
    assert_same(&old, &t1, "first snapshot after the second backup");

    let in_both: Vec<&Vec<u8>> = old.non_dirs().filter(|p| new.entries.contains_key(*p)).collect();
    let differing: BTreeSet<String> =
        in_both.iter().filter(|p| old.entries[**p] != new.entries[**p]).map(|p| show(p)).collect();
    let intended: BTreeSet<String> = changed.iter().map(|p| show(p)).collect();
    assert_eq!(differing, intended, "entries changed by the edits");
    for rel in in_both {
        let (a, b) = (t1.inode(rel), t2.inode(rel));
        let shared = (a.dev, a.ino) == (b.dev, b.ino);
        if changed.contains(rel) {
            assert!(!shared, "{} changed but the second snapshot links the first one's copy", show(rel));
        } else {
            assert!(
                shared && b.nlink >= 2,
                "{} is unchanged but not shared with the first snapshot (inodes {} / {}, nlink {})",
                show(rel),
                a.ino,
                b.ino,
                b.nlink
            );
        }
    }

    let written = new
        .entries
        .iter()
        .filter(|(p, e)| e.kind == Kind::File && (!old.entries.contains_key(*p) || changed.contains(p)))
        .count();
    let shown = s.daemon.cli_json(&["snapshot", "show", &second.id.to_string()]);
    assert_eq!(shown["files_added"], written, "files written by the second snapshot: {shown:#}");
}

#[test]
fn hardlink_groups_spread_over_many_directories_stay_one_group() {
    // Directories are walked on several threads: the names of one file meet
    // on different threads at once, and must still become one inode.
    const FILES: usize = 16;
    const DIRS: usize = 48;
    let s = Setup::new(|src| {
        for f in 0..FILES {
            fixture::write(&src.join(format!("originals/f{f}")), format!("file {f}\n").as_bytes());
        }
        for d in 0..DIRS {
            fixture::mkdir(&src.join(format!("d{d}/sub")));
            for f in 0..FILES {
                let (from, to) = (src.join(format!("originals/f{f}")), src.join(format!("d{d}/sub/f{f}")));
                std::fs::hard_link(&from, &to).unwrap_or_else(|e| panic!("link {}: {e}", to.display()));
            }
        }
    });
    let source = describe(&s.src);
    assert_eq!(source.hardlink_groups().len(), FILES, "hardlink groups of the source");
    for round in ["first", "second"] {
        let snap = s.daemon.backup(JOB);
        let copy = describe(&snap.tree(&s.src));
        assert_same(&source, &copy, &format!("{round} snapshot of hardlink groups over {DIRS} directories"));
        let groups = copy.hardlink_groups();
        assert_eq!(groups.len(), FILES, "{round} snapshot's hardlink groups: {groups:?}");
        assert!(groups.iter().all(|g| g.len() == DIRS + 1), "{round} snapshot's hardlink groups: {groups:?}");
    }
}

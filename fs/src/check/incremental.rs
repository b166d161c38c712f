//! Incremental snapshots: every index entry against `tree/`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{Findings, PathCache, hash_file};
use crate::entry::EntryKind;
use crate::index::{IndexEntry, IndexReader};
use crate::layout::TREE_DIR;

/// Inodes remembered at most: beyond, shared files are read again rather than
/// letting memory grow with the destination (~100 bytes each).
const MAX_SEEN: usize = 1 << 20;

/// The blake3 of inodes already read during this check: unchanged files are
/// one inode hardlinked into every snapshot, and reading it once is enough.
#[derive(Debug, Default)]
pub(super) struct SeenInodes(HashMap<(u64, u64), [u8; 32]>);

/// Checks every entry of the index against `dir/tree/`.
pub(super) fn check(dir: &Path, index: &IndexReader, read_data: bool, seen: &mut SeenInodes, f: &mut Findings) {
    let tree = dir.join(TREE_DIR);
    if !tree.is_dir() {
        // One line rather than one per entry of the index.
        return f.problems.snapshot(format!("{TREE_DIR}/ is missing: the snapshot holds no files"));
    }
    let mut paths = PathCache::default();
    let walked = index.for_each(|e| {
        f.entries_checked += 1;
        match paths.path(index, e.id, e.parent, &e.name, e.meta.kind == EntryKind::Dir) {
            Ok(rel) => check_entry(&tree, &rel, &e, read_data, seen, f),
            Err(err) => f.problems.snapshot(format!("entry {}: {err}", e.id)),
        }
        Ok(())
    });
    if let Err(e) = walked {
        f.problems.snapshot(format!("the index cannot be read to the end: {e}"));
    }
}

/// One entry: present, of the right kind, and for files of the right size
/// (and content, with `read_data`).
fn check_entry(tree: &Path, rel: &[u8], e: &IndexEntry, read_data: bool, seen: &mut SeenInodes, f: &mut Findings) {
    let full = if rel.is_empty() { tree.to_path_buf() } else { tree.join(OsStr::from_bytes(rel)) };
    let md = match std::fs::symlink_metadata(&full) {
        Ok(md) => md,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return f.problems.entry(rel, format!("missing from {TREE_DIR}/"));
        }
        Err(err) => return f.problems.entry(rel, format!("cannot stat: {err}")),
    };
    let kind = EntryKind::from_mode(md.mode());
    if kind != Some(e.meta.kind) {
        let found = kind.map_or("unknown kind of file", kind_name);
        return f
            .problems
            .entry(rel, format!("is a {found} in {TREE_DIR}/, the index says {}", kind_name(e.meta.kind)));
    }
    match e.meta.kind {
        EntryKind::File => {
            if md.len() != e.meta.size {
                return f.problems.entry(rel, format!("has {} bytes, the index says {}", md.len(), e.meta.size));
            }
            if let (true, Some(want)) = (read_data, e.blake3) {
                check_content(&full, rel, (md.dev(), md.ino()), &want, seen, f);
            }
        }
        EntryKind::Symlink => match std::fs::read_link(&full) {
            Ok(t) if Some(t.as_os_str().as_bytes()) == e.meta.target.as_deref() => {}
            Ok(t) => f.problems.entry(rel, format!("points to {}, the index says otherwise", t.display())),
            Err(err) => f.problems.entry(rel, format!("cannot read the link: {err}")),
        },
        _ => {}
    }
}

/// Hashes a file (once per inode) and compares with the index.
fn check_content(full: &Path, rel: &[u8], inode: (u64, u64), want: &[u8; 32], seen: &mut SeenInodes, f: &mut Findings) {
    let got = match seen.0.get(&inode) {
        Some(h) => *h,
        None => match hash_file(full) {
            Ok((h, n)) => {
                f.bytes_read += n;
                if seen.0.len() < MAX_SEEN {
                    seen.0.insert(inode, *h.as_bytes());
                }
                *h.as_bytes()
            }
            Err(err) => return f.problems.entry(rel, format!("cannot read: {err}")),
        },
    };
    if &got != want {
        f.problems.entry(rel, "content does not match the index (blake3 differs)");
    }
}

/// The kind for messages.
pub(crate) fn kind_name(k: EntryKind) -> &'static str {
    match k {
        EntryKind::File => "regular file",
        EntryKind::Dir => "directory",
        EntryKind::Symlink => "symlink",
        EntryKind::Fifo => "fifo",
        EntryKind::CharDev => "character device",
        EntryKind::BlockDev => "block device",
        EntryKind::Socket => "socket",
    }
}

//! Incremental snapshots: every index entry against `tree/`.

use crate::check::ReadData;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::{Findings, PathCache, hash_reader};
use crate::entry::EntryKind;
use crate::index::{IndexEntry, IndexReader};
use crate::layout::TREE_DIR;
use crate::posix;

/// Inodes remembered at most: beyond, shared files are read again rather than
/// letting memory grow with the destination (~100 bytes each).
const MAX_SEEN: usize = 1 << 20;

/// The blake3 of inodes already read during this check: unchanged files are
/// one inode hardlinked into every snapshot, and reading it once is enough.
#[derive(Debug, Default)]
pub(super) struct SeenInodes(HashMap<(u64, u64), [u8; 32]>);

/// Checks every entry of the index against `dir/tree/`. Entries are
/// reached beneath the tree without following a symlink anywhere in their
/// path: a destination may hold links planted by someone else, and the check
/// (run as root) must neither read nor report on anything outside.
pub(super) fn check(dir: &Path, index: &IndexReader, read_data: ReadData, seen: &mut SeenInodes, f: &mut Findings) {
    let tree_path = dir.join(TREE_DIR);
    let tree = match rustix::fs::open(
        &tree_path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // One line rather than one per entry of the index.
        Err(_) => return f.problems.snapshot(format!("{TREE_DIR}/ is missing: the snapshot holds no files")),
    };
    let mut paths = PathCache::default();
    let walked = index.for_each(|e| {
        f.entries_checked += 1;
        match paths.path(index, e.id, e.parent, &e.name, e.meta.kind == EntryKind::Dir) {
            Ok(rel) => check_entry(tree.as_fd(), &rel, &e, read_data, seen, f),
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
fn check_entry(
    tree: BorrowedFd<'_>,
    rel: &[u8],
    e: &IndexEntry,
    read_data: ReadData,
    seen: &mut SeenInodes,
    f: &mut Findings,
) {
    let rel_path = rel.strip_suffix(b"/").unwrap_or(rel);
    let opened = if rel_path.is_empty() {
        rustix::io::fcntl_dupfd_cloexec(tree, 0).map_err(std::io::Error::from)
    } else {
        posix::open_beneath(tree, rel_path, OFlags::PATH | OFlags::NOFOLLOW)
    };
    let fd = match opened {
        Ok(fd) => fd,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return f.problems.entry(rel, format!("missing from {TREE_DIR}/"));
        }
        Err(err)
            if posix::is_errno(&err, rustix::io::Errno::LOOP) || posix::is_errno(&err, rustix::io::Errno::XDEV) =>
        {
            return f.problems.entry(rel, format!("lies behind a symlink in {TREE_DIR}/, not in it"));
        }
        Err(err) => return f.problems.entry(rel, format!("cannot stat: {err}")),
    };
    let st = match rustix::fs::fstat(&fd) {
        Ok(st) => st,
        Err(err) => return f.problems.entry(rel, format!("cannot stat: {err}")),
    };
    let kind = EntryKind::from_mode(st.st_mode);
    if kind != Some(e.meta.kind) {
        let found = kind.map_or("unknown kind of file", kind_name);
        return f
            .problems
            .entry(rel, format!("is a {found} in {TREE_DIR}/, the index says {}", kind_name(e.meta.kind)));
    }
    match e.meta.kind {
        EntryKind::File => {
            if st.st_size as u64 != e.meta.size {
                return f.problems.entry(rel, format!("has {} bytes, the index says {}", st.st_size, e.meta.size));
            }
            if let Some(want) = e.blake3.filter(|h| read_data.wants(h)) {
                check_content(fd.as_fd(), rel, (st.st_dev, st.st_ino), &want, seen, f);
            }
        }
        EntryKind::Symlink => match rustix::fs::readlinkat(&fd, "", Vec::new()) {
            Ok(t) if Some(t.as_bytes()) == e.meta.target.as_deref() => {}
            Ok(t) => f.problems.entry(rel, format!("points to {}, the index says otherwise", t.to_string_lossy())),
            Err(err) => f.problems.entry(rel, format!("cannot read the link: {err}")),
        },
        _ => {}
    }
}

/// Hashes a file (once per inode) and compares with the index. `fd` is the
/// file, opened `O_PATH`; it is reopened for reading through `/proc`, which
/// names that very inode.
fn check_content(
    fd: BorrowedFd<'_>,
    rel: &[u8],
    inode: (u64, u64),
    want: &[u8; 32],
    seen: &mut SeenInodes,
    f: &mut Findings,
) {
    let got = match seen.0.get(&inode) {
        Some(h) => *h,
        None => {
            let reopened = std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            match std::fs::File::open(&reopened).and_then(hash_reader) {
                Ok((h, n)) => {
                    f.bytes_read += n;
                    if seen.0.len() < MAX_SEEN {
                        seen.0.insert(inode, *h.as_bytes());
                    }
                    *h.as_bytes()
                }
                Err(err) => return f.problems.entry(rel, format!("cannot read: {err}")),
            }
        }
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

//! Attributes of mount nodes: snapshot entries from their index rows, virtual
//! directories and links from the registry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use rustix::fs::Stat;

use super::registry::{SnapshotNode, entry_node};
use crate::entry::{EntryKind, split_ns};
use crate::index::IndexEntry;

/// Cache lifetime of anything inside a snapshot: it never changes.
pub(super) const TTL_FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);
/// Cache lifetime of the nodes above snapshots, which follow the destinations.
pub(super) const TTL_VIRTUAL: Duration = Duration::from_secs(1);

/// The FUSE file type of an entry kind.
pub(super) fn file_type(kind: EntryKind) -> FileType {
    match kind {
        EntryKind::File => FileType::RegularFile,
        EntryKind::Dir => FileType::Directory,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::Fifo => FileType::NamedPipe,
        EntryKind::CharDev => FileType::CharDevice,
        EntryKind::BlockDev => FileType::BlockDevice,
        EntryKind::Socket => FileType::Socket,
    }
}

fn time(ns: i64) -> SystemTime {
    let (s, n) = split_ns(ns);
    if s >= 0 {
        UNIX_EPOCH + Duration::new(s as u64, n)
    } else {
        UNIX_EPOCH - Duration::from_secs(s.unsigned_abs()) + Duration::from_nanos(u64::from(n))
    }
}

/// The `st_ino` of an entry: its inode on the destination (live, else as
/// indexed), offset per destination so two disks' inode numbers never meet.
/// When neither is known (archives), the node id of the first name of its
/// hardlink group: stable, and one number for all the names of one file.
pub(super) fn st_ino(snap: &SnapshotNode, e: &IndexEntry, live: Option<&Stat>, node: u64) -> u64 {
    // Remote content: the same bytes in the same object in every snapshot that shares it.
    // Names of one hardlink group also carry the group: two groups with equal
    // content are two files, which `cp -a` and `rsync -H` must not merge.
    let stored = e.location.blob.as_ref().map(|key| {
        let group = e.hardlink.filter(|_| e.nlink > 1).unwrap_or(0);
        let h = blake3::Hasher::new()
            .update(key.as_bytes())
            .update(&e.location.data_offset.unwrap_or(0).to_le_bytes())
            .update(&group.to_le_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&h.as_bytes()[..8]);
        u64::from_le_bytes(first) & ((1 << 48) - 1)
    });
    match live.map(|s| s.st_ino).or(e.location.ino).or(stored) {
        Some(ino) if ino < 1 << 48 => ino | ((u64::from(snap.dest_index) + 1) << 48),
        _ => e.hardlink.filter(|&h| h > 0).map_or(node, |h| entry_node(snap.slot, h)),
    }
}

/// Attributes of a snapshot entry. `live` is the entry's stat on the
/// destination (incremental snapshots), which gives the true link count: a
/// file shared by several snapshots must show more than one link for `cp -a`
/// and `rsync -H` to keep it as one file.
pub(super) fn entry_attr(snap: &SnapshotNode, e: &IndexEntry, live: Option<&Stat>, node: u64) -> FileAttr {
    let m = &e.meta;
    let nlink = match m.kind {
        EntryKind::Dir => 1,
        _ => live.map(|s| s.st_nlink as u32).unwrap_or(e.nlink).max(1),
    };
    let size = match m.kind {
        EntryKind::Symlink => m.target.as_ref().map_or(0, |t| t.len() as u64),
        _ => m.size,
    };
    FileAttr {
        ino: INodeNo(st_ino(snap, e, live, node)),
        size,
        blocks: live.map(|s| s.st_blocks as u64).unwrap_or(size.div_ceil(512)),
        atime: time(m.atime_ns),
        mtime: time(m.mtime_ns),
        ctime: time(m.ctime_ns),
        crtime: time(m.mtime_ns),
        kind: file_type(m.kind),
        perm: (m.mode & 0o7777) as u16,
        nlink,
        uid: m.uid,
        gid: m.gid,
        rdev: m.rdev as u32,
        blksize: 4096,
        flags: 0,
    }
}

/// Attributes of a directory above the snapshots (root-only when hidden).
/// Its mtime is `version` seconds after the mount started, plus one
/// nanosecond for viewers other than root when the listing differs by viewer
/// (the root holding hidden destinations): the kernel keeps one cached listing
/// per directory and drops it when the mtime it sees changes.
pub(super) fn vdir_attr(node: u64, hidden: bool, version: u64, other_viewer: bool) -> FileAttr {
    let mut a = virtual_attr(node, FileType::Directory, if hidden { 0o700 } else { 0o755 }, 0);
    a.mtime = mount_epoch() + Duration::new(version, u32::from(other_viewer));
    a.ctime = a.mtime;
    a
}

/// When this process started serving: the times of virtual nodes count from it.
fn mount_epoch() -> SystemTime {
    static EPOCH: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(SystemTime::now)
}

/// Attributes of a `latest` link.
pub(super) fn link_attr(node: u64, target_len: usize) -> FileAttr {
    virtual_attr(node, FileType::Symlink, 0o777, target_len as u64)
}

/// Attributes of a snapshot whose index cannot be read: an empty directory.
pub(super) fn broken_snapshot_attr(node: u64) -> FileAttr {
    virtual_attr(node, FileType::Directory, 0o555, 0)
}

fn virtual_attr(node: u64, kind: FileType, perm: u16, size: u64) -> FileAttr {
    let now = mount_epoch();
    FileAttr {
        ino: INodeNo(node),
        size,
        blocks: 0,
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        kind,
        perm,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

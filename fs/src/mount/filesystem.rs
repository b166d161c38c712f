//! The FUSE adapter: each `Filesystem` method is a short wrapper around a
//! helper that returns `Result<_, Errno>`, and [`errno`] is the one place
//! where our errors become error numbers.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fuser::{
    BackingId, Errno, FileAttr, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyXattr, Request,
};
use rustix::fs::{AtFlags, Mode, OFlags, Stat};

use super::attr::{self, TTL_FOREVER, TTL_VIRTUAL};
use super::content::{PlainFile, ReadAt};
use super::prefetch::{self, Claim, Coverage, Prefetch};
use super::registry::{Child, Content, ROOT, Registry, SnapshotNode, VNode, entry_node, split_entry_node};
use super::stat_ahead::StatAhead;
use super::workers::Workers;
use crate::FsError;
use crate::entry::{EntryKind, Xattrs};
use crate::index::{IndexEntry, ROOT_ID};
use crate::remote::RemoteStore;
use crate::remote::content::RemoteContent;
use crate::sync::lock;

/// The xattr holding a file's access ACL.
const ACL_ACCESS: &[u8] = b"system.posix_acl_access";

/// Entries per directory listing request read from the index.
const LIST_BATCH: u32 = 1024;

/// Turns a filesystem-layer error into the error number a reader sees.
fn errno(e: &FsError) -> Errno {
    match e {
        FsError::Io { source, .. } => source.raw_os_error().map_or(Errno::EIO, os_errno),
        _ => Errno::EIO,
    }
}

/// The error a reader of the mount gets for an OS error on the destination:
/// those that say something true about the path it asked for pass; any other
/// (a damaged disk, a full one, a bug) is EIO.
fn os_errno(n: i32) -> Errno {
    use rustix::io::Errno as Os;
    let passed = [Os::NOENT, Os::ACCESS, Os::PERM, Os::LOOP, Os::NAMETOOLONG, Os::NOTDIR, Os::ISDIR];
    if passed.iter().any(|p| p.raw_os_error() == n) { Errno::from_i32(n) } else { Errno::EIO }
}

/// An open file.
enum Handle {
    /// Served by the kernel from the backing file, which must stay registered
    /// until release (shared with the node's other opens, see [`super::backing`]).
    Backing(#[allow(dead_code)] Arc<BackingId>),
    /// Served through [`ReadAt`]; shared so that reads run outside the handle table's lock.
    Reader(Arc<dyn ReadAt>),
}

/// What opening a file gives.
enum Opened {
    /// A file on the destination (incremental): passthrough when the kernel has it.
    File(std::fs::File),
    /// Content read through user space (archives).
    Reader(Arc<dyn ReadAt>),
}

/// Opens file `name` of destination directory `dir` for reading, without
/// touching its access time when the filesystem allows.
fn open_backing(dir: &OwnedFd, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    // The name comes from an index: one component, never `..`, so the open stays in `dir`.
    if !servable(name) {
        return Err(rustix::io::Errno::ACCESS);
    }
    let name = OsStr::from_bytes(name);
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir.as_fd(), name, flags | OFlags::NOATIME, Mode::empty())
        .or_else(|_| rustix::fs::openat(dir.as_fd(), name, flags, Mode::empty()))
}

/// True when the first byte of `fd` is in the page cache (a read that may not
/// wait gets it; an unsupported probe counts as not cached).
fn in_page_cache(fd: &OwnedFd) -> bool {
    let mut byte = [0u8; 1];
    let mut bufs = [std::io::IoSliceMut::new(&mut byte)];
    matches!(rustix::io::preadv2(fd, &mut bufs, 0, rustix::io::ReadWriteFlags::NOWAIT), Ok(1))
}

/// True for a name a directory may hold: a damaged or foreign index must not
/// make the mount serve `..`, a path, or a name the kernel cannot pass.
fn servable(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// What a node id designates.
enum Node {
    Virtual(u64, VNode),
    Entry(Arc<SnapshotNode>, i64),
}

/// Directories of snapshots recently used, opened O_PATH, so that lookups and
/// opens resolve names relative to their directory instead of rebuilding its
/// path from the index each time. Bounded: it never grows with lookups.
struct DirCache {
    inner: Mutex<DirMap>,
}

/// The kept descriptors (each with whether its inode number is the one the
/// index recorded for it), and their keys oldest first.
type DirMap = (HashMap<DirKey, (Arc<OwnedFd>, bool)>, VecDeque<DirKey>);

/// A snapshot directory: (snapshot slot, index id).
type DirKey = (u32, i64);

/// Directory descriptors kept by [`DirCache`].
const DIR_CACHE: usize = 512;

impl DirCache {
    fn get(&self, key: DirKey) -> Option<(Arc<OwnedFd>, bool)> {
        lock(&self.inner).0.get(&key).cloned()
    }

    fn insert(&self, key: DirKey, fd: OwnedFd, native: bool) -> (Arc<OwnedFd>, bool) {
        let fd = (Arc::new(fd), native);
        let mut guard = lock(&self.inner);
        let (map, order) = &mut *guard;
        if map.insert(key, fd.clone()).is_none() {
            order.push_back(key);
        }
        while order.len() > DIR_CACHE {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
        fd
    }
}

/// The snapshot filesystem, as the kernel's one request thread sees it: it
/// answers most requests itself and hands those that may block to workers.
pub(super) struct SnapshotFs {
    core: Arc<Core>,
    workers: Workers,
    prefetch: Prefetch,
    /// Stats the entries of listed directories' subdirectories ahead of walkers.
    stat_ahead: StatAhead,
}

impl SnapshotFs {
    /// A filesystem over the registry's destinations, with `workers` threads
    /// for the requests that may block.
    pub(super) fn new(reg: Arc<Registry>, workers: usize) -> Self {
        let core = Core {
            reg,
            dirs: DirCache { inner: Mutex::new(Default::default()) },
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            passthrough: AtomicBool::new(false),
            acls_enforced: AtomicBool::new(false),
        };
        SnapshotFs {
            core: Arc::new(core),
            workers: Workers::new(workers),
            prefetch: Prefetch::new(),
            stat_ahead: StatAhead::new(),
        }
    }

    /// Runs `f` here, or on a worker when the request concerns node `ino`
    /// above the snapshots (answering may read every listed snapshot's index)
    /// or in a remote snapshot (its index may have to be downloaded first).
    fn serve(&self, ino: u64, f: impl FnOnce(&Core) + Send + 'static) {
        if self.core.may_block(ino) {
            let core = self.core.clone();
            self.workers.run(move || f(&core));
        } else {
            f(&self.core);
        }
    }
}

/// What the filesystem knows: the registry, open handles, directory descriptors.
pub(super) struct Core {
    reg: Arc<Registry>,
    dirs: DirCache,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
    passthrough: AtomicBool,
    /// The kernel enforces POSIX ACLs (FUSE_POSIX_ACL was granted).
    acls_enforced: AtomicBool,
}

impl Core {
    /// The snapshot of entry node `ino`; `None` above the snapshots or for one now gone.
    fn snapshot_of(&self, ino: u64) -> Option<Arc<SnapshotNode>> {
        split_entry_node(ino).and_then(|(slot, _)| self.reg.snapshot(slot))
    }

    /// True unless `ino` is an entry of a snapshot on a local destination
    /// whose index was checked: a node above the snapshots, one of a remote
    /// snapshot, or one whose index must first be read whole to be checked.
    fn may_block(&self, ino: u64) -> bool {
        self.snapshot_of(ino).is_none_or(|s| s.content.remote().is_some() || !s.verified.load(Ordering::Relaxed))
    }

    fn node(&self, ino: u64) -> Result<Node, Errno> {
        match split_entry_node(ino) {
            Some((slot, id)) => Ok(Node::Entry(self.reg.snapshot(slot).ok_or(Errno::ENOENT)?, id)),
            None => Ok(Node::Virtual(ino, self.reg.vnode(ino).ok_or(Errno::ENOENT)?)),
        }
    }

    fn entry(&self, snap: &SnapshotNode, id: i64) -> Result<IndexEntry, Errno> {
        self.reg.with_index(snap, |ix| ix.get(id)).map_err(|e| errno(&e))?.ok_or(Errno::ENOENT)
    }

    /// Directory node `ino` in its snapshot's tree on a local destination, opened O_PATH.
    fn tree_dir_of(&self, ino: u64) -> Option<Arc<OwnedFd>> {
        let (slot, id) = split_entry_node(ino)?;
        self.tree_dir(&*self.reg.snapshot(slot)?, id)
    }

    /// The directory `id` of `snap` on the destination (incremental snapshots), opened O_PATH.
    fn tree_dir(&self, snap: &SnapshotNode, id: i64) -> Option<Arc<OwnedFd>> {
        self.tree_dir_checked(snap, id).map(|(fd, _)| fd)
    }

    /// Like [`Self::tree_dir`], with whether the directory's inode number is
    /// the one the index recorded (then its files' must be too; a snapshot
    /// copied to another disk has new numbers everywhere). The path is
    /// resolved beneath the snapshot's tree without following any symlink
    /// (a user who could write in the tree must not send the mount through a
    /// link to a file of someone else's).
    fn tree_dir_checked(&self, snap: &SnapshotNode, id: i64) -> Option<(Arc<OwnedFd>, bool)> {
        if !matches!(snap.content, Content::Tree) {
            return None;
        }
        if let Some(fd) = self.dirs.get((snap.slot, id)) {
            return Some(fd);
        }
        if id == ROOT_ID {
            let fd = snap.open_tree().ok()?;
            return Some(self.dirs.insert((snap.slot, id), fd, false));
        }
        let tree = self.tree_dir(snap, ROOT_ID)?;
        let (rel, ino) =
            self.reg.with_index(snap, |ix| Ok((ix.path_of(id)?, ix.get(id)?.and_then(|e| e.location.ino)))).ok()?;
        let fd = crate::posix::open_beneath(tree.as_fd(), &rel, OFlags::PATH | OFlags::DIRECTORY).ok()?;
        let native = ino.is_some_and(|ino| rustix::fs::fstat(&fd).is_ok_and(|st| st.st_ino == ino));
        Some(self.dirs.insert((snap.slot, id), fd, native))
    }

    /// Attributes of entry `e` of `snap`, with the live stat from `dir` when there is one.
    fn attr_in(&self, snap: &SnapshotNode, dir: Option<&Arc<OwnedFd>>, e: &IndexEntry) -> FileAttr {
        let live: Option<Stat> = match dir {
            Some(fd) if e.id != ROOT_ID => {
                rustix::fs::statat(fd.as_fd(), OsStr::from_bytes(&e.name), AtFlags::SYMLINK_NOFOLLOW).ok()
            }
            _ => None,
        };
        self.entry_attr(snap, e, live.as_ref(), entry_node(snap.slot, e.id))
    }

    /// [`attr::entry_attr`], made never more permissive than the source when
    /// the kernel does not enforce ACLs: a file with an access ACL is then
    /// served to its owner only.
    fn entry_attr(&self, snap: &SnapshotNode, e: &IndexEntry, live: Option<&Stat>, node: u64) -> FileAttr {
        let mut a = attr::entry_attr(snap, e, live, node);
        if !self.acls_enforced.load(Ordering::Relaxed) && e.meta.xattrs.0.iter().any(|(n, _)| n == ACL_ACCESS) {
            a.perm &= 0o7700;
        }
        a
    }

    fn snapshot_root_attr(&self, snap: &SnapshotNode) -> FileAttr {
        let node = entry_node(snap.slot, ROOT_ID);
        let root = self.reg.with_index_unverified(snap, |ix| ix.get(ROOT_ID)).ok().flatten().ok_or(Errno::ENOENT);
        match root {
            Ok(e) => self.entry_attr(snap, &e, None, node),
            Err(_) => attr::broken_snapshot_attr(node),
        }
    }

    /// Attributes of a virtual node as `uid` sees it (see [`attr::vdir_attr`]).
    fn vattr(&self, uid: u32, id: u64, v: &VNode) -> FileAttr {
        match v {
            VNode::Dir { hidden, version, .. } => {
                let other_viewer = id == ROOT && uid != 0 && self.reg.root_viewer_dependent();
                attr::vdir_attr(id, *hidden, *version, other_viewer)
            }
            VNode::Link { target } => attr::link_attr(id, target.len()),
        }
    }

    fn do_lookup(&self, uid: u32, parent: u64, name: &[u8]) -> Result<(u64, FileAttr, std::time::Duration), Errno> {
        match self.node(parent)? {
            Node::Entry(snap, pid) => {
                if !servable(name) {
                    return Err(Errno::ENOENT);
                }
                let e = self.reg.with_index(&snap, |ix| ix.lookup(pid, name)).map_err(|e| errno(&e))?;
                let e = e.ok_or(Errno::ENOENT)?;
                let dir = self.tree_dir(&snap, pid);
                Ok((entry_node(snap.slot, e.id), self.attr_in(&snap, dir.as_ref(), &e), TTL_FOREVER))
            }
            Node::Virtual(_, VNode::Dir { children, hidden, .. }) => {
                if hidden && uid != 0 {
                    return Err(Errno::ENOENT);
                }
                match children.get(name).ok_or(Errno::ENOENT)? {
                    Child::Virtual(id) => {
                        let v = self.reg.vnode(*id).ok_or(Errno::ENOENT)?;
                        let child_hidden = matches!(v, VNode::Dir { hidden: true, .. });
                        if child_hidden && uid != 0 {
                            return Err(Errno::ENOENT);
                        }
                        // A hidden destination's entry is never cached, so every
                        // user's lookup reaches this check.
                        let ttl = if child_hidden { std::time::Duration::ZERO } else { TTL_VIRTUAL };
                        Ok((*id, self.vattr(uid, *id, &v), ttl))
                    }
                    Child::Snapshot(slot) => {
                        let snap = self.reg.snapshot(*slot).ok_or(Errno::ENOENT)?;
                        Ok((entry_node(snap.slot, ROOT_ID), self.snapshot_root_attr(&snap), TTL_VIRTUAL))
                    }
                }
            }
            Node::Virtual(_, VNode::Link { .. }) => Err(Errno::ENOTDIR),
        }
    }

    fn do_getattr(&self, uid: u32, ino: u64) -> Result<(FileAttr, std::time::Duration), Errno> {
        match self.node(ino)? {
            // When the root's listing depends on who looks (hidden destinations),
            // its attributes are asked for at every listing. Otherwise they are
            // cached like any virtual node's: every path walk checks the root's
            // permissions, and a zero TTL costs one request per file opened.
            Node::Virtual(ROOT, v) => {
                let ttl = if self.reg.root_viewer_dependent() { std::time::Duration::ZERO } else { TTL_VIRTUAL };
                Ok((self.vattr(uid, ROOT, &v), ttl))
            }
            Node::Virtual(id, v) => Ok((self.vattr(uid, id, &v), TTL_VIRTUAL)),
            Node::Entry(snap, ROOT_ID) => Ok((self.snapshot_root_attr(&snap), TTL_FOREVER)),
            Node::Entry(snap, id) => {
                let e = self.entry(&snap, id)?;
                let dir = self.tree_dir(&snap, e.parent);
                Ok((self.attr_in(&snap, dir.as_ref(), &e), TTL_FOREVER))
            }
        }
    }

    /// Lists a directory from `offset` on: (node id, offset of the next, type, name, attr).
    /// Offsets: 1 is ".", 2 is "..", then `2 + index id` for snapshot entries and
    /// `3 + position` for virtual children.
    fn do_list(&self, uid: u32, ino: u64, offset: u64, plus: bool) -> Result<Vec<ListEntry>, Errno> {
        let mut out = Vec::new();
        let self_attr = if offset < 2 { Some(self.do_getattr(uid, ino)?.0) } else { None };
        if let Some(a) = self_attr {
            if offset < 1 {
                out.push(ListEntry { node: ino, next: 1, name: b".".to_vec(), attr: a, ttl: TTL_VIRTUAL });
            }
            out.push(ListEntry { node: ino, next: 2, name: b"..".to_vec(), attr: a, ttl: TTL_VIRTUAL });
        }
        match self.node(ino)? {
            Node::Entry(snap, id) => {
                let after = offset.saturating_sub(2) as i64;
                let kids = match self.reg.with_index(&snap, |ix| ix.children_after(id, after, LIST_BATCH)) {
                    Ok(k) => k,
                    // An unreadable snapshot is an empty directory.
                    Err(_) if id == ROOT_ID => Vec::new(),
                    Err(e) => return Err(errno(&e)),
                };
                let dir = if plus { self.tree_dir(&snap, id) } else { None };
                for e in kids {
                    if !servable(&e.name) {
                        if !snap.bad_names.swap(true, Ordering::Relaxed) {
                            tracing::warn!(
                                "snapshot {}: the index names entry {} {:?}, which cannot be a file name; it is not shown",
                                snap.dir.display(),
                                e.id,
                                String::from_utf8_lossy(&e.name)
                            );
                        }
                        continue;
                    }
                    let attr = if plus {
                        self.attr_in(&snap, dir.as_ref(), &e)
                    } else {
                        let node = entry_node(snap.slot, e.id);
                        self.entry_attr(&snap, &e, None, node)
                    };
                    out.push(ListEntry {
                        node: entry_node(snap.slot, e.id),
                        next: 2 + e.id as u64,
                        name: e.name,
                        attr,
                        ttl: TTL_FOREVER,
                    });
                }
            }
            Node::Virtual(_, VNode::Dir { children, hidden, .. }) => {
                if hidden && uid != 0 {
                    return Err(Errno::ENOENT);
                }
                for (pos, (name, child)) in children.iter().enumerate() {
                    let next = 3 + pos as u64;
                    if next <= offset {
                        continue;
                    }
                    let (node, attr) = match child {
                        Child::Virtual(id) => match self.reg.vnode(*id) {
                            Some(VNode::Dir { hidden: true, .. }) if uid != 0 => continue,
                            Some(v) => (*id, self.vattr(uid, *id, &v)),
                            None => continue,
                        },
                        Child::Snapshot(slot) => match self.reg.snapshot(*slot) {
                            Some(s) => (entry_node(s.slot, ROOT_ID), self.snapshot_root_attr(&s)),
                            None => continue,
                        },
                    };
                    out.push(ListEntry { node, next, name: name.clone(), attr, ttl: TTL_VIRTUAL });
                }
            }
            Node::Virtual(_, VNode::Link { .. }) => return Err(Errno::ENOTDIR),
        }
        Ok(out)
    }

    /// Opens the content of an entry: its destination file, relative to its
    /// directory (incremental snapshots), or its range of the archive.
    fn do_open(&self, ino: u64) -> Result<Opened, Errno> {
        let Node::Entry(snap, id) = self.node(ino)? else { return Err(Errno::EISDIR) };
        let e = self.entry(&snap, id)?;
        match &snap.content {
            Content::Tree => {}
            Content::LocalArchive | Content::RemoteArchive(_) => {
                return self.open_in_archive(&snap, &e).map(Opened::Reader);
            }
            Content::Blobs(store) => return self.open_blob(store, &snap, &e).map(Opened::Reader),
            Content::SshTree(store) => return self.open_ssh(store, &snap, &e).map(Opened::Reader),
        }
        let (dir, native) = self.tree_dir_checked(&snap, e.parent).ok_or(Errno::EIO)?;
        let fd = open_backing(&dir, &e.name).map_err(|e| os_errno(e.raw_os_error()))?;
        // What the kernel will read must be the file the index describes: a
        // regular file, and where the numbers are the recorded ones, that inode.
        let st = rustix::fs::fstat(&fd).map_err(|_| Errno::EIO)?;
        let regular = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
        if !regular || (native && e.location.ino.is_some_and(|ino| ino != st.st_ino)) {
            tracing::warn!(
                "snapshot {}: entry {} is not the file its index describes on the destination; not served",
                snap.dir.display(),
                e.id
            );
            return Err(Errno::EIO);
        }
        Ok(Opened::File(std::fs::File::from(fd)))
    }

    /// Asks the disk for the start of the files around entry node `ino` of
    /// `snap` in its directory, mostly those after it (see [`super::prefetch`]);
    /// errors only mean less is read ahead.
    fn read_ahead_around(&self, snap: &SnapshotNode, ino: u64, claim: Claim, coverage: &Coverage) {
        let Some((slot, id)) = split_entry_node(ino) else { return };
        // Siblings have consecutive ids, in the order of the source's inodes,
        // while `rsync` goes by name: files just before this one are taken too.
        let from = id.saturating_sub(i64::from(prefetch::BATCH_FILES / 4)).max(ROOT_ID);
        let next = self.reg.with_index(snap, |ix| match ix.get(id)? {
            Some(e) => Ok(Some((e.parent, ix.children_after(e.parent, from, prefetch::BATCH_FILES)?))),
            None => Ok(None),
        });
        let Ok(Some((parent, next))) = next else { return };
        let first = next.first().map_or(id, |k| k.id.min(id));
        coverage.settle(&claim, entry_node(slot, first)..=entry_node(slot, next.last().map_or(id, |k| k.id.max(id))));
        let Some(dir) = self.tree_dir(snap, parent) else { return };
        let (mut budget, mut cached, mut cold) = (prefetch::BATCH_AHEAD, 0, false);
        for k in next.iter().filter(|k| k.meta.kind == EntryKind::File && k.id != id) {
            let Some(len) = std::num::NonZeroU64::new(k.meta.size.min(prefetch::FILE_AHEAD).min(budget)) else {
                if budget == 0 {
                    break;
                }
                continue;
            };
            let Ok(fd) = open_backing(&dir, &k.name) else { continue };
            if in_page_cache(&fd) {
                // A directory read again: its files are all there, opening them is the only cost.
                cached += 1;
                if !cold && cached == prefetch::WARM_PROBES {
                    break;
                }
                continue;
            }
            cold = true;
            budget -= len.get();
            // WILLNEED starts the reads and returns: the disk takes them all at once.
            let _ = rustix::fs::fadvise(&fd, 0, Some(len), rustix::fs::Advice::WillNeed);
        }
    }

    /// A reader of regular file `e` of a snapshot on an object store: its range of a blob or pack.
    fn open_blob(&self, store: &RemoteStore, snap: &SnapshotNode, e: &IndexEntry) -> Result<Arc<dyn ReadAt>, Errno> {
        if e.meta.kind != EntryKind::File {
            return Err(Errno::EIO);
        }
        if let Some(key) = e.location.blob.as_deref().filter(|k| !crate::remote::blobs::is_object_key(k)) {
            tracing::warn!(
                "snapshot {}: entry {} names object {key:?}, not one of a body; not served",
                snap.dir.display(),
                e.id
            );
            return Err(Errno::EIO);
        }
        let (Some(key), Some(Ok(offset))) = (&e.location.blob, e.location.data_offset.map(u64::try_from)) else {
            if e.meta.size == 0 {
                return Ok(Arc::new(PlainFile(std::fs::File::open("/dev/null").map_err(|_| Errno::EIO)?)));
            }
            tracing::warn!("snapshot {}: entry {} has no blob in the index", snap.dir.display(), e.id);
            return Err(Errno::EIO);
        };
        Ok(Arc::new(RemoteContent::new(store.clone(), key.as_bytes(), offset, e.meta.size, self.reg.members().clone())))
    }

    /// A reader of regular file `e` of a snapshot on an ssh destination: the
    /// file itself in the snapshot's tree on the server, read by range.
    fn open_ssh(&self, store: &RemoteStore, snap: &SnapshotNode, e: &IndexEntry) -> Result<Arc<dyn ReadAt>, Errno> {
        if e.meta.kind != EntryKind::File {
            return Err(Errno::EIO);
        }
        let (job, snapshot) = (&snap.job, &snap.name);
        let rel = self.reg.with_index(snap, |ix| ix.path_of(e.id)).map_err(|e| errno(&e))?;
        // A path on the server built from the index: every component a plain name.
        if !rel.split(|&b| b == b'/').all(servable) {
            tracing::warn!("snapshot {job}/{snapshot}: entry {} has a path that cannot be a file's; not served", e.id);
            return Err(Errno::EIO);
        }
        // Bytes all the way: a file name need not be UTF-8.
        let key = [format!("{job}/{snapshot}/{}/", crate::layout::TREE_DIR).as_bytes(), &rel].concat();
        Ok(Arc::new(RemoteContent::new(store.clone(), &key, 0, e.meta.size, self.reg.members().clone())))
    }

    /// A reader of regular file `e` of an archived or compressed snapshot.
    fn open_in_archive(&self, snap: &SnapshotNode, e: &IndexEntry) -> Result<Arc<dyn ReadAt>, Errno> {
        if e.meta.kind != EntryKind::File {
            return Err(Errno::EIO);
        }
        let offset = match e.location.data_offset.map(u64::try_from) {
            Some(Ok(o)) => o,
            // Nothing to read: no need of the archive at all.
            _ if e.meta.size == 0 => 0,
            _ => {
                tracing::warn!("snapshot {}: entry {} has no data offset in the index", snap.dir.display(), e.id);
                return Err(Errno::EIO);
            }
        };
        let archive = self.reg.archive(snap).map_err(|e| errno(&e))?;
        Ok(Arc::new(archive.content(offset, e.meta.size)))
    }

    /// The backing file kept for entry node `ino`, if any. The snapshot must
    /// still be there: a deleted one gives ENOENT, never its kept file.
    fn kept_backing(&self, ino: u64) -> Result<Option<Arc<BackingId>>, Errno> {
        match self.node(ino)? {
            Node::Entry(..) => Ok(self.reg.backings().get(ino)),
            Node::Virtual(..) => Ok(None),
        }
    }

    fn readlink(&self, ino: u64, reply: ReplyData) {
        match self.node(ino) {
            Ok(Node::Virtual(_, VNode::Link { target })) => reply.data(&target),
            Ok(Node::Entry(snap, id)) => match self.entry(&snap, id) {
                Ok(e) if e.meta.kind == EntryKind::Symlink => reply.data(e.meta.target.as_deref().unwrap_or_default()),
                Ok(_) => reply.error(Errno::EINVAL),
                Err(e) => reply.error(e),
            },
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    /// Opens `ino` for reading: passthrough to its backing file when there is
    /// one and the kernel allows it, else a handle read through [`Self::do_read`].
    fn open(&self, ino: u64, reply: ReplyOpen) {
        if self.passthrough.load(Ordering::Relaxed) {
            match self.kept_backing(ino) {
                Ok(Some(id)) => return self.opened_passthrough(reply, id),
                Ok(None) => {}
                Err(e) => return reply.error(e),
            }
        }
        let file = match self.do_open(ino) {
            Ok(Opened::File(f)) => f,
            Ok(Opened::Reader(r)) => {
                // Never passthrough: there is no backing file with these bytes.
                let fh = self.insert_handle(Handle::Reader(r));
                return reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_NOFLUSH);
            }
            Err(e) => return reply.error(e),
        };
        if self.passthrough.load(Ordering::Relaxed) {
            match reply.open_backing(&file) {
                Ok(id) => {
                    // The kernel reads the backing file itself. A racing open of
                    // the same node may have registered one first: both use it.
                    let (id, evicted) = self.reg.backings().insert(ino, id);
                    self.opened_passthrough(reply, id);
                    // Closing the ids no longer kept can wait until the opener runs.
                    drop(evicted);
                    return;
                }
                Err(e) => {
                    tracing::warn!("FUSE passthrough refused ({e}); serving reads through user space");
                    self.passthrough.store(false, Ordering::Relaxed);
                }
            }
        }
        let fh = self.insert_handle(Handle::Reader(Arc::new(PlainFile(file))));
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_NOFLUSH);
    }

    /// Answers an open with backing file `id`, held by the new handle until its release.
    fn opened_passthrough(&self, reply: ReplyOpen, id: Arc<BackingId>) {
        let fh = self.insert_handle(Handle::Backing(id.clone()));
        reply.opened_passthrough(FileHandle(fh), FopenFlags::FOPEN_NOFLUSH, &id);
    }

    fn insert_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, h);
        fh
    }

    fn do_read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let r = match lock(&self.handles).get(&fh) {
            Some(Handle::Reader(r)) => r.clone(),
            _ => return Err(Errno::EBADF),
        };
        let mut buf = vec![0u8; size as usize];
        // Damaged archive members are logged once by the archive; this is per read.
        let n = r.read_at(offset, &mut buf).map_err(|e| {
            tracing::debug!("read of handle {fh} at {offset}: {e}");
            Errno::EIO
        })?;
        buf.truncate(n);
        Ok(buf)
    }

    fn xattrs(&self, ino: u64) -> Result<Xattrs, Errno> {
        match self.node(ino)? {
            Node::Virtual(..) => Ok(Xattrs::default()),
            Node::Entry(snap, id) => match self.entry(&snap, id) {
                Ok(e) => Ok(e.meta.xattrs),
                Err(_) if id == ROOT_ID => Ok(Xattrs::default()),
                Err(e) => Err(e),
            },
        }
    }

    fn statfs_root(&self, ino: u64) -> Option<PathBuf> {
        match self.node(ino).ok()? {
            Node::Entry(snap, _) => Some(snap.dest_root.clone()),
            Node::Virtual(_, VNode::Dir { root, .. }) => root,
            Node::Virtual(..) => None,
        }
    }
}

/// One directory entry of a listing.
struct ListEntry {
    node: u64,
    next: u64,
    name: Vec<u8>,
    attr: FileAttr,
    ttl: std::time::Duration,
}

fn reply_xattr(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if (size as usize) < data.len() {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(data);
    }
}

impl Filesystem for SnapshotFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.add_capabilities(
            InitFlags::FUSE_DO_READDIRPLUS
                | InitFlags::FUSE_READDIRPLUS_AUTO
                | InitFlags::FUSE_PARALLEL_DIROPS
                | InitFlags::FUSE_CACHE_SYMLINKS
                // Directory listings are checked against the mtime at each opendir.
                | InitFlags::FUSE_AUTO_INVAL_DATA,
        );
        // The kernel enforces POSIX ACLs from the `system.posix_acl_*` xattrs
        // the index holds (with default_permissions it would otherwise check
        // the mode bits only, whose group bits are an ACL's mask: a group
        // denied by `group::---` would read the file).
        let acls = config.add_capabilities(InitFlags::FUSE_POSIX_ACL).is_ok();
        self.core.acls_enforced.store(acls, Ordering::Relaxed);
        if !acls {
            tracing::warn!(
                "the kernel cannot enforce POSIX ACLs on this mount: files with an ACL are shown to their owner only"
            );
        }
        let passthrough =
            config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok() && config.set_max_stack_depth(1).is_ok();
        self.core.passthrough.store(passthrough, Ordering::Relaxed);
        let _ = config.set_max_readahead(1 << 20);
        tracing::debug!(passthrough, "FUSE session initialised");
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (uid, name) = (req.uid(), name.as_bytes().to_vec());
        self.serve(parent.0, move |core| match core.do_lookup(uid, parent.0, &name) {
            Ok((node, attr, ttl)) => reply.entry_with_nodeid(INodeNo(node), &ttl, &ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        });
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let uid = req.uid();
        self.serve(ino.0, move |core| match core.do_getattr(uid, ino.0) {
            Ok((attr, ttl)) => reply.attr(&ttl, &attr),
            Err(e) => reply.error(e),
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.serve(ino.0, move |core| core.readlink(ino.0, reply));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & accmode_write() != 0 {
            return reply.error(Errno::EROFS);
        }
        let snap = self.core.snapshot_of(ino.0);
        // Only a remote store may keep an open waiting. (Opening a file of a
        // local archive reads the local index, and the archive's member table
        // once per snapshot: answered here, without a hop to a worker.)
        if snap.as_ref().is_some_and(|s| s.content.remote().is_some() || !s.verified.load(Ordering::Relaxed)) {
            let core = self.core.clone();
            return self.workers.run(move || core.open(ino.0, reply));
        }
        self.core.open(ino.0, reply);
        // Files of incremental snapshots are files on the disk: their neighbours can be read ahead.
        if let Some(snap) = snap.filter(|s| matches!(s.content, Content::Tree))
            && let Some(claim) = self.prefetch.opened(ino.0)
        {
            let core = self.core.clone();
            self.prefetch.run(move |coverage| core.read_ahead_around(&snap, ino.0, claim, coverage));
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Only files without a backing file are read here: archives and remote stores.
        let core = self.core.clone();
        self.workers.run(move || match core.do_read(fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        });
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.core.handles).remove(&fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // ENOSYS once and for all: the kernel then opens directories without
        // asking and keeps every listing in its cache. Listings above the
        // snapshots change with the destinations, and the mtime of their
        // directory (bumped on each change, see the registry) drops the cache.
        reply.error(Errno::ENOSYS);
    }

    fn readdir(&self, req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let uid = req.uid();
        self.serve(ino.0, move |core| match core.do_list(uid, ino.0, offset, false) {
            Ok(list) => {
                for e in list {
                    if reply.add(e.attr.ino, e.next, e.attr.kind, OsStr::from_bytes(&e.name)) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        });
    }

    fn readdirplus(&self, req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let uid = req.uid();
        self.serve(ino.0, move |core| match core.do_list(uid, ino.0, offset, true) {
            Ok(list) => {
                for e in list {
                    if reply.add(INodeNo(e.node), e.next, OsStr::from_bytes(&e.name), &e.ttl, &e.attr, Generation(0)) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        });
        // A walker lists the subdirectories next: their entries' inodes can be read ahead.
        if offset == 0
            && let Some(dir) = self.core.tree_dir_of(ino.0)
        {
            self.stat_ahead.listed(dir);
        }
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let root = self.core.statfs_root(ino.0).or_else(|| match self.core.reg.vnode(ROOT) {
            Some(VNode::Dir { root, .. }) => root,
            _ => None,
        });
        match root.and_then(|r| rustix::fs::statvfs(&r).ok()) {
            Some(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                255,
                s.f_frsize as u32,
            ),
            None => reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let name = name.as_bytes().to_vec();
        self.serve(ino.0, move |core| match core.xattrs(ino.0) {
            Ok(x) => match x.0.iter().find(|(n, _)| *n == name) {
                Some((_, v)) => reply_xattr(reply, size, v),
                None => reply.error(Errno::NO_XATTR),
            },
            Err(e) => reply.error(e),
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.serve(ino.0, move |core| match core.xattrs(ino.0) {
            Ok(x) => {
                let mut names = Vec::new();
                for (n, _) in &x.0 {
                    names.extend_from_slice(n);
                    names.push(0);
                }
                reply_xattr(reply, size, &names);
            }
            Err(e) => reply.error(e),
        });
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}

/// The access-mode bits that ask for writing (O_WRONLY | O_RDWR).
fn accmode_write() -> i32 {
    (OFlags::WRONLY | OFlags::RDWR).bits() as i32
}

#[cfg(test)]
mod tests;

//! What the mount shows above the snapshots: destinations, jobs, snapshots and
//! `latest` links, rescanned from the destinations every second.
//!
//! Virtual nodes (root, destination, job, `latest`) get ids from a counter and
//! keep them while they exist; snapshots get a slot for the life of the mount
//! (slots are never reused, so a stale node id never reaches another
//! snapshot). Both grow only with what the destinations hold, never with
//! lookups. [`Registry::refresh`] returns the kernel cache invalidations that a
//! change needs.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fuser::{BackingId, INodeNo};

use super::Layout;
use super::backing::Shared;
use crate::FsError;
use crate::archive::reader::{Archive, MemberCache};
use crate::cache::CachedSnapshot;
use crate::index::{INDEX_FILE, IndexReader};
use crate::layout::{DestinationRoot, TREE_DIR};
use crate::manifest::{MANIFEST_FILE, Structure, completion_key};
use crate::remote::RemoteStore;
use crate::sync::lock;

/// Node id of the root.
pub(super) const ROOT: u64 = 1;
/// Bit set in the node ids of snapshot entries.
pub(super) const ENTRY_BIT: u64 = 1 << 63;
/// Name of the link to the newest snapshot in every job directory.
pub(super) const LATEST: &str = "latest";

/// Index readers kept open across all snapshots (bounds memory and descriptors).
const READER_CACHE: usize = 16;

/// Archive data files kept open across all snapshots (open handles keep theirs too).
const ARCHIVE_CACHE: usize = 64;

/// A destination as the mount shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationView {
    /// Directory name in the mount.
    pub name: String,
    /// Root on the local filesystem; for a remote destination, its local cache
    /// (indexes and manifests of its snapshots).
    pub root: PathBuf,
    /// Visible to root only.
    pub hidden: bool,
    /// The remote store, for destinations without a local root.
    pub remote: Option<RemoteStore>,
}

impl DestinationView {
    /// The view of `destination` named `name`: a local one browses its root;
    /// a remote one browses `cache`, its local cache of indexes and manifests.
    pub fn new(name: String, hidden: bool, destination: crate::Destination, cache: PathBuf) -> Self {
        match destination {
            crate::Destination::Local(root) => {
                DestinationView { name, root: root.path().to_path_buf(), hidden, remote: None }
            }
            crate::Destination::Remote(store) => DestinationView { name, root: cache, hidden, remote: Some(store) },
        }
    }
}

/// A node above the snapshots.
#[derive(Debug, Clone)]
pub(super) enum VNode {
    /// A directory: the root, a destination or a job.
    Dir {
        /// Children by name.
        children: BTreeMap<Vec<u8>, Child>,
        /// Only root may see it (hidden destinations).
        hidden: bool,
        /// Destination root, for statfs.
        root: Option<PathBuf>,
        /// Bumped whenever its children change: it is the directory's mtime,
        /// which tells the kernel to drop its cached listing.
        version: u64,
    },
    /// The `latest` symlink of a job.
    Link {
        /// Its target (a snapshot name).
        target: Vec<u8>,
    },
}

/// A child of a virtual directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Child {
    /// Another virtual node.
    Virtual(u64),
    /// A snapshot, by slot.
    Snapshot(u32),
}

/// Where a snapshot's file contents come from: decided once, when its slot
/// is made, from its structure and its destination.
#[derive(Debug, Clone)]
pub(super) enum Content {
    /// An incremental snapshot on a local destination: the files of its tree,
    /// passed through.
    Tree,
    /// An archived or compressed snapshot on a local destination: members of
    /// its data file.
    LocalArchive,
    /// An incremental snapshot on an object store: ranges of blobs and packs.
    Blobs(RemoteStore),
    /// An incremental snapshot on an SSH server: the files of its tree there,
    /// read by range.
    SshTree(RemoteStore),
    /// An archived or compressed snapshot on a remote destination: its data
    /// object, read by range.
    RemoteArchive(RemoteStore),
}

impl Content {
    /// The content of a snapshot of `structure` on a destination whose store
    /// is `remote` (none for a local one).
    pub(super) fn of(structure: Structure, remote: Option<&RemoteStore>) -> Content {
        match (structure, remote) {
            (Structure::Incremental, None) => Content::Tree,
            (Structure::Archived | Structure::Compressed, None) => Content::LocalArchive,
            (Structure::Incremental, Some(s @ RemoteStore::Objects(_))) => Content::Blobs(s.clone()),
            (Structure::Incremental, Some(s @ RemoteStore::Ssh(_))) => Content::SshTree(s.clone()),
            (Structure::Archived | Structure::Compressed, Some(s)) => Content::RemoteArchive(s.clone()),
        }
    }

    /// The remote store it is read from; none for a local destination.
    pub(super) fn remote(&self) -> Option<&RemoteStore> {
        match self {
            Content::Tree | Content::LocalArchive => None,
            Content::Blobs(s) | Content::SshTree(s) | Content::RemoteArchive(s) => Some(s),
        }
    }
}

/// One snapshot known to the mount.
pub(super) struct SnapshotNode {
    /// Its slot (part of its entries' node ids).
    pub slot: u32,
    /// Its job (a name checked by the listing).
    pub job: String,
    /// Its name (checked by the listing).
    pub name: String,
    /// Its directory on the destination (for messages: it is opened from the
    /// destination's root, component by component, never by this path).
    pub dir: PathBuf,
    /// Position of its destination (keeps `st_ino` of different destinations apart).
    pub dest_index: u16,
    /// Destination root, for statfs.
    pub dest_root: PathBuf,
    /// How it stores file contents.
    pub structure: Structure,
    /// Its place in the job's completion order (the manifest's; 0 when unknown).
    pub sequence: u64,
    /// Where its file contents come from.
    pub content: Content,
    /// Why its index cannot be read, once it was found unreadable.
    pub error: Mutex<Option<String>>,
    /// The index's blake3 as its manifest gives it (local snapshots: checked
    /// once, at the first open of the index).
    pub index_blake3: Option<String>,
    /// The index was checked against `index_blake3` (remote indexes are
    /// checked when they are fetched).
    pub verified: AtomicBool,
    /// Held while the index is being checked.
    pub verifying: Mutex<()>,
    /// It is not served: its manifest or index was refused (no retry), or a
    /// query of its index outlived its budget (served again after a pause).
    pub refused: Mutex<Option<Refusal>>,
    /// Its data file could not be opened, and that was logged.
    pub archive_failed: AtomicBool,
    /// Its index has names that cannot be served, and that was logged.
    pub bad_names: AtomicBool,
}

/// Why a snapshot is not served, and until when.
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    /// What went wrong (logged once).
    pub reason: String,
    /// When to try again; `None`: never (until the next mount).
    pub until: Option<std::time::Instant>,
}

/// How long a snapshot whose index query outlived its budget is not served.
const SLOW_INDEX_PAUSE: std::time::Duration = std::time::Duration::from_secs(60);

/// How long one step of an index query may take in the mount (a lookup or a
/// page of a listing takes well under a millisecond).
pub(super) const MOUNT_STEP_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

impl SnapshotNode {
    /// `<job>/<snapshot>/<rel>` below the destination root, opened without
    /// following a symlink anywhere below the root (the root's own path was
    /// given by the administrator).
    pub(super) fn open_beneath(&self, rel: &str, flags: rustix::fs::OFlags) -> crate::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        let root = crate::posix::open_dir(&self.dest_root).map_err(|e| FsError::io("open", &self.dest_root, e))?;
        let path = format!("{}/{}/{rel}", self.job, self.name);
        crate::posix::open_beneath(root.as_fd(), path.as_bytes(), flags)
            .map_err(|e| FsError::io("open", self.dest_root.join(&path), e))
    }

    /// Its `tree/` directory on the destination, opened `O_PATH` beneath the root.
    pub(super) fn open_tree(&self) -> crate::Result<std::os::fd::OwnedFd> {
        self.open_beneath(TREE_DIR, rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY)
    }

    /// The error to answer with when the snapshot is not served now.
    fn refusal(&self) -> Option<FsError> {
        let mut refused = lock(&self.refused);
        match refused.as_ref() {
            Some(r) if r.until.is_none_or(|t| std::time::Instant::now() < t) => {
                Some(FsError::Refused(format!("snapshot {}/{}: {}", self.job, self.name, r.reason)))
            }
            Some(_) => {
                *refused = None;
                None
            }
            None => None,
        }
    }

    /// Stops serving the snapshot (for good, or for a pause), logging why once.
    fn refuse(&self, reason: String, until: Option<std::time::Instant>) {
        let mut refused = lock(&self.refused);
        if refused.is_none() {
            match until {
                None => tracing::error!("snapshot {}: {reason}; it shows as an empty directory", self.dir.display()),
                Some(_) => tracing::warn!(
                    "snapshot {}: {reason}; it is not served for {} s",
                    self.dir.display(),
                    SLOW_INDEX_PAUSE.as_secs()
                ),
            }
        }
        *refused = Some(Refusal { reason, until });
    }
}

/// Encodes the node id of entry `id` of the snapshot in `slot`.
pub(super) fn entry_node(slot: u32, id: i64) -> u64 {
    ENTRY_BIT | (u64::from(slot) << 32) | (id as u64 & 0xffff_ffff)
}

/// Decodes an entry node id into (slot, index id).
pub(super) fn split_entry_node(node: u64) -> Option<(u32, i64)> {
    (node & ENTRY_BIT != 0).then_some((((node & !ENTRY_BIT) >> 32) as u32, (node & 0xffff_ffff) as i64))
}

/// A kernel cache entry to drop after a change.
pub(super) enum Inval {
    /// The attributes and listing of a node.
    Node(u64),
    /// One name in a directory.
    Name(u64, Vec<u8>),
}

impl Inval {
    /// Tells the kernel (errors mean the kernel had nothing cached).
    pub(super) fn send(&self, n: &fuser::Notifier) {
        let _ = match self {
            Inval::Node(ino) => n.inval_inode(INodeNo(*ino), 0, 0),
            Inval::Name(parent, name) => n.inval_entry(INodeNo(*parent), OsStr::from_bytes(name)),
        };
    }
}

#[derive(Default)]
struct State {
    nodes: HashMap<u64, VNode>,
    next_node: u64,
    snapshots: Vec<Option<Arc<SnapshotNode>>>,
}

/// The nodes above the snapshots, open index readers and archives.
pub(super) struct Registry {
    layout: Layout,
    state: RwLock<State>,
    readers: Mutex<VecDeque<(u32, IndexReader)>>,
    /// Open archives by snapshot slot, most recently used first.
    archives: Mutex<VecDeque<(u32, Arc<Archive>)>>,
    /// Inflated gzip members of every compressed snapshot.
    members: MemberCache,
    /// The root holds a hidden destination, so its listing depends on who looks.
    root_hidden: AtomicBool,
    /// Passthrough backing files by entry node.
    backings: Shared<BackingId>,
    /// Last listing of each destination, by name.
    scans: Mutex<HashMap<String, LastScan>>,
    /// Remote snapshots left out because their manifest was refused (said once).
    refused_remote: Mutex<HashSet<String>>,
    /// Held through a whole refresh: two refreshes at once could apply an
    /// older listing after a newer one, and hide a snapshot for a second.
    refreshing: Mutex<()>,
}

/// A destination's last good listing, shown while a new one fails.
struct LastScan {
    at: std::time::Instant,
    found: Scan,
    /// The latest attempt failed (logged once, until one succeeds).
    failing: bool,
}

/// What a scan of one destination found: job -> snapshot names, oldest first.
type Scan = BTreeMap<String, Vec<String>>;

/// Seconds between two listings of a remote destination (each costs requests).
const REMOTE_RESCAN: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the index of a snapshot: in place beneath the destination root,
/// or for a remote snapshot its cached copy, fetched (and checked against
/// its manifest) on first use.
fn open_index(snap: &SnapshotNode) -> crate::Result<IndexReader> {
    if let Some(store) = snap.content.remote() {
        return IndexReader::open(&store.cached_index(&snap.dest_root, &snap.job, &snap.name)?);
    }
    let fd = snap.open_beneath(INDEX_FILE, rustix::fs::OFlags::RDONLY)?;
    IndexReader::open_fd(&fd, &snap.dir.join(INDEX_FILE))
}

/// Checks a local snapshot's index against its manifest's blake3, once.
fn verify_index(snap: &SnapshotNode) -> crate::Result<()> {
    let _one_at_a_time = lock(&snap.verifying);
    if snap.verified.load(Ordering::Relaxed) {
        return Ok(());
    }
    let path = snap.dir.join(INDEX_FILE);
    let fd = snap.open_beneath(INDEX_FILE, rustix::fs::OFlags::RDONLY)?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(std::io::BufReader::with_capacity(1 << 20, std::fs::File::from(fd)))
        .map_err(|e| FsError::io("read", &path, e))?;
    let got = hasher.finalize().to_hex().to_string();
    let expected = snap.index_blake3.as_deref().unwrap_or_default();
    if got != expected {
        return Err(FsError::Format {
            path,
            message: format!("index blake3 {got} differs from the manifest's {expected:?}"),
        });
    }
    snap.verified.store(true, Ordering::Relaxed);
    Ok(())
}

/// Where a remote snapshot's objects are: `<job>/<snapshot>`.
fn remote_prefix(snap: &SnapshotNode) -> String {
    format!("{}/{}", snap.job, snap.name)
}

/// What a remote destination holds, with every snapshot's manifest cached
/// under `cache` (where the mount reads manifests and indexes from). A
/// snapshot whose manifest is refused (it does not name its own directory,
/// it does not parse) is left out, and said once.
fn scan_remote(store: &RemoteStore, cache: &std::path::Path, refused: &Mutex<HashSet<String>>) -> crate::Result<Scan> {
    let mut out = Scan::new();
    for job in store.list_jobs()? {
        let mut snaps = store.list_snapshots(&job)?;
        let mut skip = Vec::new();
        for name in &snaps {
            let dir = CachedSnapshot::open(cache, &job, name)?;
            if dir.has(MANIFEST_FILE) {
                continue;
            }
            match store.read_manifest(&job, name) {
                Ok(m) => dir.write(MANIFEST_FILE, &m.to_bytes())?,
                Err(e) if e.is_temporary() => return Err(e),
                Err(e) => {
                    if lock(refused).insert(format!("{job}/{name}")) {
                        tracing::warn!("{store:?}: snapshot {job}/{name} is not shown: {e}");
                    }
                    skip.push(name.clone());
                }
            }
        }
        snaps.retain(|n| !skip.contains(n));
        if !snaps.is_empty() {
            out.insert(job, snaps);
        }
    }
    Ok(out)
}

/// What a local destination holds. A job whose listing fails keeps its
/// `previous` snapshots: a transient error must not empty the mount (the
/// kernel would forget every node under it).
fn scan_local(root: &DestinationRoot, previous: Option<&Scan>) -> crate::Result<Scan> {
    let mut out = Scan::new();
    for job in root.list_jobs()? {
        let snaps = match root.list_snapshots(&job) {
            Ok(snaps) => snaps,
            Err(e) => {
                tracing::debug!(job = %job, "cannot list the job's snapshots (showing the last listing): {e}");
                previous.and_then(|p| p.get(&job)).cloned().unwrap_or_default()
            }
        };
        if !snaps.is_empty() {
            out.insert(job, snaps);
        }
    }
    Ok(out)
}

impl Registry {
    /// An empty registry; [`Registry::refresh`] fills it. `backings`: how
    /// many nodes keep their passthrough backing file.
    pub(super) fn new(layout: Layout, cache_bytes: usize, backings: usize) -> Self {
        let mut state = State { next_node: ROOT + 1, ..Default::default() };
        state.nodes.insert(ROOT, VNode::Dir { children: BTreeMap::new(), hidden: false, root: None, version: 0 });
        Registry {
            layout,
            state: RwLock::new(state),
            readers: Mutex::new(VecDeque::new()),
            archives: Mutex::new(VecDeque::new()),
            members: MemberCache::new(cache_bytes),
            root_hidden: AtomicBool::new(false),
            backings: Shared::new(backings),
            scans: Mutex::new(HashMap::new()),
            refused_remote: Mutex::new(HashSet::new()),
            refreshing: Mutex::new(()),
        }
    }

    /// The cache of inflated archive members and remote chunks.
    pub(super) fn members(&self) -> &MemberCache {
        &self.members
    }

    /// Passthrough backing files of recently opened entries, by node id.
    pub(super) fn backings(&self) -> &Shared<BackingId> {
        &self.backings
    }

    /// True when the root's listing differs by viewer (it holds a hidden
    /// destination): its attributes, which carry the viewer in their mtime,
    /// must then be asked for at every use.
    pub(super) fn root_viewer_dependent(&self) -> bool {
        self.root_hidden.load(Ordering::Relaxed)
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A virtual node.
    pub(super) fn vnode(&self, id: u64) -> Option<VNode> {
        self.state().nodes.get(&id).cloned()
    }

    /// A snapshot by slot.
    pub(super) fn snapshot(&self, slot: u32) -> Option<Arc<SnapshotNode>> {
        self.state().snapshots.get(slot as usize).cloned().flatten()
    }

    /// Runs `f` with an index reader of the snapshot (from the cache, or
    /// opened), whose content was checked against the snapshot's manifest.
    pub(super) fn with_index<T>(
        &self,
        snap: &SnapshotNode,
        f: impl FnOnce(&IndexReader) -> crate::Result<T>,
    ) -> crate::Result<T> {
        if !snap.verified.load(Ordering::Relaxed) {
            if let Some(e) = snap.refusal() {
                return Err(e);
            }
            if let Err(e) = verify_index(snap) {
                self.failed(snap, &e);
                return Err(e);
            }
        }
        self.with_index_unverified(snap, f)
    }

    /// Like [`Registry::with_index`], before the index's content was checked
    /// against the manifest (still with its schema checked and its queries
    /// bounded): for the attributes of a snapshot's root, which a listing of
    /// a job's snapshots asks for, without reading every snapshot's index whole.
    pub(super) fn with_index_unverified<T>(
        &self,
        snap: &SnapshotNode,
        f: impl FnOnce(&IndexReader) -> crate::Result<T>,
    ) -> crate::Result<T> {
        let cached = {
            let mut cache = lock(&self.readers);
            cache.iter().position(|(s, _)| *s == snap.slot).and_then(|i| cache.remove(i))
        };
        let reader = match cached {
            Some((_, r)) => r,
            None => {
                if let Some(e) = snap.refusal() {
                    return Err(e);
                }
                match open_index(snap) {
                    Ok(mut r) => {
                        r.set_step_budget(MOUNT_STEP_BUDGET);
                        r
                    }
                    Err(e) => {
                        self.failed(snap, &e);
                        return Err(e);
                    }
                }
            }
        };
        if let Some(e) = snap.refusal() {
            return Err(e);
        }
        let result = f(&reader);
        if let Err(e) = &result
            && e.is_interrupted()
        {
            // One slow snapshot must not hold the mount's workers query after query.
            snap.refuse(e.to_string(), Some(std::time::Instant::now() + SLOW_INDEX_PAUSE));
            return result;
        }
        let mut cache = lock(&self.readers);
        cache.push_front((snap.slot, reader));
        cache.truncate(READER_CACHE);
        result
    }

    /// Records why `snap`'s index cannot be used: content that is not what
    /// Hindsight writes (or not what the manifest says) stops the snapshot
    /// from being served; an error of the disk or the service is said once
    /// and tried again at the next request.
    fn failed(&self, snap: &SnapshotNode, e: &FsError) {
        if matches!(e, FsError::Format { .. } | FsError::Index { .. } | FsError::Refused(_)) {
            snap.refuse(e.to_string(), None);
            return;
        }
        let mut err = lock(&snap.error);
        if err.is_none() {
            tracing::error!("snapshot {}: {e}; it shows as an empty directory for now", snap.dir.display());
            *err = Some(e.to_string());
        }
    }

    /// The data file of an archived or compressed snapshot (from the cache, or opened).
    pub(super) fn archive(&self, snap: &SnapshotNode) -> crate::Result<Arc<Archive>> {
        let lock = || lock(&self.archives);
        let cached = |cache: &mut VecDeque<(u32, Arc<Archive>)>| {
            let i = cache.iter().position(|(s, _)| *s == snap.slot)?;
            let hit = cache.remove(i)?;
            cache.push_front(hit.clone());
            Some(hit.1)
        };
        if let Some(a) = cached(&mut lock()) {
            return Ok(a);
        }
        // Opened without the lock (it reads the index); a racing open of the same
        // snapshot loses to whichever was cached first.
        let opened = self.with_index(snap, |ix| match &snap.content {
            // Remote: the data file is an object read by ranges, under the same names.
            Content::RemoteArchive(store) => {
                Archive::open_remote(store, &remote_prefix(snap), &snap.dir, snap.structure, ix, &self.members)
            }
            Content::LocalArchive => Archive::open_local(&snap.dir, snap.structure, ix, &self.members, |name| {
                snap.open_beneath(name, rustix::fs::OFlags::RDONLY).map(std::fs::File::from)
            }),
            Content::Tree | Content::Blobs(_) | Content::SshTree(_) => Err(crate::FsError::Internal(format!(
                "snapshot {}: a {} snapshot has no archive",
                snap.dir.display(),
                snap.structure
            ))),
        });
        let archive = match opened {
            Ok(a) => a,
            Err(e) => {
                if !snap.archive_failed.swap(true, Ordering::Relaxed) {
                    tracing::error!("snapshot {}: {e}; its files cannot be read", snap.dir.display());
                }
                return Err(e);
            }
        };
        let mut cache = lock();
        if let Some(a) = cached(&mut cache) {
            return Ok(a);
        }
        cache.push_front((snap.slot, archive.clone()));
        cache.truncate(ARCHIVE_CACHE);
        Ok(archive)
    }

    /// What destination `d` holds: listed again (remote ones every
    /// [`REMOTE_RESCAN`], or now when `force`d); while listing fails, the
    /// last listing that worked.
    fn scan(&self, d: &DestinationView, force: bool) -> Scan {
        let mut scans = lock(&self.scans);
        let last = scans.get(&d.name);
        let listed = match &d.remote {
            Some(_) if !force && last.is_some_and(|l| l.at.elapsed() < REMOTE_RESCAN) => {
                return last.map(|l| l.found.clone()).unwrap_or_default();
            }
            Some(store) => scan_remote(store, &d.root, &self.refused_remote),
            None => scan_local(&DestinationRoot::new(&d.root), last.map(|l| &l.found)),
        };
        let was_failing = last.is_some_and(|l| l.failing);
        let (found, failing) = match listed {
            Ok(found) => {
                if was_failing {
                    tracing::info!(destination = %d.name, "the destination's snapshots can be listed again");
                }
                (found, false)
            }
            Err(e) => {
                if !was_failing {
                    tracing::warn!(destination = %d.name, "cannot list the destination's snapshots (showing the last listing): {e}");
                }
                (last.map(|l| l.found.clone()).unwrap_or_default(), true)
            }
        };
        scans.insert(d.name.clone(), LastScan { at: std::time::Instant::now(), found: found.clone(), failing });
        found
    }

    fn destinations(&self) -> Vec<DestinationView> {
        match &self.layout {
            Layout::Destinations(source) => source(),
            Layout::Single(d) => vec![d.clone()],
        }
    }

    /// Rescans the destinations and updates the tree; returns what the kernel must forget.
    pub(super) fn refresh(&self) -> Vec<Inval> {
        self.refresh_forcing(&[])
    }

    /// Like [`Registry::refresh`], listing the remote destinations named in
    /// `force` now rather than at their next [`REMOTE_RESCAN`].
    pub(super) fn refresh_forcing(&self, force: &[String]) -> Vec<Inval> {
        let _one_at_a_time = lock(&self.refreshing);
        let dests = self.destinations();
        lock(&self.scans).retain(|name, _| dests.iter().any(|d| &d.name == name));
        let scans: Vec<(DestinationView, Scan)> = dests
            .into_iter()
            .map(|d| {
                let found = self.scan(&d, force.contains(&d.name));
                (d, found)
            })
            .collect();
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut invals = Vec::new();
        match &self.layout {
            Layout::Single(_) => {
                if let Some((d, jobs)) = scans.first() {
                    st.sync_jobs(ROOT, d, 0, jobs, &mut invals);
                }
            }
            Layout::Destinations(_) => {
                let wanted: BTreeMap<Vec<u8>, (usize, &DestinationView)> =
                    scans.iter().enumerate().map(|(i, (d, _))| (d.name.as_bytes().to_vec(), (i, d))).collect();
                st.retain_children(ROOT, |name| wanted.contains_key(name), &mut invals);
                for (name, (i, d)) in &wanted {
                    let id = st.child_dir(ROOT, name, d.hidden, Some(d.root.clone()), &mut invals);
                    st.sync_jobs(id, d, *i as u16, &scans[*i].1, &mut invals);
                }
            }
        }
        let root_hidden = st.has_hidden_child(ROOT);
        if self.root_hidden.swap(root_hidden, Ordering::Relaxed) != root_hidden {
            invals.push(Inval::Node(ROOT));
        }
        for inval in &invals {
            if let Inval::Node(id) = inval
                && let Some(VNode::Dir { version, .. }) = st.nodes.get_mut(id)
            {
                *version += 1;
            }
        }
        if !invals.is_empty() {
            // Close the data files and indexes of deleted snapshots, so that their
            // space is freed (files still open by a reader stay until released).
            let live = |slot: &u32| st.snapshots.get(*slot as usize).is_some_and(Option::is_some);
            lock(&self.archives).retain(|(slot, _)| live(slot));
            lock(&self.readers).retain(|(slot, _)| live(slot));
            self.backings.retain(|node| split_entry_node(node).is_some_and(|(slot, _)| live(&slot)));
        }
        invals
    }
}

impl State {
    fn alloc(&mut self, node: VNode) -> u64 {
        let id = self.next_node;
        self.next_node += 1;
        self.nodes.insert(id, node);
        id
    }

    /// True when a child directory of `dir` is hidden.
    fn has_hidden_child(&self, dir: u64) -> bool {
        let Some(VNode::Dir { children, .. }) = self.nodes.get(&dir) else { return false };
        children.values().any(|c| match c {
            Child::Virtual(id) => matches!(self.nodes.get(id), Some(VNode::Dir { hidden: true, .. })),
            Child::Snapshot(_) => false,
        })
    }

    fn children_mut(&mut self, dir: u64) -> Option<&mut BTreeMap<Vec<u8>, Child>> {
        match self.nodes.get_mut(&dir) {
            Some(VNode::Dir { children, .. }) => Some(children),
            _ => None,
        }
    }

    /// Removes children of `dir` not `keep`-ed, dropping their subtrees.
    fn retain_children(&mut self, dir: u64, keep: impl Fn(&[u8]) -> bool, invals: &mut Vec<Inval>) {
        let Some(children) = self.children_mut(dir) else { return };
        let gone: Vec<(Vec<u8>, Child)> =
            children.iter().filter(|(n, _)| !keep(n)).map(|(n, c)| (n.clone(), *c)).collect();
        for (name, child) in gone {
            if let Some(c) = self.children_mut(dir) {
                c.remove(&name);
            }
            self.drop_child(child);
            invals.push(Inval::Name(dir, name));
            invals.push(Inval::Node(dir));
        }
    }

    fn drop_child(&mut self, child: Child) {
        match child {
            Child::Virtual(id) => {
                if let Some(VNode::Dir { children, .. }) = self.nodes.remove(&id) {
                    for (_, c) in children {
                        self.drop_child(c);
                    }
                }
            }
            Child::Snapshot(slot) => {
                if let Some(s) = self.snapshots.get_mut(slot as usize) {
                    *s = None;
                }
            }
        }
    }

    /// The child directory `name` of `dir`, created if missing.
    fn child_dir(
        &mut self,
        dir: u64,
        name: &[u8],
        hidden: bool,
        root: Option<PathBuf>,
        invals: &mut Vec<Inval>,
    ) -> u64 {
        if let Some(Child::Virtual(id)) = self.children_mut(dir).and_then(|c| c.get(name).copied()) {
            if let Some(VNode::Dir { hidden: h, root: r, .. }) = self.nodes.get_mut(&id) {
                if *h != hidden {
                    // Who may see it changed: the kernel must ask again.
                    invals.push(Inval::Name(dir, name.to_vec()));
                    invals.push(Inval::Node(dir));
                    invals.push(Inval::Node(id));
                }
                *h = hidden;
                *r = root;
            }
            return id;
        }
        let id = self.alloc(VNode::Dir { children: BTreeMap::new(), hidden, root, version: 0 });
        if let Some(c) = self.children_mut(dir) {
            c.insert(name.to_vec(), Child::Virtual(id));
        }
        invals.push(Inval::Node(dir));
        id
    }

    /// Makes `dir` hold one directory per job of `jobs`, each with its snapshots and `latest`.
    fn sync_jobs(&mut self, dir: u64, d: &DestinationView, dest_index: u16, jobs: &Scan, invals: &mut Vec<Inval>) {
        self.retain_children(dir, |n| std::str::from_utf8(n).is_ok_and(|n| jobs.contains_key(n)), invals);
        for (job, snaps) in jobs {
            let job_dir = self.child_dir(dir, job.as_bytes(), false, Some(d.root.clone()), invals);
            let root = DestinationRoot::new(&d.root);
            self.retain_children(
                job_dir,
                |n| n == LATEST.as_bytes() || std::str::from_utf8(n).is_ok_and(|n| snaps.iter().any(|s| s == n)),
                invals,
            );
            for name in snaps {
                let snap_dir = root.snapshot_dir(job, name);
                if self.children_mut(job_dir).is_some_and(|c| c.contains_key(name.as_bytes())) {
                    continue;
                }
                // The manifest must name this very directory; one that does not
                // leaves its snapshot an empty directory (said once, here).
                let manifest = root.read_manifest(job, name);
                let slot = self.snapshots.len() as u32;
                let structure = manifest.as_ref().map_or(Structure::Incremental, |m| m.structure);
                let node = SnapshotNode {
                    slot,
                    job: job.clone(),
                    name: name.clone(),
                    dir: snap_dir,
                    dest_index,
                    dest_root: d.root.clone(),
                    structure,
                    sequence: manifest.as_ref().map_or(0, |m| m.sequence),
                    content: Content::of(structure, d.remote.as_ref()),
                    error: Mutex::new(None),
                    index_blake3: manifest.as_ref().ok().map(|m| m.index_blake3.clone()),
                    verified: AtomicBool::new(d.remote.is_some()),
                    verifying: Mutex::new(()),
                    refused: Mutex::new(None),
                    archive_failed: AtomicBool::new(false),
                    bad_names: AtomicBool::new(false),
                };
                if let Err(e) = &manifest {
                    node.refuse(e.to_string(), None);
                }
                self.snapshots.push(Some(Arc::new(node)));
                if let Some(c) = self.children_mut(job_dir) {
                    c.insert(name.as_bytes().to_vec(), Child::Snapshot(slot));
                }
                invals.push(Inval::Node(job_dir));
            }
            // The last to complete, not the last by name: names come from a clock that can step.
            let sequence = |name: &String| match self.nodes.get(&job_dir) {
                Some(VNode::Dir { children, .. }) => match children.get(name.as_bytes()) {
                    Some(Child::Snapshot(slot)) => {
                        self.snapshots.get(*slot as usize).and_then(Option::as_ref).map_or(0, |n| n.sequence)
                    }
                    _ => 0,
                },
                _ => 0,
            };
            let newest = snaps.iter().max_by_key(|n| completion_key(sequence(n), n)).cloned();
            self.sync_latest(job_dir, newest.as_ref(), invals);
        }
    }

    fn sync_latest(&mut self, job_dir: u64, newest: Option<&String>, invals: &mut Vec<Inval>) {
        let current = self.children_mut(job_dir).and_then(|c| c.get(LATEST.as_bytes()).copied());
        let target = newest.map(|n| n.as_bytes().to_vec());
        if let Some(Child::Virtual(id)) = current
            && let Some(VNode::Link { target: t }) = self.nodes.get(&id)
            && Some(t) == target.as_ref()
        {
            return;
        }
        if let Some(child) = current {
            if let Some(c) = self.children_mut(job_dir) {
                c.remove(LATEST.as_bytes());
            }
            self.drop_child(child);
            invals.push(Inval::Name(job_dir, LATEST.as_bytes().to_vec()));
        }
        if let Some(target) = target {
            let id = self.alloc(VNode::Link { target });
            if let Some(c) = self.children_mut(job_dir) {
                c.insert(LATEST.as_bytes().to_vec(), Child::Virtual(id));
            }
        }
        invals.push(Inval::Node(job_dir));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_that_cannot_be_listed_keeps_its_last_listing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("dest");
        let snap = dest.join("job").join("2026-11-22T035000Z");
        std::fs::create_dir_all(&snap).expect("mkdir");
        std::fs::write(snap.join(MANIFEST_FILE), b"{}").expect("manifest");
        let view = DestinationView { name: "d".into(), root: dest.clone(), hidden: false, remote: None };
        let reg = Registry::new(Layout::Single(view), 1 << 20, 16);
        assert!(!reg.refresh().is_empty(), "the first listing adds the job");
        assert!(reg.snapshot(0).is_some(), "the snapshot has slot 0");

        // The destination's root cannot be read (ENOTDIR): the tree stays, the kernel forgets nothing.
        let away = dir.path().join("away");
        std::fs::rename(&dest, &away).expect("rename");
        std::fs::write(&dest, b"not a directory").expect("file");
        assert!(reg.refresh().is_empty(), "a failed listing invalidated kernel caches");
        assert!(reg.snapshot(0).is_some(), "a failed listing dropped the snapshot");

        // Readable again, unchanged: same slot, nothing to forget.
        std::fs::remove_file(&dest).expect("rm");
        std::fs::rename(&away, &dest).expect("rename back");
        assert!(reg.refresh().is_empty());
        assert!(reg.snapshot(0).is_some() && reg.snapshot(1).is_none(), "the snapshot got a new slot");

        // A snapshot really gone is dropped.
        std::fs::remove_dir_all(&snap).expect("rm snapshot");
        assert!(!reg.refresh().is_empty());
        assert!(reg.snapshot(0).is_none(), "a deleted snapshot stayed");
    }

    #[test]
    fn entry_nodes_round_trip() {
        let n = entry_node(7, 123_456);
        assert_eq!(split_entry_node(n), Some((7, 123_456)));
        assert_eq!(split_entry_node(ROOT), None);
    }
}

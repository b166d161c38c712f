//! The snapshot filesystem: every destination's snapshots as read-only,
//! point-in-time directories, served with FUSE.
//!
//! Layout (daemon): `/<destination>/<job>/<snapshot>/<absolute source path>`
//! and `/<destination>/<job>/latest`, a symlink to the newest snapshot.
//! Standalone (`hindsight mount --destination`): the same without the
//! destination level.
//!
//! Node ids are derived, never tabled per lookup: the root and the
//! destination, job and `latest` nodes come from the `registry` (bounded by
//! the number of jobs and snapshots), and every entry of a snapshot is
//! `1<<63 | slot<<32 | index id`, where the slot numbers the snapshot for the
//! life of the mount. `st_ino` is the entry's inode on the destination when
//! the index has it, so a file hardlinked across snapshots is one file to
//! `cp -a` and `rsync -H`.
//!
//! Snapshots are immutable: entries, attributes and directory listings inside
//! them are cached by the kernel without expiry; file data of incremental
//! snapshots is served by FUSE passthrough (the kernel reads the backing file
//! directly), a directory whose files are opened in order has its next
//! files read ahead from the disk (`prefetch`), and a listed directory has
//! the entries of its subdirectories stat'ed ahead of a walk (`stat_ahead`).
//! The agent refreshes the mount ([`Refresher`]) before it reports a
//! snapshot committed or deleted, so `job run --wait && cp -a .../latest`
//! copies the new snapshot; the registry also rescans destinations every
//! second (remote ones every ten) and invalidates what changed, so that
//! snapshots made or deleted by others appear and disappear without
//! remounting. Content that is not a plain file (archives, remote blobs) is
//! read through [`content::ReadAt`].

mod attr;
mod backing;
pub mod content;
mod filesystem;
pub mod mountpoint;
mod prefetch;
mod registry;
mod stat_ahead;
mod workers;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub use registry::DestinationView;

use crate::error::{FsError, Result};

/// How often destinations are rescanned for new and deleted snapshots.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// What the root of the mount holds.
#[derive(Clone)]
pub enum Layout {
    /// Daemon: one directory per destination, from a source queried at every refresh.
    Destinations(Arc<dyn Fn() -> Vec<DestinationView> + Send + Sync>),
    /// Standalone: the jobs of one destination at the root.
    Single(DestinationView),
}

/// A mount request.
#[derive(Clone)]
pub struct MountConfig {
    /// Where to mount (an empty directory).
    pub mountpoint: PathBuf,
    /// What to show.
    pub layout: Layout,
    /// Worker threads for the requests that may block (archive and remote
    /// reads); the kernel's requests are read by one thread (see `workers`).
    pub threads: usize,
    /// Bytes of inflated archive members and remote file chunks kept in memory.
    pub cache_bytes: usize,
}

/// Brings a mount up to date at once: what the agent calls after it
/// committed or deleted a snapshot, so that whoever is told of the change
/// finds it in the mount (the periodic rescan is for changes made by others).
#[derive(Clone)]
pub struct Refresher {
    registry: Arc<registry::Registry>,
    notifier: fuser::Notifier,
}

impl Refresher {
    /// Rescans every destination (the remote ones named in `changed` are
    /// listed again now) and makes the kernel forget what changed. Blocks for
    /// the listing: call it from a thread that may block.
    pub fn refresh(&self, changed: &[String]) {
        for inval in self.registry.refresh_forcing(changed) {
            inval.send(&self.notifier);
        }
    }
}

/// A mounted snapshot filesystem; unmounted by [`MountHandle::unmount`] or on drop.
pub struct MountHandle {
    session: Option<fuser::BackgroundSession>,
    stop: Arc<AtomicBool>,
    refresher: Option<JoinHandle<()>>,
    now: Refresher,
    mountpoint: PathBuf,
    /// The mount's device, to tell it from a later mount on the same directory.
    device: Option<String>,
}

impl MountHandle {
    /// The mountpoint.
    pub fn mountpoint(&self) -> &std::path::Path {
        &self.mountpoint
    }

    /// A handle that brings this mount up to date on demand.
    pub fn refresher(&self) -> Refresher {
        self.now.clone()
    }

    /// Unmounts and waits for the request thread to stop.
    pub fn unmount(mut self) -> Result<()> {
        self.shutdown()
    }

    /// Waits until the filesystem is unmounted from outside (`umount`,
    /// `hindsight umount`), then stops the refresher.
    pub fn wait(mut self) -> Result<()> {
        let result = match self.session.take() {
            Some(s) => self.join_ended(s).map_err(|e| FsError::io("serve", &self.mountpoint, e)),
            None => Ok(()),
        };
        self.stop_refresher();
        result
    }

    fn stop_refresher(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
    }

    fn shutdown(&mut self) -> Result<()> {
        self.stop_refresher();
        if let Some(s) = self.session.take() {
            // Unmounted from outside already: the mountpoint may hold another mount by now.
            let ended = if s.guard.is_finished() { self.join_ended(s) } else { s.umount_and_join() };
            ended.map_err(|e| FsError::io("unmount", &self.mountpoint, e))?;
        }
        Ok(())
    }

    /// Joins the request thread of a session that has ended, without fuser's
    /// unmount on drop: fuser 0.18 takes the dead connection's POLLERR for a
    /// live mount and unmounts the mountpoint by its path, which removes
    /// whatever was mounted there since (a mount detached while a file of it
    /// was open ends when the file is closed, minutes later maybe). Ours is
    /// unmounted here only if it is still the one there. The session's
    /// remains (the dead `/dev/fuse` descriptor, the mount record) are let go
    /// unfreed: one per mount, at its end.
    fn join_ended(&self, mut session: fuser::BackgroundSession) -> std::io::Result<()> {
        let Ok(placeholder) = std::thread::Builder::new().spawn(|| Ok(())) else {
            // No thread to swap in: join as fuser does.
            return session.join();
        };
        let guard = std::mem::replace(&mut session.guard, placeholder);
        std::mem::forget(session);
        let joined = guard.join().map_err(|_| std::io::Error::other("the FUSE request thread panicked"));
        if self.device.is_some()
            && mountpoint::mounted_device(&self.mountpoint) == self.device
            && let Err(e) = mountpoint::unmount(&self.mountpoint)
        {
            tracing::warn!("{e}");
        }
        joined?
    }
}

impl Drop for MountHandle {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!("{e}");
        }
    }
}

/// Mounts the snapshot filesystem in the background.
pub fn spawn(config: MountConfig) -> Result<MountHandle> {
    mountpoint::prepare(&config.mountpoint)?;
    // Kept backing files are open descriptors: their number follows the limit.
    let backings = backing::backing_cache_size(crate::posix::raise_fd_limit());
    let registry = Arc::new(registry::Registry::new(config.layout.clone(), config.cache_bytes, backings));
    registry.refresh();
    let fs = filesystem::SnapshotFs::new(registry.clone(), config.threads.max(1));
    let mut options = fuser::Config::default();
    options.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("hindsight".into()),
        fuser::MountOption::Subtype("hindsight".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    options.acl = fuser::SessionACL::All;
    options.n_threads = Some(1);
    let session = fuser::spawn_mount(fs, &config.mountpoint, &options)
        .map_err(|e| FsError::io("mount FUSE filesystem on", &config.mountpoint, e))?;
    mountpoint::raise_readahead(&config.mountpoint);
    let device = mountpoint::mounted_device(&config.mountpoint);
    let notifier = session.notifier();
    let stop = Arc::new(AtomicBool::new(false));
    let now = Refresher { registry, notifier };
    let refresher = {
        let (stop, now) = (stop.clone(), now.clone());
        std::thread::Builder::new()
            .name("hindsight-mount-refresh".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(REFRESH_EVERY);
                    now.refresh(&[]);
                }
            })
            .map_err(|e| FsError::io("start refresher for", &config.mountpoint, e))?
    };
    tracing::info!("snapshot filesystem mounted on {}", config.mountpoint.display());
    Ok(MountHandle {
        session: Some(session),
        stop,
        refresher: Some(refresher),
        now,
        mountpoint: config.mountpoint,
        device,
    })
}

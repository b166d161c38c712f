//! The directory layout of a destination root.
//!
//! ```text
//! <root>/HINDSIGHT                    marker
//! <root>/<job>/<snapshot>/            complete snapshot (has snapshot.json)
//! <root>/<job>/.partial-<snapshot>/   backup in progress: never listed
//! <root>/<job>/.deleting-<snapshot>/  deletion in progress: never listed
//! <root>/<job>/.lock                  flock held by the run writing to the job
//! ```
//!
//! Only names that parse as snapshot names and hold a manifest are snapshots;
//! everything starting with a dot is work in progress and invisible.
//!
//! A destination is private to the agent: its root is created mode 0700 and
//! [`DestinationRoot::secure`] tightens an existing one, so that local users
//! reach snapshots only through the mount, which enforces the recorded
//! owners and modes. What a destination holds may still have been written by
//! someone else (an adopted disk): names read from it are checked before
//! they become paths, job directories are opened `O_NOFOLLOW`, deletions go
//! one descriptor at a time, and the agent's own files are created
//! `O_EXCL|O_NOFOLLOW` so that a planted symlink is never written through.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rustix::fs::{Mode, OFlags};

use crate::error::{FsError, Result};
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::marker::{MARKER_FILE, Marker};
use crate::names;
use crate::posix;

/// Prefix of in-progress snapshot directories.
pub const PARTIAL_PREFIX: &str = ".partial-";
/// Prefix of snapshot directories being deleted.
pub const DELETING_PREFIX: &str = ".deleting-";
/// Directory of incremental file contents inside a snapshot.
pub const TREE_DIR: &str = "tree";
/// Largest marker file read (they are a few hundred bytes).
pub(crate) const MARKER_MAX: u64 = 64 << 10;

/// A destination root on a POSIX filesystem.
#[derive(Debug, Clone)]
pub struct DestinationRoot {
    path: PathBuf,
}

/// What [`DestinationRoot::init`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// A new marker was written.
    Created(Marker),
    /// An existing marker was found: its snapshots are adopted.
    Adopted(Marker),
}

impl DestinationRoot {
    /// A root at `path` (nothing is checked).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DestinationRoot { path: path.into() }
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Prepares the root for use: adopts an existing marker, or writes a new one
    /// into a directory that is empty (or any directory with `force`). A root
    /// that does not exist is created mode 0700.
    pub fn init(&self, destination_id: &str, force: bool) -> Result<InitOutcome> {
        create_private_dir_all(&self.path)?;
        if let Some(m) = self.read_marker()? {
            return Ok(InitOutcome::Adopted(m));
        }
        let mut entries = std::fs::read_dir(&self.path).map_err(|e| FsError::io("read", &self.path, e))?;
        if !force && entries.next().is_some() {
            return Err(FsError::Refused(format!(
                "{} is not empty and holds no Hindsight marker; use --force to use it anyway",
                self.path.display()
            )));
        }
        let marker = Marker::new(destination_id);
        write_atomic(&self.path.join(MARKER_FILE), &marker.to_bytes())?;
        Ok(InitOutcome::Created(marker))
    }

    /// Makes the root private to the agent: a directory owned by the agent's
    /// user, mode 0700. Returns what had to be changed (empty when nothing),
    /// for the caller to log.
    pub fn secure(&self) -> Result<Vec<String>> {
        let fd = self.open_root()?;
        let st = rustix::fs::fstat(&fd).map_err(|e| FsError::io("stat", &self.path, e))?;
        let mut changed = Vec::new();
        let me = rustix::process::geteuid();
        if st.st_uid != me.as_raw() {
            rustix::fs::fchown(&fd, Some(me), None).map_err(|e| FsError::io("chown", &self.path, e))?;
            changed.push(format!("owner uid {} -> {}", st.st_uid, me.as_raw()));
        }
        let mode = st.st_mode & 0o7777;
        if mode != 0o700 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).map_err(|e| FsError::io("chmod", &self.path, e))?;
            changed.push(format!("mode {mode:04o} -> 0700"));
        }
        Ok(changed)
    }

    /// Why others could reach into the root, if they can (for read-only
    /// destinations, which the agent does not change).
    pub fn exposure(&self) -> Result<Option<String>> {
        let st = rustix::fs::stat(&self.path).map_err(|e| FsError::io("stat", &self.path, e))?;
        let me = rustix::process::geteuid().as_raw();
        let mode = st.st_mode & 0o7777;
        Ok(match (st.st_uid == me, mode & 0o077) {
            (true, 0) => None,
            (true, _) => Some(format!("its root is mode {mode:04o}: local users can read its snapshots directly")),
            (false, _) => Some(format!("its root is owned by uid {}: that user can change its snapshots", st.st_uid)),
        })
    }

    /// The root directory, opened (the path was given by the administrator:
    /// it is followed like any path they type).
    pub fn open_root(&self) -> Result<OwnedFd> {
        posix::open_dir(&self.path).map_err(|e| FsError::io("open", &self.path, e))
    }

    /// A job's directory, opened without following a symlink; the name is checked first.
    pub fn open_job(&self, job: &str) -> Result<OwnedFd> {
        names::check_job_dir(job).map_err(FsError::Refused)?;
        let root = self.open_root()?;
        posix::open_dir_at(root.as_fd(), job.as_bytes()).map_err(|e| FsError::io("open", self.job_dir(job), e))
    }

    /// The marker, if the root has one.
    pub fn read_marker(&self) -> Result<Option<Marker>> {
        let p = self.path.join(MARKER_FILE);
        match posix::read_small_file(&p, MARKER_MAX) {
            Ok(b) => Marker::parse(&p, &b).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FsError::io("read", p, e)),
        }
    }

    /// The marker, or an error saying the root is not a Hindsight destination.
    pub fn require_marker(&self) -> Result<Marker> {
        self.read_marker()?.ok_or_else(|| {
            FsError::Refused(format!(
                "{} is not a Hindsight destination (no {MARKER_FILE} marker)",
                self.path.display()
            ))
        })
    }

    /// Directory of a job's snapshots.
    pub fn job_dir(&self, job: &str) -> PathBuf {
        self.path.join(job)
    }

    /// Directory of a complete snapshot.
    pub fn snapshot_dir(&self, job: &str, snapshot: &str) -> PathBuf {
        self.job_dir(job).join(snapshot)
    }

    /// Work directory of a snapshot in progress.
    pub fn partial_dir(&self, job: &str, snapshot: &str) -> PathBuf {
        self.job_dir(job).join(format!("{PARTIAL_PREFIX}{snapshot}"))
    }

    /// Jobs that have a directory (not a symlink) on this destination.
    pub fn list_jobs(&self) -> Result<Vec<String>> {
        let mut jobs = Vec::new();
        for name in read_names(&self.path)? {
            if names::check_job_dir(&name).is_ok() && is_real_dir(&self.path.join(&name)) {
                jobs.push(name);
            }
        }
        jobs.sort();
        Ok(jobs)
    }

    /// Names of a job's complete snapshots, oldest first.
    pub fn list_snapshots(&self, job: &str) -> Result<Vec<String>> {
        names::check_job_dir(job).map_err(FsError::Refused)?;
        let dir = self.job_dir(job);
        let mut snaps: Vec<String> = read_names(&dir)?
            .into_iter()
            .filter(|n| {
                names::is_snapshot_name(n)
                    && is_real_dir(&dir.join(n))
                    && std::fs::symlink_metadata(dir.join(n).join(MANIFEST_FILE)).is_ok_and(|m| m.is_file())
            })
            .collect();
        snaps.sort_by_key(|n| snapshot_sort_key(n));
        Ok(snaps)
    }

    /// A job's complete snapshots with their manifests, oldest first in
    /// completion order ([`crate::manifest::sort_by_completion`]).
    pub fn snapshots_in_order(&self, job: &str) -> Result<Vec<(String, Result<Manifest>)>> {
        let mut snaps: Vec<(String, Result<Manifest>)> =
            self.list_snapshots(job)?.into_iter().map(|n| (n.clone(), self.read_manifest(job, &n))).collect();
        crate::manifest::sort_by_completion(&mut snaps);
        Ok(snaps)
    }

    /// The manifest of a complete snapshot, refused unless it names the
    /// directory it was found in.
    pub fn read_manifest(&self, job: &str, snapshot: &str) -> Result<Manifest> {
        names::check_job_dir(job).map_err(FsError::Refused)?;
        names::check_snapshot_name(snapshot).map_err(FsError::Refused)?;
        let m = Manifest::read(&self.snapshot_dir(job, snapshot).join(MANIFEST_FILE))?;
        m.check_identity(job, snapshot, &self.snapshot_dir(job, snapshot))?;
        Ok(m)
    }

    /// Names (without prefix) of a job's directories with the given work prefix.
    pub fn list_work(&self, job: &str, prefix: &str) -> Result<Vec<String>> {
        let mut v: Vec<String> = read_names(&self.job_dir(job))?
            .into_iter()
            .filter_map(|n| n.strip_prefix(prefix).map(String::from))
            .collect();
        v.sort_by_key(|n| snapshot_sort_key(n));
        Ok(v)
    }

    /// A snapshot name for `at` that no directory of the job uses yet.
    pub fn new_snapshot_name(&self, job: &str, at: Timestamp) -> String {
        snapshot_name_after(&read_names(&self.job_dir(job)).unwrap_or_default(), at)
    }

    /// Makes a snapshot invisible at once (rename to `.deleting-*`); the caller
    /// then removes the files with [`DestinationRoot::finish_delete`]. Both
    /// names are checked: a catalog row may come from a hostile manifest.
    pub fn begin_delete(&self, job: &str, snapshot: &str) -> Result<()> {
        names::check_snapshot_name(snapshot).map_err(FsError::Refused)?;
        let dir = self.open_job(job)?;
        let to = format!("{DELETING_PREFIX}{snapshot}");
        rustix::fs::renameat(dir.as_fd(), snapshot, dir.as_fd(), to.as_str())
            .map_err(|e| FsError::io("rename", self.snapshot_dir(job, snapshot), e))?;
        rustix::fs::fsync(&dir).map_err(|e| FsError::io("fsync", self.job_dir(job), e))
    }

    /// Removes the files of a snapshot whose deletion began (idempotent).
    pub fn finish_delete(&self, job: &str, snapshot: &str) -> Result<()> {
        self.finish_delete_with(job, snapshot, &mut || std::ops::ControlFlow::Continue(()))
    }

    /// Like [`DestinationRoot::finish_delete`], calling `unlinked` after each
    /// file removed (it may stop the removal: see [`posix::remove_tree_at_with`]). The tree is removed one descriptor at a time, never
    /// entering a symlink: a user who could write in it cannot send the
    /// removal anywhere else.
    pub fn finish_delete_with(
        &self,
        job: &str,
        snapshot: &str,
        unlinked: &mut dyn FnMut() -> std::ops::ControlFlow<()>,
    ) -> Result<()> {
        let name = format!("{DELETING_PREFIX}{snapshot}");
        if snapshot.is_empty() || snapshot.contains('/') || name.len() > 255 {
            return Err(FsError::Refused(format!("invalid snapshot name {snapshot:?}")));
        }
        let dir = match self.open_job(job) {
            Err(FsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            r => r?,
        };
        let path = self.job_dir(job).join(&name);
        posix::remove_tree_at_with(dir.as_fd(), name.as_bytes(), unlinked).map_err(|e| FsError::io("remove", path, e))
    }
}

/// Creates `path` and its missing parents mode 0700 (an existing directory is left as it is).
pub fn create_private_dir_all(path: &Path) -> Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(|e| FsError::io("create", path, e))
}

/// True when `p` is a directory itself, not a symlink to one.
fn is_real_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// Sort key that orders `...Z`, `...Z-1`, `...Z-2`, `...Z-10` by time then suffix.
pub(crate) fn snapshot_sort_key(name: &str) -> (String, u64) {
    match name.split_once("Z-") {
        Some((base, n)) => (format!("{base}Z"), n.parse().unwrap_or(u64::MAX)),
        None => (name.to_string(), 0),
    }
}

/// UTF-8 names in a directory (empty when the directory does not exist).
fn read_names(dir: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FsError::io("read", dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| FsError::io("read", dir, e))?;
        if let Some(n) = ent.file_name().to_str() {
            out.push(n.to_string());
        }
    }
    Ok(out)
}

/// fsyncs a directory so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = std::fs::File::open(dir).map_err(|e| FsError::io("open", dir, e))?;
    f.sync_all().map_err(|e| FsError::io("fsync", dir, e))
}

/// Writes `bytes` to `path` atomically and privately (mode 0600): a new
/// temporary file with an unpredictable name (`O_EXCL|O_NOFOLLOW`), fsync,
/// rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or(OsStr::new("file")).to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let dfd = posix::open_dir(dir).map_err(|e| FsError::io("open", dir, e))?;
    let tmp_name = tmp.file_name().unwrap_or_default().as_bytes();
    let mut f = posix::create_new_at(dfd.as_fd(), tmp_name, 0o600).map_err(|e| FsError::io("create", &tmp, e))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    drop(f);
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(dfd.as_fd(), tmp_name, rustix::fs::AtFlags::empty());
        return Err(FsError::io("write", &tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| FsError::io("rename", &tmp, e))?;
    rustix::fs::fsync(&dfd).map_err(|e| FsError::io("fsync", dir, e))
}

/// An exclusive lock on a job's directory of a destination, held while a run
/// writes there. It is an `flock`, so the kernel releases it when the holder
/// dies: there are no stale locks.
#[derive(Debug)]
pub struct JobLock {
    _fd: OwnedFd,
}

impl JobLock {
    /// Takes the lock without waiting; `Busy` when another run holds it. The
    /// job directory is created mode 0700 if missing; one that is a symlink
    /// (or a `.lock` that is not a regular file) is refused.
    pub fn acquire(root: &DestinationRoot, job: &str) -> Result<Self> {
        names::check_job_dir(job).map_err(FsError::Refused)?;
        let dir_path = root.job_dir(job);
        let rootfd = root.open_root()?;
        match rustix::fs::mkdirat(rootfd.as_fd(), job, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(FsError::io("create", &dir_path, e)),
        }
        let dir = posix::open_dir_at(rootfd.as_fd(), job.as_bytes()).map_err(|e| FsError::io("open", &dir_path, e))?;
        let path = dir_path.join(".lock");
        let fd = rustix::fs::openat(
            dir.as_fd(),
            ".lock",
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| FsError::io("open", &path, e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| FsError::io("stat", &path, e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(FsError::Refused(format!("{} is not a regular file", path.display())));
        }
        match rustix::fs::flock(fd.as_fd(), rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(JobLock { _fd: fd }),
            Err(rustix::io::Errno::WOULDBLOCK) => {
                Err(FsError::Busy(format!("another run of job {job} is writing to {}", root.path().display())))
            }
            Err(e) => Err(FsError::io("flock", path, e)),
        }
    }
}

/// A snapshot name for `at` that sorts after every name in `existing` taken in
/// the same second (complete, in progress or being deleted): the new name must
/// sort after all of them, even when the unsuffixed one was deleted since.
pub fn snapshot_name_after(existing: &[String], at: Timestamp) -> String {
    let base = names::snapshot_base_name(at);
    let suffix = |n: &str| -> Option<u64> {
        let n = n.strip_prefix(PARTIAL_PREFIX).or_else(|| n.strip_prefix(DELETING_PREFIX)).unwrap_or(n);
        match n.strip_prefix(base.as_str())? {
            "" => Some(0),
            rest => rest.strip_prefix('-')?.parse().ok(),
        }
    };
    match existing.iter().filter_map(|n| suffix(n.trim_end_matches('/'))).max() {
        None => base,
        Some(highest) => format!("{base}-{}", highest + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_adopts_and_refuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = DestinationRoot::new(dir.path().join("d"));
        let (id1, id2, id3) =
            (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
        let m = match root.init(&id1, false).expect("init") {
            InitOutcome::Created(m) => m,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(root.init(&id2, false).expect("adopt"), InitOutcome::Adopted(m));
        let other = DestinationRoot::new(dir.path().join("e"));
        std::fs::create_dir_all(other.path()).expect("mkdir");
        std::fs::write(other.path().join("junk"), b"x").expect("write");
        assert!(matches!(other.init(&id3, false), Err(FsError::Refused(_))));
        assert!(matches!(other.init(&id3, true), Ok(InitOutcome::Created(_))));
    }

    #[test]
    fn snapshots_listed_in_order_and_partials_hidden() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = DestinationRoot::new(dir.path());
        for n in ["2026-01-01T000000Z-10", "2026-01-01T000000Z", "2026-01-01T000000Z-2", "nope"] {
            let d = root.snapshot_dir("j", n);
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join(MANIFEST_FILE), b"{}").expect("write");
        }
        std::fs::create_dir_all(root.partial_dir("j", "2026-02-01T000000Z")).expect("mkdir");
        std::fs::create_dir_all(root.snapshot_dir("j", "2026-03-01T000000Z")).expect("mkdir");
        assert_eq!(
            root.list_snapshots("j").expect("list"),
            vec!["2026-01-01T000000Z", "2026-01-01T000000Z-2", "2026-01-01T000000Z-10"]
        );
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
        assert_eq!(root.new_snapshot_name("j", t), "2026-01-01T000000Z-11");
        let later: Timestamp = "2026-04-01T00:00:00Z".parse().expect("ts");
        assert_eq!(root.new_snapshot_name("j", later), "2026-04-01T000000Z");
        // The unsuffixed name was deleted: the next one still sorts last.
        std::fs::remove_dir_all(root.snapshot_dir("j", "2026-01-01T000000Z")).expect("rm");
        assert_eq!(root.new_snapshot_name("j", t), "2026-01-01T000000Z-11");
    }

    #[test]
    fn job_lock_is_exclusive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = DestinationRoot::new(dir.path());
        let l = JobLock::acquire(&root, "j").expect("lock");
        assert!(matches!(JobLock::acquire(&root, "j"), Err(FsError::Busy(_))));
        drop(l);
        JobLock::acquire(&root, "j").expect("relock");
    }

    #[test]
    fn a_new_root_is_private_and_an_old_one_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = DestinationRoot::new(dir.path().join("new/dest"));
        root.init(&uuid::Uuid::new_v4().to_string(), false).expect("init");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode(root.path()), 0o700);
        assert_eq!(mode(&root.path().join(MARKER_FILE)), 0o600, "the marker is private");
        assert!(root.secure().expect("secure").is_empty(), "a new root needed tightening");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(root.exposure().expect("exposure").is_some());
        assert_eq!(root.secure().expect("secure"), vec!["mode 0755 -> 0700".to_string()]);
        assert_eq!(mode(root.path()), 0o700);
        assert!(root.exposure().expect("exposure").is_none());
    }

    #[test]
    fn deletion_names_are_checked_and_never_leave_the_job() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = DestinationRoot::new(dir.path().join("dest"));
        let victim = dir.path().join("victim");
        std::fs::create_dir_all(&victim).expect("mkdir");
        std::fs::write(victim.join("keep"), b"x").expect("write");
        std::fs::create_dir_all(root.job_dir("j").join(".deleting-x")).expect("mkdir");
        for bad in ["x/../../../victim", "../victim", ""] {
            assert!(root.begin_delete("j", bad).is_err(), "{bad:?}");
            assert!(root.finish_delete("j", bad).is_err(), "{bad:?}");
        }
        assert!(root.finish_delete("../x", "2026-01-01T000000Z").is_err());
        assert!(victim.join("keep").is_file(), "a traversal name reached outside the destination");

        // A job directory that is a symlink is neither locked, listed nor entered.
        std::os::unix::fs::symlink(&victim, root.job_dir("evil")).expect("symlink");
        std::fs::create_dir_all(victim.join(".deleting-2026-01-01T000000Z")).expect("mkdir");
        assert!(JobLock::acquire(&root, "evil").is_err());
        assert!(root.finish_delete("evil", "2026-01-01T000000Z").is_err());
        assert!(victim.join(".deleting-2026-01-01T000000Z").is_dir());
        assert_eq!(root.list_jobs().expect("list"), vec!["j".to_string()]);
        assert!(!victim.join(".lock").exists(), "a lock file was created through the symlink");
    }

    #[test]
    fn a_planted_lock_symlink_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = DestinationRoot::new(dir.path().join("dest"));
        std::fs::create_dir_all(root.job_dir("j")).expect("mkdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        std::os::unix::fs::symlink(&victim, root.job_dir("j").join(".lock")).expect("symlink");
        assert!(JobLock::acquire(&root, "j").is_err());
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
    }
}

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

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::error::{FsError, Result};
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::marker::{MARKER_FILE, Marker};
use crate::names;

/// Prefix of in-progress snapshot directories.
pub const PARTIAL_PREFIX: &str = ".partial-";
/// Prefix of snapshot directories being deleted.
pub const DELETING_PREFIX: &str = ".deleting-";
/// Directory of incremental file contents inside a snapshot.
pub const TREE_DIR: &str = "tree";

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
    /// into a directory that is empty (or any directory with `force`).
    pub fn init(&self, destination_id: &str, force: bool) -> Result<InitOutcome> {
        std::fs::create_dir_all(&self.path).map_err(|e| FsError::io("create", &self.path, e))?;
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

    /// The marker, if the root has one.
    pub fn read_marker(&self) -> Result<Option<Marker>> {
        let p = self.path.join(MARKER_FILE);
        match std::fs::read(&p) {
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

    /// Jobs that have a directory on this destination.
    pub fn list_jobs(&self) -> Result<Vec<String>> {
        let mut jobs = Vec::new();
        for name in read_names(&self.path)? {
            if names::check_name("job", &name).is_ok() && self.path.join(&name).is_dir() {
                jobs.push(name);
            }
        }
        jobs.sort();
        Ok(jobs)
    }

    /// Names of a job's complete snapshots, oldest first.
    pub fn list_snapshots(&self, job: &str) -> Result<Vec<String>> {
        let dir = self.job_dir(job);
        let mut snaps: Vec<String> = read_names(&dir)?
            .into_iter()
            .filter(|n| names::is_snapshot_name(n) && dir.join(n).join(MANIFEST_FILE).is_file())
            .collect();
        snaps.sort_by_key(|n| snapshot_sort_key(n));
        Ok(snaps)
    }

    /// The manifest of a complete snapshot.
    pub fn read_manifest(&self, job: &str, snapshot: &str) -> Result<Manifest> {
        Manifest::read(&self.snapshot_dir(job, snapshot).join(MANIFEST_FILE))
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
    /// then removes the files with [`DestinationRoot::finish_delete`].
    pub fn begin_delete(&self, job: &str, snapshot: &str) -> Result<()> {
        let from = self.snapshot_dir(job, snapshot);
        let to = self.job_dir(job).join(format!("{DELETING_PREFIX}{snapshot}"));
        std::fs::rename(&from, &to).map_err(|e| FsError::io("rename", &from, e))?;
        sync_dir(&self.job_dir(job))
    }

    /// Removes the files of a snapshot whose deletion began (idempotent).
    pub fn finish_delete(&self, job: &str, snapshot: &str) -> Result<()> {
        let dir = self.job_dir(job).join(format!("{DELETING_PREFIX}{snapshot}"));
        crate::posix::remove_tree(&dir).map_err(|e| FsError::io("remove", &dir, e))
    }
}

/// Sort key that orders `...Z`, `...Z-1`, `...Z-2`, `...Z-10` by time then suffix.
pub fn snapshot_sort_key(name: &str) -> (String, u64) {
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

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or(OsStr::new("file")).to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(|e| FsError::io("create", &tmp, e))?;
    f.write_all(bytes).map_err(|e| FsError::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| FsError::io("fsync", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| FsError::io("rename", &tmp, e))?;
    sync_dir(dir)
}

/// An exclusive lock on a job's directory of a destination, held while a run
/// writes there. It is an `flock`, so the kernel releases it when the holder
/// dies: there are no stale locks.
#[derive(Debug)]
pub struct JobLock {
    _fd: OwnedFd,
}

impl JobLock {
    /// Takes the lock without waiting; `Busy` when another run holds it.
    pub fn acquire(root: &DestinationRoot, job: &str) -> Result<Self> {
        let dir = root.job_dir(job);
        std::fs::create_dir_all(&dir).map_err(|e| FsError::io("create", &dir, e))?;
        let path = dir.join(".lock");
        let fd = rustix::fs::open(
            &path,
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CREATE | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .map_err(|e| FsError::io("open", &path, e))?;
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
        let m = match root.init("id-1", false).expect("init") {
            InitOutcome::Created(m) => m,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(root.init("id-2", false).expect("adopt"), InitOutcome::Adopted(m));
        let other = DestinationRoot::new(dir.path().join("e"));
        std::fs::create_dir_all(other.path()).expect("mkdir");
        std::fs::write(other.path().join("junk"), b"x").expect("write");
        assert!(matches!(other.init("id-3", false), Err(FsError::Refused(_))));
        assert!(matches!(other.init("id-3", true), Ok(InitOutcome::Created(_))));
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
}

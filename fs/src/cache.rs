//! The agent's local cache of a remote destination: copies of manifests and
//! indexes under `<cache>/<job>/<snapshot>/`, and the work files of remote
//! backups.
//!
//! The cache root is a directory of the agent's own (keyed by a locally
//! generated id, never by anything a destination says), created mode 0700.
//! Below it, every directory is created 0700 and opened `O_NOFOLLOW`, and
//! every file is written 0600 under an unpredictable temporary name
//! (`O_EXCL|O_NOFOLLOW`) then renamed into place, all relative to open
//! descriptors: a job or snapshot name read from a destination is checked
//! before it is used, and even a symlink planted in the cache is never
//! followed.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode};

use crate::error::{FsError, Result};
use crate::names;
use crate::posix;

/// A snapshot's directory in the cache, opened.
pub(crate) struct CachedSnapshot {
    dir: OwnedFd,
    path: PathBuf,
}

impl CachedSnapshot {
    /// Opens (creating them 0700 when missing) `<cache>/<job>/<snapshot>/`;
    /// both names are checked against the rules of names the agent creates.
    pub(crate) fn open(cache: &Path, job: &str, snapshot: &str) -> Result<Self> {
        names::check_job_dir(job).map_err(FsError::Refused)?;
        names::check_snapshot_name(snapshot).map_err(FsError::Refused)?;
        let root = open_root(cache)?;
        let job_dir = private_subdir(root.as_fd(), job, &cache.join(job))?;
        let path = cache.join(job).join(snapshot);
        let dir = private_subdir(job_dir.as_fd(), snapshot, &path)?;
        Ok(CachedSnapshot { dir, path })
    }

    /// The directory's path (for readers that open by path, such as SQLite).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// True when the directory holds `name` as a regular file.
    pub(crate) fn has(&self, name: &str) -> bool {
        posix::lstat_at(self.dir.as_fd(), name.as_bytes())
            .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile)
    }

    /// Writes `name` from `fill` through a temporary file renamed into place.
    pub(crate) fn write_with(
        &self,
        name: &str,
        fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> Result<()> {
        write_private(self.dir.as_fd(), &self.path, name, fill)
    }

    /// Writes `name` with `bytes`.
    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.write_with(name, |f| f.write_all(bytes))
    }
}

/// Opens the cache root, creating it (and missing parents) mode 0700.
pub(crate) fn open_root(cache: &Path) -> Result<OwnedFd> {
    crate::layout::create_private_dir_all(cache)?;
    posix::open_dir(cache).map_err(|e| FsError::io("open", cache, e))
}

/// Opens directory `name` of `dir`, creating it mode 0700 when missing; never through a symlink.
pub(crate) fn private_subdir(dir: BorrowedFd<'_>, name: &str, path: &Path) -> Result<OwnedFd> {
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(FsError::io("create", path, e)),
    }
    posix::open_dir_at(dir, name.as_bytes()).map_err(|e| FsError::io("open", path, e))
}

/// Writes file `name` of `dir` (at `path`, for messages) mode 0600: a new
/// temporary file filled by `fill`, then renamed over `name`.
pub(crate) fn write_private(
    dir: BorrowedFd<'_>,
    path: &Path,
    name: &str,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple());
    let mut f =
        posix::create_new_at(dir, tmp.as_bytes(), 0o600).map_err(|e| FsError::io("create", path.join(&tmp), e))?;
    let filled = fill(&mut f);
    drop(f);
    let renamed = filled.and_then(|()| Ok(rustix::fs::renameat(dir, tmp.as_str(), dir, name)?));
    if let Err(e) = renamed {
        let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
        return Err(FsError::io("write", path.join(name), e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn cache_files_are_private_and_names_are_checked() {
        let t = tempfile::tempdir().expect("tempdir");
        let cache = t.path().join("cache/id");
        let snap = CachedSnapshot::open(&cache, "j", "2026-11-22T035000Z").expect("open");
        snap.write("index.sqlite", b"bytes").expect("write");
        assert!(snap.has("index.sqlite"));
        let mode = |p: &Path| std::fs::symlink_metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&cache), 0o700);
        assert_eq!(mode(&cache.join("j")), 0o700);
        assert_eq!(mode(&snap.path().join("index.sqlite")), 0o600);
        for (job, name) in
            [("..", "2026-11-22T035000Z"), ("j", "../../x"), ("j", "/etc"), ("/etc", "2026-11-22T035000Z")]
        {
            assert!(CachedSnapshot::open(&cache, job, name).is_err(), "{job}/{name}");
        }
    }

    #[test]
    fn a_symlink_planted_in_the_cache_is_not_followed() {
        let t = tempfile::tempdir().expect("tempdir");
        let cache = t.path().join("cache");
        let victim = t.path().join("victim");
        std::fs::create_dir_all(&victim).expect("mkdir");
        std::fs::create_dir_all(&cache).expect("mkdir");
        std::os::unix::fs::symlink(&victim, cache.join("j")).expect("symlink");
        assert!(CachedSnapshot::open(&cache, "j", "2026-11-22T035000Z").is_err());
        assert_eq!(std::fs::read_dir(&victim).expect("read").count(), 0, "something was written through the symlink");
    }
}

//! The sources' paths, opened from `/` one component at a time without
//! following a symlink: every walker starts from what this returns.
//!
//! A source is an absolute path the administrator gave; a user who owns one
//! of its directories could put a symlink there, and root would back up
//! whatever it points to under that name. So a source whose path holds a
//! symlink is refused with an error that says so (give the real path), and
//! the ancestors' metadata is taken from the very directories opened.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use hindsight_fs::posix;
use hindsight_fs::{EntryKind, EntryMeta};

use super::spec::BackupError;

/// The components of an absolute source path (`/` has none).
pub(super) fn components(src: &Path) -> Vec<&[u8]> {
    src.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.as_bytes()),
            _ => None,
        })
        .collect()
}

/// `/`, opened, with its metadata.
pub(super) fn open_root() -> Result<(OwnedFd, EntryMeta), BackupError> {
    let fd = posix::open_dir(Path::new("/")).map_err(|e| BackupError::Source(format!("/: {e}")))?;
    let meta = dir_meta(fd.as_fd()).map_err(|e| BackupError::Source(format!("/: {e}")))?;
    Ok((fd, meta))
}

/// Directory `comp` of `parent` (whose absolute path is `abs`), on the way
/// to a source: opened without following a symlink, with its metadata.
pub(super) fn open_ancestor(
    parent: BorrowedFd<'_>,
    comp: &[u8],
    abs: &[u8],
) -> Result<(OwnedFd, EntryMeta), BackupError> {
    let shown = String::from_utf8_lossy(abs);
    let fd = posix::open_dir_at(parent, comp).map_err(|e| {
        // O_NOFOLLOW with O_DIRECTORY says ENOTDIR for a symlink: look at what is there.
        let kind = posix::lstat_at(parent, comp).ok().and_then(|st| EntryKind::from_mode(st.st_mode));
        match kind {
            Some(EntryKind::Symlink) => {
                let target = rustix::fs::readlinkat(parent, OsStr::from_bytes(comp), Vec::new())
                    .map(|t| format!(" (to {})", t.to_string_lossy()))
                    .unwrap_or_default();
                BackupError::Source(format!(
                    "{shown} is a symbolic link{target}: give the source by its path without symbolic links"
                ))
            }
            Some(k) if k != EntryKind::Dir => BackupError::Source(format!("{shown} is not a directory")),
            _ => BackupError::Source(format!("{shown}: {e}")),
        }
    })?;
    let meta = dir_meta(fd.as_fd()).map_err(|e| BackupError::Source(format!("{shown}: {e}")))?;
    Ok((fd, meta))
}

/// The directory that holds `src` (for `/`, `/` itself), opened through
/// [`open_ancestor`], and the source's last component (`None` for `/`).
pub(super) fn open_parent(src: &Path) -> Result<(OwnedFd, Option<Vec<u8>>), BackupError> {
    let comps = components(src);
    let (mut fd, _) = open_root()?;
    let Some((last, parents)) = comps.split_last() else { return Ok((fd, None)) };
    let mut abs = Vec::new();
    for comp in parents {
        abs.push(b'/');
        abs.extend_from_slice(comp);
        fd = open_ancestor(fd.as_fd(), comp, &abs)?.0;
    }
    Ok((fd, Some(last.to_vec())))
}

/// Checks that a source's path holds no symbolic link (what `job add` says
/// before the first run would).
pub(crate) fn check_path(src: &Path) -> Result<(), String> {
    open_parent(src).map(|_| ()).map_err(|e| e.to_string())
}

/// A directory's metadata and xattrs, from its descriptor.
pub(super) fn dir_meta(fd: BorrowedFd<'_>) -> io::Result<EntryMeta> {
    let st = rustix::fs::fstat(fd)?;
    let mut meta = posix::meta_from_stat(&st).ok_or_else(|| io::Error::other("unsupported file type"))?;
    meta.xattrs = posix::read_xattrs_fd(fd)?;
    Ok(meta)
}

/// Checks that every source can be read before anything is written; a
/// source whose path goes through a symlink is refused (see [`source_path`]).
pub(super) fn check_sources(sources: &[PathBuf]) -> Result<(), BackupError> {
    for s in sources {
        let fail = |e: std::io::Error| BackupError::Source(format!("source {}: {e}", s.display()));
        let (parent, last) = open_parent(s)?;
        let Some(last) = last else { continue };
        let st = posix::lstat_at(parent.as_fd(), &last).map_err(fail)?;
        if EntryKind::from_mode(st.st_mode) == Some(EntryKind::Dir) {
            let dir = posix::open_dir_at(parent.as_fd(), &last).map_err(fail)?;
            posix::list_dir(dir.as_fd()).map_err(fail)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_in_a_source_path_is_refused_and_named() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(t.path().join("real/site")).expect("mkdir");
        std::os::unix::fs::symlink(t.path().join("real"), t.path().join("link")).expect("symlink");
        let (_, last) = open_parent(&t.path().join("real/site")).expect("a real path");
        assert_eq!(last.as_deref(), Some(b"site".as_slice()));
        let err = open_parent(&t.path().join("link/site")).expect_err("a path through a symlink");
        let msg = err.to_string();
        assert!(msg.contains("link is a symbolic link") && msg.contains("real"), "{msg}");
        assert!(check_path(&t.path().join("link/site")).is_err());
    }
}

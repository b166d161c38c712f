//! fd-relative POSIX helpers: read an entry's metadata, apply it to a copy, remove trees.
//!
//! Everything works relative to open directory descriptors with
//! `AT_SYMLINK_NOFOLLOW`, so a symlink swapped in during a backup is never
//! followed. Extended attributes of entries that cannot be opened (symlinks,
//! fifos, devices) are reached through `/proc/self/fd/<dir>/<name>` with the
//! `l*xattr` calls, which do not follow the final symlink.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::{AtFlags, Mode, OFlags, Stat, Timespec, Timestamps};

use crate::entry::{EntryKind, EntryMeta, Xattrs, split_ns};

/// Largest xattr value Linux allows.
const XATTR_MAX: usize = 64 * 1024;

/// Metadata from a `stat`, without xattrs or symlink target. `None` for an unknown file type.
pub fn meta_from_stat(st: &Stat) -> Option<EntryMeta> {
    let kind = EntryKind::from_mode(st.st_mode)?;
    Some(EntryMeta {
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: if matches!(kind, EntryKind::File | EntryKind::Symlink) { st.st_size as u64 } else { 0 },
        mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
        atime_ns: st.st_atime * 1_000_000_000 + st.st_atime_nsec as i64,
        ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec as i64,
        rdev: if matches!(kind, EntryKind::CharDev | EntryKind::BlockDev) { st.st_rdev } else { 0 },
        target: None,
        xattrs: Xattrs::default(),
    })
}

/// `lstat` of `name` in `dir`.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Stat> {
    Ok(rustix::fs::statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)?)
}

/// Opens the directory `name` in `dir` without following symlinks.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens a directory by absolute path (following symlinks, as a user's path would).
pub fn open_dir(path: &std::path::Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

/// Names in a directory (without `.` and `..`), sorted bytewise.
pub fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for ent in rustix::fs::Dir::read_from(dir)? {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// Names in a directory (without `.` and `..`) in inode order: reading files
/// in that order follows their place on disk (inodes are allocated near their
/// data), much faster on a cold cache than name or hash order.
pub fn list_dir_by_inode(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for ent in rustix::fs::Dir::read_from(dir)? {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push((ent.ino(), name.to_vec()));
        }
    }
    names.sort_unstable();
    Ok(names.into_iter().map(|(_, n)| n).collect())
}

/// The `/proc/self/fd/N/name` path of an entry, for calls that have no `*at` form.
pub fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> PathBuf {
    use std::os::fd::AsRawFd;
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(OsStr::from_bytes(name));
    p
}

fn parse_xattr_list(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&b| b == 0).filter(|n| !n.is_empty())
}

thread_local! {
    /// Per-thread buffers for xattr names and values: a walk reads xattrs of
    /// every entry, and zeroing two 64 KiB buffers per call would dominate it.
    static XATTR_BUFS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        std::cell::RefCell::new((vec![0u8; XATTR_MAX], vec![0u8; XATTR_MAX]));
}

/// Reads every xattr with `list` (fills a name buffer) and `get` (one value).
fn read_xattrs_with(
    list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    get: impl Fn(&[u8], &mut [u8]) -> rustix::io::Result<usize>,
) -> io::Result<Xattrs> {
    XATTR_BUFS.with(|bufs| {
        let (names, value) = &mut *bufs.borrow_mut();
        let n = match list(&mut names[..]) {
            Ok(n) => n,
            Err(rustix::io::Errno::NOTSUP) => return Ok(Xattrs::default()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for name in parse_xattr_list(&names[..n]) {
            match get(name, &mut value[..]) {
                Ok(len) => out.push((name.to_vec(), value[..len].to_vec())),
                // Removed between list and get: not part of the entry any more.
                Err(rustix::io::Errno::NODATA) => {}
                Err(e) => return Err(e.into()),
            }
        }
        out.sort();
        Ok(Xattrs(out))
    })
}

/// Extended attributes of an open file or directory.
pub fn read_xattrs_fd(fd: BorrowedFd<'_>) -> io::Result<Xattrs> {
    read_xattrs_with(
        |buf| rustix::fs::flistxattr(fd, buf),
        |name, buf| rustix::fs::fgetxattr(fd, OsStr::from_bytes(name), buf),
    )
}

/// Extended attributes of an entry that is not opened (symlink, fifo, device).
pub fn read_xattrs_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Xattrs> {
    let path = proc_path(dir, name);
    read_xattrs_with(
        |buf| rustix::fs::llistxattr(&path, buf),
        |xname, buf| rustix::fs::lgetxattr(&path, OsStr::from_bytes(xname), buf),
    )
}

fn timestamps(meta: &EntryMeta) -> Timestamps {
    let (as_, an) = split_ns(meta.atime_ns);
    let (ms, mn) = split_ns(meta.mtime_ns);
    Timestamps {
        last_access: Timespec { tv_sec: as_, tv_nsec: an as _ },
        last_modification: Timespec { tv_sec: ms, tv_nsec: mn as _ },
    }
}

/// Only root can give files away: an agent running as another user keeps the
/// owners in the index (and the mount shows them) but cannot set them on the
/// destination, which is not an error of the file.
fn tolerate_unprivileged_chown(r: rustix::io::Result<()>) -> io::Result<()> {
    match r {
        Err(rustix::io::Errno::PERM) if !rustix::process::geteuid().is_root() => Ok(()),
        other => Ok(other?),
    }
}

/// Applies owner, xattrs, mode and times to an open file or directory, in the
/// order that keeps each step from undoing the previous one (chown clears
/// setuid bits, so chmod follows it; times go last).
pub fn apply_meta_fd(fd: BorrowedFd<'_>, meta: &EntryMeta) -> io::Result<()> {
    tolerate_unprivileged_chown(rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(meta.uid)),
        Some(rustix::fs::Gid::from_raw(meta.gid)),
    ))?;
    for (name, value) in &meta.xattrs.0 {
        rustix::fs::fsetxattr(fd, OsStr::from_bytes(name), value, rustix::fs::XattrFlags::empty())?;
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode))?;
    rustix::fs::futimens(fd, &timestamps(meta))?;
    Ok(())
}

/// Applies owner, xattrs, mode (not for symlinks) and times to `name` in `dir`
/// without following a symlink.
pub fn apply_meta_at(dir: BorrowedFd<'_>, name: &[u8], meta: &EntryMeta) -> io::Result<()> {
    let os = OsStr::from_bytes(name);
    tolerate_unprivileged_chown(rustix::fs::chownat(
        dir,
        os,
        Some(rustix::fs::Uid::from_raw(meta.uid)),
        Some(rustix::fs::Gid::from_raw(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    ))?;
    if !meta.xattrs.is_empty() {
        let path = proc_path(dir, name);
        for (xname, value) in &meta.xattrs.0 {
            rustix::fs::lsetxattr(&path, OsStr::from_bytes(xname), value, rustix::fs::XattrFlags::empty())?;
        }
    }
    if meta.kind != EntryKind::Symlink {
        rustix::fs::chmodat(dir, os, Mode::from_raw_mode(meta.mode), AtFlags::empty())?;
    }
    rustix::fs::utimensat(dir, os, &timestamps(meta), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Creates a special file (fifo, device, socket) named `name` in `dir`.
pub fn make_special_at(dir: BorrowedFd<'_>, name: &[u8], meta: &EntryMeta) -> io::Result<()> {
    let ft = match meta.kind {
        EntryKind::Fifo => rustix::fs::FileType::Fifo,
        EntryKind::CharDev => rustix::fs::FileType::CharacterDevice,
        EntryKind::BlockDev => rustix::fs::FileType::BlockDevice,
        EntryKind::Socket => rustix::fs::FileType::Socket,
        _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a special file")),
    };
    rustix::fs::mknodat(dir, OsStr::from_bytes(name), ft, Mode::from_raw_mode(0o600), meta.rdev)?;
    Ok(())
}

/// Removes `name` in `dir`, recursively if it is a directory. Missing is not an error.
pub fn remove_tree_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let st = match lstat_at(dir, name) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let os = OsStr::from_bytes(name);
    if EntryKind::from_mode(st.st_mode) == Some(EntryKind::Dir) {
        // A directory stripped of write permission by a restored mode would refuse unlinks.
        let _ = rustix::fs::chmodat(dir, os, Mode::from_raw_mode(0o700), AtFlags::empty());
        let sub = open_dir_at(dir, name)?;
        for child in list_dir(sub.as_fd())? {
            remove_tree_at(sub.as_fd(), &child)?;
        }
        drop(sub);
        rustix::fs::unlinkat(dir, os, AtFlags::REMOVEDIR)?;
    } else {
        match rustix::fs::unlinkat(dir, os, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Removes the directory tree at `path` (missing is not an error).
pub fn remove_tree(path: &std::path::Path) -> io::Result<()> {
    let parent = path.parent().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent"))?;
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let pfd = match open_dir(parent) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_tree_at(pfd.as_fd(), name.as_bytes())
}

/// Raises this process's open-files limit to its hard maximum; returns the
/// limit now in force (`None`: unlimited or unknown).
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    if let Some(max) = lim.maximum
        && lim.current != Some(max)
        && setrlimit(Resource::Nofile, Rlimit { current: Some(max), maximum: Some(max) }).is_ok()
    {
        return Some(max);
    }
    lim.current
}

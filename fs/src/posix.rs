//! fd-relative POSIX helpers: read an entry's metadata, apply it to a copy, remove trees.
//!
//! Everything works relative to open directory descriptors with
//! `AT_SYMLINK_NOFOLLOW`, so a symlink swapped in during a backup is never
//! followed. Extended attributes of entries that cannot be opened (symlinks,
//! fifos, devices) are reached through `/proc/self/fd/<dir>/<name>` with the
//! `l*xattr` calls, which do not follow the final symlink.
//!
//! The agent runs as root in trees that other users may write to (a source,
//! a destination written by someone else): no call here follows a symlink
//! anywhere in a path it was given relative to a descriptor. `chmod` has no
//! form that refuses symlinks on every kernel, so a mode is changed through
//! an `O_PATH|O_NOFOLLOW` descriptor whose kind was checked first; trees are
//! removed one descriptor per level, never by path, and without recursion
//! (a tree as deep as a user cares to make must not overflow the stack).

use std::ffi::OsStr;
use std::io;
use std::ops::ControlFlow;
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

/// The `(device, inode)` and metadata of an open file: what was opened,
/// whatever its name holds by now. `None` when it cannot be stat'ed or is of
/// an unknown kind.
pub fn fstat_meta(fd: BorrowedFd<'_>) -> Option<((u64, u64), EntryMeta)> {
    let st = rustix::fs::fstat(fd).ok()?;
    Some(((st.st_dev, st.st_ino), meta_from_stat(&st)?))
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
        chmod_at(dir, name, meta.kind, meta.mode)?;
    }
    rustix::fs::utimensat(dir, os, &timestamps(meta), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Changes the mode of `name` in `dir`, which must still be of kind `kind`:
/// through a descriptor opened `O_PATH|O_NOFOLLOW`, so that an entry swapped
/// for a symlink makes this fail instead of changing the symlink's target.
pub fn chmod_at(dir: BorrowedFd<'_>, name: &[u8], kind: EntryKind, mode: u32) -> io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if EntryKind::from_mode(st.st_mode) != Some(kind) {
        return Err(io::Error::other(format!("changed into another kind of file (expected {kind:?})")));
    }
    // The magic link names this very inode: chmod follows it, and nothing else.
    rustix::fs::chmod(fd_path(fd.as_fd()), Mode::from_raw_mode(mode))?;
    Ok(())
}

/// `/proc/self/fd/N` of an open descriptor.
fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `rel`, a relative path of one or more components, beneath `dir`
/// without following a symlink in any component and without leaving `dir`
/// (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`; on kernels
/// without it, one `O_NOFOLLOW` component at a time, refusing `..`).
pub fn open_beneath(dir: BorrowedFd<'_>, rel: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    use rustix::fs::ResolveFlags;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(dir, OsStr::from_bytes(rel), flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {}
        r => return Ok(r?),
    }
    let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".").collect();
    if comps.is_empty() || comps.contains(&b"..".as_slice()) {
        return Err(io::Error::from_raw_os_error(rustix::io::Errno::XDEV.raw_os_error()));
    }
    let mut cur: Option<OwnedFd> = None;
    let (last, parents) = comps.split_last().ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    for comp in parents {
        let at = cur.as_ref().map_or(dir, |f| f.as_fd());
        let next = rustix::fs::openat(
            at,
            OsStr::from_bytes(comp),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        cur = Some(next);
    }
    let at = cur.as_ref().map_or(dir, |f| f.as_fd());
    Ok(rustix::fs::openat(at, OsStr::from_bytes(last), flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?)
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
    remove_tree_at_with(dir, name, &mut || ControlFlow::Continue(()))
}

/// Like [`remove_tree_at`], calling `unlinked` after each file removed (the
/// background deleter paces itself with it); when it says to break, the
/// removal stops there with an `Interrupted` error (what is left is removed
/// by a later call).
///
/// One descriptor per level of the directory being emptied, each opened
/// `O_NOFOLLOW|O_DIRECTORY` relative to its parent: a directory swapped for a
/// symlink while the walk is under way is unlinked as a symlink, never
/// entered, so nothing outside the tree is ever touched.
pub fn remove_tree_at_with(
    dir: BorrowedFd<'_>,
    name: &[u8],
    unlinked: &mut dyn FnMut() -> ControlFlow<()>,
) -> io::Result<()> {
    let st = match lstat_at(dir, name) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if EntryKind::from_mode(st.st_mode) != Some(EntryKind::Dir) {
        return unlink_leaf(dir, name);
    }
    /// A directory being emptied: its descriptor, its name in its parent,
    /// its subdirectories not entered yet, and how many times it was listed
    /// again because entries appeared while it was being emptied.
    struct Level {
        fd: OwnedFd,
        name: Vec<u8>,
        subdirs: Vec<Vec<u8>>,
        relisted: u32,
    }
    let enter = |parent: BorrowedFd<'_>,
                 name: &[u8],
                 unlinked: &mut dyn FnMut() -> ControlFlow<()>|
     -> io::Result<Option<Level>> {
        let fd = match open_dir_for_removal(parent, name) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // No longer a directory (swapped for a symlink or a file): unlinked as what it is now.
            Err(e) if is_errno(&e, rustix::io::Errno::LOOP) || is_errno(&e, rustix::io::Errno::NOTDIR) => {
                unlink_leaf(parent, name)?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let mut subdirs = Vec::new();
        for child in list_dir(fd.as_fd())? {
            match lstat_at(fd.as_fd(), &child) {
                Ok(st) if EntryKind::from_mode(st.st_mode) == Some(EntryKind::Dir) => subdirs.push(child),
                Ok(_) => {
                    unlink_leaf(fd.as_fd(), &child)?;
                    if unlinked().is_break() {
                        return Err(io::Error::new(io::ErrorKind::Interrupted, "the removal was stopped"));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(Level { fd, name: name.to_vec(), subdirs, relisted: 0 }))
    };
    let mut levels: Vec<Level> = Vec::new();
    if let Some(top) = enter(dir, name, unlinked)? {
        levels.push(top);
    }
    while let Some(depth) = levels.len().checked_sub(1) {
        if let Some(sub) = levels[depth].subdirs.pop() {
            if let Some(next) = enter(levels[depth].fd.as_fd(), &sub, unlinked)? {
                levels.push(next);
            }
            continue;
        }
        let Some(done) = levels.pop() else { break };
        drop(done.fd);
        let parent = levels.last().map_or(dir, |l| l.fd.as_fd());
        match rustix::fs::unlinkat(parent, OsStr::from_bytes(&done.name), AtFlags::REMOVEDIR) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            // Something was added (or renamed) into it meanwhile: list it again, a few times.
            Err(rustix::io::Errno::NOTEMPTY) if done.relisted < MAX_RELISTS => {
                if let Some(mut again) = enter(parent, &done.name, unlinked)? {
                    again.relisted = done.relisted + 1;
                    levels.push(again);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Times a directory being removed is listed again when entries keep
/// appearing in it (someone writing there as fast as it is emptied).
const MAX_RELISTS: u32 = 8;

/// Unlinks a non-directory; missing is not an error.
fn unlink_leaf(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, OsStr::from_bytes(name), AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// True when `e` is the OS error `errno`.
pub fn is_errno(e: &io::Error, errno: rustix::io::Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

/// Opens directory `name` of `dir` for emptying it: never through a symlink,
/// and writable by its owner (a restored mode may have taken that away, and
/// an agent that is not root needs it to unlink the entries).
fn open_dir_for_removal(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let fd = match open_dir_at(dir, name) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            chmod_at(dir, name, EntryKind::Dir, 0o700)?;
            open_dir_at(dir, name)?
        }
        Err(e) => return Err(e),
    };
    let st = rustix::fs::fstat(&fd)?;
    if st.st_mode & 0o700 != 0o700 {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))?;
    }
    Ok(fd)
}

/// Removes the directory tree at `path` (missing is not an error). The parent
/// is opened by path: callers pass a path they trust up to its last component.
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

/// Reads a small regular file (a marker, a manifest) without following a
/// final symlink; refuses anything but a regular file and files over `max`
/// bytes (a destination written by someone else may hold anything there).
pub fn read_small_file(path: &std::path::Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    if EntryKind::from_mode(st.st_mode) != Some(EntryKind::File) {
        return Err(io::Error::other("not a regular file"));
    }
    if st.st_size as u64 > max {
        return Err(io::Error::other(format!("{} bytes, more than the {max} such a file may have", st.st_size)));
    }
    let mut out = Vec::with_capacity(st.st_size as usize);
    std::fs::File::from(fd).take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(io::Error::other(format!("more than the {max} bytes such a file may have")));
    }
    Ok(out)
}

/// Opens `path` read-only, refusing a final symlink.
pub fn read_only_nofollow(path: &std::path::Path) -> io::Result<std::fs::File> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    Ok(std::fs::File::from(fd))
}

/// Creates `path` as a new regular file, mode 0600 (`O_EXCL|O_NOFOLLOW`):
/// the agent's own files are private, and never written through a symlink
/// or into a file someone else made first.
pub fn create_private(path: &std::path::Path) -> io::Result<std::fs::File> {
    let fd = rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(std::fs::File::from(fd))
}

/// Creates `name` in `dir` as a new regular file (`O_EXCL|O_NOFOLLOW`, mode
/// `mode`): it never opens what another user planted under that name.
pub fn create_new_at(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<std::fs::File> {
    let fd = rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    Ok(std::fs::File::from(fd))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir_fd(p: &std::path::Path) -> OwnedFd {
        open_dir(p).expect("open dir")
    }

    #[test]
    fn removing_a_tree_never_enters_a_symlink_in_it() {
        let t = tempfile::tempdir().expect("tempdir");
        let victim = t.path().join("victim");
        std::fs::create_dir_all(victim.join("sub")).expect("mkdir");
        std::fs::write(victim.join("keep"), b"x").expect("write");
        std::fs::write(victim.join("sub/keep"), b"x").expect("write");
        let tree = t.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).expect("mkdir");
        std::fs::write(tree.join("a/b/f"), b"x").expect("write");
        std::os::unix::fs::symlink(&victim, tree.join("a/link")).expect("symlink");
        std::os::unix::fs::symlink(&victim, tree.join("top-link")).expect("symlink");
        let mut n = 0;
        remove_tree_at_with(dir_fd(t.path()).as_fd(), b"tree", &mut || {
            n += 1;
            ControlFlow::Continue(())
        })
        .expect("remove");
        assert!(!tree.exists(), "the tree is gone");
        assert_eq!(n, 3, "one file and two symlinks unlinked");
        assert!(victim.join("keep").is_file() && victim.join("sub/keep").is_file(), "the symlinks' target survived");
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_is_unlinked_not_entered() {
        let t = tempfile::tempdir().expect("tempdir");
        let victim = t.path().join("victim");
        std::fs::create_dir_all(&victim).expect("mkdir");
        std::fs::write(victim.join("keep"), b"x").expect("write");
        std::os::unix::fs::symlink(&victim, t.path().join("d")).expect("symlink");
        // What the walk finds after lstat said "directory" and the swap happened.
        let err = open_dir_for_removal(dir_fd(t.path()).as_fd(), b"d").expect_err("a symlink opened as a directory");
        assert!(is_errno(&err, rustix::io::Errno::LOOP) || is_errno(&err, rustix::io::Errno::NOTDIR), "{err}");
        remove_tree_at(dir_fd(t.path()).as_fd(), b"d").expect("remove the link");
        assert!(victim.join("keep").is_file());
    }

    #[test]
    fn a_deep_tree_is_removed_without_recursion() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = dir_fd(t.path());
        rustix::fs::mkdirat(root.as_fd(), "deep", Mode::from_raw_mode(0o700)).expect("mkdir");
        let mut cur = open_dir_at(root.as_fd(), b"deep").expect("open");
        for _ in 0..5000 {
            rustix::fs::mkdirat(cur.as_fd(), "d", Mode::from_raw_mode(0o500)).expect("mkdir");
            cur = open_dir_at(cur.as_fd(), b"d").expect("open");
        }
        drop(cur);
        remove_tree_at(root.as_fd(), b"deep").expect("remove");
        assert!(!t.path().join("deep").exists());
    }

    #[test]
    fn chmod_at_refuses_a_symlink() {
        let t = tempfile::tempdir().expect("tempdir");
        let victim = t.path().join("victim");
        std::fs::write(&victim, b"x").expect("write");
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::symlink(&victim, t.path().join("fifo")).expect("symlink");
        let root = dir_fd(t.path());
        assert!(chmod_at(root.as_fd(), b"fifo", EntryKind::Fifo, 0o666).is_err());
        assert!(chmod_at(root.as_fd(), b"fifo", EntryKind::File, 0o666).is_err());
        let mode = std::fs::metadata(&victim).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "the symlink's target kept its mode");
        chmod_at(root.as_fd(), b"victim", EntryKind::File, 0o640).expect("chmod the file itself");
        assert_eq!(std::fs::metadata(&victim).expect("stat").permissions().mode() & 0o7777, 0o640);
    }

    #[test]
    fn open_beneath_refuses_symlinks_and_escapes() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(t.path().join("tree/a")).expect("mkdir");
        std::fs::write(t.path().join("tree/a/f"), b"in").expect("write");
        std::fs::write(t.path().join("secret"), b"out").expect("write");
        std::os::unix::fs::symlink(t.path(), t.path().join("tree/up")).expect("symlink");
        let tree = dir_fd(&t.path().join("tree"));
        let read = |rel: &[u8]| -> io::Result<Vec<u8>> {
            let fd = open_beneath(tree.as_fd(), rel, OFlags::RDONLY)?;
            std::fs::read(fd_path(fd.as_fd()))
        };
        assert_eq!(read(b"a/f").expect("a file beneath"), b"in");
        assert!(read(b"up/secret").is_err(), "followed a symlink in the middle");
        assert!(read(b"../secret").is_err(), "left the directory by ..");
        assert!(read(b"a/../../secret").is_err(), "left the directory by ..");
        assert!(open_beneath(tree.as_fd(), b"up", OFlags::PATH).is_err(), "followed a final symlink");
    }
}

//! Mountpoint checks, stale-mount cleanup and unmounting.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{FsError, Result};

/// True when `path` is the root of a mount (listed in /proc/self/mountinfo).
pub fn is_mountpoint(path: &Path) -> bool {
    mount_type(path).is_some()
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when `path` is a FUSE mount whose server is gone. The kernel may
/// still answer from its caches, so ask about a name it cannot have cached.
fn is_dead_fuse(path: &Path) -> bool {
    let probe = path.join(format!(".hindsight-liveness-probe-{}", std::process::id()));
    match std::fs::symlink_metadata(probe) {
        // A live filesystem answers: the name does not exist.
        Ok(_) => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        // ENOTCONN, or ECONNABORTED/EIO while the kernel tears the connection down.
        Err(_) => mount_type(path).is_some_and(|t| t == "fuse" || t.starts_with("fuse.")),
    }
}

/// The filesystem type of the mount at `path`, from /proc/self/mountinfo.
fn mount_type(path: &Path) -> Option<String> {
    top_mount(path).map(|(_, fstype)| fstype)
}

/// The device (`major:minor`, as `st_dev` of its root) of the mount at `path`:
/// tells one mount from a later one on the same directory.
pub fn mounted_device(path: &Path) -> Option<String> {
    top_mount(path).map(|(device, _)| device)
}

/// The topmost mount at `path` in /proc/self/mountinfo: (device, filesystem type).
fn top_mount(path: &Path) -> Option<(String, String)> {
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let want = canon.to_string_lossy().into_owned();
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().rev().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let fields: Vec<&str> = pre.split(' ').collect();
        if unescape(fields.get(4)?) != want {
            return None;
        }
        Some((fields.get(2)?.to_string(), post.split(' ').next().unwrap_or("").to_string()))
    })
}

/// Lazily unmounts `path` (MNT_DETACH): a dead FUSE server's mount goes at once.
pub fn unmount(path: &Path) -> Result<()> {
    rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH).map_err(|e| FsError::io("unmount", path, e))
}

/// Checks that `path` can be mounted on: an existing, empty directory that is
/// not mounted already. A stale mount of a crashed Hindsight (ENOTCONN) is
/// cleaned up first.
pub fn prepare(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTCONN.raw_os_error()) => {
            tracing::warn!("{} holds a stale mount of a stopped filesystem; unmounting it", path.display());
            unmount(path)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(FsError::Refused(format!("mountpoint {} does not exist", path.display())));
        }
        Err(e) => return Err(FsError::io("stat", path, e)),
        Ok(m) if !m.is_dir() => {
            return Err(FsError::Refused(format!("mountpoint {} is not a directory", path.display())));
        }
        Ok(m) => {
            let parent_dev = path.parent().and_then(|p| std::fs::metadata(p).ok()).map(|p| p.dev());
            if is_mountpoint(path) || parent_dev.is_some_and(|d| d != m.dev()) {
                if !is_dead_fuse(path) {
                    return Err(FsError::Refused(format!("{} is already a mountpoint", path.display())));
                }
                tracing::warn!("{} holds a stale mount of a stopped filesystem; unmounting it", path.display());
                unmount(path)?;
            }
        }
    }
    let mut entries = std::fs::read_dir(path).map_err(|e| FsError::io("read", path, e))?;
    if entries.next().is_some() {
        return Err(FsError::Refused(format!("mountpoint {} is not empty", path.display())));
    }
    Ok(())
}

/// Raises the kernel readahead of the new mount to 1 MiB (best effort): the
/// FUSE default of 128 KiB makes large sequential reads slow when they go
/// through user space.
pub fn raise_readahead(path: &Path) {
    let Ok(m) = std::fs::metadata(path) else { return };
    let dev = m.dev();
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let file = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    if let Err(e) = std::fs::write(&file, "1024") {
        tracing::debug!("cannot raise readahead ({file}): {e}");
    }
}

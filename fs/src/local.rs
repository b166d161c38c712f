//! Access to a destination that is a local directory: validation and disk usage.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;

use crate::error::{FsError, Result};

/// Space on the filesystem holding a destination, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    /// Bytes in use (total - free).
    pub usage: u64,
    /// Bytes available to the agent.
    pub free: u64,
    /// Size of the filesystem.
    pub total: u64,
}

/// Disk usage of the filesystem that holds `path`.
pub fn disk_usage(path: &Path) -> Result<DiskUsage> {
    let st = rustix::fs::statvfs(path).map_err(|e| FsError::io("statvfs", path, e))?;
    let total = st.f_blocks * st.f_frsize;
    let free = st.f_bavail * st.f_frsize;
    let usage = total.saturating_sub(st.f_bfree * st.f_frsize);
    Ok(DiskUsage { usage, free, total })
}

/// Checks that `path` can hold snapshots: it is (or can be created, mode
/// 0700, as) a directory, is writable, and supports hardlinks. Returns its
/// disk usage. The probe files have unpredictable names and are created
/// `O_EXCL|O_NOFOLLOW`: in a directory others can write to, nothing they
/// planted is written through.
pub fn validate(path: &Path) -> Result<DiskUsage> {
    if !path.is_absolute() {
        return Err(FsError::Refused(format!("destination path {} is not absolute", path.display())));
    }
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() => {
            return Err(FsError::Refused(format!("destination path {} is not a directory", path.display())));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => crate::layout::create_private_dir_all(path)?,
        Err(e) => return Err(FsError::io("stat", path, e)),
    }
    let dir = crate::posix::open_dir(path).map_err(|e| FsError::io("open", path, e))?;
    let probe = format!(".hindsight-probe-{}", uuid::Uuid::new_v4().simple());
    let link = format!("{probe}-link");
    let result = (|| {
        let mut f = crate::posix::create_new_at(dir.as_fd(), probe.as_bytes(), 0o600)
            .map_err(|e| FsError::io("write a probe file in", path, e))?;
        f.write_all(b"hindsight").map_err(|e| FsError::io("write", path.join(&probe), e))?;
        drop(f);
        rustix::fs::linkat(dir.as_fd(), probe.as_str(), dir.as_fd(), link.as_str(), rustix::fs::AtFlags::empty())
            .map_err(|e| FsError::Refused(format!("destination {} does not support hardlinks: {e}", path.display())))?;
        Ok(())
    })();
    let _ = rustix::fs::unlinkat(dir.as_fd(), link.as_str(), rustix::fs::AtFlags::empty());
    let _ = rustix::fs::unlinkat(dir.as_fd(), probe.as_str(), rustix::fs::AtFlags::empty());
    result?;
    disk_usage(path)
}

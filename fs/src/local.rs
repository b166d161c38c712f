//! Access to a destination that is a local directory: validation and disk usage.

use std::io::Write;
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

impl DiskUsage {
    /// Used space as a percentage of the total (0 when the total is unknown).
    pub fn used_percent(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.usage as f64 * 100.0 / self.total as f64 }
    }
}

/// Disk usage of the filesystem that holds `path`.
pub fn disk_usage(path: &Path) -> Result<DiskUsage> {
    let st = rustix::fs::statvfs(path).map_err(|e| FsError::io("statvfs", path, e))?;
    let total = st.f_blocks * st.f_frsize;
    let free = st.f_bavail * st.f_frsize;
    let usage = total.saturating_sub(st.f_bfree * st.f_frsize);
    Ok(DiskUsage { usage, free, total })
}

/// Checks that `path` can hold snapshots: it is (or can be created as) a
/// directory, is writable, and supports hardlinks. Returns its disk usage.
pub fn validate(path: &Path) -> Result<DiskUsage> {
    if !path.is_absolute() {
        return Err(FsError::Refused(format!("destination path {} is not absolute", path.display())));
    }
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() => {
            return Err(FsError::Refused(format!("destination path {} is not a directory", path.display())));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path).map_err(|e| FsError::io("create", path, e))?;
        }
        Err(e) => return Err(FsError::io("stat", path, e)),
    }
    let probe = path.join(format!(".hindsight-probe-{}", std::process::id()));
    let link = path.join(format!(".hindsight-probe-{}-link", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&probe).map_err(|e| FsError::io("write a probe file in", path, e))?;
        f.write_all(b"hindsight").map_err(|e| FsError::io("write", &probe, e))?;
        drop(f);
        std::fs::hard_link(&probe, &link)
            .map_err(|e| FsError::Refused(format!("destination {} does not support hardlinks: {e}", path.display())))?;
        Ok(())
    })();
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_file(&probe);
    result?;
    disk_usage(path)
}

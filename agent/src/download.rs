//! Downloads: a `.tar.gz` of files of a snapshot, built by the agent in its
//! download directory (root's alone: the directory 0700, each file 0600),
//! listed, expired after `downloads_ttl` days, at most
//! `downloads_per_account` kept per account (the oldest go first).

use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use hindsight_fs::archive::{TarKind, TarStream, kind_of};
use hindsight_fs::index::{IndexEntry, ROOT_ID};
use hindsight_fs::{EntryKind, posix};
use jiff::{SignedDuration, Timestamp};

use crate::backup::Cancel;
use crate::catalog::Catalog;
use crate::error::AgentError;
use crate::model::{Download, Settings};
use crate::snapshot_file::{SnapshotReader, components};

/// The download directory: the setting, else `<state dir>/downloads`.
pub(crate) fn dir(settings: &Settings, state_dir: &Path) -> PathBuf {
    match settings.download_dir.as_str() {
        "" => state_dir.join("downloads"),
        d => PathBuf::from(d),
    }
}

/// The download directory, created 0700 if missing; refused when someone
/// else than root owns it or can write in it (they could swap the files).
fn open_dir(path: &Path) -> Result<std::os::fd::OwnedFd, AgentError> {
    if !path.exists() {
        hindsight_fs::create_private_dir_all(path)
            .map_err(|e| AgentError::internal(format!("cannot create the download directory: {e}")))?;
    }
    let fd = posix::open_dir(path).map_err(|e| AgentError::internal(format!("{}: {e}", path.display())))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| AgentError::internal(format!("{}: {e}", path.display())))?;
    if st.st_uid != rustix::process::geteuid().as_raw() || st.st_mode & 0o022 != 0 {
        return Err(AgentError::conflict(format!(
            "the download directory {} is owned or writable by another user: refused",
            path.display()
        )));
    }
    Ok(fd)
}

/// Builds the download of `paths` of the snapshot `reader` reads as
/// `name` in `dir`; returns its path and size. A failure leaves no file.
pub(crate) fn build(
    reader: &SnapshotReader,
    paths: &[String],
    dir: &Path,
    name: &str,
    cancel: &Cancel,
) -> Result<(PathBuf, u64), AgentError> {
    let dfd = open_dir(dir)?;
    let tmp = format!(".partial-{name}");
    let _ = rustix::fs::unlinkat(dfd.as_fd(), tmp.as_str(), rustix::fs::AtFlags::empty());
    let file = posix::create_new_at(dfd.as_fd(), tmp.as_bytes(), 0o600)
        .map_err(|e| AgentError::internal(format!("cannot create {}: {e}", dir.join(&tmp).display())))?;
    let written = write_tar(reader, paths, file, cancel).and_then(|f| {
        f.sync_all().map_err(|e| AgentError::internal(e.to_string()))?;
        rustix::fs::renameat(dfd.as_fd(), tmp.as_str(), dfd.as_fd(), name)
            .map_err(|e| AgentError::internal(format!("cannot name the download: {e}")))?;
        Ok(f.metadata().map(|m| m.len()).unwrap_or(0))
    });
    match written {
        Ok(size) => Ok((dir.join(name), size)),
        Err(e) => {
            let _ = rustix::fs::unlinkat(dfd.as_fd(), tmp.as_str(), rustix::fs::AtFlags::empty());
            Err(e)
        }
    }
}

fn write_tar(
    reader: &SnapshotReader,
    paths: &[String],
    file: std::fs::File,
    cancel: &Cancel,
) -> Result<std::fs::File, AgentError> {
    let io = |e: std::io::Error| AgentError::internal(format!("writing the download: {e}"));
    let mut tar = TarStream::new(GzEncoder::new(std::io::BufWriter::new(file), Compression::new(6)));
    let mut w = Walk { reader, tar: &mut tar, links: Default::default(), cancel };
    for p in paths {
        let comps = components(p)?;
        let mut entry = None;
        let mut id = ROOT_ID;
        for c in &comps {
            let e = reader.index.lookup(id, c).map_err(|e| AgentError::unreachable(e.to_string()))?;
            let e = e.ok_or_else(|| AgentError::not_found(format!("{p} is not in {}", reader.what)))?;
            id = e.id;
            entry = Some(e);
        }
        let rel: Vec<u8> = comps.join(&b'/');
        match entry {
            Some(e) => w.entry(rel, e)?,
            None => w.children(&[], ROOT_ID)?,
        }
    }
    let gz = tar.finish().map_err(io)?;
    let buf = gz.finish().map_err(io)?;
    let file = buf.into_inner().map_err(|e| io(e.into_error()))?;
    Ok(file)
}

/// A walk writing entries into the tar stream.
struct Walk<'a, W: Write> {
    reader: &'a SnapshotReader,
    tar: &'a mut TarStream<W>,
    /// The first path written of each hardlink group.
    links: std::collections::HashMap<i64, Vec<u8>>,
    cancel: &'a Cancel,
}

impl<W: Write> Walk<'_, W> {
    fn entry(&mut self, rel: Vec<u8>, e: IndexEntry) -> Result<(), AgentError> {
        if self.cancel.is_cancelled() {
            return Err(AgentError::conflict("cancelled"));
        }
        let io = |err: std::io::Error| AgentError::internal(format!("writing the download: {err}"));
        if e.meta.kind == EntryKind::Dir {
            let mut name = rel.clone();
            name.push(b'/');
            self.tar.entry(&name, &e.meta, TarKind::Dir, None).map_err(io)?;
            return self.children(&rel, e.id);
        }
        let Some(kind) = kind_of(&e.meta) else { return Ok(()) };
        let group = e.hardlink.unwrap_or(e.id);
        if e.meta.kind == EntryKind::File && e.nlink > 1 {
            if let Some(first) = self.links.get(&group) {
                let first = first.clone();
                return self.tar.entry(&rel, &e.meta, TarKind::Hardlink { first: &first }, None).map_err(io);
            }
            self.links.insert(group, rel.clone());
        }
        if e.meta.kind == EntryKind::File {
            let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
            let mut content = self.reader.file(&e, &comps)?;
            return self.tar.entry(&rel, &e.meta, kind, Some(&mut content)).map_err(io);
        }
        self.tar.entry(&rel, &e.meta, kind, None).map_err(io)
    }

    fn children(&mut self, rel: &[u8], id: i64) -> Result<(), AgentError> {
        let children = self.reader.index.children(id).map_err(|e| AgentError::unreachable(e.to_string()))?;
        for c in children {
            if c.name.is_empty() || c.name.contains(&b'/') || c.name == b"." || c.name == b".." {
                continue;
            }
            let path = if rel.is_empty() { c.name.clone() } else { [rel, b"/", &c.name].concat() };
            self.entry(path, c)?;
        }
        Ok(())
    }
}

/// Checks the paths of a download request.
pub(crate) fn check_paths(paths: &[String]) -> Result<(), AgentError> {
    if paths.is_empty() {
        return Err(AgentError::invalid("give at least one path to download (/ for everything)"));
    }
    paths.iter().try_for_each(|p| components(p).map(|_| ()))
}

/// Deletes a download: its file, then its record.
pub(crate) fn remove(catalog: &Catalog, d: &Download) -> Result<(), AgentError> {
    match std::fs::remove_file(&d.path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(AgentError::internal(format!("cannot remove {}: {e}", d.path))),
    }
    catalog.remove_download(d.id)?;
    Ok(())
}

/// Removes the oldest downloads of `account` beyond the per-account limit.
pub(crate) fn enforce_limit(catalog: &Catalog, account: Option<&str>, limit: u32) -> Result<(), AgentError> {
    if limit == 0 {
        return Ok(());
    }
    let mine: Vec<Download> = catalog.downloads()?.into_iter().filter(|d| d.account.as_deref() == account).collect();
    let extra = mine.len().saturating_sub(limit as usize);
    for d in mine.iter().take(extra) {
        tracing::info!("download {} ({}) removed: over downloads_per_account ({limit})", d.id, d.path);
        remove(catalog, d)?;
    }
    Ok(())
}

/// Removes downloads older than `downloads_ttl` days; returns how many.
pub(crate) fn expire(catalog: &Catalog, now: Timestamp) -> Result<usize, AgentError> {
    let ttl = catalog.settings()?.downloads_ttl;
    if ttl == 0 {
        return Ok(0);
    }
    let old = catalog.downloads_before(now - SignedDuration::from_hours(i64::from(ttl) * 24))?;
    for d in &old {
        tracing::info!("download {} ({}) expired after downloads_ttl ({ttl} days)", d.id, d.path);
        remove(catalog, d)?;
    }
    Ok(old.len())
}

/// `d` with its expiry time, from the settings.
pub(crate) fn with_expiry(mut d: Download, settings: &Settings) -> Download {
    d.expires = (settings.downloads_ttl > 0)
        .then(|| d.created.checked_add(SignedDuration::from_hours(i64::from(settings.downloads_ttl) * 24)).ok())
        .flatten();
    d
}

/// A name for the download of snapshot `job/snapshot` built by task `task`.
pub(crate) fn file_name(task: i64, job: &str, snapshot: &str) -> String {
    format!("{task}-{}-{snapshot}.tar.gz", job.replace('@', "_"))
}

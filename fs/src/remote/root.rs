//! The root of a remote destination: its marker, validation, and the
//! snapshots it holds.
//!
//! A snapshot exists when `<job>/<snapshot>/snapshot.json` exists: it is
//! uploaded after everything the snapshot references.

use crate::cache::CachedSnapshot;
use crate::error::{FsError, Result};
use crate::index::INDEX_FILE;
use crate::layout::{InitOutcome, MARKER_MAX};
use crate::manifest::{MANIFEST_FILE, MANIFEST_MAX, Manifest};
use crate::marker::{MARKER_FILE, Marker};
use crate::names::{check_job_dir, check_snapshot_name, is_snapshot_name};

use super::store::RemoteStore;

/// What a successful validation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// Milliseconds the probe write, read and delete took together.
    pub probe_ms: u64,
}

impl RemoteStore {
    /// Connects, writes, reads back and deletes a probe object under the root
    /// (creating the root where the service has directories); the error carries
    /// the service's own reason.
    pub fn validate(&self) -> Result<Validated> {
        let start = std::time::Instant::now();
        match self {
            RemoteStore::Ssh(ssh) => {
                // The root first: the probe's write creates it, but the tools' check runs in it.
                ssh.mkdir("")?;
                ssh.require_tools()?;
            }
            RemoteStore::Objects(_) => {}
        }
        let probe = format!(".hindsight-probe-{}", uuid::Uuid::new_v4());
        let body = probe.as_bytes().to_vec();
        self.write(&probe, body.clone())?;
        let back = self.read(&probe);
        let deleted = self.delete(&probe);
        if back? != body {
            return Err(FsError::Refused("the probe object read back differs from what was written".into()));
        }
        deleted?;
        Ok(Validated { probe_ms: start.elapsed().as_millis() as u64 })
    }

    /// The marker, if the root has one.
    pub fn read_marker(&self) -> Result<Option<Marker>> {
        match self.read_small(MARKER_FILE, MARKER_MAX) {
            Ok(b) => Marker::parse(MARKER_FILE.as_ref(), &b).map(Some),
            Err(FsError::Remote { not_found: true, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The marker, or an error saying the root is not a Hindsight destination.
    pub fn require_marker(&self) -> Result<Marker> {
        self.read_marker()?.ok_or_else(|| {
            FsError::Refused(format!("{self:?} is not a Hindsight destination (no {MARKER_FILE} marker)"))
        })
    }

    /// Adopts an existing marker, or writes one into an empty root (any root with `force`).
    pub fn init(&self, destination_id: &str, force: bool) -> Result<InitOutcome> {
        if let Some(m) = self.read_marker()? {
            return Ok(InitOutcome::Adopted(m));
        }
        if !force && !self.list("/")?.is_empty() {
            return Err(FsError::Refused(format!(
                "{self:?} is not empty and holds no Hindsight marker; use --force to use it anyway"
            )));
        }
        let marker = Marker::new(destination_id);
        self.write(MARKER_FILE, marker.to_bytes())?;
        Ok(InitOutcome::Created(marker))
    }

    /// Jobs with a directory on the destination.
    pub fn list_jobs(&self) -> Result<Vec<String>> {
        Ok(self
            .list("/")?
            .into_iter()
            .filter_map(|n| n.strip_suffix('/').map(str::to_string))
            .filter(|n| check_job_dir(n).is_ok())
            .collect())
    }

    /// Complete snapshots of a job (those with a manifest), oldest first: one
    /// recursive listing, not a request per snapshot.
    pub fn list_snapshots(&self, job: &str) -> Result<Vec<String>> {
        let objects = match self {
            RemoteStore::Ssh(ssh) => {
                let mut out: Vec<String> =
                    ssh.list_complete(job, MANIFEST_FILE)?.into_iter().filter(|n| is_snapshot_name(n)).collect();
                out.sort_by_key(|n| crate::layout::snapshot_sort_key(n));
                return Ok(out);
            }
            RemoteStore::Objects(o) => o,
        };
        let dir = format!("{job}/");
        let entries = objects.entries_recursive(&dir)?;
        let mut out: Vec<String> = entries
            .iter()
            .filter_map(|e| {
                let rel = e.path().trim_start_matches('/').strip_prefix(dir.as_str())?;
                let name = rel.strip_suffix(&format!("/{MANIFEST_FILE}"))?;
                is_snapshot_name(name).then(|| name.to_string())
            })
            .collect();
        out.sort_by_key(|n| crate::layout::snapshot_sort_key(n));
        Ok(out)
    }

    /// A job's complete snapshots with their manifests, oldest first in
    /// completion order ([`crate::manifest::sort_by_completion`]). Manifests
    /// are read from the local cache under `cache_dir`, and fetched into it
    /// when missing (a manifest never changes).
    pub fn snapshots_in_order(
        &self,
        cache_dir: &std::path::Path,
        job: &str,
    ) -> Result<Vec<(String, Result<Manifest>)>> {
        let mut snaps = Vec::new();
        for name in self.list_snapshots(job)? {
            // A service that failed for now must not make a snapshot look unreadable.
            match self.cached_manifest(cache_dir, job, &name) {
                Err(e) if e.is_temporary() => return Err(e),
                manifest => snaps.push((name, manifest)),
            }
        }
        crate::manifest::sort_by_completion(&mut snaps);
        Ok(snaps)
    }

    /// A snapshot's manifest from the local cache under `cache_dir`, fetched
    /// into it when missing.
    pub fn cached_manifest(&self, cache_dir: &std::path::Path, job: &str, snapshot: &str) -> Result<Manifest> {
        let dir = CachedSnapshot::open(cache_dir, job, snapshot)?;
        let path = dir.path().join(MANIFEST_FILE);
        if dir.has(MANIFEST_FILE) {
            let m = Manifest::read(&path)?;
            m.check_identity(job, snapshot, &path)?;
            return Ok(m);
        }
        let m = self.read_manifest(job, snapshot)?;
        dir.write(MANIFEST_FILE, &m.to_bytes())?;
        Ok(m)
    }

    /// Reads a snapshot's manifest, refused unless it names the job and
    /// snapshot it was found under.
    pub fn read_manifest(&self, job: &str, snapshot: &str) -> Result<Manifest> {
        check_names(job, snapshot)?;
        let p = manifest_path(job, snapshot);
        let m = Manifest::parse(p.as_ref(), &self.read_small(&p, MANIFEST_MAX)?)?;
        m.check_identity(job, snapshot, p.as_ref())?;
        Ok(m)
    }

    /// Reads an object that must be small (a marker, a manifest): at most
    /// `max` bytes are fetched, and a larger object is refused.
    pub fn read_small(&self, path: &str, max: u64) -> Result<Vec<u8>> {
        // The size first: a ranged read past an object's end is an error on some services.
        let size = self.size(path)?.ok_or_else(|| FsError::remote_missing("read", path, "no such object"))?;
        let bytes = if size > max { Vec::new() } else { self.read(path)? };
        if size > max || bytes.len() as u64 > max {
            return Err(FsError::Format {
                path: path.into(),
                message: format!("larger than the {max} bytes such an object may have"),
            });
        }
        Ok(bytes)
    }

    /// Deletes a snapshot: its manifest first, so that it stops existing at once.
    pub fn delete_snapshot(&self, job: &str, snapshot: &str) -> Result<()> {
        check_names(job, snapshot)?;
        self.delete(&manifest_path(job, snapshot))?;
        self.delete_all(&format!("{job}/{snapshot}/"))
    }
}

impl RemoteStore {
    /// Removes what uploads of `keys` cut short left at the root: services that
    /// write to a temporary `<name>.<random>` there and rename it into place
    /// when complete (FTP) keep it when the connection dies. Returns how many.
    pub fn remove_stray_uploads(&self, keys: &[String]) -> Result<usize> {
        if keys.is_empty() {
            return Ok(0);
        }
        let bases: std::collections::HashSet<&str> =
            keys.iter().map(|k| k.rsplit('/').next().unwrap_or(k)).filter(|b| !b.is_empty()).collect();
        let mut removed = 0;
        for name in self.list("/")? {
            let Some((base, suffix)) = name.rsplit_once('.') else { continue };
            if bases.contains(base) && !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_alphanumeric()) {
                self.delete(&name)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Object path of a snapshot's manifest.
pub(super) fn manifest_path(job: &str, snapshot: &str) -> String {
    format!("{job}/{snapshot}/{MANIFEST_FILE}")
}

/// Object path of a snapshot's index.
pub(super) fn index_path(job: &str, snapshot: &str) -> String {
    format!("{job}/{snapshot}/{INDEX_FILE}")
}

/// Refuses a job or snapshot name that is not one the agent creates.
fn check_names(job: &str, snapshot: &str) -> Result<()> {
    check_job_dir(job).map_err(FsError::Refused)?;
    check_snapshot_name(snapshot).map_err(FsError::Refused)
}

/// Bytes of an index fetched per request when it is copied to the cache.
const INDEX_CHUNK: u64 = 8 << 20;

impl RemoteStore {
    /// A local copy of a snapshot's index under `cache_dir` (`<job>/<snapshot>/index.sqlite`),
    /// downloaded once and checked against the manifest's blake3; indexes never change.
    /// The copy streams to a private file by ranges: an index may be larger than memory.
    pub fn cached_index(&self, cache_dir: &std::path::Path, job: &str, snapshot: &str) -> Result<std::path::PathBuf> {
        let dir = CachedSnapshot::open(cache_dir, job, snapshot)?;
        let path = dir.path().join(INDEX_FILE);
        if dir.has(INDEX_FILE) {
            return Ok(path);
        }
        let manifest = self.read_manifest(job, snapshot)?;
        let key = index_path(job, snapshot);
        let size =
            self.size(&key)?.ok_or_else(|| FsError::remote_missing("read", &key, "the snapshot has no index"))?;
        let mut failed = None;
        let written = dir.write_with(INDEX_FILE, |f| {
            use std::io::Write;
            let mut hasher = blake3::Hasher::new();
            let mut offset = 0u64;
            while offset < size {
                let chunk = match self.read_range(&key, offset, INDEX_CHUNK.min(size - offset)) {
                    Ok(c) if !c.is_empty() => c,
                    Ok(_) => break,
                    Err(e) => {
                        failed = Some(e);
                        return Err(std::io::Error::other("the index download failed"));
                    }
                };
                hasher.update(&chunk);
                f.write_all(&chunk)?;
                offset += chunk.len() as u64;
            }
            let got = hasher.finalize().to_hex().to_string();
            if got != manifest.index_blake3 {
                failed = Some(FsError::Format {
                    path: key.clone().into(),
                    message: format!("index blake3 {got} differs from the manifest's {}", manifest.index_blake3),
                });
                return Err(std::io::Error::other("the index differs from its manifest"));
            }
            f.sync_all()
        });
        if let Some(e) = failed {
            return Err(e);
        }
        written?;
        Ok(path)
    }
}

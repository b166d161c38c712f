//! Integrity checks of complete snapshots, whatever their structure.
//!
//! Every snapshot is checked for a readable manifest and an index whose blake3
//! matches the manifest; then its contents per structure: `tree/` against the
//! index for incremental snapshots (`incremental`), the tar stream and its
//! gzip members for archived and compressed ones (`archive::check`).
//! With `read_data` ([`ReadData`]: all, or a random share), regular files'
//! contents are hashed and compared with the index.
//!
//! A check never stops at the first problem and never fails on corrupt input:
//! whatever is wrong is a [`Problem`] in the report. Only a snapshot directory
//! that is not there is an error.

mod incremental;
mod paths;
mod read_data;
mod report;

use std::io::Read;
use std::path::Path;

pub(crate) use incremental::kind_name;
pub(crate) use paths::PathCache;
pub use read_data::ReadData;
pub use report::{Findings, Problem, Problems, SnapshotCheck, show_path};

use crate::error::{FsError, Result};
use crate::index::{INDEX_FILE, IndexReader};
use crate::manifest::{MANIFEST_FILE, Manifest, Structure};

/// Checks the complete snapshot in `dir` (`<root>/<job>/<snapshot>`).
pub fn check_snapshot(dir: &Path, read_data: impl Into<ReadData>) -> Result<SnapshotCheck> {
    Checker::new(read_data.into()).check(dir)
}

/// Checks snapshots one after the other, remembering what it has read: a file
/// that several incremental snapshots share (one inode, hardlinked) is read
/// once per destination rather than once per snapshot.
#[derive(Debug)]
pub struct Checker {
    read_data: ReadData,
    seen: incremental::SeenInodes,
}

impl Checker {
    /// A checker that hashes the file contents `read_data` picks.
    pub fn new(read_data: ReadData) -> Self {
        Checker { read_data, seen: incremental::SeenInodes::default() }
    }

    /// Checks the complete snapshot in `dir`.
    pub fn check(&mut self, dir: &Path) -> Result<SnapshotCheck> {
        let md = std::fs::metadata(dir).map_err(|e| FsError::io("stat", dir, e))?;
        if !md.is_dir() {
            return Err(FsError::Refused(format!("{} is not a snapshot directory", dir.display())));
        }
        let name_of = |p: Option<&Path>| {
            p.and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        };
        let (mut job, mut snapshot) = (name_of(dir.parent()), name_of(Some(dir)));
        let mut structure = "unknown".to_string();
        let mut f = Findings::default();
        match Manifest::read(&dir.join(MANIFEST_FILE)) {
            Err(e) => f.problems.snapshot(format!("unreadable {MANIFEST_FILE}: {e}")),
            Ok(m) => {
                if m.name != snapshot || m.job != job {
                    f.problems.snapshot(format!(
                        "{MANIFEST_FILE} names snapshot {}/{} but lies in {job}/{snapshot}",
                        m.job, m.name
                    ));
                }
                (job, snapshot) = (m.job.clone(), m.name.clone());
                structure = m.structure.as_str().into();
                self.check_contents(dir, &m, &mut f);
            }
        }
        let problems = f.problems.into_vec();
        Ok(SnapshotCheck {
            job,
            snapshot,
            structure,
            ok: problems.is_empty(),
            entries_checked: f.entries_checked,
            bytes_read: f.bytes_read,
            problems,
        })
    }

    /// The index, then the contents per structure.
    fn check_contents(&mut self, dir: &Path, m: &Manifest, f: &mut Findings) {
        let index_path = dir.join(INDEX_FILE);
        match hash_file(&index_path) {
            Ok((hash, n)) => {
                f.bytes_read += n;
                if hash.to_hex().as_str() != m.index_blake3 {
                    f.problems.snapshot(format!(
                        "{INDEX_FILE} does not match {MANIFEST_FILE} (blake3 {}, expected {})",
                        hash.to_hex(),
                        m.index_blake3
                    ));
                }
            }
            Err(e) => {
                f.problems.snapshot(format!("cannot read {INDEX_FILE}: {e}"));
                return;
            }
        }
        let index = match IndexReader::open(&index_path) {
            Ok(i) => i,
            Err(e) => {
                f.problems.snapshot(format!("cannot open the index: {e}"));
                return;
            }
        };
        match index.meta("structure") {
            Ok(Some(s)) if s == m.structure.as_str() => {}
            Ok(s) => f.problems.snapshot(format!(
                "the index is of structure {}, {MANIFEST_FILE} says {}",
                s.as_deref().unwrap_or("(none)"),
                m.structure.as_str()
            )),
            Err(e) => f.problems.snapshot(format!("cannot read the index: {e}")),
        }
        match m.structure {
            Structure::Incremental => incremental::check(dir, &index, self.read_data, &mut self.seen, f),
            Structure::Archived | Structure::Compressed => {
                crate::archive::check::check(dir, &index, m.structure, self.read_data, f)
            }
        }
    }
}

/// Streams a file through blake3; returns the hash and the bytes read. Memory
/// stays at one buffer whatever the file's size.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<(blake3::Hash, u64)> {
    hash_reader(crate::posix::read_only_nofollow(path)?)
}

/// blake3 and length of what `file` holds from where it stands.
pub(crate) fn hash_reader(mut file: std::fs::File) -> std::io::Result<(blake3::Hash, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher.finalize(), total))
}

#[cfg(test)]
mod tests;

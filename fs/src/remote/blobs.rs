//! Content-addressed file bodies on destinations without hardlinks.
//!
//! - A file of [`SMALL_FILE`] bytes or more is one object,
//!   `blobs/<first two hex digits>/<blake3 hex>`: the same content is never
//!   stored twice.
//! - Smaller files are packed: their bodies are concatenated into objects of
//!   about [`PACK_TARGET`] bytes (option `pack_size`), `packs/<first two hex digits>/<uuid>`, since
//!   one request per small file would make a first backup crawl on any
//!   object store.
//!
//! The index row of a file records its object key (`blob`), its offset in the
//! object (`data_offset`) and its blake3. A later backup finds the content of
//! unchanged files in the previous snapshot's index and uploads nothing for
//! them. The marker's `blobs` format versions this naming and framing.
//!
//! A run appends what it has stored to a local [`Journal`], so that a run
//! interrupted midway does not upload the same content again when retried.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{FsError, Result};

/// Files this size and larger get an object of their own.
pub const SMALL_FILE: u64 = 1 << 20;

/// Size a pack is sealed and uploaded at, unless the destination's
/// `pack_size` option says otherwise.
pub(crate) const PACK_TARGET: usize = 8 << 20;

/// Where stored content lives: an object and an offset in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAt {
    /// Object key under the destination root.
    pub key: String,
    /// Offset of the content in the object.
    pub offset: u64,
}

/// Key of the object holding a whole file whose blake3 is `hash`.
pub fn blob_key(hash: &[u8; 32]) -> String {
    let hex = blake3::Hash::from_bytes(*hash).to_hex();
    format!("blobs/{}/{}", &hex[..2], hex)
}

/// True when `key` has the shape of a key Hindsight gives a body's object
/// (`blobs/xx/<64 hex>` or `packs/xx/<32 hex>`, `xx` their first two digits):
/// an index names objects, and an index may come from someone else.
pub(crate) fn is_object_key(key: &str) -> bool {
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let shaped = |rest: &str, len: usize| match rest.split_once('/') {
        Some((dir, name)) => hex(dir, 2) && hex(name, len) && name.starts_with(dir),
        None => false,
    };
    match key.split_once('/') {
        Some(("blobs", rest)) => shaped(rest, 64),
        Some(("packs", rest)) => shaped(rest, 32),
        _ => false,
    }
}

/// Key of a new pack.
pub fn new_pack_key() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("packs/{}/{}", &id[..2], id)
}

/// Prefix of a journal line naming an upload that started.
const STARTED: &str = "started ";

/// Content already on the destination, by blake3.
#[derive(Debug, Default)]
pub struct Known(HashMap<[u8; 32], StoredAt>);

impl Known {
    /// Where content with this hash is stored, if anywhere known.
    pub fn get(&self, hash: &[u8; 32]) -> Option<&StoredAt> {
        self.0.get(hash)
    }

    /// Records stored content.
    pub fn insert(&mut self, hash: [u8; 32], stored: StoredAt) {
        self.0.insert(hash, stored);
    }

    /// How many contents are known.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The local record of what a run stored, one line per content:
/// `<blake3 hex> <offset> <key>`; and of the uploads it started,
/// `started <key>`, so that the next run can remove what an upload cut short
/// left behind (FTP writes to a temporary `<name>.<random>` at the root and
/// renames it into place only once complete).
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
}

impl Journal {
    /// Opens (creating) the journal at `path` for appending.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            crate::layout::create_private_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(|e| FsError::io("open", path, e))?;
        let mut j = Journal { path: path.into(), file };
        // A torn last line (crash mid-append) must not swallow the next record.
        let torn = last_byte(path).map_err(|e| FsError::io("read", path, e))?.is_some_and(|b| b != b'\n');
        if torn {
            j.file.write_all(b"\n").map_err(|e| FsError::io("write", path, e))?;
        }
        Ok(j)
    }

    /// Reads the entries a previous run recorded (none when there is no journal).
    pub fn read(path: &Path) -> Result<Vec<([u8; 32], StoredAt)>> {
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(FsError::io("open", path, e)),
        };
        let mut out = Vec::new();
        for line in std::io::BufReader::new(f).lines() {
            let line = line.map_err(|e| FsError::io("read", path, e))?;
            // A torn last line (crash mid-append) is skipped.
            let mut parts = line.splitn(3, ' ');
            let (Some(hex), Some(off), Some(key)) = (parts.next(), parts.next(), parts.next()) else { continue };
            let (Ok(hash), Ok(offset)) = (blake3::Hash::from_hex(hex), off.parse::<u64>()) else { continue };
            out.push((*hash.as_bytes(), StoredAt { key: key.to_string(), offset }));
        }
        Ok(out)
    }

    /// Keys of the uploads a previous run started (none when there is no journal).
    pub fn started(path: &Path) -> Result<Vec<String>> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(FsError::io("read", path, e)),
        };
        let text = String::from_utf8_lossy(&text);
        Ok(text.lines().filter_map(|l| l.strip_prefix(STARTED)).map(str::to_string).collect())
    }

    /// Records that the upload of `key` starts.
    pub fn start(&mut self, key: &str) -> Result<()> {
        self.file.write_all(format!("{STARTED}{key}\n").as_bytes()).map_err(|e| FsError::io("write", &self.path, e))
    }

    /// Records stored contents (after the object holding them is complete).
    pub fn record(&mut self, items: &[([u8; 32], StoredAt)]) -> Result<()> {
        let mut text = String::new();
        for (hash, s) in items {
            text.push_str(&format!("{} {} {}\n", blake3::Hash::from_bytes(*hash).to_hex(), s.offset, s.key));
        }
        self.file.write_all(text.as_bytes()).map_err(|e| FsError::io("write", &self.path, e))
    }

    /// Removes the journal once its run has committed.
    pub fn remove(self) -> Result<()> {
        drop(self.file);
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(FsError::io("remove", &self.path, e)),
        }
    }
}

/// The last byte of a file, `None` when it is empty.
fn last_byte(path: &Path) -> std::io::Result<Option<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, len - 1)?;
    Ok(Some(b[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fan_out_by_hash_prefix() {
        let h = *blake3::hash(b"x").as_bytes();
        let k = blob_key(&h);
        let hex = blake3::hash(b"x").to_hex();
        assert_eq!(k, format!("blobs/{}/{hex}", &hex[..2]));
        let p = new_pack_key();
        assert!(p.starts_with("packs/") && p.len() == "packs/xx/".len() + 32, "{p}");
        assert!(is_object_key(&k) && is_object_key(&p));
        for bad in ["packs/ab/cd", "blobs/../../x", "../blobs/aa/bb", "/etc/passwd", "packs/zz/zz"] {
            assert!(!is_object_key(bad), "{bad}");
        }
    }

    #[test]
    fn journal_round_trips_and_skips_torn_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j");
        let h = *blake3::hash(b"a").as_bytes();
        let mut j = Journal::open(&path).expect("open");
        j.record(&[(h, StoredAt { key: "packs/ab/cd".into(), offset: 42 })]).expect("record");
        drop(j);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"deadbeef 1"))
            .expect("torn");
        let mut j = Journal::open(&path).expect("reopen");
        j.start("blobs/ef/gh").expect("start");
        drop(j);
        let back = Journal::read(&path).expect("read");
        assert_eq!(back, vec![(h, StoredAt { key: "packs/ab/cd".into(), offset: 42 })]);
        assert_eq!(Journal::started(&path).expect("started"), vec!["blobs/ef/gh".to_string()]);
        Journal::open(&path).expect("reopen").remove().expect("remove");
        assert!(Journal::read(&path).expect("read").is_empty());
    }
}

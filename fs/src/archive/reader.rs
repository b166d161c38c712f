//! Random-access reads of files stored in an archived (`data.tar`) or
//! compressed (`data.tar.gz`) snapshot.
//!
//! An [`Archive`] is one snapshot's data file, opened once; [`Archive::content`]
//! gives one file's bytes as a [`ReadAt`]. Archived content is read in place;
//! compressed content is inflated one gzip member at a time through a
//! [`MemberCache`] shared by all the archives of a mount, and a reader that
//! reaches the second half of a member has the next one inflated in the
//! background. A member that does not inflate (damaged or truncated data file)
//! fails the reads that need it, and only those.
//!
//! The data file is local, or an object of a remote destination read by
//! ranges: there a gzip member is one request, and `data.tar` is read by the
//! chunks of `RemoteContent`, cached in the same [`MemberCache`].

mod cache;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use cache::DEFAULT_CACHE_BYTES;
pub(crate) use cache::MemberCache;

use super::{TAR_FILE, TGZ_FILE};
use crate::error::{FsError, Result};
use crate::index::{IndexReader, Member};
use crate::manifest::Structure;
use crate::mount::content::ReadAt;
use crate::remote::RemoteStore;
use crate::remote::content::RemoteContent;
use crate::sync::lock;

/// Largest member, compressed or not, a reader accepts: a damaged index must
/// not make it allocate gigabytes (members are [`super::MEMBER_SIZE`]).
const MAX_MEMBER_BYTES: u64 = 64 << 20;

/// How the tar stream is stored.
enum Data {
    /// `data.tar`: the stream itself.
    Tar,
    /// `data.tar.gz`: members, contiguous in the stream, in order.
    Gzip(Vec<Member>),
}

/// Where the data file is read from.
enum Source {
    /// A local file, read in place.
    Local(File),
    /// An object of a remote destination, read by ranges; `chunks` (archived)
    /// reads the whole object through the shared cache.
    Remote { store: RemoteStore, key: String, chunks: Option<Box<RemoteContent>> },
}

impl Source {
    /// Fills `buf` from offset `pos` of the data file, uncached (gzip members are cached inflated).
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        match self {
            Source::Local(f) => f.read_exact_at(buf, pos),
            Source::Remote { store, key, .. } => {
                let got = store.read_range(key, pos, buf.len() as u64).map_err(|e| io::Error::other(e.to_string()))?;
                if got.len() < buf.len() {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                buf.copy_from_slice(&got[..buf.len()]);
                Ok(())
            }
        }
    }

    /// Fills `buf` from offset `pos` of `data.tar`, through the cache when remote.
    fn read_tar(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let Source::Remote { chunks: Some(chunks), .. } = self else { return self.read_exact_at(buf, pos) };
        let mut done = 0;
        while done < buf.len() {
            match chunks.read_at(pos + done as u64, &mut buf[done..])? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => done += n,
            }
        }
        Ok(())
    }
}

/// The data file of one archived or compressed snapshot.
pub(crate) struct Archive {
    /// Key of its members in the cache.
    identity: u64,
    /// The snapshot directory (for messages).
    dir: PathBuf,
    /// The data file.
    path: PathBuf,
    source: Source,
    data: Data,
    cache: MemberCache,
    /// Members that failed to inflate, with why: reported once, then failed fast.
    damaged: Mutex<HashMap<usize, String>>,
}

impl Archive {
    /// Opens the data file of the snapshot in `dir` (without following a
    /// symlink), of structure `structure`, with the members table of its
    /// `index` (compressed).
    pub(crate) fn open(
        dir: &Path,
        structure: Structure,
        index: &IndexReader,
        cache: &MemberCache,
    ) -> Result<Arc<Self>> {
        Self::open_local(dir, structure, index, cache, |name| {
            let path = dir.join(name);
            crate::posix::read_only_nofollow(&path).map_err(|e| FsError::io("open", path, e))
        })
    }

    /// Like [`Archive::open`], the data file opened by `open_data` from its
    /// name (the mount opens it beneath the destination root).
    pub(crate) fn open_local(
        dir: &Path,
        structure: Structure,
        index: &IndexReader,
        cache: &MemberCache,
        open_data: impl FnOnce(&str) -> Result<File>,
    ) -> Result<Arc<Self>> {
        Self::open_with(dir, structure, index, cache, |_, name| open_data(name).map(Source::Local))
    }

    /// Opens the data file of the remote snapshot whose objects are under
    /// `prefix` (`<job>/<snapshot>`) on `store`; `dir` is its local cache
    /// directory (for messages).
    pub(crate) fn open_remote(
        store: &RemoteStore,
        prefix: &str,
        dir: &Path,
        structure: Structure,
        index: &IndexReader,
        cache: &MemberCache,
    ) -> Result<Arc<Self>> {
        Self::open_with(dir, structure, index, cache, |path, name| {
            let key = format!("{prefix}/{name}");
            let chunks = match structure {
                Structure::Archived => {
                    // Its size bounds the chunks asked for (and says it exists).
                    let size = store.size(&key)?.ok_or_else(|| FsError::Format {
                        path: path.into(),
                        message: format!("{key} is missing on {store:?}"),
                    })?;
                    Some(Box::new(RemoteContent::new(store.clone(), key.as_bytes(), 0, size, cache.clone())))
                }
                _ => None,
            };
            Ok(Source::Remote { store: store.clone(), key, chunks })
        })
    }

    fn open_with(
        dir: &Path,
        structure: Structure,
        index: &IndexReader,
        cache: &MemberCache,
        open: impl FnOnce(&Path, &str) -> Result<Source>,
    ) -> Result<Arc<Self>> {
        let (name, data) = match structure {
            Structure::Archived => (TAR_FILE, Data::Tar),
            Structure::Compressed => (TGZ_FILE, Data::Gzip(index.members()?)),
            Structure::Incremental => {
                return Err(FsError::Format { path: dir.into(), message: "not an archived snapshot".into() });
            }
        };
        let path = dir.join(name);
        if let Data::Gzip(members) = &data {
            check_contiguous(&path, members)?;
        }
        let source = open(&path, name)?;
        Ok(Arc::new(Archive {
            identity: cache.new_identity(),
            dir: dir.into(),
            path,
            source,
            data,
            cache: cache.clone(),
            damaged: Mutex::new(HashMap::new()),
        }))
    }

    /// The content of a file whose `size` bytes start at `data_offset` in the tar stream.
    pub(crate) fn content(self: &Arc<Self>, data_offset: u64, size: u64) -> ArchiveContent {
        ArchiveContent { archive: self.clone(), start: data_offset, size }
    }

    /// Fills `buf` from tar stream offset `pos` (the caller clipped it to a
    /// file, whose data ends at stream offset `end`).
    fn read_stream(self: &Arc<Self>, pos: u64, buf: &mut [u8], end: u64) -> io::Result<()> {
        match &self.data {
            Data::Tar => self.source.read_tar(buf, pos).map_err(|e| self.error(pos, e)),
            Data::Gzip(members) => self.read_members(members, pos, buf, end),
        }
    }

    fn read_members(self: &Arc<Self>, members: &[Member], pos: u64, buf: &mut [u8], end: u64) -> io::Result<()> {
        let mut done = 0;
        let mut k = members.partition_point(|m| m.uncompressed_offset <= pos).saturating_sub(1);
        while done < buf.len() {
            let at = pos + done as u64;
            let Some(m) = members.get(k).filter(|m| at >= m.uncompressed_offset) else {
                return Err(self.error(at, io::ErrorKind::UnexpectedEof.into()));
            };
            let data = self.member(k)?;
            let Some(from) = usize::try_from(at - m.uncompressed_offset).ok().filter(|&f| f < data.len()) else {
                // Past this member: the next one, if any, starts exactly here.
                k += 1;
                continue;
            };
            let n = (data.len() - from).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&data[from..from + n]);
            done += n;
            // A sequential reader in the second half of a member that its file
            // goes on past will want the next member soon.
            if done == buf.len()
                && from + n > data.len() / 2
                && members.get(k + 1).is_some_and(|next| end > next.uncompressed_offset)
            {
                self.read_ahead(k + 1);
            }
            k += 1;
        }
        Ok(())
    }

    /// Has member `k` inflated in the background, if it is not cached already.
    fn read_ahead(self: &Arc<Self>, k: usize) {
        if self.cache.contains((self.identity, k as u64)) {
            return;
        }
        let me = self.clone();
        // Errors are reported when a reader needs the member.
        self.cache.prefetch(move || drop(me.member(k)));
    }

    /// Member `k`, inflated.
    fn member(&self, k: usize) -> io::Result<Arc<[u8]>> {
        if let Some(why) = lock(&self.damaged).get(&k) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, why.clone()));
        }
        self.cache.get_or_load((self.identity, k as u64), || {
            self.inflate(k).inspect_err(|e| {
                if matches!(e.kind(), io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof) {
                    self.mark_damaged(k, e);
                }
            })
        })
    }

    fn mark_damaged(&self, k: usize, e: &io::Error) {
        let mut damaged = lock(&self.damaged);
        if let std::collections::hash_map::Entry::Vacant(v) = damaged.entry(k) {
            tracing::warn!(
                "snapshot {}: gzip member {k} is damaged ({e}); reads of the files it holds fail",
                self.dir.display()
            );
            v.insert(e.to_string());
        }
    }

    fn inflate(&self, k: usize) -> io::Result<Vec<u8>> {
        let Data::Gzip(members) = &self.data else { return Err(io::Error::other("not a compressed archive")) };
        let m = members.get(k).ok_or_else(|| io::Error::other(format!("no member {k}")))?;
        let bad = |what: String| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: member {k}: {what}", self.path.display()))
        };
        if m.compressed_length > MAX_MEMBER_BYTES || m.uncompressed_length > MAX_MEMBER_BYTES {
            return Err(bad(format!("implausible size {} -> {}", m.compressed_length, m.uncompressed_length)));
        }
        let mut packed = vec![0u8; m.compressed_length as usize];
        self.source.read_exact_at(&mut packed, m.compressed_offset).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => bad("the data file is truncated".into()),
            _ => io::Error::new(e.kind(), format!("{}: member {k}: {e}", self.path.display())),
        })?;
        let mut out = vec![0u8; m.uncompressed_length as usize];
        let n = DECOMPRESSOR
            .with_borrow_mut(|d| d.gzip_decompress(&packed, &mut out))
            .map_err(|e| bad(format!("does not inflate: {e}")))?;
        if n != out.len() {
            return Err(bad(format!("inflates to {n} bytes, the index says {}", out.len())));
        }
        Ok(out)
    }

    fn error(&self, pos: u64, e: io::Error) -> io::Error {
        let what = match e.kind() {
            io::ErrorKind::UnexpectedEof => "tar stream ends before the file's data".to_string(),
            _ => e.to_string(),
        };
        io::Error::new(e.kind(), format!("{} at stream offset {pos}: {what}", self.path.display()))
    }
}

thread_local! {
    /// One decompressor per thread: it holds ~30 KiB of tables, not worth making per member.
    static DECOMPRESSOR: std::cell::RefCell<libdeflater::Decompressor> =
        std::cell::RefCell::new(libdeflater::Decompressor::new());
}

/// Members must tile the stream from 0 for the binary search to find the right one.
fn check_contiguous(path: &Path, members: &[Member]) -> Result<()> {
    let mut next = 0u64;
    for (k, m) in members.iter().enumerate() {
        if m.uncompressed_offset != next {
            return Err(FsError::Format {
                path: path.into(),
                message: format!("member {k} starts at {}, expected {next}", m.uncompressed_offset),
            });
        }
        next = next.checked_add(m.uncompressed_length).ok_or_else(|| FsError::Format {
            path: path.into(),
            message: format!("member {k} overflows the stream"),
        })?;
    }
    Ok(())
}

/// One file of an archive.
pub(crate) struct ArchiveContent {
    archive: Arc<Archive>,
    start: u64,
    size: u64,
}

impl ReadAt for ArchiveContent {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.size {
            return Ok(0);
        }
        let len = (self.size - offset).min(buf.len() as u64) as usize;
        let pos = self.start.checked_add(offset).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: data offset overflows", self.archive.path.display()),
            )
        })?;
        self.archive.read_stream(pos, &mut buf[..len], self.start.saturating_add(self.size))?;
        Ok(len)
    }
}

#[cfg(test)]
pub(crate) mod tests;

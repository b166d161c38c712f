//! Archived (`data.tar`) and Compressed (`data.tar.gz`) snapshots.
//!
//! The format is described in `docs/archive-format.md`: one PAX tar stream,
//! for Compressed cut into independent gzip members every [`MEMBER_SIZE`]
//! bytes, with the index recording where every entry's header and data start.
//!
//! - [`tar`]: encoding (and decoding, for checks) of tar headers and PAX records;
//! - [`writer`]: the streaming writer, compressing members on a thread pool;
//! - [`reader`]: random-access reads of one file's content, through a shared
//!   cache of decompressed members;
//! - `check`: integrity verification of an archive against its index.

pub(crate) mod check;
pub(crate) mod reader;
pub(crate) mod tar;
pub(crate) mod writer;

// What the backup engines and the CLI use of the format.
pub use reader::DEFAULT_CACHE_BYTES;
pub use tar::{TarKind, kind_of};
pub use writer::{ArchiveWriter, Compression, DataOutcome, FileHash, Finished, Placed};

/// Bytes of tar stream per gzip member. Measured on the 100k-entry corpus
/// (bench/archive.sh): 1 MiB members gave 0.993x gzip -6's size and 4.4 ms per
/// small file read cold; 256 KiB gives 0.996x and 1.8 ms (one member inflated
/// and read per small file), with compression as fast.
pub const MEMBER_SIZE: u64 = 256 << 10;

/// Name of the data file of an archived snapshot.
pub const TAR_FILE: &str = "data.tar";

/// Name of the data file of a compressed snapshot.
pub const TGZ_FILE: &str = "data.tar.gz";

/// The files of an archived or compressed snapshot, read outside the mount
/// (restores): each file's content by its data offset in the tar stream.
pub struct ArchiveFiles(std::sync::Arc<reader::Archive>);

impl ArchiveFiles {
    /// The data file of the local snapshot in `dir` (opened without following a symlink).
    pub fn open_local(
        dir: &std::path::Path,
        structure: crate::Structure,
        index: &crate::index::IndexReader,
    ) -> crate::Result<Self> {
        Ok(ArchiveFiles(reader::Archive::open(dir, structure, index, &reader::MemberCache::default())?))
    }

    /// The data file of the remote snapshot under `prefix` (`<job>/<snapshot>`);
    /// `dir` names it in messages.
    pub fn open_remote(
        store: &crate::RemoteStore,
        prefix: &str,
        dir: &std::path::Path,
        structure: crate::Structure,
        index: &crate::index::IndexReader,
    ) -> crate::Result<Self> {
        let cache = reader::MemberCache::default();
        Ok(ArchiveFiles(reader::Archive::open_remote(store, prefix, dir, structure, index, &cache)?))
    }

    /// The `size` bytes of one file, starting at `data_offset` in the tar stream.
    pub fn reader(&self, data_offset: u64, size: u64) -> impl std::io::Read + Send + 'static {
        ArchiveRead { content: self.0.content(data_offset, size), at: 0 }
    }
}

/// Sequential reads over one archived file's random-access content.
struct ArchiveRead {
    content: reader::ArchiveContent,
    at: u64,
}

impl std::io::Read for ArchiveRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use crate::mount::content::ReadAt;
        let n = self.content.read_at(self.at, buf)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// A plain tar stream written entry by entry (downloads), with the headers
/// archived snapshots have (PAX for long or non-ASCII names, xattrs, ACLs,
/// times in nanoseconds).
pub struct TarStream<W: std::io::Write> {
    out: W,
}

impl<W: std::io::Write> TarStream<W> {
    /// A stream writing to `out`.
    pub fn new(out: W) -> Self {
        TarStream { out }
    }

    /// Appends one entry at relative `path` (a directory's ends with `/`);
    /// a regular file's `size` bytes come from `content`, which must hold exactly that many.
    pub fn entry(
        &mut self,
        path: &[u8],
        meta: &crate::EntryMeta,
        kind: TarKind<'_>,
        content: Option<&mut dyn std::io::Read>,
    ) -> std::io::Result<()> {
        let mut head = Vec::new();
        tar::encode_entry(&mut head, path, meta, kind);
        self.out.write_all(&head)?;
        if let (TarKind::File { size }, Some(r)) = (kind, content) {
            let copied = std::io::copy(&mut std::io::Read::take(r, size), &mut self.out)?;
            if copied != size {
                return Err(std::io::Error::other(format!(
                    "{}: {copied} of its {size} bytes",
                    String::from_utf8_lossy(path)
                )));
            }
            self.out.write_all(&vec![0u8; tar::padding(size)])?;
        }
        Ok(())
    }

    /// Ends the stream (two zero blocks); returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.write_all(&[0u8; 1024])?;
        Ok(self.out)
    }
}

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

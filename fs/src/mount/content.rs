//! File contents read through user space.
//!
//! Incremental snapshots on local destinations are normally served by FUSE
//! passthrough and never reach this module; it serves them when passthrough
//! is unavailable. Structures whose content is not a plain file (a member of
//! a tar stream, a remote blob) implement [`ReadAt`] too.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Positional reads of one file's content.
///
/// Contract: `read_at` fills as much of `buf` as the content has from
/// `offset` on and returns the count; 0 means end of content. It may be called
/// from several threads at once.
pub trait ReadAt: Send + Sync {
    /// Reads at `offset` into `buf`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// A plain file on a local destination.
pub struct PlainFile(pub File);

impl ReadAt for PlainFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.0.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

//! The data file of an archive on a local destination, written with direct I/O.
//!
//! Why: a backup writes gigabytes once and does not read them back soon.
//! Through the page cache every byte is copied into freshly allocated pages
//! (on the reference VM that copy was half the CPU of an archived backup: the
//! host faults in the new memory) and the server's useful cache is evicted.
//! With `O_DIRECT` the bytes go from one reused, aligned buffer to the disk.
//! Where the filesystem refuses direct I/O (tmpfs, some network or FUSE
//! filesystems), the file goes through the page cache in pieces of
//! [`WRITE_PIECE`], its writeback started every [`WRITEBACK_STEP`] so that the
//! fsync before the commit waits for the tail only.

use std::fs::File;
use std::io::{self, Write};

use rustix::fs::OFlags;
use rustix::io::Errno;

/// Alignment of direct writes: buffer address, file offset and length.
const ALIGN: usize = 4096;

/// Bytes gathered before one direct write.
const STAGE: usize = 1 << 20;

/// Page-cache mode: dirty bytes after which their writeback is started.
const WRITEBACK_STEP: u64 = 16 << 20;

/// Page-cache mode: largest single write. Measured on the reference VM
/// (ext4, 2 GiB): 1 MiB writes cost 3.1-4.7 s of CPU, 128-256 KiB writes
/// 0.5-0.8 s (large writes make the kernel allocate large folios).
const WRITE_PIECE: usize = 128 << 10;

/// A local archive's data file: direct I/O when the filesystem allows it.
pub(super) struct ArchiveFile {
    file: File,
    direct: bool,
    /// `STAGE + ALIGN` bytes; the aligned window starts at `start`.
    stage: Vec<u8>,
    start: usize,
    /// Bytes of the window waiting to be written.
    staged: usize,
    /// Bytes written through the page cache, and those whose writeback was started.
    written: u64,
    handed: u64,
}

impl ArchiveFile {
    /// Wraps a new, empty file opened for writing.
    pub fn new(file: File) -> Self {
        Self::with_direct(file, true)
    }

    /// Wraps `file`, trying direct I/O only if `try_direct`.
    fn with_direct(file: File, try_direct: bool) -> Self {
        let direct = try_direct && set_direct(&file, true).is_ok();
        let stage = if direct { vec![0u8; STAGE + ALIGN] } else { Vec::new() };
        let start = stage.as_ptr().align_offset(ALIGN).min(ALIGN);
        ArchiveFile { file, direct, stage, start, staged: 0, written: 0, handed: 0 }
    }

    /// True while writes bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// The file, once flushed, for the caller to sync.
    pub fn into_file(self) -> File {
        self.file
    }

    /// Writes the first `len` staged bytes (a multiple of [`ALIGN`]) directly,
    /// falling back to the page cache if the filesystem refuses them.
    fn drain(&mut self, len: usize) -> io::Result<()> {
        let mut done = 0;
        while done < len && self.direct {
            let window = &self.stage[self.start + done..self.start + len];
            match rustix::io::write(&self.file, window) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(Errno::INTR) => {}
                // Alignment this filesystem does not take: the rest goes through the cache.
                Err(Errno::INVAL) => self.leave_direct()?,
                Err(e) => return Err(e.into()),
            }
        }
        if done < len {
            let rest = self.stage[self.start + done..self.start + len].to_vec();
            self.write_cached(&rest)?;
        }
        self.stage.copy_within(self.start + len..self.start + self.staged, self.start);
        self.staged -= len;
        Ok(())
    }

    fn leave_direct(&mut self) -> io::Result<()> {
        set_direct(&self.file, false)?;
        self.direct = false;
        Ok(())
    }

    /// Writes all of `buf` through the page cache.
    fn write_cached(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.write_piece(buf)?;
            buf = &buf[n..];
        }
        Ok(())
    }

    fn write_piece(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&self.file).write(&buf[..buf.len().min(WRITE_PIECE)])?;
        self.written += n as u64;
        if self.written - self.handed >= WRITEBACK_STEP {
            let len = std::num::NonZeroU64::new(self.written - self.handed);
            // On Linux, DONTNEED starts the writeback of dirty pages without
            // waiting. Advice only: the fsync before the commit is what makes the data durable.
            let _ = rustix::fs::fadvise(&self.file, self.handed, len, rustix::fs::Advice::DontNeed);
            self.handed = self.written;
        }
        Ok(n)
    }
}

impl Write for ArchiveFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.direct {
            return self.write_piece(buf);
        }
        let n = buf.len().min(STAGE - self.staged);
        let at = self.start + self.staged;
        self.stage[at..at + n].copy_from_slice(&buf[..n]);
        self.staged += n;
        if self.staged == STAGE {
            self.drain(STAGE)?;
        }
        Ok(n)
    }

    /// Writes everything staged; an unaligned tail goes through the page
    /// cache (later writes too, which stay correct if slower).
    fn flush(&mut self) -> io::Result<()> {
        if self.direct {
            self.drain(self.staged / ALIGN * ALIGN)?;
            if self.staged > 0 {
                self.leave_direct()?;
                let tail = self.stage[self.start..self.start + self.staged].to_vec();
                self.staged = 0;
                self.write_cached(&tail)?;
            }
        }
        Ok(())
    }
}

/// Turns `O_DIRECT` on or off for `file`.
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    let flags = if on { flags | OFlags::DIRECT } else { flags - OFlags::DIRECT };
    rustix::fs::fcntl_setfl(file, flags)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `data` in uneven pieces through an ArchiveFile in `dir`; returns
    /// the file's bytes and whether the writes were direct.
    fn round_trip(dir: &std::path::Path, data: &[u8], try_direct: bool) -> (Vec<u8>, bool) {
        let path = dir.join("data.tar");
        let mut f = ArchiveFile::with_direct(File::create_new(&path).expect("create"), try_direct);
        let direct = f.is_direct();
        for piece in data.chunks(333_333) {
            f.write_all(piece).expect("write");
        }
        f.flush().expect("flush");
        f.into_file().sync_all().expect("sync");
        (std::fs::read(&path).expect("read"), direct)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4099) as u8).collect()
    }

    #[test]
    fn every_byte_arrives_aligned_or_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        for try_direct in [true, false] {
            for len in [0, 1, 4096, 4097, STAGE - 1, STAGE, STAGE + 512, 3 * STAGE + 1234] {
                let data = pattern(len);
                let (back, _) = round_trip(dir.path(), &data, try_direct);
                assert_eq!(back.len(), data.len(), "length of a {len}-byte archive (direct: {try_direct})");
                assert!(back == data, "bytes of a {len}-byte archive differ (direct: {try_direct})");
                std::fs::remove_file(dir.path().join("data.tar")).expect("remove");
            }
        }
    }

    #[test]
    fn direct_io_on_a_disk_filesystem() {
        // /var/tmp is on the machine's disk (ext4 here); tmpfs would refuse O_DIRECT on older kernels.
        let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
        let (back, direct) = round_trip(dir.path(), &pattern(2 * STAGE + 100), true);
        assert!(direct, "O_DIRECT was refused on {}", dir.path().display());
        assert_eq!(back, pattern(2 * STAGE + 100));
    }
}

//! Copies one file's data while hashing it, keeping holes of sparse files.
//!
//! Data ranges are found with `SEEK_DATA`/`SEEK_HOLE`; holes are left as holes
//! (the destination is sized with `ftruncate`) and hashed as zeros. Each chunk is
//! read once into a buffer for blake3, then copied with `copy_file_range`, which
//! copies from the page cache inside the kernel (and shares extents on
//! filesystems that support it); `pwrite` is the fallback where it is refused.
//! [`hash_fd`] hashes a file without copying it (what an interrupted run
//! left, a file sent to a server).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::SeekFrom;
use rustix::io::Errno;

use super::progress::Cancel;

const CHUNK: usize = 1 << 20;

/// Why a copy stopped.
#[derive(Debug)]
pub(super) enum CopyError {
    /// The run was cancelled.
    Cancelled,
    /// Reading the source failed.
    Read(io::Error),
    /// Writing the destination failed.
    Write(io::Error),
}

/// A reusable buffer plus the fallback state of one copying thread.
pub(super) struct Copier {
    buf: Vec<u8>,
    zeros: Vec<u8>,
    use_copy_range: bool,
}

impl Default for Copier {
    fn default() -> Self {
        Copier { buf: vec![0; CHUNK], zeros: vec![0; CHUNK], use_copy_range: true }
    }
}

impl Copier {
    /// Copies `src` into the empty `dst`; returns the blake3 and the bytes copied.
    pub(super) fn copy(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        cancel: &Cancel,
    ) -> Result<([u8; 32], u64), CopyError> {
        let size = rustix::fs::fstat(src).map_err(|e| CopyError::Read(e.into()))?.st_size as u64;
        let mut hasher = blake3::Hasher::new();
        let mut pos = 0u64;
        let mut copied = 0u64;
        while pos < size {
            let data = match rustix::fs::seek(src, SeekFrom::Data(pos)) {
                Ok(d) => d,
                // No data after pos: the rest is a hole.
                Err(Errno::NXIO) => size,
                // Filesystems without SEEK_DATA: everything is data.
                Err(Errno::INVAL) | Err(Errno::OPNOTSUPP) => pos,
                Err(e) => return Err(CopyError::Read(e.into())),
            }
            .min(size);
            self.hash_zeros(&mut hasher, data - pos);
            if data >= size {
                pos = size;
                break;
            }
            let hole = match rustix::fs::seek(src, SeekFrom::Hole(data)) {
                Ok(h) => h.min(size),
                Err(_) => size,
            };
            let mut at = data;
            while at < hole {
                if cancel.is_cancelled() {
                    return Err(CopyError::Cancelled);
                }
                let want = ((hole - at) as usize).min(CHUNK);
                let n = rustix::io::pread(src, &mut self.buf[..want], at).map_err(|e| CopyError::Read(e.into()))?;
                if n == 0 {
                    // The file shrank under us; the caller's before/after stat sees it.
                    break;
                }
                hasher.update(&self.buf[..n]);
                self.write_range(src, dst, at, n)?;
                at += n as u64;
                copied += n as u64;
            }
            pos = at.max(hole);
            if at < hole {
                break;
            }
        }
        rustix::fs::ftruncate(dst, pos.max(size)).map_err(|e| CopyError::Write(e.into()))?;
        Ok((*hasher.finalize().as_bytes(), copied))
    }

    fn hash_zeros(&self, hasher: &mut blake3::Hasher, mut len: u64) {
        while len > 0 {
            let n = (len as usize).min(self.zeros.len());
            hasher.update(&self.zeros[..n]);
            len -= n as u64;
        }
    }

    fn write_range(&mut self, src: BorrowedFd<'_>, dst: BorrowedFd<'_>, at: u64, len: usize) -> Result<(), CopyError> {
        let mut done = 0usize;
        while done < len {
            let off = at + done as u64;
            if self.use_copy_range {
                let (mut off_in, mut off_out) = (off, off);
                match rustix::fs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), len - done) {
                    Ok(0) => self.use_copy_range = false,
                    Ok(n) => {
                        done += n;
                        continue;
                    }
                    Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP | Errno::PERM) => {
                        self.use_copy_range = false
                    }
                    Err(e) => return Err(CopyError::Write(e.into())),
                }
            }
            let n = rustix::io::pwrite(dst, &self.buf[done..len], off).map_err(|e| CopyError::Write(e.into()))?;
            if n == 0 {
                return Err(CopyError::Write(io::Error::from(io::ErrorKind::WriteZero)));
            }
            done += n;
        }
        Ok(())
    }
}

/// blake3 of the first `size` bytes of `fd`, read from its start (a file
/// an interrupted run stored, or one being sent); an error if it is shorter.
/// Copies a stream to its end into `write`, hashing it; returns the blake3
/// and the length. `stopped` is asked between chunks.
pub(super) fn copy_stream(
    src: &mut dyn io::Read,
    mut write: impl FnMut(&[u8]) -> io::Result<()>,
    stopped: impl Fn() -> bool,
) -> Result<([u8; 32], u64), CopyError> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0u64;
    loop {
        if stopped() {
            return Err(CopyError::Cancelled);
        }
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok((*hasher.finalize().as_bytes(), len)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buf[..n]);
        write(&buf[..n]).map_err(CopyError::Write)?;
        len += n as u64;
    }
}

/// Hashes `size` bytes of a file from its start.
pub(super) fn hash_fd(fd: impl AsFd, size: u64) -> io::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    let mut off = 0u64;
    let mut buf = vec![0u8; CHUNK];
    while off < size {
        let want = buf.len().min((size - off) as usize);
        let n = rustix::io::pread(&fd, &mut buf[..want], off)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being read"));
        }
        hasher.update(&buf[..n]);
        off += n as u64;
    }
    Ok(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};
    use std::os::fd::AsFd;

    #[test]
    fn copies_sparse_file_with_holes_and_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sp = dir.path().join("sparse");
        let mut f = std::fs::File::create(&sp).expect("create");
        f.seek(io::SeekFrom::Start(8 << 20)).expect("seek");
        f.write_all(b"middle").expect("write");
        f.set_len(20 << 20).expect("len");
        drop(f);
        let src = std::fs::File::open(&sp).expect("open");
        let dst = std::fs::File::create(dir.path().join("copy")).expect("create");
        let (hash, copied) = Copier::default().copy(src.as_fd(), dst.as_fd(), &Cancel::default()).expect("copy");
        let want = std::fs::read(&sp).expect("read");
        assert_eq!(std::fs::read(dir.path().join("copy")).expect("read"), want);
        assert_eq!(hash, *blake3::hash(&want).as_bytes());
        assert!(copied < want.len() as u64, "holes were copied as data");
        use std::os::unix::fs::MetadataExt;
        let blocks = std::fs::metadata(dir.path().join("copy")).expect("stat").blocks();
        assert!(blocks * 512 < 1 << 20, "copy is not sparse: {blocks} blocks");
    }
}

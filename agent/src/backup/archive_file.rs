//! The data file of an archive on a local destination, written with direct I/O.
//!
//! Why: a backup writes gigabytes once and does not read them back soon.
//! Through the page cache every byte is copied into freshly allocated pages
//! (on the reference VM that copy was half the CPU of an archived backup: the
//! host faults in the new memory) and the server's useful cache is evicted.
//! With `O_DIRECT` the bytes go from a few reused, aligned buffers to the disk,
//! on a thread of their own so that the archive writer hashes the next chunk
//! while the disk takes this one. Where the filesystem refuses direct I/O
//! (tmpfs, some network or FUSE filesystems), the file goes through the page
//! cache in pieces of [`WRITE_PIECE`], its writeback started every
//! [`WRITEBACK_STEP`] so that the fsync before the commit waits for the tail only.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rustix::fs::OFlags;
use rustix::io::Errno;

/// Alignment of direct writes: buffer address, file offset and length.
const ALIGN: usize = 4096;

/// Bytes gathered before one direct write.
const STAGE: usize = 1 << 20;

/// Aligned buffers: one being filled, the others queued for or in the disk.
const BUFFERS: usize = 3;

/// Page-cache mode: dirty bytes after which their writeback is started.
const WRITEBACK_STEP: u64 = 16 << 20;

/// Page-cache mode: largest single write. Measured on the reference VM
/// (ext4, 2 GiB): 1 MiB writes cost 3.1-4.7 s of CPU, 128-256 KiB writes
/// 0.5-0.8 s (large writes make the kernel allocate large folios).
const WRITE_PIECE: usize = 128 << 10;

/// A local archive's data file: direct I/O when the filesystem allows it.
pub(super) struct ArchiveFile {
    file: Arc<File>,
    /// Set while writes go to the direct-I/O thread.
    direct: Option<DirectStream>,
    /// Whether direct I/O was taken at all (for the log).
    was_direct: bool,
    cached: Cached,
}

/// The buffer being filled and the channels to the thread that writes them.
struct DirectStream {
    current: Stage,
    /// Bytes of `current` filled.
    staged: usize,
    full: SyncSender<(Stage, usize)>,
    free: Receiver<Stage>,
    io: JoinHandle<io::Result<()>>,
}

/// A buffer whose window `[start, start + STAGE)` is aligned.
struct Stage {
    buf: Vec<u8>,
    start: usize,
}

impl Stage {
    fn new() -> Self {
        let buf = vec![0u8; STAGE + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        Stage { buf, start }
    }

    fn window(&self, len: usize) -> &[u8] {
        &self.buf[self.start..self.start + len]
    }
}

/// Writes through the page cache, starting the writeback as it goes.
#[derive(Default)]
struct Cached {
    written: u64,
    /// Bytes whose writeback was started.
    handed: u64,
}

impl Cached {
    fn write_piece(&mut self, file: &File, buf: &[u8]) -> io::Result<usize> {
        let n = (&*file).write(&buf[..buf.len().min(WRITE_PIECE)])?;
        self.written += n as u64;
        if self.written - self.handed >= WRITEBACK_STEP {
            let len = std::num::NonZeroU64::new(self.written - self.handed);
            // On Linux, DONTNEED starts the writeback of dirty pages without
            // waiting. Advice only: the fsync before the commit makes the data durable.
            let _ = rustix::fs::fadvise(file, self.handed, len, rustix::fs::Advice::DontNeed);
            self.handed = self.written;
        }
        Ok(n)
    }

    fn write_all(&mut self, file: &File, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.write_piece(file, buf)?;
            buf = &buf[n..];
        }
        Ok(())
    }
}

impl ArchiveFile {
    /// Wraps a new, empty file opened for writing.
    pub(super) fn new(file: File) -> Self {
        Self::with_direct(file, true)
    }

    /// Wraps `file`, trying direct I/O only if `try_direct`.
    fn with_direct(file: File, try_direct: bool) -> Self {
        let file = Arc::new(file);
        let mut direct = None;
        if try_direct && set_direct(&file, true).is_ok() {
            direct = start_direct(file.clone());
            if direct.is_none() {
                // No I/O thread: page-cache writes, which O_DIRECT would refuse.
                let _ = set_direct(&file, false);
            }
        }
        ArchiveFile { file, was_direct: direct.is_some(), direct, cached: Cached::default() }
    }

    /// True if the writes bypassed the page cache (all but the unaligned tail).
    pub(super) fn was_direct(&self) -> bool {
        self.was_direct
    }

    /// The file, once flushed, for the caller to sync.
    pub(super) fn into_file(mut self) -> io::Result<Arc<File>> {
        self.flush()?;
        Ok(self.file)
    }
}

impl Write for ArchiveFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(mut d) = self.direct.take() else {
            return self.cached.write_piece(&self.file, buf);
        };
        let n = buf.len().min(STAGE - d.staged);
        let at = d.current.start + d.staged;
        d.current.buf[at..at + n].copy_from_slice(&buf[..n]);
        d.staged += n;
        if d.staged == STAGE && d.hand_on().is_err() {
            // The I/O thread stopped: its error says why.
            return Err(d.join().err().unwrap_or_else(|| io::Error::other("the archive's I/O thread stopped")));
        }
        self.direct = Some(d);
        Ok(n)
    }

    /// Writes everything, waiting for the I/O thread; an unaligned tail goes
    /// through the page cache, and so do later writes (correct if slower).
    fn flush(&mut self) -> io::Result<()> {
        let Some(d) = self.direct.take() else { return Ok(()) };
        d.finish()?;
        // An aligned stream leaves O_DIRECT on; later writes go through the cache.
        set_direct(&self.file, false)
    }
}

impl DirectStream {
    /// Hands the filled buffer to the I/O thread and takes a free one; `Err`
    /// when the thread has stopped.
    fn hand_on(&mut self) -> Result<(), ()> {
        if !self.send_current() {
            return Err(());
        }
        self.staged = 0;
        self.current = self.free.recv().map_err(|_| ())?;
        Ok(())
    }

    /// Sends the partly filled buffer, closes the stream and waits for the thread.
    fn finish(mut self) -> io::Result<()> {
        let sent = self.staged == 0 || self.send_current();
        let joined = self.join();
        if !sent && joined.is_ok() {
            return Err(io::Error::other("the archive's I/O thread stopped"));
        }
        joined
    }

    /// Sends the current buffer's staged bytes to the I/O thread; false when it has stopped.
    fn send_current(&mut self) -> bool {
        let current = std::mem::replace(&mut self.current, Stage { buf: Vec::new(), start: 0 });
        self.full.send((current, self.staged)).is_ok()
    }

    fn join(self) -> io::Result<()> {
        drop(self.full);
        self.io.join().unwrap_or_else(|_| Err(io::Error::other("the archive's I/O thread panicked")))
    }
}

/// Starts the I/O thread; `None` (page-cache writes) if it cannot start.
fn start_direct(file: Arc<File>) -> Option<DirectStream> {
    let (full, to_write) = sync_channel::<(Stage, usize)>(BUFFERS);
    let (give_back, free) = sync_channel::<Stage>(BUFFERS);
    for _ in 1..BUFFERS {
        give_back.send(Stage::new()).ok()?;
    }
    let writer_file = file.clone();
    let io = std::thread::Builder::new()
        .name("archive-io".into())
        .spawn(move || write_out(&writer_file, to_write, give_back))
        .ok()?;
    Some(DirectStream { current: Stage::new(), staged: 0, full, free, io })
}

/// The I/O thread: writes each buffer's first `len` bytes in order, directly
/// while the filesystem takes it, then through the page cache.
fn write_out(file: &File, full: Receiver<(Stage, usize)>, give_back: SyncSender<Stage>) -> io::Result<()> {
    // Whether the descriptor has O_DIRECT (turned off once, for good).
    let mut direct = true;
    let mut cached = Cached::default();
    for (stage, len) in full {
        let data = stage.window(len);
        let aligned = len / ALIGN * ALIGN;
        let mut done = 0;
        while direct && done < aligned {
            match rustix::io::write(file, &data[done..aligned]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(Errno::INTR) => {}
                // Alignment this filesystem does not take: the rest goes through the cache.
                Err(Errno::INVAL) => {
                    set_direct(file, false)?;
                    direct = false;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if done < len {
            if direct {
                set_direct(file, false)?;
                direct = false;
            }
            cached.write_all(file, &data[done..])?;
        }
        // The writer may have stopped taking buffers (end of stream).
        let _ = give_back.try_send(stage);
    }
    Ok(())
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
        let direct = f.was_direct();
        for piece in data.chunks(333_333) {
            f.write_all(piece).expect("write");
        }
        f.into_file().expect("flush").sync_all().expect("sync");
        (std::fs::read(&path).expect("read"), direct)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4099) as u8).collect()
    }

    #[test]
    fn every_byte_arrives_aligned_or_not() {
        let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
        for try_direct in [true, false] {
            for len in [0, 1, 4096, 4097, STAGE - 1, STAGE, STAGE + 512, 7 * STAGE + 1234] {
                let data = pattern(len);
                let (back, _) = round_trip(dir.path(), &data, try_direct);
                assert_eq!(back.len(), data.len(), "length of a {len}-byte archive (direct: {try_direct})");
                assert!(back == data, "bytes of a {len}-byte archive differ (direct: {try_direct})");
                std::fs::remove_file(dir.path().join("data.tar")).expect("remove");
            }
        }
    }

    #[test]
    fn writes_after_a_flush_still_arrive() {
        let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
        let path = dir.path().join("data.tar");
        let mut f = ArchiveFile::new(File::create_new(&path).expect("create"));
        let data = pattern(STAGE + 5000);
        // An aligned first part leaves nothing for the page cache before the flush.
        f.write_all(&data[..STAGE]).expect("write");
        f.flush().expect("flush");
        f.write_all(&data[STAGE..]).expect("write after flush");
        f.into_file().expect("flush").sync_all().expect("sync");
        assert!(std::fs::read(&path).expect("read") == data, "bytes differ");
    }

    #[test]
    fn direct_io_on_a_disk_filesystem() {
        // /var/tmp is on the machine's disk (ext4 here).
        let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
        let (back, direct) = round_trip(dir.path(), &pattern(2 * STAGE + 100), true);
        assert!(direct, "O_DIRECT was refused on {}", dir.path().display());
        assert_eq!(back, pattern(2 * STAGE + 100));
    }

    #[test]
    fn a_failing_disk_write_is_an_error_not_a_short_file() {
        // A read-only descriptor: every write fails (EBADF), from the I/O thread.
        let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
        let path = dir.path().join("data.tar");
        std::fs::write(&path, b"").expect("create");
        let mut f = ArchiveFile::new(File::open(&path).expect("open"));
        let wrote = (0..8).try_for_each(|_| f.write_all(&pattern(STAGE)));
        let flushed = f.flush();
        assert!(wrote.is_err() || flushed.is_err(), "writes to a read-only descriptor succeeded");
    }
}

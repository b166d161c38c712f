//! Streams a tar archive to its sink, compressing members in parallel.
//!
//! The caller (one thread) appends headers and file data; bytes collect in
//! chunks of exactly [`super::MEMBER_SIZE`]. A full chunk goes, for
//! Compressed, to a pool of compressor threads that each turn one chunk into
//! one gzip member, then to a writer thread that puts members back in order
//! and writes them; for Archived straight to the writer thread. Chunks come
//! from a fixed set of recycled buffers, so memory is bounded whatever the
//! archive's size, and nothing is staged on local disk.
//!
//! File data is hashed (blake3) on the writer thread, not the caller's: each
//! chunk says which bytes belong to which file, and each file's hash goes out
//! on the channel [`ArchiveWriter::hashes`] gives once its last byte is
//! written. The caller's thread, which walks and reads, is the critical path.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::tar::{self, BLOCK, TarKind};
use crate::entry::EntryMeta;
use crate::index::Member;
use crate::sync::lock;

/// How to compress, for Compressed snapshots.
#[derive(Debug, Clone, Copy)]
pub struct Compression {
    /// Deflate level, 1 (fast) to 12 (small); 6 matches gzip's default ratio.
    pub level: i32,
    /// Compressor threads.
    pub threads: usize,
}

/// What [`ArchiveWriter::finish`] reports.
#[derive(Debug)]
pub struct Finished<W> {
    /// The sink, flushed, for the caller to sync and close.
    pub sink: W,
    /// Bytes of the tar stream.
    pub stream_length: u64,
    /// Bytes written to the sink.
    pub written: u64,
    /// The gzip members (empty for an uncompressed archive).
    pub members: Vec<Member>,
}

/// Where an entry landed in the tar stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// Offset of its first header block.
    pub header_offset: u64,
    /// Offset of its data (just after its headers).
    pub data_offset: u64,
}

/// How the data of one file went.
#[derive(Debug)]
pub enum DataOutcome {
    /// All `size` bytes were read.
    Complete,
    /// The file ended early (it shrank) after this many bytes; the rest is zeros.
    Short(u64),
    /// Reading failed after this many bytes; the rest is zeros.
    Failed(u64, io::Error),
}

/// A file's hash, by the token its data was appended with.
pub type FileHash = (i64, [u8; 32]);

/// Bytes `start..end` of a chunk are data of the file `token`; `last` when
/// they end it (a file with no data has one empty last span).
struct Span {
    token: i64,
    start: usize,
    end: usize,
    last: bool,
}

/// A chunk of tar stream on its way to the sink.
struct Chunk {
    seq: u64,
    buf: Vec<u8>,
    len: usize,
    spans: Vec<Span>,
}

/// A chunk after compression (or as is, when not compressing).
struct Ready {
    seq: u64,
    input: Vec<u8>,
    uncompressed: usize,
    output: Option<Vec<u8>>,
    spans: Vec<Span>,
}

/// What the writer thread hands back: the sink, bytes written, and the members.
type WriterResult<W> = io::Result<(W, u64, Vec<Member>)>;

/// The writer of one archive.
pub struct ArchiveWriter<W: Write + Send + 'static> {
    chunk: Chunk,
    chunk_size: usize,
    /// Tar stream bytes handed on before the current chunk.
    handed: u64,
    free: Receiver<Vec<u8>>,
    to_compress: Option<SyncSender<Chunk>>,
    to_write: Option<SyncSender<Ready>>,
    compressors: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<WriterResult<W>>>,
    scratch: Vec<u8>,
    hashes: Option<Receiver<FileHash>>,
}

impl<W: Write + Send + 'static> ArchiveWriter<W> {
    /// Starts an archive on `sink`, gzip members of `member_size` bytes when `compression` is set.
    pub fn new(sink: W, compression: Option<Compression>, member_size: u64) -> Self {
        let chunk_size = member_size as usize;
        let threads = compression.map_or(0, |c| c.threads.max(1));
        // Enough buffers to keep every compressor busy while the caller fills
        // the next one, and a few more so that a slow write (a direct write
        // waits for the disk) or a burst of small files does not stall the other side.
        let buffers = 2 * threads + 6;
        let (free_tx, free) = sync_channel(buffers);
        for _ in 0..buffers.saturating_sub(1) {
            let _ = free_tx.send(vec![0u8; chunk_size]);
        }
        let (to_write, write_rx) = sync_channel::<Ready>(buffers);
        let compressing = compression.is_some();
        let (hash_tx, hashes) = channel();
        let writer = std::thread::Builder::new()
            .name("archive-writer".into())
            .spawn(move || write_in_order(sink, write_rx, free_tx, compressing, hash_tx))
            .ok();
        let mut compressors = Vec::new();
        let mut to_compress = None;
        if let Some(c) = compression {
            let (tx, rx) = sync_channel::<Chunk>(threads);
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..threads {
                let (rx, out) = (rx.clone(), to_write.clone());
                let level = c.level;
                if let Ok(h) = std::thread::Builder::new()
                    .name(format!("compress-{i}"))
                    .spawn(move || compress_chunks(level, &rx, &out))
                {
                    compressors.push(h);
                }
            }
            to_compress = Some(tx);
        }
        ArchiveWriter {
            chunk: Chunk { seq: 0, buf: vec![0u8; chunk_size], len: 0, spans: Vec::new() },
            chunk_size,
            handed: 0,
            free,
            to_compress,
            to_write: Some(to_write),
            compressors,
            writer,
            scratch: Vec::with_capacity(4 * BLOCK),
            hashes: Some(hashes),
        }
    }

    /// The hashes of the files appended, each sent once its last byte is
    /// written, in stream order; the channel closes with the writer thread
    /// (after [`Self::finish`], or when the writer is dropped). `None` once taken.
    pub fn hashes(&mut self) -> Option<Receiver<FileHash>> {
        self.hashes.take()
    }

    /// Offset of the next byte in the tar stream.
    pub fn position(&self) -> u64 {
        self.handed + self.chunk.len as u64
    }

    /// Appends the headers of an entry; its data (files) follows with [`Self::append_data`].
    pub fn append_entry(&mut self, path: &[u8], meta: &EntryMeta, kind: TarKind<'_>) -> io::Result<Placed> {
        let header_offset = self.position();
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        tar::encode_entry(&mut scratch, path, meta, kind);
        let r = self.write_bytes(&scratch);
        self.scratch = scratch;
        r?;
        Ok(Placed { header_offset, data_offset: self.position() })
    }

    /// Appends exactly `size` bytes of file data read from `fd` (zeros past an
    /// early end or a read error), then the block padding. The blake3 of what
    /// was read goes to [`Self::hashes`] under `token`.
    pub fn append_data(&mut self, fd: BorrowedFd<'_>, size: u64, token: i64) -> io::Result<DataOutcome> {
        let mut done = 0u64;
        let mut outcome = DataOutcome::Complete;
        let mut start = self.chunk.len;
        while done < size {
            if self.chunk.len == self.chunk_size {
                self.chunk.spans.push(Span { token, start, end: self.chunk.len, last: false });
                self.hand_on()?;
                start = 0;
            }
            let room = (self.chunk_size - self.chunk.len).min((size - done).min(usize::MAX as u64) as usize);
            let dst = &mut self.chunk.buf[self.chunk.len..self.chunk.len + room];
            match rustix::io::read(fd, &mut *dst) {
                Ok(0) => {
                    outcome = DataOutcome::Short(done);
                    break;
                }
                Ok(n) => {
                    self.chunk.len += n;
                    done += n as u64;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    outcome = DataOutcome::Failed(done, e.into());
                    break;
                }
            }
        }
        self.chunk.spans.push(Span { token, start, end: self.chunk.len, last: true });
        self.write_zeros(size - done)?;
        self.write_zeros(tar::padding(size) as u64)?;
        Ok(outcome)
    }

    /// Ends the stream (two zero blocks), flushes every member and stops the threads.
    pub fn finish(mut self) -> io::Result<Finished<W>> {
        self.write_zeros(2 * BLOCK as u64)?;
        if self.chunk.len > 0 {
            self.hand_on()?;
        }
        let stream_length = self.handed;
        self.to_compress = None;
        for h in self.compressors.drain(..) {
            let _ = h.join();
        }
        self.to_write = None;
        let (sink, written, members) = self.join_writer()?;
        Ok(Finished { sink, stream_length, written, members })
    }

    fn write_bytes(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.chunk.len == self.chunk_size {
                self.hand_on()?;
            }
            let n = (self.chunk_size - self.chunk.len).min(bytes.len());
            self.chunk.buf[self.chunk.len..self.chunk.len + n].copy_from_slice(&bytes[..n]);
            self.chunk.len += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn write_zeros(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            if self.chunk.len == self.chunk_size {
                self.hand_on()?;
            }
            let k = ((self.chunk_size - self.chunk.len) as u64).min(n) as usize;
            self.chunk.buf[self.chunk.len..self.chunk.len + k].fill(0);
            self.chunk.len += k;
            n -= k as u64;
        }
        Ok(())
    }

    /// Sends the current chunk on and takes a free buffer for the next.
    fn hand_on(&mut self) -> io::Result<()> {
        let Ok(buf) = self.free.recv() else { return Err(self.stopped()) };
        let next = Chunk { seq: self.chunk.seq + 1, buf, len: 0, spans: Vec::new() };
        let full = std::mem::replace(&mut self.chunk, next);
        self.handed += full.len as u64;
        let sent = match (&self.to_compress, &self.to_write) {
            (Some(c), _) => c.send(full).is_ok(),
            (None, Some(w)) => {
                let ready =
                    Ready { seq: full.seq, uncompressed: full.len, input: full.buf, output: None, spans: full.spans };
                w.send(ready).is_ok()
            }
            (None, None) => false,
        };
        if sent { Ok(()) } else { Err(self.stopped()) }
    }

    /// The writer thread's error, once a channel to it has closed.
    fn stopped(&mut self) -> io::Error {
        self.to_compress = None;
        self.to_write = None;
        match self.join_writer() {
            Err(e) => e,
            Ok(_) => io::Error::other("the archive writer stopped"),
        }
    }

    fn join_writer(&mut self) -> WriterResult<W> {
        match self.writer.take() {
            Some(h) => h.join().unwrap_or_else(|_| Err(io::Error::other("the archive writer panicked"))),
            None => Err(io::Error::other("the archive writer could not start or has stopped")),
        }
    }
}

/// A compressor thread: one chunk in, one gzip member out.
fn compress_chunks(level: i32, rx: &Mutex<Receiver<Chunk>>, out: &SyncSender<Ready>) {
    let lvl = libdeflater::CompressionLvl::new(level).unwrap_or_default();
    let mut compressor = libdeflater::Compressor::new(lvl);
    loop {
        let chunk = lock(rx).recv();
        let Ok(chunk) = chunk else { return };
        let mut member = vec![0u8; compressor.gzip_compress_bound(chunk.len)];
        let output = match compressor.gzip_compress(&chunk.buf[..chunk.len], &mut member) {
            Ok(n) => {
                member.truncate(n);
                Some(member)
            }
            // Cannot happen with a buffer of the bound's size; the writer reports it.
            Err(_) => None,
        };
        let ready = Ready {
            seq: chunk.seq,
            uncompressed: chunk.len,
            input: chunk.buf,
            output: output.or(Some(vec![])),
            spans: chunk.spans,
        };
        if out.send(ready).is_err() {
            return;
        }
    }
}

/// The writer thread: writes chunks in sequence order and records members.
fn write_in_order<W: Write>(
    mut sink: W,
    rx: Receiver<Ready>,
    free: SyncSender<Vec<u8>>,
    compressing: bool,
    hashes: Sender<FileHash>,
) -> WriterResult<W> {
    let mut waiting = BTreeMap::new();
    // Files are consecutive in the stream: one is being hashed at a time.
    let mut hasher = blake3::Hasher::new();
    let mut next = 0u64;
    let (mut written, mut stream) = (0u64, 0u64);
    let mut members = Vec::new();
    for ready in rx {
        waiting.insert(ready.seq, ready);
        while let Some(r) = waiting.remove(&next) {
            let bytes = match &r.output {
                Some(out) if out.is_empty() => return Err(io::Error::other("gzip compression failed")),
                Some(out) => out.as_slice(),
                None => &r.input[..r.uncompressed],
            };
            sink.write_all(bytes)?;
            if compressing {
                members.push(Member {
                    compressed_offset: written,
                    compressed_length: bytes.len() as u64,
                    uncompressed_offset: stream,
                    uncompressed_length: r.uncompressed as u64,
                });
            }
            for span in &r.spans {
                hasher.update(&r.input[span.start..span.end]);
                if span.last {
                    // The receiver may be gone (a caller that does not want hashes).
                    let _ = hashes.send((span.token, *hasher.finalize().as_bytes()));
                    hasher.reset();
                }
            }
            written += bytes.len() as u64;
            stream += r.uncompressed as u64;
            next += 1;
            // The caller may have finished and dropped its end: recycling is best effort.
            let _ = free.try_send(r.input);
        }
    }
    sink.flush()?;
    Ok((sink, written, members))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{EntryKind, Xattrs};

    fn file_meta(size: u64) -> EntryMeta {
        EntryMeta {
            kind: EntryKind::File,
            mode: 0o600,
            uid: 0,
            gid: 0,
            size,
            mtime_ns: 1_000_000_001,
            atime_ns: 0,
            ctime_ns: 0,
            rdev: 0,
            target: None,
            xattrs: Xattrs::default(),
        }
    }

    fn write_archive(compression: Option<Compression>, data: &[u8]) -> (Vec<u8>, Finished<Vec<u8>>, Placed) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        std::fs::write(&p, data).expect("write");
        let f = std::fs::File::open(&p).expect("open");
        let mut w = ArchiveWriter::new(Vec::new(), compression, 4096);
        let hashes = w.hashes().expect("hashes");
        let placed = w.append_entry(b"f", &file_meta(data.len() as u64), TarKind::File { size: data.len() as u64 });
        let placed = placed.expect("header");
        let out = w.append_data(std::os::fd::AsFd::as_fd(&f), data.len() as u64, 7).expect("data");
        assert!(matches!(out, DataOutcome::Complete));
        // An empty file after it: its hash is the empty input's.
        w.append_entry(b"e", &file_meta(0), TarKind::File { size: 0 }).expect("header");
        w.append_data(std::os::fd::AsFd::as_fd(&f), 0, 8).expect("no data");
        let fin = w.finish().expect("finish");
        let got: Vec<FileHash> = hashes.iter().collect();
        assert_eq!(got, vec![(7, *blake3::hash(data).as_bytes()), (8, *blake3::hash(b"").as_bytes())]);
        (data.to_vec(), fin, placed)
    }

    #[test]
    fn members_cover_the_stream_in_order() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (data, fin, placed) = write_archive(Some(Compression { level: 6, threads: 3 }), &data);
        assert!(fin.members.len() > 10, "{} members", fin.members.len());
        let mut off = (0, 0);
        for m in &fin.members {
            assert_eq!((m.compressed_offset, m.uncompressed_offset), off);
            off = (off.0 + m.compressed_length, off.1 + m.uncompressed_length);
        }
        assert_eq!(off, (fin.written, fin.stream_length));
        assert_eq!(fin.stream_length % BLOCK as u64, 0);
        // A standard multi-member gzip stream: decoders read the members as one.
        let mut stream = Vec::new();
        for m in &fin.members {
            let part = &fin.sink[m.compressed_offset as usize..(m.compressed_offset + m.compressed_length) as usize];
            let mut out = vec![0u8; m.uncompressed_length as usize];
            let n = libdeflater::Decompressor::new().gzip_decompress(part, &mut out).expect("member");
            assert_eq!(n, out.len());
            stream.extend_from_slice(&out);
        }
        let start = placed.data_offset as usize;
        assert_eq!(&stream[start..start + data.len()], &data[..]);
    }

    #[test]
    fn uncompressed_is_the_plain_stream() {
        let data = vec![7u8; 10_000];
        let (data, fin, placed) = write_archive(None, &data);
        assert!(fin.members.is_empty());
        assert_eq!(fin.written, fin.stream_length);
        assert_eq!(fin.sink.len() as u64, fin.stream_length);
        let start = placed.data_offset as usize;
        assert_eq!(&fin.sink[start..start + data.len()], &data[..]);
        let padded = (start + data.len()).next_multiple_of(BLOCK);
        assert!(fin.sink[start + data.len()..padded].iter().all(|&b| b == 0));
        // Then the empty file's headers and the two zero blocks that end the stream.
        let mut empty = Vec::new();
        tar::encode_entry(&mut empty, b"e", &file_meta(0), TarKind::File { size: 0 });
        assert_eq!(&fin.sink[padded..padded + empty.len()], &empty[..]);
        assert_eq!(fin.sink.len(), padded + empty.len() + 2 * BLOCK);
        assert!(fin.sink[padded + empty.len()..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_failing_sink_is_an_error_not_a_hang() {
        #[derive(Debug)]
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(28))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = ArchiveWriter::new(Full, Some(Compression { level: 1, threads: 2 }), 4096);
        let big = file_meta(1 << 20);
        let zero = std::fs::File::open("/dev/zero").expect("/dev/zero");
        let r = w
            .append_entry(b"big", &big, TarKind::File { size: 1 << 20 })
            .and_then(|_| w.append_data(std::os::fd::AsFd::as_fd(&zero), 1 << 20, 1));
        let err = match r {
            Err(e) => e,
            Ok(_) => w.finish().expect_err("full disk"),
        };
        assert_eq!(err.raw_os_error(), Some(28), "{err}");
    }
}

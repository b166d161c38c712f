//! Reads over synthetic archives: a tar-shaped stream built here, stored as
//! `data.tar` or cut into small gzip members as `data.tar.gz`.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::index::IndexWriter;

/// Small members so that files span several of them.
pub(crate) const MEMBER: usize = 4096;

/// One file of the synthetic stream: where its data starts and what it is.
pub(crate) struct Stored {
    pub(crate) offset: u64,
    pub(crate) data: Vec<u8>,
}

/// Deterministic pseudo-random bytes (xorshift), so a misplaced read shows.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A stream shaped like tar: a 512-byte header per file, data padded to 512,
/// two zero blocks at the end.
pub(crate) fn stream(sizes: &[usize]) -> (Vec<u8>, Vec<Stored>) {
    let mut out = Vec::new();
    let mut files = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let mut header = vec![0u8; 512];
        let name = format!("file{i}");
        header[..name.len()].copy_from_slice(name.as_bytes());
        out.extend_from_slice(&header);
        let data = bytes(i as u64 + 1, size);
        files.push(Stored { offset: out.len() as u64, data: data.clone() });
        out.extend_from_slice(&data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    (out, files)
}

/// Writes `stream` as an archived snapshot in `dir`.
pub(crate) fn write_tar(dir: &Path, stream: &[u8]) {
    std::fs::write(dir.join(TAR_FILE), stream).expect("write tar");
    IndexWriter::create(&dir.join("index.sqlite"), "archived", "s").expect("index").finish().expect("finish");
}

/// Writes `stream` as a compressed snapshot in `dir`; returns the members.
pub(crate) fn write_tgz(dir: &Path, stream: &[u8]) -> Vec<Member> {
    let mut w = IndexWriter::create(&dir.join("index.sqlite"), "compressed", "s").expect("index");
    let members = write_members(dir, stream, &mut w);
    w.finish().expect("finish");
    members
}

/// Writes `stream` cut into gzip members as `dir`/data.tar.gz, and the members table to `w`.
pub(crate) fn write_members(dir: &Path, stream: &[u8], w: &mut IndexWriter) -> Vec<Member> {
    let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::default());
    let mut out = Vec::new();
    let mut members = Vec::new();
    for (k, chunk) in stream.chunks(MEMBER).enumerate() {
        let mut packed = vec![0u8; c.gzip_compress_bound(chunk.len())];
        let n = c.gzip_compress(chunk, &mut packed).expect("compress");
        let m = Member {
            compressed_offset: out.len() as u64,
            compressed_length: n as u64,
            uncompressed_offset: (k * MEMBER) as u64,
            uncompressed_length: chunk.len() as u64,
        };
        w.insert_member(
            k as i64,
            (m.compressed_offset, m.compressed_length),
            (m.uncompressed_offset, m.uncompressed_length),
        )
        .expect("member");
        out.extend_from_slice(&packed[..n]);
        members.push(m);
    }
    std::fs::write(dir.join(TGZ_FILE), &out).expect("write tgz");
    members
}

fn open(dir: &Path, structure: Structure, cache: &MemberCache) -> Arc<Archive> {
    let index = IndexReader::open(&dir.join("index.sqlite")).expect("open index");
    Archive::open(dir, structure, &index, cache).expect("open archive")
}

fn read(c: &ArchiveContent, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let n = c.read_at(offset, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// The expected result of reading `len` bytes at `offset` of `data`.
fn expect(data: &[u8], offset: u64, len: usize) -> &[u8] {
    let from = (offset as usize).min(data.len());
    &data[from..(from + len).min(data.len())]
}

const SIZES: &[usize] = &[0, 1, 100, 511, 512, 4096, 5000, 20_000, 70_000];

fn check_random_reads(structure: Structure) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, files) = stream(SIZES);
    match structure {
        Structure::Compressed => drop(write_tgz(dir.path(), &s)),
        _ => write_tar(dir.path(), &s),
    }
    let cache = MemberCache::new(8 * MEMBER);
    let archive = open(dir.path(), structure, &cache);
    let mut rng = bytes(99, 4000).into_iter();
    let mut next = || u64::from(rng.next().unwrap_or(0)) << 8 | u64::from(rng.next().unwrap_or(0));
    for f in &files {
        let c = archive.content(f.offset, f.data.len() as u64);
        assert_eq!(read(&c, 0, f.data.len() + 10).expect("whole"), f.data);
        for _ in 0..100 {
            let size = f.data.len() as u64 + 1;
            let offset = (next() << 2) % size.max(1);
            let len = (next() % 9000) as usize;
            assert_eq!(read(&c, offset, len).expect("read"), expect(&f.data, offset, len), "at {offset}+{len}");
        }
        assert!(read(&c, f.data.len() as u64 + 5, 10).expect("past end").is_empty());
    }
    assert!(cache.used_bytes() <= 8 * MEMBER);
}

#[test]
fn random_reads_of_archived() {
    check_random_reads(Structure::Archived);
}

#[test]
fn random_reads_of_compressed() {
    check_random_reads(Structure::Compressed);
}

#[test]
fn reads_span_members_and_the_cache_stays_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, files) = stream(&[70_000, 30_000]);
    let members = write_tgz(dir.path(), &s);
    assert!(members.len() > 20);
    let cache = MemberCache::new(3 * MEMBER);
    let archive = open(dir.path(), Structure::Compressed, &cache);
    let f = &files[0];
    let c = archive.content(f.offset, f.data.len() as u64);
    // Across the boundary between members 1 and 2, and a read spanning five members.
    let boundary = 2 * MEMBER as u64 - f.offset - 10;
    assert_eq!(read(&c, boundary, 20).expect("read"), expect(&f.data, boundary, 20));
    assert_eq!(read(&c, 100, 5 * MEMBER).expect("read"), expect(&f.data, 100, 5 * MEMBER));
    assert!(cache.used_bytes() <= 3 * MEMBER);
    // Sequential reads through the whole file never keep more than the bound.
    let mut off = 0;
    while off < f.data.len() as u64 {
        assert_eq!(read(&c, off, 1000).expect("read"), expect(&f.data, off, 1000));
        assert!(cache.used_bytes() <= 3 * MEMBER);
        off += 1000;
    }
    // The second file's members were evicted by the sequential pass at least in part; still readable.
    let g = &files[1];
    let c = archive.content(g.offset, g.data.len() as u64);
    assert_eq!(read(&c, 0, g.data.len()).expect("read"), g.data);
}

#[test]
fn a_damaged_member_fails_only_its_ranges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, files) = stream(&[40_000]);
    let members = write_tgz(dir.path(), &s);
    let bad = 4;
    let m = members[bad];
    let path = dir.path().join(TGZ_FILE);
    let mut gz = std::fs::read(&path).expect("read tgz");
    gz[(m.compressed_offset + m.compressed_length / 2) as usize] ^= 0x55;
    std::fs::write(&path, &gz).expect("write tgz");

    let cache = MemberCache::new(64 * MEMBER);
    let archive = open(dir.path(), Structure::Compressed, &cache);
    let f = &files[0];
    let c = archive.content(f.offset, f.data.len() as u64);
    let in_bad = m.uncompressed_offset - f.offset + 100;
    for _ in 0..2 {
        let e = read(&c, in_bad, 10).expect_err("damaged member");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // A read that starts before the damaged member and runs into it fails too.
        assert!(read(&c, in_bad - 1000, 2000).is_err());
    }
    // Before and after it, reads succeed.
    for off in [0, in_bad - 1000, m.uncompressed_offset - f.offset + m.uncompressed_length + 5] {
        let len = if off == in_bad - 1000 { 500 } else { 3000 };
        assert_eq!(read(&c, off, len).expect("intact"), expect(&f.data, off, len), "at {off}");
    }
    // Damage is remembered: no second decompression attempt.
    let loads = cache.loads();
    assert!(read(&c, in_bad, 10).is_err());
    assert_eq!(cache.loads(), loads);
}

#[test]
fn a_truncated_data_file_fails_the_reads_past_its_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, files) = stream(&[30_000]);
    let members = write_tgz(dir.path(), &s);
    let path = dir.path().join(TGZ_FILE);
    let gz = std::fs::read(&path).expect("read");
    let cut = members[5].compressed_offset + 3;
    std::fs::write(&path, &gz[..cut as usize]).expect("write");
    // The same index serves both: the archived reader does not read its members.
    std::fs::write(dir.path().join(TAR_FILE), &s[..20_000]).expect("write tar");
    let f = &files[0];

    let cache = MemberCache::default();
    for structure in [Structure::Compressed, Structure::Archived] {
        let archive = open(dir.path(), structure, &cache);
        let c = archive.content(f.offset, f.data.len() as u64);
        assert_eq!(read(&c, 0, 1000).expect("intact"), &f.data[..1000]);
        assert!(read(&c, 25_000, 1000).is_err(), "{structure:?}");
    }
}

#[test]
fn a_malformed_members_table_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = IndexWriter::create(&dir.path().join("index.sqlite"), "compressed", "s").expect("index");
    w.insert_member(0, (0, 10), (0, 100)).expect("member");
    w.insert_member(1, (10, 10), (90, 100)).expect("member");
    w.finish().expect("finish");
    std::fs::write(dir.path().join(TGZ_FILE), b"").expect("write");
    let index = IndexReader::open(&dir.path().join("index.sqlite")).expect("open index");
    assert!(Archive::open(dir.path(), Structure::Compressed, &index, &MemberCache::default()).is_err());
}

#[test]
fn sequential_reads_inflate_the_next_member_ahead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, files) = stream(&[20_000]);
    write_tgz(dir.path(), &s);
    let cache = MemberCache::default();
    let archive = open(dir.path(), Structure::Compressed, &cache);
    let f = &files[0];
    let c = archive.content(f.offset, f.data.len() as u64);
    // The last 100 bytes of member 1 (the file starts in member 0).
    let off = 2 * MEMBER as u64 - f.offset - 100;
    read(&c, off, 100).expect("read");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cache.contains((archive.identity, 2)) {
        assert!(Instant::now() < deadline, "member 2 was not read ahead");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The first half of a member does not trigger it.
    read(&c, 3 * MEMBER as u64 - f.offset + 10, 10).expect("read");
    std::thread::sleep(Duration::from_millis(100));
    assert!(!cache.contains((archive.identity, 4)));
}

#[test]
fn parallel_readers_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, files) = stream(&[200_000]);
    write_tgz(dir.path(), &s);
    let cache = MemberCache::new(10 * MEMBER);
    let archive = open(dir.path(), Structure::Compressed, &cache);
    let f = Arc::new(files.into_iter().next().expect("one file"));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let c = archive.content(f.offset, f.data.len() as u64);
            let f = f.clone();
            std::thread::spawn(move || {
                for (i, r) in bytes(t + 7, 400).chunks(2).enumerate() {
                    let off = (u64::from(r[0]) << 10 | u64::from(r[1]) << 2 | i as u64) % f.data.len() as u64;
                    assert_eq!(read(&c, off, 6000).expect("read"), expect(&f.data, off, 6000));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("reader thread");
    }
    assert!(cache.used_bytes() <= 10 * MEMBER);
}

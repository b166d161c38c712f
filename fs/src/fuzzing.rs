//! Fuzzing entry points: one function per fuzz target of this crate.
//!
//! Everything a destination holds may have been written by someone hostile,
//! so every reader of it must refuse bad bytes without panicking, hanging or
//! allocating without bound. Each `pub fn` here feeds arbitrary bytes to one
//! such reader; the cargo-fuzz targets in `fuzz/` call them, and
//! `tests/fuzz_corpus.rs` replays the checked-in corpus through them on
//! stable Rust. Where a result can be predicted (a valid input, a round
//! trip), it is asserted: a wrong answer is a finding as much as a panic.
//!
//! A harness that cannot build its fixture (no temporary directory) panics:
//! that is a broken harness, reported loudly rather than fuzzing nothing.

#![doc(hidden)]

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::types::Value;

use crate::archive::check::{Opened, check_with};
use crate::archive::reader::{Archive, MemberCache};
use crate::archive::tar::{self, BLOCK, TarKind};
use crate::archive::{TAR_FILE, TGZ_FILE};
use crate::check::Findings;
use crate::entry::{EntryKind, EntryMeta, Xattrs};
use crate::index::{IndexEntry, IndexReader, IndexWriter, Member, ROOT_ID};
use crate::manifest::{Manifest, Structure};
use crate::marker::Marker;
use crate::mount::content::ReadAt;

mod seeds;
pub use seeds::seeds;

/// A fuzz target: arbitrary bytes in, a panic when they break a reader.
pub type Target = fn(&[u8]);

/// Every fuzz target of this crate, by name (the name of its file in
/// `fuzz/fuzz_targets/` and of its corpus in `fuzz/corpus/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("index_rows", index_rows),
    ("index_file", index_file),
    ("manifest", manifest),
    ("marker", marker),
    ("tar", tar),
    ("archive_check_tar", archive_check_tar),
    ("archive_check_gz", archive_check_gz),
    ("archive_members", archive_members),
    ("xattrs", xattrs),
    ("ssh_output", ssh_output),
];

/// Runs every file of `fuzz_dir/corpus/<target>/` through `run` (the corpus
/// tests of both crates replay with it); panics naming the input that
/// breaks it, or when the corpus is missing or empty.
pub fn replay_corpus(fuzz_dir: &Path, target: &str, run: Target) {
    let dir = fuzz_dir.join("corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries.map(|e| e.expect("corpus entry").path()).filter(|p| p.is_file()).collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    for path in files {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if std::panic::catch_unwind(|| run(&bytes)).is_err() {
            panic!("{} fails target {target}", path.display());
        }
    }
    let file = fuzz_dir.join("fuzz_targets").join(format!("{target}.rs"));
    assert!(file.is_file(), "target {target} has no {}", file.display());
}

/// Writes `seeds` (target, name, bytes) as `fuzz_dir/corpus/<target>/seed-<name>`.
pub fn write_seeds(fuzz_dir: &Path, seeds: Vec<(&'static str, String, Vec<u8>)>) {
    for (target, name, bytes) in seeds {
        let dir = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
    }
}

/// Step budget of the index readers here: a step of a query over a few
/// KiB that takes longer is a hang worth reporting, not a slow disk.
const STEP_BUDGET: Duration = Duration::from_secs(2);

/// Bytes of tar stream per gzip member in the archive fixtures: small, so
/// that a few KiB of stream make several members.
const FIXTURE_MEMBER: usize = 1024;

/// Reads fuzz input front to back; past its end every value is zero.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let b = self.bytes(N);
        a[..b.len()].copy_from_slice(b);
        a
    }

    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
}

/// A file of this process in the temporary directory, removed when dropped.
/// `bench/fuzz.sh` points `TMPDIR` at a RAM disk: targets write one per run.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Scratch(std::env::temp_dir().join(format!("hindsight-fuzz-{}-{n}-{what}", std::process::id())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Opens the index at `path` for a target, with the short step budget.
fn open_index(path: &Path) -> crate::Result<IndexReader> {
    let mut r = IndexReader::open(path)?;
    r.set_step_budget(STEP_BUDGET);
    Ok(r)
}

/// A row of `entries`, its 22 columns in table order.
const INSERT_ENTRY: &str = "INSERT INTO entries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
     ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)";

/// Keys of the index's `meta` table a record can set.
const META_KEYS: &[&str] = &["schema", "structure", "snapshot", "data_file", "stream_length", "member_size", "x"];

/// An index written with the real schema, rows of fuzz-chosen values of any
/// SQLite type, then read through [`IndexReader`] and checked as an archive.
///
/// Input: a flags byte (bits 0-1: the structure the check assumes, bit 2:
/// whether the data file opens), then records until the end. A record is a
/// tag byte, `% 4`: 0 an `entries` row (3 bytes of column mask, then a value
/// per masked column), 1 a `members` row (1 byte of mask), 2 a `meta` row (a
/// key byte, a value), 3 an `entries` row of defaults. Unmasked columns get a
/// plausible default. A value is a tag byte whose low 3 bits say: 0 or 7
/// NULL, 1 or 6 a small integer (`tag >> 3` - 8), 2 an 8-byte integer, 3 an
/// 8-byte real, 4 text, 5 a blob (text and blobs: a length byte, then the bytes).
pub fn index_rows(data: &[u8]) {
    let mut input = Input(data);
    let flags = input.u8();
    let file = Scratch::new("rows.sqlite");
    std::fs::write(&file.0, blank_index()).unwrap_or_else(|e| panic!("{}: {e}", file.0.display()));
    let mut ids = vec![-1, 0, 1, 2, 3, i64::MIN, i64::MAX];
    {
        let conn = rusqlite::Connection::open(&file.0).expect("open the blank index");
        conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; BEGIN").expect("begin");
        let (mut entries, mut members) = (0i64, 0i64);
        while !input.is_empty() {
            let tag = input.u8();
            // Rows that break a constraint are refused by SQLite, as they
            // would be for whoever wrote a hostile index: skipped.
            let _ = match tag % 4 {
                0 | 3 => {
                    let mask =
                        if tag % 4 == 0 { u32::from_le_bytes([input.u8(), input.u8(), input.u8(), 0]) } else { 0 };
                    let mut row = default_entry(entries);
                    for (i, v) in row.iter_mut().enumerate() {
                        if mask & (1 << i) != 0 {
                            *v = value(&mut input);
                        }
                    }
                    if let Value::Integer(id) = row[0] {
                        ids.push(id);
                    }
                    entries += 1;
                    conn.execute(INSERT_ENTRY, rusqlite::params_from_iter(row))
                }
                1 => {
                    let mask = input.u8();
                    let mut row = [members, 0, 0, 0, 0].map(Value::Integer);
                    for (i, v) in row.iter_mut().enumerate() {
                        if mask & (1 << i) != 0 {
                            *v = value(&mut input);
                        }
                    }
                    members += 1;
                    conn.execute("INSERT INTO members VALUES (?1, ?2, ?3, ?4, ?5)", rusqlite::params_from_iter(row))
                }
                _ => {
                    let key = META_KEYS[usize::from(input.u8()) % META_KEYS.len()];
                    let v = value(&mut input);
                    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", rusqlite::params![key, v])
                }
            };
        }
        conn.execute_batch("COMMIT").expect("commit");
    }
    let Ok(index) = open_index(&file.0) else { return };
    drop(file);
    ids.sort_unstable();
    ids.dedup();
    // Each costs up to 4096 lookups (a parent chain that loops): enough of them.
    ids.truncate(24);
    query_everything(&index, &ids);
    let structure = match flags & 3 {
        0 => None,
        2 => Some(Structure::Compressed),
        _ => Some(Structure::Archived),
    };
    if let Some(structure) = structure {
        let opens = flags & 4 != 0;
        let mut f = Findings::default();
        let mut open = |_: &str| -> Opened {
            if opens { Ok((Box::new(Cursor::new(vec![0u8; 2048])), 2048)) } else { Err("absent".into()) }
        };
        check_with(&mut open, &index, structure, true.into(), &mut f);
    }
}

/// The bytes of `index.sqlite` as a whole, opened and queried.
pub fn index_file(data: &[u8]) {
    let file = Scratch::new("file.sqlite");
    std::fs::write(&file.0, data).unwrap_or_else(|e| panic!("{}: {e}", file.0.display()));
    let Ok(index) = open_index(&file.0) else { return };
    drop(file);
    query_everything(&index, &[-1, 0, 1, 2, 3, 4, 5, 100, i64::MIN, i64::MAX]);
    let structure = index.meta("structure").ok().flatten().and_then(|s| Structure::parse(&s));
    if let Some(structure) = structure.filter(|s| *s != Structure::Incremental) {
        let mut f = Findings::default();
        check_with(&mut |_| Err("absent".into()), &index, structure, true.into(), &mut f);
    }
}

/// Every query of [`IndexReader`], with `ids` as ids and parents.
fn query_everything(index: &IndexReader, ids: &[i64]) {
    for &id in ids {
        let _ = index.get(id);
        let _ = index.path_of(id);
        let _ = index.children(id);
        let _ = index.children_after(id, 0, 3);
        let _ = index.children_after(id, i64::MIN, u32::MAX);
        let _ = index.lookup(id, b"e1");
        let _ = index.lookup(id, b"");
    }
    let _ = index.for_each(|_| Ok(()));
    let _ = index.members();
    let _ = index.len();
    let _ = index.is_empty();
    for key in META_KEYS {
        let _ = index.meta(key);
    }
}

/// A finished index without rows (the real schema and meta), built once.
fn blank_index() -> &'static [u8] {
    static BLANK: OnceLock<Vec<u8>> = OnceLock::new();
    BLANK.get_or_init(|| {
        let file = Scratch::new("blank.sqlite");
        let w = IndexWriter::create(&file.0, "incremental", "2026-01-01T000000Z").expect("create the blank index");
        w.finish().expect("finish the blank index");
        std::fs::read(&file.0).expect("read the blank index")
    })
}

/// The columns of an unremarkable `entries` row number `n` (the root for 0).
fn default_entry(n: i64) -> [Value; 22] {
    let int = Value::Integer;
    let (parent, name, kind) = if n == 0 { (0, Vec::new(), 2) } else { (ROOT_ID, format!("e{n}").into_bytes(), 1) };
    let mut row = [const { Value::Null }; 22];
    row[..13].clone_from_slice(&[
        int(n + 1),
        int(parent),
        Value::Blob(name),
        int(kind),
        int(0o644),
        int(0),
        int(0),
        int(0),
        int(0),
        int(0),
        int(0),
        int(0),
        int(1),
    ]);
    row
}

/// One SQLite value of any type, as [`index_rows`] describes.
fn value(input: &mut Input<'_>) -> Value {
    let tag = input.u8();
    match tag & 7 {
        0 | 7 => Value::Null,
        1 | 6 => Value::Integer(i64::from(tag >> 3) - 8),
        2 => Value::Integer(input.u64() as i64),
        3 => Value::Real(f64::from_bits(input.u64())),
        4 => {
            let n = input.u8();
            Value::Text(String::from_utf8_lossy(input.bytes(n.into())).into_owned())
        }
        _ => {
            let n = input.u8();
            Value::Blob(input.bytes(n.into()).to_vec())
        }
    }
}

/// `snapshot.json`: parsed; a parsed manifest names itself, and survives
/// writing and parsing again unchanged.
pub fn manifest(data: &[u8]) {
    let at = Path::new("snapshot.json");
    let Ok(m) = Manifest::parse(at, data) else { return };
    assert!(m.check_identity(&m.job, &m.name, at).is_ok(), "a manifest does not match its own names");
    let other = format!("{}x", m.name);
    assert!(m.check_identity(&m.job, &other, at).is_err(), "a manifest matches another snapshot's name");
    assert_eq!(Structure::parse(m.structure.as_str()), Some(m.structure));
    let again = Manifest::parse(at, &m.to_bytes()).expect("a manifest written back parses");
    assert_eq!(again, m, "a manifest changed through writing and parsing");
}

/// `HINDSIGHT`: parsed; a parsed marker survives writing and parsing again.
pub fn marker(data: &[u8]) {
    let at = Path::new("HINDSIGHT");
    let Ok(m) = Marker::parse(at, data) else { return };
    assert!(crate::names::check_destination_id(&m.destination_id).is_ok(), "a marker with a bad id parsed");
    let again = Marker::parse(at, &m.to_bytes()).expect("a marker written back parses");
    assert_eq!(again, m, "a marker changed through writing and parsing");
}

/// The xattrs column of an index row: decoded; what decodes encodes back to
/// the same bytes.
pub fn xattrs(data: &[u8]) {
    let Some(x) = Xattrs::decode(data) else { return };
    match x.encode() {
        Some(bytes) => assert_eq!(bytes, data, "xattrs changed through decoding and encoding"),
        None => assert!(data.is_empty(), "non-empty bytes decoded to no xattrs"),
    }
}

/// Tar headers: the input parsed as a header block, as PAX records and as a
/// path; then, read as the fields of an entry, encoded and parsed back, which
/// must give the path, link and size encoded.
pub fn tar(data: &[u8]) {
    if let Ok(h) = tar::parse_header(data) {
        let _ = tar::is_safe_path(&h.path);
        let body = data.get(BLOCK..).unwrap_or_default();
        let _ = tar::parse_pax(&body[..body.len().min(h.size.min(usize::MAX as u64) as usize)]);
    }
    let _ = tar::parse_pax(data);
    let _ = tar::is_safe_path(data);

    let mut input = Input(data);
    let kind_byte = input.u8();
    // Names from a source never hold NUL: the ustar fields end at one.
    let no_nul = |b: &[u8]| -> Vec<u8> { b.iter().map(|&c| if c == 0 { b'@' } else { c }).collect() };
    let path_len = usize::from(input.u16() % 400);
    let path = no_nul(input.bytes(path_len));
    let link_len = usize::from(input.u8());
    let link = no_nul(input.bytes(link_len));
    let size = if kind_byte & 0x80 != 0 { input.u64() } else { u64::from(input.u16()) };
    let mut meta = EntryMeta {
        kind: EntryKind::File,
        mode: input.u32(),
        uid: input.u32(),
        gid: input.u32(),
        size,
        mtime_ns: input.u64() as i64,
        atime_ns: input.u64() as i64,
        ctime_ns: 0,
        rdev: input.u64(),
        target: None,
        xattrs: Xattrs::default(),
    };
    let names: [&[u8]; 3] = [b"system.posix_acl_access", b"system.posix_acl_default", b"user.fuzz"];
    for _ in 0..input.u8() % 4 {
        let name = names[usize::from(input.u8()) % names.len()].to_vec();
        let len = usize::from(input.u8());
        meta.xattrs.0.push((name, input.bytes(len).to_vec()));
    }
    let kind = match kind_byte % 7 {
        0 => TarKind::File { size },
        1 => TarKind::Hardlink { first: &link },
        2 => TarKind::Dir,
        3 => TarKind::Symlink { target: &link },
        4 => TarKind::CharDev,
        5 => TarKind::BlockDev,
        _ => TarKind::Fifo,
    };
    let mut out = Vec::new();
    tar::encode_entry(&mut out, &path, &meta, kind);
    assert_eq!(out.len() % BLOCK, 0, "headers are not whole blocks");
    let first = tar::parse_header(&out).expect("an encoded header parses");
    let (ustar, pax) = if first.flag == b'x' {
        let records = out.get(BLOCK..BLOCK + first.size as usize).and_then(tar::parse_pax);
        let records = records.expect("encoded PAX records parse");
        (&out[BLOCK + (first.size as usize).next_multiple_of(BLOCK)..], records)
    } else {
        (&out[..], Vec::new())
    };
    assert_eq!(ustar.len(), BLOCK, "one ustar block after the PAX header");
    let header = tar::parse_header(ustar).expect("an encoded ustar header parses");
    let record = |k: &[u8]| pax.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(record(b"path").unwrap_or(header.path), path, "the path does not read back");
    if let TarKind::Hardlink { .. } | TarKind::Symlink { .. } = kind {
        let field = &ustar[157..257];
        let stored = field[..field.iter().position(|&c| c == 0).unwrap_or(field.len())].to_vec();
        assert_eq!(record(b"linkpath").unwrap_or(stored), link, "the link does not read back");
    }
    if let TarKind::File { size } = kind {
        let pax_size = record(b"size").map(|v| String::from_utf8_lossy(&v).parse::<u64>());
        let read = match pax_size {
            Some(n) => n.expect("a PAX size is a number"),
            None => header.size,
        };
        assert_eq!(read, size, "the size does not read back");
    }
}

/// An archived or compressed snapshot's index, and the data file it describes.
struct ArchiveFixture {
    index: IndexReader,
    data: Vec<u8>,
}

thread_local! {
    static ARCHIVED: ArchiveFixture = archive_fixture(Structure::Archived);
    static COMPRESSED: ArchiveFixture = archive_fixture(Structure::Compressed);
    /// One cache for every archive a target opens (read-ahead threads start once).
    static CACHE: MemberCache = MemberCache::new(16 * FIXTURE_MEMBER);
}

/// The input as `data.tar` of a small archived snapshot whose index is
/// valid: the integrity check reports what is wrong, and nothing for the
/// data the index was written for.
pub fn archive_check_tar(data: &[u8]) {
    ARCHIVED.with(|fx| check_archive(fx, data, Structure::Archived));
}

/// The input as `data.tar.gz` of a small compressed snapshot whose index is
/// valid (gzip members of 1 KiB of stream), as [`archive_check_tar`].
pub fn archive_check_gz(data: &[u8]) {
    COMPRESSED.with(|fx| check_archive(fx, data, Structure::Compressed));
}

fn check_archive(fx: &ArchiveFixture, data: &[u8], structure: Structure) {
    for read_data in [false, true] {
        let mut f = Findings::default();
        let bytes = data.to_vec();
        let mut open = |_: &str| -> Opened { Ok((Box::new(Cursor::new(bytes.clone())), bytes.len() as u64)) };
        check_with(&mut open, &fx.index, structure, read_data.into(), &mut f);
        if data == fx.data.as_slice() {
            let problems = f.problems.into_vec();
            assert!(problems.is_empty(), "the fixture's own data file fails its check: {problems:?}");
        }
    }
}

/// Builds the fixture: a directory, a file and a further name of it, a
/// symlink, an empty file with a non-UTF-8 name and a socket (in the index
/// only), in a tar stream made by the real encoder.
fn archive_fixture(structure: Structure) -> ArchiveFixture {
    let (stream, rows) = fixture_stream(structure == Structure::Compressed);
    let file = Scratch::new("fixture.sqlite");
    let mut w = IndexWriter::create(&file.0, structure.as_str(), "2026-01-01T000000Z").expect("create the fixture");
    for r in &rows {
        w.insert(r).expect("fixture row");
    }
    w.set_meta("stream_length", &stream.len().to_string()).expect("fixture meta");
    let data = if structure == Structure::Compressed {
        w.set_meta("data_file", TGZ_FILE).expect("fixture meta");
        w.set_meta("member_size", &FIXTURE_MEMBER.to_string()).expect("fixture meta");
        let (gz, members) = gzip_members(&stream, FIXTURE_MEMBER);
        for (k, m) in members.iter().enumerate() {
            let (c, u) = ((m.compressed_offset, m.compressed_length), (m.uncompressed_offset, m.uncompressed_length));
            w.insert_member(k as i64, c, u).expect("fixture member");
        }
        gz
    } else {
        w.set_meta("data_file", TAR_FILE).expect("fixture meta");
        stream
    };
    w.finish().expect("finish the fixture");
    // The reader keeps its own descriptor: the file can go at once.
    let index = open_index(&file.0).expect("open the fixture");
    ArchiveFixture { index, data }
}

/// The fixture's tar stream and its index rows.
fn fixture_stream(compressed: bool) -> (Vec<u8>, Vec<IndexEntry>) {
    let meta = |kind: EntryKind, size: u64, target: Option<&[u8]>| EntryMeta {
        kind,
        mode: if kind == EntryKind::Dir { 0o755 } else { 0o644 },
        uid: 1000,
        gid: 1000,
        size,
        mtime_ns: 1_700_000_000_000_000_000,
        atime_ns: 1_700_000_000_000_000_000,
        ctime_ns: 1_700_000_000_000_000_000,
        rdev: 0,
        target: target.map(<[u8]>::to_vec),
        xattrs: Xattrs::default(),
    };
    let row = |id: i64, parent: i64, name: &[u8], meta: EntryMeta| IndexEntry::new(id, parent, name.to_vec(), meta);
    let content = b"hello\n";
    let mut out = Vec::new();
    let mut rows = vec![row(ROOT_ID, 0, b"", meta(EntryKind::Dir, 0, None))];
    let mut first_data = None;
    let entries: [(&[u8], &[u8], EntryMeta); 5] = [
        (b"d", b"d/", meta(EntryKind::Dir, 0, None)),
        (b"a.txt", b"d/a.txt", meta(EntryKind::File, content.len() as u64, None)),
        (b"h", b"d/h", meta(EntryKind::File, content.len() as u64, None)),
        (b"s", b"d/s", meta(EntryKind::Symlink, 5, Some(b"a.txt"))),
        (b"\xff", b"d/\xff", meta(EntryKind::File, 0, None)),
    ];
    for (i, (name, path, m)) in entries.into_iter().enumerate() {
        let id = i as i64 + 2;
        let parent = if id == 2 { ROOT_ID } else { 2 };
        let mut r = row(id, parent, name, m);
        let header = out.len() as u64;
        let kind = match (id, &r.meta.kind) {
            (4, _) => TarKind::Hardlink { first: b"d/a.txt" },
            _ => tar::kind_of(&r.meta).unwrap_or(TarKind::Fifo),
        };
        tar::encode_entry(&mut out, path, &r.meta, kind);
        r.location.header_offset = Some(header as i64);
        match id {
            3 => {
                r.hardlink = Some(3);
                r.blake3 = Some(*blake3::hash(content).as_bytes());
                first_data = Some(out.len() as u64);
                r.location.data_offset = Some(out.len() as i64);
                out.extend_from_slice(content);
                tar::pad(&mut out);
            }
            4 => {
                r.hardlink = Some(3);
                r.location.data_offset = first_data.map(|d| d as i64);
            }
            6 => {
                r.blake3 = Some(*blake3::hash(b"").as_bytes());
                r.location.data_offset = Some(out.len() as i64);
            }
            _ => {}
        }
        if compressed {
            r.location.member = r.location.data_offset.map(|d| d / FIXTURE_MEMBER as i64);
        }
        rows.push(r);
    }
    rows.push(row(7, 2, b"sock", meta(EntryKind::Socket, 0, None)));
    out.resize(out.len() + 2 * BLOCK, 0);
    (out, rows)
}

/// `stream` cut into gzip members of `size` bytes, as the archive writer does.
fn gzip_members(stream: &[u8], size: usize) -> (Vec<u8>, Vec<Member>) {
    let mut out = Vec::new();
    let mut members = Vec::new();
    let mut uncompressed = 0u64;
    for chunk in stream.chunks(size) {
        let packed = gzip(chunk);
        members.push(Member {
            compressed_offset: out.len() as u64,
            compressed_length: packed.len() as u64,
            uncompressed_offset: uncompressed,
            uncompressed_length: chunk.len() as u64,
        });
        uncompressed += chunk.len() as u64;
        out.extend_from_slice(&packed);
    }
    (out, members)
}

/// One gzip member holding `data`.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::default());
    let mut packed = vec![0u8; c.gzip_compress_bound(data.len())];
    let n = c.gzip_compress(data, &mut packed).expect("compress into a large enough buffer");
    packed.truncate(n);
    packed
}

/// The compressed-archive reader over gzip members and a members table
/// that the input describes, read at input-chosen places.
///
/// Input: a count byte (`% 6` members), then per member a flags byte, a
/// 2-byte length and that many bytes of stream. Flag bit 0 stores the bytes
/// as they are (the input as a gzip member) instead of compressed; bits 1-4
/// replace its compressed offset, compressed length, stream offset and
/// stream length in the table with 8 input bytes each. Then reads until the
/// end: a flags byte (bits 0-2: 8-byte rather than 2-byte start, size and
/// offset), start, size, offset and a 2-byte length. When every member is
/// compressed and the table is true, each read must give the stream's bytes.
pub fn archive_members(data: &[u8]) {
    let mut input = Input(data);
    let mut file = Vec::new();
    let mut stream = Vec::new();
    let mut members = Vec::new();
    let mut honest = true;
    for _ in 0..input.u8() % 6 {
        let flags = input.u8();
        let len = usize::from(input.u16() % 4096);
        let body = input.bytes(len);
        let packed = if flags & 1 == 0 { gzip(body) } else { body.to_vec() };
        let mut m = Member {
            compressed_offset: file.len() as u64,
            compressed_length: packed.len() as u64,
            uncompressed_offset: stream.len() as u64,
            uncompressed_length: body.len() as u64,
        };
        for (bit, field) in [
            (2, &mut m.compressed_offset),
            (4, &mut m.compressed_length),
            (8, &mut m.uncompressed_offset),
            (16, &mut m.uncompressed_length),
        ] {
            if flags & bit != 0 {
                *field = input.u64();
            }
        }
        honest &= flags & 31 == 0;
        file.extend_from_slice(&packed);
        stream.extend_from_slice(body);
        members.push(m);
    }

    let index_file = Scratch::new("members.sqlite");
    let mut w = IndexWriter::create(&index_file.0, "compressed", "2026-01-01T000000Z").expect("create the index");
    for (k, m) in members.iter().enumerate() {
        let (c, u) = ((m.compressed_offset, m.compressed_length), (m.uncompressed_offset, m.uncompressed_length));
        w.insert_member(k as i64, c, u).expect("member row");
    }
    w.finish().expect("finish the index");
    let Ok(index) = open_index(&index_file.0) else { return };
    drop(index_file);
    let data_file = memfd(&file);
    let cache = CACHE.with(MemberCache::clone);
    let dir = Path::new("fuzz");
    let Ok(archive) = Archive::open_local(dir, Structure::Compressed, &index, &cache, |_| Ok(data_file)) else {
        assert!(!honest, "an archive with a true members table does not open");
        return;
    };
    while !input.is_empty() {
        let flags = input.u8();
        let mut number = |bit: u8| if flags & bit != 0 { input.u64() } else { u64::from(input.u16()) };
        let (start, size, offset) = (number(1), number(2), number(4));
        let mut buf = vec![0u8; usize::from(input.u16() % 8192)];
        let got = archive.content(start, size).read_at(offset, &mut buf);
        let Ok(n) = got else {
            if honest {
                let want = size.saturating_sub(offset).min(buf.len() as u64);
                let end = start.saturating_add(offset).saturating_add(want);
                assert!(end > stream.len() as u64, "a read inside the stream failed: {got:?}");
            }
            continue;
        };
        assert!(n <= buf.len(), "read {n} bytes into {}", buf.len());
        if honest && n > 0 {
            let want =
                usize::try_from(start.saturating_add(offset)).ok().and_then(|p| stream.get(p..p.checked_add(n)?));
            assert_eq!(Some(&buf[..n]), want, "a read gave other bytes than the stream's");
        }
    }
}

/// A file in memory holding `bytes`.
fn memfd(bytes: &[u8]) -> std::fs::File {
    let fd = rustix::fs::memfd_create("hindsight-fuzz", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd_create");
    let mut f = std::fs::File::from(fd);
    f.write_all(bytes).expect("write to a memfd");
    f
}

/// What commands on an SSH destination print, as the agent parses it:
/// `ls -1Ap` and the listing of complete snapshots (names one a line), and
/// `find -printf '%s %P\0'` (sizes of a tree's files), whose sizes then
/// plan the batches in which file contents are fetched. Sizes also come
/// straight from the input, 8 bytes each.
pub fn ssh_output(data: &[u8]) {
    for name in crate::remote::ssh::parse_lines(data) {
        assert!(!name.is_empty() && !name.contains('\n'), "a listed name {name:?} is empty or spans lines");
    }
    let listed: Vec<u64> = crate::remote::ssh_check::parse_listing(data).map(|(_, size)| size).collect();
    let raw: Vec<u64> = data.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())).collect();
    for sizes in [listed, raw] {
        let mut start = 0;
        while start < sizes.len() {
            let (end, bytes) = crate::remote::ssh_check::batch_end(&sizes, start);
            assert!(end > start && end <= sizes.len(), "batch {start}..{end} of {}", sizes.len());
            let sum = sizes[start..end].iter().try_fold(0u64, |a, &s| a.checked_add(s));
            // A batch's byte count is what `cat` must return: exact, or one
            // no reply can match.
            assert!(sum == Some(bytes) || bytes == u64::MAX, "batch {start}..{end}: {bytes} bytes, sizes sum {sum:?}");
            start = end;
        }
    }
}

//! Integrity check of an archived (`data.tar`) or compressed (`data.tar.gz`)
//! snapshot against its index, in one sequential pass over the data file.
//!
//! The index's headers and file bodies are visited in tar stream order (one
//! SQL query, sorted by SQLite, so memory does not grow with the archive):
//! every header must parse (checksum, PAX records) and name the entry's path
//! with the right type and size; with `read_data`, every file body must hash to
//! the index's blake3. Every gzip member is inflated (CRC checked) whether or
//! not a header or body lies in it. A member or region that cannot be read is
//! reported once, with the entries it takes with it.

mod stream;

use crate::check::ReadData;
use std::path::Path;

pub(crate) use stream::Opened;
use stream::{Stream, Visit};

use super::tar::{self, is_safe_path, parse_header, parse_pax};
use super::{MEMBER_SIZE, TAR_FILE, TGZ_FILE};
use crate::check::{Findings, PathCache, Problem, Problems, show_path};
use crate::entry::EntryKind;
use crate::index::IndexReader;
use crate::manifest::Structure;

/// Largest `member_size` believed from an index: a larger one is corruption
/// and would make the check allocate it.
const MAX_MEMBER_SIZE: u64 = 64 << 20;

/// Bytes of a tar block.
const BLOCK: u64 = tar::BLOCK as u64;

/// Largest PAX extended header believed (xattrs included): a larger size field
/// is corruption, not data.
const MAX_PAX: u64 = 16 << 20;

/// Entries without a place in the archive that are listed one by one.
const MAX_UNLOCATED: u32 = 1000;

/// Every header and every file body (once per hardlink group), in stream order;
/// at one offset a header sorts before a body (an empty file's body offset is
/// the next header's).
const ITEMS: &str = "
SELECT header_offset AS off, 0 AS what, id, parent, name, kind, size, blake3, hardlink, data_offset
    FROM entries WHERE header_offset IS NOT NULL
UNION ALL
SELECT data_offset AS off, 1 AS what, id, parent, name, kind, size, blake3, hardlink, data_offset
    FROM entries WHERE kind = 1 AND data_offset IS NOT NULL AND (hardlink IS NULL OR hardlink = id)
ORDER BY off, what";

/// Entries that should be in the archive but have no offset there (sockets
/// cannot be stored in tar; the root has no entry).
const UNLOCATED: &str = "
SELECT id FROM entries
    WHERE id != 1 AND kind != 7 AND (header_offset IS NULL OR (kind = 1 AND size > 0 AND data_offset IS NULL))
    ORDER BY id LIMIT ?1";

/// Checks the data file of an archived or compressed snapshot in `dir`.
pub(crate) fn check(dir: &Path, index: &IndexReader, structure: Structure, read_data: ReadData, f: &mut Findings) {
    check_with(&mut |name| stream::open(&dir.join(name)), index, structure, read_data, f);
}

/// Checks the data file of an archived or compressed snapshot that `open`
/// opens by name (`data.tar` or `data.tar.gz`): local, or a remote object.
pub(crate) fn check_with(
    open: &mut dyn FnMut(&str) -> Opened,
    index: &IndexReader,
    structure: Structure,
    read_data: ReadData,
    f: &mut Findings,
) {
    let Some(stream) = open_stream(open, index, structure, f) else { return };
    unlocated(index, f);
    let mut pass = Pass { index, stream, paths: PathCache::default(), read_data, f, buf: Vec::new() };
    if let Err(e) = pass.run() {
        pass.f.problems.snapshot(format!("the index cannot be read to the end: {e}"));
    }
    pass.end_blocks();
    let Pass { mut stream, .. } = pass;
    stream.finish();
    f.bytes_read += stream.bytes_read;
    // Lost regions first: they are what the user must act on.
    let found = std::mem::take(&mut f.problems);
    let mut problems = Problems::default();
    for d in &stream.damages {
        problems.push(Problem { path: None, message: d.message() });
    }
    for n in stream.notes {
        problems.snapshot(n);
    }
    for p in found.into_vec() {
        problems.push(p);
    }
    f.problems = problems;
}

/// The stream of the data file, from the index's `meta` (and `members`).
fn open_stream(
    open: &mut dyn FnMut(&str) -> Opened,
    index: &IndexReader,
    structure: Structure,
    f: &mut Findings,
) -> Option<Stream> {
    let mut number = |key: &str| match index.meta(key) {
        Ok(Some(v)) => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                f.problems.snapshot(format!("the index's {key} is not a number: {v:?}"));
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            f.problems.snapshot(format!("cannot read the index's {key}: {e}"));
            None
        }
    };
    let Some(stream_len) = number("stream_length") else {
        f.problems.snapshot("the index does not record the length of the tar stream");
        return None;
    };
    let member_size = number("member_size");
    let file = if structure == Structure::Compressed { TGZ_FILE } else { TAR_FILE };
    match index.meta("data_file") {
        Ok(Some(d)) if d != file => f
            .problems
            .snapshot(format!("the index names data file {d:?}, a {} snapshot has {file}", structure.as_str())),
        _ => {}
    }
    if structure != Structure::Compressed {
        return Some(Stream::tar(file.into(), open(file), stream_len));
    }
    let max_len = match member_size {
        Some(n) if n > 0 && n <= MAX_MEMBER_SIZE => n,
        Some(n) => {
            f.problems.snapshot(format!("the index's member_size {n} is out of range"));
            MEMBER_SIZE
        }
        None => MEMBER_SIZE,
    };
    match index.members() {
        Ok(members) => Some(Stream::gz(file.into(), open(file), stream_len, members, max_len)),
        Err(e) => {
            f.problems.snapshot(format!("cannot read the gzip members of the index: {e}"));
            None
        }
    }
}

/// Reports entries that the archive should hold but the index does not place.
fn unlocated(index: &IndexReader, f: &mut Findings) {
    let ids: rusqlite::Result<Vec<i64>> =
        index.connection().prepare(UNLOCATED).and_then(|mut s| s.query_map([MAX_UNLOCATED], |r| r.get(0))?.collect());
    match ids {
        Ok(ids) => {
            for id in ids {
                let path = index.path_of(id).unwrap_or_else(|_| format!("(entry {id})").into_bytes());
                f.problems.entry(&path, "has no place in the archive (no header or data offset in the index)");
            }
        }
        Err(e) => f.problems.snapshot(format!("cannot read the index: {e}")),
    }
}

/// One row of [`ITEMS`].
struct Item {
    offset: i64,
    is_data: bool,
    id: i64,
    parent: i64,
    name: Vec<u8>,
    kind: Option<EntryKind>,
    size: i64,
    blake3: Option<Vec<u8>>,
    hardlink: Option<i64>,
    data_offset: Option<i64>,
}

impl Item {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
        Ok(Item {
            offset: r.get(0)?,
            is_data: r.get::<_, i64>(1)? == 1,
            id: r.get(2)?,
            parent: r.get(3)?,
            name: r.get(4)?,
            kind: EntryKind::from_code(r.get(5)?),
            size: r.get(6)?,
            blake3: r.get(7)?,
            hardlink: r.get(8)?,
            data_offset: r.get(9)?,
        })
    }

    /// A later name of a hardlink group (a tar `1` entry without data of its own).
    fn is_later_link(&self) -> bool {
        self.hardlink.is_some_and(|h| h != self.id)
    }
}

/// Values of a PAX extended header that override the ustar block.
#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
}

/// The pass over the stream.
struct Pass<'a> {
    index: &'a IndexReader,
    stream: Stream,
    paths: PathCache,
    read_data: ReadData,
    f: &'a mut Findings,
    buf: Vec<u8>,
}

impl Pass<'_> {
    fn run(&mut self) -> rusqlite::Result<()> {
        let mut stmt = self.index.connection().prepare(ITEMS)?;
        let mut rows = stmt.query([])?;
        // Reading an entry's data between two rows takes its own time: each
        // step of the scan gets the index's whole budget.
        while let Some(row) = {
            self.index.arm();
            rows.next()?
        } {
            let item = Item::from_row(row)?;
            let is_dir = item.kind == Some(EntryKind::Dir);
            let path = match self.paths.path(self.index, item.id, item.parent, &item.name, is_dir) {
                Ok(p) => p,
                Err(e) => {
                    self.f.problems.snapshot(format!("entry {}: {e}", item.id));
                    continue;
                }
            };
            if item.offset < 0 || item.size < 0 {
                self.f.problems.entry(&path, "the index gives it a negative offset or size");
            } else if item.is_data {
                self.data(&item, &path);
            } else {
                self.f.entries_checked += 1;
                self.header(&item, &path);
            }
        }
        Ok(())
    }

    /// Blames the damages a read met on `path`; reports reads out of order or
    /// past the end. True when the bytes were all read.
    fn fine(&mut self, v: &Visit, path: &[u8], what: &str) -> bool {
        for &i in &v.damaged {
            self.stream.damages[i].blame(&show_path(path));
        }
        if v.behind {
            self.f.problems.entry(path, format!("its {what} overlaps the entry before it in the tar stream"));
        } else if v.past_end && v.damaged.is_empty() {
            self.f.problems.entry(path, format!("its {what} lies beyond the end of the tar stream"));
        }
        v.complete()
    }

    /// The entry's header: parses, names the entry, has its type and size.
    fn header(&mut self, item: &Item, path: &[u8]) {
        let off = item.offset as u64;
        let bad =
            |f: &mut Findings, m: String| f.problems.entry(path, format!("tar header at stream offset {off}: {m}"));
        self.buf.clear();
        let v = self.stream.read(off, BLOCK, &mut self.buf);
        if !self.fine(&v, path, "tar header") {
            return;
        }
        let first = match parse_header(&self.buf) {
            Ok(b) => b,
            Err(e) => return bad(self.f, e.to_string()),
        };
        let (block, link, pax, end) = match first.flag {
            b'x' => {
                if first.size > MAX_PAX {
                    return bad(self.f, format!("a PAX header of {} bytes", first.size));
                }
                let padded_len = first.size.next_multiple_of(BLOCK);
                self.buf.clear();
                let v = self.stream.read(off + BLOCK, padded_len + BLOCK, &mut self.buf);
                if !self.fine(&v, path, "tar header") {
                    return;
                }
                let pax = match pax_fields(&self.buf[..first.size as usize]) {
                    Ok(p) => p,
                    Err(e) => return bad(self.f, e),
                };
                let ustar = &self.buf[padded_len as usize..];
                let block = match parse_header(ustar) {
                    Ok(b) if matches!(b.flag, b'x' | b'g') => {
                        return bad(self.f, "two extended headers in a row".into());
                    }
                    Ok(b) => b,
                    Err(e) => return bad(self.f, format!("after its PAX header: {e}")),
                };
                (block, linkname(ustar), pax, off + BLOCK + padded_len + BLOCK)
            }
            b'g' | b'L' | b'K' => return bad(self.f, format!("unexpected header type {:?}", first.flag as char)),
            _ => {
                let link = linkname(&self.buf);
                (first, link, Pax::default(), off + BLOCK)
            }
        };
        let name = pax.path.unwrap_or(block.path);
        if !is_safe_path(&name) {
            self.f.problems.entry(path, format!("unsafe path in the archive: {}", String::from_utf8_lossy(&name)));
        }
        let mut want = path.to_vec();
        if item.kind == Some(EntryKind::Dir) {
            want.push(b'/');
        }
        if name != want {
            return bad(self.f, format!("it names {:?}", String::from_utf8_lossy(&name)));
        }
        let kind_ok = match (block.flag, item.kind) {
            (b'0' | b'\0' | b'7', Some(EntryKind::File)) => !item.is_later_link(),
            (b'1', Some(EntryKind::File)) => item.is_later_link(),
            (b'2', Some(EntryKind::Symlink))
            | (b'3', Some(EntryKind::CharDev))
            | (b'4', Some(EntryKind::BlockDev))
            | (b'5', Some(EntryKind::Dir))
            | (b'6', Some(EntryKind::Fifo)) => true,
            _ => false,
        };
        if !kind_ok {
            let kind = item.kind.map_or("entry of unknown kind", crate::check::kind_name);
            return bad(self.f, format!("type {:?} for a {kind} in the index", block.flag as char));
        }
        if block.flag == b'1' {
            let link = pax.linkpath.unwrap_or(link);
            if !is_safe_path(&link) {
                self.f.problems.entry(path, format!("unsafe hardlink target: {}", String::from_utf8_lossy(&link)));
            }
        } else if item.kind == Some(EntryKind::File) {
            let size = pax.size.unwrap_or(block.size);
            if size != item.size as u64 {
                return bad(self.f, format!("it holds {size} bytes, the index says {}", item.size));
            }
            if let Some(d) = item.data_offset.filter(|&d| d as u64 != end) {
                self.f.problems.entry(path, format!("the index puts its data at {d}, its tar header ends at {end}"));
            }
        }
    }

    /// The file's body: readable, and with `read_data` of the right blake3.
    fn data(&mut self, item: &Item, path: &[u8]) {
        let (off, len) = (item.offset as u64, item.size as u64);
        let want = item.blake3.as_deref().filter(|h| self.read_data.wants(h));
        let Some(want) = want else {
            let v = self.stream.visit(off, len, None);
            self.fine(&v, path, "data");
            return;
        };
        let mut hasher = blake3::Hasher::new();
        let v = self.stream.visit(
            off,
            len,
            Some(&mut |b: &[u8]| {
                hasher.update(b);
            }),
        );
        if self.fine(&v, path, "data") && hasher.finalize().as_bytes()[..] != *want {
            self.f.problems.entry(path, "content does not match the index (blake3 differs)");
        }
    }

    /// The stream ends with two zero blocks.
    fn end_blocks(&mut self) {
        let len = self.stream.stream_len();
        if len < 2 * BLOCK {
            return self.f.problems.snapshot(format!("the tar stream is {len} bytes: too short to be an archive"));
        }
        self.buf.clear();
        let v = self.stream.read(len - 2 * BLOCK, 2 * BLOCK, &mut self.buf);
        if v.complete() && self.buf.iter().any(|&b| b != 0) {
            self.f.problems.snapshot("the tar stream does not end with two zero blocks");
        }
    }
}

/// The PAX records a check uses.
fn pax_fields(data: &[u8]) -> Result<Pax, String> {
    let mut pax = Pax::default();
    for (key, value) in parse_pax(data).ok_or("malformed PAX records")? {
        match key.as_slice() {
            b"path" => pax.path = Some(value),
            b"linkpath" => pax.linkpath = Some(value),
            b"size" => {
                let n = std::str::from_utf8(&value).ok().and_then(|s| s.parse().ok());
                pax.size =
                    Some(n.ok_or_else(|| format!("PAX size {:?} is not a number", String::from_utf8_lossy(&value)))?);
            }
            _ => {}
        }
    }
    Ok(pax)
}

/// The ustar link name field (hardlink and symlink targets up to 100 bytes).
fn linkname(block: &[u8]) -> Vec<u8> {
    let f = block.get(157..257).unwrap_or_default();
    f[..f.iter().position(|&c| c == 0).unwrap_or(f.len())].to_vec()
}

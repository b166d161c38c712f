//! The tar stream of an archive, read once from start to end for a check.
//!
//! The stream is a sequence of chunks: gzip members for compressed archives
//! (each inflated whole, its CRC checked), windows of `data.tar` for archived
//! ones. One chunk is in memory at a time. A chunk that cannot be read is a
//! [`Damage`]: the requests that touch it say which entries it takes with it.
//! Requests must come in stream order; a request behind the current chunk is
//! answered [`Visit::behind`].
//!
//! The data file is any [`DataFile`]: a local file, or a remote object read
//! by ranges (`crate::remote::stream::ObjectReader`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use libdeflater::{DecompressionError, Decompressor};

use crate::index::Member;

/// Bytes of `data.tar` read at a time: small enough that a check without
/// `read_data` reads little more than the headers of big files.
const TAR_WINDOW: u64 = 256 << 10;

/// Paths listed per damage; the rest are counted.
const MAX_BLAMED: usize = 100;

/// A data file as a check reads it: front to back, skipping forward where it can.
pub(crate) trait DataFile: Read + Seek + Send {}

impl<T: Read + Seek + Send> DataFile for T {}

/// An opened data file and its length, or why it cannot be read.
pub(crate) type Opened = Result<(Box<dyn DataFile>, u64), String>;

/// Where [`Stream::visit`] passes the bytes of a range, in order.
pub(super) type Sink<'a> = &'a mut dyn FnMut(&[u8]);

/// A region of the stream that could not be read.
#[derive(Debug)]
pub(super) struct Damage {
    /// What was lost (`gzip member 3`, `data.tar from byte 4096`).
    pub what: String,
    /// Why.
    pub reason: String,
    /// Start of the lost stream bytes.
    pub start: u64,
    /// End (exclusive) of the lost stream bytes.
    pub end: u64,
    /// Entries whose header or data lie there.
    pub paths: Vec<String>,
    /// Entries beyond [`MAX_BLAMED`].
    pub more: u64,
    /// Member indexes covered (compressed), to merge runs of damaged members.
    members: Option<(usize, usize)>,
    /// The entry blamed last.
    last: String,
}

impl Damage {
    /// Adds an entry to those lost here.
    pub(super) fn blame(&mut self, path: &str) {
        // An entry's header and body are blamed one after the other: count it once.
        if self.last == path {
            return;
        }
        self.last = path.to_string();
        if self.paths.len() < MAX_BLAMED {
            self.paths.push(path.to_string());
        } else {
            self.more += 1;
        }
    }

    /// One line for the report.
    pub(super) fn message(&self) -> String {
        let what = match self.members {
            Some((a, b)) if a != b => format!("gzip members {a}-{b}"),
            Some((a, _)) => format!("gzip member {a}"),
            None => self.what.clone(),
        };
        let mut m = format!("{what} (tar stream bytes {}-{}) cannot be read: {}", self.start, self.end, self.reason);
        if self.paths.is_empty() {
            m.push_str("; no entry lies there");
        } else {
            m.push_str(&format!("; affected: {}", self.paths.join(", ")));
            if self.more > 0 {
                m.push_str(&format!(" and {} more", self.more));
            }
        }
        m
    }
}

/// What a request met.
#[derive(Debug, Default)]
pub(super) struct Visit {
    /// Indexes of the damages it touched.
    pub damaged: Vec<usize>,
    /// It started before the current chunk (entries out of order or overlapping).
    pub behind: bool,
    /// It went past the end of the stream.
    pub past_end: bool,
}

impl Visit {
    /// True when every byte asked for was delivered.
    pub(super) fn complete(&self) -> bool {
        self.damaged.is_empty() && !self.behind && !self.past_end
    }
}

/// Where chunks come from.
enum Source {
    /// `data.tar`, read in windows; unneeded windows are skipped.
    Tar { file: Option<Box<dyn DataFile>>, file_len: u64 },
    /// `data.tar.gz`, member after member; none is skipped.
    Gz {
        file: Option<Box<dyn DataFile>>,
        file_len: u64,
        members: Vec<Member>,
        next: usize,
        max_len: u64,
        inflater: Decompressor,
    },
}

/// The chunk in memory.
struct Chunk {
    start: u64,
    end: u64,
    data: Vec<u8>,
    /// The damage it belongs to, when it could not be read.
    lost: Option<usize>,
}

/// A sequential reader of the tar stream.
pub(super) struct Stream {
    source: Source,
    stream_len: u64,
    chunk: Chunk,
    /// Regions that could not be read.
    pub damages: Vec<Damage>,
    /// Inconsistencies of the data file against the index, for the report.
    pub notes: Vec<String>,
    /// Bytes read from the data file.
    pub bytes_read: u64,
    compressed_pos: u64,
    scratch: Vec<u8>,
}

impl Stream {
    /// The stream of an archived snapshot: `data.tar` (named `name`) of `stream_len` bytes.
    pub(super) fn tar(name: String, opened: Opened, stream_len: u64) -> Stream {
        let (file, file_len, why) = split(opened);
        let mut s = Stream::new(Source::Tar { file, file_len }, stream_len);
        if file_len < stream_len {
            let reason = why.unwrap_or_else(|| format!("truncated at {file_len} bytes of {stream_len}"));
            s.damages.push(Damage {
                what: name,
                reason,
                start: file_len,
                end: stream_len,
                paths: Vec::new(),
                more: 0,
                members: None,
                last: String::new(),
            });
        } else if file_len > stream_len {
            s.notes.push(format!("{name} has {} bytes after the end of the tar stream", file_len - stream_len));
        }
        s
    }

    /// The stream of a compressed snapshot: `data.tar.gz` cut into `members`,
    /// none inflating to more than `max_len` bytes.
    pub(super) fn gz(name: String, opened: Opened, stream_len: u64, members: Vec<Member>, max_len: u64) -> Stream {
        let (file, file_len, why) = split(opened);
        if let Some(why) = why {
            let mut s = Stream::new(Source::Tar { file: None, file_len: 0 }, stream_len);
            s.damages.push(Damage {
                what: name,
                reason: why,
                start: 0,
                end: stream_len,
                paths: Vec::new(),
                more: 0,
                members: None,
                last: String::new(),
            });
            return s;
        }
        let inflater = Decompressor::new();
        Stream::new(Source::Gz { file, file_len, members, next: 0, max_len, inflater }, stream_len)
    }

    fn new(source: Source, stream_len: u64) -> Stream {
        Stream {
            source,
            stream_len,
            chunk: Chunk { start: 0, end: 0, data: Vec::new(), lost: None },
            damages: Vec::new(),
            notes: Vec::new(),
            bytes_read: 0,
            compressed_pos: 0,
            scratch: Vec::new(),
        }
    }

    /// Length of the tar stream.
    pub(super) fn stream_len(&self) -> u64 {
        self.stream_len
    }

    /// Appends stream bytes `[offset, offset + len)` to `out`.
    pub(super) fn read(&mut self, offset: u64, len: u64, out: &mut Vec<u8>) -> Visit {
        self.visit(offset, len, Some(&mut |b: &[u8]| out.extend_from_slice(b)))
    }

    /// Passes stream bytes `[offset, offset + len)` to `sink` in order; with no
    /// sink, only finds which damages the range touches (reading what must be
    /// read anyway: every gzip member, but no window of `data.tar`).
    pub(super) fn visit(&mut self, offset: u64, len: u64, mut sink: Option<Sink<'_>>) -> Visit {
        let mut v = Visit::default();
        if offset < self.chunk.start {
            v.behind = true;
            return v;
        }
        let mut end = offset.saturating_add(len);
        if end > self.stream_len {
            v.past_end = true;
            end = self.stream_len;
        }
        let mut cur = offset;
        while cur < end {
            if cur >= self.chunk.end && !self.load(cur, sink.is_some()) {
                // Nothing loaded: an unread window of data.tar, or past the last member.
                if let Some(i) = self.damage_at(cur) {
                    push_unique(&mut v.damaged, i);
                    cur = self.damages[i].end.min(end);
                    continue;
                }
                if matches!(self.source, Source::Tar { .. }) && sink.is_none() {
                    // Unread bytes of data.tar: lost only where a known damage lies.
                    for (i, d) in self.damages.iter().enumerate() {
                        if d.start < end && d.end > cur {
                            push_unique(&mut v.damaged, i);
                        }
                    }
                    cur = end;
                    continue;
                }
                v.past_end = true;
                break;
            }
            let stop = end.min(self.chunk.end);
            match self.chunk.lost {
                Some(i) => push_unique(&mut v.damaged, i),
                None => {
                    if let Some(s) = sink.as_mut() {
                        let from = (cur - self.chunk.start) as usize;
                        let to = (stop - self.chunk.start) as usize;
                        s(&self.chunk.data[from..to]);
                    }
                }
            }
            cur = stop;
        }
        v
    }

    /// Reads every chunk not read yet (every gzip member must be checked) and
    /// compares the data file's extent with the index.
    pub(super) fn finish(&mut self) {
        if let Source::Gz { .. } = self.source {
            while self.members_left() {
                self.load_member();
            }
            if let Source::Gz { file_len, members, .. } = &self.source {
                let covered = members.iter().map(|m| m.uncompressed_length).fold(0u64, u64::saturating_add);
                if covered != self.stream_len {
                    self.notes.push(format!(
                        "the gzip members inflate to {covered} bytes, the index says the stream has {}",
                        self.stream_len
                    ));
                }
                let end = members.last().map_or(0, |m| m.compressed_offset.saturating_add(m.compressed_length));
                if end < *file_len {
                    self.notes.push(format!("data.tar.gz has {} bytes after its last gzip member", file_len - end));
                }
            }
        }
    }

    fn members_left(&self) -> bool {
        matches!(&self.source, Source::Gz { members, next, .. } if *next < members.len())
    }

    /// The damage covering stream offset `at`, if one is known.
    fn damage_at(&self, at: u64) -> Option<usize> {
        self.damages.iter().position(|d| d.start <= at && at < d.end)
    }

    /// Makes the chunk holding `at` current. For `data.tar` that is the window
    /// at `at` (skipping those before it) and only when `needed`; for
    /// `data.tar.gz`, the next member (all of them are read, in order).
    /// False when no chunk was loaded.
    fn load(&mut self, at: u64, needed: bool) -> bool {
        match &self.source {
            Source::Tar { .. } => needed && self.load_window(at),
            Source::Gz { .. } => {
                while self.members_left() {
                    self.load_member();
                    if self.chunk.end > at {
                        return true;
                    }
                }
                false
            }
        }
    }

    fn load_window(&mut self, at: u64) -> bool {
        let Source::Tar { file, file_len } = &mut self.source else { return false };
        if at >= *file_len || at >= self.stream_len {
            return false;
        }
        let start = at - at % TAR_WINDOW;
        let end = (start + TAR_WINDOW).min(*file_len).min(self.stream_len);
        let Some(f) = file.as_mut() else { return false };
        self.chunk.data.resize((end - start) as usize, 0);
        let read = f.seek(SeekFrom::Start(start)).and_then(|_| f.read_exact(&mut self.chunk.data));
        self.chunk.start = start;
        self.chunk.end = end;
        self.chunk.lost = None;
        match read {
            Ok(()) => self.bytes_read += end - start,
            Err(e) => {
                let what = format!("data.tar from byte {start}");
                self.chunk.lost = Some(self.lose(what, format!("read error: {e}"), start, end, None));
            }
        }
        true
    }

    /// Reads and inflates the next gzip member; a member that fails becomes a damage.
    fn load_member(&mut self) {
        let Source::Gz { file, file_len, members, next, max_len, inflater } = &mut self.source else { return };
        let k = *next;
        *next += 1;
        let m = members[k];
        let start = self.chunk.end;
        let end = start.saturating_add(m.uncompressed_length);
        if m.uncompressed_offset != start {
            self.notes.push(format!(
                "gzip member {k} is recorded at stream offset {}, but the members before it end at {start}",
                m.uncompressed_offset
            ));
        }
        if m.compressed_offset != self.compressed_pos {
            self.notes.push(format!(
                "gzip member {k} is recorded at byte {} of data.tar.gz, but the member before it ends at {}",
                m.compressed_offset, self.compressed_pos
            ));
        }
        self.compressed_pos = m.compressed_offset.saturating_add(m.compressed_length);
        self.chunk.start = start;
        self.chunk.end = end;
        self.chunk.lost = None;
        let failure = if m.uncompressed_length > *max_len {
            Some(format!("the index says it inflates to {} bytes, more than a member holds", m.uncompressed_length))
        } else if m.compressed_length > max_len.saturating_mul(2).saturating_add(1 << 16) {
            Some(format!("the index gives it an implausible length of {} bytes", m.compressed_length))
        } else if self.compressed_pos > *file_len {
            Some(format!("data.tar.gz is truncated: {file_len} bytes, the member ends at {}", self.compressed_pos))
        } else {
            match file.as_mut() {
                None => Some("data.tar.gz cannot be opened".into()),
                Some(f) => {
                    self.scratch.resize(m.compressed_length as usize, 0);
                    match f.seek(SeekFrom::Start(m.compressed_offset)).and_then(|_| f.read_exact(&mut self.scratch)) {
                        Err(e) => Some(format!("read error: {e}")),
                        Ok(()) => {
                            self.bytes_read += m.compressed_length;
                            self.chunk.data.resize(m.uncompressed_length as usize, 0);
                            match inflater.gzip_decompress(&self.scratch, &mut self.chunk.data) {
                                Ok(n) if n as u64 == m.uncompressed_length => None,
                                Ok(n) => {
                                    Some(format!("it inflates to {n} bytes, the index says {}", m.uncompressed_length))
                                }
                                Err(DecompressionError::BadData) => {
                                    Some("corrupt gzip data (bad header, deflate stream or CRC)".into())
                                }
                                Err(DecompressionError::InsufficientSpace) => Some(format!(
                                    "it inflates to more than the {} bytes the index says",
                                    m.uncompressed_length
                                )),
                            }
                        }
                    }
                }
            }
        };
        if let Some(reason) = failure {
            self.chunk.lost = Some(self.lose(format!("gzip member {k}"), reason, start, end, Some(k)));
        }
    }

    /// Records a lost region, merging it with the previous one when they touch
    /// (a truncated file loses every member after the cut, reported once).
    fn lose(&mut self, what: String, reason: String, start: u64, end: u64, member: Option<usize>) -> usize {
        if let Some(last) = self.damages.last_mut()
            && last.end == start
            && let (Some((a, b)), Some(k)) = (last.members, member)
            && b + 1 == k
        {
            last.end = end;
            last.members = Some((a, k));
            return self.damages.len() - 1;
        }
        self.damages.push(Damage {
            what,
            reason,
            start,
            end,
            paths: Vec::new(),
            more: 0,
            members: member.map(|k| (k, k)),
            last: String::new(),
        });
        self.damages.len() - 1
    }
}

fn push_unique(v: &mut Vec<usize>, i: usize) {
    if !v.contains(&i) {
        v.push(i);
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Opens a local data file.
pub(super) fn open(path: &Path) -> Opened {
    match File::open(path).and_then(|f| f.metadata().map(|m| (f, m.len()))) {
        Ok((f, len)) => Ok((Box::new(f), len)),
        Err(e) => Err(format!("cannot open {}: {e}", file_name(path))),
    }
}

/// The reader, its length, and why it cannot be read (if so).
fn split(opened: Opened) -> (Option<Box<dyn DataFile>>, u64, Option<String>) {
    match opened {
        Ok((f, len)) => (Some(f), len, None),
        Err(why) => (None, 0, Some(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damage_lists_a_hundred_paths_then_counts() {
        let mut d = Damage {
            what: "x".into(),
            reason: "r".into(),
            start: 0,
            end: 1,
            paths: Vec::new(),
            more: 0,
            members: Some((3, 5)),
            last: String::new(),
        };
        for i in 0..150 {
            d.blame(&format!("f{i}"));
            d.blame(&format!("f{i}"));
        }
        let m = d.message();
        assert!(m.starts_with("gzip members 3-5 (tar stream bytes 0-1) cannot be read: r; affected: f0, f1,"), "{m}");
        assert!(m.ends_with("f99 and 50 more"), "{m}");
    }
}

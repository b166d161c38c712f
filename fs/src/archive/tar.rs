//! Tar headers: ustar blocks and PAX extended records, written and read.
//!
//! Writing follows POSIX.1-2001 as GNU tar reads it (see
//! `docs/archive-format.md`); reading is what integrity checks need: one
//! header block with its checksum, and the records of a PAX header.

use crate::entry::{EntryKind, EntryMeta, split_ns};

/// Size of a tar block.
pub(crate) const BLOCK: usize = 512;

/// Largest value of an 11-digit octal field (size, mtime): 8 GiB - 1.
const MAX_OCTAL_11: u64 = 0o77777777777;
/// Largest value of a 7-digit octal field (uid, gid): 2^21 - 1.
const MAX_OCTAL_7: u64 = 0o7777777;

/// What a tar entry is, with what its type needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarKind<'a> {
    /// Regular file with `size` bytes of data after the header.
    File {
        /// Bytes of data that follow.
        size: u64,
    },
    /// A further name of a file already in the archive under `first`.
    Hardlink {
        /// Path of the first name, as written in the archive.
        first: &'a [u8],
    },
    /// Directory (its path ends with `/`).
    Dir,
    /// Symbolic link.
    Symlink {
        /// Link target.
        target: &'a [u8],
    },
    /// Character device.
    CharDev,
    /// Block device.
    BlockDev,
    /// Named pipe.
    Fifo,
}

impl TarKind<'_> {
    fn flag(&self) -> u8 {
        match self {
            TarKind::File { .. } => b'0',
            TarKind::Hardlink { .. } => b'1',
            TarKind::Symlink { .. } => b'2',
            TarKind::CharDev => b'3',
            TarKind::BlockDev => b'4',
            TarKind::Dir => b'5',
            TarKind::Fifo => b'6',
        }
    }
}

/// The tar kind of an entry that is not a hardlink; `None` for sockets, which tar cannot hold.
pub fn kind_of(meta: &EntryMeta) -> Option<TarKind<'_>> {
    Some(match meta.kind {
        EntryKind::File => TarKind::File { size: meta.size },
        EntryKind::Dir => TarKind::Dir,
        EntryKind::Symlink => TarKind::Symlink { target: meta.target.as_deref().unwrap_or_default() },
        EntryKind::CharDev => TarKind::CharDev,
        EntryKind::BlockDev => TarKind::BlockDev,
        EntryKind::Fifo => TarKind::Fifo,
        EntryKind::Socket => return None,
    })
}

/// Encodes the header blocks of one entry (a PAX header when needed, then the
/// ustar header) and appends them to `out`. `path` is relative; directories end with `/`.
pub(crate) fn encode_entry(out: &mut Vec<u8>, path: &[u8], meta: &EntryMeta, kind: TarKind<'_>) {
    let size = match kind {
        TarKind::File { size } => size,
        _ => 0,
    };
    let link: &[u8] = match kind {
        TarKind::Hardlink { first } => first,
        TarKind::Symlink { target } => target,
        _ => b"",
    };
    let mut pax = Vec::new();
    let split = split_path(path);
    let binary = std::str::from_utf8(path).is_err() || std::str::from_utf8(link).is_err();
    if binary {
        record(&mut pax, "hdrcharset", b"BINARY");
    }
    if split.is_none() {
        record(&mut pax, "path", path);
    }
    if link.len() > 100 || !link.is_ascii() {
        record(&mut pax, "linkpath", link);
    }
    if size > MAX_OCTAL_11 {
        record(&mut pax, "size", size.to_string().as_bytes());
    }
    if u64::from(meta.uid) > MAX_OCTAL_7 {
        record(&mut pax, "uid", meta.uid.to_string().as_bytes());
    }
    if u64::from(meta.gid) > MAX_OCTAL_7 {
        record(&mut pax, "gid", meta.gid.to_string().as_bytes());
    }
    // A link entry restores nothing of its own (the first name carries the
    // times and xattrs): without them most links need no PAX header at all.
    let link_entry = matches!(kind, TarKind::Hardlink { .. });
    if !link_entry {
        record(&mut pax, "mtime", pax_time(meta.mtime_ns).as_bytes());
        record(&mut pax, "atime", pax_time(meta.atime_ns).as_bytes());
    }
    for (name, value) in meta.xattrs.0.iter().filter(|_| !link_entry) {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        record_bytes(&mut pax, &key, value);
        // Also as the text GNU tar's --acls and bsdtar restore ACLs from.
        let acl_key = match name.as_slice() {
            b"system.posix_acl_access" => Some("SCHILY.acl.access"),
            b"system.posix_acl_default" => Some("SCHILY.acl.default"),
            _ => None,
        };
        if let (Some(k), Some(text)) = (acl_key, acl_text(value)) {
            record(&mut pax, k, text.as_bytes());
        }
    }

    let mtime_s = split_ns(meta.mtime_ns).0.max(0) as u64;
    let base = basename(path);
    let mut pax_name = b"PaxHeaders/".to_vec();
    pax_name.extend_from_slice(&base[..base.len().min(100 - pax_name.len())]);
    let pax_header = Ustar {
        name: &pax_name,
        prefix: b"",
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: pax.len() as u64,
        mtime: mtime_s,
        flag: b'x',
        link: b"",
        dev: (0, 0),
    };
    if !pax.is_empty() {
        out.extend_from_slice(&pax_header.encode());
        out.extend_from_slice(&pax);
        pad(out);
    }

    let (prefix, name) = split.unwrap_or((b"", &path[..path.len().min(100)]));
    let dev = match kind {
        TarKind::CharDev | TarKind::BlockDev => (rustix::fs::major(meta.rdev), rustix::fs::minor(meta.rdev)),
        _ => (0, 0),
    };
    let header = Ustar {
        name,
        prefix,
        mode: meta.mode & 0o7777,
        uid: u64::from(meta.uid),
        gid: u64::from(meta.gid),
        size,
        mtime: mtime_s,
        flag: kind.flag(),
        link: &link[..link.len().min(100)],
        dev,
    };
    out.extend_from_slice(&header.encode());
}

/// The short text form of a POSIX ACL xattr (`user::rw-,user:1000:r--,group::r--,mask::r--,other::r--`),
/// with numeric ids; `None` when the value is not a version 2 ACL.
fn acl_text(value: &[u8]) -> Option<String> {
    let (head, body) = value.split_at_checked(4)?;
    if u32::from_le_bytes(head.try_into().ok()?) != 2 || body.len() % 8 != 0 {
        return None;
    }
    let entries: Option<Vec<String>> = body
        .chunks_exact(8)
        .map(|e| {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u16::from_le_bytes([e[2], e[3]]);
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            let rwx: String =
                [(4, 'r'), (2, 'w'), (1, 'x')].iter().map(|&(bit, c)| if perm & bit != 0 { c } else { '-' }).collect();
            Some(match tag {
                0x01 => format!("user::{rwx}"),
                0x02 => format!("user:{id}:{rwx}"),
                0x04 => format!("group::{rwx}"),
                0x08 => format!("group:{id}:{rwx}"),
                0x10 => format!("mask::{rwx}"),
                0x20 => format!("other::{rwx}"),
                _ => return None,
            })
        })
        .collect();
    Some(entries?.join(","))
}

/// Pads `out` with zeros to a whole number of blocks.
pub(crate) fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(BLOCK), 0);
}

/// Zeros after `len` bytes of data to reach the next block boundary.
pub(crate) fn padding(len: u64) -> usize {
    (len.next_multiple_of(BLOCK as u64) - len) as usize
}

/// Splits a path into ustar (prefix, name) when it fits and is ASCII.
fn split_path(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if !path.is_ascii() {
        return None;
    }
    if path.len() <= 100 {
        return Some((b"", path));
    }
    // The prefix ends at a '/', which is not stored; a directory's own trailing '/' stays in the name.
    let body = path.strip_suffix(b"/").unwrap_or(path);
    (0..body.len()).rev().filter(|&i| body[i] == b'/').find_map(|i| {
        let (prefix, name) = (&path[..i], &path[i + 1..]);
        (prefix.len() <= 155 && name.len() <= 100 && !name.is_empty()).then_some((prefix, name))
    })
}

fn basename(path: &[u8]) -> &[u8] {
    let body = path.strip_suffix(b"/").unwrap_or(path);
    body.rsplit(|&c| c == b'/').next().unwrap_or(body)
}

/// Seconds with nine decimals, as PAX times are written (`-1.500000000` is 1.5 s before the epoch).
fn pax_time(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let abs = ns.unsigned_abs();
    format!("{sign}{}.{:09}", abs / 1_000_000_000, abs % 1_000_000_000)
}

fn record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    record_bytes(out, key.as_bytes(), value);
}

/// Appends `"<len> <key>=<value>\n"`, where len counts the whole record including its own digits.
fn record_bytes(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The fields of one ustar header block.
struct Ustar<'a> {
    name: &'a [u8],
    prefix: &'a [u8],
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    flag: u8,
    link: &'a [u8],
    dev: (u32, u32),
}

impl Ustar<'_> {
    fn encode(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[..self.name.len()].copy_from_slice(self.name);
        octal(&mut b[100..108], u64::from(self.mode));
        octal(&mut b[108..116], if self.uid > MAX_OCTAL_7 { 0 } else { self.uid });
        octal(&mut b[116..124], if self.gid > MAX_OCTAL_7 { 0 } else { self.gid });
        octal(&mut b[124..136], if self.size > MAX_OCTAL_11 { 0 } else { self.size });
        octal(&mut b[136..148], self.mtime.min(MAX_OCTAL_11));
        b[156] = self.flag;
        b[157..157 + self.link.len()].copy_from_slice(self.link);
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        octal(&mut b[329..337], u64::from(self.dev.0).min(MAX_OCTAL_7));
        octal(&mut b[337..345], u64::from(self.dev.1).min(MAX_OCTAL_7));
        b[345..345 + self.prefix.len()].copy_from_slice(self.prefix);
        b[148..156].fill(b' ');
        let sum: u32 = b.iter().map(|&c| u32::from(c)).sum();
        b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        b
    }
}

/// Writes `v` as zero-padded octal digits followed by a NUL.
fn octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

/// A header block as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedHeader {
    /// Type flag (`b'0'`, `b'x'`, ...).
    pub flag: u8,
    /// `prefix/name` as stored (PAX `path` overrides it).
    pub path: Vec<u8>,
    /// Size of the data that follows, in bytes.
    pub size: u64,
}

/// Why a header block does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeaderError {
    /// Fewer than 512 bytes.
    #[error("truncated tar header")]
    Truncated,
    /// The stored checksum does not match the block.
    #[error("tar header checksum mismatch")]
    Checksum,
    /// A numeric field is not octal.
    #[error("tar header field {0} is not a number")]
    Field(&'static str),
    /// Not a ustar header.
    #[error("not a ustar header")]
    Magic,
}

/// Parses one header block, verifying its checksum.
pub(crate) fn parse_header(block: &[u8]) -> Result<ParsedHeader, HeaderError> {
    let b = block.get(..BLOCK).ok_or(HeaderError::Truncated)?;
    if &b[257..262] != b"ustar" {
        return Err(HeaderError::Magic);
    }
    let stored = parse_octal(&b[148..156]).ok_or(HeaderError::Field("chksum"))?;
    let sum: u64 = b.iter().enumerate().map(|(i, &c)| if (148..156).contains(&i) { 32 } else { u64::from(c) }).sum();
    if sum != stored {
        return Err(HeaderError::Checksum);
    }
    let size = parse_octal(&b[124..136]).ok_or(HeaderError::Field("size"))?;
    let cstr = |f: &[u8]| f[..f.iter().position(|&c| c == 0).unwrap_or(f.len())].to_vec();
    let (prefix, name) = (cstr(&b[345..500]), cstr(&b[..100]));
    let path = if prefix.is_empty() { name } else { [prefix.as_slice(), b"/", &name].concat() };
    Ok(ParsedHeader { flag: b[156], path, size })
}

fn parse_octal(f: &[u8]) -> Option<u64> {
    let s: Vec<u8> = f.iter().copied().filter(|&c| c != 0 && c != b' ').collect();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&s).ok()?, 8).ok()
}

/// Parses the records of a PAX header's data; `None` when malformed.
pub(crate) fn parse_pax(mut data: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    while !data.is_empty() && data[0] != 0 {
        let sp = data.iter().position(|&c| c == b' ')?;
        let len: usize = std::str::from_utf8(&data[..sp]).ok()?.parse().ok()?;
        let rec = data.get(sp + 1..len)?;
        let body = rec.strip_suffix(b"\n")?;
        let eq = body.iter().position(|&c| c == b'=')?;
        out.push((body[..eq].to_vec(), body[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Some(out)
}

/// True when a path from an archive stays inside the extraction root: relative,
/// and without `..` components.
pub(crate) fn is_safe_path(path: &[u8]) -> bool {
    !path.starts_with(b"/") && path.split(|&c| c == b'/').all(|c| c != b"..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Xattrs;

    fn meta(kind: EntryKind) -> EntryMeta {
        EntryMeta {
            kind,
            mode: 0o644,
            uid: 1000,
            gid: 100,
            size: 5,
            mtime_ns: 1_700_000_000_123_456_789,
            atime_ns: 1_700_000_000_000_000_000,
            ctime_ns: -1_500_000_000,
            rdev: 0,
            target: None,
            xattrs: Xattrs(vec![(b"user.k".to_vec(), vec![0, 255, b'\n'])]),
        }
    }

    #[test]
    fn pax_record_lengths_count_their_own_digits() {
        let mut out = Vec::new();
        record(&mut out, "path", &[b'a'; 93]);
        assert_eq!(&out[..4], b"103 ");
        assert_eq!(out.len(), 103);
        let mut out = Vec::new();
        record(&mut out, "path", &[b'a'; 94]);
        assert_eq!(out.len(), 104);
        assert_eq!(parse_pax(&out), Some(vec![(b"path".to_vec(), vec![b'a'; 94])]));
    }

    #[test]
    fn acls_also_go_as_text() {
        let mut acl = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in
            [(1u16, 6u16, u32::MAX), (2, 4, 1234), (4, 4, u32::MAX), (16, 5, u32::MAX), (32, 0, u32::MAX)]
        {
            acl.extend_from_slice(&tag.to_le_bytes());
            acl.extend_from_slice(&perm.to_le_bytes());
            acl.extend_from_slice(&id.to_le_bytes());
        }
        assert_eq!(acl_text(&acl).as_deref(), Some("user::rw-,user:1234:r--,group::r--,mask::r-x,other::---"));
        assert_eq!(acl_text(&[1, 0, 0, 0]), None);
        assert_eq!(acl_text(b"junk"), None);
    }

    #[test]
    fn times_keep_nanoseconds_and_sign() {
        assert_eq!(pax_time(1_700_000_000_123_456_789), "1700000000.123456789");
        assert_eq!(pax_time(-1_500_000_000), "-1.500000000");
        assert_eq!(pax_time(0), "0.000000000");
    }

    #[test]
    fn long_paths_split_or_go_to_pax() {
        let p = [vec![b'd'; 120], b"/".to_vec(), vec![b'f'; 50]].concat();
        assert_eq!(split_path(&p), Some((&p[..120], &p[121..])));
        assert_eq!(split_path(&[b'x'; 150]), None);
        assert_eq!(split_path("é".as_bytes()), None);
    }

    #[test]
    fn entry_round_trips_through_the_parser() {
        let m = meta(EntryKind::File);
        let mut out = Vec::new();
        let path = [b"dir/".as_slice(), &[0xff, b'n']].concat();
        encode_entry(&mut out, &path, &m, TarKind::File { size: 5 });
        assert_eq!(out.len() % BLOCK, 0);
        let pax = parse_header(&out).expect("pax header");
        assert_eq!(pax.flag, b'x');
        let records = parse_pax(&out[BLOCK..BLOCK + pax.size as usize]).expect("records");
        let get = |k: &[u8]| records.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get(b"path"), Some(path.clone()));
        assert_eq!(get(b"hdrcharset"), Some(b"BINARY".to_vec()));
        assert_eq!(get(b"mtime"), Some(b"1700000000.123456789".to_vec()));
        assert_eq!(get(b"SCHILY.xattr.user.k"), Some(vec![0, 255, b'\n']));
        let main = parse_header(&out[out.len() - BLOCK..]).expect("header");
        assert_eq!((main.flag, main.size), (b'0', 5));
    }

    #[test]
    fn corrupt_headers_are_errors() {
        let mut out = Vec::new();
        encode_entry(&mut out, b"a", &meta(EntryKind::Dir), TarKind::Dir);
        let last = out.len() - BLOCK;
        out[last + 3] ^= 1;
        assert_eq!(parse_header(&out[last..]), Err(HeaderError::Checksum));
        assert_eq!(parse_header(&out[..10]), Err(HeaderError::Truncated));
        assert!(!is_safe_path(b"../etc"));
        assert!(!is_safe_path(b"a/../../b"));
        assert!(!is_safe_path(b"/etc"));
        assert!(is_safe_path(b"a/..b/c"));
    }
}

//! Fuzzing entry points for the parsers that live in the agent: what an SSH
//! destination's server prints, which may be anyone's.
//!
//! As in `hindsight_fs::fuzzing`, each `pub fn` is called by a cargo-fuzz
//! target in `fuzz/` and by `tests/fuzz_corpus.rs`, which replays the
//! checked-in corpus on stable Rust.

#![doc(hidden)]

use hindsight_fs::{EntryKind, EntryMeta, Xattrs};

use crate::backup::ssh::{Leftovers, parse_find_time};
use crate::backup::tar_stderr::{self, TarLine};

/// A fuzz target: arbitrary bytes in, a panic when they break a reader.
pub type Target = fn(&[u8]);

/// Every fuzz target of this crate, by name (its file in `fuzz/fuzz_targets/`
/// and its corpus in `fuzz/corpus/`).
pub const TARGETS: &[(&str, Target)] = &[("ssh_leftovers", ssh_leftovers), ("ssh_tar_stderr", ssh_tar_stderr)];

/// The tree prefix [`ssh_tar_stderr`] reads complaints under.
const TREE: &[u8] = b".partial-2026-01-01T000000Z/tree/";

/// What GNU tar on an SSH server says: any bytes read without a panic, every
/// complaint about a file gives an absolute path, and a complaint about any
/// name, quoted as GNU tar quotes it, gives back that very name.
pub fn ssh_tar_stderr(data: &[u8]) {
    for line in tar_stderr::parse(data, TREE) {
        if let TarLine::File(path, _) = line {
            assert!(path.starts_with(b"/"), "a complaint's path {path:?} is not absolute");
        }
    }
    let line = [b"tar: ".as_slice(), TREE, &gnu_escape_colon(data), b": Cannot open: Permission denied\n"].concat();
    let said = tar_stderr::parse(&line, TREE);
    let want = TarLine::File([b"/", data].concat(), "Cannot open: Permission denied".into());
    assert_eq!(said, vec![want], "a complaint about {data:?} did not give its name back");
}

/// A name as GNU tar prints it in a message (`quotearg_colon`, `escape`
/// style): printable ASCII as is, but for the backslash and the colon,
/// which are escaped, and every other byte in octal.
fn gnu_escape_colon(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for &b in name {
        match b {
            b'\\' | b':' => out.extend_from_slice(&[b'\\', b]),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
        }
    }
    out
}

/// The partial directories the listing of [`ssh_leftovers`] is asked about.
const BASES: [&str; 2] = [".partial-2026-01-01T000000Z", ".partial-2026-01-01T000000Z-1"];

/// The listing of interrupted runs' files on an SSH server (`id -u`, then
/// `find -printf '%s %T@ %m %U %G %p\0'`): every file it lists is found
/// again by its own description, and every word that parses as a `%T@`
/// time means what it says.
pub fn ssh_leftovers(data: &[u8]) {
    let bases = BASES.map(String::from);
    let mut sent = Leftovers::new(&bases);
    sent.read_listing(data);
    for (path, files) in &sent.files {
        for l in files.iter().filter(|l| l.mode <= 0o7777) {
            let meta = EntryMeta {
                kind: EntryKind::File,
                mode: l.mode,
                uid: l.uid,
                gid: l.gid,
                size: l.size,
                mtime_ns: l.mtime_ns,
                atime_ns: 0,
                ctime_ns: 0,
                rdev: 0,
                target: None,
                xattrs: Xattrs::default(),
            };
            assert!(sent.holding(path, &meta).is_some(), "a listed file is not found by its own description");
        }
    }
    let words = std::iter::once(data).chain(data.split(|&b| matches!(b, b' ' | b'\n' | 0)));
    for word in words.filter_map(|w| std::str::from_utf8(w).ok()) {
        if let Some(ns) = parse_find_time(word) {
            assert_eq!(Some(i128::from(ns)), find_time(word), "{word:?} parsed as {ns} ns");
        }
    }
}

/// What `find -printf %T@` means, in ns: `-?DIGITS[.DIGITS]`, the fraction
/// cut to nanoseconds; `None` for anything else.
fn find_time(s: &str) -> Option<i128> {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if secs.is_empty() || !digits(secs) || !digits(frac) {
        return None;
    }
    let ns = frac.bytes().chain(std::iter::repeat(b'0')).take(9).fold(0i128, |n, d| n * 10 + i128::from(d - b'0'));
    let ns = secs.parse::<i128>().ok()?.checked_mul(1_000_000_000)?.checked_add(ns)?;
    Some(if neg { -ns } else { ns })
}

/// The seed corpus: (target, file name, bytes). `tests/fuzz_corpus.rs` writes
/// them to `fuzz/corpus/`.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let record = |fields: &str, base: &str, path: &[u8]| {
        [fields.as_bytes(), b" ", base.as_bytes(), b"/tree/", path, b"\0"].concat()
    };
    let mut root = b"0\n".to_vec();
    root.extend(record("6 1700000000.5000000000 644 0 0", BASES[0], b"home/a b.txt"));
    root.extend(record("0 -1.0000000000 600 1000 1000", BASES[1], b"empty\n\xff"));
    root.extend(record("6 1700000000.5000000000 644 0 0", "elsewhere", b"x"));
    let mut user = b"1000\n".to_vec();
    user.extend(record("12 5 4755 1000 100", BASES[1], b"bin/tool"));
    user.extend(record("x 1.0 644 0 0", BASES[0], b"bad-size"));
    user.extend(record("1 1.0 999 0 0", BASES[0], b"bad-mode"));
    user.extend_from_slice(b"truncated record");
    vec![
        ("ssh_leftovers", "root".to_string(), root),
        ("ssh_leftovers", "user".to_string(), user),
        ("ssh_leftovers", "times".to_string(), b"1700000000.1234567890 5.5 12 -1.0000000000 x.1 .5 5.".to_vec()),
        (
            "ssh_tar_stderr",
            "complaints".to_string(),
            [
                b"tar: .partial-2026-01-01T000000Z/tree/srv/a\\:b: Cannot open: Permission denied\n".as_slice(),
                b"tar: .partial-2026-01-01T000000Z/tree/caf\\351\\n: Cannot utime: Operation not permitted\n",
                b"tar: Ignoring unknown extended header keyword 'hdrcharset'\ntar: x\\",
            ]
            .concat(),
        ),
        ("ssh_tar_stderr", "odd-name".to_string(), b"d\xff\n\\x: y".to_vec()),
    ]
}

//! Source trees the tests back up: one with every kind of entry and metadata
//! (and the edits made to it between two snapshots), a small plain tree, and
//! big non-sparse files for backups that last long enough to interrupt.

use std::ffi::OsStr;
use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps};

use super::system::setfacl;
use super::tree::{Kind, Tree};

/// Owner given to most fixture entries (no such user needs to exist).
pub const UID: u32 = 1234;
/// Group given to most fixture entries.
pub const GID: u32 = 5678;
/// Size of the sparse file.
pub const SPARSE_SIZE: u64 = 64 << 20;
/// Relative path of the sparse file in [`every_kind`].
pub const SPARSE: &str = "sparse.img";
/// 2001-02-03 04:05:06.123456789 UTC, the first mtime [`stamp_times`] gives.
const BASE_MTIME_NS: i64 = 981_173_106_123_456_789;

/// Odd names that must survive a round trip (in `odd/`).
pub const ODD_NAMES: &[&[u8]] = &[
    b"non-utf8-\xff\xfe",
    b"new\nline",
    b"what?",
    b"star*",
    b"back\\slash",
    b"-leading-dash",
    b" spaces  around ",
    "unicode-é-日本-🦀".as_bytes(),
];

/// `dir/rel`, where `rel` may hold any bytes.
pub fn at(dir: &Path, rel: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(rel))
}

/// Creates `path` (and its parent directories) holding `bytes`.
pub fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        mkdir(parent);
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Creates a directory and its parents.
pub fn mkdir(path: &Path) {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
}

/// `chmod` (not for symlinks).
pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// `lchown`.
pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// Owner, then mode (chown clears setuid bits, so chmod comes second).
pub fn own(path: &Path, uid: u32, gid: u32, mode: u32) {
    chown(path, uid, gid);
    chmod(path, mode);
}

/// Sets an extended attribute (not following symlinks).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
}

/// Sets atime and mtime to `ns` since the epoch (not following symlinks).
pub fn set_mtime(path: &Path, ns: i64) {
    let ts = Timespec { tv_sec: ns.div_euclid(1_000_000_000), tv_nsec: ns.rem_euclid(1_000_000_000) as _ };
    let times = Timestamps { last_access: ts, last_modification: ts };
    rustix::fs::utimensat(rustix::fs::CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

/// The mtime of `path` in ns (not following symlinks).
pub fn mtime_ns(path: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    md.mtime() * 1_000_000_000 + md.mtime_nsec()
}

/// Creates a symlink to `target`.
pub fn symlink(target: &[u8], path: &Path) {
    std::os::unix::fs::symlink(OsStr::from_bytes(target), path)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
}

/// Creates a fifo or a device node.
pub fn mknod(path: &Path, kind: FileType, dev: u64) {
    rustix::fs::mknodat(rustix::fs::CWD, path, kind, Mode::from_raw_mode(0o600), dev)
        .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
}

/// Gives every entry under `root` (root included) a distinct mtime with a
/// non-zero nanosecond part, children before their directory.
pub fn stamp_times(root: &Path) {
    let mut next = BASE_MTIME_NS;
    stamp(root, &mut next);
}

fn stamp(path: &Path, next: &mut i64) {
    let md = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    if md.is_dir() {
        let mut children: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .map(|c| c.expect("read a directory entry").path())
            .collect();
        children.sort();
        for c in children {
            stamp(&c, next);
        }
    }
    set_mtime(path, *next);
    *next += 1_000_000_007;
}

/// Fills `root` (an existing directory) with every kind of entry: owners,
/// special modes, xattrs and ACLs, symlinks of every sort, a hardlink group
/// across directories, a sparse file, a fifo, a device node, empty and
/// restricted directories, odd names; then stamps every mtime.
pub fn every_kind(root: &Path) {
    let p = |rel: &str| root.join(rel);

    write(&p("plain.txt"), &b"plain text\n".repeat(100));
    own(&p("plain.txt"), UID, GID, 0o640);
    set_xattr(&p("plain.txt"), "user.note", b"binary\x00value\xff");
    write(&p("empty"), b"");
    write(&p("medium.bin"), &pseudo_random(5 << 19, 7));
    write(&p("bin/setuid-tool"), b"#!/bin/sh\necho hi\n");
    own(&p("bin/setuid-tool"), UID, GID, 0o4755);
    sparse_file(&p(SPARSE));
    write(&p("acl.txt"), b"acl\n");
    setfacl(&["-m", &format!("u:{UID}:r")], &p("acl.txt"));

    write(&p("data/chmod-me"), b"mode changes\n");
    write(&p("data/xattr-me"), b"xattr changes\n");
    set_xattr(&p("data/xattr-me"), "user.note", b"v1");
    write(&p("data/delete-me"), b"deleted later\n");
    write(&p("gone/inner.txt"), b"the whole dir goes\n");

    mkdir(&p("dirs/sticky"));
    chmod(&p("dirs/sticky"), 0o1777);
    write(&p("dirs/private/secret"), b"secret\n");
    own(&p("dirs/private/secret"), UID, GID, 0o600);
    own(&p("dirs/private"), UID, GID, 0o700);
    write(&p("dirs/acl-default/before"), b"created before the default ACL\n");
    setfacl(&["-d", "-m", &format!("u:{UID}:rx")], &p("dirs/acl-default"));
    write(&p("dirs/acl-default/after"), b"inherits the default ACL\n");
    mkdir(&p("dirs/empty"));
    mkdir(&p("dirs/noted"));
    own(&p("dirs/noted"), UID, GID, 0o750);
    set_xattr(&p("dirs/noted"), "user.note", b"a directory's note");

    mkdir(&p("links"));
    symlink(b"../plain.txt", &p("links/rel"));
    symlink(p("plain.txt").as_os_str().as_bytes(), &p("links/abs"));
    symlink(b"does/not/exist", &p("links/dangling"));
    symlink(b"../dirs", &p("links/to-dir"));
    symlink(b"../plain.txt", &p("links/owned"));
    chown(&p("links/owned"), UID, GID);
    symlink(b"target-a", &p("links/retarget"));

    write(&p("hard/a/one"), b"one inode, three names\n");
    own(&p("hard/a/one"), UID, GID, 0o644);
    mkdir(&p("hard/b"));
    hard_link(&p("hard/a/one"), &p("hard/b/two"));
    hard_link(&p("hard/a/one"), &p("three-at-root"));

    mkdir(&p("special"));
    mknod(&p("special/fifo"), FileType::Fifo, 0);
    own(&p("special/fifo"), UID, GID, 0o620);
    mknod(&p("special/null"), FileType::CharacterDevice, rustix::fs::makedev(1, 3));
    chmod(&p("special/null"), 0o640);

    let odd = p("odd");
    for name in ODD_NAMES {
        write(&at(&odd, name), name);
    }
    write(&at(&odd, b"dir \xff\nname/inside"), b"inside an odd directory\n");

    own(root, UID, GID, 0o750);
    stamp_times(root);
}

/// Asserts that a description of [`every_kind`] really holds what the
/// round-trip tests rely on, so that a broken fixture cannot pass unnoticed.
pub fn check_every_kind(t: &Tree) {
    for kind in [Kind::File, Kind::Dir, Kind::Symlink, Kind::Fifo, Kind::CharDev] {
        assert!(t.entries.values().any(|e| e.kind == kind), "fixture lacks a {kind:?}");
    }
    let has_xattr = |rel: &str, name: &str| t.entry(rel.as_bytes()).xattrs.contains_key(name.as_bytes());
    assert!(has_xattr("acl.txt", "system.posix_acl_access"), "fixture lacks an access ACL");
    assert!(has_xattr("dirs/acl-default", "system.posix_acl_default"), "fixture lacks a default ACL");
    assert!(has_xattr("plain.txt", "user.note") && has_xattr("dirs/noted", "user.note"), "fixture lacks user xattrs");
    assert_eq!(t.entry(b"bin/setuid-tool").mode, 0o4755, "setuid bit");
    assert_eq!(t.entry(b"special/null").rdev, rustix::fs::makedev(1, 3), "device number");
    assert!(
        t.hardlink_groups().iter().any(|g| g.len() == 3),
        "fixture lacks a hardlink group of three: {:?}",
        t.hardlink_groups()
    );
    for name in ODD_NAMES {
        assert!(t.entries.contains_key(&[b"odd/".as_slice(), name].concat()), "fixture lacks odd name {name:?}");
    }
    assert!(t.entries.values().all(|e| e.mtime_ns % 1_000_000_000 != 0), "an mtime has no nanoseconds");
    assert_sparse(t, SPARSE.as_bytes());
}

/// Asserts that the file at `rel` allocates far fewer blocks than its size.
pub fn assert_sparse(t: &Tree, rel: &[u8]) {
    let size = t.entry(rel).size;
    let allocated = t.inode(rel).blocks * 512;
    assert!(allocated < size / 16, "{} is not sparse: {allocated} bytes allocated for {size}", t.path(rel).display());
}

/// Edits [`every_kind`]: content, mode, xattr and symlink target changes,
/// deletions (a file, a directory, one name of the hardlink group) and
/// additions. Returns the paths present before and after whose entry changed.
pub fn edit_every_kind(root: &Path) -> Vec<Vec<u8>> {
    let p = |rel: &str| root.join(rel);
    let mut f = std::fs::OpenOptions::new().append(true).open(p("plain.txt")).expect("open plain.txt");
    f.write_all(b"one more line\n").expect("append to plain.txt");
    chmod(&p("data/chmod-me"), 0o600);
    set_xattr(&p("data/xattr-me"), "user.note", b"v2");
    // Same length and mtime: only the target tells the change.
    let old_mtime = mtime_ns(&p("links/retarget"));
    std::fs::remove_file(p("links/retarget")).expect("remove links/retarget");
    symlink(b"target-b", &p("links/retarget"));
    set_mtime(&p("links/retarget"), old_mtime);

    std::fs::remove_file(p("data/delete-me")).expect("remove data/delete-me");
    std::fs::remove_dir_all(p("gone")).expect("remove gone/");
    std::fs::remove_file(p("three-at-root")).expect("remove three-at-root");

    write(&p("data/added.txt"), b"new file\n");
    write(&p("newdir/sub/new.txt"), b"new file in a new directory\n");
    ["plain.txt", "data/chmod-me", "data/xattr-me", "links/retarget"].iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// A few plain files and directories.
pub fn small_tree(root: &Path) {
    write(&root.join("a.txt"), b"a\n");
    write(&root.join("b/c.txt"), b"c\n");
    write(&root.join("b/d/e.bin"), &pseudo_random(100 << 10, 1));
    mkdir(&root.join("empty-dir"));
    stamp_times(root);
}

/// Creates a file of `size` bytes at `path`, every block holding data.
pub fn big_file(path: &Path, size: u64, seed: u64) {
    let mut buf = pseudo_random(1 << 20, seed);
    let mut f = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut written = 0u64;
    let mut chunk = 0u64;
    while written < size {
        buf[..8].copy_from_slice(&(chunk + 1).to_le_bytes());
        let n = (size - written).min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        written += n as u64;
        chunk += 1;
    }
}

/// Big files for backups that take seconds: a small one named first (so one
/// file is done early) and four of 200 MiB. Returns their total size.
pub fn big_files(dir: &Path) -> u64 {
    mkdir(dir);
    let mut sizes = vec![("a-small", 8u64 << 20)];
    sizes.extend(["b0", "b1", "b2", "b3"].map(|n| (n, 200u64 << 20)));
    for (i, (name, size)) in sizes.iter().enumerate() {
        big_file(&dir.join(name), *size, i as u64 + 100);
    }
    sizes.iter().map(|(_, s)| s).sum()
}

/// Deterministic bytes from a seed.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(&seed.to_le_bytes()).finalize_xof().fill(&mut out);
    out
}

fn sparse_file(path: &Path) {
    let f = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.set_len(SPARSE_SIZE).expect("size the sparse file");
    for (offset, len) in [(0, 4096), (20 << 20, 8192), (SPARSE_SIZE - 100, 100)] {
        f.write_all_at(&pseudo_random(len as usize, offset), offset).expect("write into the sparse file");
    }
    chmod(path, 0o600);
}

fn hard_link(from: &Path, to: &Path) {
    std::fs::hard_link(from, to).unwrap_or_else(|e| panic!("link {} to {}: {e}", to.display(), from.display()));
}

/// `path` escaped for use inside a glob pattern.
pub fn glob_escape(path: &Path) -> String {
    let mut out = String::new();
    for c in super::s(path).chars() {
        if "*?[]{}\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

//! What a user compares between a source and a snapshot: for every entry its
//! kind, mode, owner, mtime (ns), size, content hash, symlink target, xattrs
//! (ACLs included) and device number; hardlink groups; inodes and allocated
//! blocks for sharing and sparseness checks. [`assert_same`] prints the first
//! differences readably.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How many differences a failed comparison prints.
const SHOWN_DIFFS: usize = 25;

/// Kind of a filesystem entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Character device.
    CharDev,
    /// Block device.
    BlockDev,
    /// Unix socket.
    Socket,
}

/// Everything compared about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Kind.
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time in ns since the epoch.
    pub mtime_ns: i128,
    /// Size (files and symlinks; 0 for the rest, whose sizes are filesystem details).
    pub size: u64,
    /// blake3 of a regular file's content.
    pub blake3: Option<String>,
    /// Symlink target.
    pub target: Option<Vec<u8>>,
    /// Extended attributes by name.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Device number of device nodes.
    pub rdev: u64,
}

/// Where an entry lives on disk: not compared, used for sharing and sparseness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inode {
    /// Device.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Link count.
    pub nlink: u64,
    /// Allocated 512-byte blocks.
    pub blocks: u64,
}

/// A described directory tree, keyed by path relative to its root (root = empty).
#[derive(Debug, Clone)]
pub struct Tree {
    /// The directory described.
    pub root: PathBuf,
    /// Entries by relative path.
    pub entries: BTreeMap<Vec<u8>, Entry>,
    /// Inodes by relative path.
    pub inodes: BTreeMap<Vec<u8>, Inode>,
}

/// Describes the tree at `root` (not following symlinks).
pub fn describe(root: &Path) -> Tree {
    let mut tree = Tree { root: root.to_path_buf(), entries: BTreeMap::new(), inodes: BTreeMap::new() };
    add_entry(&mut tree, root, Vec::new());
    tree
}

fn add_entry(tree: &mut Tree, path: &Path, rel: Vec<u8>) {
    let md = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    let ft = md.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_char_device() {
        Kind::CharDev
    } else if ft.is_block_device() {
        Kind::BlockDev
    } else {
        Kind::Socket
    };
    let target = (kind == Kind::Symlink).then(|| {
        std::fs::read_link(path)
            .unwrap_or_else(|e| panic!("readlink {}: {e}", path.display()))
            .into_os_string()
            .into_vec()
    });
    let entry = Entry {
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
        size: if matches!(kind, Kind::File | Kind::Symlink) { md.size() } else { 0 },
        blake3: (kind == Kind::File).then(|| hash_file(path)),
        target,
        xattrs: read_xattrs(path),
        rdev: if matches!(kind, Kind::CharDev | Kind::BlockDev) { md.rdev() } else { 0 },
    };
    let inode = Inode { dev: md.dev(), ino: md.ino(), nlink: md.nlink(), blocks: md.blocks() };
    tree.entries.insert(rel.clone(), entry);
    tree.inodes.insert(rel.clone(), inode);
    if kind == Kind::Dir {
        let rd = std::fs::read_dir(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        for child in rd {
            let name = child.unwrap_or_else(|e| panic!("read {}: {e}", path.display())).file_name();
            add_entry(tree, &path.join(&name), join(&rel, name.as_bytes()));
        }
    }
}

/// `dir/name` for relative paths (the root is empty).
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() { name.to_vec() } else { [dir, b"/", name].concat() }
}

fn hash_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = blake3::Hasher::new();
    h.update_reader(&mut f).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    h.finalize().to_hex().to_string()
}

fn read_xattrs(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut list = vec![0u8; 64 * 1024];
    let n = match rustix::fs::llistxattr(path, &mut list[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return BTreeMap::new(),
        Err(e) => panic!("llistxattr {}: {e}", path.display()),
    };
    let mut out = BTreeMap::new();
    let mut value = vec![0u8; 64 * 1024];
    for name in list[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let len = rustix::fs::lgetxattr(path, OsStr::from_bytes(name), &mut value[..])
            .unwrap_or_else(|e| panic!("lgetxattr {} {}: {e}", path.display(), show(name)));
        out.insert(name.to_vec(), value[..len].to_vec());
    }
    out
}

impl Tree {
    /// The entry at `rel`, or a panic naming the tree.
    pub fn entry(&self, rel: &[u8]) -> &Entry {
        self.entries.get(rel).unwrap_or_else(|| panic!("{} has no {}", self.root.display(), show(rel)))
    }

    /// The inode at `rel`, or a panic naming the tree.
    pub fn inode(&self, rel: &[u8]) -> Inode {
        *self.inodes.get(rel).unwrap_or_else(|| panic!("{} has no {}", self.root.display(), show(rel)))
    }

    /// Absolute path of `rel` in this tree.
    pub fn path(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() { self.root.clone() } else { self.root.join(OsStr::from_bytes(rel)) }
    }

    /// The same tree without the entries `drop` selects.
    pub fn without(&self, drop: impl Fn(&[u8]) -> bool) -> Tree {
        let keep = |rel: &&Vec<u8>| !drop(rel);
        Tree {
            root: self.root.clone(),
            entries: self.entries.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
            inodes: self.inodes.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    /// Sets of paths that are hardlinks of one another (groups of two or more).
    pub fn hardlink_groups(&self) -> BTreeSet<Vec<Vec<u8>>> {
        let mut by_inode: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
        for (rel, ino) in &self.inodes {
            if self.entries[rel].kind != Kind::Dir {
                by_inode.entry((ino.dev, ino.ino)).or_default().push(rel.clone());
            }
        }
        by_inode.into_values().filter(|g| g.len() > 1).collect()
    }

    /// Paths of entries that are not directories.
    pub fn non_dirs(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.entries.iter().filter(|(_, e)| e.kind != Kind::Dir).map(|(k, _)| k)
    }
}

/// True when `rel` is `prefix` or below it.
pub fn is_under(rel: &[u8], prefix: &[u8]) -> bool {
    rel == prefix || (rel.starts_with(prefix) && rel.get(prefix.len()) == Some(&b'/'))
}

/// A path or name with non-printable and non-ASCII bytes escaped.
pub fn show(bytes: &[u8]) -> String {
    let escaped: String = bytes.iter().flat_map(|b| std::ascii::escape_default(*b)).map(char::from).collect();
    format!("\"{escaped}\"")
}

struct Xattrs<'a>(&'a BTreeMap<Vec<u8>, Vec<u8>>);

impl fmt::Display for Xattrs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{}={}", show(k), show(v))).collect();
        write!(f, "{{{}}}", parts.join(", "))
    }
}

/// Field-by-field differences between two entries.
fn entry_diffs(want: &Entry, got: &Entry) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, w: String, g: String| {
        if w != g {
            out.push(format!("{name}: expected {w}, got {g}"));
        }
    };
    field("kind", format!("{:?}", want.kind), format!("{:?}", got.kind));
    field("mode", format!("{:04o}", want.mode), format!("{:04o}", got.mode));
    field("uid", want.uid.to_string(), got.uid.to_string());
    field("gid", want.gid.to_string(), got.gid.to_string());
    field("mtime_ns", want.mtime_ns.to_string(), got.mtime_ns.to_string());
    field("size", want.size.to_string(), got.size.to_string());
    field("blake3", format!("{:?}", want.blake3), format!("{:?}", got.blake3));
    field(
        "target",
        want.target.as_deref().map(show).unwrap_or_default(),
        got.target.as_deref().map(show).unwrap_or_default(),
    );
    field("xattrs", Xattrs(&want.xattrs).to_string(), Xattrs(&got.xattrs).to_string());
    field("rdev", want.rdev.to_string(), got.rdev.to_string());
    out
}

/// Every difference between two trees, one line each.
pub fn differences(want: &Tree, got: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, w) in &want.entries {
        match got.entries.get(rel) {
            None => out.push(format!("missing: {}", show(rel))),
            Some(g) => out.extend(entry_diffs(w, g).into_iter().map(|d| format!("{}: {d}", show(rel)))),
        }
    }
    for rel in got.entries.keys().filter(|k| !want.entries.contains_key(*k)) {
        out.push(format!("unexpected: {}", show(rel)));
    }
    let (wg, gg) = (want.hardlink_groups(), got.hardlink_groups());
    let fmt_group = |g: &Vec<Vec<u8>>| g.iter().map(|p| show(p)).collect::<Vec<_>>().join(" = ");
    for g in wg.difference(&gg) {
        out.push(format!("hardlink group missing: {}", fmt_group(g)));
    }
    for g in gg.difference(&wg) {
        out.push(format!("unexpected hardlink group: {}", fmt_group(g)));
    }
    out
}

/// Asserts that `got` describes the same tree as `want`, showing the first differences.
pub fn assert_same(want: &Tree, got: &Tree, what: &str) {
    let diffs = differences(want, got);
    if diffs.is_empty() {
        return;
    }
    let shown: Vec<&str> = diffs.iter().take(SHOWN_DIFFS).map(String::as_str).collect();
    panic!(
        "{what}: {} differs from {} in {} way(s):\n  {}{}",
        got.root.display(),
        want.root.display(),
        diffs.len(),
        shown.join("\n  "),
        if diffs.len() > SHOWN_DIFFS { "\n  ..." } else { "" }
    );
}

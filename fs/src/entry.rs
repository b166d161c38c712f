//! Metadata of one snapshot entry, as captured from the source and stored in the index.

/// The kind of a filesystem entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
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

impl EntryKind {
    /// The integer stored in the index.
    pub fn code(self) -> i64 {
        match self {
            EntryKind::File => 1,
            EntryKind::Dir => 2,
            EntryKind::Symlink => 3,
            EntryKind::Fifo => 4,
            EntryKind::CharDev => 5,
            EntryKind::BlockDev => 6,
            EntryKind::Socket => 7,
        }
    }

    /// The kind for an index integer.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            1 => EntryKind::File,
            2 => EntryKind::Dir,
            3 => EntryKind::Symlink,
            4 => EntryKind::Fifo,
            5 => EntryKind::CharDev,
            6 => EntryKind::BlockDev,
            7 => EntryKind::Socket,
            _ => return None,
        })
    }

    /// The kind encoded in an `st_mode`.
    pub fn from_mode(mode: u32) -> Option<Self> {
        Some(match mode & 0o170000 {
            0o100000 => EntryKind::File,
            0o040000 => EntryKind::Dir,
            0o120000 => EntryKind::Symlink,
            0o010000 => EntryKind::Fifo,
            0o020000 => EntryKind::CharDev,
            0o060000 => EntryKind::BlockDev,
            0o140000 => EntryKind::Socket,
            _ => return None,
        })
    }

    /// The `S_IF*` bits of this kind.
    pub fn mode_bits(self) -> u32 {
        match self {
            EntryKind::File => 0o100000,
            EntryKind::Dir => 0o040000,
            EntryKind::Symlink => 0o120000,
            EntryKind::Fifo => 0o010000,
            EntryKind::CharDev => 0o020000,
            EntryKind::BlockDev => 0o060000,
            EntryKind::Socket => 0o140000,
        }
    }
}

/// Extended attributes, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Xattrs(pub Vec<(Vec<u8>, Vec<u8>)>);

impl Xattrs {
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Encodes as `u32 name_len, name, u32 value_len, value` repeated (little endian).
    pub fn encode(&self) -> Option<Vec<u8>> {
        if self.0.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for (name, value) in &self.0 {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
        Some(out)
    }

    /// Decodes [`Xattrs::encode`]'s format; `None` when the bytes are malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        fn take<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
            let len = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
            let v = b.get(4..4 + len)?;
            *b = &b[4 + len..];
            Some(v)
        }
        let mut rest = bytes;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let name = take(&mut rest)?.to_vec();
            let value = take(&mut rest)?.to_vec();
            out.push((name, value));
        }
        Some(Xattrs(out))
    }
}

/// Everything the index records about an entry except its place in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryMeta {
    /// Kind of entry.
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (regular files; symlinks: target length).
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Access time, ns since the epoch.
    pub atime_ns: i64,
    /// Status change time at the source, ns since the epoch.
    pub ctime_ns: i64,
    /// Device number (character and block devices).
    pub rdev: u64,
    /// Symlink target.
    pub target: Option<Vec<u8>>,
    /// Extended attributes, including POSIX ACLs.
    pub xattrs: Xattrs,
}

impl EntryMeta {
    /// True when the two describe the same content and metadata for change
    /// detection: kind, size, mtime, mode, owner, xattrs and symlink target.
    pub fn unchanged_from(&self, prev: &EntryMeta) -> bool {
        self.kind == prev.kind
            && self.size == prev.size
            && self.mtime_ns == prev.mtime_ns
            && self.mode == prev.mode
            && self.uid == prev.uid
            && self.gid == prev.gid
            && self.rdev == prev.rdev
            && self.target == prev.target
            && self.xattrs == prev.xattrs
    }
}

/// Splits ns since the epoch into seconds and nanoseconds.
pub(crate) fn split_ns(ns: i64) -> (i64, u32) {
    (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattrs_round_trip() {
        let x = Xattrs(vec![(b"user.a".to_vec(), vec![0, 1, 2]), (b"user.b".to_vec(), vec![])]);
        let enc = x.encode().expect("non-empty");
        assert_eq!(Xattrs::decode(&enc), Some(x));
        assert_eq!(Xattrs::default().encode(), None);
        assert_eq!(Xattrs::decode(&[1, 0, 0]), None);
    }

    #[test]
    fn negative_times_split() {
        assert_eq!(split_ns(-1), (-1, 999_999_999));
        assert_eq!(split_ns(1_500_000_000), (1, 500_000_000));
    }
}

//! "Is this file unchanged since the previous snapshot?", written once for
//! every engine: a local hardlink tree links the file, an SSH tree links it
//! on the server, an object store points at the body it already has.
//!
//! The rule is the inode's: an equal ctime with equal kind, size, mtime,
//! mode and owner. Any write, truncation, chmod, chown, rename onto it or
//! xattr change moves ctime, which a user cannot set back, so a file that
//! passes is the one recorded, and its recorded xattrs are still its own
//! (the engines take them from the previous snapshot instead of reading
//! them again through a path lookup per file).
//!
//! When ctime moved but nothing that matters did (a link added, a chown to
//! the same owner), every engine then asks `EntryMeta::unchanged_from`, with
//! the xattrs read again: the same content and metadata is still reused.

use hindsight_fs::EntryMeta;

/// True when the entry `now` (from `fstat`) cannot have changed since `prev`
/// was recorded.
pub(super) fn unchanged(now: &EntryMeta, prev: &EntryMeta) -> bool {
    now.ctime_ns == prev.ctime_ns
        && now.kind == prev.kind
        && now.size == prev.size
        && now.mtime_ns == prev.mtime_ns
        && now.mode == prev.mode
        && (now.uid, now.gid) == (prev.uid, prev.gid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hindsight_fs::EntryKind;

    #[test]
    fn any_inode_change_is_a_change() {
        let prev = EntryMeta {
            kind: EntryKind::File,
            mode: 0o644,
            uid: 1,
            gid: 1,
            size: 10,
            mtime_ns: 5,
            atime_ns: 0,
            ctime_ns: 7,
            rdev: 0,
            target: None,
            xattrs: Default::default(),
        };
        assert!(unchanged(&prev.clone(), &prev));
        let changed = [
            EntryMeta { ctime_ns: 8, ..prev.clone() },
            EntryMeta { size: 11, ..prev.clone() },
            EntryMeta { mtime_ns: 6, ..prev.clone() },
            EntryMeta { mode: 0o600, ..prev.clone() },
            EntryMeta { uid: 2, ..prev.clone() },
            EntryMeta { kind: EntryKind::Symlink, ..prev.clone() },
        ];
        for now in changed {
            assert!(!unchanged(&now, &prev), "{now:?}");
        }
    }
}

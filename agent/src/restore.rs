//! Restoring files and directories of a snapshot onto this machine, exactly
//! (content checked against its blake3, owner, mode, times, xattrs and ACLs,
//! hardlinks, sparse files, odd names) and safely against what is at the
//! target:
//!
//! - every directory on the way is opened without following a symlink: a
//!   symlink planted at the target is an error for that path, never followed;
//! - a file, symlink or special file is created under a temporary name in
//!   its directory and renamed over the old name, so an existing hardlink at
//!   the target is replaced, never written through;
//! - owner first, then mode: setuid and setgid bits land on a file owned by
//!   its recorded owner only (when the agent cannot give the file its owner,
//!   they are dropped).
//!
//! Modes: `merge` writes what is missing or differs (size, mtime, mode,
//! owner, kind) and keeps a file that is newer at the target; `overwrite`
//! writes everything; `skip-existing` writes only what is missing.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use hindsight_fs::index::{IndexEntry, ROOT_ID};
use hindsight_fs::{EntryKind, EntryMeta, posix};
use rustix::fs::{AtFlags, Mode, OFlags};

use crate::backup::Cancel;
use crate::error::AgentError;
use crate::model::{FileRestore, RestoreMode};
use crate::restore_rules::Rules;
use crate::snapshot_file::{SnapshotReader, components};

/// Blocks of this size that are all zeros become holes.
const HOLE_BLOCK: usize = 64 << 10;

/// Most per-file errors and dry-run lines kept in a restore's result.
const MAX_LINES: usize = 200;

/// What a restore did (or, dry, would do).
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Entries written.
    pub written: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Entries left as they were at the target.
    pub kept: u64,
    /// Per-entry errors (`path: why`).
    pub errors: Vec<String>,
    /// Dry run: what would be written (`create PATH`, `replace PATH`).
    pub plan: Vec<String>,
}

impl Outcome {
    /// The result in words: counts, then errors or the plan (capped).
    pub(crate) fn describe(&self, dry_run: bool) -> String {
        let mut s = if dry_run {
            format!("dry run: {} entries would be written, {} kept as they are", self.written, self.kept)
        } else {
            format!("{} entries restored ({} bytes), {} kept as they were", self.written, self.bytes, self.kept)
        };
        if !self.errors.is_empty() {
            s.push_str(&format!("; {} failed:", self.errors.len()));
        }
        for line in self.errors.iter().chain(&self.plan).take(MAX_LINES) {
            s.push('\n');
            s.push_str(line);
        }
        s
    }

    fn error(&mut self, path: &[u8], why: impl std::fmt::Display) {
        self.errors.push(format!("{}: {why}", String::from_utf8_lossy(path)));
    }
}

/// Where a request restores to: its directory (`/` for the original place).
pub(crate) fn target_root(r: &FileRestore, protected: &[PathBuf]) -> Result<PathBuf, AgentError> {
    let root = PathBuf::from(r.to.as_deref().unwrap_or("/"));
    if !root.is_absolute() || root.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(AgentError::invalid(format!("--to {}: give an absolute path without ..", root.display())));
    }
    // Compared as the kernel resolves them: the deepest existing ancestor, canonical.
    let mut existing = root.clone();
    while !existing.exists() {
        if !existing.pop() {
            break;
        }
    }
    let real = std::fs::canonicalize(&existing)
        .unwrap_or(existing.clone())
        .join(root.strip_prefix(&existing).unwrap_or(Path::new("")));
    for p in protected {
        let p = std::fs::canonicalize(p).unwrap_or(p.clone());
        if real.starts_with(&p) {
            return Err(AgentError::invalid(format!(
                "{} is inside {}, a destination or the agent's own directory: restore somewhere else",
                root.display(),
                p.display()
            )));
        }
    }
    if r.paths.is_empty() {
        return Err(AgentError::invalid("give at least one path to restore (/ for everything)"));
    }
    for p in &r.paths {
        components(p)?;
    }
    Ok(root)
}

/// One restore under way.
struct Restorer<'a> {
    reader: &'a SnapshotReader,
    rules: &'a Rules,
    mode: RestoreMode,
    dry_run: bool,
    cancel: &'a Cancel,
    progress: &'a dyn Fn(u64),
    out: Outcome,
    /// First restored name of each hardlink group: its directory's path under
    /// the target root and its name.
    links: HashMap<i64, (Vec<u8>, Vec<u8>)>,
    root: OwnedFd,
    counter: u64,
}

/// Restores `r.paths` of the snapshot `reader` reads under `root`.
pub(crate) fn restore(
    reader: &SnapshotReader,
    r: &FileRestore,
    root: &Path,
    rules: &Rules,
    cancel: &Cancel,
    progress: &dyn Fn(u64),
) -> Result<Outcome, AgentError> {
    if !r.dry_run && !root.exists() {
        hindsight_fs::create_private_dir_all(root)
            .map_err(|e| AgentError::invalid(format!("cannot create the restore target: {e}")))?;
    }
    // A dry run into a target that does not exist yet: all of it would be created.
    let missing = r.dry_run && !root.exists();
    let root_fd = match posix::open_dir(if missing { Path::new("/") } else { root }) {
        Ok(fd) => fd,
        Err(e) => return Err(AgentError::invalid(format!("{}: {e}", root.display()))),
    };
    let mut me = Restorer {
        reader,
        rules,
        mode: r.mode,
        dry_run: r.dry_run,
        cancel,
        progress,
        out: Outcome::default(),
        links: HashMap::new(),
        root: root_fd,
        counter: 0,
    };
    let fs_err = |e: hindsight_fs::FsError| AgentError::unreachable(format!("{}: {e}", reader.what));
    for path in &r.paths {
        let comps = components(path)?;
        // The entries along the path, from the snapshot's root.
        let mut chain: Vec<IndexEntry> = Vec::new();
        let mut id = ROOT_ID;
        for c in &comps {
            match reader.index.lookup(id, c).map_err(fs_err)? {
                Some(e) => {
                    id = e.id;
                    chain.push(e);
                }
                None => return Err(AgentError::not_found(format!("{path} is not in {}", reader.what))),
            }
        }
        match chain.last() {
            Some(last) if missing => me.plan_missing(&comps, 0, last),
            _ => me.restore_path(&comps, &chain)?,
        }
        if cancel.is_cancelled() {
            return Err(AgentError::conflict("cancelled"));
        }
    }
    Ok(me.out)
}

impl Restorer<'_> {
    /// Restores the last entry of `chain` (the whole snapshot when empty),
    /// creating the directories on the way that are missing.
    fn restore_path(&mut self, comps: &[Vec<u8>], chain: &[IndexEntry]) -> Result<(), AgentError> {
        let root_entry = self.reader.index.get(ROOT_ID).ok().flatten();
        let Some((last, parents)) = chain.split_last() else {
            // `/`: every child of the snapshot's root, into the root.
            let dir = self.root.try_clone().map_err(|e| AgentError::internal(e.to_string()))?;
            let children = self.children(ROOT_ID)?;
            for c in children {
                self.entry(dir.as_fd(), b"", c);
            }
            if let Some(meta) =
                root_entry.map(|e| e.meta).filter(|_| self.mode == RestoreMode::Overwrite && !self.dry_run)
            {
                let _ = apply_meta(dir.as_fd(), &safe_meta(&meta));
            }
            return Ok(());
        };
        let mut dir = self.root.try_clone().map_err(|e| AgentError::internal(e.to_string()))?;
        let mut at: Vec<u8> = Vec::new();
        for (c, e) in comps.iter().zip(parents) {
            at.push(b'/');
            at.extend_from_slice(c);
            match posix::open_dir_at(dir.as_fd(), c) {
                Ok(fd) => dir = fd,
                Err(_) if posix::lstat_at(dir.as_fd(), c).is_err() => {
                    if self.dry_run {
                        let depth = at.split(|&b| b == b'/').filter(|x| !x.is_empty()).count();
                        self.plan_missing(comps, depth - 1, last);
                        return Ok(());
                    }
                    let made = rustix::fs::mkdirat(dir.as_fd(), OsStr::from_bytes(c), Mode::from_raw_mode(0o700))
                        .map_err(std::io::Error::from)
                        .and_then(|()| posix::open_dir_at(dir.as_fd(), c));
                    match made {
                        Ok(fd) => {
                            let _ = apply_meta(fd.as_fd(), &self.meta_for(&at, &e.meta));
                            dir = fd;
                        }
                        Err(err) => {
                            self.out.error(&at, format!("cannot create the directory: {err}"));
                            return Ok(());
                        }
                    }
                }
                Err(err) => {
                    self.out.error(&at, format!("not a directory at the target (not followed): {err}"));
                    return Ok(());
                }
            }
        }
        let parent: Vec<u8> = at;
        self.entry(dir.as_fd(), &parent, last.clone());
        Ok(())
    }

    /// The metadata `path` is given: the snapshot's, as the file permission
    /// rules change it, made safe.
    fn meta_for(&self, path: &[u8], meta: &EntryMeta) -> EntryMeta {
        safe_meta(&self.rules.apply(path, meta))
    }

    fn children(&self, id: i64) -> Result<Vec<IndexEntry>, AgentError> {
        self.reader.index.children(id).map_err(|e| AgentError::unreachable(format!("{}: {e}", self.reader.what)))
    }

    /// Restores `e` as `e.name` in `dir` (at `parent` under the target root);
    /// its errors are recorded, the restore goes on.
    fn entry(&mut self, dir: BorrowedFd<'_>, parent: &[u8], e: IndexEntry) {
        if self.cancel.is_cancelled() {
            return;
        }
        let path = [parent, b"/", &e.name].concat();
        if e.name.is_empty() || e.name.contains(&b'/') || e.name == b"." || e.name == b".." {
            self.out.error(&path, "not a file name (the index is damaged): left out");
            return;
        }
        let existing = posix::lstat_at(dir, &e.name).ok().and_then(|st| posix::meta_from_stat(&st));
        let write = match (&existing, self.mode) {
            (None, _) => true,
            (Some(_), RestoreMode::Overwrite) => true,
            (Some(_), RestoreMode::SkipExisting) => false,
            (Some(old), RestoreMode::Merge) => differs(old, &e.meta) && !newer(old, &e.meta),
        };
        if e.meta.kind == EntryKind::Dir {
            self.dir(dir, &path, e, existing.as_ref(), write);
            return;
        }
        if !write {
            self.out.kept += 1;
            return;
        }
        if existing.as_ref().is_some_and(|m| m.kind == EntryKind::Dir) {
            self.out.error(&path, "a directory is in the way at the target: not replaced");
            return;
        }
        if self.dry_run {
            let verb = if existing.is_some() { "replace" } else { "create" };
            self.out.plan.push(format!("{verb} {}", String::from_utf8_lossy(&path)));
            self.out.written += 1;
            return;
        }
        match self.leaf(dir, &path, &e) {
            Ok(()) => self.out.written += 1,
            Err(why) => self.out.error(&path, why),
        }
    }

    /// A directory: created if missing, its children restored, then its metadata.
    fn dir(&mut self, dir: BorrowedFd<'_>, path: &[u8], e: IndexEntry, existing: Option<&EntryMeta>, write: bool) {
        match existing {
            Some(m) if m.kind != EntryKind::Dir => {
                self.out.error(path, "something else than a directory is in the way at the target: not replaced");
                return;
            }
            None if self.dry_run => {
                self.out.plan.push(format!("create {}", String::from_utf8_lossy(path)));
                self.out.written += 1;
                // Nothing exists below a directory that does not: every child is created.
                self.plan_all(path, e.id);
                return;
            }
            None => {
                if let Err(err) = rustix::fs::mkdirat(dir, OsStr::from_bytes(&e.name), Mode::from_raw_mode(0o700)) {
                    self.out.error(path, format!("cannot create the directory: {err}"));
                    return;
                }
            }
            Some(_) => {}
        }
        let fd = match posix::open_dir_at(dir, &e.name) {
            Ok(fd) => fd,
            Err(err) => {
                self.out.error(path, format!("not opened as a directory (a symbolic link is never followed): {err}"));
                return;
            }
        };
        let children = match self.children(e.id) {
            Ok(c) => c,
            Err(err) => {
                self.out.error(path, err.message);
                return;
            }
        };
        for c in children {
            self.entry(fd.as_fd(), path, c);
        }
        if self.dry_run {
            if write && existing.is_some() {
                self.out.plan.push(format!("replace {} (its metadata)", String::from_utf8_lossy(path)));
            }
            return;
        }
        if write || existing.is_none() {
            match apply_meta(fd.as_fd(), &self.meta_for(path, &e.meta)) {
                Ok(()) => self.out.written += 1,
                Err(err) => self.out.error(path, format!("metadata: {err}")),
            }
        } else {
            self.out.kept += 1;
        }
    }

    /// Dry run where `comps[from]` is missing at the target: it and
    /// everything below it would be created, down to `last` and its content.
    fn plan_missing(&mut self, comps: &[Vec<u8>], from: usize, last: &IndexEntry) {
        let mut p: Vec<u8> = Vec::new();
        for (i, c) in comps.iter().enumerate() {
            p.push(b'/');
            p.extend_from_slice(c);
            if i >= from {
                self.out.plan.push(format!("create {}", String::from_utf8_lossy(&p)));
                self.out.written += 1;
            }
        }
        if last.meta.kind == EntryKind::Dir {
            self.plan_all(&p, last.id);
        }
    }

    /// Dry run below a directory missing at the target: everything is created.
    fn plan_all(&mut self, path: &[u8], id: i64) {
        let Ok(children) = self.children(id) else { return };
        for c in children {
            let p = [path, b"/", &c.name].concat();
            self.out.plan.push(format!("create {}", String::from_utf8_lossy(&p)));
            self.out.written += 1;
            if c.meta.kind == EntryKind::Dir {
                self.plan_all(&p, c.id);
            }
        }
    }

    /// A file, symlink or special file: made under a temporary name, given
    /// its metadata, then renamed over `e.name`.
    fn leaf(&mut self, dir: BorrowedFd<'_>, path: &[u8], e: &IndexEntry) -> Result<(), String> {
        self.counter += 1;
        let tmp = format!(".hindsight-restore-{}-{}", std::process::id(), self.counter).into_bytes();
        let made = self.make(dir, path, &tmp, e);
        let renamed = made.and_then(|()| {
            rustix::fs::renameat(dir, OsStr::from_bytes(&tmp), dir, OsStr::from_bytes(&e.name))
                .map_err(|err| format!("cannot put it in place: {err}"))
        });
        if renamed.is_err() {
            let _ = rustix::fs::unlinkat(dir, OsStr::from_bytes(&tmp), AtFlags::empty());
        }
        renamed?;
        if e.meta.kind == EntryKind::File && e.nlink > 1 {
            let group = e.hardlink.unwrap_or(e.id);
            self.links.entry(group).or_insert_with(|| (path[..path.len() - e.name.len() - 1].to_vec(), e.name.clone()));
        }
        Ok(())
    }

    fn make(&mut self, dir: BorrowedFd<'_>, path: &[u8], tmp: &[u8], e: &IndexEntry) -> Result<(), String> {
        let meta = self.meta_for(path, &e.meta);
        match e.meta.kind {
            EntryKind::File => {
                if let Some(first) = self.hardlink_of(e) {
                    return self.link(dir, tmp, &first);
                }
                let comps: Vec<&[u8]> = path.split(|&b| b == b'/').filter(|c| !c.is_empty()).collect();
                let mut src = self.reader.file(e, &comps).map_err(|err| err.message)?;
                let mut file = posix::create_new_at(dir, tmp, 0o600).map_err(|err| format!("cannot create: {err}"))?;
                self.copy(&mut src, &mut file).map_err(|err| err.to_string())?;
                apply_meta(file.as_fd(), &meta).map_err(|err| format!("metadata: {err}"))
            }
            EntryKind::Symlink => {
                let target = e.meta.target.clone().unwrap_or_default();
                rustix::fs::symlinkat(OsStr::from_bytes(&target), dir, OsStr::from_bytes(tmp))
                    .map_err(|err| format!("cannot create the symbolic link: {err}"))?;
                posix::apply_meta_at(dir, tmp, &meta).map_err(|err| format!("metadata: {err}"))
            }
            _ => {
                posix::make_special_at(dir, tmp, &meta).map_err(|err| format!("cannot create: {err}"))?;
                posix::apply_meta_at(dir, tmp, &meta).map_err(|err| format!("metadata: {err}"))
            }
        }
    }

    /// The first restored name of `e`'s hardlink group, if there is one.
    fn hardlink_of(&self, e: &IndexEntry) -> Option<(Vec<u8>, Vec<u8>)> {
        (e.nlink > 1).then(|| self.links.get(&e.hardlink.unwrap_or(e.id)).cloned()).flatten()
    }

    /// Links `tmp` in `dir` to the file already restored at `first`, its
    /// directory reached beneath the target root without following a symlink.
    fn link(&self, dir: BorrowedFd<'_>, tmp: &[u8], first: &(Vec<u8>, Vec<u8>)) -> Result<(), String> {
        let (parent, name) = first;
        let rel: Vec<u8> = parent.iter().copied().skip_while(|&b| b == b'/').collect();
        let src_dir = if rel.is_empty() {
            self.root.try_clone().map_err(|e| e.to_string())?
        } else {
            posix::open_beneath(self.root.as_fd(), &rel, OFlags::PATH | OFlags::DIRECTORY)
                .map_err(|e| format!("the other name of this hardlink cannot be reached: {e}"))?
        };
        rustix::fs::linkat(src_dir.as_fd(), OsStr::from_bytes(name), dir, OsStr::from_bytes(tmp), AtFlags::empty())
            .map_err(|e| format!("cannot link it to its other name: {e}"))
    }

    /// Copies a file's content, leaving holes where whole blocks are zeros.
    fn copy(&mut self, src: &mut impl Read, file: &mut std::fs::File) -> std::io::Result<()> {
        let mut buf = vec![0u8; HOLE_BLOCK];
        let mut size = 0u64;
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                let n = src.read(&mut buf[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            if buf[..filled].iter().all(|&b| b == 0) {
                file.seek(SeekFrom::Current(filled as i64))?;
            } else {
                file.write_all(&buf[..filled])?;
            }
            size += filled as u64;
            self.out.bytes += filled as u64;
            (self.progress)(self.out.bytes);
            if self.cancel.is_cancelled() {
                return Err(std::io::Error::other("cancelled"));
            }
            if filled < buf.len() {
                break;
            }
        }
        // A trailing hole is made by the length; the read reached its end, where the hash is checked.
        let mut end = [0u8; 1];
        if src.read(&mut end)? != 0 {
            return Err(std::io::Error::other("longer than its index says"));
        }
        file.set_len(size)
    }
}

/// Gives an open file or directory exactly `meta`: the extended attributes
/// it got by itself (an ACL inherited from a default ACL of the directory it
/// was created in) and the snapshot does not record are removed first.
fn apply_meta(fd: BorrowedFd<'_>, meta: &EntryMeta) -> std::io::Result<()> {
    let mut names = vec![0u8; 64 << 10];
    let n = rustix::fs::flistxattr(fd, &mut names)?;
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if !meta.xattrs.0.iter().any(|(k, _)| k == name) {
            rustix::fs::fremovexattr(fd, OsStr::from_bytes(name))?;
        }
    }
    posix::apply_meta_fd(fd, meta)
}

/// The metadata to give: setuid and setgid only where the file will be its
/// recorded owner's (as root); the agent run unprivileged drops them.
fn safe_meta(m: &EntryMeta) -> EntryMeta {
    let mut m = m.clone();
    if !rustix::process::geteuid().is_root() {
        m.mode &= !0o6000;
    }
    m
}

/// Whether what is at the target differs from the snapshot's entry, by the
/// quick check: kind, size, mtime, mode, owner.
fn differs(old: &EntryMeta, new: &EntryMeta) -> bool {
    old.kind != new.kind
        || (new.kind != EntryKind::Dir && (old.size != new.size || old.mtime_ns != new.mtime_ns))
        || old.mode != new.mode
        || old.uid != new.uid
        || old.gid != new.gid
        || old.target != new.target
}

/// A file at the target newer than the snapshot's (kept by `merge`).
fn newer(old: &EntryMeta, new: &EntryMeta) -> bool {
    old.kind == EntryKind::File && new.kind == EntryKind::File && old.mtime_ns > new.mtime_ns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: EntryKind, size: u64, mtime_ns: i64) -> EntryMeta {
        EntryMeta {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size,
            mtime_ns,
            atime_ns: 0,
            ctime_ns: 0,
            rdev: 0,
            target: None,
            xattrs: Default::default(),
        }
    }

    #[test]
    fn merge_writes_what_differs_and_keeps_what_is_newer() {
        let snap = meta(EntryKind::File, 10, 100);
        assert!(!differs(&meta(EntryKind::File, 10, 100), &snap));
        assert!(differs(&meta(EntryKind::File, 11, 100), &snap));
        assert!(differs(&meta(EntryKind::Symlink, 10, 100), &snap));
        assert!(newer(&meta(EntryKind::File, 11, 200), &snap));
        assert!(!newer(&meta(EntryKind::File, 11, 50), &snap));
        assert!(
            !differs(&meta(EntryKind::Dir, 1, 5), &meta(EntryKind::Dir, 2, 6)),
            "a directory's size and mtime are its content's"
        );
    }

    #[test]
    fn targets_are_absolute_and_outside_the_agents_directories() {
        let r = |to: &str| FileRestore {
            snapshot: crate::model::SnapshotId(1),
            paths: vec!["/etc".into()],
            to: Some(to.into()),
            mode: RestoreMode::Merge,
            dry_run: false,
            accept_conditions: false,
            accepted_conditions: Vec::new(),
        };
        let protected = [PathBuf::from("/var/lib/hindsight")];
        assert!(target_root(&r("relative"), &protected).is_err());
        assert!(target_root(&r("/tmp/../etc"), &protected).is_err());
        assert!(target_root(&r("/var/lib/hindsight/x"), &protected).is_err_and(|e| e.message.contains("inside")));
        assert_eq!(
            target_root(&r("/tmp/restored"), &protected).map_err(|e| e.message),
            Ok(PathBuf::from("/tmp/restored"))
        );
        let mut none = r("/tmp/x");
        none.paths.clear();
        assert!(target_root(&none, &protected).is_err());
    }
}

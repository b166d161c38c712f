//! File history from the snapshots' indexes, without reading file content:
//! the distinct versions of one path, the paths matching a pattern across
//! snapshots, and what changed between two snapshots.
//!
//! An index comes from a destination and may be hostile: names are raw
//! bytes shown lossily, a parent chain that loops or is too deep ends the
//! path (the entry is left out), and a snapshot whose index cannot be read
//! is left out of `versions` and `find` with a warning (`diff` fails).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};
use hindsight_fs::index::{IndexEntry, IndexReader, ROOT_ID};
use hindsight_fs::{EntryKind, EntryMeta};
use jiff::Timestamp;

use crate::catalog::Catalog;
use crate::error::AgentError;
use crate::model::{
    DiffEntry, DiffQuery, EntryState, FileVersion, FindMatch, FindQuery, Snapshot, SnapshotDiff, SnapshotId,
    SnapshotRef, VersionsQuery,
};
use crate::snapshot_file::{components, open_index};

/// Deepest path an index may describe before its parent chain is taken for a loop.
const MAX_DEPTH: usize = 4096;

/// The distinct versions of `q.path`, newest first.
pub(crate) fn versions(catalog: &Catalog, cache: &Path, q: &VersionsQuery) -> Result<Vec<FileVersion>, AgentError> {
    let comps = components(&q.path)?;
    let mut out: Vec<(Vec<u8>, FileVersion)> = Vec::new();
    for snap in selected(catalog, q.job.as_deref(), q.destination.as_deref(), None, None)? {
        let Some(index) = index_of(catalog, cache, &snap) else { continue };
        let found = lookup(&index, &comps).and_then(|e| match e {
            Some(e) => content_key(&index, &e).map(|k| Some((e, k))),
            None => Ok(None),
        });
        let (entry, key) = match found {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("versions: snapshot {} ({}/{}): {e}", snap.id, snap.job, snap.name);
                continue;
            }
        };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.snapshots.push(snapshot_ref(&snap)),
            None => out.push((
                key,
                FileVersion { state: state(&entry.meta, entry.blake3), snapshots: vec![snapshot_ref(&snap)] },
            )),
        }
    }
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

/// The paths matching `q.pattern` in the chosen snapshots, by path.
pub(crate) fn find(catalog: &Catalog, cache: &Path, q: &FindQuery) -> Result<Vec<FindMatch>, AgentError> {
    let on_path = q.pattern.contains('/');
    let matcher = glob(&q.pattern, on_path)?;
    let since = q.since.as_deref().map(|t| parse_time("since", t)).transpose()?;
    let until = q.until.as_deref().map(|t| parse_time("until", t)).transpose()?;
    let snaps = selected(catalog, q.job.as_deref(), q.destination.as_deref(), since, until)?;
    // Each snapshot's index scanned on its own thread; the matches merged in snapshot order.
    let hits: Vec<Vec<(Vec<u8>, EntryKind)>> = {
        use rayon::prelude::*;
        let prefilter = if on_path { None } else { sqlite_prefilter(&q.pattern) };
        snaps.par_iter().map(|snap| matches_in(catalog, cache, snap, &matcher, on_path, prefilter)).collect()
    };
    let mut found: std::collections::BTreeMap<Vec<u8>, FindMatch> = Default::default();
    for (snap, hits) in snaps.iter().zip(hits) {
        for (path, kind) in hits {
            let m = found.entry(path.clone()).or_insert_with(|| FindMatch {
                path: String::from_utf8_lossy(&path).into_owned(),
                kind: kind_name(kind).to_string(),
                snapshots: Vec::new(),
            });
            m.snapshots.push(snapshot_ref(snap));
        }
    }
    Ok(found.into_values().collect())
}

/// The paths of `snap` that `matcher` matches (their names, or their whole
/// paths with `on_path`); none, with a warning, when its index cannot be read.
fn matches_in(
    catalog: &Catalog,
    cache: &Path,
    snap: &Snapshot,
    matcher: &GlobMatcher,
    on_path: bool,
    prefilter: Option<&str>,
) -> Vec<(Vec<u8>, EntryKind)> {
    let Some(index) = index_of(catalog, cache, snap) else { return Vec::new() };
    let warn =
        |e: &dyn std::fmt::Display| tracing::warn!("find: snapshot {} ({}/{}): {e}", snap.id, snap.job, snap.name);
    if let Some(glob) = prefilter {
        // SQLite picks the names out; their paths come from their parents, each looked up once.
        let mut hits: Vec<(i64, i64, Vec<u8>, EntryKind)> = Vec::new();
        let scanned = index.for_each_name(Some(glob), |id, parent, name, kind| {
            if matcher.is_match(OsStr::from_bytes(name)) {
                hits.push((id, parent, name.to_vec(), kind));
            }
        });
        if let Err(e) = scanned {
            warn(&e);
            return Vec::new();
        }
        let mut dirs: HashMap<i64, Option<Vec<u8>>> = HashMap::new();
        return hits
            .into_iter()
            .filter_map(|(_, parent, name, kind)| {
                let dir = dirs.entry(parent).or_insert_with(|| dir_path(&index, parent)).clone()?;
                let mut p = if dir == b"/" { Vec::new() } else { dir };
                p.push(b'/');
                p.extend_from_slice(&name);
                Some((p, kind))
            })
            .collect();
    }
    let mut table = PathTable::default();
    let mut hits: Vec<(i64, EntryKind)> = Vec::new();
    let scanned = index.for_each_name(None, |id, parent, name, kind| {
        if on_path || matcher.is_match(OsStr::from_bytes(name)) {
            hits.push((id, kind));
        }
        table.add(id, parent, name.to_vec());
    });
    if let Err(e) = scanned {
        warn(&e);
        return Vec::new();
    }
    hits.into_iter()
        .filter_map(|(id, kind)| table.path(id).map(|p| (p, kind)))
        .filter(|(p, _)| !on_path || matcher.is_match(OsStr::from_bytes(p)))
        .collect()
}

/// The absolute path of directory `id` (`/` for the root), from the index.
fn dir_path(index: &IndexReader, id: i64) -> Option<Vec<u8>> {
    if id == ROOT_ID {
        return Some(b"/".to_vec());
    }
    let rel = index.path_of(id).ok()?;
    Some([b"/".as_slice(), &rel].concat())
}

/// A SQLite GLOB that selects at least the names `pattern` (a globset glob
/// on names) matches, when the pattern is simple enough to say so exactly:
/// literal characters, `*` and `?` only.
fn sqlite_prefilter(pattern: &str) -> Option<&str> {
    let simple = !pattern.is_empty() && !pattern.chars().any(|c| matches!(c, '[' | ']' | '{' | '}' | '\\' | '/'));
    simple.then_some(pattern)
}

/// What changed from snapshot `q.a` to `q.b` (under `q.path` when given).
pub(crate) fn diff(catalog: &Catalog, cache: &Path, q: &DiffQuery) -> Result<SnapshotDiff, AgentError> {
    let prefix = q.path.as_deref().map(components).transpose()?.map(|c| join(&c));
    let side = |id: i64| -> Result<(Snapshot, HashMap<Vec<u8>, IndexEntry>), AgentError> {
        let snap = catalog.snapshot(SnapshotId(id))?.snapshot;
        let index = open_index(catalog, cache, &snap)?;
        let entries = all_paths(&index, prefix.as_deref())
            .map_err(|e| AgentError::unreachable(format!("snapshot {id} ({}/{}): {e}", snap.job, snap.name)))?;
        Ok((snap, entries))
    };
    let (a, old) = side(q.a)?;
    let (b, new) = side(q.b)?;
    let mut entries = Vec::new();
    for (path, n) in &new {
        match old.get(path) {
            None => entries.push(entry(path, "added", Vec::new())),
            Some(o) => {
                let what = changes(o, n);
                if !what.is_empty() {
                    entries.push(entry(path, "changed", what));
                }
            }
        }
    }
    entries.extend(old.keys().filter(|p| !new.contains_key(*p)).map(|p| entry(p, "removed", Vec::new())));
    entries.sort_by(|x, y| x.path.cmp(&y.path));
    let count = |c: &str| entries.iter().filter(|e| e.change == c).count() as u64;
    Ok(SnapshotDiff {
        added: count("added"),
        removed: count("removed"),
        changed: count("changed"),
        a: snapshot_ref(&a),
        b: snapshot_ref(&b),
        entries,
    })
}

fn entry(path: &[u8], change: &str, what: Vec<String>) -> DiffEntry {
    DiffEntry { path: String::from_utf8_lossy(path).into_owned(), change: change.into(), what }
}

/// What differs between two index entries of one path.
fn changes(o: &IndexEntry, n: &IndexEntry) -> Vec<String> {
    let (a, b) = (&o.meta, &n.meta);
    let mut what = Vec::new();
    let mut note = |cond: bool, w: &str| {
        if cond {
            what.push(w.to_string());
        }
    };
    note(a.kind != b.kind, "kind");
    note(a.kind == b.kind && a.kind == EntryKind::File && o.blake3 != n.blake3, "content");
    note(a.size != b.size && a.kind != EntryKind::Dir, "size");
    note(a.mode != b.mode, "mode");
    note(a.uid != b.uid || a.gid != b.gid, "owner");
    note(a.mtime_ns != b.mtime_ns && a.kind != EntryKind::Dir, "mtime");
    note(a.xattrs != b.xattrs, "xattrs");
    note(a.target != b.target, "target");
    note(a.rdev != b.rdev, "device");
    what
}

/// Every entry of `index` by absolute path (under `prefix` when given).
fn all_paths(
    index: &IndexReader,
    prefix: Option<&[u8]>,
) -> Result<HashMap<Vec<u8>, IndexEntry>, hindsight_fs::FsError> {
    let mut table = PathTable::default();
    let mut entries = Vec::new();
    index.for_each(|e| {
        table.add(e.id, e.parent, e.name.clone());
        entries.push(e);
        Ok(())
    })?;
    let mut out = HashMap::with_capacity(entries.len());
    for e in entries {
        let Some(path) = table.path(e.id) else { continue };
        let under = prefix.is_none_or(|p| p == b"/" || path == p || path.starts_with(&[p, b"/"].concat()));
        if under && e.id != ROOT_ID {
            out.insert(path, e);
        }
    }
    Ok(out)
}

/// Ids to parents and names, and the absolute paths they make.
#[derive(Default)]
struct PathTable {
    rows: HashMap<i64, (i64, Vec<u8>)>,
}

impl PathTable {
    fn add(&mut self, id: i64, parent: i64, name: Vec<u8>) {
        self.rows.insert(id, (parent, name));
    }

    /// `/a/b/c` for an entry (`/` for the root); none when its chain of
    /// parents is broken, loops or is deeper than [`MAX_DEPTH`].
    fn path(&self, id: i64) -> Option<Vec<u8>> {
        let mut names: Vec<&[u8]> = Vec::new();
        let mut cur = id;
        while cur != ROOT_ID {
            let (parent, name) = self.rows.get(&cur)?;
            names.push(name);
            cur = *parent;
            if names.len() > MAX_DEPTH {
                return None;
            }
        }
        let mut out = Vec::new();
        for n in names.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(n);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        Some(out)
    }
}

/// What makes two versions of a path the same: the blake3 of a file, the
/// target of a symlink, the names in a directory, the kind and device of the rest.
fn content_key(index: &IndexReader, e: &IndexEntry) -> Result<Vec<u8>, hindsight_fs::FsError> {
    let mut key = vec![e.meta.kind.code() as u8];
    match e.meta.kind {
        EntryKind::File => key.extend(e.blake3.unwrap_or_default()),
        EntryKind::Symlink => key.extend(e.meta.target.clone().unwrap_or_default()),
        EntryKind::Dir => {
            let mut names: Vec<Vec<u8>> = index.children(e.id)?.into_iter().map(|c| c.name).collect();
            names.sort();
            let mut h = blake3::Hasher::new();
            for n in names {
                h.update(&(n.len() as u64).to_le_bytes());
                h.update(&n);
            }
            key.extend(h.finalize().as_bytes());
        }
        _ => key.extend(e.meta.rdev.to_le_bytes()),
    }
    Ok(key)
}

/// The entry at absolute path `comps` (none: the root), if the snapshot has it.
fn lookup(index: &IndexReader, comps: &[Vec<u8>]) -> Result<Option<IndexEntry>, hindsight_fs::FsError> {
    let mut cur = match index.get(ROOT_ID)? {
        Some(root) => root,
        None => return Ok(None),
    };
    for c in comps {
        match index.lookup(cur.id, c)? {
            Some(e) => cur = e,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    if comps.is_empty() {
        return b"/".to_vec();
    }
    comps.iter().flat_map(|c| std::iter::once(b'/').chain(c.iter().copied())).collect()
}

/// The snapshots to look in, newest first.
fn selected(
    catalog: &Catalog,
    job: Option<&str>,
    destination: Option<&str>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Result<Vec<Snapshot>, AgentError> {
    if let Some(d) = destination {
        catalog.destination(d)?;
    }
    let snaps = catalog.snapshots(job, destination)?;
    if let Some(j) = job
        && snaps.is_empty()
        && catalog.job(hindsight_fs::split_job_dir(j).0).is_err()
    {
        return Err(AgentError::not_found(format!("no job named {j} and no snapshot of it")));
    }
    Ok(snaps
        .into_iter()
        .filter(|s| since.is_none_or(|t| s.finished >= t) && until.is_none_or(|t| s.finished < t))
        .collect())
}

/// A snapshot's index, or none (with a warning) when it cannot be read now.
fn index_of(catalog: &Catalog, cache: &Path, snap: &Snapshot) -> Option<IndexReader> {
    match open_index(catalog, cache, snap) {
        Ok(i) => Some(i),
        Err(e) => {
            tracing::warn!("snapshot {} ({}/{}) left out: {}", snap.id, snap.job, snap.name, e.message);
            None
        }
    }
}

fn glob(pattern: &str, on_path: bool) -> Result<GlobMatcher, AgentError> {
    if pattern.is_empty() {
        return Err(AgentError::invalid("give a pattern"));
    }
    GlobBuilder::new(pattern)
        .literal_separator(on_path)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| AgentError::invalid(format!("pattern {pattern:?}: {e}")))
}

/// RFC 3339, or a date (`2026-11-22`, midnight UTC).
fn parse_time(what: &str, s: &str) -> Result<Timestamp, AgentError> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    s.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| AgentError::invalid(format!("{what} {s:?}: use a date (2026-11-22) or an RFC 3339 time")))
}

fn snapshot_ref(s: &Snapshot) -> SnapshotRef {
    SnapshotRef {
        id: s.id,
        job: s.job.clone(),
        name: s.name.clone(),
        destination: s.destination.clone(),
        finished: s.finished,
    }
}

fn kind_name(k: EntryKind) -> &'static str {
    match k {
        EntryKind::File => "file",
        EntryKind::Dir => "dir",
        EntryKind::Symlink => "symlink",
        EntryKind::Fifo => "fifo",
        EntryKind::CharDev => "chardev",
        EntryKind::BlockDev => "blockdev",
        EntryKind::Socket => "socket",
    }
}

fn state(m: &EntryMeta, blake3: Option<[u8; 32]>) -> EntryState {
    EntryState {
        kind: kind_name(m.kind).to_string(),
        size: m.size,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        mtime: Timestamp::from_nanosecond(i128::from(m.mtime_ns)).unwrap_or(Timestamp::UNIX_EPOCH),
        blake3: blake3.map(|h| blake3::Hash::from(h).to_hex().to_string()),
        target: m.target.as_ref().map(|t| String::from_utf8_lossy(t).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_built_from_parents_and_loops_end_them() {
        let mut t = PathTable::default();
        t.add(2, ROOT_ID, b"etc".to_vec());
        t.add(3, 2, b"nginx".to_vec());
        t.add(4, 5, b"a".to_vec());
        t.add(5, 4, b"b".to_vec());
        assert_eq!(t.path(3).as_deref(), Some(&b"/etc/nginx"[..]));
        assert_eq!(t.path(ROOT_ID).as_deref(), Some(&b"/"[..]));
        assert_eq!(t.path(4), None, "a loop");
        assert_eq!(t.path(9), None, "no such entry");
    }

    #[test]
    fn only_simple_name_patterns_go_to_sqlite() {
        assert_eq!(sqlite_prefilter("a*.csv"), Some("a*.csv"));
        assert_eq!(sqlite_prefilter("f?.txt"), Some("f?.txt"));
        assert_eq!(sqlite_prefilter("[ab]*"), None);
        assert_eq!(sqlite_prefilter("{a,b}.txt"), None);
        assert_eq!(sqlite_prefilter(""), None);
    }

    #[test]
    fn paths_and_times_are_checked() {
        assert!(components("etc").is_err());
        assert!(components("/etc/../x").is_err());
        assert_eq!(join(&components("/etc//nginx/").expect("ok")), b"/etc/nginx");
        assert_eq!(join(&components("/").expect("ok")), b"/");
        assert_eq!(parse_time("since", "2026-11-22").expect("date").to_string(), "2026-11-22T00:00:00Z");
        assert!(parse_time("since", "yesterday").is_err());
    }
}

//! Reads a finished index: lookups by parent and name, directory listings, scans.
//!
//! An index comes from a destination, which someone else may have written:
//! opening one checks that its schema is exactly the one Hindsight writes
//! (the tables and indexes, their columns, no views or triggers, nothing
//! generated), with SQLite's defensive mode on and the schema untrusted, and
//! every statement runs under a deadline (a progress handler interrupts a
//! step that takes longer than [`IndexReader::set_step_budget`]). A hostile
//! index can be refused or fail a query; it cannot hang its reader.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::limits::Limit;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use super::schema::COLUMNS;
use super::{IndexEntry, Location, Member};
use crate::entry::{EntryKind, EntryMeta, Xattrs};
use crate::error::{FsError, Result};

/// Time one step of a statement may take unless the reader says otherwise.
pub(super) const DEFAULT_STEP_BUDGET: Duration = Duration::from_secs(30);

/// Largest value (name, target, xattrs) an index may hold: far above any
/// real one, far below what would exhaust memory.
const MAX_VALUE: i32 = 16 << 20;

/// VM instructions between two looks at the deadline.
const PROGRESS_EVERY: i32 = 1000;

/// A read-only handle on one snapshot's index.
///
/// The database is opened `immutable`, so reading takes no locks and works on
/// read-only destinations. A handle is not shared between threads; open one per
/// reader (opening is cheap).
pub struct IndexReader {
    conn: Connection,
    path: PathBuf,
    /// When the statement running now must stop, in nanoseconds since [`epoch`] (0: no deadline).
    deadline: Arc<AtomicU64>,
    budget: Duration,
}

/// The instant deadlines are counted from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_since_epoch() -> u64 {
    epoch().elapsed().as_nanos().min(u128::from(u64::MAX)) as u64
}

impl IndexReader {
    /// Opens the index at `path` (a regular file, not a symlink).
    pub fn open(path: &Path) -> Result<Self> {
        let fd = rustix::fs::open(
            path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| FsError::io("open", path, e))?;
        Self::open_fd(&fd, path)
    }

    /// Opens the index file open at `fd` (`path` names it in messages). The
    /// caller chose how `fd` was opened (beneath a snapshot directory,
    /// without symlinks); SQLite opens that very file through `/proc`.
    pub fn open_fd(fd: &OwnedFd, path: &Path) -> Result<Self> {
        let st = rustix::fs::fstat(fd).map_err(|e| FsError::io("stat", path, e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(FsError::Format { path: path.into(), message: "the index is not a regular file".into() });
        }
        let uri = format!("file:/proc/self/fd/{}?immutable=1", fd.as_raw_fd());
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let err = |e| FsError::index(path, e);
        let conn = Connection::open_with_flags(uri, flags).map_err(err)?;
        // A schema written by someone else runs no function of its choosing,
        // and no statement can change the file or the connection's rules.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true).map_err(err)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false).map_err(err)?;
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE).map_err(err)?;
        // Readers are many (one per snapshot being browsed) and short-lived: a small page cache each.
        conn.execute_batch("PRAGMA cache_size = -2048;").map_err(err)?;
        // Without a stable plan, SQLite compiles a statement whose plan could
        // depend on a bound value (the range and LIMIT of `children_after`)
        // again at every run: half of the mount's CPU when it lists directories.
        // The plan these queries get is the same either way.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(err)?;
        let deadline = Arc::new(AtomicU64::new(0));
        let watched = deadline.clone();
        conn.progress_handler(
            PROGRESS_EVERY,
            Some(move || {
                let d = watched.load(Ordering::Relaxed);
                d != 0 && nanos_since_epoch() > d
            }),
        )
        .map_err(err)?;
        let reader = IndexReader { conn, path: path.into(), deadline, budget: DEFAULT_STEP_BUDGET };
        reader.arm();
        super::schema::check(&reader.conn).map_err(|message| FsError::Format { path: path.into(), message })?;
        let schema: Option<String> = reader
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0))
            .optional()
            .map_err(|e| FsError::index(path, e))?;
        if schema.as_deref() != Some(super::schema::SCHEMA_VERSION) {
            return Err(FsError::Format { path: path.into(), message: format!("unsupported index schema {schema:?}") });
        }
        Ok(reader)
    }

    /// Where the index was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long one step of a statement may take before it is interrupted
    /// (the mount, which answers users, allows less than a check).
    pub fn set_step_budget(&mut self, budget: Duration) {
        self.budget = budget;
    }

    /// Starts the deadline of the next step.
    pub(crate) fn arm(&self) {
        let d = nanos_since_epoch().saturating_add(self.budget.as_nanos().min(u128::from(u64::MAX)) as u64);
        self.deadline.store(d.max(1), Ordering::Relaxed);
    }

    /// The entry with this id.
    pub fn get(&self, id: i64) -> Result<Option<IndexEntry>> {
        self.query_opt(&format!("SELECT {COLUMNS} FROM entries WHERE id = ?1"), params![id])
    }

    /// The child of `parent` called `name`.
    pub fn lookup(&self, parent: i64, name: &[u8]) -> Result<Option<IndexEntry>> {
        self.query_opt(&format!("SELECT {COLUMNS} FROM entries WHERE parent = ?1 AND name = ?2"), params![parent, name])
    }

    /// Every child of `parent`, in id order.
    pub fn children(&self, parent: i64) -> Result<Vec<IndexEntry>> {
        self.arm();
        let err = |e| FsError::index(&self.path, e);
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM entries WHERE parent = ?1 ORDER BY id"))
            .map_err(err)?;
        let rows = stmt.query_map(params![parent], map_row).map_err(err)?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(err)
    }

    /// Up to `limit` children of `parent` with an id above `after`, in id order
    /// (a directory listing read in pieces).
    pub fn children_after(&self, parent: i64, after: i64, limit: u32) -> Result<Vec<IndexEntry>> {
        self.arm();
        let err = |e| FsError::index(&self.path, e);
        let mut stmt = self.conn.prepare_cached(&children_after_sql()).map_err(err)?;
        let rows = stmt.query_map(params![parent, after, limit], map_row).map_err(err)?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(err)
    }

    /// Path of an entry relative to the snapshot root, from its chain of parents.
    pub fn path_of(&self, id: i64) -> Result<Vec<u8>> {
        let mut names = Vec::new();
        let mut cur = id;
        while cur != super::ROOT_ID {
            let e = self.get(cur)?.ok_or_else(|| FsError::Format {
                path: self.path.clone(),
                message: format!("entry {cur} has no row"),
            })?;
            names.push(e.name);
            cur = e.parent;
            if names.len() > 4096 {
                return Err(FsError::Format { path: self.path.clone(), message: "parent chain loops".into() });
            }
        }
        names.reverse();
        Ok(names.join(&b'/'))
    }

    /// Calls `f` for every entry in id order, without loading them all.
    pub fn for_each(&self, mut f: impl FnMut(IndexEntry) -> Result<()>) -> Result<()> {
        let err = |e| FsError::index(&self.path, e);
        let mut stmt = self.conn.prepare(&format!("SELECT {COLUMNS} FROM entries ORDER BY id")).map_err(err)?;
        self.arm();
        let mut rows = stmt.query([]).map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            f(map_row(row).map_err(err)?)?;
            // A scan of a large index is many short steps: each gets the budget.
            self.arm();
        }
        Ok(())
    }

    /// Calls `f` with the id, parent, name and kind of every entry, in id
    /// order: the columns a search over names needs, without the rest of the
    /// rows. With `glob` (SQLite's GLOB: `*`, `?`, `[...]`), only the entries
    /// whose name it matches. An unknown kind is an error.
    pub fn for_each_name(&self, glob: Option<&str>, mut f: impl FnMut(i64, i64, &[u8], EntryKind)) -> Result<()> {
        let err = |e| FsError::index(&self.path, e);
        let sql = match glob {
            Some(_) => "SELECT id, parent, name, kind FROM entries WHERE CAST(name AS TEXT) GLOB ?1 ORDER BY id",
            None => "SELECT id, parent, name, kind FROM entries ORDER BY id",
        };
        let mut stmt = self.conn.prepare(sql).map_err(err)?;
        self.arm();
        let mut rows = match glob {
            Some(g) => stmt.query([g]),
            None => stmt.query([]),
        }
        .map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            let (id, parent): (i64, i64) = (row.get(0).map_err(err)?, row.get(1).map_err(err)?);
            let name = row.get_ref(2).map_err(err)?.as_blob().map_err(|e| err(e.into()))?;
            let code: i64 = row.get(3).map_err(err)?;
            let kind = EntryKind::from_code(code).ok_or_else(|| FsError::Format {
                path: self.path.clone(),
                message: format!("entry {id} has an unknown kind {code}"),
            })?;
            f(id, parent, name, kind);
            self.arm();
        }
        Ok(())
    }

    /// The gzip members of a compressed archive, in member order (empty for
    /// other structures). Fails when the rows are not numbered 0, 1, 2...
    /// or hold negative numbers: a reader indexes them by position.
    pub fn members(&self) -> Result<Vec<Member>> {
        let err = |e| FsError::index(&self.path, e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, compressed_offset, compressed_length, uncompressed_offset, uncompressed_length \
                 FROM members ORDER BY id",
            )
            .map_err(err)?;
        self.arm();
        let mut rows = stmt.query([]).map_err(err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            let mut cols = [0i64; 5];
            for (i, c) in cols.iter_mut().enumerate() {
                *c = row.get(i).map_err(err)?;
            }
            let [id, co, cl, uo, ul] = cols;
            if id != out.len() as i64 || cols.iter().any(|&c| c < 0) {
                return Err(FsError::Format {
                    path: self.path.clone(),
                    message: format!("members table: malformed row {id} at position {}", out.len()),
                });
            }
            out.push(Member {
                compressed_offset: co as u64,
                compressed_length: cl as u64,
                uncompressed_offset: uo as u64,
                uncompressed_length: ul as u64,
            });
        }
        Ok(out)
    }

    /// Number of entries.
    pub fn len(&self) -> Result<u64> {
        self.arm();
        self.conn
            .query_row("SELECT count(*) FROM entries", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| FsError::index(&self.path, e))
    }

    /// True when the index has no entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The read-only connection, for crate-internal queries that need their own
    /// SQL (integrity checks stream rows in tar stream order).
    /// A value of the index's meta table (`structure`, `data_file`, ...).
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.arm();
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| FsError::index(&self.path, e))
    }

    pub(crate) fn connection(&self) -> &Connection {
        self.arm();
        &self.conn
    }

    fn query_opt(&self, sql: &str, p: impl rusqlite::Params) -> Result<Option<IndexEntry>> {
        self.arm();
        let err = |e| FsError::index(&self.path, e);
        let mut stmt = self.conn.prepare_cached(sql).map_err(err)?;
        stmt.query_row(p, map_row).optional().map_err(err)
    }
}

fn children_after_sql() -> String {
    format!("SELECT {COLUMNS} FROM entries WHERE parent = ?1 AND id > ?2 ORDER BY id LIMIT ?3")
}

fn map_row(r: &Row<'_>) -> rusqlite::Result<IndexEntry> {
    let kind_code: i64 = r.get(3)?;
    let kind = EntryKind::from_code(kind_code).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Integer, "unknown entry kind".into())
    })?;
    let xattrs: Option<Vec<u8>> = r.get(14)?;
    let xattrs = match xattrs {
        None => Xattrs::default(),
        Some(b) => Xattrs::decode(&b).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(14, rusqlite::types::Type::Blob, "malformed xattrs".into())
        })?,
    };
    let blake3: Option<Vec<u8>> = r.get(15)?;
    let blake3 = match blake3 {
        None => None,
        Some(b) => Some(<[u8; 32]>::try_from(b.as_slice()).map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(15, rusqlite::types::Type::Blob, "malformed blake3".into())
        })?),
    };
    Ok(IndexEntry {
        id: r.get(0)?,
        parent: r.get(1)?,
        name: r.get(2)?,
        meta: EntryMeta {
            kind,
            mode: r.get(4)?,
            uid: r.get(5)?,
            gid: r.get(6)?,
            size: r.get::<_, i64>(7)? as u64,
            mtime_ns: r.get(8)?,
            atime_ns: r.get(9)?,
            ctime_ns: r.get(10)?,
            rdev: r.get::<_, i64>(11)? as u64,
            target: r.get(13)?,
            xattrs,
        },
        nlink: r.get(12)?,
        blake3,
        hardlink: r.get(16)?,
        location: Location {
            blob: r.get(17)?,
            data_offset: r.get(18)?,
            header_offset: r.get(19)?,
            member: r.get(20)?,
            ino: r.get::<_, Option<i64>>(21)?.map(|i| i as u64),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{IndexWriter, ROOT_ID};

    fn meta(kind: EntryKind) -> EntryMeta {
        EntryMeta {
            kind,
            mode: 0o644,
            uid: 1,
            gid: 2,
            size: 3,
            mtime_ns: -5,
            atime_ns: 6,
            ctime_ns: 7,
            rdev: 0,
            target: None,
            xattrs: Xattrs(vec![(b"user.x".to_vec(), b"y".to_vec())]),
        }
    }

    #[test]
    fn write_then_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("odd name %?.sqlite");
        let mut w = IndexWriter::create(&path, "incremental", "s").expect("create");
        let entry = |id, parent, name: &[u8], kind, hardlink| IndexEntry {
            id,
            parent,
            name: name.to_vec(),
            meta: meta(kind),
            nlink: 1,
            blake3: Some([7; 32]),
            hardlink,
            location: Location::default(),
        };
        w.insert(&entry(ROOT_ID, 0, b"", EntryKind::Dir, None)).expect("insert");
        w.insert(&entry(3, ROOT_ID, b"b\n\xff", EntryKind::File, Some(2))).expect("insert");
        w.insert(&entry(2, ROOT_ID, b"a", EntryKind::File, Some(2))).expect("insert");
        w.finish().expect("finish");
        let r = IndexReader::open(&path).expect("open");
        let kids = r.children(ROOT_ID).expect("children");
        assert_eq!(kids.iter().map(|k| k.id).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(kids[0].nlink, 2);
        let b = r.lookup(ROOT_ID, b"b\n\xff").expect("lookup").expect("found");
        assert_eq!(b.meta, meta(EntryKind::File));
        assert_eq!(b.blake3, Some([7; 32]));
        assert!(r.lookup(ROOT_ID, b"zz").expect("lookup").is_none());
        assert_eq!(r.len().expect("len"), 3);
        assert!(r.members().expect("members").is_empty());
    }

    #[test]
    fn listing_in_pieces_compiles_its_query_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.sqlite");
        let mut w = IndexWriter::create(&path, "incremental", "s").expect("create");
        let mut root = IndexEntry {
            id: ROOT_ID,
            parent: 0,
            name: Vec::new(),
            meta: meta(EntryKind::Dir),
            nlink: 1,
            blake3: None,
            hardlink: None,
            location: Location::default(),
        };
        w.insert(&root).expect("insert");
        for id in 2..50 {
            root.id = id;
            root.parent = ROOT_ID;
            root.name = format!("f{id}").into_bytes();
            w.insert(&root).expect("insert");
        }
        w.finish().expect("finish");
        let r = IndexReader::open(&path).expect("open");
        let (mut after, mut seen) = (0, Vec::new());
        loop {
            let page = r.children_after(ROOT_ID, after, 5).expect("page");
            let Some(last) = page.last() else { break };
            after = last.id;
            seen.extend(page.iter().map(|e| e.id));
        }
        assert_eq!(seen, (2..50).collect::<Vec<_>>());
        let stmt = r.conn.prepare_cached(&children_after_sql()).expect("cached");
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0, "compiled again for new bindings");
    }

    #[test]
    fn members_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.sqlite");
        let mut w = IndexWriter::create(&path, "compressed", "s").expect("create");
        w.insert_member(1, (30, 20), (100, 50)).expect("member");
        w.insert_member(0, (0, 30), (0, 100)).expect("member");
        w.finish().expect("finish");
        let r = IndexReader::open(&path).expect("open");
        let m = r.members().expect("members");
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[1],
            Member { compressed_offset: 30, compressed_length: 20, uncompressed_offset: 100, uncompressed_length: 50 }
        );

        let path = dir.path().join("gap.sqlite");
        let mut w = IndexWriter::create(&path, "compressed", "s").expect("create");
        w.insert_member(1, (0, 30), (0, 100)).expect("member");
        w.finish().expect("finish");
        assert!(IndexReader::open(&path).expect("open").members().is_err());
    }

    /// A finished index with a root and one file, then `sql` run on it as a
    /// hostile destination would (on a plain writable connection).
    fn tampered(sql: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.sqlite");
        let mut w = IndexWriter::create(&path, "incremental", "s").expect("create");
        for (id, parent, name) in [(ROOT_ID, 0, b"".as_slice()), (2, ROOT_ID, b"f".as_slice())] {
            let e = IndexEntry {
                id,
                parent,
                name: name.to_vec(),
                meta: meta(if id == ROOT_ID { EntryKind::Dir } else { EntryKind::File }),
                nlink: 1,
                blake3: None,
                hardlink: None,
                location: Location::default(),
            };
            w.insert(&e).expect("insert");
        }
        w.finish().expect("finish");
        Connection::open(&path).expect("open").execute_batch(sql).expect("tamper");
        (dir, path)
    }

    #[test]
    fn a_hostile_schema_is_refused_at_once() {
        let hostile = [
            // The review's hang: `entries` as a view that never ends.
            "ALTER TABLE entries RENAME TO real_entries; \
             CREATE VIEW entries AS SELECT real_entries.* FROM real_entries, \
             (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT max(x) FROM c);",
            "CREATE TRIGGER t AFTER INSERT ON meta BEGIN SELECT 1; END;",
            "CREATE VIEW v AS SELECT 1;",
            "DROP INDEX entries_by_name;",
            "CREATE TABLE extra (x);",
            "ALTER TABLE members ADD COLUMN g INTEGER GENERATED ALWAYS AS (id * 2) VIRTUAL;",
            "CREATE INDEX by_expr ON entries(size * 2);",
        ];
        for sql in hostile {
            let (_dir, path) = tampered(sql);
            let start = Instant::now();
            let err = IndexReader::open(&path).err().unwrap_or_else(|| panic!("opened an index tampered with {sql}"));
            assert!(start.elapsed() < Duration::from_secs(2), "refusing took {:?}", start.elapsed());
            assert!(err.to_string().contains("not an index written by Hindsight"), "{sql}: {err}");
        }
        let (_dir, path) = tampered("SELECT 1;");
        IndexReader::open(&path).expect("an untouched index opens");
    }

    #[test]
    fn a_step_that_outlives_its_budget_is_interrupted() {
        let (_dir, path) = tampered("SELECT 1;");
        let mut r = IndexReader::open(&path).expect("open");
        r.set_step_budget(Duration::from_millis(200));
        let start = Instant::now();
        let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT max(x) FROM c";
        let res: rusqlite::Result<i64> = r.connection().query_row(endless, [], |row| row.get(0));
        assert!(res.is_err(), "an endless query returned");
        assert!(start.elapsed() < Duration::from_secs(5), "interrupted after {:?}", start.elapsed());
        assert_eq!(r.get(2).expect("the reader still works").map(|e| e.name), Some(b"f".to_vec()));
    }

    #[test]
    fn a_symlinked_index_is_not_opened() {
        let (dir, path) = tampered("SELECT 1;");
        let link = dir.path().join("link.sqlite");
        std::os::unix::fs::symlink(&path, &link).expect("symlink");
        assert!(IndexReader::open(&link).is_err());
    }
}

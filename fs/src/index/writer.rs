//! Writes a new index, row by row, during a backup.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use super::IndexEntry;
use super::schema::{CREATE_INDEXES, CREATE_TABLES, INSERT, SCHEMA_VERSION};
use crate::error::{FsError, Result};

/// Rows per transaction: large enough to amortise commits, small enough to bound
/// the SQLite page cache.
const BATCH: usize = 20_000;

/// An index being written. Rows may arrive in any order; ids are assigned by the
/// caller. Nothing is durable until [`IndexWriter::finish`].
pub struct IndexWriter {
    conn: Connection,
    path: PathBuf,
    pending: usize,
}

impl IndexWriter {
    /// Creates (replacing any leftover) the index at `path`.
    pub fn create(path: &Path, structure: &str, snapshot: &str) -> Result<Self> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FsError::io("remove", path, e)),
        }
        // Created private before SQLite opens it: an index holds every name
        // and owner of the snapshot, and is the agent's alone.
        crate::posix::create_private(path).map_err(|e| FsError::io("create", path, e))?;
        let err = |e| FsError::index(path, e);
        let conn = Connection::open(path).map_err(err)?;
        // The file is synced once at finish; a crash before that leaves only a
        // `.partial-*` directory, whose index is rebuilt from scratch.
        conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -4096;")
            .map_err(err)?;
        conn.execute_batch(CREATE_TABLES).map_err(err)?;
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', ?1), ('structure', ?2), ('snapshot', ?3)",
            params![SCHEMA_VERSION, structure, snapshot],
        )
        .map_err(err)?;
        conn.execute_batch("BEGIN").map_err(err)?;
        Ok(IndexWriter { conn, path: path.into(), pending: 0 })
    }

    /// Adds one entry.
    pub fn insert(&mut self, e: &IndexEntry) -> Result<()> {
        let m = &e.meta;
        let mut stmt = self.conn.prepare_cached(INSERT).map_err(|x| FsError::index(&self.path, x))?;
        stmt.execute(params![
            e.id,
            e.parent,
            e.name,
            m.kind.code(),
            m.mode,
            m.uid,
            m.gid,
            m.size as i64,
            m.mtime_ns,
            m.atime_ns,
            m.ctime_ns,
            m.rdev as i64,
            e.nlink,
            m.target,
            m.xattrs.encode(),
            e.blake3.as_ref().map(|h| &h[..]),
            e.hardlink,
            e.location.blob,
            e.location.data_offset,
            e.location.header_offset,
            e.location.member,
            e.location.ino.map(|i| i as i64),
        ])
        .map_err(|x| FsError::index(&self.path, x))?;
        self.pending += 1;
        if self.pending >= BATCH {
            self.conn.execute_batch("COMMIT; BEGIN").map_err(|x| FsError::index(&self.path, x))?;
            self.pending = 0;
        }
        Ok(())
    }

    /// Records a `meta` key (archive layout facts such as `member_size`).
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", params![key, value])
            .map_err(|x| FsError::index(&self.path, x))?;
        Ok(())
    }

    /// Records a gzip member of a compressed archive.
    pub fn insert_member(&mut self, id: i64, compressed: (u64, u64), uncompressed: (u64, u64)) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO members VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, compressed.0 as i64, compressed.1 as i64, uncompressed.0 as i64, uncompressed.1 as i64],
            )
            .map_err(|x| FsError::index(&self.path, x))?;
        Ok(())
    }

    /// Builds the lookup indexes, fills hardlink counts, and makes the file durable.
    pub fn finish(self) -> Result<PathBuf> {
        let err = |e| FsError::index(&self.path, e);
        self.conn.execute_batch("COMMIT").map_err(err)?;
        self.conn.execute_batch(&format!("BEGIN; {CREATE_INDEXES} COMMIT;")).map_err(err)?;
        self.conn.close().map_err(|(_, e)| FsError::index(&self.path, e))?;
        let f = std::fs::File::open(&self.path).map_err(|e| FsError::io("open", &self.path, e))?;
        f.sync_all().map_err(|e| FsError::io("fsync", &self.path, e))?;
        Ok(self.path)
    }
}

//! SQL of the index: one place for table layout and column order.

/// Format of the index schema; bumped on incompatible change.
pub(super) const SCHEMA_VERSION: &str = "1";

/// Tables, created before the first row.
pub(super) const CREATE_TABLES: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (
    id INTEGER PRIMARY KEY,
    parent INTEGER NOT NULL,
    name BLOB NOT NULL,
    kind INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    atime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    rdev INTEGER NOT NULL,
    nlink INTEGER NOT NULL,
    target BLOB,
    xattrs BLOB,
    blake3 BLOB,
    hardlink INTEGER,
    blob TEXT,
    data_offset INTEGER,
    header_offset INTEGER,
    member INTEGER,
    ino INTEGER
);
CREATE TABLE members (
    id INTEGER PRIMARY KEY,
    compressed_offset INTEGER NOT NULL,
    compressed_length INTEGER NOT NULL,
    uncompressed_offset INTEGER NOT NULL,
    uncompressed_length INTEGER NOT NULL
);
";

/// Indexes, created after the bulk insert (faster than maintaining them row by row).
pub(super) const CREATE_INDEXES: &str = "
CREATE UNIQUE INDEX entries_by_name ON entries(parent, name);
CREATE INDEX entries_by_hardlink ON entries(hardlink) WHERE hardlink IS NOT NULL;
UPDATE entries SET nlink = (SELECT count(*) FROM entries AS g WHERE g.hardlink = entries.hardlink)
    WHERE hardlink IS NOT NULL;
UPDATE entries SET blake3 = (SELECT f.blake3 FROM entries AS f WHERE f.id = entries.hardlink)
    WHERE hardlink IS NOT NULL AND hardlink != id AND blake3 IS NULL;
";

/// Column list shared by every SELECT, matching [`super::reader`]'s row mapping.
pub(super) const COLUMNS: &str = "id, parent, name, kind, mode, uid, gid, size, mtime_ns, atime_ns, ctime_ns, \
     rdev, nlink, target, xattrs, blake3, hardlink, blob, data_offset, header_offset, member, ino";

/// INSERT of one entry, parameters in [`COLUMNS`] order.
pub(super) const INSERT: &str = "INSERT INTO entries (id, parent, name, kind, mode, uid, gid, size, mtime_ns, \
     atime_ns, ctime_ns, rdev, nlink, target, xattrs, blake3, hardlink, blob, data_offset, \
     header_offset, member, ino) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
     ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)";

/// Checks that an index's schema is exactly the one [`CREATE_TABLES`] and
/// [`CREATE_INDEXES`] make: the same tables and indexes, the same columns,
/// nothing else (no view, trigger or generated column, which could make a
/// read run code its author chose). The error says what differs.
pub(super) fn check(conn: &rusqlite::Connection) -> Result<(), String> {
    static EXPECTED: std::sync::OnceLock<Result<Vec<String>, String>> = std::sync::OnceLock::new();
    let expected = EXPECTED.get_or_init(|| {
        let mem = rusqlite::Connection::open_in_memory().map_err(|e| e.to_string())?;
        mem.execute_batch(&format!("{CREATE_TABLES}{CREATE_INDEXES}")).map_err(|e| e.to_string())?;
        describe(&mem).map_err(|e| e.to_string())
    });
    let expected = expected.as_ref().map_err(|e| format!("cannot build the expected index schema: {e}"))?;
    let found = describe(conn).map_err(|e| format!("cannot read the index schema: {e}"))?;
    match found.iter().zip(expected).find(|(f, e)| f != e) {
        Some((f, e)) => Err(format!("not an index written by Hindsight: has `{f}` where `{e}` was expected")),
        None if found.len() > expected.len() => {
            Err(format!("not an index written by Hindsight: has an extra `{}`", found[expected.len()]))
        }
        None if found.len() < expected.len() => {
            Err(format!("not an index written by Hindsight: `{}` is missing", expected[found.len()]))
        }
        None => Ok(()),
    }
}

/// Every object of the schema with its columns, one line each, in a fixed order.
fn describe(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<String>> {
    let objects: Vec<(String, String, String)> = conn
        .prepare("SELECT type, name, tbl_name FROM sqlite_schema ORDER BY type, name")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for (kind, name, table) in objects {
        out.push(format!("{kind} {name} on {table}"));
        let columns = match kind.as_str() {
            "table" => {
                "SELECT name || ' ' || type || ' notnull=' || \"notnull\" || ' pk=' || pk || ' hidden=' || hidden \
                 FROM pragma_table_xinfo(?1)"
            }
            "index" => {
                "SELECT ifnull(name, '<expression>') || ' cid=' || cid || ' desc=' || \"desc\" || ' key=' || \"key\" \
                 FROM pragma_index_xinfo(?1)"
            }
            _ => continue,
        };
        let cols: Vec<String> =
            conn.prepare(columns)?.query_map([&name], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<_>>()?;
        out.extend(cols.into_iter().map(|c| format!("  {name}.{c}")));
    }
    Ok(out)
}

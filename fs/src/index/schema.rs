//! SQL of the index: one place for table layout and column order.

/// Format of the index schema; bumped on incompatible change.
pub const SCHEMA_VERSION: &str = "1";

/// Tables, created before the first row.
pub const CREATE_TABLES: &str = "
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
pub const CREATE_INDEXES: &str = "
CREATE UNIQUE INDEX entries_by_name ON entries(parent, name);
CREATE INDEX entries_by_hardlink ON entries(hardlink) WHERE hardlink IS NOT NULL;
UPDATE entries SET nlink = (SELECT count(*) FROM entries AS g WHERE g.hardlink = entries.hardlink)
    WHERE hardlink IS NOT NULL;
UPDATE entries SET blake3 = (SELECT f.blake3 FROM entries AS f WHERE f.id = entries.hardlink)
    WHERE hardlink IS NOT NULL AND hardlink != id AND blake3 IS NULL;
";

/// Column list shared by every SELECT, matching [`super::reader`]'s row mapping.
pub const COLUMNS: &str = "id, parent, name, kind, mode, uid, gid, size, mtime_ns, atime_ns, ctime_ns, \
     rdev, nlink, target, xattrs, blake3, hardlink, blob, data_offset, header_offset, member, ino";

/// INSERT of one entry, parameters in [`COLUMNS`] order.
pub const INSERT: &str = "INSERT INTO entries (id, parent, name, kind, mode, uid, gid, size, mtime_ns, \
     atime_ns, ctime_ns, rdev, nlink, target, xattrs, blake3, hardlink, blob, data_offset, \
     header_offset, member, ino) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
     ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)";

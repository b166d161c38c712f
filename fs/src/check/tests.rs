//! Checks of hand-built snapshots of every structure, clean and damaged.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::{SnapshotCheck, check_snapshot};
use crate::archive::tar::TarKind;
use crate::archive::writer::{ArchiveWriter, Compression};
use crate::archive::{TAR_FILE, TGZ_FILE};
use crate::entry::{EntryKind, EntryMeta, Xattrs};
use crate::index::{INDEX_FILE, IndexEntry, IndexWriter, Location, ROOT_ID};
use crate::manifest::{MANIFEST_FILE, Manifest, SnapshotStats, Structure};

/// Gzip members of the test archives: small, so that files span several.
const MEMBER: u64 = 4096;

fn meta(kind: EntryKind, size: u64) -> EntryMeta {
    EntryMeta {
        kind,
        mode: if kind == EntryKind::Dir { 0o755 } else { 0o644 },
        uid: 0,
        gid: 0,
        size,
        mtime_ns: 1_700_000_000_000_000_000,
        atime_ns: 1_700_000_000_000_000_000,
        ctime_ns: 1_700_000_000_000_000_000,
        rdev: 0,
        target: None,
        xattrs: Xattrs::default(),
    }
}

/// Files of the test snapshots, all in directory `d`: a small one, one that
/// spans several members, and an empty one.
fn files() -> Vec<(&'static str, Vec<u8>)> {
    let big: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    vec![("a.txt", b"hello\n".to_vec()), ("big.bin", big), ("empty", Vec::new())]
}

fn entry(id: i64, parent: i64, name: &str, meta: EntryMeta, content: Option<&[u8]>, loc: Location) -> IndexEntry {
    IndexEntry {
        id,
        parent,
        name: name.as_bytes().to_vec(),
        meta,
        nlink: 1,
        blake3: content.map(|c| *blake3::hash(c).as_bytes()),
        hardlink: None,
        location: loc,
    }
}

/// Builds `<tmp>/j/2026-01-01T000000Z` of `structure` holding [`files`].
fn build(tmp: &Path, structure: Structure) -> PathBuf {
    let dir = tmp.join("j").join("2026-01-01T000000Z");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut index =
        IndexWriter::create(&dir.join(INDEX_FILE), structure.as_str(), "2026-01-01T000000Z").expect("index");
    index.insert(&entry(ROOT_ID, 0, "", meta(EntryKind::Dir, 0), None, Location::default())).expect("row");
    let mut rows = Vec::new();
    match structure {
        Structure::Incremental => {
            std::fs::create_dir_all(dir.join("tree/d")).expect("mkdir");
            rows.push(entry(2, ROOT_ID, "d", meta(EntryKind::Dir, 0), None, Location::default()));
            for (i, (name, content)) in files().iter().enumerate() {
                std::fs::write(dir.join("tree/d").join(name), content).expect("write");
                let m = meta(EntryKind::File, content.len() as u64);
                rows.push(entry(3 + i as i64, 2, name, m, Some(content), Location::default()));
            }
        }
        Structure::Archived | Structure::Compressed => {
            let compressed = structure == Structure::Compressed;
            let file = if compressed { TGZ_FILE } else { TAR_FILE };
            let sink = std::fs::File::create(dir.join(file)).expect("create");
            let compression = compressed.then_some(Compression { level: 6, threads: 2 });
            let mut w = ArchiveWriter::new(sink, compression, MEMBER);
            let placed = w.append_entry(b"d/", &meta(EntryKind::Dir, 0), TarKind::Dir).expect("append");
            let loc = |header: u64, data: Option<u64>| Location {
                header_offset: Some(header as i64),
                data_offset: data.map(|d| d as i64),
                member: data.filter(|_| compressed).map(|d| (d / MEMBER) as i64),
                ..Location::default()
            };
            rows.push(entry(2, ROOT_ID, "d", meta(EntryKind::Dir, 0), None, loc(placed.header_offset, None)));
            for (i, (name, content)) in files().iter().enumerate() {
                let src = tmp.join(format!("src-{name}"));
                std::fs::write(&src, content).expect("write");
                let m = meta(EntryKind::File, content.len() as u64);
                let size = content.len() as u64;
                let path = format!("d/{name}");
                let placed = w.append_entry(path.as_bytes(), &m, TarKind::File { size }).expect("append");
                let f = std::fs::File::open(&src).expect("open");
                w.append_data(f.as_fd(), size, 3 + i as i64).expect("data");
                let l = loc(placed.header_offset, Some(placed.data_offset));
                rows.push(entry(3 + i as i64, 2, name, m, Some(content), l));
            }
            let fin = w.finish().expect("finish");
            index.set_meta("stream_length", &fin.stream_length.to_string()).expect("meta");
            index.set_meta("data_file", file).expect("meta");
            if compressed {
                index.set_meta("member_size", &MEMBER.to_string()).expect("meta");
            }
            for (k, m) in fin.members.iter().enumerate() {
                let c = (m.compressed_offset, m.compressed_length);
                index.insert_member(k as i64, c, (m.uncompressed_offset, m.uncompressed_length)).expect("member");
            }
        }
    }
    for r in &rows {
        index.insert(r).expect("row");
    }
    index.finish().expect("finish");
    write_manifest(&dir, structure);
    dir
}

/// Commits the snapshot in `dir`: its manifest, with the index's blake3.
fn write_manifest(dir: &Path, structure: Structure) {
    let manifest = Manifest {
        format: 1,
        job: "j".into(),
        name: "2026-01-01T000000Z".into(),
        structure,
        sources: vec!["/d".into()],
        host: "h".into(),
        started: jiff::Timestamp::constant(1_767_225_600, 0),
        finished: jiff::Timestamp::constant(1_767_225_601, 0),
        partial: false,
        parent: None,
        stats: SnapshotStats::default(),
        index_blake3: blake3::hash(&std::fs::read(dir.join(INDEX_FILE)).expect("read")).to_hex().to_string(),
        tags: Vec::new(),
        sequence: 1,
    };
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_bytes()).expect("manifest");
}

fn check(dir: &Path, read_data: bool) -> SnapshotCheck {
    check_snapshot(dir, read_data).expect("check")
}

/// The problems as `path: message` lines, for assertions and failure messages.
fn lines(c: &SnapshotCheck) -> String {
    c.problems.iter().map(|p| format!("{}: {}\n", p.path.as_deref().unwrap_or("-"), p.message)).collect()
}

fn assert_clean(c: &SnapshotCheck) {
    assert!(c.ok && c.problems.is_empty(), "expected no problems:\n{}", lines(c));
}

fn flip(path: &Path, offset: u64) {
    let mut b = std::fs::read(path).expect("read");
    b[offset as usize] ^= 0x55;
    std::fs::write(path, b).expect("write");
}

#[test]
fn clean_snapshots_of_every_structure_pass() {
    for s in [Structure::Incremental, Structure::Archived, Structure::Compressed] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = build(tmp.path(), s);
        for read_data in [false, true] {
            let c = check(&dir, read_data);
            assert_clean(&c);
            assert_eq!((c.job.as_str(), c.structure.as_str()), ("j", s.as_str()));
            assert!(c.entries_checked >= 4, "{s:?}: {} entries checked", c.entries_checked);
        }
        assert!(check(&dir, true).bytes_read > 20_000, "{s:?}: read_data read the files");
    }
}

#[test]
fn incremental_deleted_and_truncated_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = build(tmp.path(), Structure::Incremental);
    std::fs::remove_file(dir.join("tree/d/a.txt")).expect("rm");
    std::fs::write(dir.join("tree/d/big.bin"), b"short").expect("truncate");
    let c = check(&dir, false);
    assert!(!c.ok);
    let l = lines(&c);
    assert!(l.contains("d/a.txt: missing from tree/"), "{l}");
    assert!(l.contains("d/big.bin: has 5 bytes, the index says 20000"), "{l}");
    assert_eq!(c.problems.len(), 2, "{l}");
    std::fs::remove_dir_all(dir.join("tree")).expect("rm tree");
    let l = lines(&check(&dir, true));
    assert_eq!(l, "-: tree/ is missing: the snapshot holds no files\n");
}

#[test]
fn incremental_flipped_byte_is_found_only_when_reading_data() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = build(tmp.path(), Structure::Incremental);
    flip(&dir.join("tree/d/big.bin"), 10_000);
    assert_clean(&check(&dir, false));
    let c = check(&dir, true);
    assert!(lines(&c).contains("d/big.bin: content does not match the index"), "{}", lines(&c));
    assert_eq!(c.problems.len(), 1, "{}", lines(&c));
}

#[test]
fn a_tampered_index_or_manifest_is_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = build(tmp.path(), Structure::Incremental);
    let mut m = Manifest::read(&dir.join(MANIFEST_FILE)).expect("manifest");
    m.index_blake3 = "00".repeat(32);
    std::fs::write(dir.join(MANIFEST_FILE), m.to_bytes()).expect("write");
    assert!(lines(&check(&dir, false)).contains("index.sqlite does not match snapshot.json"));
    std::fs::write(dir.join(INDEX_FILE), b"garbage").expect("write");
    assert!(lines(&check(&dir, false)).contains("cannot open the index"));
    std::fs::write(dir.join(MANIFEST_FILE), b"{").expect("write");
    let c = check(&dir, false);
    assert_eq!((c.ok, c.structure.as_str(), c.snapshot.as_str()), (false, "unknown", "2026-01-01T000000Z"));
    assert!(lines(&c).contains("unreadable snapshot.json"), "{}", lines(&c));
}

#[test]
fn archived_flipped_data_byte_needs_read_data_and_a_flipped_header_byte_does_not() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = build(tmp.path(), Structure::Archived);
    let index = crate::index::IndexReader::open(&dir.join(INDEX_FILE)).expect("index");
    let big = index.lookup(2, b"big.bin").expect("lookup").expect("big.bin");
    let a = index.lookup(2, b"a.txt").expect("lookup").expect("a.txt");
    drop(index);
    let data_offset = big.location.data_offset.expect("data offset") as u64;
    flip(&dir.join(TAR_FILE), data_offset + 7_000);
    assert_clean(&check(&dir, false));
    let l = lines(&check(&dir, true));
    assert!(l.contains("d/big.bin: content does not match the index"), "{l}");
    // The ustar block of a.txt follows its PAX header: break its name.
    let data = a.location.data_offset.expect("data") as u64;
    flip(&dir.join(TAR_FILE), data - 512 + 2);
    let l = lines(&check(&dir, false));
    assert!(l.contains("d/a.txt: tar header at stream offset"), "{l}");
    assert!(l.contains("checksum"), "{l}");
}

#[test]
fn truncated_tar_lists_the_files_lost() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = build(tmp.path(), Structure::Archived);
    let index = crate::index::IndexReader::open(&dir.join(INDEX_FILE)).expect("index");
    let big = index.lookup(2, b"big.bin").expect("lookup").expect("big.bin");
    drop(index);
    let cut = big.location.header_offset.expect("header") as u64 + 100;
    let tar = dir.join(TAR_FILE);
    let len = std::fs::metadata(&tar).expect("stat").len();
    std::fs::File::options().write(true).open(&tar).expect("open").set_len(cut).expect("truncate");
    for read_data in [false, true] {
        let c = check(&dir, read_data);
        let l = lines(&c);
        assert_eq!(c.problems.len(), 1, "{l}");
        assert!(l.contains(&format!("truncated at {cut} bytes of {len}")), "{l}");
        assert!(l.contains("affected: d/big.bin, d/empty"), "{l}");
        assert!(!l.contains("a.txt"), "{l}");
    }
}

#[test]
fn compressed_damaged_member_is_reported_once_with_its_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = build(tmp.path(), Structure::Compressed);
    let index = crate::index::IndexReader::open(&dir.join(INDEX_FILE)).expect("index");
    let members = index.members().expect("members");
    assert!(members.len() >= 5, "{} members", members.len());
    // Member 2 holds only the middle of big.bin.
    let m = members[2];
    drop(index);
    flip(&dir.join(TGZ_FILE), m.compressed_offset + m.compressed_length / 2);
    for read_data in [false, true] {
        let c = check(&dir, read_data);
        assert!(!c.ok);
        assert_eq!(c.problems.len(), 1, "{}", lines(&c));
        let msg = &c.problems[0].message;
        assert!(msg.starts_with("gzip member 2 "), "{msg}");
        assert!(msg.ends_with("affected: d/big.bin"), "{msg}");
    }
}

#[test]
fn truncated_compressed_reports_the_lost_members_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = build(tmp.path(), Structure::Compressed);
    let tgz = dir.join(TGZ_FILE);
    let len = std::fs::metadata(&tgz).expect("stat").len();
    std::fs::File::options().write(true).open(&tgz).expect("open").set_len(len / 2).expect("truncate");
    let c = check(&dir, false);
    let l = lines(&c);
    assert_eq!(c.problems.len(), 1, "{l}");
    assert!(l.contains("gzip members ") && l.contains("truncated") && l.contains("d/big.bin"), "{l}");
}

#[test]
fn garbage_anywhere_is_a_finding_not_a_crash() {
    for s in [Structure::Archived, Structure::Compressed] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = build(tmp.path(), s);
        let file = dir.join(if s == Structure::Compressed { TGZ_FILE } else { TAR_FILE });
        let pristine = std::fs::read(&file).expect("read");
        for at in (0..pristine.len()).step_by(97) {
            let mut b = pristine.clone();
            b[at] ^= 0xff;
            std::fs::write(&file, &b).expect("write");
            check(&dir, true);
        }
        for junk in [vec![], vec![0u8; 10], vec![0xffu8; 70_000]] {
            std::fs::write(&file, &junk).expect("write");
            assert!(!check(&dir, true).ok, "{s:?} with {} bytes of junk", junk.len());
        }
        std::fs::remove_file(&file).expect("rm");
        let l = lines(&check(&dir, false));
        assert!(l.contains("cannot open"), "{l}");
    }
}

#[test]
fn truncated_tar_inside_a_body_blames_the_file_without_reading_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = build(tmp.path(), Structure::Archived);
    let index = crate::index::IndexReader::open(&dir.join(INDEX_FILE)).expect("index");
    let big = index.lookup(2, b"big.bin").expect("lookup").expect("big.bin");
    drop(index);
    let cut = big.location.data_offset.expect("data") as u64 + 5000;
    std::fs::File::options().write(true).open(dir.join(TAR_FILE)).expect("open").set_len(cut).expect("truncate");
    let c = check(&dir, false);
    assert!(lines(&c).contains("affected: d/big.bin, d/empty"), "{}", lines(&c));
    let index_len = std::fs::metadata(dir.join(INDEX_FILE)).expect("stat").len();
    assert!(c.bytes_read <= index_len + cut, "read {} bytes", c.bytes_read);
}

#[test]
fn unsafe_and_mismatched_paths_in_the_tar_are_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("j").join("2026-01-01T000000Z");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut index = IndexWriter::create(&dir.join(INDEX_FILE), "archived", "2026-01-01T000000Z").expect("index");
    index.insert(&entry(ROOT_ID, 0, "", meta(EntryKind::Dir, 0), None, Location::default())).expect("row");
    let mut w = ArchiveWriter::new(std::fs::File::create(dir.join(TAR_FILE)).expect("create"), None, MEMBER);
    for (id, (in_tar, in_index)) in [("../evil", "evil"), ("other", "named")].into_iter().enumerate() {
        let m = meta(EntryKind::File, 0);
        let placed = w.append_entry(in_tar.as_bytes(), &m, TarKind::File { size: 0 }).expect("append");
        let loc = Location {
            header_offset: Some(placed.header_offset as i64),
            data_offset: Some(placed.data_offset as i64),
            ..Location::default()
        };
        index.insert(&entry(id as i64 + 2, ROOT_ID, in_index, m, Some(b""), loc)).expect("row");
    }
    let fin = w.finish().expect("finish");
    index.set_meta("stream_length", &fin.stream_length.to_string()).expect("meta");
    index.finish().expect("finish");
    write_manifest(&dir, Structure::Archived);
    let l = lines(&check(&dir, true));
    assert!(l.contains("evil: unsafe path in the archive: ../evil"), "{l}");
    assert!(l.contains("named: tar header at stream offset") && l.contains("it names \"other\""), "{l}");
}

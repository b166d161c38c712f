//! The mount over archived and compressed snapshots, through a real FUSE mount
//! (skipped when this process cannot mount: not root, or no `/dev/fuse`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::archive::TAR_FILE;
use crate::archive::reader::tests::{Stored, stream, write_members};
use crate::entry::EntryMeta;
use crate::index::{IndexEntry, IndexReader, IndexWriter, Location};
use crate::manifest::{MANIFEST_FILE, Manifest, SnapshotStats};
use crate::mount::{DestinationView, Layout, MountConfig, spawn};

use super::*;
use crate::manifest::Structure;

const JOB: &str = "job";
const ARCHIVED: &str = "2026-11-22T035000Z";
const COMPRESSED: &str = "2026-11-22T035100Z";

fn meta(kind: EntryKind, size: u64) -> EntryMeta {
    EntryMeta {
        kind,
        mode: if kind == EntryKind::Dir { 0o755 } else { 0o640 },
        uid: 1234,
        gid: 5678,
        size,
        mtime_ns: 1_700_000_000_123_456_789,
        atime_ns: 1_700_000_000_000_000_000,
        ctime_ns: 1_700_000_000_000_000_000,
        rdev: 0,
        target: None,
        xattrs: Xattrs(vec![(b"user.k".to_vec(), b"v".to_vec())]),
    }
}

/// Snapshot rows: root; `a` and `b` one hardlinked file (`files[0]`); `dir/big`
/// (`files[1]`); names a damaged index could hold and that must not be served.
fn entries(files: &[Stored]) -> Vec<IndexEntry> {
    let row = |id, parent, name: &[u8], kind, f: Option<&Stored>, hardlink| IndexEntry {
        id,
        parent,
        name: name.to_vec(),
        meta: meta(kind, f.map_or(0, |f| f.data.len() as u64)),
        nlink: 1,
        blake3: None,
        hardlink,
        location: Location { data_offset: f.map(|f| f.offset as i64), ..Location::default() },
    };
    vec![
        row(ROOT_ID, 0, b"", EntryKind::Dir, None, None),
        row(2, ROOT_ID, b"a", EntryKind::File, Some(&files[0]), Some(2)),
        row(3, ROOT_ID, b"b", EntryKind::File, Some(&files[0]), Some(2)),
        row(4, ROOT_ID, b"dir", EntryKind::Dir, None, None),
        row(5, ROOT_ID, b"..", EntryKind::Dir, None, None),
        row(6, ROOT_ID, b"x/y", EntryKind::File, Some(&files[0]), None),
        row(7, 4, b"big", EntryKind::File, Some(&files[1]), None),
    ]
}

/// Writes snapshot `name` of `structure` under destination `dest`.
fn write_snapshot(dest: &Path, name: &str, structure: Structure, s: &[u8], files: &[Stored]) {
    let dir = dest.join(JOB).join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut w = IndexWriter::create(&dir.join("index.sqlite"), structure.as_str(), name).expect("index");
    for e in entries(files) {
        w.insert(&e).expect("insert");
    }
    match structure {
        Structure::Compressed => drop(write_members(&dir, s, &mut w)),
        _ => std::fs::write(dir.join(TAR_FILE), s).expect("write tar"),
    }
    w.finish().expect("finish");
    let manifest = Manifest {
        format: 1,
        job: JOB.into(),
        name: name.into(),
        structure,
        sources: vec!["/".into()],
        host: "h".into(),
        started: jiff::Timestamp::constant(1_795_319_400, 0),
        finished: jiff::Timestamp::constant(1_795_319_401, 0),
        partial: false,
        parent: None,
        stats: SnapshotStats::default(),
        index_blake3: blake3::hash(&std::fs::read(dir.join("index.sqlite")).expect("read index")).to_hex().to_string(),
        tags: Vec::new(),
        sequence: 1,
    };
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_bytes()).expect("manifest");
}

#[test]
fn archived_and_compressed_snapshots_read_like_files() {
    if !rustix::process::geteuid().is_root() || !Path::new("/dev/fuse").exists() {
        eprintln!("skipped: needs root and /dev/fuse");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dest = tmp.path().join("dest");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let (s, files) = stream(&[3000, 100_000]);
    write_snapshot(&dest, ARCHIVED, Structure::Archived, &s, &files);
    write_snapshot(&dest, COMPRESSED, Structure::Compressed, &s, &files);
    // Damage one member of the compressed copy inside `big`, away from `a`.
    let gz_path = dest.join(JOB).join(COMPRESSED).join(crate::archive::TGZ_FILE);
    let mut gz = std::fs::read(&gz_path).expect("read gz");
    let ix = IndexReader::open(&dest.join(JOB).join(COMPRESSED).join("index.sqlite")).expect("index");
    let bad = ix.members().expect("members")[10];
    gz[(bad.compressed_offset + bad.compressed_length / 2) as usize] ^= 0xff;
    std::fs::write(&gz_path, &gz).expect("write gz");

    let view = DestinationView { name: "d".into(), root: dest.clone(), hidden: false, remote: None };
    let config = MountConfig {
        mountpoint: mnt.clone(),
        layout: Layout::Single(view),
        threads: 4,
        cache_bytes: crate::archive::reader::DEFAULT_CACHE_BYTES,
    };
    let handle = match spawn(config) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("skipped: cannot mount ({e})");
            return;
        }
    };
    for snap in [ARCHIVED, COMPRESSED] {
        let root = mnt.join(JOB).join(snap);
        let mut names: Vec<String> = std::fs::read_dir(&root)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b", "dir"], "{snap}");
        assert_eq!(std::fs::read(root.join("a")).expect("read a"), files[0].data, "{snap}");
        let (a, b) = (std::fs::metadata(root.join("a")).expect("a"), std::fs::metadata(root.join("b")).expect("b"));
        assert_eq!(a.ino(), b.ino(), "{snap}: hardlinks share st_ino");
        assert_eq!(a.nlink(), 2, "{snap}");
        assert_eq!((a.uid(), a.gid(), a.mode() & 0o7777), (1234, 5678, 0o640));
        assert_eq!(a.mtime_nsec(), 123_456_789);
        assert_ne!(a.ino(), std::fs::metadata(root.join("dir/big")).expect("big").ino());
        assert_eq!(std::fs::metadata(root.join("a")).expect("again").ino(), a.ino(), "stable st_ino");
        let big = root.join("dir/big");
        if snap == ARCHIVED {
            assert_eq!(std::fs::read(&big).expect("read big"), files[1].data);
        } else {
            let err = std::fs::read(&big).expect_err("damaged member");
            assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::IO.raw_os_error()), "{err}");
            // Ranges outside the damaged member still read.
            let f = std::fs::File::open(&big).expect("open big");
            let mut buf = vec![0u8; 5000];
            use std::os::unix::fs::FileExt;
            f.read_exact_at(&mut buf, 0).expect("head of big");
            assert_eq!(buf, files[1].data[..5000]);
            let tail = files[1].data.len() as u64 - 5000;
            f.read_exact_at(&mut buf, tail).expect("tail of big");
            assert_eq!(buf, files[1].data[tail as usize..]);
        }
        assert!(std::fs::metadata(root.join("..").join(snap).join("x")).is_err());
    }
    handle.unmount().expect("unmount");
}

#[test]
fn os_errors_that_describe_the_path_pass_and_others_are_eio() {
    use rustix::io::Errno as Os;
    for (os, fuse) in [
        (Os::NOENT, Errno::ENOENT),
        (Os::ACCESS, Errno::EACCES),
        (Os::LOOP, Errno::ELOOP),
        (Os::NAMETOOLONG, Errno::ENAMETOOLONG),
        (Os::IO, Errno::EIO),
        (Os::NOSPC, Errno::EIO),
    ] {
        assert_eq!(os_errno(os.raw_os_error()), fuse, "{os:?}");
    }
    let e = FsError::io("open", "/x", std::io::Error::from_raw_os_error(Os::LOOP.raw_os_error()));
    assert_eq!(errno(&e), Errno::ELOOP);
    assert_eq!(errno(&FsError::Refused("no".into())), Errno::EIO);
}

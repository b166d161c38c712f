//! The seed corpus of the targets of [`super`]: small valid inputs and
//! slightly broken ones, built with the same encoders and fixtures as the
//! targets so that they stay in step with the input formats.

use super::*;

/// The seed corpus: (target, file name, bytes), valid inputs and slightly
/// broken ones. `tests/fuzz_corpus.rs` writes them to `fuzz/corpus/`.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| out.push((target, name.to_string(), bytes));

    // index_rows: a root, two files, a directory, a row with odd values,
    // a meta value and a member; then rows of the wrong types and a loop.
    let small = |v: i8| vec![((v + 8) as u8) << 3 | 1];
    let int = |v: i64| [&[2u8][..], &v.to_le_bytes()].concat();
    let real = |v: f64| [&[3u8][..], &v.to_bits().to_le_bytes()].concat();
    let text = |s: &[u8]| [&[4u8, s.len() as u8][..], s].concat();
    let blob = |s: &[u8]| [&[5u8, s.len() as u8][..], s].concat();
    // An entries record: columns (by number) and their values.
    let entry = |values: &[(u32, Vec<u8>)]| {
        let mask = values.iter().fold(0u32, |m, (c, _)| m | 1 << c);
        let mut r = vec![0u8, mask as u8, (mask >> 8) as u8, (mask >> 16) as u8];
        values.iter().for_each(|(_, v)| r.extend_from_slice(v));
        r
    };
    let xattrs = Xattrs(vec![(b"user.a".to_vec(), b"1".to_vec())]).encode().unwrap_or_default();
    let mut rows = vec![1u8, 3, 3, 3];
    rows.extend(entry(&[(3, small(2))]));
    rows.extend(entry(&[(6, int(1 << 40)), (14, blob(&xattrs)), (18, int(10)), (19, int(512))]));
    rows.extend([2, 4]);
    rows.extend(text(b"1024"));
    rows.extend([1, 0b11110]);
    rows.extend([small(0), int(10), small(0), int(1024)].concat());
    add("index_rows", "valid", rows);
    let mut odd = vec![2u8];
    odd.extend(entry(&[(0, text(b"x"))]));
    odd.extend(entry(&[(1, real(1.5)), (2, text(b"name")), (3, small(9)), (15, blob(b"short"))]));
    odd.extend(entry(&[(1, small(3)), (14, blob(b"\xff\xff\xff\xff"))]));
    odd.extend(entry(&[(0, int(-7)), (1, int(i64::MAX)), (21, int(-1))]));
    odd.extend([2, 5]);
    odd.extend(text(b"-1"));
    odd.extend([1, 1]);
    odd.extend(small(5));
    add("index_rows", "odd-types", odd);

    // index_file: a real index (small pages, so the file is small).
    let index = small_index();
    add("index_file", "valid", index.clone());
    let mut flipped = index.clone();
    if let Some(b) = flipped.get_mut(600) {
        *b ^= 0x5a;
    }
    add("index_file", "flipped", flipped);
    add("index_file", "truncated", index[..index.len() / 2].to_vec());

    // manifest, marker
    let manifest = Manifest {
        format: 1,
        job: "j".into(),
        name: "2026-01-01T000000Z".into(),
        structure: Structure::Compressed,
        sources: vec!["/src".into()],
        host: "h".into(),
        started: jiff::Timestamp::constant(1_767_225_600, 0),
        finished: jiff::Timestamp::constant(1_767_225_601, 0),
        partial: false,
        parent: Some("2025-12-31T000000Z".into()),
        stats: crate::manifest::SnapshotStats { entries: 3, files: 2, bytes: 6, ..Default::default() },
        index_blake3: blake3::hash(b"").to_hex().to_string(),
        tags: vec!["daily".into()],
        sequence: 3,
    };
    let json = manifest.to_bytes();
    add("manifest", "valid", json.clone());
    add("manifest", "truncated", json[..json.len() / 2].to_vec());
    add("manifest", "wrong-type", String::from_utf8_lossy(&json).replace("\"format\": 1", "\"format\": -1").into());
    let marker = Marker::new("0b5e8a52-7a1c-4e36-9a5e-2f3c4d5e6f70");
    let marker = Marker { created: "2026-01-01T00:00:00Z".into(), ..marker };
    let json = marker.to_bytes();
    add("marker", "valid", json.clone());
    add("marker", "path-id", String::from_utf8_lossy(&json).replace("0b5e8a52", "../../x").into());
    add("marker", "newer", String::from_utf8_lossy(&json).replace("\"format\": 1", "\"format\": 99").into());

    // tar: encoded headers, and the fields of entries to encode.
    let (stream, _) = fixture_stream(false);
    add("tar", "pax-header", stream[..3 * BLOCK].to_vec());
    let mut header = stream[2 * BLOCK..3 * BLOCK].to_vec();
    header[148] ^= 1;
    add("tar", "bad-checksum", header);
    // A symlink with a non-UTF-8 path and an ACL, then a file too large for ustar.
    let fields = |kind: u8, path: &[u8], link: &[u8], size: &[u8], xattrs: &[(u8, &[u8])]| {
        let mut f = vec![kind];
        f.extend_from_slice(&(path.len() as u16).to_le_bytes());
        f.extend_from_slice(path);
        f.push(link.len() as u8);
        f.extend_from_slice(link);
        f.extend_from_slice(size);
        f.extend_from_slice(&0o755u32.to_le_bytes());
        f.extend_from_slice(&[0xff; 8]);
        f.extend_from_slice(&1_700_000_000_000_000_000i64.to_le_bytes());
        f.extend_from_slice(&(-1_500_000_000i64).to_le_bytes());
        f.extend_from_slice(&0x0801u64.to_le_bytes());
        f.push(xattrs.len() as u8);
        for (name, value) in xattrs {
            f.extend_from_slice(&[*name, value.len() as u8]);
            f.extend_from_slice(value);
        }
        f
    };
    let acl = [&2u32.to_le_bytes()[..], &[1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 2, 0, 4, 0, 0xe8, 3, 0, 0]].concat();
    add("tar", "symlink-fields", fields(3, b"dir/\xfflink", b"a.txt", &[0, 0], &[(0, &acl), (2, b"v")]));
    let long = [&[b'd'; 120][..], b"/", &[b'f'; 60]].concat();
    add("tar", "big-file-fields", fields(0x80, &long, b"", &(1u64 << 40).to_le_bytes(), &[]));

    // archive_check_*: the fixtures' data files, whole and damaged.
    let gz = fixture_data(Structure::Compressed);
    add("archive_check_tar", "valid", stream.clone());
    add("archive_check_tar", "truncated", stream[..stream.len() / 2].to_vec());
    let mut tampered = stream.clone();
    tampered[BLOCK + 20] ^= 0x20;
    add("archive_check_tar", "pax-tampered", tampered);
    add("archive_check_gz", "valid", gz.clone());
    add("archive_check_gz", "truncated", gz[..gz.len() * 2 / 3].to_vec());
    let mut tampered = gz.clone();
    if let Some(b) = tampered.get_mut(40) {
        *b ^= 0x01;
    }
    add("archive_check_gz", "crc", tampered);

    // archive_members: three honest members, then one raw and a lying table.
    let mut m = vec![3u8];
    for (i, len) in [(0u8, 700u16), (1, 1024), (2, 300)] {
        m.push(0);
        m.extend_from_slice(&len.to_le_bytes());
        m.extend((0..len).map(|j| (j as u8).wrapping_mul(31).wrapping_add(i)));
    }
    for read in [[0u8, 0, 0, 0xff, 0x0f, 0, 0, 0, 0x10], [0, 0xbc, 0x02, 0, 0x04, 0x10, 0, 0, 0x02]] {
        m.extend_from_slice(&read);
    }
    add("archive_members", "honest", m);
    let mut m = vec![2u8, 1, 16, 0];
    m.extend_from_slice(&gzip(b"gzip member given raw")[..16]);
    m.extend_from_slice(&[16, 10, 0]);
    m.extend_from_slice(b"0123456789");
    m.extend_from_slice(&5000u64.to_le_bytes());
    m.extend_from_slice(&[0, 0, 0, 0x40, 0, 0, 0, 0x20, 0]);
    add("archive_members", "lying", m);

    // xattrs
    let x = Xattrs(vec![(b"user.a".to_vec(), b"1".to_vec()), (b"system.posix_acl_access".to_vec(), vec![2, 0, 0, 0])]);
    let enc = x.encode().unwrap_or_default();
    add("xattrs", "valid", enc.clone());
    add("xattrs", "truncated", enc[..enc.len() - 1].to_vec());
    add("xattrs", "huge-length", [&[0xff, 0xff, 0xff, 0x7f][..], b"abc"].concat());

    // ssh_output
    add("ssh_output", "ls", b"HINDSIGHT\njob/\n.partial-x/\nname with space\n\n".to_vec());
    add("ssh_output", "find", b"6 d/a.txt\x000 d/empty\x0020000 big.bin\x00x bad\x00".to_vec());
    out
}

/// The data file of the archive fixture of `structure`.
fn fixture_data(structure: Structure) -> Vec<u8> {
    let (stream, _) = fixture_stream(structure == Structure::Compressed);
    match structure {
        Structure::Compressed => gzip_members(&stream, FIXTURE_MEMBER).0,
        _ => stream,
    }
}

/// A small real index: the archive fixture's rows, in 512-byte pages.
fn small_index() -> Vec<u8> {
    let file = Scratch::new("seed.sqlite");
    let mut w = IndexWriter::create(&file.0, "archived", "2026-01-01T000000Z").expect("create");
    for r in fixture_stream(false).1 {
        w.insert(&r).expect("row");
    }
    w.finish().expect("finish");
    let conn = rusqlite::Connection::open(&file.0).expect("open");
    conn.execute_batch("PRAGMA page_size = 512; VACUUM;").expect("vacuum");
    drop(conn);
    std::fs::read(&file.0).expect("read")
}

//! Archived (`data.tar`) and Compressed (`data.tar.gz`) snapshots are
//! standard archives: GNU tar lists them and restores the source exactly
//! (bytes, modes, owners, ns mtimes, xattrs and ACLs, hardlinks, symlinks,
//! fifos, devices, odd names); the `.tar.gz` is many gzip members that
//! `gzip -t` accepts; nothing is staged on local disk; a job's structure can
//! change between snapshots.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::fixture;
use crate::support::{DEST, JOB, Setup, assert_same, describe, list_names, s as path_str};

/// Runs a command, panicking with its output when it fails; returns stdout.
fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Extracts `archive` with GNU tar as a user restoring everything would,
/// with ACLs restored from their xattrs or (`acls`) from tar's ACL records.
fn extract(archive: &Path, into: &Path, acls: bool) {
    std::fs::create_dir_all(into).expect("create the extraction directory");
    run(Command::new("tar")
        .args(["--extract", "--preserve-permissions", "--same-owner", "--numeric-owner"])
        .args(["--xattrs", "--xattrs-include=*"])
        .args(if acls { &["--acls"][..] } else { &[][..] })
        .arg("--file")
        .arg(archive)
        .arg("--directory")
        .arg(into));
}

/// The source as restored under `root` (the archive mirrors absolute paths).
fn restored(root: &Path, src: &Path) -> PathBuf {
    root.join(src.strip_prefix("/").expect("absolute source"))
}

fn snapshot_dir(s: &Setup, job: &str) -> PathBuf {
    let names = s.daemon.snapshot_names(job);
    let name = names.last().expect("a snapshot");
    s.dest.join(job).join(name)
}

#[test]
fn archived_and_compressed_snapshots_restore_with_gnu_tar() {
    let s = Setup::without_job(|root| {
        fixture::every_kind(root);
        // Several members, and data staging would show in the state directory.
        fixture::big_file(&root.join("big.bin"), 24 << 20, 3);
        // Paths past ustar's 100-byte name and 155-byte prefix, and a long symlink target.
        let deep = root.join("long").join("d".repeat(120)).join("e".repeat(200));
        fixture::write(&deep.join("f".repeat(180)), b"deep\n");
        fixture::symlink("t".repeat(150).as_bytes(), &root.join("long").join("s".repeat(110)));
        fixture::stamp_times(root);
    });
    let source = describe(&s.src);
    fixture::check_every_kind(&source);

    for (job, structure, file) in [("ja", "archived", "data.tar"), ("jc", "compressed", "data.tar.gz")] {
        s.daemon.add_job(job, &[&s.src], &[DEST], &["--structure", structure]);
        s.daemon.run_job_wait(job);
        let dir = snapshot_dir(&s, job);
        let mut files = list_names(&dir);
        files.sort();
        let mut want = vec![file.to_string(), "index.sqlite".into(), "snapshot.json".into()];
        want.sort();
        assert_eq!(files, want, "{structure} snapshot directory {}", dir.display());
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("snapshot.json")).expect("manifest")).expect("json");
        assert_eq!(manifest["structure"], structure, "{manifest:#}");

        let listing = String::from_utf8_lossy(&run(Command::new("tar").arg("-tvf").arg(dir.join(file)))).into_owned();
        let plain = s.src.join("plain.txt");
        assert!(listing.contains(&path_str(&plain)[1..]), "tar tvf lists plain.txt:\n{listing}");
        assert!(listing.contains("link to"), "tar tvf shows the hardlinks:\n{listing}");

        for (flavour, acls) in [("xattrs", false), ("acls", true)] {
            let out = s.sb.path().join(format!("restore-{structure}-{flavour}"));
            extract(&dir.join(file), &out, acls);
            let t = describe(&restored(&out, &s.src));
            assert_same(&source, &t, &format!("{structure} archive extracted by GNU tar --{flavour}"));
            assert!(t.hardlink_groups().iter().any(|g| g.len() == 3), "hardlink group restored as one file");
        }
    }

    let tgz = snapshot_dir(&s, "jc").join("data.tar.gz");
    run(Command::new("gzip").arg("-t").arg(&tgz));
    let members = count_gzip_members(&std::fs::read(&tgz).expect("read data.tar.gz"));
    assert!(members >= 24, "a 24 MiB tree in 1 MiB members gives at least 24 members, found {members}");

    let staged: u64 = walk_sizes(s.sb.path().join("agent").as_path());
    assert!(staged < 8 << 20, "the state directory grew to {staged} bytes: the archive was staged locally");
}

#[test]
fn a_job_changes_structure_between_snapshots() {
    let s = Setup::new(fixture::small_tree);
    let first = s.daemon.backup(JOB);
    s.daemon.cli_ok(&["job", "edit", JOB, "--structure", "compressed"]);
    let shown = s.daemon.cli_json(&["job", "show", JOB]);
    assert_eq!(shown["structure"], "compressed", "{shown:#}");
    s.daemon.run_job_wait(JOB);
    let dir = snapshot_dir(&s, JOB);
    assert!(dir.join("data.tar.gz").is_file(), "the snapshot after the edit is compressed: {:?}", list_names(&dir));
    assert!(first.tree(&s.src).is_dir(), "the earlier incremental snapshot is intact");

    s.daemon.cli_ok(&["job", "edit", JOB, "--structure", "incremental"]);
    let third = s.daemon.backup(JOB);
    assert_same(&describe(&s.src), &describe(&third.tree(&s.src)), "incremental again after a compressed snapshot");
    s.daemon.cli(["job", "edit", JOB, "--structure", "zip"]).assert_error(&["zip", "archived", "compressed"]);
}

/// Counts gzip members by decoding them one after another.
fn count_gzip_members(mut data: &[u8]) -> usize {
    let mut n = 0;
    while !data.is_empty() {
        let mut d = flate2::bufread::GzDecoder::new(data);
        std::io::copy(&mut d, &mut std::io::sink()).expect("a valid gzip member");
        // GzDecoder stops at the end of one member: what it did not consume is the rest.
        let rest = d.into_inner();
        assert!(rest.len() < data.len(), "no progress decoding gzip members");
        data = rest;
        n += 1;
    }
    n
}

/// Total bytes of the regular files under `dir`.
fn walk_sizes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => walk_sizes(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}

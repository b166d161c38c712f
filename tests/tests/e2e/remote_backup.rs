//! Backups to remote destinations (S3 and FTP), one test body per property
//! run against each kind:
//!
//! - a full then an incremental backup of a tree with every kind of entry,
//!   large files and many small ones: what each run adds under `blobs/` and
//!   `packs/` (counted on the server itself) is exactly the content the
//!   source did not have before, both snapshots come back through the
//!   daemon's mount with `cp -a` equal to the source as it was, and
//!   `destination check --read-data` finds both clean;
//! - the server killed in the middle of a backup: the run fails within
//!   bounded time saying what failed, no snapshot appears, and once the
//!   server is back the next run completes (on FTP, whose files survive,
//!   without storing again what the interrupted run stored).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::daemon::{RUN_TIMEOUT, stat, str_field};
use crate::support::remote::{Kind, PrivateServer, Remote};
use crate::support::system::{FuseGuard, tool};
use crate::support::tree::{Kind as EntryKind, Tree};
use crate::support::{Daemon, Sandbox, assert_same, describe, fixture, s, wait_until};

/// Name of the remote destination.
const DEST: &str = "remote";
/// Name of the job.
const JOB: &str = "rj";
/// Files this size and larger are stored as objects of their own.
const SMALL_FILE: u64 = 1 << 20;
/// How long a new remote snapshot may take to show in the mount (listings every 10 s).
const APPEAR: Duration = Duration::from_secs(30);

/// A daemon (with its snapshot mount when `mounted`) and a source directory.
struct Bench {
    daemon: Daemon,
    _mount: Option<FuseGuard>,
    src: PathBuf,
    sb: Sandbox,
}

impl Bench {
    fn new(mounted: bool, fill: impl FnOnce(&Path)) -> Bench {
        let sb = Sandbox::new();
        let src = sb.dir("src");
        fill(&src);
        let mut opts = sb.daemon_opts();
        let mount = mounted.then(|| {
            let mnt = sb.dir("mnt");
            opts.mountpoint = Some(mnt.clone());
            FuseGuard(mnt)
        });
        let daemon = Daemon::start(opts);
        Bench { daemon, _mount: mount, src, sb }
    }

    /// Adds the remote destination and a job backing the source up to it.
    fn add(&self, remote: &Remote, extra: &[(&str, &str)]) {
        let mut args = vec!["destination".to_string(), "add".into(), DEST.into()];
        args.extend(remote.add_args(extra));
        args.push("--json".into());
        let out = self.daemon.cli(&args);
        assert!(out.success(), "{out}\n{}", self.daemon.log_tail());
        self.daemon.add_job(JOB, &[&self.src], &[DEST], &[]);
    }

    /// Names of the job's listed snapshots.
    fn snapshots(&self) -> Vec<String> {
        let list = self.daemon.cli_json(&["snapshot", "list", "--job", JOB]);
        list.as_array().map_or_else(Vec::new, |a| a.iter().map(|s| str_field(s, "name").to_string()).collect())
    }

    /// Runs the job to completion; returns the run and its snapshot's name.
    fn backup(&self) -> (Value, String) {
        let run = self.daemon.run_job_wait(JOB);
        let name = run["destinations"][0]["snapshot"]
            .as_str()
            .unwrap_or_else(|| panic!("the run made no snapshot: {run:#}"))
            .to_string();
        assert!(self.snapshots().contains(&name), "snapshot {name} is not listed");
        (run, name)
    }

    /// Where the mount shows `snapshot` of the source.
    fn in_mount(&self, snapshot: &str) -> PathBuf {
        let mnt = &self._mount.as_ref().expect("a mounted bench").0;
        mnt.join(DEST).join(JOB).join(snapshot).join(self.src.strip_prefix("/").expect("absolute source"))
    }
}

/// Every kind of entry, large files, many small files, and two hardlink
/// pairs with equal content (one file each, not one file for the four names).
fn fill(src: &Path) {
    fixture::every_kind(src);
    for i in 0..3u64 {
        let size = (3 << 20) + i as usize * 12_345;
        fixture::write(&src.join(format!("large/l{i}.bin")), &fixture::pseudo_random(size, 40 + i));
    }
    for i in 0..300u64 {
        let size = 50 + (i as usize * 997) % 30_000;
        fixture::write(&src.join(format!("small/d{}/f{i:03}", i % 10)), &fixture::pseudo_random(size, 1000 + i));
    }
    for pair in ["a", "b"] {
        let first = src.join(format!("dups/{pair}1"));
        fixture::write(&first, b"equal content in two separate hardlink pairs\n");
        std::fs::hard_link(&first, src.join(format!("dups/{pair}2"))).expect("hardlink a pair");
    }
    fixture::stamp_times(src);
}

/// Changes between the two backups: [`fixture::edit_every_kind`], new content
/// in two large files and a new one, a large file whose mode only changes,
/// small files edited, added and deleted.
fn edit(src: &Path) {
    fixture::edit_every_kind(src);
    fixture::write(&src.join("large/l0.bin"), &fixture::pseudo_random(3 << 20, 77));
    let mut l1 = std::fs::read(src.join("large/l1.bin")).expect("read l1");
    l1.extend_from_slice(b"appended");
    fixture::write(&src.join("large/l1.bin"), &l1);
    fixture::chmod(&src.join("large/l2.bin"), 0o600);
    fixture::write(&src.join("large/new.bin"), &fixture::pseudo_random(2 << 20, 78));
    for i in [3u64, 17, 150] {
        let p = src.join(format!("small/d{}/f{i:03}", i % 10));
        fixture::write(&p, &fixture::pseudo_random(4000 + i as usize, 5000 + i));
    }
    for i in [20u64, 21] {
        std::fs::remove_file(src.join(format!("small/d{}/f{i:03}", i % 10))).expect("remove a small file");
    }
    fixture::write(&src.join("small/added/n1"), b"a new small file\n");
}

/// Distinct file contents of a tree: blake3 hex -> size.
fn contents(t: &Tree) -> BTreeMap<String, u64> {
    t.entries
        .values()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| (e.blake3.clone().expect("files have a hash"), e.size))
        .collect()
}

/// The blake3 hex names of the blob objects.
fn blob_names(objects: &BTreeMap<String, u64>) -> BTreeSet<String> {
    objects
        .keys()
        .filter_map(|k| k.strip_prefix("blobs/"))
        .filter_map(|k| k.split('/').nth(1))
        .map(String::from)
        .collect()
}

fn total(objects: &BTreeMap<String, u64>) -> u64 {
    objects.values().sum()
}

/// Asserts what one run added on the server: the contents `new` (by hash),
/// large ones as blobs named by their hash and of their size, small ones in
/// packs, and nothing else; the objects that were there stay as they were.
fn assert_stored(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    new: &BTreeMap<String, u64>,
    what: &str,
) {
    for (k, size) in before {
        assert_eq!(after.get(k), Some(size), "{what}: object {k} changed or vanished");
    }
    let added: BTreeMap<String, u64> =
        after.iter().filter(|(k, _)| !before.contains_key(*k)).map(|(k, v)| (k.clone(), *v)).collect();
    let large: BTreeMap<&String, &u64> = new.iter().filter(|(_, s)| **s >= SMALL_FILE).collect();
    let want_blobs: BTreeSet<String> = large.keys().map(|k| k.to_string()).collect();
    assert_eq!(blob_names(&added), want_blobs, "{what}: new blobs are the new large contents");
    for (k, size) in added.iter().filter(|(k, _)| k.starts_with("blobs/")) {
        let hash = k.rsplit('/').next().unwrap_or_default();
        assert_eq!(Some(size), new.get(hash), "{what}: blob {k} has the size of its content");
    }
    let small_bytes: u64 = new.values().filter(|s| **s < SMALL_FILE).sum();
    let pack_bytes: u64 = added.iter().filter(|(k, _)| k.starts_with("packs/")).map(|(_, v)| v).sum();
    assert_eq!(pack_bytes, small_bytes, "{what}: new packs hold exactly the new small contents ({added:?})");
    let unknown: Vec<&String> = added.keys().filter(|k| !k.starts_with("blobs/") && !k.starts_with("packs/")).collect();
    assert!(unknown.is_empty(), "{what}: unexpected objects {unknown:?}");
    assert_eq!(total(&added), new.values().sum::<u64>(), "{what}: bytes stored are the new contents' bytes");
}

/// Copies a snapshot out of the mount with `cp -a` and compares it with `want`.
fn assert_restores(b: &Bench, snapshot: &str, want: &Tree, i: usize) {
    let from = b.in_mount(snapshot);
    wait_until(&format!("snapshot {snapshot} in the mount"), APPEAR, || from.is_dir().then_some(()));
    let to = b.sb.path().join(format!("restore-{i}"));
    tool("cp", [std::ffi::OsStr::new("-a"), from.as_os_str(), to.as_os_str()]);
    assert_same(want, &describe(&to), &format!("cp -a of remote snapshot {i} from the mount"));
    // And through the agent: `restore files` reads the objects by range, checked against their blake3.
    let id = b.daemon.snapshot_id(snapshot);
    let into = b.sb.path().join(format!("agent-restore-{i}"));
    let out = b.daemon.cli_within(
        ["restore", "files", &id, s(&b.src), "--to", s(&into), "--wait"],
        std::time::Duration::from_secs(60),
    );
    assert!(out.success(), "restore files of remote snapshot {i}:\n{out}\n{}", b.daemon.log_tail());
    let restored = into.join(b.src.strip_prefix("/").expect("absolute"));
    assert_same(want, &describe(&restored), &format!("restore files of remote snapshot {i}"));
}

fn full_then_incremental(kind: Kind) {
    let remote = Remote::shared(kind, "incr");
    let b = Bench::new(true, fill);
    b.add(&remote, &[]);
    let want1 = describe(&b.src);
    fixture::check_every_kind(&want1);
    let data = ["blobs/", "packs/"];
    let empty = BTreeMap::new();
    let (_, first) = b.backup();
    let after1 = remote.objects_under(&data);
    assert_stored(&empty, &after1, &contents(&want1), "first backup");

    edit(&b.src);
    let want2 = describe(&b.src);
    let old = contents(&want1);
    let new: BTreeMap<String, u64> = contents(&want2).into_iter().filter(|(h, _)| !old.contains_key(h)).collect();
    assert!(new.len() >= 8, "the edits make new contents: {new:?}");
    let (run2, second) = b.backup();
    let after2 = remote.objects_under(&data);
    assert_stored(&after1, &after2, &new, "incremental backup");
    assert_eq!(stat(&run2, "bytes_copied"), new.values().sum::<u64>(), "bytes the incremental run copied");

    let all = remote.objects();
    for snap in [&first, &second] {
        for f in ["index.sqlite", "snapshot.json"] {
            assert!(all.contains_key(&format!("{JOB}/{snap}/{f}")), "{JOB}/{snap}/{f} is not on the server");
        }
    }
    assert_restores(&b, &first, &want1, 1);
    assert_restores(&b, &second, &want2, 2);

    // Every body read back and hashed: both snapshots check clean.
    let check = b.daemon.cli(["destination", "check", DEST, "--read-data"]);
    assert!(check.success(), "check of the remote destination:\n{check}\n{}", b.daemon.log_tail());
    for snap in [&first, &second] {
        assert!(check.stdout.contains(snap.as_str()), "the check does not report snapshot {snap}:\n{check}");
    }
}

#[test]
fn s3_incremental_stores_only_new_content_and_restores_through_the_mount() {
    full_then_incremental(Kind::S3);
}

#[test]
fn ftp_incremental_stores_only_new_content_and_restores_through_the_mount() {
    full_then_incremental(Kind::Ftp);
}

/// Big files for a backup that lasts long enough to be interrupted: eight of
/// 25 MiB (200 MiB). Returns their total size.
fn big_source(src: &Path) -> u64 {
    let mut sum = 0;
    for i in 0..8u64 {
        let size = 25 << 20;
        fixture::big_file(&src.join(format!("big{i}")), size, 300 + i);
        sum += size;
    }
    fixture::write(&src.join("small.txt"), b"small\n");
    sum + 6
}

/// Asserts that every blob on the server holds the content its name says.
fn assert_blobs_intact(remote: &Remote) {
    for key in remote.objects_under(&["blobs/"]).keys() {
        let hash = blake3::hash(&remote.read(key)).to_hex().to_string();
        assert!(key.ends_with(&hash), "blob {key} holds other bytes (blake3 {hash})");
    }
}

fn server_killed_mid_backup(kind: Kind) {
    let b = Bench::new(false, |src| {
        big_source(src);
    });
    let total = 8 * (25u64 << 20);
    let mut server = PrivateServer::start(kind, &b.sb.path().join("server"));
    let remote = server.remote("killed");
    b.add(&remote, &[("retries", "1"), ("timeout", "5")]);

    let id = b.daemon.start_run(JOB);
    wait_until("the run to store some files and be uploading another", RUN_TIMEOUT, || {
        let run = b.daemon.run_show(id);
        assert_eq!(run["state"], "running", "the run ended before the server could be killed: {run:#}");
        // On FTP an upload under way is a temporary file at the root, renamed
        // into place when complete: kill the server in the middle of one.
        let uploading = kind == Kind::S3
            || remote.objects().iter().any(|(k, size)| !k.contains('/') && k != "HINDSIGHT" && *size > 0);
        (stat(&run, "bytes_copied") >= 2 * (25 << 20) && uploading).then_some(())
    });
    server.kill();
    let killed = Instant::now();
    let run = b.daemon.wait_run_final(id);
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(40), "the run took {took:?} to give up on a dead server");
    assert_eq!(run["state"], "failed", "{run:#}");
    let message = run["destinations"][0]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "the failed run says nothing about why: {run:#}");
    let lower = message.to_lowercase();
    assert!(
        message.contains(kind.name())
            && ["connection refused", "connection reset", "broken pipe"].iter().any(|w| lower.contains(w)),
        "the failure does not say that the {} server dropped or refused the connection: {message}",
        kind.name()
    );
    assert!(b.snapshots().is_empty(), "a snapshot is listed after the failed run: {:?}", b.snapshots());

    server.restart();
    if kind == Kind::S3 {
        // moto kept everything in memory: the server is back empty, marker
        // included; the run says so and writes nothing, and an edit of the
        // destination (which validates it) writes the marker again.
        let (code, run) = b.daemon.run_wait(JOB);
        assert_ne!(code, 0, "a run to a root without marker: {run:#}");
        let message = run["destinations"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("HINDSIGHT"), "the run does not say the marker is missing: {run:#}");
        assert!(remote.objects().is_empty(), "a run wrote to a root without marker: {:?}", remote.objects());
        b.daemon.cli_ok(&["destination", "edit", DEST, "-o", "timeout=6"]);
    } else {
        let manifests: Vec<String> = remote.objects().into_keys().filter(|k| k.ends_with("snapshot.json")).collect();
        assert!(manifests.is_empty(), "the interrupted run left a manifest: {manifests:?}");
    }
    let stored_before = total_under(&remote);
    let (run, name) = b.backup();
    let copied = stat(&run, "bytes_copied");
    let stored = total_under(&remote) - stored_before;
    if kind == Kind::Ftp {
        assert!(copied < total, "the run after the interruption copied {copied} of {total} bytes");
        assert!(stored < total, "the run after the interruption stored {stored} of {total} bytes");
    } else {
        assert!(stored >= total, "the bucket lost the interrupted run's objects: all must be stored again");
    }
    assert_eq!(blob_names(&remote.objects_under(&["blobs/"])), large_hashes(&b.src), "blobs of snapshot {name}");
    assert_blobs_intact(&remote);
    let top: BTreeSet<String> =
        remote.objects().into_keys().map(|k| k.split('/').next().unwrap_or_default().to_string()).collect();
    let want: BTreeSet<String> = ["HINDSIGHT", "blobs", "packs", JOB].iter().map(|s| s.to_string()).collect();
    assert_eq!(top, want, "the root after the run that completed (an interrupted upload left something?)");
}

fn total_under(remote: &Remote) -> u64 {
    total(&remote.objects_under(&["blobs/", "packs/"]))
}

fn large_hashes(src: &Path) -> BTreeSet<String> {
    contents(&describe(src)).into_iter().filter(|(_, s)| *s >= SMALL_FILE).map(|(h, _)| h).collect()
}

#[test]
fn s3_server_killed_mid_backup_fails_cleanly_and_the_next_run_completes() {
    server_killed_mid_backup(Kind::S3);
}

#[test]
fn ftp_server_killed_mid_backup_fails_cleanly_and_the_next_run_reuses_what_it_stored() {
    server_killed_mid_backup(Kind::Ftp);
}

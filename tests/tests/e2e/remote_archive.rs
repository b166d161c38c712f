//! Archived and compressed snapshots on remote destinations: a compressed
//! backup to S3 and an archived one to FTP store `<job>/<snapshot>/` with
//! exactly `data.tar[.gz]`, `index.sqlite` and `snapshot.json` (no blobs);
//! the stored archive, downloaded from the server, extracts with GNU tar to
//! the source; `cp -a` from the daemon's mount equals the source;
//! `destination check --read-data` passes, and finds a byte flipped in the
//! archive stored on FTP, naming the file it damages.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::daemon::str_field;
use crate::support::remote::{Kind, Remote};
use crate::support::system::{FuseGuard, tool};
use crate::support::{Daemon, Sandbox, assert_same, describe, fixture, services, wait_until};

/// Name of the remote destination.
const DEST: &str = "remote";
/// Name of the job.
const JOB: &str = "rj";
/// How long a new remote snapshot may take to show in the mount (listings every 10 s).
const APPEAR: Duration = Duration::from_secs(30);
/// Seed of the big file's content (found again in the stored archive).
const BIG_SEED: u64 = 41;

/// Every kind of entry, and a file of several gzip members.
fn fill(src: &Path) {
    fixture::every_kind(src);
    fixture::write(&src.join("big.bin"), &fixture::pseudo_random(3 << 20, BIG_SEED));
    fixture::stamp_times(src);
}

/// Extracts `archive` with GNU tar, restoring everything.
fn extract(archive: &Path, into: &Path) {
    std::fs::create_dir_all(into).expect("create the extraction directory");
    let out = Command::new("tar")
        .args(["--extract", "--preserve-permissions", "--same-owner", "--numeric-owner"])
        .args(["--xattrs", "--xattrs-include=*", "--file"])
        .arg(archive)
        .arg("--directory")
        .arg(into)
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar -x {}: {}", archive.display(), String::from_utf8_lossy(&out.stderr));
}

/// Downloads object `key` of `remote` to `to`: from the FTP server's root
/// directory, or with a signed GET from S3 (moto refuses anonymous GETs).
fn download(remote: &Remote, key: &str, to: &Path) {
    if remote.kind() == Kind::Ftp {
        std::fs::copy(remote.ftp_file(key), to).expect("copy the stored archive");
        return;
    }
    let e = services::s3();
    let url = format!("{}/{}/{}/{key}", e.endpoint, e.bucket, remote.root.trim_matches('/'));
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--aws-sigv4"])
        .arg(format!("aws:amz:{}:s3", e.region))
        .arg("--user")
        .arg(format!("{}:{}", e.access_key, e.secret_key))
        .arg("--output")
        .arg(to)
        .arg(&url)
        .output()
        .expect("run curl");
    assert!(out.status.success(), "GET {url}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Backs the source up to `kind` as `structure`; checks what is stored, its
/// extraction by GNU tar, the mount and the check. Returns what the damage
/// test needs: the remote, the daemon's bench and the snapshot's name.
fn backup_and_restore(kind: Kind, structure: &str, file: &str) -> (Remote, Daemon, Sandbox, FuseGuard, String) {
    let remote = Remote::shared(kind, structure);
    let sb = Sandbox::new();
    let src = sb.dir("src");
    fill(&src);
    let want = describe(&src);
    fixture::check_every_kind(&want);
    let mnt = sb.dir("mnt");
    let mut opts = sb.daemon_opts();
    opts.mountpoint = Some(mnt.clone());
    let guard = FuseGuard(mnt.clone());
    let daemon = Daemon::start(opts);
    let mut args = vec!["destination".to_string(), "add".into(), DEST.into()];
    args.extend(remote.add_args(&[]));
    let out = daemon.cli(&args);
    assert!(out.success(), "{out}\n{}", daemon.log_tail());
    daemon.add_job(JOB, &[&src], &[DEST], &["--structure", structure]);

    let run = daemon.run_job_wait(JOB);
    assert_eq!(str_field(&run, "state"), "completed", "the {structure} run to {kind:?}: {run:#}");
    let name = run["destinations"][0]["snapshot"].as_str().expect("the run made a snapshot").to_string();

    // Exactly the archive, its index and its manifest: nothing content-addressed.
    let objects = remote.objects();
    let mut stored: Vec<&String> = objects.keys().filter(|k| k.as_str() != "HINDSIGHT").collect();
    stored.sort();
    let mut expected: Vec<String> =
        [file, "index.sqlite", "snapshot.json"].iter().map(|f| format!("{JOB}/{name}/{f}")).collect();
    expected.sort();
    assert_eq!(stored, expected.iter().collect::<Vec<_>>(), "objects on {kind:?} after a {structure} backup");

    // The stored archive is a standard one.
    let local = sb.path().join(file);
    download(&remote, &format!("{JOB}/{name}/{file}"), &local);
    let x = sb.path().join("extracted");
    extract(&local, &x);
    assert_same(&want, &describe(&x.join(src.strip_prefix("/").expect("absolute"))), "GNU tar of the stored archive");

    // The mount reads its files out of the remote archive.
    let from = mnt.join(DEST).join(JOB).join(&name).join(src.strip_prefix("/").expect("absolute source"));
    wait_until(&format!("snapshot {name} in the mount"), APPEAR, || from.is_dir().then_some(()));
    let to = sb.path().join("restore");
    tool("cp", [std::ffi::OsStr::new("-a"), from.as_os_str(), to.as_os_str()]);
    assert_same(&want, &describe(&to), &format!("cp -a of the {structure} snapshot on {kind:?} from the mount"));

    // And the agent's own restore, reading the members it needs from the remote archive.
    let into = sb.path().join("agent-restore");
    let id = daemon.snapshot_id(&name);
    let src_s = src.to_str().expect("utf-8");
    let into_s = into.to_str().expect("utf-8");
    let out = daemon.cli_within(["restore", "files", &id, src_s, "--to", into_s, "--wait"], Duration::from_secs(60));
    assert!(out.success(), "restore files of the {structure} snapshot on {kind:?}:\n{out}\n{}", daemon.log_tail());
    let restored = into.join(src.strip_prefix("/").expect("absolute"));
    assert_same(&want, &describe(&restored), &format!("restore files of the {structure} snapshot on {kind:?}"));

    let check = daemon.cli(["destination", "check", DEST, "--read-data"]);
    assert!(check.success(), "check of the {structure} snapshot on {kind:?}:\n{check}\n{}", daemon.log_tail());
    assert!(check.stdout.contains(&name), "the check reports snapshot {name}:\n{check}");
    (remote, daemon, sb, guard, name)
}

#[test]
fn compressed_snapshot_on_s3_restores_with_gnu_tar_and_through_the_mount() {
    let _ = backup_and_restore(Kind::S3, "compressed", "data.tar.gz");
}

#[test]
fn archived_snapshot_on_ftp_restores_and_its_check_finds_a_damaged_byte() {
    let (remote, daemon, _sb, _guard, name) = backup_and_restore(Kind::Ftp, "archived", "data.tar");
    let stored: PathBuf = remote.ftp_file(&format!("{JOB}/{name}/data.tar"));
    let mut data = std::fs::read(&stored).expect("read the stored archive");
    let big = fixture::pseudo_random(3 << 20, BIG_SEED);
    let at = data.windows(64).position(|w| w == &big[..64]).expect("big.bin's bytes in the stored data.tar");
    data[at + 100_000] ^= 0xff;
    std::fs::write(&stored, &data).expect("damage the stored archive");
    let out = daemon.cli(["destination", "check", DEST, "--read-data"]);
    assert_eq!(out.code, 1, "check --read-data of a damaged archive:\n{out}");
    assert!(out.stdout.contains("big.bin"), "the damaged file is named:\n{out}");
}

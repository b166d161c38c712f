//! File names are bytes: a name that is not UTF-8, one with a newline, one
//! with a backslash, in files and directories, backed up to an SSH, an S3
//! and an FTP destination. Each run completes (not partial, no file error),
//! `cp -a` through the mount gives back the source exactly, and
//! `destination check --read-data` finds the destination clean.

use std::path::Path;

use crate::support::remote::{Kind, Remote};
use crate::support::{DEST, JOB, Setup, assert_same, describe, fixture};

/// Names GNU tar, shells and object keys each get wrong in their own way.
fn odd_names(src: &Path) {
    let files: [&[u8]; 6] = [
        b"plain.txt",
        b"caf\xe9-latin1.txt",
        b"new\nline.txt",
        b"back\\slash\\n.txt",
        b"d\xff\xfe-dir/inner\x01\xc3(.bin",
        b"colon: and space.txt",
    ];
    for (i, name) in files.iter().enumerate() {
        let data = fixture::pseudo_random(1000 + i * 4099, 70 + i as u64);
        fixture::write(&fixture::at(src, name), &data);
    }
    fixture::symlink(b"caf\xe9-latin1.txt", &fixture::at(src, b"link\xe0"));
    fixture::stamp_times(src);
}

/// Runs the job, which must complete with no file error; restores the new
/// snapshot through the mount with `cp -a` and compares; checks the destination.
fn assert_names_round_trip(s: &Setup) {
    let want = describe(&s.src);
    let (code, run) = s.daemon.run_wait(JOB);
    assert_eq!((code, run["state"].as_str()), (0, Some("completed")), "{run:#}\n{}", s.daemon.log_tail());
    assert_eq!(run["errors"], serde_json::json!([]), "file errors: {run:#}");
    let snapshot = run["destinations"][0]["snapshot"].as_str().expect("a snapshot");
    let from = s.mountpoint().join(DEST).join(JOB).join(snapshot).join(s.src.strip_prefix("/").expect("absolute"));
    let to = s.sb.path().join("restored");
    let cp = std::process::Command::new("cp").arg("-a").arg(&from).arg(&to).output().expect("cp");
    assert!(cp.status.success(), "cp -a from the mount: {}", String::from_utf8_lossy(&cp.stderr));
    assert_same(&want, &describe(&to), "cp -a of the snapshot from the mount");
    let check = s.daemon.cli(["destination", "check", DEST, "--read-data"]);
    assert!(check.success(), "check --read-data of a clean destination:\n{check}");
}

/// A mounted daemon backing odd names up to the destination added by `args`.
fn setup(args: Vec<String>) -> Setup {
    let s = Setup::mounted_without_destination(odd_names);
    let mut all = vec!["destination".to_string(), "add".into(), DEST.into()];
    all.extend(args);
    s.daemon.cli_ok(&all.iter().map(String::as_str).collect::<Vec<_>>());
    s.daemon.add_job(JOB, &[&s.src], &[DEST], &[]);
    s
}

#[test]
fn odd_names_round_trip_over_ssh() {
    let env = crate::support::services::ssh();
    let root = crate::remote_ssh::unique_root("names");
    let mut args = vec!["--type".to_string(), "ssh".into()];
    args.extend(crate::remote_ssh::ssh_args(&env, &root, &[]));
    assert_names_round_trip(&setup(args));
}

#[test]
fn odd_names_round_trip_over_s3() {
    assert_names_round_trip(&setup(Remote::shared(Kind::S3, "names").add_args(&[])));
}

#[test]
fn odd_names_round_trip_over_ftp() {
    assert_names_round_trip(&setup(Remote::shared(Kind::Ftp, "names").add_args(&[])));
}

//! Integrity checks and pruning of a content-addressed remote destination
//! (the real FTP server, whose root is a directory on this machine, so the
//! test can see and damage the stored objects): `destination check` finds a
//! missing body and names the file; deleting a snapshot frees the bodies only
//! it used and keeps those later snapshots share; `hindsight mount
//! --destination URL` browses it with no agent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{Setup, assert_same, describe, fixture, services, wait_until};

/// Where the server keeps the object `blobs/xx/<blake3 of content>`.
fn blob_path(root: &Path, content: &[u8]) -> PathBuf {
    let hex = blake3::hash(content).to_hex().to_string();
    root.join("blobs").join(&hex[..2]).join(hex)
}

/// Adds the FTP destination `name` rooted at `/<prefix>` on the test server.
fn add_ftp(s: &Setup, ftp: &services::FtpEnv, name: &str, prefix: &str) {
    let o = |k: &str, v: &str| format!("{k}={v}");
    let port = ftp.port.to_string();
    let path = format!("/{prefix}");
    let args = [
        o("host", &ftp.host),
        o("port", &port),
        o("username", &ftp.user),
        o("password", &ftp.password),
        o("path", &path),
    ];
    let mut cmd = vec!["destination", "add", name, "--type", "ftp"];
    for a in &args {
        cmd.extend(["-o", a.as_str()]);
    }
    s.daemon.cli_ok(&cmd);
}

#[test]
fn check_finds_a_missing_body_and_prune_frees_only_unreferenced_bodies() {
    let ftp = services::ftp();
    let only_first = fixture::pseudo_random(3 << 20, 11);
    let shared = fixture::pseudo_random(2 << 20, 12);
    let (a, b) = (only_first.clone(), shared.clone());
    let s = Setup::without_job(move |root| {
        fixture::small_tree(root);
        fixture::write(&root.join("only-first.bin"), &a);
        fixture::write(&root.join("shared.bin"), &b);
    });
    let prefix = format!("prune-{}", std::process::id());
    add_ftp(&s, &ftp, "f1", &prefix);
    s.daemon.add_job("jr", &[&s.src], &["f1"], &[]);
    s.daemon.run_job_wait("jr");
    let listed = s.daemon.cli_json(&["snapshot", "list"]);
    let ids: Vec<i64> = listed.as_array().into_iter().flatten().filter_map(|v| v["id"].as_i64()).collect();
    assert_eq!(ids.len(), 1, "one snapshot after the first run: {listed:#}");
    let first = ids[0];
    std::fs::remove_file(s.src.join("only-first.bin")).expect("remove only-first.bin");
    fixture::write(&s.src.join("later.txt"), b"added later\n");
    s.daemon.run_job_wait("jr");

    let root = ftp.root_dir.join(&prefix);
    let (gone, kept) = (blob_path(&root, &only_first), blob_path(&root, &shared));
    assert!(gone.is_file() && kept.is_file(), "both large files stored as blobs under {}", root.display());
    s.daemon.cli(["destination", "check", "f1", "--read-data"]).assert_success();

    // A missing body is found, with the file that needs it.
    let saved = std::fs::read(&kept).expect("read the shared blob");
    std::fs::remove_file(&kept).expect("remove the shared blob");
    let out = s.daemon.cli(["destination", "check", "f1"]);
    assert_eq!(out.code, 1, "check of a destination missing a body:\n{out}");
    assert!(out.stdout.contains("shared.bin") && out.stdout.contains("missing"), "the file is named:\n{out}");
    std::fs::write(&kept, &saved).expect("put the blob back");
    s.daemon.cli(["destination", "check", "f1", "--read-data"]).assert_success();

    // A changed byte in a stored body is found only by reading the data.
    let mut damaged = saved.clone();
    damaged[1000] ^= 0xff;
    std::fs::write(&kept, &damaged).expect("damage the blob");
    s.daemon.cli(["destination", "check", "f1"]).assert_success();
    let out = s.daemon.cli(["destination", "check", "f1", "--read-data"]);
    assert_eq!(out.code, 1, "check --read-data of a damaged body:\n{out}");
    assert!(out.stdout.contains("shared.bin"), "the damaged file is named:\n{out}");
    std::fs::write(&kept, &saved).expect("repair the blob");

    // Deleting the first snapshot frees what only it used, in the background.
    s.daemon.cli_ok(&["snapshot", "delete", &first.to_string()]);
    wait_until("the prune after the deletion", Duration::from_secs(30), || (!gone.exists()).then_some(()));
    assert!(kept.is_file(), "the body the remaining snapshot shares is kept");
    s.daemon.cli(["destination", "check", "f1", "--read-data"]).assert_success();
}

#[test]
fn standalone_mount_of_a_remote_destination_by_url() {
    let ftp = services::ftp();
    let mut s = Setup::without_job(fixture::every_kind);
    let want = describe(&s.src);
    let prefix = format!("url-mount-{}", std::process::id());
    add_ftp(&s, &ftp, "f2", &prefix);
    s.daemon.add_job("ju", &[&s.src], &["f2"], &[]);
    s.daemon.run_job_wait("ju");
    assert!(s.daemon.stop().success(), "daemon stops on SIGTERM");

    let mnt = s.sb.dir("url-mount");
    let _guard = crate::support::system::FuseGuard(mnt.clone());
    let url = format!("ftp://{}@{}:{}/{prefix}", ftp.user, ftp.host, ftp.port);
    let mnt_s = mnt.to_string_lossy().into_owned();
    let out = s.daemon.cli(["mount", "--destination", &url, &mnt_s, "--background"]);
    assert_ne!(out.code, 0, "no password: the server refuses the login:\n{out}");
    let mut cmd = std::process::Command::new(crate::support::hindsight_bin());
    cmd.args(["mount", "--destination", &url, &mnt_s, "--background"]).env("HINDSIGHT_PASSWORD", &ftp.password);
    let status = cmd.status().expect("run hindsight mount");
    assert!(status.success(), "mount of {url} with the password from the environment");
    let job = mnt.join("ju");
    let snap = crate::support::list_names(&job).into_iter().find(|n| n != "latest").expect("a snapshot in the mount");
    let copy = s.sb.path().join("copy");
    let tree = job.join(&snap).join(s.src.strip_prefix("/").expect("absolute"));
    let cp = std::process::Command::new("cp").arg("-a").arg(&tree).arg(&copy).status().expect("cp");
    assert!(cp.success(), "cp -a from the mount of the remote destination");
    assert_same(&want, &describe(&copy), "cp -a from the standalone mount of an FTP destination");
    s.daemon.cli(["umount", &mnt_s]).assert_success();
}

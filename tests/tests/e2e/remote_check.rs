//! Integrity checks and pruning of a content-addressed remote destination
//! (the real FTP server, whose root is a directory on this machine, so the
//! test can see and damage the stored objects): `destination check` finds a
//! missing body and names the file; deleting a snapshot frees the bodies only
//! it used and keeps those later snapshots share.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{Setup, fixture, services, wait_until};

/// Where the server keeps the object `blobs/xx/<blake3 of content>`.
fn blob_path(root: &Path, content: &[u8]) -> PathBuf {
    let hex = blake3::hash(content).to_hex().to_string();
    root.join("blobs").join(&hex[..2]).join(hex)
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
    let o = |k: &str, v: &str| format!("{k}={v}");
    s.daemon.cli_ok(&[
        "destination",
        "add",
        "f1",
        "--type",
        "ftp",
        "-o",
        &o("host", &ftp.host),
        "-o",
        &o("port", &ftp.port.to_string()),
        "-o",
        &o("username", &ftp.user),
        "-o",
        &o("password", &ftp.password),
        "-o",
        &o("path", &format!("/{prefix}")),
    ]);
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

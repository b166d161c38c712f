//! `destination check`: every complete snapshot is verified; a file deleted
//! from `tree/`, a flipped byte (found only with `--read-data`), a damaged
//! gzip member and a truncated `data.tar` are each named in the output and
//! make the command exit 1; a clean destination exits 0.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use serde_json::Value;

use crate::support::daemon::Output;
use crate::support::{DEST, JOB, Setup, fixture, s as path_str};

/// `destination check d1 [--read-data] [--json]`.
fn check(s: &Setup, read_data: bool, json: bool) -> Output {
    let mut args = vec!["destination", "check", DEST];
    args.extend(read_data.then_some("--read-data"));
    args.extend(json.then_some("--json"));
    s.daemon.cli(args)
}

/// Asserts a clean check: exit 0 and every snapshot `ok`.
fn assert_clean(s: &Setup, read_data: bool, snapshots: usize) {
    let out = check(s, read_data, false);
    assert_eq!(out.code, 0, "expected a clean check:\n{out}");
    assert_eq!(out.stdout.lines().filter(|l| l.contains(": ok (")).count(), snapshots, "{out}");
    assert!(out.stdout.contains("all ok"), "{out}");
    let json = check(s, read_data, true);
    assert_eq!(json.code, 0, "{json}");
    let v: Value = json.json();
    assert_eq!((v["ok"].as_bool(), v["snapshots"].as_array().map(Vec::len)), (Some(true), Some(snapshots)), "{v:#}");
}

/// Asserts a failed check (exit 1) whose output names every one of `words`.
fn assert_found(s: &Setup, read_data: bool, words: &[&str]) -> Output {
    let out = check(s, read_data, false);
    assert_eq!(out.code, 1, "expected problems:\n{out}");
    for w in words {
        assert!(out.stdout.contains(w), "the output does not mention {w:?}:\n{out}");
    }
    let json = check(s, read_data, true);
    assert_eq!(json.code, 1, "{json}");
    assert_eq!(json.json()["ok"], false, "{json}");
    out
}

/// Path of `rel` under the source as the index and the report show it.
fn shown(src: &Path, rel: &str) -> String {
    format!("{}/{rel}", path_str(src).trim_start_matches('/'))
}

fn flip_byte(path: &Path, offset: u64) {
    let mut f = std::fs::File::options().read(true).write(true).open(path).expect("open for writing");
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).expect("seek");
    std::io::Read::read_exact(&mut f, &mut b).expect("read a byte");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.write_all(&[b[0] ^ 0x5a]).expect("flip a byte");
}

#[test]
fn incremental_missing_file_and_flipped_byte() {
    let s = Setup::new(fixture::small_tree);
    s.daemon.backup(JOB);
    fixture::write(&s.src.join("a.txt"), b"changed for the second snapshot\n");
    let second = s.daemon.backup(JOB);
    assert_clean(&s, false, 2);
    assert_clean(&s, true, 2);

    // A flipped byte keeps the size: only hashing finds it.
    flip_byte(&second.tree(&s.src).join("b/d/e.bin"), 50_000);
    assert_clean(&s, false, 2);
    let out = assert_found(&s, true, &[&shown(&s.src, "b/d/e.bin"), "content does not match"]);
    assert!(out.stdout.contains("1 with problems") || out.stdout.contains("2 with problems"), "{out}");

    std::fs::remove_file(second.tree(&s.src).join("a.txt")).expect("delete a file of the snapshot");
    let out = assert_found(&s, false, &[&shown(&s.src, "a.txt"), "missing from tree/", &second.name]);
    assert!(!out.stdout.contains("content does not match"), "contents read without --read-data:\n{out}");

    // Read-only and disabled destinations are checked all the same.
    s.daemon.cli_json(&["destination", "edit", DEST, "--readonly", "true", "--disabled", "true"]);
    assert_found(&s, false, &[&shown(&s.src, "a.txt")]);
    s.daemon.cli(["destination", "check", "nope"]).assert_error_code(5, &["nope"]);
}

/// A source whose big file fills several gzip members of 1 MiB.
fn big_tree(root: &Path) {
    fixture::small_tree(root);
    fixture::big_file(&root.join("big.bin"), 5 << 20, 7);
}

/// The data file of the job's only snapshot.
fn data_file(s: &Setup, name: &str) -> std::path::PathBuf {
    let snaps = s.daemon.snapshot_names(JOB);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    s.job_dir().join(&snaps[0]).join(name)
}

#[test]
fn compressed_flipped_byte_in_one_member_names_the_file() {
    let s = Setup::without_job(big_tree);
    s.daemon.add_job(JOB, &[&s.src], &[DEST], &["--structure", "compressed"]);
    s.daemon.backup(JOB);
    assert_clean(&s, false, 1);
    assert_clean(&s, true, 1);

    let tgz = data_file(&s, "data.tar.gz");
    let len = std::fs::metadata(&tgz).expect("stat data.tar.gz").len();
    flip_byte(&tgz, len / 2);
    for read_data in [false, true] {
        let out = assert_found(&s, read_data, &["gzip member", &shown(&s.src, "big.bin")]);
        let lines: Vec<&str> = out.stdout.lines().filter(|l| l.contains("gzip member")).collect();
        assert_eq!(lines.len(), 1, "the damaged member is reported once:\n{out}");
        assert!(!out.stdout.contains("a.txt"), "a file outside the member is blamed:\n{out}");
    }
}

#[test]
fn archived_truncated_data_tar_is_reported() {
    let s = Setup::without_job(big_tree);
    s.daemon.add_job(JOB, &[&s.src], &[DEST], &["--structure", "archived"]);
    s.daemon.backup(JOB);
    assert_clean(&s, false, 1);
    assert_clean(&s, true, 1);

    let tar = data_file(&s, "data.tar");
    let len = std::fs::metadata(&tar).expect("stat data.tar").len();
    std::fs::File::options().write(true).open(&tar).expect("open data.tar").set_len(len - (2 << 20)).expect("truncate");
    assert_found(&s, false, &["data.tar", "truncated", &shown(&s.src, "big.bin")]);
}

/// Every kind of entry (hardlinks, devices, odd and long names, xattrs,
/// sparse files), in each structure, checks clean: no false alarms.
#[test]
fn every_kind_of_entry_checks_clean_in_every_structure() {
    let s = Setup::without_job(|root| {
        fixture::every_kind(root);
        let deep = root.join("long").join("d".repeat(120)).join("e".repeat(200));
        fixture::write(&deep.join("f".repeat(180)), b"deep\n");
        fixture::stamp_times(root);
    });
    for (job, structure) in [("inc", "incremental"), ("arc", "archived"), ("cmp", "compressed")] {
        s.daemon.add_job(job, &[&s.src], &[DEST], &["--structure", structure]);
        s.daemon.backup(job);
    }
    assert_clean(&s, false, 3);
    assert_clean(&s, true, 3);
}

#[test]
fn a_scheduled_check_finds_a_flipped_byte_alerts_and_keeps_its_report() {
    let s = Setup::new(fixture::small_tree);
    let snap = s.daemon.backup(JOB);
    flip_byte(&snap.tree(&s.src).join("b/d/e.bin"), 50_000);
    // A share of the contents: a manual check reading about half of the files says so.
    let half = s.daemon.cli(["destination", "check", DEST, "--read-data-percent", "50", "--json"]);
    assert_eq!(half.json()["read_data_percent"], 50, "{half}");
    s.daemon.cli(["destination", "check", DEST, "--read-data-percent", "0"]).assert_error(&["1 to 100"]);
    // (that check may have found the byte and raised the alert: acknowledged, so the next one is the schedule's)
    for a in s.daemon.cli_json(&["alert", "list"]).as_array().into_iter().flatten() {
        s.daemon.cli_ok(&["alert", "ack", &a["id"].to_string()]);
    }

    // Due at the next whole minute at least 20 s ahead, in the agent's time zone.
    let out = std::process::Command::new("date").args(["-d", "+80 seconds", "+%H:%M"]).output().expect("date");
    let at = String::from_utf8_lossy(&out.stdout).trim().to_string();
    s.daemon.cli_json(&[
        "destination",
        "edit",
        DEST,
        "--check-schedule",
        "daily",
        "--check-time",
        &at,
        "--check-read-data",
        "100",
    ]);
    let shown = s.daemon.cli_json(&["destination", "show", DEST]);
    assert_eq!((shown["check"]["schedule"].as_str(), shown["check"]["read_data"].as_u64()), (Some("daily"), Some(100)));
    let alert = crate::support::wait_until("the check_failed alert", std::time::Duration::from_secs(150), || {
        let alerts = s.daemon.cli_json(&["alert", "list"]);
        alerts.as_array().into_iter().flatten().find(|a| a["kind"] == "check_failed").cloned()
    });
    assert_eq!(alert["level"], "critical", "{alert:#}");
    let text = alert["message"].as_str().unwrap_or_default();
    assert!(text.contains(&format!("{JOB}/{}", snap.name)) && text.contains("e.bin"), "{alert:#}");

    let last = s.daemon.cli(["destination", "check", DEST, "--last", "--json"]);
    assert_eq!(last.code, 1, "the last check found damage: {last}");
    let report = last.json();
    assert_eq!((report["trigger"].as_str(), report["read_data_percent"].as_u64()), (Some("schedule"), Some(100)));
    assert_eq!(report["ok"], false);
    let shown = s.daemon.cli_json(&["destination", "show", DEST]);
    assert_eq!(
        (shown["check"]["last"]["ok"].as_bool(), shown["check"]["last"]["trigger"].as_str()),
        (Some(false), Some("schedule"))
    );
    assert!(shown["check"]["next"].is_string(), "the next check is not planned: {shown:#}");
    s.daemon.cli(["destination", "edit", DEST, "--check-schedule", "after:other"]).assert_error(&["check schedule"]);
}

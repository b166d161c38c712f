//! Destination rules end to end: removal while in use, non-empty directories
//! and `--force`, adoption of another agent's destination with its
//! snapshots, the disk limit, read-only and disabled destinations.

use serde_json::Value;

use crate::support::fixture::{self, write};
use crate::support::system::Mount;
use crate::support::{DEST, Daemon, DaemonOpts, JOB, Sandbox, Setup, assert_same, describe, list_names, s};

/// The outcome of a run on the destination named `name`.
fn outcome<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["destinations"]
        .as_array()
        .and_then(|ds| ds.iter().find(|d| d["destination"] == name))
        .unwrap_or_else(|| panic!("no outcome for destination {name} in {run:#}"))
}

/// Asserts that `--wait` exited 1 with a failed run whose message names `words`.
fn assert_run_failed(code: i32, run: &Value, words: &[&str]) {
    assert_eq!(code, 1, "exit status of a failed run: {run:#}");
    assert_eq!(run["state"], "failed", "{run:#}");
    let message = run["message"].as_str().unwrap_or_default();
    for w in words {
        assert!(message.contains(w), "the run's message does not mention {w:?}: {run:#}");
    }
}

#[test]
fn destination_used_by_a_job_cannot_be_removed() {
    let s = Setup::new(fixture::small_tree);
    s.daemon.cli(["destination", "remove", DEST]).assert_error_code(6, &["destination d1", "used by", "j1"]);
    assert_eq!(s.daemon.cli_json(&["destination", "show", DEST])["jobs"], 1);

    s.daemon.cli_ok(&["job", "remove", JOB]);
    s.daemon.cli_ok(&["destination", "remove", DEST]);
    assert_eq!(s.daemon.cli_json(&["destination", "list"]), serde_json::json!([]));
    assert!(s.dest.join("HINDSIGHT").is_file(), "removing a destination must leave its files on disk");
}

#[test]
fn non_empty_directory_without_marker_needs_force() {
    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let dir = sb.dir("occupied");
    write(&dir.join("keep.txt"), b"not a backup\n");

    let path = s(&dir);
    daemon.cli(["destination", "add", DEST, "--type", "local", "--path", path]).assert_error(&[
        path,
        "not empty",
        "--force",
    ]);
    assert_eq!(list_names(&dir), ["keep.txt"], "a refused add wrote into the directory");
    assert_eq!(daemon.cli_json(&["destination", "list"]), serde_json::json!([]));

    daemon.add_destination(DEST, &dir, &["--force"]);
    assert_eq!(list_names(&dir), ["HINDSIGHT", "keep.txt"]);
    assert_eq!(std::fs::read(dir.join("keep.txt")).expect("read keep.txt"), b"not a backup\n");
}

#[test]
fn path_with_another_agents_marker_is_adopted_with_its_snapshots() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    fixture::small_tree(&src);
    let shared = sb.path().join("shared-dest");

    let mut first = Daemon::start(DaemonOpts::in_dir(&sb.path().join("agent-a")));
    let original = first.add_destination("usb", &shared, &[]);
    first.add_job(JOB, &[&src], &["usb"], &[]);
    let snap = first.backup(JOB);
    assert!(first.stop().success(), "agent A did not stop cleanly");

    let second = Daemon::start(DaemonOpts::in_dir(&sb.path().join("agent-b")));
    let adopted = second.add_destination("found", &shared, &[]);
    assert_eq!(adopted["id"], original["id"], "the adopted destination keeps the marker's id");
    let listed = second.snapshots();
    assert_eq!(listed.len(), 1, "snapshots listed by agent B: {listed:?}");
    assert_eq!((listed[0].job.as_str(), listed[0].name.as_str()), (JOB, snap.name.as_str()));
    assert_eq!(listed[0].path, snap.path);
    let shown = second.cli_json(&["snapshot", "show", &listed[0].id.to_string()]);
    assert_eq!(shown["destination"], "found", "{shown:#}");
    assert_same(&describe(&src), &describe(&listed[0].tree(&src)), "adopted snapshot");
}

#[test]
fn backup_is_refused_before_it_starts_at_the_disk_limit() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    fixture::small_tree(&src);
    let disk = Mount::tmpfs(&sb.path().join("small-disk"), "size=8m");
    fixture::big_file(&disk.path().join("filler"), 4 << 20, 1);
    let dest = disk.path().join("dest");
    let daemon = Daemon::start(sb.daemon_opts());
    daemon.add_destination(DEST, &dest, &["--disk-limit", "10"]);
    daemon.add_job(JOB, &[&src], &[DEST], &[]);

    let (code, run) = daemon.run_wait(JOB);
    assert_run_failed(code, &run, &["disk limit of 10%", "nothing was written"]);
    assert!(daemon.snapshots().is_empty(), "a refused run made a snapshot");
    assert_eq!(list_names(&dest), ["HINDSIGHT"], "a refused run wrote to the destination");

    daemon.cli_json(&["destination", "edit", DEST, "--disk-limit", "90"]);
    let snap = daemon.backup(JOB);
    assert_same(&describe(&src), &describe(&snap.tree(&src)), "snapshot under a raised limit");
}

#[test]
fn readonly_destination_is_never_written() {
    let s = Setup::new(fixture::small_tree);
    let first = s.daemon.backup(JOB);
    let edited = s.daemon.cli_json(&["destination", "edit", DEST, "--readonly", "true"]);
    assert_eq!(edited["readonly"], true, "{edited:#}");
    write(&s.src.join("new.txt"), b"would need a new snapshot\n");
    let before = describe(&s.dest);

    let (code, run) = s.daemon.run_wait(JOB);
    assert_run_failed(code, &run, &["read-only"]);
    s.daemon.cli(["snapshot", "delete", &first.id.to_string()]).assert_error(&["read-only"]);
    assert_eq!(s.daemon.snapshot_names(JOB), [first.name.as_str()]);
    assert_same(&before, &describe(&s.dest), "read-only destination after a run and a delete");
}

#[test]
fn disabled_destination_is_skipped() {
    let s = Setup::without_job(fixture::small_tree);
    let off = s.sb.path().join("off-dest");
    s.daemon.add_destination("off", &off, &["--disabled"]);
    s.daemon.add_job(JOB, &[&s.src], &[DEST, "off"], &[]);

    let run = s.daemon.run_job_wait(JOB);
    assert_eq!(outcome(&run, DEST)["state"], "completed", "{run:#}");
    let skipped = outcome(&run, "off");
    assert_eq!(skipped["state"], "skipped", "{run:#}");
    assert_eq!(skipped["snapshot"], Value::Null, "{run:#}");
    assert!(skipped["message"].as_str().is_some_and(|m| m.contains("disabled")), "{run:#}");
    let snaps = s.daemon.snapshots();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(snaps[0].path.parent().and_then(|p| p.parent()), Some(s.dest.as_path()));
    assert_eq!(list_names(&off), ["HINDSIGHT"], "a disabled destination was written");

    s.daemon.add_job("only-off", &[&s.src], &["off"], &[]);
    let (code, run) = s.daemon.run_wait("only-off");
    assert_run_failed(code, &run, &["every destination of the job is disabled"]);
    assert_eq!(list_names(&off), ["HINDSIGHT"], "a disabled destination was written");
}

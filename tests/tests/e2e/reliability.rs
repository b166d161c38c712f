//! What a finished run promises: once `job run --wait` returns, the mount
//! shows the new snapshot as `latest` (local and remote destinations), and
//! once `snapshot delete` returns, the snapshot is gone from the mount. No
//! waiting for a rescan: `job run --wait && cp -a .../latest/...` must copy
//! the new data, never the previous snapshot's.

use std::path::Path;

use crate::support::daemon::str_field;
use crate::support::remote::{Kind, Remote};
use crate::support::{DEST, JOB, Setup, fixture, list_names};

/// Runs the job three times, each time with new content in `f`, and
/// deletes the first snapshot; checks the mount right after each command
/// returns, without waiting.
fn assert_mount_follows_at_once(s: &Setup, job_in_mount: &Path) {
    let rel = s.src.strip_prefix("/").expect("absolute source");
    let mut made = Vec::new();
    for i in 0..3 {
        let content = format!("version {i}\n");
        fixture::write(&s.src.join("f"), content.as_bytes());
        let run = s.daemon.run_job_wait(JOB);
        let name = run["destinations"][0]["snapshot"]
            .as_str()
            .unwrap_or_else(|| panic!("the run made no snapshot: {run:#}"))
            .to_string();
        let latest = std::fs::read_link(job_in_mount.join("latest"))
            .unwrap_or_else(|e| panic!("latest in the mount right after run {i}: {e}"));
        assert_eq!(latest, Path::new(&name), "latest right after `job run --wait` returned (run {i})");
        let read = std::fs::read(job_in_mount.join("latest").join(rel).join("f"))
            .unwrap_or_else(|e| panic!("reading f through latest right after run {i}: {e}"));
        assert_eq!(String::from_utf8_lossy(&read), content, "f through latest right after run {i}");
        made.push(name);
    }
    let list = s.daemon.cli_json(&["snapshot", "list", "--job", JOB]);
    let first = list
        .as_array()
        .and_then(|a| a.iter().find(|v| str_field(v, "name") == made[0]))
        .unwrap_or_else(|| panic!("snapshot {} is not listed: {list:#}", made[0]));
    let id = first["id"].as_i64().expect("snapshot id").to_string();
    s.daemon.cli_ok(&["snapshot", "delete", &id]);
    let shown = list_names(job_in_mount);
    assert!(!shown.contains(&made[0]), "the deleted snapshot {} is still in the mount: {shown:?}", made[0]);
    for kept in &made[1..] {
        assert!(shown.contains(kept), "snapshot {kept} is missing from the mount after another was deleted: {shown:?}");
    }
}

#[test]
fn a_finished_run_and_a_deletion_show_in_the_mount_of_a_local_destination_at_once() {
    let s = Setup::mounted(|src| fixture::write(&src.join("f"), b"start\n"));
    let job_in_mount = s.mountpoint().join(DEST).join(JOB);
    assert_mount_follows_at_once(&s, &job_in_mount);
}

#[test]
fn a_finished_run_and_a_deletion_show_in_the_mount_of_an_s3_destination_at_once() {
    // Remote listings are refreshed every 10 s by themselves: without the
    // agent telling its mount, each check below would see the old state.
    let s = Setup::mounted_without_destination(|src| fixture::write(&src.join("f"), b"start\n"));
    let remote = Remote::shared(Kind::S3, "visible");
    let mut args = vec!["destination".to_string(), "add".into(), DEST.into()];
    args.extend(remote.add_args(&[]));
    s.daemon.cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    s.daemon.add_job(JOB, &[&s.src], &[DEST], &[]);
    let job_in_mount = s.mountpoint().join(DEST).join(JOB);
    assert_mount_follows_at_once(&s, &job_in_mount);
}

/// The `user_version` of the SQLite database at `path`, set to `set` first when given.
fn catalog_version(path: &Path, set: Option<i64>) -> i64 {
    let script = "import sqlite3, sys\n\
                  c = sqlite3.connect(sys.argv[1])\n\
                  if len(sys.argv) > 2:\n    c.execute('PRAGMA user_version = %d' % int(sys.argv[2])); c.commit()\n\
                  print(c.execute('PRAGMA user_version').fetchone()[0])\n";
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(script).arg(path);
    if let Some(v) = set {
        cmd.arg(v.to_string());
    }
    let out = cmd.output().expect("run python3");
    assert!(out.status.success(), "python3 sqlite3: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("user_version")
}

#[test]
fn a_catalog_from_a_newer_version_is_refused_and_left_as_it_is() {
    let sb = crate::support::Sandbox::new();
    let opts = sb.daemon_opts();
    let mut daemon = crate::support::Daemon::start(opts.clone());
    daemon.stop();
    let catalog = opts.state_dir.join("catalog.sqlite");
    let current = catalog_version(&catalog, None);
    assert!(current > 0, "the catalog was not migrated: version {current}");
    catalog_version(&catalog, Some(current + 7));
    let (status, log) = crate::support::daemon::run_to_exit(&opts);
    assert!(!status.success(), "the daemon started on a catalog from a newer version:\n{log}");
    let want = format!("schema version {}", current + 7);
    assert!(
        log.contains(&want) && log.contains("newer version of Hindsight") && log.contains(&format!("up to {current}")),
        "unclear refusal of a newer catalog:\n{log}"
    );
    assert_eq!(catalog_version(&catalog, None), current + 7, "the refused catalog was changed");
}

/// The listed snapshot names of [`JOB`], sorted.
fn job_snapshots(s: &Setup) -> Vec<String> {
    s.daemon.snapshot_names(JOB)
}

/// Asserts that `run` is marked suspicious on its destination with a reason
/// holding every one of `words`, and that an open `suspicious_run` alert says so.
fn assert_suspicious(s: &Setup, run: &serde_json::Value, words: &[&str]) {
    let why = run["destinations"][0]["suspicious"]
        .as_str()
        .unwrap_or_else(|| panic!("the run is not marked suspicious: {run:#}"));
    for w in words {
        assert!(why.contains(w), "the suspicious mark {why:?} does not say {w:?}");
    }
    let alerts = s.daemon.cli_json(&["alert", "list"]);
    let alert = alerts
        .as_array()
        .and_then(|a| a.iter().find(|a| a["kind"] == "suspicious_run" && a["subject"] == JOB))
        .unwrap_or_else(|| panic!("no suspicious_run alert: {alerts:#}"));
    assert_eq!(alert["level"], "warning", "{alert:#}");
    let text = str_field(alert, "message");
    assert!(text.contains(why) && text.contains("retention was skipped"), "the alert does not name the drop: {text}");
    let shown = s.daemon.cli_ok(&["run", "show", &run["id"].to_string()]).stdout.clone();
    assert!(shown.contains("suspicious"), "run show does not say the run is suspicious:\n{shown}");
}

fn ten_files(src: &Path) {
    for i in 0..10 {
        fixture::write(&src.join(format!("f{i}")), format!("file {i}\n").as_bytes());
    }
}

#[test]
fn an_empty_or_mass_changed_source_never_rotates_history_away() {
    let s = Setup::new(ten_files);
    let good = s.daemon.backup(JOB).name;
    // Retention after any completed run would now keep only its snapshot.
    s.daemon.cli_ok(&["settings", "set", "manual_retain", "1"]);

    // The data disk did not mount: the source is an empty directory.
    for i in 0..10 {
        std::fs::remove_file(s.src.join(format!("f{i}"))).expect("empty the source");
    }
    let empty_run = s.daemon.run_job_wait(JOB);
    let empty = empty_run["destinations"][0]["snapshot"].as_str().expect("the empty run's snapshot").to_string();
    assert_suspicious(&s, &empty_run, &["0 files against 10", "-100%", &good]);
    let mut both = vec![good.clone(), empty.clone()];
    both.sort();
    assert_eq!(job_snapshots(&s), both, "retention ran after a suspicious run");
    assert!(s.job_dir().join(&good).join("snapshot.json").is_file(), "the good snapshot is gone from the disk");

    // The disk is back: a normal run, and retention does its work again.
    ten_files(&s.src);
    let back = s.daemon.run_job_wait(JOB);
    assert!(back["destinations"][0].get("suspicious").is_none_or(|v| v.is_null()), "{back:#}");
    let back_name = back["destinations"][0]["snapshot"].as_str().expect("snapshot").to_string();
    assert_eq!(job_snapshots(&s), vec![back_name.clone()], "retention after a normal run");

    // Every file rewritten at once, with the ransomware tripwire on (the
    // first warning acknowledged: an open one is not raised twice).
    let alerts = s.daemon.cli_json(&["alert", "list"]);
    for a in alerts.as_array().into_iter().flatten().filter(|a| a["kind"] == "suspicious_run") {
        s.daemon.cli_ok(&["alert", "ack", &a["id"].to_string()]);
    }
    s.daemon.cli_ok(&["settings", "set", "suspicious_change", "80"]);
    for i in 0..10 {
        fixture::write(&s.src.join(format!("f{i}")), format!("encrypted {i}!\n").as_bytes());
    }
    let changed = s.daemon.run_job_wait(JOB);
    assert_suspicious(&s, &changed, &["10 of 10 files changed", "100%", "suspicious_change"]);
    let changed_name = changed["destinations"][0]["snapshot"].as_str().expect("snapshot").to_string();
    let mut both = vec![back_name, changed_name];
    both.sort();
    assert_eq!(job_snapshots(&s), both, "retention ran after a mass change");
}

#[test]
fn latest_and_retention_follow_completion_not_a_clock_set_ahead() {
    let s = Setup::mounted(ten_files);
    let first = s.daemon.backup(JOB).name;
    // That snapshot was made while the clock ran years ahead: its name and
    // end time say 2030 (what a bad RTC at boot gives).
    let ahead = "2030-01-01T000000Z";
    let manifest_path = s.job_dir().join(&first).join("snapshot.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("read the manifest")).expect("manifest JSON");
    manifest["name"] = ahead.into();
    manifest["finished"] = "2030-01-01T00:00:00Z".into();
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).expect("JSON")).expect("write the manifest");
    std::fs::rename(s.job_dir().join(&first), s.job_dir().join(ahead)).expect("rename the snapshot");
    s.daemon.cli_ok(&["destination", "reindex", DEST]);
    assert_eq!(job_snapshots(&s), vec![ahead.to_string()]);

    // The clock is right again. The next run is the newest snapshot: `latest`
    // shows it, and retention (keep 1) keeps it, not the one named 2030.
    s.daemon.cli_ok(&["settings", "set", "manual_retain", "1"]);
    fixture::write(&s.src.join("f0"), b"after the clock was fixed\n");
    let run = s.daemon.run_job_wait(JOB);
    let now = run["destinations"][0]["snapshot"].as_str().expect("snapshot").to_string();
    assert!(now.as_str() < ahead, "the new snapshot's name {now} sorts after {ahead}: the test proves nothing");
    let latest = std::fs::read_link(s.mountpoint().join(DEST).join(JOB).join("latest")).expect("latest");
    assert_eq!(latest, Path::new(&now), "latest follows names, not completion");
    assert_eq!(job_snapshots(&s), vec![now.clone()], "retention kept the snapshot named after a wrong clock");
    let listed = s.daemon.cli_json(&["snapshot", "list", "--job", JOB]);
    assert!(listed[0]["sequence"].as_u64().is_some_and(|n| n >= 2), "no completion order in the listing: {listed:#}");
}

#[test]
fn a_prune_on_one_agent_spares_what_another_agent_is_backing_up() {
    use crate::support::{Daemon, Sandbox, wait_until};
    use std::time::Duration;
    let remote = Remote::shared(Kind::S3, "prune2");
    let add = |d: &Daemon, extra: &[&str]| {
        let mut args = vec!["destination".to_string(), "add".into(), "remote".into()];
        args.extend(remote.add_args(&[]));
        args.extend(extra.iter().map(|a| a.to_string()));
        d.cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    };
    // Agent A: one snapshot, deleted below (its deletion starts a prune).
    let sb_a = Sandbox::new();
    let src_a = sb_a.dir("src");
    fixture::write(&src_a.join("a.bin"), &fixture::pseudo_random(2 << 20, 500));
    let a = Daemon::start(sb_a.daemon_opts());
    add(&a, &[]);
    a.add_job("ja", &[&src_a], &["remote"], &[]);
    a.run_job_wait("ja");

    // Agent B writes the same bucket: many bodies of their own, slowly enough
    // to be caught between its first uploads and its manifest.
    let sb_b = Sandbox::new();
    let src_b = sb_b.dir("src");
    for i in 0..40u64 {
        fixture::write(&src_b.join(format!("b{i:02}.bin")), &fixture::pseudo_random(3 << 19, 600 + i));
    }
    let mut b = Daemon::start(sb_b.daemon_opts());
    add(&b, &["--writable"]);
    b.add_job("jb", &[&src_b], &["remote"], &[]);
    let blobs_before = remote.objects_under(&["blobs/"]).len();
    let run_b = b.start_run("jb");
    wait_until("agent B's first bodies in the bucket", Duration::from_secs(60), || {
        (remote.objects_under(&["blobs/"]).len() >= blobs_before + 3).then_some(())
    });
    b.signal(rustix::process::Signal::STOP);
    let manifests: Vec<String> =
        remote.objects().into_keys().filter(|k| k.starts_with("jb/") && k.ends_with("snapshot.json")).collect();
    if !manifests.is_empty() {
        b.signal(rustix::process::Signal::CONT);
        panic!(
            "agent B finished before it could be frozen ({manifests:?}): the test data is too small for this machine"
        );
    }

    // A deletes its snapshot: its prune sees B's bodies, which no manifest references yet.
    let snap = a.cli_json(&["snapshot", "list", "--job", "ja"]);
    a.cli_ok(&["snapshot", "delete", &snap[0]["id"].to_string()]);
    wait_until("agent A's prune", Duration::from_secs(60), || a.log().contains("pruned ").then_some(()));
    b.signal(rustix::process::Signal::CONT);
    let ended = b.wait_run_final(run_b);
    assert_eq!(ended["state"], "completed", "{ended:#}\n{}", b.log_tail());
    let check = b.cli(["destination", "check", "remote", "--read-data"]);
    assert!(check.success(), "agent A's prune deleted bodies of agent B's backup:\n{check}\n{}", a.log_tail());
    // B's lease is released with its manifest.
    let leases: Vec<String> = remote.objects().into_keys().filter(|k| k.starts_with(".leases/")).collect();
    assert!(leases.is_empty(), "leases left after both agents' backups ended: {leases:?}");
}

#[test]
fn a_locked_catalog_stalls_no_request_that_does_not_need_it() {
    use crate::support::http::request;
    use std::time::{Duration, Instant};
    let sb = crate::support::Sandbox::new();
    let opts = sb.daemon_opts();
    let daemon = crate::support::Daemon::start(opts.clone());
    // Another process holds the catalog's write lock for 6 s (a backup's
    // long transaction, a slow disk): every write of the agent waits.
    let script = "import sqlite3, sys, time\n\
                  c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                  c.execute('BEGIN IMMEDIATE')\n\
                  print('locked', flush=True)\n\
                  time.sleep(6)\n\
                  c.execute('ROLLBACK')\n";
    let mut locker = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(opts.state_dir.join("catalog.sqlite"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(locker.stdout.as_mut().expect("python's stdout")),
        &mut line,
    )
    .expect("read python's stdout");
    assert_eq!(line.trim(), "locked");
    // More writers than the runtime has worker threads, all waiting on the lock.
    let socket = daemon.socket().to_path_buf();
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                request(&socket, "PUT", "/v1/settings/manual_retain", None, br#"{"value": "5"}"#).status
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    let answer = request(&socket, "GET", "/v1/no-such-route", None, b"");
    let took = asked.elapsed();
    assert_eq!(answer.status, 404, "{}", answer.raw);
    assert!(took < Duration::from_secs(2), "a request that needs no catalog waited {took:?} behind a locked catalog");
    for w in writers {
        let status = w.join().expect("writer thread");
        assert!(matches!(status, 200 | 500), "a writer got {status}");
    }
    let _ = locker.wait();
    // The lock is gone: writes work again.
    daemon.cli_ok(&["settings", "set", "manual_retain", "6"]);
}

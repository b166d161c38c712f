//! Schedules, retention, the run queue, alerts and settings, end to end: a
//! schedule fires by itself; retention keeps the newest and the locked; a
//! failing backup alerts and deletes nothing; `manual_retain` is honoured;
//! with `backup_concurrency` 1, queued runs go one at a time by priority;
//! bad specs and settings are refused and change nothing. (Downtime catch-up
//! and daylight saving are tested on a fake clock in agent/tests/scheduler.rs.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::daemon::str_field;
use crate::support::fixture::{self, write};
use crate::support::{DEST, Daemon, JOB, Setup, assert_only_snapshots, list_names, wait_until};

/// The listed snapshots of [`JOB`], newest first, as (id, name, tags, locked).
fn snaps(d: &Daemon) -> Vec<Value> {
    let list = d.cli_json(&["snapshot", "list", "--job", JOB]);
    list.as_array().cloned().unwrap_or_else(|| panic!("not a list: {list}"))
}

fn names(list: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| str_field(s, "name").to_string()).collect();
    v.sort();
    v
}

/// Waits until the deleter has removed every `.deleting-*` of the job.
fn wait_deletions(s: &Setup) {
    wait_until("the background deletions to finish", Duration::from_secs(30), || {
        (!list_names(&s.job_dir()).iter().any(|n| n.starts_with(".deleting-"))).then_some(())
    });
}

#[test]
fn a_daily_schedule_due_within_the_minute_runs_by_itself() {
    let s = Setup::without_job(fixture::small_tree);
    s.daemon.cli_ok(&["settings", "set", "timezone", "UTC"]);
    // The next minute boundary at least 5 s away, in UTC.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let due = (now + 5).div_ceil(60) * 60;
    let hhmm = format!("{:02}:{:02}", due / 3600 % 24, due / 60 % 60);
    let job = s.daemon.add_job(JOB, &[&s.src], &[DEST], &["--schedule", "daily", "--retain", "3", "--time", &hhmm]);
    assert_eq!(job["schedules"][0]["spec"], "daily", "{job:#}");
    assert_eq!(job["time"], hhmm, "{job:#}");
    let next = str_field(&job, "next_run").to_string();
    assert!(next.contains(&format!("T{hhmm}:00")), "next run {next} is not today or tomorrow at {hhmm} UTC: {job:#}");

    let run = wait_until("the scheduled run to end", Duration::from_secs(120), || {
        let runs = s.daemon.cli_json(&["run", "list", "--job", JOB]);
        runs.as_array()?.iter().find(|r| !matches!(r["state"].as_str(), Some("queued" | "running"))).cloned()
    });
    assert_eq!(run["state"], "completed", "{run:#}");
    assert_eq!(run["trigger"], "schedule", "{run:#}");
    assert_eq!(run["tags"], serde_json::json!(["daily"]), "{run:#}");
    let started = str_field(&run, "started_at");
    let due_time = format!("T{hhmm}:");
    assert!(started.contains(&due_time), "the run started at {started}, not at {hhmm}: {run:#}");
    let list = snaps(&s.daemon);
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["tags"], serde_json::json!(["daily"]));
    // The tag is in snapshot.json too, so a reindex keeps it.
    let manifest = std::fs::read_to_string(s.job_dir().join(str_field(&list[0], "name")).join("snapshot.json"))
        .expect("read snapshot.json");
    assert!(manifest.contains("\"daily\""), "{manifest}");
    let job = s.daemon.cli_json(&["job", "show", JOB]);
    assert_ne!(job["next_run"].as_str(), Some(next.as_str()), "the schedule did not move on: {job:#}");
    assert_eq!(s.daemon.cli_json(&["run", "list", "--job", JOB]).as_array().map(Vec::len), Some(1));
}

#[test]
fn retain_3_over_6_runs_keeps_the_3_newest_and_the_locked_one() {
    let s = Setup::without_job(fixture::small_tree);
    s.daemon.add_job(JOB, &[&s.src], &[DEST], &["--schedule", "manual", "--retain", "3"]);
    let first = s.daemon.backup(JOB);
    let locked = s.daemon.cli_json(&["snapshot", "lock", &first.id.to_string()]);
    assert_eq!(locked["locked"], true, "{locked:#}");
    let mut made = vec![first.name.clone()];
    for i in 0..5 {
        write(&s.src.join("a.txt"), format!("version {i}\n").as_bytes());
        made.push(s.daemon.backup(JOB).name);
    }
    wait_deletions(&s);
    let mut want = vec![made[0].clone(), made[3].clone(), made[4].clone(), made[5].clone()];
    want.sort();
    assert_eq!(names(&snaps(&s.daemon)), want);
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_only_snapshots(&s.job_dir(), &want);
    // Unlocked, the oldest goes at the next completed run.
    s.daemon.cli_ok(&["snapshot", "unlock", &first.id.to_string()]);
    let last = s.daemon.backup(JOB).name;
    wait_deletions(&s);
    let mut want = vec![made[4].clone(), made[5].clone(), last];
    want.sort();
    assert_eq!(names(&snaps(&s.daemon)), want);
}

#[test]
fn manual_retain_is_honoured() {
    let s = Setup::new(fixture::small_tree);
    s.daemon.cli_ok(&["settings", "set", "manual_retain", "2"]);
    let made: Vec<String> = (0..4).map(|_| s.daemon.backup(JOB).name).collect();
    wait_deletions(&s);
    let mut want = made[2..].to_vec();
    want.sort();
    assert_eq!(names(&snaps(&s.daemon)), want);
    assert!(snaps(&s.daemon).iter().all(|v| v["tags"] == serde_json::json!(["manual"])));
}

#[test]
fn a_failing_source_fails_the_run_raises_an_alert_and_deletes_nothing() {
    let s = Setup::new(fixture::small_tree);
    s.daemon.backup(JOB);
    s.daemon.backup(JOB);
    let kept = snaps(&s.daemon);
    assert_eq!(kept.len(), 2);
    // Retention after a completed run would now delete one of the two.
    s.daemon.cli_ok(&["settings", "set", "manual_retain", "1"]);
    std::fs::remove_dir_all(&s.src).expect("remove the source");

    let (code, run) = s.daemon.run_wait(JOB);
    assert_eq!(code, 1, "{run:#}");
    assert_eq!(run["state"], "failed", "{run:#}");
    // The failed run deleted nothing (retention is decided before a run is
    // recorded as ended, so this is not early).
    assert_eq!(names(&snaps(&s.daemon)), names(&kept));
    assert!(list_names(&s.job_dir()).iter().all(|n| !n.starts_with(".deleting-")));

    let alerts = s.daemon.cli_json(&["alert", "list"]);
    let alert = alerts
        .as_array()
        .and_then(|a| a.iter().find(|a| a["subject"] == JOB && a["kind"] == "run_failed"))
        .cloned()
        .unwrap_or_else(|| panic!("no run_failed alert for {JOB}: {alerts:#}"));
    assert_eq!(alert["level"], "critical", "{alert:#}");
    let status = s.daemon.cli_json(&["status"]);
    assert!(status["alerts"].as_array().is_some_and(|a| a.iter().any(|x| x["id"] == alert["id"])), "{status:#}");
    assert!(s.daemon.cli_ok(&["status"]).stdout.contains("open alerts"), "status does not show the alert");

    let id = alert["id"].as_i64().expect("alert id").to_string();
    let acked = s.daemon.cli_json(&["alert", "ack", &id]);
    assert!(acked["acked_at"].is_string(), "{acked:#}");
    assert_eq!(s.daemon.cli_json(&["alert", "list"]), serde_json::json!([]));
    let all = s.daemon.cli_json(&["alert", "list", "--all"]);
    assert!(all.as_array().is_some_and(|a| a.iter().any(|x| x["id"] == alert["id"])), "{all:#}");
}

#[test]
fn with_concurrency_1_queued_runs_go_one_at_a_time_by_priority() {
    let s = Setup::without_job(|src| {
        fixture::big_files(&src.join("big"));
        fixture::small_tree(&src.join("small"));
    });
    s.daemon.cli_ok(&["settings", "set", "backup_concurrency", "1"]);
    let (big, small) = (s.src.join("big"), s.src.join("small"));
    s.daemon.add_job("blocker", &[&big], &[DEST], &[]);
    s.daemon.add_job("low", &[&small], &[DEST], &["--priority", "90"]);
    s.daemon.add_job("high", &[&small], &[DEST], &["--priority", "10"]);
    let blocker = s.daemon.start_run("blocker");
    wait_until("the blocker to start", Duration::from_secs(20), || {
        (s.daemon.run_show(blocker)["state"] == "running").then_some(())
    });
    let low = s.daemon.start_run("low");
    let high = s.daemon.start_run("high");
    assert_eq!(s.daemon.run_show(low)["state"], "queued", "low started beside the blocker");
    let runs: Vec<Value> = [blocker, high, low].iter().map(|id| s.daemon.wait_run_final(*id)).collect();
    for r in &runs {
        assert_eq!(r["state"], "completed", "{r:#}");
    }
    // RFC 3339 UTC times whose fraction has as many digits as it needs:
    // compared as (seconds, nanoseconds).
    let at = |r: &Value, k: &str| {
        let t = str_field(r, k).trim_end_matches('Z');
        let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
        (secs.to_string(), format!("{frac:0<9}"))
    };
    assert!(
        at(&runs[0], "finished_at") <= at(&runs[1], "started_at"),
        "high started before the blocker ended: {runs:#?}"
    );
    assert!(at(&runs[1], "finished_at") <= at(&runs[2], "started_at"), "low started before high ended: {runs:#?}");
}

#[test]
fn bad_schedules_and_settings_are_refused_and_change_nothing() {
    let s = Setup::new(fixture::small_tree);
    s.daemon.add_job("a", &[&s.src], &[DEST], &["--schedule", "daily", "--retain", "7"]);
    s.daemon.add_job("b", &[&s.src], &[DEST], &["--schedule", "after:a+2h", "--retain", "7"]);
    let inventory = || (s.daemon.inventory(), s.daemon.cli_json(&["settings", "show"]));
    let before = inventory();
    let src = crate::support::s(&s.src);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["job", "add", "c", "--source", src, "--destination", DEST, "--schedule", "yearly", "--retain", "1"],
            vec!["schedule", "yearly"],
        ),
        (
            vec![
                "job",
                "add",
                "c",
                "--source",
                src,
                "--destination",
                DEST,
                "--schedule",
                "monthly:32",
                "--retain",
                "1",
            ],
            vec!["1-31"],
        ),
        (
            vec!["job", "add", "c", "--source", src, "--destination", DEST, "--schedule", "hourly:0", "--retain", "1"],
            vec!["1-24"],
        ),
        (
            vec![
                "job",
                "add",
                "c",
                "--source",
                src,
                "--destination",
                DEST,
                "--schedule",
                "daily:funday",
                "--retain",
                "1",
            ],
            vec!["weekday"],
        ),
        (
            vec!["job", "add", "c", "--source", src, "--destination", DEST, "--schedule", "daily", "--retain", "0"],
            vec!["retain", "out of range"],
        ),
        (vec!["job", "add", "c", "--source", src, "--destination", DEST, "--schedule", "daily"], vec!["--retain"]),
        (
            vec![
                "job",
                "add",
                "c",
                "--source",
                src,
                "--destination",
                DEST,
                "--schedule",
                "after:nope",
                "--retain",
                "1",
            ],
            vec!["nope", "no existing job"],
        ),
        (vec!["job", "add", "c", "--source", src, "--destination", DEST, "--time", "25:00"], vec!["time", "HH:MM"]),
        (vec!["job", "add", "c", "--source", src, "--destination", DEST, "--priority", "0"], vec!["priority", "1-100"]),
        (vec!["job", "add", "c", "--source", src, "--destination", DEST, "--notran", "3w"], vec!["notran"]),
        (vec!["job", "edit", "a", "--schedule", "after:b", "--retain", "1"], vec!["cycle", "a -> b -> a"]),
        (
            vec!["job", "edit", "a", "--schedule", "daily", "--retain", "1", "--schedule", "daily", "--retain", "2"],
            vec!["twice"],
        ),
        (vec!["job", "remove", "a"], vec!["after:a"]),
        (vec!["settings", "set", "manual_retain", "100"], vec!["manual_retain", "1-99"]),
        (vec!["settings", "set", "backup_concurrency", "0"], vec!["backup_concurrency", "1-10"]),
        (vec!["settings", "set", "logs_ttl", "x"], vec!["logs_ttl"]),
        (vec!["settings", "set", "timezone", "Mars/Olympus"], vec!["timezone", "IANA"]),
        (vec!["settings", "set", "colour", "blue"], vec!["unknown setting"]),
        (vec!["snapshot", "lock", "999"], vec!["999"]),
        (vec!["alert", "ack", "999"], vec!["999"]),
    ];
    for (args, words) in &cases {
        s.daemon.cli(args).assert_error(words);
        assert!(inventory() == before, "`hindsight {}` changed something", args.join(" "));
    }
    // The job list shows the schedules and next runs.
    let table = s.daemon.cli_ok(&["job", "list"]).stdout;
    assert!(table.contains("SCHEDULES") && table.contains("after:a+2h"), "{table}");
    let shown = s.daemon.cli_ok(&["job", "show", "a"]).stdout;
    assert!(shown.contains("daily (keep 7, next "), "{shown}");
    // Once b no longer waits for a, a can go.
    let b = s.daemon.cli_json(&["job", "edit", "b", "--clear-schedules"]);
    assert_eq!(b["schedules"], serde_json::json!([]), "{b:#}");
    s.daemon.cli_ok(&["job", "remove", "a"]);
}

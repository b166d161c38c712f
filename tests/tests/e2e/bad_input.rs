//! Every bad input gets a clear one-line error (`error: ...` on stderr, exit
//! status 1) and changes nothing: the agent lists the same destinations,
//! jobs, runs and snapshots as before, and no destination directory appears.
//! Malformed API bodies (sent raw over the socket) get 400 `bad_request`.

use std::path::Path;

use serde_json::Value;

use crate::support::fixture::{self, write};
use crate::support::http;
use crate::support::system::Mount;
use crate::support::{DEST, Daemon, JOB, Setup, s};

/// A set-up with one completed run, so that the lists are not empty.
fn setup() -> Setup {
    let setup = Setup::new(fixture::small_tree);
    setup.daemon.backup(JOB);
    setup
}

/// A refused command: its arguments and the words its error must contain.
type Case<'a> = (Vec<String>, Vec<&'a str>);

/// A command line from its words.
fn cmd(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// `job add NAME --source S... EXTRA...`, with `--destination d1` unless EXTRA names destinations.
fn job_add(name: &str, sources: &[&str], extra: &[&str]) -> Vec<String> {
    let mut v = cmd(&["job", "add", name]);
    for src in sources {
        v.extend(cmd(&["--source", src]));
    }
    v.extend(cmd(extra));
    if !extra.contains(&"--destination") {
        v.extend(cmd(&["--destination", DEST]));
    }
    v
}

/// Runs each command, expecting it to fail with every keyword in its error,
/// and checks that the agent's lists stay as they were and `fresh` is not created.
fn assert_all_refused(d: &Daemon, cases: &[Case<'_>], fresh: &Path) {
    let before = d.inventory();
    for (args, words) in cases {
        d.cli(args).assert_error(words);
        let after = d.inventory();
        assert!(
            after == before,
            "`hindsight {}` changed the agent's lists\nbefore: {before:#}\nafter: {after:#}",
            args.join(" ")
        );
        assert!(!fresh.exists(), "`hindsight {}` created {}", args.join(" "), fresh.display());
    }
}

#[test]
fn bad_destination_input_is_refused_and_changes_nothing() {
    let st = setup();
    let fresh = st.sb.path().join("fresh");
    let file = st.sb.path().join("a-file");
    write(&file, b"not a directory\n");
    let ro = Mount::tmpfs(&st.sb.path().join("read-only"), "ro,size=1m");
    let (fresh, file, ro, dest) = (s(&fresh), s(&file), s(ro.path()), s(&st.dest));
    let add = |name: &str, path: &str| cmd(&["destination", "add", name, "--type", "local", "--path", path]);
    let with = |mut v: Vec<String>, extra: &[&str]| {
        v.extend(cmd(extra));
        v
    };
    let cases: Vec<Case<'_>> = vec![
        (add("d2", "relative/dir"), vec!["relative/dir", "not absolute"]),
        (add("d2", file), vec![file, "not a directory"]),
        (add("d2", ro), vec![ro, "read-only file system"]),
        (add(DEST, fresh), vec!["destination named d1 already exists"]),
        (add("d2", dest), vec!["holds destination", "known as d1"]),
        (with(add("d2", fresh), &["--disk-limit", "101"]), vec!["disk_limit 101", "0-100"]),
        (with(add("d2", fresh), &["--disk-limit", "-1"]), vec!["disk_limit -1", "0-100"]),
        (cmd(&["destination", "add", "d2", "--type", "zip", "--path", fresh]), vec!["unknown destination type", "zip"]),
        (cmd(&["destination", "add", "d2", "--type", "s3", "--path", fresh]), vec!["bucket", "required"]),
        (add("bad/name", fresh), vec!["invalid destination name", "bad/name"]),
        (cmd(&["destination", "add", "d2", "--type", "local"]), vec!["path", "required"]),
        (cmd(&["destination", "edit", DEST, "--disk-limit", "101"]), vec!["disk_limit 101", "0-100"]),
        (cmd(&["destination", "edit", DEST, "--path", file]), vec![file, "not a directory"]),
        (cmd(&["destination", "show", "nope"]), vec!["no destination named nope"]),
        (cmd(&["destination", "edit", "nope", "--disk-limit", "5"]), vec!["no destination named nope"]),
        (cmd(&["destination", "validate", "nope"]), vec!["no destination named nope"]),
        (cmd(&["destination", "remove", "nope"]), vec!["no destination named nope"]),
        (cmd(&["snapshot", "list", "--destination", "nope"]), vec!["no destination named nope"]),
    ];
    assert_all_refused(&st.daemon, &cases, &st.sb.path().join("fresh"));
}

#[test]
fn bad_job_input_is_refused_and_changes_nothing() {
    let st = setup();
    st.daemon.add_job("j-off", &[&st.src], &[DEST], &["--disabled"]);
    let missing = st.sb.path().join("missing");
    let nested = st.src.join("b");
    let (src, missing, nested) = (s(&st.src), s(&missing), s(&nested));
    let cases: Vec<Case<'_>> = vec![
        (job_add("j2", &["relative/src"], &[]), vec!["relative/src", "not an absolute path"]),
        (job_add("j2", &[missing], &[]), vec![missing, "does not exist"]),
        (job_add("j2", &[src], &["--destination", "nope"]), vec!["no destination named nope"]),
        (job_add(JOB, &[src], &[]), vec!["job named j1 already exists"]),
        (job_add("j2", &[src], &["--structure", "foo"]), vec!["unknown structure", "foo"]),
        (job_add("j2", &[src], &["--exclude", "/a/["]), vec!["invalid exclude pattern", "/a/["]),
        (job_add("j2", &[src, nested], &[]), vec![nested, "inside source"]),
        (job_add("j2", &[src], &["--retry-failed", "11"]), vec!["retry_failed 11", "0-10"]),
        (job_add("j2", &[src], &["--destination", DEST, "--destination", DEST]), vec!["listed twice"]),
        (job_add("bad/name", &[src], &[]), vec!["invalid job name", "bad/name"]),
        (cmd(&["job", "edit", JOB, "--structure", "tgz"]), vec!["unknown structure", "tgz"]),
        (cmd(&["job", "edit", JOB, "--source", "relative/src"]), vec!["not an absolute path"]),
        (cmd(&["job", "edit", JOB, "--destination", "nope"]), vec!["no destination named nope"]),
        (cmd(&["job", "edit", JOB, "--retry-failed", "11"]), vec!["retry_failed 11"]),
        (cmd(&["job", "edit", "nope", "--retry-failed", "1"]), vec!["no job named nope"]),
        (cmd(&["job", "show", "nope"]), vec!["no job named nope"]),
        (cmd(&["job", "run", "nope"]), vec!["no job named nope"]),
        (cmd(&["job", "enable", "nope"]), vec!["no job named nope"]),
        (cmd(&["job", "remove", "nope"]), vec!["no job named nope"]),
        (cmd(&["job", "run", "j-off"]), vec!["j-off", "disabled"]),
    ];
    assert_all_refused(&st.daemon, &cases, &st.sb.path().join("fresh"));
}

#[test]
fn unknown_runs_and_snapshots_are_refused_and_change_nothing() {
    let st = setup();
    let runs = st.daemon.cli_json(&["run", "list"]);
    let done = runs[0]["id"].as_i64().unwrap_or_else(|| panic!("no run listed: {runs:#}")).to_string();
    let cases: Vec<Case<'_>> = vec![
        (cmd(&["run", "show", "999"]), vec!["no run with id 999"]),
        (cmd(&["run", "cancel", "999"]), vec!["no run with id 999"]),
        (cmd(&["run", "show", "abc"]), vec!["run id", "abc", "not a number"]),
        (cmd(&["run", "cancel", &done]), vec!["already ended", "completed"]),
        (cmd(&["snapshot", "show", "999"]), vec!["no snapshot with id 999"]),
        (cmd(&["snapshot", "delete", "999"]), vec!["no snapshot with id 999"]),
        (cmd(&["snapshot", "delete", "abc"]), vec!["snapshot id", "abc", "not a number"]),
    ];
    assert_all_refused(&st.daemon, &cases, &st.sb.path().join("fresh"));
}

#[test]
fn malformed_api_bodies_get_400_bad_request_and_change_nothing() {
    let st = setup();
    let fresh = st.sb.path().join("fresh");
    let job = serde_json::json!({"name": "j2", "sources": [s(&st.src)], "destinations": [DEST]});
    let dest = |extra: Value| {
        let mut d = serde_json::json!({"name": "d2", "type": "local", "options": {"path": s(&fresh)}});
        if let (Some(d), Some(extra)) = (d.as_object_mut(), extra.as_object()) {
            d.extend(extra.clone());
        }
        d.to_string()
    };
    let mut unknown_field = job.clone();
    unknown_field["colour"] = "red".into();
    let cases: Vec<(&str, &str, Option<&str>, String)> = vec![
        ("POST", "/v1/jobs", None, r#"{"name": "j2", "sources": ["#.to_string()),
        ("POST", "/v1/jobs", None, unknown_field.to_string()),
        ("POST", "/v1/jobs", Some("text/plain"), job.to_string()),
        ("POST", "/v1/jobs", None, String::new()),
        ("POST", "/v1/destinations", None, r#"{"name": "d2"}"#.to_string()),
        ("POST", "/v1/destinations", None, dest(serde_json::json!({"disk_limit": "ten"}))),
        ("PATCH", "/v1/jobs/j1", None, "[1, 2]".to_string()),
        ("PATCH", "/v1/destinations/d1", None, r#"{"disk_limit": 5,}"#.to_string()),
    ];
    let before = st.daemon.inventory();
    for (method, path, content_type, body) in &cases {
        let resp = http::request(st.daemon.socket(), method, path, *content_type, body.as_bytes());
        let what = format!("{method} {path} {body:?}");
        assert_eq!(resp.status, 400, "{what}: {}", resp.raw);
        assert_eq!(resp.body["error"]["code"], "bad_request", "{what}: {}", resp.raw);
        let message = resp.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("malformed request body"), "{what}: unclear message {message:?}");
        assert!(st.daemon.inventory() == before, "{what} changed the agent's lists");
        assert!(!fresh.exists(), "{what} created {}", fresh.display());
    }
}

#[test]
fn a_value_outside_a_closed_set_is_a_400_naming_the_field() {
    let st = setup();
    let fresh = st.sb.path().join("fresh");
    let job = |extra: Value| {
        let mut j = serde_json::json!({"name": "j2", "sources": [s(&st.src)], "destinations": [DEST]});
        if let (Some(j), Some(extra)) = (j.as_object_mut(), extra.as_object()) {
            j.extend(extra.clone());
        }
        j.to_string()
    };
    let dest = serde_json::json!({"name": "d2", "type": "webdav", "options": {"path": s(&fresh)}}).to_string();
    // Before the API types were closed sets, a bad structure became `incremental`.
    let cases: Vec<(&str, &str, String, &str)> = vec![
        (
            "POST",
            "/v1/jobs",
            job(serde_json::json!({"structure": "tarball"})),
            "structure: unknown structure \"tarball\"",
        ),
        (
            "POST",
            "/v1/jobs",
            job(serde_json::json!({"type": "mailboxes"})),
            "type: unknown job type \"mailboxes\"; use directories, accounts",
        ),
        ("PATCH", "/v1/jobs/j1", r#"{"structure": "zip"}"#.to_string(), "structure: unknown structure \"zip\""),
        ("POST", "/v1/destinations", dest, "type: unknown destination type \"webdav\""),
    ];
    let before = st.daemon.inventory();
    for (method, path, body, says) in &cases {
        let resp = http::request(st.daemon.socket(), method, path, None, body.as_bytes());
        let what = format!("{method} {path} {body}");
        assert_eq!(resp.status, 400, "{what}: {}", resp.raw);
        assert_eq!(resp.body["error"]["code"], "bad_request", "{what}: {}", resp.raw);
        let message = resp.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{what}: {message:?} does not say {says:?}");
        assert!(message.contains("use "), "{what}: {message:?} does not list the values allowed");
        assert!(st.daemon.inventory() == before, "{what} changed the agent's lists");
    }
    let structure = st.daemon.cli_json(&["job", "show", JOB])["structure"].clone();
    assert_eq!(structure, "incremental", "the refused edit changed the job");
    assert!(!fresh.exists());
}

#[test]
fn with_json_errors_are_json_on_stderr_and_removals_answer_json() {
    let s = Setup::new(crate::support::fixture::small_tree);
    let out = s.daemon.cli(["job", "show", "nope", "--json"]);
    assert_eq!(out.code, 5, "{out}");
    let err: serde_json::Value = serde_json::from_str(out.stderr.trim()).unwrap_or_else(|e| panic!("{e}:\n{out}"));
    assert_eq!((err["error"]["code"].as_str(), err["error"]["exit"].as_i64()), (Some("not_found"), Some(5)), "{err}");
    assert!(err["error"]["message"].as_str().unwrap_or_default().contains("nope"), "{err}");
    assert!(out.stdout.is_empty(), "{out}");
    let unreachable = std::process::Command::new(crate::support::hindsight_bin())
        .args(["--socket", "/nonexistent/hindsight.sock", "status", "--json"])
        .output()
        .expect("run hindsight");
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert_eq!(unreachable.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("\"code\":\"unreachable\""), "{stderr}");

    let snap = s.daemon.backup(JOB);
    let removed = s.daemon.cli_json(&["snapshot", "delete", &snap.id.to_string()]);
    assert_eq!(removed["removed"]["kind"], "snapshot", "{removed}");
    let job = s.daemon.cli_json(&["job", "remove", JOB]);
    assert_eq!((job["removed"]["kind"].as_str(), job["removed"]["name"].as_str()), (Some("job"), Some(JOB)));
}

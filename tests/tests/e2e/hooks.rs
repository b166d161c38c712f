//! A job's hooks (before, after, on_error, finally) and its dead-man-switch
//! pings, as a user wires them to stop a service or take a snapshot first.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::receiver::Receiver;
use crate::support::{DEST, JOB, fixture, list_names, s, wait_until};

/// The usual arrangement (a small tree, destination [`DEST`], job [`JOB`]),
/// the daemon holding a variable of its own that no hook may see.
struct Setup(crate::support::Setup);

impl Deref for Setup {
    type Target = crate::support::Setup;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Setup {
    fn new() -> Setup {
        Setup(crate::support::Setup::with_env(fixture::small_tree, &[("HINDSIGHT_AGENT_SECRET", "not-for-hooks")]))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.sb.path().join(name)
    }

    /// The snapshots and partial directories of the job on the destination.
    fn job_dir_entries(&self) -> Vec<String> {
        list_names(&self.job_dir()).into_iter().filter(|n| !n.starts_with(".lock")).collect()
    }

    fn hooks_of(&self, run: &Value) -> Vec<Value> {
        let id = run["id"].as_i64().expect("run id");
        self.daemon.run_show(id)["hooks"].as_array().cloned().unwrap_or_default()
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_failing_before_hook_fails_the_run_before_anything_is_written() {
    let t = Setup::new();
    t.daemon.backup(JOB);
    let before = t.job_dir_entries();
    let (state, env) = (t.file("state"), t.file("env"));
    t.daemon.cli_json(&[
        "job",
        "edit",
        JOB,
        "--before",
        "echo stopping the database; exit 1",
        "--on-error",
        &format!("echo \"$HINDSIGHT_STATE\" > {}", s(&state)),
        "--finally",
        &format!("env > {}", s(&env)),
    ]);
    let (code, run) = t.daemon.run_wait(JOB);
    assert_eq!((code, run["state"].as_str()), (1, Some("failed")), "{run:#}");
    let message = run["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("before hook: exit status 1: stopping the database")
            && message.contains("nothing was written"),
        "{run:#}"
    );
    assert_eq!(t.job_dir_entries(), before, "the destination changed");
    let alerts = t.daemon.cli_json(&["alert", "list"]);
    assert!(alerts.as_array().into_iter().flatten().any(|a| a["kind"] == "run_failed"), "{alerts:#}");

    let hooks = t.hooks_of(&run);
    let kinds: Vec<&str> = hooks.iter().filter_map(|h| h["hook"].as_str()).collect();
    assert_eq!(kinds, ["before", "on_error", "finally"], "{hooks:#?}");
    assert_eq!((hooks[0]["ok"].as_bool(), hooks[0]["exit"].as_i64()), (Some(false), Some(1)));
    assert_eq!(hooks[0]["output"], "stopping the database\n");
    assert_eq!(read(&state), "failed\n");
    let env = read(&env);
    let id = run["id"].to_string();
    for want in [
        &format!("HINDSIGHT_JOB={JOB}"),
        &format!("HINDSIGHT_RUN_ID={id}"),
        "HINDSIGHT_TRIGGER=manual",
        "HINDSIGHT_HOOK=finally",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} is not in the hook's environment:\n{env}");
    }
    // Only what the README lists (sh adds PWD, SHLVL and _).
    for line in env.lines() {
        let name = line.split('=').next().unwrap_or_default();
        assert!(
            name.starts_with("HINDSIGHT_") && name != "HINDSIGHT_AGENT_SECRET"
                || ["PATH", "HOME", "LANG", "PWD", "SHLVL", "_"].contains(&name),
            "the hook sees {line:?} of the agent's environment"
        );
    }
    let shown = t.daemon.cli_ok(&["run", "show", &id]);
    assert!(
        shown.stdout.contains("before hook (exit status 1") && shown.stdout.contains("| stopping the database"),
        "{shown}"
    );
}

#[test]
fn hooks_after_the_backup_see_its_outcome_and_a_failing_after_hook_makes_the_run_partial() {
    let t = Setup::new();
    let (after, on_error) = (t.file("after"), t.file("on-error"));
    t.daemon.cli_json(&[
        "job",
        "edit",
        JOB,
        "--after",
        &format!(
            "echo \"$HINDSIGHT_STATE $HINDSIGHT_SNAPSHOTS $HINDSIGHT_FILES_COPIED\" > {}; echo bad >&2; exit 3",
            s(&after)
        ),
        "--on-error",
        &format!("echo \"$HINDSIGHT_STATE $HINDSIGHT_MESSAGE\" > {}", s(&on_error)),
    ]);
    let (code, run) = t.daemon.run_wait(JOB);
    assert_eq!((code, run["state"].as_str()), (3, Some("partial")), "{run:#}");
    assert!(run["message"].as_str().is_some_and(|m| m.contains("after hook: exit status 3: bad")), "{run:#}");
    let snapshot = run["destinations"][0]["snapshot"].as_str().expect("a snapshot was made").to_string();
    assert!(t.dest.join(JOB).join(&snapshot).join("snapshot.json").exists());
    assert_eq!(read(&after), format!("completed {DEST}:{snapshot} 3\n"));
    assert!(read(&on_error).starts_with("partial after hook: exit status 3"), "{}", read(&on_error));

    // Removed with an empty value: the next run completes.
    t.daemon.cli_json(&["job", "edit", JOB, "--after", "", "--on-error", ""]);
    let job = t.daemon.cli_json(&["job", "show", JOB]);
    assert_eq!(job["hooks"], serde_json::json!({"timeout": 300}), "{job:#}");
    t.daemon.run_job_wait(JOB);
}

#[test]
fn a_hook_that_hangs_is_killed_at_its_timeout_and_one_that_cannot_run_says_so() {
    let t = Setup::new();
    t.daemon.cli_json(&["job", "edit", JOB, "--before", "sleep 600", "--hook-timeout", "1"]);
    let started = std::time::Instant::now();
    let (code, run) = t.daemon.run_wait(JOB);
    assert_eq!(code, 1, "{run:#}");
    assert!(started.elapsed() < Duration::from_secs(30), "the hook was not stopped at its timeout");
    assert!(run["message"].as_str().is_some_and(|m| m.contains("did not finish within 1 s")), "{run:#}");
    t.daemon.cli_json(&["job", "edit", JOB, "--before", "/nonexistent/stop-service"]);
    let (code, run) = t.daemon.run_wait(JOB);
    assert_eq!(code, 1, "{run:#}");
    assert!(run["message"].as_str().is_some_and(|m| m.contains("not found (exit status 127)")), "{run:#}");
    // A script that lost its execute bit: sh says so (126), and so does the run.
    let script = t.file("stop-service.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write the script");
    t.daemon.cli_json(&["job", "edit", JOB, "--before", s(&script)]);
    let (code, run) = t.daemon.run_wait(JOB);
    assert_eq!(code, 1, "{run:#}");
    assert!(run["message"].as_str().is_some_and(|m| m.contains("not executable (exit status 126)")), "{run:#}");
    t.daemon.cli(["job", "edit", JOB, "--hook-timeout", "0"]).assert_error(&["hooks.timeout"]);
    t.daemon.cli(["job", "edit", JOB, "--ping-url", "ftp://example.org/x"]).assert_error(&["ping URL"]);
}

#[test]
fn pings_mark_each_runs_start_and_end_in_order() {
    let t = Setup::new();
    let r = Receiver::start();
    t.daemon.cli_json(&["job", "edit", JOB, "--ping-url", &r.url("/ping/abc")]);
    t.daemon.run_job_wait(JOB);
    let first = wait_until("two pings", Duration::from_secs(20), || {
        let got = r.received();
        (got.len() >= 2).then_some(got)
    });
    let paths: Vec<&str> = first.iter().map(|q| q.path.as_str()).collect();
    assert_eq!(paths, ["/ping/abc/start", "/ping/abc"]);
    assert!(first[1].body.contains("completed") && first[1].body.contains("files:"), "{:?}", first[1]);

    std::fs::rename(&t.src, t.file("away")).expect("move the source away");
    let (code, _) = t.daemon.run_wait(JOB);
    assert_eq!(code, 1);
    let all = wait_until("four pings", Duration::from_secs(20), || {
        let got = r.received();
        (got.len() >= 4).then_some(got)
    });
    assert_eq!((all[2].path.as_str(), all[3].path.as_str()), ("/ping/abc/start", "/ping/abc/fail"));
    assert!(all[3].body.contains("failed"), "{:?}", all[3]);
}

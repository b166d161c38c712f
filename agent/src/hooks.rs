//! A job's hooks: shell commands run before the backup (stop a service,
//! take an LVM or btrfs snapshot), after it, on error, and always at the end.
//!
//! Each runs with `sh -c` in its own process group (`process`), with a clean environment
//! (a fixed `PATH`, `HOME`, `LANG`, and the run's context as `HINDSIGHT_*`
//! variables: never the agent's own environment, which may hold secrets), stdin
//! from `/dev/null`, and a timeout after which the whole group is killed. Its
//! output (stdout and stderr, the last [`OUTPUT_KEPT`] bytes) goes to the
//! agent's log and to the run's record.

use std::time::Duration;

use hindsight_api::{Counters, HookKind, HookResult, Job, Run, RunDestination, RunState};

/// Bytes of a hook's output kept in the run's record.
pub(crate) const OUTPUT_KEPT: usize = 8 << 10;

/// Runs one hook to its end or its timeout; `env` is the run's context.
pub(crate) fn run(kind: HookKind, command: &str, timeout: Duration, env: &[(String, String)]) -> HookResult {
    let mut cmd = crate::process::clean_command("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env("HOME", "/root")
        .env("HINDSIGHT_HOOK", kind.as_str())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let f = crate::process::run(cmd, timeout, OUTPUT_KEPT);
    let mut output = f.stdout.clone();
    output.extend_from_slice(&f.stderr);
    if output.len() > OUTPUT_KEPT {
        output.drain(..output.len() - OUTPUT_KEPT);
    }
    HookResult {
        hook: kind,
        command: command.to_string(),
        ok: f.success(),
        exit: f.status.as_ref().ok().and_then(|s| s.code()),
        error: f.failure(),
        millis: f.elapsed.as_millis() as u64,
        output: String::from_utf8_lossy(&output).into_owned(),
    }
}

/// What every hook of a run is told: `HINDSIGHT_JOB`, `HINDSIGHT_RUN_ID`,
/// `HINDSIGHT_TRIGGER`, `HINDSIGHT_TAGS` (comma-separated), `HINDSIGHT_SOURCES`
/// (one per line) and `HINDSIGHT_DESTINATIONS` (space-separated).
pub(crate) fn context(run: &Run, job: &Job) -> Vec<(String, String)> {
    [
        ("HINDSIGHT_JOB", job.name.clone()),
        ("HINDSIGHT_RUN_ID", run.id.to_string()),
        ("HINDSIGHT_TRIGGER", run.trigger.to_string()),
        ("HINDSIGHT_TAGS", run.tags.join(",")),
        ("HINDSIGHT_SOURCES", job.sources.join("\n")),
        ("HINDSIGHT_DESTINATIONS", job.destinations.join(" ")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// What the hooks after the backup are told besides the context:
/// `HINDSIGHT_STATE`, `HINDSIGHT_MESSAGE`, `HINDSIGHT_SNAPSHOTS`
/// (`DESTINATION:SNAPSHOT`, space-separated) and the counters
/// (`HINDSIGHT_FILES_SCANNED`, `_LINKED`, `_COPIED`, `_FAILED`,
/// `HINDSIGHT_BYTES_SCANNED`, `_COPIED`).
pub(crate) fn outcome(
    state: RunState,
    message: Option<&str>,
    stats: &Counters,
    destinations: &[RunDestination],
) -> Vec<(String, String)> {
    let snapshots: Vec<String> =
        destinations.iter().filter_map(|d| d.snapshot.as_ref().map(|s| format!("{}:{s}", d.destination))).collect();
    [
        ("HINDSIGHT_STATE", state.to_string()),
        ("HINDSIGHT_MESSAGE", message.unwrap_or_default().to_string()),
        ("HINDSIGHT_SNAPSHOTS", snapshots.join(" ")),
        ("HINDSIGHT_FILES_SCANNED", stats.files_scanned.to_string()),
        ("HINDSIGHT_FILES_LINKED", stats.files_linked.to_string()),
        ("HINDSIGHT_FILES_COPIED", stats.files_copied.to_string()),
        ("HINDSIGHT_FILES_FAILED", stats.files_failed.to_string()),
        ("HINDSIGHT_BYTES_SCANNED", stats.bytes_scanned.to_string()),
        ("HINDSIGHT_BYTES_COPIED", stats.bytes_copied.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// One line saying how a hook ended, with the end of its output.
pub(crate) fn describe(r: &HookResult) -> String {
    let tail: String =
        r.output.lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
    let why = r.error.as_deref().unwrap_or("ok");
    if tail.is_empty() { format!("{} hook: {why}", r.hook) } else { format!("{} hook: {why}: {tail}", r.hook) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![("HINDSIGHT_JOB".into(), "web".into())]
    }

    #[test]
    fn a_hook_sees_the_context_and_nothing_of_the_agents_environment() {
        let r = run(
            HookKind::Before,
            "echo \"$HINDSIGHT_HOOK $HINDSIGHT_JOB ${SECRET:-none}\"; echo err >&2",
            Duration::from_secs(10),
            &env(),
        );
        assert!(r.ok && r.exit == Some(0), "{r:?}");
        assert!(r.output.contains("before web none") && r.output.contains("err"), "{r:?}");
    }

    #[test]
    fn failures_say_why() {
        let r = run(HookKind::After, "echo nope; exit 3", Duration::from_secs(10), &env());
        assert_eq!((r.ok, r.exit, r.error.as_deref()), (false, Some(3), Some("exit status 3")));
        assert_eq!(describe(&r), "after hook: exit status 3: nope");
        let r = run(HookKind::After, "/nonexistent/hook", Duration::from_secs(10), &env());
        assert_eq!(r.exit, Some(127), "{r:?}");
        let started = std::time::Instant::now();
        // The sleeping grandchild dies with the group: the pipes close, the run goes on.
        let r = run(HookKind::Finally, "sleep 30 & sleep 30", Duration::from_millis(300), &env());
        assert!(!r.ok && r.error.as_deref().is_some_and(|e| e.contains("killed")), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "the timeout did not stop the hook");
    }
}

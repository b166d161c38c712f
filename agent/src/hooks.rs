//! A job's hooks: shell commands run before the backup (stop a service,
//! take an LVM or btrfs snapshot), after it, on error, and always at the end.
//!
//! Each runs with `sh -c` in its own process group, with a clean environment
//! (a fixed `PATH`, `HOME`, `LANG`, and the run's context as `HINDSIGHT_*`
//! variables: never the agent's own environment, which may hold secrets), stdin
//! from `/dev/null`, and a timeout after which the whole group is killed. Its
//! output (stdout and stderr, the last [`OUTPUT_KEPT`] bytes) goes to the
//! agent's log and to the run's record.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hindsight_api::{Counters, HookKind, HookResult, Job, Run, RunDestination, RunState};

/// Bytes of a hook's output kept in the run's record.
pub(crate) const OUTPUT_KEPT: usize = 8 << 10;
/// The `PATH` hooks get.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs one hook to its end or its timeout; `env` is the run's context.
pub(crate) fn run(kind: HookKind, command: &str, timeout: Duration, env: &[(String, String)]) -> HookResult {
    let started = Instant::now();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .env("HINDSIGHT_HOOK", kind.as_str())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: a timeout kills what it started too.
        .process_group(0);
    let result = |exit: Option<i32>, ok: bool, error: Option<String>, output: String| HookResult {
        hook: kind,
        command: command.to_string(),
        ok,
        exit,
        error,
        millis: started.elapsed().as_millis() as u64,
        output,
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return result(None, false, Some(format!("cannot start /bin/sh: {e}")), String::new()),
    };
    // Both pipes are drained on threads: a hook that writes a lot must not block on a full pipe.
    let readers: Vec<_> = [child.stdout.take().map(boxed), child.stderr.take().map(boxed)]
        .into_iter()
        .flatten()
        .map(|mut r| {
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let mut buf = [0u8; 8192];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > 2 * OUTPUT_KEPT {
                        kept.drain(..kept.len() - OUTPUT_KEPT);
                    }
                }
                kept
            })
        })
        .collect();
    let pgid = rustix::process::Pid::from_child(&child);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if started.elapsed() >= timeout => {
                let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
                let _ = child.wait();
                break Err(format!("did not finish within {} s and was killed", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break Err(format!("waiting for it: {e}")),
        }
    };
    // What the group left running holds the pipes open: it was killed on
    // timeout; on a normal exit the readers end when the last writer does.
    let mut output = Vec::new();
    for r in readers {
        output.extend(r.join().unwrap_or_default());
    }
    if output.len() > OUTPUT_KEPT {
        output.drain(..output.len() - OUTPUT_KEPT);
    }
    let output = String::from_utf8_lossy(&output).into_owned();
    match status {
        Ok(s) if s.success() => result(Some(0), true, None, output),
        Ok(s) => match s.code() {
            Some(126) => {
                result(Some(126), false, Some("the command is not executable (exit status 126)".into()), output)
            }
            Some(127) => result(Some(127), false, Some("the command was not found (exit status 127)".into()), output),
            Some(c) => result(Some(c), false, Some(format!("exit status {c}")), output),
            None => result(None, false, Some(format!("killed by a signal ({s})")), output),
        },
        Err(e) => result(None, false, Some(e), output),
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

fn boxed(r: impl Read + Send + 'static) -> Box<dyn Read + Send> {
    Box::new(r)
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
        let started = Instant::now();
        // The sleeping grandchild dies with the group: the pipes close, the run goes on.
        let r = run(HookKind::Finally, "sleep 30 & sleep 30", Duration::from_millis(300), &env());
        assert!(!r.ok && r.error.as_deref().is_some_and(|e| e.contains("killed")), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "the timeout did not stop the hook");
    }
}

//! Running a helper program (a hook, a database client) to its end or its
//! timeout: in its own process group, killed with everything it started when
//! the time is up; both pipes drained on threads (a program that writes a lot
//! never blocks on a full pipe), the last `keep` bytes of each kept.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How a program ended.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Its exit status, or why it has none (did not start, killed at the timeout).
    pub status: Result<ExitStatus, String>,
    /// The end of its standard output.
    pub stdout: Vec<u8>,
    /// The end of its standard error.
    pub stderr: Vec<u8>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Finished {
    /// True when it exited with status 0.
    pub(crate) fn success(&self) -> bool {
        self.status.as_ref().is_ok_and(ExitStatus::success)
    }

    /// Why it failed, in a few words (`exit status 2`, `not found`, ...).
    pub(crate) fn failure(&self) -> Option<String> {
        match &self.status {
            Ok(s) if s.success() => None,
            Ok(s) => Some(match s.code() {
                Some(126) => "the command is not executable (exit status 126)".into(),
                Some(127) => "the command was not found (exit status 127)".into(),
                Some(c) => format!("exit status {c}"),
                None => format!("killed by a signal ({s})"),
            }),
            Err(e) => Some(e.clone()),
        }
    }
}

/// The `PATH` helper programs run with.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A command for a helper program run as root: a clean environment (a fixed
/// `PATH`, a UTF-8 locale, nothing of the agent's own) in `/`.
pub(crate) fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env_clear().env("PATH", PATH).env("LANG", "C.UTF-8").current_dir("/");
    c
}

/// Why `program` could not be started, in a few words.
pub(crate) fn spawn_error(program: &std::ffi::OsStr, e: &std::io::Error) -> String {
    let what = program.to_string_lossy();
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("{what} was not found"),
        std::io::ErrorKind::PermissionDenied => format!("{what} is not executable"),
        _ => format!("cannot start {what}: {e}"),
    }
}

/// Runs `cmd` (stdin from `/dev/null`, its own process group) for at most `timeout`.
pub(crate) fn run(mut cmd: Command, timeout: Duration, keep: usize) -> Finished {
    let started = Instant::now();
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let why = spawn_error(cmd.get_program(), &e);
            return Finished { status: Err(why), stdout: Vec::new(), stderr: Vec::new(), elapsed: started.elapsed() };
        }
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>), keep);
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>), keep);
    let group = rustix::process::Pid::from_child(&child);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if started.elapsed() >= timeout => {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                let _ = child.wait();
                break Err(format!("did not finish within {} s and was killed", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break Err(format!("waiting for it: {e}")),
        }
    };
    // What the group left running holds the pipes open: it was killed on
    // timeout; on a normal exit the readers end when the last writer does.
    let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    Finished { status, stdout, stderr, elapsed: started.elapsed() }
}

/// Reads a pipe to its end on a thread of its own (a program that writes a
/// lot never blocks on it); the thread gives back the last `keep` bytes.
pub(crate) fn drain(pipe: Option<Box<dyn Read + Send>>, keep: usize) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let Some(mut r) = pipe else { return kept };
        let mut buf = [0u8; 8192];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > 2 * keep {
                kept.drain(..kept.len() - keep);
            }
        }
        if kept.len() > keep {
            kept.drain(..kept.len() - keep);
        }
        kept
    })
}

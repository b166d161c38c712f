//! The daemon under test and the CLI that drives it.
//!
//! [`Daemon::start`] spawns `hindsightd` on its own state dir and socket (log
//! in a file), waits until `hindsight status` answers, and kills it when
//! dropped. Every interaction goes through the real `hindsight` binary.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::{hindsight_bin, hindsightd_bin, poll, s};

/// How long a daemon may take to answer after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a daemon may take to exit after SIGTERM or SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a CLI call other than `job run --wait` may take.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a run may take in these tests.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a daemon keeps its state, socket and log, and who it runs as.
#[derive(Debug, Clone)]
pub struct DaemonOpts {
    /// Directory holding the log (and by default the state dir and socket).
    pub root: PathBuf,
    /// `--state-dir`.
    pub state_dir: PathBuf,
    /// `--socket`.
    pub socket: PathBuf,
    /// The daemon's stderr and stdout, appended across restarts.
    pub log: PathBuf,
    /// Run as this user (through `setpriv`) instead of root.
    pub user: Option<String>,
    /// `--mountpoint` (else `--no-mount`).
    pub mountpoint: Option<PathBuf>,
    /// Extra environment of the daemon.
    pub env: Vec<(String, String)>,
    /// Extra arguments of the daemon.
    pub args: Vec<String>,
}

impl DaemonOpts {
    /// State in `root/state`, socket `root/run/hindsightd.sock`, log `root/hindsightd.log`.
    pub fn in_dir(root: &Path) -> Self {
        DaemonOpts {
            root: root.to_path_buf(),
            state_dir: root.join("state"),
            socket: root.join("run").join("hindsightd.sock"),
            log: root.join("hindsightd.log"),
            user: None,
            mountpoint: None,
            env: Vec::new(),
            args: Vec::new(),
        }
    }

    /// Runs the daemon as `user` with no supplementary groups.
    pub fn run_as(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }

    /// The `hindsightd` command for these options, output going to the log.
    pub fn command(&self) -> Command {
        std::fs::create_dir_all(&self.root).unwrap_or_else(|e| panic!("create {}: {e}", self.root.display()));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log.display()));
        // setpriv execs the daemon (same pid); --pdeathsig makes sure that no
        // daemon outlives a test binary that is killed.
        let mut cmd = Command::new("setpriv");
        if let Some(u) = &self.user {
            cmd.arg(format!("--reuid={u}")).arg(format!("--regid={u}")).arg("--clear-groups");
        }
        cmd.args(["--pdeathsig", "KILL"])
            .arg(hindsightd_bin())
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--socket")
            .arg(&self.socket)
            .args(match &self.mountpoint {
                Some(m) => vec!["--mountpoint".as_ref(), m.as_os_str()],
                None => vec!["--no-mount".as_ref()],
            })
            .args(&self.args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("HINDSIGHT_SOCKET")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("duplicate the log file handle"))
            .stderr(log);
        cmd
    }
}

/// What one `hindsight` invocation did.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub cmd: String,
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` exited {}\n--- stdout ---\n{}--- stderr ---\n{}", self.cmd, self.code, self.stdout, self.stderr)
    }
}

impl Output {
    /// True when the exit status is 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Asserts exit status 0.
    pub fn assert_success(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success:\n{self}");
        self
    }

    /// Asserts a one-line `error: ` naming every word of `words`, and an exit
    /// status of a failure (1, or 4-8 per the kind of failure; never 0, the
    /// usage error 2 or the partial run 3).
    pub fn assert_error(&self, words: &[&str]) -> &Self {
        assert!([1, 4, 5, 6, 7, 8].contains(&self.code), "expected the exit status of a failure:\n{self}");
        self.assert_error_line(words)
    }

    /// Like [`Output::assert_error`], with exactly exit status `code`.
    pub fn assert_error_code(&self, code: i32, words: &[&str]) -> &Self {
        assert_eq!(self.code, code, "expected exit status {code}:\n{self}");
        self.assert_error_line(words)
    }

    /// One error line on stderr naming `words`: `error: ...`, or with
    /// `--json` one object `{"error": {"code", "message", "exit"}}` whose
    /// exit is the exit status.
    fn assert_error_line(&self, words: &[&str]) -> &Self {
        let line = self.stderr.strip_suffix('\n').unwrap_or(&self.stderr);
        assert!(!line.contains('\n'), "the error is not one line:\n{self}");
        let line = match serde_json::from_str::<Value>(line) {
            Ok(v) => {
                assert!(v["error"]["code"].is_string(), "a JSON error without its code:\n{self}");
                assert_eq!(v["error"]["exit"], self.code, "the JSON error's exit is not the exit status:\n{self}");
                format!("error: {}", v["error"]["message"].as_str().unwrap_or_default())
            }
            Err(_) => line.to_string(),
        };
        assert!(line.starts_with("error: "), "stderr does not start with `error: `:\n{self}");
        let lower = line.to_lowercase();
        for w in words {
            assert!(lower.contains(&w.to_lowercase()), "the error does not mention {w:?}:\n{self}");
        }
        self
    }

    /// The `summary` that ends the JSON Lines of a `--wait --json` command:
    /// every line must parse as an object with a `message_type`, every one
    /// but the last a `status`.
    pub fn summary(&self) -> Value {
        let lines: Vec<Value> = self
            .stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a line is not JSON ({e}): {l}\n{self}")))
            .collect();
        let (last, before) = lines.split_last().unwrap_or_else(|| panic!("no JSON line on stdout:\n{self}"));
        for l in before {
            assert_eq!(l["message_type"], "status", "a line before the summary:\n{self}");
        }
        assert_eq!(last["message_type"], "summary", "the last line is not the summary:\n{self}");
        last.clone()
    }

    /// Standard output parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

/// A complete snapshot, as `snapshot list` shows it.
#[derive(Debug, Clone)]
pub struct Snap {
    /// Catalog id.
    pub id: i64,
    /// Job name.
    pub job: String,
    /// Snapshot name.
    pub name: String,
    /// Directory of the snapshot (`<dest>/<job>/<name>`).
    pub path: PathBuf,
}

impl Snap {
    /// From an object of `snapshot list --json`.
    pub fn from_json(v: &Value) -> Self {
        Snap {
            id: v["id"].as_i64().unwrap_or_else(|| panic!("snapshot without id: {v}")),
            job: str_field(v, "job").to_string(),
            name: str_field(v, "name").to_string(),
            path: PathBuf::from(str_field(v, "path")),
        }
    }

    /// Where the snapshot holds `source` (the tree mirrors absolute paths).
    pub fn tree(&self, source: &Path) -> PathBuf {
        self.path.join("tree").join(source.strip_prefix("/").expect("sources are absolute"))
    }
}

/// A string field of a JSON object, or a panic showing the object.
pub fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no string {key:?} in {v}"))
}

/// A counter of a run's `stats`.
pub fn stat(run: &Value, key: &str) -> u64 {
    run["stats"][key].as_u64().unwrap_or_else(|| panic!("no stats.{key} in {run}"))
}

/// A running `hindsightd`, killed when dropped.
pub struct Daemon {
    opts: DaemonOpts,
    child: Option<Child>,
}

impl Daemon {
    /// Spawns the daemon and waits until `hindsight status` succeeds.
    pub fn start(opts: DaemonOpts) -> Self {
        let mut d = Daemon { opts, child: None };
        d.spawn_and_wait();
        d
    }

    fn spawn_and_wait(&mut self) {
        assert!(self.child.is_none(), "the daemon is already running");
        let child = self.opts.command().spawn().expect("spawn hindsightd");
        self.child = Some(child);
        let ready = poll(START_TIMEOUT, || {
            if let Some(st) = self.child_mut().try_wait().expect("check on hindsightd") {
                panic!("hindsightd exited during start-up ({st})\n{}", self.log_tail());
            }
            self.cli(["status"]).success().then_some(())
        });
        if ready.is_none() {
            panic!("hindsightd did not answer within {START_TIMEOUT:?}\n{}", self.log_tail());
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the daemon is not running")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon is not running").id()
    }

    /// The options it was started with.
    pub fn opts(&self) -> &DaemonOpts {
        &self.opts
    }

    /// Its API socket.
    pub fn socket(&self) -> &Path {
        &self.opts.socket
    }

    /// Its whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.opts.log).unwrap_or_default()
    }

    /// The end of its log, framed for a failure message.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("--- hindsightd log ({}) ---\n{tail}", self.opts.log.display())
    }

    /// Runs `hindsight --socket S ARGS...`; it must finish within [`CLI_TIMEOUT`].
    pub fn cli<I, A>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = A>,
        A: AsRef<OsStr>,
    {
        self.cli_within(args, CLI_TIMEOUT)
    }

    /// Runs `hindsight --socket S ARGS...`; a call still running after
    /// `timeout` is killed and the test fails, showing the daemon's log.
    pub fn cli_within<I, A>(&self, args: I, timeout: Duration) -> Output
    where
        I: IntoIterator<Item = A>,
        A: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        let shown: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let cmd = format!("hindsight {}", shown.join(" "));
        let child = Command::new(hindsight_bin())
            .arg("--socket")
            .arg(&self.opts.socket)
            .args(&args)
            .env_remove("HINDSIGHT_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hindsight");
        let pid = rustix::process::Pid::from_child(&child);
        let (done, finished) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let expired = finished.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout);
            if expired {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            expired
        });
        let out = child.wait_with_output().expect("wait for hindsight");
        let _ = done.send(());
        if watchdog.join().unwrap_or(false) {
            panic!(
                "`{cmd}` did not finish within {timeout:?} and was killed (is the agent stuck?)\n{}",
                self.log_tail()
            );
        }
        Output {
            cmd,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `hindsight ARGS... --json`, asserts success and parses the output.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli(args.iter().copied().chain(["--json"]));
        if !out.success() {
            panic!("{out}\n{}", self.log_tail());
        }
        out.json()
    }

    /// Runs `hindsight ARGS...` and asserts success (human output).
    pub fn cli_ok(&self, args: &[&str]) -> Output {
        let out = self.cli(args);
        if !out.success() {
            panic!("{out}\n{}", self.log_tail());
        }
        out
    }

    /// Adds a `local` destination.
    pub fn add_destination(&self, name: &str, path: &Path, extra: &[&str]) -> Value {
        let mut args = vec!["destination", "add", name, "--type", "local", "--path", s(path)];
        args.extend_from_slice(extra);
        self.cli_json(&args)
    }

    /// Adds a job backing up `sources` to `destinations`.
    pub fn add_job(&self, name: &str, sources: &[&Path], destinations: &[&str], extra: &[&str]) -> Value {
        let mut args = vec!["job", "add", name];
        for src in sources {
            args.extend(["--source", s(src)]);
        }
        for d in destinations {
            args.extend(["--destination", d]);
        }
        args.extend_from_slice(extra);
        self.cli_json(&args)
    }

    /// Queues a run without waiting; returns its id.
    pub fn start_run(&self, job: &str) -> i64 {
        let run = self.cli_json(&["job", "run", job]);
        run["id"].as_i64().unwrap_or_else(|| panic!("run without id: {run}"))
    }

    /// `job run JOB --wait --json`: the exit status and the final run.
    pub fn run_wait(&self, job: &str) -> (i32, Value) {
        let out = self.cli_within(["job", "run", job, "--wait", "--json"], RUN_TIMEOUT);
        if out.stdout.trim().is_empty() {
            panic!("no run JSON on stdout:\n{out}\n{}", self.log_tail());
        }
        (out.code, out.summary())
    }

    /// Runs a job to the end and asserts that it completed (exit status 0).
    pub fn run_job_wait(&self, job: &str) -> Value {
        let (code, run) = self.run_wait(job);
        if code != 0 || run["state"] != "completed" {
            panic!("run of {job} did not complete (exit {code}): {run:#}\n{}", self.log_tail());
        }
        run
    }

    /// Runs a job that has one destination to completion; returns its new snapshot.
    pub fn backup(&self, job: &str) -> Snap {
        self.snapshot_of(&self.run_job_wait(job))
    }

    /// The listed snapshot that a run made on its first destination.
    pub fn snapshot_of(&self, run: &Value) -> Snap {
        let job = str_field(run, "job");
        let name =
            run["destinations"][0]["snapshot"].as_str().unwrap_or_else(|| panic!("the run made no snapshot: {run:#}"));
        let snap = self
            .snapshots()
            .into_iter()
            .find(|s| s.job == job && s.name == name)
            .unwrap_or_else(|| panic!("snapshot {name} of run {} is not listed", run["id"]));
        assert!(snap.path.join("snapshot.json").is_file(), "{} has no snapshot.json", snap.path.display());
        snap
    }

    /// Waits until run `id` is running, has copied at least one file and has
    /// its `.partial-*` directory in `job_dir`: a good moment to interrupt it.
    pub fn wait_mid_copy(&self, id: i64, job_dir: &Path) {
        let ready = poll(RUN_TIMEOUT, || {
            let run = self.run_show(id);
            let state = str_field(&run, "state");
            assert!(
                matches!(state, "queued" | "running"),
                "run {id} ended ({state}) before it could be interrupted; the test data is too small for this machine: {run:#}"
            );
            let partial = super::list_names(job_dir).iter().any(|n| n.starts_with(".partial-"));
            (state == "running" && stat(&run, "files_copied") >= 1 && partial).then_some(())
        });
        ready.unwrap_or_else(|| panic!("run {id} did not get to copying within {RUN_TIMEOUT:?}\n{}", self.log_tail()));
    }

    /// `run show ID --json`.
    pub fn run_show(&self, id: i64) -> Value {
        self.cli_json(&["run", "show", &id.to_string()])
    }

    /// Polls `run show` until the run is in a final state.
    pub fn wait_run_final(&self, id: i64) -> Value {
        let done = poll(RUN_TIMEOUT, || {
            let run = self.run_show(id);
            (!matches!(run["state"].as_str(), Some("queued" | "running"))).then_some(run)
        });
        done.unwrap_or_else(|| panic!("run {id} did not end within {RUN_TIMEOUT:?}\n{}", self.log_tail()))
    }

    /// Every listed snapshot.
    pub fn snapshots(&self) -> Vec<Snap> {
        let list = self.cli_json(&["snapshot", "list"]);
        list.as_array()
            .unwrap_or_else(|| panic!("snapshot list is not an array: {list}"))
            .iter()
            .map(Snap::from_json)
            .collect()
    }

    /// The id of the listed snapshot called `name` (on any destination, remote ones included).
    pub fn snapshot_id(&self, name: &str) -> String {
        let list = self.cli_json(&["snapshot", "list"]);
        let found = list.as_array().and_then(|a| a.iter().find(|s| s["name"] == name)).and_then(|s| s["id"].as_i64());
        found.unwrap_or_else(|| panic!("snapshot {name} is not listed: {list}")).to_string()
    }

    /// Names of the listed snapshots of `job`, sorted.
    pub fn snapshot_names(&self, job: &str) -> Vec<String> {
        let mut names: Vec<String> = self.snapshots().into_iter().filter(|s| s.job == job).map(|s| s.name).collect();
        names.sort();
        names
    }

    /// Everything the agent lists: destinations, jobs, runs and snapshots.
    pub fn inventory(&self) -> Value {
        serde_json::json!({
            "destinations": self.cli_json(&["destination", "list"]),
            "jobs": self.cli_json(&["job", "list"]),
            "runs": self.cli_json(&["run", "list"]),
            "snapshots": self.cli_json(&["snapshot", "list"]),
        })
    }

    /// Sends SIGTERM and waits for the exit; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(rustix::process::Signal::TERM);
        self.wait_exit()
    }

    /// Kills the daemon with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        self.signal(rustix::process::Signal::KILL);
        self.wait_exit();
    }

    /// Starts the daemon again with the same options.
    pub fn restart(&mut self) {
        self.spawn_and_wait();
    }

    /// Sends `sig` to the daemon (SIGSTOP and SIGCONT freeze and thaw it).
    pub fn signal(&mut self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_child(self.child_mut());
        rustix::process::kill_process(pid, sig).expect("signal hindsightd");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child_mut();
        let status = poll(STOP_TIMEOUT, || child.try_wait().expect("wait for hindsightd"));
        let status =
            status.unwrap_or_else(|| panic!("hindsightd did not exit within {STOP_TIMEOUT:?}\n{}", self.log_tail()));
        self.child = None;
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a second `hindsightd` with `opts` and waits for it to exit on its
/// own; returns its exit status and its log.
pub fn run_to_exit(opts: &DaemonOpts) -> (ExitStatus, String) {
    let mut child = opts.command().spawn().expect("spawn hindsightd");
    let status = poll(START_TIMEOUT, || child.try_wait().expect("wait for hindsightd"));
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("hindsightd kept running; expected it to refuse to start");
    };
    let log = std::fs::read_to_string(&opts.log).unwrap_or_default();
    (status, log)
}

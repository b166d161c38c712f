//! Harness of the end-to-end suite: where the binaries and work directories
//! are, polling with timeouts, and the submodules for the daemon, source
//! fixtures, tree comparison, raw HTTP, root-only system set-up and the
//! remote destinations' test servers.

pub mod daemon;
pub mod faultfs;
pub mod fixture;
pub mod http;
pub mod receiver;
pub mod remote;
pub mod services;
pub mod system;
pub mod tree;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use daemon::{Daemon, DaemonOpts, Snap};
pub use tree::{assert_same, describe};

/// How often polling loops look again.
pub const POLL: Duration = Duration::from_millis(20);

/// Path of one of the workspace's binaries: `$ENV`, else next to the test
/// executable's `deps/` directory (`target/debug/`).
pub fn binary(env: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("path of the test executable");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(name))
        .expect("the test executable lives in target/<profile>/deps");
    assert!(
        path.is_file(),
        "{} not found: build the binaries first: cargo build --workspace (or set {env})",
        path.display()
    );
    path
}

/// The daemon binary.
pub fn hindsightd_bin() -> PathBuf {
    binary("HINDSIGHTD_BIN", "hindsightd")
}

/// The CLI binary.
pub fn hindsight_bin() -> PathBuf {
    binary("HINDSIGHT_BIN", "hindsight")
}

/// A test's private work directory, removed when dropped.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// A fresh directory under `$HINDSIGHT_TEST_DIR`, else the system temp dir.
    pub fn new() -> Self {
        let base = std::env::var_os("HINDSIGHT_TEST_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        std::fs::create_dir_all(&base).expect("create the test base directory");
        let dir =
            tempfile::Builder::new().prefix("hindsight-e2e-").tempdir_in(&base).expect("create a sandbox directory");
        Sandbox { dir }
    }

    /// The sandbox's root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rel` inside the sandbox, created (with parents) as a directory.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        p
    }

    /// Options for a daemon whose state, socket and log live in `<sandbox>/agent`.
    pub fn daemon_opts(&self) -> DaemonOpts {
        DaemonOpts::in_dir(&self.path().join("agent"))
    }
}

/// Calls `f` every [`POLL`] until it returns `Some`, for at most `timeout`.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Like [`poll`], but panics naming `what` on timeout.
pub fn wait_until<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll(timeout, f).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// A path as `&str` for command lines (the sandbox paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("path {} is not UTF-8", p.display()))
}

/// Names in a directory (lossy), sorted; empty when it does not exist.
pub fn list_names(dir: &Path) -> Vec<String> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("read {}: {e}", dir.display()),
    };
    let mut names: Vec<String> =
        rd.map(|e| e.expect("read a directory entry").file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Name of the destination [`Setup`] adds.
pub const DEST: &str = "d1";
/// Name of the job [`Setup`] adds.
pub const JOB: &str = "j1";

/// The usual arrangement: a daemon, a source directory, a destination
/// [`DEST`] and (with [`Setup::new`]) a job [`JOB`] backing the source up to it.
/// Fields drop in order: the daemon goes before the sandbox.
pub struct Setup {
    /// The running daemon.
    pub daemon: Daemon,
    /// Detaches the daemon's snapshot mount (if any) once the daemon is gone.
    mount: Option<system::FuseGuard>,
    /// The source directory (`<sandbox>/src`).
    pub src: PathBuf,
    /// The destination root (`<sandbox>/dest`).
    pub dest: PathBuf,
    /// The work directory.
    pub sb: Sandbox,
}

impl Setup {
    /// Source filled by `fill`, destination [`DEST`], job [`JOB`] with default options.
    pub fn new(fill: impl FnOnce(&Path)) -> Setup {
        let s = Setup::without_job(fill);
        s.daemon.add_job(JOB, &[&s.src], &[DEST], &[]);
        s
    }

    /// Like [`Setup::new`], the daemon started with `env` added to its environment.
    pub fn with_env(fill: impl FnOnce(&Path), env: &[(&str, &str)]) -> Setup {
        let s = Setup::start(fill, false, true, env);
        s.daemon.add_job(JOB, &[&s.src], &[DEST], &[]);
        s
    }

    /// Like [`Setup::new`] but without the job.
    pub fn without_job(fill: impl FnOnce(&Path)) -> Setup {
        Setup::start(fill, false, true, &[])
    }

    /// Like [`Setup::new`], with the snapshot filesystem mounted on `<sandbox>/mnt`.
    pub fn mounted(fill: impl FnOnce(&Path)) -> Setup {
        let s = Setup::start(fill, true, true, &[]);
        s.daemon.add_job(JOB, &[&s.src], &[DEST], &[]);
        s
    }

    /// A mounted daemon and a source, without destination or job (the test
    /// adds a destination [`DEST`] of its own kind).
    pub fn mounted_without_destination(fill: impl FnOnce(&Path)) -> Setup {
        Setup::start(fill, true, false, &[])
    }

    fn start(fill: impl FnOnce(&Path), mount: bool, local_destination: bool, env: &[(&str, &str)]) -> Setup {
        let sb = Sandbox::new();
        let src = sb.dir("src");
        fill(&src);
        let dest = sb.path().join("dest");
        let mut opts = sb.daemon_opts();
        opts.env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let guard = mount.then(|| {
            let mnt = sb.dir("mnt");
            opts.mountpoint = Some(mnt.clone());
            system::FuseGuard(mnt)
        });
        let daemon = Daemon::start(opts);
        if local_destination {
            daemon.add_destination(DEST, &dest, &[]);
        }
        Setup { daemon, mount: guard, src, dest, sb }
    }

    /// Where the daemon mounts the snapshots ([`Setup::mounted`] only).
    pub fn mountpoint(&self) -> &Path {
        &self.mount.as_ref().expect("a Setup::mounted daemon").0
    }

    /// The directory of [`JOB`]'s snapshots on the destination.
    pub fn job_dir(&self) -> PathBuf {
        self.dest.join(JOB)
    }

    /// After a backup of [`JOB`] was interrupted: only the `earlier`
    /// snapshots are listed and on disk; the next run completes, equals the
    /// source, leaves no `.partial-*` behind, and copies less than the
    /// `total` bytes of file data because it reuses what was copied.
    pub fn assert_next_run_resumes(&self, earlier: &[&Snap], total: u64) {
        let mut names: Vec<&str> = earlier.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(self.daemon.snapshot_names(JOB), names, "snapshots listed after the interruption");
        assert_only_snapshots(&self.job_dir(), &names);

        let run = self.daemon.run_job_wait(JOB);
        let next = self.daemon.snapshot_of(&run);
        assert_same(&describe(&self.src), &describe(&next.tree(&self.src)), "snapshot after the interruption");
        names.push(&next.name);
        assert_only_snapshots(&self.job_dir(), &names);
        let partials: Vec<String> =
            list_names(&self.job_dir()).into_iter().filter(|n| n.starts_with(".partial-")).collect();
        assert!(partials.is_empty(), "the completed run left {partials:?}");
        let copied = daemon::stat(&run, "bytes_copied");
        assert!(copied < total, "the run after the interruption copied {copied} bytes of {total}: nothing was reused");
    }
}

/// Asserts that a job's directory on a destination holds exactly the complete
/// snapshots `names` (each with its `snapshot.json`), besides the job's lock
/// and `.partial-*` work directories.
pub fn assert_only_snapshots(job_dir: &Path, names: &[&str]) {
    let mut complete = Vec::new();
    for n in list_names(job_dir) {
        if n == ".lock" || n.starts_with(".partial-") {
            continue;
        }
        assert!(
            job_dir.join(&n).join("snapshot.json").is_file(),
            "{} holds {n:?}, which is not a complete snapshot",
            job_dir.display()
        );
        complete.push(n);
    }
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(complete, want, "complete snapshots in {}", job_dir.display());
}

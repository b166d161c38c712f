//! Destinations on a server reached over SSH (types `ssh` and `sftp`).
//!
//! Snapshots there are hardlink trees with the same layout as a local
//! destination (`<job>/<snapshot>/tree/...`, `index.sqlite`, `snapshot.json`):
//! the agent streams each one as a tar that GNU tar extracts on the server
//! (unchanged files as hardlinks to the previous snapshot), and everything
//! else (listing, manifests, indexes, the mount's ranged reads, the probe,
//! deletes) is a short POSIX shell command run through the system `ssh`
//! client. One master connection per destination (`ControlMaster`) carries
//! every command and stream, so a command costs a round trip, not a handshake.
//!
//! Why not OpenDAL's sftp service: it cannot be given a known_hosts file, a
//! port apart from the endpoint, a passphrase, a password nor an address
//! family, and its recursive listing would walk every file of every tree.
//! The backups need a shell and GNU tar on the server anyway, so the shell
//! commands need nothing more (`cat`, `tail`, `head`, `mv`, `rm`, `ls`,
//! `mkdir`, `wc`, GNU `find`).
//!
//! Host keys are always checked (`StrictHostKeyChecking=yes`): against the
//! `known_hosts` file given, or a file written from the `host_key` option, or
//! the system's known_hosts. A passphrase or password reaches ssh through
//! `SSH_ASKPASS` (a helper script that prints an environment variable of the
//! ssh process): never on a command line, never in a file. A private key
//! given as text (`key`) is written to a file only while a master
//! connection is being opened (ssh reads it then, and never again while the
//! master lives), and removed right after.
//!
//! The files ssh needs (known hosts, the askpass helper, control sockets)
//! live in a directory of this process's own, created mode 0700 under an
//! unpredictable name: another local user can neither pre-create it nor
//! read what is in it. Every remote command runs under `umask 077`, so the
//! directories it creates on the server (the destination root, job and
//! snapshot directories) are the login user's alone.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::config::{Common, IpFamily, SshSettings};
use crate::error::{FsError, Result};
use crate::sync::lock;

/// Exit status the remote scripts use for "no such object".
const NOT_FOUND: i32 = 44;
/// Exit status of the probe when a tool is missing on the server.
const NO_TOOL: i32 = 45;
/// Exit status of ssh itself when the connection fails.
const SSH_FAILED: i32 = 255;

/// A server reached over ssh, ready to run commands under the destination root.
pub struct SshClient {
    host: String,
    user: String,
    /// The destination root on the server, without a trailing `/` (relative:
    /// under the login directory).
    root: String,
    /// Options of every ssh invocation (before the host).
    opts: Vec<String>,
    /// Environment of every ssh invocation: the askpass helper and the secrets it prints.
    env: Vec<(String, String)>,
    timeout: Duration,
    retries: usize,
    bwlimit: Option<u64>,
    /// A private key given as text: written to a file only to open the master connection.
    inline_key: Option<Arc<InlineKey>>,
    /// The master connection's control socket.
    control: PathBuf,
    /// This process's private directory for ssh files.
    dir: PathBuf,
}

/// A private key given as text (the `key` option).
struct InlineKey {
    text: Vec<u8>,
    /// Held while a master connection is opened with it.
    opening: Mutex<()>,
}

impl std::fmt::Debug for SshClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the environment: it holds secrets.
        write!(f, "ssh://{}@{}/{}", self.user, self.host, self.root)
    }
}

/// The output of a remote command.
struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl SshClient {
    /// Prepares the client of `c` (writes the private files it needs; connects to nothing).
    pub fn new(c: &SshSettings, common: &Common) -> Result<Self> {
        let (host, user, port, root) = (c.host.clone(), c.username.clone(), c.port, c.path.clone());
        let dir = private_dir()?;
        let mut opts: Vec<String> = vec![
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            format!("ConnectTimeout={}", common.timeout.as_secs()),
            "-o".into(),
            "ServerAliveInterval=10".into(),
            "-o".into(),
            "ServerAliveCountMax=3".into(),
            "-p".into(),
            port.to_string(),
            "-l".into(),
            user.clone(),
        ];
        match c.ip {
            IpFamily::V4 => opts.push("-4".into()),
            IpFamily::V6 => opts.push("-6".into()),
            IpFamily::Any => {}
        }
        let known_hosts = match (c.known_hosts.as_deref(), c.host_key.as_deref()) {
            (Some(f), _) => Some(PathBuf::from(f)),
            (None, Some(k)) => {
                let k = k.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                let text = format!("{host} {k}\n[{host}]:{port} {k}\n");
                Some(private_file(&dir, "known_hosts", text.as_bytes())?)
            }
            (None, None) => None,
        };
        if let Some(kh) = known_hosts {
            opts.extend(["-o".into(), format!("UserKnownHostsFile={}", kh.display())]);
        }
        let inline_key = match (c.private_key.as_deref(), c.key.as_deref()) {
            (Some(p), _) => {
                opts.extend(["-i".into(), p.to_string(), "-o".into(), "IdentitiesOnly=yes".into()]);
                None
            }
            (None, Some(text)) => {
                let mut text = text.replace("\r\n", "\n");
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                // Given with `-i` only to the command that opens the master connection.
                opts.extend(["-o".into(), "IdentitiesOnly=yes".into()]);
                Some(Arc::new(InlineKey { text: text.into_bytes(), opening: Mutex::new(()) }))
            }
            (None, None) => None,
        };
        let mut env = Vec::new();
        let (passphrase, password) = (c.passphrase.as_deref(), c.password.as_deref());
        if passphrase.is_some() || password.is_some() {
            // BatchMode would refuse to ask; the askpass helper answers instead, once.
            let helper = private_file(&dir, "askpass", ASKPASS.as_bytes())?;
            set_mode(&helper, 0o700)?;
            env.push(("SSH_ASKPASS".to_string(), helper.display().to_string()));
            env.push(("SSH_ASKPASS_REQUIRE".to_string(), "force".to_string()));
            env.push(("HINDSIGHT_SSH_PASSPHRASE".to_string(), passphrase.unwrap_or_default().to_string()));
            env.push(("HINDSIGHT_SSH_PASSWORD".to_string(), password.unwrap_or_default().to_string()));
            opts.extend(["-o".into(), "BatchMode=no".into(), "-o".into(), "NumberOfPasswordPrompts=1".into()]);
            if password.is_none() {
                opts.extend(["-o".into(), "PasswordAuthentication=no".into()]);
            }
        } else {
            opts.extend(["-o".into(), "BatchMode=yes".into()]);
        }
        // One master connection per set of options (a wrong key must not ride on
        // another destination's authenticated connection to the same account).
        let mut h = blake3::Hasher::new();
        for o in &opts {
            h.update(o.as_bytes()).update(b"\0");
        }
        h.update(host.as_bytes());
        for (_, v) in &env {
            h.update(v.as_bytes()).update(b"\0");
        }
        if let Some(k) = &inline_key {
            h.update(&k.text);
        }
        let control = dir.join(format!("cm-{}", &h.finalize().to_hex()[..16]));
        opts.extend([
            "-o".into(),
            "ControlMaster=auto".into(),
            "-o".into(),
            format!("ControlPath={}", control.display()),
            "-o".into(),
            "ControlPersist=60".into(),
        ]);
        Ok(SshClient {
            host,
            user,
            root,
            opts,
            env,
            timeout: common.timeout,
            retries: common.retries,
            bwlimit: c.bwlimit,
            inline_key,
            control,
            dir,
        })
    }

    /// The destination root on the server, as given.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Upload bandwidth limit in KiB/s.
    pub fn bwlimit(&self) -> Option<u64> {
        self.bwlimit
    }

    /// Retries of a failed command or transfer.
    pub fn retries(&self) -> usize {
        self.retries
    }

    /// Per-command timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Path on the server of object `p` (relative to the root), shell-quoted.
    pub fn quoted(&self, p: &str) -> Vec<u8> {
        quote(self.remote_path(p).as_bytes())
    }

    /// Path on the server of object `p` (relative to the root).
    pub fn remote_path(&self, p: &str) -> String {
        let p = p.trim_start_matches('/');
        if p.is_empty() {
            self.root.clone()
        } else if self.root == "/" {
            format!("/{p}")
        } else {
            format!("{}/{p}", self.root)
        }
    }

    /// Like [`SshClient::remote_path`], for a path given as bytes.
    pub fn remote_path_raw(&self, p: &[u8]) -> Vec<u8> {
        let start = p.iter().position(|&b| b != b'/').unwrap_or(p.len());
        let p = &p[start..];
        let root = self.root.as_bytes();
        match (p.is_empty(), root == b"/") {
            (true, _) => root.to_vec(),
            (false, true) => [b"/", p].concat(),
            (false, false) => [root, b"/", p].concat(),
        }
    }

    /// Runs `script` with `sh` on the server, feeding it `stdin`; retries when
    /// the connection fails or the command times out. Exit status 44 is "not
    /// found"; any other failure carries the command's stderr.
    pub fn run(&self, op: &'static str, path: &str, script: &[u8], stdin: Option<&[u8]>) -> Result<Vec<u8>> {
        let deadline = self.timeout + Duration::from_secs(stdin.map_or(0, |b| b.len() as u64 >> 20));
        let mut attempt = 0;
        loop {
            let fail = |temporary: bool, not_found: bool, message: String| FsError::Remote {
                op,
                path: path.to_string(),
                temporary,
                not_found,
                message,
            };
            let err = match self.exec(script, stdin, deadline) {
                Ok(out) if out.status.success() => return Ok(out.stdout),
                Ok(out) if out.status.code() == Some(NOT_FOUND) => {
                    return Err(fail(false, true, "no such file on the server".into()));
                }
                Ok(out) if out.status.code() == Some(SSH_FAILED) || out.status.code().is_none() => {
                    fail(true, false, format!("ssh failed: {}", stderr_text(&out.stderr)))
                }
                Ok(out) => {
                    let code = out.status.code().unwrap_or(-1);
                    return Err(fail(false, false, format!("{} (exit {code})", stderr_text(&out.stderr))));
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    fail(true, false, format!("no answer within {}s", deadline.as_secs()))
                }
                Err(e) => return Err(fail(false, false, format!("cannot run ssh: {e}"))),
            };
            if attempt >= self.retries {
                return Err(err);
            }
            attempt += 1;
            tracing::debug!("{self:?}: {err}; retry {attempt} of {}", self.retries);
            std::thread::sleep(backoff(attempt));
        }
    }

    /// One ssh invocation, killed when it outlives `deadline`.
    /// The ssh command running `script` on the server under `umask 077`
    /// (with a key given as text, a master connection is opened first).
    fn command(&self, script: &[u8]) -> Command {
        self.open_master();
        let mut cmd = Command::new("ssh");
        cmd.args(&self.opts)
            .arg("--")
            .arg(&self.host)
            .arg(OsString::from_vec([b"umask 077; ".as_slice(), script].concat()));
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// With a key given as text and no master connection up: writes the key
    /// to a private file, opens the master connection with it (ssh reads the
    /// key once, while authenticating), and removes the file. Failures are
    /// left for the command that follows to report.
    fn open_master(&self) {
        let Some(key) = &self.inline_key else { return };
        let _opening = lock(&key.opening);
        let up = rustix::fs::lstat(&self.control)
            .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket);
        if up {
            return;
        }
        let path = self.dir.join(format!("key-{}", uuid::Uuid::new_v4().simple()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&key.text));
        if written.is_ok() {
            let mut cmd = Command::new("ssh");
            cmd.args(&self.opts).arg("-i").arg(&path).arg("--").arg(&self.host).arg("true");
            cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
            if let Ok(mut child) = cmd.spawn() {
                let _ = wait_until(&mut child, self.timeout);
            }
        }
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!("cannot remove the temporary key file {}: {e}", path.display());
        }
    }

    fn exec(&self, script: &[u8], stdin: Option<&[u8]>, deadline: Duration) -> std::io::Result<Output> {
        let mut cmd = self.command(script);
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let input = stdin.map(<[u8]>::to_vec);
        let mut pipe_in = child.stdin.take();
        let mut pipe_out = child.stdout.take();
        let mut pipe_err = child.stderr.take();
        let (status, stdout, stderr) = std::thread::scope(|s| {
            let writer = s.spawn(move || {
                if let (Some(p), Some(b)) = (pipe_in.as_mut(), input) {
                    // A command that exits early closes the pipe: its status tells why.
                    let _ = p.write_all(&b);
                }
                drop(pipe_in);
            });
            let out = s.spawn(move || {
                let mut v = Vec::new();
                if let Some(p) = pipe_out.as_mut() {
                    let _ = p.read_to_end(&mut v);
                }
                v
            });
            let err = s.spawn(move || {
                let mut v = Vec::new();
                if let Some(p) = pipe_err.as_mut() {
                    let _ = p.read_to_end(&mut v);
                }
                v
            });
            let status = wait_until(&mut child, deadline);
            let _ = writer.join();
            let stdout = out.join().unwrap_or_default();
            let stderr = err.join().unwrap_or_default();
            (status, stdout, stderr)
        });
        Ok(Output { status: status?, stdout, stderr })
    }

    /// Reads a whole object.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        let p = self.quoted(path);
        self.run("read", path, &[b"[ -f ".as_slice(), &p, b" ] || exit 44; exec cat -- ", &p].concat(), None)
    }

    /// Reads `len` bytes from `offset` (fewer at the end).
    pub fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.read_range_raw(path.as_bytes(), offset, len)
    }

    /// Like [`SshClient::read_range`], for a path given as bytes (file names
    /// in snapshot trees are not always UTF-8).
    pub fn read_range_raw(&self, path: &[u8], offset: u64, len: u64) -> Result<Vec<u8>> {
        let p = quote(&self.remote_path_raw(path));
        // tail seeks in a regular file; portable to GNU, BSD and busybox.
        let script = [
            b"[ -f ".as_slice(),
            &p,
            b" ] || exit 44; tail -c +",
            (offset + 1).to_string().as_bytes(),
            b" -- ",
            &p,
            b" | head -c ",
            len.to_string().as_bytes(),
        ]
        .concat();
        self.run("read", &String::from_utf8_lossy(path), &script, None)
    }

    /// Writes a whole object (through a temporary name, then renamed).
    /// Durable on the server: the data is synced before the rename, and the
    /// directory after it.
    pub fn write(&self, path: &str, bytes: &[u8]) -> Result<()> {
        let full = self.remote_path(path);
        let dir = quote(parent(&full).as_bytes());
        let tmp = quote(format!("{full}.tmp-{}", uuid::Uuid::new_v4().simple()).as_bytes());
        let script = [
            b"mkdir -p -- ".as_slice(),
            &dir,
            b" && cat > ",
            &tmp,
            b" && sync -- ",
            &tmp,
            b" && mv -f -- ",
            &tmp,
            b" ",
            &quote(full.as_bytes()),
            b" && sync -- ",
            &dir,
        ]
        .concat();
        self.run("write", path, &script, Some(bytes)).map(|_| ())
    }

    /// Size of an object, `None` when it does not exist.
    pub fn size(&self, path: &str) -> Result<Option<u64>> {
        let p = self.quoted(path);
        match self.run("stat", path, &[b"[ -f ".as_slice(), &p, b" ] || exit 44; wc -c < ", &p].concat(), None) {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out);
                text.trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| FsError::remote("stat", path, format!("unexpected size {text:?}")))
            }
            Err(FsError::Remote { not_found: true, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Names directly under `dir`; sub-directories end with `/`. A missing directory is empty.
    pub fn list(&self, dir: &str) -> Result<Vec<String>> {
        let script = [b"cd -- ".as_slice(), &self.quoted(dir), b" 2>/dev/null || exit 0; exec ls -1Ap"].concat();
        let out = self.run("list", dir, &script, None)?;
        let mut names = parse_lines(&out);
        names.sort();
        Ok(names)
    }

    /// Disk usage of the filesystem holding the root (`df` on the server).
    pub fn disk_usage(&self) -> Result<crate::local::DiskUsage> {
        let script = [b"exec df -P -B1 -- ".as_slice(), &self.quoted("")].concat();
        let out = self.run("df", "", &script, None)?;
        let text = String::from_utf8_lossy(&out);
        // `df -P`: a header, then "fs total used available capacity mountpoint".
        let fields: Vec<u64> = text
            .lines()
            .nth(1)
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .take(3)
            .filter_map(|f| f.parse().ok())
            .collect();
        match fields[..] {
            [total, used, free] => Ok(crate::local::DiskUsage { usage: used, free, total }),
            _ => Err(FsError::remote("df", &self.root, format!("unexpected df output: {}", text.trim()))),
        }
    }

    /// Snapshot directories of `job` holding a manifest (not sorted).
    pub fn list_complete(&self, job: &str, manifest: &str) -> Result<Vec<String>> {
        let script = [
            b"cd -- ".as_slice(),
            &self.quoted(job),
            b" 2>/dev/null || exit 0; for d in *; do [ -f \"$d/",
            manifest.as_bytes(),
            b"\" ] && printf '%s\\n' \"$d\"; done; exit 0",
        ]
        .concat();
        let out = self.run("list", job, &script, None)?;
        Ok(parse_lines(&out))
    }

    /// Deletes one object; a missing one is not an error.
    pub fn delete(&self, path: &str) -> Result<()> {
        self.run("delete", path, &[b"rm -f -- ".as_slice(), &self.quoted(path)].concat(), None).map(|_| ())
    }

    /// Deletes a directory and everything under it.
    pub fn delete_all(&self, dir: &str) -> Result<()> {
        let p = self.quoted(dir.trim_end_matches('/'));
        self.run("delete", dir, &[b"rm -rf -- ".as_slice(), &p].concat(), None).map(|_| ())
    }

    /// Creates a directory and its parents.
    pub fn mkdir(&self, dir: &str) -> Result<()> {
        self.run("mkdir", dir, &[b"mkdir -p -- ".as_slice(), &self.quoted(dir)].concat(), None).map(|_| ())
    }

    /// Renames `from` to `to` (the commit of a snapshot); fails when `to`
    /// exists. Durable on the server, as local commits are: the filesystem
    /// holding `from` is synced first (`syncfs`: every file written under it,
    /// which later snapshots will hardlink), and the directory of `to` after
    /// the rename. Without it a power loss could keep the rename and lose
    /// the data (delayed allocation), and the damage would spread to every
    /// later snapshot through its links.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (f, t) = (self.quoted(from), self.quoted(to));
        let dir = quote(parent(&self.remote_path(to)).as_bytes());
        let script = [
            b"[ ! -e ".as_slice(),
            &t,
            b" ] || { echo exists >&2; exit 1; }; sync -f -- ",
            &f,
            b" && mv -- ",
            &f,
            b" ",
            &t,
            b" && sync -- ",
            &dir,
        ]
        .concat();
        self.run("rename", from, &script, None).map(|_| ())
    }

    /// Starts writing `path` as a stream: `cat` on the server writes what
    /// ssh's stdin receives (its directory is created first). A failed or
    /// abandoned upload leaves a partial file, so callers write into a
    /// directory they remove on failure.
    pub fn upload(&self, path: &str) -> Result<SshUpload> {
        let full = self.remote_path(path);
        let script =
            [b"mkdir -p -- ".as_slice(), &quote(parent(&full).as_bytes()), b" && exec cat > ", &quote(full.as_bytes())]
                .concat();
        self.pipe("write", path, &script)
    }

    /// Starts `script` on the server with its stdin fed by the returned
    /// stream (`op` and `path` name it in errors). Not retried: a stream
    /// cannot be replayed.
    pub fn pipe(&self, op: &'static str, path: &str, script: &[u8]) -> Result<SshUpload> {
        let mut cmd = self.command(script);
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        let fail = |message: String| FsError::remote(op, path, message);
        let mut child = cmd.spawn().map_err(|e| fail(format!("cannot run ssh: {e}")))?;
        let stdin = child.stdin.take().ok_or_else(|| fail("ssh has no stdin".into()))?;
        // Read on a thread: a command that complains a lot must not block on a full pipe.
        let mut pipe_err = child.stderr.take();
        let stderr = std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(p) = pipe_err.as_mut() {
                let _ = p.read_to_end(&mut v);
            }
            v
        });
        Ok(SshUpload {
            child,
            stdin: Some(stdin),
            stderr: Some(stderr),
            op,
            path: path.to_string(),
            timeout: self.timeout,
            waited: false,
        })
    }

    /// Checks that the server has what backups use there: GNU tar (extracts
    /// the snapshot streams) and GNU find (lists trees for checks and resumes).
    pub fn require_tools(&self) -> Result<()> {
        let script = format!(
            "for t in tar find sync; do command -v $t >/dev/null 2>&1 || {{ echo $t; exit {NO_TOOL}; }}; done; \
             tar --version | head -n 1; find --version | head -n 1; sync --version | head -n 1"
        );
        // What each tool is, and the Debian package that has it.
        let tools =
            [("tar", "GNU tar", "tar"), ("find", "GNU findutils", "findutils"), ("sync", "GNU coreutils", "coreutils")];
        let missing = |tool: &str| {
            let package = tools.iter().find(|t| t.0 == tool).map_or(tool, |t| t.2);
            FsError::Refused(format!(
                "GNU {tool} is required on the server (install it there: apt-get install {package})"
            ))
        };
        match self.run("probe", "tools", script.as_bytes(), None) {
            Err(FsError::Remote { message, .. }) if message.ends_with(&format!("(exit {NO_TOOL})")) => {
                Err(missing(tools.iter().map(|t| t.0).find(|t| message.starts_with(t)).unwrap_or("tar")))
            }
            Err(e) => Err(e),
            Ok(out) => {
                let text = String::from_utf8_lossy(&out);
                match tools.iter().find(|t| !text.contains(t.1)) {
                    None => Ok(()),
                    Some(t) => Err(missing(t.0)),
                }
            }
        }
    }
}

/// A file being written on the server through `ssh ... cat > path`.
pub struct SshUpload {
    child: std::process::Child,
    /// None once closed (end of the data).
    stdin: Option<std::process::ChildStdin>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    op: &'static str,
    path: String,
    timeout: Duration,
    /// The command's status was collected: nothing to kill.
    waited: bool,
}

impl SshUpload {
    /// Ends the data and waits for the server to have written it all.
    pub fn finish(self) -> Result<()> {
        let (op, path) = (self.op, self.path.clone());
        let (status, stderr) = self.wait();
        let fail = |message: String| FsError::remote(op, path.clone(), message);
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(fail(format!("{} (exit {})", stderr_text(&stderr), s.code().unwrap_or(-1)))),
            Err(e) => Err(fail(format!("waiting for ssh: {e}"))),
        }
    }

    /// The local ssh process's id (to kill it from another thread while it runs).
    pub fn pid(&self) -> rustix::process::Pid {
        rustix::process::Pid::from_child(&self.child)
    }

    /// Takes the stream's input to write from elsewhere (another thread);
    /// the command sees the end of its input when that is dropped.
    pub fn take_input(&mut self) -> Option<std::process::ChildStdin> {
        self.stdin.take()
    }

    /// Ends the data (if still held here) and waits for the command: its
    /// status (255 or none: ssh itself failed) and what it wrote to stderr.
    pub fn wait(mut self) -> (std::io::Result<ExitStatus>, Vec<u8>) {
        drop(self.stdin.take());
        let status = wait_until(&mut self.child, self.timeout);
        self.waited = true;
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        (status, stderr)
    }

    /// Stops the upload; what was written stays on the server.
    pub fn abort(self) {
        drop(self);
    }
}

impl Write for SshUpload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.stdin.as_mut() {
            Some(s) => s.write(buf),
            None => Err(std::io::Error::other(format!("{}: the upload was already ended", self.path))),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stdin.as_mut().map_or(Ok(()), |s| s.flush())
    }
}

impl Drop for SshUpload {
    fn drop(&mut self) {
        // Not finished: the upload is abandoned, ssh must not linger.
        if !self.waited {
            drop(self.stdin.take());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The askpass helper: answers a passphrase prompt with the passphrase, any
/// other prompt (a password prompt) with the password; both come from the
/// environment of the ssh process.
const ASKPASS: &str = "#!/bin/sh\ncase \"$1\" in\n  *assphrase*) printf '%s\\n' \"$HINDSIGHT_SSH_PASSPHRASE\" ;;\n  *) printf '%s\\n' \"$HINDSIGHT_SSH_PASSWORD\" ;;\nesac\n";

/// Waits for `child`, killing it once `deadline` has passed.
fn wait_until(child: &mut std::process::Child, deadline: Duration) -> std::io::Result<ExitStatus> {
    let start = Instant::now();
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(s);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"));
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}

/// Delay before retry `attempt` (1-based): 0.5 s doubling, at most 8 s.
pub fn backoff(attempt: usize) -> Duration {
    Duration::from_millis(500u64 << attempt.saturating_sub(1).min(4))
}

/// The names a command printed one a line (`ls -1Ap`, `printf '%s\n'`), without empty lines.
pub(crate) fn parse_lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

fn stderr_text(b: &[u8]) -> String {
    let t = String::from_utf8_lossy(b);
    let lines: Vec<&str> = t.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() { "the command failed".into() } else { lines.join("; ") }
}

/// The directory of a path on the server (`/` for a top-level name).
fn parent(full: &str) -> &str {
    full.rsplit_once('/').map_or(".", |(d, _)| if d.is_empty() { "/" } else { d })
}

/// `s` quoted for a POSIX shell.
pub fn quote(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'\'');
    for &c in s {
        if c == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(c);
        }
    }
    out.push(b'\'');
    out
}

/// This process's private directory for ssh files (known hosts, the askpass
/// helper, control sockets, a key while a connection opens): created mode
/// 0700 under an unpredictable name in the temporary directory (short, so
/// that socket paths fit), once per process.
fn private_dir() -> Result<PathBuf> {
    PRIVATE_DIR
        .get_or_init(|| {
            let base = std::env::temp_dir();
            let mut last = String::new();
            for _ in 0..8 {
                let dir = base.join(format!("hindsight-ssh-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
                match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                    Ok(()) => return Ok(dir),
                    Err(e) => last = format!("cannot create {}: {e}", dir.display()),
                }
            }
            Err(last)
        })
        .clone()
        .map_err(FsError::Refused)
}

/// Removes this process's private ssh directory (at the agent's shutdown):
/// the control sockets go with it, and their masters end on their own.
pub fn remove_private_dir() {
    if let Some(Ok(dir)) = PRIVATE_DIR.get() {
        let _ = crate::posix::remove_tree(dir);
    }
}

/// See [`private_dir`].
static PRIVATE_DIR: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();

/// A file `<prefix>-<hash of contents>` in `dir`, mode 0600, written once.
fn private_file(dir: &Path, prefix: &str, contents: &[u8]) -> Result<PathBuf> {
    let path = dir.join(format!("{prefix}-{}", &blake3::hash(contents).to_hex()[..16]));
    if std::fs::read(&path).is_ok_and(|b| b == contents) {
        return Ok(path);
    }
    let tmp = dir.join(format!(".{prefix}-{}", uuid::Uuid::new_v4().simple()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| FsError::io("create", &tmp, e))?;
    f.write_all(contents).map_err(|e| FsError::io("write", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| FsError::io("rename", &tmp, e))?;
    Ok(path)
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| FsError::io("chmod", p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_bytes() {
        assert_eq!(quote(b"a b"), b"'a b'");
        assert_eq!(quote(b"it's"), b"'it'\\''s'");
        assert_eq!(quote(&[0xff, b'x']), [b'\'', 0xff, b'x', b'\'']);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(9), Duration::from_secs(8));
    }
}

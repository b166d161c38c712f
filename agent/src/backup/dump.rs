//! Database dumps in a snapshot: what to run ([`DumpSource`]), where its
//! output goes (`/.hindsight/databases/<server>/<file>`), and the stream of
//! its output ([`DumpStream`]), which the sinks store whole or not at all.
//!
//! The stream fails at its end when the dump tool did not exit with status 0
//! (killed, refused by the server, the database dropped under it): a sink
//! reads to that end before it keeps anything, so a cut dump never stands in
//! a snapshot as a complete file.
//!
//! `pg_dump` writes the time of the dump into its custom format's header:
//! that field is set to the epoch on the way, so that an unchanged database
//! gives the same bytes and its dump is stored once (the snapshot's own time
//! says when the dump was taken).

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The directory at the snapshot's root that holds what Hindsight adds.
pub(crate) const HINDSIGHT_DIR: &[u8] = b".hindsight";
/// Its subdirectory of database dumps, one directory per server.
pub(crate) const DATABASES_DIR: &[u8] = b"databases";

/// Bytes of the pipe from a dump tool.
const PIPE_SIZE: usize = 1 << 20;

/// Bytes of a dump tool's stderr kept for the run's errors.
const STDERR_KEPT: usize = 4096;

/// How a dump's bytes are made comparable from one run to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Normalize {
    /// Stored as the tool wrote them.
    None,
    /// `pg_dump -Fc`: the header's creation time is set to the epoch.
    PgCustom,
}

/// One dump to run into the snapshot.
#[derive(Clone)]
pub(crate) struct DumpSource {
    /// The server's name: the directory under `/.hindsight/databases/`.
    pub server: String,
    /// The file's name in that directory.
    pub file: Vec<u8>,
    /// What it is, for messages (`database shop on server pg1`).
    pub what: String,
    /// The program and its arguments (no secret: those are in a file).
    pub program: String,
    pub args: Vec<OsString>,
    /// Its environment (besides a fixed PATH and locale).
    pub env: Vec<(OsString, OsString)>,
    pub normalize: Normalize,
    /// What must live while the tool runs (its credentials file).
    pub keep: Arc<dyn Send + Sync>,
}

impl fmt::Debug for DumpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DumpSource").field("what", &self.what).field("program", &self.program).finish()
    }
}

/// A running dump tool's output; an error at its end when the tool failed.
pub(super) struct DumpStream {
    child: Child,
    out: ChildStdout,
    stderr: Option<JoinHandle<Vec<u8>>>,
    program: String,
    /// Bytes read ahead and rewritten, served before the rest.
    head: Vec<u8>,
    head_at: usize,
    normalize: Normalize,
    ended: bool,
    /// The source's credentials, kept while the tool runs.
    _keep: Arc<dyn Send + Sync>,
}

impl DumpStream {
    /// Starts the tool (its own process group, stdin from `/dev/null`, a clean environment).
    pub(super) fn spawn(d: &DumpSource) -> Result<DumpStream, String> {
        let mut cmd = crate::process::clean_command(&d.program);
        cmd.envs(d.env.iter().map(|(k, v)| (k, v)))
            .args(&d.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            let why = crate::process::spawn_error(cmd.get_program(), &e);
            match e.kind() {
                io::ErrorKind::NotFound => {
                    format!("{why} (install it, or set bin_{} to where it is)", tool_name(&d.program))
                }
                _ => why,
            }
        })?;
        if let Some(out) = child.stdout.as_ref() {
            // A large pipe lets the tool write ahead while a chunk is hashed
            // and stored, with a wake-up per megabyte rather than per 64 KiB.
            // Refused above /proc/sys/fs/pipe-max-size for unprivileged users: the default stays.
            let _ = rustix::pipe::fcntl_setpipe_size(out, PIPE_SIZE);
        }
        let Some(out) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("cannot read the output of {}", d.program));
        };
        let stderr =
            crate::process::drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>), STDERR_KEPT);
        Ok(DumpStream {
            child,
            out,
            stderr: Some(stderr),
            program: d.program.clone(),
            head: Vec::new(),
            head_at: 0,
            normalize: d.normalize,
            ended: false,
            _keep: d.keep.clone(),
        })
    }

    /// The tool's process group (it and what it started).
    pub(super) fn process_group(&self) -> rustix::process::Pid {
        rustix::process::Pid::from_child(&self.child)
    }

    /// Waits for the tool; an error saying how it failed, with its stderr's last lines.
    fn finish(&mut self) -> io::Result<()> {
        self.ended = true;
        let status = self.child.wait()?;
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&stderr);
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        let how = match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => format!("was killed ({status})"),
        };
        let said = if tail.is_empty() { String::new() } else { format!(": {tail}") };
        Err(io::Error::other(format!("{} {how}{said}", tool_name(&self.program))))
    }

    /// Reads the first bytes and rewrites what changes from run to run.
    fn read_head(&mut self) -> io::Result<()> {
        let mut head = vec![0u8; PG_HEAD_MAX];
        let mut got = 0;
        while got < head.len() {
            match self.out.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        head.truncate(got);
        if !normalize_pg_custom(&mut head) {
            tracing::info!("{}: header not recognised; its dumps are stored as written", self.program);
        }
        self.head = head;
        Ok(())
    }
}

/// The tool's file name (`/usr/bin/pg_dump` -> `pg_dump`).
fn tool_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

impl Read for DumpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.normalize == Normalize::PgCustom {
            self.normalize = Normalize::None;
            self.read_head()?;
        }
        if self.head_at < self.head.len() {
            let n = buf.len().min(self.head.len() - self.head_at);
            buf[..n].copy_from_slice(&self.head[self.head_at..self.head_at + n]);
            self.head_at += n;
            return Ok(n);
        }
        if self.ended {
            return Ok(0);
        }
        match self.out.read(buf)? {
            0 => self.finish().map(|()| 0),
            n => Ok(n),
        }
    }
}

impl Drop for DumpStream {
    /// A dump left before its end (the destination failed, the run was
    /// cancelled) is stopped, with whatever it started.
    fn drop(&mut self) {
        if !self.ended {
            let _ = rustix::process::kill_process_group(self.process_group(), rustix::process::Signal::KILL);
            let _ = self.child.wait();
        }
    }
}

/// Bytes of a custom-format header that hold the creation time, at most.
const PG_HEAD_MAX: usize = 128;

/// Sets the creation time in a `pg_dump -Fc` header to 1970-01-01 00:00:00;
/// false when the header is not one this knows (left as it is).
///
/// The header (`pg_backup_archiver.c`, `WriteHead`): `PGDMP`, the format's
/// version (major, minor, revision), the size of an int, of an offset, the
/// format; the compression (one byte from version 1.15, an int before); then
/// seven ints of `struct tm` (sec, min, hour, mday, mon, year, isdst). An int
/// is a sign byte and `int size` bytes, least significant first.
pub(crate) fn normalize_pg_custom(head: &mut [u8]) -> bool {
    if head.len() < 11 || &head[..5] != b"PGDMP" {
        return false;
    }
    let (major, minor, int_size) = (head[5], head[6], head[8] as usize);
    if major != 1 || !(4..=16).contains(&minor) || !(1..=8).contains(&int_size) {
        return false;
    }
    let mut at = 11 + if minor >= 15 { 1 } else { 1 + int_size };
    if head.len() < at + 7 * (1 + int_size) {
        return false;
    }
    for value in [0u64, 0, 0, 1, 0, 70, 0] {
        head[at] = 0;
        for (i, b) in head[at + 1..at + 1 + int_size].iter_mut().enumerate() {
            *b = (value >> (8 * i)) as u8;
        }
        at += 1 + int_size;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 1.14 header with int size 4, written at 2026-12-07 20:55:31.
    fn header() -> Vec<u8> {
        let mut h = b"PGDMP".to_vec();
        h.extend([1, 14, 0, 4, 8, 1]);
        let int = |h: &mut Vec<u8>, v: u32| {
            h.push(0);
            h.extend(v.to_le_bytes());
        };
        int(&mut h, 0); // compression
        for v in [31, 55, 20, 7, 11, 126, 0] {
            int(&mut h, v);
        }
        h.extend(b"\x00\x04\x00\x00\x00shop");
        h
    }

    #[test]
    fn the_creation_time_of_a_custom_dump_is_set_to_the_epoch_and_nothing_else_changes() {
        let mut a = header();
        assert!(normalize_pg_custom(&mut a));
        let times: Vec<u8> = a[16..16 + 35].to_vec();
        assert_eq!(&times[..5], &[0, 0, 0, 0, 0]);
        assert_eq!(&times[15..20], &[0, 1, 0, 0, 0], "mday 1");
        assert_eq!(&times[25..30], &[0, 70, 0, 0, 0], "year 70");
        assert_eq!(&a[..16], &header()[..16]);
        assert_eq!(&a[51..], &header()[51..]);
        // Another time of day gives the same bytes.
        let mut b = header();
        b[17] = 12;
        assert!(normalize_pg_custom(&mut b));
        assert_eq!(a, b);
        // Not a custom dump, or one too short: untouched.
        let mut sql = b"-- PostgreSQL database dump\n".to_vec();
        assert!(!normalize_pg_custom(&mut sql));
        let mut short = header()[..20].to_vec();
        assert!(!normalize_pg_custom(&mut short));
        assert_eq!(short, header()[..20]);
    }
}

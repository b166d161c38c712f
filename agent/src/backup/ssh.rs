//! Snapshots on a server reached over SSH (types `ssh` and `sftp`): real
//! hardlink trees, the same layout as a local destination, written by rsync.
//!
//! 1. Walk the sources ([`SourceWalk`]) and build the index here: an unchanged
//!    file (same metadata as in the previous snapshot's index) takes its
//!    blake3 without being read; other files are hashed locally. Every entry
//!    the walk keeps (excludes and unreadable files left out) goes to a list.
//! 2. One `rsync -aHAXS --numeric-ids --files-from=LIST --link-dest=PREV` into
//!    `<job>/.partial-<name>/tree/` on the server: unchanged files become
//!    hardlinks to the previous snapshot there, nothing of theirs is sent.
//!    Interrupted runs' `.partial-*` trees are further `--link-dest`s, so a
//!    retry sends only what they lack. Connection failures are retried.
//! 3. Upload `index.sqlite` and `snapshot.json` into the partial directory,
//!    then rename it to the snapshot's name: the commit point, as on local
//!    destinations. A failed run leaves only `.partial-*`, never listed.
//!
//! rsync exit 23 (some files not transferred: typically owners, devices or
//! security xattrs a non-root remote user may not set) and 24 (files vanished)
//! make the snapshot partial, each rsync complaint recorded as a file error;
//! the index keeps the true owners and modes, and the mount shows those.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::sync_channel;
use std::time::Duration;

use hindsight_fs::error::FsError;
use hindsight_fs::index::{INDEX_FILE, IndexEntry, IndexWriter};
use hindsight_fs::layout::{PARTIAL_PREFIX, TREE_DIR};
use hindsight_fs::manifest::{Manifest, SnapshotStats, Structure};
use hindsight_fs::remote::RemoteStore;
use hindsight_fs::remote::ssh::{SshClient, backoff};

use super::commit::{self, SnapshotInfo};
use super::incremental::{BackupError, BackupSpec, write_index};
use super::progress::{Cancel, Progress};
use super::remote::{hash_fd, same_inode};
use super::remote_run::{RemoteRun, previous};
use super::source_walk::{FirstName, Sink, SourceFile, SourceWalk, Stored, open_file};

/// Interrupted runs kept as bases of the next one (rsync takes at most 20 `--link-dest`).
const KEEP_PARTIALS: usize = 3;

/// rsync exit statuses worth a retry: the connection or the remote side went away.
const RETRYABLE: [i32; 5] = [10, 12, 30, 35, 255];

/// Makes one hardlink snapshot of `spec` on the ssh destination `store`;
/// `cache` is this destination's local cache directory (indexes, lock).
pub fn run_ssh(
    store: &RemoteStore,
    cache: &Path,
    spec: &BackupSpec,
    progress: &Progress,
    cancel: &Cancel,
) -> Result<Manifest, BackupError> {
    let ssh = store.ssh().ok_or_else(|| BackupError::Destination(format!("{store:?} is not an ssh destination")))?;
    let run = RemoteRun::begin(store, cache, &spec.job, &spec.sources)?;
    let (existing, name, work) = (&run.existing, run.name.clone(), run.work.clone());
    let prev = previous(store, cache, &spec.job);

    // Leftovers of interrupted runs: the newest few serve as bases, older ones go.
    let mut leftovers: Vec<String> = existing.iter().filter(|n| n.starts_with(PARTIAL_PREFIX)).cloned().collect();
    leftovers.sort_by_key(|n| hindsight_fs::layout::snapshot_sort_key(&n[PARTIAL_PREFIX.len()..]));
    let stale = leftovers.len().saturating_sub(KEEP_PARTIALS);
    for old in leftovers.drain(..stale) {
        ssh.delete_all(&format!("{}/{old}", spec.job))?;
    }
    if !leftovers.is_empty() {
        tracing::info!(job = %spec.job, "reusing what {} interrupted run(s) sent", leftovers.len());
    }
    let partial = format!("{}/{PARTIAL_PREFIX}{name}", spec.job);
    ssh.mkdir(&format!("{partial}/{TREE_DIR}"))?;

    let list_path = work.join("files-from");
    let list = std::fs::File::create(&list_path).map_err(|e| FsError::io("create", &list_path, e))?;
    let index = IndexWriter::create(&work.join(INDEX_FILE), Structure::Incremental.as_str(), &name)?;
    let sink = ListSink { progress, list: BufWriter::new(list), path: list_path.clone() };

    let clock = std::time::Instant::now();
    let (row_tx, row_rx) = sync_channel(8);
    let prev_index = prev.as_ref().map(|(_, i)| i);
    let (walked, index_result) = std::thread::scope(|s| {
        let indexer = s.spawn(move || write_index(index, row_rx));
        let walked = SourceWalk::new(spec, progress, cancel, sink, prev_index, row_tx).run();
        let index_result = indexer.join().unwrap_or(Err(BackupError::IndexStopped));
        (walked, index_result)
    });
    let sink = walked?;
    sink.list.into_inner().map_err(|e| FsError::io("write", &list_path, e.into_error()))?;
    let (index, stats) = index_result?;
    if cancel.is_cancelled() {
        return Err(BackupError::Cancelled);
    }
    let walk_time = clock.elapsed();

    let mut bases: Vec<String> = prev.iter().map(|(n, _)| n.clone()).collect();
    bases.extend(leftovers.iter().rev().cloned());
    let dest = format!("{}{}/{TREE_DIR}/", ssh.rsync_host(), ssh.remote_path(&partial));
    transfer(ssh, &list_path, &bases, &dest, progress, cancel)?;
    let transfer_time = clock.elapsed() - walk_time;

    let index_file = index.finish()?;
    let info = SnapshotInfo {
        spec,
        name: &name,
        structure: Structure::Incremental,
        started: run.started,
        parent: prev.as_ref().map(|(n, _)| n.clone()),
        stats: SnapshotStats { bytes_stored: stats.bytes_added, ..stats },
        progress,
    };
    let manifest = commit::manifest(&info, &index_file)?;
    run.publish(store, &partial, &manifest)?;
    // The commit point: the snapshot appears complete or not at all.
    ssh.rename(&partial, &format!("{}/{name}", spec.job))?;
    for old in &leftovers {
        if let Err(e) = ssh.delete_all(&format!("{}/{old}", spec.job)) {
            tracing::warn!(job = %spec.job, "cannot remove the interrupted run {old}: {e}");
        }
    }
    let _ = std::fs::remove_file(&list_path);
    run.keep(&spec.job, &manifest)?;
    tracing::info!(
        job = %spec.job,
        "snapshot {name} complete on {ssh:?}: walk {:.2}s, rsync {:.2}s, total {:.2}s",
        walk_time.as_secs_f64(),
        transfer_time.as_secs_f64(),
        clock.elapsed().as_secs_f64()
    );
    Ok(manifest)
}

/// Runs rsync until it succeeds, retrying connection failures with backoff.
fn transfer(
    ssh: &SshClient,
    list: &Path,
    bases: &[String],
    dest: &str,
    progress: &Progress,
    cancel: &Cancel,
) -> Result<(), BackupError> {
    let mut attempt = 0;
    loop {
        let (code, complaints) = rsync_once(ssh, list, bases, dest, cancel)?;
        match code {
            0 => return Ok(()),
            23 | 24 => {
                for line in &complaints {
                    progress.failed(b"", format!("rsync: {line}"));
                }
                if complaints.is_empty() {
                    progress.failed(b"", format!("rsync exit {code}: some files were not transferred"));
                }
                return Ok(());
            }
            c if RETRYABLE.contains(&c) && attempt < ssh.retries() => {
                attempt += 1;
                tracing::warn!("rsync to {ssh:?} failed (exit {c}: {}); retry {attempt}", complaints.join("; "));
                std::thread::sleep(backoff(attempt));
            }
            c => {
                let why = if complaints.is_empty() { String::new() } else { format!(": {}", complaints.join("; ")) };
                let tries = if attempt > 0 { format!(" after {} attempts", attempt + 1) } else { String::new() };
                return Err(BackupError::Destination(format!("rsync to {ssh:?} failed with exit {c}{tries}{why}")));
            }
        }
    }
}

/// One rsync run: its exit status and the lines it complained with (at most 50).
fn rsync_once(
    ssh: &SshClient,
    list: &Path,
    bases: &[String],
    dest: &str,
    cancel: &Cancel,
) -> Result<(i32, Vec<String>), BackupError> {
    let mut cmd = Command::new("rsync");
    cmd.args(["-aHAXS", "--numeric-ids", "--from0", "--no-inc-recursive"])
        .arg(format!("--files-from={}", list.display()))
        .arg(format!("--timeout={}", ssh.timeout().as_secs()));
    if let Some(bw) = ssh.bwlimit() {
        cmd.arg(format!("--bwlimit={bw}"));
    }
    for b in bases {
        // Relative to the destination directory `<job>/.partial-<name>/tree/`.
        cmd.arg(format!("--link-dest=../../{b}/{TREE_DIR}/"));
    }
    cmd.arg("-e").arg(ssh.rsync_shell()).arg("/").arg(dest);
    cmd.envs(ssh.env().iter().map(|(k, v)| (k, v)));
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        BackupError::Destination(format!("cannot run rsync ({e}): rsync is required on this machine and on the server"))
    })?;
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        if let Some(s) = stderr {
            for line in BufReader::new(s).lines().map_while(Result::ok) {
                if lines.len() < 50 && !line.trim().is_empty() {
                    lines.push(line);
                }
            }
        }
        lines
    });
    let status = loop {
        if cancel.is_cancelled() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
            return Err(BackupError::Cancelled);
        }
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(BackupError::Destination(format!("rsync: {e}"))),
        }
    };
    let lines = reader.join().unwrap_or_default();
    Ok((status.code().unwrap_or(-1), lines))
}

/// Lists every entry the walk keeps for rsync, and hashes changed files for the index.
struct ListSink<'a> {
    progress: &'a Progress,
    list: BufWriter<std::fs::File>,
    path: PathBuf,
}

impl ListSink<'_> {
    fn push(&mut self, path: &[u8]) -> Result<(), BackupError> {
        let p = path.strip_suffix(b"/").unwrap_or(path);
        self.list
            .write_all(p)
            .and_then(|_| self.list.write_all(b"\0"))
            .map_err(|e| BackupError::Fs(FsError::io("write", &self.path, e)))
    }
}

impl Sink for ListSink<'_> {
    fn dir(&mut self, path: &[u8], _row: &mut IndexEntry) -> Result<(), BackupError> {
        self.push(path)
    }

    fn special(&mut self, path: &[u8], _row: &mut IndexEntry) -> Result<(), BackupError> {
        self.push(path)
    }

    fn hardlink(&mut self, path: &[u8], _first: &FirstName, _row: &mut IndexEntry) -> Result<(), BackupError> {
        // rsync -H links it to its first name, which is in the list too.
        self.push(path)
    }

    fn file(&mut self, f: SourceFile<'_>, r: &mut IndexEntry) -> Result<Stored, BackupError> {
        // Equal ctime and metadata: the inode has not changed; rsync will link it too.
        if let Some(p) = f.prev.filter(|p| p.blake3.is_some())
            && same_inode(&r.meta, &p.meta)
        {
            r.meta.xattrs = p.meta.xattrs.clone();
            r.blake3 = p.blake3;
            self.progress.linked();
            self.push(f.path)?;
            return Ok(Stored::Reused);
        }
        let Some(fd) = open_file(&f, r, self.progress) else { return Ok(Stored::Skipped) };
        if let Some(p) = f.prev.filter(|p| p.blake3.is_some())
            && r.meta.unchanged_from(&p.meta)
        {
            r.blake3 = p.blake3;
            self.progress.linked();
            self.push(f.path)?;
            return Ok(Stored::Reused);
        }
        match hash_fd(&fd, r.meta.size) {
            Ok(h) => r.blake3 = Some(h),
            Err(e) => {
                self.progress.failed(f.abs, format!("read failed: {e}"));
                return Ok(Stored::Skipped);
            }
        }
        self.progress.copied(r.meta.size);
        self.push(f.path)?;
        Ok(Stored::New)
    }
}

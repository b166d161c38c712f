//! Archived and Compressed snapshots on remote destinations (object stores,
//! FTP, cloud drives, ssh): the same `data.tar[.gz]`, `index.sqlite` and
//! `snapshot.json` as on a local destination, under `<job>/<snapshot>/`.
//!
//! 1. Take the job's lock (in the local cache). Snapshot directories without
//!    a manifest are what failed runs could not remove: they go.
//! 2. Walk the sources into the tar stream ([`stream_archive`]), which goes
//!    straight to the destination as it is produced ([`ObjectWriter`]: an
//!    S3 multipart upload in parts of `chunk_size`, FTP appending to the
//!    object itself, `cat` on an ssh server); nothing is staged locally but
//!    the index.
//! 3. Upload `index.sqlite`, then `snapshot.json`: the commit point. On ssh
//!    everything goes into `<job>/.partial-<name>/`, renamed into place at the
//!    end, as its tree snapshots do.
//!
//! A failed or cancelled run leaves no manifest, so no snapshot: its upload is
//! aborted (an S3 multipart upload is discarded) and what it wrote under the
//! snapshot's directory is deleted at once; when the destination cannot be
//! reached for that, the next run of the job deletes it (step 1).

use std::path::Path;

use hindsight_fs::Manifest;
use hindsight_fs::PARTIAL_PREFIX;
use hindsight_fs::index::INDEX_FILE;
use hindsight_fs::remote::ObjectWriter;
use hindsight_fs::remote::RemoteStore;

use super::archive::{ArchiveOptions, ArchiveOut, stream_archive};
use super::commit::{self, SnapshotInfo};
use super::progress::{Cancel, Progress};
use super::remote_run::RemoteRun;
use super::spec::{BackupError, BackupSpec};

/// Makes one archived or compressed snapshot of `spec` on `store`; `cache` is
/// this destination's local cache directory (indexes, lock).
pub(crate) fn run_remote_archive(
    store: &RemoteStore,
    cache: &Path,
    spec: &BackupSpec,
    opts: ArchiveOptions,
    progress: &Progress,
    cancel: &Cancel,
) -> Result<Manifest, BackupError> {
    let run = RemoteRun::begin(store, cache, &spec.job, &spec.sources)?;
    let job = &spec.job;
    remove_leftovers(store, job, &run)?;
    let name = &run.name;
    // ssh has directories and renames: the snapshot appears whole, as its trees do.
    let dir = match store {
        RemoteStore::Ssh(_) => format!("{job}/{PARTIAL_PREFIX}{name}"),
        RemoteStore::Objects(_) => format!("{job}/{name}"),
    };
    let manifest = match upload(store, &run, &dir, spec, opts, progress, cancel) {
        Ok(m) => m,
        Err(e) => {
            if let Err(d) = store.delete_all(&format!("{dir}/")) {
                tracing::warn!(job, "cannot remove the failed upload {dir} ({d}); the next run of {job} will");
            }
            return Err(e);
        }
    };
    run.keep(job, &manifest)?;
    Ok(manifest)
}

/// Removes what failed runs of the job left (its lock is held, so no run is
/// writing there): snapshot directories without a manifest; on ssh, the
/// `.partial-*` directories (bases of rsync for tree snapshots, of no use to
/// an archive).
fn remove_leftovers(store: &RemoteStore, job: &str, run: &RemoteRun) -> Result<(), BackupError> {
    // The run's start listed both: what the job's directory holds, and its complete snapshots.
    let complete = |d: &String| run.snapshots.iter().any(|(name, _)| name == d);
    for d in run.existing.iter().filter(|d| !complete(d)) {
        let leftover = match store {
            RemoteStore::Ssh(_) => d.starts_with(PARTIAL_PREFIX),
            RemoteStore::Objects(_) => !d.starts_with('.') && hindsight_fs::check_name("snapshot", d).is_ok(),
        };
        if leftover {
            tracing::info!(job, "removing {job}/{d}, left without a manifest by a failed run");
            store.delete_all(&format!("{job}/{d}/"))?;
        }
    }
    Ok(())
}

/// Streams the archive into `dir` on the destination, then its index and manifest; returns the manifest.
fn upload(
    store: &RemoteStore,
    run: &RemoteRun,
    dir: &str,
    spec: &BackupSpec,
    opts: ArchiveOptions,
    progress: &Progress,
    cancel: &Cancel,
) -> Result<Manifest, BackupError> {
    let name = run.name.as_str();
    let clock = std::time::Instant::now();
    let key = format!("{dir}/{}", opts.data_file());
    let data = ObjectWriter::create(store, &key)?;
    let index_file = run.work.join(INDEX_FILE);
    let out = ArchiveOut { data, shown: format!("{store:?}/{key}"), index_path: &index_file, name, spool_dir: None };
    let (finished, stats) = stream_archive(spec, opts, out, progress, cancel)?;
    finished.sink.close()?;
    let info = SnapshotInfo {
        spec,
        name,
        structure: opts.structure,
        started: run.started,
        parent: None,
        stats,
        progress,
        sequence: run.sequence,
    };
    let manifest = commit::manifest(&info, &index_file)?;
    // The commit point (on ssh, the rename below).
    run.publish(store, dir, &manifest)?;
    match store {
        RemoteStore::Ssh(ssh) => ssh.rename(dir, &format!("{}/{name}", spec.job))?,
        RemoteStore::Objects(_) => {}
    }
    tracing::info!(
        job = %spec.job,
        "snapshot {name} ({}) complete on {store:?}: {} bytes stored, {:.2}s",
        opts.structure.as_str(),
        manifest.stats.bytes_stored,
        clock.elapsed().as_secs_f64()
    );
    Ok(manifest)
}

//! The task queue: restores (and later downloads) run beside backups, at most
//! `restore_concurrency` at once, each recorded in the catalog with its
//! progress and result, and cancellable.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hindsight_fs::lock;
use tokio::sync::Notify;

use crate::backup::{Cancel, DATABASES_DIR, HINDSIGHT_DIR};
use crate::catalog::Catalog;
use crate::databases;
use crate::download;
use crate::error::AgentError;
use crate::model::{
    DatabaseRestore, Download, DownloadRequest, FileRestore, RunState, Task, TaskId, TaskKind, TaskRequest,
};
use crate::restore;
use crate::restore_rules;
use crate::shutdown::Shutdown;
use crate::snapshot_file;

/// How often a running task's progress is saved.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The queue and its executor.
pub(crate) struct Tasks {
    catalog: Arc<Catalog>,
    state_dir: PathBuf,
    cache_dir: PathBuf,
    /// The agent's own directories (never restored into).
    own_dirs: Vec<PathBuf>,
    wake: Notify,
    /// Running tasks and their cancel flags.
    active: Mutex<HashMap<TaskId, Arc<Cancel>>>,
    shutdown: Shutdown,
}

impl Tasks {
    /// The queue over `catalog`; tasks a stopped agent left running are failed.
    pub(crate) fn new(
        catalog: Arc<Catalog>,
        state_dir: PathBuf,
        own_dirs: Vec<PathBuf>,
        shutdown: &Shutdown,
    ) -> Arc<Self> {
        match catalog.fail_interrupted_tasks() {
            Ok(0) => {}
            Ok(n) => tracing::warn!("{n} task(s) were running when the agent stopped: marked failed"),
            Err(e) => tracing::error!("tasks: {e}"),
        }
        let cache_dir = state_dir.join(crate::config::CACHE_DIR);
        Arc::new(Tasks {
            catalog,
            state_dir,
            cache_dir,
            own_dirs,
            wake: Notify::new(),
            active: Mutex::new(HashMap::new()),
            shutdown: shutdown.clone(),
        })
    }

    fn active(&self) -> MutexGuard<'_, HashMap<TaskId, Arc<Cancel>>> {
        lock(&self.active)
    }

    /// Checks a database restore and queues it.
    pub(crate) fn queue_database_restore(&self, mut r: DatabaseRestore) -> Result<Task, AgentError> {
        r.accepted_conditions = restore_rules::accepted_conditions(&self.catalog, r.accept_conditions)?;
        let plan = self.database_restore_plan(&r)?;
        // Refused now rather than when it runs: the user is there to read why.
        databases::check_target(&plan.target(), &self.state_dir, &self.catalog.settings()?)?;
        let summary = plan.summary;
        let task = self.catalog.insert_task(TaskKind::RestoreDatabase, &summary, &TaskRequest::RestoreDatabase(r))?;
        self.wake.notify_one();
        Ok(task)
    }

    /// Checks a file restore (the snapshot, its structure, the paths, the
    /// target) and queues it.
    pub(crate) fn queue_file_restore(&self, mut r: FileRestore) -> Result<Task, AgentError> {
        r.accepted_conditions = restore_rules::accepted_conditions(&self.catalog, r.accept_conditions)?;
        let snap = self.catalog.snapshot(r.snapshot)?.snapshot;
        let root = restore::target_root(&r, &crate::destinations::protected_dirs(&self.catalog, &self.own_dirs))?;
        // Opened now so that an archived snapshot or an unreachable destination is said at once.
        let reader = snapshot_file::SnapshotReader::open(&self.catalog, &self.cache_dir, &snap)?;
        drop(reader);
        let summary = format!(
            "{}restore {} from snapshot {} ({}/{} on {}) to {} ({})",
            if r.dry_run { "dry run: " } else { "" },
            r.paths.join(" "),
            r.snapshot,
            snap.job,
            snap.name,
            snap.destination,
            root.display(),
            r.mode
        );
        let task = self.catalog.insert_task(TaskKind::RestoreFiles, &summary, &TaskRequest::RestoreFiles(r))?;
        self.wake.notify_one();
        Ok(task)
    }

    fn restore_files(&self, id: TaskId, r: &FileRestore, cancel: &Cancel) -> Result<(RunState, String), AgentError> {
        let snap = self.catalog.snapshot(r.snapshot)?.snapshot;
        let root = restore::target_root(r, &crate::destinations::protected_dirs(&self.catalog, &self.own_dirs))?;
        let reader = snapshot_file::SnapshotReader::open(&self.catalog, &self.cache_dir, &snap)?;
        let total = snap.bytes;
        let saved = Mutex::new(Instant::now());
        let progress = |n: u64| {
            let mut at = lock(&saved);
            if at.elapsed() >= PROGRESS_EVERY {
                *at = Instant::now();
                let _ = self.catalog.task_progress(id, n, total);
            }
        };
        let rules = restore_rules::Rules::load(&self.catalog)?;
        let out = restore::restore(&reader, r, &root, &rules, cancel, &progress)?;
        let _ = self.catalog.task_progress(id, out.bytes, total);
        if cancel.is_cancelled() {
            return Err(AgentError::conflict("cancelled"));
        }
        let said = out.describe(r.dry_run);
        Ok((if out.errors.is_empty() { RunState::Completed } else { RunState::Partial }, said))
    }

    /// Checks a download (its paths, the snapshot) and queues it.
    pub(crate) fn queue_download(&self, r: DownloadRequest) -> Result<Task, AgentError> {
        download::check_paths(&r.paths)?;
        let snap = self.catalog.snapshot(r.snapshot)?.snapshot;
        drop(snapshot_file::SnapshotReader::open(&self.catalog, &self.cache_dir, &snap)?);
        let summary = format!(
            "download {} from snapshot {} ({}/{} on {})",
            r.paths.join(" "),
            r.snapshot,
            snap.job,
            snap.name,
            snap.destination
        );
        let task = self.catalog.insert_task(TaskKind::Download, &summary, &TaskRequest::Download(r))?;
        self.wake.notify_one();
        Ok(task)
    }

    fn download(&self, id: TaskId, r: &DownloadRequest, cancel: &Cancel) -> Result<(RunState, String), AgentError> {
        let settings = self.catalog.settings()?;
        let snap = self.catalog.snapshot(r.snapshot)?.snapshot;
        let reader = snapshot_file::SnapshotReader::open(&self.catalog, &self.cache_dir, &snap)?;
        let dir = download::dir(&settings, &self.state_dir);
        let name = download::file_name(id.0, &snap.job, &snap.name);
        let (path, size) = download::build(&reader, &r.paths, &dir, &name, cancel)?;
        let account = hindsight_fs::split_job_dir(&snap.job).1.map(str::to_string);
        let record = Download {
            id: 0,
            task: id,
            path: path.to_string_lossy().into_owned(),
            size,
            account: account.clone(),
            snapshot: r.snapshot,
            created: jiff::Timestamp::now(),
            expires: None,
        };
        let d = self.catalog.add_download(&record)?;
        download::enforce_limit(&self.catalog, account.as_deref(), settings.downloads_per_account)?;
        let _ = self.catalog.task_progress(id, size, size);
        Ok((RunState::Completed, format!("download {}: {} ({size} bytes)", d.id, d.path)))
    }

    /// Cancels a queued or running task.
    pub(crate) fn cancel(&self, id: TaskId) -> Result<Task, AgentError> {
        let task = self.catalog.task(id)?;
        match task.state {
            RunState::Queued => self.catalog.end_task(id, RunState::Cancelled, "cancelled before it started")?,
            RunState::Running => {
                if let Some(c) = self.active().get(&id) {
                    c.cancel();
                }
            }
            s => return Err(AgentError::conflict(format!("task {id} has already ended ({s})"))),
        }
        Ok(self.catalog.task(id)?)
    }

    /// Starts queued tasks as slots free up, until the shutdown.
    pub(crate) async fn dispatch_loop(self: Arc<Self>) {
        loop {
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.dispatch()).await {
                Ok(Err(e)) => tracing::error!("task queue: {}", e.message),
                Err(e) => tracing::error!("task queue: {e}"),
                Ok(Ok(())) => {}
            }
            tokio::select! {
                _ = self.shutdown.requested() => {
                    for c in self.active().values() {
                        c.cancel();
                    }
                    return;
                }
                _ = self.wake.notified() => {}
            }
        }
    }

    fn dispatch(self: &Arc<Self>) -> Result<(), AgentError> {
        let limit = self.catalog.settings()?.restore_concurrency.max(1) as usize;
        while self.active().len() < limit {
            let Some(task) = self.catalog.next_queued_task()? else { break };
            if !self.catalog.start_task(task.id)? {
                continue;
            }
            let cancel = Arc::new(Cancel::default());
            self.active().insert(task.id, cancel.clone());
            let me = self.clone();
            self.shutdown.spawn(async move {
                let me2 = me.clone();
                let id = task.id;
                if let Err(e) = tokio::task::spawn_blocking(move || me2.run_to_end(task, &cancel)).await {
                    tracing::error!("task {id}: {e}");
                }
                me.active().remove(&id);
                me.wake.notify_one();
            });
        }
        Ok(())
    }

    /// Runs a started task and records how it ended.
    fn run_to_end(&self, task: Task, cancel: &Cancel) {
        tracing::info!(task = task.id.0, "task started: {}", task.summary);
        let result = match &task.request {
            TaskRequest::RestoreDatabase(r) => {
                self.restore_database(task.id, r, cancel).map(|m| (RunState::Completed, m))
            }
            TaskRequest::RestoreFiles(r) => self.restore_files(task.id, r, cancel),
            TaskRequest::Download(r) => self.download(task.id, r, cancel),
        };
        let (state, message) = match result {
            Ok(done) => done,
            Err(_) if cancel.is_cancelled() => (RunState::Cancelled, "cancelled".to_string()),
            Err(e) => (RunState::Failed, e.message),
        };
        match state {
            RunState::Completed => tracing::info!(task = task.id.0, "task completed: {message}"),
            _ => tracing::warn!(task = task.id.0, "task {state}: {message}"),
        }
        if let Err(e) = self.catalog.end_task(task.id, state, &message) {
            tracing::error!("recording the end of task {}: {e}", task.id);
        }
    }

    /// What a database restore reads and where it writes.
    fn database_restore_plan(&self, r: &DatabaseRestore) -> Result<RestorePlan, AgentError> {
        hindsight_fs::check_name("database server", &r.server).map_err(AgentError::invalid)?;
        let to = r.to.clone().unwrap_or_else(|| r.server.clone());
        let stored = self.catalog.database_server(&to)?;
        let server = databases::open(self.catalog.master_key(), &stored)
            .map_err(|e| AgentError::internal(format!("database server {to}: {e}")))?;
        let name = r.as_name.clone().unwrap_or_else(|| r.database.clone());
        if name.is_empty() || name.contains('\0') {
            return Err(AgentError::invalid(format!("{name:?} is not a database name")));
        }
        let file = databases::file_name(&r.database, databases::dump_extension(server.engine));
        let summary = format!(
            "restore database {} of server {} from snapshot {} into {} on server {to}{}",
            r.database,
            r.server,
            r.snapshot,
            name,
            if r.replace { " (replacing it)" } else { "" }
        );
        // The dump must be there, of the target's engine.
        let path = [HINDSIGHT_DIR, DATABASES_DIR, r.server.as_bytes(), &file];
        let dump =
            snapshot_file::open(&self.catalog, &self.cache_dir, r.snapshot, &path).map_err(|e| match e.kind {
                crate::error::ErrorKind::NotFound => AgentError::not_found(format!(
                    "snapshot {} holds no {} dump of database {} from server {}",
                    r.snapshot, server.engine, r.database, r.server
                )),
                _ => e,
            })?;
        Ok(RestorePlan { server, name, replace: r.replace, dump, summary })
    }

    fn restore_database(&self, id: TaskId, r: &DatabaseRestore, cancel: &Cancel) -> Result<String, AgentError> {
        let mut plan = self.database_restore_plan(r)?;
        let total = plan.dump.size;
        let done = AtomicU64::new(0);
        let saved = Mutex::new(Instant::now());
        let progress = |n: u64| {
            done.store(n, Ordering::Relaxed);
            let mut at = lock(&saved);
            if at.elapsed() >= PROGRESS_EVERY {
                *at = Instant::now();
                let _ = self.catalog.task_progress(id, n, total);
            }
        };
        let _ = self.catalog.task_progress(id, 0, total);
        let settings = self.catalog.settings()?;
        let target = databases::Target { server: &plan.server, name: &plan.name, replace: plan.replace };
        let said = databases::restore(&target, &mut plan.dump, &self.state_dir, &settings, &progress, cancel)?;
        let _ = self.catalog.task_progress(id, done.load(Ordering::Relaxed), total);
        Ok(said)
    }
}

/// A checked database restore.
struct RestorePlan {
    server: crate::model::DatabaseServer,
    name: String,
    replace: bool,
    /// The dump, open on the destination (nothing read yet).
    dump: snapshot_file::SnapshotFile,
    summary: String,
}

impl RestorePlan {
    fn target(&self) -> databases::Target<'_> {
        databases::Target { server: &self.server, name: &self.name, replace: self.replace }
    }
}

//! The run queue: starts queued runs, executes them, tracks their live progress.
//!
//! Runs wait in the catalog (`queued`). The dispatcher starts them by their
//! job's priority group (lower first), then in id order, at most
//! `backup_concurrency` (a setting) at once and never two of the same job at
//! once (the job's lock on each destination also guarantees that across
//! processes). A run backs up to each of its job's destinations in turn, each
//! on a blocking thread; its counters live in memory while it runs and are
//! flushed to the catalog every few seconds and at the end. A run longer than
//! `run_ttl_hours` is cancelled and recorded as failed.
//!
//! When a run ends: a failed or partial run raises an alert; a completed run
//! applies the job's retention (never after a failed or partial one, so that
//! failing backups do not rotate good history away); a run that made a
//! snapshot starts the clock of `after:` schedules waiting for its job.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hindsight_fs::Destination;
use hindsight_fs::lock;
use hindsight_fs::mount::Refresher;
use hindsight_fs::remote::RemoteStore;
use hindsight_fs::{Manifest, Structure};
use tokio::sync::Notify;

use crate::accounts;
use crate::backup::{self, ArchiveOptions, BackupError, BackupSpec, Cancel, Counters, Excludes, FileError, Progress};
use crate::catalog::{Catalog, NewAlert, RunUpdate};
use crate::databases;
use crate::deleter::Deleter;
use crate::destinations;
use crate::error::AgentError;
use crate::hooks;
use crate::model::{
    AlertKind, AlertLevel, DestinationRecord, HookKind, HookResult, Job, JobKind, Run, RunDestination, RunId, RunState,
    Trigger,
};
use crate::notify::{self, Ping, ping};
use crate::schedule::Clock;
use crate::shutdown::Shutdown;

/// How often live progress is written to the catalog.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// The pause before a destination that failed for a reason that may pass
/// (a timeout, a refused connection) is tried again, once, within the run:
/// long enough for a service restart or a network blip to end, short
/// enough that a stalled server still fails the run within a minute.
const RETRY_AFTER: Duration = Duration::from_secs(15);

/// Sleeps `pause` in short steps; false as soon as `cancel` is set.
fn sleep_unless_cancelled(cancel: &Cancel, pause: Duration) -> bool {
    let step = Duration::from_millis(200);
    let mut slept = Duration::ZERO;
    while slept < pause {
        if cancel.is_cancelled() {
            return false;
        }
        std::thread::sleep(step);
        slept += step;
    }
    !cancel.is_cancelled()
}

/// A run being executed.
struct ActiveRun {
    job: String,
    cancel: Arc<Cancel>,
    /// Progress of the destination being written.
    current: Mutex<Arc<Progress>>,
    /// Counters and errors of destinations already done.
    done: Mutex<(Counters, Vec<FileError>)>,
    destinations: Mutex<Vec<RunDestination>>,
    /// The hooks run so far.
    hooks: Mutex<Vec<HookResult>>,
    cancelled_by_shutdown: AtomicBool,
    /// Cancelled because it ran longer than `run_ttl_hours`.
    expired: AtomicBool,
    /// When it started, by the runner's clock.
    started: jiff::Timestamp,
}

impl ActiveRun {
    fn totals(&self) -> (Counters, Vec<FileError>, Option<String>) {
        let current = lock(&self.current).clone();
        let (done, mut errors) = lock(&self.done).clone();
        let mut sum = done;
        sum += current.counters();
        errors.extend(current.errors());
        errors.truncate(backup::MAX_RECORDED_ERRORS);
        (sum, errors, current.current())
    }

    fn update(&self, state: RunState, message: Option<String>) -> RunUpdate {
        let (stats, errors, _) = self.totals();
        let (destinations, hooks) = (lock(&self.destinations).clone(), lock(&self.hooks).clone());
        RunUpdate { state, message, stats, destinations, errors, hooks }
    }
}

/// The run queue and its executor.
pub struct Runner {
    catalog: Arc<Catalog>,
    active: Mutex<HashMap<RunId, Arc<ActiveRun>>>,
    wake: Notify,
    idle: Notify,
    /// The agent's shutdown: runs are its tasks, and none starts once it began.
    shutdown: Shutdown,
    /// Runs at once given on the command line, over the `backup_concurrency` setting.
    concurrency: Option<usize>,
    threads: usize,
    /// Directories of the agent itself (state dir, mountpoint), never backed up.
    own_dirs: Vec<PathBuf>,
    /// Local cache of remote destinations (indexes, journals), one directory per destination id.
    cache_dir: PathBuf,
    /// The agent's state directory (database clients' credentials files go in its `tmp/`).
    state_dir: PathBuf,
    clock: Arc<dyn Clock>,
    deleter: Deleter,
    /// The agent's snapshot filesystem, told of every snapshot a run commits
    /// or retention deletes before the run is reported ended.
    mount: std::sync::OnceLock<Refresher>,
}

impl Runner {
    /// A runner over `catalog` and the state directory `state_dir` (remote
    /// destinations' caches in its `cache/`); `concurrency`, when given, overrides the
    /// `backup_concurrency` setting. It owns the background deleter, which
    /// slows down while runs are active.
    pub fn new(
        catalog: Arc<Catalog>,
        concurrency: Option<usize>,
        own_dirs: Vec<PathBuf>,
        state_dir: PathBuf,
        clock: Arc<dyn Clock>,
        shutdown: &Shutdown,
    ) -> Arc<Self> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
        let cache_dir = state_dir.join(crate::config::CACHE_DIR);
        Arc::new_cyclic(|me: &Weak<Runner>| {
            let me = me.clone();
            let busy = Arc::new(move || me.upgrade().is_some_and(|r| !r.active().is_empty()));
            Runner {
                deleter: Deleter::start(catalog.clone(), busy, cache_dir.clone(), shutdown),
                catalog,
                active: Mutex::new(HashMap::new()),
                wake: Notify::new(),
                idle: Notify::new(),
                shutdown: shutdown.clone(),
                concurrency: concurrency.map(|c| c.max(1)),
                threads,
                own_dirs,
                cache_dir,
                state_dir,
                clock,
                mount: std::sync::OnceLock::new(),
            }
        })
    }

    /// Keeps the agent's mount up to date with what runs and deletions change.
    pub fn attach_mount(&self, mount: Refresher) {
        let _ = self.mount.set(mount);
    }

    /// Brings the mount up to date after snapshots of `destinations` were
    /// committed or deleted (remote ones are listed again at once). Blocks.
    pub fn refresh_mount(&self, destinations: &[String]) {
        if let Some(mount) = self.mount.get() {
            mount.refresh(destinations);
        }
    }

    /// Looks at the queue again (a setting changed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The background deleter.
    pub fn deleter(&self) -> &Deleter {
        &self.deleter
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Arc<ActiveRun>>> {
        lock(&self.active)
    }

    /// Queues a manual run of `job`; returns the run.
    pub fn queue(&self, job: &Job) -> Result<Run, AgentError> {
        self.check_can_queue(job)?;
        let id = self.catalog.queue_run(job.id, &job.name, Trigger::Manual, &[crate::retention::MANUAL.to_string()])?;
        self.wake.notify_one();
        Ok(self.catalog.run(id)?)
    }

    /// Queues a run of `job` for the schedules `tags`, or adds them to the
    /// job's run that is still queued; returns the run's id.
    pub fn queue_scheduled(&self, job: &Job, tags: &[String]) -> Result<RunId, AgentError> {
        self.check_can_queue(job)?;
        for r in self.catalog.runs_in_state(RunState::Queued)?.iter().filter(|r| r.job == job.name) {
            if self.catalog.add_run_tags(r.id, tags)? {
                return Ok(r.id);
            }
        }
        let id = self.catalog.queue_run(job.id, &job.name, Trigger::Schedule, tags)?;
        self.wake.notify_one();
        Ok(id)
    }

    fn check_can_queue(&self, job: &Job) -> Result<(), AgentError> {
        if self.shutdown.is_requested() {
            return Err(AgentError::conflict("the agent is shutting down"));
        }
        if job.disabled {
            return Err(AgentError::conflict(format!("job {} is disabled; enable it first", job.name)));
        }
        Ok(())
    }

    /// A run, with live progress if it is running.
    pub fn run(&self, id: RunId) -> Result<Run, AgentError> {
        let mut run = self.catalog.run(id)?;
        let active = self.active().get(&id).cloned();
        if let Some(a) = active
            && run.state == RunState::Running
        {
            let (stats, errors, current) = a.totals();
            run.stats = stats;
            run.errors = errors;
            run.current_path = current;
            run.destinations = lock(&a.destinations).clone();
        }
        Ok(run)
    }

    /// A run, once it has ended or `timeout` has passed, whichever comes first
    /// (lets clients follow a run without polling fast).
    pub async fn wait(self: &Arc<Self>, id: RunId, timeout: Duration) -> Result<Run, AgentError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so an end between the two is not missed.
            let ended = self.idle.notified();
            let me = self.clone();
            let run = tokio::task::spawn_blocking(move || me.run(id))
                .await
                .map_err(|e| AgentError::internal(format!("reading run {id}: {e}")))??;
            if run.state.is_final() || tokio::time::Instant::now() >= deadline {
                return Ok(run);
            }
            let _ = tokio::time::timeout_at(deadline, ended).await;
        }
    }

    /// Cancels a queued or running run.
    pub fn cancel(&self, id: RunId) -> Result<Run, AgentError> {
        // Bound first: a guard in an `if let` scrutinee lives through the body,
        // and `run` locks `active` again.
        let active = self.active().get(&id).cloned();
        if let Some(a) = active {
            a.cancel.cancel();
            return self.run(id);
        }
        if self.catalog.cancel_queued_run(id)? {
            return self.run(id);
        }
        let run = self.catalog.run(id)?;
        Err(AgentError::conflict(format!("run {id} has already ended ({})", run.state.as_str())))
    }

    /// The dispatcher: starts queued runs until shutdown.
    pub async fn dispatch_loop(self: Arc<Self>) {
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        loop {
            if self.shutdown.is_requested() {
                return;
            }
            // Catalog work on blocking threads: a slow statement must not hold
            // the runtime's workers, which the API and the scheduler share.
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.dispatch()).await {
                Ok(Err(e)) => tracing::error!("run queue: {}", e.message),
                Err(e) => tracing::error!("run queue: {e}"),
                Ok(Ok(())) => {}
            }
            tokio::select! {
                _ = self.shutdown.requested() => return,
                _ = self.wake.notified() => {}
                _ = flush.tick() => {
                    let me = self.clone();
                    if let Err(e) = tokio::task::spawn_blocking(move || me.flush_progress()).await {
                        tracing::error!("saving progress: {e}");
                    }
                }
            }
        }
    }

    fn flush_progress(&self) {
        let active: Vec<(RunId, Arc<ActiveRun>)> = self.active().iter().map(|(k, v)| (*k, v.clone())).collect();
        let ttl = self.catalog.settings().map(|s| s.run_ttl_hours).unwrap_or(0);
        let now = self.clock.now();
        for (id, a) in active {
            if ttl > 0 && now.duration_since(a.started) > jiff::SignedDuration::from_hours(i64::from(ttl)) {
                if !a.expired.swap(true, Ordering::Relaxed) {
                    tracing::warn!(run = id.0, "run {id} has run for more than run_ttl_hours ({ttl} h): stopping it");
                }
                a.cancel.cancel();
            }
            if let Err(e) = self.catalog.update_run(id, &a.update(RunState::Running, None)) {
                tracing::warn!("saving progress of run {id}: {e}");
            }
        }
    }

    fn dispatch(self: &Arc<Self>) -> Result<(), AgentError> {
        let concurrency = match self.concurrency {
            Some(c) => c,
            None => self.catalog.settings()?.backup_concurrency.max(1) as usize,
        };
        for run in self.catalog.queued_runs()? {
            let mut active = self.active();
            if active.len() >= concurrency {
                break;
            }
            if active.values().any(|a| a.job == run.job) {
                continue;
            }
            if !self.catalog.start_run(run.id)? {
                continue;
            }
            let a = Arc::new(ActiveRun {
                job: run.job.clone(),
                cancel: Arc::new(Cancel::default()),
                current: Mutex::new(Arc::new(Progress::default())),
                done: Mutex::new(Default::default()),
                destinations: Mutex::new(Vec::new()),
                hooks: Mutex::new(Vec::new()),
                cancelled_by_shutdown: AtomicBool::new(false),
                expired: AtomicBool::new(false),
                started: self.clock.now(),
            });
            active.insert(run.id, a.clone());
            drop(active);
            // Started as the shutdown began: it stops at once, like those it cancelled.
            if self.shutdown.is_requested() {
                a.cancelled_by_shutdown.store(true, Ordering::Relaxed);
                a.cancel.cancel();
            }
            let me = self.clone();
            self.shutdown.spawn(async move {
                // The whole run on one blocking thread: the backup, and every
                // catalog statement before and after it.
                let me2 = me.clone();
                let id = run.id;
                if let Err(e) = tokio::task::spawn_blocking(move || me2.run_to_end(run, &a)).await {
                    tracing::error!("run {id}: {e}");
                }
                me.active().remove(&id);
                me.idle.notify_waiters();
                me.wake.notify_one();
            });
        }
        Ok(())
    }

    /// Runs `run` (started) to its end and records it: the backup, then
    /// alerts, retention and the mount, then the end in the catalog.
    fn run_to_end(&self, run: Run, a: &Arc<ActiveRun>) {
        // Read once: the pings and the backup see the job as it was at the start.
        let job = self.catalog.job(&run.job);
        let ping_url = job.as_ref().ok().and_then(|j| j.ping_url.clone());
        let runtime = tokio::runtime::Handle::try_current().ok();
        let start_ping = match (&ping_url, &runtime) {
            (Some(url), Some(rt)) => Some(ping::send(rt, url, Ping::Start, String::new(), None)),
            _ => None,
        };
        let (mut state, message) = match job {
            Ok(job) => self.execute(&run, &job, a),
            Err(e) => (RunState::Failed, Some(e.to_string())),
        };
        let mut update = a.update(state, message);
        if a.cancelled_by_shutdown.load(Ordering::Relaxed) && state == RunState::Cancelled {
            update.message = Some("the agent shut down during this run; the next run resumes it".into());
        }
        if a.expired.load(Ordering::Relaxed) && state == RunState::Cancelled {
            state = RunState::Failed;
            update.state = state;
            let ttl = self.catalog.settings().map(|s| s.run_ttl_hours).unwrap_or(0);
            update.message = Some(format!("stopped after running longer than run_ttl_hours ({ttl} h)"));
        }
        // Before the end is recorded: whoever sees the run ended also sees its
        // retention applied and its alert raised.
        let failed: Vec<&RunDestination> = update.destinations.iter().filter(|d| d.state == RunState::Failed).collect();
        let passing = !failed.is_empty() && failed.iter().all(|d| d.temporary);
        self.after_end(run.id, &run.job, state, update.message.clone(), passing, &update.destinations);
        // Last: the mount shows the new snapshot, and not those retention
        // deleted, before anyone hears that the run ended.
        let touched: Vec<String> = update.destinations.iter().map(|d| d.destination.clone()).collect();
        self.refresh_mount(&touched);
        if let Err(e) = self.catalog.update_run(run.id, &update) {
            tracing::error!("recording the end of run {}: {e}", run.id);
        }
        if let (Some(url), Some(rt)) = (&ping_url, &runtime) {
            let ping = if state == RunState::Completed { Ping::Success } else { Ping::Fail };
            ping::send(rt, url, ping, ping::summary(run.id, &run.job, &update), start_ping);
        }
        let why = update.message.as_deref().unwrap_or("");
        match state {
            RunState::Failed => tracing::error!(run = run.id.0, job = %run.job, "run ended: failed: {why}"),
            RunState::Partial => tracing::warn!(run = run.id.0, job = %run.job, "run ended: partial: {why}"),
            _ => tracing::info!(run = run.id.0, job = %run.job, "run ended: {}", state.as_str()),
        }
    }

    /// What follows the end of a run: alerts (saying whether its failures
    /// were all `temporary` or need attention), retention (except on the
    /// destinations where its snapshot is `suspicious`), `after:` schedules;
    /// for an accounts job, retention per account (of those completed
    /// everywhere), then orphans.
    fn after_end(
        &self,
        run_id: RunId,
        job_name: &str,
        state: RunState,
        message: Option<String>,
        temporary: bool,
        outcomes: &[RunDestination],
    ) {
        let verdict = if temporary {
            "temporary: the destinations that failed could not be reached, also on a second attempt; the next run tries again"
        } else {
            "needs attention"
        };
        let why = format!("{} [{verdict}]", message.unwrap_or_default());
        let alert = match state {
            RunState::Failed => Some((
                AlertLevel::Critical,
                AlertKind::RunFailed,
                format!("run {run_id} of job {job_name} failed: {why}"),
            )),
            RunState::Partial => Some((
                AlertLevel::Warning,
                AlertKind::RunPartial,
                format!("run {run_id} of job {job_name} was partial: {why}"),
            )),
            _ => None,
        };
        if let Some((level, kind, text)) = alert {
            notify::raise(&self.catalog, NewAlert::new(level, kind, job_name, text).job(job_name).run(run_id));
        }
        // An account's alerts are about its job directory: forgetting the
        // account finds them by it.
        for o in outcomes
            .iter()
            .filter(|o| o.account.is_some() && !matches!(o.state, RunState::Completed | RunState::Skipped))
        {
            let dir = accounts::job_dir(job_name, o.account.as_deref().unwrap_or_default());
            let (level, kind) = match o.state {
                RunState::Partial => (AlertLevel::Warning, AlertKind::RunPartial),
                _ => (AlertLevel::Critical, AlertKind::RunFailed),
            };
            let place =
                if o.destination.is_empty() { String::new() } else { format!(" on destination {}", o.destination) };
            let text = format!(
                "run {run_id} of job {job_name}: account {}{place}: {}",
                o.account.as_deref().unwrap_or_default(),
                o.message.as_deref().unwrap_or(o.state.as_str())
            );
            notify::raise(&self.catalog, NewAlert::new(level, kind, &dir, text).job(&dir).run(run_id));
        }
        let suspicious: Vec<(&str, String, &str)> = outcomes
            .iter()
            .filter_map(|d| {
                let dir = match &d.account {
                    Some(a) => accounts::job_dir(job_name, a),
                    None => job_name.to_string(),
                };
                d.suspicious.as_deref().map(|why| (d.destination.as_str(), dir, why))
            })
            .collect();
        for (dest, dir, why) in &suspicious {
            let text = format!(
                "run {run_id} of job {dir} on destination {dest} looks wrong: {why}; retention was skipped there, older snapshots are kept"
            );
            let alert = NewAlert::new(AlertLevel::Warning, AlertKind::SuspiciousRun, dir, text);
            notify::raise(&self.catalog, alert.job(dir).destination(dest).run(run_id));
        }
        if !matches!(state, RunState::Completed | RunState::Partial) {
            return;
        }
        let now = self.clock.now();
        if let Err(e) = crate::jobs::after_run(&self.catalog, job_name, now) {
            tracing::error!("after: schedules of {job_name}: {}", e.message);
        }
        let Ok(job) = self.catalog.job(job_name) else { return };
        let skip = |dir: &str| -> Vec<&str> { suspicious.iter().filter(|s| s.1 == dir).map(|s| s.0).collect() };
        if job.kind == JobKind::Accounts {
            let mut names: Vec<&str> = outcomes.iter().filter_map(|o| o.account.as_deref()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let mine = outcomes.iter().filter(|o| o.account.as_deref() == Some(name));
                if mine.clone().all(|o| matches!(o.state, RunState::Completed | RunState::Skipped)) {
                    let dir = accounts::job_dir(job_name, name);
                    crate::retention::apply(&self.catalog, &self.deleter, &job, &dir, now, &skip(&dir));
                }
            }
            if let Err(e) = accounts::sweep(&self.catalog, self, now, Some(run_id)) {
                tracing::error!("orphan accounts: {}", e.message);
            }
        } else if state == RunState::Completed {
            crate::retention::apply(&self.catalog, &self.deleter, &job, job_name, now, &skip(job_name));
        }
    }

    /// Backs the job up to each of its destinations between its hooks;
    /// returns the run's final state.
    fn execute(&self, run: &Run, job: &Job, a: &Arc<ActiveRun>) -> (RunState, Option<String>) {
        tracing::info!(run = run.id.0, job = %job.name, "run started");
        let context = hooks::context(run, job);
        let before = self.hook(run, job, a, HookKind::Before, &context);
        let (mut state, mut message) = match before {
            Some(r) if !r.ok => (RunState::Failed, Some(format!("{}; nothing was written", hooks::describe(&r)))),
            _ => self.back_up(run, job, a),
        };
        let ended = |state: RunState, message: &Option<String>| {
            let (stats, _, _) = a.totals();
            let mut env = context.clone();
            env.extend(hooks::outcome(state, message.as_deref(), &stats, &lock(&a.destinations)));
            env
        };
        if matches!(state, RunState::Completed | RunState::Partial)
            && let Some(r) = self.hook(run, job, a, HookKind::After, &ended(state, &message))
            && !r.ok
        {
            state = RunState::Partial;
            let why = hooks::describe(&r);
            message = Some(match message {
                Some(m) => format!("{m}; {why}"),
                None => why,
            });
        }
        if matches!(state, RunState::Failed | RunState::Partial) {
            self.hook(run, job, a, HookKind::OnError, &ended(state, &message));
        }
        self.hook(run, job, a, HookKind::Finally, &ended(state, &message));
        (state, message)
    }

    /// Runs one hook of the job, if it has it, and records how it ended.
    fn hook(
        &self,
        run: &Run,
        job: &Job,
        a: &ActiveRun,
        kind: HookKind,
        env: &[(String, String)],
    ) -> Option<HookResult> {
        let command = job.hooks.command(kind)?;
        let timeout = Duration::from_secs(u64::from(job.hooks.timeout));
        let r = hooks::run(kind, command, timeout, env);
        let (id, name) = (run.id.0, &job.name);
        for line in r.output.lines() {
            tracing::info!(run = id, job = %name, "{kind} hook: {line}");
        }
        if r.ok {
            tracing::info!(run = id, job = %name, "{kind} hook ended in {} ms", r.millis);
        } else {
            tracing::warn!(run = id, job = %name, "{}", hooks::describe(&r));
        }
        lock(&a.hooks).push(r.clone());
        Some(r)
    }

    /// Backs the job up to each of its destinations; returns the run's state.
    fn back_up(&self, run: &Run, job: &Job, a: &Arc<ActiveRun>) -> (RunState, Option<String>) {
        if job.kind == JobKind::Accounts {
            return self.back_up_accounts(run, job, a);
        }
        let plan = self.plan_dumps(job);
        let spec = match self.spec(run, job, job.name.clone(), job.sources.iter().map(PathBuf::from).collect(), plan) {
            Ok(s) => s,
            Err(e) => return (RunState::Failed, Some(e)),
        };
        let outcomes = self.back_up_to_each(run, job, &spec, None, a);
        summarize(&outcomes)
    }

    /// What one snapshot of `job` in `dir` backs up.
    fn spec(
        &self,
        run: &Run,
        job: &Job,
        dir: String,
        sources: Vec<PathBuf>,
        plan: databases::Plan,
    ) -> Result<BackupSpec, String> {
        Ok(BackupSpec {
            job: dir,
            sources,
            excludes: Excludes::new(&job.excludes)?,
            one_file_system: job.one_file_system,
            retry_failed: job.retry_failed,
            threads: self.threads,
            skip_dirs: self.skip_dirs(),
            tags: run.tags.to_vec(),
            structure: job.structure,
            dumps: plan.dumps,
            dump_problems: plan.problems,
        })
    }

    /// Backs `spec` up to each of the job's destinations, in order; the
    /// outcomes are the run's (recorded as they come).
    fn back_up_to_each(
        &self,
        run: &Run,
        job: &Job,
        spec: &BackupSpec,
        account: Option<&str>,
        a: &Arc<ActiveRun>,
    ) -> Vec<RunDestination> {
        let mut outcomes = Vec::new();
        for dest_name in &job.destinations {
            let mut outcome = if a.cancel.is_cancelled() {
                RunDestination {
                    destination: dest_name.clone(),
                    account: None,
                    state: RunState::Cancelled,
                    snapshot: None,
                    message: Some("cancelled".into()),
                    suspicious: None,
                    temporary: false,
                }
            } else {
                let errors_before = lock(&a.done).1.len();
                let outcome = self.backup_to(run.id, spec, dest_name, a);
                if let Some(account) = account {
                    for e in lock(&a.done).1.iter_mut().skip(errors_before) {
                        e.account = Some(account.to_string());
                    }
                }
                outcome
            };
            outcome.account = account.map(str::to_string);
            lock(&a.destinations).push(outcome.clone());
            outcomes.push(outcome);
        }
        outcomes
    }

    /// An accounts job: one snapshot per account on each destination, in
    /// the account's job directory, accounts in priority order. The run's
    /// message counts accounts and never names one (a forgotten account's
    /// name must not stay in run records); each outcome names its account.
    fn back_up_accounts(&self, run: &Run, job: &Job, a: &Arc<ActiveRun>) -> (RunState, Option<String>) {
        let planned = self.catalog.settings().map_err(AgentError::from).and_then(|settings| {
            accounts::plan_run(&self.catalog, job, self.catalog.master_key(), &self.state_dir, &settings)
        });
        let accounts::RunPlan { accounts: plans, missing } = match planned {
            Ok(p) => p,
            Err(e) => return (RunState::Failed, Some(format!("cannot list the accounts: {}", e.message))),
        };
        let mut outcomes = Vec::new();
        for (user, why) in missing {
            let outcome = RunDestination {
                destination: String::new(),
                account: (!user.is_empty()).then_some(user),
                state: RunState::Failed,
                snapshot: None,
                message: Some(why),
                suspicious: None,
                temporary: false,
            };
            lock(&a.destinations).push(outcome.clone());
            outcomes.push(outcome);
        }
        let total = plans.len();
        for p in plans {
            tracing::info!(run = run.id.0, job = %job.name, "account {}: backing up {} path(s), {} dump(s)", p.name, p.sources.len(), p.plan.dumps.len());
            let mut spec = match self.spec(run, job, p.dir.clone(), p.sources, p.plan) {
                Ok(s) => s,
                Err(e) => return (RunState::Failed, Some(e)),
            };
            spec.skip_dirs.extend(p.skip_dirs);
            outcomes.extend(self.back_up_to_each(run, job, &spec, Some(&p.name), a));
        }
        let (state, _) = summarize(&outcomes);
        let failed = outcomes.iter().filter(|o| o.state != RunState::Completed && o.state != RunState::Skipped);
        let mut bad: Vec<&str> = failed.map(|o| o.account.as_deref().unwrap_or("")).collect();
        bad.dedup();
        let message = match (total, bad.len()) {
            (0, 0) => Some("no account to back up".to_string()),
            (_, 0) => None,
            (n, k) => Some(format!(
                "{k} of {n} account(s) not completed on every destination: see `hindsight run show {}`",
                run.id
            )),
        };
        let state = if total == 0 && outcomes.is_empty() { RunState::Completed } else { state };
        (state, message)
    }

    /// The job's database dumps for this run (listing each server's databases).
    fn plan_dumps(&self, job: &Job) -> databases::Plan {
        if job.databases.is_empty() {
            return databases::Plan::default();
        }
        let (servers, settings) = match (self.catalog.database_servers(), self.catalog.settings()) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(e), _) | (_, Err(e)) => {
                let mut p = databases::Plan::default();
                p.problems.push((b"/.hindsight/databases".to_vec(), format!("database servers: {e}")));
                return p;
            }
        };
        databases::plan(&job.databases, &servers, self.catalog.master_key(), &self.state_dir, &settings)
    }

    /// Destination roots and the agent's own directories, as absolute paths.
    fn skip_dirs(&self) -> Vec<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        destinations::protected_dirs(&self.catalog, &self.own_dirs)
            .into_iter()
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .collect()
    }

    /// The agent's own directories (state, mountpoint).
    pub(crate) fn own_dirs(&self) -> &[PathBuf] {
        &self.own_dirs
    }

    fn backup_to(&self, run_id: RunId, spec: &BackupSpec, dest_name: &str, a: &Arc<ActiveRun>) -> RunDestination {
        let outcome = |state, snapshot: Option<String>, message: Option<String>| RunDestination {
            destination: dest_name.to_string(),
            account: None,
            state,
            snapshot,
            message,
            suspicious: None,
            temporary: false,
        };
        let dest = match self.catalog.destination(dest_name) {
            Ok(d) => d,
            Err(e) => return outcome(RunState::Failed, None, Some(e.to_string())),
        };
        if dest.disabled {
            return outcome(RunState::Skipped, None, Some(format!("destination {dest_name} is disabled")));
        }
        if dest.readonly {
            return outcome(RunState::Failed, None, Some(format!("destination {dest_name} is read-only")));
        }
        let archive = self.archive_options(spec.structure);
        let target = match destinations::open(self.catalog.master_key(), &dest) {
            Ok(t) => t,
            Err(e) => return outcome(RunState::Failed, None, Some(e.message)),
        };
        if let Some(usage) = target.disk_usage()
            && let Some(refused) = self.over_disk_limit(&dest, usage.map_err(|e| e.to_string()))
        {
            return outcome(RunState::Failed, None, Some(refused));
        }
        // The local cache of a remote destination's indexes and locks.
        let cache = match &target {
            Destination::Local(_) => PathBuf::new(),
            Destination::Remote(_) => match dest.cache_dir(&self.cache_dir) {
                Ok(c) => c,
                Err(e) => return outcome(RunState::Failed, None, Some(e)),
            },
        };
        let (spec, cancel) = (spec.clone(), a.cancel.clone());
        // One engine per structure and kind of destination.
        self.run_backup(run_id, a, &dest, move |progress| match (spec.structure, &target) {
            (Structure::Incremental, Destination::Local(root)) => {
                backup::run_incremental(root, &spec, progress, &cancel)
            }
            (Structure::Archived | Structure::Compressed, Destination::Local(root)) => {
                backup::run_archive(root, &spec, archive, progress, &cancel)
            }
            (Structure::Archived | Structure::Compressed, Destination::Remote(store)) => {
                backup::run_remote_archive(store, &cache, &spec, archive, progress, &cancel)
            }
            // ssh destinations hold hardlink trees; the others, content-addressed blobs.
            (Structure::Incremental, Destination::Remote(store @ RemoteStore::Ssh(_))) => {
                backup::run_ssh(store, &cache, &spec, progress, &cancel)
            }
            (Structure::Incremental, Destination::Remote(store @ RemoteStore::Objects(_))) => {
                backup::run_remote(store, &cache, &spec, progress, &cancel)
            }
        })
    }

    /// How archives of `structure` are compressed, from the settings.
    fn archive_options(&self, structure: Structure) -> ArchiveOptions {
        let settings = self.catalog.settings().ok();
        ArchiveOptions {
            structure,
            level: settings.as_ref().map_or(6, |s| s.compress_level as i32),
            threads: match settings.as_ref().map_or(0, |s| s.compress_threads as usize) {
                0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
                n => n,
            },
        }
    }

    /// Records a destination's measured disk usage; the reason to write nothing
    /// when it is at or above its disk limit (an alert is raised) or cannot be measured.
    fn over_disk_limit(
        &self,
        dest: &DestinationRecord,
        usage: Result<hindsight_fs::DiskUsage, String>,
    ) -> Option<String> {
        let u = match usage {
            Ok(u) => u,
            Err(e) => return Some(format!("destination {}: {e}", dest.name)),
        };
        let info = crate::model::DiskUsageInfo {
            usage: u.usage,
            free: u.free,
            total: u.total,
            updated: jiff::Timestamp::now(),
        };
        let _ = self.catalog.set_disk_usage(&dest.id, &info);
        let full = destinations::over_disk_limit(dest, &info)?;
        let alert = NewAlert::new(AlertLevel::Warning, AlertKind::DiskLimit, &dest.name, full.clone());
        notify::raise(&self.catalog, alert.destination(&dest.name));
        Some(format!("{full}; nothing was written"))
    }

    /// Runs one destination's backup with live progress, once more after a
    /// pause when it fails for a reason that may pass (the destination timed
    /// out or could not be reached), folds the counters of the attempt that
    /// counts into the run's, and records the snapshot it made.
    fn run_backup(
        &self,
        run_id: RunId,
        a: &Arc<ActiveRun>,
        dest: &DestinationRecord,
        backup: impl Fn(&Progress) -> Result<Manifest, BackupError>,
    ) -> RunDestination {
        let outcome = |state, snapshot: Option<String>, message: Option<String>| RunDestination {
            destination: dest.name.clone(),
            account: None,
            state,
            snapshot,
            message,
            suspicious: None,
            temporary: false,
        };
        let mut retried: Option<String> = None;
        let (progress, result) = loop {
            let progress = Arc::new(Progress::default());
            *lock(&a.current) = progress.clone();
            // A panic is one failed destination, not a run that never ends.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| backup(&progress)));
            match &result {
                Ok(Err(e)) if e.is_temporary() && retried.is_none() && !a.cancel.is_cancelled() => {
                    tracing::warn!(
                        run = run_id.0,
                        destination = %dest.name,
                        "temporary failure: {e}; trying again in {}s",
                        RETRY_AFTER.as_secs()
                    );
                    retried = Some(e.to_string());
                    // The failed attempt's counters and file errors are not the run's:
                    // the attempt that follows scans everything again.
                    if !sleep_unless_cancelled(&a.cancel, RETRY_AFTER) {
                        break (progress, Ok(Err(BackupError::Cancelled)));
                    }
                }
                _ => break (progress, result),
            }
        };
        // Fold this destination's counters into the run's.
        {
            let (mut done, mut cur) = (lock(&a.done), lock(&a.current));
            let c = progress.counters();
            done.0 += c;
            done.1.extend(progress.errors());
            *cur = Arc::new(Progress::default());
        }
        match result {
            Ok(Ok(manifest)) => {
                // Against the previous snapshot, before this one is recorded beside it.
                let suspicious = self.suspicion(dest, &manifest);
                let snap = destinations::snapshot_from_manifest(dest, &manifest, root_path(dest).as_path());
                if let Err(e) = self.catalog.upsert_snapshot(&dest.id, &snap, Some(run_id)) {
                    tracing::error!("recording snapshot {}: {e}", manifest.name);
                }
                let state = if manifest.partial { RunState::Partial } else { RunState::Completed };
                let partial = manifest
                    .partial
                    .then(|| format!("{} file(s) could not be backed up", progress.counters().files_failed));
                let retried =
                    retried.map(|why| format!("completed on a second attempt after a temporary failure ({why})"));
                let msg = match (partial, retried) {
                    (Some(p), Some(r)) => Some(format!("{p}; {r}")),
                    (p, r) => p.or(r),
                };
                RunDestination { suspicious, ..outcome(state, Some(manifest.name), msg) }
            }
            Ok(Err(BackupError::Cancelled)) => outcome(RunState::Cancelled, None, Some("cancelled".into())),
            Ok(Err(e)) if e.is_temporary() => {
                // Both failures, when it was tried again: the first says what went wrong mid-run.
                let msg = match &retried {
                    Some(first) => {
                        format!(
                            "{first}; tried again {}s later: {e} (temporary: the next run tries again)",
                            RETRY_AFTER.as_secs()
                        )
                    }
                    None => format!("{e} (temporary: the next run tries again)"),
                };
                RunDestination { temporary: true, ..outcome(RunState::Failed, None, Some(msg)) }
            }
            Ok(Err(e)) => outcome(RunState::Failed, None, Some(e.to_string())),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                outcome(RunState::Failed, None, Some(format!("the backup stopped on an internal error: {why}")))
            }
        }
    }

    /// Why the snapshot of `manifest` looks like a bad run next to the job's
    /// previous snapshot on `dest` (the newest in completion order), if it does.
    fn suspicion(&self, dest: &DestinationRecord, manifest: &Manifest) -> Option<String> {
        let settings = self.catalog.settings().ok()?;
        let previous = match self.catalog.job_snapshots(&dest.id, &manifest.job) {
            Ok(snaps) => snaps
                .into_iter()
                .map(|r| r.snapshot)
                .filter(|s| s.name != manifest.name)
                .max_by_key(|s| (s.sequence, s.finished, s.id)),
            Err(e) => {
                tracing::warn!("comparing snapshot {} with the previous one: {e}", manifest.name);
                None
            }
        };
        crate::suspicion::suspicion(&manifest.stats, previous.as_ref(), &settings)
    }

    /// At shutdown (once it was requested): cancels the running runs. The
    /// shutdown's tracker then waits for them to record their end.
    pub fn cancel_runs(&self) {
        for a in self.active().values() {
            a.cancelled_by_shutdown.store(true, Ordering::Relaxed);
            a.cancel.cancel();
        }
    }

    /// Runs queued or running now.
    pub fn active_runs(&self) -> Result<Vec<Run>, AgentError> {
        let mut out = Vec::new();
        for st in [RunState::Running, RunState::Queued] {
            for r in self.catalog.runs_in_state(st)? {
                out.push(self.run(r.id)?);
            }
        }
        Ok(out)
    }
}

fn root_path(d: &crate::model::DestinationRecord) -> PathBuf {
    destinations::local_root(d).map(|r| r.path().to_path_buf()).unwrap_or_default()
}

/// The run's state from its destinations' outcomes.
fn summarize(outcomes: &[RunDestination]) -> (RunState, Option<String>) {
    let messages: Vec<String> =
        outcomes.iter().filter_map(|o| o.message.as_ref().map(|m| format!("{}: {m}", o.destination))).collect();
    let message = (!messages.is_empty()).then(|| messages.join("; "));
    let count = |s: RunState| outcomes.iter().filter(|o| o.state == s).count();
    let made = count(RunState::Completed) + count(RunState::Partial);
    let skipped = count(RunState::Skipped);
    let state = if count(RunState::Cancelled) > 0 {
        RunState::Cancelled
    } else if made == 0 {
        RunState::Failed
    } else if count(RunState::Completed) + skipped == outcomes.len() {
        RunState::Completed
    } else {
        RunState::Partial
    };
    let message = if made == 0 && state == RunState::Failed && outcomes.len() == skipped && !outcomes.is_empty() {
        Some("every destination of the job is disabled".into())
    } else {
        message
    };
    (state, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(state: RunState, msg: Option<&str>) -> RunDestination {
        RunDestination {
            destination: "d".into(),
            account: None,
            state,
            snapshot: None,
            message: msg.map(String::from),
            suspicious: None,
            temporary: false,
        }
    }

    #[test]
    fn run_state_from_destinations() {
        assert_eq!(summarize(&[o(RunState::Completed, None)]).0, RunState::Completed);
        assert_eq!(summarize(&[o(RunState::Completed, None), o(RunState::Failed, Some("x"))]).0, RunState::Partial);
        assert_eq!(summarize(&[o(RunState::Failed, Some("x"))]).0, RunState::Failed);
        assert_eq!(summarize(&[o(RunState::Partial, Some("x"))]).0, RunState::Partial);
        assert_eq!(
            summarize(&[o(RunState::Completed, None), o(RunState::Skipped, Some("destination d is disabled"))]).0,
            RunState::Completed
        );
        assert_eq!(summarize(&[o(RunState::Cancelled, Some("cancelled"))]).0, RunState::Cancelled);
        let (st, msg) = summarize(&[o(RunState::Skipped, Some("destination d is disabled"))]);
        assert_eq!(st, RunState::Failed);
        assert_eq!(msg.as_deref(), Some("every destination of the job is disabled"));
    }
}

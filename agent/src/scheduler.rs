//! The scheduler: queues the runs that schedules call for, and watches.
//!
//! Each schedule's next due time lives in the catalog (`schedules.next_run`),
//! so a restart neither forgets nor repeats it. At every tick, the schedules
//! due at "now" (read from an injectable [`Clock`]) are grouped by job: one
//! run per job, tagged with every schedule it serves; if the job already has
//! a queued run, the tags are added to that run instead. Each due schedule
//! then moves to its first due time after now, so after downtime a schedule
//! that missed several due times runs once. `after:JOB` schedules get their
//! due time when JOB's run ends with a snapshot (`jobs::after_run`, called
//! by the runner).
//!
//! The same tick raises monitor alerts (`notran`, `ranfor`, destinations over
//! their disk limit) and prunes old run history and acknowledged alerts.
//!
//! Clock steps: due times are absolute, so after the clock steps back a
//! stored due time can lie far ahead, and nothing would run until wall time
//! caught up (years, after a wrong forward time was corrected). Every tick
//! therefore moves a due time that lies beyond the schedule's next due time
//! from now back to the latter (a due time computed earlier is never later
//! unless the clock went back). A step back between two ticks raises a
//! `clock_step` alert; `notran` counts from the moment it found the last
//! success in the future, instead of staying blind.

use std::collections::HashMap;
use std::sync::Mutex;

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::catalog::{Catalog, NewAlert};
use crate::error::AgentError;
use crate::model::{AlertKind, AlertLevel, Job, RunId, RunState};
use crate::notify;
use crate::runner::Runner;
use crate::schedule::{Clock, Spec, next_after, parse_time, span};
use hindsight_fs::lock;

/// How old a destination's disk usage may be before the watch measures it again.
const USAGE_MAX_AGE: SignedDuration = SignedDuration::from_mins(5);

/// A schedule found due longer ago than this was missed (the agent was down).
const MISSED_AFTER: SignedDuration = SignedDuration::from_mins(2);

/// A clock this much earlier than at the previous tick stepped back.
const STEP_BACK: SignedDuration = SignedDuration::from_mins(1);

/// A clock this much later than at the previous tick jumped forward (or the
/// machine was suspended: ticks come every few seconds); logged.
const STEP_FORWARD: SignedDuration = SignedDuration::from_hours(1);

/// How often orphan accounts are looked for (besides after each accounts job's run).
const SWEEP_EVERY: SignedDuration = SignedDuration::from_hours(1);

/// The scheduler of one agent.
pub struct Scheduler {
    catalog: Arc<Catalog>,
    runner: Arc<Runner>,
    clock: Arc<dyn Clock>,
    /// The clock at the previous tick.
    last_tick: Mutex<Option<Timestamp>>,
    /// Per job, when a tick first found its last success later than the clock.
    notran_since: Mutex<HashMap<String, Timestamp>>,
    /// When orphan accounts were last looked for.
    last_sweep: Mutex<Option<Timestamp>>,
}

impl Scheduler {
    /// A scheduler queueing runs on `runner`, reading time from `clock`.
    pub fn new(catalog: Arc<Catalog>, runner: Arc<Runner>, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Scheduler {
            catalog,
            runner,
            clock,
            last_tick: Mutex::new(None),
            notran_since: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(None),
        })
    }

    /// Raises a `clock_step` alert when the clock stepped back since the
    /// previous tick; logs a jump forward (a suspended machine makes those
    /// too, and retention guards against them by itself).
    fn note_clock(&self, now: Timestamp) -> Result<(), AgentError> {
        let last = lock(&self.last_tick).replace(now);
        let Some(last) = last else { return Ok(()) };
        if now > last + STEP_FORWARD {
            tracing::warn!(
                "the system clock jumped forward by {} (from {last} to {now})",
                span::format(now.duration_since(last))
            );
        }
        if now >= last - STEP_BACK {
            return Ok(());
        }
        let text = format!(
            "the system clock stepped back by {} (from {last} to {now}): schedules were planned again from the new time, and snapshots keep their completion order whatever their names say",
            span::format(last.duration_since(now))
        );
        notify::raise(&self.catalog, NewAlert::new(AlertLevel::Warning, AlertKind::ClockStep, "clock", text));
        Ok(())
    }

    /// Brings back the due times of `job`'s timed schedules that lie beyond
    /// their next due time from `now`, which only a clock stepped back makes.
    fn replan_ahead(&self, job: &mut Job, tz: &jiff::tz::TimeZone, now: Timestamp) -> Result<(), AgentError> {
        let Ok(time) = parse_time(&job.time) else { return Ok(()) };
        for s in &mut job.schedules {
            let Some(planned) = s.next_run else { continue };
            let Some(fresh) =
                Spec::parse(&s.spec).ok().filter(Spec::is_timed).and_then(|sp| next_after(&sp, time, tz, now))
            else {
                continue;
            };
            if planned > fresh {
                tracing::warn!(job = %job.name, "schedule {} was due at {planned}, after its next time {fresh}: the clock went back; planned again", s.spec);
                self.catalog.set_next_run(&job.name, &s.spec, Some(fresh))?;
                s.next_run = Some(fresh);
            }
        }
        Ok(())
    }

    /// Now, by the scheduler's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Recomputes the next due time of a job's timed schedules from now
    /// (after its schedules, its time or the time zone changed).
    pub fn replan_job(&self, name: &str) -> Result<(), AgentError> {
        let job = self.catalog.job(name)?;
        let tz = crate::settings::schedule_time_zone(&self.catalog.settings()?);
        let time = parse_time(&job.time).map_err(AgentError::internal)?;
        let now = self.now();
        for s in &job.schedules {
            let Ok(spec) = Spec::parse(&s.spec) else { continue };
            if spec.is_timed() {
                self.catalog.set_next_run(&job.name, &s.spec, next_after(&spec, time, &tz, now))?;
            } else if spec == Spec::Manual {
                self.catalog.set_next_run(&job.name, &s.spec, None)?;
            }
        }
        Ok(())
    }

    /// Recomputes every job's timed schedules (the time zone changed).
    pub fn replan_all(&self) -> Result<(), AgentError> {
        for j in self.catalog.jobs()? {
            self.replan_job(&j.name)?;
        }
        Ok(())
    }

    /// Queues the runs due now and moves their schedules on; returns the ids
    /// of the runs queued or joined.
    pub fn tick(&self) -> Result<Vec<RunId>, AgentError> {
        let now = self.now();
        self.note_clock(now)?;
        let tz = crate::settings::schedule_time_zone(&self.catalog.settings()?);
        let mut runs = Vec::new();
        for mut job in self.catalog.jobs()? {
            self.replan_ahead(&mut job, &tz, now)?;
            let due_at = |s: &crate::model::JobSchedule| s.next_run;
            let due: Vec<&str> =
                job.schedules.iter().filter(|s| due_at(s).is_some_and(|t| t <= now)).map(|s| s.spec.as_str()).collect();
            if due.is_empty() {
                continue;
            }
            // Due long before this tick: the agent was not running at the time.
            let missed =
                job.schedules.iter().filter_map(due_at).filter(|t| now.duration_since(*t) > MISSED_AFTER).min();
            if let Some(missed) = missed.filter(|_| !job.disabled) {
                let text =
                    format!("job {} was due at {missed} while the agent was not running; it runs once now", job.name);
                let alert = NewAlert::new(AlertLevel::Information, AlertKind::CatchUp, &job.name, text);
                notify::raise(&self.catalog, alert.job(&job.name));
            }
            let tags: Vec<String> = due.iter().map(|s| s.to_string()).collect();
            if job.disabled {
                tracing::info!(job = %job.name, "skipping {} (the job is disabled)", tags.join(", "));
            } else {
                match self.runner.queue_scheduled(&job, &tags) {
                    Ok(id) => runs.push(id),
                    Err(e) => {
                        // Left due (the agent is stopping, or the catalog failed):
                        // the next tick, or the next start, runs it.
                        tracing::warn!(job = %job.name, "cannot queue a scheduled run now: {}", e.message);
                        continue;
                    }
                }
            }
            let time = parse_time(&job.time).map_err(AgentError::internal)?;
            for spec in due {
                let next = Spec::parse(spec).ok().and_then(|s| next_after(&s, time, &tz, now));
                self.catalog.set_next_run(&job.name, spec, next)?;
            }
        }
        self.watch(now)?;
        Ok(runs)
    }

    /// Monitors and housekeeping of the catalog.
    fn watch(&self, now: Timestamp) -> Result<(), AgentError> {
        let jobs = self.catalog.jobs()?;
        for job in jobs.iter().filter(|j| !j.disabled) {
            self.check_notran(job, now)?;
        }
        self.check_ranfor(&jobs, now)?;
        for mut d in self.catalog.destinations()? {
            let measured = d.disk_usage.as_ref().map(|u| u.updated);
            if d.disk_limit > 0 && !d.disabled && measured.is_none_or(|m| now.duration_since(m) > USAGE_MAX_AGE) {
                // Unreachable now: keep the last measure (the next run reports the destination).
                if let Ok(u) = crate::destinations::measure(&d) {
                    self.catalog.set_disk_usage(&d.id, &u)?;
                    d.disk_usage = Some(u);
                }
            }
            if let Some(full) = d.disk_usage.as_ref().and_then(|u| crate::destinations::over_disk_limit(&d, u)) {
                let alert = NewAlert::new(AlertLevel::Warning, AlertKind::DiskLimit, &d.name, full);
                notify::raise(&self.catalog, alert.destination(&d.name));
            }
        }
        let settings = self.catalog.settings()?;
        let days = |n: u32| now - SignedDuration::from_hours(i64::from(n) * 24);
        self.catalog.prune_runs(days(settings.logs_ttl))?;
        self.catalog.prune_alerts(days(settings.alerts_ttl))?;
        self.catalog.prune_deliveries(days(settings.logs_ttl))?;
        self.catalog.prune_tasks(days(settings.logs_ttl))?;
        if let Err(e) = crate::download::expire(&self.catalog, now) {
            tracing::error!("expiring downloads: {}", e.message);
        }
        self.sweep_accounts(now);
        Ok(())
    }

    /// Orphan accounts (`orphan_ttl`, `forget_ttl`) at start and then hourly:
    /// each sweep looks every account with snapshots up in the user database.
    fn sweep_accounts(&self, now: Timestamp) {
        {
            let mut last = lock(&self.last_sweep);
            if last.is_some_and(|l| now.duration_since(l).abs() < SWEEP_EVERY) {
                return;
            }
            *last = Some(now);
        }
        if let Err(e) = crate::accounts::sweep(&self.catalog, &self.runner, now, None) {
            tracing::error!("orphan accounts: {}", e.message);
        }
    }

    fn check_notran(&self, job: &Job, now: Timestamp) -> Result<(), AgentError> {
        let Some(limit) = job.monitor.notran.as_deref().and_then(|v| span::parse(v, 'd').ok()) else { return Ok(()) };
        let Some(last) = self.catalog.last_success(&job.name)? else {
            return Ok(());
        };
        let since = {
            let mut behind = lock(&self.notran_since);
            if last > now + STEP_BACK {
                // The clock is behind the last success: count from when that was seen.
                *behind.entry(job.name.clone()).or_insert(now)
            } else {
                behind.remove(&job.name);
                last
            }
        };
        if now.duration_since(since) > limit {
            let text = format!(
                "job {} has not completed a backup for more than {} (monitor.notran)",
                job.name,
                span::format(limit)
            );
            notify::raise(
                &self.catalog,
                NewAlert::new(AlertLevel::Warning, AlertKind::Notran, &job.name, text).job(&job.name),
            );
        }
        Ok(())
    }

    fn check_ranfor(&self, jobs: &[Job], now: Timestamp) -> Result<(), AgentError> {
        for run in self.catalog.runs_in_state(RunState::Running)? {
            let Some(job) = jobs.iter().find(|j| j.name == run.job) else { continue };
            let Some(limit) = job.monitor.ranfor.as_deref().and_then(|v| span::parse(v, 'd').ok()) else { continue };
            let Some(started) = run.started_at else { continue };
            if now.duration_since(started) > limit {
                let text = format!(
                    "run {} of job {} has been running for more than {} (monitor.ranfor)",
                    run.id,
                    job.name,
                    span::format(limit)
                );
                let alert = NewAlert::new(AlertLevel::Warning, AlertKind::Ranfor, &format!("run {}", run.id), text);
                notify::raise(&self.catalog, alert.job(&job.name).run(run.id));
            }
        }
        Ok(())
    }

    /// Ticks every `period` until `shutdown` is requested (a tick under way ends first).
    pub async fn run_loop(self: Arc<Self>, period: std::time::Duration, shutdown: crate::shutdown::Shutdown) {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.requested() => return,
                _ = every.tick() => {}
            }
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.tick()).await {
                Ok(Err(e)) => tracing::error!("scheduler: {}", e.message),
                Err(e) => tracing::error!("scheduler: {e}"),
                Ok(Ok(_)) => {}
            }
        }
    }
}

//! Job rules: what a valid job is.

use std::path::Path;

use hindsight_fs::Structure;
use hindsight_fs::check_name;

use crate::backup::Excludes;
use crate::catalog::Catalog;
use crate::error::AgentError;
use crate::model::{
    DatabaseSelection, HookKind, Hooks, Job, JobAccounts, JobDatabases, JobId, JobKind, JobSchedule, Monitor, NewJob,
    ScheduleInput, default_priority, default_time,
};
use crate::schedule::{Spec, parse_time, span};

/// Largest accepted `retry_failed`.
pub const MAX_RETRY_FAILED: u32 = 10;

/// Checks sources: absolute, existing, not nested in one another (none is
/// allowed here; [`check_job`] asks for sources or databases).
pub fn check_sources(sources: &[String]) -> Result<Vec<String>, AgentError> {
    let mut out: Vec<String> = Vec::new();
    for s in sources {
        let p = Path::new(s);
        if !p.is_absolute() {
            return Err(AgentError::invalid(format!("source {s:?} is not an absolute path")));
        }
        if std::fs::symlink_metadata(p).is_err() {
            return Err(AgentError::invalid(format!("source {s} does not exist")));
        }
        crate::backup::check_source_path(p).map_err(|e| AgentError::invalid(format!("source {s}: {e}")))?;
        let norm: String = p.components().collect::<std::path::PathBuf>().to_string_lossy().into_owned();
        if norm.split('/').any(|c| c == "..") {
            return Err(AgentError::invalid(format!("source {s} must not contain '..'")));
        }
        out.push(norm);
    }
    out.sort();
    out.dedup();
    for pair in out.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if Path::new(b).starts_with(a) {
            return Err(AgentError::invalid(format!("source {b} is inside source {a}; list it once")));
        }
    }
    Ok(out)
}

/// Checks exclude patterns compile.
pub fn check_excludes(ex: &[String]) -> Result<(), AgentError> {
    Excludes::new(ex).map(|_| ()).map_err(AgentError::invalid)
}

/// Checks retry_failed.
pub fn check_retry(n: u32) -> Result<u32, AgentError> {
    if n > MAX_RETRY_FAILED {
        return Err(AgentError::invalid(format!("retry_failed {n} is out of range: use 0-{MAX_RETRY_FAILED}")));
    }
    Ok(n)
}

/// Checks a job's destination list (existence is checked by the catalog).
pub fn check_destinations(d: &[String]) -> Result<Vec<String>, AgentError> {
    if d.is_empty() {
        return Err(AgentError::invalid("a job needs at least one destination"));
    }
    let mut out = Vec::new();
    for name in d {
        if out.contains(name) {
            return Err(AgentError::invalid(format!("destination {name} is listed twice")));
        }
        out.push(name.clone());
    }
    Ok(out)
}

/// Largest accepted `retain`.
pub const MAX_RETAIN: i64 = 9999;

/// Parses schedules into their canonical form; checks `retain` and duplicates.
pub fn check_schedules(input: &[ScheduleInput]) -> Result<Vec<JobSchedule>, AgentError> {
    let mut out: Vec<JobSchedule> = Vec::new();
    for s in input {
        let spec = Spec::parse(&s.spec).map_err(AgentError::invalid)?.to_string();
        if !(1..=MAX_RETAIN).contains(&s.retain) {
            return Err(AgentError::invalid(format!(
                "retain {} of schedule {spec} is out of range: use 1-{MAX_RETAIN}",
                s.retain
            )));
        }
        if out.iter().any(|o| o.spec == spec) {
            return Err(AgentError::invalid(format!("schedule {spec} is listed twice")));
        }
        out.push(JobSchedule { spec, retain: s.retain as u32, next_run: None });
    }
    Ok(out)
}

/// Checks a run time `HH:MM`; returns it zero-padded.
pub fn check_time(s: &str) -> Result<String, AgentError> {
    let t = parse_time(s).map_err(AgentError::invalid)?;
    Ok(format!("{:02}:{:02}", t.hour(), t.minute()))
}

/// Checks a queue priority group (1-100).
pub fn check_priority(p: i64) -> Result<u8, AgentError> {
    u8::try_from(p).ok().filter(|p| (1..=100).contains(p)).ok_or_else(|| {
        AgentError::invalid(format!("priority {p} is out of range: use 1-100 (lower runs first; default 50)"))
    })
}

/// Checks monitors (`2` = 2 days, `12h`); `0` or empty turns one off.
pub fn check_monitor(m: Monitor) -> Result<Monitor, AgentError> {
    let one = |name: &str, v: Option<String>| -> Result<Option<String>, AgentError> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => {
                let d = span::parse(v, 'd').map_err(|e| AgentError::invalid(format!("monitor.{name}: {e}")))?;
                Ok((!d.is_zero()).then(|| span::format(d)))
            }
        }
    };
    Ok(Monitor { notran: one("notran", m.notran)?, ranfor: one("ranfor", m.ranfor)? })
}

/// Checks hooks: an empty command is none; the timeout is 1 s to a day.
pub fn check_hooks(mut h: Hooks) -> Result<Hooks, AgentError> {
    if !(1..=86_400).contains(&h.timeout) {
        return Err(AgentError::invalid(format!("hooks.timeout must be 1 to 86400 seconds, not {}", h.timeout)));
    }
    for kind in HookKind::ALL {
        let command = h.command(*kind).map(str::trim).filter(|c| !c.is_empty()).map(str::to_string);
        if command.as_deref().is_some_and(|c| c.contains('\0')) {
            return Err(AgentError::invalid(format!("hooks.{kind}: a command cannot hold a NUL byte")));
        }
        h.set(*kind, command);
    }
    Ok(h)
}

/// Checks a ping URL; empty is none.
pub fn check_ping_url(url: Option<String>) -> Result<Option<String>, AgentError> {
    match url.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(u) => crate::notify::ping::check(u).map(|()| Some(u.to_string())).map_err(AgentError::invalid),
    }
}

/// Checks the databases a job dumps: server names, database names and
/// globs; a server listed twice is merged (its database lists joined).
pub fn check_databases(mut d: JobDatabases) -> Result<JobDatabases, AgentError> {
    let mut servers: Vec<DatabaseSelection> = Vec::new();
    for sel in d.servers {
        check_name("database server", &sel.server).map_err(AgentError::invalid)?;
        for db in &sel.databases {
            if db.is_empty() || db.contains('\0') {
                return Err(AgentError::invalid(format!(
                    "database {db:?} of server {}: not a database name",
                    sel.server
                )));
            }
        }
        match servers.iter_mut().find(|s| s.server == sel.server) {
            // "all of them" wins over a list.
            Some(s) if s.databases.is_empty() || sel.databases.is_empty() => s.databases.clear(),
            Some(s) => s.databases.extend(sel.databases),
            None => servers.push(sel),
        }
    }
    for s in &mut servers {
        s.databases.sort();
        s.databases.dedup();
    }
    d.servers = servers;
    crate::databases::DatabaseFilter::new(&d).map_err(AgentError::invalid)?;
    if d.exclude_larger_than == Some(0) {
        d.exclude_larger_than = None;
    }
    Ok(d)
}

/// Checks the users of an accounts job: names, none both included and excluded.
pub fn check_accounts(mut a: JobAccounts) -> Result<JobAccounts, AgentError> {
    for name in a.include.iter().chain(&a.exclude) {
        hindsight_fs::check_account_name(name).map_err(AgentError::invalid)?;
    }
    a.include.sort();
    a.include.dedup();
    a.exclude.sort();
    a.exclude.dedup();
    if let Some(both) = a.include.iter().find(|n| a.exclude.contains(n)) {
        return Err(AgentError::invalid(format!("account {both} is both included and excluded")));
    }
    Ok(a)
}

/// The checks across a job's fields, once they are all set: something to
/// back up, fields that fit its type, and database servers that exist.
pub fn check_job(catalog: &Catalog, job: &Job) -> Result<(), AgentError> {
    match job.kind {
        JobKind::Directories => {
            if job.sources.is_empty() && job.databases.is_empty() {
                return Err(AgentError::invalid("a job needs at least one source or database server"));
            }
            if !job.accounts.is_empty() {
                return Err(AgentError::invalid(
                    "accounts are chosen for jobs of type accounts only (job add --type accounts)",
                ));
            }
        }
        JobKind::Accounts => {
            if !job.sources.is_empty() {
                return Err(AgentError::invalid(
                    "an accounts job backs up each user's home directory, crontab and mail spool: it takes no sources",
                ));
            }
        }
    }
    if job.databases.is_empty() {
        return Ok(());
    }
    if let Some(s) = inside_dumps(&job.sources) {
        return Err(AgentError::invalid(format!(
            "source {s} is inside /.hindsight, where this job's database dumps go: back up / or another directory"
        )));
    }
    if job.structure != Structure::Incremental {
        // An archive on a remote destination streams out as it is written: a
        // dump, whose size comes at its end, would need a local copy first.
        for d in &job.destinations {
            let kind = catalog.destination(d)?.kind;
            if kind != crate::model::DestinationKind::Local {
                return Err(AgentError::invalid(format!(
                    "database dumps are stored in {} snapshots on local destinations only, and {d} is {kind}: \
                     use --structure incremental for a job with databases",
                    job.structure
                )));
            }
        }
    }
    let known = catalog.database_servers()?;
    for sel in &job.databases.servers {
        if !known.iter().any(|k| k.name == sel.server) {
            return Err(AgentError::not_found(format!(
                "no database server named {}; add it with `hindsight database add`",
                sel.server
            )));
        }
    }
    Ok(())
}

/// A source inside `/.hindsight`, the snapshot's directory of database dumps.
fn inside_dumps(sources: &[String]) -> Option<&String> {
    sources.iter().find(|s| Path::new(s.as_str()).starts_with("/.hindsight"))
}

/// The jobs a schedule list waits for (`after:JOB`).
pub fn upstream(schedules: &[JobSchedule]) -> Vec<String> {
    schedules
        .iter()
        .filter_map(|s| match Spec::parse(&s.spec) {
            Ok(Spec::After { job, .. }) => Some(job),
            _ => None,
        })
        .collect()
}

/// Checks that every `after:JOB` of `job`'s new schedules names an existing
/// job and that no chain of `after:` leads back to `job`.
pub fn check_dependencies(catalog: &Catalog, job: &str, schedules: &[JobSchedule]) -> Result<(), AgentError> {
    let others: Vec<Job> = catalog.jobs()?.into_iter().filter(|j| j.name != job).collect();
    let deps_of = |name: &str| -> Vec<String> {
        if name == job {
            upstream(schedules)
        } else {
            others.iter().find(|j| j.name == name).map(|j| upstream(&j.schedules)).unwrap_or_default()
        }
    };
    for up in upstream(schedules) {
        if up != job && !others.iter().any(|j| j.name == up) {
            return Err(AgentError::invalid(format!("schedule after:{up} of job {job} names no existing job")));
        }
    }
    // Depth-first from the job along "waits for" edges; reaching it again is a cycle.
    let mut stack: Vec<Vec<String>> = upstream(schedules).into_iter().map(|u| vec![job.to_string(), u]).collect();
    let mut seen: Vec<String> = Vec::new();
    while let Some(path) = stack.pop() {
        let Some(last) = path.last().cloned() else { continue };
        if last == job {
            return Err(AgentError::invalid(format!(
                "the after: schedules of job {job} form a cycle: {}",
                path.join(" -> ")
            )));
        }
        if seen.contains(&last) {
            continue;
        }
        seen.push(last.clone());
        for next in deps_of(&last) {
            let mut p = path.clone();
            p.push(next);
            stack.push(p);
        }
    }
    Ok(())
}

/// Validates a new job into its stored form.
pub fn build(new: NewJob) -> Result<Job, AgentError> {
    check_name("job", &new.name).map_err(AgentError::invalid)?;
    check_excludes(&new.excludes)?;
    Ok(Job {
        id: JobId(0),
        name: new.name,
        kind: new.kind.unwrap_or(JobKind::Directories),
        sources: check_sources(&new.sources)?,
        excludes: new.excludes,
        destinations: check_destinations(&new.destinations)?,
        structure: new.structure.unwrap_or(Structure::Incremental),
        one_file_system: new.one_file_system.unwrap_or(true),
        retry_failed: check_retry(new.retry_failed.unwrap_or(1))?,
        disabled: new.disabled,
        schedules: check_schedules(&new.schedules)?,
        time: new.time.as_deref().map(check_time).transpose()?.unwrap_or_else(default_time),
        priority: new.priority.map(check_priority).transpose()?.unwrap_or_else(default_priority),
        monitor: check_monitor(new.monitor.unwrap_or_default())?,
        hooks: check_hooks(new.hooks.unwrap_or_default())?,
        ping_url: check_ping_url(new.ping_url)?,
        databases: check_databases(new.databases.unwrap_or_default())?,
        accounts: check_accounts(new.accounts.unwrap_or_default())?,
        next_run: None,
        last_run: None,
    })
}

/// After a run of `job` ended with a snapshot at `finished`: the `after:job`
/// schedules of other jobs fall due after their delay.
pub fn after_run(catalog: &Catalog, job: &str, finished: jiff::Timestamp) -> Result<(), AgentError> {
    for other in catalog.jobs()? {
        for s in &other.schedules {
            if let Ok(Spec::After { job: up, delay }) = Spec::parse(&s.spec)
                && up == job
            {
                let due = finished.checked_add(delay).unwrap_or(finished);
                catalog.set_next_run(&other.name, &s.spec, Some(due))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_inside_the_dumps_directory_are_found() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(inside_dumps(&s(&["/srv", "/.hindsight/x"])).map(String::as_str), Some("/.hindsight/x"));
        assert_eq!(inside_dumps(&s(&["/.hindsight"])).map(String::as_str), Some("/.hindsight"));
        assert!(inside_dumps(&s(&["/", "/.hindsightx", "/srv/.hindsight"])).is_none());
    }
}

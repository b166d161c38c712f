//! `hindsight job ...`

use std::process::ExitCode;

use anyhow::bail;
use hindsight_api::routes;
use hindsight_api::{
    DatabaseSelection, HookKind, Hooks, Job, JobAccounts, JobDatabases, JobKind, JobPatch, Monitor, NewJob, Run,
    ScheduleInput,
};

use crate::args::{HookArgs, JobCmd, JobDatabaseArgs, Timing};
use crate::client::Client;
use crate::output::{bytes, fields, opt_time, print_json, removed, table, yes_no};

fn last_run(j: &Job) -> String {
    match &j.last_run {
        Some(r) => format!("#{} {} {}", r.id, r.state.as_str(), opt_time(r.finished_at.as_ref())),
        None => "never".into(),
    }
}

/// Pairs each `--schedule` with the `--retain` in the same position.
fn schedules(t: &Timing) -> anyhow::Result<Vec<ScheduleInput>> {
    if t.schedules.len() != t.retains.len() {
        bail!(
            "each --schedule needs a --retain (got {} --schedule and {} --retain)",
            t.schedules.len(),
            t.retains.len()
        );
    }
    Ok(t.schedules
        .iter()
        .zip(&t.retains)
        .map(|(spec, retain)| ScheduleInput { spec: spec.clone(), retain: *retain })
        .collect())
}

fn monitor(t: &Timing, current: Option<&Monitor>) -> Option<Monitor> {
    if t.notran.is_none() && t.ranfor.is_none() {
        return None;
    }
    let cur = current.cloned().unwrap_or_default();
    Some(Monitor { notran: t.notran.clone().or(cur.notran), ranfor: t.ranfor.clone().or(cur.ranfor) })
}

/// The job's hooks with the ones given as flags set (an empty command removes one).
fn hooks(a: &HookArgs, current: Hooks) -> Hooks {
    let mut h = current;
    for (kind, given) in [
        (HookKind::Before, &a.before),
        (HookKind::After, &a.after),
        (HookKind::OnError, &a.on_error),
        (HookKind::Finally, &a.finally),
    ] {
        if let Some(c) = given {
            h.set(kind, (!c.trim().is_empty()).then(|| c.clone()));
        }
    }
    h.timeout = a.hook_timeout.unwrap_or(h.timeout);
    h
}

/// `before: systemctl stop db; finally: systemctl start db (timeout 300 s)`.
fn describe_hooks(h: &Hooks) -> String {
    let parts: Vec<String> = HookKind::ALL.iter().filter_map(|k| h.command(*k).map(|c| format!("{k}: {c}"))).collect();
    if parts.is_empty() { "-".into() } else { format!("{} (timeout {} s)", parts.join("; "), h.timeout) }
}

/// The job's database flags over `current`: `--database` replaces the
/// servers, `--exclude-database` the globs, the size limit its value.
fn databases(a: &JobDatabaseArgs, mut current: JobDatabases) -> anyhow::Result<JobDatabases> {
    if !a.databases.is_empty() {
        current.servers = a
            .databases
            .iter()
            .map(|d| match d.split_once(':') {
                Some((server, dbs)) => DatabaseSelection {
                    server: server.to_string(),
                    databases: dbs.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
                },
                None => DatabaseSelection { server: d.clone(), databases: Vec::new() },
            })
            .collect();
    }
    if !a.exclude.is_empty() {
        current.exclude = a.exclude.clone();
    }
    if let Some(size) = &a.larger_than {
        current.exclude_larger_than = Some(parse_size(size)?).filter(|n| *n > 0);
    }
    Ok(current)
}

/// `1500`, `500K`, `2M`, `1.5G`, `1T` (powers of 1024) in bytes.
fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let mult: u64 = match unit.to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => anyhow::bail!("size {s:?}: use bytes or a number with K, M, G or T"),
    };
    let n: f64 =
        num.trim().parse().map_err(|_| anyhow::anyhow!("size {s:?}: use bytes or a number with K, M, G or T"))?;
    if !n.is_finite() || n < 0.0 {
        anyhow::bail!("size {s:?} must be zero or more");
    }
    Ok((n * mult as f64) as u64)
}

/// The sources, then `db:SERVER` for each database server dumped.
fn what_it_backs_up(j: &Job) -> String {
    let servers = j.databases.servers.iter().map(|s| format!("db:{}", s.server));
    let accounts = (j.kind == JobKind::Accounts).then(|| match j.accounts.include.is_empty() {
        true => "accounts".to_string(),
        false => format!("accounts:{}", j.accounts.include.join("+")),
    });
    accounts.into_iter().chain(j.sources.iter().cloned()).chain(servers).collect::<Vec<_>>().join(",")
}

/// Which users an accounts job backs up.
fn describe_accounts(j: &Job) -> String {
    if j.kind != JobKind::Accounts {
        return "-".into();
    }
    let who = if j.accounts.include.is_empty() {
        "every user in the uid range".to_string()
    } else {
        j.accounts.include.join(", ")
    };
    match j.accounts.exclude.is_empty() {
        true => who,
        false => format!("{who}, except {}", j.accounts.exclude.join(", ")),
    }
}

/// `pg1 (all); maria:shop,blog; excluding test_*; larger than 1.0 GiB left out`.
fn describe_databases(d: &JobDatabases) -> String {
    if d.is_empty() {
        return "-".into();
    }
    let mut parts: Vec<String> = d
        .servers
        .iter()
        .map(|s| {
            if s.databases.is_empty() {
                format!("{} (all)", s.server)
            } else {
                format!("{}:{}", s.server, s.databases.join(","))
            }
        })
        .collect();
    if !d.exclude.is_empty() {
        parts.push(format!("excluding {}", d.exclude.join(", ")));
    }
    if let Some(n) = d.exclude_larger_than {
        parts.push(format!("larger than {} left out", bytes(n)));
    }
    parts.join("; ")
}

/// `daily (keep 7, next 2026-11-23 02:00:00); weekly:sun (keep 4, ...)`.
fn describe_schedules(j: &Job) -> String {
    if j.schedules.is_empty() {
        return "manual only".into();
    }
    let parts: Vec<String> = j
        .schedules
        .iter()
        .map(|s| {
            let next = s.next_run.as_ref().map_or(String::new(), |n| format!(", next {}", opt_time(Some(n))));
            format!("{} (keep {}{next})", s.spec, s.retain)
        })
        .collect();
    parts.join("; ")
}

/// Runs a job subcommand.
pub async fn run(c: &Client, cmd: JobCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCmd::Add(a) => {
            let new = NewJob {
                name: a.name,
                kind: a.kind.as_deref().map(str::parse).transpose()?,
                sources: a.sources,
                excludes: a.excludes,
                destinations: a.destinations,
                structure: a.structure.as_deref().map(str::parse).transpose()?,
                one_file_system: Some(!a.no_one_file_system),
                retry_failed: a.retry_failed,
                disabled: a.disabled,
                schedules: schedules(&a.timing)?,
                time: a.timing.time.clone(),
                priority: a.timing.priority,
                monitor: monitor(&a.timing, None),
                hooks: (!a.hooks.is_empty()).then(|| hooks(&a.hooks, Hooks::default())),
                ping_url: a.hooks.ping_url.clone(),
                databases: (!a.databases.is_empty())
                    .then(|| databases(&a.databases, JobDatabases::default()))
                    .transpose()?,
                accounts: (!a.accounts.account.is_empty() || !a.accounts.exclude_account.is_empty()).then(|| {
                    JobAccounts { include: a.accounts.account.clone(), exclude: a.accounts.exclude_account.clone() }
                }),
            };
            let j: Job = c.post(routes::JOBS, Some(&new)).await?;
            if json {
                print_json(&j)?;
            } else {
                println!("job {} added", j.name);
            }
        }
        JobCmd::List => {
            let jobs: Vec<Job> = c.get(routes::JOBS).await?;
            if json {
                return print_json(&jobs).map(|_| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|j| {
                    vec![
                        j.name.clone(),
                        what_it_backs_up(j),
                        j.destinations.join(","),
                        j.structure.to_string(),
                        if j.disabled { "disabled".into() } else { "enabled".into() },
                        if j.schedules.is_empty() {
                            "-".into()
                        } else {
                            j.schedules.iter().map(|s| s.spec.clone()).collect::<Vec<_>>().join(" ")
                        },
                        opt_time(j.next_run.as_ref()),
                        last_run(j),
                    ]
                })
                .collect();
            table(
                &["NAME", "SOURCES", "DESTINATIONS", "STRUCTURE", "STATE", "SCHEDULES", "NEXT RUN", "LAST RUN"],
                &rows,
            );
        }
        JobCmd::Show { name } => {
            let j: Job = c.get(&routes::job(&name)).await?;
            if json {
                return print_json(&j).map(|_| ExitCode::SUCCESS);
            }
            fields(&[
                ("name", j.name.clone()),
                ("type", j.kind.to_string()),
                ("sources", j.sources.join(", ")),
                ("excludes", if j.excludes.is_empty() { "-".into() } else { j.excludes.join(", ") }),
                ("destinations", j.destinations.join(", ")),
                ("structure", j.structure.to_string()),
                ("one file system", yes_no(j.one_file_system)),
                ("retry failed", j.retry_failed.to_string()),
                ("disabled", yes_no(j.disabled)),
                ("schedules", describe_schedules(&j)),
                ("time", j.time.clone()),
                ("priority", j.priority.to_string()),
                ("monitor notran", j.monitor.notran.clone().unwrap_or_else(|| "off".into())),
                ("monitor ranfor", j.monitor.ranfor.clone().unwrap_or_else(|| "off".into())),
                ("hooks", describe_hooks(&j.hooks)),
                ("ping url", j.ping_url.clone().unwrap_or_else(|| "-".into())),
                ("databases", describe_databases(&j.databases)),
                ("accounts", describe_accounts(&j)),
                ("next run", opt_time(j.next_run.as_ref())),
                ("last run", last_run(&j)),
            ]);
        }
        JobCmd::Edit(e) => {
            let new_schedules = schedules(&e.timing)?;
            // Only some monitors or hooks given: the others stay as they are.
            let partial_monitor = e.timing.notran.is_some() != e.timing.ranfor.is_some();
            let some_accounts = !e.accounts.account.is_empty() || !e.accounts.exclude_account.is_empty();
            let current = if partial_monitor || !e.hooks.is_empty() || !e.databases.is_empty() || some_accounts {
                Some(c.get::<Job>(&routes::job(&e.name)).await?)
            } else {
                None
            };
            let current_monitor = current.as_ref().filter(|_| partial_monitor).map(|j| j.monitor.clone());
            let new_databases = match &current {
                _ if e.no_databases => Some(JobDatabases::default()),
                Some(j) if !e.databases.is_empty() => Some(databases(&e.databases, j.databases.clone())?),
                _ => None,
            };
            let new_accounts = match &current {
                _ if e.all_accounts => Some(JobAccounts::default()),
                Some(j) if some_accounts => {
                    let pick = |given: &Vec<String>, now: &Vec<String>| {
                        if given.is_empty() { now.clone() } else { given.clone() }
                    };
                    Some(JobAccounts {
                        include: pick(&e.accounts.account, &j.accounts.include),
                        exclude: pick(&e.accounts.exclude_account, &j.accounts.exclude),
                    })
                }
                _ => None,
            };
            let new_hooks = current.filter(|_| !e.hooks.is_empty()).map(|j| hooks(&e.hooks, j.hooks));
            let patch = JobPatch {
                sources: (!e.sources.is_empty()).then_some(e.sources),
                excludes: if e.clear_excludes {
                    Some(Vec::new())
                } else {
                    (!e.excludes.is_empty()).then_some(e.excludes)
                },
                destinations: (!e.destinations.is_empty()).then_some(e.destinations),
                structure: e.structure.as_deref().map(str::parse).transpose()?,
                one_file_system: e.one_file_system,
                retry_failed: e.retry_failed,
                disabled: None,
                schedules: if e.clear_schedules {
                    Some(Vec::new())
                } else {
                    (!new_schedules.is_empty()).then_some(new_schedules)
                },
                time: e.timing.time.clone(),
                priority: e.timing.priority,
                monitor: monitor(&e.timing, current_monitor.as_ref()),
                hooks: new_hooks,
                ping_url: e.hooks.ping_url.clone(),
                databases: new_databases,
                accounts: new_accounts,
            };
            let j: Job = c.patch(&routes::job(&e.name), &patch).await?;
            if json {
                print_json(&j)?;
            } else {
                println!("job {} updated", j.name);
            }
        }
        JobCmd::Enable { name } => toggle(c, &routes::job_enable(&name), "enable", json).await?,
        JobCmd::Disable { name } => toggle(c, &routes::job_disable(&name), "disable", json).await?,
        JobCmd::Remove { name } => {
            c.delete(&routes::job(&name)).await?;
            removed(json, "job", &name, &format!("job {name} removed (its snapshots stay on the destinations)"))?;
        }
        JobCmd::Run { name, wait } => {
            let r: Run = c.post::<(), _>(&routes::job_run(&name), None).await?;
            if !wait {
                if json {
                    print_json(&r)?;
                } else {
                    println!("run {} queued", r.id);
                }
                return Ok(ExitCode::SUCCESS);
            }
            if !json {
                println!("run {} queued", r.id);
            }
            return super::run::follow(c, r.id, json).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn toggle(c: &Client, path: &str, action: &str, json: bool) -> anyhow::Result<()> {
    let j: Job = c.post::<(), _>(path, None).await?;
    if json {
        print_json(&j)
    } else {
        println!("job {} {action}d", j.name);
        Ok(())
    }
}

//! `hindsight restore ...` and `hindsight task ...`: restores are tasks the
//! agent queues; these commands queue them, follow them and cancel them.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use hindsight_api::routes;
use hindsight_api::{
    DatabaseRestore, Download, DownloadRequest, FileRestore, NewRestoreCondition, PermissionRule, RestoreCondition,
    RestoreMode, RunState, SnapshotId, Task, TaskId,
};

use crate::args::{DownloadArgs, DownloadCmd, PermissionRuleCmd, RestoreCmd, RestoreConditionCmd, TaskCmd};
use crate::client::Client;
use crate::output::{bytes, duration, fields, json_line, opt_time, print_json, removed, spinner, table};

/// Runs a restore subcommand.
pub async fn restore(c: &Client, cmd: RestoreCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        RestoreCmd::Database(a) => {
            let body = DatabaseRestore {
                snapshot: a.snapshot.parse::<SnapshotId>()?,
                server: a.server,
                database: a.database,
                as_name: a.as_name,
                to: a.to,
                replace: a.replace,
                accept_conditions: a.accept_conditions,
                accepted_conditions: Vec::new(),
            };
            let t: Task = c.post(routes::RESTORE_DATABASE, Some(&body)).await?;
            return queued(c, t, a.wait, json).await;
        }
        RestoreCmd::Files(a) => {
            let body = FileRestore {
                snapshot: a.snapshot.parse::<SnapshotId>()?,
                paths: a.paths,
                to: a.to,
                mode: a.mode.as_deref().map(str::parse).transpose()?.unwrap_or(RestoreMode::Merge),
                dry_run: a.dry_run,
                accept_conditions: a.accept_conditions,
                accepted_conditions: Vec::new(),
            };
            let t: Task = c.post(routes::RESTORE_FILES, Some(&body)).await?;
            return queued(c, t, a.wait, json).await;
        }
    }
}

/// A task just queued: followed to its end with `wait`, else announced.
async fn queued(c: &Client, t: Task, wait: bool, json: bool) -> anyhow::Result<ExitCode> {
    if wait {
        return follow(c, t.id, json).await;
    }
    if json {
        print_json(&t)?;
    } else {
        println!("task {} queued: {}", t.id, t.summary);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a task subcommand.
pub async fn run(c: &Client, cmd: TaskCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        TaskCmd::List { limit } => {
            let tasks: Vec<Task> = c.get(&format!("{}?limit={limit}", routes::TASKS)).await?;
            if json {
                return print_json(&tasks).map(|_| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = tasks
                .iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        t.kind.to_string(),
                        t.state.to_string(),
                        opt_time(Some(&t.queued_at)),
                        duration(t.started_at.as_ref(), t.finished_at.as_ref()),
                        t.summary.clone(),
                    ]
                })
                .collect();
            table(&["ID", "KIND", "STATE", "QUEUED", "TOOK", "WHAT"], &rows);
        }
        TaskCmd::Show { id } => {
            let t: Task = c.get(&routes::task(id.parse::<TaskId>()?)).await?;
            if json {
                return print_json(&t).map(|_| ExitCode::SUCCESS);
            }
            fields(&[
                ("id", t.id.to_string()),
                ("kind", t.kind.to_string()),
                ("state", t.state.to_string()),
                ("what", t.summary.clone()),
                ("queued", opt_time(Some(&t.queued_at))),
                ("started", opt_time(t.started_at.as_ref())),
                ("finished", opt_time(t.finished_at.as_ref())),
                ("progress", progress(&t)),
                ("result", t.message.clone().unwrap_or_else(|| "-".into())),
            ]);
        }
        TaskCmd::Cancel { id } => {
            let t: Task = c.post(&routes::task_cancel(id.parse::<TaskId>()?), None::<&()>).await?;
            if json {
                print_json(&t)?;
            } else {
                println!("task {} {}", t.id, if t.state == RunState::Cancelled { "cancelled" } else { "cancelling" });
            }
        }
        TaskCmd::Wait { id } => return follow(c, id.parse::<TaskId>()?, json).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// `1.2 GiB of 3.0 GiB`.
fn progress(t: &Task) -> String {
    match t.bytes_total {
        0 => bytes(t.bytes_done),
        total => format!("{} of {}", bytes(t.bytes_done), bytes(total)),
    }
}

/// Follows a task until it ends: a progress bar on a terminal, plain lines
/// otherwise. Exit status 0 only when it completed.
async fn follow(c: &Client, id: TaskId, json: bool) -> anyhow::Result<ExitCode> {
    let bar = spinner(json);
    let mut last_line = Instant::now() - Duration::from_secs(10);
    let task = loop {
        let t: Task = c.get(&routes::task(id)).await?;
        if t.state.is_final() {
            break t;
        }
        let msg = format!("{}: {}", t.state, progress(&t));
        if json {
            // JSON Lines: a status at most twice a second.
            if last_line.elapsed() >= Duration::from_millis(500) {
                json_line("status", &t)?;
                last_line = Instant::now();
            }
        } else if let Some(b) = &bar {
            b.set_message(msg);
        } else if last_line.elapsed() >= Duration::from_secs(2) {
            eprintln!("task {id} {msg}");
            last_line = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if json {
        json_line("summary", &task)?;
    } else {
        println!(
            "task {} {}: {} ({}, {})",
            task.id,
            task.state,
            task.message.as_deref().unwrap_or("-"),
            progress(&task),
            duration(task.started_at.as_ref(), task.finished_at.as_ref())
        );
    }
    Ok(match task.state {
        RunState::Completed => ExitCode::SUCCESS,
        RunState::Partial => ExitCode::from(crate::client::exit::PARTIAL),
        _ => ExitCode::FAILURE,
    })
}

/// Runs a restore-condition subcommand.
pub async fn conditions(c: &Client, cmd: RestoreConditionCmd, json: bool) -> anyhow::Result<ExitCode> {
    let all: Vec<RestoreCondition> = match cmd {
        RestoreConditionCmd::List => c.get(routes::RESTORE_CONDITIONS).await?,
        RestoreConditionCmd::Add { text } => {
            c.post(routes::RESTORE_CONDITIONS, Some(&NewRestoreCondition { text })).await?
        }
        RestoreConditionCmd::Remove { id } => {
            c.delete(&routes::restore_condition(id)).await?;
            c.get(routes::RESTORE_CONDITIONS).await?
        }
    };
    if json {
        return print_json(&all).map(|()| ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = all.iter().map(|c| vec![c.id.to_string(), c.text.clone()]).collect();
    table(&["ID", "CONDITION"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// Runs a permission-rule subcommand.
pub async fn rules(c: &Client, cmd: PermissionRuleCmd, json: bool) -> anyhow::Result<ExitCode> {
    let all: Vec<PermissionRule> = match cmd {
        PermissionRuleCmd::List => c.get(routes::PERMISSION_RULES).await?,
        PermissionRuleCmd::Add { glob, owner, group, file_mode, dir_mode, recursive } => {
            let rule = PermissionRule { id: 0, glob, owner, group, file_mode, dir_mode, recursive };
            c.post(routes::PERMISSION_RULES, Some(&rule)).await?
        }
        PermissionRuleCmd::Remove { id } => {
            c.delete(&routes::permission_rule(id)).await?;
            c.get(routes::PERMISSION_RULES).await?
        }
    };
    if json {
        return print_json(&all).map(|()| ExitCode::SUCCESS);
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.glob.clone(),
                dash(&r.owner),
                dash(&r.group),
                dash(&r.file_mode),
                dash(&r.dir_mode),
                if r.recursive { "yes".into() } else { "no".into() },
            ]
        })
        .collect();
    table(&["ID", "GLOB", "OWNER", "GROUP", "FILE MODE", "DIR MODE", "RECURSIVE"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// Runs `hindsight download ...`.
pub async fn download(c: &Client, a: DownloadArgs, json: bool) -> anyhow::Result<ExitCode> {
    match a.cmd {
        Some(DownloadCmd::List) => {
            let all: Vec<Download> = c.get(routes::DOWNLOADS).await?;
            if json {
                return print_json(&all).map(|()| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|d| {
                    vec![
                        d.id.to_string(),
                        d.snapshot.to_string(),
                        bytes(d.size),
                        opt_time(Some(&d.created)),
                        opt_time(d.expires.as_ref()),
                        d.path.clone(),
                    ]
                })
                .collect();
            table(&["ID", "SNAPSHOT", "SIZE", "CREATED", "EXPIRES", "PATH"], &rows);
            Ok(ExitCode::SUCCESS)
        }
        Some(DownloadCmd::Remove { id }) => {
            c.delete(&routes::download(id)).await?;
            removed(json, "download", &id.to_string(), &format!("download {id} removed"))?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let snapshot = a.snapshot.as_deref().unwrap_or_default().parse::<SnapshotId>()?;
            let body = DownloadRequest { snapshot, paths: a.paths };
            let t: Task = c.post(routes::DOWNLOADS, Some(&body)).await?;
            queued(c, t, a.wait, json).await
        }
    }
}

//! `hindsight restore ...` and `hindsight task ...`: restores are tasks the
//! agent queues; these commands queue them, follow them and cancel them.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use hindsight_api::routes;
use hindsight_api::{DatabaseRestore, FileRestore, RestoreMode, RunState, SnapshotId, Task, TaskId};

use crate::args::{RestoreCmd, TaskCmd};
use crate::client::Client;
use crate::output::{bytes, duration, fields, opt_time, print_json, spinner, table};

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
        if let Some(b) = &bar {
            b.set_message(msg);
        } else if !json && last_line.elapsed() >= Duration::from_secs(2) {
            eprintln!("task {id} {msg}");
            last_line = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if json {
        print_json(&task)?;
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

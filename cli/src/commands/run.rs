//! `hindsight run ...` and following a run until it ends.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use hindsight_api::routes;
use hindsight_api::{Run, RunId, RunState};

use crate::args::RunCmd;
use crate::client::Client;
use crate::output::{bytes, duration, fields, json_line, opt_time, print_json, spinner, table, time};

/// Runs a run subcommand.
pub async fn run(c: &Client, cmd: RunCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        RunCmd::List { job, limit } => {
            let mut path = format!("{}?limit={limit}", routes::RUNS);
            if let Some(j) = &job {
                path.push_str(&format!("&job={}", routes::encode(j)));
            }
            let runs: Vec<Run> = c.get(&path).await?;
            if json {
                return print_json(&runs).map(|_| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.job.clone(),
                        r.state.as_str().into(),
                        opt_time(r.started_at.as_ref()),
                        duration(r.started_at.as_ref(), r.finished_at.as_ref()),
                        r.stats.files_scanned.to_string(),
                        r.stats.files_copied.to_string(),
                        r.stats.files_failed.to_string(),
                        bytes(r.stats.bytes_copied),
                    ]
                })
                .collect();
            table(&["ID", "JOB", "STATE", "STARTED", "TOOK", "FILES", "COPIED", "FAILED", "BYTES COPIED"], &rows);
        }
        RunCmd::Show { id } => {
            let r: Run = c.get(&routes::run(&id)).await?;
            if json {
                return print_json(&r).map(|_| ExitCode::SUCCESS);
            }
            show(&r);
        }
        RunCmd::Cancel { id } => {
            let r: Run = c.post::<(), _>(&routes::run_cancel(&id), None).await?;
            if json {
                print_json(&r)?;
            } else if r.state == RunState::Running {
                println!("run {} is stopping", r.id);
            } else {
                println!("run {} {}", r.id, r.state.as_str());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a run in full.
pub fn show(r: &Run) {
    let s = &r.stats;
    fields(&[
        ("run", r.id.to_string()),
        ("job", r.job.clone()),
        ("state", r.state.as_str().into()),
        ("trigger", r.trigger.to_string()),
        ("queued", time(&r.queued_at)),
        ("started", opt_time(r.started_at.as_ref())),
        ("finished", opt_time(r.finished_at.as_ref())),
        ("took", duration(r.started_at.as_ref(), r.finished_at.as_ref())),
        ("files scanned", s.files_scanned.to_string()),
        ("files linked", s.files_linked.to_string()),
        ("files copied", s.files_copied.to_string()),
        ("files failed", s.files_failed.to_string()),
        ("bytes scanned", bytes(s.bytes_scanned)),
        ("bytes copied", bytes(s.bytes_copied)),
        ("current", r.current_path.clone().unwrap_or_else(|| "-".into())),
        ("message", r.message.clone().unwrap_or_else(|| "-".into())),
    ]);
    if !r.destinations.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = r
            .destinations
            .iter()
            .map(|d| {
                vec![
                    d.destination.clone(),
                    d.state.as_str().into(),
                    d.snapshot.clone().unwrap_or_else(|| "-".into()),
                    match (&d.message, &d.suspicious) {
                        (Some(m), Some(why)) => format!("{m}; suspicious: {why}"),
                        (None, Some(why)) => format!("suspicious: {why}"),
                        (Some(m), None) => m.clone(),
                        (None, None) => "-".into(),
                    },
                ]
            })
            .collect();
        table(&["DESTINATION", "STATE", "SNAPSHOT", "MESSAGE"], &rows);
    }
    if !r.errors.is_empty() {
        println!("\nfiles with errors:");
        for e in &r.errors {
            println!("  {}: {}", e.path, e.message);
        }
    }
    for h in &r.hooks {
        let how = h.error.as_deref().unwrap_or("ok");
        println!("\n{} hook ({how}, {} ms): {}", h.hook, h.millis, h.command);
        for line in h.output.lines() {
            println!("  | {line}");
        }
    }
}

/// Follows a run until it ends: a progress bar on a terminal, plain lines
/// otherwise. Exit status 0 only when the run completed.
pub async fn follow(c: &Client, id: RunId, json: bool) -> anyhow::Result<ExitCode> {
    let bar = spinner(json);
    let started = Instant::now();
    let mut last_line = Instant::now() - Duration::from_secs(10);
    let run = loop {
        let r: Run = c.get(&format!("{}?wait_ms=500", routes::run(id))).await?;
        if r.state.is_final() {
            break r;
        }
        let s = &r.stats;
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let msg = format!(
            "{}: {} files ({} linked, {} copied, {} failed), {} copied at {}/s{}",
            r.state.as_str(),
            s.files_scanned,
            s.files_linked,
            s.files_copied,
            s.files_failed,
            bytes(s.bytes_copied),
            bytes((s.bytes_copied as f64 / secs) as u64),
            r.current_path.as_deref().map(|p| format!(" - {p}")).unwrap_or_default()
        );
        if json {
            // JSON Lines: a status at most twice a second.
            if last_line.elapsed() >= Duration::from_millis(500) {
                json_line("status", &r)?;
                last_line = Instant::now();
            }
        } else if let Some(b) = &bar {
            b.set_message(msg);
        } else if last_line.elapsed() >= Duration::from_secs(2) {
            eprintln!("run {id} {msg}");
            last_line = Instant::now();
        }
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if json {
        json_line("summary", &run)?;
    } else {
        let s = &run.stats;
        println!(
            "run {} {}: {} files scanned, {} linked, {} copied, {} failed; {} copied in {}",
            run.id,
            run.state.as_str(),
            s.files_scanned,
            s.files_linked,
            s.files_copied,
            s.files_failed,
            bytes(s.bytes_copied),
            duration(run.started_at.as_ref(), run.finished_at.as_ref())
        );
        for d in &run.destinations {
            let what = d.snapshot.as_deref().map(|n| format!("snapshot {n}")).unwrap_or_default();
            let msg = d.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default();
            println!("  {}: {} {what}{msg}", d.destination, d.state.as_str());
            if let Some(why) = &d.suspicious {
                println!("  {}: SUSPICIOUS, retention skipped: {why}", d.destination);
            }
        }
        for e in &run.errors {
            println!("  error: {}: {}", e.path, e.message);
        }
    }
    Ok(match run.state {
        RunState::Completed => ExitCode::SUCCESS,
        RunState::Partial => ExitCode::from(crate::client::exit::PARTIAL),
        _ => ExitCode::FAILURE,
    })
}

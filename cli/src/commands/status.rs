//! `hindsight status`

use std::process::ExitCode;

use hindsight_api::routes;
use hindsight_api::{AlertLevel, RunState, Status};

use crate::client::Client;
use crate::output::{bytes, opt_time, print_json, table};

/// `status --check`: one line and the Nagios plugin exit codes (0 nothing
/// open, 1 warnings, 2 a critical alert, 3 the agent cannot be reached), so a
/// monitoring system or a script can run it as is.
pub async fn check(c: &Client) -> ExitCode {
    let s: Status = match c.get(routes::STATUS).await {
        Ok(s) => s,
        Err(e) => {
            println!("HINDSIGHT UNKNOWN - the agent cannot be reached: {e:#}");
            return ExitCode::from(3);
        }
    };
    let (line, code) = check_line(&s);
    println!("{line}");
    ExitCode::from(code)
}

/// The line and exit code of `status --check` for a status.
fn check_line(s: &Status) -> (String, u8) {
    let count = |level| s.alerts.iter().filter(|a| a.level == level).count();
    let (critical, warning) = (count(AlertLevel::Critical), count(AlertLevel::Warning));
    // The newest alert of the worst level says what to look at first.
    let worst = |level| s.alerts.iter().find(|a| a.level == level).map(|a| a.message.as_str()).unwrap_or_default();
    let failing = s.jobs.iter().filter(|j| j.last_run.as_ref().is_some_and(|r| r.state == RunState::Failed)).count();
    let summary = format!("{} jobs, {} failing, {} runs active", s.jobs.len(), failing, s.active_runs.len());
    if critical > 0 {
        let text = format!(
            "{critical} critical and {warning} warning alerts open; {summary}: {}",
            worst(AlertLevel::Critical)
        );
        (format!("HINDSIGHT CRITICAL - {text}"), 2)
    } else if warning > 0 {
        (format!("HINDSIGHT WARNING - {warning} warning alerts open; {summary}: {}", worst(AlertLevel::Warning)), 1)
    } else {
        (format!("HINDSIGHT OK - no alert open; {summary}"), 0)
    }
}

/// Shows the agent's status.
pub async fn show(c: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let s: Status = c.get(routes::STATUS).await?;
    if json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "hindsightd {} up {}, state dir {}, schedules in {}",
        s.version,
        uptime(s.uptime_seconds),
        s.state_dir,
        s.timezone
    );
    println!("\njobs:");
    let rows: Vec<Vec<String>> = s
        .jobs
        .iter()
        .map(|j| {
            let (state, when) = j.last_run.as_ref().map_or(("never".into(), "-".into()), |r| {
                (r.state.as_str().to_string(), opt_time(r.finished_at.as_ref()))
            });
            vec![
                j.name.clone(),
                if j.disabled { "disabled".into() } else { "enabled".into() },
                state,
                when,
                opt_time(j.next_run.as_ref()),
            ]
        })
        .collect();
    table(&["JOB", "STATE", "LAST RESULT", "ENDED", "NEXT RUN"], &rows);
    if !s.active_runs.is_empty() {
        println!("\nruns:");
        let rows: Vec<Vec<String>> = s
            .active_runs
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.job.clone(),
                    r.state.as_str().into(),
                    r.stats.files_scanned.to_string(),
                    bytes(r.stats.bytes_copied),
                    r.current_path.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(&["ID", "JOB", "STATE", "FILES", "COPIED", "CURRENT"], &rows);
    }
    if !s.alerts.is_empty() {
        println!("\nopen alerts (hindsight alert ack ID):");
        table(&super::alert::HEADER, &super::alert::rows(&s.alerts));
    }
    println!("\ndestinations:");
    let rows: Vec<Vec<String>> = s
        .destinations
        .iter()
        .map(|d| {
            let (used, pct) = d.disk_usage.as_ref().filter(|u| u.total > 0).map_or(("-".into(), 0.0), |u| {
                (format!("{} / {}", bytes(u.usage), bytes(u.total)), u.usage as f64 * 100.0 / u.total as f64)
            });
            let limit = if d.disk_limit == 0 {
                "no limit".to_string()
            } else if pct >= f64::from(d.disk_limit) {
                format!("OVER LIMIT {}%", d.disk_limit)
            } else {
                format!("limit {}%", d.disk_limit)
            };
            vec![d.name.clone(), used, format!("{pct:.0}%"), limit]
        })
        .collect();
    table(&["DESTINATION", "USED", "%", "LIMIT"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// `3d 4h`, `2h 5m`, `42s`.
fn uptime(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

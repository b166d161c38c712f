//! `hindsight status`

use std::process::ExitCode;

use hindsight_api::Status;
use hindsight_api::routes;

use crate::client::Client;
use crate::output::{bytes, opt_time, print_json, table};

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

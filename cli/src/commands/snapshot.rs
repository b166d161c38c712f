//! `hindsight snapshot ...`

use std::process::ExitCode;

use hindsight_api::Snapshot;
use hindsight_api::routes;

use crate::args::SnapshotCmd;
use crate::client::Client;
use crate::output::{bytes, duration, fields, print_json, removed, table, time, yes_no};

/// Runs a snapshot subcommand.
pub async fn run(c: &Client, cmd: SnapshotCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        SnapshotCmd::List { job, destination } => {
            let path = routes::with_query(
                routes::SNAPSHOTS,
                &[("job", job.as_deref()), ("destination", destination.as_deref())],
            );
            let snaps: Vec<Snapshot> = c.get(&path).await?;
            if json {
                return print_json(&snaps).map(|_| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = snaps
                .iter()
                .map(|s| {
                    vec![
                        s.id.to_string(),
                        s.destination.clone(),
                        s.job.clone(),
                        s.name.clone(),
                        time(&s.finished),
                        s.files.to_string(),
                        bytes(s.bytes),
                        bytes(s.bytes_added),
                        if s.partial { "partial".into() } else { "complete".into() },
                        if s.tags.is_empty() { "-".into() } else { s.tags.join(",") },
                        if s.locked { "locked".into() } else { String::new() },
                    ]
                })
                .collect();
            table(
                &["ID", "DESTINATION", "JOB", "SNAPSHOT", "TIME", "FILES", "SIZE", "ADDED", "STATE", "TAGS", "LOCK"],
                &rows,
            );
        }
        SnapshotCmd::Show { id } => {
            let s: Snapshot = c.get(&routes::snapshot(&id)).await?;
            if json {
                return print_json(&s).map(|_| ExitCode::SUCCESS);
            }
            fields(&[
                ("id", s.id.to_string()),
                ("destination", s.destination.clone()),
                ("job", s.job.clone()),
                ("snapshot", s.name.clone()),
                ("structure", s.structure.to_string()),
                ("started", time(&s.started)),
                ("finished", time(&s.finished)),
                ("took", duration(Some(&s.started), Some(&s.finished))),
                ("files", s.files.to_string()),
                ("size", bytes(s.bytes)),
                ("files added", s.files_added.to_string()),
                ("bytes added", bytes(s.bytes_added)),
                ("partial", yes_no(s.partial)),
                ("tags", if s.tags.is_empty() { "-".into() } else { s.tags.join(", ") }),
                ("locked", yes_no(s.locked)),
                ("path", s.path.clone().unwrap_or_else(|| "-".into())),
                ("error", s.error.clone().unwrap_or_else(|| "-".into())),
            ]);
        }
        SnapshotCmd::Delete { id } => {
            c.delete(&routes::snapshot(&id)).await?;
            removed(json, "snapshot", &id, &format!("snapshot {id} deleted"))?;
        }
        SnapshotCmd::Lock { id } => lock(c, &routes::snapshot_lock(&id), "lock", json).await?,
        SnapshotCmd::Unlock { id } => lock(c, &routes::snapshot_unlock(&id), "unlock", json).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn lock(c: &Client, path: &str, action: &str, json: bool) -> anyhow::Result<()> {
    let s: Snapshot = c.post::<(), _>(path, None).await?;
    if json {
        print_json(&s)
    } else {
        println!("snapshot {} {action}ed", s.id);
        Ok(())
    }
}

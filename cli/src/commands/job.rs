//! `hindsight job ...`

use std::process::ExitCode;

use hindsight_agent::model::{Job, JobPatch, NewJob, Run};

use crate::args::JobCmd;
use crate::client::{Client, enc};
use crate::output::{fields, opt_time, print_json, table, yes_no};

fn last_run(j: &Job) -> String {
    match &j.last_run {
        Some(r) => format!("#{} {} {}", r.id, r.state.as_str(), opt_time(r.finished_at.as_deref())),
        None => "never".into(),
    }
}

/// Runs a job subcommand.
pub async fn run(c: &Client, cmd: JobCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCmd::Add(a) => {
            let new = NewJob {
                name: a.name,
                kind: None,
                sources: a.sources,
                excludes: a.excludes,
                destinations: a.destinations,
                structure: a.structure,
                one_file_system: Some(!a.no_one_file_system),
                retry_failed: a.retry_failed,
                disabled: a.disabled,
            };
            let j: Job = c.post("/v1/jobs", Some(&new)).await?;
            if json {
                print_json(&j)?;
            } else {
                println!("job {} added", j.name);
            }
        }
        JobCmd::List => {
            let jobs: Vec<Job> = c.get("/v1/jobs").await?;
            if json {
                return print_json(&jobs).map(|_| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|j| {
                    vec![
                        j.name.clone(),
                        j.sources.join(","),
                        j.destinations.join(","),
                        j.structure.clone(),
                        if j.disabled { "disabled".into() } else { "enabled".into() },
                        last_run(j),
                    ]
                })
                .collect();
            table(&["NAME", "SOURCES", "DESTINATIONS", "STRUCTURE", "STATE", "LAST RUN"], &rows);
        }
        JobCmd::Show { name } => {
            let j: Job = c.get(&format!("/v1/jobs/{}", enc(&name))).await?;
            if json {
                return print_json(&j).map(|_| ExitCode::SUCCESS);
            }
            fields(&[
                ("name", j.name.clone()),
                ("type", j.kind.clone()),
                ("sources", j.sources.join(", ")),
                ("excludes", if j.excludes.is_empty() { "-".into() } else { j.excludes.join(", ") }),
                ("destinations", j.destinations.join(", ")),
                ("structure", j.structure.clone()),
                ("one file system", yes_no(j.one_file_system)),
                ("retry failed", j.retry_failed.to_string()),
                ("disabled", yes_no(j.disabled)),
                ("last run", last_run(&j)),
            ]);
        }
        JobCmd::Edit(e) => {
            let patch = JobPatch {
                sources: (!e.sources.is_empty()).then_some(e.sources),
                excludes: if e.clear_excludes {
                    Some(Vec::new())
                } else {
                    (!e.excludes.is_empty()).then_some(e.excludes)
                },
                destinations: (!e.destinations.is_empty()).then_some(e.destinations),
                structure: e.structure,
                one_file_system: e.one_file_system,
                retry_failed: e.retry_failed,
                disabled: None,
            };
            let j: Job = c.patch(&format!("/v1/jobs/{}", enc(&e.name)), &patch).await?;
            if json {
                print_json(&j)?;
            } else {
                println!("job {} updated", j.name);
            }
        }
        JobCmd::Enable { name } => toggle(c, &name, "enable", json).await?,
        JobCmd::Disable { name } => toggle(c, &name, "disable", json).await?,
        JobCmd::Remove { name } => {
            c.delete(&format!("/v1/jobs/{}", enc(&name))).await?;
            if !json {
                println!("job {name} removed (its snapshots stay on the destinations)");
            }
        }
        JobCmd::Run { name, wait } => {
            let r: Run = c.post::<(), _>(&format!("/v1/jobs/{}/run", enc(&name)), None).await?;
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

async fn toggle(c: &Client, name: &str, action: &str, json: bool) -> anyhow::Result<()> {
    let j: Job = c.post::<(), _>(&format!("/v1/jobs/{}/{action}", enc(name)), None).await?;
    if json {
        print_json(&j)
    } else {
        println!("job {} {action}d", j.name);
        Ok(())
    }
}

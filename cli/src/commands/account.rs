//! `hindsight account ...`

use std::process::ExitCode;

use hindsight_api::routes;
use hindsight_api::{Account, AccountPatch, ForgetReport, ForgetRequest, PriorityGroup};

use crate::args::{AccountCmd, PriorityGroupCmd};
use crate::client::Client;
use crate::output::{fields, opt_time, print_json, table, yes_no};

/// Runs an account subcommand.
pub async fn run(c: &Client, cmd: AccountCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        AccountCmd::List => {
            let all: Vec<Account> = c.get(routes::ACCOUNTS).await?;
            if json {
                return print_json(&all).map(|()| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        a.uid.map_or("-".into(), |u| u.to_string()),
                        if a.exists { "exists".into() } else { "orphan".into() },
                        a.priority.to_string(),
                        a.snapshots.to_string(),
                        a.jobs.join(","),
                    ]
                })
                .collect();
            table(&["ACCOUNT", "UID", "STATE", "PRIORITY", "SNAPSHOTS", "JOBS"], &rows);
        }
        AccountCmd::Show { name } => show(&c.get(&routes::account(&name)).await?, json)?,
        AccountCmd::Edit { name, priority_group } => {
            let patch = AccountPatch { priority_group: Some(priority_group) };
            show(&c.patch(&routes::account(&name), &patch).await?, json)?;
        }
        AccountCmd::Forget { name, force } => {
            let r: ForgetReport = c.post(&routes::account_forget(&name), Some(&ForgetRequest { force })).await?;
            if json {
                return print_json(&r).map(|()| ExitCode::SUCCESS);
            }
            println!("account {} forgotten:", r.account);
            println!("  {} snapshot(s) deleted", r.snapshots.len());
            for s in &r.snapshots {
                println!("    {s}");
            }
            for f in &r.failed {
                println!("  not deleted: {f}");
            }
            println!(
                "  {} run record(s) cleaned, {} alert(s), {} task(s), {} database assignment(s) removed",
                r.runs, r.alerts, r.tasks, r.assignments
            );
            if !r.failed.is_empty() {
                eprintln!(
                    "error: {} snapshot(s) of account {} could not be deleted; run the command again",
                    r.failed.len(),
                    r.account
                );
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(a: &Account, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(a);
    }
    fields(&[
        ("name", a.name.clone()),
        ("exists", yes_no(a.exists)),
        ("uid", a.uid.map_or("-".into(), |u| u.to_string())),
        ("home", a.home.clone().unwrap_or_else(|| "-".into())),
        ("gone since", opt_time(a.gone_since.as_ref())),
        ("priority group", a.priority_group.clone().unwrap_or_else(|| "- (the default)".into())),
        ("priority", a.priority.to_string()),
        ("snapshots", a.snapshots.to_string()),
        ("jobs", if a.jobs.is_empty() { "-".into() } else { a.jobs.join(", ") }),
        ("databases", if a.databases.is_empty() { "-".into() } else { a.databases.join(", ") }),
    ]);
    Ok(())
}

/// Runs a priority-group subcommand.
pub async fn groups(c: &Client, cmd: PriorityGroupCmd, json: bool) -> anyhow::Result<ExitCode> {
    let all: Vec<PriorityGroup> = match cmd {
        PriorityGroupCmd::List => c.get(routes::PRIORITY_GROUPS).await?,
        PriorityGroupCmd::Add { name, priority } => {
            c.post(routes::PRIORITY_GROUPS, Some(&PriorityGroup { name, priority })).await?
        }
        PriorityGroupCmd::Remove { name } => {
            c.delete(&routes::priority_group(&name)).await?;
            c.get(routes::PRIORITY_GROUPS).await?
        }
    };
    if json {
        return print_json(&all).map(|()| ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = all.iter().map(|g| vec![g.name.clone(), g.priority.to_string()]).collect();
    table(&["GROUP", "PRIORITY"], &rows);
    Ok(ExitCode::SUCCESS)
}

//! `hindsight destination ...`

use std::process::ExitCode;

use hindsight_agent::model::{
    CheckRequest, Destination, DestinationCheck, DestinationPatch, DestinationType, NewDestination, option_str,
};
use serde_json::{Map, Value};

use crate::args::DestinationCmd;
use crate::client::{Client, enc};
use crate::output::{bytes, fields, print_json, table, time, yes_no};

fn usage(d: &Destination) -> String {
    match &d.disk_usage {
        Some(u) if u.total > 0 => {
            format!("{} of {} ({:.0}%)", bytes(u.usage), bytes(u.total), u.usage as f64 * 100.0 / u.total as f64)
        }
        _ => "-".into(),
    }
}

fn flags(d: &Destination) -> String {
    let f: Vec<&str> = [(d.hidden, "hidden"), (d.readonly, "readonly"), (d.disabled, "disabled")]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect();
    if f.is_empty() { "-".into() } else { f.join(",") }
}

fn limit(d: &Destination) -> String {
    if d.disk_limit == 0 { "none".into() } else { format!("{}%", d.disk_limit) }
}

fn show(d: &Destination) {
    let mut rows = vec![("name", d.name.clone()), ("id", d.id.clone()), ("type", d.kind.clone())];
    for (k, v) in &d.options {
        rows.push((k.as_str(), v.as_str().map(String::from).unwrap_or_else(|| v.to_string())));
    }
    rows.extend([
        ("disk usage", usage(d)),
        ("free", d.disk_usage.as_ref().map_or("-".into(), |u| bytes(u.free))),
        ("measured", d.disk_usage.as_ref().map_or("-".into(), |u| time(&u.updated))),
        ("disk limit", limit(d)),
        ("hidden", yes_no(d.hidden)),
        ("readonly", yes_no(d.readonly)),
        ("disabled", yes_no(d.disabled)),
        ("jobs", d.jobs.to_string()),
    ]);
    fields(&rows);
}

/// One line per snapshot (its problems indented below it), then a summary.
fn print_check(r: &DestinationCheck) {
    for s in &r.snapshots {
        let what = format!("{}/{} ({})", s.job, s.snapshot, s.structure);
        if s.ok {
            println!("{what}: ok ({} entries, {} read)", s.entries_checked, bytes(s.bytes_read));
            continue;
        }
        let n = s.problems.len();
        println!("{what}: {n} problem{}", if n == 1 { "" } else { "s" });
        for p in &s.problems {
            match &p.path {
                Some(path) => println!("    {path}: {}", p.message),
                None => println!("    {}", p.message),
            }
        }
    }
    let bad = r.snapshots.iter().filter(|s| !s.ok).count();
    let read: u64 = r.snapshots.iter().map(|s| s.bytes_read).sum();
    let data = if r.read_data { "file contents hashed" } else { "file contents not read (--read-data to hash them)" };
    let n = r.snapshots.len();
    println!(
        "destination {}: {n} snapshot{} checked, {}; {} read, {data}",
        r.destination,
        if n == 1 { "" } else { "s" },
        if bad == 0 { "all ok".to_string() } else { format!("{bad} with problems") },
        bytes(read)
    );
}

/// Runs a destination subcommand.
pub async fn run(c: &Client, cmd: DestinationCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        DestinationCmd::Types => {
            let types: Vec<DestinationType> = c.get("/v1/destination-types").await?;
            if json {
                return print_json(&types).map(|_| ExitCode::SUCCESS);
            }
            for t in types {
                println!("{}: {}", t.name, t.description);
                for o in t.options {
                    let req = if o.required { " (required)" } else { "" };
                    println!("  --{:<16} {}{req}", o.name.replace('_', "-"), o.description);
                }
            }
        }
        DestinationCmd::Add(a) => {
            let mut options = Map::new();
            if let Some(p) = a.path {
                options.insert("path".into(), Value::String(p));
            }
            let new = NewDestination {
                name: a.name,
                kind: a.kind,
                options,
                disk_limit: a.disk_limit,
                hidden: a.hidden,
                readonly: a.readonly,
                disabled: a.disabled,
                force: a.force,
            };
            let d: Destination = c.post("/v1/destinations", Some(&new)).await?;
            if json {
                print_json(&d)?;
            } else {
                println!("destination {} added ({} {})", d.name, d.kind, option_str(&d.options, "path").unwrap_or(""));
            }
        }
        DestinationCmd::List => {
            let ds: Vec<Destination> = c.get("/v1/destinations").await?;
            if json {
                return print_json(&ds).map(|_| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = ds
                .iter()
                .map(|d| {
                    vec![
                        d.name.clone(),
                        d.kind.clone(),
                        option_str(&d.options, "path").unwrap_or("-").to_string(),
                        usage(d),
                        limit(d),
                        flags(d),
                        d.jobs.to_string(),
                    ]
                })
                .collect();
            table(&["NAME", "TYPE", "PATH", "USAGE", "LIMIT", "FLAGS", "JOBS"], &rows);
        }
        DestinationCmd::Show { name } => {
            let d: Destination = c.get(&format!("/v1/destinations/{}", enc(&name))).await?;
            if json {
                print_json(&d)?;
            } else {
                show(&d);
            }
        }
        DestinationCmd::Edit(e) => {
            let mut patch = DestinationPatch {
                disk_limit: e.disk_limit,
                hidden: e.hidden,
                readonly: e.readonly,
                disabled: e.disabled,
                force: e.force,
                ..Default::default()
            };
            if let Some(p) = e.path {
                patch.options = Some(Map::from_iter([("path".to_string(), Value::String(p))]));
            }
            let d: Destination = c.patch(&format!("/v1/destinations/{}", enc(&e.name)), &patch).await?;
            if json {
                print_json(&d)?;
            } else {
                println!("destination {} updated", d.name);
            }
        }
        DestinationCmd::Remove { name } => {
            c.delete(&format!("/v1/destinations/{}", enc(&name))).await?;
            if !json {
                println!("destination {name} removed (its snapshots stay on disk)");
            }
        }
        DestinationCmd::Check { name, read_data } => {
            let path = format!("/v1/destinations/{}/check", enc(&name));
            let report: DestinationCheck = c.post(&path, Some(&CheckRequest { read_data })).await?;
            if json {
                print_json(&report)?;
            } else {
                print_check(&report);
            }
            if !report.ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        DestinationCmd::Validate { name } => {
            let d: Destination = c.post::<(), _>(&format!("/v1/destinations/{}/validate", enc(&name)), None).await?;
            if json {
                print_json(&d)?;
            } else {
                println!("destination {} is valid: {}", d.name, usage(&d));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

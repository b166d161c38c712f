//! `hindsight destination ...`

use std::process::ExitCode;

use hindsight_api::routes;
use hindsight_api::{
    CheckRequest, Destination, DestinationCheck, DestinationPatch, DestinationType, NewDestination, Snapshot,
    option_str,
};
use serde_json::{Map, Value};

use crate::args::{DestinationCmd, OptionArgs};
use crate::client::Client;
use crate::output::{bytes, fields, opt_time, print_json, removed, table, time, yes_no};

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
    let mut rows = vec![("name", d.name.clone()), ("id", d.id.to_string()), ("type", d.kind.to_string())];
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
        (
            "check schedule",
            match &d.check.schedule {
                Some(s) => format!("{s} at {}, reading {}% of the contents", d.check.time, d.check.read_data),
                None => "none".into(),
            },
        ),
        ("next check", opt_time(d.check.next.as_ref())),
        (
            "last check",
            match &d.check.last {
                Some(l) if l.ok => format!("{} ({}): ok, {} snapshots", time(&l.finished), l.trigger, l.snapshots),
                Some(l) => format!(
                    "{} ({}): {} PROBLEMS in {} snapshots",
                    time(&l.finished),
                    l.trigger,
                    l.problems,
                    l.snapshots
                ),
                None => "never".into(),
            },
        ),
    ]);
    fields(&rows);
}

/// The options given as flags: `--path`, then `--option`s, then `--option-file`s,
/// then the environment's `HINDSIGHT_<OPTION>_FILE` (a file holding the value)
/// and `HINDSIGHT_<OPTION>_COMMAND` (a command printing it) for options the
/// flags did not give (with `from_env`): secrets never need to be on a command line.
/// With `empty_removes` (edit), an empty value becomes `null`, which removes the option.
pub fn collect_options(
    path: Option<String>,
    args: OptionArgs,
    empty_removes: bool,
    from_env: bool,
) -> anyhow::Result<Map<String, Value>> {
    let mut options = Map::new();
    if let Some(p) = path {
        options.insert("path".into(), Value::String(p));
    }
    for o in args.options {
        let v = if empty_removes && o.value.is_empty() { Value::Null } else { Value::String(o.value) };
        options.insert(o.key, v);
    }
    for o in args.option_files {
        let text = super::read_value_file(std::path::Path::new(&o.value), &format!("option {}", o.key))?;
        options.insert(o.key, Value::String(text));
    }
    if from_env {
        for (key, value) in env_options()? {
            options.entry(key).or_insert(Value::String(value));
        }
    }
    Ok(options)
}

/// Options from `HINDSIGHT_<OPTION>_FILE` and `HINDSIGHT_<OPTION>_COMMAND`.
fn env_options() -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (k, v) in std::env::vars_os() {
        let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else { continue };
        let Some(rest) = k.strip_prefix("HINDSIGHT_") else { continue };
        if let Some(name) = rest.strip_suffix("_FILE") {
            let key = name.to_lowercase();
            out.push((key.clone(), super::read_value_file(std::path::Path::new(v), &format!("option {key}"))?));
        } else if let Some(name) = rest.strip_suffix("_COMMAND") {
            let key = name.to_lowercase();
            out.push((key.clone(), super::command_value(v, &format!("option {key}"))?));
        }
    }
    Ok(out)
}

/// Where a destination is, in one cell: a local path, else the main options of its type.
fn location(d: &Destination) -> String {
    let get = |k| option_str(&d.options, k);
    let root = get("path").unwrap_or("");
    let place = match d.kind.as_str() {
        "local" => return root.to_string(),
        "s3" | "gcs" => get("bucket").map(|b| format!("{b}:")),
        "ftp" => get("host").map(|h| format!("{h}:")),
        _ => None,
    };
    let out = format!("{}{root}", place.unwrap_or_default());
    if out.is_empty() { "/".into() } else { out }
}

/// One line per snapshot (its problems indented below it), then a summary.
fn print_check(r: &DestinationCheck) {
    for s in &r.snapshots {
        let structure = s.structure.map_or("unknown", |st| st.as_str());
        let what = format!("{}/{} ({structure})", s.job, s.snapshot);
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
    let data = match r.read_data_percent {
        0 if r.read_data => "file contents hashed".to_string(),
        0 => "file contents not read (--read-data to hash them)".to_string(),
        100 => "file contents hashed".to_string(),
        p => format!("the contents of about {p}% of the files hashed"),
    };
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
            let types: Vec<DestinationType> = c.get(routes::DESTINATION_TYPES).await?;
            if json {
                return print_json(&types).map(|_| ExitCode::SUCCESS);
            }
            for t in types {
                println!("{}: {}", t.name, t.description);
                for o in t.options {
                    let note = match (o.required, o.secret) {
                        (true, _) => " (required)",
                        (false, true) => " (secret: stored encrypted, never shown)",
                        (false, false) => "",
                    };
                    println!("  {:<18} {}{note}", o.name, o.description);
                }
            }
        }
        DestinationCmd::Add(a) => {
            let options = collect_options(a.path, a.options, false, true)?;
            let asked_readonly = a.readonly;
            let new = NewDestination {
                name: a.name,
                kind: a.kind.parse()?,
                options,
                disk_limit: a.disk_limit,
                hidden: a.hidden,
                readonly: a.readonly,
                disabled: a.disabled,
                force: a.force,
                writable: a.writable,
                check_schedule: a.check.check_schedule,
                check_time: a.check.check_time,
                check_read_data: a.check.check_read_data,
            };
            let d: Destination = c.post(routes::DESTINATIONS, Some(&new)).await?;
            if json {
                print_json(&d)?;
            } else {
                println!("destination {} added ({} {})", d.name, d.kind, location(&d));
                if d.readonly && !asked_readonly {
                    println!("it holds another agent's destination: adopted read-only (--writable to write to it)");
                }
            }
        }
        DestinationCmd::List => {
            let ds: Vec<Destination> = c.get(routes::DESTINATIONS).await?;
            if json {
                return print_json(&ds).map(|_| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = ds
                .iter()
                .map(|d| {
                    vec![
                        d.name.clone(),
                        d.kind.to_string(),
                        location(d),
                        usage(d),
                        limit(d),
                        flags(d),
                        d.jobs.to_string(),
                    ]
                })
                .collect();
            table(&["NAME", "TYPE", "LOCATION", "USAGE", "LIMIT", "FLAGS", "JOBS"], &rows);
        }
        DestinationCmd::Show { name } => {
            let d: Destination = c.get(&routes::destination(&name)).await?;
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
                check_schedule: e.check.check_schedule,
                check_time: e.check.check_time,
                check_read_data: e.check.check_read_data,
                ..Default::default()
            };
            let options = collect_options(e.path, e.options, true, true)?;
            if !options.is_empty() {
                patch.options = Some(options);
            }
            let d: Destination = c.patch(&routes::destination(&e.name), &patch).await?;
            if json {
                print_json(&d)?;
            } else {
                println!("destination {} updated", d.name);
            }
        }
        DestinationCmd::Remove { name } => {
            c.delete(&routes::destination(&name)).await?;
            removed(json, "destination", &name, &format!("destination {name} removed (its snapshots stay on disk)"))?;
        }
        DestinationCmd::Check { name, read_data, read_data_percent, last } => {
            let path = routes::destination_check(&name);
            let report: DestinationCheck = if last {
                c.get(&path).await?
            } else {
                c.post(&path, Some(&CheckRequest { read_data, read_data_percent })).await?
            };
            if json {
                print_json(&report)?;
            } else {
                print_check(&report);
            }
            if !report.ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        DestinationCmd::Reindex { name } => {
            let path = routes::destination_reindex(&name);
            let snaps: Vec<Snapshot> = c.post::<(), _>(&path, None).await?;
            if json {
                print_json(&snaps)?;
            } else {
                let n = snaps.len();
                println!("destination {name} reindexed: {n} snapshot{}", if n == 1 { "" } else { "s" });
            }
        }
        DestinationCmd::Validate { name } => {
            let d: Destination = c.post::<(), _>(&routes::destination_validate(&name), None).await?;
            if json {
                print_json(&d)?;
            } else {
                println!("destination {} is valid: {}", d.name, usage(&d));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `hindsight versions`, `find` and `diff`: file history from the indexes.

use std::process::ExitCode;

use hindsight_api::routes;
use hindsight_api::{FileVersion, FindMatch, SnapshotDiff, SnapshotRef};

use crate::client::Client;
use crate::output::{bytes, print_json, table, time};

/// `job/snapshot@destination`.
fn shown(s: &SnapshotRef) -> String {
    format!("{}/{}@{}", s.job, s.name, s.destination)
}

/// `hindsight versions PATH`.
pub async fn versions(
    c: &Client,
    path: &str,
    job: Option<&str>,
    destination: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let q = routes::with_query(routes::VERSIONS, &[("path", Some(path)), ("job", job), ("destination", destination)]);
    let all: Vec<FileVersion> = c.get(&q).await?;
    if json {
        return print_json(&all).map(|()| ExitCode::SUCCESS);
    }
    if all.is_empty() {
        eprintln!("error: {path} is in no snapshot");
        return Ok(ExitCode::from(5));
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|v| {
            let (newest, oldest) = (v.snapshots.first(), v.snapshots.last());
            let what = match (&v.state.blake3, &v.state.target) {
                (Some(h), _) => h.chars().take(12).collect(),
                (None, Some(t)) => format!("-> {t}"),
                _ => v.state.kind.clone(),
            };
            vec![
                oldest.map(|s| s.name.clone()).unwrap_or_default(),
                newest.map(|s| s.name.clone()).unwrap_or_default(),
                v.snapshots.len().to_string(),
                bytes(v.state.size),
                time(&v.state.mtime),
                format!("{:04o} {}:{}", v.state.mode, v.state.uid, v.state.gid),
                what,
            ]
        })
        .collect();
    table(&["FIRST", "LAST", "SNAPSHOTS", "SIZE", "MTIME", "MODE OWNER", "BLAKE3"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// The query of `hindsight find`.
pub struct Find<'a> {
    /// Glob.
    pub pattern: &'a str,
    /// Only this job's snapshots.
    pub job: Option<&'a str>,
    /// Only this destination's.
    pub destination: Option<&'a str>,
    /// Completed at or after.
    pub since: Option<&'a str>,
    /// Completed before.
    pub until: Option<&'a str>,
}

/// `hindsight find PATTERN`.
pub async fn find(c: &Client, f: Find<'_>, json: bool) -> anyhow::Result<ExitCode> {
    let q = routes::with_query(
        routes::FIND,
        &[
            ("pattern", Some(f.pattern)),
            ("job", f.job),
            ("destination", f.destination),
            ("since", f.since),
            ("until", f.until),
        ],
    );
    let all: Vec<FindMatch> = c.get(&q).await?;
    if json {
        return print_json(&all).map(|()| ExitCode::SUCCESS);
    }
    for m in &all {
        let snaps: Vec<String> = m.snapshots.iter().map(shown).collect();
        println!("{} ({}): {}", m.path, m.kind, snaps.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// `hindsight diff A B [PATH]`.
pub async fn diff(c: &Client, a: i64, b: i64, path: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let (a, b) = (a.to_string(), b.to_string());
    let q = routes::with_query(routes::DIFF, &[("a", Some(&a)), ("b", Some(&b)), ("path", path)]);
    let d: SnapshotDiff = c.get(&q).await?;
    if json {
        return print_json(&d).map(|()| ExitCode::SUCCESS);
    }
    println!("comparing {} with {}", shown(&d.a), shown(&d.b));
    for e in &d.entries {
        let sign = match e.change.as_str() {
            "added" => "+",
            "removed" => "-",
            _ => "M",
        };
        let what = if e.what.is_empty() { String::new() } else { format!(" ({})", e.what.join(", ")) };
        println!("{sign}    {}{what}", e.path);
    }
    println!("{} added, {} removed, {} changed", d.added, d.removed, d.changed);
    Ok(ExitCode::SUCCESS)
}

//! Destination rules: types and their options, validation, adoption and reindex.

use std::path::{Path, PathBuf};

use hindsight_fs::layout::{DestinationRoot, InitOutcome};
use hindsight_fs::local;
use hindsight_fs::names::check_name;
use serde_json::{Map, Value};

use crate::api::error::ApiError;
use crate::model::{Destination, DestinationType, DiskUsageInfo, NewDestination, OptionSpec, Snapshot};

/// The destination types this build supports, with their options.
pub fn types() -> Vec<DestinationType> {
    vec![DestinationType {
        name: "local".into(),
        description: "A directory on this machine (local disk, mounted NAS): hardlink snapshots".into(),
        options: vec![OptionSpec {
            name: "path".into(),
            required: true,
            secret: false,
            description: "Absolute path of the destination root".into(),
        }],
    }]
}

/// The options a type takes, or a 400 naming the types there are.
fn type_spec(kind: &str) -> Result<DestinationType, ApiError> {
    types().into_iter().find(|t| t.name == kind).ok_or_else(|| {
        let names: Vec<String> = types().into_iter().map(|t| t.name).collect();
        ApiError::bad_request(format!("unknown destination type {kind:?}; supported: {}", names.join(", ")))
    })
}

/// Checks option names and required options against the type.
pub fn check_options(kind: &str, options: &Map<String, Value>) -> Result<(), ApiError> {
    let spec = type_spec(kind)?;
    for key in options.keys() {
        if !spec.options.iter().any(|o| &o.name == key) {
            return Err(ApiError::bad_request(format!("destination type {kind} has no option {key:?}")));
        }
    }
    for o in spec.options.iter().filter(|o| o.required) {
        match options.get(&o.name) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::String(_)) | None => {
                return Err(ApiError::bad_request(format!("option {} is required for type {kind}", o.name)));
            }
            Some(_) => return Err(ApiError::bad_request(format!("option {} must be a string", o.name))),
        }
    }
    if kind == "local" {
        let path = local_path_opt(options)?;
        if !path.is_absolute() {
            return Err(ApiError::bad_request(format!("path {} is not absolute", path.display())));
        }
    }
    Ok(())
}

fn local_path_opt(options: &Map<String, Value>) -> Result<PathBuf, ApiError> {
    options
        .get("path")
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| ApiError::bad_request("option path is required"))
}

/// The root directory of a local destination.
pub fn local_root(d: &Destination) -> Result<DestinationRoot, ApiError> {
    if d.kind != "local" {
        return Err(ApiError::bad_request(format!("destination {} is of type {}, not local", d.name, d.kind)));
    }
    Ok(DestinationRoot::new(local_path_opt(&d.options)?))
}

/// Checks a disk limit percentage.
pub fn check_disk_limit(limit: i64) -> Result<u8, ApiError> {
    u8::try_from(limit).ok().filter(|l| *l <= 100).ok_or_else(|| {
        ApiError::bad_request(format!("disk_limit {limit} is out of range: use 0-100 (percent; 0 = no limit)"))
    })
}

/// Tests a destination: reachable, writable (unless read-only), hardlinks work.
pub fn validate(d: &Destination) -> Result<DiskUsageInfo, ApiError> {
    let root = local_root(d)?;
    let usage = if d.readonly {
        let p = root.path();
        if !p.is_dir() {
            return Err(ApiError::validation_failed(format!("destination path {} is not a directory", p.display())));
        }
        local::disk_usage(p)
    } else {
        local::validate(root.path())
    }
    .map_err(|e| ApiError::validation_failed(e.to_string()))?;
    Ok(DiskUsageInfo {
        usage: usage.usage,
        free: usage.free,
        total: usage.total,
        updated: jiff::Timestamp::now().to_string(),
    })
}

/// Measures a destination's disk usage now (no write test).
pub fn measure(d: &Destination) -> Result<DiskUsageInfo, ApiError> {
    let root = local_root(d)?;
    let u = local::disk_usage(root.path()).map_err(|e| ApiError::validation_failed(e.to_string()))?;
    Ok(DiskUsageInfo { usage: u.usage, free: u.free, total: u.total, updated: jiff::Timestamp::now().to_string() })
}

/// Builds and tests a new destination; prepares its root (marker) unless read-only.
/// Returns the destination and the snapshots it already holds (adoption).
pub fn create(new: NewDestination) -> Result<(Destination, Vec<Snapshot>), ApiError> {
    check_name("destination", &new.name).map_err(ApiError::bad_request)?;
    check_options(&new.kind, &new.options)?;
    let disk_limit = check_disk_limit(new.disk_limit.unwrap_or(0))?;
    let mut d = Destination {
        id: uuid::Uuid::new_v4().to_string(),
        name: new.name,
        kind: new.kind,
        options: new.options,
        disk_limit,
        hidden: new.hidden,
        readonly: new.readonly,
        disabled: new.disabled,
        jobs: 0,
        disk_usage: None,
    };
    d.disk_usage = Some(validate(&d)?);
    prepare_root(&mut d, new.force)?;
    let snapshots = scan(&d)?;
    Ok((d, snapshots))
}

/// Writes or adopts the root's marker; the destination takes an adopted marker's id.
pub fn prepare_root(d: &mut Destination, force: bool) -> Result<(), ApiError> {
    let root = local_root(d)?;
    if d.readonly {
        let m = root.require_marker().map_err(|e| ApiError::validation_failed(e.to_string()))?;
        d.id = m.destination_id;
        return Ok(());
    }
    match root.init(&d.id, force).map_err(|e| ApiError::validation_failed(e.to_string()))? {
        InitOutcome::Created(_) => {}
        InitOutcome::Adopted(m) => {
            tracing::info!(destination = %d.name, "adopting existing destination {}", m.destination_id);
            d.id = m.destination_id;
        }
    }
    Ok(())
}

/// The snapshots a destination holds, read from their manifests.
pub fn scan(d: &Destination) -> Result<Vec<Snapshot>, ApiError> {
    let root = local_root(d)?;
    let fail =
        |e: hindsight_fs::FsError| ApiError::validation_failed(format!("cannot read destination {}: {e}", d.name));
    let mut out = Vec::new();
    for job in root.list_jobs().map_err(fail)? {
        for name in root.list_snapshots(&job).map_err(fail)? {
            match root.read_manifest(&job, &name) {
                Ok(m) => out.push(snapshot_from_manifest(d, &m, root.path())),
                Err(e) => tracing::warn!(destination = %d.name, "skipping snapshot {job}/{name}: {e}"),
            }
        }
    }
    Ok(out)
}

/// The API view of a snapshot from its manifest.
pub fn snapshot_from_manifest(d: &Destination, m: &hindsight_fs::manifest::Manifest, root: &Path) -> Snapshot {
    Snapshot {
        id: 0,
        destination: d.name.clone(),
        job: m.job.clone(),
        name: m.name.clone(),
        structure: m.structure.as_str().into(),
        started: m.started.clone(),
        finished: m.finished.clone(),
        files: m.stats.files,
        bytes: m.stats.bytes,
        files_added: m.stats.files_added,
        bytes_added: m.stats.bytes_added,
        partial: m.partial,
        tags: m.tags.clone(),
        locked: false,
        path: Some(root.join(&m.job).join(&m.name).to_string_lossy().into_owned()),
        error: None,
    }
}

//! Destination rules: types and their options, validation, adoption and reindex.
//!
//! A destination is a local directory or a remote service (an object store
//! through OpenDAL, or an SSH server): [`open`] builds the fs crate's closed
//! [`Destination`] from a catalog record, so that validation, adoption and
//! reindex are written once for every kind. Remote options may hold secrets: a [`DestinationRecord`]
//! read from the catalog carries them sealed, and they are opened only here,
//! when a store is built.

use std::path::{Path, PathBuf};

use hindsight_fs::Destination;
use hindsight_fs::FsError;
use hindsight_fs::Manifest;
use hindsight_fs::check_name;
use hindsight_fs::remote::Need;
use hindsight_fs::remote::{RemoteConfig, RemoteStore, Service};
use hindsight_fs::{DestinationRoot, InitOutcome};
use hindsight_fs::{DiskUsage, disk_usage, validate_local};
use serde_json::{Map, Value};

use crate::catalog::Catalog;
use crate::error::AgentError;
use crate::model::{
    CheckPlan, DestinationId, DestinationKind, DestinationRecord, DestinationType, DiskUsageInfo, NewDestination,
    OptionSpec, Snapshot, SnapshotId,
};
use crate::secrets::{self, MasterKey};

/// The destination types this build supports, with their options.
pub fn types() -> Vec<DestinationType> {
    let local = DestinationType {
        name: DestinationKind::Local,
        description: "A directory on this machine (local disk, mounted NAS): hardlink snapshots".into(),
        options: vec![OptionSpec {
            name: "path".into(),
            required: true,
            secret: false,
            description: "Absolute path of the destination root".into(),
        }],
    };
    let remote = Service::ALL.into_iter().map(|s| DestinationType {
        name: kind_of(s),
        description: s.description().into(),
        options: s
            .options()
            .into_iter()
            .map(|o| OptionSpec {
                name: o.name.into(),
                required: o.need == Need::Required,
                secret: o.need == Need::Secret,
                description: o.description.into(),
            })
            .collect(),
    });
    std::iter::once(local).chain(remote).collect()
}

/// The remote service of a destination type; `None` for a local directory.
pub fn service(kind: DestinationKind) -> Option<Service> {
    match kind {
        DestinationKind::Local => None,
        DestinationKind::S3 => Some(Service::S3),
        DestinationKind::Gcs => Some(Service::Gcs),
        DestinationKind::Ftp => Some(Service::Ftp),
        DestinationKind::Gdrive => Some(Service::Gdrive),
        DestinationKind::Dropbox => Some(Service::Dropbox),
        DestinationKind::Onedrive => Some(Service::Onedrive),
        DestinationKind::Ssh => Some(Service::Ssh),
        DestinationKind::Sftp => Some(Service::Sftp),
    }
}

/// The destination type of a remote service.
fn kind_of(s: Service) -> DestinationKind {
    match s {
        Service::S3 => DestinationKind::S3,
        Service::Gcs => DestinationKind::Gcs,
        Service::Ftp => DestinationKind::Ftp,
        Service::Gdrive => DestinationKind::Gdrive,
        Service::Dropbox => DestinationKind::Dropbox,
        Service::Onedrive => DestinationKind::Onedrive,
        Service::Ssh => DestinationKind::Ssh,
        Service::Sftp => DestinationKind::Sftp,
    }
}

/// Checks option names, required options and values against the type (400 on any problem).
pub fn check_options(kind: DestinationKind, options: &Map<String, Value>) -> Result<(), AgentError> {
    if service(kind).is_some() {
        if let Some(why) = options.keys().find_map(|k| RemoteConfig::refused_option(kind.as_str(), k)) {
            return Err(AgentError::invalid(why));
        }
        return RemoteConfig::parse(kind.as_str(), options).map(|_| ()).map_err(AgentError::invalid);
    }
    for key in options.keys() {
        if key != "path" {
            return Err(AgentError::invalid(format!("destination type {kind} has no option {key:?}")));
        }
    }
    match options.get("path") {
        Some(Value::String(s)) if !s.is_empty() => {
            if !Path::new(s).is_absolute() {
                return Err(AgentError::invalid(format!("path {s} is not absolute")));
            }
            Ok(())
        }
        Some(Value::String(_)) | None => Err(AgentError::invalid(format!("option path is required for type {kind}"))),
        Some(_) => Err(AgentError::invalid("option path must be a string")),
    }
}

/// The root directory of a local destination.
pub fn local_root(d: &DestinationRecord) -> Result<DestinationRoot, AgentError> {
    if d.kind != DestinationKind::Local {
        return Err(AgentError::invalid(format!("destination {} is of type {}, not local", d.name, d.kind)));
    }
    let path =
        d.options.get("path").and_then(Value::as_str).ok_or_else(|| AgentError::invalid("option path is required"))?;
    Ok(DestinationRoot::new(path))
}

/// The storage of a destination; sealed secrets are opened with `key`.
pub fn open(key: &MasterKey, d: &DestinationRecord) -> Result<Destination, AgentError> {
    if service(d.kind).is_none() {
        return local_root(d).map(Destination::Local);
    }
    let options = secrets::open_options(key, &d.options).map_err(|e| {
        AgentError::conflict(format!(
            "destination {}: {e}; set it again with `hindsight destination edit {} --option NAME=VALUE`",
            d.name, d.name
        ))
    })?;
    let config = RemoteConfig::parse(d.kind.as_str(), &options).map_err(AgentError::invalid)?;
    let store =
        RemoteStore::new(config).map_err(|e| AgentError::from_fs(&e, format!("destination {}: {e}", d.name)))?;
    Ok(Destination::Remote(store))
}

/// Merges the options of a PATCH into a destination: a value replaces the
/// stored one, `null` removes it, and a secret sent back as `********` (as the
/// API shows it) keeps the stored one. Returns whether anything changed.
pub fn merge_options(d: &mut DestinationRecord, patch: Map<String, Value>) -> bool {
    let mut changed = false;
    for (k, v) in patch {
        if v.as_str() == Some(secrets::REDACTED) && secrets::is_secret(d.kind.as_str(), &k) {
            continue;
        }
        if v.is_null() {
            changed |= d.options.remove(&k).is_some();
        } else if d.options.get(&k) != Some(&v) {
            d.options.insert(k, v);
            changed = true;
        }
    }
    changed
}

/// Why `d` is refused backups for its disk usage `u` (an alert's text), when
/// it is at or above its disk limit.
pub fn over_disk_limit(d: &DestinationRecord, u: &DiskUsageInfo) -> Option<String> {
    let used = if u.total == 0 { 0.0 } else { u.usage as f64 * 100.0 / u.total as f64 };
    (d.disk_limit > 0 && u.total > 0 && used >= f64::from(d.disk_limit))
        .then(|| format!("destination {} is {used:.0}% full, at or above its disk limit of {}%", d.name, d.disk_limit))
}

/// Checks a disk limit percentage.
pub fn check_disk_limit(limit: i64) -> Result<u8, AgentError> {
    u8::try_from(limit).ok().filter(|l| *l <= 100).ok_or_else(|| {
        AgentError::invalid(format!("disk_limit {limit} is out of range: use 0-100 (percent; 0 = no limit)"))
    })
}

/// Tests a destination: reachable, writable (unless read-only), hardlinks work
/// (local). Returns the disk usage where the destination can report it; remote
/// services cannot, so they give `None`.
pub fn validate(d: &DestinationRecord, t: &Destination) -> Result<Option<DiskUsageInfo>, AgentError> {
    let fail = |e: FsError| AgentError::from_fs(&e, format!("destination {}: {e}", d.name));
    match t {
        Destination::Local(root) => {
            let p = root.path();
            let usage = if d.readonly {
                if !p.is_dir() {
                    return Err(AgentError::unreachable(format!(
                        "destination path {} is not a directory",
                        p.display()
                    )));
                }
                disk_usage(p)
            } else {
                validate_local(p)
            }
            .map_err(|e| AgentError::from_fs(&e, e.to_string()))?;
            return Ok(Some(usage_info(usage)));
        }
        // Read-only: reading the marker proves the credentials and the root, and writes nothing.
        Destination::Remote(store) if d.readonly => store.require_marker().map(|_| ()).map_err(fail)?,
        Destination::Remote(store) => store.validate().map(|_| ()).map_err(fail)?,
    }
    Ok(remote_usage(t))
}

/// Disk usage of a remote destination, where the service can tell (SSH: `df` on the server).
fn remote_usage(t: &Destination) -> Option<DiskUsageInfo> {
    let Destination::Remote(store) = t else { return None };
    match store.disk_usage()? {
        Ok(u) => Some(usage_info(u)),
        Err(e) => {
            tracing::warn!("disk usage of {}: {e}", t.describe());
            None
        }
    }
}

fn usage_info(u: DiskUsage) -> DiskUsageInfo {
    DiskUsageInfo { usage: u.usage, free: u.free, total: u.total, updated: jiff::Timestamp::now() }
}

/// Measures a local destination's disk usage now (no write test); remote ones cannot report it.
pub fn measure(d: &DestinationRecord) -> Result<DiskUsageInfo, AgentError> {
    let root = local_root(d)?;
    disk_usage(root.path()).map(usage_info).map_err(|e| AgentError::from_fs(&e, e.to_string()))
}

/// A check plan with the given changes, checked: a schedule as for jobs but
/// not `after:` (empty: none), a time HH:MM, a percent 0-100. When the
/// schedule or its time changes, the next due time is planned again.
pub fn check_plan(
    mut plan: CheckPlan,
    schedule: Option<String>,
    time: Option<String>,
    read_data: Option<u8>,
) -> Result<CheckPlan, AgentError> {
    let before = (plan.schedule.clone(), plan.time.clone());
    if let Some(s) = schedule {
        plan.schedule = match s.trim() {
            "" => None,
            s => {
                let spec =
                    crate::schedule::Spec::parse(s).map_err(|e| AgentError::invalid(format!("check schedule: {e}")))?;
                if matches!(spec, crate::schedule::Spec::After { .. }) {
                    return Err(AgentError::invalid("check schedule: after:JOB is for jobs; use a timed schedule"));
                }
                Some(spec.to_string())
            }
        };
    }
    if let Some(t) = time {
        plan.time = crate::jobs::check_time(&t)?;
    }
    if let Some(p) = read_data {
        if p > 100 {
            return Err(AgentError::invalid(format!("check read data must be 0 to 100 percent, not {p}")));
        }
        plan.read_data = p;
    }
    if (plan.schedule.clone(), plan.time.clone()) != before {
        plan.next = None;
    }
    Ok(plan)
}

/// Builds and tests a new destination; prepares its root (marker) unless read-only.
/// A root that already holds a destination is adopted read-only unless `new.writable`.
/// Returns the destination (options in the clear: the catalog seals them) and the
/// snapshots it already holds (adoption).
pub fn create(key: &MasterKey, new: NewDestination) -> Result<(DestinationRecord, Vec<Snapshot>), AgentError> {
    check_name("destination", &new.name).map_err(AgentError::invalid)?;
    check_options(new.kind, &new.options)?;
    let disk_limit = check_disk_limit(new.disk_limit.unwrap_or(0))?;
    let mut d = DestinationRecord {
        id: DestinationId(uuid::Uuid::new_v4().to_string()),
        name: new.name,
        kind: new.kind,
        options: new.options,
        disk_limit,
        hidden: new.hidden,
        readonly: new.readonly,
        disabled: new.disabled,
        jobs: 0,
        disk_usage: None,
        cache_id: uuid::Uuid::new_v4().to_string(),
        check: check_plan(CheckPlan::default(), new.check_schedule, new.check_time, new.check_read_data)?,
    };
    let t = open(key, &d)?;
    d.disk_usage = validate(&d, &t)?;
    let fresh_id = d.id.clone();
    prepare_root(&mut d, &t, new.force)?;
    if d.id != fresh_id && !d.readonly && !new.writable {
        // The agent that wrote it may still be backing up there, and two agents
        // pruning one root would delete each other's snapshots: read it, unless told.
        tracing::info!(destination = %d.name, "adopted read-only (add it with writable to write to it)");
        d.readonly = true;
    }
    let snapshots = scan(&d, &t)?;
    Ok((d, snapshots))
}

/// Writes or adopts the root's marker; the destination takes an adopted marker's id.
pub fn prepare_root(d: &mut DestinationRecord, t: &Destination, force: bool) -> Result<(), AgentError> {
    let fail = |e: FsError| AgentError::from_fs(&e, e.to_string());
    let outcome = if d.readonly {
        InitOutcome::Adopted(t.require_marker().map_err(fail)?)
    } else {
        t.init(d.id.as_str(), force).map_err(fail)?
    };
    if let InitOutcome::Adopted(m) = outcome
        && m.destination_id != d.id.as_str()
    {
        tracing::info!(destination = %d.name, "adopting existing destination {}", m.destination_id);
        d.id = DestinationId(m.destination_id);
    }
    secure_local(d, t);
    Ok(())
}

/// Makes a writable local destination private to the agent (its root owned
/// by the agent's user, mode 0700: users reach snapshots through the mount
/// only, where the recorded permissions are enforced), saying what had to be
/// changed; for a read-only one, which the agent never changes, warns when
/// others can reach into it.
pub fn secure_local(d: &DestinationRecord, t: &Destination) {
    let Destination::Local(root) = t else { return };
    if d.readonly {
        if let Ok(Some(why)) = root.exposure() {
            tracing::warn!(destination = %d.name, "{} is read-only for the agent, and {why}", root.path().display());
        }
        return;
    }
    match root.secure() {
        Ok(changed) if changed.is_empty() => {}
        Ok(changed) => tracing::warn!(
            destination = %d.name,
            "made {} private to the agent ({}): local users reach its snapshots through the mount only",
            root.path().display(),
            changed.join(", ")
        ),
        Err(e) => {
            tracing::warn!(destination = %d.name, "cannot make {} private to the agent: {e}", root.path().display())
        }
    }
}

/// Checks that the root still holds this destination's marker.
pub fn check_marker(d: &DestinationRecord, t: &Destination) -> Result<(), AgentError> {
    let marker = t.require_marker().map_err(|e| AgentError::from_fs(&e, e.to_string()))?;
    if marker.destination_id != d.id.as_str() {
        return Err(AgentError::unreachable(format!(
            "{} now holds another destination ({})",
            t.describe(),
            marker.destination_id
        )));
    }
    Ok(())
}

/// The snapshots a destination holds, read from their manifests.
pub fn scan(d: &DestinationRecord, t: &Destination) -> Result<Vec<Snapshot>, AgentError> {
    let fail = |e: FsError| AgentError::from_fs(&e, format!("cannot read destination {}: {e}", d.name));
    let root = match t {
        Destination::Local(r) => Some(r.path()),
        Destination::Remote(_) => None,
    };
    let mut out = Vec::new();
    for job in t.list_jobs().map_err(fail)? {
        for name in t.list_snapshots(&job).map_err(fail)? {
            match t.read_manifest(&job, &name) {
                Ok(m) => out.push(snapshot_view(d, &m, root)),
                Err(e) => tracing::warn!(destination = %d.name, "skipping snapshot {job}/{name}: {e}"),
            }
        }
    }
    Ok(out)
}

/// Rebuilds the catalog's snapshot list of a destination from what it holds.
pub fn reindex(catalog: &Catalog, d: &DestinationRecord) -> Result<usize, AgentError> {
    let t = open(catalog.master_key(), d)?;
    check_marker(d, &t)?;
    let found = scan(d, &t)?;
    catalog.replace_snapshots(&d.id, &found)?;
    Ok(found.len())
}

/// The API view of a snapshot from its manifest (`root` is ignored for remote destinations).
pub fn snapshot_from_manifest(d: &DestinationRecord, m: &Manifest, root: &Path) -> Snapshot {
    snapshot_view(d, m, service(d.kind).is_none().then_some(root))
}

fn snapshot_view(d: &DestinationRecord, m: &Manifest, root: Option<&Path>) -> Snapshot {
    Snapshot {
        id: SnapshotId(0),
        destination: d.name.clone(),
        job: m.job.clone(),
        name: m.name.clone(),
        structure: m.structure,
        started: m.started,
        finished: m.finished,
        files: m.stats.files,
        bytes: m.stats.bytes,
        files_added: m.stats.files_added,
        bytes_added: m.stats.bytes_added,
        partial: m.partial,
        tags: m.tags.clone(),
        locked: false,
        sequence: m.sequence,
        path: root.map(|r| r.join(&m.job).join(&m.name).to_string_lossy().into_owned()),
        error: None,
    }
}

/// Local destination roots and the agent's `own` directories, as absolute
/// paths: never backed up, never restored into.
pub(crate) fn protected_dirs(catalog: &Catalog, own: &[PathBuf]) -> Vec<PathBuf> {
    let roots = catalog
        .destinations()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|d| local_root(&d).ok().map(|r| r.path().to_path_buf()));
    roots.chain(own.iter().cloned()).map(|p| p.components().collect::<PathBuf>()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s3(options: Value) -> DestinationRecord {
        DestinationRecord {
            id: DestinationId("id".into()),
            name: "d".into(),
            kind: DestinationKind::S3,
            options: options.as_object().cloned().unwrap_or_default(),
            disk_limit: 0,
            hidden: false,
            readonly: false,
            disabled: false,
            jobs: 0,
            disk_usage: None,
            cache_id: uuid::Uuid::new_v4().to_string(),
            check: CheckPlan::default(),
        }
    }

    #[test]
    fn secrets_never_serialize_nor_debug_print() {
        let d = s3(json!({"bucket": "b", "access_key": "AK", "secret_key": "s3cr3t"}));
        let text = serde_json::to_string(&d.view()).expect("json");
        assert!(!text.contains("s3cr3t") && text.contains(r#""secret_key":"********""#), "{text}");
        assert!(text.contains(r#""type":"s3""#) && text.contains(r#""bucket":"b""#), "{text}");
        assert!(!format!("{d:?}").contains("s3cr3t"));
        let back: crate::model::Destination = serde_json::from_str(&text).expect("parse");
        assert_eq!(back.options["secret_key"], secrets::REDACTED);
    }

    #[test]
    fn a_patch_with_the_redacted_secret_keeps_the_stored_one() {
        let mut d = s3(json!({"bucket": "b", "access_key": "AK", "secret_key": "enc:v1:xyz"}));
        let patch = json!({"secret_key": "********", "threads": "4"}).as_object().cloned().unwrap_or_default();
        assert!(merge_options(&mut d, patch));
        assert_eq!(d.options["secret_key"], "enc:v1:xyz");
        assert_eq!(d.options["threads"], "4");
        let same = json!({"secret_key": "********"}).as_object().cloned().unwrap_or_default();
        assert!(!merge_options(&mut d, same));
        let drop = json!({"threads": null}).as_object().cloned().unwrap_or_default();
        assert!(merge_options(&mut d, drop) && !d.options.contains_key("threads"));
    }

    #[test]
    fn types_list_local_and_every_service_with_secrets_marked() {
        let t = types();
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names[0], "local");
        for kind in ["s3", "gcs", "ftp", "gdrive", "dropbox", "onedrive"] {
            assert!(names.contains(&kind), "{kind} is not listed: {names:?}");
        }
        let s3 = &t[1];
        let opt = |n: &str| s3.options.iter().find(|o| o.name == n).expect("option");
        assert!(opt("bucket").required && opt("secret_key").secret && !opt("endpoint").secret);
        assert!(
            check_options(DestinationKind::S3, &Map::new()).expect_err("bucket").message.contains("bucket is required")
        );
        let webdav = serde_json::from_str::<DestinationKind>("\"webdav\"").expect_err("unknown").to_string();
        assert!(webdav.contains("unknown destination type \"webdav\"; use local, s3"), "{webdav}");
    }
}

//! Job rules: what a valid job is.

use std::path::Path;

use hindsight_fs::manifest::Structure;
use hindsight_fs::names::check_name;

use crate::api::error::ApiError;
use crate::backup::Excludes;
use crate::model::{Job, NewJob};

/// Largest accepted `retry_failed`.
pub const MAX_RETRY_FAILED: u32 = 10;

/// Checks sources: absolute, existing, not nested in one another.
pub fn check_sources(sources: &[String]) -> Result<Vec<String>, ApiError> {
    if sources.is_empty() {
        return Err(ApiError::bad_request("a job needs at least one source"));
    }
    let mut out: Vec<String> = Vec::new();
    for s in sources {
        let p = Path::new(s);
        if !p.is_absolute() {
            return Err(ApiError::bad_request(format!("source {s:?} is not an absolute path")));
        }
        if std::fs::symlink_metadata(p).is_err() {
            return Err(ApiError::bad_request(format!("source {s} does not exist")));
        }
        let norm: String = p.components().collect::<std::path::PathBuf>().to_string_lossy().into_owned();
        if norm.split('/').any(|c| c == "..") {
            return Err(ApiError::bad_request(format!("source {s} must not contain '..'")));
        }
        out.push(norm);
    }
    out.sort();
    out.dedup();
    for pair in out.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if Path::new(b).starts_with(a) {
            return Err(ApiError::bad_request(format!("source {b} is inside source {a}; list it once")));
        }
    }
    Ok(out)
}

/// Checks a structure name; archived and compressed are not available yet.
pub fn check_structure(s: &str) -> Result<String, ApiError> {
    match Structure::parse(s) {
        Some(Structure::Incremental) => Ok(s.into()),
        Some(other) => Err(ApiError::bad_request(format!(
            "structure {} is not supported by this version yet; use incremental",
            other.as_str()
        ))),
        None => Err(ApiError::bad_request(format!("unknown structure {s:?}; use incremental, archived or compressed"))),
    }
}

/// Checks exclude patterns compile.
pub fn check_excludes(ex: &[String]) -> Result<(), ApiError> {
    Excludes::new(ex).map(|_| ()).map_err(ApiError::bad_request)
}

/// Checks retry_failed.
pub fn check_retry(n: u32) -> Result<u32, ApiError> {
    if n > MAX_RETRY_FAILED {
        return Err(ApiError::bad_request(format!("retry_failed {n} is out of range: use 0-{MAX_RETRY_FAILED}")));
    }
    Ok(n)
}

/// Checks a job's destination list (existence is checked by the catalog).
pub fn check_destinations(d: &[String]) -> Result<Vec<String>, ApiError> {
    if d.is_empty() {
        return Err(ApiError::bad_request("a job needs at least one destination"));
    }
    let mut out = Vec::new();
    for name in d {
        if out.contains(name) {
            return Err(ApiError::bad_request(format!("destination {name} is listed twice")));
        }
        out.push(name.clone());
    }
    Ok(out)
}

/// Validates a new job into its stored form.
pub fn build(new: NewJob) -> Result<Job, ApiError> {
    check_name("job", &new.name).map_err(ApiError::bad_request)?;
    match new.kind.as_deref() {
        None | Some("directories") => {}
        Some(k) => return Err(ApiError::bad_request(format!("unknown job type {k:?}; supported: directories"))),
    }
    check_excludes(&new.excludes)?;
    Ok(Job {
        id: 0,
        name: new.name,
        kind: "directories".into(),
        sources: check_sources(&new.sources)?,
        excludes: new.excludes,
        destinations: check_destinations(&new.destinations)?,
        structure: check_structure(new.structure.as_deref().unwrap_or("incremental"))?,
        one_file_system: new.one_file_system.unwrap_or(true),
        retry_failed: check_retry(new.retry_failed.unwrap_or(1))?,
        disabled: new.disabled,
        last_run: None,
    })
}

//! Names that become directory names: destinations, jobs and snapshots.
//!
//! Destination and job names appear on destinations and in the mount, so they
//! are restricted to `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`. Snapshot names are UTC
//! timestamps without colons (`2026-11-22T035000Z`, suffixed `-1`, `-2`, ... when
//! a job makes two snapshots in one second) so that they sort by time and are safe
//! for rsync, which reads `a:b` as a host.

use jiff::Timestamp;

/// Checks a destination or job name; the error says what is allowed.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} name {name:?}: use 1-64 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"
        ))
    }
}

/// The base snapshot name for a moment: `YYYY-MM-DDTHHMMSSZ` in UTC.
pub fn snapshot_base_name(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H%M%SZ").to_string()
}

/// True when `name` has the shape of a snapshot name (base, optionally `-N`).
pub fn is_snapshot_name(name: &str) -> bool {
    let (base, suffix) = match name.split_once("Z-") {
        Some((b, s)) => (format!("{b}Z"), Some(s)),
        None => (name.to_string(), None),
    };
    if let Some(s) = suffix
        && (s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    snapshot_time(&base).is_some()
}

/// The time encoded in a snapshot name, ignoring any `-N` suffix.
pub fn snapshot_time(name: &str) -> Option<Timestamp> {
    let base = name.split_once("Z-").map_or(name, |(b, _)| b).trim_end_matches('Z');
    let dt = jiff::civil::DateTime::strptime("%Y-%m-%dT%H%M%S", base).ok()?;
    dt.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("job", "web-01.daily_x").is_ok());
        assert!(check_name("job", "").is_err());
        assert!(check_name("job", "-x").is_err());
        assert!(check_name("job", "a/b").is_err());
        assert!(check_name("job", &"a".repeat(65)).is_err());
        assert!(check_name("job", &"a".repeat(64)).is_ok());
    }

    #[test]
    fn snapshot_names_round_trip() {
        let t: Timestamp = "2026-11-22T03:50:00Z".parse().expect("timestamp");
        let n = snapshot_base_name(t);
        assert_eq!(n, "2026-11-22T035000Z");
        assert!(is_snapshot_name(&n));
        assert!(is_snapshot_name("2026-11-22T035000Z-12"));
        assert!(!is_snapshot_name("2026-11-22T035000Z-"));
        assert!(!is_snapshot_name(".partial-2026-11-22T035000Z"));
        assert_eq!(snapshot_time("2026-11-22T035000Z-3"), Some(t));
    }
}

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

/// Checks an account (system user) name as it becomes part of a directory
/// name: 1-32 characters from `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
pub fn check_account_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid account name {:?}: use 1-32 characters from A-Z a-z 0-9 . _ -, starting with a letter, digit or _",
            truncated(name)
        ))
    }
}

/// Checks the name of a job's directory on a destination: a job name, or
/// `JOB@ACCOUNT` for one account of an accounts job (job names hold no `@`).
pub fn check_job_dir(name: &str) -> Result<(), String> {
    match name.split_once('@') {
        None => check_name("job", name),
        Some((job, account)) => check_name("job", job).and_then(|()| check_account_name(account)),
    }
}

/// The job and the account of an account's job directory (`JOB@ACCOUNT`).
pub fn split_job_dir(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((job, account)) => (job, Some(account)),
        None => (name, None),
    }
}

/// Checks a destination id as written in a `HINDSIGHT` marker: a UUID in its
/// canonical form (`8-4-4-4-12` lowercase hex digits), what Hindsight generates.
pub fn check_destination_id(id: &str) -> Result<(), String> {
    let b = id.as_bytes();
    let ok = b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        });
    if ok { Ok(()) } else { Err(format!("invalid destination id {:?}: not a UUID", truncated(id))) }
}

/// Checks a snapshot name read from a destination; the error names it.
pub fn check_snapshot_name(name: &str) -> Result<(), String> {
    if is_snapshot_name(name) {
        Ok(())
    } else {
        Err(format!("invalid snapshot name {:?}: not of the form 2026-11-22T035000Z[-N]", truncated(name)))
    }
}

/// At most 80 characters of a name for an error message (a hostile name may be huge).
fn truncated(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The base snapshot name for a moment: `YYYY-MM-DDTHHMMSSZ` in UTC.
pub(crate) fn snapshot_base_name(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H%M%SZ").to_string()
}

/// True when `name` has the shape of a snapshot name (base, optionally `-N`):
/// `DDDD-DD-DDTDDDDDDZ` holding a valid time, then optionally `-` and 1-9 digits.
pub(crate) fn is_snapshot_name(name: &str) -> bool {
    const SHAPE: &[u8] = b"DDDD-DD-DDTDDDDDDZ";
    let b = name.as_bytes();
    if b.len() < SHAPE.len() {
        return false;
    }
    let (base, rest) = b.split_at(SHAPE.len());
    let shaped = SHAPE.iter().zip(base).all(|(&want, &c)| if want == b'D' { c.is_ascii_digit() } else { c == want });
    let suffix_ok = match rest {
        [] => true,
        [b'-', digits @ ..] => (1..=9).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    shaped && suffix_ok && snapshot_time(name).is_some()
}

/// The time encoded in a snapshot name, ignoring any `-N` suffix.
pub(crate) fn snapshot_time(name: &str) -> Option<Timestamp> {
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
    fn account_job_dirs_are_checked() {
        assert!(check_job_dir("home").is_ok());
        assert!(check_job_dir("home@alice").is_ok());
        assert!(check_job_dir("home@_apt").is_ok());
        assert!(check_job_dir("home@").is_err());
        assert!(check_job_dir("@alice").is_err());
        assert!(check_job_dir("home@al/ice").is_err());
        assert!(check_job_dir("home@..").is_err());
        assert!(check_job_dir("home@a@b").is_err());
        assert!(check_job_dir(&format!("home@{}", "a".repeat(33))).is_err());
        assert_eq!(split_job_dir("home@alice"), ("home", Some("alice")));
        assert_eq!(split_job_dir("home"), ("home", None));
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
        for bad in [
            "x/../../../victim",
            "2026-11-22T035000Z/..",
            "2026-11-22T035000Z-1/x",
            " 2026-11-22T035000Z",
            "+2026-11-22T035000Z",
            "2026-13-22T035000Z",
            "2026-11-22T035000Z-1234567890",
            "..",
        ] {
            assert!(!is_snapshot_name(bad), "{bad:?} passed as a snapshot name");
            assert!(check_snapshot_name(bad).is_err());
        }
    }

    #[test]
    fn destination_ids_are_uuids() {
        let id = uuid::Uuid::new_v4().to_string();
        assert!(check_destination_id(&id).is_ok(), "{id}");
        for bad in ["", "../../x", "/", "/etc/logrotate.d", "id-1", &id.to_uppercase(), &format!("{id}/x")] {
            assert!(check_destination_id(bad).is_err(), "{bad:?} passed as a destination id");
        }
    }
}

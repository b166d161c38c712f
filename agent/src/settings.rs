//! The agent's settings: their names, defaults, allowed ranges, and the
//! typed view the rest of the agent reads.
//!
//! Stored as text in the catalog's `settings` table; a key that was never set
//! has its default. Every value is checked here before it is stored, so a
//! stored value always parses.

use std::collections::HashMap;

use jiff::tz::TimeZone;

use crate::error::AgentError;
use crate::model::Settings;

/// One setting: its key, default and allowed integer range (none for text).
struct Def {
    key: &'static str,
    default: &'static str,
    range: Option<(u32, u32)>,
    meaning: &'static str,
}

const DEFS: &[Def] = &[
    Def { key: "backup_concurrency", default: "1", range: Some((1, 10)), meaning: "backups at once" },
    Def { key: "restore_concurrency", default: "1", range: Some((1, 10)), meaning: "restores at once" },
    Def { key: "run_ttl_hours", default: "0", range: Some((0, 8760)), meaning: "hours; 0 = no limit" },
    Def { key: "manual_retain", default: "14", range: Some((1, 99)), meaning: "manual snapshots kept" },
    Def { key: "manual_ttl", default: "0", range: Some((0, 3650)), meaning: "days; 0 = never expire" },
    Def { key: "logs_ttl", default: "30", range: Some((1, 3650)), meaning: "days of run history" },
    Def { key: "alerts_ttl", default: "60", range: Some((1, 3650)), meaning: "days acknowledged alerts are kept" },
    Def { key: "compress_level", default: "6", range: Some((1, 12)), meaning: "deflate level of compressed snapshots" },
    Def {
        key: "compress_threads",
        default: "0",
        range: Some((0, 64)),
        meaning: "compressor threads; 0 = one per core",
    },
    Def {
        key: "cache_size",
        default: "32",
        range: Some((8, 65536)),
        meaning: "MiB of archive and remote file data the mount keeps in memory (read at start)",
    },
    Def { key: "timezone", default: "", range: None, meaning: "IANA name; empty = the host's" },
    Def {
        key: "suspicious_drop",
        default: "50",
        range: Some((0, 100)),
        meaning: "percent drop of files or bytes against the previous snapshot that skips retention; 0 = off",
    },
    Def {
        key: "suspicious_change",
        default: "0",
        range: Some((0, 100)),
        meaning: "percent of files changed at once that skips retention; 0 = off",
    },
];

/// Checks `value` for `key`; returns the value to store.
pub(crate) fn check(key: &str, value: &str) -> Result<String, AgentError> {
    let def = DEFS.iter().find(|d| d.key == key).ok_or_else(|| {
        let keys: Vec<&str> = DEFS.iter().map(|d| d.key).collect();
        AgentError::invalid(format!("unknown setting {key:?}; settings: {}", keys.join(", ")))
    })?;
    let value = value.trim();
    match def.range {
        Some((lo, hi)) => match value.parse::<u32>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n.to_string()),
            _ => Err(AgentError::invalid(format!("{key} {value:?} is out of range: use {lo}-{hi} ({})", def.meaning))),
        },
        None => {
            if !value.is_empty() {
                time_zone(value).map_err(AgentError::invalid)?;
            }
            Ok(value.to_string())
        }
    }
}

fn time_zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!("timezone {name:?} is not a known IANA time zone (e.g. Europe/Paris, America/New_York, UTC)")
    })
}

/// The typed settings from the stored ones (defaults for the rest).
pub(crate) fn from_stored(stored: &HashMap<String, String>) -> Settings {
    let get = |key: &str| -> String {
        let def = DEFS.iter().find(|d| d.key == key).map_or("", |d| d.default);
        stored.get(key).filter(|v| check(key, v).is_ok()).cloned().unwrap_or_else(|| def.to_string())
    };
    let num = |key: &str| get(key).parse::<u32>().unwrap_or(0);
    Settings {
        backup_concurrency: num("backup_concurrency"),
        restore_concurrency: num("restore_concurrency"),
        run_ttl_hours: num("run_ttl_hours"),
        manual_retain: num("manual_retain"),
        manual_ttl: num("manual_ttl"),
        logs_ttl: num("logs_ttl"),
        alerts_ttl: num("alerts_ttl"),
        compress_level: num("compress_level"),
        compress_threads: num("compress_threads"),
        cache_size: num("cache_size"),
        timezone: get("timezone"),
        suspicious_drop: num("suspicious_drop"),
        suspicious_change: num("suspicious_change"),
    }
}

/// The time zone of schedules: the setting, else the host's.
pub(crate) fn schedule_time_zone(settings: &Settings) -> TimeZone {
    if settings.timezone.is_empty() {
        TimeZone::system()
    } else {
        time_zone(&settings.timezone).unwrap_or_else(|_| TimeZone::system())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ranges() {
        let s = from_stored(&HashMap::new());
        assert_eq!((s.backup_concurrency, s.manual_retain, s.manual_ttl, s.logs_ttl, s.alerts_ttl), (1, 14, 0, 30, 60));
        assert_eq!(check("manual_retain", "99").map_err(|e| e.message), Ok("99".into()));
        let e = check("manual_retain", "100").expect_err("100");
        assert!(e.message.contains("1-99"), "{}", e.message);
        assert!(check("backup_concurrency", "0").is_err());
        assert!(check("backup_concurrency", "x").is_err());
        assert!(check("nope", "1").expect_err("unknown").message.contains("backup_concurrency"));
        assert!(check("timezone", "Mars/Olympus").is_err());
        assert_eq!(check("timezone", "America/New_York").map_err(|e| e.message), Ok("America/New_York".into()));
        assert_eq!(check("timezone", "").map_err(|e| e.message), Ok(String::new()));
    }
}

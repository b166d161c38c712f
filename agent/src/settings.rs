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

/// What values a setting takes.
#[derive(Clone, Copy)]
enum Kind {
    /// A whole number in this range.
    Num(u32, u32),
    /// An IANA time zone name, or empty for the host's.
    TimeZone,
    /// A program the agent runs as root: empty (found in PATH), or the
    /// absolute path of an executable that only root can change.
    Program,
    /// An absolute directory path.
    Dir,
    /// A system user's name, or empty for none.
    Account,
    /// A name (of a queue priority group), or empty for none.
    Name,
}

/// One setting: its key, default and allowed values.
struct Def {
    key: &'static str,
    default: &'static str,
    kind: Kind,
    meaning: &'static str,
}

/// A numeric setting.
const fn num(key: &'static str, default: &'static str, lo: u32, hi: u32, meaning: &'static str) -> Def {
    Def { key, default, kind: Kind::Num(lo, hi), meaning }
}

/// Where a database client is; empty: its usual name, found in PATH.
const fn program(key: &'static str, meaning: &'static str) -> Def {
    Def { key, default: "", kind: Kind::Program, meaning }
}

const DEFS: &[Def] = &[
    num("backup_concurrency", "1", 1, 10, "backups at once"),
    num("restore_concurrency", "1", 1, 10, "restores at once"),
    num("run_ttl_hours", "0", 0, 8760, "hours; 0 = no limit"),
    num("manual_retain", "14", 1, 99, "manual snapshots kept"),
    num("manual_ttl", "0", 0, 3650, "days; 0 = never expire"),
    num("logs_ttl", "30", 1, 3650, "days of run history, deliveries and ended tasks"),
    num("alerts_ttl", "60", 1, 3650, "days acknowledged alerts are kept"),
    num("compress_level", "6", 1, 12, "deflate level of compressed snapshots"),
    num("compress_threads", "0", 0, 64, "compressor threads; 0 = one per core"),
    num("cache_size", "32", 8, 65536, "MiB of archive and remote file data the mount keeps in memory (read at start)"),
    Def { key: "timezone", default: "", kind: Kind::TimeZone, meaning: "IANA name; empty = the host's" },
    num(
        "suspicious_drop",
        "50",
        0,
        100,
        "percent drop of files or bytes against the previous snapshot that skips retention; 0 = off",
    ),
    num("suspicious_change", "0", 0, 100, "percent of files changed at once that skips retention; 0 = off"),
    program("bin_psql", "PostgreSQL's psql; empty = psql in PATH"),
    program("bin_mysql", "MariaDB's or MySQL's mysql; empty = mysql in PATH"),
    program("bin_mongosh", "MongoDB's mongosh; empty = mongosh in PATH"),
    program("bin_mysqldump", "mysqldump; empty = mysqldump in PATH"),
    program("bin_pg_dump", "PostgreSQL's pg_dump; empty = pg_dump in PATH"),
    program("bin_pg_dumpall", "PostgreSQL's pg_dumpall; empty = pg_dumpall in PATH"),
    program("bin_pg_restore", "PostgreSQL's pg_restore; empty = pg_restore in PATH"),
    program("bin_mongodump", "MongoDB's mongodump; empty = mongodump in PATH"),
    program("bin_mongorestore", "MongoDB's mongorestore; empty = mongorestore in PATH"),
    num("mysqldump_max_allowed_packet", "0", 0, 1024, "MiB of mysqldump --max-allowed-packet; 0 = the tool's default"),
    num("mysqldump_force", "0", 0, 1, "1 = mysqldump --force (go on after an SQL error)"),
    num("mysqldump_opt", "1", 0, 1, "1 = mysqldump --opt (its default), 0 = --skip-opt"),
    num("mysqldump_skip_lock_tables", "1", 0, 1, "1 = mysqldump --skip-lock-tables (--single-transaction is used)"),
    num("accounts_min_uid", "1000", 0, 4_000_000_000, "lowest uid an accounts job backs up unless it names its users"),
    num(
        "accounts_max_uid",
        "60000",
        0,
        4_000_000_000,
        "highest uid an accounts job backs up unless it names its users",
    ),
    Def {
        key: "accounts_crontab_dir",
        default: "/var/spool/cron/crontabs",
        kind: Kind::Dir,
        meaning: "where each user's crontab is, as a file named after the user",
    },
    Def {
        key: "accounts_mail_dir",
        default: "/var/mail",
        kind: Kind::Dir,
        meaning: "where each user's mail spool is, as a file named after the user",
    },
    Def {
        key: "default_database_account",
        default: "",
        kind: Kind::Account,
        meaning: "the account whose snapshots hold the databases no account is assigned; empty = none",
    },
    num("orphan_ttl", "180", 0, 36500, "days an account that no longer exists keeps a snapshot; 0 = forever"),
    num("forget_ttl", "0", 0, 36500, "days after a user is gone that every record of its account is deleted; 0 = off"),
    Def {
        key: "download_dir",
        default: "",
        kind: Kind::Dir,
        meaning: "where downloads are built; empty = <state dir>/downloads",
    },
    num("downloads_ttl", "0", 0, 3650, "days a download is kept; 0 = until removed"),
    num("downloads_per_account", "0", 0, 1000, "downloads kept per account, the oldest removed first; 0 = no limit"),
    Def {
        key: "default_priority_group",
        default: "",
        kind: Kind::Name,
        meaning: "the queue priority group of accounts that name none; empty = priority 50",
    },
];

/// Checks `value` for `key`; returns the value to store.
pub(crate) fn check(key: &str, value: &str) -> Result<String, AgentError> {
    let def = DEFS.iter().find(|d| d.key == key).ok_or_else(|| {
        let keys: Vec<&str> = DEFS.iter().map(|d| d.key).collect();
        AgentError::invalid(format!("unknown setting {key:?}; settings: {}", keys.join(", ")))
    })?;
    let value = value.trim();
    match def.kind {
        Kind::Num(lo, hi) => match value.parse::<u32>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n.to_string()),
            _ => Err(AgentError::invalid(format!("{key} {value:?} is out of range: use {lo}-{hi} ({})", def.meaning))),
        },
        Kind::TimeZone => {
            if !value.is_empty() {
                time_zone(value).map_err(AgentError::invalid)?;
            }
            Ok(value.to_string())
        }
        Kind::Program => {
            if !value.is_empty() {
                trusted_program(value).map_err(|e| AgentError::invalid(format!("{key}: {e}")))?;
            }
            Ok(value.to_string())
        }
        Kind::Dir if value.is_empty() && def.default.is_empty() => Ok(String::new()),
        Kind::Dir => {
            let p = std::path::Path::new(value);
            if !p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir) {
                return Err(AgentError::invalid(format!("{key} {value:?} is not an absolute path without '..'")));
            }
            Ok(p.components().collect::<std::path::PathBuf>().to_string_lossy().into_owned())
        }
        Kind::Name => {
            if !value.is_empty() {
                hindsight_fs::check_name("priority group", value)
                    .map_err(|e| AgentError::invalid(format!("{key}: {e}")))?;
            }
            Ok(value.to_string())
        }
        Kind::Account => {
            if !value.is_empty() {
                hindsight_fs::check_account_name(value).map_err(|e| AgentError::invalid(format!("{key}: {e}")))?;
            }
            Ok(value.to_string())
        }
    }
}

/// Checks a program the agent will run as root: an absolute path to an
/// executable regular file that neither its group nor others can change,
/// owned by root, in directories likewise (else whoever can write there can
/// make root run what they like).
fn trusted_program(path: &str) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let p = std::path::Path::new(path);
    if !p.is_absolute() {
        return Err(format!("{path:?} is not an absolute path"));
    }
    let md = std::fs::metadata(p).map_err(|e| format!("{path}: {e}"))?;
    if !md.is_file() || md.permissions().mode() & 0o111 == 0 {
        return Err(format!("{path} is not an executable file"));
    }
    let mut at = std::fs::canonicalize(p).map_err(|e| format!("{path}: {e}"))?;
    loop {
        let md = std::fs::metadata(&at).map_err(|e| format!("{}: {e}", at.display()))?;
        let writable_by_others =
            md.permissions().mode() & 0o022 != 0 && !(md.is_dir() && md.permissions().mode() & 0o1000 != 0);
        if md.uid() != 0 || writable_by_others {
            return Err(format!(
                "{} can be changed by a user other than root; the agent runs it as root",
                at.display()
            ));
        }
        if !at.pop() {
            return Ok(());
        }
    }
}

/// The program to run for `setting` (its path, or `name` to find in PATH).
pub(crate) fn program_of(settings: &Settings, name: &str) -> String {
    let set = match name {
        "psql" => &settings.bin_psql,
        "mysql" => &settings.bin_mysql,
        "mongosh" => &settings.bin_mongosh,
        "mysqldump" => &settings.bin_mysqldump,
        "pg_dump" => &settings.bin_pg_dump,
        "pg_dumpall" => &settings.bin_pg_dumpall,
        "pg_restore" => &settings.bin_pg_restore,
        "mongodump" => &settings.bin_mongodump,
        "mongorestore" => &settings.bin_mongorestore,
        _ => return name.to_string(),
    };
    if set.is_empty() { name.to_string() } else { set.clone() }
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
        bin_psql: get("bin_psql"),
        bin_mysql: get("bin_mysql"),
        bin_mongosh: get("bin_mongosh"),
        bin_mysqldump: get("bin_mysqldump"),
        bin_pg_dump: get("bin_pg_dump"),
        bin_pg_dumpall: get("bin_pg_dumpall"),
        bin_pg_restore: get("bin_pg_restore"),
        bin_mongodump: get("bin_mongodump"),
        bin_mongorestore: get("bin_mongorestore"),
        mysqldump_max_allowed_packet: num("mysqldump_max_allowed_packet"),
        mysqldump_force: num("mysqldump_force"),
        mysqldump_opt: num("mysqldump_opt"),
        mysqldump_skip_lock_tables: num("mysqldump_skip_lock_tables"),
        accounts_min_uid: num("accounts_min_uid"),
        accounts_max_uid: num("accounts_max_uid"),
        accounts_crontab_dir: get("accounts_crontab_dir"),
        accounts_mail_dir: get("accounts_mail_dir"),
        default_database_account: get("default_database_account"),
        orphan_ttl: num("orphan_ttl"),
        forget_ttl: num("forget_ttl"),
        download_dir: get("download_dir"),
        downloads_ttl: num("downloads_ttl"),
        downloads_per_account: num("downloads_per_account"),
        default_priority_group: get("default_priority_group"),
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
        assert_eq!(check("bin_psql", "/bin/sh").map_err(|e| e.message), Ok("/bin/sh".into()));
        assert!(check("bin_psql", "psql").is_err_and(|e| e.message.contains("absolute")));
        assert!(check("bin_psql", "/etc/passwd").is_err_and(|e| e.message.contains("not an executable")));
        assert_eq!((s.accounts_min_uid, s.accounts_max_uid, s.orphan_ttl, s.forget_ttl), (1000, 60000, 180, 0));
        assert_eq!(s.accounts_crontab_dir, "/var/spool/cron/crontabs");
        assert!(check("accounts_mail_dir", "var/mail").is_err());
        assert!(check("accounts_mail_dir", "/var/../etc").is_err());
        assert_eq!(check("accounts_mail_dir", "/srv/mail/").map_err(|e| e.message), Ok("/srv/mail".into()));
        assert!(check("default_database_account", "a/b").is_err());
        assert_eq!(check("default_database_account", "").map_err(|e| e.message), Ok(String::new()));
        let tmp = std::env::temp_dir().join(format!("hs-bin-{}", std::process::id()));
        let _ = std::fs::write(&tmp, "#!/bin/sh\n");
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o777));
        assert!(check("bin_mysql", &tmp.to_string_lossy()).is_err_and(|e| e.message.contains("other than root")));
        let _ = std::fs::remove_file(&tmp);
    }
}

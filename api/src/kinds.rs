//! The closed sets of the API: each is an enum whose wire form is its
//! lowercase name, so a value outside the set is refused by serde at the edge
//! (the answer names the field and the values allowed) instead of being
//! turned into a default somewhere downstream.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! named_enum {
    (
        $(#[$doc:meta])*
        $name:ident ($what:literal) { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl std::str::FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, UnknownName> {
                Self::parse(s).ok_or_else(|| UnknownName {
                    what: $what,
                    text: s.chars().take(40).collect(),
                    allowed: Self::ALL.iter().map(|v| v.as_str()).collect(),
                })
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl $name {
            /// Every value, in the order they are listed to users.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value of a wire name.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A name outside a closed set; the message names the set and what it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// What the set is ("structure", "destination type", ...).
    pub what: &'static str,
    /// The text given (at most 40 characters).
    pub text: String,
    /// The names allowed.
    pub allowed: Vec<&'static str>,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}; use {}", self.what, self.text, self.allowed.join(", "))
    }
}

impl std::error::Error for UnknownName {}

named_enum!(
    /// How a snapshot stores file contents (also written in manifests and indexes).
    Structure("structure") {
        /// `tree/` holds the files; unchanged files are hardlinks (or blobs).
        Incremental = "incremental",
        /// `data.tar`.
        Archived = "archived",
        /// `data.tar.gz` as independent gzip members.
        Compressed = "compressed",
    }
);

named_enum!(
    /// The type of a destination.
    DestinationKind("destination type") {
        /// A directory on this machine.
        Local = "local",
        /// An S3-compatible object store.
        S3 = "s3",
        /// A Google Cloud Storage bucket.
        Gcs = "gcs",
        /// An FTP or FTPS server.
        Ftp = "ftp",
        /// A Google Drive folder.
        Gdrive = "gdrive",
        /// A Dropbox folder.
        Dropbox = "dropbox",
        /// A Microsoft OneDrive folder.
        Onedrive = "onedrive",
        /// A POSIX server over SSH.
        Ssh = "ssh",
        /// The same as `ssh`, for users who know the server as SFTP.
        Sftp = "sftp",
    }
);

named_enum!(
    /// What a job backs up.
    JobKind("job type") {
        /// Directories of this machine.
        Directories = "directories",
        /// System users, one snapshot each: home, crontab, mail spool, databases.
        Accounts = "accounts",
    }
);

named_enum!(
    /// What a file restore does with what already exists at the target.
    RestoreMode("restore mode") {
        /// Write what is missing or differs (size, mtime, mode, owner), but
        /// keep a file that is newer at the target than in the snapshot.
        Merge = "merge",
        /// Write everything the snapshot holds over what is there.
        Overwrite = "overwrite",
        /// Write only what is missing.
        SkipExisting = "skip-existing",
    }
);

named_enum!(
    /// What a task does.
    TaskKind("task kind") {
        /// Restore a database from its dump in a snapshot.
        RestoreDatabase = "restore_database",
        /// Restore files and directories from a snapshot.
        RestoreFiles = "restore_files",
        /// Build a `.tar.gz` of files of a snapshot in the download directory.
        Download = "download",
    }
);

named_enum!(
    /// What started a run.
    Trigger("trigger") {
        /// A user asked for it.
        Manual = "manual",
        /// One or more of the job's schedules were due.
        Schedule = "schedule",
    }
);

named_enum!(
    /// State of a run, and of a run on one destination.
    RunState("run state") {
        /// Waiting for its turn.
        Queued = "queued",
        /// Working.
        Running = "running",
        /// Every destination got a complete snapshot.
        Completed = "completed",
        /// Snapshots were made, but some files or destinations failed.
        Partial = "partial",
        /// No snapshot was made.
        Failed = "failed",
        /// Stopped by the user or by shutdown.
        Cancelled = "cancelled",
        /// Not attempted on this destination because it is disabled; only in
        /// a run's per-destination outcomes.
        Skipped = "skipped",
    }
);

impl RunState {
    /// True once the run will not change any more.
    pub fn is_final(self) -> bool {
        !matches!(self, RunState::Queued | RunState::Running)
    }
}

named_enum!(
    /// How serious an alert is.
    AlertLevel("alert level") {
        /// For the record.
        Information = "information",
        /// Needs a look.
        Warning = "warning",
        /// Backups are not happening.
        Critical = "critical",
    }
);

named_enum!(
    /// What an alert is about.
    AlertKind("alert kind") {
        /// A run made no snapshot.
        RunFailed = "run_failed",
        /// A run made snapshots, but some files or destinations failed.
        RunPartial = "run_partial",
        /// A destination is at or above its disk limit.
        DiskLimit = "disk_limit",
        /// A job has not completed a backup for longer than its monitor allows.
        Notran = "notran",
        /// A run has gone on for longer than its monitor allows.
        Ranfor = "ranfor",
        /// A schedule was due while the agent was not running.
        CatchUp = "catch_up",
        /// The system clock stepped back.
        ClockStep = "clock_step",
        /// A snapshot has far fewer files or bytes than the one before, or most files changed.
        SuspiciousRun = "suspicious_run",
        /// A destination's check found damage, or could not run (its subject is the destination).
        CheckFailed = "check_failed",
        /// A notification integration cannot deliver (its subject is the integration).
        NotifyFailed = "notify_failed",
        /// The message `notify test` sends; never stored as an alert.
        Test = "test",
    }
);

named_enum!(
    /// The software of a database server.
    DbEngine("database engine") {
        /// MariaDB or MySQL.
        Mysql = "mysql",
        /// PostgreSQL.
        Postgresql = "postgresql",
        /// MongoDB.
        Mongodb = "mongodb",
    }
);

named_enum!(
    /// TLS to a database server.
    DbTls("database tls") {
        /// No TLS.
        Disable = "disable",
        /// TLS when the server offers it.
        Prefer = "prefer",
        /// TLS required, the certificate not verified.
        Require = "require",
        /// TLS required and the certificate verified against the system's roots.
        Verify = "verify",
    }
);

named_enum!(
    /// When a job's hook runs.
    HookKind("hook") {
        /// Before anything is written; its failure fails the run.
        Before = "before",
        /// After a run that made snapshots; its failure makes the run partial.
        After = "after",
        /// After a run that failed or was partial.
        OnError = "on_error",
        /// At the end of every run, last.
        Finally = "finally",
    }
);

named_enum!(
    /// How often an integration hears of the alerts of one level.
    Frequency("frequency") {
        /// Each alert as it is raised.
        Realtime = "realtime",
        /// One message a day listing them.
        Digest = "digest",
    }
);

named_enum!(
    /// Transport security of an SMTP connection.
    SmtpSecurity("smtp security") {
        /// Plain text (a relay on the same machine or network).
        None = "none",
        /// Plain connection upgraded with STARTTLS, which the server must offer.
        Starttls = "starttls",
        /// TLS from the first byte (usually port 465).
        Tls = "tls",
    }
);

named_enum!(
    /// Where a notification stands.
    DeliveryState("delivery state") {
        /// Due at its `next_at` (first attempt or a retry).
        Pending = "pending",
        /// Held for the integration's next daily digest.
        Waiting = "waiting",
        /// Part of a digest sent since.
        Digested = "digested",
        /// Delivered.
        Sent = "sent",
        /// Given up after every retry failed.
        Failed = "failed",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_outside_the_set_is_refused_and_the_allowed_ones_named() {
        assert_eq!(serde_json::from_str::<Structure>("\"archived\"").ok(), Some(Structure::Archived));
        let e = serde_json::from_str::<Structure>("\"tarball\"").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("unknown structure \"tarball\"; use incremental, archived, compressed"), "{e}");
        for k in AlertKind::ALL {
            assert_eq!(AlertKind::parse(k.as_str()), Some(*k));
            assert_eq!(serde_json::to_string(k).ok(), Some(format!("\"{k}\"")));
        }
    }
}

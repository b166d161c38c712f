//! The API's routes: the patterns the agent's router serves and the paths the
//! CLI requests, side by side, so the two cannot drift apart.
//!
//! Patterns use axum's `{param}` syntax. Builders take the segment as the user
//! gave it (a name, or an id still as text: the agent answers 400 naming the
//! field when it is not a number) and percent-encode it.

use std::fmt::Display;

macro_rules! route {
    ($(#[$doc:meta])* $pattern_name:ident = $pattern:literal) => {
        $(#[$doc])*
        pub const $pattern_name: &str = $pattern;
    };
    ($(#[$doc:meta])* $pattern_name:ident = $pattern:literal, fn $builder:ident) => {
        $(#[$doc])*
        pub const $pattern_name: &str = $pattern;

        #[doc = concat!("The path of `", $pattern, "` for one object.")]
        pub fn $builder(segment: impl Display) -> String {
            fill($pattern, &segment.to_string())
        }
    };
}

route!(
    /// Agent status.
    STATUS = "/v1/status"
);
route!(
    /// Destination types and their options.
    DESTINATION_TYPES = "/v1/destination-types"
);
route!(
    /// Destinations: list, add.
    DESTINATIONS = "/v1/destinations"
);
route!(
    /// One destination: show, edit, remove.
    DESTINATION = "/v1/destinations/{name}",
    fn destination
);
route!(
    /// Validate a destination again.
    DESTINATION_VALIDATE = "/v1/destinations/{name}/validate",
    fn destination_validate
);
route!(
    /// Check a destination's snapshots.
    DESTINATION_CHECK = "/v1/destinations/{name}/check",
    fn destination_check
);
route!(
    /// Rebuild a destination's catalog entries from what it holds.
    DESTINATION_REINDEX = "/v1/destinations/{name}/reindex",
    fn destination_reindex
);
route!(
    /// The master key, for disaster recovery.
    KEY = "/v1/key"
);
route!(
    /// Jobs: list, add.
    JOBS = "/v1/jobs"
);
route!(
    /// One job: show, edit, remove.
    JOB = "/v1/jobs/{name}",
    fn job
);
route!(
    /// Queue a manual run of a job.
    JOB_RUN = "/v1/jobs/{name}/run",
    fn job_run
);
route!(
    /// Enable a job.
    JOB_ENABLE = "/v1/jobs/{name}/enable",
    fn job_enable
);
route!(
    /// Disable a job.
    JOB_DISABLE = "/v1/jobs/{name}/disable",
    fn job_disable
);
route!(
    /// Runs: list.
    RUNS = "/v1/runs"
);
route!(
    /// One run.
    RUN = "/v1/runs/{id}",
    fn run
);
route!(
    /// Cancel a run.
    RUN_CANCEL = "/v1/runs/{id}/cancel",
    fn run_cancel
);
route!(
    /// Snapshots: list.
    SNAPSHOTS = "/v1/snapshots"
);
route!(
    /// One snapshot: show, delete.
    SNAPSHOT = "/v1/snapshots/{id}",
    fn snapshot
);
route!(
    /// Lock a snapshot against retention.
    SNAPSHOT_LOCK = "/v1/snapshots/{id}/lock",
    fn snapshot_lock
);
route!(
    /// Unlock a snapshot.
    SNAPSHOT_UNLOCK = "/v1/snapshots/{id}/unlock",
    fn snapshot_unlock
);
route!(
    /// Settings: show.
    SETTINGS = "/v1/settings"
);
route!(
    /// One setting: set.
    SETTING = "/v1/settings/{key}",
    fn setting
);
route!(
    /// Alerts: list.
    ALERTS = "/v1/alerts"
);
route!(
    /// Acknowledge an alert.
    ALERT_ACK = "/v1/alerts/{id}/ack",
    fn alert_ack
);

route!(
    /// Notification integrations: list, add.
    NOTIFIERS = "/v1/notifiers"
);
route!(
    /// One notification integration: show, edit, remove.
    NOTIFIER = "/v1/notifiers/{name}",
    fn notifier
);
route!(
    /// Send a test message through an integration.
    NOTIFIER_TEST = "/v1/notifiers/{name}/test",
    fn notifier_test
);

route!(
    /// Database servers: list, add.
    DATABASES = "/v1/databases"
);
route!(
    /// One database server: show, edit, remove.
    DATABASE = "/v1/databases/{name}",
    fn database
);
route!(
    /// Connect to a database server and list its databases.
    DATABASE_TEST = "/v1/databases/{name}/test",
    fn database_test
);

route!(
    /// Restore a database from a snapshot (queues a task).
    RESTORE_DATABASE = "/v1/restores/database"
);
route!(
    /// Restore files from a snapshot (queues a task).
    RESTORE_FILES = "/v1/restores/files"
);
route!(
    /// Restore conditions: list, add.
    RESTORE_CONDITIONS = "/v1/restore-conditions"
);
route!(
    /// One restore condition: remove.
    RESTORE_CONDITION = "/v1/restore-conditions/{id}",
    fn restore_condition
);
route!(
    /// File permission rules of restores: list, add.
    PERMISSION_RULES = "/v1/permission-rules"
);
route!(
    /// One file permission rule: remove.
    PERMISSION_RULE = "/v1/permission-rules/{id}",
    fn permission_rule
);
route!(
    /// Downloads: list, build one (queues a task).
    DOWNLOADS = "/v1/downloads"
);
route!(
    /// One download: remove.
    DOWNLOAD = "/v1/downloads/{id}",
    fn download
);
route!(
    /// Tasks, newest first.
    TASKS = "/v1/tasks"
);
route!(
    /// One task.
    TASK = "/v1/tasks/{id}",
    fn task
);
route!(
    /// Cancel a queued or running task.
    TASK_CANCEL = "/v1/tasks/{id}/cancel",
    fn task_cancel
);
route!(
    /// Database assignments to accounts: list, set or remove one.
    DATABASE_ASSIGNMENTS = "/v1/database-assignments"
);

route!(
    /// The distinct versions of one path across snapshots.
    VERSIONS = "/v1/versions"
);
route!(
    /// Paths matching a pattern across snapshots.
    FIND = "/v1/find"
);
route!(
    /// What changed between two snapshots.
    DIFF = "/v1/diff"
);

route!(
    /// Queue priority groups of accounts: list, add.
    PRIORITY_GROUPS = "/v1/priority-groups"
);
route!(
    /// One queue priority group: remove.
    PRIORITY_GROUP = "/v1/priority-groups/{name}",
    fn priority_group
);
route!(
    /// Accounts: system users of accounts jobs and orphans.
    ACCOUNTS = "/v1/accounts"
);
route!(
    /// One account: show, edit.
    ACCOUNT = "/v1/accounts/{name}",
    fn account
);
route!(
    /// Forget an account: delete every snapshot, run record and alert of it.
    ACCOUNT_FORGET = "/v1/accounts/{name}/forget",
    fn account_forget
);

/// `pattern` with its one `{param}` replaced by `segment`, percent-encoded.
fn fill(pattern: &str, segment: &str) -> String {
    let (Some(open), Some(close)) = (pattern.find('{'), pattern.find('}')) else { return pattern.to_string() };
    format!("{}{}{}", &pattern[..open], encode(segment), &pattern[close + 1..])
}

/// `path` with the given query parameters, percent-encoded (those without a value left out).
pub fn with_query(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let q: Vec<String> = pairs.iter().filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(v)))).collect();
    if q.is_empty() { path.to_string() } else { format!("{path}?{}", q.join("&")) }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a
/// name holding `/`, `?` or `%` stays one path segment.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_fill_the_router_patterns_with_one_encoded_segment() {
        assert_eq!(job_run("nightly db"), "/v1/jobs/nightly%20db/run");
        assert_eq!(run(crate::ids::RunId(7)), "/v1/runs/7");
        assert_eq!(destination("a/b?c"), "/v1/destinations/a%2Fb%3Fc");
        assert_eq!(snapshot_unlock("12"), "/v1/snapshots/12/unlock");
    }
}

//! Accounts jobs: one snapshot per system user (home, crontab, mail spool
//! and the databases that are the user's), in the job directory
//! `<job>@<user>` on each destination, so that retention, the mount,
//! checks and reindexing treat each account like a job of its own.
//!
//! - `system`: which users exist and which a job backs up;
//! - `sources`: what one account's snapshot holds;
//! - `forget`: orphans (`orphan_ttl`), the right to be forgotten
//!   (`forget_ttl`, `hindsight account forget`).

mod forget;
mod sources;
mod system;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hindsight_api::{Account, DatabaseInfo, Job, Settings};

use crate::catalog::Catalog;
use crate::databases;
use crate::error::AgentError;
use crate::secrets::MasterKey;

pub(crate) use forget::{forget, sweep};
pub(crate) use system::{Lookup, lookup};

/// Default priority of an account (as for jobs: lower first).
const DEFAULT_PRIORITY: u8 = 50;

/// Each account's priority: its group's, else the default group's, else 50.
struct Priorities {
    groups: HashMap<String, u8>,
    of_account: HashMap<String, String>,
    default: u8,
}

impl Priorities {
    fn load(catalog: &Catalog, settings: &Settings) -> Result<Self, AgentError> {
        let groups: HashMap<String, u8> =
            catalog.priority_groups()?.into_iter().map(|g| (g.name, g.priority)).collect();
        let of_account =
            catalog.account_rows()?.into_iter().filter_map(|r| r.priority_group.map(|g| (r.name, g))).collect();
        let default = groups.get(&settings.default_priority_group).copied().unwrap_or(DEFAULT_PRIORITY);
        Ok(Priorities { groups, of_account, default })
    }

    fn group(&self, account: &str) -> Option<&String> {
        self.of_account.get(account)
    }

    fn of(&self, account: &str) -> u8 {
        self.group(account).and_then(|g| self.groups.get(g)).copied().unwrap_or(self.default)
    }
}

/// One account's part of a run of an accounts job.
pub(crate) struct AccountRun {
    /// User name.
    pub name: String,
    /// Its job directory on destinations: `<job>@<user>`.
    pub dir: String,
    /// Its home, crontab and mail spool, those that are its own.
    pub sources: Vec<PathBuf>,
    /// Other accounts' homes inside its home: left out.
    pub skip_dirs: Vec<Vec<u8>>,
    /// Its databases' dumps, and what could not be planned or was left out.
    pub plan: databases::Plan,
}

/// The name of an account's job directory.
pub(crate) fn job_dir(job: &str, account: &str) -> String {
    format!("{job}@{account}")
}

/// A run of an accounts job, planned.
pub(crate) struct RunPlan {
    /// Its accounts in priority order (then by name), each with its paths and databases.
    pub accounts: Vec<AccountRun>,
    /// The users it meant but cannot back up (`(user, why)`).
    pub missing: Vec<(String, String)>,
}

/// Plans a run of an accounts job.
pub(crate) fn plan_run(
    catalog: &Catalog,
    job: &Job,
    key: &MasterKey,
    state_dir: &Path,
    settings: &Settings,
) -> Result<RunPlan, AgentError> {
    let (mut users, missing) = system::select(&job.accounts, settings);
    let priorities = Priorities::load(catalog, settings)?;
    let of = |name: &str| priorities.of(name);
    users.sort_by(|a, b| (of(&a.name), &a.name).cmp(&(of(&b.name), &b.name)));
    let names: Vec<String> = users.iter().map(|u| u.name.clone()).collect();
    let mut dumps = if job.databases.is_empty() {
        HashMap::new()
    } else {
        let assignments = catalog.database_assignments()?;
        let default = Some(settings.default_database_account.as_str()).filter(|d| !d.is_empty());
        let account_of = |server: &str, db: &DatabaseInfo| -> Option<String> {
            if let Some(a) = assignments.iter().find(|a| a.server == server && a.database == db.name) {
                return a.account.clone();
            }
            match &db.owner {
                Some(owner) if names.contains(owner) => Some(owner.clone()),
                _ => default.map(str::to_string),
            }
        };
        let servers = catalog.database_servers()?;
        let split = databases::AccountSplit { accounts: &names, account_of, globals_to: default };
        databases::plan_accounts(&job.databases, &servers, key, state_dir, settings, &split)
    };
    let accounts = users
        .iter()
        .map(|u| {
            let paths = sources::paths(u, settings);
            let mut plan = dumps.remove(&u.name).unwrap_or_default();
            plan.problems.extend(paths.problems);
            AccountRun {
                name: u.name.clone(),
                dir: job_dir(&job.name, &u.name),
                sources: paths.sources,
                skip_dirs: sources::nested_homes(u, &users),
                plan,
            }
        })
        .collect();
    Ok(RunPlan { accounts, missing })
}

/// Every account the agent knows: users its accounts jobs back up, users
/// with snapshots (orphans among them), and those with a catalog row.
pub(crate) fn list(catalog: &Catalog) -> Result<Vec<Account>, AgentError> {
    let settings = catalog.settings()?;
    let priorities = Priorities::load(catalog, &settings)?;
    let mut accounts: std::collections::BTreeMap<String, Account> = Default::default();
    let blank = |name: &str| Account {
        name: name.to_string(),
        uid: None,
        home: None,
        exists: false,
        gone_since: None,
        priority_group: None,
        priority: DEFAULT_PRIORITY,
        snapshots: 0,
        jobs: Vec::new(),
        databases: Vec::new(),
    };
    for job in catalog.jobs()?.into_iter().filter(|j| j.kind == hindsight_api::JobKind::Accounts) {
        for u in system::select(&job.accounts, &settings).0 {
            let a = accounts.entry(u.name.clone()).or_insert_with(|| blank(&u.name));
            a.jobs.push(job.name.clone());
        }
    }
    for s in catalog.snapshots(None, None)? {
        if let (job, Some(account)) = hindsight_fs::split_job_dir(&s.job) {
            let a = accounts.entry(account.to_string()).or_insert_with(|| blank(account));
            a.snapshots += 1;
            if !a.jobs.iter().any(|j| j == job) {
                a.jobs.push(job.to_string());
            }
        }
    }
    for r in catalog.account_rows()? {
        let a = accounts.entry(r.name.clone()).or_insert_with(|| blank(&r.name));
        a.gone_since = r.gone_since;
    }
    for d in catalog.database_assignments()? {
        if let Some(name) = &d.account {
            let a = accounts.entry(name.clone()).or_insert_with(|| blank(name));
            a.databases.push(format!("{}:{}", d.server, d.database));
        }
    }
    let mut out: Vec<Account> = accounts.into_values().collect();
    for a in &mut out {
        a.jobs.sort();
        a.priority_group = priorities.group(&a.name).cloned();
        a.priority = priorities.of(&a.name);
        if let Lookup::Exists(u) = lookup(&a.name) {
            a.exists = true;
            a.uid = Some(u.uid);
            a.home = Some(u.home.to_string_lossy().into_owned());
            a.gone_since = None;
        }
    }
    Ok(out)
}

/// One account, as [`list`] shows it.
pub(crate) fn show(catalog: &Catalog, name: &str) -> Result<Account, AgentError> {
    list(catalog)?.into_iter().find(|a| a.name == name).ok_or_else(|| {
        AgentError::not_found(format!("no account named {name}: no accounts job backs it up and no snapshot is of it"))
    })
}

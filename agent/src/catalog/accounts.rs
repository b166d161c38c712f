//! Accounts in the catalog: their priorities, when the agent saw one gone,
//! the databases assigned to them, and forgetting every record of one.

use rusqlite::{OptionalExtension, params};

use jiff::Timestamp;

use super::columns::parsed_opt;
use super::{Catalog, CatalogError, Result, from_json, json};
use crate::model::{DatabaseAssignment, FileError, PriorityGroup, RunDestination, TaskRequest};

/// What the catalog holds about an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// User name.
    pub name: String,
    /// Its queue priority group.
    pub priority_group: Option<String>,
    /// When the agent first saw the user missing from the system.
    pub gone_since: Option<Timestamp>,
}

/// What forgetting an account removed from the catalog.
#[derive(Debug, Default, Clone, Copy)]
pub struct ForgottenRecords {
    /// Runs whose record of the account was removed.
    pub runs: u64,
    /// Alerts removed.
    pub alerts: u64,
    /// Tasks removed.
    pub tasks: u64,
    /// Database assignments removed.
    pub assignments: u64,
}

/// True when `job_dir` is `JOB@account`.
pub(crate) fn is_account_dir(job_dir: &str, account: &str) -> bool {
    hindsight_fs::split_job_dir(job_dir).1 == Some(account)
}

impl Catalog {
    /// Every account the catalog holds a row for, by name.
    pub fn account_rows(&self) -> Result<Vec<AccountRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT name, priority_group, gone_since FROM accounts ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok(AccountRow { name: r.get(0)?, priority_group: r.get(1)?, gone_since: parsed_opt(r, 2)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// One account's row, if it has one.
    pub fn account_row(&self, name: &str) -> Result<Option<AccountRow>> {
        let conn = self.conn();
        Ok(conn
            .query_row("SELECT name, priority_group, gone_since FROM accounts WHERE name = ?1", [name], |r| {
                Ok(AccountRow { name: r.get(0)?, priority_group: r.get(1)?, gone_since: parsed_opt(r, 2)? })
            })
            .optional()?)
    }

    /// Sets (or with `None` clears) an account's queue priority group; the
    /// row is created if missing.
    pub fn set_account_group(&self, name: &str, group: Option<&str>) -> Result<()> {
        self.conn().execute(
            "INSERT INTO accounts (name, priority_group) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET priority_group = excluded.priority_group",
            params![name, group],
        )?;
        Ok(())
    }

    /// Every queue priority group, by name.
    pub fn priority_groups(&self) -> Result<Vec<PriorityGroup>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT name, priority FROM priority_groups ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok(PriorityGroup { name: r.get(0)?, priority: r.get(1)? }))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Adds a queue priority group, or changes its priority.
    pub fn set_priority_group(&self, g: &PriorityGroup) -> Result<()> {
        self.conn().execute(
            "INSERT INTO priority_groups (name, priority) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET priority = excluded.priority",
            params![g.name, g.priority],
        )?;
        Ok(())
    }

    /// Removes a queue priority group that no account names.
    pub fn remove_priority_group(&self, name: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let users: i64 =
            tx.query_row("SELECT count(*) FROM accounts WHERE priority_group = ?1", [name], |r| r.get(0))?;
        if users > 0 {
            return Err(CatalogError::Conflict(format!(
                "priority group {name} is the group of {users} account(s): give them another first"
            )));
        }
        if tx.execute("DELETE FROM priority_groups WHERE name = ?1", [name])? == 0 {
            return Err(CatalogError::NotFound(format!("no priority group named {name}")));
        }
        tx.commit()?;
        Ok(())
    }

    /// Records whether the user exists: the first time it is seen missing is
    /// kept (`gone_since`), and cleared when it exists again.
    pub fn note_account_presence(&self, name: &str, exists: bool, now: Timestamp) -> Result<()> {
        let conn = self.conn();
        if exists {
            conn.execute("UPDATE accounts SET gone_since = NULL WHERE name = ?1", [name])?;
        } else {
            conn.execute(
                "INSERT INTO accounts (name, gone_since) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET gone_since = coalesce(gone_since, excluded.gone_since)",
                params![name, now.to_string()],
            )?;
        }
        Ok(())
    }

    /// Every database assignment, by server and database.
    pub fn database_assignments(&self) -> Result<Vec<DatabaseAssignment>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT server, database, account FROM database_assignments ORDER BY server, database")?;
        let rows = stmt.query_map([], |r| {
            Ok(DatabaseAssignment { server: r.get(0)?, database: r.get(1)?, account: Some(r.get(2)?) })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Assigns a database to an account, or removes its assignment (`account` none);
    /// returns whether anything changed.
    pub fn set_database_assignment(&self, a: &DatabaseAssignment) -> Result<bool> {
        let conn = self.conn();
        let n = match &a.account {
            Some(account) => conn.execute(
                "INSERT INTO database_assignments (server, database, account) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (server, database) DO UPDATE SET account = excluded.account",
                params![a.server, a.database, account],
            )?,
            None => conn.execute(
                "DELETE FROM database_assignments WHERE server = ?1 AND database = ?2",
                params![a.server, a.database],
            )?,
        };
        Ok(n > 0)
    }

    /// Removes every record of `account` but its snapshots (whose deletion
    /// the caller starts): its row, database assignments, alerts about it,
    /// its outcomes and file errors in runs, and tasks that restore from
    /// `snapshots` (its snapshots' ids). One transaction.
    pub fn forget_account_records(&self, account: &str, snapshots: &[i64]) -> Result<ForgottenRecords> {
        let mut out = ForgottenRecords::default();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM accounts WHERE name = ?1", [account])?;
        out.assignments = tx.execute("DELETE FROM database_assignments WHERE account = ?1", [account])? as u64;
        let alerts: Vec<(i64, String, Option<String>)> = tx
            .prepare("SELECT id, subject, job FROM alerts")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (id, subject, job) in alerts {
            if is_account_dir(&subject, account) || job.as_deref().is_some_and(|j| is_account_dir(j, account)) {
                tx.execute("DELETE FROM deliveries WHERE alert_id = ?1", [id])?;
                out.alerts += tx.execute("DELETE FROM alerts WHERE id = ?1", [id])? as u64;
            }
        }
        let runs: Vec<(i64, String, String)> = tx
            .prepare("SELECT id, destinations, errors FROM runs")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (id, dests, errors) in runs {
            let mut dests: Vec<RunDestination> = from_json(&dests, "run destinations")?;
            let mut errors: Vec<FileError> = from_json(&errors, "run errors")?;
            let before = dests.len() + errors.len();
            dests.retain(|d| d.account.as_deref() != Some(account));
            errors.retain(|e| e.account.as_deref() != Some(account));
            if dests.len() + errors.len() != before {
                tx.execute(
                    "UPDATE runs SET destinations = ?2, errors = ?3 WHERE id = ?1",
                    params![id, json(&dests), json(&errors)],
                )?;
                out.runs += 1;
            }
        }
        let tasks: Vec<(i64, String)> = tx
            .prepare("SELECT id, request FROM tasks WHERE state NOT IN ('queued', 'running')")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (id, request) in tasks {
            let request: TaskRequest = from_json(&request, "task request")?;
            if request.snapshots().iter().any(|s| snapshots.contains(&s.0)) {
                out.tasks += tx.execute("DELETE FROM tasks WHERE id = ?1", [id])? as u64;
            }
        }
        tx.commit()?;
        Ok(out)
    }
}

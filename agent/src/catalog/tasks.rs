//! Tasks in the catalog: restores and the other queued work besides backups.

use rusqlite::{OptionalExtension, Row, params};

use super::columns::{named, parsed, parsed_opt};
use super::{Catalog, CatalogError, Result, json};
use crate::model::{RunState, Task, TaskId, TaskKind, TaskRequest};

const COLUMNS: &str =
    "id, kind, state, summary, request, queued_at, started_at, finished_at, bytes_done, bytes_total, message";

fn map(r: &Row<'_>) -> rusqlite::Result<Task> {
    let request: String = r.get(4)?;
    let request = serde_json::from_str(&request)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(Task {
        id: TaskId(r.get(0)?),
        kind: named(r, 1, TaskKind::parse)?,
        state: named(r, 2, RunState::parse)?,
        summary: r.get(3)?,
        request,
        queued_at: parsed(r, 5)?,
        started_at: parsed_opt(r, 6)?,
        finished_at: parsed_opt(r, 7)?,
        bytes_done: r.get::<_, i64>(8)? as u64,
        bytes_total: r.get::<_, i64>(9)? as u64,
        message: r.get(10)?,
    })
}

impl Catalog {
    /// Queues a task; returns it.
    pub fn insert_task(&self, kind: TaskKind, summary: &str, request: &TaskRequest) -> Result<Task> {
        let id = {
            let conn = self.conn();
            conn.execute(
                "INSERT INTO tasks (kind, state, summary, request, queued_at) VALUES (?1, 'queued', ?2, ?3, ?4)",
                params![kind.as_str(), summary, json(request), super::now()],
            )?;
            conn.last_insert_rowid()
        };
        self.task(TaskId(id))
    }

    /// One task.
    pub fn task(&self, id: TaskId) -> Result<Task> {
        let conn = self.conn();
        let row = conn.query_row(&format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1"), [id.0], map).optional()?;
        row.ok_or_else(|| CatalogError::NotFound(format!("no task {id}")))
    }

    /// The newest tasks first, at most `limit`.
    pub fn tasks(&self, limit: u32) -> Result<Vec<Task>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM tasks ORDER BY id DESC LIMIT ?1"))?;
        Ok(stmt.query_map([limit], map)?.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The oldest queued task, if any.
    pub fn next_queued_task(&self) -> Result<Option<Task>> {
        let conn = self.conn();
        Ok(conn
            .query_row(&format!("SELECT {COLUMNS} FROM tasks WHERE state = 'queued' ORDER BY id LIMIT 1"), [], map)
            .optional()?)
    }

    /// Marks a queued task running; false when it is no longer queued (cancelled meanwhile).
    pub fn start_task(&self, id: TaskId) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE tasks SET state = 'running', started_at = ?2 WHERE id = ?1 AND state = 'queued'",
            params![id.0, super::now()],
        )?;
        Ok(n == 1)
    }

    /// Records a running task's progress.
    pub fn task_progress(&self, id: TaskId, done: u64, total: u64) -> Result<()> {
        self.conn().execute(
            "UPDATE tasks SET bytes_done = ?2, bytes_total = ?3 WHERE id = ?1",
            params![id.0, done as i64, total as i64],
        )?;
        Ok(())
    }

    /// Ends a task in `state` with `message`.
    pub fn end_task(&self, id: TaskId, state: RunState, message: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE tasks SET state = ?2, message = ?3, finished_at = ?4 WHERE id = ?1",
            params![id.0, state.as_str(), message, super::now()],
        )?;
        Ok(())
    }

    /// Forgets ended tasks that finished before `before`; returns how many.
    pub fn prune_tasks(&self, before: jiff::Timestamp) -> Result<usize> {
        Ok(self.conn().execute(
            "DELETE FROM tasks WHERE state NOT IN ('queued', 'running') AND finished_at < ?1",
            [before.to_string()],
        )?)
    }

    /// Tasks a stopped agent left running are failed (their tool was killed with it).
    pub fn fail_interrupted_tasks(&self) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE tasks SET state = 'failed', finished_at = ?1, \
             message = 'the agent stopped while the task ran; run it again' WHERE state = 'running'",
            [super::now()],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DatabaseRestore, SnapshotId};

    #[test]
    fn tasks_queue_start_once_end_and_are_pruned_after_they_end() {
        let dir = std::env::temp_dir().join(format!("hs-tasks-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let catalog = Catalog::open(&dir.join("catalog.sqlite")).unwrap_or_else(|e| panic!("{e}"));
        let request = TaskRequest::RestoreDatabase(DatabaseRestore {
            snapshot: SnapshotId(4),
            server: "db1".into(),
            database: "app".into(),
            as_name: None,
            to: None,
            replace: false,
            accept_conditions: false,
            accepted_conditions: Vec::new(),
        });
        let t =
            catalog.insert_task(TaskKind::RestoreDatabase, "restore app", &request).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.state, &t.request), (RunState::Queued, &request));
        assert_eq!(catalog.next_queued_task().ok().flatten().map(|q| q.id), Some(t.id));
        assert_eq!(catalog.start_task(t.id).ok(), Some(true));
        assert_eq!(catalog.start_task(t.id).ok(), Some(false), "a task starts once");
        assert!(catalog.next_queued_task().ok().flatten().is_none());
        // Still running: never pruned, and failed when the agent starts again.
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
        assert_eq!(catalog.prune_tasks(later).ok(), Some(0));
        assert_eq!(catalog.fail_interrupted_tasks().ok(), Some(1));
        let failed = catalog.task(t.id).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(failed.state, RunState::Failed);
        assert!(failed.message.as_deref().is_some_and(|m| m.contains("agent stopped")));
        assert_eq!(catalog.prune_tasks(later).ok(), Some(1));
        assert!(catalog.tasks(10).is_ok_and(|t| t.is_empty()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! What a check found: the per-snapshot report and the bounded list of problems.

/// Problems kept per snapshot: a destroyed snapshot must not produce a report
/// as large as its index.
const MAX_PROBLEMS: usize = 1000;

/// One thing wrong with a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path of the entry concerned, relative to the snapshot root, when there is one.
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// The outcome of checking one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotCheck {
    /// Job the snapshot belongs to (its manifest's, else its directory's).
    pub job: String,
    /// Snapshot name.
    pub snapshot: String,
    /// Structure from the manifest (`unknown` when the manifest is unreadable).
    pub structure: String,
    /// True when no problem was found.
    pub ok: bool,
    /// Index entries checked.
    pub entries_checked: u64,
    /// Bytes read from the destination (index, data file, file contents).
    pub bytes_read: u64,
    /// What is wrong, the most damaging first.
    pub problems: Vec<Problem>,
}

/// Counters and problems gathered while checking one snapshot.
#[derive(Debug, Default)]
pub struct Findings {
    /// Index entries checked.
    pub entries_checked: u64,
    /// Bytes read from the destination.
    pub bytes_read: u64,
    /// Problems, in the order found.
    pub problems: Problems,
}

/// A list of problems capped at `MAX_PROBLEMS`, counting those left out.
#[derive(Debug, Default)]
pub struct Problems {
    list: Vec<Problem>,
    left_out: u64,
}

impl Problems {
    /// Records a problem of the whole snapshot.
    pub fn snapshot(&mut self, message: impl Into<String>) {
        self.push(Problem { path: None, message: message.into() });
    }

    /// Records a problem of the entry at `path` (raw bytes, shown lossily).
    pub fn entry(&mut self, path: &[u8], message: impl Into<String>) {
        self.push(Problem { path: Some(show_path(path)), message: message.into() });
    }

    /// Records a problem already built.
    pub fn push(&mut self, p: Problem) {
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(p);
        } else {
            self.left_out += 1;
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.left_out == 0
    }

    /// The problems, with a last line counting those left out.
    pub fn into_vec(mut self) -> Vec<Problem> {
        if self.left_out > 0 {
            self.list.push(Problem { path: None, message: format!("and {} more problems", self.left_out) });
        }
        self.list
    }
}

/// A path for humans: `/` for the root, else the relative path (lossy UTF-8).
pub fn show_path(path: &[u8]) -> String {
    if path.is_empty() { "/".into() } else { String::from_utf8_lossy(path).into_owned() }
}

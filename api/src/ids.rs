//! Ids of the API's objects: one type per kind of object, so that a run id can
//! never be passed where a snapshot id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! catalog_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = BadId;

            fn from_str(s: &str) -> Result<Self, BadId> {
                s.parse().map($name).map_err(|_| BadId { what: $what, text: s.chars().take(40).collect() })
            }
        }
    };
}

catalog_id!(
    /// A run of a job (catalog row id).
    RunId,
    "run"
);
catalog_id!(
    /// A backup job (catalog row id).
    JobId,
    "job"
);
catalog_id!(
    /// A snapshot as the catalog knows it (row id; the snapshot's own name is
    /// its identity on the destination).
    SnapshotId,
    "snapshot"
);
catalog_id!(
    /// A task: a restore or another queued job of the agent (catalog row id).
    TaskId,
    "task"
);
catalog_id!(
    /// An alert (catalog row id).
    AlertId,
    "alert"
);

/// A path segment that should have been a numeric id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadId {
    /// What kind of id was expected.
    pub what: &'static str,
    /// The text given (at most 40 characters).
    pub text: String,
}

impl fmt::Display for BadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} id {:?} is not a number", self.what, self.text)
    }
}

impl std::error::Error for BadId {}

/// A destination's stable id, also written in its `HINDSIGHT` marker. New
/// destinations get a UUID; catalogs older than that may hold other text, so
/// the id is kept as the text it was stored as.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DestinationId(pub String);

impl DestinationId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DestinationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_numbers_on_the_wire_and_name_their_kind_when_bad() {
        assert_eq!(serde_json::to_string(&RunId(7)).ok().as_deref(), Some("7"));
        assert_eq!(serde_json::from_str::<SnapshotId>("12").ok(), Some(SnapshotId(12)));
        assert_eq!("42".parse::<AlertId>(), Ok(AlertId(42)));
        let bad = "x1".parse::<RunId>().err().map(|e| e.to_string());
        assert_eq!(bad.as_deref(), Some("run id \"x1\" is not a number"));
    }
}

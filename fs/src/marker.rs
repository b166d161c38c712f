//! The `HINDSIGHT` marker at the root of every destination.
//!
//! It says that the directory is a Hindsight destination, which on-destination
//! format it uses and which destination id created it. Blob naming and framing
//! are versioned here so that encryption can be added later without rewriting
//! existing destinations.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{FsError, Result};

/// File name of the marker.
pub(crate) const MARKER_FILE: &str = "HINDSIGHT";

/// The on-destination format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Contents of the marker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Marker {
    /// Always "hindsight".
    pub kind: String,
    /// On-destination format version.
    pub format: u32,
    /// Id of the destination that created the root.
    pub destination_id: String,
    /// When the root was initialised (RFC 3339).
    pub created: String,
    /// Naming and framing of `blobs/` (content-addressed destinations).
    pub blobs: BlobFormat,
}

/// How blobs are named and framed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobFormat {
    /// Hash that names a blob ("blake3").
    pub naming: String,
    /// Framing of a blob body ("plain": the file's bytes).
    pub framing: String,
}

impl Marker {
    /// A fresh marker for a new destination.
    pub fn new(destination_id: &str) -> Self {
        Marker {
            kind: "hindsight".into(),
            format: FORMAT_VERSION,
            destination_id: destination_id.into(),
            created: jiff::Timestamp::now().to_string(),
            blobs: BlobFormat { naming: "blake3".into(), framing: "plain".into() },
        }
    }

    /// Parses a marker, refusing formats this build cannot read and ids that
    /// are not what Hindsight writes (a marker may come from anyone who can
    /// write the destination; its id must never become a path).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        let m: Marker = serde_json::from_slice(bytes)
            .map_err(|e| FsError::Format { path: path.into(), message: format!("not a Hindsight marker: {e}") })?;
        if m.kind != "hindsight" {
            return Err(FsError::Format { path: path.into(), message: "not a Hindsight marker".into() });
        }
        crate::names::check_destination_id(&m.destination_id)
            .map_err(|message| FsError::Format { path: path.into(), message })?;
        if m.format > FORMAT_VERSION {
            return Err(FsError::Format {
                path: path.into(),
                message: format!(
                    "destination format {} is newer than this Hindsight supports ({FORMAT_VERSION})",
                    m.format
                ),
            });
        }
        Ok(m)
    }

    /// Serialises the marker as pretty JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_round_trips_and_a_path_like_id_is_refused() {
        let id = uuid::Uuid::new_v4().to_string();
        let m = Marker::new(&id);
        assert_eq!(Marker::parse(Path::new("HINDSIGHT"), &m.to_bytes()).expect("parse"), m);
        for bad in ["../../x", "/etc/logrotate.d", "", "x"] {
            let mut hostile = m.clone();
            hostile.destination_id = bad.into();
            let err = Marker::parse(Path::new("HINDSIGHT"), &hostile.to_bytes()).expect_err("hostile id");
            assert!(err.to_string().contains("not a UUID"), "{bad:?}: {err}");
        }
    }
}

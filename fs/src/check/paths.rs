//! Paths of index entries, built from their parents without a query per level.

use std::collections::HashMap;

use crate::error::Result;
use crate::index::{IndexReader, ROOT_ID};

/// Caches the path of every directory seen, so that an entry's path costs one
/// map lookup when its parent came before it (the usual order of an index and
/// of a tar stream). Memory grows with the number of directories only.
#[derive(Debug, Default)]
pub(crate) struct PathCache {
    dirs: HashMap<i64, Vec<u8>>,
}

impl PathCache {
    /// Path relative to the snapshot root of entry `id` (empty for the root).
    pub(crate) fn path(
        &mut self,
        index: &IndexReader,
        id: i64,
        parent: i64,
        name: &[u8],
        is_dir: bool,
    ) -> Result<Vec<u8>> {
        if id == ROOT_ID {
            return Ok(Vec::new());
        }
        let mut path = if parent == ROOT_ID {
            Vec::new()
        } else if let Some(p) = self.dirs.get(&parent) {
            p.clone()
        } else {
            let p = index.path_of(parent)?;
            self.dirs.insert(parent, p.clone());
            p
        };
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        if is_dir {
            self.dirs.insert(id, path.clone());
        }
        Ok(path)
    }
}

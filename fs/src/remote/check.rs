//! Integrity of remote snapshots: the manifest and index, and every file's
//! stored body (present with its size; with `read_data`, its blake3). An
//! archived or compressed snapshot's data file is streamed through the archive
//! checker instead (every header, every gzip member; bodies with `read_data`).

use crate::check::ReadData;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::check::{Findings, SnapshotCheck};
use crate::entry::EntryKind;
use crate::index::IndexReader;
use crate::manifest::Structure;

use super::stream::ObjectReader;

use super::store::RemoteStore;

/// Objects larger than this are hashed by ranges rather than read whole.
const READ_WHOLE: u64 = 64 << 20;

/// Sizes of the stored objects (`blobs/` and `packs/`), listed once per check.
pub(crate) type Objects = HashMap<String, u64>;

/// Lists the content objects of a destination.
pub fn list_objects(store: &RemoteStore) -> crate::Result<Objects> {
    let mut out = Objects::new();
    match store {
        RemoteStore::Objects(objects) => {
            for prefix in ["blobs/", "packs/"] {
                out.extend(objects.objects(prefix)?.into_iter().map(|o| (o.key, o.size)));
            }
        }
        // Hardlink trees hold their files in place: no stored bodies.
        RemoteStore::Ssh(_) => {}
    }
    Ok(out)
}

/// Checks one remote snapshot against the listed `objects`.
pub fn check_remote(
    store: &RemoteStore,
    cache: &Path,
    job: &str,
    snapshot: &str,
    objects: &Objects,
    read_data: ReadData,
) -> SnapshotCheck {
    let mut f = Findings::default();
    let mut structure = "unknown".to_string();
    match store.read_manifest(job, snapshot) {
        Err(e) => f.problems.snapshot(format!("unreadable manifest: {e}")),
        Ok(m) => {
            structure = m.structure.as_str().into();
            // The cached copy was checked against the manifest's blake3 when fetched.
            match store.cached_index(cache, job, snapshot).and_then(|p| IndexReader::open(&p)) {
                Err(e) => f.problems.snapshot(format!("unreadable index: {e}")),
                // SSH destinations hold hardlink trees on the server, the others blobs.
                Ok(index) if m.structure == Structure::Incremental => match store {
                    RemoteStore::Ssh(ssh) => {
                        super::ssh_check::check_tree(ssh, &format!("{job}/{snapshot}/tree"), &index, read_data, &mut f)
                    }
                    RemoteStore::Objects(_) => check_bodies(store, &index, objects, read_data, &mut f),
                },
                Ok(index) => {
                    let mut open = |name: &str| -> crate::archive::check::Opened {
                        let key = format!("{job}/{snapshot}/{name}");
                        match ObjectReader::open(store, &key) {
                            Ok(r) => {
                                let len = r.len();
                                Ok((Box::new(r), len))
                            }
                            Err(e) => Err(format!("cannot open {key}: {e}")),
                        }
                    };
                    crate::archive::check::check_with(&mut open, &index, m.structure, read_data, &mut f);
                }
            }
        }
    }
    let problems = f.problems.into_vec();
    SnapshotCheck {
        job: job.to_string(),
        snapshot: snapshot.to_string(),
        structure,
        ok: problems.is_empty(),
        entries_checked: f.entries_checked,
        bytes_read: f.bytes_read,
        problems,
    }
}

/// A file's body: where it is and what it must hash to.
struct Body {
    id: i64,
    offset: u64,
    size: u64,
    blake3: Option<[u8; 32]>,
}

fn check_bodies(store: &RemoteStore, index: &IndexReader, objects: &Objects, read_data: ReadData, f: &mut Findings) {
    let mut by_object: BTreeMap<String, Vec<Body>> = BTreeMap::new();
    let walked = index.for_each(|e| {
        f.entries_checked += 1;
        if e.meta.kind != EntryKind::File || e.meta.size == 0 {
            return Ok(());
        }
        let Some(key) = e.location.blob else {
            let path = index.path_of(e.id).unwrap_or_default();
            f.problems.entry(&path, "no stored body in the index");
            return Ok(());
        };
        let offset = e.location.data_offset.unwrap_or(0).max(0) as u64;
        by_object.entry(key).or_default().push(Body { id: e.id, offset, size: e.meta.size, blake3: e.blake3 });
        Ok(())
    });
    if let Err(e) = walked {
        f.problems.snapshot(format!("index unreadable midway: {e}"));
    }
    for (key, bodies) in by_object {
        let path = |b: &Body| index.path_of(b.id).unwrap_or_default();
        let Some(&size) = objects.get(&key) else {
            for b in &bodies {
                f.problems.entry(&path(b), format!("stored body {key} is missing"));
            }
            continue;
        };
        for b in bodies.iter().filter(|b| b.offset + b.size > size) {
            f.problems.entry(&path(b), format!("stored body {key} is {size} bytes, too short for this file"));
        }
        if !read_data.wants(key.as_bytes()) {
            continue;
        }
        let whole = if size <= READ_WHOLE { store.read(&key).ok() } else { None };
        f.bytes_read += whole.as_ref().map_or(0, |w| w.len() as u64);
        for b in bodies.iter().filter(|b| b.offset + b.size <= size) {
            let hash = match &whole {
                Some(data) => Some(blake3::hash(&data[b.offset as usize..(b.offset + b.size) as usize])),
                None => hash_range(store, &key, b.offset, b.size, f),
            };
            match hash {
                None => f.problems.entry(&path(b), format!("stored body {key} cannot be read")),
                Some(h) if Some(*h.as_bytes()) != b.blake3 => {
                    f.problems.entry(&path(b), format!("content differs from its blake3 (in {key})"))
                }
                Some(_) => {}
            }
        }
    }
}

/// blake3 of `size` bytes at `offset` of an object, read 8 MiB at a time.
fn hash_range(store: &RemoteStore, key: &str, offset: u64, size: u64, f: &mut Findings) -> Option<blake3::Hash> {
    let mut h = blake3::Hasher::new();
    let mut done = 0;
    while done < size {
        let n = (size - done).min(8 << 20);
        let part = store.read_range(key, offset + done, n).ok()?;
        if part.len() as u64 != n {
            return None;
        }
        f.bytes_read += n;
        h.update(&part);
        done += n;
    }
    Some(h.finalize())
}

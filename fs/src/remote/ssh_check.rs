//! Integrity of snapshots on SSH destinations: hardlink trees on the server.
//!
//! One `find` over the snapshot's `tree/` gives every file's size; with
//! `read_data`, the files' bytes come back in batches of one `cat` each (a
//! request per file would cost a round trip per file) and are hashed here
//! against the index. A file larger than a batch is read alone, by ranges of
//! a batch's size, each a command with its own timeout: memory stays at one
//! batch whatever the file's size, and a large file is never cut short by
//! the timeout of a single command.

use crate::check::ReadData;
use std::collections::HashMap;

use crate::check::Findings;
use crate::entry::EntryKind;
use crate::index::IndexReader;

use super::ssh::{SshClient, quote};

/// Bytes of file content fetched per `cat`.
const BATCH_BYTES: u64 = 32 << 20;
/// Files per `cat` (keeps the command line short).
const BATCH_FILES: usize = 256;

/// A regular file of the index: its path in the tree, size and hash.
struct File {
    path: Vec<u8>,
    size: u64,
    blake3: Option<[u8; 32]>,
}

/// Checks a snapshot's `tree/` on the server against its index.
pub(crate) fn check_tree(ssh: &SshClient, tree: &str, index: &IndexReader, read_data: ReadData, f: &mut Findings) {
    let script =
        [b"cd -- ".as_slice(), &ssh.quoted(tree), b" || exit 44; exec find . -type f -printf '%s %P\\0'"].concat();
    let listing = match ssh.run("list", tree, &script, None) {
        Ok(out) => out,
        Err(e) => {
            f.problems.snapshot(format!("cannot list the snapshot's tree on the server: {e}"));
            return;
        }
    };
    let on_server: HashMap<&[u8], u64> = parse_listing(&listing).collect();
    let mut files = Vec::new();
    let walked = index.for_each(|e| {
        f.entries_checked += 1;
        if e.meta.kind == EntryKind::File {
            files.push(File { path: index.path_of(e.id)?, size: e.meta.size, blake3: e.blake3 });
        }
        Ok(())
    });
    if let Err(e) = walked {
        f.problems.snapshot(format!("index unreadable midway: {e}"));
    }
    let mut intact = Vec::new();
    for file in files {
        match on_server.get(file.path.as_slice()) {
            None => f.problems.entry(&file.path, "missing from the snapshot's tree on the server"),
            Some(&s) if s != file.size => {
                f.problems.entry(&file.path, format!("{s} bytes on the server, {} in the index", file.size))
            }
            Some(_) => intact.push(file),
        }
    }
    intact.retain(|file| read_data.wants(&file.path));
    if !intact.is_empty() {
        hash_files(ssh, tree, &intact, f);
    }
}

/// The records of `find -printf '%s %P\0'`: each file's path in the tree and size.
pub(crate) fn parse_listing(listing: &[u8]) -> impl Iterator<Item = (&[u8], u64)> {
    listing.split(|&b| b == 0).filter_map(|rec| {
        let sp = rec.iter().position(|&b| b == b' ')?;
        let size = std::str::from_utf8(&rec[..sp]).ok()?.parse().ok()?;
        Some((&rec[sp + 1..], size))
    })
}

/// The batch of files (by `sizes`) fetched by one `cat` from `start`: its
/// end and its bytes.
pub(crate) fn batch_end(sizes: &[u64], start: usize) -> (usize, u64) {
    let (mut end, mut bytes) = (start, 0u64);
    // Saturating: the sizes are the server's (a hostile one can list any).
    while end < sizes.len()
        && end - start < BATCH_FILES
        && (end == start || bytes.saturating_add(sizes[end]) <= BATCH_BYTES)
    {
        bytes += sizes[end];
        end += 1;
    }
    (end, bytes)
}

/// Fetches files in batches and compares each one's blake3 with the index.
fn hash_files(ssh: &SshClient, tree: &str, files: &[File], f: &mut Findings) {
    let (large, files): (Vec<&File>, Vec<&File>) = files.iter().partition(|file| file.size > BATCH_BYTES);
    for file in large {
        hash_large(ssh, tree, file, f);
    }
    let sizes: Vec<u64> = files.iter().map(|file| file.size).collect();
    let mut start = 0;
    while start < files.len() {
        let (end, bytes) = batch_end(&sizes, start);
        let batch = &files[start..end];
        let mut script = [b"cd -- ".as_slice(), &ssh.quoted(tree), b" || exit 44; exec cat --"].concat();
        for file in batch {
            script.push(b' ');
            script.extend_from_slice(&quote(&file.path));
        }
        match ssh.run("read", tree, &script, None) {
            Ok(data) if data.len() as u64 == bytes => {
                f.bytes_read += bytes;
                let mut at = 0usize;
                for file in batch {
                    let body = &data[at..at + file.size as usize];
                    at += file.size as usize;
                    if Some(*blake3::hash(body).as_bytes()) != file.blake3 {
                        f.problems.entry(&file.path, "content differs from its blake3 in the index");
                    }
                }
            }
            Ok(_) => f.problems.snapshot("files changed size on the server while being read"),
            Err(e) => {
                for file in batch {
                    f.problems.entry(&file.path, format!("cannot be read on the server: {e}"));
                }
            }
        }
        start = end;
    }
}

/// Hashes one file larger than a batch by ranges of [`BATCH_BYTES`].
fn hash_large(ssh: &SshClient, tree: &str, file: &File, f: &mut Findings) {
    let path = [tree.as_bytes(), b"/", &file.path].concat();
    let mut hasher = blake3::Hasher::new();
    let mut offset = 0;
    while offset < file.size {
        let want = BATCH_BYTES.min(file.size - offset);
        match ssh.read_range_raw(&path, offset, want) {
            Ok(chunk) if chunk.len() as u64 == want => {
                hasher.update(&chunk);
                offset += want;
                f.bytes_read += want;
            }
            Ok(_) => return f.problems.entry(&file.path, "changed size on the server while being read"),
            Err(e) => return f.problems.entry(&file.path, format!("cannot be read on the server: {e}")),
        }
    }
    if Some(*hasher.finalize().as_bytes()) != file.blake3 {
        f.problems.entry(&file.path, "content differs from its blake3 in the index");
    }
}

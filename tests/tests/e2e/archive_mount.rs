//! Archived and compressed snapshots through the snapshot filesystem, like
//! incremental ones: `cp -a` from the mount reproduces the source (bytes,
//! modes, owners, times, xattrs, hardlinks, symlinks, special files), and
//! parallel readers at random offsets of a file spanning many gzip members get
//! the right bytes.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::system::tool;
use crate::support::{DEST, Setup, assert_same, describe, fixture, wait_until};

/// How long a new snapshot may take to show in the mount.
const APPEAR: Duration = Duration::from_secs(3);

/// The two archive structures, each backed up by its own job.
const JOBS: [(&str, &str); 2] = [("ja", "archived"), ("jc", "compressed")];

/// `<mount>/<dest>/<job>/<snapshot>` holding `source`, once it shows.
fn in_mount(mnt: &Path, job: &str, snapshot: &str, source: &Path) -> PathBuf {
    let p = mnt.join(DEST).join(job).join(snapshot).join(source.strip_prefix("/").expect("absolute source"));
    wait_until("the snapshot in the mount", APPEAR, || p.is_dir().then_some(()));
    p
}

#[test]
fn cp_from_the_mount_reproduces_archived_and_compressed_snapshots() {
    let s = Setup::mounted(|root| {
        fixture::every_kind(root);
        // Spans several 1 MiB members, and starts mid-member.
        fixture::big_file(&root.join("big.bin"), 5 << 20, 11);
    });
    let source = describe(&s.src);
    for (job, structure) in JOBS {
        s.daemon.add_job(job, &[&s.src], &[DEST], &["--structure", structure]);
        let snap = s.daemon.backup(job);
        let from = in_mount(s.mountpoint(), job, &snap.name, &s.src);
        let copy = s.sb.path().join(format!("cp-{structure}"));
        tool("cp", [std::ffi::OsStr::new("-a"), from.as_os_str(), copy.as_os_str()]);
        assert_same(&source, &describe(&copy), &format!("cp -a of a {structure} snapshot from the mount"));
        let t = describe(&copy);
        assert!(t.hardlink_groups().iter().any(|g| g.len() == 3), "{structure}: the hardlink group stays one file");
    }
}

#[test]
fn parallel_readers_at_random_offsets_of_archives() {
    let s = Setup::mounted(|root| fixture::big_file(&root.join("big.bin"), 12 << 20, 7));
    let want = std::sync::Arc::new(std::fs::read(s.src.join("big.bin")).expect("read the source"));
    for (job, structure) in JOBS {
        s.daemon.add_job(job, &[&s.src], &[DEST], &["--structure", structure]);
        let snap = s.daemon.backup(job);
        let path = in_mount(s.mountpoint(), job, &snap.name, &s.src).join("big.bin");
        let readers: Vec<_> = (0..8u64)
            .map(|t| {
                let (path, want) = (path.clone(), want.clone());
                std::thread::spawn(move || {
                    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
                    let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    for _ in 0..200 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let off = (x % want.len() as u64) as usize;
                        let len = ((x >> 40) as usize % (300 << 10)).min(want.len() - off);
                        let mut buf = vec![0u8; len];
                        f.read_exact_at(&mut buf, off as u64).unwrap_or_else(|e| panic!("read at {off}+{len}: {e}"));
                        assert!(buf == want[off..off + len], "reader {t}: wrong bytes at {off}+{len}");
                    }
                })
            })
            .collect();
        for r in readers {
            r.join().unwrap_or_else(|_| panic!("a reader of the {structure} snapshot failed"));
        }
    }
}

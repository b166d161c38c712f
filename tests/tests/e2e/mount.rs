//! The snapshot filesystem, through a real FUSE mount: `cp -a` and
//! `rsync -aHAX` from the mount reproduce each snapshot, `latest` follows new
//! snapshots without a remount, deleted snapshots disappear, the kernel
//! enforces owners and modes for an unprivileged user, hidden destinations are
//! root's only, writes fail with EROFS, parallel readers get their bytes, a
//! killed daemon's mount is cleaned up at restart, the standalone mount shows
//! the same trees, and an unreadable index only empties its own snapshot.
//! Overlapping opens of one file share its backing file, and a file of a
//! deleted snapshot gives ENOENT even when it was opened before. A mount that
//! ends after its directory was reused leaves the new mount there alone.
//! Files read in order make the mount read the next ones of their directory
//! ahead.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::system::{Mount, UNPRIVILEGED_USER, tool, unprivileged_user};
use crate::support::{DEST, JOB, Setup, assert_same, describe, fixture, s as ps, wait_until};

/// How long a change on a destination may take to show in the mount.
const APPEAR: Duration = Duration::from_secs(3);

/// `<mount>/<dest>/<job>/<snapshot>` holding `source`.
fn in_mount(mnt: &Path, snapshot: &str, source: &Path) -> PathBuf {
    mnt.join(DEST).join(JOB).join(snapshot).join(source.strip_prefix("/").expect("absolute source"))
}

/// Runs a command as the unprivileged user; returns (success, stderr).
fn as_user(args: &[&str]) -> (bool, String) {
    unprivileged_user();
    let out = Command::new("setpriv")
        .args([&format!("--reuid={UNPRIVILEGED_USER}"), &format!("--regid={UNPRIVILEGED_USER}"), "--clear-groups"])
        .args(args)
        .output()
        .expect("run setpriv");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn cp_and_rsync_from_the_mount_reproduce_three_snapshots() {
    let s = Setup::mounted(fixture::every_kind);
    let mut snaps = vec![s.daemon.backup(JOB)];
    fixture::edit_every_kind(&s.src);
    snaps.push(s.daemon.backup(JOB));
    fixture::write(&s.src.join("third/file.txt"), b"third snapshot\n");
    fixture::stamp_times(&s.src);
    snaps.push(s.daemon.backup(JOB));
    let mnt = s.mountpoint();
    for (i, snap) in snaps.iter().enumerate() {
        let want = describe(&snap.tree(&s.src));
        let from = in_mount(mnt, &snap.name, &s.src);
        wait_until("the snapshot in the mount", APPEAR, || from.is_dir().then_some(()));
        let via_cp = s.sb.path().join(format!("cp-{i}"));
        tool("cp", [std::ffi::OsStr::new("-a"), from.as_os_str(), via_cp.as_os_str()]);
        assert_same(&want, &describe(&via_cp), &format!("cp -a of snapshot {i} from the mount"));
        // rsync (3.5 here) leaves a directory whose mtime lies in the current
        // second with the time of the copy, from a mount or not: the snapshot
        // now shows as soon as the run ends, so let that second pass.
        let newest = want.entries.values().map(|e| e.mtime_ns).max().unwrap_or(0);
        while std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
            < newest + 1_100_000_000
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let via_rsync = s.sb.path().join(format!("rsync-{i}"));
        tool("rsync", ["-aHAX".as_ref(), format!("{}/", from.display()).as_ref(), via_rsync.as_os_str()]);
        assert_same(&want, &describe(&via_rsync), &format!("rsync -aHAX of snapshot {i} from the mount"));
    }
}

#[test]
fn unchanged_file_has_one_inode_number_in_every_snapshot() {
    let s = Setup::mounted(fixture::small_tree);
    let first = s.daemon.backup(JOB);
    fixture::write(&s.src.join("a.txt"), b"changed\n");
    let second = s.daemon.backup(JOB);
    let mnt = s.mountpoint();
    let stat = |snap: &str, rel: &str| {
        let p = in_mount(mnt, snap, &s.src).join(rel);
        wait_until("the file in the mount", APPEAR, || std::fs::symlink_metadata(&p).ok())
    };
    let (u1, u2) = (stat(&first.name, "b/c.txt"), stat(&second.name, "b/c.txt"));
    assert_eq!(u1.ino(), u2.ino(), "unchanged file: one st_ino in both snapshots");
    assert!(u1.nlink() >= 2, "a file shared by two snapshots shows its links: {}", u1.nlink());
    let (c1, c2) = (stat(&first.name, "a.txt"), stat(&second.name, "a.txt"));
    assert_ne!(c1.ino(), c2.ino(), "a changed file is another file");
    assert_eq!(std::fs::read(in_mount(mnt, &second.name, &s.src).join("a.txt")).expect("read"), b"changed\n");
}

#[test]
fn latest_follows_new_snapshots_and_deleted_ones_disappear() {
    let s = Setup::mounted(fixture::small_tree);
    let first = s.daemon.backup(JOB);
    let job = s.mountpoint().join(DEST).join(JOB);
    let latest = job.join("latest");
    wait_until("latest -> first", APPEAR, || {
        (std::fs::read_link(&latest).ok()? == Path::new(&first.name)).then_some(())
    });
    let second = s.daemon.backup(JOB);
    wait_until("latest -> second", APPEAR, || {
        (std::fs::read_link(&latest).ok()? == Path::new(&second.name)).then_some(())
    });
    let names = crate::support::list_names(&job);
    assert_eq!(names, vec![first.name.clone(), second.name.clone(), "latest".to_string()], "job directory");
    assert!(!names.iter().any(|n| n.starts_with('.')), "work directories never show: {names:?}");
    s.daemon.cli_ok(&["snapshot", "delete", &first.id.to_string()]);
    wait_until("the deleted snapshot to go", APPEAR, || (!job.join(&first.name).exists()).then_some(()));
    assert_eq!(
        std::fs::read(latest.join(s.src.strip_prefix("/").expect("absolute")).join("a.txt")).expect("read via latest"),
        b"a\n"
    );
}

#[test]
fn kernel_enforces_owners_and_hides_hidden_destinations() {
    let s = Setup::mounted(|src| {
        fixture::write(&src.join("public.txt"), b"everyone\n");
        fixture::own(&src.join("public.txt"), 0, 0, 0o644);
        fixture::write(&src.join("secret.txt"), b"root only\n");
        fixture::own(&src.join("secret.txt"), 0, 0, 0o600);
        fixture::own(src, 0, 0, 0o755);
    });
    // The sandbox's own directories must be traversable for the other user.
    tool("chmod", ["755", ps(s.sb.path())]);
    let snap = s.daemon.backup(JOB);
    let hidden_dest = s.sb.path().join("hidden-dest");
    s.daemon.add_destination("hidden", &hidden_dest, &["--hidden"]);
    s.daemon.add_job("j2", &[&s.src], &["hidden"], &[]);
    s.daemon.backup("j2");

    let dir = in_mount(s.mountpoint(), &snap.name, &s.src);
    wait_until("the snapshot in the mount", APPEAR, || dir.is_dir().then_some(()));
    let (ok, _) = as_user(&["cat", ps(&dir.join("public.txt"))]);
    assert!(ok, "a 0644 file is readable by another user through the mount");
    let (ok, err) = as_user(&["cat", ps(&dir.join("secret.txt"))]);
    assert!(!ok && err.contains("Permission denied"), "a 0600 root file is denied: {err}");

    let hidden = s.mountpoint().join("hidden");
    wait_until("root sees the hidden destination", APPEAR, || hidden.join("j2").is_dir().then_some(()));
    let out = Command::new("setpriv")
        .args([&format!("--reuid={UNPRIVILEGED_USER}"), &format!("--regid={UNPRIVILEGED_USER}"), "--clear-groups"])
        .args(["ls", "-a", ps(s.mountpoint())])
        .output()
        .expect("ls as the user");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.lines().any(|l| l == DEST), "the user sees {DEST}: {listing}");
    assert!(!listing.lines().any(|l| l == "hidden"), "the user does not see the hidden destination: {listing}");
    let (ok, err) = as_user(&["stat", ps(&hidden)]);
    assert!(
        !ok && err.contains("No such file or directory"),
        "lookup of a hidden destination fails with ENOENT: {err}"
    );
}

#[test]
fn writes_fail_with_erofs_and_parallel_readers_get_their_bytes() {
    let s = Setup::mounted(|src| {
        for i in 0..8u64 {
            fixture::write(&src.join(format!("f{i}.bin")), &fixture::pseudo_random((1 << 20) + i as usize * 4093, i));
        }
    });
    let snap = s.daemon.backup(JOB);
    let dir = in_mount(s.mountpoint(), &snap.name, &s.src);
    wait_until("the snapshot in the mount", APPEAR, || dir.is_dir().then_some(()));
    for (what, result) in [
        ("create", std::fs::write(dir.join("new"), b"x")),
        ("overwrite", std::fs::write(dir.join("f0.bin"), b"x")),
        ("mkdir", std::fs::create_dir(dir.join("d"))),
        ("unlink", std::fs::remove_file(dir.join("f1.bin"))),
        ("rename", std::fs::rename(dir.join("f2.bin"), dir.join("f2.moved"))),
    ] {
        let err = result.expect_err(what);
        assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::ROFS.raw_os_error()), "{what}: {err}");
    }
    let readers: Vec<_> = (0..8u64)
        .map(|i| {
            let (a, b) = (dir.join(format!("f{i}.bin")), s.src.join(format!("f{i}.bin")));
            std::thread::spawn(move || {
                let mut got = Vec::new();
                std::fs::File::open(&a).expect("open in the mount").read_to_end(&mut got).expect("read");
                assert_eq!(got, std::fs::read(&b).expect("read the source"), "bytes of {}", a.display());
            })
        })
        .collect();
    for r in readers {
        r.join().expect("a reader failed");
    }
}

#[test]
fn killed_daemon_leaves_no_hang_and_the_restart_mounts_again() {
    let mut s = Setup::mounted(fixture::small_tree);
    let snap = s.daemon.backup(JOB);
    let dir = in_mount(s.mountpoint(), &snap.name, &s.src);
    wait_until("the snapshot in the mount", APPEAR, || dir.is_dir().then_some(()));
    s.daemon.kill9();
    // Cached entries still stat; anything the kernel must ask about fails at once.
    let err = std::fs::metadata(s.mountpoint().join("not-cached")).expect_err("a dead mount cannot answer");
    assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::NOTCONN.raw_os_error()), "{err}");
    s.daemon.restart();
    wait_until("the mount to work again", APPEAR, || std::fs::read(dir.join("a.txt")).ok());
    assert_eq!(std::fs::read(dir.join("a.txt")).expect("read"), b"a\n");
}

#[test]
fn standalone_mount_shows_the_same_trees_without_the_agent() {
    let mut s = Setup::new(fixture::every_kind);
    let snap = s.daemon.backup(JOB);
    let want = describe(&snap.tree(&s.src));
    assert!(s.daemon.stop().success(), "daemon stops on SIGTERM");
    let mnt = s.sb.dir("standalone");
    let cli = |args: &[&str]| s.daemon.cli(args);
    let _guard = crate::support::system::FuseGuard(mnt.clone());
    cli(&["mount", "--destination", ps(&s.dest), ps(&mnt), "--background"]).assert_success();
    let tree = mnt.join(JOB).join(&snap.name).join(s.src.strip_prefix("/").expect("absolute"));
    let copy = s.sb.path().join("copy");
    tool("cp", [std::ffi::OsStr::new("-a"), tree.as_os_str(), copy.as_os_str()]);
    assert_same(&want, &describe(&copy), "cp -a from the standalone mount");
    assert_eq!(std::fs::read_link(mnt.join(JOB).join("latest")).expect("latest"), Path::new(&snap.name));

    cli(&["mount", "--destination", ps(&s.dest), ps(&mnt)]).assert_error(&["already a mountpoint"]);
    cli(&["umount", ps(&mnt)]).assert_success();
    wait_until("the mount to go", APPEAR, || (!crate::support::system::is_mounted(&mnt)).then_some(()));

    cli(&["mount", "--destination", ps(&s.dest), ps(&s.sb.path().join("missing"))]).assert_error(&["does not exist"]);
    cli(&["mount", "--destination", ps(&s.src), ps(&mnt)]).assert_error(&["not a Hindsight destination"]);
    cli(&["mount", "--destination", ps(&s.dest), ps(&s.src)]).assert_error(&["not empty"]);
    cli(&["umount", ps(&mnt)]).assert_error(&["not mounted"]);
}

/// Processes whose command line holds every one of `words` as an argument.
fn processes_with(words: &[&str]) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            words.iter().all(|w| args.contains(&w.as_bytes()))
        })
        .collect()
}

/// True while `pid` runs (a zombie waiting for its parent counts as gone).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn a_mount_that_ends_late_leaves_the_next_mount_on_its_directory_alone() {
    let mut s = Setup::new(fixture::small_tree);
    let snap = s.daemon.backup(JOB);
    assert!(s.daemon.stop().success(), "daemon stops on SIGTERM");
    let mnt = s.sb.dir("standalone");
    let _guard = crate::support::system::FuseGuard(mnt.clone());
    let rel = Path::new(JOB).join(&snap.name).join(s.src.strip_prefix("/").expect("absolute")).join("a.txt");
    let mount = || {
        s.daemon.cli(["mount", "--destination", ps(&s.dest), ps(&mnt), "--background"]).assert_success();
    };
    mount();
    let first = processes_with(&["mount", ps(&mnt)]);
    assert_eq!(first.len(), 1, "one process serves the first mount: {first:?}");
    // A file held open keeps the first mount alive after it is detached from
    // its directory: it ends when the file is closed, with a new mount there.
    let held = std::fs::File::open(mnt.join(&rel)).expect("open a file of the first mount");
    tool("umount", [std::ffi::OsStr::new("-l"), mnt.as_os_str()]);
    assert!(!crate::support::system::is_mounted(&mnt), "the first mount is detached");
    mount();
    assert_eq!(std::fs::read(mnt.join(&rel)).expect("read through the second mount"), b"a\n");
    drop(held);
    wait_until("the first mount's process to end", APPEAR, || (!running(first[0])).then_some(()));
    std::thread::sleep(Duration::from_millis(200));
    assert!(crate::support::system::is_mounted(&mnt), "the second mount is still there");
    assert_eq!(std::fs::read(mnt.join(&rel)).expect("read after the first mount ended"), b"a\n");
    s.daemon.cli(["umount", ps(&mnt)]).assert_success();
}

#[test]
fn unreadable_index_empties_only_its_snapshot() {
    let s = Setup::mounted(fixture::small_tree);
    let first = s.daemon.backup(JOB);
    let second = s.daemon.backup(JOB);
    std::fs::write(first.path.join("index.sqlite"), b"this is not an index").expect("corrupt the index");
    let job = s.mountpoint().join(DEST).join(JOB);
    wait_until("both snapshots in the mount", APPEAR, || job.join(&second.name).is_dir().then_some(()));
    assert!(job.join(&first.name).is_dir(), "the damaged snapshot is still a directory");
    assert!(crate::support::list_names(&job.join(&first.name)).is_empty(), "and it is empty");
    assert_eq!(
        std::fs::read(in_mount(s.mountpoint(), &second.name, &s.src).join("a.txt")).expect("read the other snapshot"),
        b"a\n"
    );
    let shown = s.daemon.cli_json(&["snapshot", "show", &first.id.to_string()]);
    assert!(shown["error"].as_str().is_some_and(|e| e.contains("index")), "snapshot show reports it: {shown:#}");
    let fine = s.daemon.cli_json(&["snapshot", "show", &second.id.to_string()]);
    assert!(fine.get("error").is_none_or(|e| e.is_null()), "the other snapshot is fine: {fine:#}");
}

#[test]
fn overlapping_opens_share_a_file_and_a_deleted_snapshot_gives_enoent() {
    let s = Setup::mounted(|src| {
        fixture::write(&src.join("a.txt"), b"first\n");
        fixture::write(&src.join("big.bin"), &fixture::pseudo_random(1 << 20, 7));
    });
    let snap = s.daemon.backup(JOB);
    let dir = in_mount(s.mountpoint(), &snap.name, &s.src);
    wait_until("the snapshot in the mount", APPEAR, || dir.is_dir().then_some(()));

    // The kernel takes one backing file per node at a time: opens of a file
    // already open (by this process and by threads at once) must all read it.
    let want = std::fs::read(s.src.join("big.bin")).expect("read the source");
    let held: Vec<std::fs::File> =
        (0..4).map(|_| std::fs::File::open(dir.join("big.bin")).expect("open while open")).collect();
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (path, want) = (dir.join("big.bin"), want.clone());
            std::thread::spawn(move || {
                for _ in 0..20 {
                    assert_eq!(std::fs::read(&path).expect("read while others read"), want);
                }
            })
        })
        .collect();
    for r in readers {
        r.join().expect("a reader failed");
    }
    for mut f in held {
        let mut got = Vec::new();
        f.read_to_end(&mut got).expect("read a held file");
        assert_eq!(got, want);
    }

    // Read twice (the second open is served from what the mount keeps), then
    // delete the snapshot: the file's node, reached through a directory opened
    // before, must give ENOENT, never the kept file.
    for _ in 0..2 {
        assert_eq!(std::fs::read(dir.join("a.txt")).expect("read"), b"first\n");
    }
    let dir_fd = std::fs::File::open(&dir).expect("open the snapshot's directory");
    let open_before = std::fs::File::open(dir.join("a.txt")).expect("open before the deletion");
    s.daemon.cli_ok(&["snapshot", "delete", &snap.id.to_string()]);
    let job = s.mountpoint().join(DEST).join(JOB);
    wait_until("the deleted snapshot to go", APPEAR, || (!job.join(&snap.name).exists()).then_some(()));
    let err = rustix::fs::openat(&dir_fd, "a.txt", rustix::fs::OFlags::RDONLY, rustix::fs::Mode::empty())
        .expect_err("a file of a deleted snapshot cannot be opened");
    assert!(
        err == rustix::io::Errno::NOENT || err == rustix::io::Errno::IO,
        "a file of a deleted snapshot gives ENOENT or EIO: {err}"
    );
    // What was open before keeps reading, like any deleted file.
    let mut got = Vec::new();
    (&open_before).read_to_end(&mut got).expect("read a file opened before the deletion");
    assert_eq!(got, b"first\n");
}

/// Bytes of `path` in the page cache (`fincore`, util-linux).
fn resident(path: &Path) -> u64 {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run fincore: {e}"));
    assert!(out.status.success(), "fincore {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().unwrap_or_else(|e| panic!("fincore printed {text:?}: {e}"))
}

/// Drops the cached pages of `path` (written back first, so they can go).
fn evict(path: &Path) {
    let f = std::fs::File::open(path).expect("open to evict");
    f.sync_all().expect("fsync");
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise DONTNEED");
}

#[test]
fn a_directory_read_in_order_is_read_ahead_and_a_lone_file_is_not() {
    const FILES: usize = 12;
    const SIZE: usize = 96 << 10;
    let name = |i: usize| format!("f{i:02}.bin");
    let s = Setup::mounted(|src| {
        for i in 0..FILES {
            fixture::write(&src.join("dir").join(name(i)), &fixture::pseudo_random(SIZE, i as u64));
        }
    });
    // On a disk: read-ahead is about pages coming from a device.
    let disk = Mount::ext4(&s.sb.path().join("disk"), 32);
    s.daemon.add_destination("disk", &disk.path().join("dest"), &[]);
    s.daemon.add_job("ra", &[&s.src], &["disk"], &[]);
    let snap = s.daemon.backup("ra");
    let dir =
        s.mountpoint().join("disk/ra").join(&snap.name).join(s.src.strip_prefix("/").expect("absolute")).join("dir");
    let backing = snap.tree(&s.src).join("dir");
    wait_until("the snapshot in the mount", APPEAR, || dir.is_dir().then_some(()));
    let read = |i: usize| {
        let got = std::fs::read(dir.join(name(i))).expect("read through the mount");
        assert_eq!(got, fixture::pseudo_random(SIZE, i as u64), "bytes of {}", name(i));
    };
    for i in 0..FILES {
        evict(&backing.join(name(i)));
        assert_eq!(
            resident(&backing.join(name(i))),
            0,
            "{} could not be evicted: the test would prove nothing",
            name(i)
        );
    }

    // One file: nothing else is read.
    read(5);
    std::thread::sleep(Duration::from_millis(500));
    for i in (0..FILES).filter(|&i| i != 5) {
        assert_eq!(resident(&backing.join(name(i))), 0, "{} was read ahead after a single open", name(i));
    }

    // A second file next to it: the files after it are asked for at once.
    read(6);
    for i in 7..FILES {
        let path = backing.join(name(i));
        wait_until(&format!("{} to be read ahead", name(i)), APPEAR, || (resident(&path) == SIZE as u64).then_some(()));
    }
    for i in 7..FILES {
        read(i);
    }
}

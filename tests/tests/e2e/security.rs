//! Attacks on the agent by a local user and by a destination written by
//! someone else, each run against the real daemon, with the attacker as the
//! unprivileged user where the attack is a user's:
//!
//! - local destinations are private (root 0700, the agent's files 0600): the
//!   user reads a root-only file from no structure, and a destination left
//!   with wider modes is tightened at the next start;
//! - the mount never follows a symlink put into a snapshot's tree;
//! - a deletion never follows a directory swapped for a symlink while it runs
//!   (the victim directory survives);
//! - a remote marker whose id is a path, and a manifest (local or remote)
//!   whose name climbs out of its directory, write and delete nothing outside
//!   the destination;
//! - an index whose `entries` is an endless recursive view hangs nothing:
//!   another destination answers at once and SIGTERM stops the agent;
//! - files exchanged with `renameat2(RENAME_EXCHANGE)` during backups never
//!   land in a snapshot with root's content under the user's owner and mode;
//! - the mount enforces POSIX ACLs (`group::---` denies the group).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::daemon::{Daemon, DaemonOpts};
use crate::support::fixture::{chmod, mkdir, own, write};
use crate::support::remote::{Kind, Remote};
use crate::support::system::{FuseGuard, as_user, setfacl, unprivileged_user};
use crate::support::{DEST, JOB, Sandbox, Setup, list_names, s, wait_until};

/// How long a change on a destination may take to show in the mount.
const APPEAR: Duration = Duration::from_secs(3);

/// The permission bits of `p` (not following a final symlink).
fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display())).permissions().mode() & 0o7777
}

/// Every path under `root` (itself included), not following symlinks.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        i += 1;
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            for e in std::fs::read_dir(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())) {
                out.push(e.expect("entry").path());
            }
        }
    }
    out
}

/// Makes `dirs` traversable by everyone (the sandbox is 0700).
fn open_up(dirs: &[&Path]) {
    for d in dirs {
        chmod(d, 0o755);
    }
}

/// The text of an output's stdout and stderr, for messages.
fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn local_destinations_are_private_to_the_agent_in_every_structure() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src.join("secret"), b"ROOT ONLY SECRET\n");
    own(&src.join("secret"), 0, 0, 0o600);
    write(&src.join("public"), b"public\n");
    own(&src, 0, 0, 0o755);
    let dest = sb.path().join("dest");
    open_up(&[sb.path()]);
    let mut daemon = Daemon::start(sb.daemon_opts());
    daemon.add_destination(DEST, &dest, &[]);
    let mut snaps = Vec::new();
    for (job, structure) in [("inc", "incremental"), ("arc", "archived"), ("cmp", "compressed")] {
        daemon.add_job(job, &[&src], &[DEST], &["--structure", structure]);
        snaps.push(daemon.backup(job));
    }

    assert_eq!(mode(&dest), 0o700, "the destination root");
    for p in walk(&dest) {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if ["HINDSIGHT", "index.sqlite", "snapshot.json", "data.tar", "data.tar.gz", ".lock"].contains(&name.as_str()) {
            assert_eq!(mode(&p) & 0o077, 0, "{} is readable by others", p.display());
        }
    }
    let tree_secret = snaps[0].tree(&src).join("secret");
    assert_eq!(std::fs::read(&tree_secret).expect("read as root"), b"ROOT ONLY SECRET\n");
    let attempts: Vec<Vec<String>> = vec![
        vec!["cat".into(), s(&tree_secret).into()],
        vec!["tar".into(), "-xOf".into(), s(&snaps[1].path.join("data.tar")).into()],
        vec!["tar".into(), "-xzOf".into(), s(&snaps[2].path.join("data.tar.gz")).into()],
        vec!["cat".into(), s(&snaps[0].path.join("index.sqlite")).into()],
        vec!["ls".into(), s(&dest).into()],
    ];
    for args in &attempts {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = as_user(&args);
        assert!(!out.status.success(), "the user ran {args:?}: {}", text(&out));
        assert!(!text(&out).contains("ROOT ONLY SECRET"), "the user read the secret with {args:?}");
        assert!(text(&out).contains("Permission denied"), "{args:?}: {}", text(&out));
    }

    // A destination left with the old, wide modes is tightened at the next start.
    chmod(&dest, 0o755);
    daemon.stop();
    daemon.restart();
    assert_eq!(mode(&dest), 0o700, "the destination root after a restart");
    assert!(daemon.log().contains("private to the agent"), "the tightening is not logged:\n{}", daemon.log_tail());
    let out = as_user(&["cat", s(&tree_secret)]);
    assert!(!out.status.success(), "the user read the secret after the restart");
}

#[test]
fn the_mount_never_follows_a_symlink_put_into_a_snapshot() {
    let (uid, gid) = unprivileged_user();
    let s = Setup::mounted(|src| {
        let ssh = src.join("home/alice/docs/.ssh");
        mkdir(&ssh);
        write(&ssh.join("id_rsa"), b"alice's own key\n");
        own(&ssh.join("id_rsa"), uid, gid, 0o644);
        for d in [ssh.as_path(), &src.join("home/alice/docs"), &src.join("home/alice")] {
            own(d, uid, gid, 0o755);
        }
        own(&src.join("home"), 0, 0, 0o755);
        own(src, 0, 0, 0o755);
    });
    open_up(&[s.sb.path()]);
    let rootonly = s.sb.path().join("rootonly");
    mkdir(&rootonly.join(".ssh"));
    write(&rootonly.join(".ssh/id_rsa"), b"ROOT ONLY SECRET\n");
    own(&rootonly.join(".ssh/id_rsa"), 0, 0, 0o600);
    own(&rootonly, 0, 0, 0o700);
    let snap = s.daemon.backup(JOB);

    // What a user who owned `docs` in the tree could have done (or the
    // writer of a destination adopted from elsewhere): swap it for a link.
    let docs = snap.tree(&s.src).join("home/alice/docs");
    std::fs::rename(&docs, docs.with_file_name("docs.away")).expect("move docs away");
    std::os::unix::fs::symlink(&rootonly, &docs).expect("plant the symlink");

    let in_mount = s.mountpoint().join(DEST).join(JOB).join(&snap.name).join(s.src.strip_prefix("/").expect("abs"));
    wait_until("the snapshot in the mount", APPEAR, || in_mount.is_dir().then_some(()));
    let key = in_mount.join("home/alice/docs/.ssh/id_rsa");
    let out = as_user(&["cat", crate::support::s(&key)]);
    assert!(!text(&out).contains("ROOT ONLY SECRET"), "the user read root's key through the mount");
    assert!(!out.status.success(), "reading through a planted symlink succeeded: {}", text(&out));
    let as_root = std::fs::read(&key);
    assert!(
        as_root.is_err(),
        "the mount served {:?} through a planted symlink",
        as_root.map(|b| String::from_utf8_lossy(&b).into_owned())
    );
    // Files outside the swapped directory are served as before.
    let other = in_mount.join("home/alice");
    assert!(std::fs::read_dir(&other).is_ok(), "the rest of the snapshot is still browsable");
}

/// The attacker of the deletion race, as the user: waits until the deleter
/// has begun emptying one of alice's directories (it has listed them all by
/// then), then swaps every directory still untouched for a symlink to the
/// victim. Prints how many it swapped.
const SWAPPER: &str = r#"
import os, sys, time
job_dir, alice_rel, victim, n, files = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
print("ready", flush=True)
deadline = time.time() + 60
deleting = None
while deleting is None and time.time() < deadline:
    for e in os.listdir(job_dir):
        if e.startswith(".deleting-"):
            deleting = e
            break
    else:
        time.sleep(0.0002)
swapped = 0
if deleting is not None:
    alice = os.path.join(job_dir, deleting, alice_rel)
    names = ["d%d" % i for i in range(n)]
    started = False
    while not started and time.time() < deadline:
        for name in names:
            try:
                if len(os.listdir(os.path.join(alice, name))) < files:
                    started = True
                    break
            except OSError:
                started = True
                break
    for name in names:
        d = os.path.join(alice, name)
        try:
            if len(os.listdir(d)) < files:
                continue
            os.rename(d, d + ".away")
            os.symlink(victim, d)
            swapped += 1
        except OSError:
            pass
print(swapped, flush=True)
"#;

#[test]
fn a_symlink_swapped_in_during_a_deletion_is_never_followed() {
    const DIRS: usize = 40;
    const FILES: usize = 300;
    let (uid, gid) = unprivileged_user();
    let s = Setup::new(|src| {
        let alice = src.join("home/alice");
        for d in 0..DIRS {
            let dir = alice.join(format!("d{d}"));
            mkdir(&dir);
            for f in 0..FILES {
                write(&dir.join(format!("f{f}")), b"x");
            }
        }
        crate::support::system::chown_tree(&alice, uid, gid);
        own(&src.join("home"), 0, 0, 0o755);
        own(src, 0, 0, 0o755);
    });
    let victim = s.sb.path().join("victim");
    mkdir(&victim.join("sub"));
    for f in ["a", "b", "sub/c"] {
        write(&victim.join(f), b"precious\n");
    }
    for p in [victim.as_path(), &victim.join("sub")] {
        own(p, 0, 0, 0o755);
    }
    open_up(&[s.sb.path()]);
    let snap = s.daemon.backup(JOB);
    // The modes of a destination made before it was private: the user can
    // reach her own directory inside the snapshot.
    open_up(&[&s.dest, &s.job_dir(), &snap.path]);
    let alice_rel = Path::new("tree").join(s.src.strip_prefix("/").expect("abs")).join("home/alice");

    let script = s.sb.path().join("swapper.py");
    write(&script, SWAPPER.as_bytes());
    chmod(&script, 0o644);
    unprivileged_user();
    let mut attacker = Command::new("setpriv")
        .args(["--reuid=hsuser", "--regid=hsuser", "--clear-groups", "/usr/bin/python3", crate::support::s(&script)])
        .args([crate::support::s(&s.job_dir()), crate::support::s(&alice_rel), crate::support::s(&victim)])
        .args([DIRS.to_string(), FILES.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the attacker");
    let mut lines = BufReader::new(attacker.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"), "the attacker did not start");

    s.daemon.cli_ok(&["snapshot", "delete", &snap.id.to_string()]);
    let swapped: usize = lines.next().and_then(Result::ok).and_then(|l| l.trim().parse().ok()).unwrap_or(0);
    let _ = attacker.wait();
    // The deleter runs at nice 19: while the rest of the suite keeps both
    // cores busy it may get little CPU for a while (alone, this takes ~5 s).
    wait_until("the deletion to finish", Duration::from_secs(240), || {
        (!list_names(&s.job_dir()).iter().any(|n| n.starts_with(".deleting-"))).then_some(())
    });
    assert!(swapped > 0, "the attacker swapped no directory in time: the race was not set up");
    for f in ["a", "b", "sub/c"] {
        assert!(victim.join(f).is_file(), "the deletion followed a swapped-in symlink and removed victim/{f}");
    }
}

/// A marker JSON with `id` as its destination id.
fn marker(id: &str) -> String {
    format!(
        r#"{{"kind":"hindsight","format":1,"destination_id":{},"created":"2026-01-01T00:00:00Z","blobs":{{"naming":"blake3","framing":"plain"}}}}"#,
        serde_json::to_string(id).expect("json")
    )
}

#[test]
fn a_tampered_remote_marker_or_manifest_writes_and_deletes_nothing() {
    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let abs = sb.path().join("abs-pwned");
    // Relative to the cache (`<state>/cache/<id>`) and absolute.
    let ids = ["../../rel-pwned".to_string(), crate::support::s(&abs).to_string()];
    for (i, id) in ids.iter().enumerate() {
        let remote = Remote::shared(Kind::Ftp, &format!("hostile-marker-{i}"));
        let root = remote.ftp_file("");
        let snap_dir = root.join("j/2026-01-01T000000Z");
        mkdir(&snap_dir);
        write(&root.join("HINDSIGHT"), marker(id).as_bytes());
        let payload = b"/var/log/x { postrotate\n touch /tmp/pwned\n endscript }\n";
        write(&snap_dir.join("index.sqlite"), payload);
        let manifest = serde_json::json!({
            "format": 1, "job": "j", "name": "2026-01-01T000000Z", "structure": "incremental",
            "sources": ["/x"], "host": "h", "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:01Z",
            "partial": false, "parent": null, "stats": {"entries": 1, "files": 0, "bytes": 0, "files_added": 0,
            "bytes_added": 0, "files_failed": 0}, "index_blake3": blake3::hash(payload).to_hex().to_string(),
        });
        write(&snap_dir.join("snapshot.json"), manifest.to_string().as_bytes());
        let mut args = vec!["destination".to_string(), "add".into(), format!("evil{i}")];
        args.extend(remote.add_args(&[]));
        let out = daemon.cli(&args);
        assert!(!out.success(), "a marker with id {id:?} was adopted: {out}");
        assert!(out.stderr.contains("not a UUID"), "the refusal does not say why: {out}");

        // The standalone mount of the same destination refuses it as well.
        let mnt = sb.dir(&format!("mnt{i}"));
        let _guard = FuseGuard(mnt.clone());
        let ftp = crate::support::services::ftp();
        let url = format!("ftp://{}@{}:{}{}", ftp.user, ftp.host, ftp.port, remote.root);
        let out = Command::new(crate::support::hindsight_bin())
            .args(["mount", "--destination", &url, crate::support::s(&mnt), "--background"])
            .env("HINDSIGHT_PASSWORD", &ftp.password)
            .env("XDG_CACHE_HOME", sb.path().join("xdg/a/b"))
            .output()
            .expect("run hindsight mount");
        assert!(!out.status.success(), "the standalone mount adopted id {id:?}: {}", text(&out));
        assert!(text(&out).contains("not a UUID"), "{}", text(&out));
    }
    std::thread::sleep(Duration::from_millis(1500));
    for p in [sb.path().join("agent/rel-pwned"), sb.path().join("xdg/a/rel-pwned"), abs] {
        assert!(!p.exists(), "{} was written from a marker's id", p.display());
    }
    assert_eq!(daemon.cli_json(&["destination", "list"]), serde_json::json!([]));

    // A valid marker, and a manifest whose name climbs out of the bucket's
    // root: refused and reported, never listed, so never deleted.
    let remote = Remote::shared(Kind::Ftp, "hostile-manifest");
    let root = remote.ftp_file("");
    let snap_dir = root.join("j/2026-01-01T000000Z");
    mkdir(&snap_dir);
    write(&root.join("HINDSIGHT"), marker("6a1f2a3c-0000-4000-8000-00000000beef").as_bytes());
    let victim = root.join("../victim-of-a-manifest");
    write(&victim.join("keep"), b"precious\n");
    let manifest = serde_json::json!({
        "format": 1, "job": "j", "name": "x/../../../victim-of-a-manifest", "structure": "incremental",
        "sources": ["/x"], "host": "h", "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:01Z",
        "partial": false, "parent": null, "stats": {"entries": 1, "files": 0, "bytes": 0, "files_added": 0,
        "bytes_added": 0, "files_failed": 0}, "index_blake3": "", "tags": ["manual"],
    });
    write(&snap_dir.join("snapshot.json"), manifest.to_string().as_bytes());
    let mut args = vec!["destination".to_string(), "add".into(), "evil-manifest".into(), "--writable".into()];
    args.extend(remote.add_args(&[]));
    daemon.cli(&args).assert_success();
    let listed = daemon.cli_json(&["snapshot", "list", "--destination", "evil-manifest"]);
    assert_eq!(listed, serde_json::json!([]), "a remote manifest naming another directory was listed");
    assert!(daemon.log().contains("refused"), "the refusal is not reported:\n{}", daemon.log_tail());
    assert!(victim.join("keep").is_file());
}

#[test]
fn a_manifest_naming_another_directory_is_refused_and_deletes_nothing() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src.join("a"), b"a\n");
    let dest = sb.path().join("dest2");
    {
        let other = Daemon::start(DaemonOpts::in_dir(&sb.path().join("other")));
        other.add_destination("o", &dest, &[]);
        other.add_job(JOB, &[&src], &["o"], &[]);
        other.backup(JOB);
    }
    let victim = sb.path().join("victim2");
    write(&victim.join("keep"), b"precious\n");
    // The review's manifest: its name climbs from `<job>/.deleting-x` to the victim.
    let name = list_names(&dest.join(JOB)).into_iter().find(|n| n.starts_with("20")).expect("a snapshot");
    let manifest_path = dest.join(JOB).join(&name).join("snapshot.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&manifest_path).expect("read")).expect("json");
    m["name"] = Value::from("x/../../../victim2");
    m["tags"] = serde_json::json!(["manual"]);
    write(&manifest_path, m.to_string().as_bytes());
    mkdir(&dest.join(JOB).join(".deleting-x"));

    let daemon = Daemon::start(sb.daemon_opts());
    daemon.add_destination("d2", &dest, &["--writable"]);
    let listed = daemon.cli_json(&["snapshot", "list", "--destination", "d2"]);
    assert_eq!(listed, serde_json::json!([]), "a manifest naming another directory was listed");
    assert!(daemon.log().contains("refused"), "the refusal is not reported:\n{}", daemon.log_tail());
    // Retention and deletions of whatever is listed leave the victim alone.
    daemon.add_job(JOB, &[&src], &["d2"], &[]);
    daemon.backup(JOB);
    for snap in daemon.snapshots() {
        daemon.cli(["snapshot", "delete", &snap.id.to_string()]);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(victim.join("keep").is_file(), "a manifest's name made the agent delete outside the destination");
}

/// Rewrites an index so that `entries` is a view that never ends, and fixes
/// the manifest's blake3 so that only the index's content is wrong.
fn make_index_endless(snapshot: &Path) {
    let index = snapshot.join("index.sqlite");
    let py = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executescript("""
ALTER TABLE entries RENAME TO real_entries;
CREATE VIEW entries AS SELECT real_entries.* FROM real_entries,
  (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT max(x) FROM c);
""")
c.commit()
"#;
    let out = Command::new("/usr/bin/python3").args(["-c", py, crate::support::s(&index)]).output().expect("python3");
    assert!(out.status.success(), "tampering with the index: {}", text(&out));
    let manifest_path = snapshot.join("snapshot.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&manifest_path).expect("read")).expect("json");
    m["index_blake3"] = Value::from(blake3::hash(&std::fs::read(&index).expect("read index")).to_hex().to_string());
    write(&manifest_path, m.to_string().as_bytes());
}

#[test]
fn a_hostile_index_hangs_neither_the_mount_nor_the_agent() {
    let mut s = Setup::mounted(crate::support::fixture::small_tree);
    let good = s.daemon.backup(JOB);
    // Another agent's destination, tampered with before this agent sees it.
    let bad_dest = s.sb.path().join("bad");
    let bad_src = s.sb.dir("bad-src");
    write(&bad_src.join("f"), b"f\n");
    {
        let other = Daemon::start(DaemonOpts::in_dir(&s.sb.path().join("other")));
        other.add_destination("o", &bad_dest, &[]);
        other.add_job("j2", &[&bad_src], &["o"], &[]);
        let snap = other.backup("j2");
        make_index_endless(&snap.path);
    }
    s.daemon.add_destination("bad", &bad_dest, &[]);
    // Every look into the mount is a command with a time limit: on a mount
    // that hangs, the test fails instead of hanging with it (a process
    // waiting on a FUSE request cannot even be killed: it is left behind).
    let out_file = s.sb.path().join("ls.out");
    let ls = |p: &Path| -> (Duration, Option<(bool, String)>) {
        let start = Instant::now();
        let out = std::fs::File::create(&out_file).expect("output file");
        let mut child = Command::new("ls").arg("-a").arg(p).stdout(out).stderr(Stdio::null()).spawn().expect("ls");
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = child.try_wait() {
                let listing = std::fs::read_to_string(&out_file).unwrap_or_default();
                return (start.elapsed(), Some((status.success(), listing)));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        // Reaped whenever the mount lets it go (it waits on a FUSE request).
        std::thread::spawn(move || child.wait());
        (start.elapsed(), None)
    };
    let bad_job = s.mountpoint().join("bad/j2");
    let bad_snap = wait_until("the hostile destination in the mount", APPEAR, || {
        let (_, out) = ls(&bad_job);
        out?.1.lines().find(|n| n.starts_with("20")).map(String::from)
    });
    let (took, _) = ls(&bad_job.join(&bad_snap).join(bad_src.strip_prefix("/").expect("abs")));
    assert!(took < Duration::from_secs(5), "listing the hostile snapshot took {took:?}");
    let good_dir = s.mountpoint().join(DEST).join(JOB).join(&good.name).join(s.src.strip_prefix("/").expect("abs"));
    let (took, out) = ls(&good_dir);
    let listed = out.is_some_and(|(ok, listing)| ok && listing.contains("a.txt"));
    assert!(listed, "another destination does not answer (after {took:?})");
    assert!(took < Duration::from_secs(1), "another destination answered in {took:?}");
    let start = Instant::now();
    let status = s.daemon.stop();
    assert!(start.elapsed() < Duration::from_secs(15), "SIGTERM took {:?}", start.elapsed());
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
}

/// Exchanges each `r<i>` with `a<i>` in the current directory until a stop
/// file appears; prints the number of exchanges.
const EXCHANGER: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
os.chdir(sys.argv[1])
n, stop = int(sys.argv[2]), sys.argv[3]
count = 0
while not os.path.exists(stop):
    for i in range(n):
        if libc.renameat2(AT_FDCWD, b"r%d" % i, AT_FDCWD, b"a%d" % i, RENAME_EXCHANGE) == 0:
            count += 1
print(count, flush=True)
"#;

#[test]
fn files_exchanged_during_backups_never_leak_under_the_users_name() {
    // Few pairs, each exchanged every few tens of microseconds: the window
    // between a file's `lstat` and its `open` is hit several times per backup.
    const PAIRS: usize = 40;
    let (uid, gid) = unprivileged_user();
    let s = Setup::mounted(|src| {
        let dir = src.join("race");
        mkdir(&dir);
        for i in 0..PAIRS {
            let (r, a) = (dir.join(format!("r{i}")), dir.join(format!("a{i}")));
            write(&r, format!("ROOTSECRET-{i:04}").as_bytes());
            own(&r, 0, 0, 0o600);
            write(&a, format!("usercontent{i:04}").as_bytes());
            own(&a, uid, gid, 0o644);
            // Xattrs to read make the walk's step from `lstat` to `open` longer
            // (a user can give her own file as many as she likes).
            for x in 0..8 {
                crate::support::fixture::set_xattr(&a, &format!("user.pad{x}"), &[b'x'; 2000]);
                crate::support::fixture::set_xattr(&r, &format!("user.pad{x}"), &[b'x'; 2000]);
            }
            let t = crate::support::fixture::mtime_ns(&r);
            crate::support::fixture::set_mtime(&a, t);
        }
        own(&dir, uid, gid, 0o755);
        own(src, 0, 0, 0o755);
    });
    open_up(&[s.sb.path()]);
    s.daemon.add_job("arc", &[&s.src], &[DEST], &["--structure", "archived"]);
    let script = s.sb.path().join("exchanger.py");
    write(&script, EXCHANGER.as_bytes());
    chmod(&script, 0o644);
    let stop = s.sb.path().join("stop");
    let attacker = Command::new("setpriv")
        .args(["--reuid=hsuser", "--regid=hsuser", "--clear-groups", "/usr/bin/python3", crate::support::s(&script)])
        .args([crate::support::s(&s.src.join("race")), &PAIRS.to_string(), crate::support::s(&stop)])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the attacker");
    let mut snaps = Vec::new();
    for round in 0..12 {
        for job in [JOB, "arc"].into_iter().filter(|j| *j == JOB || round % 4 == 0) {
            let (_, run) = s.daemon.run_wait(job);
            if let Some(name) = run["destinations"][0]["snapshot"].as_str() {
                snaps.push((job, name.to_string()));
            }
        }
    }
    write(&stop, b"");
    let out = attacker.wait_with_output().expect("attacker");
    let exchanges: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    assert!(exchanges > 1000, "the attacker exchanged only {exchanges} times: the race was not set up");
    assert!(!snaps.is_empty(), "no backup made a snapshot");

    for (job, name) in &snaps {
        let dir =
            s.mountpoint().join(DEST).join(job).join(name).join(s.src.strip_prefix("/").expect("abs")).join("race");
        wait_until("the snapshot in the mount", APPEAR, || dir.is_dir().then_some(()));
        for e in std::fs::read_dir(&dir).expect("read the snapshot") {
            let p = e.expect("entry").path();
            let md = std::fs::symlink_metadata(&p).expect("stat");
            let bytes = std::fs::read(&p).expect("read as root");
            if bytes.starts_with(b"ROOTSECRET") {
                assert!(
                    md.uid() == 0 && md.mode() & 0o077 == 0,
                    "{job}/{name}: {} holds root's secret as uid {} mode {:o}",
                    p.display(),
                    md.uid(),
                    md.mode() & 0o7777
                );
            }
        }
        let grep = as_user(&["grep", "-rl", "ROOTSECRET", crate::support::s(&dir)]);
        assert!(grep.stdout.is_empty(), "{job}/{name}: the user read root's secret: {}", text(&grep));
    }
}

#[test]
fn the_mount_enforces_posix_acls() {
    let (_, gid) = unprivileged_user();
    let s = Setup::mounted(|src| {
        let dir = src.join("acl");
        mkdir(&dir);
        write(&dir.join("secret"), b"group denied by its ACL\n");
        own(&dir.join("secret"), 0, gid, 0o640);
        setfacl(&["-m", "u::rw-,u:root:r--,g::---,m::r--,o::---"], &dir.join("secret"));
        write(&dir.join("shared"), b"group allowed\n");
        own(&dir.join("shared"), 0, gid, 0o640);
        setfacl(&["-m", "u::rw-,g::r--,o::---"], &dir.join("shared"));
        own(&dir, 0, 0, 0o755);
        own(src, 0, 0, 0o755);
    });
    open_up(&[s.sb.path()]);
    let at_source = as_user(&["cat", crate::support::s(&s.src.join("acl/secret"))]);
    assert!(!at_source.status.success(), "the ACL does not deny the group at the source");
    let snap = s.daemon.backup(JOB);
    let dir =
        s.mountpoint().join(DEST).join(JOB).join(&snap.name).join(s.src.strip_prefix("/").expect("abs")).join("acl");
    wait_until("the snapshot in the mount", APPEAR, || dir.is_dir().then_some(()));
    let denied = as_user(&["cat", crate::support::s(&dir.join("secret"))]);
    assert!(!denied.status.success(), "the group read a file its ACL denies it: {}", text(&denied));
    assert!(text(&denied).contains("Permission denied"), "{}", text(&denied));
    let allowed = as_user(&["cat", crate::support::s(&dir.join("shared"))]);
    assert!(allowed.status.success(), "the group cannot read a file its ACL allows: {}", text(&allowed));
    assert_eq!(allowed.stdout, b"group allowed\n");
}

#[test]
fn the_api_drops_a_client_that_never_finishes_its_headers() {
    use std::io::{Read, Write};
    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let mut conn = std::os::unix::net::UnixStream::connect(daemon.socket()).expect("connect");
    conn.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n").expect("half a request");
    conn.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let start = Instant::now();
    let mut buf = Vec::new();
    let _ = conn.read_to_end(&mut buf);
    assert!(start.elapsed() < Duration::from_secs(25), "a half-sent request was kept for {:?}", start.elapsed());
    // The agent still answers everyone else.
    daemon.cli_ok(&["status"]);
}

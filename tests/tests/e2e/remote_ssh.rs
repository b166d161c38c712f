//! SSH destinations against a real OpenSSH server (scripts/services/sshd.sh):
//! a full and an incremental backup are hardlink trees on the server (the
//! same inode for an unchanged file), `cp -a` from the daemon's mount equals
//! the source, a second agent adopting the root lists the same snapshots, a
//! key passphrase never shows in the API nor the log, validation fails
//! clearly for a closed port, a wrong user and an unknown host key, and a
//! server killed in the middle of a backup fails the run cleanly (no
//! snapshot) while the next run completes, linking what the cut run had
//! sent instead of sending it again.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::daemon::{Daemon, DaemonOpts};
use crate::support::services::{self, SshEnv};
use crate::support::system::{FuseGuard, tool};
use crate::support::{Sandbox, assert_same, describe, fixture, s, wait_until};

const DEST: &str = "d1";
const JOB: &str = "j1";

/// A root under the remote user's home that no other test uses.
pub(crate) fn unique_root(what: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("e2e-{what}-{}-{nanos}", std::process::id())
}

/// `-o KEY=VALUE` arguments of an ssh destination on `env` under `root`, then `extra`.
pub(crate) fn ssh_args(env: &SshEnv, root: &str, extra: &[(&str, &str)]) -> Vec<String> {
    let port = env.port.to_string();
    let mut opts: Vec<(&str, &str)> = vec![
        ("host", &env.host),
        ("port", &port),
        ("username", &env.user),
        ("path", root),
        ("retries", "1"),
        ("timeout", "10"),
    ];
    if !extra.iter().any(|(k, _)| *k == "private_key" || *k == "key") {
        opts.push(("private_key", env.key.to_str().expect("utf-8 key path")));
    }
    if !extra.iter().any(|(k, _)| *k == "known_hosts" || *k == "host_key") {
        opts.push(("known_hosts", env.known_hosts.to_str().expect("utf-8 known_hosts path")));
    }
    opts.extend_from_slice(extra);
    opts.iter().flat_map(|(k, v)| ["-o".to_string(), format!("{k}={v}")]).collect()
}

fn add(daemon: &Daemon, name: &str, args: &[String]) -> crate::support::daemon::Output {
    let mut all: Vec<String> = ["destination", "add", name, "--type", "ssh"].iter().map(|a| a.to_string()).collect();
    all.extend_from_slice(args);
    all.push("--json".into());
    daemon.cli(&all)
}

/// The root on the server, seen directly (the tests run as root on the server's machine).
pub(crate) fn on_server(root: &str) -> PathBuf {
    PathBuf::from(std::env::var("SSH_REMOTE_HOME").expect("SSH_REMOTE_HOME")).join(root)
}

/// Runs the job to completion; the name of its snapshot.
fn backup(daemon: &Daemon) -> String {
    let run = daemon.run_job_wait(JOB);
    run["destinations"][0]["snapshot"].as_str().unwrap_or_else(|| panic!("no snapshot: {run:#}")).to_string()
}

/// `<partial>/tree/<src>` on the server: where the first `.partial-*` directory
/// of the job (`job_dir`) receives the source `src`, once there is one.
fn partial_source(job_dir: &Path, src: &Path) -> Option<PathBuf> {
    let partial = std::fs::read_dir(job_dir)
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(".partial-"))?;
    Some(partial.path().join("tree").join(src.strip_prefix("/").ok()?))
}

fn snapshot_list(daemon: &Daemon) -> Vec<String> {
    let v = daemon.cli_json(&["snapshot", "list"]);
    let mut names: Vec<String> =
        v.as_array().into_iter().flatten().filter_map(|s| s["name"].as_str().map(String::from)).collect();
    names.sort();
    names
}

#[test]
fn ssh_backups_are_hardlink_trees_that_mount_restore_and_reindex() {
    let env = services::ssh();
    let sb = Sandbox::new();
    let src = sb.dir("src");
    fixture::small_tree(&src);
    fixture::write(&src.join("same/unchanged.bin"), &fixture::pseudo_random(300 << 10, 7));
    fixture::write(&src.join("edit.txt"), b"v1\n");
    std::fs::hard_link(src.join("a.txt"), src.join("a-link.txt")).expect("hard link in the source");
    fixture::stamp_times(&src);
    let mnt = sb.dir("mnt");
    let mut opts = sb.daemon_opts();
    opts.mountpoint = Some(mnt.clone());
    let _guard = FuseGuard(mnt.clone());
    let daemon = Daemon::start(opts);
    let root = unique_root("ssh");

    let out = add(&daemon, DEST, &ssh_args(&env, &root, &[]));
    assert!(out.success(), "{out}\n{}", daemon.log_tail());
    daemon.add_job(JOB, &[&src], &[DEST], &[]);

    let want1 = describe(&src);
    let first = backup(&daemon);
    fixture::write(&src.join("edit.txt"), b"version two\n");
    fixture::write(&src.join("new/file.txt"), b"added\n");
    // Not stamp_times again: it would give every file a new mtime.
    let want2 = describe(&src);
    let second = backup(&daemon);

    // `restore files` reads the first snapshot's files from the server by range.
    let id = daemon.snapshot_id(&first);
    let into = sb.path().join("agent-restore");
    let out =
        daemon.cli_within(["restore", "files", &id, s(&src), "--to", s(&into), "--wait"], Duration::from_secs(60));
    assert!(out.success(), "restore files from ssh:\n{out}\n{}", daemon.log_tail());
    assert_same(&want1, &describe(&into.join(src.strip_prefix("/").expect("absolute"))), "restore files from ssh");

    // On the server: real trees, the same inode for an unchanged file.
    let tree = |snap: &String| {
        on_server(&root).join(JOB).join(snap).join("tree").join(src.strip_prefix("/").expect("absolute"))
    };
    let (a, b) = (tree(&first).join("same/unchanged.bin"), tree(&second).join("same/unchanged.bin"));
    let (ma, mb) = (std::fs::metadata(&a).expect("first copy"), std::fs::metadata(&b).expect("second copy"));
    assert_eq!(ma.ino(), mb.ino(), "an unchanged file is one inode on the server");
    assert!(mb.nlink() >= 2, "link count {}", mb.nlink());
    assert_ne!(
        std::fs::metadata(tree(&first).join("edit.txt")).expect("edit v1").ino(),
        std::fs::metadata(tree(&second).join("edit.txt")).expect("edit v2").ino()
    );
    assert_eq!(std::fs::read(tree(&second).join("edit.txt")).expect("edit v2"), b"version two\n");
    let link = std::fs::metadata(tree(&second).join("a-link.txt")).expect("a-link");
    assert_eq!(link.ino(), std::fs::metadata(tree(&second).join("a.txt")).expect("a").ino(), "hardlinks kept");
    let partials: Vec<String> = std::fs::read_dir(on_server(&root).join(JOB))
        .expect("job dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with(".partial-"))
        .collect();
    assert!(partials.is_empty(), "{partials:?}");

    // Through the daemon's mount: cp -a equals the source of each snapshot.
    for (i, (snap, want)) in [(&first, &want1), (&second, &want2)].into_iter().enumerate() {
        let from = mnt.join(DEST).join(JOB).join(snap).join(src.strip_prefix("/").expect("absolute"));
        wait_until("the snapshot in the mount", Duration::from_secs(30), || from.is_dir().then_some(()));
        let copy = sb.path().join(format!("cp-{i}"));
        tool("cp", [std::ffi::OsStr::new("-a"), from.as_os_str(), copy.as_os_str()]);
        assert_same(want, &describe(&copy), &format!("cp -a of snapshot {i} from the mount"));
    }

    // destination check lists and reads the trees on the server: a changed byte
    // in a file is found with --read-data only, a removed file without it.
    daemon.cli(["destination", "check", DEST, "--read-data"]).assert_success();
    let victim = tree(&second).join("a-link.txt");
    let mut bytes = std::fs::read(&victim).expect("read a file of the second snapshot on the server");
    bytes[0] ^= 0x20;
    std::fs::write(&victim, &bytes).expect("change it");
    daemon.cli(["destination", "check", DEST]).assert_success();
    let out = daemon.cli(["destination", "check", DEST, "--read-data"]);
    assert_eq!(out.code, 1, "a changed byte is found:\n{out}");
    assert!(out.stdout.contains("a-link.txt"), "the file is named:\n{out}");
    bytes[0] ^= 0x20;
    std::fs::write(&victim, &bytes).expect("restore it");

    // A fresh agent adopting the root lists the same snapshots; reindex agrees.
    let other = Daemon::start(DaemonOpts::in_dir(&sb.path().join("other")));
    let adopted = add(&other, "again", &ssh_args(&env, &root, &[]));
    assert!(adopted.success(), "{adopted}\n{}", other.log_tail());
    assert_eq!(snapshot_list(&other), snapshot_list(&daemon));
    other.cli_ok(&["destination", "reindex", "again"]);
    assert_eq!(snapshot_list(&other), vec![first.clone(), second.clone()]);
}

#[test]
fn ssh_key_passphrase_is_used_and_never_shown() {
    let env = services::ssh();
    let sb = Sandbox::new();
    let key = sb.path().join("key");
    let secret = format!("Pass-{}-phrase", std::process::id());
    tool(
        "ssh-keygen",
        ["-q", "-t", "ed25519", "-N", &secret, "-C", "e2e-passphrase", "-f", key.to_str().expect("utf-8")],
    );
    // The server's authorized_keys sits beside its client key (scripts/services/sshd.sh).
    let authorized = env.key.parent().expect("state dir").join("authorized_keys");
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let mut text = std::fs::read_to_string(&authorized).expect("authorized_keys");
    if !text.contains(public.trim()) {
        text.push_str(&public);
        std::fs::write(&authorized, text).expect("add the key");
    }
    let daemon = Daemon::start(sb.daemon_opts());
    let root = unique_root("ssh-pass");
    let key_path = key.to_str().expect("utf-8").to_string();
    let out = add(&daemon, DEST, &ssh_args(&env, &root, &[("private_key", &key_path), ("passphrase", &secret)]));
    assert!(out.success(), "{out}\n{}", daemon.log_tail());
    let shown = daemon.cli_json(&["destination", "show", DEST]);
    assert_eq!(shown["options"]["passphrase"], "********", "{shown:#}");
    assert!(!shown.to_string().contains(&secret));
    daemon.cli_ok(&["destination", "validate", DEST]);
    assert!(!daemon.log().contains(&secret), "the passphrase is in the daemon's log");

    // Without the passphrase the key cannot be used: a clear refusal, quickly.
    let bad = add(&daemon, "nopass", &ssh_args(&env, &unique_root("ssh-nopass"), &[("private_key", &key_path)]));
    assert!(!bad.success(), "a passphrase-protected key without its passphrase was accepted");
}

#[test]
fn ssh_validation_fails_clearly() {
    let env = services::ssh();
    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let cases: Vec<(Vec<String>, &[&str])> = vec![
        (ssh_args(&env, &unique_root("x"), &[("port", &closed.to_string())]), &["Connection refused"]),
        (ssh_args(&env, &unique_root("x"), &[("username", "nobody-here")]), &["Permission denied"]),
        (
            ssh_args(&env, &unique_root("x"), &[("known_hosts", sb.path().join("empty").to_str().expect("utf-8"))]),
            &["Host key verification failed"],
        ),
    ];
    fixture::write(&sb.path().join("empty"), b"");
    for (args, words) in cases {
        let started = std::time::Instant::now();
        let out = add(&daemon, "bad", &args);
        assert!(!out.success(), "{args:?} was accepted");
        let text = out.to_string();
        for w in words {
            assert!(text.contains(w), "the refusal does not say {w:?}: {text}");
        }
        assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    }
}

/// A private sshd this test may kill (the shared one serves other tests).
struct PrivateSshd {
    state: PathBuf,
    env: SshEnv,
}

impl PrivateSshd {
    fn start(state: &Path, port: u16) -> PrivateSshd {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/services/sshd.sh");
        let shared = services::ssh();
        let out = Command::new("bash")
            .arg(&script)
            .args(["start", state.to_str().expect("utf-8")])
            .env("SSH_PORT", port.to_string())
            .env("SSH_USER", &shared.user)
            .output()
            .expect("run sshd.sh");
        assert!(out.status.success(), "sshd.sh start: {}", String::from_utf8_lossy(&out.stderr));
        let env = SshEnv { port, key: state.join("client_key"), known_hosts: state.join("known_hosts"), ..shared };
        PrivateSshd { state: state.to_path_buf(), env }
    }

    /// Kills the listener and every session it forked (they outlive the listener).
    fn kill(&self) {
        let pid: i32 = std::fs::read_to_string(self.state.join("sshd.pid"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .expect("sshd pid");
        let mut victims = vec![pid];
        let mut i = 0;
        while i < victims.len() {
            victims.extend(children(victims[i]));
            i += 1;
        }
        for v in victims {
            let _ = Command::new("kill").args(["-KILL", &v.to_string()]).status();
        }
    }
}

impl Drop for PrivateSshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Pids whose parent is `pid`.
fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r.to_string()) else { continue };
        let ppid: Option<i32> = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(pid)
            && let Ok(child) = e.file_name().to_string_lossy().parse()
        {
            out.push(child);
        }
    }
    out
}

/// A backup of 16 files of 1 MiB to a private sshd on `port`, cut: the
/// server is killed once two files reached it (at 1 MiB/s, the transfer
/// lasts long enough to be cut). `options` are added to the destination's.
struct CutBackup {
    sb: Sandbox,
    port: u16,
    src: PathBuf,
    daemon: Daemon,
    /// The job's directory on the server.
    job_dir: PathBuf,
    /// The run that was cut.
    id: i64,
}

impl CutBackup {
    fn start(port: u16, seed: u64, options: &[(&str, &str)]) -> CutBackup {
        let sb = Sandbox::new();
        let sshd = PrivateSshd::start(&sb.path().join("sshd"), port);
        let src = sb.dir("src");
        for i in 0..16 {
            fixture::big_file(&src.join(format!("big-{i}.bin")), 1 << 20, seed + i);
        }
        fixture::stamp_times(&src);
        let daemon = Daemon::start(sb.daemon_opts());
        let root = unique_root("ssh-cut");
        let mut opts = vec![("bwlimit", "1024"), ("timeout", "5")];
        opts.extend_from_slice(options);
        let out = add(&daemon, DEST, &ssh_args(&sshd.env, &root, &opts));
        assert!(out.success(), "{out}\n{}", daemon.log_tail());
        daemon.add_job(JOB, &[&src], &[DEST], &[]);
        let id = daemon.start_run(JOB);
        let job_dir = on_server(&root).join(JOB);
        wait_until("the stream under way", Duration::from_secs(60), || {
            (std::fs::read_dir(partial_source(&job_dir, &src)?).ok()?.count() >= 2).then_some(())
        });
        sshd.kill();
        CutBackup { sb, port, src, daemon, job_dir, id }
    }

    /// The server, started again on the same port with the same keys.
    fn restart_server(&self) -> PrivateSshd {
        PrivateSshd::start(&self.sb.path().join("sshd"), self.port)
    }

    /// The source tree inside snapshot `snap` on the server.
    fn tree(&self, snap: &str) -> PathBuf {
        self.job_dir.join(snap).join("tree").join(self.src.strip_prefix("/").expect("absolute"))
    }

    /// Asserts that every source file is in `tree`, byte for byte.
    fn assert_all_sent(&self, tree: &Path) {
        for i in 0..16 {
            let name = format!("big-{i}.bin");
            let (want, got) =
                (std::fs::read(self.src.join(&name)).expect("source"), std::fs::read(tree.join(&name)).expect("sent"));
            assert!(want == got, "{name} differs on the server");
        }
    }
}

#[test]
fn ssh_server_killed_mid_backup_fails_cleanly_and_the_next_run_completes() {
    let cut = CutBackup::start(2300 + (std::process::id() % 500) as u16, 0, &[]);
    let (daemon, src, job_dir) = (&cut.daemon, &cut.src, &cut.job_dir);
    let run = daemon.wait_run_final(cut.id);
    assert_eq!(run["state"], "failed", "{run:#}");
    let text: Value = run.clone();
    assert!(text.to_string().contains("sending the snapshot"), "{run:#}\n{}", daemon.log_tail());
    assert!(snapshot_list(daemon).is_empty(), "a snapshot appeared");

    // Files the cut run left complete on the server (full size, mtime restored).
    let sent_tree = partial_source(job_dir, src).expect("the interrupted run's partial tree stays");
    let complete: Vec<(String, u64)> = std::fs::read_dir(&sent_tree)
        .expect("partial tree")
        .flatten()
        .filter_map(|e| {
            let md = e.metadata().ok()?;
            let want = std::fs::metadata(src.join(e.file_name())).ok()?;
            (md.len() == want.len() && md.mtime() == want.mtime() && md.mtime_nsec() == want.mtime_nsec())
                .then(|| (e.file_name().to_string_lossy().into_owned(), md.ino()))
        })
        .collect();
    assert!(!complete.is_empty(), "no file was complete when the server was killed");

    let sshd = cut.restart_server();
    let run = daemon.run_job_wait(JOB);
    assert_eq!(run["state"], "completed", "{run:#}");
    let snaps = snapshot_list(daemon);
    assert_eq!(snaps.len(), 1);
    // Not sent again: the new snapshot links what the cut run had sent.
    let tree = cut.tree(&snaps[0]);
    for (name, ino) in &complete {
        let md = std::fs::metadata(tree.join(name)).expect("file in the snapshot");
        assert_eq!(md.ino(), *ino, "{name} was uploaded again");
    }
    assert!(partial_source(job_dir, src).is_none(), "the leftover is removed after the commit");
    cut.assert_all_sent(&tree);
    drop(sshd);
}

#[test]
fn an_ssh_server_restarted_mid_backup_is_tried_again_and_the_run_completes() {
    // Not the port of the killed-server test: both run in this process. No
    // retries by the ssh client itself: the lost connection reaches the run at once.
    let cut = CutBackup::start(2850 + (std::process::id() % 100) as u16, 100, &[("retries", "0")]);
    std::thread::sleep(Duration::from_secs(3));
    let sshd = cut.restart_server();
    let run = cut.daemon.wait_run_final(cut.id);
    assert_eq!(
        run["state"],
        "completed",
        "a server back within seconds failed the run: {run:#}\n{}",
        cut.daemon.log_tail()
    );
    let said = run["destinations"][0]["message"].as_str().unwrap_or_default();
    assert!(said.contains("second attempt after a temporary failure"), "the run was not tried again: {run:#}");
    let snaps = snapshot_list(&cut.daemon);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    cut.assert_all_sent(&cut.tree(&snaps[0]));
    drop(sshd);
}

#[test]
fn compressed_snapshots_on_ssh_extract_mount_and_check() {
    let env = services::ssh();
    let sb = Sandbox::new();
    let src = sb.dir("src");
    fixture::every_kind(&src);
    fixture::big_file(&src.join("big.bin"), 3 << 20, 5);
    fixture::stamp_times(&src);
    let want = describe(&src);
    let mnt = sb.dir("mnt");
    let mut opts = sb.daemon_opts();
    opts.mountpoint = Some(mnt.clone());
    let _guard = FuseGuard(mnt.clone());
    let daemon = Daemon::start(opts);
    let root = unique_root("ssh-tgz");
    add(&daemon, DEST, &ssh_args(&env, &root, &[])).assert_success();
    daemon.add_job(JOB, &[&src], &[DEST], &["--structure", "compressed"]);
    let snap = backup(&daemon);

    let tgz = on_server(&root).join(JOB).join(&snap).join("data.tar.gz");
    let out = sb.dir("extracted");
    tool(
        "tar",
        [
            std::ffi::OsStr::new("-xpzf"),
            tgz.as_os_str(),
            std::ffi::OsStr::new("--xattrs"),
            std::ffi::OsStr::new("--xattrs-include=*"),
            std::ffi::OsStr::new("--numeric-owner"),
            std::ffi::OsStr::new("-C"),
            out.as_os_str(),
        ],
    );
    assert_same(
        &want,
        &describe(&out.join(src.strip_prefix("/").expect("absolute"))),
        "GNU tar of the ssh data.tar.gz",
    );

    let from = mnt.join(DEST).join(JOB).join(&snap).join(src.strip_prefix("/").expect("absolute"));
    wait_until("the snapshot in the mount", Duration::from_secs(30), || from.is_dir().then_some(()));
    let copy = sb.path().join("cp");
    tool("cp", [std::ffi::OsStr::new("-a"), from.as_os_str(), copy.as_os_str()]);
    assert_same(&want, &describe(&copy), "cp -a of the compressed ssh snapshot from the mount");
    daemon.cli(["destination", "check", DEST, "--read-data"]).assert_success();
}

#[test]
fn cancelling_an_ssh_backup_stops_a_slow_stream_at_once() {
    let env = services::ssh();
    let sb = Sandbox::new();
    let src = sb.dir("src");
    // 8 MiB at 64 KiB/s: two minutes of stream, unless the cancel stops it.
    fixture::big_file(&src.join("big.bin"), 8 << 20, 3);
    let daemon = Daemon::start(sb.daemon_opts());
    let root = unique_root("ssh-cancel");
    add(&daemon, DEST, &ssh_args(&env, &root, &[("bwlimit", "64")])).assert_success();
    daemon.add_job(JOB, &[&src], &[DEST], &[]);

    let id = daemon.start_run(JOB);
    let job_dir = on_server(&root).join(JOB);
    wait_until("the stream under way", Duration::from_secs(60), || {
        (std::fs::metadata(partial_source(&job_dir, &src)?.join("big.bin")).ok()?.len() > 0).then_some(())
    });
    let asked = std::time::Instant::now();
    daemon.cli_json(&["run", "cancel", &id.to_string()]);
    let run = daemon.wait_run_final(id);
    assert_eq!(run["state"], "cancelled", "{run:#}");
    assert!(asked.elapsed() < Duration::from_secs(15), "the cancel took {:?}", asked.elapsed());
    assert!(snapshot_list(&daemon).is_empty(), "a snapshot appeared");
}

#[test]
fn files_under_an_unsearchable_directory_are_sent_not_linked() {
    use std::os::unix::fs::PermissionsExt;
    let env = services::ssh();
    let sb = Sandbox::new();
    let src = sb.dir("src");
    fixture::write(&src.join("open.txt"), b"linked\n");
    fixture::write(&src.join("locked/inside.txt"), b"sent again\n");
    // The server's login (not root) could not search this directory in the older tree.
    std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let daemon = Daemon::start(sb.daemon_opts());
    let root = unique_root("ssh-locked");
    add(&daemon, DEST, &ssh_args(&env, &root, &[])).assert_success();
    daemon.add_job(JOB, &[&src], &[DEST], &[]);

    let mut snaps = Vec::new();
    for _ in 0..2 {
        let run = daemon.run_job_wait(JOB);
        assert_eq!(run["state"], "completed", "{run:#}\n{}", daemon.log_tail());
        snaps.push(run["destinations"][0]["snapshot"].as_str().expect("snapshot").to_string());
    }
    let tree = |s: &str| on_server(&root).join(JOB).join(s).join("tree").join(src.strip_prefix("/").expect("abs"));
    let (a, b) = (tree(&snaps[0]), tree(&snaps[1]));
    let ino = |p: PathBuf| std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).ino();
    assert_eq!(ino(a.join("open.txt")), ino(b.join("open.txt")), "an unchanged file is linked");
    assert_ne!(ino(a.join("locked/inside.txt")), ino(b.join("locked/inside.txt")), "sent, not linked");
    assert_eq!(std::fs::read(b.join("locked/inside.txt")).expect("read"), b"sent again\n");
    let mode = std::fs::metadata(b.join("locked")).expect("locked dir").permissions().mode();
    assert_eq!(mode & 0o7777, 0o600, "the directory keeps its mode on the server");
}

#[test]
fn an_inline_key_is_on_disk_only_while_connecting_and_server_directories_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = services::ssh();
    let sb = Sandbox::new();
    let src = sb.dir("src");
    fixture::small_tree(&src);
    let key_text = std::fs::read_to_string(&env.key).expect("the client key");
    let marker = key_text.lines().nth(1).expect("a key body line").to_string();
    // A temporary directory for this daemon alone, its ssh files go there
    // (short: control socket paths must fit in 108 bytes).
    let tmp_dir = tempfile::Builder::new().prefix("hse2e").tempdir_in("/tmp").expect("a temporary directory");
    let tmp = tmp_dir.path().to_path_buf();
    let mut opts = sb.daemon_opts();
    opts.env.push(("TMPDIR".into(), tmp.display().to_string()));
    // What another user could pre-create under the old, predictable name.
    let squatted = tmp.join("hindsight-ssh-0");
    std::fs::create_dir_all(&squatted).expect("mkdir");
    std::os::unix::fs::chown(&squatted, Some(65534), Some(65534)).expect("chown");
    let daemon = Daemon::start(opts);
    let root = unique_root("ssh-inline-key");
    let key_file = sb.path().join("key.txt");
    fixture::write(&key_file, key_text.as_bytes());
    let mut args = ssh_args(&env, &root, &[("key", "-")]);
    // The key goes through a file option, as the README says, never the command line.
    let at = args.iter().position(|a| a == "key=-").expect("the key option");
    args.remove(at);
    args.remove(at - 1);
    args.extend(["--option-file".to_string(), format!("key={}", key_file.display())]);
    let out = add(&daemon, DEST, &args);
    assert!(out.success(), "{out}\n{}", daemon.log_tail());
    daemon.add_job(JOB, &[&src], &[DEST], &[]);
    let first = backup(&daemon);
    fixture::write(&src.join("a.txt"), b"changed\n");
    backup(&daemon);

    let dirs: Vec<PathBuf> = std::fs::read_dir(&tmp)
        .expect("read tmp")
        .map(|e| e.expect("entry").path())
        .filter(|p| p != &squatted && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("hindsight-ssh-")))
        .collect();
    assert_eq!(dirs.len(), 1, "the agent's ssh directory: {dirs:?}");
    let meta = std::fs::symlink_metadata(&dirs[0]).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o700, "{}", dirs[0].display());
    for e in std::fs::read_dir(&dirs[0]).expect("read the ssh directory") {
        let p = e.expect("entry").path();
        if p.is_file() {
            let bytes = std::fs::read(&p).expect("read");
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&marker),
                "{} holds the private key after use",
                p.display()
            );
        }
    }
    // On the server: the directories the agent made are the login user's alone.
    let server_root = on_server(&root);
    for p in [server_root.clone(), server_root.join(JOB), server_root.join(JOB).join(&first)] {
        let m = std::fs::metadata(&p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
        assert_eq!(m.permissions().mode() & 0o077, 0, "{} is open to others on the server", p.display());
    }
}

/// `VmHWM` (peak resident memory) of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

#[test]
fn ssh_check_read_data_streams_a_2_gib_file_in_bounded_memory() {
    const SIZE: u64 = 2 << 30;
    let env = services::ssh();
    let sb = Sandbox::new();
    let src = sb.dir("src");
    // Data, not holes: a file of distinct 1 MiB blocks.
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(src.join("big.bin")).expect("create"));
        let block = fixture::pseudo_random(1 << 20, 11);
        for i in 0..(SIZE >> 20) {
            f.write_all(&i.to_le_bytes()).expect("write");
            f.write_all(&block[8..]).expect("write");
        }
        f.flush().expect("flush");
    }
    let daemon = Daemon::start(sb.daemon_opts());
    let root = unique_root("big");
    // 2 GiB on the server's disk: removed whatever the outcome.
    let _server_side = RemoveOnDrop(on_server(&root));
    let out = add(&daemon, DEST, &ssh_args(&env, &root, &[("timeout", "30")]));
    assert!(out.success(), "{out}\n{}", daemon.log_tail());
    daemon.add_job(JOB, &[&src], &[DEST], &[]);
    // Sending 2 GiB through ssh takes a while on a loaded 2-core machine.
    let run = daemon.cli_within(["job", "run", JOB, "--wait", "--json"], Duration::from_secs(900));
    assert!(run.success(), "the backup of a 2 GiB file:\n{run}\n{}", daemon.log_tail());
    std::fs::remove_file(src.join("big.bin")).expect("free the source's space");

    // The peak from the backup is forgotten: only the check's counts.
    let pid = daemon.pid();
    std::fs::write(format!("/proc/{pid}/clear_refs"), b"5").expect("reset the peak RSS");
    let check = daemon.cli_within(["destination", "check", DEST, "--read-data", "--json"], Duration::from_secs(600));
    assert!(check.success(), "check --read-data of a 2 GiB file:\n{check}\n{}", daemon.log_tail());
    let peak = peak_rss_kib(pid);
    eprintln!("check --read-data of a 2 GiB file over ssh: peak RSS {} MiB", peak >> 10);
    assert!(peak < 512 << 10, "the daemon's peak memory during the check was {} MiB", peak >> 10);
    let report: Value = serde_json::from_str(&check.stdout).expect("check JSON");
    assert_eq!(report["ok"], true, "{report:#}");
    let read: u64 = report["snapshots"].as_array().into_iter().flatten().filter_map(|s| s["bytes_read"].as_u64()).sum();
    assert!(read >= SIZE, "the check read {read} bytes of a {SIZE}-byte file: {report:#}");
}

/// Removes a directory when dropped, test failure or not.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn deleting_an_ssh_snapshot_removes_its_tree_and_prunes_nothing() {
    let env = services::ssh();
    let sb = Sandbox::new();
    let src = sb.dir("src");
    fixture::small_tree(&src);
    let daemon = Daemon::start(sb.daemon_opts());
    let root = unique_root("delete");
    let out = add(&daemon, DEST, &ssh_args(&env, &root, &[]));
    assert!(out.success(), "{out}\n{}", daemon.log_tail());
    daemon.add_job(JOB, &[&src], &[DEST], &[]);
    let first = backup(&daemon);
    fixture::write(&src.join("a.txt"), b"second\n");
    let second = backup(&daemon);
    let listed = daemon.cli_json(&["snapshot", "list", "--job", JOB]);
    let id = listed
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == first.as_str()))
        .map(|s| s["id"].to_string())
        .unwrap_or_else(|| panic!("{first} is not listed: {listed:#}"));
    daemon.cli_ok(&["snapshot", "delete", &id]);
    let job_dir = on_server(&root).join(JOB);
    assert!(!job_dir.join(&first).exists(), "the deleted snapshot's tree is still on the server");
    assert!(job_dir.join(&second).join("snapshot.json").is_file(), "the other snapshot was touched");
    assert_eq!(snapshot_list(&daemon), vec![second]);
    // A prune of an ssh destination would read every index for bodies it has none of.
    std::thread::sleep(Duration::from_secs(1));
    let log = daemon.log();
    assert!(!log.contains("prune"), "deleting an ssh snapshot started a prune:\n{log}");
}

#[test]
fn threads_is_no_option_of_ssh_destinations() {
    let env = services::ssh();
    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let out = add(&daemon, DEST, &ssh_args(&env, &unique_root("threads"), &[("threads", "4")]));
    assert!(!out.success(), "threads was taken for an ssh destination:\n{out}");
    assert!(out.stderr.contains("no option threads"), "unclear refusal:\n{out}");
    let types = daemon.cli_json(&["destination", "types"]);
    let ssh = types
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "ssh"))
        .unwrap_or_else(|| panic!("no ssh type: {types:#}"));
    let names: Vec<&str> = ssh["options"].as_array().into_iter().flatten().filter_map(|o| o["name"].as_str()).collect();
    assert!(names.contains(&"retries") && !names.contains(&"threads"), "ssh options: {names:?}");
    let s3 = types.as_array().and_then(|a| a.iter().find(|t| t["name"] == "s3")).expect("s3 type");
    assert!(s3["options"].as_array().into_iter().flatten().any(|o| o["name"] == "threads"), "{s3:#}");
}

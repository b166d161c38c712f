//! The fault harness: the agent killed at random moments, destinations and
//! the state directory full, a destination turning read-only under a run,
//! an S3 server that stalls or dies for a few seconds. After each fault: no half snapshot is visible,
//! every earlier snapshot is byte-identical (its index's blake3 matches its
//! manifest and a digest of its whole directory is unchanged), and the next
//! run completes.
//!
//! `HINDSIGHT_FAULT_KILLS` sets the number of kills (20 by default),
//! `HINDSIGHT_FAULT_SEED` the seed of their moments (printed, so that a
//! failing sequence can be replayed).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::daemon::{DaemonOpts, str_field};
use crate::support::remote::{Kind, Remote};
use crate::support::system::Mount;
use crate::support::{DEST, Daemon, JOB, Sandbox, Setup, fixture, list_names, wait_until};

/// A digest of everything a snapshot directory holds: names, kinds, modes,
/// owners, sizes, mtimes, link targets and contents (not link counts, which
/// later snapshots change by linking to its files).
fn digest(dir: &Path) -> String {
    fn walk(h: &mut blake3::Hasher, root: &Path, rel: &Path) {
        let path = root.join(rel);
        let md = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update(&[0]);
        h.update(format!("{:o} {} {} {} {}", md.mode(), md.uid(), md.gid(), md.size(), md.mtime_nsec()).as_bytes());
        h.update(&md.mtime().to_le_bytes());
        if md.file_type().is_symlink() {
            h.update(std::fs::read_link(&path).expect("readlink").as_os_str().as_encoded_bytes());
        } else if md.is_file() {
            let mut f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            h.update_reader(&mut f).expect("read");
        } else if md.is_dir() {
            let mut names: Vec<_> =
                std::fs::read_dir(&path).expect("read_dir").map(|e| e.expect("entry").file_name()).collect();
            names.sort();
            for n in names {
                walk(h, root, &rel.join(n));
            }
        }
    }
    let mut h = blake3::Hasher::new();
    walk(&mut h, dir, Path::new(""));
    h.finalize().to_hex().to_string()
}

/// The complete snapshots in `job_dir` with their digests, after checking
/// that nothing else is visible there (only `.lock`, `.partial-*` and
/// `.deleting-*` besides) and that each index matches its manifest.
fn complete_snapshots(job_dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in list_names(job_dir) {
        if name == ".lock" || name.starts_with(".partial-") || name.starts_with(".deleting-") {
            continue;
        }
        let dir = job_dir.join(&name);
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(dir.join("snapshot.json"))
                .unwrap_or_else(|e| panic!("{} is visible without a manifest: {e}", dir.display())),
        )
        .unwrap_or_else(|e| panic!("{}: a half-written manifest: {e}", dir.display()));
        let index = std::fs::read(dir.join("index.sqlite")).expect("index");
        assert_eq!(
            blake3::hash(&index).to_hex().as_str(),
            str_field(&manifest, "index_blake3"),
            "{}: the index differs from its manifest",
            dir.display()
        );
        out.insert(name, digest(&dir));
    }
    out
}

/// A small pseudo-random generator (xorshift), seeded for replay.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Enough data that a backup takes a moment: many small files and a few larger ones.
fn medium_tree(src: &Path) {
    for i in 0..200u64 {
        fixture::write(
            &src.join(format!("d{}/f{i:03}.txt", i % 8)),
            &fixture::pseudo_random(2000 + (i as usize * 131), i),
        );
    }
    for i in 0..6u64 {
        fixture::write(
            &src.join(format!("big/b{i}.bin")),
            &fixture::pseudo_random((1 << 20) + i as usize * 7777, 900 + i),
        );
    }
}

/// Changes a few files, so that every run has something to copy.
fn touch_some(src: &Path, rng: &mut Rng) {
    for _ in 0..5 {
        let i = rng.below(200);
        fixture::write(&src.join(format!("d{}/f{i:03}.txt", i % 8)), &fixture::pseudo_random(3000, rng.below(1 << 30)));
    }
    let b = rng.below(6);
    fixture::write(&src.join(format!("big/b{b}.bin")), &fixture::pseudo_random(1 << 20, rng.below(1 << 30)));
}

fn listed(d: &Daemon, job: &str) -> Vec<Value> {
    d.cli_json(&["snapshot", "list", "--job", job]).as_array().cloned().unwrap_or_default()
}

#[test]
fn kill_9_at_random_moments_never_damages_history() {
    let kills: usize = std::env::var("HINDSIGHT_FAULT_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("HINDSIGHT_FAULT_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    });
    eprintln!("fault harness: {kills} kills, HINDSIGHT_FAULT_SEED={seed}");
    let mut rng = Rng(seed);
    let mut s = Setup::new(medium_tree);
    // A compressed job on the same destination, and an incremental one on S3
    // (whose deletions prune).
    s.daemon.add_job("jz", &[&s.src], &[DEST], &["--structure", "compressed"]);
    let remote = Remote::shared(Kind::S3, "faults");
    let mut args = vec!["destination".to_string(), "add".into(), "r".into()];
    args.extend(remote.add_args(&[]));
    s.daemon.cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    s.daemon.add_job("jr", &[&s.src], &["r"], &[]);
    for job in [JOB, "jz", "jr"] {
        s.daemon.run_job_wait(job);
    }
    // Kill moments spread over how long each operation takes here.
    let timed = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        (t.elapsed().as_millis() as u64).max(20)
    };
    let mut spans = BTreeMap::new();
    for (what, job) in [("backup", JOB), ("compressed backup", "jz")] {
        touch_some(&s.src, &mut rng);
        spans.insert(what, timed(&mut || drop(s.daemon.run_job_wait(job))));
    }
    spans.insert("check", timed(&mut || drop(s.daemon.cli_ok(&["destination", "check", DEST, "--read-data"]))));
    spans.insert("deletion", 100);
    spans.insert("prune", 400);
    let mut interrupted = 0;
    let started = Instant::now();
    let mut covered: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..kills {
        touch_some(&s.src, &mut rng);
        let before: BTreeMap<&str, BTreeMap<String, String>> =
            [JOB, "jz"].into_iter().map(|j| (j, complete_snapshots(&s.dest.join(j)))).collect();
        // The operation to interrupt, and how long to let it go (ms).
        let (what, job) = match i % 5 {
            0 => ("backup", JOB),
            1 => ("compressed backup", "jz"),
            2 => ("deletion", JOB),
            3 => ("check", JOB),
            _ => ("prune", "jr"),
        };
        let delay = rng.below(spans[what]);
        *covered.entry(what).or_default() += 1;
        let mut deleted = None;
        let mut checker = None;
        let mut run_id = None;
        match what {
            "backup" | "compressed backup" => {
                run_id = Some(s.daemon.start_run(job));
            }
            "deletion" | "prune" => {
                let snaps = listed(&s.daemon, job);
                if snaps.len() >= 2 {
                    let oldest = snaps.last().expect("a snapshot");
                    deleted = Some(str_field(oldest, "name").to_string());
                    s.daemon.cli_ok(&["snapshot", "delete", &oldest["id"].to_string()]);
                }
            }
            _ => {
                let socket = s.daemon.socket().to_path_buf();
                checker = Some(std::thread::spawn(move || {
                    std::process::Command::new(crate::support::hindsight_bin())
                        .arg("--socket")
                        .arg(&socket)
                        .args(["destination", "check", DEST, "--read-data"])
                        .env_remove("HINDSIGHT_SOCKET")
                        .output()
                }));
            }
        }
        std::thread::sleep(Duration::from_millis(delay));
        s.daemon.kill9();
        if let Some(c) = checker {
            let _ = c.join();
        }
        s.daemon.restart();
        if let Some(id) = run_id
            && s.daemon.run_show(id)["state"] != "completed"
        {
            interrupted += 1;
        }

        // Nothing half-made is visible, and what existed is what it was.
        for (job_name, earlier) in &before {
            let now = complete_snapshots(&s.dest.join(job_name));
            for (name, d) in earlier {
                match now.get(name) {
                    Some(after) => assert_eq!(
                        after, d,
                        "kill {i} ({what} after {delay} ms, seed {seed}): {job_name}/{name} changed"
                    ),
                    None => assert!(
                        what == "deletion" && *job_name == job && deleted.as_deref() == Some(name.as_str()),
                        "kill {i} ({what} after {delay} ms, seed {seed}): {job_name}/{name} disappeared"
                    ),
                }
            }
            let mut in_catalog: Vec<String> =
                listed(&s.daemon, job_name).iter().map(|v| str_field(v, "name").to_string()).collect();
            in_catalog.sort();
            assert_eq!(
                in_catalog,
                now.keys().cloned().collect::<Vec<_>>(),
                "kill {i} ({what}, seed {seed}): the catalog and the destination disagree on {job_name}"
            );
        }
        // And the next run completes.
        let run = s.daemon.run_job_wait(if what == "prune" { "jr" } else { job });
        assert_eq!(run["state"], "completed");
    }
    for dest in [DEST, "r"] {
        let check = s.daemon.cli(["destination", "check", dest, "--read-data"]);
        assert!(check.success(), "after {kills} kills (seed {seed}), {dest} does not check clean:\n{check}");
    }
    eprintln!(
        "fault harness: {kills} kills ({covered:?}; {interrupted} backups cut before their end; spans {spans:?} ms) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A daemon started with `opts`, a small source, a destination at `dest` and
/// [`JOB`] backing the source up to it, run once: (daemon, source, the
/// snapshots made).
fn one_snapshot_on(
    sb: &Sandbox,
    opts: DaemonOpts,
    dest: &Path,
) -> (Daemon, std::path::PathBuf, BTreeMap<String, String>) {
    let src = sb.dir("src");
    fixture::small_tree(&src);
    let daemon = Daemon::start(opts);
    daemon.add_destination(DEST, dest, &[]);
    daemon.add_job(JOB, &[&src], &[DEST], &[]);
    daemon.run_job_wait(JOB);
    let earlier = complete_snapshots(&dest.join(JOB));
    (daemon, src, earlier)
}

#[test]
fn a_full_destination_fails_the_run_cleanly_and_the_next_one_completes() {
    let sb = Sandbox::new();
    let disk = Mount::tmpfs(&sb.path().join("disk"), "size=16m");
    let dest = disk.path().join("dest");
    let (daemon, src, earlier) = one_snapshot_on(&sb, sb.daemon_opts(), &dest);

    // More data than the disk holds.
    fixture::big_file(&src.join("huge.bin"), 40 << 20, 3);
    let (code, run) = daemon.run_wait(JOB);
    assert_eq!((code, run["state"].as_str()), (1, Some("failed")), "{run:#}");
    let message = run["message"].as_str().unwrap_or_default().to_string() + &run["destinations"].to_string();
    assert!(message.contains("No space left on device"), "the failure does not say the disk is full: {run:#}");
    assert_eq!(complete_snapshots(&dest.join(JOB)), earlier, "a failed run changed the earlier snapshot");
    assert_eq!(listed(&daemon, JOB).len(), 1);

    // Space is freed: the next run completes.
    std::fs::remove_file(src.join("huge.bin")).expect("remove the big file");
    daemon.run_job_wait(JOB);
    let now = complete_snapshots(&dest.join(JOB));
    assert_eq!(now.len(), 2, "{now:?}");
    for (name, d) in &earlier {
        assert_eq!(now.get(name), Some(d), "{name} changed");
    }
    let partials: Vec<String> =
        list_names(&dest.join(JOB)).into_iter().filter(|n| n.starts_with(".partial-")).collect();
    assert!(partials.is_empty(), "the completed run left {partials:?}");
}

#[test]
fn a_full_state_directory_fails_cleanly_and_the_agent_recovers() {
    let sb = Sandbox::new();
    let state_disk = Mount::tmpfs(&sb.path().join("state-disk"), "size=8m");
    let mut opts = sb.daemon_opts();
    opts.state_dir = state_disk.path().join("state");
    let dest = sb.path().join("dest");
    let (daemon, _src, earlier) = one_snapshot_on(&sb, opts, &dest);

    // Fill the state directory's filesystem to the last byte.
    let filler = state_disk.path().join("filler");
    {
        let mut f = std::fs::File::create(&filler).expect("create the filler");
        let block = vec![0xa5u8; 64 << 10];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&block[..512]);
    }
    let out = daemon.cli_within(["job", "run", JOB, "--wait", "--json"], Duration::from_secs(60));
    assert!(!out.success(), "a run was recorded on a full state directory:\n{out}");
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("full") || said.contains("No space left"),
        "the failure does not say the state directory is full:\n{out}"
    );
    assert_eq!(complete_snapshots(&dest.join(JOB)), earlier);
    assert!(daemon.cli(["status"]).success(), "the agent stopped answering:\n{}", daemon.log_tail());

    std::fs::remove_file(&filler).expect("free the state directory");
    daemon.run_job_wait(JOB);
    let now = complete_snapshots(&dest.join(JOB));
    assert_eq!(now.len(), 2, "{now:?}");
    for (name, d) in &earlier {
        assert_eq!(now.get(name), Some(d), "{name} changed");
    }
}

#[test]
fn a_destination_turning_read_only_mid_run_fails_it_and_keeps_history() {
    let sb = Sandbox::new();
    // A disk (ext4 on a loop device) that fails as disks do: read-only at once.
    let disk = Mount::ext4(&sb.path().join("disk"), 128);
    let dest = disk.path().join("dest");
    let (daemon, src, earlier) = one_snapshot_on(&sb, sb.daemon_opts(), &dest);

    // 90 MiB to copy on the 128 MiB disk: time enough, even on a loaded
    // machine, to turn the disk read-only while the run copies (40 MiB once
    // completed before the test could).
    for i in 0..90u64 {
        fixture::write(&src.join(format!("many/m{i:02}.bin")), &fixture::pseudo_random(1 << 20, 50 + i));
    }
    let id = daemon.start_run(JOB);
    daemon.wait_mid_copy(id, &dest.join(JOB));
    disk.fail_read_only();
    let ended = daemon.wait_run_final(id);
    assert_eq!(ended["state"], "failed", "{ended:#}");
    assert!(ended.to_string().contains("Read-only file system"), "the failure does not say why: {ended:#}");
    assert_eq!(complete_snapshots(&dest.join(JOB)), earlier, "a half snapshot is visible on the failed disk");

    disk.repair();
    assert_eq!(complete_snapshots(&dest.join(JOB)), earlier, "the earlier snapshot changed");
    let run = daemon.run_job_wait(JOB);
    assert_eq!(run["state"], "completed");
    assert_eq!(complete_snapshots(&dest.join(JOB)).len(), 2);
}

/// A TCP proxy to `target` for server faults. It can stall (from then on it
/// accepts connections and reads requests but never answers, and stops
/// forwarding on the connections it had: a server that hangs, not one that
/// dies), or stop (its port refuses connections and the connections it had
/// are reset: a server process that died) and start again on the same port.
/// A `slow` proxy forwards at most about 12 MB/s, so that a run's uploads
/// last long enough to be cut.
struct FaultyProxy {
    port: u16,
    target: String,
    slow: bool,
    stalled: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
    accepting: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl FaultyProxy {
    fn start(target: String, slow: bool) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let mut p = FaultyProxy {
            port,
            target,
            slow,
            stalled: Arc::new(AtomicBool::new(false)),
            live: Arc::new(Mutex::new(Vec::new())),
            accepting: None,
        };
        p.accept(listener);
        p
    }

    fn accept(&mut self, listener: TcpListener) {
        let running = Arc::new(AtomicBool::new(true));
        let (run, st, live, target, slow) =
            (running.clone(), self.stalled.clone(), self.live.clone(), self.target.clone(), self.slow);
        let handle = std::thread::spawn(move || {
            for client in listener.incoming() {
                if !run.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let (st, target, live) = (st.clone(), target.clone(), live.clone());
                std::thread::spawn(move || {
                    if st.load(Ordering::Relaxed) {
                        // Hold the connection, read what comes, say nothing.
                        let mut c = client;
                        let mut buf = [0u8; 65536];
                        while c.read(&mut buf).is_ok_and(|n| n > 0) {}
                        return;
                    }
                    let Ok(server) = TcpStream::connect(&target) else { return };
                    if let (Ok(c), Ok(s), Ok(mut l)) = (client.try_clone(), server.try_clone(), live.lock()) {
                        l.extend([c, s]);
                    }
                    let pipe = |mut from: TcpStream, mut to: TcpStream, st: Arc<AtomicBool>| {
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 65536];
                            loop {
                                let n = match from.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => n,
                                };
                                while st.load(Ordering::Relaxed) {
                                    std::thread::sleep(Duration::from_millis(100));
                                }
                                if slow {
                                    std::thread::sleep(Duration::from_millis(5));
                                }
                                if to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            let _ = to.shutdown(std::net::Shutdown::Write);
                        })
                    };
                    let a = pipe(client.try_clone().expect("clone"), server.try_clone().expect("clone"), st.clone());
                    let b = pipe(server, client, st);
                    let _ = a.join();
                    let _ = b.join();
                });
            }
        });
        self.accepting = Some((running, handle));
    }

    /// The server dies: the port refuses connections, open ones are reset.
    fn stop(&mut self) {
        if let Some((running, handle)) = self.accepting.take() {
            running.store(false, Ordering::Relaxed);
            // Wakes the accept loop, which then drops the listener.
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            let _ = handle.join();
        }
        for c in self.live.lock().expect("live connections").drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The server is back, on the same port.
    fn restart(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("bind the proxy's port again");
        self.accept(listener);
    }
}

/// `destination add r --type s3` against `endpoint` (the test S3 server's
/// bucket and credentials) with the extra `options`.
fn add_s3_destination(
    daemon: &Daemon,
    env: &crate::support::services::S3Env,
    endpoint: &str,
    options: &[(&str, &str)],
) {
    let root = crate::support::remote::unique_root("fault");
    let mut opts = vec![
        format!("bucket={}", env.bucket),
        format!("endpoint={endpoint}"),
        format!("region={}", env.region),
        format!("access_key={}", env.access_key),
        format!("secret_key={}", env.secret_key),
        format!("path={root}"),
    ];
    opts.extend(options.iter().map(|(k, v)| format!("{k}={v}")));
    let mut args = vec!["destination", "add", "r", "--type", "s3"];
    for a in &opts {
        args.extend(["-o", a.as_str()]);
    }
    daemon.cli_ok(&args);
}

/// A source of `n` incompressible files of 1 MiB.
fn megabyte_files(src: &Path, n: u64, seed: u64) {
    for i in 0..n {
        fixture::write(&src.join(format!("f{i:02}.bin")), &fixture::pseudo_random(1 << 20, seed + i));
    }
}

#[test]
fn a_stalled_s3_server_ends_the_run_by_its_timeouts_and_the_next_run_completes() {
    let env = crate::support::services::s3();
    let proxy = FaultyProxy::start(env.endpoint.trim_start_matches("http://").to_string(), false);
    let sb = Sandbox::new();
    let src = sb.dir("src");
    megabyte_files(&src, 30, 300);
    let daemon = Daemon::start(sb.daemon_opts());
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    add_s3_destination(&daemon, &env, &endpoint, &[("timeout", "3"), ("retries", "1")]);
    daemon.add_job(JOB, &[&src], &["r"], &[]);
    let id = daemon.start_run(JOB);
    wait_until("the run to start uploading", Duration::from_secs(30), || {
        let run = daemon.run_show(id);
        (run["stats"]["files_scanned"].as_u64().unwrap_or(0) > 0 || run["state"] != "running").then_some(())
    });
    proxy.stalled.store(true, Ordering::Relaxed);
    let asked = Instant::now();
    let ended = daemon.wait_run_final(id);
    let took = asked.elapsed();
    assert_eq!(ended["state"], "failed", "a run against a stalled server did not fail: {ended:#}");
    assert!(took < Duration::from_secs(50), "the run took {took:?} to give up on a stalled server");
    assert!(listed(&daemon, JOB).is_empty(), "a snapshot appeared from a run that failed");

    proxy.stalled.store(false, Ordering::Relaxed);
    let run = daemon.run_job_wait(JOB);
    assert_eq!(run["state"], "completed");
    let check = daemon.cli(["destination", "check", "r", "--read-data"]);
    assert!(check.success(), "{check}");
}

#[test]
fn eio_from_the_source_fails_that_file_only_and_eio_on_a_destination_reaches_that_file_only() {
    use crate::support::faultfs::FaultMount;
    let sb = Sandbox::new();
    let real = sb.dir("real");
    for name in ["good-1.txt", "bad-sector.bin", "sub/good-2.txt"] {
        fixture::write(&real.join(name), &fixture::pseudo_random(70_000, name.len() as u64));
    }
    // The source is on a disk with a bad sector under one file.
    let source = FaultMount::new(&real, &sb.path().join("source"), &[b"bad-sector"]);
    let src_rel = source.path().strip_prefix("/").expect("absolute").to_path_buf();
    let daemon = Daemon::start(sb.daemon_opts());
    let dest = sb.path().join("dest");
    daemon.add_destination(DEST, &dest, &[]);
    daemon.add_job(JOB, &[source.path()], &[DEST], &[]);
    let (code, run) = daemon.run_wait(JOB);
    assert_eq!((code, run["state"].as_str()), (3, Some("partial")), "{run:#}");
    let errors = run["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{run:#}");
    assert!(str_field(&errors[0], "path").ends_with("/bad-sector.bin"), "{errors:?}");
    assert!(str_field(&errors[0], "message").contains("Input/output error"), "{errors:?}");
    let snapshot = run["destinations"][0]["snapshot"].as_str().expect("a snapshot").to_string();
    let tree = dest.join(JOB).join(&snapshot).join("tree").join(&src_rel);
    for good in ["good-1.txt", "sub/good-2.txt"] {
        assert_eq!(std::fs::read(tree.join(good)).ok(), std::fs::read(real.join(good)).ok(), "{good} in the snapshot");
    }
    drop(source);

    // Now the destination's disk has a bad sector under one stored file: a
    // second agent adopts the destination through it (read-only) and mounts it.
    let view = FaultMount::new(&dest, &sb.path().join("dest-view"), &[b"good-2"]);
    let other = Sandbox::new();
    let mnt = other.dir("mnt");
    let mut opts = other.daemon_opts();
    opts.mountpoint = Some(mnt.clone());
    let _guard = crate::support::system::FuseGuard(mnt.clone());
    let reader = Daemon::start(opts);
    reader.add_destination("view", view.path(), &["--readonly"]);
    let in_mount = mnt.join("view").join(JOB).join(&snapshot).join(&src_rel);
    wait_until("the snapshot in the mount", Duration::from_secs(10), || {
        in_mount.join("good-1.txt").exists().then_some(())
    });
    assert_eq!(std::fs::read(in_mount.join("good-1.txt")).ok(), std::fs::read(real.join("good-1.txt")).ok());
    let bad = std::fs::read(in_mount.join("sub/good-2.txt")).expect_err("a read through a bad sector");
    assert_eq!(bad.raw_os_error(), Some(5), "not EIO: {bad}");
    let check = reader.cli(["destination", "check", "view", "--read-data", "--json"]);
    assert!(!check.success(), "check --read-data did not see the bad sector:\n{check}");
    let report: Value = serde_json::from_str(&check.stdout).expect("check JSON");
    let problems: Vec<String> = report["snapshots"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["problems"].as_array().cloned().unwrap_or_default())
        .map(|p| p["path"].as_str().unwrap_or("-").to_string())
        .collect();
    assert!(
        !problems.is_empty() && problems.iter().all(|p| p.ends_with("good-2.txt")),
        "check names other files than the one under the bad sector: {problems:?}"
    );
}

#[test]
fn an_s3_server_down_for_a_few_seconds_mid_run_is_tried_again_and_the_run_completes() {
    let env = crate::support::services::s3();
    let mut proxy = FaultyProxy::start(env.endpoint.trim_start_matches("http://").to_string(), true);
    let sb = Sandbox::new();
    let src = sb.dir("src");
    megabyte_files(&src, 40, 700);
    let daemon = Daemon::start(sb.daemon_opts());
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    // No retries by the S3 client itself: the failure reaches the run at once.
    add_s3_destination(&daemon, &env, &endpoint, &[("timeout", "10"), ("retries", "0")]);
    daemon.add_job(JOB, &[&src], &["r"], &[]);
    let id = daemon.start_run(JOB);
    wait_until("the run to start uploading", Duration::from_secs(30), || {
        let run = daemon.run_show(id);
        (run["stats"]["bytes_copied"].as_u64().unwrap_or(0) > 0 || run["state"] != "running").then_some(())
    });
    proxy.stop();
    std::thread::sleep(Duration::from_secs(4));
    proxy.restart();
    let ended = daemon.wait_run_final(id);
    assert_eq!(ended["state"], "completed", "the run did not survive a server down for 4 s: {ended:#}");
    let dest = &ended["destinations"][0];
    let said = dest["message"].as_str().unwrap_or_default();
    assert!(
        said.contains("second attempt after a temporary failure"),
        "the run completed without being tried again (was the server stopped mid-run?): {ended:#}"
    );
    let snaps = listed(&daemon, JOB);
    assert_eq!(snaps.len(), 1, "{ended:#}");
    assert_eq!(snaps[0]["files"], 40, "{snaps:#?}");
    let check = daemon.cli(["destination", "check", "r", "--read-data"]);
    assert!(check.success(), "{check}");
}

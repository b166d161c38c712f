//! `hindsight restore files`: exact restores (bytes and every metadata, from
//! the snapshot's index), the merge/overwrite/skip-existing modes, dry runs,
//! and safety against what is at the target (a planted symlink is never
//! followed, a planted hardlink never written through).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::support::fixture;
use crate::support::{JOB, Setup, assert_same, describe, s};

/// `DIR/<absolute path>`: where a restore `--to DIR` puts `path`.
fn under(dir: &Path, path: &Path) -> PathBuf {
    dir.join(path.strip_prefix("/").expect("absolute"))
}

/// `restore files ... --wait --json`: exit status and the task.
fn restore(t: &Setup, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["restore", "files"];
    all.extend_from_slice(args);
    all.extend(["--wait", "--json"]);
    let out = t.daemon.cli_within(all, std::time::Duration::from_secs(60));
    (out.code, out.summary())
}

#[test]
fn files_restore_exactly_in_every_mode_and_never_through_planted_links() {
    let t = Setup::new(fixture::every_kind);
    let snap = t.daemon.backup(JOB);
    let id = snap.id.to_string();
    let src = t.src.clone();

    // Exact: a restore under --to equals the source, metadata and hardlinks included.
    let r1 = t.sb.path().join("r1");
    let (code, task) = restore(&t, &[&id, s(&src), "--to", s(&r1)]);
    assert_eq!((code, task["state"].as_str()), (0, Some("completed")), "{task:#}");
    assert_same(&describe(&src), &describe(&under(&r1, &src)), "restore --to");
    let made = std::fs::metadata(&r1).expect("the --to directory");
    assert_eq!((made.mode() & 0o777, made.uid()), (0o700, 0), "a --to directory the restore creates is root's alone");
    let sparse = std::fs::metadata(under(&r1, &src).join(fixture::SPARSE)).expect("sparse file");
    assert!(sparse.blocks() * 512 < fixture::SPARSE_SIZE / 4, "the sparse file was restored with its holes");

    // merge: a newer file at the target is kept, a missing one comes back, an older changed one is replaced.
    let mine = under(&r1, &src).join("plain.txt");
    let older = under(&r1, &src).join("data/chmod-me");
    std::fs::write(&mine, b"edited after the backup\n").expect("edit");
    std::fs::remove_file(under(&r1, &src).join("empty")).expect("rm");
    std::fs::write(&older, b"changed, but older\n").expect("edit");
    fixture::set_mtime(&older, 1_000_000_000);
    let (code, task) = restore(&t, &[&id, s(&src), "--to", s(&r1)]);
    assert_eq!(code, 0, "{task:#}");
    assert_eq!(std::fs::read(&mine).expect("read"), b"edited after the backup\n", "merge keeps what is newer");
    assert!(under(&r1, &src).join("empty").is_file(), "merge restores what is missing");
    assert_eq!(std::fs::read(&older).expect("read"), b"mode changes\n", "merge replaces what differs and is older");

    // skip-existing leaves the edited file; overwrite replaces it.
    std::fs::remove_file(under(&r1, &src).join("empty")).expect("rm");
    let (code, _) = restore(&t, &[&id, s(&src), "--to", s(&r1), "--mode", "skip-existing"]);
    assert_eq!(code, 0);
    assert!(under(&r1, &src).join("empty").is_file());
    assert_eq!(std::fs::read(&mine).expect("read"), b"edited after the backup\n");
    let (code, _) = restore(&t, &[&id, s(&src), "--to", s(&r1), "--mode", "overwrite"]);
    assert_eq!(code, 0);
    assert_same(&describe(&src), &describe(&under(&r1, &src)), "overwrite");

    // A dry run lists what it would write and writes nothing.
    let r0 = t.sb.path().join("r0");
    let (code, task) = restore(&t, &[&id, &format!("{}/dirs", s(&src)), "--to", s(&r0), "--dry-run"]);
    assert_eq!(code, 0, "{task:#}");
    let said = task["message"].as_str().unwrap_or_default();
    assert!(
        said.contains("would be written") && said.contains("create") && said.contains("dirs/private/secret"),
        "{said}"
    );
    assert!(!r0.exists(), "a dry run created the target");

    // A symlink planted at the target is not followed: nothing lands in the directory it points to.
    let victim = t.sb.dir("victim");
    let r2 = t.sb.path().join("r2");
    let first = src.components().nth(1).expect("a first component").as_os_str().to_owned();
    std::fs::create_dir_all(&r2).expect("mkdir");
    std::os::unix::fs::symlink(&victim, r2.join(&first)).expect("plant a symlink");
    let (code, task) = restore(&t, &[&id, s(&src), "--to", s(&r2)]);
    assert_eq!((code, task["state"].as_str()), (3, Some("partial")), "{task:#}");
    assert!(task["message"].as_str().unwrap_or_default().contains("not followed"), "{task:#}");
    assert!(
        std::fs::read_dir(&victim).expect("victim").next().is_none(),
        "the restore wrote through a planted symlink"
    );

    // A hardlink planted at the target to a file elsewhere is replaced, not written through.
    let outside = t.sb.path().join("outside.txt");
    std::fs::write(&outside, b"must not change\n").expect("write");
    let linked = under(&r1, &src).join("plain.txt");
    std::fs::remove_file(&linked).expect("rm");
    std::fs::hard_link(&outside, &linked).expect("plant a hardlink");
    let (code, _) = restore(&t, &[&id, &format!("{}/plain.txt", s(&src)), "--to", s(&r1), "--mode", "overwrite"]);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read(&outside).expect("read"), b"must not change\n");
    assert_eq!(std::fs::read(&linked).expect("read"), b"plain text\n".repeat(100));

    // To the original place: a deleted file comes back with its metadata.
    let gone = src.join("bin/setuid-tool");
    std::fs::remove_file(&gone).expect("rm");
    let (code, task) = restore(&t, &[&id, s(&gone)]);
    assert_eq!(code, 0, "{task:#}");
    let md = std::fs::metadata(&gone).expect("restored in place");
    assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o4755, fixture::UID, fixture::GID));

    // Bad input: clear errors, nothing queued.
    t.daemon.cli(["restore", "files", "999999", "/x"]).assert_error_code(5, &["999999"]);
    t.daemon.cli(["restore", "files", &id, "relative"]).assert_error_code(1, &["absolute"]);
    t.daemon.cli(["restore", "files", &id, s(&src), "--to", "rel"]).assert_error_code(1, &["absolute"]);
    t.daemon.cli(["restore", "files", &id, s(&src), "--to", s(&t.dest.join("x"))]).assert_error_code(1, &["inside"]);
    t.daemon.cli(["restore", "files", &id, s(&src), "--mode", "sideways"]).assert_error(&["restore mode"]);
    let (code, task) = restore(&t, &[&id, &format!("{}/no-such-file", s(&src)), "--to", s(&r1)]);
    assert_eq!(code, 1, "{task:#}");
    assert!(task["message"].as_str().unwrap_or_default().contains("not in"), "{task:#}");
}

#[test]
fn archived_and_compressed_snapshots_restore_exactly() {
    let t = Setup::without_job(fixture::every_kind);
    let want = describe(&t.src);
    for structure in ["archived", "compressed"] {
        t.daemon.add_job(structure, &[&t.src], &[crate::support::DEST], &["--structure", structure]);
        let snap = t.daemon.backup(structure);
        let to = t.sb.path().join(format!("from-{structure}"));
        let (code, task) = restore(&t, &[&snap.id.to_string(), s(&t.src), "--to", s(&to)]);
        assert_eq!(code, 0, "{structure}: {task:#}");
        assert_same(&want, &describe(&under(&to, &t.src)), &format!("restore of a {structure} snapshot"));
    }
}

#[test]
fn restores_must_accept_the_conditions_and_obey_the_permission_rules() {
    let t = Setup::new(fixture::every_kind);
    let snap = t.daemon.backup(JOB);
    let id = snap.id.to_string();
    let src = t.src.clone();
    let text = "I restore only data I am allowed to see (condition 7431)";
    t.daemon.cli_ok(&["restore-condition", "add", text]);
    let to = t.sb.path().join("r");
    t.daemon
        .cli(["restore", "files", &id, s(&src), "--to", s(&to)])
        .assert_error_code(1, &["--accept-conditions", "condition 7431"]);
    assert!(!to.exists(), "a refused restore wrote nothing");

    let bin = format!("{}/bin/*", s(&src));
    let dirs = format!("{}/dirs", s(&src));
    t.daemon.cli_ok(&["permission-rule", "add", &bin, "--owner", "nobody", "--file-mode", "0750"]);
    t.daemon.cli_ok(&["permission-rule", "add", &dirs, "--group", "nogroup", "--dir-mode", "0711", "--recursive"]);
    t.daemon
        .cli(["permission-rule", "add", &bin, "--owner", "no-such-user-4242"])
        .assert_error_code(1, &["no such user"]);
    t.daemon.cli(["permission-rule", "add", "bin/*", "--file-mode", "0644"]).assert_error_code(1, &["absolute"]);
    t.daemon.cli(["permission-rule", "add", &bin, "--file-mode", "0999"]).assert_error_code(1, &["octal"]);

    let (code, task) = restore(&t, &[&id, s(&src), "--to", s(&to), "--accept-conditions"]);
    assert_eq!(code, 0, "{task:#}");
    assert_eq!(
        task["request"]["accepted_conditions"][0], text,
        "the accepted conditions are recorded with the task: {task:#}"
    );
    let got = under(&to, &src);
    let nobody = |flag: &str, name: &str| -> u32 {
        let out = std::process::Command::new("getent").args([flag, name]).output().expect("getent");
        String::from_utf8_lossy(&out.stdout).split(':').nth(2).and_then(|n| n.parse().ok()).expect("an id")
    };
    let tool = std::fs::metadata(got.join("bin/setuid-tool")).expect("restored");
    assert_eq!(
        (tool.uid(), tool.mode() & 0o7777),
        (nobody("passwd", "nobody"), 0o750),
        "owner and mode from the rule, no setuid"
    );
    let private = std::fs::metadata(got.join("dirs/private")).expect("restored");
    assert_eq!((private.gid(), private.mode() & 0o7777), (nobody("group", "nogroup"), 0o711));
    let secret = std::fs::metadata(got.join("dirs/private/secret")).expect("restored");
    assert_eq!(
        (secret.gid(), secret.mode() & 0o7777),
        (nobody("group", "nogroup"), 0o600),
        "recursive: the group below, the file's own mode"
    );
    let plain = std::fs::metadata(got.join("plain.txt")).expect("restored");
    assert_eq!((plain.uid(), plain.mode() & 0o7777), (fixture::UID, 0o640), "no rule: as recorded");

    let rules = t.daemon.cli_json(&["permission-rule", "list"]);
    let first = rules[0]["id"].as_i64().expect("id").to_string();
    t.daemon.cli_ok(&["permission-rule", "remove", &first]);
    let conditions = t.daemon.cli_json(&["restore-condition", "list"]);
    t.daemon.cli_ok(&["restore-condition", "remove", &conditions[0]["id"].as_i64().expect("id").to_string()]);
    assert_eq!(t.daemon.cli_json(&["restore-condition", "list"]), serde_json::Value::Array(Vec::new()));
    assert_eq!(t.daemon.cli_json(&["permission-rule", "list"]).as_array().map(Vec::len), Some(1));
}

#[test]
fn downloads_extract_with_gnu_tar_to_the_same_tree_and_expire() {
    let t = Setup::new(fixture::every_kind);
    let snap = t.daemon.backup(JOB);
    let id = snap.id.to_string();
    let out = t.daemon.cli_within(["download", &id, s(&t.src), "--wait", "--json"], std::time::Duration::from_secs(60));
    assert!(out.success(), "{out}\n{}", t.daemon.log_tail());
    let listed = t.daemon.cli_json(&["download", "list"]);
    let d = &listed[0];
    let path = PathBuf::from(d["path"].as_str().expect("path"));
    let md = std::fs::metadata(&path).expect("the download exists");
    assert_eq!((md.mode() & 0o7777, md.uid(), md.len()), (0o600, 0, d["size"].as_u64().expect("size")));
    let dir_mode = std::fs::metadata(path.parent().expect("dir")).expect("dir").mode() & 0o777;
    assert_eq!(dir_mode, 0o700, "the download directory is root's alone");
    assert!(path.starts_with(&t.daemon.opts().state_dir), "by default under the state directory: {}", path.display());

    let x = t.sb.path().join("x");
    std::fs::create_dir_all(&x).expect("mkdir");
    let tar = std::process::Command::new("tar")
        .args(["--extract", "--gzip", "--preserve-permissions", "--same-owner", "--numeric-owner", "--acls"])
        .args(["--xattrs", "--xattrs-include=*", "--file"])
        .arg(&path)
        .arg("--directory")
        .arg(&x)
        .output()
        .expect("run tar");
    assert!(tar.status.success(), "tar: {}", String::from_utf8_lossy(&tar.stderr));
    assert_same(&describe(&t.src), &describe(&under(&x, &t.src)), "GNU tar of the download");

    // A second download of one file, with one download kept per account: the first goes.
    t.daemon.cli_ok(&["settings", "set", "downloads_per_account", "1"]);
    let out = t.daemon.cli_within(
        ["download", &id, &format!("{}/plain.txt", s(&t.src)), "--wait"],
        std::time::Duration::from_secs(60),
    );
    assert!(out.success(), "{out}");
    t.daemon.cli(["download", &id, "relative"]).assert_error_code(1, &["absolute"]);
    let now = t.daemon.cli_json(&["download", "list"]);
    assert_eq!(now.as_array().map(Vec::len), Some(1), "{now:#}");
    assert!(!path.exists(), "the download over the per-account limit is removed");
    let path = PathBuf::from(now[0]["path"].as_str().expect("path"));
    // downloads_ttl removes it once it is old.
    let catalog = t.daemon.opts().state_dir.join("catalog.sqlite");
    let aged = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE downloads SET created='2000-01-01T00:00:00Z'\"); c.commit()"])
        .arg(&catalog)
        .output()
        .expect("python3");
    assert!(aged.status.success(), "{}", String::from_utf8_lossy(&aged.stderr));
    t.daemon.cli_ok(&["settings", "set", "downloads_ttl", "1"]);
    crate::support::wait_until("the old downloads expire", std::time::Duration::from_secs(20), || {
        (t.daemon.cli_json(&["download", "list"]) == serde_json::Value::Array(Vec::new())).then_some(())
    });
    assert!(!path.exists(), "an expired download's file is removed");
}

#[test]
fn a_full_or_read_only_target_fails_clearly_and_touches_nothing_else() {
    use crate::support::system::Mount;
    let t = Setup::new(|src| {
        fixture::write(&src.join("small.txt"), b"small\n");
        fixture::write(&src.join("big.bin"), &fixture::pseudo_random(3 << 20, 11));
        fixture::write(&src.join("after.txt"), b"after\n");
    });
    let snap = t.daemon.backup(JOB);
    let id = snap.id.to_string();

    // Full: 1 MiB cannot hold the 3 MiB file; the others are restored, the failure named.
    let full = t.sb.path().join("full");
    let _m = Mount::tmpfs(&full, "size=1m");
    let (code, task) = restore(&t, &[&id, s(&t.src), "--to", s(&full)]);
    assert_eq!((code, task["state"].as_str()), (3, Some("partial")), "{task:#}");
    let said = task["message"].as_str().unwrap_or_default();
    assert!(said.contains("big.bin") && said.contains("No space left"), "{said}");
    assert_eq!(std::fs::read(under(&full, &t.src).join("small.txt")).expect("restored"), b"small\n");
    assert!(!under(&full, &t.src).join("big.bin").exists(), "no half file under the real name");
    let leftovers: Vec<String> = crate::support::list_names(&under(&full, &t.src))
        .into_iter()
        .filter(|n| n.starts_with(".hindsight-restore"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // Read-only: refused entry by entry, with the reason.
    let ro = t.sb.path().join("ro");
    let _r = Mount::tmpfs(&ro, "ro,size=1m");
    let (code, task) = restore(&t, &[&id, s(&t.src), "--to", s(&ro)]);
    assert_ne!(code, 0, "{task:#}");
    assert!(task["message"].as_str().unwrap_or_default().contains("Read-only file system"), "{task:#}");

    // A download bigger than its directory's free space fails and leaves no file.
    let dl = t.sb.path().join("downloads");
    let _d = Mount::tmpfs(&dl, "size=1m,mode=0700");
    t.daemon.cli_ok(&["settings", "set", "download_dir", s(&dl)]);
    let out = t.daemon.cli_within(["download", &id, s(&t.src), "--wait"], std::time::Duration::from_secs(60));
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("No space left"), "{out}");
    assert!(crate::support::list_names(&dl).is_empty(), "a failed download leaves no file");
    assert_eq!(t.daemon.cli_json(&["download", "list"]), serde_json::Value::Array(Vec::new()));
}

//! Jobs that dump databases into their snapshots, against a real PostgreSQL
//! and a real MariaDB on loopback: consistent dumps under a write load, an
//! unchanged database stored once, restores of an older dump that give the
//! data of that time, and dumps that fail without leaving half a file.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::databases::{password_file, psql, run, unique};
use crate::support::daemon::stat;
use crate::support::remote::{Kind, Remote};
use crate::support::services::{DbEnv, mariadb, postgres};
use crate::support::{DEST, JOB, Setup, Snap, fixture, s, wait_until};

/// A mysql on the test server as root through the socket; the output, trimmed.
pub(crate) fn mysql(my: &DbEnv, sql: &str) -> String {
    let out = Command::new("mysql")
        .args([
            "--no-defaults",
            &format!("--socket={}", my.socket),
            "-uroot",
            "--batch",
            "--skip-column-names",
            "-e",
            sql,
        ])
        .output()
        .expect("run mysql");
    assert!(out.status.success(), "mysql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Where a snapshot holds the dumps of `server`.
fn dumps_of(snap: &Snap, server: &str) -> PathBuf {
    snap.path.join("tree/.hindsight/databases").join(server)
}

/// Adds database server `name` for `db` with the password in a file.
pub(crate) fn add_server(t: &Setup, name: &str, engine: &str, db: &DbEnv) {
    let pw = password_file(&t.sb, &format!("{name}-password"), &db.password);
    let port = db.port.to_string();
    let args = ["database", "add", name, "--engine", engine, "--host", &db.host, "--port", &port];
    let mut args = args.to_vec();
    args.extend(["--user", &db.user, "--password-file", &pw]);
    t.daemon.cli_json(&args);
}

/// Transfers between two accounts until stopped: their sum never changes.
fn transfers(stop: Arc<AtomicBool>, run_one: impl Fn() + Send + 'static) -> std::thread::JoinHandle<u32> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            run_one();
            n += 1;
        }
        n
    })
}

#[test]
fn postgresql_dumps_are_consistent_stored_once_when_unchanged_and_restore_to_their_time() {
    let pg = postgres();
    let db = unique("hs_dump_pg");
    let role = unique("hs_dump_role");
    psql(&pg, "postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    psql(&pg, "postgres", &format!("DROP DATABASE IF EXISTS {db}_r1"));
    psql(&pg, "postgres", &format!("DROP DATABASE IF EXISTS {db}_r3"));
    psql(&pg, "postgres", &format!("DROP ROLE IF EXISTS {role}"));
    psql(&pg, "postgres", &format!("CREATE ROLE {role} LOGIN"));
    psql(&pg, "postgres", &format!("CREATE DATABASE {db}"));
    psql(
        &pg,
        &db,
        "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 2000) g;
         CREATE TABLE audit (n serial, at timestamptz DEFAULT now());
         CREATE VIEW rich AS SELECT id FROM accounts WHERE balance > 1000;
         CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit DEFAULT VALUES; RETURN NEW; END $$;
         CREATE TRIGGER noted AFTER UPDATE ON accounts FOR EACH ROW WHEN (OLD.id = 1) EXECUTE FUNCTION note();",
    );

    let t = Setup::without_job(fixture::small_tree);
    add_server(&t, "pg", "postgresql", &pg);
    t.daemon.add_job(JOB, &[&t.src], &[DEST], &["--database", &format!("pg:{db}")]);
    let shown = t.daemon.cli_ok(&["job", "show", JOB]);
    assert!(shown.stdout.contains(&format!("pg:{db}")), "{shown}");
    let listed = t.daemon.cli_ok(&["job", "list"]);
    assert!(listed.stdout.contains(&format!("{},db:pg", s(&t.src))), "{listed}");

    let first = t.daemon.backup(JOB);
    let dump1 = dumps_of(&first, "pg").join(format!("{db}.pgdump"));
    let md = std::fs::metadata(&dump1).expect("the dump is in the snapshot");
    assert_eq!((md.mode() & 0o7777, md.uid()), (0o600, 0), "a dump is root's alone");
    let globals = std::fs::read_to_string(dumps_of(&first, "pg").join("globals.sql")).expect("globals.sql");
    assert!(globals.contains(&format!("CREATE ROLE {role}")), "{globals}");
    // The files are in the same snapshot as the dumps.
    assert!(first.tree(&t.src).join("a.txt").is_file());

    // Unchanged: the same file, not a copy.
    let second = t.daemon.backup(JOB);
    let dump2 = dumps_of(&second, "pg").join(format!("{db}.pgdump"));
    let (i1, i2) = (md.ino(), std::fs::metadata(&dump2).expect("second dump").ino());
    assert_eq!(i1, i2, "an unchanged database's dump is linked, not stored again");

    // A write load during the next backup: transfers keep the sum at 2,000,000.
    psql(
        &pg,
        &db,
        "UPDATE accounts SET balance = balance + 500 WHERE id <= 10; UPDATE accounts SET balance = balance - 500 WHERE id > 1990",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (pg2, db2) = (pg.clone(), db.clone());
    let load = transfers(stop.clone(), move || {
        psql(
            &pg2,
            &db2,
            "BEGIN; UPDATE accounts SET balance = balance - 7 WHERE id = 1; \
             SELECT pg_sleep(0.01); UPDATE accounts SET balance = balance + 7 WHERE id = 2; COMMIT;",
        );
    });
    let third = t.daemon.backup(JOB);
    stop.store(true, Ordering::Relaxed);
    let moved = load.join().expect("the load ran");
    assert!(moved > 0, "no transfer ran during the backup");
    let dump3 = dumps_of(&third, "pg").join(format!("{db}.pgdump"));
    assert_ne!(std::fs::metadata(&dump3).expect("third dump").ino(), i1, "a changed database is dumped anew");

    // Restore the first dump into a new database: the data of that time.
    let restore = |dump: &Path, into: &str| {
        psql(&pg, "postgres", &format!("CREATE DATABASE {into}"));
        let mut c = Command::new("pg_restore");
        c.env("PGPASSWORD", &pg.password).args([
            "--no-owner",
            "-h",
            &pg.host,
            "-p",
            &pg.port.to_string(),
            "-U",
            &pg.user,
            "-d",
            into,
            s(dump),
        ]);
        run(&mut c);
    };
    restore(&dump1, &format!("{db}_r1"));
    let r1 = format!("{db}_r1");
    assert_eq!(psql(&pg, &r1, "SELECT count(*), sum(balance) FROM accounts"), "2000|2000000");
    assert_eq!(psql(&pg, &r1, "SELECT count(*) FROM rich"), "0");
    psql(&pg, &r1, "UPDATE accounts SET balance = balance WHERE id = 1");
    assert_eq!(psql(&pg, &r1, "SELECT count(*) FROM audit"), "1", "the trigger came back with the dump");
    // The third, taken under load: one consistent moment, the sum intact.
    restore(&dump3, &format!("{db}_r3"));
    let r3 = format!("{db}_r3");
    assert_eq!(psql(&pg, &r3, "SELECT count(*), sum(balance) FROM accounts"), "2000|2000000");
    assert_eq!(psql(&pg, &r3, "SELECT count(*) FROM rich"), "10");

    // The same through the agent: a queued task, under a new name.
    let id = first.id.to_string();
    let t1 = format!("{db}_t1");
    psql(&pg, "postgres", &format!("DROP DATABASE IF EXISTS {t1}"));
    let done = t.daemon.cli_ok(&["restore", "database", &id, "pg", &db, "--as", &t1, "--wait"]);
    assert!(done.stdout.contains("completed") && done.stdout.contains(&format!("database {t1} restored")), "{done}");
    assert_eq!(psql(&pg, &t1, "SELECT count(*), sum(balance) FROM accounts"), "2000|2000000");
    // The live database is never dropped unless asked; asked, it goes back to the first snapshot's rows.
    t.daemon.cli(["restore", "database", &id, "pg", &db]).assert_error_code(6, &["exists", "--replace"]);
    assert_eq!(psql(&pg, &db, "SELECT count(*) FROM rich"), "10", "the refused restore touched the live database");
    let replaced = t.daemon.cli_ok(&["restore", "database", &id, "pg", &db, "--replace", "--wait", "--json"]);
    let task = replaced.summary();
    assert_eq!((task["state"].as_str(), task["bytes_done"].as_u64()), (Some("completed"), Some(md.len())), "{task:#}");
    assert_eq!(psql(&pg, &db, "SELECT count(*) FROM rich"), "0");
    t.daemon
        .cli(["restore", "database", &id, "pg", "nosuch"])
        .assert_error_code(5, &["holds no postgresql dump of database nosuch"]);
    // A dump damaged on the destination: the restore fails saying so, and the
    // database it created is gone again.
    let mut bytes = std::fs::read(&dump3).expect("read the third dump");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&dump3, &bytes).expect("damage the third dump");
    let bad = format!("{db}_bad");
    let (code, out) = {
        let o = t.daemon.cli(["restore", "database", &third.id.to_string(), "pg", &db, "--as", &bad, "--wait"]);
        (o.code, o.stdout.clone())
    };
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("failed") && out.contains("does not match the blake3"), "{out}");
    let left = psql(&pg, "postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{bad}'"));
    assert_eq!(left, "0", "the half-restored database was left behind");
    let listed = t.daemon.cli_ok(&["task", "list"]);
    assert!(listed.stdout.contains("restore_database") && listed.stdout.contains(&t1), "{listed}");

    for d in [&db, &r1, &r3, &t1] {
        psql(&pg, "postgres", &format!("DROP DATABASE {d}"));
    }
    psql(&pg, "postgres", &format!("DROP ROLE {role}"));
}

#[test]
fn mariadb_dumps_are_stored_once_when_unchanged_and_a_failed_dump_leaves_nothing() {
    let my = mariadb();
    let db = unique("hs_dump_my");
    mysql(
        &my,
        &format!(
            "DROP DATABASE IF EXISTS {db}; DROP DATABASE IF EXISTS {db}_r; CREATE DATABASE {db}; USE {db};
             CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB;
             INSERT INTO accounts SELECT seq, 1000 FROM seq_1_to_3000;
             CREATE TABLE audit (n INT AUTO_INCREMENT PRIMARY KEY);
             CREATE VIEW rich AS SELECT id FROM accounts WHERE balance > 1000;
             CREATE TRIGGER noted AFTER UPDATE ON accounts FOR EACH ROW INSERT INTO audit VALUES ();
             CREATE PROCEDURE total() SELECT SUM(balance) FROM accounts;"
        ),
    );
    let t = Setup::mounted_without_destination(fixture::small_tree);
    t.daemon.add_destination(DEST, &t.dest, &[]);
    add_server(&t, "maria", "mysql", &my);
    t.daemon.add_job(JOB, &[&t.src], &[DEST], &["--database", &format!("maria:{db}")]);

    let first = t.daemon.backup(JOB);
    let dump1 = dumps_of(&first, "maria").join(format!("{db}.sql"));
    let text = std::fs::read_to_string(&dump1).expect("the dump is in the snapshot");
    for part in ["CREATE TABLE `accounts`", "TRIGGER", "PROCEDURE `total`", "VIEW `rich`"] {
        assert!(text.contains(part), "the dump lacks {part}");
    }
    // The mount shows it where the snapshot holds it, root's alone.
    let mounted = t.mountpoint().join(DEST).join(JOB).join(&first.name).join(".hindsight/databases/maria");
    let shown = wait_until("the dump in the mount", Duration::from_secs(30), || {
        std::fs::read_to_string(mounted.join(format!("{db}.sql"))).ok()
    });
    assert_eq!(shown, text);
    let md = std::fs::metadata(mounted.join(format!("{db}.sql"))).expect("stat in the mount");
    assert_eq!((md.mode() & 0o777, md.uid()), (0o600, 0));
    let second = t.daemon.backup(JOB);
    let dump2 = dumps_of(&second, "maria").join(format!("{db}.sql"));
    let (m1, m2) = (std::fs::metadata(&dump1).expect("dump 1"), std::fs::metadata(&dump2).expect("dump 2"));
    assert_eq!((m1.ino(), m2.nlink()), (m2.ino(), 2), "an unchanged database's dump is linked, not stored again");

    // Under a write load, one consistent moment.
    let stop = Arc::new(AtomicBool::new(false));
    let (my2, db2) = (my.clone(), db.clone());
    let load = transfers(stop.clone(), move || {
        mysql(
            &my2,
            &format!(
                "USE {db2}; START TRANSACTION; UPDATE accounts SET balance = balance - 3 WHERE id = 5; \
                 DO SLEEP(0.01); UPDATE accounts SET balance = balance + 3 WHERE id = 6; COMMIT;"
            ),
        );
    });
    let third = t.daemon.backup(JOB);
    stop.store(true, Ordering::Relaxed);
    assert!(load.join().expect("the load ran") > 0, "no transfer ran during the backup");
    let dump3 = dumps_of(&third, "maria").join(format!("{db}.sql"));
    mysql(&my, &format!("CREATE DATABASE {db}_r"));
    let restored = Command::new("sh")
        .arg("-c")
        .arg(format!("mysql --no-defaults --socket={} -uroot {db}_r < {}", my.socket, s(&dump3)))
        .status()
        .expect("restore");
    assert!(restored.success());
    assert_eq!(mysql(&my, &format!("SELECT COUNT(*), SUM(balance) FROM {db}_r.accounts")), "3000\t3000000");
    assert_eq!(mysql(&my, &format!("USE {db}_r; CALL total()")), "3000000", "the routine came back");
    // Through the agent, the first snapshot's dump under another name.
    mysql(&my, &format!("DROP DATABASE IF EXISTS {db}_t"));
    let done = t.daemon.cli_ok(&[
        "restore",
        "database",
        &first.id.to_string(),
        "maria",
        &db,
        "--as",
        &format!("{db}_t"),
        "--wait",
    ]);
    assert!(done.stdout.contains("completed"), "{done}");
    assert_eq!(mysql(&my, &format!("USE {db}_t; CALL total()")), "3000000");
    assert_eq!(mysql(&my, &format!("SELECT COUNT(*) FROM {db}_t.rich")), "0");
    mysql(&my, &format!("DROP DATABASE {db}_t"));

    // A dump killed half-way: the run is partial, names the database, and
    // no part of the dump stands in the snapshot; the earlier ones are intact.
    let wrapper = t.sb.path().join("mysqldump-killed");
    fixture::write(&wrapper, b"#!/bin/sh\nmysqldump \"$@\" | head -c 2000\nkill -9 $$\n");
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    t.daemon.cli_ok(&["settings", "set", "bin_mysqldump", s(&wrapper)]);
    let (code, run) = t.daemon.run_wait(JOB);
    assert_eq!((code, run["state"].as_str()), (3, Some("partial")), "{run:#}");
    let errors = run["errors"].to_string();
    assert!(errors.contains(&format!("database {db} on server maria")) && errors.contains("killed"), "{errors}");
    let partial = t.daemon.snapshot_of(&run);
    assert!(!dumps_of(&partial, "maria").join(format!("{db}.sql")).exists(), "a cut dump was kept");
    assert!(partial.tree(&t.src).join("a.txt").is_file(), "the files were still backed up");
    assert_eq!(std::fs::read_to_string(&dump1).expect("dump 1 still there"), text);

    // A dump tool that hangs: cancelling the run stops it at once, tool included.
    let hanging = t.sb.path().join("mysqldump-hangs");
    fixture::write(&hanging, b"#!/bin/sh\nsleep 317\n");
    std::fs::set_permissions(&hanging, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    t.daemon.cli_ok(&["settings", "set", "bin_mysqldump", s(&hanging)]);
    let id = t.daemon.start_run(JOB);
    let sleeping = || {
        let out = Command::new("pgrep").args(["-f", "^sleep 317$"]).output().expect("pgrep");
        !out.stdout.is_empty()
    };
    wait_until("the dump tool to start", Duration::from_secs(30), || sleeping().then_some(()));
    let asked = std::time::Instant::now();
    t.daemon.cli_ok(&["run", "cancel", &id.to_string()]);
    let ended = t.daemon.wait_run_final(id);
    assert_eq!(ended["state"], "cancelled", "{ended:#}");
    assert!(asked.elapsed() < Duration::from_secs(20), "the cancel took {:?}", asked.elapsed());
    wait_until("the dump tool to be killed", Duration::from_secs(10), || (!sleeping()).then_some(()));
    t.daemon.cli_ok(&["settings", "set", "bin_mysqldump", ""]);

    // A server that refuses the password: partial, the server named with its words.
    let wrong = password_file(&t.sb, "wrong", "not-the-password");
    t.daemon.cli_json(&["database", "edit", "maria", "--password-file", &wrong]);
    let (code, run) = t.daemon.run_wait(JOB);
    assert_eq!(code, 3, "{run:#}");
    let errors = run["errors"].to_string();
    assert!(errors.contains("database server maria") && errors.to_lowercase().contains("access denied"), "{errors}");
    mysql(&my, &format!("DROP DATABASE {db}; DROP DATABASE {db}_r"));
}

#[test]
fn jobs_with_databases_are_checked_when_they_are_set() {
    let t = Setup::without_job(fixture::small_tree);
    let src = t.src.clone();
    let add = |extra: &[&str]| {
        let mut args = vec!["job", "add", "dbjob", "--destination", DEST];
        args.extend_from_slice(extra);
        t.daemon.cli(args)
    };
    add(&[]).assert_error_code(1, &["at least one source or database server"]);
    add(&["--database", "nosuch"]).assert_error_code(5, &["no database server named nosuch"]);
    t.daemon.cli_json(&["database", "add", "pg", "--engine", "postgresql", "--host", "127.0.0.1"]);
    // Archives on remote destinations stream out as they are written: no dump there.
    let remote = Remote::shared(Kind::S3, "dbcheck");
    let mut args = vec!["destination".to_string(), "add".into(), "s3".into()];
    args.extend(remote.add_args(&[]));
    t.daemon.cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let to_s3 = |structure: &str| {
        t.daemon.cli(["job", "add", "dbs3", "--destination", "s3", "--database", "pg", "--structure", structure])
    };
    to_s3("archived").assert_error_code(1, &["local destinations only", "s3"]);
    to_s3("incremental").assert_success();
    t.daemon.cli_ok(&["job", "remove", "dbs3"]);
    add(&["--database", "pg", "--exclude-database", "["]).assert_error_code(1, &["database exclude"]);
    add(&["--database", "pg:a,b", "--exclude-database", "test_*", "--exclude-database-larger-than", "2G"])
        .assert_success();
    let job = t.daemon.cli_json(&["job", "show", "dbjob"]);
    assert_eq!(job["databases"]["servers"][0]["databases"], serde_json::json!(["a", "b"]), "{job:#}");
    assert_eq!(job["databases"]["exclude_larger_than"], 2u64 << 30);
    t.daemon.cli(["database", "remove", "pg"]).assert_error_code(6, &["dumped by job dbjob"]);
    // A job with databases and no sources; then without databases it needs sources.
    t.daemon.cli(["job", "edit", "dbjob", "--no-databases"]).assert_error_code(1, &["at least one source"]);
    t.daemon.cli_ok(&["job", "edit", "dbjob", "--source", s(&src), "--no-databases"]);
    t.daemon.cli_ok(&["database", "remove", "pg"]);
}

#[test]
fn s3_dumps_are_uploaded_once_while_unchanged_and_restore_from_the_mount() {
    let pg = postgres();
    let db = unique("hs_dump_s3");
    psql(&pg, "postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    psql(&pg, "postgres", &format!("DROP DATABASE IF EXISTS {db}_r"));
    psql(&pg, "postgres", &format!("CREATE DATABASE {db}"));
    // Random text compresses little: the dump is over 1 MiB, an object of its own.
    psql(
        &pg,
        &db,
        "CREATE TABLE t AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 60000) g",
    );

    let remote = Remote::shared(Kind::S3, "dumps");
    let t = Setup::mounted_without_destination(fixture::small_tree);
    let mut args = vec!["destination".to_string(), "add".into(), DEST.into()];
    args.extend(remote.add_args(&[]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    t.daemon.cli_ok(&args);
    add_server(&t, "pg", "postgresql", &pg);
    t.daemon.add_job(JOB, &[&t.src], &[DEST], &["--database", &format!("pg:{db}")]);

    let data = ["blobs/", "packs/"];
    let first = t.daemon.run_job_wait(JOB);
    let after1 = remote.objects_under(&data);
    let largest = after1.values().max().copied().unwrap_or(0);
    assert!(largest > 1 << 20, "the dump is stored as an object of its own: {after1:?}");
    // Unchanged: uploaded while it was hashed, then found stored already and removed again.
    // (globals.sql may change under the tests that add roles meanwhile: a few hundred bytes.)
    let second = t.daemon.run_job_wait(JOB);
    let after2 = remote.objects_under(&data);
    let added: Vec<(&String, &u64)> = after2.iter().filter(|(k, _)| !after1.contains_key(*k)).collect();
    assert!(added.iter().all(|(_, n)| **n < 16 << 10), "the second run stored the dump again: {added:?}");
    assert!(after1.iter().all(|(k, n)| after2.get(k) == Some(n)), "objects changed: {after1:?} {after2:?}");
    assert!(stat(&second, "bytes_copied") < 16 << 10, "{second:#}");

    let snap = first["destinations"][0]["snapshot"].as_str().unwrap_or_else(|| panic!("no snapshot: {first:#}"));
    let dump = t.mountpoint().join(DEST).join(JOB).join(snap).join(format!(".hindsight/databases/pg/{db}.pgdump"));
    wait_until("the dump in the mount", Duration::from_secs(30), || dump.is_file().then_some(()));
    psql(&pg, "postgres", &format!("CREATE DATABASE {db}_r"));
    let mut c = Command::new("pg_restore");
    c.env("PGPASSWORD", &pg.password).args([
        "--no-owner",
        "-h",
        &pg.host,
        "-p",
        &pg.port.to_string(),
        "-U",
        &pg.user,
        "-d",
        &format!("{db}_r"),
        s(&dump),
    ]);
    run(&mut c);
    assert_eq!(psql(&pg, &format!("{db}_r"), "SELECT count(*) FROM t"), "60000");
    let check = t.daemon.cli(["destination", "check", DEST, "--read-data"]);
    assert!(check.success(), "{check}");
    psql(&pg, "postgres", &format!("DROP DATABASE {db}"));
    psql(&pg, "postgres", &format!("DROP DATABASE {db}_r"));
}

#[test]
fn ssh_dumps_are_hardlinked_on_the_server_while_unchanged_and_restore() {
    let my = mariadb();
    let db = unique("hs_dump_ssh");
    mysql(
        &my,
        &format!(
            "DROP DATABASE IF EXISTS {db}; DROP DATABASE IF EXISTS {db}_r; CREATE DATABASE {db};
             CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB;
             USE {db}; INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_20000;"
        ),
    );
    let ssh = crate::support::services::ssh();
    let root = crate::remote_ssh::unique_root("dumps");
    let t = Setup::mounted_without_destination(fixture::small_tree);
    let mut args: Vec<String> = ["destination", "add", DEST, "--type", "ssh"].iter().map(|a| a.to_string()).collect();
    args.extend(crate::remote_ssh::ssh_args(&ssh, &root, &[]));
    t.daemon.cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    add_server(&t, "maria", "mysql", &my);
    t.daemon.add_job(JOB, &[&t.src], &[DEST], &["--database", &format!("maria:{db}")]);

    let on_server = crate::remote_ssh::on_server(&root).join(JOB);
    let dump_in = |run: &serde_json::Value| {
        let snap = run["destinations"][0]["snapshot"].as_str().unwrap_or_else(|| panic!("no snapshot: {run:#}"));
        on_server.join(snap).join(format!("tree/.hindsight/databases/maria/{db}.sql"))
    };
    let first = t.daemon.run_job_wait(JOB);
    let second = t.daemon.run_job_wait(JOB);
    let (d1, d2) = (dump_in(&first), dump_in(&second));
    let (m1, m2) = (std::fs::metadata(&d1).expect("dump on the server"), std::fs::metadata(&d2).expect("second"));
    assert_eq!((m1.ino(), m1.mode() & 0o777), (m2.ino(), 0o600), "an unchanged dump is linked on the server, private");
    assert!(m1.len() > 500_000, "{}", m1.len());
    let snap_dir = d1.ancestors().nth(5).expect("the snapshot's directory").to_path_buf();
    let strays: Vec<String> =
        crate::support::list_names(&snap_dir).into_iter().filter(|n| n.starts_with(".dump")).collect();
    assert!(strays.is_empty(), "spooled dumps left on the server: {strays:?}");

    mysql(&my, &format!("UPDATE {db}.t SET v = 'changed' WHERE id = 1"));
    let third = t.daemon.run_job_wait(JOB);
    assert_ne!(std::fs::metadata(dump_in(&third)).expect("third").ino(), m1.ino());
    // The first snapshot's dump, read over SSH and restored by the agent.
    let name = first["destinations"][0]["snapshot"].as_str().unwrap_or_default();
    let listed = t.daemon.cli_json(&["snapshot", "list"]);
    let snap =
        listed.as_array().and_then(|a| a.iter().find(|s| s["name"] == name)).expect("the first snapshot is listed");
    let id = snap["id"].to_string();
    let out = t.daemon.cli_ok(&["restore", "database", &id, "maria", &db, "--as", &format!("{db}_r"), "--wait"]);
    assert!(out.stdout.contains("completed"), "{out}");
    assert_eq!(mysql(&my, &format!("SELECT v = MD5(1) FROM {db}_r.t WHERE id = 1")), "1");
    // And the mount shows it.
    let dump = t.mountpoint().join(DEST).join(JOB).join(name).join(format!(".hindsight/databases/maria/{db}.sql"));
    wait_until("the dump in the mount", Duration::from_secs(30), || dump.is_file().then_some(()));
    assert_eq!(std::fs::read(&dump).expect("read through the mount"), std::fs::read(&d1).expect("read on the server"));
    mysql(&my, &format!("DROP DATABASE {db}; DROP DATABASE {db}_r"));
}

#[test]
fn archived_and_compressed_snapshots_hold_the_dumps() {
    let my = mariadb();
    let db = unique("hs_dump_tar");
    mysql(
        &my,
        &format!(
            "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db};
             CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB;
             INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_20000;"
        ),
    );
    let t = Setup::mounted_without_destination(fixture::small_tree);
    t.daemon.add_destination(DEST, &t.dest, &[]);
    add_server(&t, "maria", "mysql", &my);
    t.daemon.add_job(JOB, &[&t.src], &[DEST], &["--database", &format!("maria:{db}"), "--structure", "archived"]);
    let member = format!(".hindsight/databases/maria/{db}.sql");
    let archived = t.daemon.backup(JOB);
    let tar = |args: &[&str]| {
        let out = Command::new("tar").args(args).output().expect("run tar");
        assert!(out.status.success(), "tar {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let from_tar = tar(&["-xOf", s(&archived.path.join("data.tar")), &member]);
    assert!(String::from_utf8_lossy(&from_tar).contains("CREATE TABLE `t`"), "the dump is a member of data.tar");
    assert!(from_tar.len() > 500_000);
    t.daemon.cli_ok(&["job", "edit", JOB, "--structure", "compressed"]);
    let compressed = t.daemon.backup(JOB);
    let from_tgz = tar(&["-xzOf", s(&compressed.path.join("data.tar.gz")), &member]);
    assert_eq!(from_tgz, from_tar, "an unchanged database dumps to the same bytes");
    for snap in [&archived, &compressed] {
        let names = crate::support::list_names(&snap.path);
        assert!(names.iter().all(|n| !n.starts_with(".dump")), "a spool was left in {names:?}");
        let mounted = t.mountpoint().join(DEST).join(JOB).join(&snap.name).join(&member);
        let read = wait_until("the dump in the mount", Duration::from_secs(30), || std::fs::read(&mounted).ok());
        assert_eq!(read, from_tar, "the mount serves the dump of {}", snap.name);
    }
    let check = t.daemon.cli(["destination", "check", DEST, "--read-data"]);
    assert!(check.success(), "{check}");
    mysql(&my, &format!("DROP DATABASE {db}"));
}

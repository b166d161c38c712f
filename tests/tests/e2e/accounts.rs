//! Accounts jobs against real system users, a real PostgreSQL and a real
//! MariaDB: one snapshot per user holding only that user's home, crontab,
//! mail spool and databases; priorities; orphans removed by `orphan_ttl`;
//! `account forget` removing everything of one account and nothing of the
//! other.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::database_dumps::{add_server, mysql};
use crate::databases::{psql, unique};
use crate::support::services::{mariadb, postgres};
use crate::support::{DEST, Setup, Snap, fixture, s, wait_until};

const ACCT: &str = "acct";

/// System users created for one test, deleted when it ends.
struct Users(Vec<String>);

impl Drop for Users {
    fn drop(&mut self) {
        for u in &self.0 {
            let _ = Command::new("userdel").arg(u).output();
        }
    }
}

/// Two consecutive uids no user has, from `base` on (each test its own
/// base: tests run at once); the job's uid range holds only them.
fn free_uids(base: u32) -> (u32, u32) {
    let taken =
        |uid: u32| Command::new("getent").args(["passwd", &uid.to_string()]).status().is_ok_and(|s| s.success());
    let start = base + (std::process::id() % 400) * 2;
    (start..base + 1000).step_by(2).find(|&u| !taken(u) && !taken(u + 1)).map(|u| (u, u + 1)).expect("two free uids")
}

/// Creates user `name` with `uid` and home `home` (made, theirs, 0700).
fn add_user(users: &mut Users, name: &str, uid: u32, home: &Path) {
    let out = Command::new("useradd")
        .args(["--uid", &uid.to_string(), "--no-create-home", "--home-dir", s(home), "--shell", "/usr/sbin/nologin"])
        .arg(name)
        .output()
        .expect("run useradd");
    assert!(out.status.success(), "useradd {name}: {}", String::from_utf8_lossy(&out.stderr));
    users.0.push(name.to_string());
    fixture::mkdir(home);
    fixture::own(home, uid, uid, 0o700);
}

/// The snapshots of `account`'s job directory, newest first.
fn snaps_of(t: &Setup, account: &str) -> Vec<Snap> {
    let dir = format!("{ACCT}@{account}");
    t.daemon.snapshots().into_iter().filter(|s| s.job == dir).collect()
}

/// Every file path (relative) under `root`.
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let p = e.expect("entry").path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).expect("under root").to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn outcomes_of(run: &Value) -> Vec<(String, String)> {
    run["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .map(|d| (d["account"].as_str().unwrap_or("").to_string(), d["state"].as_str().unwrap_or("").to_string()))
        .collect()
}

#[test]
fn each_account_gets_its_own_snapshots_orphans_expire_and_forget_removes_only_that_account() {
    let (pg, my) = (postgres(), mariadb());
    let tag = unique("x").trim_start_matches("x_").to_string();
    let (alice, bob) = (format!("hsa{tag}"), format!("hsb{tag}"));
    let (alice_db, shared_db, bob_db) = (format!("{alice}_db"), format!("hsd{tag}_shared"), format!("{bob}_shop"));

    let t = Setup::mounted(fixture::small_tree);
    let home = t.sb.dir("home");
    let (cron, mail) = (t.sb.dir("crontabs"), t.sb.dir("mail"));
    let mut users = Users(Vec::new());
    let (uid_a, uid_b) = free_uids(61_000);
    let (home_a, home_b) = (home.join(&alice), home.join(&bob));
    add_user(&mut users, &alice, uid_a, &home_a);
    add_user(&mut users, &bob, uid_b, &home_b);
    fixture::write(&home_a.join("notes.txt"), b"alice's notes\n");
    fixture::mkdir(&home_a.join("project"));
    fixture::write(&home_a.join("project/main.rs"), b"fn main() {}\n");
    fixture::write(&home_b.join("letter.txt"), b"bob's letter\n");
    for p in [&home_a.join("notes.txt"), &home_a.join("project"), &home_a.join("project/main.rs")] {
        fixture::chown(p, uid_a, uid_a);
    }
    fixture::chown(&home_b.join("letter.txt"), uid_b, uid_b);
    fixture::write(&cron.join(&alice), b"0 3 * * * /usr/bin/true # alice\n");
    fixture::own(&cron.join(&alice), uid_a, uid_a, 0o600);
    fixture::write(&mail.join(&bob), b"From someone\nSubject: hi bob\n");
    fixture::own(&mail.join(&bob), uid_b, uid_b, 0o660);
    // A crontab file for bob that is not his, a mail spool of alice's that
    // is a symlink to a secret: left out of their snapshots, and reported.
    fixture::write(&cron.join(&bob), b"* * * * * /tmp/not-bobs\n");
    fixture::symlink(b"/etc/shadow", &mail.join(&alice));

    // Databases: alice's by ownership, bob's by assignment, the shared one
    // (owned by the server's superuser) with the default account, bob.
    for db in [&alice_db, &shared_db] {
        psql(&pg, "postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    }
    psql(&pg, "postgres", &format!("DROP ROLE IF EXISTS {alice}"));
    psql(&pg, "postgres", &format!("CREATE ROLE {alice}"));
    psql(&pg, "postgres", &format!("CREATE DATABASE {alice_db} OWNER {alice}"));
    psql(&pg, &alice_db, "CREATE TABLE t (n int); INSERT INTO t VALUES (41), (42);");
    psql(&pg, "postgres", &format!("CREATE DATABASE {shared_db}"));
    psql(&pg, &shared_db, "CREATE TABLE shared_things (n int);");
    mysql(&my, &format!("DROP DATABASE IF EXISTS {bob_db}; CREATE DATABASE {bob_db}"));
    mysql(&my, &format!("CREATE TABLE {bob_db}.orders (id int PRIMARY KEY); INSERT INTO {bob_db}.orders VALUES (7)"));
    add_server(&t, "pg", "postgresql", &pg);
    add_server(&t, "maria", "mysql", &my);

    let set = |k: &str, v: &str| t.daemon.cli_ok(&["settings", "set", k, v]);
    set("accounts_min_uid", &uid_a.to_string());
    set("accounts_max_uid", &uid_b.to_string());
    set("accounts_crontab_dir", s(&cron));
    set("accounts_mail_dir", s(&mail));
    set("default_database_account", &bob);

    // Bad input first: sources, an unknown user name shape, accounts on a directories job.
    t.daemon
        .cli(["job", "add", "bad", "--type", "accounts", "--destination", DEST, "--source", s(&t.src)])
        .assert_error_code(1, &["takes no sources"]);
    t.daemon
        .cli(["job", "add", "bad", "--type", "accounts", "--destination", DEST, "--account", "../etc"])
        .assert_error(&["invalid account name"]);
    t.daemon
        .cli(["job", "add", "bad", "--destination", DEST, "--source", s(&t.src), "--account", &alice])
        .assert_error(&["type accounts"]);
    t.daemon.cli(["database", "assign", &format!("nope:{bob_db}"), &bob]).assert_error_code(5, &["nope"]);

    t.daemon.cli_ok(&["database", "assign", &format!("maria:{bob_db}"), &bob]);
    let assigned = t.daemon.cli_ok(&["database", "assignments"]);
    assert!(assigned.stdout.contains(&bob_db) && assigned.stdout.contains(&bob), "{assigned}");
    let dbs = format!("pg:{alice_db},{shared_db}");
    let maria = format!("maria:{bob_db}");
    t.daemon.cli_json(&[
        "job",
        "add",
        ACCT,
        "--type",
        "accounts",
        "--destination",
        DEST,
        "--database",
        &dbs,
        "--database",
        &maria,
    ]);
    let shown = t.daemon.cli_ok(&["job", "show", ACCT]);
    assert!(shown.stdout.contains("every user in the uid range"), "{shown}");

    // Run 1: a snapshot per account, each with only that account's things.
    let run1 = t.daemon.run_wait(ACCT).1;
    assert_eq!(run1["state"], "partial", "bob's crontab is not his: {run1:#}");
    let errors = run1["errors"].to_string();
    assert!(errors.contains("not by the account") && errors.contains(&bob), "{errors}");
    assert!(errors.contains("not a regular file") && errors.contains(&alice), "{errors}");
    assert!(!run1["message"].to_string().contains(&alice), "the run's message names no account: {run1:#}");
    let (a1, b1) = (snaps_of(&t, &alice), snaps_of(&t, &bob));
    assert_eq!((a1.len(), b1.len()), (1, 1), "one snapshot per account");
    let (a1, b1) = (&a1[0], &b1[0]);
    let a_files = files(&a1.path.join("tree"));
    let home_a_rel = s(&home_a).trim_start_matches('/');
    let home_b_rel = s(&home_b).trim_start_matches('/');
    let want_a = [
        format!(".hindsight/databases/pg/{alice_db}.pgdump"),
        format!("{}/{alice}", s(&cron).trim_start_matches('/')),
        format!("{home_a_rel}/notes.txt"),
        format!("{home_a_rel}/project/main.rs"),
    ];
    assert_eq!(a_files, want_a, "alice's snapshot holds her home, crontab and database only");
    assert_eq!(std::fs::read(a1.tree(&home_a).join("notes.txt")).expect("notes"), b"alice's notes\n");
    let b_files = files(&b1.path.join("tree"));
    let want_b = [
        format!(".hindsight/databases/maria/{bob_db}.sql"),
        ".hindsight/databases/pg/globals.sql".to_string(),
        format!(".hindsight/databases/pg/{shared_db}.pgdump"),
        format!("{home_b_rel}/letter.txt"),
        format!("{}/{bob}", s(&mail).trim_start_matches('/')),
    ];
    assert_eq!(b_files, want_b, "bob's snapshot holds his home, mail, assigned and default databases");
    let sql =
        std::fs::read_to_string(b1.path.join(format!("tree/.hindsight/databases/maria/{bob_db}.sql"))).expect("dump");
    assert!(sql.contains("CREATE TABLE `orders`") && sql.contains("(7)"), "{sql}");
    // `snapshot list --job` of the accounts job lists every account's; of `JOB@USER`, that account's.
    let of_job = |job: &str| -> Vec<String> {
        let v = t.daemon.cli_json(&["snapshot", "list", "--job", job]);
        let mut jobs: Vec<String> =
            v.as_array().expect("array").iter().map(|s| s["job"].as_str().unwrap_or("").to_string()).collect();
        jobs.sort();
        jobs
    };
    assert_eq!(of_job(ACCT), [format!("{ACCT}@{alice}"), format!("{ACCT}@{bob}")]);
    assert_eq!(of_job(&format!("{ACCT}@{bob}")), [format!("{ACCT}@{bob}")]);
    assert!(of_job("acc").is_empty(), "a prefix of a job name is not that job");
    // The mount shows each account as a job directory with its `latest`.
    let latest = t.mountpoint().join(DEST).join(format!("{ACCT}@{alice}/latest"));
    assert_eq!(
        std::fs::read(latest.join(home_a_rel).join("project/main.rs")).expect("via the mount"),
        b"fn main() {}\n"
    );
    let acct_alert = t.daemon.cli_json(&["alert", "list"]).to_string();
    for who in [&alice, &bob] {
        assert!(
            acct_alert.contains(&format!("{ACCT}@{who}")),
            "a partial snapshot raises an alert about it: {acct_alert}"
        );
    }

    // Priorities: bob first once his is lower.
    fixture::own(&cron.join(&bob), uid_b, uid_b, 0o600);
    std::fs::remove_file(mail.join(&alice)).expect("remove the symlink");
    t.daemon.cli_ok(&["priority-group", "add", "first", "--priority", "10"]);
    t.daemon.cli_ok(&["priority-group", "add", "usual", "--priority", "40"]);
    set("default_priority_group", "usual");
    t.daemon.cli(["account", "edit", &bob, "--priority-group", "nope"]).assert_error_code(5, &["nope"]);
    t.daemon.cli_ok(&["account", "edit", &bob, "--priority-group", "first"]);
    t.daemon.cli(["priority-group", "remove", "first"]).assert_error_code(6, &["first"]);
    t.daemon.cli(["priority-group", "remove", "usual"]).assert_error_code(6, &["default_priority_group"]);
    let run2 = t.daemon.run_job_wait(ACCT);
    let order: Vec<String> = outcomes_of(&run2).into_iter().map(|(a, _)| a).collect();
    assert_eq!(order, [bob.clone(), alice.clone()], "{run2:#}");
    // Unchanged: alice's dump is the same file as in her first snapshot.
    let a2 = &snaps_of(&t, &alice)[0];
    let ino = |p: PathBuf| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).expect("dump"));
    let dump = format!("tree/.hindsight/databases/pg/{alice_db}.pgdump");
    assert_eq!(ino(a1.path.join(&dump)), ino(a2.path.join(&dump)), "an unchanged dump is linked");

    // Alice leaves. Her first snapshot is made 3 days old; orphan_ttl 1 day.
    let manifest_path = a1.path.join("snapshot.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).expect("manifest")).expect("JSON");
    let old = Command::new("date").args(["-u", "-d", "3 days ago", "+%Y-%m-%dT%H:%M:%SZ"]).output().expect("date");
    let old = String::from_utf8_lossy(&old.stdout).trim().to_string();
    manifest["started"] = old.clone().into();
    manifest["finished"] = old.into();
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).expect("JSON")).expect("write the manifest");
    t.daemon.cli_ok(&["destination", "reindex", DEST]);
    set("orphan_ttl", "1");
    let out = Command::new("userdel").arg(&alice).output().expect("userdel");
    assert!(out.status.success(), "userdel: {}", String::from_utf8_lossy(&out.stderr));
    let run3 = t.daemon.run_job_wait(ACCT);
    assert_eq!(outcomes_of(&run3), [(bob.clone(), "completed".to_string())], "{run3:#}");
    let left = snaps_of(&t, &alice);
    assert_eq!(left.len(), 1, "orphan_ttl deleted alice's old snapshot and kept the recent one");
    assert_eq!(left[0].name, a2.name);
    assert_eq!(snaps_of(&t, &bob).len(), 3, "bob's snapshots are all kept");
    let listed = t.daemon.cli_json(&["account", "list"]);
    let entry = |name: &str| -> Value {
        listed.as_array().expect("array").iter().find(|a| a["name"] == name).cloned().unwrap_or_default()
    };
    assert_eq!((entry(&alice)["exists"].clone(), entry(&alice)["snapshots"].clone()), (false.into(), 1.into()));
    assert_eq!((entry(&bob)["exists"].clone(), entry(&bob)["priority"].clone()), (true.into(), 10.into()));
    assert_eq!(entry(&bob)["priority_group"], "first");
    assert_eq!(entry(&alice)["priority"], 40, "an account in no group has the default group's priority");

    // Forgetting: refused for a user that exists; for alice, everything goes.
    t.daemon.cli(["account", "forget", &bob]).assert_error_code(6, &["still exists"]);
    let report = t.daemon.cli_json(&["account", "forget", &alice]);
    assert_eq!(report["snapshots"].as_array().map(Vec::len), Some(1), "{report:#}");
    assert!(report["runs"].as_u64().unwrap_or(0) >= 2, "{report:#}");
    let everything = [
        t.daemon.cli_json(&["snapshot", "list"]),
        t.daemon.cli_json(&["run", "list"]),
        t.daemon.cli_json(&["alert", "list", "--all"]),
        t.daemon.cli_json(&["account", "list"]),
        t.daemon.run_show(run1["id"].as_i64().expect("id")),
        t.daemon.run_show(run2["id"].as_i64().expect("id")),
    ];
    for v in &everything {
        assert!(!v.to_string().contains(&alice), "a record still names the forgotten account: {v:#}");
    }
    wait_until("alice's directory gone from the destination", std::time::Duration::from_secs(30), || {
        (!t.dest.join(format!("{ACCT}@{alice}")).exists()).then_some(())
    });
    assert_eq!(snaps_of(&t, &bob).len(), 3, "forgetting alice left bob's snapshots alone");
    let bob_alerts = t.daemon.cli_json(&["alert", "list", "--all"]).to_string();
    assert!(bob_alerts.contains(&format!("{ACCT}@{bob}")), "bob's alert is kept: {bob_alerts}");
    let b_now = &snaps_of(&t, &bob)[0];
    assert_eq!(std::fs::read(b_now.tree(&home_b).join("letter.txt")).expect("letter"), b"bob's letter\n");

    psql(&pg, "postgres", &format!("DROP DATABASE IF EXISTS {alice_db}"));
    psql(&pg, "postgres", &format!("DROP DATABASE IF EXISTS {shared_db}"));
    psql(&pg, "postgres", &format!("DROP ROLE IF EXISTS {alice}"));
    mysql(&my, &format!("DROP DATABASE IF EXISTS {bob_db}"));
}

#[test]
fn forget_ttl_forgets_an_account_gone_for_that_long() {
    let t = Setup::without_job(fixture::small_tree);
    let tag = unique("x").trim_start_matches("x_").to_string();
    let carol = format!("hsc{tag}");
    let mut users = Users(Vec::new());
    let (uid, _) = free_uids(63_000);
    let home = t.sb.dir("home").join(&carol);
    add_user(&mut users, &carol, uid, &home);
    fixture::write(&home.join("c.txt"), b"carol\n");
    t.daemon.cli_ok(&["settings", "set", "accounts_min_uid", &uid.to_string()]);
    t.daemon.cli_ok(&["settings", "set", "accounts_max_uid", &uid.to_string()]);
    t.daemon.cli_json(&["job", "add", ACCT, "--type", "accounts", "--destination", DEST]);
    t.daemon.run_job_wait(ACCT);
    assert_eq!(snaps_of(&t, &carol).len(), 1);

    // Gone: the next run's sweep notes since when; 30 days is not reached yet.
    t.daemon.cli_ok(&["settings", "set", "forget_ttl", "30"]);
    let out = Command::new("userdel").arg(&carol).output().expect("userdel");
    assert!(out.status.success());
    t.daemon.run_job_wait(ACCT);
    assert_eq!(snaps_of(&t, &carol).len(), 1, "forget_ttl counts from when the user was seen gone");
    let shown = t.daemon.cli_json(&["account", "show", &carol]);
    assert!(shown["gone_since"].is_string() && shown["exists"] == false, "{shown:#}");

    // Gone since long ago: the next sweep forgets everything of it.
    let catalog = t.daemon.opts().state_dir.join("catalog.sqlite");
    let sql = format!("UPDATE accounts SET gone_since='2000-01-01T00:00:00Z' WHERE name='{carol}'");
    let aged = Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()"])
        .arg(&catalog)
        .arg(&sql)
        .output()
        .expect("python3");
    assert!(aged.status.success(), "{}", String::from_utf8_lossy(&aged.stderr));
    t.daemon.run_job_wait(ACCT);
    assert!(snaps_of(&t, &carol).is_empty(), "forget_ttl deleted the snapshots");
    let accounts = t.daemon.cli_json(&["account", "list"]).to_string();
    assert!(!accounts.contains(&carol), "{accounts}");
    wait_until("carol's directory gone", std::time::Duration::from_secs(30), || {
        (!t.dest.join(format!("{ACCT}@{carol}")).exists()).then_some(())
    });
}

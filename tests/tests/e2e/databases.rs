//! Database servers as settings: `database add|list|show|edit|remove|test`
//! against a real PostgreSQL and a real MariaDB on loopback.

use std::process::Command;

use crate::support::services::{DbEnv, mariadb, postgres};
use crate::support::{Daemon, Sandbox, fixture, s};

/// A name unique to this test process.
pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", std::process::id())
}

pub(crate) fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run the database client");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

pub(crate) fn password_file(sb: &Sandbox, name: &str, password: &str) -> String {
    let p = sb.path().join(name);
    fixture::write(&p, format!("{password}\n").as_bytes());
    s(&p).to_string()
}

/// A psql on the test server as its superuser; the output, trimmed.
pub(crate) fn psql(pg: &DbEnv, db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .env("PGPASSWORD", &pg.password)
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", &pg.host, "-p", &pg.port.to_string()])
        .args(["-U", &pg.user, "-d", db, "-c", sql])
        .output()
        .expect("run psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `database test NAME --json` that must succeed: the databases by name.
fn listed(daemon: &Daemon, name: &str) -> (String, serde_json::Value) {
    let t = daemon.cli_json(&["database", "test", name]);
    (t["version"].as_str().unwrap_or_default().to_string(), t["databases"].clone())
}

fn find<'a>(dbs: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    dbs.as_array()
        .and_then(|a| a.iter().find(|d| d["name"] == name))
        .unwrap_or_else(|| panic!("{name} is not listed: {dbs:#}"))
}

/// Asserts the password is nowhere the agent shows or logs, and no credentials file is left.
fn assert_secret_kept(sb: &Sandbox, daemon: &Daemon, name: &str, password: &str) {
    let shown = daemon.cli_json(&["database", "show", name]);
    assert_eq!(shown["password"], "********", "{shown:#}");
    assert!(!daemon.log().contains(password), "the password is in the agent's log");
    let tmp = sb.path().join("state").join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp).into_iter().flatten().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "credentials files left behind: {left:?}");
}

#[test]
fn postgresql_servers_are_tested_with_their_databases_and_a_wrong_password_is_named() {
    let pg: DbEnv = postgres();
    let db = unique("hs_pgtest");
    let psql = |sql: &str, database: &str| {
        psql(&pg, database, sql);
    };
    psql(&format!("DROP DATABASE IF EXISTS {db}"), "postgres");
    psql(&format!("CREATE DATABASE {db}"), "postgres");
    psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g", &db);

    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let pw = password_file(&sb, "pg-password", &pg.password);
    let port = pg.port.to_string();
    daemon.cli_json(&[
        "database",
        "add",
        "pg",
        "--engine",
        "postgresql",
        "--host",
        &pg.host,
        "--port",
        &port,
        "--user",
        &pg.user,
        "--password-file",
        &pw,
    ]);
    let (version, dbs) = listed(&daemon, "pg");
    assert!(version.starts_with("15"), "{version}");
    let mine = find(&dbs, &db);
    assert!(mine["size"].as_u64() > Some(1_000_000) && mine["system"] == false, "{mine:#}");
    assert_eq!(find(&dbs, "postgres")["system"], true);
    let human = daemon.cli_ok(&["database", "test", "pg"]);
    assert!(human.stdout.contains(&db) && human.stdout.contains("connected to pg: version 15"), "{human}");

    // Through the Unix socket, as the same user.
    daemon.cli_json(&[
        "database",
        "add",
        "pgsock",
        "--engine",
        "postgresql",
        "--unix-socket",
        &pg.socket,
        "--port",
        &port,
        "--user",
        &pg.user,
    ]);
    find(&listed(&daemon, "pgsock").1, &db);

    let wrong = password_file(&sb, "wrong", "not-the-password");
    daemon.cli_json(&["database", "edit", "pg", "--password-file", &wrong]);
    daemon
        .cli(["database", "test", "pg"])
        .assert_error_code(7, &["database server pg", "password authentication failed"]);
    assert_secret_kept(&sb, &daemon, "pg", &pg.password);

    // Nothing listens on that port: the client's own words say so.
    let free =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a port");
    daemon.cli_json(&[
        "database",
        "add",
        "down",
        "--engine",
        "postgresql",
        "--host",
        "127.0.0.1",
        "--port",
        &free.to_string(),
    ]);
    daemon.cli(["database", "test", "down"]).assert_error(&["database server down", "psql", "refused"]);
    psql(&format!("DROP DATABASE {db}"), "postgres");
}

#[test]
fn mariadb_servers_are_tested_over_tcp_and_the_socket() {
    let my: DbEnv = mariadb();
    let db = unique("hs_mytest");
    let sql = |q: &str| {
        let mut c = Command::new("mysql");
        c.args(["--no-defaults", &format!("--socket={}", my.socket), "-uroot", "-e", q]);
        run(&mut c);
    };
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(40)); USE {db}; INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_5000"
    ));

    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let pw = password_file(&sb, "my-password", &my.password);
    let port = my.port.to_string();
    daemon.cli_json(&[
        "database",
        "add",
        "maria",
        "--engine",
        "mysql",
        "--host",
        &my.host,
        "--port",
        &port,
        "--user",
        &my.user,
        "--password-file",
        &pw,
    ]);
    let (version, dbs) = listed(&daemon, "maria");
    assert!(version.contains("MariaDB"), "{version}");
    assert!(find(&dbs, &db)["size"].as_u64() > Some(0));
    assert_eq!(
        (find(&dbs, "mysql")["system"].as_bool(), find(&dbs, &db)["system"].as_bool()),
        (Some(true), Some(false))
    );
    daemon.cli_json(&[
        "database",
        "add",
        "mariasock",
        "--engine",
        "mysql",
        "--unix-socket",
        &my.socket,
        "--user",
        &my.user,
        "--password-file",
        &pw,
    ]);
    find(&listed(&daemon, "mariasock").1, &db);

    let wrong = password_file(&sb, "wrong", "not-the-password");
    daemon.cli_json(&["database", "edit", "maria", "--password-file", &wrong]);
    daemon.cli(["database", "test", "maria"]).assert_error_code(7, &["database server maria", "access denied"]);
    assert_secret_kept(&sb, &daemon, "maria", &my.password);
    let listed = daemon.cli_ok(&["database", "list"]);
    assert!(listed.stdout.contains("maria") && listed.stdout.contains(&format!("{}:{port}", my.host)), "{listed}");
    daemon.cli_ok(&["database", "remove", "mariasock"]);
    daemon.cli(["database", "show", "mariasock"]).assert_error_code(5, &["no database server named mariasock"]);
    sql(&format!("DROP DATABASE {db}"));
}

#[test]
fn bad_database_servers_are_refused_with_the_reason() {
    let sb = Sandbox::new();
    let daemon = Daemon::start(sb.daemon_opts());
    let add = |args: &[&str]| {
        let mut all = vec!["database", "add", "x"];
        all.extend_from_slice(args);
        daemon.cli(all)
    };
    add(&["--engine", "oracle"]).assert_error(&["database engine", "oracle"]);
    add(&["--engine", "mysql", "--host", "127.0.0.1", "--unix-socket", "/run/mysqld/mysqld.sock"])
        .assert_error(&["not both"]);
    add(&["--engine", "mysql", "--unix-socket", "relative.sock"]).assert_error(&["socket", "absolute"]);
    add(&["--engine", "mysql", "--tls", "maybe"]).assert_error(&["database tls", "maybe"]);
    let two_lines = sb.path().join("two-lines");
    fixture::write(&two_lines, b"pass\nhost=evil\n");
    add(&["--engine", "mysql", "--password-file", s(&two_lines)]).assert_error(&["password", "line break"]);
    daemon.cli_json(&["database", "add", "mongo", "--engine", "mongodb", "--host", "127.0.0.1"]);
    daemon.cli(["database", "add", "mongo", "--engine", "mongodb"]).assert_error_code(6, &["already exists"]);
    // MongoDB's tools are not installed here: the missing program is named.
    daemon.cli(["database", "test", "mongo"]).assert_error(&["database server mongo", "mongosh was not found"]);
    // Where a client is, is a setting: an absolute path only root can change.
    daemon.cli(["settings", "set", "bin_mongosh", "mongosh"]).assert_error(&["bin_mongosh", "absolute"]);
    daemon.cli_ok(&["settings", "set", "bin_mongosh", "/bin/false"]);
    daemon.cli(["database", "test", "mongo"]).assert_error(&["database server mongo", "exit status 1"]);
}

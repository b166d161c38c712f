//! What a run dumps: the databases of each server a job names, chosen by its
//! lists, globs and size limit, each with the command that dumps it
//! consistently while the server runs (`mysqldump --single-transaction`,
//! `pg_dump -Fc` and `pg_dumpall --globals-only`, `mongodump --archive`).
//!
//! A dump is stored at `/.hindsight/databases/<server>/<file>`: the
//! database's name (`/` and `%` written `%2F` and `%25`) with `.sql`
//! (MariaDB/MySQL), `.pgdump` (PostgreSQL's custom format) or `.archive`
//! (MongoDB); PostgreSQL's roles and tablespaces in `globals.sql`.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use hindsight_api::{DatabaseInfo, DatabaseServer, DbEngine, DbTls, JobDatabases, Settings};

use super::client::{self, libpq, my_cnf, pgpass};
use super::credentials::Credentials;
use crate::backup::{DATABASES_DIR, DumpSource, HINDSIGHT_DIR, Normalize};
use crate::error::AgentError;
use crate::secrets::MasterKey;

/// Which of a server's databases a job leaves out.
pub(crate) struct DatabaseFilter {
    exclude: GlobSet,
    larger_than: Option<u64>,
}

impl DatabaseFilter {
    /// The job's globs (`*`, `?`, `[...]` on whole names) and size limit.
    pub(crate) fn new(d: &JobDatabases) -> Result<Self, String> {
        let mut b = GlobSetBuilder::new();
        for g in &d.exclude {
            b.add(Glob::new(g).map_err(|e| format!("database exclude {g:?}: {e}"))?);
        }
        let exclude = b.build().map_err(|e| format!("database excludes: {e}"))?;
        Ok(DatabaseFilter { exclude, larger_than: d.exclude_larger_than.filter(|n| *n > 0) })
    }

    /// Why `db` is left out, if it is.
    fn leaves_out(&self, db: &DatabaseInfo) -> Option<String> {
        if self.exclude.is_match(&db.name) {
            return Some("excluded by name".into());
        }
        match self.larger_than {
            Some(max) if db.size > max => Some(format!("{} bytes, over the limit of {max}", db.size)),
            _ => None,
        }
    }
}

/// A run's dumps, and what could not be planned (`(path, why)`).
#[derive(Default)]
pub(crate) struct Plan {
    pub dumps: Vec<DumpSource>,
    pub problems: Vec<(Vec<u8>, String)>,
}

/// Lists each server's databases and plans their dumps; `servers` as stored
/// (passwords sealed). Servers that cannot be reached become problems: the
/// run goes on with the others and is partial.
pub(crate) fn plan(
    job: &JobDatabases,
    servers: &[DatabaseServer],
    key: &MasterKey,
    state_dir: &Path,
    settings: &Settings,
) -> Plan {
    let mut plan = Plan::default();
    for l in list(job, servers, key, state_dir, settings, &mut plan.problems) {
        let chosen: Vec<&DatabaseInfo> = l.chosen.iter().collect();
        match commands(&l.server, &chosen, state_dir, settings, key, !chosen.is_empty()) {
            Ok(dumps) => plan.dumps.extend(dumps),
            Err(e) => plan.problems.push(problem(&l.server.name, e.message)),
        }
    }
    plan
}

/// How an accounts job splits databases between its accounts.
pub(crate) struct AccountSplit<'a, F> {
    /// The accounts of the run.
    pub accounts: &'a [String],
    /// The account of a database (`(server, database)`), if any.
    pub account_of: F,
    /// The account that gets PostgreSQL's roles (the default account).
    pub globals_to: Option<&'a str>,
}

/// The dumps of an accounts job, per account: each database goes with the
/// account `account_of` names (`(server, database)`), and only accounts in
/// `accounts` get any. PostgreSQL's roles (`globals.sql`, which holds every
/// role's password hash) go only with `globals_to`, the default account.
/// What could not be listed is a problem of every account.
pub(crate) fn plan_accounts(
    job: &JobDatabases,
    servers: &[DatabaseServer],
    key: &MasterKey,
    state_dir: &Path,
    settings: &Settings,
    split: &AccountSplit<'_, impl Fn(&str, &DatabaseInfo) -> Option<String>>,
) -> std::collections::HashMap<String, Plan> {
    let AccountSplit { accounts, account_of, globals_to } = split;
    let mut problems = Vec::new();
    let listed = list(job, servers, key, state_dir, settings, &mut problems);
    let mut out: std::collections::HashMap<String, Plan> =
        accounts.iter().map(|a| (a.clone(), Plan { dumps: Vec::new(), problems: problems.clone() })).collect();
    for l in &listed {
        for (account, plan) in out.iter_mut() {
            let mine: Vec<&DatabaseInfo> =
                l.chosen.iter().filter(|d| account_of(&l.server.name, d).as_deref() == Some(account)).collect();
            let globals = *globals_to == Some(account.as_str());
            if mine.is_empty() && !globals {
                continue;
            }
            match commands(&l.server, &mine, state_dir, settings, key, globals) {
                Ok(dumps) => plan.dumps.extend(dumps),
                Err(e) => plan.problems.push(problem(&l.server.name, e.message)),
            }
        }
    }
    out
}

/// One server a job dumps, opened, with the databases it chose.
struct Listed {
    server: DatabaseServer,
    chosen: Vec<DatabaseInfo>,
}

/// `why` about server `name`, at its directory in the snapshot.
fn problem(name: &str, why: String) -> (Vec<u8>, String) {
    (dir_of(name), format!("database server {name}: {why}"))
}

/// Lists each server's databases and chooses those the job dumps; what
/// cannot be listed or chosen goes to `problems`.
fn list(
    job: &JobDatabases,
    servers: &[DatabaseServer],
    key: &MasterKey,
    state_dir: &Path,
    settings: &Settings,
    problems: &mut Vec<(Vec<u8>, String)>,
) -> Vec<Listed> {
    let filter = match DatabaseFilter::new(job) {
        Ok(f) => f,
        Err(e) => {
            problems.push((dir_of(""), e));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for sel in &job.servers {
        let Some(stored) = servers.iter().find(|s| s.name == sel.server) else {
            problems.push(problem(&sel.server, "no longer exists".into()));
            continue;
        };
        let server = match super::open(key, stored) {
            Ok(s) => s,
            Err(e) => {
                problems.push(problem(&sel.server, format!("cannot open its password: {e}")));
                continue;
            }
        };
        let listed = match client::test(&server, state_dir, settings) {
            Ok(t) => t.databases,
            Err(e) => {
                problems.push((dir_of(&sel.server), e.message));
                continue;
            }
        };
        let mut chosen = Vec::new();
        if sel.databases.is_empty() {
            chosen.extend(listed.iter().filter(|d| !d.system).cloned());
        }
        for name in &sel.databases {
            match listed.iter().find(|d| &d.name == name) {
                Some(d) => chosen.push(d.clone()),
                None => problems.push(problem(&sel.server, format!("has no database named {name:?}"))),
            }
        }
        chosen.retain(|d| match filter.leaves_out(d) {
            Some(why) => {
                tracing::info!("database {} on server {} left out: {why}", d.name, sel.server);
                false
            }
            None => true,
        });
        out.push(Listed { server, chosen });
    }
    out
}

/// `/.hindsight/databases/<server>` (or the databases directory itself).
fn dir_of(server: &str) -> Vec<u8> {
    let mut p = [b"/", HINDSIGHT_DIR, b"/", DATABASES_DIR].concat();
    if !server.is_empty() {
        p.push(b'/');
        p.extend_from_slice(server.as_bytes());
    }
    p
}

/// A database's name as a file name: `%` and `/` escaped, `.` and `..` too.
pub(crate) fn file_name(db: &str, ext: &str) -> Vec<u8> {
    let mut out = String::new();
    for c in db.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    if out == "." || out == ".." {
        out = out.replace('.', "%2E");
    }
    out.push_str(ext);
    out.into_bytes()
}

/// The dump commands of `dbs` on `server`, sharing one credentials file;
/// with `globals`, PostgreSQL's roles and tablespaces too.
fn commands(
    server: &DatabaseServer,
    dbs: &[&DatabaseInfo],
    state_dir: &Path,
    settings: &Settings,
    key: &MasterKey,
    globals: bool,
) -> Result<Vec<DumpSource>, AgentError> {
    let program = |name: &str| crate::settings::program_of(settings, name);
    let source = |db: &str, file: Vec<u8>, program: String, keep: &Arc<Credentials>| DumpSource {
        server: server.name.clone(),
        file,
        what: format!("database {db} on server {}", server.name),
        program,
        args: Vec::new(),
        env: Vec::new(),
        normalize: Normalize::None,
        keep: keep.clone(),
    };
    let mut out = Vec::new();
    match server.engine {
        DbEngine::Postgresql => {
            let keep = Arc::new(pgpass(server, state_dir)?);
            let env = libpq_env(server, &keep);
            for db in dbs {
                let mut d = source(&db.name, file_name(&db.name, ".pgdump"), program("pg_dump"), &keep);
                d.args = os(&["--format=custom", "--no-password"]);
                d.env = env.clone();
                // The name from the environment is never read as connection settings.
                d.env.push(("PGDATABASE".into(), db.name.clone().into()));
                d.normalize = Normalize::PgCustom;
                out.push(d);
            }
            if globals {
                let mut g = source("roles and tablespaces", b"globals.sql".to_vec(), program("pg_dumpall"), &keep);
                g.what = format!("roles and tablespaces of server {}", server.name);
                g.args = os(&["--globals-only", "--no-password"]);
                g.args.extend(restrict_key(&g.program, key, &server.name));
                g.env = env;
                out.push(g);
            }
        }
        DbEngine::Mysql => {
            let keep = Arc::new(my_cnf(server, state_dir)?);
            for db in dbs {
                let mut d = source(&db.name, file_name(&db.name, ".sql"), program("mysqldump"), &keep);
                d.args = mysqldump_args(keep.path(), settings, &db.name);
                out.push(d);
            }
        }
        DbEngine::Mongodb => {
            let keep = Arc::new(Credentials::write(state_dir, &mongo_config(server))?);
            for db in dbs {
                let mut d = source(&db.name, file_name(&db.name, ".archive"), program("mongodump"), &keep);
                d.args = mongodump_args(server, keep.path(), &db.name);
                out.push(d);
            }
        }
    }
    Ok(out)
}

/// `--restrict-key=KEY` where the tool knows it (PostgreSQL 13.22, 14.19,
/// 15.14, 16.10, 17.6 and later): plain dumps are wrapped in psql's
/// `\restrict KEY`, which a random key would make differ at every run. The
/// key is the same for a server, derived from the master key: the database
/// server never learns it, so data it serves cannot end the restriction.
fn restrict_key(program: &str, key: &MasterKey, server: &str) -> Option<OsString> {
    let mut help = crate::process::clean_command(program);
    help.arg("--help");
    let help = crate::process::run(help, std::time::Duration::from_secs(10), 64 << 10);
    let knows = String::from_utf8_lossy(&help.stdout).contains("--restrict-key");
    knows.then(|| format!("--restrict-key={}", key.derive_hex(&format!("pg restrict key {server}"))).into())
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// libpq's environment for `server`, as [`libpq`] sets it on a command.
fn libpq_env(server: &DatabaseServer, passfile: &Credentials) -> Vec<(OsString, OsString)> {
    let mut cmd = std::process::Command::new("pg_dump");
    libpq(&mut cmd, server, passfile);
    cmd.get_envs().filter_map(|(k, v)| Some((k.to_os_string(), v?.to_os_string()))).collect()
}

/// mysqldump's arguments: one consistent transaction, routines, triggers
/// and events, no date (an unchanged database dumps to the same bytes), the
/// flags of the settings.
pub(crate) fn mysqldump_args(cnf: &Path, settings: &Settings, db: &str) -> Vec<OsString> {
    // --defaults-extra-file must come first.
    let mut a = vec![OsString::from(format!("--defaults-extra-file={}", cnf.display()))];
    a.extend(os(&["--single-transaction", "--routines", "--triggers", "--events", "--skip-dump-date"]));
    a.push(if settings.mysqldump_opt == 0 { "--skip-opt" } else { "--opt" }.into());
    if settings.mysqldump_skip_lock_tables != 0 {
        a.push("--skip-lock-tables".into());
    }
    if settings.mysqldump_force != 0 {
        a.push("--force".into());
    }
    if settings.mysqldump_max_allowed_packet > 0 {
        a.push(format!("--max-allowed-packet={}M", settings.mysqldump_max_allowed_packet).into());
    }
    // After `--`, a name starting with `-` is a name.
    a.push("--".into());
    a.push(db.into());
    a
}

/// mongodump's configuration file: the password (never on its command line).
pub(crate) fn mongo_config(server: &DatabaseServer) -> String {
    match &server.password {
        Some(p) => format!("password: {}\n", serde_json::to_string(p).unwrap_or_else(|_| "\"\"".into())),
        None => String::new(),
    }
}

/// mongodump's arguments: one database as an archive on stdout.
pub(crate) fn mongodump_args(server: &DatabaseServer, config: &Path, db: &str) -> Vec<OsString> {
    let mut a = mongo_connection(server, config);
    a.push(format!("--db={db}").into());
    a.push("--archive".into());
    a
}

/// How mongodump and mongorestore reach `server` (the password in `config`).
pub(crate) fn mongo_connection(server: &DatabaseServer, config: &Path) -> Vec<OsString> {
    let host = server.host.as_deref().unwrap_or("127.0.0.1");
    let port = server.port.unwrap_or(27017);
    let mut a = vec![OsString::from(format!("--host={host}")), format!("--port={port}").into()];
    if let Some(u) = &server.user {
        a.push(format!("--username={u}").into());
        a.push("--authenticationDatabase=admin".into());
        a.push(format!("--config={}", config.display()).into());
    }
    match server.tls {
        DbTls::Disable | DbTls::Prefer => {}
        DbTls::Require => a.extend(os(&["--ssl", "--sslAllowInvalidCertificates"])),
        DbTls::Verify => a.push("--ssl".into()),
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_become_safe_file_names() {
        assert_eq!(file_name("shop", ".sql"), b"shop.sql");
        assert_eq!(file_name("a/b%c", ".pgdump"), b"a%2Fb%25c.pgdump");
        assert_eq!(file_name("..", ".sql"), b"%2E%2E.sql");
        assert_eq!(file_name("-x", ".sql"), b"-x.sql");
    }

    #[test]
    fn filters_leave_out_by_glob_and_size() {
        let d = JobDatabases { servers: Vec::new(), exclude: vec!["test_*".into()], exclude_larger_than: Some(100) };
        let f = DatabaseFilter::new(&d).unwrap_or_else(|e| panic!("{e}"));
        let info = |name: &str, size| DatabaseInfo { name: name.into(), size, system: false, owner: None };
        assert!(f.leaves_out(&info("test_a", 1)).is_some());
        assert!(f.leaves_out(&info("big", 101)).is_some_and(|w| w.contains("over the limit")));
        assert!(f.leaves_out(&info("shop", 100)).is_none());
        let bad = JobDatabases { exclude: vec!["[".into()], ..d };
        assert!(DatabaseFilter::new(&bad).is_err());
    }

    #[test]
    fn dump_commands_hold_no_password_and_end_options_before_the_name() {
        let settings = crate::settings::from_stored(&Default::default());
        let a = mysqldump_args(Path::new("/s/tmp/db-1"), &settings, "-shop");
        let a: Vec<String> = a.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert_eq!(a[0], "--defaults-extra-file=/s/tmp/db-1");
        assert!(a.contains(&"--single-transaction".into()) && a.contains(&"--skip-dump-date".into()));
        assert_eq!(&a[a.len() - 2..], ["--", "-shop"]);
        let server = DatabaseServer {
            name: "m".into(),
            engine: DbEngine::Mongodb,
            host: Some("127.0.0.1".into()),
            port: Some(27018),
            socket: None,
            user: Some("backup".into()),
            password: Some("p\"w".into()),
            tls: DbTls::Require,
        };
        let m: Vec<String> =
            mongodump_args(&server, Path::new("/c"), "app").iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert!(m.iter().all(|x| !x.contains("p\"w")), "{m:?}");
        assert!(m.contains(&"--config=/c".into()) && m.contains(&"--db=app".into()) && m.contains(&"--archive".into()));
        assert_eq!(mongo_config(&server), "password: \"p\\\"w\"\n");
    }
}

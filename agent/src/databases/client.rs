//! Talking to a database server through its own client (`psql`, `mysql`,
//! `mongosh`): the credentials in a private file, a clean environment, a
//! timeout, and the client's own words when it fails.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hindsight_api::{DatabaseInfo, DatabaseServer, DatabaseTest, DbEngine, DbTls, Settings};

use super::credentials::{Credentials, option_value, pgpass_field};
use crate::error::AgentError;
use crate::process::{Finished, run};

/// How long a client may take to connect and answer.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of a client's output kept (a listing of thousands of databases fits).
const KEEP: usize = 4 << 20;
/// Where system CA certificates are (Debian), for verified TLS.
const CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A client command with a clean environment: the program the settings
/// name for `name`, else `name` in the agent's PATH.
pub(crate) fn command(settings: &Settings, name: &str) -> Command {
    crate::process::clean_command(crate::settings::program_of(settings, name))
}

/// The client's output, or its failure in one line (its stderr's last lines).
fn output(d: &DatabaseServer, what: &str, f: Finished) -> Result<String, AgentError> {
    if let Some(why) = f.failure() {
        let stderr = String::from_utf8_lossy(&f.stderr);
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(3)..].join(" | ");
        let said = if tail.is_empty() { String::new() } else { format!(": {tail}") };
        return Err(AgentError::unreachable(format!("database server {}: {what} {why}{said}", d.name)));
    }
    Ok(String::from_utf8_lossy(&f.stdout).into_owned())
}

/// Connects to the server (password opened) and lists its databases.
pub(crate) fn test(d: &DatabaseServer, state_dir: &Path, settings: &Settings) -> Result<DatabaseTest, AgentError> {
    match d.engine {
        DbEngine::Postgresql => postgres(d, state_dir, settings),
        DbEngine::Mysql => mysql(d, state_dir, settings),
        DbEngine::Mongodb => mongodb(d, state_dir, settings),
    }
}

/// Rows of `name<TAB>size[<TAB>owner]` into databases, `system` telling the server's own.
fn databases(rows: &str, system: impl Fn(&str) -> bool) -> Vec<DatabaseInfo> {
    rows.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(name, rest)| {
            let (size, owner) = match rest.split_once('\t') {
                Some((size, owner)) => (size, Some(owner.to_string())),
                None => (rest, None),
            };
            DatabaseInfo { name: name.to_string(), size: size.trim().parse().unwrap_or(0), system: system(name), owner }
        })
        .collect()
}

/// libpq's environment for `d`: the password file, host or socket, port, user, TLS.
pub(crate) fn libpq(cmd: &mut Command, d: &DatabaseServer, passfile: &Credentials) {
    cmd.env("PGPASSFILE", passfile.path()).env("PGCONNECT_TIMEOUT", "10").env("PGAPPNAME", "hindsight");
    if let Some(h) = d.host.as_deref().or(d.socket.as_deref()) {
        cmd.env("PGHOST", h);
    }
    if let Some(p) = d.port {
        cmd.env("PGPORT", p.to_string());
    }
    if let Some(u) = &d.user {
        cmd.env("PGUSER", u);
    }
    let mode = match d.tls {
        DbTls::Disable => "disable",
        DbTls::Prefer => "prefer",
        DbTls::Require => "require",
        DbTls::Verify => "verify-full",
    };
    cmd.env("PGSSLMODE", mode);
    if d.tls == DbTls::Verify {
        cmd.env("PGSSLROOTCERT", CA_FILE);
    }
}

/// A libpq password file for `d` (any host, port and database: the
/// connection settings are in the environment).
pub(crate) fn pgpass(d: &DatabaseServer, state_dir: &Path) -> Result<Credentials, AgentError> {
    let user = pgpass_field(d.user.as_deref().unwrap_or("*"));
    let password = pgpass_field(d.password.as_deref().unwrap_or(""));
    Credentials::write(state_dir, &format!("*:*:*:{user}:{password}\n"))
}

fn postgres(d: &DatabaseServer, state_dir: &Path, settings: &Settings) -> Result<DatabaseTest, AgentError> {
    let passfile = pgpass(d, state_dir)?;
    let mut cmd = command(settings, "psql");
    libpq(&mut cmd, d, &passfile);
    cmd.args(["-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", "postgres"])
        .args(["-c", "SHOW server_version"])
        .args([
            "-c",
            "SELECT datname, pg_database_size(datname), pg_get_userbyid(datdba) FROM pg_database \
             WHERE datallowconn AND NOT datistemplate ORDER BY datname",
        ]);
    let out = output(d, "psql", run(cmd, TIMEOUT, KEEP))?;
    let (version, rows) = out.split_once('\n').unwrap_or((&out, ""));
    Ok(DatabaseTest { version: version.trim().to_string(), databases: databases(rows, |n| n == "postgres") })
}

/// A MariaDB/MySQL option file for `d`.
pub(crate) fn my_cnf(d: &DatabaseServer, state_dir: &Path) -> Result<Credentials, AgentError> {
    let mut cnf = String::from("[client]\n");
    if let Some(u) = &d.user {
        cnf.push_str(&format!("user={}\n", option_value(u)));
    }
    if let Some(p) = &d.password {
        cnf.push_str(&format!("password={}\n", option_value(p)));
    }
    match (&d.host, &d.socket) {
        (Some(h), _) => cnf.push_str(&format!("host={}\nprotocol=tcp\n", option_value(h))),
        (None, Some(s)) => cnf.push_str(&format!("socket={}\n", option_value(s))),
        (None, None) => {}
    }
    if let Some(p) = d.port {
        cnf.push_str(&format!("port={p}\n"));
    }
    cnf.push_str(match d.tls {
        DbTls::Disable => "skip-ssl\n",
        DbTls::Prefer => "",
        DbTls::Require => "ssl\n",
        DbTls::Verify => "ssl\nssl-verify-server-cert\n",
    });
    if d.tls == DbTls::Verify {
        cnf.push_str(&format!("ssl-ca={CA_FILE}\n"));
    }
    // mysql's own (mysqldump refuses what it does not know).
    cnf.push_str("[mysql]\nconnect-timeout=10\n");
    Credentials::write(state_dir, &cnf)
}

/// The databases MariaDB and MySQL keep for themselves.
const MYSQL_SYSTEM: [&str; 4] = ["information_schema", "mysql", "performance_schema", "sys"];

fn mysql(d: &DatabaseServer, state_dir: &Path, settings: &Settings) -> Result<DatabaseTest, AgentError> {
    let cnf = my_cnf(d, state_dir)?;
    let mut cmd = command(settings, "mysql");
    // --defaults-extra-file must come first.
    cmd.arg(format!("--defaults-extra-file={}", cnf.path().display()))
        .args(["--batch", "--skip-column-names", "-e"])
        .arg(
            "SELECT VERSION(); SELECT s.schema_name, COALESCE(SUM(t.data_length + t.index_length), 0) \
         FROM information_schema.schemata s LEFT JOIN information_schema.tables t ON t.table_schema = s.schema_name \
         GROUP BY s.schema_name ORDER BY s.schema_name",
        );
    let out = output(d, "mysql", run(cmd, TIMEOUT, KEEP))?;
    let (version, rows) = out.split_once('\n').unwrap_or((&out, ""));
    Ok(DatabaseTest { version: version.trim().to_string(), databases: databases(rows, |n| MYSQL_SYSTEM.contains(&n)) })
}

/// The databases MongoDB keeps for itself.
const MONGO_SYSTEM: [&str; 3] = ["admin", "config", "local"];

/// A mongosh script connecting to `d` (mongosh takes no password from a file
/// or the environment otherwise), printing the version and the databases.
pub(crate) fn mongo_script(d: &DatabaseServer) -> String {
    let host = d.host.as_deref().unwrap_or("127.0.0.1");
    let port = d.port.unwrap_or(27017);
    let js = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let auth = match &d.user {
        Some(u) => format!(", {}, {}", js(u), js(d.password.as_deref().unwrap_or(""))),
        None => String::new(),
    };
    let tls = matches!(d.tls, DbTls::Require | DbTls::Verify);
    let insecure = d.tls == DbTls::Require;
    format!(
        "const m = new Mongo({});\n\
         const db = m.getDB('admin');\n\
         {}\n\
         print(db.version());\n\
         db.adminCommand({{listDatabases: 1}}).databases.forEach(d => print(d.name + '\\t' + d.sizeOnDisk));\n",
        js(&format!(
            "mongodb://{host}:{port}/?tls={tls}&tlsAllowInvalidCertificates={insecure}&serverSelectionTimeoutMS=10000"
        )),
        if auth.is_empty() { String::new() } else { format!("db.auth({})", auth.trim_start_matches(", ")) },
    )
}

fn mongodb(d: &DatabaseServer, state_dir: &Path, settings: &Settings) -> Result<DatabaseTest, AgentError> {
    let script = Credentials::write(state_dir, &mongo_script(d))?;
    let mut cmd = command(settings, "mongosh");
    cmd.args(["--quiet", "--norc", "--nodb", "--file"]).arg(script.path());
    let out = output(d, "mongosh", run(cmd, TIMEOUT, KEEP))?;
    let (version, rows) = out.split_once('\n').unwrap_or((&out, ""));
    Ok(DatabaseTest { version: version.trim().to_string(), databases: databases(rows, |n| MONGO_SYSTEM.contains(&n)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(engine: DbEngine) -> DatabaseServer {
        DatabaseServer {
            name: "m".into(),
            engine,
            host: Some("db.example".into()),
            port: Some(27018),
            socket: None,
            user: Some("backup".into()),
            password: Some("p\"w'".into()),
            tls: DbTls::Require,
        }
    }

    #[test]
    fn the_mongodb_script_quotes_what_it_is_given_and_a_missing_client_is_named() {
        let s = mongo_script(&server(DbEngine::Mongodb));
        assert!(s.contains("new Mongo(\"mongodb://db.example:27018/?tls=true&tlsAllowInvalidCertificates=true"), "{s}");
        assert!(s.contains(r#"db.auth("backup", "p\"w'")"#), "{s}");
        let dir = std::env::temp_dir().join(format!("hs-mongo-{}", uuid::Uuid::new_v4().simple()));
        // No MongoDB tools on this machine: the error says which program is missing.
        if std::process::Command::new("mongosh").arg("--version").output().is_err() {
            let settings = crate::settings::from_stored(&Default::default());
            let e = test(&server(DbEngine::Mongodb), &dir, &settings).err().map(|e| e.message).unwrap_or_default();
            assert!(e.contains("mongosh was not found"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn listings_read_into_databases() {
        let got = databases("postgres\t7000\nshop\t123\nbad line\n", |n| n == "postgres");
        assert_eq!(got.len(), 2);
        assert!(got[0].system && !got[1].system && got[1].size == 123);
        assert_eq!(got[1].owner, None);
        let owned = databases("shop\t123\talice\n", |_| false);
        assert_eq!((owned[0].size, owned[0].owner.as_deref()), (123, Some("alice")));
    }
}

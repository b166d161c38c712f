//! Restoring a database from its dump with the engine's own tool: the dump
//! streamed into `pg_restore`, `mysql` or `mongorestore`, never staged.
//!
//! A restore never drops a database that exists unless asked (`replace`):
//! without it, a database of that name is refused before anything runs. A
//! database the restore created is dropped again when the restore fails, so
//! no half-restored database stays behind. PostgreSQL restores run in one
//! transaction (`--single-transaction`): they apply whole or not at all.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hindsight_api::{DatabaseServer, DbEngine, Settings};

use super::client::{self, command, libpq, my_cnf, pgpass};
use super::credentials::Credentials;
use crate::backup::Cancel;
use crate::error::AgentError;
use crate::process::{drain, run};

/// How long creating or dropping a database may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(300);
/// Bytes of a tool's stderr kept for the answer.
const KEEP: usize = 4096;

/// What to restore, where.
pub(crate) struct Target<'a> {
    /// The server, its password opened.
    pub server: &'a DatabaseServer,
    /// The database's name there.
    pub name: &'a str,
    /// Replace it when it exists.
    pub replace: bool,
}

/// The extension of a dump of `engine` in a snapshot.
pub(crate) fn dump_extension(engine: DbEngine) -> &'static str {
    match engine {
        DbEngine::Postgresql => ".pgdump",
        DbEngine::Mysql => ".sql",
        DbEngine::Mongodb => ".archive",
    }
}

/// Refuses a restore over an existing database without `replace`; true when it exists.
pub(crate) fn check_target(t: &Target<'_>, state_dir: &Path, settings: &Settings) -> Result<bool, AgentError> {
    let listed = client::test(t.server, state_dir, settings)?;
    let exists = listed.databases.iter().any(|d| d.name == t.name);
    if exists && !t.replace {
        return Err(AgentError::conflict(format!(
            "database {} exists on server {}: restore it under another name (--as NAME), \
             or replace it (--replace)",
            t.name, t.server.name
        )));
    }
    Ok(exists)
}

/// Restores `dump` (read to its end) into the target; `progress` hears the
/// bytes fed so far. Returns what was done, in words.
pub(crate) fn restore(
    t: &Target<'_>,
    dump: &mut dyn Read,
    state_dir: &Path,
    settings: &Settings,
    progress: &dyn Fn(u64),
    cancel: &Cancel,
) -> Result<String, AgentError> {
    let exists = check_target(t, state_dir, settings)?;
    let (mut tool, _creds, created) = match t.server.engine {
        DbEngine::Postgresql => {
            let pass = pgpass(t.server, state_dir)?;
            if !exists {
                admin(t, state_dir, settings, &format!("CREATE DATABASE {}", pg_ident(t.name)))?;
            }
            let mut c = command(settings, "pg_restore");
            libpq(&mut c, t.server, &pass);
            c.args(["--no-password", "--single-transaction"]);
            if exists {
                c.args(["--clean", "--if-exists"]);
            }
            c.arg(format!("--dbname=dbname='{}'", t.name.replace('\\', "\\\\").replace('\'', "\\'")));
            (c, pass, !exists)
        }
        DbEngine::Mysql => {
            let cnf = my_cnf(t.server, state_dir)?;
            if exists {
                admin(t, state_dir, settings, &format!("DROP DATABASE {}", my_ident(t.name)))?;
            }
            admin(t, state_dir, settings, &format!("CREATE DATABASE {}", my_ident(t.name)))?;
            let mut c = command(settings, "mysql");
            // --defaults-extra-file must come first.
            c.arg(format!("--defaults-extra-file={}", cnf.path().display()))
                .args(["--binary-mode", "--batch"])
                .arg(format!("--database={}", t.name));
            (c, cnf, !exists)
        }
        DbEngine::Mongodb => {
            let conf = Credentials::write(state_dir, &super::plan::mongo_config(t.server))?;
            let mut c = command(settings, "mongorestore");
            c.args(super::plan::mongo_connection(t.server, conf.path()))
                .arg("--archive")
                .arg(format!("--nsTo={}.*", t.name));
            if t.replace {
                c.arg("--drop");
            }
            (c, conf, false)
        }
    };
    let what = tool.get_program().to_string_lossy().rsplit('/').next().unwrap_or_default().to_string();
    let fed = feed(&mut tool, dump, progress, cancel);
    if let Err(e) = fed {
        if created {
            let drop = match t.server.engine {
                DbEngine::Postgresql => format!("DROP DATABASE IF EXISTS {}", pg_ident(t.name)),
                _ => format!("DROP DATABASE IF EXISTS {}", my_ident(t.name)),
            };
            if let Err(d) = admin(t, state_dir, settings, &drop) {
                tracing::warn!("dropping the half-restored database {}: {}", t.name, d.message);
            }
        }
        return Err(AgentError::conflict(format!(
            "restore of database {} on server {}: {what} {}",
            t.name, t.server.name, e
        )));
    }
    Ok(format!("database {} {} on server {}", t.name, if exists { "replaced" } else { "restored" }, t.server.name))
}

/// Runs `tool` with `dump` on its stdin; an error in words when it fails.
fn feed(tool: &mut Command, dump: &mut dyn Read, progress: &dyn Fn(u64), cancel: &Cancel) -> Result<(), String> {
    tool.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = tool.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>), KEEP);
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>), KEEP);
    let group = rustix::process::Pid::from_child(&child);
    let kill = || {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    };
    let mut stdin = child.stdin.take();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut failure = None;
    while let Some(w) = stdin.as_mut() {
        if cancel.is_cancelled() {
            failure = Some("cancelled".to_string());
            kill();
            break;
        }
        let n = match dump.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                failure = Some(format!("stopped: the dump could not be read: {e}"));
                kill();
                break;
            }
        };
        // A tool that stopped reading has failed: its status says why.
        if w.write_all(&buf[..n]).is_err() {
            break;
        }
        total += n as u64;
        progress(total);
    }
    drop(stdin);
    let status = child.wait().map_err(|e| format!("waiting for it: {e}"))?;
    let (_, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    if let Some(f) = failure {
        return Err(f);
    }
    if status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&stderr);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    Err(format!("failed ({status}): {tail}"))
}

/// Runs one administrative statement (create or drop a database) on the target.
fn admin(t: &Target<'_>, state_dir: &Path, settings: &Settings, sql: &str) -> Result<(), AgentError> {
    let (f, _creds) = match t.server.engine {
        DbEngine::Postgresql => {
            let pass = pgpass(t.server, state_dir)?;
            let mut c = command(settings, "psql");
            libpq(&mut c, t.server, &pass);
            c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql]);
            (run(c, ADMIN_TIMEOUT, KEEP), pass)
        }
        DbEngine::Mysql => {
            let cnf = my_cnf(t.server, state_dir)?;
            let mut c = command(settings, "mysql");
            c.arg(format!("--defaults-extra-file={}", cnf.path().display())).args(["--batch", "-e", sql]);
            (run(c, ADMIN_TIMEOUT, KEEP), cnf)
        }
        DbEngine::Mongodb => return Ok(()),
    };
    match f.failure() {
        None => Ok(()),
        Some(why) => Err(AgentError::conflict(format!(
            "server {}: {sql}: {why}: {}",
            t.server.name,
            String::from_utf8_lossy(&f.stderr).trim()
        ))),
    }
}

/// A PostgreSQL identifier, quoted.
fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A MariaDB/MySQL identifier, quoted.
fn my_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(pg_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(my_ident("a`b; DROP"), "`a``b; DROP`");
    }
}

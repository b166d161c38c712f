//! `hindsight database ...`

use std::process::ExitCode;

use hindsight_api::routes;
use hindsight_api::{DatabaseAssignment, DatabaseServer, DatabaseServerPatch, DatabaseTest};

use crate::args::{DatabaseArgs, DatabaseCmd};
use crate::client::Client;
use crate::output::{bytes, fields, print_json, removed, table, yes_no};

/// Runs a database subcommand.
pub async fn run(c: &Client, cmd: DatabaseCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        DatabaseCmd::Add { name, engine, settings } => {
            let password = password(&settings)?;
            let new = DatabaseServer {
                name,
                engine: engine.parse()?,
                host: settings.host,
                port: settings.port,
                socket: settings.unix_socket,
                user: settings.user,
                password,
                tls: settings.tls.as_deref().map(str::parse).transpose()?.unwrap_or(hindsight_api::DbTls::Prefer),
            };
            let d: DatabaseServer = c.post(routes::DATABASES, Some(&new)).await?;
            show(&d, json)?;
        }
        DatabaseCmd::List => {
            let all: Vec<DatabaseServer> = c.get(routes::DATABASES).await?;
            if json {
                return print_json(&all).map(|()| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|d| vec![d.name.clone(), d.engine.to_string(), address(d), d.user.clone().unwrap_or_default()])
                .collect();
            table(&["NAME", "ENGINE", "ADDRESS", "USER"], &rows);
        }
        DatabaseCmd::Show { name } => show(&c.get(&routes::database(&name)).await?, json)?,
        DatabaseCmd::Edit { name, settings } => {
            let patch = DatabaseServerPatch {
                password: password(&settings)?,
                host: settings.host,
                port: settings.port,
                socket: settings.unix_socket,
                user: settings.user,
                tls: settings.tls.as_deref().map(str::parse).transpose()?,
            };
            show(&c.patch(&routes::database(&name), &patch).await?, json)?;
        }
        DatabaseCmd::Remove { name } => {
            c.delete(&routes::database(&name)).await?;
            removed(json, "database server", &name, &format!("database server {name} removed"))?;
        }
        DatabaseCmd::Test { name } => {
            let t: DatabaseTest = c.post::<(), _>(&routes::database_test(&name), None).await?;
            if json {
                return print_json(&t).map(|()| ExitCode::SUCCESS);
            }
            println!("connected to {name}: version {}", t.version);
            let rows: Vec<Vec<String>> =
                t.databases.iter().map(|d| vec![d.name.clone(), bytes(d.size), yes_no(d.system)]).collect();
            table(&["DATABASE", "SIZE", "SYSTEM"], &rows);
        }
        DatabaseCmd::Assign { database, account } => {
            let (server, database) = server_and_database(&database)?;
            assign(c, DatabaseAssignment { server, database, account: Some(account) }, json).await?;
        }
        DatabaseCmd::Unassign { database } => {
            let (server, database) = server_and_database(&database)?;
            assign(c, DatabaseAssignment { server, database, account: None }, json).await?;
        }
        DatabaseCmd::Assignments => {
            let all: Vec<DatabaseAssignment> = c.get(routes::DATABASE_ASSIGNMENTS).await?;
            show_assignments(&all, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `SERVER:DATABASE` split at its first colon (database names may hold one).
fn server_and_database(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once(':') {
        Some((server, db)) if !server.is_empty() && !db.is_empty() => Ok((server.to_string(), db.to_string())),
        _ => anyhow::bail!("{s:?}: give the database as SERVER:DATABASE"),
    }
}

async fn assign(c: &Client, a: DatabaseAssignment, json: bool) -> anyhow::Result<()> {
    let all: Vec<DatabaseAssignment> = c.post(routes::DATABASE_ASSIGNMENTS, Some(&a)).await?;
    if json {
        return print_json(&all);
    }
    match &a.account {
        Some(account) => println!("database {} of server {} assigned to account {account}", a.database, a.server),
        None => println!("database {} of server {} is assigned to no account", a.database, a.server),
    }
    Ok(())
}

fn show_assignments(all: &[DatabaseAssignment], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&all);
    }
    let rows: Vec<Vec<String>> =
        all.iter().map(|a| vec![a.server.clone(), a.database.clone(), a.account.clone().unwrap_or_default()]).collect();
    table(&["SERVER", "DATABASE", "ACCOUNT"], &rows);
    Ok(())
}

fn password(a: &DatabaseArgs) -> anyhow::Result<Option<String>> {
    a.password_file.as_deref().map(|p| super::read_value_file(p, "the password")).transpose()
}

/// `host:port` or the socket, in one cell.
fn address(d: &DatabaseServer) -> String {
    match (&d.host, &d.socket) {
        (Some(h), _) => d.port.map_or(h.clone(), |p| format!("{h}:{p}")),
        (None, Some(s)) => s.clone(),
        (None, None) => "default socket".into(),
    }
}

fn show(d: &DatabaseServer, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(d);
    }
    fields(&[
        ("name", d.name.clone()),
        ("engine", d.engine.to_string()),
        ("address", address(d)),
        ("user", d.user.clone().unwrap_or_default()),
        ("password", d.password.clone().unwrap_or_default()),
        ("tls", d.tls.to_string()),
    ]);
    Ok(())
}

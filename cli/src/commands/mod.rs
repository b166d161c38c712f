//! One module per resource; each turns parsed arguments into API calls and output.

pub mod account;
pub mod alert;
pub mod database;
pub mod destination;
pub mod docs;
pub mod history;
pub mod job;
pub mod key;
pub mod mount;
pub mod notify;
pub mod run;
pub mod settings;
pub mod snapshot;
pub mod status;
pub mod task;

use std::process::ExitCode;

use crate::args::{Cli, Command};
use crate::client::Client;

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let client = Client::new(&cli.socket);
    let json = cli.json;
    match cli.command {
        Command::Status { check: true } => Ok(status::check(&client).await),
        Command::Status { check: false } => status::show(&client, json).await,
        Command::Destination(cmd) => destination::run(&client, cmd, json).await,
        Command::Job(cmd) => job::run(&client, cmd, json).await,
        Command::Run(cmd) => run::run(&client, cmd, json).await,
        Command::Snapshot(cmd) => snapshot::run(&client, cmd, json).await,
        Command::Settings(cmd) => settings::run(&client, cmd, json).await,
        Command::Alert(cmd) => alert::run(&client, cmd, json).await,
        Command::Notify(cmd) => notify::run(&client, cmd, json).await,
        Command::Database(cmd) => database::run(&client, cmd, json).await,
        Command::Restore(cmd) => task::restore(&client, cmd, json).await,
        Command::Task(cmd) => task::run(&client, cmd, json).await,
        Command::Account(cmd) => account::run(&client, cmd, json).await,
        Command::PriorityGroup(cmd) => account::groups(&client, cmd, json).await,
        Command::RestoreCondition(cmd) => task::conditions(&client, cmd, json).await,
        Command::Download(args) => task::download(&client, args, json).await,
        Command::PermissionRule(cmd) => task::rules(&client, cmd, json).await,
        Command::Versions { path, job, destination } => {
            history::versions(&client, &path, job.as_deref(), destination.as_deref(), json).await
        }
        Command::Find { pattern, job, destination, since, until } => {
            let f = history::Find {
                pattern: &pattern,
                job: job.as_deref(),
                destination: destination.as_deref(),
                since: since.as_deref(),
                until: until.as_deref(),
            };
            history::find(&client, f, json).await
        }
        Command::Diff { a, b, path } => history::diff(&client, a, b, path.as_deref(), json).await,
        Command::Key(cmd) => key::run(&client, cmd, json).await,
        Command::Mount(args) => mount::mount(args).await,
        Command::Umount { dir } => mount::umount(&dir),
        Command::Completions { shell } => docs::completions(&shell),
        Command::Man => docs::man(),
    }
}

/// A value a command prints (`sh -c COMMAND`, e.g. `pass show s3/key`): its
/// standard output without the final line break; a failing command is an error
/// quoting its standard error.
pub fn command_value(command: &str, what: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("/bin/sh")
        .args(["-c", command])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("running the command for {what}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!("the command for {what} failed ({}): {}", out.status, err.trim());
    }
    let text =
        String::from_utf8(out.stdout).map_err(|_| anyhow::anyhow!("the command for {what} printed non-UTF-8"))?;
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
}

/// A value kept in a file (a password, a token): its text without the final line break.
pub fn read_value_file(path: &std::path::Path, what: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {what} from {}", path.display()))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_string())
}

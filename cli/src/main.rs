//! `hindsight`: the command line client of the Hindsight agent. It speaks only
//! the agent's API (JSON over HTTP on a Unix socket).

mod args;
mod client;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            // The API's answer says which failure it was; anything else is 1.
            ExitCode::from(e.downcast_ref::<client::Failure>().map_or(client::exit::FAILURE, |f| f.exit))
        }
    }
}

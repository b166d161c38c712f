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
    let json = cli.json;
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
            // The API's answer says which failure it was; anything else is 1.
            let failure = e.downcast_ref::<client::Failure>();
            let exit = failure.map_or(client::exit::FAILURE, |f| f.exit);
            if json {
                // One JSON object on stderr, with the API's stable code, for scripts.
                let code = failure.map_or("failure", |f| f.code.as_str());
                let error = serde_json::json!({"error": {"code": code, "message": format!("{e:#}"), "exit": exit}});
                eprintln!("{error}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(exit)
        }
    }
}

//! `hindsightd`: the Hindsight backup agent. The work is in the library.

use clap::Parser;
use hindsight_agent::{config::Args, daemon};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = Args::parse().into_config().and_then(|config| {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(daemon::run(config))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hindsightd: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

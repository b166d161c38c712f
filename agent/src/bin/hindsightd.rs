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
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let result = runtime.block_on(daemon::run(config));
        // A blocking task stuck past the daemon's own stop timeouts (a hung
        // filesystem) must not keep the process from exiting.
        runtime.shutdown_timeout(daemon::EXIT_GRACE);
        result
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hindsightd: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! `hindsightd`: the Hindsight backup agent. The work is in the library.

use clap::Parser;
use hindsight_agent::{config::Args, daemon, logging};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.man {
        use std::io::Write;
        let written = Args::manual_page().and_then(|page| std::io::stdout().write_all(&page));
        return match written {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                eprintln!("hindsightd: {e}");
                std::process::ExitCode::FAILURE
            }
            _ => std::process::ExitCode::SUCCESS,
        };
    }
    logging::init();
    let result = args.into_config().and_then(|config| {
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
            logging::fatal(&format!("{e:#}"));
            std::process::ExitCode::FAILURE
        }
    }
}

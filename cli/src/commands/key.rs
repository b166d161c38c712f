//! `hindsight key ...`: the agent's master key.

use std::process::ExitCode;

use hindsight_api::MasterKeyExport;
use hindsight_api::routes;

use crate::args::KeyCmd;
use crate::client::Client;
use crate::output::print_json;

/// Runs a key subcommand.
pub async fn run(c: &Client, cmd: KeyCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCmd::Export => {
            let k: MasterKeyExport = c.get(routes::KEY).await?;
            // On stderr, so that `hindsight key export > file` stores the key alone.
            eprintln!(
                "warning: this key decrypts every secret in the catalog; keep it offline, apart from {} \
                 (to restore: write the 32 bytes it encodes, e.g. `xxd -r -p`, to that path with mode 0600)",
                k.path
            );
            if json {
                print_json(&k)?;
            } else {
                println!("{}", k.key);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

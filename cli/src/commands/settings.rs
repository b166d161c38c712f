//! `hindsight settings ...`

use std::process::ExitCode;

use hindsight_api::routes;
use hindsight_api::{SettingValue, Settings};

use crate::args::SettingsCmd;
use crate::client::Client;
use crate::output::{print_json, table};

/// Runs a settings subcommand.
pub async fn run(c: &Client, cmd: SettingsCmd, json: bool) -> anyhow::Result<ExitCode> {
    let settings: Settings = match cmd {
        SettingsCmd::Show => c.get(routes::SETTINGS).await?,
        SettingsCmd::Set { key, value } => {
            let s: Settings = c.put(&routes::setting(&key), &SettingValue { value: value.clone() }).await?;
            if !json {
                println!("{key} set to {value:?}");
                return Ok(ExitCode::SUCCESS);
            }
            s
        }
    };
    if json {
        print_json(&settings)?;
        return Ok(ExitCode::SUCCESS);
    }
    // The API's JSON object is the list of settings: print it key by key.
    let value = serde_json::to_value(&settings)?;
    let rows: Vec<Vec<String>> = value
        .as_object()
        .map(|o| {
            o.iter().map(|(k, v)| vec![k.clone(), v.as_str().map_or_else(|| v.to_string(), String::from)]).collect()
        })
        .unwrap_or_default();
    table(&["SETTING", "VALUE"], &rows);
    Ok(ExitCode::SUCCESS)
}

//! `hindsight alert ...`

use std::process::ExitCode;

use hindsight_api::Alert;
use hindsight_api::routes;

use crate::args::AlertCmd;
use crate::client::Client;
use crate::output::{opt_time, print_json, table, time};

/// Rows of an alert table.
pub fn rows(alerts: &[Alert]) -> Vec<Vec<String>> {
    alerts
        .iter()
        .map(|a| {
            vec![
                a.id.to_string(),
                a.level.as_str().into(),
                time(&a.created),
                a.subject.clone(),
                a.message.clone(),
                opt_time(a.acked_at.as_ref()),
            ]
        })
        .collect()
}

/// Header of an alert table.
pub const HEADER: [&str; 6] = ["ID", "LEVEL", "RAISED", "SUBJECT", "MESSAGE", "ACKED"];

/// Runs an alert subcommand.
pub async fn run(c: &Client, cmd: AlertCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        AlertCmd::List { all } => {
            let alerts: Vec<Alert> = c.get(&format!("{}?all={all}", routes::ALERTS)).await?;
            if json {
                print_json(&alerts)?;
            } else {
                table(&HEADER, &rows(&alerts));
            }
        }
        AlertCmd::Ack { id } => {
            let a: Alert = c.post::<(), _>(&routes::alert_ack(&id), None).await?;
            if json {
                print_json(&a)?;
            } else {
                println!("alert {} acknowledged", a.id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

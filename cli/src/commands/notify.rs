//! `hindsight notify ...`

use std::process::ExitCode;

use anyhow::{Context, bail};
use hindsight_api::routes;
use hindsight_api::{
    AlertLevel, Frequency, Levels, NewNotifier, Notifier, NotifierPatch, NotifierSettings, NotifyTestResult,
};
use serde_json::{Map, Value, json};

use crate::args::{NotifierArgs, NotifyCmd};
use crate::client::Client;
use crate::output::{fields, opt_time, print_json, removed, table, time, yes_no};

/// Runs a notify subcommand.
pub async fn run(c: &Client, cmd: NotifyCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        NotifyCmd::Add { name, kind, settings } => {
            let levels = levels(&settings.levels)?;
            let (digest_at, retries) = (settings.digest_at.clone(), settings.retries);
            let mut map = settings_map(settings)?;
            map.insert("type".into(), Value::String(kind));
            // The agent checks the settings and names what is wrong.
            let settings: NotifierSettings = serde_json::from_value(Value::Object(map)).context("settings")?;
            let new = NewNotifier { name, settings, levels, digest_at, retries, disabled: false };
            let n: Notifier = c.post(routes::NOTIFIERS, Some(&new)).await?;
            show(&n, json)?;
        }
        NotifyCmd::List => {
            let all: Vec<Notifier> = c.get(routes::NOTIFIERS).await?;
            if json {
                print_json(&all)?;
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|n| {
                        vec![
                            n.config.name.clone(),
                            n.config.settings.kind().into(),
                            target(&n.config.settings),
                            describe_levels(&n.config.levels),
                            if n.config.disabled { "disabled".into() } else { "enabled".into() },
                            n.pending.to_string(),
                            n.last_error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(&["NAME", "TYPE", "TO", "LEVELS", "STATE", "PENDING", "LAST ERROR"], &rows);
            }
        }
        NotifyCmd::Show { name } => {
            let n: Notifier = c.get(&routes::notifier(&name)).await?;
            show(&n, json)?;
        }
        NotifyCmd::Edit { name, settings, disable, enable } => {
            let levels = if settings.levels.is_empty() { None } else { levels(&settings.levels)? };
            let (digest_at, retries) = (settings.digest_at.clone(), settings.retries);
            let map = settings_map(settings)?;
            let patch = NotifierPatch {
                settings: (!map.is_empty()).then_some(map),
                levels,
                digest_at,
                retries,
                disabled: if disable {
                    Some(true)
                } else if enable {
                    Some(false)
                } else {
                    None
                },
            };
            let n: Notifier = c.patch(&routes::notifier(&name), &patch).await?;
            show(&n, json)?;
        }
        NotifyCmd::Remove { name } => {
            c.delete(&routes::notifier(&name)).await?;
            removed(json, "notification integration", &name, &format!("notification integration {name} removed"))?;
        }
        NotifyCmd::Test { name } => {
            let r: NotifyTestResult = c.post::<(), _>(&routes::notifier_test(&name), None).await?;
            if json {
                print_json(&r)?;
            } else {
                println!("test message delivered; the server answered: {}", r.answer);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--level` values as levels (`None` when none were given: the agent's default).
fn levels(given: &[String]) -> anyhow::Result<Option<Levels>> {
    if given.is_empty() {
        return Ok(None);
    }
    let mut out = Levels::default();
    for g in given {
        let (level, frequency) = g.split_once(':').unwrap_or((g, "realtime"));
        let level: AlertLevel = level.parse().map_err(|e| anyhow::anyhow!("--level {g}: {e}"))?;
        let frequency: Frequency = frequency.parse().map_err(|e| anyhow::anyhow!("--level {g}: {e}"))?;
        out.set(level, Some(frequency));
    }
    Ok(Some(out))
}

/// The type's settings given as flags, as the API's JSON keys.
fn settings_map(a: NotifierArgs) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    put("timeout", a.timeout.map(Value::from));
    put("verify_tls", a.verify_tls.map(Value::from));
    put("from", a.from.map(Value::from));
    put("to", (!a.to.is_empty()).then(|| Value::from(a.to)));
    put("host", a.host.map(Value::from));
    put("port", a.port.map(Value::from));
    put("username", a.username.map(Value::from));
    let password = a.password_file.as_deref().map(|p| super::read_value_file(p, "the password")).transpose()?;
    put("password", password.map(Value::from));
    put("security", a.security.map(Value::from));
    put("url", a.url.map(Value::from));
    let mut headers = Vec::new();
    for (list, secret) in [(&a.headers, false), (&a.secret_headers, true)] {
        for h in list {
            let Some((name, value)) = h.split_once('=') else { bail!("header {h:?}: give NAME=VALUE") };
            headers.push(json!({"name": name, "value": value, "secret": secret}));
        }
    }
    for h in &a.secret_header_files {
        let Some((name, path)) = h.split_once('=') else { bail!("--secret-header-file {h:?}: give NAME=PATH") };
        let value = super::read_value_file(std::path::Path::new(path), &format!("header {name}"))?;
        headers.push(json!({"name": name, "value": value, "secret": true}));
    }
    put("headers", (!headers.is_empty()).then(|| Value::from(headers)));
    Ok(m)
}

/// Where an integration sends, in one cell.
fn target(s: &NotifierSettings) -> String {
    match s {
        NotifierSettings::Email(e) => format!("{} via {}:{}", e.to.join(", "), e.host, e.port()),
        NotifierSettings::Webhook(w) => w.url.clone(),
    }
}

/// `warning, critical, information:digest`.
fn describe_levels(l: &Levels) -> String {
    let parts: Vec<String> = AlertLevel::ALL
        .iter()
        .filter_map(|level| {
            l.of(*level).map(|f| match f {
                Frequency::Realtime => level.as_str().to_string(),
                Frequency::Digest => format!("{level}:digest"),
            })
        })
        .collect();
    parts.join(", ")
}

fn show(n: &Notifier, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(n);
    }
    let mut rows = vec![
        ("name", n.config.name.clone()),
        ("type", n.config.settings.kind().to_string()),
        ("to", target(&n.config.settings)),
        ("levels", describe_levels(&n.config.levels)),
        ("digest at", n.config.digest_at.clone()),
        ("retries", n.config.retries.to_string()),
        ("disabled", yes_no(n.config.disabled)),
        ("pending", n.pending.to_string()),
    ];
    match &n.config.settings {
        NotifierSettings::Email(e) => {
            rows.push(("from", e.from.clone()));
            rows.push(("security", e.security.to_string()));
            rows.push(("username", e.username.clone().unwrap_or_default()));
            rows.push(("password", e.password.clone().unwrap_or_default()));
            rows.push(("verify tls", yes_no(e.verify_tls)));
            rows.push(("timeout", format!("{} s", e.timeout)));
        }
        NotifierSettings::Webhook(w) => {
            for h in &w.headers {
                rows.push(("header", format!("{}: {}", h.name, h.value)));
            }
            rows.push(("verify tls", yes_no(w.verify_tls)));
            rows.push(("timeout", format!("{} s", w.timeout)));
        }
    }
    if let Some(e) = &n.last_error {
        rows.push(("last error", e.clone()));
    }
    fields(&rows);
    if !n.deliveries.is_empty() {
        println!("\nrecent deliveries:");
        let rows: Vec<Vec<String>> = n
            .deliveries
            .iter()
            .map(|d| {
                vec![
                    d.id.to_string(),
                    d.what.clone(),
                    d.alert.map(|a| a.to_string()).unwrap_or_default(),
                    d.state.to_string(),
                    d.attempts.to_string(),
                    time(&d.created),
                    opt_time(d.sent_at.as_ref()),
                    d.answer.clone().or_else(|| d.last_error.clone()).unwrap_or_default(),
                ]
            })
            .collect();
        table(&["ID", "WHAT", "ALERT", "STATE", "ATTEMPTS", "QUEUED", "SENT", "ANSWER"], &rows);
    }
    Ok(())
}

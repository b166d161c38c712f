//! What a notification says: the JSON stored in the outbox (an
//! [`AlertMessage`] or a [`DigestMessage`], what a webhook receives as is)
//! and its rendering as a mail.

use hindsight_api::{AlertKind, AlertLevel, AlertMessage, DigestMessage};

/// A notification's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// One alert.
    Alert(AlertMessage),
    /// A day's alerts.
    Digest(DigestMessage),
}

impl Message {
    /// Reads a stored body.
    pub(crate) fn parse(body: &str) -> Result<Message, String> {
        let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("malformed notification: {e}"))?;
        let m = if v.get("digest").is_some() {
            serde_json::from_value(v).map(Message::Digest)
        } else {
            serde_json::from_value(v).map(Message::Alert)
        };
        m.map_err(|e| format!("malformed notification: {e}"))
    }

    /// The message `notify test` sends.
    pub(crate) fn test(integration: &str) -> Message {
        let host = crate::host::hostname();
        Message::Alert(AlertMessage {
            id: hindsight_api::AlertId(0),
            level: AlertLevel::Information,
            kind: AlertKind::Test,
            job: None,
            destination: None,
            run: None,
            message: format!(
                "test message of notification integration {integration} from the Hindsight agent on {host}"
            ),
            time: jiff::Timestamp::now(),
            host,
        })
    }

    /// The JSON a webhook receives.
    pub(crate) fn json(&self) -> String {
        let v = match self {
            Message::Alert(a) => serde_json::to_string(a),
            Message::Digest(d) => serde_json::to_string(d),
        };
        v.unwrap_or_default()
    }

    /// A mail's subject line.
    pub(crate) fn subject(&self) -> String {
        match self {
            Message::Alert(a) => {
                let about = a
                    .job
                    .as_deref()
                    .map(|j| format!(" job {j}"))
                    .or_else(|| a.destination.as_deref().map(|d| format!(" destination {d}")));
                format!(
                    "[hindsight {}] {}: {}{}",
                    a.host,
                    a.level.as_str().to_uppercase(),
                    a.kind,
                    about.unwrap_or_default()
                )
            }
            Message::Digest(d) => {
                let n = |l| d.alerts.iter().filter(|a| a.level == l).count();
                format!(
                    "[hindsight {}] daily digest: {} alerts ({} critical, {} warning, {} information)",
                    d.host,
                    d.alerts.len(),
                    n(AlertLevel::Critical),
                    n(AlertLevel::Warning),
                    n(AlertLevel::Information)
                )
            }
        }
    }

    /// A mail's text.
    pub(crate) fn text(&self) -> String {
        match self {
            Message::Alert(a) => format!("{}\n\n{}", a.message, details(a)),
            Message::Digest(d) => {
                let mut out = format!("Alerts of the Hindsight agent on {} since its previous digest:\n", d.host);
                for a in &d.alerts {
                    out.push_str(&format!(
                        "\n{} {} {}: {}\n",
                        a.time,
                        a.level.as_str().to_uppercase(),
                        a.kind,
                        a.message
                    ));
                }
                out.push_str(
                    "\nAcknowledge them with `hindsight alert ack ID`; `hindsight status` shows what is open.\n",
                );
                out
            }
        }
    }
}

/// The fields of an alert, one per line.
fn details(a: &AlertMessage) -> String {
    let mut out = format!("level: {}\nkind: {}\n", a.level, a.kind);
    if let Some(j) = &a.job {
        out.push_str(&format!("job: {j}\n"));
    }
    if let Some(d) = &a.destination {
        out.push_str(&format!("destination: {d}\n"));
    }
    if let Some(r) = a.run {
        out.push_str(&format!("run: {r} (hindsight run show {r})\n"));
    }
    out.push_str(&format!("time: {}\nhost: {}\nalert: {}\n", a.time, a.host, a.id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_bodies_read_back_and_render_with_their_fields() {
        let Message::Alert(mut a) = Message::test("ops") else { panic!("not an alert") };
        a.level = AlertLevel::Critical;
        a.kind = AlertKind::RunFailed;
        a.job = Some("web".into());
        a.run = Some(hindsight_api::RunId(7));
        let m = Message::Alert(a.clone());
        assert_eq!(Message::parse(&m.json()), Ok(m.clone()));
        assert!(m.subject().ends_with("CRITICAL: run_failed job web"), "{}", m.subject());
        assert!(m.text().contains("run: 7") && m.text().contains("job: web"), "{}", m.text());
        let d = Message::Digest(DigestMessage {
            digest: true,
            host: a.host.clone(),
            time: a.time,
            alerts: vec![a.clone(), a],
        });
        assert_eq!(Message::parse(&d.json()), Ok(d.clone()));
        assert!(d.subject().contains("2 alerts (2 critical, 0 warning, 0 information)"), "{}", d.subject());
        assert!(Message::parse("{\"digest\": 1}").is_err());
    }
}

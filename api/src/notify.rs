//! Notification integrations: where alerts are sent (an SMTP server, a
//! webhook), which levels each one receives and how often, and the record of
//! what was delivered. The JSON an integration receives is [`AlertMessage`]
//! (one alert) or [`DigestMessage`] (a day's alerts).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{AlertId, RunId};
use crate::kinds::{AlertKind, AlertLevel, DeliveryState, Frequency, SmtpSecurity};

/// Which alert levels an integration receives, and how often; a level left
/// out is not sent to it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    /// Information alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub information: Option<Frequency>,
    /// Warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<Frequency>,
    /// Critical alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<Frequency>,
}

impl Levels {
    /// What an integration receives when its levels are not given: warnings
    /// and critical alerts, as they happen.
    pub fn default_for_new() -> Self {
        Levels { information: None, warning: Some(Frequency::Realtime), critical: Some(Frequency::Realtime) }
    }

    /// How often alerts of `level` are sent (`None`: not at all).
    pub fn of(&self, level: AlertLevel) -> Option<Frequency> {
        match level {
            AlertLevel::Information => self.information,
            AlertLevel::Warning => self.warning,
            AlertLevel::Critical => self.critical,
        }
    }

    /// Sets how often alerts of `level` are sent.
    pub fn set(&mut self, level: AlertLevel, frequency: Option<Frequency>) {
        match level {
            AlertLevel::Information => self.information = frequency,
            AlertLevel::Warning => self.warning = frequency,
            AlertLevel::Critical => self.critical = frequency,
        }
    }

    /// True when no level is sent.
    pub fn is_empty(&self) -> bool {
        AlertLevel::ALL.iter().all(|l| self.of(*l).is_none())
    }
}

/// Mail over SMTP.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// Sender address.
    pub from: String,
    /// Recipients (at least one).
    pub to: Vec<String>,
    /// SMTP server host name or address.
    pub host: String,
    /// Port; by default 25 with `none`, 587 with `starttls`, 465 with `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// User name to authenticate with (none: no authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password (a secret: stored encrypted, shown as `********`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Transport security.
    #[serde(default = "default_security")]
    pub security: SmtpSecurity,
    /// Check the server's certificate.
    #[serde(default = "yes")]
    pub verify_tls: bool,
    /// Seconds one attempt may take, 1-300.
    #[serde(default = "default_timeout")]
    pub timeout: u32,
}

impl EmailSettings {
    /// The port used: the one given, else the usual one for the security.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::None => 25,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
        })
    }
}

/// One HTTP header of a webhook request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Header name.
    pub name: String,
    /// Header value (shown as `********` when `secret`).
    pub value: String,
    /// Stored encrypted and never shown (a token, a signature key).
    #[serde(default)]
    pub secret: bool,
}

/// An HTTP(S) POST of an [`AlertMessage`] or [`DigestMessage`] as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Extra headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// Check the server's certificate.
    #[serde(default = "yes")]
    pub verify_tls: bool,
    /// Seconds one attempt may take, 1-300.
    #[serde(default = "default_timeout")]
    pub timeout: u32,
}

/// Where an integration sends, by type.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum NotifierSettings {
    /// Mail over SMTP.
    #[serde(rename = "email")]
    Email(EmailSettings),
    /// An HTTP(S) POST.
    #[serde(rename = "webhook")]
    Webhook(WebhookSettings),
}

impl NotifierSettings {
    /// The type's name.
    pub fn kind(&self) -> &'static str {
        match self {
            NotifierSettings::Email(_) => "email",
            NotifierSettings::Webhook(_) => "webhook",
        }
    }
}

/// What a notification integration is: where it sends, what and how often.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NotifierConfig {
    /// Unique name.
    pub name: String,
    /// Where it sends.
    pub settings: NotifierSettings,
    /// Levels it receives and how often.
    pub levels: Levels,
    /// Time of day (HH:MM, in the schedules' time zone) of the daily digest.
    pub digest_at: String,
    /// Attempts after the first one before a notification is given up.
    pub retries: u32,
    /// Sends nothing.
    pub disabled: bool,
}

/// A notification integration as the API shows it (secrets as `********`),
/// with the state of its outbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Notifier {
    /// What it is.
    #[serde(flatten)]
    pub config: NotifierConfig,
    /// Notifications not delivered yet (waiting for a retry or the digest).
    pub pending: u32,
    /// Why the last failed attempt failed, if the last attempt failed.
    pub last_error: Option<String>,
    /// Recent deliveries, newest first (`notify show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<Delivery>,
}

/// Body of `POST /v1/notifiers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNotifier {
    /// Unique name.
    pub name: String,
    /// Where it sends.
    pub settings: NotifierSettings,
    /// Levels and frequencies (default: warnings and critical alerts, in real time).
    #[serde(default)]
    pub levels: Option<Levels>,
    /// Digest time, HH:MM (default 08:00).
    #[serde(default)]
    pub digest_at: Option<String>,
    /// Retries (default 10).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Created disabled.
    #[serde(default)]
    pub disabled: bool,
}

/// Body of `PATCH /v1/notifiers/{name}`: only what is given changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierPatch {
    /// Settings to replace, key by key (`type` cannot change; a secret sent
    /// back as `********` keeps the stored one).
    #[serde(default)]
    pub settings: Option<Map<String, Value>>,
    /// New levels (replace all of them).
    #[serde(default)]
    pub levels: Option<Levels>,
    /// New digest time.
    #[serde(default)]
    pub digest_at: Option<String>,
    /// New retries.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Disable or enable.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// What the server answered to `notify test`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NotifyTestResult {
    /// The server's answer (SMTP reply, HTTP status and body start).
    pub answer: String,
}

/// One notification on its way to an integration, or delivered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Delivery {
    /// Row id.
    pub id: i64,
    /// `alert` or `digest`.
    pub what: String,
    /// The alert it carries (`alert` deliveries).
    pub alert: Option<AlertId>,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (pending ones).
    pub next_at: Timestamp,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The server's answer to the attempt that delivered it.
    pub answer: Option<String>,
    /// When it was queued.
    pub created: Timestamp,
    /// When it was delivered.
    pub sent_at: Option<Timestamp>,
}

/// The JSON body a webhook receives for one alert (documented in the README).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AlertMessage {
    /// The alert's id in the agent (0 for a `notify test` message).
    pub id: AlertId,
    /// Level.
    pub level: AlertLevel,
    /// What it is about.
    pub kind: AlertKind,
    /// The job it concerns.
    pub job: Option<String>,
    /// The destination it concerns.
    pub destination: Option<String>,
    /// The run it concerns.
    pub run: Option<RunId>,
    /// One line for humans.
    pub message: String,
    /// When it was raised.
    pub time: Timestamp,
    /// The machine the agent runs on.
    pub host: String,
}

/// The JSON body a webhook receives for a daily digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DigestMessage {
    /// Always true: tells a digest from a single alert.
    pub digest: bool,
    /// The machine the agent runs on.
    pub host: String,
    /// When the digest was made.
    pub time: Timestamp,
    /// The alerts since the previous digest, oldest first.
    pub alerts: Vec<AlertMessage>,
}

fn default_security() -> SmtpSecurity {
    SmtpSecurity::Starttls
}

fn default_timeout() -> u32 {
    30
}

fn yes() -> bool {
    true
}

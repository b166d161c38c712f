//! Alerts and the notifications that carry them.
//!
//! Every alert the agent raises goes through [`raise`]: it is logged at its
//! level, stored in the catalog (one open alert per kind and subject), and,
//! in the same catalog transaction, queued in the outbox for each
//! integration that takes its level, in real time or for the daily digest.
//! The outbox loop ([`outbox::run`]) delivers them with retries; nothing on
//! this path can block or fail a backup.
//!
//! - `settings`: checking, sealing, opening and redacting an integration's settings;
//! - `message`: the JSON a notification carries and its rendering as a mail;
//! - `send`: one attempt over SMTP or HTTP;
//! - `outbox`: the delivery loop, retries with backoff, daily digests;
//! - [`ping`]: a job's dead-man-switch pings at each run's start and end.

mod message;
mod outbox;
pub(crate) mod ping;
mod send;
mod settings;

use hindsight_api::{AlertId, AlertLevel};

use crate::catalog::{Catalog, NewAlert};

pub(crate) use message::Message;
pub(crate) use outbox::run;
pub(crate) use ping::Ping;
pub(crate) use send::deliver;
pub(crate) use settings::{
    DEFAULT_DIGEST_AT, DEFAULT_RETRIES, check, check_retries, digest_time, open, patched, redact, seal,
};

/// Raises an alert: logged at its level, stored, its notifications queued.
/// A condition still open is not raised again (and not logged again: the
/// checks that find it run every minute). Failing to store it is logged; the
/// caller carries on, since an alert must never be why a backup fails.
pub(crate) fn raise(catalog: &Catalog, alert: NewAlert) -> Option<AlertId> {
    match catalog.raise_alert(&alert, &crate::host::hostname()) {
        Ok(Some(id)) => {
            let (kind, subject, text) = (alert.kind.as_str(), alert.subject.as_str(), alert.message.as_str());
            match alert.level {
                AlertLevel::Critical => tracing::error!(alert = id.0, kind, subject, "{text}"),
                AlertLevel::Warning => tracing::warn!(alert = id.0, kind, subject, "{text}"),
                AlertLevel::Information => tracing::info!(alert = id.0, kind, subject, "{text}"),
            }
            Some(id)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!("raising the alert {:?}: {e}", alert.message);
            None
        }
    }
}

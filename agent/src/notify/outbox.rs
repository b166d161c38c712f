//! The delivery loop: every second it sends the notifications that are due
//! (each attempt bounded by its integration's timeout, all of them at once,
//! on the runtime: a backup never waits for a mail server), makes the daily
//! digests that are due, and reschedules failures with an exponential
//! backoff until the integration's retries are spent.
//!
//! The outbox is the catalog's `deliveries` table, so a notification queued
//! before a crash or a stop is sent after the restart.

use std::sync::Arc;
use std::time::Duration;

use hindsight_api::{AlertKind, AlertLevel, AlertMessage, DigestMessage, Frequency};
use jiff::{SignedDuration, Timestamp};
use tokio::task::JoinSet;

use super::message::Message;
use crate::catalog::{Catalog, DueDelivery, NewAlert};
use crate::model::NotifierRecord;
use crate::schedule::Clock;
use crate::shutdown::Shutdown;

/// How often the outbox is looked at.
const TICK: Duration = Duration::from_secs(1);
/// Notifications attempted per tick at most.
const BATCH: u32 = 32;
/// Wait before the first retry; doubled for each next one.
const FIRST_BACKOFF: SignedDuration = SignedDuration::from_secs(10);
/// Longest wait between two attempts.
const MAX_BACKOFF: SignedDuration = SignedDuration::from_secs(3600);

/// The wait before retry number `n` (1 for the first retry).
pub(crate) fn backoff(n: u32) -> SignedDuration {
    let factor = 1i64.checked_shl(n.saturating_sub(1).min(20)).unwrap_or(i64::MAX);
    FIRST_BACKOFF.checked_mul(factor as i32).filter(|d| *d < MAX_BACKOFF).unwrap_or(MAX_BACKOFF)
}

/// Runs the delivery loop until shutdown.
pub(crate) async fn run(catalog: Arc<Catalog>, clock: Arc<dyn Clock>, shutdown: Shutdown) {
    loop {
        let c = catalog.clone();
        let now = clock.now();
        let due = tokio::task::spawn_blocking(move || {
            if let Err(e) = make_digests(&c, now) {
                tracing::error!("notification digests: {e}");
            }
            c.due_deliveries(now, BATCH)
        })
        .await;
        let due = match due {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                tracing::error!("notification outbox: {e}");
                Vec::new()
            }
            Err(e) => {
                tracing::error!("notification outbox: {e}");
                Vec::new()
            }
        };
        let mut attempts = JoinSet::new();
        for d in due {
            attempts.spawn(attempt(catalog.clone(), d));
        }
        // Waited for: each attempt is bounded by its timeout, and two loops
        // must not send the same notification twice.
        while attempts.join_next().await.is_some() {}
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.requested() => return,
        }
    }
}

/// One attempt at one notification, recorded.
async fn attempt(catalog: Arc<Catalog>, d: DueDelivery) {
    let c = catalog.clone();
    let notifier = match tokio::task::spawn_blocking(move || c.notifier_by_id(d.notifier)).await {
        Ok(Ok(Some(n))) => n,
        // Removed meanwhile: its outbox went with it.
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return tracing::error!("notification outbox: {e}"),
        Err(e) => return tracing::error!("notification outbox: {e}"),
    };
    let result = match (super::settings::open(catalog.master_key(), &notifier.config.settings), Message::parse(&d.body))
    {
        (Ok(settings), Ok(m)) => super::send::deliver(&settings, &m).await,
        (Err(e), _) => Err(e.to_string()),
        (_, Err(e)) => Err(e),
    };
    let n = d.attempts + 1;
    let _ = tokio::task::spawn_blocking(move || record(&catalog, &notifier, d.id, n, result)).await;
}

/// Records an attempt's outcome; a failure raises (once) a warning about the
/// integration, which a later delivery resolves.
fn record(catalog: &Catalog, n: &NotifierRecord, id: i64, attempts: u32, result: Result<String, String>) {
    let outcome = match result {
        Ok(answer) => {
            tracing::info!(notifier = %n.config.name, "notification {id} delivered: {answer}");
            let sent = catalog.delivery_sent(id, attempts, &answer);
            if let Ok(true) = catalog.resolve_alert(AlertKind::NotifyFailed, &n.config.name) {
                tracing::info!(notifier = %n.config.name, "notification integration {} delivers again", n.config.name);
            }
            sent
        }
        Err(error) => {
            let retry_at = (attempts <= n.config.retries).then(|| Timestamp::now() + backoff(attempts));
            let next = match retry_at {
                Some(t) => format!("retry {attempts} of {} at {t}", n.config.retries),
                None => format!("given up after {attempts} attempts"),
            };
            let text = format!(
                "notification integration {} cannot deliver notification {id}: {error} ({next})",
                n.config.name
            );
            tracing::warn!(notifier = %n.config.name, "{text}");
            super::raise(catalog, NewAlert::new(AlertLevel::Warning, AlertKind::NotifyFailed, &n.config.name, text));
            catalog.delivery_failed(id, attempts, &error, retry_at)
        }
    };
    if let Err(e) = outcome {
        tracing::error!("recording notification {id}: {e}");
    }
}

/// Queues the digest of every integration whose digest time of the day has
/// come and that has not made today's yet: one message holding every alert
/// held for it since its previous digest.
fn make_digests(catalog: &Catalog, now: Timestamp) -> Result<(), crate::catalog::CatalogError> {
    let zone = crate::settings::schedule_time_zone(&catalog.settings()?);
    let today = now.to_zoned(zone.clone());
    let day = today.date().to_string();
    for n in catalog.notifiers()? {
        let takes_digests =
            hindsight_api::AlertLevel::ALL.iter().any(|l| n.config.levels.of(*l) == Some(Frequency::Digest));
        if n.config.disabled || !takes_digests || n.last_digest.as_deref() == Some(day.as_str()) {
            continue;
        }
        let Ok((h, m)) = super::settings::digest_time(&n.config.digest_at) else { continue };
        let due = today.date().at(h, m, 0, 0).to_zoned(zone.clone()).map(|z| z.timestamp());
        if !due.is_ok_and(|t| now >= t) {
            continue;
        }
        let waiting = catalog.waiting_deliveries(n.id)?;
        let alerts: Vec<AlertMessage> = waiting
            .iter()
            .filter_map(|(_, body)| match Message::parse(body) {
                Ok(Message::Alert(a)) => Some(a),
                _ => None,
            })
            .collect();
        let ids: Vec<i64> = waiting.iter().map(|(id, _)| *id).collect();
        let body = (!alerts.is_empty()).then(|| {
            Message::Digest(DigestMessage { digest: true, host: crate::host::hostname(), time: now, alerts }).json()
        });
        catalog.queue_digest(n.id, &day, &ids, body.as_deref())?;
        if body.is_some() {
            tracing::info!(notifier = %n.config.name, "daily digest of {} alerts queued", ids.len());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_up_to_an_hour() {
        let waits: Vec<i64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]);
        assert_eq!(backoff(1000).as_secs(), 3600);
    }
}

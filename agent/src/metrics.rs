//! Prometheus metrics: `hindsightd --metrics-listen ADDR` serves `GET
//! /metrics` in the text exposition format (0.0.4), computed from the
//! catalog at each scrape. Labels are job and destination names only, never
//! snapshot names, run ids or paths, so that series stay few and stable.
//!
//! The listener is plain HTTP without authentication, like every exporter:
//! bind it to loopback, or put it behind what guards your other exporters.
//! What it shows is what `hindsight status` shows, minus paths and messages.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use hindsight_api::{AlertLevel, RunState};
use jiff::Timestamp;

use crate::catalog::Catalog;

/// What a scrape reads.
#[derive(Clone)]
pub(crate) struct MetricsState {
    /// The catalog.
    pub catalog: Arc<Catalog>,
    /// When the agent started.
    pub started: Instant,
}

/// The exporter's routes.
pub(crate) fn router(state: MetricsState) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(state)
}

async fn scrape(State(s): State<MetricsState>) -> axum::response::Response {
    match tokio::task::spawn_blocking(move || render(&s.catalog, s.started)).await {
        Ok(Ok(text)) => ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Ok(Err(e)) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("catalog: {e}\n")).into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// A metric family being written: HELP and TYPE once, then its samples.
struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
        let _ = writeln!(self.text, "{name}{labels} {value}");
    }
}

/// A label value as the exposition format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn seconds(t: &Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// The exposition text of the agent's state now.
pub(crate) fn render(catalog: &Catalog, started: Instant) -> Result<String, crate::catalog::CatalogError> {
    let mut o = Out { text: String::new() };
    o.family("hindsight_build_info", "gauge", "The agent's version (always 1).");
    o.sample("hindsight_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    o.family("hindsight_uptime_seconds", "gauge", "Seconds since the agent started.");
    o.sample("hindsight_uptime_seconds", &[], started.elapsed().as_secs_f64().floor());

    let queued = catalog.runs_in_state(RunState::Queued)?.len();
    let running = catalog.runs_in_state(RunState::Running)?.len();
    o.family("hindsight_runs_queued", "gauge", "Runs waiting in the queue.");
    o.sample("hindsight_runs_queued", &[], queued as f64);
    o.family("hindsight_runs_running", "gauge", "Runs running.");
    o.sample("hindsight_runs_running", &[], running as f64);

    let alerts = catalog.alerts(false)?;
    o.family("hindsight_alerts_open", "gauge", "Alerts not acknowledged, by level.");
    for level in AlertLevel::ALL {
        let n = alerts.iter().filter(|a| a.level == *level).count();
        o.sample("hindsight_alerts_open", &[("level", level.as_str())], n as f64);
    }

    job_metrics(catalog, &mut o)?;
    snapshot_metrics(catalog, &mut o)?;
    destination_metrics(catalog, &mut o)?;
    Ok(o.text)
}

/// Reads one counter of a run.
type Counter = fn(&hindsight_api::Counters) -> u64;

/// The last run of each job.
fn job_metrics(catalog: &Catalog, o: &mut Out) -> Result<(), crate::catalog::CatalogError> {
    let jobs = catalog.jobs()?;
    let mut runs = Vec::new();
    for j in &jobs {
        if let Some(last) = &j.last_run
            && last.state.is_final()
        {
            runs.push((j.name.as_str(), catalog.run(last.id)?));
        }
    }
    o.family("hindsight_job_enabled", "gauge", "1 when the job is enabled.");
    for j in &jobs {
        o.sample("hindsight_job_enabled", &[("job", &j.name)], if j.disabled { 0.0 } else { 1.0 });
    }
    o.family("hindsight_job_last_run_state", "gauge", "The state of the job's last finished run (1 for its state).");
    for (job, r) in &runs {
        for st in RunState::ALL.iter().filter(|s| s.is_final() && **s != RunState::Skipped) {
            o.sample(
                "hindsight_job_last_run_state",
                &[("job", job), ("state", st.as_str())],
                f64::from(u8::from(r.state == *st)),
            );
        }
    }
    o.family("hindsight_job_last_run_end_timestamp_seconds", "gauge", "When the job's last finished run ended.");
    for (job, r) in &runs {
        if let Some(t) = &r.finished_at {
            o.sample("hindsight_job_last_run_end_timestamp_seconds", &[("job", job)], seconds(t));
        }
    }
    o.family("hindsight_job_last_run_duration_seconds", "gauge", "How long the job's last finished run took.");
    for (job, r) in &runs {
        if let (Some(a), Some(b)) = (&r.started_at, &r.finished_at) {
            o.sample("hindsight_job_last_run_duration_seconds", &[("job", job)], b.duration_since(*a).as_secs_f64());
        }
    }
    let counters: [(&str, &str, Counter); 5] = [
        ("hindsight_job_last_run_files_scanned", "Files the job's last finished run looked at.", |c| c.files_scanned),
        ("hindsight_job_last_run_bytes_scanned", "Bytes of the files the job's last finished run looked at.", |c| {
            c.bytes_scanned
        }),
        ("hindsight_job_last_run_files_added", "Files the job's last finished run stored anew.", |c| c.files_copied),
        ("hindsight_job_last_run_bytes_added", "Bytes the job's last finished run stored anew.", |c| c.bytes_copied),
        ("hindsight_job_last_run_files_failed", "Files the job's last finished run could not back up.", |c| {
            c.files_failed
        }),
    ];
    for (name, help, get) in counters {
        o.family(name, "gauge", help);
        for (job, r) in &runs {
            o.sample(name, &[("job", job)], get(&r.stats) as f64);
        }
    }
    Ok(())
}

/// The newest complete snapshot of each job on each destination.
fn snapshot_metrics(catalog: &Catalog, o: &mut Out) -> Result<(), crate::catalog::CatalogError> {
    let mut newest: BTreeMap<(String, String), (Timestamp, usize)> = BTreeMap::new();
    for s in catalog.snapshots(None, None)? {
        let e = newest.entry((s.job.clone(), s.destination.clone())).or_insert((Timestamp::UNIX_EPOCH, 0));
        e.1 += 1;
        if !s.partial && s.finished > e.0 {
            e.0 = s.finished;
        }
    }
    o.family(
        "hindsight_last_success_timestamp_seconds",
        "gauge",
        "When the newest complete snapshot of the job on the destination was finished.",
    );
    for ((job, dest), (t, _)) in &newest {
        if *t > Timestamp::UNIX_EPOCH {
            o.sample("hindsight_last_success_timestamp_seconds", &[("job", job), ("destination", dest)], seconds(t));
        }
    }
    o.family("hindsight_snapshots", "gauge", "Snapshots of the job on the destination.");
    for ((job, dest), (_, n)) in &newest {
        o.sample("hindsight_snapshots", &[("job", job), ("destination", dest)], *n as f64);
    }
    Ok(())
}

/// Each destination's usage, limit and last check.
fn destination_metrics(catalog: &Catalog, o: &mut Out) -> Result<(), crate::catalog::CatalogError> {
    let dests = catalog.destinations()?;
    o.family(
        "hindsight_destination_used_bytes",
        "gauge",
        "Bytes used on the destination's filesystem or service, as last measured.",
    );
    o.family(
        "hindsight_destination_size_bytes",
        "gauge",
        "Size of the destination's filesystem, as last measured (0: unknown).",
    );
    o.family(
        "hindsight_destination_disk_limit_ratio",
        "gauge",
        "Backups are refused at or above this used fraction (0: no limit).",
    );
    o.family("hindsight_destination_usage_updated_timestamp_seconds", "gauge", "When the usage was measured.");
    for d in &dests {
        let labels = [("destination", d.name.as_str())];
        if let Some(u) = &d.disk_usage {
            o.sample("hindsight_destination_used_bytes", &labels, u.usage as f64);
            o.sample("hindsight_destination_size_bytes", &labels, u.total as f64);
            o.sample("hindsight_destination_usage_updated_timestamp_seconds", &labels, seconds(&u.updated));
        }
        o.sample("hindsight_destination_disk_limit_ratio", &labels, f64::from(d.disk_limit) / 100.0);
    }
    o.family("hindsight_destination_last_check_timestamp_seconds", "gauge", "When the last integrity check ended.");
    o.family("hindsight_destination_last_check_ok", "gauge", "1 when the last integrity check found no problem.");
    o.family("hindsight_destination_last_check_problems", "gauge", "Problems the last integrity check found.");
    for d in &dests {
        if let Some(c) = &d.check.last {
            let labels = [("destination", d.name.as_str())];
            o.sample("hindsight_destination_last_check_timestamp_seconds", &labels, seconds(&c.finished));
            o.sample("hindsight_destination_last_check_ok", &labels, f64::from(u8::from(c.ok)));
            o.sample("hindsight_destination_last_check_problems", &labels, f64::from(c.problems));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut o = Out { text: String::new() };
        o.sample("m", &[("job", "a\"b\\c\nd")], 1.5);
        assert_eq!(o.text, "m{job=\"a\\\"b\\\\c\\nd\"} 1.5\n");
    }
}

//! Dead-man-switch pings (healthchecks.io style) of a job: `URL/start` when
//! a run starts, `URL` when it completes, `URL/fail` when it fails or is
//! partial, with the run's summary as the body. A ping service alerts when
//! pings stop coming, which no agent-side alert can do for a dead agent.
//!
//! Pings are sent on the runtime, each with a short timeout and two quick
//! retries; they never delay or fail the run. The end ping waits for the
//! start ping, so the service sees them in order.

use std::time::Duration;

use tokio::task::JoinHandle;

/// One ping's timeout.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Waits before the retries.
const RETRIES: [Duration; 2] = [Duration::from_secs(2), Duration::from_secs(10)];
/// Most bytes of a run summary sent.
const BODY_MAX: usize = 10_000;

/// Which ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ping {
    /// The run started.
    Start,
    /// The run completed.
    Success,
    /// The run failed or was partial.
    Fail,
}

/// The URL of a ping: the job's URL with `/start` or `/fail` appended to
/// its path (a query string stays at the end).
pub(crate) fn url(base: &str, ping: Ping) -> String {
    let suffix = match ping {
        Ping::Start => "/start",
        Ping::Success => "",
        Ping::Fail => "/fail",
    };
    let (path, query) = match base.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (base, None),
    };
    let path = path.trim_end_matches('/');
    match query {
        Some(q) => format!("{path}{suffix}?{q}"),
        None => format!("{path}{suffix}"),
    }
}

/// Sends a ping in the background, after `after` (the start ping) is done.
pub(crate) fn send(
    runtime: &tokio::runtime::Handle,
    base: &str,
    ping: Ping,
    body: String,
    after: Option<JoinHandle<()>>,
) -> JoinHandle<()> {
    let target = url(base, ping);
    runtime.spawn(async move {
        if let Some(h) = after {
            let _ = h.await;
        }
        let mut body = body;
        if body.len() > BODY_MAX {
            let mut cut = BODY_MAX;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
        }
        let mut last = String::new();
        for wait in std::iter::once(Duration::ZERO).chain(RETRIES) {
            tokio::time::sleep(wait).await;
            match attempt(&target, &body).await {
                Ok(()) => return,
                Err(e) => last = e,
            }
        }
        // The URL often holds the check's secret token: it is not logged.
        tracing::warn!("the {ping:?} ping of a job could not be sent: {last}");
    })
}

async fn attempt(target: &str, body: &str) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("hindsight/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.without_url().to_string())?;
    let response = client.post(target).body(body.to_string()).send().await.map_err(|e| e.without_url().to_string())?;
    let status = response.status();
    if status.is_success() { Ok(()) } else { Err(format!("HTTP {status}")) }
}

/// The body of an end ping: the run's outcome in a few lines.
pub(crate) fn summary(run: hindsight_api::RunId, job: &str, u: &crate::catalog::RunUpdate) -> String {
    let s = &u.stats;
    let mut out = format!(
        "run {run} of job {job}: {}\nfiles: {} scanned, {} linked, {} copied, {} failed; bytes: {} scanned, {} copied\n",
        u.state, s.files_scanned, s.files_linked, s.files_copied, s.files_failed, s.bytes_scanned, s.bytes_copied
    );
    if let Some(m) = &u.message {
        out.push_str(&format!("{m}\n"));
    }
    for d in &u.destinations {
        let what = d.snapshot.as_deref().or(d.message.as_deref()).unwrap_or("");
        out.push_str(&format!("{}: {} {what}\n", d.destination, d.state));
    }
    out
}

/// Checks a ping URL given by a user.
pub(crate) fn check(base: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(base).map_err(|e| format!("ping URL: {base:?} is not a URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!("ping URL: {base:?} is not an http:// or https:// URL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_fail_go_at_the_end_of_the_path() {
        assert_eq!(url("https://hc-ping.com/abc", Ping::Start), "https://hc-ping.com/abc/start");
        assert_eq!(url("https://hc-ping.com/abc/", Ping::Success), "https://hc-ping.com/abc");
        assert_eq!(url("http://127.0.0.1:8000/ping/x?rid=1", Ping::Fail), "http://127.0.0.1:8000/ping/x/fail?rid=1");
        assert!(check("ftp://x/").is_err() && check("http://127.0.0.1:9/p").is_ok());
    }
}

//! The systemd notify protocol (`Type=notify` units): `READY=1` once the API
//! socket and the mount are up, `STATUS=` with what the agent is doing (a
//! running job, or the next run), `WATCHDOG=1` at half the watchdog interval
//! when the unit sets `WatchdogSec=`, and `STOPPING=1` when the shutdown
//! begins. Without `NOTIFY_SOCKET` (not started by systemd) nothing is sent.
//!
//! Each message is one datagram to the socket systemd names, a path or an
//! abstract name (`@...`).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::Catalog;
use crate::model::RunState;
use crate::shutdown::Shutdown;

/// How often the status line is brought up to date.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Where notifications go, if anywhere.
#[derive(Clone)]
pub(crate) struct Notifier {
    target: Option<Arc<(UnixDatagram, SocketAddr)>>,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` asks for (a silent one without it).
    pub(crate) fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|name| {
            let name = name.to_string_lossy().into_owned();
            let addr = match name.strip_prefix('@') {
                Some(abs) => SocketAddr::from_abstract_name(abs.as_bytes()),
                None => SocketAddr::from_pathname(&name),
            };
            match (addr, UnixDatagram::unbound()) {
                (Ok(a), Ok(s)) => Some(Arc::new((s, a))),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!("NOTIFY_SOCKET {name:?} cannot be used: {e}");
                    None
                }
            }
        });
        Notifier { target }
    }

    /// Sends one message (`KEY=VALUE` lines); a failure is logged once per message, never fatal.
    pub(crate) fn send(&self, message: &str) {
        if let Some(t) = &self.target
            && let Err(e) = t.0.send_to_addr(message.as_bytes(), &t.1)
        {
            tracing::debug!("systemd notification {message:?} not sent: {e}");
        }
    }

    /// True when started by systemd with a notify socket.
    pub(crate) fn enabled(&self) -> bool {
        self.target.is_some()
    }
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`, for this process).
fn watchdog_interval() -> Option<Duration> {
    let pid_ok = std::env::var("WATCHDOG_PID").map_or(true, |p| p.trim() == std::process::id().to_string());
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (pid_ok && usec > 0).then(|| Duration::from_micros(usec))
}

/// What the agent is doing, in one line.
fn status_line(catalog: &Catalog) -> String {
    let running = catalog.runs_in_state(RunState::Running).unwrap_or_default();
    let queued = catalog.runs_in_state(RunState::Queued).map(|q| q.len()).unwrap_or(0);
    if let Some(r) = running.first() {
        let more = if running.len() > 1 { format!(" and {} more", running.len() - 1) } else { String::new() };
        return format!("backing up job {} (run {}){more}; {queued} queued", r.job, r.id);
    }
    let next = catalog
        .jobs()
        .unwrap_or_default()
        .into_iter()
        .filter(|j| !j.disabled)
        .filter_map(|j| j.next_run.map(|t| (t, j.name)))
        .min();
    match next {
        Some((t, job)) => format!("idle; next run: job {job} at {t}"),
        None => "idle; no scheduled run".into(),
    }
}

/// Keeps the status line and the watchdog going until shutdown.
pub(crate) async fn run(notifier: Notifier, catalog: Arc<Catalog>, shutdown: Shutdown) {
    if !notifier.enabled() {
        return;
    }
    let watchdog = watchdog_interval().map(|d| d / 2);
    let mut last = String::new();
    let mut tick = tokio::time::interval(watchdog.map_or(STATUS_EVERY, |w| w.min(STATUS_EVERY)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.requested() => return,
        }
        if watchdog.is_some() {
            notifier.send("WATCHDOG=1");
        }
        let c = catalog.clone();
        if let Ok(line) = tokio::task::spawn_blocking(move || status_line(&c)).await
            && line != last
        {
            notifier.send(&format!("STATUS={line}"));
            last = line;
        }
    }
}

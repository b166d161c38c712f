//! Start-up and shutdown of the agent.
//!
//! Start: take the state directory's lock (a second daemon on the same state
//! directory refuses to start), open the catalog, fail runs a crash left
//! running, reconcile destinations, bind the API socket (mode 0600), start the
//! run queue and the scheduler. Shutdown on SIGTERM/SIGINT: stop accepting requests and runs,
//! cancel running backups (their `.partial-*` stay resumable), remove the
//! socket, exit 0. Every step of the shutdown has a time limit: a hung
//! filesystem (a destination that stopped answering, the mount) is detached
//! and left behind rather than keeping the agent from stopping.
//!
//! The agent runs as root on servers with other users: it creates its files
//! with umask 077 (the state directory, caches, destinations' files are the
//! agent's alone), binds the socket in a private directory where it gets its
//! mode before it is moved into place, and gives a client [`HEADER_TIMEOUT`]
//! to send a request's headers.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::api::{self, AppState};
use crate::catalog::Catalog;
use crate::config::DaemonConfig;
use crate::runner::Runner;
use crate::scheduler::Scheduler;
use crate::shutdown::Shutdown;

/// How often the scheduler looks for due schedules and checks monitors.
const SCHEDULER_TICK: Duration = Duration::from_secs(1);
/// How long a client may take to send the headers of a request.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests under way (a long poll) may take to finish at shutdown.
const REQUESTS_GRACE: Duration = Duration::from_secs(5);
/// How long running backups, the deleter and prunes may take to stop at
/// shutdown (what they leave is resumed or finished later).
const RUNS_GRACE: Duration = Duration::from_secs(30);
/// How long the snapshot filesystem may take to unmount before it is detached.
const UNMOUNT_GRACE: Duration = Duration::from_secs(10);
/// How long the process waits, on its way out, for blocking work still going.
pub const EXIT_GRACE: Duration = Duration::from_secs(2);
use hindsight_fs::lock;
use hindsight_fs::mount::{DestinationView, Layout, MountConfig, MountHandle};

/// Holds the state directory's `flock` for the life of the daemon.
pub struct StateLock {
    _fd: OwnedFd,
}

/// Takes the exclusive lock on `state_dir/hindsightd.lock`.
pub fn lock_state_dir(state_dir: &Path) -> anyhow::Result<StateLock> {
    hindsight_fs::create_private_dir_all(state_dir)
        .with_context(|| format!("creating state dir {}", state_dir.display()))?;
    std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("securing state dir {}", state_dir.display()))?;
    let path = state_dir.join("hindsightd.lock");
    let fd = rustix::fs::open(
        &path,
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CREATE | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .with_context(|| format!("opening {}", path.display()))?;
    match rustix::fs::flock(fd.as_fd(), rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            bail!("another hindsightd is already running with state dir {} (pid {})", state_dir.display(), pid.trim());
        }
        Err(e) => return Err(e).with_context(|| format!("locking {}", path.display())),
    }
    rustix::fs::ftruncate(fd.as_fd(), 0).ok();
    rustix::io::pwrite(fd.as_fd(), format!("{}\n", std::process::id()).as_bytes(), 0).ok();
    Ok(StateLock { _fd: fd })
}

/// Binds the API socket at `path` with mode 0600 from the start: it is
/// bound in a new private directory beside `path`, given its mode there, then
/// renamed into place, so that no one can connect to it, or swap it for a
/// symlink, before it is private.
fn bind_socket(path: &Path) -> anyhow::Result<UnixListener> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    hindsight_fs::create_private_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let private = dir.join(format!(".hs-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| format!("creating {}", private.display()))?;
    let bound = (|| {
        let tmp = private.join("s");
        let listener = UnixListener::bind(&tmp).with_context(|| format!("binding API socket {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("securing socket {}", tmp.display()))?;
        // We hold the state lock, so a socket file at `path` is a leftover of a crash: replaced.
        std::fs::rename(&tmp, path).with_context(|| format!("moving the API socket to {}", path.display()))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    bound
}

/// A listener [`serve`] takes connections from: the API's Unix socket, the
/// metrics' TCP port.
trait Accept {
    type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    fn accept_one(&self) -> impl std::future::Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Accept for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept_one(&self) -> std::io::Result<Self::Io> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept_one(&self) -> std::io::Result<Self::Io> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Serves `router` on `listener` until `shutdown` completes: HTTP/1 with a
/// limit on the time a client takes to send its headers (a half-sent request
/// does not hold a connection open forever), then lets the requests under
/// way finish for at most [`REQUESTS_GRACE`].
async fn serve<L: Accept>(listener: L, router: axum::Router, shutdown: impl std::future::Future<Output = ()>) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept_one() => {
                let stream = match accepted {
                    Ok(stream) => stream,
                    Err(e) => {
                        // Out of descriptors, most likely: breathe, then go on accepting.
                        tracing::warn!("API: cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("API connection: {e}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(REQUESTS_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("API requests still under way after {} s are dropped", REQUESTS_GRACE.as_secs());
    }
}

/// Mounts every destination's snapshots on `dir` (created if missing); the
/// mount follows the catalog's destinations at every refresh.
async fn mount_snapshots(dir: &Path, catalog: Arc<Catalog>, cache: PathBuf) -> anyhow::Result<MountHandle> {
    // A dead mount left by a crash exists but fails to stat (ENOTCONN); the
    // mount cleans it up, so "exists" is fine here.
    let missing = std::fs::symlink_metadata(dir).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    match std::fs::create_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(e).with_context(|| format!("creating mountpoint {}", dir.display()));
        }
        // Every user browses the mount: its directory is traversable (the
        // agent's umask would have made it the agent's alone).
        _ if missing => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("creating mountpoint {}", dir.display()))?,
        _ => {}
    }
    // Read once: the mount's cache is sized when it starts.
    let cache_bytes = catalog.settings().map_or(32, |s| s.cache_size as usize) << 20;
    // A destination that cannot be read this time (the catalog busy, a secret
    // unreadable) keeps its last view: dropping it would make the kernel
    // forget everything under it, and give its snapshots new node numbers.
    let last: std::sync::Mutex<Vec<DestinationView>> = std::sync::Mutex::new(Vec::new());
    let source = move || {
        let mut last = lock(&last);
        let dests = match catalog.destinations() {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!("mount: cannot list the destinations (showing the last listing): {e}");
                return last.clone();
            }
        };
        let views: Vec<DestinationView> = dests
            .into_iter()
            .filter_map(|d| {
                let view = crate::destinations::open(catalog.master_key(), &d)
                    .map_err(|e| e.message)
                    .and_then(|t| Ok(DestinationView::new(d.name.clone(), d.hidden, t, d.cache_dir(&cache)?)));
                match view {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::debug!(destination = %d.name, "mount: cannot open the destination (showing the last view): {e}");
                        last.iter().find(|v| v.name == d.name).cloned()
                    }
                }
            })
            .collect();
        *last = views.clone();
        views
    };
    let config = MountConfig {
        mountpoint: dir.to_path_buf(),
        layout: Layout::Destinations(Arc::new(source)),
        threads: 2,
        cache_bytes,
    };
    let handle = tokio::task::spawn_blocking(move || hindsight_fs::mount::spawn(config)).await?.with_context(|| {
        format!("mounting the snapshot filesystem on {} (use --no-mount to run without it)", dir.display())
    })?;
    Ok(handle)
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: DaemonConfig) -> anyhow::Result<()> {
    // Whatever the agent creates is its own unless it says otherwise (the
    // destinations' trees get their recorded modes explicitly).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let _lock = lock_state_dir(&config.state_dir)?;
    // A deep walk keeps three directory descriptors per level open.
    hindsight_fs::posix::raise_fd_limit();
    let catalog = Arc::new(
        Catalog::open(&config.state_dir.join("catalog.sqlite"))
            .with_context(|| format!("opening the catalog in {}", config.state_dir.display()))?,
    );
    let left = crate::databases::remove_leftovers(&config.state_dir);
    if left > 0 {
        tracing::warn!("removed {left} database credentials file(s) the previous stop left in the state directory");
    }
    let failed = catalog.fail_interrupted_runs()?;
    if failed > 0 {
        tracing::warn!("{failed} run(s) were interrupted by the previous stop and are marked failed");
    }
    {
        let c = catalog.clone();
        tokio::task::spawn_blocking(move || crate::snapshots::reconcile_all(&c)).await?;
    }
    // The local caches of remote destinations (indexes, manifests, locks).
    let cache_dir = config.state_dir.join(crate::config::CACHE_DIR);
    let mount = match &config.mountpoint {
        Some(m) => Some(mount_snapshots(m, catalog.clone(), cache_dir.clone()).await?),
        None => None,
    };
    let own_dirs = [Some(config.state_dir.clone()), config.mountpoint.clone()].into_iter().flatten().collect();
    let clock: Arc<dyn crate::schedule::Clock> = Arc::new(crate::schedule::SystemClock);
    let shutdown = Shutdown::new();
    let runner =
        Runner::new(catalog.clone(), config.concurrency, own_dirs, config.state_dir.clone(), clock.clone(), &shutdown);
    if let Some(m) = &mount {
        runner.attach_mount(m.refresher());
    }
    let scheduler = Scheduler::new(catalog.clone(), runner.clone(), clock.clone());
    let listener = bind_socket(&config.socket)?;
    let metrics = match config.metrics_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("listening for metrics scrapes on {addr} (--metrics-listen): another program may hold that address")
        })?),
        None => None,
    };
    let tasks =
        crate::tasks::Tasks::new(catalog.clone(), config.state_dir.clone(), runner.own_dirs().to_vec(), &shutdown);
    shutdown.spawn(tasks.clone().dispatch_loop());
    let state = AppState {
        catalog: catalog.clone(),
        runner: runner.clone(),
        scheduler: scheduler.clone(),
        tasks,
        started: Instant::now(),
        state_dir: config.state_dir.clone(),
    };
    shutdown.spawn(runner.clone().dispatch_loop());
    shutdown.spawn(scheduler.run_loop(SCHEDULER_TICK, shutdown.clone()));
    shutdown.spawn(crate::notify::run(catalog.clone(), clock.clone(), shutdown.clone()));
    shutdown.spawn(crate::check_schedule::run(catalog.clone(), cache_dir.clone(), clock, shutdown.clone()));
    if let Some(listener) = metrics {
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let router =
            crate::metrics::router(crate::metrics::MetricsState { catalog: catalog.clone(), started: state.started });
        let stop = shutdown.clone();
        shutdown.spawn(async move { serve(listener, router, async move { stop.requested().await }).await });
        tracing::info!("serving metrics on http://{addr}/metrics");
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // Ready: the socket is bound (connections queue until `serve` takes
    // them), the mount is up, and a stop signal is handled from here on.
    let notifier = crate::sd_notify::Notifier::from_env();
    notifier.send("READY=1\nSTATUS=ready");
    shutdown.spawn(crate::sd_notify::run(notifier.clone(), catalog.clone(), shutdown.clone()));
    tracing::info!(socket = %config.socket.display(), state_dir = %config.state_dir.display(), "hindsightd ready");

    let signalled = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    };
    serve(listener, api::router(state), signalled).await;
    notifier.send("STOPPING=1\nSTATUS=stopping: cancelling runs, unmounting");
    // One signal for the dispatcher, the scheduler, every run, the deleter and
    // the prunes; then a bounded wait for all of them.
    shutdown.request();
    runner.cancel_runs();
    if !shutdown.stop(RUNS_GRACE).await {
        tracing::warn!(
            "work still running after {} s is abandoned (backups resume at the next run, deletions at the next start)",
            RUNS_GRACE.as_secs()
        );
    }
    if let Some(handle) = mount {
        let dir = handle.mountpoint().to_path_buf();
        match tokio::time::timeout(UNMOUNT_GRACE, tokio::task::spawn_blocking(move || handle.unmount())).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                // Busy (a shell sits in it): detach it so the mountpoint is freed when they leave.
                tracing::warn!("{e}; detaching the mount instead");
                hindsight_fs::mount::mountpoint::unmount(&dir)?;
            }
            Ok(Err(e)) => tracing::error!("unmounting {}: {e}", dir.display()),
            Err(_) => {
                tracing::warn!(
                    "the snapshot filesystem did not stop within {} s; detaching it",
                    UNMOUNT_GRACE.as_secs()
                );
                hindsight_fs::mount::mountpoint::unmount(&dir)?;
            }
        }
    }
    let _ = std::fs::remove_file(&config.socket);
    hindsight_fs::remote::remove_private_dir();
    tracing::info!("hindsightd stopped");
    Ok(())
}

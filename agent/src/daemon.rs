//! Start-up and shutdown of the agent.
//!
//! Start: take the state directory's lock (a second daemon on the same state
//! directory refuses to start), open the catalog, fail runs a crash left
//! running, reconcile destinations, bind the API socket (mode 0600), start the
//! run queue and the scheduler. Shutdown on SIGTERM/SIGINT: stop accepting requests and runs,
//! cancel running backups (their `.partial-*` stay resumable), remove the
//! socket, exit 0.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::api::{self, AppState};
use crate::catalog::Catalog;
use crate::config::DaemonConfig;
use crate::runner::Runner;
use crate::scheduler::Scheduler;

/// How often the scheduler looks for due schedules and checks monitors.
const SCHEDULER_TICK: std::time::Duration = std::time::Duration::from_secs(1);
use hindsight_fs::mount::{DestinationView, Layout, MountConfig, MountHandle};

/// Holds the state directory's `flock` for the life of the daemon.
pub struct StateLock {
    _fd: OwnedFd,
}

/// Takes the exclusive lock on `state_dir/hindsightd.lock`.
pub fn lock_state_dir(state_dir: &Path) -> anyhow::Result<StateLock> {
    std::fs::create_dir_all(state_dir).with_context(|| format!("creating state dir {}", state_dir.display()))?;
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

fn bind_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // We hold the state lock, so a socket file here is a leftover of a crash.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale socket {}", path.display())),
    }
    let listener = UnixListener::bind(path).with_context(|| format!("binding API socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("securing socket {}", path.display()))?;
    Ok(listener)
}

/// Mounts every destination's snapshots on `dir` (created if missing); the
/// mount follows the catalog's destinations at every refresh.
async fn mount_snapshots(dir: &Path, catalog: Arc<Catalog>, cache: PathBuf) -> anyhow::Result<MountHandle> {
    // A dead mount left by a crash exists but fails to stat (ENOTCONN); the
    // mount cleans it up, so "exists" is fine here.
    match std::fs::create_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(e).with_context(|| format!("creating mountpoint {}", dir.display()));
        }
        _ => {}
    }
    // Read once: the mount's cache is sized when it starts.
    let cache_bytes = catalog.settings().map_or(32, |s| s.cache_size as usize) << 20;
    // A destination that cannot be read this time (the catalog busy, a secret
    // unreadable) keeps its last view: dropping it would make the kernel
    // forget everything under it, and give its snapshots new node numbers.
    let last: std::sync::Mutex<Vec<DestinationView>> = std::sync::Mutex::new(Vec::new());
    let source = move || {
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
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
                // Remote destinations browse from their local cache of indexes.
                let root = match crate::destinations::remote_store(&catalog, &d) {
                    Ok(Some(store)) => Ok((cache.join(&d.id), Some(store))),
                    Ok(None) => crate::destinations::local_root(&d)
                        .map(|r| (r.path().to_path_buf(), None))
                        .map_err(|e| e.message),
                    Err(e) => Err(e.message),
                };
                match root {
                    Ok((root, remote)) => Some(DestinationView { name: d.name, root, hidden: d.hidden, remote }),
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
    let _lock = lock_state_dir(&config.state_dir)?;
    // A deep walk keeps three directory descriptors per level open.
    hindsight_fs::posix::raise_fd_limit();
    let catalog = Arc::new(
        Catalog::open(&config.state_dir.join("catalog.sqlite"))
            .with_context(|| format!("opening the catalog in {}", config.state_dir.display()))?,
    );
    let failed = catalog.fail_interrupted_runs()?;
    if failed > 0 {
        tracing::warn!("{failed} run(s) were interrupted by the previous stop and are marked failed");
    }
    {
        let c = catalog.clone();
        tokio::task::spawn_blocking(move || crate::snapshots::reconcile_all(&c)).await?;
    }
    let mount = match &config.mountpoint {
        Some(m) => Some(mount_snapshots(m, catalog.clone(), config.state_dir.join("cache")).await?),
        None => None,
    };
    let own_dirs = [Some(config.state_dir.clone()), config.mountpoint.clone()].into_iter().flatten().collect();
    let clock: Arc<dyn crate::schedule::Clock> = Arc::new(crate::schedule::SystemClock);
    let runner =
        Runner::new(catalog.clone(), config.concurrency, own_dirs, config.state_dir.join("cache"), clock.clone());
    let scheduler = Scheduler::new(catalog.clone(), runner.clone(), clock);
    let listener = bind_socket(&config.socket)?;
    let state = AppState {
        catalog: catalog.clone(),
        runner: runner.clone(),
        scheduler: scheduler.clone(),
        started: Instant::now(),
        state_dir: config.state_dir.clone(),
    };
    let dispatcher = tokio::spawn(runner.clone().dispatch_loop());
    let ticker = tokio::spawn(scheduler.run_loop(SCHEDULER_TICK));
    tracing::info!(socket = %config.socket.display(), state_dir = %config.state_dir.display(), "hindsightd ready");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    };
    axum::serve(listener, api::router(state)).with_graceful_shutdown(shutdown).await?;
    ticker.abort();
    runner.shutdown().await;
    dispatcher.abort();
    if let Some(handle) = mount {
        let dir = handle.mountpoint().to_path_buf();
        let unmounted = tokio::task::spawn_blocking(move || handle.unmount()).await?;
        if let Err(e) = unmounted {
            // Busy (a shell sits in it): detach it so the mountpoint is freed when they leave.
            tracing::warn!("{e}; detaching the mount instead");
            hindsight_fs::mount::mountpoint::unmount(&dir)?;
        }
    }
    let _ = std::fs::remove_file(&config.socket);
    tracing::info!("hindsightd stopped");
    Ok(())
}

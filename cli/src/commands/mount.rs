//! `hindsight mount` / `hindsight umount`: a destination's snapshots mounted
//! with no agent and no catalog, for disaster recovery.

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hindsight_fs::layout::DestinationRoot;
use hindsight_fs::mount::{self, DestinationView, Layout, MountConfig, mountpoint};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::MountArgs;

/// Mounts in the foreground until Ctrl-C or `hindsight umount`; with
/// `--background`, starts itself detached and returns once the mount is up.
pub async fn mount(args: MountArgs) -> anyhow::Result<ExitCode> {
    let root = DestinationRoot::new(&args.destination);
    let marker = root.require_marker()?;
    mountpoint::prepare(&args.dir)?;
    if args.background {
        return background(&args);
    }
    let name = args
        .destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| marker.destination_id.clone());
    let handle = mount::spawn(MountConfig {
        mountpoint: args.dir.clone(),
        layout: Layout::Single(DestinationView { name, root: args.destination.clone(), hidden: false, remote: None }),
        threads: 2,
    })?;
    note(&format!(
        "mounted {} on {} (Ctrl-C or `hindsight umount {}` to stop)",
        args.destination.display(),
        args.dir.display(),
        args.dir.display()
    ));
    let waiter = tokio::task::spawn_blocking(move || handle.wait());
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        r = waiter => { r??; return Ok(ExitCode::SUCCESS); }
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    // The session thread ends once the kernel lets go of the mount.
    mountpoint::unmount(&args.dir)?;
    note(&format!("unmounted {}", args.dir.display()));
    Ok(ExitCode::SUCCESS)
}

/// Prints a progress line on stderr. A background mount's stderr is a pipe to
/// the command that started it, which is gone once the mount is up: a failed
/// write must not take the mount down.
fn note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn background(args: &MountArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the hindsight executable")?;
    let mut child = std::process::Command::new(exe)
        .arg("mount")
        .arg("--destination")
        .arg(&args.destination)
        .arg(&args.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group: the terminal's Ctrl-C does not reach it.
        .process_group(0)
        .spawn()
        .context("starting the background mount")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            bail!("the background mount stopped ({status}): {}", err.trim());
        }
        if mountpoint::is_mountpoint(&args.dir) {
            println!("mounted {} on {} in the background", args.destination.display(), args.dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    bail!("the background mount did not come up within 10 s")
}

use std::os::unix::process::CommandExt;

/// Unmounts a snapshot filesystem.
pub fn umount(dir: &Path) -> anyhow::Result<ExitCode> {
    if !mountpoint::is_mountpoint(dir) {
        bail!("{} is not mounted", dir.display());
    }
    rustix::mount::unmount(dir, rustix::mount::UnmountFlags::empty()).map_err(|e| {
        if e == rustix::io::Errno::BUSY {
            anyhow::anyhow!("{} is busy: a process is using it", dir.display())
        } else {
            anyhow::anyhow!("cannot unmount {}: {e}", dir.display())
        }
    })?;
    println!("unmounted {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

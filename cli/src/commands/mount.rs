//! `hindsight mount` / `hindsight umount`: a destination's snapshots mounted
//! with no agent and no catalog, for disaster recovery.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hindsight_fs::mount::{self, DestinationView, Layout, MountConfig, mountpoint};
use hindsight_fs::{Destination, DestinationRoot};
use tokio::signal::unix::{SignalKind, signal};

use serde_json::{Map, Value};

use crate::args::{MountArgs, OptionArgs};
use crate::commands::destination::collect_options;

/// Mounts in the foreground until Ctrl-C or `hindsight umount`; with
/// `--background`, starts itself detached and returns once the mount is up.
pub async fn mount(mut args: MountArgs) -> anyhow::Result<ExitCode> {
    let options = std::mem::replace(&mut args.options, OptionArgs { options: Vec::new(), option_files: Vec::new() });
    let (view, given) = destination_view(&args.destination, options)?;
    mountpoint::prepare(&args.dir)?;
    if args.background {
        return background(&args, &given);
    }
    let handle = mount::spawn(MountConfig {
        mountpoint: args.dir.clone(),
        layout: Layout::Single(view),
        threads: 2,
        cache_bytes: hindsight_fs::archive::DEFAULT_CACHE_BYTES,
    })?;
    note(&format!(
        "mounted {} on {} (Ctrl-C or `hindsight umount {}` to stop)",
        args.destination,
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

/// What the mount shows of `destination`: a local root (checked for its
/// marker) or a remote one, whose indexes are cached under the user's cache
/// directory; with the options given by flags and the environment.
fn destination_view(destination: &str, options: OptionArgs) -> anyhow::Result<(DestinationView, Map<String, Value>)> {
    let remote = hindsight_fs::remote::parse_url(destination, &Map::new()).is_some();
    let mut given = collect_options(None, options, false, remote)?;
    let Some(config) = hindsight_fs::remote::parse_url(destination, &Map::new()) else {
        if !given.is_empty() {
            bail!("--option applies to remote destinations (URLs) only");
        }
        let root = DestinationRoot::new(destination);
        let marker = root.require_marker()?;
        let path = Path::new(destination);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or(marker.destination_id);
        return Ok((DestinationView::new(name, false, Destination::Local(root), PathBuf::new()), given));
    };
    // Options from the environment fill what the flags did not give.
    let kind = config.map_err(anyhow::Error::msg)?.service;
    for def in kind.options() {
        if let Ok(v) = std::env::var(format!("HINDSIGHT_{}", def.name.to_uppercase())) {
            given.entry(def.name.to_string()).or_insert(Value::String(v));
        }
    }
    let config = hindsight_fs::remote::parse_url(destination, &given)
        .unwrap_or_else(|| Err("not a URL".into()))
        .map_err(anyhow::Error::msg)?;
    let store = hindsight_fs::remote::RemoteStore::new(config)?;
    let marker = store.require_marker()?;
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    // Keyed by what the user typed (the store's description holds no secret),
    // never by the marker's id: a destination says nothing about local paths.
    let key = blake3::hash(format!("{store:?}").as_bytes()).to_hex();
    let cache = base.join("hindsight").join(&key[..32]);
    hindsight_fs::create_private_dir_all(&cache)?;
    let name = marker.destination_id.clone();
    Ok((DestinationView::new(name, false, Destination::Remote(store), cache), given))
}

fn background(args: &MountArgs, given: &Map<String, Value>) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the hindsight executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("mount").arg("--destination").arg(&args.destination).arg(&args.dir);
    // The options go through the environment: secrets stay out of the process list.
    for (k, v) in given {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        cmd.env(format!("HINDSIGHT_{}", k.to_uppercase()), text);
    }
    let mut child = cmd
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
            println!("mounted {} on {} in the background", args.destination, args.dir.display());
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

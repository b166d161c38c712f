//! `hindsightd`'s command line, checked into a [`DaemonConfig`].

use std::path::PathBuf;

use clap::Parser;

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hindsight";
/// Default API socket.
pub const DEFAULT_SOCKET: &str = "/run/hindsight/hindsightd.sock";
/// Default mountpoint of the snapshot filesystem.
pub const DEFAULT_MOUNTPOINT: &str = "/mnt/hindsight";

/// The state directory's cache of remote destinations (indexes, journals, locks).
pub const CACHE_DIR: &str = "cache";

/// hindsightd: the Hindsight backup agent.
#[derive(Debug, Parser)]
#[command(
    name = "hindsightd",
    version,
    about = "The Hindsight backup agent: scheduled snapshots of directories and databases, the snapshot filesystem, and the API the hindsight CLI talks to (see hindsight(1))"
)]
pub struct Args {
    /// Directory of the catalog, the master key and the agent's lock.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Unix socket of the API (mode 0600).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Where to mount the snapshot filesystem.
    #[arg(long, value_name = "DIR", conflicts_with = "no_mount")]
    pub mountpoint: Option<PathBuf>,
    /// Do not mount the snapshot filesystem.
    #[arg(long)]
    pub no_mount: bool,
    /// Runs at once, over the `backup_concurrency` setting (default: the setting).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=10))]
    pub concurrency: Option<u8>,
    /// Serve Prometheus metrics on this address (http://ADDR/metrics), e.g.
    /// 127.0.0.1:9464; off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Print the manual page hindsightd(8) in roff and exit (`hindsightd --man | man -l -`).
    #[arg(long)]
    pub man: bool,
}

impl Args {
    /// hindsightd(8) in roff, from the same definitions as the parser.
    pub fn manual_page() -> std::io::Result<Vec<u8>> {
        use clap::CommandFactory;
        let mut out = Vec::new();
        clap_mangen::Man::new(Args::command()).section("8").render(&mut out)?;
        Ok(out)
    }
}

/// The daemon's validated configuration.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// State directory (absolute).
    pub state_dir: PathBuf,
    /// API socket path (absolute).
    pub socket: PathBuf,
    /// Mountpoint, or none with `--no-mount`.
    pub mountpoint: Option<PathBuf>,
    /// Runs at once, when given on the command line (else the setting).
    pub concurrency: Option<usize>,
    /// Where to serve metrics, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Args {
    /// Validates the flags.
    pub fn into_config(self) -> anyhow::Result<DaemonConfig> {
        let abs = |p: PathBuf| -> anyhow::Result<PathBuf> {
            Ok(if p.is_absolute() { p } else { std::env::current_dir()?.join(p) })
        };
        Ok(DaemonConfig {
            state_dir: abs(self.state_dir)?,
            socket: abs(self.socket)?,
            mountpoint: if self.no_mount {
                None
            } else {
                Some(abs(self.mountpoint.unwrap_or_else(|| DEFAULT_MOUNTPOINT.into()))?)
            },
            concurrency: self.concurrency.map(usize::from),
            metrics_listen: self.metrics_listen,
        })
    }
}

//! A remote destination's storage: one OpenDAL operator, built in one place
//! with its timeout, retry, concurrency and tracing layers, and used through
//! blocking calls from the backup threads and the mount.
//!
//! Every call runs on one small runtime owned by this module, whatever thread
//! calls it (backup threads, FUSE threads, the standalone mount), so callers
//! need no runtime of their own.

use std::sync::{Arc, LazyLock};

use opendal::layers::{ConcurrentLimitLayer, RetryLayer, TimeoutLayer, TracingLayer};
use opendal::{ErrorKind, Operator, services};

use super::config::{RemoteConfig, Service, Settings};
use super::ssh::SshClient;
use crate::error::{FsError, Result};

/// A drive builder with the OAuth credentials given, through its own setters
/// (the three drive services have the same four).
macro_rules! oauth {
    ($builder:expr, $o:expr) => {{
        let mut b = $builder;
        if let Some(v) = &$o.access_token {
            b = b.access_token(v);
        }
        if let Some(v) = &$o.refresh_token {
            b = b.refresh_token(v);
        }
        if let Some(v) = &$o.client_id {
            b = b.client_id(v);
        }
        if let Some(v) = &$o.client_secret {
            b = b.client_secret(v);
        }
        b
    }};
}
/// The runtime every remote call runs on: a couple of workers drive any number
/// of concurrent requests.
static RUNTIME: LazyLock<Option<tokio::runtime::Runtime>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("remote-io").enable_all().build().ok()
});

fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    RUNTIME.as_ref().ok_or_else(|| FsError::Internal("cannot start the runtime for remote destinations".into()))
}

/// A remote destination, ready for use: one of the two ways Hindsight reaches
/// a remote, each with its own content model. Code that must treat them
/// differently matches on this, so a new backend is a compile error at each
/// such place.
#[derive(Clone)]
pub enum RemoteStore {
    /// An object store reached through OpenDAL (S3, GCS, FTP, cloud drives):
    /// content-addressed snapshots.
    Objects(ObjectStore),
    /// A POSIX server over SSH: hardlink trees, the same as a local destination.
    Ssh(SshStore),
}

/// How a destination keeps file contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentModel {
    /// Each snapshot is a directory tree; unchanged files are hardlinks.
    HardlinkTree,
    /// Bodies are stored once under their blake3 (`blobs/`, `packs/`);
    /// snapshots are indexes pointing at them.
    Blobs,
}

/// An OpenDAL operator with its layers; the operator never leaves this crate.
#[derive(Clone)]
pub struct ObjectStore {
    op: Operator,
    config: Arc<RemoteConfig>,
}

/// An SSH server holding hardlink trees.
#[derive(Clone)]
pub struct SshStore {
    client: Arc<SshClient>,
    config: Arc<RemoteConfig>,
}

impl std::fmt::Debug for SshStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.client.fmt(f)
    }
}

impl std::ops::Deref for SshStore {
    type Target = SshClient;

    fn deref(&self) -> &SshClient {
        &self.client
    }
}

impl PartialEq for RemoteStore {
    fn eq(&self, other: &Self) -> bool {
        self.config() == other.config()
    }
}

impl Eq for RemoteStore {}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the options: they hold secrets.
        write!(f, "RemoteStore({} {})", self.config().service.name(), self.config().root())
    }
}

/// Wraps an OpenDAL error with the operation and the object.
pub(crate) fn error(op: &'static str, path: &str, e: opendal::Error) -> FsError {
    // The reason a user can act on is often deep in the chain (a refused
    // connection under the HTTP client's "error sending request"): name every
    // cause the message does not already show.
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    FsError::Remote {
        op,
        path: path.to_string(),
        // OpenDAL's retry layer marks every error it lets through "persistent",
        // permanent ones too, so the status no longer says whether a failure
        // may pass. Its kind still does: a transport failure (a refused or lost
        // connection, a timeout, a 5xx) is Unexpected, throttling RateLimited,
        // while a refusal the user must act on (credentials, a missing bucket,
        // a bad configuration) has its own kind.
        temporary: e.is_temporary()
            || (e.is_persistent() && matches!(e.kind(), ErrorKind::Unexpected | ErrorKind::RateLimited)),
        not_found: e.kind() == ErrorKind::NotFound,
        message,
    }
}

/// The HTTP client of a destination: certificates verified unless
/// `verify_tls=false` (S3 only), idle connections kept `keepalive` seconds
/// (S3 only; 0 keeps none, default 90), TCP keepalive probes on open ones.
fn http_transport(c: &RemoteConfig) -> Result<opendal::HttpTransporter> {
    let mut b = reqwest::Client::builder().tcp_keepalive(std::time::Duration::from_secs(30));
    if let Settings::S3(s3) = &c.settings {
        if !s3.verify_tls {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        b = match s3.keepalive {
            0 => b.pool_max_idle_per_host(0),
            s => b.pool_idle_timeout(std::time::Duration::from_secs(s)),
        };
    }
    let client = b.build().map_err(|e| FsError::Refused(format!("{}: HTTP client: {e}", c.service.name())))?;
    Ok(opendal::HttpTransporter::new(Transport(opendal_http_transport_reqwest::ReqwestTransport::new(client))))
}

/// OpenDAL's reqwest transport, but for a refused TLS certificate, which is
/// no temporary failure: retrying it with backoff only makes the refusal
/// come late, and without saying what to do.
struct Transport(opendal_http_transport_reqwest::ReqwestTransport);

impl opendal::HttpTransport for Transport {
    async fn fetch(&self, req: http::Request<opendal::Buffer>) -> opendal::Result<http::Response<opendal::HttpBody>> {
        self.0.fetch(req).await.map_err(|e| {
            let chain = format!("{e:?}");
            if chain.contains("certificate") || chain.contains("Certificate") {
                opendal::Error::new(
                    ErrorKind::PermissionDenied,
                    "the server's TLS certificate is not trusted (option verify_tls=false accepts it)",
                )
                .set_source(e)
            } else {
                e
            }
        })
    }
}

impl RemoteStore {
    /// Builds the store of `config` (no request is made).
    pub fn new(config: RemoteConfig) -> Result<Self> {
        opendal::install_default();
        let c = &config;
        let build_err = |e: opendal::Error| FsError::Refused(format!("{}: {e}", c.service.name()));
        let root = c.root();
        let op = match &c.settings {
            Settings::Ssh(s) => {
                let client = Arc::new(SshClient::new(s, &c.common)?);
                return Ok(RemoteStore::Ssh(SshStore { client, config: Arc::new(config) }));
            }
            Settings::S3(s) => {
                let mut b = services::S3::default()
                    .root(&root)
                    .bucket(&s.bucket)
                    .region(&s.region)
                    .disable_config_load()
                    .disable_ec2_metadata();
                if let Some(e) = &s.endpoint {
                    b = b.endpoint(e);
                }
                b = match &s.keys {
                    Some((a, k)) => b.access_key_id(a).secret_access_key(k),
                    None => b.skip_signature(),
                };
                if s.virtual_host {
                    b = b.enable_virtual_host_style();
                }
                Operator::new(b).map_err(build_err)?
            }
            Settings::Gcs(s) => {
                let mut b = services::Gcs::default().root(&root).bucket(&s.bucket);
                if let Some(f) = &s.credentials_file {
                    b = b.credential_path(f);
                }
                if let Some(cred) = &s.credentials {
                    b = b.credential(cred);
                }
                if let Some(e) = &s.endpoint {
                    b = b.endpoint(e);
                }
                Operator::new(b).map_err(build_err)?
            }
            Settings::Ftp(s) => {
                let scheme = if s.secure { "ftps" } else { "ftp" };
                let endpoint = format!("{scheme}://{}:{}", s.host, s.port);
                let mut b = services::Ftp::default().root(&root).endpoint(&endpoint);
                if let Some(u) = &s.username {
                    b = b.user(u);
                }
                if let Some(p) = &s.password {
                    b = b.password(p);
                }
                Operator::new(b).map_err(build_err)?
            }
            Settings::Drive(o) => match c.service {
                Service::Gdrive => {
                    Operator::new(oauth!(services::Gdrive::default().root(&root), o)).map_err(build_err)?
                }
                Service::Dropbox => {
                    Operator::new(oauth!(services::Dropbox::default().root(&root), o)).map_err(build_err)?
                }
                _ => Operator::new(oauth!(services::Onedrive::default().root(&root), o)).map_err(build_err)?,
            },
        };
        let op = match c.service {
            // FTP speaks its own protocol; the others, HTTP through this client.
            Service::Ftp => op,
            _ => {
                let ctx = op.base_context().with_http_transport(http_transport(c)?);
                op.with_context(ctx)
            }
        };
        let timeout = c.timeout();
        // Timeout below retry: a request that hangs is abandoned, then retried.
        let op = op
            .layer(TimeoutLayer::new().with_timeout(timeout).with_io_timeout(timeout))
            .layer(RetryLayer::new().with_max_times(c.retries()).with_jitter())
            .layer(ConcurrentLimitLayer::new(c.threads() * 2))
            .layer(TracingLayer::default());
        Ok(RemoteStore::Objects(ObjectStore { op, config: Arc::new(config) }))
    }

    /// The configuration (holds secrets: never log it).
    pub fn config(&self) -> &RemoteConfig {
        match self {
            RemoteStore::Objects(o) => &o.config,
            RemoteStore::Ssh(s) => &s.config,
        }
    }

    /// How this destination keeps file contents.
    pub fn content_model(&self) -> ContentModel {
        match self {
            RemoteStore::Objects(_) => ContentModel::Blobs,
            RemoteStore::Ssh(_) => ContentModel::HardlinkTree,
        }
    }

    /// Space on the destination, where the service can tell (an SSH server:
    /// `df` there); object stores cannot.
    pub fn disk_usage(&self) -> Option<Result<crate::local::DiskUsage>> {
        match self {
            RemoteStore::Ssh(ssh) => Some(ssh.disk_usage()),
            RemoteStore::Objects(_) => None,
        }
    }

    /// Reads a whole object.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        match self {
            RemoteStore::Ssh(ssh) => ssh.read(path),
            RemoteStore::Objects(o) => o.read(path),
        }
    }

    /// Reads `len` bytes of an object from `offset` (fewer at its end).
    pub fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        match self {
            RemoteStore::Ssh(ssh) => ssh.read_range(path, offset, len),
            RemoteStore::Objects(o) => o.read_range(path, offset, len),
        }
    }

    /// Like [`RemoteStore::read_range`], for a path given as bytes: file
    /// names in the trees of ssh destinations are not always UTF-8 (object
    /// stores' keys are text, and refused otherwise).
    pub fn read_range_raw(&self, path: &[u8], offset: u64, len: u64) -> Result<Vec<u8>> {
        match self {
            RemoteStore::Ssh(ssh) => ssh.read_range_raw(path, offset, len),
            RemoteStore::Objects(o) => {
                let text = std::str::from_utf8(path).map_err(|_| {
                    FsError::remote("read", String::from_utf8_lossy(path), "an object name that is not UTF-8")
                })?;
                o.read_range(text, offset, len)
            }
        }
    }

    /// Writes a whole object.
    pub fn write(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        match self {
            RemoteStore::Ssh(ssh) => ssh.write(path, &bytes),
            RemoteStore::Objects(o) => o.write(path, bytes),
        }
    }

    /// Starts writing a whole object without waiting for it: [`Upload::wait`]
    /// says how it went. Uploads of one store run at once, up to its
    /// concurrency limit (an ssh destination writes before returning).
    pub fn write_detached(&self, path: &str, bytes: Vec<u8>) -> Result<Upload> {
        match self {
            RemoteStore::Ssh(ssh) => Ok(Upload(UploadState::Done(ssh.write(path, &bytes)))),
            RemoteStore::Objects(o) => {
                let (op, p) = (o.op.clone(), path.to_string());
                let task =
                    spawn(async move { op.write(&p, bytes).await.map(|_| ()).map_err(|e| error("write", &p, e)) })?;
                Ok(Upload(UploadState::Running(task)))
            }
        }
    }

    /// Size of an object, `None` when it does not exist.
    pub fn size(&self, path: &str) -> Result<Option<u64>> {
        match self {
            RemoteStore::Ssh(ssh) => ssh.size(path),
            RemoteStore::Objects(o) => o.size(path),
        }
    }

    /// Names directly under `dir` (which ends with `/`); sub-directories end with `/`.
    pub fn list(&self, dir: &str) -> Result<Vec<String>> {
        match self {
            RemoteStore::Ssh(ssh) => ssh.list(dir),
            RemoteStore::Objects(o) => o.list(dir),
        }
    }

    /// Deletes one object; a missing one is not an error.
    pub fn delete(&self, path: &str) -> Result<()> {
        match self {
            RemoteStore::Ssh(ssh) => ssh.delete(path),
            RemoteStore::Objects(o) => o.delete(path),
        }
    }

    /// Deletes every object under `dir` (which ends with `/`).
    pub fn delete_all(&self, dir: &str) -> Result<()> {
        match self {
            RemoteStore::Ssh(ssh) => ssh.delete_all(dir),
            RemoteStore::Objects(o) => o.delete_all(dir),
        }
    }
}

/// An object being written in the background ([`RemoteStore::write_detached`]).
#[must_use = "an upload must be waited for to know whether it stored anything"]
pub struct Upload(UploadState);

enum UploadState {
    Running(tokio::task::JoinHandle<Result<()>>),
    Done(Result<()>),
}

impl Upload {
    /// Waits for the upload to end.
    pub fn wait(self) -> Result<()> {
        match self.0 {
            UploadState::Done(r) => r,
            UploadState::Running(task) => {
                block(task)?.map_err(|e| FsError::Internal(format!("an upload task failed: {e}")))?
            }
        }
    }
}

/// Runs a future on the remote runtime and waits for it.
pub(crate) fn block<F: std::future::Future + Send + 'static>(f: F) -> Result<F::Output>
where
    F::Output: Send + 'static,
{
    // Waiting on a channel rather than `block_on`: callers may themselves run
    // inside a runtime (the CLI's), where `block_on` panics.
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().map_err(|_| FsError::Internal("a remote task failed".into()))
}

/// Starts a future on the remote runtime without waiting.
fn spawn<F: std::future::Future + Send + 'static>(f: F) -> Result<tokio::task::JoinHandle<F::Output>>
where
    F::Output: Send + 'static,
{
    Ok(runtime()?.spawn(f))
}

impl ObjectStore {
    /// The configuration (holds secrets: never log it).
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// The async operator, for this crate's streams.
    pub(crate) fn operator(&self) -> &Operator {
        &self.op
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let (op, p) = (self.op.clone(), path.to_string());
        block(async move { op.read(&p).await.map(|b| b.to_vec()) })?.map_err(|e| error("read", path, e))
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut tries = 0;
        loop {
            let (op, p) = (self.op.clone(), path.to_string());
            let got = block(async move { op.read_with(&p).range(offset..offset + len).await.map(|b| b.to_vec()) })?;
            match got {
                // An FTP server aborts a transfer the client stops reading before the
                // object's end (426), and says so on the control connection, which the
                // client may read as the read's outcome when the server is slow: the
                // same read again gets its bytes.
                Err(e) if tries < FTP_ABORT_RETRIES && e.to_string().contains("426") => tries += 1,
                other => return other.map_err(|e| error("read", path, e)),
            }
        }
    }

    fn write(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        let (op, p) = (self.op.clone(), path.to_string());
        block(async move { op.write(&p, bytes).await.map(|_| ()) })?.map_err(|e| error("write", path, e))
    }

    fn size(&self, path: &str) -> Result<Option<u64>> {
        let (op, p) = (self.op.clone(), path.to_string());
        match block(async move { op.stat(&p).await })? {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(error("stat", path, e)),
        }
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let (op, d) = (self.op.clone(), dir.to_string());
        let entries = match block(async move { op.list(&d).await })? {
            Ok(v) => v,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(error("list", dir, e)),
        };
        let mut names: Vec<String> = entries
            .into_iter()
            .map(|e| e.path().strip_prefix(dir).unwrap_or(e.path()).to_string())
            .filter(|n| !n.is_empty() && n != "/")
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    pub(crate) fn delete(&self, path: &str) -> Result<()> {
        let (op, p) = (self.op.clone(), path.to_string());
        match block(async move { op.delete(&p).await })? {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(error("delete", path, e)),
        }
    }

    fn delete_all(&self, dir: &str) -> Result<()> {
        let (op, d) = (self.op.clone(), dir.to_string());
        match block(async move { op.delete_with(&d).recursive(true).await })? {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(error("delete", dir, e)),
        }
    }
}

/// An object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key under the destination root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, when the service reports it.
    pub modified: Option<jiff::Timestamp>,
}

impl ObjectStore {
    /// Every object under `dir` (which ends with `/`), recursively, with its size.
    pub fn objects(&self, dir: &str) -> Result<Vec<ObjectInfo>> {
        Ok(self
            .entries_recursive(dir)?
            .into_iter()
            .filter(|e| e.metadata().is_file())
            .map(|e| ObjectInfo {
                key: e.path().trim_start_matches('/').to_string(),
                size: e.metadata().content_length(),
                modified: e.metadata().last_modified().map(jiff::Timestamp::from),
            })
            .collect())
    }

    /// Every entry under `dir`, recursively: one listing where the service
    /// lists recursively itself (object stores), else directory by directory
    /// (OpenDAL's emulation loops on a missing directory over FTP).
    pub(crate) fn entries_recursive(&self, dir: &str) -> Result<Vec<opendal::Entry>> {
        if matches!(self.config.service, Service::S3 | Service::Gcs) {
            let (op, d) = (self.op.clone(), dir.to_string());
            return match block(async move { op.list_with(&d).recursive(true).await })? {
                Ok(v) => Ok(v),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(error("list", dir, e)),
            };
        }
        let mut out = Vec::new();
        let mut pending = vec![dir.to_string()];
        while let Some(d) = pending.pop() {
            let op = self.op.clone();
            let d2 = d.clone();
            let entries = match block(async move { op.list(&d2).await })? {
                Ok(v) => v,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(error("list", &d, e)),
            };
            for e in entries {
                let p = e.path().trim_start_matches('/');
                if p.trim_end_matches('/') == d.trim_start_matches('/').trim_end_matches('/') {
                    continue;
                }
                if e.metadata().is_dir() {
                    pending.push(p.to_string());
                }
                out.push(e);
            }
        }
        Ok(out)
    }
}

/// Reads of a range tried again after an FTP server aborted the transfer.
const FTP_ABORT_RETRIES: u32 = 2;

//! Remote destinations for the tests of remote backups: the options of a
//! destination of each kind under a root no other test uses, what the server
//! holds under that root (seen through the server's own view, never through
//! Hindsight: the FTP server's directory, moto's listing API), and private
//! servers that a test may kill and start again without disturbing the
//! servers other tests share.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::services::{self, FtpEnv, S3Env};

/// The kinds of remote destination the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// S3 (moto, any key accepted).
    S3,
    /// FTP (pyftpdlib).
    Ftp,
}

impl Kind {
    /// The destination type name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::S3 => "s3",
            Kind::Ftp => "ftp",
        }
    }
}

/// Where a server is reached.
#[derive(Debug, Clone)]
enum Server {
    S3(S3Env),
    /// The FTP server (its root is a local directory).
    Ftp(FtpEnv),
}

/// A destination root on a test server.
#[derive(Debug, Clone)]
pub struct Remote {
    server: Server,
    /// The root inside the server (`path` option), `/e2e-...`.
    pub root: String,
}

/// A root no other test, run or process uses.
pub fn unique_root(what: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("/e2e-{what}-{}-{nanos}", std::process::id())
}

impl Remote {
    /// A fresh root on the shared server of `kind` (`S3_*`, `FTP_*`).
    pub fn shared(kind: Kind, what: &str) -> Remote {
        let server = match kind {
            Kind::S3 => Server::S3(services::s3()),
            Kind::Ftp => Server::Ftp(services::ftp()),
        };
        Remote { server, root: unique_root(what) }
    }

    /// The kind of destination.
    pub fn kind(&self) -> Kind {
        match self.server {
            Server::S3(_) => Kind::S3,
            Server::Ftp(_) => Kind::Ftp,
        }
    }

    /// `--type KIND -o KEY=VALUE...` for `destination add`, with `extra` options.
    pub fn add_args(&self, extra: &[(&str, &str)]) -> Vec<String> {
        let mut opts: Vec<(String, String)> = match &self.server {
            Server::S3(e) => vec![
                ("bucket".into(), e.bucket.clone()),
                ("endpoint".into(), e.endpoint.clone()),
                ("region".into(), e.region.clone()),
                ("access_key".into(), e.access_key.clone()),
                ("secret_key".into(), e.secret_key.clone()),
            ],
            Server::Ftp(e) => vec![
                ("host".into(), e.host.clone()),
                ("port".into(), e.port.to_string()),
                ("username".into(), e.user.clone()),
                ("password".into(), e.password.clone()),
            ],
        };
        opts.push(("path".into(), self.root.clone()));
        opts.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut args = vec!["--type".to_string(), self.kind().name().to_string()];
        for (k, v) in opts {
            args.extend(["-o".to_string(), format!("{k}={v}")]);
        }
        args
    }

    /// Every object under the root, by key relative to it, with its size.
    pub fn objects(&self) -> BTreeMap<String, u64> {
        let prefix = format!("{}/", self.root.trim_matches('/'));
        match &self.server {
            Server::S3(e) => s3_list(e, &prefix),
            Server::Ftp(e) => {
                let mut out = BTreeMap::new();
                walk_files(&e.root_dir.join(&prefix), "", &mut out);
                out
            }
        }
    }

    /// Objects under `<root>/<under>` (e.g. `blobs/`), by relative key.
    pub fn objects_under(&self, under: &[&str]) -> BTreeMap<String, u64> {
        self.objects().into_iter().filter(|(k, _)| under.iter().any(|u| k.starts_with(u))).collect()
    }

    /// The bytes of an object.
    pub fn read(&self, key: &str) -> Vec<u8> {
        match &self.server {
            Server::S3(e) => {
                let path = format!("/{}/{}/{}", e.bucket, self.root.trim_matches('/'), key);
                let (status, body) = http_get(e.authority(), &path);
                assert_eq!(status, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
                body
            }
            Server::Ftp(_) => {
                let p = self.ftp_file(key);
                std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
            }
        }
    }

    /// The local file behind an object (FTP only: its root is a local directory).
    pub fn ftp_file(&self, key: &str) -> PathBuf {
        match &self.server {
            Server::Ftp(e) => e.root_dir.join(self.root.trim_matches('/')).join(key),
            Server::S3(_) => panic!("objects of an S3 server are not local files"),
        }
    }
}

fn walk_files(dir: &Path, rel: &str, out: &mut BTreeMap<String, u64>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd {
        let e = e.unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        let name = e.file_name().to_string_lossy().into_owned();
        let key = format!("{rel}{name}");
        let md = e.metadata().unwrap_or_else(|err| panic!("stat {}: {err}", e.path().display()));
        if md.is_dir() {
            walk_files(&e.path(), &format!("{key}/"), out);
        } else {
            out.insert(key, md.len());
        }
    }
}

/// Lists `prefix` with moto's ListObjectsV2, unsigned (the open server checks no signature).
fn s3_list(e: &S3Env, prefix: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = format!("list-type=2&prefix={}", encode(prefix));
        if let Some(t) = &token {
            query.push_str(&format!("&continuation-token={}", encode(t)));
        }
        let (status, body) = http_get(e.authority(), &format!("/{}?{query}", e.bucket));
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "listing {prefix} on {}: {body}", e.endpoint);
        for item in elements(&body, "Contents") {
            let key = elements(item, "Key").first().copied().unwrap_or_default();
            let size = elements(item, "Size").first().and_then(|s| s.parse().ok()).unwrap_or(0);
            let rel = key.strip_prefix(prefix).unwrap_or(key);
            out.insert(xml_unescape(rel), size);
        }
        match elements(&body, "NextContinuationToken").first() {
            Some(t) if elements(&body, "IsTruncated").first() == Some(&"true") => token = Some(xml_unescape(t)),
            _ => return out,
        }
    }
}

/// The texts of every `<tag>...</tag>` in `xml` (no nesting of the same tag).
fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.0 GET (no chunked answers): status and body.
fn http_get(authority: &str, path: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(authority).unwrap_or_else(|e| panic!("connect {authority}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("set a read timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").expect("send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap_or_else(|e| panic!("read the answer of GET {path}: {e}"));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(raw.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, raw[split..].to_vec())
}

/// A server of this test's own, on free ports, started by `scripts/services/`:
/// the test may kill it and start it again. Stopped when dropped.
pub struct PrivateServer {
    kind: Kind,
    state: PathBuf,
    /// Environment of the service script (ports), kept for restarts.
    vars: Vec<(String, String)>,
    /// What the script printed: `KEY=VALUE` lines.
    printed: BTreeMap<String, String>,
}

/// `scripts/services/NAME.sh`.
fn script(kind: Kind) -> PathBuf {
    let name = match kind {
        Kind::S3 => "moto.sh",
        Kind::Ftp => "ftp.sh",
    };
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/services").join(name)
}

/// A port nobody listens on now (the kernel's pick).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

/// `n` consecutive free ports, from a base picked by the kernel.
fn free_range(n: u16) -> u16 {
    for _ in 0..100 {
        let base = free_port();
        if base > u16::MAX - n {
            continue;
        }
        if (base..base + n).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports");
}

impl PrivateServer {
    /// Starts a server of `kind` with its state (and, for FTP, its files) in `state`.
    pub fn start(kind: Kind, state: &Path) -> PrivateServer {
        PrivateServer::start_with(kind, state, &[])
    }

    /// Like [`PrivateServer::start`], with more settings of the service
    /// script (`MOTO_TLS=1`: an HTTPS S3 server with a self-signed certificate).
    pub fn start_with(kind: Kind, state: &Path, extra: &[(&str, &str)]) -> PrivateServer {
        let mut vars: Vec<(String, String)> = match kind {
            Kind::S3 => vec![("MOTO_PORT".into(), free_port().to_string())],
            Kind::Ftp => {
                let base = free_range(11);
                vec![
                    ("FTP_PORT".into(), base.to_string()),
                    ("FTP_PASV_MIN".into(), (base + 1).to_string()),
                    ("FTP_PASV_MAX".into(), (base + 10).to_string()),
                ]
            }
        };
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut s = PrivateServer { kind, state: state.to_path_buf(), vars, printed: BTreeMap::new() };
        s.run_script();
        s
    }

    fn run_script(&mut self) {
        let out = Command::new("bash")
            .arg(script(self.kind))
            .arg("start")
            .arg(&self.state)
            .envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("MOTO_AUTH", "0")
            .output()
            .expect("run the service script");
        assert!(
            out.status.success(),
            "could not start the {} server: {}",
            self.kind.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        self.printed = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
    }

    fn get(&self, key: &str) -> String {
        self.printed.get(key).cloned().unwrap_or_else(|| panic!("the service script printed no {key}"))
    }

    /// A fresh root on this server.
    pub fn remote(&self, what: &str) -> Remote {
        let server = match self.kind {
            Kind::S3 => Server::S3(S3Env {
                endpoint: self.get("S3_ENDPOINT"),
                access_key: self.get("S3_ACCESS_KEY"),
                secret_key: self.get("S3_SECRET_KEY"),
                bucket: self.get("S3_BUCKET"),
                region: self.get("S3_REGION"),
            }),
            Kind::Ftp => Server::Ftp(FtpEnv {
                host: self.get("FTP_HOST"),
                port: self.get("FTP_PORT").parse().expect("FTP port"),
                user: self.get("FTP_USER"),
                password: self.get("FTP_PASSWORD"),
                root_dir: PathBuf::from(self.get("FTP_ROOT_DIR")),
            }),
        };
        Remote { server, root: unique_root(what) }
    }

    /// Kills the server (SIGKILL, by the pid its script recorded) and waits until it is gone.
    pub fn kill(&self) {
        let pidfile = self.state.join("pid");
        let text = std::fs::read_to_string(&pidfile).unwrap_or_else(|e| panic!("read {}: {e}", pidfile.display()));
        let pid: i32 = text.trim().parse().unwrap_or_else(|_| panic!("{} holds {text:?}", pidfile.display()));
        let pid = rustix::process::Pid::from_raw(pid).expect("a positive pid");
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill the server");
        // Gone once its port refuses connections (a zombie holds no sockets).
        let port = self.get(match self.kind {
            Kind::S3 => "S3_ENDPOINT",
            Kind::Ftp => "FTP_PORT",
        });
        let port = port.rsplit(':').next().unwrap_or(&port).trim_end_matches('/').to_string();
        let closed = super::poll(Duration::from_secs(10), || {
            TcpStream::connect(format!("127.0.0.1:{port}")).is_err().then_some(())
        });
        assert!(closed.is_some(), "the killed {} server still accepts connections on {port}", self.kind.name());
    }

    /// Starts the server again on the same ports and state (moto starts empty,
    /// with its bucket created again; the FTP server keeps its files).
    pub fn restart(&mut self) {
        self.run_script();
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script(self.kind)).arg("stop").arg(&self.state).output();
    }
}

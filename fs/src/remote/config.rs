//! Remote destination types, their options, and the checked configuration.
//!
//! One table of option definitions per type ([`Service::options`]: name,
//! whether required or secret, kind and range, default) generates what
//! `destination types` lists and the checks of every value. Options arrive
//! as a JSON object of strings (numbers and booleans are accepted and read as
//! their text); [`RemoteConfig::parse`] checks them against the table, then
//! reads them into a typed configuration per service ([`Settings`]), taking
//! each option out as it reads it: an option left over, defined but read by
//! nothing, is an error (a unit test sets every option of every type), so an
//! option cannot be documented and silently ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

/// A remote service reached through OpenDAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Amazon S3 and S3-compatible stores.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// FTP and FTPS.
    Ftp,
    /// Google Drive.
    Gdrive,
    /// Dropbox.
    Dropbox,
    /// Microsoft OneDrive.
    Onedrive,
    /// A POSIX server over SSH: hardlink trees extracted by GNU tar on the server.
    Ssh,
    /// The same as [`Service::Ssh`], for users who know the server as SFTP.
    Sftp,
}

impl Service {
    /// Every service, in the order `destination types` lists them.
    pub const ALL: [Service; 8] = [
        Service::S3,
        Service::Gcs,
        Service::Ftp,
        Service::Gdrive,
        Service::Dropbox,
        Service::Onedrive,
        Service::Ssh,
        Service::Sftp,
    ];

    /// The destination type name.
    pub fn name(self) -> &'static str {
        match self {
            Service::S3 => "s3",
            Service::Gcs => "gcs",
            Service::Ftp => "ftp",
            Service::Gdrive => "gdrive",
            Service::Dropbox => "dropbox",
            Service::Onedrive => "onedrive",
            Service::Ssh => "ssh",
            Service::Sftp => "sftp",
        }
    }

    /// The service of a destination type name.
    pub fn parse(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    /// One line on what it is.
    pub fn description(self) -> &'static str {
        match self {
            Service::S3 => "S3-compatible object store (AWS, MinIO, Garage, Wasabi...): content-addressed snapshots",
            Service::Gcs => "Google Cloud Storage bucket: content-addressed snapshots",
            Service::Ftp => "FTP or FTPS server: content-addressed snapshots",
            Service::Gdrive => "Google Drive folder (OAuth): content-addressed snapshots",
            Service::Dropbox => "Dropbox folder (OAuth): content-addressed snapshots",
            Service::Onedrive => "Microsoft OneDrive folder (OAuth): content-addressed snapshots",
            Service::Ssh | Service::Sftp => {
                "Server reached over SSH (GNU tar and find required on it): hardlink snapshots, the same tree as local"
            }
        }
    }

    /// The options the type takes, common ones last.
    pub fn options(self) -> Vec<OptionDef> {
        use Kind::{Bool, Num, Text};
        let mut v: Vec<OptionDef> = match self {
            Service::S3 => vec![
                opt("bucket", Need::Required, Text, "Bucket name"),
                opt(
                    "endpoint",
                    Need::Optional,
                    Text,
                    "Endpoint URL (default: AWS for the region), e.g. http://127.0.0.1:9000",
                ),
                opt("region", Need::Optional, Text, "Region (default us-east-1)"),
                opt("access_key", Need::Optional, Text, "Access key id"),
                opt("secret_key", Need::Secret, Text, "Secret access key"),
                opt("verify_tls", Need::Optional, Bool, "Verify the server's TLS certificate: true (default) or false"),
                opt(
                    "chunk_size",
                    Need::Optional,
                    Num { lo: 5, hi: 512 },
                    "Multipart upload part size in MiB, 5-512 (default 8)",
                ),
                opt(
                    "keepalive",
                    Need::Optional,
                    Num { lo: 0, hi: 3600 },
                    "Keep idle connections open this many seconds (default 90)",
                ),
                opt(
                    "virtual_host",
                    Need::Optional,
                    Bool,
                    "Virtual-host-style addressing: true or false (default path style)",
                ),
            ],
            Service::Gcs => vec![
                opt("bucket", Need::Required, Text, "Bucket name"),
                opt("credentials_file", Need::Optional, Text, "Path of a service account JSON key file"),
                opt("credentials", Need::Secret, Text, "Service account JSON key (base64), instead of a file"),
                opt("endpoint", Need::Optional, Text, "Endpoint URL (default https://storage.googleapis.com)"),
            ],
            Service::Ftp => vec![
                opt("host", Need::Required, Text, "Server host name or address"),
                opt("port", Need::Optional, Num { lo: 1, hi: 65535 }, "Port (default 21)"),
                opt("username", Need::Optional, Text, "User name (default anonymous)"),
                opt("password", Need::Secret, Text, "Password"),
                opt("secure", Need::Optional, Bool, "Use FTPS (explicit TLS): true or false (default)"),
                opt("passive", Need::Optional, Bool, "Passive mode: true (default; active mode is not supported)"),
            ],
            Service::Gdrive | Service::Dropbox | Service::Onedrive => vec![
                opt(
                    "access_token",
                    Need::Secret,
                    Text,
                    "OAuth access token (or refresh_token with client_id/client_secret)",
                ),
                opt("refresh_token", Need::Secret, Text, "OAuth refresh token"),
                opt("client_id", Need::Optional, Text, "OAuth client id (with refresh_token)"),
                opt("client_secret", Need::Secret, Text, "OAuth client secret (with refresh_token)"),
            ],
            Service::Ssh | Service::Sftp => vec![
                opt("host", Need::Required, Text, "Server host name or address"),
                opt(
                    "path",
                    Need::Required,
                    Text,
                    "Root of the destination on the server (relative: under the login directory)",
                ),
                opt("port", Need::Optional, Num { lo: 1, hi: 65535 }, "Port (default 22)"),
                opt("username", Need::Required, Text, "User name on the server"),
                opt("private_key", Need::Optional, Text, "Path of the private key file on this machine"),
                opt("key", Need::Secret, Text, "Private key text (OpenSSH format), instead of private_key"),
                opt("passphrase", Need::Secret, Text, "Passphrase of the private key"),
                opt("password", Need::Secret, Text, "Password (when the server accepts password login)"),
                opt(
                    "known_hosts",
                    Need::Optional,
                    Text,
                    "known_hosts file holding the server's key (default: the system's)",
                ),
                opt(
                    "host_key",
                    Need::Optional,
                    Text,
                    "The server's public host key (`TYPE BASE64`), instead of known_hosts",
                ),
                opt(
                    "bwlimit",
                    Need::Optional,
                    Num { lo: 1, hi: u32::MAX as u64 },
                    "Upload bandwidth limit of backups in KiB/s (default none)",
                ),
                opt(
                    "ip",
                    Need::Optional,
                    Kind::OneOf(&["any", "ipv4", "ipv6"]),
                    "Address family: any (default), ipv4 or ipv6",
                ),
            ],
        };
        // Services that define a common option themselves (ssh: path is required) keep their own.
        let common = [
            opt("path", Need::Optional, Text, "Root of the destination inside the service (default /)"),
            opt(
                "retries",
                Need::Optional,
                Num { lo: 0, hi: 10 },
                "Retries of a failed request, with backoff, 0-10 (default 4)",
            ),
            opt(
                "timeout",
                Need::Optional,
                Num { lo: 1, hi: 3600 },
                "Seconds before a request is abandoned and retried (default 60)",
            ),
        ];
        for c in common {
            if !v.iter().any(|o| o.name == c.name) {
                v.push(c);
            }
        }
        // An ssh backup is one tar stream: there is nothing to run at once.
        if !matches!(self, Service::Ssh | Service::Sftp) {
            v.push(opt("threads", Need::Optional, Num { lo: 1, hi: 64 }, "Concurrent transfers, 1-64 (default 8)"));
            v.push(opt(
                "pack_size",
                Need::Optional,
                Num { lo: 1, hi: 64 },
                "Small files (under 1 MiB) are packed into objects of this many MiB, 1-64 (default 8)",
            ));
        }
        v
    }
}

/// Whether an option must be given, and whether it is a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Must be given.
    Required,
    /// May be given.
    Optional,
    /// May be given; stored encrypted, never shown.
    Secret,
}

/// What values an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any text.
    Text,
    /// `true` or `false` (also yes/no, 1/0, on/off).
    Bool,
    /// A whole number in `lo..=hi`.
    Num {
        /// Smallest value.
        lo: u64,
        /// Largest value.
        hi: u64,
    },
    /// One of these words.
    OneOf(&'static [&'static str]),
}

/// One option of a destination type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionDef {
    /// Option name.
    pub name: &'static str,
    /// Required, optional or secret.
    pub need: Need,
    /// What values it takes.
    pub kind: Kind,
    /// What it is.
    pub description: &'static str,
}

fn opt(name: &'static str, need: Need, kind: Kind, description: &'static str) -> OptionDef {
    OptionDef { name, need, kind, description }
}

impl OptionDef {
    /// Checks a value given as text against the option's kind.
    fn check(&self, v: &str) -> Result<(), String> {
        let key = self.name;
        match self.kind {
            Kind::Text => Ok(()),
            Kind::Bool => {
                parse_bool(v).map(|_| ()).ok_or_else(|| format!("option {key} must be true or false, not {v:?}"))
            }
            Kind::Num { lo, hi } => match v.parse::<u64>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(()),
                _ => Err(format!("option {key} must be a whole number from {lo} to {hi}, not {v:?}")),
            },
            Kind::OneOf(words) if words.contains(&v) => Ok(()),
            Kind::OneOf(words) => Err(format!("option {key} must be {}, not {v:?}", words.join(", "))),
        }
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// The options of every remote type (transfers and retries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// Root inside the service, with a leading and a trailing `/`.
    pub root: String,
    /// Retries of a failed request.
    pub retries: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Concurrent transfers (object stores).
    pub threads: usize,
    /// Size in bytes at which a pack of small files is sealed (object stores).
    pub pack_size: usize,
    /// Multipart part size in bytes (S3; the default elsewhere).
    pub chunk_size: usize,
}

/// What each service needs besides the common options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settings {
    /// An S3-compatible store.
    S3(S3Settings),
    /// Google Cloud Storage.
    Gcs(GcsSettings),
    /// An FTP or FTPS server.
    Ftp(FtpSettings),
    /// Google Drive, Dropbox or OneDrive.
    Drive(OAuth),
    /// A server reached over SSH.
    Ssh(SshSettings),
}

/// Options of an S3-compatible store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL (none: AWS for the region).
    pub endpoint: Option<String>,
    /// Region to sign for.
    pub region: String,
    /// Access key id and secret key (none: unsigned requests).
    pub keys: Option<(String, String)>,
    /// Verify the server's certificate.
    pub verify_tls: bool,
    /// Seconds idle connections are kept (0: none).
    pub keepalive: u64,
    /// Virtual-host-style addressing.
    pub virtual_host: bool,
}

/// Options of a GCS bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcsSettings {
    /// Bucket name.
    pub bucket: String,
    /// Path of a service account key file.
    pub credentials_file: Option<String>,
    /// A service account key (base64).
    pub credentials: Option<String>,
    /// Endpoint URL.
    pub endpoint: Option<String>,
}

/// Options of an FTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtpSettings {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name (none: anonymous).
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// FTPS (explicit TLS).
    pub secure: bool,
}

/// OAuth credentials of a cloud drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth {
    /// Access token.
    pub access_token: Option<String>,
    /// Refresh token.
    pub refresh_token: Option<String>,
    /// Client id (with the refresh token).
    pub client_id: Option<String>,
    /// Client secret (with the refresh token).
    pub client_secret: Option<String>,
}

/// Address family of an SSH connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    /// Whatever resolves.
    Any,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

/// Options of an SSH server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name.
    pub username: String,
    /// Root on the server, without a trailing `/` (relative: under the login directory).
    pub path: String,
    /// Path of a private key file on this machine.
    pub private_key: Option<String>,
    /// A private key given as text.
    pub key: Option<String>,
    /// Passphrase of the key.
    pub passphrase: Option<String>,
    /// Password login.
    pub password: Option<String>,
    /// known_hosts file holding the server's key.
    pub known_hosts: Option<String>,
    /// The server's public key (`TYPE BASE64`).
    pub host_key: Option<String>,
    /// Upload bandwidth limit in KiB/s.
    pub bwlimit: Option<u64>,
    /// Address family.
    pub ip: IpFamily,
}

/// A checked remote destination configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The service.
    pub service: Service,
    /// Options every service takes.
    pub common: Common,
    /// What this service needs.
    pub settings: Settings,
}

/// The options given, as text; each is taken out once read.
struct Given(BTreeMap<String, String>);

impl Given {
    fn text(&mut self, key: &str) -> Option<String> {
        self.0.remove(key).filter(|v| !v.is_empty())
    }

    fn required(&mut self, key: &str) -> Result<String, String> {
        self.text(key).ok_or_else(|| format!("option {key} is required"))
    }

    // The table checked every value before: these only convert.
    fn number(&mut self, key: &str, default: u64) -> u64 {
        self.text(key).and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    fn flag(&mut self, key: &str, default: bool) -> bool {
        self.text(key).and_then(|v| parse_bool(&v)).unwrap_or(default)
    }
}

impl RemoteConfig {
    /// Checks the options of a destination of type `kind` against its table
    /// and reads them into its typed configuration.
    pub fn parse(kind: &str, options: &Map<String, Value>) -> Result<Self, String> {
        let service = Service::parse(kind).ok_or_else(|| format!("{kind} is not a remote destination type"))?;
        let defs = service.options();
        let mut given = BTreeMap::new();
        for (k, v) in options {
            // Earlier versions took `threads` for ssh and ignored it: a stored one is
            // still ignored, so that such a destination keeps working (adding or
            // editing refuses it: `refused_option`).
            if k == "threads" && matches!(service, Service::Ssh | Service::Sftp) {
                continue;
            }
            let Some(def) = defs.iter().find(|d| d.name == k) else {
                let names: Vec<&str> = defs.iter().map(|d| d.name).collect();
                return Err(format!("destination type {kind} has no option {k:?}; options: {}", names.join(", ")));
            };
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => continue,
                _ => return Err(format!("option {k} must be a string, a number or a boolean")),
            };
            if !text.is_empty() {
                def.check(&text)?;
            }
            given.insert(k.clone(), text);
        }
        for d in defs.iter().filter(|d| d.need == Need::Required) {
            if given.get(d.name).is_none_or(|v| v.is_empty()) {
                return Err(format!("option {} is required for type {kind}", d.name));
            }
        }
        let mut given = Given(given);
        let path = given.text("path");
        let common = read_common(&mut given, path.as_deref())?;
        let settings = match service {
            Service::S3 => Settings::S3(read_s3(&mut given)?),
            Service::Gcs => Settings::Gcs(read_gcs(&mut given)?),
            Service::Ftp => Settings::Ftp(read_ftp(&mut given)?),
            Service::Gdrive | Service::Dropbox | Service::Onedrive => Settings::Drive(read_oauth(&mut given, service)?),
            Service::Ssh | Service::Sftp => Settings::Ssh(read_ssh(&mut given, path)?),
        };
        if let Some(left) = given.0.keys().next() {
            return Err(format!("option {left} of type {kind} is defined but read by nothing (a bug of this build)"));
        }
        Ok(RemoteConfig { service, common, settings })
    }

    /// Concurrent transfers.
    pub fn threads(&self) -> usize {
        self.common.threads
    }

    /// Retries of a failed request.
    pub fn retries(&self) -> usize {
        self.common.retries
    }

    /// Per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.common.timeout
    }

    /// Size in bytes at which a pack of small files is sealed and uploaded.
    pub fn pack_size(&self) -> usize {
        self.common.pack_size
    }

    /// Multipart part size in bytes.
    pub fn chunk_size(&self) -> usize {
        self.common.chunk_size
    }

    /// Root inside the service, with a leading and a trailing `/`.
    pub fn root(&self) -> String {
        self.common.root.clone()
    }

    /// Why an option given when adding or editing a destination of `kind` is
    /// refused though a stored one is tolerated, if it is.
    pub fn refused_option(kind: &str, key: &str) -> Option<String> {
        let ssh = matches!(Service::parse(kind), Some(Service::Ssh | Service::Sftp));
        (ssh && key == "threads")
            .then(|| format!("destination type {kind} has no option threads: an ssh backup is one tar stream"))
    }
}

/// The common options; `path` (already taken out) is the root inside the service.
fn read_common(g: &mut Given, path: Option<&str>) -> Result<Common, String> {
    let path = path.unwrap_or_default();
    if path.split('/').any(|c| c == "..") {
        return Err(format!("option path {path:?} must not contain .."));
    }
    let trimmed = path.trim_matches('/');
    let root = if trimmed.is_empty() { "/".into() } else { format!("/{trimmed}/") };
    let pack_default = (super::blobs::PACK_TARGET >> 20) as u64;
    Ok(Common {
        root,
        retries: g.number("retries", 4) as usize,
        timeout: Duration::from_secs(g.number("timeout", 60)),
        threads: g.number("threads", 8) as usize,
        pack_size: (g.number("pack_size", pack_default) as usize) << 20,
        chunk_size: (g.number("chunk_size", 8) as usize) << 20,
    })
}

fn read_s3(g: &mut Given) -> Result<S3Settings, String> {
    let endpoint = g.text("endpoint");
    if let Some(e) = &endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        return Err(format!("option endpoint {e:?} must start with http:// or https://"));
    }
    let keys = match (g.text("access_key"), g.text("secret_key")) {
        (Some(a), Some(s)) => Some((a, s)),
        (None, None) => None,
        _ => return Err("options access_key and secret_key go together".into()),
    };
    Ok(S3Settings {
        bucket: g.required("bucket")?,
        endpoint,
        region: g.text("region").unwrap_or_else(|| "us-east-1".into()),
        keys,
        verify_tls: g.flag("verify_tls", true),
        keepalive: g.number("keepalive", 90),
        virtual_host: g.flag("virtual_host", false),
    })
}

fn read_gcs(g: &mut Given) -> Result<GcsSettings, String> {
    let (credentials_file, credentials) = (g.text("credentials_file"), g.text("credentials"));
    if credentials_file.is_some() && credentials.is_some() {
        return Err("give credentials_file or credentials, not both".into());
    }
    Ok(GcsSettings { bucket: g.required("bucket")?, credentials_file, credentials, endpoint: g.text("endpoint") })
}

fn read_ftp(g: &mut Given) -> Result<FtpSettings, String> {
    if !g.flag("passive", true) {
        return Err("option passive=false: active FTP is not supported; use passive mode".into());
    }
    Ok(FtpSettings {
        host: g.required("host")?,
        port: g.number("port", 21) as u16,
        username: g.text("username"),
        password: g.text("password"),
        secure: g.flag("secure", false),
    })
}

fn read_oauth(g: &mut Given, service: Service) -> Result<OAuth, String> {
    let o = OAuth {
        access_token: g.text("access_token"),
        refresh_token: g.text("refresh_token"),
        client_id: g.text("client_id"),
        client_secret: g.text("client_secret"),
    };
    if o.access_token.is_none() && o.refresh_token.is_none() {
        return Err(format!(
            "type {} needs access_token, or refresh_token with client_id and client_secret",
            service.name()
        ));
    }
    if o.refresh_token.is_some() && (o.client_id.is_none() || o.client_secret.is_none()) {
        return Err("refresh_token needs client_id and client_secret".into());
    }
    Ok(o)
}

/// The ssh options; `path` (already taken out) is the root on the server,
/// relative to the login directory unless absolute.
fn read_ssh(g: &mut Given, path: Option<String>) -> Result<SshSettings, String> {
    let path = path.ok_or("option path is required")?;
    if path.contains(['\n', '\0']) {
        return Err("option path must be one line".into());
    }
    let path = path.trim_end_matches('/');
    let path = if path.is_empty() { "/".to_string() } else { path.to_string() };
    let s = SshSettings {
        host: g.required("host")?,
        port: g.number("port", 22) as u16,
        username: g.required("username")?,
        path,
        private_key: g.text("private_key"),
        key: g.text("key"),
        passphrase: g.text("passphrase"),
        password: g.text("password"),
        known_hosts: g.text("known_hosts"),
        host_key: g.text("host_key"),
        bwlimit: g.text("bwlimit").and_then(|v| v.parse().ok()),
        ip: match g.text("ip").as_deref() {
            Some("ipv4") => IpFamily::V4,
            Some("ipv6") => IpFamily::V6,
            _ => IpFamily::Any,
        },
    };
    if s.private_key.is_some() && s.key.is_some() {
        return Err("give private_key or key, not both".into());
    }
    if s.known_hosts.is_some() && s.host_key.is_some() {
        return Err("give known_hosts or host_key, not both".into());
    }
    if let Some(k) = &s.host_key
        && k.split_whitespace().count() < 2
    {
        return Err(
            "option host_key must be the server's public key as `TYPE BASE64` (a known_hosts line without the host)"
                .into(),
        );
    }
    for (key, v) in [("host", &s.host), ("username", &s.username)] {
        if v.starts_with('-') || v.contains(|ch: char| ch.is_whitespace() || ch == '@') {
            return Err(format!("option {key} {v:?} is not a valid host or user name"));
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(kind: &str, v: Value) -> Result<RemoteConfig, String> {
        RemoteConfig::parse(kind, v.as_object().expect("object"))
    }

    #[test]
    fn options_are_checked_with_clear_errors() {
        let ok = parse("s3", json!({"bucket": "b", "threads": 4, "verify_tls": false})).expect("valid");
        assert_eq!((ok.threads(), ok.retries(), ok.root()), (4, 4, "/".to_string()));
        let e = |kind, v| parse(kind, v).expect_err("invalid");
        assert!(e("s3", json!({})).contains("bucket is required"));
        assert!(e("s3", json!({"bucket": "b", "threads": 0})).contains("threads"));
        assert!(e("s3", json!({"bucket": "b", "retries": 11})).contains("0 to 10"));
        assert!(e("s3", json!({"bucket": "b", "bogus": 1})).contains("no option \"bogus\""));
        assert!(e("s3", json!({"bucket": "b", "endpoint": "ftp://x"})).contains("http://"));
        assert!(e("s3", json!({"bucket": "b", "access_key": "a"})).contains("go together"));
        assert!(e("s3", json!({"bucket": "b", "verify_tls": "maybe"})).contains("true or false"));
        assert!(e("ftp", json!({"host": "h", "passive": false})).contains("active FTP"));
        assert!(e("ftp", json!({"host": "h", "port": 70000})).contains("port"));
        assert!(e("gdrive", json!({})).contains("access_token"));
        assert!(e("dropbox", json!({"refresh_token": "r"})).contains("client_id"));
        assert!(e("s3", json!({"bucket": "b", "path": "a/../b"})).contains(".."));
        assert!(e("ssh", json!({"host": "h", "username": "u", "path": "p", "ip": "ipv5"})).contains("any, ipv4, ipv6"));
        assert_eq!(parse("ftp", json!({"host": "h", "path": "/x/y/"})).expect("ftp").root(), "/x/y/");
        assert_eq!(ok.pack_size(), 8 << 20);
        let packs = parse("s3", json!({"bucket": "b", "pack_size": 32})).expect("pack_size");
        assert_eq!(packs.pack_size(), 32 << 20);
        assert!(e("s3", json!({"bucket": "b", "pack_size": 65})).contains("1 to 64"));
        let Settings::S3(s3) = &ok.settings else { panic!("not s3: {ok:?}") };
        assert!(!s3.verify_tls && s3.keepalive == 90 && s3.region == "us-east-1");
    }

    #[test]
    fn every_option_of_every_type_is_read_by_something() {
        for s in Service::ALL {
            let mut o = Map::new();
            for d in s.options() {
                let v = match d.kind {
                    Kind::Bool => "true".to_string(),
                    Kind::Num { lo, .. } => lo.max(1).to_string(),
                    Kind::OneOf(words) => words[0].to_string(),
                    Kind::Text => match d.name {
                        "endpoint" => "http://127.0.0.1:9".into(),
                        "host_key" => "ssh-ed25519 AAAA".into(),
                        "path" => "root".into(),
                        _ => format!("{}-value", d.name),
                    },
                };
                o.insert(d.name.to_string(), Value::String(v));
            }
            // Alternatives given together are refused: one of each pair.
            for alt in ["credentials", "key", "host_key", "access_token"] {
                o.remove(alt);
            }
            if s == Service::Ftp {
                o.insert("passive".into(), Value::String("true".into()));
            }
            match RemoteConfig::parse(s.name(), &o) {
                Ok(_) => {}
                Err(e) => panic!("{}: {e}", s.name()),
            }
        }
    }

    #[test]
    fn every_type_lists_the_common_options() {
        for s in Service::ALL {
            let names: Vec<&str> = s.options().iter().map(|o| o.name).collect();
            for common in ["path", "retries", "timeout"] {
                assert!(names.contains(&common), "{} lacks {common}", s.name());
            }
            // Packs and parallel transfers are for content-addressed storage:
            // ssh trees have no packs, and an ssh backup is one stream.
            let ssh = matches!(s, Service::Ssh | Service::Sftp);
            assert_eq!(names.contains(&"pack_size"), !ssh, "{}", s.name());
            assert_eq!(names.contains(&"threads"), !ssh, "{}", s.name());
            assert_eq!(Service::parse(s.name()), Some(s));
        }
    }
}

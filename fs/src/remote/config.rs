//! Remote destination types, their options, and the checked configuration.
//!
//! Options arrive as a JSON object of strings (numbers and booleans are
//! accepted and read as their text). Every type also takes the common options
//! `path`, `threads`, `retries` and `timeout`.

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
        let mut v: Vec<OptionDef> = match self {
            Service::S3 => vec![
                opt("bucket", Need::Required, "Bucket name"),
                opt(
                    "endpoint",
                    Need::Optional,
                    "Endpoint URL (default: AWS for the region), e.g. http://127.0.0.1:9000",
                ),
                opt("region", Need::Optional, "Region (default us-east-1)"),
                opt("access_key", Need::Optional, "Access key id"),
                opt("secret_key", Need::Secret, "Secret access key"),
                opt("verify_tls", Need::Optional, "Verify the server's TLS certificate: true (default) or false"),
                opt("chunk_size", Need::Optional, "Multipart upload part size in MiB, 5-512 (default 8)"),
                opt("keepalive", Need::Optional, "Keep idle connections open this many seconds (default 90)"),
                opt(
                    "virtual_host",
                    Need::Optional,
                    "Virtual-host-style addressing: true or false (default path style)",
                ),
            ],
            Service::Gcs => vec![
                opt("bucket", Need::Required, "Bucket name"),
                opt("credentials_file", Need::Optional, "Path of a service account JSON key file"),
                opt("credentials", Need::Secret, "Service account JSON key (base64), instead of a file"),
                opt("endpoint", Need::Optional, "Endpoint URL (default https://storage.googleapis.com)"),
            ],
            Service::Ftp => vec![
                opt("host", Need::Required, "Server host name or address"),
                opt("port", Need::Optional, "Port (default 21)"),
                opt("username", Need::Optional, "User name (default anonymous)"),
                opt("password", Need::Secret, "Password"),
                opt("secure", Need::Optional, "Use FTPS (explicit TLS): true or false (default)"),
                opt("passive", Need::Optional, "Passive mode: true (default; active mode is not supported)"),
            ],
            Service::Gdrive | Service::Dropbox | Service::Onedrive => vec![
                opt("access_token", Need::Secret, "OAuth access token (or refresh_token with client_id/client_secret)"),
                opt("refresh_token", Need::Secret, "OAuth refresh token"),
                opt("client_id", Need::Optional, "OAuth client id (with refresh_token)"),
                opt("client_secret", Need::Secret, "OAuth client secret (with refresh_token)"),
            ],
            Service::Ssh | Service::Sftp => vec![
                opt("host", Need::Required, "Server host name or address"),
                opt(
                    "path",
                    Need::Required,
                    "Root of the destination on the server (relative: under the login directory)",
                ),
                opt("port", Need::Optional, "Port (default 22)"),
                opt("username", Need::Required, "User name on the server"),
                opt("private_key", Need::Optional, "Path of the private key file on this machine"),
                opt("key", Need::Secret, "Private key text (OpenSSH format), instead of private_key"),
                opt("passphrase", Need::Secret, "Passphrase of the private key"),
                opt("password", Need::Secret, "Password (when the server accepts password login)"),
                opt("known_hosts", Need::Optional, "known_hosts file holding the server's key (default: the system's)"),
                opt("host_key", Need::Optional, "The server's public host key (`TYPE BASE64`), instead of known_hosts"),
                opt("bwlimit", Need::Optional, "Upload bandwidth limit of backups in KiB/s (default none)"),
                opt("ip", Need::Optional, "Address family: any (default), ipv4 or ipv6"),
            ],
        };
        // Services that define a common option themselves (ssh: path is required) keep their own.
        let common = [
            opt("path", Need::Optional, "Root of the destination inside the service (default /)"),
            opt("retries", Need::Optional, "Retries of a failed request, with backoff, 0-10 (default 4)"),
            opt("timeout", Need::Optional, "Seconds before a request is abandoned and retried (default 60)"),
        ];
        for c in common {
            if !v.iter().any(|o| o.name == c.name) {
                v.push(c);
            }
        }
        // An ssh backup is one tar stream: there is nothing to run at once.
        if !matches!(self, Service::Ssh | Service::Sftp) {
            v.push(opt("threads", Need::Optional, "Concurrent transfers, 1-64 (default 8)"));
            v.push(opt(
                "pack_size",
                Need::Optional,
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

/// One option of a destination type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionDef {
    /// Option name.
    pub name: &'static str,
    /// Required, optional or secret.
    pub need: Need,
    /// What it is.
    pub description: &'static str,
}

fn opt(name: &'static str, need: Need, description: &'static str) -> OptionDef {
    OptionDef { name, need, description }
}

/// A checked remote destination configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The service.
    pub service: Service,
    /// Options as text, secrets included (in the clear: never log this).
    pub options: BTreeMap<String, String>,
}

impl RemoteConfig {
    /// Checks the options of a destination of type `kind` and keeps them as text.
    pub fn parse(kind: &str, options: &Map<String, Value>) -> Result<Self, String> {
        let service = Service::parse(kind).ok_or_else(|| format!("{kind} is not a remote destination type"))?;
        let defs = service.options();
        let mut out = BTreeMap::new();
        for (k, v) in options {
            // Earlier versions took `threads` for ssh and ignored it: a stored one is
            // still ignored, so that such a destination keeps working (adding or
            // editing refuses it: `refused_option`).
            if k == "threads" && matches!(service, Service::Ssh | Service::Sftp) {
                continue;
            }
            if !defs.iter().any(|d| d.name == k) {
                let names: Vec<&str> = defs.iter().map(|d| d.name).collect();
                return Err(format!("destination type {kind} has no option {k:?}; options: {}", names.join(", ")));
            }
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => continue,
                _ => return Err(format!("option {k} must be a string, a number or a boolean")),
            };
            out.insert(k.clone(), text);
        }
        for d in defs.iter().filter(|d| d.need == Need::Required) {
            if out.get(d.name).is_none_or(|v| v.is_empty()) {
                return Err(format!("option {} is required for type {kind}", d.name));
            }
        }
        let cfg = RemoteConfig { service, options: out };
        cfg.check()?;
        Ok(cfg)
    }

    /// An option's text, when given and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Concurrent transfers.
    pub fn threads(&self) -> usize {
        self.number("threads", 1, 64, 8).unwrap_or(8) as usize
    }

    /// Retries of a failed request.
    pub fn retries(&self) -> usize {
        self.number("retries", 0, 10, 4).unwrap_or(4) as usize
    }

    /// Per-request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.number("timeout", 1, 3600, 60).unwrap_or(60))
    }

    /// Size in bytes at which a pack of small files is sealed and uploaded.
    pub fn pack_size(&self) -> usize {
        let default = (super::blobs::PACK_TARGET >> 20) as u64;
        (self.number("pack_size", 1, 64, default).unwrap_or(default) as usize) << 20
    }

    /// Multipart part size in bytes.
    pub fn chunk_size(&self) -> usize {
        (self.number("chunk_size", 5, 512, 8).unwrap_or(8) as usize) << 20
    }

    /// Root inside the service, with a leading and a trailing `/`.
    pub fn root(&self) -> String {
        let p = self.get("path").unwrap_or("/").trim_matches('/');
        if p.is_empty() { "/".into() } else { format!("/{p}/") }
    }

    /// A boolean option.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some("true" | "yes" | "1" | "on") => Ok(true),
            Some("false" | "no" | "0" | "off") => Ok(false),
            Some(v) => Err(format!("option {key} must be true or false, not {v:?}")),
        }
    }

    /// A numeric option within a range, or its default.
    pub fn number(&self, key: &str, lo: u64, hi: u64, default: u64) -> Result<u64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(n),
                _ => Err(format!("option {key} must be a whole number from {lo} to {hi}, not {v:?}")),
            },
        }
    }

    /// Why an option given when adding or editing a destination of `kind` is
    /// refused though a stored one is tolerated, if it is.
    pub fn refused_option(kind: &str, key: &str) -> Option<String> {
        let ssh = matches!(Service::parse(kind), Some(Service::Ssh | Service::Sftp));
        (ssh && key == "threads")
            .then(|| format!("destination type {kind} has no option threads: an ssh backup is one tar stream"))
    }

    /// Checks values: numbers in range, booleans, and what the service needs together.
    fn check(&self) -> Result<(), String> {
        self.number("threads", 1, 64, 8)?;
        self.number("retries", 0, 10, 4)?;
        self.number("timeout", 1, 3600, 60)?;
        self.number("pack_size", 1, 64, 8)?;
        if let Some(p) = self.get("path")
            && p.split('/').any(|c| c == "..")
        {
            return Err(format!("option path {p:?} must not contain .."));
        }
        match self.service {
            Service::S3 => {
                self.flag("verify_tls", true)?;
                self.flag("virtual_host", false)?;
                self.number("chunk_size", 5, 512, 8)?;
                self.number("keepalive", 0, 3600, 90)?;
                if let Some(e) = self.get("endpoint")
                    && !(e.starts_with("http://") || e.starts_with("https://"))
                {
                    return Err(format!("option endpoint {e:?} must start with http:// or https://"));
                }
                if self.get("access_key").is_some() != self.get("secret_key").is_some() {
                    return Err("options access_key and secret_key go together".into());
                }
            }
            Service::Gcs => {
                if self.get("credentials_file").is_some() && self.get("credentials").is_some() {
                    return Err("give credentials_file or credentials, not both".into());
                }
            }
            Service::Ftp => {
                self.number("port", 1, 65535, 21)?;
                self.flag("secure", false)?;
                if !self.flag("passive", true)? {
                    return Err("option passive=false: active FTP is not supported; use passive mode".into());
                }
            }
            Service::Gdrive | Service::Dropbox | Service::Onedrive => {
                let refresh = self.get("refresh_token").is_some();
                if self.get("access_token").is_none() && !refresh {
                    return Err(format!(
                        "type {} needs access_token, or refresh_token with client_id and client_secret",
                        self.service.name()
                    ));
                }
                if refresh && (self.get("client_id").is_none() || self.get("client_secret").is_none()) {
                    return Err("refresh_token needs client_id and client_secret".into());
                }
            }
            Service::Ssh | Service::Sftp => super::ssh::check(self)?,
        }
        Ok(())
    }
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
        assert!(e("ftp", json!({"host": "h", "passive": false})).contains("active FTP"));
        assert!(e("ftp", json!({"host": "h", "port": 70000})).contains("port"));
        assert!(e("gdrive", json!({})).contains("access_token"));
        assert!(e("dropbox", json!({"refresh_token": "r"})).contains("client_id"));
        assert!(e("s3", json!({"bucket": "b", "path": "a/../b"})).contains(".."));
        assert_eq!(parse("ftp", json!({"host": "h", "path": "/x/y/"})).expect("ftp").root(), "/x/y/");
        assert_eq!(ok.pack_size(), 8 << 20);
        let packs = parse("s3", json!({"bucket": "b", "pack_size": 32})).expect("pack_size");
        assert_eq!(packs.pack_size(), 32 << 20);
        assert!(e("s3", json!({"bucket": "b", "pack_size": 65})).contains("1 to 64"));
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

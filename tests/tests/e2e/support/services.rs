//! The test servers of the remote destinations (S3, SSH/SFTP, FTP), of
//! notifications (SMTP) and of database dumps (PostgreSQL, MariaDB), as
//! `scripts/test.sh` starts them on 127.0.0.1 (see `scripts/services/`) and
//! exports their settings. Every accessor panics naming the missing variable:
//! a remote test never skips silently because its server is not there.

// Accessors for the remote-destination tests: not every field is used yet.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The S3 server: moto, in memory, with the bucket already created.
#[derive(Debug, Clone)]
pub struct S3Env {
    /// `http://127.0.0.1:PORT` (path-style addressing).
    pub endpoint: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// A bucket that exists.
    pub bucket: String,
    /// Region to sign for.
    pub region: String,
}

impl S3Env {
    /// `host:port` of the endpoint.
    pub fn authority(&self) -> &str {
        let rest = self
            .endpoint
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("S3 endpoint {:?} is not http://HOST:PORT", self.endpoint));
        rest.split('/').next().unwrap_or(rest)
    }
}

/// The S3 server that accepts any key and signature (`S3_*`).
pub fn s3() -> S3Env {
    s3_with_prefix("S3_")
}

/// A second S3 server that enforces SigV4 authentication (`S3AUTH_*`): only
/// its key with its secret is accepted, so a wrong secret must fail.
pub fn s3_auth() -> S3Env {
    s3_with_prefix("S3AUTH_")
}

fn s3_with_prefix(prefix: &str) -> S3Env {
    let v = |name: &str| var(&format!("{prefix}{name}"));
    S3Env {
        endpoint: v("ENDPOINT"),
        access_key: v("ACCESS_KEY"),
        secret_key: v("SECRET_KEY"),
        bucket: v("BUCKET"),
        region: v("REGION"),
    }
}

/// The SSH/SFTP server: a private sshd with key-only login for a dedicated
/// user; GNU tar and find are on it (backups need them).
#[derive(Debug, Clone)]
pub struct SshEnv {
    /// `127.0.0.1`.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The remote user.
    pub user: String,
    /// The client's private key.
    pub key: PathBuf,
    /// A known_hosts file with the server's host key (`[host]:port`).
    pub known_hosts: PathBuf,
}

impl SshEnv {
    /// `user@host`.
    pub fn destination(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// Options for `ssh` (also usable in rsync's `-e`): the key, the
    /// known_hosts file, strict host key checking, never a prompt.
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            "-i".into(),
            self.key.display().to_string(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-p".into(),
            self.port.to_string(),
        ]
    }

    /// `ssh OPTIONS user@host REMOTE_COMMAND`.
    pub fn command(&self, remote_command: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(self.ssh_options()).arg(self.destination()).arg(remote_command);
        cmd
    }
}

/// The SSH server's settings (`SSH_*`).
pub fn ssh() -> SshEnv {
    SshEnv {
        host: var("SSH_HOST"),
        port: port("SSH_PORT"),
        user: var("SSH_USER"),
        key: PathBuf::from(var("SSH_KEY")),
        known_hosts: PathBuf::from(var("SSH_KNOWN_HOSTS")),
    }
}

/// The FTP server: one user with full rights on its root, passive mode.
#[derive(Debug, Clone)]
pub struct FtpEnv {
    /// `127.0.0.1`.
    pub host: String,
    /// Control port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The directory the server serves (the tests run on the same machine).
    pub root_dir: std::path::PathBuf,
}

/// The FTP server's settings (`FTP_*`).
pub fn ftp() -> FtpEnv {
    FtpEnv {
        host: var("FTP_HOST"),
        port: port("FTP_PORT"),
        user: var("FTP_USER"),
        password: var("FTP_PASSWORD"),
        root_dir: var("FTP_ROOT_DIR").into(),
    }
}

/// The SMTP server: aiosmtpd storing every message in a Maildir, AUTH
/// optional, STARTTLS with a self-signed certificate.
#[derive(Debug, Clone)]
pub struct SmtpEnv {
    /// `127.0.0.1`.
    pub host: String,
    /// Port (plain, STARTTLS offered).
    pub port: u16,
    /// Port speaking TLS from the first byte.
    pub tls_port: u16,
    /// The one user AUTH accepts.
    pub user: String,
    /// Its password.
    pub password: String,
    /// Where messages land (`new/`), one file each.
    pub maildir: std::path::PathBuf,
}

/// The SMTP server's settings (`SMTP_*`).
pub fn smtp() -> SmtpEnv {
    SmtpEnv {
        host: var("SMTP_HOST"),
        port: port("SMTP_PORT"),
        tls_port: port("SMTP_TLS_PORT"),
        user: var("SMTP_USER"),
        password: var("SMTP_PASSWORD"),
        maildir: var("SMTP_MAILDIR").into(),
    }
}

/// A database server of the tests (PostgreSQL or MariaDB), reached by TCP
/// with a password user, or by its socket.
#[derive(Debug, Clone)]
pub struct DbEnv {
    /// `127.0.0.1`.
    pub host: String,
    /// Port.
    pub port: u16,
    /// A user with every privilege.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The socket (MariaDB: its path; PostgreSQL: its directory).
    pub socket: String,
}

/// The PostgreSQL server (`PG_*`): superuser `postgres` with a password.
pub fn postgres() -> DbEnv {
    DbEnv {
        host: var("PG_HOST"),
        port: port("PG_PORT"),
        user: var("PG_USER"),
        password: var("PG_PASSWORD"),
        socket: var("PG_SOCKET_DIR"),
    }
}

/// The MariaDB server (`MARIADB_*`).
pub fn mariadb() -> DbEnv {
    DbEnv {
        host: var("MARIADB_HOST"),
        port: port("MARIADB_PORT"),
        user: var("MARIADB_USER"),
        password: var("MARIADB_PASSWORD"),
        socket: var("MARIADB_SOCKET"),
    }
}

/// `$name`, or a panic explaining where it comes from.
fn var(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: the remote-destination tests need the test servers on 127.0.0.1; \
             run the suite through scripts/test.sh, which starts them (scripts/services/) and exports \
             S3_*, S3AUTH_*, SSH_*, FTP_*, SMTP_*, PG_* and MARIADB_*"
        ),
    }
}

fn port(name: &str) -> u16 {
    let v = var(name);
    v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a port number"))
}

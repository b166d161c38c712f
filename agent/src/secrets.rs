//! The agent's master key and the encryption of secret destination options
//! at rest in the catalog.
//!
//! The key is 32 random bytes in `<state_dir>/master.key` (mode 0600),
//! created at the first start. Each secret value is sealed on its own with
//! XChaCha20-Poly1305 under a fresh random nonce and the option's name as
//! associated data (so a ciphertext moved to another option does not open),
//! and stored as `enc:v1:<base64(nonce || ciphertext)>`. The version in the
//! prefix lets the format change without rewriting old catalogs.
//!
//! Invariants: a secret is in the clear only in memory, between the API
//! request that carries it and the catalog write, and when a store is built
//! from it; it is never logged and never returned by the API (shown as
//! [`REDACTED`]).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hindsight_fs::remote::Need;
use hindsight_fs::remote::Service;
use serde_json::{Map, Value};

/// File name of the master key in the state directory.
pub(crate) const KEY_FILE: &str = "master.key";
/// What the API shows instead of a secret; sent back in a PATCH, it keeps the stored value.
pub(crate) const REDACTED: &str = "********";
/// Prefix of a sealed value (format version 1).
const PREFIX: &str = "enc:v1:";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// A failure to load the master key or to open a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file could not be read or written.
    #[error("master key {}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file exists but cannot be trusted or used.
    #[error("master key {}: {reason}", path.display())]
    BadKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A sealed value does not open with this key (tampered, or another agent's key).
    #[error("secret option {option} cannot be decrypted: {reason}")]
    Decrypt {
        /// The option's name.
        option: String,
        /// Why.
        reason: &'static str,
    },
}

/// The agent's master key. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Self {
        MasterKey(XChaCha20Poly1305::generate_key(&mut OsRng).into())
    }

    /// Loads `dir/master.key`, creating it (0600) when missing. Refuses a key
    /// file of the wrong size, one that is not the agent's user's, or one that
    /// group or others can read: a key others may have copied protects nothing.
    ///
    /// A new key is written to a temporary file, synced, and renamed into
    /// place, then the directory is synced: a crash leaves either no key or
    /// the whole key, never a short file that would stop the agent for good.
    pub fn load_or_create(dir: &Path) -> Result<Self, SecretError> {
        let path = dir.join(KEY_FILE);
        let io = |source| SecretError::Io { path: path.clone(), source };
        let bad = |reason: String| SecretError::BadKeyFile { path: path.clone(), reason };
        match std::fs::symlink_metadata(&path) {
            Ok(meta) => {
                if !meta.is_file() {
                    return Err(bad("is not a regular file".into()));
                }
                let me = rustix::process::geteuid().as_raw();
                if meta.uid() != me {
                    return Err(bad(format!("belongs to uid {}, not to the agent's user (uid {me})", meta.uid())));
                }
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(bad(format!(
                        "is readable or writable by group or others (mode {mode:04o}); run chmod 600 on it"
                    )));
                }
                let bytes = std::fs::read(&path).map_err(io)?;
                let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
                    bad(format!("holds {} bytes, not {KEY_LEN}: restore it from `hindsight key export`", bytes.len()))
                })?;
                Ok(MasterKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = MasterKey::generate();
                let tmp = dir.join(format!(".{KEY_FILE}.{}.tmp", uuid::Uuid::new_v4().simple()));
                let written = hindsight_fs::posix::create_private(&tmp)
                    .and_then(|mut f| f.write_all(&key.0).and_then(|()| f.sync_all()));
                if let Err(e) = written {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(io(e));
                }
                // Hard link, not rename: two starts racing cannot both install a key.
                let installed = std::fs::hard_link(&tmp, &path);
                let _ = std::fs::remove_file(&tmp);
                match installed {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Self::load_or_create(dir),
                    Err(e) => return Err(io(e)),
                }
                std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
                tracing::info!(path = %path.display(), "created the master key (back it up: hindsight key export)");
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A value derived from the key for `purpose` (64 hex digits): the same
    /// for the same purpose, unknown to whoever does not hold the key.
    pub fn derive_hex(&self, purpose: &str) -> String {
        let sub = blake3::derive_key("hindsight 2026-12 derived values", &self.0);
        blake3::keyed_hash(&sub, purpose.as_bytes()).to_hex().to_string()
    }

    /// The key as lowercase hex (for `hindsight key export`).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Seals `plain` as the value of option `option`.
    pub fn seal(&self, option: &str, plain: &str) -> String {
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption with a valid key and nonce only fails on absurd lengths (> 256 GiB).
        let sealed = cipher.encrypt(&nonce, Payload { msg: plain.as_bytes(), aad: option.as_bytes() });
        let mut out = nonce.to_vec();
        out.extend(sealed.unwrap_or_default());
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// Opens a value sealed by [`MasterKey::seal`] for option `option`.
    pub fn open(&self, option: &str, stored: &str) -> Result<String, SecretError> {
        let fail = |reason| SecretError::Decrypt { option: option.to_string(), reason };
        let b64 = stored.strip_prefix(PREFIX).ok_or_else(|| fail("not an encrypted value"))?;
        let raw = B64.decode(b64).map_err(|_| fail("malformed base64"))?;
        if raw.len() < NONCE_LEN {
            return Err(fail("too short"));
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let plain = cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: option.as_bytes() })
            .map_err(|_| fail("authentication failed (altered, or sealed with another master key)"))?;
        String::from_utf8(plain).map_err(|_| fail("not UTF-8"))
    }
}

/// True when `v` is a sealed value.
pub(crate) fn is_sealed(v: &str) -> bool {
    v.starts_with(PREFIX)
}

/// Whether `option` is a secret of destination type `kind`.
pub(crate) fn is_secret(kind: &str, option: &str) -> bool {
    Service::parse(kind).is_some_and(|s| s.options().iter().any(|o| o.name == option && o.need == Need::Secret))
}

/// Seals every secret option of `kind` that is still in the clear (sealed ones stay as they are).
/// A secret given as a number or a boolean is sealed as its text, which is how the options read it.
pub(crate) fn seal_options(key: &MasterKey, kind: &str, options: &mut Map<String, Value>) {
    for (k, v) in options.iter_mut() {
        if !is_secret(kind, k) {
            continue;
        }
        let text = match v {
            Value::String(s) if s.is_empty() || is_sealed(s) => continue,
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null | Value::Array(_) | Value::Object(_) => continue,
        };
        *v = Value::String(key.seal(k, &text));
    }
}

/// The options with every sealed value opened.
pub(crate) fn open_options(key: &MasterKey, options: &Map<String, Value>) -> Result<Map<String, Value>, SecretError> {
    let mut out = options.clone();
    for (k, v) in out.iter_mut() {
        if let Value::String(s) = v
            && is_sealed(s)
        {
            *s = key.open(k, s)?;
        }
    }
    Ok(out)
}

/// The options as the API shows them: secrets (and anything sealed) as [`REDACTED`].
pub(crate) fn redact_options(kind: &str, options: &Map<String, Value>) -> Map<String, Value> {
    options
        .iter()
        .map(|(k, v)| {
            let hide = match v {
                Value::String(s) => !s.is_empty() && (is_secret(kind, k) || is_sealed(s)),
                Value::Null => false,
                _ => is_secret(kind, k),
            };
            (k.clone(), if hide { Value::String(REDACTED.into()) } else { v.clone() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn sealed_values_open_with_the_same_key_only() {
        let key = MasterKey::generate();
        let sealed = key.seal("secret_key", "hunter2");
        assert!(is_sealed(&sealed) && !sealed.contains("hunter2"));
        assert_ne!(key.seal("secret_key", "hunter2"), sealed, "a fresh nonce each time");
        assert_eq!(key.open("secret_key", &sealed).expect("open"), "hunter2");
        assert!(MasterKey::generate().open("secret_key", &sealed).is_err(), "another key");
        assert!(key.open("password", &sealed).is_err(), "moved to another option");
    }

    #[test]
    fn tampered_ciphertext_is_refused() {
        let key = MasterKey::generate();
        let sealed = key.seal("password", "p4ss");
        let mut raw = B64.decode(sealed.strip_prefix(PREFIX).expect("prefix")).expect("base64");
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = format!("{PREFIX}{}", B64.encode(&raw));
        let e = key.open("password", &tampered).expect_err("tampered");
        assert!(e.to_string().contains("authentication failed"), "{e}");
        assert!(key.open("password", "enc:v1:!!").is_err());
        assert!(key.open("password", "enc:v1:AAAA").is_err());
    }

    #[test]
    fn only_secret_options_are_sealed_and_redacted() {
        let key = MasterKey::generate();
        let mut o = opts(json!({"bucket": "b", "access_key": "AK", "secret_key": "SK", "threads": 4}));
        seal_options(&key, "s3", &mut o);
        assert_eq!(o["bucket"], "b");
        assert_eq!(o["access_key"], "AK");
        let sealed = o["secret_key"].as_str().expect("string").to_string();
        assert!(is_sealed(&sealed));
        seal_options(&key, "s3", &mut o);
        assert_eq!(o["secret_key"], sealed.as_str(), "sealing twice keeps the value");
        assert_eq!(open_options(&key, &o).expect("open")["secret_key"], "SK");
        let shown = redact_options("s3", &o);
        assert_eq!(shown["secret_key"], REDACTED);
        assert_eq!(shown["bucket"], "b");
        assert_eq!(redact_options("ftp", &opts(json!({"password": "clear"})))["password"], REDACTED);
        let mut numeric = opts(json!({"host": "h", "password": 1234}));
        seal_options(&key, "ftp", &mut numeric);
        assert_eq!(key.open("password", numeric["password"].as_str().expect("sealed")).expect("open"), "1234");
        assert_eq!(redact_options("local", &opts(json!({"path": "/x"})))["path"], "/x");
    }

    #[test]
    fn key_file_is_created_private_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = MasterKey::load_or_create(dir.path()).expect("create");
        let path = dir.path().join(KEY_FILE);
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (32, 0o600));
        let again = MasterKey::load_or_create(dir.path()).expect("load");
        assert_eq!(again.to_hex(), key.to_hex());
        assert_eq!(key.to_hex().len(), 64);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = MasterKey::load_or_create(dir.path()).expect_err("world readable");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&path, b"short").expect("write");
        let e = MasterKey::load_or_create(dir.path()).expect_err("wrong size");
        assert!(e.to_string().contains("5 bytes"), "{e}");
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).expect("read").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from(KEY_FILE)], "a temporary key file was left behind");

        if rustix::process::geteuid().is_root() {
            std::fs::write(&path, [7u8; KEY_LEN]).expect("write");
            std::os::unix::fs::chown(&path, Some(65534), None).expect("chown");
            let e = MasterKey::load_or_create(dir.path()).expect_err("another user's key");
            assert!(e.to_string().contains("belongs to uid 65534"), "{e}");
        }
    }
}

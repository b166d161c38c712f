//! Credentials handed to a database client: a file only the agent can read
//! (a MariaDB option file, a libpq password file, a mongosh script), in a
//! private directory of the state directory, removed when the client is done.
//! A password is never on a command line (where `ps` shows it to every user)
//! nor in the environment of a client.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::AgentError;

/// A private file removed when dropped.
pub(crate) struct Credentials {
    path: PathBuf,
}

/// The directory of credentials files in the state directory.
const DIR: &str = "tmp";
/// How their names start.
const PREFIX: &str = "db-";

/// Removes the credentials files a crash left behind (the agent's alone,
/// but a password on disk is one copy too many); returns how many.
pub(crate) fn remove_leftovers(state_dir: &Path) -> usize {
    let entries = std::fs::read_dir(state_dir.join(DIR)).into_iter().flatten().flatten();
    let left = entries.filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX));
    left.filter(|e| std::fs::remove_file(e.path()).is_ok()).count()
}

impl Credentials {
    /// Writes `text` into a new 0600 file under `<state_dir>/tmp` (0700).
    pub(crate) fn write(state_dir: &Path, text: &str) -> Result<Credentials, AgentError> {
        let dir = state_dir.join(DIR);
        hindsight_fs::create_private_dir_all(&dir)
            .map_err(|e| AgentError::internal(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join(format!("{PREFIX}{}", uuid::Uuid::new_v4().simple()));
        let mut f = hindsight_fs::posix::create_private(&path)
            .map_err(|e| AgentError::internal(format!("creating {}: {e}", path.display())))?;
        let written = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
        let c = Credentials { path };
        written.map_err(|e| AgentError::internal(format!("writing {}: {e}", c.path.display())))?;
        Ok(c)
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A value for a MariaDB/MySQL option file, quoted (backslash and quote escaped).
pub(crate) fn option_value(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A field of a libpq password file (backslash and colon escaped).
pub(crate) fn pgpass_field(v: &str) -> String {
    v.replace('\\', "\\\\").replace(':', "\\:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_the_file_is_private_and_removed() {
        assert_eq!(option_value(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(pgpass_field(r"p:w\x"), r"p\:w\\x");
        let dir = std::env::temp_dir().join(format!("hs-cred-{}", uuid::Uuid::new_v4().simple()));
        let c = Credentials::write(&dir, "secret").unwrap_or_else(|e| panic!("{}", e.message));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(c.path()).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o600);
        let path = c.path().to_path_buf();
        drop(c);
        assert!(!path.exists());
        // A crash between the two leaves the file: the next start removes it.
        let kept =
            std::mem::ManuallyDrop::new(Credentials::write(&dir, "left").unwrap_or_else(|e| panic!("{}", e.message)));
        assert_eq!(remove_leftovers(&dir), 1);
        assert!(!kept.path().exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

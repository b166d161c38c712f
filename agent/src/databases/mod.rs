//! Database servers whose databases jobs dump: their settings, checked when
//! given, the password sealed in the catalog and redacted in the API, and
//! the client that connects to them (`client`), and what a job's run dumps
//! (`plan`), and restores of their dumps (`restore`).

mod client;
mod credentials;
mod plan;
mod restore;

use hindsight_api::{DatabaseServer, DatabaseServerPatch, DbEngine};

use crate::error::AgentError;
use crate::secrets::{MasterKey, REDACTED, SecretError};

pub(crate) use client::test;
pub(crate) use credentials::remove_leftovers;
pub(crate) use plan::{AccountSplit, DatabaseFilter, Plan, file_name, plan, plan_accounts};
pub(crate) use restore::{Target, check_target, dump_extension, restore};

/// The name a password is sealed under (a sealed value moved elsewhere does not open).
const SEALED_AS: &str = "database.password";

/// Checks a server's settings; the error names the field.
pub(crate) fn check(d: &DatabaseServer) -> Result<(), AgentError> {
    hindsight_fs::check_name("database server", &d.name).map_err(AgentError::invalid)?;
    let bad = |m: String| Err(AgentError::invalid(m));
    // Every value ends up in an option file or a libpq variable: no line
    // breaks or NULs that could add settings of their own.
    for (field, v) in [("host", &d.host), ("socket", &d.socket), ("user", &d.user), ("password", &d.password)] {
        if v.as_deref().is_some_and(|v| v.chars().any(|c| c == '\n' || c == '\r' || c == '\0')) {
            return bad(format!("{field}: a line break or NUL is not allowed"));
        }
    }
    if let Some(h) = d.host.as_deref()
        && (h.is_empty() || h.chars().any(|c| c.is_whitespace() || c == '/' || c == '@'))
    {
        return bad(format!("host: {h:?} is not a host name or address"));
    }
    if let Some(s) = d.socket.as_deref()
        && !s.starts_with('/')
    {
        return bad(format!("socket: {s:?} is not an absolute path"));
    }
    if d.port == Some(0) {
        return bad("port must be 1 to 65535".into());
    }
    if d.host.is_some() && d.socket.is_some() {
        return bad("give a host or a socket, not both".into());
    }
    if d.engine == DbEngine::Mongodb && d.socket.is_some() {
        return bad("socket: MongoDB servers are reached by host and port here".into());
    }
    Ok(())
}

/// The server with a patch applied: an empty text removes a field, a
/// password sent back as `********` keeps the stored one.
pub(crate) fn patched(mut d: DatabaseServer, p: DatabaseServerPatch) -> DatabaseServer {
    let set = |field: &mut Option<String>, v: Option<String>| {
        if let Some(v) = v {
            *field = (!v.is_empty()).then_some(v);
        }
    };
    set(&mut d.host, p.host);
    set(&mut d.socket, p.socket);
    set(&mut d.user, p.user);
    if p.password.as_deref() != Some(REDACTED) {
        set(&mut d.password, p.password);
    }
    if let Some(port) = p.port {
        d.port = (port != 0).then_some(port);
    }
    d.tls = p.tls.unwrap_or(d.tls);
    d
}

/// Seals the password if it is still in the clear.
pub(crate) fn seal(key: &MasterKey, d: &mut DatabaseServer) {
    if let Some(p) = d.password.as_mut().filter(|p| !p.is_empty() && !crate::secrets::is_sealed(p)) {
        *p = key.seal(SEALED_AS, p);
    }
}

/// The server with its password opened, to connect.
pub(crate) fn open(key: &MasterKey, d: &DatabaseServer) -> Result<DatabaseServer, SecretError> {
    let mut out = d.clone();
    if let Some(p) = out.password.as_mut().filter(|p| crate::secrets::is_sealed(p)) {
        *p = key.open(SEALED_AS, p)?;
    }
    Ok(out)
}

/// The server as the API shows it.
pub(crate) fn redact(d: &DatabaseServer) -> DatabaseServer {
    let mut out = d.clone();
    if let Some(p) = out.password.as_mut() {
        *p = REDACTED.to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hindsight_api::DbTls;

    fn server() -> DatabaseServer {
        DatabaseServer {
            name: "db1".into(),
            engine: DbEngine::Postgresql,
            host: Some("127.0.0.1".into()),
            port: Some(5432),
            socket: None,
            user: Some("backup".into()),
            password: Some("s3cret".into()),
            tls: DbTls::Prefer,
        }
    }

    #[test]
    fn bad_settings_are_refused_and_the_password_is_sealed_redacted_and_kept() {
        assert!(check(&server()).is_ok());
        let mut d = server();
        d.password = Some("a\nhost=evil".into());
        assert!(check(&d).is_err_and(|e| e.message.contains("password")));
        let mut d = server();
        d.socket = Some("/run/postgresql".into());
        assert!(check(&d).is_err_and(|e| e.message.contains("not both")));
        let key = MasterKey::generate();
        let mut d = server();
        seal(&key, &mut d);
        assert!(d.password.as_deref().is_some_and(crate::secrets::is_sealed));
        assert_eq!(redact(&d).password.as_deref(), Some(REDACTED));
        let kept = patched(
            d.clone(),
            DatabaseServerPatch { password: Some(REDACTED.into()), port: Some(0), ..Default::default() },
        );
        assert_eq!(open(&key, &kept).ok().and_then(|o| o.password), Some("s3cret".into()));
        assert_eq!(kept.port, None);
    }
}

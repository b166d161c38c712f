//! Remote destinations named by URL, for commands that run without the agent
//! (`hindsight mount --destination URL`): `s3://bucket/path`,
//! `gcs://bucket/path`, `ftp://user@host:port/path` (`ftps://` for FTPS),
//! `ssh://user@host:port/path` or `sftp://...`. Options the URL cannot carry
//! (endpoint, keys, passwords) come separately.

use serde_json::{Map, Value};

use super::config::RemoteConfig;

/// The configuration a URL and extra `options` describe; `None` when `s` is
/// not a URL (a local path).
pub fn parse_url(s: &str, options: &Map<String, Value>) -> Option<Result<RemoteConfig, String>> {
    let (scheme, rest) = s.split_once("://")?;
    Some(build(scheme, rest, options))
}

fn build(scheme: &str, rest: &str, options: &Map<String, Value>) -> Result<RemoteConfig, String> {
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{p}")),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() {
        return Err(format!("{scheme}://: the URL names no bucket or host"));
    }
    let mut o = Map::new();
    let mut set = |k: &str, v: &str| {
        o.insert(k.to_string(), Value::String(v.to_string()));
    };
    let kind = match scheme {
        "s3" | "gcs" => {
            set("bucket", authority);
            scheme
        }
        "ftp" | "ftps" | "ssh" | "sftp" => {
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, authority),
            };
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => (h, Some(p)),
                _ => (hostport, None),
            };
            set("host", host);
            if let Some(p) = port {
                set("port", p);
            }
            if let Some(u) = user {
                set("username", u);
            }
            if scheme == "ftps" {
                set("secure", "true");
            }
            if scheme == "ftps" { "ftp" } else { scheme }
        }
        other => return Err(format!("unknown URL scheme {other}://; use s3, gcs, ftp, ftps, ssh or sftp")),
    };
    if path != "/" {
        set("path", &path);
    }
    for (k, v) in options {
        o.insert(k.clone(), v.clone());
    }
    RemoteConfig::parse(kind, &o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::config::Settings;

    fn parse(s: &str, extra: &[(&str, &str)]) -> Option<Result<RemoteConfig, String>> {
        let o: Map<String, Value> = extra.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
        parse_url(s, &o)
    }

    #[test]
    fn urls_fill_the_options_they_carry() {
        let c = parse("s3://backups/srv/web", &[("endpoint", "http://127.0.0.1:9000")]).expect("url").expect("ok");
        let Settings::S3(s3) = &c.settings else { panic!("not s3: {c:?}") };
        assert_eq!((s3.bucket.as_str(), c.root()), ("backups", "/srv/web/".to_string()));
        let c = parse("ftps://bob@files.example:2121/dest", &[]).expect("url").expect("ok");
        let Settings::Ftp(ftp) = &c.settings else { panic!("not ftp: {c:?}") };
        assert_eq!((ftp.host.as_str(), ftp.port, ftp.username.as_deref()), ("files.example", 2121, Some("bob")));
        assert!(ftp.secure);
        assert!(parse("/srv/backup", &[]).is_none(), "a path is not a URL");
        assert!(parse("zip://x", &[]).expect("url").expect_err("scheme").contains("unknown URL scheme"));
        assert!(parse("s3://", &[]).expect("url").is_err());
    }
}

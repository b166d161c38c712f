//! What restores must accept (restore conditions) and the owners and modes
//! they give at matching paths (file permission rules).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use globset::{GlobBuilder, GlobMatcher};
use hindsight_fs::{EntryKind, EntryMeta};

use crate::catalog::Catalog;
use crate::error::AgentError;
use crate::model::PermissionRule;

/// The texts of the restore conditions a restore accepts; refused when
/// there are some and `accept` is false.
pub(crate) fn accepted_conditions(catalog: &Catalog, accept: bool) -> Result<Vec<String>, AgentError> {
    let texts: Vec<String> = catalog.restore_conditions()?.into_iter().map(|c| c.text).collect();
    if !texts.is_empty() && !accept {
        let listed: Vec<String> = texts.iter().enumerate().map(|(i, t)| format!("{}) {t}", i + 1)).collect();
        return Err(AgentError::invalid(format!(
            "this restore must accept the restore conditions: {}; pass --accept-conditions",
            listed.join(" ")
        )));
    }
    Ok(texts)
}

/// Checks a rule: its glob, that its owner and group exist, its modes.
pub(crate) fn check_rule(mut r: PermissionRule) -> Result<PermissionRule, AgentError> {
    glob(&r.glob)?;
    if r.owner.is_none() && r.group.is_none() && r.file_mode.is_none() && r.dir_mode.is_none() {
        return Err(AgentError::invalid("a rule gives an owner, a group, a file mode or a directory mode"));
    }
    if let Some(o) = &r.owner {
        uid_of(o)?;
    }
    if let Some(g) = &r.group {
        gid_of(g)?;
    }
    for m in [&mut r.file_mode, &mut r.dir_mode].into_iter().flatten() {
        *m = format!("{:04o}", mode(m)?);
    }
    Ok(r)
}

fn glob(g: &str) -> Result<GlobMatcher, AgentError> {
    if !g.starts_with('/') && !g.starts_with("**") {
        return Err(AgentError::invalid(format!("glob {g:?}: match absolute paths (start with / or **)")));
    }
    GlobBuilder::new(g)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| AgentError::invalid(format!("glob {g:?}: {e}")))
}

fn mode(m: &str) -> Result<u32, AgentError> {
    u32::from_str_radix(m, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| AgentError::invalid(format!("mode {m:?}: give octal permission bits, 0000 to 7777")))
}

fn uid_of(name: &str) -> Result<u32, AgentError> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(AgentError::invalid(format!("owner {name}: no such user"))),
        Err(e) => Err(AgentError::invalid(format!("owner {name}: {e}"))),
    }
}

fn gid_of(name: &str) -> Result<u32, AgentError> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(AgentError::invalid(format!("group {name}: no such group"))),
        Err(e) => Err(AgentError::invalid(format!("group {name}: {e}"))),
    }
}

/// One rule, compiled.
struct Rule {
    glob: GlobMatcher,
    uid: Option<u32>,
    gid: Option<u32>,
    file_mode: Option<u32>,
    dir_mode: Option<u32>,
    recursive: bool,
}

/// The file permission rules, compiled (owners and groups looked up once).
#[derive(Default)]
pub(crate) struct Rules(Vec<Rule>);

impl Rules {
    /// The catalog's rules.
    pub(crate) fn load(catalog: &Catalog) -> Result<Self, AgentError> {
        let mut out = Vec::new();
        for r in catalog.permission_rules()? {
            out.push(Rule {
                glob: glob(&r.glob)?,
                uid: r.owner.as_deref().map(uid_of).transpose()?,
                gid: r.group.as_deref().map(gid_of).transpose()?,
                file_mode: r.file_mode.as_deref().map(mode).transpose()?,
                dir_mode: r.dir_mode.as_deref().map(mode).transpose()?,
                recursive: r.recursive,
            });
        }
        Ok(Rules(out))
    }

    /// `meta` as the rules matching `path` (absolute, as backed up) give it;
    /// later rules win. A file given another owner or group than recorded
    /// loses its setuid and setgid bits.
    pub(crate) fn apply(&self, path: &[u8], meta: &EntryMeta) -> EntryMeta {
        let mut m = meta.clone();
        for r in &self.0 {
            let hit = r.glob.is_match(OsStr::from_bytes(path))
                || (r.recursive && ancestors(path).any(|a| r.glob.is_match(OsStr::from_bytes(a))));
            if !hit {
                continue;
            }
            m.uid = r.uid.unwrap_or(m.uid);
            m.gid = r.gid.unwrap_or(m.gid);
            let mode = match m.kind {
                EntryKind::Dir => r.dir_mode,
                EntryKind::Symlink => None,
                _ => r.file_mode,
            };
            m.mode = mode.unwrap_or(m.mode);
        }
        if (m.uid, m.gid) != (meta.uid, meta.gid) && m.kind != EntryKind::Dir {
            m.mode &= !0o6000;
        }
        m
    }
}

/// `/a/b/c` -> `/a/b`, `/a`.
fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let cuts: Vec<usize> = path.iter().enumerate().skip(1).filter(|(_, b)| **b == b'/').map(|(i, _)| i).collect();
    cuts.into_iter().rev().map(move |i| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: EntryKind, mode: u32) -> EntryMeta {
        EntryMeta {
            kind,
            mode,
            uid: 1000,
            gid: 1000,
            size: 0,
            mtime_ns: 0,
            atime_ns: 0,
            ctime_ns: 0,
            rdev: 0,
            target: None,
            xattrs: Default::default(),
        }
    }

    #[test]
    fn rules_match_paths_and_below_when_recursive() {
        let rule = |g: &str, uid: Option<u32>, fm: Option<u32>, dm: Option<u32>, recursive| Rule {
            glob: glob(g).expect("glob"),
            uid,
            gid: None,
            file_mode: fm,
            dir_mode: dm,
            recursive,
        };
        let rules = Rules(vec![
            rule("/srv/www/*.php", None, Some(0o640), None, false),
            rule("/srv/public", Some(33), Some(0o644), Some(0o755), true),
        ]);
        assert_eq!(rules.apply(b"/srv/www/index.php", &meta(EntryKind::File, 0o600)).mode, 0o640);
        assert_eq!(
            rules.apply(b"/srv/www/sub/index.php", &meta(EntryKind::File, 0o600)).mode,
            0o600,
            "* stays in one directory"
        );
        let deep = rules.apply(b"/srv/public/a/b", &meta(EntryKind::File, 0o4755));
        assert_eq!((deep.uid, deep.mode), (33, 0o644));
        assert_eq!(rules.apply(b"/srv/public/a", &meta(EntryKind::Dir, 0o700)).mode, 0o755);
        let suid = Rules(vec![rule("/bin/tool", Some(33), None, None, false)])
            .apply(b"/bin/tool", &meta(EntryKind::File, 0o4755));
        assert_eq!(suid.mode, 0o755, "setuid never lands on a file given another owner");
        assert!(
            check_rule(PermissionRule {
                id: 0,
                glob: "relative/*".into(),
                owner: None,
                group: None,
                file_mode: Some("0644".into()),
                dir_mode: None,
                recursive: false
            })
            .is_err()
        );
        assert!(mode("0999").is_err() && mode("17777").is_err());
    }
}

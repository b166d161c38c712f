//! What one account's snapshot holds: its home directory, its crontab and
//! its mail spool, each only when it really is that user's (a home or spool
//! owned by someone else is left out and reported: backing it up would put
//! another user's files in this account's snapshots).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hindsight_api::Settings;

use super::system::SystemUser;

/// An account's paths for one run, and what was left out (`(path, why)`).
#[derive(Debug, Default)]
pub(crate) struct AccountPaths {
    /// Absolute paths to back up.
    pub sources: Vec<PathBuf>,
    /// Paths left out, and why: errors of the account's snapshot.
    pub problems: Vec<(Vec<u8>, String)>,
}

/// The paths of `user`'s snapshot.
pub(crate) fn paths(user: &SystemUser, settings: &Settings) -> AccountPaths {
    let mut out = AccountPaths::default();
    let home = &user.home;
    // A home of `/` (or relative, or with `..`) would be the whole system.
    let plain = home.is_absolute()
        && home.components().count() > 1
        && !home.components().any(|c| c == std::path::Component::ParentDir);
    if plain {
        match owned(home, user.uid, true) {
            Ok(true) => out.sources.push(home.components().collect()),
            Ok(false) => {}
            Err(why) => out.problems.push((bytes(home), why)),
        }
    } else {
        tracing::info!("account {}: home {} is not backed up (not a home directory)", user.name, home.display());
    }
    for dir in [&settings.accounts_crontab_dir, &settings.accounts_mail_dir] {
        let file = Path::new(dir).join(&user.name);
        match owned(&file, user.uid, false) {
            Ok(true) => out.sources.push(file),
            Ok(false) => {}
            Err(why) => out.problems.push((bytes(&file), why)),
        }
    }
    out
}

/// Whether `path` exists as a directory (`dir`) or regular file owned by
/// `uid`; an error says what else is there. Not followed if a symlink.
fn owned(path: &Path, uid: u32, dir: bool) -> Result<bool, String> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("cannot be read: {e}")),
    };
    let kind_ok = if dir { md.is_dir() } else { md.is_file() };
    if !kind_ok {
        let want = if dir { "a directory" } else { "a regular file" };
        return Err(format!("left out: not {want} (a symbolic link or something else)"));
    }
    if md.uid() != uid {
        return Err(format!("left out: owned by uid {}, not by the account (uid {uid})", md.uid()));
    }
    Ok(true)
}

fn bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

/// The homes of `others` that lie inside `user`'s home: skipped in its
/// snapshot (each is its own account's).
pub(crate) fn nested_homes(user: &SystemUser, others: &[SystemUser]) -> Vec<Vec<u8>> {
    others
        .iter()
        .filter(|o| o.name != user.name && o.home != user.home && o.home.starts_with(&user.home))
        .map(|o| bytes(&o.home.components().collect::<PathBuf>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn only_what_the_user_owns_is_backed_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let me = std::fs::metadata(dir.path()).expect("stat").uid();
        let mut settings = crate::settings::from_stored(&Default::default());
        let (cron, mail, home) = (dir.path().join("cron"), dir.path().join("mail"), dir.path().join("home"));
        for d in [&cron, &mail, &home] {
            std::fs::create_dir(d).expect("mkdir");
        }
        settings.accounts_crontab_dir = cron.to_string_lossy().into_owned();
        settings.accounts_mail_dir = mail.to_string_lossy().into_owned();
        std::fs::write(cron.join("alice"), "* * * * * true\n").expect("crontab");
        symlink("/etc/shadow", mail.join("alice")).expect("symlink");
        let alice = SystemUser { name: "alice".into(), uid: me, home: home.clone() };
        let p = paths(&alice, &settings);
        assert_eq!(p.sources, [home.clone(), cron.join("alice")]);
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert!(p.problems[0].1.contains("not a regular file"), "{:?}", p.problems);

        let stranger = SystemUser { name: "bob".into(), uid: me + 1, home: home.clone() };
        let p = paths(&stranger, &settings);
        assert!(p.sources.is_empty());
        assert!(p.problems[0].1.contains("not by the account"), "{:?}", p.problems);

        let rooted = SystemUser { name: "carol".into(), uid: me, home: "/".into() };
        assert!(paths(&rooted, &settings).sources.is_empty());

        let inner = SystemUser { name: "dan".into(), uid: me, home: home.join("dan") };
        assert_eq!(nested_homes(&alice, &[alice.clone(), inner]), [bytes(&home.join("dan"))]);
    }
}

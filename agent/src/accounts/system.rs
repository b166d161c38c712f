//! The users of this system, as accounts jobs see them: every local user in
//! `/etc/passwd` within the settings' uid range, or the users a job names,
//! looked up through NSS (so LDAP or sssd users can be named).

use std::path::{Path, PathBuf};

use hindsight_api::{JobAccounts, Settings};

/// A user of this system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SystemUser {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Home directory, as the user database gives it.
    pub home: PathBuf,
}

/// Whether a user exists, as far as the system can tell.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// It does.
    Exists(SystemUser),
    /// The user database answered: no such user.
    Gone,
    /// The user database could not answer (NSS down): nothing is concluded.
    Unknown(String),
}

/// Looks a user up by name (getpwnam_r).
pub(crate) fn lookup(name: &str) -> Lookup {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Lookup::Exists(SystemUser { name: u.name, uid: u.uid.as_raw(), home: u.dir }),
        Ok(None) => Lookup::Gone,
        Err(e) => Lookup::Unknown(format!("looking up user {name}: {e}")),
    }
}

/// The users of a `passwd(5)` file, in file order; malformed lines are skipped.
pub(crate) fn passwd_users(path: &Path) -> Result<Vec<SystemUser>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('+') && !l.starts_with('-'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 || f[0].is_empty() {
                return None;
            }
            Some(SystemUser { name: f[0].to_string(), uid: f[2].parse().ok()?, home: PathBuf::from(f[5]) })
        })
        .collect())
}

/// The users a job backs up this run, by name, and why others it meant
/// could not be (`(user, why)`): a named user that does not exist, a name
/// that cannot be a directory name.
pub(crate) fn select(job: &JobAccounts, settings: &Settings) -> (Vec<SystemUser>, Vec<(String, String)>) {
    select_from(job, settings, Path::new("/etc/passwd"), lookup)
}

fn select_from(
    job: &JobAccounts,
    settings: &Settings,
    passwd: &Path,
    lookup: impl Fn(&str) -> Lookup,
) -> (Vec<SystemUser>, Vec<(String, String)>) {
    let mut problems = Vec::new();
    let mut users: Vec<SystemUser> = Vec::new();
    if job.include.is_empty() {
        match passwd_users(passwd) {
            Ok(all) => {
                let (lo, hi) = (settings.accounts_min_uid, settings.accounts_max_uid);
                users.extend(all.into_iter().filter(|u| (lo..=hi).contains(&u.uid)));
            }
            Err(e) => problems.push((String::new(), format!("cannot list the users of this system: {e}"))),
        }
    } else {
        for name in &job.include {
            match lookup(name) {
                Lookup::Exists(u) => users.push(u),
                Lookup::Gone => problems.push((name.clone(), format!("account {name} does not exist on this system"))),
                Lookup::Unknown(why) => problems.push((name.clone(), why)),
            }
        }
    }
    users.retain(|u| !job.exclude.contains(&u.name));
    let mut seen = std::collections::HashSet::new();
    users.retain(|u| seen.insert(u.name.clone()));
    users.retain(|u| match hindsight_fs::check_account_name(&u.name) {
        Ok(()) => true,
        Err(e) => {
            problems.push((u.name.clone(), format!("user left out: {e}")));
            false
        }
    });
    (users, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        let mut s = crate::settings::from_stored(&Default::default());
        s.accounts_min_uid = 1000;
        s.accounts_max_uid = 60000;
        s
    }

    #[test]
    fn users_in_range_are_selected_and_named_ones_looked_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/bash\n\
             alice:x:1000:1000::/home/alice:/bin/bash\n\
             # a comment\n\
             broken line\n\
             nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n\
             bob:x:1001:1001::/home/bob:/bin/sh\n\
             we$ird:x:1002:1002::/home/w:/bin/sh\n\
             carol:x:1003:1003::/home/carol:/bin/sh\n",
        )
        .expect("write");
        let job = JobAccounts { include: vec![], exclude: vec!["carol".into()] };
        let (users, problems) = select_from(&job, &settings(), &passwd, |_| Lookup::Gone);
        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(users[0].home, PathBuf::from("/home/alice"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].1.contains("invalid account name"), "{problems:?}");

        let job = JobAccounts { include: vec!["root".into(), "ghost".into()], exclude: vec![] };
        let found = |n: &str| match n {
            "root" => Lookup::Exists(SystemUser { name: "root".into(), uid: 0, home: "/root".into() }),
            _ => Lookup::Gone,
        };
        let (users, problems) = select_from(&job, &settings(), &passwd, found);
        assert_eq!(users.len(), 1);
        assert_eq!(problems, [("ghost".to_string(), "account ghost does not exist on this system".to_string())]);
    }
}

//! Root-only set-up through system tools: tmpfs mounts (unmounted on drop),
//! the unprivileged user `hsuser`, POSIX ACLs (`setfacl`), ownership of trees.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The unprivileged user the per-file error tests run the daemon as.
pub const UNPRIVILEGED_USER: &str = "hsuser";

/// Runs a system tool and panics with its stderr when it fails.
pub fn tool<I, A>(program: &str, args: I)
where
    I: IntoIterator<Item = A>,
    A: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
    let out = Command::new(program).args(&args).output().unwrap_or_else(|e| {
        let hint = if program == "setfacl" { " (apt-get install -y acl)" } else { "" };
        panic!("cannot run {program}: {e}{hint}")
    });
    assert!(
        out.status.success(),
        "{program} {:?} failed ({}): {}",
        args,
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// `setfacl ARGS PATH` (e.g. `-m u:1234:r`, or `-d -m ...` for a default ACL).
pub fn setfacl(args: &[&str], path: &Path) {
    tool("setfacl", args.iter().map(OsStr::new).chain([path.as_os_str()]));
}

/// A tmpfs mounted for one test, unmounted when dropped.
pub struct Mount {
    path: PathBuf,
}

impl Mount {
    /// Mounts a tmpfs with `options` (e.g. `size=8m`, `ro`) on the directory `path`.
    pub fn tmpfs(path: &Path, options: &str) -> Mount {
        std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        tool(
            "mount",
            [
                OsStr::new("-t"),
                OsStr::new("tmpfs"),
                OsStr::new("-o"),
                OsStr::new(options),
                OsStr::new("tmpfs"),
                path.as_os_str(),
            ],
        );
        Mount { path: path.to_path_buf() }
    }

    /// Mounts a new ext4 filesystem of `mib` MiB, in an image file next to
    /// `path`, on the directory `path`: a disk-backed filesystem (the test
    /// trees are on a tmpfs, whose pages can never leave the page cache).
    pub fn ext4(path: &Path, mib: u32) -> Mount {
        std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        let image = path.with_extension("img");
        let f = std::fs::File::create(&image).unwrap_or_else(|e| panic!("create {}: {e}", image.display()));
        f.set_len(u64::from(mib) << 20).unwrap_or_else(|e| panic!("size {}: {e}", image.display()));
        tool("mkfs.ext4", [OsStr::new("-q"), OsStr::new("-F"), image.as_os_str()]);
        let m = Mount { path: path.to_path_buf() };
        m.mount_image();
        m
    }

    fn mount_image(&self) {
        let image = self.path.with_extension("img");
        tool(
            "mount",
            [OsStr::new("-o"), OsStr::new("loop,errors=remount-ro"), image.as_os_str(), self.path.as_os_str()],
        );
    }

    /// Makes the ext4 filesystem of [`Mount::ext4`] fail as a disk with an
    /// error does: the kernel turns it read-only at once, under whatever is
    /// writing (a remount would wait for open files).
    pub fn fail_read_only(&self) {
        let source = Command::new("findmnt").args(["-n", "-o", "SOURCE"]).arg(&self.path).output().expect("findmnt");
        let dev = String::from_utf8_lossy(&source.stdout).trim().rsplit('/').next().unwrap_or_default().to_string();
        std::fs::write(format!("/sys/fs/ext4/{dev}/trigger_fs_error"), b"1")
            .unwrap_or_else(|e| panic!("trigger an error on {dev}: {e}"));
    }

    /// After [`Mount::fail_read_only`]: unmounts (once nothing holds it),
    /// repairs with `e2fsck` and mounts the filesystem again, writable.
    pub fn repair(&self) {
        let unmounted = (0..100).any(|_| {
            let done = Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success());
            if !done {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            done
        });
        assert!(unmounted, "{} stayed busy", self.path.display());
        let image = self.path.with_extension("img");
        // Exit status 1: errors were corrected.
        let fsck = Command::new("e2fsck").arg("-fy").arg(&image).status().expect("e2fsck");
        assert!(matches!(fsck.code(), Some(0 | 1)), "e2fsck of {}: {fsck}", image.display());
        self.mount_image();
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success());
        if !ok {
            // Busy (a process still in it): detach it so that the sandbox can go.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Uid and gid of [`UNPRIVILEGED_USER`], creating the user the first time.
pub fn unprivileged_user() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        if id_of("-u").is_none() {
            tool("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", UNPRIVILEGED_USER]);
        }
        let uid = id_of("-u").expect("uid of the user just created");
        let gid = id_of("-g").expect("gid of the user just created");
        (uid, gid)
    })
}

/// Runs `args` as [`UNPRIVILEGED_USER`] (its own uid and gid, no other group).
pub fn as_user(args: &[&str]) -> std::process::Output {
    unprivileged_user();
    Command::new("setpriv")
        .args([&format!("--reuid={UNPRIVILEGED_USER}"), &format!("--regid={UNPRIVILEGED_USER}"), "--clear-groups"])
        .args(args)
        .output()
        .expect("run setpriv")
}

fn id_of(flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, UNPRIVILEGED_USER]).output().expect("run id");
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Gives `root` and everything below it to `uid:gid` (symlinks themselves).
pub fn chown_tree(root: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(root, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("chown {}: {e}", root.display()));
    let md = std::fs::symlink_metadata(root).unwrap_or_else(|e| panic!("lstat {}: {e}", root.display()));
    if md.is_dir() {
        for child in std::fs::read_dir(root).unwrap_or_else(|e| panic!("read {}: {e}", root.display())) {
            chown_tree(&child.expect("read a directory entry").path(), uid, gid);
        }
    }
}

/// True when `path` is the root of a mount.
pub fn is_mounted(path: &Path) -> bool {
    let want = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_ref()))
}

/// Detaches whatever FUSE mount is left on a directory when dropped: a test
/// that kills a mounting process must not leave a dead mount in its sandbox.
pub struct FuseGuard(pub PathBuf);

impl Drop for FuseGuard {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

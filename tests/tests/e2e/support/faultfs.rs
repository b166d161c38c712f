//! A read-only FUSE filesystem mirroring a directory, whose reads of chosen
//! files fail with EIO: a disk with bad sectors under a source or under a
//! destination, for the fault harness. Everything else (lookups, attributes,
//! listings, links, other files' data) passes through.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, Request,
};

/// Kernel cache lifetime: short, the tests read each file once or twice.
const TTL: Duration = Duration::from_secs(1);

/// The filesystem: node ids are indexes into `paths` (plus one).
struct FaultFs {
    root: PathBuf,
    /// A read of a file whose path (relative to the root) contains one of these fails.
    fail: Vec<Vec<u8>>,
    paths: Mutex<(Vec<PathBuf>, HashMap<PathBuf, u64>)>,
}

impl FaultFs {
    fn node(&self, rel: PathBuf) -> u64 {
        let mut t = self.paths.lock().expect("paths");
        if let Some(&n) = t.1.get(&rel) {
            return n;
        }
        t.0.push(rel.clone());
        let n = t.0.len() as u64;
        t.1.insert(rel, n);
        n
    }

    fn rel(&self, ino: INodeNo) -> Option<PathBuf> {
        self.paths.lock().expect("paths").0.get((ino.0 as usize).checked_sub(1)?).cloned()
    }

    fn attr(&self, node: u64, rel: &Path) -> Result<FileAttr, Errno> {
        let md = std::fs::symlink_metadata(self.root.join(rel))
            .map_err(|e| Errno::from_i32(e.raw_os_error().unwrap_or(5)))?;
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            FileType::Directory
        } else if ft.is_symlink() {
            FileType::Symlink
        } else {
            FileType::RegularFile
        };
        let t = |s: i64, ns: i64| UNIX_EPOCH + Duration::new(s.max(0) as u64, ns as u32);
        Ok(FileAttr {
            ino: INodeNo(node),
            size: md.size(),
            blocks: md.blocks(),
            atime: t(md.atime(), md.atime_nsec()),
            mtime: t(md.mtime(), md.mtime_nsec()),
            ctime: t(md.ctime(), md.ctime_nsec()),
            crtime: t(md.mtime(), md.mtime_nsec()),
            kind,
            perm: (md.mode() & 0o7777) as u16,
            nlink: md.nlink() as u32,
            uid: md.uid(),
            gid: md.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn fails(&self, rel: &Path) -> bool {
        let bytes = rel.as_os_str().as_bytes();
        self.fail.iter().any(|f| bytes.windows(f.len()).any(|w| w == f.as_slice()))
    }
}

impl Filesystem for FaultFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(dir) = self.rel(parent) else { return reply.error(Errno::ENOENT) };
        let rel = dir.join(name);
        let node = self.node(rel.clone());
        match self.attr(node, &rel) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let Some(rel) = self.rel(ino) else { return reply.error(Errno::ENOENT) };
        match self.attr(ino.0, &rel) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let Some(rel) = self.rel(ino) else { return reply.error(Errno::ENOENT) };
        match std::fs::read_link(self.root.join(rel)) {
            Ok(t) => reply.data(t.as_os_str().as_bytes()),
            Err(_) => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(rel) = self.rel(ino) else { return reply.error(Errno::ENOENT) };
        if self.fails(&rel) {
            return reply.error(Errno::EIO);
        }
        let mut buf = vec![0u8; size as usize];
        let read = std::fs::File::open(self.root.join(&rel)).and_then(|f| {
            let mut done = 0;
            while done < buf.len() {
                match f.read_at(&mut buf[done..], offset + done as u64)? {
                    0 => break,
                    n => done += n,
                }
            }
            Ok(done)
        });
        match read {
            Ok(n) => reply.data(&buf[..n]),
            Err(_) => reply.error(Errno::EIO),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let Some(dir) = self.rel(ino) else { return reply.error(Errno::ENOENT) };
        let Ok(rd) = std::fs::read_dir(self.root.join(&dir)) else { return reply.error(Errno::EIO) };
        let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort();
        let mut entries = vec![(ino.0, FileType::Directory, OsStr::new(".").to_os_string())];
        entries.push((ino.0, FileType::Directory, OsStr::new("..").to_os_string()));
        for n in names {
            let rel = dir.join(&n);
            let node = self.node(rel.clone());
            let Ok(a) = self.attr(node, &rel) else { continue };
            entries.push((node, a.kind, n));
        }
        for (i, (node, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*node), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// A mounted fault filesystem; unmounted on drop.
pub struct FaultMount {
    _session: fuser::BackgroundSession,
    path: PathBuf,
}

impl FaultMount {
    /// Mirrors `source` on `mountpoint` (created), failing reads of files
    /// whose path under `source` contains one of `fail`.
    pub fn new(source: &Path, mountpoint: &Path, fail: &[&[u8]]) -> FaultMount {
        std::fs::create_dir_all(mountpoint).expect("create the fault mountpoint");
        let fs = FaultFs {
            root: source.to_path_buf(),
            fail: fail.iter().map(|f| f.to_vec()).collect(),
            paths: Mutex::new((vec![PathBuf::new()], HashMap::from([(PathBuf::new(), 1)]))),
        };
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::RO,
            fuser::MountOption::FSName("faultfs".into()),
            fuser::MountOption::DefaultPermissions,
        ];
        config.acl = fuser::SessionACL::All;
        let session = fuser::spawn_mount(fs, mountpoint, &config).expect("mount the fault filesystem");
        FaultMount { _session: session, path: mountpoint.to_path_buf() }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

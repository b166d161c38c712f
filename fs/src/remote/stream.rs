//! One object written or read as a byte stream: the data file of an archived
//! or compressed snapshot goes to the destination while it is produced (no
//! local staging copy), and a check reads it back front to back.
//!
//! - [`ObjectWriter`]: a [`Write`] over an OpenDAL writer (uploaded in parts of
//!   the destination's `chunk_size`, several at once; FTP appends in place), or over the stdin of
//!   `ssh ... cat > path` for ssh destinations. Dropped without
//!   [`ObjectWriter::close`], it aborts the upload where the service can.
//! - [`ObjectReader`]: a [`Read`] + [`Seek`] over ranged reads of an object.

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::config::Service;
use super::ssh::SshUpload;
use super::store::{RemoteStore, block, error};
use crate::error::{FsError, Result};

/// Parts uploaded at once by one writer.
const CONCURRENT_PARTS: usize = 4;

/// Bytes an [`ObjectReader`] fetches per request.
const READ_AHEAD: u64 = 4 << 20;

enum Target {
    /// An OpenDAL writer; `append` when it appends to the object in place.
    Dal(opendal::Writer, bool),
    Ssh(SshUpload),
}

/// An object being written as a stream.
pub struct ObjectWriter {
    store: RemoteStore,
    key: String,
    /// None once closed or aborted.
    target: Option<Target>,
    written: u64,
}

impl ObjectWriter {
    /// Starts writing `key` (replacing any object of that name once closed).
    /// Over FTP the object is appended in place: for data files in a
    /// snapshot's directory, which a failure removes whole.
    pub fn create(store: &RemoteStore, key: &str) -> Result<Self> {
        Self::start(store, key, true)
    }

    /// Like [`ObjectWriter::create`], but the object never exists under its
    /// name before [`ObjectWriter::close`], on any service: for bodies stored
    /// under their content address, where a part would be a lie. (Over FTP an
    /// interrupted upload leaves a stray file at the root instead, which
    /// prunes remove.)
    pub fn create_whole(store: &RemoteStore, key: &str) -> Result<Self> {
        Self::start(store, key, false)
    }

    fn start(store: &RemoteStore, key: &str, may_append: bool) -> Result<Self> {
        let target = match store {
            RemoteStore::Ssh(ssh) => Target::Ssh(ssh.upload(key)?),
            RemoteStore::Objects(objects) => {
                // OpenDAL's FTP writer uploads to a temporary file at the root, named
                // after the object, that an interrupted upload leaves behind; appending
                // writes the object in place (in a directory failures remove whole).
                let append = may_append && objects.config().service == Service::Ftp;
                if append {
                    store.delete(key)?;
                }
                let (op, k, chunk) = (objects.operator().clone(), key.to_string(), objects.config().chunk_size());
                let w = block(async move {
                    match append {
                        true => op.writer_with(&k).append(true).chunk(chunk).await,
                        false => op.writer_with(&k).chunk(chunk).concurrent(CONCURRENT_PARTS).await,
                    }
                })?
                .map_err(|e| error("write", key, e))?;
                Target::Dal(w, append)
            }
        };
        Ok(ObjectWriter { store: store.clone(), key: key.to_string(), target: Some(target), written: 0 })
    }

    /// Sends the next bytes of the object (an error keeps the service's
    /// reason and whether it is temporary).
    pub fn send(&mut self, buf: Vec<u8>) -> Result<()> {
        let len = buf.len() as u64;
        match self.target.take() {
            Some(Target::Dal(mut w, append)) => {
                // The OpenDAL writer is async: it goes to the remote runtime with the
                // bytes and comes back (it cuts them into parts of `chunk_size` itself).
                let (back, r) = block(async move {
                    let r = w.write(buf).await;
                    (w, r)
                })?;
                self.target = Some(Target::Dal(back, append));
                r.map_err(|e| error("write", &self.key, e))?;
            }
            Some(Target::Ssh(mut u)) => {
                let r = u.write_all(&buf);
                self.target = Some(Target::Ssh(u));
                r.map_err(|e| FsError::remote("write", &self.key, e.to_string()))?;
            }
            None => return Err(FsError::Internal(format!("{}: the upload was already ended", self.key))),
        }
        self.written += len;
        Ok(())
    }

    /// Completes the object; returns its size. Until this returns, the object
    /// does not exist under its name (services upload to a temporary name or
    /// a multipart upload).
    pub fn close(mut self) -> Result<u64> {
        match self.target.take() {
            Some(Target::Dal(mut w, append)) => match block(async move { w.close().await })? {
                Ok(_) => {}
                // OpenDAL's check after an append wants a length its FTP writer does not
                // report, though the data is complete by then: the size on the server says.
                Err(_) if append && self.store.size(&self.key)? == Some(self.written) => {}
                Err(e) => return Err(error("write", &self.key, e)),
            },
            Some(Target::Ssh(u)) => u.finish()?,
            None => return Err(FsError::Internal(format!("{}: the upload was already ended", self.key))),
        }
        Ok(self.written)
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf.to_vec()).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Parts are sent as they fill; the last one on close.
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // Not closed: a failed or cancelled backup. Nothing may appear under the name.
        match self.target.take() {
            Some(Target::Dal(mut w, _)) => {
                if let Ok(Err(e)) = block(async move { w.abort().await }) {
                    tracing::debug!("aborting the upload of {}: {e}", self.key);
                }
            }
            Some(Target::Ssh(u)) => u.abort(),
            None => {}
        }
    }
}

/// An object read front to back (seeking as needed) by ranges of `READ_AHEAD` bytes.
pub(crate) struct ObjectReader {
    store: RemoteStore,
    key: String,
    len: u64,
    pos: u64,
    /// Bytes fetched, starting at `buf_start`.
    buf: Vec<u8>,
    buf_start: u64,
}

impl ObjectReader {
    /// Opens `key`; fails when it does not exist.
    pub(crate) fn open(store: &RemoteStore, key: &str) -> Result<Self> {
        let len = store.size(key)?.ok_or_else(|| FsError::remote_missing("stat", key, "no such object"))?;
        Ok(ObjectReader { store: store.clone(), key: key.to_string(), len, pos: 0, buf: Vec::new(), buf_start: 0 })
    }

    /// Size of the object.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || out.is_empty() {
            return Ok(0);
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if self.pos < self.buf_start || self.pos >= buf_end {
            let want = READ_AHEAD.min(self.len - self.pos);
            self.buf = self.store.read_range(&self.key, self.pos, want).map_err(|e| io::Error::other(e.to_string()))?;
            self.buf_start = self.pos;
            if self.buf.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{} ends early", self.key)));
            }
        }
        let from = (self.pos - self.buf_start) as usize;
        let n = (self.buf.len() - from).min(out.len());
        out[..n].copy_from_slice(&self.buf[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

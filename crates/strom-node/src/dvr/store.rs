//! Where archive files live: the [`Store`] trait and its local filesystem
//! implementation, [`LocalStore`].
//!
//! A store holds, per stream directory, the files of
//! `strom_media::dvr::layout`: one `.wire` data file and one `.idx` index
//! per (UTC hour, first sequence number). The catalogue, the writer and the
//! readers only talk to this trait, so another backend (an S3-compatible
//! object store, a restreamer's view of its source) plugs in without
//! touching them.
//!
//! Calls are blocking (plain file I/O); async callers run them on
//! `spawn_blocking`. Invariants of [`LocalStore`]: every path it touches is
//! `ROOT/<stream dir>/<relative_path>` with both parts built by the layout
//! module (no name from a request reaches a path unescaped); a file is
//! written only through the [`Appender`] that created it; `sync` makes the
//! appended bytes durable (data before index).

use bytes::Bytes;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use strom_media::dvr::layout::{self, FileKey, FileKind};

/// One archive file as a store lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: FileKey,
    pub kind: FileKind,
    /// Size in bytes.
    pub bytes: u64,
}

/// Used and total bytes of the filesystem that holds a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    pub total: u64,
}

impl Usage {
    /// Used bytes in percent of the total (0 for an empty filesystem).
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.used as f64 * 100.0 / self.total as f64
    }
}

/// Writes one (data, index) file pair, appending only.
pub trait Appender: Send {
    /// Appends one segment's wire message to the data file and its index
    /// entry to the index. On error the pair is left as it was before the
    /// call (a partial write is cut back), or the error says it could not be.
    fn append(&mut self, message: &[u8], entry: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable (fsync, data before index).
    fn sync(&mut self) -> io::Result<()>;
}

/// An archive backend. Paths are a stream directory (from
/// `layout::stream_dir`) and a [`FileKey`]; no call takes a raw path.
pub trait Store: Send + Sync + 'static {
    /// A human-readable location for logs and metrics labels.
    fn location(&self) -> String;
    /// The stream directories present.
    fn streams(&self) -> io::Result<Vec<String>>;
    /// Every archive file of a stream directory (other names are ignored).
    fn list(&self, stream_dir: &str) -> io::Result<Vec<Listed>>;
    /// `len` bytes of a file from `offset`; fewer only at its end.
    fn read(&self, stream_dir: &str, key: FileKey, kind: FileKind, offset: u64, len: u64) -> io::Result<Bytes>;
    /// A whole file, at most `max` bytes (an error when it is larger).
    fn read_all(&self, stream_dir: &str, key: FileKey, kind: FileKind, max: u64) -> io::Result<Bytes>;
    /// Cuts a file to `len` bytes (a torn tail).
    fn truncate(&self, stream_dir: &str, key: FileKey, kind: FileKind, len: u64) -> io::Result<()>;
    /// Replaces a file's content (a rebuilt index) atomically.
    fn replace(&self, stream_dir: &str, key: FileKey, kind: FileKind, content: &[u8]) -> io::Result<()>;
    /// Creates a new file pair; `header` is the index header. Fails if it exists.
    fn create(&self, stream_dir: &str, key: FileKey, header: &[u8]) -> io::Result<Box<dyn Appender>>;
    /// Deletes a file pair; returns the bytes freed. Missing files are not an error.
    fn delete(&self, stream_dir: &str, key: FileKey) -> io::Result<u64>;
    /// The filesystem's usage, if the backend has one.
    fn usage(&self) -> io::Result<Option<Usage>>;
    /// Whether this node may change the files (a restreamer's view of its
    /// source's archive may not: no repair, no delete).
    fn writable(&self) -> bool {
        true
    }
    /// How long an archive may keep using this store's file list before
    /// reading it again: `None` (the default) when only the archive itself
    /// changes the files (a local directory); a few seconds for a view of
    /// files another node writes (a source's archive over the cluster).
    fn listing_ttl(&self) -> Option<std::time::Duration> {
        None
    }
}

/// A store in a local directory (the `dvr PATH`).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, stream_dir: &str, key: FileKey, kind: FileKind) -> PathBuf {
        self.root.join(stream_dir).join(layout::relative_path(key, kind))
    }
}

fn not_dir(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

impl Store for LocalStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn streams(&self) -> io::Result<Vec<String>> {
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if not_dir(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e?;
            if e.file_type()?.is_dir() {
                if let Some(n) = e.file_name().to_str() {
                    if layout::stream_name_of_dir(n).is_some() {
                        out.push(n.to_string());
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn list(&self, stream_dir: &str) -> io::Result<Vec<Listed>> {
        let dir = self.root.join(stream_dir);
        let days = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if not_dir(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for day in days {
            let day = day?;
            let Some(day_name) = day.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !day.file_type()?.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(day.path())? {
                let f = f?;
                let Some(name) = f.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if let Some((key, kind)) = layout::parse_file(&day_name, &name) {
                    out.push(Listed {
                        key,
                        kind,
                        bytes: f.metadata()?.len(),
                    });
                }
            }
        }
        out.sort_by_key(|l| (l.key, matches!(l.kind, FileKind::Index)));
        Ok(out)
    }

    fn read(&self, stream_dir: &str, key: FileKey, kind: FileKind, offset: u64, len: u64) -> io::Result<Bytes> {
        let mut f = File::open(self.path(stream_dir, key, kind))?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(64 << 20));
        f.take(len).read_to_end(&mut buf)?;
        Ok(Bytes::from(buf))
    }

    fn read_all(&self, stream_dir: &str, key: FileKey, kind: FileKind, max: u64) -> io::Result<Bytes> {
        let f = File::open(self.path(stream_dir, key, kind))?;
        let len = f.metadata()?.len();
        if len > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("archive file of {len} bytes is over the limit of {max}"),
            ));
        }
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        f.take(max).read_to_end(&mut buf)?;
        Ok(Bytes::from(buf))
    }

    fn truncate(&self, stream_dir: &str, key: FileKey, kind: FileKind, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(self.path(stream_dir, key, kind))?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn replace(&self, stream_dir: &str, key: FileKey, kind: FileKind, content: &[u8]) -> io::Result<()> {
        let path = self.path(stream_dir, key, kind);
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(content)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)
    }

    fn create(&self, stream_dir: &str, key: FileKey, header: &[u8]) -> io::Result<Box<dyn Appender>> {
        let data_path = self.path(stream_dir, key, FileKind::Data);
        if let Some(dir) = data_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let index_path = self.path(stream_dir, key, FileKind::Index);
        let data = OpenOptions::new().write(true).create_new(true).open(&data_path)?;
        let index = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&index_path)
            .and_then(|mut f| f.write_all(header).map(|()| f));
        let index = match index {
            Ok(f) => f,
            Err(e) => {
                // No half-made pair stays behind (a full disk).
                let _ = std::fs::remove_file(&index_path);
                let _ = std::fs::remove_file(&data_path);
                return Err(e);
            }
        };
        Ok(Box::new(LocalAppender {
            data,
            index,
            data_len: 0,
            index_len: header.len() as u64,
        }))
    }

    fn delete(&self, stream_dir: &str, key: FileKey) -> io::Result<u64> {
        let mut freed = 0;
        for kind in [FileKind::Index, FileKind::Data] {
            let p = self.path(stream_dir, key, kind);
            match std::fs::metadata(&p) {
                Ok(m) => {
                    std::fs::remove_file(&p)?;
                    freed += m.len();
                }
                Err(e) if not_dir(&e) => {}
                Err(e) => return Err(e),
            }
        }
        // An emptied day directory goes too (fails harmlessly when not empty).
        if let Some(day) = self.path(stream_dir, key, FileKind::Data).parent() {
            let _ = std::fs::remove_dir(day);
        }
        Ok(freed)
    }

    fn usage(&self) -> io::Result<Option<Usage>> {
        let probe = if self.root.exists() {
            self.root.clone()
        } else {
            match self.root.ancestors().find(|p| p.exists()) {
                Some(p) => p.to_path_buf(),
                None => return Ok(None),
            }
        };
        let s = rustix::fs::statvfs(&probe).map_err(io::Error::from)?;
        let frsize = s.f_frsize.max(1);
        let total = s.f_blocks.saturating_mul(frsize);
        let free = s.f_bfree.saturating_mul(frsize);
        Ok(Some(Usage {
            used: total.saturating_sub(free),
            total,
        }))
    }
}

struct LocalAppender {
    data: File,
    index: File,
    data_len: u64,
    index_len: u64,
}

impl Appender for LocalAppender {
    fn append(&mut self, message: &[u8], entry: &[u8]) -> io::Result<()> {
        if let Err(e) = self.data.write_all(message) {
            let _ = self.data.set_len(self.data_len);
            let _ = self.data.seek(SeekFrom::Start(self.data_len));
            return Err(e);
        }
        if let Err(e) = self.index.write_all(entry) {
            let _ = self.index.set_len(self.index_len);
            let _ = self.index.seek(SeekFrom::Start(self.index_len));
            let _ = self.data.set_len(self.data_len);
            let _ = self.data.seek(SeekFrom::Start(self.data_len));
            return Err(e);
        }
        self.data_len += message.len() as u64;
        self.index_len += entry.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.data.sync_data()?;
        self.index.sync_data()
    }
}

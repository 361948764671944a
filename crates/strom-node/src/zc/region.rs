//! A memfd and its read-only mapping: the only `unsafe` code of [`super`].
//!
//! A [`Region`] is a memfd of fixed length, mapped once, shared and
//! read-only, for its whole life. Bytes are written with `pwrite` at a
//! cursor that only moves forward, and [`Region::bytes`] only ever views
//! bytes below that cursor.
//!
//! # Soundness
//! - The mapping is made once at the file's full length and unmapped once,
//!   in `Drop`. A `&[u8]` from [`Region::bytes`] borrows the region, so it
//!   cannot outlive the mapping.
//! - The file is never shorter than the mapping: it is sized before it is
//!   mapped and sealed against shrinking (`F_SEAL_SHRINK`) before the
//!   mapping exists, so no access through the mapping can fault (`SIGBUS`).
//! - [`Region::bytes`] checks its range against the written cursor (read
//!   with `Acquire`, stored with `Release` after `pwrite` returned), and
//!   [`Region::append`] writes only at and past the cursor, under a lock.
//!   Memory a `&[u8]` covers is therefore never written again: shared
//!   references never alias a write.
//! - The descriptor is `O_CLOEXEC` and never handed out except as a borrow
//!   for `sendfile`, which only reads. A region made by
//!   [`Region::sealed`] is also sealed against any write (`F_SEAL_WRITE`).
//!   (A process of the same user could still open `/proc/PID/fd/N`; that
//!   is the same power as writing `/proc/PID/mem`, outside this argument.)

#![allow(unsafe_code)]

use rustix::fs::{MemfdFlags, SealFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A memfd of `len` bytes mapped read-only; see the module docs.
pub struct Region {
    fd: OwnedFd,
    base: usize,
    len: usize,
    /// Bytes written, a prefix of the file; only grows.
    written: AtomicUsize,
    /// Serializes appends.
    cursor: Mutex<()>,
}

impl Region {
    /// A region holding exactly `data`, sealed against every change.
    pub fn sealed(data: &[u8]) -> io::Result<Region> {
        let fd = memfd(data.len())?;
        write_at(&fd, data, 0)?;
        let seals = SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
        rustix::fs::fcntl_add_seals(&fd, seals)?;
        let r = Region::map(fd, data.len())?;
        r.written.store(data.len(), Ordering::Release);
        Ok(r)
    }

    /// An empty region of `len` bytes to [`Region::append`] to.
    pub fn empty(len: usize) -> io::Result<Region> {
        let fd = memfd(len)?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        Region::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<Region> {
        if len == 0 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        // SAFETY: a new shared read-only mapping of `len` bytes of a file at
        // least that long and sealed against shrinking (module docs).
        let base = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::SHARED,
                &fd,
                0,
            )
        }? as usize;
        Ok(Region {
            fd,
            base,
            len,
            written: AtomicUsize::new(0),
            cursor: Mutex::new(()),
        })
    }

    /// Appends `data` after the bytes written so far; returns its offset.
    /// Fails with `WriteZero` when it does not fit, or with the write's
    /// error; on error nothing becomes readable.
    pub fn append(&self, data: &[u8]) -> io::Result<usize> {
        let _guard = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        let off = self.written.load(Ordering::Acquire);
        if data.len() > self.len - off {
            return Err(io::ErrorKind::WriteZero.into());
        }
        write_at(&self.fd, data, off as u64)?;
        self.written.store(off + data.len(), Ordering::Release);
        Ok(off)
    }

    /// Written bytes `off..off + len`, or `None` past what is written.
    pub fn bytes(&self, off: usize, len: usize) -> Option<&[u8]> {
        let end = off.checked_add(len)?;
        if end > self.written.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: inside the mapping (written ≤ len), which lives as long
        // as `&self`, and below the cursor, never written again.
        Some(unsafe { std::slice::from_raw_parts((self.base + off) as *const u8, len) })
    }

    /// Start address of the mapping.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.written.load(Ordering::Acquire)
    }

    /// The memfd, for `sendfile`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once; no `&[u8]` into
        // it can exist any more, since each borrows `self`.
        let _ = unsafe { rustix::mm::munmap(self.base as *mut std::ffi::c_void, self.len) };
    }
}

/// A new memfd of `len` bytes (zeros).
fn memfd(len: usize) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create("strom-body", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    rustix::fs::ftruncate(&fd, len as u64)?;
    Ok(fd)
}

/// Writes all of `data` at `off` of `fd`.
fn write_at(fd: &OwnedFd, mut data: &[u8], mut off: u64) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::pwrite(fd, data, off) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                data = &data[n..];
                off += n as u64;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_visible_only_once_written() {
        let r = Region::empty(10_000).expect("memfd");
        assert!(r.bytes(0, 1).is_none());
        assert_eq!(r.append(b"hello").expect("append"), 0);
        assert_eq!(r.append(b" world").expect("append"), 5);
        assert_eq!(r.bytes(0, 11), Some(&b"hello world"[..]));
        assert!(r.bytes(6, 6).is_none(), "past the cursor");
        assert!(r.bytes(usize::MAX, 2).is_none());
        let big = vec![1u8; 10_000];
        assert_eq!(r.append(&big).map_err(|e| e.kind()), Err(io::ErrorKind::WriteZero));
        assert_eq!(r.written(), 11);
    }

    #[test]
    fn sealed_regions_refuse_writes() {
        let r = Region::sealed(b"abc").expect("memfd");
        assert_eq!(r.bytes(0, 3), Some(&b"abc"[..]));
        assert!(rustix::io::pwrite(r.fd(), b"x", 0).is_err(), "F_SEAL_WRITE");
        assert!(rustix::fs::ftruncate(r.fd(), 1).is_err(), "F_SEAL_SHRINK");
        assert!(Region::sealed(b"").is_err());
    }
}

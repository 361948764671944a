//! Zero-copy bodies: bytes written once into memory the kernel can send
//! without copying them from user space again.
//!
//! A body that many viewers read (an HLS segment, a cached archive segment,
//! a batch of the HTTP-TS output) is copied once into a `memfd` and mapped
//! read-only. The [`Bytes`] handed out point into that mapping, so every
//! other part of strom sees ordinary `Bytes` (slicing, ranges, hashing and
//! tests work unchanged). When such a slice reaches a connection,
//! [`poll_send`] recognizes its address and sends it with `sendfile(2)` from
//! the memfd: the kernel attaches the page-cache pages to the socket buffer
//! instead of copying the bytes in, as nginx does with `sendfile on` for
//! files. Anything else in the same write goes out with `writev(2)`.
//!
//! - [`sealed`] makes one memfd per body and seals it (`F_SEAL_WRITE`,
//!   `F_SEAL_SHRINK`, `F_SEAL_GROW`, `F_SEAL_SEAL`): nothing can change it.
//! - [`Arena`] appends many small bodies to one memfd (sealed against
//!   shrinking and growing); bytes are written once and never again.
//!
//! Costs and limits: each live memfd holds one file descriptor until its
//! last `Bytes` is dropped, and memory in page granules. Its pages are
//! shared memory (`Shmem` in `/proc/meminfo`), not the process's heap, and
//! count in its RSS only once read through the mapping (a fallback path);
//! [`memfd_bytes`] reports them (`strom_memfd_bytes`). Bodies under
//! [`MIN_BYTES`] stay on the heap. When a memfd cannot be made (out of file
//! descriptors, no memfd support) the body is a heap copy and the fallback
//! is counted: it is then sent like any other.
//!
//! The `unsafe` code (mapping, unmapping, viewing mapped bytes) is all in
//! [`region`], with its soundness argument.

mod region;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use region::Region;
use std::collections::BTreeMap;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, RwLock, Weak};
use std::task::{ready, Context, Poll};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bodies shorter than this stay on the heap: a memfd, a mapping and a
/// descriptor are not worth it below a few pages.
pub const MIN_BYTES: usize = 16 << 10;

/// Most regions alive at once whatever the descriptor limit: each is also
/// one mapping, and `vm.max_map_count` is 65,530 by default.
pub const MAX_REGIONS: usize = 32_768;

/// Regions allowed alive at once (see [`set_budget`]); past it bodies stay
/// on the heap, so memfds never take the descriptors connections need.
static BUDGET: AtomicUsize = AtomicUsize::new(4_096);

/// Sets how many memfds may be alive at once (capped at [`MAX_REGIONS`]).
/// The node gives them what its descriptor limit leaves beside
/// `max_connections` and a reserve (`net::raise_fd_limit`); 0 turns
/// zero-copy bodies off.
pub fn set_budget(regions: usize) {
    BUDGET.store(regions.min(MAX_REGIONS), Ordering::Relaxed);
}

/// Whether `live` regions leave room for one more under `budget`.
fn room(live: usize, budget: usize) -> bool {
    live < budget
}

/// Whether a new region may be made now; counts a fallback when not.
fn may_map() -> bool {
    let ok = room(registry().count.load(Ordering::Relaxed), BUDGET.load(Ordering::Relaxed));
    if !ok {
        METRICS.fallbacks.inc();
    }
    ok
}

/// The node's zero-copy counters (registered by `metrics::Metrics`).
#[derive(Debug, Default)]
pub struct ZcMetrics {
    /// Bytes currently held in memfds (`strom_memfd_bytes`).
    pub memfd_bytes: Gauge,
    /// Bytes sent with `sendfile` (`strom_zero_copy_sent_bytes_total`).
    pub sent_bytes: Counter,
    /// Bodies that stayed on the heap because no memfd could be made, or
    /// the memfd budget was spent, and body pieces that went out with a
    /// plain write because `sendfile` failed for a reason other than the
    /// connection (`strom_zero_copy_fallbacks_total`).
    pub fallbacks: Counter,
}

/// The process-wide zero-copy metrics.
pub static METRICS: LazyLock<ZcMetrics> = LazyLock::new(ZcMetrics::default);

/// Bytes currently held in memfds by this process.
pub fn memfd_bytes() -> i64 {
    METRICS.memfd_bytes.get()
}

/// A region registered for [`poll_send`] and counted in the gauge while
/// it lives.
struct Live {
    region: Region,
}

impl Live {
    fn new(region: Region) -> Arc<Live> {
        let live = Arc::new(Live { region });
        METRICS.memfd_bytes.inc_by(live.region.written() as i64);
        registry().insert(live.region.base(), Arc::downgrade(&live));
        live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // Out of the registry before the region unmaps and its address
        // range can be reused.
        registry().remove(self.region.base());
        METRICS.memfd_bytes.dec_by(self.region.written() as i64);
    }
}

/// `len` bytes at `off` of a region: the owner behind a zero-copy `Bytes`.
struct Slice {
    live: Arc<Live>,
    off: usize,
    len: usize,
}

impl AsRef<[u8]> for Slice {
    fn as_ref(&self) -> &[u8] {
        // Slices are made only over written bytes, so this never falls back.
        self.live.region.bytes(self.off, self.len).unwrap_or_default()
    }
}

/// Live regions by start address, so a write can tell whether a buffer
/// lies in one. Weak: the registry never keeps a region alive.
struct Registry {
    regions: RwLock<BTreeMap<usize, Weak<Live>>>,
    /// Live regions; when zero, writes skip the lookup.
    count: AtomicUsize,
}

fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
        regions: RwLock::new(BTreeMap::new()),
        count: AtomicUsize::new(0),
    });
    &REGISTRY
}

impl Registry {
    fn insert(&self, base: usize, region: Weak<Live>) {
        let mut m = self.regions.write().unwrap_or_else(|e| e.into_inner());
        m.insert(base, region);
        self.count.store(m.len(), Ordering::Relaxed);
    }

    fn remove(&self, base: usize) {
        let mut m = self.regions.write().unwrap_or_else(|e| e.into_inner());
        m.remove(&base);
        self.count.store(m.len(), Ordering::Relaxed);
    }

    /// The region holding all of `buf`, and `buf`'s offset in it.
    fn find(&self, buf: &[u8]) -> Option<(Arc<Live>, usize)> {
        if buf.is_empty() || self.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let addr = buf.as_ptr() as usize;
        let m = self.regions.read().unwrap_or_else(|e| e.into_inner());
        let (&base, weak) = m.range(..=addr).next_back()?;
        let live = weak.upgrade()?;
        let off = addr - base;
        (off + buf.len() <= live.region.written()).then_some((live, off))
    }
}

/// `data` as a zero-copy body: a copy in its own sealed memfd, or a heap
/// copy when `data` is shorter than [`MIN_BYTES`] or no memfd can be made
/// (counted in `strom_zero_copy_fallbacks_total`).
pub fn sealed(data: &[u8]) -> Bytes {
    if data.len() < MIN_BYTES || !may_map() {
        return Bytes::copy_from_slice(data);
    }
    match Region::sealed(data) {
        Ok(region) => Bytes::from_owner(Slice {
            live: Live::new(region),
            off: 0,
            len: data.len(),
        }),
        Err(e) => fallback(data, &e),
    }
}

fn fallback(data: &[u8], e: &io::Error) -> Bytes {
    METRICS.fallbacks.inc();
    static LIMIT: crate::util::LogLimiter = crate::util::LogLimiter::new(std::time::Duration::from_secs(60));
    if let Some(suppressed) = LIMIT.allow(std::time::Instant::now()) {
        tracing::warn!(error = %e, suppressed, "cannot make a memfd: bodies are sent from the heap");
    }
    Bytes::copy_from_slice(data)
}

/// Many small bodies in one memfd, appended in order: the HTTP-TS output's
/// batches. A full region is left to its readers and a new one started; a
/// region is freed when the last `Bytes` into it is.
pub struct Arena {
    live: Option<Arc<Live>>,
    cap: usize,
}

impl Arena {
    /// An arena making regions of `cap` bytes (rounded up to at least
    /// [`MIN_BYTES`]). No memfd is made before the first push.
    pub fn new(cap: usize) -> Arena {
        Arena {
            live: None,
            cap: cap.max(MIN_BYTES),
        }
    }

    /// `data` as a zero-copy body in the arena's current region (a new one
    /// when it does not fit). Bodies longer than the region size get their
    /// own sealed memfd; when no memfd can be made, a heap copy (counted).
    pub fn push(&mut self, data: &[u8]) -> Bytes {
        if data.is_empty() {
            return Bytes::new();
        }
        if data.len() > self.cap {
            return sealed(data);
        }
        let fits = |l: &Arc<Live>| l.region.len() - l.region.written() >= data.len();
        if !self.live.as_ref().is_some_and(fits) {
            self.live = None;
            if !may_map() {
                return Bytes::copy_from_slice(data);
            }
            match Region::empty(self.cap) {
                Ok(r) => self.live = Some(Live::new(r)),
                Err(e) => return fallback(data, &e),
            }
        }
        let Some(live) = &self.live else {
            return Bytes::copy_from_slice(data);
        };
        match live.region.append(data) {
            Ok(off) => {
                METRICS.memfd_bytes.inc_by(data.len() as i64);
                Bytes::from_owner(Slice {
                    live: live.clone(),
                    off,
                    len: data.len(),
                })
            }
            Err(e) => {
                self.live = None;
                fallback(data, &e)
            }
        }
    }
}

/// Whether any of `bufs` lies in a zero-copy region (then [`poll_send`]
/// should write them).
pub fn any_zero_copy(bufs: &[IoSlice<'_>]) -> bool {
    registry().count.load(Ordering::Relaxed) > 0 && bufs.iter().any(|b| registry().find(b).is_some())
}

/// Writes `bufs` to `io` like `poll_write_vectored`, sending the buffers
/// that lie in zero-copy regions with `sendfile` and runs of other buffers
/// with `writev`. Returns the bytes written (a prefix of `bufs`), or
/// `Pending` when the socket takes nothing now.
pub fn poll_send(io: &TcpStream, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
    loop {
        ready!(io.poll_write_ready(cx))?;
        match io.try_io(Interest::WRITABLE, || send(io, bufs)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return Poll::Ready(r),
        }
    }
}

/// One non-blocking pass of [`poll_send`]: `WouldBlock` only when nothing
/// was written.
fn send(io: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // Corked while the pieces go out, so a response head and its body
    // leave in full segments, not a small packet before the body (what
    // nginx does with `tcp_nopush`); uncorking pushes what is left. A
    // single piece (a continuous body's batch) needs no cork: the two
    // `setsockopt`s would double the system calls of its send.
    if bufs.iter().filter(|b| !b.is_empty()).count() <= 1 {
        return send_pieces(io, bufs);
    }
    let sref = socket2::SockRef::from(io);
    let _ = sref.set_tcp_cork(true);
    let r = send_pieces(io, bufs);
    let _ = sref.set_tcp_cork(false);
    r
}

fn send_pieces(io: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let sock = io.as_fd();
    let mut total = 0;
    let mut i = 0;
    let done = |total: usize, e: rustix::io::Errno| -> io::Result<usize> {
        if total > 0 && e == rustix::io::Errno::AGAIN {
            Ok(total)
        } else {
            Err(e.into())
        }
    };
    while i < bufs.len() {
        if let Some((region, off)) = registry().find(&bufs[i]) {
            let want = bufs[i].len();
            let mut pos = off as u64;
            let n = match rustix::fs::sendfile(sock, region.region.fd(), Some(&mut pos), want) {
                Ok(n) => {
                    METRICS.sent_bytes.inc_by(n as u64);
                    n
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) if connection_error(e) => return done(total, e),
                // sendfile itself failed (a kernel or file system that
                // refuses it): the bytes are mapped, so they go out with a
                // plain write instead, counted as a fallback.
                Err(e) => match rustix::io::writev(sock, &bufs[i..=i]) {
                    Ok(n) => {
                        sendfile_failed(e);
                        n
                    }
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return done(total, e),
                },
            };
            total += n;
            if n < want {
                return Ok(total);
            }
            i += 1;
        } else {
            let mut j = i + 1;
            while j < bufs.len() && registry().find(&bufs[j]).is_none() {
                j += 1;
            }
            let want: usize = bufs[i..j].iter().map(|b| b.len()).sum();
            let n = match rustix::io::writev(sock, &bufs[i..j]) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return done(total, e),
            };
            total += n;
            if n < want {
                return Ok(total);
            }
            i = j;
        }
    }
    Ok(total)
}

/// Whether a send error is the connection's own (it ends the response
/// like any write error) rather than `sendfile` refusing to work.
fn connection_error(e: rustix::io::Errno) -> bool {
    use rustix::io::Errno;
    matches!(
        e,
        Errno::AGAIN
            | Errno::PIPE
            | Errno::CONNRESET
            | Errno::NOTCONN
            | Errno::TIMEDOUT
            | Errno::CONNABORTED
            | Errno::HOSTUNREACH
            | Errno::NETUNREACH
            | Errno::NETDOWN
            | Errno::SHUTDOWN
    )
}

/// Counts a `sendfile` that failed for a reason other than the connection
/// (`strom_zero_copy_fallbacks_total`), and logs it at most once a minute.
fn sendfile_failed(e: rustix::io::Errno) {
    METRICS.fallbacks.inc();
    static LIMIT: crate::util::LogLimiter = crate::util::LogLimiter::new(std::time::Duration::from_secs(60));
    if let Some(suppressed) = LIMIT.allow(std::time::Instant::now()) {
        tracing::warn!(error = %io::Error::from(e), suppressed, "sendfile failed: the body was written from its mapping");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn sealed_bytes_read_back_and_free_their_region() {
        let data = pattern(100_000, 7);
        let before = memfd_bytes();
        let b = sealed(&data);
        assert_eq!(&b[..], &data[..]);
        assert!(registry().find(&b).is_some(), "lies in a region");
        let s = b.slice(10..20);
        assert_eq!(&s[..], &data[10..20]);
        let (_, off) = registry().find(&s).expect("a slice is found too");
        assert_eq!(off, 10);
        assert!(memfd_bytes() >= before + 100_000);
        drop(b);
        assert!(registry().find(&s).is_some(), "a slice keeps the region");
        drop(s);
        let small = sealed(b"tiny");
        assert!(registry().find(&small).is_none(), "small bodies stay on the heap");
    }

    #[test]
    fn arena_appends_and_rolls_over() {
        let mut a = Arena::new(MIN_BYTES);
        let parts: Vec<Vec<u8>> = (0..10).map(|i| pattern(5000, i)).collect();
        let out: Vec<Bytes> = parts.iter().map(|p| a.push(p)).collect();
        for (p, b) in parts.iter().zip(&out) {
            assert_eq!(&b[..], &p[..]);
            assert!(registry().find(b).is_some());
        }
        // 16 KiB regions hold three 5000-byte bodies each.
        let bases: std::collections::BTreeSet<usize> = out
            .iter()
            .map(|b| {
                let (r, _) = registry().find(b).expect("in a region");
                r.region.base()
            })
            .collect();
        assert_eq!(bases.len(), 4);
        let big = a.push(&pattern(MIN_BYTES + 1, 3));
        assert_eq!(big.len(), MIN_BYTES + 1);
        assert!(a.push(&[]).is_empty());
    }

    #[test]
    fn the_budget_bounds_live_regions() {
        assert!(room(0, 1));
        assert!(!room(1, 1));
        assert!(!room(0, 0), "a budget of 0 turns zero-copy off");
        assert!(room(MAX_REGIONS - 1, MAX_REGIONS));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever the sizes, every body reads back as pushed, bodies never
        /// share bytes, and a region never holds more than its size.
        #[test]
        fn arena_bodies_read_back(sizes in proptest::collection::vec(1usize..40_000, 1..40), cap in 16_384usize..100_000) {
            let mut a = Arena::new(cap);
            let parts: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| pattern(n, i as u8)).collect();
            let out: Vec<Bytes> = parts.iter().map(|p| a.push(p)).collect();
            let mut spans = Vec::new();
            for (p, b) in parts.iter().zip(&out) {
                proptest::prop_assert_eq!(&b[..], &p[..]);
                if let Some((live, off)) = registry().find(b) {
                    proptest::prop_assert!(off + b.len() <= live.region.len());
                    spans.push((live.region.base() + off, b.len()));
                }
            }
            spans.sort();
            for w in spans.windows(2) {
                proptest::prop_assert!(w[0].0 + w[0].1 <= w[1].0, "bodies overlap");
            }
        }
    }

    #[test]
    fn mixed_writes_arrive_in_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = l.local_addr().expect("addr");
            let client = tokio::spawn(async move {
                let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let mut got = Vec::new();
                c.read_to_end(&mut got).await.expect("read");
                got
            });
            let (server, _) = l.accept().await.expect("accept");
            let head = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
            let body = sealed(&pattern(3 << 20, 1));
            let mut arena = Arena::new(64 << 10);
            let chunk = arena.push(&pattern(20_000, 2));
            let tail = b"\r\n0\r\n\r\n".to_vec();
            let mut want = head.clone();
            want.extend_from_slice(&body[5..]);
            want.extend_from_slice(&chunk);
            want.extend_from_slice(&tail);
            let parts: [&[u8]; 4] = [&head, &body[5..], &chunk, &tail];
            let sent_before = METRICS.sent_bytes.get();
            let mut written = 0;
            while written < want.len() {
                // Rebuild the slices past what was written, like hyper does.
                let mut skip = written;
                let mut slices = Vec::new();
                for p in parts {
                    if skip >= p.len() {
                        skip -= p.len();
                        continue;
                    }
                    slices.push(IoSlice::new(&p[skip..]));
                    skip = 0;
                }
                assert!(any_zero_copy(&slices) || slices.len() == 1);
                written += std::future::poll_fn(|cx| poll_send(&server, cx, &slices))
                    .await
                    .expect("send");
            }
            drop(server);
            let got = client.await.expect("client");
            assert_eq!(got.len(), want.len());
            assert!(got == want, "bytes differ");
            assert!(METRICS.sent_bytes.get() - sent_before >= (3 << 20) - 5 + 20_000);
        });
    }
}

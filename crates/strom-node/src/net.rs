//! Listener, connection wrappers and the HTTP accept loop.
//!
//! `[::]` listens dual-stack (IPv6 and IPv4 on one socket, whatever the
//! system default `net.ipv6.bindv6only` says), because viewers told to open
//! `http://localhost:8080/` may reach it over `::1` or `127.0.0.1`. On a
//! machine without IPv6 it falls back to `0.0.0.0` and says so in the log.
//! IPv4 peers of a dual-stack socket arrive as `::ffff:a.b.c.d`; they are
//! handed on as plain IPv4 addresses, so client addresses look the same
//! whichever socket accepted them.
//!
//! [`serve`] accepts and serves connections itself (hyper's HTTP/1
//! connection, not `axum::serve`), because every connection is bounded,
//! like nginx's:
//! - **send timeout**: a peer that accepts no bytes at all for
//!   `send_timeout` is disconnected (and counted), like nginx's
//!   `send_timeout`. The timer restarts whenever a write makes progress, so
//!   slow but moving downloads are never cut; when it fires, one direct
//!   non-blocking send probes the socket first, because epoll reports a
//!   TCP socket writable only once a third of its send buffer is free, which
//!   a slow reader may take longer than the timeout to drain. The cut is abortive (RST,
//!   `SO_LINGER 0`, nginx's `reset_timedout_connection`): a plain close
//!   would leave the unsent send buffer pinned in the kernel as an orphan.
//! - **header timeout** (`client_header_timeout`): a connection must send a
//!   whole request head within this time of opening, or of the first byte
//!   of a later request; else it is reset.
//! - **keep-alive timeout** (`keepalive_timeout`): an idle connection
//!   between requests is closed after it.
//! - **connection cap** (`max_connections`, over all listeners): a
//!   connection above it is reset at once and counted, so the node keeps
//!   file descriptors for the viewers it serves.
//! - **accept errors**: out of file descriptors (EMFILE, ENFILE) is
//!   counted and logged at most every 10 s, and accept retries shortly.
//!
//! hyper's own `header_read_timeout` is not used: it restarts whenever
//! hyper waits for a request head, idle keep-alive included, so it cannot
//! tell the two timeouts apart. One watchdog per connection owns both.

use axum::extract::ConnectInfo;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::counter::Counter;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

/// Listen backlog asked for (the kernel caps it at `net.core.somaxconn`):
/// a burst of a thousand viewers connecting at once must not overflow it.
const BACKLOG: i32 = 4096;

/// Binds a listening socket with SO_REUSEADDR and a deep accept backlog.
///
/// `[::]:PORT` accepts IPv4 connections too (IPV6_V6ONLY off). When the
/// machine has no IPv6 (an IPv6 socket cannot be created, or `[::]` cannot
/// be bound: EADDRNOTAVAIL) it binds `0.0.0.0:PORT` instead and logs a
/// warning; the returned listener's `local_addr` tells which it got.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    listen_with(addr, socket)
}

/// [`listen`] with the socket constructor as a parameter, so that tests can
/// play a machine without IPv6.
fn listen_with(addr: SocketAddr, socket: fn(SocketAddr) -> io::Result<socket2::Socket>) -> io::Result<TcpListener> {
    let SocketAddr::V6(v6) = addr else {
        return bind(socket(addr)?, addr);
    };
    if !v6.ip().is_unspecified() {
        return bind(socket(addr)?, addr);
    }
    let v4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
    let fallback = |e: io::Error| {
        tracing::warn!(%addr, fallback = %v4, error = %e, "IPv6 is not available; listening on IPv4 only");
        bind(socket(v4)?, v4)
    };
    // Any failure before `bind` means this machine cannot do IPv6 sockets
    // (EAFNOSUPPORT when IPv6 is disabled in the kernel).
    let dual = socket(addr).and_then(|s| s.set_only_v6(false).map(|()| s));
    match dual {
        Err(e) => fallback(e),
        Ok(sock) => match bind(sock, addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => fallback(e),
            r => r,
        },
    }
}

/// A TCP socket of `addr`'s family with SO_REUSEADDR.
fn socket(addr: SocketAddr) -> io::Result<socket2::Socket> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    sock.set_reuse_address(true)?;
    Ok(sock)
}

/// Binds `sock` to `addr` and listens, non-blocking, for tokio.
fn bind(sock: socket2::Socket, addr: SocketAddr) -> io::Result<TcpListener> {
    sock.bind(&addr.into())?;
    sock.listen(BACKLOG)?;
    sock.set_nonblocking(true)?;
    TcpListener::from_std(sock.into())
}

/// `::ffff:a.b.c.d` (an IPv4 peer of a dual-stack socket) as `a.b.c.d`;
/// every other address unchanged.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Kernel send buffer per connection (Linux doubles it).
const SEND_BUFFER: usize = 512 << 10;
/// Repeated accept-path warnings (cap reached, out of fds) are logged at
/// most this often; the counters see every one.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Bounds of how often a connection's watchdog checks its header and
/// keep-alive deadlines; see [`Timeouts::watch_tick`].
const WATCH_TICK_MIN: Duration = Duration::from_millis(500);
const WATCH_TICK_MAX: Duration = Duration::from_secs(5);
/// Pause before accepting again after an error such as EMFILE: the pending
/// connection stays in the backlog, and retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How connections are bounded; see the module docs.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// A whole request head must arrive within this.
    pub header: Duration,
    /// An idle connection between requests is closed after this; zero
    /// turns keep-alive off.
    pub keepalive: Duration,
    /// A write that makes no progress for this long cuts the connection.
    pub send: Duration,
}

impl Timeouts {
    /// How often a connection's watchdog looks at its deadlines, which are
    /// then kept to within this: a quarter of the shorter of the header
    /// and keep-alive timeouts, between 0.5 and 5 s (5 s at the defaults,
    /// 60 s and 75 s). Every tick wakes the connection's task and polls its
    /// connection once more, so a thousand viewers of a continuous stream
    /// at a fixed 0.5 s tick cost two polls a second each, twice their
    /// sends.
    pub fn watch_tick(&self) -> Duration {
        let shortest = if self.keepalive.is_zero() {
            self.header
        } else {
            self.header.min(self.keepalive)
        };
        (shortest / 4).clamp(WATCH_TICK_MIN, WATCH_TICK_MAX)
    }
}

/// The first watchdog tick after `now`: ticks of every connection fall on
/// one grid of `period` (from a process-wide epoch), so one timer wake-up
/// serves all the connections due then, instead of each connection waking
/// the runtime at its own moment.
fn first_tick(now: Instant, period: Duration) -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let p = period.as_nanos().max(1);
    let since = now.saturating_duration_since(epoch).as_nanos();
    let next = (since / p + 1) * p;
    epoch + Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
}

/// The counters [`serve`] feeds (`strom_http_errors_total` kinds on a node).
#[derive(Clone, Debug, Default)]
pub struct ConnCounters {
    /// Connections cut by the send timeout (`send_timeout`).
    pub send_timeouts: Counter,
    /// Connections reset by the header timeout (`header_timeout`).
    pub header_timeouts: Counter,
    /// Connections refused above the cap (`conn_limit`).
    pub refused: Counter,
    /// Accepts that failed for want of file descriptors (`fd_limit`).
    pub fd_exhausted: Counter,
}

/// Everything [`serve`] needs besides the listener and the router; shared
/// by all the listeners of one process, so the cap is per process.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub timeouts: Timeouts,
    /// One permit per open connection: `max_connections` in all.
    pub slots: Arc<Semaphore>,
    pub counters: ConnCounters,
}

/// Serves `app` on `listener` until `shutdown`, then stops accepting,
/// closes idle connections, lets busy ones finish their response and
/// returns when none is left (the caller bounds that wait).
///
/// Handlers find the client as `ConnectInfo<PeerAddr>` (and as
/// `ConnectInfo<SocketAddr>`) in the request extensions.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut conns = tokio::task::JoinSet::new();
    let mut full_warn = Every::new(WARN_EVERY);
    let mut fd_warn = Every::new(WARN_EVERY);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            r = listener.accept() => r,
        };
        let (io, addr) = match accepted {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                let fds = is_fd_exhaustion(&e);
                if fds {
                    opts.counters.fd_exhausted.inc();
                }
                if let Some(missed) = fd_warn.ready(Instant::now()) {
                    let what = if fds {
                        "accept failed: out of file descriptors; raise `ulimit -n` or lower max_connections (segment memfds get only what max_connections leaves)"
                    } else {
                        "accept failed"
                    };
                    tracing::error!(error = %e, missed, "{what}");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = opts.slots.clone().try_acquire_owned() else {
            opts.counters.refused.inc();
            // Reset: the refused peer learns at once, and no TIME_WAIT is left.
            let _ = socket2::SockRef::from(&io).set_linger(Some(Duration::ZERO));
            drop(io);
            if let Some(missed) = full_warn.ready(Instant::now()) {
                tracing::warn!(peer = %canonical(addr), missed, "connection refused: max_connections reached");
            }
            continue;
        };
        let (app, opts, stop) = (app.clone(), opts.clone(), shutdown.clone());
        conns.spawn(async move {
            connection(io, canonical(addr), app, &opts, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// Peer-side failures of one connection attempt: nothing to do but go on.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// EMFILE, ENFILE (and their kin ENOBUFS, ENOMEM): the process or the
/// system has no descriptors or buffers left for a new socket.
fn is_fd_exhaustion(e: &io::Error) -> bool {
    // Linux errno values, stable ABI: ENOMEM 12, ENFILE 23, EMFILE 24, ENOBUFS 105.
    matches!(e.raw_os_error(), Some(12 | 23 | 24 | 105))
}

/// Serves one connection under its watchdog (header and keep-alive
/// deadlines) and the shutdown signal.
async fn connection(io: TcpStream, peer: SocketAddr, app: axum::Router, opts: &ServeOptions, stop: CancellationToken) {
    let activity = Arc::new(Activity::new(Instant::now()));
    let io = StallGuard::new(
        io,
        opts.timeouts.send,
        opts.counters.send_timeouts.clone(),
        Some(activity.clone()),
    );
    let tower = TowerToHyperService::new(app);
    let svc_activity = activity.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let busy = Busy::new(svc_activity.clone());
        req.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
        req.extensions_mut().insert(ConnectInfo(peer));
        let fut = hyper::service::Service::call(&tower, req);
        async move {
            let resp = fut.await?;
            Ok::<_, std::convert::Infallible>(resp.map(|body| TrackedBody {
                inner: body,
                _busy: busy,
            }))
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(!opts.timeouts.keepalive.is_zero())
        .header_read_timeout(None);
    let conn = http.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut draining = false;
    // The watchdog looks at the connection's state once per tick instead of
    // being woken by every request: requests cost it nothing, and deadlines
    // of tens of seconds are kept to within a tick.
    let period = opts.timeouts.watch_tick();
    let mut tick = tokio::time::interval_at(first_tick(Instant::now(), period), period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                if let Some((at, why)) = activity.deadline(&opts.timeouts) {
                    if at <= Instant::now() {
                        if why == Why::Header {
                            opts.counters.header_timeouts.inc();
                            activity.abort.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        return; // dropping the connection closes the socket
                    }
                }
            }
        }
    }
}

/// Which deadline a connection waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// A request head is (or the first one is) due.
    Header,
    /// Idle between requests.
    KeepAlive,
}

/// What one connection is doing, for its watchdog: written by its socket
/// (bytes read), its service (request in) and its response bodies (done).
#[derive(Debug)]
struct Activity {
    phase: Mutex<Phase>,
    /// Close abortively (RST) when the socket is dropped.
    abort: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone, Copy)]
struct Phase {
    /// Requests whose response has not finished.
    busy: usize,
    /// Since when the connection has had nothing in flight.
    idle_since: Instant,
    /// When the first byte of the next request came, if it has.
    head_since: Option<Instant>,
    /// Whether a response has finished: the wait for the next request is
    /// then keep-alive, not the wait for the first request.
    served: bool,
}

impl Phase {
    /// When the connection is due to close, and why; none while busy.
    fn deadline(&self, t: &Timeouts) -> Option<(Instant, Why)> {
        if self.busy > 0 {
            return None;
        }
        Some(match self.head_since {
            Some(at) => (at + t.header, Why::Header),
            None if !self.served => (self.idle_since + t.header, Why::Header),
            None => (self.idle_since + t.keepalive, Why::KeepAlive),
        })
    }
}

impl Activity {
    fn new(now: Instant) -> Self {
        Activity {
            phase: Mutex::new(Phase {
                busy: 0,
                idle_since: now,
                head_since: None,
                served: false,
            }),
            abort: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deadline(&self, t: &Timeouts) -> Option<(Instant, Why)> {
        self.lock().deadline(t)
    }

    /// Bytes arrived: an idle connection starts its next request head.
    fn read(&self) {
        let mut p = self.lock();
        if p.busy == 0 && p.head_since.is_none() {
            p.head_since = Some(Instant::now());
        }
    }
}

/// One request in flight on a connection, from its head to the end of its
/// response body (or until either is dropped).
struct Busy(Arc<Activity>);

impl Busy {
    fn new(a: Arc<Activity>) -> Self {
        {
            let mut p = a.lock();
            p.busy += 1;
            p.head_since = None;
        }
        Busy(a)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        {
            let mut p = self.0.lock();
            p.busy = p.busy.saturating_sub(1);
            if p.busy == 0 {
                p.idle_since = Instant::now();
                p.head_since = None;
                p.served = true;
            }
        }
    }
}

/// A response body that marks its request done when it is dropped (hyper
/// drops it once it has written the last byte, or on error).
struct TrackedBody {
    inner: axum::body::Body,
    _busy: Busy,
}

impl HttpBody for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Once per `period` at most: for rate-limited logging. Time comes in as
/// an argument.
#[derive(Debug)]
struct Every {
    period: Duration,
    last: Option<Instant>,
    missed: u64,
}

impl Every {
    fn new(period: Duration) -> Self {
        Every {
            period,
            last: None,
            missed: 0,
        }
    }

    /// `Some(events skipped since the last time)` when it is time to log.
    fn ready(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.period => {
                self.missed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.missed))
            }
        }
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit and logs
/// both: every viewer is a file descriptor, and the common soft default
/// (1024) is far below what a node serves. Warns when `max_connections`
/// does not fit under the limit it got.
pub fn raise_fd_limit(max_connections: u64) {
    let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() else {
        tracing::warn!("cannot read RLIMIT_NOFILE");
        return;
    };
    let now = match rlimit::Resource::NOFILE.set(hard, hard) {
        Ok(()) => hard,
        Err(e) => {
            tracing::warn!(soft, hard, error = %e, "cannot raise RLIMIT_NOFILE");
            soft
        }
    };
    tracing::info!(soft = now, was = soft, hard, "file descriptor limit");
    // Streams, peers and the listeners need descriptors of their own.
    if max_connections.saturating_add(256) > now {
        tracing::warn!(
            max_connections,
            limit = now,
            "max_connections is close to or above the file descriptor limit: accept may fail with EMFILE"
        );
    }
    // Zero-copy bodies get what connections and the reserve leave.
    let regions = usize::try_from(now.saturating_sub(max_connections.saturating_add(FD_RESERVE))).unwrap_or(usize::MAX);
    crate::zc::set_budget(regions);
    if regions == 0 {
        tracing::warn!(
            max_connections,
            limit = now,
            "no file descriptors left for zero-copy bodies beside max_connections: segments are sent from the heap"
        );
    } else {
        tracing::info!(memfds = regions.min(crate::zc::MAX_REGIONS), "zero-copy bodies");
    }
}

/// Descriptors kept back from zero-copy bodies beside `max_connections`:
/// listeners, inputs, peers, DVR files.
const FD_RESERVE: u64 = 512;

/// A TCP stream that fails writes that make no progress for `timeout`.
pub struct StallGuard {
    io: TcpStream,
    timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
    timeouts: Counter,
    activity: Option<Arc<Activity>>,
}

impl StallGuard {
    /// Wraps an accepted connection: TCP_NODELAY, a bounded send buffer and
    /// the send timeout; each cut counts in `timeouts`.
    fn new(io: TcpStream, timeout: Duration, timeouts: Counter, activity: Option<Arc<Activity>>) -> Self {
        let _ = io.set_nodelay(true);
        let _ = socket2::SockRef::from(&io).set_send_buffer_size(SEND_BUFFER);
        StallGuard {
            io,
            timeout,
            stall: None,
            timeouts,
            activity,
        }
    }

    /// Called when a write is pending: arms the timer (registering the
    /// waker so the task is polled again when it fires) or, once it has,
    /// probes the socket and fails if it still takes nothing.
    ///
    /// The probe matters for slow readers: epoll reports a TCP socket
    /// writable only when a third of its send buffer is free (the kernel's
    /// `sk_stream_is_writeable`), so a viewer reading ~20 kB/s from a 1 MiB
    /// buffer frees that much only every ~17 s. `probe` tries one direct
    /// non-blocking send of the pending bytes; if the kernel takes any, the
    /// peer is moving and the timer starts again.
    fn pending<T>(
        &mut self,
        cx: &mut Context<'_>,
        probe: impl FnOnce(&TcpStream) -> Option<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let sleep = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.stall = None;
                if let Some(r) = probe(&self.io) {
                    return Poll::Ready(r);
                }
                self.timeouts.inc();
                // The close that follows resets instead of leaving the
                // unsent buffer to the kernel.
                let _ = socket2::SockRef::from(&self.io).set_linger(Some(Duration::ZERO));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "send timeout: the peer took no bytes within send_timeout",
                )))
            }
        }
    }

    fn progress<T>(
        &mut self,
        r: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
        probe: impl FnOnce(&TcpStream) -> Option<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.pending(cx, probe),
            ready => {
                self.stall = None;
                ready
            }
        }
    }
}

/// One direct non-blocking `send(2)` of `buf` on `io`, bypassing the
/// runtime's readiness state: `Some` with the bytes taken (or a hard
/// error), `None` when the socket takes nothing (EAGAIN) or `buf` is empty.
fn probe_send(io: &TcpStream, buf: &[u8]) -> Option<io::Result<usize>> {
    if buf.is_empty() {
        return None;
    }
    let flags = rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL;
    match rustix::net::send(io, buf, flags) {
        Ok(0) => None,
        Ok(n) => Some(Ok(n)),
        Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => None,
        Err(e) => Some(Err(e.into())),
    }
}

impl Drop for StallGuard {
    fn drop(&mut self) {
        let abort = self
            .activity
            .as_ref()
            .is_some_and(|a| a.abort.load(std::sync::atomic::Ordering::Relaxed));
        if abort {
            let _ = socket2::SockRef::from(&self.io).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            if let Some(a) = &this.activity {
                a.read();
            }
        }
        r
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.progress(r, cx, |io| probe_send(io, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = if crate::zc::any_zero_copy(bufs) {
            crate::zc::poll_send(&this.io, cx, bufs)
        } else {
            Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
        };
        let first = bufs.iter().find(|b| !b.is_empty()).map(|b| &b[..]).unwrap_or(&[]);
        this.progress(r, cx, |io| probe_send(io, first))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.progress(r, cx, |_| None)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The peer address of a connection, for handlers (`ConnectInfo<PeerAddr>`).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// The watchdog's tick is a quarter of the shorter timeout within
    /// 0.5–5 s, and every connection's first tick falls on one grid.
    #[test]
    fn watch_ticks_follow_the_timeouts_on_one_grid() {
        let t = |header: u64, keepalive: u64| Timeouts {
            header: Duration::from_secs(header),
            keepalive: Duration::from_secs(keepalive),
            send: Duration::from_secs(15),
        };
        assert_eq!(t(60, 75).watch_tick(), Duration::from_secs(5), "the defaults");
        assert_eq!(t(60, 8).watch_tick(), Duration::from_secs(2));
        assert_eq!(t(1, 75).watch_tick(), Duration::from_millis(500));
        assert_eq!(t(12, 0).watch_tick(), Duration::from_secs(3), "keep-alive off");
        let period = Duration::from_millis(500);
        let now = Instant::now();
        let ticks: Vec<Instant> = (0..20)
            .map(|i| first_tick(now + Duration::from_millis(37 * i), period))
            .collect();
        for (i, at) in ticks.iter().enumerate() {
            let asked = now + Duration::from_millis(37 * i as u64);
            assert!(*at > asked && *at <= asked + period, "tick {i} within a period after");
            let apart = at.duration_since(ticks[0]).as_nanos() % period.as_nanos();
            assert_eq!(apart, 0, "tick {i} on the grid");
        }
        assert!(ticks.windows(2).any(|w| w[0] == w[1]), "connections share ticks");
    }

    /// A peer that reads slowly (4 KiB every 50 ms through a small receive
    /// buffer) never frees a third of the send buffer within the timeout,
    /// so epoll never reports the socket writable; the probe sees it move
    /// and the connection is not cut.
    #[tokio::test]
    async fn slow_but_moving_peer_is_not_cut() {
        use std::io::Read;
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let counter = Counter::default();
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        sock.set_recv_buffer_size(16 << 10).expect("rcvbuf");
        sock.connect(&addr.into()).expect("connect");
        let mut peer: std::net::TcpStream = sock.into();
        let (io, _) = l.accept().await.expect("accept");
        let mut io = StallGuard::new(io, Duration::from_millis(300), counter.clone(), None);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 4 << 10];
            let mut total = 0usize;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                match peer.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            total
        });
        let chunk = vec![0u8; 64 << 10];
        let r = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                if let Err(e) = io.write_all(&chunk).await {
                    return e;
                }
            }
        })
        .await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let read = reader.join().expect("reader");
        assert!(r.is_err(), "a moving peer was cut: {:?}", r.map(|e| e.to_string()));
        assert_eq!(counter.get(), 0);
        assert!(read > 64 << 10, "the peer read only {read} bytes");
    }

    /// A peer that never reads gets cut after the timeout; the count rises,
    /// and the socket is set to close abortively (SO_LINGER 0).
    #[tokio::test]
    async fn stalled_peer_is_cut() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let counter = Counter::default();
        let _peer = std::net::TcpStream::connect(addr).expect("connect");
        let (io, _) = l.accept().await.expect("accept");
        let mut io = StallGuard::new(io, Duration::from_millis(300), counter.clone(), None);
        assert_ne!(
            socket2::SockRef::from(&io.io).linger().expect("linger"),
            Some(Duration::ZERO)
        );
        let chunk = vec![0u8; 64 << 10];
        let r = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Err(e) = io.write_all(&chunk).await {
                    return e;
                }
            }
        })
        .await
        .expect("write must fail, not hang");
        assert_eq!(r.kind(), io::ErrorKind::TimedOut);
        assert_eq!(counter.get(), 1);
        assert_eq!(
            socket2::SockRef::from(&io.io).linger().expect("linger"),
            Some(Duration::ZERO)
        );
    }

    /// `[::]` takes connections over both 127.0.0.1 and ::1 on one socket,
    /// and an IPv4 peer is seen as plain IPv4.
    #[tokio::test]
    async fn unspecified_v6_is_dual_stack() {
        let l = listen("[::]:0".parse().expect("addr")).expect("listen");
        let local = l.local_addr().expect("addr");
        let port = local.port();
        if local.is_ipv4() {
            // `listen` fell back: this machine has no IPv6 at all.
            eprintln!("skipping the ::1 half of unspecified_v6_is_dual_stack: no IPv6 on this machine");
        } else {
            assert_eq!(local, SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)));
            let v6 = tokio::net::TcpStream::connect(("::1", port)).await;
            match v6 {
                Ok(c) => {
                    let peer = accept_peer(&l).await;
                    assert_eq!(peer.ip(), std::net::Ipv6Addr::LOCALHOST);
                    assert_eq!(peer, c.local_addr().expect("addr"));
                }
                // IPv6 sockets work, but loopback has no ::1 (e.g. a
                // container with IPv6 disabled on `lo`).
                Err(e) => eprintln!("skipping the ::1 half of unspecified_v6_is_dual_stack: cannot reach ::1: {e}"),
            }
        }
        let c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("an IPv4 client reaches [::]");
        let peer = accept_peer(&l).await;
        assert_eq!(peer, c.local_addr().expect("addr"));
        assert!(peer.is_ipv4(), "{peer} should not be IPv4-mapped");
    }

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(60),
        keepalive: Duration::from_secs(75),
        send: Duration::from_secs(15),
    };

    /// Each phase of a connection has the deadline nginx would give it.
    #[test]
    fn deadlines_follow_the_phase() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = Phase {
            busy: 0,
            idle_since: t0,
            head_since: None,
            served: false,
        };
        // Fresh and silent: the first request's head is due.
        assert_eq!(p.deadline(&T), Some((t0 + s(60), Why::Header)));
        // Between requests: keep-alive.
        p.served = true;
        assert_eq!(p.deadline(&T), Some((t0 + s(75), Why::KeepAlive)));
        // The next head started: from its first byte.
        p.head_since = Some(t0 + s(10));
        assert_eq!(p.deadline(&T), Some((t0 + s(70), Why::Header)));
        // A request in flight (streaming a response) has no deadline here:
        // the send timeout guards it.
        p.busy = 1;
        assert_eq!(p.deadline(&T), None);
    }

    /// Requests in flight, end of responses and bytes read move the phase.
    #[test]
    fn activity_tracks_requests() {
        let a = Arc::new(Activity::new(Instant::now()));
        a.read();
        assert!(a.lock().head_since.is_some());
        let first = Busy::new(a.clone());
        assert_eq!(a.deadline(&T), None);
        a.read(); // a pipelined head while busy does not start a timer
        let second = Busy::new(a.clone());
        drop(first);
        assert_eq!(a.deadline(&T), None, "one request still in flight");
        drop(second);
        let p = *a.lock();
        assert!(p.served && p.head_since.is_none() && p.busy == 0);
        assert_eq!(a.deadline(&T).map(|d| d.1), Some(Why::KeepAlive));
    }

    #[test]
    fn warnings_are_rate_limited() {
        let t0 = Instant::now();
        let mut e = Every::new(Duration::from_secs(10));
        assert_eq!(e.ready(t0), Some(0));
        assert_eq!(e.ready(t0 + Duration::from_secs(1)), None);
        assert_eq!(e.ready(t0 + Duration::from_secs(9)), None);
        assert_eq!(e.ready(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(e.ready(t0 + Duration::from_secs(11)), None);
    }

    fn options(max: usize, header_ms: u64, keepalive_ms: u64) -> ServeOptions {
        ServeOptions {
            timeouts: Timeouts {
                header: Duration::from_millis(header_ms),
                keepalive: Duration::from_millis(keepalive_ms),
                send: Duration::from_secs(5),
            },
            slots: Arc::new(Semaphore::new(max)),
            counters: ConnCounters::default(),
        }
    }

    /// Starts `serve` with a router that answers the peer address.
    async fn start(
        opts: ServeOptions,
        stop: CancellationToken,
    ) -> (SocketAddr, tokio::task::JoinHandle<io::Result<()>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let app = axum::Router::new().route(
            "/peer",
            axum::routing::get(|ConnectInfo(PeerAddr(p)): ConnectInfo<PeerAddr>| async move { p.to_string() }),
        );
        (addr, tokio::spawn(serve(l, app, opts, stop)))
    }

    /// Reads until EOF or reset; the bytes read.
    async fn read_to_close(c: &mut TcpStream) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = c.read(&mut buf).await {
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    /// Handlers see the peer; the header timeout cuts a silent connection
    /// and counts it; above the cap a connection is refused and counted.
    #[tokio::test]
    async fn serve_bounds_connections() {
        let opts = options(2, 300, 5_000);
        let counters = opts.counters.clone();
        let stop = CancellationToken::new();
        let (addr, server) = start(opts, stop.clone()).await;

        let mut c = TcpStream::connect(addr).await.expect("connect");
        c.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let text = String::from_utf8(read_to_close(&mut c).await).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with(&c.local_addr().expect("addr").to_string()), "{text}");

        let started = Instant::now();
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        let mut other = TcpStream::connect(addr).await.expect("connect");
        let mut third = TcpStream::connect(addr).await.expect("connect");
        let refused = tokio::time::timeout(Duration::from_secs(1), read_to_close(&mut third)).await;
        assert!(refused.is_ok(), "a third connection above a cap of 2 is closed at once");
        assert_eq!(counters.refused.get(), 1);
        let cut = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut silent)).await;
        assert!(cut.is_ok(), "a silent connection is cut");
        assert!(started.elapsed() >= Duration::from_millis(250));
        let _ = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut other)).await;
        assert_eq!(counters.header_timeouts.get(), 2);
        stop.cancel();
        let r = tokio::time::timeout(Duration::from_secs(5), server).await;
        assert!(matches!(r, Ok(Ok(Ok(())))), "serve returns once stopped");
    }

    /// `keepalive_timeout 0` closes each connection after its response;
    /// shutdown closes idle keep-alive connections at once.
    #[tokio::test]
    async fn keepalive_off_and_shutdown() {
        let stop = CancellationToken::new();
        let (addr, _server) = start(options(10, 5_000, 0), stop.clone()).await;
        let mut c = TcpStream::connect(addr).await.expect("connect");
        c.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let r = tokio::time::timeout(Duration::from_secs(2), read_to_close(&mut c)).await;
        assert!(
            r.is_ok_and(|b| b.starts_with(b"HTTP/1.1 200")),
            "closed after the response"
        );

        let stop = CancellationToken::new();
        let (addr, server) = start(options(10, 60_000, 60_000), stop.clone()).await;
        let mut c = TcpStream::connect(addr).await.expect("connect");
        c.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 12];
        tokio::io::AsyncReadExt::read_exact(&mut c, &mut buf)
            .await
            .expect("response");
        stop.cancel();
        let closed = tokio::time::timeout(Duration::from_secs(2), read_to_close(&mut c)).await;
        assert!(closed.is_ok(), "an idle keep-alive connection closes on shutdown");
        let r = tokio::time::timeout(Duration::from_secs(2), server).await;
        assert!(matches!(r, Ok(Ok(Ok(())))), "serve returns once stopped");
    }

    /// The peer address as `serve` hands it to handlers.
    async fn accept_peer(l: &TcpListener) -> SocketAddr {
        canonical(l.accept().await.expect("accept").1)
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:5000".parse().expect("addr");
        assert_eq!(canonical(mapped), "10.1.2.3:5000".parse().expect("addr"));
        for s in ["[::1]:1", "[2001:db8::1]:2", "10.0.0.1:3"] {
            let a: SocketAddr = s.parse().expect("addr");
            assert_eq!(canonical(a), a, "{s}");
        }
    }

    /// Without IPv6 sockets (EAFNOSUPPORT), `[::]` falls back to `0.0.0.0`;
    /// a specific IPv6 address does not.
    #[tokio::test]
    async fn no_ipv6_falls_back_to_ipv4() {
        fn v4_only(addr: SocketAddr) -> io::Result<socket2::Socket> {
            if addr.is_ipv6() {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "address family not supported",
                ));
            }
            socket(addr)
        }
        let l = listen_with("[::]:0".parse().expect("addr"), v4_only).expect("fallback");
        let local = l.local_addr().expect("addr");
        assert_eq!(local.ip(), Ipv4Addr::UNSPECIFIED);
        tokio::net::TcpStream::connect(("127.0.0.1", local.port()))
            .await
            .expect("IPv4 client");
        assert!(listen_with("[::1]:0".parse().expect("addr"), v4_only).is_err());
    }

    /// A specific address is bound as given; `0.0.0.0` stays IPv4.
    #[tokio::test]
    async fn other_addresses_bind_as_given() {
        let l = listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
        assert!(l.local_addr().expect("addr").ip().is_loopback());
        let l = listen("0.0.0.0:0".parse().expect("addr")).expect("listen");
        assert!(l.local_addr().expect("addr").is_ipv4());
    }
}

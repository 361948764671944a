//! Listener and connection wrappers for the HTTP server.
//!
//! `[::]` listens dual-stack (IPv6 and IPv4 on one socket, whatever the
//! system default `net.ipv6.bindv6only` says), because viewers told to open
//! `http://localhost:8080/` may reach it over `::1` or `127.0.0.1`. On a
//! machine without IPv6 it falls back to `0.0.0.0` and says so in the log.
//! IPv4 peers of a dual-stack socket arrive as `::ffff:a.b.c.d`; they are
//! handed on as plain IPv4 addresses, so client addresses look the same
//! whichever socket accepted them.
//!
//! Every accepted connection gets TCP_NODELAY, a bounded kernel send buffer
//! and a send timeout: a peer that accepts no bytes at all for
//! `send_timeout` is disconnected (and counted), like nginx's `send_timeout`.
//! Without it a viewer that stops reading would hold its connection, and
//! the buffers behind it, forever. The timer restarts whenever a write
//! makes progress, so slow but moving downloads are never cut.

use prometheus_client::metrics::counter::Counter;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

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

/// A TCP listener whose connections carry a send timeout.
pub struct GuardedListener {
    inner: TcpListener,
    send_timeout: Duration,
    timeouts: Counter,
}

impl GuardedListener {
    /// Wraps `inner`: each accepted connection gets `send_timeout`, and each
    /// connection cut for it counts in `timeouts`.
    pub fn new(inner: TcpListener, send_timeout: Duration, timeouts: Counter) -> Self {
        GuardedListener {
            inner,
            send_timeout,
            timeouts,
        }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = StallGuard;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's TcpListener accept already retries transient errors (EMFILE…).
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let addr = canonical(addr);
        let _ = io.set_nodelay(true);
        let _ = socket2::SockRef::from(&io).set_send_buffer_size(SEND_BUFFER);
        (
            StallGuard {
                io,
                timeout: self.send_timeout,
                stall: None,
                timeouts: self.timeouts.clone(),
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A TCP stream that fails writes that make no progress for `timeout`.
pub struct StallGuard {
    io: TcpStream,
    timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
    timeouts: Counter,
}

impl StallGuard {
    /// Called when a write is pending: arms the timer (registering the
    /// waker so the task is polled again when it fires) or fails once it has.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let sleep = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.stall = None;
                self.timeouts.inc();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "send timeout: peer reads nothing",
                )))
            }
        }
    }

    fn progress<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.pending(cx),
            ready => {
                self.stall = None;
                ready
            }
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.progress(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.progress(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.progress(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The peer address of a connection, for handlers (`ConnectInfo<PeerAddr>`).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, GuardedListener>> for PeerAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, GuardedListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A peer that never reads gets cut after the timeout; the count rises.
    #[tokio::test]
    async fn stalled_peer_is_cut() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let counter = Counter::default();
        let mut gl = GuardedListener::new(l, Duration::from_millis(300), counter.clone());
        let _peer = std::net::TcpStream::connect(addr).expect("connect");
        let (mut io, _) = axum::serve::Listener::accept(&mut gl).await;
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
    }

    /// `[::]` takes connections over both 127.0.0.1 and ::1 on one socket,
    /// and an IPv4 peer is seen as plain IPv4.
    #[tokio::test]
    async fn unspecified_v6_is_dual_stack() {
        let l = listen("[::]:0".parse().expect("addr")).expect("listen");
        let local = l.local_addr().expect("addr");
        let port = local.port();
        let mut gl = GuardedListener::new(l, Duration::from_secs(5), Counter::default());
        if local.is_ipv4() {
            // `listen` fell back: this machine has no IPv6 at all.
            eprintln!("skipping the ::1 half of unspecified_v6_is_dual_stack: no IPv6 on this machine");
        } else {
            assert_eq!(local, SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)));
            let v6 = tokio::net::TcpStream::connect(("::1", port)).await;
            match v6 {
                Ok(c) => {
                    let (_io, peer) = axum::serve::Listener::accept(&mut gl).await;
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
        let (_io, peer) = axum::serve::Listener::accept(&mut gl).await;
        assert_eq!(peer, c.local_addr().expect("addr"));
        assert!(peer.is_ipv4(), "{peer} should not be IPv4-mapped");
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

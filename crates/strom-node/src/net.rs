//! Listener and connection wrappers for the HTTP server.
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
use std::net::SocketAddr;
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
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())?;
    sock.listen(BACKLOG)?;
    sock.set_nonblocking(true)?;
    TcpListener::from_std(sock.into())
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
}

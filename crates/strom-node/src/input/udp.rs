//! `udp://` input: unicast or multicast MPEG-TS datagrams.
//!
//! Datagrams of any size up to 65,535 bytes are read whole (no truncation at
//! 1316 bytes); the demuxer resyncs on 0x47 after loss or garbage. Multicast
//! binds to the group address (so other groups on the same port are not
//! mixed in) and joins it on `iface`, source-specific when `source` is set.
//!
//! One socket per group: streams that take different programs of one MPTS
//! (`udp://239.0.0.1:1234?program=101`, `…?program=202`) subscribe to one
//! shared receiver keyed by (address, iface, source). It reads each datagram
//! once and hands every subscriber the same [`Bytes`]; each stream's demuxer
//! then follows its own program and skips the other PIDs with one table
//! lookup per packet. The receiver lives while it has subscribers. A
//! subscriber that falls more than [`QUEUE`] datagrams behind loses the
//! oldest ones (counted as `udp_overrun`), so one slow stream never holds up
//! the socket or the other streams.

use super::{Backoff, Feeder, InputCtx};
use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Kernel receive buffer asked for; bursts of a few Mbit/s channel fit easily.
const RCVBUF: usize = 8 << 20;
/// Datagrams a subscriber may lag behind the socket before it loses the
/// oldest: about 0.5 s of a 100 Mbit/s MPTS in 1316-byte datagrams.
pub const QUEUE: usize = 4096;
/// Datagrams are received into blocks of this size, so many share one
/// allocation; a block has room for a whole 64 KiB datagram left at all
/// times. A block lives until every datagram in it is demuxed, so it is
/// memory each socket holds: 256 KiB takes ~145 datagrams of 1316 bytes
/// before the next block starts (1 MiB held ~0.75 MiB more per channel).
const BLOCK: usize = 256 << 10;
const MAX_DATAGRAM: usize = 65_536;

/// What identifies one socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    addr: SocketAddr,
    iface: Option<Ipv4Addr>,
    source: Option<IpAddr>,
}

/// What a shared receiver hands its subscribers.
#[derive(Clone, Debug)]
enum Datagram {
    Data(Bytes),
    /// The socket was bound (`up`) or could not be.
    State {
        up: bool,
        detail: String,
    },
}

/// One socket and its reader task; the task stops when the last
/// subscriber drops its `Arc`.
struct Receiver {
    tx: broadcast::Sender<Datagram>,
    /// Cancelled when the reader must stop or has stopped.
    cancel: CancellationToken,
    /// The last state sent, for subscribers that join later.
    state: Arc<Mutex<Option<(bool, String)>>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The receivers of this process by socket key.
static RECEIVERS: LazyLock<Mutex<HashMap<Key, Weak<Receiver>>>> = LazyLock::new(Default::default);

/// Joins the receiver of `key`, starting it if there is none (or only one
/// that has stopped).
fn subscribe(key: Key) -> (Arc<Receiver>, broadcast::Receiver<Datagram>) {
    let mut map = RECEIVERS.lock().unwrap_or_else(|e| e.into_inner());
    map.retain(|_, w| w.strong_count() > 0);
    if let Some(r) = map.get(&key).and_then(Weak::upgrade) {
        if !r.cancel.is_cancelled() {
            let rx = r.tx.subscribe();
            return (r, rx);
        }
    }
    let (tx, rx) = broadcast::channel(QUEUE);
    let receiver = Arc::new(Receiver {
        tx: tx.clone(),
        cancel: CancellationToken::new(),
        state: Arc::default(),
    });
    tokio::spawn(read(key.clone(), tx, receiver.cancel.clone(), receiver.state.clone()));
    map.insert(key, Arc::downgrade(&receiver));
    (receiver, rx)
}

fn open(addr: SocketAddr, iface: Option<Ipv4Addr>, source: Option<IpAddr>) -> std::io::Result<tokio::net::UdpSocket> {
    let domain = if addr.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let sock = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    // A smaller buffer than asked for is fine; the kernel caps it at rmem_max.
    let _ = sock.set_recv_buffer_size(RCVBUF);
    sock.bind(&addr.into())?;
    match addr.ip() {
        IpAddr::V4(group) if group.is_multicast() => {
            let iface = iface.unwrap_or(Ipv4Addr::UNSPECIFIED);
            match source {
                Some(IpAddr::V4(src)) => sock.join_ssm_v4(&src, &group, &iface)?,
                _ => sock.join_multicast_v4(&group, &iface)?,
            }
        }
        IpAddr::V6(group) if group.is_multicast() => sock.join_multicast_v6(&group, 0)?,
        _ => {}
    }
    sock.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(sock.into())
}

/// The reader task of one socket: binds (retrying with backoff), then reads
/// datagrams until cancelled.
async fn read(
    key: Key,
    tx: broadcast::Sender<Datagram>,
    cancel: CancellationToken,
    state: Arc<Mutex<Option<(bool, String)>>>,
) {
    // Whatever ends this task, new subscribers must not join it.
    let _stopped = cancel.clone().drop_guard();
    let announce = |up: bool, detail: String| {
        *state.lock().unwrap_or_else(|e| e.into_inner()) = Some((up, detail.clone()));
        let _ = tx.send(Datagram::State { up, detail });
    };
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    let addr = key.addr;
    let sock = loop {
        match open(addr, key.iface, key.source) {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "udp input cannot bind");
                announce(false, format!("bind {addr}: {e}"));
                if !crate::util::sleep_or_cancel(&cancel, backoff.next_delay()).await {
                    return;
                }
            }
        }
    };
    tracing::info!(%addr, "udp input listening");
    announce(true, format!("listening on {addr}"));
    let mut buf = BytesMut::with_capacity(BLOCK);
    loop {
        if buf.capacity() - buf.len() < MAX_DATAGRAM {
            buf = BytesMut::with_capacity(BLOCK);
        }
        let r = tokio::select! {
            _ = cancel.cancelled() => return,
            r = sock.recv_buf(&mut buf) => r,
        };
        match r {
            Ok(_) => {
                // No subscriber is not an error: the last one may be leaving.
                let _ = tx.send(Datagram::Data(buf.split().freeze()));
            }
            Err(e) => {
                buf.clear();
                tracing::debug!(%addr, error = %e, "udp recv error");
            }
        }
    }
}

/// Runs until cancelled. `program` selects an MPTS program (see the module docs).
pub async fn run(
    addr: SocketAddr,
    iface: Option<Ipv4Addr>,
    source: Option<IpAddr>,
    program: Option<u16>,
    ctx: InputCtx,
) {
    let (receiver, mut rx) = subscribe(Key { addr, iface, source });
    let joined = receiver.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some((up, detail)) = joined {
        ctx.state(up, detail).await;
    }
    let mut feeder = Feeder::new(program);
    loop {
        let msg = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            m = rx.recv() => m,
        };
        match msg {
            Ok(Datagram::Data(d)) => {
                let fed = feeder.feed(&ctx, &d);
                if !ctx.send_fed(fed).await {
                    return;
                }
            }
            Ok(Datagram::State { up, detail }) => ctx.state(up, detail).await,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                ctx.metrics.udp_overrun.inc_by(n);
                tracing::debug!(stream = %ctx.stream, %addr, lost = n, "udp input fell behind the socket");
            }
            // The reader stopped (it only does when it panicked): the stream
            // restarts this input, which starts a new reader.
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two subscribers of one group share a socket: each datagram sent once
    /// reaches both, and the socket goes away with the last subscriber.
    #[tokio::test]
    async fn one_socket_per_group() {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        let key = Key {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            iface: None,
            source: None,
        };
        let (a, mut rx_a) = subscribe(key.clone());
        let (b, mut rx_b) = subscribe(key.clone());
        assert!(Arc::ptr_eq(&a, &b), "the second stream joins the first one's receiver");
        // Wait until bound (the state is kept for late joiners).
        for _ in 0..500 {
            if a.state.lock().expect("lock").as_ref().is_some_and(|s| s.0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(a.state.lock().expect("lock").as_ref().is_some_and(|s| s.0), "bound");
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        tx.send_to(b"\x47hello", ("127.0.0.1", port)).expect("send");
        for rx in [&mut rx_a, &mut rx_b] {
            let got = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match rx.recv().await {
                        Ok(Datagram::Data(d)) => return d,
                        Ok(Datagram::State { .. }) => continue,
                        Err(e) => panic!("receiver: {e}"),
                    }
                }
            })
            .await
            .expect("datagram in time");
            assert_eq!(&got[..], b"\x47hello");
        }
        let cancel = a.cancel.clone();
        drop((a, b));
        assert!(cancel.is_cancelled(), "the reader stops with its last subscriber");
        let (c, _rx) = subscribe(key);
        assert!(!c.cancel.is_cancelled(), "a new subscriber starts a new reader");
    }
}

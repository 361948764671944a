//! `udp://` input: unicast or multicast MPEG-TS datagrams.
//!
//! Datagrams of any size up to 65,535 bytes are read whole (no truncation at
//! 1316 bytes); the demuxer resyncs on 0x47 after loss or garbage. Multicast
//! binds to the group address (so other groups on the same port are not
//! mixed in) and joins it on `iface`, source-specific when `source` is set.

use super::{Backoff, Feeder, InputCtx};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Kernel receive buffer asked for; bursts of a few Mbit/s channel fit easily.
const RCVBUF: usize = 8 << 20;

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

/// Runs until cancelled.
pub async fn run(addr: SocketAddr, iface: Option<Ipv4Addr>, source: Option<IpAddr>, ctx: InputCtx) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    let sock = loop {
        match open(addr, iface, source) {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(stream = %ctx.stream, input = ctx.index(), %addr, error = %e, "udp input cannot bind");
                ctx.state(false, format!("bind {addr}: {e}")).await;
                if !ctx.sleep(backoff.next_delay()).await {
                    return;
                }
            }
        }
    };
    tracing::info!(stream = %ctx.stream, input = ctx.index(), %addr, "udp input listening");
    ctx.state(true, format!("listening on {addr}")).await;
    let mut feeder = Feeder::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = sock.recv(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(stream = %ctx.stream, error = %e, "udp recv error");
                    continue;
                }
            },
        };
        let events = feeder.feed(&ctx.metrics, &buf[..n]);
        if !ctx.send_events(events).await {
            return;
        }
    }
}

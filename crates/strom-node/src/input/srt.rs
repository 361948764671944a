//! `srt://HOST:PORT?streamid=…&passphrase=…&latency=MS` input: MPEG-TS
//! pulled from a remote SRT listener, strom calling (live mode).
//!
//! Connects as an SRT caller (libsrt, see [`crate::srt`]) with the
//! streamid, passphrase and receiver latency of the input, and feeds what
//! arrives through a [`Feeder`]. A connection that is refused, breaks, or
//! delivers nothing for the stream's `source_timeout` is retried with capped
//! exponential backoff until the input is cancelled. So is a node without
//! libsrt (loaded at run time, [`sys`]): each attempt reports the package
//! to install, and the rest of the node runs. While connected, the
//! connection's statistics go into the stream's SRT metrics every second;
//! its gauges read 0 between connections.

use super::{Backoff, Feeder, InputCtx};
use crate::srt::{self, sys, CloseOnDrop, Stats};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Where and how to call (the `srt://` input of the config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrtInput {
    /// DNS name, IP address, or bracketed IPv6 address.
    pub host: String,
    pub port: u16,
    /// Sent to the listener (at most 512 bytes), e.g. `#!::r=NAME,m=request`.
    pub streamid: Option<String>,
    /// AES passphrase, 10–79 characters (the key length is the listener's).
    pub passphrase: Option<String>,
    /// Receiver latency (TSBPD delay); the larger of both sides' applies.
    pub latency: Duration,
}

/// Longest wait for a listener's handshake answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs until cancelled.
pub async fn run(input: SrtInput, program: Option<u16>, ctx: InputCtx) {
    let shown = format!("srt://{}:{}", input.host, input.port);
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
    loop {
        let reason = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = session(&input, &shown, program, &ctx, &mut backoff) => r,
        };
        let Some(reason) = reason else { return };
        tracing::warn!(stream = %ctx.stream, input = ctx.index(), url = %shown, %reason, "srt input down");
        ctx.state(false, reason).await;
        if !ctx.sleep(backoff.next_delay()).await {
            return;
        }
    }
}

/// Resolves `host` (brackets of an IPv6 literal removed) to its first address.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let mut addrs = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    addrs.next().ok_or_else(|| format!("{host} has no address"))
}

/// A listener's reject reason in words (libsrt's `SRT_REJ_*` below 1000,
/// access-control codes from 1000).
pub fn reject_text(code: i32) -> &'static str {
    match code {
        10 => "wrong passphrase",
        11 => "passphrase required, or not expected",
        1 => "system error",
        2 => "peer refused",
        3 => "listener out of resources",
        5 => "listener backlog full",
        8 => "SRT version not supported",
        16 => "timed out",
        1400 => "bad streamid",
        1401 => "unauthorized",
        1402 => "listener overloaded",
        1403 => "forbidden",
        1404 => "stream not found",
        1405 => "mode not supported",
        1409 => "stream busy",
        1503 => "service unavailable",
        _ => "refused",
    }
}

/// One connection. Returns why it ended, or None when the stream is gone.
async fn session(
    input: &SrtInput,
    shown: &str,
    program: Option<u16>,
    ctx: &InputCtx,
    backoff: &mut Backoff,
) -> Option<String> {
    let addr = match resolve(&input.host, input.port).await {
        Ok(a) => a,
        Err(e) => return Some(e),
    };
    let (streamid, passphrase, latency) = (input.streamid.clone(), input.passphrase.clone(), input.latency);
    let connected = tokio::task::spawn_blocking(move || {
        sys::Socket::connect(
            addr,
            streamid.as_deref(),
            latency,
            passphrase.as_deref(),
            CONNECT_TIMEOUT,
        )
    })
    .await;
    let socket = match connected {
        Err(e) => return Some(format!("connect task failed: {e}")),
        Ok(Err(e)) if e.is_unavailable() => return Some(format!("SRT unavailable: {e}")),
        Ok(Err(e)) if e.is_rejected() => {
            let code = e.reject.unwrap_or(0);
            return Some(format!("listener refused: {} ({code})", reject_text(code)));
        }
        Ok(Err(e)) if e.is_no_server() => return Some(format!("no answer from {addr}")),
        Ok(Err(e)) => return Some(format!("connect failed: {e}")),
        Ok(Ok(s)) => Arc::new(s),
    };
    let _close = CloseOnDrop(socket.clone());
    tracing::info!(stream = %ctx.stream, input = ctx.index(), url = %shown, %addr, "srt input connected");
    ctx.state(true, format!("connected to {shown}")).await;
    let mut chunks = match srt::spawn_reader(socket.clone()) {
        Ok(rx) => rx,
        Err(e) => return Some(format!("cannot start a reader thread: {e}")),
    };
    let mut stats = Stats::new(ctx.metrics.clone(), Some(ctx.stream.to_string()));
    let reason = feed(ctx, &socket, &mut chunks, &mut stats, program, backoff).await;
    stats.clear();
    reason
}

/// Feeds what arrives until the connection ends or goes silent.
async fn feed(
    ctx: &InputCtx,
    socket: &sys::Socket,
    chunks: &mut tokio::sync::mpsc::Receiver<bytes::Bytes>,
    stats: &mut Stats,
    program: Option<u16>,
    backoff: &mut Backoff,
) -> Option<String> {
    let idle = ctx.source_timeout;
    let mut feeder = Feeder::new(program);
    let mut got_data = false;
    let mut every = srt::stats_interval();
    let silence = tokio::time::sleep(idle);
    tokio::pin!(silence);
    loop {
        tokio::select! {
            chunk = chunks.recv() => {
                let Some(chunk) = chunk else {
                    let rest = feeder.finish(ctx);
                    if !ctx.send_fed(rest).await {
                        return None;
                    }
                    return Some("connection closed".into());
                };
                if !got_data {
                    got_data = true;
                    backoff.reset();
                }
                silence.as_mut().reset(tokio::time::Instant::now() + idle);
                let fed = feeder.feed(ctx, &chunk);
                if !ctx.send_fed(fed).await {
                    return None;
                }
            }
            _ = &mut silence => {
                ctx.metrics.input_timeouts.inc();
                return Some(format!("no data for {}s", idle.as_secs()));
            }
            _ = every.tick() => stats.sample(socket),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_literals_and_bracketed_ipv6() {
        assert_eq!(
            resolve("127.0.0.1", 9000).await.expect("ok"),
            "127.0.0.1:9000".parse().expect("ok")
        );
        assert_eq!(
            resolve("[::1]", 9000).await.expect("ok"),
            "[::1]:9000".parse().expect("ok")
        );
    }

    #[test]
    fn reject_reasons_read_as_words() {
        assert_eq!(reject_text(10), "wrong passphrase");
        assert_eq!(reject_text(1404), "stream not found");
        assert_eq!(reject_text(4242), "refused");
    }
}

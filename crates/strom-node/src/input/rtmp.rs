//! `rtmp://HOST[:PORT]/APP/NAME` input: pulls a stream from an RTMP server
//! (strom plays it, as a player would) and hands its frames to the stream.
//!
//! The protocol is strom-media's sans-IO [`ClientSession`]; FLV tags become
//! frames in [`FlvIngest`], one per connection, so every reconnect starts a
//! new run of timestamps for the stream's timeline. The connection is
//! retried with capped backoff; a server silent for the stream's
//! `source_timeout` (no media) is abandoned and retried.

use super::{Backoff, InputCtx};
use std::time::Duration;
use strom_media::flv::{FlvIngest, TagKind};
use strom_media::rtmp::{ClientConfig, ClientEvent, ClientMode, ClientSession, Limits, MediaKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Time to connect, hand-shake and get `NetStream.Play.Start`.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A write that takes longer ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes read at once.
const READ_CHUNK: usize = 64 * 1024;

/// Where to pull from.
#[derive(Clone, Debug)]
pub struct RtmpSource {
    pub host: String,
    pub port: u16,
    pub app: String,
    pub name: String,
}

/// Runs until cancelled.
pub async fn run(src: RtmpSource, ctx: InputCtx) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    let shown = crate::util::redact_url(&format!("rtmp://{}:{}/{}/{}", src.host, src.port, src.app, src.name));
    loop {
        let delivered = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = session(&src, &ctx) => r,
        };
        match delivered {
            Ok(true) => backoff.reset(),
            Ok(false) => {}
            Err(why) => {
                tracing::warn!(stream = %ctx.stream, input = ctx.index(), url = %shown, why, "rtmp pull failed");
                ctx.state(false, format!("rtmp: {why}")).await;
            }
        }
        if !ctx.sleep(backoff.next_delay()).await {
            return;
        }
    }
}

/// One connection: `Ok(true)` when it delivered media before it ended.
async fn session(src: &RtmpSource, ctx: &InputCtx) -> Result<bool, String> {
    let addr = (src.host.trim_start_matches('[').trim_end_matches(']'), src.port);
    let mut socket = match tokio::time::timeout(SETUP_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("connect: {e}")),
        Err(_) => return Err("connect: timed out".into()),
    };
    let _ = socket.set_nodelay(true);
    let tc_url = format!("rtmp://{}:{}/{}", src.host, src.port, src.app);
    let mut s = ClientSession::new(ClientConfig {
        app: src.app.clone(),
        tc_url,
        mode: ClientMode::Play { name: src.name.clone() },
        limits: Limits::default(),
    });
    let mut flv = FlvIngest::new(Default::default());
    let mut buf = vec![0u8; READ_CHUNK];
    let mut playing = false;
    let mut delivered = false;
    let setup_deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    let mut seen_in = 0u64;
    loop {
        let out = s.take_output();
        if !out.is_empty() {
            match tokio::time::timeout(WRITE_TIMEOUT, socket.write_all(&out)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("write: {e}")),
                Err(_) => return Err("write: timed out".into()),
            }
        }
        let limit = if playing { ctx.source_timeout } else { SETUP_TIMEOUT };
        let read = if playing {
            tokio::time::timeout(limit, socket.read(&mut buf)).await
        } else {
            tokio::time::timeout_at(setup_deadline, socket.read(&mut buf)).await
        };
        let n = match read {
            Err(_) => {
                if playing {
                    ctx.metrics.input_timeouts.inc();
                }
                return Err(format!("no data for {} s", limit.as_secs()));
            }
            Ok(Err(e)) => return Err(format!("read: {e}")),
            Ok(Ok(0)) => {
                flv.finish();
                let events: Vec<_> = std::iter::from_fn(|| flv.pull()).collect();
                ctx.send_events(events).await;
                if delivered {
                    ctx.state(false, "rtmp server closed the connection").await;
                }
                return if delivered {
                    Ok(true)
                } else {
                    Err("closed by the server".into())
                };
            }
            Ok(Ok(n)) => n,
        };
        if let Err(e) = s.feed(&buf[..n]) {
            return Err(format!("protocol error ({})", e.kind()));
        }
        while let Some(ev) = s.poll_event() {
            match ev {
                ClientEvent::Started { .. } => {
                    playing = true;
                    tracing::info!(stream = %ctx.stream, input = ctx.index(), "rtmp pull playing");
                }
                ClientEvent::Media {
                    kind,
                    timestamp,
                    payload,
                    ..
                } => {
                    let kind = match kind {
                        MediaKind::Audio => TagKind::Audio,
                        MediaKind::Video => TagKind::Video,
                    };
                    flv.push(kind, timestamp, payload);
                }
                ClientEvent::Metadata { values, .. } => {
                    if let Some((v, a)) = crate::rtmp::expected_tracks(&values) {
                        flv.expect(v, a);
                    }
                }
                ClientEvent::Rejected { code, .. } => {
                    return Err(format!("refused: {}", crate::util::peer_text(&code)));
                }
                ClientEvent::Status { level, code, .. } if level == "error" => {
                    return Err(format!("error status: {}", crate::util::peer_text(&code)));
                }
                _ => {}
            }
        }
        let now_in = s.stats().bytes_in;
        ctx.metrics.input_bytes.inc_by(now_in.saturating_sub(seen_in));
        seen_in = now_in;
        let events: Vec<_> = std::iter::from_fn(|| flv.pull()).collect();
        if !events.is_empty() {
            if !delivered {
                delivered = true;
                ctx.state(true, "rtmp pull connected").await;
            }
            if !ctx.send_events(events).await {
                return Ok(true);
            }
        }
    }
}

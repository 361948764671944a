//! RTMP listener (`rtmp [ADDR:]PORT;`): encoders publish to
//! `rtmp://HOST[:PORT]/APP/NAME` or `rtmp://HOST[:PORT]/NAME`.
//!
//! Each connection runs strom-media's sans-IO [`ServerSession`] on a tokio
//! task: bytes in, events and bytes out. A `publish` is answered only after
//! the stream is found, the publisher authorized ([`crate::ingest::admit`])
//! and the stream's publisher slot taken, so an encoder sees
//! `NetStream.Publish.Start` only when its media will be used, and a clear
//! `onStatus` error otherwise. The publisher's FLV tags become frames in
//! [`FlvIngest`] and go to the stream's `publish://` input as
//! [`PublishChunk::Events`].
//!
//! Naming (Flussonic's rules): `APP/NAME` when a stream of that name
//! exists, else `NAME`; with no name (`rtmp://HOST/NAME`), the app is the
//! name. A `?query` on the name (or on the app) carries `password=` and
//! `token=` for `publish_password` and `on_publish`.
//!
//! Bounds: [`MAX_CONNECTIONS`] connections per node, a connection must
//! reach `publish` within [`SETUP_TIMEOUT`], reads are [`READ_CHUNK`]
//! bytes, and a publisher silent for the stream's `source_timeout` is cut.
//! Playback (`rtmp://HOST/static/NAME`) is refused with
//! `NetStream.Play.StreamNotFound`; adding it means answering
//! `PlayRequested` and sending media through the same session.

use crate::ingest::{PublishRequest, Refusal};
use crate::input::publish::PublishChunk;
use crate::metrics::{KindLabel, ResultLabel};
use crate::Node;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_media::flv::{FlvIngest, TagKind};
use strom_media::rtmp::{Limits, MediaKind, ServerEvent, ServerSession, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

/// RTMP connections a node holds at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections not admitted yet (before their publish is accepted) a node
/// holds at once, and per client address; more are closed at accept.
pub const MAX_UNADMITTED: usize = 128;
pub const MAX_UNADMITTED_PER_IP: usize = 32;
/// Time from accept to the end of the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time from accept to `publish`: handshake, `connect`, `createStream`.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes read from a socket at once.
const READ_CHUNK: usize = 64 * 1024;
/// A write to the peer that takes longer than this ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Chunks of frames queued between a connection and its stream's input.
const QUEUE: usize = 32;

/// Accepts RTMP connections on `listener` until `cancel`.
pub async fn serve(node: Arc<Node>, listener: TcpListener, cancel: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let gate = Arc::new(Unadmitted::default());
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "rtmp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let pass = permits
            .clone()
            .try_acquire_owned()
            .ok()
            .zip(Unadmitted::enter(&gate, peer.ip()));
        let Some((permit, pending)) = pass else {
            node.metrics
                .rtmp_connections
                .get_or_create(&ResultLabel { result: "limit" })
                .inc();
            static LOG: crate::util::LogLimiter = crate::util::LogLimiter::new(Duration::from_secs(10));
            if let Some(held_back) = LOG.allow(Instant::now()) {
                tracing::warn!(
                    %peer,
                    also_refused = held_back,
                    "rtmp connection refused: connection limit reached (per address before publishing, or in all)"
                );
            }
            continue;
        };
        let node = node.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = socket.set_nodelay(true);
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = connection(&node, socket, peer, pending) => {}
            }
        });
    }
}

/// Connections not admitted yet (before their publish is accepted): at
/// most [`MAX_UNADMITTED`] in all and [`MAX_UNADMITTED_PER_IP`] per
/// address, so strangers cannot take the slots reconnecting encoders need.
#[derive(Default)]
struct Unadmitted {
    /// Connections per address; an address leaves when its count is 0.
    by_ip: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

/// One unadmitted connection's place; given back when dropped (on
/// admission or when the connection ends).
struct Pending {
    gate: Arc<Unadmitted>,
    ip: IpAddr,
}

impl Unadmitted {
    fn enter(gate: &Arc<Unadmitted>, ip: IpAddr) -> Option<Pending> {
        let mut m = gate.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = m.values().sum();
        let here = m.get(&ip).copied().unwrap_or(0);
        if total >= MAX_UNADMITTED || here >= MAX_UNADMITTED_PER_IP {
            return None;
        }
        *m.entry(ip).or_default() += 1;
        Some(Pending { gate: gate.clone(), ip })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut m = self.gate.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// How a connection ended, for the counters and the log.
enum End {
    /// The publisher finished or went away.
    Done,
    /// Refused before publishing.
    Refused(&'static str),
    /// The peer broke the protocol or the socket failed.
    Error(&'static str),
}

struct Conn {
    socket: TcpStream,
    session: ServerSession,
    buf: Vec<u8>,
}

impl Conn {
    /// Sends what the session queued.
    async fn flush(&mut self) -> Result<(), &'static str> {
        let out = self.session.take_output();
        if out.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.write_all(&out)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("io"),
            Err(_) => Err("timeout"),
        }
    }

    /// Reads once and feeds the session; `Ok(false)` at end of stream.
    async fn read(&mut self, node: &Node) -> Result<bool, &'static str> {
        let n = match self.socket.read(&mut self.buf).await {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(_) => return Err("io"),
        };
        if let Err(e) = self.session.feed(&self.buf[..n]) {
            node.metrics
                .rtmp_errors
                .get_or_create(&KindLabel { kind: e.kind() })
                .inc();
            return Err(e.kind());
        }
        Ok(true)
    }
}

async fn connection(node: &Arc<Node>, socket: TcpStream, peer: SocketAddr, pending: Pending) {
    let mut c = Conn {
        socket,
        // Tight caps until the publisher is admitted.
        session: ServerSession::new(Limits::UNADMITTED),
        buf: vec![0; READ_CHUNK],
    };
    let end = run(node, &mut c, peer, pending).await;
    let _ = c.flush().await;
    let result = match end {
        End::Done => None,
        End::Refused(r) => Some(r),
        End::Error(kind) => {
            static LOG: crate::util::LogLimiter = crate::util::LogLimiter::new(Duration::from_secs(10));
            if let Some(held_back) = LOG.allow(Instant::now()) {
                tracing::info!(%peer, kind, held_back, "rtmp connection closed on error");
            }
            Some("error")
        }
    };
    if let Some(result) = result {
        node.metrics
            .rtmp_connections
            .get_or_create(&ResultLabel { result })
            .inc();
    }
}

/// What `connect` and `publish` named.
#[derive(Default)]
struct Setup {
    app: String,
    /// Whether `onMetaData` announced video and audio.
    expect: Option<(bool, bool)>,
}

async fn run(node: &Arc<Node>, c: &mut Conn, peer: SocketAddr, pending: Pending) -> End {
    let mut setup = Setup::default();
    let started = tokio::time::Instant::now();
    // Handshake, connect, createStream … until a publish.
    let (stream_id, name) = loop {
        let deadline = started
            + if c.session.handshake_done() {
                SETUP_TIMEOUT
            } else {
                HANDSHAKE_TIMEOUT
            };
        match tokio::time::timeout_at(deadline, c.read(node)).await {
            Err(_) => {
                node.metrics
                    .rtmp_errors
                    .get_or_create(&KindLabel { kind: "timeout" })
                    .inc();
                return End::Error("timeout");
            }
            Ok(Err(kind)) => return End::Error(kind),
            Ok(Ok(false)) => return End::Refused("closed_before_publish"),
            Ok(Ok(true)) => {}
        }
        let mut publish = None;
        while let Some(ev) = c.session.poll_event() {
            match ev {
                ServerEvent::Connected { app, .. } => setup.app = app,
                ServerEvent::PublishRequested { stream_id, name, .. } if publish.is_none() => {
                    publish = Some((stream_id, name));
                }
                ServerEvent::PublishRequested { stream_id, .. } => {
                    let _ = c.session.reject_publish(
                        stream_id,
                        "NetStream.Publish.BadName",
                        "one published stream per connection",
                    );
                }
                ServerEvent::PlayRequested { stream_id, .. } => {
                    let _ = c.session.reject_play(
                        stream_id,
                        "NetStream.Play.StreamNotFound",
                        "playback over RTMP is not served",
                    );
                    return End::Refused("play_refused");
                }
                ServerEvent::Metadata { values, .. } => setup.expect = expected_tracks(&values),
                _ => {}
            }
        }
        if let Err(e) = c.flush().await {
            return End::Error(e);
        }
        if let Some(p) = publish {
            break p;
        }
    };
    let (stream_name, query) = resolve_name(node, &setup.app, &name);
    let req = PublishRequest {
        name: &stream_name,
        query: query.as_deref(),
        ip: peer.ip(),
        proto: "rtmp",
    };
    let admitted = match crate::ingest::admit(node, req).await {
        Ok(p) => p.claim().await,
        Err(r) => Err(r),
    };
    let claimed = match admitted {
        Ok(c) => c,
        Err(r) => {
            let code = match r {
                Refusal::Unauthorized | Refusal::TooMany => "NetStream.Publish.Unauthorized",
                Refusal::Busy => "NetStream.Publish.BadName",
                Refusal::Unavailable => "NetStream.Publish.Failed",
                Refusal::UnknownStream | Refusal::NotPublishable => "NetStream.Publish.BadName",
            };
            let _ = c.session.reject_publish(stream_id, code, r.describe());
            static LOG: crate::util::LogLimiter = crate::util::LogLimiter::new(Duration::from_secs(10));
            if let Some(held_back) = LOG.allow(Instant::now()) {
                tracing::info!(
                    %peer,
                    app = %crate::util::peer_text(split_query(&setup.app).0),
                    stream = %crate::util::peer_text(&stream_name),
                    reason = r.result(),
                    also_refused = held_back,
                    "rtmp publisher refused"
                );
            }
            return End::Refused(r.result());
        }
    };
    // Admitted: the connection leaves the unadmitted pool and gets the
    // caps of a publisher.
    drop(pending);
    c.session.set_limits(Limits::default());
    if c.session.accept_publish(stream_id).is_err() {
        return End::Error("state");
    }
    if let Err(e) = c.flush().await {
        return End::Error(e);
    }
    let stream = claimed.stream().clone();
    tracing::info!(%peer, stream = %stream.name, "rtmp publisher started");
    node.metrics
        .rtmp_connections
        .get_or_create(&ResultLabel { result: "published" })
        .inc();
    let (tx, rx) = mpsc::channel::<PublishChunk>(QUEUE);
    let stop = CancellationToken::new();
    let feeding = {
        let stop = stop.clone();
        let source = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        }));
        tokio::spawn(async move {
            let r = claimed.run(source).await;
            stop.cancel();
            r
        })
    };
    let mut flv = FlvIngest::new(Default::default());
    if let Some((v, a)) = setup.expect {
        flv.expect(v, a);
    }
    let end = media(node, c, &mut flv, stream_id, &tx, &stop, &stream).await;
    drop(tx);
    let fed = feeding.await;
    match fed {
        Ok(Ok(bytes)) => tracing::info!(%peer, stream = %stream.name, bytes, "rtmp publisher ended"),
        Ok(Err(e)) => tracing::info!(%peer, stream = %stream.name, reason = e.describe(), "rtmp publisher cut off"),
        Err(_) => tracing::warn!(%peer, stream = %stream.name, "rtmp publisher task failed"),
    }
    end
}

/// Relays a publishing connection's media until it ends.
async fn media(
    node: &Arc<Node>,
    c: &mut Conn,
    flv: &mut FlvIngest,
    stream_id: u32,
    tx: &mpsc::Sender<PublishChunk>,
    stop: &CancellationToken,
    stream: &crate::stream::Stream,
) -> End {
    let mut seen_in = c.session.stats().bytes_in;
    let mut seen = strom_media::flv::FlvStats::default();
    // The session held what came between `publish` and the answer: the
    // first round passes that on before reading more.
    let mut held = true;
    loop {
        let mut done = false;
        if !std::mem::take(&mut held) {
            let r = tokio::select! {
                _ = stop.cancelled() => return End::Done,
                r = c.read(node) => r,
            };
            done = match r {
                Err(kind) => return End::Error(kind),
                Ok(false) => true,
                Ok(true) => false,
            };
        }
        while let Some(ev) = c.session.poll_event() {
            match ev {
                ServerEvent::Media {
                    stream_id: id,
                    kind,
                    timestamp,
                    payload,
                } if id == stream_id => {
                    let kind = match kind {
                        MediaKind::Audio => TagKind::Audio,
                        MediaKind::Video => TagKind::Video,
                    };
                    flv.push(kind, timestamp, payload);
                }
                ServerEvent::Metadata { values, .. } => {
                    if let Some((v, a)) = expected_tracks(&values) {
                        flv.expect(v, a);
                    }
                }
                ServerEvent::Unpublished { stream_id: id } if id == stream_id => done = true,
                ServerEvent::PublishRequested { stream_id: id, .. } => {
                    let _ = c.session.reject_publish(
                        id,
                        "NetStream.Publish.BadName",
                        "one published stream per connection",
                    );
                }
                ServerEvent::PlayRequested { stream_id: id, .. } => {
                    let _ =
                        c.session
                            .reject_play(id, "NetStream.Play.StreamNotFound", "playback over RTMP is not served");
                }
                _ => {}
            }
        }
        if done {
            flv.finish();
        }
        let mut events = Vec::new();
        while let Some(e) = flv.pull() {
            events.push(e);
        }
        account_flv(node, stream, flv.stats(), &mut seen);
        let now_in = c.session.stats().bytes_in;
        let bytes = now_in.saturating_sub(seen_in) as usize;
        seen_in = now_in;
        let sent = tokio::select! {
            _ = stop.cancelled() => return End::Done,
            r = tx.send(PublishChunk::Events(events, bytes)) => r.is_ok(),
        };
        if !sent || done {
            return End::Done;
        }
        if let Err(e) = c.flush().await {
            return End::Error(e);
        }
    }
}

/// Counts what the FLV layer refused or dropped since `seen`: malformed and
/// unsupported tags into `strom_rtmp_errors_total{kind="bad_tag"|
/// "unsupported_codec"}`, frames without configuration or keyframe and
/// frames going back in time into the stream's dropped-frame counters. An
/// unsupported codec is logged once per publisher.
pub(crate) fn account_flv(
    node: &Node,
    stream: &crate::stream::Stream,
    now: &strom_media::flv::FlvStats,
    seen: &mut strom_media::flv::FlvStats,
) {
    if now == seen {
        return;
    }
    let bad = (now.bad_video_tags + now.bad_audio_tags).saturating_sub(seen.bad_video_tags + seen.bad_audio_tags);
    if bad > 0 {
        node.metrics
            .rtmp_errors
            .get_or_create(&KindLabel { kind: "bad_tag" })
            .inc_by(bad);
    }
    let unsupported = (now.unsupported_video_tags + now.unsupported_audio_tags)
        .saturating_sub(seen.unsupported_video_tags + seen.unsupported_audio_tags);
    if unsupported > 0 {
        node.metrics
            .rtmp_errors
            .get_or_create(&KindLabel {
                kind: "unsupported_codec",
            })
            .inc_by(unsupported);
    }
    for (was, is, kind) in [
        (seen.unsupported_video_codec, now.unsupported_video_codec, "video"),
        (seen.unsupported_audio_codec, now.unsupported_audio_codec, "audio"),
    ] {
        if let (None, Some(codec)) = (was, is) {
            tracing::warn!(stream = %stream.name, kind, codec, "publisher sends a codec strom does not carry: dropped");
        }
    }
    let m = &stream.metrics;
    m.dropped_wait_keyframe
        .inc_by((now.no_config + now.waiting_keyframe).saturating_sub(seen.no_config + seen.waiting_keyframe));
    m.dropped_timestamp
        .inc_by(now.repeated_timestamps.saturating_sub(seen.repeated_timestamps));
    *seen = now.clone();
}

/// Whether `onMetaData` announces video and audio: `(video, audio)` from
/// the presence of `videocodecid` and `audiocodecid`; `None` when it names
/// neither.
pub(crate) fn expected_tracks(values: &[Value]) -> Option<(bool, bool)> {
    for v in values {
        let props = match v {
            Value::Object(p) | Value::EcmaArray(p) => p,
            _ => continue,
        };
        let has = |k: &str| {
            props
                .iter()
                .any(|(name, v)| name == k && !matches!(v, Value::Null | Value::Undefined))
        };
        let (video, audio) = (has("videocodecid"), has("audiocodecid"));
        if video || audio {
            return Some((video, audio));
        }
    }
    None
}

/// The stream an RTMP publish names, and the query it carries: `APP/NAME`
/// when such a stream exists, else `NAME`; the app itself when the name is
/// empty. The name's query wins over the app's.
fn resolve_name(node: &Node, app: &str, name: &str) -> (String, Option<String>) {
    let (app, app_q) = split_query(app.trim_matches('/'));
    let (name, name_q) = split_query(name.trim_matches('/'));
    let query = name_q.or(app_q).map(str::to_owned);
    if name.is_empty() {
        return (app.to_owned(), query);
    }
    if !app.is_empty() {
        let full = format!("{app}/{name}");
        if node.stream(&full).is_some() {
            return (full, query);
        }
    }
    (name.to_owned(), query)
}

/// `a?b` → (`a`, `Some("b")`); an empty query is none.
fn split_query(s: &str) -> (&str, Option<&str>) {
    match s.split_once('?') {
        Some((a, q)) => (a, Some(q).filter(|q| !q.is_empty())),
        None => (s, None),
    }
}

//! SRT ingest: the `srt PORT;` listener, where encoders publish MPEG-TS
//! over SRT (live mode) to the stream their streamid names, and what the
//! caller input (`input srt://…`, [`crate::input::srt`]) shares with it.
//!
//! SRT is libsrt's ([`sys`], the crate's one FFI module, which opens the
//! library at run time: a node without it runs, and only its SRT listeners
//! and inputs fail, naming the package to install): its threads run the
//! protocol (handshake cookies, ARQ, TSBPD latency, AES). Here:
//! - **Streamid** ([`parse_streamid`], pure): the access-control syntax
//!   `#!::r=NAME,m=publish,…` (SRT Access Control guidelines) or a plain
//!   `NAME`, either with `?query` (the publish query: `password=…`).
//! - **Admission, in two steps.** libsrt asks a hook, on its own thread and
//!   before the handshake completes, whether to take a caller: the hook
//!   answers at once from what it knows without waiting (connection cap,
//!   streamid syntax and mode, the stream exists and takes publishers) and
//!   refuses with the access-control reject codes (1400 bad request, 1402
//!   overload, 1403 forbidden, 1404 not found, 1405 bad mode). libsrt then
//!   checks the passphrase. What needs waiting (`publish_password`,
//!   `on_publish`, a busy stream) is [`crate::ingest::admit`] and
//!   [`crate::ingest::Publisher::run`] after the connection is up: a refusal
//!   there closes it before any media is read.
//! - **Reading**: one thread per connection blocks in `srt_recvmsg` (at most
//!   500 ms at a time) and hands each message (up to 1456 bytes of TS) to
//!   the async side through a bounded channel ([`CHUNK_QUEUE`]); when that
//!   is full the thread waits and libsrt's receive buffer (bounded by its
//!   latency) absorbs or drops, so memory stays bounded.
//! - **Statistics** every second into the stream's metrics ([`Stats`]):
//!   RTT, receive buffer, and lost, retransmitted and too-late-dropped
//!   packets since the previous sample; the gauges go to 0 on disconnect.
//!
//! Every caller that reaches the hook or the accept queue is counted once
//! in `strom_srt_connections_total{result}`: `accepted` (it started
//! feeding the stream), a refusal (`limit`, `bad_streamid`,
//! `unknown_stream`, `not_publishable`, `unauthorized`, `busy`, …),
//! `encryption` (the hook let it in but libsrt refused it after: a wrong or
//! missing passphrase, or encryption the listener does not have), `error`.
//! Strangers' packets and handshakes that never complete cost nothing
//! lasting: libsrt answers an induction statelessly (SYN cookie).

pub(crate) mod sys;

use crate::ingest::{self, PublishRequest};
use crate::input::publish::{PublishChunk, PublishError};
use crate::metrics::{ResultLabel, StreamMetrics};
use crate::Node;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use strom_config::SrtListen;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most connections one listener serves at once; the hook refuses more
/// (1402, counted as `limit`).
pub const MAX_CONNECTIONS: usize = 256;
/// Handshakes libsrt queues for `accept` (`srt_listen` backlog).
const BACKLOG: u16 = 64;
/// Messages buffered between a connection's reader thread and its task.
pub const CHUNK_QUEUE: usize = 1024;
/// How often connection statistics are sampled.
pub const STATS_EVERY: Duration = Duration::from_secs(1);
/// Handshakes the hook let in whose outcome is still being watched (for
/// the `encryption` count); more are let in but not watched.
const MAX_WATCHED: usize = 1024;
/// After this, a handshake the hook let in but that never reached
/// `accept` is taken as refused by libsrt.
const HANDSHAKE_SETTLE: Duration = Duration::from_secs(1);

// Access-control reject codes (libsrt `access_control.h`, SRT_REJX_*).
const REJ_BAD_REQUEST: i32 = 1400;
const REJ_OVERLOAD: i32 = 1402;
const REJ_FORBIDDEN: i32 = 1403;
const REJ_NOT_FOUND: i32 = 1404;
const REJ_BAD_MODE: i32 = 1405;
const REJ_NOTSUP_MEDIA: i32 = 1415;
const REJ_DOWN: i32 = 1503;

/// What a caller asks for (`m` of the streamid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `m=publish`: the caller sends media (the only mode strom takes).
    Publish,
    /// `m=request` (the SRT default for `#!::` streamids): the caller wants
    /// to play.
    Request,
    /// `m=bidirectional`.
    Bidirectional,
}

/// A parsed SRT streamid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamId {
    /// The stream name (`r`, or the plain streamid), without its query.
    pub name: String,
    /// What followed the first `?` of the name (`password=…&token=…`),
    /// when not empty.
    pub query: Option<String>,
    /// `m`; [`Mode::Request`] when a `#!::` streamid has none (the SRT
    /// default), [`Mode::Publish`] for a plain name.
    pub mode: Mode,
    /// `u`: the user name.
    pub user: Option<String>,
    /// `h`: the host name the caller addressed.
    pub host: Option<String>,
    /// `s`: the session id.
    pub session: Option<String>,
    /// `t`: the type (`stream`, `file`, `auth`).
    pub kind: Option<String>,
    /// Any other `key=value` pairs, in order.
    pub other: Vec<(String, String)>,
}

/// Why a streamid is not understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    #[error("empty streamid")]
    Empty,
    #[error("streamid longer than 512 bytes")]
    TooLong,
    #[error("`#!` streamid without the `::` of the key=value syntax")]
    Syntax,
    #[error("streamid item without `key=`")]
    Pair,
    #[error("streamid key given twice")]
    DuplicateKey,
    #[error("streamid without `r` (resource)")]
    NoResource,
    #[error("empty stream name or one with control characters")]
    BadName,
    #[error("unknown `m` (mode): expected publish, request or bidirectional")]
    BadMode,
}

/// Parses an SRT streamid: `#!::` followed by comma-separated `key=value`
/// pairs (SRT Access Control guidelines: `r` resource, `m` mode, `u` user,
/// `h` host, `s` session, `t` type; others kept; empty items skipped), or
/// a plain stream name. Either name may carry `?query`. At most 512 bytes
/// (libsrt's limit); never panics.
pub fn parse_streamid(s: &str) -> Result<StreamId, StreamIdError> {
    if s.is_empty() {
        return Err(StreamIdError::Empty);
    }
    if s.len() > sys::MAX_STREAMID {
        return Err(StreamIdError::TooLong);
    }
    let Some(rest) = s.strip_prefix("#!") else {
        let (name, query) = split_name(s)?;
        return Ok(StreamId {
            name,
            query,
            mode: Mode::Publish,
            user: None,
            host: None,
            session: None,
            kind: None,
            other: Vec::new(),
        });
    };
    let pairs = rest.strip_prefix("::").ok_or(StreamIdError::Syntax)?;
    let mut resource = None;
    let mut mode = None;
    let (mut user, mut host, mut session, mut kind) = (None, None, None, None);
    let mut other: Vec<(String, String)> = Vec::new();
    for item in pairs.split(',').filter(|i| !i.is_empty()) {
        let (k, v) = item.split_once('=').ok_or(StreamIdError::Pair)?;
        if k.is_empty() {
            return Err(StreamIdError::Pair);
        }
        let slot = match k {
            "r" => &mut resource,
            "m" => &mut mode,
            "u" => &mut user,
            "h" => &mut host,
            "s" => &mut session,
            "t" => &mut kind,
            _ => {
                if other.iter().any(|(o, _)| o == k) {
                    return Err(StreamIdError::DuplicateKey);
                }
                other.push((k.to_owned(), v.to_owned()));
                continue;
            }
        };
        if slot.replace(v.to_owned()).is_some() {
            return Err(StreamIdError::DuplicateKey);
        }
    }
    let (name, query) = split_name(&resource.ok_or(StreamIdError::NoResource)?)?;
    let mode = match mode.as_deref() {
        None | Some("request") => Mode::Request,
        Some("publish") => Mode::Publish,
        Some("bidirectional") => Mode::Bidirectional,
        Some(_) => return Err(StreamIdError::BadMode),
    };
    Ok(StreamId {
        name,
        query,
        mode,
        user,
        host,
        session,
        kind,
        other,
    })
}

/// `NAME[?QUERY]` → name and non-empty query.
fn split_name(s: &str) -> Result<(String, Option<String>), StreamIdError> {
    let (name, query) = match s.split_once('?') {
        Some((n, q)) => (n, (!q.is_empty()).then(|| q.to_owned())),
        None => (s, None),
    };
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(StreamIdError::BadName);
    }
    Ok((name.to_owned(), query))
}

/// Counts one connection outcome on the node's SRT family.
fn count(node: &Node, result: &'static str) {
    node.metrics
        .srt_connections
        .get_or_create(&ResultLabel { result })
        .inc();
}

/// A listener bound to its UDP port, not yet taking callers.
pub struct Bound {
    listener: sys::Listener,
    addr: SocketAddr,
    passphrase: bool,
}

/// Binds `listen.addr` (UDP) with the listener's latency and passphrase,
/// so a node can report a port in use, or libsrt missing
/// ([`sys::Error::is_unavailable`]), at start-up.
pub fn bind(listen: &SrtListen) -> Result<Bound, sys::Error> {
    let listener = sys::Listener::bind(listen.addr, listen.latency, listen.passphrase.as_deref())?;
    Ok(Bound {
        listener,
        addr: listen.addr,
        passphrase: listen.passphrase.is_some(),
    })
}

/// Binds `listen` and serves callers until `cancel` (a bind failure is
/// logged and ends it).
pub async fn serve(node: Arc<Node>, listen: SrtListen, cancel: CancellationToken) {
    match bind(&listen) {
        Ok(b) => serve_on(node, b, cancel).await,
        Err(e) => tracing::error!(addr = %listen.addr, error = %e, "srt listener: cannot bind"),
    }
}

/// What the hook and the accept loop share.
struct Shared {
    /// Connections accepted and not yet ended.
    active: AtomicUsize,
    /// Handshakes the hook let in, by libsrt id, until accepted or settled.
    watched: Mutex<HashMap<sys::ConnId, Instant>>,
}

/// Serves callers on a bound listener until `cancel`; connections still
/// open then are closed.
pub async fn serve_on(node: Arc<Node>, bound: Bound, cancel: CancellationToken) {
    let Bound {
        listener,
        addr,
        passphrase,
    } = bound;
    let shared = Arc::new(Shared {
        active: AtomicUsize::new(0),
        watched: Mutex::new(HashMap::new()),
    });
    let hook = make_hook(Arc::downgrade(&node), shared.clone());
    if let Err(e) = listener.listen(hook, BACKLOG) {
        tracing::error!(%addr, error = %e, "srt listener: cannot listen");
        return;
    }
    tracing::info!(%addr, libsrt = %sys::version(), encrypted = passphrase, "srt listener up");
    let listener = Arc::new(listener);
    let (tx, mut rx) = mpsc::channel::<(sys::Socket, Option<SocketAddr>)>(16);
    let closed = Arc::new(AtomicBool::new(false));
    let accept_thread = {
        let (listener, shared, closed) = (listener.clone(), shared.clone(), closed.clone());
        std::thread::Builder::new()
            .name("srt-accept".into())
            .spawn(move || accept_loop(&listener, &shared, &closed, &tx))
    };
    if let Err(e) = accept_thread {
        tracing::error!(%addr, error = %e, "srt listener: cannot start its accept thread");
        return;
    }
    let mut sessions = tokio::task::JoinSet::new();
    let mut sweep = tokio::time::interval(Duration::from_millis(500));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            got = rx.recv() => {
                let Some((socket, peer)) = got else { break };
                shared.active.fetch_add(1, Ordering::Relaxed);
                let guard = ActiveGuard(shared.clone());
                sessions.spawn(session(node.clone(), socket, peer, cancel.child_token(), guard));
            }
            _ = sweep.tick() => settle_handshakes(&node, &shared),
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    closed.store(true, Ordering::Relaxed);
    listener.close();
    sessions.shutdown().await;
    tracing::info!(%addr, "srt listener down");
}

/// Releases a connection's place under [`MAX_CONNECTIONS`].
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The accept thread: hands every connection libsrt completed to the
/// listener's task, until the listener is closed.
fn accept_loop(
    listener: &sys::Listener,
    shared: &Shared,
    closed: &AtomicBool,
    tx: &mpsc::Sender<(sys::Socket, Option<SocketAddr>)>,
) {
    static ERRORS: crate::util::LogLimiter = crate::util::LogLimiter::new(Duration::from_secs(10));
    loop {
        match listener.accept() {
            Ok((socket, id, peer)) => {
                shared.watched.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                if tx.blocking_send((socket, peer)).is_err() {
                    return;
                }
            }
            Err(e) => {
                if closed.load(Ordering::Relaxed) || tx.is_closed() {
                    return;
                }
                if ERRORS.allow(Instant::now()).is_some() {
                    tracing::warn!(error = %e, "srt accept failed");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The hook libsrt runs on its thread for each caller's handshake.
fn make_hook(node: Weak<Node>, shared: Arc<Shared>) -> sys::Hook {
    Box::new(move |id, raw| {
        let Some(node) = node.upgrade() else {
            return Err(REJ_DOWN);
        };
        match precheck(&node, &shared, raw) {
            Ok(()) => {
                let mut w = shared.watched.lock().unwrap_or_else(|e| e.into_inner());
                if w.len() < MAX_WATCHED {
                    w.insert(id, Instant::now());
                }
                Ok(())
            }
            Err((code, result)) => {
                count(&node, result);
                static REFUSED: crate::util::LogLimiter = crate::util::LogLimiter::new(Duration::from_secs(5));
                if let Some(held) = REFUSED.allow(Instant::now()) {
                    tracing::info!(
                        streamid = %crate::util::peer_text(&String::from_utf8_lossy(raw)),
                        result,
                        code,
                        similar_held_back = held,
                        "srt caller refused"
                    );
                }
                Err(code)
            }
        }
    })
}

/// What the hook can tell without waiting: the reject code and the
/// counter's result label of a caller it refuses.
fn precheck(node: &Node, shared: &Shared, raw: &[u8]) -> Result<(), (i32, &'static str)> {
    if shared.active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
        return Err((REJ_OVERLOAD, "limit"));
    }
    let sid = std::str::from_utf8(raw)
        .ok()
        .and_then(|s| parse_streamid(s).ok())
        .ok_or((REJ_BAD_REQUEST, "bad_streamid"))?;
    if sid.mode != Mode::Publish {
        return Err((REJ_BAD_MODE, "bad_streamid"));
    }
    if sid.kind.as_deref().is_some_and(|t| t != "stream") {
        return Err((REJ_NOTSUP_MEDIA, "bad_streamid"));
    }
    let stream = lookup(node, &sid.name).ok_or((REJ_NOT_FOUND, "unknown_stream"))?;
    if stream.publish.is_none() {
        return Err((REJ_FORBIDDEN, "not_publishable"));
    }
    Ok(())
}

/// The stream a publisher's name means, found as [`ingest::admit`] finds it
/// (the name as the path of a publish request).
fn lookup(node: &Node, name: &str) -> Option<Arc<crate::stream::Stream>> {
    let path = format!("/{name}/publish");
    let r = crate::http::request::PlayRequest::parse(
        axum::http::Method::POST,
        &path,
        None,
        &axum::http::HeaderMap::new(),
        None,
    )
    .ok()?;
    node.stream(&r.name)
}

/// Handshakes the hook let in that never reached `accept` were refused by
/// libsrt after the hook: in practice their encryption (wrong or missing
/// passphrase, or one the listener does not expect).
fn settle_handshakes(node: &Node, shared: &Shared) {
    let now = Instant::now();
    let mut refused = 0u64;
    shared
        .watched
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|id, at| {
            let age = now.saturating_duration_since(*at);
            if age < HANDSHAKE_SETTLE {
                return true;
            }
            if sys::Listener::is_connected(*id) {
                // Connected, about to be accepted; stop watching later.
                return age < HANDSHAKE_SETTLE * 10;
            }
            refused += 1;
            false
        });
    if refused > 0 {
        node.metrics
            .srt_connections
            .get_or_create(&ResultLabel { result: "encryption" })
            .inc_by(refused);
        tracing::info!(
            refused,
            "srt callers refused in the handshake (passphrase or encryption mismatch)"
        );
    }
}

/// One accepted caller: admission, then its media into the stream.
async fn session(
    node: Arc<Node>,
    socket: sys::Socket,
    peer: Option<SocketAddr>,
    cancel: CancellationToken,
    _active: ActiveGuard,
) {
    let socket = Arc::new(socket);
    let _close = CloseOnDrop(socket.clone());
    let raw = socket.stream_id().unwrap_or_default();
    let shown = crate::util::peer_text(&String::from_utf8_lossy(&raw));
    let Some(sid) = std::str::from_utf8(&raw).ok().and_then(|s| parse_streamid(s).ok()) else {
        count(&node, "bad_streamid");
        return;
    };
    let peer = peer.or_else(|| socket.peer_addr().ok());
    let ip = peer.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |p| p.ip());
    let req = PublishRequest {
        name: &sid.name,
        query: sid.query.as_deref(),
        ip,
        proto: "srt",
    };
    let publisher = tokio::select! {
        _ = cancel.cancelled() => return,
        r = ingest::admit(&node, req) => r,
    };
    let publisher = match publisher {
        Ok(p) => p,
        Err(refusal) => {
            count(&node, refusal.result());
            tracing::info!(streamid = %shown, peer = ?peer, reason = refusal.describe(), "srt publisher refused");
            return;
        }
    };
    let metrics = publisher.stream().metrics.clone();
    let mut chunks = match spawn_reader(socket.clone()) {
        Ok(rx) => rx,
        Err(e) => {
            count(&node, "error");
            tracing::error!(error = %e, "srt: cannot start a reader thread");
            return;
        }
    };
    let started = Arc::new(AtomicBool::new(false));
    let source = {
        let (node, started) = (node.clone(), started.clone());
        futures_util::stream::poll_fn(move |cx| {
            if !started.swap(true, Ordering::Relaxed) {
                // The slot is ours: the publisher is feeding the stream.
                count(&node, "accepted");
            }
            chunks.poll_recv(cx).map(|c| c.map(PublishChunk::Ts))
        })
    };
    tracing::info!(stream = %sid.name, peer = ?peer, "srt publisher connected");
    let mut stats = Stats::new(metrics, Some(sid.name.clone()));
    let ended = tokio::select! {
        _ = cancel.cancelled() => None,
        r = publisher.run(source) => Some(r),
        _ = stats.run(&socket) => None,
    };
    stats.clear();
    match ended {
        Some(Err(PublishError::Busy)) if !started.load(Ordering::Relaxed) => {
            count(&node, "busy");
            tracing::info!(stream = %sid.name, peer = ?peer, "srt publisher refused: stream is already being published");
        }
        Some(Err(e)) if !started.load(Ordering::Relaxed) => {
            // Never fed the stream (its input stopped meanwhile).
            count(&node, "error");
            tracing::info!(stream = %sid.name, peer = ?peer, error = ?e, "srt publisher could not start");
        }
        Some(r) => tracing::info!(stream = %sid.name, peer = ?peer, result = ?r, "srt publisher gone"),
        None => {}
    }
}

/// Closes a connection when its task ends, however it ends (its reader
/// thread then stops).
pub(crate) struct CloseOnDrop(pub(crate) Arc<sys::Socket>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Starts the thread that reads `socket`'s messages into a bounded channel;
/// it ends when the connection breaks or closes, or the receiver is dropped.
pub(crate) fn spawn_reader(socket: Arc<sys::Socket>) -> std::io::Result<mpsc::Receiver<Bytes>> {
    let (tx, rx) = mpsc::channel::<Bytes>(CHUNK_QUEUE);
    std::thread::Builder::new().name("srt-recv".into()).spawn(move || {
        // A live-mode payload is at most 1456 bytes.
        let mut buf = [0u8; 1500];
        loop {
            match socket.recv(&mut buf) {
                Ok(0) => {}
                Ok(n) => {
                    if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                        break;
                    }
                }
                Err(e) if e.is_timeout() => {
                    if tx.is_closed() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        socket.close();
    })?;
    Ok(rx)
}

/// Ticks every [`STATS_EVERY`], the first one [`STATS_EVERY`] from now.
pub(crate) fn stats_interval() -> tokio::time::Interval {
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + STATS_EVERY, STATS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every
}

/// A connection's statistics, sampled into its stream's metrics.
pub(crate) struct Stats {
    metrics: StreamMetrics,
    /// For logs.
    stream: Option<String>,
    warned_latency: bool,
}

impl Stats {
    pub(crate) fn new(metrics: StreamMetrics, stream: Option<String>) -> Stats {
        Stats {
            metrics,
            stream,
            warned_latency: false,
        }
    }

    /// Samples `socket` every [`STATS_EVERY`]; never returns (cancel it by
    /// dropping).
    pub(crate) async fn run(&mut self, socket: &sys::Socket) {
        let mut every = stats_interval();
        loop {
            every.tick().await;
            self.sample(socket);
        }
    }

    /// Takes one sample of `socket` (a closed one gives none).
    pub(crate) fn sample(&mut self, socket: &sys::Socket) {
        if let Ok(s) = socket.sample() {
            self.record(&s);
        }
    }

    /// Writes one sample: gauges set, counters advanced by its counts.
    pub(crate) fn record(&mut self, s: &sys::Sample) {
        let m = &self.metrics;
        m.srt_rtt_seconds.set(s.rtt.as_secs_f64());
        m.srt_receive_buffer_seconds.set(s.receive_buffer.as_secs_f64());
        m.srt_packets_lost.inc_by(s.lost);
        m.srt_packets_retransmitted.inc_by(s.retransmitted);
        m.srt_packets_dropped.inc_by(s.dropped);
        // Retransmissions need a few round trips inside the latency; SRT's
        // own advice is a latency of at least 4 × RTT.
        if !self.warned_latency && !s.latency.is_zero() && s.rtt * 4 > s.latency {
            self.warned_latency = true;
            tracing::warn!(
                stream = self.stream.as_deref().unwrap_or(""),
                rtt_ms = s.rtt.as_millis() as u64,
                latency_ms = s.latency.as_millis() as u64,
                "srt latency below 4 × RTT: lost packets may not be recovered in time (raise latency)"
            );
        }
    }

    /// The connection is gone: the gauges read 0.
    pub(crate) fn clear(&self) {
        self.metrics.srt_rtt_seconds.set(0.0);
        self.metrics.srt_receive_buffer_seconds.set(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn access_control_syntax() {
        let s = parse_streamid("#!::r=live/cam1?password=x=y,m=publish,u=bob,s=42,h=example.org,t=stream,x=1")
            .expect("valid streamid");
        assert_eq!(s.name, "live/cam1");
        assert_eq!(s.query.as_deref(), Some("password=x=y"));
        assert_eq!(s.mode, Mode::Publish);
        assert_eq!(s.user.as_deref(), Some("bob"));
        assert_eq!(s.session.as_deref(), Some("42"));
        assert_eq!(s.host.as_deref(), Some("example.org"));
        assert_eq!(s.kind.as_deref(), Some("stream"));
        assert_eq!(s.other, vec![("x".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn modes() {
        assert_eq!(
            parse_streamid("#!::m=publish,r=a").expect("valid streamid").mode,
            Mode::Publish
        );
        assert_eq!(
            parse_streamid("#!::r=a,m=request").expect("valid streamid").mode,
            Mode::Request
        );
        // The SRT default for the key=value syntax is request.
        assert_eq!(parse_streamid("#!::r=a").expect("valid streamid").mode, Mode::Request);
        assert_eq!(
            parse_streamid("#!::r=a,m=bidirectional").expect("valid streamid").mode,
            Mode::Bidirectional
        );
        assert_eq!(parse_streamid("#!::r=a,m=play"), Err(StreamIdError::BadMode));
    }

    #[test]
    fn plain_names_publish() {
        let s = parse_streamid("cam1").expect("valid streamid");
        assert_eq!((s.name.as_str(), s.query, s.mode), ("cam1", None, Mode::Publish));
        let s = parse_streamid("live/cam1?password=secret").expect("valid streamid");
        assert_eq!(s.name, "live/cam1");
        assert_eq!(s.query.as_deref(), Some("password=secret"));
        // An empty query is no query.
        assert_eq!(parse_streamid("cam?").expect("valid streamid").query, None);
    }

    #[test]
    fn refusals() {
        assert_eq!(parse_streamid(""), Err(StreamIdError::Empty));
        assert_eq!(parse_streamid(&"a".repeat(513)), Err(StreamIdError::TooLong));
        assert!(parse_streamid(&"a".repeat(512)).is_ok());
        assert_eq!(parse_streamid("#!r=a"), Err(StreamIdError::Syntax));
        assert_eq!(parse_streamid("#!::m=publish"), Err(StreamIdError::NoResource));
        assert_eq!(
            parse_streamid("#!::r=a,m=publish,r=b"),
            Err(StreamIdError::DuplicateKey)
        );
        assert_eq!(parse_streamid("#!::r=a,x=1,x=2"), Err(StreamIdError::DuplicateKey));
        assert_eq!(parse_streamid("#!::r=a,publish"), Err(StreamIdError::Pair));
        assert_eq!(parse_streamid("#!::=a,r=b"), Err(StreamIdError::Pair));
        assert_eq!(parse_streamid("#!::r=,m=publish"), Err(StreamIdError::BadName));
        assert_eq!(
            parse_streamid("#!::r=?password=x,m=publish"),
            Err(StreamIdError::BadName)
        );
        assert_eq!(parse_streamid("a\nb"), Err(StreamIdError::BadName));
        // Empty items (a trailing comma) are skipped.
        assert_eq!(parse_streamid("#!::r=a,,m=publish,").expect("valid streamid").name, "a");
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_./-]{1,40}"
    }

    fn query() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[a-z]{1,8}=[a-zA-Z0-9=&%]{0,20}")
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,600}") {
            let _ = parse_streamid(&s);
        }

        #[test]
        fn never_panics_on_key_value_noise(s in "#!::[a-z=,?&]{0,80}") {
            if let Ok(id) = parse_streamid(&s) {
                prop_assert!(!id.name.is_empty());
            }
        }

        #[test]
        fn key_value_round_trip(n in name(), q in query(), user in proptest::option::of("[a-z]{1,10}"), mode_first in any::<bool>()) {
            let r = match &q { Some(q) => format!("{n}?{q}"), None => n.clone() };
            let mut items = vec![format!("r={r}")];
            if let Some(u) = &user { items.push(format!("u={u}")); }
            if mode_first { items.insert(0, "m=publish".into()) } else { items.push("m=publish".into()) }
            let s = parse_streamid(&format!("#!::{}", items.join(","))).expect("valid streamid");
            prop_assert_eq!(s.name, n);
            prop_assert_eq!(s.query, q);
            prop_assert_eq!(s.mode, Mode::Publish);
            prop_assert_eq!(s.user, user);
        }

        #[test]
        fn plain_round_trip(n in name(), q in query()) {
            let text = match &q { Some(q) => format!("{n}?{q}"), None => n.clone() };
            let s = parse_streamid(&text).expect("valid streamid");
            prop_assert_eq!(s.name, n);
            prop_assert_eq!(s.query, q);
            prop_assert_eq!(s.mode, Mode::Publish);
        }
    }
}

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
//!   answers at once from what it knows without waiting and refuses with
//!   the access-control reject codes (SRT Access Control guidelines,
//!   libsrt `access_control.h`), so the caller never sees a connection:
//!   1400 bad request (streamid syntax), 1405 bad mode, 1415 unsupported
//!   type, 1404 not found, 1403 forbidden (no `publish://` input),
//!   1401 unauthorized (the stream has a `publish_password`, no `on_publish`
//!   of its own or global, and the streamid's query has no or a wrong
//!   `password=`; compared in constant time), 1409 conflict (the stream's
//!   publisher is still sending: [`crate::input::publish::PublishSlot::busy`]),
//!   1402 overload (the connection cap). A wrong password is answered by
//!   the hook only within a budget ([`FAST_DENIALS_PER_SEC`]); past it, and
//!   for streams with `on_publish`, the caller goes on to the async step,
//!   which limits guesses per address: answering in the hook never makes
//!   password guessing faster. A stream whose password the hook could not
//!   check is not reported busy to a caller that may not publish. libsrt
//!   then checks the passphrase. [`crate::ingest::admit`] and
//!   [`crate::ingest::Publisher::claim`] after the connection is up stay
//!   the final authority (`on_publish`, per-address limits, a slot taken
//!   meanwhile): a refusal there closes the connection before any media is
//!   read ([`REFUSED_CLOSE_DELAY`] after `accept`, so the caller learns of
//!   it at once).
//! - **Connection cap** ([`MAX_CONNECTIONS`], 128 per listener): libsrt
//!   allocates per connection, once the hook let it in, ~480 KB of
//!   bookkeeping with strom's window and buffer
//!   ([`sys::FLOW_WINDOW_PACKETS`]; ~760 KB with libsrt's defaults), so
//!   128 callers cost ~60 MiB before they send anything. The cap counts
//!   accepted connections and handshakes the hook let in that libsrt has
//!   not settled yet. libsrt sizes these structures when the handshake
//!   completes and cannot shrink them later, so there is no cheaper state
//!   for a caller not yet admitted. The media a connection holds inside
//!   libsrt comes on top: normally its latency's worth, at most the
//!   receive buffer (8192 packets, ~12 MB) for one that is not read (while
//!   `on_publish` is asked) or that stalls the stream's input.
//! - **Reading**: one thread per connection blocks in `srt_recvmsg` (at most
//!   500 ms at a time) and hands each message (up to 1456 bytes of TS) to
//!   the async side through a bounded channel ([`CHUNK_QUEUE`]); when that
//!   is full the thread waits and libsrt's receive buffer (bounded by its
//!   latency and [`sys::FLOW_WINDOW_PACKETS`]) absorbs or drops, so memory
//!   stays bounded.
//! - **UDP receive buffer**: [`sys::UDP_RECEIVE_BUFFER`] (16 MiB) for the
//!   listener's socket, shared by all its connections, and each caller
//!   input's, so a flood's bursts wait in the kernel rather than push out
//!   the publishers' packets; the kernel caps it at `net.core.rmem_max`,
//!   which is logged once. libsrt 1.5 counts nothing for packets from
//!   unknown peers or unknown socket ids (they are answered or dropped
//!   inside its receiver thread, without a statistic), so strom cannot
//!   export such a count; what a flood costs shows as the publishers' lost
//!   and dropped packets.
//! - **Statistics** every second into the stream's metrics ([`Stats`]):
//!   RTT, receive buffer, and lost, retransmitted and too-late-dropped
//!   packets since the previous sample; the gauges go to 0 on disconnect.
//!
//! Every caller that reaches the hook or the accept queue is counted once
//! in `strom_srt_connections_total{result}`: `accepted` (it took the
//! stream's publisher slot), a refusal (`limit`, `bad_streamid`,
//! `unknown_stream`, `not_publishable`, `unauthorized`, `busy`, …),
//! `encryption` (the hook let it in but libsrt refused it after: a wrong or
//! missing passphrase, or encryption the listener does not have), `error`.
//! Log lines: one when an accepted publisher starts and one when it ends;
//! refusals and errors at most once per [`REFUSAL_LOG_EVERY`] each, with
//! how many were held back, so a crowd of callers cannot flood the log.
//! Strangers' packets and handshakes that never complete cost nothing
//! lasting: libsrt answers an induction statelessly (SYN cookie).

pub(crate) mod sys;

use crate::ingest::{self, PublishRequest};
use crate::input::publish::PublishChunk;
use crate::metrics::{ResultLabel, StreamMetrics};
use crate::Node;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use strom_config::SrtListen;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most connections one listener holds at once, accepted or with a
/// handshake the hook let in and libsrt has not settled; the hook refuses
/// more (1402, counted as `limit`). 128 × ~480 KB inside libsrt ≈ 60 MiB
/// (see the module docs).
pub const MAX_CONNECTIONS: usize = 128;
/// Handshakes libsrt queues for `accept` (`srt_listen` backlog).
const BACKLOG: u16 = 64;
/// Messages buffered between a connection's reader thread and its task.
pub const CHUNK_QUEUE: usize = 1024;
/// How often connection statistics are sampled.
pub const STATS_EVERY: Duration = Duration::from_secs(1);
/// libsrt finishes a handshake (passphrase included) on its receiver
/// thread right after the hook returns; one the hook let in that is not
/// connected this long after is taken as refused by libsrt (`encryption`)
/// and stops counting against [`MAX_CONNECTIONS`].
const HANDSHAKE_SETTLE: Duration = Duration::from_millis(250);
/// A connected handshake not accepted within this stops being watched.
const ACCEPT_SETTLE: Duration = Duration::from_secs(5);
/// How long a connection refused after `accept` stays open before it is
/// closed: libsrt 1.5.1 drops a shutdown that reaches a caller within a
/// few milliseconds of its handshake (the caller then sees the connection
/// up until its 5 s peer-idle timeout); closing a little later tells it
/// at once.
pub const REFUSED_CLOSE_DELAY: Duration = Duration::from_millis(100);
/// At most one refusal (or error) line per this, per kind.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// Wrong `publish_password`s the hook refuses itself, per second (over
/// all callers of a listener), and at once ([`FAST_DENIALS_BURST`]);
/// beyond, callers go to [`ingest::admit`], which limits attempts per
/// address.
pub const FAST_DENIALS_PER_SEC: f64 = 5.0;
/// See [`FAST_DENIALS_PER_SEC`].
pub const FAST_DENIALS_BURST: f64 = 20.0;

// Access-control reject codes (libsrt `access_control.h`, SRT_REJX_*).
const REJ_BAD_REQUEST: i32 = 1400;
const REJ_UNAUTHORIZED: i32 = 1401;
const REJ_OVERLOAD: i32 = 1402;
const REJ_FORBIDDEN: i32 = 1403;
const REJ_NOT_FOUND: i32 = 1404;
const REJ_BAD_MODE: i32 = 1405;
const REJ_CONFLICT: i32 = 1409;
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

/// What the hook, the accept thread and the listener's task share.
struct Shared {
    /// Connections accepted and not yet ended.
    active: AtomicUsize,
    /// Handshakes the hook let in, by libsrt id, until accepted or settled
    /// (fewer than [`MAX_CONNECTIONS`] with `active`).
    watched: Mutex<HashMap<sys::ConnId, Instant>>,
    /// The hook's budget of `unauthorized` answers.
    denials: Mutex<DenialBudget>,
    /// Handshakes refused by libsrt after the hook and not logged yet.
    unlogged_encryption: AtomicU64,
}

/// A token bucket of the wrong passwords the hook may refuse itself:
/// [`FAST_DENIALS_PER_SEC`], up to [`FAST_DENIALS_BURST`] at once. Pure:
/// takes `now`.
#[derive(Debug)]
struct DenialBudget {
    tokens: f64,
    at: Option<Instant>,
}

impl DenialBudget {
    fn new() -> DenialBudget {
        DenialBudget {
            tokens: FAST_DENIALS_BURST,
            at: None,
        }
    }

    /// Takes one answer at `now`; false when the budget is spent.
    fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * FAST_DENIALS_PER_SEC;
            self.tokens = (self.tokens + refill).min(FAST_DENIALS_BURST);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Shared {
    fn new() -> Shared {
        Shared {
            active: AtomicUsize::new(0),
            watched: Mutex::new(HashMap::new()),
            denials: Mutex::new(DenialBudget::new()),
            unlogged_encryption: AtomicU64::new(0),
        }
    }

    fn watched(&self) -> std::sync::MutexGuard<'_, HashMap<sys::ConnId, Instant>> {
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Refusals of callers, from the hook and from sessions.
static REFUSED: crate::util::LogLimiter = crate::util::LogLimiter::new(REFUSAL_LOG_EVERY);
/// Failures on the listener's side (a reader thread that cannot start).
static FAILED: crate::util::LogLimiter = crate::util::LogLimiter::new(REFUSAL_LOG_EVERY);
/// Handshakes refused by libsrt after the hook.
static ENCRYPTION: crate::util::LogLimiter = crate::util::LogLimiter::new(REFUSAL_LOG_EVERY);

/// Logs a refused caller: at most one line per [`REFUSAL_LOG_EVERY`], the
/// next one saying how many were held back. `streamid` is the caller's
/// text, escaped here.
fn log_refusal(streamid: &[u8], peer: Option<SocketAddr>, result: &'static str, code: Option<i32>) {
    if let Some(held) = REFUSED.allow(Instant::now()) {
        tracing::info!(
            streamid = %crate::util::peer_text(&crate::util::redact_secrets(&String::from_utf8_lossy(streamid))),
            peer = %peer.map(|p| p.to_string()).unwrap_or_default(),
            result,
            code,
            similar_held_back = held,
            "srt caller refused"
        );
    }
}

/// Serves callers on a bound listener until `cancel`; connections still
/// open then are closed.
pub async fn serve_on(node: Arc<Node>, bound: Bound, cancel: CancellationToken) {
    let Bound {
        listener,
        addr,
        passphrase,
    } = bound;
    let shared = Arc::new(Shared::new());
    let hook = make_hook(Arc::downgrade(&node), shared.clone());
    if let Err(e) = listener.listen(hook, BACKLOG) {
        tracing::error!(%addr, error = %e, "srt listener: cannot listen");
        return;
    }
    tracing::info!(%addr, libsrt = %sys::version(), encrypted = passphrase, "srt listener up");
    let listener = Arc::new(listener);
    let (tx, mut rx) = mpsc::channel::<Accepted>(16);
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
    let mut sweep = tokio::time::interval(HANDSHAKE_SETTLE);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            got = rx.recv() => {
                let Some(accepted) = got else { break };
                sessions.spawn(session(node.clone(), accepted, cancel.child_token()));
            }
            _ = sweep.tick() => settle_handshakes(&node, &shared, Instant::now()),
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    closed.store(true, Ordering::Relaxed);
    listener.close();
    sessions.shutdown().await;
    tracing::info!(%addr, "srt listener down");
}

/// Holds a connection's place under [`MAX_CONNECTIONS`] from `accept` to
/// the end of its session.
struct ActiveGuard(Arc<Shared>);

impl ActiveGuard {
    fn new(shared: &Arc<Shared>) -> ActiveGuard {
        shared.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(shared.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection libsrt completed, on its way to its session.
struct Accepted {
    socket: sys::Socket,
    peer: Option<SocketAddr>,
    _active: ActiveGuard,
}

/// The accept thread: hands every connection libsrt completed to the
/// listener's task, until the listener is closed. A connection counts as
/// active before it stops being watched, so the cap never loses sight of it.
fn accept_loop(listener: &sys::Listener, shared: &Arc<Shared>, closed: &AtomicBool, tx: &mpsc::Sender<Accepted>) {
    loop {
        match listener.accept() {
            Ok((socket, id, peer)) => {
                let active = ActiveGuard::new(shared);
                shared.watched().remove(&id);
                let accepted = Accepted {
                    socket,
                    peer,
                    _active: active,
                };
                if tx.blocking_send(accepted).is_err() {
                    return;
                }
            }
            Err(e) => {
                if closed.load(Ordering::Relaxed) || tx.is_closed() {
                    return;
                }
                if let Some(held) = FAILED.allow(Instant::now()) {
                    tracing::warn!(error = %e, similar_held_back = held, "srt accept failed");
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
        let now = Instant::now();
        let verdict = precheck(&node, &shared, raw, now).and_then(|()| {
            // Checked and inserted under one lock; the accept thread counts
            // a connection active before it leaves `watched`, so none is
            // missed.
            let mut watched = shared.watched();
            if shared.active.load(Ordering::Relaxed) + watched.len() >= MAX_CONNECTIONS {
                return Err((REJ_OVERLOAD, "limit"));
            }
            watched.insert(id, now);
            Ok(())
        });
        verdict.map_err(|(code, result)| {
            count(&node, result);
            log_refusal(raw, None, result, Some(code));
            code
        })
    })
}

/// What the hook can tell without waiting: the reject code and the
/// counter's result label of a caller it refuses (the connection cap
/// aside). `now` is for the denial budget.
fn precheck(node: &Node, shared: &Shared, raw: &[u8], now: Instant) -> Result<(), (i32, &'static str)> {
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
    let Some(slot) = stream.publish.as_ref() else {
        return Err((REJ_FORBIDDEN, "not_publishable"));
    };
    let cfg = stream.cfg();
    if cfg.publish_password.is_some() {
        if cfg.on_publish.is_some() || node.config.on_publish.is_some() {
            // `on_publish` may be asked too: all of it is admit's.
            return Ok(());
        }
        if !crate::access::publish_password_ok(cfg, sid.query.as_deref()) {
            let answer = shared.denials.lock().unwrap_or_else(|e| e.into_inner()).take(now);
            return if answer {
                Err((REJ_UNAUTHORIZED, "unauthorized"))
            } else {
                // Over the budget: admit refuses it, limited per address.
                Ok(())
            };
        }
    }
    if slot.busy() {
        return Err((REJ_CONFLICT, "busy"));
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

/// Handshakes the hook let in that are not connected [`HANDSHAKE_SETTLE`]
/// later were refused by libsrt after the hook: in practice their
/// encryption (wrong or missing passphrase, or one the listener does not
/// expect). Counted, logged at most once per [`REFUSAL_LOG_EVERY`], and no
/// longer held against the cap.
fn settle_handshakes(node: &Node, shared: &Shared, now: Instant) {
    let mut refused = 0u64;
    shared.watched().retain(|id, at| {
        let age = now.saturating_duration_since(*at);
        if age < HANDSHAKE_SETTLE {
            return true;
        }
        if sys::Listener::is_connected(*id) {
            // Connected, about to be accepted.
            return age < ACCEPT_SETTLE;
        }
        refused += 1;
        false
    });
    if refused == 0 {
        return;
    }
    node.metrics
        .srt_connections
        .get_or_create(&ResultLabel { result: "encryption" })
        .inc_by(refused);
    let unlogged = shared.unlogged_encryption.fetch_add(refused, Ordering::Relaxed) + refused;
    if ENCRYPTION.allow(now).is_some() {
        shared.unlogged_encryption.fetch_sub(unlogged, Ordering::Relaxed);
        tracing::info!(
            refused = unlogged,
            "srt callers refused in the handshake (passphrase or encryption mismatch)"
        );
    }
}

/// One accepted caller: admission, the stream's publisher slot, then its
/// media into the stream.
async fn session(node: Arc<Node>, accepted: Accepted, cancel: CancellationToken) {
    // `_active` holds the connection's place under the cap to the end.
    let Accepted { socket, peer, _active } = accepted;
    let socket = Arc::new(socket);
    let _close = CloseOnDrop(socket.clone());
    let raw = socket.stream_id().unwrap_or_default();
    let peer = peer.or_else(|| socket.peer_addr().ok());
    let Some(sid) = std::str::from_utf8(&raw).ok().and_then(|s| parse_streamid(s).ok()) else {
        count(&node, "bad_streamid");
        log_refusal(&raw, peer, "bad_streamid", None);
        close_soon(&cancel).await;
        return;
    };
    let ip = peer.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |p| p.ip());
    let req = PublishRequest {
        name: &sid.name,
        query: sid.query.as_deref(),
        ip,
        proto: "srt",
    };
    let claimed = tokio::select! {
        _ = cancel.cancelled() => return,
        r = async { ingest::admit(&node, req).await?.claim().await } => r,
    };
    let claimed = match claimed {
        Ok(c) => c,
        Err(refusal) => {
            count(&node, refusal.result());
            log_refusal(&raw, peer, refusal.result(), None);
            close_soon(&cancel).await;
            return;
        }
    };
    let metrics = claimed.stream().metrics.clone();
    let mut chunks = match spawn_reader(socket.clone()) {
        Ok(rx) => rx,
        Err(e) => {
            count(&node, "error");
            if let Some(held) = FAILED.allow(Instant::now()) {
                tracing::error!(error = %e, similar_held_back = held, "srt: cannot start a reader thread");
            }
            return;
        }
    };
    // The slot is ours: the publisher feeds the stream from now on.
    count(&node, "accepted");
    tracing::info!(stream = %sid.name, peer = %peer.map(|p| p.to_string()).unwrap_or_default(), "srt publisher connected");
    let source = futures_util::stream::poll_fn(move |cx| chunks.poll_recv(cx).map(|c| c.map(PublishChunk::Ts)));
    let mut stats = Stats::new(metrics, Some(sid.name.clone()));
    let ended = tokio::select! {
        _ = cancel.cancelled() => None,
        r = claimed.run(source) => Some(r),
        _ = stats.run(&socket) => None,
    };
    stats.clear();
    match ended {
        Some(Ok(bytes)) => {
            tracing::info!(stream = %sid.name, peer = %peer.map(|p| p.to_string()).unwrap_or_default(), bytes, "srt publisher gone")
        }
        Some(Err(e)) => {
            tracing::info!(stream = %sid.name, peer = %peer.map(|p| p.to_string()).unwrap_or_default(), reason = e.describe(), "srt publisher cut off")
        }
        None => {}
    }
}

/// Waits [`REFUSED_CLOSE_DELAY`] (or until `cancel`) before a refused
/// connection is closed.
async fn close_soon(cancel: &CancellationToken) {
    let _ = crate::util::sleep_or_cancel(cancel, REFUSED_CLOSE_DELAY).await;
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

    fn node(text: &str) -> Arc<Node> {
        let cfg = strom_config::parse("t.conf", text).expect("config");
        Node::new(&cfg, CancellationToken::new())
    }

    const STREAMS: &str = "stream cam { input publish://; }\n\
        stream pw { input publish://; publish_password s3cret; }\n\
        stream asked { input publish://; publish_password s3cret; on_publish http://127.0.0.1:9/; }\n\
        stream pulled { input udp://239.0.0.1:1234; }\n";

    fn counted(node: &Node, result: &'static str) -> u64 {
        node.metrics
            .srt_connections
            .get_or_create(&ResultLabel { result })
            .get()
    }

    #[test]
    fn the_hook_answers_what_it_can_tell_with_its_reject_code() {
        let n = node(STREAMS);
        let shared = Shared::new();
        let now = Instant::now();
        let check = |sid: &str| precheck(&n, &shared, sid.as_bytes(), now);
        assert_eq!(check("cam"), Ok(()));
        assert_eq!(check("#!::r=cam,m=publish,t=stream"), Ok(()));
        assert_eq!(check("#!r=cam"), Err((1400, "bad_streamid")));
        assert_eq!(
            check("#!::r=cam"),
            Err((1405, "bad_streamid")),
            "request is the default mode"
        );
        assert_eq!(check("#!::r=cam,m=publish,t=file"), Err((1415, "bad_streamid")));
        assert_eq!(check("nosuch"), Err((1404, "unknown_stream")));
        assert_eq!(check("pulled"), Err((1403, "not_publishable")));
        // publish_password without on_publish: checked here.
        assert_eq!(check("pw"), Err((1401, "unauthorized")));
        assert_eq!(check("pw?password=wrong"), Err((1401, "unauthorized")));
        assert_eq!(check("pw?password=s3cre"), Err((1401, "unauthorized")));
        assert_eq!(check("pw?token=s3cret"), Err((1401, "unauthorized")));
        assert_eq!(check("pw?password=s3cret"), Ok(()));
        assert_eq!(check("#!::r=pw?password=s3cret&token=x,m=publish"), Ok(()));
        // With on_publish, all of it is admit's.
        assert_eq!(check("asked"), Ok(()));
        assert_eq!(check("asked?password=wrong"), Ok(()));
        // A global on_publish counts too.
        let g = node(&format!("on_publish http://127.0.0.1:9/;\n{STREAMS}"));
        assert_eq!(precheck(&g, &shared, b"pw?password=wrong", now), Ok(()));
        // An idle stream is not busy.
        assert_eq!(check("cam"), Ok(()));
    }

    #[test]
    fn wrong_passwords_past_the_budget_go_on_to_admit() {
        let n = node(STREAMS);
        let shared = Shared::new();
        let t0 = Instant::now();
        let burst = FAST_DENIALS_BURST as usize;
        for i in 0..burst {
            assert_eq!(
                precheck(&n, &shared, b"pw?password=guess", t0),
                Err((1401, "unauthorized")),
                "guess {i}"
            );
        }
        // Spent: not answered here (admit refuses it, limited per address).
        assert_eq!(precheck(&n, &shared, b"pw?password=guess", t0), Ok(()));
        // The right password is never held up by the budget.
        assert_eq!(precheck(&n, &shared, b"pw?password=s3cret", t0), Ok(()));
        // One second refills FAST_DENIALS_PER_SEC answers.
        let t1 = t0 + Duration::from_secs(1);
        let answered = (0..burst)
            .filter(|_| precheck(&n, &shared, b"pw?password=guess", t1).is_err())
            .count();
        assert_eq!(answered, FAST_DENIALS_PER_SEC as usize);
        // Idle for long: a full burst again, never more.
        let t2 = t1 + Duration::from_secs(3600);
        let answered = (0..burst * 2)
            .filter(|_| precheck(&n, &shared, b"pw?password=guess", t2).is_err())
            .count();
        assert_eq!(answered, burst);
    }

    #[test]
    fn the_cap_counts_handshakes_let_in_until_libsrt_settles_them() {
        let n = node(STREAMS);
        let shared = Arc::new(Shared::new());
        let hook = make_hook(Arc::downgrade(&n), shared.clone());
        for i in 0..MAX_CONNECTIONS {
            assert_eq!(
                hook(sys::ConnId::for_test(1000 + i as i32), b"cam"),
                Ok(()),
                "caller {i}"
            );
        }
        assert_eq!(hook(sys::ConnId::for_test(5000), b"cam"), Err(1402));
        assert_eq!(counted(&n, "limit"), 1);
        // Refusals other than the cap are counted by their result.
        assert_eq!(hook(sys::ConnId::for_test(5001), b"nosuch"), Err(1404));
        assert_eq!(counted(&n, "unknown_stream"), 1);
        // None of the ids is a connection libsrt completed: once settled,
        // they were refused by libsrt (counted as `encryption`) and free
        // their places.
        settle_handshakes(&n, &shared, Instant::now());
        assert_eq!(shared.watched().len(), MAX_CONNECTIONS, "too young to settle");
        settle_handshakes(&n, &shared, Instant::now() + HANDSHAKE_SETTLE);
        assert!(shared.watched().is_empty());
        assert_eq!(counted(&n, "encryption"), MAX_CONNECTIONS as u64);
        assert_eq!(hook(sys::ConnId::for_test(5002), b"cam"), Ok(()));
        // Accepted connections hold places until their sessions end.
        let held: Vec<ActiveGuard> = (1..MAX_CONNECTIONS).map(|_| ActiveGuard::new(&shared)).collect();
        assert_eq!(hook(sys::ConnId::for_test(5003), b"cam"), Err(1402));
        drop(held);
        assert_eq!(hook(sys::ConnId::for_test(5004), b"cam"), Ok(()));
        // A node that is gone answers "unavailable".
        drop(n);
        assert_eq!(hook(sys::ConnId::for_test(5005), b"cam"), Err(1503));
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

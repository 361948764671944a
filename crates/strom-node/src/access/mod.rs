//! Access control for viewers and publishers: play authorization
//! (Flussonic's `on_play` backend contract and signed links), the decision
//! cache, and viewer sessions (REFERENCE "Play authorization", issue 11).
//!
//! - [`backend`]: the backend's request URL and what its answers mean (pure);
//! - [`signed`]: signed links (`token_secret`, pure);
//! - [`table`]: decisions, sessions, limits and user caps (pure, `now` in);
//! - this module: [`Access`], the tokio glue: it asks the backend (one call
//!   per identity at a time, bounded in time and in number), re-asks every
//!   session when its decision is due, closes the HTTP-TS connections of
//!   sessions that end, and counts everything.
//!
//! Invariants:
//! - only a playlist or an HTTP-TS request can call the backend; a segment
//!   is checked against memory only;
//! - playback never waits on a repeat (`update_session`): the session keeps
//!   playing while it is asked about in the background;
//! - a backend that is slow, down or hostile costs at most its timeout on a
//!   new session and nothing on a granted one.

pub mod backend;
pub mod signed;
pub mod table;

use crate::http::request::{PlayRequest, Resource};
use crate::metrics::{ActionLabel, Metrics, ReasonLabel, ResultLabel};
use crate::stream::Stream;
use backend::{ErrorKind, Grant, Outcome, Query, RequestType};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strom_config::{AuthBackend, Config, StreamConfig};
use table::{Closed, Identity, Limits, Opening, Proto, SessionId, Table, Verdict};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

/// Decision lifetime without a backend (signed links, kicks), as the
/// `cache` default of `on_play`.
pub const DEFAULT_CACHE: Duration = Duration::from_secs(30);
/// New-session calls in flight at once, per backend URL.
pub const MAX_NEW_CALLS: usize = 192;
/// `update_session` calls in flight at once, per backend URL: repeats
/// never take the room new viewers need.
pub const MAX_UPDATE_CALLS: usize = 64;
/// A repeat that found no room is tried again this soon.
const POSTPONE: Duration = Duration::from_secs(1);

/// The call budget of one backend URL.
#[derive(Debug)]
struct Budget {
    new: Semaphore,
    updates: Semaphore,
}

/// Which budget a call takes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallKind {
    New,
    Update,
}
/// The query parameter that carries the session id in child URIs.
pub const SID_PARAM: &str = "sid";
/// The longest token carried into child URIs; on an authorized stream a
/// longer one is refused (403), since its segments could not be checked.
pub const MAX_TOKEN: usize = 512;

/// Whether `token` can be written into a playlist URI as it is: not empty,
/// at most [`MAX_TOKEN`] bytes, visible ASCII without `"` (which would end
/// a quoted `URI=` attribute) or `#`.
pub fn carriable(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'#')
}

/// How one stream is authorized: resolved from the stream's own settings,
/// its source block's (restreamed streams carry them in their config) and
/// the global ones.
#[derive(Clone, Copy, Debug, Default)]
pub struct Policy<'a> {
    pub on_play: Option<&'a AuthBackend>,
    pub token_secret: Option<&'a str>,
}

impl<'a> Policy<'a> {
    /// The policy of a stream under the node's config.
    pub fn of(cfg: &'a StreamConfig, global: &'a Config) -> Policy<'a> {
        Policy {
            on_play: cfg.on_play.as_ref().or(global.on_play.as_ref()),
            token_secret: cfg.token_secret.as_deref().or(global.token_secret.as_deref()),
        }
    }

    /// Whether viewers must be authorized at all.
    pub fn active(&self) -> bool {
        self.on_play.is_some() || self.token_secret.is_some()
    }
}

/// What the gate does with a request.
#[derive(Debug)]
pub enum Admission {
    /// Serve it, accounted to this session (none for a probe or a
    /// node-to-node request).
    Serve(Option<Ticket>),
    /// 403.
    Deny,
    /// 302 to this URL.
    Redirect(String),
    /// 503: the backend failed and the viewer has no session.
    Unavailable,
    /// 429: the address is over its rate or session limit, or the node
    /// holds its maximum of sessions ([`table::Refused::Full`]).
    TooMany(table::Refused),
}

/// Whether a publisher may publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishVerdict {
    Allow,
    /// 403.
    Deny,
    /// 503: `on_publish` failed and is not `fail_open`.
    Unavailable,
    /// 429: the address tries too often.
    TooMany,
}

/// `query` without its `key=…` parameters (raw, order kept).
fn without_param(query: Option<&str>, key: &str) -> Option<String> {
    let kept: Vec<&str> = query?
        .split('&')
        .filter(|kv| kv.split_once('=').map_or(*kv, |(k, _)| k) != key)
        .collect();
    Some(kept.join("&"))
}

/// The `password` query value, form-decoded (first occurrence).
fn query_password(query: Option<&str>) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://x/?{}", query?)).ok()?;
    let v = url
        .query_pairs()
        .find(|(k, _)| k == "password")
        .map(|(_, v)| v.into_owned());
    v
}

/// The password of an HTTP Basic `Authorization` value.
fn basic_password(authorization: Option<&str>) -> Option<Vec<u8>> {
    use base64::Engine;
    let (scheme, rest) = authorization?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    Some(raw[colon + 1..].to_vec())
}

/// Whether `query` carries the `publish_password` of a stream that has one
/// (`password=…`, compared in constant time); true when it has none. The
/// synchronous half of [`Access::authorize_publish`], for a listener that
/// must answer before it may wait (SRT's listen callback).
pub fn publish_password_ok(cfg: &strom_config::StreamConfig, query: Option<&str>) -> bool {
    match &cfg.publish_password {
        None => true,
        Some(want) => query_password(query).is_some_and(|p| same(p.as_bytes(), want.as_bytes())),
    }
}

/// Compares two secrets in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A request's session: its id (written into child URIs) and, for
/// HTTP-TS, the connection's handle. Dropping the last clone of an HTTP-TS
/// ticket ends its session. An HLS ticket allocates nothing.
#[derive(Clone, Debug)]
pub struct Ticket {
    pub id: SessionId,
    pub proto: Proto,
    /// Write `sid` into child URIs (the stream is authorized).
    pub carry: bool,
    /// HTTP-TS only.
    pub conn: Option<Arc<ConnHandle>>,
}

/// What an HTTP-TS connection shares with its session.
#[derive(Debug)]
pub struct ConnHandle {
    /// Cancelled when the session ends (denied, kicked, over a user cap).
    pub closed: CancellationToken,
    /// Media bytes sent.
    pub bytes: Arc<AtomicU64>,
    _end: EndOnDrop,
}

impl Ticket {
    /// The session id as written in URLs.
    pub fn sid(&self) -> String {
        table::format_id(self.id)
    }
}

/// Ends an HTTP-TS session when its connection's response is dropped.
#[derive(Debug)]
struct EndOnDrop {
    access: Arc<Access>,
    id: SessionId,
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.access.end(self.id, table::CloseReason::Ended);
    }
}

/// An HTTP-TS connection the node may have to close.
#[derive(Debug)]
struct Conn {
    closed: CancellationToken,
    bytes: Arc<AtomicU64>,
    synced: u64,
}

/// The node's authorization and session state, and the backend client.
pub struct Access {
    table: Mutex<Table>,
    conns: Mutex<HashMap<SessionId, Conn>>,
    /// New-session calls under way, by identity: later requests of the same
    /// identity wait for the same answer.
    pending: Mutex<HashMap<Identity, watch::Receiver<Option<Outcome>>>>,
    /// Per backend URL (bounded by the config's URLs).
    budgets: Mutex<HashMap<String, Arc<Budget>>>,
    client: reqwest::Client,
    /// Key of session ids (the cluster key when there is one, so a viewer
    /// keeps its id on every node; else random per process).
    secret: Vec<u8>,
    salt: AtomicU64,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").finish_non_exhaustive()
    }
}

/// Unix time now, milliseconds.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Access {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Arc<Access> {
        let secret = match &config.cluster_key {
            Some(k) => k.as_bytes().to_vec(),
            None => crate::cluster::auth::nonce().into_bytes(),
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .pool_max_idle_per_host(32)
            .user_agent(concat!("strom/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Arc::new(Access {
            table: Mutex::new(Table::new(Limits {
                session_timeout: config.session_timeout,
                max_per_ip: config.max_sessions_per_ip,
                ..Limits::default()
            })),
            conns: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            budgets: Mutex::new(HashMap::new()),
            client,
            secret,
            salt: AtomicU64::new(1),
            metrics: Self::series(metrics),
        })
    }

    /// Creates every labelled series at zero, so alerts on a rate see a
    /// series before the first event.
    fn series(metrics: Arc<Metrics>) -> Arc<Metrics> {
        for result in ["allow", "deny", "redirect", "timeout", "error", "busy", "rate_limited"] {
            let _ = metrics.auth_requests.get_or_create(&ResultLabel { result });
        }
        for action in ["kept", "refused", "allowed"] {
            let _ = metrics.auth_backend_down.get_or_create(&ActionLabel { action });
        }
        for result in ["valid", "invalid", "expired"] {
            let _ = metrics.auth_signed.get_or_create(&ResultLabel { result });
        }
        for r in [
            table::CloseReason::Ended,
            table::CloseReason::Idle,
            table::CloseReason::Denied,
            table::CloseReason::Kicked,
            table::CloseReason::MaxSessions,
        ] {
            let _ = metrics
                .sessions_closed
                .get_or_create(&ReasonLabel { reason: r.as_str() });
        }
        metrics
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the table under its lock (for the API).
    pub fn with_table<T>(&self, f: impl FnOnce(&Table) -> T) -> T {
        f(&self.table())
    }

    /// The keyed id of an identity (`salt` 0 for HLS, a per-connection
    /// number for HTTP-TS).
    fn session_id(&self, id: &Identity, salt: u64) -> SessionId {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            return salt;
        };
        mac.update(id.stream.as_bytes());
        mac.update(b"\0");
        mac.update(id.token.as_bytes());
        mac.update(b"\0");
        if let Some(ip) = id.ip {
            mac.update(backend::canonical_ip(ip).to_string().as_bytes());
        }
        mac.update(&salt.to_be_bytes());
        let out = mac.finalize().into_bytes();
        let mut b = [0u8; 8];
        b.copy_from_slice(&out[..8]);
        u64::from_be_bytes(b)
    }

    /// Viewers of `stream` now, by protocol label.
    pub fn clients(&self, stream: &str) -> Vec<(&'static str, u64)> {
        let t = self.table();
        [Proto::Hls, Proto::MpegTs]
            .into_iter()
            .map(|p| (p.as_str(), t.viewers(stream, p)))
            .collect()
    }

    /// Viewers over every stream.
    pub fn total_clients(&self) -> u64 {
        self.table().all_viewers().map(|(_, _, n)| n).sum()
    }

    /// Whether `req` would start a new viewer (for the overload redirect):
    /// a playlist of an identity without a session, or an HTTP-TS request.
    pub fn is_new_viewer(&self, req: &PlayRequest) -> bool {
        match &req.resource {
            Resource::MpegTs => true,
            Resource::Archive(a) if a.format == crate::dvr::request::Format::Ts => true,
            Resource::MasterPlaylist | Resource::MediaPlaylist | Resource::TrackPlaylist(_) | Resource::Archive(_) => {
                self.table().hls_session(&identity(req)).is_none()
            }
            _ => false,
        }
    }

    /// Decides a playback request of `stream` (after peer redirects, before
    /// an output). `HEAD` probes are served without a session.
    pub async fn admit(self: &Arc<Self>, stream: &Stream, policy: Policy<'_>, req: &PlayRequest) -> Admission {
        if req.is_head() {
            return Admission::Serve(None);
        }
        let proto = match &req.resource {
            // An archive download is one connection, like HTTP-TS; an
            // archive playlist and its segments are an HLS session.
            Resource::MpegTs => Proto::MpegTs,
            Resource::Archive(a) => match a.format {
                crate::dvr::request::Format::Ts => Proto::MpegTs,
                crate::dvr::request::Format::Playlist => Proto::Hls,
            },
            Resource::MasterPlaylist
            | Resource::MediaPlaylist
            | Resource::TrackPlaylist(_)
            | Resource::Segment(_)
            | Resource::TrackSegment(..) => Proto::Hls,
            // Other resources belong to outputs with their own rules.
            _ => return Admission::Serve(None),
        };
        if policy.active() && req.token.as_deref().is_some_and(|t| !t.is_empty() && !carriable(t)) {
            return Admission::Deny;
        }
        let ident = identity(req);
        let now = Instant::now();
        let segment = matches!(req.resource, Resource::Segment(_) | Resource::TrackSegment(..));
        if segment {
            return self.admit_segment(policy, req, ident, now);
        }
        if proto == Proto::Hls {
            // (The lock is taken once: a guard in an `if let` scrutinee
            // lives through the block.)
            let known = {
                let mut t = self.table();
                let id = t.hls_session(&ident);
                if let Some(id) = id {
                    t.note(id, 0, false, now);
                }
                id
            };
            if let Some(id) = known {
                return Admission::Serve(Some(self.ticket(id, proto, policy.active())));
            }
        }
        let id = match proto {
            Proto::Hls => self.session_id(&ident, 0),
            Proto::MpegTs => self.session_id(&ident, self.salt.fetch_add(1, Ordering::Relaxed)),
        };
        let opening =
            |grant: Option<Grant>, period: Option<Duration>| opening(req, ident.clone(), id, proto, grant, period);
        if !policy.active() {
            // On an open stream an HLS session starts with its first segment
            // (playlists alone are no viewers and hold no room), and no
            // viewer is turned away for a session limit: over one, it is
            // served but not counted (and the refusal is).
            if proto == Proto::Hls {
                return Admission::Serve(None);
            }
            return match self.open(opening(None, None), stream, false) {
                Admission::TooMany(_) => Admission::Serve(None),
                a => a,
            };
        }
        // A valid signed link needs no backend.
        if let Some(key) = policy.token_secret {
            let r = signed::verify(
                key.as_bytes(),
                &req.name,
                req.token.as_deref().unwrap_or(""),
                req.ip,
                crate::cluster::auth::unix_now(),
            );
            let label = match &r {
                Ok(_) => "valid",
                Err(e) => e.metric_result(),
            };
            self.metrics
                .auth_signed
                .get_or_create(&ResultLabel { result: label })
                .inc();
            if r.is_ok() {
                return self.open(opening(Some(Grant::default()), None), stream, true);
            }
            if policy.on_play.is_none() {
                return Admission::Deny;
            }
        }
        let Some(backend) = policy.on_play else {
            return Admission::Deny;
        };
        let (cached, left) = {
            let t = self.table();
            (t.decision(&ident, now).cloned(), t.decision_left(&ident, now))
        };
        match cached {
            Some(Verdict::Allow(grant)) => {
                let first = left.max(Duration::from_secs(1));
                return self.open(opening(Some(grant), Some(first)), stream, true);
            }
            Some(Verdict::Deny) => return Admission::Deny,
            Some(Verdict::Redirect(url)) => return Admission::Redirect(url),
            None => {}
        }
        {
            let mut t = self.table();
            // A session that could not open anyway costs the backend nothing.
            if let Err(why) = t.can_open(ident.ip) {
                drop(t);
                stream.metrics.sessions_refused.inc();
                return Admission::TooMany(why);
            }
            if !t.rate_ok(ident.ip, now) {
                drop(t);
                self.metrics
                    .auth_requests
                    .get_or_create(&ResultLabel { result: "rate_limited" })
                    .inc();
                return Admission::TooMany(table::Refused::PerIp);
            }
        }
        let sid = table::format_id(id);
        let query = self.new_session(stream, req, &ident.token, proto.as_str(), &sid, req.query.as_deref());
        // The call's own task has cached a decision by now ([`Access::settle`]).
        let outcome = self.ask_once(backend, &ident, &query).await;
        let default = backend.cache;
        match outcome {
            Outcome::Allow { grant, duration } => {
                self.open(opening(Some(grant), Some(duration.unwrap_or(default))), stream, true)
            }
            Outcome::Deny { .. } => Admission::Deny,
            Outcome::Redirect { location, .. } => Admission::Redirect(location),
            // This node's own call budget is full: never a reason to let
            // a viewer in unchecked, and not the backend's failure.
            Outcome::Error(ErrorKind::Busy) => Admission::Unavailable,
            Outcome::Error(_) if backend.fail_open => {
                self.down("allowed");
                self.open(opening(Some(Grant::default()), Some(default)), stream, true)
            }
            Outcome::Error(_) => {
                self.down("refused");
                Admission::Unavailable
            }
        }
    }

    /// A segment: checked against memory only, never the backend.
    fn admit_segment(
        self: &Arc<Self>,
        policy: Policy<'_>,
        req: &PlayRequest,
        ident: Identity,
        now: Instant,
    ) -> Admission {
        let known = self.table().hls_session(&ident);
        if let Some(id) = known {
            // The session id must be the identity's own: a segment URL taken
            // to another address or stream, or with another token, is refused.
            if policy.active() && req.sid.as_deref().and_then(table::parse_id) != Some(id) {
                return Admission::Deny;
            }
            return Admission::Serve(Some(self.ticket(id, Proto::Hls, policy.active())));
        }
        if !policy.active() {
            // An open stream's session starts once a segment was actually
            // served ([`Access::media_served`]): misses and errors count nothing.
            return Admission::Serve(None);
        }
        let id = self.session_id(&ident, 0);
        let mut t = self.table();
        if req.sid.as_deref().and_then(table::parse_id) != Some(id) {
            return Admission::Deny;
        }
        // The session idled out but its grant is still cached: reopen it.
        if let Some(Verdict::Allow(grant)) = t.decision(&ident, now).cloned() {
            let left = t.decision_left(&ident, now).max(Duration::from_secs(1));
            let period = policy.on_play.map(|_| left);
            let o = opening(req, ident, id, Proto::Hls, Some(grant), period);
            if let Ok((id, closed)) = t.open(o, now, unix_ms()) {
                drop(t);
                self.closed(closed);
                return Admission::Serve(Some(self.ticket(id, Proto::Hls, true)));
            }
        }
        Admission::Deny
    }

    /// Opens a session and hands out its ticket.
    fn open(self: &Arc<Self>, o: Opening, stream: &Stream, carry: bool) -> Admission {
        let proto = o.proto;
        let r = self.table().open(o, Instant::now(), unix_ms());
        match r {
            // The user's cap kept newer sessions than this one (a tie, or a
            // peer's clock ahead): it must not play unaccounted.
            Ok((id, closed)) if closed.iter().any(|c| c.id == id) => {
                self.closed(closed);
                Admission::Deny
            }
            Ok((id, closed)) => {
                self.closed(closed);
                let ticket = self.ticket(id, proto, carry);
                if let Some(c) = &ticket.conn {
                    self.conns().insert(
                        id,
                        Conn {
                            closed: c.closed.clone(),
                            bytes: c.bytes.clone(),
                            synced: 0,
                        },
                    );
                    // The connection sends media from its first byte.
                    self.table().note(id, 0, true, Instant::now());
                }
                Admission::Serve(Some(ticket))
            }
            Err(why) => {
                stream.metrics.sessions_refused.inc();
                tracing::debug!(stream = %stream.name, ?why, "new session refused");
                Admission::TooMany(why)
            }
        }
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Conn>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ticket(self: &Arc<Self>, id: SessionId, proto: Proto, carry: bool) -> Ticket {
        Ticket {
            id,
            proto,
            carry,
            conn: (proto == Proto::MpegTs).then(|| {
                Arc::new(ConnHandle {
                    closed: CancellationToken::new(),
                    bytes: Arc::new(AtomicU64::new(0)),
                    _end: EndOnDrop {
                        access: self.clone(),
                        id,
                    },
                })
            }),
        }
    }

    /// A segment of an open stream was served to `req`, which had no
    /// session yet: its HLS session starts now, as a viewer (unless a limit
    /// is reached: then it is served but not counted).
    pub fn media_served(&self, req: &PlayRequest, stream: &Stream, bytes: u64) {
        let ident = identity(req);
        let id = self.session_id(&ident, 0);
        let now = Instant::now();
        let mut t = self.table();
        match t.open(opening(req, ident, id, Proto::Hls, None, None), now, unix_ms()) {
            Ok((id, _)) => t.note(id, bytes, true, now),
            Err(_) => {
                stream.metrics.sessions_refused.inc();
            }
        }
    }

    /// Records a served HLS request of `ticket`: `bytes` of media.
    pub fn served(&self, ticket: &Ticket, bytes: u64, media: bool) {
        self.table().note(ticket.id, bytes, media, Instant::now());
    }

    /// Ends session `id` and closes its connection.
    pub fn end(&self, id: SessionId, reason: table::CloseReason) {
        let c = self.table().close(id, reason);
        self.closed(c.into_iter().collect());
    }

    /// Counts sessions that ended and closes their HTTP-TS connections.
    fn closed(&self, closed: Vec<Closed>) {
        if closed.is_empty() {
            return;
        }
        let mut conns = self.conns();
        for c in closed {
            self.metrics
                .sessions_closed
                .get_or_create(&ReasonLabel {
                    reason: c.reason.as_str(),
                })
                .inc();
            if let Some(conn) = conns.remove(&c.id) {
                conn.closed.cancel();
            }
        }
    }

    fn down(&self, action: &'static str) {
        self.metrics
            .auth_backend_down
            .get_or_create(&ActionLabel { action })
            .inc();
    }

    /// The backend question about a new session of `req` on `stream`.
    fn new_session<'a>(
        &self,
        stream: &Stream,
        req: &'a PlayRequest,
        token: &'a str,
        proto: &'a str,
        sid: &'a str,
        qs: Option<&'a str>,
    ) -> Query<'a> {
        Query {
            name: &req.name,
            proto,
            ip: req.ip,
            token,
            session_id: sid,
            request_type: RequestType::NewSession,
            request_number: 1,
            stream_clients: self.clients(&stream.name).iter().map(|(_, n)| n).sum(),
            total_clients: self.total_clients(),
            user_agent: req.user_agent.as_deref(),
            referer: req.referer.as_deref(),
            qs,
            dvr: match &req.resource {
                crate::http::request::Resource::Archive(a) => Some(a.auth_value(unix_ms() / 1000)),
                _ if is_archive(req) => Some(String::new()),
                _ => None,
            },
        }
    }

    /// Asks the backend about a new session, sharing one call among the
    /// concurrent requests of the same identity. The call runs in its own
    /// task: a viewer that gives up does not cancel it, and its answer is
    /// cached for whoever asks next.
    async fn ask_once(self: &Arc<Self>, backend: &AuthBackend, ident: &Identity, q: &Query<'_>) -> Outcome {
        let Some(url) = backend::request_url(&backend.url, q) else {
            return Outcome::Error(ErrorKind::Error);
        };
        let mut rx = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match p.get(ident) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    p.insert(ident.clone(), rx.clone());
                    let (access, backend, ident) = (self.clone(), backend.clone(), ident.clone());
                    tokio::spawn(async move {
                        let o = access.ask(&backend, url, CallKind::New).await;
                        access.settle(&backend, &ident, &o);
                        let _ = tx.send(Some(o));
                        access.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&ident);
                    });
                    rx
                }
            }
        };
        // The call is bounded by the slot wait and the backend timeout.
        let wait = backend.timeout * 2 + Duration::from_secs(1);
        let got = match tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await {
            Ok(Ok(v)) => v.clone(),
            _ => None,
        };
        got.unwrap_or(Outcome::Error(ErrorKind::Timeout))
    }

    /// Caches the answer to a new-session call, so that a viewer who gave
    /// up before it came finds it on the next request.
    fn settle(&self, backend: &AuthBackend, ident: &Identity, o: &Outcome) {
        let now = Instant::now();
        let (verdict, duration) = match o {
            Outcome::Allow { grant, duration } => (Verdict::Allow(grant.clone()), duration),
            Outcome::Deny { duration } => (Verdict::Deny, duration),
            Outcome::Redirect { location, duration } => (Verdict::Redirect(location.clone()), duration),
            Outcome::Error(_) => return,
        };
        self.table()
            .remember(ident.clone(), verdict, duration.unwrap_or(backend.cache), now);
    }

    fn budget(&self, url: &str) -> Arc<Budget> {
        let mut b = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        b.entry(url.to_string())
            .or_insert_with(|| {
                Arc::new(Budget {
                    new: Semaphore::new(MAX_NEW_CALLS),
                    updates: Semaphore::new(MAX_UPDATE_CALLS),
                })
            })
            .clone()
    }

    /// One backend call, counted and timed. It first takes a slot of the
    /// backend's budget (a new session waits up to the backend's timeout, a
    /// repeat does not wait); without one the answer is
    /// [`ErrorKind::Busy`], which is this node's limit, not the backend's
    /// failure. The timeout runs from when the call is sent.
    async fn ask(&self, backend: &AuthBackend, url: reqwest::Url, kind: CallKind) -> Outcome {
        let budget = self.budget(&backend.url);
        let permit = match kind {
            CallKind::New => tokio::time::timeout(backend.timeout, budget.new.acquire())
                .await
                .ok()
                .and_then(Result::ok),
            CallKind::Update => budget.updates.try_acquire().ok(),
        };
        let Some(_permit) = permit else {
            self.metrics
                .auth_requests
                .get_or_create(&ResultLabel { result: "busy" })
                .inc();
            return Outcome::Error(ErrorKind::Busy);
        };
        let started = Instant::now();
        let outcome = match tokio::time::timeout(backend.timeout, self.call(url)).await {
            Ok(o) => o,
            Err(_) => Outcome::Error(ErrorKind::Timeout),
        };
        self.metrics
            .auth_backend_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .auth_requests
            .get_or_create(&ResultLabel {
                result: outcome.label(),
            })
            .inc();
        if let Outcome::Error(kind) = &outcome {
            static LOG: crate::util::LogLimiter = crate::util::LogLimiter::new(Duration::from_secs(5));
            if let Some(held_back) = LOG.allow(Instant::now()) {
                tracing::warn!(backend = %crate::util::redact_url(&backend.url), ?kind, held_back, "authorization backend gave no usable answer");
            }
        }
        outcome
    }

    async fn call(&self, url: reqwest::Url) -> Outcome {
        let resp = match self.client.get(url).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Outcome::Error(ErrorKind::Timeout),
            Err(_) => return Outcome::Error(ErrorKind::Error),
        };
        let h = resp.headers();
        backend::parse_response(resp.status().as_u16(), |n| h.get(n).map(|v| v.as_bytes()))
    }

    /// Once a second: ends idle sessions, re-asks the backend about due
    /// sessions (in the background), applies user caps with the peers'
    /// reports, syncs HTTP-TS byte counts.
    pub fn tick(self: &Arc<Self>, node: &Arc<crate::Node>, remote: HashMap<String, table::Starts>) {
        let now = Instant::now();
        let (closed, due) = {
            let mut t = self.table();
            let mut closed = t.expire(now);
            t.set_remote(remote);
            closed.extend(t.enforce_caps(now));
            let due = t.due(now);
            self.metrics.sessions_open.set(t.len() as i64);
            (closed, due)
        };
        self.closed(closed);
        {
            let mut conns = self.conns();
            let mut t = self.table();
            for (id, c) in conns.iter_mut() {
                let b = c.bytes.load(Ordering::Relaxed);
                t.note(*id, b.saturating_sub(c.synced), true, now);
                c.synced = b;
            }
        }
        for d in due {
            let access = self.clone();
            let node = node.clone();
            tokio::spawn(async move { access.repeat(&node, d).await });
        }
    }

    /// Re-asks the backend about one session (`update_session`).
    async fn repeat(&self, node: &crate::Node, d: table::Due) {
        let Some(stream) = node.stream(&d.identity.stream) else {
            self.end(d.id, table::CloseReason::Ended);
            return;
        };
        let policy = Policy::of(stream.cfg(), &node.config);
        let Some(backend) = policy.on_play else {
            return;
        };
        let sid = table::format_id(d.id);
        let q = Query {
            name: &d.identity.stream,
            proto: d.proto.as_str(),
            ip: d.identity.ip,
            token: &d.identity.token,
            session_id: &sid,
            request_type: RequestType::UpdateSession,
            request_number: d.number,
            stream_clients: self.clients(&stream.name).iter().map(|(_, n)| n).sum(),
            total_clients: self.total_clients(),
            user_agent: d.user_agent.as_deref(),
            referer: d.referer.as_deref(),
            qs: d.query.as_deref(),
            dvr: d.identity.dvr.then(String::new),
        };
        let Some(url) = backend::request_url(&backend.url, &q) else {
            return;
        };
        let outcome = self.ask(backend, url, CallKind::Update).await;
        if outcome == Outcome::Error(ErrorKind::Busy) {
            // This node's repeat budget is used up: try again soon.
            self.table().postpone(d.id, Instant::now() + POSTPONE);
            return;
        }
        let (closed, kept) = self.table().updated(d.id, &outcome, backend.cache, Instant::now());
        if kept {
            self.down("kept");
        }
        self.closed(closed);
    }

    /// Checks a publisher before any media is read: the stream's
    /// `publish_password` (`?password=` or HTTP Basic with any user), then
    /// `on_publish` (the stream's, else the global one) with
    /// `proto=publish`. Publish decisions are not cached: each publisher
    /// is asked about once, when it connects.
    pub async fn authorize_publish(
        &self,
        stream: &Stream,
        global: &Config,
        req: &PlayRequest,
        authorization: Option<&str>,
    ) -> PublishVerdict {
        let cfg = stream.cfg();
        if (cfg.publish_password.is_some() || cfg.on_publish.is_some() || global.on_publish.is_some())
            && !self.table().rate_ok(req.ip, Instant::now())
        {
            // Password guessing and backend floods stop here.
            self.metrics
                .auth_requests
                .get_or_create(&ResultLabel { result: "rate_limited" })
                .inc();
            return PublishVerdict::TooMany;
        }
        if let Some(want) = &cfg.publish_password {
            let by_query = query_password(req.query.as_deref()).is_some_and(|p| same(p.as_bytes(), want.as_bytes()));
            let by_basic = basic_password(authorization).is_some_and(|p| same(&p, want.as_bytes()));
            if !(by_query || by_basic) {
                static LOG: crate::util::LogLimiter = crate::util::LogLimiter::new(Duration::from_secs(10));
                if let Some(held_back) = LOG.allow(Instant::now()) {
                    tracing::info!(stream = %stream.name, held_back, "publisher refused: wrong or missing password");
                }
                return PublishVerdict::Deny;
            }
        }
        let Some(backend) = cfg.on_publish.clone().or_else(|| global.on_publish.clone()) else {
            return PublishVerdict::Allow;
        };
        let ident = identity(req);
        let sid = table::format_id(self.session_id(&ident, self.salt.fetch_add(1, Ordering::Relaxed)));
        // The publish password is strom's to check; it never goes to the backend.
        let qs = without_param(req.query.as_deref(), "password");
        let q = self.new_session(stream, req, &ident.token, "publish", &sid, qs.as_deref());
        let Some(url) = backend::request_url(&backend.url, &q) else {
            return PublishVerdict::Unavailable;
        };
        match self.ask(&backend, url, CallKind::New).await {
            Outcome::Allow { .. } => PublishVerdict::Allow,
            Outcome::Deny { .. } | Outcome::Redirect { .. } => {
                tracing::info!(stream = %stream.name, "publisher refused by on_publish");
                PublishVerdict::Deny
            }
            Outcome::Error(ErrorKind::Busy) => PublishVerdict::Unavailable,
            Outcome::Error(_) if backend.fail_open => {
                self.down("allowed");
                PublishVerdict::Allow
            }
            Outcome::Error(_) => {
                self.down("refused");
                PublishVerdict::Unavailable
            }
        }
    }

    /// Kicks a session (API): it ends, and its identity is refused until
    /// its decision would have expired. False if there is no such session.
    pub fn kick(&self, id: SessionId, default: Duration) -> bool {
        let c = self.table().kick(id, default, Instant::now());
        let found = !c.is_empty();
        self.closed(c);
        found
    }

    /// Re-asks the backend about every session of `stream` at once.
    pub fn reauth(self: &Arc<Self>, node: &Arc<crate::Node>, stream: &str) -> usize {
        let n = self.table().reauth(stream, Instant::now());
        self.tick(node, self.remote_of(node));
        n
    }

    /// The peers' reports of capped users' sessions, merged by user.
    pub fn remote_of(&self, node: &crate::Node) -> HashMap<String, table::Starts> {
        let now = Instant::now();
        let mut out: HashMap<String, table::Starts> = HashMap::new();
        for p in node.peers.snapshot() {
            if !p.up
                || p.last_ok
                    .is_none_or(|t| now.saturating_duration_since(t) > crate::cluster::peers::STALE)
            {
                continue;
            }
            for u in p.users {
                out.entry(u.user)
                    .or_default()
                    .extend(u.sessions.iter().map(|s| (s[0], s[1])));
            }
        }
        out
    }

    /// This node's capped users' sessions, for the peer directory.
    pub fn report(&self) -> Vec<strom_api::UserSessions> {
        self.table()
            .capped_users()
            .into_iter()
            .take(strom_api::MAX_REPORTED_USERS)
            .map(|(user, mut starts)| {
                starts.sort_unstable_by(|a, b| b.cmp(a));
                starts.truncate(strom_api::MAX_REPORTED_SESSIONS);
                strom_api::UserSessions {
                    user,
                    sessions: starts.into_iter().map(|(t, id)| [t, id]).collect(),
                }
            })
            .collect()
    }
}

/// A new session of `req`, granted `grant`, asked about again every
/// `period` (with a backend).
fn opening(
    req: &PlayRequest,
    identity: Identity,
    id: SessionId,
    proto: Proto,
    grant: Option<Grant>,
    period: Option<Duration>,
) -> Opening {
    Opening {
        identity,
        id,
        proto,
        user_agent: req.user_agent.as_deref().map(|s| Arc::from(backend::bounded(s))),
        referer: req.referer.as_deref().map(|s| Arc::from(backend::bounded(s))),
        query: req.query.as_deref().map(|q| Arc::from(backend::bounded(q))),
        grant,
        period,
        number: 1,
    }
}

/// The identity of a request: (stream, token, address).
pub fn identity(req: &PlayRequest) -> Identity {
    Identity {
        stream: Arc::from(req.name.as_str()),
        token: Arc::from(req.token.as_deref().unwrap_or("")),
        ip: req.ip.map(backend::canonical_ip),
        dvr: is_archive(req),
    }
}

/// Query parameter an archive playlist adds to its segment URIs, so those
/// segments belong to the viewer's archive session.
pub const DVR_PARAM: &str = "dvr";

/// The query a playlist carries onto its child URIs: the viewer's `token`
/// (only a sane one: a long query must not be copied into every line), the
/// session id for an authorized stream, and `dvr=1` for an archive
/// playlist (see [`is_archive`]). `None` when there is nothing to carry.
pub fn carried_query(req: &PlayRequest, dvr: bool) -> Option<String> {
    let mut parts: Vec<String> = Vec::with_capacity(3);
    if let Some(t) = req.token.as_deref().filter(|t| carriable(t)) {
        parts.push(format!("token={t}"));
    }
    if let Some(t) = req.ticket.as_ref().filter(|t| t.carry) {
        parts.push(format!("{SID_PARAM}={}", t.sid()));
    }
    if dvr {
        parts.push(format!("{DVR_PARAM}=1"));
    }
    (!parts.is_empty()).then(|| parts.join("&"))
}

/// An archive request: an archive URL, or a segment listed by an archive
/// playlist (marked with `dvr=1`).
pub fn is_archive(req: &PlayRequest) -> bool {
    matches!(req.resource, crate::http::request::Resource::Archive(_))
        || strom_api::query_param(req.query.as_deref(), DVR_PARAM) == Some("1")
}

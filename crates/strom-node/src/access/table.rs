//! The node's authorization state, sans I/O: cached decisions, viewer
//! sessions, per-address limits and the per-user session caps. Every
//! function takes `now`; the tokio glue in [`super`] does the backend calls
//! and closes connections.
//!
//! Invariants:
//! - a session is one viewer: HLS has one per identity (stream, token,
//!   address) across all its playlists and segments; HTTP-TS has one per
//!   connection;
//! - every map is bounded: sessions by [`Limits::max_sessions`] and
//!   [`Limits::max_per_ip`], decisions by [`Limits::max_decisions`], rate
//!   buckets by [`MAX_BUCKETS`]; hitting a bound refuses or skips, never
//!   grows;
//! - a user's cap (`X-Max-Sessions`, `X-Unique`) keeps the user's newest
//!   sessions over this node and the peers' reports, so every node that
//!   sees the same reports closes the same sessions, each its own.

use super::backend::{Grant, Outcome};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Distinct client addresses whose backend-call rate is tracked.
pub const MAX_BUCKETS: usize = 65_536;
/// Sessions without authorization (open streams) one address may hold per
/// stream: anyone can invent tokens there, and each would be a viewer in
/// the load peers and the balancer read. A CGNAT hides many households
/// behind one address, so this is generous.
pub const MAX_OPEN_PER_IP_STREAM: u32 = 256;
/// A full map is swept for expired entries at most this often (a sweep
/// walks the whole map under the lock).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The key of per-address limits: an IPv6 address counts by its /64 (one
/// subscriber's prefix), an IPv4 address by itself.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// After a backend error a session's repeat is retried this soon (or at
/// its own period, if shorter).
pub const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);

/// A viewer identity: one HLS session, and the key of cached decisions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub stream: Arc<str>,
    /// The raw `token` query value; empty when absent.
    pub token: Arc<str>,
    pub ip: Option<IpAddr>,
    /// An archive (DVR) viewer: authorized and counted apart from the same
    /// viewer's live session, so a backend can allow one and not the other.
    pub dvr: bool,
}

/// A session id: 16 hex digits in URLs and the API.
pub type SessionId = u64;

/// `id` as the 16 lowercase hex digits of URLs and the API.
pub fn format_id(id: SessionId) -> String {
    format!("{id:016x}")
}

/// The id written as 16 hex digits; `None` for anything else.
pub fn parse_id(s: &str) -> Option<SessionId> {
    (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

/// The delivery protocol of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Hls,
    MpegTs,
}

impl Proto {
    /// `hls` / `mpegts`: the `proto` of the backend contract and of metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Hls => "hls",
            Proto::MpegTs => "mpegts",
        }
    }
}

/// A cached decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow(Grant),
    Deny,
    Redirect(String),
}

#[derive(Clone, Debug)]
struct Cached {
    verdict: Verdict,
    until: Instant,
}

/// When a session is asked about again (`update_session`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recheck {
    pub at: Instant,
    /// The granted `X-AuthDuration` (or the default).
    pub period: Duration,
    /// `request_number` of the last call sent.
    pub number: u32,
    /// A call is under way.
    pub in_flight: bool,
}

/// One viewer.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: SessionId,
    pub identity: Identity,
    pub proto: Proto,
    pub user_agent: Option<Arc<str>>,
    pub referer: Option<Arc<str>>,
    pub query: Option<Arc<str>>,
    /// Unix milliseconds.
    pub started_ms: u64,
    pub started: Instant,
    pub last_active: Instant,
    /// Media bytes sent.
    pub bytes: u64,
    /// Has fetched media: counts as a viewer.
    pub viewer: bool,
    /// The terms it was granted; `None` when the stream has no
    /// authorization.
    pub grant: Option<Grant>,
    /// Backend repeats; `None` without a backend.
    pub recheck: Option<Recheck>,
}

impl Session {
    /// The user its cap applies to: `X-UserId`, else the token.
    pub fn user(&self) -> Option<&str> {
        let g = self.grant.as_ref()?;
        g.user
            .as_deref()
            .or(Some(&*self.identity.token).filter(|t| !t.is_empty()))
    }
}

/// Why a session ended (the `reason` label of `strom_sessions_closed_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The HTTP-TS connection closed.
    Ended,
    /// No HLS request for the session timeout.
    Idle,
    /// The backend denied an `update_session`.
    Denied,
    /// Through the API.
    Kicked,
    /// The user's `X-Max-Sessions` / `X-Unique` cap closed the oldest.
    MaxSessions,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Ended => "ended",
            CloseReason::Idle => "idle",
            CloseReason::Denied => "denied",
            CloseReason::Kicked => "kicked",
            CloseReason::MaxSessions => "max_sessions",
        }
    }
}

/// A session that ended, for the glue to close its connection and count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    pub id: SessionId,
    pub proto: Proto,
    pub reason: CloseReason,
}

/// Why a new session was not opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The address holds [`Limits::max_per_ip`] sessions (or, on an open
    /// stream, [`MAX_OPEN_PER_IP_STREAM`]).
    PerIp,
    /// The node holds [`Limits::max_sessions`] sessions.
    Full,
    /// The id is taken by another identity (a 64-bit collision).
    Collision,
}

/// Bounds of the table.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// An HLS session without a request this long ends.
    pub session_timeout: Duration,
    pub max_per_ip: u64,
    pub max_sessions: usize,
    pub max_decisions: usize,
    /// New-session backend calls per second per address, and the burst.
    pub rate: f64,
    pub burst: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            session_timeout: Duration::from_secs(30),
            max_per_ip: 10_000,
            max_sessions: 200_000,
            max_decisions: 200_000,
            rate: 20.0,
            burst: 100.0,
        }
    }
}

/// A session repeat that is due: the glue asks the backend.
#[derive(Clone, Debug)]
pub struct Due {
    pub id: SessionId,
    pub identity: Identity,
    pub proto: Proto,
    pub number: u32,
    pub user_agent: Option<Arc<str>>,
    pub referer: Option<Arc<str>>,
    pub query: Option<Arc<str>>,
}

/// What a new session brings.
#[derive(Clone, Debug)]
pub struct Opening {
    pub identity: Identity,
    pub id: SessionId,
    pub proto: Proto,
    pub user_agent: Option<Arc<str>>,
    pub referer: Option<Arc<str>>,
    pub query: Option<Arc<str>>,
    pub grant: Option<Grant>,
    /// The repeat period when the grant came from a backend.
    pub period: Option<Duration>,
    /// `request_number` of the call that granted it (1 for a new session).
    pub number: u32,
}

/// One user's sessions as a peer reports them: (start in Unix ms, id).
pub type Starts = Vec<(u64, SessionId)>;

/// The authorization state of a node.
#[derive(Debug, Default)]
pub struct Table {
    pub limits: Limits,
    decisions: HashMap<Identity, Cached>,
    sessions: BTreeMap<SessionId, Session>,
    hls: HashMap<Identity, SessionId>,
    /// By [`limit_key`].
    per_ip: HashMap<IpAddr, u64>,
    /// Sessions without a grant per ([`limit_key`], stream).
    open_per_ip: HashMap<(IpAddr, Arc<str>), u32>,
    last_sweep: Option<Instant>,
    /// Sessions of users with a cap.
    per_user: HashMap<Arc<str>, Vec<SessionId>>,
    /// Viewer sessions per (stream, proto).
    viewers: HashMap<(Arc<str>, Proto), u64>,
    buckets: HashMap<IpAddr, (f64, Instant)>,
    /// Peers' sessions of capped users, by user.
    remote: HashMap<String, Starts>,
}

impl Table {
    pub fn new(limits: Limits) -> Self {
        Table {
            limits,
            ..Default::default()
        }
    }

    /// The unexpired cached decision for `id`.
    pub fn decision(&self, id: &Identity, now: Instant) -> Option<&Verdict> {
        self.decisions.get(id).filter(|c| c.until > now).map(|c| &c.verdict)
    }

    /// How long the cached decision for `id` still holds (zero if none):
    /// a session opened from a cached grant is asked about again when the
    /// grant expires, not a whole default period later.
    pub fn decision_left(&self, id: &Identity, now: Instant) -> Duration {
        self.decisions
            .get(id)
            .map_or(Duration::ZERO, |c| c.until.saturating_duration_since(now))
    }

    /// Caches `verdict` for `duration` (skipped when the cache is full of
    /// live decisions).
    pub fn remember(&mut self, id: Identity, verdict: Verdict, duration: Duration, now: Instant) {
        if self.decisions.len() >= self.limits.max_decisions && !self.decisions.contains_key(&id) {
            if self.sweep_due(now) {
                self.decisions.retain(|_, c| c.until > now);
            }
            if self.decisions.len() >= self.limits.max_decisions {
                return;
            }
        }
        self.decisions.insert(
            id,
            Cached {
                verdict,
                until: now + duration,
            },
        );
    }

    /// Whether a full map may be swept now (at most every [`SWEEP_EVERY`]).
    fn sweep_due(&mut self, now: Instant) -> bool {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY)
        {
            return false;
        }
        self.last_sweep = Some(now);
        true
    }

    /// Whether a new session from `ip` could open now (checked before a
    /// backend call, so a refusal costs the backend nothing).
    pub fn can_open(&self, ip: Option<IpAddr>) -> Result<(), Refused> {
        if self.sessions.len() >= self.limits.max_sessions {
            return Err(Refused::Full);
        }
        match ip {
            Some(ip) if self.per_ip.get(&limit_key(ip)).copied().unwrap_or(0) >= self.limits.max_per_ip => {
                Err(Refused::PerIp)
            }
            _ => Ok(()),
        }
    }

    /// The HLS session of `id`, if one is open.
    pub fn hls_session(&self, id: &Identity) -> Option<SessionId> {
        self.hls.get(id).copied()
    }

    pub fn get(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Takes one new-session backend call from `ip`'s budget; false when
    /// the address is over [`Limits::rate`] (burst [`Limits::burst`]).
    pub fn rate_ok(&mut self, ip: Option<IpAddr>, now: Instant) -> bool {
        let Some(ip) = ip.map(limit_key) else { return true };
        let (rate, burst) = (self.limits.rate, self.limits.burst);
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_BUCKETS {
            // Forget addresses whose budget has refilled; an untracked
            // address is not limited rather than refused.
            if self.sweep_due(now) {
                self.buckets.retain(|_, (tokens, at)| {
                    *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
                });
            }
            if self.buckets.len() >= MAX_BUCKETS {
                return true;
            }
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Opens a session (an HLS identity that has one gets it back). Returns
    /// its id and the sessions a user cap closed to make room.
    pub fn open(&mut self, o: Opening, now: Instant, unix_ms: u64) -> Result<(SessionId, Vec<Closed>), Refused> {
        if o.proto == Proto::Hls {
            if let Some(id) = self.hls.get(&o.identity).copied() {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.last_active = now;
                    if o.grant.is_some() {
                        s.grant = o.grant;
                        s.recheck = o.period.map(|p| Recheck {
                            at: now + p,
                            period: p,
                            number: o.number,
                            in_flight: false,
                        });
                    }
                }
                let closed = self.enforce_user_of(id, now);
                return Ok((id, closed));
            }
        }
        if let Some(other) = self.sessions.get(&o.id) {
            if other.identity != o.identity || o.proto != Proto::Hls {
                return Err(Refused::Collision);
            }
        }
        self.can_open(o.identity.ip)?;
        if let Some(ip) = o.identity.ip.map(limit_key) {
            if o.grant.is_none() {
                let n = self.open_per_ip.entry((ip, o.identity.stream.clone())).or_default();
                if *n >= MAX_OPEN_PER_IP_STREAM {
                    return Err(Refused::PerIp);
                }
                *n += 1;
            }
            *self.per_ip.entry(ip).or_default() += 1;
        }
        let s = Session {
            id: o.id,
            identity: o.identity.clone(),
            proto: o.proto,
            user_agent: o.user_agent,
            referer: o.referer,
            query: o.query,
            started_ms: unix_ms,
            started: now,
            last_active: now,
            bytes: 0,
            viewer: false,
            recheck: o.period.map(|p| Recheck {
                at: now + p,
                period: p,
                number: o.number,
                in_flight: false,
            }),
            grant: o.grant,
        };
        if s.proto == Proto::Hls {
            self.hls.insert(o.identity, o.id);
        }
        let capped = s.grant.as_ref().is_some_and(|g| g.max_sessions.is_some());
        let user = s.user().map(Arc::<str>::from);
        self.sessions.insert(o.id, s);
        if let (true, Some(u)) = (capped, user) {
            self.per_user.entry(u).or_default().push(o.id);
        }
        let closed = self.enforce_user_of(o.id, now);
        Ok((o.id, closed))
    }

    /// A request of session `id` at `now`: `bytes` of media sent, and
    /// whether it fetched media (which makes it a viewer).
    pub fn note(&mut self, id: SessionId, bytes: u64, media: bool, now: Instant) {
        let Some(s) = self.sessions.get_mut(&id) else { return };
        s.last_active = now;
        s.bytes = s.bytes.saturating_add(bytes);
        if media && !s.viewer {
            s.viewer = true;
            *self.viewers.entry((s.identity.stream.clone(), s.proto)).or_default() += 1;
        }
    }

    /// Viewer sessions of `stream` over `proto`.
    pub fn viewers(&self, stream: &str, proto: Proto) -> u64 {
        // The key holds an Arc<str>; look it up without allocating one.
        self.viewers
            .iter()
            .find(|((s, p), _)| *p == proto && &**s == stream)
            .map_or(0, |(_, n)| *n)
    }

    /// Viewer sessions per (stream, proto).
    pub fn all_viewers(&self) -> impl Iterator<Item = (&str, Proto, u64)> {
        self.viewers.iter().map(|((s, p), n)| (&**s, *p, *n))
    }

    /// Ends session `id`.
    pub fn close(&mut self, id: SessionId, reason: CloseReason) -> Option<Closed> {
        let s = self.sessions.remove(&id)?;
        if s.proto == Proto::Hls && self.hls.get(&s.identity) == Some(&id) {
            self.hls.remove(&s.identity);
        }
        if let Some(ip) = s.identity.ip.map(limit_key) {
            if let Some(n) = self.per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_ip.remove(&ip);
                }
            }
            if s.grant.is_none() {
                let key = (ip, s.identity.stream.clone());
                if let Some(n) = self.open_per_ip.get_mut(&key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.open_per_ip.remove(&key);
                    }
                }
            }
        }
        if let Some(u) = s.user() {
            if let Some(v) = self.per_user.get_mut(u) {
                v.retain(|x| *x != id);
                if v.is_empty() {
                    self.per_user.remove(u);
                }
            }
        }
        if s.viewer {
            let key = (s.identity.stream.clone(), s.proto);
            if let Some(n) = self.viewers.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.viewers.remove(&key);
                }
            }
        }
        Some(Closed {
            id,
            proto: s.proto,
            reason,
        })
    }

    /// Ends idle HLS sessions and drops expired decisions.
    pub fn expire(&mut self, now: Instant) -> Vec<Closed> {
        let timeout = self.limits.session_timeout;
        let idle: Vec<SessionId> = self
            .hls
            .values()
            .copied()
            .filter(|id| {
                self.sessions
                    .get(id)
                    .is_some_and(|s| now.saturating_duration_since(s.last_active) >= timeout)
            })
            .collect();
        self.decisions.retain(|_, c| c.until > now);
        idle.into_iter()
            .filter_map(|id| self.close(id, CloseReason::Idle))
            .collect()
    }

    /// Repeats that are due: each is marked in flight and numbered.
    pub fn due(&mut self, now: Instant) -> Vec<Due> {
        let mut out = Vec::new();
        for s in self.sessions.values_mut() {
            let Some(r) = s.recheck.as_mut() else { continue };
            if r.in_flight || r.at > now {
                continue;
            }
            r.in_flight = true;
            r.number = r.number.saturating_add(1);
            out.push(Due {
                id: s.id,
                identity: s.identity.clone(),
                proto: s.proto,
                number: r.number,
                user_agent: s.user_agent.clone(),
                referer: s.referer.clone(),
                query: s.query.clone(),
            });
        }
        out
    }

    /// The backend's answer to a repeat of session `id`. An allow renews
    /// the session and its cached decision; a deny or redirect ends it and
    /// is cached; an error keeps it (retried soon). Returns what closed and
    /// whether the session was kept through a backend error.
    pub fn updated(
        &mut self,
        id: SessionId,
        outcome: &Outcome,
        default: Duration,
        now: Instant,
    ) -> (Vec<Closed>, bool) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return (Vec::new(), false);
        };
        let identity = s.identity.clone();
        match outcome {
            Outcome::Allow { grant, duration } => {
                let period = duration.unwrap_or(default);
                if let Some(r) = s.recheck.as_mut() {
                    r.in_flight = false;
                    r.at = now + period;
                    r.period = period;
                }
                let old_user = s.user().map(str::to_string);
                s.grant = Some(grant.clone());
                let new_user = s.user().map(Arc::<str>::from);
                let capped = grant.max_sessions.is_some();
                if let Some(u) = old_user {
                    if let Some(v) = self.per_user.get_mut(u.as_str()) {
                        v.retain(|x| *x != id);
                        if v.is_empty() {
                            self.per_user.remove(u.as_str());
                        }
                    }
                }
                if let (true, Some(u)) = (capped, new_user) {
                    self.per_user.entry(u).or_default().push(id);
                }
                self.remember(identity, Verdict::Allow(grant.clone()), period, now);
                (self.enforce_user_of(id, now), false)
            }
            Outcome::Deny { duration } | Outcome::Redirect { duration, .. } => {
                let verdict = match outcome {
                    Outcome::Redirect { location, .. } => Verdict::Redirect(location.clone()),
                    _ => Verdict::Deny,
                };
                self.remember(identity, verdict, duration.unwrap_or(default), now);
                (self.close(id, CloseReason::Denied).into_iter().collect(), false)
            }
            Outcome::Error(_) => {
                if let Some(r) = s.recheck.as_mut() {
                    r.in_flight = false;
                    r.at = now + r.period.min(RETRY_AFTER_ERROR);
                }
                (Vec::new(), true)
            }
        }
    }

    /// Moves a due repeat of session `id` that could not be sent to `at`.
    pub fn postpone(&mut self, id: SessionId, at: Instant) {
        if let Some(r) = self.sessions.get_mut(&id).and_then(|s| s.recheck.as_mut()) {
            r.in_flight = false;
            r.number = r.number.saturating_sub(1);
            r.at = at;
        }
    }

    /// Kicks session `id` and every other session of its identity (the
    /// viewer's HLS session and its HTTP-TS connections): they end, and the
    /// identity is refused until its decision would have expired (then the
    /// backend decides again). Empty if there is no such session.
    pub fn kick(&mut self, id: SessionId, default: Duration, now: Instant) -> Vec<Closed> {
        let Some(s) = self.sessions.get(&id) else {
            return Vec::new();
        };
        let identity = s.identity.clone();
        let hold = s.recheck.map_or(default, |r| r.period);
        self.remember(identity.clone(), Verdict::Deny, hold, now);
        let same: Vec<SessionId> = self
            .sessions
            .values()
            .filter(|s| s.identity == identity)
            .map(|s| s.id)
            .collect();
        same.into_iter()
            .filter_map(|id| self.close(id, CloseReason::Kicked))
            .collect()
    }

    /// Makes every session of `stream` due for a repeat now and forgets the
    /// stream's cached decisions. Returns the sessions asked about.
    pub fn reauth(&mut self, stream: &str, now: Instant) -> usize {
        self.decisions.retain(|id, _| &*id.stream != stream);
        let mut n = 0;
        for s in self.sessions.values_mut() {
            if &*s.identity.stream != stream {
                continue;
            }
            if let Some(r) = s.recheck.as_mut() {
                r.at = now;
                n += 1;
            }
        }
        n
    }

    /// Replaces what the peers report about capped users' sessions.
    pub fn set_remote(&mut self, remote: HashMap<String, Starts>) {
        self.remote = remote;
    }

    /// This node's sessions of capped users, for the peers: (user, starts).
    pub fn capped_users(&self) -> Vec<(String, Starts)> {
        self.per_user
            .iter()
            .map(|(u, ids)| {
                let starts = ids
                    .iter()
                    .filter_map(|id| self.sessions.get(id).map(|s| (s.started_ms, *id)))
                    .collect();
                (u.to_string(), starts)
            })
            .collect()
    }

    /// Applies every capped user's cap over this node and the peers.
    pub fn enforce_caps(&mut self, now: Instant) -> Vec<Closed> {
        let users: Vec<Arc<str>> = self.per_user.keys().cloned().collect();
        users.iter().flat_map(|u| self.enforce_user(u, now)).collect()
    }

    fn enforce_user_of(&mut self, id: SessionId, now: Instant) -> Vec<Closed> {
        let Some(user) = self.sessions.get(&id).and_then(|s| s.user()).map(Arc::<str>::from) else {
            return Vec::new();
        };
        self.enforce_user(&user, now)
    }

    /// Keeps `user`'s newest sessions up to the cap of its newest local
    /// session; closes the older local ones, whose identities are then
    /// refused until their decisions would have expired (so a player that
    /// was closed cannot come straight back and close the newer one). Ties
    /// go by id, so every node picks the same survivors.
    fn enforce_user(&mut self, user: &str, now: Instant) -> Vec<Closed> {
        let Some(ids) = self.per_user.get(user) else {
            return Vec::new();
        };
        let mut all: Vec<(u64, SessionId, bool)> = ids
            .iter()
            .filter_map(|id| self.sessions.get(id).map(|s| (s.started_ms, *id, true)))
            .collect();
        let Some(cap) = all
            .iter()
            .max()
            .and_then(|(_, id, _)| self.sessions.get(id))
            .and_then(|s| s.grant.as_ref()?.max_sessions)
        else {
            return Vec::new();
        };
        if let Some(remote) = self.remote.get(user) {
            for (start, id) in remote {
                // The same id on two nodes is the same viewer.
                if !all.iter().any(|(_, x, _)| x == id) {
                    all.push((*start, *id, false));
                }
            }
        }
        if all.len() <= cap as usize {
            return Vec::new();
        }
        all.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
        let drop: Vec<SessionId> = all[cap as usize..]
            .iter()
            .filter(|(_, _, local)| *local)
            .map(|(_, id, _)| *id)
            .collect();
        let mut closed = Vec::new();
        for id in drop {
            if let Some(s) = self.sessions.get(&id) {
                let hold = s.recheck.map_or(Duration::from_secs(30), |r| r.period);
                let identity = s.identity.clone();
                self.remember(identity, Verdict::Deny, hold, now);
            }
            closed.extend(self.close(id, CloseReason::MaxSessions));
        }
        closed
    }

    /// Sessions in id order after `after`, matching `keep`, at most `limit`.
    pub fn list(&self, after: Option<SessionId>, limit: usize, keep: impl Fn(&Session) -> bool) -> Vec<&Session> {
        let range = match after {
            Some(a) => self.sessions.range(a.saturating_add(1)..),
            None => self.sessions.range(..),
        };
        if after == Some(u64::MAX) {
            return Vec::new();
        }
        range.map(|(_, s)| s).filter(|s| keep(s)).take(limit).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ident(token: &str, ip: &str) -> Identity {
        Identity {
            stream: Arc::from("ch"),
            token: Arc::from(token),
            ip: Some(ip.parse().expect("ip")),
            dvr: false,
        }
    }

    fn grant(user: Option<&str>, max: Option<u32>) -> Grant {
        Grant {
            user: user.map(str::to_string),
            max_sessions: max,
        }
    }

    fn opening(identity: Identity, id: SessionId, proto: Proto, g: Option<Grant>, period: Option<u64>) -> Opening {
        Opening {
            identity,
            id,
            proto,
            user_agent: None,
            referer: None,
            query: None,
            grant: g,
            period: period.map(Duration::from_secs),
            number: 1,
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn decisions_expire_on_the_clock() {
        let t0 = Instant::now();
        let mut t = Table::new(Limits::default());
        let a = ident("good", "10.0.0.1");
        t.remember(a.clone(), Verdict::Allow(Grant::default()), 10 * S, t0);
        assert_eq!(t.decision(&a, t0 + 9 * S), Some(&Verdict::Allow(Grant::default())));
        assert_eq!(t.decision_left(&a, t0 + 4 * S), 6 * S);
        assert_eq!(t.decision(&a, t0 + 10 * S), None, "expired at its duration");
        assert_eq!(t.decision_left(&a, t0 + 11 * S), Duration::ZERO);
        let b = ident("bad", "10.0.0.1");
        t.remember(b.clone(), Verdict::Deny, 30 * S, t0);
        assert_eq!(
            t.decision(&b, t0 + 29 * S),
            Some(&Verdict::Deny),
            "denials are cached too"
        );
        assert_eq!(t.decision(&ident("bad", "10.0.0.2"), t0), None, "per address");
        t.expire(t0 + 31 * S);
        assert!(t.decisions.is_empty());
    }

    #[test]
    fn the_decision_cache_is_bounded() {
        let t0 = Instant::now();
        let mut t = Table::new(Limits {
            max_decisions: 3,
            ..Limits::default()
        });
        for i in 0..3 {
            t.remember(ident(&format!("t{i}"), "10.0.0.1"), Verdict::Deny, 10 * S, t0);
        }
        t.remember(ident("t9", "10.0.0.1"), Verdict::Deny, 10 * S, t0);
        assert_eq!(t.decisions.len(), 3, "full of live decisions: not cached");
        t.remember(ident("t9", "10.0.0.1"), Verdict::Deny, 10 * S, t0 + 11 * S);
        assert_eq!(t.decisions.len(), 1, "expired ones make room");
    }

    #[test]
    fn one_hls_session_per_identity_and_viewers_only_after_media() {
        let t0 = Instant::now();
        let mut t = Table::new(Limits::default());
        let a = ident("tok", "10.0.0.1");
        let (id, _) = t
            .open(opening(a.clone(), 7, Proto::Hls, None, None), t0, 1)
            .expect("opens");
        assert_eq!(t.viewers("ch", Proto::Hls), 0, "a playlist alone is no viewer");
        let (again, _) = t
            .open(opening(a.clone(), 7, Proto::Hls, None, None), t0 + S, 2)
            .expect("same");
        assert_eq!(again, id);
        assert_eq!(t.len(), 1);
        t.note(id, 1000, true, t0 + 2 * S);
        t.note(id, 500, true, t0 + 3 * S);
        assert_eq!(t.viewers("ch", Proto::Hls), 1);
        assert_eq!(t.get(id).map(|s| s.bytes), Some(1500));
        // Idle: ends after the session timeout without requests.
        assert!(t.expire(t0 + 32 * S).is_empty());
        let closed = t.expire(t0 + 33 * S);
        assert_eq!(
            closed,
            vec![Closed {
                id,
                proto: Proto::Hls,
                reason: CloseReason::Idle
            }]
        );
        assert_eq!(t.viewers("ch", Proto::Hls), 0);
        assert!(t.is_empty() && t.per_ip.is_empty() && t.hls.is_empty());
    }

    #[test]
    fn http_ts_sessions_are_per_connection_and_never_idle_out() {
        let t0 = Instant::now();
        let mut t = Table::new(Limits::default());
        let a = ident("tok", "10.0.0.1");
        t.open(opening(a.clone(), 1, Proto::MpegTs, None, None), t0, 1)
            .expect("opens");
        t.open(opening(a.clone(), 2, Proto::MpegTs, None, None), t0, 1)
            .expect("opens");
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.open(opening(a, 2, Proto::MpegTs, None, None), t0, 1),
            Err(Refused::Collision)
        );
        assert!(t.expire(t0 + 3600 * S).is_empty());
        assert_eq!(
            t.close(1, CloseReason::Ended).map(|c| c.reason),
            Some(CloseReason::Ended)
        );
        assert_eq!(t.close(1, CloseReason::Ended), None, "closed once");
    }

    #[test]
    fn limits_per_address_and_per_node() {
        let t0 = Instant::now();
        let mut t = Table::new(Limits {
            max_per_ip: 2,
            max_sessions: 3,
            ..Limits::default()
        });
        let o = |tok: &str, ip: &str, id| opening(ident(tok, ip), id, Proto::Hls, None, None);
        t.open(o("a", "10.0.0.1", 1), t0, 0).expect("1");
        t.open(o("b", "10.0.0.1", 2), t0, 0).expect("2");
        assert_eq!(t.open(o("c", "10.0.0.1", 3), t0, 0), Err(Refused::PerIp));
        t.open(o("c", "10.0.0.2", 3), t0, 0).expect("another address");
        assert_eq!(t.open(o("d", "10.0.0.3", 4), t0, 0), Err(Refused::Full));
        t.close(1, CloseReason::Kicked);
        t.open(o("c", "10.0.0.1", 5), t0, 0).expect("room again");
    }

    #[test]
    fn open_streams_cap_sessions_per_address_and_stream() {
        let t0 = Instant::now();
        let mut t = Table::new(Limits::default());
        for i in 0..MAX_OPEN_PER_IP_STREAM {
            t.open(
                opening(
                    ident(&format!("t{i}"), "10.0.0.1"),
                    u64::from(i),
                    Proto::Hls,
                    None,
                    None,
                ),
                t0,
                0,
            )
            .expect("within the cap");
        }
        let over = opening(ident("more", "10.0.0.1"), 9_999, Proto::Hls, None, None);
        assert_eq!(
            t.open(over, t0, 0),
            Err(Refused::PerIp),
            "invented tokens stop at the cap"
        );
        let mut other = ident("more", "10.0.0.1");
        other.stream = Arc::from("other");
        t.open(opening(other, 10_000, Proto::Hls, None, None), t0, 0)
            .expect("another stream has its own cap");
        t.open(
            opening(
                ident("granted", "10.0.0.1"),
                10_001,
                Proto::Hls,
                Some(Grant::default()),
                None,
            ),
            t0,
            0,
        )
        .expect("authorized sessions only count against max_per_ip");
        t.close(0, CloseReason::Idle);
        t.open(
            opening(ident("again", "10.0.0.1"), 10_002, Proto::Hls, None, None),
            t0,
            0,
        )
        .expect("room again");
    }

    #[test]
    fn ipv6_addresses_are_limited_by_their_64() {
        let t0 = Instant::now();
        let mut t = Table::new(Limits {
            max_per_ip: 2,
            rate: 1.0,
            burst: 2.0,
            ..Limits::default()
        });
        let a = |tok: &str, ip: &str, id| opening(ident(tok, ip), id, Proto::Hls, Some(Grant::default()), None);
        t.open(a("x", "2001:db8:1:2::1", 1), t0, 0).expect("1");
        t.open(a("y", "2001:db8:1:2::ffff", 2), t0, 0).expect("2");
        assert_eq!(t.open(a("z", "2001:db8:1:2:abcd::9", 3), t0, 0), Err(Refused::PerIp));
        t.open(a("z", "2001:db8:1:3::1", 3), t0, 0).expect("another /64");
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        assert!(t.rate_ok(ip("2001:db8::1"), t0) && t.rate_ok(ip("2001:db8::2"), t0));
        assert!(!t.rate_ok(ip("2001:db8::3"), t0), "one bucket per /64");
        assert_eq!(
            limit_key("192.0.2.7".parse().expect("ip")),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn backend_calls_are_rate_limited_per_address() {
        let t0 = Instant::now();
        let mut t = Table::new(Limits {
            rate: 2.0,
            burst: 5.0,
            ..Limits::default()
        });
        let a = Some("10.0.0.1".parse().expect("ip"));
        let b = Some("10.0.0.2".parse().expect("ip"));
        assert_eq!((0..10).filter(|_| t.rate_ok(a, t0)).count(), 5, "the burst");
        assert!(t.rate_ok(b, t0), "another address is not affected");
        assert!(!t.rate_ok(a, t0 + Duration::from_millis(400)));
        assert!(t.rate_ok(a, t0 + Duration::from_millis(500)), "2 per second refill");
        assert!(t.rate_ok(None, t0));
    }

    #[test]
    fn repeats_renew_deny_and_survive_backend_errors() {
        let t0 = Instant::now();
        let mut t = Table::new(Limits::default());
        let a = ident("tok", "10.0.0.1");
        let (id, _) = t
            .open(
                opening(a.clone(), 9, Proto::MpegTs, Some(Grant::default()), Some(10)),
                t0,
                0,
            )
            .expect("opens");
        assert!(t.due(t0 + 9 * S).is_empty());
        let due = t.due(t0 + 10 * S);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].number, 2, "update_session counts on from new_session's 1");
        assert!(t.due(t0 + 11 * S).is_empty(), "one call in flight at a time");
        // The backend is down: the session stays, retried soon.
        let (closed, kept) = t.updated(
            id,
            &Outcome::Error(super::super::backend::ErrorKind::Timeout),
            30 * S,
            t0 + 12 * S,
        );
        assert!(closed.is_empty() && kept);
        assert!(t.due(t0 + 16 * S).is_empty());
        assert_eq!(t.due(t0 + 17 * S).first().map(|d| d.number), Some(3));
        let allow = Outcome::Allow {
            grant: grant(Some("u1"), None),
            duration: Some(20 * S),
        };
        assert_eq!(t.updated(id, &allow, 30 * S, t0 + 18 * S), (Vec::new(), false));
        assert_eq!(
            t.decision(&a, t0 + 37 * S),
            Some(&Verdict::Allow(grant(Some("u1"), None)))
        );
        assert!(t.due(t0 + 37 * S).is_empty());
        assert_eq!(t.due(t0 + 38 * S).first().map(|d| d.number), Some(4));
        let (closed, _) = t.updated(id, &Outcome::Deny { duration: None }, 30 * S, t0 + 39 * S);
        assert_eq!(closed.first().map(|c| c.reason), Some(CloseReason::Denied));
        assert!(t.get(id).is_none());
        assert_eq!(
            t.decision(&a, t0 + 60 * S),
            Some(&Verdict::Deny),
            "the denial is cached"
        );
    }

    #[test]
    fn kick_refuses_until_the_decision_would_expire() {
        let t0 = Instant::now();
        let mut t = Table::new(Limits::default());
        let a = ident("tok", "10.0.0.1");
        t.open(
            opening(a.clone(), 3, Proto::Hls, Some(Grant::default()), Some(15)),
            t0,
            0,
        )
        .expect("opens");
        t.open(
            opening(a.clone(), 4, Proto::MpegTs, Some(Grant::default()), Some(15)),
            t0,
            0,
        )
        .expect("opens");
        t.open(opening(ident("other", "10.0.0.1"), 5, Proto::MpegTs, None, None), t0, 0)
            .expect("opens");
        let kicked: Vec<SessionId> = t.kick(3, 30 * S, t0).iter().map(|c| c.id).collect();
        assert_eq!(kicked, vec![3, 4], "every session of the viewer, and no other");
        assert_eq!(t.decision(&a, t0 + 14 * S), Some(&Verdict::Deny));
        assert_eq!(t.decision(&a, t0 + 15 * S), None, "then the backend decides again");
        assert!(t.kick(3, 30 * S, t0).is_empty());
        assert!(t.get(5).is_some());
    }

    #[test]
    fn reauth_makes_a_streams_sessions_due() {
        let t0 = Instant::now();
        let mut t = Table::new(Limits::default());
        let mut other = ident("x", "10.0.0.1");
        other.stream = Arc::from("other");
        t.open(
            opening(ident("a", "10.0.0.1"), 1, Proto::Hls, Some(Grant::default()), Some(60)),
            t0,
            0,
        )
        .expect("1");
        t.open(
            opening(other.clone(), 2, Proto::Hls, Some(Grant::default()), Some(60)),
            t0,
            0,
        )
        .expect("2");
        t.remember(other.clone(), Verdict::Allow(Grant::default()), 60 * S, t0);
        t.remember(ident("a", "10.0.0.1"), Verdict::Allow(Grant::default()), 60 * S, t0);
        assert_eq!(t.reauth("ch", t0 + S), 1);
        let due = t.due(t0 + S);
        assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(t.decision(&ident("a", "10.0.0.1"), t0 + S), None);
        assert!(t.decision(&other, t0 + S).is_some());
    }

    #[test]
    fn user_caps_close_the_oldest_local_session() {
        let t0 = Instant::now();
        let mut t = Table::new(Limits::default());
        let g = Some(grant(Some("u1"), Some(2)));
        t.open(
            opening(ident("a", "10.0.0.1"), 1, Proto::MpegTs, g.clone(), Some(60)),
            t0,
            100,
        )
        .expect("1");
        t.open(
            opening(ident("b", "10.0.0.2"), 2, Proto::MpegTs, g.clone(), Some(60)),
            t0,
            200,
        )
        .expect("2");
        let (_, closed) = t
            .open(
                opening(ident("c", "10.0.0.3"), 3, Proto::Hls, g.clone(), Some(60)),
                t0,
                300,
            )
            .expect("3");
        assert_eq!(
            closed,
            vec![Closed {
                id: 1,
                proto: Proto::MpegTs,
                reason: CloseReason::MaxSessions
            }]
        );
        // X-Unique: one session per user.
        let u = Some(grant(Some("u2"), Some(1)));
        t.open(
            opening(ident("d", "10.0.0.4"), 4, Proto::MpegTs, u.clone(), Some(60)),
            t0,
            400,
        )
        .expect("4");
        let (_, closed) = t
            .open(opening(ident("e", "10.0.0.4"), 5, Proto::MpegTs, u, Some(60)), t0, 500)
            .expect("5");
        assert_eq!(closed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![4]);
        // Without a user id the token is the user; without a cap nothing closes.
        let none = Some(grant(None, None));
        for i in 10..20 {
            t.open(
                opening(ident("same", "10.0.1.1"), i, Proto::MpegTs, none.clone(), Some(60)),
                t0,
                i,
            )
            .expect("uncapped");
        }
        assert_eq!(t.len(), 2 + 1 + 10);
    }

    #[test]
    fn user_caps_count_the_peers_sessions() {
        let t0 = Instant::now();
        let mut t = Table::new(Limits::default());
        let g = Some(grant(Some("u1"), Some(1)));
        t.open(opening(ident("a", "10.0.0.1"), 1, Proto::MpegTs, g, Some(60)), t0, 1000)
            .expect("1");
        assert_eq!(t.capped_users(), vec![("u1".to_string(), vec![(1000, 1)])]);
        // A peer reports an older session of u1: ours is the newest, it stays.
        t.set_remote(HashMap::from([("u1".to_string(), vec![(500, 77)])]));
        assert!(t.enforce_caps(t0).is_empty());
        // A newer one elsewhere: ours is closed (the peer keeps its own).
        t.set_remote(HashMap::from([("u1".to_string(), vec![(2000, 78)])]));
        assert_eq!(t.enforce_caps(t0).iter().map(|c| c.id).collect::<Vec<_>>(), vec![1]);
        // The same id reported by a peer is the same viewer, not a second one.
        let g = Some(grant(Some("u3"), Some(1)));
        t.open(opening(ident("z", "10.0.0.9"), 5, Proto::Hls, g, Some(60)), t0, 3000)
            .expect("5");
        t.set_remote(HashMap::from([("u3".to_string(), vec![(3000, 5)])]));
        assert!(t.enforce_caps(t0).is_empty());
    }

    #[test]
    fn paging_visits_every_session_once() {
        let t0 = Instant::now();
        let mut t = Table::new(Limits::default());
        for id in [5u64, 1, 9, 3, u64::MAX] {
            t.open(
                opening(ident(&id.to_string(), "10.0.0.1"), id, Proto::MpegTs, None, None),
                t0,
                0,
            )
            .expect("opens");
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page: Vec<SessionId> = t.list(after, 2, |_| true).iter().map(|s| s.id).collect();
            if page.is_empty() {
                break;
            }
            after = page.last().copied();
            seen.extend(page);
        }
        assert_eq!(seen, vec![1, 3, 5, 9, u64::MAX]);
        assert_eq!(t.list(None, 10, |s| s.id > 4).len(), 3);
        assert_eq!(parse_id(&format_id(0xabc)), Some(0xabc));
        assert_eq!(parse_id("ABCDEF0123456789"), Some(0xabcdef0123456789));
        assert_eq!(parse_id("abc"), None);
        assert_eq!(parse_id("+bcdef0123456789"), None);
    }

    proptest! {
        /// Any sequence of opens, notes, closes and expiries keeps the
        /// indexes consistent with the sessions.
        #[test]
        fn indexes_stay_consistent(ops in proptest::collection::vec((0u8..6, 0u64..12, 0u8..3, 0u64..40), 1..200)) {
            let t0 = Instant::now();
            let mut t = Table::new(Limits { max_per_ip: 4, max_sessions: 8, ..Limits::default() });
            for (op, id, who, at) in ops {
                let now = t0 + Duration::from_secs(at);
                let identity = ident(&format!("t{}", id % 4), &format!("10.0.0.{who}"));
                let proto = if id % 2 == 0 { Proto::Hls } else { Proto::MpegTs };
                let g = (id % 3 == 0).then(|| grant(Some("u"), Some(2)));
                match op {
                    0 | 1 => { let _ = t.open(opening(identity, id, proto, g, Some(5)), now, at); }
                    2 => t.note(id, 10, true, now),
                    3 => { t.close(id, CloseReason::Ended); }
                    4 => { t.expire(now); }
                    _ => { for d in t.due(now) { t.updated(d.id, &Outcome::Deny { duration: None }, Duration::from_secs(1), now); } }
                }
                let ips: u64 = t.per_ip.values().sum();
                prop_assert_eq!(ips as usize, t.sessions.values().filter(|s| s.identity.ip.is_some()).count());
                prop_assert!(t.len() <= 8);
                prop_assert!(t.per_ip.values().all(|n| *n <= 4 && *n > 0));
                let viewers: u64 = t.viewers.values().sum();
                prop_assert_eq!(viewers as usize, t.sessions.values().filter(|s| s.viewer).count());
                for (i, sid) in &t.hls { prop_assert_eq!(t.sessions.get(sid).map(|s| &s.identity), Some(i)); }
                for ids in t.per_user.values() { for i in ids { prop_assert!(t.sessions.contains_key(i)); } }
                for users in t.per_user.values() { prop_assert!(users.len() <= 2, "the cap holds"); }
            }
        }
    }
}

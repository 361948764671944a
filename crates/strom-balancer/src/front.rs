//! The balancer's HTTP front: accepts connections and answers viewers'
//! playback requests with a redirect straight from the read buffer; every
//! other request (the JSON APIs, `/metrics`, `/healthz`) goes to the axum
//! router ([`crate::service::router`]).
//!
//! A redirect is the whole job of the balancer's hot path. Through hyper
//! and axum it cost about 2.9 µs of user time per request here, nginx's
//! bare `return 302` 1.3 µs; reading heads with `httparse` and writing the
//! answer into the connection's output buffer leaves the decision itself
//! and the system calls (see `bench/balancer_wrk.sh`).
//!
//! Bounds, as a node's connections have them: at most `max_connections`
//! connections (the rest are reset at once); a request head must arrive
//! within `client_header_timeout` of its first byte (or of the connection,
//! or of the last answer for the first one); an idle connection closes after
//! `keepalive_timeout`; a write that makes no progress for the send timeout
//! closes it. Deadlines are checked by a per-connection tick, so requests
//! cost no timer work. Heads, bodies and pipelined backlogs are bounded
//! ([`crate::http1`]); answers to pipelined requests go out in order, in as
//! few writes as possible.
//!
//! Every connection refused or closed on one of these bounds is counted in
//! `strom_balancer_http_errors_total{kind}` (`conn_limit`, `fd_limit`,
//! `header_timeout`, `keepalive_timeout`, `send_timeout`).
//!
//! Only `GET` and `HEAD` of a playback path are viewers: another method
//! there gets 405 (`Allow: GET, HEAD`) and is neither redirected nor
//! counted; `CONNECT` and `OPTIONS *` get 405 and any other target that is
//! not a path (or an absolute URL, handed to the router) gets 400.
//!
//! On shutdown the front stops accepting, closes idle connections and lets
//! each busy one finish the requests it has read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ConnectInfo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::http1::{self, Bad, Head, Persist};
use crate::service::{self, Shared};

/// How often a connection checks its deadlines; they are kept to within this.
const WATCH_TICK: Duration = Duration::from_millis(500);
/// Pause before accepting again after an error such as EMFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Pending output past which answers are written before more requests are
/// read (pipelining).
const OUT_HIGH: usize = 256 * 1024;
/// Largest answer body the router may produce (`/metrics`, `/api/v1/servers`).
const MAX_ANSWER: usize = 64 << 20;
/// How long, and how many bytes, a connection closed after a refusal keeps
/// reading what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// Connection bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A request head must arrive within this.
    pub header: Duration,
    /// An idle connection closes after this.
    pub keepalive: Duration,
    /// A write without progress for this long closes the connection.
    pub send: Duration,
}

/// Serves `listener` until `shutdown`: fast redirects, the rest through
/// `router`. `slots` caps the connections of every listener together.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    router: axum::Router,
    limits: Limits,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut conns = tokio::task::JoinSet::new();
    let mut last_warn: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            r = listener.accept() => r,
        };
        let (io, addr) = match accepted {
            Ok(a) => a,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                continue
            }
            Err(e) => {
                // EMFILE, ENFILE: out of file descriptors.
                if matches!(e.raw_os_error(), Some(23 | 24)) {
                    shared.metrics.http_errors.fd_limit.inc();
                }
                if last_warn.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    last_warn = Some(Instant::now());
                    tracing::error!(error = %e, "accept failed");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Reset: the refused peer learns at once, and no TIME_WAIT is left.
            let _ = socket2::SockRef::from(&io).set_linger(Some(Duration::ZERO));
            drop(io);
            shared.metrics.http_errors.conn_limit.inc();
            if last_warn.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                last_warn = Some(Instant::now());
                tracing::warn!(peer = %addr, "connection refused: max_connections reached");
            }
            continue;
        };
        let _ = io.set_nodelay(true);
        let peer = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let conn = Conn {
            io,
            peer,
            shared: shared.clone(),
            router: router.clone(),
            limits,
            stop: shutdown.clone(),
            cache: None,
        };
        conns.spawn(async move {
            conn.run().await;
            drop(permit);
        });
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// Why a connection ends.
enum End {
    /// Closed by the peer, an error, a deadline or shutdown.
    Closed,
}

/// One connection.
struct Conn {
    io: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    router: axum::Router,
    limits: Limits,
    stop: CancellationToken,
    /// What the hot path needs of the config in force, kept until the
    /// config changes ([`Shared::generation`]).
    cache: Option<Cache>,
}

/// A connection's copy of what redirects need.
struct Cache {
    /// The generation it was made at.
    generation: u64,
    cfg: Arc<strom_config::BalancerConfig>,
    /// Each server's redirect base (`public`, else `url`), by index.
    bases: Vec<String>,
    /// Decision counters by server index.
    decided: Vec<prometheus_client::metrics::counter::Counter>,
}

impl Conn {
    async fn run(mut self) {
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut out: Vec<u8> = Vec::with_capacity(4096);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + WATCH_TICK, WATCH_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The wait for the first request is a header wait; later ones are
        // keep-alive waits until a byte of the next request arrives.
        let mut waiting_since = Instant::now();
        let mut served = false;
        loop {
            // Answer every complete request already read.
            let mut keep = true;
            let mut refused = false;
            let mut consumed = 0;
            // Whether the buffer ends in an incomplete request (else the
            // loop stopped at OUT_HIGH, with requests left to answer).
            let mut need_more = false;
            // One clock reading for the requests read together.
            let now = Instant::now();
            while keep && out.len() < OUT_HIGH {
                let mut headers = http1::header_slots();
                let head = match http1::parse(&buf[consumed..], &mut headers) {
                    Ok(Some(h)) => h,
                    Ok(None) => {
                        need_more = true;
                        break;
                    }
                    Err(bad) => {
                        self.refuse(bad, &mut out);
                        keep = false;
                        refused = true;
                        break;
                    }
                };
                let need = head.len + head.body;
                if buf.len() - consumed < need {
                    if head.expect_continue && buf.len() - consumed == head.len {
                        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    need_more = true;
                    break;
                }
                let body_at = consumed + head.len;
                keep = head.keep_alive;
                match self.fast(&head, now, &mut out) {
                    true => {}
                    false => {
                        let owned = Owned::of(&head, &buf[body_at..body_at + head.body]);
                        if !self.generic(owned, &mut out).await {
                            keep = false;
                        }
                    }
                }
                consumed += need;
                served = true;
            }
            if consumed > 0 {
                waiting_since = now;
            }
            buf.drain(..consumed);
            if !out.is_empty() && self.flush(&mut out, &mut tick).await.is_err() {
                return;
            }
            if !keep {
                // Unread request bytes would turn the close into a reset,
                // which can destroy the answer before the client reads it.
                if !buf.is_empty() || refused {
                    self.linger().await;
                }
                return;
            }
            if self.stop.is_cancelled() && buf.is_empty() {
                return;
            }
            if !need_more && !buf.is_empty() {
                continue; // answers were flushed; more requests are read
            }
            if buf.len() >= http1::MAX_HEAD + http1::MAX_BODY {
                return;
            }
            // Read more: bounded by the header or keep-alive deadline.
            let had = buf.len();
            match self.read(&mut buf, &mut tick, waiting_since, served).await {
                Ok(()) => {
                    if had == 0 {
                        // The first byte of a request: its head is now due.
                        waiting_since = Instant::now();
                        served = false;
                    }
                }
                Err(End::Closed) => return,
            }
        }
    }

    /// Reads into `buf` until at least one byte came; `Err` when the peer
    /// closed, on error, at the deadline, or on shutdown while idle.
    async fn read(
        &mut self,
        buf: &mut Vec<u8>,
        tick: &mut tokio::time::Interval,
        since: Instant,
        served: bool,
    ) -> Result<(), End> {
        // An idle connection after an answer waits for keep-alive; a
        // started head, or the first request, for the header timeout.
        let idle = buf.is_empty();
        let deadline = since
            + if idle && served {
                self.limits.keepalive
            } else {
                self.limits.header
            };
        if buf.capacity() - buf.len() < 2048 {
            buf.reserve(4096);
        }
        loop {
            tokio::select! {
                r = self.io.read_buf(buf) => {
                    return match r {
                        Ok(0) | Err(_) => Err(End::Closed),
                        Ok(_) => Ok(()),
                    };
                }
                // Shutdown is seen at the next tick too: waiting on the
                // token here would register with it at every request.
                _ = tick.tick() => {
                    if Instant::now() >= deadline {
                        let errors = &self.shared.metrics.http_errors;
                        if idle && served {
                            errors.keepalive_timeout.inc();
                        } else {
                            errors.header_timeout.inc();
                        }
                        return Err(End::Closed);
                    }
                    if idle && self.stop.is_cancelled() {
                        return Err(End::Closed);
                    }
                }
            }
        }
    }

    /// Closes our side, then reads and drops what the client still sends,
    /// for at most [`LINGER`] and [`LINGER_BYTES`], so that it can read the
    /// answer before the connection goes.
    async fn linger(&mut self) {
        let _ = self.io.shutdown().await;
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut left = LINGER_BYTES;
        let mut sink = [0u8; 4096];
        while left > 0 {
            match tokio::time::timeout_at(deadline, self.io.read(&mut sink)).await {
                Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
                _ => return,
            }
        }
    }

    /// Writes `out` whole; `Err` when the peer is gone or makes no progress
    /// for the send timeout.
    async fn flush(&mut self, out: &mut Vec<u8>, tick: &mut tokio::time::Interval) -> Result<(), End> {
        let mut at = 0;
        let mut progress = Instant::now();
        while at < out.len() {
            tokio::select! {
                r = self.io.write(&out[at..]) => match r {
                    Ok(0) | Err(_) => return Err(End::Closed),
                    Ok(n) => {
                        at += n;
                        progress = Instant::now();
                    }
                },
                _ = tick.tick() => {
                    if progress.elapsed() >= self.limits.send {
                        self.shared.metrics.http_errors.send_timeout.inc();
                        return Err(End::Closed);
                    }
                }
            }
        }
        out.clear();
        Ok(())
    }

    /// The answer to a request that cannot be read; the connection closes.
    fn refuse(&self, bad: Bad, out: &mut Vec<u8>) {
        self.shared.count_bad_request();
        error(out, bad.status(), bad.reason(), Persist::Close, false);
    }

    /// Answers a viewer's `GET`/`HEAD` of a playback path with a redirect
    /// (or the refusal), and any other method there, or a target that is
    /// not a path, with an error; `false` for anything else, which goes to
    /// the router.
    fn fast(&mut self, head: &Head<'_>, now: Instant, out: &mut Vec<u8>) -> bool {
        let path = head.path();
        let head_only = head.method == "HEAD";
        let keep = head.persist();
        if head.method == "CONNECT" || (head.target == "*" && head.method == "OPTIONS") {
            // Authority form, or a question about the server as a whole:
            // the balancer is no proxy and offers no options.
            not_allowed(out, keep);
            return true;
        }
        if !path.starts_with('/') {
            if head.target.starts_with("http://") || head.target.starts_with("https://") {
                return false; // absolute form: the router reads it
            }
            self.shared.count_bad_request();
            error(out, 400, "bad request target", keep, head_only);
            return true;
        }
        if path.starts_with("/api/") || path == "/metrics" || path == "/healthz" {
            return false;
        }
        if !head.is_read() {
            // Methods are case-sensitive (RFC 9110 §9.1): `get` is not GET.
            not_allowed(out, keep);
            return true;
        }
        let Some((name, _resource)) = path.trim_start_matches('/').rsplit_once('/') else {
            error(out, 404, "nothing_to_play", keep, head_only);
            return true;
        };
        if strom_config::check_stream_name(name).is_err() {
            self.shared.count_bad_request();
            error(out, 400, "bad stream name", keep, head_only);
            return true;
        }
        let generation = self.shared.generation.load(std::sync::atomic::Ordering::Acquire);
        let cache = match &mut self.cache {
            Some(c) if c.generation == generation => c,
            slot => {
                let cfg = self.shared.cfg();
                let bases = (0..cfg.servers.len())
                    .map(|i| service::public_base(&cfg, i).unwrap_or_default())
                    .collect();
                slot.insert(Cache {
                    generation,
                    decided: self.shared.decision_counters(),
                    cfg,
                    bases,
                })
            }
        };
        let ip = match service::client_ip_of(&cache.cfg, self.peer, head.values("x-forwarded-for")) {
            Ok(ip) => ip,
            Err(e) => {
                self.shared.count_bad_request();
                error(out, 400, e, keep, head_only);
                return true;
            }
        };
        let geo = cache.cfg.geoip.is_some();
        let picked = service::decide_with(&self.shared, name, ip, now, &cache.decided, geo);
        let server = match picked {
            Ok(i) => i,
            Err(refusal) => {
                error(out, refusal.http_status(), refusal.as_str(), keep, head_only);
                return true;
            }
        };
        let base = cache.bases.get(server).map(String::as_str).unwrap_or_default();
        let written = with_date_at(now, |d| {
            http1::write_redirect(out, base, path, head.query(), service::HOP_PARAM, keep, head_only, d)
        });
        if !written {
            self.shared.count_bad_request();
            error(out, 400, "bad request target", keep, head_only);
        }
        true
    }

    /// Passes a request to the router and writes its answer; `false` when
    /// the connection must close after it.
    async fn generic(&mut self, req: Owned, out: &mut Vec<u8>) -> bool {
        let head_only = req.method == Some(axum::http::Method::HEAD);
        let keep = req.persist;
        let Some(request) = req.into_request(self.peer) else {
            self.shared.count_bad_request();
            error(out, 400, "malformed request", Persist::Close, head_only);
            return false;
        };
        let answer = match oneshot(self.router.clone(), request).await {
            Ok(a) => a,
            Err(never) => match never {},
        };
        let (parts, body) = answer.into_parts();
        let Ok(body) = axum::body::to_bytes(body, MAX_ANSWER).await else {
            error(out, 500, "answer too large", Persist::Close, head_only);
            return false;
        };
        let mut fields: Vec<(&str, &[u8])> = Vec::with_capacity(parts.headers.len());
        for (name, value) in &parts.headers {
            let skip = matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "connection" | "date"
            );
            if !skip && http1::is_field_value(value.as_bytes()) {
                fields.push((name.as_str(), value.as_bytes()));
            }
        }
        with_date(|d| http1::write_response(out, parts.status.as_u16(), &fields, &body, keep, head_only, d));
        keep.keeps()
    }
}

/// Calls a service once, when it is ready.
async fn oneshot<S, R>(mut svc: S, req: R) -> Result<S::Response, S::Error>
where
    S: tower_service::Service<R>,
{
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(req).await
}

/// A request for the router, copied out of the read buffer.
struct Owned {
    /// `None`: not a method `http` takes.
    method: Option<axum::http::Method>,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    persist: Persist,
}

impl Owned {
    fn of(head: &Head<'_>, body: &[u8]) -> Owned {
        Owned {
            method: axum::http::Method::from_bytes(head.method.as_bytes()).ok(),
            target: head.target().to_string(),
            headers: head
                .headers
                .iter()
                .map(|h| (h.name.to_string(), h.value.to_vec()))
                .collect(),
            body: body.to_vec(),
            persist: head.persist(),
        }
    }

    /// The request as axum takes it, with the peer as `ConnectInfo`;
    /// `None` if a part is not valid HTTP.
    fn into_request(self, peer: SocketAddr) -> Option<axum::http::Request<axum::body::Body>> {
        let mut b = axum::http::Request::builder().method(self.method?).uri(self.target);
        for (name, value) in self.headers {
            let name = axum::http::HeaderName::from_bytes(name.as_bytes()).ok()?;
            let value = axum::http::HeaderValue::from_bytes(&value).ok()?;
            b = b.header(name, value);
        }
        let mut req = b.body(axum::body::Body::from(self.body)).ok()?;
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut()
            .insert(ConnectInfo(strom_node::net::PeerAddr(peer)));
        Some(req)
    }
}

/// Calls `f` with the `Date` value for now (RFC 9110 IMF-fixdate).
fn with_date<R>(f: impl FnOnce(&str) -> R) -> R {
    with_date_at(Instant::now(), f)
}

/// [`with_date`] at `now`: the value is made once per second per thread,
/// and the wall clock is read only when it changes.
fn with_date_at<R>(now: Instant, f: impl FnOnce(&str) -> R) -> R {
    use std::cell::RefCell;
    thread_local! {
        /// The value, and until when it holds.
        static CACHE: RefCell<(Option<Instant>, String)> = const { RefCell::new((None, String::new())) };
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0.is_none_or(|until| now >= until) {
            let wall = SystemTime::now();
            let into = wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos();
            let left = Duration::from_nanos(u64::from(1_000_000_000 - into.min(999_999_999)));
            *c = (Some(now + left), httpdate::fmt_http_date(wall));
        }
        f(&c.1)
    })
}

/// [`http1::write_error`] with the current date.
fn error(out: &mut Vec<u8>, status: u16, reason: &str, keep_alive: Persist, head_only: bool) {
    with_date(|d| http1::write_error(out, status, reason, keep_alive, head_only, d));
}

/// 405 with `Allow: GET, HEAD`: the only methods a viewer's path takes.
fn not_allowed(out: &mut Vec<u8>, keep_alive: Persist) {
    with_date(|d| {
        http1::write_error_with(
            out,
            405,
            "method not allowed",
            &[("allow", b"GET, HEAD")],
            keep_alive,
            false,
            d,
        )
    });
}

#[cfg(test)]
mod tests;

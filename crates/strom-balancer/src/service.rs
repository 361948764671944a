//! The balancer service: polls every streamer, feeds the decision core and
//! answers viewers and middleware over HTTP.
//!
//! - Every `refresh`, each server is polled as its kind says
//!   ([`crate::poll`]): health, load and, where it has one, its stream
//!   list, concurrently and by one deadline. A server that answers garbage
//!   is marked unhealthy with the error; after `fall` failures it is Down.
//!   Every failure is counted in `strom_balancer_poll_errors_total`.
//! - With `source prometheus`, client counts come from the query of each
//!   server's kind (`query KIND ...`, else `query ...`), matched to the
//!   server by `instance`; a server with no sample is read directly.
//! - `GET /NAME/...` (any playback path) answers 302 to the chosen server's
//!   public URL with the path and query kept and `strom_hop=1` added (the
//!   server then lists absolute URLs in its playlists). `GET /api/v1/route`
//!   answers JSON for middleware. Refusals carry the reason middleware shows.
//! - The client is the TCP peer, or the address in `X-Forwarded-For` when the
//!   peer is a trusted proxy.
//! - Polls start at wall-clock multiples of `refresh`, so that several
//!   balancers measure together; viewers sent since a little before a poll
//!   keep counting after it ([`crate::share`]). The other balancers
//!   (`peers`) are probed by [`crate::peers`]; the admin API and its state
//!   file are [`crate::admin`].

use crate::readings::{self, ReadError};
use crate::{poll, Balancer, Refusal, ServerSpec, Tuning};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use strom_config::{BalancerConfig, ServerKind};
use tokio_util::sync::CancellationToken;

pub use strom_api::HOP_PARAM;
use strom_api::{append_param, query_param};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabel {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerReasonLabel {
    server: String,
    reason: &'static str,
}

/// The balancer's Prometheus metrics (`strom_balancer_` prefix).
pub struct Metrics {
    registry: Registry,
    decisions: Family<ServerLabel, Counter>,
    refusals: Family<ReasonLabel, Counter>,
    refresh: Histogram,
    servers_up: Gauge,
    pub(crate) bad_requests: Counter,
    poll_errors: Family<ServerReasonLabel, Counter>,
    zone_fallbacks: Family<ReasonLabel, Counter>,
    /// Live balancers sharing the servers, this one included.
    pub(crate) balancers: Gauge,
    pub(crate) admin: crate::admin::AdminMetrics,
    /// Decisions for a (client address, stream) already counted on the
    /// chosen server since its last measurement.
    repeats: Counter,
    /// Decisions counted without being remembered: the memory of recent
    /// clients was full.
    repeat_overflow: Counter,
    /// Connections the front refused or closed on a bound, by kind.
    pub(crate) http_errors: HttpErrors,
}

/// The front's `strom_balancer_http_errors_total{kind}` series (the node's
/// `strom_http_errors_total` kinds).
#[derive(Clone, Debug, Default)]
pub(crate) struct HttpErrors {
    /// Connections reset above the connection cap (`conn_limit`).
    pub conn_limit: Counter,
    /// Connections closed because a request head did not arrive in time
    /// (`header_timeout`).
    pub header_timeout: Counter,
    /// Idle connections closed after the keep-alive timeout
    /// (`keepalive_timeout`).
    pub keepalive_timeout: Counter,
    /// Connections closed because a write made no progress (`send_timeout`).
    pub send_timeout: Counter,
    /// Accepts that failed for want of file descriptors (`fd_limit`).
    pub fd_limit: Counter,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("strom_balancer");
        let http_family: Family<KindLabel, Counter> = Family::default();
        let kind = |kind| http_family.get_or_create_owned(&KindLabel { kind });
        let http_errors = HttpErrors {
            conn_limit: kind("conn_limit"),
            header_timeout: kind("header_timeout"),
            keepalive_timeout: kind("keepalive_timeout"),
            send_timeout: kind("send_timeout"),
            fd_limit: kind("fd_limit"),
        };
        let m = Metrics {
            decisions: Family::default(),
            refusals: Family::default(),
            refresh: Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            servers_up: Gauge::default(),
            bad_requests: Counter::default(),
            poll_errors: Family::default(),
            zone_fallbacks: Family::default(),
            balancers: Gauge::default(),
            admin: crate::admin::AdminMetrics::default(),
            repeats: Counter::default(),
            repeat_overflow: Counter::default(),
            http_errors,
            registry: Registry::default(),
        };
        registry.register("decisions", "Viewers sent to each server", m.decisions.clone());
        registry.register("refusals", "Requests refused, by reason", m.refusals.clone());
        registry.register("refresh_seconds", "Time to poll every server once", m.refresh.clone());
        registry.register("servers_up", "Servers currently Up", m.servers_up.clone());
        registry.register(
            "bad_requests",
            "Malformed requests (bad IP, untrusted X-Forwarded-For, bad name)",
            m.bad_requests.clone(),
        );
        registry.register(
            "poll_errors",
            "Failed reads of a server, by reason (connect, timeout, status, too_large, parse, missing)",
            m.poll_errors.clone(),
        );
        registry.register(
            "zone_fallbacks",
            "Requests sent to the unfiltered servers because every server of the client's zone was down or full",
            m.zone_fallbacks.clone(),
        );
        // Both reasons are exported from the start, at 0.
        for reason in ["down", "full"] {
            let _ = m.zone_fallbacks.get_or_create(&ReasonLabel { reason });
        }
        registry.register(
            "balancers",
            "Live balancers sharing the servers' room, this one included",
            m.balancers.clone(),
        );
        m.admin.register(&mut registry);
        registry.register(
            "repeat_requests",
            "Decisions for a client address and stream already counted on the chosen server since its last measurement (not counted again)",
            m.repeats.clone(),
        );
        registry.register(
            "repeat_overflow",
            "Decisions counted without being remembered: the memory of recent clients was full",
            m.repeat_overflow.clone(),
        );
        registry.register(
            "http_errors",
            "Connections the front refused or closed on a bound, by kind (conn_limit, header_timeout, keepalive_timeout, send_timeout, fd_limit)",
            http_family,
        );
        Metrics { registry, ..m }
    }
}

/// Poll results per server, for the status API.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PollInfo {
    pub last_refresh_secs_ago: Option<f64>,
    /// What went wrong at the last poll, in the balancer's words.
    pub last_error: Option<String>,
    /// The class of each error of the last poll (`connect`, `timeout`,
    /// `status`, `too_large`, `parse`, `missing`).
    pub error_reasons: Vec<&'static str>,
    /// Where the last client count came from: `prometheus` or `direct`.
    pub load_from: Option<&'static str>,
    #[serde(skip)]
    pub at: Option<Instant>,
}

/// Per Prometheus query: counts by server name, and when they were read.
type LastCounts = HashMap<String, (HashMap<String, u64>, Instant)>;

/// Everything the handlers and the poller share.
pub struct Shared {
    pub config: RwLock<Arc<BalancerConfig>>,
    pub balancer: Mutex<Balancer>,
    pub polls: RwLock<Vec<PollInfo>>,
    pub metrics: Metrics,
    client: reqwest::Client,
    /// Per query: the last counts from Prometheus by server name, and when
    /// they were read.
    prom: Mutex<LastCounts>,
    /// Decision counters by server index (rebuilt on reload), so counting a
    /// decision allocates nothing.
    decided: RwLock<Vec<Counter>>,
    /// The GeoIP country database, when `geoip` is configured.
    geo: RwLock<Option<Arc<maxminddb::Reader<Vec<u8>>>>>,
    /// The config file and the admin API's state over it.
    pub(crate) admin: Mutex<crate::admin::Admin>,
    /// The other balancers and what their last probes said.
    pub(crate) peers: RwLock<Vec<(String, crate::share::PeerState)>>,
    /// Bumped after every config change is in force, so that the front can
    /// keep its copies (config, redirect bases, counters) without locking.
    pub(crate) generation: std::sync::atomic::AtomicU64,
    /// This process's random instance id, sent on `/healthz` as
    /// [`INSTANCE_HEADER`] so that peers know a balancer, and this one
    /// knows itself in its own `peers` list.
    pub(crate) instance: String,
}

/// The response field that marks a balancer's `/healthz` answer; its value
/// is the balancer's instance id.
pub const INSTANCE_HEADER: &str = "x-strom-balancer";

/// A random id for this process: 128 bits from the standard library's
/// randomly keyed hasher (seeded from the operating system).
fn instance_id() -> String {
    use std::hash::BuildHasher;
    let a = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    let b = std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    format!("{a:016x}{b:016x}")
}

/// Opens the configured GeoIP database.
fn open_geoip(cfg: &BalancerConfig) -> Result<Option<Arc<maxminddb::Reader<Vec<u8>>>>, String> {
    match &cfg.geoip {
        None => Ok(None),
        Some(p) => maxminddb::Reader::open_readfile(p)
            .map(|r| Some(Arc::new(r)))
            .map_err(|e| format!("geoip {}: {e}", p.display())),
    }
}

fn specs(cfg: &BalancerConfig) -> (Vec<ServerSpec>, Vec<(String, Vec<String>)>) {
    let servers = cfg
        .servers
        .iter()
        .map(|s| ServerSpec {
            name: s.name.clone(),
            max_clients: s.max_clients,
            monitoring: s.monitoring,
            networks: s.networks.clone(),
            countries: s.countries.clone(),
            closed: false,
        })
        .collect();
    let channels = cfg
        .channels
        .iter()
        .map(|c| (c.name.clone(), c.servers.clone()))
        .collect();
    (servers, channels)
}

fn tuning(cfg: &BalancerConfig) -> Tuning {
    // A server with no fresh measurement for a few refreshes counts as Down.
    Tuning {
        stale_after: (cfg.refresh * 5).max(Duration::from_secs(3)),
        zone_fallback: cfg.zone_fallback,
        ..Tuning::default()
    }
}

impl Shared {
    /// Builds the shared state; fails on an inconsistent config, an
    /// unreadable GeoIP database or an unreadable state file.
    pub fn new(cfg: BalancerConfig) -> Result<Arc<Shared>, String> {
        let admin = crate::admin::Admin::load(cfg)?;
        let cfg = admin.config().clone();
        let (mut servers, channels) = specs(&cfg);
        close(&mut servers, &admin.closed());
        let mut balancer = Balancer::new(servers, channels, tuning(&cfg)).map_err(|e| e.to_string())?;
        // Until probed, every peer counts as live.
        balancer.set_balancers(1 + cfg.peers.len() as u64);
        let peers = cfg
            .peers
            .iter()
            .map(|p| (p.clone(), crate::share::PeerState::Unknown))
            .collect();
        let geo = open_geoip(&cfg)?;
        let n = cfg.servers.len();
        Ok(Arc::new(Shared {
            config: RwLock::new(Arc::new(cfg)),
            balancer: Mutex::new(balancer),
            polls: RwLock::new(vec![PollInfo::default(); n]),
            metrics: Metrics::new(),
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .user_agent(concat!("strom-balancer/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            prom: Mutex::new(HashMap::new()),
            decided: RwLock::new(Vec::new()),
            geo: RwLock::new(geo),
            admin: Mutex::new(admin),
            peers: RwLock::new(peers),
            generation: std::sync::atomic::AtomicU64::new(0),
            instance: instance_id(),
        }))
        .inspect(|s| s.rebuild_counters())
    }

    fn rebuild_counters(&self) {
        let cfg = self.cfg();
        let v = cfg
            .servers
            .iter()
            .map(|x| {
                self.metrics
                    .decisions
                    .get_or_create_owned(&ServerLabel { server: x.name.clone() })
            })
            .collect();
        *self.decided.write().unwrap_or_else(|e| e.into_inner()) = v;
    }

    /// The config in force (the file with the admin API's state applied).
    pub(crate) fn cfg(&self) -> Arc<BalancerConfig> {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn bal(&self) -> std::sync::MutexGuard<'_, Balancer> {
        self.balancer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client that polls servers and peers.
    pub(crate) fn http_client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Applies a new config file and the state file over it (read again),
    /// keeping counters and health of servers that stay.
    pub fn reload(&self, cfg: BalancerConfig) -> Result<(), String> {
        let mut admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let next = crate::admin::Admin::load(cfg)?;
        let peers_changed = next.config().peers != self.cfg().peers;
        self.install(next.config().clone(), &next.closed())?;
        if peers_changed {
            // A new peer list: every peer counts as live until probed.
            let peers = next.config().peers.clone();
            self.bal().set_balancers(1 + peers.len() as u64);
            *self.peers.write().unwrap_or_else(|e| e.into_inner()) = peers
                .into_iter()
                .map(|p| (p, crate::share::PeerState::Unknown))
                .collect();
        }
        *admin = next;
        Ok(())
    }

    /// Puts `cfg` in force, with the servers named in `closed` taking no new
    /// viewers; keeps counters and health of servers that stay.
    pub(crate) fn install(&self, cfg: BalancerConfig, closed: &HashSet<String>) -> Result<(), String> {
        let geo = open_geoip(&cfg)?;
        let (mut servers, channels) = specs(&cfg);
        close(&mut servers, closed);
        self.bal()
            .reconfigure(servers, channels, tuning(&cfg))
            .map_err(|e| e.to_string())?;
        *self.geo.write().unwrap_or_else(|e| e.into_inner()) = geo;
        let n = cfg.servers.len();
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cfg);
        self.polls
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .resize(n, PollInfo::default());
        self.rebuild_counters();
        self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// The decision counters by server index, as they are now.
    pub(crate) fn decision_counters(&self) -> Vec<Counter> {
        self.decided.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Marks the servers named in `closed` as taking no new viewers.
fn close(servers: &mut [ServerSpec], closed: &HashSet<String>) {
    for s in servers {
        s.closed = closed.contains(&s.name);
    }
}

/// Client counts by server name from one Prometheus instant query, for
/// the servers of `kinds`. A sample belongs to a server when its `instance`
/// names it (its name, or its `url`'s host:port); samples of one server are
/// added up.
async fn query_prometheus(
    client: &reqwest::Client,
    cfg: &BalancerConfig,
    query: &str,
    kinds: &[ServerKind],
    timeout: Duration,
) -> Result<HashMap<String, u64>, ReadError> {
    let Some(p) = &cfg.prometheus else {
        return Ok(HashMap::new());
    };
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/query", p.url.trim_end_matches('/')),
        &[("query", query)],
    )
    .map_err(|_| ReadError::new(readings::Fault::Connect, "not a valid URL"))?;
    let (status, body) = poll::fetch_text(client, &url, timeout).await?;
    if status != 200 {
        return Err(ReadError::new(readings::Fault::Status, format!("answered {status}")));
    }
    let samples = readings::prometheus_vector(&body)?;
    let mut out: HashMap<String, u64> = HashMap::new();
    for (instance, value) in samples {
        for s in cfg.servers.iter().filter(|s| kinds.contains(&s.kind)) {
            if s.is_named(&instance) {
                let sum = out.entry(s.name.clone()).or_default();
                *sum = sum.saturating_add(value);
            }
        }
    }
    Ok(out)
}

/// The distinct Prometheus queries the config needs, each with the kinds of
/// the servers it serves.
fn prometheus_queries(cfg: &BalancerConfig) -> Vec<(String, Vec<ServerKind>)> {
    let Some(p) = &cfg.prometheus else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<ServerKind>)> = Vec::new();
    for kind in ServerKind::ALL {
        if !cfg.servers.iter().any(|s| s.kind == kind) {
            continue;
        }
        let q = p.query_for(kind);
        match out.iter_mut().find(|(query, _)| query == q) {
            Some((_, kinds)) => kinds.push(kind),
            None => out.push((q.to_string(), vec![kind])),
        }
    }
    out
}

/// How long counts from a Prometheus that stopped answering are still used
/// before falling back to scraping the servers directly.
fn prometheus_grace(cfg: &BalancerConfig) -> Duration {
    (cfg.refresh * 10).max(Duration::from_secs(5))
}

/// The counts in force for one query: fresh ones (kept as the last known),
/// or the last known ones within `grace`, else none.
fn counts_in_force(
    last: &mut LastCounts,
    query: &str,
    fresh: Option<HashMap<String, u64>>,
    now: Instant,
    grace: Duration,
) -> Option<HashMap<String, u64>> {
    match fresh {
        Some(counts) => {
            last.insert(query.to_string(), (counts.clone(), now));
            Some(counts)
        }
        None => last
            .get(query)
            .filter(|(_, at)| now.saturating_duration_since(*at) <= grace)
            .map(|(counts, _)| counts.clone()),
    }
}

/// Polls every server every `refresh`, at wall-clock ticks, until `stop`.
pub async fn poller(shared: Arc<Shared>, stop: CancellationToken) {
    let mut first = true;
    loop {
        let cfg = shared.cfg();
        // Viewers sent from now on may be missing from the measurement.
        let marks: HashMap<String, u64> = {
            let bal = shared.bal();
            (0..bal.len())
                .filter_map(|i| Some((bal.server_name(i)?.to_string(), bal.sent_mark(i)?)))
                .collect()
        };
        if !std::mem::take(&mut first) {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(crate::share::mark_lead(cfg.refresh)) => {}
            }
        }
        let started = Instant::now();
        let timeout = cfg.refresh.clamp(Duration::from_millis(500), Duration::from_secs(2));
        let queries = prometheus_queries(&cfg);
        let (polls, prom) = tokio::join!(
            futures_util::future::join_all(
                cfg.servers
                    .iter()
                    .map(|s| poll::poll_server(&shared.client, s, timeout))
            ),
            futures_util::future::join_all(queries.iter().map(|(q, kinds)| query_prometheus(
                &shared.client,
                &cfg,
                q,
                kinds,
                timeout
            )))
        );
        let now = Instant::now();
        // Per server: the Prometheus count in force for its kind's query.
        let mut from_prom: HashMap<String, u64> = HashMap::new();
        {
            let mut last = shared.prom.lock().unwrap_or_else(|e| e.into_inner());
            for ((query, kinds), result) in queries.iter().zip(prom) {
                let fresh = match result {
                    Ok(counts) => Some(counts),
                    Err(e) => {
                        tracing::warn!(query = %query, error = %e, "prometheus unavailable");
                        None
                    }
                };
                let counts = counts_in_force(&mut last, query, fresh, now, prometheus_grace(&cfg));
                for s in cfg.servers.iter().filter(|s| kinds.contains(&s.kind)) {
                    if let Some(c) = counts.as_ref().and_then(|m| m.get(&s.name)) {
                        from_prom.insert(s.name.clone(), *c);
                    }
                }
            }
        }
        shared.metrics.refresh.observe(started.elapsed().as_secs_f64());
        {
            let mut bal = shared.bal();
            let mut infos = shared.polls.write().unwrap_or_else(|e| e.into_inner());
            for (server, p) in cfg.servers.iter().zip(polls) {
                // The config may have been reloaded meanwhile: index by name.
                let Some(idx) = bal.server_index(&server.name) else {
                    continue;
                };
                for e in &p.errors {
                    shared
                        .metrics
                        .poll_errors
                        .get_or_create(&ServerReasonLabel {
                            server: server.name.clone(),
                            reason: e.fault.as_str(),
                        })
                        .inc();
                }
                bal.observe_health(idx, p.healthy);
                let (count, from) = match (from_prom.get(&server.name), p.clients) {
                    (Some(&c), _) => (Some(c), "prometheus"),
                    (None, c) => (c, "direct"),
                };
                if let (true, Some(c)) = (p.healthy, count) {
                    match marks.get(&server.name) {
                        Some(&mark) => bal.observe_load_since(idx, c, mark, now),
                        None => bal.observe_load(idx, c, now),
                    }
                }
                if let Some(s) = p.streams {
                    bal.observe_streams(idx, s);
                }
                if let Some(info) = infos.get_mut(idx) {
                    info.at = Some(now);
                    info.last_error = error_text(&p.errors);
                    info.error_reasons = p.errors.iter().map(|e| e.fault.as_str()).collect();
                    info.load_from = count.map(|_| from);
                }
            }
            let up = bal.status(now).iter().filter(|s| s.up).count();
            shared.metrics.servers_up.set(up as i64);
        }
        // The next poll starts at the next tick; its marks a lead before.
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let lead = crate::share::mark_lead(cfg.refresh);
        let mut wait = crate::share::until_tick(since_epoch, cfg.refresh);
        if wait < lead {
            wait += cfg.refresh;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait - lead) => {}
        }
    }
}

/// The errors of one poll as one line for `/api/v1/servers`; `None` if none.
fn error_text(errors: &[ReadError]) -> Option<String> {
    if errors.is_empty() {
        return None;
    }
    Some(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
}

/// The balancer's HTTP application.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/v1/route", get(route_api))
        .merge(crate::admin::routes(shared.clone()))
        .fallback(redirect)
        .with_state(shared)
}

/// `ok`, with this balancer's instance id in [`INSTANCE_HEADER`].
async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    let mut r = "ok\n".into_response();
    if let Ok(v) = HeaderValue::from_str(&s.instance) {
        r.headers_mut().insert(INSTANCE_HEADER, v);
    }
    r
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &s.metrics.registry);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// Every server in force as the status API shows it (before the admin
/// API's fields, [`crate::admin`]).
pub(crate) fn server_list(s: &Shared) -> Vec<serde_json::Value> {
    let now = Instant::now();
    let cfg = s.cfg();
    let status = s.bal().status(now);
    let polls = s.polls.read().unwrap_or_else(|e| e.into_inner()).clone();
    let list: Vec<serde_json::Value> = status
        .into_iter()
        .enumerate()
        .map(|(i, st)| {
            let mut v = serde_json::to_value(&st).unwrap_or_default();
            let p = polls.get(i).cloned().unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                let server = cfg.servers.get(i);
                obj.insert("url".into(), server.map(|s| s.url.clone()).into());
                obj.insert("kind".into(), server.map(|s| s.kind.as_str()).into());
                obj.insert("stream_list".into(), server.map(|s| s.stream_list().as_str()).into());
                obj.insert("error_reasons".into(), p.error_reasons.clone().into());
                obj.insert(
                    "last_refresh_secs_ago".into(),
                    p.at.map(|t| now.duration_since(t).as_secs_f64()).into(),
                );
                obj.insert("last_error".into(), p.last_error.into());
                obj.insert("load_from".into(), p.load_from.into());
            }
            v
        })
        .collect();
    list
}

fn json_error(code: StatusCode, error: &str) -> Response {
    (code, axum::Json(serde_json::json!({ "error": error }))).into_response()
}

fn bad_request(s: &Shared, what: &str) -> Response {
    s.count_bad_request();
    json_error(StatusCode::BAD_REQUEST, what)
}

impl Shared {
    /// Counts a malformed request.
    pub(crate) fn count_bad_request(&self) {
        self.metrics.bad_requests.inc();
    }
}

/// The client address: the TCP peer, or the rightmost untrusted address of
/// `X-Forwarded-For` when the peer is a trusted proxy.
fn client_ip(cfg: &BalancerConfig, req: &Request) -> Result<IpAddr, &'static str> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .ok_or("no peer address")?;
    client_ip_of(
        cfg,
        peer,
        req.headers().get_all("x-forwarded-for").iter().map(|v| v.as_bytes()),
    )
}

/// [`client_ip`] from the peer and the `X-Forwarded-For` values, in order.
pub(crate) fn client_ip_of<'a>(
    cfg: &BalancerConfig,
    peer: SocketAddr,
    xff: impl Iterator<Item = &'a [u8]>,
) -> Result<IpAddr, &'static str> {
    let peer = peer.ip();
    let trusted = |ip: &IpAddr| cfg.trusted_proxies.iter().any(|n| n.contains(ip));
    if !trusted(&peer) {
        return Ok(peer); // X-Forwarded-For from an untrusted peer is ignored
    }
    // Every X-Forwarded-For line, joined in order as nginx does: a proxy
    // may add its own line rather than extend the client's.
    let mut lines = Vec::new();
    for v in xff {
        lines.push(std::str::from_utf8(v).map_err(|_| "malformed X-Forwarded-For")?);
    }
    if lines.is_empty() {
        return Ok(peer);
    }
    let xff = lines.join(",");
    let mut client = peer;
    for part in xff.rsplit(',') {
        let ip: IpAddr = part.trim().parse().map_err(|_| "malformed X-Forwarded-For")?;
        client = ip;
        if !trusted(&ip) {
            break;
        }
    }
    Ok(client)
}

/// The client's ISO country code from the GeoIP database, if any.
fn country(s: &Shared, ip: IpAddr) -> Option<String> {
    let geo = s.geo.read().unwrap_or_else(|e| e.into_inner()).clone()?;
    let found = geo.lookup(ip).ok()?;
    found
        .decode_path::<String>(&[
            maxminddb::PathElement::Key("country"),
            maxminddb::PathElement::Key("iso_code"),
        ])
        .ok()
        .flatten()
}

/// Routes one request; counts the decision or the refusal.
pub(crate) fn decide(s: &Shared, stream: &str, ip: IpAddr) -> Result<usize, Refusal> {
    decide_at(s, stream, ip, Instant::now())
}

/// [`decide`] at `now`.
pub(crate) fn decide_at(s: &Shared, stream: &str, ip: IpAddr, now: Instant) -> Result<usize, Refusal> {
    // Read-locked across the decision: no one waits for `decided` while
    // holding the balancer.
    let decided = s.decided.read().unwrap_or_else(|e| e.into_inner());
    decide_with(s, stream, ip, now, &decided, true)
}

/// [`decide_at`] with the decision counters given, and the GeoIP lookup
/// only if `geo` (a config with `geoip`).
pub(crate) fn decide_with(
    s: &Shared,
    stream: &str,
    ip: IpAddr,
    now: Instant,
    decided: &[Counter],
    geo: bool,
) -> Result<usize, Refusal> {
    let country = if geo { country(s, ip) } else { None };
    let routed = s.bal().route_with(stream, ip, country.as_deref(), now);
    if let Some(reason) = routed.fallback {
        s.metrics
            .zone_fallbacks
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }
    match routed.counted {
        crate::balancer::Counted::Repeat => s.metrics.repeats.inc(),
        crate::balancer::Counted::Overflow => s.metrics.repeat_overflow.inc(),
        crate::balancer::Counted::New | crate::balancer::Counted::No => 0,
    };
    let r = routed.server;
    match &r {
        Ok(i) => {
            if let Some(c) = decided.get(*i) {
                c.inc();
            }
        }
        Err(e) => {
            s.metrics
                .refusals
                .get_or_create(&ReasonLabel { reason: e.as_str() })
                .inc();
        }
    }
    r
}

fn refusal(e: Refusal) -> Response {
    json_error(
        StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        e.as_str(),
    )
}

/// Where server `i` takes viewers: its `public` address, else its `url`.
pub(crate) fn public_base(cfg: &BalancerConfig, i: usize) -> Option<String> {
    let s = cfg.servers.get(i)?;
    let p = s.public.as_deref().unwrap_or(&s.url).trim_end_matches('/');
    Some(if p.contains("://") {
        p.to_string()
    } else {
        format!("http://{p}")
    })
}

async fn route_api(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let cfg = s.cfg();
    let query = req.uri().query();
    let Some(stream) = query_param(query, "stream").filter(|n| strom_config::check_stream_name(n).is_ok()) else {
        return bad_request(&s, "missing or bad `stream`");
    };
    let ip = match query_param(query, "ip") {
        Some(v) => match v.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => return bad_request(&s, "bad `ip`"),
        },
        None => match client_ip(&cfg, &req) {
            Ok(ip) => ip,
            Err(e) => return bad_request(&s, e),
        },
    };
    match decide(&s, stream, ip) {
        Ok(i) => {
            let server = cfg.servers.get(i).map(|x| x.name.clone()).unwrap_or_default();
            let url = public_base(&cfg, i).unwrap_or_default();
            axum::Json(serde_json::json!({ "server": server, "url": url })).into_response()
        }
        Err(e) => refusal(e),
    }
}

/// 405 for a method other than GET and HEAD on a playback path.
pub(crate) fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, HeaderValue::from_static("GET, HEAD"))],
        axum::Json(serde_json::json!({ "error": "method not allowed" })),
    )
        .into_response()
}

async fn redirect(State(s): State<Arc<Shared>>, req: Request) -> Response {
    // Only a player's read is a viewer: any other method is neither
    // redirected nor counted.
    if req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD {
        return method_not_allowed();
    }
    let cfg = s.cfg();
    let path = req.uri().path();
    let Some((name, _resource)) = path.trim_start_matches('/').rsplit_once('/') else {
        return json_error(StatusCode::NOT_FOUND, "nothing_to_play");
    };
    if strom_config::check_stream_name(name).is_err() {
        return bad_request(&s, "bad stream name");
    }
    let ip = match client_ip(&cfg, &req) {
        Ok(ip) => ip,
        Err(e) => return bad_request(&s, e),
    };
    match decide(&s, name, ip) {
        Ok(i) => {
            let Some(base) = public_base(&cfg, i) else {
                return json_error(StatusCode::SERVICE_UNAVAILABLE, "limit");
            };
            let q = append_param(req.uri().query(), HOP_PARAM, "1");
            match HeaderValue::from_str(&format!("{base}{path}?{q}")) {
                Ok(loc) => (
                    StatusCode::FOUND,
                    [
                        (header::LOCATION, loc),
                        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                    ],
                )
                    .into_response(),
                Err(_) => bad_request(&s, "bad request target"),
            }
        }
        Err(e) => refusal(e),
    }
}

/// Connection bounds of the balancer's listeners: the node's defaults
/// (`client_header_timeout`, `keepalive_timeout`, `max_connections`), and
/// its send timeout. Every answer is a short redirect or JSON document.
const TIMEOUTS: strom_node::net::Timeouts = strom_node::net::Timeouts {
    header: strom_config::model::DEFAULT_CLIENT_HEADER_TIMEOUT,
    keepalive: strom_config::model::DEFAULT_KEEPALIVE_TIMEOUT,
    send: Duration::from_secs(15),
};

/// Runs the balancer until `shutdown`.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) -> std::io::Result<()> {
    let cfg = shared.cfg();
    strom_node::net::raise_fd_limit(strom_config::model::DEFAULT_MAX_CONNECTIONS);
    tokio::spawn(poller(shared.clone(), shutdown.clone()));
    tokio::spawn(crate::peers::run(shared.clone(), shutdown.clone()));
    // The front answers viewers itself and hands the rest to the router,
    // with a node's bounds (timeouts, connection cap, EMFILE back-off).
    let limits = crate::front::Limits {
        header: TIMEOUTS.header,
        keepalive: TIMEOUTS.keepalive,
        send: TIMEOUTS.send,
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(
        usize::try_from(strom_config::model::DEFAULT_MAX_CONNECTIONS).unwrap_or(usize::MAX),
    ));
    let mut servers = tokio::task::JoinSet::new();
    for addr in &cfg.http {
        let l = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(%addr, "balancer listening");
        servers.spawn(crate::front::serve(
            l,
            shared.clone(),
            router(shared.clone()),
            limits,
            slots.clone(),
            shutdown.clone(),
        ));
    }
    while let Some(r) = servers.join_next().await {
        if let Ok(Err(e)) = r {
            shutdown.cancel();
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> BalancerConfig {
        strom_config::parse_balancer("b.conf", text).expect("valid test config")
    }

    #[test]
    fn one_query_per_distinct_text_for_the_kinds_present() {
        let c = cfg(
            "source prometheus http://p { query flussonic 'f'; query nimble 'n'; }\n\
                     server s { url http://a; max_clients 1; }\n\
                     server f { kind flussonic; url http://b; max_clients 1; }\n\
                     server w { kind wowza; url http://c; max_clients 1; }\n\
                     channel x { servers w; }",
        );
        let q = prometheus_queries(&c);
        assert_eq!(
            q,
            vec![
                (
                    strom_config::model::DEFAULT_PROMETHEUS_QUERY.to_string(),
                    vec![ServerKind::Strom, ServerKind::Wowza]
                ),
                ("f".to_string(), vec![ServerKind::Flussonic]),
            ],
            "no nimble server, no nimble query"
        );
        assert!(prometheus_queries(&cfg("server s { url http://a; max_clients 1; }")).is_empty());
    }

    #[test]
    fn counts_are_kept_for_the_grace_period_per_query() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(5);
        let mut last = HashMap::new();
        let counts = HashMap::from([("s".to_string(), 3)]);
        assert_eq!(
            counts_in_force(&mut last, "q", Some(counts.clone()), t0, grace),
            Some(counts.clone())
        );
        assert_eq!(counts_in_force(&mut last, "q", None, t0 + grace, grace), Some(counts));
        assert_eq!(
            counts_in_force(&mut last, "q", None, t0 + grace + Duration::from_millis(1), grace),
            None
        );
        assert_eq!(counts_in_force(&mut last, "other", None, t0, grace), None);
    }

    #[test]
    fn error_lines_join_every_error() {
        let e = |m: &str| ReadError::new(readings::Fault::Parse, m);
        assert_eq!(error_text(&[]), None);
        assert_eq!(error_text(&[e("a"), e("b")]).as_deref(), Some("a; b"));
    }
}

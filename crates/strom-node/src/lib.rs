//! strom-node: a media node. Ingest, per-stream supervision, delivery over
//! HTTP (HLS, HTTP-TS), the cluster, metrics and the JSON API.
//!
//! The rooms (see `docs/architecture.md`):
//! - [`stream`]: the protocol-neutral stream, its supervisor (sans-IO
//!   [`stream::control`] plus a tokio driver) and the one pipeline every
//!   input feeds;
//! - [`input`]: one module per input kind (UDP, HTTP pull, HTTP push, file,
//!   cluster feed);
//! - [`output`]: one module per output (HLS, HTTP-TS, cluster feed),
//!   registered in [`output::REGISTRY`];
//! - [`http`]: the router, request parsing and the playback gate (peer
//!   redirect, then authorization, then the output that claims the URL);
//! - [`api`]: the JSON API; [`cluster`]: restreaming and peering.
//!
//! [`run`] builds a [`Node`] from a [`Config`], starts one stream task per
//! stream, the cluster tasks and a once-a-second ticker, and serves
//! [`http::router`] on every configured address until shutdown. All media
//! parsing and muxing lives in `strom-media`.

pub mod access;
pub mod api;
pub mod cluster;
pub mod dvr;
pub mod http;
pub mod ingest;
pub mod input;
pub mod metrics;
pub mod net;
pub mod output;
pub mod rtmp;
pub mod srt;
pub mod stream;
pub mod util;
pub mod zc;

use metrics::Metrics;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use stream::{Stream, StreamSpec};
use strom_config::Config;
use tokio_util::sync::CancellationToken;

/// A connection that accepts no bytes for this long is closed.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// How long shutdown waits for open connections, then for stream tasks.
const DRAIN: Duration = Duration::from_secs(5);

/// A running node's shared state.
pub struct Node {
    /// Configured streams and streams restreamed from sources, by name.
    streams: RwLock<HashMap<String, Arc<Stream>>>,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
    pub config: Config,
    /// Replay cache for node-to-node requests.
    pub verifier: cluster::auth::Verifier,
    /// Source connection states, for the API.
    pub sources: cluster::SourceStates,
    /// What this node knows about its peers.
    pub peers: cluster::peers::Directory,
    /// This node's own address for absolute playlist URLs.
    pub public_base: http::request::PublicBase,
    /// Play authorization and viewer sessions.
    pub access: Arc<access::Access>,
    /// Stream archives (DVR).
    pub dvr: Arc<dvr::Dvr>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// `what` is the listener's directive: `http`, `rtmp`, `srt`.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("http server failed: {0}")]
    Serve(std::io::Error),
}

impl Node {
    /// Builds the node's state from a validated config.
    pub fn new(config: &Config, shutdown: CancellationToken) -> Arc<Node> {
        let metrics = Arc::new(Metrics::new());
        let dvr = Arc::new(dvr::Dvr::new(metrics.dvr.clone()));
        let streams = config
            .streams
            .iter()
            .map(|s| {
                let mut cfg = s.clone();
                cfg.dvr = cfg.dvr.or_else(|| config.dvr.clone());
                // `dvr_offline`: an on-demand stream keeps running (and
                // recording) without viewers.
                if cfg.dvr.as_ref().is_some_and(|d| d.offline) {
                    cfg.ondemand = false;
                }
                let mut spec = StreamSpec::configured(cfg);
                spec.archive = spec.cfg.dvr.as_ref().map(|d| dvr.archive(&s.name, d));
                let stream = Stream::new(spec, metrics.stream(&s.name), output::REGISTRY);
                (s.name.clone(), stream)
            })
            .collect();
        Arc::new(Node {
            streams: RwLock::new(streams),
            access: access::Access::new(config, metrics.clone()),
            dvr,
            metrics,
            shutdown,
            config: config.clone(),
            verifier: cluster::auth::Verifier::default(),
            sources: cluster::SourceStates::new(config),
            peers: cluster::peers::Directory::new(config),
            public_base: http::request::PublicBase {
                public: config.public.clone(),
                ports: config.http.iter().map(|a| a.port()).collect(),
                hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty()),
            },
        })
    }

    /// Viewers now (live, not the once-a-second gauge), over every output.
    pub fn current_clients(&self) -> u64 {
        self.access.total_clients()
    }

    /// This node's load and limits.
    pub fn load(&self) -> strom_api::NodeLoad {
        strom_api::NodeLoad {
            clients: self.current_clients(),
            max_clients: self.config.max_clients,
            output_bitrate: self.metrics.server_output_bitrate.get().max(0) as u64,
            max_bitrate: self.config.max_bitrate,
        }
    }

    /// The stream called `name`, configured or restreamed.
    pub fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every stream, sorted by name.
    pub fn all_streams(&self) -> Vec<Arc<Stream>> {
        let mut v: Vec<_> = self
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Adds a stream unless one of that name exists; returns whether it was added.
    pub fn add_stream(&self, stream: Arc<Stream>) -> bool {
        let mut m = self.streams.write().unwrap_or_else(|e| e.into_inner());
        if m.contains_key(&*stream.name) {
            return false;
        }
        m.insert(stream.name.to_string(), stream);
        true
    }

    /// Removes a stream; true if it was there.
    pub fn remove_stream(&self, name: &str) -> bool {
        self.streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .is_some()
    }
}

/// `http://HOST:PORT` for a listen address, for log lines a person can click.
fn display_base(addr: SocketAddr) -> String {
    match addr {
        a if a.ip().is_unspecified() => format!("http://localhost:{}", a.port()),
        SocketAddr::V6(a) => format!("http://[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => format!("http://{a}"),
    }
}

/// Runs a node until `shutdown` is cancelled, then drains connections for a
/// few seconds, stops every stream and joins their tasks.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), NodeError> {
    net::raise_fd_limit(config.max_connections);
    let node = Node::new(&config, shutdown.clone());
    let authorized = config.on_play.is_some()
        || config.token_secret.is_some()
        || config
            .streams
            .iter()
            .any(|s| s.on_play.is_some() || s.token_secret.is_some())
        || config
            .sources
            .iter()
            .any(|s| s.on_play.is_some() || s.token_secret.is_some());
    if authorized && config.view_auth.is_none() && config.edit_auth.is_none() {
        tracing::warn!(
            "play authorization is on but the JSON API is open: anyone can list viewers' tokens and kick them \
             (/api/v1/sessions); set view_auth and edit_auth"
        );
    }
    let records = config.dvr.is_some()
        || config.streams.iter().any(|s| s.dvr.is_some())
        || config.sources.iter().any(|s| s.dvr.is_some());
    if records && config.edit_auth.is_none() {
        tracing::warn!(
            "DVR is on but the JSON API has no edit_auth: anyone who reaches it can delete archive ranges \
             (DELETE /api/v1/streams/NAME/dvr/ranges); set edit_auth"
        );
    }
    let mut listeners = Vec::new();
    for addr in &config.http {
        let l = net::listen(*addr).map_err(|source| NodeError::Bind {
            what: "http",
            addr: *addr,
            source,
        })?;
        let bound = l.local_addr().unwrap_or(*addr);
        tracing::info!(addr = %bound, "listening");
        listeners.push(l);
    }
    let mut rtmp_listeners = Vec::new();
    for addr in &config.rtmp {
        let l = net::listen(*addr).map_err(|source| NodeError::Bind {
            what: "rtmp",
            addr: *addr,
            source,
        })?;
        tracing::info!(addr = %l.local_addr().unwrap_or(*addr), "rtmp listening");
        rtmp_listeners.push(l);
    }
    let mut srt_listeners = Vec::new();
    for l in &config.srt {
        let b = srt::bind(l).map_err(|e| NodeError::Bind {
            what: "srt",
            addr: l.addr,
            source: std::io::Error::other(e),
        })?;
        srt_listeners.push(b);
    }
    if let Some(first) = listeners.first().and_then(|l| l.local_addr().ok()) {
        let base = display_base(first);
        for s in node.all_streams() {
            tracing::info!(stream = %s.name, hls = %format!("{base}/{}/index.m3u8", s.name), mpegts = %format!("{base}/{}/mpegts", s.name), "playback");
        }
    }
    let streams_stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for s in node.all_streams() {
        tasks.spawn(stream::task::supervise(
            s,
            Arc::new(input::Inputs),
            streams_stop.clone(),
        ));
    }
    tasks.spawn(cluster::manager::run(node.clone(), streams_stop.clone()));
    tasks.spawn(cluster::peers::run(node.clone(), streams_stop.clone()));
    tasks.spawn(ticker(node.clone(), streams_stop.clone()));
    tasks.spawn(dvr::run_retention(node.dvr.clone(), streams_stop.clone()));
    for l in rtmp_listeners {
        tasks.spawn(rtmp::serve(node.clone(), l, shutdown.clone()));
    }
    for b in srt_listeners {
        tasks.spawn(srt::serve_on(node.clone(), b, shutdown.clone()));
    }

    let app = http::router(node.clone());
    let kind = |kind| {
        node.metrics
            .http_errors
            .get_or_create_owned(&metrics::KindLabel { kind })
    };
    let opts = net::ServeOptions {
        timeouts: net::Timeouts {
            header: config.client_header_timeout,
            keepalive: config.keepalive_timeout,
            send: SEND_TIMEOUT,
        },
        // One cap over every listener: it guards the process's descriptors.
        slots: Arc::new(tokio::sync::Semaphore::new(
            usize::try_from(config.max_connections).unwrap_or(usize::MAX),
        )),
        counters: net::ConnCounters {
            send_timeouts: kind("send_timeout"),
            header_timeouts: kind("header_timeout"),
            refused: kind("conn_limit"),
            fd_exhausted: kind("fd_limit"),
        },
    };
    let mut servers = tokio::task::JoinSet::new();
    for l in listeners {
        servers.spawn(net::serve(l, app.clone(), opts.clone(), shutdown.clone()));
    }
    let mut result = Ok(());
    tokio::select! {
        _ = shutdown.cancelled() => {}
        r = servers.join_next() => {
            if let Some(Ok(Err(e))) = r {
                result = Err(NodeError::Serve(e));
            }
            shutdown.cancel();
        }
    }
    // Long-lived responses (HTTP-TS, cluster feeds) end when their stream closes.
    for s in node.all_streams() {
        s.closing.cancel();
    }
    let drain = async { while servers.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, drain).await.is_err() {
        tracing::warn!("connections still open after {} s: closing", DRAIN.as_secs());
    }
    streams_stop.cancel();
    let join = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, join).await.is_err() {
        tracing::warn!("stream tasks still running after {} s: aborting", DRAIN.as_secs());
        tasks.shutdown().await;
    }
    tracing::info!("stopped");
    result
}

/// Once a second: viewer counts, bitrates and server totals.
async fn ticker(node: Arc<Node>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_in: HashMap<String, u64> = HashMap::new();
    let mut last_out_total = 0u64;
    let mut in_rate: HashMap<String, f64> = HashMap::new();
    let mut out_rate = 0f64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (mut clients, mut online, mut out_total) = (0i64, 0i64, 0u64);
        let now = Instant::now();
        for s in node.all_streams() {
            let m = &s.metrics;
            for o in s.outputs.iter() {
                o.tick(now);
            }
            for (proto, n) in node.access.clients(&s.name) {
                node.metrics.clients_gauge(&s.name, proto).set(n as i64);
                clients += n as i64;
            }
            online += m.alive.get();
            out_total += m.bytes_out.get();
            let now_in = m.input_bytes.get();
            let prev = last_in.insert(s.name.to_string(), now_in).unwrap_or(now_in);
            // Smoothed over a few seconds: inputs arrive in bursts.
            let r = in_rate.entry(s.name.to_string()).or_default();
            *r = *r * 0.7 + (now_in.saturating_sub(prev) * 8) as f64 * 0.3;
            m.input_bitrate.set(*r as i64);
        }
        // Forget streams that are gone (restreamed streams come and go).
        let names = node.all_streams();
        last_in.retain(|k, _| names.iter().any(|s| *s.name == **k));
        in_rate.retain(|k, _| names.iter().any(|s| *s.name == **k));
        let delta = out_total.saturating_sub(last_out_total);
        last_out_total = out_total;
        out_rate = out_rate * 0.7 + (delta * 8) as f64 * 0.3;
        node.metrics.server_clients.set(clients);
        node.access.tick(&node, node.access.remote_of(&node));
        node.metrics.server_online_streams.set(online);
        node.metrics.server_output_bitrate.set(out_rate as i64);
    }
}

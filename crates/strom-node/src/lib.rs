//! strom-node: a media node. Ingest, per-stream supervision, delivery over
//! HTTP (HLS, HTTP-TS), metrics and the JSON API.
//!
//! Shape: [`run`] builds a [`Node`] from a [`Config`], starts one
//! [`supervisor`] task per stream, one ticker for rates and viewer counts,
//! and serves [`http::router`] on every configured address until shutdown.
//! All media parsing and muxing lives in `strom-media`; this crate only moves
//! bytes between sockets and those pure functions.

pub mod cluster;
pub mod failover;
pub mod http;
pub mod hub;
pub mod input;
pub mod live;
pub mod metrics;
pub mod net;
pub mod supervisor;

use hub::StreamHub;
use metrics::Metrics;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use strom_config::Config;
use tokio_util::sync::CancellationToken;

/// A connection that accepts no bytes for this long is closed.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// A running node's shared state.
pub struct Node {
    /// Configured streams and streams restreamed from sources, by name.
    streams: RwLock<HashMap<String, Arc<StreamHub>>>,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
    pub config: Config,
    /// Replay cache for node-to-node requests.
    pub verifier: cluster::auth::Verifier,
    /// Source connection states, for the API.
    pub sources: cluster::SourceStates,
    /// What this node knows about its peers.
    pub peers: cluster::peers::Directory,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("http server failed: {0}")]
    Serve(std::io::Error),
}

impl Node {
    /// Builds the node's state from a validated config.
    pub fn new(config: &Config, shutdown: CancellationToken) -> Arc<Node> {
        let metrics = Arc::new(Metrics::new());
        let streams = config
            .streams
            .iter()
            .map(|s| (s.name.clone(), StreamHub::new(s.clone(), metrics.stream(&s.name))))
            .collect();
        Arc::new(Node {
            streams: RwLock::new(streams),
            metrics,
            shutdown,
            config: config.clone(),
            verifier: cluster::auth::Verifier::default(),
            sources: cluster::SourceStates::new(config),
            peers: cluster::peers::Directory::new(config),
        })
    }

    /// Viewers now (live count, not the once-a-second gauge): open HTTP-TS
    /// connections plus active HLS sessions.
    pub fn current_clients(&self) -> u64 {
        self.all_streams()
            .iter()
            .map(|h| h.mpegts_viewers.load(std::sync::atomic::Ordering::Relaxed) as u64 + h.session_count() as u64)
            .sum()
    }

    /// This node's load and limits.
    pub fn load(&self) -> cluster::server::NodeLoad {
        cluster::server::NodeLoad {
            clients: self.current_clients(),
            max_clients: self.config.max_clients,
            output_bitrate: self.metrics.server_output_bitrate.get().max(0) as u64,
            max_bitrate: self.config.max_bitrate,
        }
    }

    /// The stream called `name`, configured or restreamed.
    pub fn stream(&self, name: &str) -> Option<Arc<StreamHub>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every stream, sorted by name.
    pub fn all_streams(&self) -> Vec<Arc<StreamHub>> {
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
    pub fn add_stream(&self, hub: Arc<StreamHub>) -> bool {
        let mut m = self.streams.write().unwrap_or_else(|e| e.into_inner());
        if m.contains_key(&hub.name) {
            return false;
        }
        m.insert(hub.name.clone(), hub);
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

/// Runs a node until `shutdown` is cancelled, then drains connections for a
/// few seconds and stops every stream.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), NodeError> {
    let node = Node::new(&config, shutdown.clone());
    let mut listeners = Vec::new();
    for addr in &config.http {
        let l = net::listen(*addr).map_err(|source| NodeError::Bind { addr: *addr, source })?;
        tracing::info!(%addr, "listening");
        listeners.push(l);
    }
    let streams_stop = CancellationToken::new();
    for hub in node.all_streams() {
        tokio::spawn(supervisor::run(hub, streams_stop.clone()));
    }
    tokio::spawn(cluster::manager::run(node.clone(), streams_stop.clone()));
    tokio::spawn(cluster::peers::run(node.clone(), streams_stop.clone()));
    tokio::spawn(ticker(node.clone(), shutdown.clone()));

    let app = http::router(node.clone());
    let mut servers = tokio::task::JoinSet::new();
    for l in listeners {
        let app = app.clone();
        let stop = shutdown.clone();
        let timeouts = node
            .metrics
            .http_errors
            .get_or_create_owned(&metrics::KindLabel { kind: "send_timeout" });
        let l = net::GuardedListener::new(l, SEND_TIMEOUT, timeouts);
        servers.spawn(async move {
            axum::serve(l, app.into_make_service_with_connect_info::<net::PeerAddr>())
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });
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
    // Long-lived HTTP-TS responses end on `shutdown` too; bound the drain anyway.
    let drain = async { while servers.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain).await.is_err() {
        tracing::warn!("connections still open after 5 s: closing");
    }
    streams_stop.cancel();
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
        for hub in node.all_streams() {
            let m = &hub.metrics;
            let hls = hub.prune_sessions() as i64;
            let ts = hub.mpegts_viewers.load(std::sync::atomic::Ordering::Relaxed) as i64;
            m.clients_hls.set(hls);
            m.clients_mpegts.set(ts);
            clients += hls + ts;
            online += m.alive.get();
            out_total += m.bytes_out.get();
            let now_in = m.input_bytes.get();
            let prev = last_in.insert(hub.name.clone(), now_in).unwrap_or(now_in);
            // Smoothed over a few seconds: inputs arrive in bursts.
            let r = in_rate.entry(hub.name.clone()).or_default();
            *r = *r * 0.7 + (now_in.saturating_sub(prev) * 8) as f64 * 0.3;
            m.input_bitrate.set(*r as i64);
        }
        let delta = out_total.saturating_sub(last_out_total);
        last_out_total = out_total;
        out_rate = out_rate * 0.7 + (delta * 8) as f64 * 0.3;
        node.metrics.server_clients.set(clients);
        node.metrics.server_online_streams.set(online);
        node.metrics.server_output_bitrate.set(out_rate as i64);
    }
}

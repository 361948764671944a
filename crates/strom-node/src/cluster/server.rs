//! Source side of the cluster protocol: `GET {PREFIX}/streams` lists the
//! streams this node can give, `GET {PREFIX}/segments/NAME?from=SEQ` streams
//! segments as wire messages over one long-lived response.
//!
//! The feed sends every segment still in the window with `seq >= from`, then
//! each new segment the moment the hub finalises it (it waits on the hub's
//! watch channel, not on a timer), and a heartbeat after a second of quiet so
//! the puller can tell a hung connection from a quiet stream. A `from` beyond
//! the next segment (a restreamer whose numbering is ahead of ours) starts at
//! the newest segment instead of waiting forever.

use super::auth;
use crate::hub::StreamHub;
use crate::Node;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// Quiet time after which the feed sends a heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Response header: discontinuities before the first segment of the feed.
pub const HEADER_DISCONTINUITIES: &str = "x-strom-discontinuities-before";

/// One entry of the stream list.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RemoteStream {
    pub name: String,
    /// `static` (always running) or `ondemand`.
    pub mode: String,
    pub codecs: Vec<String>,
    pub last_seq: Option<u64>,
    /// Delivering fresh segments now (peering sends viewers only to live streams or on-demand ones).
    #[serde(default)]
    pub alive: Option<bool>,
}

/// A node's load, as peers see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeLoad {
    pub clients: u64,
    pub max_clients: Option<u64>,
    /// Bits per second.
    pub output_bitrate: u64,
    pub max_bitrate: Option<u64>,
}

impl NodeLoad {
    /// At or over a configured limit.
    pub fn overloaded(&self) -> bool {
        self.max_clients.is_some_and(|m| self.clients >= m)
            || self.max_bitrate.is_some_and(|m| self.output_bitrate >= m)
    }

    /// The larger of clients/max_clients and bitrate/max_bitrate (0 without limits).
    pub fn ratio(&self) -> f64 {
        let r = |v: u64, m: Option<u64>| m.filter(|m| *m > 0).map_or(0.0, |m| v as f64 / m as f64);
        r(self.clients, self.max_clients).max(r(self.output_bitrate, self.max_bitrate))
    }

    /// Clamps every value a peer claims to `max`.
    pub fn bounded(self, max: u64) -> Self {
        NodeLoad {
            clients: self.clients.min(max),
            max_clients: self.max_clients.map(|v| v.min(max)),
            output_bitrate: self.output_bitrate.min(max),
            max_bitrate: self.max_bitrate.map(|v| v.min(max)),
        }
    }
}

/// The stream list as JSON.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StreamList {
    pub streams: Vec<RemoteStream>,
    /// The answering node's load (for peering).
    #[serde(default)]
    pub load: Option<NodeLoad>,
}

/// Checks the request's signature; on failure logs, counts and returns the 403.
fn refuse(node: &Node, req: &Request) -> Option<Response> {
    let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let signed = auth::Signed {
        method: req.method().as_str(),
        path_and_query: path,
        time: h(auth::HEADER_TIME),
        nonce: h(auth::HEADER_NONCE),
        signature: h(auth::HEADER_SIGNATURE),
    };
    let e = node
        .verifier
        .verify(node.config.cluster_key.as_deref(), signed, auth::unix_now())
        .err()?;
    node.metrics.cluster_error("auth");
    tracing::warn!(path, error = %e, "cluster request refused");
    Some((StatusCode::FORBIDDEN, format!("cluster authentication failed: {e}\n")).into_response())
}

/// `GET {PREFIX}/streams`.
pub async fn list(State(node): State<Arc<Node>>, req: Request) -> Response {
    if let Some(r) = refuse(&node, &req) {
        return r;
    }
    let streams = node
        .all_streams()
        .iter()
        .map(|h| {
            let snap = h.snapshot();
            RemoteStream {
                name: h.name.clone(),
                mode: if h.cfg.ondemand { "ondemand" } else { "static" }.to_string(),
                codecs: snap.tracks.iter().filter_map(|t| t.codec_string.clone()).collect(),
                last_seq: snap.last_seq,
                alive: Some(h.healthy() || snap.status == crate::hub::Status::Backup),
            }
        })
        .collect();
    axum::Json(StreamList {
        streams,
        load: Some(node.load()),
    })
    .into_response()
}

fn query_from(req: &Request) -> Option<u64> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("from=")?.parse().ok())
}

/// `GET {PREFIX}/segments/NAME?from=SEQ`.
pub async fn segments(State(node): State<Arc<Node>>, req: Request) -> Response {
    if let Some(r) = refuse(&node, &req) {
        return r;
    }
    let path = req.uri().path();
    let Some(name) = path.strip_prefix(&format!("{}/segments/", super::PREFIX)) else {
        return (StatusCode::NOT_FOUND, "no such stream\n").into_response();
    };
    let Some(hub) = node.stream(name) else {
        return (StatusCode::NOT_FOUND, "no such stream\n").into_response();
    };
    hub.touch();
    // Subscribe before reading the window so no segment slips between.
    let rx = hub.subscribe_segments();
    let newest = hub.newest_seq();
    let oldest = hub.segments_from(0).first().map(|s| s.segment.seq);
    let start = match (query_from(&req), newest, oldest) {
        (Some(f), Some(n), _) if f > n + 1 => n,
        (Some(f), _, _) => f,
        (None, _, Some(o)) => o,
        (None, _, None) => 0,
    };
    let before = hub.discontinuities_before(start);
    let feed = Feed {
        hub,
        rx,
        next: start,
        shutdown: node.shutdown.clone(),
    };
    let body = futures_util::stream::unfold(feed, |mut f| async move {
        let b = f.next().await?;
        Some((Ok::<_, std::convert::Infallible>(b), f))
    });
    let mut resp = (
        [(header::CONTENT_TYPE, "application/x-strom-segments")],
        Body::from_stream(body),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&before.to_string()) {
        resp.headers_mut().insert(HEADER_DISCONTINUITIES, v);
    }
    resp
}

struct Feed {
    hub: Arc<StreamHub>,
    rx: tokio::sync::watch::Receiver<Option<u64>>,
    next: u64,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Feed {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            // Keeps an on-demand source stream running while restreamers pull it.
            self.hub.touch();
            if let Some(seg) = self.hub.segments_from(self.next).into_iter().next() {
                self.next = seg.segment.seq + 1;
                let b = seg.wire();
                self.hub.metrics.bytes_out.inc_by(b.len() as u64);
                return Some(b);
            }
            let waited = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                r = tokio::time::timeout(HEARTBEAT, self.rx.changed()) => r,
            };
            match waited {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return None, // the stream was removed
                Err(_) => {
                    return Some(strom_media::wire::encode_heartbeat(self.hub.newest_seq()));
                }
            }
        }
    }
}

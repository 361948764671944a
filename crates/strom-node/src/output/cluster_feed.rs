//! Cluster segment feed: the output restreamers pull
//! (`GET /api/v1/cluster/segments/NAME?from=SEQ`, signed).
//!
//! Each segment is encoded once as a wire message (`strom_media::wire`),
//! lazily, and shared by every restreamer and the DVR writer
//! ([`StoredSegment::wire`]). The feed sends every segment still in the window from `from`
//! on, then each new segment the moment the pipeline finishes it (it waits
//! on the stream's newest-segment watch, not a timer), and a heartbeat after
//! [`HEARTBEAT`] of quiet so the puller can tell a hung connection from a
//! quiet stream. A `from` beyond the next segment (a restreamer whose
//! numbering is ahead of ours) starts at the newest segment, and with an
//! empty window the feed starts at the first segment cut, instead of
//! waiting forever.
//!
//! Not a playback URL: the node-to-node signature replaces the playback
//! gate, and the route is registered in [`crate::http::router`].

use super::{Output, OutputCtx};
use crate::cluster::server::refuse;
use crate::stream::window::StoredSegment;
use crate::stream::{DemandGuard, Stream};
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

/// The cluster feed output of one stream.
pub struct ClusterFeed {
    slot: usize,
}

/// Registers the cluster feed output.
pub fn build(ctx: &OutputCtx) -> Arc<dyn Output> {
    Arc::new(ClusterFeed { slot: ctx.slot })
}

impl ClusterFeed {
    /// The segment as one wire message; encoded once, shared by every restreamer.
    pub fn wire(&self, seg: &StoredSegment) -> Bytes {
        seg.wire()
    }
}

impl Output for ClusterFeed {
    fn name(&self) -> &'static str {
        "cluster"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn query_from(req: &Request) -> Option<u64> {
    strom_api::query_param(req.uri().query(), "from")?.parse().ok()
}

/// `GET {PREFIX}/segments/NAME?from=SEQ`.
pub async fn serve(State(node): State<Arc<Node>>, req: Request) -> Response {
    if let Some(r) = refuse(&node, &req) {
        return r;
    }
    let prefix = format!("{}/segments/", crate::cluster::PREFIX);
    let stream = req
        .uri()
        .path()
        .strip_prefix(&prefix)
        .and_then(|name| node.stream(name));
    let Some(stream) = stream else {
        return (StatusCode::NOT_FOUND, "no such stream\n").into_response();
    };
    let Some(slot) = stream.outputs.find::<ClusterFeed>().map(|f| f.slot) else {
        return (StatusCode::NOT_FOUND, "stream has no cluster feed\n").into_response();
    };
    let demand = stream.hold();
    // Subscribe before reading the window so no segment slips between.
    let rx = stream.subscribe_segments();
    let (start, before) = {
        let w = stream.window();
        let start = match (query_from(&req), w.newest_seq(), w.oldest_seq()) {
            // Ahead of us (a restreamer numbering above us): our newest.
            (Some(f), Some(n), _) if f > n.saturating_add(1) => n,
            (Some(f), Some(_), _) => f,
            (None, _, o) => o.unwrap_or(0),
            // Nothing held yet: whatever comes first.
            (Some(_), None, _) => 0,
        };
        (start, w.discontinuities_before(start))
    };
    let feed = Feed {
        stream,
        feed: ClusterFeed { slot },
        rx,
        next: start,
        _demand: demand,
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
    stream: Arc<Stream>,
    feed: ClusterFeed,
    rx: tokio::sync::watch::Receiver<Option<u64>>,
    next: u64,
    /// Keeps an on-demand source stream running while restreamers pull it.
    _demand: DemandGuard,
}

impl Feed {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            let found = self.stream.window().first_from(self.next).cloned();
            if let Some(seg) = found {
                self.next = seg.segment.seq + 1;
                let b = self.feed.wire(&seg);
                self.stream.metrics.bytes_out.inc_by(b.len() as u64);
                return Some(b);
            }
            let waited = tokio::select! {
                _ = self.stream.closing.cancelled() => return None,
                r = tokio::time::timeout(HEARTBEAT, self.rx.changed()) => r,
            };
            match waited {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return None, // the stream was removed
                Err(_) => {
                    let newest = self.stream.window().newest_seq();
                    return Some(strom_media::wire::encode_heartbeat(newest));
                }
            }
        }
    }
}

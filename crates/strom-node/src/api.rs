//! The JSON API (`/api/v1/...`) and `/readyz`, with typed responses.
//! Shapes that other programs read (the balancer, peers) live in
//! `strom-api`; the node builds them here from its streams.

use crate::cluster::peers::PeerView;
use crate::cluster::SourceState;
use crate::http::reply;
use crate::stream::Stream;
use crate::Node;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use strom_api::{NodeLoad, Readiness, Status, StreamInfo, StreamsResponse, TrackInfo, TsErrorInfo};

/// `GET /api/v1/cluster/peers`.
#[derive(Debug, serde::Serialize)]
pub struct PeersResponse {
    pub peers: Vec<PeerView>,
    /// This node's own load.
    pub load: NodeLoad,
}

/// `GET /api/v1/cluster/sources`.
#[derive(Debug, serde::Serialize)]
pub struct SourcesResponse {
    pub sources: Vec<SourceState>,
}

/// The API view of one stream at `now`.
pub fn stream_info(node: &Node, s: &Stream, now: Instant) -> StreamInfo {
    let p = s.published();
    let (first_seq, last_seq, track_bytes, window_secs) = {
        let w = s.window();
        let mut bytes: HashMap<u16, usize> = HashMap::new();
        let mut secs = 0.0;
        for seg in w.iter() {
            secs += seg.segment.duration_secs();
            for f in &seg.segment.frames {
                *bytes.entry(f.track).or_default() += f.data.len();
            }
        }
        (w.oldest_seq(), w.newest_seq(), bytes, secs)
    };
    let tracks = p
        .tracks
        .iter()
        .map(|t| TrackInfo {
            id: t.id,
            kind: t.kind().name().to_string(),
            codec: t.codec.name().to_string(),
            codec_string: t.params.codec_string.clone(),
            width: (t.params.width > 0).then_some(t.params.width),
            height: (t.params.height > 0).then_some(t.params.height),
            frame_rate: t
                .params
                .frame_rate
                .filter(|(_, d)| *d > 0)
                .map(|(n, d)| n as f64 / d as f64),
            sample_rate: (t.params.sample_rate > 0).then_some(t.params.sample_rate),
            channels: (t.params.channels > 0).then_some(t.params.channels),
            language: t.params.language.clone(),
            bitrate: (window_secs > 0.0)
                .then(|| (track_bytes.get(&t.id).copied().unwrap_or(0) as f64 * 8.0 / window_secs) as u64),
        })
        .collect();
    StreamInfo {
        name: s.name.to_string(),
        status: p.status,
        ondemand: s.cfg().ondemand,
        active_input_index: p.active_input,
        active_input: p.active_input.and_then(|i| s.input_label(i)),
        inputs: s.spec.inputs.iter().map(|i| i.to_string()).collect(),
        source: p.origin.map(|o| o.to_string()),
        tracks,
        clients: node.access.clients(&s.name).into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        uptime_secs: p.alive_since.map(|t| now.saturating_duration_since(t).as_secs_f64()),
        last_frame_age_secs: p.last_frame_at.map(|t| now.saturating_duration_since(t).as_secs_f64()),
        first_seq,
        last_seq,
        no_rap_secs: p
            .no_rap_since
            .map(|t| ((crate::util::utc90_now() - t).max(0)) as f64 / strom_media::CLOCK_HZ as f64),
        ts_last_error: p.ts_error.map(|e| TsErrorInfo {
            input: e.input,
            pid: e.pid,
            kind: e.kind.to_string(),
            offset: e.offset,
            age_secs: now.saturating_duration_since(e.at).as_secs_f64(),
        }),
    }
}

/// `GET /api/v1/streams`.
pub async fn streams(State(node): State<Arc<Node>>) -> Json<StreamsResponse> {
    let now = Instant::now();
    Json(StreamsResponse {
        streams: node.all_streams().iter().map(|s| stream_info(&node, s, now)).collect(),
    })
}

/// `GET /api/v1/streams/NAME`.
pub async fn stream(State(node): State<Arc<Node>>, Path(name): Path<String>) -> Response {
    match node.stream(&name) {
        Some(s) => Json(stream_info(&node, &s, Instant::now())).into_response(),
        None => reply::error(StatusCode::NOT_FOUND, "no such stream"),
    }
}

/// `GET /api/v1/cluster/peers`.
pub async fn peers(State(node): State<Arc<Node>>) -> Json<PeersResponse> {
    Json(PeersResponse {
        peers: node.peers.snapshot(),
        load: node.load(),
    })
}

/// `GET /api/v1/cluster/sources`.
pub async fn sources(State(node): State<Arc<Node>>) -> Json<SourcesResponse> {
    Json(SourcesResponse {
        sources: node.sources.snapshot(),
    })
}

/// `GET /readyz`: 200 once no static stream is still starting; names the
/// streams still starting and those that are down (failed or on backup).
pub async fn readyz(State(node): State<Arc<Node>>) -> Response {
    let (mut waiting, mut down) = (Vec::new(), Vec::new());
    for s in node.all_streams() {
        match s.status() {
            Status::Waiting if !s.cfg().ondemand => waiting.push(s.name.to_string()),
            Status::Failed | Status::Backup => down.push(s.name.to_string()),
            _ => {}
        }
    }
    let ready = waiting.is_empty();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(Readiness { ready, waiting, down })).into_response()
}

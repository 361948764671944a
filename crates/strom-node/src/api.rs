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
/// The stream's SRT statistics while an SRT connection feeds it (its
/// round-trip time gauge is set).
fn srt_info(m: &crate::metrics::StreamMetrics) -> Option<strom_api::SrtInfo> {
    let rtt = m.srt_rtt_seconds.get();
    (rtt > 0.0).then(|| strom_api::SrtInfo {
        // To 0.1 ms: what SRT measures, printed without float noise.
        rtt_ms: (rtt * 10_000.0).round() / 10.0,
        receive_buffer_ms: (m.srt_receive_buffer_seconds.get() * 10_000.0).round() / 10.0,
        packets_lost: m.srt_packets_lost.get(),
        packets_retransmitted: m.srt_packets_retransmitted.get(),
        packets_dropped: m.srt_packets_dropped.get(),
    })
}

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
        clients: node
            .access
            .clients(&s.name)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
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
        dvr: s.spec.archive.as_ref().map(|a| {
            let (bytes, depth_secs) = a.update_gauges(Some(crate::util::utc90_now()));
            strom_api::DvrInfo {
                path: a.cfg.root.display().to_string(),
                depth_secs,
                bytes,
                last_error: a.last_error(),
                keep_secs: a.cfg.depth.map(|d| d.as_secs()),
                disk_limit_percent: a.cfg.disk_limit_percent,
                max_bytes: a.cfg.max_size,
            }
        }),
        srt: srt_info(&s.metrics),
    }
}

/// `GET /api/v1/streams`.
pub async fn streams(State(node): State<Arc<Node>>) -> Json<StreamsResponse> {
    let now = Instant::now();
    Json(StreamsResponse {
        streams: node.all_streams().iter().map(|s| stream_info(&node, s, now)).collect(),
    })
}

/// Suffix of the archive ranges resource under `/api/v1/streams/NAME`.
const DVR_RANGES: &str = "/dvr/ranges";

/// `GET /api/v1/streams/NAME` and `GET /api/v1/streams/NAME/dvr/ranges`.
pub async fn stream(State(node): State<Arc<Node>>, Path(name): Path<String>) -> Response {
    if let Some(name) = name.strip_suffix(DVR_RANGES) {
        return dvr_ranges(&node, name).await;
    }
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

/// Sessions listed per page by default, and at most.
pub const SESSIONS_PAGE: usize = 100;
pub const SESSIONS_PAGE_MAX: usize = 1000;
/// How long `?cluster=1` waits for each peer.
const PEER_SESSIONS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

/// The filters and paging of `GET /api/v1/sessions`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct SessionsQuery {
    /// Stream name.
    pub name: Option<String>,
    /// `X-UserId` of the grant.
    pub user: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub limit: Option<usize>,
    /// `1`: this node's and every peer's sessions.
    pub cluster: Option<String>,
}

impl SessionsQuery {
    /// The query string that asks a peer for the same filters.
    fn for_peer(&self) -> String {
        let mut url = reqwest::Url::parse("http://x/").expect("static URL parses");
        {
            let mut p = url.query_pairs_mut();
            for (k, v) in [("name", &self.name), ("user", &self.user), ("ip", &self.ip)] {
                if let Some(v) = v {
                    p.append_pair(k, v);
                }
            }
            p.append_pair("limit", &self.limit().to_string());
        }
        url.query().unwrap_or("").to_string()
    }

    fn limit(&self) -> usize {
        self.limit.unwrap_or(SESSIONS_PAGE).clamp(1, SESSIONS_PAGE_MAX)
    }
}

fn session_info(s: &crate::access::table::Session, now: Instant, now_unix: u64) -> strom_api::SessionInfo {
    use crate::access::table::Proto;
    let idle = match s.proto {
        Proto::Hls => now.saturating_duration_since(s.last_active).as_secs(),
        Proto::MpegTs => 0,
    };
    strom_api::SessionInfo {
        id: crate::access::table::format_id(s.id),
        name: s.identity.stream.to_string(),
        proto: s.proto.as_str().to_string(),
        ip: s.identity.ip.map(|ip| ip.to_string()),
        token: Some(s.identity.token.to_string()).filter(|t| !t.is_empty()),
        user_id: s.grant.as_ref().and_then(|g| g.user.clone()),
        user_agent: s.user_agent.as_deref().map(str::to_string),
        started_at: s.started_ms / 1000,
        duration: now.saturating_duration_since(s.started).as_secs(),
        bytes: s.bytes,
        last_active: now_unix.saturating_sub(idle),
        viewer: s.viewer,
        node: None,
    }
}

/// This node's sessions matching `q`: one page.
fn local_sessions(node: &Node, q: &SessionsQuery) -> Result<strom_api::SessionsResponse, &'static str> {
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(crate::access::table::parse_id(c).ok_or("bad cursor")?),
    };
    let ip = match q.ip.as_deref() {
        None | Some("") => None,
        Some(ip) => Some(
            ip.parse::<std::net::IpAddr>()
                .map(crate::access::backend::canonical_ip)
                .map_err(|_| "bad ip")?,
        ),
    };
    let limit = q.limit();
    let now = Instant::now();
    let now_unix = crate::cluster::auth::unix_now();
    node.access.with_table(|t| {
        let page = t.list(after, limit + 1, |s| {
            q.name.as_deref().is_none_or(|n| *s.identity.stream == *n)
                && ip.is_none_or(|ip| s.identity.ip == Some(ip))
                && q.user
                    .as_deref()
                    .is_none_or(|u| s.grant.as_ref().and_then(|g| g.user.as_deref()) == Some(u))
        });
        let more = page.len() > limit;
        let sessions: Vec<_> = page
            .iter()
            .take(limit)
            .map(|s| session_info(s, now, now_unix))
            .collect();
        let next_cursor = more.then(|| sessions.last().map(|s| s.id.clone())).flatten();
        Ok(strom_api::SessionsResponse {
            sessions,
            next_cursor,
            errors: Vec::new(),
        })
    })
}

/// `GET /api/v1/sessions?name=&user=&ip=&cursor=&limit=[&cluster=1]`.
/// With `cluster=1`, every peer's sessions matching the filters follow this
/// node's, each with its `node` (one page per node, no cursor).
pub async fn sessions(
    State(node): State<Arc<Node>>,
    axum::extract::Query(q): axum::extract::Query<SessionsQuery>,
) -> Response {
    let cluster = q.cluster.as_deref().is_some_and(|c| c == "1" || c == "true");
    let local_q = if cluster {
        SessionsQuery {
            cursor: None,
            ..q.clone()
        }
    } else {
        q.clone()
    };
    let mut out = match local_sessions(&node, &local_q) {
        Ok(r) => r,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, e),
    };
    if !cluster {
        return Json(out).into_response();
    }
    out.next_cursor = None;
    for s in &mut out.sessions {
        s.node = Some("self".to_string());
    }
    let client = crate::util::cluster_client(std::time::Duration::from_secs(2)).unwrap_or_default();
    let path = format!("{}/sessions?{}", crate::cluster::PREFIX, q.for_peer());
    let key = node.config.cluster_key.clone();
    let asks = node.config.peers.iter().map(|p| {
        let (client, path, key, addr) = (client.clone(), path.clone(), key.clone(), p.addr.clone());
        async move {
            let r = tokio::time::timeout(PEER_SESSIONS_DEADLINE, async {
                let resp = crate::cluster::manager::signed_get(&client, &addr, key.as_deref(), &path)
                    .await
                    .map_err(|e| format!("request failed: {e}"))?;
                if !resp.status().is_success() {
                    return Err(format!("http status {}", resp.status()));
                }
                let body = crate::util::read_capped(resp, crate::cluster::manager::MAX_LIST_BYTES).await?;
                serde_json::from_slice::<strom_api::SessionsResponse>(&body).map_err(|e| format!("bad answer: {e}"))
            })
            .await
            .unwrap_or_else(|_| Err("no answer in time".to_string()));
            (addr, r)
        }
    });
    for (addr, r) in futures_util::future::join_all(asks).await {
        match r {
            Ok(peer) => out
                .sessions
                .extend(peer.sessions.into_iter().take(SESSIONS_PAGE_MAX).map(|mut s| {
                    s.node = Some(addr.clone());
                    s
                })),
            Err(e) => out.errors.push(format!("{addr}: {e}")),
        }
    }
    Json(out).into_response()
}

/// `GET /api/v1/cluster/sessions` (signed): this node's sessions, for a
/// peer's `?cluster=1`.
pub async fn cluster_sessions(State(node): State<Arc<Node>>, req: axum::extract::Request) -> Response {
    if let Some(r) = crate::cluster::server::refuse(&node, &req) {
        return r;
    }
    let q: SessionsQuery = match axum::extract::Query::try_from_uri(req.uri()) {
        Ok(axum::extract::Query(q)) => q,
        Err(_) => return reply::error(StatusCode::BAD_REQUEST, "bad query"),
    };
    match local_sessions(
        &node,
        &SessionsQuery {
            cursor: None,
            cluster: None,
            ..q
        },
    ) {
        Ok(r) => Json(r).into_response(),
        Err(e) => reply::error(StatusCode::BAD_REQUEST, e),
    }
}

/// `GET /api/v1/sessions/ID`.
pub async fn session(State(node): State<Arc<Node>>, Path(id): Path<String>) -> Response {
    let Some(id) = crate::access::table::parse_id(&id) else {
        return reply::error(StatusCode::NOT_FOUND, "no such session");
    };
    let now = Instant::now();
    let now_unix = crate::cluster::auth::unix_now();
    match node
        .access
        .with_table(|t| t.get(id).map(|s| session_info(s, now, now_unix)))
    {
        Some(s) => Json(s).into_response(),
        None => reply::error(StatusCode::NOT_FOUND, "no such session"),
    }
}

/// `DELETE /api/v1/sessions/ID`: kicks the viewer. Its identity is refused
/// until its decision would have expired; then the backend decides again.
pub async fn kick_session(State(node): State<Arc<Node>>, Path(id): Path<String>) -> Response {
    let Some(id) = crate::access::table::parse_id(&id) else {
        return reply::error(StatusCode::NOT_FOUND, "no such session");
    };
    if node.access.kick(id, crate::access::DEFAULT_CACHE) {
        tracing::info!(session = %crate::access::table::format_id(id), "session kicked through the API");
        StatusCode::NO_CONTENT.into_response()
    } else {
        reply::error(StatusCode::NOT_FOUND, "no such session")
    }
}

/// `POST /api/v1/sessions/reauth?name=STREAM`: asks the backend about every
/// session of the stream now.
pub async fn reauth(
    State(node): State<Arc<Node>>,
    axum::extract::Query(q): axum::extract::Query<SessionsQuery>,
) -> Response {
    let Some(name) = q.name.filter(|n| !n.is_empty()) else {
        return reply::error(StatusCode::BAD_REQUEST, "name is required");
    };
    if node.stream(&name).is_none() {
        return reply::error(StatusCode::NOT_FOUND, "no such stream");
    }
    let n = node.access.reauth(&node, &name);
    Json(serde_json::json!({ "sessions": n })).into_response()
}

/// The archive of stream `name`, or the reply that says why there is none.
fn archive_of(node: &Node, name: &str) -> Result<Arc<crate::dvr::archive::Archive>, &'static str> {
    let Some(s) = node.stream(name) else {
        return Err("no such stream");
    };
    s.spec.archive.clone().ok_or("this stream has no archive")
}

/// `GET /api/v1/streams/NAME/dvr/ranges`: the recorded spans (UTC Unix
/// seconds), oldest first; a damaged file shows as a gap.
async fn dvr_ranges(node: &Node, name: &str) -> Response {
    let archive = match archive_of(node, name) {
        Ok(a) => a,
        Err(why) => return reply::error(StatusCode::NOT_FOUND, why),
    };
    let a = archive.clone();
    let ranges = match tokio::task::spawn_blocking(move || a.ranges()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(stream = %archive.name, error = %e, "archive ranges unreadable");
            return reply::error(StatusCode::INTERNAL_SERVER_ERROR, "archive unreadable");
        }
        Err(_) => return reply::error(StatusCode::INTERNAL_SERVER_ERROR, "archive unreadable"),
    };
    let (bytes, depth_secs) = archive.update_gauges(Some(crate::util::utc90_now()));
    let hz = strom_media::CLOCK_HZ;
    Json(strom_api::DvrRangesResponse {
        stream: name.to_string(),
        ranges: ranges
            .iter()
            .map(|r| strom_api::DvrRange {
                from: r.from.div_euclid(hz),
                duration: (r.duration + hz - 1) / hz,
            })
            .collect(),
        depth_secs,
        bytes,
    })
    .into_response()
}

/// `DELETE /api/v1/streams/NAME/dvr/ranges?from=UNIX&duration=SECONDS`:
/// deletes every archive file that lies wholly inside the range (files are
/// hours or less; one being written is kept).
pub async fn delete_dvr_range(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Response {
    let Some(name) = name.strip_suffix(DVR_RANGES) else {
        return reply::error(StatusCode::NOT_FOUND, "not found");
    };
    let num = |k: &str| -> Option<u64> {
        let v = strom_api::query_param(q.as_deref(), k)?;
        (!v.is_empty() && v.len() <= 12 && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse().ok())
            .flatten()
    };
    let (Some(from), Some(duration)) = (num("from"), num("duration")) else {
        node.metrics.dvr.bad_request("not_a_number");
        return reply::error(
            StatusCode::BAD_REQUEST,
            "give from=UNIX_SECONDS&duration=SECONDS (whole seconds in decimal)",
        );
    };
    if duration == 0 {
        node.metrics.dvr.bad_request("zero_duration");
        return reply::error(StatusCode::BAD_REQUEST, "duration must be at least 1 second");
    }
    let archive = match archive_of(&node, name) {
        Ok(a) => a,
        Err(why) => return reply::error(StatusCode::NOT_FOUND, why),
    };
    if !archive.store().writable() {
        return reply::error(
            StatusCode::CONFLICT,
            "this archive is the source's, read through the cluster: delete there",
        );
    }
    let hz = strom_media::CLOCK_HZ;
    let ticks = |s: u64| i64::try_from(s).unwrap_or(i64::MAX / hz).saturating_mul(hz);
    let (a, f, t) = (archive.clone(), ticks(from), ticks(from.saturating_add(duration)));
    match tokio::task::spawn_blocking(move || a.delete_range(f, t)).await {
        Ok(Ok((files, bytes))) => {
            tracing::info!(stream = %archive.name, from, duration, files, bytes, "archive range deleted through the API");
            Json(serde_json::json!({"stream": name, "deleted_files": files, "deleted_bytes": bytes})).into_response()
        }
        _ => reply::error(StatusCode::INTERNAL_SERVER_ERROR, "archive unreadable"),
    }
}

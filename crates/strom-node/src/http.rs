//! HTTP front: Flussonic-style playback URLs, publishing, metrics, health and
//! the JSON API. [`router`] builds an axum `Router` that tests drive directly.
//!
//! Stream names may contain `/`, so media URLs are parsed by hand: the last
//! path segment is the resource and everything before it is the stream name.
//! Segment bytes and playlists are shared `Bytes` from the hub; handlers never
//! mux or render on the hot path unless a query string must be carried.

use crate::cluster::peers::{PeerView, HOP_PARAM};
use crate::hub::{StreamHub, Unavailable};
use crate::Node;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use strom_config::Input;
use tokio::sync::broadcast::error::RecvError;

const M3U8: &str = "application/vnd.apple.mpegurl";
const MP2T: &str = "video/mp2t";
/// Times an HTTP-TS viewer may fall behind (and be skipped to a keyframe) before it is dropped.
const MAX_LAGS: u32 = 8;

/// The node's HTTP application.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/streams", get(api_streams))
        .route("/api/v1/streams/{*name}", get(api_stream))
        .route("/api/v1/cluster/sources", get(api_sources))
        .route("/api/v1/cluster/peers", get(api_peers))
        .route("/api/v1/cluster/streams", get(crate::cluster::server::list))
        .route(
            "/api/v1/cluster/segments/{*name}",
            get(crate::cluster::server::segments),
        )
        .fallback(media)
        .with_state(node)
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(node): State<Arc<Node>>) -> Response {
    let waiting: Vec<String> = node
        .all_streams()
        .iter()
        .filter(|h| !h.cfg.ondemand && h.status() == crate::hub::Status::Waiting)
        .map(|h| h.name.clone())
        .collect();
    let code = if waiting.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(serde_json::json!({ "ready": waiting.is_empty(), "waiting": waiting })),
    )
        .into_response()
}

async fn api_streams(State(node): State<Arc<Node>>) -> Response {
    let list: Vec<_> = node.all_streams().iter().map(|h| h.snapshot()).collect();
    axum::Json(serde_json::json!({ "streams": list })).into_response()
}

async fn api_stream(State(node): State<Arc<Node>>, axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match node.stream(&name) {
        Some(h) => axum::Json(h.snapshot()).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such stream"),
    }
}

async fn api_peers(State(node): State<Arc<Node>>) -> Response {
    axum::Json(serde_json::json!({ "peers": node.peers.snapshot(), "load": node.load() })).into_response()
}

async fn api_sources(State(node): State<Arc<Node>>) -> Response {
    axum::Json(serde_json::json!({ "sources": node.sources.snapshot() })).into_response()
}

fn error(code: StatusCode, msg: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{msg}\n"),
    )
        .into_response()
}

fn not_ready() -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "stream is not ready");
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    r
}

/// The value of `key` in a query string.
fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

/// How long a viewer's first request may wait for a starting stream.
fn start_wait(hub: &StreamHub) -> Duration {
    let c = &hub.cfg;
    (c.source_timeout + c.segment_duration * 3 + Duration::from_secs(2)).min(Duration::from_secs(30))
}

async fn media(State(node): State<Arc<Node>>, req: Request) -> Response {
    let path = req.uri().path();
    let Some((name, resource)) = path.trim_start_matches('/').rsplit_once('/') else {
        node.metrics
            .http_errors
            .get_or_create(&crate::metrics::KindLabel { kind: "not_found" })
            .inc();
        return error(StatusCode::NOT_FOUND, "not found");
    };
    let resource = resource.to_string();
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_string);
    let peer = req
        .extensions()
        .get::<ConnectInfo<crate::net::PeerAddr>>()
        .map(|c| c.0 .0);
    let hop = query_param(query.as_deref(), HOP_PARAM).is_some();
    let now = std::time::Instant::now();
    let Some(hub) = node.stream(name) else {
        // Not here: a healthy peer that has it takes the viewer (one hop at most).
        if !hop && method != Method::PUT && method != Method::POST {
            if let Some(p) = node.peers.choose(name, false, now) {
                return redirect(&node, &p, path, query.as_deref(), "not_local");
            }
        }
        node.metrics
            .http_errors
            .get_or_create(&crate::metrics::KindLabel { kind: "not_found" })
            .inc();
        return error(StatusCode::NOT_FOUND, "no such stream");
    };
    // Over our limits: a new viewer goes to the least loaded peer with room.
    // Viewers already playing (known HLS sessions, segment requests) stay.
    let new_viewer = method == Method::GET
        && match resource.as_str() {
            "mpegts" => true,
            "index.m3u8" | "playlist.m3u8" | "mono.m3u8" | "video.m3u8" => {
                !hub.has_session(session_key(&hub, query.as_deref(), peer))
            }
            _ => false,
        };
    if new_viewer && !hop && node.load().overloaded() {
        if let Some(p) = node.peers.choose(name, true, now) {
            return redirect(&node, &p, path, query.as_deref(), "overload");
        }
    }
    // A playlist served through a redirect lists absolute URLs on this node,
    // for players that resolve relative URLs against the original address.
    let base = if hop {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}/{name}/")
    } else {
        String::new()
    };
    match (method.clone(), resource.as_str()) {
        (Method::PUT | Method::POST, "publish") => publish(hub, req).await,
        (Method::GET | Method::HEAD, "index.m3u8" | "playlist.m3u8") if method == Method::HEAD => {
            // Middleware probes: 200 only while the stream is healthy.
            let code = if hub.healthy() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (
                code,
                [(header::CONTENT_TYPE, M3U8), (header::CACHE_CONTROL, "no-cache")],
            )
                .into_response()
        }
        (Method::GET | Method::HEAD, "index.m3u8" | "playlist.m3u8" | "mono.m3u8" | "video.m3u8") => {
            let master = matches!(resource.as_str(), "index.m3u8" | "playlist.m3u8");
            playlist(hub, master, query.as_deref(), peer, &base).await
        }
        (Method::GET | Method::HEAD, "mpegts") => mpegts(node.clone(), hub).await,
        (Method::GET | Method::HEAD, r) => match strom_media::hls::parse_segment_uri(r) {
            Some(seq) => segment(hub, seq, query.as_deref(), peer),
            None => error(StatusCode::NOT_FOUND, "not found"),
        },
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

/// One HLS session per (token, ip, stream), whatever the request.
fn session_key(hub: &StreamHub, query: Option<&str>, peer: Option<SocketAddr>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    query_param(query, "token").unwrap_or("").hash(&mut h);
    peer.map(|p| p.ip()).hash(&mut h);
    hub.name.hash(&mut h);
    h.finish()
}

fn note_session(hub: &StreamHub, query: Option<&str>, peer: Option<SocketAddr>) {
    hub.hls_session(session_key(hub, query, peer));
    hub.touch();
}

/// 302 to the same path and query on `peer`'s public address, marked as one hop.
fn redirect(node: &Node, peer: &PeerView, path: &str, query: Option<&str>, reason: &'static str) -> Response {
    node.metrics
        .redirects
        .get_or_create(&crate::metrics::ReasonLabel { reason })
        .inc();
    let q = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{q}&{HOP_PARAM}=1"),
        None => format!("{HOP_PARAM}=1"),
    };
    let location = format!("{}{path}?{q}", peer.public);
    tracing::debug!(%location, reason, "redirecting viewer");
    match HeaderValue::from_str(&location) {
        Ok(v) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, v),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
        )
            .into_response(),
        Err(_) => error(StatusCode::NOT_FOUND, "no such stream"),
    }
}

async fn playlist(
    hub: Arc<StreamHub>,
    master: bool,
    query: Option<&str>,
    peer: Option<SocketAddr>,
    base: &str,
) -> Response {
    note_session(&hub, query, peer);
    let get = |hub: &StreamHub| {
        if master {
            hub.master_playlist(query, base)
        } else {
            hub.media_playlist(query, base)
        }
    };
    let body = match get(&hub) {
        Ok(b) => Ok(b),
        Err(_) => {
            if hub.wait_ready(start_wait(&hub)).await {
                get(&hub)
            } else {
                Err(Unavailable::NotReady)
            }
        }
    };
    match body {
        Ok(b) => {
            hub.metrics.bytes_out.inc_by(b.len() as u64);
            ([(header::CONTENT_TYPE, M3U8), (header::CACHE_CONTROL, "max-age=1")], b).into_response()
        }
        Err(_) => not_ready(),
    }
}

fn segment(hub: Arc<StreamHub>, seq: u64, query: Option<&str>, peer: Option<SocketAddr>) -> Response {
    note_session(&hub, query, peer);
    match hub.segment(seq) {
        Ok(b) => {
            hub.metrics.bytes_out.inc_by(b.len() as u64);
            (
                [
                    (header::CONTENT_TYPE, MP2T),
                    (header::CACHE_CONTROL, "public, max-age=86400, immutable"),
                ],
                b,
            )
                .into_response()
        }
        Err(Unavailable::Gone) => error(StatusCode::NOT_FOUND, "segment is not in the window"),
        Err(Unavailable::NotReady) => not_ready(),
    }
}

/// Decrements the HTTP-TS viewer count when a connection ends.
struct ViewerGuard(Arc<StreamHub>);

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.0.mpegts_viewers.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

struct LiveState {
    hub: Arc<StreamHub>,
    rx: tokio::sync::broadcast::Receiver<crate::hub::LiveChunk>,
    backlog: std::collections::VecDeque<crate::hub::LiveChunk>,
    last_idx: Option<u64>,
    need_start: bool,
    lags: u32,
    shutdown: tokio_util::sync::CancellationToken,
    idle: Duration,
    _guard: ViewerGuard,
}

impl LiveState {
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(c) = self.backlog.pop_front() {
            self.last_idx = Some(c.idx);
            return Some(c.data);
        }
        loop {
            let r = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                r = tokio::time::timeout(self.idle, self.rx.recv()) => r,
            };
            match r {
                Err(_) => return None, // the stream stopped delivering
                Ok(Ok(c)) => {
                    if self.last_idx.is_some_and(|l| c.idx <= l) || (self.need_start && !c.start) {
                        continue;
                    }
                    self.need_start = false;
                    self.last_idx = Some(c.idx);
                    return Some(c.data);
                }
                Ok(Err(RecvError::Lagged(_))) => {
                    self.lags += 1;
                    if self.lags > MAX_LAGS {
                        self.hub.metrics.slow_dropped.inc();
                        tracing::info!(stream = %self.hub.name, "http-ts viewer too slow: dropped");
                        return None;
                    }
                    self.hub.metrics.slow_skipped.inc();
                    self.need_start = true;
                }
                Ok(Err(RecvError::Closed)) => return None,
            }
        }
    }
}

async fn mpegts(node: Arc<Node>, hub: Arc<StreamHub>) -> Response {
    hub.touch();
    let (rx, gop) = hub.subscribe_live();
    if gop.is_empty() && !hub.wait_ready(start_wait(&hub)).await {
        return not_ready();
    }
    hub.mpegts_viewers.fetch_add(1, Ordering::Relaxed);
    let state = LiveState {
        hub: hub.clone(),
        rx,
        need_start: gop.is_empty(),
        backlog: gop.into(),
        last_idx: None,
        lags: 0,
        shutdown: node.shutdown.clone(),
        idle: hub.cfg.source_timeout.max(Duration::from_secs(5)) * 3,
        _guard: ViewerGuard(hub.clone()),
    };
    let body = futures_util::stream::unfold(state, |mut s| async move {
        let data = s.next().await?;
        s.hub.metrics.bytes_out.inc_by(data.len() as u64);
        Some((Ok::<_, std::convert::Infallible>(data), s))
    });
    (
        [(header::CONTENT_TYPE, MP2T), (header::CACHE_CONTROL, "no-cache")],
        Body::from_stream(body),
    )
        .into_response()
}

async fn publish(hub: Arc<StreamHub>, req: Request) -> Response {
    if !hub.cfg.inputs.iter().any(|i| matches!(i, Input::Publish)) {
        return error(StatusCode::FORBIDDEN, "stream does not accept publishing");
    }
    hub.touch();
    // An on-demand publish stream starts its input now; give it a moment.
    let mut tx = None;
    for _ in 0..50 {
        tx = hub.publish_slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if tx.is_some() || !hub.cfg.ondemand {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(tx) = tx else {
        return error(StatusCode::CONFLICT, "stream is already being published");
    };
    let timeout = hub.cfg.source_timeout;
    let mut body = req.into_body().into_data_stream();
    let mut total = 0usize;
    loop {
        match tokio::time::timeout(timeout, body.next()).await {
            Err(_) => {
                hub.metrics.input_timeouts.inc();
                tracing::warn!(stream = %hub.name, bytes = total, "publisher sent nothing for {}s: closing", timeout.as_secs());
                return error(StatusCode::REQUEST_TIMEOUT, "no data from publisher");
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::info!(stream = %hub.name, error = %e, "publisher connection ended");
                break;
            }
            Ok(Some(Ok(chunk))) => {
                total += chunk.len();
                hub.touch();
                if tx.send(chunk).await.is_err() {
                    return error(StatusCode::SERVICE_UNAVAILABLE, "stream input stopped");
                }
            }
        }
    }
    (StatusCode::OK, format!("received {total} bytes\n")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        assert_eq!(query_param(Some("a=1&token=xyz&b"), "token"), Some("xyz"));
        assert_eq!(query_param(Some("b"), "b"), Some(""));
        assert_eq!(query_param(Some("tokenx=1"), "token"), None);
        assert_eq!(query_param(None, "token"), None);
    }
}

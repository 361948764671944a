//! Source side of the cluster protocol: `GET {PREFIX}/streams` lists the
//! streams this node can give (signed; `dvr` marks the ones with an
//! archive here, local or itself read from a source), and the request check
//! every node-to-node endpoint shares. The segment feed itself is an output:
//! [`crate::output::cluster_feed`]; the archive endpoints are in
//! [`crate::dvr::cluster`].

use super::auth;
use crate::Node;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
pub use strom_api::{NodeLoad, RemoteStream, StreamList};

/// Checks the request's signature; on failure logs, counts and returns the 403.
pub fn refuse(node: &Node, req: &Request) -> Option<Response> {
    let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let signed = auth::Signed {
        method: req.method().as_str(),
        host: req
            .headers()
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok()),
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
    // The path is the peer's: escaped, bounded, without the query, and at
    // most one line a second whatever the flood.
    static LOG: crate::util::LogLimiter = crate::util::LogLimiter::new(std::time::Duration::from_secs(1));
    if let Some(held_back) = LOG.allow(std::time::Instant::now()) {
        let shown = crate::util::peer_text(req.uri().path());
        tracing::warn!(path = %shown, error = %e, held_back, "cluster request refused");
    }
    Some((StatusCode::FORBIDDEN, format!("cluster authentication failed: {e}\n")).into_response())
}

/// `GET {PREFIX}/streams`.
pub async fn list(State(node): State<Arc<Node>>, req: Request) -> Response {
    if let Some(r) = refuse(&node, &req) {
        return r;
    }
    let now = std::time::Instant::now();
    let streams = node
        .all_streams()
        .iter()
        .map(|s| {
            let p = s.published();
            RemoteStream {
                name: s.name.to_string(),
                mode: if s.cfg().ondemand { "ondemand" } else { "static" }.to_string(),
                codecs: p.tracks.iter().filter_map(|t| t.params.codec_string.clone()).collect(),
                last_seq: s.window().newest_seq(),
                alive: Some(p.status.is_alive() && s.fresh(now)),
                dvr: s.spec.archive.is_some(),
            }
        })
        .collect();
    axum::Json(StreamList {
        streams,
        load: Some(node.load()),
        users: node.access.report(),
    })
    .into_response()
}

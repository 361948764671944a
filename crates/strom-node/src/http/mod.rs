//! The node's HTTP front. [`router`] builds an axum `Router` that tests can
//! drive without a socket:
//! - `/metrics`, `/healthz`, `/readyz`;
//! - the JSON API ([`crate::api`]) and the signed node-to-node endpoints;
//! - every other path is a playback or publish URL and goes through the
//!   playback [`gate`], which hands it to an output.
//!
//! The CORS layer ([`cors`]) wraps all of it.

pub mod auth;
pub mod cors;
pub mod gate;
pub mod reply;
pub mod request;

use crate::Node;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// The node's HTTP application.
pub fn router(node: Arc<Node>) -> Router {
    let cors = Arc::new(node.config.cors.clone());
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(crate::api::readyz))
        .route("/api/v1/streams", get(crate::api::streams))
        .route("/api/v1/streams/{*name}", get(crate::api::stream))
        .route("/api/v1/cluster/sources", get(crate::api::sources))
        .route("/api/v1/cluster/peers", get(crate::api::peers))
        .route("/api/v1/cluster/streams", get(crate::cluster::server::list))
        .route(
            "/api/v1/cluster/segments/{*name}",
            get(crate::output::cluster_feed::serve),
        )
        .fallback(gate::media)
        .with_state(node)
        .layer(axum::middleware::from_fn_with_state(cors, cors::layer))
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics.render(),
    )
        .into_response()
}

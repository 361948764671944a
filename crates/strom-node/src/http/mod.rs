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
use axum::routing::{delete, get, post};
use axum::Router;
use std::sync::Arc;

/// The node's HTTP application.
pub fn router(node: Arc<Node>) -> Router {
    let cors = Arc::new(node.config.cors.clone());
    // The JSON API needs view rights when credentials are configured; the
    // signed node-to-node endpoints, health and metrics do not.
    let api = Router::new()
        .route("/api/v1/streams", get(crate::api::streams))
        .route("/api/v1/streams/{*name}", get(crate::api::stream))
        .route("/api/v1/cluster/sources", get(crate::api::sources))
        .route("/api/v1/cluster/peers", get(crate::api::peers))
        .route("/api/v1/sessions", get(crate::api::sessions))
        .route("/api/v1/sessions/{id}", get(crate::api::session))
        .route_layer(axum::middleware::from_fn_with_state(node.clone(), auth::require_view));
    // Changes need edit rights when `edit_auth` is set.
    let edit = Router::new()
        .route("/api/v1/sessions/reauth", post(crate::api::reauth))
        .route("/api/v1/sessions/{id}", delete(crate::api::kick_session))
        .route("/api/v1/streams/{*name}", delete(crate::api::delete_dvr_range))
        .route_layer(axum::middleware::from_fn_with_state(node.clone(), auth::require_edit));
    Router::new()
        .merge(api)
        .merge(edit)
        .route("/api/v1/cluster/sessions", get(crate::api::cluster_sessions))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(crate::api::readyz))
        .route("/api/v1/cluster/streams", get(crate::cluster::server::list))
        .route(
            "/api/v1/cluster/segments/{*name}",
            get(crate::output::cluster_feed::serve),
        )
        .route("/api/v1/cluster/dvr/files/{*name}", get(crate::dvr::cluster::files))
        .route("/api/v1/cluster/dvr/read/{*name}", get(crate::dvr::cluster::read))
        .fallback(gate::media)
        .layer(axum::middleware::from_fn_with_state(node.clone(), count_errors))
        .with_state(node)
        .layer(axum::middleware::from_fn_with_state(cors, cors::layer))
}

/// The low-cardinality kind of an error status, for `strom_http_errors_total`.
pub fn error_kind(code: StatusCode) -> Option<&'static str> {
    Some(match code.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        409 => "conflict",
        414 => "uri_too_long",
        416 => "range_not_satisfiable",
        431 => "headers_too_large",
        500 => "internal",
        502 => "bad_gateway",
        503 => "unavailable",
        c if (400..500).contains(&c) => "client_other",
        c if (500..600).contains(&c) => "server_other",
        _ => return None,
    })
}

/// Counts every 4xx and 5xx answer the router gives, by kind.
async fn count_errors(
    State(node): State<Arc<Node>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let r = next.run(req).await;
    if let Some(kind) = error_kind(r.status()) {
        node.metrics
            .http_errors
            .get_or_create(&crate::metrics::KindLabel { kind })
            .inc();
    }
    r
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

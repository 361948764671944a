//! Cross-origin access for browser players (hls.js, video.js, shaka,
//! mpegts.js) on a portal hosted elsewhere, per the `cors` directive.
//!
//! Every response gets `Access-Control-Allow-Origin` (`*` by default, the
//! request's origin when it is listed, nothing with `cors off`) and exposes
//! the headers players read; with an origin list every response carries
//! `Vary: Origin`. Any `OPTIONS` (a preflight) is answered here with 204,
//! allowing GET, HEAD and the `Range` header, whatever the path.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use strom_config::Cors;

const ALLOW_METHODS: &str = "GET, HEAD, OPTIONS";
const ALLOW_HEADERS: &str = "Range";
const EXPOSE_HEADERS: &str = "Content-Length, Content-Range, Accept-Ranges";
/// Browsers may cache a preflight answer this long, seconds.
const MAX_AGE: &str = "86400";

fn decorate(cors: &Cors, origin: Option<&str>, h: &mut HeaderMap) {
    // With a list, the answer depends on Origin for every request (allowed
    // or not), so shared caches must key on it.
    if matches!(cors, Cors::Origins(_)) {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    let Some(allow) = cors.allow_origin(origin) else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(allow) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
}

/// The middleware: answers preflights and decorates every other response.
pub async fn layer(State(cors): State<Arc<Cors>>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight && !matches!(*cors, Cors::Off) {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(header::ALLOW, HeaderValue::from_static(ALLOW_METHODS));
        if matches!(*cors, Cors::Off) {
            return r;
        }
        decorate(&cors, origin.as_deref(), h);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
        return r;
    }
    let mut r = next.run(req).await;
    decorate(&cors, origin.as_deref(), r.headers_mut());
    r
}

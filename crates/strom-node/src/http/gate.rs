//! The playback gate: every `/NAME/RESOURCE` request passes here once.
//!
//! Order:
//! 1. parse once into a [`PlayRequest`] (bad shapes are 404/414, counted);
//! 2. ingest (`PUT`/`POST /NAME/publish`) goes to the publish input;
//! 3. peer redirect: a stream this node does not have goes to a peer that
//!    has it; a new viewer of a node over its limits goes to a peer with
//!    room (one hop at most, marked with `strom_hop`);
//! 4. play authorization and the viewer's session ([`crate::access`]);
//!    requests signed with the cluster key skip it;
//! 5. dispatch to the first output that claims the resource; the served
//!    bytes are counted on the session.

use super::reply;
use super::request::{PlayRequest, Reject, Resource};
use crate::access::{Admission, Policy};
use crate::cluster::peers::PeerView;
use crate::metrics::ReasonLabel;
use crate::stream::Stream;
use crate::Node;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_api::{append_param, HOP_PARAM};

/// The fallback handler of the node's router.
pub async fn media(State(node): State<Arc<Node>>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<crate::net::PeerAddr>>()
        .map(|c| c.0 .0);
    let parsed = PlayRequest::parse(
        req.method().clone(),
        req.uri().path(),
        req.uri().query(),
        req.headers(),
        peer,
    );
    let mut r = match parsed {
        Ok(r) => r,
        Err(Reject::NotFound) => {
            return reply::error(StatusCode::NOT_FOUND, "not found");
        }
        Err(Reject::TooLong) => {
            return reply::error(StatusCode::URI_TOO_LONG, "request URI too long");
        }
        Err(Reject::BadArchive(bad)) => {
            node.metrics.dvr.bad_request(bad.reason());
            return reply::error(StatusCode::BAD_REQUEST, bad.message());
        }
    };
    let ingest = matches!(r.method, Method::PUT | Method::POST);
    if ingest {
        if r.resource != Resource::Publish {
            return reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        return match node.stream(&r.name) {
            Some(stream) => publish(&node, stream, &r, req).await,
            None => reply::error(StatusCode::NOT_FOUND, "no such stream"),
        };
    }
    if !matches!(r.method, Method::GET | Method::HEAD) {
        return reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let now = Instant::now();
    let Some(stream) = node.stream(&r.name) else {
        // Not here: a healthy peer that has it takes the viewer.
        if !r.hop {
            if let Some(p) = node.peers.choose(&r.name, false, now) {
                return redirect(&node, &p, &r, "not_local");
            }
        }
        return reply::error(StatusCode::NOT_FOUND, "no such stream");
    };
    // Over our limits: a new viewer goes to the least loaded peer with room.
    // Viewers already playing (known sessions, segment requests) stay.
    let new_viewer = r.method == Method::GET && node.access.is_new_viewer(&r);
    if new_viewer && !r.hop && node.load().overloaded() {
        if let Some(p) = node.peers.choose(&r.name, true, now) {
            return redirect(&node, &p, &r, "overload");
        }
    }
    let policy = Policy::of(stream.cfg(), &node.config);
    // Node-to-node requests carry the cluster signature and skip viewer
    // authorization; a bad signature is refused.
    let admission = if policy.active() && req.headers().contains_key(crate::cluster::auth::HEADER_SIGNATURE) {
        if let Some(refused) = crate::cluster::server::refuse(&node, &req) {
            return refused;
        }
        Admission::Serve(None)
    } else {
        node.access.admit(&stream, policy, &r).await
    };
    match admission {
        Admission::Serve(ticket) => r.ticket = ticket,
        Admission::Deny => return reply::error(StatusCode::FORBIDDEN, "forbidden"),
        Admission::Redirect(url) => return found(&url),
        Admission::Unavailable => {
            let mut resp = reply::error(StatusCode::SERVICE_UNAVAILABLE, "authorization backend unavailable");
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return resp;
        }
        Admission::TooMany(why) => {
            let msg = match why {
                crate::access::table::Refused::Full => "this node holds its maximum of sessions",
                _ => "too many sessions or requests from this address",
            };
            let mut resp = reply::error(StatusCode::TOO_MANY_REQUESTS, msg);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return resp;
        }
    }
    r.uri_base = r.base(&node.public_base);
    if let Resource::Archive(a) = &r.resource {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Err(bad) = a.check(now) {
            node.metrics.dvr.bad_request(bad.reason());
            return reply::error(StatusCode::BAD_REQUEST, bad.message());
        }
    }
    // A HEAD is a probe, not a viewer: it never wakes an on-demand stream,
    // and neither does a request for the archive alone.
    let archive_only = match &r.resource {
        Resource::Archive(a) => !a.follows_live(),
        Resource::Segment(_) | Resource::TrackSegment(..) => crate::access::is_archive(&r),
        _ => false,
    };
    if !r.is_head() && !archive_only {
        stream.touch();
    }
    for output in stream.outputs.iter() {
        if let Some(fut) = output.clone().serve(&stream, &r) {
            let resp = fut.await;
            let media = matches!(r.resource, Resource::Segment(_) | Resource::TrackSegment(..));
            if resp.status().is_success() && !r.is_head() {
                // Segment bodies are whole buffers: their exact size is known.
                let bytes = if media {
                    axum::body::HttpBody::size_hint(resp.body()).exact().unwrap_or(0)
                } else {
                    0
                };
                match r.ticket.as_ref() {
                    Some(t) if t.proto == crate::access::table::Proto::Hls => node.access.served(t, bytes, media),
                    None if media && !policy.active() => node.access.media_served(&r, &stream, bytes),
                    _ => {}
                }
            }
            return resp;
        }
    }
    reply::error(StatusCode::NOT_FOUND, "not found")
}

fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, v),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
        )
            .into_response(),
        Err(_) => reply::error(StatusCode::NOT_FOUND, "no such stream"),
    }
}

/// 302 to the same path and query on `peer`'s public address, marked as one hop.
fn redirect(node: &Node, peer: &PeerView, r: &PlayRequest, reason: &'static str) -> Response {
    node.metrics.redirects.get_or_create(&ReasonLabel { reason }).inc();
    let q = append_param(r.query.as_deref(), HOP_PARAM, "1");
    let location = format!("{}{}?{q}", peer.public, r.path);
    tracing::debug!(%location, reason, "redirecting viewer");
    found(&location)
}

/// `PUT`/`POST /NAME/publish`: checks the publisher (`publish_password`,
/// `on_publish`) before reading a byte, then hands the body to the
/// stream's publish input.
async fn publish(node: &Node, stream: Arc<Stream>, r: &PlayRequest, req: Request) -> Response {
    let Some(slot) = stream.publish.clone() else {
        return reply::error(StatusCode::FORBIDDEN, "stream does not accept publishing");
    };
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match node.access.authorize_publish(&stream, &node.config, r, given).await {
        crate::access::PublishVerdict::Allow => {}
        crate::access::PublishVerdict::Deny => {
            return reply::error(StatusCode::FORBIDDEN, "publishing not authorized");
        }
        crate::access::PublishVerdict::Unavailable => {
            return reply::error(StatusCode::SERVICE_UNAVAILABLE, "authorization backend unavailable");
        }
        crate::access::PublishVerdict::TooMany => {
            return reply::error(StatusCode::TOO_MANY_REQUESTS, "too many attempts from this address");
        }
    }
    let _demand = stream.hold();
    // An on-demand stream starts its input now: give it a moment.
    let wait = if stream.cfg().ondemand {
        Duration::from_secs(5)
    } else {
        Duration::ZERO
    };
    let idle = stream.cfg().source_timeout;
    match crate::input::publish::accept(&slot, &stream.name, req.into_body(), idle, wait).await {
        Ok(total) => {
            tracing::info!(stream = %stream.name, bytes = total, "publisher finished");
            (StatusCode::OK, format!("received {total} bytes\n")).into_response()
        }
        Err(e) => {
            let msg = match e {
                crate::input::publish::PublishError::Busy => "stream is already being published",
                crate::input::publish::PublishError::Silent => {
                    stream.metrics.input_timeouts.inc();
                    tracing::warn!(stream = %stream.name, "publisher silent for {}s: closing", idle.as_secs());
                    "no data from publisher"
                }
                crate::input::publish::PublishError::InputStopped => "stream input stopped",
                crate::input::publish::PublishError::Replaced => "replaced by a new publisher",
                crate::input::publish::PublishError::BadBody => "unreadable request body",
            };
            reply::error(e.status(), msg)
        }
    }
}

//! Publishers that arrive on a protocol listener (RTMP, SRT): finding the
//! stream a publisher names, checking that it may publish there, and
//! feeding its media into that stream's `publish://` input.
//!
//! The same checks as HTTP publishing apply, in the same order, before the
//! publisher is told it may start (so an RTMP encoder never sees
//! `NetStream.Publish.Start` for a stream it cannot feed): the stream must
//! exist and have a `publish://` input; then `publish_password` and
//! `on_publish` ([`crate::access::Access::authorize_publish`]); then the
//! stream's one publisher slot must be free or held by a stalled publisher
//! ([`crate::input::publish`]). Streams are never created by a publisher.

use crate::http::request::PlayRequest;
use crate::input::publish::{PublishChunk, PublishError, PublishSlot};
use crate::stream::Stream;
use crate::Node;
use axum::http::{HeaderMap, Method};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A publisher asking to publish.
#[derive(Clone, Copy, Debug)]
pub struct PublishRequest<'a> {
    /// The stream name, without query.
    pub name: &'a str,
    /// The query the publisher sent with the name (`password=…`,
    /// `token=…`), without `?`.
    pub query: Option<&'a str>,
    /// The publisher's address.
    pub ip: IpAddr,
    /// The protocol, for logs: `rtmp`, `srt`.
    pub proto: &'static str,
}

/// Why a publisher was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No stream of that name (or a name strom would never serve).
    UnknownStream,
    /// The stream has no `publish://` input.
    NotPublishable,
    /// Wrong or missing `publish_password`, or `on_publish` said no.
    Unauthorized,
    /// `on_publish` could not be asked.
    Unavailable,
    /// Too many attempts from this address.
    TooMany,
    /// Another publisher is sending to the stream.
    Busy,
}

impl Refusal {
    /// The `result` label of the connection counters.
    pub fn result(self) -> &'static str {
        match self {
            Refusal::UnknownStream => "unknown_stream",
            Refusal::NotPublishable => "not_publishable",
            Refusal::Unauthorized => "unauthorized",
            Refusal::Unavailable => "unavailable",
            Refusal::TooMany => "rate_limited",
            Refusal::Busy => "busy",
        }
    }

    /// A sentence for the publisher (an RTMP `onStatus` description).
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::UnknownStream => "no such stream",
            Refusal::NotPublishable => "stream does not accept publishing",
            Refusal::Unauthorized => "publishing not authorized",
            Refusal::Unavailable => "authorization backend unavailable",
            Refusal::TooMany => "too many attempts from this address",
            Refusal::Busy => "stream is already being published",
        }
    }
}

/// An admitted publisher: feed it with [`Publisher::run`].
pub struct Publisher {
    stream: Arc<Stream>,
    slot: Arc<PublishSlot>,
    /// Keeps an on-demand stream running while the publisher is on.
    _demand: crate::stream::DemandGuard,
    wait: Duration,
    idle: Duration,
}

/// Finds and authorizes the stream `req` names. Nothing is read from the
/// publisher until this says yes.
pub async fn admit(node: &Arc<Node>, req: PublishRequest<'_>) -> Result<Publisher, Refusal> {
    let path = format!("/{}/publish", req.name);
    let r = PlayRequest::parse(
        Method::POST,
        &path,
        req.query,
        &HeaderMap::new(),
        Some(SocketAddr::new(req.ip, 0)),
    )
    .map_err(|_| Refusal::UnknownStream)?;
    let stream = node.stream(&r.name).ok_or(Refusal::UnknownStream)?;
    let slot = stream.publish.clone().ok_or(Refusal::NotPublishable)?;
    match node.access.authorize_publish(&stream, &node.config, &r, None).await {
        crate::access::PublishVerdict::Allow => {}
        crate::access::PublishVerdict::Deny => return Err(Refusal::Unauthorized),
        crate::access::PublishVerdict::Unavailable => return Err(Refusal::Unavailable),
        crate::access::PublishVerdict::TooMany => return Err(Refusal::TooMany),
    }
    let wait = if stream.cfg().ondemand {
        Duration::from_secs(5)
    } else {
        Duration::ZERO
    };
    let idle = stream.cfg().source_timeout;
    Ok(Publisher {
        _demand: stream.hold(),
        stream,
        slot,
        wait,
        idle,
    })
}

impl Publisher {
    /// The stream being published.
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Takes the stream's one publisher slot (see
    /// [`crate::input::publish::claim`]): [`Refusal::Busy`] while another
    /// publisher is sending.
    pub async fn claim(self) -> Result<Claimed, Refusal> {
        match crate::input::publish::claim(&self.slot, self.wait, &self.stream.name).await {
            Ok(claim) => Ok(Claimed { publisher: self, claim }),
            Err(_) => Err(Refusal::Busy),
        }
    }

    /// [`Publisher::claim`], then [`Claimed::run`].
    pub async fn run<S>(self, source: S) -> Result<usize, PublishError>
    where
        S: futures_util::Stream<Item = PublishChunk> + Send + Unpin,
    {
        match self.claim().await {
            Ok(c) => c.run(source).await,
            Err(_) => Err(PublishError::Busy),
        }
    }
}

/// A publisher that holds its stream's publisher slot.
pub struct Claimed {
    publisher: Publisher,
    claim: crate::input::publish::Claim,
}

impl Claimed {
    /// The stream being published.
    pub fn stream(&self) -> &Arc<Stream> {
        &self.publisher.stream
    }

    /// Feeds `source` into the stream until it ends (`None`), goes silent,
    /// or a newer publisher takes over. Returns the bytes fed.
    pub async fn run<S>(self, source: S) -> Result<usize, PublishError>
    where
        S: futures_util::Stream<Item = PublishChunk> + Send + Unpin,
    {
        use futures_util::StreamExt;
        let source = source.map(Ok::<_, std::convert::Infallible>);
        let r = self.claim.feed(source, self.publisher.idle).await;
        if r == Err(PublishError::Silent) {
            self.publisher.stream.metrics.input_timeouts.inc();
        }
        r
    }
}

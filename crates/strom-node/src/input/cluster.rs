//! Cluster feed input: pulls a restreamed stream's finished segments from
//! its `source` nodes over strom's segment protocol.
//!
//! Sources are tried in order. When the one in use fails (error, bad data,
//! or no message, not even a heartbeat, for [`IDLE`]), the next is asked at
//! once to resume after the newest segment the stream holds. Each connection
//! is one feed: the pipeline maps its numbering ([`crate::stream::pipeline::place`]),
//! so identical sources continue seamlessly and a different one continues
//! forward with a discontinuity. After a whole round of failures the input
//! backs off briefly; the stream's supervisor decides when the backup plays,
//! exactly as for any other input.

use super::{Backoff, InputCtx, InputMsg};
use crate::cluster::manager::signed_get;
use crate::cluster::PREFIX;
use crate::metrics::{Metrics, SourceLabel};
use crate::output::cluster_feed::HEADER_DISCONTINUITIES;
use crate::stream::control::FeedSegment;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use strom_media::wire::{Decoder, Message};
use tokio::sync::watch;

/// No message for this long (the source heartbeats every second) means the
/// connection hangs.
pub const IDLE: Duration = Duration::from_secs(3);

/// One source node, as a restreamed stream sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRef {
    /// `host:port`.
    pub addr: String,
    /// Signing key for this source, if any.
    pub key: Option<String>,
}

/// Where a restreamed stream pulls from.
pub struct ClusterSpec {
    /// The stream's name on the sources.
    pub name: String,
    /// Sources carrying the stream, in config order; the manager updates it.
    pub sources: watch::Receiver<Vec<SourceRef>>,
    pub client: reqwest::Client,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ClusterSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterSpec({self})")
    }
}

impl std::fmt::Display for ClusterSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self.sources.borrow().iter().map(|s| s.addr.clone()).collect();
        write!(f, "cluster://{}/{}", list.join(","), self.name)
    }
}

/// Runs until cancelled.
pub async fn run(spec: Arc<ClusterSpec>, ctx: InputCtx) {
    let mut current = 0usize;
    let mut fails_in_row = 0usize;
    let mut feed_id = 0u64;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    loop {
        let list = spec.sources.borrow().clone();
        if list.is_empty() {
            if !ctx.sleep(Duration::from_secs(1)).await {
                return;
            }
            continue;
        }
        let src = &list[current % list.len()];
        feed_id += 1;
        let r = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = session(&spec, &ctx, src, feed_id) => r,
        };
        match r {
            Ok(()) => return, // the stream is gone
            Err(e) => {
                tracing::warn!(stream = %ctx.stream, source = %src.addr, error = %e, "source feed lost");
                ctx.state(false, e).await;
                current += 1;
                fails_in_row += 1;
                if fails_in_row >= list.len() {
                    fails_in_row = 0;
                    if !ctx.sleep(backoff.next_delay()).await {
                        return;
                    }
                }
            }
        }
        if fails_in_row == 0 {
            backoff.reset();
        }
    }
}

/// One connection to one source. Ok(()) when the stream is gone; Err with
/// the reason when the feed failed.
async fn session(spec: &ClusterSpec, ctx: &InputCtx, src: &SourceRef, feed: u64) -> Result<(), String> {
    let mut path = format!("{PREFIX}/segments/{}", spec.name);
    let resume = ctx.newest_seq.borrow().map(|n| n + 1);
    if let Some(next) = resume {
        path.push_str(&format!("?from={next}"));
    }
    let resp = tokio::time::timeout(IDLE * 2, signed_get(&spec.client, &src.addr, src.key.as_deref(), &path))
        .await
        .map_err(|_| "no response".to_string())?
        .map_err(|e| format!("request failed: {e}"))?;
    if resp.status() == reqwest::StatusCode::FORBIDDEN {
        spec.metrics.cluster_error("auth");
        return Err("source refused our cluster_key".into());
    }
    if !resp.status().is_success() {
        return Err(format!("http status {}", resp.status()));
    }
    let discontinuities_before = resp
        .headers()
        .get(HEADER_DISCONTINUITIES)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let bytes_in = spec.metrics.source_bytes.get_or_create_owned(&SourceLabel {
        source: src.addr.clone(),
    });
    let origin: Arc<str> = Arc::from(src.addr.as_str());
    let mut body = resp.bytes_stream();
    let mut decoder = Decoder::new();
    let mut first = true;
    loop {
        let chunk = match tokio::time::timeout(IDLE, body.next()).await {
            Err(_) => return Err(format!("no data for {} s", IDLE.as_secs())),
            Ok(None) => return Err("source closed the feed".into()),
            Ok(Some(Err(e))) => return Err(format!("read failed: {e}")),
            Ok(Some(Ok(c))) => c,
        };
        bytes_in.inc_by(chunk.len() as u64);
        decoder.push(&chunk);
        loop {
            match decoder.pull() {
                Ok(None) => break,
                Ok(Some(Message::Segment(segment))) => {
                    if first {
                        tracing::info!(stream = %ctx.stream, source = %src.addr, seq = segment.seq, "source feed connected");
                    }
                    let msg = InputMsg::Segment(Box::new(FeedSegment {
                        feed,
                        origin: origin.clone(),
                        discontinuities_before: if first { discontinuities_before } else { None },
                        segment,
                    }));
                    first = false;
                    if !ctx.send(msg).await {
                        return Ok(());
                    }
                }
                Ok(Some(_)) => {} // heartbeat or a kind this version does not know
                Err(e) => {
                    spec.metrics.cluster_error("wire");
                    return Err(format!("bad data from source: {e}"));
                }
            }
        }
    }
}

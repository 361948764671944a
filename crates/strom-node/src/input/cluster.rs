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

/// Longest segment accepted from a source (3x the longest target), 90 kHz.
const MAX_SEGMENT_TICKS: i64 = 90 * strom_media::CLOCK_HZ;
/// Highest segment number accepted from a source.
const MAX_SEQ: u64 = 1 << 48;
/// How far from our UTC clock a live segment may start, 90 kHz (7 days).
const MAX_CLOCK_SKEW: i64 = 7 * 86_400 * strom_media::CLOCK_HZ;

/// Checks what a source claims about a segment before it can reach a
/// playlist: a duration a playlist can carry, a number that leaves room to
/// count on, a start near our clock, and no more discontinuities before it
/// than segments. `Err` names the rule broken.
pub fn check_segment(
    seg: &strom_media::Segment,
    discontinuities_before: Option<u64>,
    utc_now: i64,
) -> Result<(), &'static str> {
    if seg.duration <= 0 || seg.duration > MAX_SEGMENT_TICKS {
        return Err("duration out of range");
    }
    if seg.seq > MAX_SEQ {
        return Err("sequence number out of range");
    }
    if seg.start.saturating_sub(utc_now).saturating_abs() > MAX_CLOCK_SKEW {
        return Err("start too far from our clock");
    }
    if discontinuities_before.is_some_and(|d| d > seg.seq) {
        return Err("more discontinuities than segments");
    }
    Ok(())
}

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
                    let claimed = if first { discontinuities_before } else { None };
                    if let Err(why) = check_segment(&segment, claimed, crate::util::utc90_now()) {
                        spec.metrics.cluster_error("bad_segment");
                        return Err(format!("invalid segment from source: {why}"));
                    }
                    if first {
                        tracing::info!(stream = %ctx.stream, source = %src.addr, seq = segment.seq, "source feed connected");
                    }
                    let msg = InputMsg::Segment(Box::new(FeedSegment {
                        feed,
                        origin: origin.clone(),
                        discontinuities_before: claimed,
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

#[cfg(test)]
mod tests {
    use super::*;
    use strom_media::{Segment, CLOCK_HZ};

    fn seg(seq: u64, start: i64, duration: i64) -> Segment {
        Segment {
            seq,
            start,
            duration,
            discontinuity: false,
            target_duration: 2,
            tracks: Arc::from(Vec::new()),
            frames: Vec::new(),
        }
    }

    #[test]
    fn absurd_segments_from_a_source_are_refused() {
        let now = 1_800_000_000 * CLOCK_HZ;
        assert_eq!(check_segment(&seg(100, now, 2 * CLOCK_HZ), Some(3), now), Ok(()));
        assert!(check_segment(&seg(100, now, 1_000_000_000 * CLOCK_HZ), None, now).is_err());
        assert!(check_segment(&seg(100, now, 0), None, now).is_err());
        assert!(check_segment(&seg(u64::MAX, now, 2 * CLOCK_HZ), None, now).is_err());
        assert!(check_segment(&seg(100, 0, 2 * CLOCK_HZ), None, now).is_err());
        assert!(check_segment(&seg(100, i64::MAX, 2 * CLOCK_HZ), None, now).is_err());
        assert!(check_segment(&seg(100, now, 2 * CLOCK_HZ), Some(u64::MAX), now).is_err());
    }
}

//! Pulls one restreamed stream's segments from its sources and publishes them
//! into the local hub unchanged.
//!
//! Sources are tried in order; when the one in use fails (error, bad data, or
//! no message, not even a heartbeat, for `IDLE`), the next is asked at once to
//! resume from the next segment number this node lacks. For sources that
//! carry the same segments (two restreamers of one origin) that resumption is
//! seamless: same numbers, same timestamps, no discontinuity. A source whose
//! feed does not continue ours (another encoder, another origin) is
//! renumbered forward from our next number and marked as a discontinuity, so
//! the sequence never goes back.

use super::manager::signed_get;
use super::server::HEADER_DISCONTINUITIES;
use super::{source_key, PREFIX};
use crate::hub::{Status, StreamHub};
use crate::input::{self, InputCtx, InputEvent};
use crate::live::LiveOutput;
use crate::metrics::SourceLabel;
use crate::Node;
use futures_util::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strom_config::Input;
use strom_media::segmenter::{Segmenter, SegmenterConfig};
use strom_media::timeline::{Mapped, Timeline, TimelineConfig};
use strom_media::ts::demux::DemuxEvent;
use strom_media::wire::{Decoder, Message};
use strom_media::Segment;
use strom_media::CLOCK_HZ;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// No message for this long (the source heartbeats every second) means the
/// connection hangs.
pub const IDLE: Duration = Duration::from_secs(3);

/// The HTTP client used for node-to-node requests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .user_agent(concat!("strom/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Where this stream's numbering stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Next sequence number expected (ours).
    pub next: Option<u64>,
    /// UTC end of the last segment published.
    pub end: Option<i64>,
}

/// Per-connection numbering: the offset applied to the source's numbers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub offset: i64,
    pub started: bool,
}

/// Decides a received segment's local number and discontinuity flag, and
/// advances the position. Pure, so the rules are tested without sockets.
pub fn place(pos: &mut Position, map: &mut Mapping, seg: &mut Segment) -> bool {
    if !map.started {
        map.started = true;
        match pos.next {
            // First segment ever: adopt the source's numbering.
            None => map.offset = 0,
            Some(next) => {
                let continues = seg.seq == next && pos.end == Some(seg.start);
                if seg.seq < next {
                    // A feed numbered below us: renumber forward.
                    map.offset = next as i64 - seg.seq as i64;
                } else {
                    map.offset = 0;
                }
                if !continues {
                    seg.discontinuity = true;
                }
            }
        }
    }
    let local = seg.seq as i64 + map.offset;
    if local < 0 {
        return false;
    }
    let local = local as u64;
    if let Some(next) = pos.next {
        if local < next {
            return false; // already published (overlap)
        }
        if local > next {
            seg.discontinuity = true; // segments were missed
        }
    }
    seg.seq = local;
    pos.next = Some(local + 1);
    pos.end = Some(seg.start + seg.duration);
    true
}

/// Runs until cancelled.
pub async fn run(
    node: Arc<Node>,
    hub: Arc<StreamHub>,
    sources: watch::Receiver<Vec<usize>>,
    cancel: CancellationToken,
) {
    let client = client();
    let pos = Arc::new(Mutex::new(Position::default()));
    let mut backup: Option<CancellationToken> = None;
    let mut live = LiveOutput::new();
    let mut current: usize = 0;
    let mut last_source: Option<usize> = None;
    let mut fails_in_row = 0u32;
    hub.set_status(
        if hub.cfg.ondemand {
            Status::Stopped
        } else {
            Status::Waiting
        },
        None,
    );
    loop {
        if hub.cfg.ondemand {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = hub.wake.notified() => {}
            }
            tracing::info!(stream = %hub.name, "on-demand restream starting");
        }
        // One viewing period (forever for static streams).
        loop {
            if cancel.is_cancelled() {
                break;
            }
            if hub.cfg.ondemand && hub.idle_for() > hub.cfg.clients_timeout {
                tracing::info!(stream = %hub.name, "on-demand restream stopped: no viewers");
                hub.set_status(Status::Stopped, None);
                break;
            }
            let list = sources.borrow().clone();
            if list.is_empty() {
                if !sleep(&cancel, Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
            let src_idx = list[current % list.len()];
            let src = &node.config.sources[src_idx];
            let key = source_key(&node.config, src);
            let r = session(
                &node,
                &hub,
                &client,
                &src.addr,
                key,
                src_idx,
                &pos,
                &mut live,
                &cancel,
                &mut last_source,
                &mut backup,
            )
            .await;
            match r {
                Ok(()) => break, // cancelled or idle on-demand
                Err(e) => {
                    tracing::warn!(stream = %hub.name, source = %src.addr, error = %e, "source feed lost");
                    current += 1;
                    fails_in_row += 1;
                    if fails_in_row as usize >= list.len() {
                        // A whole round failed: play the backup if there is
                        // one, and back off before the next round.
                        match (&hub.cfg.backup, &backup) {
                            (Some(file), None) => {
                                tracing::warn!(stream = %hub.name, "every source is down: playing backup");
                                let token = cancel.child_token();
                                tokio::spawn(run_backup(hub.clone(), file.clone(), pos.clone(), token.clone()));
                                backup = Some(token);
                            }
                            (Some(_), Some(_)) => {}
                            (None, _) => hub.set_status(Status::Failed, None),
                        }
                        fails_in_row = 0;
                        if !sleep(&cancel, Duration::from_millis(500)).await {
                            break;
                        }
                    }
                }
            }
            if last_source.is_some() && fails_in_row == 0 {
                continue;
            }
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    if let Some(b) = backup.take() {
        b.cancel();
    }
    hub.set_status(Status::Stopped, None);
}

/// Plays the source block's `backup` file into the hub while no source
/// works, numbering its segments on from the stream's own sequence.
async fn run_backup(hub: Arc<StreamHub>, file: Input, pos: Arc<Mutex<Position>>, cancel: CancellationToken) {
    let (tx, mut rx) = mpsc::channel(64);
    let ctx = InputCtx {
        index: 0,
        tx,
        cancel: cancel.clone(),
        hub: hub.clone(),
    };
    input::spawn(&file, ctx);
    let target = hub.cfg.segment_duration.as_millis() as i64 * CLOCK_HZ / 1000;
    let mut timeline = Timeline::new(TimelineConfig::default());
    let mut segmenter = Segmenter::new(SegmenterConfig::with_target(target), 0);
    let mut live = LiveOutput::new();
    let mut first = true;
    hub.set_status(Status::Backup, None);
    let push = |mut seg: Segment, first: &mut bool| {
        let mut p = pos.lock().unwrap_or_else(|e| e.into_inner());
        seg.seq = p
            .next
            .unwrap_or_else(|| (crate::supervisor::now_utc90() / CLOCK_HZ).max(0) as u64);
        seg.discontinuity |= std::mem::take(first);
        p.next = Some(seg.seq + 1);
        p.end = Some(seg.start + seg.duration);
        drop(p);
        hub.push_segment(seg);
    };
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => break,
            ev = rx.recv() => ev,
        };
        let Some(InputEvent::Media { events, .. }) = ev else {
            if ev.is_none() {
                break;
            }
            continue;
        };
        for ev in events {
            match ev {
                DemuxEvent::Tracks(t) => {
                    if let Some(seg) = segmenter.set_tracks(t.clone()) {
                        push(seg, &mut first);
                    }
                    if live.set_tracks(&t) {
                        hub.set_tracks(t);
                    }
                }
                DemuxEvent::Frame(f) => {
                    if let Mapped::Frame { frame, .. } = timeline.map(f, crate::supervisor::now_utc90()) {
                        live.write(&hub, &frame);
                        hub.metrics.frames.inc();
                        if let Some(seg) = segmenter.push(frame) {
                            push(seg, &mut first);
                        }
                    }
                }
            }
        }
        hub.on_frame(std::time::Instant::now());
    }
    tracing::info!(stream = %hub.name, "backup stopped");
}

async fn sleep(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// One connection to one source. Ok(()) when cancelled or idle (on-demand);
/// Err with the reason when the feed failed.
#[allow(clippy::too_many_arguments)]
async fn session(
    node: &Node,
    hub: &Arc<StreamHub>,
    client: &reqwest::Client,
    addr: &str,
    key: Option<&str>,
    src_idx: usize,
    pos: &Mutex<Position>,
    live: &mut LiveOutput,
    cancel: &CancellationToken,
    last_source: &mut Option<usize>,
    backup: &mut Option<CancellationToken>,
) -> Result<(), String> {
    let mut path = format!("{PREFIX}/segments/{}", hub.name);
    let start = *pos.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(next) = start.next {
        path.push_str(&format!("?from={next}"));
    }
    let resp = tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        r = tokio::time::timeout(IDLE * 2, signed_get(client, addr, key, &path)) => r,
    };
    let resp = match resp {
        Err(_) => return Err("no response".into()),
        Ok(Err(e)) => return Err(format!("request failed: {e}")),
        Ok(Ok(r)) => r,
    };
    if resp.status() == reqwest::StatusCode::FORBIDDEN {
        node.metrics.cluster_error("auth");
        return Err(format!(
            "source refused our cluster_key: {}",
            resp.text().await.unwrap_or_default().trim()
        ));
    }
    if !resp.status().is_success() {
        return Err(format!("http status {}", resp.status()));
    }
    if start.next.is_none() {
        let before = resp
            .headers()
            .get(HEADER_DISCONTINUITIES)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        if let Some(b) = before {
            hub.adopt_discontinuities(b);
        }
    }
    let bytes_in = node.metrics.source_bytes.get_or_create_owned(&SourceLabel {
        source: addr.to_string(),
    });
    let mut body = resp.bytes_stream();
    let mut decoder = Decoder::new();
    let mut map = Mapping::default();
    let mut announced = false;
    loop {
        if hub.cfg.ondemand && hub.idle_for() > hub.cfg.clients_timeout {
            return Ok(());
        }
        let chunk = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            c = tokio::time::timeout(IDLE, body.next()) => c,
        };
        let chunk = match chunk {
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
                Ok(Some(Message::Segment(mut seg))) => {
                    if !place(&mut pos.lock().unwrap_or_else(|e| e.into_inner()), &mut map, &mut seg) {
                        continue;
                    }
                    if !announced {
                        announced = true;
                        if let Some(b) = backup.take() {
                            b.cancel();
                            tracing::info!(stream = %hub.name, source = %addr, "source back: leaving backup");
                        }
                        if last_source.is_some_and(|l| l != src_idx) {
                            hub.metrics.switches.inc();
                            tracing::warn!(stream = %hub.name, source = %addr, "switched source");
                        }
                        *last_source = Some(src_idx);
                        hub.set_origin(Some(addr.to_string()));
                        hub.set_status(Status::Running, Some(src_idx));
                    }
                    publish(hub, live, seg);
                }
                Ok(Some(_)) => {} // heartbeat or a kind this version does not know
                Err(e) => {
                    node.metrics.cluster_error("wire");
                    return Err(format!("bad data from source: {e}"));
                }
            }
        }
    }
}

fn publish(hub: &StreamHub, live: &mut LiveOutput, seg: Segment) {
    if live.set_tracks(&seg.tracks) {
        hub.set_tracks(seg.tracks.clone());
    }
    for f in &seg.frames {
        live.write(hub, f);
    }
    hub.metrics.frames.inc_by(seg.frames.len() as u64);
    hub.metrics.input_bytes.inc_by(seg.payload_bytes() as u64);
    hub.on_frame(std::time::Instant::now());
    hub.push_segment(seg);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn seg(seq: u64, start: i64) -> Segment {
        Segment {
            seq,
            start,
            duration: 180_000,
            discontinuity: false,
            tracks: Arc::from(Vec::new()),
            frames: Vec::new(),
        }
    }

    #[test]
    fn identical_source_continues_seamlessly() {
        let mut pos = Position::default();
        let mut m = Mapping::default();
        let mut a = seg(100, 0);
        assert!(place(&mut pos, &mut m, &mut a));
        let mut b = seg(101, 180_000);
        assert!(place(&mut pos, &mut m, &mut b));
        // Failover to a second source carrying the same segments.
        let mut m2 = Mapping::default();
        let mut c = seg(102, 360_000);
        assert!(place(&mut pos, &mut m2, &mut c));
        assert_eq!((c.seq, c.discontinuity), (102, false));
    }

    #[test]
    fn lower_numbered_feed_is_renumbered_forward_with_discontinuity() {
        let mut pos = Position {
            next: Some(500),
            end: Some(1_000_000),
        };
        let mut m = Mapping::default();
        let mut a = seg(40, 2_000_000);
        assert!(place(&mut pos, &mut m, &mut a));
        assert_eq!((a.seq, a.discontinuity), (500, true));
        let mut b = seg(41, 2_180_000);
        assert!(place(&mut pos, &mut m, &mut b));
        assert_eq!((b.seq, b.discontinuity), (501, false));
    }

    #[test]
    fn higher_numbered_feed_keeps_its_numbers_with_discontinuity() {
        let mut pos = Position {
            next: Some(500),
            end: Some(1_000_000),
        };
        let mut m = Mapping::default();
        let mut a = seg(9000, 2_000_000);
        assert!(place(&mut pos, &mut m, &mut a));
        assert_eq!((a.seq, a.discontinuity), (9000, true));
    }

    #[test]
    fn same_number_but_other_timeline_is_a_discontinuity() {
        let mut pos = Position {
            next: Some(500),
            end: Some(1_000_000),
        };
        let mut m = Mapping::default();
        let mut a = seg(500, 5_000_000);
        assert!(place(&mut pos, &mut m, &mut a));
        assert!(a.discontinuity);
    }

    #[test]
    fn overlap_is_skipped_and_gaps_are_flagged() {
        let mut pos = Position {
            next: Some(500),
            end: Some(1_000_000),
        };
        let mut m = Mapping {
            offset: 0,
            started: true,
        };
        let mut old = seg(499, 820_000);
        assert!(!place(&mut pos, &mut m, &mut old));
        let mut gap = seg(503, 1_540_000);
        assert!(place(&mut pos, &mut m, &mut gap));
        assert!(gap.discontinuity);
        assert_eq!(pos.next, Some(504));
    }
}

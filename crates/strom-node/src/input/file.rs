//! `file://` and `builtin://` inputs: an MPEG-TS file looped forever and paced
//! in real time by its own timestamps.
//!
//! The file is demuxed once; each loop replays the frames with their
//! timestamps shifted by the loop's duration, so the timeline sees one
//! continuous run across loops (no discontinuity, no jump). Raw timestamps stay
//! in the 33-bit domain like any other input's.

use super::{Feeder, InputCtx};
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use strom_media::ts::demux::DemuxEvent;
use strom_media::ts::TS_WRAP;
use strom_media::{Frame, Track, TrackKind, CLOCK_HZ};
use tokio::time::Instant;

/// The embedded demo channel: 10 s of H.264 1280x720 + AAC test pattern.
pub static DEMO_TS: &[u8] = include_bytes!("../../../../assets/demo.ts");

/// Files larger than this are refused rather than held in memory.
const MAX_FILE: u64 = 512 << 20;

/// Where the bytes come from.
#[derive(Clone, Debug)]
pub enum Origin {
    Path(PathBuf),
    Builtin(String),
}

/// A demuxed file ready to loop.
#[derive(Debug)]
pub struct Looped {
    pub tracks: Arc<[Track]>,
    /// Frames with DTS/PTS unwrapped relative to the first frame's DTS (which is 0).
    pub frames: Vec<Frame>,
    /// Shift applied per loop, 90 kHz ticks.
    pub period: i64,
    /// Raw DTS of the first frame, so replayed timestamps look like the source's.
    pub base: i64,
}

/// Demuxes `data` into a loop. None when it holds no frames.
pub fn prepare(data: &[u8], hub: &crate::hub::StreamHub) -> Option<Looped> {
    let mut feeder = Feeder::new();
    let mut events = feeder.feed(hub, data);
    events.extend(feeder.finish(hub));
    let mut tracks: Option<Arc<[Track]>> = None;
    let mut frames = Vec::new();
    for ev in events {
        match ev {
            // A file whose PMT changes is looped with its last track set.
            DemuxEvent::Tracks(t) => tracks = Some(t),
            DemuxEvent::Frame(f) => frames.push(f),
        }
    }
    let tracks = tracks?;
    let first = frames.first()?.dts;
    // Unwrap within the file relative to the previous frame.
    let mut prev = first;
    let mut acc = 0i64;
    for f in &mut frames {
        let mut d = (f.dts - prev).rem_euclid(TS_WRAP);
        if d >= TS_WRAP / 2 {
            d -= TS_WRAP;
        }
        prev = f.dts;
        acc += d;
        let mut cts = (f.pts - f.dts).rem_euclid(TS_WRAP);
        if cts >= TS_WRAP / 2 {
            cts -= TS_WRAP;
        }
        f.dts = acc;
        f.pts = acc + cts;
    }
    // The loop lasts until the end of its last frame on the timing track.
    let timing = tracks
        .iter()
        .find(|t| t.kind() == TrackKind::Video)
        .or_else(|| tracks.first())
        .map(|t| t.id)?;
    let mut on_timing = frames.iter().filter(|f| f.track == timing).map(|f| f.dts);
    let first_t = on_timing.next()?;
    let (last_t, step) = on_timing.fold((first_t, CLOCK_HZ / 25), |(last, step), d| {
        (d, if d > last { d - last } else { step })
    });
    let max_dts = frames.iter().map(|f| f.dts).max().unwrap_or(0);
    let period = (last_t + step).max(max_dts + 1);
    Some(Looped {
        tracks,
        frames,
        period,
        base: first,
    })
}

async fn load(origin: &Origin) -> Result<Bytes, String> {
    match origin {
        Origin::Builtin(name) if name == "demo" => Ok(Bytes::from_static(DEMO_TS)),
        Origin::Builtin(name) => Err(format!("no built-in channel `{name}`")),
        Origin::Path(p) => {
            let meta = tokio::fs::metadata(p)
                .await
                .map_err(|e| format!("{}: {e}", p.display()))?;
            if meta.len() > MAX_FILE {
                return Err(format!(
                    "{}: {} bytes is larger than {MAX_FILE}",
                    p.display(),
                    meta.len()
                ));
            }
            tokio::fs::read(p)
                .await
                .map(Bytes::from)
                .map_err(|e| format!("{}: {e}", p.display()))
        }
    }
}

/// Runs until cancelled.
pub async fn run(origin: Origin, ctx: InputCtx) {
    let looped = loop {
        let r = load(&origin)
            .await
            .and_then(|data| prepare(&data, &ctx.hub).ok_or_else(|| "no playable frames".to_string()));
        match r {
            Ok(l) => break l,
            Err(e) => {
                tracing::warn!(stream = %ctx.hub.name, input = ctx.index, error = %e, "file input unusable");
                ctx.state(false, e).await;
                if !ctx.sleep(Duration::from_secs(5)).await {
                    return;
                }
            }
        }
    };
    ctx.state(true, format!("playing {origin:?}")).await;
    if !ctx.send(vec![DemuxEvent::Tracks(looped.tracks.clone())]).await {
        return;
    }
    let start = Instant::now();
    let mut shift = 0i64;
    loop {
        let mut i = 0;
        while i < looped.frames.len() {
            let due = looped.frames[i].dts + shift;
            let at = start + Duration::from_micros((due.max(0) as u64) * 1_000_000 / CLOCK_HZ as u64);
            tokio::select! {
                _ = ctx.cancel.cancelled() => return,
                _ = tokio::time::sleep_until(at) => {}
            }
            // Everything due by now goes in one batch.
            let now_ticks = (start.elapsed().as_micros() as i64) * CLOCK_HZ / 1_000_000;
            let mut batch = Vec::new();
            // The frame that was waited for always goes, whatever the rounding.
            while i < looped.frames.len() && (batch.is_empty() || looped.frames[i].dts + shift <= now_ticks) {
                let f = &looped.frames[i];
                batch.push(DemuxEvent::Frame(Frame {
                    track: f.track,
                    dts: (looped.base + f.dts + shift).rem_euclid(TS_WRAP),
                    pts: (looped.base + f.pts + shift).rem_euclid(TS_WRAP),
                    keyframe: f.keyframe,
                    data: f.data.clone(),
                }));
                i += 1;
            }
            let bytes: usize = batch
                .iter()
                .map(|e| match e {
                    DemuxEvent::Frame(f) => f.data.len(),
                    DemuxEvent::Tracks(_) => 0,
                })
                .sum();
            ctx.hub.metrics.input_bytes.inc_by(bytes as u64);
            if !ctx.send(batch).await {
                return;
            }
        }
        shift += looped.period;
    }
}

//! `file://` and `builtin://` inputs: an MPEG-TS file looped forever and
//! paced in real time by its own timestamps.
//!
//! The file is demuxed once; `strom_media::looper` turns it into an endless
//! frame sequence whose timestamps continue seamlessly across each loop
//! join (no gap, no overlap, audio kept within half a frame of video), so
//! the timeline sees one continuous run and every HLS segment keeps its
//! length. Timestamps handed on are raw 33-bit, like any other input's.
//!
//! Input bytes are counted as frames are played, not when the file loads.

use super::{InputCtx, InputMsg};
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use strom_media::looper::Looper;
use strom_media::ts::demux::DemuxEvent;
use strom_media::ts::TS_WRAP;
use strom_media::{Frame, Track, CLOCK_HZ};
use tokio::time::Instant;

/// The embedded demo channel: 10 s of H.264 1280x720 + AAC test pattern.
pub static DEMO_TS: &[u8] = include_bytes!("../../../../assets/demo.ts");

/// Files larger than this are refused rather than held in memory.
const MAX_FILE: u64 = 512 << 20;
/// Frames sent per message at most (a burst after a stall stays bounded).
const MAX_BATCH: usize = 64;

/// Where the bytes come from.
#[derive(Clone, Debug)]
pub enum Origin {
    Path(PathBuf),
    Builtin(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Path(p) => write!(f, "{}", p.display()),
            Origin::Builtin(n) => write!(f, "builtin://{n}"),
        }
    }
}

/// Demuxes a whole file (following MPTS program `program`) into a looper.
/// None when it holds nothing playable.
pub fn prepare(data: &[u8], program: Option<u16>) -> Option<Looper> {
    let mut demux = super::demuxer(program);
    demux.push(data);
    demux.flush();
    let mut tracks: Option<Arc<[Track]>> = None;
    let mut frames: Vec<Frame> = Vec::new();
    while let Some(ev) = demux.pull() {
        match ev {
            // A file whose PMT changes is looped with its last track set.
            DemuxEvent::Tracks(t) => tracks = Some(t),
            DemuxEvent::Frame(f) => frames.push(f),
        }
    }
    Looper::new(tracks?, frames)
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
pub async fn run(origin: Origin, program: Option<u16>, ctx: InputCtx) {
    let mut looper = loop {
        let r = load(&origin)
            .await
            .and_then(|data| prepare(&data, program).ok_or_else(|| "no playable frames".to_string()));
        match r {
            Ok(l) => break l,
            Err(e) => {
                tracing::warn!(stream = %ctx.stream, input = ctx.index(), error = %e, "file input unusable");
                ctx.state(false, e).await;
                if !ctx.sleep(Duration::from_secs(5)).await {
                    return;
                }
            }
        }
    };
    ctx.state(true, format!("playing {origin}")).await;
    if !ctx.send_events(vec![DemuxEvent::Tracks(looper.tracks().clone())]).await {
        return;
    }
    let base = looper.base_dts();
    let start = Instant::now();
    let mut next = looper.next();
    while let Some(first) = next.take() {
        let at = start + Duration::from_micros((first.dts.max(0) as u64) * 1_000_000 / CLOCK_HZ as u64);
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = tokio::time::sleep_until(at) => {}
        }
        // Everything due by now goes in one batch; the frame waited for always goes.
        let now_ticks = (start.elapsed().as_micros() as i64) * CLOCK_HZ / 1_000_000;
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        let mut f = Some(first);
        while let Some(frame) = f.take() {
            bytes += frame.data.len();
            batch.push(DemuxEvent::Frame(Frame {
                dts: (base + frame.dts).rem_euclid(TS_WRAP),
                pts: (base + frame.pts).rem_euclid(TS_WRAP),
                ..frame
            }));
            match looper.next() {
                Some(n) if n.dts <= now_ticks && batch.len() < MAX_BATCH => f = Some(n),
                other => next = other,
            }
        }
        ctx.metrics.input_bytes.inc_by(bytes as u64);
        if !ctx.send(InputMsg::Demuxed(batch)).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_playable_and_loops() {
        let mut l = prepare(DEMO_TS, None).expect("demo demuxes");
        assert!(l.tracks().len() >= 2, "video and audio");
        let period = l.period();
        assert!(period > 9 * CLOCK_HZ && period < 11 * CLOCK_HZ, "about 10 s: {period}");
        let mut last = None;
        for f in l.by_ref().take(2000) {
            if f.track == 0 {
                if let Some(p) = last {
                    assert!(f.dts > p, "video DTS rises across loops");
                }
                last = Some(f.dts);
            }
        }
    }
}

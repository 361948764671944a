//! assets/demo.ts (10 s of 25 fps H.264 + 48 kHz AAC) looped through the
//! node's path: demux → looper → timeline → segmenter, with the clock paced
//! by DTS as the file input paces it. Every loop join must be invisible: HLS
//! segments all equally long and the audio track contiguous.

use std::sync::Arc;
use strom_media::looper::Looper;
use strom_media::segmenter::{Segmenter, SegmenterConfig};
use strom_media::timeline::{AnchorReason, Mapped, Timeline, TimelineConfig};
use strom_media::ts::demux::{DemuxEvent, Demuxer};
use strom_media::ts::TS_WRAP;
use strom_media::{Frame, Segment, Track, TrackKind, CLOCK_HZ};

/// 2025-11-22T00:00:00Z in 90 kHz ticks.
const NOW: i64 = 1_763_769_600 * CLOCK_HZ;

/// Segments may differ by this much at most (10 ms).
const TOLERANCE: i64 = 900;

/// The demo file's last track set and its frames, as the file input demuxes it.
fn demo() -> (Arc<[Track]>, Vec<Frame>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo.ts");
    let data = std::fs::read(path).expect("assets/demo.ts");
    let mut demuxer = Demuxer::new();
    demuxer.push(&data);
    demuxer.flush();
    let (mut tracks, mut frames): (Arc<[Track]>, _) = (Arc::from(Vec::new()), Vec::new());
    while let Some(event) = demuxer.pull() {
        match event {
            DemuxEvent::Tracks(t) => tracks = t,
            DemuxEvent::Frame(f) => frames.push(f),
        }
    }
    (tracks, frames)
}

/// What came out of the timeline and the segmenter.
struct Run {
    looper: Looper,
    /// Finished segments; the running one is left unfinished.
    segments: Vec<Segment>,
    /// Every frame on the UTC timeline.
    mapped: Vec<Frame>,
}

/// Plays `loops` loops of the demo as the file input does: each frame's
/// timestamps get `base` added and are wrapped to 33 bits, and the wall
/// clock is where its DTS is due.
fn play(base: impl Fn(&Looper) -> i64, loops: i64) -> Run {
    let (tracks, frames) = demo();
    let mut looper = Looper::new(tracks, frames).expect("demo.ts is playable");
    let base = base(&looper);
    let end = loops * looper.period();
    let mut timeline = Timeline::new(TimelineConfig::default());
    let mut segmenter = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
    assert!(segmenter.set_tracks(looper.tracks().clone()).is_none());
    let (mut segments, mut mapped) = (Vec::new(), Vec::new());
    for f in looper.by_ref().take_while(|f| f.dts < end) {
        let now = NOW + f.dts;
        let raw = Frame {
            dts: (base + f.dts).rem_euclid(TS_WRAP),
            pts: (base + f.pts).rem_euclid(TS_WRAP),
            ..f
        };
        let Mapped::Frame { frame, anchor } = timeline.map(raw, now) else {
            panic!("frame at {now} dropped by the timeline");
        };
        assert!(anchor.is_none() || anchor == Some(AnchorReason::Start), "{anchor:?}");
        mapped.push(frame.clone());
        segments.extend(segmenter.push(frame));
    }
    assert_eq!(timeline.anchors(), 1, "one run from start to end");
    assert_eq!(segmenter.dropped(), 0);
    Run {
        looper,
        segments,
        mapped,
    }
}

fn check(run: &Run, loops: i64) {
    let video = run
        .looper
        .tracks()
        .iter()
        .find(|t| t.kind() == TrackKind::Video)
        .expect("video track");
    let audio = run
        .looper
        .tracks()
        .iter()
        .find(|t| t.kind() == TrackKind::Audio)
        .expect("audio track");
    assert_eq!(run.looper.period(), 10 * CLOCK_HZ, "250 frames at 25 fps");

    // 2 s segments cut at the 1 s keyframes: five per loop, the last one still running.
    let segs = &run.segments;
    assert!(segs.len() as i64 >= 5 * loops - 1, "{} segments", segs.len());
    let shortest = segs.iter().map(|s| s.duration).min().unwrap_or(0);
    let longest = segs.iter().map(|s| s.duration).max().unwrap_or(0);
    let durations: Vec<i64> = segs.iter().map(|s| s.duration).collect();
    assert!(longest - shortest <= TOLERANCE, "segment durations {durations:?}");
    for (s, next) in segs.iter().zip(&segs[1..]) {
        assert_eq!(s.start + s.duration, next.start, "segments tile the timeline");
        assert!(!next.discontinuity);
        assert!(next.frames[0].keyframe && next.frames[0].track == video.id);
    }

    let deltas = |track: u16| -> Vec<i64> {
        let dts: Vec<i64> = run.mapped.iter().filter(|f| f.track == track).map(|f| f.dts).collect();
        dts.windows(2).map(|w| w[1] - w[0]).collect()
    };
    let (v, a) = (deltas(video.id), deltas(audio.id));
    assert!(v.len() as i64 >= 250 * loops - 1);
    assert!(v.iter().all(|d| *d == 3600), "video steps 1/25 s across every join");
    assert!(a.len() as i64 >= 460 * loops);
    assert!(
        a.iter().all(|d| *d == 1920),
        "audio steps 1024 samples across every join"
    );
}

#[test]
fn demo_loops_seamlessly_on_its_own_timestamps() {
    let loops = 4;
    let run = play(Looper::base_dts, loops);
    check(&run, loops);
}

#[test]
fn demo_loops_seamlessly_across_the_33_bit_wrap() {
    // The second loop crosses 2^33 in the raw timestamps the timeline sees.
    let loops = 3;
    let run = play(|_| TS_WRAP - 15 * CLOCK_HZ, loops);
    check(&run, loops);
}

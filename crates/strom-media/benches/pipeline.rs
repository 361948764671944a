//! Throughput of strom's per-frame hot path, in bytes of input MPEG-TS per
//! second (assets/demo.ts: 10 s of 1280x720 H.264 + AAC), so every stage is
//! comparable with the memcpy baseline:
//!
//! - `memcpy`: copying the input once, the floor everything is measured against;
//! - `mux`: frames (demuxed beforehand) → TS bytes, as `mux_segment` and as a
//!   long-lived `TsMuxer` writing into a reused buffer (continuous HTTP-TS);
//! - `demux`: TS bytes → frames;
//! - `pipeline`: the node's real per-input path, demux → `Timeline::map` →
//!   `Segmenter` (2 s target) → `mux_segment` of every finished segment, fed in
//!   64 KiB reads (`pipeline`) and in 1316-byte UDP datagrams (`pipeline_udp1316`).
//!
//! Reference (issue): ffmpeg `-c copy` remux of a 60 s 720p TS runs at about
//! 230 MB/s on the 2-core bench machine (`bench/ffmpeg_remux.sh` measures it on
//! the machine at hand); the goal for `pipeline` is at least 5× that.
//!
//! Run with `cargo bench -p strom-media --bench pipeline`.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use strom_media::segmenter::{Segmenter, SegmenterConfig};
use strom_media::timeline::{AnchorReason, Mapped, Timeline, TimelineConfig};
use strom_media::ts::demux::{DemuxEvent, Demuxer};
use strom_media::ts::mux::{mux_segment, TsMuxer};
use strom_media::{Frame, Segment, Track, CLOCK_HZ};

const DEMO: &[u8] = include_bytes!("../../../assets/demo.ts");

/// Demuxes a whole TS, feeding it in 64 KiB reads like an ingest socket.
fn demux(ts: &[u8]) -> (Arc<[Track]>, Vec<Frame>) {
    let mut demuxer = Demuxer::new();
    let mut tracks: Arc<[Track]> = Arc::from(Vec::new());
    let mut frames = Vec::with_capacity(1024);
    for chunk in ts.chunks(64 * 1024) {
        demuxer.push(chunk);
        while let Some(event) = demuxer.pull() {
            match event {
                DemuxEvent::Tracks(t) => tracks = t,
                DemuxEvent::Frame(f) => frames.push(f),
            }
        }
    }
    demuxer.flush();
    while let Some(event) = demuxer.pull() {
        if let DemuxEvent::Frame(f) = event {
            frames.push(f);
        }
    }
    (tracks, frames)
}

/// A fixed wall clock (2025-11-22T00:00:00Z in 90 kHz ticks), passed to the
/// timeline for every frame as the node passes its clock.
const NOW: i64 = 1_763_769_600 * CLOCK_HZ;

/// The node's per-input state after the demuxer: UTC timeline and segmenter.
struct Node {
    timeline: Timeline,
    segmenter: Segmenter,
}

impl Node {
    fn new() -> Self {
        Node {
            timeline: Timeline::new(TimelineConfig::default()),
            segmenter: Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ)),
        }
    }

    /// One demuxer event, as the supervisor handles it; finished segments go to `out`.
    fn event(&mut self, event: DemuxEvent, out: &mut impl FnMut(Segment)) {
        match event {
            DemuxEvent::Tracks(t) => {
                if let Some(seg) = self.segmenter.set_tracks(t) {
                    out(seg);
                }
            }
            DemuxEvent::Frame(f) => match self.timeline.map(f, NOW) {
                Mapped::Dropped => {}
                Mapped::Frame { frame, anchor } => {
                    if let Some(AnchorReason::JumpBack | AnchorReason::JumpForward | AnchorReason::Drift) = anchor {
                        if let Some(seg) = self.segmenter.discontinuity() {
                            out(seg);
                        }
                    }
                    if let Some(seg) = self.segmenter.push(frame) {
                        out(seg);
                    }
                }
            },
        }
    }
}

/// Bytes in → demux → timeline → segmenter → every segment finished along the way.
fn segments_of(ts: &[u8], chunk: usize, out: &mut impl FnMut(Segment)) {
    let mut demuxer = Demuxer::new();
    let mut node = Node::new();
    for c in ts.chunks(chunk) {
        demuxer.push(c);
        while let Some(event) = demuxer.pull() {
            node.event(event, out);
        }
    }
    demuxer.flush();
    while let Some(event) = demuxer.pull() {
        node.event(event, out);
    }
    if let Some(seg) = node.segmenter.flush() {
        out(seg);
    }
}

/// Frames of the demuxed input → segments, through the same timeline + segmenter.
fn to_segments(tracks: Arc<[Track]>, frames: Vec<Frame>) -> Vec<Segment> {
    let mut node = Node::new();
    let mut segs = Vec::new();
    let mut out = |s| segs.push(s);
    node.event(DemuxEvent::Tracks(tracks), &mut out);
    for f in frames {
        node.event(DemuxEvent::Frame(f), &mut out);
    }
    if let Some(seg) = node.segmenter.flush() {
        out(seg);
    }
    segs
}

/// The whole per-input path: bytes in, bytes of every segment out.
fn pipeline(ts: &[u8], chunk: usize) -> usize {
    let mut total = 0;
    segments_of(ts, chunk, &mut |s| total += black_box(mux_segment(&s)).len());
    total
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Bytes(DEMO.len() as u64));

    let mut copy = vec![0u8; DEMO.len()];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            copy.copy_from_slice(black_box(DEMO));
            black_box(&copy);
        })
    });

    let (tracks, frames) = demux(DEMO);
    assert!(!frames.is_empty(), "demuxer produced no frames");
    let segments = to_segments(tracks.clone(), frames.clone());
    assert!(
        segments.len() >= 4,
        "expected ~5 segments of 2 s, got {}",
        segments.len()
    );
    let produced = pipeline(DEMO, 64 * 1024);
    assert!(produced > DEMO.len() / 2, "pipeline produced only {produced} bytes");
    eprintln!(
        "input {} bytes; {} segments; pipeline output {produced} bytes",
        DEMO.len(),
        segments.len()
    );
    g.bench_function("mux_segment", |b| {
        b.iter(|| {
            for s in &segments {
                black_box(mux_segment(black_box(s)));
            }
        })
    });

    // Continuous HTTP-TS: one muxer, output buffer drained and reused.
    let mut mux = TsMuxer::new(&tracks);
    let mut out = BytesMut::with_capacity(2 * DEMO.len());
    g.bench_function("mux_write_frame", |b| {
        b.iter(|| {
            out.clear();
            for f in &frames {
                mux.write_frame(black_box(f), &mut out);
            }
            black_box(&out);
        })
    });

    g.bench_function("demux", |b| b.iter(|| black_box(demux(black_box(DEMO)))));
    g.bench_function("pipeline", |b| {
        b.iter(|| black_box(pipeline(black_box(DEMO), 64 * 1024)))
    });
    g.bench_function("pipeline_udp1316", |b| {
        b.iter(|| black_box(pipeline(black_box(DEMO), 7 * 188)))
    });
    g.finish();
}

criterion_group!(pipeline_benches, benches);
criterion_main!(pipeline_benches);

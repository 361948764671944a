//! Throughput of strom's per-frame hot path, in bytes of input MPEG-TS per
//! second (assets/demo.ts: 10 s of 1280x720 H.264 + AAC), so every stage is
//! comparable with the memcpy baseline:
//!
//! - `memcpy`: copying the input once, the floor everything is measured against;
//! - `mux`: frames (demuxed beforehand) → TS bytes, as `mux_segment` and as a
//!   long-lived `TsMuxer` writing into a reused buffer (continuous HTTP-TS);
//! - `demux`: TS bytes → frames;
//! - `pipeline`: demux → [`to_segments`] → mux, the whole ingest-to-output path.
//!
//! Run with `cargo bench -p strom-media --bench pipeline`.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use strom_media::ts::demux::{DemuxEvent, Demuxer};
use strom_media::ts::mux::{mux_segment, TsMuxer};
use strom_media::{Frame, Segment, Track};

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

/// Frames in decode order → segments. For now the whole input is one
/// segment; the timeline + segmenter stage replaces this body.
fn to_segments(tracks: Arc<[Track]>, frames: Vec<Frame>) -> Vec<Segment> {
    let start = frames.first().map_or(0, |f| f.dts);
    let end = frames.last().map_or(0, |f| f.dts);
    vec![Segment {
        seq: 0,
        start,
        duration: end - start,
        discontinuity: false,
        tracks,
        frames,
    }]
}

/// The whole per-input path: bytes in, bytes of every segment out.
fn pipeline(ts: &[u8]) -> usize {
    let (tracks, frames) = demux(ts);
    to_segments(tracks, frames)
        .iter()
        .map(|s| mux_segment(s).len())
        .sum()
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
    g.bench_function("demux_mux", |b| {
        b.iter(|| black_box(pipeline(black_box(DEMO))))
    });
    g.finish();
}

criterion_group!(pipeline_benches, benches);
criterion_main!(pipeline_benches);

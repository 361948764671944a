//! Writes the seeds of `wire_decode` and `looper` that come from real media:
//! the demo's first frames, demuxed, as a wire segment message and as a looper
//! file. Run by `fuzz/make_seeds.sh`; deterministic.
//!
//! Usage: `make_seeds DEMO.ts CORPUS_DIR`.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use strom_media::ts::demux::{DemuxEvent, Demuxer};
use strom_media::wire::{encode_heartbeat, encode_segment, encode_segment_v1};
use strom_media::{Codec, Frame, Segment, Track, TrackParams};

/// Frames of the demo kept in the wire seed (about 0.3 s of audio and video).
const WIRE_FRAMES: usize = 24;
/// Frames of the demo kept in the looper seed.
const LOOPER_FRAMES: usize = 300;

fn demux(ts: &[u8]) -> (Arc<[Track]>, Vec<Frame>) {
    let mut d = Demuxer::new();
    d.push(ts);
    d.flush();
    // The demuxer announces the tracks again as their parameters fill in:
    // keep the last announcement of the same track count, and every frame.
    let (mut tracks, mut frames): (Option<Arc<[Track]>>, Vec<Frame>) = (None, Vec::new());
    while let Some(e) = d.pull() {
        match e {
            DemuxEvent::Tracks(t) if tracks.as_ref().is_some_and(|old| old.len() != t.len()) => break,
            DemuxEvent::Tracks(t) => tracks = Some(t),
            DemuxEvent::Frame(f) => frames.push(f),
        }
    }
    let tracks = tracks.expect("the demo has tracks");
    eprintln!(
        "demo: {} tracks, {} frames, first keyframe: {}",
        tracks.len(),
        frames.len(),
        frames.first().is_some_and(|f| f.keyframe)
    );
    (tracks, frames)
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    fs::create_dir_all(dir).expect("corpus dir");
    fs::write(dir.join(name), data).expect("write seed");
    println!("{} ({} bytes)", dir.join(name).display(), data.len());
}

/// The seed segment as a version 1 node wrote it: no target duration (the
/// demo's tracks carry no descriptors and only version 1 codecs).
fn v1_message(seg: &Segment) -> Vec<u8> {
    let seg = Segment {
        target_duration: 0,
        ..seg.clone()
    };
    encode_segment_v1(&seg).expect("the demo fits version 1").to_vec()
}

/// The seed segment with a teletext track beside the demo's: a
/// teletext_descriptor (0x56, ETSI EN 300 468 §6.2.43) for "deu" subtitles
/// on page 888 and a stream_identifier_descriptor, and one teletext PES
/// payload (data_identifier 0x10, one stuffing data unit).
fn with_teletext(seg: &Segment) -> Segment {
    let mut tracks = seg.tracks.to_vec();
    let id = tracks.len() as u16;
    tracks.push(Track {
        id,
        codec: Codec::Teletext,
        params: TrackParams {
            language: Some("deu".into()),
            descriptors: vec![0x56, 5, b'd', b'e', b'u', 0x10, 0x88, 0x52, 1, 3].into(),
            ..TrackParams::default()
        },
    });
    let mut frames = seg.frames.clone();
    let mut pes = vec![0x10, 0xFF, 44];
    pes.extend_from_slice(&[0xFF; 44]);
    frames.insert(
        1,
        Frame {
            track: id,
            dts: seg.start,
            pts: seg.start,
            keyframe: true,
            data: pes.into(),
        },
    );
    Segment {
        tracks: tracks.into(),
        frames,
        ..seg.clone()
    }
}

/// A wire segment of the demo's first frames, rebased to a UTC start.
fn wire_seeds(tracks: &Arc<[Track]>, frames: &[Frame], dir: &Path) {
    // 2024-01-01T00:00:00Z in 90 kHz ticks.
    let start = 1_704_067_200 * 90_000;
    let first = frames[0].dts;
    let frames: Vec<Frame> = frames
        .iter()
        .take(WIRE_FRAMES)
        .map(|f| Frame {
            dts: f.dts - first + start,
            pts: f.pts - first + start,
            ..f.clone()
        })
        .collect();
    let last = frames.iter().map(|f| f.dts).max().expect("frames");
    let seg = Segment {
        seq: 41,
        start,
        duration: last - start + 3600,
        discontinuity: false,
        target_duration: 2,
        tracks: tracks.clone(),
        frames,
    };
    let segment = encode_segment(&seg);
    let heartbeat = encode_heartbeat(Some(41));
    let mut discontinuous = seg.clone();
    discontinuous.seq = 42;
    discontinuous.discontinuity = true;
    discontinuous.frames.truncate(4);
    // The first two bytes of a wire_decode input pick the chunking; an odd
    // seed also rewrites the CRCs (they are right already).
    let seeded = |seed: u16, parts: &[&[u8]]| {
        let mut v = seed.to_le_bytes().to_vec();
        for p in parts {
            v.extend_from_slice(p);
        }
        v
    };
    write(dir, "segment", &seeded(0, &[&segment]));
    write(dir, "heartbeats", &seeded(2, &[&encode_heartbeat(None), &heartbeat]));
    write(
        dir,
        "segment-heartbeat-segment",
        &seeded(7, &[&segment, &heartbeat, &encode_segment(&discontinuous)]),
    );
    // A version 1 segment, then version 2 messages on the same stream.
    write(
        dir,
        "v1-segment-then-v2",
        &seeded(4, &[&v1_message(&discontinuous), &heartbeat, &segment]),
    );
    // Codec 7 with descriptors, a version 2 payload only.
    write(
        dir,
        "teletext-descriptors",
        &seeded(9, &[&encode_segment(&with_teletext(&discontinuous))]),
    );
}

/// The demo's frames in the looper target's encoding: a layout byte, the
/// first DTS / 2, then per frame track, flags and a signed DTS step.
fn looper_seed(frames: &[Frame], layout: u8, start: u32, splice_at: Option<usize>) -> Vec<u8> {
    let mut out = vec![layout];
    out.extend_from_slice(&start.to_le_bytes());
    let mut prev = frames[0].dts;
    for (i, f) in frames.iter().take(LOOPER_FRAMES).enumerate() {
        let step = if i == 0 { 0 } else { f.dts - prev };
        prev = f.dts;
        let step = i16::try_from(step).expect("demo steps fit in i16");
        // PTS - DTS, to the nearest the target can express (k·1800 - 900·b).
        let cts = f.pts - f.dts;
        let (k, b) = (0..4u8)
            .flat_map(|k| [(k, 0u8), (k, 1)])
            .min_by_key(|&(k, b)| (i64::from(k) * 1800 - i64::from(b) * 900 - cts).abs())
            .expect("candidates");
        let mut flags = u8::from(f.keyframe) | k << 1 | b << 7;
        let mut step_bytes = step.to_le_bytes();
        if splice_at == Some(i) {
            // A jump of 20000 << 17 ticks (about 8 h): a splice in the file.
            flags |= 3 << 3;
            step_bytes = 20_000i16.to_le_bytes();
        }
        out.extend_from_slice(&[f.track as u8, flags, step_bytes[0], step_bytes[1]]);
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, demo, corpus] = &args[..] else {
        eprintln!("usage: make_seeds DEMO.ts CORPUS_DIR");
        std::process::exit(2);
    };
    let ts = fs::read(demo).expect("read the demo");
    // The first 2 s are plenty.
    let (tracks, frames) = demux(&ts[..ts.len().min(188 * 2000)]);
    let corpus = Path::new(corpus);
    wire_seeds(&tracks, &frames, &corpus.join("wire_decode"));

    let dir = corpus.join("looper");
    // Layout 0 is H.264 + AAC, as the demo (track 0 video, 1 audio).
    assert_eq!(tracks.len(), 2);
    write(&dir, "demo-h264-aac", &looper_seed(&frames, 0, 0, None));
    // Layout 4 | 12 << 4: the same with a 12 fps / 3.6 kHz params hint.
    write(&dir, "demo-params", &looper_seed(&frames, 4 | 12 << 4, 0, None));
    // Starting 4096 ticks before 2^33: the DTS wraps in the first frames.
    write(&dir, "demo-wrap", &looper_seed(&frames, 0, u32::MAX - 2047, None));
    // A splice half-way.
    write(
        &dir,
        "demo-splice",
        &looper_seed(&frames, 0, 1_000, Some(LOOPER_FRAMES / 2)),
    );
    // Audio only: layout 1 takes track 0 as AAC; keep the demo's audio frames.
    let audio: Vec<Frame> = frames
        .iter()
        .filter(|f| f.track == 1)
        .map(|f| Frame { track: 0, ..f.clone() })
        .collect();
    write(&dir, "demo-aac", &looper_seed(&audio, 1, 45_000, None));
}

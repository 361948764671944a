//! Writes the seed corpus of the `dvr_index` fuzz target: archive files as
//! the DVR writes them, from the demo's first frames (real H.264 and AAC)
//! and from a tiny synthetic stream, whole, torn and damaged.
//! Deterministic: the same demo gives the same bytes.
//!
//! Usage: `cargo run -p strom-media --example dvr_seeds -- assets/demo.ts fuzz/corpus/dvr_index`
//!
//! Every seed is a mode byte (see `fuzz/fuzz_targets/dvr_index.rs`: bit 0
//! rewrites index entry CRCs, bit 1 wire message CRCs) followed by the file.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use strom_media::dvr::index::{encode_header, rebuild, IndexEntry};
use strom_media::ts::demux::{DemuxEvent, Demuxer};
use strom_media::wire::{encode_heartbeat, encode_segment};
use strom_media::{Codec, Frame, Segment, Track, TrackParams, CLOCK_HZ};

/// 2025-11-22T13:00:00Z in 90 kHz ticks: the hour `2025-11-22/13-…`.
const START: i64 = 1_763_816_400 * CLOCK_HZ;

/// The demo's tracks (as last announced) and frames.
fn demux(ts: &[u8]) -> (Arc<[Track]>, Vec<Frame>) {
    let mut d = Demuxer::new();
    d.push(ts);
    d.flush();
    let mut tracks: Option<Arc<[Track]>> = None;
    let mut frames = Vec::new();
    while let Some(e) = d.pull() {
        match e {
            DemuxEvent::Tracks(t) => tracks = Some(t),
            DemuxEvent::Frame(f) => frames.push(f),
        }
    }
    (tracks.expect("the demo has tracks"), frames)
}

/// Segments `seq0..` cut from `frames` at the given frame counts, rebased to [`START`].
fn cut(tracks: &Arc<[Track]>, frames: &[Frame], counts: &[usize], seq0: u64) -> Vec<Segment> {
    let first = frames[0].dts;
    let mut at = 0;
    let mut out = Vec::new();
    for (i, &n) in counts.iter().enumerate() {
        let part: Vec<Frame> = frames[at..at + n]
            .iter()
            .map(|f| Frame {
                dts: f.dts - first + START,
                pts: f.pts - first + START,
                ..f.clone()
            })
            .collect();
        // From the earliest frame to the next segment's earliest frame
        // (audio and video interleave out of DTS order).
        let earliest = |fs: &[Frame]| fs.iter().map(|f| f.dts).min();
        let start = earliest(&part).expect("frames");
        let end = match frames.get(at + n..at + n + counts.get(i + 1).copied().unwrap_or(0)) {
            Some(next) if !next.is_empty() => earliest(next).expect("frames") - first + START,
            _ => part.iter().map(|f| f.dts).max().expect("frames") + 3600,
        };
        assert!(end > start, "segment {i} has no duration");
        out.push(Segment {
            seq: seq0 + i as u64,
            start,
            duration: end - start,
            discontinuity: i == 2,
            target_duration: 2,
            tracks: tracks.clone(),
            frames: part,
        });
        at += n;
    }
    out
}

/// A data file and its index, as the writer leaves them.
fn files(segments: &[Segment]) -> (Vec<u8>, Vec<u8>) {
    let mut data = Vec::new();
    for s in segments {
        data.extend_from_slice(&encode_segment(s));
    }
    let r = rebuild(&data, 0, None);
    assert_eq!(r.entries.len(), segments.len(), "every message rebuilds");
    let mut index = encode_header(segments[0].seq).to_vec();
    for e in &r.entries {
        index.extend_from_slice(&e.encode());
    }
    (data, index)
}

fn write(dir: &Path, name: &str, mode: u8, bytes: &[u8]) {
    let mut v = vec![mode];
    v.extend_from_slice(bytes);
    fs::write(dir.join(name), &v).expect("write seed");
    println!("{} ({} bytes)", dir.join(name).display(), v.len());
}

/// Three small segments of synthetic H.264 + AAC frames.
fn synthetic() -> Vec<Segment> {
    let tracks: Arc<[Track]> = Arc::from(vec![
        Track {
            id: 0,
            codec: Codec::H264,
            params: TrackParams::default(),
        },
        Track {
            id: 1,
            codec: Codec::Aac,
            params: TrackParams::default(),
        },
    ]);
    (0..3u64)
        .map(|i| {
            let start = START + i as i64 * 2 * CLOCK_HZ;
            let frame = |track: u16, dt: i64, keyframe: bool| Frame {
                track,
                dts: start + dt,
                pts: start + dt,
                keyframe,
                data: Bytes::from(vec![0x40 + i as u8; 8]),
            };
            Segment {
                seq: 7 + i,
                start,
                duration: 2 * CLOCK_HZ,
                discontinuity: i == 1,
                target_duration: 2,
                tracks: tracks.clone(),
                frames: vec![frame(0, 0, i != 2), frame(1, 0, true), frame(0, 3600, false)],
            }
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, demo, out] = &args[..] else {
        eprintln!("usage: dvr_seeds DEMO.ts CORPUS_DIR");
        std::process::exit(2);
    };
    let ts = fs::read(demo).expect("read the demo");
    let (tracks, frames) = demux(&ts[..ts.len().min(188 * 1000)]);
    let dir = Path::new(out);
    fs::create_dir_all(dir).expect("corpus dir");

    // Real media: the demo's first 14 frames as three segments (the first
    // starts at the IDR; the others do not start with a video RAP).
    let (data, index) = files(&cut(&tracks, &frames, &[6, 4, 4], 1_000));
    write(dir, "demo-wire", 0, &data);
    write(dir, "demo-idx", 0, &index);

    let small = synthetic();
    let (data, index) = files(&small);
    write(dir, "small-wire", 0, &data);
    write(dir, "small-idx", 0, &index);
    // kill -9 mid-write: half a message, half an entry.
    write(dir, "small-wire-torn", 0, &data[..data.len() - 20]);
    write(dir, "small-idx-torn", 0, &index[..index.len() - 20]);
    // A heartbeat where a segment should be, CRCs rewritten by the target.
    let mut with_heartbeat = encode_segment(&small[0]).to_vec();
    with_heartbeat.extend_from_slice(&encode_heartbeat(Some(7)));
    with_heartbeat.extend_from_slice(&encode_segment(&small[1]));
    write(dir, "small-wire-heartbeat", 2, &with_heartbeat);
    // An entry whose offset does not follow, with its CRC rewritten by the target.
    let mut gap = index.clone();
    let third = 16 + 2 * 48;
    let mut e = IndexEntry::decode(gap[third..third + 48].try_into().expect("48 bytes")).expect("valid entry");
    e.offset += 1;
    gap[third..third + 48].copy_from_slice(&e.encode());
    gap[third + 44..third + 48].fill(0);
    write(dir, "small-idx-offset-gap", 1, &gap);
    // File and directory names.
    write(dir, "name-file", 0, b"2025-11-22/13-1000.wire");
    write(dir, "name-dir", 0, b"mylive%2Fcam1");
}

//! FLV ingest end to end: tags of real encoder output (tests/fixtures/flv,
//! see make.sh there) through [`FlvIngest`], the timeline and the TS muxer,
//! then decoded by ffmpeg, which must not print a single warning, and
//! counted by ffprobe. Every GOP muxed as a segment of its own must decode
//! on its own (parameter sets at keyframes).
//!
//! ffmpeg/ffprobe must be on PATH; the tests fail without them unless
//! STROM_SKIP_FFMPEG=1 is set (then only the checks that need no tool run).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use strom_media::codec::h265;
use strom_media::codec::nal::nal_units;
use strom_media::codec::params::param_kind;
use strom_media::flv::{FlvIngest, TagKind};
use strom_media::timeline::{Mapped, Timeline, TimelineConfig};
use strom_media::ts::demux::DemuxEvent;
use strom_media::ts::mux::mux_segment;
use strom_media::{Codec, Frame, Segment, Track, CLOCK_HZ};

/// 2025-11-13 in 90 kHz ticks, as timeline output is.
const T0: i64 = 1_763_000_000 * CLOCK_HZ;

type Tag = (TagKind, u32, Bytes);

/// Audio and video tags of an FLV file (FLV 10.1 §E.2–E.4.1).
fn flv_tags(file: &[u8]) -> Vec<Tag> {
    assert_eq!(&file[..3], b"FLV");
    let mut p = u32::from_be_bytes(file[5..9].try_into().expect("4 bytes")) as usize + 4;
    let mut out = Vec::new();
    while p + 11 <= file.len() {
        let h = &file[p..p + 11];
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body = Bytes::copy_from_slice(&file[p + 11..p + 11 + len]);
        match h[0] & 0x1F {
            8 => out.push((TagKind::Audio, ts, body)),
            9 => out.push((TagKind::Video, ts, body)),
            _ => {}
        }
        p += 11 + len + 4;
    }
    out
}

/// The HEVC fixture as Enhanced RTMP hvc1 tags (SequenceStart with an
/// HEVCDecoderConfigurationRecord, CodedFrames / CodedFramesX with 4-byte
/// NAL unit lengths), timestamps from 0.
fn hevc_tags() -> Vec<Tag> {
    let es: &[u8] = include_bytes!("fixtures/flv/hevc.es");
    let csv = include_str!("fixtures/flv/hevc.csv");
    let mut off = 0;
    let mut aus = Vec::new();
    for line in csv.lines() {
        let f: Vec<i64> = line
            .split(',')
            .take(3)
            .map(|v| v.parse().expect("csv number"))
            .collect();
        aus.push((f[0] / 90, f[1] / 90, &es[off..off + f[2] as usize]));
        off += f[2] as usize;
    }
    let t0 = aus[0].1;
    let mut sets: [Vec<&[u8]>; 3] = Default::default();
    for n in nal_units(aus[0].2) {
        if let Some(k) = param_kind(Codec::H265, n) {
            sets[k].push(n);
        }
    }
    let mut start = vec![0x90];
    start.extend_from_slice(b"hvc1");
    start.push(1);
    start.extend_from_slice(&sets[1][0][3..15]);
    start.extend_from_slice(&[0xF0, 0, 0xFC, 0xFD, 0xF8, 0xF8, 0, 0, 0x0F, 3]);
    for (kind, list) in sets.iter().enumerate() {
        start.extend_from_slice(&[0x80 | (32 + kind as u8), 0, list.len() as u8]);
        for s in list {
            start.extend_from_slice(&(s.len() as u16).to_be_bytes());
            start.extend_from_slice(s);
        }
    }
    let mut tags = vec![(TagKind::Video, 0, Bytes::from(start))];
    for (pts, dts, au) in aus {
        let cts = pts - dts;
        let key = h265::is_keyframe(au);
        let mut b = vec![0x80 | if key { 0x10 } else { 0x20 } | if cts == 0 { 3 } else { 1 }];
        b.extend_from_slice(b"hvc1");
        if cts != 0 {
            b.extend_from_slice(&(cts as i32).to_be_bytes()[1..]);
        }
        for n in nal_units(au).filter(|n| param_kind(Codec::H265, n).is_none()) {
            b.extend_from_slice(&(n.len() as u32).to_be_bytes());
            b.extend_from_slice(n);
        }
        tags.push((TagKind::Video, (dts - t0) as u32, Bytes::from(b)));
    }
    tags
}

/// Tags through FlvIngest and the timeline: the one track set and the
/// frames on the UTC timeline.
fn ingest(tags: &[Tag]) -> (Arc<[Track]>, Vec<Frame>) {
    let mut flv = FlvIngest::default();
    let mut timeline = Timeline::new(TimelineConfig::default());
    let mut tracks = None;
    let mut frames = Vec::new();
    let mut take = |flv: &mut FlvIngest| {
        while let Some(e) = flv.pull() {
            match e {
                DemuxEvent::Tracks(t) => {
                    assert!(tracks.is_none(), "one track set");
                    tracks = Some(t);
                }
                DemuxEvent::Frame(f) => match timeline.map(f, T0) {
                    Mapped::Frame { frame, anchor } => {
                        assert!(anchor.is_none() || frames.is_empty(), "no jump");
                        frames.push(frame);
                    }
                    Mapped::Dropped => panic!("the timeline dropped a frame"),
                },
            }
        }
    };
    for (kind, ts, body) in tags {
        flv.push(*kind, *ts, body.clone());
        take(&mut flv);
    }
    flv.finish();
    take(&mut flv);
    let s = flv.stats();
    assert_eq!(
        (s.bad_video_tags, s.bad_audio_tags, s.no_config, s.backwards),
        (0, 0, 0, 0)
    );
    (tracks.expect("a Tracks event"), frames)
}

fn segment(tracks: &Arc<[Track]>, frames: Vec<Frame>) -> Segment {
    let start = frames.iter().map(|f| f.dts).min().unwrap_or(0);
    let end = frames.iter().map(|f| f.dts).max().unwrap_or(0);
    Segment {
        seq: 0,
        start,
        duration: end - start,
        discontinuity: false,
        target_duration: 2,
        tracks: tracks.clone(),
        frames,
    }
}

/// Cuts the frames at every video keyframe: one segment per GOP.
fn gops(tracks: &Arc<[Track]>, frames: &[Frame]) -> Vec<Segment> {
    let mut out: Vec<Vec<Frame>> = Vec::new();
    for f in frames {
        if f.track == 0 && f.keyframe || out.is_empty() {
            out.push(Vec::new());
        }
        if let Some(last) = out.last_mut() {
            last.push(f.clone());
        }
    }
    out.into_iter().map(|fr| segment(tracks, fr)).collect()
}

// ---------------------------------------------------------------------------
// ffmpeg / ffprobe

fn skip_ffmpeg() -> bool {
    let skip = std::env::var("STROM_SKIP_FFMPEG").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("STROM_SKIP_FFMPEG=1: the ffmpeg/ffprobe checks are skipped");
    }
    skip
}

struct TempTs(PathBuf);

impl TempTs {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("strom-flv-{}-{name}.ts", std::process::id()));
        std::fs::write(&path, bytes).expect("write temp file");
        TempTs(path)
    }
}

impl Drop for TempTs {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tool(name: &str, args: &[&str], file: &Path) -> (String, String) {
    let out = Command::new(name)
        .args(
            args.iter()
                .map(|a| if *a == "FILE" { file.as_os_str() } else { a.as_ref() }),
        )
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name} ({e}); install ffmpeg or set STROM_SKIP_FFMPEG=1"));
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Decodes every stream of a TS completely; any warning or error fails.
fn assert_decodes_clean(name: &str, ts: &[u8]) {
    let file = TempTs::new(name, ts);
    let (_, stderr) = tool(
        "ffmpeg",
        &[
            "-nostdin", "-v", "warning", "-f", "mpegts", "-i", "FILE", "-f", "null", "-",
        ],
        &file.0,
    );
    assert_eq!(stderr, "", "ffmpeg complained about {name}");
}

/// ffprobe's packets per stream: (codec_name, packet count, keyframe count).
fn probe(name: &str, ts: &[u8]) -> Vec<(String, usize, usize)> {
    let file = TempTs::new(name, ts);
    let (streams, stderr) = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=index,codec_name",
            "-of",
            "csv=p=0",
            "FILE",
        ],
        &file.0,
    );
    assert_eq!(stderr, "");
    let (packets, _) = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,flags",
            "-of",
            "csv=p=0",
            "FILE",
        ],
        &file.0,
    );
    // Streams are listed under their program too: keep each index once.
    let mut out: Vec<(String, usize, usize)> = Vec::new();
    for (index, codec) in streams.lines().filter_map(|l| l.split_once(',')) {
        if index.parse::<usize>().expect("stream index") == out.len() {
            out.push((codec.to_owned(), 0, 0));
        }
    }
    for l in packets.lines() {
        if let Some((index, flags)) = l.split_once(',') {
            let s = &mut out[index.parse::<usize>().expect("stream index")];
            s.1 += 1;
            s.2 += usize::from(flags.starts_with('K'));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Tests

fn check(name: &str, tags: &[Tag], want: &[(&str, usize, usize)]) {
    let (tracks, frames) = ingest(tags);
    let ts = mux_segment(&segment(&tracks, frames.clone()));
    let segments = gops(&tracks, &frames);
    if skip_ffmpeg() {
        return;
    }
    assert_decodes_clean(name, &ts);
    let got = probe(name, &ts);
    let got: Vec<(&str, usize, usize)> = got.iter().map(|(c, n, k)| (c.as_str(), *n, *k)).collect();
    assert_eq!(got, want);
    for (i, seg) in segments.iter().enumerate() {
        assert_decodes_clean(&format!("{name}-gop{i}"), &mux_segment(seg));
    }
}

#[test]
fn h264_aac_from_flv_decodes_clean() {
    let tags = flv_tags(include_bytes!("fixtures/flv/h264_aac.flv"));
    // 50 pictures (2 keyframes) and 88 AAC frames; ffprobe flags every audio packet K.
    check("h264_aac", &tags, &[("h264", 50, 2), ("aac", 88, 88)]);
}

#[test]
fn hevc_from_enhanced_rtmp_decodes_clean() {
    check("hevc", &hevc_tags(), &[("hevc", 25, 3)]);
}

#[test]
fn mp3_from_flv_decodes_clean() {
    let tags = flv_tags(include_bytes!("fixtures/flv/mp3.flv"));
    let n = tags.len();
    check("mp3", &tags, &[("mp3", n, n)]);
}

/// The H.264 + AAC fixture retimed to start 1 s before the 32-bit RTMP
/// clock wraps (where 90 kHz ticks also wrap 2^33): the timeline sees no
/// jump, DTS rise on both tracks, and the stream decodes clean.
#[test]
fn across_the_32_bit_wrap() {
    let start = u32::MAX - 999;
    let tags: Vec<Tag> = flv_tags(include_bytes!("fixtures/flv/h264_aac.flv"))
        .into_iter()
        .map(|(k, ts, b)| (k, ts.wrapping_add(start), b))
        .collect();
    let (tracks, frames) = ingest(&tags);
    for track in 0..2 {
        let dts: Vec<i64> = frames.iter().filter(|f| f.track == track).map(|f| f.dts).collect();
        assert!(dts.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] < CLOCK_HZ));
    }
    let ts = mux_segment(&segment(&tracks, frames));
    if skip_ffmpeg() {
        return;
    }
    assert_decodes_clean("wrap", &ts);
}

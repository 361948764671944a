//! Integration tests of the MPEG-TS muxer against real elementary streams
//! (fixtures in tests/data, see make_fixtures.sh) and real readers: ffprobe
//! must see the right streams, packets and timestamps, and
//! `ffmpeg -v warning -i out.ts -f null -` must decode everything without a
//! single warning.
//!
//! Runs of consecutive HLS segments (demo.ts and the broadcast fixtures cut
//! by the real timeline and segmenter) must concatenate into one TS whose
//! continuity counters never break, checked by our own packet walk and, when
//! `gst-launch-1.0` is installed, by GStreamer's tsdemux.
//!
//! ffmpeg/ffprobe must be on PATH; the tests fail without them unless
//! STROM_SKIP_FFMPEG=1 is set (then only the checks that need no tool run).

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use strom_media::segmenter::{Segmenter, SegmenterConfig};
use strom_media::timeline::{AnchorReason, Mapped, Timeline, TimelineConfig};
use strom_media::ts::demux::{DemuxEvent, DemuxStats, Demuxer};
use strom_media::ts::mux::{mux_segment, mux_segment_tracks, TsMuxer, MUX_DELAY};
use strom_media::ts::{PACKET_SIZE, TS_WRAP};
use strom_media::{Codec, Frame, Segment, Track, TrackKind, TrackParams, CLOCK_HZ};

/// 2025-11-13 in 90 kHz ticks: far beyond 2^33, as timeline output is.
const T0: i64 = 1_763_000_000 * CLOCK_HZ;

// ---------------------------------------------------------------------------
// Fixtures

/// One fixture stream: packets (pts, dts, keyframe, data) in decode order,
/// timestamps as in the source TS.
fn fixture(es: &'static [u8], csv: &str) -> Vec<(i64, i64, bool, Bytes)> {
    let es = Bytes::from_static(es);
    let mut off = 0;
    let packets: Vec<_> = csv
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let num = |i: usize| f[i].parse::<i64>().expect("csv number");
            let size = num(2) as usize;
            let data = es.slice(off..off + size);
            off += size;
            (num(0), num(1), f[3].starts_with('K'), data)
        })
        .collect();
    assert_eq!(off, es.len(), "csv sizes must cover the whole .es file");
    packets
}

macro_rules! fixture {
    ($name:literal) => {
        fixture(
            include_bytes!(concat!("data/", $name, ".es")),
            include_str!(concat!("data/", $name, ".csv")),
        )
    };
}

/// ADTS frames → raw AAC frames, as the demuxer produces them.
fn strip_adts(packets: Vec<(i64, i64, bool, Bytes)>) -> Vec<(i64, i64, bool, Bytes)> {
    packets
        .into_iter()
        .map(|(pts, dts, key, data)| {
            assert_eq!(data[0], 0xFF, "ADTS sync");
            let header = if data[1] & 1 == 0 { 9 } else { 7 };
            (pts, dts, key, data.slice(header..))
        })
        .collect()
}

/// NAL units (without start codes) of an Annex B access unit.
fn nal_units(au: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= au.len() {
        if au[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| {
            let mut end = starts.get(n + 1).map_or(au.len(), |&next| next - 3);
            while end > s && au[end - 1] == 0 {
                end -= 1;
            }
            &au[s..end]
        })
        .collect()
}

fn nal_type(codec: Codec, nal: &[u8]) -> u8 {
    match codec {
        Codec::H265 => (nal[0] >> 1) & 0x3F,
        _ => nal[0] & 0x1F,
    }
}

/// (AUD type, parameter-set types) per codec.
fn special_nal_types(codec: Codec) -> (u8, &'static [u8]) {
    match codec {
        Codec::H265 => (35, &[32, 33, 34]),
        _ => (9, &[7, 8]),
    }
}

/// Parameter sets of the first keyframe, in stream order (VPS, SPS, PPS).
fn parameter_sets(codec: Codec, au: &[u8]) -> Vec<Bytes> {
    let (_, ps) = special_nal_types(codec);
    nal_units(au)
        .into_iter()
        .filter(|n| ps.contains(&nal_type(codec, n)))
        .map(Bytes::copy_from_slice)
        .collect()
}

/// The AU without AUD and parameter sets, re-joined with 4-byte start codes:
/// what a source that only sends them out of band would deliver.
fn strip_aud_and_parameter_sets(codec: Codec, au: &[u8]) -> Bytes {
    let (aud, ps) = special_nal_types(codec);
    let mut out = Vec::with_capacity(au.len());
    for nal in nal_units(au) {
        let t = nal_type(codec, nal);
        if t != aud && !ps.contains(&t) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
    }
    Bytes::from(out)
}

fn track(id: u16, codec: Codec, params: TrackParams) -> Track {
    Track { id, codec, params }
}

fn audio_params(sample_rate: u32, channels: u8, language: Option<&str>) -> TrackParams {
    TrackParams {
        sample_rate,
        channels,
        aac_object_type: 2,
        language: language.map(str::to_owned),
        ..Default::default()
    }
}

/// Frames of several streams merged in DTS order (ties: lower track first),
/// shifted from the fixture clock onto `base`.
fn interleave(streams: Vec<Vec<(i64, i64, bool, Bytes)>>, base: i64) -> Vec<Frame> {
    let mut frames: Vec<Frame> = streams
        .into_iter()
        .enumerate()
        .flat_map(|(track, packets)| {
            packets.into_iter().map(move |(pts, dts, keyframe, data)| Frame {
                track: track as u16,
                dts: base + dts,
                pts: base + pts,
                keyframe,
                data,
            })
        })
        .collect();
    frames.sort_by_key(|f| (f.dts, f.track));
    frames
}

fn segment(tracks: Vec<Track>, frames: Vec<Frame>) -> Segment {
    let start = frames.iter().map(|f| f.dts).min().unwrap_or(0);
    let end = frames.iter().map(|f| f.dts).max().unwrap_or(0);
    Segment {
        seq: 0,
        start,
        duration: end - start,
        discontinuity: false,
        target_duration: 2,
        tracks: tracks.into(),
        frames,
    }
}

/// The H.264 + AAC sample (demo.ts) as the timeline would hand it over.
fn demo_segment(base: i64) -> Segment {
    let video = fixture!("h264");
    let params = TrackParams {
        parameter_sets: parameter_sets(Codec::H264, &video[0].3),
        width: 1280,
        height: 720,
        ..Default::default()
    };
    let tracks = vec![
        track(0, Codec::H264, params),
        track(1, Codec::Aac, audio_params(48000, 2, None)),
    ];
    let frames = interleave(vec![video, strip_adts(fixture!("aac"))], base);
    segment(tracks, frames)
}

// ---------------------------------------------------------------------------
// ffmpeg / ffprobe

fn skip_ffmpeg() -> bool {
    std::env::var("STROM_SKIP_FFMPEG").is_ok_and(|v| v == "1")
}

struct TempTs(PathBuf);

impl TempTs {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("strom-mux-{}-{name}.ts", std::process::id()));
        std::fs::write(&path, bytes).expect("write temp file");
        TempTs(path)
    }
}

impl Drop for TempTs {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run(tool: &str, args: &[&str], file: &Path) -> (String, String) {
    let out = Command::new(tool)
        .args(
            args.iter()
                .map(|a| if *a == "FILE" { file.as_os_str() } else { a.as_ref() }),
        )
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} ({e}); install ffmpeg or set STROM_SKIP_FFMPEG=1"));
    assert!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Decodes every stream completely; any warning or error fails the test.
fn assert_ffmpeg_clean(file: &Path) {
    let (_, stderr) = run(
        "ffmpeg",
        &["-nostdin", "-v", "warning", "-i", "FILE", "-f", "null", "-"],
        file,
    );
    assert_eq!(stderr, "", "ffmpeg complained about {}", file.display());
}

type Section = HashMap<String, String>;

/// `ffprobe -show_streams -show_packets` as (streams, packets); any stderr output fails.
fn ffprobe(file: &Path) -> (Vec<Section>, Vec<Section>) {
    let (stdout, stderr) = run(
        "ffprobe",
        &["-v", "error", "-show_streams", "-show_packets", "FILE"],
        file,
    );
    assert_eq!(stderr, "", "ffprobe complained");
    let (mut streams, mut packets) = (Vec::new(), Vec::new());
    let mut cur: Option<(bool, Section)> = None;
    for line in stdout.lines() {
        match line {
            "[STREAM]" => cur = Some((true, Section::new())),
            "[PACKET]" => cur = Some((false, Section::new())),
            "[/STREAM]" | "[/PACKET]" => match cur.take() {
                Some((true, s)) => streams.push(s),
                Some((false, s)) => packets.push(s),
                None => panic!("unbalanced ffprobe output"),
            },
            _ => {
                if let (Some((_, s)), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
                    s.insert(k.to_owned(), v.to_owned());
                }
            }
        }
    }
    (streams, packets)
}

/// ffprobe's view of one stream: (codec_name, PTS list, keyframe flags).
fn probe_stream(streams: &[Section], packets: &[Section], pid: u16) -> (Section, Vec<i64>, Vec<bool>) {
    let id = format!("{pid:#x}");
    let stream = streams
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no stream with PID {id}"))
        .clone();
    let index = &stream["index"];
    let ps: Vec<&Section> = packets.iter().filter(|p| &p["stream_index"] == index).collect();
    let pts = ps.iter().map(|p| p["pts"].parse().expect("pts")).collect();
    let keys = ps.iter().map(|p| p["flags"].starts_with('K')).collect();
    (stream, pts, keys)
}

/// Asserts that ffprobe sees exactly the frames of `track` with their PTS
/// modulo 2^33 and their keyframe flags.
fn assert_packets(streams: &[Section], packets: &[Section], seg: &Segment, track: u16) -> Section {
    let pid = 0x100 + seg.tracks[track as usize].id;
    let (stream, pts, keys) = probe_stream(streams, packets, pid);
    let ours: Vec<&Frame> = seg.frames.iter().filter(|f| f.track == track).collect();
    assert_eq!(pts.len(), ours.len(), "packet count of PID {pid:#x}");
    let want: Vec<i64> = ours.iter().map(|f| f.pts.rem_euclid(TS_WRAP)).collect();
    let got: Vec<i64> = pts.iter().map(|p| p.rem_euclid(TS_WRAP)).collect();
    assert_eq!(got, want, "PTS of PID {pid:#x}");
    if seg.tracks[track as usize].codec.kind() == strom_media::TrackKind::Video {
        let want: Vec<bool> = ours.iter().map(|f| f.keyframe).collect();
        assert_eq!(keys, want, "keyframes of PID {pid:#x}");
    }
    stream
}

// ---------------------------------------------------------------------------
// Our own view of the transport stream

struct Pes {
    pid: u16,
    pcr: Option<i64>,
    random_access: bool,
    dts: i64,
    data: Vec<u8>,
}

/// Walks the packets, checking sync, CC continuity from 0 and that payload
/// never carries stuffing, and returns the PES packets in order.
fn parse_ts(ts: &[u8]) -> Vec<Pes> {
    assert_eq!(ts.len() % PACKET_SIZE, 0, "whole packets");
    let mut cc: HashMap<u16, u8> = HashMap::new();
    let mut pes: Vec<Pes> = Vec::new();
    let mut open: HashMap<u16, usize> = HashMap::new();
    for p in ts.chunks_exact(PACKET_SIZE) {
        assert_eq!(p[0], 0x47);
        let pid = u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
        let expect = cc.get(&pid).map_or(0, |c| (c + 1) & 0xF);
        assert_eq!(p[3] & 0xF, expect, "CC of PID {pid:#x}");
        cc.insert(pid, p[3] & 0xF);
        let (af, payload) = if p[3] & 0x20 != 0 {
            let n = usize::from(p[4]);
            (&p[5..5 + n], &p[5 + n..])
        } else {
            (&p[4..4], &p[4..])
        };
        if pid < 0x100 || pid == 0x1000 {
            continue;
        }
        if p[1] & 0x40 != 0 {
            assert_eq!(&payload[..3], &[0, 0, 1], "PES start");
            let pcr = (!af.is_empty() && af[0] & 0x10 != 0).then(|| {
                (i64::from(af[1]) << 25)
                    | (i64::from(af[2]) << 17)
                    | (i64::from(af[3]) << 9)
                    | (i64::from(af[4]) << 1)
                    | i64::from(af[5] >> 7)
            });
            let ts_at = |b: &[u8]| {
                (i64::from(b[0] >> 1 & 7) << 30)
                    | (i64::from(b[1]) << 22)
                    | (i64::from(b[2] >> 1) << 15)
                    | (i64::from(b[3]) << 7)
                    | i64::from(b[4] >> 1)
            };
            let dts = if payload[7] & 0x40 != 0 {
                ts_at(&payload[14..19])
            } else {
                ts_at(&payload[9..14])
            };
            open.insert(pid, pes.len());
            pes.push(Pes {
                pid,
                pcr,
                random_access: !af.is_empty() && af[0] & 0x40 != 0,
                dts,
                data: Vec::new(),
            });
        }
        let i = *open.get(&pid).expect("continuation before PES start");
        pes[i].data.extend_from_slice(payload);
    }
    for p in &pes {
        let len = usize::from(u16::from_be_bytes([p.data[4], p.data[5]]));
        if len != 0 {
            assert_eq!(len, p.data.len() - 6, "PES_packet_length of PID {:#x}", p.pid);
        }
    }
    pes
}

/// The PES payload after its header.
fn pes_body(p: &Pes) -> &[u8] {
    &p.data[9 + usize::from(p.data[8])..]
}

/// PCR never ahead of the DTS of any later PES (T-STD: data arrives before it
/// is decoded), and present on every PES of the PCR PID.
fn assert_pcr_behind_dts(pes: &[Pes], pcr_pid: u16) {
    let mut pcr = None;
    for p in pes {
        if p.pid == pcr_pid {
            let this = p.pcr.expect("every frame of the PCR track carries a PCR");
            assert_eq!(this, (p.dts - MUX_DELAY).rem_euclid(TS_WRAP));
            pcr = Some(this);
        } else {
            assert!(p.pcr.is_none(), "PCR on a non-PCR PID");
        }
        if let Some(pcr) = pcr {
            // Compare on the 33-bit circle: dts - pcr in [0, 2^32).
            let ahead = (p.dts - pcr).rem_euclid(TS_WRAP);
            assert!(ahead < TS_WRAP / 2, "DTS {} behind PCR {pcr}", p.dts);
        }
    }
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn h264_aac_segment_reads_clean() {
    let seg = demo_segment(T0);
    let ts = mux_segment(&seg);
    assert_eq!(ts, mux_segment(&seg), "deterministic");

    let pes = parse_ts(&ts);
    assert_eq!(pes.len(), 13 + 26);
    assert_pcr_behind_dts(&pes, 0x100);
    for (p, f) in pes.iter().zip(&seg.frames) {
        assert_eq!(p.random_access, f.keyframe);
        assert_eq!(p.dts, f.dts.rem_euclid(TS_WRAP));
    }
    // The demo already has AUD + SPS + PPS: the video payload is untouched.
    let video: Vec<&Pes> = pes.iter().filter(|p| p.pid == 0x100).collect();
    for (p, f) in video.iter().zip(seg.frames.iter().filter(|f| f.track == 0)) {
        assert_eq!(pes_body(p), &f.data[..]);
    }

    if skip_ffmpeg() {
        return;
    }
    let file = TempTs::new("demo", &ts);
    assert_ffmpeg_clean(&file.0);
    let (streams, packets) = ffprobe(&file.0);
    assert_eq!(streams.len(), 2);
    let v = assert_packets(&streams, &packets, &seg, 0);
    assert_eq!(
        (v["codec_name"].as_str(), v["width"].as_str(), v["height"].as_str()),
        ("h264", "1280", "720")
    );
    let a = assert_packets(&streams, &packets, &seg, 1);
    assert_eq!(
        (
            a["codec_name"].as_str(),
            a["sample_rate"].as_str(),
            a["channels"].as_str()
        ),
        ("aac", "48000", "2")
    );
}

#[test]
fn bare_h264_gets_aud_and_parameter_sets() {
    let mut seg = demo_segment(T0);
    let ps_len: usize = seg.tracks[0].params.parameter_sets.iter().map(|p| p.len() + 4).sum();
    let mut originals = Vec::new();
    for f in seg.frames.iter_mut().filter(|f| f.track == 0) {
        f.data = strip_aud_and_parameter_sets(Codec::H264, &f.data);
        originals.push((f.keyframe, f.data.clone()));
    }
    let ts = mux_segment(&seg);
    let video: Vec<Pes> = parse_ts(&ts).into_iter().filter(|p| p.pid == 0x100).collect();
    for (p, (key, data)) in video.iter().zip(&originals) {
        let body = pes_body(p);
        assert_eq!(&body[..6], &[0, 0, 0, 1, 9, 0xF0], "AUD first");
        let inserted = if *key { ps_len } else { 0 };
        assert_eq!(body.len(), 6 + inserted + data.len());
        assert_eq!(&body[6 + inserted..], &data[..]);
    }

    if skip_ffmpeg() {
        return;
    }
    let file = TempTs::new("bare-h264", &ts);
    assert_ffmpeg_clean(&file.0);
    let (streams, packets) = ffprobe(&file.0);
    let v = assert_packets(&streams, &packets, &seg, 0);
    assert_eq!((v["width"].as_str(), v["height"].as_str()), ("1280", "720"));
}

#[test]
fn hevc_ac3_eac3_mp2_read_clean() {
    let hevc = fixture!("hevc");
    let params = TrackParams {
        parameter_sets: parameter_sets(Codec::H265, &hevc[0].3),
        width: 160,
        height: 120,
        ..Default::default()
    };
    // Out-of-band parameter sets and no AUDs: the muxer must restore both.
    let hevc = hevc
        .into_iter()
        .map(|(pts, dts, key, data)| (pts, dts, key, strip_aud_and_parameter_sets(Codec::H265, &data)))
        .collect();
    let tracks = vec![
        track(0, Codec::H265, params),
        track(1, Codec::Ac3, audio_params(48000, 2, Some("eng"))),
        track(2, Codec::Eac3, audio_params(48000, 2, Some("deu"))),
        track(3, Codec::MpegAudio, audio_params(48000, 2, None)),
    ];
    let frames = interleave(vec![hevc, fixture!("ac3"), fixture!("eac3"), fixture!("mp2")], T0);
    let seg = segment(tracks, frames);
    let ts = mux_segment(&seg);
    let pes = parse_ts(&ts);
    assert_pcr_behind_dts(&pes, 0x100);
    for p in &pes {
        let stream_id = p.data[3];
        let want = match p.pid {
            0x100 => 0xE0,
            0x101 | 0x102 => 0xBD,
            _ => 0xC0,
        };
        assert_eq!(stream_id, want, "stream_id on PID {:#x}", p.pid);
        if p.pid == 0x100 {
            assert_eq!(&pes_body(p)[..7], &[0, 0, 0, 1, 0x46, 0x01, 0x50], "HEVC AUD first");
        }
    }

    if skip_ffmpeg() {
        return;
    }
    let file = TempTs::new("hevc-ac3", &ts);
    assert_ffmpeg_clean(&file.0);
    let (streams, packets) = ffprobe(&file.0);
    assert_eq!(streams.len(), 4);
    let v = assert_packets(&streams, &packets, &seg, 0);
    assert_eq!(
        (v["codec_name"].as_str(), v["width"].as_str(), v["height"].as_str()),
        ("hevc", "160", "120")
    );
    for (track, codec, lang) in [(1, "ac3", Some("eng")), (2, "eac3", Some("deu")), (3, "mp2", None)] {
        let a = assert_packets(&streams, &packets, &seg, track);
        assert_eq!(
            (
                a["codec_name"].as_str(),
                a["sample_rate"].as_str(),
                a["channels"].as_str()
            ),
            (codec, "48000", "2")
        );
        assert_eq!(a.get("TAG:language").map(String::as_str), lang);
    }
}

#[test]
fn audio_only_reads_clean() {
    let tracks = vec![track(0, Codec::Aac, audio_params(48000, 2, Some("fra")))];
    let seg = segment(tracks, interleave(vec![strip_adts(fixture!("aac"))], T0));
    let ts = mux_segment(&seg);
    let pes = parse_ts(&ts);
    assert_pcr_behind_dts(&pes, 0x100);
    // Every AAC PES is one ADTS frame whose length field matches.
    for (p, f) in pes.iter().zip(&seg.frames) {
        let adts = pes_body(p);
        let len = usize::from(adts[3] & 3) << 11 | usize::from(adts[4]) << 3 | usize::from(adts[5] >> 5);
        assert_eq!(len, 7 + f.data.len());
        assert_eq!(&adts[7..], &f.data[..]);
    }

    if skip_ffmpeg() {
        return;
    }
    let file = TempTs::new("audio-only", &ts);
    assert_ffmpeg_clean(&file.0);
    let (streams, packets) = ffprobe(&file.0);
    let a = assert_packets(&streams, &packets, &seg, 0);
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(a["TAG:language"], "fra");
}

#[test]
fn continuous_stream_across_the_33_bit_wrap() {
    // One muxer for several segments back to back, the way HTTP-TS runs,
    // placed so the 33-bit PES/PCR clock wraps in the middle.
    // The fixture's video spans PTS 133200..=187200: segments 16 frames apart
    // follow each other without PTS or DTS overlap.
    let seg_len = 16 * 3600;
    let base = 2 * TS_WRAP - 2 * seg_len - 150_000;
    let mut mux = TsMuxer::new(&demo_segment(base).tracks);
    let mut out = BytesMut::new();
    let mut all = Vec::new();
    mux.write_tables(&mut out);
    for n in 0..4 {
        let seg = demo_segment(base + n * seg_len);
        for f in &seg.frames {
            mux.write_frame(f, &mut out);
        }
        all.extend(seg.frames);
    }
    let seg = segment(demo_segment(0).tracks.to_vec(), all);
    assert!(seg.frames.first().is_some_and(|f| f.pts < 2 * TS_WRAP));
    assert!(seg.frames.last().is_some_and(|f| f.pts > 2 * TS_WRAP));
    let pes = parse_ts(&out);
    assert_eq!(pes.len(), 4 * (13 + 26));
    assert_pcr_behind_dts(&pes, 0x100);

    if skip_ffmpeg() {
        return;
    }
    let file = TempTs::new("wrap", &out);
    assert_ffmpeg_clean(&file.0);
    let (streams, packets) = ffprobe(&file.0);
    assert_packets(&streams, &packets, &seg, 0);
    assert_packets(&streams, &packets, &seg, 1);
}

/// demo.ts → demux → mux → demux gives the same tracks and frames, up to the
/// AUD and parameter sets the muxer adds, and the demuxer finds nothing to
/// complain about in our output.
#[test]
fn demux_mux_demux_round_trip() {
    let input =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo.ts")).expect("read assets/demo.ts");
    let (tracks, frames, _) = demux_all(&input);
    assert_eq!(tracks.len(), 2);
    assert!(frames.len() > 700, "demo.ts has 250 video + ~470 audio frames");
    let seg = segment(tracks.to_vec(), frames);
    let ts = mux_segment(&seg);
    let (tracks2, frames2, stats) = demux_all(&ts);
    assert_eq!(
        (
            stats.sync_errors,
            stats.cc_errors,
            stats.pes_errors,
            stats.pmt_errors,
            stats.dropped_frames
        ),
        (0, 0, 0, 0, 0),
        "demuxer errors on our output: {stats:?}"
    );
    assert_eq!(tracks2, tracks, "same tracks and codec parameters");
    assert_eq!(frames2.len(), seg.frames.len());
    // Both demuxes emit frames in PES order, which the muxer keeps.
    for (x, y) in seg.frames.iter().zip(&frames2) {
        assert_eq!((x.track, x.pts, x.dts, x.keyframe), (y.track, y.pts, y.dts, y.keyframe));
        let codec = tracks[usize::from(x.track)].codec;
        if codec.kind() == strom_media::TrackKind::Video {
            assert_eq!(
                strip_aud_and_parameter_sets(codec, &x.data),
                strip_aud_and_parameter_sets(codec, &y.data),
                "video payload at dts {}",
                x.dts
            );
        } else {
            assert_eq!(x.data, y.data, "audio payload at dts {}", x.dts);
        }
    }
    // Frames in the source's own interleaving (not sorted by DTS): the PCR
    // still stays behind every DTS.
    assert_pcr_behind_dts(&parse_ts(&ts), 0x100);

    if skip_ffmpeg() {
        return;
    }
    let file = TempTs::new("roundtrip", &ts);
    assert_ffmpeg_clean(&file.0);
    let (streams, packets) = ffprobe(&file.0);
    assert_packets(&streams, &packets, &seg, 0);
    assert_packets(&streams, &packets, &seg, 1);
}

fn demux_all(ts: &[u8]) -> (Arc<[Track]>, Vec<Frame>, DemuxStats) {
    let mut demuxer = Demuxer::new();
    let mut tracks = None;
    let mut frames = Vec::new();
    let mut drain = |demuxer: &mut Demuxer| {
        while let Some(event) = demuxer.pull() {
            match event {
                DemuxEvent::Tracks(t) => tracks = Some(t),
                DemuxEvent::Frame(f) => frames.push(f),
            }
        }
    };
    // Odd-sized chunks, as a socket delivers them.
    for chunk in ts.chunks(1000) {
        demuxer.push(chunk);
        drain(&mut demuxer);
    }
    demuxer.flush();
    drain(&mut demuxer);
    let stats = demuxer.stats().clone();
    (tracks.expect("demuxer announced tracks"), frames, stats)
}

// ---------------------------------------------------------------------------
// Runs of HLS segments: continuity across segment boundaries

/// A fixed wall clock (2025-11-22T00:00:00Z in 90 kHz ticks), passed to the
/// timeline for every frame.
const NOW: i64 = 1_763_769_600 * CLOCK_HZ;

/// Bytes → demux → timeline → segmenter (2 s target) → segments, the way
/// the node's ingest path cuts a stream.
fn pipeline_segments(ts: &[u8]) -> Vec<Segment> {
    let mut demuxer = Demuxer::new();
    let mut timeline = Timeline::new(TimelineConfig::default());
    let mut segmenter = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
    let mut segments = Vec::new();
    let mut drain = |demuxer: &mut Demuxer, segments: &mut Vec<Segment>| {
        while let Some(event) = demuxer.pull() {
            match event {
                DemuxEvent::Tracks(t) => segments.extend(segmenter.set_tracks(t)),
                DemuxEvent::Frame(f) => {
                    if let Mapped::Frame { frame, anchor } = timeline.map(f, NOW) {
                        if let Some(AnchorReason::JumpBack | AnchorReason::JumpForward | AnchorReason::Drift) = anchor {
                            segments.extend(segmenter.discontinuity());
                        }
                        segments.extend(segmenter.push(frame));
                    }
                }
            }
        }
    };
    for chunk in ts.chunks(64 * 1024) {
        demuxer.push(chunk);
        drain(&mut demuxer, &mut segments);
    }
    demuxer.flush();
    drain(&mut demuxer, &mut segments);
    segments.extend(segmenter.flush());
    segments.retain(|s| !s.frames.is_empty());
    segments
}

/// Asserts that in `ts` every PID's continuity counter starts at 0 and goes
/// up by one (mod 16) with every packet, across segment boundaries too;
/// returns the packet count per PID.
fn assert_cc_continuous(ts: &[u8], what: &str) -> HashMap<u16, usize> {
    assert_eq!(ts.len() % PACKET_SIZE, 0, "{what}: whole packets");
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for (i, p) in ts.chunks_exact(PACKET_SIZE).enumerate() {
        assert_eq!(p[0], 0x47, "{what}: sync byte of packet {i}");
        let pid = u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
        assert_ne!(p[3] & 0x10, 0, "{what}: every packet carries payload");
        let n = counts.entry(pid).or_default();
        assert_eq!(
            usize::from(p[3] & 0xF),
            *n % 16,
            "{what}: CC of PID {pid:#x} at packet {i}"
        );
        *n += 1;
    }
    counts
}

/// Each segment on its own: packet aligned, PAT then PMT first, every PID
/// from CC 0 to 15.
fn assert_segment_shape(ts: &[u8], what: &str) {
    let counts = assert_cc_continuous(ts, what);
    let pid = |i: usize| u16::from(ts[i * PACKET_SIZE + 1] & 0x1F) << 8 | u16::from(ts[i * PACKET_SIZE + 2]);
    assert_eq!((pid(0), pid(1)), (0, 0x1000), "{what}: starts with PAT, PMT");
    for (pid, n) in counts {
        assert_eq!(n % 16, 0, "{what}: PID {pid:#x} ends at CC {}", (n + 15) % 16);
    }
}

/// GStreamer's MPEG-TS demuxer reports continuity errors of PES PIDs
/// ("CONTINUITY: Mismatch") and of PSI PIDs ("section discontinuity");
/// returns those lines, or None when GStreamer is not installed.
fn gstreamer_continuity_errors(file: &Path) -> Option<Vec<String>> {
    let out = Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", file.display()))
        .args(["!", "tsdemux", "!", "fakesink"])
        .env("GST_DEBUG", "tsdemux:6,mpegtspacketizer:4")
        .env("GST_DEBUG_NO_COLOR", "1")
        .output()
        .ok()?;
    let log = String::from_utf8_lossy(&out.stderr);
    Some(
        log.lines()
            .filter(|l| l.contains("CONTINUITY: Mismatch") || l.contains("section discontinuity"))
            .map(str::to_owned)
            .collect(),
    )
}

/// Decodes a file with `ffmpeg -v error`; any output fails.
fn assert_ffmpeg_decodes(file: &Path) {
    let (_, stderr) = run(
        "ffmpeg",
        &["-nostdin", "-v", "error", "-i", "FILE", "-f", "null", "-"],
        file,
    );
    assert_eq!(stderr, "", "ffmpeg errors on {}", file.display());
}

#[test]
fn consecutive_segments_play_as_one_ts() {
    let input =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo.ts")).expect("read assets/demo.ts");
    let segments = pipeline_segments(&input);
    assert!(segments.len() >= 3, "demo.ts (10 s) cuts into several 2 s segments");
    let tracks: Vec<u16> = segments[0].tracks.iter().map(|t| t.id).collect();
    // Full segments (video.m3u8) and per-track renditions (tracks-v1,
    // tracks-a1), each a run of consecutive segments.
    let mut runs: Vec<(String, Vec<Bytes>)> = vec![("all".into(), segments.iter().map(mux_segment).collect())];
    for &id in &tracks {
        let run = segments.iter().map(|s| mux_segment_tracks(s, &[id])).collect();
        runs.push((format!("track{id}"), run));
    }
    for (name, run) in &runs {
        for (i, ts) in run.iter().enumerate() {
            assert_segment_shape(ts, &format!("{name} segment {i}"));
        }
        let cat: Vec<u8> = run.iter().flat_map(|b| b.iter().copied()).collect();
        let counts = assert_cc_continuous(&cat, &format!("{name} concatenated"));
        assert!(counts.values().all(|&n| n >= 16));
        if skip_ffmpeg() {
            continue;
        }
        let file = TempTs::new(&format!("cat-{name}"), &cat);
        assert_ffmpeg_decodes(&file.0);
        match gstreamer_continuity_errors(&file.0) {
            Some(errors) => assert!(errors.is_empty(), "GStreamer on {name}: {errors:#?}"),
            None => eprintln!("gst-launch-1.0 not found: GStreamer continuity check skipped"),
        }
        // Each segment decodes on its own too.
        for (i, ts) in run.iter().enumerate() {
            let file = TempTs::new(&format!("seg-{name}-{i}"), ts);
            assert_ffmpeg_decodes(&file.0);
        }
    }
}

/// What ffprobe says about the streams of a file: (codec_type, codec_name,
/// language tag), sorted.
fn probe_tracks(file: &Path) -> Vec<(String, String, String)> {
    let (stdout, stderr) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name:stream_tags=language",
            "FILE",
        ],
        file,
    );
    assert_eq!(stderr, "", "ffprobe complained about {}", file.display());
    let mut tracks = Vec::new();
    let mut in_program = false;
    let mut cur: Option<Section> = None;
    for line in stdout.lines() {
        match line {
            // The program lists its streams again, without tags.
            "[PROGRAM]" => in_program = true,
            "[/PROGRAM]" => in_program = false,
            "[STREAM]" if !in_program => cur = Some(Section::new()),
            "[/STREAM]" => {
                if let Some(s) = cur.take() {
                    let get = |k: &str| s.get(k).cloned().unwrap_or_default();
                    tracks.push((get("codec_type"), get("codec_name"), get("TAG:language")));
                }
            }
            _ => {
                if let (Some(s), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
                    s.insert(k.to_owned(), v.to_owned());
                }
            }
        }
    }
    tracks.sort();
    tracks
}

#[test]
fn subtitle_and_cue_tracks_reach_readers() {
    // The demo H.264 + AAC plus teletext, DVB subtitles and SCTE-35.
    let base = demo_segment(T0);
    let mut tracks = base.tracks.to_vec();
    let with = |id, codec, language: &str, descriptors: &'static [u8]| Track {
        id,
        codec,
        params: TrackParams {
            language: Some(language.to_owned()),
            descriptors: Bytes::from_static(descriptors),
            ..Default::default()
        },
    };
    tracks.push(with(
        2,
        Codec::Teletext,
        "eng",
        &[0x56, 10, b'e', b'n', b'g', 0x09, 0x00, b'f', b'r', b'a', 0x10, 0x88],
    ));
    tracks.push(with(
        3,
        Codec::DvbSubtitle,
        "deu",
        &[0x59, 8, b'd', b'e', b'u', 0x10, 0, 1, 0, 1],
    ));
    tracks.push(with(4, Codec::Scte35, "", &[]));
    let mut frames = base.frames.clone();
    let start = base.frames[0].dts;
    // Teletext: data_identifier 0x10 and one stuffing data unit.
    let mut teletext = vec![0x10, 0xFF, 0x2C];
    teletext.extend_from_slice(&[0xFF; 44]);
    // DVB subtitles: an empty display set (end of display set segment).
    let dvbsub = vec![0x20, 0x00, 0x0F, 0x80, 0x00, 0x01, 0x00, 0x00, 0xFF];
    for i in 0..3 {
        let t = start + i * 9000;
        frames.push(Frame {
            track: 2,
            dts: t,
            pts: t,
            keyframe: true,
            data: Bytes::from(teletext.clone()),
        });
        frames.push(Frame {
            track: 3,
            dts: t,
            pts: t,
            keyframe: true,
            data: Bytes::from(dvbsub.clone()),
        });
    }
    // A time_signal for 1 s into the segment.
    let mut cue = vec![
        0xFC, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xF0, 5, 0x06, 0xFE, 0, 0, 0, 0, 0, 0,
    ];
    cue[2] = (cue.len() - 3 + 4) as u8;
    let crc = strom_media::ts::crc::crc32_mpeg2(&cue);
    cue.extend_from_slice(&crc.to_be_bytes());
    frames.push(Frame {
        track: 4,
        dts: start,
        pts: start + CLOCK_HZ,
        keyframe: true,
        data: Bytes::from(cue),
    });
    frames.sort_by_key(|f| f.dts);
    let seg = segment(tracks, frames);
    let ts = mux_segment(&seg);
    assert_segment_shape(&ts, "with subtitles");
    // The same content again right after it (the demo segment's frames
    // span less than 16 video frames).
    let mut next = seg.clone();
    for f in &mut next.frames {
        f.dts += 16 * 3600;
        f.pts += 16 * 3600;
    }
    let run: Vec<u8> = [ts.clone(), mux_segment(&next)].concat();
    assert_cc_continuous(&run, "twice");
    if skip_ffmpeg() {
        return;
    }
    let file = TempTs::new("subs", &ts);
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        probe_tracks(&file.0),
        [
            s("audio", "aac", ""),
            s("data", "scte_35", ""),
            s("subtitle", "dvb_subtitle", "deu"),
            s("subtitle", "dvb_teletext", "eng,fra"),
            s("video", "h264", ""),
        ]
    );
    assert_ffmpeg_decodes(&file.0);
    let file = TempTs::new("subs-twice", &run);
    assert_ffmpeg_decodes(&file.0);
}

/// The SCTE-35 sections on `pid` are the cue frames in order, each with its
/// splice time (pts_time + pts_adjustment) moved onto the output clock: the
/// frame's UTC PTS modulo 2^33.
fn assert_cues_on_output_clock(ts: &[u8], pid: u16, frames: &[&Frame], name: &str) {
    let mut sections: Vec<Vec<u8>> = Vec::new();
    for p in ts.chunks_exact(PACKET_SIZE) {
        if u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]) != pid {
            continue;
        }
        let payload = if p[3] & 0x20 != 0 {
            &p[5 + usize::from(p[4])..]
        } else {
            &p[4..]
        };
        if p[1] & 0x40 != 0 {
            assert_eq!(payload[0], 0, "{name}: pointer_field");
            sections.push(payload[1..].to_vec());
        } else if let Some(s) = sections.last_mut() {
            s.extend_from_slice(payload);
        }
    }
    // The muxer pads the PID's counter with splice_null() sections (no
    // encryption, pts_adjustment 0, tier 0xFFF): set them aside on both sides.
    const PADDING_NULL: [u8; 16] = [0xFC, 0x30, 17, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xF0, 0, 0, 0, 0];
    let is_padding = |s: &[u8]| s.len() >= 20 && s[..16] == PADDING_NULL;
    let padding = sections.iter().filter(|s| is_padding(s)).count();
    sections.retain(|s| !is_padding(s));
    let frames: Vec<&Frame> = frames.iter().copied().filter(|f| !is_padding(&f.data)).collect();
    assert!(padding > 0, "{name}: the counter is padded with splice_null()");
    assert_eq!(sections.len(), frames.len(), "{name}: one section per cue frame");
    eprintln!("{name}: {} SCTE-35 sections checked", sections.len());
    for (section, frame) in sections.iter().zip(frames) {
        let len = 3 + (usize::from(section[1] & 0x0F) << 8 | usize::from(section[2]));
        let section = &section[..len];
        match strom_media::scte35::parse(section) {
            Ok(info) if !info.encrypted && info.pts_time().is_some() => {
                assert_eq!(
                    info.splice_time(),
                    Some(frame.pts.rem_euclid(TS_WRAP)),
                    "{name}: splice time"
                );
            }
            // Nothing to move: written as it came.
            _ => assert_eq!(section, &frame.data[..len], "{name}: cue without splice time unchanged"),
        }
    }
}

#[test]
fn broadcast_fixtures_keep_tracks_and_languages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/broadcast");
    let mut checked = 0;
    for name in ["subtitles", "scte35", "languages"] {
        let path = dir.join(format!("{name}.ts"));
        let Ok(input) = std::fs::read(&path) else {
            eprintln!("{} missing: skipped", path.display());
            continue;
        };
        let segments = pipeline_segments(&input);
        assert!(!segments.is_empty(), "{name}: no segments");
        let muxed: Vec<Bytes> = segments.iter().map(mux_segment).collect();
        for (i, ts) in muxed.iter().enumerate() {
            assert_segment_shape(ts, &format!("{name} segment {i}"));
        }
        let cat: Vec<u8> = muxed.iter().flat_map(|b| b.iter().copied()).collect();
        let counts = assert_cc_continuous(&cat, name);
        for track in segments[0].tracks.iter() {
            let pid = 0x100 + track.id;
            let index = segments[0]
                .tracks
                .iter()
                .position(|t| t.id == track.id)
                .unwrap_or_default() as u16;
            let frames: Vec<&Frame> = segments
                .iter()
                .flat_map(|s| &s.frames)
                .filter(|f| f.track == index)
                .collect();
            if !frames.is_empty() {
                assert!(
                    counts.get(&pid).is_some_and(|&n| n > 0),
                    "{name}: nothing on PID {pid:#x}"
                );
            }
            if track.codec == Codec::Scte35 {
                assert_cues_on_output_clock(&cat, pid, &frames, name);
            }
        }
        checked += 1;
        if skip_ffmpeg() {
            continue;
        }
        let file = TempTs::new(&format!("fixture-{name}"), &cat);
        let source = probe_tracks(&path);
        let ours = probe_tracks(&file.0);
        // Every track the demuxer hands over reaches the output as it was in
        // the source (codec and languages); once the demuxer carries every
        // source track, the output has exactly the source's tracks.
        let announced = segments[0].tracks.len();
        assert_eq!(ours.len(), announced, "{name}: one output stream per track: {ours:?}");
        if announced == source.len() {
            assert_eq!(ours, source, "{name}: the tracks and languages ffprobe sees");
        } else {
            eprintln!(
                "{name}: the demuxer carries {announced} of {} source streams",
                source.len()
            );
            let mut rest = source.clone();
            for t in &ours {
                let i = rest.iter().position(|s| s == t);
                assert!(i.is_some(), "{name}: {t:?} is not a source stream ({source:?})");
                rest.remove(i.unwrap_or_default());
            }
        }
        assert_ffmpeg_decodes(&file.0);
        if let Some(errors) = gstreamer_continuity_errors(&file.0) {
            assert!(errors.is_empty(), "GStreamer on {name}: {errors:#?}");
        }
    }
    if checked == 0 {
        eprintln!("no broadcast fixtures in {}: test skipped", dir.display());
    }
}

/// The continuity checks above can fail: segments from fresh, unpadded
/// muxers (counters restarting at 0 at every boundary, as before padding)
/// trip both our own check and GStreamer's.
#[test]
fn continuity_checks_catch_restarting_counters() {
    let input =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo.ts")).expect("read assets/demo.ts");
    let segments = pipeline_segments(&input);
    let mut cat = Vec::new();
    for seg in &segments {
        let mut mux = TsMuxer::new(&seg.tracks);
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        for f in &seg.frames {
            mux.write_frame(f, &mut out);
        }
        cat.extend_from_slice(&out);
    }
    let caught = std::panic::catch_unwind(|| assert_cc_continuous(&cat, "unpadded"));
    assert!(caught.is_err(), "our check must catch the restarts");
    if skip_ffmpeg() {
        return;
    }
    let file = TempTs::new("unpadded", &cat);
    match gstreamer_continuity_errors(&file.0) {
        Some(errors) => assert!(!errors.is_empty(), "GStreamer must report the restarts"),
        None => eprintln!("gst-launch-1.0 not found: GStreamer check skipped"),
    }
}

/// WARN/ERROR lines of GStreamer's MPEG-TS elements (categories mpegtsbase,
/// mpegtspacketizer, tsdemux and the mpegts section library) reading `file`
/// at `GST_DEBUG=2`; None when `gst-launch-1.0` is not installed.
fn gstreamer_ts_warnings(file: &Path) -> Option<Vec<String>> {
    // A bound on the run: a stream without audio or video gives tsdemux no
    // pads, and such a pipeline may wait for data forever.
    let out = Command::new("timeout")
        .args(["60", "gst-launch-1.0", "-q"])
        .arg("filesrc")
        .arg(format!("location={}", file.display()))
        .args(["!", "tsdemux", "!", "fakesink"])
        .env("GST_DEBUG", "2")
        .env("GST_DEBUG_NO_COLOR", "1")
        .output()
        .ok()?;
    let log = String::from_utf8_lossy(&out.stderr);
    Some(
        log.lines()
            .filter(|l| {
                let level = l.contains(" WARN ") || l.contains(" ERROR ");
                let ts = ["mpegts", "tsdemux", "gstmpegts"].iter().any(|c| l.contains(c));
                (level && ts) || l.contains("section extends past")
            })
            .map(str::to_owned)
            .collect(),
    )
}

/// GStreamer reads every segment, on its own and joined to the next ones,
/// without a single warning from its MPEG-TS demuxer: the counter padding
/// must not split PSI sections or PES headers in ways readers dislike.
#[test]
fn gstreamer_reads_segments_without_warnings() {
    if Command::new("gst-launch-1.0").arg("--version").output().is_err() {
        eprintln!("gst-launch-1.0 not found: GStreamer warning check skipped");
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/broadcast");
    let mut inputs = vec![(
        "demo",
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo.ts")),
    )];
    // long_gop is required; the other broadcast fixtures are checked too.
    inputs.push(("long_gop", dir.join("long_gop.ts")));
    for name in [
        "subtitles",
        "scte35",
        "languages",
        "open_gop",
        "split_pes",
        "latm",
        "mpts",
        "hevc_cra",
    ] {
        let path = dir.join(format!("{name}.ts"));
        if path.exists() {
            inputs.push((name, path));
        }
    }
    let mut problems = Vec::new();
    for (name, path) in inputs {
        let input = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let segments = pipeline_segments(&input);
        assert!(segments.len() >= 2, "{name}: several segments");
        // (segment index, bytes, whether it has frames of what it carries)
        type Run = Vec<(usize, Bytes, bool)>;
        let mut runs: Vec<(String, Run)> = vec![(
            "all".into(),
            segments
                .iter()
                .enumerate()
                .map(|(i, s)| (i, mux_segment(s), true))
                .collect(),
        )];
        // Per-track renditions of audio and video (a data track alone gives
        // GStreamer nothing to play).
        for (index, t) in segments[0].tracks.iter().enumerate() {
            if !matches!(t.kind(), TrackKind::Video | TrackKind::Audio) {
                continue;
            }
            let run = segments
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let has = s.frames.iter().any(|f| usize::from(f.track) == index);
                    (i, mux_segment_tracks(s, &[t.id]), has)
                })
                .collect();
            runs.push((format!("track{}", t.id), run));
        }
        for (kind, run) in &runs {
            // A rendition segment without a frame of its track has no PCR,
            // which GStreamer rightly notes; it is not read on its own here.
            for (i, ts, _) in run.iter().filter(|(_, _, has)| *has) {
                let file = TempTs::new(&format!("gstw-{name}-{kind}-{i}"), ts);
                if let Some(w) = gstreamer_ts_warnings(&file.0) {
                    problems.extend(w.into_iter().map(|l| format!("{name} {kind} segment {i}: {l}")));
                }
            }
            // Joined between discontinuities, as an HLS client plays them (a
            // time-base break is a new demuxer run there, EXT-X-DISCONTINUITY).
            let mut start = 0;
            while start < run.len() {
                let end = (start + 1..run.len())
                    .find(|&j| segments[run[j].0].discontinuity)
                    .unwrap_or(run.len());
                let part = &run[start..end];
                start = end;
                if !part.iter().any(|(_, _, has)| *has) {
                    continue;
                }
                let cat: Vec<u8> = part.iter().flat_map(|(_, b, _)| b.iter().copied()).collect();
                let file = TempTs::new(&format!("gstw-{name}-{kind}-cat{}", part[0].0), &cat);
                if let Some(w) = gstreamer_ts_warnings(&file.0) {
                    problems.extend(
                        w.into_iter()
                            .map(|l| format!("{name} {kind} segments {}..{end} joined: {l}", part[0].0)),
                    );
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "GStreamer warnings ({}): {problems:#?}",
        problems.len()
    );
}

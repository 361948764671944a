//! Demuxer tests on the real sample `assets/demo.ts` (x264 Main 1280x720
//! 25 fps + AAC-LC 48 kHz stereo, 10 s; expected values from ffprobe), on
//! the broadcast-like fixtures in `tests/data/broadcast/` (see the README
//! there for what each holds) and on small synthetic streams built here,
//! covering chunking, damage, PMT changes, 33-bit wrap, access-unit assembly
//! across PES, PES without PTS, random access points, LATM, program
//! selection, subtitle/data tracks and the codecs the samples lack.

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use strom_media::codec::aac::write_adts_header;
use strom_media::ts::crc::crc32_mpeg2;
use strom_media::ts::demux::{DemuxEvent, DemuxStats, Demuxer, ProgramInfo};
use strom_media::{Codec, Frame, Track};

const DEMO: &[u8] = include_bytes!("../../../assets/demo.ts");
const WRAP: i64 = 1 << 33;

/// Everything one demux run produced.
struct Run {
    events: Vec<DemuxEvent>,
    stats: DemuxStats,
    tracks: Arc<[Track]>,
    programs: Vec<ProgramInfo>,
    selected: Option<u16>,
    unknown: Vec<(u16, u8)>,
}

impl Run {
    fn frames(&self) -> Vec<&Frame> {
        self.events
            .iter()
            .filter_map(|e| match e {
                DemuxEvent::Frame(f) => Some(f),
                DemuxEvent::Tracks(_) => None,
            })
            .collect()
    }

    fn track_frames(&self, track: u16) -> Vec<&Frame> {
        self.frames().into_iter().filter(|f| f.track == track).collect()
    }

    fn track_events(&self) -> Vec<Arc<[Track]>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                DemuxEvent::Tracks(t) => Some(t.clone()),
                DemuxEvent::Frame(_) => None,
            })
            .collect()
    }
}

/// Demuxes `data` pushed in chunks of the given sizes (cycled), pulling after
/// every push, checking the event invariants as it goes.
fn run_chunked(data: &[u8], sizes: &[usize]) -> Run {
    run_with(Demuxer::new(), data, sizes)
}

/// Like [`run_chunked`] with a demuxer set up by the caller.
fn run_with(mut d: Demuxer, data: &[u8], sizes: &[usize]) -> Run {
    let mut events = Vec::new();
    let mut current: Option<Arc<[Track]>> = None;
    let mut pos = 0;
    let mut i = 0;
    let mut drain = |d: &mut Demuxer, events: &mut Vec<DemuxEvent>| {
        while let Some(e) = d.pull() {
            match &e {
                DemuxEvent::Tracks(t) => {
                    for (i, tr) in t.iter().enumerate() {
                        assert_eq!(usize::from(tr.id), i, "track ids are indices");
                    }
                    current = Some(t.clone());
                }
                DemuxEvent::Frame(f) => {
                    let t = current.as_ref().expect("Tracks before the first frame");
                    let track = t.get(usize::from(f.track)).expect("frame track in the set");
                    assert!((0..WRAP).contains(&f.pts) && (0..WRAP).contains(&f.dts));
                    if track.codec.kind() == strom_media::TrackKind::Audio {
                        assert!(f.keyframe);
                    }
                }
            }
            events.push(e);
        }
    };
    while pos < data.len() {
        let n = sizes[i % sizes.len()].max(1).min(data.len() - pos);
        d.push(&data[pos..pos + n]);
        drain(&mut d, &mut events);
        pos += n;
        i += 1;
    }
    d.flush();
    drain(&mut d, &mut events);
    assert_eq!(d.stats().bytes, data.len() as u64);
    assert!(d.stats().packets <= data.len() as u64 / 188);
    assert_eq!(d.pull(), None, "flush releases every held event");
    Run {
        events,
        stats: d.stats().clone(),
        tracks: d.tracks().clone(),
        programs: d.programs(),
        selected: d.selected_program(),
        unknown: d.take_unknown(),
    }
}

fn run(data: &[u8]) -> Run {
    run_chunked(data, &[data.len().max(1)])
}

fn packets(ts: &[u8]) -> Vec<[u8; 188]> {
    assert_eq!(ts.len() % 188, 0);
    ts.chunks_exact(188).map(|p| p.try_into().expect("188 bytes")).collect()
}

fn pid_of(p: &[u8]) -> u16 {
    (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2])
}

fn set_pid(p: &mut [u8], pid: u16) {
    p[1] = (p[1] & 0xE0) | (pid >> 8) as u8;
    p[2] = pid as u8;
}

/// Offset of the payload of a packet.
fn payload_offset(p: &[u8]) -> usize {
    if p[3] & 0x20 != 0 {
        5 + usize::from(p[4])
    } else {
        4
    }
}

// ---------------------------------------------------------------------------
// A tiny TS writer for synthetic streams.

#[derive(Default)]
struct TsWriter {
    out: Vec<u8>,
    cc: std::collections::HashMap<u16, u8>,
}

impl TsWriter {
    fn next_cc(&mut self, pid: u16) -> u8 {
        let c = self.cc.entry(pid).or_insert(0);
        let v = *c;
        *c = (*c + 1) & 0x0F;
        v
    }

    /// Writes `payload` on `pid`, the first packet with PUSI; pads the last
    /// packet with an adaptation field (PES) or 0xFF stuffing (PSI).
    fn packetize(&mut self, pid: u16, payload: &[u8], psi: bool) {
        let mut rest = payload;
        let mut first = true;
        loop {
            let mut p = vec![0x47, (pid >> 8) as u8, pid as u8, 0];
            if first {
                p[1] |= 0x40;
            }
            let cc = self.next_cc(pid);
            let room = 184;
            if rest.len() >= room || psi {
                p[3] = 0x10 | cc;
                let n = rest.len().min(room);
                p.extend_from_slice(&rest[..n]);
                p.resize(188, 0xFF);
                rest = &rest[n..];
            } else {
                // Adaptation field stuffing so the payload ends the packet.
                p[3] = 0x30 | cc;
                let af_len = 183 - rest.len();
                p.push(af_len as u8);
                if af_len > 0 {
                    p.push(0);
                    p.resize(5 + af_len, 0xFF);
                }
                p.extend_from_slice(rest);
                rest = &[];
            }
            assert_eq!(p.len(), 188);
            self.out.extend_from_slice(&p);
            first = false;
            if rest.is_empty() {
                break;
            }
        }
    }

    /// A PSI section (header + body) with CRC, pointer_field 0.
    fn section(&mut self, pid: u16, table_id: u8, ext: u16, version: u8, body: &[u8]) {
        let mut s = section_bytes(table_id, ext, version, body);
        s.insert(0, 0); // pointer_field
        self.packetize(pid, &s, true);
    }

    fn pat(&mut self, program: u16, pmt_pid: u16) {
        let body = [
            (program >> 8) as u8,
            program as u8,
            0xE0 | (pmt_pid >> 8) as u8,
            pmt_pid as u8,
        ];
        self.section(0, 0x00, 1, 0, &body);
    }

    fn pmt(&mut self, pmt_pid: u16, program: u16, version: u8, streams: &[(u8, u16, &[u8])]) {
        let body = pmt_body(streams);
        self.section(pmt_pid, 0x02, program, version, &body);
    }

    fn pes(&mut self, pid: u16, stream_id: u8, pts: i64, dts: Option<i64>, data: &[u8], with_len: bool) {
        let pes = pes_bytes(stream_id, pts, dts, data, with_len);
        self.packetize(pid, &pes, false);
    }
}

fn section_bytes(table_id: u8, ext: u16, version: u8, body: &[u8]) -> Vec<u8> {
    let len = 5 + body.len() + 4;
    let mut s = vec![
        table_id,
        0xB0 | (len >> 8) as u8,
        len as u8,
        (ext >> 8) as u8,
        ext as u8,
        0xC1 | (version << 1),
        0,
        0,
    ];
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

fn pmt_body(streams: &[(u8, u16, &[u8])]) -> Vec<u8> {
    let pcr = streams.first().map_or(0x1FFF, |s| s.1);
    let mut b = vec![0xE0 | (pcr >> 8) as u8, pcr as u8, 0xF0, 0];
    for (st, pid, desc) in streams {
        b.extend_from_slice(&[
            *st,
            0xE0 | (pid >> 8) as u8,
            *pid as u8,
            0xF0 | (desc.len() >> 8) as u8,
            desc.len() as u8,
        ]);
        b.extend_from_slice(desc);
    }
    b
}

fn ts_field(prefix: u8, v: i64) -> [u8; 5] {
    [
        (prefix << 4) | ((((v >> 30) & 7) as u8) << 1) | 1,
        (v >> 22) as u8,
        ((((v >> 15) & 0x7F) as u8) << 1) | 1,
        (v >> 7) as u8,
        (((v & 0x7F) as u8) << 1) | 1,
    ]
}

fn pes_bytes(stream_id: u8, pts: i64, dts: Option<i64>, data: &[u8], with_len: bool) -> Vec<u8> {
    let mut h = vec![0, 0, 1, stream_id, 0, 0, 0x80];
    match dts {
        Some(d) => {
            h.extend_from_slice(&[0xC0, 10]);
            h.extend_from_slice(&ts_field(3, pts));
            h.extend_from_slice(&ts_field(1, d));
        }
        None => {
            h.extend_from_slice(&[0x80, 5]);
            h.extend_from_slice(&ts_field(2, pts));
        }
    }
    if with_len {
        let len = h.len() - 6 + data.len();
        h[4] = (len >> 8) as u8;
        h[5] = len as u8;
    }
    h.extend_from_slice(data);
    h
}

fn adts(payload: &[u8]) -> Vec<u8> {
    let mut v = write_adts_header(2, 48000, 2, payload.len()).to_vec();
    v.extend_from_slice(payload);
    v
}

// ---------------------------------------------------------------------------
// The real sample.

#[test]
fn demo_tracks_frames_and_timestamps() {
    let r = run(DEMO);
    // Tracks in PMT order: video 0x100 → 0, audio 0x101 → 1.
    assert_eq!(r.tracks.len(), 2);
    let v = &r.tracks[0];
    assert_eq!((v.id, v.codec), (0, Codec::H264));
    assert_eq!((v.params.width, v.params.height), (1280, 720));
    assert_eq!(v.params.codec_string.as_deref(), Some("avc1.4d401f"));
    assert_eq!(v.params.frame_rate, Some((25, 1)));
    let kinds: Vec<u8> = v.params.parameter_sets.iter().map(|p| p[0] & 0x1F).collect();
    assert_eq!(kinds, [7, 8]);
    let a = &r.tracks[1];
    assert_eq!((a.id, a.codec), (1, Codec::Aac));
    assert_eq!(
        (a.params.sample_rate, a.params.channels, a.params.aac_object_type),
        (48000, 2, 2)
    );
    assert_eq!(a.params.codec_string.as_deref(), Some("mp4a.40.2"));

    // ffprobe -show_packets: 250 video packets, 10 keyframes, 470 audio packets.
    let video = r.track_frames(0);
    let audio = r.track_frames(1);
    assert_eq!(video.len(), 250);
    assert_eq!(video.iter().filter(|f| f.keyframe).count(), 10);
    assert_eq!(audio.len(), 470);
    assert!(video[0].keyframe);
    assert_eq!((video[0].pts, video[0].dts), (133_200, 126_000));
    assert_eq!((video[249].pts, video[249].dts), (1_026_000, 1_022_400));
    assert_eq!((audio[0].pts, audio[469].pts), (131_280, 1_031_760));
    for w in video.windows(2) {
        assert!(w[1].dts > w[0].dts, "video DTS increases");
        assert!(w[1].pts >= w[1].dts);
    }
    for w in audio.windows(2) {
        assert_eq!(w[1].pts - w[0].pts, 1920, "1024 samples at 48 kHz");
        assert_eq!(w[1].dts, w[1].pts);
    }
    // Keyframes every 25 frames (one per second).
    for (i, f) in video.iter().enumerate() {
        assert_eq!(f.keyframe, i % 25 == 0, "frame {i}");
    }
    // ffprobe's sizes include the 6-byte AUD (dropped here) and the 7-byte
    // ADTS header (stripped here).
    let vbytes: usize = video.iter().map(|f| f.data.len()).sum();
    let abytes: usize = audio.iter().map(|f| f.data.len()).sum();
    assert_eq!(vbytes, 1_391_230 - 250 * 6);
    assert_eq!(abytes, 122_988 - 470 * 7);
    for f in &video {
        assert_eq!(&f.data[..4], &[0, 0, 0, 1]);
        assert_ne!(f.data[4] & 0x1F, 9, "AUD dropped");
    }
    assert_eq!(audio[0].data.len(), 204 - 7);

    assert_eq!(r.stats.packets, DEMO.len() as u64 / 188);
    assert_eq!(r.stats.frames, 720);
    let s = &r.stats;
    assert_eq!(
        (
            s.sync_errors,
            s.cc_errors,
            s.pes_errors,
            s.pmt_errors,
            s.pmt_changes,
            s.dropped_frames
        ),
        (0, 0, 0, 0, 0, 0)
    );
    // Audio is configured first (its PES completes first), then video with
    // its SPS: two Tracks events, the last equal to `tracks()`.
    let te = r.track_events();
    assert_eq!(te.len(), 2);
    assert_eq!(te[1], r.tracks);
    assert!(matches!(r.events[0], DemuxEvent::Tracks(_)));
}

#[test]
fn byte_by_byte_and_udp_sized_chunks_match_whole() {
    let whole = run(DEMO).events;
    assert_eq!(run_chunked(DEMO, &[1]).events, whole);
    assert_eq!(run_chunked(DEMO, &[7 * 188]).events, whole);
    assert_eq!(run_chunked(DEMO, &[65535]).events, whole);
    assert_eq!(run_chunked(DEMO, &[187, 189, 1, 376, 5000]).events, whole);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn random_chunking_is_invisible(sizes in prop::collection::vec(1usize..70_000, 1..40)) {
        let whole = run(DEMO).events;
        let chunked = run_chunked(DEMO, &sizes).events;
        prop_assert_eq!(chunked, whole);
    }
}

/// (track, pts) → data of the clean run, to check damaged runs emit no
/// corrupt frame.
fn clean_frames() -> std::collections::HashMap<(u16, i64), Bytes> {
    run(DEMO)
        .frames()
        .into_iter()
        .map(|f| ((f.track, f.pts), f.data.clone()))
        .collect()
}

#[test]
fn garbage_between_packets_resyncs_once_each() {
    let clean = clean_frames();
    let pk = packets(DEMO);
    let mut data = b"\x00\x01garbage before the first packet".to_vec();
    let mut inserted = 1;
    let mut seed: u32 = 1;
    for (i, p) in pk.iter().enumerate() {
        data.extend_from_slice(p);
        if i % 997 == 500 {
            // 1..=400 bytes of noise without sync bytes.
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let n = 1 + (seed >> 16) as usize % 400;
            data.extend(
                (0..n)
                    .map(|k| (k as u8 ^ 0x5A) | 0x80)
                    .map(|b| if b == 0x47 { 0x48 } else { b }),
            );
            inserted += 1;
        }
    }
    let r = run_chunked(&data, &[1316, 1000, 777]);
    assert_eq!(r.stats.sync_errors, inserted);
    assert_eq!(r.stats.packets, pk.len() as u64);
    // No packet was lost, so nothing else is damaged.
    assert_eq!((r.stats.cc_errors, r.stats.pes_errors), (0, 0));
    assert_eq!(r.frames().len(), 720);
    for f in r.frames() {
        assert_eq!(clean.get(&(f.track, f.pts)), Some(&f.data));
    }
}

#[test]
fn lost_packets_drop_damaged_pes_and_recover() {
    let clean = clean_frames();
    let pk = packets(DEMO);
    let mut data = Vec::new();
    let mut lost = 0;
    for (i, p) in pk.iter().enumerate() {
        // Lose packets here and there, and a burst around packet 4000.
        if i % 331 == 17 || (4000..4010).contains(&i) {
            lost += 1;
            continue;
        }
        data.extend_from_slice(p);
    }
    assert!(lost > 20);
    let r = run_chunked(&data, &[1316]);
    assert!(r.stats.cc_errors >= 15, "{:?}", r.stats);
    assert!(r.stats.pes_errors >= 10, "{:?}", r.stats);
    let frames = r.frames();
    assert!(frames.len() > 600 && frames.len() < 720, "{}", frames.len());
    // Every emitted frame is intact.
    for f in &frames {
        assert_eq!(
            clean.get(&(f.track, f.pts)),
            Some(&f.data),
            "frame {} {}",
            f.track,
            f.pts
        );
    }
    // Recovery: frames of the last second still come out on both tracks.
    assert!(frames.iter().any(|f| f.track == 0 && f.pts >= 990_000));
    assert!(frames.iter().any(|f| f.track == 1 && f.pts >= 1_000_000));
}

#[test]
fn random_corruption_never_panics_and_recovers() {
    let mut data = DEMO.to_vec();
    let mut seed: u64 = 42;
    let mut rnd = || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize
    };
    // Flip bytes, cut and splice chunks in the first 80%.
    for _ in 0..300 {
        let i = rnd() % (data.len() * 8 / 10);
        data[i] = rnd() as u8;
    }
    for _ in 0..20 {
        let i = rnd() % (data.len() * 8 / 10);
        let n = rnd() % 500;
        data.drain(i..(i + n).min(data.len()));
    }
    let r = run_chunked(&data, &[1000, 3, 65535]);
    assert!(r.stats.sync_errors > 0 && r.stats.cc_errors > 0);
    // The clean tail still produces frames on both tracks.
    let frames = r.frames();
    assert!(frames.iter().any(|f| f.track == 0 && f.pts >= 1_000_000));
    assert!(frames.iter().any(|f| f.track == 1 && f.pts >= 1_000_000));
}

#[test]
fn duplicate_packets_are_ignored() {
    let clean = run(DEMO);
    let mut data = Vec::new();
    for (i, p) in packets(DEMO).iter().enumerate() {
        data.extend_from_slice(p);
        if i % 10 == 3 {
            data.extend_from_slice(p);
        }
    }
    let r = run(&data);
    assert_eq!(r.stats.cc_errors, 0);
    assert_eq!(r.events, clean.events);
}

/// demo.ts with its elementary PIDs remapped and a new PMT of our own.
fn remapped_demo(map: &[(u16, u16)], pmt_streams: &[(u8, u16, &[u8])], version: u8) -> Vec<u8> {
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, version, pmt_streams);
    let mut out = w.out;
    for p in packets(DEMO) {
        let pid = pid_of(&p);
        if pid == 0 || pid == 0x1000 {
            continue;
        }
        if let Some(&(_, to)) = map.iter().find(|(from, _)| *from == pid) {
            let mut p = p;
            set_pid(&mut p, to);
            out.extend_from_slice(&p);
        }
    }
    out
}

#[test]
fn pmt_change_to_audio_only_emits_tracks_and_continues() {
    let b = remapped_demo(&[(0x101, 0x201)], &[(0x0F, 0x201, &[0x0A, 4, b'f', b'r', b'a', 0])], 0);
    let mut data = DEMO.to_vec();
    data.extend_from_slice(&b);
    let r = run_chunked(&data, &[1316]);
    assert_eq!(r.stats.pmt_changes, 1);
    let te = r.track_events();
    let last = te.last().expect("tracks");
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].codec, Codec::Aac);
    assert_eq!(last[0].params.language.as_deref(), Some("fra"));
    assert_eq!(last[0].params.sample_rate, 48000);
    assert_eq!(&r.tracks, last);
    // Frames after the change belong to the new set: audio on track 0.
    let pos = r
        .events
        .iter()
        .position(|e| matches!(e, DemuxEvent::Tracks(t) if t.len() == 1))
        .expect("new track set");
    let after: Vec<&Frame> = r.events[pos..]
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(after.len(), 470);
    assert!(after.iter().all(|f| f.track == 0 && f.data.len() > 100));
    // Before the change: all of the first file, its last video frame included.
    let before = r.events[..pos]
        .iter()
        .filter(|e| matches!(e, DemuxEvent::Frame(_)))
        .count();
    assert_eq!(before, 720);
}

#[test]
fn pmt_change_to_new_pids_keeps_track_ids() {
    let b = remapped_demo(
        &[(0x100, 0x300), (0x101, 0x301)],
        &[(0x1B, 0x300, &[]), (0x0F, 0x301, &[])],
        0,
    );
    let mut data = DEMO.to_vec();
    data.extend_from_slice(&b);
    let r = run_chunked(&data, &[65535]);
    assert_eq!(r.stats.pmt_changes, 1);
    assert_eq!(r.tracks.len(), 2);
    assert_eq!((r.tracks[0].codec, r.tracks[1].codec), (Codec::H264, Codec::Aac));
    assert_eq!(r.track_frames(0).len(), 500);
    assert_eq!(r.track_frames(1).len(), 940);
    assert_eq!(r.stats.dropped_frames, 0);
    // The new video stream starts with a keyframe after the change.
    assert!(r.track_events().len() >= 3);
}

#[test]
fn pmt_version_bump_with_same_streams_is_silent() {
    let b = remapped_demo(
        &[(0x100, 0x100), (0x101, 0x101)],
        &[(0x1B, 0x100, &[]), (0x0F, 0x101, &[])],
        5,
    );
    let mut data = DEMO.to_vec();
    data.extend_from_slice(&b);
    let r = run(&data);
    assert_eq!(r.stats.pmt_changes, 0);
    assert_eq!(r.track_events().len(), 2, "no Tracks event for an unchanged set");
    // The splice breaks the video CC, so the first file's last video PES
    // (unbounded, never known to be complete) is dropped, not emitted.
    assert_eq!(r.frames().len(), 1439);
    assert!(r.stats.cc_errors >= 1);
    assert_eq!(r.stats.pes_errors, 1);
}

/// Rewrites every PTS/DTS of demo.ts by `offset` modulo 2^33.
fn shift_timestamps(offset: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(DEMO.len());
    for mut p in packets(DEMO) {
        let pid = pid_of(&p);
        if p[1] & 0x40 != 0 && (pid == 0x100 || pid == 0x101) {
            let o = payload_offset(&p);
            let flags = p[o + 7] >> 6;
            let shift = |b: &mut [u8], prefix: u8| {
                let v = ((i64::from(b[0]) >> 1) & 7) << 30
                    | i64::from(b[1]) << 22
                    | (i64::from(b[2]) >> 1) << 15
                    | i64::from(b[3]) << 7
                    | i64::from(b[4]) >> 1;
                b.copy_from_slice(&ts_field(prefix, (v + offset).rem_euclid(WRAP)));
            };
            if flags & 2 != 0 {
                shift(&mut p[o + 9..o + 14], if flags == 3 { 3 } else { 2 });
            }
            if flags == 3 {
                shift(&mut p[o + 14..o + 19], 1);
            }
        }
        out.extend_from_slice(&p);
    }
    out
}

#[test]
fn timestamps_wrap_at_33_bits() {
    // Put the wrap 5 s into the stream.
    let offset = WRAP - 126_000 - 5 * 90_000;
    let clean = run(DEMO);
    let r = run(&shift_timestamps(offset));
    let (cf, rf) = (clean.frames(), r.frames());
    assert_eq!(rf.len(), cf.len());
    for (c, f) in cf.iter().zip(&rf) {
        assert_eq!(f.pts, (c.pts + offset).rem_euclid(WRAP));
        assert_eq!(f.dts, (c.dts + offset).rem_euclid(WRAP));
        assert_eq!((f.track, f.keyframe, &f.data), (c.track, c.keyframe, &c.data));
    }
    assert!(rf.iter().any(|f| f.pts > WRAP - 90_000));
    assert!(rf.iter().any(|f| f.pts < 90_000));
}

// ---------------------------------------------------------------------------
// Synthetic streams.

const HEVC_VPS: &[u8] = &[
    0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
    0x00, 0x3f, 0x95, 0x98, 0x09,
];
const HEVC_SPS: &[u8] = &[
    0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3f, 0xa0,
    0x05, 0x02, 0x01, 0x69, 0x65, 0x95, 0x9a, 0x49, 0x32, 0xbc, 0x05, 0xa0, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00,
    0x00, 0x03, 0x03, 0x21,
];
const HEVC_PPS: &[u8] = &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40];

fn annexb(nals: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for n in nals {
        v.extend_from_slice(&[0, 0, 0, 1]);
        v.extend_from_slice(n);
    }
    v
}

#[test]
fn hevc_stream_waits_for_irap_with_parameter_sets() {
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x24, 0x100, &[])]);
    let aud: &[u8] = &[0x46, 0x01, 0x50];
    let trail: &[u8] = &[0x02, 0x01, 0xd0, 0x11, 0x22];
    let idr: &[u8] = &[0x26, 0x01, 0xaf, 0x33, 0x44];
    let cra: &[u8] = &[0x2a, 0x01, 0xaf, 0x55];
    // Mid-GOP start, an IRAP without parameter sets, then a real keyframe.
    w.pes(0x100, 0xE0, 1000, None, &annexb(&[aud, trail]), false);
    w.pes(0x100, 0xE0, 4600, None, &annexb(&[aud, cra]), false);
    let key = annexb(&[aud, HEVC_VPS, HEVC_SPS, HEVC_PPS, idr]);
    w.pes(0x100, 0xE0, 8200, Some(7000), &key, false);
    w.pes(0x100, 0xE0, 11800, None, &annexb(&[aud, trail]), false);
    w.pes(0x100, 0xE0, 15400, None, &annexb(&[aud, cra]), false);
    let r = run(&w.out);
    assert_eq!(r.stats.dropped_frames, 2);
    let t = &r.tracks[0];
    assert_eq!(t.codec, Codec::H265);
    assert_eq!((t.params.width, t.params.height), (640, 360));
    assert_eq!(t.params.frame_rate, Some((25, 1)));
    assert_eq!(t.params.codec_string.as_deref(), Some("hvc1.1.6.L63.90"));
    assert_eq!(t.params.parameter_sets, vec![HEVC_VPS, HEVC_SPS, HEVC_PPS]);
    let f = r.frames();
    assert_eq!(f.len(), 3);
    assert_eq!((f[0].pts, f[0].dts, f[0].keyframe), (8200, 7000, true));
    assert_eq!(&f[0].data[..], &key[7..], "AUD dropped, rest as carried");
    assert_eq!((f[1].pts, f[1].keyframe), (11800, false));
    assert_eq!((f[2].pts, f[2].keyframe), (15400, true), "CRA is IRAP");
    assert_eq!(r.track_events().len(), 1);
}

#[test]
fn resolution_change_emits_tracks_before_its_frame() {
    const SPS_A: &[u8] = &[
        0x67, 0x4d, 0x40, 0x1f, 0xec, 0xa0, 0x28, 0x02, 0xdd, 0x80, 0x88, 0x00, 0x00, 0x03, 0x00, 0x08, 0x00, 0x00,
        0x03, 0x01, 0x90, 0x78, 0xc1, 0x8c, 0xb0,
    ];
    const SPS_B: &[u8] = &[
        0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x0f, 0xa4, 0x00,
        0x03, 0xa9, 0x80, 0x3c, 0x60, 0xc6, 0x58,
    ];
    let pps: &[u8] = &[0x68, 0xef, 0xbc, 0x80];
    let idr: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x10];
    let p: &[u8] = &[0x41, 0x9a, 0x02];
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x1B, 0x100, &[])]);
    w.pes(0x100, 0xE0, 0, None, &annexb(&[SPS_A, pps, idr]), false);
    w.pes(0x100, 0xE0, 3600, None, &annexb(&[p]), false);
    w.pes(0x100, 0xE0, 7200, None, &annexb(&[SPS_A, pps, idr]), false);
    w.pes(0x100, 0xE0, 10800, None, &annexb(&[SPS_B, pps, idr]), false);
    let r = run(&w.out);
    let dims: Vec<(u16, u16)> = r
        .track_events()
        .iter()
        .map(|t| (t[0].params.width, t[0].params.height))
        .collect();
    assert_eq!(dims, [(1280, 720), (1920, 1080)]);
    // Order: Tracks(720p), 3 frames, Tracks(1080p), the 1080p frame.
    let shape: Vec<char> = r
        .events
        .iter()
        .map(|e| if matches!(e, DemuxEvent::Tracks(_)) { 'T' } else { 'F' })
        .collect();
    assert_eq!(shape.iter().collect::<String>(), "TFFFTF");
    assert_eq!(r.tracks[0].params.codec_string.as_deref(), Some("avc1.640028"));
}

#[test]
fn aac_frames_split_crc_garbage_and_spanning_pes() {
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x0F, 0x101, &[])]);
    // PES 1: three frames, garbage between the 2nd and 3rd.
    let mut p1 = adts(&[1; 100]);
    p1.extend(adts(&[2; 50]));
    p1.extend([0x12, 0x34, 0xFF]);
    p1.extend(adts(&[3; 60]));
    w.pes(0x101, 0xC0, 90_000, None, &p1, true);
    // PES 2: a CRC-protected frame, then the start of a frame cut at the PES end.
    let mut crc_frame = adts(&[4; 30]);
    crc_frame[1] &= !1;
    crc_frame.splice(7..7, [0xAB, 0xCD]);
    let len = crc_frame.len();
    crc_frame[3] = (crc_frame[3] & !3) | (len >> 11) as u8;
    crc_frame[4] = (len >> 3) as u8;
    crc_frame[5] = (crc_frame[5] & 0x1F) | (((len & 7) as u8) << 5);
    let spanning = adts(&[5; 80]);
    let mut p2 = crc_frame;
    p2.extend_from_slice(&spanning[..40]);
    w.pes(0x101, 0xC0, 95_760, None, &p2, true);
    // PES 3: the rest of that frame, then one more.
    let mut p3 = spanning[40..].to_vec();
    p3.extend(adts(&[6; 10]));
    w.pes(0x101, 0xC0, 101_520, None, &p3, true);
    let r = run(&w.out);
    let f = r.frames();
    let got: Vec<(i64, Vec<u8>)> = f.iter().map(|f| (f.pts, f.data.to_vec())).collect();
    assert_eq!(
        got,
        vec![
            (90_000, vec![1; 100]),
            (91_920, vec![2; 50]),
            (93_840, vec![3; 60]),
            (95_760, vec![4; 30]),
            (97_680, vec![5; 80]),
            (101_520, vec![6; 10]),
        ]
    );
    assert_eq!(r.stats.pes_errors, 1, "garbage in PES 1");
    let t = &r.tracks[0];
    assert_eq!((t.params.sample_rate, t.params.channels), (48000, 2));
}

/// A PES without PTS is no error any more, but before any PTS there is
/// nothing to time it from: its frame is dropped (counted). An oversize PES
/// is dropped with kind `oversize`, and the AAC timing chain restarts at
/// the next PTS.
#[test]
fn pes_without_pts_before_any_pts_and_oversize_are_dropped() {
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x0F, 0x101, &[])]);
    let mut no_pts = vec![0, 0, 1, 0xC0, 0, 0, 0x80, 0x00, 0];
    no_pts.extend(adts(&[1; 20]));
    w.packetize(0x101, &no_pts, false);
    w.pes(0x101, 0xC0, 1000, None, &adts(&[2; 20]), false);
    // 17 MiB PES of a stream with unbounded length.
    let big = vec![0xEE; 17 << 20];
    w.pes(0x101, 0xC0, 5000, None, &big, false);
    w.packetize(0x101, &no_pts, false);
    w.pes(0x101, 0xC0, 9000, None, &adts(&[3; 20]), false);
    let r = run_chunked(&w.out, &[65535]);
    let pts: Vec<i64> = r.frames().iter().map(|f| f.pts).collect();
    assert_eq!(pts, [1000, 9000]);
    assert_eq!(
        (r.stats.pes_errors, r.stats.dropped_frames, r.stats.interpolated),
        (1, 2, 0)
    );
    let e = r.stats.last_error.expect("last error");
    assert_eq!((e.pid, e.kind.name()), (0x101, "oversize"));
    // The offset is that of a packet of the big PES.
    assert_eq!(e.offset % 188, 0);
    assert_eq!(w.out[e.offset as usize], 0x47);
    assert!(e.offset > 188 * 3 && e.offset < (17 << 20));
}

#[test]
fn ac3_private_stream_and_mpeg_audio() {
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    let lang: &[u8] = &[0x0A, 4, b'd', b'e', b'u', 0, 0x6A, 1, 0];
    w.pmt(
        0x1000,
        1,
        0,
        &[
            (0x86, 0x1F0, &[]),
            (0x06, 0x110, lang),
            (0x03, 0x120, &[]),
            (0x06, 0x130, &[0x59, 0]),
        ],
    );
    let ac3 = [0x0B, 0x77, 0, 0, 0x1E, 0x40, 0xE1, 0xF0, 9, 9, 9];
    w.pes(0x110, 0xBD, 500, None, &ac3, true);
    let mp2 = [0xFF, 0xFD, 0x84, 0x00, 1, 2, 3];
    w.pes(0x120, 0xC0, 700, None, &mp2, false);
    let r = run(&w.out);
    // Since SCTE-35 and DVB subtitles are carried, they are tracks too, in
    // PMT order (they used to be skipped).
    let codecs: Vec<Codec> = r.tracks.iter().map(|t| t.codec).collect();
    assert_eq!(
        codecs,
        [Codec::Scte35, Codec::Ac3, Codec::MpegAudio, Codec::DvbSubtitle]
    );
    let ac3_track = &r.tracks[1];
    assert_eq!(ac3_track.params.language.as_deref(), Some("deu"));
    assert_eq!(&ac3_track.params.descriptors[..], &[0x6A, 1, 0], "ISO 639 not carried");
    assert_eq!((ac3_track.params.sample_rate, ac3_track.params.channels), (48000, 6));
    assert_eq!(r.tracks[2].params.sample_rate, 48000);
    let f = r.frames();
    assert_eq!(f.len(), 2);
    assert_eq!((f[0].track, f[0].pts, &f[0].data[..]), (1, 500, &ac3[..]));
    assert_eq!((f[1].track, f[1].pts, &f[1].data[..]), (2, 700, &mp2[..]));
}

#[test]
fn sections_spanning_packets_pointer_field_and_bad_crc() {
    // A PMT too long for one packet: many unknown streams with descriptors
    // first, the AAC stream last.
    let desc = [0x05u8; 30];
    let mut streams: Vec<(u8, u16, &[u8])> = (0..8).map(|i| (0x15, 0x200 + i, &desc[..])).collect();
    streams.push((0x0F, 0x101, &[]));
    let pmt = section_bytes(0x02, 1, 0, &pmt_body(&streams));
    assert!(pmt.len() > 184);

    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    // Bad CRC first: ignored and counted.
    let mut bad = pmt.clone();
    bad[20] ^= 1;
    bad.insert(0, 0);
    w.packetize(0x1000, &bad, true);
    // Then the good one, preceded in its first packet by the tail of an
    // unfinished section (pointer_field skips it) and split over packets.
    let mut first = vec![3, 0xAA, 0xBB, 0xCC];
    first.extend_from_slice(&pmt);
    w.packetize(0x1000, &first, true);
    w.pes(0x101, 0xC0, 3000, None, &adts(&[7; 33]), true);
    let r = run(&w.out);
    assert_eq!(r.stats.pmt_errors, 1);
    assert_eq!(
        r.stats.last_error.map(|e| (e.pid, e.kind.name())),
        Some((0x1000, "psi"))
    );
    // The eight metadata streams (0x15) are not carried: counted once each.
    assert_eq!(r.stats.unknown_streams, 8);
    assert_eq!(r.tracks.len(), 1);
    assert_eq!(r.tracks[0].codec, Codec::Aac);
    assert_eq!(r.frames().len(), 1);
}

#[test]
fn several_sections_in_one_packet_follow_the_right_program() {
    // Two PMT sections in one packet: program 2 (ignored) then program 1.
    let other = section_bytes(0x02, 2, 0, &pmt_body(&[(0x1B, 0x300, &[])]));
    let ours = section_bytes(0x02, 1, 0, &pmt_body(&[(0x0F, 0x101, &[])]));
    let mut payload = vec![0];
    payload.extend_from_slice(&other);
    payload.extend_from_slice(&ours);
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.packetize(0x1000, &payload, true);
    let r = run(&w.out);
    assert_eq!(r.tracks.len(), 1);
    assert_eq!(r.tracks[0].codec, Codec::Aac);
    assert_eq!(r.stats.pmt_errors, 0);
}

#[test]
fn empty_and_garbage_inputs() {
    let r = run(&[]);
    assert!(r.events.is_empty());
    let noise: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let r = run_chunked(&noise, &[1500]);
    assert!(r.frames().is_empty());
    assert!(r.stats.packets < 50);
    // All sync bytes: "packets" of a PID nobody announced, harmless.
    let r = run(&vec![0x47; 188 * 50]);
    assert!(r.frames().is_empty() && r.tracks.is_empty());
    assert_eq!(r.stats.packets, 50);
}

#[test]
fn total_buffered_pes_bytes_are_bounded() {
    // Three unbounded video PES of 12 MiB each, interleaved: each is under
    // the per-PES limit but together they pass the 32 MiB total.
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(
        0x1000,
        1,
        0,
        &[(0x1B, 0x100, &[]), (0x1B, 0x101, &[]), (0x1B, 0x102, &[])],
    );
    let head = w.out.clone();
    let big = vec![0x11; 12 << 20];
    let per_pid: Vec<Vec<[u8; 188]>> = (0x100..0x103)
        .map(|pid| {
            let mut w = TsWriter::default();
            w.pes(pid, 0xE0, 0, None, &big, false);
            packets(&w.out)
        })
        .collect();
    let mut data = head;
    for i in 0..per_pid[0].len() {
        for p in &per_pid {
            data.extend_from_slice(&p[i]);
        }
    }
    let r = run_chunked(&data, &[65535]);
    // One is dropped as oversize; the other two complete at flush and,
    // holding no NAL unit at all, count as PES errors.
    assert_eq!(r.stats.pes_errors, 3, "{:?}", r.stats);
    assert_eq!(r.stats.dropped_frames, 0);
    assert!(r.frames().is_empty());
}

// ---------------------------------------------------------------------------
// Helpers for PES without PTS, H.264 bitstreams and reading PES back.

/// A PES with optional PTS (and DTS when it differs).
fn pes_opt(stream_id: u8, ts: Option<(i64, i64)>, data: &[u8], with_len: bool) -> Vec<u8> {
    match ts {
        Some((pts, dts)) => pes_bytes(stream_id, pts, (dts != pts).then_some(dts), data, with_len),
        None => {
            let mut h = vec![0, 0, 1, stream_id, 0, 0, 0x80, 0x00, 0];
            if with_len {
                let len = 3 + data.len();
                h[4] = (len >> 8) as u8;
                h[5] = len as u8;
            }
            h.extend_from_slice(data);
            h
        }
    }
}

/// (PTS, DTS) of a PES if it has a PTS, and its payload.
type PesUnit = (Option<(i64, i64)>, Vec<u8>);

/// The PES on `pid` of a TS, in order.
fn pes_units(ts: &[u8], pid: u16) -> Vec<PesUnit> {
    let mut units: Vec<Vec<u8>> = Vec::new();
    for p in packets(ts) {
        if pid_of(&p) != pid || p[3] & 0x10 == 0 {
            continue;
        }
        let payload = &p[payload_offset(&p)..];
        if p[1] & 0x40 != 0 {
            units.push(payload.to_vec());
        } else if let Some(u) = units.last_mut() {
            u.extend_from_slice(payload);
        }
    }
    let read = |b: &[u8]| {
        let b = |i: usize| i64::from(b[i]);
        ((b(0) >> 1) & 7) << 30 | b(1) << 22 | (b(2) >> 1) << 15 | b(3) << 7 | b(4) >> 1
    };
    units
        .into_iter()
        .map(|u| {
            let flags = u[7] >> 6;
            let end = 9 + usize::from(u[8]);
            let len = usize::from(u16::from_be_bytes([u[4], u[5]]));
            let stop = if len == 0 { u.len() } else { 6 + len };
            let ts = match flags {
                2 => Some((read(&u[9..14]), read(&u[9..14]))),
                3 => Some((read(&u[9..14]), read(&u[14..19]))),
                _ => None,
            };
            (ts, u[end..stop].to_vec())
        })
        .collect()
}

/// MSB-first bit writer for slice headers and SEI in tests.
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    n: usize,
}

impl Bits {
    fn put(&mut self, v: u64, bits: u32) -> &mut Self {
        for i in (0..bits).rev() {
            if self.n.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if let Some(last) = self.bytes.last_mut() {
                *last |= (((v >> i) & 1) as u8) << (7 - self.n % 8);
            }
            self.n += 1;
        }
        self
    }

    fn ue(&mut self, v: u32) -> &mut Self {
        let x = u64::from(v) + 1;
        let len = 64 - x.leading_zeros();
        self.put(0, len - 1).put(x, len)
    }

    fn done(mut self) -> Vec<u8> {
        self.put(1, 1);
        self.bytes
    }
}

/// SPS of assets/demo.ts: x264 Main@3.1, 1280x720, 25 fps, progressive,
/// log2_max_frame_num 4.
const SPS_720P: &[u8] = &[
    0x67, 0x4d, 0x40, 0x1f, 0xec, 0xa0, 0x28, 0x02, 0xdd, 0x80, 0x88, 0x00, 0x00, 0x03, 0x00, 0x08, 0x00, 0x00, 0x03,
    0x01, 0x90, 0x78, 0xc1, 0x8c, 0xb0,
];
/// x264 High@3.0 interlaced (frame_mbs_only 0) 720x576, 25 fps.
const SPS_576I: &[u8] = &[
    0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xb4, 0x24, 0xdf, 0xf8, 0x02, 0x00, 0x01, 0x68, 0x80, 0x00, 0x00, 0x03,
    0x00, 0x80, 0x00, 0x00, 0x19, 0x0f, 0x8a, 0x14, 0xcb,
];
const PPS: &[u8] = &[0x68, 0xef, 0xbc, 0x80];
const AUD: &[u8] = &[0x09, 0xF0];

/// A slice NAL unit: header byte, first_mb, slice_type, pps 0, frame_num
/// (`frame_bits` bits), optional field flags, then `body` filler bytes
/// without zeros.
fn slice(nal_header: u8, first_mb: u32, slice_type: u32, frame_bits: u32, field: Option<bool>, body: usize) -> Vec<u8> {
    let mut w = Bits::default();
    w.ue(first_mb).ue(slice_type).ue(0).put(0, frame_bits);
    if let Some(bottom) = field {
        w.put(1, 1).put(u64::from(bottom), 1);
    }
    let mut v = vec![nal_header];
    v.extend(w.done());
    v.extend((0..body).map(|i| 0x11 + (i % 200) as u8));
    v
}

/// An SEI NAL unit with a recovery point (payloadType 6).
fn recovery_sei(cnt: u32) -> Vec<u8> {
    let mut w = Bits::default();
    w.ue(cnt).put(1, 1).put(0, 1).put(0, 2);
    let payload = w.done();
    let mut v = vec![0x06, 6, payload.len() as u8];
    v.extend(payload);
    v.push(0x80);
    v
}

/// (PTS, DTS, keyframe, length, FNV-1a of the data) of a track's frames:
/// exact, and short to print when a comparison fails.
fn frames_of(r: &Run, track: u16) -> Vec<(i64, i64, bool, usize, u64)> {
    let fnv = |d: &[u8]| {
        d.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    };
    r.track_frames(track)
        .iter()
        .map(|f| (f.pts, f.dts, f.keyframe, f.data.len(), fnv(&f.data)))
        .collect()
}

// ---------------------------------------------------------------------------
// Random access points.

#[test]
fn h264_recovery_point_i_pictures_are_random_access_points() {
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x1B, 0x100, &[])]);
    let p = slice(0x41, 0, 0, 4, None, 20);
    let i_slice = slice(0x41, 0, 7, 4, None, 30); // non-IDR, all slices I
                                                  // Joined mid-GOP: P pictures, then an I picture with SPS/PPS but no
                                                  // recovery point (not a RAP), then one with a recovery point.
    w.pes(0x100, 0xE0, 3600, None, &annexb(&[AUD, &p]), false);
    w.pes(0x100, 0xE0, 7200, None, &annexb(&[AUD, SPS_720P, PPS, &i_slice]), false);
    w.pes(0x100, 0xE0, 10800, None, &annexb(&[AUD, &p]), false);
    let sei = recovery_sei(0);
    w.pes(
        0x100,
        0xE0,
        14400,
        None,
        &annexb(&[AUD, SPS_720P, PPS, &sei, &i_slice]),
        false,
    );
    w.pes(0x100, 0xE0, 18000, None, &annexb(&[AUD, &p]), false);
    // A P picture with a recovery point (intra refresh) is not a RAP; an I
    // picture with recovery_frame_cnt > 0 is.
    w.pes(0x100, 0xE0, 21600, None, &annexb(&[AUD, &sei, &p]), false);
    let sei3 = recovery_sei(3);
    w.pes(0x100, 0xE0, 25200, None, &annexb(&[AUD, &sei3, &i_slice]), false);
    let r = run(&w.out);
    let f = r.track_frames(0);
    let got: Vec<(i64, bool)> = f.iter().map(|x| (x.pts, x.keyframe)).collect();
    assert_eq!(got, [(14400, true), (18000, false), (21600, false), (25200, true)]);
    assert_eq!(r.stats.dropped_frames, 3, "the three access units before the first RAP");
    assert_eq!(
        f[0].data[..],
        annexb(&[SPS_720P, PPS, &sei, &i_slice]),
        "AUD dropped, SEI kept"
    );
    assert_eq!(r.tracks[0].params.width, 1280);
}

#[test]
fn h264_field_pictures_are_split_and_timed_half_a_frame_apart() {
    let sps = strom_media::codec::h264::parse_sps(SPS_576I).expect("valid SPS");
    assert!(!sps.frame_mbs_only);
    let bits = u32::from(sps.log2_max_frame_num);
    let top = slice(0x65, 0, 7, bits, Some(false), 40);
    let bottom = slice(0x41, 0, 5, bits, Some(true), 40);
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x1B, 0x100, &[])]);
    // One PES per frame, both fields in it, each field its own access unit.
    for k in 0..3i64 {
        let mut es = annexb(&[AUD]);
        if k == 0 {
            es.extend(annexb(&[SPS_576I, PPS]));
        }
        es.extend(annexb(&[&top, AUD, &bottom]));
        w.pes(
            0x100,
            0xE0,
            10_000 + 3600 * k + 3600,
            Some(10_000 + 3600 * k),
            &es,
            false,
        );
    }
    let r = run(&w.out);
    let ts: Vec<(i64, i64)> = r.track_frames(0).iter().map(|f| (f.dts, f.pts)).collect();
    // 25 fps: a field lasts 1800 ticks; PTS − DTS (3600) carries over.
    assert_eq!(
        ts,
        [
            (10_000, 13_600),
            (11_800, 15_400),
            (13_600, 17_200),
            (15_400, 19_000),
            (17_200, 20_800),
            (19_000, 22_600)
        ]
    );
    assert_eq!(r.stats.interpolated, 3);
    assert_eq!(r.tracks[0].params.height, 576);
}

// ---------------------------------------------------------------------------
// Access units across PES.

/// Synthetic H.264 access units: an IDR with parameter sets, then P
/// pictures, some of them in several slices; sizes vary.
fn synthetic_aus(sizes: &[usize]) -> Vec<Vec<u8>> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            if i == 0 {
                annexb(&[AUD, SPS_720P, PPS, &slice(0x65, 0, 7, 4, None, n)])
            } else if n % 3 == 0 {
                // Two slices: the second does not start a picture.
                annexb(&[
                    AUD,
                    &slice(0x41, 0, 5, 4, None, n / 2),
                    &slice(0x41, 40, 5, 4, None, n / 2),
                ])
            } else {
                annexb(&[AUD, &slice(0x41, 0, 5, 4, None, n)])
            }
        })
        .collect()
}

/// One PES with PTS per access unit (PTS = DTS + 7200, 25 fps).
fn ts_one_au_per_pes(aus: &[Vec<u8>], with_len: bool) -> Vec<u8> {
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x1B, 0x100, &[])]);
    for (i, au) in aus.iter().enumerate() {
        let dts = 90_000 + 3600 * i as i64;
        let pes = pes_opt(0xE0, Some((dts + 7200, dts)), au, with_len && au.len() < 60_000);
        w.packetize(0x100, &pes, false);
    }
    w.out
}

/// The same access units as one byte stream cut into PES at `cuts`
/// (positions in the stream). A PES gets the PTS of the first access unit
/// that starts in it, none if none does.
fn ts_split(aus: &[Vec<u8>], cuts: &[usize], with_len: bool) -> Vec<u8> {
    let es: Vec<u8> = aus.concat();
    let mut starts = Vec::new();
    let mut pos = 0;
    for au in aus {
        starts.push(pos);
        pos += au.len();
    }
    let mut bounds: Vec<usize> = cuts
        .iter()
        .map(|&c| c % es.len().max(1))
        .chain(starts.iter().copied())
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    bounds.push(es.len());
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x1B, 0x100, &[])]);
    for win in bounds.windows(2) {
        let (a, b) = (win[0], win[1]);
        if a == b {
            continue;
        }
        // An AU starts in [a, b) when its NAL header (5 bytes in) is there.
        let first = starts.iter().position(|&s| s + 4 >= a && s + 4 < b);
        let ts = first.map(|i| {
            let dts = 90_000 + 3600 * i as i64;
            (dts + 7200, dts)
        });
        let pes = pes_opt(0xE0, ts, &es[a..b], with_len);
        w.packetize(0x100, &pes, false);
    }
    w.out
}

#[test]
fn access_units_split_over_pes_without_pts_are_reassembled() {
    let aus = synthetic_aus(&[300, 40, 900, 10, 2000, 33, 600]);
    let whole = run(&ts_one_au_per_pes(&aus, false));
    let reference = frames_of(&whole, 0);
    assert_eq!(reference.len(), aus.len());
    for (f, au) in whole.track_frames(0).iter().zip(&aus) {
        assert_eq!(f.data[..], au[6..], "AUD stripped, the rest as sent");
    }
    // Cuts inside start codes, NAL headers and slices; bounded and not.
    for with_len in [false, true] {
        let split = run(&ts_split(
            &aus,
            &[5, 7, 333, 334, 1300, 1302, 1303, 3000, 3901],
            with_len,
        ));
        assert_eq!(frames_of(&split, 0), reference, "with_len {with_len}");
        assert_eq!(split.stats.pes_errors, 0);
        assert_eq!(split.stats.interpolated, 0, "every AU starts in a PES with PTS");
    }
}

#[test]
fn an_access_unit_over_thousands_of_small_pes_demuxes_in_linear_time() {
    // An 8 MiB IDR picture in 150-byte PES without PTS: joining everything
    // held on every PES would copy ~220 GB here (tens of seconds); appending
    // copies at most 3 × 8 MiB. The exact copy bound is a unit test of the
    // video assembler; this checks the time end to end, generously.
    let aus = synthetic_aus(&[8 << 20, 700, 900]);
    let reference = frames_of(&run(&ts_one_au_per_pes(&aus, false)), 0);
    assert_eq!(reference.len(), 3);
    let cuts: Vec<usize> = (1..aus[0].len() / 150).map(|i| i * 150).collect();
    for with_len in [false, true] {
        let ts = ts_split(&aus, &cuts, with_len);
        let t0 = std::time::Instant::now();
        let r = run_chunked(&ts, &[1316]);
        let took = t0.elapsed();
        assert!(
            took < std::time::Duration::from_secs(5),
            "{took:?} (with_len {with_len})"
        );
        assert_eq!(frames_of(&r, 0), reference, "with_len {with_len}");
        assert_eq!(r.track_frames(0)[0].data[..], aus[0][6..]);
        assert_eq!((r.stats.pes_errors, r.stats.interpolated), (0, 0));
    }
}

#[test]
fn several_access_units_in_one_pes_are_split_and_interpolated() {
    let aus = synthetic_aus(&[300, 40, 50, 60, 70]);
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x1B, 0x100, &[])]);
    w.pes(0x100, 0xE0, 97_200, Some(90_000), &aus[0], false);
    // Three access units in one PES with one PTS, then one in a PES
    // without PTS: DTS steps by the SPS frame duration, PTS keeps PTS − DTS.
    w.pes(0x100, 0xE0, 100_800, Some(93_600), &aus[1..4].concat(), false);
    w.packetize(0x100, &pes_opt(0xE0, None, &aus[4], false), false);
    let r = run(&w.out);
    let ts: Vec<(i64, i64)> = r.track_frames(0).iter().map(|f| (f.dts, f.pts)).collect();
    let want: Vec<(i64, i64)> = (0..5).map(|i| (90_000 + 3600 * i, 97_200 + 3600 * i)).collect();
    assert_eq!(ts, want);
    assert_eq!(r.stats.interpolated, 3);
    for (f, au) in r.track_frames(0).iter().zip(&aus) {
        assert_eq!(f.data[..], au[6..]);
    }
}

/// The demuxer keeps a frame's place in the event order while it waits to
/// learn whether a bounded PES held the whole access unit, so audio that
/// arrives meanwhile still comes after it; flush releases it.
#[test]
fn held_frames_keep_their_place_in_the_event_order() {
    let aus = synthetic_aus(&[3000, 500]);
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x1B, 0x100, &[]), (0x0F, 0x101, &[])]);
    w.pes(0x100, 0xE0, 90_000, None, &aus[0], true);
    w.pes(0x101, 0xC0, 91_000, None, &adts(&[1; 20]), true);
    w.pes(0x100, 0xE0, 93_600, None, &aus[1], true);
    let second_video = packets(&w.out)
        .iter()
        .rposition(|p| pid_of(p) == 0x100 && p[1] & 0x40 != 0)
        .expect("second video PES")
        * 188;
    let mut d = Demuxer::new();
    let mut order = Vec::new();
    let pull = |d: &mut Demuxer, order: &mut Vec<(u16, i64)>| {
        while let Some(e) = d.pull() {
            if let DemuxEvent::Frame(f) = e {
                order.push((f.track, f.pts));
            }
        }
    };
    // The first video PES is complete, but nothing showed yet that this
    // stream's bounded PES hold whole access units: its frame is held, and
    // the audio frame behind it too.
    d.push(&w.out[..second_video]);
    pull(&mut d, &mut order);
    assert!(order.is_empty(), "{order:?}");
    // The next video PES starts an access unit: both come out, in order.
    // Its own (smaller) PES is then trusted at once.
    d.push(&w.out[second_video..]);
    pull(&mut d, &mut order);
    assert_eq!(order, [(0, 90_000), (1, 91_000), (0, 93_600)]);
}

/// Cut positions that split every access unit into PES of at most `max`
/// bytes, as encoders do that split pictures at a maximum PES size.
fn max_size_cuts(aus: &[Vec<u8>], max: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut pos = 0;
    for au in aus {
        cuts.extend((max..au.len()).step_by(max).map(|k| pos + k));
        pos += au.len();
    }
    cuts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Access-unit assembly does not depend on how the elementary stream is
    /// cut into PES (one per access unit with PTS, or with PTS only where an
    /// access unit starts) nor on how the TS is cut into reads. PES without
    /// PES_packet_length are cut anywhere. PES with it are cut as encoders
    /// do, at a maximum size (see the module docs of the demuxer: a bounded
    /// PES smaller than a whole picture seen before is taken as whole).
    #[test]
    fn access_units_are_invariant_to_pes_and_read_splits(
        sizes in prop::collection::vec(1usize..3000, 2..14),
        cuts in prop::collection::vec(0usize..1_000_000, 0..30),
        max in 20usize..2000,
        reads in prop::collection::vec(1usize..3000, 1..8),
        with_len in any::<bool>(),
    ) {
        let aus = synthetic_aus(&sizes);
        let reference = frames_of(&run(&ts_one_au_per_pes(&aus, with_len)), 0);
        prop_assert_eq!(reference.len(), aus.len());
        let cuts = if with_len { max_size_cuts(&aus, max) } else { cuts };
        let split = ts_split(&aus, &cuts, with_len);
        let r = run_chunked(&split, &reads);
        prop_assert_eq!(frames_of(&r, 0), reference);
        prop_assert_eq!((r.stats.pes_errors, r.stats.dropped_frames), (0, 0));
    }
}

// ---------------------------------------------------------------------------
// Audio without PTS.

#[test]
fn aac_in_pes_without_pts_continues_the_sample_count() {
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x0F, 0x101, &[])]);
    let three: Vec<u8> = [adts(&[1; 30]), adts(&[2; 30]), adts(&[3; 30])].concat();
    w.pes(0x101, 0xC0, 90_000, None, &three, true);
    // No PTS; the second frame is cut by the PES end and completed later.
    let next = [adts(&[4; 30]), adts(&[5; 30])].concat();
    w.packetize(0x101, &pes_opt(0xC0, None, &next[..50], true), false);
    w.packetize(0x101, &pes_opt(0xC0, None, &next[50..], true), false);
    w.pes(0x101, 0xC0, 200_000, None, &adts(&[6; 30]), true);
    let r = run(&w.out);
    let pts: Vec<i64> = r.frames().iter().map(|f| f.pts).collect();
    assert_eq!(pts, [90_000, 91_920, 93_840, 95_760, 97_680, 200_000]);
    assert_eq!(r.stats.interpolated, 2);
    assert_eq!(r.frames()[4].data[..], [5; 30]);
}

/// MPEG-1 layer II frame, 48 kHz, 192 kbit/s: 576 bytes, 1152 samples.
fn mp2_frame(fill: u8) -> Vec<u8> {
    let mut f = vec![fill; 576];
    f[..4].copy_from_slice(&[0xFF, 0xFD, 0xA4, 0xC0]);
    f
}

/// AC-3 frame, 48 kHz, frmsizecod 0x1E: 1792 bytes, 1536 samples.
fn ac3_frame(fill: u8) -> Vec<u8> {
    let mut f = vec![fill; 1792];
    f[..8].copy_from_slice(&[0x0B, 0x77, 0, 0, 0x1E, 0x40, 0xE1, 0xF0]);
    f
}

/// E-AC-3 frame, 48 kHz, 3 blocks (numblkscod 2): 512 bytes, 768 samples.
fn eac3_frame(fill: u8) -> Vec<u8> {
    let mut f = vec![fill; 512];
    f[..6].copy_from_slice(&[0x0B, 0x77, 0x00, 0xFF, 0x24, 0x00]);
    f
}

#[test]
fn opaque_audio_without_pts_is_timed_from_frame_headers() {
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(
        0x1000,
        1,
        0,
        &[(0x03, 0x110, &[]), (0x81, 0x111, &[]), (0x87, 0x112, &[])],
    );
    // MPEG audio: 2 frames (4320 ticks), then a PES without PTS.
    w.pes(0x110, 0xC0, 10_000, None, &[mp2_frame(1), mp2_frame(2)].concat(), true);
    w.packetize(0x110, &pes_opt(0xC0, None, &mp2_frame(3), true), false);
    // AC-3: one frame (2880 ticks) per PES.
    w.pes(0x111, 0xBD, 20_000, None, &ac3_frame(4), true);
    w.packetize(0x111, &pes_opt(0xBD, None, &ac3_frame(5), true), false);
    w.packetize(0x111, &pes_opt(0xBD, None, &ac3_frame(6), true), false);
    // E-AC-3: 3 blocks of 256 samples = 1440 ticks.
    w.pes(0x112, 0xBD, 30_000, None, &eac3_frame(7), true);
    w.packetize(0x112, &pes_opt(0xBD, None, &eac3_frame(8), true), false);
    let r = run(&w.out);
    let pts = |t: u16| r.track_frames(t).iter().map(|f| (f.pts, f.dts)).collect::<Vec<_>>();
    assert_eq!(pts(0), [(10_000, 10_000), (14_320, 14_320)]);
    assert_eq!(pts(1), [(20_000, 20_000), (22_880, 22_880), (25_760, 25_760)]);
    assert_eq!(pts(2), [(30_000, 30_000), (31_440, 31_440)]);
    assert_eq!(r.stats.interpolated, 4);
    assert_eq!(r.track_frames(1)[2].data[..], ac3_frame(6)[..], "opaque: the PES bytes");
}

// ---------------------------------------------------------------------------
// LATM.

/// A LOAS frame with a version-0 StreamMuxConfig: AAC-LC 48 kHz stereo, one
/// subframe.
fn loas(payload: &[u8]) -> Vec<u8> {
    let mut w = Bits::default();
    w.put(0, 1).put(0, 1).put(1, 1).put(0, 6).put(0, 4).put(0, 3); // mux config
    w.put(2, 5).put(3, 4).put(2, 4).put(0, 3); // ASC: LC, 48 kHz, stereo
    w.put(0, 3).put(0xFF, 8).put(0, 1).put(0, 1);
    w.put(payload.len() as u64, 8);
    for &b in payload {
        w.put(u64::from(b), 8);
    }
    let element = w.bytes;
    let mut out = vec![0x56, 0xE0 | (element.len() >> 8) as u8, element.len() as u8];
    out.extend_from_slice(&element);
    out
}

#[test]
fn latm_becomes_aac_frames() {
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x11, 0x101, &[0x0A, 4, b'f', b'i', b'n', 0])]);
    let two = [loas(&[1; 40]), loas(&[2; 41])].concat();
    // The second LOAS frame is cut by the PES end.
    w.pes(0x101, 0xC0, 90_000, None, &two[..60], true);
    w.packetize(0x101, &pes_opt(0xC0, None, &two[60..], true), false);
    let r = run(&w.out);
    let t = &r.tracks[0];
    assert_eq!(t.codec, Codec::Aac);
    assert_eq!(
        (t.params.aac_object_type, t.params.sample_rate, t.params.channels),
        (2, 48_000, 2)
    );
    assert_eq!(t.params.codec_string.as_deref(), Some("mp4a.40.2"));
    assert_eq!(t.params.language.as_deref(), Some("fin"));
    let f = r.frames();
    assert_eq!((f[0].pts, &f[0].data[..]), (90_000, &[1u8; 40][..]));
    assert_eq!((f[1].pts, &f[1].data[..]), (91_920, &[2u8; 41][..]));
    assert_eq!(r.stats.pes_errors, 0);
}

#[test]
fn unsupported_latm_is_reported_once() {
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x11, 0x101, &[])]);
    // StreamMuxConfig with two programs.
    let mut b = Bits::default();
    b.put(0, 1).put(0, 1).put(1, 1).put(0, 6).put(1, 4).put(0, 30);
    let element = b.bytes;
    let mut bad = vec![0x56, 0xE0, element.len() as u8];
    bad.extend_from_slice(&element);
    for k in 0..3 {
        w.pes(0x101, 0xC0, 90_000 + 1920 * k, None, &bad, true);
    }
    let r = run(&w.out);
    assert!(r.frames().is_empty());
    assert_eq!((r.stats.pes_errors, r.stats.dropped_frames), (1, 3));
    let e = r.stats.last_error.expect("reported");
    assert_eq!((e.pid, e.kind.name()), (0x101, "latm"));
}

// ---------------------------------------------------------------------------
// Programs, unknown streams, errors with context.

#[test]
fn default_program_is_the_first_with_video_even_on_a_shared_pmt_pid() {
    // Programs 7 (radio) and 9 (TV) announce their PMTs on the same PID.
    let mut w = TsWriter::default();
    let pat = [0, 7, 0xF0, 0x00, 0, 9, 0xF0, 0x00];
    w.section(0, 0x00, 1, 0, &pat);
    w.section(0x1000, 0x02, 7, 0, &pmt_body(&[(0x0F, 0x101, &[])]));
    w.section(0x1000, 0x02, 9, 0, &pmt_body(&[(0x1B, 0x100, &[]), (0x0F, 0x102, &[])]));
    w.pes(0x101, 0xC0, 1000, None, &adts(&[1; 9]), true);
    w.pes(0x102, 0xC0, 2000, None, &adts(&[2; 9]), true);
    let r = run(&w.out);
    assert_eq!(r.selected, Some(9));
    let codecs: Vec<Codec> = r.tracks.iter().map(|t| t.codec).collect();
    assert_eq!(codecs, [Codec::H264, Codec::Aac]);
    assert_eq!(r.frames().len(), 1);
    assert_eq!(r.frames()[0].pts, 2000);
    let p: Vec<(u16, bool, bool)> = r
        .programs
        .iter()
        .map(|p| (p.program_number, p.has_video, p.selected))
        .collect();
    assert_eq!(p, [(7, false, false), (9, true, true)]);
    // Asking for the radio.
    let r = run_with(Demuxer::with_program(Some(7)), &w.out, &[w.out.len()]);
    assert_eq!(r.selected, Some(7));
    assert_eq!(r.tracks.len(), 1);
    assert_eq!(r.frames()[0].pts, 1000);
    // A program the PAT does not list gives nothing, and says why.
    let r = run_with(Demuxer::with_program(Some(8)), &w.out, &[w.out.len()]);
    assert_eq!((r.selected, r.tracks.len(), r.programs.len()), (None, 0, 2));
    assert_eq!(r.stats.programs_missing, 1);
    let e = r.stats.last_error.expect("reported");
    assert_eq!((e.pid, e.kind.name()), (0, "program_missing"));
}

/// An MPTS of programs 1..=100 (PMT PID 0x1000 + n, AAC on 0x100 + n),
/// where only program `tv` also has H.264 (on 0x300). The PAT and every
/// PMT repeat `cycles` times, then each program sends one audio PES and
/// `tv` two pictures.
fn mpts_100(tv: u16, cycles: usize) -> Vec<u8> {
    let mut w = TsWriter::default();
    let pat: Vec<u8> = (1..=100u16)
        .flat_map(|n| {
            let pid = 0x1000 + n;
            [(n >> 8) as u8, n as u8, 0xE0 | (pid >> 8) as u8, pid as u8]
        })
        .collect();
    for _ in 0..cycles {
        w.section(0, 0x00, 1, 0, &pat);
        for n in 1..=100u16 {
            let audio: (u8, u16, &[u8]) = (0x0F, 0x100 + n, &[]);
            let streams = if n == tv {
                vec![(0x1B, 0x300, &[][..]), audio]
            } else {
                vec![audio]
            };
            w.section(0x1000 + n, 0x02, n, 0, &pmt_body(&streams));
        }
    }
    for n in 1..=100u16 {
        w.pes(0x100 + n, 0xC0, 1000 * i64::from(n), None, &adts(&[n as u8; 9]), true);
    }
    for (i, au) in synthetic_aus(&[300, 40]).iter().enumerate() {
        w.pes(0x300, 0xE0, 90_000 + 3600 * i as i64, None, au, false);
    }
    w.out
}

#[test]
fn any_program_of_a_large_pat_can_be_chosen() {
    let ts = mpts_100(70, 3);
    // Default: the first program with video, though it is the 70th entry.
    let r = run(&ts);
    assert_eq!(r.selected, Some(70));
    let codecs: Vec<Codec> = r.tracks.iter().map(|t| t.codec).collect();
    assert_eq!(codecs, [Codec::H264, Codec::Aac]);
    assert_eq!(r.track_frames(0).len(), 2);
    assert_eq!(r.track_frames(1).iter().map(|f| f.pts).collect::<Vec<_>>(), [70_000]);
    assert!(r.programs.len() <= 64, "PMT state stays bounded");
    assert!(r
        .programs
        .iter()
        .any(|p| p.program_number == 70 && p.selected && p.has_video));
    assert_eq!((r.stats.pmt_errors, r.stats.programs_missing), (0, 0));
    // Asked for by number, past the 64th entry, from the first PAT on.
    for n in [65, 90, 100, 3] {
        let r = run_with(Demuxer::with_program(Some(n)), &ts, &[1316]);
        assert_eq!(r.selected, Some(n));
        assert_eq!(r.tracks.len(), 1, "program {n}");
        assert_eq!(
            r.frames().iter().map(|f| f.pts).collect::<Vec<_>>(),
            [1000 * i64::from(n)]
        );
        assert!(r.programs.len() <= 64);
        assert_eq!(r.stats.programs_missing, 0);
    }
    // Absent from a PAT repeated three times: reported once.
    let r = run_with(Demuxer::with_program(Some(150)), &ts, &[1316]);
    assert_eq!((r.selected, r.tracks.len(), r.stats.programs_missing), (None, 0, 1));
    // No video anywhere: after searching every entry, the first program.
    let r = run(&mpts_100(0, 3));
    assert_eq!(r.selected, Some(1));
    assert_eq!(r.frames().iter().map(|f| f.pts).collect::<Vec<_>>(), [1000]);
    // Video within the first 64 entries is found in the first window.
    let r = run(&mpts_100(5, 1));
    assert_eq!(r.selected, Some(5));
}

#[test]
fn a_missing_pmt_delays_the_choice_only_for_a_while() {
    // Program 3 comes first in the PAT but its PMT never arrives.
    let mut w = TsWriter::default();
    let pat = [0, 3, 0xF0, 0x10, 0, 4, 0xF0, 0x00];
    for _ in 0..20 {
        w.section(0, 0x00, 1, 0, &pat);
        w.section(0x1000, 0x02, 4, 0, &pmt_body(&[(0x1B, 0x100, &[])]));
    }
    let r = run(&w.out);
    assert_eq!(r.selected, Some(4));
    assert_eq!(r.tracks.len(), 1);
}

#[test]
fn pat_dropping_the_program_keeps_its_tracks_until_a_new_pmt() {
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x0F, 0x101, &[])]);
    w.pes(0x101, 0xC0, 1000, None, &adts(&[1; 9]), true);
    // The PAT now lists program 2 only, whose PMT comes later.
    let pat2 = [0, 2, 0xF0, 0x20];
    w.section(0, 0x00, 1, 1, &pat2);
    w.pes(0x101, 0xC0, 2000, None, &adts(&[2; 9]), true);
    let before_new_pmt = w.out.len();
    w.section(0x1020, 0x02, 2, 0, &pmt_body(&[(0x03, 0x120, &[])]));
    w.pes(0x120, 0xC0, 3000, None, &mp2_frame(3), true);
    let r = run(&w.out[..before_new_pmt]);
    assert_eq!(r.selected, None);
    assert_eq!(r.tracks.len(), 1, "tracks stay");
    assert_eq!(r.frames().len(), 2, "and keep flowing");
    let r = run(&w.out);
    assert_eq!(r.selected, Some(2));
    assert_eq!(r.tracks[0].codec, Codec::MpegAudio);
    assert_eq!(r.stats.pmt_changes, 1);
    let pts: Vec<i64> = r.frames().iter().map(|f| f.pts).collect();
    assert_eq!(pts, [1000, 2000, 3000]);
}

#[test]
fn unknown_stream_types_are_counted_once_and_handed_out() {
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(
        0x1000,
        1,
        0,
        &[(0x02, 0x100, &[]), (0x0F, 0x101, &[]), (0x15, 0x102, &[])],
    );
    w.pmt(
        0x1000,
        1,
        0,
        &[(0x02, 0x100, &[]), (0x0F, 0x101, &[]), (0x15, 0x102, &[])],
    );
    w.pmt(
        0x1000,
        1,
        1,
        &[
            (0x02, 0x100, &[]),
            (0x0F, 0x101, &[]),
            (0x15, 0x102, &[]),
            (0xC0, 0x103, &[]),
        ],
    );
    let r = run(&w.out);
    assert_eq!(r.stats.unknown_streams, 3);
    assert_eq!(r.unknown, [(0x100, 0x02), (0x102, 0x15), (0x103, 0xC0)]);
    assert_eq!(r.tracks.len(), 1);
}

#[test]
fn errors_carry_pid_kind_and_byte_offset() {
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x0F, 0x101, &[])]);
    w.pes(0x101, 0xC0, 1000, None, &vec![7u8; 1000], false);
    let mut pk = packets(&w.out);
    // Lose the third audio packet: the fourth shows the gap.
    let audio: Vec<usize> = (0..pk.len()).filter(|&i| pid_of(&pk[i]) == 0x101).collect();
    pk.remove(audio[2]);
    // Set transport_error_indicator on the PMT's first packet copy at the end.
    let mut te = pk[1];
    te[1] |= 0x80;
    pk.push(te);
    // A scrambled packet that continues the audio PID's counter.
    let last_cc = pk
        .iter()
        .rev()
        .find(|p| pid_of(&p[..]) == 0x101)
        .map_or(0, |p| p[3] & 0x0F);
    let mut sc = pk[audio[0]];
    sc[3] = 0x80 | (sc[3] & 0x30) | ((last_cc + 1) & 0x0F);
    pk.push(sc);
    let data: Vec<u8> = pk.iter().flatten().copied().collect();
    let mut d = Demuxer::new();
    d.push(&data[..(audio[2] + 1) * 188]);
    let e = d.stats().last_error.expect("cc error");
    assert_eq!((e.pid, e.kind.name(), e.offset), (0x101, "cc", audio[2] as u64 * 188));
    d.push(&data[(audio[2] + 1) * 188..]);
    let s = d.stats().clone();
    assert_eq!((s.cc_errors, s.transport_errors, s.scrambled), (1, 1, 1));
    let e = s.last_error.expect("scrambled");
    assert_eq!(
        (e.pid, e.kind.name(), e.offset),
        (0x101, "scrambled", (pk.len() as u64 - 1) * 188)
    );
    // Garbage after sync was found: a sync error at the garbage's offset,
    // with no PID.
    let mut d = Demuxer::new();
    d.push(&w.out[..3 * 188]);
    d.push(&[1, 2, 3]);
    d.push(&w.out[3 * 188..]);
    let e = d.stats().last_error.expect("sync error");
    assert_eq!((e.pid, e.kind.name(), e.offset), (0x1FFF, "sync", 3 * 188));
}

// ---------------------------------------------------------------------------
// Broadcast fixtures (tests/data/broadcast/README.md).

const OPEN_GOP: &[u8] = include_bytes!("data/broadcast/open_gop.ts");
const HEVC_CRA: &[u8] = include_bytes!("data/broadcast/hevc_cra.ts");
const LONG_GOP: &[u8] = include_bytes!("data/broadcast/long_gop.ts");
const SPLIT_PES: &[u8] = include_bytes!("data/broadcast/split_pes.ts");
const LATM: &[u8] = include_bytes!("data/broadcast/latm.ts");
const MPTS: &[u8] = include_bytes!("data/broadcast/mpts.ts");
const SUBTITLES: &[u8] = include_bytes!("data/broadcast/subtitles.ts");
const SCTE35: &[u8] = include_bytes!("data/broadcast/scte35.ts");
const LANGUAGES: &[u8] = include_bytes!("data/broadcast/languages.ts");

/// Errors and drops a clean fixture must not show.
fn assert_clean(r: &Run) {
    let s = &r.stats;
    assert_eq!(
        (s.sync_errors, s.cc_errors, s.pes_errors, s.pmt_errors, s.dropped_frames),
        (0, 0, 0, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.last_error, None);
}

/// Audio frames follow each other without a gap: `step` ticks apart.
fn assert_gapless(frames: &[&Frame], step: i64) {
    for w in frames.windows(2) {
        assert_eq!(w[1].pts - w[0].pts, step, "gap after PTS {}", w[0].pts);
    }
}

/// Every access unit of the video PID, as PES payloads show them: frames
/// equal the stream between access unit delimiters, the AUD left out, and
/// carry the PTS/DTS of the PES they start in.
fn assert_frames_are_the_elementary_stream(ts: &[u8], r: &Run, track: u16, aud_len: usize) {
    let units = pes_units(ts, 0x100);
    let es: Vec<u8> = units.iter().flat_map(|u| u.1.clone()).collect();
    let times: Vec<(i64, i64)> = units.iter().filter_map(|u| u.0).collect();
    let frames = r.track_frames(track);
    assert_eq!(frames.len(), times.len());
    let mut pos = 0;
    for (f, &(pts, dts)) in frames.iter().zip(&times) {
        assert_eq!((f.pts, f.dts), (pts, dts));
        assert_eq!(&es[pos..pos + 4], &[0, 0, 0, 1]);
        pos += aud_len;
        assert_eq!(&es[pos..pos + f.data.len()], &f.data[..]);
        pos += f.data.len();
    }
    assert_eq!(pos, es.len());
}

#[test]
fn fixture_open_gop_starts_at_the_first_recovery_point() {
    let r = run(OPEN_GOP);
    assert_clean(&r);
    assert_eq!((r.tracks[0].codec, r.tracks[1].codec), (Codec::H264, Codec::Aac));
    let video = r.track_frames(0);
    assert_eq!(video.len(), 301);
    let raps: Vec<i64> = video.iter().filter(|f| f.keyframe).map(|f| f.pts).collect();
    let want: Vec<i64> = (0..12).map(|k| 403_200 + 90_000 * k).collect();
    assert_eq!(raps, want, "12 recovery-point I pictures, no IDR");
    assert!(video[0].keyframe);
    assert_eq!((video[0].pts, video[0].dts), (403_200, 392_400));
    // The leading B picture after the first RAP is kept.
    assert_eq!(video[1].pts, 399_600);
    assert_frames_are_the_elementary_stream(OPEN_GOP, &r, 0, 6);
    assert_gapless(&r.track_frames(1), 1920);
}

#[test]
fn fixture_hevc_cra_starts_at_the_first_cra_and_keeps_rasl() {
    let r = run(HEVC_CRA);
    assert_clean(&r);
    assert_eq!(r.tracks[0].codec, Codec::H265);
    assert_eq!((r.tracks[0].params.width, r.tracks[0].params.height), (160, 90));
    let video = r.track_frames(0);
    assert_eq!(video.len(), 304);
    let raps: Vec<i64> = video.iter().filter(|f| f.keyframe).map(|f| f.pts).collect();
    let want: Vec<i64> = (0..12).map(|k| 403_200 + 90_000 * k).collect();
    assert_eq!(raps, want, "12 CRA pictures");
    assert_eq!((video[0].pts, video[0].dts), (403_200, 381_600));
    // The four RASL pictures of the first CRA follow it.
    let rasl: Vec<i64> = video[1..5].iter().map(|f| f.pts).collect();
    let mut sorted = rasl.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [388_800, 392_400, 396_000, 399_600]);
    assert_frames_are_the_elementary_stream(HEVC_CRA, &r, 0, 7);
}

#[test]
fn fixture_long_gop_has_three_random_access_points() {
    let r = run(LONG_GOP);
    assert_clean(&r);
    let video = r.track_frames(0);
    assert_eq!(video.len(), 550);
    let raps: Vec<i64> = video.iter().filter(|f| f.keyframe).map(|f| f.pts).collect();
    assert_eq!(raps, [133_200, 1_033_200, 1_933_200]);
    assert_eq!(r.tracks[1].params.sample_rate, 24_000);
    assert_gapless(&r.track_frames(1), 3840);
}

#[test]
fn fixture_split_pes_reassembles_pictures_and_times_all_audio() {
    let r = run(SPLIT_PES);
    assert_clean(&r);
    let video = r.track_frames(0);
    assert_eq!(video.len(), 250, "every picture, from 337 PES");
    assert_eq!(video.iter().filter(|f| f.keyframe).count(), 10);
    assert_frames_are_the_elementary_stream(SPLIT_PES, &r, 0, 6);
    // Audio: 25 of 51 PES lack a PTS; no frame is lost or mistimed.
    let audio = r.track_frames(1);
    assert_eq!(audio[0].pts, 131_280);
    assert_gapless(&audio, 1920);
    let with_pts: Vec<i64> = pes_units(SPLIT_PES, 0x101)
        .iter()
        .filter_map(|u| u.0.map(|t| t.0))
        .collect();
    assert_eq!(with_pts.len(), 26);
    for pts in with_pts {
        assert!(audio.iter().any(|f| f.pts == pts), "frame at PES PTS {pts}");
    }
    let interpolated = r.stats.interpolated;
    assert!(
        interpolated > 150 && (interpolated as usize) < audio.len(),
        "{interpolated}"
    );
    // Byte-by-byte reads give the same frames.
    assert_eq!(run_chunked(SPLIT_PES, &[1, 187, 1316]).events, r.events);
}

#[test]
fn fixture_latm_becomes_aac() {
    let r = run(LATM);
    assert_clean(&r);
    let a = &r.tracks[1];
    assert_eq!(a.codec, Codec::Aac);
    assert_eq!(
        (a.params.aac_object_type, a.params.sample_rate, a.params.channels),
        (2, 48_000, 1)
    );
    assert_eq!(a.params.codec_string.as_deref(), Some("mp4a.40.2"));
    let audio = r.track_frames(1);
    assert!(audio.len() > 370, "{}", audio.len());
    assert_eq!(audio[0].pts, 131_280);
    assert_gapless(&audio, 1920);
}

#[test]
fn fixture_mpts_default_is_the_tv_program_and_101_is_the_radio() {
    let r = run(MPTS);
    assert_clean(&r);
    assert_eq!(r.selected, Some(202));
    let p: Vec<(u16, u16, bool)> = r
        .programs
        .iter()
        .map(|p| (p.program_number, p.pmt_pid, p.has_video))
        .collect();
    assert_eq!(p, [(101, 4096, false), (202, 4097, true)]);
    let codecs: Vec<Codec> = r.tracks.iter().map(|t| t.codec).collect();
    assert_eq!(codecs, [Codec::H264, Codec::Aac]);
    assert_eq!(r.track_frames(0).len(), 200);
    let radio = run_with(Demuxer::with_program(Some(101)), MPTS, &[1316]);
    assert_clean(&radio);
    assert_eq!(radio.selected, Some(101));
    assert_eq!(radio.tracks.len(), 1);
    let t = &radio.tracks[0];
    assert_eq!((t.codec, t.params.language.as_deref()), (Codec::MpegAudio, Some("eng")));
    assert_eq!(t.params.sample_rate, 48_000);
    assert_eq!(radio.frames().len(), 23);
}

#[test]
fn fixture_subtitles_carry_teletext_and_dvb_subtitles() {
    let r = run(SUBTITLES);
    assert_clean(&r);
    let codecs: Vec<Codec> = r.tracks.iter().map(|t| t.codec).collect();
    assert_eq!(codecs, [Codec::H264, Codec::Aac, Codec::DvbSubtitle, Codec::Teletext]);
    let sub = &r.tracks[2].params;
    assert_eq!(sub.language.as_deref(), Some("deu"));
    assert_eq!(&sub.descriptors[..], &[0x59, 8, b'd', b'e', b'u', 0x10, 0, 1, 0, 1]);
    let tt = &r.tracks[3].params;
    assert_eq!(tt.language.as_deref(), Some("eng"));
    assert_eq!(tt.descriptors[0], 0x56);
    assert_eq!(&tt.descriptors[2..7], b"eng\x10\x88");
    let subs: Vec<i64> = r.track_frames(2).iter().map(|f| f.pts).collect();
    assert_eq!(subs, [223_200, 403_110, 493_200, 718_110, 853_200, 1_033_110]);
    let teletext = r.track_frames(3);
    assert_eq!(teletext.len(), 22);
    assert_eq!(teletext[0].pts, 178_200);
    for f in &teletext {
        assert!(f.keyframe);
        assert_eq!(f.data[0], 0x10, "data_identifier: EBU data");
        assert_eq!(f.data.len(), 178 - 3 - 0x24);
    }
    for f in r.track_frames(2) {
        assert_eq!(f.data[0], 0x20, "data_identifier: DVB subtitles");
    }
}

#[test]
fn fixture_scte35_cues_at_their_splice_times() {
    let r = run(SCTE35);
    assert_clean(&r);
    assert_eq!(r.tracks[2].codec, Codec::Scte35);
    assert_eq!(
        &r.tracks[2].params.descriptors[..],
        &[0x8A, 1, 1],
        "cue_identifier_descriptor"
    );
    let cues = r.track_frames(2);
    // 10 sections; the splice_null that repeats the one before it is skipped.
    assert_eq!(cues.len(), 7);
    let timed: Vec<i64> = cues.iter().filter(|f| f.pts != f.dts).map(|f| f.pts).collect();
    assert_eq!(timed, [493_200, 943_200, 1_213_200]);
    for f in &cues {
        assert!(f.keyframe);
        assert_eq!(f.data[0], 0xFC);
        assert_eq!(strom_media::ts::crc::crc32_mpeg2(&f.data), 0);
        if f.pts != f.dts {
            // Sent 2 s ahead of the splice by the (interpolated) PCR clock;
            // DTS is the last PCR before it, at most 100 ms earlier.
            let lead = f.pts - f.dts;
            assert!((180_000..189_000).contains(&lead), "{} {}", f.pts, f.dts);
        }
    }
}

#[test]
fn fixture_languages_has_four_audio_tracks() {
    let r = run(LANGUAGES);
    assert_eq!(
        (r.stats.pes_errors, r.stats.dropped_frames, r.stats.interpolated),
        (0, 0, 0)
    );
    let t: Vec<(Codec, Option<&str>)> = r
        .tracks
        .iter()
        .map(|t| (t.codec, t.params.language.as_deref()))
        .collect();
    assert_eq!(
        t,
        [
            (Codec::H264, None),
            (Codec::Aac, Some("eng")),
            (Codec::Ac3, Some("deu")),
            (Codec::Eac3, Some("fra")),
            (Codec::MpegAudio, Some("spa"))
        ]
    );
    assert_eq!(r.tracks[2].params.descriptors[0], 0x6A);
    assert_eq!(r.tracks[3].params.descriptors[0], 0x7A);
    assert_gapless(&r.track_frames(1), 1920);
    // Opaque audio: one frame per PES, every PES there, at its PTS.
    for (track, pid) in [(2u16, 0x102u16), (3, 0x103), (4, 0x104)] {
        let pes: Vec<i64> = pes_units(LANGUAGES, pid)
            .iter()
            .filter_map(|u| u.0.map(|t| t.0))
            .collect();
        let got: Vec<i64> = r.track_frames(track).iter().map(|f| f.pts).collect();
        assert_eq!(got, pes, "track {track}");
    }
    for t in &r.tracks[1..] {
        assert_eq!(t.params.sample_rate, 48_000);
    }
}

/// A held video frame does not hold other tracks back for long: when the
/// video PID stops, the frame is taken as complete once MAX_HELD_EVENTS
/// events wait behind it, whatever the read sizes.
#[test]
fn held_frames_are_released_when_too_much_waits_behind_them() {
    let aus = synthetic_aus(&[3000]);
    let mut w = TsWriter::default();
    w.pat(1, 0x1000);
    w.pmt(0x1000, 1, 0, &[(0x1B, 0x100, &[]), (0x0F, 0x101, &[])]);
    w.pes(0x100, 0xE0, 90_000, None, &aus[0], true);
    let ten: Vec<u8> = (0..10).flat_map(|k| adts(&[k; 12])).collect();
    for k in 0..120 {
        w.pes(0x101, 0xC0, 90_000 + 19_200 * k, None, &ten, true);
    }
    for reads in [vec![188usize], vec![65_536], vec![1, 1000]] {
        let mut d = Demuxer::new();
        let mut frames = Vec::new();
        for c in w.out.chunks(reads[0]) {
            d.push(c);
            while let Some(e) = d.pull() {
                if let DemuxEvent::Frame(f) = e {
                    frames.push(f.track);
                }
            }
        }
        let limit = strom_media::ts::demux::MAX_HELD_EVENTS;
        assert_eq!(frames.first(), Some(&0), "the video frame first");
        assert!(frames.len() > limit && frames.len() <= 1201, "{}", frames.len());
        // Everything but what followed the release point is out before flush.
        assert!(frames.len() >= 1200 - 10, "{}", frames.len());
    }
}

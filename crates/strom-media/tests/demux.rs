//! Demuxer tests on the real sample `assets/demo.ts` (x264 Main 1280x720
//! 25 fps + AAC-LC 48 kHz stereo, 10 s; expected values from ffprobe) and on
//! small synthetic streams built here, covering chunking, damage, PMT
//! changes, 33-bit wrap and the codecs the sample lacks.

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use strom_media::codec::aac::write_adts_header;
use strom_media::ts::crc::crc32_mpeg2;
use strom_media::ts::demux::{DemuxEvent, DemuxStats, Demuxer};
use strom_media::{Codec, Frame, Track};

const DEMO: &[u8] = include_bytes!("../../../assets/demo.ts");
const WRAP: i64 = 1 << 33;

/// Everything one demux run produced.
struct Run {
    events: Vec<DemuxEvent>,
    stats: DemuxStats,
    tracks: Arc<[Track]>,
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
    let mut d = Demuxer::new();
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
    Run {
        events,
        stats: d.stats().clone(),
        tracks: d.tracks().clone(),
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

//! Tests of [`FlvIngest`] with hand-built tags and tags read from real FLV
//! files (tests/fixtures/flv, see make.sh there).

use super::*;
use crate::codec::nal::nal_units;
use crate::ts::wrap_delta;
use proptest::prelude::*;

const FLV_H264_AAC: &[u8] = include_bytes!("../../tests/fixtures/flv/h264_aac.flv");
const FLV_MP3: &[u8] = include_bytes!("../../tests/fixtures/flv/mp3.flv");
const HEVC_ES: &[u8] = include_bytes!("../../tests/fixtures/flv/hevc.es");
const HEVC_CSV: &str = include_str!("../../tests/fixtures/flv/hevc.csv");

/// One tag as the RTMP session hands it over: kind, timestamp in ms, body.
type Tag = (TagKind, u32, Bytes);

/// Audio and video tags of an FLV file (FLV 10.1 §E.2–E.4.1): kind,
/// timestamp in ms (with TimestampExtended), body. Script tags are skipped.
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

fn drain(f: &mut FlvIngest) -> Vec<DemuxEvent> {
    std::iter::from_fn(|| f.pull()).collect()
}

fn frames(events: &[DemuxEvent]) -> Vec<&Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::Frame(f) => Some(f),
            DemuxEvent::Tracks(_) => None,
        })
        .collect()
}

fn track_sets(events: &[DemuxEvent]) -> Vec<Arc<[Track]>> {
    events
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::Tracks(t) => Some(t.clone()),
            DemuxEvent::Frame(_) => None,
        })
        .collect()
}

/// Every frame follows a `Tracks` event that has its track.
fn assert_well_formed(events: &[DemuxEvent]) {
    let mut tracks: Option<&Arc<[Track]>> = None;
    for e in events {
        match e {
            DemuxEvent::Tracks(t) => {
                for (i, tr) in t.iter().enumerate() {
                    assert_eq!(usize::from(tr.id), i);
                }
                tracks = Some(t);
            }
            DemuxEvent::Frame(f) => {
                let t = tracks.expect("Tracks before the first frame");
                let tr = t.get(usize::from(f.track)).expect("frame's track in the set");
                assert!((0..TS_WRAP).contains(&f.dts) && (0..TS_WRAP).contains(&f.pts));
                assert!(!f.data.is_empty());
                if tr.kind() == crate::TrackKind::Audio {
                    assert!(f.keyframe);
                }
            }
        }
    }
}

fn run(tags: &[Tag]) -> (FlvIngest, Vec<DemuxEvent>) {
    let mut f = FlvIngest::default();
    let mut events = Vec::new();
    for (kind, ts, body) in tags {
        f.push(*kind, *ts, body.clone());
        events.extend(drain(&mut f));
    }
    f.finish();
    events.extend(drain(&mut f));
    assert_well_formed(&events);
    (f, events)
}

/// The H.264 configuration record and the raw AudioSpecificConfig of the
/// fixture, and its SPS and PPS.
fn fixture_configs() -> (Bytes, Bytes, Vec<u8>, Vec<u8>) {
    let tags = flv_tags(FLV_H264_AAC);
    let avc = tags
        .iter()
        .find(|t| t.0 == TagKind::Video)
        .expect("a video tag")
        .2
        .clone();
    let aac = tags
        .iter()
        .find(|t| t.0 == TagKind::Audio)
        .expect("an audio tag")
        .2
        .clone();
    let rec = video::parse_avc_record(&avc[5..]).expect("the fixture's record");
    let (sps, pps) = (rec.sets[1][0].to_vec(), rec.sets[2][0].to_vec());
    (avc, aac, sps, pps)
}

/// A legacy AVC NALU tag: frame type, composition time, NAL units with
/// 4-byte lengths.
fn avc_tag(key: bool, cts: i32, nals: &[&[u8]]) -> Bytes {
    let mut b = vec![if key { 0x17 } else { 0x27 }, 1];
    b.extend_from_slice(&cts.to_be_bytes()[1..]);
    for n in nals {
        b.extend_from_slice(&(n.len() as u32).to_be_bytes());
        b.extend_from_slice(n);
    }
    Bytes::from(b)
}

/// A legacy AVC sequence header with one SPS and one PPS.
fn avc_record_tag(sps: &[u8], pps: &[u8]) -> Bytes {
    let mut b = vec![0x17, 0, 0, 0, 0, 1, sps[1], sps[2], sps[3], 0xFF, 0xE1];
    b.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    b.extend_from_slice(sps);
    b.push(1);
    b.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    b.extend_from_slice(pps);
    Bytes::from(b)
}

const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x21, 0xA0];
const P_SLICE: &[u8] = &[0x41, 0x9A, 0x02, 0x03];
const AAC_RAW: &[u8] = &[0x21, 0x10, 0x04, 0x60, 0x8C, 0x1C];

fn aac_raw() -> Bytes {
    let mut b = vec![0xAF, 1];
    b.extend_from_slice(AAC_RAW);
    Bytes::from(b)
}

#[test]
fn h264_and_aac_from_a_real_flv() {
    let tags = flv_tags(FLV_H264_AAC);
    let (f, events) = run(&tags);
    let sets = track_sets(&events);
    assert_eq!(sets.len(), 1, "one track set: {sets:?}");
    assert!(matches!(events[0], DemuxEvent::Tracks(_)), "Tracks first");
    let t = &sets[0];
    assert_eq!(t.len(), 2);
    assert_eq!((t[0].codec, t[1].codec), (Codec::H264, Codec::Aac));
    let v = &t[0].params;
    assert_eq!((v.width, v.height), (160, 120));
    assert_eq!(v.frame_rate, Some((25, 1)));
    assert!(v.codec_string.as_deref().is_some_and(|c| c.starts_with("avc1.")));
    assert_eq!(v.parameter_sets.len(), 2);
    let a = &t[1].params;
    assert_eq!((a.sample_rate, a.channels, a.aac_object_type), (44_100, 1, 2));
    assert_eq!(a.codec_string.as_deref(), Some("mp4a.40.2"));

    let fr = frames(&events);
    let video: Vec<_> = fr.iter().filter(|f| f.track == 0).collect();
    let audio: Vec<_> = fr.iter().filter(|f| f.track == 1).collect();
    assert_eq!(video.len(), 50);
    let audio_tags = tags.iter().filter(|t| t.0 == TagKind::Audio).count();
    assert_eq!(audio.len(), audio_tags - 1, "every raw AAC frame");
    let keys: Vec<usize> = (0..video.len()).filter(|&i| video[i].keyframe).collect();
    assert_eq!(keys, vec![0, 25]);
    for v in &video {
        let kinds: Vec<u8> = nal_units(&v.data).map(|n| n[0] & 0x1F).collect();
        assert_eq!(&v.data[..4], &[0, 0, 0, 1]);
        assert_eq!(v.keyframe, h264::is_keyframe(&v.data));
        assert_ne!(kinds.first(), Some(&9), "no leading AUD");
        if v.keyframe {
            assert!(
                kinds.contains(&7) && kinds.contains(&8),
                "SPS and PPS at keyframes: {kinds:?}"
            );
            let sps = kinds.iter().position(|&k| k == 7).expect("SPS");
            let idr = kinds.iter().position(|&k| k == 5).expect("IDR");
            assert!(sps < idr);
        }
        assert!(v.pts >= v.dts);
    }
    assert!(video.iter().any(|v| v.pts > v.dts + 3600), "B-frames reorder");
    assert!(video.windows(2).all(|w| w[1].dts > w[0].dts));
    // The first frame: tag timestamp 0, composition time 80 ms.
    assert_eq!((video[0].dts, video[0].pts), (0, 80 * 90));
    // AAC frames are the tag bodies after the 2-byte header, shared.
    let first_raw = tags
        .iter()
        .filter(|t| t.0 == TagKind::Audio)
        .nth(1)
        .expect("a raw AAC tag");
    assert_eq!(audio[0].data, first_raw.2.slice(2..));
    assert_eq!(audio[0].dts, i64::from(first_raw.1) * 90);
    let s = f.stats();
    assert_eq!(s.frames as usize, fr.len());
    assert_eq!(
        (
            s.bad_video_tags,
            s.bad_audio_tags,
            s.no_config,
            s.waiting_keyframe,
            s.backwards
        ),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(f.buffered_bytes(), 0);
}

/// The HEVC fixture as Enhanced RTMP tags: a SequenceStart with an
/// HEVCDecoderConfigurationRecord, then CodedFrames with CompositionTime
/// (or CodedFramesX when it is 0), NAL units with 4-byte lengths. Returns
/// the tags and each access unit's (dts, pts) in ms.
fn hevc_tags() -> (Vec<Tag>, Vec<(i64, i64)>) {
    let mut off = 0;
    let mut aus = Vec::new();
    for line in HEVC_CSV.lines() {
        let f: Vec<&str> = line.split(',').collect();
        let (pts, dts, size) = (
            f[0].parse::<i64>().expect("csv number"),
            f[1].parse::<i64>().expect("csv number"),
            f[2].parse::<usize>().expect("csv number"),
        );
        aus.push((pts / 90, dts / 90, &HEVC_ES[off..off + size]));
        off += size;
    }
    assert_eq!(off, HEVC_ES.len());
    let t0 = aus[0].1;
    let mut params: [Vec<&[u8]>; 3] = Default::default();
    for n in nal_units(aus[0].2) {
        if let Some(k) = param_kind(Codec::H265, n) {
            params[k].push(n);
        }
    }
    // HEVCDecoderConfigurationRecord: version, the SPS's profile_tier_level
    // (12 bytes after its 2-byte NAL header and 1 byte of ids), stream facts,
    // lengthSizeMinusOne 3, then one array per parameter-set kind.
    let mut rec = vec![1];
    rec.extend_from_slice(&params[1][0][3..15]);
    rec.extend_from_slice(&[0xF0, 0, 0xFC, 0xFD, 0xF8, 0xF8, 0, 0, 0x0F]);
    rec.push(3);
    for (kind, sets) in params.iter().enumerate() {
        rec.extend_from_slice(&[0x80 | (32 + kind as u8), 0, sets.len() as u8]);
        for s in sets {
            rec.extend_from_slice(&(s.len() as u16).to_be_bytes());
            rec.extend_from_slice(s);
        }
    }
    let mut start = vec![0x90];
    start.extend_from_slice(b"hvc1");
    start.extend_from_slice(&rec);
    let mut tags = vec![(TagKind::Video, 0, Bytes::from(start))];
    let mut times = Vec::new();
    for (pts, dts, au) in &aus {
        let cts = pts - dts;
        let key = h265::is_keyframe(au);
        let mut b = vec![0x80 | if key { 0x10 } else { 0x20 } | if cts == 0 { 3 } else { 1 }];
        b.extend_from_slice(b"hvc1");
        if cts != 0 {
            b.extend_from_slice(&(cts as i32).to_be_bytes()[1..]);
        }
        // Parameter sets travel in the record only.
        for n in nal_units(au).filter(|n| param_kind(Codec::H265, n).is_none()) {
            b.extend_from_slice(&(n.len() as u32).to_be_bytes());
            b.extend_from_slice(n);
        }
        tags.push((TagKind::Video, (dts - t0) as u32, Bytes::from(b)));
        times.push((dts - t0, pts - t0));
    }
    (tags, times)
}

#[test]
fn hevc_over_enhanced_rtmp() {
    let (tags, times) = hevc_tags();
    let (f, events) = run(&tags);
    let sets = track_sets(&events);
    assert_eq!(sets.len(), 1);
    let t = &sets[0][0];
    assert_eq!(t.codec, Codec::H265);
    assert_eq!((t.params.width, t.params.height), (160, 120));
    assert!(t.params.codec_string.as_deref().is_some_and(|c| c.starts_with("hvc1.")));
    assert_eq!(t.params.parameter_sets.len(), 3);
    let fr = frames(&events);
    assert_eq!(fr.len(), times.len());
    let mut keys = 0;
    for (f, (dts, pts)) in fr.iter().zip(&times) {
        assert_eq!((f.dts, f.pts), (dts * 90, pts * 90));
        assert!(f.pts >= f.dts);
        assert_eq!(f.keyframe, h265::is_keyframe(&f.data));
        if f.keyframe {
            keys += 1;
            let kinds: Vec<u8> = nal_units(&f.data).map(|n| (n[0] >> 1) & 0x3F).collect();
            assert_eq!(&kinds[..3], &[32, 33, 34], "VPS, SPS, PPS before the IRAP picture");
        }
    }
    assert_eq!(keys, 3, "GOP of 10 over 25 frames");
    assert!(fr.iter().any(|f| f.pts > f.dts), "B-frames");
    assert_eq!(f.stats().bad_video_tags, 0);
}

#[test]
fn hevc_with_the_legacy_codec_id_12() {
    let (tags, _) = hevc_tags();
    // Same record and NAL units behind a legacy header: CodecID 12,
    // AVCPacketType and CompositionTime.
    let legacy: Vec<_> = tags
        .iter()
        .map(|(k, ts, b)| {
            let key = b[0] & 0x70 == 0x10;
            let pt = b[0] & 0x0F;
            let (packet_type, cts, rest): (u8, &[u8], &[u8]) = match pt {
                0 => (0, &[0, 0, 0], &b[5..]),
                1 => (1, &b[5..8], &b[8..]),
                _ => (1, &[0, 0, 0], &b[5..]),
            };
            let mut v = vec![if key { 0x1C } else { 0x2C }, packet_type];
            v.extend_from_slice(cts);
            v.extend_from_slice(rest);
            (*k, *ts, Bytes::from(v))
        })
        .collect();
    let (_, a) = run(&tags);
    let (_, b) = run(&legacy);
    assert_eq!(a, b);
}

#[test]
fn mp3_alone_is_track_zero() {
    let tags = flv_tags(FLV_MP3);
    let (f, events) = run(&tags);
    let sets = track_sets(&events);
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].len(), 1);
    let t = &sets[0][0];
    assert_eq!((t.id, t.codec), (0, Codec::MpegAudio));
    assert_eq!((t.params.sample_rate, t.params.channels), (44_100, 1));
    assert_eq!(t.params.codec_string.as_deref(), Some("mp4a.6B"));
    let fr = frames(&events);
    assert_eq!(fr.len(), tags.len());
    assert!(fr.iter().all(|f| f.track == 0 && f.keyframe && f.data[0] == 0xFF));
    assert_eq!(f.stats().frames as usize, tags.len());
}

#[test]
fn frames_before_their_configuration_are_dropped_and_counted() {
    let (avc, asc, _, _) = fixture_configs();
    let mut f = FlvIngest::default();
    f.push(TagKind::Audio, 0, aac_raw());
    f.push(TagKind::Video, 0, avc_tag(true, 0, &[IDR]));
    assert_eq!(f.stats().no_config, 2);
    f.push(TagKind::Video, 0, avc);
    // P picture before any keyframe.
    f.push(TagKind::Video, 40, avc_tag(false, 0, &[P_SLICE]));
    assert_eq!(f.stats().waiting_keyframe, 1);
    f.push(TagKind::Audio, 40, asc);
    f.push(TagKind::Video, 80, avc_tag(true, 0, &[IDR]));
    f.push(TagKind::Audio, 81, aac_raw());
    let events = drain(&mut f);
    assert_well_formed(&events);
    let fr = frames(&events);
    assert_eq!(fr.len(), 2);
    assert!(fr[0].keyframe && fr[0].track == 0 && fr[0].dts == 80 * 90);
    assert_eq!(&fr[1].data[..], AAC_RAW);
    assert_eq!(fr[1].track, 1);
}

#[test]
fn an_adts_header_left_on_an_aac_frame_is_taken_off() {
    let (_, asc, _, _) = fixture_configs();
    let mut f = FlvIngest::default();
    f.expect(false, true);
    f.push(TagKind::Audio, 0, asc);
    let mut b = vec![0xAF, 1];
    b.extend_from_slice(&crate::codec::aac::write_adts_header(2, 44_100, 1, AAC_RAW.len()));
    b.extend_from_slice(AAC_RAW);
    f.push(TagKind::Audio, 0, Bytes::from(b));
    // A raw frame that only looks like a header (wrong length) stays whole.
    let mut b = vec![0xAF, 1];
    b.extend_from_slice(&crate::codec::aac::write_adts_header(2, 44_100, 1, 100));
    b.extend_from_slice(AAC_RAW);
    f.push(TagKind::Audio, 23, Bytes::from(b.clone()));
    let events = drain(&mut f);
    let fr = frames(&events);
    assert_eq!(&fr[0].data[..], AAC_RAW);
    assert_eq!(&fr[1].data[..], &b[2..]);
}

#[test]
fn keyframes_get_parameter_sets_and_the_bitstream_decides() {
    let (avc, _, sps, pps) = fixture_configs();
    let mut f = FlvIngest::default();
    f.expect(true, false);
    f.push(TagKind::Video, 0, avc);
    // Flagged as a key frame, but no IDR slice: not a random access point.
    f.push(TagKind::Video, 0, avc_tag(true, 0, &[P_SLICE]));
    assert_eq!(f.stats().waiting_keyframe, 1);
    // An AUD, an IDR flagged as an inter frame.
    f.push(TagKind::Video, 40, avc_tag(false, 0, &[&[0x09, 0xF0], IDR]));
    f.push(TagKind::Video, 80, avc_tag(false, 0, &[P_SLICE]));
    let fr: Vec<Frame> = frames(&drain(&mut f)).into_iter().cloned().collect();
    assert_eq!(fr.len(), 2);
    let nals: Vec<&[u8]> = nal_units(&fr[0].data).collect();
    assert_eq!(nals, vec![&sps[..], &pps[..], IDR]);
    assert!(fr[0].keyframe);
    let nals: Vec<&[u8]> = nal_units(&fr[1].data).collect();
    assert_eq!(nals, vec![P_SLICE]);
    assert!(!fr[1].keyframe);
}

#[test]
fn an_i_picture_after_a_recovery_point_is_a_keyframe() {
    let (avc, _, _, _) = fixture_configs();
    let mut f = FlvIngest::default();
    f.expect(true, false);
    f.push(TagKind::Video, 0, avc);
    // SEI recovery point (payloadType 6, size 2: recovery_frame_cnt 0,
    // exact_match 1, broken_link 0), then an I slice (slice_type 7).
    let sei: &[u8] = &[0x06, 0x06, 0x01, 0xC4, 0x80];
    let i_slice: &[u8] = &[0x21, 0x88, 0x84, 0x00];
    f.push(TagKind::Video, 0, avc_tag(false, 0, &[sei, i_slice]));
    let fr: Vec<Frame> = frames(&drain(&mut f)).into_iter().cloned().collect();
    assert_eq!(fr.len(), 1);
    assert!(fr[0].keyframe);
}

#[test]
fn in_band_parameter_sets_update_the_track() {
    let (avc, _, sps, pps) = fixture_configs();
    let mut f = FlvIngest::default();
    f.expect(true, false);
    f.push(TagKind::Video, 0, avc.clone());
    f.push(TagKind::Video, 0, avc_tag(true, 0, &[&sps, &pps, IDR]));
    // The same record again, and the same in-band sets: nothing changes.
    f.push(TagKind::Video, 40, avc.clone());
    f.push(TagKind::Video, 40, avc_tag(false, 0, &[P_SLICE]));
    f.push(TagKind::Video, 80, avc_tag(true, 0, &[&sps, &pps, IDR]));
    let events = drain(&mut f);
    assert_eq!(track_sets(&events).len(), 1);
    assert_eq!(frames(&events).len(), 3);
    // A different PPS in-band: new parameters, a new Tracks event before
    // the frame, and the frame keeps its in-band sets only.
    let pps2 = [0x68, 0xEE, 0x3C, 0x81];
    f.push(TagKind::Video, 120, avc_tag(true, 0, &[&pps2, IDR]));
    let events = drain(&mut f);
    let sets = track_sets(&events);
    assert_eq!(sets.len(), 1);
    assert!(matches!(events[0], DemuxEvent::Tracks(_)));
    assert_eq!(
        sets[0][0].params.parameter_sets,
        vec![Bytes::from(sps.clone()), Bytes::from(pps2.to_vec())]
    );
    let fr = frames(&events);
    let nals: Vec<&[u8]> = nal_units(&fr[0].data).collect();
    assert_eq!(nals, vec![&sps[..], &pps2[..], IDR]);
    assert_eq!(f.stats().config_changes, 1);
}

#[test]
fn a_changed_configuration_waits_for_a_keyframe() {
    let (avc, _, sps, pps) = fixture_configs();
    let mut f = FlvIngest::default();
    f.expect(true, false);
    f.push(TagKind::Video, 0, avc.clone());
    f.push(TagKind::Video, 0, avc_tag(true, 0, &[IDR]));
    let mut other = pps.clone();
    let last = other.len() - 1;
    other[last] ^= 0x01;
    f.push(TagKind::Video, 40, avc_record_tag(&sps, &other));
    f.push(TagKind::Video, 40, avc_tag(false, 0, &[P_SLICE]));
    f.push(TagKind::Video, 80, avc_tag(true, 0, &[IDR]));
    let events = drain(&mut f);
    assert_eq!(track_sets(&events).len(), 2);
    assert_eq!(frames(&events).len(), 2);
    assert_eq!(f.stats().waiting_keyframe, 1);
}

#[test]
fn the_hold_waits_for_expected_tracks_then_gives_up_after_a_second() {
    let (avc, asc, _, _) = fixture_configs();
    // Both expected, audio comes 400 ms late: one Tracks with both, first.
    let mut f = FlvIngest::default();
    f.expect(true, true);
    f.push(TagKind::Video, 0, avc.clone());
    f.push(TagKind::Video, 0, avc_tag(true, 0, &[IDR]));
    for i in 1..10 {
        f.push(TagKind::Video, i * 40, avc_tag(false, 0, &[P_SLICE]));
    }
    assert!(f.pull().is_none(), "held while audio is expected");
    assert!(f.buffered_bytes() > 0);
    f.push(TagKind::Audio, 400, asc.clone());
    let events = drain(&mut f);
    assert_eq!(track_sets(&events).len(), 1);
    assert_eq!(track_sets(&events)[0].len(), 2);
    assert_eq!(frames(&events).len(), 10);
    assert!(matches!(events[0], DemuxEvent::Tracks(_)));

    // Audio expected but never configured: video alone after 1 s of media,
    // then audio appears as track 1 with a new Tracks event.
    let mut f = FlvIngest::default();
    f.expect(true, true);
    f.push(TagKind::Video, 0, avc.clone());
    f.push(TagKind::Video, 0, avc_tag(true, 0, &[IDR]));
    for i in 1..25 {
        f.push(TagKind::Video, i * 40, avc_tag(false, 0, &[P_SLICE]));
        assert!(f.pull().is_none());
    }
    f.push(TagKind::Video, 1000, avc_tag(false, 0, &[P_SLICE]));
    let events = drain(&mut f);
    let sets = track_sets(&events);
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].len(), 1);
    assert_eq!(frames(&events).len(), 26);
    f.push(TagKind::Audio, 1010, asc);
    f.push(TagKind::Audio, 1020, aac_raw());
    let events = drain(&mut f);
    assert_well_formed(&events);
    let sets = track_sets(&events);
    assert_eq!(sets.len(), 1);
    assert_eq!((sets[0].len(), sets[0][1].codec), (2, Codec::Aac));
    assert_eq!(frames(&events)[0].track, 1);
    assert_eq!(f.stats().hold_overflows, 0);
}

#[test]
fn without_metadata_both_tracks_are_waited_for() {
    let (avc, _, _, _) = fixture_configs();
    let mut f = FlvIngest::default();
    f.push(TagKind::Video, 0, avc);
    f.push(TagKind::Video, 0, avc_tag(true, 0, &[IDR]));
    f.push(TagKind::Video, 40, avc_tag(false, 0, &[P_SLICE]));
    assert!(f.pull().is_none());
    f.finish();
    let events = drain(&mut f);
    assert_eq!(track_sets(&events)[0].len(), 1);
    assert_eq!(frames(&events).len(), 2);
}

#[test]
fn the_hold_is_capped() {
    let (avc, _, _, _) = fixture_configs();
    let mut f = FlvIngest::new(FlvConfig {
        max_held_frames: 5,
        ..FlvConfig::default()
    });
    f.push(TagKind::Video, 0, avc);
    f.push(TagKind::Video, 0, avc_tag(true, 0, &[IDR]));
    for i in 1..4 {
        f.push(TagKind::Video, i, avc_tag(false, 0, &[P_SLICE]));
    }
    assert!(f.pull().is_none());
    f.push(TagKind::Video, 4, avc_tag(false, 0, &[P_SLICE]));
    assert_eq!(frames(&drain(&mut f)).len(), 5);
    assert_eq!(f.stats().hold_overflows, 1);
}

#[test]
fn events_not_pulled_are_capped() {
    let (avc, _, _, _) = fixture_configs();
    let mut f = FlvIngest::new(FlvConfig {
        max_held_frames: 4,
        ..FlvConfig::default()
    });
    f.expect(true, false);
    f.push(TagKind::Video, 0, avc);
    for i in 0..100 {
        f.push(TagKind::Video, i * 40, avc_tag(true, 0, &[IDR]));
    }
    let events = drain(&mut f);
    assert!(events.len() <= 2 * 4 + 16 + 1);
    assert_eq!(f.stats().queue_overflows as usize + frames(&events).len(), 100);
}

#[test]
fn repeated_and_backward_timestamps() {
    let (avc, asc, _, _) = fixture_configs();
    let mut f = FlvIngest::default();
    f.push(TagKind::Video, 0, avc);
    f.push(TagKind::Audio, 0, asc);
    f.push(TagKind::Video, 1000, avc_tag(true, 0, &[IDR]));
    f.push(TagKind::Video, 1000, avc_tag(false, 0, &[P_SLICE]));
    f.push(TagKind::Video, 990, avc_tag(false, 0, &[P_SLICE]));
    f.push(TagKind::Audio, 1000, aac_raw());
    f.push(TagKind::Audio, 980, aac_raw());
    f.push(TagKind::Audio, 980, aac_raw());
    let fr: Vec<(u16, i64)> = frames(&drain(&mut f)).iter().map(|f| (f.track, f.dts / 90)).collect();
    assert_eq!(fr, vec![(0, 1000), (0, 990), (1, 1000), (1, 980)]);
    assert_eq!((f.stats().backwards, f.stats().repeated_timestamps), (4, 2));
}

#[test]
fn unsupported_codecs_are_counted_not_fatal() {
    let mut f = FlvIngest::default();
    let mut av1 = vec![0x90];
    av1.extend_from_slice(b"av01\x81\x00\x0c\x00");
    f.push(TagKind::Video, 0, Bytes::from(av1));
    let mut vp9 = vec![0x91];
    vp9.extend_from_slice(b"vp09\x00\x00\x00\x82\x49");
    f.push(TagKind::Video, 0, Bytes::from(vp9));
    f.push(TagKind::Video, 0, Bytes::from_static(&[0x24, 0x00, 0x01]));
    assert_eq!(f.stats().unsupported_video_tags, 3);
    assert_eq!(f.stats().unsupported_video_codec, Some("vp6"));
    let mut opus = vec![0x91];
    opus.extend_from_slice(b"Opus\xFC\xFF\xFE");
    f.push(TagKind::Audio, 0, Bytes::from(opus));
    assert_eq!(f.stats().unsupported_audio_codec, Some("opus"));
    f.push(TagKind::Audio, 0, Bytes::from_static(&[0xB2, 0x01, 0x02]));
    f.push(TagKind::Audio, 0, Bytes::from_static(&[0x72, 0xD5]));
    assert_eq!(f.stats().unsupported_audio_tags, 3);
    assert_eq!(f.stats().unsupported_audio_codec, Some("g711 a-law"));
    // AAC LC with 960-sample frames: a configuration ADTS cannot carry.
    f.push(TagKind::Audio, 0, Bytes::from_static(&[0xAF, 0x00, 0x12, 0x0C]));
    assert_eq!(f.stats().unsupported_audio_tags, 4);
    f.finish();
    assert!(f.pull().is_none());
    assert_eq!(f.stats().bad_video_tags + f.stats().bad_audio_tags, 0);
}

#[test]
fn malformed_tags_are_counted_with_static_reasons() {
    let (avc, _, _, _) = fixture_configs();
    let mut f = FlvIngest::default();
    f.push(TagKind::Video, 0, Bytes::new());
    f.push(TagKind::Video, 0, Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 1, 0x64]));
    f.push(TagKind::Video, 0, avc);
    f.push(
        TagKind::Video,
        0,
        Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 9, 0x65]),
    );
    assert_eq!(f.stats().bad_video_tags, 3);
    assert_eq!(
        f.stats().last_error,
        Some((TagKind::Video, FlvError::Invalid("NAL unit length")))
    );
    f.push(TagKind::Audio, 0, Bytes::from_static(&[0xAF, 1]));
    f.push(TagKind::Audio, 0, Bytes::from_static(&[0xAF, 0, 0x12]));
    assert_eq!(f.stats().bad_audio_tags, 2);
    assert_eq!(f.stats().last_error, Some((TagKind::Audio, FlvError::Truncated)));
    let e = FlvError::Invalid("NAL unit length").to_string();
    assert_eq!(e, "invalid NAL unit length");
}

#[test]
fn an_oversize_access_unit_is_refused() {
    let (avc, _, _, _) = fixture_configs();
    let mut f = FlvIngest::new(FlvConfig {
        max_frame_bytes: 64,
        ..FlvConfig::default()
    });
    f.expect(true, false);
    f.push(TagKind::Video, 0, avc);
    let big = [0x65; 100];
    f.push(TagKind::Video, 0, avc_tag(true, 0, &[&big]));
    assert_eq!(
        f.stats().last_error,
        Some((TagKind::Video, FlvError::Invalid("video frame size")))
    );
    assert!(f.pull().is_none());
}

#[test]
fn negative_composition_time_never_puts_pts_before_dts() {
    let (avc, _, _, _) = fixture_configs();
    let mut f = FlvIngest::default();
    f.expect(true, false);
    f.push(TagKind::Video, 0, avc);
    f.push(TagKind::Video, 100, avc_tag(true, -40, &[IDR]));
    let fr: Vec<Frame> = frames(&drain(&mut f)).into_iter().cloned().collect();
    assert_eq!((fr[0].dts, fr[0].pts), (9000, 9000));
}

#[test]
fn the_32_bit_clock_wraps_smoothly() {
    let (avc, asc, _, _) = fixture_configs();
    let mut f = FlvIngest::default();
    f.push(TagKind::Video, 0, avc);
    f.push(TagKind::Audio, 0, asc);
    let start = u32::MAX - 2999; // 2^32 − 3000
    let mut out = Vec::new();
    for i in 0..150u32 {
        let ts = start.wrapping_add(i * 40);
        f.push(
            TagKind::Video,
            ts,
            avc_tag(i % 25 == 0, 80, &[if i % 25 == 0 { IDR } else { P_SLICE }]),
        );
        f.push(TagKind::Audio, ts.wrapping_add(5), aac_raw());
        out.extend(drain(&mut f));
    }
    let fr = frames(&out);
    let video: Vec<_> = fr.iter().filter(|f| f.track == 0).collect();
    assert_eq!(video.len(), 150);
    for w in video.windows(2) {
        assert_eq!(wrap_delta(w[0].dts, w[1].dts), 40 * 90);
        assert_eq!(wrap_delta(w[1].dts, w[1].pts), 80 * 90);
    }
    assert_eq!(video[0].dts, (i64::from(start) * 90) & TS_MASK);
    assert_eq!(f.stats().backwards, 0);
}

/// Unwrapped ms of each pushed raw timestamp, by [`FlvIngest::unwrap_ms`].
fn unwrapped(raw: &[u32]) -> Vec<i64> {
    let mut f = FlvIngest::default();
    raw.iter().map(|&t| f.unwrap_ms(t)).collect()
}

proptest! {
    /// From any start, steps of less than 2^31 ms (forward, or small ones
    /// back) are recovered exactly across any number of 2^32 wraps.
    #[test]
    fn unwrapping_recovers_steps(start in any::<u32>(), steps in proptest::collection::vec(-5_000i64..(1 << 31), 1..60)) {
        let mut t = i64::from(start);
        let mut raw = vec![start];
        let mut want = vec![t];
        for s in &steps {
            t += s;
            raw.push(t.rem_euclid(1 << 32) as u32);
            want.push(t);
        }
        prop_assert_eq!(unwrapped(&raw), want);
    }

    /// Frames at increasing timestamps from near the wrap come out with
    /// 33-bit DTS that advance by exactly the steps, whatever the start.
    #[test]
    fn frames_stay_monotonic_across_the_wrap(back in 0u32..100_000, steps in proptest::collection::vec(1u32..2_000, 1..80)) {
        let (_, asc, _, _) = fixture_configs();
        let mut f = FlvIngest::default();
        f.expect(false, true);
        f.push(TagKind::Audio, 0, asc);
        let mut ts = 0u32.wrapping_sub(back);
        let mut prev: Option<i64> = None;
        for s in steps {
            ts = ts.wrapping_add(s);
            f.push(TagKind::Audio, ts, aac_raw());
            for e in drain(&mut f) {
                if let DemuxEvent::Frame(fr) = e {
                    if let Some(p) = prev {
                        prop_assert_eq!(wrap_delta(p, fr.dts), i64::from(s) * 90);
                    }
                    prop_assert!((0..TS_WRAP).contains(&fr.dts));
                    prev = Some(fr.dts);
                }
            }
        }
        prop_assert_eq!(f.stats().backwards, 0);
    }

    /// Arbitrary tag bodies (and arbitrary ones after valid configurations)
    /// never panic, every frame follows its Tracks, and memory stays within
    /// the caps even when nothing is pulled.
    #[test]
    fn arbitrary_tags_never_panic_and_stay_bounded(
        tags in proptest::collection::vec((any::<bool>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..200),
        configure in any::<bool>(),
        pull in any::<bool>(),
    ) {
        let cfg = FlvConfig { max_held_frames: 8, max_held_bytes: 512, max_frame_bytes: 256, probe_ms: 1000 };
        let mut f = FlvIngest::new(cfg);
        if configure {
            let (avc, asc, _, _) = fixture_configs();
            f.push(TagKind::Video, 0, avc);
            f.push(TagKind::Audio, 0, asc);
        }
        let mut events = Vec::new();
        for (video, ts, mut body) in tags {
            // Steer half of the bodies into the AVC/AAC/hvc1 paths.
            if let Some(b) = body.first_mut() {
                if *b & 1 == 0 {
                    *b = if video { [0x17, 0x27, 0x91, 0x90][usize::from(*b >> 6)] } else { 0xAF };
                }
            }
            let kind = if video { TagKind::Video } else { TagKind::Audio };
            f.push(kind, ts, Bytes::from(body));
            prop_assert!(f.held_bytes <= cfg.max_held_bytes + cfg.max_frame_bytes);
            prop_assert!(f.held.len() <= cfg.max_held_frames);
            prop_assert!(f.out.len() <= 2 * cfg.max_held_frames + 16 + 1);
            prop_assert!(f.out_bytes <= 2 * cfg.max_held_bytes + cfg.max_frame_bytes);
            if pull {
                events.extend(drain(&mut f));
            }
        }
        f.finish();
        events.extend(drain(&mut f));
        if pull {
            assert_well_formed(&events);
        }
        prop_assert_eq!(f.buffered_bytes(), 0);
        let s = f.stats();
        prop_assert!(s.frames + s.queue_overflows >= frames(&events).len() as u64);
    }
}

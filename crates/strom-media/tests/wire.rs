//! Property and real-stream tests of the cluster wire format: arbitrary
//! segments round-trip exactly and encode deterministically, chunking is
//! invisible to the decoder, any single corrupted byte is caught, version 1
//! messages still read (and re-encode as version 2), and a real segment of
//! assets/demo.ts muxes to the same HLS bytes after a round trip.

use bytes::Bytes;
use proptest::prelude::*;
use std::sync::Arc;
use strom_media::segmenter::{Segmenter, SegmenterConfig};
use strom_media::timeline::{Mapped, Timeline, TimelineConfig};
use strom_media::ts::crc::crc32_mpeg2;
use strom_media::ts::demux::{DemuxEvent, Demuxer};
use strom_media::ts::mux::mux_segment;
use strom_media::wire::{
    encode_heartbeat, encode_segment, encode_segment_v1, is_descriptor_loop, Decoder, Message, WireError,
    MAX_DESCRIPTOR_BYTES, VERSION, VERSION_1,
};
use strom_media::{Codec, Frame, Segment, Track, TrackParams, CLOCK_HZ};

const DEMO: &[u8] = include_bytes!("../../../assets/demo.ts");

/// 2025-11-22T00:00:00Z in 90 kHz ticks, the wall clock given to the timeline.
const NOW: i64 = 1_763_769_600 * CLOCK_HZ;

// ---------------------------------------------------------------------------
// Strategies

/// Timestamps anywhere in i64, biased towards the bounds and realistic UTC.
fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX),
        (i64::MAX - 1000)..=i64::MAX,
        i64::MIN..=(i64::MIN + 1000),
        NOW..NOW + 3600 * CLOCK_HZ,
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn codec() -> impl Strategy<Value = Codec> {
    prop_oneof![
        Just(Codec::H264),
        Just(Codec::H265),
        Just(Codec::Aac),
        Just(Codec::MpegAudio),
        Just(Codec::Ac3),
        Just(Codec::Eac3),
        Just(Codec::Teletext),
        Just(Codec::DvbSubtitle),
        Just(Codec::Scte35),
    ]
}

/// A descriptor loop: whole `(tag, length, body)` entries, usually none,
/// sometimes up to the 1023-byte bound.
fn descriptors() -> impl Strategy<Value = Bytes> {
    let entry = (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..=255));
    prop_oneof![
        2 => Just(Bytes::new()),
        2 => proptest::collection::vec(entry, 1..8).prop_map(|entries| {
            let mut out = Vec::new();
            for (tag, body) in entries {
                if out.len() + 2 + body.len() > MAX_DESCRIPTOR_BYTES {
                    break;
                }
                out.push(tag);
                out.push(body.len() as u8);
                out.extend_from_slice(&body);
            }
            Bytes::from(out)
        }),
    ]
}

/// A declared target duration: usually 0 (unknown) or a few seconds.
fn target_duration() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), 1u32..=30, any::<u32>()]
}

fn track() -> impl Strategy<Value = Track> {
    let params = (
        proptest::collection::vec(bytes(40), 0..4),
        any::<u16>(),
        any::<u16>(),
        proptest::option::of(any::<(u32, u32)>()),
        // Arbitrary Unicode, empty included (Some("") must stay distinct from None).
        proptest::option::of("\\PC{0,24}"),
        any::<u32>(),
        any::<u8>(),
        any::<u8>(),
        proptest::option::of("\\PC{0,8}"),
        descriptors(),
    )
        .prop_map(
            |(
                parameter_sets,
                width,
                height,
                frame_rate,
                codec_string,
                sample_rate,
                channels,
                aac_object_type,
                language,
                descriptors,
            )| {
                TrackParams {
                    parameter_sets,
                    width,
                    height,
                    frame_rate,
                    codec_string,
                    sample_rate,
                    channels,
                    aac_object_type,
                    language,
                    descriptors,
                }
            },
        );
    (any::<u16>(), codec(), params).prop_map(|(id, codec, params)| Track { id, codec, params })
}

fn segment() -> impl Strategy<Value = Segment> {
    proptest::collection::vec(track(), 0..=6).prop_flat_map(|tracks| {
        let n = tracks.len() as u16;
        let frame = (0..n.max(1), any::<bool>(), timestamp(), timestamp(), bytes(200)).prop_map(
            |(track, keyframe, dts, pts, data)| Frame {
                track,
                dts,
                pts,
                keyframe,
                data,
            },
        );
        // Frames need a track to refer to.
        let frames = proptest::collection::vec(frame, if n == 0 { 0..1 } else { 0..24 });
        (
            any::<u64>(),
            timestamp(),
            timestamp(),
            any::<bool>(),
            target_duration(),
            frames,
        )
            .prop_map(
                move |(seq, start, duration, discontinuity, target_duration, frames)| Segment {
                    seq,
                    start,
                    duration,
                    discontinuity,
                    target_duration,
                    tracks: Arc::from(tracks.clone()),
                    frames,
                },
            )
    })
}

/// What version 1 can carry: no target duration, no descriptors, codecs 1–6.
fn v1_compatible(seg: &Segment) -> Segment {
    let tracks: Vec<Track> = seg
        .tracks
        .iter()
        .map(|t| Track {
            codec: match t.codec {
                Codec::Teletext | Codec::DvbSubtitle | Codec::Scte35 => Codec::Ac3,
                c => c,
            },
            params: TrackParams {
                descriptors: Bytes::new(),
                ..t.params.clone()
            },
            ..t.clone()
        })
        .collect();
    Segment {
        target_duration: 0,
        tracks: Arc::from(tracks),
        ..seg.clone()
    }
}

/// A version 1 heartbeat, as a version 1 node writes it: the version 2
/// bytes with the version byte and the CRC rewritten.
fn heartbeat_v1(newest: Option<u64>) -> Bytes {
    let mut m = encode_heartbeat(newest).to_vec();
    m[4] = VERSION_1;
    let body = m.len() - 4;
    let crc = crc32_mpeg2(&m[..body]);
    m[body..].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(m)
}

/// A message and its encoding: version 2 as writers write it, or (about a
/// third of the time) version 1 as an older peer wrote it.
fn message() -> impl Strategy<Value = (Message, Bytes)> {
    prop_oneof![
        3 => segment().prop_map(|s| (encode_segment(&s), Message::Segment(s))),
        2 => segment().prop_map(|s| {
            let s = v1_compatible(&s);
            let bytes = encode_segment_v1(&s).expect("v1-compatible");
            (bytes, Message::Segment(s))
        }),
        1 => (proptest::option::of(0..u64::MAX), any::<bool>()).prop_map(|(newest, v1)| {
            let bytes = if v1 { heartbeat_v1(newest) } else { encode_heartbeat(newest) };
            (bytes, Message::Heartbeat { newest })
        }),
    ]
    .prop_map(|(bytes, m)| (m, bytes))
}

/// Pushes `chunks` one by one, pulling until `None` after each.
fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<Message>, WireError> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for c in chunks {
        d.push(c);
        while let Some(m) = d.pull()? {
            out.push(m);
        }
    }
    assert_eq!(d.buffered(), 0, "a whole stream leaves nothing behind");
    Ok(out)
}

// ---------------------------------------------------------------------------
// Properties

proptest! {
    #[test]
    fn segments_round_trip_exactly(seg in segment()) {
        let bytes = encode_segment(&seg);
        let decoded = decode_chunks([&bytes[..]]);
        prop_assert_eq!(decoded, Ok(vec![Message::Segment(seg)]));
    }

    #[test]
    fn encoding_is_deterministic_and_canonical(seg in segment()) {
        let a = encode_segment(&seg);
        // A deep copy (fresh allocations) encodes to the same bytes...
        let copy = Segment {
            tracks: Arc::from(seg.tracks.to_vec()),
            frames: seg.frames.iter().map(|f| Frame { data: Bytes::copy_from_slice(&f.data), ..f.clone() }).collect(),
            ..seg.clone()
        };
        prop_assert_eq!(&a, &encode_segment(&copy));
        // ...and so does the decoded segment: one message per segment.
        let decoded = decode_chunks([&a[..]]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(matches!(&decoded[..], [Message::Segment(_)]));
        if let [Message::Segment(d)] = &decoded[..] {
            prop_assert_eq!(&a, &encode_segment(d));
        }
    }

    #[test]
    fn generated_descriptors_are_loops(seg in segment()) {
        for t in seg.tracks.iter() {
            prop_assert!(is_descriptor_loop(&t.params.descriptors));
            prop_assert!(t.params.descriptors.len() <= MAX_DESCRIPTOR_BYTES);
        }
    }

    #[test]
    fn version_1_still_reads_and_re_encodes_as_version_2(seg in segment()) {
        let v1seg = v1_compatible(&seg);
        let v1 = encode_segment_v1(&v1seg).ok_or_else(|| TestCaseError::fail("v1-compatible"))?;
        prop_assert_eq!(v1[4], VERSION_1);
        let decoded = decode_chunks([&v1[..]]);
        prop_assert_eq!(&decoded, &Ok(vec![Message::Segment(v1seg.clone())]));
        // Canonical per version: the decoded segment gives the same v1 bytes...
        let Ok(msgs) = decoded else { unreachable!() };
        let [Message::Segment(d)] = &msgs[..] else { unreachable!() };
        prop_assert_eq!(encode_segment_v1(d), Some(v1.clone()));
        // ...and a writer re-encodes it as version 2, the same segment inside.
        let v2 = encode_segment(d);
        prop_assert_eq!(v2[4], VERSION);
        prop_assert_eq!(decode_chunks([&v2[..]]), Ok(vec![Message::Segment(v1seg)]));
        // A segment with anything v1 can't carry has no v1 encoding.
        let needs_v2 = seg.target_duration != 0
            || seg.tracks.iter().any(|t| {
                !t.params.descriptors.is_empty()
                    || matches!(t.codec, Codec::Teletext | Codec::DvbSubtitle | Codec::Scte35)
            });
        prop_assert_eq!(encode_segment_v1(&seg).is_none(), needs_v2);
    }

    #[test]
    fn chunking_is_invisible(
        messages in proptest::collection::vec(message(), 1..5),
        sizes in proptest::collection::vec(1usize..300, 1..50),
    ) {
        let stream: Vec<u8> = messages.iter().flat_map(|(_, b)| b.to_vec()).collect();
        let messages: Vec<Message> = messages.into_iter().map(|(m, _)| m).collect();
        let mut chunks = Vec::new();
        let mut pos = 0;
        for size in sizes.iter().cycle() {
            if pos == stream.len() {
                break;
            }
            let end = (pos + size).min(stream.len());
            chunks.push(&stream[pos..end]);
            pos = end;
        }
        let whole = decode_chunks([&stream[..]]);
        prop_assert_eq!(&whole, &Ok(messages));
        prop_assert_eq!(decode_chunks(chunks), whole);
    }

    #[test]
    fn any_single_byte_flip_is_an_error((_, good) in message(), mask in 1u8..=255) {
        for i in 0..good.len() {
            let mut bad = good.to_vec();
            bad[i] ^= mask;
            // A decoder sized for this message: a length flipped upwards is
            // then rejected instead of waiting for more bytes.
            let mut d = Decoder::with_max_message(good.len());
            d.push(&bad);
            let r = d.pull();
            prop_assert!(r.is_err(), "byte {} ^ {:#04x} gave {:?}", i, mask, r);
        }
    }
}

#[test]
fn a_flipped_length_never_yields_a_message() {
    // With the default limit a length flipped upwards waits for more bytes;
    // whatever follows, the CRC then fails.
    let good = encode_heartbeat(Some(42));
    for mask in [0x01u8, 0x10, 0x80] {
        let mut bad = good.to_vec();
        bad[9] ^= mask;
        let mut d = Decoder::new();
        d.push(&bad);
        let mut r = d.pull();
        while r == Ok(None) {
            d.push(&encode_heartbeat(None));
            r = d.pull();
        }
        assert!(matches!(r, Err(WireError::Crc { .. })), "mask {mask:#04x}: {r:?}");
    }
}

// ---------------------------------------------------------------------------
// A real stream

/// assets/demo.ts through the node's path: demux → timeline → segmenter,
/// numbered from 1000 as the node's pipeline numbers them.
fn demo_segments() -> Vec<Segment> {
    let mut demuxer = Demuxer::new();
    let mut timeline = Timeline::new(TimelineConfig::default());
    let mut segmenter = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
    let mut segments = Vec::new();
    let mut handle = |event: DemuxEvent, segments: &mut Vec<Segment>| match event {
        DemuxEvent::Tracks(t) => segments.extend(segmenter.set_tracks(t)),
        DemuxEvent::Frame(f) => {
            if let Mapped::Frame { frame, .. } = timeline.map(f, NOW) {
                segments.extend(segmenter.push(frame));
            }
        }
    };
    for chunk in DEMO.chunks(64 * 1024) {
        demuxer.push(chunk);
        while let Some(event) = demuxer.pull() {
            handle(event, &mut segments);
        }
    }
    demuxer.flush();
    while let Some(event) = demuxer.pull() {
        handle(event, &mut segments);
    }
    for (seq, seg) in (1000..).zip(&mut segments) {
        seg.seq = seq;
    }
    segments
}

#[test]
fn demo_segments_round_trip_to_identical_hls_bytes() {
    let segments = demo_segments();
    assert!(segments.len() >= 3, "demo.ts is 10 s: {} segments", segments.len());
    let first = &segments[0];
    assert!(first.duration >= 2 * CLOCK_HZ && first.duration < 3 * CLOCK_HZ);
    assert!(first.tracks.iter().any(|t| t.codec == Codec::H264));
    assert!(first.tracks.iter().any(|t| t.codec == Codec::Aac));
    assert!(first.frames.len() > 100);
    // The declared target duration travels with every segment, the same on all.
    assert!(first.target_duration >= 2);
    assert!(segments.iter().all(|s| s.target_duration == first.target_duration));

    // The edge reads every segment off one connection, in MTU-sized reads.
    let stream: Vec<u8> = segments.iter().flat_map(|s| encode_segment(s).to_vec()).collect();
    let decoded = decode_chunks(stream.chunks(1400)).expect("valid stream");
    assert_eq!(decoded.len(), segments.len());
    for (orig, msg) in segments.iter().zip(&decoded) {
        let Message::Segment(seg) = msg else {
            panic!("segment expected, got {msg:?}");
        };
        assert_eq!(seg, orig);
        assert!(
            mux_segment(seg) == mux_segment(orig),
            "segment {} muxes differently",
            seg.seq
        );
    }
}

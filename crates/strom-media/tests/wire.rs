//! Property and real-stream tests of the cluster wire format: arbitrary
//! segments round-trip exactly and encode deterministically, chunking is
//! invisible to the decoder, any single corrupted byte is caught, and a real
//! segment of assets/demo.ts muxes to the same HLS bytes after a round trip.

use bytes::Bytes;
use proptest::prelude::*;
use std::sync::Arc;
use strom_media::segmenter::{Segmenter, SegmenterConfig};
use strom_media::timeline::{Mapped, Timeline, TimelineConfig};
use strom_media::ts::demux::{DemuxEvent, Demuxer};
use strom_media::ts::mux::mux_segment;
use strom_media::wire::{encode_heartbeat, encode_segment, Decoder, Message, WireError};
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
    ]
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
                    descriptors: Bytes::new(),
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
        (any::<u64>(), timestamp(), timestamp(), any::<bool>(), frames).prop_map(
            move |(seq, start, duration, discontinuity, frames)| Segment {
                seq,
                start,
                duration,
                discontinuity,
                target_duration: 0,
                tracks: Arc::from(tracks.clone()),
                frames,
            },
        )
    })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        4 => segment().prop_map(Message::Segment),
        1 => proptest::option::of(0..u64::MAX).prop_map(|newest| Message::Heartbeat { newest }),
    ]
}

fn encode(m: &Message) -> Bytes {
    match m {
        Message::Segment(s) => encode_segment(s),
        Message::Heartbeat { newest } => encode_heartbeat(*newest),
        Message::Unknown { .. } => unreachable!("not generated"),
    }
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
    fn chunking_is_invisible(
        messages in proptest::collection::vec(message(), 1..5),
        sizes in proptest::collection::vec(1usize..300, 1..50),
    ) {
        let stream: Vec<u8> = messages.iter().flat_map(|m| encode(m).to_vec()).collect();
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
    fn any_single_byte_flip_is_an_error(m in message(), mask in 1u8..=255) {
        let good = encode(&m);
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

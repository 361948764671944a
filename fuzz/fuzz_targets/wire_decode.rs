//! Fuzz target for the cluster wire decoder.
//!
//! The first two bytes seed the chunk sizes; the rest is pushed in those
//! chunks, pulling until `None` or an error after every push. Checked:
//! - every decoded message is the canonical encoding of what it decoded to
//!   in its version: a version 2 segment or heartbeat re-encodes to exactly
//!   the bytes it was read from, a version 1 segment re-encodes with
//!   `encode_segment_v1` to exactly its bytes (and a version 1 heartbeat to
//!   the version 2 one with only the version byte and CRC changed); the
//!   segment re-encoded as version 2 decodes to an equal segment;
//! - the buffer stays bounded by the message limit plus one push;
//! - after an error every pull returns the same error, and pushes are dropped;
//! - the same bytes pushed in one piece give the same messages and outcome.
//!
//! Random bytes almost never carry a valid CRC, so for odd seeds the target
//! first writes correct CRCs into every message it can frame: that way the
//! fuzzer reaches the payload parser instead of stopping at the checksum.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_media::ts::crc::crc32_mpeg2;
use strom_media::wire::{
    encode_heartbeat, encode_segment, encode_segment_v1, Decoder, Message, WireError, CRC_LEN, HEADER_LEN,
    KIND_HEARTBEAT, KIND_SEGMENT, VERSION, VERSION_1,
};

/// Small enough that a fuzzed length can't make the fuzzer allocate much.
const MAX_MESSAGE: usize = 1 << 20;

/// Messages decoded and how the stream ended (an error, or waiting for more).
type Outcome = (Vec<Message>, Option<WireError>);

/// Checks a message decoded from `raw`, the exact bytes it spanned.
fn check_message(m: &Message, raw: &[u8]) {
    let version = raw[4];
    assert!(version == VERSION || version == VERSION_1, "version {version} accepted");
    match m {
        Message::Segment(seg) => {
            let again = encode_segment(seg);
            if version == VERSION {
                assert!(again[..] == raw[..], "segment does not re-encode to its bytes");
            } else {
                let v1 = encode_segment_v1(seg).expect("a version 1 segment has a version 1 encoding");
                assert!(v1[..] == raw[..], "version 1 segment does not re-encode to its bytes");
                assert_eq!(seg.target_duration, 0);
                assert!(seg.tracks.iter().all(|t| t.params.descriptors.is_empty()));
            }
            let mut d = Decoder::new();
            d.push(&again);
            match d.pull() {
                Ok(Some(Message::Segment(s))) => assert_eq!(&s, seg),
                other => panic!("re-encoded segment decodes to {other:?}"),
            }
        }
        Message::Heartbeat { newest } => {
            let again = encode_heartbeat(*newest);
            let body = again.len() - CRC_LEN;
            assert!(
                again.len() == raw.len() && again[..4] == raw[..4] && again[5..body] == raw[5..body],
                "heartbeat does not re-encode to its bytes"
            );
            if version == VERSION {
                assert!(again[..] == raw[..], "heartbeat does not re-encode to its bytes");
            }
        }
        Message::Unknown { kind } => {
            assert!(*kind != KIND_SEGMENT && *kind != KIND_HEARTBEAT);
            assert_eq!(raw[5], *kind);
        }
    }
}

fn decode_chunked(stream: &[u8], mut seed: u32) -> Outcome {
    let mut d = Decoder::with_max_message(MAX_MESSAGE);
    let mut messages = Vec::new();
    let mut pushed = 0;
    // Stream offset of the next message.
    let mut consumed = 0;
    while pushed < stream.len() {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = match seed >> 29 {
            0 => 1,
            1 => 10,
            2 => 14,
            _ => 1 + (seed >> 8) as usize % 3000,
        }
        .min(stream.len() - pushed);
        d.push(&stream[pushed..pushed + n]);
        pushed += n;
        assert_eq!(d.buffered(), pushed - consumed);
        loop {
            match d.pull() {
                Ok(Some(m)) => {
                    let end = pushed - d.buffered();
                    check_message(&m, &stream[consumed..end]);
                    consumed = end;
                    messages.push(m);
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(d.buffered(), 0);
                    for _ in 0..2 {
                        d.push(&stream[..stream.len().min(64)]);
                        assert_eq!(d.buffered(), 0, "push after an error was kept");
                        assert_eq!(d.pull(), Err(e.clone()), "decoder not poisoned");
                    }
                    return (messages, Some(e));
                }
            }
        }
        assert!(d.buffered() <= MAX_MESSAGE + n, "buffer unbounded: {}", d.buffered());
    }
    (messages, None)
}

fn decode_whole(stream: &[u8]) -> Outcome {
    let mut d = Decoder::with_max_message(MAX_MESSAGE);
    d.push(stream);
    let mut messages = Vec::new();
    loop {
        match d.pull() {
            Ok(Some(m)) => messages.push(m),
            Ok(None) => return (messages, None),
            Err(e) => return (messages, Some(e)),
        }
    }
}

/// Overwrites the CRC of every complete message, following the length fields.
fn fix_crcs(stream: &mut [u8]) {
    let mut pos = 0;
    while let Some(header) = stream.get(pos..pos + HEADER_LEN) {
        let len = u32::from_be_bytes([header[6], header[7], header[8], header[9]]) as usize;
        let body_end = pos + HEADER_LEN + len;
        let Some(crc) = stream.get(pos..body_end).map(crc32_mpeg2) else {
            return;
        };
        let Some(slot) = stream.get_mut(body_end..body_end + CRC_LEN) else {
            return;
        };
        slot.copy_from_slice(&crc.to_be_bytes());
        pos = body_end + CRC_LEN;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let seed = u16::from_le_bytes(*head);
    let mut stream = stream.to_vec();
    if seed & 1 == 1 {
        fix_crcs(&mut stream);
    }
    let chunked = decode_chunked(&stream, u32::from(seed) | 1);
    assert!(chunked == decode_whole(&stream), "chunking changed the outcome");
});

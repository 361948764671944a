//! Fuzz target for the RTMP chunk stream and sessions (`strom_media::rtmp`).
//!
//! The first byte picks what the rest is fed to: bits 0–1 choose a
//! `ServerSession` past a canned plain handshake (0 and 3), a play-mode
//! `ClientSession` past a canned S0+S1+S2 (1), or the bare `ChunkDecoder`
//! (2); bits 2–7 set the size of the pieces the bytes are fed in (1–64), so
//! split points are exercised. The server side behaves like the node:
//! publishes are accepted, plays refused.
//!
//! Invariants: nothing panics; a failed session stays failed with the same
//! error; decoded messages respect the message-length cap; counters add up
//! (bytes in equals bytes fed until the first error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_media::rtmp::chunk::ChunkDecoder;
use strom_media::rtmp::handshake::PACKET_LEN;
use strom_media::rtmp::{ClientConfig, ClientEvent, ClientMode, ClientSession, Limits, ServerEvent, ServerSession};

const LIMITS: Limits = Limits {
    max_message_len: 64 << 10,
    max_chunk_streams: 16,
    max_partial_bytes: 128 << 10,
    max_streams: 4,
    max_held_bytes: 64 << 10,
};

fn handshake() -> Vec<u8> {
    let mut b = vec![3u8];
    b.resize(1 + 2 * PACKET_LEN, 0);
    b
}

fn server(data: &[u8], piece: usize) {
    let mut s = ServerSession::new(LIMITS);
    let hs = handshake();
    s.feed(&hs).expect("canned handshake");
    let mut failed = None;
    // Bytes counted: every piece up to the first that failed.
    let mut fed = hs.len();
    for p in data.chunks(piece) {
        if failed.is_none() {
            fed += p.len();
        }
        match s.feed(p) {
            Ok(()) => assert!(failed.is_none(), "a failed session fed again"),
            Err(e) => {
                if let Some(f) = &failed {
                    assert_eq!(f, &e, "a failed session keeps its error");
                }
                failed = Some(e);
            }
        }
        while let Some(e) = s.poll_event() {
            match e {
                ServerEvent::PublishRequested { stream_id, .. } => {
                    s.accept_publish(stream_id)
                        .expect("a requested publish can be accepted");
                }
                ServerEvent::PlayRequested { stream_id, .. } => {
                    s.reject_play(stream_id, "NetStream.Play.StreamNotFound", "no")
                        .expect("a requested play can be refused");
                }
                ServerEvent::Media { payload, .. } => {
                    assert!(payload.len() <= LIMITS.max_message_len);
                }
                _ => {}
            }
        }
        let _ = s.take_output();
    }
    assert_eq!(s.stats().bytes_in, fed as u64);
}

fn client(data: &[u8], piece: usize) {
    let mut c = ClientSession::new(ClientConfig {
        app: "live".into(),
        tc_url: "rtmp://h/live".into(),
        mode: ClientMode::Play { name: "x".into() },
        limits: LIMITS,
    });
    let _ = c.take_output();
    let mut s0s1s2 = vec![3u8];
    s0s1s2.resize(1 + 2 * PACKET_LEN, 0);
    c.feed(&s0s1s2).expect("canned handshake");
    for p in data.chunks(piece) {
        if c.feed(p).is_err() {
            assert!(c.feed(p).is_err(), "a failed session stays failed");
            break;
        }
        while let Some(e) = c.poll_event() {
            if let ClientEvent::Media { payload, .. } = e {
                assert!(payload.len() <= LIMITS.max_message_len);
            }
        }
        let _ = c.take_output();
    }
}

fn decoder(data: &[u8], piece: usize) {
    let mut dec = ChunkDecoder::new(LIMITS);
    for p in data.chunks(piece) {
        let mut input = p;
        loop {
            match dec.decode(&mut input) {
                Ok(Some(m)) => {
                    assert!(m.payload.len() <= LIMITS.max_message_len);
                    assert!((2..=65_599).contains(&m.csid));
                }
                Ok(None) => {
                    assert!(input.is_empty(), "None only when the input is used up");
                    break;
                }
                Err(_) => return,
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let piece = (first >> 2) as usize + 1;
    match first & 3 {
        1 => client(rest, piece),
        2 => decoder(rest, piece),
        _ => server(rest, piece),
    }
});

//! The RTMP handshake (RTMP 1.0 §5.2), server and client side, sans I/O.
//!
//! C0/S0 is one version byte (3). C1/S1 and C2/S2 are 1536 bytes: time (4),
//! a field that is zero in the plain handshake (4), then random bytes. S2
//! echoes C1 and C2 echoes S1.
//!
//! The digest ("complex") handshake of Flash players and some hardware
//! encoders hides an HMAC-SHA256 digest in C1. The C1 layout has two schemes:
//! the 32-byte digest starts at `(b[8]+b[9]+b[10]+b[11]) % 728 + 12`, or at
//! `(b[772]+b[773]+b[774]+b[775]) % 728 + 776`. It is computed over the 1504
//! other bytes with the first 30 bytes of the player key ("Genuine Adobe
//! Flash Player 001"). A server that sees a valid one answers with an S1
//! digested the same way with the first 36 bytes of the server key
//! ("Genuine Adobe Flash Media Server 001"), and an S2 whose last 32 bytes
//! are HMAC(HMAC(full 68-byte server key, C1 digest), S2[..1504]). Such
//! clients may refuse a plain answer, so the server detects the scheme.
//!
//! Invariants: at most one packet (1537 bytes) is buffered; C2 is never
//! validated (many encoders send garbage there); the server's random bytes
//! are derived from C1, so the code needs no entropy source (the bytes are
//! not a secret in RTMP).

use bytes::{BufMut, BytesMut};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::RtmpError;

/// The protocol version in C0/S0 (§5.2.2). RTMPE (6) and others are refused.
pub const VERSION: u8 = 3;
/// Length of C1/S1/C2/S2 in bytes (§5.2.3).
pub const PACKET_LEN: usize = 1536;

const DIGEST_LEN: usize = 32;
/// The shared 32-byte tail of both well-known keys.
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC, 0x5D,
    0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
const PLAYER_KEY_TEXT: &[u8; 30] = b"Genuine Adobe Flash Player 001";
const SERVER_KEY_TEXT: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";
/// The version S1 carries in a digest handshake (any non-zero value works).
const SERVER_VERSION: [u8; 4] = [0x0D, 0x0E, 0x0A, 0x0D];

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Result<[u8; DIGEST_LEN], RtmpError> {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).map_err(|_| RtmpError::Handshake("bad hmac key"))?;
    for p in parts {
        mac.update(p);
    }
    Ok(mac.finalize().into_bytes().into())
}

/// The server key, whole (68 bytes) for S2, its first 36 bytes for S1.
fn server_key() -> [u8; 68] {
    let mut k = [0u8; 68];
    k[..36].copy_from_slice(SERVER_KEY_TEXT);
    k[36..].copy_from_slice(&KEY_TAIL);
    k
}

/// Where the digest sits in a 1536-byte packet under scheme 0 or 1.
fn digest_offset(packet: &[u8; PACKET_LEN], scheme: u8) -> usize {
    let base = if scheme == 0 { 8 } else { 772 };
    let sum: usize = packet[base..base + 4].iter().map(|&b| b as usize).sum();
    sum % 728 + base + 4
}

/// HMAC-SHA256 of the packet without its 32 digest bytes at `offset`.
fn packet_digest(packet: &[u8; PACKET_LEN], offset: usize, key: &[u8]) -> Result<[u8; DIGEST_LEN], RtmpError> {
    hmac(key, &[&packet[..offset], &packet[offset + DIGEST_LEN..]])
}

/// The scheme and digest of a C1 that carries a valid digest.
fn client_digest(c1: &[u8; PACKET_LEN]) -> Option<(u8, [u8; DIGEST_LEN])> {
    (0..2).find_map(|scheme| {
        let off = digest_offset(c1, scheme);
        let want = packet_digest(c1, off, PLAYER_KEY_TEXT).ok()?;
        (c1[off..off + DIGEST_LEN] == want).then_some((scheme, want))
    })
}

/// Fills `buf` with bytes from SHA-256 in counter mode over `seed`: filler
/// that differs per connection without an entropy source.
fn fill(buf: &mut [u8], seed: &[u8]) {
    for (i, chunk) in buf.chunks_mut(DIGEST_LEN).enumerate() {
        let block = Sha256::new()
            .chain_update(seed)
            .chain_update((i as u32).to_be_bytes())
            .finalize();
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// Collects exactly `N` bytes across feeds.
struct Collect<const N: usize> {
    buf: Box<[u8; N]>,
    len: usize,
}

impl<const N: usize> Collect<N> {
    fn new() -> Self {
        Collect {
            buf: Box::new([0; N]),
            len: 0,
        }
    }

    /// Takes what it still needs from `input`; true once full.
    fn take(&mut self, input: &mut &[u8]) -> bool {
        let n = (N - self.len).min(input.len());
        self.buf[self.len..self.len + n].copy_from_slice(&input[..n]);
        self.len += n;
        *input = &input[n..];
        self.len == N
    }
}

enum ServerState {
    /// Waiting for C0 and C1.
    C0C1(Collect<{ PACKET_LEN + 1 }>),
    /// S0+S1+S2 sent; waiting for C2.
    C2(Collect<PACKET_LEN>),
    Done,
}

/// Server side: reads C0+C1, answers S0+S1+S2, then reads C2.
pub struct ServerHandshake {
    state: ServerState,
    digest: bool,
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    pub fn new() -> Self {
        ServerHandshake {
            state: ServerState::C0C1(Collect::new()),
            digest: false,
        }
    }

    /// True when C1 carried a valid digest and the answer was digested too.
    pub fn is_digest(&self) -> bool {
        self.digest
    }

    /// Consumes handshake bytes from the front of `input` and queues the
    /// answer in `out`. Returns true once C2 is read; what is left in
    /// `input` then belongs to the chunk stream.
    pub fn feed(&mut self, input: &mut &[u8], out: &mut BytesMut) -> Result<bool, RtmpError> {
        loop {
            match &mut self.state {
                ServerState::C0C1(c) => {
                    if c.len == 0 && !input.is_empty() && input[0] != VERSION {
                        return Err(RtmpError::Handshake("C0 is not version 3"));
                    }
                    if !c.take(input) {
                        return Ok(false);
                    }
                    let mut c1 = [0u8; PACKET_LEN];
                    c1.copy_from_slice(&c.buf[1..]);
                    self.digest = self.answer(&c1, out)?;
                    self.state = ServerState::C2(Collect::new());
                }
                ServerState::C2(c) => {
                    if !c.take(input) {
                        return Ok(false);
                    }
                    self.state = ServerState::Done;
                }
                ServerState::Done => return Ok(true),
            }
        }
    }

    /// Writes S0+S1+S2 for this C1; true if it was a digest handshake.
    fn answer(&self, c1: &[u8; PACKET_LEN], out: &mut BytesMut) -> Result<bool, RtmpError> {
        out.reserve(1 + 2 * PACKET_LEN);
        out.put_u8(VERSION);
        let mut s1 = [0u8; PACKET_LEN];
        fill(&mut s1[8..], &c1[..]);
        let Some((scheme, client_digest)) = client_digest(c1) else {
            // Plain: S1 = time 0, zero 0, random; S2 echoes C1.
            out.put_slice(&s1);
            out.put_slice(c1);
            return Ok(false);
        };
        let key = server_key();
        s1[4..8].copy_from_slice(&SERVER_VERSION);
        let off = digest_offset(&s1, scheme);
        let d = packet_digest(&s1, off, &key[..36])?;
        s1[off..off + DIGEST_LEN].copy_from_slice(&d);
        out.put_slice(&s1);

        let mut s2 = [0u8; PACKET_LEN];
        fill(&mut s2, &s1[..]);
        let s2_key = hmac(&key, &[&client_digest])?;
        let d = hmac(&s2_key, &[&s2[..PACKET_LEN - DIGEST_LEN]])?;
        s2[PACKET_LEN - DIGEST_LEN..].copy_from_slice(&d);
        out.put_slice(&s2);
        Ok(true)
    }
}

enum ClientState {
    /// C0+C1 sent; waiting for S0+S1.
    S0S1(Collect<{ PACKET_LEN + 1 }>),
    /// C2 sent; waiting for S2.
    S2(Collect<PACKET_LEN>),
    Done,
}

/// Client side, plain handshake: sends C0+C1 (zero version field), reads
/// S0+S1, sends C2 (S1 echoed), reads S2.
pub struct ClientHandshake {
    state: ClientState,
}

impl ClientHandshake {
    /// Starts a handshake: C0+C1 are queued in `out`. `seed` varies C1's
    /// random bytes.
    pub fn new(out: &mut BytesMut, seed: &[u8]) -> Self {
        out.reserve(1 + PACKET_LEN);
        out.put_u8(VERSION);
        let mut c1 = [0u8; PACKET_LEN];
        fill(&mut c1[8..], seed);
        out.put_slice(&c1);
        ClientHandshake {
            state: ClientState::S0S1(Collect::new()),
        }
    }

    /// Consumes handshake bytes from the front of `input`, queuing C2 in
    /// `out` once S1 is in. Returns true once S2 is read; what is left in
    /// `input` then belongs to the chunk stream.
    pub fn feed(&mut self, input: &mut &[u8], out: &mut BytesMut) -> Result<bool, RtmpError> {
        loop {
            match &mut self.state {
                ClientState::S0S1(c) => {
                    if c.len == 0 && !input.is_empty() && input[0] != VERSION {
                        return Err(RtmpError::Handshake("S0 is not version 3"));
                    }
                    if !c.take(input) {
                        return Ok(false);
                    }
                    out.put_slice(&c.buf[1..]);
                    self.state = ClientState::S2(Collect::new());
                }
                ClientState::S2(c) => {
                    if !c.take(input) {
                        return Ok(false);
                    }
                    self.state = ClientState::Done;
                }
                ClientState::Done => return Ok(true),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn player_key() -> [u8; 62] {
        let mut k = [0u8; 62];
        k[..30].copy_from_slice(PLAYER_KEY_TEXT);
        k[30..].copy_from_slice(&KEY_TAIL);
        k
    }

    /// A C1 as a Flash player builds it, digest under `scheme`.
    fn digest_c1(scheme: u8, seed: &[u8]) -> [u8; PACKET_LEN] {
        let mut c1 = [0u8; PACKET_LEN];
        fill(&mut c1, seed);
        c1[4..8].copy_from_slice(&[0x80, 0x00, 0x07, 0x02]);
        let off = digest_offset(&c1, scheme);
        let d = packet_digest(&c1, off, &player_key()[..30]).expect("hmac");
        c1[off..off + DIGEST_LEN].copy_from_slice(&d);
        c1
    }

    fn run_server(c0c1: &[u8]) -> (ServerHandshake, BytesMut) {
        let mut hs = ServerHandshake::new();
        let mut out = BytesMut::new();
        let mut input = c0c1;
        assert!(!hs.feed(&mut input, &mut out).expect("C0+C1 accepted"));
        assert!(input.is_empty());
        (hs, out)
    }

    #[test]
    fn plain_handshake_echoes_c1_and_tolerates_any_c2() {
        let mut c0c1 = vec![VERSION];
        c0c1.extend((0..PACKET_LEN).map(|i| (i * 7) as u8));
        let (mut hs, out) = run_server(&c0c1);
        assert!(!hs.is_digest());
        assert_eq!(out.len(), 1 + 2 * PACKET_LEN);
        assert_eq!(out[0], VERSION);
        assert_eq!(&out[1..5], &[0; 4], "time");
        assert_eq!(&out[5..9], &[0; 4], "zero field of a plain S1");
        assert_eq!(&out[1 + PACKET_LEN..], &c0c1[1..], "S2 echoes C1");
        // Garbage C2 followed by chunk data.
        let mut rest = vec![0xAAu8; PACKET_LEN];
        rest.extend_from_slice(b"next");
        let mut input = &rest[..];
        let mut out = BytesMut::new();
        assert!(hs.feed(&mut input, &mut out).expect("C2 never validated"));
        assert_eq!(input, b"next");
        assert!(out.is_empty());
    }

    #[test]
    fn digest_handshake_under_both_schemes() {
        let key = server_key();
        for scheme in 0..2 {
            let c1 = digest_c1(scheme, &[scheme, 1, 2, 3]);
            let (found, client_digest) = client_digest(&c1).expect("valid digest found");
            assert_eq!(found, scheme);
            let mut c0c1 = vec![VERSION];
            c0c1.extend_from_slice(&c1);
            let (hs, out) = run_server(&c0c1);
            assert!(hs.is_digest(), "scheme {scheme}");
            let s1: [u8; PACKET_LEN] = out[1..1 + PACKET_LEN].try_into().expect("S1");
            assert_ne!(&s1[4..8], &[0; 4], "S1 carries a version");
            let off = digest_offset(&s1, scheme);
            let want = packet_digest(&s1, off, &key[..36]).expect("hmac");
            assert_eq!(&s1[off..off + DIGEST_LEN], &want, "S1 digest, scheme {scheme}");
            let s2 = &out[1 + PACKET_LEN..];
            let s2_key = hmac(&key, &[&client_digest]).expect("hmac");
            let want = hmac(&s2_key, &[&s2[..PACKET_LEN - DIGEST_LEN]]).expect("hmac");
            assert_eq!(&s2[PACKET_LEN - DIGEST_LEN..], &want, "S2 digest");
        }
    }

    #[test]
    fn a_broken_digest_gets_the_plain_answer() {
        let mut c1 = digest_c1(0, b"x");
        let off = digest_offset(&c1, 0);
        c1[off] ^= 1;
        let mut c0c1 = vec![VERSION];
        c0c1.extend_from_slice(&c1);
        let (hs, out) = run_server(&c0c1);
        assert!(!hs.is_digest());
        assert_eq!(&out[1 + PACKET_LEN..], &c1[..]);
    }

    #[test]
    fn wrong_version_is_refused() {
        for first in [0u8, 6, b'G', 0xFF] {
            let mut hs = ServerHandshake::new();
            let mut input: &[u8] = &[first, 0, 0];
            let err = hs.feed(&mut input, &mut BytesMut::new()).expect_err("refused");
            assert_eq!(err.kind(), "handshake");
        }
    }

    #[test]
    fn client_and_server_meet_byte_by_byte() {
        let mut to_server = BytesMut::new();
        let mut client = ClientHandshake::new(&mut to_server, b"seed");
        assert_eq!(to_server.len(), 1 + PACKET_LEN);
        assert_eq!(&to_server[5..9], &[0; 4], "zero version field");
        let mut server = ServerHandshake::new();
        let mut to_client = BytesMut::new();
        let (mut s_done, mut c_done) = (false, false);
        for _ in 0..4 {
            let bytes = to_server.split();
            for b in bytes.chunks(1) {
                let mut i = b;
                s_done = server.feed(&mut i, &mut to_client).expect("server");
                assert!(i.is_empty());
            }
            let bytes = to_client.split();
            for b in bytes.chunks(1) {
                let mut i = b;
                c_done = client.feed(&mut i, &mut to_server).expect("client");
                assert!(i.is_empty());
            }
        }
        assert!(s_done && c_done);
        assert!(!server.is_digest());
    }

    #[test]
    fn client_refuses_a_wrong_s0() {
        let mut out = BytesMut::new();
        let mut client = ClientHandshake::new(&mut out, b"");
        let mut input: &[u8] = &[6];
        assert_eq!(
            client.feed(&mut input, &mut out).expect_err("refused").kind(),
            "handshake"
        );
    }
}

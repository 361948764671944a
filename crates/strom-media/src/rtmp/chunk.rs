//! The RTMP chunk stream (RTMP 1.0 §5.3): messages cut into chunks, and the
//! two chunk-layer control messages, Set Chunk Size and Abort (§5.4.1–2).
//!
//! A chunk is a basic header (1–3 bytes: `fmt` and the chunk stream id,
//! csid 2..=65599), a message header of 11, 7, 3 or 0 bytes (`fmt` 0–3), an
//! optional 4-byte extended timestamp, then at most one chunk size of the
//! message's payload. Header fields missing from a compressed header repeat
//! the previous message's on the same csid:
//! - type 0: absolute timestamp, length, type id, message stream id;
//! - type 1: timestamp delta, length, type id;
//! - type 2: timestamp delta;
//! - type 3: nothing; it continues a message, or starts one with every
//!   field (the delta too) of the previous one. After a type 0 that delta
//!   is the type 0's timestamp, as the specification says (ffmpeg agrees).
//!
//! A timestamp field of 0xFFFFFF means a 32-bit extended timestamp follows.
//! It is repeated on type-3 chunks of that message and of messages started
//! by type 3 after it. Some encoders leave it out there; the decoder takes
//! the 4 bytes as the extended timestamp only if they equal the value of the
//! header's extended field or the message's timestamp, and counts the rest.
//!
//! Timestamps are 32-bit milliseconds: absolute for type 0, deltas added
//! with wrapping arithmetic otherwise, so each message gets the value the
//! sender meant modulo 2^32.
//!
//! Invariants: a message's payload is copied as its chunks arrive, so the
//! decoder keeps at most one partial header (≤ 18 bytes) besides partial
//! messages; those are bounded by [`Limits`] (message length, chunk streams
//! with state, bytes in partial messages), and a partial message's buffer
//! is at most twice what arrived of it (or 64 KiB), never its announced
//! length. Input may be split anywhere.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};

use super::message::{TYPE_ABORT, TYPE_SET_CHUNK_SIZE};
use super::{Limits, RtmpError};

/// Chunk size both sides start with (§5.4.1), in bytes.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size (§5.4.1: 31 bits), in bytes.
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Timestamp field value announcing an extended timestamp (§5.3.1.3).
pub const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
/// Lowest and highest chunk stream ids (§5.3.1.1).
pub const MIN_CSID: u32 = 2;
pub const MAX_CSID: u32 = 65_599;
/// Largest payload a message header can describe (24-bit length), bytes.
pub const MAX_MESSAGE_LEN: usize = 0xFF_FFFF;

/// Longest chunk header: 3-byte basic header, 11-byte type-0 message
/// header, 4-byte extended timestamp.
const MAX_HEADER: usize = 18;
/// What a new partial message reserves at first; it grows with its chunks.
const FIRST_RESERVE: usize = 64 << 10;

/// One RTMP message (§6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Chunk stream it came on or goes on, 2..=65599.
    pub csid: u32,
    /// Milliseconds, 32-bit, as on the wire.
    pub timestamp: u32,
    /// Message type id (§5.4, §7.1); see [`super::message`].
    pub type_id: u8,
    /// Message stream id (0 is the NetConnection).
    pub stream_id: u32,
    pub payload: Bytes,
}

/// Per-csid state: the last header seen, and the message in progress.
struct ChunkStream {
    timestamp: u32,
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// The extended timestamp of the last type 0/1/2 header, if it had one.
    ext: Option<u32>,
    /// Payload received so far of a message in progress.
    partial: Option<Vec<u8>>,
}

/// A chunk header as read, before it touches any state.
struct Header {
    fmt: u8,
    csid: u32,
    /// Timestamp or delta (extended already applied); types 0–2.
    time: u32,
    extended: bool,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// A type-3 chunk lacked the extended timestamp it should carry.
    ext_missing: bool,
}

enum Read {
    Header,
    /// Inside a chunk's payload: `left` bytes of it still to come.
    Payload {
        csid: u32,
        left: usize,
    },
}

/// Chunk stream → messages. Feed any split of the byte stream.
pub struct ChunkDecoder {
    limits: Limits,
    chunk_size: usize,
    streams: HashMap<u32, ChunkStream>,
    read: Read,
    hdr: [u8; MAX_HEADER],
    hdr_len: usize,
    partial_bytes: usize,
    messages: u64,
    aborted: u64,
    ext_missing: u64,
}

impl ChunkDecoder {
    /// Replaces the caps; what is already held stays (caps only apply to
    /// what comes next).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn new(limits: Limits) -> Self {
        ChunkDecoder {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE as usize,
            streams: HashMap::new(),
            read: Read::Header,
            hdr: [0; MAX_HEADER],
            hdr_len: 0,
            partial_bytes: 0,
            messages: 0,
            aborted: 0,
            ext_missing: 0,
        }
    }

    /// The peer's current chunk size, bytes.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size as u32
    }

    /// Whole messages decoded, Set Chunk Size and Abort included.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Partial messages dropped by Abort or by a new header on their csid.
    pub fn aborted(&self) -> u64 {
        self.aborted
    }

    /// Type-3 chunks that lacked an expected extended timestamp.
    pub fn ext_timestamp_missing(&self) -> u64 {
        self.ext_missing
    }

    /// Consumes bytes from the front of `input` up to the end of the next
    /// whole message and returns it (`None`: `input` is used up). Set Chunk
    /// Size and Abort are applied here and not returned.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Message>, RtmpError> {
        loop {
            match self.read {
                Read::Header => {
                    let have = self.hdr_len;
                    let k = (MAX_HEADER - have).min(input.len());
                    let mut bytes = self.hdr;
                    bytes[have..have + k].copy_from_slice(&input[..k]);
                    match self.parse_header(&bytes[..have + k])? {
                        None => {
                            self.hdr = bytes;
                            self.hdr_len += k;
                            *input = &input[k..];
                            return Ok(None);
                        }
                        Some((header, len)) if len >= have => {
                            *input = &input[len - have..];
                            self.hdr_len = 0;
                            if let Some(msg) = self.start_chunk(header)? {
                                return Ok(Some(msg));
                            }
                        }
                        Some((header, len)) => {
                            // Bytes peeked for an extended timestamp that
                            // was not there: they are payload, kept first.
                            self.hdr.copy_within(len..have, 0);
                            self.hdr_len = have - len;
                            if let Some(msg) = self.start_chunk(header)? {
                                return Ok(Some(msg));
                            }
                        }
                    }
                }
                Read::Payload { csid, left } => {
                    let n = if self.hdr_len > 0 {
                        let n = left.min(self.hdr_len);
                        let stash = self.hdr;
                        self.append(csid, &stash[..n])?;
                        self.hdr.copy_within(n..self.hdr_len, 0);
                        self.hdr_len -= n;
                        n
                    } else {
                        if input.is_empty() {
                            return Ok(None);
                        }
                        let n = left.min(input.len());
                        self.append(csid, &input[..n])?;
                        *input = &input[n..];
                        n
                    };
                    if left > n {
                        self.read = Read::Payload { csid, left: left - n };
                        continue;
                    }
                    self.read = Read::Header;
                    if let Some(msg) = self.finish(csid)? {
                        return Ok(Some(msg));
                    }
                }
            }
        }
    }

    /// Adds chunk payload to the message in progress on `csid`.
    fn append(&mut self, csid: u32, bytes: &[u8]) -> Result<(), RtmpError> {
        self.partial_bytes += bytes.len();
        if self.partial_bytes > self.limits.max_partial_bytes {
            return Err(RtmpError::Limit("bytes in partial messages"));
        }
        let Some(s) = self.streams.get_mut(&csid) else {
            return Err(RtmpError::Protocol("chunk payload without a message"));
        };
        let Some(p) = s.partial.as_mut() else {
            return Err(RtmpError::Protocol("chunk payload without a message"));
        };
        // Grow by doubling what arrived, but never past the message length,
        // so a whole message ends with no spare capacity.
        let need = p.len() + bytes.len();
        if need > p.capacity() {
            let target = (2 * need).min(s.length).max(need);
            p.reserve_exact(target - p.len());
        }
        p.extend_from_slice(bytes);
        Ok(())
    }

    /// Reads a chunk header from `b`; `None` if `b` is too short yet.
    fn parse_header(&self, b: &[u8]) -> Result<Option<(Header, usize)>, RtmpError> {
        let Some(&first) = b.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, mut p) = match first & 0x3F {
            0 if b.len() >= 2 => (b[1] as u32 + 64, 2),
            1 if b.len() >= 3 => (b[1] as u32 + ((b[2] as u32) << 8) + 64, 3),
            0 | 1 => return Ok(None),
            id => (id as u32, 1),
        };
        let prev = self.streams.get(&csid);
        if fmt != 0 && prev.is_none() {
            return Err(RtmpError::Protocol("compressed chunk header on a new chunk stream"));
        }
        let mut h = Header {
            fmt,
            csid,
            time: 0,
            extended: false,
            length: prev.map_or(0, |s| s.length),
            type_id: prev.map_or(0, |s| s.type_id),
            stream_id: prev.map_or(0, |s| s.stream_id),
            ext_missing: false,
        };
        let header_len = [11, 7, 3, 0][fmt as usize];
        let Some(m) = b.get(p..p + header_len) else {
            return Ok(None);
        };
        p += header_len;
        if fmt <= 2 {
            h.time = be24(&m[0..3]);
        }
        if fmt <= 1 {
            h.length = be24(&m[3..6]) as usize;
            h.type_id = m[6];
        }
        if fmt == 0 {
            h.stream_id = u32::from_le_bytes([m[7], m[8], m[9], m[10]]);
        }
        if fmt <= 2 && h.time == EXTENDED_TIMESTAMP {
            let Some(e) = b.get(p..p + 4) else {
                return Ok(None);
            };
            h.time = be32(e);
            h.extended = true;
            p += 4;
        } else if let Some((ext, prev)) = prev.filter(|_| fmt == 3).and_then(|s| Some((s.ext?, s))) {
            // Type 3 after a header with an extended timestamp.
            let Some(e) = b.get(p..p + 4) else {
                return Ok(None);
            };
            // The message's timestamp: of the one in progress, or of the one
            // this chunk starts.
            let ts = if prev.partial.is_some() {
                prev.timestamp
            } else {
                prev.timestamp.wrapping_add(prev.delta)
            };
            let v = be32(e);
            if v == ext || v == ts {
                p += 4;
            } else {
                h.ext_missing = true;
            }
        }
        Ok(Some((h, p)))
    }

    /// Applies a chunk header; returns a message if it is already whole
    /// (zero length).
    fn start_chunk(&mut self, h: Header) -> Result<Option<Message>, RtmpError> {
        if h.ext_missing {
            self.ext_missing += 1;
        }
        if !self.streams.contains_key(&h.csid) {
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(RtmpError::Limit("chunk streams"));
            }
            self.streams.insert(
                h.csid,
                ChunkStream {
                    timestamp: 0,
                    delta: 0,
                    length: 0,
                    type_id: 0,
                    stream_id: 0,
                    ext: None,
                    partial: None,
                },
            );
        }
        let Some(s) = self.streams.get_mut(&h.csid) else {
            return Err(RtmpError::Protocol("chunk stream lost"));
        };
        let continues = h.fmt == 3 && s.partial.is_some();
        if !continues {
            if let Some(p) = s.partial.take() {
                // A new message header cuts the one in progress.
                self.partial_bytes -= p.len();
                self.aborted += 1;
            }
            match h.fmt {
                0 => {
                    s.timestamp = h.time;
                    s.delta = h.time;
                }
                1 | 2 => {
                    s.delta = h.time;
                    s.timestamp = s.timestamp.wrapping_add(h.time);
                }
                _ => s.timestamp = s.timestamp.wrapping_add(s.delta),
            }
            if h.fmt <= 2 {
                s.ext = h.extended.then_some(h.time);
            }
            s.length = h.length;
            s.type_id = h.type_id;
            s.stream_id = h.stream_id;
            if h.length > self.limits.max_message_len {
                return Err(RtmpError::TooLarge {
                    len: h.length,
                    cap: self.limits.max_message_len,
                });
            }
            s.partial = Some(Vec::with_capacity(h.length.min(FIRST_RESERVE)));
        }
        let received = s.partial.as_ref().map_or(0, Vec::len);
        let left = (s.length - received).min(self.chunk_size);
        if left == 0 {
            return self.finish(h.csid);
        }
        self.read = Read::Payload { csid: h.csid, left };
        Ok(None)
    }

    /// After a chunk's payload: hands out the message if it is whole,
    /// applying the chunk-layer control messages.
    fn finish(&mut self, csid: u32) -> Result<Option<Message>, RtmpError> {
        let Some(s) = self.streams.get_mut(&csid) else {
            return Ok(None);
        };
        if s.partial.as_ref().is_none_or(|p| p.len() < s.length) {
            return Ok(None);
        }
        let payload = s.partial.take().unwrap_or_default();
        self.partial_bytes -= payload.len();
        self.messages += 1;
        let msg = Message {
            csid,
            timestamp: s.timestamp,
            type_id: s.type_id,
            stream_id: s.stream_id,
            payload: Bytes::from(payload),
        };
        match msg.type_id {
            TYPE_SET_CHUNK_SIZE => {
                let size = control_u32(&msg.payload)?;
                if size == 0 || size > MAX_CHUNK_SIZE {
                    return Err(RtmpError::ChunkSize(size));
                }
                self.chunk_size = size as usize;
                Ok(None)
            }
            TYPE_ABORT => {
                let target = control_u32(&msg.payload)?;
                if let Some(p) = self.streams.get_mut(&target).and_then(|s| s.partial.take()) {
                    self.partial_bytes -= p.len();
                    self.aborted += 1;
                }
                Ok(None)
            }
            _ => Ok(Some(msg)),
        }
    }
}

fn control_u32(payload: &[u8]) -> Result<u32, RtmpError> {
    payload
        .get(..4)
        .map(be32)
        .ok_or(RtmpError::Protocol("control message shorter than 4 bytes"))
}

fn be24(b: &[u8]) -> u32 {
    (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The last message written on a csid, for header compression.
struct Sent {
    timestamp: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
}

/// Messages → chunk stream, at the current outgoing chunk size.
///
/// Header choice: type 0 for the first message on a csid, a new message
/// stream id, a timestamp that goes back (the 32-bit wrap included) or a
/// delta that needs the extended field; otherwise type 2 when length and
/// type id repeat, else type 1. Type 3 only for continuation chunks, which
/// repeat the extended timestamp when the header had one.
pub struct ChunkEncoder {
    chunk_size: usize,
    streams: HashMap<u32, Sent>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    pub fn new() -> Self {
        ChunkEncoder {
            chunk_size: DEFAULT_CHUNK_SIZE as usize,
            streams: HashMap::new(),
        }
    }

    /// The outgoing chunk size, bytes.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size as u32
    }

    /// Writes a Set Chunk Size message (§5.4.1) and uses `size` from the
    /// next message on.
    pub fn set_chunk_size(&mut self, out: &mut BytesMut, size: u32) -> Result<(), RtmpError> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(RtmpError::ChunkSize(size));
        }
        self.write(
            out,
            &Message {
                csid: MIN_CSID,
                timestamp: 0,
                type_id: TYPE_SET_CHUNK_SIZE,
                stream_id: 0,
                payload: Bytes::copy_from_slice(&size.to_be_bytes()),
            },
        )?;
        self.chunk_size = size as usize;
        Ok(())
    }

    /// Writes `msg` as chunks into `out`.
    pub fn write(&mut self, out: &mut BytesMut, msg: &Message) -> Result<(), RtmpError> {
        let len = msg.payload.len();
        if len > MAX_MESSAGE_LEN {
            return Err(RtmpError::TooLarge {
                len,
                cap: MAX_MESSAGE_LEN,
            });
        }
        if !(MIN_CSID..=MAX_CSID).contains(&msg.csid) {
            return Err(RtmpError::State("chunk stream id outside 2..=65599"));
        }
        let (fmt, time) = match self.streams.get(&msg.csid) {
            Some(s)
                if s.stream_id == msg.stream_id
                    && msg.timestamp >= s.timestamp
                    && msg.timestamp - s.timestamp < EXTENDED_TIMESTAMP =>
            {
                let delta = msg.timestamp - s.timestamp;
                let fmt = if s.length == len && s.type_id == msg.type_id {
                    2
                } else {
                    1
                };
                (fmt, delta)
            }
            _ => (0, msg.timestamp),
        };
        self.streams.insert(
            msg.csid,
            Sent {
                timestamp: msg.timestamp,
                length: len,
                type_id: msg.type_id,
                stream_id: msg.stream_id,
            },
        );
        let extended = time >= EXTENDED_TIMESTAMP;
        let chunks = len.div_ceil(self.chunk_size).max(1);
        out.reserve(len + MAX_HEADER + (chunks - 1) * 7);
        put_basic_header(out, fmt, msg.csid);
        let field = time.min(EXTENDED_TIMESTAMP);
        if fmt <= 2 {
            out.put_slice(&field.to_be_bytes()[1..]);
        }
        if fmt <= 1 {
            out.put_slice(&(len as u32).to_be_bytes()[1..]);
            out.put_u8(msg.type_id);
        }
        if fmt == 0 {
            out.put_u32_le(msg.stream_id);
        }
        if extended {
            out.put_u32(time);
        }
        for (i, chunk) in msg.payload.chunks(self.chunk_size).enumerate() {
            if i > 0 {
                put_basic_header(out, 3, msg.csid);
                if extended {
                    out.put_u32(time);
                }
            }
            out.put_slice(chunk);
        }
        Ok(())
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    match csid {
        0..=63 => out.put_u8(fmt | csid as u8),
        64..=319 => {
            out.put_u8(fmt);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            out.put_u8(fmt | 1);
            out.put_u16_le((csid - 64) as u16);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(dec: &mut ChunkDecoder, mut input: &[u8]) -> Result<Vec<Message>, RtmpError> {
        let mut out = Vec::new();
        while let Some(m) = dec.decode(&mut input)? {
            out.push(m);
        }
        assert!(input.is_empty());
        Ok(out)
    }

    fn msg(csid: u32, timestamp: u32, type_id: u8, stream_id: u32, payload: &[u8]) -> Message {
        Message {
            csid,
            timestamp,
            type_id,
            stream_id,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn encode(msgs: &[Message], chunk_size: Option<u32>) -> BytesMut {
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        if let Some(size) = chunk_size {
            enc.set_chunk_size(&mut out, size).expect("chunk size");
        }
        for m in msgs {
            enc.write(&mut out, m).expect("write");
        }
        out
    }

    #[test]
    fn type_0_then_2_then_3_accumulate_deltas() {
        // §5.3.2.1 example 1: audio on csid 3, ts 1000 then delta 20.
        let mut b = vec![0x03, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x02, 0x08, 1, 0, 0, 0, 0xA1, 0xA2];
        b.extend_from_slice(&[0x83, 0x00, 0x00, 0x14, 0xB1, 0xB2]); // type 2: delta 20
        b.extend_from_slice(&[0xC3, 0xC1, 0xC2]); // type 3: new message, same delta
        b.extend_from_slice(&[0xC3, 0xD1, 0xD2]);
        let got = decode_all(&mut ChunkDecoder::new(Limits::default()), &b).expect("decodes");
        let ts: Vec<u32> = got.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, [1000, 1020, 1040, 1060]);
        assert!(got.iter().all(|m| m.type_id == 8 && m.stream_id == 1));
        assert_eq!(&got[3].payload[..], &[0xD1, 0xD2]);
    }

    #[test]
    fn type_3_after_type_0_uses_its_timestamp_as_delta() {
        let mut b = vec![0x04, 0x00, 0x00, 0x28, 0x00, 0x00, 0x01, 0x09, 1, 0, 0, 0, 0xAA];
        b.extend_from_slice(&[0xC4, 0xBB]);
        let got = decode_all(&mut ChunkDecoder::new(Limits::default()), &b).expect("decodes");
        assert_eq!(got[0].timestamp, 40);
        assert_eq!(got[1].timestamp, 80);
    }

    #[test]
    fn one_type_1_header_changes_length_and_type() {
        let mut b = vec![0x05, 0, 0, 10, 0, 0, 1, 8, 1, 0, 0, 0, 0xAA];
        b.extend_from_slice(&[0x45, 0, 0, 5, 0, 0, 2, 9, 0xBB, 0xCC]);
        let got = decode_all(&mut ChunkDecoder::new(Limits::default()), &b).expect("decodes");
        assert_eq!(got[1], msg(5, 15, 9, 1, &[0xBB, 0xCC]));
    }

    /// A 300-byte message at ts 0x12345678 in chunks of 128, extended
    /// timestamp on the type-3 chunks or not.
    fn extended_message(repeat_ext: bool) -> Vec<u8> {
        let mut b = vec![0x06, 0xFF, 0xFF, 0xFF, 0x00, 0x01, 0x2C, 0x09, 1, 0, 0, 0];
        b.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        for (i, c) in [128usize, 128, 44].into_iter().enumerate() {
            if i > 0 {
                b.push(0xC6);
                if repeat_ext {
                    b.extend_from_slice(&0x1234_5678u32.to_be_bytes());
                }
            }
            b.extend(std::iter::repeat_n(i as u8 + 1, c));
        }
        b
    }

    #[test]
    fn extended_timestamp_on_type_3_chunks_present_or_not() {
        for repeat in [true, false] {
            for piece in [1, 2, 3, 5, 1000] {
                let mut dec = ChunkDecoder::new(Limits::default());
                let mut got = Vec::new();
                for p in extended_message(repeat).chunks(piece) {
                    got.extend(decode_all(&mut dec, p).expect("decodes"));
                }
                assert_eq!(got.len(), 1);
                assert_eq!(got[0].timestamp, 0x1234_5678);
                let want: Vec<u8> = [(1u8, 128usize), (2, 128), (3, 44)]
                    .iter()
                    .flat_map(|&(b, n)| std::iter::repeat_n(b, n))
                    .collect();
                assert_eq!(&got[0].payload[..], &want[..], "pieces of {piece}");
                assert_eq!(dec.ext_timestamp_missing(), if repeat { 0 } else { 2 });
            }
        }
    }

    #[test]
    fn type_3_starting_a_message_after_an_extended_delta() {
        // Type 0 at 0x10, type 1 with extended delta 0x01000000, then a
        // type-3 new message repeating the extended delta (OBS, ffmpeg).
        let mut b = vec![0x07, 0, 0, 0x10, 0, 0, 1, 8, 1, 0, 0, 0, 0xAA];
        b.extend_from_slice(&[0x47, 0xFF, 0xFF, 0xFF, 0, 0, 1, 8]);
        b.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        b.push(0xBB);
        b.push(0xC7);
        b.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        b.push(0xCC);
        let got = decode_all(&mut ChunkDecoder::new(Limits::default()), &b).expect("decodes");
        let ts: Vec<u32> = got.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, [0x10, 0x0100_0010, 0x0200_0010]);
        assert_eq!(&got[2].payload[..], &[0xCC]);
    }

    #[test]
    fn deltas_wrap_around_32_bits() {
        let mut b = vec![0x03, 0xFF, 0xFF, 0xFF, 0, 0, 1, 8, 1, 0, 0, 0];
        b.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
        b.push(0xAA);
        b.extend_from_slice(&[0x83, 0, 0, 0x20, 0xBB]);
        let got = decode_all(&mut ChunkDecoder::new(Limits::default()), &b).expect("decodes");
        assert_eq!(got[1].timestamp, 0x10);
    }

    #[test]
    fn chunk_size_bounds() {
        for (size, ok) in [
            (0u32, false),
            (0x8000_0000, false),
            (0xFFFF_FFFF, false),
            (1, true),
            (MAX_CHUNK_SIZE, true),
        ] {
            let mut b = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
            b.extend_from_slice(&size.to_be_bytes());
            let mut dec = ChunkDecoder::new(Limits::default());
            match decode_all(&mut dec, &b) {
                Ok(m) => {
                    assert!(ok, "size {size} accepted");
                    assert!(m.is_empty(), "applied, not returned");
                    assert_eq!(dec.chunk_size(), size);
                }
                Err(e) => {
                    assert!(!ok, "size {size} refused");
                    assert_eq!(e, RtmpError::ChunkSize(size));
                    assert_eq!(e.kind(), "chunk_size");
                }
            }
        }
        assert!(ChunkEncoder::new().set_chunk_size(&mut BytesMut::new(), 0).is_err());
    }

    #[test]
    fn message_over_the_cap_is_refused_at_its_header() {
        let limits = Limits {
            max_message_len: 1000,
            ..Limits::default()
        };
        let b = [0x03, 0, 0, 0, 0, 0x03, 0xE9, 9, 1, 0, 0, 0];
        let err = decode_all(&mut ChunkDecoder::new(limits), &b).expect_err("too large");
        assert_eq!(err, RtmpError::TooLarge { len: 1001, cap: 1000 });
    }

    #[test]
    fn too_many_chunk_streams() {
        let limits = Limits {
            max_chunk_streams: 3,
            ..Limits::default()
        };
        let mut b = Vec::new();
        for csid in 3..7 {
            b.extend_from_slice(&[csid, 0, 0, 0, 0, 0, 0, 9, 1, 0, 0, 0]);
        }
        let err = decode_all(&mut ChunkDecoder::new(limits), &b).expect_err("limit");
        assert_eq!(err.kind(), "limit");
    }

    #[test]
    fn partial_bytes_are_capped() {
        let limits = Limits {
            max_partial_bytes: 250,
            ..Limits::default()
        };
        let msgs = [msg(4, 0, 9, 1, &[1; 200]), msg(5, 0, 9, 1, &[2; 200])];
        // Interleave: first chunks of both messages, then the rest.
        let a = encode(&msgs[..1], None);
        let b = encode(&msgs[1..], None);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&a[..12 + 128]);
        bytes.extend_from_slice(&b[..12 + 128]);
        let err = decode_all(&mut ChunkDecoder::new(limits), &bytes).expect_err("limit");
        assert_eq!(err.kind(), "limit");
    }

    #[test]
    fn abort_drops_the_partial_message() {
        let long = msg(4, 0, 9, 1, &[7; 300]);
        let bytes = encode(&[long], None);
        let mut b = bytes[..12 + 128].to_vec();
        // Abort (type 2) for csid 4 on csid 2.
        b.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 4]);
        // A new type-0 message on csid 4.
        b.extend_from_slice(&[0x04, 0, 0, 5, 0, 0, 1, 8, 1, 0, 0, 0, 0xEE]);
        let mut dec = ChunkDecoder::new(Limits::default());
        let got = decode_all(&mut dec, &b).expect("decodes");
        assert_eq!(got, [msg(4, 5, 8, 1, &[0xEE])]);
        assert_eq!(dec.aborted(), 1);
    }

    #[test]
    fn compressed_header_on_an_unknown_csid_is_an_error() {
        for first in [0x43u8, 0x83, 0xC3] {
            let err = decode_all(&mut ChunkDecoder::new(Limits::default()), &[first, 0, 0, 0, 0, 0, 0, 0])
                .expect_err("refused");
            assert_eq!(err.kind(), "protocol");
        }
    }

    #[test]
    fn every_csid_form_round_trips() {
        let msgs: Vec<Message> = [2u32, 63, 64, 319, 320, 65_599]
            .iter()
            .map(|&c| msg(c, c, 20, 0, &[c as u8; 3]))
            .collect();
        let bytes = encode(&msgs, None);
        let got = decode_all(&mut ChunkDecoder::new(Limits::default()), &bytes).expect("decodes");
        assert_eq!(got, msgs);
        let bad = msg(65_600, 0, 20, 0, b"");
        assert!(ChunkEncoder::new().write(&mut BytesMut::new(), &bad).is_err());
    }

    #[test]
    fn encoder_compresses_and_extends_where_it_must() {
        let msgs = [
            msg(6, 0, 9, 1, &[1; 10]),
            msg(6, 40, 9, 1, &[2; 10]),           // type 2
            msg(6, 80, 9, 1, &[3; 20]),           // type 1
            msg(6, 0x0200_0000, 9, 1, &[4; 300]), // type 0, extended, 3 chunks
            msg(6, 0x0200_0028, 9, 1, &[5; 300]), // type 2 (delta 40)
            msg(6, 10, 9, 1, &[6; 1]),            // back: type 0
        ];
        let bytes = encode(&msgs, None);
        assert_eq!(bytes[22] >> 6, 2, "second header is type 2");
        assert_eq!(bytes[22 + 4 + 10] >> 6, 1, "third header is type 1");
        let got = decode_all(&mut ChunkDecoder::new(Limits::default()), &bytes).expect("decodes");
        assert_eq!(got, msgs);
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            prop::sample::select(vec![3u32, 4, 6, 8, 70, 400]),
            prop_oneof![any::<u32>(), 0xFF_FFF0u32..0x100_0010, 0u32..100_000],
            prop::sample::select(vec![8u8, 9, 18, 20]),
            0u32..3,
            prop::collection::vec(any::<u8>(), 0..700),
        )
            .prop_map(|(csid, ts, t, sid, p)| Message {
                csid,
                timestamp: ts,
                type_id: t,
                stream_id: sid,
                payload: Bytes::from(p),
            })
    }

    proptest! {
        #[test]
        fn any_split_decodes_what_was_encoded(
            msgs in prop::collection::vec(arb_message(), 1..20),
            size in prop::option::of(1u32..1000),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
        ) {
            let bytes = encode(&msgs, size);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.push(0);
            points.push(bytes.len());
            points.sort_unstable();
            let mut dec = ChunkDecoder::new(Limits::default());
            let mut got = Vec::new();
            for w in points.windows(2) {
                got.extend(decode_all(&mut dec, &bytes[w[0]..w[1]]).expect("decodes"));
            }
            prop_assert_eq!(got, msgs);
            prop_assert_eq!(dec.partial_bytes, 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..4000)) {
            let limits = Limits { max_message_len: 5000, max_partial_bytes: 8000, ..Limits::default() };
            let mut dec = ChunkDecoder::new(limits);
            let mut input = &data[..];
            while let Ok(Some(m)) = dec.decode(&mut input) {
                prop_assert!(m.payload.len() <= 5000);
            }
            prop_assert!(dec.partial_bytes <= 8000);
        }
    }
}

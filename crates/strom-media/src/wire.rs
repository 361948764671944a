//! Node-to-node wire format (version 2, reads 1 and 2): [`Segment`]s and
//! heartbeats as self-describing, CRC-checked messages.
//! docs/cluster-protocol.md has the byte layout.
//!
//! A restreamer pulls a source's segments over one long HTTP response whose
//! body is a sequence of messages, and DVR stores the very same bytes on
//! disk. A message carries the canonical model (UTC 90 kHz frames and codec
//! parameters), never muxed output, so every node muxes byte-identical HLS
//! segments from it.
//!
//! Versions: writers write [`VERSION`] (2). Version 2 adds the segment's
//! declared `EXT-X-TARGETDURATION` and each track's ES descriptors, and
//! allows codec numbers 7–9 (teletext, DVB subtitles, SCTE-35). The decoder
//! accepts version 1 (read with `target_duration` 0 and no descriptors) and
//! version 2, and rejects every other version with
//! [`WireError::UnsupportedVersion`]. A node that only speaks version 1
//! rejects version 2 messages the same way, so a cluster upgrades its
//! readers (restreamers) before its writers (sources).
//!
//! Invariants:
//! - Encoding is deterministic and decoding strict per version (reserved
//!   bits zero, present flags 0 or 1, no trailing bytes, well-formed
//!   descriptor loops), so every accepted message is the one encoding of its
//!   segment in its version: `encode_segment(decode(m)) == m` for a version 2
//!   message and `encode_segment_v1(decode(m)) == Some(m)` for a version 1
//!   message. A version 1 message re-encoded with [`encode_segment`] comes
//!   out as version 2 and decodes to the same segment.
//! - No I/O. [`Decoder`] is push/pull like the demuxer: push bytes in chunks
//!   of any size, pull until `None`. Its buffer holds at most one message
//!   (bounded by its max message size) plus one push; an oversized length is
//!   rejected as soon as the header is in, before the payload is buffered.
//! - Frame data, parameter sets and descriptors of a decoded segment are
//!   slices of the received buffer, not copies.
//! - Decoding never panics. The first error poisons the decoder: framing is
//!   lost, so the caller drops the connection (and reconnects).

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::frame::{Codec, Frame, Segment, Track, TrackParams};
use crate::ts::crc::crc32_mpeg2;

/// First four bytes of every message.
pub const MAGIC: [u8; 4] = *b"STRM";
/// Format version written by this implementation.
pub const VERSION: u8 = 2;
/// Oldest format version this implementation still reads.
pub const VERSION_1: u8 = 1;
/// Default limit of a whole message (header, payload and CRC) in the decoder.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;
/// Most tracks a segment message may carry.
pub const MAX_TRACKS: usize = 32;
/// Most descriptor bytes a track may carry (version 2): an ES_info loop of a
/// PMT, whose ES_info_length has its first two bits '00' (ISO/IEC 13818-1
/// §2.4.4.9), so at most 1023 bytes.
pub const MAX_DESCRIPTOR_BYTES: usize = 1023;
/// Header: magic, version, kind, payload length (u32 BE).
pub const HEADER_LEN: usize = 10;
/// Trailer: CRC-32/MPEG-2 over header and payload (u32 BE).
pub const CRC_LEN: usize = 4;
/// Message kind of a [`Message::Segment`].
pub const KIND_SEGMENT: u8 = 1;
/// Message kind of a [`Message::Heartbeat`].
pub const KIND_HEARTBEAT: u8 = 2;

/// Heartbeat value meaning "no segment yet".
const NO_SEGMENT: u64 = u64::MAX;
const SEGMENT_DISCONTINUITY: u8 = 0x01;
const FRAME_KEYFRAME: u8 = 0x01;
/// Fixed part of a segment payload: seq, start, duration, flags, track count,
/// frame count; version 2 adds the target duration.
const fn segment_fixed(version: u8) -> usize {
    let v1 = 8 + 8 + 8 + 1 + 1 + 4;
    if version >= 2 {
        v1 + 4
    } else {
        v1
    }
}
/// Fixed part of a track: id, codec, width, height, three present flags,
/// sample rate, channels, AAC object type, parameter set count; version 2
/// adds the descriptor loop length.
const fn track_fixed(version: u8) -> usize {
    let v1 = 2 + 1 + 2 + 2 + 1 + 1 + 4 + 1 + 1 + 1 + 1;
    if version >= 2 {
        v1 + 2
    } else {
        v1
    }
}
/// Frame header: track, flags, dts, pts, data length.
const FRAME_FIXED: usize = 2 + 1 + 8 + 8 + 4;

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A finished segment.
    Segment(Segment),
    /// Sent on an idle connection so the peer can tell it from a hung one.
    /// `newest` is the newest segment sequence the sender has, if any.
    Heartbeat { newest: Option<u64> },
    /// A message kind this version does not know, intact (CRC checked). Skip it.
    Unknown { kind: u8 },
}

/// Why a byte stream is not a valid message stream. Every error is fatal to
/// the connection: framing can't be trusted after it, so drop the connection
/// and reconnect (a corrupted transfer may succeed on retry; a version or
/// size mismatch will not). Offsets count bytes from the start of the stream
/// pushed into the [`Decoder`], to locate the message in a capture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes at a message boundary do not start with [`MAGIC`].
    #[error("wire: bad magic at stream offset {offset}: not a strom message stream, or framing lost")]
    BadMagic { offset: u64 },
    /// The message has a version other than [`VERSION_1`] or [`VERSION`]
    /// (for instance a newer peer: upgrade this node).
    #[error("wire: unsupported version {version} at stream offset {offset} (this node reads versions {VERSION_1} and {VERSION}; a newer peer needs this node upgraded)")]
    UnsupportedVersion { version: u8, offset: u64 },
    /// The header announces a message larger than the decoder's limit.
    #[error("wire: message at stream offset {offset} is {len} bytes, over the limit of {max}")]
    TooLarge { len: usize, max: usize, offset: u64 },
    /// The CRC does not match: the message was corrupted in transit or on disk.
    #[error("wire: CRC mismatch in message of kind {kind} at stream offset {offset}")]
    Crc { kind: u8, offset: u64 },
    /// The CRC matched but the payload breaks the format; `offset` is the
    /// stream offset of the offending field.
    #[error("wire: malformed payload at stream offset {offset}: {what}")]
    Malformed { what: &'static str, offset: u64 },
}

/// Wire number of a codec. Stable: never reuse or renumber.
fn codec_number(codec: Codec) -> u8 {
    match codec {
        Codec::H264 => 1,
        Codec::H265 => 2,
        Codec::Aac => 3,
        Codec::MpegAudio => 4,
        Codec::Ac3 => 5,
        Codec::Eac3 => 6,
        Codec::Teletext => 7,
        Codec::DvbSubtitle => 8,
        Codec::Scte35 => 9,
    }
}

/// The codec of a wire number in a message of `version`: version 1 knows
/// numbers 1–6 only.
fn codec_from_number(n: u8, version: u8) -> Option<Codec> {
    Some(match n {
        1 => Codec::H264,
        2 => Codec::H265,
        3 => Codec::Aac,
        4 => Codec::MpegAudio,
        5 => Codec::Ac3,
        6 => Codec::Eac3,
        7 if version >= 2 => Codec::Teletext,
        8 if version >= 2 => Codec::DvbSubtitle,
        9 if version >= 2 => Codec::Scte35,
        _ => return None,
    })
}

/// True when `loop_bytes` is a sequence of whole descriptors: `(tag u8,
/// length u8, length bytes)` entries filling it exactly (ISO/IEC 13818-1
/// §2.6). An empty loop is well-formed.
pub fn is_descriptor_loop(loop_bytes: &[u8]) -> bool {
    let mut rest = loop_bytes;
    while !rest.is_empty() {
        let Some(&[_tag, len]) = rest.first_chunk::<2>() else {
            return false;
        };
        let Some(next) = rest.get(2 + usize::from(len)..) else {
            return false;
        };
        rest = next;
    }
    true
}

/// Encoded size of one track; panics (see [`encode_segment`]) if a field overflows.
fn track_size(t: &Track, version: u8) -> usize {
    let p = &t.params;
    let mut n = track_fixed(version);
    if p.frame_rate.is_some() {
        n += 8;
    }
    if let Some(s) = &p.codec_string {
        assert!(s.len() <= usize::from(u16::MAX), "wire: codec string over 65535 bytes");
        n += 2 + s.len();
    }
    if let Some(s) = &p.language {
        assert!(s.len() <= usize::from(u8::MAX), "wire: language over 255 bytes");
        n += 1 + s.len();
    }
    assert!(
        p.parameter_sets.len() <= usize::from(u8::MAX),
        "wire: over 255 parameter sets"
    );
    for ps in &p.parameter_sets {
        assert!(u32::try_from(ps.len()).is_ok(), "wire: parameter set over 4 GiB");
        n += 4 + ps.len();
    }
    if version >= 2 {
        assert!(
            p.descriptors.len() <= MAX_DESCRIPTOR_BYTES,
            "wire: descriptors over {MAX_DESCRIPTOR_BYTES} bytes"
        );
        assert!(
            is_descriptor_loop(&p.descriptors),
            "wire: descriptors are not a descriptor loop"
        );
        n += p.descriptors.len();
    }
    n
}

/// Payload size of a segment message; panics (see [`encode_segment`]) if the
/// segment is not representable.
fn segment_payload_size(seg: &Segment, version: u8) -> usize {
    assert!(seg.tracks.len() <= MAX_TRACKS, "wire: more than {MAX_TRACKS} tracks");
    assert!(u32::try_from(seg.frames.len()).is_ok(), "wire: over 2^32 frames");
    let tracks: usize = seg.tracks.iter().map(|t| track_size(t, version)).sum();
    let frames: usize = seg
        .frames
        .iter()
        .map(|f| {
            assert!(
                usize::from(f.track) < seg.tracks.len(),
                "wire: frame track out of range"
            );
            assert!(u32::try_from(f.data.len()).is_ok(), "wire: frame over 4 GiB");
            FRAME_FIXED + f.data.len()
        })
        .sum();
    segment_fixed(version) + tracks + frames
}

/// Buffer of exactly one message's size with the header written.
fn start_message(version: u8, kind: u8, payload_len: usize) -> BytesMut {
    let len = u32::try_from(payload_len).expect("wire: payload over 4 GiB");
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload_len + CRC_LEN);
    out.put_slice(&MAGIC);
    out.put_u8(version);
    out.put_u8(kind);
    out.put_u32(len);
    out
}

fn finish_message(mut out: BytesMut) -> Bytes {
    let crc = crc32_mpeg2(&out);
    out.put_u32(crc);
    // The size was computed up front; a mismatch means the buffer reallocated.
    debug_assert_eq!(out.len(), out.capacity());
    out.freeze()
}

/// Encodes `seg` as one complete version 2 message. Deterministic: the same
/// segment always gives the same bytes. The size is computed first, so the
/// output is allocated once.
///
/// # Panics
/// If the segment is not representable, which the demuxer and segmenter
/// never produce: more than [`MAX_TRACKS`] tracks, a frame whose track is out
/// of range, a codec string over 65535 bytes, a language over 255 bytes,
/// more than 255 parameter sets, descriptors over [`MAX_DESCRIPTOR_BYTES`]
/// or not a whole descriptor loop ([`is_descriptor_loop`]), or a frame,
/// parameter set or payload of 4 GiB or more.
pub fn encode_segment(seg: &Segment) -> Bytes {
    encode_segment_as(seg, VERSION)
}

/// Encodes `seg` as a version 1 message, for a peer or a file that only
/// reads version 1 (and for tests of the version 1 reader). `None` when the
/// segment carries what version 1 cannot: a non-zero `target_duration`,
/// descriptors, or a codec numbered 7 or above. Panics as
/// [`encode_segment`] does.
pub fn encode_segment_v1(seg: &Segment) -> Option<Bytes> {
    let v1_only = seg.target_duration == 0
        && seg
            .tracks
            .iter()
            .all(|t| t.params.descriptors.is_empty() && codec_from_number(codec_number(t.codec), VERSION_1).is_some());
    v1_only.then(|| encode_segment_as(seg, VERSION_1))
}

/// Encodes `seg` as [`encode_segment`] does and points every frame's data
/// at its copy inside the message: the frames and the message then share
/// one allocation of the message's size, instead of the message being a
/// second copy of the payload beside the frames (a segment kept for
/// restreamers or the DVR writer). The message is byte for byte
/// [`encode_segment`]'s, and every frame stays equal to what it was. Panics
/// as [`encode_segment`] does.
pub fn encode_segment_shared(seg: &mut Segment) -> Bytes {
    let mut offsets = Vec::with_capacity(seg.frames.len());
    let msg = encode_segment_into(seg, VERSION, Some(&mut offsets));
    for (f, off) in seg.frames.iter_mut().zip(offsets) {
        f.data = msg.slice(off..off + f.data.len());
    }
    msg
}

fn encode_segment_as(seg: &Segment, version: u8) -> Bytes {
    encode_segment_into(seg, version, None)
}

/// The encoder; with `offsets`, pushes where each frame's data starts in the message.
fn encode_segment_into(seg: &Segment, version: u8, mut offsets: Option<&mut Vec<usize>>) -> Bytes {
    let mut out = start_message(version, KIND_SEGMENT, segment_payload_size(seg, version));
    out.put_u64(seg.seq);
    out.put_i64(seg.start);
    out.put_i64(seg.duration);
    if version >= 2 {
        out.put_u32(seg.target_duration);
    }
    out.put_u8(if seg.discontinuity { SEGMENT_DISCONTINUITY } else { 0 });
    // Counts and lengths were checked by segment_payload_size, so the casts below are exact.
    out.put_u8(seg.tracks.len() as u8);
    for t in seg.tracks.iter() {
        let p = &t.params;
        out.put_u16(t.id);
        out.put_u8(codec_number(t.codec));
        out.put_u16(p.width);
        out.put_u16(p.height);
        match p.frame_rate {
            Some((num, den)) => {
                out.put_u8(1);
                out.put_u32(num);
                out.put_u32(den);
            }
            None => out.put_u8(0),
        }
        match &p.codec_string {
            Some(s) => {
                out.put_u8(1);
                out.put_u16(s.len() as u16);
                out.put_slice(s.as_bytes());
            }
            None => out.put_u8(0),
        }
        out.put_u32(p.sample_rate);
        out.put_u8(p.channels);
        out.put_u8(p.aac_object_type);
        match &p.language {
            Some(s) => {
                out.put_u8(1);
                out.put_u8(s.len() as u8);
                out.put_slice(s.as_bytes());
            }
            None => out.put_u8(0),
        }
        out.put_u8(p.parameter_sets.len() as u8);
        for ps in &p.parameter_sets {
            out.put_u32(ps.len() as u32);
            out.put_slice(ps);
        }
        if version >= 2 {
            out.put_u16(p.descriptors.len() as u16);
            out.put_slice(&p.descriptors);
        }
    }
    out.put_u32(seg.frames.len() as u32);
    for f in &seg.frames {
        out.put_u16(f.track);
        out.put_u8(if f.keyframe { FRAME_KEYFRAME } else { 0 });
        out.put_i64(f.dts);
        out.put_i64(f.pts);
        out.put_u32(f.data.len() as u32);
        if let Some(o) = offsets.as_deref_mut() {
            o.push(out.len());
        }
        out.put_slice(&f.data);
    }
    finish_message(out)
}

/// Encodes a version 2 heartbeat. `newest` is the newest segment sequence
/// the sender has; `Some(u64::MAX)` is reserved (it reads back as `None`).
/// The payload is the same in both versions.
pub fn encode_heartbeat(newest: Option<u64>) -> Bytes {
    let mut out = start_message(VERSION, KIND_HEARTBEAT, 8);
    out.put_u64(newest.unwrap_or(NO_SEGMENT));
    finish_message(out)
}

/// Incremental message decoder: [`push`](Self::push) bytes as they arrive,
/// then [`pull`](Self::pull) until `Ok(None)`.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    max_message: usize,
    /// Stream offset of `buf[0]`, the start of the next message.
    offset: u64,
    /// The first error; returned by every pull after it.
    poisoned: Option<WireError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder accepting messages up to [`DEFAULT_MAX_MESSAGE`] bytes.
    pub fn new() -> Self {
        Decoder::with_max_message(DEFAULT_MAX_MESSAGE)
    }

    /// A decoder accepting messages (header, payload and CRC) up to `max` bytes.
    pub fn with_max_message(max: usize) -> Self {
        Decoder {
            buf: BytesMut::new(),
            max_message: max,
            offset: 0,
            poisoned: None,
        }
    }

    /// Appends received bytes. Ignored once the decoder is poisoned.
    pub fn push(&mut self, data: &[u8]) {
        if self.poisoned.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes pushed but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or the
    /// error that poisoned the decoder (the same one on every later call).
    pub fn pull(&mut self) -> Result<Option<Message>, WireError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        let r = self.next_message();
        if let Err(e) = &r {
            self.poisoned = Some(e.clone());
            self.buf = BytesMut::new();
        }
        r
    }

    fn next_message(&mut self) -> Result<Option<Message>, WireError> {
        let offset = self.offset;
        // Check the header byte by byte as it arrives, so garbage is reported
        // without waiting for a full header.
        let have = self.buf.len().min(MAGIC.len());
        if self.buf[..have] != MAGIC[..have] {
            return Err(WireError::BadMagic { offset });
        }
        if let Some(&version) = self.buf.get(4) {
            if version != VERSION && version != VERSION_1 {
                return Err(WireError::UnsupportedVersion { version, offset });
            }
        }
        let Some(header) = self.buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let version = header[4];
        let kind = header[5];
        let payload_len = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
        // Saturating: on 32-bit targets a u32 length plus framing may not fit.
        let total = usize::try_from(payload_len)
            .unwrap_or(usize::MAX)
            .saturating_add(HEADER_LEN + CRC_LEN);
        if total > self.max_message {
            return Err(WireError::TooLarge {
                len: total,
                max: self.max_message,
                offset,
            });
        }
        if self.buf.len() < total {
            // Grow once to the whole message instead of doubling per push.
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        let body_end = total - CRC_LEN;
        let crc = crc32_mpeg2(&self.buf[..body_end]);
        if self.buf[body_end..total] != crc.to_be_bytes() {
            return Err(WireError::Crc { kind, offset });
        }
        let mut msg = self.buf.split_to(total).freeze();
        self.offset += total as u64;
        msg.truncate(body_end);
        msg.advance(HEADER_LEN);
        let payload_offset = offset + HEADER_LEN as u64;
        let mut r = Reader {
            buf: msg,
            pos: 0,
            field: 0,
        };
        let decoded = match kind {
            KIND_SEGMENT => decode_segment(&mut r, version).map(Message::Segment),
            KIND_HEARTBEAT => r.u64("truncated heartbeat").map(|n| Message::Heartbeat {
                newest: (n != NO_SEGMENT).then_some(n),
            }),
            kind => return Ok(Some(Message::Unknown { kind })),
        };
        match decoded.and_then(|m| r.end().map(|()| m)) {
            Ok(m) => Ok(Some(m)),
            Err(what) => Err(WireError::Malformed {
                what,
                offset: payload_offset + r.field as u64,
            }),
        }
    }
}

/// Cursor over a payload. `field` is where the last read began: errors
/// found by or after a read point at that field.
struct Reader {
    buf: Bytes,
    pos: usize,
    field: usize,
}

type Field<T> = Result<T, &'static str>;

impl Reader {
    /// Starts a field of `n` bytes; `what` is the error if they are not there.
    fn take(&mut self, n: usize, what: &'static str) -> Field<()> {
        self.field = self.pos;
        if self.buf.len() < n {
            return Err(what);
        }
        self.pos += n;
        Ok(())
    }

    fn u8(&mut self, what: &'static str) -> Field<u8> {
        self.take(1, what)?;
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self, what: &'static str) -> Field<u16> {
        self.take(2, what)?;
        Ok(self.buf.get_u16())
    }

    fn u32(&mut self, what: &'static str) -> Field<u32> {
        self.take(4, what)?;
        Ok(self.buf.get_u32())
    }

    fn u64(&mut self, what: &'static str) -> Field<u64> {
        self.take(8, what)?;
        Ok(self.buf.get_u64())
    }

    fn i64(&mut self, what: &'static str) -> Field<i64> {
        self.take(8, what)?;
        Ok(self.buf.get_i64())
    }

    /// `n` bytes as a slice of the message buffer (no copy).
    fn bytes(&mut self, n: usize, what: &'static str) -> Field<Bytes> {
        self.take(n, what)?;
        Ok(self.buf.split_to(n))
    }

    /// A present flag: exactly 0 or 1, so each value has one encoding.
    fn present(&mut self, what: &'static str) -> Field<bool> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("present flag not 0 or 1"),
        }
    }

    /// A string of `n` bytes that must be UTF-8.
    fn string(&mut self, n: usize, what: &'static str, invalid: &'static str) -> Field<String> {
        let b = self.bytes(n, what)?;
        std::str::from_utf8(&b).map(str::to_owned).map_err(|_| invalid)
    }

    /// Errors unless the payload was consumed exactly.
    fn end(&mut self) -> Field<()> {
        self.field = self.pos;
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err("trailing bytes after the last field")
        }
    }
}

fn decode_segment(r: &mut Reader, version: u8) -> Field<Segment> {
    let seq = r.u64("truncated segment header")?;
    let start = r.i64("truncated segment header")?;
    let duration = r.i64("truncated segment header")?;
    let target_duration = if version >= 2 {
        r.u32("truncated segment header")?
    } else {
        0
    };
    let flags = r.u8("truncated segment header")?;
    if flags & !SEGMENT_DISCONTINUITY != 0 {
        return Err("reserved segment flag bits set");
    }
    let ntracks = usize::from(r.u8("truncated segment header")?);
    if ntracks > MAX_TRACKS {
        return Err("more than 32 tracks");
    }
    let mut tracks = Vec::with_capacity(ntracks);
    for _ in 0..ntracks {
        tracks.push(decode_track(r, version)?);
    }
    let nframes = r.u32("truncated frame count")?;
    // The count is untrusted: reserve no more than the payload can hold.
    let mut frames = Vec::with_capacity((nframes as usize).min(r.buf.len() / FRAME_FIXED));
    for _ in 0..nframes {
        let track = r.u16("truncated frame header")?;
        if usize::from(track) >= ntracks {
            return Err("frame track index out of range");
        }
        let flags = r.u8("truncated frame header")?;
        if flags & !FRAME_KEYFRAME != 0 {
            return Err("reserved frame flag bits set");
        }
        let dts = r.i64("truncated frame header")?;
        let pts = r.i64("truncated frame header")?;
        let len = r.u32("truncated frame header")? as usize;
        let data = r.bytes(len, "truncated frame data")?;
        frames.push(Frame {
            track,
            dts,
            pts,
            keyframe: flags & FRAME_KEYFRAME != 0,
            data,
        });
    }
    Ok(Segment {
        seq,
        start,
        duration,
        discontinuity: flags & SEGMENT_DISCONTINUITY != 0,
        target_duration,
        tracks: Arc::from(tracks),
        frames,
    })
}

fn decode_track(r: &mut Reader, version: u8) -> Field<Track> {
    const TRUNCATED: &str = "truncated track";
    let id = r.u16(TRUNCATED)?;
    let codec = codec_from_number(r.u8(TRUNCATED)?, version).ok_or("unknown codec number")?;
    let width = r.u16(TRUNCATED)?;
    let height = r.u16(TRUNCATED)?;
    let frame_rate = if r.present(TRUNCATED)? {
        Some((r.u32(TRUNCATED)?, r.u32(TRUNCATED)?))
    } else {
        None
    };
    let codec_string = if r.present(TRUNCATED)? {
        let n = usize::from(r.u16(TRUNCATED)?);
        Some(r.string(n, TRUNCATED, "codec string is not UTF-8")?)
    } else {
        None
    };
    let sample_rate = r.u32(TRUNCATED)?;
    let channels = r.u8(TRUNCATED)?;
    let aac_object_type = r.u8(TRUNCATED)?;
    let language = if r.present(TRUNCATED)? {
        let n = usize::from(r.u8(TRUNCATED)?);
        Some(r.string(n, TRUNCATED, "language is not UTF-8")?)
    } else {
        None
    };
    let nsets = r.u8(TRUNCATED)?;
    let mut parameter_sets = Vec::with_capacity(usize::from(nsets));
    for _ in 0..nsets {
        let n = r.u32(TRUNCATED)? as usize;
        parameter_sets.push(r.bytes(n, "truncated parameter set")?);
    }
    let descriptors = if version >= 2 {
        let n = usize::from(r.u16(TRUNCATED)?);
        if n > MAX_DESCRIPTOR_BYTES {
            return Err("descriptors over 1023 bytes");
        }
        let d = r.bytes(n, "truncated descriptors")?;
        if !is_descriptor_loop(&d) {
            return Err("descriptors are not a descriptor loop");
        }
        d
    } else {
        Bytes::new()
    };
    Ok(Track {
        id,
        codec,
        params: TrackParams {
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
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment using every field, small enough to write out by hand.
    fn tiny() -> Segment {
        Segment {
            seq: 5,
            start: 0x0102_0304_0506_0708,
            duration: 180_000,
            discontinuity: true,
            target_duration: 2,
            tracks: Arc::from(vec![Track {
                id: 0,
                codec: Codec::H264,
                params: TrackParams {
                    parameter_sets: vec![Bytes::from_static(&[0x67, 0x42]), Bytes::from_static(&[0x68])],
                    width: 1280,
                    height: 720,
                    frame_rate: Some((25, 1)),
                    codec_string: Some("avc1".into()),
                    sample_rate: 48_000,
                    channels: 2,
                    aac_object_type: 2,
                    language: Some("en".into()),
                    // stream_identifier_descriptor, component_tag 7.
                    descriptors: Bytes::from_static(&[0x52, 0x01, 0x07]),
                },
            }]),
            frames: vec![Frame {
                track: 0,
                dts: -2,
                pts: 1 << 32,
                keyframe: true,
                data: Bytes::from_static(&[0xAA, 0xBB, 0xCC]),
            }],
        }
    }

    /// `tiny()` as version 1 reads it: no target duration, no descriptors.
    fn tiny_v1() -> Segment {
        let mut seg = tiny();
        seg.target_duration = 0;
        let mut tracks = seg.tracks.to_vec();
        tracks[0].params.descriptors = Bytes::new();
        seg.tracks = Arc::from(tracks);
        seg
    }

    /// The version 2 payload of `tiny()`, field by field, with its offsets.
    #[rustfmt::skip]
    const TINY_PAYLOAD: [u8; 110] = [
        0, 0, 0, 0, 0, 0, 0, 5,                    //  0 seq
        1, 2, 3, 4, 5, 6, 7, 8,                    //  8 start
        0, 0, 0, 0, 0, 0x02, 0xBF, 0x20,           // 16 duration 180000
        0, 0, 0, 2,                                // 24 target duration 2 s
        0x01,                                      // 28 flags: discontinuity
        1,                                         // 29 track count
        0, 0,                                      // 30 id
        1,                                         // 32 codec H.264
        0x05, 0x00, 0x02, 0xD0,                    // 33 width 1280, height 720
        1, 0, 0, 0, 25, 0, 0, 0, 1,                // 37 frame rate 25/1
        1, 0, 4, b'a', b'v', b'c', b'1',           // 46 codec string
        0, 0, 0xBB, 0x80,                          // 53 sample rate 48000
        2, 2,                                      // 57 channels, AAC object type
        1, 2, b'e', b'n',                          // 59 language
        2,                                         // 63 parameter set count
        0, 0, 0, 2, 0x67, 0x42,                    // 64 SPS
        0, 0, 0, 1, 0x68,                          // 70 PPS
        0, 3, 0x52, 0x01, 0x07,                    // 75 descriptors
        0, 0, 0, 1,                                // 80 frame count
        0, 0,                                      // 84 frame track
        0x01,                                      // 86 flags: keyframe
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, // 87 dts -2
        0, 0, 0, 1, 0, 0, 0, 0,                    // 95 pts 2^32
        0, 0, 0, 3, 0xAA, 0xBB, 0xCC,              // 103 data
    ];

    /// The version 1 payload of `tiny_v1()`, field by field, with its offsets.
    #[rustfmt::skip]
    const TINY_V1_PAYLOAD: [u8; 101] = [
        0, 0, 0, 0, 0, 0, 0, 5,                    //  0 seq
        1, 2, 3, 4, 5, 6, 7, 8,                    //  8 start
        0, 0, 0, 0, 0, 0x02, 0xBF, 0x20,           // 16 duration 180000
        0x01,                                      // 24 flags: discontinuity
        1,                                         // 25 track count
        0, 0,                                      // 26 id
        1,                                         // 28 codec H.264
        0x05, 0x00, 0x02, 0xD0,                    // 29 width 1280, height 720
        1, 0, 0, 0, 25, 0, 0, 0, 1,                // 33 frame rate 25/1
        1, 0, 4, b'a', b'v', b'c', b'1',           // 42 codec string
        0, 0, 0xBB, 0x80,                          // 49 sample rate 48000
        2, 2,                                      // 53 channels, AAC object type
        1, 2, b'e', b'n',                          // 55 language
        2,                                         // 59 parameter set count
        0, 0, 0, 2, 0x67, 0x42,                    // 60 SPS
        0, 0, 0, 1, 0x68,                          // 66 PPS
        0, 0, 0, 1,                                // 71 frame count
        0, 0,                                      // 75 frame track
        0x01,                                      // 77 flags: keyframe
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, // 78 dts -2
        0, 0, 0, 1, 0, 0, 0, 0,                    // 86 pts 2^32
        0, 0, 0, 3, 0xAA, 0xBB, 0xCC,              // 94 data
    ];

    /// A complete message of `version` around `payload`, with a correct CRC.
    fn message_v(version: u8, kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut m = b"STRM".to_vec();
        m.push(version);
        m.push(kind);
        m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        m.extend_from_slice(payload);
        let crc = crc32_mpeg2(&m);
        m.extend_from_slice(&crc.to_be_bytes());
        m
    }

    /// A complete version 2 message around `payload`.
    fn message(kind: u8, payload: &[u8]) -> Vec<u8> {
        message_v(2, kind, payload)
    }

    fn decode(bytes: &[u8]) -> Result<Option<Message>, WireError> {
        let mut d = Decoder::new();
        d.push(bytes);
        d.pull()
    }

    /// `TINY_PAYLOAD` with `patch` applied, as a version 2 segment message.
    fn patched(patch: impl FnOnce(&mut Vec<u8>)) -> Result<Option<Message>, WireError> {
        let mut p = TINY_PAYLOAD.to_vec();
        patch(&mut p);
        decode(&message(KIND_SEGMENT, &p))
    }

    /// `TINY_V1_PAYLOAD` with `patch` applied, as a version 1 segment message.
    fn patched_v1(patch: impl FnOnce(&mut Vec<u8>)) -> Result<Option<Message>, WireError> {
        let mut p = TINY_V1_PAYLOAD.to_vec();
        patch(&mut p);
        decode(&message_v(1, KIND_SEGMENT, &p))
    }

    fn malformed(what: &'static str, payload_offset: u64) -> Result<Option<Message>, WireError> {
        Err(WireError::Malformed {
            what,
            offset: HEADER_LEN as u64 + payload_offset,
        })
    }

    #[test]
    fn segment_layout_is_pinned() {
        let m = encode_segment(&tiny());
        let mut expected = b"STRM\x02\x01\x00\x00\x00\x6E".to_vec();
        expected.extend_from_slice(&TINY_PAYLOAD);
        // CRC-32/MPEG-2, computed independently.
        expected.extend_from_slice(&[0xA8, 0xE9, 0xE9, 0x3E]);
        assert_eq!(&m[..], &expected[..]);
        assert_eq!(decode(&m), Ok(Some(Message::Segment(tiny()))));
    }

    #[test]
    fn version_1_layout_is_still_read_and_written() {
        // The bytes a version 1 node writes for tiny_v1().
        let mut v1 = b"STRM\x01\x01\x00\x00\x00\x65".to_vec();
        v1.extend_from_slice(&TINY_V1_PAYLOAD);
        v1.extend_from_slice(&[0x81, 0xF8, 0x4F, 0x09]);
        assert_eq!(decode(&v1), Ok(Some(Message::Segment(tiny_v1()))));
        // Canonical in version 1...
        assert_eq!(encode_segment_v1(&tiny_v1()).as_deref(), Some(&v1[..]));
        // ...and re-encoded by a writer, it comes out as version 2 with the
        // same segment inside.
        let v2 = encode_segment(&tiny_v1());
        assert_eq!(v2[4], VERSION);
        assert_eq!(v2.len(), v1.len() + 4 + 2);
        assert_eq!(decode(&v2), Ok(Some(Message::Segment(tiny_v1()))));
    }

    #[test]
    fn version_1_cannot_carry_version_2_fields() {
        assert_eq!(encode_segment_v1(&tiny()), None, "target duration and descriptors");
        let mut seg = tiny_v1();
        seg.target_duration = 1;
        assert_eq!(encode_segment_v1(&seg), None);
        for codec in [Codec::Teletext, Codec::DvbSubtitle, Codec::Scte35] {
            let mut seg = tiny_v1();
            let mut tracks = seg.tracks.to_vec();
            tracks[0].codec = codec;
            seg.tracks = Arc::from(tracks);
            assert_eq!(encode_segment_v1(&seg), None, "{codec:?}");
            assert_eq!(decode(&encode_segment(&seg)), Ok(Some(Message::Segment(seg))));
        }
        // Version 1 knows codec numbers 1-6 only.
        assert_eq!(patched_v1(|p| p[28] = 6).map(|m| m.is_some()), Ok(true));
        for n in [7, 8, 9] {
            assert_eq!(patched_v1(|p| p[28] = n), malformed("unknown codec number", 28));
            assert!(matches!(patched(|p| p[32] = n), Ok(Some(Message::Segment(_)))));
        }
    }

    #[test]
    fn heartbeat_bytes() {
        let m = encode_heartbeat(Some(7));
        assert_eq!(
            &m[..],
            b"STRM\x02\x02\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x07\x80\x27\xB9\x41"
        );
        assert_eq!(decode(&m), Ok(Some(Message::Heartbeat { newest: Some(7) })));
        let m = encode_heartbeat(None);
        assert_eq!(
            &m[..],
            b"STRM\x02\x02\x00\x00\x00\x08\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x30\x60\x8F\x66"
        );
        assert_eq!(decode(&m), Ok(Some(Message::Heartbeat { newest: None })));
        assert_eq!(
            decode(&message(KIND_HEARTBEAT, &[0; 7])),
            malformed("truncated heartbeat", 0)
        );
        assert_eq!(
            decode(&message(KIND_HEARTBEAT, &[0; 9])),
            malformed("trailing bytes after the last field", 8)
        );
        // A version 1 heartbeat, as a version 1 node writes it.
        assert_eq!(
            decode(b"STRM\x01\x02\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x07\x48\x3F\xEA\x02"),
            Ok(Some(Message::Heartbeat { newest: Some(7) }))
        );
        assert_eq!(
            decode(&message_v(1, KIND_HEARTBEAT, &[0; 9])),
            malformed("trailing bytes after the last field", 8)
        );
    }

    #[test]
    fn empty_segment_round_trips() {
        let seg = Segment {
            seq: 0,
            start: i64::MIN,
            duration: i64::MAX,
            discontinuity: false,
            target_duration: u32::MAX,
            tracks: Arc::from(Vec::new()),
            frames: Vec::new(),
        };
        let m = encode_segment(&seg);
        assert_eq!(m.len(), HEADER_LEN + segment_fixed(VERSION) + CRC_LEN);
        assert_eq!(decode(&m), Ok(Some(Message::Segment(seg))));
    }

    #[test]
    fn incomplete_message_waits() {
        let m = encode_segment(&tiny());
        let mut d = Decoder::new();
        for (i, b) in m.iter().enumerate() {
            assert_eq!(d.pull(), Ok(None), "after {i} bytes");
            d.push(&[*b]);
        }
        assert_eq!(d.pull(), Ok(Some(Message::Segment(tiny()))));
        assert_eq!(d.pull(), Ok(None));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn versions_mix_in_one_stream() {
        let mut d = Decoder::new();
        d.push(&message_v(1, KIND_SEGMENT, &TINY_V1_PAYLOAD));
        d.push(&encode_heartbeat(Some(3)));
        d.push(&encode_segment(&tiny()));
        assert_eq!(d.pull(), Ok(Some(Message::Segment(tiny_v1()))));
        assert_eq!(d.pull(), Ok(Some(Message::Heartbeat { newest: Some(3) })));
        assert_eq!(d.pull(), Ok(Some(Message::Segment(tiny()))));
        assert_eq!(d.pull(), Ok(None));
    }

    #[test]
    fn bad_magic_is_reported_from_the_first_byte() {
        let mut d = Decoder::new();
        d.push(b"G");
        assert_eq!(d.pull(), Err(WireError::BadMagic { offset: 0 }));
        // At a later message boundary, with the offset of that boundary.
        let mut d = Decoder::new();
        d.push(&encode_heartbeat(None));
        d.push(b"STRX");
        assert_eq!(d.pull(), Ok(Some(Message::Heartbeat { newest: None })));
        assert_eq!(d.pull(), Err(WireError::BadMagic { offset: 22 }));
    }

    #[test]
    fn other_versions_are_rejected() {
        for version in [0, 3, 0xFF] {
            let mut m = encode_heartbeat(None).to_vec();
            m[4] = version;
            // Before the rest of the header arrives.
            assert_eq!(
                decode(&m[..5]),
                Err(WireError::UnsupportedVersion { version, offset: 0 })
            );
        }
        assert_eq!(
            WireError::UnsupportedVersion { version: 3, offset: 0 }.to_string(),
            "wire: unsupported version 3 at stream offset 0 (this node reads versions 1 and 2; \
             a newer peer needs this node upgraded)"
        );
    }

    #[test]
    fn too_large_is_rejected_at_the_header() {
        let mut d = Decoder::with_max_message(100);
        // 86-byte payload: exactly 100 bytes with header and CRC.
        d.push(&message(0x7F, &[0; 86]));
        assert_eq!(d.pull(), Ok(Some(Message::Unknown { kind: 0x7F })));
        d.push(b"STRM\x02\x01\x00\x00\x00\x57");
        assert_eq!(
            d.pull(),
            Err(WireError::TooLarge {
                len: 101,
                max: 100,
                offset: 100
            })
        );
        // 4 GiB announced: rejected with only the header buffered.
        for version in [1, 2] {
            let mut d = Decoder::new();
            d.push(b"STRM");
            d.push(&[version, 1, 0xFF, 0xFF, 0xFF, 0xFF]);
            assert!(matches!(d.pull(), Err(WireError::TooLarge { .. })));
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn crc_mismatch() {
        let mut m = encode_segment(&tiny()).to_vec();
        m[HEADER_LEN + 100] ^= 0x01;
        assert_eq!(decode(&m), Err(WireError::Crc { kind: 1, offset: 0 }));
        let mut m = encode_heartbeat(Some(1)).to_vec();
        let last = m.len() - 1;
        m[last] ^= 0x80;
        assert_eq!(decode(&m), Err(WireError::Crc { kind: 2, offset: 0 }));
        // The version byte is covered: a v2 message relabelled v1 fails the CRC.
        let mut m = encode_segment(&tiny()).to_vec();
        m[4] = 1;
        assert_eq!(decode(&m), Err(WireError::Crc { kind: 1, offset: 0 }));
    }

    #[test]
    fn every_truncated_payload_is_malformed() {
        for (version, payload) in [(2, &TINY_PAYLOAD[..]), (1, &TINY_V1_PAYLOAD[..])] {
            for len in 0..payload.len() {
                let r = decode(&message_v(version, KIND_SEGMENT, &payload[..len]));
                assert!(
                    matches!(r, Err(WireError::Malformed { what, .. }) if what.starts_with("truncated")),
                    "v{version} payload cut to {len} bytes: {r:?}"
                );
            }
        }
        // The error points at the field that was cut.
        assert_eq!(
            decode(&message(KIND_SEGMENT, &TINY_PAYLOAD[..108])),
            malformed("truncated frame data", 107)
        );
        assert_eq!(
            decode(&message(KIND_SEGMENT, &TINY_PAYLOAD[..79])),
            malformed("truncated descriptors", 77)
        );
        assert_eq!(
            decode(&message_v(1, KIND_SEGMENT, &TINY_V1_PAYLOAD[..99])),
            malformed("truncated frame data", 98)
        );
    }

    #[test]
    fn a_version_1_payload_is_not_a_version_2_payload() {
        // Same bytes, other version: strict per version, never guessed.
        assert!(matches!(
            decode(&message(KIND_SEGMENT, &TINY_V1_PAYLOAD)),
            Err(WireError::Malformed { .. })
        ));
        assert!(matches!(
            decode(&message_v(1, KIND_SEGMENT, &TINY_PAYLOAD)),
            Err(WireError::Malformed { .. })
        ));
    }

    #[test]
    fn frame_track_out_of_range() {
        assert_eq!(patched(|p| p[85] = 1), malformed("frame track index out of range", 84));
        assert_eq!(
            patched_v1(|p| p[76] = 1),
            malformed("frame track index out of range", 75)
        );
    }

    #[test]
    fn trailing_bytes() {
        assert_eq!(
            patched(|p| p.push(0)),
            malformed("trailing bytes after the last field", 110)
        );
        assert_eq!(
            patched_v1(|p| p.push(0)),
            malformed("trailing bytes after the last field", 101)
        );
    }

    #[test]
    fn bad_utf8() {
        assert_eq!(patched(|p| p[50] = 0xFF), malformed("codec string is not UTF-8", 49));
        assert_eq!(patched(|p| p[62] = 0x80), malformed("language is not UTF-8", 61));
    }

    #[test]
    fn unknown_codec() {
        assert_eq!(patched(|p| p[32] = 0), malformed("unknown codec number", 32));
        assert_eq!(patched(|p| p[32] = 10), malformed("unknown codec number", 32));
        assert_eq!(patched_v1(|p| p[28] = 0), malformed("unknown codec number", 28));
    }

    #[test]
    fn too_many_tracks() {
        assert_eq!(patched(|p| p[29] = 33), malformed("more than 32 tracks", 29));
        assert_eq!(patched_v1(|p| p[25] = 33), malformed("more than 32 tracks", 25));
    }

    #[test]
    fn non_canonical_flags_are_rejected() {
        assert_eq!(
            patched(|p| p[28] = 0x03),
            malformed("reserved segment flag bits set", 28)
        );
        assert_eq!(patched(|p| p[86] = 0x81), malformed("reserved frame flag bits set", 86));
        assert_eq!(patched(|p| p[37] = 2), malformed("present flag not 0 or 1", 37));
        assert_eq!(patched(|p| p[59] = 0xFF), malformed("present flag not 0 or 1", 59));
        assert_eq!(
            patched_v1(|p| p[24] = 0x03),
            malformed("reserved segment flag bits set", 24)
        );
        assert_eq!(
            patched_v1(|p| p[77] = 0x81),
            malformed("reserved frame flag bits set", 77)
        );
    }

    #[test]
    fn descriptors_are_bounded_and_whole() {
        // A length over the ES_info bound is refused at the length, before
        // the bytes are looked at.
        assert_eq!(
            patched(|p| p[75..77].copy_from_slice(&[0x04, 0x00])),
            malformed("descriptors over 1023 bytes", 75)
        );
        // A descriptor whose length runs past the loop.
        assert_eq!(
            patched(|p| p[78] = 0x02),
            malformed("descriptors are not a descriptor loop", 77)
        );
        // Two whole descriptors are fine, and the bound itself is accepted.
        let mut seg = tiny();
        let mut tracks = seg.tracks.to_vec();
        let mut long = vec![0x56, 253];
        long.extend_from_slice(&[0xAB; 253]);
        long.extend_from_slice(&[0x59, 0]);
        while long.len() + 257 <= MAX_DESCRIPTOR_BYTES {
            long.extend_from_slice(&[0x5F, 255]);
            long.extend_from_slice(&[0xCD; 255]);
        }
        let pad = MAX_DESCRIPTOR_BYTES - long.len() - 2;
        long.extend_from_slice(&[0x80, pad as u8]);
        long.resize(MAX_DESCRIPTOR_BYTES, 0xEE);
        assert!(is_descriptor_loop(&long));
        tracks[0].params.descriptors = Bytes::from(long);
        seg.tracks = Arc::from(tracks);
        assert_eq!(decode(&encode_segment(&seg)), Ok(Some(Message::Segment(seg))));
    }

    #[test]
    fn descriptor_loops() {
        assert!(is_descriptor_loop(&[]));
        assert!(is_descriptor_loop(&[0x0A, 0]));
        assert!(is_descriptor_loop(&[0x56, 2, 1, 2, 0x59, 0]));
        assert!(!is_descriptor_loop(&[0x56]));
        assert!(!is_descriptor_loop(&[0x56, 1]));
        assert!(!is_descriptor_loop(&[0x56, 0, 0x59]));
    }

    #[test]
    #[should_panic(expected = "descriptors are not a descriptor loop")]
    fn encoding_a_broken_descriptor_loop_panics() {
        let mut seg = tiny();
        let mut tracks = seg.tracks.to_vec();
        tracks[0].params.descriptors = Bytes::from_static(&[0x56, 5, 0]);
        seg.tracks = Arc::from(tracks);
        encode_segment(&seg);
    }

    #[test]
    fn unknown_kind_is_skipped() {
        let mut d = Decoder::new();
        d.push(&message(0, b""));
        d.push(&message_v(1, 200, b"future payload"));
        d.push(&encode_heartbeat(Some(9)));
        assert_eq!(d.pull(), Ok(Some(Message::Unknown { kind: 0 })));
        assert_eq!(d.pull(), Ok(Some(Message::Unknown { kind: 200 })));
        assert_eq!(d.pull(), Ok(Some(Message::Heartbeat { newest: Some(9) })));
        assert_eq!(d.pull(), Ok(None));
        // An unknown kind is still CRC-checked.
        let mut m = message(200, b"x");
        m[HEADER_LEN] = b'y';
        assert_eq!(decode(&m), Err(WireError::Crc { kind: 200, offset: 0 }));
    }

    #[test]
    fn an_error_poisons_the_decoder() {
        let mut d = Decoder::new();
        let mut bad = encode_heartbeat(None).to_vec();
        bad[12] ^= 1;
        d.push(&encode_heartbeat(Some(1)));
        d.push(&bad);
        d.push(&encode_heartbeat(Some(2)));
        assert_eq!(d.pull(), Ok(Some(Message::Heartbeat { newest: Some(1) })));
        let err = WireError::Crc { kind: 2, offset: 22 };
        assert_eq!(d.pull(), Err(err.clone()));
        assert_eq!(d.buffered(), 0);
        d.push(&encode_heartbeat(Some(3)));
        assert_eq!(d.buffered(), 0, "pushes after an error are dropped");
        assert_eq!(d.pull(), Err(err.clone()));
        assert_eq!(d.pull(), Err(err));
    }

    #[test]
    fn frame_data_is_not_copied() {
        let m = encode_segment(&tiny());
        let mut d = Decoder::new();
        d.push(&m);
        let Ok(Some(Message::Segment(seg))) = d.pull() else {
            panic!("segment expected");
        };
        // Decoded frame data, parameter sets and descriptors lie in one allocation.
        let data = seg.frames[0].data.as_ptr() as usize;
        let sps = seg.tracks[0].params.parameter_sets[0].as_ptr() as usize;
        let descriptors = seg.tracks[0].params.descriptors.as_ptr() as usize;
        assert_eq!(data - sps, 107 - 68);
        assert_eq!(descriptors - sps, 77 - 68);
    }

    #[test]
    #[should_panic(expected = "more than 32 tracks")]
    fn encoding_too_many_tracks_panics() {
        let mut seg = tiny();
        seg.tracks = Arc::from(vec![seg.tracks[0].clone(); MAX_TRACKS + 1]);
        encode_segment(&seg);
    }

    #[test]
    #[should_panic(expected = "frame track out of range")]
    fn encoding_a_dangling_frame_panics() {
        let mut seg = tiny();
        seg.frames[0].track = 1;
        encode_segment(&seg);
    }

    #[test]
    fn max_tracks_round_trip() {
        let mut seg = tiny();
        seg.tracks = Arc::from(vec![seg.tracks[0].clone(); MAX_TRACKS]);
        seg.frames[0].track = MAX_TRACKS as u16 - 1;
        assert_eq!(decode(&encode_segment(&seg)), Ok(Some(Message::Segment(seg))));
    }

    #[test]
    fn errors_read_well() {
        let e = WireError::Malformed {
            what: "unknown codec number",
            offset: 38,
        };
        assert_eq!(
            e.to_string(),
            "wire: malformed payload at stream offset 38: unknown codec number"
        );
        let e = WireError::TooLarge {
            len: 101,
            max: 100,
            offset: 0,
        };
        assert_eq!(
            e.to_string(),
            "wire: message at stream offset 0 is 101 bytes, over the limit of 100"
        );
    }

    /// `tiny()`'s tracks with these frames on them (track 0).
    fn with_frames(frames: Vec<(bool, i64, Vec<u8>)>) -> Segment {
        Segment {
            frames: frames
                .into_iter()
                .map(|(keyframe, dts, data)| Frame {
                    track: 0,
                    dts,
                    pts: dts,
                    keyframe,
                    data: Bytes::from(data),
                })
                .collect(),
            ..tiny()
        }
    }

    proptest::proptest! {
        #[test]
        fn shared_encoding_is_the_encoding_and_frames_point_into_it(
            frames in proptest::collection::vec(
                (proptest::bool::ANY, proptest::num::i64::ANY, proptest::collection::vec(proptest::num::u8::ANY, 0..300)),
                0..40,
            )
        ) {
            let seg = with_frames(frames);
            let mut shared = seg.clone();
            let msg = encode_segment_shared(&mut shared);
            proptest::prop_assert_eq!(&msg, &encode_segment(&seg));
            proptest::prop_assert_eq!(&shared, &seg, "frames are unchanged");
            let range = msg.as_ptr_range();
            for f in shared.frames.iter().filter(|f| !f.data.is_empty()) {
                let r = f.data.as_ptr_range();
                proptest::prop_assert!(range.start <= r.start && r.end <= range.end, "frame data inside the message");
            }
        }
    }

    #[test]
    fn shared_encoding_of_a_real_sized_segment() {
        let frames = (0..150)
            .map(|i| (i % 50 == 0, i * 3600, vec![i as u8; 1000 + 37 * i as usize]))
            .collect();
        let seg = with_frames(frames);
        let mut shared = seg.clone();
        let msg = encode_segment_shared(&mut shared);
        assert_eq!(msg, encode_segment(&seg));
        assert_eq!(decode(&msg), Ok(Some(Message::Segment(seg.clone()))));
        assert_eq!(shared, seg);
        // The last frame's data ends right before the CRC.
        let last = shared.frames.last().map(|f| f.data.as_ptr_range().end);
        assert_eq!(last, Some(msg[msg.len() - CRC_LEN..].as_ptr()));
    }
}

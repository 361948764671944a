//! The index of an archive data file: one fixed-size entry per segment
//! message, so a reader finds a segment by number or time without decoding
//! the data, and the node lists an archive without reading it.
//!
//! Byte layout (all integers big-endian). The header, [`HEADER_LEN`] = 16
//! bytes:
//!
//! | offset | size | field     | value                                        |
//! |-------:|-----:|-----------|----------------------------------------------|
//! | 0      | 4    | magic     | `SIDX`                                       |
//! | 4      | 1    | version   | 1                                            |
//! | 5      | 3    | reserved  | zero                                         |
//! | 8      | 8    | first_seq | u64: number of the file's first segment      |
//!
//! then one entry of [`ENTRY_LEN`] = 48 bytes per message of the data file,
//! in file order:
//!
//! | offset | size | field           | value                                                   |
//! |-------:|-----:|-----------------|---------------------------------------------------------|
//! | 0      | 8    | seq             | u64: segment number                                     |
//! | 8      | 8    | start           | i64: UTC start, 90 kHz ticks since the Unix epoch       |
//! | 16     | 8    | duration        | i64: 90 kHz ticks                                       |
//! | 24     | 8    | offset          | u64: byte offset of the message in the data file        |
//! | 32     | 4    | len             | u32: bytes of the message (header, payload and CRC)     |
//! | 36     | 4    | target_duration | u32: the segment's declared EXT-X-TARGETDURATION, s     |
//! | 40     | 1    | flags           | bit 0 discontinuity, bit 1 independent; others zero     |
//! | 41     | 3    | reserved        | zero                                                    |
//! | 44     | 4    | CRC             | CRC-32/MPEG-2 (ISO/IEC 13818-1 Annex A) of bytes 0..44  |
//!
//! Invariants:
//! - The index is derived data: [`rebuild`] re-derives the same entries from
//!   the data file, so a lost or damaged index is rebuilt, never trusted
//!   over the data.
//! - A valid index is the header followed by entries whose numbers strictly
//!   increase (the first one is `first_seq`) and whose messages tile the
//!   data file from offset 0. A process killed mid-write leaves a torn tail
//!   (a short or CRC-failing last entry, or a short last message): parsing
//!   keeps everything before it and reports the rest in `torn_bytes`, so the
//!   writer truncates the file there.
//! - Parsing never panics, and allocates at most in proportion to its input.

use std::sync::{Arc, LazyLock};

use crate::frame::Segment;
use crate::hls::{self, DateRange, PlaylistEntry};
use crate::ts::crc::crc32_mpeg2;
use crate::wire::{Decoder, Message};

/// Bytes of the index header.
pub const HEADER_LEN: usize = 16;
/// Bytes of one index entry.
pub const ENTRY_LEN: usize = 48;
/// First four bytes of an index file.
pub const MAGIC: [u8; 4] = *b"SIDX";
/// Index format version written and read.
pub const VERSION: u8 = 1;

const FLAG_DISCONTINUITY: u8 = 0x01;
const FLAG_INDEPENDENT: u8 = 0x02;
/// Bytes of an entry covered by its CRC.
const ENTRY_BODY: usize = ENTRY_LEN - 4;
/// Bytes of the data file pushed into the decoder at a time by [`rebuild`],
/// so its buffer holds one message plus this much, not the whole file.
const REBUILD_CHUNK: usize = 1 << 20;

/// Whether a segment whose video tracks start as `video_raps` says
/// ([`hls::video_raps`], per video track in track order) is independent in
/// the stream's own playlist, whose timing track is the first video track:
/// the first video track starts with a random access point, or there is no
/// video (every audio frame is one). The live HLS output and the archive
/// index both decide [`PlaylistEntry::independent`] of the whole stream with
/// this one rule.
pub fn starts_independent(video_raps: &[bool]) -> bool {
    video_raps.first().copied().unwrap_or(true)
}

/// One index entry: where a segment's message is in the data file and what
/// a playlist needs to list it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Segment number (HLS media sequence number).
    pub seq: u64,
    /// UTC start, 90 kHz ticks since the Unix epoch.
    pub start: i64,
    /// Duration, 90 kHz ticks.
    pub duration: i64,
    /// Byte offset of the message in the data file.
    pub offset: u64,
    /// Bytes of the message: wire header, payload and CRC.
    pub len: u32,
    /// The `EXT-X-TARGETDURATION` the segment's stream declared, whole
    /// seconds (RFC 8216 §4.3.3.1); 0 when unknown.
    pub target_duration: u32,
    /// The segment does not continue the previous one (RFC 8216 §4.3.2.3).
    pub discontinuity: bool,
    /// The segment starts with a random access point on its timing track,
    /// as the live playlist decides it ([`starts_independent`]).
    pub independent: bool,
}

/// The shared empty cue list of archive playlist entries (the index keeps
/// no SCTE-35 cues), so building a long playlist allocates no cue lists.
static NO_CUES: LazyLock<Arc<[DateRange]>> = LazyLock::new(|| Arc::from(Vec::new()));

impl IndexEntry {
    /// The entry of `segment` stored at byte `offset` of the data file as a
    /// `len`-byte message; `independent` is decided from the frames as the
    /// live HLS playlist of the whole stream decides it:
    /// `starts_independent(&hls::video_raps(segment))`.
    pub fn of(segment: &Segment, offset: u64, len: u32) -> IndexEntry {
        IndexEntry {
            seq: segment.seq,
            start: segment.start,
            duration: segment.duration,
            offset,
            len,
            target_duration: segment.target_duration,
            discontinuity: segment.discontinuity,
            independent: starts_independent(&hls::video_raps(segment)),
        }
    }

    /// UTC end, 90 kHz ticks: `start + duration` (saturating, so a crafted
    /// entry cannot overflow).
    pub fn end(&self) -> i64 {
        self.start.saturating_add(self.duration)
    }

    /// The entry's [`ENTRY_LEN`] bytes, CRC included.
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut b = [0u8; ENTRY_LEN];
        b[0..8].copy_from_slice(&self.seq.to_be_bytes());
        b[8..16].copy_from_slice(&self.start.to_be_bytes());
        b[16..24].copy_from_slice(&self.duration.to_be_bytes());
        b[24..32].copy_from_slice(&self.offset.to_be_bytes());
        b[32..36].copy_from_slice(&self.len.to_be_bytes());
        b[36..40].copy_from_slice(&self.target_duration.to_be_bytes());
        b[40] = if self.discontinuity { FLAG_DISCONTINUITY } else { 0 }
            | if self.independent { FLAG_INDEPENDENT } else { 0 };
        let crc = crc32_mpeg2(&b[..ENTRY_BODY]);
        b[ENTRY_BODY..].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes one entry. `None` when its CRC does not match or a reserved
    /// bit (flags bits 2–7, bytes 41–43) is set.
    pub fn decode(b: &[u8; ENTRY_LEN]) -> Option<IndexEntry> {
        let (body, crc) = b.split_at(ENTRY_BODY);
        if crc32_mpeg2(body).to_be_bytes() != crc {
            return None;
        }
        let flags = b[40];
        if flags & !(FLAG_DISCONTINUITY | FLAG_INDEPENDENT) != 0 || b[41..44] != [0, 0, 0] {
            return None;
        }
        let u64_at = |i: usize| {
            u64::from_be_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(IndexEntry {
            seq: u64_at(0),
            start: u64_at(8) as i64,
            duration: u64_at(16) as i64,
            offset: u64_at(24),
            len: u32_at(32),
            target_duration: u32_at(36),
            discontinuity: flags & FLAG_DISCONTINUITY != 0,
            independent: flags & FLAG_INDEPENDENT != 0,
        })
    }

    /// The playlist entry of this segment (no SCTE-35 cues: the index does
    /// not keep them).
    pub fn playlist_entry(&self) -> PlaylistEntry {
        PlaylistEntry {
            seq: self.seq,
            start: self.start,
            duration: self.duration,
            discontinuity: self.discontinuity,
            target_duration: self.target_duration,
            independent: self.independent,
            cues: NO_CUES.clone(),
        }
    }
}

/// The [`HEADER_LEN`] header bytes of the index of a file whose first
/// segment is `first_seq`.
pub fn encode_header(first_seq: u64) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[..4].copy_from_slice(&MAGIC);
    b[4] = VERSION;
    b[8..].copy_from_slice(&first_seq.to_be_bytes());
    b
}

/// Why bytes are not an index file at all (its header is missing or bad).
/// A bad entry is not an error: parsing stops there ([`ParsedIndex`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// Fewer than [`HEADER_LEN`] bytes (the file was created but its header
    /// never fully written): rebuild the index from the data file.
    #[error("dvr index: {len} bytes, shorter than its {HEADER_LEN}-byte header")]
    Short { len: usize },
    /// The file does not start with [`MAGIC`].
    #[error("dvr index: bad magic: not a strom index file")]
    BadMagic,
    /// A version other than [`VERSION`].
    #[error("dvr index: unsupported version {version} (this node reads version {VERSION})")]
    UnsupportedVersion { version: u8 },
    /// The reserved header bytes are not zero.
    #[error("dvr index: reserved header bytes are not zero")]
    Reserved,
}

/// An index file as far as it is valid.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedIndex {
    /// Number of the file's first segment, from the header.
    pub first_seq: u64,
    /// The valid entries, in file order.
    pub entries: Vec<IndexEntry>,
    /// Bytes of the header and the whole valid entries.
    pub valid_len: u64,
    /// Bytes after `valid_len`: a torn or corrupt tail (0 for an intact file).
    pub torn_bytes: u64,
}

/// Parses an index file. `Err` only when the header itself is missing or
/// bad. Entries are read until the first one that is short (a torn write),
/// fails [`IndexEntry::decode`] (CRC or reserved bits), does not have a
/// larger seq than the one before (the first entry: not exactly the
/// header's `first_seq`), or whose offset is not the previous entry's
/// `offset + len` (the first entry: not 0); it and everything after it are
/// `torn_bytes`.
pub fn parse_index(bytes: &[u8]) -> Result<ParsedIndex, IndexError> {
    let Some((header, mut rest)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(IndexError::Short { len: bytes.len() });
    };
    if header[..4] != MAGIC {
        return Err(IndexError::BadMagic);
    }
    if header[4] != VERSION {
        return Err(IndexError::UnsupportedVersion { version: header[4] });
    }
    if header[5..8] != [0, 0, 0] {
        return Err(IndexError::Reserved);
    }
    let first_seq = u64::from_be_bytes([
        header[8], header[9], header[10], header[11], header[12], header[13], header[14], header[15],
    ]);
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(rest.len() / ENTRY_LEN);
    while let Some((raw, tail)) = rest.split_first_chunk::<ENTRY_LEN>() {
        let Some(e) = IndexEntry::decode(raw) else {
            break;
        };
        let follows = match entries.last() {
            None => e.seq == first_seq && e.offset == 0,
            Some(p) => e.seq > p.seq && p.offset.checked_add(u64::from(p.len)) == Some(e.offset),
        };
        if !follows {
            break;
        }
        entries.push(e);
        rest = tail;
    }
    let valid_len = (HEADER_LEN + entries.len() * ENTRY_LEN) as u64;
    Ok(ParsedIndex {
        first_seq,
        entries,
        valid_len,
        torn_bytes: bytes.len() as u64 - valid_len,
    })
}

/// The entries re-derived from a data file, as far as it is valid.
#[derive(Debug, PartialEq, Eq)]
pub struct Rebuilt {
    /// One entry per whole valid segment message, in file order.
    pub entries: Vec<IndexEntry>,
    /// Bytes of `data` holding those messages (from `data[0]`).
    pub valid_len: u64,
    /// Bytes of `data` after `valid_len`: a torn or corrupt tail.
    pub torn_bytes: u64,
}

/// Re-derives the index entries of a data file, or of its tail:
/// `base_offset` is the file offset of `data[0]` (a message boundary), and
/// `after_seq` the number the tail's first segment must be above, if any.
/// Decodes the messages with [`crate::wire::Decoder`] (CRC and strict
/// payload checks; messages up to [`crate::wire::DEFAULT_MAX_MESSAGE`]) and
/// stops at the first error, incomplete message, message that is not a
/// segment (heartbeats never belong in a data file), or segment whose seq
/// does not increase; everything before is valid. Each entry's `offset` is
/// `base_offset` plus its position in `data`, its `len` the whole message.
pub fn rebuild(data: &[u8], base_offset: u64, after_seq: Option<u64>) -> Rebuilt {
    let mut decoder = Decoder::new();
    let mut entries = Vec::new();
    let mut last = after_seq;
    // Bytes of `data` in whole valid messages.
    let mut valid = 0usize;
    'chunks: for chunk in data.chunks(REBUILD_CHUNK) {
        decoder.push(chunk);
        loop {
            let before = decoder.buffered();
            let seg = match decoder.pull() {
                Ok(Some(Message::Segment(seg))) => seg,
                Ok(None) => break,
                Ok(Some(_)) | Err(_) => break 'chunks,
            };
            if last.is_some_and(|l| seg.seq <= l) {
                break 'chunks;
            }
            // The decoder takes exactly one message off its buffer per pull.
            let len = before - decoder.buffered();
            let Ok(len32) = u32::try_from(len) else {
                break 'chunks;
            };
            let offset = base_offset.saturating_add(valid as u64);
            entries.push(IndexEntry::of(&seg, offset, len32));
            last = Some(seg.seq);
            valid += len;
        }
    }
    Rebuilt {
        entries,
        valid_len: valid as u64,
        torn_bytes: (data.len() - valid) as u64,
    }
}

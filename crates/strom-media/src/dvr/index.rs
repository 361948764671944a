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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Codec, Frame, Track, TrackParams};
    use crate::wire::{encode_heartbeat, encode_segment};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn track(id: u16, codec: Codec) -> Track {
        Track {
            id,
            codec,
            params: TrackParams::default(),
        }
    }

    fn frame(track: u16, dts: i64, keyframe: bool, size: usize) -> Frame {
        Frame {
            track,
            dts,
            pts: dts,
            keyframe,
            data: Bytes::from(vec![track as u8; size]),
        }
    }

    /// A 2 s segment of H.264 + AAC starting at `start`, its video starting
    /// with a keyframe or not.
    fn segment(seq: u64, start: i64, video_rap: bool, sizes: &[usize]) -> Segment {
        let mut frames = vec![frame(0, start, video_rap, 100)];
        for (i, &n) in sizes.iter().enumerate() {
            frames.push(frame((i % 2) as u16, start + 3600 * (i as i64 + 1), false, n));
        }
        Segment {
            seq,
            start,
            duration: 2 * crate::CLOCK_HZ,
            discontinuity: seq.is_multiple_of(3),
            target_duration: 2,
            tracks: Arc::from(vec![track(0, Codec::H264), track(1, Codec::Aac)]),
            frames,
        }
    }

    fn entry(seq: u64, offset: u64, len: u32) -> IndexEntry {
        IndexEntry {
            seq,
            start: 1_763_769_600 * crate::CLOCK_HZ + (seq % 1_000_000) as i64 * 180_000,
            duration: 180_000,
            offset,
            len,
            target_duration: 2,
            discontinuity: false,
            independent: true,
        }
    }

    /// A valid index file of `n` entries starting at `first_seq`.
    fn index_file(first_seq: u64, lens: &[u32]) -> (Vec<u8>, Vec<IndexEntry>) {
        let mut bytes = encode_header(first_seq).to_vec();
        let mut entries = Vec::new();
        let mut offset = 0;
        for (i, &len) in lens.iter().enumerate() {
            let e = entry(first_seq + 2 * i as u64, offset, len);
            bytes.extend_from_slice(&e.encode());
            entries.push(e);
            offset += u64::from(len);
        }
        (bytes, entries)
    }

    /// Wire messages of `segments` back to back, and where each ends.
    fn wire_file(segments: &[Segment]) -> (Vec<u8>, Vec<usize>) {
        let mut data = Vec::new();
        let mut ends = Vec::new();
        for s in segments {
            data.extend_from_slice(&encode_segment(s));
            ends.push(data.len());
        }
        (data, ends)
    }

    #[test]
    fn bytes_follow_the_documented_layout() {
        assert_eq!(
            encode_header(0x0102_0304_0506_0708),
            [b'S', b'I', b'D', b'X', 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
        );
        let e = IndexEntry {
            seq: 0x11,
            start: -2,
            duration: 0x33,
            offset: 0x44,
            len: 0x55,
            target_duration: 0x66,
            discontinuity: true,
            independent: true,
        };
        let b = e.encode();
        assert_eq!(b[..8], 0x11u64.to_be_bytes());
        assert_eq!(b[8..16], (-2i64).to_be_bytes());
        assert_eq!(b[16..24], 0x33i64.to_be_bytes());
        assert_eq!(b[24..32], 0x44u64.to_be_bytes());
        assert_eq!(b[32..36], 0x55u32.to_be_bytes());
        assert_eq!(b[36..40], 0x66u32.to_be_bytes());
        assert_eq!(b[40..44], [0x03, 0, 0, 0]);
        assert_eq!(b[44..], crc32_mpeg2(&b[..44]).to_be_bytes());
        assert_eq!(crc32_mpeg2(&b), 0, "CRC-32/MPEG-2 over the whole entry is 0");
        let only_independent = IndexEntry {
            discontinuity: false,
            ..e
        };
        assert_eq!(only_independent.encode()[40], 0x02);
        assert_eq!(IndexEntry::decode(&b), Some(e));
        assert_eq!(e.end(), 0x31);
        assert_eq!(IndexEntry { start: i64::MAX, ..e }.end(), i64::MAX, "saturates");
    }

    #[test]
    fn decode_rejects_bad_crc_and_reserved_bits() {
        let good = entry(5, 0, 100).encode();
        let mut bad_crc = good;
        bad_crc[47] ^= 1;
        assert_eq!(IndexEntry::decode(&bad_crc), None);
        // Reserved bits with a correct CRC over them: still refused.
        for (at, bit) in [(40, 0x04), (40, 0x80), (41, 1), (42, 0x10), (43, 0x80)] {
            let mut b = good;
            b[at] |= bit;
            let crc = crc32_mpeg2(&b[..44]);
            b[44..].copy_from_slice(&crc.to_be_bytes());
            assert_eq!(IndexEntry::decode(&b), None, "byte {at} bit {bit:#x}");
        }
    }

    #[test]
    fn independence_is_the_live_playlists_rule() {
        let raps = |s: &Segment| IndexEntry::of(s, 0, 1).independent;
        assert!(raps(&segment(1, 0, true, &[10])));
        assert!(!raps(&segment(1, 0, false, &[10])));
        // Audio first, then a video keyframe: the video track decides.
        let mut s = segment(1, 0, true, &[]);
        s.frames.insert(0, frame(1, 0, true, 10));
        assert!(raps(&s));
        // A second video track that does not start with a RAP: the first one is the timing track.
        let mut s = segment(1, 0, true, &[]);
        s.tracks = Arc::from(vec![track(0, Codec::H264), track(1, Codec::Aac), track(2, Codec::H265)]);
        s.frames.push(frame(2, 0, false, 10));
        assert!(raps(&s));
        // Video track without frames: not independent.
        let mut s = segment(1, 0, true, &[]);
        s.frames = vec![frame(1, 0, true, 10)];
        assert!(!raps(&s));
        // No video: every audio frame is a RAP.
        let mut s = segment(1, 0, false, &[]);
        s.tracks = Arc::from(vec![track(0, Codec::Aac)]);
        assert!(raps(&s));
        assert!(starts_independent(&[]));
        assert!(starts_independent(&[true, false]));
        assert!(!starts_independent(&[false, true]));
    }

    #[test]
    fn entries_carry_the_segments_facts() {
        let mut s = segment(9, 123_456, true, &[10]);
        s.discontinuity = true;
        s.target_duration = 6;
        let e = IndexEntry::of(&s, 1000, 250);
        assert_eq!(
            e,
            IndexEntry {
                seq: 9,
                start: 123_456,
                duration: 180_000,
                offset: 1000,
                len: 250,
                target_duration: 6,
                discontinuity: true,
                independent: true,
            }
        );
        let p = e.playlist_entry();
        assert_eq!(p, PlaylistEntry::new(&s, true, Arc::from(Vec::new())));
        assert!(p.cues.is_empty());
    }

    #[test]
    fn headers_that_are_not_an_index_are_errors() {
        let good = encode_header(7);
        assert_eq!(parse_index(&good[..15]), Err(IndexError::Short { len: 15 }));
        assert_eq!(parse_index(&[]), Err(IndexError::Short { len: 0 }));
        let mut b = good;
        b[0] = b'X';
        assert_eq!(parse_index(&b), Err(IndexError::BadMagic));
        let mut b = good;
        b[4] = 2;
        assert_eq!(parse_index(&b), Err(IndexError::UnsupportedVersion { version: 2 }));
        let mut b = good;
        b[6] = 1;
        assert_eq!(parse_index(&b), Err(IndexError::Reserved));
        assert_eq!(
            parse_index(&good),
            Ok(ParsedIndex {
                first_seq: 7,
                entries: Vec::new(),
                valid_len: 16,
                torn_bytes: 0
            })
        );
    }

    #[test]
    fn parsing_stops_at_an_entry_that_does_not_follow() {
        let (file, entries) = index_file(10, &[100, 200, 300]);
        let parsed = parse_index(&file).expect("valid");
        assert_eq!((parsed.first_seq, &parsed.entries), (10, &entries));
        assert_eq!((parsed.valid_len, parsed.torn_bytes), (file.len() as u64, 0));
        // Each broken entry is written at the place of the third one.
        let third = HEADER_LEN + 2 * ENTRY_LEN;
        let breaks = [
            IndexEntry {
                seq: entries[1].seq,
                ..entries[2]
            },
            IndexEntry {
                seq: entries[1].seq - 1,
                ..entries[2]
            },
            IndexEntry {
                offset: 301,
                ..entries[2]
            },
            IndexEntry {
                offset: 299,
                ..entries[2]
            },
        ];
        for b in breaks {
            let mut f = file.clone();
            f[third..third + ENTRY_LEN].copy_from_slice(&b.encode());
            let p = parse_index(&f).expect("header ok");
            assert_eq!(p.entries, entries[..2], "{b:?}");
            assert_eq!((p.valid_len, p.torn_bytes), (third as u64, ENTRY_LEN as u64));
        }
        // The first entry must be first_seq at offset 0.
        for b in [entry(11, 0, 5), entry(9, 0, 5), entry(10, 1, 5)] {
            let mut f = encode_header(10).to_vec();
            f.extend_from_slice(&b.encode());
            assert_eq!(parse_index(&f).expect("header").entries, Vec::new(), "{b:?}");
        }
        // Lengths up to u32::MAX tile like any other.
        let mut f = encode_header(1).to_vec();
        f.extend_from_slice(&entry(1, 0, u32::MAX).encode());
        f.extend_from_slice(&entry(2, u64::from(u32::MAX), 1).encode());
        f.extend_from_slice(&entry(3, u64::from(u32::MAX), 1).encode());
        assert_eq!(parse_index(&f).expect("header").entries.len(), 2);
    }

    #[test]
    fn rebuild_reads_every_whole_segment_message() {
        let segs: Vec<Segment> = (5..9)
            .map(|i| segment(i, i as i64 * 180_000, i != 6, &[300, 20]))
            .collect();
        let (data, ends) = wire_file(&segs);
        let r = rebuild(&data, 0, None);
        let mut start = 0;
        for ((e, s), end) in r.entries.iter().zip(&segs).zip(&ends) {
            assert_eq!(*e, IndexEntry::of(s, start as u64, (end - start) as u32));
            start = *end;
        }
        assert_eq!(r.entries.len(), 4);
        assert!(!r.entries[1].independent && r.entries[0].independent);
        assert_eq!((r.valid_len, r.torn_bytes), (data.len() as u64, 0));
        // The index written from it parses back to the same entries.
        let mut idx = encode_header(5).to_vec();
        for e in &r.entries {
            idx.extend_from_slice(&e.encode());
        }
        assert_eq!(parse_index(&idx).expect("valid").entries, r.entries);

        // A tail: offsets from base_offset, seqs above after_seq.
        let tail = rebuild(&data[ends[1]..], ends[1] as u64, Some(6));
        assert_eq!(tail.entries, r.entries[2..]);
        assert_eq!(rebuild(&data[ends[1]..], ends[1] as u64, Some(7)).entries, Vec::new());
        assert_eq!(rebuild(&data, 0, Some(5)).entries, Vec::new(), "seq 5 is not above 5");
    }

    #[test]
    fn rebuild_stops_at_torn_corrupt_and_foreign_messages() {
        let segs: Vec<Segment> = (1..4).map(|i| segment(i, i as i64 * 180_000, true, &[50])).collect();
        let (data, ends) = wire_file(&segs);
        // A torn last message.
        let r = rebuild(&data[..data.len() - 1], 0, None);
        assert_eq!((r.entries.len(), r.valid_len), (2, ends[1] as u64));
        assert_eq!(r.torn_bytes, (data.len() - 1 - ends[1]) as u64);
        // A flipped byte in the second message.
        let mut bad = data.clone();
        bad[ends[0] + 30] ^= 0x40;
        let r = rebuild(&bad, 0, None);
        assert_eq!((r.entries.len(), r.valid_len), (1, ends[0] as u64));
        // A heartbeat does not belong in a data file.
        let mut hb = data[..ends[0]].to_vec();
        hb.extend_from_slice(&encode_heartbeat(Some(1)));
        hb.extend_from_slice(&data[ends[0]..]);
        assert_eq!(rebuild(&hb, 0, None).entries.len(), 1);
        // Seqs must increase.
        let (dup, _) = wire_file(&[segs[1].clone(), segs[0].clone()]);
        assert_eq!(rebuild(&dup, 0, None).entries.len(), 1);
        // Garbage, empty.
        assert_eq!(rebuild(b"not a wire file", 0, None).torn_bytes, 15);
        assert_eq!(
            rebuild(&[], 0, None),
            Rebuilt {
                entries: Vec::new(),
                valid_len: 0,
                torn_bytes: 0
            }
        );
    }

    #[test]
    fn rebuild_reads_messages_larger_than_its_chunk() {
        let segs = [
            segment(1, 0, true, &[REBUILD_CHUNK + REBUILD_CHUNK / 2]),
            segment(2, 180_000, true, &[10]),
            segment(3, 360_000, true, &[REBUILD_CHUNK * 2]),
        ];
        let (data, ends) = wire_file(&segs);
        let r = rebuild(&data, 1 << 40, None);
        let offsets: Vec<u64> = r.entries.iter().map(|e| e.offset - (1 << 40)).collect();
        assert_eq!(offsets, vec![0, ends[0] as u64, ends[1] as u64]);
        assert_eq!(r.entries[2].len as usize, ends[2] - ends[1]);
    }

    fn any_entry() -> impl Strategy<Value = IndexEntry> {
        (
            any::<u64>(),
            any::<i64>(),
            any::<i64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(seq, start, duration, offset, len, target_duration, discontinuity, independent)| IndexEntry {
                    seq,
                    start,
                    duration,
                    offset,
                    len,
                    target_duration,
                    discontinuity,
                    independent,
                },
            )
    }

    proptest! {
        #[test]
        fn entries_round_trip(e in any_entry()) {
            prop_assert_eq!(IndexEntry::decode(&e.encode()), Some(e));
        }

        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(p) = parse_index(&bytes) {
                prop_assert_eq!(p.valid_len + p.torn_bytes, bytes.len() as u64);
                prop_assert_eq!(p.valid_len, (HEADER_LEN + p.entries.len() * ENTRY_LEN) as u64);
            }
            let r = rebuild(&bytes, 0, None);
            prop_assert_eq!(r.valid_len + r.torn_bytes, bytes.len() as u64);
        }

        #[test]
        fn a_cut_index_keeps_the_whole_entries_before_it(
            lens in proptest::collection::vec(14u32..5000, 0..12),
            first_seq in 0u64..u64::MAX / 2,
            cut_at in any::<proptest::sample::Index>(),
        ) {
            let (file, entries) = index_file(first_seq, &lens);
            let cut = cut_at.index(file.len() + 1);
            match parse_index(&file[..cut]) {
                Err(e) => prop_assert!(cut < HEADER_LEN, "{e}"),
                Ok(p) => {
                    let whole = (cut - HEADER_LEN) / ENTRY_LEN;
                    prop_assert_eq!(p.first_seq, first_seq);
                    prop_assert_eq!(&p.entries[..], &entries[..whole]);
                    prop_assert_eq!(p.valid_len, (HEADER_LEN + whole * ENTRY_LEN) as u64);
                    prop_assert_eq!(p.torn_bytes, ((cut - HEADER_LEN) % ENTRY_LEN) as u64);
                }
            }
        }

        #[test]
        fn a_flipped_byte_stops_parsing_at_its_entry(
            lens in proptest::collection::vec(14u32..5000, 1..12),
            at in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let (mut file, entries) = index_file(3, &lens);
            let pos = HEADER_LEN + at.index(file.len() - HEADER_LEN);
            file[pos] ^= flip;
            let bad = (pos - HEADER_LEN) / ENTRY_LEN;
            let p = parse_index(&file).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&p.entries[..], &entries[..bad]);
            prop_assert_eq!(p.torn_bytes, (file.len() - HEADER_LEN - bad * ENTRY_LEN) as u64);
        }

        #[test]
        fn a_cut_data_file_keeps_the_whole_messages_before_it(
            sizes in proptest::collection::vec(proptest::collection::vec(0usize..600, 0..4), 1..5),
            raps in any::<u8>(),
            cut_at in any::<proptest::sample::Index>(),
            base in 0u64..1 << 40,
        ) {
            let segs: Vec<Segment> = sizes
                .iter()
                .enumerate()
                .map(|(i, s)| segment(100 + i as u64, i as i64 * 180_000, raps >> (i % 8) & 1 == 1, s))
                .collect();
            let (data, ends) = wire_file(&segs);
            let cut = cut_at.index(data.len() + 1);
            let r = rebuild(&data[..cut], base, None);
            let whole = ends.iter().take_while(|&&e| e <= cut).count();
            prop_assert_eq!(r.entries.len(), whole);
            let mut start = 0;
            for (i, e) in r.entries.iter().enumerate() {
                prop_assert_eq!(*e, IndexEntry::of(&segs[i], base + start as u64, (ends[i] - start) as u32));
                start = ends[i];
            }
            prop_assert_eq!(r.valid_len, start as u64);
            prop_assert_eq!(r.torn_bytes, (cut - start) as u64);
        }
    }
}

//! SCTE-35 splice information (ANSI/SCTE 35 §9): parsing a
//! `splice_info_section` and moving its splice time onto another clock.
//!
//! Role: the demuxer times SCTE-35 cues with [`SpliceInfo::splice_time`],
//! the muxer rewrites `pts_adjustment` with [`with_pts_adjustment`] so a cue
//! lands on strom's output clock, and HLS turns cues into `EXT-X-DATERANGE`
//! tags (RFC 8216 §4.3.2.7.1).
//!
//! Invariants: pure functions over byte slices; nothing panics on input and
//! nothing allocates in proportion to it beyond the descriptor list (bounded
//! by the section's 12-bit length). A section is accepted only with table_id
//! 0xFC, a `section_length` that fits the bytes given, and a valid CRC_32.
//! Times are raw 33-bit 90 kHz values of the cue's own program clock.

use bytes::Bytes;

use crate::ts::crc::crc32_mpeg2;
use crate::ts::TS_WRAP;

/// table_id of a `splice_info_section`.
pub const TABLE_ID: u8 = 0xFC;
/// Fixed header up to and including `splice_command_type` (§9.6 table 5).
const HEADER_LEN: usize = 14;
/// `splice_command_length` value meaning "not given" (legacy encoders).
const LENGTH_UNSPECIFIED: usize = 0xFFF;

/// Why a section is not a usable `splice_info_section`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Scte35Error {
    #[error("scte35: table_id is not 0xFC")]
    TableId,
    #[error("scte35: section shorter than its header or its section_length")]
    Truncated,
    #[error("scte35: CRC_32 mismatch")]
    Crc,
    #[error("scte35: splice command or descriptor loop runs past the section")]
    Malformed,
}

/// `break_duration()` (§9.8.2): the planned length of a break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakDuration {
    /// The splicer returns to the network by itself when the break ends.
    pub auto_return: bool,
    /// 90 kHz ticks.
    pub duration: i64,
}

/// `splice_insert()` (§9.7.3), program-level fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpliceInsert {
    pub event_id: u32,
    /// `splice_event_cancel_indicator`: a previously sent event is withdrawn;
    /// the other fields are then absent (false/None/0).
    pub cancel: bool,
    /// True: leave the network feed (break starts, "OUT"); false: return ("IN").
    pub out_of_network: bool,
    pub program_splice: bool,
    pub immediate: bool,
    /// Raw 33-bit splice time before `pts_adjustment`, when program-level and
    /// specified (for component splices: the first component's time).
    pub pts_time: Option<i64>,
    pub break_duration: Option<BreakDuration>,
    pub unique_program_id: u16,
    pub avail_num: u8,
    pub avails_expected: u8,
}

/// A splice command (§9.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceCommand {
    /// `splice_null()`: a heartbeat.
    Null,
    /// `splice_schedule()`: wall-clock schedule; not interpreted.
    Schedule,
    Insert(SpliceInsert),
    /// `time_signal()`: a time, with meaning in its descriptors.
    TimeSignal {
        /// Raw 33-bit time before `pts_adjustment`, if specified.
        pts_time: Option<i64>,
    },
    BandwidthReservation,
    Private,
    /// The command is encrypted (`encrypted_packet`); it cannot be read.
    Encrypted,
    /// A command type this module does not know.
    Unknown(u8),
}

/// `segmentation_descriptor()` (§10.3.3), the fields cue handling needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segmentation {
    pub event_id: u32,
    pub cancel: bool,
    /// `segmentation_duration` in 90 kHz ticks, when given.
    pub duration: Option<i64>,
    /// `segmentation_type_id` (table 22), e.g. 0x34 provider placement
    /// opportunity start, 0x35 its end.
    pub type_id: u8,
}

/// One entry of the splice descriptor loop (§10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceDescriptor {
    Segmentation(Segmentation),
    /// Any other descriptor: its tag and 32-bit identifier (normally "CUEI").
    Other {
        tag: u8,
        identifier: u32,
    },
}

/// A parsed `splice_info_section`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpliceInfo {
    pub sap_type: u8,
    pub protocol_version: u8,
    pub encrypted: bool,
    /// 33-bit offset added to every time in the section.
    pub pts_adjustment: i64,
    pub tier: u16,
    pub command: SpliceCommand,
    /// The splice descriptors; empty when the section is encrypted.
    pub descriptors: Vec<SpliceDescriptor>,
}

impl SpliceInfo {
    /// The command's raw splice time before `pts_adjustment`, if it has one.
    pub fn pts_time(&self) -> Option<i64> {
        match self.command {
            SpliceCommand::Insert(i) => i.pts_time,
            SpliceCommand::TimeSignal { pts_time } => pts_time,
            _ => None,
        }
    }

    /// The splice time on the cue's program clock: `(pts_time +
    /// pts_adjustment) mod 2^33` (§9.6.1), if the command has one.
    pub fn splice_time(&self) -> Option<i64> {
        self.pts_time().map(|t| (t + self.pts_adjustment).rem_euclid(TS_WRAP))
    }

    /// The RFC 8216 §4.3.2.7.1 attribute this cue maps to: `SCTE35-OUT` for
    /// a splice_insert leaving the network, `SCTE35-IN` for one returning,
    /// `SCTE35-CMD` for other commands; `None` for splice_null and cancels.
    pub fn daterange_attribute(&self) -> Option<&'static str> {
        match self.command {
            SpliceCommand::Null => None,
            SpliceCommand::Insert(i) if i.cancel => None,
            SpliceCommand::Insert(i) if i.out_of_network => Some("SCTE35-OUT"),
            SpliceCommand::Insert(_) => Some("SCTE35-IN"),
            _ => Some("SCTE35-CMD"),
        }
    }
}

/// Bounds-checked big-endian reader over a byte slice.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, Scte35Error> {
        let v = *self.b.get(self.pos).ok_or(Scte35Error::Malformed)?;
        self.pos += 1;
        Ok(v)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Scte35Error> {
        let end = self.pos.checked_add(n).ok_or(Scte35Error::Malformed)?;
        let s = self.b.get(self.pos..end).ok_or(Scte35Error::Malformed)?;
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, Scte35Error> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32(&mut self) -> Result<u32, Scte35Error> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// A 33-bit value whose top bit is the low bit of the first byte.
    fn u33(&mut self) -> Result<i64, Scte35Error> {
        let s = self.take(5)?;
        Ok(i64::from(s[0] & 0x01) << 32 | i64::from(u32::from_be_bytes([s[1], s[2], s[3], s[4]])))
    }

    /// `splice_time()` (§9.8.1).
    fn splice_time(&mut self) -> Result<Option<i64>, Scte35Error> {
        if self.b.get(self.pos).ok_or(Scte35Error::Malformed)? & 0x80 != 0 {
            self.u33().map(Some)
        } else {
            self.pos += 1;
            Ok(None)
        }
    }
}

/// Parses a complete `splice_info_section` (table_id through CRC_32).
/// Bytes after the section (PSI stuffing) are ignored.
pub fn parse(section: &[u8]) -> Result<SpliceInfo, Scte35Error> {
    let s = checked_section(section)?;
    let encrypted = s[4] & 0x80 != 0;
    let pts_adjustment = i64::from(s[4] & 0x01) << 32 | i64::from(u32::from_be_bytes([s[5], s[6], s[7], s[8]]));
    let tier = (u16::from(s[10]) << 4) | u16::from(s[11] >> 4);
    let command_len = (usize::from(s[11] & 0x0F) << 8) | usize::from(s[12]);
    let command_type = s[13];
    let mut info = SpliceInfo {
        sap_type: (s[1] >> 4) & 0x03,
        protocol_version: s[3],
        encrypted,
        pts_adjustment,
        tier,
        command: SpliceCommand::Encrypted,
        descriptors: Vec::new(),
    };
    if encrypted {
        return Ok(info);
    }
    // The body ends before CRC_32.
    let body = &s[..s.len() - 4];
    let mut r = Reader {
        b: body,
        pos: HEADER_LEN,
    };
    info.command = parse_command(&mut r, command_type)?;
    if command_len != LENGTH_UNSPECIFIED {
        // The declared length wins over what the parser consumed (commands
        // may grow in later protocol versions).
        let end = HEADER_LEN.checked_add(command_len).ok_or(Scte35Error::Malformed)?;
        if end > body.len() || r.pos > end {
            return Err(Scte35Error::Malformed);
        }
        r.pos = end;
    } else if matches!(info.command, SpliceCommand::Unknown(_) | SpliceCommand::Private) {
        // Without a length the descriptor loop cannot be found.
        return Ok(info);
    }
    let loop_len = usize::from(r.u16()?);
    let descriptors = r.take(loop_len)?;
    info.descriptors = parse_descriptors(descriptors)?;
    Ok(info)
}

/// Validates table_id, length and CRC; returns exactly the section bytes.
fn checked_section(section: &[u8]) -> Result<&[u8], Scte35Error> {
    if section.first() != Some(&TABLE_ID) {
        return Err(Scte35Error::TableId);
    }
    if section.len() < 3 {
        return Err(Scte35Error::Truncated);
    }
    let len = 3 + ((usize::from(section[1] & 0x0F) << 8) | usize::from(section[2]));
    // Header, splice_command_type, descriptor_loop_length and CRC at least.
    if len < HEADER_LEN + 2 + 4 {
        return Err(Scte35Error::Truncated);
    }
    let s = section.get(..len).ok_or(Scte35Error::Truncated)?;
    if crc32_mpeg2(s) != 0 {
        return Err(Scte35Error::Crc);
    }
    Ok(s)
}

fn parse_command(r: &mut Reader<'_>, command_type: u8) -> Result<SpliceCommand, Scte35Error> {
    Ok(match command_type {
        0x00 => SpliceCommand::Null,
        0x04 => SpliceCommand::Schedule,
        0x05 => SpliceCommand::Insert(parse_insert(r)?),
        0x06 => SpliceCommand::TimeSignal {
            pts_time: r.splice_time()?,
        },
        0x07 => SpliceCommand::BandwidthReservation,
        0xFF => SpliceCommand::Private,
        other => SpliceCommand::Unknown(other),
    })
}

fn parse_insert(r: &mut Reader<'_>) -> Result<SpliceInsert, Scte35Error> {
    let event_id = r.u32()?;
    let cancel = r.u8()? & 0x80 != 0;
    let mut ins = SpliceInsert {
        event_id,
        cancel,
        out_of_network: false,
        program_splice: false,
        immediate: false,
        pts_time: None,
        break_duration: None,
        unique_program_id: 0,
        avail_num: 0,
        avails_expected: 0,
    };
    if cancel {
        return Ok(ins);
    }
    let flags = r.u8()?;
    ins.out_of_network = flags & 0x80 != 0;
    ins.program_splice = flags & 0x40 != 0;
    let duration_flag = flags & 0x20 != 0;
    ins.immediate = flags & 0x10 != 0;
    if ins.program_splice {
        if !ins.immediate {
            ins.pts_time = r.splice_time()?;
        }
    } else {
        let components = r.u8()?;
        for _ in 0..components {
            r.u8()?; // component_tag
            if !ins.immediate {
                let t = r.splice_time()?;
                ins.pts_time = ins.pts_time.or(t);
            }
        }
    }
    if duration_flag {
        let b = r.take(5)?;
        ins.break_duration = Some(BreakDuration {
            auto_return: b[0] & 0x80 != 0,
            duration: i64::from(b[0] & 0x01) << 32 | i64::from(u32::from_be_bytes([b[1], b[2], b[3], b[4]])),
        });
    }
    ins.unique_program_id = r.u16()?;
    ins.avail_num = r.u8()?;
    ins.avails_expected = r.u8()?;
    Ok(ins)
}

fn parse_descriptors(mut d: &[u8]) -> Result<Vec<SpliceDescriptor>, Scte35Error> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let (&tag, rest) = d.split_first().ok_or(Scte35Error::Malformed)?;
        let (&len, rest) = rest.split_first().ok_or(Scte35Error::Malformed)?;
        let (body, rest) = rest.split_at_checked(usize::from(len)).ok_or(Scte35Error::Malformed)?;
        d = rest;
        let identifier = body.first_chunk::<4>().map_or(0, |b| u32::from_be_bytes(*b));
        let parsed = match tag {
            0x02 => parse_segmentation(body).map(SpliceDescriptor::Segmentation),
            _ => None,
        };
        out.push(parsed.unwrap_or(SpliceDescriptor::Other { tag, identifier }));
    }
    Ok(out)
}

/// `segmentation_descriptor()` after tag and length; `None` if truncated.
fn parse_segmentation(body: &[u8]) -> Option<Segmentation> {
    let mut r = Reader { b: body, pos: 4 }; // identifier
    let event_id = r.u32().ok()?;
    let cancel = r.u8().ok()? & 0x80 != 0;
    let mut seg = Segmentation {
        event_id,
        cancel,
        duration: None,
        type_id: 0,
    };
    if cancel {
        return Some(seg);
    }
    let flags = r.u8().ok()?;
    let program_segmentation = flags & 0x80 != 0;
    let duration_flag = flags & 0x40 != 0;
    if !program_segmentation {
        let n = usize::from(r.u8().ok()?);
        r.take(n * 6).ok()?; // component_tag + reserved + pts_offset
    }
    if duration_flag {
        let b = r.take(5).ok()?;
        seg.duration = Some(i64::from(b[0]) << 32 | i64::from(u32::from_be_bytes([b[1], b[2], b[3], b[4]])));
    }
    r.u8().ok()?; // segmentation_upid_type
    let upid_len = usize::from(r.u8().ok()?);
    r.take(upid_len).ok()?;
    seg.type_id = r.u8().ok()?;
    Some(seg)
}

/// A copy of `section` with `pts_adjustment` set to `adjustment` (mod 2^33)
/// and CRC_32 recomputed, so every time in it moves by the difference.
/// `None` when the section is not a valid `splice_info_section` or is
/// encrypted (then its E_CRC_32 covers fields we can't see; leave it as is).
pub fn with_pts_adjustment(section: &[u8], adjustment: i64) -> Option<Bytes> {
    let s = checked_section(section).ok()?;
    if s[4] & 0x80 != 0 {
        return None;
    }
    let adj = adjustment.rem_euclid(TS_WRAP) as u64;
    let mut out = s.to_vec();
    out[4] = (out[4] & 0xFE) | ((adj >> 32) as u8 & 0x01);
    out[5..9].copy_from_slice(&(adj as u32).to_be_bytes());
    let n = out.len() - 4;
    let crc = crc32_mpeg2(&out[..n]);
    out[n..].copy_from_slice(&crc.to_be_bytes());
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds a section around `command` (type, bytes) and `descriptors`.
    fn section(adj: i64, command_type: u8, command: &[u8], descriptors: &[u8]) -> Vec<u8> {
        let mut s = vec![TABLE_ID, 0, 0, 0];
        s.push(((adj >> 32) & 1) as u8);
        s.extend_from_slice(&(adj as u32).to_be_bytes());
        s.push(0); // cw_index
        s.push(0xFF); // tier 0xFFF
        s.push(0xF0 | ((command.len() >> 8) as u8 & 0x0F));
        s.push(command.len() as u8);
        s.push(command_type);
        s.extend_from_slice(command);
        s.extend_from_slice(&(descriptors.len() as u16).to_be_bytes());
        s.extend_from_slice(descriptors);
        let len = s.len() - 3 + 4;
        s[1] = 0x30 | ((len >> 8) as u8 & 0x0F); // sap_type 3
        s[2] = len as u8;
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    fn time(t: i64) -> [u8; 5] {
        [
            0xFE | ((t >> 32) & 1) as u8,
            (t >> 24) as u8,
            (t >> 16) as u8,
            (t >> 8) as u8,
            t as u8,
        ]
    }

    fn insert(event: u32, out: bool, pts: i64, duration: Option<i64>) -> Vec<u8> {
        let mut c = event.to_be_bytes().to_vec();
        c.push(0x7F);
        c.push(if out { 0x80 } else { 0 } | 0x40 | if duration.is_some() { 0x20 } else { 0 } | 0x0F);
        c.extend_from_slice(&time(pts));
        if let Some(d) = duration {
            c.push(0x80 | 0x7E | ((d >> 32) & 1) as u8);
            c.extend_from_slice(&(d as u32).to_be_bytes());
        }
        c.extend_from_slice(&[0x00, 0x01, 0, 0]);
        c
    }

    #[test]
    fn splice_insert_out_with_duration() {
        let s = section(1000, 0x05, &insert(42, true, 360_000, Some(450_000)), &[]);
        let info = parse(&s).expect("valid");
        let SpliceCommand::Insert(i) = info.command else {
            panic!("insert expected: {info:?}");
        };
        assert_eq!((i.event_id, i.out_of_network, i.pts_time), (42, true, Some(360_000)));
        assert_eq!(
            i.break_duration,
            Some(BreakDuration {
                auto_return: true,
                duration: 450_000
            })
        );
        assert_eq!(i.unique_program_id, 1);
        assert_eq!(info.splice_time(), Some(361_000));
        assert_eq!(info.sap_type, 3);
        assert_eq!(info.tier, 0xFFF);
        assert_eq!(info.daterange_attribute(), Some("SCTE35-OUT"));
    }

    #[test]
    fn splice_time_wraps_and_in_maps_to_in() {
        let s = section(TS_WRAP - 10, 0x05, &insert(7, false, 100, None), &[]);
        let info = parse(&s).expect("valid");
        assert_eq!(info.splice_time(), Some(90));
        assert_eq!(info.daterange_attribute(), Some("SCTE35-IN"));
    }

    #[test]
    fn time_signal_with_segmentation_descriptor() {
        let mut d = vec![0x02, 0];
        d.extend_from_slice(b"CUEI");
        d.extend_from_slice(&9u32.to_be_bytes());
        d.push(0x7F);
        d.push(0xC0 | 0x3F); // program segmentation, duration
        d.extend_from_slice(&[0, 0, 0x01, 0x5F, 0x90]); // 90000
        d.extend_from_slice(&[0x08, 2, 0xAB, 0xCD]); // upid type 8, 2 bytes
        d.extend_from_slice(&[0x34, 0, 0]); // type_id, segment_num, segments_expected
        d[1] = (d.len() - 2) as u8;
        let s = section(0, 0x06, &time(900_000), &d);
        let info = parse(&s).expect("valid");
        assert_eq!(
            info.command,
            SpliceCommand::TimeSignal {
                pts_time: Some(900_000)
            }
        );
        assert_eq!(
            info.descriptors,
            vec![SpliceDescriptor::Segmentation(Segmentation {
                event_id: 9,
                cancel: false,
                duration: Some(90_000),
                type_id: 0x34
            })]
        );
        assert_eq!(info.daterange_attribute(), Some("SCTE35-CMD"));
    }

    #[test]
    fn null_and_cancel_have_no_daterange() {
        let null = parse(&section(0, 0x00, &[], &[])).expect("valid");
        assert_eq!(null.command, SpliceCommand::Null);
        assert_eq!(null.daterange_attribute(), None);
        assert_eq!(null.splice_time(), None);
        let cancel = parse(&section(0, 0x05, &[0, 0, 0, 5, 0xFF], &[])).expect("valid");
        assert!(matches!(cancel.command, SpliceCommand::Insert(i) if i.cancel && i.event_id == 5));
        assert_eq!(cancel.daterange_attribute(), None);
    }

    #[test]
    fn bad_sections_are_errors() {
        let good = section(0, 0x05, &insert(1, true, 5, None), &[]);
        let mut bad_crc = good.clone();
        bad_crc[20] ^= 1;
        assert_eq!(parse(&bad_crc), Err(Scte35Error::Crc));
        assert_eq!(parse(&good[..good.len() - 1]), Err(Scte35Error::Truncated));
        assert_eq!(parse(&[0x02, 0, 0]), Err(Scte35Error::TableId));
        assert_eq!(parse(&[]), Err(Scte35Error::TableId));
        // A command length running past the section.
        let mut long = section(0, 0x00, &[], &[]);
        long[12] = 0x40;
        let n = long.len() - 4;
        let crc = crc32_mpeg2(&long[..n]);
        long[n..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(parse(&long), Err(Scte35Error::Malformed));
        // Trailing stuffing after the section is ignored.
        let mut stuffed = good.clone();
        stuffed.extend_from_slice(&[0xFF; 8]);
        assert_eq!(parse(&stuffed), parse(&good));
    }

    #[test]
    fn encrypted_sections_are_read_but_not_rewritten() {
        let mut s = section(0, 0x05, &insert(1, true, 5, None), &[]);
        s[4] |= 0x80;
        let n = s.len() - 4;
        let crc = crc32_mpeg2(&s[..n]);
        s[n..].copy_from_slice(&crc.to_be_bytes());
        let info = parse(&s).expect("valid");
        assert!(info.encrypted);
        assert_eq!(info.command, SpliceCommand::Encrypted);
        assert_eq!(with_pts_adjustment(&s, 5), None);
    }

    #[test]
    fn rewriting_the_adjustment_moves_the_splice_time() {
        let s = section(77, 0x05, &insert(3, true, 1_000_000, Some(90_000)), &[]);
        let moved = with_pts_adjustment(&s, TS_WRAP + 5).expect("rewritable");
        let info = parse(&moved).expect("CRC recomputed");
        assert_eq!(info.pts_adjustment, 5);
        assert_eq!(info.splice_time(), Some(1_000_005));
        assert_eq!(moved.len(), s.len());
        assert_eq!(with_pts_adjustment(&[0xFC, 0, 1], 0), None);
    }

    proptest! {
        /// Arbitrary bytes never panic the parser.
        #[test]
        fn parse_never_panics(mut b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&b);
            if !b.is_empty() {
                b[0] = TABLE_ID;
                let _ = parse(&b);
                let _ = with_pts_adjustment(&b, 1);
            }
        }

        /// Any adjustment round-trips, and the splice time follows it.
        #[test]
        fn adjustment_round_trips(pts in 0..TS_WRAP, adj in 0..TS_WRAP, new in any::<i64>()) {
            let s = section(adj, 0x06, &time(pts), &[]);
            let moved = with_pts_adjustment(&s, new).expect("rewritable");
            let info = parse(&moved).expect("valid");
            prop_assert_eq!(info.pts_adjustment, new.rem_euclid(TS_WRAP));
            prop_assert_eq!(info.splice_time(), Some((pts + new).rem_euclid(TS_WRAP)));
        }
    }
}

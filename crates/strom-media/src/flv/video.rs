//! FLV video tag bodies: the legacy VideoTagHeader (Adobe FLV 10.1 §E.4.3.1,
//! AVC CodecID 7 and the common HEVC CodecID 12 extension) and the Enhanced
//! RTMP ExVideoTagHeader (v1: `IsExHeader`, PacketType, FourCC; v2: the
//! ModEx prelude), decoder configuration records (ISO/IEC 14496-15 §5.3.3.1
//! AVCDecoderConfigurationRecord, §8.3.3.1 HEVCDecoderConfigurationRecord)
//! and length-prefixed NAL units turned into one Annex B access unit.
//!
//! Invariants: nothing here panics on input; every read is bounded by the
//! tag body; a record keeps at most [`MAX_SETS_PER_KIND`] parameter sets of
//! each kind; an access unit is at most the body's NAL bytes plus 4 bytes of
//! start code per NAL unit.

use super::FlvError;
use crate::codec::nal::{find_start_code, nal_units};
use crate::codec::params::param_kind;
use crate::codec::{h264, h265};
use crate::frame::Codec;

/// Parameter sets of one kind (VPS, SPS, PPS) kept from a configuration
/// record or an access unit; more are ignored.
pub(super) const MAX_SETS_PER_KIND: usize = 4;

/// VideoTagHeader FrameType 5: video info/command frame, no video data.
const FRAME_TYPE_COMMAND: u8 = 5;
/// Legacy CodecIDs.
const CODEC_AVC: u8 = 7;
const CODEC_HEVC: u8 = 12;
/// Enhanced RTMP VideoPacketType values.
const PT_SEQUENCE_START: u8 = 0;
const PT_CODED_FRAMES: u8 = 1;
const PT_SEQUENCE_END: u8 = 2;
const PT_CODED_FRAMES_X: u8 = 3;
const PT_METADATA: u8 = 4;
const PT_MPEG2TS_SEQUENCE_START: u8 = 5;
const PT_MULTITRACK: u8 = 6;
const PT_MOD_EX: u8 = 7;

/// What a video tag body holds, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum VideoTag<'a> {
    /// A decoder configuration record (sequence header / SequenceStart).
    Config { codec: Codec, record: &'a [u8] },
    /// Coded frames: NAL units, each prefixed by its length in
    /// `lengthSizeMinusOne + 1` bytes. `cts` is the composition time offset
    /// in milliseconds (SI24; 0 for CodedFramesX).
    Frames { codec: Codec, cts: i32, data: &'a [u8] },
    /// Nothing strom uses: end of sequence, command frames, metadata.
    Ignored,
    /// A codec or packet type strom does not carry (a stable short name).
    Unsupported(&'static str),
}

/// Reads a video tag body's header. See the module docs.
pub(super) fn parse_video_tag(body: &[u8]) -> Result<VideoTag<'_>, FlvError> {
    let (&b0, rest) = body.split_first().ok_or(FlvError::Truncated)?;
    if b0 & 0x80 != 0 {
        return parse_ex_video_tag(b0, rest);
    }
    let frame_type = (b0 >> 4) & 0x07;
    let codec = match b0 & 0x0F {
        CODEC_AVC => Codec::H264,
        CODEC_HEVC => Codec::H265,
        id => return Ok(VideoTag::Unsupported(legacy_video_codec_name(id))),
    };
    if frame_type == FRAME_TYPE_COMMAND {
        return Ok(VideoTag::Ignored);
    }
    // AVCPacketType, then a 24-bit signed CompositionTime (§E.4.3.1).
    let [packet_type, c0, c1, c2] = *rest.first_chunk::<4>().ok_or(FlvError::Truncated)?;
    let data = &rest[4..];
    match packet_type {
        0 => Ok(VideoTag::Config { codec, record: data }),
        1 => Ok(VideoTag::Frames {
            codec,
            cts: si24([c0, c1, c2]),
            data,
        }),
        2 => Ok(VideoTag::Ignored),
        _ => Err(FlvError::Invalid("AVCPacketType")),
    }
}

/// The ExVideoTagHeader after its first byte `b0` (IsExHeader set).
fn parse_ex_video_tag(b0: u8, mut rest: &[u8]) -> Result<VideoTag<'_>, FlvError> {
    let frame_type = (b0 >> 4) & 0x07;
    let mut packet_type = b0 & 0x0F;
    while packet_type == PT_MOD_EX {
        let (next, after) = skip_mod_ex(rest)?;
        packet_type = next;
        rest = after;
    }
    if packet_type == PT_METADATA {
        return Ok(VideoTag::Ignored);
    }
    if frame_type == FRAME_TYPE_COMMAND {
        // A UI8 command follows instead of a FourCC and video data.
        return Ok(VideoTag::Ignored);
    }
    if packet_type == PT_MULTITRACK {
        return Ok(VideoTag::Unsupported("multitrack video"));
    }
    let fourcc = *rest.first_chunk::<4>().ok_or(FlvError::Truncated)?;
    rest = &rest[4..];
    let codec = match &fourcc {
        b"avc1" => Codec::H264,
        b"hvc1" => Codec::H265,
        other => return Ok(VideoTag::Unsupported(video_fourcc_name(other))),
    };
    match packet_type {
        PT_SEQUENCE_START => Ok(VideoTag::Config { codec, record: rest }),
        PT_CODED_FRAMES => {
            let c = *rest.first_chunk::<3>().ok_or(FlvError::Truncated)?;
            Ok(VideoTag::Frames {
                codec,
                cts: si24(c),
                data: &rest[3..],
            })
        }
        PT_CODED_FRAMES_X => Ok(VideoTag::Frames {
            codec,
            cts: 0,
            data: rest,
        }),
        PT_SEQUENCE_END => Ok(VideoTag::Ignored),
        PT_MPEG2TS_SEQUENCE_START => Ok(VideoTag::Unsupported("mpeg2ts sequence start")),
        _ => Err(FlvError::Invalid("VideoPacketType")),
    }
}

/// Skips one Enhanced RTMP v2 ModEx entry: `modExDataSize` (UI8 + 1, or
/// UI16 + 1 after the 8-bit escape 256), the data, then a byte of
/// `modExType` (high nibble) and the next PacketType (low nibble). Returns
/// the next PacketType and what follows. The only modifier defined,
/// TimestampOffsetNano, is below one millisecond and is ignored.
pub(super) fn skip_mod_ex(rest: &[u8]) -> Result<(u8, &[u8]), FlvError> {
    let (&s, mut rest) = rest.split_first().ok_or(FlvError::Truncated)?;
    let mut size = usize::from(s) + 1;
    if size == 256 {
        let s16 = *rest.first_chunk::<2>().ok_or(FlvError::Truncated)?;
        size = usize::from(u16::from_be_bytes(s16)) + 1;
        rest = &rest[2..];
    }
    let rest = rest.get(size..).ok_or(FlvError::Truncated)?;
    let (&next, rest) = rest.split_first().ok_or(FlvError::Truncated)?;
    Ok((next & 0x0F, rest))
}

/// A 24-bit big-endian signed integer (SI24).
pub(super) fn si24(b: [u8; 3]) -> i32 {
    (i32::from_be_bytes([b[0], b[1], b[2], 0])) >> 8
}

fn legacy_video_codec_name(id: u8) -> &'static str {
    match id {
        2 => "h263",
        3 => "screen video",
        4 => "vp6",
        5 => "vp6 alpha",
        6 => "screen video 2",
        13 => "av1 (codec id 13)",
        _ => "unknown video codec id",
    }
}

fn video_fourcc_name(fourcc: &[u8; 4]) -> &'static str {
    match fourcc {
        b"av01" => "av01",
        b"vp09" => "vp09",
        b"vp08" => "vp08",
        b"vvc1" => "vvc1",
        _ => "unknown video fourcc",
    }
}

/// Parameter sets (without start codes) of a configuration record, by kind
/// as [`param_kind`] numbers them (0 VPS, 1 SPS, 2 PPS), with the NAL unit
/// length size in bytes (1..=4) that coded frames use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ConfigRecord<'a> {
    pub sets: [Vec<&'a [u8]>; 3],
    pub length_size: u8,
}

impl<'a> ConfigRecord<'a> {
    /// Files `nal` under its kind; other NAL units (SEI in an HEVC array)
    /// and sets beyond [`MAX_SETS_PER_KIND`] are ignored.
    fn add(&mut self, codec: Codec, nal: &'a [u8]) {
        if let Some(k) = param_kind(codec, nal) {
            let list = &mut self.sets[k];
            if list.len() < MAX_SETS_PER_KIND && !list.contains(&nal) {
                list.push(nal);
            }
        }
    }
}

/// A byte cursor over a record.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Result<u8, FlvError> {
        let (&b, rest) = self.0.split_first().ok_or(FlvError::Truncated)?;
        self.0 = rest;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, FlvError> {
        let b = *self.0.first_chunk::<2>().ok_or(FlvError::Truncated)?;
        self.0 = &self.0[2..];
        Ok(u16::from_be_bytes(b))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], FlvError> {
        if n > self.0.len() {
            return Err(FlvError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
}

/// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1.2):
/// configurationVersion, profile, compatibility, level, 6 reserved bits and
/// lengthSizeMinusOne, 3 reserved bits and numOfSequenceParameterSets, the
/// SPS (16-bit length each), numOfPictureParameterSets, the PPS. The
/// High-profile extension after them is not needed and not read.
pub(super) fn parse_avc_record(record: &[u8]) -> Result<ConfigRecord<'_>, FlvError> {
    let mut c = Cursor(record);
    let head = c.bytes(5)?;
    let mut out = ConfigRecord {
        length_size: (head[4] & 0x03) + 1,
        ..Default::default()
    };
    let num_sps = c.u8()? & 0x1F;
    for _ in 0..num_sps {
        let len = usize::from(c.u16()?);
        out.add(Codec::H264, c.bytes(len)?);
    }
    let num_pps = c.u8()?;
    for _ in 0..num_pps {
        let len = usize::from(c.u16()?);
        out.add(Codec::H264, c.bytes(len)?);
    }
    Ok(out)
}

/// Parses an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1.2):
/// 22 bytes of profile, tier, level and stream facts (lengthSizeMinusOne in
/// the low bits of the last one), numOfArrays, then arrays of
/// (completeness, NAL_unit_type, numNalus, NAL units with 16-bit lengths).
pub(super) fn parse_hevc_record(record: &[u8]) -> Result<ConfigRecord<'_>, FlvError> {
    let mut c = Cursor(record);
    let head = c.bytes(22)?;
    let mut out = ConfigRecord {
        length_size: (head[21] & 0x03) + 1,
        ..Default::default()
    };
    let arrays = c.u8()?;
    for _ in 0..arrays {
        let _nal_unit_type = c.u8()? & 0x3F;
        let count = c.u16()?;
        for _ in 0..count {
            let len = usize::from(c.u16()?);
            out.add(Codec::H265, c.bytes(len)?);
        }
    }
    Ok(out)
}

/// Parses the configuration record of `codec`.
pub(super) fn parse_record(codec: Codec, record: &[u8]) -> Result<ConfigRecord<'_>, FlvError> {
    match codec {
        Codec::H265 => parse_hevc_record(record),
        _ => parse_avc_record(record),
    }
}

/// `nal_unit_type` of an H.264 or H.265 NAL unit.
fn nal_type(codec: Codec, nal: &[u8]) -> Option<u8> {
    match codec {
        Codec::H265 => h265::nal_type(nal),
        _ => h264::nal_type(nal),
    }
}

fn is_aud(codec: Codec, nal: &[u8]) -> bool {
    let aud = if codec == Codec::H265 {
        h265::NAL_AUD
    } else {
        h264::NAL_AUD
    };
    nal_type(codec, nal) == Some(aud)
}

/// The NAL units of coded-frame data, each prefixed by its length in
/// `length_size` bytes (big-endian). Zero-length entries are skipped. A
/// length that runs past the data is an error, except that data which is
/// really an Annex B byte stream (some encoders send start codes) is read as
/// one.
pub(super) fn split_nal_units(data: &[u8], length_size: u8) -> Result<Vec<&[u8]>, FlvError> {
    match split_length_prefixed(data, length_size) {
        Some(nals) => Ok(nals),
        None if find_start_code(data, 0).is_some_and(|(p, _)| p == 0) => Ok(nal_units(data).collect()),
        None => Err(FlvError::Invalid("NAL unit length")),
    }
}

fn split_length_prefixed(mut data: &[u8], length_size: u8) -> Option<Vec<&[u8]>> {
    let n = usize::from(length_size.clamp(1, 4));
    let mut out = Vec::new();
    while !data.is_empty() {
        let len_bytes = data.get(..n)?;
        let len = len_bytes.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b));
        let nal = data.get(n..n.checked_add(len)?)?;
        data = &data[n + len..];
        if !nal.is_empty() {
            out.push(nal);
        }
    }
    Some(out)
}

/// Writes `nals` as one Annex B access unit (4-byte start codes), without
/// a leading access unit delimiter (muxers write their own), after the
/// parameter sets in `prefix`.
pub(super) fn annex_b(codec: Codec, prefix: &[&[u8]], nals: &[&[u8]]) -> Vec<u8> {
    let skip = usize::from(nals.first().is_some_and(|n| is_aud(codec, n)));
    let nals = nals.get(skip..).unwrap_or_default();
    let len: usize = prefix.iter().chain(nals).map(|n| n.len() + 4).sum();
    let mut out = Vec::with_capacity(len);
    for nal in prefix.iter().chain(nals) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    out
}

/// An H.264 access unit that starts with an I picture after a recovery
/// point SEI (H.264 D.2.8): a random access point without IDR, as open-GOP
/// and intra-refresh encoders send it, treated as the TS demuxer treats it.
pub(super) fn h264_recovery_point(nals: &[&[u8]]) -> bool {
    let mut recovery = false;
    for nal in nals {
        match h264::nal_type(nal) {
            Some(h264::NAL_SEI) if !recovery => recovery = h264::recovery_point(nal).is_some(),
            Some(1 | 2 | h264::NAL_IDR) => {
                return recovery && h264::parse_slice_header(nal, None).is_ok_and(|h| h.is_intra());
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si24_is_signed() {
        assert_eq!(si24([0, 0, 0]), 0);
        assert_eq!(si24([0, 0, 80]), 80);
        assert_eq!(si24([0xFF, 0xFF, 0xFF]), -1);
        assert_eq!(si24([0x80, 0, 0]), -(1 << 23));
        assert_eq!(si24([0x7F, 0xFF, 0xFF]), (1 << 23) - 1);
    }

    #[test]
    fn legacy_headers() {
        assert_eq!(
            parse_video_tag(&[0x17, 0, 0, 0, 0, 1, 2]),
            Ok(VideoTag::Config {
                codec: Codec::H264,
                record: &[1, 2]
            })
        );
        assert_eq!(
            parse_video_tag(&[0x27, 1, 0xFF, 0xFF, 0xD8, 9]),
            Ok(VideoTag::Frames {
                codec: Codec::H264,
                cts: -40,
                data: &[9]
            })
        );
        assert_eq!(
            parse_video_tag(&[0x1C, 1, 0, 0, 40]),
            Ok(VideoTag::Frames {
                codec: Codec::H265,
                cts: 40,
                data: &[]
            })
        );
        assert_eq!(parse_video_tag(&[0x17, 2, 0, 0, 0]), Ok(VideoTag::Ignored));
        assert_eq!(parse_video_tag(&[0x57, 0]), Ok(VideoTag::Ignored), "command frame");
        assert_eq!(parse_video_tag(&[0x12, 0, 0]), Ok(VideoTag::Unsupported("h263")));
        assert_eq!(parse_video_tag(&[0x17, 1, 0]), Err(FlvError::Truncated));
        assert_eq!(
            parse_video_tag(&[0x17, 3, 0, 0, 0]),
            Err(FlvError::Invalid("AVCPacketType"))
        );
        assert_eq!(parse_video_tag(&[]), Err(FlvError::Truncated));
    }

    #[test]
    fn enhanced_headers() {
        let mut b = vec![0x90];
        b.extend_from_slice(b"hvc1");
        b.push(7);
        assert_eq!(
            parse_video_tag(&b),
            Ok(VideoTag::Config {
                codec: Codec::H265,
                record: &[7]
            })
        );
        b[0] = 0x91; // key frame, CodedFrames: SI24 CompositionTime
        b.extend_from_slice(&[0, 1, 9]);
        assert_eq!(
            parse_video_tag(&b),
            Ok(VideoTag::Frames {
                codec: Codec::H265,
                cts: 0x07_0001,
                data: &[9]
            })
        );
        b[0] = 0xA3; // inter frame, CodedFramesX: no CompositionTime
        assert_eq!(
            parse_video_tag(&b),
            Ok(VideoTag::Frames {
                codec: Codec::H265,
                cts: 0,
                data: &[7, 0, 1, 9]
            })
        );
        let mut av1 = vec![0x90];
        av1.extend_from_slice(b"av01");
        assert_eq!(parse_video_tag(&av1), Ok(VideoTag::Unsupported("av01")));
        av1[1..5].copy_from_slice(b"\x00\x01\x02\x03");
        assert_eq!(parse_video_tag(&av1), Ok(VideoTag::Unsupported("unknown video fourcc")));
        assert_eq!(parse_video_tag(&[0x94, 2, 0]), Ok(VideoTag::Ignored), "metadata");
        assert_eq!(
            parse_video_tag(&[0x96, b'a', b'v', b'c', b'1']),
            Ok(VideoTag::Unsupported("multitrack video"))
        );
        assert_eq!(parse_video_tag(&[0xD1, 0]), Ok(VideoTag::Ignored), "command frame");
        assert_eq!(parse_video_tag(&[0x91, b'h', b'v']), Err(FlvError::Truncated));
        // ModEx (v2): 3 bytes of TimestampOffsetNano, then CodedFramesX.
        let mut m = vec![0x97, 2, 0, 0, 5, 0x03];
        m.extend_from_slice(b"avc1");
        m.push(0xEE);
        assert_eq!(
            parse_video_tag(&m),
            Ok(VideoTag::Frames {
                codec: Codec::H264,
                cts: 0,
                data: &[0xEE]
            })
        );
        // The 16-bit size escape.
        let mut m = vec![0x97, 0xFF, 0x01, 0x00];
        m.extend(std::iter::repeat_n(0, 257));
        m.push(0x00);
        m.extend_from_slice(b"avc1");
        assert_eq!(
            parse_video_tag(&m),
            Ok(VideoTag::Config {
                codec: Codec::H264,
                record: &[]
            })
        );
        assert_eq!(parse_video_tag(&[0x97, 5, 0]), Err(FlvError::Truncated));
    }

    #[test]
    fn avc_record() {
        let sps = [0x67, 0x42, 0xC0, 0x1E, 0xDA];
        let pps = [0x68, 0xCE, 0x3C, 0x80];
        let mut r = vec![1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0, 5];
        r.extend_from_slice(&sps);
        r.extend_from_slice(&[1, 0, 4]);
        r.extend_from_slice(&pps);
        let rec = parse_avc_record(&r).expect("record");
        assert_eq!(rec.length_size, 4);
        assert_eq!(rec.sets[1], vec![&sps[..]]);
        assert_eq!(rec.sets[2], vec![&pps[..]]);
        assert!(rec.sets[0].is_empty());
        for cut in 0..r.len() {
            assert_eq!(parse_avc_record(&r[..cut]), Err(FlvError::Truncated), "cut at {cut}");
        }
    }

    #[test]
    fn hevc_record() {
        let vps = [0x40, 0x01, 0x0C];
        let sps = [0x42, 0x01, 0x01];
        let pps = [0x44, 0x01, 0xC1];
        let sei = [0x4E, 0x01, 0x05];
        let mut r = vec![1; 21];
        r.push(0xF0 | 3);
        r.push(4);
        for (t, nal) in [(32, &vps), (33, &sps), (34, &pps), (39, &sei)] {
            r.extend_from_slice(&[0x80 | t, 0, 1, 0, 3]);
            r.extend_from_slice(nal);
        }
        let rec = parse_hevc_record(&r).expect("record");
        assert_eq!(rec.length_size, 4);
        assert_eq!(rec.sets, [vec![&vps[..]], vec![&sps[..]], vec![&pps[..]]]);
        assert_eq!(parse_hevc_record(&r[..r.len() - 1]), Err(FlvError::Truncated));
    }

    #[test]
    fn records_keep_few_sets() {
        let mut r = vec![1, 0x42, 0xC0, 0x1E, 0xFF, 0xE0 | 31];
        for i in 0..31u8 {
            r.extend_from_slice(&[0, 2, 0x67, i]);
        }
        r.push(0);
        let rec = parse_avc_record(&r).expect("record");
        assert_eq!(rec.sets[1].len(), MAX_SETS_PER_KIND);
    }

    #[test]
    fn nal_units_from_lengths_or_start_codes() {
        let data = [0, 0, 0, 2, 0x09, 0xF0, 0, 0, 0, 0, 0, 0, 0, 3, 0x65, 1, 2];
        let nals = split_nal_units(&data, 4).expect("nals");
        assert_eq!(nals, vec![&[0x09, 0xF0][..], &[0x65, 1, 2][..]]);
        assert_eq!(
            split_nal_units(&[0, 3, 0x65, 1], 2),
            Err(FlvError::Invalid("NAL unit length"))
        );
        assert_eq!(split_nal_units(&[3, 0x41, 1, 2], 1).map(|v| v.len()), Ok(1));
        // An Annex B access unit where lengths were expected.
        let annexb = [0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 1, 0x65, 0x88];
        assert_eq!(
            split_nal_units(&annexb, 4).expect("annex b"),
            vec![&[0x67, 0x42, 0xC0, 0x1E][..], &[0x65, 0x88][..]]
        );
        assert_eq!(split_nal_units(&[], 4), Ok(vec![]));
        let au = annex_b(Codec::H264, &[&[0x67, 1]], &nals);
        assert_eq!(au, [0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x65, 1, 2], "leading AUD dropped");
    }
}

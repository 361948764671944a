//! H.264/AVC (ISO/IEC 14496-10) bitstream facts the server needs: NAL unit
//! types and their role in access-unit assembly, keyframe detection and
//! parameter-set extraction for an Annex B access unit, SPS parsing down to
//! the VUI timing info, the start of slice headers (picture boundaries,
//! slice type, field coding) and recovery-point SEI messages (random access
//! without IDR, as open-GOP encoders send it).
//!
//! Invariants: parsing never panics on malformed input; it returns
//! [`CodecError`] or `None`. Every parse is bounded by its input: SEI
//! parsing by the NAL unit, slice headers by [`SLICE_HEADER_PREFIX`] bytes.
//! Dimensions are the cropped (displayed) size.

use super::nal::{self, AuScan, BitReader, CodecError, NalClass, NalRole};

/// Coded slice of a non-IDR picture.
pub const NAL_SLICE: u8 = 1;
/// Coded slice of an IDR picture: the only H.264 keyframe we accept.
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
/// Access unit delimiter.
pub const NAL_AUD: u8 = 9;
/// SEI payloadType of a recovery point (D.1.8).
pub const SEI_RECOVERY_POINT: u32 = 6;
/// Bytes of a slice NAL unit (header included) enough for the slice header
/// fields [`parse_slice_header`] reads: at most 77 bits (first_mb_in_slice of
/// an 8K picture, slice_type, pic_parameter_set_id, colour_plane_id,
/// 16-bit frame_num, two field flags), which 15 bytes hold even when every
/// third byte is an emulation-prevention byte.
pub const SLICE_HEADER_PREFIX: usize = 16;

/// `nal_unit_type` of a NAL unit (first byte after the start code).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1F)
}

fn classify(nal: &[u8]) -> NalClass {
    match nal_type(nal) {
        Some(NAL_AUD) => NalClass::Aud,
        Some(NAL_SPS) => NalClass::Sps,
        Some(NAL_PPS) => NalClass::Pps,
        Some(NAL_IDR) => NalClass::Vcl(true),
        // 1..=4: non-IDR slices and data partitions.
        Some(1..=4) => NalClass::Vcl(false),
        _ => NalClass::Other,
    }
}

/// The role of a NAL unit in access-unit assembly (§7.4.1.2.3). `nal` starts
/// at the NAL header; a slice needs its second byte to tell whether it is
/// the first of a picture (`first_mb_in_slice` = 0 is a single 1 bit).
pub fn nal_role(nal: &[u8]) -> NalRole {
    match nal_type(nal) {
        Some(NAL_AUD) => NalRole::Aud,
        Some(NAL_SPS) => NalRole::ParamSet(1),
        Some(NAL_PPS) => NalRole::ParamSet(2),
        Some(NAL_SEI) => NalRole::Sei,
        Some(14..=18) => NalRole::Prefix,
        // Slices, and data partition A (which carries the slice header).
        Some(t @ (1 | 2 | NAL_IDR)) => NalRole::Vcl {
            first: nal.get(1).is_some_and(|b| b & 0x80 != 0),
            irap: t == NAL_IDR,
        },
        _ => NalRole::Other,
    }
}

/// Scans an Annex B access unit: IDR flag, SPS/PPS, leading AUD. (Random
/// access via recovery point SEI needs the slice type too; the demuxer's
/// access-unit assembly uses [`nal_role`], [`parse_slice_header`] and
/// [`recovery_point`].)
pub fn scan_access_unit(au: &[u8]) -> AuScan<'_> {
    nal::scan_access_unit(au, classify)
}

/// True when the access unit contains an IDR slice (only; see [`recovery_point`]).
pub fn is_keyframe(au: &[u8]) -> bool {
    scan_access_unit(au).keyframe
}

/// Sequence parameter set fields the server uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sps {
    pub profile_idc: u8,
    /// The byte of `constraint_set0..5_flag` and reserved bits, as coded.
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub seq_parameter_set_id: u32,
    pub chroma_format_idc: u32,
    pub bit_depth_luma: u8,
    /// `separate_colour_plane_flag`: slices carry a `colour_plane_id`.
    pub separate_colour_plane: bool,
    /// Bits of `frame_num` in slice headers (`log2_max_frame_num_minus4` + 4).
    pub log2_max_frame_num: u8,
    /// 0 when pictures may be coded as fields (`field_pic_flag` present).
    pub frame_mbs_only: bool,
    /// Cropped width in pixels.
    pub width: u32,
    /// Cropped height in pixels (frame height for field-coded streams).
    pub height: u32,
    /// Frame rate `(num, den)` from VUI timing info, reduced.
    pub frame_rate: Option<(u32, u32)>,
}

impl Sps {
    /// RFC 6381 codec string, e.g. `avc1.4d401f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// RFC 6381 codec string straight from the first SPS bytes; works even when
/// the rest of the SPS does not parse.
pub fn codec_string_from_sps(sps: &[u8]) -> Option<String> {
    match sps {
        [h, p, c, l, ..] if h & 0x1F == NAL_SPS => Some(format!("avc1.{p:02x}{c:02x}{l:02x}")),
        _ => None,
    }
}

/// Profiles whose SPS carries chroma format, bit depth and scaling matrices.
fn has_high_profile_fields(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: u32) -> Result<(), CodecError> {
    let mut last: i32 = 8;
    let mut next: i32 = 8;
    for _ in 0..size {
        if next != 0 {
            let delta = r.read_se()?;
            if !(-128..=127).contains(&delta) {
                return Err(CodecError::Invalid("delta_scale"));
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Parses an SPS NAL unit (with its one-byte NAL header, without start code,
/// emulation prevention still in place).
pub fn parse_sps(nal: &[u8]) -> Result<Sps, CodecError> {
    if nal_type(nal) != Some(NAL_SPS) {
        return Err(CodecError::Invalid("SPS NAL unit type"));
    }
    let rbsp = nal::rbsp(nal.get(1..).unwrap_or_default());
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.read_u8(8)?;
    let constraint_flags = r.read_u8(8)?;
    let level_idc = r.read_u8(8)?;
    let seq_parameter_set_id = r.read_ue()?;
    if seq_parameter_set_id > 31 {
        return Err(CodecError::Invalid("seq_parameter_set_id"));
    }
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    let mut bit_depth_luma = 8;
    if has_high_profile_fields(profile_idc) {
        chroma_format_idc = r.read_ue()?;
        if chroma_format_idc > 3 {
            return Err(CodecError::Invalid("chroma_format_idc"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.read_flag()?;
        }
        let bd = r.read_ue()?;
        if bd > 6 {
            return Err(CodecError::Invalid("bit_depth_luma"));
        }
        bit_depth_luma = 8 + bd as u8;
        let _bit_depth_chroma_minus8 = r.read_ue()?;
        let _qpprime_y_zero_transform_bypass = r.read_flag()?;
        if r.read_flag()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.read_flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let log2_max_frame_num_minus4 = r.read_ue()?;
    if log2_max_frame_num_minus4 > 12 {
        return Err(CodecError::Invalid("log2_max_frame_num_minus4"));
    }
    match r.read_ue()? {
        0 => {
            let _log2_max_pic_order_cnt_lsb_minus4 = r.read_ue()?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.read_flag()?;
            let _offset_for_non_ref_pic = r.read_se()?;
            let _offset_for_top_to_bottom_field = r.read_se()?;
            let n = r.read_ue()?;
            if n > 255 {
                return Err(CodecError::Invalid("num_ref_frames_in_pic_order_cnt_cycle"));
            }
            for _ in 0..n {
                r.read_se()?;
            }
        }
        2 => {}
        _ => return Err(CodecError::Invalid("pic_order_cnt_type")),
    }
    let _max_num_ref_frames = r.read_ue()?;
    let _gaps_in_frame_num_allowed = r.read_flag()?;
    let width_mbs = u64::from(r.read_ue()?) + 1;
    let height_map_units = u64::from(r.read_ue()?) + 1;
    let frame_mbs_only = r.read_flag()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.read_flag()?;
    }
    let _direct_8x8_inference = r.read_flag()?;
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
    if r.read_flag()? {
        crop_l = r.read_ue()?.into();
        crop_r = r.read_ue()?.into();
        crop_t = r.read_ue()?.into();
        crop_b = r.read_ue()?.into();
    }
    // Table 6-1 and equations 7-19..7-22.
    let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
    let (sub_w, sub_h) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let crop_unit_x = sub_w;
    let crop_unit_y = sub_h * field_factor;
    let coded_w = width_mbs * 16;
    let coded_h = height_map_units * 16 * field_factor;
    let width = coded_w
        .checked_sub(crop_unit_x * (crop_l + crop_r))
        .filter(|&w| w > 0)
        .ok_or(CodecError::Invalid("frame cropping"))?;
    let height = coded_h
        .checked_sub(crop_unit_y * (crop_t + crop_b))
        .filter(|&h| h > 0)
        .ok_or(CodecError::Invalid("frame cropping"))?;
    let width = u32::try_from(width).map_err(|_| CodecError::Invalid("width"))?;
    let height = u32::try_from(height).map_err(|_| CodecError::Invalid("height"))?;

    let mut frame_rate = None;
    if r.read_flag()? {
        // A truncated VUI still leaves usable dimensions: keep them.
        frame_rate = parse_vui_timing(&mut r).unwrap_or(None);
    }
    Ok(Sps {
        profile_idc,
        constraint_flags,
        level_idc,
        seq_parameter_set_id,
        chroma_format_idc,
        bit_depth_luma,
        separate_colour_plane,
        log2_max_frame_num: log2_max_frame_num_minus4 as u8 + 4,
        frame_mbs_only,
        width,
        height,
        frame_rate,
    })
}

/// Reads the VUI up to timing info (E.1.1). H.264 ticks count fields, so
/// the frame rate is `time_scale / (2 * num_units_in_tick)`.
fn parse_vui_timing(r: &mut BitReader<'_>) -> Result<Option<(u32, u32)>, CodecError> {
    if r.read_flag()? {
        // aspect_ratio_info_present_flag
        if r.read_bits(8)? == 255 {
            r.skip_bits(32)?; // sar_width, sar_height
        }
    }
    if r.read_flag()? {
        r.skip_bits(1)?; // overscan_appropriate_flag
    }
    if r.read_flag()? {
        // video_signal_type_present_flag
        r.skip_bits(4)?; // video_format, video_full_range_flag
        if r.read_flag()? {
            r.skip_bits(24)?; // colour_primaries, transfer, matrix
        }
    }
    if r.read_flag()? {
        r.read_ue()?;
        r.read_ue()?;
    }
    if !r.read_flag()? {
        return Ok(None);
    }
    let num_units_in_tick = r.read_bits(32)?;
    let time_scale = r.read_bits(32)?;
    Ok(reduce(u64::from(time_scale), 2 * u64::from(num_units_in_tick)))
}

/// What a slice header needs from its SPS to be read past `frame_num`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceContext {
    pub separate_colour_plane: bool,
    pub log2_max_frame_num: u8,
    pub frame_mbs_only: bool,
}

impl From<&Sps> for SliceContext {
    fn from(sps: &Sps) -> Self {
        SliceContext {
            separate_colour_plane: sps.separate_colour_plane,
            log2_max_frame_num: sps.log2_max_frame_num,
            frame_mbs_only: sps.frame_mbs_only,
        }
    }
}

/// The first fields of a slice header (7.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceHeader {
    pub first_mb_in_slice: u32,
    /// `slice_type` as coded, 0..=9 (5..=9: every slice of the picture has
    /// type `slice_type - 5`).
    pub slice_type: u8,
    pub pic_parameter_set_id: u32,
    /// `frame_num`, when the SPS context was given.
    pub frame_num: Option<u32>,
    /// `field_pic_flag`: the picture is one field. `None` without the SPS
    /// context (or a truncated header).
    pub field_pic: Option<bool>,
    /// `bottom_field_flag` of a field picture.
    pub bottom_field: bool,
}

impl SliceHeader {
    /// I or SI slice (slice_type 2, 4, 7, 9): decodable without reference pictures.
    pub fn is_intra(&self) -> bool {
        matches!(self.slice_type % 5, 2 | 4)
    }
}

/// Parses the start of a slice header from a slice NAL unit (types 1, 2, 5;
/// header byte included, emulation prevention in place). Reads at most
/// [`SLICE_HEADER_PREFIX`] bytes. Without `ctx` it stops after
/// `pic_parameter_set_id`; with it, a header cut before `field_pic_flag`
/// still gives the earlier fields.
pub fn parse_slice_header(nal: &[u8], ctx: Option<&SliceContext>) -> Result<SliceHeader, CodecError> {
    if !matches!(nal_type(nal), Some(1 | 2 | NAL_IDR)) {
        return Err(CodecError::Invalid("slice NAL unit type"));
    }
    let body = nal.get(1..nal.len().min(SLICE_HEADER_PREFIX)).unwrap_or_default();
    let rbsp = nal::rbsp(body);
    let mut r = BitReader::new(&rbsp);
    let first_mb_in_slice = r.read_ue()?;
    let slice_type = r.read_ue()?;
    if slice_type > 9 {
        return Err(CodecError::Invalid("slice_type"));
    }
    let pic_parameter_set_id = r.read_ue()?;
    if pic_parameter_set_id > 255 {
        return Err(CodecError::Invalid("pic_parameter_set_id"));
    }
    let mut h = SliceHeader {
        first_mb_in_slice,
        slice_type: slice_type as u8,
        pic_parameter_set_id,
        frame_num: None,
        field_pic: None,
        bottom_field: false,
    };
    let Some(ctx) = ctx else {
        return Ok(h);
    };
    let rest = (|| -> Result<(u32, bool, bool), CodecError> {
        if ctx.separate_colour_plane {
            r.skip_bits(2)?; // colour_plane_id
        }
        let frame_num = r.read_bits(u32::from(ctx.log2_max_frame_num))?;
        let field = !ctx.frame_mbs_only && r.read_flag()?;
        let bottom = field && r.read_flag()?;
        Ok((frame_num, field, bottom))
    })();
    if let Ok((frame_num, field, bottom)) = rest {
        h.frame_num = Some(frame_num);
        h.field_pic = Some(field);
        h.bottom_field = bottom;
    }
    Ok(h)
}

/// A recovery point SEI message (D.1.8, semantics D.2.8): decoding that
/// starts at this access unit gives correct (`exact_match`) or approximately
/// correct pictures from `recovery_frame_cnt` frames later in output order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryPoint {
    pub recovery_frame_cnt: u32,
    pub exact_match: bool,
    pub broken_link: bool,
}

/// Upper bound of `recovery_frame_cnt` (MaxFrameNum − 1 with 16-bit frame_num).
const MAX_RECOVERY_FRAME_CNT: u32 = (1 << 16) - 1;

/// The recovery point of an SEI NAL unit (header byte included, emulation
/// prevention in place), if one of its messages is one (7.3.2.3.1). Malformed
/// or truncated SEI gives `None`.
pub fn recovery_point(sei: &[u8]) -> Option<RecoveryPoint> {
    if nal_type(sei) != Some(NAL_SEI) {
        return None;
    }
    let rbsp = nal::rbsp(sei.get(1..)?);
    let mut d: &[u8] = &rbsp;
    // more_rbsp_data(): anything but rbsp_trailing_bits (0x80, then only
    // cabac_zero_words or padding zeros).
    while d
        .split_first()
        .is_some_and(|(&b, rest)| b != 0x80 || rest.iter().any(|&z| z != 0))
    {
        let payload_type = sei_value(&mut d)?;
        let size = usize::try_from(sei_value(&mut d)?).ok()?;
        let (payload, rest) = d.split_at_checked(size)?;
        d = rest;
        if payload_type == SEI_RECOVERY_POINT {
            let mut r = BitReader::new(payload);
            let recovery_frame_cnt = r.read_ue().ok()?;
            if recovery_frame_cnt > MAX_RECOVERY_FRAME_CNT {
                return None;
            }
            let exact_match = r.read_flag().ok()?;
            let broken_link = r.read_flag().ok()?;
            return Some(RecoveryPoint {
                recovery_frame_cnt,
                exact_match,
                broken_link,
            });
        }
    }
    None
}

/// `payloadType` / `payloadSize` of an SEI message: 0xFF bytes add 255 each,
/// the first other byte ends the value.
fn sei_value(d: &mut &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    loop {
        let (&b, rest) = d.split_first()?;
        *d = rest;
        v = v.checked_add(u32::from(b))?;
        if b != 0xFF {
            return Some(v);
        }
    }
}

/// Reduces `num/den` and returns it if both fit u32 and are non-zero.
pub(crate) fn reduce(num: u64, den: u64) -> Option<(u32, u32)> {
    if num == 0 || den == 0 {
        return None;
    }
    let (mut a, mut b) = (num, den);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    Some((u32::try_from(num / a).ok()?, u32::try_from(den / a).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::nal::test_bits::BitWriter;

    /// SPS of assets/demo.ts: x264 Main@3.1, 1280x720, 25 fps.
    const DEMO_SPS: &[u8] = &[
        0x67, 0x4d, 0x40, 0x1f, 0xec, 0xa0, 0x28, 0x02, 0xdd, 0x80, 0x88, 0x00, 0x00, 0x03, 0x00, 0x08, 0x00, 0x00,
        0x03, 0x01, 0x90, 0x78, 0xc1, 0x8c, 0xb0,
    ];
    /// x264 High@4.0 1920x1080 (cropped from 1088), 30000/1001.
    const HIGH_1080_SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x0f, 0xa4, 0x00,
        0x03, 0xa9, 0x80, 0x3c, 0x60, 0xc6, 0x58,
    ];
    /// x264 High 4:4:4 Predictive@3.1 854x480 (cropped from 864), 50 fps.
    const HIGH444_SPS: &[u8] = &[
        0x67, 0xf4, 0x00, 0x1f, 0x91, 0x9b, 0x28, 0x1b, 0x07, 0xbc, 0x5f, 0xff, 0x82, 0x80, 0x02, 0x80, 0x88, 0x00,
        0x00, 0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x03, 0x20, 0x78, 0xc1, 0x8c, 0xb0,
    ];
    /// x264 High@3.0 interlaced (frame_mbs_only = 0) 720x576, 25 fps.
    const INTERLACED_SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xb4, 0x24, 0xdf, 0xf8, 0x02, 0x00, 0x01, 0x68, 0x80, 0x00, 0x00,
        0x03, 0x00, 0x80, 0x00, 0x00, 0x19, 0x0f, 0x8a, 0x14, 0xcb,
    ];

    #[test]
    fn demo_sps() {
        let sps = parse_sps(DEMO_SPS).expect("valid test input");
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert_eq!((sps.profile_idc, sps.level_idc), (77, 31));
        assert_eq!(sps.frame_rate, Some((25, 1)));
        assert_eq!(sps.codec_string(), "avc1.4d401f");
        assert_eq!(codec_string_from_sps(DEMO_SPS).as_deref(), Some("avc1.4d401f"));
    }

    #[test]
    fn high_profile_with_cropping() {
        let sps = parse_sps(HIGH_1080_SPS).expect("valid test input");
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.frame_rate, Some((30000, 1001)));
        assert_eq!(sps.codec_string(), "avc1.640028");
    }

    #[test]
    fn high444() {
        let sps = parse_sps(HIGH444_SPS).expect("valid test input");
        assert_eq!(sps.chroma_format_idc, 3);
        assert_eq!((sps.width, sps.height), (854, 480));
        assert_eq!(sps.frame_rate, Some((50, 1)));
        assert_eq!(sps.codec_string(), "avc1.f4001f");
    }

    #[test]
    fn interlaced() {
        let sps = parse_sps(INTERLACED_SPS).expect("valid test input");
        assert!(!sps.frame_mbs_only);
        assert_eq!((sps.width, sps.height), (720, 576));
        assert_eq!(sps.frame_rate, Some((25, 1)));
    }

    #[test]
    fn agrees_with_h264_reader() {
        use h264_reader::nal::sps::SeqParameterSet;
        use h264_reader::rbsp::BitReader as HrBitReader;
        for raw in [DEMO_SPS, HIGH_1080_SPS, HIGH444_SPS, INTERLACED_SPS] {
            let ours = parse_sps(raw).expect("valid test input");
            let rbsp = nal::rbsp(&raw[1..]);
            let theirs = SeqParameterSet::from_bits(HrBitReader::new(&rbsp[..])).expect("valid test input");
            assert_eq!(
                theirs.pixel_dimensions().expect("valid test input"),
                (ours.width, ours.height)
            );
        }
    }

    #[test]
    fn truncated_and_garbage_sps_are_errors() {
        for n in 0..DEMO_SPS.len() - 4 {
            // Every prefix short of the VUI must fail cleanly or parse; never panic.
            let _ = parse_sps(&DEMO_SPS[..n]);
        }
        assert!(parse_sps(&DEMO_SPS[..6]).is_err());
        assert!(parse_sps(&[0x68, 1, 2, 3]).is_err());
        assert!(parse_sps(&[]).is_err());
        assert!(parse_sps(&[0x67, 0x42, 0, 0x1e, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn sps_slice_context() {
        let sps = parse_sps(DEMO_SPS).expect("valid test input");
        assert_eq!((sps.log2_max_frame_num, sps.separate_colour_plane), (4, false));
        let sps = parse_sps(INTERLACED_SPS).expect("valid test input");
        assert!(!sps.frame_mbs_only);
        let ctx = SliceContext::from(&sps);
        assert_eq!(ctx.log2_max_frame_num, sps.log2_max_frame_num);
    }

    /// Builds slice header bits: first_mb, slice_type, pps id, frame_num
    /// (4 bits), then optional field flags.
    fn slice(nal_header: u8, first_mb: u32, slice_type: u32, field: Option<bool>) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.ue(first_mb);
        w.ue(slice_type);
        w.ue(0);
        w.put(5, 4);
        if let Some(bottom) = field {
            w.put(1, 1);
            w.put(u64::from(bottom), 1);
        }
        w.put(0xABCD, 16); // the rest of the slice
        let mut v = vec![nal_header];
        v.extend(w.finish());
        v
    }

    #[test]
    fn slice_headers() {
        let progressive = SliceContext {
            separate_colour_plane: false,
            log2_max_frame_num: 4,
            frame_mbs_only: true,
        };
        let s = slice(0x65, 0, 7, None);
        let h = parse_slice_header(&s, Some(&progressive)).expect("valid test input");
        assert_eq!((h.first_mb_in_slice, h.slice_type, h.frame_num), (0, 7, Some(5)));
        assert!(h.is_intra());
        assert_eq!(h.field_pic, Some(false));
        assert_eq!(
            nal_role(&s),
            NalRole::Vcl {
                first: true,
                irap: true
            }
        );
        let s = slice(0x41, 99, 0, None);
        let h = parse_slice_header(&s, None).expect("valid test input");
        assert_eq!((h.first_mb_in_slice, h.field_pic), (99, None));
        assert!(!h.is_intra());
        assert_eq!(
            nal_role(&s),
            NalRole::Vcl {
                first: false,
                irap: false
            }
        );
        // Field pictures need the SPS context.
        let interlaced = SliceContext {
            frame_mbs_only: false,
            ..progressive
        };
        let s = slice(0x41, 0, 2, Some(true));
        let h = parse_slice_header(&s, Some(&interlaced)).expect("valid test input");
        assert_eq!((h.field_pic, h.bottom_field, h.slice_type), (Some(true), true, 2));
        assert!(h.is_intra());
        // SI (4, 9) counts as intra; P/B/SP do not.
        for (t, intra) in [(4, true), (9, true), (1, false), (3, false), (8, false)] {
            let h = parse_slice_header(&slice(0x41, 0, t, None), None).expect("valid test input");
            assert_eq!(h.is_intra(), intra, "slice_type {t}");
        }
        assert!(parse_slice_header(&[0x67, 0x80], None).is_err());
        assert!(parse_slice_header(&[0x41], None).is_err());
        assert!(parse_slice_header(&slice(0x41, 0, 12, None), None).is_err());
    }

    fn sei(messages: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut v = vec![0x06];
        for (t, payload) in messages {
            for value in [*t as usize, payload.len()] {
                v.extend(std::iter::repeat_n(0xFF, value / 255));
                v.push((value % 255) as u8);
            }
            v.extend_from_slice(payload);
        }
        v.push(0x80);
        v
    }

    fn recovery_payload(cnt: u32, exact: bool, broken: bool) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.ue(cnt);
        w.put(u64::from(exact), 1);
        w.put(u64::from(broken), 1);
        w.put(0, 2);
        w.finish()
    }

    #[test]
    fn recovery_point_sei() {
        // x264 open-GOP: user data first (payload type 5, 300 bytes so the
        // size takes an 0xFF byte), then the recovery point.
        let nal = sei(&[(5, vec![0x11; 300]), (6, recovery_payload(0, true, false))]);
        assert_eq!(
            recovery_point(&nal),
            Some(RecoveryPoint {
                recovery_frame_cnt: 0,
                exact_match: true,
                broken_link: false
            })
        );
        let nal = sei(&[(6, recovery_payload(24, false, true))]);
        let rp = recovery_point(&nal).expect("recovery point");
        assert_eq!(
            (rp.recovery_frame_cnt, rp.exact_match, rp.broken_link),
            (24, false, true)
        );
        // Large payload types (256 + 4) are skipped correctly, and a message
        // whose type byte is 0x80 is not taken for the trailing bits.
        let nal = sei(&[(0x80, vec![9]), (6, recovery_payload(1, true, false))]);
        assert_eq!(recovery_point(&nal).map(|r| r.recovery_frame_cnt), Some(1));
        let nal = sei(&[(260, vec![1, 2, 3]), (6, recovery_payload(3, true, false))]);
        assert_eq!(recovery_point(&nal).map(|r| r.recovery_frame_cnt), Some(3));
        // No recovery point; wrong NAL type; truncated sizes.
        assert_eq!(recovery_point(&sei(&[(1, vec![0; 4])])), None);
        assert_eq!(recovery_point(&[0x65, 0x06, 0x01, 0x80]), None);
        assert_eq!(recovery_point(&[0x06, 0x06, 0x09, 0x80]), None);
        assert_eq!(recovery_point(&[0x06, 0xFF, 0xFF]), None);
    }

    #[test]
    fn recovery_point_with_emulation_prevention() {
        // recovery_frame_cnt 0 preceded by a payload with 00 00 that needs
        // an emulation prevention byte in the NAL unit.
        let raw = sei(&[(5, vec![0, 0, 0, 0, 0]), (6, recovery_payload(0, true, false))]);
        let mut escaped = Vec::new();
        let mut zeros = 0;
        for &b in &raw {
            if zeros >= 2 && b <= 3 {
                escaped.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            escaped.push(b);
        }
        assert_ne!(escaped, raw);
        assert_eq!(recovery_point(&escaped).map(|r| r.recovery_frame_cnt), Some(0));
    }

    #[test]
    fn sei_and_slice_parsers_never_panic() {
        let mut x: u32 = 99;
        for len in 0..200 {
            let mut v: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (x >> 24) as u8
                })
                .collect();
            let _ = recovery_point(&v);
            if let Some(b) = v.first_mut() {
                *b = 0x06;
            }
            let _ = recovery_point(&v);
            if let Some(b) = v.first_mut() {
                *b = 0x41;
            }
            let ctx = SliceContext {
                separate_colour_plane: true,
                log2_max_frame_num: 16,
                frame_mbs_only: false,
            };
            let _ = parse_slice_header(&v, Some(&ctx));
            let _ = nal_role(&v);
        }
    }

    #[test]
    fn scans_demo_keyframe() {
        let mut au = vec![0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1];
        au.extend_from_slice(DEMO_SPS);
        au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xef, 0xbc, 0x80, 0, 0, 1, 0x65, 0x88, 0x84]);
        let scan = scan_access_unit(&au);
        assert!(scan.keyframe);
        assert_eq!(scan.aud_end, 6);
        assert_eq!(scan.sps.as_slice(), &[DEMO_SPS]);
        assert_eq!(scan.pps.as_slice(), &[&[0x68u8, 0xef, 0xbc, 0x80][..]]);
        assert!(!is_keyframe(&[0, 0, 1, 0x41, 0x9a, 0, 0, 1, 0x65]));
    }
}

//! H.265/HEVC (ITU-T H.265) bitstream facts the server needs: NAL unit
//! types and their role in access-unit assembly (§7.4.2.4.4), IRAP
//! (keyframe) detection and parameter-set extraction for an
//! Annex B access unit, and SPS parsing down to the VUI timing info, plus the
//! RFC 6381 / ISO/IEC 14496-15 Annex E codec string.
//!
//! Invariants: parsing never panics on malformed input; it returns
//! [`CodecError`]. Dimensions are the conformance-window (displayed) size.

use super::h264::reduce;
use super::nal::{self, AuScan, BitReader, CodecError, NalClass, NalRole};

/// First and last IRAP NAL unit types (BLA_W_LP ..= RSV_IRAP_VCL23).
pub const NAL_IRAP_FIRST: u8 = 16;
pub const NAL_IRAP_LAST: u8 = 23;
pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;
/// Access unit delimiter.
pub const NAL_AUD: u8 = 35;
/// Prefix SEI.
pub const NAL_PREFIX_SEI: u8 = 39;

/// IRAP picture types a decoder can start at: BLA (16..=18), IDR (19, 20)
/// and CRA (21). RASL pictures after a CRA or BLA are skipped by decoders
/// that start there, so such an access unit is a random access point.
pub fn is_irap(nal_unit_type: u8) -> bool {
    (NAL_IRAP_FIRST..=21).contains(&nal_unit_type)
}

/// The role of a NAL unit in access-unit assembly (§7.4.2.4.4). `nal`
/// starts at the two-byte NAL header; a slice needs its third byte for
/// `first_slice_segment_in_pic_flag`. NAL units of layers above 0 belong to
/// the access unit of their base-layer picture.
pub fn nal_role(nal: &[u8]) -> NalRole {
    let layer = match nal {
        [a, b, ..] => (u16::from(a & 0x01) << 5) | u16::from(b >> 3),
        _ => return NalRole::Other,
    };
    if layer != 0 {
        return NalRole::Other;
    }
    match nal_type(nal) {
        Some(NAL_AUD) => NalRole::Aud,
        Some(NAL_VPS) => NalRole::ParamSet(0),
        Some(NAL_SPS) => NalRole::ParamSet(1),
        Some(NAL_PPS) => NalRole::ParamSet(2),
        Some(NAL_PREFIX_SEI) => NalRole::Sei,
        Some(41..=44 | 48..=55) => NalRole::Prefix,
        Some(t @ 0..=31) => NalRole::Vcl {
            first: nal.get(2).is_some_and(|b| b & 0x80 != 0),
            irap: is_irap(t),
        },
        _ => NalRole::Other,
    }
}

/// `nal_unit_type` of a NAL unit (first bytes after the start code).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| (b >> 1) & 0x3F)
}

fn classify(nal: &[u8]) -> NalClass {
    match nal_type(nal) {
        Some(NAL_AUD) => NalClass::Aud,
        Some(NAL_VPS) => NalClass::Vps,
        Some(NAL_SPS) => NalClass::Sps,
        Some(NAL_PPS) => NalClass::Pps,
        Some(t @ 0..=31) => NalClass::Vcl((NAL_IRAP_FIRST..=NAL_IRAP_LAST).contains(&t)),
        _ => NalClass::Other,
    }
}

/// Scans an Annex B access unit: IRAP flag, VPS/SPS/PPS, leading AUD.
pub fn scan_access_unit(au: &[u8]) -> AuScan<'_> {
    nal::scan_access_unit(au, classify)
}

/// True when the access unit's pictures are IRAP (IDR, CRA or BLA).
pub fn is_keyframe(au: &[u8]) -> bool {
    scan_access_unit(au).keyframe
}

/// The general profile, tier and level of a `profile_tier_level()`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ProfileTierLevel {
    pub profile_space: u8,
    pub tier_flag: bool,
    pub profile_idc: u8,
    pub profile_compatibility_flags: u32,
    /// The 48 bits from `general_progressive_source_flag` on, as 6 bytes.
    pub constraint_indicator_flags: [u8; 6],
    pub level_idc: u8,
}

impl ProfileTierLevel {
    /// ISO/IEC 14496-15 Annex E codec string, e.g. `hvc1.1.6.L93.B0`.
    pub fn codec_string(&self) -> String {
        use std::fmt::Write;
        let mut s = String::from("hvc1.");
        if let Some(c) = [None, Some('A'), Some('B'), Some('C')]
            .get(usize::from(self.profile_space))
            .copied()
            .flatten()
        {
            s.push(c);
        }
        // The compatibility flags are written in reverse bit order
        // (flag 0 as the least significant bit), hex without leading zeros.
        let _ = write!(
            s,
            "{}.{:X}.{}{}",
            self.profile_idc,
            self.profile_compatibility_flags.reverse_bits(),
            if self.tier_flag { 'H' } else { 'L' },
            self.level_idc
        );
        // Constraint bytes, trailing zero bytes omitted.
        let used = self
            .constraint_indicator_flags
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |p| p + 1);
        for b in &self.constraint_indicator_flags[..used] {
            let _ = write!(s, ".{b:X}");
        }
        s
    }
}

/// Sequence parameter set fields the server uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sps {
    pub ptl: ProfileTierLevel,
    pub max_sub_layers: u8,
    pub chroma_format_idc: u32,
    pub separate_colour_plane: bool,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    /// Width after the conformance window.
    pub width: u32,
    /// Height after the conformance window.
    pub height: u32,
    /// Frame rate `(num, den)` from VUI timing info, reduced.
    pub frame_rate: Option<(u32, u32)>,
}

impl Sps {
    /// RFC 6381 codec string (`hvc1.…`).
    pub fn codec_string(&self) -> String {
        self.ptl.codec_string()
    }
}

/// Parses `profile_tier_level(1, max_sub_layers_minus1)` (7.3.3), returning
/// the general part and skipping the sub-layer parts.
fn parse_profile_tier_level(r: &mut BitReader<'_>, max_sub_layers_minus1: u8) -> Result<ProfileTierLevel, CodecError> {
    let profile_space = r.read_u8(2)?;
    let tier_flag = r.read_flag()?;
    let profile_idc = r.read_u8(5)?;
    let profile_compatibility_flags = r.read_bits(32)?;
    let mut constraint_indicator_flags = [0u8; 6];
    for b in &mut constraint_indicator_flags {
        *b = r.read_u8(8)?;
    }
    let level_idc = r.read_u8(8)?;
    let n = usize::from(max_sub_layers_minus1);
    let mut profile_present = [false; 8];
    let mut level_present = [false; 8];
    for i in 0..n {
        profile_present[i] = r.read_flag()?;
        level_present[i] = r.read_flag()?;
    }
    if n > 0 {
        // reserved_zero_2bits for the remaining of 8 slots.
        r.skip_bits(2 * (8 - n))?;
    }
    for i in 0..n {
        if profile_present[i] {
            // profile_space..constraint flags: 2+1+5+32+48 bits.
            r.skip_bits(88)?;
        }
        if level_present[i] {
            r.skip_bits(8)?;
        }
    }
    Ok(ProfileTierLevel {
        profile_space,
        tier_flag,
        profile_idc,
        profile_compatibility_flags,
        constraint_indicator_flags,
        level_idc,
    })
}

/// Skips `scaling_list_data()` (7.3.4).
fn skip_scaling_list_data(r: &mut BitReader<'_>) -> Result<(), CodecError> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        for _matrix_id in (0..6).step_by(step) {
            if !r.read_flag()? {
                // scaling_list_pred_matrix_id_delta
                r.read_ue()?;
            } else {
                let coefs = 64.min(1u32 << (4 + (size_id << 1)));
                if size_id > 1 {
                    r.read_se()?; // scaling_list_dc_coef_minus8
                }
                for _ in 0..coefs {
                    r.read_se()?;
                }
            }
        }
    }
    Ok(())
}

/// Upper bound on delta POCs in one short-term RPS (sps_max_dec_pic_buffering ≤ 16).
const MAX_DELTA_POCS: u32 = 16;

/// Skips the `st_ref_pic_set(idx)` structures of an SPS (7.3.7), tracking
/// only how many delta POCs each set has, which later sets predicted from it
/// need to know how many flags to read.
fn skip_short_term_ref_pic_sets(r: &mut BitReader<'_>, count: u32) -> Result<(), CodecError> {
    let mut num_delta_pocs = [0u32; 64];
    for idx in 0..count as usize {
        let inter_rps_pred = idx != 0 && r.read_flag()?;
        if inter_rps_pred {
            // delta_idx_minus1 is only present in slice headers, so the
            // reference is always the previous set here.
            let _delta_rps_sign = r.read_flag()?;
            let abs_delta_rps_minus1 = r.read_ue()?;
            if abs_delta_rps_minus1 > (1 << 15) - 1 {
                return Err(CodecError::Invalid("abs_delta_rps_minus1"));
            }
            let ref_pocs = num_delta_pocs[idx - 1];
            let mut n = 0;
            for _ in 0..=ref_pocs {
                let used = r.read_flag()?;
                let use_delta = used || r.read_flag()?;
                if use_delta {
                    n += 1;
                }
            }
            num_delta_pocs[idx] = n;
        } else {
            let neg = r.read_ue()?;
            let pos = r.read_ue()?;
            if neg > MAX_DELTA_POCS || pos > MAX_DELTA_POCS {
                return Err(CodecError::Invalid("num_negative/positive_pics"));
            }
            for _ in 0..neg + pos {
                r.read_ue()?; // delta_poc_sX_minus1
                r.skip_bits(1)?; // used_by_curr_pic_sX_flag
            }
            num_delta_pocs[idx] = neg + pos;
        }
        if num_delta_pocs[idx] > 2 * MAX_DELTA_POCS {
            return Err(CodecError::Invalid("st_ref_pic_set"));
        }
    }
    Ok(())
}

/// Parses an SPS NAL unit (with its two-byte NAL header, without start
/// code, emulation prevention still in place).
pub fn parse_sps(nal: &[u8]) -> Result<Sps, CodecError> {
    if nal_type(nal) != Some(NAL_SPS) {
        return Err(CodecError::Invalid("SPS NAL unit type"));
    }
    let rbsp = nal::rbsp(nal.get(2..).ok_or(CodecError::Truncated)?);
    let mut r = BitReader::new(&rbsp);
    let _sps_video_parameter_set_id = r.read_bits(4)?;
    let max_sub_layers_minus1 = r.read_u8(3)?;
    if max_sub_layers_minus1 > 6 {
        return Err(CodecError::Invalid("sps_max_sub_layers_minus1"));
    }
    let _temporal_id_nesting = r.read_flag()?;
    let ptl = parse_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let sps_id = r.read_ue()?;
    if sps_id > 15 {
        return Err(CodecError::Invalid("sps_seq_parameter_set_id"));
    }
    let chroma_format_idc = r.read_ue()?;
    if chroma_format_idc > 3 {
        return Err(CodecError::Invalid("chroma_format_idc"));
    }
    let separate_colour_plane = chroma_format_idc == 3 && r.read_flag()?;
    let pic_width = u64::from(r.read_ue()?);
    let pic_height = u64::from(r.read_ue()?);
    let (mut win_l, mut win_r, mut win_t, mut win_b) = (0u64, 0u64, 0u64, 0u64);
    if r.read_flag()? {
        win_l = r.read_ue()?.into();
        win_r = r.read_ue()?.into();
        win_t = r.read_ue()?.into();
        win_b = r.read_ue()?.into();
    }
    // Table 6-1: ChromaArrayType 0 (monochrome or separate planes) and 4:4:4
    // crop in luma samples, 4:2:0 in 2x2 and 4:2:2 in 2x1 units.
    let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
    let (sub_w, sub_h) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let width = pic_width
        .checked_sub(sub_w * (win_l + win_r))
        .filter(|&w| w > 0)
        .ok_or(CodecError::Invalid("conformance window"))?;
    let height = pic_height
        .checked_sub(sub_h * (win_t + win_b))
        .filter(|&h| h > 0)
        .ok_or(CodecError::Invalid("conformance window"))?;
    let width = u32::try_from(width).map_err(|_| CodecError::Invalid("width"))?;
    let height = u32::try_from(height).map_err(|_| CodecError::Invalid("height"))?;
    let bd_luma = r.read_ue()?;
    let bd_chroma = r.read_ue()?;
    if bd_luma > 8 || bd_chroma > 8 {
        return Err(CodecError::Invalid("bit depth"));
    }
    let log2_max_poc_lsb = r.read_ue()? + 4;
    if log2_max_poc_lsb > 16 {
        return Err(CodecError::Invalid("log2_max_pic_order_cnt_lsb_minus4"));
    }
    let sub_layer_ordering_info_present = r.read_flag()?;
    let first = if sub_layer_ordering_info_present {
        0
    } else {
        max_sub_layers_minus1
    };
    for _ in first..=max_sub_layers_minus1 {
        r.read_ue()?; // sps_max_dec_pic_buffering_minus1
        r.read_ue()?; // sps_max_num_reorder_pics
        r.read_ue()?; // sps_max_latency_increase_plus1
    }
    r.read_ue()?; // log2_min_luma_coding_block_size_minus3
    r.read_ue()?; // log2_diff_max_min_luma_coding_block_size
    r.read_ue()?; // log2_min_luma_transform_block_size_minus2
    r.read_ue()?; // log2_diff_max_min_luma_transform_block_size
    r.read_ue()?; // max_transform_hierarchy_depth_inter
    r.read_ue()?; // max_transform_hierarchy_depth_intra
    if r.read_flag()? && r.read_flag()? {
        // scaling_list_enabled_flag && sps_scaling_list_data_present_flag
        skip_scaling_list_data(&mut r)?;
    }
    r.skip_bits(2)?; // amp_enabled_flag, sample_adaptive_offset_enabled_flag
    if r.read_flag()? {
        // pcm_enabled_flag: bit depths (4+4), two ue sizes, loop filter flag.
        r.skip_bits(8)?;
        r.read_ue()?;
        r.read_ue()?;
        r.skip_bits(1)?;
    }
    let num_st_rps = r.read_ue()?;
    if num_st_rps > 64 {
        return Err(CodecError::Invalid("num_short_term_ref_pic_sets"));
    }
    skip_short_term_ref_pic_sets(&mut r, num_st_rps)?;
    if r.read_flag()? {
        // long_term_ref_pics_present_flag
        let n = r.read_ue()?;
        if n > 32 {
            return Err(CodecError::Invalid("num_long_term_ref_pics_sps"));
        }
        for _ in 0..n {
            r.skip_bits(log2_max_poc_lsb as usize + 1)?;
        }
    }
    r.skip_bits(2)?; // sps_temporal_mvp_enabled_flag, strong_intra_smoothing_enabled_flag
    let mut frame_rate = None;
    if r.read_flag()? {
        // A truncated VUI still leaves usable dimensions: keep them.
        frame_rate = parse_vui_timing(&mut r).unwrap_or(None);
    }
    Ok(Sps {
        ptl,
        max_sub_layers: max_sub_layers_minus1 + 1,
        chroma_format_idc,
        separate_colour_plane,
        bit_depth_luma: 8 + bd_luma as u8,
        bit_depth_chroma: 8 + bd_chroma as u8,
        width,
        height,
        frame_rate,
    })
}

/// Reads the VUI (E.2.1) up to `vui_timing_info`. HEVC ticks count
/// pictures, so the frame rate is `time_scale / num_units_in_tick`.
fn parse_vui_timing(r: &mut BitReader<'_>) -> Result<Option<(u32, u32)>, CodecError> {
    if r.read_flag()? && r.read_bits(8)? == 255 {
        r.skip_bits(32)?; // sar_width, sar_height
    }
    if r.read_flag()? {
        r.skip_bits(1)?; // overscan_appropriate_flag
    }
    if r.read_flag()? {
        r.skip_bits(4)?; // video_format, video_full_range_flag
        if r.read_flag()? {
            r.skip_bits(24)?;
        }
    }
    if r.read_flag()? {
        r.read_ue()?;
        r.read_ue()?;
    }
    // neutral_chroma_indication_flag, field_seq_flag, frame_field_info_present_flag
    r.skip_bits(3)?;
    if r.read_flag()? {
        // default_display_window
        for _ in 0..4 {
            r.read_ue()?;
        }
    }
    if !r.read_flag()? {
        return Ok(None);
    }
    let num_units_in_tick = r.read_bits(32)?;
    let time_scale = r.read_bits(32)?;
    Ok(reduce(u64::from(time_scale), u64::from(num_units_in_tick)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::nal::test_bits::BitWriter;

    /// x265 Main@L2.1, 640x360, 25 fps (ffmpeg testsrc2).
    const SPS_360: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3f,
        0xa0, 0x05, 0x02, 0x01, 0x69, 0x65, 0x95, 0x9a, 0x49, 0x32, 0xbc, 0x05, 0xa0, 0x20, 0x00, 0x00, 0x03, 0x00,
        0x20, 0x00, 0x00, 0x03, 0x03, 0x21,
    ];
    /// x265 Main@L4, 1920x1080 (conformance window from 1088), 30000/1001.
    const SPS_1080: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x78,
        0xa0, 0x03, 0xc0, 0x80, 0x10, 0xe5, 0x96, 0x56, 0x69, 0x24, 0xca, 0xf0, 0x16, 0x80, 0x80, 0x00, 0x01, 0xf4,
        0x80, 0x00, 0x3a, 0x98, 0x04,
    ];
    /// x265 Main 4:4:4 10 (RExt)@L2.1, 642x362 (window from 648x368), 24 fps.
    const SPS_444_10: &[u8] = &[
        0x42, 0x01, 0x01, 0x04, 0x08, 0x00, 0x00, 0x03, 0x00, 0x9c, 0x08, 0x00, 0x00, 0x03, 0x00, 0x00, 0x3f, 0x90,
        0x00, 0xa2, 0x40, 0x2e, 0x39, 0xe7, 0x6c, 0xb2, 0xb3, 0x49, 0x26, 0x57, 0xff, 0x85, 0xa8, 0x05, 0xa4, 0xb4,
        0x04, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0x60, 0x20,
    ];
    /// x265 Main 4:2:2 (RExt)@L4, 1280x720, 60 fps, scaling lists enabled.
    const SPS_422: &[u8] = &[
        0x42, 0x01, 0x01, 0x04, 0x08, 0x00, 0x00, 0x03, 0x00, 0x9d, 0x08, 0x00, 0x00, 0x03, 0x00, 0x00, 0x78, 0xb0,
        0x02, 0x80, 0x80, 0x2d, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x95, 0xe0, 0x2d, 0x01, 0x00, 0x00, 0x03, 0x00, 0x01,
        0x00, 0x00, 0x03, 0x00, 0x3c, 0x08,
    ];

    #[test]
    fn main_profile_360p() {
        let sps = parse_sps(SPS_360).expect("valid test input");
        assert_eq!((sps.width, sps.height), (640, 360));
        assert_eq!(sps.frame_rate, Some((25, 1)));
        assert_eq!(sps.ptl.profile_idc, 1);
        assert_eq!(sps.ptl.level_idc, 63);
        assert_eq!(sps.codec_string(), "hvc1.1.6.L63.90");
    }

    #[test]
    fn main_profile_1080p_cropped() {
        let sps = parse_sps(SPS_1080).expect("valid test input");
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.frame_rate, Some((30000, 1001)));
        assert_eq!(sps.codec_string(), "hvc1.1.6.L120.90");
    }

    #[test]
    fn rext_444_10bit() {
        let sps = parse_sps(SPS_444_10).expect("valid test input");
        assert_eq!(sps.chroma_format_idc, 3);
        assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (10, 10));
        assert_eq!((sps.width, sps.height), (642, 362));
        assert_eq!(sps.frame_rate, Some((24, 1)));
        assert_eq!(sps.ptl.profile_idc, 4);
        assert_eq!(sps.codec_string(), "hvc1.4.10.L63.9C.8");
    }

    #[test]
    fn rext_422_with_scaling_lists() {
        let sps = parse_sps(SPS_422).expect("valid test input");
        assert_eq!(sps.chroma_format_idc, 2);
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert_eq!(sps.frame_rate, Some((60, 1)));
    }

    #[test]
    fn annex_e_examples() {
        // ISO/IEC 14496-15 E.3 examples.
        let mut ptl = ProfileTierLevel {
            profile_idc: 1,
            profile_compatibility_flags: 0x6000_0000,
            constraint_indicator_flags: [0xB0, 0, 0, 0, 0, 0],
            level_idc: 93,
            ..Default::default()
        };
        assert_eq!(ptl.codec_string(), "hvc1.1.6.L93.B0");
        ptl = ProfileTierLevel {
            profile_space: 1,
            tier_flag: true,
            profile_idc: 4,
            profile_compatibility_flags: 0x8200_0000, // flags 0 and 6
            constraint_indicator_flags: [0xB0, 0x23, 0, 0, 0, 0],
            level_idc: 120,
        };
        assert_eq!(ptl.codec_string(), "hvc1.A4.41.H120.B0.23");
        ptl.constraint_indicator_flags = [0; 6];
        assert_eq!(ptl.codec_string(), "hvc1.A4.41.H120");
    }

    #[test]
    fn sub_layers_in_profile_tier_level() {
        // Build an SPS prefix with 3 sub-layers, sub-layer 0 carrying profile
        // and level and sub-layer 1 only level, then real fields after it.
        let mut bits = BitWriter::default();
        bits.put(0, 4); // vps id
        bits.put(2, 3); // max_sub_layers_minus1
        bits.put(1, 1);
        bits.put(0, 2);
        bits.put(0, 1);
        bits.put(1, 5); // Main
        bits.put(0x6000_0000, 32);
        bits.put(0xB0, 8);
        bits.put(0, 40);
        bits.put(93, 8);
        bits.put(0b11, 2); // sub-layer 0: profile + level present
        bits.put(0b01, 2); // sub-layer 1: level present
        bits.put(0, 12); // reserved_zero_2bits × 6
        bits.put(0, 44); // sub-layer 0 profile (88 bits)
        bits.put(0, 44);
        bits.put(90, 8); // sub-layer 0 level
        bits.put(60, 8); // sub-layer 1 level
        bits.ue(0); // sps id
        bits.ue(1); // 4:2:0
        bits.ue(1280);
        bits.ue(720);
        bits.put(0, 1); // no window
        bits.ue(0);
        bits.ue(0);
        bits.ue(4);
        bits.put(0, 1); // ordering info for the highest sub-layer only
        bits.ue(4);
        bits.ue(2);
        bits.ue(0);
        for v in [0, 3, 0, 3, 1, 1] {
            bits.ue(v);
        }
        bits.put(0, 1); // no scaling lists
        bits.put(0, 2);
        bits.put(0, 1); // no pcm
        bits.ue(2); // two short-term RPS, the second predicted
        bits.ue(1); // neg
        bits.ue(1); // pos
        bits.ue(0);
        bits.put(1, 1);
        bits.ue(0);
        bits.put(1, 1);
        bits.put(1, 1); // inter_ref_pic_set_prediction_flag
        bits.put(0, 1);
        bits.ue(0);
        bits.put(1, 1); // used
        bits.put(0, 1); // not used …
        bits.put(1, 1); // … but use_delta
        bits.put(1, 1); // used
        bits.put(0, 1); // no long-term
        bits.put(0, 2);
        bits.put(0, 1); // no VUI
        let mut nal = vec![0x42, 0x01];
        nal.extend(bits.finish());
        let sps = parse_sps(&nal).expect("valid test input");
        assert_eq!(sps.max_sub_layers, 3);
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert_eq!(sps.frame_rate, None);
        assert_eq!(sps.codec_string(), "hvc1.1.6.L93.B0");
    }

    #[test]
    fn malformed_sps_never_panics() {
        for raw in [SPS_360, SPS_1080, SPS_444_10, SPS_422] {
            for n in 0..raw.len() {
                let _ = parse_sps(&raw[..n]);
            }
            let mut x = raw.to_vec();
            for i in 2..x.len() {
                for bit in 0..8 {
                    x[i] ^= 1 << bit;
                    let _ = parse_sps(&x);
                    x[i] ^= 1 << bit;
                }
            }
        }
        assert!(parse_sps(&SPS_360[..10]).is_err());
        assert!(parse_sps(&[0x40, 0x01, 0x0c]).is_err());
        assert!(parse_sps(&[0x42]).is_err());
    }

    #[test]
    fn keyframe_detection() {
        // VPS, SPS, PPS, IDR_W_RADL (19)
        let au = [
            0, 0, 0, 1, 0x46, 0x01, 0x50, 0, 0, 0, 1, 0x40, 0x01, 0x0c, 0, 0, 1, 0x42, 0x01, 0x01, 0, 0, 1, 0x44, 0x01,
            0xc1, 0, 0, 1, 0x26, 0x01, 0xaf,
        ];
        let scan = scan_access_unit(&au);
        assert!(scan.keyframe);
        assert_eq!(scan.aud_end, 7);
        assert_eq!(scan.vps.as_slice().len(), 1);
        assert_eq!(scan.sps.as_slice(), &[&[0x42u8, 0x01, 0x01][..]]);
        assert_eq!(scan.pps.as_slice().len(), 1);
        // TRAIL_R (1) is not a keyframe; CRA (21) is.
        assert!(!is_keyframe(&[0, 0, 1, 0x02, 0x01, 0xd0]));
        assert!(is_keyframe(&[0, 0, 1, 0x2a, 0x01, 0xd0]));
    }

    #[test]
    fn nal_roles() {
        // CRA, first slice segment; TRAIL_R continuing a picture; RASL_N.
        assert_eq!(
            nal_role(&[0x2a, 0x01, 0xd0]),
            NalRole::Vcl {
                first: true,
                irap: true
            }
        );
        assert_eq!(
            nal_role(&[0x02, 0x01, 0x50]),
            NalRole::Vcl {
                first: false,
                irap: false
            }
        );
        assert_eq!(
            nal_role(&[0x10, 0x01, 0x80]),
            NalRole::Vcl {
                first: true,
                irap: false
            }
        );
        // BLA_W_LP (16), IDR_N_LP (20) are IRAP; reserved IRAP 22 is not taken.
        assert!(is_irap(16) && is_irap(20) && is_irap(21) && !is_irap(22) && !is_irap(9));
        assert_eq!(nal_role(&[0x46, 0x01, 0x50]), NalRole::Aud);
        assert_eq!(nal_role(&[0x40, 0x01, 0x0c]), NalRole::ParamSet(0));
        assert_eq!(nal_role(&[0x42, 0x01, 0x01]), NalRole::ParamSet(1));
        assert_eq!(nal_role(&[0x44, 0x01, 0xc1]), NalRole::ParamSet(2));
        assert_eq!(nal_role(&[0x4e, 0x01, 0x05]), NalRole::Sei);
        // Suffix SEI (40), end of sequence (36) stay in the access unit.
        assert_eq!(nal_role(&[0x50, 0x01, 0x05]), NalRole::Other);
        assert_eq!(nal_role(&[0x48, 0x01]), NalRole::Other);
        assert_eq!(nal_role(&[0x52, 0x01]), NalRole::Prefix);
        // A slice of layer 1 belongs to its base-layer access unit.
        assert_eq!(nal_role(&[0x2a, 0x09, 0xd0]), NalRole::Other);
        assert_eq!(nal_role(&[0x2a]), NalRole::Other);
    }
}

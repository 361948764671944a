//! Video parameter sets of a track: which NAL units are parameter sets
//! (VPS/SPS/PPS of H.265 §7.3.2, SPS/PPS of H.264 §7.3.2.1–2), whether a
//! track has all it needs to decode from a keyframe, and how a new set
//! replaces the old one and re-derives the track's dimensions, frame rate
//! and codec string. Shared by every input that learns parameter sets (the
//! TS demuxer in-band, FLV from decoder configuration records).
//!
//! Invariants: pure functions over byte slices; nothing here panics on
//! input. [`TrackParams::parameter_sets`] stays in VPS, SPS, PPS order
//! without duplicates.

use bytes::Bytes;

use super::{h264, h265};
use crate::frame::{Codec, TrackParams};

/// Parameter-set kind of a NAL unit (header byte first, no start code):
/// 0 VPS (H.265 §7.3.2.1), 1 SPS, 2 PPS; `None` for any other NAL unit.
pub fn param_kind(codec: Codec, nal: &[u8]) -> Option<usize> {
    match codec {
        Codec::H265 => match h265::nal_type(nal)? {
            h265::NAL_VPS => Some(0),
            h265::NAL_SPS => Some(1),
            h265::NAL_PPS => Some(2),
            _ => None,
        },
        _ => match h264::nal_type(nal)? {
            h264::NAL_SPS => Some(1),
            h264::NAL_PPS => Some(2),
            _ => None,
        },
    }
}

/// True when `params` holds every kind of parameter set a decoder needs to
/// start: SPS and PPS, and for H.265 also a VPS.
pub fn has_params(codec: Codec, params: &TrackParams) -> bool {
    let mut seen = [false; 3];
    for ps in &params.parameter_sets {
        if let Some(k) = param_kind(codec, ps) {
            seen[k] = true;
        }
    }
    seen[1] && seen[2] && (codec != Codec::H265 || seen[0])
}

/// Replaces each kind of parameter set the access unit carries (`in_au`,
/// indexed by [`param_kind`]: VPS, SPS, PPS, without start codes); kinds it
/// does not carry keep the track's current ones. Returns true (and
/// re-derives width/height in pixels, frame rate and the RFC 6381 codec
/// string from the SPS) on a change; false leaves `p` untouched.
pub fn update_video_params(codec: Codec, p: &mut TrackParams, in_au: &[Vec<&[u8]>; 3]) -> bool {
    let cur = &p.parameter_sets;
    let mut new: Vec<&[u8]> = Vec::with_capacity(cur.len() + 3);
    for (kind, sets) in in_au.iter().enumerate() {
        if sets.is_empty() {
            new.extend(
                cur.iter()
                    .filter(|b| param_kind(codec, b) == Some(kind))
                    .map(|b| &b[..]),
            );
        } else {
            for s in sets {
                if !new.contains(s) {
                    new.push(s);
                }
            }
        }
    }
    if new.len() == cur.len() && new.iter().zip(cur).all(|(a, b)| *a == &b[..]) {
        return false;
    }
    let sets: Vec<Bytes> = new.iter().map(|b| Bytes::copy_from_slice(b)).collect();
    p.width = 0;
    p.height = 0;
    p.frame_rate = None;
    p.codec_string = None;
    if let Some(sps) = sets.iter().find(|b| param_kind(codec, b) == Some(1)) {
        let dims = |w: u32, h: u32| (u16::try_from(w).unwrap_or(0), u16::try_from(h).unwrap_or(0));
        match codec {
            Codec::H265 => {
                if let Ok(s) = h265::parse_sps(sps) {
                    (p.width, p.height) = dims(s.width, s.height);
                    p.frame_rate = s.frame_rate;
                    p.codec_string = Some(s.codec_string());
                }
            }
            _ => match h264::parse_sps(sps) {
                Ok(s) => {
                    (p.width, p.height) = dims(s.width, s.height);
                    p.frame_rate = s.frame_rate;
                    p.codec_string = Some(s.codec_string());
                }
                Err(_) => p.codec_string = h264::codec_string_from_sps(sps),
            },
        }
    }
    p.parameter_sets = sets;
    true
}

//! FLV audio tag bodies: the legacy AudioTagHeader (Adobe FLV 10.1
//! §E.4.2.1: SoundFormat, SoundRate, SoundSize, SoundType; AACPacketType for
//! AAC) and the Enhanced RTMP v2 ExAudioTagHeader (SoundFormat 9, an
//! AudioPacketType, the ModEx prelude and an audio FourCC), plus the few
//! frame-header facts (sample rate, channels) of MPEG audio (ISO/IEC 11172-3
//! §2.4.2.3), AC-3 (ATSC A/52 §5.3) and E-AC-3 (A/52 §E.1.2) that a track
//! needs.
//!
//! Invariants: nothing here panics on input; every read is bounded by the
//! tag body; payloads are returned as offsets into the body so frames share
//! its bytes.

use super::video::skip_mod_ex;
use super::FlvError;
use crate::codec::nal::BitReader;
use crate::frame::Codec;

/// Legacy SoundFormat values strom carries.
const SOUND_MP3: u8 = 2;
const SOUND_EX_HEADER: u8 = 9;
const SOUND_AAC: u8 = 10;
const SOUND_MP3_8K: u8 = 14;
/// Enhanced RTMP AudioPacketType values.
const APT_SEQUENCE_START: u8 = 0;
const APT_CODED_FRAMES: u8 = 1;
const APT_SEQUENCE_END: u8 = 2;
const APT_MULTICHANNEL_CONFIG: u8 = 4;
const APT_MULTITRACK: u8 = 5;
const APT_MOD_EX: u8 = 7;

/// Sample rate (Hz) and channels of a frame, as a frame header or the FLV
/// flags tell them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AudioInfo {
    pub sample_rate: u32,
    pub channels: u8,
    /// RFC 6381 codec string.
    pub codec_string: &'static str,
}

/// What an audio tag body holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AudioTag {
    /// An AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) starting at this
    /// offset of the body.
    AacConfig(usize),
    /// One coded frame starting at `offset`. `flags` is what the legacy
    /// header's SoundRate/SoundType say (a fallback when the frame header
    /// does not tell); `None` for Enhanced RTMP.
    Frame {
        codec: Codec,
        offset: usize,
        flags: Option<AudioInfo>,
    },
    /// Nothing strom uses: end of sequence, multichannel configuration, the
    /// sequence start of a codec that needs none.
    Ignored,
    /// A format strom does not carry (a stable short name).
    Unsupported(&'static str),
}

/// Reads an audio tag body's header. See the module docs.
pub(super) fn parse_audio_tag(body: &[u8]) -> Result<AudioTag, FlvError> {
    let &b0 = body.first().ok_or(FlvError::Truncated)?;
    let format = b0 >> 4;
    match format {
        SOUND_AAC => match body.get(1) {
            Some(0) => Ok(AudioTag::AacConfig(2)),
            Some(1) => Ok(AudioTag::Frame {
                codec: Codec::Aac,
                offset: 2,
                flags: None,
            }),
            Some(_) => Err(FlvError::Invalid("AACPacketType")),
            None => Err(FlvError::Truncated),
        },
        SOUND_MP3 | SOUND_MP3_8K => {
            let sample_rate = if format == SOUND_MP3_8K {
                8_000
            } else {
                [5_512, 11_025, 22_050, 44_100][usize::from((b0 >> 2) & 0x03)]
            };
            Ok(AudioTag::Frame {
                codec: Codec::MpegAudio,
                offset: 1,
                flags: Some(AudioInfo {
                    sample_rate,
                    channels: 1 + (b0 & 0x01),
                    codec_string: if sample_rate >= 32_000 { "mp4a.6B" } else { "mp4a.69" },
                }),
            })
        }
        SOUND_EX_HEADER => parse_ex_audio_tag(body),
        f => Ok(AudioTag::Unsupported(legacy_sound_format_name(f))),
    }
}

/// The ExAudioTagHeader (Enhanced RTMP v2).
fn parse_ex_audio_tag(body: &[u8]) -> Result<AudioTag, FlvError> {
    let mut packet_type = body.first().ok_or(FlvError::Truncated)? & 0x0F;
    let mut rest = body.get(1..).unwrap_or_default();
    while packet_type == APT_MOD_EX {
        let (next, after) = skip_mod_ex(rest)?;
        packet_type = next;
        rest = after;
    }
    if packet_type == APT_MULTITRACK {
        return Ok(AudioTag::Unsupported("multitrack audio"));
    }
    let fourcc = *rest.first_chunk::<4>().ok_or(FlvError::Truncated)?;
    let offset = body.len() - rest.len() + 4;
    let codec = match &fourcc {
        b"mp4a" => Codec::Aac,
        b".mp3" => Codec::MpegAudio,
        b"ac-3" => Codec::Ac3,
        b"ec-3" => Codec::Eac3,
        b"Opus" => return Ok(AudioTag::Unsupported("opus")),
        b"fLaC" => return Ok(AudioTag::Unsupported("flac")),
        _ => return Ok(AudioTag::Unsupported("unknown audio fourcc")),
    };
    match packet_type {
        APT_SEQUENCE_START if codec == Codec::Aac => Ok(AudioTag::AacConfig(offset)),
        APT_SEQUENCE_START | APT_SEQUENCE_END | APT_MULTICHANNEL_CONFIG => Ok(AudioTag::Ignored),
        APT_CODED_FRAMES => Ok(AudioTag::Frame {
            codec,
            offset,
            flags: None,
        }),
        _ => Err(FlvError::Invalid("AudioPacketType")),
    }
}

fn legacy_sound_format_name(format: u8) -> &'static str {
    match format {
        0 | 3 => "pcm",
        1 => "adpcm",
        4..=6 => "nellymoser",
        7 => "g711 a-law",
        8 => "g711 mu-law",
        11 => "speex",
        15 => "device-specific sound",
        _ => "unknown sound format",
    }
}

/// Sample rate, channels and codec string from the frame header at the
/// start of `data`, if it has one strom can read.
pub(super) fn frame_info(codec: Codec, data: &[u8]) -> Option<AudioInfo> {
    match codec {
        Codec::MpegAudio => mpeg_audio_info(data),
        Codec::Ac3 => ac3_info(data),
        Codec::Eac3 => eac3_info(data),
        _ => None,
    }
}

/// MPEG audio frame header (ISO/IEC 11172-3 §2.4.1.3, with the MPEG-2 and
/// 2.5 sampling frequencies): syncword, ID, layer, sampling_frequency, mode.
fn mpeg_audio_info(d: &[u8]) -> Option<AudioInfo> {
    let &[h0, h1, h2, h3] = d.first_chunk::<4>()?;
    if h0 != 0xFF || h1 >> 5 != 0x07 {
        return None;
    }
    // version: 3 MPEG-1, 2 MPEG-2, 0 MPEG-2.5, 1 reserved; layer 0 reserved.
    let version = (h1 >> 3) & 0x03;
    let layer = (h1 >> 1) & 0x03;
    let rate = [44_100, 48_000, 32_000].get(usize::from((h2 >> 2) & 0x03))?;
    let divisor = match version {
        3 => 1,
        2 => 2,
        0 => 4,
        _ => return None,
    };
    if layer == 0 {
        return None;
    }
    Some(AudioInfo {
        sample_rate: rate / divisor,
        // mode 3 is single channel.
        channels: if h3 >> 6 == 3 { 1 } else { 2 },
        // MP4 object type indication 0x6B (MPEG-1 audio) or 0x69 (MPEG-2).
        codec_string: if version == 3 { "mp4a.6B" } else { "mp4a.69" },
    })
}

/// Full-bandwidth channels of an AC-3 `acmod` (A/52 Table 5.8).
const ACMOD_CHANNELS: [u8; 8] = [2, 1, 2, 3, 3, 4, 4, 5];

/// AC-3 syncinfo and the start of the BSI (A/52 §5.3.1–2): fscod, acmod,
/// the mix levels acmod implies, lfeon.
fn ac3_info(d: &[u8]) -> Option<AudioInfo> {
    if d.get(..2)? != [0x0B, 0x77] {
        return None;
    }
    let mut r = BitReader::new(d.get(4..)?);
    let sample_rate = *[48_000, 44_100, 32_000].get(r.read_bits(2).ok()? as usize)?;
    r.skip_bits(6 + 5 + 3).ok()?; // frmsizecod, bsid, bsmod
    let acmod = r.read_u8(3).ok()?;
    let skip = 2 * (u32::from(acmod & 0x01 != 0 && acmod != 1) + u32::from(acmod & 0x04 != 0) + u32::from(acmod == 2));
    r.skip_bits(skip as usize).ok()?; // cmixlev, surmixlev, dsurmod
    let lfe = u8::from(r.read_flag().ok()?);
    Some(AudioInfo {
        sample_rate,
        channels: ACMOD_CHANNELS[usize::from(acmod & 0x07)] + lfe,
        codec_string: "ac-3",
    })
}

/// E-AC-3 syncframe header (A/52 §E.1.2.1–2): strmtyp, substreamid,
/// frmsiz, fscod (and fscod2), numblkscod, acmod, lfeon.
fn eac3_info(d: &[u8]) -> Option<AudioInfo> {
    if d.get(..2)? != [0x0B, 0x77] {
        return None;
    }
    let mut r = BitReader::new(d.get(4..)?);
    let fscod = r.read_bits(2).ok()?;
    let code2 = r.read_bits(2).ok()?; // fscod2 or numblkscod
    let sample_rate = if fscod == 3 {
        *[24_000, 22_050, 16_000].get(code2 as usize)?
    } else {
        [48_000, 44_100, 32_000][fscod as usize]
    };
    let acmod = r.read_u8(3).ok()?;
    let lfe = u8::from(r.read_flag().ok()?);
    Some(AudioInfo {
        sample_rate,
        channels: ACMOD_CHANNELS[usize::from(acmod & 0x07)] + lfe,
        codec_string: "ec-3",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_headers() {
        assert_eq!(parse_audio_tag(&[0xAF, 0, 0x12, 0x10]), Ok(AudioTag::AacConfig(2)));
        assert_eq!(
            parse_audio_tag(&[0xAF, 1, 0x21]),
            Ok(AudioTag::Frame {
                codec: Codec::Aac,
                offset: 2,
                flags: None
            })
        );
        assert_eq!(parse_audio_tag(&[0xAF]), Err(FlvError::Truncated));
        assert_eq!(parse_audio_tag(&[0xAF, 2]), Err(FlvError::Invalid("AACPacketType")));
        // MP3, 22 kHz mono flags.
        assert_eq!(
            parse_audio_tag(&[0x2A, 0xFF]),
            Ok(AudioTag::Frame {
                codec: Codec::MpegAudio,
                offset: 1,
                flags: Some(AudioInfo {
                    sample_rate: 22_050,
                    channels: 1,
                    codec_string: "mp4a.69"
                })
            })
        );
        assert!(matches!(
            parse_audio_tag(&[0xE2]),
            Ok(AudioTag::Frame {
                flags: Some(AudioInfo { sample_rate: 8_000, .. }),
                ..
            })
        ));
        assert_eq!(parse_audio_tag(&[0xB2, 0]), Ok(AudioTag::Unsupported("speex")));
        assert_eq!(parse_audio_tag(&[0x72]), Ok(AudioTag::Unsupported("g711 a-law")));
        assert_eq!(parse_audio_tag(&[]), Err(FlvError::Truncated));
    }

    #[test]
    fn enhanced_headers() {
        let tag = |pt: u8, fourcc: &[u8; 4], rest: &[u8]| {
            let mut b = vec![0x90 | pt];
            b.extend_from_slice(fourcc);
            b.extend_from_slice(rest);
            b
        };
        assert_eq!(
            parse_audio_tag(&tag(0, b"mp4a", &[0x12, 0x10])),
            Ok(AudioTag::AacConfig(5))
        );
        assert_eq!(
            parse_audio_tag(&tag(1, b"ac-3", &[0x0B, 0x77])),
            Ok(AudioTag::Frame {
                codec: Codec::Ac3,
                offset: 5,
                flags: None
            })
        );
        assert_eq!(parse_audio_tag(&tag(0, b".mp3", &[])), Ok(AudioTag::Ignored));
        assert_eq!(parse_audio_tag(&tag(2, b"mp4a", &[])), Ok(AudioTag::Ignored));
        assert_eq!(
            parse_audio_tag(&tag(1, b"Opus", &[1])),
            Ok(AudioTag::Unsupported("opus"))
        );
        assert_eq!(
            parse_audio_tag(&tag(1, b"zzzz", &[1])),
            Ok(AudioTag::Unsupported("unknown audio fourcc"))
        );
        assert_eq!(parse_audio_tag(&[0x95]), Ok(AudioTag::Unsupported("multitrack audio")));
        assert_eq!(
            parse_audio_tag(&tag(9, b"mp4a", &[])),
            Err(FlvError::Invalid("AudioPacketType"))
        );
        assert_eq!(parse_audio_tag(&[0x91, b'm', b'p']), Err(FlvError::Truncated));
        // ModEx then CodedFrames.
        let mut m = vec![0x97, 2, 0, 1, 2, 0x01];
        m.extend_from_slice(b"mp4a");
        m.push(0x21);
        assert_eq!(
            parse_audio_tag(&m),
            Ok(AudioTag::Frame {
                codec: Codec::Aac,
                offset: 10,
                flags: None
            })
        );
    }

    #[test]
    fn frame_headers() {
        // MPEG-1 layer III, 44.1 kHz, joint stereo.
        assert_eq!(
            frame_info(Codec::MpegAudio, &[0xFF, 0xFB, 0x90, 0x44]),
            Some(AudioInfo {
                sample_rate: 44_100,
                channels: 2,
                codec_string: "mp4a.6B"
            })
        );
        // MPEG-2 layer III, 24 kHz, mono.
        assert_eq!(
            frame_info(Codec::MpegAudio, &[0xFF, 0xF3, 0x44, 0xC4]).map(|i| (i.sample_rate, i.channels)),
            Some((24_000, 1))
        );
        assert_eq!(
            frame_info(Codec::MpegAudio, &[0xFF, 0xEB, 0x90, 0x44]),
            None,
            "reserved version"
        );
        assert_eq!(
            frame_info(Codec::MpegAudio, &[0xFF, 0xFB, 0x9C, 0x44]),
            None,
            "reserved rate"
        );
        // AC-3 48 kHz, acmod 7 (3/2) + LFE.
        assert_eq!(
            frame_info(Codec::Ac3, &[0x0B, 0x77, 0, 0, 0x1E, 0x40, 0xE1, 0xF0]).map(|i| (i.sample_rate, i.channels)),
            Some((48_000, 6))
        );
        // E-AC-3 48 kHz, acmod 2, no LFE.
        assert_eq!(
            frame_info(Codec::Eac3, &[0x0B, 0x77, 0, 0, 0x34, 0x00]).map(|i| (i.sample_rate, i.channels)),
            Some((48_000, 2))
        );
        assert_eq!(frame_info(Codec::Ac3, &[0x0B, 0x77]), None);
        assert_eq!(frame_info(Codec::Aac, &[0xFF, 0xF1]), None);
    }
}

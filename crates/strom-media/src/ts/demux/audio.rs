//! Audio elementary streams: AAC in ADTS (ISO/IEC 13818-7 / 14496-3 1.A.2)
//! and in LATM/LOAS (14496-3 §1.7), split into raw AAC frames; MPEG audio
//! (ISO/IEC 11172-3, 13818-3), AC-3 and E-AC-3 (ATSC A/52) passed through
//! one frame per PES. Both are timed across PES without PTS.
//!
//! Invariants: an AAC frame cut by the end of a PES is carried (at most one
//! frame, < 8 KiB) and completed from the next; a frame's time is its PES's
//! PTS plus the samples before it in that PES, or, for frames that start in
//! a PES without PTS, the end of the frame before. Nothing is timed from a
//! chain that lost data: after a loss the next PTS is waited for.

use bytes::Bytes;

use super::{samples_to_ticks, Demuxer, Frame, TsErrorKind, TS_MASK};
use crate::codec::aac::{self, AdtsHeader};
use crate::codec::latm::{self, LatmDecoder, LatmError};
use crate::codec::nal::BitReader;
use crate::frame::Codec;
use crate::ts::wrap_delta;

/// The time of the next AAC frame: a base timestamp plus the samples since.
/// Counting samples from the base (not adding rounded frame durations) keeps
/// 44.1 kHz timestamps exact over long runs without PTS.
#[derive(Clone, Copy, Debug)]
struct Chain {
    pts: i64,
    dts: i64,
    samples: u64,
    rate: u32,
}

impl Chain {
    fn now(&self) -> (i64, i64) {
        let off = samples_to_ticks(self.samples, self.rate);
        ((self.pts + off) & TS_MASK, (self.dts + off) & TS_MASK)
    }

    /// Advances by a frame of `samples` at `rate`, re-basing on a rate change.
    fn advance(&mut self, samples: u32, rate: u32) {
        if rate != self.rate && rate > 0 {
            (self.pts, self.dts) = self.now();
            self.samples = 0;
            self.rate = rate;
        }
        self.samples += u64::from(samples);
    }
}

/// A raw AAC frame and the parameters it was coded with.
struct AacFrame {
    /// Core audio object type (what ADTS `profile` + 1 says).
    object_type: u8,
    /// Core sampling rate in Hz.
    sample_rate: u32,
    channels: u8,
    /// Samples per channel in the frame (1024 per raw data block).
    samples: u32,
    payload: Bytes,
}

/// AAC state of one stream.
pub(super) struct AacState {
    /// Start of a frame (ADTS or LOAS) cut by the end of the previous PES.
    carry: Vec<u8>,
    /// Time of the carried frame; `None` when it cannot be timed.
    carry_ts: Option<(i64, i64)>,
    carry_interpolated: bool,
    chain: Option<Chain>,
    /// LATM/LOAS decoder, for stream_type 0x11.
    latm: Option<LatmDecoder>,
    /// An unusable LATM configuration was reported; quiet until a good one.
    latm_reported: bool,
    /// The last LATM AudioSpecificConfig and its RFC 6381 string (`mp4a.40.5`
    /// for SBR, which ADTS signals implicitly).
    asc: Option<latm::AudioSpecificConfig>,
    codec_string: Option<String>,
    /// Raw frames of one LATM element (reused).
    raw: Vec<Bytes>,
}

impl AacState {
    pub(super) fn new(latm: bool) -> Self {
        AacState {
            carry: Vec::new(),
            carry_ts: None,
            carry_interpolated: false,
            chain: None,
            latm: latm.then(LatmDecoder::new),
            latm_reported: false,
            asc: None,
            codec_string: None,
            raw: Vec::new(),
        }
    }

    /// Data was lost: forget the cut frame and the timing chain.
    pub(super) fn lost(&mut self) {
        self.carry.clear();
        self.carry_ts = None;
        self.chain = None;
    }

    /// Length of the frame whose header starts `data`, if known (ADTS or LOAS).
    fn frame_len(&self, data: &[u8]) -> Option<usize> {
        if self.latm.is_some() {
            latm::loas_frame_len(data)
        } else {
            AdtsHeader::parse(data).map(|h| h.frame_len)
        }
    }

    fn max_frame_len(&self) -> usize {
        if self.latm.is_some() {
            latm::LOAS_MAX_FRAME_LEN
        } else {
            aac::ADTS_MAX_FRAME_LEN
        }
    }

    /// One complete PES payload.
    pub(super) fn pes(&mut self, d: &mut Demuxer, si: usize, data: Bytes, ts: Option<(i64, i64)>) {
        let mut start = 0;
        // A frame cut by the previous PES end continues here.
        if !self.carry.is_empty() {
            let mut joined = std::mem::take(&mut self.carry);
            let need = self.max_frame_len().saturating_sub(joined.len()).min(data.len());
            joined.extend_from_slice(&data[..need]);
            match self.frame_len(&joined) {
                Some(n) if n <= joined.len() => {
                    start = n - (joined.len() - need);
                    let frame = Bytes::from(joined).slice(..n);
                    let (cts, interp) = (self.carry_ts.take(), self.carry_interpolated);
                    self.frames(d, si, &frame, cts, interp, true);
                }
                Some(_) if need == data.len() => {
                    // Still incomplete: this PES was tiny. Keep waiting.
                    self.carry = joined;
                    return;
                }
                _ => {
                    let pid = d.streams.get(si).map_or(0, |s| s.pid);
                    d.error(pid, TsErrorKind::Pes);
                }
            }
        }
        // Frames that start in this PES take its PTS.
        if let Some((pts, dts)) = ts {
            let rate = self.chain.map_or(0, |c| c.rate);
            self.chain = Some(Chain {
                pts,
                dts,
                samples: 0,
                rate,
            });
        }
        let body = data.slice(start..);
        let rem = self.frames(d, si, &body, None, ts.is_none(), false);
        if rem < body.len() {
            self.carry.clear();
            self.carry.extend_from_slice(&body[rem..]);
            self.carry_ts = self.chain.map(|c| c.now());
            self.carry_interpolated = ts.is_none();
        }
    }

    /// Emits the frames of `body` (ADTS or LOAS), each at the chain's time,
    /// advancing it. Returns the offset of an incomplete tail. `carried`:
    /// `body` is one frame carried from the previous PES, timed `carry_ts`
    /// when it began there.
    fn frames(
        &mut self,
        d: &mut Demuxer,
        si: usize,
        body: &Bytes,
        carry_ts: Option<(i64, i64)>,
        interpolated: bool,
        carried: bool,
    ) -> usize {
        let pid = d.streams.get(si).map_or(0, |s| s.pid);
        let timing = Timing {
            carry_ts,
            interpolated,
            carried,
        };
        let (skipped, rem) = if self.latm.is_some() {
            let mut it = latm::loas_frames(body);
            let mut raw = std::mem::take(&mut self.raw);
            for f in it.by_ref() {
                raw.clear();
                let Some(asc) = self.latm_element(d, pid, &body[f.element], &mut raw) else {
                    continue;
                };
                for payload in raw.drain(..) {
                    let frame = AacFrame {
                        object_type: asc.object_type,
                        sample_rate: asc.sample_rate,
                        channels: asc.channels,
                        samples: aac::SAMPLES_PER_FRAME,
                        payload,
                    };
                    self.frame(d, si, frame, &timing);
                }
            }
            self.raw = raw;
            (it.skipped(), it.remainder())
        } else {
            let mut it = aac::adts_frames(body);
            for f in it.by_ref() {
                let frame = AacFrame {
                    object_type: f.header.object_type,
                    sample_rate: f.header.sample_rate,
                    channels: f.header.channels,
                    samples: f.header.samples(),
                    payload: body.slice(f.payload),
                };
                self.frame(d, si, frame, &timing);
            }
            (it.skipped(), it.remainder())
        };
        if skipped > 0 {
            d.error(pid, TsErrorKind::Pes);
        }
        rem
    }

    /// Times one raw frame from the chain (or the carried time) and emits it.
    fn frame(&mut self, d: &mut Demuxer, si: usize, f: AacFrame, t: &Timing) {
        let when = if t.carried {
            t.carry_ts
        } else {
            self.chain.map(|c| c.now())
        };
        if let Some(c) = self.chain.as_mut() {
            c.advance(f.samples, f.sample_rate);
        }
        let Some((pts, dts)) = when else {
            d.stats.dropped_frames += 1;
            return;
        };
        if t.interpolated {
            d.stats.interpolated += 1;
        }
        let latm_codec = self.codec_string.as_deref().filter(|_| self.latm.is_some());
        emit_aac(d, si, f, latm_codec, pts, dts);
    }

    /// Decodes one AudioMuxElement into raw frames (appended to `raw`);
    /// returns the configuration they were coded with.
    fn latm_element(
        &mut self,
        d: &mut Demuxer,
        pid: u16,
        element: &[u8],
        raw: &mut Vec<Bytes>,
    ) -> Option<latm::AudioSpecificConfig> {
        let dec = self.latm.as_mut()?;
        match dec.decode(element, raw) {
            Ok(_) => {
                self.latm_reported = false;
                let asc = dec.config()?.asc;
                if self.codec_string.is_none() || self.asc != Some(asc) {
                    self.codec_string = Some(asc.codec_string());
                    self.asc = Some(asc);
                }
                Some(asc)
            }
            Err(LatmError::NoConfig) => {
                d.stats.dropped_frames += 1;
                None
            }
            Err(_) => {
                if !self.latm_reported {
                    self.latm_reported = true;
                    d.error(pid, TsErrorKind::Latm);
                }
                d.stats.dropped_frames += 1;
                None
            }
        }
    }
}

/// How the frames of one buffer are timed.
struct Timing {
    carry_ts: Option<(i64, i64)>,
    interpolated: bool,
    carried: bool,
}

/// Emits one raw AAC frame, updating the track's parameters first. The
/// codec string is `latm_codec` for LATM (it may signal SBR/PS), else the
/// object type's.
fn emit_aac(d: &mut Demuxer, si: usize, f: AacFrame, latm_codec: Option<&str>, pts: i64, dts: i64) {
    let Some(st) = d.streams.get_mut(si) else {
        return;
    };
    let p = &mut st.params;
    if p.aac_object_type != f.object_type
        || p.sample_rate != f.sample_rate
        || p.channels != f.channels
        || p.codec_string.is_none()
        || latm_codec.is_some_and(|c| p.codec_string.as_deref() != Some(c))
    {
        p.aac_object_type = f.object_type;
        p.sample_rate = f.sample_rate;
        p.channels = f.channels;
        p.codec_string = Some(latm_codec.map_or_else(|| aac::codec_string(f.object_type), str::to_owned));
        d.rebuild_tracks();
    }
    d.emit(Frame {
        track: si as u16,
        dts,
        pts,
        keyframe: true,
        data: f.payload,
    });
}

/// Timing of an opaque audio stream (one frame per PES).
#[derive(Default)]
pub(super) struct OpaqueState {
    /// Time of the next PES, from the previous one and its duration.
    next: Option<(i64, i64)>,
    /// DTS of the last PES with PTS, to observe the step.
    last_real: Option<i64>,
    /// Last DTS step between consecutive PES with PTS.
    step: Option<i64>,
    /// Bytes of a sync frame from the previous PES that continue in this one.
    skip: usize,
}

impl OpaqueState {
    pub(super) fn lost(&mut self) {
        self.next = None;
        self.last_real = None;
        self.skip = 0;
    }

    pub(super) fn pes(&mut self, d: &mut Demuxer, si: usize, data: Bytes, ts: Option<(i64, i64)>) {
        let Some(codec) = d.streams.get(si).map(|s| s.codec) else {
            return;
        };
        let when = match ts {
            Some((pts, dts)) => {
                if let Some(prev) = self.last_real {
                    let s = wrap_delta(prev, dts);
                    if s > 0 && s <= 90_000 {
                        self.step = Some(s);
                    }
                }
                self.last_real = Some(dts);
                Some((pts, dts))
            }
            None => {
                self.last_real = None;
                self.next
            }
        };
        // This PES's duration: the sync frames that start in it.
        let walked = walk_frames(codec, &data, self.skip);
        self.skip = walked.map_or(0, |w| w.2);
        let dur = walked
            .filter(|w| w.0 > 0)
            .map(|(samples, rate, _)| samples_to_ticks(samples, rate))
            .or(self.step);
        self.next = match (when, dur) {
            (Some((pts, dts)), Some(dur)) => Some(((pts + dur) & TS_MASK, (dts + dur) & TS_MASK)),
            _ => None,
        };
        let Some((pts, dts)) = when else {
            d.stats.dropped_frames += 1;
            return;
        };
        if ts.is_none() {
            d.stats.interpolated += 1;
        }
        let info = match codec {
            Codec::MpegAudio => mpeg_audio_info(&data),
            Codec::Ac3 => ac3_info(&data),
            Codec::Eac3 => eac3_info(&data),
            _ => None,
        };
        if let (Some((rate, channels, codec_string)), Some(st)) = (info, d.streams.get_mut(si)) {
            let p = &mut st.params;
            if p.sample_rate != rate || p.channels != channels || p.codec_string.as_deref() != Some(codec_string) {
                p.sample_rate = rate;
                p.channels = channels;
                p.codec_string = Some(codec_string.to_owned());
                d.rebuild_tracks();
            }
        }
        d.emit(Frame {
            track: si as u16,
            dts,
            pts,
            keyframe: true,
            data,
        });
    }
}

/// Length in bytes, samples and sample rate of the sync frame at the start
/// of `d`.
type SyncFrame = (usize, u32, u32);

/// Walks the sync frames of an opaque audio PES from `skip` (the tail of a
/// frame that began in the previous PES). Returns (samples of the frames
/// that start here, their rate, bytes of the last frame that continue into
/// the next PES), or `None` when a header does not parse.
fn walk_frames(codec: Codec, d: &[u8], skip: usize) -> Option<(u64, u32, usize)> {
    let header: fn(&[u8]) -> Option<SyncFrame> = match codec {
        Codec::MpegAudio => mpeg_audio_frame,
        Codec::Ac3 => ac3_frame,
        Codec::Eac3 => eac3_frame,
        _ => return None,
    };
    let mut pos = skip;
    let (mut samples, mut rate) = (0u64, 0u32);
    let mut frames = 0;
    while pos < d.len() {
        let Some((len, n, r)) = header(&d[pos..]) else {
            // A partial header at the very end continues in the next PES;
            // we cannot know its length, so it is not counted.
            if d.len() - pos < 8 && frames > 0 {
                return Some((samples, rate, 0));
            }
            return None;
        };
        frames += 1;
        samples += u64::from(n);
        rate = r;
        pos += len.max(1);
        if frames > 4096 {
            return None;
        }
    }
    Some((samples, rate, pos - d.len()))
}

/// Bitrates in kbit/s by version (MPEG-1, MPEG-2/2.5) and layer (I, II, III).
const MPA_BITRATES: [[[u16; 15]; 3]; 2] = [
    [
        [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
        [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
        [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    ],
    [
        [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    ],
];

/// MPEG audio frame (ISO/IEC 11172-3 2.4.2.3, 13818-3): length from bitrate
/// and padding; 384 samples (layer I), 1152 (II; III of MPEG-1), 576 (III
/// of MPEG-2/2.5). Free-format frames have no length here.
fn mpeg_audio_frame(d: &[u8]) -> Option<SyncFrame> {
    let (rate, _, _) = mpeg_audio_info(d)?;
    let version = (d[1] >> 3) & 0x03;
    let layer = 4 - ((d[1] >> 1) & 0x03); // 1, 2, 3
    let mpeg1 = version == 3;
    let br_idx = usize::from(d[2] >> 4);
    let kbps = u32::from(*MPA_BITRATES[usize::from(!mpeg1)][usize::from(layer - 1)].get(br_idx)?);
    if kbps == 0 {
        return None;
    }
    let pad = u32::from((d[2] >> 1) & 0x01);
    let bps = kbps * 1000;
    let (len, samples) = match layer {
        1 => ((12 * bps / rate + pad) * 4, 384),
        2 => (144 * bps / rate + pad, 1152),
        _ if mpeg1 => (144 * bps / rate + pad, 1152),
        _ => (72 * bps / rate + pad, 576),
    };
    Some((len as usize, samples, rate))
}

/// AC-3 bitrates (kbit/s) by `frmsizecod / 2` (A/52 Table 5.18).
const AC3_BITRATES: [u32; 19] = [
    32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 576, 640,
];

/// AC-3 sync frame (A/52 5.4.1): 1536 samples, size from fscod and frmsizecod.
fn ac3_frame(d: &[u8]) -> Option<SyncFrame> {
    let (rate, _, _) = ac3_info(d)?;
    let code = d[4] & 0x3F;
    let kbps = *AC3_BITRATES.get(usize::from(code / 2))?;
    // 16-bit words per frame: bitrate × 1536 / rate / 16; 44.1 kHz rounds
    // down and odd codes add a word.
    let words = match rate {
        48_000 => kbps * 2,
        32_000 => kbps * 3,
        _ => kbps * 96_000 / 44_100 + u32::from(code & 1),
    };
    Some((words as usize * 2, 1536, rate))
}

/// E-AC-3 sync frame (A/52 E.1.2.2): size from frmsiz, 256 samples per
/// block; dependent substreams add no time.
fn eac3_frame(d: &[u8]) -> Option<SyncFrame> {
    let (rate, _, _) = eac3_info(d)?;
    let strmtyp = d[2] >> 6;
    let frmsiz = (usize::from(d[2] & 0x07) << 8) | usize::from(d[3]);
    let fscod = d[4] >> 6;
    let blocks = if fscod == 3 {
        6
    } else {
        [1, 2, 3, 6][usize::from((d[4] >> 4) & 0x03)]
    };
    let samples = if strmtyp == 1 { 0 } else { 256 * blocks };
    Some(((frmsiz + 1) * 2, samples, rate))
}

/// Sample rate, channels and RFC 6381 string of an MPEG audio frame header.
pub(super) fn mpeg_audio_info(d: &[u8]) -> Option<(u32, u8, &'static str)> {
    let h = d.get(..4)?;
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 0x03; // 0: 2.5, 2: 2, 3: 1
    let layer = (h[1] >> 1) & 0x03;
    let rate_idx = usize::from((h[2] >> 2) & 0x03);
    if version == 1 || layer == 0 || rate_idx == 3 {
        return None;
    }
    let base = [44_100, 48_000, 32_000][rate_idx];
    let rate = match version {
        3 => base,
        2 => base / 2,
        _ => base / 4,
    };
    let channels = if h[3] >> 6 == 3 { 1 } else { 2 };
    // Object type indication 0x6B: MPEG-1 audio; 0x69: MPEG-2 audio.
    let codec = if version == 3 { "mp4a.6B" } else { "mp4a.69" };
    Some((rate, channels, codec))
}

/// Channels of an AC-3 `acmod`, before the LFE.
const ACMOD_CHANNELS: [u8; 8] = [2, 1, 2, 3, 3, 4, 4, 5];

/// Sample rate and channels of an AC-3 sync frame (A/52 5.3).
pub(super) fn ac3_info(d: &[u8]) -> Option<(u32, u8, &'static str)> {
    if d.get(..2)? != [0x0B, 0x77] {
        return None;
    }
    let mut r = BitReader::new(d.get(4..)?);
    let fscod = r.read_bits(2).ok()?;
    let rate = *[48_000, 44_100, 32_000].get(fscod as usize)?;
    r.skip_bits(6 + 5 + 3).ok()?; // frmsizecod, bsid, bsmod
    let acmod = r.read_bits(3).ok()? as u8;
    if acmod & 0x01 != 0 && acmod != 1 {
        r.skip_bits(2).ok()?; // cmixlev
    }
    if acmod & 0x04 != 0 {
        r.skip_bits(2).ok()?; // surmixlev
    }
    if acmod == 2 {
        r.skip_bits(2).ok()?; // dsurmod
    }
    let lfe = u8::from(r.read_flag().ok()?);
    Some((rate, ACMOD_CHANNELS[usize::from(acmod)] + lfe, "ac-3"))
}

/// Sample rate and channels of an E-AC-3 sync frame (A/52 E.1.2), from its
/// independent substream.
pub(super) fn eac3_info(d: &[u8]) -> Option<(u32, u8, &'static str)> {
    if d.get(..2)? != [0x0B, 0x77] {
        return None;
    }
    let mut r = BitReader::new(d.get(4..)?);
    let fscod = r.read_bits(2).ok()?;
    let rate = if fscod == 3 {
        *[24_000, 22_050, 16_000].get(r.read_bits(2).ok()? as usize)?
    } else {
        r.skip_bits(2).ok()?; // numblkscod
        [48_000, 44_100, 32_000][fscod as usize]
    };
    let acmod = r.read_bits(3).ok()? as u8;
    let lfe = u8::from(r.read_flag().ok()?);
    Some((rate, ACMOD_CHANNELS[usize::from(acmod)] + lfe, "ec-3"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_headers() {
        // MPEG-1 layer II 48 kHz stereo.
        assert_eq!(mpeg_audio_info(&[0xFF, 0xFD, 0x84, 0x00]), Some((48_000, 2, "mp4a.6B")));
        // AC-3 48 kHz, acmod 7 (3/2) + LFE = 6 channels.
        assert_eq!(
            ac3_info(&[0x0B, 0x77, 0, 0, 0x1E, 0x40, 0xE1, 0xF0]),
            Some((48_000, 6, "ac-3"))
        );
        // E-AC-3 48 kHz, acmod 2 no LFE.
        assert_eq!(eac3_info(&[0x0B, 0x77, 0, 0, 0x34, 0x00]), Some((48_000, 2, "ec-3")));
        assert_eq!(ac3_info(&[0x0B, 0x77]), None);
        assert_eq!(mpeg_audio_info(&[0xFF, 0xE8, 0, 0]), None);
    }

    #[test]
    fn sync_frame_sizes_and_durations() {
        // MPEG-1 layer II, 48 kHz, 192 kbit/s (index 10): 576 bytes, 1152 samples.
        assert_eq!(mpeg_audio_frame(&[0xFF, 0xFD, 0xA4, 0xC0]), Some((576, 1152, 48_000)));
        // Same at 44.1 kHz with padding: 144 × 192000 / 44100 + 1 = 627.
        assert_eq!(mpeg_audio_frame(&[0xFF, 0xFD, 0xA2, 0xC0]), Some((627, 1152, 44_100)));
        // MPEG-2 layer III, 24 kHz, 64 kbit/s (index 8): 72 × 64000 / 24000 = 192, 576 samples.
        assert_eq!(mpeg_audio_frame(&[0xFF, 0xF3, 0x84, 0xC0]), Some((192, 576, 24_000)));
        // Layer I, 32 kHz, 32 kbit/s: (12 × 32000 / 32000) × 4 = 48 bytes, 384 samples.
        assert_eq!(mpeg_audio_frame(&[0xFF, 0xFF, 0x18, 0xC0]), Some((48, 384, 32_000)));
        // Free format has no length.
        assert_eq!(mpeg_audio_frame(&[0xFF, 0xFD, 0x04, 0xC0]), None);
        // AC-3 48 kHz, frmsizecod 0x1E (448 kbit/s): 896 words; 44.1 kHz
        // frmsizecod 1 (32 kbit/s, odd): 70 words.
        assert_eq!(
            ac3_frame(&[0x0B, 0x77, 0, 0, 0x1E, 0x40, 0xE1, 0xF0]),
            Some((1792, 1536, 48_000))
        );
        assert_eq!(
            ac3_frame(&[0x0B, 0x77, 0, 0, 0x41, 0x40, 0xE1, 0xF0]),
            Some((140, 1536, 44_100))
        );
        // E-AC-3 independent, frmsiz 0x0FF (512 bytes), 6 blocks; dependent
        // substreams add no samples.
        assert_eq!(
            eac3_frame(&[0x0B, 0x77, 0x00, 0xFF, 0x34, 0x00]),
            Some((512, 1536, 48_000))
        );
        assert_eq!(
            eac3_frame(&[0x0B, 0x77, 0x40, 0xFF, 0x34, 0x00]),
            Some((512, 0, 48_000))
        );
    }

    #[test]
    fn walking_counts_frames_that_start_in_the_pes() {
        let frame = |n: usize| {
            let mut f = vec![0u8; n];
            f[..4].copy_from_slice(&[0xFF, 0xFD, 0xA4, 0xC0]);
            f
        };
        let one = frame(576);
        let mut pes = one.clone();
        pes.extend_from_slice(&one[..100]);
        // Two frames start here; 476 bytes of the second continue.
        assert_eq!(walk_frames(Codec::MpegAudio, &pes, 0), Some((2304, 48_000, 476)));
        let mut next = one[100..].to_vec();
        next.extend_from_slice(&one);
        assert_eq!(walk_frames(Codec::MpegAudio, &next, 476), Some((1152, 48_000, 0)));
        assert_eq!(walk_frames(Codec::MpegAudio, &[1, 2, 3, 4, 5, 6, 7, 8, 9], 0), None);
        assert_eq!(walk_frames(Codec::Aac, &one, 0), None);
    }

    #[test]
    fn chain_keeps_44k1_exact() {
        let mut c = Chain {
            pts: 1000,
            dts: 1000,
            samples: 0,
            rate: 44_100,
        };
        for _ in 0..441 {
            c.advance(1024, 44_100);
        }
        // 441 × 1024 samples = 10.24 s exactly = 921600 ticks.
        assert_eq!(c.now(), (922_600, 922_600));
    }
}

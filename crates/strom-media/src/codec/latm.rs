//! AAC in LATM/LOAS (ISO/IEC 14496-3 §1.7), as DVB-T2 and some satellite
//! feeds carry it in MPEG-TS (stream_type 0x11): the LOAS AudioSyncStream
//! framing (§1.7.2), the AudioMuxElement with in-band StreamMuxConfig
//! (§1.7.3) and the AudioSpecificConfig inside it (§1.6.2.1). What comes out
//! is raw AAC frames plus the core object type, sample rate and channels, so
//! the rest of strom treats the track as ordinary AAC and writes ADTS.
//!
//! Supported: audioMuxVersion 0 and 1 (with LatmGetValue), one program with
//! one layer, `allStreamsSameTimeFraming`, frameLengthType 0 (byte lengths
//! per subframe), any number of subframes, other data and the CRC field
//! (skipped), explicit sampling rates (index 0xF) that are standard rates,
//! and SBR/PS signalling: implicit (AOT 5/29 wrappers) and, where the ASC
//! length is known (audioMuxVersion 1), the backward-compatible extension.
//! Anything else is [`LatmError::Unsupported`] with the field's name.
//!
//! Invariants: nothing panics on input; every read is bounded by the element
//! it parses; a raw frame is at most one AudioMuxElement long (< 8 KiB).

use bytes::Bytes;

use super::aac::{sample_rate_index, SAMPLE_RATES};
use super::nal::{BitReader, CodecError};

/// LOAS syncword (11 bits) of an AudioSyncStream.
pub const LOAS_SYNC: u16 = 0x2B7;
/// syncword and audioMuxLengthBytes: 3 bytes.
pub const LOAS_HEADER_LEN: usize = 3;
/// Largest AudioSyncStream frame: header plus a 13-bit length.
pub const LOAS_MAX_FRAME_LEN: usize = LOAS_HEADER_LEN + 0x1FFF;

/// Why an AudioMuxElement gave no frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LatmError {
    /// The element ended before a field it announces.
    #[error("LATM element truncated")]
    Truncated,
    /// A field has a value the syntax forbids.
    #[error("invalid LATM {0}")]
    Invalid(&'static str),
    /// A valid configuration strom cannot turn into ADTS AAC.
    #[error("unsupported LATM {0}")]
    Unsupported(&'static str),
    /// `useSameStreamMux` with no StreamMuxConfig seen yet (normal right
    /// after joining a stream).
    #[error("LATM element before any StreamMuxConfig")]
    NoConfig,
}

impl From<CodecError> for LatmError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Truncated => LatmError::Truncated,
            CodecError::Invalid(what) => LatmError::Invalid(what),
        }
    }
}

/// Total length (header included) of the AudioSyncStream frame at the start
/// of `data`, or `None` without a syncword there or with fewer than 3 bytes.
pub fn loas_frame_len(data: &[u8]) -> Option<usize> {
    match data {
        [a, b, c, ..] if (u16::from(*a) << 3 | u16::from(b >> 5)) == LOAS_SYNC => {
            Some(LOAS_HEADER_LEN + ((usize::from(b & 0x1F) << 8) | usize::from(*c)))
        }
        _ => None,
    }
}

/// One AudioMuxElement found by [`LoasFrames`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoasFrame {
    /// Byte range of the AudioMuxElement (after the 3-byte header).
    pub element: std::ops::Range<usize>,
}

/// Iterator over the AudioSyncStream frames of a buffer, like
/// [`super::aac::AdtsFrames`]: garbage is skipped to the next syncword and
/// counted; a frame running past the end stops the iteration and
/// [`LoasFrames::remainder`] tells where it starts.
#[derive(Clone, Debug)]
pub struct LoasFrames<'a> {
    data: &'a [u8],
    pos: usize,
    skipped: usize,
}

/// Iterates the LOAS frames of `data`. See [`LoasFrames`].
pub fn loas_frames(data: &[u8]) -> LoasFrames<'_> {
    LoasFrames {
        data,
        pos: 0,
        skipped: 0,
    }
}

impl LoasFrames<'_> {
    /// Garbage bytes skipped so far.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Offset of the unconsumed tail (an incomplete frame or header).
    pub fn remainder(&self) -> usize {
        self.pos
    }
}

impl Iterator for LoasFrames<'_> {
    type Item = LoasFrame;

    fn next(&mut self) -> Option<LoasFrame> {
        loop {
            let rest = self.data.get(self.pos..)?;
            if rest.len() < LOAS_HEADER_LEN {
                // Keep a tail that could start a syncword.
                if !rest.is_empty() && rest[0] != 0x56 {
                    self.skipped += rest.len();
                    self.pos = self.data.len();
                }
                return None;
            }
            match loas_frame_len(rest) {
                Some(len) if len <= rest.len() => {
                    let start = self.pos;
                    self.pos += len;
                    return Some(LoasFrame {
                        element: start + LOAS_HEADER_LEN..self.pos,
                    });
                }
                Some(_) => return None,
                None => {
                    let skip = rest[1..].iter().position(|&b| b == 0x56).map_or(rest.len(), |p| p + 1);
                    self.skipped += skip;
                    self.pos += skip;
                }
            }
        }
    }
}

/// The AudioSpecificConfig fields strom needs (§1.6.2.1), resolved to the
/// AAC core that ADTS can carry: with SBR (HE-AAC) the core runs at half the
/// output rate and its frames still hold 1024 samples of the core rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// Audio object type of the core (2 = AAC LC), what ADTS `profile` + 1 says.
    pub object_type: u8,
    /// Core sampling rate in Hz.
    pub sample_rate: u32,
    /// `channelConfiguration` (1..=7).
    pub channels: u8,
    /// SBR present (HE-AAC v1), explicitly or through object type 5.
    pub sbr: bool,
    /// Parametric stereo present (HE-AAC v2, object type 29).
    pub ps: bool,
    /// Output sampling rate of SBR, when signalled.
    pub extension_sample_rate: Option<u32>,
}

impl AudioSpecificConfig {
    /// RFC 6381 codec string: `mp4a.40.2`, or `.5` / `.29` with SBR / PS.
    pub fn codec_string(&self) -> String {
        let aot = if self.ps {
            29
        } else if self.sbr {
            5
        } else {
            self.object_type
        };
        super::aac::codec_string(aot)
    }

    /// Parses an AudioSpecificConfig at the reader's position. `len_bits` is
    /// its length when the container says (LATM audioMuxVersion 1); only
    /// then is the backward-compatible SBR/PS extension after it read.
    pub fn parse(r: &mut BitReader<'_>, len_bits: Option<usize>) -> Result<Self, LatmError> {
        let start = r.bit_pos();
        let mut aot = object_type(r)?;
        let mut rate = sampling_frequency(r)?;
        let channels = r.read_u8(4)?;
        let mut sbr = false;
        let mut ps = false;
        let mut ext_rate = None;
        if aot == 5 || aot == 29 {
            sbr = true;
            ps = aot == 29;
            ext_rate = Some(sampling_frequency(r)?);
            aot = object_type(r)?;
            if aot == 22 {
                r.skip_bits(4)?; // extensionChannelConfiguration
            }
        }
        match aot {
            1..=4 => {}
            6 | 7 | 17 | 19..=23 => return Err(LatmError::Unsupported("audio object type (not ADTS AAC)")),
            _ => return Err(LatmError::Unsupported("audio object type")),
        }
        // GASpecificConfig (§4.4.1) for object types 1..=4.
        if r.read_flag()? {
            return Err(LatmError::Unsupported("frameLengthFlag (960-sample frames)"));
        }
        if r.read_flag()? {
            r.skip_bits(14)?; // coreCoderDelay
        }
        let extension_flag = r.read_flag()?;
        if channels == 0 {
            return Err(LatmError::Unsupported(
                "channelConfiguration 0 (program_config_element)",
            ));
        }
        if channels > 7 {
            return Err(LatmError::Unsupported("channelConfiguration"));
        }
        if extension_flag {
            // For object types 1..=4 only extensionFlag3 follows.
            r.skip_bits(1)?;
        }
        if let (false, Some(len)) = (sbr, len_bits) {
            let used = r.bit_pos() - start;
            if len.saturating_sub(used) >= 16 {
                let mut probe = r.clone();
                if probe.read_bits(11)? == u32::from(LOAS_SYNC) && object_type(&mut probe)? == 5 {
                    sbr = probe.read_flag()?;
                    if sbr {
                        ext_rate = Some(sampling_frequency(&mut probe)?);
                        let used = probe.bit_pos() - start;
                        if len.saturating_sub(used) >= 12 && probe.read_bits(11)? == 0x548 {
                            ps = probe.read_flag()?;
                        }
                    }
                }
            }
        }
        if sample_rate_index(rate).is_none() {
            return Err(LatmError::Unsupported("sampling rate without an ADTS index"));
        }
        rate = rate.max(1);
        Ok(AudioSpecificConfig {
            object_type: aot,
            sample_rate: rate,
            channels,
            sbr,
            ps,
            extension_sample_rate: ext_rate,
        })
    }
}

/// GetAudioObjectType(): 5 bits, 31 escapes to 32 + 6 bits.
fn object_type(r: &mut BitReader<'_>) -> Result<u8, LatmError> {
    let aot = r.read_u8(5)?;
    Ok(if aot == 31 { 32 + r.read_u8(6)? } else { aot })
}

/// samplingFrequencyIndex, or 0xF and a 24-bit frequency.
fn sampling_frequency(r: &mut BitReader<'_>) -> Result<u32, LatmError> {
    let idx = r.read_bits(4)?;
    if idx == 0xF {
        return Ok(r.read_bits(24)?);
    }
    SAMPLE_RATES
        .get(idx as usize)
        .copied()
        .ok_or(LatmError::Invalid("samplingFrequencyIndex"))
}

/// The StreamMuxConfig of a single-program, single-layer stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamMuxConfig {
    /// audioMuxVersion (0 or 1).
    pub audio_mux_version: u8,
    /// Subframes (raw AAC frames) per AudioMuxElement: numSubFrames + 1.
    pub subframes: u8,
    pub asc: AudioSpecificConfig,
    /// otherDataLenBits: bits of other data after the payloads.
    pub other_data_bits: u32,
}

/// LatmGetValue() (§1.7.3.1): 2 bits of length, then 1..=4 bytes.
fn latm_value(r: &mut BitReader<'_>) -> Result<u32, LatmError> {
    let bytes = r.read_bits(2)?;
    let mut v: u32 = 0;
    for _ in 0..=bytes {
        v = (v << 8) | r.read_bits(8)?;
    }
    Ok(v)
}

/// otherDataLenBits of audioMuxVersion 0: 8-bit groups with an escape bit.
/// Bounded: an element is at most 8191 bytes, so more bits cannot be there.
fn other_data_len_v0(r: &mut BitReader<'_>) -> Result<u32, LatmError> {
    let mut v: u32 = 0;
    loop {
        let esc = r.read_flag()?;
        v = (v << 8) | r.read_bits(8)?;
        if v > 8 * 0x1FFF {
            return Err(LatmError::Invalid("otherDataLenBits"));
        }
        if !esc {
            return Ok(v);
        }
    }
}

fn parse_stream_mux_config(r: &mut BitReader<'_>) -> Result<StreamMuxConfig, LatmError> {
    let version = r.read_u8(1)?;
    let version_a = if version == 1 { r.read_u8(1)? } else { 0 };
    if version_a != 0 {
        return Err(LatmError::Unsupported("audioMuxVersionA 1"));
    }
    if version == 1 {
        latm_value(r)?; // taraBufferFullness
    }
    let all_same_time_framing = r.read_flag()?;
    let num_sub_frames = r.read_u8(6)?;
    let num_program = r.read_u8(4)?;
    if num_program != 0 {
        return Err(LatmError::Unsupported("more than one program"));
    }
    let num_layer = r.read_u8(3)?;
    if num_layer != 0 {
        return Err(LatmError::Unsupported("more than one layer"));
    }
    // Program 0, layer 0: useSameConfig is implied 0, so the ASC follows.
    let asc = if version == 0 {
        AudioSpecificConfig::parse(r, None)?
    } else {
        let len = latm_value(r)? as usize;
        let start = r.bit_pos();
        let asc = AudioSpecificConfig::parse(r, Some(len))?;
        let used = r.bit_pos() - start;
        // fillBits: the rest of the announced length.
        r.skip_bits(len.checked_sub(used).ok_or(LatmError::Invalid("ascLen"))?)?;
        asc
    };
    let frame_length_type = r.read_u8(3)?;
    if frame_length_type != 0 {
        return Err(LatmError::Unsupported("frameLengthType other than 0"));
    }
    r.skip_bits(8)?; // latmBufferFullness
    if !all_same_time_framing {
        return Err(LatmError::Unsupported("allStreamsSameTimeFraming 0"));
    }
    let mut other_data_bits = 0;
    if r.read_flag()? {
        other_data_bits = if version == 1 {
            latm_value(r)?
        } else {
            other_data_len_v0(r)?
        };
    }
    if r.read_flag()? {
        r.skip_bits(8)?; // crcCheckSum
    }
    Ok(StreamMuxConfig {
        audio_mux_version: version,
        subframes: num_sub_frames + 1,
        asc,
        other_data_bits,
    })
}

/// Turns AudioMuxElements (muxConfigPresent = 1, as LOAS carries them) into
/// raw AAC frames, remembering the last StreamMuxConfig.
#[derive(Clone, Debug, Default)]
pub struct LatmDecoder {
    config: Option<StreamMuxConfig>,
}

impl LatmDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The StreamMuxConfig in effect, once one was received.
    pub fn config(&self) -> Option<&StreamMuxConfig> {
        self.config.as_ref()
    }

    /// Forgets the configuration (after loss of the stream).
    pub fn reset(&mut self) {
        self.config = None;
    }

    /// Decodes one AudioMuxElement (§1.7.3), appending its raw AAC frames
    /// (one per subframe) to `out`. Returns true when the element carried a
    /// StreamMuxConfig that differs from the one before. On error nothing is
    /// appended; a new but unsupported configuration also forgets the old
    /// one, so later elements that reuse it fail with `NoConfig`.
    pub fn decode(&mut self, element: &[u8], out: &mut Vec<Bytes>) -> Result<bool, LatmError> {
        let mut r = BitReader::new(element);
        let mut changed = false;
        let use_same = r.read_flag()?;
        let config = if use_same {
            self.config.ok_or(LatmError::NoConfig)?
        } else {
            match parse_stream_mux_config(&mut r) {
                Ok(c) => {
                    changed = self.config != Some(c);
                    self.config = Some(c);
                    c
                }
                Err(e) => {
                    self.config = None;
                    return Err(e);
                }
            }
        };
        let first = out.len();
        let result = (|| -> Result<(), LatmError> {
            let mut buf = Vec::new();
            for _ in 0..config.subframes {
                // PayloadLengthInfo: MuxSlotLengthBytes, 255 escapes.
                let mut len = 0usize;
                loop {
                    let b = r.read_bits(8)?;
                    len += b as usize;
                    if b != 255 {
                        break;
                    }
                }
                if len == 0 {
                    return Err(LatmError::Invalid("empty payload"));
                }
                buf.clear();
                r.read_bytes(len, &mut buf)?;
                out.push(Bytes::copy_from_slice(&buf));
            }
            r.skip_bits(config.other_data_bits as usize)?;
            Ok(())
        })();
        if let Err(e) = result {
            out.truncate(first);
            return Err(e);
        }
        Ok(changed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// MSB-first bit writer for building LATM test streams.
    #[derive(Default)]
    pub(crate) struct Bits {
        pub bytes: Vec<u8>,
        bits: usize,
    }

    impl Bits {
        pub fn put(&mut self, v: u64, n: u32) -> &mut Self {
            for i in (0..n).rev() {
                if self.bits.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                if let Some(last) = self.bytes.last_mut() {
                    *last |= (((v >> i) & 1) as u8) << (7 - self.bits % 8);
                }
                self.bits += 1;
            }
            self
        }

        pub fn len(&self) -> usize {
            self.bits
        }
    }

    /// An AudioSpecificConfig: AOT, rate index (or explicit), channels.
    pub(crate) fn asc(w: &mut Bits, aot: u8, rate_idx: u8, explicit: Option<u32>, channels: u8) {
        w.put(u64::from(aot), 5).put(u64::from(rate_idx), 4);
        if let Some(f) = explicit {
            w.put(u64::from(f), 24);
        }
        w.put(u64::from(channels), 4);
        w.put(0, 3); // frameLengthFlag, dependsOnCoreCoder, extensionFlag
    }

    /// A LOAS frame: AudioMuxElement with a version-0 StreamMuxConfig (or
    /// `useSameStreamMux`), one subframe per payload.
    pub(crate) fn loas(config: bool, asc_bits: impl Fn(&mut Bits), payloads: &[&[u8]]) -> Vec<u8> {
        let mut w = Bits::default();
        w.put(u64::from(!config), 1);
        if config {
            w.put(0, 1); // audioMuxVersion 0
            w.put(1, 1); // allStreamsSameTimeFraming
            w.put(payloads.len() as u64 - 1, 6);
            w.put(0, 4).put(0, 3); // numProgram, numLayer
            asc_bits(&mut w);
            w.put(0, 3).put(0xFF, 8); // frameLengthType 0, latmBufferFullness
            w.put(0, 1).put(0, 1); // otherDataPresent, crcCheckPresent
        }
        // Per subframe: PayloadLengthInfo, then PayloadMux.
        for p in payloads {
            let mut n = p.len();
            while n >= 255 {
                w.put(255, 8);
                n -= 255;
            }
            w.put(n as u64, 8);
            for &b in p.iter() {
                w.put(u64::from(b), 8);
            }
        }
        let element = w.bytes;
        let mut out = vec![0x56, 0xE0 | (element.len() >> 8) as u8, element.len() as u8];
        out.extend_from_slice(&element);
        out
    }

    fn lc_48k_stereo(w: &mut Bits) {
        asc(w, 2, 3, None, 2);
    }

    #[test]
    fn version0_config_and_frames() {
        let f = loas(true, lc_48k_stereo, &[&[1, 2, 3, 4]]);
        assert_eq!(loas_frame_len(&f), Some(f.len()));
        let mut d = LatmDecoder::new();
        let mut out = Vec::new();
        assert_eq!(d.decode(&f[3..], &mut out), Ok(true));
        assert_eq!(out, vec![Bytes::from_static(&[1, 2, 3, 4])]);
        let c = d.config().expect("config");
        assert_eq!((c.asc.object_type, c.asc.sample_rate, c.asc.channels), (2, 48_000, 2));
        assert_eq!(c.asc.codec_string(), "mp4a.40.2");
        // The same config again is no change; useSameStreamMux reuses it,
        // two subframes and a 300-byte payload (255 escape).
        assert_eq!(d.decode(&f[3..], &mut out), Ok(false));
        let big = [7u8; 300];
        let f2 = loas(false, lc_48k_stereo, &[&[9; 10], &big]);
        let mut out = Vec::new();
        // Two subframes need a config that says two.
        let two = loas(true, lc_48k_stereo, &[&[5], &[6]]);
        assert_eq!(d.decode(&two[3..], &mut out), Ok(true));
        assert_eq!(d.decode(&f2[3..], &mut out), Ok(false));
        assert_eq!(out.len(), 4);
        assert_eq!((&out[2][..], out[3].len()), (&[9u8; 10][..], 300));
    }

    #[test]
    fn explicit_rate_and_sbr_ps() {
        // Explicit 44.1 kHz (index 0xF), mono.
        let f = loas(true, |w| asc(w, 2, 0xF, Some(44_100), 1), &[&[1]]);
        let mut d = LatmDecoder::new();
        let mut out = Vec::new();
        d.decode(&f[3..], &mut out).expect("valid");
        let c = d.config().expect("config").asc;
        assert_eq!((c.sample_rate, c.channels, c.sbr), (44_100, 1, false));
        // Explicit rate that ADTS cannot index.
        let f = loas(true, |w| asc(w, 2, 0xF, Some(44_000), 1), &[&[1]]);
        assert_eq!(
            d.decode(&f[3..], &mut out),
            Err(LatmError::Unsupported("sampling rate without an ADTS index"))
        );
        // HE-AAC v2: AOT 29, core 24 kHz, SBR to 48 kHz, then AAC LC.
        let hev2 = |w: &mut Bits| {
            w.put(29, 5).put(6, 4).put(1, 4); // AOT 29, 24 kHz, mono core
            w.put(3, 4); // extension rate 48 kHz
            w.put(2, 5); // core AOT LC
            w.put(0, 3);
        };
        let f = loas(true, hev2, &[&[1, 2]]);
        assert_eq!(d.decode(&f[3..], &mut out), Ok(true));
        let c = d.config().expect("config").asc;
        assert_eq!((c.object_type, c.sample_rate, c.sbr, c.ps), (2, 24_000, true, true));
        assert_eq!(c.extension_sample_rate, Some(48_000));
        assert_eq!(c.codec_string(), "mp4a.40.29");
    }

    /// audioMuxVersion 1: taraBufferFullness and ascLen by LatmGetValue,
    /// an explicit backward-compatible SBR extension in the ASC, fill bits,
    /// other data and a CRC byte.
    #[test]
    fn version1_with_sbr_extension_other_data_and_crc() {
        let mut asc_bits = Bits::default();
        asc(&mut asc_bits, 2, 6, None, 2); // LC 24 kHz stereo
        asc_bits.put(u64::from(LOAS_SYNC), 11).put(5, 5).put(1, 1).put(3, 4); // SBR → 48 kHz
        asc_bits.put(0, 3); // fill bits
        let asc_len = asc_bits.len();
        let mut w = Bits::default();
        w.put(0, 1); // useSameStreamMux
        w.put(1, 1).put(0, 1); // audioMuxVersion 1, A 0
        w.put(0, 2).put(0xFF, 8); // taraBufferFullness
        w.put(1, 1).put(0, 6).put(0, 4).put(0, 3);
        w.put(0, 2).put(asc_len as u64, 8); // ascLen
        for (i, _) in (0..asc_len).enumerate() {
            let byte = asc_bits.bytes[i / 8];
            w.put(u64::from((byte >> (7 - i % 8)) & 1), 1);
        }
        w.put(0, 3).put(0xFF, 8);
        w.put(1, 1).put(0, 2).put(12, 8); // otherDataPresent, 12 bits
        w.put(1, 1).put(0xAA, 8); // crc
        w.put(3, 8); // MuxSlotLengthBytes
        w.put(0xC0FFEE, 24);
        w.put(0xABC, 12); // other data
        let mut d = LatmDecoder::new();
        let mut out = Vec::new();
        assert_eq!(d.decode(&w.bytes, &mut out), Ok(true));
        assert_eq!(&out[0][..], &[0xC0, 0xFF, 0xEE]);
        let c = d.config().expect("config");
        assert_eq!((c.audio_mux_version, c.other_data_bits), (1, 12));
        assert_eq!((c.asc.sample_rate, c.asc.sbr, c.asc.ps), (24_000, true, false));
        assert_eq!(c.asc.extension_sample_rate, Some(48_000));
        assert_eq!(c.asc.codec_string(), "mp4a.40.5");
    }

    #[test]
    fn unsupported_and_broken_elements() {
        let mut d = LatmDecoder::new();
        let mut out = Vec::new();
        let f = loas(false, lc_48k_stereo, &[&[1]]);
        assert_eq!(d.decode(&f[3..], &mut out), Err(LatmError::NoConfig));
        // Two programs.
        let mut w = Bits::default();
        w.put(0, 1).put(0, 1).put(1, 1).put(0, 6).put(1, 4);
        assert_eq!(
            d.decode(&w.bytes, &mut out),
            Err(LatmError::Unsupported("more than one program"))
        );
        // 960-sample frames; PCE channel configuration; ER object types.
        let f = loas(
            true,
            |w| {
                w.put(2, 5).put(3, 4).put(2, 4).put(1, 1).put(0, 2);
            },
            &[&[1]],
        );
        assert_eq!(
            d.decode(&f[3..], &mut out),
            Err(LatmError::Unsupported("frameLengthFlag (960-sample frames)"))
        );
        let f = loas(true, |w| asc(w, 2, 3, None, 0), &[&[1]]);
        assert_eq!(
            d.decode(&f[3..], &mut out),
            Err(LatmError::Unsupported(
                "channelConfiguration 0 (program_config_element)"
            ))
        );
        let f = loas(true, |w| asc(w, 23, 3, None, 2), &[&[1]]);
        assert!(matches!(d.decode(&f[3..], &mut out), Err(LatmError::Unsupported(_))));
        // An unsupported config is forgotten: the next useSameStreamMux fails.
        let good = loas(true, lc_48k_stereo, &[&[1]]);
        d.decode(&good[3..], &mut out).expect("valid");
        let _ = d.decode(&f[3..], &mut out);
        let same = loas(false, lc_48k_stereo, &[&[1]]);
        assert_eq!(d.decode(&same[3..], &mut out), Err(LatmError::NoConfig));
        assert_eq!(out.len(), 1);
        // A payload longer than the element: truncated, nothing appended.
        d.decode(&good[3..], &mut out).expect("valid");
        let mut cut = loas(false, lc_48k_stereo, &[&[1; 40]]);
        cut.truncate(20);
        assert_eq!(d.decode(&cut[3..], &mut out), Err(LatmError::Truncated));
        assert_eq!(out.len(), 2);
        assert_eq!(d.decode(&[], &mut out), Err(LatmError::Truncated));
    }

    #[test]
    fn loas_framing_with_garbage_and_tail() {
        let a = loas(true, lc_48k_stereo, &[&[1, 2]]);
        let b = loas(false, lc_48k_stereo, &[&[3; 20]]);
        let mut data = vec![0x00, 0x56, 0x12];
        data.extend_from_slice(&a);
        data.extend_from_slice(&b);
        data.extend_from_slice(&b[..5]);
        let mut it = loas_frames(&data);
        let got: Vec<_> = it.by_ref().map(|f| data[f.element].to_vec()).collect();
        assert_eq!(got, vec![a[3..].to_vec(), b[3..].to_vec()]);
        assert_eq!(it.skipped(), 3);
        assert_eq!(it.remainder(), data.len() - 5);
        assert_eq!(loas_frame_len(&[0x56, 0xE0]), None);
        assert_eq!(loas_frame_len(&[0x57, 0xE0, 0]), None);
    }

    #[test]
    fn decoder_never_panics_on_garbage() {
        let mut x: u32 = 5;
        let mut d = LatmDecoder::new();
        let good = loas(true, lc_48k_stereo, &[&[1, 2, 3]]);
        for len in 0..400 {
            let mut v: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (x >> 24) as u8
                })
                .collect();
            let mut out = Vec::new();
            let _ = d.decode(&v, &mut out);
            // Bit flips of a valid element.
            if len < good.len() * 8 && len >= 24 {
                v = good.clone();
                v[len / 8] ^= 1 << (len % 8);
                let _ = d.decode(&v[3..], &mut out);
            }
            for f in out {
                assert!(f.len() <= 0x1FFF);
            }
            let mut it = loas_frames(&v);
            for f in it.by_ref() {
                assert!(f.element.end <= v.len());
            }
            assert!(it.remainder() <= v.len());
        }
    }
}

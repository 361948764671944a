//! AAC ADTS framing: parsing ADTS headers out of PES payloads and writing
//! them back for MPEG-TS output.

/// Sampling frequencies indexed by the ADTS/ASC `sampling_frequency_index`.
pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Samples per AAC frame (AAC-LC).
pub const SAMPLES_PER_FRAME: u32 = 1024;

/// Index of `rate` in [`SAMPLE_RATES`], if it is a standard rate.
pub fn sample_rate_index(rate: u32) -> Option<u8> {
    SAMPLE_RATES.iter().position(|&r| r == rate).map(|i| i as u8)
}

/// Writes the 7-byte ADTS header (no CRC) for a raw AAC frame of
/// `payload_len` bytes. Unknown sample rates fall back to 48 kHz's index and
/// an object type of 0 falls back to LC, so the output is always a valid header.
pub fn write_adts_header(object_type: u8, sample_rate: u32, channels: u8, payload_len: usize) -> [u8; 7] {
    let profile = object_type.clamp(1, 4) - 1;
    let sf = sample_rate_index(sample_rate).unwrap_or(3);
    let ch = channels & 0x7;
    let len = (payload_len + 7).min(0x1FFF) as u16;
    [
        0xFF,
        0xF1, // MPEG-4, layer 0, no CRC
        (profile << 6) | (sf << 2) | (ch >> 2),
        ((ch & 0x3) << 6) | ((len >> 11) as u8 & 0x3),
        (len >> 3) as u8,
        (((len & 0x7) as u8) << 5) | 0x1F,
        0xFC,
    ]
}

/// Sync word (12 bits) at the start of every ADTS header.
const ADTS_SYNC: u16 = 0xFFF;
/// ADTS header length without CRC.
pub const ADTS_HEADER_LEN: usize = 7;
/// Upper bound of `frame_length` (13 bits).
pub const ADTS_MAX_FRAME_LEN: usize = 0x1FFF;

/// The fields of one ADTS header (ISO/IEC 14496-3 1.A.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdtsHeader {
    /// Audio object type: ADTS `profile` + 1 (2 = AAC-LC).
    pub object_type: u8,
    pub sample_rate: u32,
    /// `channel_configuration`; 0 means defined in-band (PCE).
    pub channels: u8,
    /// Header length: 7, or 9 with CRC.
    pub header_len: usize,
    /// Whole ADTS frame length, header included.
    pub frame_len: usize,
    /// Raw data blocks in the frame (1..=4), each of 1024 samples.
    pub raw_blocks: u8,
}

impl AdtsHeader {
    /// Parses the header at the start of `data`. `None` when there is no
    /// valid header there (no sync, reserved sample rate, impossible length)
    /// or fewer than 7 bytes are available.
    pub fn parse(data: &[u8]) -> Option<AdtsHeader> {
        let h = data.get(..ADTS_HEADER_LEN)?;
        if (u16::from(h[0]) << 4 | u16::from(h[1] >> 4)) != ADTS_SYNC || h[1] & 0x06 != 0 {
            return None; // no sync, or layer != 0
        }
        let protection_absent = h[1] & 0x01 == 1;
        let object_type = (h[2] >> 6) + 1;
        let sample_rate = *SAMPLE_RATES.get(usize::from((h[2] >> 2) & 0x0F))?;
        let channels = ((h[2] & 0x01) << 2) | (h[3] >> 6);
        let frame_len = (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        let raw_blocks = (h[6] & 0x03) + 1;
        let header_len = if protection_absent { 7 } else { 9 };
        if frame_len <= header_len {
            return None;
        }
        Some(AdtsHeader {
            object_type,
            sample_rate,
            channels,
            header_len,
            frame_len,
            raw_blocks,
        })
    }

    /// Audio samples (per channel) in this frame.
    pub fn samples(&self) -> u32 {
        SAMPLES_PER_FRAME * u32::from(self.raw_blocks)
    }

    /// RFC 6381 codec string, `mp4a.40.<aot>`.
    pub fn codec_string(&self) -> String {
        codec_string(self.object_type)
    }
}

/// RFC 6381 codec string for an AAC audio object type, `mp4a.40.<aot>`.
pub fn codec_string(object_type: u8) -> String {
    format!("mp4a.40.{object_type}")
}

/// One raw AAC frame found by [`AdtsFrames`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdtsFrame {
    pub header: AdtsHeader,
    /// Byte range of the raw frame (header stripped) in the scanned buffer.
    pub payload: std::ops::Range<usize>,
}

/// Iterator over the ADTS frames of a buffer (typically one PES payload).
///
/// Bytes that do not start a valid header are skipped up to the next sync
/// word (counted in [`AdtsFrames::skipped`]). A header whose frame runs past
/// the end of the buffer ends the iteration; [`AdtsFrames::remainder`] tells
/// where that incomplete frame starts so a caller can carry it over.
#[derive(Clone, Debug)]
pub struct AdtsFrames<'a> {
    data: &'a [u8],
    pos: usize,
    skipped: usize,
}

/// Iterates the ADTS frames of `data`. See [`AdtsFrames`].
pub fn adts_frames(data: &[u8]) -> AdtsFrames<'_> {
    AdtsFrames {
        data,
        pos: 0,
        skipped: 0,
    }
}

impl AdtsFrames<'_> {
    /// Garbage bytes skipped so far while looking for sync.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Offset of the unconsumed tail (an incomplete frame or a partial
    /// header); equals the buffer length when everything was consumed.
    pub fn remainder(&self) -> usize {
        self.pos
    }
}

impl Iterator for AdtsFrames<'_> {
    type Item = AdtsFrame;

    fn next(&mut self) -> Option<AdtsFrame> {
        loop {
            let rest = self.data.get(self.pos..)?;
            if rest.len() < ADTS_HEADER_LEN {
                // A short tail that could still be the start of a header is
                // left as remainder; anything else is garbage.
                if !rest.is_empty() && rest[0] != 0xFF {
                    self.skipped += rest.len();
                    self.pos = self.data.len();
                }
                return None;
            }
            match AdtsHeader::parse(rest) {
                Some(header) if header.frame_len <= rest.len() => {
                    let start = self.pos;
                    self.pos += header.frame_len;
                    return Some(AdtsFrame {
                        header,
                        payload: start + header.header_len..self.pos,
                    });
                }
                Some(_) => return None, // truncated frame: leave it as remainder
                None => {
                    // Resync: next 0xFF that could begin a sync word.
                    let skip = rest[1..].iter().position(|&b| b == 0xFF).map_or(rest.len(), |p| p + 1);
                    self.skipped += skip;
                    self.pos += skip;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(object_type: u8, rate: u32, channels: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = write_adts_header(object_type, rate, channels, payload.len()).to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn header_round_trip() {
        let f = frame(2, 48000, 2, &[1, 2, 3]);
        let h = AdtsHeader::parse(&f).expect("valid test input");
        assert_eq!(h.object_type, 2);
        assert_eq!(h.sample_rate, 48000);
        assert_eq!(h.channels, 2);
        assert_eq!(h.header_len, 7);
        assert_eq!(h.frame_len, 10);
        assert_eq!(h.raw_blocks, 1);
        assert_eq!(h.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn demo_header() {
        // First ADTS header of assets/demo.ts: LC, 48 kHz, stereo, 204 bytes.
        let h = AdtsHeader::parse(&[0xff, 0xf1, 0x4c, 0x80, 0x19, 0x9f, 0xfc]).expect("valid test input");
        assert_eq!(
            (h.object_type, h.sample_rate, h.channels, h.frame_len),
            (2, 48000, 2, 204)
        );
    }

    #[test]
    fn crc_protected_header_is_nine_bytes() {
        let mut f = frame(2, 44100, 1, &[0xAA; 4]);
        f[1] &= !0x01; // protection_absent = 0
                       // Insert the 2 CRC bytes and fix frame_length.
        f.splice(7..7, [0x12, 0x34]);
        let len = f.len();
        f[3] = (f[3] & !0x03) | ((len >> 11) as u8 & 0x03);
        f[4] = (len >> 3) as u8;
        f[5] = (f[5] & 0x1F) | (((len & 7) as u8) << 5);
        let frames: Vec<_> = adts_frames(&f).collect();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].header.header_len, 9);
        assert_eq!(&f[frames[0].payload.clone()], &[0xAA; 4]);
    }

    #[test]
    fn several_frames_with_garbage() {
        let mut data = vec![0x00, 0xFF, 0x12];
        data.extend(frame(2, 48000, 2, &[1; 10]));
        data.extend([0xFF, 0xFF, 0x00, 0x42]);
        data.extend(frame(2, 48000, 2, &[2; 20]));
        data.extend(frame(1, 24000, 1, &[3; 5]));
        let mut it = adts_frames(&data);
        let got: Vec<_> = it
            .by_ref()
            .map(|f| (f.header.object_type, data[f.payload].to_vec()))
            .collect();
        assert_eq!(got, vec![(2, vec![1; 10]), (2, vec![2; 20]), (1, vec![3; 5])]);
        assert_eq!(it.skipped(), 7);
        assert_eq!(it.remainder(), data.len());
    }

    #[test]
    fn truncated_last_frame_is_remainder() {
        let mut data = frame(2, 48000, 2, &[1; 10]);
        let second = frame(2, 48000, 2, &[2; 30]);
        data.extend_from_slice(&second[..12]);
        let mut it = adts_frames(&data);
        assert_eq!(it.by_ref().count(), 1);
        assert_eq!(it.remainder(), 17);
    }

    #[test]
    fn rejects_invalid_headers() {
        assert!(AdtsHeader::parse(&[0xFF, 0xF1, 0x4c]).is_none()); // short
        assert!(AdtsHeader::parse(&[0xFF, 0xF3, 0x4c, 0x80, 0x19, 0x9f, 0xfc]).is_none()); // layer 1
        assert!(AdtsHeader::parse(&[0xFF, 0xF1, 0x7c, 0x80, 0x19, 0x9f, 0xfc]).is_none()); // rate index 15
        assert!(AdtsHeader::parse(&[0xFF, 0xF1, 0x4c, 0x80, 0x00, 0x9f, 0xfc]).is_none()); // length 4
        assert!(AdtsHeader::parse(&[0xFF, 0xE1, 0x4c, 0x80, 0x19, 0x9f, 0xfc]).is_none());
        // no sync
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut x: u32 = 7;
        for len in 0..300 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    if x >> 30 == 0 {
                        0xFF
                    } else {
                        (x >> 8) as u8
                    }
                })
                .collect();
            let mut it = adts_frames(&data);
            for f in it.by_ref() {
                assert!(f.payload.end <= data.len() && f.payload.start < f.payload.end);
            }
            assert!(it.remainder() <= data.len());
        }
    }
}

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

//! MPEG-TS (ISO/IEC 13818-1): packet constants, PSI CRC, demuxer and muxer.

pub mod crc;
pub mod demux;
pub mod mux;

/// Size of one transport packet.
pub const PACKET_SIZE: usize = 188;
/// Sync byte that starts every transport packet.
pub const SYNC_BYTE: u8 = 0x47;
/// Timestamps in PES headers and PCR bases are 33-bit.
pub const TS_WRAP: i64 = 1 << 33;

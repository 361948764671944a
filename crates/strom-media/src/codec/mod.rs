//! Codec bitstream helpers: Annex B NAL scanning and access-unit roles,
//! H.264/H.265 parameter sets, slice headers and random access points
//! (IDR/IRAP, recovery point SEI), AAC ADTS framing and AAC in LATM/LOAS, and the
//! parameter-set bookkeeping of a video track (`params`).
//! Pure functions over byte slices that never panic on input.

pub mod aac;
pub mod h264;
pub mod h265;
pub mod latm;
pub mod nal;
pub mod params;

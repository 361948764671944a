//! Codec bitstream helpers: Annex B NAL scanning, H.264/H.265 parameter sets
//! and keyframes, AAC ADTS framing. Pure functions over byte slices.

pub mod aac;
pub mod h264;
pub mod h265;
pub mod nal;

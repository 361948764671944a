//! strom-media: the canonical media model and every pure transformation on it.
//!
//! Data path (no I/O anywhere in this crate):
//! bytes → [`ts::demux::Demuxer`] → raw [`Frame`]s (33-bit timestamps) →
//! [`timeline::Timeline`] (unwrapped, UTC 90 kHz) → [`segmenter::Segmenter`] →
//! [`Segment`] → [`ts::mux`] (HLS segment / HTTP-TS bytes) and [`hls`] playlists.
//! A file played forever enters the same path through [`looper::Looper`];
//! RTMP publishers through [`rtmp`] (the session) and [`flv`] (tags to frames).
//! The archive ([`dvr`]) stores segments as [`wire`] messages with an index.
//!
//! Invariants: timestamps after the timeline are UTC in 90 kHz units and never
//! wrap; a segment muxes to the same bytes every time; parsers never panic on
//! input, they count errors instead.

pub mod codec;
pub mod dvr;
pub mod flv;
pub mod frame;
pub mod hls;
pub mod looper;
pub mod rtmp;
pub mod scte35;
pub mod segmenter;
pub mod timeline;
pub mod ts;
pub mod wire;

pub use frame::{Codec, Frame, Segment, Track, TrackKind, TrackParams, CLOCK_HZ};

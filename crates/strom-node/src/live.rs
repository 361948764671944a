//! Continuous HTTP-TS output of one stream: muxes each frame once into a
//! chunk and hands it to the hub's broadcast.
//!
//! A chunk is a viewer start point when it holds PAT/PMT followed by a video
//! keyframe (the muxer writes the tables before every video keyframe); for
//! audio-only streams tables are written every half second and that chunk is
//! the start point.

use crate::hub::StreamHub;
use bytes::BytesMut;
use std::sync::Arc;
use strom_media::ts::mux::TsMuxer;
use strom_media::{Frame, Track, TrackKind, CLOCK_HZ};

/// The live muxer state of a stream.
pub struct LiveOutput {
    mux: Option<TsMuxer>,
    buf: BytesMut,
    tracks: Arc<[Track]>,
    has_video: bool,
    last_tables_dts: Option<i64>,
}

impl Default for LiveOutput {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveOutput {
    pub fn new() -> Self {
        LiveOutput {
            mux: None,
            buf: BytesMut::with_capacity(256 << 10),
            tracks: Arc::from(Vec::new()),
            has_video: false,
            last_tables_dts: None,
        }
    }

    /// Tracks now in effect; a different set starts a new muxer (new PMT).
    pub fn set_tracks(&mut self, t: &Arc<[Track]>) -> bool {
        if **t == *self.tracks {
            return false;
        }
        self.mux = Some(TsMuxer::new(t));
        self.has_video = t.iter().any(|t| t.kind() == TrackKind::Video);
        self.last_tables_dts = None;
        self.tracks = t.clone();
        true
    }

    /// Muxes one frame (UTC timeline) and publishes it to HTTP-TS viewers.
    pub fn write(&mut self, hub: &StreamHub, frame: &Frame) {
        let Some(mux) = self.mux.as_mut() else { return };
        let Some(track) = self.tracks.get(usize::from(frame.track)) else {
            return;
        };
        let start = if self.has_video {
            frame.keyframe && track.kind() == TrackKind::Video
        } else {
            self.last_tables_dts.is_none_or(|t| frame.dts - t >= CLOCK_HZ / 2)
        };
        if start && !self.has_video {
            mux.write_tables(&mut self.buf);
            self.last_tables_dts = Some(frame.dts);
        }
        mux.write_frame(frame, &mut self.buf);
        hub.push_live(start, self.buf.split().freeze());
    }
}

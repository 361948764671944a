//! Segmenter: cuts the UTC-timed frame run of one stream into keyframe-aligned
//! segments.
//!
//! Rules:
//! - With a video track, a segment starts at a video keyframe and is cut at the
//!   first keyframe at or after `target` duration. A GOP longer than `max`
//!   is cut at `max` anyway so that playlists keep moving.
//! - Without video, a segment is cut at the first frame at or after `target`.
//! - Whatever the timing track does, no segment spans more than `max` on any
//!   track or holds more than [`MAX_SEGMENT_BYTES`]: when the timing track
//!   goes quiet while other tracks keep coming, the segment is cut at the
//!   frame that would break a bound, so memory per stream stays bounded.
//! - A discontinuity (input switch, timestamp jump, track change) closes the
//!   running segment; the next segment carries `discontinuity` and starts at
//!   the next keyframe. Frames before it are dropped and counted.
//! - The segmenter does not number segments: every segment it returns has
//!   `seq: 0`. The stream numbers them (the node's pipeline assigns media
//!   sequence numbers, from UTC or persisted state), so one owner holds that fact.

use crate::frame::{Frame, Segment, Track, TrackKind, TrackParams, CLOCK_HZ};
use std::sync::Arc;

/// Payload bytes a segment may hold before it is cut whatever its frames.
pub const MAX_SEGMENT_BYTES: usize = 64 << 20;

/// Durations in 90 kHz ticks.
#[derive(Clone, Copy, Debug)]
pub struct SegmenterConfig {
    /// Cut at the first keyframe after this much.
    pub target: i64,
    /// Cut here even without a keyframe.
    pub max: i64,
}

impl SegmenterConfig {
    /// A config for a target duration in ticks, capping segments at 3× target.
    pub fn with_target(target: i64) -> Self {
        SegmenterConfig {
            target,
            max: target * 3,
        }
    }
}

#[derive(Debug)]
struct Building {
    start: i64,
    discontinuity: bool,
    frames: Vec<Frame>,
    /// DTS of the last frame on the timing track and its last observed frame duration.
    last_dts: i64,
    last_step: i64,
    /// Payload bytes of `frames`.
    bytes: usize,
}

/// Cuts frames into segments. Feed frames in arrival order.
///
/// Segments come out with `seq: 0`; the stream numbers them (the node's
/// pipeline assigns media sequence numbers).
#[derive(Debug)]
pub struct Segmenter {
    cfg: SegmenterConfig,
    tracks: Arc<[Track]>,
    /// Track whose keyframes and DTS drive cutting: first video, else first track.
    timing: Option<u16>,
    has_video: bool,
    building: Option<Building>,
    /// The next segment is a discontinuity.
    pending_discontinuity: bool,
    /// At least one segment was emitted, so a later break is a discontinuity.
    emitted: bool,
    dropped: u64,
}

impl Segmenter {
    /// A segmenter with no tracks yet: frames are dropped until [`Segmenter::set_tracks`].
    pub fn new(cfg: SegmenterConfig) -> Self {
        Segmenter {
            cfg,
            tracks: Arc::from(Vec::new()),
            timing: None,
            has_video: false,
            building: None,
            pending_discontinuity: false,
            emitted: false,
            dropped: 0,
        }
    }

    /// Frames dropped while waiting for a keyframe.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// `EXT-X-TARGETDURATION` in whole seconds stamped on every segment.
    pub fn target_duration(&self) -> u32 {
        u32::try_from((self.cfg.target + CLOCK_HZ - 1) / CLOCK_HZ)
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// UTC DTS of the first frame of the segment being built, if any.
    pub fn open_since(&self) -> Option<i64> {
        self.building.as_ref().map(|b| b.start)
    }

    /// Tracks currently in effect.
    pub fn tracks(&self) -> &Arc<[Track]> {
        &self.tracks
    }

    /// Installs a new track set. If it differs from the current one, the
    /// running segment is closed (returned) and the next one is a discontinuity,
    /// because a segment's frames must all match one PMT and codec config.
    pub fn set_tracks(&mut self, tracks: Arc<[Track]>) -> Option<Segment> {
        if *tracks == *self.tracks {
            return None;
        }
        if is_refinement(&self.tracks, &tracks) {
            // Parameters arrived for a track that has carried no frame yet
            // (the PMT announces AAC before its first ADTS header): the same
            // stream, described better. No cut, no discontinuity.
            self.tracks = tracks;
            return None;
        }
        let closed = self.close();
        self.timing = tracks
            .iter()
            .find(|t| t.kind() == TrackKind::Video)
            .or_else(|| tracks.first())
            .map(|t| t.id);
        self.has_video = tracks.iter().any(|t| t.kind() == TrackKind::Video);
        self.tracks = tracks;
        if self.emitted {
            self.pending_discontinuity = true;
        }
        closed
    }

    /// Marks a discontinuity before the next frame: the running segment is
    /// closed (returned) and the next one starts at a keyframe, flagged.
    pub fn discontinuity(&mut self) -> Option<Segment> {
        let closed = self.close();
        if self.emitted {
            self.pending_discontinuity = true;
        }
        closed
    }

    /// Adds one frame (UTC timeline). Returns a segment when this frame closed one.
    pub fn push(&mut self, frame: Frame) -> Option<Segment> {
        let Some(timing) = self.timing else {
            self.dropped += 1;
            return None;
        };
        if usize::from(frame.track) >= self.tracks.len() {
            self.dropped += 1;
            return None;
        }
        let on_timing = frame.track == timing;
        let starts_segment = if self.has_video {
            on_timing && frame.keyframe
        } else {
            on_timing
        };

        let Some(b) = self.building.as_mut() else {
            if !starts_segment {
                self.dropped += 1;
                return None;
            }
            self.start_building(frame);
            return None;
        };

        let over = frame.dts - b.start >= self.cfg.max || b.bytes + frame.data.len() > MAX_SEGMENT_BYTES;
        if !on_timing && over {
            // The timing track is quiet (or the segment is huge): cut here.
            let end = frame.dts.max(b.start + 1);
            let closed = self.finish(end);
            self.start_building(frame);
            return closed;
        }
        if on_timing {
            let elapsed = frame.dts - b.start;
            let cut = (starts_segment && elapsed >= self.cfg.target) || over;
            if cut {
                let closed = self.finish(frame.dts);
                self.start_building(frame);
                return closed;
            }
            if frame.dts > b.last_dts {
                b.last_step = frame.dts - b.last_dts;
            }
            b.last_dts = frame.dts;
        }
        b.bytes += frame.data.len();
        b.frames.push(frame);
        None
    }

    /// Closes the running segment at end of input.
    pub fn flush(&mut self) -> Option<Segment> {
        self.close()
    }

    fn start_building(&mut self, frame: Frame) {
        self.building = Some(Building {
            start: frame.dts,
            discontinuity: std::mem::take(&mut self.pending_discontinuity),
            last_dts: frame.dts,
            last_step: 0,
            bytes: frame.data.len(),
            frames: vec![frame],
        });
    }

    /// Closes the running segment, estimating its end from the last frame step.
    fn close(&mut self) -> Option<Segment> {
        let b = self.building.as_ref()?;
        let step = if b.last_step > 0 { b.last_step } else { CLOCK_HZ / 25 };
        let end = b.last_dts + step;
        self.finish(end)
    }

    fn finish(&mut self, end: i64) -> Option<Segment> {
        let b = self.building.take()?;
        let seg = Segment {
            // Numbered by the stream, not here.
            seq: 0,
            start: b.start,
            duration: (end - b.start).max(1),
            discontinuity: b.discontinuity,
            target_duration: self.target_duration(),
            tracks: self.tracks.clone(),
            frames: b.frames,
        };
        self.emitted = true;
        Some(seg)
    }
}

/// True when `new` only fills in parameters that were unknown in `old`.
fn is_refinement(old: &[Track], new: &[Track]) -> bool {
    !old.is_empty()
        && old.len() == new.len()
        && old.iter().zip(new).all(|(o, n)| {
            o.id == n.id
                && o.codec == n.codec
                && (o.params == n.params
                    || o.params
                        == TrackParams {
                            language: o.params.language.clone(),
                            ..TrackParams::default()
                        })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Codec, TrackParams};
    use bytes::Bytes;
    use proptest::prelude::*;

    const T0: i64 = 1_763_769_600 * CLOCK_HZ;
    const FRAME: i64 = 3600; // 25 fps

    fn tracks(video: bool) -> Arc<[Track]> {
        let mut v = Vec::new();
        if video {
            v.push(Track {
                id: 0,
                codec: Codec::H264,
                params: TrackParams::default(),
            });
        }
        v.push(Track {
            id: v.len() as u16,
            codec: Codec::Aac,
            params: TrackParams::default(),
        });
        Arc::from(v)
    }

    fn f(track: u16, dts: i64, keyframe: bool) -> Frame {
        Frame {
            track,
            dts,
            pts: dts,
            keyframe,
            data: Bytes::from_static(b"x"),
        }
    }

    /// Video at 25 fps with a keyframe every `gop` frames, audio beside it.
    fn feed(s: &mut Segmenter, frames: i64, gop: i64, from: i64) -> Vec<Segment> {
        let mut out = Vec::new();
        for i in from..from + frames {
            out.extend(s.push(f(0, T0 + i * FRAME, i % gop == 0)));
            out.extend(s.push(f(1, T0 + i * FRAME + 100, true)));
        }
        out
    }

    #[test]
    fn cuts_at_first_keyframe_after_target() {
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        assert!(s.set_tracks(tracks(true)).is_none());
        // Keyframe every 1.2 s: cuts land at 2.4 s (frames 60, 120, 180, 240).
        let segs = feed(&mut s, 250, 30, 0);
        assert_eq!(segs.len(), 4);
        for (i, seg) in segs.iter().enumerate() {
            assert_eq!(seg.seq, 0, "the stream numbers segments, not the segmenter");
            assert_eq!(seg.duration, 60 * FRAME);
            assert_eq!(seg.start, T0 + i as i64 * 60 * FRAME);
            assert!(seg.frames[0].keyframe && seg.frames[0].track == 0);
            assert!(!seg.discontinuity);
            assert_eq!(seg.frames.len(), 120);
        }
    }

    #[test]
    fn waits_for_first_keyframe() {
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        s.set_tracks(tracks(true));
        // Stream starts mid-GOP: 10 video + 10 audio frames before the keyframe.
        let segs = feed(&mut s, 200, 50, 40);
        assert_eq!(s.dropped(), 20);
        assert_eq!(segs[0].start, T0 + 50 * FRAME);
    }

    #[test]
    fn caps_segments_without_keyframes() {
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        s.set_tracks(tracks(true));
        // One keyframe, then 20 s without: capped at 6 s (frames 150, 300, 450).
        let segs = feed(&mut s, 500, 1000, 0);
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[0].duration, 6 * CLOCK_HZ);
        assert!(!segs[1].frames[0].keyframe);
    }

    #[test]
    fn a_quiet_timing_track_does_not_grow_a_segment_forever() {
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        s.set_tracks(tracks(true));
        // One video keyframe, then 60 s of audio only (track 1, 1920 ticks apart).
        assert!(s.push(f(0, 0, true)).is_none());
        let mut segs = Vec::new();
        for i in 1..(60 * CLOCK_HZ / 1920) {
            segs.extend(s.push(f(1, i * 1920, false)));
        }
        assert!(segs.len() >= 9, "cut every 6 s: {}", segs.len());
        assert!(
            segs.iter().all(|g| g.duration <= 6 * CLOCK_HZ + 1920),
            "{:?}",
            segs.iter().map(|g| g.duration).collect::<Vec<_>>()
        );
        // And a flood of huge frames is cut by size.
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        s.set_tracks(tracks(true));
        let big = |dts| Frame {
            data: Bytes::from(vec![0u8; 8 << 20]),
            ..f(0, dts, dts == 0)
        };
        let mut cut = Vec::new();
        for i in 0..20 {
            cut.extend(s.push(big(i * 10)));
        }
        assert!(!cut.is_empty());
        assert!(cut.iter().all(|g| g.payload_bytes() <= MAX_SEGMENT_BYTES));
    }

    #[test]
    fn audio_only_cuts_on_duration() {
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        s.set_tracks(tracks(false));
        let mut segs = Vec::new();
        for i in 0..1000 {
            segs.extend(s.push(f(0, T0 + i * 1920, true)));
        }
        // 1000 AAC frames of 1920 ticks = 21.3 s.
        assert_eq!(segs.len(), 10);
        for seg in &segs {
            assert!(seg.duration >= 2 * CLOCK_HZ && seg.duration < 2 * CLOCK_HZ + 1920);
        }
    }

    #[test]
    fn discontinuity_closes_and_flags_the_next_segment() {
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        s.set_tracks(tracks(true));
        let mut segs = feed(&mut s, 60, 25, 0);
        let closed = s.discontinuity().expect("running segment closed");
        assert_eq!(closed.duration, 10 * FRAME, "closed at last frame + one frame step");
        segs.push(closed);
        segs.extend(feed(&mut s, 200, 25, 1000));
        segs.extend(s.flush());
        let flagged: Vec<bool> = segs.iter().map(|s| s.discontinuity).collect();
        assert_eq!(flagged.iter().filter(|d| **d).count(), 1);
        assert!(segs[2].discontinuity, "first segment after the break");
    }

    #[test]
    fn track_change_is_a_discontinuity_but_first_tracks_are_not() {
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        assert!(s.set_tracks(tracks(true)).is_none());
        feed(&mut s, 60, 25, 0);
        assert!(s.set_tracks(tracks(true)).is_none(), "same tracks change nothing");
        let closed = s.set_tracks(tracks(false)).expect("closed on change");
        assert!(!closed.discontinuity);
        let next = (0..200).find_map(|i| s.push(f(0, T0 + 100 * CLOCK_HZ + i * 1920, true)));
        assert!(next.expect("audio segment").discontinuity);
    }

    #[test]
    fn learning_unknown_params_is_not_a_cut() {
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        s.set_tracks(tracks(true));
        let mut segs = feed(&mut s, 60, 25, 0);
        let mut known: Vec<Track> = tracks(true).to_vec();
        known[1].params.sample_rate = 48_000;
        known[1].params.codec_string = Some("mp4a.40.2".into());
        assert!(s.set_tracks(Arc::from(known.clone())).is_none(), "no cut");
        segs.extend(feed(&mut s, 100, 25, 60));
        assert!(segs.iter().all(|x| !x.discontinuity));
        assert_eq!(segs.last().map(|x| x.tracks[1].params.sample_rate), Some(48_000));
        // A real change of known parameters is a cut.
        known[1].params.sample_rate = 44_100;
        assert!(s.set_tracks(Arc::from(known)).is_some());
    }

    proptest! {
        /// For any keyframe pattern: every video segment starts with a
        /// keyframe unless capped, durations are positive and segments tile
        /// the timeline without overlap.
        #[test]
        fn segments_tile_the_timeline(kf in proptest::collection::vec(proptest::bool::weighted(0.05), 10..2000)) {
            let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
            s.set_tracks(tracks(true));
            let mut segs = Vec::new();
            for (i, k) in kf.iter().enumerate() {
                segs.extend(s.push(f(0, T0 + i as i64 * FRAME, *k)));
            }
            segs.extend(s.flush());
            for w in segs.windows(2) {
                prop_assert_eq!(w[0].start + w[0].duration, w[1].start);
            }
            for seg in &segs {
                prop_assert!(seg.duration > 0);
                prop_assert!(seg.duration <= 6 * CLOCK_HZ + FRAME);
                prop_assert!(seg.frames[0].keyframe || seg.duration >= 0);
            }
            let total: usize = segs.iter().map(|s| s.frames.len()).sum();
            prop_assert_eq!(total + s.dropped() as usize, kf.len());
        }
    }
}

//! Timeline: maps an input's raw 33-bit PES timestamps onto strom's UTC
//! timeline (90 kHz ticks since the Unix epoch) that never wraps.
//!
//! One `Timeline` serves one stream. Each input session (one connection, one
//! file loop, one publisher) is a run of raw timestamps; the timeline unwraps
//! them against a single reference for the whole program (audio and video stay
//! in sync) and adds an offset chosen when the run is anchored.
//!
//! Invariants:
//! - Output DTS per track strictly increases; a frame that would break this is
//!   dropped and counted instead of being passed on.
//! - An anchor (first frame, input switch, or a jump in the source) maps the
//!   frame to `max(now, last output + gap)`, so the output never goes back in
//!   time and stays close to wall-clock UTC. Every anchor after the first is
//!   reported as a discontinuity.
//! - Time is passed in (`now_utc`), never read here, so tests run on a virtual clock.

use crate::frame::{Frame, CLOCK_HZ};
use crate::ts::{wrap_delta, TS_WRAP};

/// Tuning for jump detection. Defaults suit broadcast MPEG-TS.
#[derive(Clone, Copy, Debug)]
pub struct TimelineConfig {
    /// A timestamp further behind the run's newest one than this is a jump back.
    /// Audio and video of one program are interleaved within about a second.
    pub max_backward: i64,
    /// A timestamp further ahead of the run's newest one than this is a jump forward.
    pub max_forward: i64,
    /// When the mapped time drifts further than this from wall-clock UTC the
    /// run is re-anchored (source clock drift, or a source bursting its backlog).
    pub max_drift: i64,
    /// Gap left after the last output frame when a run is re-anchored.
    pub anchor_gap: i64,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        TimelineConfig {
            max_backward: 2 * CLOCK_HZ,
            max_forward: 5 * CLOCK_HZ,
            max_drift: 30 * CLOCK_HZ,
            anchor_gap: CLOCK_HZ / 25,
        }
    }
}

/// Why the timeline re-anchored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnchorReason {
    /// First frame of the stream.
    Start,
    /// The caller started a new run (input switch or reconnect).
    NewRun,
    /// The source's timestamps jumped backwards.
    JumpBack,
    /// The source's timestamps jumped forward.
    JumpForward,
    /// The mapped time drifted too far from wall-clock UTC.
    Drift,
}

/// The outcome of mapping one frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Mapped {
    /// The frame on the UTC timeline. `anchor` is set when this frame started
    /// a new mapping; anything but `Start` means a discontinuity.
    Frame { frame: Frame, anchor: Option<AnchorReason> },
    /// The frame would have gone back in time on its track and was dropped.
    Dropped,
}

#[derive(Clone, Copy, Debug)]
struct Run {
    /// Newest unwrapped source DTS of this run, any track.
    newest: i64,
    /// UTC = unwrapped + offset.
    offset: i64,
}

/// Maps raw frames of a stream onto the UTC timeline.
#[derive(Debug)]
pub struct Timeline {
    cfg: TimelineConfig,
    run: Option<Run>,
    /// Last output DTS per track id.
    last_dts: Vec<Option<i64>>,
    /// Newest output DTS of any track: where a new run continues from.
    newest_out: Option<i64>,
    anchors: u64,
    dropped: u64,
}

impl Timeline {
    pub fn new(cfg: TimelineConfig) -> Self {
        Timeline {
            cfg,
            run: None,
            last_dts: Vec::new(),
            newest_out: None,
            anchors: 0,
            dropped: 0,
        }
    }

    /// Forgets the current run: the next frame anchors anew and is reported
    /// as a discontinuity (`NewRun`). Call it when switching inputs.
    pub fn new_run(&mut self) {
        self.run = None;
    }

    /// Number of anchors so far (including the first).
    pub fn anchors(&self) -> u64 {
        self.anchors
    }

    /// Frames dropped because they would have gone back in time.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Maps one raw frame (33-bit `dts`/`pts`) to UTC, given the current
    /// wall-clock time in 90 kHz ticks since the epoch.
    pub fn map(&mut self, mut frame: Frame, now_utc: i64) -> Mapped {
        let raw_dts = frame.dts.rem_euclid(TS_WRAP);
        // PTS is coded relative to DTS so that B-frame reordering survives a wrap.
        let cts = wrap_delta(raw_dts, frame.pts);

        let mut anchor = None;
        let unwrapped = match self.run {
            Some(run) => {
                let u = run.newest + wrap_delta(run.newest, raw_dts);
                if u < run.newest - self.cfg.max_backward {
                    anchor = Some(AnchorReason::JumpBack);
                } else if u > run.newest + self.cfg.max_forward {
                    anchor = Some(AnchorReason::JumpForward);
                } else if (u + run.offset - now_utc).abs() > self.cfg.max_drift {
                    anchor = Some(AnchorReason::Drift);
                }
                u
            }
            None => {
                anchor = Some(if self.newest_out.is_none() {
                    AnchorReason::Start
                } else {
                    AnchorReason::NewRun
                });
                raw_dts
            }
        };

        let run = match (anchor, self.run) {
            (None, Some(run)) => Run {
                newest: run.newest.max(unwrapped),
                offset: run.offset,
            },
            _ => {
                self.anchors += 1;
                let target = match self.newest_out {
                    Some(n) => now_utc.max(n + self.cfg.anchor_gap),
                    None => now_utc,
                };
                Run {
                    newest: unwrapped,
                    offset: target - unwrapped,
                }
            }
        };
        self.run = Some(run);

        let dts = unwrapped + run.offset;
        let idx = usize::from(frame.track);
        if self.last_dts.len() <= idx {
            self.last_dts.resize(idx + 1, None);
        }
        // After a re-anchor every track continues from the new offset; only a
        // frame that still lands at or before its track's last one is dropped.
        if let Some(last) = self.last_dts[idx] {
            if dts <= last {
                self.dropped += 1;
                return Mapped::Dropped;
            }
        }
        self.last_dts[idx] = Some(dts);
        self.newest_out = Some(self.newest_out.map_or(dts, |n| n.max(dts)));
        frame.dts = dts;
        frame.pts = dts + cts;
        Mapped::Frame { frame, anchor }
    }
}

impl Timeline {
    /// Maps a frame of a sparse track (subtitles, SCTE-35) onto the current
    /// run, without letting it move the clock: such frames arrive seldom and
    /// may be stamped seconds ahead of or behind the audio and video
    /// (a subtitle shown later, a teletext PES that reused its predecessor's
    /// PTS, cues stamped with the last PCR), so they never anchor, re-anchor
    /// or extend a run, and two of them may share a DTS. `None` when there
    /// is no run yet (no clock to place it on) or the frame is further than
    /// `max_drift` from the run's newest timestamp; the caller counts it.
    /// A DTS behind the track's previous one is held at that one (the frame
    /// keeps its composition offset), so a track's DTS never goes back.
    pub fn map_sparse(&mut self, mut frame: Frame) -> Option<Frame> {
        let run = self.run?;
        let raw_dts = frame.dts.rem_euclid(TS_WRAP);
        let cts = wrap_delta(raw_dts, frame.pts);
        let delta = wrap_delta(run.newest, raw_dts);
        if delta.abs() > self.cfg.max_drift {
            self.dropped += 1;
            return None;
        }
        let mut dts = run.newest + delta + run.offset;
        let idx = usize::from(frame.track);
        if self.last_dts.len() <= idx {
            self.last_dts.resize(idx + 1, None);
        }
        if let Some(last) = self.last_dts[idx] {
            dts = dts.max(last);
        }
        self.last_dts[idx] = Some(dts);
        frame.dts = dts;
        frame.pts = run.newest + delta + run.offset + cts;
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    const NOW: i64 = 1_763_769_600 * CLOCK_HZ; // 2025-11-22T00:00:00Z

    fn raw(track: u16, dts: i64, pts: i64) -> Frame {
        Frame {
            track,
            dts: dts.rem_euclid(TS_WRAP),
            pts: pts.rem_euclid(TS_WRAP),
            keyframe: false,
            data: Bytes::new(),
        }
    }

    fn mapped(m: Mapped) -> (Frame, Option<AnchorReason>) {
        match m {
            Mapped::Frame { frame, anchor } => (frame, anchor),
            Mapped::Dropped => panic!("frame dropped"),
        }
    }

    #[test]
    fn first_frame_anchors_at_now() {
        let mut t = Timeline::new(TimelineConfig::default());
        let (f, a) = mapped(t.map(raw(0, 1000, 4600), NOW));
        assert_eq!(a, Some(AnchorReason::Start));
        assert_eq!(f.dts, NOW);
        assert_eq!(f.pts, NOW + 3600);
        let (f, a) = mapped(t.map(raw(0, 4600, 8200), NOW + 3600));
        assert_eq!(a, None);
        assert_eq!(f.dts, NOW + 3600);
    }

    #[test]
    fn unwraps_across_2_pow_33() {
        let mut t = Timeline::new(TimelineConfig::default());
        let start = TS_WRAP - 10 * 3600;
        let mut prev = None;
        for i in 0..100i64 {
            let d = start + i * 3600;
            let (f, a) = mapped(t.map(raw(0, d, d + 7200), NOW + i * 3600));
            if i > 0 {
                assert_eq!(a, None, "frame {i} re-anchored");
                assert_eq!(f.dts - prev.unwrap_or(0), 3600);
            }
            assert_eq!(f.pts - f.dts, 7200, "cts kept across the wrap");
            prev = Some(f.dts);
        }
        assert_eq!(t.anchors(), 1);
    }

    #[test]
    fn jump_back_is_a_discontinuity_and_time_moves_on() {
        let mut t = Timeline::new(TimelineConfig::default());
        let (a, _) = mapped(t.map(raw(0, 900_000, 900_000), NOW));
        let (b, reason) = mapped(t.map(raw(0, 0, 0), NOW + 3600));
        assert_eq!(reason, Some(AnchorReason::JumpBack));
        assert!(b.dts > a.dts);
    }

    #[test]
    fn jump_forward_is_a_discontinuity() {
        let mut t = Timeline::new(TimelineConfig::default());
        mapped(t.map(raw(0, 0, 0), NOW));
        let (b, reason) = mapped(t.map(raw(0, 60 * CLOCK_HZ, 60 * CLOCK_HZ), NOW + 3600));
        assert_eq!(reason, Some(AnchorReason::JumpForward));
        assert_eq!(b.dts, NOW + 3600, "re-anchored to wall clock, not +60 s");
    }

    #[test]
    fn new_run_continues_after_last_output() {
        let mut t = Timeline::new(TimelineConfig::default());
        mapped(t.map(raw(0, 0, 0), NOW));
        mapped(t.map(raw(0, 3600, 3600), NOW));
        t.new_run();
        // The new input's clock is unrelated; wall clock has not moved.
        let (f, reason) = mapped(t.map(raw(0, 5_000_000, 5_000_000), NOW));
        assert_eq!(reason, Some(AnchorReason::NewRun));
        assert_eq!(f.dts, NOW + 3600 + CLOCK_HZ / 25);
    }

    #[test]
    fn audio_slightly_behind_video_is_not_a_jump() {
        let mut t = Timeline::new(TimelineConfig::default());
        mapped(t.map(raw(0, 90_000, 90_000), NOW));
        let (a, reason) = mapped(t.map(raw(1, 60_000, 60_000), NOW));
        assert_eq!(reason, None);
        assert_eq!(a.dts, NOW - 30_000);
    }

    #[test]
    fn backwards_frame_on_a_track_is_dropped() {
        let mut t = Timeline::new(TimelineConfig::default());
        mapped(t.map(raw(0, 10_000, 10_000), NOW));
        assert_eq!(t.map(raw(0, 9_000, 9_000), NOW), Mapped::Dropped);
        assert_eq!(t.dropped(), 1);
    }

    #[test]
    fn drift_from_wall_clock_re_anchors() {
        let mut t = Timeline::new(TimelineConfig::default());
        mapped(t.map(raw(0, 0, 0), NOW));
        // Source time advances 1 s while the wall clock advanced 40 s.
        let (f, reason) = mapped(t.map(raw(0, CLOCK_HZ, CLOCK_HZ), NOW + 40 * CLOCK_HZ));
        assert_eq!(reason, Some(AnchorReason::Drift));
        assert_eq!(f.dts, NOW + 40 * CLOCK_HZ);
    }

    #[test]
    fn sparse_frames_never_move_the_clock() {
        let mut t = Timeline::new(TimelineConfig::default());
        assert_eq!(t.map_sparse(raw(2, 0, 0)), None, "no run yet: nothing to place it on");
        mapped(t.map(raw(0, 1000, 1000), NOW));
        // A subtitle 2.5 s ahead and another 3 s behind: placed, no anchor.
        let ahead = t.map_sparse(raw(2, 1000 + 225_000, 1000 + 225_000)).expect("placed");
        assert_eq!(ahead.dts, NOW + 225_000);
        let behind = t.map_sparse(raw(3, 1000 - 270_000, 1000 - 270_000)).expect("placed");
        assert_eq!(behind.dts, NOW - 270_000);
        // Two cues with one DTS both pass; one going back is held.
        let a = t.map_sparse(raw(4, 5000, 95_000)).expect("placed");
        let b = t.map_sparse(raw(4, 5000, 5000)).expect("placed");
        let c = t.map_sparse(raw(4, 4000, 4000)).expect("placed");
        assert_eq!((a.dts, a.pts), (NOW + 4000, NOW + 94_000), "splice time kept");
        assert_eq!(b.dts, a.dts);
        assert_eq!(c.dts, a.dts, "held, not dropped");
        // The clock did not move: the next video frame maps without a jump.
        match t.map(raw(0, 4600, 4600), NOW) {
            Mapped::Frame { frame, anchor } => {
                assert_eq!(anchor, None);
                assert_eq!(frame.dts, NOW + 3600);
            }
            Mapped::Dropped => panic!("dropped"),
        }
        assert_eq!(t.anchors(), 1);
        // Too far from the run: refused and counted.
        assert_eq!(t.map_sparse(raw(2, 1000 + 40 * CLOCK_HZ, 0)), None);
        assert_eq!(t.dropped(), 1);
    }

    proptest! {
        /// Whatever the raw timestamps, output DTS per track strictly increases
        /// and never lands before the first anchor.
        #[test]
        fn output_is_monotonic_per_track(steps in proptest::collection::vec((0u16..3, -200_000i64..400_000, 0i64..20_000), 1..300),
                                         start in 0i64..TS_WRAP) {
            let mut t = Timeline::new(TimelineConfig::default());
            let mut raw_dts = start;
            let mut now = NOW;
            let mut last = [i64::MIN; 3];
            for (track, step, cts) in steps {
                raw_dts += step;
                now += 3600;
                if let Mapped::Frame { frame, .. } = t.map(raw(track, raw_dts, raw_dts + cts), now) {
                    prop_assert!(frame.dts > last[usize::from(track)]);
                    // Interleaved tracks may sit up to `max_backward` behind the anchor.
                    prop_assert!(frame.dts >= NOW - 2 * CLOCK_HZ);
                    prop_assert_eq!(frame.pts - frame.dts, cts);
                    last[usize::from(track)] = frame.dts;
                }
            }
        }

        /// A steady stream crossing the 33-bit wrap anchors exactly once.
        #[test]
        fn steady_stream_never_re_anchors(start in 0i64..TS_WRAP, n in 1usize..2000) {
            let mut t = Timeline::new(TimelineConfig::default());
            for i in 0..n as i64 {
                let d = start + i * 3003;
                let m = t.map(raw((i % 2) as u16, d, d), NOW + i * 3003);
                let ok = matches!(m, Mapped::Frame { .. });
                prop_assert!(ok);
            }
            prop_assert_eq!(t.anchors(), 1);
        }
    }
}

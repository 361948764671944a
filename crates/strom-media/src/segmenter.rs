//! Segmenter: cuts the UTC-timed frame run of one stream into segments of
//! whole GOPs, each starting at a random access point (RAP), under one
//! `EXT-X-TARGETDURATION` that never changes.
//!
//! The **timing track** is the first video track, else the first audio track;
//! subtitle and data tracks (teletext, DVB subtitles, SCTE-35) never time or
//! cut segments. On a video timing track a RAP is a frame with
//! `Frame::keyframe` (an H.264 IDR or recovery point, an H.265 IRAP); on an
//! audio timing track every frame is a RAP.
//!
//! Rules:
//! - **Never cut without a RAP.** A segment starts with a RAP on the timing
//!   track (its first frame) and is cut only at the next segment's RAP. A GOP
//!   longer than the target gives a segment as long as the GOP. Frames that
//!   arrive while no segment is open are dropped until a RAP starts one.
//! - **One target duration, D.** D (whole seconds, stamped on every segment
//!   as `Segment::target_duration`) is fixed when the first segment closes:
//!   the largest of ⌈target⌉, the longest recent RAP interval rounded up
//!   (a first segment of more than 8 intervals has them all shorter than the
//!   target, so that is the longest seen), and the first segment's duration
//!   rounded to the nearest second. The first GOPs are learned before
//!   anything is published, so D is sized from the source, not from config
//!   alone. D then never changes for the segmenter's life, as RFC 8216
//!   §4.3.3.1 requires of a playlist, across discontinuities and track
//!   changes included.
//! - **Cutting.** Before D is fixed, the segment is cut at the first RAP at or
//!   after `target`. After, at a RAP at elapsed `e` it is cut when `e ≥ target`,
//!   or, early, when `e ≥ target / 2` and waiting for the next RAP could
//!   overflow D: `e + g` would round above D, where `g`, the estimate of the
//!   next RAP interval, is the longest of the last [`RECENT_RAP_INTERVALS`]
//!   (8) RAP intervals learned. So every segment rounds to at most D while
//!   the source's RAP intervals stay within its recent ones.
//!   - *Recent, not all-time:* a one-off long GOP (a scene cut, an encoder
//!     hiccup) shortens segments only until 8 more RAP intervals have
//!     passed; an all-time maximum would cut at every RAP for good.
//!   - *Not below `target / 2`:* on sources where every frame is a RAP
//!     (audio, all-intra video) an estimate near D would otherwise cut at
//!     every frame, giving frame-sized segments whose media sequence numbers
//!     run ahead of the clock. Half the target is the shortest segment the
//!     early cut makes, so at most about twice as many segments are made as
//!     at the target; an early cut there still leaves room for a next GOP of
//!     up to D + 0.5 s − target/2. Below it a RAP closes the segment only at
//!     `e ≥ target`, and a long GOP arriving then is an overrun (counted).
//!     A source with a steady GOP is never affected: its segments all equal
//!     the first.
//!   - *Gaps are not GOPs:* a DTS step between consecutive timing-track
//!     frames over [`GAP_MIN`] (0.5 s) and over [`GAP_STEP_FACTOR`] (4) times
//!     the previous step is a gap (packets lost while timestamps ran on,
//!     such as a UDP outage shorter than the source timeout): the RAP
//!     interval is measured afresh from the next RAP, so the hole is never
//!     learned. Nor is an interval over `max_gop`, or one across a
//!     discontinuity or end of input.
//!
//!   A source that later makes a GOP longer than its recent ones (or longer
//!   than D allows) still gets its segment cut only at a RAP (never
//!   undecodable): it is published longer than D, counted in
//!   [`SegmenterStats::target_overruns`], and D stays as it is. So is a
//!   segment that holds a gap. Raising D mid-playlist would break players
//!   that sized their buffers from it; an overrun is the smaller harm and is
//!   visible in the counters.
//! - **No RAP for too long.** A segment that reaches `max_gop` from its start,
//!   or [`MAX_SEGMENT_BYTES`], while the timing track is still sending frames
//!   but no RAP to close it, is dropped whole and counted
//!   ([`SegmenterStats::no_rap_segments`], [`SegmenterStats::no_rap_frames`]):
//!   it would be far longer than D. The next segment starts at the next RAP,
//!   flagged `discontinuity`. [`Segmenter::waiting_for_rap_since`] says since
//!   when the stream has lacked a RAP, so the API can report it.
//! - **Timing track quiet** (its PID vanished, other tracks continue): after
//!   [`TIMING_QUIET`] without a timing-track frame, the segment is cut at the
//!   first audio or video frame at or after `target` (or at any frame past
//!   `max_gop` or [`MAX_SEGMENT_BYTES`]) and published, so memory stays
//!   bounded and the other tracks keep flowing. The next segment starts with
//!   that frame; timing-track frames are then dropped until a RAP (counted
//!   in [`SegmenterStats::waiting_frames`]), so no segment ever starts or
//!   continues its timing track with a non-RAP. The outage is noticed
//!   [`TIMING_QUIET`] late, so the segment open when it began may run over D
//!   (counted).
//! - A discontinuity (input switch, timestamp jump, track change) closes the
//!   running segment; the next segment carries `discontinuity` and starts at
//!   the next RAP.
//! - The segmenter does not number segments: every segment it returns has
//!   `seq: 0`. The stream numbers them (the node's pipeline assigns media
//!   sequence numbers, from UTC or persisted state), so one owner holds that fact.
//! - Every frame pushed is either in a returned segment, in the open one, or
//!   counted in [`SegmenterStats`]: frames in = frames out + [`Segmenter::dropped`].

use crate::frame::{Frame, Segment, Track, TrackKind, TrackParams, CLOCK_HZ};
use std::sync::Arc;

/// Frame steps of the timing track by which a RAP may fall short of the
/// target and still close a segment (see `Segmenter::target_slack`).
pub const TARGET_SLACK_FRAMES: i64 = 3;

/// Bytes a segment may hold: each frame's payload plus [`FRAME_OVERHEAD`].
/// A segment that would grow past it without a RAP to close it is dropped
/// (or, with the timing track quiet, cut). The same as the cluster wire
/// format's default message limit; the per-frame allowance exceeds the
/// wire's frame header, so a segment's message can exceed that limit only
/// by its track descriptions.
pub const MAX_SEGMENT_BYTES: usize = 64 << 20;

/// Bytes counted per frame on top of its payload against
/// [`MAX_SEGMENT_BYTES`]: about what a buffered [`Frame`] costs beside its
/// data, so a flood of tiny frames is bounded too.
pub const FRAME_OVERHEAD: usize = 64;

/// How long (90 kHz ticks) the timing track may send nothing while other
/// tracks continue before it counts as quiet: 2 s, or twice its last frame
/// interval if that is longer (slide-show video). Ordinary interleaving
/// never looks like an outage: the T-STD keeps data at most 1 s in the
/// decoder buffers (ISO/IEC 13818-1 §2.4.2), so tracks arrive within about
/// a second of each other.
pub const TIMING_QUIET: i64 = 2 * CLOCK_HZ;

/// How many of the latest RAP intervals the early cut looks at: the longest
/// of them is the estimate of the next one. Eight GOPs is long enough to
/// remember an encoder's occasional long GOP (a scene cut moved the next
/// IDR) for a few segments, and short enough that a one-off long GOP stops
/// shortening segments within about eight GOPs.
pub const RECENT_RAP_INTERVALS: usize = 8;

/// Shortest DTS step (90 kHz ticks) between consecutive timing-track frames
/// that counts as a gap in the track (0.5 s), whatever its frame step. A
/// step is a gap when it is over this and over [`GAP_STEP_FACTOR`] times
/// the track's last frame step.
pub const GAP_MIN: i64 = CLOCK_HZ / 2;

/// A timing-track DTS step over this many times the previous step (and over
/// [`GAP_MIN`]) is a gap: packets lost with timestamps running on across
/// the hole (a UDP outage shorter than the source timeout), not a frame
/// interval or a GOP.
pub const GAP_STEP_FACTOR: i64 = 4;

/// Durations in 90 kHz ticks.
#[derive(Clone, Copy, Debug)]
pub struct SegmenterConfig {
    /// Cut at the first RAP at or after this much (and see the module rules).
    pub target: i64,
    /// Longest a segment may grow from its first frame without a RAP to
    /// close it before it is dropped (timing track active) or cut (quiet).
    /// Taken as at least `target`.
    pub max_gop: i64,
}

impl SegmenterConfig {
    /// A config for a target duration in ticks, with `max_gop` the larger of
    /// 30 s and 10 × target: well above the GOP of any encoder set up for
    /// live delivery (a 10 s GOP is already unusually long), so it only
    /// catches sources that have stopped sending RAPs.
    pub fn with_target(target: i64) -> Self {
        SegmenterConfig {
            target,
            max_gop: (30 * CLOCK_HZ).max(target.saturating_mul(10)),
        }
    }
}

/// What the segmenter had to drop or could not fit, for metrics and the API.
/// All counters only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmenterStats {
    /// Frames dropped waiting for a RAP on the timing track: before the first
    /// segment, after a discontinuity or a dropped segment, and timing-track
    /// frames after a quiet cut.
    pub waiting_frames: u64,
    /// Frames dropped because there were no tracks yet, no track can time
    /// segments (only subtitle and data tracks), or their track is not in
    /// the track set.
    pub untracked_frames: u64,
    /// Segments dropped because no RAP closed them within `max_gop` or
    /// [`MAX_SEGMENT_BYTES`].
    pub no_rap_segments: u64,
    /// Frames in those segments (and the frame that found them over the bound).
    pub no_rap_frames: u64,
    /// Segments published whose duration rounds above the declared target
    /// duration (a GOP longer than the one learned, or a quiet timing track
    /// noticed late).
    pub target_overruns: u64,
}

impl SegmenterStats {
    /// Every frame dropped, whatever the reason.
    pub fn dropped_frames(&self) -> u64 {
        self.waiting_frames + self.untracked_frames + self.no_rap_frames
    }
}

#[derive(Debug)]
struct Building {
    start: i64,
    discontinuity: bool,
    frames: Vec<Frame>,
    /// Track of the first frame: the timing track, or after a quiet cut the
    /// track of the frame that opened the segment.
    lead: u16,
    /// DTS of the last frame on `lead` and its last observed frame interval,
    /// to estimate the segment's end when it is closed without a next frame.
    last_dts: i64,
    last_step: i64,
    /// Bytes counted against [`MAX_SEGMENT_BYTES`].
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
    /// Track whose RAPs and DTS drive cutting: first video, else first audio.
    timing: Option<u16>,
    /// On a video timing track only keyframes are RAPs; on audio every frame is.
    timing_is_video: bool,
    building: Option<Building>,
    /// The next segment is a discontinuity.
    pending_discontinuity: bool,
    /// At least one segment was emitted, so a later break is a discontinuity.
    emitted: bool,
    /// EXT-X-TARGETDURATION in seconds, fixed when the first segment closed.
    declared: Option<u32>,
    /// The last [`RECENT_RAP_INTERVALS`] RAP intervals learned on the timing
    /// track (ticks; 0 = none yet), written round-robin at `recent_next`.
    /// Intervals across a gap, a break or an outage over `max_gop` are not
    /// learned.
    recent: [i64; RECENT_RAP_INTERVALS],
    recent_next: usize,
    /// DTS of the last RAP on the timing track in this run.
    last_rap: Option<i64>,
    /// DTS of the last timing-track frame in this run and the interval before it.
    last_timing: Option<i64>,
    timing_step: i64,
    /// After a quiet cut: the open segment has no timing RAP yet, and
    /// timing-track frames are dropped until one.
    timing_needs_rap: bool,
    /// Since when a RAP has been missing, while none is open to wait on.
    wait_since: Option<i64>,
    /// Highest DTS pushed.
    latest: Option<i64>,
    stats: SegmenterStats,
}

/// Whole seconds of `ticks`, rounded up.
fn ceil_secs(ticks: i64) -> u32 {
    u32::try_from(ticks.max(0).unsigned_abs().div_ceil(CLOCK_HZ as u64)).unwrap_or(u32::MAX)
}

/// True when `ticks` rounds to the nearest whole second (halves up) at most
/// `d` seconds: the EXTINF rule of RFC 8216 §4.3.3.1.
fn fits(ticks: i64, d: u32) -> bool {
    i128::from(ticks) < i128::from(d) * i128::from(CLOCK_HZ) + i128::from(CLOCK_HZ / 2)
}

impl Segmenter {
    /// A segmenter with no tracks yet: frames are dropped until [`Segmenter::set_tracks`].
    pub fn new(cfg: SegmenterConfig) -> Self {
        let target = cfg.target.max(1);
        Segmenter {
            cfg: SegmenterConfig {
                target,
                max_gop: cfg.max_gop.max(target),
            },
            tracks: Arc::from(Vec::new()),
            timing: None,
            timing_is_video: false,
            building: None,
            pending_discontinuity: false,
            emitted: false,
            declared: None,
            recent: [0; RECENT_RAP_INTERVALS],
            recent_next: 0,
            last_rap: None,
            last_timing: None,
            timing_step: 0,
            timing_needs_rap: false,
            wait_since: None,
            latest: None,
            stats: SegmenterStats::default(),
        }
    }

    /// Frames dropped for any reason ([`SegmenterStats::dropped_frames`]).
    pub fn dropped(&self) -> u64 {
        self.stats.dropped_frames()
    }

    /// Drop and overrun counters.
    pub fn stats(&self) -> SegmenterStats {
        self.stats
    }

    /// `EXT-X-TARGETDURATION` in whole seconds stamped on every segment: the
    /// declared value once the first segment has closed (then it never
    /// changes), before that the provisional one (⌈target⌉, or the longest
    /// recent RAP interval rounded up if longer). At least 1.
    pub fn target_duration(&self) -> u32 {
        self.declared.unwrap_or_else(|| self.provisional_target())
    }

    /// True once the target duration is declared (the first segment closed).
    pub fn target_duration_fixed(&self) -> bool {
        self.declared.is_some()
    }

    fn provisional_target(&self) -> u32 {
        ceil_secs(self.cfg.target).max(ceil_secs(self.gop_estimate())).max(1)
    }

    /// The expected longest wait from one RAP to the next (ticks): the
    /// longest of the last [`RECENT_RAP_INTERVALS`] RAP intervals learned,
    /// 0 before any.
    fn gop_estimate(&self) -> i64 {
        self.recent.iter().copied().max().unwrap_or(0)
    }

    fn learn_rap_interval(&mut self, interval: i64) {
        if let Some(slot) = self.recent.get_mut(self.recent_next) {
            *slot = interval;
        }
        self.recent_next = (self.recent_next + 1) % RECENT_RAP_INTERVALS;
    }

    /// UTC DTS of the first frame of the segment being built, if any.
    pub fn open_since(&self) -> Option<i64> {
        self.building.as_ref().map(|b| b.start)
    }

    /// UTC (90 kHz ticks since the Unix epoch) since when the stream has had
    /// no RAP on its timing track to start or close a segment, or `None` when
    /// segmenting normally: frames are being dropped waiting for a RAP, or
    /// the open segment has gone longer without one than any recent GOP
    /// (the last [`RECENT_RAP_INTERVALS`]) and than a segment may last
    /// (D + 0.5 s). The value is the last RAP's DTS, or the first dropped
    /// frame's if there was none; "no random access point for N s" is the
    /// caller's clock minus it.
    pub fn waiting_for_rap_since(&self) -> Option<i64> {
        match &self.building {
            None => self.wait_since,
            Some(_) if self.timing_needs_rap => self.wait_since,
            Some(b) => {
                let since = self.last_rap.unwrap_or(b.start).max(b.start);
                let bound = self
                    .gop_estimate()
                    .max(i64::from(self.target_duration()) * CLOCK_HZ + CLOCK_HZ / 2);
                let latest = self.latest.unwrap_or(since);
                (latest - since > bound).then_some(since)
            }
        }
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
        let closed = self.discontinuity();
        let timing = tracks
            .iter()
            .find(|t| t.kind() == TrackKind::Video)
            .or_else(|| tracks.iter().find(|t| t.kind() == TrackKind::Audio));
        self.timing = timing.map(|t| t.id);
        self.timing_is_video = timing.is_some_and(|t| t.kind() == TrackKind::Video);
        self.tracks = tracks;
        closed
    }

    /// Marks a discontinuity before the next frame: the running segment is
    /// closed (returned) and the next one starts at a RAP, flagged.
    pub fn discontinuity(&mut self) -> Option<Segment> {
        let closed = self.close();
        if self.emitted {
            self.pending_discontinuity = true;
        }
        self.new_run();
        closed
    }

    /// Forgets the timing of the run that ended: intervals across a break
    /// or a pause are not GOPs, and silence across it is not an outage.
    fn new_run(&mut self) {
        self.last_rap = None;
        self.last_timing = None;
        self.timing_step = 0;
        self.timing_needs_rap = false;
    }

    /// Adds one frame (UTC timeline). Returns a segment when this frame closed one.
    pub fn push(&mut self, frame: Frame) -> Option<Segment> {
        let Some(timing) = self.timing else {
            self.stats.untracked_frames += 1;
            return None;
        };
        let Some(kind) = self.tracks.get(usize::from(frame.track)).map(Track::kind) else {
            self.stats.untracked_frames += 1;
            return None;
        };
        self.latest = Some(self.latest.map_or(frame.dts, |l| l.max(frame.dts)));
        let on_timing = frame.track == timing;
        // Whether the timing track had gone quiet before this frame.
        let quiet = !on_timing && self.timing_quiet(frame.dts);
        let rap = on_timing && (!self.timing_is_video || frame.keyframe);
        if on_timing {
            if let Some(prev) = self.last_timing {
                let step = frame.dts - prev;
                if step > 0 {
                    if step > GAP_MIN.max(self.timing_step.saturating_mul(GAP_STEP_FACTOR)) {
                        // A hole in the track (lost packets, timestamps
                        // running on): the interval from the last RAP spans
                        // it and is not the source's GOP, so measuring
                        // starts again here.
                        self.last_rap = None;
                    }
                    // The gap step is kept as the step, so a source that
                    // really slows down (a slide show) is one gap, not many.
                    self.timing_step = step;
                }
            }
            self.last_timing = Some(frame.dts);
        }
        if rap {
            if let Some(prev) = self.last_rap {
                let interval = frame.dts - prev;
                // Longer than max_gop is an outage, not the source's GOP.
                if interval > 0 && interval <= self.cfg.max_gop {
                    self.learn_rap_interval(interval);
                }
            }
            self.last_rap = Some(frame.dts);
        }

        let Some(b) = self.building.as_mut() else {
            if rap {
                self.start_building(frame);
            } else {
                self.stats.waiting_frames += 1;
                self.wait_since.get_or_insert(self.last_rap.unwrap_or(frame.dts));
            }
            return None;
        };
        let elapsed = frame.dts - b.start;
        let cost = frame.data.len() + FRAME_OVERHEAD;
        let over_bytes = b.bytes + cost > MAX_SEGMENT_BYTES;

        if rap {
            if self.cut_at_rap(elapsed) || over_bytes {
                let closed = self.finish(frame.dts);
                self.start_building(frame);
                return closed;
            }
            // The RAP continues the segment (or brings the timing track back
            // into a segment opened by a quiet cut).
            self.timing_needs_rap = false;
            self.wait_since = None;
            self.append(frame);
            return None;
        }
        if on_timing && self.timing_needs_rap {
            self.stats.waiting_frames += 1;
            return None;
        }
        let over = elapsed >= self.cfg.max_gop || over_bytes;
        let timing_absent = quiet || self.timing_needs_rap;
        if timing_absent && !on_timing {
            let media = matches!(kind, TrackKind::Video | TrackKind::Audio);
            if over || (media && elapsed >= self.cfg.target) {
                // The timing track is gone: publish what there is and go on
                // with the other tracks, so memory stays bounded.
                let since = self.last_rap.unwrap_or(frame.dts);
                let closed = self.finish(frame.dts);
                self.start_building(frame);
                self.timing_needs_rap = true;
                self.wait_since = Some(since);
                return closed;
            }
        } else if over {
            // The timing track is sending, but no RAP closes the segment.
            let dropped = self.building.take().map_or(0, |b| b.frames.len() as u64);
            self.stats.no_rap_segments += 1;
            self.stats.no_rap_frames += dropped + 1;
            self.wait_since = Some(self.last_rap.unwrap_or(frame.dts));
            if self.emitted {
                self.pending_discontinuity = true;
            }
            return None;
        }
        self.append(frame);
        None
    }

    /// Closes the running segment at end of input. Frames pushed after it
    /// start a new run (at a RAP), not flagged as a discontinuity.
    pub fn flush(&mut self) -> Option<Segment> {
        let closed = self.close();
        self.new_run();
        closed
    }

    /// Whether a RAP at `elapsed` into the open segment closes it.
    fn cut_at_rap(&self, elapsed: i64) -> bool {
        if elapsed <= 0 {
            return false;
        }
        if elapsed >= self.cfg.target {
            return true;
        }
        // Just short of the target with the next RAP far off: this one is
        // the RAP at the target (see `target_slack`).
        let slack = self.target_slack();
        if elapsed >= self.cfg.target - slack
            && elapsed.saturating_add(self.gop_estimate()) > self.cfg.target.saturating_add(slack)
        {
            return true;
        }
        // The early cut never makes a segment shorter than half the target:
        // below that, a long GOP expected next is better published as an
        // overrun (counted) than by cutting at every RAP (all-intra video,
        // audio), which would give frame-sized segments and run media
        // sequence numbers ahead of the clock.
        if elapsed < self.cfg.target / 2 {
            return false;
        }
        match self.declared {
            // Waiting for the next RAP could take up to the estimate more.
            Some(d) => !fits(elapsed.saturating_add(self.gop_estimate()), d),
            None => false,
        }
    }

    /// How far short of the target a RAP may come and still count as
    /// reaching it, when the next RAP is further than that past the target:
    /// [`TARGET_SLACK_FRAMES`] frame steps of the timing track, at most a
    /// quarter of the target. With open GOPs the DTS distance
    /// between RAPs wobbles around their PTS distance by the number of
    /// leading pictures (0.96 s, 1.04 s, … for 1 s GOPs), so a RAP that is
    /// 2 s in by presentation time may be 1.92 s in by DTS; without slack
    /// the cut would slip by a whole GOP.
    fn target_slack(&self) -> i64 {
        self.timing_step
            .saturating_mul(TARGET_SLACK_FRAMES)
            .clamp(0, self.cfg.target / 4)
    }

    /// True when the timing track has sent nothing for [`TIMING_QUIET`] (or
    /// twice its frame interval) before `dts`.
    fn timing_quiet(&self, dts: i64) -> bool {
        match self.last_timing {
            Some(last) => dts - last > TIMING_QUIET.max(self.timing_step.saturating_mul(2)),
            None => true,
        }
    }

    fn append(&mut self, frame: Frame) {
        let Some(b) = self.building.as_mut() else {
            return;
        };
        if frame.track == b.lead {
            if frame.dts > b.last_dts {
                b.last_step = frame.dts - b.last_dts;
            }
            b.last_dts = frame.dts;
        }
        b.bytes += frame.data.len() + FRAME_OVERHEAD;
        b.frames.push(frame);
    }

    fn start_building(&mut self, frame: Frame) {
        self.wait_since = None;
        self.timing_needs_rap = false;
        self.building = Some(Building {
            start: frame.dts,
            discontinuity: std::mem::take(&mut self.pending_discontinuity),
            lead: frame.track,
            last_dts: frame.dts,
            last_step: 0,
            bytes: frame.data.len() + FRAME_OVERHEAD,
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
        let duration = (end - b.start).max(1);
        let d = match self.declared {
            Some(d) => d,
            None => {
                // The first segment: declare D from what was learned.
                let rounded = u32::try_from((duration + CLOCK_HZ / 2) / CLOCK_HZ).unwrap_or(u32::MAX);
                let d = self.provisional_target().max(rounded);
                self.declared = Some(d);
                d
            }
        };
        if !fits(duration, d) {
            self.stats.target_overruns += 1;
        }
        let seg = Segment {
            // Numbered by the stream, not here.
            seq: 0,
            start: b.start,
            duration,
            discontinuity: b.discontinuity,
            target_duration: d,
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
    const AAC: i64 = 1920; // 1024 samples at 48 kHz

    fn track(id: u16, codec: Codec) -> Track {
        Track {
            id,
            codec,
            params: TrackParams::default(),
        }
    }

    fn tracks(video: bool) -> Arc<[Track]> {
        let mut v = Vec::new();
        if video {
            v.push(track(0, Codec::H264));
        }
        v.push(track(v.len() as u16, Codec::Aac));
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

    fn seg2() -> Segmenter {
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        assert!(s.set_tracks(tracks(true)).is_none());
        s
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

    fn durations(segs: &[Segment]) -> Vec<i64> {
        segs.iter().map(|s| s.duration).collect()
    }

    /// Every segment starts with a RAP on track 0 and its track-0 frames
    /// start with that RAP.
    fn assert_start_at_raps(segs: &[Segment]) {
        for (i, seg) in segs.iter().enumerate() {
            let first = &seg.frames[0];
            assert!(first.track == 0 && first.keyframe, "segment {i} starts with {first:?}");
        }
    }

    #[test]
    fn cuts_at_first_keyframe_after_target() {
        let mut s = seg2();
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
            assert_eq!(seg.target_duration, 2);
        }
        assert_eq!(s.stats(), SegmenterStats::default());
    }

    #[test]
    fn waits_for_first_keyframe() {
        let mut s = seg2();
        assert_eq!(s.waiting_for_rap_since(), None);
        // Stream starts mid-GOP: 10 video + 10 audio frames before the keyframe.
        let mut segs = feed(&mut s, 5, 50, 40);
        assert_eq!(s.waiting_for_rap_since(), Some(T0 + 40 * FRAME));
        segs.extend(feed(&mut s, 195, 50, 45));
        assert_eq!(s.dropped(), 20);
        assert_eq!(s.stats().waiting_frames, 20);
        assert_eq!(segs[0].start, T0 + 50 * FRAME);
        assert_eq!(s.waiting_for_rap_since(), None);
    }

    #[test]
    fn long_gops_give_whole_gop_segments() {
        // A 10 s GOP with a 2 s target: every segment is one whole GOP, and
        // the target duration is learned from the first one.
        let mut s = seg2();
        assert_eq!(s.target_duration(), 2, "provisional: the configured target");
        assert!(!s.target_duration_fixed());
        let mut segs = feed(&mut s, 1000, 250, 0);
        segs.extend(s.flush());
        assert_eq!(durations(&segs), vec![10 * CLOCK_HZ; 4]);
        assert_start_at_raps(&segs);
        assert!(segs.iter().all(|g| g.target_duration == 10));
        assert!(s.target_duration_fixed());
        assert_eq!(s.stats(), SegmenterStats::default());
        // Ten seconds into a GOP is normal for this source: not reported.
        feed(&mut s, 249, 250, 1000);
        assert_eq!(s.waiting_for_rap_since(), None);
    }

    #[test]
    fn first_segment_sets_the_target_duration() {
        // 1.5 s GOP, 2 s target: segments of two GOPs, 3 s, declared 3.
        let mut s = seg2();
        let segs = feed(&mut s, 400, 38, 0);
        assert!(segs.iter().all(|g| g.duration == 76 * FRAME && g.target_duration == 3));
        // 0.6 s GOP: the first RAP past 2 s is at 2.4 s, which rounds to 2.
        let mut s = seg2();
        let segs = feed(&mut s, 400, 15, 0);
        assert!(segs.iter().all(|g| g.duration == 60 * FRAME && g.target_duration == 2));
        // A fractional target rounds up.
        let mut s = Segmenter::new(SegmenterConfig::with_target(CLOCK_HZ * 3 / 2));
        s.set_tracks(tracks(true));
        assert_eq!(s.target_duration(), 2);
    }

    #[test]
    fn cuts_early_while_a_longer_gop_is_recent() {
        // The first GOP is 2.4 s (learned: D = 3); then GOPs of 1.2 s. At 1.2 s
        // into a segment, waiting up to 2.4 s more could reach 3.6 s, which
        // rounds to 4 > 3: cut there, while the 2.4 s interval is among the
        // last 8. Once it has passed, segments are cut at the target again.
        let mut s = seg2();
        let mut segs = Vec::new();
        for i in 0..600i64 {
            let key = i == 0 || (i >= 60 && (i - 60) % 30 == 0);
            segs.extend(s.push(f(0, T0 + i * FRAME, key)));
        }
        assert!(segs.iter().all(|g| g.target_duration == 3));
        let mut want = vec![60 * FRAME];
        want.extend([30 * FRAME; RECENT_RAP_INTERVALS - 1]);
        want.resize(segs.len(), 60 * FRAME);
        assert_eq!(durations(&segs), want);
        assert_eq!(s.stats().target_overruns, 0);
    }

    #[test]
    fn a_longer_gop_later_overruns_but_never_changes_the_target() {
        let mut s = seg2();
        let mut segs = feed(&mut s, 100, 25, 0);
        // The source switches to 4 s GOPs: segments are whole GOPs, longer
        // than D = 2 allows, counted; D stays.
        segs.extend(feed(&mut s, 400, 100, 100));
        segs.extend(s.flush());
        assert_start_at_raps(&segs);
        assert!(segs.iter().all(|g| g.target_duration == 2));
        let over = segs.iter().filter(|g| !fits(g.duration, 2)).count() as u64;
        assert_eq!(over, 4, "{:?}", durations(&segs));
        assert_eq!(s.stats().target_overruns, over);
        assert_eq!(s.target_duration(), 2);
    }

    #[test]
    fn no_rap_for_too_long_drops_the_segment() {
        let mut s = seg2();
        // 4 s of 1 s GOPs, then 40 s of video without a RAP, then 1 s GOPs.
        let mut segs = feed(&mut s, 100, 25, 0);
        assert_eq!(segs.len(), 1);
        let rap_less = |i: i64| i % 25 == 0 && !(100..1100).contains(&i);
        let mut waiting = None;
        for i in 100..1300 {
            segs.extend(s.push(f(0, T0 + i * FRAME, rap_less(i))));
            segs.extend(s.push(f(1, T0 + i * FRAME + 100, true)));
            if i == 400 {
                // Open since frame 50, no RAP since frame 75: 13 s.
                assert_eq!(s.waiting_for_rap_since(), Some(T0 + 75 * FRAME));
            }
            if i == 1000 {
                waiting = s.waiting_for_rap_since();
            }
        }
        // The segment open when RAPs stopped (from 2 s) is dropped at 32 s.
        assert_eq!(waiting, Some(T0 + 75 * FRAME), "the last RAP");
        let st = s.stats();
        assert_eq!(st.no_rap_segments, 1);
        // 2 s to 32 s: 750 frame pairs, plus the video frame that hit the bound.
        assert_eq!(st.no_rap_frames, 2 * (800 - 50) + 1);
        // 32 s to 44 s waiting for the RAP at frame 1100, minus that frame.
        assert_eq!(st.waiting_frames, 2 * (1100 - 800) - 1);
        assert_eq!(st.dropped_frames(), s.dropped());
        assert_eq!(st.target_overruns, 0);
        assert_eq!(segs.len(), 1 + 3);
        assert_start_at_raps(&segs);
        assert_eq!(segs[1].start, T0 + 1100 * FRAME);
        assert!(segs[1].discontinuity, "frames were lost before it");
        assert!(segs.iter().all(|g| g.target_duration == 2));
        assert_eq!(s.waiting_for_rap_since(), None);
        let open: usize = s.building.as_ref().map_or(0, |b| b.frames.len());
        let out: usize = segs.iter().map(|g| g.frames.len()).sum();
        assert_eq!(out + open + s.dropped() as usize, 2 * 1300);
    }

    #[test]
    fn a_flood_without_raps_is_bounded_by_bytes() {
        static BIG: [u8; 8 << 20] = [0; 8 << 20];
        let mut s = seg2();
        let big = |dts: i64| Frame {
            data: Bytes::from_static(&BIG),
            ..f(0, dts, dts == 0)
        };
        let mut cut = Vec::new();
        for i in 0..40 {
            cut.extend(s.push(big(i * 10)));
            let held = s.building.as_ref().map_or(0, |b| b.bytes);
            assert!(held <= MAX_SEGMENT_BYTES, "{held} bytes held");
        }
        assert!(cut.is_empty(), "nothing without a RAP to close it is published");
        let st = s.stats();
        assert_eq!(st.no_rap_segments, 1);
        assert_eq!(st.no_rap_frames, 8);
        assert_eq!(st.waiting_frames, 32);
        // A RAP then starts a segment and a flood of tiny frames is bounded too.
        let mut s = seg2();
        s.push(f(0, 0, true));
        for _ in 0..(MAX_SEGMENT_BYTES / FRAME_OVERHEAD) {
            s.push(f(0, 0, false));
        }
        assert_eq!(s.stats().no_rap_segments, 1);
        assert!(s.building.is_none());
    }

    #[test]
    fn a_quiet_timing_track_does_not_grow_a_segment_forever() {
        let mut s = seg2();
        // One video keyframe, then 60 s of audio only (track 1, 1920 ticks apart).
        assert!(s.push(f(0, 0, true)).is_none());
        let mut segs = Vec::new();
        for i in 1..(60 * CLOCK_HZ / AAC) {
            segs.extend(s.push(f(1, i * AAC, true)));
        }
        assert!(segs.len() >= 28, "cut every 2 s: {}", segs.len());
        // The first segment is cut once video has been quiet 2 s; the rest
        // are audio-led, cut at the target, so all fit D = 2.
        assert!(
            segs.iter()
                .all(|g| g.duration <= 2 * CLOCK_HZ + 2 * AAC && g.target_duration == 2),
            "{:?}",
            durations(&segs)
        );
        assert!(segs[0].frames[0].keyframe && segs[0].frames[0].track == 0);
        assert!(segs[1..].iter().all(|g| g.frames.iter().all(|x| x.track == 1)));
        assert_eq!(s.stats().target_overruns, 0);
        assert_eq!(s.waiting_for_rap_since(), Some(0), "no RAP since the keyframe at 0");
    }

    #[test]
    fn video_returning_mid_gop_waits_for_a_rap() {
        let mut s = seg2();
        let mut segs = feed(&mut s, 80, 25, 0);
        // Video vanishes at 3.2 s; audio goes on for 10 s.
        for i in 0..(10 * CLOCK_HZ / AAC) {
            segs.extend(s.push(f(1, T0 + 80 * FRAME + i * AAC, true)));
        }
        // Video comes back mid-GOP (RAP every 25 frames from frame 310).
        let back = T0 + 80 * FRAME + 10 * CLOCK_HZ;
        let mut segs_after = Vec::new();
        for i in 0..200 {
            segs_after.extend(s.push(f(0, back + i * FRAME, (i + 15) % 25 == 0)));
            segs_after.extend(s.push(f(1, back + i * FRAME + 10, true)));
        }
        segs.extend(segs_after);
        segs.extend(s.flush());
        // No segment starts, or carries video that starts, with a non-RAP.
        for (n, g) in segs.iter().enumerate() {
            let first_video = g.frames.iter().find(|x| x.track == 0);
            assert!(first_video.is_none_or(|x| x.keyframe), "segment {n}");
            assert!(g.frames[0].track == 1 || g.frames[0].keyframe, "segment {n}");
        }
        // The 10 non-RAP video frames before the RAP were dropped and counted.
        assert_eq!(s.stats().waiting_frames, 10);
        assert!(segs.iter().all(|g| g.target_duration == 2));
        let first_back = segs
            .iter()
            .position(|g| g.frames.iter().any(|x| x.track == 0 && x.dts >= back));
        let g = &segs[first_back.expect("video returned")];
        assert!(g
            .frames
            .iter()
            .filter(|x| x.track == 0)
            .all(|x| x.dts >= back + 10 * FRAME));
    }

    #[test]
    fn subtitle_and_data_tracks_never_time_or_cut() {
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        s.set_tracks(Arc::from(vec![
            track(0, Codec::Teletext),
            track(1, Codec::Scte35),
            track(2, Codec::H264),
            track(3, Codec::Aac),
        ]));
        assert_eq!(s.timing, Some(2));
        // Teletext and SCTE-35 before the first video RAP are dropped like audio.
        assert!(s.push(f(0, T0, true)).is_none());
        assert!(s.push(f(1, T0, true)).is_none());
        assert_eq!(s.stats().waiting_frames, 2);
        let mut segs = Vec::new();
        for i in 0..250i64 {
            segs.extend(s.push(f(2, T0 + i * FRAME, i % 25 == 0)));
            segs.extend(s.push(f(0, T0 + i * FRAME + 1, true)));
            segs.extend(s.push(f(3, T0 + i * FRAME + 2, true)));
        }
        assert!(segs.iter().all(|g| g.frames[0].track == 2 && g.duration == 50 * FRAME));
        // Video stops; only subtitles go on: they don't cut at the target...
        let t = T0 + 250 * FRAME;
        for i in 0..(20 * 25) {
            segs.extend(s.push(f(0, t + i * FRAME, true)));
        }
        let n = segs.len();
        assert_eq!(s.open_since(), Some(T0 + 200 * FRAME));
        // ...only at max_gop (30 s), to bound memory.
        for i in (20 * 25)..(31 * 25) {
            segs.extend(s.push(f(0, t + i * FRAME, true)));
        }
        assert_eq!(segs.len(), n + 1);
        // Without video, the first audio track times the segments.
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        s.set_tracks(Arc::from(vec![track(0, Codec::DvbSubtitle), track(1, Codec::Ac3)]));
        assert_eq!(s.timing, Some(1));
        // Only data: nothing times segments; frames are dropped and counted.
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        s.set_tracks(Arc::from(vec![track(0, Codec::Scte35)]));
        assert!(s.push(f(0, T0, true)).is_none());
        assert_eq!(s.stats().untracked_frames, 1);
    }

    #[test]
    fn audio_only_cuts_on_duration() {
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        s.set_tracks(tracks(false));
        let mut segs = Vec::new();
        for i in 0..1000 {
            segs.extend(s.push(f(0, T0 + i * AAC, true)));
        }
        // 1000 AAC frames of 1920 ticks = 21.3 s.
        assert_eq!(segs.len(), 10);
        for seg in &segs {
            assert!(seg.duration >= 2 * CLOCK_HZ && seg.duration < 2 * CLOCK_HZ + AAC);
            assert_eq!(seg.target_duration, 2);
        }
    }

    #[test]
    fn discontinuity_closes_and_flags_the_next_segment() {
        let mut s = seg2();
        let mut segs = feed(&mut s, 60, 25, 0);
        let closed = s.discontinuity().expect("running segment closed");
        assert_eq!(closed.duration, 10 * FRAME, "closed at last frame + one frame step");
        segs.push(closed);
        segs.extend(feed(&mut s, 200, 25, 1000));
        segs.extend(s.flush());
        let flagged: Vec<bool> = segs.iter().map(|s| s.discontinuity).collect();
        assert_eq!(flagged.iter().filter(|d| **d).count(), 1);
        assert!(segs[2].discontinuity, "first segment after the break");
        assert!(segs.iter().all(|g| g.target_duration == 2));
    }

    #[test]
    fn intervals_across_a_break_are_not_gops() {
        let mut s = seg2();
        feed(&mut s, 100, 25, 0);
        s.discontinuity();
        // 20 s later, same GOP: the gap is not learned as a GOP.
        feed(&mut s, 100, 25, 600);
        assert_eq!(s.gop_estimate(), 25 * FRAME);
        // Nor a pause after end of input (an on-demand stream stopped and restarted).
        s.flush();
        let segs = feed(&mut s, 100, 25, 800);
        assert_eq!(s.gop_estimate(), 25 * FRAME);
        assert!(segs.iter().all(|g| g.duration == 50 * FRAME && !g.discontinuity));
    }

    #[test]
    fn track_change_is_a_discontinuity_but_first_tracks_are_not() {
        let mut s = seg2();
        feed(&mut s, 60, 25, 0);
        assert!(s.set_tracks(tracks(true)).is_none(), "same tracks change nothing");
        let closed = s.set_tracks(tracks(false)).expect("closed on change");
        assert!(!closed.discontinuity);
        let next = (0..200).find_map(|i| s.push(f(0, T0 + 100 * CLOCK_HZ + i * AAC, true)));
        let next = next.expect("audio segment");
        assert!(next.discontinuity);
        assert_eq!(next.target_duration, closed.target_duration, "D survives track changes");
    }

    #[test]
    fn learning_unknown_params_is_not_a_cut() {
        let mut s = seg2();
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

    #[test]
    fn rounding_follows_rfc_8216() {
        assert!(fits(2 * CLOCK_HZ + CLOCK_HZ / 2 - 1, 2));
        assert!(!fits(2 * CLOCK_HZ + CLOCK_HZ / 2, 2), "2.5 s rounds to 3");
        assert!(!fits(i64::MAX, u32::MAX), "no overflow");
        assert!(fits(i64::MIN, 0));
        assert_eq!(ceil_secs(CLOCK_HZ + 1), 2);
        assert_eq!(ceil_secs(-5), 0);
    }

    /// A GOP pattern: video at 25 fps with RAPs at the given intervals (in
    /// frames) after `lead_in` frames without one, AAC muxed beside it.
    fn gop_frames(lead_in: usize, gops: &[i64]) -> Vec<Frame> {
        let mut keys = vec![false; lead_in];
        for &g in gops {
            keys.extend((0..g).map(|k| k == 0));
        }
        let mut out = Vec::new();
        let mut audio = 0;
        for (i, key) in keys.into_iter().enumerate() {
            let dts = T0 + i as i64 * FRAME;
            out.push(f(0, dts, key));
            while T0 + audio * AAC <= dts {
                out.push(f(1, T0 + audio * AAC, true));
                audio += 1;
            }
        }
        out
    }

    fn run(target: i64, frames: Vec<Frame>) -> (Segmenter, Vec<Segment>, usize) {
        let mut s = Segmenter::new(SegmenterConfig::with_target(target));
        s.set_tracks(tracks(true));
        let pushed = frames.len();
        let mut segs: Vec<Segment> = frames.into_iter().filter_map(|x| s.push(x)).collect();
        segs.extend(s.flush());
        (s, segs, pushed)
    }

    fn check_common(s: &Segmenter, segs: &[Segment], pushed: usize) -> Result<(), TestCaseError> {
        let d = s.target_duration();
        for (n, g) in segs.iter().enumerate() {
            prop_assert!(
                g.frames[0].track == 0 && g.frames[0].keyframe,
                "segment {} starts with a RAP",
                n
            );
            prop_assert_eq!(g.target_duration, d);
            prop_assert!(g.duration > 0);
        }
        for w in segs.windows(2) {
            prop_assert_eq!(w[0].start + w[0].duration, w[1].start, "segments tile the timeline");
            // Only the end of input closes a segment short of target / 2.
            prop_assert!(
                w[0].duration >= s.cfg.target / 2,
                "segment at {} of {} ticks",
                w[0].start - T0,
                w[0].duration
            );
        }
        let out: usize = segs.iter().map(|g| g.frames.len()).sum();
        prop_assert_eq!(out + s.dropped() as usize, pushed, "frames in = frames out + drops");
        let over = segs.iter().filter(|g| !fits(g.duration, d)).count() as u64;
        prop_assert_eq!(s.stats().target_overruns, over);
        Ok(())
    }

    /// The RAPs of `frames` (timing track 0) as GOPs: (start, length) in
    /// ticks, the last one running to one frame after the last video frame.
    fn gops_of(frames: &[Frame]) -> Vec<(i64, i64)> {
        let raps: Vec<i64> = frames
            .iter()
            .filter(|x| x.track == 0 && x.keyframe)
            .map(|x| x.dts)
            .collect();
        let end = frames.iter().filter(|x| x.track == 0).map(|x| x.dts + FRAME).max();
        let ends = raps.iter().skip(1).copied().chain(end);
        raps.iter().zip(ends).map(|(a, b)| (*a, b - a)).collect()
    }

    /// Why a segment may round above D: its last GOP started before the
    /// early cut was allowed (under target / 2 into the segment, so a single
    /// GOP too), or it was longer than every one of the last
    /// [`RECENT_RAP_INTERVALS`] GOPs before it (the estimate when it began).
    fn check_overruns(target: i64, gops: &[(i64, i64)], segs: &[Segment]) -> Result<(), TestCaseError> {
        for g in segs.iter().filter(|g| !fits(g.duration, g.target_duration)) {
            let end = g.start + g.duration;
            let last = gops.iter().rposition(|(start, _)| *start >= g.start && *start < end);
            let Some(last) = last else {
                return Err(TestCaseError::fail("a segment without a RAP"));
            };
            let (start, len) = gops[last];
            let estimate = gops[last.saturating_sub(RECENT_RAP_INTERVALS)..last]
                .iter()
                .map(|(_, l)| *l)
                .max()
                .unwrap_or(0);
            prop_assert!(
                start - g.start < target / 2 || len > estimate,
                "segment at {} ({} ticks) overran D = {}: last GOP {} ticks at {}, recent GOPs within {}",
                g.start - T0,
                g.duration,
                g.target_duration,
                len,
                start - g.start,
                estimate
            );
        }
        Ok(())
    }

    /// Audio only, `n` AAC frames from frame `from` (1920 ticks apart).
    fn feed_audio(s: &mut Segmenter, from: i64, n: i64, offset: i64) -> Vec<Segment> {
        (from..from + n)
            .filter_map(|i| s.push(f(0, T0 + offset + i * AAC, true)))
            .collect()
    }

    #[test]
    fn audio_only_after_a_gap_keeps_target_sized_segments() {
        let mut s = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
        s.set_tracks(tracks(false));
        // 10 s of AAC, a 3 s outage (timestamps run on across it), 20 s more.
        let mut segs = feed_audio(&mut s, 0, 235, 0);
        let before = segs.len();
        segs.extend(feed_audio(&mut s, 235, 470, 3 * CLOCK_HZ));
        let after = &segs[before..];
        assert!(after.len() <= 12, "{} segments after the gap", after.len());
        assert!(
            after.iter().all(|g| g.duration >= CLOCK_HZ),
            "at least target / 2: {:?}",
            durations(after)
        );
        // The one holding the gap overruns (counted); the rest are ≈ target.
        assert!(after[1..]
            .iter()
            .all(|g| g.duration >= 2 * CLOCK_HZ && g.duration < 2 * CLOCK_HZ + AAC));
        assert!(segs.iter().all(|g| g.target_duration == 2));
        let over = segs.iter().filter(|g| !fits(g.duration, 2)).count() as u64;
        assert_eq!(s.stats().target_overruns, over);
        assert!(over <= 1);
        assert_eq!(s.gop_estimate(), AAC, "the gap is not a RAP interval");
    }

    #[test]
    fn video_after_a_gap_returns_to_target_segments() {
        // 1 s GOP, 2 s target; a 2 s outage on every track.
        let mut s = seg2();
        let mut segs = feed(&mut s, 250, 25, 0);
        segs.extend(feed(&mut s, 500, 25, 300));
        segs.extend(s.flush());
        assert_start_at_raps(&segs);
        let later: Vec<i64> = segs
            .iter()
            .filter(|g| g.start >= T0 + 400 * FRAME)
            .map(|g| g.duration)
            .collect();
        assert!(later.len() >= 8);
        assert!(later.iter().all(|d| *d == 50 * FRAME), "{later:?}");
        assert!(segs.iter().all(|g| g.target_duration == 2));
        assert_eq!(s.gop_estimate(), 25 * FRAME, "the gap is not a GOP");
    }

    #[test]
    fn all_intra_video_is_cut_near_the_target() {
        // Every video frame a RAP, 25 fps, with a 3 s outage in the middle.
        let mut s = seg2();
        let mut segs = Vec::new();
        for i in (0..500).chain(575..1500) {
            segs.extend(s.push(f(0, T0 + i * FRAME, true)));
            segs.extend(s.push(f(1, T0 + i * FRAME + 100, true)));
        }
        assert_start_at_raps(&segs);
        assert!(segs.len() <= 30, "{} segments", segs.len());
        assert!(segs.iter().all(|g| g.duration >= CLOCK_HZ), "{:?}", durations(&segs));
        let normal = segs.iter().filter(|g| g.duration == 50 * FRAME).count();
        assert!(normal + 1 >= segs.len(), "{:?}", durations(&segs));
    }

    #[test]
    fn open_gop_dts_wobble_does_not_slip_a_gop() {
        // 1 s GOPs by presentation time whose RAPs are 0.96 s and 1.04 s
        // apart by DTS (leading B pictures), as x264's open GOP sends them:
        // 2 s segments, not 3.
        let mut s = seg2();
        let mut segs = Vec::new();
        let mut dts = T0;
        for g in 0..40 {
            let frames = if g % 2 == 0 { 24 } else { 26 };
            for i in 0..frames {
                segs.extend(s.push(f(0, dts, i == 0)));
                segs.extend(s.push(f(1, dts + 100, true)));
                dts += FRAME;
            }
        }
        assert_start_at_raps(&segs);
        assert_eq!(s.target_duration(), 2);
        for g in &segs {
            assert_eq!(g.duration, 50 * FRAME, "{:?}", durations(&segs));
        }
        assert_eq!(s.stats().target_overruns, 0);
    }

    #[test]
    fn the_early_cut_never_goes_below_half_the_target() {
        // 0.2 s GOPs, one of 4 s: while it is recent, cutting at every RAP
        // would give 0.2 s segments; the early cut waits for 1 s.
        let frames = gop_frames(0, &[[5; 20].as_slice(), &[100], &[5; 60]].concat());
        let (s, segs, pushed) = run(2 * CLOCK_HZ, frames);
        check_common(&s, &segs, pushed).expect("common invariants");
        let long_end = T0 + (20 * 5 + 100) * FRAME;
        let after: Vec<i64> = segs
            .iter()
            .filter(|g| g.start >= long_end)
            .map(|g| g.duration)
            .collect();
        // One segment of 1 s (5 GOPs; the 4 s one is still among the last
        // 8), then 2 s again (it has passed).
        assert_eq!(after[0], 25 * FRAME, "{after:?}");
        assert!(after[1..after.len() - 1].iter().all(|d| *d == 50 * FRAME), "{after:?}");
    }

    #[test]
    fn one_long_gop_stops_shrinking_segments_once_it_has_passed() {
        // 1 s GOPs, one GOP of 10 s, then 1 s GOPs again (no outage).
        let frames = gop_frames(0, &[[25; 8].as_slice(), &[250], &[25; 30]].concat());
        let (s, segs, pushed) = run(2 * CLOCK_HZ, frames);
        check_common(&s, &segs, pushed).expect("common invariants");
        assert!(segs.iter().all(|g| g.target_duration == 2));
        assert_eq!(s.stats().target_overruns, 1, "the 10 s GOP");
        let long_end = T0 + (8 * 25 + 250) * FRAME;
        // Right after it, segments are cut early (it could come back)...
        let after: Vec<i64> = segs
            .iter()
            .filter(|g| g.start >= long_end)
            .map(|g| g.duration)
            .collect();
        // ...but once 8 more GOPs have passed, they are 2 s again.
        let back = after
            .iter()
            .position(|d| *d == 50 * FRAME)
            .expect("segments return to the target");
        assert!(back <= 8, "{after:?}");
        assert!(
            after[back..after.len() - 1].iter().all(|d| *d == 50 * FRAME),
            "{after:?}"
        );
        assert_eq!(s.gop_estimate(), 25 * FRAME);
    }

    proptest! {
        /// When the longest RAP interval comes before the first cut (so it
        /// is learned), D is sized from it; segments are whole GOPs, and one
        /// rounds above D only for a GOP the recent ones did not announce.
        /// (Before the early cut looked only at recent intervals and at
        /// least target / 2 in, no segment here could overrun; now a long
        /// GOP coming back after 8 short ones, or right at the start of a
        /// segment, may, counted.)
        #[test]
        fn whole_gops_within_the_declared_target(
            target in (2i64..=12).prop_map(|h| h * CLOCK_HZ / 2),
            lead_in in 0usize..30,
            mut gops in proptest::collection::vec(1i64..=250, 1..40),
        ) {
            let longest = gops.iter().copied().max().unwrap_or(1);
            // The longest first, so it is learned before D is fixed.
            if let Some(i) = gops.iter().position(|g| *g == longest) {
                gops.swap(0, i);
            }
            let frames = gop_frames(lead_in, &gops);
            let before_first_rap = frames.iter().position(|x| x.keyframe && x.track == 0);
            let rap_gops = gops_of(&frames);
            let (s, segs, pushed) = run(target, frames);
            check_common(&s, &segs, pushed)?;
            check_overruns(target, &rap_gops, &segs)?;
            prop_assert_eq!(Some(s.stats().waiting_frames as usize), before_first_rap);
            // D is what the first segment, the longest GOP and the target ask.
            let d = segs[0].target_duration;
            // (An interval is seen at its closing RAP: a lone GOP is not one.)
            let interval = if gops.len() > 1 { longest * FRAME } else { 0 };
            let want = ceil_secs(target)
                .max(ceil_secs(interval))
                .max(((segs[0].duration + CLOCK_HZ / 2) / CLOCK_HZ) as u32);
            prop_assert_eq!(d, want);
        }

        /// Any GOP pattern: cuts only at RAPs, one D, overruns counted
        /// exactly, no frame lost uncounted.
        #[test]
        fn any_gop_pattern_is_cut_at_raps(
            target in (2i64..=12).prop_map(|h| h * CLOCK_HZ / 2),
            gops in proptest::collection::vec(1i64..=300, 1..40),
        ) {
            let (s, segs, pushed) = run(target, gop_frames(0, &gops));
            check_common(&s, &segs, pushed)?;
            prop_assert_eq!(s.dropped(), 0);
            // GOPs as (start, length) in ticks.
            let mut gop_at = Vec::new();
            let mut at = T0;
            for g in &gops {
                gop_at.push((at, g * FRAME));
                at += g * FRAME;
            }
            // A segment is a run of whole GOPs: it starts where one starts.
            for g in &segs {
                prop_assert!(gop_at.iter().any(|(start, _)| *start == g.start));
            }
            check_overruns(target, &gop_at, &segs)?;
        }

        /// A steady GOP (any length, all-intra included) never overruns and
        /// gives segments of one length: the first RAP at or after the target.
        #[test]
        fn steady_gops_give_equal_segments(
            target in (2i64..=12).prop_map(|h| h * CLOCK_HZ / 2),
            gop in 1i64..=300,
            lead_in in 0usize..30,
            count in 1usize..40,
        ) {
            let (s, segs, pushed) = run(target, gop_frames(lead_in, &vec![gop; count]));
            check_common(&s, &segs, pushed)?;
            prop_assert_eq!(s.stats().target_overruns, 0);
            // The first multiple of the GOP that reaches the target, or
            // comes within its slack (three frames, at most a quarter of
            // the target) with the next one beyond the target plus slack.
            let slack = (3 * FRAME).min(target / 4);
            let g = gop * FRAME;
            let mut want = (target + g - 1) / g * g;
            if want - g >= target - slack && want > target + slack {
                want -= g;
            }
            let full = &segs[..segs.len() - 1];
            prop_assert!(full.iter().all(|g| g.duration == want), "{:?}", durations(&segs));
        }

        /// A source without RAPs never makes the segmenter hold more than
        /// its bounds, and publishes nothing.
        #[test]
        fn memory_is_bounded_without_raps(
            frames in proptest::collection::vec((0u16..2, 0i64..9000, 0usize..(4 << 20)), 1..300),
        ) {
            static BIG: [u8; 4 << 20] = [0; 4 << 20];
            let mut s = seg2();
            s.push(f(0, T0, true));
            let mut dts = T0;
            for (track, step, size) in frames {
                dts += step * 40;
                let frame = Frame { data: Bytes::from_static(&BIG[..size]), ..f(track, dts, track == 1) };
                // The video keeps coming so the timing track is never quiet.
                let published = s.push(f(0, dts, false)).into_iter().chain(s.push(frame));
                prop_assert_eq!(published.count(), 0);
                if let Some(b) = &s.building {
                    prop_assert!(b.bytes <= MAX_SEGMENT_BYTES);
                    prop_assert!(dts - b.start < s.cfg.max_gop);
                }
            }
        }
    }
}

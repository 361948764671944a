//! The one pipeline every input feeds: timeline → segmenter → numbering →
//! window and outputs.
//!
//! Two kinds of unit arrive (see [`Unit`]):
//! - raw frames (configured inputs, backups, later RTMP/SRT/DVR playback) go
//!   onto the UTC [`Timeline`] and through the [`Segmenter`];
//! - finished segments from a cluster feed are placed as they are (same
//!   frames, timestamps and bytes as on the source), renumbered only when
//!   their feed does not continue ours ([`place`]).
//!
//! Either way the stream's one [`Position`] numbers the segment, the window
//! takes it, and every output hears about it. Numbers only move forward: a
//! stream's first number is the Unix time in seconds when it first cuts a
//! segment (so a restarted node starts above every number it used before),
//! and each segment after is the next number.
//!
//! Pure apart from writing into the shared [`Stream`]; `now` (monotonic) and
//! `utc_now` (90 kHz UTC) are arguments, so tests run without a clock.

use super::control::{FeedSegment, Unit};
use super::window::StoredSegment;
use super::Stream;
use crate::output::SegmentEvent;
use std::sync::Arc;
use std::time::Instant;
use strom_media::segmenter::{Segmenter, SegmenterConfig, SegmenterStats};
use strom_media::timeline::{AnchorReason, Mapped, Timeline, TimelineConfig};
use strom_media::{Frame, Segment, Track, TrackKind, CLOCK_HZ};

/// A timestamp jump cuts the open segment only once it is this long (90 kHz).
const MIN_CUT_ON_JUMP: i64 = CLOCK_HZ * 3 / 2;
/// At most one timestamp-jump log line per stream this often (all are counted).
const JUMP_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the stream's numbering stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Next sequence number to give.
    pub next: Option<u64>,
    /// UTC end of the last segment published, 90 kHz.
    pub end: Option<i64>,
}

/// Per-feed numbering: the offset applied to a cluster feed's numbers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub offset: i64,
    pub started: bool,
}

/// Decides a cluster segment's local number and discontinuity flag, and
/// advances the position. False when the segment was already published.
///
/// - The first segment ever adopts the source's numbering, so a restreamer
///   carries its source's numbers.
/// - A feed that continues ours (the same next number and the same UTC
///   end) is seamless: two restreamers of one origin carry identical
///   segments, so switching between them changes nothing.
/// - Any other feed is renumbered to continue ours from the next number,
///   with a discontinuity. Numbers never skip: an HLS player numbers
///   segments by their position after EXT-X-MEDIA-SEQUENCE (RFC 8216
///   §6.2.1), so a gap would shift every later segment's identity. Inside a
///   feed, overlap is skipped and segments the source no longer had are
///   closed up the same way.
pub fn place(pos: &mut Position, map: &mut Mapping, seg: &mut Segment) -> bool {
    if !map.started {
        map.started = true;
        if let Some(next) = pos.next {
            let continues = seg.seq == next && pos.end == Some(seg.start);
            map.offset = next as i64 - seg.seq as i64;
            if !continues {
                seg.discontinuity = true;
            }
        }
    }
    let local = seg.seq as i64 + map.offset;
    let Ok(mut local) = u64::try_from(local) else {
        return false;
    };
    if let Some(next) = pos.next {
        if local < next {
            return false;
        }
        if local > next {
            map.offset -= (local - next) as i64;
            local = next;
            seg.discontinuity = true;
        }
    }
    seg.seq = local;
    pos.next = Some(local + 1);
    pos.end = Some(seg.start + seg.duration);
    true
}

/// The pipeline state of one stream; lives as long as the stream.
pub struct Pipeline {
    stream: Arc<Stream>,
    timeline: Timeline,
    segmenter: Segmenter,
    pos: Position,
    /// The cluster feed being placed and its numbering.
    feed: Option<(u64, Mapping)>,
    tracks: Arc<[Track]>,
    /// Segmenter counters already added to the metrics.
    seen: SegmenterStats,
    /// Last published `no_rap_since`.
    no_rap_since: Option<i64>,
    /// The next segment cut here follows a switch: flag it.
    pending_discontinuity: bool,
    jump_log: Option<Instant>,
}

impl Pipeline {
    /// A pipeline for `stream`. Numbering continues after whatever the
    /// window already holds (a restarted stream task never goes back).
    pub fn new(stream: Arc<Stream>) -> Self {
        let target = stream.cfg().segment_duration.as_millis() as i64 * CLOCK_HZ / 1000;
        let pos = stream
            .window()
            .newest_segment()
            .map_or(Position::default(), |s| Position {
                next: Some(s.segment.seq + 1),
                end: Some(s.segment.start + s.segment.duration),
            });
        Pipeline {
            stream,
            timeline: Timeline::new(TimelineConfig::default()),
            segmenter: Segmenter::new(SegmenterConfig::with_target(target)),
            pending_discontinuity: pos.next.is_some(),
            pos,
            feed: None,
            tracks: Arc::from(Vec::new()),
            seen: SegmenterStats::default(),
            no_rap_since: None,
            jump_log: None,
        }
    }

    /// Where numbering stands.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// Another input feeds the stream from now on: a new timeline run, and
    /// the open segment closes so the next one starts with a discontinuity.
    pub fn switch(&mut self, now: Instant) {
        self.timeline.new_run();
        self.feed = None;
        if let Some(seg) = self.segmenter.discontinuity() {
            self.publish(seg, now);
        }
        // Whatever fed the stream before (frames or a cluster feed), the
        // next segment cut here does not continue it.
        self.pending_discontinuity = self.pos.next.is_some();
    }

    /// The tracks of the input feeding the stream.
    pub fn tracks(&mut self, tracks: Arc<[Track]>, now: Instant) {
        if let Some(seg) = self.segmenter.set_tracks(tracks.clone()) {
            self.publish(seg, now);
        }
        self.apply_tracks(tracks);
    }

    fn apply_tracks(&mut self, tracks: Arc<[Track]>) {
        if *tracks == *self.tracks {
            return;
        }
        tracing::info!(stream = %self.stream.name, tracks = %describe(&tracks), "tracks");
        for o in self.stream.outputs.iter() {
            o.on_tracks(&tracks);
        }
        self.stream.update_published(|p| p.tracks = tracks.clone());
        self.tracks = tracks;
    }

    /// A unit of the active input.
    pub fn deliver(&mut self, unit: Unit, now: Instant, utc_now: i64) {
        match unit {
            Unit::Frame(f) => self.frame(f, now, utc_now),
            Unit::Segment(s) => self.feed_segment(s, now),
        }
        self.stream.update_published(|p| p.last_frame_at = Some(now));
    }

    fn frame(&mut self, f: Frame, now: Instant, utc_now: i64) {
        let stream = self.stream.clone();
        let m = &stream.metrics;
        let sparse = self
            .tracks
            .get(usize::from(f.track))
            .is_some_and(|t| matches!(t.kind(), TrackKind::Subtitle | TrackKind::Data));
        if sparse {
            // Subtitles and cues ride on the clock of the audio and video;
            // they never move it (see Timeline::map_sparse).
            match self.timeline.map_sparse(f) {
                Some(frame) => self.place_frame(frame, now),
                None => {
                    m.dropped_timestamp.inc();
                }
            }
            return;
        }
        let (frame, anchor) = match self.timeline.map(f, utc_now) {
            Mapped::Dropped => {
                m.dropped_timestamp.inc();
                return;
            }
            Mapped::Frame { frame, anchor } => (frame, anchor),
        };
        if let Some(reason @ (AnchorReason::JumpBack | AnchorReason::JumpForward | AnchorReason::Drift)) = anchor {
            m.timestamp_jumps.inc();
            if self
                .jump_log
                .is_none_or(|t| now.saturating_duration_since(t) >= JUMP_LOG_EVERY)
            {
                self.jump_log = Some(now);
                tracing::warn!(stream = %stream.name, ?reason, total = m.timestamp_jumps.get(), "timestamp jump: discontinuity");
            }
            // The timeline re-anchored, so output timestamps stay continuous.
            // Cut only a segment that has lasted a while: a source that jumps
            // many times a second must not cut (and number) a segment per
            // jump, or numbering would outrun the clock it starts from.
            let long_enough = self
                .segmenter
                .open_since()
                .is_none_or(|start| frame.dts - start >= MIN_CUT_ON_JUMP);
            if long_enough {
                if let Some(seg) = self.segmenter.discontinuity() {
                    self.publish(seg, now);
                }
            }
        }
        self.place_frame(frame, now);
    }

    /// A frame on the UTC timeline goes to the outputs and the segmenter.
    ///
    /// The segmenter keeps a copy of the frame's bytes, not the frame as
    /// the demuxer made it: that is a slice of a PES reassembly block
    /// shared with the frames around it, and every block with a frame in
    /// the open segment would stay allocated until the segment closes
    /// (about 1.4 times the open segment's payload, up to 1 MiB of a
    /// 3 Mbit/s channel just before a cut). One more copy of ~375 KB/s
    /// per channel, so blocks live only while the demuxer fills them.
    fn place_frame(&mut self, mut frame: Frame, now: Instant) {
        for o in self.stream.outputs.iter() {
            o.on_frame(&frame);
        }
        self.stream.metrics.frames.inc();
        frame.data = bytes::Bytes::copy_from_slice(&frame.data);
        let seg = self.segmenter.push(frame);
        self.account();
        if let Some(seg) = seg {
            self.publish(seg, now);
        }
    }

    /// Adds the segmenter's new drops and overruns to the metrics and
    /// publishes whether it is waiting for a random access point.
    fn account(&mut self) {
        let st = self.segmenter.stats();
        if st != self.seen {
            let m = &self.stream.metrics;
            m.dropped_wait_keyframe
                .inc_by(st.waiting_frames.saturating_sub(self.seen.waiting_frames));
            m.dropped_no_rap
                .inc_by(st.no_rap_frames.saturating_sub(self.seen.no_rap_frames));
            m.dropped_untracked
                .inc_by(st.untracked_frames.saturating_sub(self.seen.untracked_frames));
            m.target_overruns
                .inc_by(st.target_overruns.saturating_sub(self.seen.target_overruns));
            if st.no_rap_segments > self.seen.no_rap_segments {
                tracing::warn!(
                    stream = %self.stream.name,
                    dropped = st.no_rap_segments,
                    "no random access point within the bound: segment dropped, not published"
                );
            }
            if st.target_overruns > self.seen.target_overruns {
                tracing::warn!(
                    stream = %self.stream.name,
                    target = self.segmenter.target_duration(),
                    "a GOP longer than the declared target duration: segment over target"
                );
            }
            self.seen = st;
        }
        let waiting = self.segmenter.waiting_for_rap_since();
        if self.no_rap_since != waiting {
            self.no_rap_since = waiting;
            self.stream.update_published(|p| p.no_rap_since = waiting);
        }
    }

    fn feed_segment(&mut self, fs: FeedSegment, now: Instant) {
        let FeedSegment {
            feed,
            origin,
            discontinuities_before,
            mut segment,
        } = fs;
        if self.feed.is_none_or(|(id, _)| id != feed) {
            // A new connection: if frames were being segmented, close them.
            if let Some(seg) = self.segmenter.discontinuity() {
                self.publish(seg, now);
            }
            self.feed = Some((feed, Mapping::default()));
        }
        let Some((_, map)) = self.feed.as_mut() else { return };
        if !place(&mut self.pos, map, &mut segment) {
            return;
        }
        if let Some(before) = discontinuities_before {
            self.stream.window_mut().adopt_discontinuities(before);
        }
        let switched = self.stream.published().origin.is_some_and(|o| o != origin);
        if switched {
            self.stream.metrics.switches.inc();
            tracing::warn!(stream = %self.stream.name, source = %origin, "switched source");
        }
        self.stream.update_published(|p| p.origin = Some(origin));
        self.apply_tracks(segment.tracks.clone());
        for f in &segment.frames {
            for o in self.stream.outputs.iter() {
                o.on_frame(f);
            }
        }
        let m = &self.stream.metrics;
        m.frames.inc_by(segment.frames.len() as u64);
        m.input_bytes.inc_by(segment.payload_bytes() as u64);
        self.store(segment, now);
    }

    /// The session ended (on-demand stop): the open segment is published and
    /// the next frames start a new run.
    pub fn halt(&mut self, now: Instant) {
        if let Some(seg) = self.segmenter.flush() {
            self.publish(seg, now);
        }
        self.timeline.new_run();
        self.feed = None;
    }

    /// Numbers a segment cut here and stores it.
    fn publish(&mut self, mut seg: Segment, now: Instant) {
        let first = || (crate::util::utc90_now() / CLOCK_HZ).max(0) as u64;
        seg.seq = self.pos.next.unwrap_or_else(first);
        seg.discontinuity |= std::mem::take(&mut self.pending_discontinuity);
        self.pos.next = Some(seg.seq + 1);
        self.pos.end = Some(seg.start + seg.duration);
        self.store(seg, now);
    }

    fn store(&mut self, seg: Segment, now: Instant) {
        let (seq, duration, discontinuity) = (seg.seq, seg.duration, seg.discontinuity);
        let stored = Arc::new(self.compact(seg));
        if !self.stream.window_mut().push(stored.clone()) {
            tracing::warn!(stream = %self.stream.name, seq, "segment number did not move forward: dropped");
            return;
        }
        {
            let window = self.stream.window();
            let ev = SegmentEvent {
                segment: &stored,
                window: &window,
            };
            for o in self.stream.outputs.iter() {
                o.on_segment(&ev);
            }
        }
        self.release_unlisted();
        // Served (and fresh for readers) only now that every output has it.
        self.stream.window_mut().mark_fresh(now);
        self.stream.metrics.segments.inc();
        self.stream.announce_segment(seq);
        // Logged once the segment is served: bench/cluster_latency.sh reads these lines.
        tracing::debug!(stream = %self.stream.name, seq, duration, discontinuity, "segment available");
    }
}

impl Pipeline {
    /// Releases the renditions (TS bytes in sealed memfds) of the segments
    /// no playlist lists any more: the window keeps `segment_count` plus a
    /// few more for players that are behind, and those few are muxed again
    /// from their frames if someone asks. A stream that records keeps them
    /// all: its archive playlists list every segment of the window.
    fn release_unlisted(&self) {
        let cfg = self.stream.cfg();
        if cfg.dvr.is_some() && self.stream.spec.archive.is_some() {
            return;
        }
        let window = self.stream.window();
        for s in window.iter().rev().skip(cfg.segment_count) {
            if s.renditions_released() {
                break; // older ones were released before
            }
            s.release_renditions();
        }
    }

    /// The segment as the window keeps it, its frames packed into one
    /// allocation ([`Segment::compact`]) for the window's ~20 s: one block
    /// per segment instead of one per frame (frames cut here were copied
    /// one by one, see [`Pipeline::place_frame`]; a cluster feed's are
    /// slices of its wire messages, which would stay allocated whole).
    ///
    /// When the segment's wire message will be built anyway (the stream
    /// records to the DVR, or a restreamer pulled the newest segment), the
    /// frames are packed into the message itself
    /// ([`strom_media::wire::encode_segment_shared`]): one allocation for
    /// both instead of the payload twice. Otherwise a plain copy: the
    /// message's CRC is not worth computing for nobody.
    fn compact(&self, mut seg: Segment) -> StoredSegment {
        let slots = self.stream.outputs.slots();
        let records = self.stream.cfg().dvr.is_some() && self.stream.spec.archive.is_some();
        let pulled = self.stream.window().newest_segment().is_some_and(|s| s.wire_read());
        if records || pulled {
            let wire = strom_media::wire::encode_segment_shared(&mut seg);
            seg.frames.shrink_to_fit();
            StoredSegment::with_wire(seg, slots, wire)
        } else {
            seg.compact();
            StoredSegment::new(seg, slots)
        }
    }
}

/// One-line summary of a track set for logs.
pub fn describe(tracks: &[Track]) -> String {
    let parts: Vec<String> = tracks
        .iter()
        .map(|t| {
            let p = &t.params;
            let codec = p.codec_string.as_deref().unwrap_or(t.codec.name());
            match t.kind() {
                TrackKind::Video => format!("{}:{codec} {}x{}", t.id, p.width, p.height),
                TrackKind::Audio => format!("{}:{codec} {}Hz {}ch", t.id, p.sample_rate, p.channels),
                TrackKind::Subtitle | TrackKind::Data => match &p.language {
                    Some(lang) => format!("{}:{codec} {lang}", t.id),
                    None => format!("{}:{codec}", t.id),
                },
            }
        })
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Output, OutputCtx, REGISTRY};
    use crate::stream::StreamSpec;
    use bytes::Bytes;
    use std::sync::atomic::{AtomicU64, Ordering};
    use strom_config::{Input, StreamConfig};
    use strom_media::{Codec, TrackParams};

    fn seg(seq: u64, start: i64) -> Segment {
        Segment {
            seq,
            start,
            duration: 180_000,
            discontinuity: false,
            target_duration: 2,
            tracks: Arc::from(Vec::new()),
            frames: Vec::new(),
        }
    }

    #[test]
    fn identical_source_continues_seamlessly() {
        let mut pos = Position::default();
        let mut m = Mapping::default();
        let mut a = seg(100, 0);
        assert!(place(&mut pos, &mut m, &mut a));
        let mut b = seg(101, 180_000);
        assert!(place(&mut pos, &mut m, &mut b));
        let mut m2 = Mapping::default();
        let mut c = seg(102, 360_000);
        assert!(place(&mut pos, &mut m2, &mut c));
        assert_eq!((c.seq, c.discontinuity), (102, false));
    }

    #[test]
    fn lower_numbered_feed_is_renumbered_forward_with_discontinuity() {
        let mut pos = Position {
            next: Some(500),
            end: Some(1_000_000),
        };
        let mut m = Mapping::default();
        let mut a = seg(40, 2_000_000);
        assert!(place(&mut pos, &mut m, &mut a));
        assert_eq!((a.seq, a.discontinuity), (500, true));
        let mut b = seg(41, 2_180_000);
        assert!(place(&mut pos, &mut m, &mut b));
        assert_eq!((b.seq, b.discontinuity), (501, false));
    }

    #[test]
    fn higher_numbered_feed_continues_ours_with_discontinuity() {
        let mut pos = Position {
            next: Some(500),
            end: Some(1_000_000),
        };
        let mut m = Mapping::default();
        let mut a = seg(9000, 2_000_000);
        assert!(place(&mut pos, &mut m, &mut a));
        assert_eq!((a.seq, a.discontinuity), (500, true));
        let mut b = seg(9001, 2_180_000);
        assert!(place(&mut pos, &mut m, &mut b));
        assert_eq!((b.seq, b.discontinuity), (501, false));
    }

    #[test]
    fn same_number_but_other_timeline_is_a_discontinuity() {
        let mut pos = Position {
            next: Some(500),
            end: Some(1_000_000),
        };
        let mut m = Mapping::default();
        let mut a = seg(500, 5_000_000);
        assert!(place(&mut pos, &mut m, &mut a));
        assert!(a.discontinuity);
    }

    #[test]
    fn overlap_is_skipped_and_gaps_are_flagged() {
        let mut pos = Position {
            next: Some(500),
            end: Some(1_000_000),
        };
        let mut m = Mapping {
            offset: 0,
            started: true,
        };
        let mut old = seg(499, 820_000);
        assert!(!place(&mut pos, &mut m, &mut old));
        let mut gap = seg(503, 1_540_000);
        assert!(place(&mut pos, &mut m, &mut gap));
        assert_eq!((gap.seq, gap.discontinuity), (500, true), "closed up, flagged");
        let mut after = seg(504, 1_720_000);
        assert!(place(&mut pos, &mut m, &mut after));
        assert_eq!((after.seq, after.discontinuity), (501, false));
        assert_eq!(pos.next, Some(502));
    }

    /// A small output registered beside the built-in ones: counts what it hears.
    #[derive(Default)]
    struct Counter {
        frames: AtomicU64,
        segments: AtomicU64,
        tracks: AtomicU64,
    }

    impl Output for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn on_tracks(&self, _: &Arc<[Track]>) {
            self.tracks.fetch_add(1, Ordering::Relaxed);
        }
        fn on_frame(&self, _: &Frame) {
            self.frames.fetch_add(1, Ordering::Relaxed);
        }
        fn on_segment(&self, ev: &SegmentEvent<'_>) {
            assert_eq!(ev.window.newest_seq(), Some(ev.segment.segment.seq));
            self.segments.fetch_add(1, Ordering::Relaxed);
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    fn counter(_: &OutputCtx) -> Arc<dyn Output> {
        Arc::new(Counter::default())
    }

    /// A publish stream "t" with a pipeline switched to its input and
    /// given [`av_tracks`]; the start instant and UTC (90 kHz ticks).
    fn started() -> (Arc<Stream>, Pipeline, Instant, i64) {
        let spec = StreamSpec::configured(StreamConfig::new("t", vec![Input::PUBLISH]));
        let stream = Stream::new(spec, crate::metrics::Metrics::new().stream("t"), REGISTRY);
        let mut p = Pipeline::new(stream.clone());
        let t0 = Instant::now();
        p.switch(t0);
        p.tracks(av_tracks(), t0);
        (stream, p, t0, 1_700_000_000 * CLOCK_HZ)
    }

    fn av_tracks() -> Arc<[Track]> {
        Arc::from(vec![
            Track {
                id: 0,
                codec: Codec::H264,
                params: TrackParams::default(),
            },
            Track {
                id: 1,
                codec: Codec::Aac,
                params: TrackParams {
                    sample_rate: 48_000,
                    channels: 2,
                    ..TrackParams::default()
                },
            },
        ])
    }

    fn frame(track: u16, dts: i64, keyframe: bool) -> Frame {
        Frame {
            track,
            dts,
            pts: dts,
            keyframe,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x09, 0xf0]),
        }
    }

    #[test]
    fn a_new_output_is_one_registration() {
        let mut factories = REGISTRY.to_vec();
        factories.push(counter);
        let spec = StreamSpec::configured(StreamConfig::new("t", vec![Input::PUBLISH]));
        let metrics = crate::metrics::Metrics::new().stream("t");
        let stream = Stream::new(spec, metrics, &factories);
        let mut p = Pipeline::new(stream.clone());
        let t0 = Instant::now();
        let utc = 1_700_000_000 * CLOCK_HZ;
        p.switch(t0);
        p.tracks(av_tracks(), t0);
        // 10 s of 25 fps video with a keyframe every second, audio between.
        for i in 0..250i64 {
            let dts = i * 3600;
            p.deliver(Unit::Frame(frame(0, dts, i % 25 == 0)), t0, utc + dts);
            p.deliver(Unit::Frame(frame(1, dts + 100, false)), t0, utc + dts);
        }
        let c = stream.outputs.find::<Counter>().expect("registered");
        assert_eq!(c.tracks.load(Ordering::Relaxed), 1);
        assert_eq!(c.frames.load(Ordering::Relaxed), 500);
        let segs = c.segments.load(Ordering::Relaxed);
        assert_eq!(segs, 4, "cuts at 2 s, 4 s, 6 s, 8 s keyframes");
        assert_eq!(stream.window().len() as u64, segs);
        // The built-in outputs still work beside it.
        let hls = stream
            .outputs
            .find::<crate::output::hls::Hls>()
            .expect("hls registered");
        let seq = stream.window().newest_seq().expect("segments");
        assert!(hls.segment_bytes(&stream, seq).is_some_and(|b| b.len() % 188 == 0));
        // Numbers are consecutive and start at the Unix time in seconds.
        let w = stream.window();
        let seqs: Vec<u64> = w.iter().map(|s| s.segment.seq).collect();
        assert!(seqs.windows(2).all(|p| p[1] == p[0] + 1), "{seqs:?}");
        assert!(seqs[0] >= 1_700_000_000);
    }

    /// The first and last byte address of every frame's data in `seg`,
    /// if they are all in one run, back to back.
    fn packed_run(seg: &Segment) -> Option<(*const u8, *const u8)> {
        let mut run: Option<(*const u8, *const u8)> = None;
        for f in seg.frames.iter().filter(|f| !f.data.is_empty()) {
            let r = f.data.as_ptr_range();
            run = match run {
                None => Some((r.start, r.end)),
                Some((a, e)) if e == r.start => Some((a, r.end)),
                // Slices of a wire message have frame headers between them.
                Some((a, e)) if (e as usize) < (r.start as usize) && (r.start as usize) - (e as usize) < 64 => {
                    Some((a, r.end))
                }
                Some(_) => return None,
            };
        }
        run
    }

    #[test]
    fn stored_segments_are_compacted_and_share_the_wire_once_restreamers_pull() {
        let (stream, mut p, t0, utc) = started();
        // Every frame is cut from one shared receive block, as a demuxer does.
        let block = Bytes::from(vec![0u8; 1 << 20]);
        let mut at = 0;
        let mut deliver = |p: &mut Pipeline, i: i64| {
            let dts = i * 3600;
            let data = block.slice(at..at + 1000);
            at = (at + 1000) % ((1 << 20) - 1000);
            let f = Frame {
                track: 0,
                dts,
                pts: dts,
                keyframe: i % 25 == 0,
                data,
            };
            p.deliver(Unit::Frame(f), t0, utc + dts);
        };
        for i in 0..150 {
            deliver(&mut p, i);
        }
        {
            let w = stream.window();
            assert_eq!(w.len(), 2);
            for s in w.iter() {
                let (a, e) = packed_run(&s.segment).expect("one run");
                assert_eq!(
                    e as usize - a as usize,
                    s.segment.payload_bytes(),
                    "exactly the payload"
                );
                assert!(s.wire_built().is_none(), "nobody asked for the wire message");
                assert!(!block.as_ptr_range().contains(&a), "no longer in the receive block");
            }
            // A restreamer pulls the newest segment...
            let newest = w.newest_segment().expect("segment");
            assert_eq!(newest.wire(), strom_media::wire::encode_segment(&newest.segment));
        }
        // ...so the next one is packed into its wire message.
        for i in 150..200 {
            deliver(&mut p, i);
        }
        let w = stream.window();
        let s = w.newest_segment().expect("segment");
        let msg = s.wire_built().expect("built with the segment").clone();
        assert_eq!(msg, strom_media::wire::encode_segment(&s.segment), "the same bytes");
        let (a, e) = packed_run(&s.segment).expect("one run");
        let m = msg.as_ptr_range();
        assert!(m.start <= a && e <= m.end, "frames are slices of the message");
        let hls = stream.outputs.find::<crate::output::hls::Hls>().expect("hls");
        assert_eq!(
            hls.segment_bytes(&stream, s.segment.seq),
            Some(strom_media::ts::mux::mux_segment(&s.segment))
        );
    }

    #[test]
    fn the_open_segment_does_not_pin_the_demuxers_blocks() {
        let (stream, mut p, t0, utc) = started();
        // Each frame is a slice of its own receive block, as a demuxer makes them.
        for i in 0..130i64 {
            let dts = i * 3600;
            let block = Bytes::from(vec![i as u8; 4096]);
            let f = Frame {
                track: 0,
                dts,
                pts: dts,
                keyframe: i % 25 == 0,
                data: block.slice(100..1100),
            };
            p.deliver(Unit::Frame(f), t0, utc + dts);
            assert!(block.is_unique(), "frame {i}: nothing but the caller holds its block");
        }
        let w = stream.window();
        assert_eq!(w.len(), 2, "segments were cut meanwhile");
        for s in w.iter() {
            for f in &s.segment.frames {
                assert_eq!(f.data.len(), 1000);
                assert!(f.data.iter().all(|b| *b == f.data[0]), "the frame's own bytes");
            }
        }
    }

    #[test]
    fn renditions_are_kept_only_for_listed_segments() {
        let spec = StreamSpec::configured(StreamConfig::new("t", vec![Input::PUBLISH]));
        let listed = spec.cfg.segment_count;
        let stream = Stream::new(spec, crate::metrics::Metrics::new().stream("t"), REGISTRY);
        let mut p = Pipeline::new(stream.clone());
        let t0 = Instant::now();
        let utc = 1_700_000_000 * CLOCK_HZ;
        p.switch(t0);
        p.tracks(av_tracks(), t0);
        // 2 s segments until the window is full and has slid.
        let secs = 2 * (listed as i64 + super::super::EXTRA_SEGMENTS as i64 + 3);
        for i in 0..secs * 25 {
            let dts = i * 3600;
            p.deliver(Unit::Frame(frame(0, dts, i % 25 == 0)), t0, utc + dts);
        }
        let hls = stream.outputs.find::<crate::output::hls::Hls>().expect("hls");
        let w = stream.window();
        assert_eq!(w.len(), listed + super::super::EXTRA_SEGMENTS, "the window is full");
        let kept = |s: &StoredSegment| (0..stream.outputs.slots()).any(|i| s.built(i).is_some());
        for (i, s) in w.iter().rev().enumerate() {
            assert_eq!(kept(s), i < listed, "segment {i} from the newest");
            assert_eq!(s.renditions_released(), i >= listed);
            // Served either way, with the same bytes.
            assert_eq!(
                hls.segment_bytes(&stream, s.segment.seq),
                Some(strom_media::ts::mux::mux_segment(&s.segment))
            );
            assert_eq!(kept(s), i < listed, "a request does not keep it again");
        }
    }

    #[test]
    fn a_source_that_jumps_every_200_ms_does_not_outrun_the_clock() {
        let (stream, mut p, t0, utc) = started();
        // 60 s of 25 fps video, every frame a keyframe; the raw clock jumps
        // 10 s forward every 5 frames.
        for i in 0..1500i64 {
            let raw = i * 3600 + (i / 5) * 10 * CLOCK_HZ;
            p.deliver(Unit::Frame(frame(0, raw, true)), t0, utc + i * 3600);
        }
        let w = stream.window();
        let segs = stream.metrics.segments.get();
        assert!(segs <= 45, "{segs} segments in 60 s: at most one per 1.5 s");
        assert!(stream.metrics.timestamp_jumps.get() >= 250);
        let span = w.newest_seq().unwrap_or(0) - w.oldest_seq().unwrap_or(0);
        assert!(span < 60, "numbers stay behind the clock: {span}");
    }

    #[test]
    fn backup_then_cluster_feed_numbers_forward() {
        let spec = StreamSpec::configured(StreamConfig::new("t", vec![Input::PUBLISH]));
        let stream = Stream::new(spec, crate::metrics::Metrics::new().stream("t"), REGISTRY);
        let mut p = Pipeline::new(stream.clone());
        let t0 = Instant::now();
        // A feed numbered 100…
        let mk = |feed, seq: u64, start: i64| {
            Unit::Segment(FeedSegment {
                feed,
                origin: Arc::from("a:1"),
                discontinuities_before: Some(3),
                segment: Segment {
                    tracks: av_tracks(),
                    frames: vec![frame(0, start, true)],
                    ..seg(seq, start)
                },
            })
        };
        p.deliver(mk(1, 100, 0), t0, 0);
        p.deliver(mk(1, 101, 180_000), t0, 0);
        assert_eq!(
            stream.window().discontinuities_before(101),
            3,
            "adopted from the source"
        );
        // …then the backup (frames) for a while…
        p.switch(t0);
        p.tracks(av_tracks(), t0);
        for i in 0..100i64 {
            p.deliver(Unit::Frame(frame(0, i * 3600, i % 25 == 0)), t0, 1_000_000 + i * 3600);
        }
        p.switch(t0);
        // …then the feed again, from a lower number.
        p.deliver(mk(2, 50, 9_000_000), t0, 0);
        let w = stream.window();
        let list: Vec<(u64, bool)> = w.iter().map(|s| (s.segment.seq, s.segment.discontinuity)).collect();
        assert_eq!(list[0], (100, false));
        assert_eq!(list[1], (101, false));
        assert_eq!(list[2], (102, true), "backup starts with a discontinuity: {list:?}");
        assert!(list.windows(2).all(|p| p[1].0 == p[0].0 + 1), "{list:?}");
        assert_eq!(list.last().map(|l| l.1), Some(true), "renumbered feed: discontinuity");
    }
}

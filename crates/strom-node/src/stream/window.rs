//! The segment window of one stream: the newest finished segments, oldest
//! first, with the discontinuity count of everything already evicted.
//!
//! Pure: no I/O and no clock; callers pass `now`. The window only holds the
//! canonical [`Segment`]s; every output derives its own bytes from them and
//! may attach them to a [`StoredSegment`] as a lazily built rendition, so a
//! segment is muxed at most once per output however many viewers read it.
//! An output may also attach one value of its own type per segment
//! ([`StoredSegment::derived`]: facts read from the frames, or its own
//! bounded cache of further renditions); it lives and dies with the segment.
//!
//! A segment's renditions can be released ([`StoredSegment::release_renditions`])
//! once no playlist can list it any more: the pipeline does so for segments
//! kept only for players that are behind, so their rendition bytes (sealed
//! memfds) do not live the whole window. A rendition asked for after that is
//! built again from the frames for that caller and not kept.
//!
//! Memory: the pipeline compacts a segment before it is stored, so its
//! frames hold one allocation of exactly their payload (or are slices of
//! the segment's wire message when that is built anyway, see
//! [`StoredSegment::with_wire`]) instead of pinning the demuxer's receive
//! blocks for the window's lifetime.
//!
//! Invariants: sequence numbers in the window strictly increase; the window
//! never holds more than its capacity; `discontinuities_before(seq)` counts
//! every discontinuity the stream ever had before `seq`, evicted or not, so
//! playlists (RFC 8216 §4.3.3.3 EXT-X-DISCONTINUITY-SEQUENCE) stay correct.

use bytes::Bytes;
use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};
use strom_media::Segment;

/// What an output derived from a segment, type-erased.
type Derived = Arc<dyn Any + Send + Sync>;

/// A finished segment and the renditions outputs built from it.
pub struct StoredSegment {
    pub segment: Segment,
    /// One slot per registered output (its `slot` index), filled on first
    /// use and emptied by [`StoredSegment::release_renditions`].
    renditions: Box<[RwLock<Option<Bytes>>]>,
    /// The renditions were released: they are no longer kept.
    released: AtomicBool,
    /// One slot per registered output for [`StoredSegment::derived`].
    derived: Box<[OnceLock<Derived>]>,
    /// The segment's wire message (`strom_media::wire`), shared by the
    /// cluster feed and the DVR writer.
    wire: OnceLock<Bytes>,
    /// [`StoredSegment::wire`] was called: a restreamer pulled the segment.
    wire_read: AtomicBool,
}

impl std::fmt::Debug for StoredSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSegment")
            .field("segment", &self.segment)
            .field(
                "renditions_built",
                &self
                    .renditions
                    .iter()
                    .filter(|r| r.read().unwrap_or_else(|e| e.into_inner()).is_some())
                    .count(),
            )
            .field(
                "derived_built",
                &self.derived.iter().filter(|r| r.get().is_some()).count(),
            )
            .finish()
    }
}

impl StoredSegment {
    /// Wraps `segment` with `slots` empty rendition slots.
    pub fn new(segment: Segment, slots: usize) -> Self {
        StoredSegment {
            segment,
            renditions: (0..slots).map(|_| RwLock::new(None)).collect(),
            released: AtomicBool::new(false),
            derived: (0..slots).map(|_| OnceLock::new()).collect(),
            wire: OnceLock::new(),
            wire_read: AtomicBool::new(false),
        }
    }

    /// Wraps `segment` with its wire message already built. `wire` must be
    /// `strom_media::wire::encode_segment(&segment)`; made with
    /// `encode_segment_shared`, the frames are slices of it and the two
    /// share one allocation.
    pub fn with_wire(segment: Segment, slots: usize, wire: Bytes) -> Self {
        let s = StoredSegment::new(segment, slots);
        let _ = s.wire.set(wire);
        s
    }

    /// The segment as one wire message, encoded once and shared (the
    /// cluster feed sends it, the DVR writer stores it: the same bytes).
    pub fn wire(&self) -> Bytes {
        self.wire_read.store(true, Ordering::Relaxed);
        self.wire
            .get_or_init(|| strom_media::wire::encode_segment(&self.segment))
            .clone()
    }

    /// The wire message if it is built.
    pub fn wire_built(&self) -> Option<&Bytes> {
        self.wire.get()
    }

    /// Someone asked for [`StoredSegment::wire`] (a restreamer pulled this
    /// segment); [`StoredSegment::wire_once`] does not count.
    pub fn wire_read(&self) -> bool {
        self.wire_read.load(Ordering::Relaxed)
    }

    /// The wire message if a reader already built it, else encoded for this
    /// caller alone: a node without restreamers does not keep a second copy
    /// of every segment in its window for the DVR writer's sake.
    pub fn wire_once(&self) -> Bytes {
        match self.wire.get() {
            Some(b) => b.clone(),
            None => strom_media::wire::encode_segment(&self.segment),
        }
    }

    /// The value output `slot` derived from this segment, built by `build`
    /// on first use and shared after. An output uses one type `T` for its
    /// slot; `build` must be deterministic, since a call racing the first
    /// one, a slot out of range or a different `T` builds a value that is
    /// returned but not kept.
    pub fn derived<T: Any + Send + Sync>(&self, slot: usize, build: impl FnOnce(&Segment) -> T) -> Arc<T> {
        let Some(cell) = self.derived.get(slot) else {
            return Arc::new(build(&self.segment));
        };
        if let Some(t) = cell.get().and_then(|d| d.clone().downcast::<T>().ok()) {
            return t;
        }
        let t = Arc::new(build(&self.segment));
        let _ = cell.set(t.clone());
        t
    }

    /// The rendition in `slot`, built by `build` on first use and shared
    /// after; concurrent first callers wait for one build. `build` must be
    /// deterministic (the same segment always gives the same bytes). An
    /// out-of-range slot, or any slot after
    /// [`StoredSegment::release_renditions`], builds for this caller
    /// without keeping the result.
    pub fn rendition(&self, slot: usize, build: impl FnOnce(&Segment) -> Bytes) -> Bytes {
        let Some(cell) = self.renditions.get(slot) else {
            return build(&self.segment);
        };
        if let Some(b) = cell.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return b.clone();
        }
        if self.released.load(Ordering::Acquire) {
            return build(&self.segment);
        }
        let mut kept = cell.write().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = kept.as_ref() {
            return b.clone();
        }
        // Checked again under the lock: a release that emptied this slot
        // before we took it set the flag first.
        if self.released.load(Ordering::Acquire) {
            drop(kept);
            return build(&self.segment);
        }
        let b = build(&self.segment);
        *kept = Some(b.clone());
        b
    }

    /// The rendition in `slot` if it is built and kept.
    pub fn built(&self, slot: usize) -> Option<Bytes> {
        self.renditions
            .get(slot)?
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops keeping renditions: those built are dropped (the bytes live on
    /// only in callers' clones), and [`StoredSegment::rendition`] builds
    /// per call from now on. For a segment that no playlist lists any more.
    pub fn release_renditions(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        for cell in self.renditions.iter() {
            *cell.write().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// [`StoredSegment::release_renditions`] was called.
    pub fn renditions_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }
}

/// The window of one stream.
#[derive(Debug)]
pub struct SegmentWindow {
    segments: VecDeque<Arc<StoredSegment>>,
    capacity: usize,
    evicted_discontinuities: u64,
    last_push: Option<Instant>,
}

impl SegmentWindow {
    /// A window keeping at most `capacity` (≥ 1) segments.
    pub fn new(capacity: usize) -> Self {
        SegmentWindow {
            segments: VecDeque::with_capacity(capacity.max(1) + 1),
            capacity: capacity.max(1),
            evicted_discontinuities: 0,
            last_push: None,
        }
    }

    /// Appends a segment. A segment that does not number above the newest
    /// one is refused (returns false): numbers only move forward. The window
    /// counts as fresh only once [`Self::mark_fresh`] is called, after every
    /// output has seen the segment.
    pub fn push(&mut self, seg: Arc<StoredSegment>) -> bool {
        if self.newest_seq().is_some_and(|n| seg.segment.seq <= n) {
            return false;
        }
        self.segments.push_back(seg);
        while self.segments.len() > self.capacity {
            if let Some(old) = self.segments.pop_front() {
                self.evicted_discontinuities += u64::from(old.segment.discontinuity);
            }
        }
        true
    }

    /// The newest segment is ready to serve as of `now`.
    pub fn mark_fresh(&mut self, now: Instant) {
        self.last_push = Some(now);
    }

    /// While the window is empty, starts counting discontinuities from
    /// `before` (a restreamer adopting its source's count). False otherwise.
    pub fn adopt_discontinuities(&mut self, before: u64) -> bool {
        if !self.segments.is_empty() {
            return false;
        }
        self.evicted_discontinuities = before;
        true
    }

    /// Every segment, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<StoredSegment>> + ExactSizeIterator {
        self.segments.iter()
    }

    /// The newest `n` segments, oldest first.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = &Arc<StoredSegment>> {
        self.segments.iter().skip(self.segments.len().saturating_sub(n))
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Segment `seq`, if held.
    pub fn get(&self, seq: u64) -> Option<&Arc<StoredSegment>> {
        let first = self.segments.front()?.segment.seq;
        // Numbers may skip (a restreamer that missed segments), so index
        // first and fall back to a search.
        let idx = usize::try_from(seq.checked_sub(first)?).ok()?;
        match self.segments.get(idx) {
            Some(s) if s.segment.seq == seq => Some(s),
            _ => self.segments.iter().find(|s| s.segment.seq == seq),
        }
    }

    /// The first segment numbered `seq` or above.
    pub fn first_from(&self, seq: u64) -> Option<&Arc<StoredSegment>> {
        self.segments.iter().find(|s| s.segment.seq >= seq)
    }

    pub fn oldest_seq(&self) -> Option<u64> {
        self.segments.front().map(|s| s.segment.seq)
    }

    pub fn newest_seq(&self) -> Option<u64> {
        self.segments.back().map(|s| s.segment.seq)
    }

    pub fn newest_segment(&self) -> Option<&Arc<StoredSegment>> {
        self.segments.back()
    }

    /// Discontinuities strictly before segment `seq`: the value of
    /// EXT-X-DISCONTINUITY-SEQUENCE for a playlist that starts at `seq`.
    pub fn discontinuities_before(&self, seq: u64) -> u64 {
        self.evicted_discontinuities
            + self
                .segments
                .iter()
                .take_while(|s| s.segment.seq < seq)
                .filter(|s| s.segment.discontinuity)
                .count() as u64
    }

    /// A segment was pushed within `max_age` of `now`.
    pub fn fresh(&self, now: Instant, max_age: Duration) -> bool {
        self.last_push
            .is_some_and(|t| now.saturating_duration_since(t) <= max_age)
    }

    /// When the newest segment was pushed.
    pub fn last_push(&self) -> Option<Instant> {
        self.last_push
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u64, disc: bool) -> Arc<StoredSegment> {
        Arc::new(StoredSegment::new(
            Segment {
                seq,
                start: seq as i64 * 180_000,
                duration: 180_000,
                discontinuity: disc,
                target_duration: 2,
                tracks: Arc::from(Vec::new()),
                frames: Vec::new(),
            },
            2,
        ))
    }

    #[test]
    fn slides_and_counts_evicted_discontinuities() {
        let mut w = SegmentWindow::new(3);
        for (i, d) in [(10, false), (11, true), (12, false), (13, true), (14, false)] {
            assert!(w.push(seg(i, d)));
        }
        assert_eq!(w.len(), 3);
        assert_eq!((w.oldest_seq(), w.newest_seq()), (Some(12), Some(14)));
        assert_eq!(w.discontinuities_before(12), 1, "11 was evicted");
        assert_eq!(w.discontinuities_before(14), 2);
        assert_eq!(w.discontinuities_before(100), 2);
        assert_eq!(w.newest(2).map(|s| s.segment.seq).collect::<Vec<_>>(), vec![13, 14]);
    }

    #[test]
    fn numbers_only_move_forward() {
        let mut w = SegmentWindow::new(5);
        assert!(w.push(seg(5, false)));
        assert!(!w.push(seg(5, false)));
        assert!(!w.push(seg(4, false)));
        assert!(w.push(seg(9, true)), "gaps are allowed");
        assert_eq!(w.get(9).map(|s| s.segment.seq), Some(9));
        assert!(w.get(7).is_none());
        assert_eq!(w.first_from(6).map(|s| s.segment.seq), Some(9));
    }

    #[test]
    fn adoption_only_while_empty_and_freshness() {
        let t0 = Instant::now();
        let mut w = SegmentWindow::new(2);
        assert!(!w.fresh(t0, Duration::from_secs(1)));
        assert!(w.adopt_discontinuities(7));
        w.push(seg(1, false));
        assert!(!w.fresh(t0, Duration::from_secs(1)), "not before it is marked");
        w.mark_fresh(t0);
        assert!(!w.adopt_discontinuities(9));
        assert_eq!(w.discontinuities_before(1), 7);
        assert!(w.fresh(t0 + Duration::from_secs(1), Duration::from_secs(1)));
        assert!(!w.fresh(t0 + Duration::from_millis(1001), Duration::from_secs(1)));
    }

    #[test]
    fn renditions_are_built_once() {
        let s = seg(1, false);
        let mut calls = 0;
        let a = s.rendition(1, |_| {
            calls += 1;
            Bytes::from_static(b"x")
        });
        let b = s.rendition(1, |_| {
            calls += 1;
            Bytes::from_static(b"y")
        });
        assert_eq!((a, b, calls), (Bytes::from_static(b"x"), Bytes::from_static(b"x"), 1));
        assert!(s.built(0).is_none());
        assert_eq!(s.rendition(9, |_| Bytes::from_static(b"z")), Bytes::from_static(b"z"));
    }

    #[test]
    fn released_renditions_are_dropped_and_built_per_call() {
        let s = seg(2, false);
        let kept = s.rendition(0, |_| Bytes::from(vec![7u8; 64]));
        assert_eq!(s.built(0), Some(kept.clone()));
        assert!(!s.renditions_released());
        s.release_renditions();
        assert!(s.renditions_released());
        assert!(s.built(0).is_none(), "the kept bytes are dropped");
        let mut calls = 0;
        for _ in 0..3 {
            let again = s.rendition(0, |_| {
                calls += 1;
                Bytes::from(vec![7u8; 64])
            });
            assert_eq!(again, kept, "the same bytes, built again");
        }
        assert_eq!(calls, 3, "built for every caller, never kept");
        assert!(s.built(0).is_none() && s.built(1).is_none());
        s.release_renditions();
        assert!(s.renditions_released(), "releasing twice is harmless");
    }

    #[test]
    fn a_prebuilt_wire_message_is_served_and_reads_are_noticed() {
        let mut segment = seg(3, false).segment.clone();
        segment.frames = vec![strom_media::Frame {
            track: 0,
            dts: 0,
            pts: 0,
            keyframe: true,
            data: Bytes::from_static(&[1, 2, 3]),
        }];
        segment.tracks = Arc::from(vec![strom_media::Track {
            id: 0,
            codec: strom_media::Codec::H264,
            params: Default::default(),
        }]);
        let expected = strom_media::wire::encode_segment(&segment);
        let mut shared = segment.clone();
        let wire = strom_media::wire::encode_segment_shared(&mut shared);
        let s = StoredSegment::with_wire(shared, 2, wire);
        assert_eq!(s.segment, segment);
        assert_eq!(s.wire_built(), Some(&expected));
        assert!(!s.wire_read());
        assert_eq!(s.wire_once(), expected);
        assert!(!s.wire_read(), "the DVR writer's read does not count");
        assert_eq!(s.wire(), expected);
        assert!(s.wire_read());
        let plain = StoredSegment::new(segment, 2);
        assert!(plain.wire_built().is_none());
        assert_eq!(plain.wire_once(), expected);
        assert!(plain.wire_built().is_none(), "wire_once keeps nothing");
    }

    #[test]
    fn derived_values_are_built_once_per_slot() {
        let s = seg(4, false);
        let mut calls = 0;
        let a = s.derived(0, |g| {
            calls += 1;
            g.seq * 10
        });
        let b = s.derived(0, |_| {
            calls += 1;
            0u64
        });
        assert_eq!((*a, *b, calls), (40, 40, 1));
        assert!(Arc::ptr_eq(&a, &b), "shared, not rebuilt");
        assert_eq!(*s.derived(1, |_| "other slot"), "other slot");
        assert_eq!(*s.derived(0, |_| "another type"), "another type", "built, not cached");
        assert_eq!(*s.derived(0, |_| 0u64), 40, "the slot keeps its value");
        assert_eq!(*s.derived(9, |_| 5u8), 5, "out of range: built");
    }
}

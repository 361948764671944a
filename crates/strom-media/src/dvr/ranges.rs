//! Recorded ranges: the spans of the UTC timeline an archive holds, with
//! the gaps between them (a stream that was down, a lost file, a deleted
//! range), for the ranges API and for finding what a URL asks for.
//!
//! One rule decides a gap everywhere ([`is_gap`]): the next segment starts
//! more than [`GAP_TOLERANCE`] after the end of what came before (or before
//! its start: time went back). Archive playlists mark the same gaps with
//! `EXT-X-DISCONTINUITY` ([`crate::hls::render_archive_playlist`]). A
//! segment's discontinuity flag alone (an input switch with no hole in time)
//! is not a gap.
//!
//! Invariants: the ranges returned are sorted by `from`, have non-negative
//! durations, and are separated by more than [`GAP_TOLERANCE`]; arithmetic
//! saturates, so crafted index values cannot overflow.

use super::index::IndexEntry;

/// A recorded span on the UTC timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// UTC start, 90 kHz ticks since the Unix epoch.
    pub from: i64,
    /// Length, 90 kHz ticks.
    pub duration: i64,
}

impl Range {
    /// UTC end, 90 kHz ticks: `from + duration` (saturating).
    pub fn end(&self) -> i64 {
        self.from.saturating_add(self.duration)
    }
}

/// Largest hole between one segment's end and the next one's start that
/// still counts as continuous: 250 ms, in 90 kHz ticks. Consecutive
/// segments of one run meet exactly (a segment lasts until the next one
/// starts), so this only absorbs rounding and a timeline's re-anchoring; a
/// missing segment (at least the 1 s a segment target can be) is a hole.
pub const GAP_TOLERANCE: i64 = 22_500;

/// Whether a segment starting at `next_start` leaves a gap after what ended
/// at `prev_end` (UTC 90 kHz ticks): it starts more than [`GAP_TOLERANCE`]
/// later, or more than [`GAP_TOLERANCE`] earlier (time went back: the two
/// do not play as one timeline either).
pub fn is_gap(prev_end: i64, next_start: i64) -> bool {
    next_start > prev_end.saturating_add(GAP_TOLERANCE) || next_start < prev_end.saturating_sub(GAP_TOLERANCE)
}

/// Merges index entries into ranges: consecutive entries without a gap
/// between them ([`is_gap`]) are one range. A discontinuity flag alone is
/// not a gap. Entries are expected in seq order; if time goes back between
/// two of them, the result is still sorted and overlapping spans are joined
/// ([`merge`]).
pub fn ranges<'a>(entries: impl IntoIterator<Item = &'a IndexEntry>) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    for e in entries {
        let duration = e.duration.max(0);
        match out.last_mut() {
            Some(r) if !is_gap(r.end(), e.start) => {
                let end = r.end().max(e.start.saturating_add(duration));
                r.from = r.from.min(e.start);
                r.duration = end.saturating_sub(r.from);
            }
            _ => out.push(Range {
                from: e.start,
                duration,
            }),
        }
    }
    // Time went back somewhere: sort and join what overlaps.
    let separated = out
        .windows(2)
        .all(|w| w[1].from > w[0].end().saturating_add(GAP_TOLERANCE));
    if separated {
        out
    } else {
        merge(out)
    }
}

/// Merges ranges (of consecutive files, say) the same way: sorted by
/// `from`, and a range that starts no more than [`GAP_TOLERANCE`] after the
/// end of the ones before it, or inside them, joins them. The input order
/// does not matter (it is sorted first; sorted input costs one pass).
pub fn merge(ranges: impl IntoIterator<Item = Range>) -> Vec<Range> {
    let mut input: Vec<Range> = ranges
        .into_iter()
        .map(|r| Range {
            from: r.from,
            duration: r.duration.max(0),
        })
        .collect();
    input.sort_by_key(|r| r.from);
    let mut out: Vec<Range> = Vec::with_capacity(input.len());
    for r in input {
        match out.last_mut() {
            Some(cur) if r.from <= cur.end().saturating_add(GAP_TOLERANCE) => {
                let end = cur.end().max(r.end());
                cur.duration = end.saturating_sub(cur.from);
            }
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 90_000;

    fn entry(seq: u64, start: i64, duration: i64, discontinuity: bool) -> IndexEntry {
        IndexEntry {
            seq,
            start,
            duration,
            offset: 0,
            len: 0,
            target_duration: 2,
            discontinuity,
            independent: true,
        }
    }

    fn r(from: i64, duration: i64) -> Range {
        Range { from, duration }
    }

    #[test]
    fn contiguous_segments_are_one_range() {
        let e: Vec<IndexEntry> = (0..5)
            .map(|i| entry(i, 100 * S + i as i64 * 2 * S, 2 * S, i == 2))
            .collect();
        assert_eq!(
            ranges(&e),
            vec![r(100 * S, 10 * S)],
            "a discontinuity flag alone is no gap"
        );
        assert_eq!(ranges(&[]), Vec::new());
    }

    #[test]
    fn a_hole_over_one_second_splits() {
        let e = [
            entry(1, 0, 2 * S, false),
            entry(2, 2 * S + GAP_TOLERANCE, 2 * S, false), // exactly the tolerance: continuous
            entry(3, 4 * S + GAP_TOLERANCE + GAP_TOLERANCE + 1, 2 * S, false), // one tick more: a gap
            entry(4, 100 * S, 2 * S, true),
        ];
        let end2 = 4 * S + GAP_TOLERANCE;
        assert_eq!(
            ranges(&e),
            vec![r(0, end2), r(end2 + GAP_TOLERANCE + 1, 2 * S), r(100 * S, 2 * S)]
        );
    }

    #[test]
    fn time_going_back_still_gives_sorted_disjoint_ranges() {
        let e = [
            entry(1, 100 * S, 2 * S, false),
            entry(2, 102 * S, 2 * S, false),
            entry(3, 50 * S, 2 * S, true), // clock stepped back 54 s
            entry(4, 52 * S, 2 * S, false),
            entry(5, 103 * S, 4 * S, false), // and forward into the first range
        ];
        assert_eq!(ranges(&e), vec![r(50 * S, 4 * S), r(100 * S, 7 * S)]);
    }

    #[test]
    fn gaps_are_holes_either_way() {
        const T: i64 = GAP_TOLERANCE;
        assert!(!is_gap(10 * S, 10 * S));
        assert!(!is_gap(10 * S, 10 * S + T));
        assert!(is_gap(10 * S, 10 * S + T + 1));
        assert!(is_gap(10 * S, 11 * S), "a missing 1 s segment is a hole");
        assert!(!is_gap(10 * S, 10 * S - T));
        assert!(is_gap(10 * S, 10 * S - T - 1));
        assert!(!is_gap(i64::MAX, i64::MAX));
        assert!(!is_gap(i64::MIN, i64::MIN));
    }

    #[test]
    fn merging_ranges_of_files() {
        assert_eq!(
            merge([
                r(10 * S, 5 * S),
                r(0, 10 * S),
                r(15 * S + GAP_TOLERANCE, S),
                r(30 * S, 0),
                r(12 * S, S)
            ]),
            vec![r(0, 16 * S + GAP_TOLERANCE), r(30 * S, 0)]
        );
        assert_eq!(merge([r(0, S), r(2 * S + 1, S)]), vec![r(0, S), r(2 * S + 1, S)]);
        assert_eq!(merge([r(0, -5)]), vec![r(0, 0)], "negative durations count as empty");
        assert_eq!(merge([r(i64::MAX - 1, 10), r(i64::MAX, 10)]), vec![r(i64::MAX - 1, 1)]);
        assert_eq!(merge(Vec::new()), Vec::new());
    }

    proptest! {
        #[test]
        fn ranges_split_exactly_at_gaps(
            segs in proptest::collection::vec((1i64..10 * S, 0i64..3 * GAP_TOLERANCE, any::<bool>()), 1..40),
            origin in -(1i64 << 50)..(1i64 << 50),
        ) {
            // Each segment starts `hole` ticks after the previous one's end.
            let mut entries = Vec::new();
            let mut expected: Vec<Range> = Vec::new();
            let mut at = origin;
            for (i, &(duration, hole, disc)) in segs.iter().enumerate() {
                if i > 0 {
                    at += hole;
                }
                entries.push(entry(i as u64, at, duration, disc));
                match expected.last_mut() {
                    Some(last) if hole <= GAP_TOLERANCE => last.duration = at + duration - last.from,
                    _ => expected.push(r(at, duration)),
                }
                at += duration;
            }
            let got = ranges(&entries);
            prop_assert_eq!(&got, &expected);
            // Ranges of parts, merged, are the ranges of the whole.
            let (a, b) = entries.split_at(entries.len() / 2);
            prop_assert_eq!(merge(ranges(a).into_iter().chain(ranges(b))), got);
        }

        #[test]
        fn ranges_are_sorted_and_apart_whatever_the_input(
            segs in proptest::collection::vec((-(1i64 << 40)..(1i64 << 40), 0i64..1_000_000), 0..30),
        ) {
            let entries: Vec<IndexEntry> = segs.iter().enumerate().map(|(i, &(s, d))| entry(i as u64, s, d, false)).collect();
            let got = ranges(&entries);
            for w in got.windows(2) {
                prop_assert!(w[1].from > w[0].end() + GAP_TOLERANCE, "{got:?}");
            }
            for e in &entries {
                prop_assert!(got.iter().any(|r| r.from <= e.start && e.end() <= r.end()), "{e:?} not covered by {got:?}");
            }
            prop_assert_eq!(merge(got.clone()), got);
        }
    }
}

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
/// still counts as continuous: 1 s, in 90 kHz ticks. Timestamps of
/// consecutive segments rarely meet exactly (rounding, a dropped frame).
pub const GAP_TOLERANCE: i64 = 90_000;

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

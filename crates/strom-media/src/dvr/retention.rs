//! Retention planning: which archive files to delete, by depth (`dvr PATH
//! 2d`), by the stream's size cap (`storage_limit 500G`) and by the disk
//! usage of the storage root (`dvr PATH 2d 97%`). Pure: the node lists the
//! files, reads the filesystem's usage and the clock, and deletes what the
//! plan says.
//!
//! Rules shared by every plan:
//! - The unit of deletion is a whole hour of one stream: every file of a
//!   chosen hour (an hour may have several files after a restart), never a
//!   part of one, so the archive only ever loses its oldest hours and never
//!   grows holes inside an hour.
//! - An hour with a `writing` file is never deleted (the writer still
//!   appends to it); older hours are deleted past it.
//! - Oldest hours go first; the plan lists files oldest hour first, files
//!   of one hour in input order.
//!
//! Invariants: a plan lists each file at most once, only files it was
//! given, and never a file of an hour that has a `writing` file.

use std::collections::BTreeMap;
use std::time::Duration;

use super::layout::HOUR_TICKS;
use crate::frame::CLOCK_HZ;

/// One stored file, as retention sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredFile<K> {
    /// The caller's name for the file, returned in plans.
    pub key: K,
    /// Its archive hour, hours since the Unix epoch (UTC).
    pub hour: i64,
    /// Its size, bytes.
    pub bytes: u64,
    /// The writer still appends to it.
    pub writing: bool,
}

/// The files of one archive hour of one stream.
struct Hour<K> {
    hour: i64,
    bytes: u64,
    writing: bool,
    keys: Vec<K>,
}

/// `files` grouped by hour, oldest first.
fn hours<K: Copy>(files: &[StoredFile<K>]) -> Vec<Hour<K>> {
    let mut by_hour: BTreeMap<i64, Hour<K>> = BTreeMap::new();
    for f in files {
        let h = by_hour.entry(f.hour).or_insert_with(|| Hour {
            hour: f.hour,
            bytes: 0,
            writing: false,
            keys: Vec::new(),
        });
        h.bytes = h.bytes.saturating_add(f.bytes);
        h.writing |= f.writing;
        h.keys.push(f.key);
    }
    by_hour.into_values().collect()
}

/// A duration in 90 kHz ticks, saturating at `i64::MAX`.
fn ticks(d: Duration) -> i64 {
    let t = d.as_nanos().saturating_mul(CLOCK_HZ as u128) / 1_000_000_000;
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// The files of ONE stream to delete:
/// 1. by depth (`depth` given): every hour that ended at or before
///    `now - depth`, i.e. `(hour + 1) * HOUR_TICKS <= now - depth`;
/// 2. then by size (`max_bytes` given): while the stream's remaining total
///    (the sum of every file's `bytes`, minus what step 1 deletes) is over
///    `max_bytes`, the oldest remaining hour. This deletes as few hours as
///    needed: after it the total is `<= max_bytes`, and keeping the last
///    hour it chose would leave the total above `max_bytes`. When even
///    deleting every deletable hour leaves it above (the writing hour alone
///    is larger), all deletable hours are deleted.
///
/// Whole hours only, never an hour with a `writing` file (skipped in both
/// steps), oldest hour first. `now` is UTC in 90 kHz ticks.
pub fn plan_stream<K: Copy>(
    files: &[StoredFile<K>],
    now: i64,
    depth: Option<Duration>,
    max_bytes: Option<u64>,
) -> Vec<K> {
    let hours = hours(files);
    let mut total: u64 = hours.iter().fold(0, |t, h| t.saturating_add(h.bytes));
    let mut out = Vec::new();
    let mut deleted = vec![false; hours.len()];
    if let Some(depth) = depth {
        let cutoff = i128::from(now) - i128::from(ticks(depth));
        for (i, h) in hours.iter().enumerate() {
            let end = (i128::from(h.hour) + 1) * i128::from(HOUR_TICKS);
            if !h.writing && end <= cutoff {
                deleted[i] = true;
                total = total.saturating_sub(h.bytes);
                out.extend_from_slice(&h.keys);
            }
        }
    }
    if let Some(max) = max_bytes {
        for (i, h) in hours.iter().enumerate() {
            if total <= max {
                break;
            }
            if !h.writing && !deleted[i] {
                total = total.saturating_sub(h.bytes);
                out.extend_from_slice(&h.keys);
            }
        }
    }
    out
}

/// The files across ALL streams of one storage root to delete so that the
/// filesystem's `used` bytes fall to at most `percent`% of its `total`
/// bytes (`used * 100 <= total * percent`; `percent` above 100 counts as
/// 100), each deletion assumed to free its file's `bytes`. `streams` gives
/// each stream's files (one slice per stream, as for [`plan_stream`]).
///
/// Deletes whole hours of one stream at a time, oldest hour first across
/// the streams (ties: the larger hour first, then the earlier stream),
/// never an hour with a `writing` file, and stops as soon as enough is
/// freed. Empty when already at or under the limit; every deletable hour
/// when even that is not enough.
pub fn plan_disk<'a, K: Copy + 'a>(
    streams: impl IntoIterator<Item = &'a [StoredFile<K>]>,
    used: u64,
    total: u64,
    percent: u8,
) -> Vec<K> {
    let limit = u128::from(total) * u128::from(percent.min(100));
    let mut used = u128::from(used);
    let mut out = Vec::new();
    if used * 100 <= limit {
        return out;
    }
    let mut candidates: Vec<(usize, Hour<K>)> = streams
        .into_iter()
        .enumerate()
        .flat_map(|(stream, files)| hours(files).into_iter().map(move |h| (stream, h)))
        .filter(|(_, h)| !h.writing)
        .collect();
    candidates.sort_by(|(sa, a), (sb, b)| a.hour.cmp(&b.hour).then(b.bytes.cmp(&a.bytes)).then(sa.cmp(sb)));
    for (_, h) in candidates {
        if used * 100 <= limit {
            break;
        }
        used = used.saturating_sub(u128::from(h.bytes));
        out.extend_from_slice(&h.keys);
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const H: i64 = HOUR_TICKS;

    fn f(key: u32, hour: i64, bytes: u64, writing: bool) -> StoredFile<u32> {
        StoredFile {
            key,
            hour,
            bytes,
            writing,
        }
    }

    fn hours_dur(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n * 3600))
    }

    #[test]
    fn depth_deletes_the_hours_that_ended_before_it() {
        // Hours 100..=104; hour 100 has two files (a restart); 104 is being written.
        let files = [
            f(1, 100, 10, false),
            f(2, 100, 10, false),
            f(3, 101, 10, false),
            f(4, 102, 10, false),
            f(5, 103, 10, false),
            f(6, 104, 10, true),
        ];
        // now - 2 h = exactly the end of hour 102: 100..=102 ended at or before it.
        assert_eq!(plan_stream(&files, 104 * H + H, hours_dur(2), None), vec![1, 2, 3, 4]);
        // One tick earlier hour 102 has not ended yet.
        assert_eq!(plan_stream(&files, 104 * H + H - 1, hours_dur(2), None), vec![1, 2, 3]);
        assert_eq!(plan_stream(&files, 104 * H, None, None), Vec::<u32>::new());
        // Everything is out of depth but the writing hour stays.
        assert_eq!(plan_stream(&files, 1000 * H, hours_dur(1), None), vec![1, 2, 3, 4, 5]);
        // Sub-second depths are counted in ticks.
        assert_eq!(
            plan_stream(&files, 101 * H + 1, Some(Duration::from_nanos(11_111)), None),
            vec![1, 2]
        );
        assert_eq!(
            plan_stream(&files, 101 * H, Some(Duration::from_nanos(11_112)), None),
            Vec::<u32>::new()
        );
        assert_eq!(
            plan_stream(&files, i64::MIN, Some(Duration::MAX), None),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn size_deletes_the_oldest_hours_until_under() {
        let files = [
            f(1, 100, 30, false),
            f(2, 101, 20, false),
            f(3, 101, 5, false),
            f(4, 102, 40, false),
            f(5, 103, 7, true),
        ];
        // Total 102.
        assert_eq!(plan_stream(&files, 0, None, Some(102)), Vec::<u32>::new());
        assert_eq!(plan_stream(&files, 0, None, Some(101)), vec![1]);
        assert_eq!(plan_stream(&files, 0, None, Some(72)), vec![1]);
        assert_eq!(plan_stream(&files, 0, None, Some(71)), vec![1, 2, 3]);
        assert_eq!(plan_stream(&files, 0, None, Some(8)), vec![1, 2, 3, 4]);
        // The writing hour alone is over the cap: it stays.
        assert_eq!(plan_stream(&files, 0, None, Some(0)), vec![1, 2, 3, 4]);
        // Depth first, then size on what is left.
        assert_eq!(plan_stream(&files, 102 * H, hours_dur(1), Some(50)), vec![1, 2, 3]);
        assert_eq!(plan_stream(&files, 102 * H, hours_dur(1), Some(40)), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_writing_hour_is_skipped_not_a_wall() {
        // A clock step back left the writer in an older hour than closed ones.
        let files = [
            f(1, 50, 10, true),
            f(2, 60, 10, false),
            f(3, 60, 1, true),
            f(4, 70, 10, false),
        ];
        assert_eq!(plan_stream(&files, 0, None, Some(11)), vec![4]);
        assert_eq!(plan_stream(&files, 100 * H, hours_dur(1), None), vec![4]);
    }

    #[test]
    fn disk_plans_delete_oldest_hours_across_streams() {
        let a = [f(1, 10, 100, false), f(2, 11, 100, false), f(3, 12, 100, true)];
        let b = [
            f(4, 10, 300, false),
            f(5, 10, 50, false),
            f(6, 11, 10, false),
            f(7, 12, 5, false),
        ];
        let both = || [&a[..], &b[..]];
        // 1000 of 1000 used, limit 90%: 100 to free; hour 10 of b (350) is the larger of the oldest.
        assert_eq!(plan_disk(both(), 1000, 1000, 90), vec![4, 5]);
        // 400 to free: then hour 10 of a.
        assert_eq!(plan_disk(both(), 1000, 1000, 60), vec![4, 5, 1]);
        assert_eq!(plan_disk(both(), 1000, 1000, 55), vec![4, 5, 1]);
        // 460: then hour 11, the larger (a's) first.
        assert_eq!(plan_disk(both(), 1000, 1000, 54), vec![4, 5, 1, 2]);
        // Never the writing hour 12 of a; hour 12 of b goes.
        assert_eq!(plan_disk(both(), 1000, 1000, 0), vec![4, 5, 1, 2, 6, 7]);
        assert_eq!(
            plan_disk(both(), 900, 1000, 90),
            Vec::<u32>::new(),
            "exactly at the limit"
        );
        assert_eq!(plan_disk(both(), 901, 1000, 90), vec![4, 5]);
        assert_eq!(
            plan_disk(both(), 1000, 1000, 200),
            Vec::<u32>::new(),
            "over 100% is 100%"
        );
        assert_eq!(plan_disk(both(), 1001, 1000, 100), vec![4, 5]);
        assert_eq!(plan_disk(both(), u64::MAX, u64::MAX, 99).len(), 6);
        // Equal hours and sizes: the earlier stream first.
        let c = [f(8, 10, 350, false)];
        assert_eq!(plan_disk([&c[..], &b[..]], 1000, 1000, 90), vec![8]);
        assert_eq!(plan_disk(Vec::<&[StoredFile<u32>]>::new(), 10, 1, 1), Vec::<u32>::new());
    }

    fn any_files() -> impl Strategy<Value = Vec<StoredFile<u32>>> {
        proptest::collection::vec((0i64..12, 0u64..1000, proptest::bool::weighted(0.15)), 0..30).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (hour, bytes, writing))| f(i as u32, hour, bytes, writing))
                .collect()
        })
    }

    /// Checks what every plan promises: whole hours, none writing, no key twice.
    fn check_whole_hours(files: &[StoredFile<u32>], plan: &[u32]) -> Result<BTreeSet<i64>, TestCaseError> {
        let keys: BTreeSet<u32> = plan.iter().copied().collect();
        prop_assert_eq!(keys.len(), plan.len(), "a key twice");
        let deleted: BTreeSet<i64> = files.iter().filter(|f| keys.contains(&f.key)).map(|f| f.hour).collect();
        for f in files {
            if deleted.contains(&f.hour) {
                prop_assert!(keys.contains(&f.key), "hour {} only partly deleted", f.hour);
                prop_assert!(!f.writing, "writing hour {} deleted", f.hour);
            }
        }
        // Oldest first.
        let order: Vec<i64> = plan
            .iter()
            .filter_map(|k| files.iter().find(|f| f.key == *k).map(|f| f.hour))
            .collect();
        prop_assert!(order.windows(2).all(|w| w[0] <= w[1]), "not oldest first: {order:?}");
        Ok(deleted)
    }

    proptest! {
        #[test]
        fn size_plans_delete_just_enough_oldest_hours(files in any_files(), max in 0u64..15_000) {
            let plan = plan_stream(&files, 0, None, Some(max));
            let deleted = check_whole_hours(&files, &plan)?;
            let total: u64 = files.iter().map(|f| f.bytes).sum();
            let freed: u64 = files.iter().filter(|f| deleted.contains(&f.hour)).map(|f| f.bytes).sum();
            let writing: BTreeSet<i64> = files.iter().filter(|f| f.writing).map(|f| f.hour).collect();
            let deletable: BTreeSet<i64> = files.iter().map(|f| f.hour).filter(|h| !writing.contains(h)).collect();
            if total - freed > max {
                prop_assert_eq!(&deleted, &deletable, "over the cap with hours left");
            }
            if let Some(&last) = deleted.last() {
                let last_bytes: u64 = files.iter().filter(|f| f.hour == last).map(|f| f.bytes).sum();
                prop_assert!(total - freed + last_bytes > max, "deleting one hour fewer was enough");
            }
            // A prefix of the deletable hours.
            prop_assert!(deletable.iter().take(deleted.len()).eq(deleted.iter()));
        }

        #[test]
        fn depth_plans_delete_every_ended_hour_and_no_other(files in any_files(), now_h in 0i64..14, depth_h in 0u64..5) {
            let now = now_h * H;
            let plan = plan_stream(&files, now, hours_dur(depth_h), None);
            let deleted = check_whole_hours(&files, &plan)?;
            for f in &files {
                let writing_hour = files.iter().any(|g| g.hour == f.hour && g.writing);
                let ended = (f.hour + 1) * H <= now - depth_h as i64 * H;
                prop_assert_eq!(deleted.contains(&f.hour), ended && !writing_hour, "{:?}", f);
            }
        }

        #[test]
        fn disk_plans_free_just_enough(
            streams in proptest::collection::vec(any_files(), 0..4),
            used in 0u64..40_000,
            total in 1u64..40_000,
            percent in 0u8..=100,
        ) {
            // Keys unique across streams: stream * 1000 + index.
            let streams: Vec<Vec<StoredFile<u32>>> = streams
                .into_iter()
                .enumerate()
                .map(|(s, fs)| fs.into_iter().map(|f| StoredFile { key: s as u32 * 1000 + f.key, ..f }).collect())
                .collect();
            let plan = plan_disk(streams.iter().map(Vec::as_slice), used, total, percent);
            let mut freed = 0u64;
            // (hour, bytes) of each deleted stream hour, in plan order.
            let mut units: Vec<(i64, u64)> = Vec::new();
            for (s, fs) in streams.iter().enumerate() {
                let mine: Vec<u32> = plan.iter().copied().filter(|k| *k / 1000 == s as u32).collect();
                check_whole_hours(fs, &mine)?;
            }
            let mut seen: BTreeSet<(u32, i64)> = BTreeSet::new();
            for k in &plan {
                let s = *k / 1000;
                let fs = &streams[s as usize];
                let file = fs.iter().find(|f| f.key == *k).ok_or_else(|| TestCaseError::fail("unknown key"))?;
                if seen.insert((s, file.hour)) {
                    let bytes: u64 = fs.iter().filter(|f| f.hour == file.hour).map(|f| f.bytes).sum();
                    units.push((file.hour, bytes));
                    freed += bytes;
                }
            }
            prop_assert!(units.windows(2).all(|w| (w[0].0, std::cmp::Reverse(w[0].1)) <= (w[1].0, std::cmp::Reverse(w[1].1))), "order {units:?}");
            let under = |u: u64| u128::from(u) * 100 <= u128::from(total) * u128::from(percent);
            let after = used.saturating_sub(freed);
            if !under(after) {
                let deletable: usize = streams
                    .iter()
                    .map(|fs| {
                        let hs: BTreeSet<i64> = fs.iter().map(|f| f.hour).collect();
                        hs.into_iter().filter(|h| !fs.iter().any(|f| f.hour == *h && f.writing)).count()
                    })
                    .sum();
                prop_assert_eq!(units.len(), deletable, "over the limit with hours left");
            }
            if let Some(&(_, last)) = units.last() {
                prop_assert!(!under(used.saturating_sub(freed - last)), "one hour fewer was enough");
            }
        }
    }
}

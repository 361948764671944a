//! The archive of one stream: a catalogue of its files in a [`Store`], the
//! writer that appends to it, and the reads every archive URL needs.
//!
//! The catalogue is the store's file list (names only: (UTC hour, first
//! sequence number) and sizes), read once at start or on first use. An
//! index is read only when a request needs its hour, checked against its
//! data file (a torn tail is cut and counted, a missing or damaged index is
//! rebuilt from the data), and kept in a small cache; what ranges and
//! playlists need from a file that left the cache (its ranges, its sequence
//! span, its discontinuities) is kept as a summary of a few words.
//!
//! Invariants:
//! - Files in key order hold strictly increasing sequence numbers, so a
//!   sequence number is found by one walk down the keys and one binary
//!   search in an index.
//! - At most [`MAX_LOADED`] indexes are held in memory besides the file
//!   being written; every index and data read is bounded.
//! - Blocking: every method does file I/O. Async callers use
//!   `spawn_blocking`. Methods take the catalogue lock only around memory
//!   updates, never across a store call.

use super::store::{Appender, Listed, Store};
use super::DvrMetrics;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use strom_config::DvrConfig;
use strom_media::dvr::index::{self, IndexEntry};
use strom_media::dvr::layout::{self, FileKey, FileKind, HOUR_TICKS};
use strom_media::dvr::ranges::{self, Range};
use strom_media::Segment;

/// Indexes kept in memory per stream (besides the one being written): a
/// day and a bit, what a 24-hour archive playlist reads (about 86 kB per
/// hour of 2-second segments).
pub const MAX_LOADED: usize = 26;
/// Largest index file read, bytes (an hour of 40 ms segments is 4.3 MB).
pub const MAX_INDEX_BYTES: u64 = 16 << 20;
/// Data read at a time while rebuilding an index, bytes (at least one
/// whole message of the wire decoder's limit).
pub const REBUILD_CHUNK: u64 = 64 << 20;
/// Largest single segment message read, bytes (the wire decoder's limit).
pub const MAX_MESSAGE: u64 = strom_media::wire::DEFAULT_MAX_MESSAGE as u64;

/// What is known of one file without holding its index.
#[derive(Clone, Debug, Default)]
struct Summary {
    last_seq: u64,
    /// The first segment carries its own discontinuity flag.
    first_flagged: bool,
    start: i64,
    end: i64,
    ranges: Vec<Range>,
    /// Discontinuities inside the file: flagged segments plus gaps.
    discontinuities: u64,
}

#[derive(Default)]
struct FileState {
    data_bytes: u64,
    index_bytes: u64,
    entries: Option<Arc<Vec<IndexEntry>>>,
    summary: Option<Summary>,
    writing: bool,
}

#[derive(Default)]
struct Catalogue {
    files: BTreeMap<FileKey, FileState>,
    /// When the store's file list was last read.
    scanned: Option<std::time::Instant>,
    /// Discontinuities of files deleted since start, so that a sliding
    /// playlist's EXT-X-DISCONTINUITY-SEQUENCE never goes back.
    deleted_discontinuities: u64,
    /// Loaded indexes, least recently used first.
    lru: VecDeque<FileKey>,
    /// Segments found damaged on reading (at most [`MAX_DAMAGED`]): left out
    /// whenever their index is loaded again.
    damaged: std::collections::HashSet<u64>,
}

/// Damaged segments remembered per stream.
pub const MAX_DAMAGED: usize = 10_000;

/// What [`Archive::recover`] found.
#[derive(Default)]
struct Recovered {
    entries: Vec<IndexEntry>,
    /// End of the last whole valid message (`from` when there is none).
    end: u64,
    /// Damaged bytes between valid messages (holes, not the tail).
    skipped: u64,
}

/// The file being written.
struct Open {
    key: FileKey,
    appender: Box<dyn Appender>,
    offset: u64,
    last_seq: u64,
}

/// One stream's archive.
pub struct Archive {
    pub name: Arc<str>,
    pub cfg: DvrConfig,
    dir: String,
    store: Arc<dyn Store>,
    metrics: DvrMetrics,
    cat: Mutex<Catalogue>,
    open: Mutex<Option<Open>>,
    last_error: Mutex<Option<String>>,
    log: crate::util::LogLimiter,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not in the archive")]
    NotFound,
    #[error("archive read failed: {0}")]
    Io(#[from] io::Error),
    #[error("archive data damaged: {0}")]
    Damaged(String),
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("name", &self.name)
            .field("root", &self.cfg.root)
            .finish()
    }
}

/// An entry whose values can be true: a start between 1970 and 9999, a
/// duration from 0 to 10 minutes, a target of at most an hour.
fn sane(e: &IndexEntry) -> bool {
    const YEAR_9999: i64 = 253_402_300_799 * strom_media::CLOCK_HZ;
    (0..=YEAR_9999).contains(&e.start)
        && (0..=600 * strom_media::CLOCK_HZ).contains(&e.duration)
        && e.target_duration <= 3600
}

/// Whether `e` does not continue `prev` in the archive: its own
/// discontinuity flag, a gap in time, or a jump in sequence numbers (a
/// restart, or segments the writer dropped): playlists write
/// EXT-X-DISCONTINUITY there.
pub fn breaks(prev: Option<&IndexEntry>, e: &IndexEntry) -> bool {
    e.discontinuity || prev.is_some_and(|p| ranges::is_gap(p.end(), e.start) || p.seq.checked_add(1) != Some(e.seq))
}

fn summarize(entries: &[IndexEntry]) -> Option<Summary> {
    let (first, last) = (entries.first()?, entries.last()?);
    let mut disc = 0u64;
    let mut prev: Option<&IndexEntry> = None;
    for e in entries {
        if breaks(prev, e) {
            disc += 1;
        }
        prev = Some(e);
    }
    Some(Summary {
        last_seq: last.seq,
        first_flagged: first.discontinuity,
        start: first.start,
        end: last.end(),
        ranges: ranges::ranges(entries),
        discontinuities: disc,
    })
}

impl Archive {
    /// The archive of stream `name` in `store`. Reads nothing yet.
    pub fn new(name: &str, cfg: DvrConfig, store: Arc<dyn Store>, metrics: DvrMetrics) -> Archive {
        Archive {
            name: Arc::from(name),
            dir: layout::stream_dir(name),
            cfg,
            store,
            metrics,
            cat: Mutex::new(Catalogue::default()),
            open: Mutex::new(None),
            last_error: Mutex::new(None),
            log: crate::util::LogLimiter::new(std::time::Duration::from_secs(60)),
        }
    }

    fn cat(&self) -> std::sync::MutexGuard<'_, Catalogue> {
        self.cat.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn metrics(&self) -> &DvrMetrics {
        &self.metrics
    }

    /// Records a failed segment write: counted as an error and a dropped
    /// segment, kept as the last error, logged at most once a minute.
    pub fn write_failed(&self, e: &io::Error) {
        self.metrics.write_errors.inc();
        self.metrics.dropped.inc();
        let place = format!("writing the archive under {}", self.cfg.root.join(&self.dir).display());
        self.note_error(&place, e);
        if let Some(held) = self.log.allow(std::time::Instant::now()) {
            tracing::warn!(stream = %self.name, error = %e, held_back = held, "archive write failed: segment not recorded");
        }
    }

    /// The newest write or read error, for the stream status.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn note_error(&self, what: &str, e: &dyn std::fmt::Display) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{what}: {e}"));
    }

    /// Reads the store's file list once (names and sizes only), or again
    /// when it is older than the store's `listing_ttl`.
    pub fn scan(&self) -> io::Result<()> {
        let fresh = match (self.cat().scanned, self.store.listing_ttl()) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(at), Some(ttl)) => at.elapsed() < ttl,
        };
        if fresh {
            return Ok(());
        }
        self.rescan()
    }

    /// Reads the store's file list again, keeping what is loaded unless the
    /// file changed size (another node appended to it, or replication
    /// wrote it): such a file's index is read again on next use.
    pub fn rescan(&self) -> io::Result<()> {
        let listed = self.store.list(&self.dir)?;
        let mut cat = self.cat();
        let mut seen: BTreeMap<FileKey, (u64, u64)> = BTreeMap::new();
        for Listed { key, kind, bytes } in listed {
            let e = seen.entry(key).or_default();
            match kind {
                FileKind::Data => e.0 = bytes,
                FileKind::Index => e.1 = bytes,
            }
        }
        cat.files.retain(|k, f| f.writing || seen.contains_key(k));
        let mut changed = Vec::new();
        for (key, (data, idx)) in seen {
            let f = cat.files.entry(key).or_default();
            if !f.writing {
                if (f.entries.is_some() || f.summary.is_some()) && (f.data_bytes, f.index_bytes) != (data, idx) {
                    f.entries = None;
                    f.summary = None;
                    changed.push(key);
                }
                f.data_bytes = data;
                f.index_bytes = idx;
            }
        }
        cat.lru.retain(|k| !changed.contains(k));
        cat.scanned = Some(std::time::Instant::now());
        drop(cat);
        self.update_gauges(None);
        Ok(())
    }

    /// Bytes on disk and recorded depth (seconds from the oldest start to
    /// `now_ticks`), refreshed into the stream's gauges.
    pub fn update_gauges(&self, now_ticks: Option<i64>) -> (u64, u64) {
        let cat = self.cat();
        let bytes: u64 = cat.files.values().map(|f| f.data_bytes + f.index_bytes).sum();
        // The oldest file's first segment; its hour's start until its index is read.
        let oldest = cat
            .files
            .iter()
            .next()
            .map(|(k, f)| f.summary.as_ref().map_or(k.hour * HOUR_TICKS, |s| s.start));
        drop(cat);
        let depth = match (now_ticks, oldest) {
            (Some(now), Some(o)) => u64::try_from((now - o) / strom_media::CLOCK_HZ).unwrap_or(0),
            _ => 0,
        };
        self.metrics.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        if now_ticks.is_some() {
            self.metrics.depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
        (bytes, depth)
    }

    /// Every file as retention sees it: key, hour, bytes, being written.
    pub fn files(&self) -> Vec<strom_media::dvr::retention::StoredFile<FileKey>> {
        self.cat()
            .files
            .iter()
            .map(|(k, f)| strom_media::dvr::retention::StoredFile {
                key: *k,
                hour: k.hour,
                bytes: f.data_bytes + f.index_bytes,
                writing: f.writing,
            })
            .collect()
    }

    // ---- reading ----

    /// The index entries of `key`, loaded (and checked) on first use.
    fn entries(&self, key: FileKey) -> Result<Arc<Vec<IndexEntry>>, ReadError> {
        {
            let mut cat = self.cat();
            let Some(f) = cat.files.get(&key) else {
                return Err(ReadError::NotFound);
            };
            if let Some(e) = f.entries.clone() {
                cat.lru.retain(|k| *k != key);
                cat.lru.push_back(key);
                return Ok(e);
            }
        }
        let (mut entries, data_bytes, index_bytes) = self.load(key)?;
        let mut cat = self.cat();
        if !cat.damaged.is_empty() {
            entries.retain(|e| !cat.damaged.contains(&e.seq));
        }
        let entries = Arc::new(entries);
        let summary = summarize(&entries);
        let Some(f) = cat.files.get_mut(&key) else {
            return Err(ReadError::NotFound);
        };
        f.data_bytes = data_bytes;
        f.index_bytes = index_bytes;
        f.summary = summary;
        f.entries = Some(entries.clone());
        cat.lru.retain(|k| *k != key);
        cat.lru.push_back(key);
        while cat.lru.len() > MAX_LOADED {
            let Some(old) = cat.lru.pop_front() else { break };
            if let Some(f) = cat.files.get_mut(&old) {
                if !f.writing {
                    f.entries = None;
                }
            }
        }
        Ok(entries)
    }

    /// The summary of `key`, reading its index once without keeping the
    /// entries (listing every range must not fill the index cache).
    fn summary(&self, key: FileKey) -> Result<Option<Summary>, ReadError> {
        if let Some(s) = self.cat().files.get(&key).and_then(|f| f.summary.clone()) {
            return Ok(Some(s));
        }
        let (mut entries, data_bytes, index_bytes) = self.load(key)?;
        let mut cat = self.cat();
        if !cat.damaged.is_empty() {
            entries.retain(|e| !cat.damaged.contains(&e.seq));
        }
        let s = summarize(&entries);
        if let Some(f) = cat.files.get_mut(&key) {
            f.data_bytes = data_bytes;
            f.index_bytes = index_bytes;
            f.summary = s.clone();
        }
        Ok(s)
    }

    /// Reads and checks the index of a finished file against its data:
    /// returns the entries and the file sizes after repair.
    fn load(&self, key: FileKey) -> Result<(Vec<IndexEntry>, u64, u64), ReadError> {
        let data_bytes = {
            let cat = self.cat();
            match cat.files.get(&key) {
                Some(f) if f.writing => {
                    // Being written: the writer keeps its entries in memory.
                    return Ok((
                        f.entries.as_deref().cloned().unwrap_or_default(),
                        f.data_bytes,
                        f.index_bytes,
                    ));
                }
                Some(f) => f.data_bytes,
                None => return Err(ReadError::NotFound),
            }
        };
        let raw = self.store.read_all(&self.dir, key, FileKind::Index, MAX_INDEX_BYTES);
        let (mut entries, index_ok, mut rewrite) = match raw.as_deref().map(index::parse_index) {
            Ok(Ok(p)) if p.first_seq == key.first_seq => {
                let torn = p.torn_bytes > 0;
                (p.entries, true, torn)
            }
            _ => (Vec::new(), false, true),
        };
        // Entries with impossible times (a hostile or broken index) end it.
        if let Some(bad) = entries.iter().position(|e| !sane(e)) {
            entries.truncate(bad);
            rewrite = true;
        }
        if !self.store.writable() {
            // Another node's archive: its index is what it serves; this node
            // never scans, cuts or rewrites its files.
            let end = entries.last().map_or(0, |e| e.offset + u64::from(e.len));
            let index_len = (index::HEADER_LEN + entries.len() * index::ENTRY_LEN) as u64;
            return Ok((entries, end.min(data_bytes), index_len));
        }
        if !index_ok {
            self.metrics.index_rebuilds.inc();
        }
        // Entries that point past the data (data lost) are dropped.
        while entries.last().is_some_and(|e| e.offset + u64::from(e.len) > data_bytes) {
            entries.pop();
            rewrite = true;
        }
        let indexed_end = entries.last().map_or(0, |e| e.offset + u64::from(e.len));
        let mut data_len = data_bytes;
        let mut persist = true;
        if indexed_end < data_bytes {
            // Data the index does not cover: rebuild those entries from the data.
            let r = self.recover(key, indexed_end, data_bytes, entries.last().map(|e| e.seq))?;
            if !r.entries.is_empty() {
                rewrite = true;
            }
            entries.extend(r.entries.into_iter().take_while(sane));
            if r.skipped > 0 {
                // Damage in the middle: the segments after it stay, the hole
                // shows in the ranges. The index on disk keeps its valid
                // prefix (a rebuilt index must tile the data), so the next
                // load finds the hole again.
                persist = false;
                self.metrics.damaged.inc_by(r.skipped);
                if let Some(held) = self.log.allow(std::time::Instant::now()) {
                    tracing::warn!(
                        stream = %self.name,
                        file = %layout::relative_path(key, FileKind::Data),
                        damaged_bytes = r.skipped,
                        held_back = held,
                        "archive file is damaged inside: the damaged segments are skipped"
                    );
                }
            }
            if r.end < data_bytes {
                self.metrics.torn_tails.inc();
                if let Some(held) = self.log.allow(std::time::Instant::now()) {
                    tracing::warn!(
                        stream = %self.name,
                        file = %layout::relative_path(key, FileKind::Data),
                        cut = data_bytes - r.end,
                        held_back = held,
                        "archive file has a torn or damaged tail: cut back to its last whole segment"
                    );
                }
                if let Err(e) = self.store.truncate(&self.dir, key, FileKind::Data, r.end) {
                    self.note_error("truncating a torn archive file", &e);
                }
                data_len = r.end;
            }
        }
        let rewrite = rewrite && persist;
        let mut index_len = (index::HEADER_LEN + entries.len() * index::ENTRY_LEN) as u64;
        if rewrite {
            let mut content = Vec::with_capacity(index_len as usize);
            content.extend_from_slice(&index::encode_header(key.first_seq));
            for e in &entries {
                content.extend_from_slice(&e.encode());
            }
            if let Err(e) = self.store.replace(&self.dir, key, FileKind::Index, &content) {
                self.note_error("rewriting an archive index", &e);
                index_len = 0;
            }
        }
        Ok((entries, data_len, index_len))
    }

    /// Re-derives the entries of `key`'s data from `from` to `len` in chunks
    /// of [`REBUILD_CHUNK`]. A damaged message followed by valid ones is
    /// skipped (the decoder resynchronizes on the next message magic); a
    /// damaged or short tail with nothing valid after it ends the data.
    fn recover(&self, key: FileKey, from: u64, len: u64, after: Option<u64>) -> Result<Recovered, ReadError> {
        let mut out = Recovered::default();
        let mut pos = from;
        let mut last = after;
        out.end = from;
        while pos < len {
            let want = (len - pos).min(REBUILD_CHUNK);
            let chunk = self.store.read(&self.dir, key, FileKind::Data, pos, want)?;
            if chunk.is_empty() {
                break;
            }
            let r = index::rebuild(&chunk, pos, last);
            if let Some(e) = r.entries.last() {
                last = Some(e.seq);
            }
            out.entries.extend(r.entries);
            pos += r.valid_len;
            if r.torn_bytes == 0 {
                continue;
            }
            let at_eof = pos + r.torn_bytes >= len;
            let whole_chunk = chunk.len() as u64 == REBUILD_CHUNK;
            if r.valid_len > 0 && whole_chunk && !at_eof {
                // Cut by the chunk's end: read on from the last whole message.
                continue;
            }
            // Damage at `pos`: look for the next message magic after it.
            let rest = &chunk[usize::try_from(r.valid_len).unwrap_or(chunk.len())..];
            match rest
                .windows(strom_media::wire::MAGIC.len())
                .skip(1)
                .position(|w| w == strom_media::wire::MAGIC)
            {
                Some(i) => pos += i as u64 + 1,
                // No magic in this chunk's rest: skip all of it.
                None if !at_eof => pos += rest.len() as u64,
                None => break,
            }
        }
        // The data ends after the last whole message; damaged bytes before
        // that are holes, after it a torn tail.
        out.end = out.entries.last().map_or(from, |e| e.offset + u64::from(e.len));
        let held: u64 = out.entries.iter().map(|e| u64::from(e.len)).sum();
        out.skipped = (out.end - from).saturating_sub(held);
        Ok(out)
    }

    /// Entries whose span meets `[from, to)` (UTC ticks), in order, at most `max`.
    pub fn entries_between(&self, from: i64, to: i64, max: usize) -> Result<Vec<IndexEntry>, ReadError> {
        self.scan()?;
        // A segment may start in the hour before `from` and run into it.
        let (lo, hi) = (layout::hour_of(from) - 1, layout::hour_of(to.saturating_sub(1)));
        let keys: Vec<FileKey> = self
            .cat()
            .files
            .keys()
            .filter(|k| k.hour >= lo && k.hour <= hi)
            .copied()
            .collect();
        let mut out = Vec::new();
        for key in keys {
            let entries = match self.entries(key) {
                Ok(e) => e,
                Err(ReadError::NotFound) => continue,
                Err(e) => {
                    self.note_error("reading an archive index", &e);
                    continue;
                }
            };
            for e in entries.iter().filter(|e| e.end() > from && e.start < to) {
                if out.len() >= max {
                    return Ok(out);
                }
                out.push(*e);
            }
        }
        Ok(out)
    }

    /// The newest `count` entries that start at or before `at` (UTC ticks).
    pub fn entries_before(&self, at: i64, count: usize) -> Result<Vec<IndexEntry>, ReadError> {
        self.scan()?;
        let keys: Vec<FileKey> = self
            .cat()
            .files
            .keys()
            .rev()
            .filter(|k| k.hour <= layout::hour_of(at))
            .copied()
            .collect();
        let mut out: Vec<IndexEntry> = Vec::new();
        for key in keys {
            let entries = match self.entries(key) {
                Ok(e) => e,
                Err(ReadError::NotFound) => continue,
                Err(e) => return Err(e),
            };
            for e in entries.iter().rev().filter(|e| e.start <= at) {
                out.push(*e);
                if out.len() >= count {
                    out.reverse();
                    return Ok(out);
                }
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The file and entry of segment `seq`.
    pub fn find(&self, seq: u64) -> Result<(FileKey, IndexEntry), ReadError> {
        self.scan()?;
        let candidates: Vec<FileKey> = self
            .cat()
            .files
            .keys()
            .rev()
            .filter(|k| k.first_seq <= seq)
            .take(2)
            .copied()
            .collect();
        for key in candidates {
            let entries = self.entries(key)?;
            if let Ok(i) = entries.binary_search_by_key(&seq, |e| e.seq) {
                return Ok((key, entries[i]));
            }
        }
        Err(ReadError::NotFound)
    }

    /// The wire message of `entry` in `key`, exactly as stored.
    pub fn message(&self, key: FileKey, entry: &IndexEntry) -> Result<Bytes, ReadError> {
        if u64::from(entry.len) > MAX_MESSAGE {
            return Err(ReadError::Damaged("segment over the message limit".into()));
        }
        let b = self
            .store
            .read(&self.dir, key, FileKind::Data, entry.offset, u64::from(entry.len))?;
        if b.len() != entry.len as usize {
            return Err(ReadError::Damaged("segment cut short".into()));
        }
        Ok(b)
    }

    /// Segment `seq` decoded from its stored message.
    /// A segment whose bytes turn out damaged is dropped from the
    /// catalogue (the ranges then show the hole) and counted.
    pub fn segment(&self, seq: u64) -> Result<Segment, ReadError> {
        let (key, entry) = self.find(seq)?;
        let decoded = self.message(key, &entry).and_then(|m| decode_one(&m));
        if let Err(ReadError::Damaged(why)) = &decoded {
            self.metrics.damaged.inc_by(u64::from(entry.len));
            tracing::warn!(
                stream = %self.name,
                file = %layout::relative_path(key, FileKind::Data),
                seq,
                why = %why,
                "archived segment is damaged: skipped"
            );
            self.forget(key, seq);
        }
        decoded
    }

    /// Drops segment `seq` of `key` from the loaded catalogue.
    fn forget(&self, key: FileKey, seq: u64) {
        let mut cat = self.cat();
        if cat.damaged.len() < MAX_DAMAGED {
            cat.damaged.insert(seq);
        }
        if let Some(f) = cat.files.get_mut(&key) {
            if let Some(entries) = f.entries.as_mut() {
                Arc::make_mut(entries).retain(|e| e.seq != seq);
                f.summary = summarize(entries);
            }
        }
    }

    /// The recorded ranges, oldest first (every file's summary, loading the
    /// indexes not summarized yet).
    pub fn ranges(&self) -> Result<Vec<Range>, ReadError> {
        self.scan()?;
        let keys: Vec<FileKey> = self.cat().files.keys().copied().collect();
        let mut all = Vec::new();
        for key in keys {
            let known = self.cat().files.get(&key).and_then(|f| f.summary.clone());
            let summary = match known {
                Some(s) => Some(s),
                None => match self.summary(key) {
                    Ok(s) => s,
                    Err(ReadError::NotFound) => None,
                    Err(e) => {
                        self.note_error("reading an archive index", &e);
                        None
                    }
                },
            };
            if let Some(s) = summary {
                all.extend(s.ranges);
            }
        }
        Ok(ranges::merge(all))
    }

    /// Discontinuities recorded before segment `seq` (flags and gaps), for
    /// EXT-X-DISCONTINUITY-SEQUENCE.
    /// Files before the one holding `seq` are counted from their summaries
    /// (an index is read once to summarize it, not kept); a gap between two
    /// files counts like a gap inside one.
    pub fn discontinuities_before(&self, seq: u64) -> u64 {
        let keys: Vec<FileKey> = {
            let cat = self.cat();
            cat.files.keys().filter(|k| k.first_seq <= seq).copied().collect()
        };
        // (end, seq) of the last segment counted.
        let joins = |prev: Option<(i64, u64)>, start: i64, seq: u64| {
            prev.is_none_or(|(end, last)| !ranges::is_gap(end, start) && last.checked_add(1) == Some(seq))
        };
        let mut n = self.cat().deleted_discontinuities;
        let mut prev: Option<(i64, u64)> = None;
        for key in keys {
            let Some(s) = self.summary(key).ok().flatten() else {
                continue;
            };
            if s.last_seq < seq {
                // The file's own breaks, and one where it meets the file
                // before (unless its first segment is flagged already).
                let boundary = !joins(prev, s.start, key.first_seq);
                n += s.discontinuities + u64::from(boundary && !s.first_flagged);
                prev = Some((s.end, s.last_seq));
                continue;
            }
            let Ok(entries) = self.entries(key) else { continue };
            for e in entries.iter().filter(|e| e.seq < seq) {
                n += u64::from(e.discontinuity || !joins(prev, e.start, e.seq));
                prev = Some((e.end(), e.seq));
            }
        }
        n
    }

    // ---- writing ----

    /// Appends a finished segment (its wire message `msg`). Opens a new file
    /// at the first segment and at every UTC hour; finishing a file syncs it.
    /// `Ok(false)`: the archive holds the segment already; nothing written.
    pub fn write(&self, seg: &Segment, msg: &[u8]) -> io::Result<bool> {
        self.scan()?;
        let hour = layout::hour_of(seg.start);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open
            .as_ref()
            .is_some_and(|o| o.key.hour != hour || seg.seq <= o.last_seq)
        {
            self.finish(&mut open);
        }
        if open.is_none() {
            // A segment the archive already holds (a restreamer resuming
            // from its source's window after a restart) is not written twice.
            if self.newest_seq(hour).is_some_and(|n| seg.seq <= n) {
                return Ok(false);
            }
            let key = FileKey {
                hour,
                first_seq: seg.seq,
            };
            let appender = self.store.create(&self.dir, key, &index::encode_header(seg.seq))?;
            let mut cat = self.cat();
            let f = cat.files.entry(key).or_default();
            f.writing = true;
            f.data_bytes = 0;
            f.index_bytes = index::HEADER_LEN as u64;
            f.entries = Some(Arc::new(Vec::new()));
            drop(cat);
            *open = Some(Open {
                key,
                appender,
                offset: 0,
                last_seq: 0,
            });
        }
        let Some(o) = open.as_mut() else {
            return Ok(false);
        };
        let len = u32::try_from(msg.len()).map_err(|_| io::Error::other("segment over 4 GiB"))?;
        let entry = IndexEntry::of(seg, o.offset, len);
        // On error the appender cut the partial write back: the next
        // segment is tried on the same file (a full disk must not leave a
        // new empty file per segment).
        o.appender.append(msg, &entry.encode())?;
        o.offset += msg.len() as u64;
        o.last_seq = seg.seq;
        let key = o.key;
        let mut cat = self.cat();
        if let Some(f) = cat.files.get_mut(&key) {
            f.data_bytes += msg.len() as u64;
            f.index_bytes += index::ENTRY_LEN as u64;
            // Copies only while a reader still holds the previous list.
            let v = Arc::make_mut(f.entries.get_or_insert_with(Default::default));
            v.push(entry);
            f.summary = summarize(v);
        }
        Ok(true)
    }

    /// The newest segment number recorded, reading the newest file's index.
    /// Files of hours after `hour` + 1 (a clock that stepped back, a stray
    /// name) and files without a readable segment do not count: they must
    /// not stop recording.
    fn newest_seq(&self, hour: i64) -> Option<u64> {
        let keys: Vec<FileKey> = self.cat().files.keys().rev().copied().collect();
        keys.into_iter()
            .filter(|k| k.hour <= hour.saturating_add(1))
            .find_map(|k| self.entries(k).ok().and_then(|e| e.last().map(|l| l.seq)))
    }

    /// Syncs and closes the file being written, if any.
    fn finish(&self, open: &mut Option<Open>) {
        let Some(mut o) = open.take() else { return };
        if o.offset == 0 {
            // Not one segment made it: no empty file pair stays behind.
            drop(o.appender);
            let _ = self.store.delete(&self.dir, o.key);
            let mut cat = self.cat();
            cat.files.remove(&o.key);
            cat.lru.retain(|k| *k != o.key);
            return;
        }
        if let Err(e) = o.appender.sync() {
            self.metrics.write_errors.inc();
            self.note_error("syncing an archive file", &e);
            tracing::warn!(stream = %self.name, error = %e, "archive file could not be synced");
        }
        let mut cat = self.cat();
        if let Some(f) = cat.files.get_mut(&o.key) {
            f.writing = false;
            let key = o.key;
            cat.lru.retain(|k| *k != key);
            cat.lru.push_back(key);
        }
    }

    /// Closes the file being written (tests; a stream that is removed).
    pub fn close(&self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        self.finish(&mut open);
    }

    /// Makes what was written durable and keeps the file open, so a segment
    /// flushed after this (a stream stopping at shutdown) still lands in
    /// the same file.
    pub fn sync(&self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = open.as_mut() {
            if let Err(e) = o.appender.sync() {
                self.metrics.write_errors.inc();
                self.note_error("syncing an archive file", &e);
            }
        }
    }

    // ---- deleting ----

    /// Deletes whole files; returns the bytes freed. Files being written are kept.
    pub fn delete(&self, keys: &[FileKey], reason: &'static str) -> (usize, u64) {
        let mut freed = 0;
        let mut files = 0;
        for key in keys {
            let summary = {
                let cat = self.cat();
                match cat.files.get(key) {
                    Some(f) if !f.writing => f.summary.clone(),
                    _ => continue,
                }
            };
            match self.store.delete(&self.dir, *key) {
                Ok(n) => {
                    freed += n;
                    files += 1;
                    let mut cat = self.cat();
                    cat.files.remove(key);
                    cat.lru.retain(|k| k != key);
                    // What `discontinuities_before` counted for this (oldest)
                    // file: its own, and the break where the next one meets it.
                    let next = cat
                        .files
                        .range(*key..)
                        .next()
                        .and_then(|(k, f)| f.summary.as_ref().map(|s| (k.first_seq, s.start, s.first_flagged)));
                    if let Some(s) = summary {
                        let boundary = next.is_some_and(|(first_seq, start, flagged)| {
                            !flagged && (ranges::is_gap(s.end, start) || s.last_seq.checked_add(1) != Some(first_seq))
                        });
                        cat.deleted_discontinuities += s.discontinuities + u64::from(boundary);
                    }
                }
                Err(e) => {
                    self.note_error("deleting an archive file", &e);
                    tracing::warn!(stream = %self.name, error = %e, "archive file could not be deleted");
                }
            }
        }
        if files > 0 {
            self.metrics.deleted(reason, freed);
            tracing::info!(stream = %self.name, files, bytes = freed, reason, "archive files deleted");
        }
        self.update_gauges(None);
        (files, freed)
    }

    /// Deletes every finished file that lies wholly inside `[from, to)`
    /// (UTC ticks); returns (files, bytes).
    pub fn delete_range(&self, from: i64, to: i64) -> Result<(usize, u64), ReadError> {
        self.scan()?;
        let keys: Vec<FileKey> = self.cat().files.keys().copied().collect();
        let mut doomed = Vec::new();
        for key in keys {
            let Ok(entries) = self.entries(key) else { continue };
            let Some(s) = summarize(&entries) else { continue };
            if s.start >= from && s.end <= to {
                doomed.push(key);
            }
        }
        Ok(self.delete(&doomed, "api"))
    }
}

/// Decodes one stored wire message into its segment.
pub fn decode_one(msg: &[u8]) -> Result<Segment, ReadError> {
    let mut d = strom_media::wire::Decoder::with_max_message(msg.len().max(16));
    d.push(msg);
    match d.pull() {
        Ok(Some(strom_media::wire::Message::Segment(s))) => Ok(s),
        Ok(_) => Err(ReadError::Damaged("not a segment message".into())),
        Err(e) => Err(ReadError::Damaged(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dvr::store::LocalStore;
    use crate::dvr::DvrFamilies;
    use strom_media::{Codec, Frame, Track, TrackParams, CLOCK_HZ};

    /// A fresh directory under the system's temp dir.
    fn tmpdir(tag: &str) -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("strom-archive-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn cfg(root: &std::path::Path) -> DvrConfig {
        DvrConfig {
            root: root.to_path_buf(),
            depth: None,
            disk_limit_percent: None,
            max_size: None,
            offline: false,
        }
    }

    fn archive(root: &std::path::Path) -> (Archive, DvrFamilies) {
        let f = DvrFamilies::default();
        let a = Archive::new("tv/one", cfg(root), Arc::new(LocalStore::new(root)), f.stream("tv/one"));
        (a, f)
    }

    /// Segment `seq`, 2 s of AAC frames starting at `start` (UTC ticks).
    fn segment(seq: u64, start: i64) -> Segment {
        let track = Track {
            id: 0,
            codec: Codec::Aac,
            params: TrackParams {
                sample_rate: 48_000,
                channels: 2,
                aac_object_type: 2,
                ..TrackParams::default()
            },
        };
        let frames = (0..4)
            .map(|i| Frame {
                track: 0,
                dts: start + i * CLOCK_HZ / 2,
                pts: start + i * CLOCK_HZ / 2,
                keyframe: true,
                data: Bytes::from(vec![seq as u8; 100 + i as usize]),
            })
            .collect();
        Segment {
            seq,
            start,
            duration: 2 * CLOCK_HZ,
            discontinuity: false,
            target_duration: 2,
            tracks: Arc::from(vec![track]),
            frames,
        }
    }

    const HOUR: i64 = 3600 * CLOCK_HZ;
    /// 10 s before a UTC hour boundary.
    const T0: i64 = 490_000 * HOUR - 10 * CLOCK_HZ;

    fn record(a: &Archive, seqs: std::ops::Range<u64>) {
        for seq in seqs.clone() {
            let s = segment(seq, T0 + (seq - seqs.start) as i64 * 2 * CLOCK_HZ);
            a.write(&s, &strom_media::wire::encode_segment(&s)).expect("write");
        }
    }

    #[test]
    fn records_across_an_hour_and_reads_back_the_same_bytes() {
        let root = tmpdir("rw");
        let (a, _) = archive(&root);
        record(&a, 100..110);
        a.close();
        let files = a.files();
        assert_eq!(files.len(), 2, "the hour boundary starts a new file: {files:?}");
        assert!(root.join("tv%2Fone").is_dir(), "the name is one escaped directory");
        // A fresh catalogue (a restart) finds everything through the files.
        let (b, _) = archive(&root);
        for seq in 100..110 {
            let (key, e) = b.find(seq).expect("found");
            let s = segment(seq, T0 + (seq - 100) as i64 * 2 * CLOCK_HZ);
            assert_eq!(e.start, s.start);
            assert_eq!(b.message(key, &e).expect("read"), strom_media::wire::encode_segment(&s));
            assert_eq!(b.segment(seq).expect("decoded"), s);
        }
        assert!(matches!(b.find(99), Err(ReadError::NotFound)));
        assert!(matches!(b.find(110), Err(ReadError::NotFound)));
        let r = b.ranges().expect("ranges");
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].from, r[0].duration), (T0, 20 * CLOCK_HZ));
        let mid = b
            .entries_between(T0 + 5 * CLOCK_HZ, T0 + 11 * CLOCK_HZ, 100)
            .expect("between");
        assert_eq!(mid.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![102, 103, 104, 105]);
        let before = b.entries_before(T0 + 13 * CLOCK_HZ, 3).expect("before");
        assert_eq!(before.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![104, 105, 106]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_torn_tail_is_cut_and_a_missing_index_rebuilt() {
        let root = tmpdir("torn");
        let (a, _) = archive(&root);
        record(&a, 1..5); // all in the hour before the boundary
        a.close();
        let key = a.files()[0].key;
        let dir = root.join("tv%2Fone");
        let data = dir.join(layout::relative_path(key, FileKind::Data));
        let idx = dir.join(layout::relative_path(key, FileKind::Index));
        let good = std::fs::metadata(&data).expect("data").len();
        // kill -9 mid-write: half a message after the last whole one, and
        // the index cut inside its last entry.
        let half = strom_media::wire::encode_segment(&segment(5, T0 + 8 * CLOCK_HZ));
        let mut bytes = std::fs::read(&data).expect("read");
        bytes.extend_from_slice(&half[..half.len() / 2]);
        std::fs::write(&data, &bytes).expect("write");
        let ilen = std::fs::metadata(&idx).expect("idx").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&idx)
            .and_then(|f| f.set_len(ilen - 10))
            .expect("truncate");
        let (b, fam) = archive(&root);
        for seq in 1..5 {
            assert!(b.find(seq).is_ok(), "segment {seq} survives");
        }
        assert!(b.find(5).is_err());
        assert_eq!(
            std::fs::metadata(&data).expect("data").len(),
            good,
            "the torn tail is cut"
        );
        assert_eq!(fam.torn_tails.get(), 1);
        assert_eq!(
            std::fs::metadata(&idx).expect("idx").len(),
            ilen,
            "the index is rewritten whole"
        );
        // A lost index is rebuilt from the data.
        std::fs::remove_file(&idx).expect("rm");
        let (c, fam) = archive(&root);
        c.scan().expect("scan");
        // The catalogue only lists files with data; the index comes back on read.
        assert!(c.find(4).is_ok());
        assert_eq!(fam.index_rebuilds.get(), 1);
        assert!(idx.exists());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_restart_mid_hour_opens_a_new_file_and_numbers_go_on() {
        let root = tmpdir("restart");
        let (a, _) = archive(&root);
        record(&a, 10..12);
        a.close();
        let (b, _) = archive(&root);
        for (seq, at) in [(20, 6), (21, 8)] {
            let s = segment(seq, T0 + at * CLOCK_HZ);
            b.write(&s, &strom_media::wire::encode_segment(&s)).expect("write");
        }
        b.close();
        let files = b.files();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].hour, files[1].hour);
        let (c, _) = archive(&root);
        assert!(c.find(11).is_ok() && c.find(20).is_ok());
        // 10..12 cover T0..T0+4 s, 20 starts at T0+6 s: a gap.
        assert_eq!(c.ranges().expect("ranges").len(), 2);
        // EXT-X-DISCONTINUITY-SEQUENCE counts the tags before a segment. The
        // restart is a jump in numbers (11 → 20) and a gap in time: one
        // discontinuity, on 20.
        assert_eq!(c.discontinuities_before(11), 0);
        assert_eq!(c.discontinuities_before(20), 0);
        assert_eq!(c.discontinuities_before(21), 1, "the restart counts once");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn deleting_a_range_removes_whole_files_only() {
        let root = tmpdir("delete");
        let (a, _) = archive(&root);
        record(&a, 1..10); // 5 before the hour, 4 after
        a.close();
        // A range over only part of the second file deletes nothing there.
        let (n, _) = a.delete_range(T0 + 12 * CLOCK_HZ, T0 + 14 * CLOCK_HZ).expect("delete");
        assert_eq!(n, 0);
        let (n, bytes) = a.delete_range(T0 - CLOCK_HZ, T0 + 10 * CLOCK_HZ).expect("delete");
        assert_eq!(n, 1);
        assert!(bytes > 0);
        assert!(a.find(3).is_err());
        assert!(a.find(7).is_ok());
        let (b, _) = archive(&root);
        assert_eq!(b.files().len(), 0, "nothing listed before a scan");
        b.scan().expect("scan");
        assert_eq!(b.files().len(), 1);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn retention_by_depth_and_size_deletes_old_hours() {
        let root = tmpdir("retain");
        let fam = DvrFamilies::default();
        let dvr = crate::dvr::Dvr::new(fam.clone());
        let mut c = cfg(&root);
        c.depth = Some(std::time::Duration::from_secs(3600));
        let a = dvr.archive("ch", &c);
        for h in 0..3 {
            let s = segment(h as u64 + 1, T0 + h * HOUR);
            a.write(&s, &strom_media::wire::encode_segment(&s)).expect("write");
        }
        a.close();
        assert_eq!(a.files().len(), 3);
        // At the end of the third segment's hour + 30 min: the first hour
        // ended more than an hour ago, the second did not.
        let now = (layout::hour_of(T0) + 2) * HOUR + HOUR / 2;
        dvr.retain(now);
        let left: Vec<i64> = a.files().iter().map(|f| f.hour).collect();
        assert_eq!(left, vec![layout::hour_of(T0) + 1, layout::hour_of(T0) + 2]);
        assert!(a.find(1).is_err() && a.find(2).is_ok());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn damage_inside_a_file_is_skipped_and_shows_as_a_hole() {
        let root = tmpdir("damage");
        let (a, _) = archive(&root);
        record(&a, 1..6); // one file, 5 segments of 2 s
        a.close();
        let key = a.files()[0].key;
        let dir = root.join("tv%2Fone");
        let data = dir.join(layout::relative_path(key, FileKind::Data));
        let idx = dir.join(layout::relative_path(key, FileKind::Index));
        let len = std::fs::metadata(&data).expect("data").len();
        let msg = len / 5;
        // A flipped byte inside the third message's payload.
        let mut bytes = std::fs::read(&data).expect("read");
        bytes[(2 * msg + msg / 2) as usize] ^= 0xFF;
        std::fs::write(&data, &bytes).expect("write");

        // With its index intact: the damage is found on reading the segment.
        let (b, fam) = archive(&root);
        assert!(matches!(b.segment(3), Err(ReadError::Damaged(_))));
        assert!(fam.damaged.get() > 0);
        assert_eq!(b.ranges().expect("ranges").len(), 2, "the hole shows");
        assert!(b.segment(4).is_ok());

        // Without an index: the rebuild skips the damaged message, keeps the
        // ones after it, and cuts nothing.
        std::fs::remove_file(&idx).expect("rm");
        let (c, fam) = archive(&root);
        for seq in [1, 2, 4, 5] {
            assert!(c.segment(seq).is_ok(), "segment {seq} survives the damage");
        }
        assert!(c.find(3).is_err());
        assert_eq!(std::fs::metadata(&data).expect("data").len(), len, "nothing cut");
        assert_eq!(fam.torn_tails.get(), 0);
        assert!(fam.damaged.get() >= msg / 2);
        let r = c.ranges().expect("ranges");
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!((r[0].from, r[0].duration), (T0, 4 * CLOCK_HZ));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn segments_already_recorded_are_not_written_twice() {
        let root = tmpdir("twice");
        let (a, _) = archive(&root);
        record(&a, 1..4);
        a.close();
        let (b, bf) = archive(&root);
        let errors = bf.stream("tv/one").write_errors;
        // A restreamer resuming: 2 and 3 come again, then 4.
        for seq in 2..5 {
            let s = segment(seq, T0 + (seq - 1) as i64 * 2 * CLOCK_HZ);
            b.write(&s, &strom_media::wire::encode_segment(&s)).expect("write");
        }
        b.close();
        assert_eq!(errors.get(), 0);
        let (c, _) = archive(&root);
        assert!((1..5).all(|s| c.find(s).is_ok()));
        assert_eq!(c.ranges().expect("ranges").len(), 1);
        assert_eq!(c.files().len(), 2, "4 went to a new file of the same hour");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_jump_in_numbers_is_a_discontinuity_even_without_a_gap() {
        let root = tmpdir("jump");
        let (a, _) = archive(&root);
        record(&a, 1..3); // T0, T0+2 s
        a.close();
        let (b, _) = archive(&root);
        // A restart 0.4 s later numbers from the clock: 1000, 1001.
        for (seq, at) in [(1000, 4 * CLOCK_HZ), (1001, 6 * CLOCK_HZ)] {
            let s = segment(seq, T0 + at);
            b.write(&s, &strom_media::wire::encode_segment(&s)).expect("write");
        }
        b.close();
        let (c, _) = archive(&root);
        assert_eq!(c.ranges().expect("ranges").len(), 1, "no gap in time");
        assert_eq!(c.discontinuities_before(1000), 0);
        assert_eq!(c.discontinuities_before(1001), 1);
        let e = c.entries_between(T0, T0 + 8 * CLOCK_HZ, 10).expect("entries");
        let marks: Vec<bool> = e
            .iter()
            .enumerate()
            .map(|(i, x)| breaks(i.checked_sub(1).map(|p| &e[p]), x))
            .collect();
        assert_eq!(marks, vec![false, false, true, false]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_stray_file_from_the_future_does_not_stop_recording() {
        let root = tmpdir("future");
        let dir = root.join("tv%2Fone").join("2099-01-01");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("00-99999999999999.wire"), b"").expect("touch");
        let (a, fam) = archive(&root);
        let written = fam.stream("tv/one").written;
        for seq in 1..3 {
            let s = segment(seq, T0 + (seq as i64 - 1) * 2 * CLOCK_HZ);
            assert!(
                a.write(&s, &strom_media::wire::encode_segment(&s)).expect("write"),
                "{seq} written"
            );
        }
        a.close();
        assert!(a.find(1).is_ok() && a.find(2).is_ok());
        // A segment it holds already is not written again, and says so.
        let s = segment(2, T0 + 2 * CLOCK_HZ);
        let (b, _) = archive(&root);
        assert!(!b.write(&s, &strom_media::wire::encode_segment(&s)).expect("write"));
        assert_eq!(written.get(), 0, "counting is the writer task's");
        let _ = std::fs::remove_dir_all(&root);
    }
}

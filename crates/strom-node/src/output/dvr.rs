//! DVR output: records the stream's segments into its archive and serves
//! the archive URLs (see [`crate::dvr::request`] for the forms).
//!
//! - Recording: each finished segment is offered to the archive's writer
//!   queue ([`crate::dvr::WriterHandle`]); the stream task never waits.
//! - Segments: an archived segment is served at the same URL as a live one,
//!   `SEQ.ts` (and `tracks-SEL/SEQ.ts`), once it has left the live window.
//!   Sequence numbers are unique per stream forever, so these URLs are
//!   stable and cacheable (`immutable`). The TS bytes are muxed from the
//!   stored wire message, the same function of the same segment as live, so
//!   they equal the live bytes; recently muxed ones are kept in a cache
//!   bounded by [`MUX_CACHE_BYTES`].
//! - Playlists: VOD for a closed range (`EXT-X-ENDLIST`), EVENT for
//!   `…-now`, sliding for timeshift and rewind. Gaps get
//!   EXT-X-DISCONTINUITY; every segment has EXT-X-PROGRAM-DATE-TIME, so the
//!   first one says where the playlist really starts (a FROM inside a
//!   segment starts at that segment).
//! - `timeshift_abs` plays from FROM at the pace of the clock: its position
//!   is FROM plus the time since the viewer's first request with that FROM
//!   (a new FROM is a new position). Positions are kept per viewer for
//!   [`POSITION_IDLE`] and at most [`MAX_POSITIONS`] of them.
//! - Downloads (`archive-FROM-DURATION.ts`, `archive/FROM/DURATION/mpegts`,
//!   `timeshift_*.ts`) are streamed segment by segment, never built in
//!   memory; a timeshift download goes on into the live segments.

use super::{Output, OutputCtx, SegmentEvent};
use crate::dvr::archive::{Archive, ReadError};
use crate::dvr::request::{ArchiveRequest, Format, Span};
use crate::dvr::WriterHandle;
use crate::http::reply::{self, M3U8, MP2T};
use crate::http::request::{PlayRequest, Resource};
use crate::stream::Stream;
use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use strom_media::dvr::index::IndexEntry;
use strom_media::hls::{self, PlaylistEntry, PlaylistType, TrackSelection};
use strom_media::{Segment, CLOCK_HZ};

const SEGMENT_CACHE: &str = "public, max-age=86400, immutable";
const VOD_CACHE: &str = "max-age=10";
const LIVE_CACHE: &str = "max-age=1";
/// Muxed archive segments kept per stream, bytes.
pub const MUX_CACHE_BYTES: usize = 32 << 20;
/// Most entries one playlist lists (48 h of 1-second segments). A playlist
/// that follows live keeps the newest ones past that.
pub const MAX_ENTRIES: usize = 172_800;
/// Archive playlists rendered at once per node; more wait up to
/// [`RENDER_WAIT`], then get 503 (a 48-hour playlist is about 15 MB while
/// it is built).
pub const MAX_RENDERS: usize = 4;
/// How long an archive request may take before it is answered 503 (a slow
/// disk, a source that does not answer).
pub const RENDER_WAIT: Duration = Duration::from_secs(15);

/// The node's archive playlist builds in progress (see [`MAX_RENDERS`]).
static RENDERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_RENDERS);
/// A `timeshift_abs` position is forgotten after this long without a request.
pub const POSITION_IDLE: Duration = Duration::from_secs(120);
/// Most `timeshift_abs` positions kept per stream; past it the least
/// recently seen one is forgotten (its viewer restarts from its FROM).
pub const MAX_POSITIONS: usize = 10_000;
/// Segments a sliding (timeshift) playlist lists.
const SLIDING: usize = 6;
/// How far after a timeshift start the first recorded segment is looked
/// for (90 kHz ticks: 2 days).
const MAX_SEEK_AHEAD: i64 = 2 * 86_400 * CLOCK_HZ;

/// The DVR output of one stream.
pub struct Dvr {
    archive: Option<Arc<Archive>>,
    /// The stream has `dvr`: it records. A restreamed stream without one
    /// may still read its source's archive (`crate::dvr::cluster`).
    records: bool,
    /// This output's slot: the index entry of each live segment is read
    /// from its frames once, there.
    slot: usize,
    writer: OnceLock<WriterHandle>,
    cache: Arc<Mutex<MuxCache>>,
    positions: Mutex<HashMap<(u64, u64), (Instant, Instant)>>,
}

#[derive(Default)]
struct MuxCache {
    entries: VecDeque<((u64, u64), Bytes)>,
    bytes: usize,
}

impl MuxCache {
    fn get(&mut self, key: (u64, u64)) -> Option<Bytes> {
        let i = self.entries.iter().position(|(k, _)| *k == key)?;
        let e = self.entries.remove(i)?;
        let b = e.1.clone();
        self.entries.push_back(e);
        Some(b)
    }

    fn put(&mut self, key: (u64, u64), b: Bytes) {
        if b.len() > MUX_CACHE_BYTES / 4 || self.entries.iter().any(|(k, _)| *k == key) {
            return;
        }
        self.bytes += b.len();
        self.entries.push_back((key, b));
        while self.bytes > MUX_CACHE_BYTES {
            let Some((_, old)) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.len();
        }
    }
}

/// Registers the DVR output.
pub fn build(ctx: &OutputCtx) -> Arc<dyn Output> {
    Arc::new(Dvr {
        archive: ctx.archive.clone(),
        records: ctx.cfg.dvr.is_some(),
        slot: ctx.slot,
        writer: OnceLock::new(),
        cache: Arc::new(Mutex::new(MuxCache::default())),
        positions: Mutex::new(HashMap::new()),
    })
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Refuses (400, counted) a range longer than the archive can hold: its
/// depth plus the hour retention keeps beyond it (whole hours are deleted).
fn check_depth(archive: &Archive, a: &ArchiveRequest) -> Result<(), Box<Response>> {
    let (Span::Range { duration, .. }, Some(depth)) = (a.span, archive.cfg.depth) else {
        return Ok(());
    };
    if duration > depth.as_secs().saturating_add(3600) {
        archive.metrics().bad_request("longer_than_archive");
        return Err(Box::new(reply::error(
            StatusCode::BAD_REQUEST,
            "archive range is longer than the archive keeps",
        )));
    }
    Ok(())
}

/// 404 for a track selection the stream's tracks do not have (as live).
fn no_such_track(stream: &Stream, a: &ArchiveRequest) -> Option<Response> {
    let sel = a.selection?;
    let tracks = stream.published().tracks;
    (!tracks.is_empty() && sel.track_ids(&tracks).is_none())
        .then(|| reply::error(StatusCode::NOT_FOUND, "no such track"))
}

/// Archive read failures logged, at most one a minute per node.
static READ_LOG: std::sync::LazyLock<crate::util::LogLimiter> =
    std::sync::LazyLock::new(|| crate::util::LogLimiter::new(Duration::from_secs(60)));

fn read_error(e: ReadError) -> Response {
    match e {
        ReadError::NotFound => reply::error(StatusCode::NOT_FOUND, "not in the archive"),
        e => {
            if let Some(held) = READ_LOG.allow(Instant::now()) {
                tracing::warn!(error = %e, held_back = held, "archive read failed");
            }
            reply::error(StatusCode::INTERNAL_SERVER_ERROR, "archive read failed")
        }
    }
}

impl Dvr {
    /// The archive this output records to, if the stream has `dvr`.
    pub fn archive(&self) -> Option<&Arc<Archive>> {
        self.archive.as_ref()
    }

    /// Live segments newer than `after` (or all), as the index entries
    /// they will have (offset and length aside): read from the frames once
    /// per segment, in this output's slot.
    fn live_items(&self, stream: &Stream, after: Option<u64>) -> Vec<IndexEntry> {
        let w = stream.window();
        w.iter()
            .filter(|s| after.is_none_or(|a| s.segment.seq > a))
            .map(|s| *s.derived(self.slot, |seg| IndexEntry::of(seg, 0, 0)))
            .collect()
    }

    /// Items meeting `[from, to)` (UTC ticks): archived ones, then live
    /// ones the archive does not have yet.
    /// At most [`MAX_ENTRIES`]: the oldest for a closed range, the newest
    /// (`newest`) for one that follows live.
    fn items(
        &self,
        archive: &Archive,
        stream: &Stream,
        from: i64,
        to: i64,
        newest: bool,
    ) -> Result<Vec<IndexEntry>, ReadError> {
        let mut items = archive.entries_between(from, to, if newest { usize::MAX } else { MAX_ENTRIES })?;
        let last = items.last().map(|i| i.seq);
        items.extend(
            self.live_items(stream, last)
                .into_iter()
                .filter(|i| i.end() > from && i.start < to),
        );
        if newest {
            let skip = items.len().saturating_sub(MAX_ENTRIES);
            items.drain(..skip);
        } else {
            items.truncate(MAX_ENTRIES);
        }
        Ok(items)
    }

    /// The `count` newest items starting at or before `at`.
    fn items_before(
        &self,
        archive: &Archive,
        stream: &Stream,
        at: i64,
        count: usize,
    ) -> Result<Vec<IndexEntry>, ReadError> {
        let mut items: Vec<IndexEntry> = archive.entries_before(at, count)?;
        let last = items.last().map(|i| i.seq);
        items.extend(self.live_items(stream, last).into_iter().filter(|i| i.start <= at));
        let skip = items.len().saturating_sub(count);
        Ok(items.split_off(skip))
    }

    /// `at` (UTC ticks), or the start of the first segment after it when
    /// nothing recorded covers `at` (before the archive, in a gap).
    fn first_start(&self, archive: &Archive, stream: &Stream, at: i64) -> i64 {
        let archived = archive
            .entries_between(at, at.saturating_add(MAX_SEEK_AHEAD), 1)
            .ok()
            .and_then(|v| v.first().map(|e| e.start));
        let first = archived.or_else(|| {
            self.live_items(stream, None)
                .into_iter()
                .find(|i| i.end() > at)
                .map(|i| i.start)
        });
        first.map_or(at, |s| s.max(at))
    }

    /// `timeshift_abs` position of this viewer: FROM plus the time since
    /// its first request with that FROM.
    fn position(&self, req: &PlayRequest, from: u64, now: Instant) -> u64 {
        let key = (req.session_key(), from);
        let mut p = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() >= MAX_POSITIONS {
            p.retain(|_, (_, seen)| now.duration_since(*seen) < POSITION_IDLE);
        }
        if p.len() >= MAX_POSITIONS && !p.contains_key(&key) {
            // Full of live positions: the least recently seen one goes, so a
            // flood of FROMs cannot freeze new viewers.
            if let Some(oldest) = p.iter().min_by_key(|(_, (_, seen))| *seen).map(|(k, _)| *k) {
                p.remove(&oldest);
            }
        }
        let first = match p.get_mut(&key) {
            Some((first, seen)) => {
                *seen = now;
                *first
            }
            None => {
                p.insert(key, (now, now));
                now
            }
        };
        from + now.duration_since(first).as_secs()
    }

    fn playlist(&self, archive: &Archive, stream: &Stream, a: &ArchiveRequest, req: &PlayRequest) -> Response {
        let now = now_unix();
        let hz = CLOCK_HZ;
        let ticks = |s: u64| i64::try_from(s).unwrap_or(i64::MAX / hz).saturating_mul(hz);
        if let Err(bad) = check_depth(archive, a) {
            return *bad;
        }
        if let Some(missing) = no_such_track(stream, a) {
            return missing;
        }
        let (items, kind) = match a.span {
            // A range that reaches past now still grows: EVENT, not VOD.
            Span::Range { from, duration } => (
                self.items(archive, stream, ticks(from), ticks(from + duration), false),
                if from + duration > now {
                    PlaylistType::Event
                } else {
                    PlaylistType::Vod
                },
            ),
            Span::Since { from } => (
                self.items(archive, stream, ticks(from), ticks(now + 3600), true),
                PlaylistType::Event,
            ),
            Span::Rewind { seconds } => (
                self.items(archive, stream, ticks(now - seconds.min(now)), ticks(now + 3600), true),
                PlaylistType::Live,
            ),
            Span::TimeshiftRel { ago } => {
                // Before the archive's start: from its first segment.
                let at = self.first_start(archive, stream, ticks(now.saturating_sub(ago)));
                (self.items_before(archive, stream, at, SLIDING), PlaylistType::Live)
            }
            Span::TimeshiftAbs { from } => {
                // A FROM before the archive (or in a gap) plays from the next
                // recorded segment, at the pace of the clock from there.
                let start = self.first_start(archive, stream, ticks(from));
                let elapsed = self.position(req, from, Instant::now()) - from;
                let at = start
                    .saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX / hz).saturating_mul(hz))
                    .min(ticks(now));
                (
                    self.items_before(archive, stream, at, SLIDING).map(|v| {
                        // Never list what lies before FROM's segment.
                        v.into_iter().filter(|i| i.end() > start).collect()
                    }),
                    PlaylistType::Live,
                )
            }
        };
        let items = match items {
            Ok(i) => i,
            Err(e) => return read_error(e),
        };
        if items.is_empty() {
            return reply::error(StatusCode::NOT_FOUND, "nothing recorded in this range");
        }
        // A jump in sequence numbers (a restart, dropped segments) is a
        // discontinuity as much as a gap in time (`archive::breaks`).
        let entries: Vec<PlaylistEntry> = items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let mut e = it.playlist_entry();
                if i > 0 && items[i - 1].seq.checked_add(1) != Some(it.seq) {
                    e.discontinuity = true;
                }
                e
            })
            .collect();
        let disc = match kind {
            PlaylistType::Live => archive.discontinuities_before(entries[0].seq),
            _ => 0,
        };
        // Segments of an archive playlist belong to the viewer's archive
        // session, not to its live one: `dvr=1` marks them.
        let carried = crate::access::carried_query(req, true);
        // Segment URIs are the stream's own `SEQ.ts` (or `tracks-SEL/SEQ.ts`):
        // relative to `/NAME/`, so a playlist inside `tracks-SEL/` stays there.
        let base = match a.selection {
            Some(s) if !req.uri_base.is_empty() => format!("{}{s}/", req.uri_base),
            _ => req.uri_base.clone(),
        };
        let text = hls::render_archive_playlist(&entries, kind, disc, carried.as_deref(), &base);
        stream.metrics.bytes_out.inc_by(text.len() as u64);
        let cache = if kind == PlaylistType::Vod {
            VOD_CACHE
        } else {
            LIVE_CACHE
        };
        ([(header::CONTENT_TYPE, M3U8), (header::CACHE_CONTROL, cache)], text).into_response()
    }

    /// The TS bytes of archived segment `seq` (a selection's tracks only).
    fn segment_ts(&self, archive: &Archive, seq: u64, sel: Option<TrackSelection>) -> Result<Option<Bytes>, ReadError> {
        cached_ts(&self.cache, archive, seq, sel)
    }

    async fn serve_segment(
        self: Arc<Self>,
        archive: Arc<Archive>,
        stream: Arc<Stream>,
        seq: u64,
        sel: Option<TrackSelection>,
        req: PlayRequest,
    ) -> Response {
        let me = self.clone();
        let a = archive.clone();
        let job = tokio::task::spawn_blocking(move || me.segment_ts(&a, seq, sel));
        let Ok(r) = tokio::time::timeout(RENDER_WAIT, job).await else {
            archive.metrics().bad_request("busy");
            return reply::not_ready();
        };
        let ts = match r {
            Ok(Ok(Some(ts))) => ts,
            Ok(Ok(None)) => return reply::error(StatusCode::NOT_FOUND, "no such track"),
            Ok(Err(ReadError::NotFound)) => {
                return reply::error(StatusCode::NOT_FOUND, "segment is neither live nor archived")
            }
            Ok(Err(e)) => return read_error(e),
            Err(_) => return reply::error(StatusCode::INTERNAL_SERVER_ERROR, "archive read failed"),
        };
        if !req.is_head() {
            stream.metrics.bytes_out.inc_by(ts.len() as u64);
        }
        reply::ranged(ts, req.range, MP2T, SEGMENT_CACHE)
    }

    async fn download(
        &self,
        archive: Arc<Archive>,
        stream: Arc<Stream>,
        a: ArchiveRequest,
        req: &PlayRequest,
    ) -> Response {
        if let Err(bad) = check_depth(&archive, &a) {
            return *bad;
        }
        if let Some(missing) = no_such_track(&stream, &a) {
            return missing;
        }
        let now = now_unix();
        let start = match a.span {
            Span::TimeshiftAbs { from } => from,
            _ => a.start(now),
        };
        let hz = CLOCK_HZ;
        let from = i64::try_from(start).unwrap_or(i64::MAX / hz).saturating_mul(hz);
        let to = match a.span {
            Span::Range { from, duration } => Some(
                i64::try_from(from + duration)
                    .unwrap_or(i64::MAX / hz)
                    .saturating_mul(hz),
            ),
            _ => None,
        };
        // Nothing recorded from `from` on (nor live, for timeshift): 404, as
        // for the playlist, before any byte is promised.
        let (a2, until) = (archive.clone(), to.unwrap_or(i64::MAX));
        let recorded = tokio::task::spawn_blocking(move || a2.entries_between(from, until, 1).map(|v| !v.is_empty()))
            .await
            .unwrap_or(Ok(false));
        let live = a.follows_live() && !stream.window().is_empty();
        match recorded {
            Ok(true) => {}
            Ok(false) if live => {}
            Ok(false) => return reply::error(StatusCode::NOT_FOUND, "nothing recorded in this range"),
            Err(e) => return read_error(e),
        }
        let body = Download {
            cache: self.cache.clone(),
            ticket: req.ticket.clone(),
            pace: matches!(a.span, Span::TimeshiftAbs { .. } | Span::TimeshiftRel { .. }).then_some(Pace {
                t0: tokio::time::Instant::now(),
                s0: None,
            }),
            archive,
            stream: stream.clone(),
            selection: a.selection,
            from,
            to,
            after: None,
            pending: VecDeque::new(),
            live: a.follows_live(),
            _demand: a.follows_live().then(|| stream.hold()),
        };
        if req.is_head() {
            // The length is not known before the bytes are made.
            let none = futures_util::stream::empty::<Result<Bytes, std::io::Error>>();
            return ([(header::CONTENT_TYPE, MP2T)], Body::from_stream(none)).into_response();
        }
        let s = futures_util::stream::unfold(body, |mut d| async move {
            match d.next().await {
                Some(Ok(b)) => Some((Ok::<Bytes, std::io::Error>(b), d)),
                Some(Err(e)) => Some((Err(e), d)),
                None => None,
            }
        });
        (
            [(header::CONTENT_TYPE, MP2T), (header::CACHE_CONTROL, "no-cache")],
            Body::from_stream(s),
        )
            .into_response()
    }
}

/// The TS bytes of archived segment `seq` (a selection's tracks only),
/// from `cache` or muxed and kept there in sealed memory, so playlists'
/// segments and downloads of the same archive share them and connections
/// send them without a copy (`crate::zc`).
fn cached_ts(
    cache: &Mutex<MuxCache>,
    archive: &Archive,
    seq: u64,
    sel: Option<TrackSelection>,
) -> Result<Option<Bytes>, ReadError> {
    let key = (seq, sel.map_or(0, |s| s.key().wrapping_add(1)));
    if let Some(b) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
        return Ok(Some(b));
    }
    let seg = archive.segment(seq)?;
    let Some(b) = mux(&seg, sel) else {
        return Ok(None);
    };
    let b = crate::zc::sealed(&b);
    cache.lock().unwrap_or_else(|e| e.into_inner()).put(key, b.clone());
    Ok(Some(b))
}

/// The TS of `seg`, whole or a selection's tracks; `None` when the
/// selection names a track the segment does not have.
fn mux(seg: &Segment, sel: Option<TrackSelection>) -> Option<Bytes> {
    match sel {
        None => Some(strom_media::ts::mux::mux_segment(seg)),
        Some(sel) => {
            let ids = sel.track_ids(&seg.tracks)?;
            Some(strom_media::ts::mux::mux_segment_tracks(seg, &ids))
        }
    }
}

/// A streamed download: archived segments from `from`, then (for
/// timeshift) live ones as they come.
/// Timeshift downloads play at the pace of the clock: an archived segment
/// is sent when its time comes, at most [`PACE_LEAD`] early.
struct Pace {
    /// When the download started.
    t0: tokio::time::Instant,
    /// UTC start of its first segment (90 kHz ticks), once known.
    s0: Option<i64>,
}

/// How far ahead of the clock a timeshift download may send.
pub const PACE_LEAD: Duration = Duration::from_secs(3);

struct Download {
    /// The output's cache of muxed archive segments.
    cache: Arc<Mutex<MuxCache>>,
    /// Set for timeshift: segments are sent at the pace of the clock.
    pace: Option<Pace>,
    /// The viewer's session: ends with the download, and closes it when the
    /// session ends first (denied, kicked, over a user cap).
    ticket: Option<crate::access::Ticket>,
    archive: Arc<Archive>,
    stream: Arc<Stream>,
    selection: Option<TrackSelection>,
    from: i64,
    to: Option<i64>,
    /// The last segment sent.
    after: Option<u64>,
    pending: VecDeque<IndexEntry>,
    live: bool,
    _demand: Option<crate::stream::DemandGuard>,
}

impl Download {
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        let b = self.produce().await;
        if let (Some(Ok(b)), Some(c)) = (&b, self.ticket.as_ref().and_then(|t| t.conn.as_ref())) {
            c.bytes.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        b
    }

    fn closed(&self) -> tokio_util::sync::CancellationToken {
        self.ticket
            .as_ref()
            .and_then(|t| t.conn.as_ref())
            .map(|c| c.closed.clone())
            .unwrap_or_default()
    }

    async fn produce(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        let closed = self.closed();
        loop {
            if closed.is_cancelled() {
                return None;
            }
            if let Some(e) = self.pending.pop_front() {
                if let Some(p) = self.pace.as_mut() {
                    let s0 = *p.s0.get_or_insert(e.start);
                    let ahead =
                        Duration::from_micros(u64::try_from((e.start - s0).max(0) / 9 * 100).unwrap_or(u64::MAX));
                    let due = p.t0 + ahead.saturating_sub(PACE_LEAD);
                    tokio::select! {
                        _ = self.stream.closing.cancelled() => return None,
                        _ = closed.cancelled() => return None,
                        _ = tokio::time::sleep_until(due) => {}
                    }
                }
                self.after = Some(e.seq);
                let a = self.archive.clone();
                let sel = self.selection;
                let cache = self.cache.clone();
                let r = tokio::task::spawn_blocking(move || cached_ts(&cache, &a, e.seq, sel)).await;
                match r {
                    Ok(Ok(Some(b))) => {
                        self.stream.metrics.bytes_out.inc_by(b.len() as u64);
                        return Some(Ok(b));
                    }
                    Ok(Ok(None)) => return None,
                    // A damaged segment is skipped; the next one follows.
                    Ok(Err(ReadError::NotFound)) | Ok(Err(ReadError::Damaged(_))) => continue,
                    Ok(Err(e)) => return Some(Err(std::io::Error::other(e.to_string()))),
                    Err(e) => return Some(Err(std::io::Error::other(e.to_string()))),
                }
            }
            // Refill from the archive, a few segments at a time.
            let cursor = self.from;
            let to = self.to.unwrap_or(i64::MAX);
            let a = self.archive.clone();
            let after = self.after;
            let batch = tokio::task::spawn_blocking(move || {
                a.entries_between(cursor, to, 64).map(|v| {
                    v.into_iter()
                        .filter(|e| after.is_none_or(|s| e.seq > s))
                        .collect::<Vec<_>>()
                })
            })
            .await;
            match batch {
                Ok(Ok(v)) if !v.is_empty() => {
                    if let Some(last) = v.last() {
                        self.from = last.end().max(self.from);
                    }
                    self.pending.extend(v);
                    continue;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Some(Err(std::io::Error::other(e.to_string()))),
                Err(e) => return Some(Err(std::io::Error::other(e.to_string()))),
            }
            if !self.live {
                return None;
            }
            // Caught up with the archive: go on with the live window.
            let mut rx = self.stream.subscribe_segments();
            let found = {
                let w = self.stream.window();
                let next = self.after.map_or(0, |s| s + 1);
                w.first_from(next).cloned()
            };
            if let Some(seg) = found {
                self.after = Some(seg.segment.seq);
                self.from = seg.segment.start + seg.segment.duration;
                let b = mux(&seg.segment, self.selection)?;
                self.stream.metrics.bytes_out.inc_by(b.len() as u64);
                return Some(Ok(b));
            }
            tokio::select! {
                _ = self.stream.closing.cancelled() => return None,
                _ = closed.cancelled() => return None,
                r = tokio::time::timeout(Duration::from_secs(30), rx.changed()) => match r {
                    Ok(Ok(())) => {}
                    // The stream is gone, or nothing came for 30 s.
                    _ => return None,
                },
            }
        }
    }
}

impl Output for Dvr {
    fn name(&self) -> &'static str {
        "dvr"
    }

    fn on_segment(&self, ev: &SegmentEvent<'_>) {
        let Some(a) = self.archive.as_ref().filter(|_| self.records) else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let w = self.writer.get_or_init(|| crate::dvr::spawn_writer(a.clone()));
        w.offer(a, ev.segment.clone());
    }

    fn serve(self: Arc<Self>, stream: &Arc<Stream>, req: &PlayRequest) -> Option<BoxFuture<'static, Response>> {
        match &req.resource {
            Resource::Archive(a) => {
                let Some(archive) = self.archive.clone() else {
                    let r = reply::error(StatusCode::NOT_FOUND, "this stream has no archive");
                    return Some(async move { r }.boxed());
                };
                let (stream, a, req) = (stream.clone(), *a, req.clone());
                Some(
                    async move {
                        match a.format {
                            Format::Playlist => {
                                let busy = |archive: &Archive| {
                                    archive.metrics().bad_request("busy");
                                    reply::not_ready()
                                };
                                let Ok(Ok(permit)) = tokio::time::timeout(RENDER_WAIT, RENDERS.acquire()).await else {
                                    return busy(&archive);
                                };
                                let me = self.clone();
                                let a2 = archive.clone();
                                // The permit lives as long as the build, even
                                // past a request that gave up on it.
                                let job = tokio::task::spawn_blocking(move || {
                                    let _permit = permit;
                                    me.playlist(&a2, &stream, &a, &req)
                                });
                                match tokio::time::timeout(RENDER_WAIT, job).await {
                                    Ok(Ok(r)) => r,
                                    Ok(Err(_)) => {
                                        reply::error(StatusCode::INTERNAL_SERVER_ERROR, "archive read failed")
                                    }
                                    Err(_) => busy(&archive),
                                }
                            }
                            Format::Ts => self.download(archive, stream, a, &req).await,
                        }
                    }
                    .boxed(),
                )
            }
            Resource::Segment(seq) | Resource::TrackSegment(_, seq) => {
                let archive = self.archive.clone()?;
                // Live segments are the HLS output's; this one only serves
                // what has left the window (or never was in it).
                if stream.window().get(*seq).is_some() {
                    return None;
                }
                let sel = req.resource.selection();
                Some(
                    self.serve_segment(archive, stream.clone(), *seq, sel, req.clone())
                        .boxed(),
                )
            }
            _ => None,
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

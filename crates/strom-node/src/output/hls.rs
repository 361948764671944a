//! HLS output with MPEG-TS segments (RFC 8216): master playlists, media
//! playlists and segments of a stream, whole or per track.
//!
//! URLs, relative to `/NAME/` (a name may contain `/`):
//! - `index.m3u8`, `playlist.m3u8`: the master playlist. With one audio
//!   track or none it lists one variant, `mono.m3u8`. With more audio
//!   tracks it lists each as an `EXT-X-MEDIA:TYPE=AUDIO` rendition in group
//!   `audio` (`tracks-aN/mono.m3u8`; NAME from the ISO 639 language or
//!   `Audio N`, LANGUAGE when known, the first one DEFAULT) and one variant
//!   per video track, `tracks-vN/mono.m3u8`, with `AUDIO="audio"` and the
//!   codecs of the video and of every audio track. Its BANDWIDTH is the
//!   peak of the whole segments, an upper bound of any video + audio pair.
//! - `mono.m3u8`, `video.m3u8` and their `SEQ.ts`: every track in every
//!   segment (set-top boxes pick the audio themselves).
//! - `tracks-SEL/mono.m3u8` and `tracks-SEL/SEQ.ts`, Flussonic's naming:
//!   `SEL` is one `vN` and/or `aN`s in ascending order (`tracks-v1`,
//!   `tracks-a2`, `tracks-v1a1a3`), N counting from 1 among the video or
//!   audio tracks. Teletext, DVB subtitles and SCTE-35 ride along in every
//!   selection with video, and in every selection of a stream without video;
//!   an audio-only selection beside video is audio only. A selection naming
//!   a track the stream does not have is a 404.
//!
//! How:
//! - Each segment is muxed to MPEG-TS once, into this output's rendition
//!   slot of the stored segment, when the pipeline finishes it; every viewer
//!   shares those bytes. A selection's segment is muxed on first request,
//!   once, and kept with the segment in a cache bounded per segment by
//!   [`MAX_CACHED_SELECTIONS`] entries and the segment's size for other
//!   combinations, and twice its size for the selections a master lists;
//!   beyond that it is muxed per request and counted
//!   ([`Hls::selection_stats`]).
//! - What playlists need from a segment (whether it starts with a random
//!   access point on each video track, its SCTE-35 cues) is read from its
//!   frames once, when it enters the window.
//! - The master and media playlists, and the media playlists the master
//!   lists, are rendered once per segment; a request without a query string
//!   and without a redirect gets the shared bytes. A token query is carried
//!   onto every URI; after a redirect URIs are absolute (a selection's
//!   segment URIs then include its `tracks-SEL/` directory).
//! - EXT-X-TARGETDURATION is the target the segments declare
//!   ([`Segment::target_duration`]; a segment that declares none counts its
//!   duration rounded up), raised only if a segment would not fit, and never
//!   lowered for the stream's life (RFC 8216 §4.3.3.1, §6.2.1); every raise
//!   is counted ([`Hls::target_raises`]) and logged.
//! - EXT-X-INDEPENDENT-SEGMENTS is written only while every listed segment
//!   starts with a random access point on the playlist's video track
//!   (audio-only playlists always qualify). SCTE-35 cues become
//!   EXT-X-DATERANGE tags in every media playlist (see
//!   [`hls::scte35_cues`]); every segment carries EXT-X-PROGRAM-DATE-TIME.
//!   EXT-X-DISCONTINUITY-SEQUENCE counts every discontinuity before the
//!   first listed segment, evicted or not. All of it is a function of the
//!   window, so every node that holds the same segments writes the same text.
//! - Viewers are sessions of [`crate::access`] (one per token, address and
//!   stream, whatever the URL), opened and counted by the gate; for an
//!   authorized stream the playlists carry `token` and the session id
//!   `sid` onto every child URI, so segments are checked in memory.

use super::{Output, OutputCtx, SegmentEvent};
use crate::http::reply::{self, M3U8, MP2T};
use crate::http::request::{PlayRequest, Resource};
use crate::stream::window::{SegmentWindow, StoredSegment};
use crate::stream::Stream;
use crate::util::LogLimiter;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};
use strom_media::hls::{self, AudioRendition, DateRange, PlaylistEntry, TrackSelection, Variant};
use strom_media::{Segment, Track, TrackKind, CLOCK_HZ};

const SEGMENT_CACHE: &str = "public, max-age=86400, immutable";
const PLAYLIST_CACHE: &str = "max-age=1";
/// Track selections of one segment whose bytes are kept.
pub const MAX_CACHED_SELECTIONS: usize = 16;

/// The playlists rendered once per segment for requests without a query
/// and without a redirect.
#[derive(Default)]
struct Rendered {
    /// The largest EXT-X-TARGETDURATION declared so far, seconds.
    target_duration: u64,
    media: Option<Bytes>,
    master: Option<Bytes>,
    /// The media playlists of the selections the master lists.
    tracks: Vec<(TrackSelection, Bytes)>,
}

/// What this output derives from one stored segment (its `derived` slot).
struct HlsSegment {
    /// Per video track, in track order: the segment starts with a random
    /// access point on it ([`hls::video_raps`]).
    video_raps: Box<[bool]>,
    cues: Arc<[DateRange]>,
    selections: Mutex<SelectionCache>,
}

/// The muxed track selections of one segment, bounded.
#[derive(Default)]
struct SelectionCache {
    entries: Vec<(u64, Arc<OnceLock<Bytes>>)>,
    /// Bytes of the cached selections other than the listed ones (estimated until muxed).
    reserved: usize,
    /// Bytes of the cached listed selections: the ones a master playlist
    /// names (one video track alone, one audio track alone).
    listed: usize,
}

impl HlsSegment {
    fn build(segment: &Segment) -> Self {
        HlsSegment {
            video_raps: hls::video_raps(segment).into(),
            cues: hls::scte35_cues(segment).into(),
            selections: Mutex::new(SelectionCache::default()),
        }
    }

    /// Whether a playlist of `sel` (`None`: every track) may call this
    /// segment independent: it starts with a random access point on the
    /// selection's video track; a selection without video always can.
    fn independent(&self, sel: Option<TrackSelection>) -> bool {
        match sel {
            None => strom_media::dvr::index::starts_independent(&self.video_raps),
            Some(TrackSelection { video: None, .. }) => true,
            Some(TrackSelection { video: Some(v), .. }) => self
                .video_raps
                .get(usize::from(v).wrapping_sub(1))
                .copied()
                .unwrap_or(false),
        }
    }
}

/// About the muxed size of `ids`' frames in `segment`, bytes: the payload
/// plus 5%, a packet per frame, and 16 packets of padding per PID (every
/// PID's packet count is padded to a multiple of 16).
fn selection_estimate(segment: &Segment, ids: &[u16]) -> usize {
    let (bytes, frames) = segment
        .frames
        .iter()
        .filter(|f| ids.contains(&f.track))
        .fold((0usize, 0usize), |(b, n), f| (b + f.data.len(), n + 1));
    bytes + bytes / 20 + (frames + (ids.len() + 2) * 16) * 188
}

/// The MPEG-TS bytes of `ids`' tracks of `segment`, on the PIDs they have
/// in the whole segment.
fn mux_selection(segment: &Segment, ids: &[u16]) -> Bytes {
    strom_media::ts::mux::mux_segment_tracks(segment, ids)
}

/// Why a playlist cannot be served.
enum Unavailable {
    /// Nothing to serve yet (or the stream is down): 503.
    NotReady,
    /// A track selection the stream does not have: 404.
    NoSuchTrack,
}

/// The HLS output of one stream.
pub struct Hls {
    stream: Arc<str>,
    slot: usize,
    segment_count: usize,
    rendered: RwLock<Rendered>,
    target_raises: prometheus_client::metrics::counter::Counter,
    raise_log: LogLimiter,
    selection_muxes: prometheus_client::metrics::counter::Counter,
    selection_uncached: prometheus_client::metrics::counter::Counter,
}

/// Registers the HLS output.
pub fn build(ctx: &OutputCtx) -> Arc<dyn Output> {
    Arc::new(Hls::new(ctx))
}

impl Hls {
    fn new(ctx: &OutputCtx) -> Self {
        Hls {
            stream: ctx.stream.clone(),
            slot: ctx.slot,
            segment_count: ctx.cfg.segment_count,
            rendered: RwLock::new(Rendered::default()),
            target_raises: ctx.metrics.hls_target_raises.clone(),
            raise_log: LogLimiter::new(Duration::from_secs(60)),
            selection_muxes: ctx.metrics.hls_selection_muxes.clone(),
            selection_uncached: ctx.metrics.hls_selection_uncached.clone(),
        }
    }
}

/// `s` with `?query` appended when there is one.
fn with_query(mut s: String, query: Option<&str>) -> String {
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        s.push('?');
        s.push_str(q);
    }
    s
}

impl Hls {
    /// The MPEG-TS bytes of `seg`, muxed once into sealed memory that
    /// connections send without copying it (`crate::zc`).
    fn ts(&self, seg: &StoredSegment) -> Bytes {
        seg.rendition(self.slot, |s| crate::zc::sealed(&strom_media::ts::mux::mux_segment(s)))
    }

    /// What playlists need from `seg`, read once.
    fn facts(&self, seg: &StoredSegment) -> Arc<HlsSegment> {
        seg.derived(self.slot, HlsSegment::build)
    }

    /// The MPEG-TS bytes of segment `seq`, if the window holds it.
    pub fn segment_bytes(&self, stream: &Stream, seq: u64) -> Option<Bytes> {
        let seg = stream.window().get(seq).cloned()?;
        Some(self.ts(&seg))
    }

    /// The MPEG-TS bytes of `sel`'s tracks of `seg`; `None` when the segment
    /// has no such tracks. Muxed once per selection and segment while the
    /// segment's cache has room (the selections a master playlist lists, up
    /// to twice the whole segment's bytes; any others, up to
    /// [`MAX_CACHED_SELECTIONS`] entries and the whole segment's bytes),
    /// else per call.
    fn selection_bytes(&self, seg: &StoredSegment, sel: TrackSelection) -> Option<Bytes> {
        let ids = sel.track_ids(&seg.segment.tracks)?;
        let whole = self.ts(seg);
        if ids.len() == seg.segment.tracks.len() {
            return Some(whole);
        }
        let facts = self.facts(seg);
        let key = sel.key();
        let estimate = selection_estimate(&seg.segment, &ids);
        let listed = match sel.video {
            Some(_) => sel.audio == 0,
            None => sel.audio.count_ones() == 1,
        };
        let cell = {
            let mut cache = facts.selections.lock().unwrap_or_else(|e| e.into_inner());
            match cache.entries.iter().find(|(k, _)| *k == key) {
                Some((_, cell)) => Some(cell.clone()),
                None => {
                    // The selections the master lists (what every player
                    // of a multi-audio stream fetches) have their own
                    // budget, so requests for other combinations can never
                    // push them out of the cache: together they hold each
                    // track about once (subtitles ride with every video).
                    let fits = if listed {
                        cache.listed.saturating_add(estimate) <= whole.len().saturating_mul(2)
                    } else {
                        cache.entries.len() < MAX_CACHED_SELECTIONS
                            && cache.reserved.saturating_add(estimate) <= whole.len()
                    };
                    fits.then(|| {
                        if listed {
                            cache.listed += estimate;
                        } else {
                            cache.reserved += estimate;
                        }
                        let cell = Arc::new(OnceLock::new());
                        cache.entries.push((key, cell.clone()));
                        cell
                    })
                }
            }
        };
        let mux = || {
            self.selection_muxes.inc();
            mux_selection(&seg.segment, &ids)
        };
        let Some(cell) = cell else {
            self.selection_uncached.inc();
            return Some(mux());
        };
        let mut built = false;
        let bytes = cell
            .get_or_init(|| {
                built = true;
                // Kept and read by many: sent without a copy (`crate::zc`).
                crate::zc::sealed(&mux())
            })
            .clone();
        if built {
            // Account what was really kept, not the estimate.
            let mut cache = facts.selections.lock().unwrap_or_else(|e| e.into_inner());
            let held = if listed { &mut cache.listed } else { &mut cache.reserved };
            *held = held.saturating_sub(estimate).saturating_add(bytes.len());
        }
        Some(bytes)
    }

    /// Track-selection segments muxed, and those served without caching
    /// because a segment's cache was full.
    pub fn selection_stats(&self) -> (u64, u64) {
        (self.selection_muxes.get(), self.selection_uncached.get())
    }

    /// Times EXT-X-TARGETDURATION had to grow after it was first declared.
    pub fn target_raises(&self) -> u64 {
        self.target_raises.get()
    }

    /// The listed segments as playlist entries for `sel` (`None`: every track).
    fn entries(&self, w: &SegmentWindow, sel: Option<TrackSelection>) -> Vec<PlaylistEntry> {
        w.newest(self.segment_count)
            .map(|s| {
                let facts = self.facts(s);
                PlaylistEntry::new(&s.segment, facts.independent(sel), facts.cues.clone())
            })
            .collect()
    }

    fn media_text(
        &self,
        w: &SegmentWindow,
        target: u64,
        sel: Option<TrackSelection>,
        query: Option<&str>,
        base: &str,
    ) -> String {
        let listed = self.entries(w, sel);
        let disc = listed.first().map_or(0, |e| w.discontinuities_before(e.seq));
        hls::render_media_playlist(&listed, target, disc, query, base)
    }

    /// Peak and average bits per second of the listed whole segments.
    fn bandwidth(&self, w: &SegmentWindow) -> (u64, Option<u64>) {
        let (mut peak, mut bits, mut ticks) = (0u64, 0u64, 0i64);
        for s in w.newest(self.segment_count) {
            let b = self.ts(s).len() as u64 * 8;
            let d = s.segment.duration.max(1);
            peak = peak.max(b * CLOCK_HZ as u64 / d as u64);
            bits += b;
            ticks += d;
        }
        (peak, (ticks > 0).then(|| bits * CLOCK_HZ as u64 / ticks as u64))
    }

    /// The audio renditions the master lists for `tracks`: one per audio
    /// track when there are several and there is video to pair them with.
    fn renditions(tracks: &[Track], base: &str, query: Option<&str>) -> Vec<AudioRendition> {
        let audio = tracks.iter().filter(|t| t.kind() == TrackKind::Audio).count();
        let video = tracks.iter().any(|t| t.kind() == TrackKind::Video);
        if audio > 1 && video {
            hls::audio_renditions(tracks, base, query)
        } else {
            Vec::new()
        }
    }

    /// The selections the master playlist of `tracks` lists.
    fn listed_selections(tracks: &[Track]) -> Vec<TrackSelection> {
        let renditions = Self::renditions(tracks, "", None);
        if renditions.is_empty() {
            return Vec::new();
        }
        let videos = tracks.iter().filter(|t| t.kind() == TrackKind::Video).count();
        (1..=videos.min(usize::from(hls::MAX_TRACK_INDEX)) as u8)
            .map(TrackSelection::video)
            .chain(renditions.iter().map(|r| TrackSelection::audio(r.index)))
            .collect()
    }

    fn master_text(&self, w: &SegmentWindow, query: Option<&str>, base: &str) -> String {
        let tracks = w.newest_segment().map(|s| s.segment.tracks.clone()).unwrap_or_default();
        let (peak, average) = self.bandwidth(w);
        let videos: Vec<&Track> = tracks.iter().filter(|t| t.kind() == TrackKind::Video).collect();
        let variant = |video: Option<&Track>, uri: String, codecs: Vec<String>, audio: Option<String>| Variant {
            uri: with_query(uri, query),
            bandwidth: peak,
            average_bandwidth: average,
            codecs,
            resolution: video
                .filter(|v| v.params.width > 0)
                .map(|v| (v.params.width, v.params.height)),
            frame_rate: video
                .and_then(|v| v.params.frame_rate)
                .filter(|(_, d)| *d > 0)
                .map(|(n, d)| n as f64 / d as f64),
            audio,
        };
        let renditions = Self::renditions(&tracks, base, query);
        let listed: Vec<Arc<HlsSegment>> = w.newest(self.segment_count).map(|s| self.facts(s)).collect();
        if renditions.is_empty() {
            let codecs = tracks.iter().filter_map(|t| t.params.codec_string.clone()).collect();
            let v = variant(
                videos.first().copied(),
                format!("{base}{}", hls::MEDIA_PLAYLIST),
                codecs,
                None,
            );
            let independent = listed.iter().all(|f| f.independent(None));
            return hls::render_master_playlist(&[v], &[], independent);
        }
        let mut audio_codecs: Vec<String> = Vec::new();
        for c in renditions.iter().filter_map(|r| r.codec.clone()) {
            if !audio_codecs.contains(&c) {
                audio_codecs.push(c);
            }
        }
        let variants: Vec<Variant> = videos
            .iter()
            .take(usize::from(hls::MAX_TRACK_INDEX))
            .enumerate()
            .map(|(i, v)| {
                let sel = TrackSelection::video(i as u8 + 1);
                let codecs = v.params.codec_string.iter().chain(&audio_codecs).cloned().collect();
                let uri = format!("{base}{sel}/{}", hls::MEDIA_PLAYLIST);
                variant(Some(v), uri, codecs, Some(hls::AUDIO_GROUP.to_string()))
            })
            .collect();
        let independent = listed.iter().all(|f| f.video_raps.iter().all(|r| *r));
        hls::render_master_playlist(&variants, &renditions, independent)
    }

    /// A playlist for `req`: the shared bytes, or rendered for its
    /// query/base. `master` for the master playlist, else the media
    /// playlist of `sel` (`None`: every track).
    fn playlist(
        &self,
        w: &SegmentWindow,
        master: bool,
        sel: Option<TrackSelection>,
        req: &PlayRequest,
    ) -> Result<Bytes, Unavailable> {
        // Only the token (and, for an authorized stream, the session id) is
        // carried into child URIs, and only a sane token: a long query must
        // not be copied into every line of a playlist.
        let carried = crate::access::carried_query(req, false);
        let query = carried.as_deref();
        let target = {
            let r = self.rendered.read().unwrap_or_else(|e| e.into_inner());
            if query.is_none() && req.uri_base.is_empty() {
                let shared = match (master, sel) {
                    (true, _) => r.master.clone(),
                    (false, None) => r.media.clone(),
                    (false, Some(s)) => r.tracks.iter().find(|(t, _)| *t == s).map(|(_, b)| b.clone()),
                };
                if let Some(b) = shared {
                    return Ok(b);
                }
                if r.media.is_none() {
                    return Err(Unavailable::NotReady);
                }
            }
            r.target_duration
        };
        let newest = w.newest_segment().ok_or(Unavailable::NotReady)?;
        if master {
            return Ok(Bytes::from(self.master_text(w, query, &req.uri_base)));
        }
        let base = match sel {
            Some(s) if !req.uri_base.is_empty() => format!("{}{s}/", req.uri_base),
            _ => req.uri_base.clone(),
        };
        if sel.is_some_and(|s| s.track_ids(&newest.segment.tracks).is_none()) {
            return Err(Unavailable::NoSuchTrack);
        }
        Ok(Bytes::from(self.media_text(w, target, sel, query, &base)))
    }

    async fn serve_playlist(
        self: Arc<Self>,
        stream: Arc<Stream>,
        master: bool,
        sel: Option<TrackSelection>,
        req: PlayRequest,
    ) -> Response {
        let now = Instant::now();
        if master && req.is_head() && !stream.healthy(now) {
            // Middleware probes: 200 only while the stream is healthy (fresh
            // segments from an input, not the backup).
            return reply::not_ready();
        }
        // A probe never waits; a viewer may wait for a stream that is starting.
        let ready =
            stream.live(now) || (!req.is_head() && stream.starting() && stream.wait_ready(stream.start_wait()).await);
        let body = if ready {
            self.playlist(&stream.window(), master, sel, &req)
        } else {
            Err(Unavailable::NotReady)
        };
        match body {
            Ok(b) => {
                stream.metrics.bytes_out.inc_by(b.len() as u64);
                (
                    [(header::CONTENT_TYPE, M3U8), (header::CACHE_CONTROL, PLAYLIST_CACHE)],
                    b,
                )
                    .into_response()
            }
            Err(Unavailable::NotReady) => reply::not_ready(),
            Err(Unavailable::NoSuchTrack) => reply::error(StatusCode::NOT_FOUND, "no such track"),
        }
    }

    fn serve_segment(&self, stream: &Stream, seq: u64, sel: Option<TrackSelection>, req: &PlayRequest) -> Response {
        let Some(seg) = stream.window().get(seq).cloned() else {
            if stream.window().is_empty() {
                return reply::not_ready();
            }
            return reply::error(StatusCode::NOT_FOUND, "segment is not in the window");
        };
        let ts = match sel {
            None => self.ts(&seg),
            Some(sel) => match self.selection_bytes(&seg, sel) {
                Some(ts) => ts,
                None => return reply::error(StatusCode::NOT_FOUND, "no such track"),
            },
        };
        if !req.is_head() {
            let len = ts.len() as u64;
            let sent = match req.range.map(|r| r.resolve(len)) {
                None => len,
                Some(Ok((a, b))) => b - a + 1,
                Some(Err(_)) => 0,
            };
            stream.metrics.bytes_out.inc_by(sent);
        }
        reply::ranged(ts, req.range, MP2T, SEGMENT_CACHE)
    }
}

impl Output for Hls {
    fn name(&self) -> &'static str {
        "hls"
    }

    fn on_segment(&self, ev: &SegmentEvent<'_>) {
        // Mux and read the frames now, so the first viewer does not pay for it.
        self.ts(ev.segment);
        self.facts(ev.segment);
        let w = ev.window;
        let want = hls::target_duration_for(&self.entries(w, None));
        let mut r = self.rendered.write().unwrap_or_else(|e| e.into_inner());
        if r.target_duration > 0 && want > r.target_duration {
            self.target_raises.inc();
            if let Some(held) = self.raise_log.allow(Instant::now()) {
                tracing::warn!(
                    stream = %self.stream,
                    from = r.target_duration,
                    to = want,
                    held_back = held,
                    "EXT-X-TARGETDURATION raised: a segment declared or needed more than the playlist had declared"
                );
            }
        }
        r.target_duration = r.target_duration.max(want);
        let target = r.target_duration;
        r.media = Some(Bytes::from(self.media_text(w, target, None, None, "")));
        r.master = Some(Bytes::from(self.master_text(w, None, "")));
        let tracks = ev.segment.segment.tracks.clone();
        r.tracks = Self::listed_selections(&tracks)
            .into_iter()
            .map(|s| (s, Bytes::from(self.media_text(w, target, Some(s), None, ""))))
            .collect();
    }

    fn serve(self: Arc<Self>, stream: &Arc<Stream>, req: &PlayRequest) -> Option<BoxFuture<'static, Response>> {
        let stream = stream.clone();
        let (master, sel, seq) = match req.resource {
            Resource::MasterPlaylist => (true, None, None),
            Resource::MediaPlaylist => (false, None, None),
            Resource::TrackPlaylist(s) => (false, Some(s), None),
            Resource::Segment(seq) => (false, None, Some(seq)),
            Resource::TrackSegment(s, seq) => (false, Some(s), Some(seq)),
            _ => return None,
        };
        match seq {
            Some(seq) => {
                let r = self.serve_segment(&stream, seq, sel, req);
                Some(async move { r }.boxed())
            }
            None => Some(self.serve_playlist(stream, master, sel, req.clone()).boxed()),
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, Method};
    use strom_config::StreamConfig;
    use strom_media::{Codec, Frame, TrackParams};

    const UTC: i64 = 1_763_769_600 * CLOCK_HZ;

    /// The HLS output of a stream listing 3 segments.
    fn output() -> Arc<Hls> {
        let mut cfg = StreamConfig::new("t", Vec::new());
        cfg.segment_count = 3;
        Arc::new(Hls::new(&OutputCtx {
            stream: Arc::from("t"),
            cfg,
            metrics: crate::metrics::Metrics::new().stream("t"),
            slot: 0,
            archive: None,
        }))
    }

    /// The PIDs of the packets in `ts`.
    fn pids(ts: &[u8]) -> Vec<u16> {
        let mut p: Vec<u16> = ts
            .chunks(188)
            .map(|c| u16::from(c[1] & 0x1F) << 8 | u16::from(c[2]))
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    }

    fn track(id: u16, codec: Codec, language: Option<&str>) -> Track {
        let audio = codec.kind() == TrackKind::Audio;
        Track {
            id,
            codec,
            params: TrackParams {
                language: language.map(str::to_string),
                channels: if audio { 2 } else { 0 },
                sample_rate: if audio { 48_000 } else { 0 },
                aac_object_type: 2,
                codec_string: match codec {
                    Codec::H264 => Some("avc1.4d401f".into()),
                    Codec::Aac => Some("mp4a.40.2".into()),
                    Codec::Ac3 => Some("ac-3".into()),
                    _ => None,
                },
                ..TrackParams::default()
            },
        }
    }

    /// Video, AAC eng, AC-3 deu, AAC without a language, SCTE-35.
    fn languages() -> Arc<[Track]> {
        Arc::from(vec![
            track(0, Codec::H264, None),
            track(1, Codec::Aac, Some("eng")),
            track(2, Codec::Ac3, Some("deu")),
            track(3, Codec::Aac, None),
            track(4, Codec::Scte35, None),
        ])
    }

    /// A 2 s segment numbered `seq` of every track in `tracks` but SCTE-35,
    /// starting on a video keyframe or not, plus `cues` on the SCTE-35 track.
    fn segment(seq: u64, tracks: &Arc<[Track]>, rap: bool, declared: u32, cues: &[Vec<u8>]) -> Arc<StoredSegment> {
        let start = UTC + (seq as i64 - 1) * 2 * CLOCK_HZ;
        let mut frames = Vec::new();
        for i in 0..50i64 {
            for t in tracks.iter() {
                let data: &'static [u8] = match t.kind() {
                    TrackKind::Video => &[0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x65, 0x88],
                    TrackKind::Audio => &[0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c],
                    _ => continue,
                };
                let dts = start + i * 3600;
                frames.push(Frame {
                    track: t.id,
                    dts,
                    pts: dts,
                    keyframe: t.kind() != TrackKind::Video || (i == 0 && rap) || i == 25,
                    data: Bytes::from_static(data),
                });
            }
        }
        for c in cues {
            frames.push(Frame {
                track: 4,
                dts: start,
                pts: start + CLOCK_HZ,
                keyframe: true,
                data: Bytes::from(c.clone()),
            });
        }
        Arc::new(StoredSegment::new(
            Segment {
                seq,
                start,
                duration: 2 * CLOCK_HZ,
                discontinuity: false,
                target_duration: declared,
                tracks: tracks.clone(),
                frames,
            },
            1,
        ))
    }

    fn push(hls: &Hls, w: &mut SegmentWindow, seg: Arc<StoredSegment>) {
        assert!(w.push(seg.clone()));
        hls.on_segment(&SegmentEvent {
            segment: &seg,
            window: w,
        });
    }

    fn request(path: &str, query: Option<&str>) -> PlayRequest {
        PlayRequest::parse(Method::GET, path, query, &HeaderMap::new(), None).expect("parses")
    }

    fn text(r: Result<Bytes, Unavailable>) -> String {
        match r {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(Unavailable::NotReady) => "not ready".into(),
            Err(Unavailable::NoSuchTrack) => "no such track".into(),
        }
    }

    /// A splice_insert leaving the network (ANSI/SCTE 35 §9.7.3), with CRC.
    fn splice_out(event: u32) -> Vec<u8> {
        let mut c = event.to_be_bytes().to_vec();
        c.extend_from_slice(&[0x7F, 0xCF, 0xFE, 0, 0, 0, 0, 0, 1, 0, 0]);
        let mut s = vec![0xFC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xF0, c.len() as u8, 0x05];
        s.extend_from_slice(&c);
        s.extend_from_slice(&[0, 0]);
        let len = s.len() + 1;
        s[1] = 0x30 | (len >> 8) as u8;
        s[2] = len as u8;
        let crc = strom_media::ts::crc::crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    #[test]
    fn target_duration_is_declared_sticky_and_raises_are_counted() {
        let hls = output();
        let mut w = SegmentWindow::new(6);
        let av = Arc::from(vec![track(0, Codec::H264, None), track(1, Codec::Aac, None)]);
        let target = |hls: &Hls| hls.rendered.read().map(|r| r.target_duration).unwrap_or(0);
        push(&hls, &mut w, segment(1, &av, true, 6, &[]));
        assert_eq!(target(&hls), 6, "declared, though segments are 2 s");
        for seq in 2..6 {
            push(&hls, &mut w, segment(seq, &av, true, 2, &[]));
        }
        assert_eq!(target(&hls), 6, "never shrinks once the 6 s declaration left");
        assert_eq!(hls.target_raises(), 0);
        push(&hls, &mut w, segment(6, &av, true, 8, &[]));
        assert_eq!(
            (target(&hls), hls.target_raises()),
            (8, 1),
            "a restarted source declares more"
        );
        let media = text(hls.playlist(&w, false, None, &request("/t/mono.m3u8", None)));
        assert!(
            media.contains(
                "#EXT-X-TARGETDURATION:8
"
            ),
            "{media}"
        );
        let track_media = text(hls.playlist(&w, false, TrackSelection::parse("tracks-a1"), &request("/t/x", None)));
        assert!(
            track_media.contains(
                "#EXT-X-TARGETDURATION:8
"
            ),
            "{track_media}"
        );
    }

    #[test]
    fn independent_segments_follow_the_listed_segments_random_access() {
        let hls = output();
        let mut w = SegmentWindow::new(6);
        let t = languages();
        let shared = |hls: &Hls| {
            hls.rendered
                .read()
                .map(|r| r.media.clone())
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        push(&hls, &mut w, segment(1, &t, true, 2, &[]));
        assert!(String::from_utf8_lossy(&shared(&hls)).contains("#EXT-X-INDEPENDENT-SEGMENTS"));
        push(&hls, &mut w, segment(2, &t, false, 2, &[]));
        let media = String::from_utf8_lossy(&shared(&hls)).into_owned();
        assert!(!media.contains("INDEPENDENT"), "segment 2 starts mid-GOP: {media}");
        let master = hls
            .rendered
            .read()
            .map(|r| r.master.clone())
            .ok()
            .flatten()
            .unwrap_or_default();
        assert!(!String::from_utf8_lossy(&master).contains("INDEPENDENT"));
        let audio = text(hls.playlist(&w, false, TrackSelection::parse("tracks-a2"), &request("/t/x", None)));
        assert!(
            audio.contains("#EXT-X-INDEPENDENT-SEGMENTS"),
            "audio always is: {audio}"
        );
        for seq in 3..6 {
            push(&hls, &mut w, segment(seq, &t, true, 2, &[]));
        }
        assert!(
            String::from_utf8_lossy(&shared(&hls)).contains("#EXT-X-INDEPENDENT-SEGMENTS"),
            "back once segment 2 is no longer listed"
        );
    }

    #[test]
    fn several_audio_tracks_make_renditions_and_per_track_playlists() {
        let hls = output();
        let mut w = SegmentWindow::new(6);
        let t = languages();
        for seq in 1..3 {
            push(&hls, &mut w, segment(seq, &t, true, 2, &[]));
        }
        let master = text(hls.playlist(&w, true, None, &request("/t/index.m3u8", None)));
        assert!(
            master.contains(
                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",LANGUAGE=\"eng\",NAME=\"eng\",DEFAULT=YES,AUTOSELECT=YES,\
             CHANNELS=\"2\",URI=\"tracks-a1/mono.m3u8\"\n"
            ),
            "{master}"
        );
        assert!(master.contains("NAME=\"deu\",DEFAULT=NO"), "{master}");
        assert!(
            master.contains("NAME=\"Audio 3\",DEFAULT=NO,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"tracks-a3/mono.m3u8\"")
        );
        assert!(master.contains("CODECS=\"avc1.4d401f,mp4a.40.2,ac-3\""), "{master}");
        assert!(master.contains(",AUDIO=\"audio\"\ntracks-v1/mono.m3u8\n"), "{master}");
        assert_eq!(master.matches("#EXT-X-STREAM-INF").count(), 1);
        // Shared bytes equal what a fresh render gives.
        let shared = hls
            .rendered
            .read()
            .map(|r| r.master.clone())
            .ok()
            .flatten()
            .unwrap_or_default();
        assert_eq!(String::from_utf8_lossy(&shared), master);
        let listed: Vec<String> = hls
            .rendered
            .read()
            .map(|r| r.tracks.iter().map(|(s, _)| s.to_string()).collect())
            .unwrap_or_default();
        assert_eq!(listed, ["tracks-v1", "tracks-a1", "tracks-a2", "tracks-a3"]);

        // Tokens and redirects reach every URI, with the selection directory.
        let mut r = request("/t/tracks-a2/mono.m3u8", Some("token=abc&x=1"));
        r.uri_base = "http://h:1/t/".into();
        let sel = r.resource.selection();
        let media = text(hls.playlist(&w, false, sel, &r));
        assert!(media.contains("\nhttp://h:1/t/tracks-a2/2.ts?token=abc\n"), "{media}");
        let master = text(hls.playlist(&w, true, None, &r));
        assert!(
            master.contains("URI=\"http://h:1/t/tracks-a3/mono.m3u8?token=abc\""),
            "{master}"
        );
        assert!(
            master.contains("\nhttp://h:1/t/tracks-v1/mono.m3u8?token=abc\n"),
            "{master}"
        );
        let relative = text(hls.playlist(&w, false, sel, &request("/t/tracks-a2/mono.m3u8", Some("token=abc"))));
        assert!(relative.contains("\n2.ts?token=abc\n"), "{relative}");
        // Selections that name a missing track.
        for bad in ["tracks-a4", "tracks-v2", "tracks-v1a1a4"] {
            let r = hls.playlist(&w, false, TrackSelection::parse(bad), &request("/t/x", None));
            assert_eq!(text(r), "no such track", "{bad}");
        }
    }

    #[test]
    fn one_audio_track_keeps_the_single_variant_master() {
        let hls = output();
        let mut w = SegmentWindow::new(6);
        let av = Arc::from(vec![track(0, Codec::H264, None), track(1, Codec::Aac, Some("eng"))]);
        push(&hls, &mut w, segment(1, &av, true, 2, &[]));
        let master = text(hls.playlist(&w, true, None, &request("/t/index.m3u8", None)));
        assert!(!master.contains("EXT-X-MEDIA"), "{master}");
        assert!(
            master.ends_with("CODECS=\"avc1.4d401f,mp4a.40.2\"\nmono.m3u8\n"),
            "{master}"
        );
        // The per-track URLs still work.
        let v = text(hls.playlist(&w, false, TrackSelection::parse("tracks-v1"), &request("/t/x", None)));
        assert!(v.contains("\n1.ts\n"), "{v}");
    }

    #[test]
    fn scte35_cues_reach_every_media_playlist() {
        let hls = output();
        let mut w = SegmentWindow::new(6);
        let t = languages();
        push(&hls, &mut w, segment(1, &t, true, 2, &[]));
        push(&hls, &mut w, segment(2, &t, true, 2, &[splice_out(77)]));
        let id = format!("ID=\"splice-77-out-{}\"", (UTC + 3 * CLOCK_HZ) / 90);
        for sel in [
            None,
            TrackSelection::parse("tracks-v1"),
            TrackSelection::parse("tracks-a3"),
        ] {
            let media = text(hls.playlist(&w, false, sel, &request("/t/x", Some("token=q"))));
            let tag = media.find(&id).unwrap_or_else(|| panic!("{sel:?}: {media}"));
            let pdt = media.find("#EXT-X-PROGRAM-DATE-TIME:2025-11-22T00:00:02.000Z");
            let uri = media.find("\n2.ts?token=q");
            assert!(pdt < Some(tag) && Some(tag) < uri, "before its segment: {media}");
            assert!(media.contains("START-DATE=\"2025-11-22T00:00:03.000Z\",SCTE35-OUT=0xFC"));
        }
        let shared = hls
            .rendered
            .read()
            .map(|r| r.media.clone())
            .ok()
            .flatten()
            .unwrap_or_default();
        assert!(String::from_utf8_lossy(&shared).contains(&id));
    }

    #[test]
    fn selection_segments_are_muxed_once_within_bounds() {
        let hls = output();
        let tracks: Arc<[Track]> = Arc::from(
            std::iter::once(track(0, Codec::H264, None))
                .chain((1..=6).map(|i| track(i, Codec::Aac, None)))
                .collect::<Vec<_>>(),
        );
        let mut big = segment(1, &tracks, true, 2, &[]).segment.clone();
        for f in big.frames.iter_mut().filter(|f| f.track == 0) {
            let mut data = f.data.to_vec();
            data.resize(20_000, 0x11);
            f.data = Bytes::from(data);
        }
        let seg = StoredSegment::new(big, 1);
        let sel = |s: &str| TrackSelection::parse(s).expect("valid");
        let a = hls.selection_bytes(&seg, sel("tracks-a2"));
        let b = hls.selection_bytes(&seg, sel("tracks-a2"));
        assert!(a.is_some() && a == b);
        assert_eq!(pids(&a.unwrap_or_default()), [0, 0x102, 0x1000], "PAT, the audio, PMT");
        let v = hls.selection_bytes(&seg, sel("tracks-v1a1")).unwrap_or_default();
        assert_eq!(pids(&v), [0, 0x100, 0x101, 0x1000], "the PIDs of the whole segment");
        let v2 = hls.selection_bytes(&seg, sel("tracks-v1a1"));
        assert_eq!(v2.as_ref(), Some(&v));
        assert_eq!(hls.selection_stats(), (2, 0), "each selection muxed once");
        // Every track: the whole segment's bytes, no new mux.
        let all = hls.selection_bytes(&seg, sel("tracks-v1a1a2a3a4a5a6"));
        assert_eq!(all, Some(hls.ts(&seg)));
        assert_eq!(hls.selection_stats(), (2, 0));
        assert_eq!(hls.selection_bytes(&seg, sel("tracks-a7")), None);
        // 20 distinct audio-only selections: the five single-track ones are
        // listed selections (own budget); of the 15 combinations, the cache
        // keeps what fits in MAX_CACHED_SELECTIONS entries in all and the
        // segment's size, the rest are muxed on every request.
        let many: Vec<TrackSelection> = (1u32..=20).map(|m| TrackSelection { video: None, audio: m }).collect();
        for _ in 0..2 {
            for s in &many {
                assert!(hls.selection_bytes(&seg, *s).is_some());
            }
        }
        let entries = |seg: &StoredSegment| hls.facts(seg).selections.lock().map(|c| c.entries.len()).unwrap_or(0);
        assert!(entries(&seg) <= MAX_CACHED_SELECTIONS + 6, "{}", entries(&seg));
        let (muxes, uncached) = hls.selection_stats();
        let cached_new = entries(&seg) - 2;
        assert_eq!(
            muxes,
            2 + cached_new as u64 + uncached,
            "cached ones once, the others per request"
        );
        assert!(uncached > 0, "the combinations past the bound are not kept");
        let held = hls.facts(&seg).selections.lock().map(|c| c.reserved).unwrap_or(0);
        assert!(held <= hls.ts(&seg).len(), "{held}");

        // Requests for combinations cannot push the listed selections out:
        // on a fresh segment, three video+audio combinations first, then the
        // selections a master lists are each muxed once however often asked.
        let seg = StoredSegment::new(seg.segment.clone(), 1);
        for s in ["tracks-v1a1", "tracks-v1a2", "tracks-v1a3"] {
            assert!(hls.selection_bytes(&seg, sel(s)).is_some());
        }
        let before = hls.selection_stats().0;
        for _ in 0..3 {
            for s in [
                "tracks-v1",
                "tracks-a1",
                "tracks-a2",
                "tracks-a3",
                "tracks-a4",
                "tracks-a5",
                "tracks-a6",
            ] {
                assert!(hls.selection_bytes(&seg, sel(s)).is_some());
            }
        }
        assert_eq!(hls.selection_stats().0 - before, 7, "each listed selection muxed once");
        let listed = hls.facts(&seg).selections.lock().map(|c| c.listed).unwrap_or(0);
        assert!(listed <= 2 * hls.ts(&seg).len(), "{listed}");
    }
}

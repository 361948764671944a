//! HLS output with MPEG-TS segments (RFC 8216): the master playlist
//! (`index.m3u8`, `playlist.m3u8`), the media playlist (`mono.m3u8`,
//! `video.m3u8`) and the segments.
//!
//! - Each segment is muxed to MPEG-TS once, into this output's rendition
//!   slot of the stored segment, when the pipeline finishes it; every viewer
//!   shares those bytes.
//! - Both playlists are rendered once per segment; a request without a query
//!   string and without a redirect gets the shared bytes. A token query is
//!   carried onto every URI; after a redirect URIs are absolute.
//! - EXT-X-TARGETDURATION never decreases (RFC 8216 §6.2.1);
//!   EXT-X-DISCONTINUITY-SEQUENCE counts every discontinuity before the
//!   first listed segment, evicted or not.
//! - HLS viewers are counted as sessions (one per token, ip and stream)
//!   seen within [`SESSION_IDLE`].

use super::{Output, OutputCtx, SegmentEvent};
use crate::http::reply::{self, M3U8, MP2T};
use crate::http::request::{PlayRequest, Resource};
use crate::stream::window::{SegmentWindow, StoredSegment};
use crate::stream::Stream;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use strom_media::hls::{self, PlaylistEntry, Variant};
use strom_media::{Segment, TrackKind, CLOCK_HZ};

/// An HLS session counts as a viewer this long after its last request.
pub const SESSION_IDLE: Duration = Duration::from_secs(30);
/// Distinct HLS sessions tracked per stream; beyond this new ones are not counted.
const MAX_SESSIONS: usize = 100_000;
/// Distinct HLS sessions one client address may hold per stream (a CGNAT
/// hides many households behind one address, so this is generous).
pub const MAX_SESSIONS_PER_IP: u32 = 256;

/// HLS viewer sessions: last media request time, and sessions per address.
#[derive(Default)]
struct Sessions {
    last: HashMap<u64, (Instant, Option<IpAddr>)>,
    per_ip: HashMap<IpAddr, u32>,
}

impl Sessions {
    /// Records a media request of session `key` from `ip` at `now`; false
    /// when a new session was refused by a cap.
    fn note(&mut self, key: u64, ip: Option<IpAddr>, now: Instant) -> bool {
        if let Some(e) = self.last.get_mut(&key) {
            e.0 = now;
            return true;
        }
        if self.last.len() >= MAX_SESSIONS {
            return false;
        }
        if let Some(ip) = ip {
            let n = self.per_ip.entry(ip).or_default();
            if *n >= MAX_SESSIONS_PER_IP {
                return false;
            }
            *n += 1;
        }
        self.last.insert(key, (now, ip));
        true
    }

    /// Marks a known session as still active (a playlist refresh).
    fn refresh(&mut self, key: u64, now: Instant) {
        if let Some(e) = self.last.get_mut(&key) {
            e.0 = now;
        }
    }

    fn prune(&mut self, now: Instant) {
        let per_ip = &mut self.per_ip;
        self.last.retain(|_, (t, ip)| {
            let keep = now.saturating_duration_since(*t) < SESSION_IDLE;
            if let (false, Some(ip)) = (keep, ip) {
                if let Some(n) = per_ip.get_mut(ip) {
                    *n = n.saturating_sub(1);
                }
            }
            keep
        });
        per_ip.retain(|_, n| *n > 0);
    }
}
/// Longest token carried into playlist URIs, bytes.
const MAX_TOKEN: usize = 512;
const SEGMENT_CACHE: &str = "public, max-age=86400, immutable";
const PLAYLIST_CACHE: &str = "max-age=1";

#[derive(Default)]
struct Rendered {
    target_duration: u64,
    media: Option<Bytes>,
    master: Option<Bytes>,
}

/// The HLS output of one stream.
pub struct Hls {
    slot: usize,
    segment_count: usize,
    configured_target: i64,
    rendered: RwLock<Rendered>,
    sessions: Mutex<Sessions>,
    refused_sessions: prometheus_client::metrics::counter::Counter,
    /// The number of sessions, readable without the lock.
    session_count: AtomicU64,
}

/// Registers the HLS output.
pub fn build(ctx: &OutputCtx) -> Arc<dyn Output> {
    Arc::new(Hls {
        slot: ctx.slot,
        segment_count: ctx.cfg.segment_count,
        configured_target: ctx.cfg.segment_duration.as_millis() as i64 * CLOCK_HZ / 1000,
        rendered: RwLock::new(Rendered::default()),
        sessions: Mutex::new(Sessions::default()),
        refused_sessions: ctx.metrics.sessions_refused.clone(),
        session_count: AtomicU64::new(0),
    })
}

fn entry(s: &Segment) -> PlaylistEntry {
    PlaylistEntry {
        seq: s.seq,
        start: s.start,
        duration: s.duration,
        discontinuity: s.discontinuity,
    }
}

impl Hls {
    /// The MPEG-TS bytes of `seg`, muxed once.
    fn ts(&self, seg: &StoredSegment) -> Bytes {
        seg.rendition(self.slot, strom_media::ts::mux::mux_segment)
    }

    /// The MPEG-TS bytes of segment `seq`, if the window holds it.
    pub fn segment_bytes(&self, stream: &Stream, seq: u64) -> Option<Bytes> {
        let seg = stream.window().get(seq).cloned()?;
        Some(self.ts(&seg))
    }

    fn media_text(&self, w: &SegmentWindow, target: u64, query: Option<&str>, base: &str) -> String {
        let listed: Vec<PlaylistEntry> = w.newest(self.segment_count).map(|s| entry(&s.segment)).collect();
        let disc = listed.first().map_or(0, |e| w.discontinuities_before(e.seq));
        hls::render_media_playlist(&listed, target, disc, query, base)
    }

    fn variant(&self, w: &SegmentWindow, query: Option<&str>, base: &str) -> Variant {
        let (mut peak, mut bits, mut ticks) = (0u64, 0u64, 0i64);
        for s in w.newest(self.segment_count) {
            let b = self.ts(s).len() as u64 * 8;
            let d = s.segment.duration.max(1);
            peak = peak.max(b * CLOCK_HZ as u64 / d as u64);
            bits += b;
            ticks += d;
        }
        let tracks = w.newest_segment().map(|s| s.segment.tracks.clone()).unwrap_or_default();
        let video = tracks.iter().find(|t| t.kind() == TrackKind::Video);
        let mut uri = format!("{base}mono.m3u8");
        if let Some(q) = query {
            uri.push('?');
            uri.push_str(q);
        }
        Variant {
            uri,
            bandwidth: peak,
            average_bandwidth: (ticks > 0).then(|| bits * CLOCK_HZ as u64 / ticks as u64),
            codecs: tracks.iter().filter_map(|t| t.params.codec_string.clone()).collect(),
            resolution: video
                .filter(|v| v.params.width > 0)
                .map(|v| (v.params.width, v.params.height)),
            frame_rate: video
                .and_then(|v| v.params.frame_rate)
                .filter(|(_, d)| *d > 0)
                .map(|(n, d)| n as f64 / d as f64),
        }
    }

    /// A playlist for `req`: the shared bytes, or rendered for its query/base.
    fn playlist(&self, stream: &Stream, master: bool, req: &PlayRequest) -> Option<Bytes> {
        let base = req.uri_base.clone();
        // Only the token is carried into child URIs, and only a sane one: a
        // long query must not be copied into every line of a playlist.
        let carried = req
            .token
            .as_deref()
            .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN)
            .map(|t| format!("token={t}"));
        let query = carried.as_deref();
        if query.is_none() && base.is_empty() {
            let r = self.rendered.read().unwrap_or_else(|e| e.into_inner());
            return if master { r.master.clone() } else { r.media.clone() };
        }
        let target = self.rendered.read().unwrap_or_else(|e| e.into_inner()).target_duration;
        let w = stream.window();
        if w.is_empty() {
            return None;
        }
        Some(Bytes::from(if master {
            hls::render_master_playlist(&[self.variant(&w, query, &base)])
        } else {
            self.media_text(&w, target, query, &base)
        }))
    }

    /// Counts the viewer of a served request. Only media (a segment) makes
    /// a new session; a playlist only keeps a known one alive. Probes,
    /// errors and refusals count nothing, so requests that get no media
    /// cannot inflate the load peers and the balancer read.
    fn note_session(&self, req: &PlayRequest, media: bool) {
        if req.is_head() {
            return;
        }
        let key = req.session_key();
        let now = Instant::now();
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if !media {
            s.refresh(key, now);
        } else if !s.note(key, req.ip, now) {
            self.refused_sessions.inc();
        }
        self.session_count.store(s.last.len() as u64, Ordering::Relaxed);
    }

    async fn serve_playlist(self: Arc<Self>, stream: Arc<Stream>, master: bool, req: PlayRequest) -> Response {
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
            self.playlist(&stream, master, &req)
        } else {
            None
        };
        match body {
            Some(b) => {
                self.note_session(&req, false);
                stream.metrics.bytes_out.inc_by(b.len() as u64);
                (
                    [(header::CONTENT_TYPE, M3U8), (header::CACHE_CONTROL, PLAYLIST_CACHE)],
                    b,
                )
                    .into_response()
            }
            None => reply::not_ready(),
        }
    }

    fn serve_segment(&self, stream: &Stream, seq: u64, req: &PlayRequest) -> Response {
        let Some(seg) = stream.window().get(seq).cloned() else {
            if stream.window().is_empty() {
                return reply::not_ready();
            }
            return reply::error(StatusCode::NOT_FOUND, "segment is not in the window");
        };
        let ts = self.ts(&seg);
        self.note_session(req, true);
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
        // Mux now, so the first viewer does not pay for it.
        self.ts(ev.segment);
        let w = ev.window;
        let listed: Vec<PlaylistEntry> = w.newest(self.segment_count).map(|s| entry(&s.segment)).collect();
        let mut r = self.rendered.write().unwrap_or_else(|e| e.into_inner());
        r.target_duration = r
            .target_duration
            .max(hls::target_duration_for(&listed, self.configured_target));
        let media = self.media_text(w, r.target_duration, None, "");
        r.media = Some(Bytes::from(media));
        r.master = Some(Bytes::from(hls::render_master_playlist(&[self.variant(w, None, "")])));
    }

    fn clients(&self) -> Option<u64> {
        Some(self.session_count.load(Ordering::Relaxed))
    }

    fn tick(&self, now: Instant) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.prune(now);
        self.session_count.store(s.last.len() as u64, Ordering::Relaxed);
    }

    fn is_new_viewer(&self, req: &PlayRequest) -> bool {
        matches!(req.resource, Resource::MasterPlaylist | Resource::MediaPlaylist)
            && !self
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .last
                .contains_key(&req.session_key())
    }

    fn serve(self: Arc<Self>, stream: &Arc<Stream>, req: &PlayRequest) -> Option<BoxFuture<'static, Response>> {
        let stream = stream.clone();
        match req.resource {
            Resource::MasterPlaylist => Some(self.serve_playlist(stream, true, req.clone()).boxed()),
            Resource::MediaPlaylist => Some(self.serve_playlist(stream, false, req.clone()).boxed()),
            Resource::Segment(seq) => {
                let r = self.serve_segment(&stream, seq, req);
                Some(async move { r }.boxed())
            }
            _ => None,
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_capped_per_address_and_pruned() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        for k in 0..u64::from(MAX_SESSIONS_PER_IP) {
            assert!(s.note(k, Some(a), t0));
        }
        assert!(!s.note(9_999, Some(a), t0), "one address cannot make more");
        assert!(s.note(0, Some(a), t0), "a known session is refreshed");
        assert!(s.note(10_000, Some(b), t0), "another address can");
        s.refresh(77_777, t0);
        assert!(!s.last.contains_key(&77_777), "a refresh never creates");
        s.prune(t0 + SESSION_IDLE);
        assert!(s.last.is_empty() && s.per_ip.is_empty());
        assert!(s.note(9_999, Some(a), t0 + SESSION_IDLE), "room again after pruning");
    }
}

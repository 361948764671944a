//! Stream hub: the shared, read-mostly state of one stream that HTTP handlers
//! read and the stream's supervisor writes.
//!
//! - A window of finished segments, each muxed to MPEG-TS exactly once and
//!   shared as `Bytes` by every viewer.
//! - Playlist snapshots rendered once per segment (requests without a query
//!   string get the shared `Bytes`).
//! - A broadcast of live MPEG-TS chunks (one per frame, muxed once) for
//!   HTTP-TS viewers, plus the chunks since the last keyframe so a new viewer
//!   starts at a keyframe with PAT/PMT first.
//!
//! Invariants: the window holds consecutive sequence numbers; the broadcast
//! and the window are bounded, so memory per stream is bounded whatever the
//! viewers do; the supervisor never waits on a viewer.

use crate::metrics::StreamMetrics;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use strom_config::StreamConfig;
use strom_media::hls::{self, PlaylistEntry, Variant};
use strom_media::{Segment, Track, TrackKind, CLOCK_HZ};
use tokio::sync::{broadcast, watch, Notify};

/// Segments kept beyond the playlist window for players that are behind.
const EXTRA_SEGMENTS: usize = 4;
/// Live chunks buffered per stream for HTTP-TS viewers (about 7 s at 25 fps + audio).
pub const LIVE_CAPACITY: usize = 512;
/// A GOP bigger than this is not cached for new viewers; they wait for the next keyframe.
const GOP_CACHE_MAX_BYTES: usize = 32 << 20;
/// Distinct HLS sessions tracked per stream; beyond this new sessions are not counted.
const MAX_SESSIONS: usize = 100_000;
/// An HLS session counts as a viewer this long after its last request.
pub const HLS_SESSION_IDLE: Duration = Duration::from_secs(30);

/// A finished segment, its MPEG-TS bytes and (made on first use) its
/// cluster wire message.
#[derive(Debug)]
pub struct StoredSegment {
    pub segment: Segment,
    pub ts: Bytes,
    wire: std::sync::OnceLock<Bytes>,
}

impl StoredSegment {
    /// The segment as one wire message; encoded once, shared by every restreamer.
    pub fn wire(&self) -> Bytes {
        self.wire
            .get_or_init(|| strom_media::wire::encode_segment(&self.segment))
            .clone()
    }
}

/// One muxed frame of the continuous HTTP-TS output.
#[derive(Clone, Debug)]
pub struct LiveChunk {
    /// Position in the stream's chunk sequence; consecutive.
    pub idx: u64,
    /// A viewer may start here: PAT/PMT followed by a keyframe.
    pub start: bool,
    pub data: Bytes,
}

/// Lifecycle state reported by the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No frame yet (starting, or on-demand stream starting).
    Waiting,
    /// Frames flow from a configured input.
    Running,
    /// Every input is down; the backup plays.
    Backup,
    /// Every input is down and there is no backup.
    Failed,
    /// On-demand stream with no viewers.
    Stopped,
}

#[derive(Debug)]
struct HubState {
    window: VecDeque<Arc<StoredSegment>>,
    evicted_discontinuities: u64,
    target_duration: u64,
    media_playlist: Option<Bytes>,
    master_playlist: Option<Bytes>,
    gop: Vec<LiveChunk>,
    gop_bytes: usize,
    next_chunk: u64,
    status: Status,
    active_input: Option<usize>,
    tracks: Arc<[Track]>,
    last_frame_at: Option<Instant>,
    last_segment_at: Option<Instant>,
    running_since: Option<Instant>,
}

/// Why a playlist or segment cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// No segment yet (or the stream went stale): 503.
    NotReady,
    /// The segment is not in the window: 404.
    Gone,
}

/// Shared state of one stream.
pub struct StreamHub {
    pub name: String,
    pub cfg: StreamConfig,
    pub metrics: StreamMetrics,
    state: RwLock<HubState>,
    live: broadcast::Sender<LiveChunk>,
    newest_seq: watch::Sender<Option<u64>>,
    /// On-demand control: viewers bump `last_demand_ms`, `wake` starts the inputs.
    pub wake: Notify,
    last_demand_ms: AtomicU64,
    epoch: Instant,
    /// Open HTTP-TS connections.
    pub mpegts_viewers: AtomicUsize,
    sessions: Mutex<HashMap<u64, Instant>>,
    /// The sender of the running `publish://` input, taken by one publisher at a time.
    pub publish_slot: Mutex<Option<tokio::sync::mpsc::Sender<Bytes>>>,
    pub created: Instant,
    /// For restreamed streams: the source node currently feeding it.
    origin: Mutex<Option<String>>,
}

impl StreamHub {
    pub fn new(cfg: StreamConfig, metrics: StreamMetrics) -> Arc<Self> {
        let now = Instant::now();
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        let (newest_seq, _) = watch::channel(None);
        let status = if cfg.ondemand { Status::Stopped } else { Status::Waiting };
        metrics.active_input.set(-1);
        Arc::new(StreamHub {
            name: cfg.name.clone(),
            metrics,
            state: RwLock::new(HubState {
                window: VecDeque::new(),
                evicted_discontinuities: 0,
                target_duration: 0,
                media_playlist: None,
                master_playlist: None,
                gop: Vec::new(),
                gop_bytes: 0,
                next_chunk: 0,
                status,
                active_input: None,
                tracks: Arc::from(Vec::new()),
                last_frame_at: None,
                last_segment_at: None,
                running_since: None,
            }),
            cfg,
            live,
            newest_seq,
            wake: Notify::new(),
            last_demand_ms: AtomicU64::new(0),
            epoch: now,
            mpegts_viewers: AtomicUsize::new(0),
            sessions: Mutex::new(HashMap::new()),
            publish_slot: Mutex::new(None),
            created: now,
            origin: Mutex::new(None),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HubState> {
        // A panic while holding the lock would poison it; the state stays
        // consistent because every writer updates it in one step.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HubState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn window_cap(&self) -> usize {
        self.cfg.segment_count + EXTRA_SEGMENTS
    }

    /// Adds a finished segment: muxes it once, slides the window and renders playlists.
    pub fn push_segment(&self, segment: Segment) {
        let ts = strom_media::ts::mux::mux_segment(&segment);
        let (seq, duration, discontinuity) = (segment.seq, segment.duration_secs(), segment.discontinuity);
        let stored = Arc::new(StoredSegment {
            segment,
            ts,
            wire: std::sync::OnceLock::new(),
        });
        let mut st = self.write();
        // A sequence gap (never expected) restarts the window so that it stays consecutive.
        if st.window.back().is_some_and(|b| b.segment.seq + 1 != seq) {
            let d = st.window.iter().filter(|s| s.segment.discontinuity).count() as u64;
            st.evicted_discontinuities += d;
            st.window.clear();
        }
        st.window.push_back(stored);
        while st.window.len() > self.window_cap() {
            if let Some(old) = st.window.pop_front() {
                if old.segment.discontinuity {
                    st.evicted_discontinuities += 1;
                }
            }
        }
        st.last_segment_at = Some(Instant::now());
        self.render_playlists(&mut st);
        drop(st);
        self.metrics.segments.inc();
        self.newest_seq.send_replace(Some(seq));
        // Logged once the segment is served: bench/cluster_latency.sh reads these lines.
        tracing::debug!(stream = %self.name, seq, duration, discontinuity, "segment available");
    }

    /// The playlist window: the newest `segment_count` segments.
    fn listed<'a>(&self, st: &'a HubState) -> impl Iterator<Item = &'a Arc<StoredSegment>> {
        let skip = st.window.len().saturating_sub(self.cfg.segment_count);
        st.window.iter().skip(skip)
    }

    fn render_playlists(&self, st: &mut HubState) {
        let skip = st.window.len().saturating_sub(self.cfg.segment_count);
        let entries: Vec<PlaylistEntry> = self.listed(st).map(|s| entry(&s.segment)).collect();
        let configured = self.cfg.segment_duration.as_millis() as i64 * CLOCK_HZ / 1000;
        st.target_duration = st.target_duration.max(hls::target_duration_for(&entries, configured));
        let disc_seq =
            st.evicted_discontinuities + st.window.iter().take(skip).filter(|s| s.segment.discontinuity).count() as u64;
        st.media_playlist = Some(Bytes::from(hls::render_media_playlist(
            &entries,
            st.target_duration,
            disc_seq,
            None,
            "",
        )));
        st.master_playlist = Some(Bytes::from(hls::render_master_playlist(&[self.variant(st, None, "")])));
    }

    fn variant(&self, st: &HubState, query: Option<&str>, base: &str) -> Variant {
        let (mut peak, mut bits, mut ticks) = (0u64, 0u64, 0i64);
        for s in self.listed(st) {
            let b = s.ts.len() as u64 * 8;
            let d = s.segment.duration.max(1);
            peak = peak.max(b * CLOCK_HZ as u64 / d as u64);
            bits += b;
            ticks += d;
        }
        let tracks = st
            .window
            .back()
            .map(|s| s.segment.tracks.clone())
            .unwrap_or_else(|| st.tracks.clone());
        let video = tracks.iter().find(|t| t.kind() == TrackKind::Video);
        let mut uri = format!("{base}mono.m3u8");
        if let Some(q) = query.filter(|q| !q.is_empty()) {
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

    /// Longest time a playlist may go without a new segment before it is stale.
    fn stale_after(&self) -> Duration {
        self.cfg.source_timeout.max(self.cfg.segment_duration * 3) + self.cfg.segment_duration * 2
    }

    fn fresh(&self, st: &HubState) -> bool {
        st.last_segment_at.is_some_and(|t| t.elapsed() <= self.stale_after())
    }

    /// The media playlist; `query` (tokens) is carried onto segment URIs and
    /// `base` (empty, or `http://host/NAME/` after a redirect) prefixes them.
    pub fn media_playlist(&self, query: Option<&str>, base: &str) -> Result<Bytes, Unavailable> {
        let st = self.read();
        if !self.fresh(&st) {
            return Err(Unavailable::NotReady);
        }
        let query = query.filter(|q| !q.is_empty());
        if query.is_none() && base.is_empty() {
            return st.media_playlist.clone().ok_or(Unavailable::NotReady);
        }
        let skip = st.window.len().saturating_sub(self.cfg.segment_count);
        let entries: Vec<PlaylistEntry> = self.listed(&st).map(|s| entry(&s.segment)).collect();
        let disc =
            st.evicted_discontinuities + st.window.iter().take(skip).filter(|s| s.segment.discontinuity).count() as u64;
        Ok(Bytes::from(hls::render_media_playlist(
            &entries,
            st.target_duration,
            disc,
            query,
            base,
        )))
    }

    /// The one-variant master playlist; `base` as for [`Self::media_playlist`].
    pub fn master_playlist(&self, query: Option<&str>, base: &str) -> Result<Bytes, Unavailable> {
        let st = self.read();
        if !self.fresh(&st) {
            return Err(Unavailable::NotReady);
        }
        let query = query.filter(|q| !q.is_empty());
        if query.is_none() && base.is_empty() {
            return st.master_playlist.clone().ok_or(Unavailable::NotReady);
        }
        Ok(Bytes::from(hls::render_master_playlist(&[
            self.variant(&st, query, base)
        ])))
    }

    /// The MPEG-TS bytes of segment `seq`.
    pub fn segment(&self, seq: u64) -> Result<Bytes, Unavailable> {
        let st = self.read();
        let first = st.window.front().map(|s| s.segment.seq).ok_or(Unavailable::NotReady)?;
        let idx = seq.checked_sub(first).ok_or(Unavailable::Gone)?;
        let idx = usize::try_from(idx).map_err(|_| Unavailable::Gone)?;
        st.window.get(idx).map(|s| s.ts.clone()).ok_or(Unavailable::Gone)
    }

    /// Segments with `seq >= from` still in the window, oldest first.
    pub fn segments_from(&self, from: u64) -> Vec<Arc<StoredSegment>> {
        let st = self.read();
        st.window.iter().filter(|s| s.segment.seq >= from).cloned().collect()
    }

    /// Discontinuities before segment `seq` (evicted ones and those in the
    /// window before it): what a restreamer starting at `seq` must count from
    /// so that its playlists carry the same discontinuity sequence.
    pub fn discontinuities_before(&self, seq: u64) -> u64 {
        let st = self.read();
        st.evicted_discontinuities
            + st.window
                .iter()
                .filter(|s| s.segment.seq < seq && s.segment.discontinuity)
                .count() as u64
    }

    /// Restreamer: adopt the source's discontinuity count while the window is empty.
    pub fn adopt_discontinuities(&self, before: u64) {
        let mut st = self.write();
        if st.window.is_empty() {
            st.evicted_discontinuities = before;
        }
    }

    /// Sequence number of the newest segment, if any.
    pub fn newest_seq(&self) -> Option<u64> {
        self.read().window.back().map(|s| s.segment.seq)
    }

    /// Watches the newest segment number; subscribe before reading the window.
    pub fn subscribe_segments(&self) -> watch::Receiver<Option<u64>> {
        self.newest_seq.subscribe()
    }

    /// The source a restreamed stream currently comes from.
    pub fn set_origin(&self, origin: Option<String>) {
        *self.origin.lock().unwrap_or_else(|e| e.into_inner()) = origin;
    }

    /// Healthy for middleware probes: fresh segments from a configured input (not backup).
    pub fn healthy(&self) -> bool {
        let st = self.read();
        st.status == Status::Running && self.fresh(&st)
    }

    /// Current lifecycle state.
    pub fn status(&self) -> Status {
        self.read().status
    }

    /// Waits until the stream has a segment, up to `timeout`. True if it has one.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut rx = self.newest_seq.subscribe();
        let ready = tokio::time::timeout(timeout, async {
            loop {
                if rx.borrow_and_update().is_some() && self.fresh(&self.read()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        });
        ready.await.is_ok()
    }

    /// Publishes one live chunk to HTTP-TS viewers. `start` marks PAT/PMT + keyframe.
    pub fn push_live(&self, start: bool, data: Bytes) {
        let mut st = self.write();
        let chunk = LiveChunk {
            idx: st.next_chunk,
            start,
            data,
        };
        st.next_chunk += 1;
        if start {
            st.gop.clear();
            st.gop_bytes = 0;
        }
        if !st.gop.is_empty() || start {
            st.gop_bytes += chunk.data.len();
            if st.gop_bytes > GOP_CACHE_MAX_BYTES {
                st.gop.clear();
                st.gop_bytes = 0;
            } else {
                st.gop.push(chunk.clone());
            }
        }
        drop(st);
        // No receivers is not an error: nobody watches HTTP-TS right now.
        let _ = self.live.send(chunk);
    }

    /// Subscribes a new HTTP-TS viewer: the receiver (subscribed first, so no
    /// chunk is missed) and the chunks of the current GOP to send before it.
    pub fn subscribe_live(&self) -> (broadcast::Receiver<LiveChunk>, Vec<LiveChunk>) {
        let rx = self.live.subscribe();
        let gop = self.read().gop.clone();
        (rx, gop)
    }

    /// Supervisor: a frame reached the output from `input`.
    pub fn on_frame(&self, now: Instant) {
        let mut st = self.write();
        st.last_frame_at = Some(now);
    }

    /// Supervisor: new state and active input.
    pub fn set_status(&self, status: Status, active_input: Option<usize>) {
        let mut st = self.write();
        if st.status != status {
            st.running_since = matches!(status, Status::Running | Status::Backup).then(Instant::now);
            if st.running_since.is_none() {
                // A stopped or failed stream no longer offers its GOP to new viewers.
                st.gop.clear();
                st.gop_bytes = 0;
            }
        }
        st.status = status;
        st.active_input = active_input;
        drop(st);
        self.metrics
            .alive
            .set(i64::from(matches!(status, Status::Running | Status::Backup)));
        self.metrics.active_input.set(active_input.map_or(-1, |i| i as i64));
    }

    /// Supervisor: tracks now in effect.
    pub fn set_tracks(&self, tracks: Arc<[Track]>) {
        self.write().tracks = tracks;
    }

    /// A viewer asked for the stream: keeps an on-demand stream running.
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_demand_ms.store(ms, Ordering::Relaxed);
        if self.cfg.ondemand {
            self.wake.notify_one();
        }
    }

    /// Time since the last viewer request or open HTTP-TS connection.
    pub fn idle_for(&self) -> Duration {
        if self.mpegts_viewers.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_demand_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// Records an HLS request of session `key` (hash of token, ip, stream).
    pub fn hls_session(&self, key: u64) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() < MAX_SESSIONS || s.contains_key(&key) {
            s.insert(key, Instant::now());
        }
    }

    /// HLS sessions seen recently (pruned once a second).
    pub fn session_count(&self) -> usize {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when this HLS session is already known (a viewer already playing).
    pub fn has_session(&self, key: u64) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&key)
    }

    /// Drops idle HLS sessions and returns the active count.
    pub fn prune_sessions(&self) -> usize {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|_, t| t.elapsed() < HLS_SESSION_IDLE);
        s.len()
    }

    /// A snapshot for the JSON API.
    pub fn snapshot(&self) -> Snapshot {
        let st = self.read();
        let window_secs: f64 = st.window.iter().map(|s| s.segment.duration_secs()).sum();
        let mut track_bytes: HashMap<u16, usize> = HashMap::new();
        for s in &st.window {
            for f in &s.segment.frames {
                *track_bytes.entry(f.track).or_default() += f.data.len();
            }
        }
        let tracks = st
            .tracks
            .iter()
            .map(|t| TrackInfo {
                id: t.id,
                kind: match t.kind() {
                    TrackKind::Video => "video",
                    TrackKind::Audio => "audio",
                },
                codec: t.codec.name(),
                codec_string: t.params.codec_string.clone(),
                width: (t.params.width > 0).then_some(t.params.width),
                height: (t.params.height > 0).then_some(t.params.height),
                frame_rate: t
                    .params
                    .frame_rate
                    .filter(|(_, d)| *d > 0)
                    .map(|(n, d)| n as f64 / d as f64),
                sample_rate: (t.params.sample_rate > 0).then_some(t.params.sample_rate),
                channels: (t.params.channels > 0).then_some(t.params.channels),
                language: t.params.language.clone(),
                bitrate: (window_secs > 0.0)
                    .then(|| (track_bytes.get(&t.id).copied().unwrap_or(0) as f64 * 8.0 / window_secs) as u64),
            })
            .collect();
        Snapshot {
            name: self.name.clone(),
            status: st.status,
            ondemand: self.cfg.ondemand,
            active_input_index: st.active_input,
            active_input: st.active_input.map(|i| {
                self.cfg
                    .inputs
                    .get(i)
                    .map(|u| u.to_string())
                    .or_else(|| self.cfg.backup.as_ref().map(|b| format!("backup:{b}")))
                    .unwrap_or_default()
            }),
            inputs: self.cfg.inputs.iter().map(|i| i.to_string()).collect(),
            source: self.origin.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            tracks,
            clients: StreamClients {
                hls: self.metrics.clients_hls.get(),
                mpegts: self.metrics.clients_mpegts.get(),
            },
            uptime_secs: st.running_since.map(|t| t.elapsed().as_secs_f64()),
            last_frame_age_secs: st.last_frame_at.map(|t| t.elapsed().as_secs_f64()),
            first_seq: st.window.front().map(|s| s.segment.seq),
            last_seq: st.window.back().map(|s| s.segment.seq),
        }
    }
}

fn entry(s: &Segment) -> PlaylistEntry {
    PlaylistEntry {
        seq: s.seq,
        start: s.start,
        duration: s.duration,
        discontinuity: s.discontinuity,
    }
}

/// JSON view of a stream (`/api/v1/streams/NAME`).
#[derive(Debug, serde::Serialize)]
pub struct Snapshot {
    pub name: String,
    pub status: Status,
    pub ondemand: bool,
    pub active_input_index: Option<usize>,
    pub active_input: Option<String>,
    pub inputs: Vec<String>,
    /// The source node a restreamed stream comes from.
    pub source: Option<String>,
    pub tracks: Vec<TrackInfo>,
    pub clients: StreamClients,
    pub uptime_secs: Option<f64>,
    pub last_frame_age_secs: Option<f64>,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

#[derive(Debug, serde::Serialize)]
pub struct StreamClients {
    pub hls: i64,
    pub mpegts: i64,
}

#[derive(Debug, serde::Serialize)]
pub struct TrackInfo {
    pub id: u16,
    pub kind: &'static str,
    pub codec: &'static str,
    pub codec_string: Option<String>,
    pub width: Option<u16>,
    pub height: Option<u16>,
    pub frame_rate: Option<f64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
    pub language: Option<String>,
    /// Bits per second over the segment window.
    pub bitrate: Option<u64>,
}

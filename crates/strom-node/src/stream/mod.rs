//! The protocol-neutral stream: what every input feeds and every output
//! reads, whatever the protocol on either side.
//!
//! A [`Stream`] holds the stream's identity and config, its published state
//! (status, active input, tracks, origin), the segment window, the
//! newest-segment watch, viewer demand, and its outputs. One task per stream
//! ([`task::run`]) owns everything that changes it: the supervisor decisions
//! ([`control`], sans I/O), the input tasks, and the [`pipeline`]
//! (timeline → segmenter → numbering → window and outputs).
//!
//! Data path: input task → tagged event (bounded channel) → [`control`]
//! decides whose units pass → [`pipeline`] → [`window`] + every output.
//!
//! Invariants:
//! - Only the stream task writes the published state and the window; HTTP
//!   handlers and outputs read them. The status is derived by [`control`]
//!   and only mirrored here for readers.
//! - Sequence numbers only move forward, across switches, backups, source
//!   changes and on-demand restarts (the window refuses anything else).
//! - Nothing here waits on a viewer.

pub mod control;
pub mod failover;
pub mod pipeline;
pub mod task;
pub mod window;

use crate::input::{publish::PublishSlot, InputSpec};
use crate::metrics::StreamMetrics;
use crate::output::{Factory, Outputs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};
use strom_api::Status;
use strom_config::{Input, StreamConfig};
use strom_media::Track;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use window::SegmentWindow;

/// Segments kept beyond the playlist window for players that are behind.
const EXTRA_SEGMENTS: usize = 4;

/// What a stream is made of: its settings and where its media comes from.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub cfg: StreamConfig,
    /// Inputs in priority order.
    pub inputs: Vec<InputSpec>,
    /// Played while every input is down.
    pub backup: Option<InputSpec>,
    /// Where the stream records, when it has `dvr`.
    pub archive: Option<Arc<crate::dvr::archive::Archive>>,
}

impl StreamSpec {
    /// A stream from the config file: its `input` and `backup` lines.
    pub fn configured(cfg: StreamConfig) -> Self {
        StreamSpec {
            inputs: cfg.inputs.iter().cloned().map(InputSpec::Config).collect(),
            backup: cfg.backup.clone().map(InputSpec::Config),
            archive: None,
            cfg,
        }
    }

    /// The input (or backup, index `inputs.len()`) at `i`.
    pub fn input(&self, i: usize) -> Option<&InputSpec> {
        self.inputs.get(i).or(if i == self.inputs.len() {
            self.backup.as_ref()
        } else {
            None
        })
    }
}

/// State the stream task publishes for readers.
#[derive(Debug, Clone)]
pub struct Published {
    pub status: Status,
    /// Index of the input feeding the stream; `inputs.len()` is the backup.
    pub active_input: Option<usize>,
    /// When the stream last became alive (running or backup).
    pub alive_since: Option<Instant>,
    pub last_frame_at: Option<Instant>,
    pub tracks: Arc<[Track]>,
    /// For a restreamed stream: the source node feeding it.
    pub origin: Option<Arc<str>>,
    /// Since when (UTC, 90 kHz ticks) the segmenter has had no random access
    /// point to start or close a segment, while it is waiting for one.
    pub no_rap_since: Option<i64>,
    /// The last MPEG-TS error an input of this stream reported.
    pub ts_error: Option<TsErrorSeen>,
}

/// An MPEG-TS error as the API shows it: which input, where in its byte
/// stream, on which PID, of which kind, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsErrorSeen {
    /// Index of the input (in config order) whose demuxer met it.
    pub input: usize,
    pub pid: u16,
    /// Stable short name (`cc`, `sync`, `pes`, `psi`, ...).
    pub kind: &'static str,
    /// Byte offset of the offending packet in that input's byte stream
    /// since its connection (re)started.
    pub offset: u64,
    pub at: Instant,
}

/// Viewer demand: keeps an on-demand stream running and wakes it.
#[derive(Debug)]
pub struct Demand {
    epoch: Instant,
    last_ms: AtomicU64,
    held: AtomicUsize,
    wake: Notify,
}

/// Holds demand while a long-lived viewer (HTTP-TS, cluster feed) is connected.
pub struct DemandGuard(Arc<Stream>);

impl Drop for DemandGuard {
    fn drop(&mut self) {
        self.0.demand.held.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// One stream. See the module docs.
pub struct Stream {
    pub name: Arc<str>,
    pub spec: StreamSpec,
    pub metrics: StreamMetrics,
    pub outputs: Outputs,
    /// Present when an input is `publish://`: where HTTP publishers plug in.
    pub publish: Option<Arc<PublishSlot>>,
    window: RwLock<SegmentWindow>,
    newest_seq: watch::Sender<Option<u64>>,
    published: RwLock<Published>,
    demand: Demand,
    /// Cancelled when the node shuts down or the stream is removed: ends
    /// long-lived responses (HTTP-TS, cluster feeds).
    pub closing: CancellationToken,
}

impl Stream {
    /// Builds a stream with the outputs of `factories` (normally [`crate::output::REGISTRY`]).
    pub fn new(spec: StreamSpec, metrics: StreamMetrics, factories: &[Factory]) -> Arc<Stream> {
        let name: Arc<str> = Arc::from(spec.cfg.name.as_str());
        let outputs = Outputs::build(factories, &name, &spec.cfg, &metrics, spec.archive.as_ref());
        let publish = spec
            .inputs
            .iter()
            .any(|i| matches!(i, InputSpec::Config(Input::Publish { .. })))
            .then(|| Arc::new(PublishSlot::default()));
        let status = if spec.cfg.ondemand {
            Status::Stopped
        } else {
            Status::Waiting
        };
        metrics.active_input.set(-1);
        metrics.alive.set(0);
        let capacity = spec.cfg.segment_count + EXTRA_SEGMENTS;
        Arc::new(Stream {
            name,
            metrics,
            outputs,
            publish,
            window: RwLock::new(SegmentWindow::new(capacity)),
            newest_seq: watch::channel(None).0,
            published: RwLock::new(Published {
                status,
                active_input: None,
                alive_since: None,
                last_frame_at: None,
                tracks: Arc::from(Vec::new()),
                origin: None,
                no_rap_since: None,
                ts_error: None,
            }),
            demand: Demand {
                epoch: Instant::now(),
                last_ms: AtomicU64::new(0),
                held: AtomicUsize::new(0),
                wake: Notify::new(),
            },
            closing: CancellationToken::new(),
            spec,
        })
    }

    pub fn cfg(&self) -> &StreamConfig {
        &self.spec.cfg
    }

    /// The segment window, read-locked. Hold it briefly.
    pub fn window(&self) -> RwLockReadGuard<'_, SegmentWindow> {
        // Writers update the window in one step, so a poisoned lock still
        // holds a consistent window.
        self.window.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn window_mut(&self) -> std::sync::RwLockWriteGuard<'_, SegmentWindow> {
        self.window.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the published state.
    pub fn published(&self) -> Published {
        self.published.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn update_published(&self, f: impl FnOnce(&mut Published)) {
        f(&mut self.published.write().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn status(&self) -> Status {
        self.published.read().unwrap_or_else(|e| e.into_inner()).status
    }

    /// Longest time a playlist may go without a new segment before it is stale.
    pub fn stale_after(&self) -> Duration {
        let c = self.cfg();
        c.source_timeout.max(c.segment_duration * 3) + c.segment_duration * 2
    }

    /// A segment was added recently enough to serve the live window.
    pub fn fresh(&self, now: Instant) -> bool {
        self.window().fresh(now, self.stale_after())
    }

    /// Delivering now: alive (an input or the backup feeds it) with a fresh
    /// window. Only then are playlists and `/mpegts` served; a stopped or
    /// failed stream's last window is not handed to new viewers.
    pub fn live(&self, now: Instant) -> bool {
        self.status().is_alive() && self.fresh(now)
    }

    /// Healthy for middleware probes: fresh segments from an input (not the backup).
    pub fn healthy(&self, now: Instant) -> bool {
        self.status() == Status::Running && self.fresh(now)
    }

    /// Really starting, so a first request may wait for it: an on-demand
    /// stream that is stopped (the request wakes it), any stream in its start
    /// window, or one that came alive so recently that its first segment is
    /// still being cut. A stream that is down is not starting.
    pub fn starting(&self) -> bool {
        let p = self.published.read().unwrap_or_else(|e| e.into_inner());
        match p.status {
            Status::Waiting => true,
            Status::Stopped => self.cfg().ondemand,
            Status::Running | Status::Backup => p.alive_since.is_some_and(|t| t.elapsed() < self.start_wait()),
            Status::Failed | Status::Unknown => false,
        }
    }

    /// How long a first request may wait for a starting stream.
    pub fn start_wait(&self) -> Duration {
        let c = self.cfg();
        (c.source_timeout + c.segment_duration * 3 + Duration::from_secs(2)).min(Duration::from_secs(30))
    }

    /// Waits until the stream is [`Self::live`], up to `timeout`, but gives
    /// up at once when the stream is (or becomes) down rather than starting.
    /// True when it is live.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut rx = self.newest_seq.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let _ = rx.borrow_and_update();
            if self.live(Instant::now()) {
                return true;
            }
            if !self.starting() {
                return false;
            }
            // Status changes are not signalled; look again every 250 ms.
            let step = tokio::time::Instant::now() + Duration::from_millis(250);
            let r = tokio::time::timeout_at(step.min(deadline), rx.changed()).await;
            if matches!(r, Ok(Err(_))) || tokio::time::Instant::now() >= deadline {
                return self.live(Instant::now());
            }
        }
    }

    /// Watches the newest segment number; subscribe before reading the window.
    pub fn subscribe_segments(&self) -> watch::Receiver<Option<u64>> {
        self.newest_seq.subscribe()
    }

    pub(crate) fn announce_segment(&self, seq: u64) {
        self.newest_seq.send_replace(Some(seq));
    }

    /// A viewer asked for the stream: keeps an on-demand stream running and wakes it.
    pub fn touch(&self) {
        let ms = self.demand.epoch.elapsed().as_millis() as u64;
        self.demand.last_ms.store(ms, Ordering::Relaxed);
        if self.cfg().ondemand {
            self.demand.wake.notify_one();
        }
    }

    /// Holds demand until the guard is dropped.
    pub fn hold(self: &Arc<Self>) -> DemandGuard {
        self.demand.held.fetch_add(1, Ordering::Relaxed);
        self.touch();
        DemandGuard(self.clone())
    }

    /// Time since the last viewer request; zero while a guard is held.
    pub fn idle_for(&self) -> Duration {
        if self.demand.held.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.demand.last_ms.load(Ordering::Relaxed));
        self.demand.epoch.elapsed().saturating_sub(last)
    }

    /// Resolves when a viewer wakes the stream.
    pub(crate) async fn woken(&self) {
        self.demand.wake.notified().await
    }

    /// The label of input `i` for the API: its URL, `backup:URL`, or the feed.
    pub fn input_label(&self, i: usize) -> Option<String> {
        let n = self.spec.inputs.len();
        match self.spec.input(i)? {
            spec if i == n => Some(format!("backup:{spec}")),
            spec => Some(spec.to_string()),
        }
    }
}

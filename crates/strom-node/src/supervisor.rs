//! Stream supervisor: the one task per stream that owns its inputs, failover,
//! timeline, segmenter and live muxer, and publishes into the [`StreamHub`].
//!
//! Data path: input tasks → `InputEvent`s (bounded channel) → failover picks
//! whose frames pass → timeline (UTC) → live HTTP-TS mux + segmenter →
//! hub (segments muxed once, playlists rendered once).
//!
//! Invariants:
//! - Only the active input's frames reach the timeline. A switch happens at a
//!   keyframe: on failover the standby input's buffered GOP is replayed so
//!   output resumes at once; on a return to a higher-priority input the switch
//!   waits for its next keyframe so nothing repeats.
//! - Every switch is one timeline run and one HLS discontinuity; the segmenter
//!   (and so the media sequence) lives as long as the stream, across switches
//!   and on-demand restarts.
//! - The supervisor never waits on a viewer: the hub's outputs are bounded.

use crate::failover::{Failover, FailoverConfig, Want};
use crate::hub::{Status, StreamHub};
use crate::input::{self, InputCtx, InputEvent};
use crate::live::LiveOutput;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strom_media::segmenter::{Segmenter, SegmenterConfig};
use strom_media::timeline::{AnchorReason, Mapped, Timeline, TimelineConfig};
use strom_media::ts::demux::DemuxEvent;
use strom_media::{Frame, Track, TrackKind, CLOCK_HZ};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often failover and on-demand idleness are evaluated.
const TICK: Duration = Duration::from_millis(100);
/// Input events queued towards the supervisor before inputs wait.
const EVENT_QUEUE: usize = 256;
/// Bounds on a standby input's buffered GOP.
const STANDBY_MAX_FRAMES: usize = 2_000;
const STANDBY_MAX_BYTES: usize = 32 << 20;

/// Wall-clock UTC in 90 kHz ticks since the Unix epoch.
pub fn now_utc90() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_micros() as i64) * 9 / 100)
}

/// State that lives as long as the stream.
struct Core {
    timeline: Timeline,
    segmenter: Segmenter,
    live: LiveOutput,
    ever_active: bool,
}

struct RunningInput {
    cancel: CancellationToken,
}

/// State of one run of the inputs (a static stream has one; an on-demand
/// stream one per viewing period).
struct Session<'a> {
    hub: &'a Arc<StreamHub>,
    core: &'a mut Core,
    tx: mpsc::Sender<InputEvent>,
    inputs: Vec<Option<RunningInput>>,
    input_tracks: Vec<Option<Arc<[Track]>>>,
    standby: Vec<Vec<Frame>>,
    standby_bytes: Vec<usize>,
    failover: Failover,
    active: Option<usize>,
    pending: Option<usize>,
    status: Status,
}

/// Runs the stream until `shutdown`.
pub async fn run(hub: Arc<StreamHub>, shutdown: CancellationToken) {
    let cfg = &hub.cfg;
    let target = cfg.segment_duration.as_millis() as i64 * CLOCK_HZ / 1000;
    // The first sequence number is the current Unix time in seconds: segments
    // last at least a second on average, so a restarted node always starts
    // above every number it used before.
    let first_seq = (now_utc90() / CLOCK_HZ).max(0) as u64;
    let mut core = Core {
        timeline: Timeline::new(TimelineConfig::default()),
        segmenter: Segmenter::new(SegmenterConfig::with_target(target), first_seq),
        live: LiveOutput::new(),
        ever_active: false,
    };
    let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
    loop {
        if cfg.ondemand {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = hub.wake.notified() => {}
            }
            tracing::info!(stream = %hub.name, "on-demand stream starting");
        }
        // Leftovers of a previous session's inputs are stale.
        while rx.try_recv().is_ok() {}
        let mut session = Session::new(&hub, &mut core, tx.clone());
        session.start_inputs();
        let idle = session.run(&mut rx, &shutdown).await;
        session.stop();
        if !idle {
            return;
        }
        tracing::info!(stream = %hub.name, "on-demand stream stopped: no viewers");
    }
}

impl<'a> Session<'a> {
    fn new(hub: &'a Arc<StreamHub>, core: &'a mut Core, tx: mpsc::Sender<InputEvent>) -> Self {
        let n = hub.cfg.inputs.len();
        Session {
            hub,
            core,
            tx,
            inputs: (0..=n).map(|_| None).collect(),
            input_tracks: vec![None; n + 1],
            standby: vec![Vec::new(); n + 1],
            standby_bytes: vec![0; n + 1],
            failover: Failover::new(n, FailoverConfig::new(hub.cfg.source_timeout), Instant::now()),
            active: None,
            pending: None,
            status: Status::Waiting,
        }
    }

    fn backup_index(&self) -> usize {
        self.hub.cfg.inputs.len()
    }

    fn start_inputs(&mut self) {
        for i in 0..self.hub.cfg.inputs.len() {
            self.start_input(i);
        }
        self.set_status(Status::Waiting);
    }

    fn start_input(&mut self, i: usize) {
        if self.inputs[i].is_some() {
            return;
        }
        let url = if i < self.hub.cfg.inputs.len() {
            self.hub.cfg.inputs[i].clone()
        } else if let Some(b) = &self.hub.cfg.backup {
            b.clone()
        } else {
            return;
        };
        let cancel = CancellationToken::new();
        let ctx = InputCtx {
            index: i,
            tx: self.tx.clone(),
            cancel: cancel.clone(),
            hub: self.hub.clone(),
        };
        input::spawn(&url, ctx);
        self.inputs[i] = Some(RunningInput { cancel });
    }

    fn stop_input(&mut self, i: usize) {
        if let Some(r) = self.inputs[i].take() {
            r.cancel.cancel();
        }
        self.input_tracks[i] = None;
        self.standby[i].clear();
        self.standby_bytes[i] = 0;
    }

    /// Processes events until shutdown (false) or on-demand idleness (true).
    async fn run(&mut self, rx: &mut mpsc::Receiver<InputEvent>, shutdown: &CancellationToken) -> bool {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                ev = rx.recv() => match ev {
                    Some(ev) => self.handle(ev),
                    None => return false,
                },
                _ = tick.tick() => {
                    self.evaluate(Instant::now());
                    let cfg = &self.hub.cfg;
                    if cfg.ondemand && self.hub.idle_for() > cfg.clients_timeout {
                        return true;
                    }
                }
            }
        }
    }

    fn stop(&mut self) {
        for i in 0..self.inputs.len() {
            self.stop_input(i);
        }
        if let Some(seg) = self.core.segmenter.flush() {
            self.hub.push_segment(seg);
        }
        self.core.timeline.new_run();
        self.active = None;
        self.set_status(if self.hub.cfg.ondemand {
            Status::Stopped
        } else {
            Status::Waiting
        });
    }

    fn handle(&mut self, ev: InputEvent) {
        match ev {
            InputEvent::State { input, up, detail } => {
                tracing::debug!(stream = %self.hub.name, input, up, %detail, "input state");
            }
            InputEvent::Media { input, events } => {
                if self.inputs.get(input).is_none_or(|r| r.is_none()) {
                    return; // a stopped input's last words
                }
                let now = Instant::now();
                let mut any = false;
                for ev in events {
                    match ev {
                        DemuxEvent::Tracks(t) => {
                            self.input_tracks[input] = Some(t.clone());
                            if self.active == Some(input) {
                                self.apply_tracks(t);
                            }
                        }
                        DemuxEvent::Frame(f) => {
                            any = true;
                            self.on_frame(input, f, now);
                        }
                    }
                }
                if any && self.active == Some(input) {
                    self.hub.on_frame(now);
                }
            }
        }
    }

    /// True when a viewer could start at `f` on input `i`: a video keyframe,
    /// or any frame of an input without video.
    fn is_start(&self, i: usize, f: &Frame) -> bool {
        let Some(tracks) = &self.input_tracks[i] else {
            return false;
        };
        let has_video = tracks.iter().any(|t| t.kind() == TrackKind::Video);
        if !has_video {
            return true;
        }
        f.keyframe
            && tracks
                .get(usize::from(f.track))
                .is_some_and(|t| t.kind() == TrackKind::Video)
    }

    fn on_frame(&mut self, i: usize, f: Frame, now: Instant) {
        self.failover.frame(i, now);
        if self.active == Some(i) {
            self.accept(f);
            return;
        }
        let start = self.is_start(i, &f);
        if self.pending == Some(i) && start {
            self.switch_to(i, Vec::new());
            self.accept(f);
            return;
        }
        // Standby: keep the input's current GOP so a failover can start at once.
        if start {
            self.standby[i].clear();
            self.standby_bytes[i] = 0;
        }
        if start || !self.standby[i].is_empty() {
            self.standby_bytes[i] += f.data.len();
            self.standby[i].push(f);
            if self.standby[i].len() > STANDBY_MAX_FRAMES || self.standby_bytes[i] > STANDBY_MAX_BYTES {
                self.standby[i].clear();
                self.standby_bytes[i] = 0;
            }
        }
    }

    fn evaluate(&mut self, now: Instant) {
        let backup = self.backup_index();
        let want = self.failover.want(now);
        let target = match want {
            Want::Nothing => return,
            Want::Input(j) => j,
            Want::Backup => {
                if self.hub.cfg.backup.is_none() {
                    self.pending = None;
                    if self.status != Status::Failed {
                        tracing::error!(stream = %self.hub.name, "every input is down and there is no backup");
                        self.set_status(Status::Failed);
                    }
                    return;
                }
                if self.inputs[backup].is_none() {
                    tracing::warn!(stream = %self.hub.name, "every input is down: starting backup");
                    self.start_input(backup);
                }
                backup
            }
        };
        if self.active == Some(target) {
            self.pending = None;
            if target != backup && self.inputs[backup].is_some() {
                self.stop_input(backup);
            }
            return;
        }
        let active_alive = self.active.is_some_and(|a| a < backup && self.failover.alive(a, now));
        let buffered = self.standby[target].first().is_some_and(|f| self.is_start(target, f));
        if !active_alive && buffered {
            let replay = std::mem::take(&mut self.standby[target]);
            self.standby_bytes[target] = 0;
            self.switch_to(target, replay);
        } else {
            self.pending = Some(target);
        }
    }

    fn switch_to(&mut self, j: usize, replay: Vec<Frame>) {
        let backup = self.backup_index();
        let from = self.active;
        if self.core.ever_active {
            self.hub.metrics.switches.inc();
            tracing::warn!(stream = %self.hub.name, from = ?from, to = j, backup = (j == backup), "switching input");
        } else {
            tracing::info!(stream = %self.hub.name, input = j, "stream started");
        }
        self.core.ever_active = true;
        self.core.timeline.new_run();
        if let Some(seg) = self.core.segmenter.discontinuity() {
            self.hub.push_segment(seg);
        }
        if let Some(t) = self.input_tracks[j].clone() {
            self.apply_tracks(t);
        }
        self.active = Some(j);
        self.pending = None;
        self.failover.switched(j);
        self.set_status(if j == backup { Status::Backup } else { Status::Running });
        if j != backup && self.inputs[backup].is_some() {
            self.stop_input(backup);
        }
        for f in replay {
            self.accept(f);
        }
    }

    fn apply_tracks(&mut self, t: Arc<[Track]>) {
        if *t != **self.core.segmenter.tracks() {
            tracing::info!(stream = %self.hub.name, tracks = %describe(&t), "tracks");
        }
        if let Some(seg) = self.core.segmenter.set_tracks(t.clone()) {
            self.hub.push_segment(seg);
        }
        if self.core.live.set_tracks(&t) {
            self.hub.set_tracks(t);
        }
    }

    fn set_status(&mut self, status: Status) {
        if self.status != status {
            tracing::info!(stream = %self.hub.name, from = ?self.status, to = ?status, "stream status");
        }
        self.status = status;
        self.hub.set_status(status, self.active);
    }

    /// A frame of the active input: onto the timeline, the live output and the segmenter.
    fn accept(&mut self, f: Frame) {
        let core = &mut *self.core;
        let (frame, anchor) = match core.timeline.map(f, now_utc90()) {
            Mapped::Dropped => {
                self.hub.metrics.dropped_timestamp.inc();
                return;
            }
            Mapped::Frame { frame, anchor } => (frame, anchor),
        };
        if let Some(reason @ (AnchorReason::JumpBack | AnchorReason::JumpForward | AnchorReason::Drift)) = anchor {
            tracing::warn!(stream = %self.hub.name, ?reason, "timestamp jump: discontinuity");
            if let Some(seg) = core.segmenter.discontinuity() {
                self.hub.push_segment(seg);
            }
        }
        if frame.keyframe {
            tracing::trace!(stream = %self.hub.name, dts = frame.dts, track = frame.track, ?anchor, "keyframe");
        }
        core.live.write(self.hub, &frame);
        self.hub.metrics.frames.inc();
        if let Some(seg) = core.segmenter.push(frame) {
            self.hub.push_segment(seg);
        }
    }
}

/// One-line summary of a track set for logs.
fn describe(tracks: &[Track]) -> String {
    let parts: Vec<String> = tracks
        .iter()
        .map(|t| {
            let p = &t.params;
            match t.kind() {
                TrackKind::Video => format!(
                    "{}:{} {}x{}",
                    t.id,
                    p.codec_string.as_deref().unwrap_or(t.codec.name()),
                    p.width,
                    p.height
                ),
                TrackKind::Audio => format!(
                    "{}:{} {}Hz {}ch",
                    t.id,
                    p.codec_string.as_deref().unwrap_or(t.codec.name()),
                    p.sample_rate,
                    p.channels
                ),
            }
        })
        .collect();
    parts.join(", ")
}

//! The stream supervisor's decisions, sans I/O: which input tasks run, whose
//! media reaches the pipeline, when a switch happens, when an on-demand
//! stream starts and stops, and what the stream's status is.
//!
//! Events and `now` go in ([`Control::handle`]); [`Action`]s come out. The
//! tokio driver in [`super::task`] carries the actions out (spawns and
//! cancels input tasks, feeds the pipeline). Tests drive it on a virtual clock.
//!
//! Inputs are a priority list `0..n`; the backup is index `n`. Rules:
//! - Only the active input's units reach the pipeline. A switch happens at a
//!   start point (a video keyframe, any frame of an input without video, or
//!   a whole segment from a cluster feed). On failover the standby input's
//!   buffered GOP is replayed, so output resumes at once; on a return to a
//!   higher-priority input the switch waits for its next start point, so
//!   nothing repeats. Timing is [`Failover`]'s.
//! - An input task that ends or panics while wanted is restarted after a
//!   capped, doubling delay that resets once the input delivers again.
//! - The status is derived from these facts whenever it is asked for; it is
//!   stored nowhere, so it cannot get stuck: a sole input that returns makes
//!   the stream `Running` again as soon as its frames flow.

use super::failover::{Failover, FailoverConfig, Want};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_api::Status;
use strom_media::{Frame, Segment, Track, TrackKind};

/// Bounds on a standby input's buffered GOP.
const STANDBY_MAX_UNITS: usize = 2_000;
const STANDBY_MAX_BYTES: usize = 32 << 20;
/// A backup that was started is reported as `backup` while it loads, for this long.
const BACKUP_GRACE: Duration = Duration::from_secs(2);
/// Restart delays of an input task that ended: doubling from the first to the last.
const RESTART_MIN: Duration = Duration::from_millis(500);
const RESTART_MAX: Duration = Duration::from_secs(10);

/// A finished segment from a cluster feed, placed into the stream unchanged.
#[derive(Clone, Debug)]
pub struct FeedSegment {
    /// Identifies one connection of the feed: numbering is mapped per connection.
    pub feed: u64,
    /// The source node, for the API and logs.
    pub origin: Arc<str>,
    /// Discontinuities the source counted before this feed's first segment.
    pub discontinuities_before: Option<u64>,
    pub segment: Segment,
}

/// One unit of media from an input: a raw frame (33-bit timestamps, to be
/// put on the timeline and segmented) or a finished segment (UTC timeline,
/// numbered by its source).
#[derive(Clone, Debug)]
pub enum Unit {
    Frame(Frame),
    Segment(FeedSegment),
}

impl Unit {
    fn bytes(&self) -> usize {
        match self {
            Unit::Frame(f) => f.data.len(),
            Unit::Segment(s) => s.segment.payload_bytes(),
        }
    }
}

/// What happened.
#[derive(Debug)]
pub enum Event {
    /// Input `input` announced its tracks (PMT).
    Tracks { input: usize, tracks: Arc<[Track]> },
    /// Input `input` delivered a unit.
    Unit { input: usize, unit: Unit },
    /// The task of input `input` ended (returned or panicked).
    InputExited { input: usize, panicked: bool },
    /// A viewer wants the stream (starts an on-demand stream).
    Wake,
    /// Periodic evaluation; `idle_for` is the time since the last viewer.
    Tick { idle_for: Duration },
}

/// What the driver must do, in order.
#[derive(Debug)]
pub enum Action {
    /// Start the task of input `i` (the backup is `n`).
    Start(usize),
    /// Cancel the task of input `i`.
    Stop(usize),
    /// Input `to` feeds the stream from now on: start a new timeline run and
    /// close the open segment with a discontinuity. `from` is the input that
    /// fed it before in this session (None at a start).
    Switch { from: Option<usize>, to: usize },
    /// The active input's tracks.
    Tracks(Arc<[Track]>),
    /// A unit for the pipeline.
    Deliver(Unit),
    /// The on-demand session ended: every input was stopped; flush and idle.
    Halt,
}

/// Static facts of a stream, from its config.
#[derive(Clone, Copy, Debug)]
pub struct ControlConfig {
    /// Regular inputs (the backup's index).
    pub inputs: usize,
    pub has_backup: bool,
    pub ondemand: bool,
    pub source_timeout: Duration,
    pub clients_timeout: Duration,
}

#[derive(Debug)]
struct Session {
    started: Instant,
    failover: Failover,
    /// Some input fed the stream during this session.
    ever_active: bool,
}

#[derive(Debug, Default)]
struct InputSlot {
    wanted: bool,
    tracks: Option<Arc<[Track]>>,
    standby: Vec<Unit>,
    standby_bytes: usize,
    restart_at: Option<Instant>,
    restart_delay: Option<Duration>,
    started_at: Option<Instant>,
    last_unit: Option<Instant>,
}

impl InputSlot {
    fn clear_standby(&mut self) {
        self.standby.clear();
        self.standby_bytes = 0;
    }
}

/// The supervisor state of one stream.
#[derive(Debug)]
pub struct Control {
    cfg: ControlConfig,
    inputs: Vec<InputSlot>,
    session: Option<Session>,
    active: Option<usize>,
    pending: Option<usize>,
}

impl Control {
    pub fn new(cfg: ControlConfig) -> Self {
        Control {
            cfg,
            inputs: (0..=cfg.inputs).map(|_| InputSlot::default()).collect(),
            session: None,
            active: None,
            pending: None,
        }
    }

    fn backup(&self) -> usize {
        self.cfg.inputs
    }

    /// The input feeding the stream (`n` for the backup).
    pub fn active(&self) -> Option<usize> {
        self.active
    }

    /// Whether input `i`'s task should be running.
    pub fn wanted(&self, i: usize) -> bool {
        self.inputs.get(i).is_some_and(|s| s.wanted)
    }

    /// Whether a session runs (always, for a static stream once started).
    pub fn in_session(&self) -> bool {
        self.session.is_some()
    }

    /// The stream's status at `now`, derived from the facts above.
    pub fn status(&self, now: Instant) -> Status {
        let Some(s) = &self.session else {
            return if self.cfg.ondemand {
                Status::Stopped
            } else {
                Status::Waiting
            };
        };
        let b = self.backup();
        match self.active {
            Some(i) if i < b && s.failover.alive(i, now) => return Status::Running,
            Some(i) if i == b && self.delivered_within(b, now, self.cfg.source_timeout) => return Status::Backup,
            _ => {}
        }
        let backup_loading = self.inputs[b].wanted
            && self.inputs[b]
                .started_at
                .is_some_and(|t| now.saturating_duration_since(t) < BACKUP_GRACE);
        if backup_loading {
            Status::Backup
        } else if !s.ever_active && now.saturating_duration_since(s.started) < self.cfg.source_timeout {
            Status::Waiting
        } else if (0..b).any(|i| self.inputs[i].wanted && self.delivered_within(i, now, self.cfg.source_timeout)) {
            // An input is delivering, but not from a random access point yet
            // (a source that sends none): waiting for media, not down.
            Status::Waiting
        } else {
            Status::Failed
        }
    }

    fn delivered_within(&self, i: usize, now: Instant, d: Duration) -> bool {
        self.inputs[i]
            .last_unit
            .is_some_and(|t| now.saturating_duration_since(t) <= d)
    }

    /// Applies one event; appends the resulting actions to `out`.
    pub fn handle(&mut self, ev: Event, now: Instant, out: &mut Vec<Action>) {
        match ev {
            Event::Wake => self.wake(now, out),
            Event::Tick { idle_for } => self.tick(now, idle_for, out),
            Event::Tracks { input, tracks } => {
                let Some(slot) = self.inputs.get_mut(input).filter(|s| s.wanted) else {
                    return;
                };
                slot.tracks = Some(tracks.clone());
                if self.active == Some(input) {
                    out.push(Action::Tracks(tracks));
                }
            }
            Event::Unit { input, unit } => self.unit(input, unit, now, out),
            Event::InputExited { input, panicked } => {
                let Some(slot) = self.inputs.get_mut(input).filter(|s| s.wanted) else {
                    return;
                };
                let delay = slot.restart_delay.map_or(RESTART_MIN, |d| (d * 2).min(RESTART_MAX));
                slot.restart_delay = Some(delay);
                slot.restart_at = Some(now + delay);
                slot.tracks = None;
                slot.clear_standby();
                tracing::debug!(input, panicked, ?delay, "input task ended: restart scheduled");
            }
        }
    }

    fn wake(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.session.is_some() {
            return;
        }
        let n = self.cfg.inputs;
        self.session = Some(Session {
            started: now,
            failover: Failover::new(n, FailoverConfig::new(self.cfg.source_timeout), now),
            ever_active: false,
        });
        for i in 0..n {
            self.start(i, now, out);
        }
    }

    fn start(&mut self, i: usize, now: Instant, out: &mut Vec<Action>) {
        let slot = &mut self.inputs[i];
        if slot.wanted {
            return;
        }
        slot.wanted = true;
        slot.restart_at = None;
        slot.started_at = Some(now);
        out.push(Action::Start(i));
    }

    fn stop(&mut self, i: usize, out: &mut Vec<Action>) {
        let slot = &mut self.inputs[i];
        if !slot.wanted {
            return;
        }
        *slot = InputSlot::default();
        out.push(Action::Stop(i));
    }

    fn tick(&mut self, now: Instant, idle_for: Duration, out: &mut Vec<Action>) {
        if self.session.is_none() {
            return;
        }
        if self.cfg.ondemand && idle_for > self.cfg.clients_timeout {
            for i in 0..self.inputs.len() {
                self.stop(i, out);
            }
            self.session = None;
            self.active = None;
            self.pending = None;
            out.push(Action::Halt);
            return;
        }
        for (i, slot) in self.inputs.iter_mut().enumerate() {
            if slot.wanted && slot.restart_at.is_some_and(|t| t <= now) {
                slot.restart_at = None;
                slot.started_at = Some(now);
                out.push(Action::Start(i));
            }
        }
        self.evaluate(now, out);
    }

    /// True when the stream could start at `unit` from input `i`.
    fn is_start(&self, i: usize, unit: &Unit) -> bool {
        let f = match unit {
            Unit::Segment(_) => return true,
            Unit::Frame(f) => f,
        };
        let Some(tracks) = &self.inputs[i].tracks else {
            return false;
        };
        if !tracks.iter().any(|t| t.kind() == TrackKind::Video) {
            return true;
        }
        f.keyframe
            && tracks
                .get(usize::from(f.track))
                .is_some_and(|t| t.kind() == TrackKind::Video)
    }

    fn unit(&mut self, i: usize, unit: Unit, now: Instant, out: &mut Vec<Action>) {
        if !self.wanted(i) {
            return; // a stopped input's last words
        }
        let Some(s) = self.session.as_mut() else { return };
        s.failover.frame(i, now);
        let slot = &mut self.inputs[i];
        slot.last_unit = Some(now);
        slot.restart_delay = None;
        if self.active == Some(i) {
            out.push(Action::Deliver(unit));
            return;
        }
        let start = self.is_start(i, &unit);
        if self.pending == Some(i) && start {
            self.switch_to(i, Vec::new(), out);
            out.push(Action::Deliver(unit));
            return;
        }
        // Standby: keep the input's current GOP so a failover starts at once.
        let slot = &mut self.inputs[i];
        if start {
            slot.clear_standby();
        }
        if start || !slot.standby.is_empty() {
            slot.standby_bytes += unit.bytes();
            slot.standby.push(unit);
            if slot.standby.len() > STANDBY_MAX_UNITS || slot.standby_bytes > STANDBY_MAX_BYTES {
                slot.clear_standby();
            }
        }
    }

    fn evaluate(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(s) = &self.session else { return };
        let backup = self.backup();
        let target = match s.failover.want(now) {
            Want::Nothing => return,
            Want::Input(j) => j,
            Want::Backup if !self.cfg.has_backup => {
                self.pending = None;
                return;
            }
            Want::Backup => {
                self.start(backup, now, out);
                backup
            }
        };
        if self.active == Some(target) {
            self.pending = None;
            if target != backup {
                self.stop(backup, out);
            }
            return;
        }
        let active_alive = self
            .active
            .is_some_and(|a| a < backup && self.session.as_ref().is_some_and(|s| s.failover.alive(a, now)));
        let buffered = self.inputs[target]
            .standby
            .first()
            .is_some_and(|u| self.is_start(target, u));
        if !active_alive && buffered {
            let replay = std::mem::take(&mut self.inputs[target].standby);
            self.inputs[target].standby_bytes = 0;
            self.switch_to(target, replay, out);
        } else {
            self.pending = Some(target);
        }
    }

    fn switch_to(&mut self, j: usize, replay: Vec<Unit>, out: &mut Vec<Action>) {
        let backup = self.backup();
        let Some(s) = self.session.as_mut() else { return };
        let from = if s.ever_active { self.active } else { None };
        s.ever_active = true;
        s.failover.switched(j);
        self.active = Some(j);
        self.pending = None;
        out.push(Action::Switch { from, to: j });
        if let Some(t) = self.inputs[j].tracks.clone() {
            out.push(Action::Tracks(t));
        }
        if j != backup {
            self.stop(backup, out);
        }
        out.extend(replay.into_iter().map(Action::Deliver));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use strom_media::{Codec, TrackParams};

    const MS: Duration = Duration::from_millis(1);
    const SECOND: Duration = Duration::from_secs(1);

    fn tracks() -> Arc<[Track]> {
        Arc::from(vec![
            Track {
                id: 0,
                codec: Codec::H264,
                params: TrackParams::default(),
            },
            Track {
                id: 1,
                codec: Codec::Aac,
                params: TrackParams::default(),
            },
        ])
    }

    fn cfg(inputs: usize, has_backup: bool, ondemand: bool) -> ControlConfig {
        ControlConfig {
            inputs,
            has_backup,
            ondemand,
            source_timeout: Duration::from_secs(5),
            clients_timeout: Duration::from_secs(30),
        }
    }

    /// A control on a virtual clock, with a record of what it asked for.
    struct Harness {
        c: Control,
        now: Instant,
        actions: Vec<Action>,
        /// Per input: its next frame number (every 25th is a keyframe).
        frame_no: Vec<u64>,
        idle: Duration,
    }

    impl Harness {
        fn new(cfg: ControlConfig) -> Self {
            let n = cfg.inputs + 1;
            Harness {
                c: Control::new(cfg),
                now: Instant::now(),
                actions: Vec::new(),
                frame_no: vec![0; n],
                idle: Duration::ZERO,
            }
        }

        fn ev(&mut self, e: Event) {
            self.c.handle(e, self.now, &mut self.actions);
        }

        fn take(&mut self) -> Vec<Action> {
            std::mem::take(&mut self.actions)
        }

        fn tracks(&mut self, input: usize) {
            self.ev(Event::Tracks {
                input,
                tracks: tracks(),
            });
        }

        fn frame(&mut self, input: usize) {
            let no = self.frame_no[input];
            self.frame_no[input] += 1;
            let f = Frame {
                track: 0,
                dts: no as i64 * 3600,
                pts: no as i64 * 3600,
                keyframe: no.is_multiple_of(25),
                data: Bytes::from(vec![input as u8; 10]),
            };
            self.ev(Event::Unit {
                input,
                unit: Unit::Frame(f),
            });
        }

        /// Advances the clock by `d` in 40 ms steps; `feeding` inputs deliver a
        /// frame each step, and the control ticks every 100 ms.
        fn run(&mut self, feeding: &[usize], d: Duration) {
            let end = self.now + d;
            let mut next_tick = self.now;
            while self.now < end {
                for &i in feeding {
                    self.frame(i);
                }
                while next_tick <= self.now {
                    let idle = self.idle;
                    self.ev(Event::Tick { idle_for: idle });
                    next_tick += 100 * MS;
                }
                self.now += 40 * MS;
                self.idle += 40 * MS;
            }
        }

        fn status(&self) -> Status {
            self.c.status(self.now)
        }

        fn delivered_from(actions: &[Action]) -> Vec<u8> {
            actions
                .iter()
                .filter_map(|a| match a {
                    Action::Deliver(Unit::Frame(f)) => f.data.first().copied(),
                    _ => None,
                })
                .collect()
        }
    }

    fn switches(actions: &[Action]) -> Vec<(Option<usize>, usize)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Switch { from, to } => Some((*from, *to)),
                _ => None,
            })
            .collect()
    }

    fn started(actions: &[Action]) -> Vec<usize> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Start(i) => Some(*i),
                _ => None,
            })
            .collect()
    }

    fn stopped(actions: &[Action]) -> Vec<usize> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Stop(i) => Some(*i),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn start_runs_every_input_and_waits_then_runs() {
        let mut h = Harness::new(cfg(2, false, false));
        assert_eq!(h.status(), Status::Waiting, "before the start");
        h.ev(Event::Wake);
        assert_eq!(started(&h.take()), vec![0, 1]);
        assert_eq!(h.status(), Status::Waiting);
        h.tracks(0);
        h.tracks(1);
        h.run(&[0, 1], 2 * SECOND);
        let a = h.take();
        assert_eq!(switches(&a), vec![(None, 0)], "starts on the primary");
        assert_eq!(h.status(), Status::Running);
        let got = Harness::delivered_from(&a);
        assert!(
            !got.is_empty() && got.iter().all(|&i| i == 0),
            "only input 0's frames pass"
        );
    }

    #[test]
    fn loss_of_active_input_fails_over_after_source_timeout() {
        let mut h = Harness::new(cfg(2, false, false));
        h.ev(Event::Wake);
        h.tracks(0);
        h.tracks(1);
        h.run(&[0, 1], 2 * SECOND);
        h.take();
        h.run(&[1], 4900 * MS);
        assert!(switches(&h.take()).is_empty(), "within source_timeout");
        assert_eq!(h.status(), Status::Running);
        h.run(&[1], 300 * MS);
        let a = h.take();
        assert_eq!(switches(&a), vec![(Some(0), 1)]);
        // The standby GOP is replayed: the switch starts at a keyframe at once.
        let first = a.iter().find_map(|x| match x {
            Action::Deliver(Unit::Frame(f)) => Some(f.keyframe),
            _ => None,
        });
        assert_eq!(first, Some(true), "replay starts at the buffered keyframe");
        assert_eq!(h.status(), Status::Running);
    }

    #[test]
    fn return_to_higher_priority_input_waits_until_healthy_then_a_keyframe() {
        let mut h = Harness::new(cfg(2, false, false));
        h.ev(Event::Wake);
        h.tracks(1);
        h.run(&[1], 2 * SECOND);
        assert_eq!(switches(&h.take()), vec![(None, 1)], "secondary after the grace");
        h.tracks(0);
        h.run(&[0, 1], 2 * SECOND);
        assert!(switches(&h.take()).is_empty(), "primary healthy only 2 s");
        // Healthy for 3 s at t = 3 s; its next keyframe comes at t = 4 s.
        h.run(&[0, 1], 2500 * MS);
        let a = h.take();
        assert_eq!(switches(&a), vec![(Some(1), 0)]);
        // After the switch only input 0's frames pass, starting with a keyframe.
        let pos = a
            .iter()
            .position(|x| matches!(x, Action::Switch { .. }))
            .expect("switch");
        let after: Vec<&Frame> = a[pos..]
            .iter()
            .filter_map(|x| match x {
                Action::Deliver(Unit::Frame(f)) => Some(f),
                _ => None,
            })
            .collect();
        assert!(after.first().is_some_and(|f| f.keyframe));
        assert!(after.iter().all(|f| f.data[0] == 0));
    }

    #[test]
    fn an_input_without_random_access_points_is_waiting_not_failed() {
        let mut h = Harness::new(cfg(1, false, false));
        h.ev(Event::Wake);
        h.tracks(0);
        // Frames flow, but never a keyframe.
        let end = h.now + 8 * SECOND;
        while h.now < end {
            h.frame_no[0] = 1;
            h.run(&[0], 40 * MS);
        }
        assert_eq!(h.status(), Status::Waiting, "delivering, waiting for a RAP");
        assert!(
            Harness::delivered_from(&h.take()).is_empty(),
            "nothing passes before a RAP"
        );
        h.run(&[], 5100 * MS);
        assert_eq!(h.status(), Status::Failed, "silent past source_timeout");
    }

    #[test]
    fn sole_input_returns_failed_to_running() {
        let mut h = Harness::new(cfg(1, false, false));
        h.ev(Event::Wake);
        h.tracks(0);
        h.run(&[0], 2 * SECOND);
        assert_eq!(h.status(), Status::Running);
        h.run(&[], 5100 * MS);
        assert_eq!(h.status(), Status::Failed, "silent past source_timeout, no backup");
        h.take();
        // The input comes back (its task reconnected).
        h.run(&[0], 200 * MS);
        assert_eq!(h.status(), Status::Running, "Failed → Running as soon as frames flow");
        let a = h.take();
        assert!(switches(&a).is_empty(), "the same input: no switch");
        assert!(!Harness::delivered_from(&a).is_empty(), "its frames pass");
        h.run(&[0], 10 * SECOND);
        assert_eq!(h.status(), Status::Running, "and stays running");
    }

    #[test]
    fn backup_on_and_off() {
        let mut h = Harness::new(cfg(1, true, false));
        h.ev(Event::Wake);
        h.tracks(0);
        h.run(&[0], 2 * SECOND);
        h.take();
        h.run(&[], 5100 * MS);
        let a = h.take();
        assert_eq!(started(&a), vec![1], "backup started when every input is down");
        assert_eq!(h.status(), Status::Backup, "reported while it loads");
        h.tracks(1);
        h.run(&[1], SECOND);
        assert_eq!(switches(&h.take()), vec![(Some(0), 1)]);
        assert_eq!(h.status(), Status::Backup);
        // The input returns: it beats the backup at once and the backup stops.
        h.run(&[0, 1], 500 * MS);
        let a = h.take();
        assert_eq!(switches(&a), vec![(Some(1), 0)]);
        assert_eq!(stopped(&a), vec![1]);
        assert_eq!(h.status(), Status::Running);
        assert!(!h.c.wanted(1));
    }

    #[test]
    fn broken_backup_is_failed_after_its_grace() {
        let mut h = Harness::new(cfg(1, true, false));
        h.ev(Event::Wake);
        h.run(&[], 5200 * MS);
        assert_eq!(started(&h.take()), vec![0, 1]);
        assert_eq!(h.status(), Status::Backup);
        h.run(&[], 2100 * MS);
        assert_eq!(h.status(), Status::Failed, "the backup never delivered");
    }

    #[test]
    fn nothing_ever_delivers_waiting_then_failed() {
        let mut h = Harness::new(cfg(1, false, false));
        h.ev(Event::Wake);
        h.run(&[], 4900 * MS);
        assert_eq!(h.status(), Status::Waiting, "start window");
        h.run(&[], 200 * MS);
        assert_eq!(h.status(), Status::Failed);
    }

    #[test]
    fn ondemand_start_and_stop() {
        let mut h = Harness::new(cfg(1, false, true));
        assert_eq!(h.status(), Status::Stopped);
        h.run(&[], SECOND);
        assert!(h.take().is_empty(), "nothing runs before a viewer");
        h.idle = Duration::ZERO;
        h.ev(Event::Wake);
        assert_eq!(started(&h.take()), vec![0]);
        assert_eq!(h.status(), Status::Waiting);
        h.tracks(0);
        h.run(&[0], 2 * SECOND);
        assert_eq!(h.status(), Status::Running);
        h.idle = Duration::ZERO;
        h.run(&[0], 29 * SECOND);
        assert!(h.c.in_session(), "viewer left 29 s ago: still running");
        h.run(&[0], 2 * SECOND);
        let a = h.take();
        assert_eq!(stopped(&a), vec![0]);
        assert!(matches!(a.last(), Some(Action::Halt)));
        assert_eq!(h.status(), Status::Stopped);
        // Units still queued from the stopped input are ignored.
        h.frame(0);
        assert!(h.take().is_empty());
        // The next viewer starts a fresh session; its first switch is a start.
        h.idle = Duration::ZERO;
        h.ev(Event::Wake);
        h.tracks(0);
        h.run(&[0], 2 * SECOND);
        assert_eq!(switches(&h.take()), vec![(None, 0)]);
    }

    #[test]
    fn exited_input_is_restarted_with_backoff() {
        let mut h = Harness::new(cfg(1, false, false));
        h.ev(Event::Wake);
        h.take();
        h.ev(Event::InputExited {
            input: 0,
            panicked: true,
        });
        h.run(&[], 400 * MS);
        assert!(started(&h.take()).is_empty(), "not before the delay");
        h.run(&[], 200 * MS);
        assert_eq!(started(&h.take()), vec![0]);
        h.ev(Event::InputExited {
            input: 0,
            panicked: false,
        });
        h.run(&[], 900 * MS);
        assert!(started(&h.take()).is_empty(), "the delay doubled");
        h.run(&[], 200 * MS);
        assert_eq!(started(&h.take()), vec![0]);
        // Delivering resets the delay.
        h.tracks(0);
        h.run(&[0], SECOND);
        h.ev(Event::InputExited {
            input: 0,
            panicked: true,
        });
        h.take();
        h.run(&[], 600 * MS);
        assert_eq!(started(&h.take()), vec![0]);
        // An input that is not wanted is not restarted.
        let mut h = Harness::new(cfg(1, false, true));
        h.ev(Event::InputExited {
            input: 0,
            panicked: true,
        });
        h.run(&[], 2 * SECOND);
        assert!(started(&h.take()).is_empty());
    }

    fn feed_segment(feed: u64, seq: u64) -> Unit {
        Unit::Segment(FeedSegment {
            feed,
            origin: Arc::from("origin:8080"),
            discontinuities_before: None,
            segment: Segment {
                seq,
                start: seq as i64 * 180_000,
                duration: 180_000,
                discontinuity: false,
                target_duration: 2,
                tracks: tracks(),
                frames: Vec::new(),
            },
        })
    }

    #[test]
    fn restreamed_stream_source_switch_and_backup() {
        // A restreamed stream: one cluster-feed input and a backup file.
        let mut h = Harness::new(cfg(1, true, false));
        h.ev(Event::Wake);
        h.take();
        let mut seq = 100;
        let mut feed = |h: &mut Harness, feed_id: u64, secs: u64| {
            for _ in 0..secs / 2 {
                h.ev(Event::Unit {
                    input: 0,
                    unit: feed_segment(feed_id, seq),
                });
                seq += 1;
                h.run(&[], 2 * SECOND);
            }
        };
        feed(&mut h, 1, 4);
        let a = h.take();
        assert_eq!(switches(&a), vec![(None, 0)]);
        assert!(a
            .iter()
            .any(|x| matches!(x, Action::Deliver(Unit::Segment(s)) if s.segment.seq == 100)));
        assert_eq!(h.status(), Status::Running);
        // The feed moves to another source (a new connection): same input, no switch.
        feed(&mut h, 2, 4);
        let a = h.take();
        assert!(switches(&a).is_empty());
        let feeds: Vec<u64> = a
            .iter()
            .filter_map(|x| match x {
                Action::Deliver(Unit::Segment(s)) => Some(s.feed),
                _ => None,
            })
            .collect();
        assert_eq!(feeds, vec![2, 2]);
        assert_eq!(h.status(), Status::Running);
        // Every source is down: backup after source_timeout, then back.
        h.run(&[], 4 * SECOND);
        assert_eq!(started(&h.take()), vec![1]);
        h.tracks(1);
        h.run(&[1], SECOND);
        assert_eq!(switches(&h.take()), vec![(Some(0), 1)]);
        feed(&mut h, 3, 2);
        let a = h.take();
        assert_eq!(switches(&a), vec![(Some(1), 0)], "a segment is a start point");
        assert_eq!(stopped(&a), vec![1]);
        assert_eq!(h.status(), Status::Running);
    }
}

//! The stream task: the thin tokio driver around [`Control`] and [`Pipeline`].
//!
//! It turns input messages, viewer wake-ups, task exits and a 100 ms tick
//! into control events, carries out the actions (spawning and cancelling
//! input tasks in a `JoinSet`, feeding the pipeline) and publishes the
//! derived status. Input tasks that panic or end while wanted are logged,
//! counted and restarted by the control's backoff; at shutdown every input
//! task is cancelled and joined.

use super::control::{Action, Control, ControlConfig, Event, Unit};
use super::pipeline::Pipeline;
use super::Stream;
use crate::input::{InputCtx, InputMsg, Launcher, Tag};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_api::Status;
use strom_media::ts::demux::DemuxEvent;
use tokio::sync::mpsc;
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

/// How often failover, restarts and on-demand idleness are evaluated.
const TICK: Duration = Duration::from_millis(100);
/// Input messages queued towards the stream task before inputs wait.
const EVENT_QUEUE: usize = 256;
/// How long shutdown waits for input tasks to end before aborting them.
const JOIN_TIMEOUT: Duration = Duration::from_secs(3);

struct Running {
    generation: u64,
    cancel: CancellationToken,
}

struct Driver {
    stream: Arc<Stream>,
    launcher: Arc<dyn Launcher>,
    control: Control,
    pipeline: Pipeline,
    tasks: JoinSet<()>,
    ids: HashMap<Id, Tag>,
    running: Vec<Option<Running>>,
    generation: u64,
    tx: mpsc::Sender<(Tag, InputMsg)>,
    actions: Vec<Action>,
    status: Status,
}

/// Runs the stream task until `shutdown`; if it panics, logs, counts and
/// runs it again after a second. The stream's window, outputs and published
/// state survive, and numbering continues after the window's newest segment.
pub async fn supervise(stream: Arc<Stream>, launcher: Arc<dyn Launcher>, shutdown: CancellationToken) {
    loop {
        let task = tokio::spawn(run(stream.clone(), launcher.clone(), shutdown.clone()));
        match task.await {
            Ok(()) => return,
            Err(e) if e.is_panic() => {
                stream.metrics.task_panics.inc();
                tracing::error!(stream = %stream.name, "stream task panicked: restarting it");
            }
            Err(_) => return, // cancelled: the runtime is going down
        }
        if !crate::util::sleep_or_cancel(&shutdown, Duration::from_secs(1)).await {
            return;
        }
    }
}

/// Runs the stream until `shutdown`, then stops and joins its inputs.
pub async fn run(stream: Arc<Stream>, launcher: Arc<dyn Launcher>, shutdown: CancellationToken) {
    let cfg = stream.cfg();
    let control = Control::new(ControlConfig {
        inputs: stream.spec.inputs.len(),
        has_backup: stream.spec.backup.is_some(),
        ondemand: cfg.ondemand,
        source_timeout: cfg.source_timeout,
        clients_timeout: cfg.clients_timeout,
    });
    let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
    let mut d = Driver {
        pipeline: Pipeline::new(stream.clone()),
        running: (0..=stream.spec.inputs.len()).map(|_| None).collect(),
        status: stream.status(),
        stream,
        launcher,
        control,
        tasks: JoinSet::new(),
        ids: HashMap::new(),
        generation: 0,
        tx,
        actions: Vec::new(),
    };
    if !d.stream.cfg().ondemand {
        d.event(Event::Wake);
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some((tag, msg)) = rx.recv() => d.message(tag, msg),
            _ = d.stream.woken() => d.event(Event::Wake),
            Some(done) = d.tasks.join_next_with_id(), if !d.tasks.is_empty() => d.exited(done),
            _ = tick.tick() => {
                let idle_for = d.stream.idle_for();
                d.event(Event::Tick { idle_for });
            }
        }
    }
    d.shutdown().await;
}

impl Driver {
    fn event(&mut self, ev: Event) {
        let now = Instant::now();
        self.control.handle(ev, now, &mut self.actions);
        self.apply(now);
    }

    fn message(&mut self, tag: Tag, msg: InputMsg) {
        let current = self.running.get(tag.index).and_then(|r| r.as_ref());
        if current.is_none_or(|r| r.generation != tag.generation) {
            return; // a stopped task's last words
        }
        let input = tag.index;
        let now = Instant::now();
        match msg {
            InputMsg::State { up, detail } => {
                tracing::debug!(stream = %self.stream.name, input, up, %detail, "input state");
            }
            InputMsg::TsError(e) => {
                let seen = super::TsErrorSeen {
                    input,
                    pid: e.pid,
                    kind: e.kind.name(),
                    offset: e.offset,
                    at: now,
                };
                self.stream.update_published(|p| p.ts_error = Some(seen));
            }
            InputMsg::Segment(seg) => {
                let unit = Unit::Segment(*seg);
                self.control.handle(Event::Unit { input, unit }, now, &mut self.actions);
            }
            InputMsg::Demuxed(events) => {
                for ev in events {
                    let ev = match ev {
                        DemuxEvent::Tracks(tracks) => Event::Tracks { input, tracks },
                        DemuxEvent::Frame(f) => Event::Unit {
                            input,
                            unit: Unit::Frame(f),
                        },
                    };
                    self.control.handle(ev, now, &mut self.actions);
                }
            }
        }
        self.apply(now);
    }

    fn exited(&mut self, done: Result<(Id, ()), tokio::task::JoinError>) {
        let (id, panicked) = match &done {
            Ok((id, ())) => (*id, false),
            Err(e) => (e.id(), e.is_panic()),
        };
        let Some(tag) = self.ids.remove(&id) else { return };
        let current = self.running.get(tag.index).and_then(|r| r.as_ref());
        if current.is_none_or(|r| r.generation != tag.generation) {
            return; // cancelled on purpose
        }
        self.running[tag.index] = None;
        let input = tag.index;
        if panicked {
            self.stream.metrics.input_panics.inc();
            tracing::error!(stream = %self.stream.name, input, "input task panicked: restarting");
        } else {
            tracing::warn!(stream = %self.stream.name, input, "input task ended: restarting");
        }
        self.stream.metrics.input_restarts.inc();
        self.event(Event::InputExited { input, panicked });
    }

    fn apply(&mut self, now: Instant) {
        let utc_now = crate::util::utc90_now();
        for action in std::mem::take(&mut self.actions) {
            match action {
                Action::Start(i) => self.start(i),
                Action::Stop(i) => {
                    if let Some(r) = self.running.get_mut(i).and_then(Option::take) {
                        r.cancel.cancel();
                    }
                }
                Action::Switch { from, to } => {
                    let backup = to == self.stream.spec.inputs.len();
                    match from {
                        Some(from) => {
                            self.stream.metrics.switches.inc();
                            tracing::warn!(stream = %self.stream.name, from, to, backup, "switching input");
                        }
                        None => tracing::info!(stream = %self.stream.name, input = to, backup, "stream started"),
                    }
                    self.pipeline.switch(now);
                }
                Action::Tracks(t) => self.pipeline.tracks(t, now),
                Action::Deliver(unit) => self.pipeline.deliver(unit, now, utc_now),
                Action::Halt => {
                    tracing::info!(stream = %self.stream.name, "on-demand stream stopped: no viewers");
                    self.pipeline.halt(now);
                }
            }
        }
        self.publish(now);
    }

    fn start(&mut self, i: usize) {
        let Some(spec) = self.stream.spec.input(i) else { return };
        if let Some(old) = self.running.get_mut(i).and_then(Option::take) {
            old.cancel.cancel();
        }
        self.generation += 1;
        let tag = Tag {
            index: i,
            generation: self.generation,
        };
        let cancel = CancellationToken::new();
        let ctx = InputCtx {
            stream: self.stream.name.clone(),
            tag,
            metrics: self.stream.metrics.clone(),
            tx: self.tx.clone(),
            cancel: cancel.clone(),
            source_timeout: self.stream.cfg().source_timeout,
            publish: self.stream.publish.clone(),
            newest_seq: self.stream.subscribe_segments(),
        };
        let fut = self.launcher.launch(spec, ctx);
        let handle = self.tasks.spawn(fut);
        self.ids.insert(handle.id(), tag);
        self.running[i] = Some(Running {
            generation: self.generation,
            cancel,
        });
    }

    /// Mirrors the derived status into the stream for readers.
    fn publish(&mut self, now: Instant) {
        let status = self.control.status(now);
        // While down, no input feeds the stream (the control still remembers
        // the last one, to know a return is no switch).
        let active = self.control.active().filter(|_| status.is_alive());
        let changed = status != self.status;
        if changed {
            let level_error = status == Status::Failed;
            if level_error {
                tracing::error!(stream = %self.stream.name, from = self.status.as_str(), to = status.as_str(), "stream status: every input is down");
            } else {
                tracing::info!(stream = %self.stream.name, from = self.status.as_str(), to = status.as_str(), "stream status");
            }
            if !status.is_alive() {
                // A stopped or failed stream offers no stale GOP to new viewers.
                for o in self.stream.outputs.iter() {
                    o.on_interrupt();
                }
            }
        }
        let was_alive = self.status.is_alive();
        self.status = status;
        self.stream.update_published(|p| {
            if changed && status.is_alive() && !was_alive {
                p.alive_since = Some(now);
            }
            if !status.is_alive() {
                p.alive_since = None;
            }
            p.status = status;
            p.active_input = active;
        });
        let m = &self.stream.metrics;
        m.alive.set(i64::from(status.is_alive()));
        m.active_input.set(active.map_or(-1, |i| i as i64));
    }

    async fn shutdown(mut self) {
        for r in self.running.iter_mut().filter_map(Option::take) {
            r.cancel.cancel();
        }
        let joined =
            tokio::time::timeout(JOIN_TIMEOUT, async { while self.tasks.join_next().await.is_some() {} }).await;
        if joined.is_err() {
            tracing::warn!(stream = %self.stream.name, "input tasks did not stop in time: aborting them");
            self.tasks.shutdown().await;
        }
        self.pipeline.halt(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{InputSpec, Inputs};
    use crate::output::REGISTRY;
    use crate::stream::StreamSpec;
    use futures_util::future::BoxFuture;
    use futures_util::FutureExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use strom_config::{Input, StreamConfig};

    /// Panics the first time it is asked for an input, then plays the demo.
    struct PanicsOnce(AtomicUsize);

    impl Launcher for PanicsOnce {
        fn launch(&self, spec: &InputSpec, ctx: InputCtx) -> BoxFuture<'static, ()> {
            if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                return async { panic!("input fails on its first run") }.boxed();
            }
            Inputs.launch(spec, ctx)
        }
    }

    #[tokio::test]
    async fn a_panicking_input_task_is_restarted() {
        let mut cfg = StreamConfig::new(
            "p",
            vec![Input::Builtin {
                name: "demo".to_string(),
            }],
        );
        cfg.source_timeout = Duration::from_secs(5);
        let metrics = crate::metrics::Metrics::new();
        let stream = Stream::new(StreamSpec::configured(cfg), metrics.stream("p"), REGISTRY);
        let launcher = Arc::new(PanicsOnce(AtomicUsize::new(0)));
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(stream.clone(), launcher.clone(), stop.clone()));
        let started = tokio::time::timeout(Duration::from_secs(20), async {
            while stream.window().is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(started.is_ok(), "the restarted input never delivered a segment");
        assert_eq!(launcher.0.load(Ordering::SeqCst), 2, "launched twice");
        assert_eq!(stream.metrics.input_panics.get(), 1);
        assert_eq!(stream.metrics.input_restarts.get(), 1);
        assert_eq!(stream.status(), Status::Running);
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the stream task joins its inputs and ends")
            .expect("no panic");
    }
}

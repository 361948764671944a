//! Inputs: tasks that read media from somewhere and hand it to their stream.
//!
//! An input knows nothing of the stream it feeds: it gets an [`InputCtx`]
//! (the stream's name for logs, its metrics handles, a sender, a cancel
//! token and the few ports some inputs need) and sends [`InputMsg`]s. Every
//! input runs as its own task with its own demuxer, so a broken input never
//! corrupts another's state. Inputs retry on their own (capped exponential
//! backoff) until cancelled; the stream task restarts one that ends or
//! panics, and decides whose media reaches the pipeline.
//!
//! Adding an input kind is a module here plus an arm in [`run`].

pub mod cluster;
pub mod file;
pub mod http;
pub mod publish;
pub mod rtmp;
pub mod srt;
pub mod udp;

use crate::metrics::StreamMetrics;
use crate::stream::control::FeedSegment;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use strom_config::Input;
use strom_media::ts::demux::{DemuxEvent, DemuxStats, Demuxer, TsErrorContext};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Where one input of a stream gets its media.
#[derive(Clone, Debug)]
pub enum InputSpec {
    /// An `input`/`backup` line of the config.
    Config(Input),
    /// Segments pulled from `source` nodes over the cluster protocol.
    Cluster(Arc<cluster::ClusterSpec>),
}

/// Shown with passwords and secret query values masked (logs and the API).
impl std::fmt::Display for InputSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputSpec::Config(i) => write!(f, "{}", crate::util::redact_url(&i.to_string())),
            InputSpec::Cluster(c) => write!(f, "{c}"),
        }
    }
}

/// What an input sends its stream.
#[derive(Debug)]
pub enum InputMsg {
    /// Demuxed events (tracks and raw frames), in order.
    Demuxed(Vec<DemuxEvent>),
    /// A finished segment from a cluster feed.
    Segment(Box<FeedSegment>),
    /// A connection-level change, for logs.
    State { up: bool, detail: String },
    /// The demuxer met an MPEG-TS error (for the API).
    TsError(TsErrorContext),
}

/// The stream-side identity of one running input task: the input's index
/// and the generation of its task, so the stream can ignore what a stopped
/// task still had in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    pub index: usize,
    pub generation: u64,
}

/// Everything an input task gets.
#[derive(Clone)]
pub struct InputCtx {
    /// The stream's name, for logs.
    pub stream: Arc<str>,
    pub tag: Tag,
    pub metrics: StreamMetrics,
    pub tx: mpsc::Sender<(Tag, InputMsg)>,
    pub cancel: CancellationToken,
    /// Silence after which a connection is abandoned and retried.
    pub source_timeout: Duration,
    /// For `publish://`: where the HTTP handler hands over publishers.
    pub publish: Option<Arc<publish::PublishSlot>>,
    /// The stream's newest segment number (a cluster feed resumes after it).
    pub newest_seq: watch::Receiver<Option<u64>>,
}

impl InputCtx {
    pub fn index(&self) -> usize {
        self.tag.index
    }

    /// Sends a message; false when the stream is gone.
    pub async fn send(&self, msg: InputMsg) -> bool {
        self.tx.send((self.tag, msg)).await.is_ok()
    }

    /// Sends demuxed events (nothing when empty); false when the stream is gone.
    pub async fn send_events(&self, events: Vec<DemuxEvent>) -> bool {
        events.is_empty() || self.send(InputMsg::Demuxed(events)).await
    }

    /// Sends what a [`Feeder`] gave: its TS error, then its events; false
    /// when the stream is gone.
    pub async fn send_fed(&self, fed: Fed) -> bool {
        if let Some(e) = fed.error {
            if !self.send(InputMsg::TsError(e)).await {
                return false;
            }
        }
        self.send_events(fed.events).await
    }

    /// Reports a connection change.
    pub async fn state(&self, up: bool, detail: impl Into<String>) {
        let _ = self
            .send(InputMsg::State {
                up,
                detail: detail.into(),
            })
            .await;
    }

    /// Sleeps for `d` unless cancelled first; false when cancelled.
    pub async fn sleep(&self, d: Duration) -> bool {
        crate::util::sleep_or_cancel(&self.cancel, d).await
    }
}

/// A demuxer that reports its byte and error counters into the stream's
/// metrics, logs unknown stream types once, and hands the stream the last
/// TS error (at most once a second).
pub struct Feeder {
    demux: Demuxer,
    seen: DemuxStats,
    /// When an error was last handed on, and which.
    reported: Option<(Instant, TsErrorContext)>,
    /// Unknown elementary streams already logged.
    logged_unknown: std::collections::HashSet<(u16, u8)>,
}

/// Most distinct unknown elementary streams one input logs.
const MAX_LOGGED_UNKNOWN: usize = 64;

/// What one push through a [`Feeder`] gave.
pub struct Fed {
    pub events: Vec<DemuxEvent>,
    /// A TS error to report to the stream (rate-limited).
    pub error: Option<TsErrorContext>,
}

/// Least time between two TS errors a feeder hands on.
const ERROR_REPORT_EVERY: Duration = Duration::from_secs(1);

impl Feeder {
    /// A demuxer following MPTS program `program` (`None`: the first program
    /// with video).
    pub fn new(program: Option<u16>) -> Self {
        Feeder {
            demux: demuxer(program),
            seen: DemuxStats::default(),
            reported: None,
            logged_unknown: std::collections::HashSet::new(),
        }
    }

    /// Demuxes `data` (received bytes, counted as input) and returns the events it completed.
    pub fn feed(&mut self, ctx: &InputCtx, data: &[u8]) -> Fed {
        self.demux.push(data);
        ctx.metrics.input_bytes.inc_by(data.len() as u64);
        self.drain(ctx)
    }

    /// Ends the input: emits what is still buffered.
    pub fn finish(&mut self, ctx: &InputCtx) -> Fed {
        self.demux.flush();
        self.drain(ctx)
    }

    fn drain(&mut self, ctx: &InputCtx) -> Fed {
        let mut events = Vec::new();
        while let Some(ev) = self.demux.pull() {
            events.push(ev);
        }
        let error = self.account(ctx);
        Fed { events, error }
    }

    /// Adds the demuxer's new counts to the stream's counters; returns the
    /// last error if it is new and none was handed on in the last second.
    fn account(&mut self, ctx: &InputCtx) -> Option<TsErrorContext> {
        let m = &ctx.metrics;
        let s = self.demux.stats();
        if *s == self.seen {
            return None;
        }
        m.ts_cc.inc_by(s.cc_errors.saturating_sub(self.seen.cc_errors));
        m.ts_sync.inc_by(s.sync_errors.saturating_sub(self.seen.sync_errors));
        m.ts_pes.inc_by(
            (s.pes_errors + s.transport_errors + s.scrambled)
                .saturating_sub(self.seen.pes_errors + self.seen.transport_errors + self.seen.scrambled),
        );
        m.ts_pmt.inc_by(s.pmt_errors.saturating_sub(self.seen.pmt_errors));
        m.ts_other
            .inc_by(s.unknown_streams.saturating_sub(self.seen.unknown_streams));
        m.ts_program_missing
            .inc_by(s.programs_missing.saturating_sub(self.seen.programs_missing));
        m.ts_interpolated
            .inc_by(s.interpolated.saturating_sub(self.seen.interpolated));
        m.dropped_wait_keyframe
            .inc_by(s.dropped_frames.saturating_sub(self.seen.dropped_frames));
        let last = s.last_error;
        self.seen = s.clone();
        for (pid, stream_type) in self.demux.take_unknown() {
            // Once per (PID, type) for the life of this input, and a bounded
            // set: a PMT that flips between stream lists cannot flood the log.
            if self.logged_unknown.len() >= MAX_LOGGED_UNKNOWN || !self.logged_unknown.insert((pid, stream_type)) {
                continue;
            }
            tracing::warn!(
                stream = %ctx.stream,
                input = ctx.index(),
                pid,
                stream_type = format_args!("0x{stream_type:02x}"),
                "elementary stream of a type strom does not carry: left out (counted as unknown_stream)"
            );
        }
        let last = last?;
        let now = Instant::now();
        match self.reported {
            Some((_, e)) if e == last => None,
            Some((at, _)) if now.saturating_duration_since(at) < ERROR_REPORT_EVERY => None,
            _ => {
                self.reported = Some((now, last));
                tracing::debug!(
                    stream = %ctx.stream,
                    input = ctx.index(),
                    pid = last.pid,
                    kind = last.kind.name(),
                    offset = last.offset,
                    "mpeg-ts error"
                );
                Some(last)
            }
        }
    }
}

/// The demuxer of a TS input following `program`.
pub fn demuxer(program: Option<u16>) -> Demuxer {
    Demuxer::with_program(program)
}

/// Capped exponential backoff for reconnecting inputs.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff { next: min, min, max }
    }

    /// The delay before the next attempt; doubles up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// A session delivered data: start again from the minimum.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Starts inputs; the stream task calls it for each input it starts. Tests
/// substitute their own to drive the stream task without sockets.
pub trait Launcher: Send + Sync + 'static {
    /// The task of `spec`, run until `ctx.cancel` or until it gives up.
    fn launch(&self, spec: &InputSpec, ctx: InputCtx) -> BoxFuture<'static, ()>;
}

/// The real inputs.
pub struct Inputs;

impl Launcher for Inputs {
    fn launch(&self, spec: &InputSpec, ctx: InputCtx) -> BoxFuture<'static, ()> {
        run(spec.clone(), ctx).boxed()
    }
}

/// Runs the input of `spec` until cancelled.
pub async fn run(spec: InputSpec, ctx: InputCtx) {
    match spec {
        InputSpec::Config(Input::Udp {
            addr,
            iface,
            source,
            program,
        }) => udp::run(addr, iface, source, program, ctx).await,
        InputSpec::Config(Input::Http { url, program }) => http::run(url, program, ctx).await,
        InputSpec::Config(Input::Publish { program }) => publish::run(program, ctx).await,
        InputSpec::Config(Input::File { path, program }) => file::run(file::Origin::Path(path), program, ctx).await,
        InputSpec::Config(Input::Builtin { name }) => file::run(file::Origin::Builtin(name), None, ctx).await,
        InputSpec::Config(Input::Rtmp { host, port, app, name }) => {
            let src = rtmp::RtmpSource {
                host,
                port: port.unwrap_or(strom_config::RTMP_DEFAULT_PORT),
                app,
                name,
            };
            rtmp::run(src, ctx).await
        }
        InputSpec::Config(Input::Srt {
            host,
            port,
            streamid,
            passphrase,
            latency,
            program,
        }) => {
            let input = srt::SrtInput {
                host,
                port,
                streamid,
                passphrase,
                latency,
            };
            srt::run(input, program, ctx).await
        }
        InputSpec::Cluster(spec) => cluster::run(spec, ctx).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(2));
        let got: Vec<u64> = (0..6).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(got, vec![250, 500, 1000, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(250));
    }
}

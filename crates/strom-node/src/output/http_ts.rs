//! Continuous HTTP MPEG-TS output (`/NAME/mpegts`).
//!
//! **Muxing and batching, once per stream.** Each frame is muxed (ISO/IEC
//! 13818-1) on the stream's task into the open batch, and viewers get
//! batches, not frames: a viewer's wake-up, poll and send happen once per
//! batch (about one a second) instead of once per frame (~72 a second for
//! 25 fps video with AAC). A batch ends:
//! - before a start point (PAT/PMT followed by a video keyframe; for
//!   audio-only streams, tables every half second), so every batch flagged
//!   `start` begins with one, and viewers join or resume at batch boundaries;
//! - once one of its tracks spans [`BATCH_SPAN`] (1 s) of DTS;
//! - once it holds [`BATCH_MAX_BYTES`];
//! - when the tracks change, and on `on_interrupt`.
//!
//! The frames' timestamps decide, never a timer, so the batches are a
//! deterministic function of the frames and their concatenation is exactly
//! the frame-by-frame mux. The price is latency: a frame reaches viewers at
//! most one batch later than it would alone, i.e. once its track has 1 s
//! more media behind it. When the input pauses, the open batch waits for the
//! next frame (or the interrupt, when the stream stops delivering).
//! A batch's bytes are made in one place, [`Batch::seal`]: copied once into
//! a zero-copy arena ([`crate::zc::Arena`], memfds of [`ARENA_BYTES`]), so
//! connections send them with `sendfile` instead of copying them into the
//! kernel per viewer.
//!
//! Why a second: a viewer's cost is mostly per send, not per byte. Every
//! send wakes the viewer's task, takes a pass through hyper and the
//! runtime, pushes TCP segments and wakes the reader, whatever its size; at
//! 100 ms batches (~9 sends a second) 1,000 viewers of a 3.4 Mbit/s stream
//! cost ~2.4 times the CPU of nginx pacing a file with `limit_rate`, which
//! sends about once a second per connection; at 1 s, ~1.4 times, and 2 s
//! batches gain nothing more (bench/README.md, "HTTP-TS fan-out").
//!
//! **Framing.** The body is delimited by the end of the connection
//! (`HTTP/1.0` answer, `Connection: close`), not chunked: a chunk's size
//! line and trailing CRLF are two small writes around each `sendfile`,
//! which cost more than the batch's own send (RFC 9112 §6.3: a response
//! without Content-Length or Transfer-Encoding ends when the connection
//! closes). A continuous stream ends only with its connection anyway.
//!
//! **Joining.** The batches since the last start point are cached (up to
//! [`GOP_CACHE_MAX_BYTES`]), so a new viewer starts at once at a keyframe,
//! with the tables first.
//!
//! **Viewers.** A viewer is a response body ([`ViewerBody`]) that its
//! connection polls. Per batch it takes a reference to the batch from the
//! broadcast and hands the `Bytes` to hyper: no copy, no allocation, no timer
//! and no lock of its own. The stream's and the session's cancellation and
//! the idle timer are registered once, with a waker of the body's own
//! ([`Alarm`]), and looked at only after that waker fired. Byte counters are
//! updated every [`REPORT_BYTES`] and when the viewer ends. A viewer with a
//! backlog (a new joiner's cached GOP, a viewer catching up) yields its
//! worker to other connections after [`BURST_BYTES`] in one go; a live
//! viewer, which gets one batch per wake-up, never reaches it.
//!
//! **Slow viewers.** A viewer that falls behind the broadcast is skipped to
//! the next start point and counted; after [`MAX_LAGS`] such skips it is
//! dropped (counted too); a dropped viewer's connection closes. The stream
//! never waits on a viewer: memory per stream is bounded by the broadcast
//! capacity ([`LIVE_CAPACITY`] batches of at most [`BATCH_MAX_BYTES`] and
//! one frame), [`GOP_CACHE_MAX_BYTES`] and one arena region, plus what
//! connections still hold (hyper's queue, one batch each, of the same
//! shared batches; connections that take nothing are reset after the send
//! timeout).

use super::{Output, OutputCtx};
use crate::access::Ticket;
use crate::http::reply::{self, MP2T};
use crate::http::request::{PlayRequest, Resource};
use crate::stream::{DemandGuard, Stream};
use crate::zc::Arena;
use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::task::AtomicWaker;
use futures_util::FutureExt;
use hyper::body::Frame as BodyFrame;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use strom_media::ts::mux::TsMuxer;
use strom_media::{Frame, Track, TrackKind, CLOCK_HZ};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Sleep;
use tokio_util::sync::{ReusableBoxFuture, WaitForCancellationFutureOwned};

/// A batch ends once one of its tracks spans this much DTS (90 kHz ticks:
/// 1 s), the pace at which nginx's `limit_rate` sends a file. It bounds
/// the latency batching adds.
pub const BATCH_SPAN: i64 = CLOCK_HZ;
/// A batch ends once it holds this many bytes (it may pass it by one
/// frame): a second of streams up to ~8 Mbit/s.
pub const BATCH_MAX_BYTES: usize = 1 << 20;
/// Size of the zero-copy regions (memfds) batches are written to: one
/// lasts ~5 s at 3.4 Mbit/s and holds at least two full batches; one is
/// freed when its last batch is. A stream without viewers keeps its
/// current region and its cached GOP's, so this bounds what HTTP-TS costs
/// an unwatched channel (about 1 MiB of memfd on average at 3.4 Mbit/s).
pub const ARENA_BYTES: usize = 2 << 20;
/// Live batches buffered per stream: about 12 s at one batch a second
/// (streams up to ~8 Mbit/s; 6 s for audio-only streams, whose batches end
/// every half second); less for streams whose batches end on
/// [`BATCH_MAX_BYTES`] (5 s at 20 Mbit/s).
pub const LIVE_CAPACITY: usize = 12;
/// A GOP bigger than this is not cached; new viewers wait for the next keyframe.
pub const GOP_CACHE_MAX_BYTES: usize = 32 << 20;
/// Times a viewer may fall behind (and be skipped to a keyframe) before it is dropped.
pub const MAX_LAGS: u32 = 8;
/// A viewer that has handed this many bytes to its connection without
/// waiting yields its worker before the next batch (a new joiner's GOP, a
/// viewer catching up), so that one backlog cannot starve other
/// connections. At least one whole batch: a live viewer, which takes one
/// batch and then waits, must not pay a yield (one more task poll) per batch.
pub const BURST_BYTES: usize = BATCH_MAX_BYTES;
/// A viewer adds its bytes to the stream's and the session's counters once
/// it has sent this many since it last did (and when it ends): after every
/// batch of a 3.4 Mbit/s stream, every few for small batches. The sessions
/// API shows a new viewer's bytes within a second or two.
pub const REPORT_BYTES: u64 = 256 << 10;

/// One batch of the continuous output: whole TS packets of one or more frames.
#[derive(Clone, Debug)]
pub struct LiveChunk {
    /// Position in the stream's batch sequence; consecutive.
    pub idx: u64,
    /// A viewer may start here: PAT/PMT followed by a keyframe.
    pub start: bool,
    pub data: Bytes,
}

/// The open batch: muxed bytes not yet handed to viewers, and the facts
/// that decide where it ends. Pure: frames' tracks and timestamps in,
/// decisions out.
struct Batch {
    /// The open batch's bytes; the same allocation, batch after batch.
    buf: BytesMut,
    /// Where sealed batches live (memfds sent with `sendfile`).
    arena: Arena,
    /// Frames in the open batch.
    frames: usize,
    /// The open batch begins at a start point.
    start: bool,
    /// DTS (90 kHz ticks) of each track's first frame in the open batch, by
    /// track index.
    first_dts: Vec<Option<i64>>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            buf: BytesMut::with_capacity(BATCH_MAX_BYTES),
            arena: Arena::new(ARENA_BYTES),
            frames: 0,
            start: false,
            first_dts: Vec::new(),
        }
    }

    /// Whether the open batch must be sealed before a frame that is (or is
    /// not) a start point: a start point always begins a batch.
    fn ends_before(&self, start: bool) -> bool {
        start && self.frames > 0
    }

    /// Notes a frame of track `track` at `dts` (90 kHz ticks) that was just
    /// muxed into `buf`; whether the batch is now complete (a track spans
    /// [`BATCH_SPAN`], or the bytes reached [`BATCH_MAX_BYTES`]).
    fn add(&mut self, track: usize, dts: i64, start: bool) -> bool {
        if self.frames == 0 {
            self.start = start;
        }
        self.frames += 1;
        if track >= self.first_dts.len() {
            self.first_dts.resize(track + 1, None);
        }
        let first = *self.first_dts[track].get_or_insert(dts);
        dts.saturating_sub(first) >= BATCH_SPAN || self.buf.len() >= BATCH_MAX_BYTES
    }

    /// Seals the open batch, if it holds anything: (start, bytes). This is
    /// the one place where batch bytes are made: copied once into the
    /// arena, from where connections send them with `sendfile`.
    fn seal(&mut self) -> Option<(bool, Bytes)> {
        let start = self.start;
        self.frames = 0;
        self.start = false;
        self.first_dts.iter_mut().for_each(|d| *d = None);
        if self.buf.is_empty() {
            return None;
        }
        let data = self.arena.push(&self.buf);
        self.buf.clear();
        Some((start, data))
    }
}

struct Muxing {
    mux: Option<TsMuxer>,
    batch: Batch,
    tracks: Arc<[Track]>,
    has_video: bool,
    last_tables_dts: Option<i64>,
}

#[derive(Default)]
struct Gop {
    chunks: Vec<LiveChunk>,
    bytes: usize,
}

/// The HTTP-TS output of one stream.
pub struct HttpTs {
    muxing: Mutex<Muxing>,
    gop: Mutex<Gop>,
    next_idx: AtomicU64,
    live: broadcast::Sender<LiveChunk>,
    source_timeout: Duration,
}

/// Registers the HTTP-TS output.
pub fn build(ctx: &OutputCtx) -> Arc<dyn Output> {
    Arc::new(HttpTs::new(ctx))
}

/// The batches an `on_*` call sealed, handed to viewers after the muxing
/// lock is released: at most two (the one a start point closed, and the
/// start point's own when it is complete at once).
type Sealed = [Option<(bool, Bytes)>; 2];

impl HttpTs {
    fn new(ctx: &OutputCtx) -> Self {
        HttpTs {
            muxing: Mutex::new(Muxing {
                mux: None,
                batch: Batch::new(),
                tracks: Arc::from(Vec::new()),
                has_video: false,
                last_tables_dts: None,
            }),
            gop: Mutex::new(Gop::default()),
            next_idx: AtomicU64::new(0),
            live: broadcast::channel(LIVE_CAPACITY).0,
            source_timeout: ctx.cfg.source_timeout,
        }
    }

    fn push_sealed(&self, sealed: Sealed) {
        for (start, data) in sealed.into_iter().flatten() {
            self.push(start, data);
        }
    }

    fn push(&self, start: bool, data: Bytes) {
        let chunk = LiveChunk {
            idx: self.next_idx.fetch_add(1, Ordering::Relaxed),
            start,
            data,
        };
        {
            let mut gop = self.gop.lock().unwrap_or_else(|e| e.into_inner());
            if start {
                gop.chunks.clear();
                gop.bytes = 0;
            }
            if start || !gop.chunks.is_empty() {
                gop.bytes += chunk.data.len();
                if gop.bytes > GOP_CACHE_MAX_BYTES {
                    gop.chunks.clear();
                    gop.bytes = 0;
                } else {
                    gop.chunks.push(chunk.clone());
                }
            }
        }
        // No receivers is not an error: nobody watches HTTP-TS right now.
        let _ = self.live.send(chunk);
    }

    /// A new viewer: the receiver (subscribed first, so no batch is missed)
    /// and the batches of the current GOP to send before it.
    fn subscribe(&self) -> (broadcast::Receiver<LiveChunk>, Vec<LiveChunk>) {
        let rx = self.live.subscribe();
        let gop = self.gop.lock().unwrap_or_else(|e| e.into_inner()).chunks.clone();
        (rx, gop)
    }

    /// Seals the open batch under the muxing lock.
    fn flush(&self) -> Sealed {
        let mut m = self.muxing.lock().unwrap_or_else(|e| e.into_inner());
        [m.batch.seal(), None]
    }

    async fn serve_live(self: Arc<Self>, stream: Arc<Stream>, ticket: Option<Ticket>, head: bool) -> Response {
        if head {
            // A probe: never wakes or waits for the stream.
            return if stream.live(Instant::now()) {
                live_response(Body::new(NoLength))
            } else {
                reply::not_ready()
            };
        }
        let guard = stream.hold();
        let (rx, gop) = self.subscribe();
        if gop.is_empty() {
            let ready =
                stream.live(Instant::now()) || (stream.starting() && stream.wait_ready(stream.start_wait()).await);
            if !ready {
                return reply::not_ready();
            }
        }
        let idle = self.source_timeout.max(Duration::from_secs(5)) * 3;
        let body = ViewerBody::new(stream, ticket, guard, rx, gop, idle);
        live_response(Body::new(body))
    }
}

/// The answer to `/NAME/mpegts`, GET and HEAD alike: the same header
/// fields, and no `Content-Length`, since a continuous body has none (a
/// HEAD answers what the GET would, RFC 9110 §9.3.2). The body ends with
/// the connection (see "Framing" above). HTTP/1.1 allows that (RFC 9112
/// §6.3, item 8), but hyper writes a body of unknown length close-delimited
/// only in an `HTTP/1.0` answer, so the answer says `HTTP/1.0` (a deliberate
/// exception to RFC 9110 §2.5, which says a server SHOULD answer with the
/// highest minor version it conforms to) and `Connection: close`.
fn live_response(body: Body) -> Response {
    let mut r = (
        [
            (header::CONTENT_TYPE, MP2T),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONNECTION, "close"),
        ],
        body,
    )
        .into_response();
    *r.version_mut() = axum::http::Version::HTTP_10;
    r
}

/// The body of a HEAD answer: empty, but of no known length, like the
/// GET's. The router writes `Content-Length` for a body whose size hint is
/// exact (`content-length: 0` for an empty one) before it drops the body of
/// a HEAD answer.
struct NoLength;

impl hyper::body::Body for NoLength {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<BodyFrame<Bytes>, Infallible>>> {
        Poll::Ready(None)
    }
}

/// The waker of a viewer's watched futures (stream closing, session closed,
/// idle timer): it notes that one of them fired and wakes the connection's
/// task. The body polls those futures only after it fired, instead of on
/// every batch (each such poll takes a lock, one of them shared by every
/// viewer of the stream).
#[derive(Default)]
struct Alarm {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// What the receive future yields: the result and the receiver, back.
type Received = (Result<LiveChunk, RecvError>, broadcast::Receiver<LiveChunk>);

async fn recv(mut rx: broadcast::Receiver<LiveChunk>) -> Received {
    let r = rx.recv().await;
    (r, rx)
}

/// One HTTP-TS viewer's response body: its position in the broadcast.
struct ViewerBody {
    stream: Arc<Stream>,
    /// The viewer's session: ends when the viewer does, and closes the
    /// connection when it ends first (denied, kicked, over a user cap).
    ticket: Option<Ticket>,
    /// Batches to send before the live ones (the GOP cached at join).
    backlog: VecDeque<LiveChunk>,
    /// The next live batch; the allocation is reused batch after batch.
    recv: ReusableBoxFuture<'static, Received>,
    last_idx: Option<u64>,
    need_start: bool,
    lags: u32,
    /// Bytes handed to the connection since the body last waited.
    burst: usize,
    /// Bytes not yet added to the stream's and the session's counters.
    unreported: u64,
    alarm: Arc<Alarm>,
    alarm_waker: Waker,
    /// The task's waker the alarm holds, as last registered.
    task_waker: Option<Waker>,
    closing: Pin<Box<WaitForCancellationFutureOwned>>,
    closed: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// Fires every `idle_for`; see [`ViewerBody::watch`].
    idle: Pin<Box<Sleep>>,
    idle_for: Duration,
    /// A batch arrived since the idle timer was last armed.
    fed: bool,
    /// The idle timer fired with no batch since it was armed: the response
    /// ends as soon as the broadcast has nothing either.
    idle_due: bool,
    /// The response must end (cancelled); `poll_frame` answers the end.
    ended: bool,
    _demand: DemandGuard,
}

impl ViewerBody {
    fn new(
        stream: Arc<Stream>,
        ticket: Option<Ticket>,
        demand: DemandGuard,
        rx: broadcast::Receiver<LiveChunk>,
        gop: Vec<LiveChunk>,
        idle_for: Duration,
    ) -> Self {
        let alarm = Arc::new(Alarm::default());
        let closed = ticket
            .as_ref()
            .and_then(|t| t.conn.as_ref())
            .map(|c| Box::pin(c.closed.clone().cancelled_owned()));
        let mut body = ViewerBody {
            closing: Box::pin(stream.closing.clone().cancelled_owned()),
            stream,
            ticket,
            need_start: gop.is_empty(),
            backlog: gop.into(),
            recv: ReusableBoxFuture::new(recv(rx)),
            last_idx: None,
            lags: 0,
            burst: 0,
            unreported: 0,
            alarm_waker: Waker::from(alarm.clone()),
            task_waker: None,
            alarm,
            closed,
            idle: Box::pin(tokio::time::sleep(idle_for)),
            idle_for,
            fed: false,
            idle_due: false,
            ended: false,
            _demand: demand,
        };
        // Register the alarm with every watched future (and learn whether
        // one is done already).
        body.alarm.fired.store(true, Ordering::Relaxed);
        body.watch();
        body
    }

    /// Looks at the watched futures if the alarm fired: sets `ended` when
    /// the stream or the session closed; handles the idle timer, which the
    /// response outlives only while batches keep coming. The stream is
    /// declared idle after `idle_for` to `2 × idle_for` without a batch.
    fn watch(&mut self) {
        if !self.alarm.fired.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut cx = Context::from_waker(&self.alarm_waker);
        if self.closing.as_mut().poll(&mut cx).is_ready() {
            self.ended = true;
        }
        if let Some(c) = self.closed.as_mut() {
            if c.as_mut().poll(&mut cx).is_ready() {
                self.ended = true;
            }
        }
        if self.idle.as_mut().poll(&mut cx).is_ready() {
            if self.fed {
                self.rearm_idle();
            } else {
                self.idle_due = true;
            }
        }
    }

    fn rearm_idle(&mut self) {
        self.fed = false;
        self.idle_due = false;
        let at = tokio::time::Instant::now() + self.idle_for;
        self.idle.as_mut().reset(at);
        let mut cx = Context::from_waker(&self.alarm_waker);
        // Registers the alarm's waker with the timer again.
        let _ = self.idle.as_mut().poll(&mut cx);
    }

    /// The next bytes to send; `Ready(None)` ends the response.
    fn next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        // Register first: an alarm after the check below wakes the task.
        // Only when needed: a wake-up takes the registered waker (and sets
        // `fired`), and a connection's task keeps its waker from poll to
        // poll.
        let fired = self.alarm.fired.load(Ordering::Acquire);
        if fired || !self.task_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.alarm.task.register(cx.waker());
            self.task_waker = Some(cx.waker().clone());
        }
        self.watch();
        if self.ended {
            return Poll::Ready(None);
        }
        if self.burst >= BURST_BYTES {
            self.burst = 0;
            yield_task(cx);
            return Poll::Pending;
        }
        if !self.backlog.is_empty() {
            // One unit of the task's budget per batch, like a live receive.
            let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
            if let Some(c) = self.backlog.pop_front() {
                coop.made_progress();
                self.last_idx = Some(c.idx);
                return Poll::Ready(Some(c.data));
            }
        }
        loop {
            let (r, rx) = match self.recv.poll(cx) {
                Poll::Ready(r) => r,
                Poll::Pending => {
                    // Nothing for an idle period, and nothing now (not just
                    // out of budget): the stream stopped delivering.
                    if self.idle_due && tokio::task::coop::has_budget_remaining() {
                        return Poll::Ready(None);
                    }
                    self.burst = 0;
                    return Poll::Pending;
                }
            };
            self.recv.set(recv(rx));
            match r {
                Ok(c) => {
                    self.fed = true;
                    if self.idle_due {
                        self.rearm_idle();
                    }
                    if self.last_idx.is_some_and(|l| c.idx <= l) || (self.need_start && !c.start) {
                        continue;
                    }
                    self.need_start = false;
                    self.last_idx = Some(c.idx);
                    return Poll::Ready(Some(c.data));
                }
                Err(RecvError::Lagged(_)) => {
                    self.lags += 1;
                    if self.lags > MAX_LAGS {
                        self.stream.metrics.slow_dropped.inc();
                        tracing::info!(stream = %self.stream.name, "http-ts viewer too slow: dropped");
                        return Poll::Ready(None);
                    }
                    self.stream.metrics.slow_skipped.inc();
                    self.need_start = true;
                }
                Err(RecvError::Closed) => return Poll::Ready(None),
            }
        }
    }

    /// Adds the bytes not yet counted to the stream's and the session's counters.
    fn report(&mut self) {
        let n = std::mem::take(&mut self.unreported);
        if n == 0 {
            return;
        }
        self.stream.metrics.bytes_out.inc_by(n);
        if let Some(c) = self.ticket.as_ref().and_then(|t| t.conn.as_ref()) {
            c.bytes.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Ends the current poll of the calling task and has it polled again later,
/// after the other tasks ready on its worker.
///
/// A `Pending` body alone does not do it: hyper flushes what it holds and
/// polls the body again within the same task poll (up to 16 rounds, each
/// until 16 buffers or ~400 KB are queued), so the socket's send buffer
/// would be the only bound. Spending the rest of the task's cooperative
/// budget makes every budgeted operation of the connection (this body's
/// receives, the socket's writes) return `Pending` until the scheduler polls
/// the task anew, and the runtime wakes it then.
fn yield_task(cx: &mut Context<'_>) {
    // A task has a budget of 128; outside a runtime (or unconstrained)
    // there is none to spend, and a plain wake-up is all there is.
    for _ in 0..256 {
        match tokio::task::coop::poll_proceed(cx) {
            Poll::Ready(spent) => spent.made_progress(),
            Poll::Pending => return,
        }
    }
    cx.waker().wake_by_ref();
}

impl hyper::body::Body for ViewerBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<BodyFrame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        match this.next(cx) {
            Poll::Ready(Some(data)) => {
                this.burst += data.len();
                this.unreported += data.len() as u64;
                if this.unreported >= REPORT_BYTES {
                    this.report();
                }
                Poll::Ready(Some(Ok(BodyFrame::data(data))))
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.report();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ViewerBody {
    fn drop(&mut self) {
        // Before the ticket goes (and with it the session).
        self.report();
    }
}

impl Output for HttpTs {
    fn name(&self) -> &'static str {
        "mpegts"
    }

    fn on_tracks(&self, t: &Arc<[Track]>) {
        let mut m = self.muxing.lock().unwrap_or_else(|e| e.into_inner());
        if **t == *m.tracks {
            return;
        }
        // What the old muxer wrote goes out before anything of the new one.
        let sealed = [m.batch.seal(), None];
        // A viewer already connected sees the counters of a new muxer start
        // over: flag that on every PID (ISO/IEC 13818-1 §2.4.3.5).
        let mut mux = TsMuxer::new(t);
        if m.mux.is_some() {
            mux.mark_discontinuity();
        }
        m.mux = Some(mux);
        m.has_video = t.iter().any(|t| t.kind() == TrackKind::Video);
        m.last_tables_dts = None;
        m.tracks = t.clone();
        m.batch.first_dts = vec![None; t.len()];
        drop(m);
        self.push_sealed(sealed);
    }

    fn on_frame(&self, frame: &Frame) {
        let mut guard = self.muxing.lock().unwrap_or_else(|e| e.into_inner());
        let m = &mut *guard;
        let Some(track) = m.tracks.get(usize::from(frame.track)) else {
            return;
        };
        let start = if m.has_video {
            frame.keyframe && track.kind() == TrackKind::Video
        } else {
            m.last_tables_dts.is_none_or(|t| frame.dts - t >= CLOCK_HZ / 2)
        };
        let Some(mux) = m.mux.as_mut() else { return };
        let mut sealed: Sealed = [None, None];
        if m.batch.ends_before(start) {
            sealed[0] = m.batch.seal();
        }
        if start && !m.has_video {
            mux.write_tables(&mut m.batch.buf);
            m.last_tables_dts = Some(frame.dts);
        }
        mux.write_frame(frame, &mut m.batch.buf);
        if m.batch.add(usize::from(frame.track), frame.dts, start) {
            sealed[1] = m.batch.seal();
        }
        drop(guard);
        self.push_sealed(sealed);
    }

    fn on_interrupt(&self) {
        // The tail goes to the viewers still connected...
        self.push_sealed(self.flush());
        // ...but a new viewer gets no stale GOP.
        let mut gop = self.gop.lock().unwrap_or_else(|e| e.into_inner());
        gop.chunks.clear();
        gop.bytes = 0;
    }

    fn serve(self: Arc<Self>, stream: &Arc<Stream>, req: &PlayRequest) -> Option<BoxFuture<'static, Response>> {
        (req.resource == Resource::MpegTs).then(|| {
            self.serve_live(stream.clone(), req.ticket.clone(), req.is_head())
                .boxed()
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::StreamSpec;
    use hyper::body::Body as _;
    use std::sync::atomic::AtomicUsize;
    use strom_config::StreamConfig;
    use strom_media::{Codec, TrackParams};

    const UTC: i64 = 1_763_769_600 * CLOCK_HZ;
    /// 25 fps video, in 90 kHz ticks.
    const VIDEO_TICKS: i64 = 3600;
    /// One AAC frame (1024 samples at 48 kHz), in 90 kHz ticks.
    const AUDIO_TICKS: i64 = 1920;

    fn track(id: u16, codec: Codec) -> Track {
        let audio = codec.kind() == TrackKind::Audio;
        Track {
            id,
            codec,
            params: TrackParams {
                channels: if audio { 2 } else { 0 },
                sample_rate: if audio { 48_000 } else { 0 },
                aac_object_type: 2,
                ..TrackParams::default()
            },
        }
    }

    fn av() -> Arc<[Track]> {
        Arc::from(vec![track(0, Codec::H264), track(1, Codec::Aac)])
    }

    fn video(n: i64, keyframe: bool, pad: usize) -> Frame {
        let nal = if keyframe { 0x65 } else { 0x41 };
        let mut data = vec![0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, nal, 0x88];
        data.resize(data.len() + pad, 0x5a);
        let dts = UTC + n * VIDEO_TICKS;
        Frame {
            track: 0,
            dts,
            pts: dts + VIDEO_TICKS,
            keyframe,
            data: Bytes::from(data),
        }
    }

    fn audio(n: i64) -> Frame {
        let dts = UTC + n * AUDIO_TICKS;
        Frame {
            track: 1,
            dts,
            pts: dts,
            keyframe: true,
            data: Bytes::from_static(&[0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c]),
        }
    }

    /// `secs` of 25 fps video (a keyframe every `gop` frames, `pad` bytes
    /// each) and AAC, in DTS order.
    fn frames(secs: i64, gop: i64, pad: usize) -> Vec<Frame> {
        let end = UTC + secs * CLOCK_HZ;
        let (mut v, mut a) = (0, 0);
        let mut out = Vec::new();
        loop {
            let (vf, af) = (video(v, v % gop == 0, pad), audio(a));
            if vf.dts.min(af.dts) >= end {
                return out;
            }
            if vf.dts <= af.dts {
                out.push(vf);
                v += 1;
            } else {
                out.push(af);
                a += 1;
            }
        }
    }

    fn output() -> HttpTs {
        HttpTs::new(&OutputCtx {
            stream: Arc::from("t"),
            cfg: StreamConfig::new("t", Vec::new()),
            metrics: crate::metrics::Metrics::new().stream("t"),
            slot: 0,
            archive: None,
        })
    }

    /// Feeds `frames`; for each frame, the batches that came out right after it.
    fn feed(out: &HttpTs, rx: &mut broadcast::Receiver<LiveChunk>, frames: &[Frame]) -> Vec<Vec<LiveChunk>> {
        frames
            .iter()
            .map(|f| {
                out.on_frame(f);
                std::iter::from_fn(|| rx.try_recv().ok()).collect()
            })
            .collect()
    }

    fn pid(packet: &[u8]) -> u16 {
        u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2])
    }

    #[test]
    fn start_points_begin_batches_and_span_cuts_the_rest() {
        let mut b = Batch::new();
        assert!(!b.ends_before(true), "an empty batch needs no cut");
        b.buf.extend_from_slice(&[0; 188]);
        assert!(!b.add(0, 0, true));
        assert!(b.ends_before(true), "a start point begins a batch");
        assert!(!b.ends_before(false));
        // Video every 40 ms, audio 500 ms ahead of it in the same batch:
        // spans are per track, so the offset between tracks cuts nothing.
        assert!(!b.add(1, 45_000, false));
        assert!(!b.add(0, VIDEO_TICKS, false));
        assert!(!b.add(0, 2 * VIDEO_TICKS, false));
        assert!(!b.add(1, 45_000 + 46 * AUDIO_TICKS, false), "audio at 981 ms");
        assert!(!b.add(0, 24 * VIDEO_TICKS, false), "video at 960 ms");
        // 1 s of video: complete.
        assert!(b.add(0, 25 * VIDEO_TICKS, false));
        let (start, data) = b.seal().expect("a batch");
        assert!(start);
        assert_eq!(data.len(), 188);
        // Sealing forgot the spans, the start flag and the frames.
        assert!(b.seal().is_none(), "nothing left");
        b.buf.extend_from_slice(&[0; 188]);
        assert!(!b.add(1, 50_000, false));
        assert!(!b.ends_before(false));
        assert!(!b.add(1, 50_000 + BATCH_SPAN - 1, false), "just under 1 s");
        assert!(b.add(1, 50_000 + BATCH_SPAN, false), "1 s");
        assert_eq!(
            b.seal().map(|s| s.0),
            Some(false),
            "opened by a frame that is no start point"
        );
    }

    #[test]
    fn byte_cap_cuts() {
        let mut b = Batch::new();
        b.buf.resize(BATCH_MAX_BYTES - 1, 0);
        assert!(!b.add(0, 0, false));
        b.buf.resize(BATCH_MAX_BYTES, 0);
        assert!(b.add(0, 1, false), "the cap is reached within 1 s");
        assert_eq!(b.seal().map(|s| s.1.len()), Some(BATCH_MAX_BYTES));

        // In the output: 400 KB frames, three in 80 ms pass the cap.
        let out = output();
        out.on_tracks(&av());
        let mut rx = out.live.subscribe();
        let fs: Vec<Frame> = (0..3).map(|n| video(n, n == 0, 400_000)).collect();
        let per_frame = feed(&out, &mut rx, &fs);
        assert!(per_frame[0].is_empty() && per_frame[1].is_empty());
        assert_eq!(per_frame[2].len(), 1, "sealed on bytes by the third frame");
        assert!(per_frame[2][0].data.len() >= BATCH_MAX_BYTES);
    }

    /// Over 5 s of 25 fps video (2 s GOPs) with AAC: the batches are exactly
    /// the frame-by-frame mux; each keyframe begins a `start` batch with
    /// PAT/PMT; every other batch ends when a track spans 1 s, or before a
    /// keyframe.
    #[test]
    fn batches_are_the_frame_mux_cut_where_they_must_be() {
        let tracks = av();
        let fs = frames(5, 50, 2000);
        let out = output();
        out.on_tracks(&tracks);
        let mut rx = out.live.subscribe();
        let per_frame = feed(&out, &mut rx, &fs);
        out.on_interrupt();
        let tail: Vec<LiveChunk> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(tail.len(), 1, "the interrupt flushed the open batch");

        let mut reference = TsMuxer::new(&tracks);
        let mut expected = BytesMut::new();
        for f in &fs {
            reference.write_frame(f, &mut expected);
        }
        let batches: Vec<&LiveChunk> = per_frame.iter().flatten().chain(&tail).collect();
        let joined: Vec<u8> = batches.iter().flat_map(|c| c.data.iter().copied()).collect();
        assert_eq!(joined, expected.to_vec(), "batching changes no byte");
        for (i, c) in batches.iter().enumerate() {
            assert_eq!(c.idx, i as u64, "consecutive");
            assert_eq!(c.data.len() % 188, 0, "whole packets");
            assert_eq!(
                pid(&c.data) == 0,
                c.start,
                "batch {i}: PAT first exactly in start batches"
            );
        }
        assert_eq!(batches.iter().filter(|c| c.start).count(), 3, "one per keyframe");
        let zero_copy = batches
            .iter()
            .all(|c| crate::zc::any_zero_copy(&[std::io::IoSlice::new(&c.data)]));
        assert!(zero_copy, "batches are sent from the arena");
        // About one batch a second: [0, 1], (1, 2), [2, 3], (3, 4), [4, 5).
        assert_eq!(batches.len(), 5, "{} batches", batches.len());

        // Which frames each batch holds: a batch is sealed by the frame
        // after which it comes out, or before it when that frame is a start.
        let mut batch_frames: Vec<Vec<&Frame>> = vec![Vec::new()];
        for (f, sealed) in fs.iter().zip(&per_frame) {
            let before = f.keyframe && f.track == 0 && !batch_frames.last().is_some_and(Vec::is_empty);
            if before {
                assert!(!sealed.is_empty(), "a keyframe seals the batch before it");
                batch_frames.push(Vec::new());
            }
            batch_frames.last_mut().expect("open").push(f);
            if sealed.len() == usize::from(before) + 1 {
                batch_frames.push(Vec::new());
            }
        }
        for (i, bf) in batch_frames.iter().filter(|b| !b.is_empty()).enumerate() {
            let span = |fr: &[&Frame], t: u16| {
                let d: Vec<i64> = fr.iter().filter(|f| f.track == t).map(|f| f.dts).collect();
                d.last().zip(d.first()).map_or(0, |(l, f)| l - f)
            };
            let (all, but_last) = (&bf[..], &bf[..bf.len() - 1]);
            for t in 0..2 {
                assert!(span(but_last, t) < BATCH_SPAN, "batch {i} went on past 1 s");
            }
            let spans_full = (0..2).any(|t| span(all, t) >= BATCH_SPAN);
            let next_is_start = batch_frames
                .iter()
                .filter(|b| !b.is_empty())
                .nth(i + 1)
                .is_none_or(|n| n[0].keyframe && n[0].track == 0);
            assert!(spans_full || next_is_start, "batch {i} ended early");
            assert!(
                bf.iter().skip(1).all(|f| !(f.keyframe && f.track == 0)),
                "batch {i}: a keyframe inside"
            );
        }
    }

    /// A new viewer gets the batches since the last start point; an
    /// interrupt flushes the open batch to viewers but empties the cache.
    #[test]
    fn gop_cache_holds_batches_since_the_last_start() {
        let out = output();
        out.on_tracks(&av());
        let mut rx = out.live.subscribe();
        // 7 s: GOPs of 4 s, the second one 3 s long so far.
        let sent: Vec<LiveChunk> = feed(&out, &mut rx, &frames(7, 100, 500))
            .into_iter()
            .flatten()
            .collect();
        let (_rx, gop) = out.subscribe();
        let last_start = sent.iter().rposition(|c| c.start).expect("a start");
        assert!(last_start > 0, "two GOPs");
        let expected: Vec<u64> = sent[last_start..].iter().map(|c| c.idx).collect();
        assert_eq!(gop.iter().map(|c| c.idx).collect::<Vec<_>>(), expected);
        assert!(gop[0].start && gop[1..].iter().all(|c| !c.start));
        assert!(expected.len() >= 2, "the GOP spans several batches");

        // One more frame: the open batch (from ~6 s) spans less than 1 s.
        // The interrupt sends it, then a new viewer finds no GOP to start
        // with.
        out.on_frame(&video(175, false, 500));
        assert!(rx.try_recv().is_err(), "the batch is still open");
        out.on_interrupt();
        let tail = rx.try_recv().expect("flushed");
        assert!(!tail.start);
        assert_eq!(tail.idx, sent.last().expect("batches").idx + 1);
        assert!(out.subscribe().1.is_empty(), "no stale GOP for new viewers");
    }

    #[test]
    fn a_track_change_flushes_the_old_muxer() {
        let out = output();
        out.on_tracks(&av());
        let mut rx = out.live.subscribe();
        out.on_frame(&video(0, true, 100));
        assert!(rx.try_recv().is_err());
        out.on_tracks(&Arc::from(vec![track(0, Codec::H264)]));
        let c = rx.try_recv().expect("flushed by the track change");
        assert!(c.start);
        // The same tracks again change nothing.
        out.on_frame(&video(1, false, 100));
        out.on_tracks(&Arc::from(vec![track(0, Codec::H264)]));
        assert!(rx.try_recv().is_err());
    }

    /// Audio-only: tables every half second are start points.
    #[test]
    fn audio_only_starts_every_half_second() {
        let out = output();
        out.on_tracks(&Arc::from(vec![track(0, Codec::Aac)]));
        let mut rx = out.live.subscribe();
        let fs: Vec<Frame> = (0..100).map(|n| Frame { track: 0, ..audio(n) }).collect();
        let mut batches: Vec<LiveChunk> = feed(&out, &mut rx, &fs).into_iter().flatten().collect();
        out.on_interrupt();
        batches.extend(rx.try_recv());
        // 100 frames = 2.13 s: starts at frames 0, 24, 48, 72 and 96
        // (every 0.5 s or the first frame after).
        assert_eq!(batches.iter().filter(|c| c.start).count(), 5);
        for c in &batches {
            assert_eq!(pid(&c.data) == 0, c.start);
        }
    }

    /// A stream with the HTTP-TS output, and that output.
    fn stream() -> Arc<Stream> {
        let spec = StreamSpec::configured(StreamConfig::new("t", Vec::new()));
        Stream::new(spec, crate::metrics::Metrics::new().stream("t"), &[build])
    }

    fn http_ts(s: &Stream) -> &HttpTs {
        s.outputs
            .iter()
            .find_map(|o| o.as_any().downcast_ref::<HttpTs>())
            .expect("http-ts output")
    }

    fn viewer(s: &Arc<Stream>, idle: Duration) -> ViewerBody {
        let (rx, gop) = http_ts(s).subscribe();
        ViewerBody::new(s.clone(), None, s.hold(), rx, gop, idle)
    }

    /// Counts wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Polls `body` once: Some(Some(data)), Some(None) at the end, None pending.
    fn poll_once(body: &mut ViewerBody, cx: &mut Context<'_>) -> Option<Option<Bytes>> {
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => Some(Some(f.into_data().unwrap_or_default())),
            Poll::Ready(None) => Some(None),
            Poll::Ready(Some(Err(e))) => match e {},
            Poll::Pending => None,
        }
    }

    /// A new viewer's GOP comes out at most [`BURST_BYTES`] (and one batch)
    /// per task poll; the rest after the task was polled again.
    #[tokio::test]
    async fn a_backlog_yields_after_the_burst_budget() {
        let s = stream();
        let out = http_ts(&s);
        out.on_tracks(&av());
        // One 6 s GOP of 40 KB frames: ~5 MB cached, in batches of ~1 MB.
        for f in frames(6, 150, 40_000) {
            out.on_frame(&f);
        }
        let gop_bytes: usize = out.subscribe().1.iter().map(|c| c.data.len()).sum();
        assert!(gop_bytes > 3 * BURST_BYTES, "{gop_bytes}");
        let mut body = viewer(&s, Duration::from_secs(60));
        let mut got = 0;
        let mut rounds = 0;
        loop {
            let round = std::future::poll_fn(|cx| {
                let mut n = 0;
                loop {
                    match poll_once(&mut body, cx) {
                        Some(Some(data)) => n += data.len(),
                        Some(None) => panic!("ended"),
                        None => break,
                    }
                }
                // Polled again within the same task poll: still nothing.
                assert!(poll_once(&mut body, cx).is_none(), "the yield holds for this task poll");
                Poll::Ready(n)
            })
            .await;
            assert!(
                round <= BURST_BYTES + BATCH_MAX_BYTES + 200_000,
                "{round} bytes in one task poll"
            );
            got += round;
            rounds += 1;
            if got >= gop_bytes {
                break;
            }
            assert!(round > 0 && rounds < 100, "no progress");
            tokio::task::yield_now().await;
        }
        assert_eq!(got, gop_bytes, "the GOP, whole");
        assert!(rounds >= 2, "{rounds} task polls");
    }

    /// A viewer that falls behind the broadcast is skipped to the next start
    /// point (counted), and dropped after [`MAX_LAGS`] skips (counted).
    #[tokio::test]
    async fn a_lagging_viewer_is_skipped_then_dropped() {
        let s = stream();
        let out = http_ts(&s);
        out.on_tracks(&av());
        let mut body = viewer(&s, Duration::from_secs(60));
        let waker = Waker::from(Arc::new(Count::default()));
        let mut cx = Context::from_waker(&waker);
        let mut n = 0;
        for lag in 1..=MAX_LAGS + 1 {
            // More than the broadcast holds, unread: one batch per 1 s GOP.
            let before = out.next_idx.load(Ordering::Relaxed);
            while out.next_idx.load(Ordering::Relaxed) < before + LIVE_CAPACITY as u64 + 20 {
                let f = &frames(1, 25, 100);
                // Keep the timestamps rising from run to run.
                for f in f {
                    let shift = n * CLOCK_HZ;
                    out.on_frame(&Frame {
                        dts: f.dts + shift,
                        pts: f.pts + shift,
                        ..f.clone()
                    });
                }
                n += 1;
            }
            // A fresh task budget for each round.
            tokio::task::yield_now().await;
            let first = poll_once(&mut body, &mut cx);
            if lag > MAX_LAGS {
                assert_eq!(first, Some(None), "dropped");
                assert_eq!(s.metrics.slow_dropped.get(), 1);
                break;
            }
            let data = first.flatten().expect("skipped, then served");
            assert_eq!(pid(&data), 0, "from a start point");
            assert_eq!(s.metrics.slow_skipped.get(), u64::from(lag));
            assert_eq!(s.metrics.slow_dropped.get(), 0);
            while let Some(Some(_)) = poll_once(&mut body, &mut cx) {}
        }
    }

    /// A waiting viewer ends when the stream closes, and when no batch came
    /// for its idle period.
    #[tokio::test]
    async fn closing_and_idleness_end_a_waiting_viewer() {
        let s = stream();
        http_ts(&s).on_tracks(&av());
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut body = viewer(&s, Duration::from_secs(60));
        assert_eq!(poll_once(&mut body, &mut cx), None, "waits for a start");
        s.closing.cancel();
        assert_eq!(count.0.load(Ordering::Relaxed), 1, "the closing woke the task");
        assert_eq!(poll_once(&mut body, &mut cx), Some(None));

        let s = stream();
        http_ts(&s).on_tracks(&av());
        let mut body = viewer(&s, Duration::from_millis(30));
        let end = tokio::time::timeout(
            Duration::from_secs(5),
            std::future::poll_fn(|cx| match poll_once(&mut body, cx) {
                Some(r) => Poll::Ready(r),
                None => Poll::Pending,
            }),
        )
        .await;
        assert_eq!(end, Ok(None), "ended by the idle timer");
    }
}

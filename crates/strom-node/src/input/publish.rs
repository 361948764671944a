//! `publish://` input: an encoder pushes the stream to strom, by HTTP
//! PUT/POST of MPEG-TS to `/NAME/publish`, by RTMP or by SRT.
//!
//! The input task owns a channel whose sender sits in the stream's
//! [`PublishSlot`]; a publisher's handler ([`accept`] for HTTP,
//! [`accept_source`] for any protocol) takes it, so there is one publisher
//! at a time, and feeds [`PublishChunk`]s into it: MPEG-TS bytes (HTTP,
//! SRT) that this task demuxes, or frames a protocol already demuxed
//! (RTMP). When the publisher goes away the task puts a fresh sender back
//! for the next one.
//!
//! Takeover: a new (authorized) publisher that finds the slot held by one
//! that has sent nothing for [`TAKEOVER_STALL`] cuts the stalled one off
//! and takes its place at once, so an encoder that reconnects after a
//! network failure is not told "already publishing" until the dead
//! connection times out. A publisher that finds the slot held by one that
//! is still sending is refused ([`PublishError::Busy`]).

use super::{Feeder, InputCtx};
use axum::body::Body;
use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strom_media::ts::demux::DemuxEvent;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Chunks buffered between a publisher's handler and the demuxer.
const PUBLISH_QUEUE: usize = 64;
/// A publisher that sent no bytes for this long may be replaced.
pub const TAKEOVER_STALL: Duration = Duration::from_secs(1);
/// How long a publisher that took over waits for the slot to free up.
const TAKEOVER_WAIT: Duration = Duration::from_secs(3);
/// How long a publisher waits for the input to hand out the slot again
/// when no one holds it (the previous publisher has just left).
const SLOT_GRACE: Duration = Duration::from_secs(1);

/// What a publisher hands the `publish://` input.
#[derive(Debug)]
pub enum PublishChunk {
    /// MPEG-TS bytes, demuxed by the input (HTTP and SRT publishers).
    Ts(Bytes),
    /// Tracks and frames with raw 33-bit timestamps, demuxed by the
    /// protocol (RTMP), and the protocol bytes they came from (counted as
    /// input bytes).
    Events(Vec<DemuxEvent>, usize),
}

/// Where a running `publish://` input waits for its publisher.
#[derive(Debug)]
pub struct PublishSlot {
    tx: Mutex<Option<mpsc::Sender<PublishChunk>>>,
    /// When the input last demuxed a frame, ms since `epoch`: a publisher
    /// that trickles bytes but no media is silent.
    last_frame_ms: AtomicU64,
    /// When the current publisher last sent bytes, ms since `epoch`.
    last_data_ms: AtomicU64,
    /// The current publisher: its number and the signal that cuts it off.
    holder: Mutex<Option<(u64, CancellationToken)>>,
    next_holder: AtomicU64,
    epoch: Instant,
}

impl Default for PublishSlot {
    fn default() -> Self {
        PublishSlot {
            tx: Mutex::new(None),
            last_frame_ms: AtomicU64::new(0),
            last_data_ms: AtomicU64::new(0),
            holder: Mutex::new(None),
            next_holder: AtomicU64::new(1),
            epoch: Instant::now(),
        }
    }
}

impl PublishSlot {
    fn put(&self, tx: Option<mpsc::Sender<PublishChunk>>) {
        *self.tx.lock().unwrap_or_else(|e| e.into_inner()) = tx;
    }

    /// Takes the sender, if no publisher holds it.
    pub fn take(&self) -> Option<mpsc::Sender<PublishChunk>> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn saw_frame(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_frame_ms.store(ms.max(1), Ordering::Relaxed);
    }

    fn saw_data(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_data_ms.store(ms.max(1), Ordering::Relaxed);
    }

    /// Cuts off the current publisher if it has sent nothing for `stall`;
    /// true if it did.
    fn cut_stalled(&self, stall: Duration) -> bool {
        let last = Duration::from_millis(self.last_data_ms.load(Ordering::Relaxed));
        if self.epoch.elapsed().saturating_sub(last) < stall {
            return false;
        }
        match self.holder.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some((_, cut)) => {
                cut.cancel();
                true
            }
            None => false,
        }
    }

    /// True while a publisher holds the slot and has sent within
    /// [`TAKEOVER_STALL`]: a new publisher would be refused as busy.
    pub fn busy(&self) -> bool {
        let last = Duration::from_millis(self.last_data_ms.load(Ordering::Relaxed));
        self.held() && self.epoch.elapsed().saturating_sub(last) < TAKEOVER_STALL
    }

    /// True while a publisher holds the slot.
    fn held(&self) -> bool {
        self.holder.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Time since the input last demuxed a frame (None: never).
    fn since_frame(&self) -> Option<Duration> {
        match self.last_frame_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.epoch.elapsed().saturating_sub(Duration::from_millis(ms))),
        }
    }
}

/// Runs until cancelled.
pub async fn run(program: Option<u16>, ctx: InputCtx) {
    let Some(slot) = ctx.publish.clone() else {
        tracing::error!(stream = %ctx.stream, "publish input without a publish slot");
        return;
    };
    loop {
        let (tx, mut rx) = mpsc::channel::<PublishChunk>(PUBLISH_QUEUE);
        slot.put(Some(tx));
        let mut feeder = Feeder::new(program);
        let mut pacer = Pacer::default();
        let mut connected = false;
        loop {
            let chunk = tokio::select! {
                _ = ctx.cancel.cancelled() => {
                    slot.put(None);
                    return;
                }
                c = rx.recv() => c,
            };
            let Some(chunk) = chunk else { break };
            if !connected {
                connected = true;
                tracing::info!(stream = %ctx.stream, input = ctx.index(), "publisher connected");
                ctx.state(true, "publisher connected").await;
            }
            let (events, error) = match chunk {
                PublishChunk::Ts(bytes) => {
                    let fed = feeder.feed(&ctx, &bytes);
                    (fed.events, fed.error)
                }
                PublishChunk::Events(events, bytes) => {
                    ctx.metrics.input_bytes.inc_by(bytes as u64);
                    (events, None)
                }
            };
            let newest = events
                .iter()
                .filter_map(|e| match e {
                    DemuxEvent::Frame(f) => Some(f.dts),
                    DemuxEvent::Tracks(_) => None,
                })
                .next_back();
            if let Some(dts) = newest {
                slot.saw_frame();
                // A publisher ahead of real time waits here; the queue
                // behind fills and its connection stops being read.
                let wait = pacer.delay(dts, Instant::now());
                if !wait.is_zero() && !ctx.sleep(wait).await {
                    slot.put(None);
                    return;
                }
            }
            let sent = ctx.send_fed(super::Fed { events, error }).await;
            if !sent {
                return;
            }
        }
        let rest = feeder.finish(&ctx);
        if !ctx.send_fed(rest).await {
            return;
        }
        if connected {
            tracing::info!(stream = %ctx.stream, input = ctx.index(), "publisher disconnected");
            ctx.state(false, "publisher disconnected").await;
        }
    }
}

/// How far ahead of real time a publisher may send media before it is
/// held back.
pub const PACE_LEAD: Duration = Duration::from_secs(3);
/// A timestamp step larger than this (either way) starts pacing afresh.
const PACE_JUMP: i64 = 10 * strom_media::CLOCK_HZ;

/// Holds a publisher to real time: media timestamps may run at most
/// [`PACE_LEAD`] ahead of the wall-clock time since the publisher started
/// (or since its timestamps last jumped). A publisher that sends faster (an
/// encoder without `-re`, a backlog burst, a flood) is slowed to real time
/// instead of pushing the stream's timeline into the future. Pure: takes
/// `now`; timestamps are raw 33-bit 90 kHz values, unwrapped here.
#[derive(Debug, Default)]
pub struct Pacer {
    /// Newest raw DTS seen.
    newest: Option<i64>,
    /// Media time since the origin, 90 kHz ticks.
    media: i64,
    /// When media time 0 was (or is taken to have been) sent.
    origin: Option<Instant>,
}

impl Pacer {
    /// How long to wait before passing on a frame with raw DTS `dts`.
    pub fn delay(&mut self, dts: i64, now: Instant) -> Duration {
        let (Some(newest), Some(origin)) = (self.newest, self.origin) else {
            return self.restart(dts, now);
        };
        let step = strom_media::ts::wrap_delta(newest, dts);
        if step.abs() > PACE_JUMP {
            return self.restart(dts, now);
        }
        if step > 0 {
            self.media += step;
            self.newest = Some(dts);
        }
        let media = Duration::from_micros((self.media.max(0) as u64).saturating_mul(100) / 9);
        let wall = now.saturating_duration_since(origin);
        if media > wall + PACE_LEAD {
            return media - wall - PACE_LEAD;
        }
        // A publisher that fell more than the lead behind (a stall) is
        // taken as in step again: it earns no credit for a later burst.
        if wall > media + PACE_LEAD {
            self.origin = Some(now.checked_sub(media).unwrap_or(origin));
        }
        Duration::ZERO
    }

    fn restart(&mut self, dts: i64, now: Instant) -> Duration {
        self.newest = Some(dts);
        self.media = 0;
        self.origin = Some(now);
        Duration::ZERO
    }
}

/// Why a publisher was turned away or cut off.
#[derive(Debug, PartialEq, Eq)]
pub enum PublishError {
    /// Another publisher holds the stream: 409.
    Busy,
    /// The publisher sent nothing for `idle`: 408.
    Silent,
    /// The stream's input stopped meanwhile: 503.
    InputStopped,
    /// A new publisher took over after this one stalled.
    Replaced,
    /// The request body could not be read (bad chunked encoding) before any byte: 400.
    BadBody,
}

impl PublishError {
    /// Words for logs: `busy`, `silent`, `input stopped`, `replaced by a
    /// new publisher`, `unreadable body`.
    pub fn describe(&self) -> &'static str {
        match self {
            PublishError::Busy => "busy",
            PublishError::Silent => "silent",
            PublishError::InputStopped => "input stopped",
            PublishError::Replaced => "replaced by a new publisher",
            PublishError::BadBody => "unreadable body",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            PublishError::Busy | PublishError::Replaced => StatusCode::CONFLICT,
            PublishError::Silent => StatusCode::REQUEST_TIMEOUT,
            PublishError::InputStopped => StatusCode::SERVICE_UNAVAILABLE,
            PublishError::BadBody => StatusCode::BAD_REQUEST,
        }
    }
}

/// Feeds one HTTP publisher's request body into the slot's input; see
/// [`accept_source`]. A body that is broken before its first byte is
/// [`PublishError::BadBody`].
pub async fn accept(
    slot: &Arc<PublishSlot>,
    stream: &str,
    body: Body,
    idle: Duration,
    wait: Duration,
) -> Result<usize, PublishError> {
    let chunks = body.into_data_stream().map(|r| r.map(PublishChunk::Ts));
    accept_source(slot, stream, chunks, idle, wait).await
}

/// Feeds one publisher's chunks into the slot's input: [`claim`], then
/// [`Claim::feed`]. Returns the bytes received.
pub async fn accept_source<S, E>(
    slot: &Arc<PublishSlot>,
    stream: &str,
    source: S,
    idle: Duration,
    wait: Duration,
) -> Result<usize, PublishError>
where
    S: futures_util::Stream<Item = Result<PublishChunk, E>> + Unpin,
{
    claim(slot, wait, stream).await?.feed(source, idle).await
}

/// The right to feed a stream's `publish://` input, held by one publisher;
/// given back when dropped.
pub struct Claim {
    slot: Arc<PublishSlot>,
    tx: mpsc::Sender<PublishChunk>,
    me: u64,
    cut: CancellationToken,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut h = self.slot.holder.lock().unwrap_or_else(|e| e.into_inner());
        if h.as_ref().is_some_and(|(id, _)| *id == self.me) {
            *h = None;
        }
    }
}

/// Takes the slot for a new publisher. `wait` is how long to wait for the
/// input to put its sender in the slot (an on-demand stream woken by this
/// very publisher); at least [`SLOT_GRACE`] is waited when no publisher
/// holds the slot (the previous one has just left). A publisher holding
/// the slot without sending for [`TAKEOVER_STALL`] is cut off and replaced;
/// one that is still sending makes this one [`PublishError::Busy`] at once.
pub async fn claim(slot: &Arc<PublishSlot>, wait: Duration, stream: &str) -> Result<Claim, PublishError> {
    let mut deadline = tokio::time::Instant::now() + wait.max(SLOT_GRACE);
    let mut took_over = false;
    let tx = loop {
        if let Some(tx) = slot.take() {
            break tx;
        }
        if !took_over {
            if slot.cut_stalled(TAKEOVER_STALL) {
                took_over = true;
                deadline = deadline.max(tokio::time::Instant::now() + TAKEOVER_WAIT);
            } else if slot.held() {
                return Err(PublishError::Busy);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(PublishError::Busy);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if took_over {
        tracing::info!(stream, "publisher took over from a stalled one");
    }
    let me = slot.next_holder.fetch_add(1, Ordering::Relaxed);
    let cut = CancellationToken::new();
    *slot.holder.lock().unwrap_or_else(|e| e.into_inner()) = Some((me, cut.clone()));
    slot.saw_data();
    Ok(Claim {
        slot: slot.clone(),
        tx,
        me,
        cut,
    })
}

impl Claim {
    /// Feeds `source` until it ends (`Ok` with the bytes received), goes
    /// silent: no chunk for `idle`, or, after a grace of `idle`, no media
    /// frame for `idle` (so dripping bytes cannot hold the slot), or a newer
    /// publisher takes over. The source's first error ends the session
    /// (before any byte: [`PublishError::BadBody`]).
    pub async fn feed<S, E>(self, source: S, idle: Duration) -> Result<usize, PublishError>
    where
        S: futures_util::Stream<Item = Result<PublishChunk, E>> + Unpin,
    {
        feed(&self.slot, self.tx.clone(), source, idle, &self.cut).await
    }
}

async fn feed<S, E>(
    slot: &PublishSlot,
    tx: mpsc::Sender<PublishChunk>,
    mut source: S,
    idle: Duration,
    cut: &CancellationToken,
) -> Result<usize, PublishError>
where
    S: futures_util::Stream<Item = Result<PublishChunk, E>> + Unpin,
{
    let mut total = 0usize;
    let started = Instant::now();
    loop {
        let frames_stalled = started.elapsed() > idle && slot.since_frame().is_none_or(|d| d > idle);
        if frames_stalled {
            return Err(PublishError::Silent);
        }
        let next = tokio::select! {
            _ = cut.cancelled() => return Err(PublishError::Replaced),
            n = tokio::time::timeout(idle, source.next()) => n,
        };
        match next {
            Err(_) => return Err(PublishError::Silent),
            Ok(None) => return Ok(total),
            // A publisher that goes away mid-stream ends its session; one
            // that is broken from the start is a bad request.
            Ok(Some(Err(_))) if total == 0 => return Err(PublishError::BadBody),
            Ok(Some(Err(_))) => return Ok(total),
            Ok(Some(Ok(chunk))) => {
                slot.saw_data();
                total += match &chunk {
                    PublishChunk::Ts(b) => b.len(),
                    PublishChunk::Events(_, n) => *n,
                };
                if tx.send(chunk).await.is_err() {
                    return Err(PublishError::InputStopped);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 90;

    #[test]
    fn real_time_passes_and_a_burst_waits_past_the_lead() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        // Real time: 40 ms frames sent every 40 ms never wait.
        for i in 0..100 {
            let at = t0 + Duration::from_millis(40 * i as u64);
            assert_eq!(p.delay(i * 40 * MS, at), Duration::ZERO);
        }
        // Everything at once: free up to the lead, then held to real time.
        let mut p = Pacer::default();
        assert_eq!(p.delay(0, t0), Duration::ZERO);
        assert_eq!(p.delay(3000 * MS, t0), Duration::ZERO);
        assert_eq!(p.delay(5000 * MS, t0), Duration::from_secs(2));
        assert_eq!(p.delay(5000 * MS, t0 + Duration::from_secs(2)), Duration::ZERO);
    }

    #[test]
    fn a_stall_earns_no_credit_and_jumps_restart() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        assert_eq!(p.delay(0, t0), Duration::ZERO);
        // 20 s of silence, then a burst of 9 s of media in no time.
        let later = t0 + Duration::from_secs(20);
        assert_eq!(p.delay(1000 * MS, later), Duration::ZERO);
        assert_eq!(p.delay(9000 * MS, later), Duration::from_secs(5));
        // A jump of a minute starts afresh.
        let mut p = Pacer::default();
        assert_eq!(p.delay(0, t0), Duration::ZERO);
        assert_eq!(p.delay(60_000 * MS, t0), Duration::ZERO);
        assert_eq!(p.delay(65_000 * MS, t0), Duration::from_secs(2));
    }

    #[test]
    fn the_33_bit_wrap_is_a_small_step() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        let wrap = strom_media::ts::TS_WRAP;
        assert_eq!(p.delay(wrap - 1000 * MS, t0), Duration::ZERO);
        assert_eq!(p.delay(4000 * MS, t0), Duration::from_secs(2));
    }
}

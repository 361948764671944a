//! `publish://` input: a client pushes MPEG-TS by HTTP PUT/POST to
//! `/NAME/publish`.
//!
//! The input task owns a channel whose sender sits in the stream's
//! [`PublishSlot`]; the HTTP handler ([`accept`]) takes it, so there is one
//! publisher at a time, and feeds the request body into it. When the
//! publisher goes away the task puts a fresh sender back for the next one.
//!
//! Takeover: a new (authorized) publisher that finds the slot held by one
//! that has sent nothing for [`TAKEOVER_STALL`] cuts the stalled one off
//! and takes its place, so an encoder that reconnects after a network
//! failure is not told "already publishing" until the dead connection
//! times out.

use super::{Feeder, InputCtx};
use axum::body::Body;
use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Chunks buffered between the HTTP handler and the demuxer.
const PUBLISH_QUEUE: usize = 64;
/// A publisher that sent no bytes for this long may be replaced.
pub const TAKEOVER_STALL: Duration = Duration::from_secs(2);
/// How long a publisher that took over waits for the slot to free up.
const TAKEOVER_WAIT: Duration = Duration::from_secs(3);

/// Where a running `publish://` input waits for its publisher.
#[derive(Debug)]
pub struct PublishSlot {
    tx: Mutex<Option<mpsc::Sender<Bytes>>>,
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
    fn put(&self, tx: Option<mpsc::Sender<Bytes>>) {
        *self.tx.lock().unwrap_or_else(|e| e.into_inner()) = tx;
    }

    /// Takes the sender, if no publisher holds it.
    pub fn take(&self) -> Option<mpsc::Sender<Bytes>> {
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
        let (tx, mut rx) = mpsc::channel::<Bytes>(PUBLISH_QUEUE);
        slot.put(Some(tx));
        let mut feeder = Feeder::new(program);
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
            let fed = feeder.feed(&ctx, &chunk);
            if fed
                .events
                .iter()
                .any(|e| matches!(e, strom_media::ts::demux::DemuxEvent::Frame(_)))
            {
                slot.saw_frame();
            }
            if !ctx.send_fed(fed).await {
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
    pub fn status(&self) -> StatusCode {
        match self {
            PublishError::Busy | PublishError::Replaced => StatusCode::CONFLICT,
            PublishError::Silent => StatusCode::REQUEST_TIMEOUT,
            PublishError::InputStopped => StatusCode::SERVICE_UNAVAILABLE,
            PublishError::BadBody => StatusCode::BAD_REQUEST,
        }
    }
}

/// Feeds one publisher's request body into the slot's input. `wait` is how
/// long to wait for the input to put its sender in the slot (an on-demand
/// stream woken by this very request). A publisher is silent, and cut, when
/// it sends no bytes for `idle`, or, after a grace of `idle`, no media
/// frame for `idle` (so dripping bytes cannot hold the slot). A publisher
/// holding the slot without sending for [`TAKEOVER_STALL`] is cut off and
/// replaced. Returns the bytes received.
pub async fn accept(slot: &PublishSlot, body: Body, idle: Duration, wait: Duration) -> Result<usize, PublishError> {
    let mut deadline = tokio::time::Instant::now() + wait;
    let mut took_over = false;
    let tx = loop {
        if let Some(tx) = slot.take() {
            break tx;
        }
        if !took_over && slot.cut_stalled(TAKEOVER_STALL) {
            took_over = true;
            deadline = deadline.max(tokio::time::Instant::now() + TAKEOVER_WAIT);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(PublishError::Busy);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if took_over {
        tracing::info!("publisher took over from a stalled one");
    }
    let me = slot.next_holder.fetch_add(1, Ordering::Relaxed);
    let cut = CancellationToken::new();
    *slot.holder.lock().unwrap_or_else(|e| e.into_inner()) = Some((me, cut.clone()));
    slot.saw_data();
    let r = feed(slot, tx, body, idle, &cut).await;
    let mut h = slot.holder.lock().unwrap_or_else(|e| e.into_inner());
    if h.as_ref().is_some_and(|(id, _)| *id == me) {
        *h = None;
    }
    r
}

async fn feed(
    slot: &PublishSlot,
    tx: mpsc::Sender<Bytes>,
    body: Body,
    idle: Duration,
    cut: &CancellationToken,
) -> Result<usize, PublishError> {
    let mut body = body.into_data_stream();
    let mut total = 0usize;
    let started = Instant::now();
    loop {
        let frames_stalled = started.elapsed() > idle && slot.since_frame().is_none_or(|d| d > idle);
        if frames_stalled {
            return Err(PublishError::Silent);
        }
        let next = tokio::select! {
            _ = cut.cancelled() => return Err(PublishError::Replaced),
            n = tokio::time::timeout(idle, body.next()) => n,
        };
        match next {
            Err(_) => return Err(PublishError::Silent),
            Ok(None) => return Ok(total),
            // A publisher that goes away mid-body ends its session; a body
            // that is broken from the start is a bad request.
            Ok(Some(Err(_))) if total == 0 => return Err(PublishError::BadBody),
            Ok(Some(Err(_))) => return Ok(total),
            Ok(Some(Ok(chunk))) => {
                slot.saw_data();
                total += chunk.len();
                if tx.send(chunk).await.is_err() {
                    return Err(PublishError::InputStopped);
                }
            }
        }
    }
}

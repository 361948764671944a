//! Continuous HTTP MPEG-TS output (`/NAME/mpegts`).
//!
//! Each frame is muxed once into a chunk and handed to a bounded broadcast;
//! the chunks since the last start point (PAT/PMT followed by a video
//! keyframe; for audio-only streams, tables every half second) are cached so
//! a new viewer starts at once, at a keyframe, with the tables first.
//!
//! A viewer that falls behind the broadcast is skipped to the next start
//! point and counted; after [`MAX_LAGS`] such skips it is dropped. The
//! stream never waits on a viewer: memory per stream is bounded by the
//! broadcast capacity and [`GOP_CACHE_MAX_BYTES`].

use super::{Output, OutputCtx};
use crate::access::Ticket;
use crate::http::reply::{self, MP2T};
use crate::http::request::{PlayRequest, Resource};
use crate::stream::{DemandGuard, Stream};
use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strom_media::ts::mux::TsMuxer;
use strom_media::{Frame, Track, TrackKind, CLOCK_HZ};
use tokio::sync::broadcast::{self, error::RecvError};

/// Live chunks buffered per stream (about 7 s at 25 fps plus audio).
pub const LIVE_CAPACITY: usize = 512;
/// A GOP bigger than this is not cached; new viewers wait for the next keyframe.
pub const GOP_CACHE_MAX_BYTES: usize = 32 << 20;
/// Times a viewer may fall behind (and be skipped to a keyframe) before it is dropped.
pub const MAX_LAGS: u32 = 8;

/// One muxed frame of the continuous output.
#[derive(Clone, Debug)]
pub struct LiveChunk {
    /// Position in the stream's chunk sequence; consecutive.
    pub idx: u64,
    /// A viewer may start here: PAT/PMT followed by a keyframe.
    pub start: bool,
    pub data: Bytes,
}

struct Muxing {
    mux: Option<TsMuxer>,
    buf: BytesMut,
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
    Arc::new(HttpTs {
        muxing: Mutex::new(Muxing {
            mux: None,
            buf: BytesMut::with_capacity(256 << 10),
            tracks: Arc::from(Vec::new()),
            has_video: false,
            last_tables_dts: None,
        }),
        gop: Mutex::new(Gop::default()),
        next_idx: AtomicU64::new(0),
        live: broadcast::channel(LIVE_CAPACITY).0,
        source_timeout: ctx.cfg.source_timeout,
    })
}

impl HttpTs {
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

    /// A new viewer: the receiver (subscribed first, so no chunk is missed)
    /// and the chunks of the current GOP to send before it.
    fn subscribe(&self) -> (broadcast::Receiver<LiveChunk>, Vec<LiveChunk>) {
        let rx = self.live.subscribe();
        let gop = self.gop.lock().unwrap_or_else(|e| e.into_inner()).chunks.clone();
        (rx, gop)
    }

    async fn serve_live(self: Arc<Self>, stream: Arc<Stream>, ticket: Option<Ticket>, head: bool) -> Response {
        let headers = [(header::CONTENT_TYPE, MP2T), (header::CACHE_CONTROL, "no-cache")];
        if head {
            // A probe: never wakes or waits for the stream.
            return if stream.live(Instant::now()) {
                headers.into_response()
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
        let state = Viewer {
            ticket,
            stream: stream.clone(),
            rx,
            need_start: gop.is_empty(),
            backlog: gop.into(),
            last_idx: None,
            lags: 0,
            idle: self.source_timeout.max(Duration::from_secs(5)) * 3,
            _demand: guard,
        };
        let body = futures_util::stream::unfold(state, |mut s| async move {
            let data = s.next().await?;
            s.stream.metrics.bytes_out.inc_by(data.len() as u64);
            if let Some(c) = s.ticket.as_ref().and_then(|t| t.conn.as_ref()) {
                c.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            Some((Ok::<_, std::convert::Infallible>(data), s))
        });
        (headers, Body::from_stream(body)).into_response()
    }
}

/// One HTTP-TS viewer's position in the broadcast.
struct Viewer {
    /// The viewer's session: ends when the viewer does, and closes the
    /// connection when it ends first (denied, kicked, over a user cap).
    ticket: Option<Ticket>,
    stream: Arc<Stream>,
    rx: broadcast::Receiver<LiveChunk>,
    backlog: std::collections::VecDeque<LiveChunk>,
    last_idx: Option<u64>,
    need_start: bool,
    lags: u32,
    idle: Duration,
    _demand: DemandGuard,
}

impl Viewer {
    /// The next bytes to send; None ends the response.
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(c) = self.backlog.pop_front() {
            self.last_idx = Some(c.idx);
            return Some(c.data);
        }
        let closed = self
            .ticket
            .as_ref()
            .and_then(|t| t.conn.as_ref())
            .map(|c| c.closed.clone())
            .unwrap_or_default();
        if closed.is_cancelled() {
            return None;
        }
        loop {
            let r = tokio::select! {
                _ = self.stream.closing.cancelled() => return None,
                _ = closed.cancelled() => return None,
                r = tokio::time::timeout(self.idle, self.rx.recv()) => r,
            };
            match r {
                Err(_) => return None, // the stream stopped delivering
                Ok(Ok(c)) => {
                    if self.last_idx.is_some_and(|l| c.idx <= l) || (self.need_start && !c.start) {
                        continue;
                    }
                    self.need_start = false;
                    self.last_idx = Some(c.idx);
                    return Some(c.data);
                }
                Ok(Err(RecvError::Lagged(_))) => {
                    self.lags += 1;
                    if self.lags > MAX_LAGS {
                        self.stream.metrics.slow_dropped.inc();
                        tracing::info!(stream = %self.stream.name, "http-ts viewer too slow: dropped");
                        return None;
                    }
                    self.stream.metrics.slow_skipped.inc();
                    self.need_start = true;
                }
                Ok(Err(RecvError::Closed)) => return None,
            }
        }
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
        if start && !m.has_video {
            mux.write_tables(&mut m.buf);
            m.last_tables_dts = Some(frame.dts);
        }
        mux.write_frame(frame, &mut m.buf);
        let data = m.buf.split().freeze();
        drop(guard);
        self.push(start, data);
    }

    fn on_interrupt(&self) {
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

//! Inputs: tasks that read MPEG-TS from somewhere, demux it and hand frames to
//! the stream's supervisor.
//!
//! Every input runs as its own task with its own demuxer, so a broken input
//! never corrupts another one's state. Inputs retry on their own (capped
//! exponential backoff) until cancelled; the supervisor only decides whose
//! frames reach the output. Demux errors are counted per stream and kind.

pub mod file;
pub mod http;
pub mod publish;
pub mod udp;

use crate::hub::StreamHub;
use std::sync::Arc;
use std::time::Duration;
use strom_config::Input;
use strom_media::ts::demux::{DemuxEvent, DemuxStats, Demuxer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What inputs tell the supervisor.
#[derive(Debug)]
pub enum InputEvent {
    /// Demuxed events of input `input`, in order.
    Media { input: usize, events: Vec<DemuxEvent> },
    /// A connection-level change, for logs and the API.
    State { input: usize, up: bool, detail: String },
}

/// Everything an input task needs.
#[derive(Clone)]
pub struct InputCtx {
    pub index: usize,
    pub tx: mpsc::Sender<InputEvent>,
    pub cancel: CancellationToken,
    pub hub: Arc<StreamHub>,
}

impl InputCtx {
    /// Sends events; false when the supervisor is gone.
    async fn send(&self, events: Vec<DemuxEvent>) -> bool {
        if events.is_empty() {
            return true;
        }
        self.tx
            .send(InputEvent::Media {
                input: self.index,
                events,
            })
            .await
            .is_ok()
    }

    async fn state(&self, up: bool, detail: impl Into<String>) {
        let _ = self
            .tx
            .send(InputEvent::State {
                input: self.index,
                up,
                detail: detail.into(),
            })
            .await;
    }

    /// Sleeps for `d` unless cancelled first; false when cancelled.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }
}

/// A demuxer that reports its error counters into the stream's metrics.
pub struct Feeder {
    demux: Demuxer,
    seen: DemuxStats,
}

impl Default for Feeder {
    fn default() -> Self {
        Self::new()
    }
}

impl Feeder {
    pub fn new() -> Self {
        Feeder {
            demux: Demuxer::new(),
            seen: DemuxStats::default(),
        }
    }

    /// Demuxes `data` and returns the events it completed.
    pub fn feed(&mut self, hub: &StreamHub, data: &[u8]) -> Vec<DemuxEvent> {
        self.demux.push(data);
        let mut out = Vec::new();
        while let Some(ev) = self.demux.pull() {
            out.push(ev);
        }
        self.account(hub, data.len());
        out
    }

    /// Ends the input: emits what is still buffered.
    pub fn finish(&mut self, hub: &StreamHub) -> Vec<DemuxEvent> {
        self.demux.flush();
        let mut out = Vec::new();
        while let Some(ev) = self.demux.pull() {
            out.push(ev);
        }
        self.account(hub, 0);
        out
    }

    fn account(&mut self, hub: &StreamHub, bytes: usize) {
        let m = &hub.metrics;
        let s = self.demux.stats();
        m.input_bytes.inc_by(bytes as u64);
        m.ts_cc.inc_by(s.cc_errors.saturating_sub(self.seen.cc_errors));
        m.ts_sync.inc_by(s.sync_errors.saturating_sub(self.seen.sync_errors));
        m.ts_pes.inc_by(s.pes_errors.saturating_sub(self.seen.pes_errors));
        m.ts_pmt.inc_by(s.pmt_errors.saturating_sub(self.seen.pmt_errors));
        m.dropped_wait_keyframe
            .inc_by(s.dropped_frames.saturating_sub(self.seen.dropped_frames));
        self.seen = s.clone();
    }
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

/// Starts the task of one input.
pub fn spawn(input: &Input, ctx: InputCtx) -> tokio::task::JoinHandle<()> {
    match input.clone() {
        Input::Udp { addr, iface, source } => tokio::spawn(udp::run(addr, iface, source, ctx)),
        Input::Http { url } => tokio::spawn(http::run(url, ctx)),
        Input::Publish => tokio::spawn(publish::run(ctx)),
        Input::File { path } => tokio::spawn(file::run(file::Origin::Path(path), ctx)),
        Input::Builtin { name } => tokio::spawn(file::run(file::Origin::Builtin(name), ctx)),
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

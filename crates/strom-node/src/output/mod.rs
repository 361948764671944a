//! Outputs: one room each. An output turns the stream's canonical model
//! (tracks, frames on the UTC timeline, finished segments) into one delivery
//! format and serves it.
//!
//! The contract ([`Output`]):
//! - The stream's pipeline calls `on_tracks`, `on_frame`, `on_segment` and
//!   `on_interrupt` from the stream's task. These must never block on a
//!   viewer: an output hands bytes to bounded queues or caches and returns.
//! - An output owns what it derives (muxed bytes, playlists, caches). A
//!   per-segment rendition is attached to the [`StoredSegment`] in the
//!   output's own slot, built once (eagerly or on first request).
//! - Whatever an output writes is a deterministic function of the model, so
//!   the same segment gives the same bytes on every node.
//! - The HTTP gate offers each parsed playback request to the outputs in
//!   registration order; the first whose [`Output::serve`] returns a response
//!   future answers it.
//!
//! Adding an output (fMP4, DASH, a DVR writer, UDP push) is one new module
//! here plus one line in [`REGISTRY`].

pub mod cluster_feed;
pub mod dvr;
pub mod hls;
pub mod http_ts;

use crate::http::request::PlayRequest;
use crate::metrics::StreamMetrics;
use crate::stream::window::StoredSegment;
use crate::stream::Stream;
use axum::response::Response;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Instant;
use strom_config::StreamConfig;
use strom_media::{Frame, Track};

/// What an output gets when it is built for a stream.
#[derive(Clone)]
pub struct OutputCtx {
    pub stream: Arc<str>,
    pub cfg: StreamConfig,
    pub metrics: StreamMetrics,
    /// The output's rendition slot in every [`StoredSegment`] of the stream.
    pub slot: usize,
    /// The stream's archive, when it records (`dvr`).
    pub archive: Option<Arc<crate::dvr::archive::Archive>>,
}

/// Builds an output for one stream.
pub type Factory = fn(&OutputCtx) -> Arc<dyn Output>;

/// Every output a stream gets, in the order the gate offers requests to them.
/// The DVR output comes first: it claims archive URLs and the segments that
/// have left the live window, and nothing else.
pub const REGISTRY: &[Factory] = &[dvr::build, hls::build, http_ts::build, cluster_feed::build];

/// A finished segment, as outputs see it.
pub struct SegmentEvent<'a> {
    pub segment: &'a Arc<StoredSegment>,
    /// The stream's window after the segment was added (read-locked).
    pub window: &'a crate::stream::window::SegmentWindow,
}

/// One output of one stream. See the module docs for the contract.
pub trait Output: Send + Sync + 'static {
    /// Stable short name; also the `proto` label of `strom_stream_clients`.
    fn name(&self) -> &'static str;

    /// The tracks in effect changed (a new PMT, a switch to another input).
    fn on_tracks(&self, _tracks: &Arc<[Track]>) {}

    /// A frame reached the stream's UTC timeline (in decode order).
    fn on_frame(&self, _frame: &Frame) {}

    /// A segment was finished and added to the window.
    fn on_segment(&self, _ev: &SegmentEvent<'_>) {}

    /// The stream stopped delivering (on-demand stop, or every input down):
    /// drop anything that would hand stale media to a new viewer.
    fn on_interrupt(&self) {}

    /// Once a second, from the node's ticker: housekeeping such as dropping
    /// sessions idle at `now`.
    fn tick(&self, _now: Instant) {}

    /// The response to `req` if this output claims its resource.
    fn serve(self: Arc<Self>, _stream: &Arc<Stream>, _req: &PlayRequest) -> Option<BoxFuture<'static, Response>> {
        None
    }

    /// Downcasting, for the few places that need one output's own API
    /// (the cluster feed reads the wire rendition).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// The outputs of one stream, built from factories.
pub struct Outputs {
    list: Vec<Arc<dyn Output>>,
}

impl Outputs {
    /// Builds each factory's output; output `i` gets rendition slot `i`.
    pub fn build(
        factories: &[Factory],
        stream: &Arc<str>,
        cfg: &StreamConfig,
        metrics: &StreamMetrics,
        archive: Option<&Arc<crate::dvr::archive::Archive>>,
    ) -> Self {
        let list = factories
            .iter()
            .enumerate()
            .map(|(slot, f)| {
                f(&OutputCtx {
                    stream: stream.clone(),
                    cfg: cfg.clone(),
                    metrics: metrics.clone(),
                    slot,
                    archive: archive.cloned(),
                })
            })
            .collect();
        Outputs { list }
    }

    /// Number of rendition slots a stored segment needs.
    pub fn slots(&self) -> usize {
        self.list.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Output>> {
        self.list.iter()
    }

    /// The first output of type `T`.
    pub fn find<T: Output>(&self) -> Option<&T> {
        self.list.iter().find_map(|o| o.as_any().downcast_ref::<T>())
    }
}

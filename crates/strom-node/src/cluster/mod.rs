//! Cluster restreaming: a node pulls streams from `source` nodes over strom's
//! own segment protocol and serves them with every local output.
//!
//! - [`auth`]: HMAC request signing with the shared `cluster_key`.
//! - [`server`]: the source side: the signed stream list (the segment feed
//!   itself is an output, [`crate::output::cluster_feed`]).
//! - [`manager`]: the restreamer side: one poller per `source` block keeps
//!   the source's stream list, applies `only`/`except`, and creates and
//!   removes restreamed streams. A restreamed stream is an ordinary
//!   [`crate::stream::Stream`] whose input is a cluster feed
//!   ([`crate::input::cluster`]), with the same supervisor, backup and
//!   on-demand lifecycle as a configured stream.
//! - [`peers`]: the peer directory and viewer redirects.
//!
//! Invariant: a restreamer serves the source's segments unchanged (same
//! number, timestamps and frames, so the same TS bytes); it renumbers only
//! when it must switch to a source whose feed does not continue its own, and
//! then only forward, with a discontinuity.

pub mod auth;
pub mod manager;
pub mod peers;
pub mod server;

use std::sync::Mutex;
use std::time::Instant;
use strom_config::{Config, SourceConfig};

/// Path prefix of the node-to-node endpoints.
pub const PREFIX: &str = "/api/v1/cluster";

/// The key to use with a source: its own override, else the global one.
pub fn source_key<'a>(config: &'a Config, src: &'a SourceConfig) -> Option<&'a str> {
    src.cluster_key.as_deref().or(config.cluster_key.as_deref())
}

/// Connection state of one source, for `/api/v1/cluster/sources`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SourceState {
    pub source: String,
    /// `connecting`, `connected`, `retrying` or `unauthorized`.
    pub state: &'static str,
    pub streams: usize,
    pub last_error: Option<String>,
    /// Seconds until the next attempt while retrying.
    pub next_attempt_in_secs: Option<f64>,
    #[serde(skip)]
    pub next_attempt: Option<Instant>,
}

/// States of all configured sources.
#[derive(Debug)]
pub struct SourceStates(Mutex<Vec<SourceState>>);

impl SourceStates {
    pub fn new(config: &Config) -> Self {
        SourceStates(Mutex::new(
            config
                .sources
                .iter()
                .map(|s| SourceState {
                    source: s.addr.clone(),
                    state: "connecting",
                    streams: 0,
                    last_error: None,
                    next_attempt_in_secs: None,
                    next_attempt: None,
                })
                .collect(),
        ))
    }

    /// Updates source `i`.
    pub fn update(&self, i: usize, f: impl FnOnce(&mut SourceState)) {
        if let Some(s) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get_mut(i) {
            f(s);
        }
    }

    /// A snapshot with `next_attempt_in_secs` filled in.
    pub fn snapshot(&self) -> Vec<SourceState> {
        let now = Instant::now();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .map(|mut s| {
                s.next_attempt_in_secs = s.next_attempt.map(|t| t.saturating_duration_since(now).as_secs_f64());
                s
            })
            .collect()
    }
}

//! strom-api: the typed shapes of strom's HTTP API, shared by the node that
//! serves them and by the balancer and peers that read them.
//!
//! - `/api/v1/streams[/NAME]`: [`StreamsResponse`], [`StreamInfo`];
//! - `/readyz`: [`Readiness`];
//! - `/api/v1/cluster/streams` (signed, node to node): [`StreamList`],
//!   [`RemoteStream`] (with `dvr`: the stream's archive can be read over
//!   the cluster), [`NodeLoad`];
//! - query-string helpers and [`HOP_PARAM`], the marker of a redirected
//!   request that the node and the balancer both add and read.
//!
//! Invariant: fields are only ever added, with `#[serde(default)]` on the
//! reading side, so nodes of different versions keep understanding each
//! other. Nothing here does I/O.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Query parameter that marks a request already redirected once (by a peer
/// or the balancer); a marked request is never redirected again.
pub const HOP_PARAM: &str = "strom_hop";

/// Lifecycle state of a stream, as the API reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Starting: no frame yet, within the start window.
    Waiting,
    /// Frames flow from a configured input (or a source node).
    Running,
    /// Every input is down; the backup plays.
    Backup,
    /// Every input is down and there is no (working) backup.
    Failed,
    /// On-demand stream with no viewers: inputs are not running.
    Stopped,
    /// A status this version does not know (read from a newer node); never
    /// playable.
    #[serde(other)]
    Unknown,
}

impl Status {
    /// Delivers media now (from an input or the backup).
    pub fn is_alive(self) -> bool {
        matches!(self, Status::Running | Status::Backup)
    }

    /// The lower-case name used in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Running => "running",
            Status::Backup => "backup",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
            Status::Unknown => "unknown",
        }
    }
}

/// One track of a stream (`/api/v1/streams/NAME`, `tracks`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// Track number within the stream, from 0.
    pub id: u16,
    /// `video` or `audio`.
    pub kind: String,
    /// Codec name (`h264`, `aac`, …).
    pub codec: String,
    /// RFC 6381 codec string (`avc1.64001f`), when known.
    #[serde(default)]
    pub codec_string: Option<String>,
    #[serde(default)]
    pub width: Option<u16>,
    #[serde(default)]
    pub height: Option<u16>,
    /// Frames per second.
    #[serde(default)]
    pub frame_rate: Option<f64>,
    /// Hz.
    #[serde(default)]
    pub sample_rate: Option<u32>,
    #[serde(default)]
    pub channels: Option<u8>,
    /// ISO 639 language code from the PMT.
    #[serde(default)]
    pub language: Option<String>,
    /// Bits per second over the segment window.
    #[serde(default)]
    pub bitrate: Option<u64>,
}

/// One stream (`GET /api/v1/streams/NAME`, and each entry of the list).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub name: String,
    pub status: Status,
    #[serde(default)]
    pub ondemand: bool,
    /// Index of the input feeding the stream; the number of inputs means the backup.
    #[serde(default)]
    pub active_input_index: Option<usize>,
    /// URL of the input feeding the stream (`backup:URL` for the backup).
    #[serde(default)]
    pub active_input: Option<String>,
    #[serde(default)]
    pub inputs: Vec<String>,
    /// For a restreamed stream: the source node feeding it now.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub tracks: Vec<TrackInfo>,
    /// Current viewers by protocol (`hls`, `mpegts`, …).
    #[serde(default)]
    pub clients: BTreeMap<String, u64>,
    /// Seconds since the stream last started delivering.
    #[serde(default)]
    pub uptime_secs: Option<f64>,
    /// Seconds since the last frame reached the stream.
    #[serde(default)]
    pub last_frame_age_secs: Option<f64>,
    /// Oldest and newest segment numbers held.
    #[serde(default)]
    pub first_seq: Option<u64>,
    #[serde(default)]
    pub last_seq: Option<u64>,
    /// Seconds the stream has been waiting for a random access point (IDR,
    /// recovery point, IRAP) to start or close a segment. Nothing is
    /// published meanwhile; past the bound the open segment is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_rap_secs: Option<f64>,
    /// The last MPEG-TS error an input of this stream met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_last_error: Option<TsErrorInfo>,
    /// The stream's archive, when it records (`dvr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dvr: Option<DvrInfo>,
    /// The SRT connection feeding the stream now (a publisher on an `srt`
    /// listener, or an `srt://` input), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srt: Option<SrtInfo>,
}

/// Statistics of the SRT connection feeding a stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SrtInfo {
    /// Smoothed round-trip time, milliseconds.
    pub rtt_ms: f64,
    /// Media held in the receive buffer, milliseconds.
    pub receive_buffer_ms: f64,
    /// Data packets lost, retransmitted and dropped as too late since the
    /// stream started (over every connection).
    pub packets_lost: u64,
    pub packets_retransmitted: u64,
    pub packets_dropped: u64,
}

/// What a stream's archive holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DvrInfo {
    /// The `dvr` directory.
    pub path: String,
    /// Seconds from the oldest archived segment to now.
    pub depth_secs: u64,
    /// Bytes on disk (data and indexes).
    pub bytes: u64,
    /// The newest write or read error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The configured retention: depth in seconds, disk limit in percent,
    /// size cap in bytes (each absent when not set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_limit_percent: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

/// One recorded span of an archive, UTC Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DvrRange {
    pub from: i64,
    pub duration: i64,
}

/// `GET /api/v1/streams/NAME/dvr/ranges`: the recorded spans, oldest
/// first; the time between two of them is a gap.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DvrRangesResponse {
    pub stream: String,
    pub ranges: Vec<DvrRange>,
    pub depth_secs: u64,
    pub bytes: u64,
}

/// Where an MPEG-TS input went wrong last (ISO/IEC 13818-1 terms).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TsErrorInfo {
    /// Index of the input, in config order.
    pub input: usize,
    /// PID of the offending packet.
    pub pid: u16,
    /// `cc`, `sync`, `pes`, `psi`, `transport_error`, `scrambled`, `oversize`, `latm`, …
    pub kind: String,
    /// Byte offset of the packet in that input's byte stream since it (re)connected.
    pub offset: u64,
    /// Seconds since it happened.
    pub age_secs: f64,
}

impl StreamInfo {
    /// Playable now: running, on backup, or on-demand (starts on request).
    pub fn playable(&self) -> bool {
        self.status.is_alive() || self.ondemand
    }
}

/// `GET /api/v1/streams`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamsResponse {
    pub streams: Vec<StreamInfo>,
}

/// `GET /readyz`: ready once no static stream is still starting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    /// Static streams still in their start window.
    pub waiting: Vec<String>,
    /// Streams whose every input is down (failed, or playing the backup).
    #[serde(default)]
    pub down: Vec<String>,
}

/// An error body: `{"error": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// A node's load, as peers and the balancer see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    pub clients: u64,
    #[serde(default)]
    pub max_clients: Option<u64>,
    /// Bits per second.
    #[serde(default)]
    pub output_bitrate: u64,
    /// Bits per second.
    #[serde(default)]
    pub max_bitrate: Option<u64>,
}

impl NodeLoad {
    /// At or over a configured limit.
    pub fn overloaded(&self) -> bool {
        self.max_clients.is_some_and(|m| self.clients >= m)
            || self.max_bitrate.is_some_and(|m| self.output_bitrate >= m)
    }

    /// The larger of clients/max_clients and bitrate/max_bitrate (0 without limits).
    pub fn ratio(&self) -> f64 {
        let r = |v: u64, m: Option<u64>| m.filter(|m| *m > 0).map_or(0.0, |m| v as f64 / m as f64);
        r(self.clients, self.max_clients).max(r(self.output_bitrate, self.max_bitrate))
    }

    /// Clamps every value a peer claims to `max`.
    pub fn bounded(self, max: u64) -> Self {
        NodeLoad {
            clients: self.clients.min(max),
            max_clients: self.max_clients.map(|v| v.min(max)),
            output_bitrate: self.output_bitrate.min(max),
            max_bitrate: self.max_bitrate.map(|v| v.min(max)),
        }
    }
}

/// One entry of the node-to-node stream list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteStream {
    pub name: String,
    /// `static` (always running) or `ondemand`.
    pub mode: String,
    #[serde(default)]
    pub codecs: Vec<String>,
    #[serde(default)]
    pub last_seq: Option<u64>,
    /// Delivering fresh segments now (peering sends viewers only to live or on-demand streams).
    #[serde(default)]
    pub alive: Option<bool>,
    /// The stream has an archive on this node, readable through
    /// `/api/v1/cluster/dvr/…` (absent from older nodes: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dvr: bool,
}

/// `GET /api/v1/cluster/streams` (signed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamList {
    pub streams: Vec<RemoteStream>,
    /// The answering node's load (for peering).
    #[serde(default)]
    pub load: Option<NodeLoad>,
    /// Sessions of users whose backend set a cap (`X-Max-Sessions`,
    /// `X-Unique`), so every peer enforces the cap over the cluster.
    /// At most [`MAX_REPORTED_USERS`] users.
    #[serde(default)]
    pub users: Vec<UserSessions>,
}

/// Users one node reports in its stream list, at most.
pub const MAX_REPORTED_USERS: usize = 10_000;
/// Sessions reported per user, at most (the newest).
pub const MAX_REPORTED_SESSIONS: usize = 64;

/// One capped user's sessions on a node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserSessions {
    pub user: String,
    /// `[start in Unix milliseconds, session id]`, newest first.
    pub sessions: Vec<[u64; 2]>,
}

/// One viewer session (`GET /api/v1/sessions`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionInfo {
    /// 16 lowercase hex digits.
    pub id: String,
    /// The stream.
    pub name: String,
    /// `hls` or `mpegts`.
    pub proto: String,
    pub ip: Option<String>,
    pub token: Option<String>,
    /// `X-UserId` of the backend's grant.
    pub user_id: Option<String>,
    pub user_agent: Option<String>,
    /// Unix seconds.
    pub started_at: u64,
    /// Seconds since the start.
    pub duration: u64,
    /// Media bytes sent.
    pub bytes: u64,
    /// Unix seconds of the last request (HLS) or of now (an open HTTP-TS connection).
    pub last_active: u64,
    /// Has fetched media: counts as a viewer.
    pub viewer: bool,
    /// The node that holds it (only in `?cluster=1` answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// `GET /api/v1/sessions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionsResponse {
    pub sessions: Vec<SessionInfo>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
    /// With `?cluster=1`: peers that did not answer, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// The raw value of `key` in a query string (`a=1&key=v`), not percent-decoded.
/// A key without `=` has the empty value. The first occurrence wins.
pub fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

/// `query` with `key=value` appended (`&`-joined; `query` may be empty or absent).
pub fn append_param(query: Option<&str>, key: &str, value: &str) -> String {
    match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{q}&{key}={value}"),
        None => format!("{key}={value}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        assert_eq!(query_param(Some("a=1&token=xyz&b"), "token"), Some("xyz"));
        assert_eq!(query_param(Some("b"), "b"), Some(""));
        assert_eq!(query_param(Some("tokenx=1"), "token"), None);
        assert_eq!(query_param(Some("token=1&token=2"), "token"), Some("1"));
        assert_eq!(query_param(None, "token"), None);
        assert_eq!(append_param(None, HOP_PARAM, "1"), "strom_hop=1");
        assert_eq!(append_param(Some(""), HOP_PARAM, "1"), "strom_hop=1");
        assert_eq!(append_param(Some("token=a"), HOP_PARAM, "1"), "token=a&strom_hop=1");
    }

    #[test]
    fn stream_info_reads_older_and_newer_shapes() {
        // A minimal entry (older node) and one with an unknown field (newer node).
        let v: StreamsResponse = serde_json::from_str(
            r#"{"streams":[{"name":"a","status":"running"},
                {"name":"b","status":"stopped","ondemand":true,"future":1,"clients":{"hls":2}}]}"#,
        )
        .expect("parses");
        assert!(v.streams[0].playable());
        assert!(v.streams[1].playable());
        assert_eq!(v.streams[1].clients.get("hls"), Some(&2));
        let failed: StreamInfo = serde_json::from_str(r#"{"name":"c","status":"failed"}"#).expect("parses");
        assert!(!failed.playable());
        let newer: StreamInfo = serde_json::from_str(r#"{"name":"c","status":"paused"}"#).expect("parses");
        assert_eq!(newer.status, Status::Unknown);
        assert!(!newer.playable());
        assert!(
            serde_json::from_str::<StreamInfo>(r#"{"name":"c"}"#).is_err(),
            "status is required"
        );
    }

    #[test]
    fn stream_lists_of_older_nodes_have_no_archive() {
        let old: StreamList =
            serde_json::from_str(r#"{"streams":[{"name":"a","mode":"static"}]}"#).expect("an older list parses");
        assert!(!old.streams[0].dvr);
        let mut s = old.streams[0].clone();
        assert!(
            !serde_json::to_string(&s).expect("json").contains("dvr"),
            "false is left out"
        );
        s.dvr = true;
        let back: RemoteStream = serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("parses");
        assert!(back.dvr);
    }

    #[test]
    fn load_ratio_and_bounds() {
        let l = NodeLoad {
            clients: u64::MAX,
            max_clients: Some(u64::MAX),
            output_bitrate: u64::MAX,
            max_bitrate: None,
        }
        .bounded(1_000);
        assert_eq!(l.clients, 1_000);
        assert!(l.overloaded());
        assert!((l.ratio() - 1.0).abs() < 1e-9);
        let free = NodeLoad {
            clients: 5,
            max_clients: Some(0),
            ..NodeLoad::default()
        };
        assert_eq!(free.ratio(), 0.0, "a zero limit does not divide by zero");
    }
}

//! Prometheus metrics of a node (`strom_` prefix, text exposition at `/metrics`).
//!
//! Hot paths hold owned metric handles ([`StreamMetrics`]) created once per
//! stream, so counting is an atomic add with no map lookup. Labels are only
//! `stream`, `proto`, `kind` and `reason`: never a session id or an address.
//! Rates (bitrate gauges) are computed by the node's once-a-second ticker.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    pub stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamProto {
    pub stream: String,
    pub proto: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamKind {
    pub stream: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    pub peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

type F64Counter = Counter<f64, AtomicU64>;
/// A gauge of seconds and other fractional values.
pub type F64Gauge = Gauge<f64, AtomicU64>;

/// Every metric family of the node.
pub struct Metrics {
    pub registry: Registry,
    /// The DVR families (`strom_dvr_*`).
    pub dvr: crate::dvr::DvrFamilies,
    alive: Family<StreamLabel, Gauge>,
    clients: Family<StreamProto, Gauge>,
    input_bitrate: Family<StreamLabel, Gauge>,
    input_bytes: Family<StreamLabel, Counter>,
    bytes_out: Family<StreamLabel, Counter>,
    frames: Family<StreamLabel, Counter>,
    segments: Family<StreamLabel, Counter>,
    switches: Family<StreamLabel, Counter>,
    active_input: Family<StreamLabel, Gauge>,
    ts_errors: Family<StreamKind, Counter>,
    dropped_frames: Family<StreamKind, Counter>,
    slow_viewers: Family<StreamKind, Counter>,
    input_timeouts: Family<StreamLabel, Counter>,
    input_restarts: Family<StreamLabel, Counter>,
    input_panics: Family<StreamLabel, Counter>,
    timestamp_jumps: Family<StreamLabel, Counter>,
    ts_interpolated: Family<StreamLabel, Counter>,
    target_overruns: Family<StreamLabel, Counter>,
    hls_target_raises: Family<StreamLabel, Counter>,
    hls_selections: Family<StreamKind, Counter>,
    task_panics: Family<StreamLabel, Counter>,
    sessions_refused: Family<StreamLabel, Counter>,
    srt_rtt: Family<StreamLabel, F64Gauge>,
    srt_receive_buffer: Family<StreamLabel, F64Gauge>,
    srt_packets: Family<StreamKind, Counter>,
    /// RTMP connections by how they ended up: `published`, `unknown_stream`,
    /// `not_publishable`, `unauthorized`, `busy`, `unavailable`,
    /// `rate_limited`, `play_refused`, `closed_before_publish`, `limit`, `error`.
    pub rtmp_connections: Family<ResultLabel, Counter>,
    /// RTMP protocol errors by kind (`handshake`, `chunk_size`, `too_large`,
    /// `amf`, `protocol`, `timeout`, ...).
    pub rtmp_errors: Family<KindLabel, Counter>,
    /// SRT connections by result (`accepted`, `unknown_stream`,
    /// `not_publishable`, `unauthorized`, `busy`, `bad_streamid`, `limit`,
    /// `encryption`, `error`).
    pub srt_connections: Family<ResultLabel, Counter>,
    pub server_clients: Gauge,
    pub server_online_streams: Gauge,
    pub server_output_bitrate: Gauge,
    pub http_errors: Family<KindLabel, Counter>,
    pub source_up: Family<SourceLabel, Gauge>,
    pub source_reconnects: Family<SourceLabel, Counter>,
    pub source_bytes: Family<SourceLabel, Counter>,
    /// Node-to-node problems by kind: auth failures, bad wire data, hostile names.
    pub cluster_errors: Family<KindLabel, Counter>,
    pub peer_up: Family<PeerLabel, Gauge>,
    pub peer_clients: Family<PeerLabel, Gauge>,
    pub redirects: Family<ReasonLabel, Counter>,
    /// Authorization backend calls by result (allow, deny, redirect,
    /// timeout, error) and new sessions refused by the per-address rate
    /// limit (rate_limited).
    pub auth_requests: Family<ResultLabel, Counter>,
    /// Time of authorization backend calls, seconds.
    pub auth_backend_seconds: Histogram,
    /// What a backend failure did: kept a granted session, refused or
    /// (fail_open) allowed a new one.
    pub auth_backend_down: Family<ActionLabel, Counter>,
    /// Signed-link checks by result (valid, invalid, expired).
    pub auth_signed: Family<ResultLabel, Counter>,
    /// Sessions ended, by reason (ended, idle, denied, kicked, max_sessions).
    pub sessions_closed: Family<ReasonLabel, Counter>,
    /// Sessions open now, viewers or not.
    pub sessions_open: Gauge,
    pub process_cpu_seconds: F64Counter,
    cpu_seen: std::sync::Mutex<f64>,
    pub process_resident_memory: Gauge,
}

/// Handles for one stream, cheap to clone.
#[derive(Clone)]
pub struct StreamMetrics {
    pub alive: Gauge,
    pub input_bitrate: Gauge,
    pub input_bytes: Counter,
    pub bytes_out: Counter,
    pub frames: Counter,
    pub segments: Counter,
    pub switches: Counter,
    pub active_input: Gauge,
    pub ts_cc: Counter,
    pub ts_sync: Counter,
    pub ts_pes: Counter,
    pub ts_pmt: Counter,
    /// Frames dropped before a keyframe or for going back in time.
    pub dropped_wait_keyframe: Counter,
    pub dropped_timestamp: Counter,
    /// Slow HTTP-TS viewers skipped to the next keyframe / disconnected.
    pub slow_skipped: Counter,
    pub slow_dropped: Counter,
    /// Publishers or inputs that connected but sent nothing in time.
    pub input_timeouts: Counter,
    /// Input tasks restarted after they ended or panicked.
    pub input_restarts: Counter,
    /// Timestamp jumps (back, forward, drift) that re-anchored the timeline.
    pub timestamp_jumps: Counter,
    /// Stream tasks that panicked and were run again.
    pub task_panics: Counter,
    /// New HLS sessions not counted because a cap was reached.
    pub sessions_refused: Counter,
    /// Input tasks that panicked.
    pub input_panics: Counter,
    /// UDP datagrams a stream lost because it fell behind its shared socket.
    pub udp_overrun: Counter,
    /// Elementary streams of a type strom does not carry.
    pub ts_other: Counter,
    /// The selected MPTS program is not in a complete PAT.
    pub ts_program_missing: Counter,
    /// Frame timestamps the demuxer had to interpolate (PES without PTS).
    pub ts_interpolated: Counter,
    /// Frames dropped because no random access point closed their segment
    /// within the bound, or whose track cannot be segmented.
    pub dropped_no_rap: Counter,
    pub dropped_untracked: Counter,
    /// Segments longer than the declared EXT-X-TARGETDURATION allows.
    pub target_overruns: Counter,
    /// Times HLS had to raise EXT-X-TARGETDURATION after declaring it.
    pub hls_target_raises: Counter,
    /// Per-track HLS segments muxed (`tracks-…/SEQ.ts`), and those muxed
    /// per request because the per-segment cache was full.
    pub hls_selection_muxes: Counter,
    pub hls_selection_uncached: Counter,
    /// The SRT connection feeding the stream (listener or caller): round
    /// trip time and receive buffer in seconds (0 while none), and data
    /// packets lost, retransmitted and dropped as too late.
    pub srt_rtt_seconds: F64Gauge,
    pub srt_receive_buffer_seconds: F64Gauge,
    pub srt_packets_lost: Counter,
    pub srt_packets_retransmitted: Counter,
    pub srt_packets_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("strom");
        let m = Metrics {
            alive: Family::default(),
            clients: Family::default(),
            input_bitrate: Family::default(),
            input_bytes: Family::default(),
            bytes_out: Family::default(),
            frames: Family::default(),
            segments: Family::default(),
            switches: Family::default(),
            active_input: Family::default(),
            ts_errors: Family::default(),
            dropped_frames: Family::default(),
            slow_viewers: Family::default(),
            input_timeouts: Family::default(),
            input_restarts: Family::default(),
            input_panics: Family::default(),
            timestamp_jumps: Family::default(),
            ts_interpolated: Family::default(),
            target_overruns: Family::default(),
            hls_target_raises: Family::default(),
            hls_selections: Family::default(),
            task_panics: Family::default(),
            sessions_refused: Family::default(),
            srt_rtt: Family::default(),
            srt_receive_buffer: Family::default(),
            srt_packets: Family::default(),
            rtmp_connections: Family::default(),
            rtmp_errors: Family::default(),
            srt_connections: Family::default(),
            dvr: crate::dvr::DvrFamilies::default(),
            server_clients: Gauge::default(),
            server_online_streams: Gauge::default(),
            server_output_bitrate: Gauge::default(),
            http_errors: Family::default(),
            source_up: Family::default(),
            source_reconnects: Family::default(),
            source_bytes: Family::default(),
            cluster_errors: Family::default(),
            peer_up: Family::default(),
            peer_clients: Family::default(),
            redirects: Family::default(),
            auth_requests: Family::default(),
            auth_backend_seconds: Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            auth_backend_down: Family::default(),
            auth_signed: Family::default(),
            sessions_closed: Family::default(),
            sessions_open: Gauge::default(),
            process_cpu_seconds: F64Counter::default(),
            cpu_seen: std::sync::Mutex::new(0.0),
            process_resident_memory: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("stream_alive", "1 while the stream delivers frames", m.alive.clone());
        r.register("stream_clients", "Current viewers by protocol", m.clients.clone());
        r.register(
            "stream_input_bitrate",
            "Input bitrate in bits per second",
            m.input_bitrate.clone(),
        );
        r.register(
            "stream_input_bytes",
            "MPEG-TS bytes received from inputs",
            m.input_bytes.clone(),
        );
        r.register("stream_bytes_out", "Bytes sent to viewers", m.bytes_out.clone());
        r.register("stream_frames", "Frames accepted onto the timeline", m.frames.clone());
        r.register("stream_segments", "Segments finalised", m.segments.clone());
        r.register(
            "stream_input_switches",
            "Switches between inputs (failover, return, backup)",
            m.switches.clone(),
        );
        r.register(
            "stream_active_input",
            "Index of the active input; -1 none, N (=number of inputs) backup",
            m.active_input.clone(),
        );
        r.register(
            "stream_ts_errors",
            "MPEG-TS errors by kind (cc, sync, pes, pmt, unknown_stream, program_missing, udp_overrun)",
            m.ts_errors.clone(),
        );
        r.register(
            "stream_ts_interpolated",
            "Frame timestamps interpolated for PES packets without a PTS",
            m.ts_interpolated.clone(),
        );
        r.register(
            "stream_segment_target_overruns",
            "Segments whose duration rounds above the declared EXT-X-TARGETDURATION (a GOP longer than the one learned)",
            m.target_overruns.clone(),
        );
        r.register(
            "stream_hls_target_raises",
            "Times a media playlist had to raise EXT-X-TARGETDURATION after declaring it (a source restart with a longer GOP)",
            m.hls_target_raises.clone(),
        );
        r.register(
            "stream_hls_track_segments",
            "Per-track HLS segments (tracks-…/SEQ.ts) muxed once and cached (muxed), or muxed per request past the cache bound (uncached)",
            m.hls_selections.clone(),
        );
        r.register(
            "stream_dropped_frames",
            "Frames dropped by reason (wait_keyframe, timestamp, no_rap, untracked)",
            m.dropped_frames.clone(),
        );
        r.register(
            "stream_slow_viewers",
            "HTTP-TS viewers that fell behind: skipped to a keyframe or dropped",
            m.slow_viewers.clone(),
        );
        r.register(
            "stream_input_timeouts",
            "Inputs or publishers that stopped sending and were dropped",
            m.input_timeouts.clone(),
        );
        r.register(
            "stream_input_restarts",
            "Input tasks restarted after they ended or panicked",
            m.input_restarts.clone(),
        );
        r.register(
            "stream_timestamp_jumps",
            "Jumps in the source's timestamps that re-anchored the timeline (each a discontinuity)",
            m.timestamp_jumps.clone(),
        );
        r.register(
            "stream_srt_rtt_seconds",
            "Round-trip time of the stream's SRT connection (0 when none)",
            m.srt_rtt.clone(),
        );
        r.register(
            "stream_srt_receive_buffer_seconds",
            "Media held in the SRT receive buffer of the stream's connection",
            m.srt_receive_buffer.clone(),
        );
        r.register(
            "stream_srt_packets",
            "SRT data packets of the stream by kind (lost, retransmitted, dropped: too late to play)",
            m.srt_packets.clone(),
        );
        r.register(
            "rtmp_connections",
            "RTMP connections by result (published, unknown_stream, not_publishable, unauthorized, busy, unavailable, rate_limited, play_refused, closed_before_publish, limit, error)",
            m.rtmp_connections.clone(),
        );
        r.register(
            "rtmp_errors",
            "RTMP protocol errors by kind (handshake, chunk_size, too_large, amf, protocol, timeout, ...)",
            m.rtmp_errors.clone(),
        );
        r.register(
            "srt_connections",
            "SRT connections by result (accepted, unknown_stream, not_publishable, unauthorized, busy, bad_streamid, limit, encryption, error)",
            m.srt_connections.clone(),
        );
        r.register(
            "stream_task_panics",
            "Stream tasks that panicked and were run again",
            m.task_panics.clone(),
        );
        r.register(
            "stream_sessions_refused",
            "New sessions refused because the node or the client address holds its maximum of sessions",
            m.sessions_refused.clone(),
        );
        r.register(
            "stream_input_panics",
            "Input tasks that panicked",
            m.input_panics.clone(),
        );
        r.register(
            "server_clients",
            "Current viewers on this node",
            m.server_clients.clone(),
        );
        r.register(
            "server_online_streams",
            "Streams currently delivering frames",
            m.server_online_streams.clone(),
        );
        r.register(
            "server_output_bitrate",
            "Output bitrate in bits per second",
            m.server_output_bitrate.clone(),
        );
        r.register(
            "memfd_bytes",
            "Bytes of bodies held in memfds for zero-copy sending (shared memory, outside the heap)",
            crate::zc::METRICS.memfd_bytes.clone(),
        );
        r.register(
            "zero_copy_sent_bytes",
            "Body bytes sent with sendfile from memfds",
            crate::zc::METRICS.sent_bytes.clone(),
        );
        r.register(
            "zero_copy_fallbacks",
            "Bodies kept on the heap because no memfd could be made, and body pieces written without sendfile because it failed",
            crate::zc::METRICS.fallbacks.clone(),
        );
        r.register("http_errors", "Rejected HTTP requests by kind", m.http_errors.clone());
        r.register("peer_up", "1 while the peer answers", m.peer_up.clone());
        r.register("peer_clients", "Viewers the peer reports", m.peer_clients.clone());
        r.register(
            "redirects",
            "Viewers redirected to a peer, by reason (not_local, overload)",
            m.redirects.clone(),
        );
        r.register(
            "auth_requests",
            "Authorization backend calls by result, and new sessions refused by the per-address rate limit",
            m.auth_requests.clone(),
        );
        r.register(
            "auth_backend_seconds",
            "Duration of authorization backend calls",
            m.auth_backend_seconds.clone(),
        );
        r.register(
            "auth_backend_down",
            "Authorization backend failures by what they did to the session (kept, refused, allowed)",
            m.auth_backend_down.clone(),
        );
        r.register("auth_signed", "Signed-link checks by result", m.auth_signed.clone());
        r.register(
            "sessions_closed",
            "Viewer sessions ended, by reason",
            m.sessions_closed.clone(),
        );
        r.register("sessions_open", "Viewer sessions open now", m.sessions_open.clone());
        r.register("source_up", "1 while the source node answers", m.source_up.clone());
        r.register(
            "source_reconnects",
            "Connections to the source node after a failure",
            m.source_reconnects.clone(),
        );
        r.register(
            "source_bytes",
            "Bytes received from the source node",
            m.source_bytes.clone(),
        );
        r.register(
            "cluster_errors",
            "Node-to-node problems by kind (auth, wire, bad_name)",
            m.cluster_errors.clone(),
        );
        r.register(
            "process_cpu_seconds",
            "CPU time used by the process",
            m.process_cpu_seconds.clone(),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident memory of the process",
            m.process_resident_memory.clone(),
        );
        m.dvr.register(r);
        Metrics { registry, ..m }
    }

    /// Creates the handles of one stream.
    pub fn stream(&self, name: &str) -> StreamMetrics {
        let l = StreamLabel {
            stream: name.to_string(),
        };
        let proto = |p| StreamProto {
            stream: name.to_string(),
            proto: p,
        };
        let kind = |k| StreamKind {
            stream: name.to_string(),
            kind: k,
        };
        // The built-in outputs' viewer gauges exist from the start, at 0.
        for p in ["hls", "mpegts"] {
            let _ = self.clients.get_or_create(&proto(p));
        }
        StreamMetrics {
            alive: self.alive.get_or_create_owned(&l),
            input_bitrate: self.input_bitrate.get_or_create_owned(&l),
            input_bytes: self.input_bytes.get_or_create_owned(&l),
            bytes_out: self.bytes_out.get_or_create_owned(&l),
            frames: self.frames.get_or_create_owned(&l),
            segments: self.segments.get_or_create_owned(&l),
            switches: self.switches.get_or_create_owned(&l),
            active_input: self.active_input.get_or_create_owned(&l),
            ts_cc: self.ts_errors.get_or_create_owned(&kind("cc")),
            ts_sync: self.ts_errors.get_or_create_owned(&kind("sync")),
            ts_pes: self.ts_errors.get_or_create_owned(&kind("pes")),
            ts_pmt: self.ts_errors.get_or_create_owned(&kind("pmt")),
            udp_overrun: self.ts_errors.get_or_create_owned(&kind("udp_overrun")),
            ts_other: self.ts_errors.get_or_create_owned(&kind("unknown_stream")),
            ts_program_missing: self.ts_errors.get_or_create_owned(&kind("program_missing")),
            ts_interpolated: self.ts_interpolated.get_or_create_owned(&l),
            dropped_no_rap: self.dropped_frames.get_or_create_owned(&kind("no_rap")),
            dropped_untracked: self.dropped_frames.get_or_create_owned(&kind("untracked")),
            target_overruns: self.target_overruns.get_or_create_owned(&l),
            hls_target_raises: self.hls_target_raises.get_or_create_owned(&l),
            hls_selection_muxes: self.hls_selections.get_or_create_owned(&kind("muxed")),
            hls_selection_uncached: self.hls_selections.get_or_create_owned(&kind("uncached")),
            dropped_wait_keyframe: self.dropped_frames.get_or_create_owned(&kind("wait_keyframe")),
            dropped_timestamp: self.dropped_frames.get_or_create_owned(&kind("timestamp")),
            slow_skipped: self.slow_viewers.get_or_create_owned(&kind("skipped")),
            slow_dropped: self.slow_viewers.get_or_create_owned(&kind("dropped")),
            input_timeouts: self.input_timeouts.get_or_create_owned(&l),
            input_restarts: self.input_restarts.get_or_create_owned(&l),
            input_panics: self.input_panics.get_or_create_owned(&l),
            timestamp_jumps: self.timestamp_jumps.get_or_create_owned(&l),
            task_panics: self.task_panics.get_or_create_owned(&l),
            sessions_refused: self.sessions_refused.get_or_create_owned(&l),
            srt_rtt_seconds: self.srt_rtt.get_or_create_owned(&l),
            srt_receive_buffer_seconds: self.srt_receive_buffer.get_or_create_owned(&l),
            srt_packets_lost: self.srt_packets.get_or_create_owned(&kind("lost")),
            srt_packets_retransmitted: self.srt_packets.get_or_create_owned(&kind("retransmitted")),
            srt_packets_dropped: self.srt_packets.get_or_create_owned(&kind("dropped")),
        }
    }

    /// The `strom_stream_clients` gauge of `stream` for output `proto`.
    pub fn clients_gauge(&self, stream: &str, proto: &'static str) -> Gauge {
        self.clients.get_or_create_owned(&StreamProto {
            stream: stream.to_string(),
            proto,
        })
    }

    /// Counts a node-to-node problem of `kind`.
    pub fn cluster_error(&self, kind: &'static str) {
        self.cluster_errors.get_or_create(&KindLabel { kind }).inc();
    }

    /// Refreshes process gauges from /proc and renders the exposition text.
    pub fn render(&self) -> String {
        if let Some((cpu, rss)) = read_process_stats() {
            let mut seen = self.cpu_seen.lock().unwrap_or_else(|e| e.into_inner());
            if cpu > *seen {
                self.process_cpu_seconds.inc_by(cpu - *seen);
                *seen = cpu;
            }
            self.process_resident_memory.set(rss);
        }
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// (CPU seconds, resident bytes) of this process, from /proc on Linux.
fn read_process_stats() -> Option<(f64, i64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15 (1-based).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let rss_pages: i64 = f.get(21)?.parse().ok()?;
    Some(((utime + stime) / ticks, rss_pages * 4096))
}

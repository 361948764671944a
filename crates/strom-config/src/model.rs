//! The typed config that the rest of strom reads.
//!
//! Invariants of a `Config` returned by [`crate::parse`]: `http` is never
//! empty and has no duplicates; stream names are valid and unique; every
//! stream has at least one input; values are within the ranges documented on
//! each field; `cors` origins are valid, unique and never an empty list;
//! authorization backend URLs are `http://` or `https://` URLs with a host;
//! keys, secrets and passwords are never empty; durations are whole
//! milliseconds; a [`DvrConfig`] or [`CacheConfig`] has a non-empty path
//! and non-zero limits. [`Config::to_text`] relies on these to render text
//! that parses back to an equal `Config`.
//!
//! Archive (DVR) settings can be written in three places: at top level, in
//! a `source` block and in a `stream` block; [`Config::dvr_for`] says which
//! one applies to a stream.
//!
//! `pos` fields record where an item was written, for later messages, and
//! [`Config::warnings`] what in the file will not do what it says. Both are
//! metadata: `==` ignores them, so a config equals its own round trip
//! through [`Config::to_text`].

use crate::diag::{Pos, Warning};
use crate::input::Input;
pub use crate::server_kind::{
    check_field, ApiToken, HealthCheck, LabelMatch, LoadFormat, LoadSource, ServerKind, StreamList,
};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;
use std::time::Duration;

/// Port of `http` when the directive is absent, and of `source`/`peer`
/// addresses written without one.
pub const DEFAULT_PORT: u16 = 8080;
/// Default `source_timeout`.
pub const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `segment_duration`.
pub const DEFAULT_SEGMENT_DURATION: Duration = Duration::from_secs(2);
/// Allowed `segment_duration` range.
pub const SEGMENT_DURATION_RANGE: std::ops::RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(30);
/// Default `segment_count` (HLS window length).
pub const DEFAULT_SEGMENT_COUNT: usize = 6;
/// Allowed `segment_count` range.
pub const SEGMENT_COUNT_RANGE: std::ops::RangeInclusive<usize> = 2..=100;
/// Streams one source may create on a restreamer, by default and at most.
pub const DEFAULT_SOURCE_MAX_STREAMS: usize = 10_000;
pub const SOURCE_MAX_STREAMS_RANGE: std::ops::RangeInclusive<usize> = 1..=1_000_000;
/// Allowed `source_timeout` range.
pub const SOURCE_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(3600);
/// Default `clients_timeout`.
pub const DEFAULT_CLIENTS_TIMEOUT: Duration = Duration::from_secs(30);
/// Allowed `clients_timeout` range (0 stops an ondemand stream as soon as
/// its last client leaves).
pub const CLIENTS_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(86_400);
/// Default `client_header_timeout` (nginx's): how long a connection may take
/// to send a request's headers, counted from its first byte or from the
/// end of its previous request.
pub const DEFAULT_CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// Allowed `client_header_timeout` range.
pub const CLIENT_HEADER_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(3600);
/// Default `keepalive_timeout` (nginx's): how long an idle keep-alive
/// connection is kept between requests.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// Allowed `keepalive_timeout` range (0 closes every connection after its
/// response, as in nginx).
pub const KEEPALIVE_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(3600);
/// Default `max_connections`: open HTTP connections per node, over all
/// listeners. Well under the usual hard `RLIMIT_NOFILE` (often 2^19 or more),
/// well over what one node serves.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;
/// Allowed `max_connections` range.
pub const MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<u64> = 1..=1_000_000;

/// Default `timeout` of an `on_play`/`on_publish` backend: how long a
/// request to it may take before it counts as a backend error.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(3);
/// Allowed `timeout` range of an `on_play`/`on_publish` backend.
pub const AUTH_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> = Duration::from_millis(100)..=Duration::from_secs(60);
/// Default `cache` of an `on_play`/`on_publish` backend: how long a decision
/// is kept when the backend sends no `X-AuthDuration`.
pub const DEFAULT_AUTH_CACHE: Duration = Duration::from_secs(30);
/// Allowed `cache` range of an `on_play`/`on_publish` backend (1 s to 1 day,
/// the range of `X-AuthDuration`).
pub const AUTH_CACHE_RANGE: std::ops::RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(86_400);
/// Default `session_timeout`: an HLS session ends after this long without a
/// request.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Allowed `session_timeout` range.
pub const SESSION_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(5)..=Duration::from_secs(3600);
/// Default `max_sessions_per_ip`: viewer sessions one client address may
/// hold on a node (Flussonic's limit).
pub const DEFAULT_MAX_SESSIONS_PER_IP: u64 = 10_000;
/// Allowed `max_sessions_per_ip` range.
pub const MAX_SESSIONS_PER_IP_RANGE: std::ops::RangeInclusive<u64> = 1..=1_000_000;

/// `on_play URL { ... }` or `on_publish URL { ... }`: an authorization
/// backend that follows Flussonic's contract (a `GET` with the viewer's or
/// publisher's details; 200 allows, 403 denies, 302 redirects).
///
/// Written `on_play URL;` it has every option at its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthBackend {
    /// The backend, `http://` or `https://`, as written; the request's query
    /// is appended to it.
    pub url: String,
    /// `timeout`: how long one backend request may take; within
    /// [`AUTH_TIMEOUT_RANGE`], [`DEFAULT_AUTH_TIMEOUT`] when not set.
    pub timeout: Duration,
    /// `cache`: how long a decision is kept (and when a live session is
    /// asked again) when the backend sends no valid `X-AuthDuration`; within
    /// [`AUTH_CACHE_RANGE`], [`DEFAULT_AUTH_CACHE`] when not set.
    pub cache: Duration,
    /// `fail_open`: when the backend errors or times out, NEW sessions are
    /// allowed too (off: they are refused). Sessions already granted are
    /// kept either way.
    pub fail_open: bool,
}

impl AuthBackend {
    /// A backend at `url` with the default timeout and cache, failing closed.
    pub fn new(url: impl Into<String>) -> Self {
        AuthBackend {
            url: url.into(),
            timeout: DEFAULT_AUTH_TIMEOUT,
            cache: DEFAULT_AUTH_CACHE,
            fail_open: false,
        }
    }
}

/// A whole config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen addresses, in file order; `[[::]:8080]` when the file
    /// has no `http`. `[::]` (written `http [::]:PORT;` or as a bare port,
    /// `http PORT;`) means every IPv6 and IPv4 address: the node listens
    /// dual-stack, and on IPv4 only when the machine has no IPv6.
    pub http: Vec<SocketAddr>,
    /// Shared secret for node-to-node calls; never sent in clear.
    pub cluster_key: Option<String>,
    /// This node's public base URL (`public http(s)://HOST[:PORT];`), written
    /// into playlists after a redirect instead of the request's Host.
    pub public: Option<String>,
    /// Credentials that may read the JSON API (`view_auth USER PASSWORD;`).
    pub view_auth: Option<Credentials>,
    /// Credentials that may read and change through the JSON API
    /// (`edit_auth USER PASSWORD;`); they also have view rights.
    pub edit_auth: Option<Credentials>,
    /// Where the node persists state (media sequence numbers and the like).
    pub state_dir: Option<PathBuf>,
    /// Local streams, in file order.
    pub streams: Vec<StreamConfig>,
    /// Nodes to restream from, in file order (that order is the failover
    /// order when several carry the same stream).
    pub sources: Vec<SourceConfig>,
    /// Peers that share stream lists and take redirected viewers.
    pub peers: Vec<PeerConfig>,
    /// Above this many viewers the node redirects new viewers to peers.
    pub max_clients: Option<u64>,
    /// Above this output bitrate (bits per second) the node redirects new viewers to peers.
    pub max_bitrate: Option<u64>,
    /// Which web pages may read the node's responses (`cors`).
    pub cors: Cors,
    /// `client_header_timeout`: a connection that has not sent a whole
    /// request head this long after it opened (or after its previous
    /// response) is closed.
    pub client_header_timeout: Duration,
    /// `keepalive_timeout`: an idle keep-alive connection is closed after
    /// this long; zero turns keep-alive off.
    pub keepalive_timeout: Duration,
    /// `max_connections`: open HTTP connections above which new ones are
    /// closed at once (and counted).
    pub max_connections: u64,
    /// Global play authorization backend (`on_play`), for a stream that
    /// sets none itself and whose source block (if restreamed) sets none.
    pub on_play: Option<AuthBackend>,
    /// Global publish authorization backend (`on_publish`), for a stream
    /// that sets none itself.
    pub on_publish: Option<AuthBackend>,
    /// Global key of signed links (`token_secret`), for a stream that sets
    /// none itself and whose source block (if restreamed) sets none; never
    /// empty.
    pub token_secret: Option<String>,
    /// `session_timeout`: an HLS viewer session ends after this long without
    /// a request; within [`SESSION_TIMEOUT_RANGE`].
    pub session_timeout: Duration,
    /// `max_sessions_per_ip`: viewer sessions one client address may hold
    /// on this node; within [`MAX_SESSIONS_PER_IP_RANGE`].
    pub max_sessions_per_ip: u64,
    /// Global archive settings (top-level `dvr`, `storage_limit`,
    /// `dvr_offline`): the default for every stream that has none of its
    /// own and whose source block (if restreamed) has none; see
    /// [`Config::dvr_for`].
    pub dvr: Option<DvrConfig>,
    /// RTMP listen addresses for publishers (`rtmp [ADDR:]PORT;`), in file
    /// order; a bare port means every address, as for `http`.
    pub rtmp: Vec<SocketAddr>,
    /// SRT listeners for publishers (`srt [ADDR:]PORT [latency=MS]
    /// [passphrase=P];`), in file order.
    pub srt: Vec<SrtListen>,
    /// Directives the file sets that will not do what they say (see
    /// [`crate::WarningKind`]), sorted by position. A caller that runs the
    /// config must show every one of them. Empty for a config built in code.
    pub warnings: Vec<Warning>,
}

/// One SRT listener (`srt [ADDR:]PORT [latency=MS] [passphrase=P];`):
/// callers publish MPEG-TS to the stream their streamid names
/// (`#!::r=NAME,m=publish`, or a plain `NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtListen {
    /// UDP address; a bare port means every address.
    pub addr: SocketAddr,
    /// Receiver latency offered to callers (the larger of both sides'
    /// applies); [`crate::SRT_DEFAULT_LATENCY`] unless set.
    pub latency: Duration,
    /// When set (10–79 characters), callers must encrypt with it (AES);
    /// unencrypted or wrongly keyed callers are refused.
    pub passphrase: Option<String>,
}

/// What a bare port in a node's `http` means: `[::]`, every IPv6 and IPv4
/// address (see [`Config::http`]).
pub(crate) const NODE_LISTEN_IP: Ipv6Addr = Ipv6Addr::UNSPECIFIED;

impl Default for Config {
    fn default() -> Self {
        Config {
            http: vec![SocketAddr::V6(SocketAddrV6::new(NODE_LISTEN_IP, DEFAULT_PORT, 0, 0))],
            cluster_key: None,
            public: None,
            view_auth: None,
            edit_auth: None,
            state_dir: None,
            streams: Vec::new(),
            sources: Vec::new(),
            peers: Vec::new(),
            max_clients: None,
            max_bitrate: None,
            cors: Cors::default(),
            client_header_timeout: DEFAULT_CLIENT_HEADER_TIMEOUT,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            on_play: None,
            on_publish: None,
            token_secret: None,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            max_sessions_per_ip: DEFAULT_MAX_SESSIONS_PER_IP,
            dvr: None,
            rtmp: Vec::new(),
            srt: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl PartialEq for Config {
    /// Compares every setting; `warnings`, like `pos` fields, is ignored.
    fn eq(&self, o: &Self) -> bool {
        self.http == o.http
            && self.cluster_key == o.cluster_key
            && self.public == o.public
            && self.view_auth == o.view_auth
            && self.edit_auth == o.edit_auth
            && self.state_dir == o.state_dir
            && self.streams == o.streams
            && self.sources == o.sources
            && self.peers == o.peers
            && self.max_clients == o.max_clients
            && self.max_bitrate == o.max_bitrate
            && self.cors == o.cors
            && self.client_header_timeout == o.client_header_timeout
            && self.keepalive_timeout == o.keepalive_timeout
            && self.max_connections == o.max_connections
            && self.on_play == o.on_play
            && self.on_publish == o.on_publish
            && self.token_secret == o.token_secret
            && self.session_timeout == o.session_timeout
            && self.max_sessions_per_ip == o.max_sessions_per_ip
            && self.dvr == o.dvr
            && self.rtmp == o.rtmp
            && self.srt == o.srt
    }
}

impl Config {
    /// The local stream called `name`.
    pub fn stream(&self, name: &str) -> Option<&StreamConfig> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// The archive settings that apply to `stream`: its own `dvr`, else
    /// those of `source` (the source block it is restreamed from, `None`
    /// for a local stream), else the global ones; `None` when none of the
    /// three records.
    ///
    /// The first block that has `dvr` applies whole: its `storage_limit`,
    /// `dvr_offline` and the rest are never merged field by field with a
    /// wider block's (a stream's `dvr /a 1d;` under a global
    /// `dvr /b; dvr_offline;` does not record offline).
    pub fn dvr_for(&self, stream: &StreamConfig, source: Option<&SourceConfig>) -> Option<DvrConfig> {
        stream
            .dvr
            .as_ref()
            .or_else(|| source.and_then(|s| s.dvr.as_ref()))
            .or(self.dvr.as_ref())
            .cloned()
    }
}

/// A user name and password for the JSON API (HTTP Basic), after
/// Flussonic's `view_auth` / `edit_auth`. The password alone also works as
/// a Bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.user)
    }
}

/// The top-level `cors` directive: which web pages (other than the node's
/// own) may read its responses, such as a browser player (hls.js) on a
/// portal. It decides the `Access-Control-Allow-Origin` header; see
/// [`Cors::allow_origin`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cors {
    /// `cors on;`, the default: any page may (`Access-Control-Allow-Origin: *`).
    #[default]
    Any,
    /// `cors off;`: no CORS header; only the node's own pages may.
    Off,
    /// `cors ORIGIN...;`: only pages from these origins may. Each is
    /// `http://HOST[:PORT]` or `https://HOST[:PORT]` exactly as a browser
    /// sends it in `Origin` (lower case, no default port, no path), so that
    /// matching is plain string equality. Never empty, no duplicates, in
    /// file order.
    Origins(Vec<String>),
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request whose `Origin`
    /// header is `origin`; `None` means no header. For [`Cors::Origins`]
    /// it is the request's origin when listed; responses then also need
    /// `Vary: Origin`, because the header depends on the request.
    pub fn allow_origin<'a>(&'a self, origin: Option<&'a str>) -> Option<&'a str> {
        match self {
            Cors::Any => Some("*"),
            Cors::Off => None,
            Cors::Origins(list) => origin.filter(|o| list.iter().any(|x| x == o)),
        }
    }
}

/// One `stream NAME { ... }` block.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Valid per [`crate::check_stream_name`].
    pub name: String,
    /// Where the name was written.
    pub pos: Pos,
    /// `input URL;` lines in priority order; never empty.
    pub inputs: Vec<Input>,
    /// Played when every input is down; never [`Input::Publish`].
    pub backup: Option<Input>,
    /// How long an input may be silent before failover; 100ms..=1h.
    pub source_timeout: Duration,
    /// Target HLS segment duration; 1s..=30s.
    pub segment_duration: Duration,
    /// Segments in the live HLS window; 2..=100.
    pub segment_count: usize,
    /// Start only when a viewer comes and stop after `clients_timeout`.
    pub ondemand: bool,
    /// How long an ondemand stream runs without viewers; 0..=1d.
    pub clients_timeout: Duration,
    /// Play authorization backend (`on_play`); overrides the global one.
    pub on_play: Option<AuthBackend>,
    /// Publish authorization backend (`on_publish`); overrides the global
    /// one.
    pub on_publish: Option<AuthBackend>,
    /// Key of signed links (`token_secret`); overrides the global one;
    /// never empty.
    pub token_secret: Option<String>,
    /// Password a publisher must give (`publish_password`, or its older
    /// name `password`), as `?password=` or HTTP Basic; never empty.
    pub publish_password: Option<String>,
    /// Archive settings of this stream (`dvr`, `storage_limit`,
    /// `dvr_offline` in its block); over the source block's and the global
    /// ones, see [`Config::dvr_for`].
    pub dvr: Option<DvrConfig>,
}

impl StreamConfig {
    /// A stream with the given inputs and every other setting at its default.
    pub fn new(name: impl Into<String>, inputs: Vec<Input>) -> Self {
        StreamConfig {
            name: name.into(),
            pos: Pos::default(),
            inputs,
            backup: None,
            source_timeout: DEFAULT_SOURCE_TIMEOUT,
            segment_duration: DEFAULT_SEGMENT_DURATION,
            segment_count: DEFAULT_SEGMENT_COUNT,
            ondemand: false,
            clients_timeout: DEFAULT_CLIENTS_TIMEOUT,
            on_play: None,
            on_publish: None,
            token_secret: None,
            publish_password: None,
            dvr: None,
        }
    }
}

impl PartialEq for StreamConfig {
    /// Compares everything except `pos`.
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.inputs == o.inputs
            && self.backup == o.backup
            && self.source_timeout == o.source_timeout
            && self.segment_duration == o.segment_duration
            && self.segment_count == o.segment_count
            && self.ondemand == o.ondemand
            && self.clients_timeout == o.clients_timeout
            && self.on_play == o.on_play
            && self.on_publish == o.on_publish
            && self.token_secret == o.token_secret
            && self.publish_password == o.publish_password
            && self.dvr == o.dvr
    }
}

/// One `source HOST[:PORT] { ... }`: another node whose streams are restreamed.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// `host:port` (port defaults to [`DEFAULT_PORT`]); IPv6 hosts in brackets.
    pub addr: String,
    /// Where the address was written.
    pub pos: Pos,
    /// Overrides the global `cluster_key` for this source.
    pub cluster_key: Option<String>,
    /// White list (names, `*`/`?` wildcards): these become static, other
    /// streams ondemand. Empty means no white list.
    pub only: Vec<String>,
    /// Black list: hidden; beats `only`.
    pub except: Vec<String>,
    /// Play authorization for every stream from this source (`on_play`);
    /// overrides the global one.
    pub on_play: Option<AuthBackend>,
    /// Key of signed links for every stream from this source
    /// (`token_secret`); overrides the global one; never empty.
    pub token_secret: Option<String>,
    /// Backup for every stream from this source.
    pub backup: Option<Input>,
    /// Archive settings for every stream from this source (`dvr`,
    /// `storage_limit`, `dvr_offline` in its block); over the global ones,
    /// under a stream's own, see [`Config::dvr_for`].
    pub dvr: Option<DvrConfig>,
    /// `cache PATH SIZE;`: an edge cache of archive segments this node
    /// fetched from the source's DVR (for a restreamer without a `dvr` of
    /// its own).
    pub cache: Option<CacheConfig>,
    /// Streams this source may create here (`max_streams`); the rest of its
    /// list is refused and counted.
    pub max_streams: usize,
}

impl SourceConfig {
    /// A source with no lists or overrides.
    pub fn new(addr: impl Into<String>) -> Self {
        SourceConfig {
            addr: addr.into(),
            pos: Pos::default(),
            cluster_key: None,
            only: Vec::new(),
            except: Vec::new(),
            on_play: None,
            token_secret: None,
            backup: None,
            dvr: None,
            cache: None,
            max_streams: DEFAULT_SOURCE_MAX_STREAMS,
        }
    }
}

impl PartialEq for SourceConfig {
    /// Compares everything except `pos`.
    fn eq(&self, o: &Self) -> bool {
        self.addr == o.addr
            && self.cluster_key == o.cluster_key
            && self.only == o.only
            && self.except == o.except
            && self.on_play == o.on_play
            && self.token_secret == o.token_secret
            && self.backup == o.backup
            && self.dvr == o.dvr
            && self.cache == o.cache
            && self.max_streams == o.max_streams
    }
}

/// One `peer HOST[:PORT];` or `peer HOST[:PORT] { public PUBHOST; }`.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// `host:port` (port defaults to [`DEFAULT_PORT`]); IPv6 hosts in brackets.
    pub addr: String,
    /// Where the address was written.
    pub pos: Pos,
    /// `HOST[:PORT]` viewers are redirected to, as written.
    pub public: Option<String>,
}

impl PartialEq for PeerConfig {
    /// Compares everything except `pos`.
    fn eq(&self, o: &Self) -> bool {
        self.addr == o.addr && self.public == o.public
    }
}

/// The archive (DVR) settings of one block: top level, `source` or
/// `stream`.
///
/// `dvr ROOT [DEPTH] [PERCENT%] [SIZE];`: the optional values may come in
/// any order and are told apart by form: `97%` is a disk limit, a duration
/// (`7d`, `3600`) is the depth, and a size with an upper-case unit (`500G`,
/// `10GB`) or a `B` suffix is the maximum archive size. Two more
/// directives of the same block, in any order and only beside a `dvr`:
/// `storage_limit SIZE;` (the maximum archive size, when the `dvr` line
/// gives none) and `dvr_offline;` (or `dvr_offline on|off;`).
///
/// Retention deletes whole hours, oldest first, while any of the three
/// limits is exceeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DvrConfig {
    /// Archive directory (the storage root); never empty.
    pub root: PathBuf,
    /// How long to keep; non-zero.
    pub depth: Option<Duration>,
    /// Highest use of the whole filesystem under `root`, in percent of its
    /// size, shared by every stream stored there; 1..=100.
    pub disk_limit_percent: Option<u8>,
    /// Largest archive of one stream, in bytes (the size on the `dvr` line
    /// or `storage_limit`); non-zero.
    pub max_size: Option<u64>,
    /// `dvr_offline`: an `ondemand` stream keeps running, and recording,
    /// without viewers. Off by default; no effect on a stream that is not
    /// `ondemand`.
    pub offline: bool,
}

impl DvrConfig {
    /// Recording under `root` with no limits, not offline.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DvrConfig {
            root: root.into(),
            depth: None,
            disk_limit_percent: None,
            max_size: None,
            offline: false,
        }
    }
}

/// `cache PATH SIZE;` in a `source` block: a restreamer's edge cache of the
/// archive segments it fetched from the source's DVR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Cache directory; never empty.
    pub path: PathBuf,
    /// Most bytes the cache holds; non-zero.
    pub size: u64,
}

// ---- balancer ----

/// Port of the balancer's `http` when the directive is absent.
pub const DEFAULT_BALANCER_PORT: u16 = 8000;
/// Default `refresh`.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(1);
/// Allowed `refresh` range.
pub const REFRESH_RANGE: std::ops::RangeInclusive<Duration> = Duration::from_millis(100)..=Duration::from_secs(3600);
/// `query` of `source prometheus` when the block does not set one.
pub const DEFAULT_PROMETHEUS_QUERY: &str = "sum by (instance) (strom_server_clients)";
/// Allowed `max_clients` range of a balancer `server` (the node's
/// top-level `max_clients` has the same range).
pub const MAX_CLIENTS_RANGE: std::ops::RangeInclusive<u64> = 1..=100_000_000;

/// A whole balancer config file (`strom balancer -c FILE`).
///
/// Invariants of one returned by [`crate::parse_balancer`]: `http` is never
/// empty and has no duplicates; `refresh` is within [`REFRESH_RANGE`];
/// there is at least one server; server and channel names are valid and
/// unique; every channel lists at least one server, each once, each the
/// name of a server; no list (`networks`, `countries`, `trusted_proxies`,
/// `peers`) has duplicates; a server with `countries` implies `geoip` is
/// set; every server has a load source ([`ServerConfig::load_source`]), and
/// one that learns streams from an API is of a kind that has one;
/// credentials are non-empty with no `:` in the user name.
/// [`BalancerConfig::to_text`] relies on these to render text that parses
/// back to an equal config. `==` ignores `pos` fields and `warnings`.
#[derive(Debug, Clone)]
pub struct BalancerConfig {
    /// HTTP listen addresses, in file order; `[0.0.0.0:8000]` when the file
    /// has no `http`. Same forms as the node's `http`, except that a bare
    /// port means `0.0.0.0` (IPv4 only): the balancer's listener does not
    /// fall back when the machine has no IPv6, as the node's does.
    pub http: Vec<SocketAddr>,
    /// How often servers' load is read; 100ms..=1h.
    pub refresh: Duration,
    /// Read client counts from Prometheus instead of scraping each
    /// server's `/metrics`.
    pub prometheus: Option<PrometheusSource>,
    /// The servers viewers are sent to, in file order; never empty.
    pub servers: Vec<ServerConfig>,
    /// GeoIP country database (MaxMind `.mmdb`), for servers' `countries`.
    pub geoip: Option<PathBuf>,
    /// Channels pinned to some servers, in file order; a channel not listed
    /// goes to every up server that carries the stream.
    pub channels: Vec<ChannelConfig>,
    /// Clients allowed to set `X-Forwarded-For`; host bits are clear, a bare
    /// address is a `/32` (`/128`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Credentials that may read the admin API (`view_auth USER PASSWORD;`,
    /// as a node's).
    pub view_auth: Option<Credentials>,
    /// Credentials that may read and change servers through the admin API
    /// (`edit_auth USER PASSWORD;`); without them changes are refused.
    pub edit_auth: Option<Credentials>,
    /// Where the admin API keeps its changes (`state_file PATH;`): a JSON
    /// file applied over this config at start and at every reload.
    pub state_file: Option<PathBuf>,
    /// The other balancers of the farm (`peers URL ...;`), as normalised
    /// base URLs without duplicates: each claims only its share of a
    /// server's free room while they are up.
    pub peers: Vec<String>,
    /// `zone_fallback on|off` (off by default): when every server of the
    /// client's zone is Down or full, send the client to the stream's
    /// servers that have no zone filter at all (no `networks`, no
    /// `countries`).
    pub zone_fallback: bool,
    /// What in the file is valid but will not do what it says, such as a
    /// server no viewer can ever be sent to. Not compared by `==`.
    pub warnings: Vec<Warning>,
}

impl PartialEq for BalancerConfig {
    /// Compares every setting; `warnings`, like `pos` fields, is ignored.
    fn eq(&self, o: &Self) -> bool {
        self.http == o.http
            && self.refresh == o.refresh
            && self.prometheus == o.prometheus
            && self.servers == o.servers
            && self.geoip == o.geoip
            && self.channels == o.channels
            && self.trusted_proxies == o.trusted_proxies
            && self.zone_fallback == o.zone_fallback
            && self.view_auth == o.view_auth
            && self.edit_auth == o.edit_auth
            && self.state_file == o.state_file
            && self.peers == o.peers
    }
}

impl Default for BalancerConfig {
    /// Every setting at its default and no servers (so not by itself a
    /// valid file: it needs at least one server).
    fn default() -> Self {
        BalancerConfig {
            http: vec![SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::UNSPECIFIED,
                DEFAULT_BALANCER_PORT,
            ))],
            refresh: DEFAULT_REFRESH,
            prometheus: None,
            servers: Vec::new(),
            geoip: None,
            channels: Vec::new(),
            trusted_proxies: Vec::new(),
            view_auth: None,
            edit_auth: None,
            state_file: None,
            peers: Vec::new(),
            zone_fallback: false,
            warnings: Vec::new(),
        }
    }
}

impl BalancerConfig {
    /// The server called `name`.
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// The channel called `name`.
    pub fn channel(&self, name: &str) -> Option<&ChannelConfig> {
        self.channels.iter().find(|c| c.name == name)
    }
}

/// `source prometheus URL { query '...'; query KIND '...'; }`.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    /// The Prometheus server, `http://` or `https://`, as written.
    pub url: String,
    /// `query Q;`: PromQL giving client counts by `instance`, for servers of
    /// every kind without a query of its own; never empty.
    /// [`DEFAULT_PROMETHEUS_QUERY`] when not written.
    pub query: String,
    /// `query KIND Q;`: the query for servers of one kind, in file order,
    /// at most one per kind, never empty.
    pub kind_queries: Vec<(ServerKind, String)>,
    /// Where the URL was written.
    pub pos: Pos,
}

impl PrometheusSource {
    /// A source with the default query.
    pub fn new(url: impl Into<String>) -> Self {
        PrometheusSource {
            url: url.into(),
            query: DEFAULT_PROMETHEUS_QUERY.into(),
            kind_queries: Vec::new(),
            pos: Pos::default(),
        }
    }

    /// The query whose results give the client counts of servers of `kind`.
    pub fn query_for(&self, kind: ServerKind) -> &str {
        self.kind_queries
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(self.query.as_str(), |(_, q)| q.as_str())
    }
}

impl PartialEq for PrometheusSource {
    /// Compares everything except `pos`.
    fn eq(&self, o: &Self) -> bool {
        self.url == o.url && self.query == o.query && self.kind_queries == o.kind_queries
    }
}

/// One `server NAME { ... }` block of a balancer file.
///
/// `kind` decides how health, load and streams are read; `health`, `load`,
/// `match_label` and `stream_list` override the kind's defaults. The
/// effective values are [`ServerConfig::health_check`],
/// [`ServerConfig::load_source`] and [`ServerConfig::stream_list`], and `==`
/// compares those, so writing a default out changes nothing.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// 1..=64 letters, digits, `_`, `.` and `-`.
    pub name: String,
    /// Where the name was written.
    pub pos: Pos,
    /// `http://HOST[:PORT]` or `https://HOST[:PORT]`, without a trailing
    /// `/`: where the balancer reads the server's load and health.
    pub url: String,
    /// Where viewers are redirected, as written: an `http(s)://` URL or
    /// `HOST[:PORT]`. `None`: to `url`.
    pub public: Option<String>,
    /// Viewers above which the server takes no more; within [`MAX_CLIENTS_RANGE`].
    pub max_clients: u64,
    /// `monitoring on|off`: monitored servers are preferred over
    /// unmonitored ones (off by default).
    pub monitoring: bool,
    /// Client networks this server serves (empty: any).
    pub networks: Vec<ipnet::IpNet>,
    /// Client countries this server serves, ISO 3166 alpha-2 codes in upper
    /// case (empty: any).
    pub countries: Vec<String>,
    /// Credentials sent as HTTP Basic with every request the balancer makes
    /// to this server (`api_auth USER PASSWORD;`): a strom node's
    /// `view_auth`/`edit_auth`, a Flussonic API user. Not with `api_token`.
    pub api_auth: Option<Credentials>,
    /// A Bearer token sent with every request to this server
    /// (`api_token TOKEN;`), such as a Flussonic API token. Not with `api_auth`.
    pub api_token: Option<ApiToken>,
    /// `kind`: what the server runs.
    pub kind: ServerKind,
    /// `health TARGET [STATUS];`, overriding the kind's health request.
    pub health: Option<HealthCheck>,
    /// `load FORMAT TARGET FIELD;`, overriding where the kind's client count
    /// is; always set for `generic`.
    pub load: Option<LoadSource>,
    /// `match_label LABEL [VALUE];`: only with a Prometheus load source.
    pub match_label: Option<LabelMatch>,
    /// `stream_list api|channels;`, overriding the kind's default.
    pub stream_list: Option<StreamList>,
}

impl ServerConfig {
    /// A strom server with the given name, URL and capacity and no other settings.
    pub fn new(name: impl Into<String>, url: impl Into<String>, max_clients: u64) -> Self {
        ServerConfig {
            name: name.into(),
            pos: Pos::default(),
            url: url.into(),
            public: None,
            max_clients,
            monitoring: false,
            networks: Vec::new(),
            countries: Vec::new(),
            api_auth: None,
            api_token: None,
            kind: ServerKind::Strom,
            health: None,
            load: None,
            match_label: None,
            stream_list: None,
        }
    }

    /// Where the client count is read: the `load` override, else the
    /// kind's default. `None` only for a `generic` server without `load`,
    /// which [`crate::parse_balancer`] refuses.
    pub fn load_source(&self) -> Option<LoadSource> {
        self.load.clone().or_else(|| self.kind.default_load())
    }

    /// The health request: the `health` override, else the kind's probe,
    /// else the load request answering 200.
    pub fn health_check(&self) -> HealthCheck {
        self.health
            .clone()
            .or_else(|| self.kind.default_health())
            .unwrap_or_else(|| HealthCheck {
                target: self.load_source().map_or_else(|| "/".to_string(), |l| l.target),
                status: 200,
            })
    }

    /// How the stream list is learned: the override, else the kind's default.
    pub fn stream_list(&self) -> StreamList {
        self.stream_list.unwrap_or_else(|| self.kind.default_stream_list())
    }

    /// The full URL of a `health`/`load` target: a path is appended to `url`.
    pub fn resolve(&self, target: &str) -> String {
        if target.starts_with('/') {
            format!("{}{target}", self.url)
        } else {
            target.to_string()
        }
    }

    /// Whether a label value (Prometheus' `instance`, or a `match_label`
    /// without a value) names this server: the server's name, the
    /// `host[:port]` of its `url` as written, or, when `url` has no port,
    /// `host:80` (`host:443` for https), as Ministra matches streamers.
    pub fn is_named(&self, value: &str) -> bool {
        if value == self.name {
            return true;
        }
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("http", self.url.as_str()));
        let authority = rest.split('/').next().unwrap_or(rest);
        if value == authority {
            return true;
        }
        let has_port = match authority.strip_prefix('[') {
            Some(v6) => v6.split_once(']').is_some_and(|(_, after)| after.starts_with(':')),
            None => authority.contains(':'),
        };
        !has_port && {
            let port = if scheme == "https" { 443 } else { 80 };
            value.strip_suffix(&format!(":{port}")) == Some(authority)
        }
    }
}

impl PartialEq for ServerConfig {
    /// Compares every setting, effective values for `health`, `load` and
    /// `stream_list`, and not `pos`.
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.url == o.url
            && self.public == o.public
            && self.max_clients == o.max_clients
            && self.monitoring == o.monitoring
            && self.networks == o.networks
            && self.countries == o.countries
            && self.api_auth == o.api_auth
            && self.api_token == o.api_token
            && self.kind == o.kind
            && self.health_check() == o.health_check()
            && self.load_source() == o.load_source()
            && self.match_label == o.match_label
            && self.stream_list() == o.stream_list()
    }
}

/// One `channel NAME { servers ...; }` block of a balancer file.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// The stream name, valid per [`crate::check_stream_name`].
    pub name: String,
    /// Where the name was written.
    pub pos: Pos,
    /// Names of the servers that may serve it; never empty, no duplicates,
    /// each a server of the file.
    pub servers: Vec<String>,
}

impl PartialEq for ChannelConfig {
    /// Compares everything except `pos`.
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.servers == o.servers
    }
}

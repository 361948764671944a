//! What a balancer `server` runs (`kind`), and how the balancer reads each
//! kind: the health request and the status that means Up, where the client
//! count is and in which format, and whether a stream list can be asked for.
//!
//! The defaults are facts from each product's public documentation (the
//! sources are named on each constant and in the README's Balancer
//! section); every one of them can be overridden per server. This module
//! holds data only: no I/O, and nothing here reads a response (the balancer
//! does, in `strom_balancer::readings`).
//!
//! Invariants: every default target is a path starting with `/`; every
//! default field is a valid field for its format (see [`check_field`]);
//! only `strom` and `flussonic` have a stream list API.

use std::fmt;

/// The software a balancer `server` block points at (`kind`). `strom` by
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum ServerKind {
    /// A strom node: `/healthz`, `strom_server_clients` on `/metrics`,
    /// streams from `/api/v1/streams`.
    #[default]
    Strom,
    /// Flussonic Media Server, read through its HTTP API v3.
    Flussonic,
    /// Wowza Streaming Engine, read through its connection-counts HTTP
    /// provider.
    Wowza,
    /// Nimble Streamer, read through its native status API.
    Nimble,
    /// Anything else: the `load` directive says where the count is.
    Generic,
}

impl ServerKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [ServerKind; 5] = [
        ServerKind::Strom,
        ServerKind::Flussonic,
        ServerKind::Wowza,
        ServerKind::Nimble,
        ServerKind::Generic,
    ];

    /// The word used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Strom => "strom",
            ServerKind::Flussonic => "flussonic",
            ServerKind::Wowza => "wowza",
            ServerKind::Nimble => "nimble",
            ServerKind::Generic => "generic",
        }
    }

    /// The kind written as `word`, if any (exact, lower case).
    pub fn parse(word: &str) -> Option<ServerKind> {
        ServerKind::ALL.into_iter().find(|k| k.as_str() == word)
    }

    /// The words of every kind, for messages and suggestions.
    pub fn words() -> [&'static str; 5] {
        ServerKind::ALL.map(ServerKind::as_str)
    }

    /// The path of the kind's stream list API, if it has one.
    pub fn stream_api(self) -> Option<&'static str> {
        match self {
            ServerKind::Strom => Some(STROM_STREAMS),
            ServerKind::Flussonic => Some(FLUSSONIC_STREAMS),
            ServerKind::Wowza | ServerKind::Nimble | ServerKind::Generic => None,
        }
    }

    /// How the stream list is learned when the block does not say: from the
    /// API where the kind has one, otherwise only from `channel` blocks.
    pub fn default_stream_list(self) -> StreamList {
        if self.stream_api().is_some() {
            StreamList::Api
        } else {
            StreamList::Channels
        }
    }

    /// Where the client count is read when the block has no `load`; `None`
    /// for `generic`, which must say.
    pub fn default_load(self) -> Option<LoadSource> {
        let (format, target, field) = match self {
            ServerKind::Strom => (LoadFormat::Prometheus, STROM_METRICS, STROM_CLIENTS_METRIC),
            ServerKind::Flussonic => (LoadFormat::Json, FLUSSONIC_STATS, FLUSSONIC_CLIENTS_FIELD),
            ServerKind::Wowza => (LoadFormat::Xml, WOWZA_CONNECTION_COUNTS, WOWZA_CLIENTS_ELEMENT),
            ServerKind::Nimble => (LoadFormat::Json, NIMBLE_SERVER_STATUS, NIMBLE_CLIENTS_FIELD),
            ServerKind::Generic => return None,
        };
        Some(LoadSource {
            format,
            target: target.to_string(),
            field: field.to_string(),
        })
    }

    /// The health request when the block has no `health`: a dedicated probe
    /// where the product documents one, otherwise the load request itself
    /// (`None`: the load request answering 200 is the health).
    pub fn default_health(self) -> Option<HealthCheck> {
        let target = match self {
            ServerKind::Strom => STROM_HEALTH,
            ServerKind::Flussonic => FLUSSONIC_LIVENESS,
            ServerKind::Wowza | ServerKind::Nimble | ServerKind::Generic => return None,
        };
        Some(HealthCheck {
            target: target.to_string(),
            status: 200,
        })
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// strom's liveness probe (README, "URL reference").
pub const STROM_HEALTH: &str = "/healthz";
/// strom's Prometheus text.
pub const STROM_METRICS: &str = "/metrics";
/// strom's current viewers.
pub const STROM_CLIENTS_METRIC: &str = "strom_server_clients";
/// strom's stream list (`strom_api::StreamsResponse`).
pub const STROM_STREAMS: &str = "/api/v1/streams";

/// Flussonic's liveness probe, `GET /streamer/api/v3/monitoring/liveness`
/// (Flussonic Media Server API reference,
/// <https://flussonic.com/doc/api/reference/>).
pub const FLUSSONIC_LIVENESS: &str = "/streamer/api/v3/monitoring/liveness";
/// Flussonic's runtime server stats, `GET /streamer/api/v3/config/stats`
/// (same reference): a JSON object whose `total_clients` is the number of
/// clients the server serves.
pub const FLUSSONIC_STATS: &str = "/streamer/api/v3/config/stats";
/// The client count in [`FLUSSONIC_STATS`].
pub const FLUSSONIC_CLIENTS_FIELD: &str = "total_clients";
/// Flussonic's stream list, `GET /streamer/api/v3/streams` (same
/// reference): `{"streams": [{"name", "static", "disabled", "stats":
/// {"alive", "online_clients", ...}}, ...], "next": CURSOR}`, read page by
/// page with `?cursor=` (<https://flussonic.com/doc/rest-api-guidelines/>).
pub const FLUSSONIC_STREAMS: &str = "/streamer/api/v3/streams";

/// Wowza's connection-counts HTTP provider, `GET /connectioncounts` on the
/// administration HostPort (8086 by default): XML whose root holds the
/// server's `ConnectionsCurrent` before any VHost
/// (<https://www.wowza.com/docs/how-to-get-connection-counts-for-server-applications-application-instances-and-streams-with-an-http-provider>,
/// <https://www.wowza.com/docs/how-to-monitor-server-connections-load-and-application-statistics>).
pub const WOWZA_CONNECTION_COUNTS: &str = "/connectioncounts";
/// The server's current connections in [`WOWZA_CONNECTION_COUNTS`], a child
/// of the root element.
pub const WOWZA_CLIENTS_ELEMENT: &str = "ConnectionsCurrent";

/// Nimble's server status, `GET /manage/server_status` on the management
/// port (8082 by default): a JSON object whose `Connections` is the number
/// of client connections (<https://softvelum.com/nimble/api/>, also
/// <https://wmspanel.com/nimble/api>).
pub const NIMBLE_SERVER_STATUS: &str = "/manage/server_status";
/// The client count in [`NIMBLE_SERVER_STATUS`].
pub const NIMBLE_CLIENTS_FIELD: &str = "Connections";

/// `health TARGET [STATUS];`: the request whose status says whether the
/// server is Up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// A path (`/...`, relative to the server's `url`) or an `http(s)://` URL.
    pub target: String,
    /// The status that means Up; 100..=599.
    pub status: u16,
}

/// The format of the response that holds the client count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadFormat {
    /// Prometheus or OpenMetrics text; the field is a metric name.
    Prometheus,
    /// JSON; the field is a dotted path of keys (digits index arrays).
    Json,
    /// XML; the field is a dotted path of element names below the root.
    Xml,
}

impl LoadFormat {
    /// Every format.
    pub const ALL: [LoadFormat; 3] = [LoadFormat::Prometheus, LoadFormat::Json, LoadFormat::Xml];

    /// The word used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadFormat::Prometheus => "prometheus",
            LoadFormat::Json => "json",
            LoadFormat::Xml => "xml",
        }
    }

    /// The format written as `word`, if any.
    pub fn parse(word: &str) -> Option<LoadFormat> {
        LoadFormat::ALL.into_iter().find(|f| f.as_str() == word)
    }
}

impl fmt::Display for LoadFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `load FORMAT TARGET FIELD;`: where the client count is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadSource {
    /// How the response is read.
    pub format: LoadFormat,
    /// A path (`/...`, relative to the server's `url`) or an `http(s)://` URL.
    pub target: String,
    /// The metric name, or the dotted path of the JSON value or XML element;
    /// valid for `format` per [`check_field`].
    pub field: String,
}

/// `match_label LABEL [VALUE];`: which series of a Prometheus metric belong
/// to this server when the metric has several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMatch {
    /// The label, such as `instance`.
    pub label: String,
    /// The value it must have; `None`: the server's name or its `url`'s
    /// `host:port`.
    pub value: Option<String>,
}

/// `stream_list api|channels;`: how the balancer learns which streams a
/// server plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamList {
    /// From the kind's stream list API ([`ServerKind::stream_api`]).
    Api,
    /// Only from `channel` blocks: the server is a candidate for the
    /// channels that list it, and for nothing else.
    Channels,
}

impl StreamList {
    /// The word used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamList::Api => "api",
            StreamList::Channels => "channels",
        }
    }

    /// The choice written as `word`, if any.
    pub fn parse(word: &str) -> Option<StreamList> {
        [StreamList::Api, StreamList::Channels]
            .into_iter()
            .find(|s| s.as_str() == word)
    }
}

/// A Bearer token for a server's API (`api_token TOKEN;`). Never printed by
/// `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(pub String);

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

/// Longest `field` accepted.
pub const MAX_FIELD_LEN: usize = 200;

/// Checks a `load` field for `format`: a metric name (`[A-Za-z_:][A-Za-z0-9_:]*`)
/// for Prometheus; for JSON and XML a dotted path of non-empty segments
/// without spaces, quotes or `<>`, at most [`MAX_FIELD_LEN`] characters.
pub fn check_field(format: LoadFormat, field: &str) -> Result<(), String> {
    if field.is_empty() {
        return Err("the field must not be empty".into());
    }
    if field.chars().count() > MAX_FIELD_LEN {
        return Err(format!("the field is longer than {MAX_FIELD_LEN} characters"));
    }
    match format {
        LoadFormat::Prometheus => {
            let mut chars = field.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
            if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                Ok(())
            } else {
                Err(format!(
                    "`{}` is not a metric name: use letters, digits, `_` and `:`, not starting with a digit",
                    field.escape_debug()
                ))
            }
        }
        LoadFormat::Json | LoadFormat::Xml => {
            if let Some(c) = field
                .chars()
                .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>'))
            {
                return Err(format!(
                    "the path `{}` contains {:?}; write keys separated by `.`",
                    field.escape_debug(),
                    c
                ));
            }
            if field.split('.').any(str::is_empty) {
                return Err(format!(
                    "the path `{}` has an empty segment; write keys separated by `.`",
                    field.escape_debug()
                ));
            }
            Ok(())
        }
    }
}

/// Checks a `health`/`load` target: a path starting with `/` (no spaces,
/// no `#`), or what `check_url` accepts.
pub(crate) fn check_target(target: &str, check_url: impl Fn(&str) -> Result<(), String>) -> Result<(), String> {
    if target.starts_with('/') {
        if target.starts_with("//") {
            return Err(format!(
                "bad path `{}`: it must not start with `//`",
                target.escape_debug()
            ));
        }
        if let Some(c) = target
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || *c == '#')
        {
            return Err(format!("bad path `{}`: it contains {:?}", target.escape_debug(), c));
        }
        return Ok(());
    }
    check_url(target).map_err(|e| format!("{e}; or write a path starting with `/`, relative to the server's `url`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_its_word_and_has_consistent_defaults() {
        for k in ServerKind::ALL {
            assert_eq!(ServerKind::parse(k.as_str()), Some(k));
            assert_eq!(k.default_stream_list() == StreamList::Api, k.stream_api().is_some());
            if let Some(load) = k.default_load() {
                assert!(load.target.starts_with('/'), "{k}");
                assert_eq!(check_field(load.format, &load.field), Ok(()), "{k}");
            } else {
                assert_eq!(k, ServerKind::Generic);
            }
            if let Some(h) = k.default_health() {
                assert!(h.target.starts_with('/') && h.status == 200, "{k}");
            }
        }
        assert_eq!(ServerKind::parse("Wowza"), None);
        assert_eq!(ServerKind::default(), ServerKind::Strom);
    }

    #[test]
    fn fields_per_format() {
        assert_eq!(check_field(LoadFormat::Prometheus, "strom_server_clients"), Ok(()));
        assert_eq!(check_field(LoadFormat::Prometheus, "job:clients:sum"), Ok(()));
        assert!(check_field(LoadFormat::Prometheus, "9lives").is_err());
        assert!(check_field(LoadFormat::Prometheus, "a.b").is_err());
        assert_eq!(check_field(LoadFormat::Json, "stats.total_clients"), Ok(()));
        assert_eq!(check_field(LoadFormat::Json, "servers.0.clients"), Ok(()));
        assert!(check_field(LoadFormat::Json, "a..b").is_err());
        assert!(check_field(LoadFormat::Json, ".a").is_err());
        assert!(check_field(LoadFormat::Xml, "a b").is_err());
        assert!(check_field(LoadFormat::Xml, "<a>").is_err());
        assert!(check_field(LoadFormat::Json, "").is_err());
        assert!(check_field(LoadFormat::Json, &"a".repeat(MAX_FIELD_LEN + 1)).is_err());
    }

    #[test]
    fn targets() {
        let no_url = |_: &str| Err("bad URL".to_string());
        assert_eq!(check_target("/manage/server_status?salt=1&hash=x", no_url), Ok(()));
        assert!(check_target("//evil", no_url).is_err());
        assert!(check_target("/a b", no_url).is_err());
        assert!(check_target("/a#b", no_url).is_err());
        assert_eq!(
            check_target("ftp://x", no_url),
            Err("bad URL; or write a path starting with `/`, relative to the server's `url`".into())
        );
        assert_eq!(check_target("http://x:8086/y", |_| Ok(())), Ok(()));
    }

    #[test]
    fn tokens_are_not_printed() {
        assert_eq!(format!("{:?}", ApiToken("s3cret".into())), "ApiToken(***)");
    }
}

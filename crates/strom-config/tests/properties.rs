//! Property tests of the public API: generated node and balancer configs
//! (archive settings at top level, in sources and streams, and source
//! caches included) survive `to_text` → `parse` / `parse_balancer` /
//! `parse_any` unchanged; archive directives mean the same in any order and
//! spelling;
//! arbitrary or corrupted text never panics in any parser, every diagnostic
//! points inside the text, and `parse_any` agrees with the parser of the
//! kind it picks.

use proptest::prelude::*;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use strom_config::*;

/// True when `d` points at a character of `text` or one past a line's end.
fn within(text: &str, d: &Diagnostic) -> bool {
    within_at(text, d.pos())
}

fn within_at(text: &str, p: Pos) -> bool {
    let lines: Vec<&str> = text.split('\n').collect();
    let (line, col) = (p.line as usize, p.col as usize);
    line >= 1 && line <= lines.len() && col >= 1 && col <= lines[line - 1].chars().count() + 1
}

/// Errors must be non-empty, name the file and lie inside `text`.
fn check_errs(text: &str, errs: &[Diagnostic]) -> Result<(), TestCaseError> {
    prop_assert!(!errs.is_empty());
    for d in errs {
        prop_assert!(within(text, d), "{} outside of {:?}", d, text);
        prop_assert_eq!(&d.file, "p.conf");
    }
    Ok(())
}

/// Parses `text` with every parser; errors must lie inside it, a config
/// must round-trip, and `parse_any` must give what the parser of the kind
/// it picked gives.
fn check_text(text: &str) -> Result<(), TestCaseError> {
    let node = parse("p.conf", text);
    match &node {
        Ok(c) => {
            for w in &c.warnings {
                prop_assert!(within_at(text, w.pos()), "{} outside of {:?}", w, text);
                prop_assert_eq!(&w.file, "p.conf");
            }
            let again = c.to_text();
            prop_assert_eq!(parse("p.conf", &again), Ok(c.clone()), "canonical text:\n{}", again);
        }
        Err(errs) => check_errs(text, errs)?,
    }
    let balancer = parse_balancer("p.conf", text);
    match &balancer {
        Ok(c) => {
            let again = c.to_text();
            prop_assert_eq!(
                parse_balancer("p.conf", &again),
                Ok(c.clone()),
                "canonical text:\n{}",
                again
            );
        }
        Err(errs) => check_errs(text, errs)?,
    }
    match parse_any("p.conf", text) {
        Ok(AnyConfig::Node(c)) => prop_assert_eq!(node, Ok(c)),
        Ok(AnyConfig::Balancer(c)) => prop_assert_eq!(balancer, Ok(c)),
        Err(errs) => prop_assert!(
            node.as_ref().err() == Some(&errs) || balancer.as_ref().err() == Some(&errs),
            "parse_any errors are neither kind's: {:?}",
            errs
        ),
    }
    Ok(())
}

fn ms(range: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = Duration> {
    range.prop_map(Duration::from_millis)
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_-]{1,10}(\\.[a-z0-9-]{1,8}){0,2}",
        any::<Ipv4Addr>().prop_map(|ip| ip.to_string()),
        any::<Ipv6Addr>().prop_map(|ip| format!("[{ip}]")),
    ]
}

fn host_port() -> impl Strategy<Value = String> {
    (host(), 1u16..).prop_map(|(h, p)| format!("{h}:{p}"))
}

fn http_url() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("http"), Just("https")],
        "([a-z0-9]{1,6}(:[a-z0-9]{0,6})?@)?",
        prop_oneof![host(), host_port()],
        "(/[A-Za-z0-9/._~%?=&#-]{0,20})?",
    )
        .prop_map(|(s, user, h, path)| format!("{s}://{user}{h}{path}"))
}

fn multicast_v4() -> impl Strategy<Value = Ipv4Addr> {
    (224u8..=239, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| Ipv4Addr::new(a, b, c, d))
}

fn udp() -> impl Strategy<Value = Input> {
    let port = 1u16..;
    prop_oneof![
        (
            multicast_v4(),
            port.clone(),
            proptest::option::of(any::<Ipv4Addr>()),
            proptest::option::of(any::<Ipv4Addr>()),
            program(),
        )
            .prop_map(|(ip, port, iface, source, program)| Input::Udp {
                addr: SocketAddr::new(IpAddr::V4(ip), port),
                iface,
                source: source.map(IpAddr::V4),
                program,
            }),
        (any::<Ipv4Addr>(), port.clone()).prop_map(|(ip, port)| Input::Udp {
            addr: SocketAddr::new(IpAddr::V4(ip), port),
            iface: None,
            source: None,
            program: None,
        }),
        (any::<[u16; 7]>(), port, proptest::option::of(any::<Ipv6Addr>())).prop_map(|(s, port, source)| {
            let group = Ipv6Addr::new(0xff0e, s[0], s[1], s[2], s[3], s[4], s[5], s[6]);
            Input::Udp {
                addr: SocketAddr::new(IpAddr::V6(group), port),
                iface: None,
                source: source.map(IpAddr::V6),
                program: None,
            }
        }),
    ]
}

/// An MPTS program selector (`program=N`, never 0).
fn program() -> impl Strategy<Value = Option<u16>> {
    proptest::option::of(1u16..)
}

fn file_path() -> impl Strategy<Value = std::path::PathBuf> {
    prop_oneof![
        "/[A-Za-z0-9 _./-]{1,20}",
        "[A-Za-z0-9_.-][A-Za-z0-9 _./\"#;{}-]{0,20}",
        any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
    ]
    .prop_map(Into::into)
}

fn backup() -> BoxedStrategy<Input> {
    prop_oneof![
        udp(),
        (http_url(), program()).prop_map(|(url, program)| Input::Http { url, program }),
        (file_path(), program()).prop_map(|(path, program)| Input::File { path, program }),
        "[A-Za-z0-9_-]{1,10}".prop_map(|name| Input::Builtin { name }),
        (
            host(),
            proptest::option::of(1u16..),
            "[A-Za-z0-9_.-]{1,8}",
            "[A-Za-z0-9_./?=&%-]{0,12}"
        )
            .prop_map(|(host, port, app, name)| Input::Rtmp {
                host,
                port,
                app,
                name: format!("n{name}")
            }),
        (
            host(),
            1u16..,
            proptest::option::of("[ -~]{1,40}"),
            proptest::option::of("[ -~]{10,79}"),
            20u64..=10_000,
            program()
        )
            .prop_map(|(host, port, streamid, passphrase, latency, program)| Input::Srt {
                host,
                port,
                streamid,
                passphrase,
                latency: Duration::from_millis(latency),
                program,
            }),
    ]
    .boxed()
}

fn srt_listen() -> impl Strategy<Value = strom_config::SrtListen> {
    (listen(), 20u64..=10_000, proptest::option::of("[ -~]{10,79}")).prop_map(|(addr, latency, passphrase)| {
        strom_config::SrtListen {
            addr,
            latency: Duration::from_millis(latency),
            passphrase,
        }
    })
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![4 => backup(), 1 => program().prop_map(|program| Input::Publish { program })]
}

fn dvr() -> impl Strategy<Value = DvrConfig> {
    (
        file_path(),
        proptest::option::of(ms(1..=u64::MAX / 4)),
        proptest::option::of(1u8..=100),
        proptest::option::of(1u64..),
        any::<bool>(),
    )
        .prop_map(|(root, depth, disk_limit_percent, max_size, offline)| DvrConfig {
            root,
            depth,
            disk_limit_percent,
            max_size,
            offline,
        })
}

fn cache() -> impl Strategy<Value = CacheConfig> {
    (file_path(), 1u64..).prop_map(|(path, size)| CacheConfig { path, size })
}

/// Archive settings whose root needs no quoting, for text written by hand
/// in a test.
fn dvr_simple_root() -> impl Strategy<Value = DvrConfig> {
    ("/[A-Za-z0-9_./-]{0,20}", dvr()).prop_map(|(root, d)| DvrConfig { root: root.into(), ..d })
}

fn stream_name() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Za-z0-9_.-]{1,12}", 1..4)
        .prop_map(|segs| segs.join("/"))
        .prop_filter("valid stream name", |n| check_stream_name(n).is_ok())
}

fn non_empty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9]{1,16}",
        any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
    ]
}

/// An `on_play`/`on_publish` backend with every option within its range.
/// Boxed, like [`backup`], [`stream`] and [`source`]: unboxed, the value
/// tree of a whole config is large enough to overflow a test thread's stack
/// in debug builds.
fn auth_backend() -> BoxedStrategy<AuthBackend> {
    (http_url(), ms(100..=60_000), ms(1_000..=86_400_000), any::<bool>())
        .prop_map(|(url, timeout, cache, fail_open)| AuthBackend {
            url,
            timeout,
            cache,
            fail_open,
        })
        .boxed()
}

fn stream() -> BoxedStrategy<StreamConfig> {
    (
        (stream_name(), prop::collection::vec(input(), 1..4)),
        (
            proptest::option::of(backup()),
            ms(100..=3_600_000),
            ms(1_000..=30_000),
            2usize..=100,
        ),
        (
            any::<bool>(),
            ms(0..=86_400_000),
            proptest::option::of(auth_backend()),
            proptest::option::of(dvr()),
        ),
        (
            proptest::option::of(auth_backend()),
            proptest::option::of(non_empty_string()),
            proptest::option::of(non_empty_string()),
        ),
    )
        .prop_map(
            |(
                (name, inputs),
                (backup, source_timeout, segment_duration, segment_count),
                (ondemand, clients_timeout, on_play, dvr),
                (on_publish, token_secret, publish_password),
            )| {
                let mut s = StreamConfig::new(name, dedup(inputs, |i| i.clone()));
                s.backup = backup;
                s.source_timeout = source_timeout;
                s.segment_duration = segment_duration;
                s.segment_count = segment_count;
                s.ondemand = ondemand;
                s.clients_timeout = clients_timeout;
                s.on_play = on_play;
                s.on_publish = on_publish;
                s.token_secret = token_secret;
                s.publish_password = publish_password;
                s.dvr = dvr;
                s
            },
        )
        .boxed()
}

fn pattern() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.*?/-]{1,20}"
}

fn source() -> BoxedStrategy<SourceConfig> {
    (
        host_port(),
        proptest::option::of(non_empty_string()),
        prop::collection::vec(pattern(), 0..4),
        prop::collection::vec(pattern(), 0..4),
        proptest::option::of(auth_backend()),
        proptest::option::of(non_empty_string()),
        proptest::option::of(backup()),
        proptest::option::of(dvr()),
        proptest::option::of(cache()),
    )
        .prop_map(
            |(addr, cluster_key, only, except, on_play, token_secret, backup, dvr, cache)| {
                let mut s = SourceConfig::new(addr);
                s.cluster_key = cluster_key;
                s.only = only;
                s.except = except;
                s.on_play = on_play;
                s.token_secret = token_secret;
                s.backup = backup;
                s.dvr = dvr;
                s.cache = cache;
                s
            },
        )
        .boxed()
}

fn peer() -> impl Strategy<Value = PeerConfig> {
    (host_port(), proptest::option::of(prop_oneof![host(), host_port()])).prop_map(|(addr, public)| PeerConfig {
        addr,
        pos: Pos::default(),
        public,
    })
}

fn listen() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<Ipv4Addr>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::V4(ip), p)),
        (any::<Ipv6Addr>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(ip), p)),
    ]
}

/// An origin as a browser sends it: lower case, no default port.
fn origin() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("http"), Just("https")],
        host(),
        proptest::option::of(1u16..),
    )
        .prop_filter("no default port", |(scheme, _, port)| {
            *port != Some(if *scheme == "https" { 443 } else { 80 })
        })
        .prop_map(|(scheme, host, port)| match port {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        })
}

fn cors() -> impl Strategy<Value = Cors> {
    prop_oneof![
        Just(Cors::Any),
        Just(Cors::Off),
        prop::collection::vec(origin(), 1..4).prop_map(|o| Cors::Origins(dedup(o, |x| x.clone()))),
    ]
}

/// Keeps the first item for each key, in order.
fn dedup<T, K: std::hash::Hash + Eq>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut seen = HashSet::new();
    items.into_iter().filter(|i| seen.insert(key(i))).collect()
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop::collection::vec(listen(), 1..4),
        proptest::option::of(non_empty_string()),
        proptest::option::of(file_path()),
        prop::collection::vec(stream(), 0..5),
        prop::collection::vec(source(), 0..3),
        prop::collection::vec(peer(), 0..3),
        proptest::option::of(1u64..100_000_000),
        proptest::option::of(1u64..u64::MAX / 2),
        cors(),
        (0u64..=3_600_000, 0u64..=3_600_000, 1u64..=1_000_000),
        (
            proptest::option::of(auth_backend()),
            proptest::option::of(auth_backend()),
            proptest::option::of(non_empty_string()),
            ms(5_000..=3_600_000),
            1u64..=1_000_000,
        ),
        (
            proptest::option::of(dvr()),
            prop::collection::vec(listen(), 0..3),
            prop::collection::vec(srt_listen(), 0..3),
        ),
    )
        .prop_map(
            |(
                http,
                cluster_key,
                state_dir,
                streams,
                sources,
                peers,
                max_clients,
                max_bitrate,
                cors,
                conns,
                auth,
                (dvr, rtmp, srt),
            )| {
                let http = dedup(http, |a| *a);
                let clashes = |a: &SocketAddr| {
                    http.iter().any(|h| {
                        h.port() == a.port() && (h.ip() == a.ip() || h.ip().is_unspecified() || a.ip().is_unspecified())
                    })
                };
                let rtmp = dedup(rtmp, |a| *a).into_iter().filter(|a| !clashes(a)).collect();
                Config {
                    http,
                    // Credentials come from the same text as cluster_key.
                    view_auth: cluster_key.clone().map(|k| strom_config::Credentials {
                        user: "viewer".to_string(),
                        password: k,
                    }),
                    edit_auth: None,
                    public: None,
                    cluster_key,
                    state_dir,
                    streams: dedup(streams, |s| s.name.clone()),
                    sources: dedup(sources, |s| s.addr.clone()),
                    peers: dedup(peers, |p| p.addr.clone()),
                    max_clients,
                    max_bitrate,
                    cors,
                    client_header_timeout: Duration::from_millis(conns.0.max(1000)),
                    keepalive_timeout: Duration::from_millis(conns.1),
                    max_connections: conns.2,
                    on_play: auth.0,
                    on_publish: auth.1,
                    token_secret: auth.2,
                    session_timeout: auth.3,
                    max_sessions_per_ip: auth.4,
                    dvr,
                    rtmp,
                    srt: dedup(srt, |l| l.addr),
                    warnings: Vec::new(),
                }
            },
        )
}

fn net() -> impl Strategy<Value = IpNet> {
    let v4 = (any::<Ipv4Addr>(), 0u8..=32).prop_map(|(ip, len)| IpNet::new(IpAddr::V4(ip), len));
    let v6 = (any::<Ipv6Addr>(), 0u8..=128).prop_map(|(ip, len)| IpNet::new(IpAddr::V6(ip), len));
    prop_oneof![v4, v6].prop_map(|n| n.expect("prefix in range").trunc())
}

fn server_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,20}"
}

fn server() -> impl Strategy<Value = ServerConfig> {
    (
        (
            server_name(),
            prop_oneof![Just("http"), Just("https")],
            prop_oneof![host(), host_port()],
        ),
        proptest::option::of(prop_oneof![http_url(), host(), host_port()]),
        1u64..=100_000_000,
        any::<bool>(),
        prop::collection::vec(net(), 0..4),
        prop::collection::vec(
            prop::sample::select(vec!["DE", "AT", "US", "GB", "XK", "ZW", "AD", "FR"]),
            0..4,
        ),
        reading(),
    )
        .prop_map(
            |((name, scheme, host), public, max_clients, monitoring, networks, countries, read)| {
                let mut s = ServerConfig::new(name, format!("{scheme}://{host}"), max_clients);
                s.public = public;
                s.monitoring = monitoring;
                s.networks = dedup(networks, |n| *n);
                s.countries = dedup(countries, |c| *c).into_iter().map(String::from).collect();
                read.apply(&mut s);
                s
            },
        )
}

/// `view_auth`/`edit_auth` values: a user name without `:` and any
/// non-empty password.
fn credentials() -> impl Strategy<Value = strom_config::Credentials> {
    ("[A-Za-z0-9_.-]{1,12}", non_empty_string())
        .prop_map(|(user, password)| strom_config::Credentials { user, password })
}

/// A balancer base URL as `check_base_url` keeps it (a `peers` entry).
fn http_url_base() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("http"), Just("https")],
        prop_oneof![host(), host_port()],
    )
        .prop_map(|(scheme, h)| format!("{scheme}://{h}"))
}

/// A `health`/`load` target: a path, or a URL without user or fragment.
fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        "/[A-Za-z0-9_.~%?=&-][A-Za-z0-9/_.~%?=&-]{0,20}",
        (
            prop_oneof![Just("http"), Just("https")],
            prop_oneof![host(), host_port()],
            "(/[A-Za-z0-9/._~%?=&-]{0,20})?",
        )
            .prop_map(|(s, h, p)| format!("{s}://{h}{p}")),
    ]
}

/// How a server is read: kind, overrides and API credentials, consistent
/// with one another as `parse_balancer` requires.
/// A server's reading settings as generated, applied by [`Reading::apply`].
#[derive(Debug, Clone)]
struct Reading {
    kind: ServerKind,
    health: Option<HealthCheck>,
    load: Option<LoadSource>,
    label: Option<(String, Option<String>)>,
    list_api: Option<bool>,
    auth: u8,
    user: String,
    secret: String,
}

fn reading() -> impl Strategy<Value = Reading> {
    let load = (
        prop::sample::select(LoadFormat::ALL.to_vec()),
        target(),
        "[a-z_][a-z0-9_]{0,12}(\\.[A-Za-z0-9_]{1,8}){0,2}",
    )
        .prop_map(|(format, target, field)| {
            let field = if format == LoadFormat::Prometheus {
                field.replace('.', "_")
            } else {
                field
            };
            LoadSource { format, target, field }
        });
    (
        prop::sample::select(ServerKind::ALL.to_vec()),
        proptest::option::of((target(), 100u16..=599).prop_map(|(target, status)| HealthCheck { target, status })),
        proptest::option::of(load),
        proptest::option::of(("[a-z_][a-z0-9_]{0,10}", proptest::option::of(non_empty_string()))),
        proptest::option::of(any::<bool>()),
        0u8..3,
        (non_empty_string(), non_empty_string()),
    )
        .prop_map(|(kind, health, load, label, list_api, auth, (user, secret))| Reading {
            kind,
            health,
            load,
            label,
            list_api,
            auth,
            user,
            secret,
        })
}

impl Reading {
    fn apply(&self, s: &mut ServerConfig) {
        s.kind = self.kind;
        s.health = self.health.clone();
        s.load = self.load.clone();
        if self.kind == ServerKind::Generic && s.load.is_none() {
            s.load = Some(LoadSource {
                format: LoadFormat::Json,
                target: "/status".into(),
                field: "clients".into(),
            });
        }
        let prometheus = s.load_source().is_some_and(|l| l.format == LoadFormat::Prometheus);
        s.match_label = self
            .label
            .clone()
            .filter(|_| prometheus)
            .map(|(label, value)| LabelMatch { label, value });
        s.stream_list = self.list_api.map(|api| {
            if api && self.kind.stream_api().is_some() {
                StreamList::Api
            } else {
                StreamList::Channels
            }
        });
        match self.auth {
            1 if !self.user.contains(':') => {
                s.api_auth = Some(Credentials {
                    user: self.user.clone(),
                    password: self.secret.clone(),
                })
            }
            2 => s.api_token = Some(ApiToken(self.secret.clone())),
            _ => {}
        }
    }
}

fn balancer_config() -> impl Strategy<Value = BalancerConfig> {
    (
        (prop::collection::vec(listen(), 1..4), ms(100..=3_600_000)),
        proptest::option::of((
            http_url(),
            prop_oneof!["[a-z_]{1,10}\\(([a-z_, ]{0,10})\\)", non_empty_string()],
        )),
        prop::collection::vec(server(), 1..5),
        proptest::option::of(file_path()),
        prop::collection::vec(
            (stream_name(), prop::collection::vec(any::<prop::sample::Index>(), 1..4)),
            0..4,
        ),
        prop::collection::vec(net(), 0..4),
        any::<bool>(),
        prop::collection::vec(
            (prop::sample::select(ServerKind::ALL.to_vec()), non_empty_string()),
            0..3,
        ),
        (
            proptest::option::of(credentials()),
            proptest::option::of(credentials()),
            proptest::option::of(file_path()),
            prop::collection::vec(http_url_base(), 0..3),
        ),
    )
        .prop_map(
            |(
                (http, refresh),
                prometheus,
                servers,
                geoip,
                channels,
                trusted_proxies,
                zone_fallback,
                kind_queries,
                (view_auth, edit_auth, state_file, peers),
            )| {
                let servers = dedup(servers, |s| s.name.clone());
                let channels = dedup(channels, |c| c.0.clone())
                    .into_iter()
                    .map(|(name, picks)| ChannelConfig {
                        name,
                        pos: Pos::default(),
                        servers: dedup(
                            picks
                                .iter()
                                .map(|i| servers[i.index(servers.len())].name.clone())
                                .collect(),
                            |s| s.clone(),
                        ),
                    })
                    .collect();
                // `countries` needs a GeoIP database.
                let geoip = match geoip {
                    None if servers.iter().any(|s| !s.countries.is_empty()) => Some("/g.mmdb".into()),
                    g => g,
                };
                BalancerConfig {
                    http,
                    refresh,
                    prometheus: prometheus.map(|(url, query)| PrometheusSource {
                        url,
                        query,
                        kind_queries: dedup(kind_queries, |(k, _)| *k),
                        pos: Pos::default(),
                    }),
                    servers,
                    geoip,
                    channels,
                    trusted_proxies: dedup(trusted_proxies, |n| *n),
                    zone_fallback,
                    warnings: Vec::new(),
                    view_auth,
                    edit_auth,
                    state_file,
                    peers: dedup(peers, |p| p.clone()),
                }
            },
        )
}

const BALANCER_SAMPLE: &str = "\
http 8000;
refresh 1s;
source prometheus http://127.0.0.1:9090 {
  query 'sum by (instance) (strom_server_clients)';
}
server s1 { url http://10.0.0.1:8080; public https://s1.example.com; max_clients 1000; monitoring on; }
server s2 { url http://10.0.0.2:8080; max_clients 500; networks 10.1.0.0/16 192.168.0.0/24; }
server s3 { url http://10.0.0.3:8080; max_clients 500; countries DE AT; }
geoip /var/lib/GeoLite2-Country.mmdb;
channel news { servers s1 s2; }
trusted_proxies 127.0.0.1/32 ::1;
";

const SAMPLE: &str = "\
http 8080;
cors https://portal.example.com http://[::1]:3000;
on_play http://auth.example/play { timeout 2s; cache 1m; fail_open; }
on_publish http://auth.example/publish;
token_secret \"k e y\";
session_timeout 45s;
max_sessions_per_ip 100;
cluster_key abcd;
peer peer1.example.com;
peer streamer1.local { public streamer1.example.com; }
source streamer:8081 {
  cluster_key \"ab cd\";
  only cbc football mylive/*;
  except stream1 football;
  on_play http://auth.example/check {
    timeout 500ms;
  }
  token_secret src-key;
  backup vod/bunny.mp4;
  dvr_offline;
  dvr /storage 2d 97%;
  cache /var/cache/strom 10GB;
}
stream news {
  input udp://239.0.0.1:1234?iface=10.0.0.1;   # multicast
  input tshttp://10.0.0.5/news.ts;
  backup /srv/slate.ts;
  source_timeout 5;
  segment_duration 2;
}
stream studio { input publish://; ondemand; clients_timeout 30; dvr /d 7d 500G; dvr_offline on; password pw; on_publish https://a/p { fail_open off; } }
dvr /archive 30d 95%;
storage_limit 2T;
";

/// Cases per property: 512, or `PROPTEST_CASES` when set (a longer run).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn generated_configs_round_trip(c in config()) {
        let text = c.to_text();
        let parsed = parse("p.conf", &text);
        prop_assert_eq!(&parsed, &Ok(c.clone()), "text:\n{}", text);
        // One warning per stream that records offline without being
        // `ondemand` (it would anyway), one per `dvr` that never deletes
        // anything, and none for anything else.
        let warnings = parsed.map(|p| p.warnings).unwrap_or_default();
        let count = |kind| warnings.iter().filter(|w| w.kind == kind).count();
        let pointless = c.streams.iter().filter(|s| !s.ondemand && s.dvr.as_ref().is_some_and(|d| d.offline));
        prop_assert_eq!(count(WarningKind::DvrOfflineWithoutOndemand), pointless.count());
        let unbounded = |d: &Option<strom_config::DvrConfig>| {
            d.as_ref()
                .is_some_and(|d| d.depth.is_none() && d.disk_limit_percent.is_none() && d.max_size.is_none())
        };
        let forever = usize::from(unbounded(&c.dvr))
            + c.sources.iter().filter(|s| unbounded(&s.dvr)).count()
            + c.streams.iter().filter(|s| unbounded(&s.dvr)).count();
        prop_assert_eq!(count(WarningKind::DvrUnbounded), forever);
        prop_assert_eq!(count(WarningKind::DvrOfflineWithoutOndemand) + forever, warnings.len());
        prop_assert!(warnings.windows(2).all(|w| w[0].pos() <= w[1].pos()), "sorted: {:?}", warnings);
    }

    #[test]
    fn archive_directives_mean_the_same_in_any_order(
        d in dvr_simple_root(),
        size_on_line in any::<bool>(),
        offline_spelling in 0usize..4,
        line_order in Just(vec![0usize, 1, 2]).prop_shuffle(),
        order in Just(vec![0usize, 1, 2, 3]).prop_shuffle(),
    ) {
        let mut values = [
            d.depth.map(format_duration),
            d.disk_limit_percent.map(|p| format!("{p}%")),
            d.max_size.filter(|_| size_on_line).map(format_size),
        ];
        let mut line = format!("dvr {}", d.root.display());
        for i in &line_order {
            if let Some(v) = values[*i].take() {
                line += &format!(" {v}");
            }
        }
        let offline = match (d.offline, offline_spelling) {
            (true, 0) => Some("dvr_offline;"),
            (true, 1) => Some("dvr_offline on;"),
            (true, _) => Some("dvr_offline yes;"),
            (false, 0) => None,
            (false, _) => Some("dvr_offline off;"),
        };
        let statements = [
            Some(format!("{line};")),
            d.max_size.filter(|_| !size_on_line).map(|v| format!("storage_limit {};", format_size(v))),
            offline.map(String::from),
            Some("ondemand;".to_string()),
        ];
        let mut body = String::new();
        for i in &order {
            if let Some(st) = &statements[*i] {
                body += st;
                body.push('\n');
            }
        }
        // `ondemand` is a stream directive: at top level and in a source
        // block it is left out.
        let plain = body.replace("ondemand;\n", "");
        let text = format!("{plain}source o:1 {{\n{plain}}}\nstream s {{\ninput publish://;\n{body}}}\n");
        let c = parse("p.conf", &text);
        prop_assert!(c.is_ok(), "{:?}\n{}", c, text);
        let c = c.unwrap_or_default();
        prop_assert_eq!(c.dvr.as_ref(), Some(&d), "{}", text);
        prop_assert_eq!(c.sources[0].dvr.as_ref(), Some(&d), "{}", text);
        prop_assert_eq!(c.streams[0].dvr.as_ref(), Some(&d), "{}", text);
        let bounded = d.depth.is_some() || d.disk_limit_percent.is_some() || d.max_size.is_some();
        prop_assert!(
            c.warnings.iter().all(|w| w.kind == WarningKind::DvrUnbounded && !bounded),
            "{:?}",
            c.warnings
        );
        prop_assert_eq!(c.dvr_for(&c.streams[0], None), Some(d));
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        check_text(&s)?;
    }

    #[test]
    fn config_like_strings_never_panic(s in "[a-z_{};\"'#\\\\ \t\n/:.0-9%@?&=*\u{e9}]{0,300}") {
        check_text(&s)?;
    }

    #[test]
    fn a_random_byte_anywhere_never_panics(
        c in config(),
        use_sample in any::<bool>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let text = if use_sample { SAMPLE.to_string() } else { c.to_text() };
        let mut bytes = text.into_bytes();
        bytes.insert(at.index(bytes.len() + 1), byte);
        check_text(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn generated_balancer_configs_round_trip(c in balancer_config()) {
        let text = c.to_text();
        prop_assert_eq!(parse_balancer("p.conf", &text), Ok(c.clone()), "text:\n{}", text);
        prop_assert_eq!(parse_any("p.conf", &text), Ok(AnyConfig::Balancer(c)), "text:\n{}", text);
    }

    #[test]
    fn generated_node_configs_stay_node_configs(c in config()) {
        prop_assert_eq!(parse_any("p.conf", &c.to_text()), Ok(AnyConfig::Node(c)));
    }

    #[test]
    fn balancer_like_strings_never_panic(
        s in "(server|channel|source|prometheus|url|max_clients|servers|networks|countries|geoip|refresh|query|kind|load|health|match_label|stream_list|api_token|zone_fallback|flussonic|wowza|json|xml|[a-z0-9:/.']{1,6}|[{};'\"# \n])*",
    ) {
        check_text(&s)?;
    }

    #[test]
    fn a_random_byte_in_a_balancer_file_never_panics(
        c in balancer_config(),
        use_sample in any::<bool>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let text = if use_sample { BALANCER_SAMPLE.to_string() } else { c.to_text() };
        let mut bytes = text.into_bytes();
        bytes.insert(at.index(bytes.len() + 1), byte);
        check_text(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn a_random_char_in_the_balancer_sample_never_panics(
        at in any::<prop::sample::Index>(),
        c in prop_oneof![Just('{'), Just('}'), Just(';'), Just('"'), Just('\''), Just('#'), Just('\n'), Just(' '), any::<char>()],
    ) {
        let mut chars: Vec<char> = BALANCER_SAMPLE.chars().collect();
        chars.insert(at.index(chars.len() + 1), c);
        check_text(&chars.into_iter().collect::<String>())?;
    }

    #[test]
    fn a_random_char_in_the_sample_never_panics(
        at in any::<prop::sample::Index>(),
        c in prop_oneof![Just('{'), Just('}'), Just(';'), Just('"'), Just('#'), Just('\n'), Just(' '), any::<char>()],
    ) {
        let mut chars: Vec<char> = SAMPLE.chars().collect();
        chars.insert(at.index(chars.len() + 1), c);
        check_text(&chars.into_iter().collect::<String>())?;
    }
}

#[test]
fn balancer_sample_parses() {
    let c = parse_balancer("p.conf", BALANCER_SAMPLE).expect("valid test input");
    assert_eq!(c.servers.len(), 3);
    assert_eq!(c.trusted_proxies.len(), 2);
    assert_eq!(parse_any("p.conf", BALANCER_SAMPLE), Ok(AnyConfig::Balancer(c)));
}

#[test]
fn sample_parses() {
    let c = parse("p.conf", SAMPLE).expect("valid test input");
    assert_eq!(c.streams.len(), 2);
    assert_eq!(c.sources[0].cluster_key.as_deref(), Some("ab cd"));
    assert_eq!(
        c.on_play.as_ref().map(|b| (b.timeout, b.cache, b.fail_open)),
        Some((Duration::from_secs(2), Duration::from_secs(60), true))
    );
    assert_eq!(c.on_publish, Some(AuthBackend::new("http://auth.example/publish")));
    assert_eq!(c.token_secret.as_deref(), Some("k e y"));
    assert_eq!(
        (c.session_timeout, c.max_sessions_per_ip),
        (Duration::from_secs(45), 100)
    );
    assert_eq!(
        c.sources[0].on_play.as_ref().map(|b| b.timeout),
        Some(Duration::from_millis(500))
    );
    assert_eq!(c.sources[0].token_secret.as_deref(), Some("src-key"));
    assert_eq!(c.streams[1].publish_password.as_deref(), Some("pw"));
    assert_eq!(c.streams[1].on_publish, Some(AuthBackend::new("https://a/p")));
    assert_eq!(parse("p.conf", &c.to_text()), Ok(c.clone()));
    assert_eq!(
        c.streams[1].dvr.as_ref().expect("valid test input").max_size,
        Some(500 << 30)
    );
    assert!(c.streams[1].dvr.as_ref().is_some_and(|d| d.offline));
    let global = c.dvr.as_ref().expect("valid test input");
    assert_eq!((global.max_size, global.disk_limit_percent), (Some(2 << 40), Some(95)));
    assert!(c.sources[0].dvr.as_ref().is_some_and(|d| d.offline));
    assert_eq!(c.sources[0].cache.as_ref().map(|c| c.size), Some(10 << 30));
    assert!(c.warnings.is_empty());
}

#[test]
fn within_is_strict() {
    // The checker used by the properties rejects out-of-text positions.
    let d = |line, col| Diagnostic {
        file: "f".into(),
        line,
        col,
        message: String::new(),
    };
    assert!(within("ab\nc", &d(1, 3)));
    assert!(within("ab\nc", &d(2, 2)));
    assert!(!within("ab\nc", &d(2, 3)));
    assert!(!within("ab\nc", &d(3, 1)));
    assert!(!within("ab\nc", &d(1, 0)));
}

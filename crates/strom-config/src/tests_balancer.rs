//! End-to-end tests of [`crate::parse_balancer`] and [`crate::parse_any`]:
//! the documented sample parses to the expected struct, every error kind
//! has its exact `FILE:LINE:COL: message` text pinned, and files are told
//! apart by content.

use crate::*;
use std::net::SocketAddr;
use std::time::Duration;

fn ok(text: &str) -> BalancerConfig {
    match parse_balancer("b.conf", text) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors: {e:#?}"),
    }
}

fn errs(text: &str) -> Vec<String> {
    match parse_balancer("b.conf", text) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts the single error of a snippet, which `parse_any` must also pick
/// as a balancer file and report identically.
fn err1(text: &str, want: &str) {
    assert_eq!(errs(text), [want], "for config:\n{text}");
    let any: Vec<String> = parse_any("b.conf", text)
        .expect_err("parse_any agrees")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(any, [want], "parse_any for config:\n{text}");
}

/// Asserts the single error of a snippet placed after a valid server.
fn err1_with_server(snippet: &str, want: &str) {
    err1(
        &format!("server s1 {{ url http://a; max_clients 1; }}\n{snippet}"),
        want,
    );
}

/// Asserts the single error of a directive inside server `s1` (at line 2).
fn err1_in_server(directives: &str, want: &str) {
    err1(
        &format!("server s1 {{ url http://a; max_clients 1;\n{directives}\n}}\ngeoip /g;"),
        want,
    );
}

/// Asserts the single error of a server `url` (at line 2, column 5).
fn err1_url(url: &str, want: &str) {
    err1(&format!("server s1 {{ max_clients 1;\nurl {url};\n}}"), want);
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("valid test input")
}

fn net(s: &str) -> IpNet {
    s.parse().expect("valid test input")
}

const EXAMPLE: &str = "\
http 8000;
refresh 1s;                                  # how often load is read
source prometheus http://127.0.0.1:9090 {    # optional: read client counts from a Prometheus server
  query 'sum by (instance) (strom_server_clients)';
}                                            # without it: scrape each server's /metrics directly
server s1 { url http://10.0.0.1:8080; public https://s1.example.com; max_clients 1000; monitoring on; }
server s2 { url http://10.0.0.2:8080; max_clients 500; networks 10.1.0.0/16 192.168.0.0/24; }
server s3 { url http://10.0.0.3:8080; max_clients 500; countries DE AT; }
geoip /var/lib/GeoLite2-Country.mmdb;        # optional, for `countries`
channel news { servers s1 s2; }              # optional; default: every Up server that carries the stream
trusted_proxies 127.0.0.1/32;                # only these may set X-Forwarded-For
";

fn example_config() -> BalancerConfig {
    let mut s1 = ServerConfig::new("s1", "http://10.0.0.1:8080", 1000);
    s1.public = Some("https://s1.example.com".into());
    s1.monitoring = true;
    let mut s2 = ServerConfig::new("s2", "http://10.0.0.2:8080", 500);
    s2.networks = vec![net("10.1.0.0/16"), net("192.168.0.0/24")];
    let mut s3 = ServerConfig::new("s3", "http://10.0.0.3:8080", 500);
    s3.countries = vec!["DE".into(), "AT".into()];
    BalancerConfig {
        http: vec![addr("0.0.0.0:8000")],
        refresh: Duration::from_secs(1),
        prometheus: Some(PrometheusSource {
            url: "http://127.0.0.1:9090".into(),
            query: "sum by (instance) (strom_server_clients)".into(),
            kind_queries: Vec::new(),
            pos: Pos::default(),
        }),
        servers: vec![s1, s2, s3],
        geoip: Some("/var/lib/GeoLite2-Country.mmdb".into()),
        channels: vec![ChannelConfig {
            name: "news".into(),
            pos: Pos::default(),
            servers: vec!["s1".into(), "s2".into()],
        }],
        trusted_proxies: vec![net("127.0.0.1/32")],
        zone_fallback: false,
        warnings: Vec::new(),
        ..BalancerConfig::default()
    }
}

#[test]
fn brief_example_parses() {
    let c = ok(EXAMPLE);
    assert_eq!(c, example_config());
    let prometheus = c.prometheus.as_ref().expect("valid test input");
    assert_eq!(prometheus.pos, Pos::new(3, 19));
    let positions: Vec<Pos> = c.servers.iter().map(|s| s.pos).collect();
    assert_eq!(positions, [Pos::new(6, 8), Pos::new(7, 8), Pos::new(8, 8)]);
    assert_eq!(c.channels[0].pos, Pos::new(10, 9));
    assert_eq!(c.server("s2").map(|s| s.max_clients), Some(500));
    assert!(c.server("s9").is_none());
    assert_eq!(c.channel("news").map(|c| c.servers.len()), Some(2));
    assert!(c.channel("sport").is_none());
    assert_eq!(parse_balancer("b.conf", &c.to_text()), Ok(c.clone()));
    assert_eq!(parse_any("b.conf", EXAMPLE), Ok(AnyConfig::Balancer(c)));
}

#[test]
fn defaults_and_minimal_file() {
    let c = ok("server a { url https://a.example/; max_clients 1; }");
    let want = BalancerConfig {
        servers: vec![ServerConfig::new("a", "https://a.example", 1)],
        ..BalancerConfig::default()
    };
    assert_eq!(c, want);
    assert_eq!(c.http, [addr("0.0.0.0:8000")]);
    assert_eq!(c.refresh, Duration::from_secs(1));
    assert_eq!(parse_balancer("b.conf", &c.to_text()), Ok(c));
}

#[test]
fn value_forms() {
    let c = ok("http 127.0.0.1:8000; http [::1]:8001; refresh 100ms;\n\
         source prometheus https://prom.example/prometheus;\n\
         trusted_proxies 10.0.0.1 ::1; trusted_proxies 172.16.1.2/12 2001:db8::/32;\n\
         server edge-1.fra { url http://[::1]:81; public cdn.example:8443; max_clients 100000000;\n\
           monitoring; networks 10.1.2.3/16 ::/0; }\n\
         server b { url http://b; max_clients 2; monitoring no; public http://b.example/path; }\n\
         channel sport/hd { servers b; servers edge-1.fra; }");
    assert_eq!(c.http, [addr("127.0.0.1:8000"), addr("[::1]:8001")]);
    assert_eq!(c.refresh, Duration::from_millis(100));
    assert_eq!(
        c.prometheus,
        Some(PrometheusSource::new("https://prom.example/prometheus"))
    );
    assert_eq!(
        c.trusted_proxies,
        [
            net("10.0.0.1/32"),
            net("::1/128"),
            net("172.16.0.0/12"),
            net("2001:db8::/32")
        ]
    );
    let e = c.server("edge-1.fra").expect("valid test input");
    assert_eq!(e.url, "http://[::1]:81");
    assert_eq!(e.public.as_deref(), Some("cdn.example:8443"));
    assert_eq!(e.max_clients, 100_000_000);
    assert!(e.monitoring);
    assert_eq!(e.networks, [net("10.1.0.0/16"), net("::/0")]);
    let b = c.server("b").expect("valid test input");
    assert!(!b.monitoring);
    assert_eq!(b.public.as_deref(), Some("http://b.example/path"));
    assert_eq!(c.channels[0].servers, ["b", "edge-1.fra"]);
    assert_eq!(parse_balancer("b.conf", &c.to_text()), Ok(c));
}

#[test]
fn to_text_is_canonical() {
    let want = "\
http 0.0.0.0:8000;
refresh 1s;
geoip /var/lib/GeoLite2-Country.mmdb;
trusted_proxies 127.0.0.1/32;
zone_fallback off;

source prometheus http://127.0.0.1:9090 {
    query \"sum by (instance) (strom_server_clients)\";
}

server s1 {
    kind strom;
    url http://10.0.0.1:8080;
    public https://s1.example.com;
    max_clients 1000;
    monitoring on;
    health /healthz 200;
    load prometheus /metrics strom_server_clients;
    stream_list api;
}

server s2 {
    kind strom;
    url http://10.0.0.2:8080;
    max_clients 500;
    monitoring off;
    networks 10.1.0.0/16 192.168.0.0/24;
    health /healthz 200;
    load prometheus /metrics strom_server_clients;
    stream_list api;
}

server s3 {
    kind strom;
    url http://10.0.0.3:8080;
    max_clients 500;
    monitoring off;
    countries DE AT;
    health /healthz 200;
    load prometheus /metrics strom_server_clients;
    stream_list api;
}

channel news {
    servers s1 s2;
}
";
    assert_eq!(example_config().to_text(), want);
    assert_eq!(AnyConfig::Balancer(example_config()).to_text(), want);
}

#[test]
fn single_quoted_strings_in_both_kinds() {
    let c = ok(
        "source prometheus 'http://p:9090' { query 'sum(x{job=\"a\"}) # not a comment; {}'; }\n\
         server 's1' { url 'http://a'; max_clients '5'; }\n\
         geoip '/srv/geo ip/\\'db\\'.mmdb';\n\
         channel 'news' { servers 's1'; }",
    );
    let p = c.prometheus.as_ref().expect("valid test input");
    assert_eq!(p.url, "http://p:9090");
    assert_eq!(p.query, "sum(x{job=\"a\"}) # not a comment; {}");
    assert_eq!(c.geoip, Some("/srv/geo ip/'db'.mmdb".into()));
    assert_eq!(c.servers[0].max_clients, 5);
    assert_eq!(parse_balancer("b.conf", &c.to_text()), Ok(c));

    let n = parse(
        "t.conf",
        "cluster_key 'it\\'s \"a\" \\\\ key';\nstream 'news' { input 'publish://'; }",
    )
    .expect("node file with single quotes");
    assert_eq!(n.cluster_key.as_deref(), Some("it's \"a\" \\ key"));
    assert_eq!(n.streams[0].name, "news");
    assert_eq!(parse("t.conf", &n.to_text()), Ok(n));
    // A `'` inside a word is literal; at a token's start it opens a string.
    let n = parse("t.conf", "cluster_key it's;").expect("apostrophe in a word");
    assert_eq!(n.cluster_key.as_deref(), Some("it's"));
    assert_eq!(
        parse("t.conf", "cluster_key 'abc;\nhttp 80;")
            .expect_err("unterminated")
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["t.conf:1:13: unterminated string"]
    );
    // A quoted word never ends a directive missing its `;`.
    err1_in_server(
        "public a.example\n  'url' x;",
        "b.conf:3:3: `public` takes 1 argument, got 3",
    );
}

#[test]
fn parse_any_tells_kinds_apart() {
    let node = "http 8080;\nstream news { input publish://; }\n";
    assert_eq!(parse_any("t.conf", node), parse("t.conf", node).map(AnyConfig::Node));
    assert!(matches!(parse_any("t.conf", ""), Ok(AnyConfig::Node(_))));
    assert!(matches!(parse_any("t.conf", "http 8000;"), Ok(AnyConfig::Node(_))));
    // Each marker alone makes a balancer file (here an invalid one).
    for marker in [
        "server s",
        "channel c",
        "refresh 1s;",
        "geoip /g;",
        "trusted_proxies ::1;",
    ] {
        let text = if marker.ends_with(';') {
            marker.to_string()
        } else {
            format!("{marker} {{ }}")
        };
        assert_eq!(
            parse_any("b.conf", &text),
            parse_balancer("b.conf", &text).map(AnyConfig::Balancer),
            "{text}"
        );
        assert!(parse_any("b.conf", &text).is_err(), "{text}");
    }
    // Only the top level counts.
    assert_eq!(
        parse_any("t.conf", "stream a { input publish://; server x; }")
            .expect_err("node errors")
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["t.conf:1:30: `server` is not allowed in a node config; it belongs in a balancer config"]
    );
    // Errors are those of the chosen kind.
    assert_eq!(
        parse_any("b.conf", "refresh 1s;\nstream a { input publish://; }")
            .expect_err("balancer errors")
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "b.conf:1:1: a balancer config needs at least one `server` block",
            "b.conf:2:1: `stream` is not allowed in a balancer config; it belongs in a node config",
        ]
    );
    // A missing `;` before a marker on the next line still splits there.
    assert_eq!(
        parse_any("b.conf", "http 8000\nserver s1 { url http://a; max_clients 1; }")
            .expect_err("missing `;`")
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["b.conf:1:10: missing `;` after `http` directive"]
    );
    // Canonical text keeps its kind.
    let b = AnyConfig::Balancer(example_config());
    assert_eq!(parse_any("b.conf", &b.to_text()), Ok(b));
    let n = AnyConfig::Node(parse("t.conf", node).expect("valid test input"));
    assert_eq!(parse_any("t.conf", &n.to_text()), Ok(n));
}

// ---- errors: directives ----

#[test]
fn unknown_directives_per_block() {
    err1_with_server(
        "refesh 2s;",
        "b.conf:2:1: unknown directive `refesh` at top level; did you mean `refresh`?",
    );
    err1_with_server("frobnicate;", "b.conf:2:1: unknown directive `frobnicate` at top level");
    err1_in_server(
        "  max_client 5;",
        "b.conf:2:3: unknown directive `max_client` in server block; did you mean `max_clients`?",
    );
    err1_with_server(
        "channel c { server s1; }",
        "b.conf:2:13: `server` is not allowed in channel block; use it at top level (is a `}` missing before it?)",
    );
    err1_with_server(
        "channel c { servres s1; }",
        "b.conf:2:13: unknown directive `servres` in channel block; did you mean `servers`?",
    );
    err1_with_server(
        "source prometheus http://p { qeury x; }",
        "b.conf:2:30: unknown directive `qeury` in source prometheus block; did you mean `query`?",
    );
    err1_with_server(
        "url http://x;",
        "b.conf:2:1: `url` is not allowed at top level; use it inside a `server` block",
    );
    err1_with_server(
        "max_clients 5;",
        "b.conf:2:1: `max_clients` is not allowed at top level; use it inside a `server` block",
    );
}

#[test]
fn node_directives_in_a_balancer_file() {
    err1_with_server(
        "stream news { input publish://; }",
        "b.conf:2:1: `stream` is not allowed in a balancer config; it belongs in a node config",
    );
    err1_with_server(
        "peer p;",
        "b.conf:2:1: `peer` is not allowed in a balancer config; it belongs in a node config; did you mean `peers`?",
    );
    err1_with_server(
        "cluster_key k;",
        "b.conf:2:1: `cluster_key` is not allowed in a balancer config; it belongs in a node config",
    );
    err1_in_server(
        "input publish://;",
        "b.conf:2:1: `input` is not allowed in a balancer config; it belongs in a node config",
    );
    // And the other way round, in a node file.
    let node_errs = |text: &str| -> Vec<String> {
        parse("t.conf", text)
            .expect_err("node errors")
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        node_errs("refresh 1s;\ngeoip /g;"),
        [
            "t.conf:1:1: `refresh` is not allowed in a node config; it belongs in a balancer config",
            "t.conf:2:1: `geoip` is not allowed in a node config; it belongs in a balancer config",
        ]
    );
    assert_eq!(
        node_errs("stream a { input publish://; monitoring on; }"),
        ["t.conf:1:30: `monitoring` is not allowed in a node config; it belongs in a balancer config"]
    );
}

#[test]
fn wrong_number_of_arguments() {
    err1_with_server("refresh;", "b.conf:2:1: `refresh` takes 1 argument, got 0");
    err1_with_server("refresh 1s 2s;", "b.conf:2:12: `refresh` takes 1 argument, got 2");
    err1_with_server("geoip a b;", "b.conf:2:9: `geoip` takes 1 argument, got 2");
    err1_with_server(
        "trusted_proxies;",
        "b.conf:2:1: `trusted_proxies` takes at least 1 argument, got 0",
    );
    err1_with_server("source prometheus;", "b.conf:2:1: `source` takes 2 arguments, got 1");
    err1_with_server(
        "source prometheus http://a http://b;",
        "b.conf:2:28: `source` takes 2 arguments, got 3",
    );
    err1_with_server(
        "server { url http://b; max_clients 1; }",
        "b.conf:2:1: `server` takes 1 argument, got 0",
    );
    err1_with_server(
        "channel a b { servers s1; }",
        "b.conf:2:11: `channel` takes 1 argument, got 2",
    );
    err1_with_server(
        "channel c { servers; }",
        "b.conf:2:13: `servers` takes at least 1 argument, got 0",
    );
    err1_in_server("url;", "b.conf:2:1: `url` takes 1 argument, got 0");
    err1_in_server("public a b;", "b.conf:2:10: `public` takes 1 argument, got 2");
    err1_in_server("networks;", "b.conf:2:1: `networks` takes at least 1 argument, got 0");
    err1_in_server("countries;", "b.conf:2:1: `countries` takes at least 1 argument, got 0");
    err1_in_server(
        "monitoring on off;",
        "b.conf:2:15: `monitoring` takes at most 1 argument, got 2",
    );
    err1_with_server(
        "source prometheus http://p { query; }",
        "b.conf:2:30: `query` takes 1 to 2 arguments, got 0",
    );
}

#[test]
fn block_vs_simple_directive() {
    err1_with_server(
        "server s2;",
        "b.conf:2:10: `server` needs a block: `server ... { ... }`",
    );
    err1_with_server(
        "channel c;",
        "b.conf:2:10: `channel` needs a block: `channel ... { ... }`",
    );
    err1_with_server("refresh 1s { }", "b.conf:2:12: `refresh` does not take a block");
    err1_in_server("public a { }", "b.conf:2:10: `public` does not take a block");
}

#[test]
fn duplicates() {
    err1_with_server(
        "server s1 { url http://b; max_clients 1; }",
        "b.conf:2:8: duplicate server `s1`; first defined at line 1",
    );
    err1_with_server(
        "channel c { servers s1; }\nchannel c { servers s1; }",
        "b.conf:3:9: duplicate channel `c`; first defined at line 2",
    );
    err1_with_server(
        "refresh 1s;\nrefresh 2s;",
        "b.conf:3:1: duplicate `refresh` at top level; first set at line 2",
    );
    err1_with_server(
        "geoip /a;\ngeoip /b;",
        "b.conf:3:1: duplicate `geoip` at top level; first set at line 2",
    );
    err1_with_server(
        "source prometheus http://a;\nsource prometheus http://b;",
        "b.conf:3:1: duplicate `source` at top level; first set at line 2",
    );
    err1_with_server(
        "http 8000;\nhttp 0.0.0.0:8000;",
        "b.conf:3:6: duplicate `http` address 0.0.0.0:8000; first at line 2",
    );
    err1_in_server(
        "url http://b;",
        "b.conf:2:1: duplicate `url` in server block; first set at line 1",
    );
    err1_in_server(
        "networks 10.0.0.0/8;\nnetworks 10.1.2.3/8;",
        "b.conf:3:10: duplicate `10.0.0.0/8` in `networks`; first at line 2",
    );
    err1_in_server(
        "countries DE AT DE;",
        "b.conf:2:17: duplicate `DE` in `countries`; first at line 2",
    );
    err1_with_server(
        "channel c { servers s1 s1; }",
        "b.conf:2:24: duplicate `s1` in `servers`; first at line 2",
    );
    err1_with_server(
        "trusted_proxies ::1;\ntrusted_proxies ::1/128;",
        "b.conf:3:17: duplicate `::1/128` in `trusted_proxies`; first at line 2",
    );
}

// ---- errors: cross references ----

#[test]
fn servers_are_required_and_complete() {
    assert_eq!(
        errs(""),
        ["b.conf:1:1: a balancer config needs at least one `server` block"]
    );
    err1(
        "# only a comment\nrefresh 1s;\n",
        "b.conf:1:1: a balancer config needs at least one `server` block",
    );
    err1("server s1 { max_clients 1; }", "b.conf:1:8: server `s1` has no `url`");
    err1(
        "server s1 {\n  url http://a;\n}",
        "b.conf:1:8: server `s1` has no `max_clients`",
    );
    assert_eq!(
        errs("server s1 { }"),
        [
            "b.conf:1:8: server `s1` has no `url`",
            "b.conf:1:8: server `s1` has no `max_clients`",
        ]
    );
    // Misspelt or invalid, they are reported as such only.
    err1(
        "server s1 { ulr http://a; max_clients 1; }",
        "b.conf:1:13: unknown directive `ulr` in server block; did you mean `url`?",
    );
    err1(
        "server s1 { url http://a; max_clients 0; }",
        "b.conf:1:39: `max_clients` must be between 1 and 100000000, got 0",
    );
    // An unclosed block is not blamed for what it lacks.
    err1("server s1 {\n", "b.conf:1:11: block opened here is never closed");
}

#[test]
fn channels_name_known_servers() {
    let servers = "server s1 { url http://a; max_clients 1; }\n\
                   server s2 { url http://b; max_clients 1; }\n\
                   server s3 { url http://c; max_clients 1; }\n";
    err1(
        &format!("{servers}channel news {{ servers s1 s9; }}"),
        "b.conf:4:27: channel `news` names unknown server `s9`; servers are s1, s2, s3",
    );
    err1(
        &format!("channel news {{ servers edge-2; }}\n{servers}server edge-1 {{ url http://d; max_clients 1; }}"),
        "b.conf:1:24: channel `news` names unknown server `edge-2`; servers are s1, s2, s3, edge-1; did you mean `edge-1`?",
    );
    // A server defined after the channel is known.
    ok("channel news { servers late; }\nserver late { url http://a; max_clients 1; }");
    // A long list is cut.
    let many: String = (0..12)
        .map(|i| format!("server n{i} {{ url http://a; max_clients 1; }}\n"))
        .collect();
    err1(
        &format!("{many}channel c {{ servers zz; }}"),
        "b.conf:13:21: channel `c` names unknown server `zz`; servers are n0, n1, n2, n3, n4, n5, n6, n7, n8, n9 and 2 more",
    );
    // A server whose block has errors is still known by name.
    err1(
        "server s1 { url ftp://a; max_clients 1; }\nchannel c { servers s1; }",
        "b.conf:1:17: bad URL `ftp://a`: expected http:// or https://",
    );
    err1_with_server(
        "channel c { }",
        "b.conf:2:9: channel `c` lists no servers; add `servers NAME ...;`",
    );
}

#[test]
fn countries_need_geoip() {
    err1(
        "server s1 { url http://a; max_clients 1;\n  countries DE; }\nserver s2 { url http://b; max_clients 1; countries AT; }",
        "b.conf:2:3: `countries` needs a GeoIP database: add `geoip PATH;` at top level",
    );
    ok("server s1 { url http://a; max_clients 1; countries DE; }\ngeoip /g.mmdb;");
}

// ---- errors: values ----

#[test]
fn bad_values() {
    err1_in_server(
        "networks 10.0.0.0/33;",
        "b.conf:2:10: bad network `10.0.0.0/33`: prefix length must be 0 to 32",
    );
    err1_in_server(
        "networks 300.1.1.1/8;",
        "b.conf:2:10: bad network `300.1.1.1/8`: `300.1.1.1` is not an IP address; expected an address or ADDRESS/PREFIX like 10.0.0.0/8",
    );
    err1_with_server(
        "trusted_proxies ::/129;",
        "b.conf:2:17: bad network `::/129`: prefix length must be 0 to 128",
    );
    err1_in_server(
        "countries Germany;",
        "b.conf:2:11: bad country `Germany`: must be a two-letter uppercase ISO 3166 code, like DE",
    );
    err1_in_server(
        "countries de;",
        "b.conf:2:11: bad country `de`: must be a two-letter uppercase ISO 3166 code; did you mean `DE`?",
    );
    err1_in_server(
        "countries UK;",
        "b.conf:2:11: bad country `UK`: not an ISO 3166 country code; did you mean `GB`?",
    );
    err1_url(
        "10.0.0.1:8080",
        "b.conf:2:5: bad URL `10.0.0.1:8080`: expected http:// or https://",
    );
    err1_url("http://a/metrics",
        "b.conf:2:5: bad URL `http://a/metrics`: expected only http(s)://HOST[:PORT], without a user, path, query or fragment",
    );
    err1_url(
        "http://a:0",
        "b.conf:2:5: bad URL `http://a:0`: bad port `0`: expected 1..65535",
    );
    err1_in_server(
        "public \"a b\";",
        "b.conf:2:8: bad `public` address: bad host name `a b`; expected http(s)://HOST[:PORT][/PATH] or HOST[:PORT]",
    );
    err1_in_server(
        "public ftp://a;",
        "b.conf:2:8: bad `public` address: bad URL `ftp://a`: expected http:// or https://; expected http(s)://HOST[:PORT][/PATH] or HOST[:PORT]",
    );
    err1(
        "server s1 { url http://a;\nmax_clients many; }",
        "b.conf:2:13: bad number `many` for `max_clients`",
    );
    err1_in_server(
        "monitoring maybe;",
        "b.conf:2:12: bad value `maybe` for `monitoring`: expected on or off (or true/false, yes/no)",
    );
    err1_with_server(
        "refresh 50ms;",
        "b.conf:2:9: `refresh` must be between 100ms and 1h, got 50ms",
    );
    err1_with_server(
        "refresh soon;",
        "b.conf:2:9: bad duration `soon` for `refresh`: expected a whole number with an optional unit ms, s, m, h or d, like 10s",
    );
    err1_with_server("geoip \"\";", "b.conf:2:7: `geoip` must not be empty");
    err1_with_server(
        "http localhost:8000;",
        "b.conf:2:6: bad listen address `localhost:8000`: expected PORT, IPV4:PORT or [IPV6]:PORT",
    );
    err1_with_server(
        "source prometheus prom:9090;",
        "b.conf:2:19: bad URL `prom:9090`: expected http:// or https://",
    );
    err1_with_server(
        "source prometheus http://p { query ''; }",
        "b.conf:2:36: `query` must not be empty",
    );
    err1_with_server(
        "server \"a b\" { url http://b; max_clients 1; }",
        "b.conf:2:8: server name `a b` contains ` `; use letters, digits, `_`, `.` and `-`",
    );
    err1_with_server(
        "channel api/x { servers s1; }",
        "b.conf:2:9: stream name `api/x` collides with the node's own `/api` route",
    );
    err1_with_server(
        "channel c { servers s/1; }",
        "b.conf:2:21: server name `s/1` contains `/`; use letters, digits, `_`, `.` and `-`",
    );
}

#[test]
fn source_kinds() {
    err1_with_server(
        "source influx http://i { query q; }",
        "b.conf:2:8: unknown source kind `influx`; a balancer reads load only from `source prometheus URL`",
    );
    err1_with_server(
        "source prometeus http://p;",
        "b.conf:2:8: unknown source kind `prometeus`; a balancer reads load only from `source prometheus URL`; did you mean `prometheus`?",
    );
    // A node's `source HOST` is a kind error too, reported once.
    err1_with_server(
        "source streamer:8081 { only a; }",
        "b.conf:2:8: unknown source kind `streamer:8081`; a balancer reads load only from `source prometheus URL`",
    );
}

#[test]
fn all_errors_are_collected_in_order() {
    let text = "\
refresh 1x
server s1 {
  url http://10.0.0.1:8080;
  max_clients 0;
  countries Germany;
}
server s1 { url http://x; max_clients 1; }
channel news { servers s1 s9; }
stream a { input publish://; }
";
    assert_eq!(
        errs(text),
        [
            "b.conf:1:9: bad duration `1x` for `refresh`: expected a whole number with an optional unit ms, s, m, h or d, like 10s",
            "b.conf:1:11: missing `;` after `refresh` directive",
            "b.conf:4:15: `max_clients` must be between 1 and 100000000, got 0",
            "b.conf:5:3: `countries` needs a GeoIP database: add `geoip PATH;` at top level",
            "b.conf:5:13: bad country `Germany`: must be a two-letter uppercase ISO 3166 code, like DE",
            "b.conf:7:8: duplicate server `s1`; first defined at line 2",
            "b.conf:8:27: channel `news` names unknown server `s9`; servers are s1; did you mean `s1`?",
            "b.conf:9:1: `stream` is not allowed in a balancer config; it belongs in a node config",
        ]
    );
}

#[test]
fn server_api_credentials() {
    let c = ok("server s1 { url http://a; max_clients 1; api_auth viewer \"p w\"; }");
    let a = c.servers[0].api_auth.as_ref().expect("credentials");
    assert_eq!((a.user.as_str(), a.password.as_str()), ("viewer", "p w"));
    assert!(!format!("{c:?}").contains("p w"), "Debug hides the password");
    let text = c.to_text();
    assert!(text.contains("api_auth viewer \"p w\";"), "{text}");
    assert_eq!(parse_balancer("b.conf", &text), Ok(c));
    err1_in_server(
        "api_auth a:b pw;",
        "b.conf:2:10: `api_auth` needs a user name without `:` and a password",
    );
}

// ---- server kinds, overrides, zone fallback ----

const FARM: &str = "\
zone_fallback on;
source prometheus http://127.0.0.1:9090 {
  query 'sum by (instance) (strom_server_clients)';
  query flussonic 'sum by (instance) (fl_clients)';
}
server s1 { url http://10.0.0.1:8080; max_clients 1000; }
server f1 { kind flussonic; url http://10.0.0.2; max_clients 1000; api_auth api p4ss; }
server w1 { kind wowza; url http://10.0.0.3:8086; public 10.0.0.3:1935; max_clients 800; }
server n1 { kind nimble; url http://10.0.0.4:8082; max_clients 500;
  load json '/manage/server_status?salt=1&hash=x' Connections; }
server g1 { kind generic; url https://10.0.0.5; max_clients 100; api_token t0k3n;
  health /ping 204; load prometheus /stats clients_now; match_label instance edge-5; }
channel news { servers w1 n1 g1 f1; }
";

#[test]
fn kinds_take_their_documented_defaults() {
    let c = ok(FARM);
    assert!(c.zone_fallback);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let s = |n: &str| c.server(n).expect("server");
    let strom = s("s1");
    assert_eq!(strom.kind, ServerKind::Strom);
    assert_eq!(
        strom.health_check(),
        HealthCheck {
            target: "/healthz".into(),
            status: 200
        }
    );
    let load = strom.load_source().expect("load");
    assert_eq!(
        (load.format, load.target.as_str(), load.field.as_str()),
        (LoadFormat::Prometheus, "/metrics", "strom_server_clients")
    );
    assert_eq!(strom.stream_list(), StreamList::Api);

    let f = s("f1");
    assert_eq!(f.health_check().target, "/streamer/api/v3/monitoring/liveness");
    let load = f.load_source().expect("load");
    assert_eq!(
        (load.format, load.target.as_str(), load.field.as_str()),
        (LoadFormat::Json, "/streamer/api/v3/config/stats", "total_clients")
    );
    assert_eq!(f.stream_list(), StreamList::Api);
    assert_eq!(f.resolve(&load.target), "http://10.0.0.2/streamer/api/v3/config/stats");
    assert!(f.is_named("f1") && f.is_named("10.0.0.2") && f.is_named("10.0.0.2:80"));
    assert!(!f.is_named("10.0.0.2:8080"));

    let w = s("w1");
    let load = w.load_source().expect("load");
    assert_eq!(
        (load.format, load.target.as_str(), load.field.as_str()),
        (LoadFormat::Xml, "/connectioncounts", "ConnectionsCurrent")
    );
    // No separate probe: the connection counts answering 200 is the health.
    assert_eq!(
        w.health_check(),
        HealthCheck {
            target: "/connectioncounts".into(),
            status: 200
        }
    );
    assert_eq!(w.stream_list(), StreamList::Channels);
    assert!(w.is_named("10.0.0.3:8086") && !w.is_named("10.0.0.3:80"));

    let n = s("n1");
    assert_eq!(
        n.load_source().map(|l| l.target),
        Some("/manage/server_status?salt=1&hash=x".into())
    );
    assert_eq!(n.health_check().target, "/manage/server_status?salt=1&hash=x");

    let g = s("g1");
    assert_eq!(
        g.health_check(),
        HealthCheck {
            target: "/ping".into(),
            status: 204
        }
    );
    assert_eq!(
        g.match_label,
        Some(LabelMatch {
            label: "instance".into(),
            value: Some("edge-5".into())
        })
    );
    assert_eq!(g.api_token, Some(ApiToken("t0k3n".into())));
    assert!(!format!("{c:?}").contains("t0k3n"), "Debug hides the token");
    assert!(g.is_named("10.0.0.5:443"));

    let p = c.prometheus.as_ref().expect("prometheus");
    assert_eq!(p.query_for(ServerKind::Flussonic), "sum by (instance) (fl_clients)");
    assert_eq!(
        p.query_for(ServerKind::Wowza),
        "sum by (instance) (strom_server_clients)"
    );
    let text = c.to_text();
    assert!(
        text.contains("query flussonic \"sum by (instance) (fl_clients)\";"),
        "{text}"
    );
    assert!(text.contains("zone_fallback on;"), "{text}");
    assert!(
        text.contains("    load xml /connectioncounts ConnectionsCurrent;\n    stream_list channels;"),
        "{text}"
    );
    assert_eq!(parse_balancer("b.conf", &text), Ok(c));
}

#[test]
fn a_server_without_a_stream_list_in_no_channel_is_a_warning() {
    let c = ok("server s1 { url http://a; max_clients 1; }\n\
                server w1 { kind wowza; url http://b; max_clients 1; }\n\
                server s2 { url http://c; max_clients 1;\n  stream_list channels; }\n\
                server n1 { kind nimble; url http://d; max_clients 1; }\n\
                channel news { servers n1; }");
    let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "b.conf:2:8: warning: server `w1` is in no `channel` block and learns no stream list (a wowza server), so \
             no viewer is ever sent to it; name it in the `servers` of the channels it plays",
            "b.conf:3:8: warning: server `s2` is in no `channel` block and learns no stream list (`stream_list \
             channels`), so no viewer is ever sent to it; name it in the `servers` of the channels it plays",
        ]
    );
    assert!(c.warnings.iter().all(|w| w.kind == WarningKind::ServerInNoChannel));
    // Warnings are not part of equality, and come back after a round trip.
    let again = parse_balancer("b.conf", &c.to_text()).expect("round trip");
    assert_eq!(again, c);
    assert_eq!(again.warnings.len(), 2);
}

#[test]
fn reading_errors_point_at_the_token() {
    err1_in_server(
        "kind flusonic;",
        "b.conf:2:6: unknown server kind `flusonic`; expected strom, flussonic, wowza, nimble, generic; did you mean \
         `flussonic`?",
    );
    err1_in_server(
        "load yaml /x clients;",
        "b.conf:2:6: unknown load format `yaml`; expected prometheus, json, xml",
    );
    err1_in_server(
        "load jsn /x clients;",
        "b.conf:2:6: unknown load format `jsn`; expected prometheus, json, xml; did you mean `json`?",
    );
    err1_in_server("load json /x;", "b.conf:2:1: `load` takes 3 arguments, got 2");
    err1_in_server(
        "load prometheus /metrics 9x;",
        "b.conf:2:26: bad `load` field: `9x` is not a metric name: use letters, digits, `_` and `:`, not starting \
         with a digit",
    );
    err1_in_server(
        "load json /s a..b;",
        "b.conf:2:14: bad `load` field: the path `a..b` has an empty segment; write keys separated by `.`",
    );
    err1_in_server(
        "load json ftp://x/s a;",
        "b.conf:2:11: bad URL `ftp://x/s`: expected http:// or https://; or write a path starting with `/`, \
         relative to the server's `url`",
    );
    err1_in_server(
        "health http://u:p@x/h;",
        "b.conf:2:8: bad URL `http://u:p@x/h`: it must not carry a user; use `api_auth` or `api_token`; or write a \
         path starting with `/`, relative to the server's `url`",
    );
    err1_in_server(
        "health /h 700;",
        "b.conf:2:11: bad status `700` for `health`: expected an HTTP status 100..599",
    );
    err1_in_server("health //h;", "b.conf:2:8: bad path `//h`: it must not start with `//`");
    err1_in_server(
        "stream_list sometimes;",
        "b.conf:2:13: bad value `sometimes` for `stream_list`: expected api (the server's stream list API) or \
         channels (only `channel` blocks)",
    );
    err1_in_server(
        "match_label 1nstance;",
        "b.conf:2:13: bad label name `1nstance`: use letters, digits and `_`, not starting with a digit",
    );
    err1_in_server("api_token \"\";", "b.conf:2:11: `api_token` must not be empty");
    err1_in_server(
        "kind wowza; kind nimble;",
        "b.conf:2:13: duplicate `kind` in server block; first set at line 2",
    );
}

#[test]
fn reading_settings_must_fit_the_kind() {
    err1(
        "server g { kind generic; url http://a; max_clients 1; }",
        "b.conf:1:8: server `g` is of kind generic and has no `load`; add `load FORMAT URL FIELD;` (FORMAT is \
         prometheus, json or xml)",
    );
    // A misspelt `load` is reported as such only.
    err1(
        "server g { kind generic; url http://a; max_clients 1; lod json /s c; }",
        "b.conf:1:55: unknown directive `lod` in server block; did you mean `load`?",
    );
    err1(
        "server w { kind wowza; url http://a; max_clients 1;\nstream_list api; }\nchannel c { servers w; }",
        "b.conf:2:13: a wowza server has no stream list API; list its streams in `channel` blocks (`stream_list \
         channels`)",
    );
    err1(
        "server f { kind flussonic; url http://a; max_clients 1;\nmatch_label instance; }",
        "b.conf:2:1: `match_label` picks series of a Prometheus metric, but this server's load is read as json",
    );
    // With a Prometheus load it is fine, and the order of directives does not matter.
    ok("server f { match_label instance; load prometheus /m m; kind flussonic; url http://a; max_clients 1; }");
    err1(
        "server f { url http://a; max_clients 1; api_auth u p;\napi_token t; }",
        "b.conf:2:1: a server takes either `api_auth USER PASSWORD` (HTTP Basic) or `api_token TOKEN` (Bearer), not \
         both",
    );
    err1(
        "server f { url http://a; max_clients 1; api_token t;\napi_auth u p; }",
        "b.conf:2:1: a server takes either `api_auth USER PASSWORD` (HTTP Basic) or `api_token TOKEN` (Bearer), not \
         both",
    );
}

#[test]
fn prometheus_queries_per_kind() {
    let c = ok(
        "source prometheus http://p { query wowza 'w'; query 'all'; query nimble \"n\"; }\n\
                server s { url http://a; max_clients 1; }",
    );
    let p = c.prometheus.as_ref().expect("prometheus");
    assert_eq!(p.query_for(ServerKind::Strom), "all");
    assert_eq!(p.query_for(ServerKind::Wowza), "w");
    assert_eq!(p.query_for(ServerKind::Nimble), "n");
    assert_eq!(p.kind_queries.len(), 2);
    assert_eq!(parse_balancer("b.conf", &c.to_text()), Ok(c));
    err1_with_server(
        "source prometheus http://p { query wowza a;\nquery wowza b; }",
        "b.conf:3:7: duplicate `query wowza`; first set at line 2",
    );
    err1_with_server(
        "source prometheus http://p { query a;\nquery b; }",
        "b.conf:3:1: duplicate `query` in source prometheus block; first set at line 2",
    );
    err1_with_server(
        "source prometheus http://p { query wowsa a; }",
        "b.conf:2:36: unknown server kind `wowsa`; expected strom, flussonic, wowza, nimble, generic; did you mean \
         `wowza`?",
    );
    err1_with_server(
        "source prometheus http://p { query nimble ''; }",
        "b.conf:2:43: `query` must not be empty",
    );
}

#[test]
fn zone_fallback_flag() {
    assert!(!ok("server s { url http://a; max_clients 1; }").zone_fallback);
    assert!(ok("zone_fallback;\nserver s { url http://a; max_clients 1; }").zone_fallback);
    assert!(!ok("zone_fallback off;\nserver s { url http://a; max_clients 1; }").zone_fallback);
    err1_with_server(
        "zone_fallback maybe;",
        "b.conf:2:15: bad value `maybe` for `zone_fallback`: expected on or off (or true/false, yes/no)",
    );
    err1_with_server(
        "zone_fallback on;\nzone_fallback off;",
        "b.conf:3:1: duplicate `zone_fallback` at top level; first set at line 2",
    );
    // It marks a balancer file.
    assert!(matches!(
        parse_any("b.conf", "zone_fallback on;\nserver s { url http://a; max_clients 1; }"),
        Ok(AnyConfig::Balancer(_))
    ));
}

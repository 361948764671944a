//! End-to-end tests of [`crate::parse`]: documented samples parse to the
//! expected structs, and every error kind has its exact
//! `FILE:LINE:COL: message` text pinned.

use crate::*;
use std::net::SocketAddr;
use std::time::Duration;

fn ok(text: &str) -> Config {
    match parse("t.conf", text) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors: {e:#?}"),
    }
}

fn errs(text: &str) -> Vec<String> {
    match parse("t.conf", text) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts the single error of a snippet.
fn err1(text: &str, want: &str) {
    assert_eq!(errs(text), [want], "for config:\n{text}");
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("valid test input")
}

fn udp(s: &str) -> Input {
    Input::Udp {
        addr: addr(s),
        iface: None,
        source: None,
        program: None,
    }
}

const EXAMPLE: &str = "\
http 8080;
stream news {
  input udp://239.0.0.1:1234;          # multicast
  input tshttp://10.0.0.5/news.ts;
  backup /srv/slate.ts;
  source_timeout 5;
  segment_duration 2;
}
stream studio { input publish://; ondemand; clients_timeout 30; }
";

#[test]
fn brief_example_parses_with_defaults() {
    let c = ok(EXAMPLE);
    let mut news = StreamConfig::new(
        "news",
        vec![
            udp("239.0.0.1:1234"),
            Input::Http {
                url: "http://10.0.0.5/news.ts".into(),
                program: None,
            },
        ],
    );
    news.backup = Some(Input::File {
        path: "/srv/slate.ts".into(),
        program: None,
    });
    news.source_timeout = Duration::from_secs(5);
    let mut studio = StreamConfig::new("studio", vec![Input::PUBLISH]);
    studio.ondemand = true;
    let want = Config {
        http: vec![addr("[::]:8080")],
        streams: vec![news, studio],
        ..Config::default()
    };
    assert_eq!(c, want);
    assert_eq!(c.streams[0].pos, Pos::new(2, 8));
    assert_eq!(c.streams[1].pos, Pos::new(9, 8));
    let studio = c.stream("studio").expect("valid test input");
    assert_eq!(studio.segment_duration, Duration::from_secs(2));
    assert_eq!(studio.segment_count, 6);
    assert_eq!(studio.source_timeout, Duration::from_secs(10));
    assert_eq!(studio.clients_timeout, Duration::from_secs(30));
    assert!(c.stream("nope").is_none());
    assert_eq!(parse("t.conf", &c.to_text()), Ok(c));
}

#[test]
fn reference_sample_parses() {
    let text = "\
http 8080;
cluster_key abcd;                       # shared secret for node-to-node calls; never sent in clear
peer peer1.example.com;                 # peering: share stream lists, redirect viewers
peer streamer1.local { public streamer1.example.com; }   # redirect viewers to the public address
source streamer:8081 {                  # restream everything the source has
  cluster_key abcd;                     # per-source key overrides the global one
  only cbc football mylive/*;           # white list → static; other streams → ondemand
  except stream1 football;              # black list: hidden; beats `only`
  on_play http://auth.example/check;    # applied to every stream from this source
  backup vod/bunny.mp4;
  dvr /storage 2d 97%;
}
stream NAME { input udp://239.1.1.1:5000; input tshttp://origin/x.ts; backup FILE; source_timeout 10; ondemand; clients_timeout 30; dvr /storage 7d; on_play http://auth.example/check; }
";
    let c = ok(text);
    assert_eq!(c.http, [addr("[::]:8080")]);
    assert_eq!(c.cluster_key.as_deref(), Some("abcd"));
    assert_eq!(c.state_dir, None);
    assert_eq!(
        c.peers,
        [
            PeerConfig {
                addr: "peer1.example.com:8080".into(),
                pos: Pos::default(),
                public: None,
            },
            PeerConfig {
                addr: "streamer1.local:8080".into(),
                pos: Pos::default(),
                public: Some("streamer1.example.com".into()),
            },
        ]
    );
    assert_eq!(c.peers[1].pos, Pos::new(4, 6));
    let dvr = |depth: u64, pct: Option<u8>| DvrConfig {
        root: "/storage".into(),
        depth: Some(Duration::from_secs(depth * 86_400)),
        disk_limit_percent: pct,
        max_size: None,
        offline: false,
    };
    let source = SourceConfig {
        addr: "streamer:8081".into(),
        pos: Pos::default(),
        cluster_key: Some("abcd".into()),
        only: vec!["cbc".into(), "football".into(), "mylive/*".into()],
        except: vec!["stream1".into(), "football".into()],
        on_play: Some(AuthBackend::new("http://auth.example/check")),
        token_secret: None,
        backup: Some(Input::File {
            path: "vod/bunny.mp4".into(),
            program: None,
        }),
        dvr: Some(dvr(2, Some(97))),
        cache: None,
        max_streams: crate::model::DEFAULT_SOURCE_MAX_STREAMS,
    };
    assert_eq!(c.sources, [source]);
    assert_eq!(c.sources[0].pos, Pos::new(5, 8));
    let mut s = StreamConfig::new(
        "NAME",
        vec![
            udp("239.1.1.1:5000"),
            Input::Http {
                url: "http://origin/x.ts".into(),
                program: None,
            },
        ],
    );
    s.backup = Some(Input::File {
        path: "FILE".into(),
        program: None,
    });
    s.ondemand = true;
    s.dvr = Some(dvr(7, None));
    s.on_play = Some(AuthBackend::new("http://auth.example/check"));
    assert_eq!(c.streams, [s]);
    // `dvr` is implemented: no warnings.
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(parse("t.conf", &c.to_text()), Ok(c));
}

#[test]
fn defaults_for_an_empty_file() {
    let c = ok("# nothing here\n");
    assert_eq!(c, Config::default());
    assert_eq!(c.http, [addr("[::]:8080")]);
    assert_eq!(c.cors, Cors::Any);
    assert!(c.warnings.is_empty());
}

#[test]
fn listeners_state_dir_and_values() {
    let c = ok(
        "http 127.0.0.1:8080; http [::1]:8080; http 9000;\nstate_dir /var/lib/strom;\n\
         stream a/b-1.c_d { input udp://@239.0.0.1:1234?iface=10.0.0.1&source=10.1.1.1; \
         input builtin://demo; input file:///srv/a.ts; input https://cdn/x.m3u8; \
         segment_duration 1500ms; segment_count 100; ondemand false; clients_timeout 0; \
         source_timeout 500ms; dvr /d 1000 50% 64K; }",
    );
    assert_eq!(c.http, [addr("127.0.0.1:8080"), addr("[::1]:8080"), addr("[::]:9000")]);
    assert_eq!(c.state_dir, Some("/var/lib/strom".into()));
    let s = c.stream("a/b-1.c_d").expect("valid test input");
    assert_eq!(
        s.inputs[0],
        Input::Udp {
            addr: addr("239.0.0.1:1234"),
            iface: Some("10.0.0.1".parse().expect("valid test input")),
            source: Some("10.1.1.1".parse().expect("valid test input")),
            program: None,
        }
    );
    assert_eq!(s.inputs[1], Input::Builtin { name: "demo".into() });
    assert_eq!(s.segment_duration, Duration::from_millis(1500));
    assert_eq!(s.segment_count, 100);
    assert!(!s.ondemand);
    assert_eq!(s.clients_timeout, Duration::ZERO);
    assert_eq!(s.source_timeout, Duration::from_millis(500));
    assert_eq!(
        s.dvr,
        Some(DvrConfig {
            root: "/d".into(),
            depth: Some(Duration::from_secs(1000)),
            disk_limit_percent: Some(50),
            max_size: Some(64 * 1024),
            offline: false,
        })
    );
    assert_eq!(parse("t.conf", &c.to_text()), Ok(c));
}

#[test]
fn comments_and_quoted_strings() {
    let c = ok("# top comment\n\
         cluster_key \"my # key; {not} a \\\"block\\\" \\\\\"; # trailing\n\
         stream \"quoted\" { # comment after {\n\
           input \"udp://239.0.0.1:1234\"; # ; } {\n\
           on_play http://auth/check#frag;\n\
           backup \"/srv/my slate.ts\";\n\
         }\n");
    assert_eq!(c.cluster_key.as_deref(), Some("my # key; {not} a \"block\" \\"));
    let s = c.stream("quoted").expect("valid test input");
    assert_eq!(s.inputs, [udp("239.0.0.1:1234")]);
    assert_eq!(s.on_play, Some(AuthBackend::new("http://auth/check#frag")));
    assert_eq!(
        s.backup,
        Some(Input::File {
            path: "/srv/my slate.ts".into(),
            program: None
        })
    );
    let text = c.to_text();
    assert!(text.contains("backup \"file:///srv/my slate.ts\";"), "{text}");
    assert_eq!(parse("t.conf", &text), Ok(c));
}

#[test]
fn source_and_peer_forms() {
    let c = ok("source a; source b:9 { only x; only y*; } source [::1]:81;\n\
         peer p; peer [fe80::1] { public pub.example:443; }");
    let addrs: Vec<&str> = c.sources.iter().map(|s| s.addr.as_str()).collect();
    assert_eq!(addrs, ["a:8080", "b:9", "[::1]:81"]);
    assert_eq!(c.sources[1].only, ["x", "y*"]);
    assert_eq!(c.peers[1].addr, "[fe80::1]:8080");
    assert_eq!(c.peers[1].public.as_deref(), Some("pub.example:443"));
    assert_eq!(parse("t.conf", &c.to_text()), Ok(c));
}

#[test]
fn source_max_streams() {
    let c = ok("source a { max_streams 50; } source b;");
    assert_eq!(c.sources[0].max_streams, 50);
    assert_eq!(c.sources[1].max_streams, strom_config_default_max());
    let text = c.to_text();
    assert!(
        text.contains("max_streams 50;") && text.matches("max_streams").count() == 1,
        "{text}"
    );
    assert_eq!(parse("t.conf", &text), Ok(c));
    err1(
        "source a { max_streams 0; }",
        "t.conf:1:24: `max_streams` must be between 1 and 1000000, got 0",
    );
}

fn strom_config_default_max() -> usize {
    crate::model::DEFAULT_SOURCE_MAX_STREAMS
}

#[test]
fn to_text_is_canonical() {
    let c = ok(EXAMPLE);
    let want = "\
http [::]:8080;
client_header_timeout 1m;
keepalive_timeout 75s;
max_connections 10000;
session_timeout 30s;
max_sessions_per_ip 10000;
cors on;

stream news {
    input udp://239.0.0.1:1234;
    input http://10.0.0.5/news.ts;
    backup file:///srv/slate.ts;
    source_timeout 5s;
    segment_duration 2s;
    segment_count 6;
    clients_timeout 30s;
}

stream studio {
    input publish://;
    source_timeout 10s;
    segment_duration 2s;
    segment_count 6;
    ondemand;
    clients_timeout 30s;
}
";
    assert_eq!(c.to_text(), want);
}

// ---- errors: directives ----

#[test]
fn unknown_directive_with_did_you_mean() {
    err1(
        "stream news {\n  input udp://239.0.0.1:1234;\n  sorce_timeout 5;\n}\n",
        "t.conf:3:3: unknown directive `sorce_timeout` in stream block; did you mean `source_timeout`?",
    );
    err1(
        "strem news { input publish://; }",
        "t.conf:1:1: unknown directive `strem` at top level; did you mean `stream`?",
    );
    err1(
        "source s { olny a; }",
        "t.conf:1:12: unknown directive `olny` in source block; did you mean `only`?",
    );
    err1(
        "peer p { pubic q; }",
        "t.conf:1:10: unknown directive `pubic` in peer block; did you mean `public`?",
    );
    err1(
        "frobnicate 1;",
        "t.conf:1:1: unknown directive `frobnicate` at top level",
    );
    // An unknown block is reported once, not once per line inside it.
    err1(
        "location / {\n  listen 80;\n}",
        "t.conf:1:1: unknown directive `location` at top level",
    );
    // So is a balancer block in a node file.
    err1(
        "server {\n  listen 80;\n}",
        "t.conf:1:1: `server` is not allowed in a node config; it belongs in a balancer config",
    );
}

#[test]
fn directive_in_the_wrong_context() {
    err1(
        "input udp://239.0.0.1:1234;",
        "t.conf:1:1: `input` is not allowed at top level; use it inside a `stream` block",
    );
    err1(
        "stream a { input publish://; cluster_key k; }",
        "t.conf:1:30: `cluster_key` is not allowed in stream block; use it at top level or inside a `source` block",
    );
    err1(
        "source s { input publish://; }",
        "t.conf:1:12: `input` is not allowed in source block; use it inside a `stream` block",
    );
    assert_eq!(
        errs("stream a {\n  input publish://;\n\nstream b {\n  input publish://;\n}\n"),
        [
            "t.conf:1:10: block opened here is never closed",
            "t.conf:4:1: `stream` is not allowed in stream block; use it at top level (is a `}` missing before it?)",
        ]
    );
}

#[test]
fn wrong_number_of_arguments() {
    err1(
        "stream a { input publish://; source_timeout 5 6; }",
        "t.conf:1:47: `source_timeout` takes 1 argument, got 2",
    );
    err1(
        "stream a { input; input publish://; }",
        "t.conf:1:12: `input` takes 1 argument, got 0",
    );
    err1(
        "stream a { input publish://; ondemand true false; }",
        "t.conf:1:44: `ondemand` takes at most 1 argument, got 2",
    );
    err1(
        "stream a { input publish://; dvr; }",
        "t.conf:1:30: `dvr` takes 1 to 4 arguments, got 0",
    );
    err1(
        "source s { only; }",
        "t.conf:1:12: `only` takes at least 1 argument, got 0",
    );
    err1("http;", "t.conf:1:1: `http` takes 1 argument, got 0");
    err1(
        "stream { input publish://; }",
        "t.conf:1:1: `stream` takes 1 argument, got 0",
    );
}

#[test]
fn duplicates() {
    err1(
        "stream a { input publish://; }\nstream a { input publish://; }",
        "t.conf:2:8: duplicate stream `a`; first defined at line 1",
    );
    err1(
        "http 8080;\nhttp [::]:8080;",
        "t.conf:2:6: duplicate `http` address [::]:8080; first at line 1",
    );
    err1(
        "stream a {\n  input publish://;\n  source_timeout 5;\n  source_timeout 6;\n}",
        "t.conf:4:3: duplicate `source_timeout` in stream block; first set at line 3",
    );
    err1(
        "cluster_key a;\ncluster_key b;",
        "t.conf:2:1: duplicate `cluster_key` at top level; first set at line 1",
    );
    err1(
        "stream a { input udp://239.0.0.1:1;\n input udp://@239.0.0.1:1; }",
        "t.conf:2:8: duplicate input `udp://239.0.0.1:1`; first at line 1",
    );
    err1(
        "source s;\nsource s:8080;",
        "t.conf:2:8: duplicate source `s:8080`; first at line 1",
    );
    err1(
        "peer p;\npeer p;",
        "t.conf:2:6: duplicate peer `p:8080`; first at line 1",
    );
}

// ---- errors: syntax ----

#[test]
fn unclosed_block() {
    err1(
        "stream a {\n  input publish://;\n",
        "t.conf:1:10: block opened here is never closed",
    );
    assert_eq!(
        errs("peer p {\n  public x {\n"),
        [
            "t.conf:1:8: block opened here is never closed",
            "t.conf:2:12: block opened here is never closed",
            "t.conf:2:12: `public` does not take a block",
        ]
    );
}

#[test]
fn unexpected_tokens() {
    err1("}\nhttp 80;", "t.conf:1:1: unexpected `}`");
    err1("http 80;;", "t.conf:1:9: unexpected `;` without a directive");
    err1("{ http 80; }", "t.conf:1:1: unexpected `{` without a directive name");
    err1("stream a { input publish://; } }", "t.conf:1:32: unexpected `}`");
}

#[test]
fn missing_semicolon() {
    // Before a directive on the next line: reported where the `;` belongs.
    err1(
        "stream a {\n  input udp://239.0.0.1:1\n  input udp://239.0.0.1:2;\n}",
        "t.conf:2:26: missing `;` after `input` directive",
    );
    // Before a directive on the same line.
    err1(
        "stream a { input udp://239.0.0.1:1 input udp://239.0.0.1:2; }",
        "t.conf:1:35: missing `;` after `input` directive",
    );
    // Before `}` and at end of file.
    err1(
        "stream a { input publish:// }",
        "t.conf:1:28: missing `;` after `input` directive",
    );
    err1("http 8080", "t.conf:1:10: missing `;` after `http` directive");
    // A missing `}` too: the next line's `stream` still ends the `input`.
    assert_eq!(
        errs("stream a {\n  input publish://\nstream b {\n  input publish://;\n}\n"),
        [
            "t.conf:1:10: block opened here is never closed",
            "t.conf:2:19: missing `;` after `input` directive",
            "t.conf:3:1: `stream` is not allowed in stream block; use it at top level (is a `}` missing before it?)",
        ]
    );
    // The directive after the missing `;` is still checked.
    assert_eq!(
        errs("stream a {\n  ondemand\n  source_timeout 0;\n}"),
        [
            "t.conf:1:8: stream `a` has no input",
            "t.conf:2:11: missing `;` after `ondemand` directive",
            "t.conf:3:18: `source_timeout` must be between 100ms and 1h, got 0",
        ]
    );
}

#[test]
fn unterminated_string_reports_once() {
    err1(
        "stream a {\n  input publish://;\n  on_play \"http://a/b;\n}\n",
        "t.conf:3:11: unterminated string",
    );
    // The string swallowed the only input: that is not reported again.
    err1(
        "stream a {\n  on_play \"http://a/b;\n  input publish://;\n}\nhttp 80;",
        "t.conf:2:11: unterminated string",
    );
}

#[test]
fn block_vs_simple_directive() {
    err1(
        "stream a { input publish:// { } }",
        "t.conf:1:29: `input` does not take a block",
    );
    err1("stream a;", "t.conf:1:9: `stream` needs a block: `stream ... { ... }`");
    err1("http 80 { }", "t.conf:1:9: `http` does not take a block");
}

#[test]
fn nesting_is_capped() {
    let text = format!(
        "stream a {{ input publish://; {} {} }}",
        "x {".repeat(20),
        "}".repeat(20)
    );
    let e = errs(&text);
    assert!(
        e.contains(&"t.conf:1:30: unknown directive `x` in stream block".to_string()),
        "{e:?}"
    );
    assert!(e.iter().any(|m| m.ends_with("blocks are nested too deeply")), "{e:?}");
    let deep = "{".repeat(100_000);
    let e = errs(&deep);
    // Bounded by the depth cap, not by the input.
    assert!(e.len() <= 2 * crate::syntax::MAX_DEPTH + 3, "{e:?}");
}

// ---- errors: values ----

#[test]
fn bad_inputs() {
    let wrap = |i: &str| format!("stream a {{\n  input {i};\n}}");
    err1(
        &wrap("rtsp://a/b"),
        "t.conf:2:9: unsupported input scheme `rtsp://` in `rtsp://a/b`; supported: udp://, tshttp://, tshttps://, http://, https://, rtmp://, srt://, publish://, file://, builtin://",
    );
    err1(
        &wrap("udp://239.0.0.1"),
        "t.conf:2:9: bad udp URL `udp://239.0.0.1`: missing port, e.g. udp://239.0.0.1:1234",
    );
    err1(
        &wrap("udp://239.0.0.1:1234?iface=eth0"),
        "t.conf:2:9: bad udp URL `udp://239.0.0.1:1234?iface=eth0`: bad multicast iface `eth0`: expected the interface's IPv4 address",
    );
    err1(
        &wrap("tshttp:///news.ts"),
        "t.conf:2:9: bad URL `http:///news.ts`: no host",
    );
    err1(&wrap("http://"), "t.conf:2:9: bad URL `http://`: no host");
    err1(
        &wrap("/srv/a.ts"),
        "t.conf:2:9: bad input `/srv/a.ts`: expected a URL such as udp://239.0.0.1:1234",
    );
    err1(
        "stream a { input publish://; backup publish://; }",
        "t.conf:1:37: `publish://` cannot be a backup; use a file or a URL",
    );
    err1(
        "stream a { input publish://; on_play ftp://x; }",
        "t.conf:1:38: bad URL `ftp://x`: expected http:// or https://",
    );
}

#[test]
fn bad_numbers_durations_sizes() {
    let wrap = |d: &str| format!("stream a {{ input publish://; {d}; }}");
    err1(
        &wrap("source_timeout 5x"),
        "t.conf:1:45: bad duration `5x` for `source_timeout`: expected a whole number with an optional unit ms, s, m, h or d, like 10s",
    );
    err1(
        &wrap("segment_duration 31"),
        "t.conf:1:47: `segment_duration` must be between 1s and 30s, got 31",
    );
    err1(
        &wrap("segment_duration 500ms"),
        "t.conf:1:47: `segment_duration` must be between 1s and 30s, got 500ms",
    );
    err1(
        &wrap("source_timeout 2h"),
        "t.conf:1:45: `source_timeout` must be between 100ms and 1h, got 2h",
    );
    err1(
        &wrap("clients_timeout 2d"),
        "t.conf:1:46: `clients_timeout` must be between 0s and 1d, got 2d",
    );
    err1(
        &wrap("segment_count 1"),
        "t.conf:1:44: `segment_count` must be between 2 and 100, got 1",
    );
    err1(
        &wrap("segment_count 99999999999999999999999"),
        "t.conf:1:44: bad number `99999999999999999999999` for `segment_count`",
    );
    err1(
        &wrap("segment_count six"),
        "t.conf:1:44: bad number `six` for `segment_count`",
    );
    err1(
        &wrap("ondemand maybe"),
        "t.conf:1:39: bad value `maybe` for `ondemand`: expected on or off (or true/false, yes/no)",
    );
    err1(
        &wrap("dvr /s 101%"),
        "t.conf:1:37: `dvr` disk limit must be between 1% and 100%, got 101%",
    );
    err1(
        &wrap("dvr /s 5X"),
        "t.conf:1:37: bad `dvr` value `5X`: expected a depth (7d), a disk limit (97%) or a size (500G)",
    );
    err1(&wrap("dvr /s 1d 2d"), "t.conf:1:40: `dvr` has two depths");
    err1(&wrap("dvr /s 0"), "t.conf:1:37: `dvr` depth must be greater than 0");
    err1(&wrap("dvr \"\" 1d"), "t.conf:1:34: `dvr` needs an archive directory");
    err1(
        "http localhost:80;",
        "t.conf:1:6: bad listen address `localhost:80`: expected PORT, IPV4:PORT or [IPV6]:PORT",
    );
    err1(
        "http 70000;",
        "t.conf:1:6: bad listen address `70000`: expected PORT, IPV4:PORT or [IPV6]:PORT",
    );
    err1("source host:0;", "t.conf:1:8: bad port `0`: expected 1..65535");
    err1(
        "peer ::1;",
        "t.conf:1:6: bad address `::1`: write IPv6 addresses in brackets, like [::1]:8080",
    );
    err1(
        "peer p { public \"a b\"; }",
        "t.conf:1:17: bad `public` address: bad host name `a b`",
    );
    err1(
        "source s { only a/b c$; }",
        "t.conf:1:21: stream name pattern `c$` contains `$`; use letters, digits, `_`, `.`, `-`, `/`, `*` and `?`",
    );
    err1("cluster_key \"\";", "t.conf:1:13: `cluster_key` must not be empty");
}

#[test]
fn bad_stream_names() {
    let wrap = |n: &str| format!("stream {n} {{ input publish://; }}");
    err1(
        &wrap("api/x"),
        "t.conf:1:8: stream name `api/x` collides with the node's own `/api` route",
    );
    err1(
        &wrap("healthz"),
        "t.conf:1:8: stream name `healthz` collides with the node's own `/healthz` route",
    );
    err1(
        &wrap("a/../b"),
        "t.conf:1:8: stream name `a/../b` must not have a `..` segment",
    );
    err1(
        &wrap("/a"),
        "t.conf:1:8: stream name `/a` must not start or end with `/`",
    );
    err1(
        &wrap("a//b"),
        "t.conf:1:8: stream name `a//b` has an empty segment (`//`)",
    );
    err1(
        &wrap("\"a b\""),
        "t.conf:1:8: stream name `a b` contains ` `; use letters, digits, `_`, `.`, `-`, and `/` between segments",
    );
    err1(
        &wrap(&"x".repeat(129)),
        "t.conf:1:8: stream name is 129 characters long; the limit is 128",
    );
    // Errors inside a stream with a bad name are still reported.
    assert_eq!(
        errs("stream api { inptu x; }"),
        [
            "t.conf:1:8: stream name `api` collides with the node's own `/api` route",
            "t.conf:1:14: unknown directive `inptu` in stream block; did you mean `input`?",
        ]
    );
}

#[test]
fn stream_without_input() {
    err1(
        "stream studio { ondemand; }",
        "t.conf:1:8: stream `studio` has no input",
    );
    // An invalid input is reported as itself, not as a missing one.
    err1(
        "stream a { input rtsp://x; }",
        "t.conf:1:18: unsupported input scheme `rtsp://` in `rtsp://x`; supported: udp://, tshttp://, tshttps://, http://, https://, rtmp://, srt://, publish://, file://, builtin://",
    );
}

#[test]
fn all_errors_are_collected_in_order() {
    let text = "\
http 8080
stream news {
  input udp://239.0.0.1;
  sorce_timeout 5;
  segment_duration 60;
}
stream news { input publish://; }
}
";
    assert_eq!(
        errs(text),
        [
            "t.conf:1:10: missing `;` after `http` directive",
            "t.conf:3:9: bad udp URL `udp://239.0.0.1`: missing port, e.g. udp://239.0.0.1:1234",
            "t.conf:4:3: unknown directive `sorce_timeout` in stream block; did you mean `source_timeout`?",
            "t.conf:5:20: `segment_duration` must be between 1s and 30s, got 60",
            "t.conf:7:8: duplicate stream `news`; first defined at line 2",
            "t.conf:8:1: unexpected `}`",
        ]
    );
}

#[test]
fn load_limits() {
    let c = parse("t.conf", "max_clients 2000;\nmax_bitrate 8G;\n").expect("parses");
    assert_eq!(c.max_clients, Some(2000));
    assert_eq!(c.max_bitrate, Some(8_000_000_000));
    assert_eq!(parse("t.conf", &c.to_text()).expect("round trip"), c);
    let e = parse("t.conf", "max_bitrate 8X;\nmax_clients 0;\n").expect_err("bad");
    let msgs: Vec<String> = e.iter().map(|d| d.to_string()).collect();
    assert!(msgs[0].starts_with("t.conf:1:13: bad bitrate `8X`"), "{msgs:?}");
    assert!(
        msgs[1].starts_with("t.conf:2:13: `max_clients` must be between 1 and"),
        "{msgs:?}"
    );
    assert_eq!(crate::parse_bitrate("500k"), Some(500_000));
    assert_eq!(crate::format_bitrate(1_500_000), "1500K");
}

#[test]
fn connection_limits() {
    let c = ok("");
    assert_eq!(c.client_header_timeout, Duration::from_secs(60));
    assert_eq!(c.keepalive_timeout, Duration::from_secs(75));
    assert_eq!(c.max_connections, 10_000);
    let c = ok("client_header_timeout 2s;\nkeepalive_timeout 0;\nmax_connections 50;\n");
    assert_eq!(c.client_header_timeout, Duration::from_secs(2));
    assert_eq!(c.keepalive_timeout, Duration::ZERO);
    assert_eq!(c.max_connections, 50);
    assert_eq!(parse("t.conf", &c.to_text()).expect("round trip"), c);
    let e = parse(
        "t.conf",
        "client_header_timeout 0;\nkeepalive_timeout 2h;\nmax_connections 0;\nmax_connections 5;\nclient_header_timeout soon;\n",
    )
    .expect_err("bad");
    let msgs: Vec<String> = e.iter().map(|d| d.to_string()).collect();
    assert!(
        msgs[0].starts_with("t.conf:1:23: `client_header_timeout` must be between 1s and 1h, got 0"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].starts_with("t.conf:2:19: `keepalive_timeout` must be between 0s and 1h, got 2h"),
        "{msgs:?}"
    );
    assert!(
        msgs[2].starts_with("t.conf:3:17: `max_connections` must be between 1 and 1000000, got 0"),
        "{msgs:?}"
    );
    assert!(
        msgs[3].starts_with("t.conf:4:1: duplicate `max_connections`"),
        "{msgs:?}"
    );
    assert!(
        msgs[4].starts_with("t.conf:5:1: duplicate `client_header_timeout`"),
        "{msgs:?}"
    );
    // Stream blocks do not take them.
    let e = parse("t.conf", "stream a { input publish://; max_connections 5; }\n").expect_err("bad");
    assert_eq!(
        e[0].to_string(),
        "t.conf:1:30: `max_connections` is not allowed in stream block; use it at top level"
    );
}

// ---- cors ----

#[test]
fn cors_forms() {
    assert_eq!(ok("cors on;").cors, Cors::Any);
    assert_eq!(ok("cors off;").cors, Cors::Off);
    assert_eq!(ok("cors yes;").cors, Cors::Any);
    assert_eq!(ok("cors false;").cors, Cors::Off);
    let c = ok("http 8080;\ncors https://a.example https://b.example:8443 http://[::1]:3000;\n");
    assert_eq!(
        c.cors,
        Cors::Origins(vec![
            "https://a.example".into(),
            "https://b.example:8443".into(),
            "http://[::1]:3000".into(),
        ])
    );
    let text = c.to_text();
    assert!(
        text.contains("\ncors https://a.example https://b.example:8443 http://[::1]:3000;\n"),
        "{text}"
    );
    assert_eq!(parse("t.conf", &text), Ok(c));
    for cors in [Cors::Any, Cors::Off] {
        let c = Config {
            cors,
            ..Config::default()
        };
        assert_eq!(parse("t.conf", &c.to_text()), Ok(c));
    }
}

#[test]
fn cors_allow_origin() {
    let portal = Some("https://portal.example");
    assert_eq!(Cors::Any.allow_origin(portal), Some("*"));
    assert_eq!(Cors::Any.allow_origin(None), Some("*"));
    assert_eq!(Cors::Off.allow_origin(portal), None);
    let list = Cors::Origins(vec!["https://portal.example".into(), "http://b".into()]);
    assert_eq!(list.allow_origin(portal), portal);
    assert_eq!(list.allow_origin(Some("http://b")), Some("http://b"));
    assert_eq!(list.allow_origin(Some("https://evil.example")), None);
    assert_eq!(list.allow_origin(Some("https://portal.example.evil")), None);
    assert_eq!(list.allow_origin(None), None);
}

#[test]
fn cors_errors() {
    err1(
        "cors https://a.example/;",
        "t.conf:1:6: bad origin `https://a.example/`: an origin has no path, query or fragment; write `https://a.example`",
    );
    err1(
        "cors https://a.example\n     HTTPS://B.example:443;",
        "t.conf:2:6: bad origin `HTTPS://B.example:443`: browsers leave the default port out of an origin; write `https://b.example`",
    );
    err1(
        "cors *;",
        "t.conf:1:6: bad origin `*`: to allow every origin write `cors on;`",
    );
    err1(
        "cors portal.example.com;",
        "t.conf:1:6: bad origin `portal.example.com`: expected `on`, `off` or origins like https://portal.example.com",
    );
    err1(
        "cors on https://a.example;",
        "t.conf:1:6: `on` cannot be combined with origins; write `cors on;` alone, or list only origins",
    );
    err1(
        "cors https://a.example off;",
        "t.conf:1:24: `off` cannot be combined with origins; write `cors off;` alone, or list only origins",
    );
    err1(
        "cors http://a https://b http://a;",
        "t.conf:1:25: duplicate origin `http://a` in `cors`",
    );
    assert_eq!(
        errs("cors ftp://a http://b/x;"),
        [
            "t.conf:1:6: bad origin `ftp://a`: expected `on`, `off` or origins like https://portal.example.com",
            "t.conf:1:14: bad origin `http://b/x`: an origin has no path, query or fragment; write `http://b`",
        ]
    );
    err1("cors;", "t.conf:1:1: `cors` takes at least 1 argument, got 0");
    err1(
        "cors on;\ncors off;",
        "t.conf:2:1: duplicate `cors` at top level; first set at line 1",
    );
    err1("cors on { }", "t.conf:1:9: `cors` does not take a block");
    err1(
        "cros on;",
        "t.conf:1:1: unknown directive `cros` at top level; did you mean `cors`?",
    );
    err1(
        "stream a { input publish://; cors on; }",
        "t.conf:1:30: `cors` is not allowed in stream block; use it at top level",
    );
    // A missing `;` before `cors` on the next line is caught there.
    err1(
        "http 8080\ncors off;",
        "t.conf:1:10: missing `;` after `http` directive",
    );
    assert_eq!(
        parse_balancer("b.conf", "cors on;\nserver s { url http://a; max_clients 1; }")
            .expect_err("node directive")
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["b.conf:1:1: `cors` is not allowed in a balancer config; it belongs in a node config"]
    );
}

// ---- warnings ----

#[test]
fn a_dvr_that_never_deletes_warns() {
    let c = ok("\
dvr /g;
source origin:8081 { dvr /s 1d; }
stream a { input publish://; dvr /d 95%; }
stream b { input publish://; dvr /d; storage_limit 1G; }
stream c { input publish://; dvr /d; }
");
    let got: Vec<(WarningKind, Pos)> = c
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::DvrUnbounded)
        .map(|w| (w.kind, w.pos()))
        .collect();
    assert_eq!(
        got,
        [
            (WarningKind::DvrUnbounded, Pos::new(1, 1)),
            (WarningKind::DvrUnbounded, Pos::new(5, 30)),
        ]
    );
    assert!(c.warnings[0]
        .to_string()
        .contains("keeps every hour until the disk is full"));
}

#[test]
fn offline_recording_of_a_stream_that_is_not_ondemand_warns() {
    let c = ok("\
http 8080;
dvr /g;
dvr_offline;
source origin:8081 {
  dvr_offline;
  dvr /s 1d;
}
stream a {
  input publish://;
    dvr_offline on;
  dvr /d;
}
stream b { input publish://; dvr /d; dvr_offline; ondemand; }
stream c { input publish://; dvr /d; dvr_offline off; }
stream d { ondemand off; dvr_offline; input publish://; dvr /d; }
");
    // Offline recording matters only for `ondemand` streams: the global and
    // source blocks may hold some, stream `b` is one, `c` does not ask.
    let got: Vec<(WarningKind, Pos)> = c
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::DvrOfflineWithoutOndemand)
        .map(|w| (w.kind, w.pos()))
        .collect();
    assert_eq!(
        got,
        [
            (WarningKind::DvrOfflineWithoutOndemand, Pos::new(10, 5)),
            (WarningKind::DvrOfflineWithoutOndemand, Pos::new(15, 26)),
        ]
    );
    assert_eq!(
        c.warnings
            .iter()
            .find(|w| w.kind == WarningKind::DvrOfflineWithoutOndemand)
            .map(ToString::to_string)
            .unwrap_or_default(),
        "t.conf:10:5: warning: `dvr_offline` changes nothing: stream `a` is not `ondemand`, so it runs and records \
         without viewers anyway"
    );
    assert!(c.warnings.iter().all(|w| w.file == "t.conf"));
    // Warnings are metadata: the round trip has its own, and `==` ignores them.
    let again = parse("t.conf", &c.to_text()).expect("round trip");
    let offline = |w: &&crate::Warning| w.kind == WarningKind::DvrOfflineWithoutOndemand;
    assert_eq!(again.warnings.iter().filter(offline).count(), 2);
    assert_ne!(again.warnings, c.warnings);
    assert_eq!(again, c);
    // The same from `parse_any`.
    let text = "stream a { input publish://; dvr /x 1d; dvr_offline; on_play http://x; }";
    let Ok(AnyConfig::Node(n)) = parse_any("t.conf", text) else {
        panic!("node config")
    };
    assert_eq!(n.warnings.len(), 1);
    assert_eq!(n.warnings[0].pos(), Pos::new(1, 41));
}

#[test]
fn no_warnings_without_ineffective_directives() {
    assert!(ok(EXAMPLE).warnings.is_empty());
    let auth = "on_play http://a/; on_publish http://b/ { fail_open; } token_secret k; session_timeout 1m;\n\
                source s { on_play http://c/ { timeout 1s; } token_secret k2; }\n\
                stream a { input publish://; on_play http://x/; on_publish http://y/; publish_password p; }";
    assert!(ok(auth).warnings.is_empty());
    // `dvr` is implemented, wherever it is written.
    let dvr = "dvr /g 1d; storage_limit 1T; dvr_offline;\n\
               source s { dvr /s 2d 90%; dvr_offline; cache /c 10G; }\n\
               stream a { input publish://; dvr /d 7d 500G; }";
    assert!(ok(dvr).warnings.is_empty());
    // An invalid `on_play` or `dvr` is an error, and not also a warning.
    let text = "stream a { input publish://; on_play ftp://x; dvr /s 0; dvr_offline; }";
    let mut diags = crate::diag::Diags::new("t.conf");
    let lexed = crate::lex::lex(text, &mut diags);
    let tree = crate::syntax::parse_tree(&lexed, crate::schema::FileKind::Node.contexts(), &mut diags);
    crate::check::check(&tree, &mut diags);
    assert!(diags.take_warnings().is_empty());
    let errors: Vec<String> = diags.into_sorted().iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "t.conf:1:38: bad URL `ftp://x`: expected http:// or https://",
            "t.conf:1:54: `dvr` depth must be greater than 0",
        ]
    );
}

// ---- archive (DVR) ----

#[test]
fn dvr_in_all_three_places() {
    let c = ok("\
dvr /storage 7d 95%;
storage_limit 2T;
source origin:8081 {
  dvr_offline;
  dvr /src 2d;
  cache /var/cache/strom 10GB;
}
stream a { input publish://; storage_limit 500G; dvr /a 1h; }
stream b { input publish://; }
");
    let mut global = DvrConfig::new("/storage");
    global.depth = Some(Duration::from_secs(7 * 86_400));
    global.disk_limit_percent = Some(95);
    global.max_size = Some(2 << 40);
    assert_eq!(c.dvr, Some(global.clone()));
    let mut src = DvrConfig::new("/src");
    src.depth = Some(Duration::from_secs(2 * 86_400));
    src.offline = true;
    let source = &c.sources[0];
    assert_eq!(source.dvr, Some(src.clone()));
    assert_eq!(
        source.cache,
        Some(CacheConfig {
            path: "/var/cache/strom".into(),
            size: 10 << 30,
        })
    );
    let mut own = DvrConfig::new("/a");
    own.depth = Some(Duration::from_secs(3600));
    own.max_size = Some(500 << 30);
    let (a, b) = (&c.streams[0], &c.streams[1]);
    assert_eq!(a.dvr, Some(own.clone()));
    assert_eq!(b.dvr, None);
    // Which applies: the stream's own, else its source block's, else the global.
    assert_eq!(c.dvr_for(a, None), Some(own.clone()));
    assert_eq!(c.dvr_for(a, Some(source)), Some(own));
    assert_eq!(c.dvr_for(b, Some(source)), Some(src));
    assert_eq!(c.dvr_for(b, None), Some(global.clone()));
    let plain = SourceConfig::new("plain:8080");
    assert_eq!(c.dvr_for(b, Some(&plain)), Some(global));
    // Nothing anywhere: no archive.
    let none = ok("source o:1 { } stream b { input publish://; }");
    assert_eq!(none.dvr_for(&none.streams[0], Some(&none.sources[0])), None);
    assert_eq!(parse("t.conf", &c.to_text()), Ok(c));
}

#[test]
fn dvr_for_takes_the_first_block_whole() {
    // A stream's own `dvr` does not inherit the global `dvr_offline` or
    // `storage_limit`.
    let c = ok("dvr /g; storage_limit 1T; dvr_offline;\nstream a { input publish://; ondemand; dvr /a; }");
    let d = c.dvr_for(&c.streams[0], None).expect("own dvr");
    assert_eq!(d, DvrConfig::new("/a"));
}

#[test]
fn dvr_directive_order_does_not_matter() {
    let want = {
        let mut d = DvrConfig::new("/d");
        d.depth = Some(Duration::from_secs(86_400));
        d.max_size = Some(10 << 30);
        d.offline = true;
        d
    };
    let orders = [
        "dvr /d 1d; storage_limit 10G; dvr_offline;",
        "storage_limit 10G; dvr_offline; dvr /d 1d;",
        "dvr_offline on; dvr /d 1d; storage_limit 10GB;",
        "dvr_offline yes; dvr /d 10G 1d;",
        "dvr /d 10240M 1d; dvr_offline true;",
    ];
    for body in orders {
        let c = ok(&format!(
            "{body}\nsource o:1 {{ {body} }}\nstream s {{ input publish://; {body} ondemand; }}"
        ));
        assert_eq!(c.dvr.as_ref(), Some(&want), "{body}");
        assert_eq!(c.sources[0].dvr.as_ref(), Some(&want), "{body}");
        assert_eq!(c.streams[0].dvr.as_ref(), Some(&want), "{body}");
        assert!(c.warnings.is_empty(), "{body}");
    }
    // `dvr_offline off` is the default, written out.
    let c = ok("dvr /d; dvr_offline off;");
    assert_eq!(c.dvr, Some(DvrConfig::new("/d")));
}

#[test]
fn dvr_options_need_dvr_in_the_same_block() {
    err1(
        "stream a {\n  input publish://;\n  storage_limit 500G;\n}",
        "t.conf:3:3: `storage_limit` needs `dvr` in the same block",
    );
    err1(
        "source o:1 { dvr_offline; }",
        "t.conf:1:14: `dvr_offline` needs `dvr` in the same block",
    );
    // A global `dvr` does not count for a block, nor a block's for the top.
    assert_eq!(
        errs("dvr /g;\nstream a { input publish://; dvr_offline; storage_limit 1G; }\nsource o:1 { dvr /s; }\nstorage_limit 5G;"),
        [
            "t.conf:2:30: `dvr_offline` needs `dvr` in the same block",
            "t.conf:2:43: `storage_limit` needs `dvr` in the same block",
        ]
    );
    assert_eq!(
        errs("stream a { input publish://; dvr /a; }\nstorage_limit 5G;\ndvr_offline;"),
        [
            "t.conf:2:1: `storage_limit` needs `dvr` in the same block",
            "t.conf:3:1: `dvr_offline` needs `dvr` in the same block",
        ]
    );
}

#[test]
fn dvr_two_sizes() {
    // Whatever the order, the error is at `storage_limit`.
    err1(
        "dvr /d 1d 500G;\nstorage_limit 1T;",
        "t.conf:2:1: `dvr` has two sizes: `storage_limit` and the size on the `dvr` line (line 1); keep one",
    );
    err1(
        "stream a {\n  input publish://;\n  storage_limit 1T;\n  dvr /d 500G;\n}",
        "t.conf:3:3: `dvr` has two sizes: `storage_limit` and the size on the `dvr` line (line 4); keep one",
    );
    err1(
        "source o:1 { dvr /d 1G; storage_limit 1G; }",
        "t.conf:1:25: `dvr` has two sizes: `storage_limit` and the size on the `dvr` line (line 1); keep one",
    );
}

#[test]
fn dvr_option_values_and_counts() {
    let wrap = |body: &str| format!("stream a {{ input publish://; dvr /d; {body}; }}");
    err1(
        &wrap("storage_limit 0"),
        "t.conf:1:52: `storage_limit` size must be greater than 0",
    );
    err1(
        &wrap("storage_limit 0G"),
        "t.conf:1:52: `storage_limit` size must be greater than 0",
    );
    err1(
        &wrap("storage_limit 5g"),
        "t.conf:1:52: bad size `5g` for `storage_limit`: expected a whole number of bytes with an optional binary unit \
         K, M, G or T (or KB, MB, GB, TB), like 500G",
    );
    err1(
        &wrap("storage_limit"),
        "t.conf:1:38: `storage_limit` takes 1 argument, got 0",
    );
    err1(
        &wrap("storage_limit 1G 2G"),
        "t.conf:1:55: `storage_limit` takes 1 argument, got 2",
    );
    err1(
        &wrap("dvr_offline maybe"),
        "t.conf:1:50: bad value `maybe` for `dvr_offline`: expected on or off (or true/false, yes/no)",
    );
    err1(
        &wrap("dvr_offline on off"),
        "t.conf:1:53: `dvr_offline` takes at most 1 argument, got 2",
    );
    err1(
        "dvr_offline { }\ndvr /d;",
        "t.conf:1:13: `dvr_offline` does not take a block",
    );
    // A bare number of bytes is a size for `storage_limit`.
    let c = ok("dvr /d; storage_limit 1000;");
    assert_eq!(c.dvr.and_then(|d| d.max_size), Some(1000));
    // The top-level `dvr` has the stream's checks.
    err1("dvr /s 1d 2d;", "t.conf:1:11: `dvr` has two depths");
    err1("dvr;", "t.conf:1:1: `dvr` takes 1 to 4 arguments, got 0");
    // A bad `dvr` is reported once, not again by its options.
    err1(
        "dvr /s 0; storage_limit 1G; dvr_offline;",
        "t.conf:1:8: `dvr` depth must be greater than 0",
    );
}

#[test]
fn dvr_option_duplicates() {
    err1(
        "dvr /a;\ndvr /b;",
        "t.conf:2:1: duplicate `dvr` at top level; first set at line 1",
    );
    err1(
        "dvr /a; storage_limit 1G;\nstorage_limit 2G;",
        "t.conf:2:1: duplicate `storage_limit` at top level; first set at line 1",
    );
    err1(
        "stream a { input publish://; dvr /a; dvr_offline;\ndvr_offline off; }",
        "t.conf:2:1: duplicate `dvr_offline` in stream block; first set at line 1",
    );
    err1(
        "source o:1 { cache /c 1G;\ncache /d 1G; }",
        "t.conf:2:1: duplicate `cache` in source block; first set at line 1",
    );
}

#[test]
fn cache_errors() {
    err1(
        "source o:1 { cache /c 0; }",
        "t.conf:1:23: `cache` size must be greater than 0",
    );
    err1(
        "source o:1 { cache /c 10x; }",
        "t.conf:1:23: bad size `10x` for `cache`: expected a whole number of bytes with an optional binary unit \
         K, M, G or T (or KB, MB, GB, TB), like 500G",
    );
    assert_eq!(
        errs("source o:1 { cache \"\" 0; }"),
        [
            "t.conf:1:20: `cache` needs a cache directory",
            "t.conf:1:23: `cache` size must be greater than 0",
        ]
    );
    err1(
        "source o:1 { cache /c; }",
        "t.conf:1:14: `cache` takes 2 arguments, got 1",
    );
    err1(
        "source o:1 { cache /c 1G 2G; }",
        "t.conf:1:26: `cache` takes 2 arguments, got 3",
    );
    // Only in source blocks; `cache` inside `on_play` is the decision cache.
    err1(
        "cache /c 1G;",
        "t.conf:1:1: `cache` is not allowed at top level; use it inside a `source` block or inside an `on_play` \
         block or inside an `on_publish` block",
    );
    err1(
        "stream a { input publish://; cache /c 1G; }",
        "t.conf:1:30: `cache` is not allowed in stream block; use it inside a `source` block or inside an \
         `on_play` block or inside an `on_publish` block",
    );
    let c = ok("source o:1 { on_play http://a/ { cache 5s; } cache \"/c c\" 1000; }");
    assert_eq!(
        c.sources[0].on_play.as_ref().map(|b| b.cache),
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        c.sources[0].cache,
        Some(CacheConfig {
            path: "/c c".into(),
            size: 1000,
        })
    );
    assert_eq!(parse("t.conf", &c.to_text()), Ok(c));
}

#[test]
fn dvr_did_you_mean() {
    err1(
        "dvr /d; storage_limt 1G;",
        "t.conf:1:9: unknown directive `storage_limt` at top level; did you mean `storage_limit`?",
    );
    err1(
        "stream a { input publish://; dvr /d; dvr_ofline; }",
        "t.conf:1:38: unknown directive `dvr_ofline` in stream block; did you mean `dvr_offline`?",
    );
    err1(
        "source o:1 { cahce /c 1G; }",
        "t.conf:1:14: unknown directive `cahce` in source block; did you mean `cache`?",
    );
    // A missing `;` before an archive directive is caught as such.
    err1(
        "dvr /d 1d\nstorage_limit 1G;",
        "t.conf:1:10: missing `;` after `dvr` directive",
    );
}

#[test]
fn dvr_text_form() {
    let c = ok("source o:1 { cache /c 1536M; dvr /s 2d 90% 64K; dvr_offline; }\n\
                stream a { input publish://; dvr \"/my dvr\" 3600; }\ndvr /g; dvr_offline off;");
    let text = c.to_text();
    assert!(text.contains("\ndvr /g;\n"), "{text}");
    assert!(
        text.contains("    dvr /s 2d 90%;\n    storage_limit 64K;\n    dvr_offline;\n    cache /c 1536M;\n"),
        "{text}"
    );
    assert!(text.contains("    dvr \"/my dvr\" 1h;\n}"), "{text}");
    assert_eq!(parse("t.conf", &text), Ok(c));
}

#[test]
fn api_credentials() {
    let c = ok("view_auth viewer \"pa ss\";\nedit_auth admin s3cret;");
    assert_eq!(
        c.view_auth.as_ref().map(|c| (c.user.as_str(), c.password.as_str())),
        Some(("viewer", "pa ss"))
    );
    assert_eq!(c.edit_auth.as_ref().map(|c| c.user.as_str()), Some("admin"));
    assert!(
        !format!("{:?}", c.edit_auth).contains("s3cret"),
        "Debug hides the password"
    );
    assert_eq!(parse("t.conf", &c.to_text()), Ok(c));
    err1(
        "view_auth a:b pw;",
        "t.conf:1:11: `view_auth` user name must not contain `:`",
    );
    assert!(parse("t.conf", "edit_auth onlyuser;").is_err());
}

#[test]
fn public_base_url() {
    let c = ok("public https://tv.example.com:8443/;");
    assert_eq!(c.public.as_deref(), Some("https://tv.example.com:8443"));
    assert_eq!(parse("t.conf", &c.to_text()), Ok(c));
    assert!(parse("t.conf", "public ftp://x;").is_err());
    assert!(parse("t.conf", "public https://x/path;").is_err());
}

// ---- authorization: on_play, on_publish, token_secret, publish_password, sessions ----

fn backend(url: &str, timeout_ms: u64, cache_s: u64, fail_open: bool) -> AuthBackend {
    AuthBackend {
        url: url.into(),
        timeout: Duration::from_millis(timeout_ms),
        cache: Duration::from_secs(cache_s),
        fail_open,
    }
}

#[test]
fn auth_defaults() {
    let c = ok("");
    assert_eq!(c.on_play, None);
    assert_eq!(c.on_publish, None);
    assert_eq!(c.token_secret, None);
    assert_eq!(c.session_timeout, Duration::from_secs(30));
    assert_eq!(c.max_sessions_per_ip, 10_000);
    let b = AuthBackend::new("http://a/");
    assert_eq!(b, backend("http://a/", 3_000, 30, false));
    assert_eq!(b.timeout, crate::model::DEFAULT_AUTH_TIMEOUT);
    assert_eq!(b.cache, crate::model::DEFAULT_AUTH_CACHE);
    let s = StreamConfig::new("a", vec![Input::PUBLISH]);
    assert_eq!(
        (s.on_play, s.on_publish, s.token_secret, s.publish_password),
        (None, None, None, None)
    );
    let s = SourceConfig::new("a:1");
    assert_eq!((s.on_play, s.token_secret), (None, None));
}

#[test]
fn auth_directives_at_top_level() {
    let c = ok("\
on_play http://auth.example/play?site=1;
on_publish https://auth.example/publish {
  timeout 2s;
  fail_open;
}
token_secret \"s3cr3t key\";
session_timeout 1m;
max_sessions_per_ip 50;
");
    assert_eq!(c.on_play, Some(AuthBackend::new("http://auth.example/play?site=1")));
    assert_eq!(
        c.on_publish,
        Some(backend("https://auth.example/publish", 2_000, 30, true))
    );
    assert_eq!(c.token_secret.as_deref(), Some("s3cr3t key"));
    assert_eq!(c.session_timeout, Duration::from_secs(60));
    assert_eq!(c.max_sessions_per_ip, 50);
    assert!(c.warnings.is_empty());
    let text = c.to_text();
    let want = "\
http [::]:8080;
client_header_timeout 1m;
keepalive_timeout 75s;
max_connections 10000;
session_timeout 1m;
max_sessions_per_ip 50;
cors on;
token_secret \"s3cr3t key\";
on_play http://auth.example/play?site=1 {
    timeout 3s;
    cache 30s;
}
on_publish https://auth.example/publish {
    timeout 2s;
    cache 30s;
    fail_open;
}
";
    assert_eq!(text, want);
    assert_eq!(parse("t.conf", &text), Ok(c));
}

#[test]
fn auth_directives_in_stream_blocks() {
    let c = ok("\
stream a {
  input publish://;
  on_play http://auth/play { cache 1d; timeout 100ms; }
  on_publish http://auth/publish;
  token_secret k1;
  publish_password pw;
}
stream b { input publish://; password \"old name\"; }
stream c { input publish://; on_play http://x/ { } }
");
    let a = c.stream("a").expect("stream a");
    assert_eq!(a.on_play, Some(backend("http://auth/play", 100, 86_400, false)));
    assert_eq!(a.on_publish, Some(AuthBackend::new("http://auth/publish")));
    assert_eq!(a.token_secret.as_deref(), Some("k1"));
    assert_eq!(a.publish_password.as_deref(), Some("pw"));
    // `password` is Flussonic's older name for the same setting.
    let b = c.stream("b").expect("stream b");
    assert_eq!(b.publish_password.as_deref(), Some("old name"));
    assert_eq!((&b.on_play, &b.on_publish, &b.token_secret), (&None, &None, &None));
    // An empty block is the simple form.
    assert_eq!(
        c.stream("c").expect("stream c").on_play,
        Some(AuthBackend::new("http://x/"))
    );
    assert_eq!(c.on_play, None);
    let text = c.to_text();
    assert!(
        text.contains(
            "    on_play http://auth/play {\n        timeout 100ms;\n        cache 1d;\n    }\n    \
             on_publish http://auth/publish {\n        timeout 3s;\n        cache 30s;\n    }\n    \
             token_secret k1;\n    publish_password pw;\n"
        ),
        "{text}"
    );
    assert!(text.contains("    publish_password \"old name\";\n"), "{text}");
    assert!(!text.contains("    password"), "{text}");
    assert_eq!(parse("t.conf", &text), Ok(c));
}

#[test]
fn auth_directives_in_source_blocks() {
    let c = ok("\
source origin:8081 {
  on_play http://auth/ { fail_open on; timeout 60s; cache 1s; }
  token_secret k;
}
source other;
");
    let s = &c.sources[0];
    assert_eq!(s.on_play, Some(backend("http://auth/", 60_000, 1, true)));
    assert_eq!(s.token_secret.as_deref(), Some("k"));
    assert_eq!((&c.sources[1].on_play, &c.sources[1].token_secret), (&None, &None));
    let text = c.to_text();
    assert!(
        text.contains(
            "source origin:8081 {\n    on_play http://auth/ {\n        timeout 1m;\n        cache 1s;\n        \
             fail_open;\n    }\n    token_secret k;\n}\n"
        ),
        "{text}"
    );
    assert_eq!(parse("t.conf", &text), Ok(c));
}

#[test]
fn fail_open_is_a_flag() {
    let fail_open = |opt: &str| {
        let c = ok(&format!("on_play http://a/ {{ {opt} }}"));
        c.on_play.expect("on_play").fail_open
    };
    assert!(fail_open("fail_open;"));
    assert!(fail_open("fail_open on;"));
    assert!(fail_open("fail_open true;"));
    assert!(fail_open("fail_open yes;"));
    assert!(!fail_open("fail_open off;"));
    assert!(!fail_open("fail_open false;"));
    assert!(!fail_open("fail_open no;"));
    assert!(!fail_open(""));
    err1(
        "on_play http://a/ { fail_open maybe; }",
        "t.conf:1:31: bad value `maybe` for `fail_open`: expected on or off (or true/false, yes/no)",
    );
    err1(
        "on_play http://a/ { fail_open on off; }",
        "t.conf:1:34: `fail_open` takes at most 1 argument, got 2",
    );
}

#[test]
fn auth_value_errors() {
    err1(
        "on_play ftp://auth/;",
        "t.conf:1:9: bad URL `ftp://auth/`: expected http:// or https://",
    );
    err1(
        "stream a { input publish://; on_publish auth.example; }",
        "t.conf:1:41: bad URL `auth.example`: expected http:// or https://",
    );
    err1(
        "source s { on_play http:///x; }",
        "t.conf:1:20: bad URL `http:///x`: no host",
    );
    err1(
        "on_play http://a/ { timeout 99ms; }",
        "t.conf:1:29: `timeout` must be between 100ms and 1m, got 99ms",
    );
    err1(
        "on_play http://a/ {\n  timeout 61s;\n}",
        "t.conf:2:11: `timeout` must be between 100ms and 1m, got 61s",
    );
    err1(
        "on_publish http://a/ { cache 0; }",
        "t.conf:1:30: `cache` must be between 1s and 1d, got 0",
    );
    err1(
        "on_publish http://a/ { cache 2d; }",
        "t.conf:1:30: `cache` must be between 1s and 1d, got 2d",
    );
    err1(
        "on_play http://a/ { cache soon; }",
        "t.conf:1:27: bad duration `soon` for `cache`: expected a whole number with an optional unit ms, s, m, h or d, like 10s",
    );
    err1(
        "session_timeout 4s;",
        "t.conf:1:17: `session_timeout` must be between 5s and 1h, got 4s",
    );
    err1(
        "session_timeout 2h;",
        "t.conf:1:17: `session_timeout` must be between 5s and 1h, got 2h",
    );
    err1(
        "max_sessions_per_ip 0;",
        "t.conf:1:21: `max_sessions_per_ip` must be between 1 and 1000000, got 0",
    );
    err1(
        "max_sessions_per_ip 1000001;",
        "t.conf:1:21: `max_sessions_per_ip` must be between 1 and 1000000, got 1000001",
    );
    err1(
        "max_sessions_per_ip many;",
        "t.conf:1:21: bad number `many` for `max_sessions_per_ip`",
    );
    // The ends of every range are allowed.
    let c = ok("session_timeout 5s; max_sessions_per_ip 1000000;\n\
                on_play http://a/ { timeout 60s; cache 1s; }\n\
                on_publish http://b/ { timeout 100ms; cache 86400; }");
    assert_eq!(c.session_timeout, Duration::from_secs(5));
    assert_eq!(c.max_sessions_per_ip, 1_000_000);
    assert_eq!(c.on_play, Some(backend("http://a/", 60_000, 1, false)));
    assert_eq!(c.on_publish, Some(backend("http://b/", 100, 86_400, false)));
    assert_eq!(ok("session_timeout 1h;").session_timeout, Duration::from_secs(3600));
    assert_eq!(ok("max_sessions_per_ip 1;").max_sessions_per_ip, 1);
}

#[test]
fn empty_secrets_are_refused() {
    err1("token_secret \"\";", "t.conf:1:14: `token_secret` must not be empty");
    err1(
        "source s { token_secret \"\"; }",
        "t.conf:1:25: `token_secret` must not be empty",
    );
    err1(
        "stream a { input publish://; token_secret \"\"; }",
        "t.conf:1:43: `token_secret` must not be empty",
    );
    err1(
        "stream a { input publish://; publish_password \"\"; }",
        "t.conf:1:47: `publish_password` must not be empty",
    );
    err1(
        "stream a { input publish://; password \"\"; }",
        "t.conf:1:39: `password` must not be empty",
    );
}

#[test]
fn auth_argument_and_block_shape_errors() {
    err1("on_play;", "t.conf:1:1: `on_play` takes 1 argument, got 0");
    err1(
        "on_play http://a/ http://b/;",
        "t.conf:1:19: `on_play` takes 1 argument, got 2",
    );
    err1(
        "stream a { input publish://; on_publish { timeout 1s; } }",
        "t.conf:1:30: `on_publish` takes 1 argument, got 0",
    );
    err1(
        "token_secret a b;",
        "t.conf:1:16: `token_secret` takes 1 argument, got 2",
    );
    err1(
        "stream a { input publish://; publish_password; }",
        "t.conf:1:30: `publish_password` takes 1 argument, got 0",
    );
    err1(
        "session_timeout 30s { }",
        "t.conf:1:21: `session_timeout` does not take a block",
    );
    err1(
        "stream a { input publish://; token_secret k { } }",
        "t.conf:1:45: `token_secret` does not take a block",
    );
    err1(
        "on_play http://a/ { timeout; }",
        "t.conf:1:21: `timeout` takes 1 argument, got 0",
    );
    err1(
        "on_play http://a/ { cache 1s 2s; }",
        "t.conf:1:30: `cache` takes 1 argument, got 2",
    );
    err1(
        "on_play http://a/ { timeout 1s { } }",
        "t.conf:1:32: `timeout` does not take a block",
    );
    // A forgotten `;` inside the block is found at the next option.
    err1(
        "on_play http://a/ {\n  timeout 3s\n  cache 5s;\n}",
        "t.conf:2:13: missing `;` after `timeout` directive",
    );
    err1(
        "stream a {\n  input publish://\n  on_play http://a/;\n}",
        "t.conf:2:19: missing `;` after `input` directive",
    );
}

#[test]
fn auth_unknown_and_misplaced_directives() {
    err1(
        "on_play http://a/ { timout 3s; }",
        "t.conf:1:21: unknown directive `timout` in on_play block; did you mean `timeout`?",
    );
    err1(
        "stream a { input publish://; on_publish http://a/ { fail_opne; } }",
        "t.conf:1:53: unknown directive `fail_opne` in on_publish block; did you mean `fail_open`?",
    );
    err1(
        "source s { on_play http://a/ { retries 3; } }",
        "t.conf:1:32: unknown directive `retries` in on_play block",
    );
    err1(
        "stream a { input publish://; on_paly http://a/; }",
        "t.conf:1:30: unknown directive `on_paly` in stream block; did you mean `on_play`?",
    );
    err1(
        "stream a { input publish://; publish_pasword x; }",
        "t.conf:1:30: unknown directive `publish_pasword` in stream block; did you mean `publish_password`?",
    );
    err1(
        "token_secrte k;",
        "t.conf:1:1: unknown directive `token_secrte` at top level; did you mean `token_secret`?",
    );
    err1(
        "sesion_timeout 30s;",
        "t.conf:1:1: unknown directive `sesion_timeout` at top level; did you mean `session_timeout`?",
    );
    err1(
        "max_session_per_ip 5;",
        "t.conf:1:1: unknown directive `max_session_per_ip` at top level; did you mean `max_sessions_per_ip`?",
    );
    err1(
        "publish_password pw;",
        "t.conf:1:1: `publish_password` is not allowed at top level; use it inside a `stream` block",
    );
    err1(
        "password pw;",
        "t.conf:1:1: `password` is not allowed at top level; use it inside a `stream` block",
    );
    err1(
        "stream a { input publish://; session_timeout 30s; }",
        "t.conf:1:30: `session_timeout` is not allowed in stream block; use it at top level",
    );
    err1(
        "stream a { input publish://; max_sessions_per_ip 5; }",
        "t.conf:1:30: `max_sessions_per_ip` is not allowed in stream block; use it at top level",
    );
    err1(
        "source s { on_publish http://a/; }",
        "t.conf:1:12: `on_publish` is not allowed in source block; use it at top level or inside a `stream` block",
    );
    err1(
        "source s { publish_password pw; }",
        "t.conf:1:12: `publish_password` is not allowed in source block; use it inside a `stream` block",
    );
    err1(
        "peer p { on_play http://a/; }",
        "t.conf:1:10: `on_play` is not allowed in peer block; use it at top level or inside a `stream` block or inside a `source` block",
    );
    err1(
        "peer p { token_secret k; }",
        "t.conf:1:10: `token_secret` is not allowed in peer block; use it at top level or inside a `stream` block or inside a `source` block",
    );
    err1(
        "timeout 3s;",
        "t.conf:1:1: `timeout` is not allowed at top level; use it inside an `on_play` block or inside an `on_publish` block",
    );
    err1(
        "stream a { input publish://; fail_open; }",
        "t.conf:1:30: `fail_open` is not allowed in stream block; use it inside an `on_play` block or inside an `on_publish` block",
    );
    err1(
        "on_play http://a/ { token_secret k; }",
        "t.conf:1:21: `token_secret` is not allowed in on_play block; use it at top level or inside a `stream` block or inside a `source` block",
    );
    err1(
        "on_play http://a/ { on_play http://b/; }",
        "t.conf:1:21: `on_play` is not allowed in on_play block; use it at top level or inside a `stream` block or inside a `source` block",
    );
    // A block that belongs at top level, inside an option block: a `}` is missing.
    assert_eq!(
        errs("on_play http://a/ {\n  timeout 1s;\nstream a { input publish://; }\n"),
        [
            "t.conf:1:19: block opened here is never closed",
            "t.conf:3:1: `stream` is not allowed in on_play block; use it at top level (is a `}` missing before it?)",
        ]
    );
    // A balancer file does not take them.
    assert_eq!(
        parse_balancer(
            "b.conf",
            "on_play http://a/;\nserver s { url http://a; max_clients 1; }"
        )
        .expect_err("node directive")
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>(),
        ["b.conf:1:1: `on_play` is not allowed in a balancer config; it belongs in a node config"]
    );
}

#[test]
fn auth_duplicates() {
    err1(
        "on_play http://a/;\non_play http://b/;",
        "t.conf:2:1: duplicate `on_play` at top level; first set at line 1",
    );
    err1(
        "on_publish http://a/ { }\non_publish http://b/;",
        "t.conf:2:1: duplicate `on_publish` at top level; first set at line 1",
    );
    err1(
        "token_secret a;\ntoken_secret b;",
        "t.conf:2:1: duplicate `token_secret` at top level; first set at line 1",
    );
    err1(
        "session_timeout 10s;\nsession_timeout 20s;",
        "t.conf:2:1: duplicate `session_timeout` at top level; first set at line 1",
    );
    err1(
        "max_sessions_per_ip 1;\nmax_sessions_per_ip 2;",
        "t.conf:2:1: duplicate `max_sessions_per_ip` at top level; first set at line 1",
    );
    err1(
        "stream a {\n  input publish://;\n  on_play http://a/;\n  on_play http://b/ { timeout 1s; }\n}",
        "t.conf:4:3: duplicate `on_play` in stream block; first set at line 3",
    );
    err1(
        "stream a {\n  input publish://;\n  on_publish http://a/;\n  on_publish http://b/;\n}",
        "t.conf:4:3: duplicate `on_publish` in stream block; first set at line 3",
    );
    err1(
        "stream a {\n  input publish://;\n  token_secret a;\n  token_secret b;\n}",
        "t.conf:4:3: duplicate `token_secret` in stream block; first set at line 3",
    );
    err1(
        "stream a {\n  input publish://;\n  publish_password a;\n  publish_password b;\n}",
        "t.conf:4:3: duplicate `publish_password` in stream block; first set at line 3",
    );
    err1(
        "stream a {\n  input publish://;\n  password a;\n  password b;\n}",
        "t.conf:4:3: duplicate `password` in stream block; first set at line 3",
    );
    // The two names of one setting, either way round.
    err1(
        "stream a {\n  input publish://;\n  publish_password a;\n  password b;\n}",
        "t.conf:4:3: duplicate `password` in stream block: `password` is another name for `publish_password`, first set at line 3",
    );
    err1(
        "stream a {\n  input publish://;\n  password a;\n  publish_password b;\n}",
        "t.conf:4:3: duplicate `publish_password` in stream block: `password` is another name for `publish_password`, first set at line 3",
    );
    err1(
        "source s {\n  on_play http://a/;\n  on_play http://b/;\n}",
        "t.conf:3:3: duplicate `on_play` in source block; first set at line 2",
    );
    err1(
        "source s {\n  token_secret a;\n  token_secret b;\n}",
        "t.conf:3:3: duplicate `token_secret` in source block; first set at line 2",
    );
    err1(
        "on_play http://a/ {\n  timeout 1s;\n  timeout 2s;\n}",
        "t.conf:3:3: duplicate `timeout` in on_play block; first set at line 2",
    );
    err1(
        "on_publish http://a/ { cache 1s;\n cache 2s; }",
        "t.conf:2:2: duplicate `cache` in on_publish block; first set at line 1",
    );
    err1(
        "on_play http://a/ { fail_open;\nfail_open off; }",
        "t.conf:2:1: duplicate `fail_open` in on_play block; first set at line 1",
    );
    // One block each for on_play and on_publish, and per stream: no clash.
    let c = ok(
        "on_play http://a/ { timeout 1s; }\non_publish http://a/ { timeout 1s; }\n\
                stream a { input publish://; on_play http://a/; }\nstream b { input publish://; on_play http://a/; }",
    );
    assert_eq!(c.streams.len(), 2);
}

#[test]
fn auth_errors_are_all_collected() {
    // A bad URL does not hide the errors of its block, and the other way round.
    assert_eq!(
        errs("on_play ftp://a/ {\n  timeout 0;\n  cache 2d;\n  fail_open maybe;\n  retry 1;\n}\nsession_timeout 1s;"),
        [
            "t.conf:1:9: bad URL `ftp://a/`: expected http:// or https://",
            "t.conf:2:11: `timeout` must be between 100ms and 1m, got 0",
            "t.conf:3:9: `cache` must be between 1s and 1d, got 2d",
            "t.conf:4:13: bad value `maybe` for `fail_open`: expected on or off (or true/false, yes/no)",
            "t.conf:5:3: unknown directive `retry` in on_play block",
            "t.conf:7:17: `session_timeout` must be between 5s and 1h, got 1s",
        ]
    );
}

#[test]
fn parse_any_reads_auth_directives_as_a_node_config() {
    let text = "on_play http://a/ { timeout 1s; }\ntoken_secret k;\nstream a { input publish://; password p; }";
    let Ok(AnyConfig::Node(c)) = parse_any("t.conf", text) else {
        panic!("node config")
    };
    assert_eq!(c, ok(text));
    assert_eq!(c.streams[0].publish_password.as_deref(), Some("p"));
}

#[test]
fn dvr_example_parses() {
    let c = ok(include_str!("../../../examples/dvr/node.conf"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let source = &c.sources[0];
    let (news, studio, demo) = (&c.streams[0], &c.streams[1], &c.streams[2]);
    let at = |s: &StreamConfig, src| c.dvr_for(s, src).map(|d| (d.root, d.max_size, d.offline));
    assert_eq!(at(news, None), Some(("/mnt/big".into(), Some(2 << 40), false)));
    assert_eq!(at(studio, None), Some(("/var/lib/strom/dvr".into(), None, true)));
    assert_eq!(at(demo, None), Some(("/var/lib/strom/dvr".into(), None, false)));
    // A stream restreamed from the source, as the node makes it.
    let sport = StreamConfig::new("sport", vec![Input::PUBLISH]);
    assert_eq!(
        at(&sport, Some(source)),
        Some(("/mnt/archive".into(), Some(500 << 30), true))
    );
    assert_eq!(source.cache.as_ref().map(|c| c.size), Some(50 << 30));
    assert_eq!(parse("t.conf", &c.to_text()), Ok(c));
}

#[test]
fn rtmp_and_srt_listeners_parse_and_print_back() {
    let c = ok("http 8080;\nrtmp 1935;\nrtmp 127.0.0.1:1936;\nsrt 9998;\nsrt 127.0.0.1:9999 latency=250 passphrase=0123456789ab;\nstream a { input publish://; }\n");
    assert_eq!(c.rtmp, vec![addr("[::]:1935"), addr("127.0.0.1:1936")]);
    assert_eq!(c.srt.len(), 2);
    assert_eq!(c.srt[0].latency, crate::SRT_DEFAULT_LATENCY);
    assert_eq!(c.srt[0].passphrase, None);
    assert_eq!(c.srt[1].addr, addr("127.0.0.1:9999"));
    assert_eq!(c.srt[1].latency, Duration::from_millis(250));
    assert_eq!(c.srt[1].passphrase.as_deref(), Some("0123456789ab"));
    let c = ok("srt 9998 latency=300ms;\nstream a { input publish://; input srt://h:1?latency=1s; }\n");
    assert_eq!(c.srt[0].latency, Duration::from_millis(300));
    match &c.streams[0].inputs[1] {
        Input::Srt { latency, .. } => assert_eq!(*latency, Duration::from_secs(1)),
        other => panic!("{other:?}"),
    }
    let back = ok(&c.to_text());
    assert_eq!(back, c);
}

/// Asserts that a snippet's single error contains `want`.
fn err_has(text: &str, want: &str) {
    let e = errs(text);
    assert!(e.len() == 1 && e[0].contains(want), "for config:\n{text}\ngot {e:?}");
}

#[test]
fn rtmp_and_srt_listener_mistakes_are_errors() {
    err_has(
        "rtmp 1935;\nrtmp 1935;\nstream a { input publish://; }\n",
        "already a listener",
    );
    err_has(
        "http 8080;\nrtmp 8080;\nstream a { input publish://; }\n",
        "also an `http` listener",
    );
    err_has("srt 9998 latency=5;\nstream a { input publish://; }\n", "bad latency");
    err_has(
        "srt 9998 passphrase=short;\nstream a { input publish://; }\n",
        "10 to 79 characters",
    );
    err_has(
        "srt 9998 pbkeylen=16;\nstream a { input publish://; }\n",
        "unknown `srt` option",
    );
    err_has(
        "srt 9998;\nsrt 9998;\nstream a { input publish://; }\n",
        "duplicate `srt` address",
    );
}

#[test]
fn rtmp_and_srt_inputs_parse_and_print_back() {
    let cases = [
        ("rtmp://origin.example/live/news", "rtmp://origin.example/live/news"),
        (
            "rtmp://10.0.0.1:1936/live/a/b?token=x",
            "rtmp://10.0.0.1:1936/live/a/b?token=x",
        ),
        (
            "srt://10.0.0.2:9000?streamid=#!::r=news,m=request&passphrase=0123456789&latency=200",
            "srt://10.0.0.2:9000?streamid=%23!::r=news,m=request&passphrase=0123456789&latency=200",
        ),
        (
            "srt://[::1]:9000?latency=120&program=3&mode=caller",
            "srt://[::1]:9000?program=3",
        ),
        (
            "srt://h.example:9000?streamid=a%26b",
            "srt://h.example:9000?streamid=a%26b",
        ),
    ];
    for (text, canonical) in cases {
        let i: Input = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(i.to_string(), canonical, "{text}");
        assert_eq!(canonical.parse::<Input>().expect("canonical parses"), i, "{text}");
    }
    let srt: Input = "srt://h:1?streamid=%23!::r=x,m=request".parse().expect("valid");
    match srt {
        Input::Srt { streamid, latency, .. } => {
            assert_eq!(streamid.as_deref(), Some("#!::r=x,m=request"));
            assert_eq!(latency, crate::SRT_DEFAULT_LATENCY);
        }
        other => panic!("{other:?}"),
    }
    let rtmp: Input = "rtmp://h/live/news".parse().expect("valid");
    assert_eq!(
        rtmp,
        Input::Rtmp {
            host: "h".into(),
            port: None,
            app: "live".into(),
            name: "news".into()
        }
    );
    for bad in [
        "rtmp://h",
        "rtmp://h/live",
        "rtmp://h/live/",
        "rtmp:///live/x",
        "rtmp://h:0/live/x",
        "srt://h",
        "srt://:9000",
        "srt://h:9000?passphrase=short",
        "srt://h:9000?latency=1",
        "srt://h:9000?mode=listener",
        "srt://h:9000?foo=1",
        "srt://h:9000?streamid=%zz",
        "srt://h:9000?program=1&program=2",
    ] {
        assert!(bad.parse::<Input>().is_err(), "{bad} should be refused");
    }
}

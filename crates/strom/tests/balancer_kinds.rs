//! The balancer in front of a mixed farm: a real strom node beside scripted
//! Flussonic-, Wowza- and Nimble-like servers that answer as those products
//! document their APIs (shapes and field names from the references in
//! `strom_config::server_kind`; the numbers are the tests'). Covers spread by
//! ratio, a foreign server going Down or full, Prometheus per kind with a
//! real Prometheus, zone fallback on and off, and hostile answers.

mod common;
#[path = "common/scripted.rs"]
mod scripted;

use common::*;
use scripted::{Body, Reply, Request, Scripted};
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

use common::streamer::Balancer;

/// A balancer with `refresh 500ms` and `body`.
fn start(body: &str) -> Balancer {
    start_with("500ms", body)
}

fn start_with(refresh: &str, body: &str) -> Balancer {
    Balancer::start_on(0, &format!("refresh {refresh};\n{body}"))
}

/// What these tests ask a balancer.
trait Ask {
    /// `/api/v1/route` for `stream` (and `extra` query): status and JSON.
    fn route(&self, stream: &str, extra: &str) -> (u16, serde_json::Value) {
        let (c, b) = get(&self.at(&format!("/api/v1/route?stream={stream}{extra}")));
        (c, serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null))
    }

    fn routed_to(&self, stream: &str, extra: &str) -> Option<String> {
        let (c, v) = self.route(stream, extra);
        (c == 200).then(|| v["server"].as_str().unwrap_or("").to_string())
    }

    fn servers_text(&self) -> String {
        get_text(&self.at("/api/v1/servers")).1
    }

    /// The `/api/v1/servers` entry of `name`.
    fn server(&self, name: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.servers_text()).unwrap_or_default();
        v["servers"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or_default()
    }

    fn up(&self, name: &str) -> bool {
        self.server(name)["up"] == true
    }

    fn metrics(&self) -> String {
        get_text(&self.at("/metrics")).1
    }

    fn at(&self, path: &str) -> String;
}

impl Ask for Balancer {
    fn at(&self, path: &str) -> String {
        self.url(path)
    }
}

/// The value of one sample line of a metrics text (`name{labels}`), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

// ---- the scripted servers ----

/// What a scripted server reports; the test changes it while it runs.
#[derive(Default)]
struct Reported {
    clients: u64,
    /// The health probe answers 503.
    down: bool,
}

type Shared = Arc<Mutex<Reported>>;

fn reported(clients: u64) -> Shared {
    Arc::new(Mutex::new(Reported { clients, down: false }))
}

fn set_clients(s: &Shared, n: u64) {
    s.lock().unwrap_or_else(|e| e.into_inner()).clients = n;
}

fn add_client(s: &Shared) {
    s.lock().unwrap_or_else(|e| e.into_inner()).clients += 1;
}

fn set_down(s: &Shared, down: bool) {
    s.lock().unwrap_or_else(|e| e.into_inner()).down = down;
}

fn read(s: &Shared) -> (u64, bool) {
    let r = s.lock().unwrap_or_else(|e| e.into_inner());
    (r.clients, r.down)
}

/// Flussonic's API v3 as its reference describes it: the liveness probe,
/// `config/stats` (a ServerStats object with `total_clients`), and the
/// stream list in two cursor pages (StreamConfig objects with `static`,
/// `disabled` and `stats.alive`). Every API path wants HTTP Basic `api:s3cret`.
/// `/flussonic/api/metrics` (the path of Flussonic's Prometheus page) serves
/// `metric_clients` + 1000 under a metric name of this test's choosing, so a
/// test can tell a count read through Prometheus from one read directly.
fn flussonic(state: Shared, streams: &'static [&'static str]) -> Scripted {
    const AUTH: &str = "Basic YXBpOnMzY3JldA=="; // api:s3cret
    Scripted::start(move |r: &Request| {
        if r.authorization.as_deref() != Some(AUTH) {
            return Reply::status(401);
        }
        let (clients, down) = read(&state);
        match r.path() {
            "/streamer/api/v3/monitoring/liveness" if down => Reply::status(503),
            "/streamer/api/v3/monitoring/liveness" => Reply::json(r#"{"server_version":"24.04","now":1700000000000}"#),
            "/streamer/api/v3/config/stats" => Reply::json(format!(
                r#"{{"cpu_usage":7,"memory_usage":31,"total_bandwidth":350000,"total_clients":{clients},"streamer_status":"running"}}"#
            )),
            "/streamer/api/v3/streams" => {
                let entry =
                    |n: &str| format!(r#"{{"name":"{n}","static":true,"stats":{{"alive":true,"online_clients":1}}}}"#);
                let (half, rest) = streams.split_at(streams.len() / 2);
                if r.target.contains("cursor=page2") {
                    let list: Vec<String> = rest.iter().map(|n| entry(n)).collect();
                    Reply::json(format!(r#"{{"streams":[{}],"next":null}}"#, list.join(",")))
                } else {
                    let mut list: Vec<String> = half.iter().map(|n| entry(n)).collect();
                    list.push(r#"{"name":"dead","static":true,"stats":{"alive":false}}"#.into());
                    Reply::json(format!(
                        r#"{{"streams":[{}],"next":"page2","estimated_count":9}}"#,
                        list.join(",")
                    ))
                }
            }
            "/flussonic/api/metrics" => Reply::text(format!(
                "# TYPE test_flussonic_clients gauge\ntest_flussonic_clients {}\n",
                clients + 1000
            )),
            _ => Reply::status(404),
        }
    })
}

/// Wowza's `/connectioncounts` HTTP provider: XML with the server's
/// `ConnectionsCurrent` under the root, then per VHost and application.
fn wowza(state: Shared) -> Scripted {
    Scripted::start(move |r: &Request| {
        let (clients, down) = read(&state);
        match r.path() {
            "/connectioncounts" if down => Reply::status(503),
            "/connectioncounts" => Reply::xml(format!(
                "<?xml version=\"1.0\"?>\n<WowzaStreamingEngine>\n<ConnectionsCurrent>{clients}</ConnectionsCurrent>\n\
                 <ConnectionsTotal>{}</ConnectionsTotal>\n<ConnectionsTotalAccepted>{0}</ConnectionsTotalAccepted>\n\
                 <ConnectionsTotalRejected>0</ConnectionsTotalRejected>\n<VHost>\n<Name>_defaultVHost_</Name>\n\
                 <ConnectionsCurrent>{clients}</ConnectionsCurrent>\n<Application>\n<Name>live</Name>\n\
                 <ConnectionsCurrent>{clients}</ConnectionsCurrent>\n</Application>\n</VHost>\n</WowzaStreamingEngine>\n",
                clients + 100
            )),
            _ => Reply::status(404),
        }
    })
}

/// Nimble's `/manage/server_status`: JSON with `Connections` and `OutRate`.
fn nimble(state: Shared) -> Scripted {
    Scripted::start(move |r: &Request| {
        let (clients, down) = read(&state);
        match r.path() {
            "/manage/server_status" if down => Reply::status(500),
            "/manage/server_status" => Reply::json(format!(r#"{{"Connections": {clients}, "OutRate": 1234567}}"#)),
            _ => Reply::status(404),
        }
    })
}

/// A viewer of a strom node: an HTTP-TS connection held open.
fn strom_viewer(node: &Strom) -> std::net::TcpStream {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", node.port)).expect("connect");
    c.write_all(b"GET /ch/mpegts HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    c
}

/// A strom node, a Flussonic-like and a Wowza-like server with room for 10,
/// 20 and 40. Every routed viewer really arrives (an HTTP-TS connection to
/// the node, one more client in the scripted servers' counts), so the
/// measurements follow the decisions: the farm fills in proportion to
/// capacity. Then Flussonic's probe fails (Down: no viewers), and Wowza
/// reports itself full (no viewers).
#[test]
fn foreign_farm_spreads_by_ratio_and_skips_down_and_full_servers() {
    let node = Strom::start("kinds-farm", "stream ch { input builtin://demo; }");
    wait_playlist(&node, "ch", 1, 20 * SEC);
    let (f_state, w_state) = (reported(0), reported(0));
    let f = flussonic(f_state.clone(), &["ch", "news", "sport", "kids"]);
    let w = wowza(w_state.clone());
    let b = start(&format!(
        "server s1 {{ url {}; max_clients 10; }}\n\
             server f1 {{ kind flussonic; url {}; max_clients 20; api_auth api s3cret; }}\n\
             server w1 {{ kind wowza; url {}; public 127.0.0.1:1935; max_clients 40; }}\n\
             channel ch {{ servers s1 f1 w1; }}\n",
        node.base,
        f.base(),
        w.base()
    ));
    wait_for("the three servers up", 20 * SEC, || {
        (b.up("s1") && b.up("f1") && b.up("w1")).then_some(())
    });
    // Flussonic's list (both pages, dead streams left out) makes it a
    // candidate for streams that no channel block names.
    let f1 = b.server("f1");
    assert_eq!(
        (f1["kind"].as_str(), f1["streams"].as_u64()),
        (Some("flussonic"), Some(4)),
        "{f1}"
    );
    assert_eq!(b.server("w1")["stream_list"], "channels");
    for _ in 0..3 {
        assert_eq!(b.routed_to("news", "").as_deref(), Some("f1"));
        assert_eq!(b.routed_to("kids", "").as_deref(), Some("f1"));
    }
    assert_eq!(b.route("dead", "").0, 404);
    set_clients(&f_state, 6); // the six routes above arrived

    // Credentials went with every Flussonic request, probe included.
    for path in [
        "/streamer/api/v3/monitoring/liveness",
        "/streamer/api/v3/config/stats",
        "/streamer/api/v3/streams",
    ] {
        let reqs = f.requests_to(path);
        assert!(!reqs.is_empty(), "{path} never asked");
        assert!(
            reqs.iter().all(|r| r.authorization.is_some()),
            "{path} without credentials"
        );
    }

    // 35 more viewers of `ch` fill 70 places in proportion: ~5/10/20 in all.
    wait_for("f1 measured at 6", 10 * SEC, || {
        (b.server("f1")["measured"] == 6).then_some(())
    });
    let mut viewers = Vec::new();
    let mut hits: HashMap<String, usize> = HashMap::new();
    // Each viewer from its own address: one address and stream counts once
    // between two measurements.
    for i in 0..35 {
        let server = b.routed_to("ch", &format!("&ip=192.0.2.{}", i + 1)).expect("routed");
        match server.as_str() {
            "s1" => viewers.push(strom_viewer(&node)),
            "f1" => add_client(&f_state),
            "w1" => add_client(&w_state),
            other => panic!("routed to {other}"),
        }
        *hits.entry(server).or_default() += 1;
    }
    let (s, fl, wz) = (hits.get("s1"), hits.get("f1"), hits.get("w1"));
    let (s, fl, wz) = (
        s.copied().unwrap_or(0),
        fl.copied().unwrap_or(0),
        wz.copied().unwrap_or(0),
    );
    // With every count exact, lowest ratio first and ties in turn give
    // 6/6/23 (f1 had 6 of 20 already): all three end near 0.6 full. The
    // node's count may trail a viewer behind a measurement, hence the slack.
    assert!((4..=8).contains(&s), "{hits:?}");
    assert!((4..=8).contains(&fl), "{hits:?}");
    assert!((20..=26).contains(&wz), "{hits:?}");

    // Flussonic's probe fails: Down within two refreshes, and no viewers.
    set_down(&f_state, true);
    let t = Instant::now();
    wait_for("f1 down", 10 * SEC, || (!b.up("f1")).then_some(()));
    assert!(t.elapsed() < 4 * SEC, "excluded after {:?}", t.elapsed());
    assert_eq!(
        b.server("f1")["last_error"],
        "health /streamer/api/v3/monitoring/liveness answered 503, not 200"
    );
    for _ in 0..5 {
        assert_ne!(b.routed_to("ch", "").as_deref(), Some("f1"));
    }
    assert_eq!(b.route("news", "").0, 404, "its own streams have nowhere to go");
    set_down(&f_state, false);
    wait_for("f1 back", 10 * SEC, || b.up("f1").then_some(()));

    // Wowza reports itself full: it gets nobody while the others have room.
    set_clients(&w_state, 40);
    wait_for("w1 measured full", 10 * SEC, || {
        (b.server("w1")["measured"] == 40).then_some(())
    });
    for _ in 0..8 {
        let server = b.routed_to("ch", "").expect("room left on s1 and f1");
        assert_ne!(server, "w1");
    }
    let text = b.metrics();
    assert!(sample(&text, "strom_balancer_decisions_total{server=\"w1\"}").is_some_and(|n| n >= 17.0));
    drop(viewers);
}

/// Prometheus mode with a real Prometheus scraping a strom node (its
/// `instance` is its host:port) and the Flussonic-like server (relabelled
/// to the server's name, as Ministra does), one query per kind; the
/// Wowza-like server has no query of its kind and is read directly.
#[test]
fn prometheus_mode_reads_each_kind_with_its_query() {
    let node = Strom::start("kinds-prom", "stream ch { input builtin://demo; }");
    let (f_state, w_state) = (reported(7), reported(3));
    let f = flussonic(f_state.clone(), &["ch"]);
    let w = wowza(w_state);
    let dir = scratch("kinds-prom");
    let port = free_tcp_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n\
             \x20 - job_name: strom\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n\
             \x20 - job_name: flussonic\n    metrics_path: /flussonic/api/metrics\n\
             \x20   basic_auth:\n      username: api\n      password: s3cret\n\
             \x20   static_configs:\n      - targets: ['127.0.0.1:{}']\n        labels:\n          instance: f1\n",
            node.port, f.port
        ),
    )
    .expect("prometheus config");
    let ok = Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    assert!(
        ok.is_ok_and(|s| s.success()),
        "prometheus is required (apt-get install prometheus)"
    );
    let mut prom = Proc(Some(
        Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log"))
            .spawn()
            .expect("prometheus"),
    ));
    let b = start(&format!(
        "source prometheus http://127.0.0.1:{port} {{\n\
               query 'sum by (instance) (strom_server_clients)';\n\
               query flussonic 'sum by (instance) (test_flussonic_clients)';\n\
             }}\n\
             server s1 {{ url {}; max_clients 100; }}\n\
             server f1 {{ kind flussonic; url {}; max_clients 2000; api_auth api s3cret; }}\n\
             server w1 {{ kind wowza; url {}; max_clients 100; }}\n\
             channel ch {{ servers s1 f1 w1; }}\n",
        node.base,
        f.base(),
        w.base()
    ));
    wait_for("counts through prometheus", 60 * SEC, || {
        let (s1, f1) = (b.server("s1"), b.server("f1"));
        (s1["load_from"] == "prometheus" && f1["load_from"] == "prometheus" && f1["measured"] == 1007).then_some(())
    });
    let w1 = b.server("w1");
    assert_eq!(
        (w1["load_from"].as_str(), w1["measured"].as_u64()),
        (Some("direct"), Some(3)),
        "{w1}"
    );
    // The Flussonic count follows Prometheus, not the JSON the balancer reads itself.
    set_clients(&f_state, 20);
    wait_for("new count via prometheus", 30 * SEC, || {
        (b.server("f1")["measured"] == 1020).then_some(())
    });
    // When Prometheus goes away, the last counts hold for a while, then each
    // server is read directly.
    prom.kill();
    wait_for("direct reading", 30 * SEC, || {
        let f1 = b.server("f1");
        (f1["load_from"] == "direct" && f1["measured"] == 20).then_some(())
    });
    assert!(b.log().contains("prometheus unavailable"));
}

/// A zone server (10.9/16, Nimble-like) and an unfiltered one (Wowza-like)
/// behind two balancers, `zone_fallback` on and off. Down, then full, the
/// zone refuses its clients without fallback and sends them to the
/// unfiltered server with it, counted by reason.
#[test]
fn zone_fallback_on_and_off() {
    let (z_state, u_state) = (reported(0), reported(0));
    let z = nimble(z_state.clone());
    let u = wowza(u_state);
    let farm = format!(
        "server z1 {{ kind nimble; url {}; max_clients 5; networks 10.9.0.0/16; }}\n\
         server u1 {{ kind wowza; url {}; max_clients 100; }}\n\
         channel ch {{ servers z1 u1; }}\n",
        z.base(),
        u.base()
    );
    let on = start(&format!("zone_fallback on;\n{farm}"));
    let off = start(&farm);
    for b in [&on, &off] {
        wait_for("both up", 20 * SEC, || (b.up("z1") && b.up("u1")).then_some(()));
        assert_eq!(b.routed_to("ch", "&ip=10.9.1.1").as_deref(), Some("z1"));
        assert_eq!(b.routed_to("ch", "&ip=192.0.2.1").as_deref(), Some("u1"));
    }
    let fallbacks = |b: &Balancer, reason: &str| {
        sample(
            &b.metrics(),
            &format!("strom_balancer_zone_fallbacks_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(fallbacks(&on, "down"), Some(0.0));

    set_down(&z_state, true);
    for b in [&on, &off] {
        wait_for("z1 down", 10 * SEC, || (!b.up("z1")).then_some(()));
    }
    let (code, v) = off.route("ch", "&ip=10.9.1.1");
    assert_eq!((code, v["error"].as_str()), (404, Some("nothing_to_play")));
    for _ in 0..3 {
        assert_eq!(on.routed_to("ch", "&ip=10.9.1.1").as_deref(), Some("u1"));
    }
    assert_eq!(fallbacks(&on, "down"), Some(3.0));

    set_down(&z_state, false);
    set_clients(&z_state, 5);
    for b in [&on, &off] {
        wait_for("z1 up and full", 10 * SEC, || {
            (b.up("z1") && b.server("z1")["measured"] == 5).then_some(())
        });
    }
    let (code, v) = off.route("ch", "&ip=10.9.1.1");
    assert_eq!((code, v["error"].as_str()), (503, Some("limit")));
    assert_eq!(on.routed_to("ch", "&ip=10.9.1.1").as_deref(), Some("u1"));
    // A client of no zone is not a fallback.
    assert_eq!(on.routed_to("ch", "&ip=192.0.2.1").as_deref(), Some("u1"));
    let text = on.metrics();
    assert_eq!(
        sample(&text, "strom_balancer_zone_fallbacks_total{reason=\"full\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "strom_balancer_zone_fallbacks_total{reason=\"down\"}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&off.metrics(), "strom_balancer_zone_fallbacks_total{reason=\"full\"}"),
        Some(0.0)
    );
}

/// Hostile answers: garbage JSON (with markup and escape codes in it), an
/// endless body, an answer that never comes, and a stream list that is no
/// list. Each server is Down (or, for the list, keeps no streams) with a
/// counted error that quotes nothing, and the balancer keeps answering at
/// once, sending everyone to the one good server.
#[test]
fn bad_foreign_answers_mark_servers_down_without_echoing_them() {
    const EVIL: &str = "EVIL<script>alert(1)</script>\u{1b}[31m";
    let garbage = Scripted::start(|r: &Request| match r.path() {
        "/manage/server_status" => Reply::json(format!("{EVIL}{{\"Connections\": ")),
        _ => Reply::status(404),
    });
    let endless = Scripted::start(|r: &Request| match r.path() {
        "/streamer/api/v3/monitoring/liveness" => Reply::json("{}"),
        "/streamer/api/v3/config/stats" => Reply {
            body: Body::Endless(64),
            ..Reply::json("")
        },
        _ => Reply::json(r#"{"streams":[]}"#),
    });
    let slow =
        Scripted::start(|_: &Request| Reply::xml("<W><ConnectionsCurrent>1</ConnectionsCurrent></W>").delayed(8 * SEC));
    let bad_list = Scripted::start(|r: &Request| match r.path() {
        "/streamer/api/v3/monitoring/liveness" => Reply::json("{}"),
        "/streamer/api/v3/config/stats" => Reply::json(r#"{"total_clients": 1}"#),
        // Valid JSON (no raw control character), of the wrong shape.
        _ => Reply::json(r#"{"streams": "EVIL<script>alert(1)</script>"}"#),
    });
    let good = Scripted::start(|r: &Request| match r.path() {
        "/status" => Reply::json(r#"{"edge": {"viewers": 2}}"#),
        _ => Reply::status(404),
    });
    // A 1 s refresh gives each request 1 s: time to read 16 MiB, not 8 s.
    let b = start_with(
        "1s",
        &format!(
            "server garbage {{ kind nimble; url {}; max_clients 100; }}\n\
             server endless {{ kind flussonic; url {}; max_clients 100; }}\n\
             server slow {{ kind wowza; url {}; max_clients 100; }}\n\
             server bad_list {{ kind flussonic; url {}; max_clients 100; }}\n\
             server good {{ kind generic; url {}; max_clients 100; load json /status edge.viewers; }}\n\
             channel ch {{ servers garbage endless slow bad_list good; }}\n",
            garbage.base(),
            endless.base(),
            slow.base(),
            bad_list.base(),
            good.base()
        ),
    );
    wait_for("every server polled with its error", 20 * SEC, || {
        let ready = b.up("good")
            && ["garbage", "endless", "slow", "bad_list"]
                .iter()
                .all(|n| b.server(n)["last_error"].is_string());
        ready.then_some(())
    });
    let text = b.servers_text();
    assert!(
        !text.contains("EVIL") && !text.contains("script") && !text.contains('\u{1b}'),
        "{text}"
    );
    let error = |n: &str| b.server(n)["last_error"].as_str().unwrap_or("").to_string();
    assert_eq!(
        error("garbage"),
        "load /manage/server_status: malformed JSON at line 1 column 1"
    );
    assert_eq!(
        error("endless"),
        "load /streamer/api/v3/config/stats: the answer is larger than 16 MiB"
    );
    assert!(error("slow").contains("no whole answer in time"), "{}", error("slow"));
    assert!(
        error("bad_list")
            .starts_with("streams /streamer/api/v3/streams: JSON of an unexpected shape at line 1 column "),
        "{}",
        error("bad_list")
    );
    for n in ["garbage", "endless", "slow"] {
        assert_eq!(b.server(n)["up"], false, "{n}");
    }
    // A list that cannot be read costs the streams, not the server.
    wait_for("bad_list up", 10 * SEC, || b.up("bad_list").then_some(()));
    assert_eq!(b.server("bad_list")["streams"], 0);
    assert_eq!(b.server("bad_list")["error_reasons"], serde_json::json!(["parse"]));

    // The balancer answers at once and sends everyone to the good servers.
    let t = Instant::now();
    for _ in 0..20 {
        let server = b.routed_to("ch", "").expect("routed");
        assert!(server == "good" || server == "bad_list", "{server}");
    }
    assert!(t.elapsed() < 5 * SEC, "20 decisions took {:?}", t.elapsed());
    assert_eq!(get(&b.url("/healthz")).0, 200);

    let m = b.metrics();
    for (server, reason) in [
        ("garbage", "parse"),
        ("endless", "too_large"),
        ("slow", "timeout"),
        ("bad_list", "parse"),
    ] {
        let series = format!("strom_balancer_poll_errors_total{{server=\"{server}\",reason=\"{reason}\"}}");
        assert!(sample(&m, &series).is_some_and(|n| n >= 1.0), "{series} in\n{m}");
    }
    assert!(!m.contains("EVIL"));
    assert!(!b.log().contains("EVIL"));
}

//! The balancer in front of three real strom nodes fed by ffmpeg.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

use common::streamer::Balancer;

/// A balancer with `refresh 500ms` and `body`.
fn start(body: &str) -> Balancer {
    Balancer::start_on(0, &format!("refresh 500ms;\n{body}"))
}

/// What these tests ask a balancer.
trait Ask {
    fn route(&self, stream: &str, extra: &str) -> (u16, serde_json::Value);
    fn up(&self) -> usize;
}

impl Ask for Balancer {
    fn route(&self, stream: &str, extra: &str) -> (u16, serde_json::Value) {
        let (c, b) = get(&self.url(&format!("/api/v1/route?stream={stream}{extra}")));
        (c, serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null))
    }

    fn up(&self) -> usize {
        let v: serde_json::Value = serde_json::from_slice(&get(&self.url("/api/v1/servers")).1).unwrap_or_default();
        v["servers"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|s| s["up"] == true).count())
    }
}

/// Three nodes, each with stream `ch` fed by its own ffmpeg over UDP.
fn farm() -> (Vec<Strom>, Vec<Proc>) {
    let mut nodes = Vec::new();
    let mut feeds = Vec::new();
    for i in 0..3 {
        let udp = free_udp_port();
        nodes.push(Strom::start(
            &format!("farm{i}"),
            &format!("stream ch {{ input udp://127.0.0.1:{udp}; }}"),
        ));
        feeds.push(ffmpeg_loop_demo(&format!("udp://127.0.0.1:{udp}")));
    }
    for n in &nodes {
        wait_playlist(n, "ch", 1, 30 * SEC);
    }
    (nodes, feeds)
}

fn servers(nodes: &[Strom], max: [u64; 3], extra: [&str; 3]) -> String {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "server s{} {{ url {}; max_clients {}; {} }}\n",
                i + 1,
                n.base,
                max[i],
                extra[i]
            )
        })
        .collect()
}

#[test]
fn balancer_spreads_respects_capacity_health_and_networks() {
    require_ffmpeg();
    let (mut nodes, _feeds) = farm();
    let b = start(&format!(
        "{}trusted_proxies 127.0.0.1;\n",
        servers(&nodes, [1000, 1000, 1000], ["", "", "networks 10.9.0.0/16;"])
    ));
    wait_for("all three servers up", 20 * SEC, || (b.up() == 3).then_some(()));

    // Equal load: 30 decisions split 10/10 between the two unfiltered servers
    // for an ordinary client; the 10.9/16 server serves only its network.
    // Each decision for its own client: one address and stream counts once
    // between two measurements, and stays where it was sent.
    let mut count: HashMap<String, usize> = HashMap::new();
    for i in 0..30 {
        let (c, v) = b.route("ch", &format!("&ip=192.0.2.{}", i + 1));
        assert_eq!(c, 200, "{v}");
        *count.entry(v["server"].as_str().unwrap_or("").to_string()).or_default() += 1;
    }
    assert_eq!(count.get("s1"), Some(&15), "{count:?}");
    assert_eq!(count.get("s2"), Some(&15), "{count:?}");
    assert_eq!(b.route("ch", "&ip=10.9.1.2").1["server"], "s3");
    // X-Forwarded-For from a trusted proxy picks the client's network.
    let v = fetch_with_header(&b.url("/api/v1/route?stream=ch"), "x-forwarded-for", "10.9.7.7");
    assert_eq!(v["server"], "s3", "{v}");
    assert_eq!(
        fetch_status_with_header(&b.url("/api/v1/route?stream=ch"), "x-forwarded-for", "not-an-ip"),
        400
    );
    // A client's own X-Forwarded-For line cannot pick its zone when the
    // trusted proxy adds the real address on a separate line.
    let two_lines = {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", b.port)).expect("connect");
        c.write_all(
            b"GET /api/v1/route?stream=ch HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.7.7\r\n\
              X-Forwarded-For: 192.0.2.1\r\nConnection: close\r\n\r\n",
        )
        .expect("request");
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    };
    assert!(two_lines.starts_with("HTTP/1.1 200"), "{two_lines}");
    assert!(
        !two_lines.contains("\"s3\""),
        "the spoofed line chose the zone: {two_lines}"
    );
    assert_eq!(b.route("ch", "&ip=300.1.1.1").0, 400);
    assert_eq!(b.route("..%2Fetc", "").0, 400);
    let (c, v) = b.route("nothing", "");
    assert_eq!((c, v["error"].as_str()), (404, Some("nothing_to_play")));

    // X-Forwarded-For from a peer that is not a trusted proxy is ignored.
    let untrusted = start(&servers(&nodes, [1000, 1000, 1000], ["", "", "networks 10.9.0.0/16;"]));
    wait_for("untrusted-proxy balancer up", 20 * SEC, || {
        (untrusted.up() == 3).then_some(())
    });
    let v = fetch_with_header(&untrusted.url("/api/v1/route?stream=ch"), "x-forwarded-for", "10.9.7.7");
    assert_ne!(v["server"], "s3", "{v}");
    drop(untrusted);

    // Without filters, 30 decisions split 10/10/10.
    let plain = start(&servers(&nodes, [1000, 1000, 1000], ["", "", ""]));
    wait_for("plain balancer sees three servers", 20 * SEC, || {
        (plain.up() == 3).then_some(())
    });
    let mut split: HashMap<String, usize> = HashMap::new();
    for i in 0..30 {
        *split
            .entry(
                plain.route("ch", &format!("&ip=192.0.2.{}", i + 1)).1["server"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
            .or_default() += 1;
    }
    for s in ["s1", "s2", "s3"] {
        assert!(split.get(s).is_some_and(|n| (9..=11).contains(n)), "{split:?}");
    }
    drop(plain);

    // A player follows the redirect end to end.
    let r = fetch(reqwest::Method::GET, &b.url("/ch/index.m3u8?token=abc"));
    assert_eq!(r.status, 200);
    let c = codecs(&ffprobe_streams(&b.url("/ch/index.m3u8?token=abc")));
    assert!(c.contains(&("h264".into(), 1280, 720)), "{c:?}");

    // A stopped node is excluded within the thresholds and returns after recovery.
    let (dir, port) = (nodes[0].dir.clone(), nodes[0].port);
    nodes[0].stop();
    let t = Instant::now();
    wait_for("s1 excluded", 10 * SEC, || (b.up() == 2).then_some(()));
    assert!(t.elapsed() < 5 * SEC, "excluded after {:?}", t.elapsed());
    for _ in 0..10 {
        assert_ne!(b.route("ch", "").1["server"], "s1");
    }
    let udp = free_udp_port();
    let _n1 = Strom::start_in(dir, port, &format!("stream ch {{ input udp://127.0.0.1:{udp}; }}"));
    let _f1 = ffmpeg_loop_demo(&format!("udp://127.0.0.1:{udp}"));
    wait_for("s1 back", 30 * SEC, || (b.up() == 3).then_some(()));
    let mut seen_s1 = false;
    for i in 0..10 {
        seen_s1 |= b.route("ch", &format!("&ip=198.51.100.{}", i + 1)).1["server"] == "s1";
    }
    assert!(seen_s1, "recovered server gets viewers again");
    let text = get_text(&b.url("/metrics")).1;
    assert!(text.contains("strom_balancer_decisions_total{server=\"s1\"}"), "{text}");
    assert!(
        text.contains("strom_balancer_refusals_total{reason=\"nothing_to_play\"} 1"),
        "{text}"
    );
}

#[test]
fn a_full_node_gets_no_new_viewers() {
    let nodes: Vec<Strom> = (0..2)
        .map(|i| Strom::start(&format!("full{i}"), "stream ch { input builtin://demo; }"))
        .collect();
    for n in &nodes {
        wait_playlist(n, "ch", 1, 20 * SEC);
    }
    // One HTTP-TS viewer fills s1 (max 1).
    let mut viewer = std::net::TcpStream::connect(("127.0.0.1", nodes[0].port)).expect("connect");
    viewer
        .write_all(b"GET /ch/mpegts HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let nodes_ref: Vec<&Strom> = nodes.iter().collect();
    let body: String = nodes_ref
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "server s{} {{ url {}; max_clients {}; }}\n",
                i + 1,
                n.base,
                if i == 0 { 1 } else { 1000 }
            )
        })
        .collect();
    let b = start(&body);
    wait_for("both up", 20 * SEC, || (b.up() == 2).then_some(()));
    // The HTTP-TS viewer makes s1 full (this test's playlist polling fetches
    // no media, so it is no viewer).
    wait_for("s1 measured full", 20 * SEC, || {
        let v: serde_json::Value = serde_json::from_slice(&get(&b.url("/api/v1/servers")).1).unwrap_or_default();
        (v["servers"][0]["measured"] == 1).then_some(())
    });
    for _ in 0..20 {
        assert_eq!(b.route("ch", "").1["server"], "s2");
    }
}

/// A server that answers garbage metrics is Down, with the parse error shown.
#[test]
fn garbage_metrics_mark_a_server_down() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let server = std::thread::spawn(move || {
        use std::io::Read;
        let deadline = Instant::now() + 40 * SEC;
        while Instant::now() < deadline && !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok((mut c, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = c.set_nonblocking(false);
            let _ = c.set_read_timeout(Some(2 * SEC));
            let mut buf = [0u8; 2048];
            let _ = c.read(&mut buf);
            let body = if buf.starts_with(b"GET /metrics") {
                "<html>not metrics</html>"
            } else {
                "ok"
            };
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let b = start(&format!(
        "server bad {{ url http://127.0.0.1:{port}; max_clients 10; }}\n"
    ));
    let v = wait_for("error shown", 20 * SEC, || {
        let v: serde_json::Value = serde_json::from_slice(&get(&b.url("/api/v1/servers")).1).unwrap_or_default();
        v["servers"][0]["last_error"]
            .as_str()
            .filter(|e| e.contains("metrics line 1"))
            .map(|_| v.clone())
    });
    assert_eq!(v["servers"][0]["up"], false, "{v}");
    assert_eq!(b.route("ch", "").0, 404);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = server.join();
}

fn fetch_with_header(url: &str, k: &str, v: &str) -> serde_json::Value {
    let (url, k, v) = (url.to_string(), k.to_string(), v.to_string());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt")
        .block_on(async move {
            let r = reqwest::Client::new()
                .get(&url)
                .header(k, v)
                .send()
                .await
                .expect("request");
            serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or_default()
        })
}

fn fetch_status_with_header(url: &str, k: &str, v: &str) -> u16 {
    let (url, k, v) = (url.to_string(), k.to_string(), v.to_string());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt")
        .block_on(async move {
            reqwest::Client::new()
                .get(&url)
                .header(k, v)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        })
}

/// Load read from a real Prometheus server; when it goes away the balancer
/// keeps the last counts for a while, then scrapes the servers directly.
#[test]
fn prometheus_mode_and_fallback() {
    let nodes: Vec<Strom> = (0..2)
        .map(|i| Strom::start(&format!("pm{i}"), "stream ch { input builtin://demo; }"))
        .collect();
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let (mut prom, prom_port) = start_prometheus("pm-prom", &ports);
    let body: String = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("server s{i} {{ url {}; max_clients 100; }}\n", n.base))
        .collect();
    let b = start(&format!(
        "source prometheus http://127.0.0.1:{prom_port} {{ query 'sum by (instance) (strom_server_clients)'; }}\n{body}"
    ));
    let servers =
        || -> serde_json::Value { serde_json::from_slice(&get(&b.url("/api/v1/servers")).1).unwrap_or_default() };
    wait_for("counts from prometheus", 60 * SEC, || {
        let v = servers();
        (v["servers"][0]["load_from"] == "prometheus" && v["servers"][1]["load_from"] == "prometheus").then_some(())
    });
    // A viewer on s0 shows up through Prometheus.
    let mut viewer = std::net::TcpStream::connect(("127.0.0.1", nodes[0].port)).expect("connect");
    viewer
        .write_all(b"GET /ch/mpegts HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    wait_for("viewer counted via prometheus", 30 * SEC, || {
        let v = servers();
        (v["servers"][0]["measured"] == 1 && v["servers"][0]["load_from"] == "prometheus").then_some(())
    });
    assert_eq!(b.route("ch", "").0, 200);
    prom.kill();
    let t = Instant::now();
    wait_for("fallback to direct scraping", 30 * SEC, || {
        (servers()["servers"][0]["load_from"] == "direct").then_some(())
    });
    assert!(t.elapsed() >= 3 * SEC, "last known counts were kept for a while");
    assert_eq!(
        servers()["servers"][0]["measured"],
        1,
        "direct scrape sees the same viewer"
    );
    assert_eq!(b.route("ch", "").0, 200);
}

/// SIGHUP reloads the config keeping counters; a bad new config is refused
/// and the old one keeps running.
#[test]
fn sighup_reload_keeps_counters_and_refuses_bad_configs() {
    let nodes: Vec<Strom> = (0..2)
        .map(|i| Strom::start(&format!("hup{i}"), "stream ch { input builtin://demo; }"))
        .collect();
    let one = format!("server s1 {{ url {}; max_clients 100; }}\n", nodes[0].base);
    let b = start(&one);
    wait_for("s1 up", 20 * SEC, || (b.up() == 1).then_some(()));
    for _ in 0..5 {
        assert_eq!(b.route("ch", "").1["server"], "s1");
    }
    let config = std::fs::read_to_string(&b.config).expect("read");
    let hup = || {
        let _ = Command::new("kill").args(["-HUP", &b.child.id().to_string()]).status();
    };
    // A broken config is refused.
    std::fs::write(&b.config, format!("{config}channel ch {{ servers s1 s9; }}\n")).expect("write");
    hup();
    std::thread::sleep(SEC);
    let v: serde_json::Value = serde_json::from_slice(&get(&b.url("/api/v1/servers")).1).unwrap_or_default();
    assert_eq!(v["servers"].as_array().map(|a| a.len()), Some(1));
    assert_eq!(b.route("ch", "").1["server"], "s1", "old config still serves");
    // A good one adds s2 and keeps s1's counters.
    std::fs::write(
        &b.config,
        format!("{config}server s2 {{ url {}; max_clients 100; }}\n", nodes[1].base),
    )
    .expect("write");
    hup();
    wait_for("s2 up after reload", 20 * SEC, || (b.up() == 2).then_some(()));
    let text = get_text(&b.url("/metrics")).1;
    assert!(
        text.contains("strom_balancer_decisions_total{server=\"s1\"} 6"),
        "{text}"
    );
    let log = std::fs::read_to_string(b.config.with_file_name("balancer.log")).unwrap_or_default();
    assert!(
        log.contains("new config refused") && log.contains("config reloaded"),
        "{log}"
    );
}

/// The Python that runs mmdb-writer: the workspace's `.venv` (created by
/// `.ci/run`, or by hand as the README says) when it exists, else `python3`.
fn geoip_python() -> std::path::PathBuf {
    let venv = workspace_root().join(".venv/bin/python3");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// `countries` with a small GeoIP database generated here (PyPI mmdb-writer).
#[test]
fn countries_from_geoip() {
    let dir = scratch("geoip");
    let db = dir.join("test.mmdb");
    let script = format!(
        "from mmdb_writer import MMDBWriter\nfrom netaddr import IPSet\n\
         w = MMDBWriter(ip_version=4, database_type='GeoLite2-Country')\n\
         w.insert_network(IPSet(['10.20.0.0/16']), {{'country': {{'iso_code': 'DE'}}}})\n\
         w.insert_network(IPSet(['10.30.0.0/16']), {{'country': {{'iso_code': 'FR'}}}})\n\
         w.to_db_file('{}')\n",
        db.display()
    );
    let python = geoip_python();
    let out = Command::new(&python).arg("-c").arg(&script).output();
    let failure = match &out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(String::from_utf8_lossy(&o.stderr).into_owned()),
        Err(e) => Some(format!("cannot run {}: {e}", python.display())),
    };
    if let Some(why) = failure {
        panic!(
            "this test needs PyPI's mmdb-writer and netaddr in {root}/.venv; install them with\n\
             \n    apt-get install -y python3-venv\n    cd {root} && python3 -m venv .venv && .venv/bin/pip install mmdb-writer netaddr\n\n\
             (.ci/run does the same). {} failed: {why}",
            python.display(),
            root = workspace_root().display(),
        );
    }
    let nodes: Vec<Strom> = (0..2)
        .map(|i| Strom::start(&format!("geo{i}"), "stream ch { input builtin://demo; }"))
        .collect();
    let b = start(&format!(
        "geoip {};\nserver de {{ url {}; max_clients 100; countries DE AT; }}\nserver any {{ url {}; max_clients 100; }}\n",
        db.display(),
        nodes[0].base,
        nodes[1].base
    ));
    wait_for("both up", 20 * SEC, || (b.up() == 2).then_some(()));
    for _ in 0..5 {
        assert_eq!(b.route("ch", "&ip=10.20.1.1").1["server"], "de", "German client");
        assert_eq!(
            b.route("ch", "&ip=10.30.1.1").1["server"],
            "any",
            "French client: unfiltered server"
        );
        assert_eq!(b.route("ch", "&ip=192.0.2.1").1["server"], "any", "unknown country");
    }
}

/// A flood of fake sessions (playlist requests with fresh tokens, probes
/// and 404s that fetch no media) does not fill a node in the balancer's
/// eyes: real viewers keep being sent to it.
#[test]
fn fake_sessions_do_not_fill_a_node() {
    let node = Strom::start("flood", "stream ch { input builtin://demo; }");
    let p = wait_playlist(&node, "ch", 1, 20 * SEC);
    let b = start(&format!("server s1 {{ url {}; max_clients 10; }}\n", node.base));
    wait_for("s1 up", 20 * SEC, || (b.up() == 1).then_some(()));
    for i in 0..300 {
        assert_eq!(get(&node.url(&format!("/ch/index.m3u8?token=fake{i}"))).0, 200);
        assert_eq!(get(&node.url(&format!("/ch/1.ts?token=miss{i}"))).0, 404);
        assert_eq!(head(&node.url(&format!("/ch/mono.m3u8?token=probe{i}"))), 200);
    }
    // Past the balancer's next measurement, s1 still takes viewers.
    std::thread::sleep(3 * SEC);
    for _ in 0..5 {
        let (code, v) = b.route("ch", "");
        assert_eq!((code, v["server"].as_str()), (200, Some("s1")), "{v}");
    }
    assert_eq!(metric(&node, "strom_server_clients"), Some(0.0));
    // Real viewers (segments) do count.
    for i in 0..3 {
        let seg = node.url(&format!("/ch/{}.ts?token=real{i}", p.segments[0].0));
        assert_eq!(get(&seg).0, 200);
    }
    wait_for("three real viewers counted", 5 * SEC, || {
        (metric(&node, "strom_server_clients") == Some(3.0)).then_some(())
    });
}

/// A node with API credentials: the API answers 401 without them and 200
/// with view or edit credentials (Basic or Bearer); health, metrics and
/// playback stay open; a balancer reads the node's streams with `api_auth`.
#[test]
fn api_credentials_on_a_node_and_in_the_balancer() {
    let node = Strom::start(
        "apiauth",
        "view_auth viewer pw;\nedit_auth admin s3cret;\nstream ch { input builtin://demo; }",
    );
    wait_playlist(&node, "ch", 1, 20 * SEC);
    let api = node.url("/api/v1/streams");
    let r = fetch_with(reqwest::Method::GET, &api, &[]);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Basic")));
    assert_eq!(
        fetch_with(reqwest::Method::GET, &node.url("/api/v1/streams/ch"), &[]).status,
        401
    );
    // viewer:pw and admin:s3cret in Basic, and the edit password as a Bearer token.
    for auth in ["Basic dmlld2VyOnB3", "Basic YWRtaW46czNjcmV0", "Bearer s3cret"] {
        assert_eq!(
            fetch_with(reqwest::Method::GET, &api, &[("Authorization", auth)]).status,
            200,
            "{auth}"
        );
    }
    assert_eq!(
        fetch_with(
            reqwest::Method::GET,
            &api,
            &[("Authorization", "Basic dmlld2VyOnMzY3JldA==")]
        )
        .status,
        401
    );
    for open in ["/healthz", "/readyz", "/metrics", "/ch/index.m3u8"] {
        assert_eq!(get(&node.url(open)).0, 200, "{open}");
    }
    let with = start(&format!(
        "server s1 {{ url {}; max_clients 100; api_auth viewer pw; }}\n",
        node.base
    ));
    wait_for("balancer reads the streams with credentials", 20 * SEC, || {
        (with.route("ch", "").1["server"] == "s1").then_some(())
    });
    let without = start(&format!("server s1 {{ url {}; max_clients 100; }}\n", node.base));
    wait_for("s1 up", 20 * SEC, || (without.up() == 1).then_some(()));
    std::thread::sleep(2 * SEC);
    let (code, v) = without.route("ch", "");
    assert_eq!((code, v["error"].as_str()), (404, Some("nothing_to_play")), "{v}");
}

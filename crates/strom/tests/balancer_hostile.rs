//! A hostile client and a careless config against `strom balancer`
//! processes:
//! - one connection pipelining 2,000 `GET /ch/x` is one viewer: every
//!   server keeps its room for everyone else, and the repeats are counted;
//! - other methods on a playback path are refused (405), not redirected;
//! - two balancers whose `peers` lists name themselves too (one config for
//!   all, the common case) and a streaming node count 2 balancers each.

mod common;

use common::streamer::{Balancer, Streamer};
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

fn status(b: &Balancer) -> Value {
    serde_json::from_slice(&get(&b.url("/api/v1/servers")).1).unwrap_or_default()
}

fn sample(b: &Balancer, series: &str) -> Option<f64> {
    get_text(&b.url("/metrics"))
        .1
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Sends `bytes` on one connection and reads until the balancer closes it.
fn exchange(port: u16, bytes: &[u8]) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(10 * SEC)).expect("timeout");
    c.write_all(bytes).expect("requests");
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn one_client_pipelining_thousands_of_requests_is_one_viewer() {
    let servers: Vec<Streamer> = (0..3).map(|_| Streamer::start(None)).collect();
    let mut body = String::from("refresh 500ms;\n");
    for (i, s) in servers.iter().enumerate() {
        body.push_str(&format!("server s{} {{ url {}; max_clients 10; }}\n", i + 1, s.base()));
    }
    body.push_str("channel ch { servers s1 s2 s3; }\n");
    let b = Balancer::start_on(0, &body);
    wait_for("three servers up", 20 * SEC, || {
        let v = status(&b);
        v["servers"]
            .as_array()
            .is_some_and(|a| a.len() == 3 && a.iter().all(|s| s["up"] == true))
            .then_some(())
    });

    let n = 2000;
    let mut bytes = b"GET /ch/x HTTP/1.1\r\nHost: b\r\n\r\n".repeat(n - 1);
    bytes.extend_from_slice(b"GET /ch/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
    let text = exchange(b.port, &bytes);
    assert_eq!(text.matches("HTTP/1.1 302 Found").count(), n, "every request answered");
    assert_eq!(text.matches("HTTP/1.1 503").count(), 0);
    // However many requests, no server is full: others still get in.
    let v = status(&b);
    let sent: u64 = v["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["sent_since"].as_u64().unwrap_or(0))
        .sum();
    assert!(sent <= 1, "one viewer counted at most once: {v}");
    let (code, route) = get(&b.url("/api/v1/route?stream=ch&ip=192.0.2.9"));
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&route));
    let repeats = sample(&b, "strom_balancer_repeat_requests_total").unwrap_or(0.0);
    assert!(repeats >= (n - 3) as f64, "repeats counted: {repeats}");

    // Only GET and HEAD are viewers.
    let text = exchange(
        b.port,
        b"POST /ch/x HTTP/1.1\r\nContent-Length: 0\r\n\r\nget /ch/x HTTP/1.1\r\n\r\n\
          OPTIONS * HTTP/1.1\r\n\r\nCONNECT a:443 HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(text.matches("HTTP/1.1 405 ").count(), 4, "{text}");
    assert_eq!(text.matches("allow: GET, HEAD").count(), 4, "{text}");
}

#[test]
fn balancers_listing_themselves_and_a_node_count_only_the_balancers() {
    let node = Streamer::start(None); // answers /healthz 200 as a strom node does
    let (pa, pb) = (free_tcp_port(), free_tcp_port());
    // One config for both: every balancer listed, and the node by mistake.
    let body = format!(
        "refresh 500ms;\npeers http://127.0.0.1:{pa} http://127.0.0.1:{pb} {};\n\
         server s1 {{ url {}; max_clients 10; }}\nchannel ch {{ servers s1; }}\n",
        node.base(),
        node.base()
    );
    let a = Balancer::start_on(pa, &body);
    let b = Balancer::start_on(pb, &body);
    for (bal, own, other) in [(&a, pa, pb), (&b, pb, pa)] {
        // Peers count from the start until probed, so the count passes
        // through other values: wait for every peer's verdict.
        let states = |v: &serde_json::Value| -> Vec<String> {
            let peers = v["balancers"]["peers"].as_array().cloned().unwrap_or_default();
            [
                format!("http://127.0.0.1:{own}"),
                format!("http://127.0.0.1:{other}"),
                node.base(),
            ]
            .iter()
            .map(|url| {
                peers
                    .iter()
                    .find(|p| p["url"] == url.as_str())
                    .and_then(|p| p["state"].as_str())
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
        };
        let v = wait_for("every peer judged", 20 * SEC, || {
            let v = status(bal);
            (states(&v) == ["self", "live", "not_balancer"]).then_some(v)
        });
        assert_eq!(v["balancers"]["live"], 2, "{v}");
        assert_eq!(sample(bal, "strom_balancer_balancers"), Some(2.0));
    }
    // Each logged what it found once.
    std::thread::sleep(2 * SEC);
    let log = a.log();
    assert_eq!(log.matches("this balancer itself").count(), 1, "{log}");
    assert_eq!(log.matches("not a balancer").count(), 1, "{log}");
}

//! Peering with three real strom nodes on 127.0.0.1: directory, redirects to
//! the node that holds a stream, load-aware redirects, one hop at most.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

/// A GET that does not follow redirects: (status, Location).
fn get_no_follow(url: &str) -> (u16, Option<String>) {
    let url = url.to_string();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt")
        .block_on(async move {
            let c = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(20 * SEC)
                .build()
                .expect("client");
            let r = c.get(&url).send().await.expect("request");
            (
                r.status().as_u16(),
                r.headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            )
        })
}

#[test]
fn redirects_to_the_peer_that_holds_the_stream() {
    require_ffmpeg();
    let (pa, pb, pc) = (free_tcp_port(), free_tcp_port(), free_tcp_port());
    let udp = free_udp_port();
    let peers = |me: u16| -> String {
        [pa, pb, pc]
            .iter()
            .filter(|p| **p != me)
            .map(|p| format!("peer 127.0.0.1:{p} {{ public localhost:{p}; }}\n"))
            .collect()
    };
    let a = Strom::start_in(scratch("peer-a"), pa, &format!("cluster_key k;\n{}", peers(pa)));
    let _b = Strom::start_in(scratch("peer-b"), pb, &format!("cluster_key k;\n{}", peers(pb)));
    let mut c = Strom::start_in(
        scratch("peer-c"),
        pc,
        &format!(
            "cluster_key k;\n{}stream ch {{ input udp://127.0.0.1:{udp}; source_timeout 2; }}",
            peers(pc)
        ),
    );
    assert_eq!(get(&a.url("/ch/index.m3u8")).0, 404, "nobody has it yet");
    let started = Instant::now();
    let _src = ffmpeg_loop_demo(&format!("udp://127.0.0.1:{udp}"));
    let (code, loc) = wait_for("A redirects to C", 30 * SEC, || {
        let r = get_no_follow(&a.url("/ch/index.m3u8?token=t1"));
        (r.0 == 302).then_some(r)
    });
    let reachable = started.elapsed();
    eprintln!(
        "stream reachable through a peer {:.1} s after its source started",
        reachable.as_secs_f64()
    );
    assert_eq!(code, 302);
    assert_eq!(
        loc.as_deref(),
        Some(format!("http://localhost:{pc}/ch/index.m3u8?token=t1&strom_hop=1").as_str())
    );
    // A player following the redirect plays through A's URL.
    let probe = ffprobe_streams(&a.url("/ch/index.m3u8?token=t1"));
    assert!(codecs(&probe).contains(&("h264".into(), 1280, 720)), "{probe}");
    // Through the redirect, the playlist lists absolute URLs on C.
    let text = get_text(&format!("http://localhost:{pc}/ch/mono.m3u8?token=t1&strom_hop=1")).1;
    assert!(text.contains(&format!("\nhttp://localhost:{pc}/ch/")), "{text}");
    assert!(metric(&a, "strom_redirects_total{reason=\"not_local\"}").unwrap_or(0.0) >= 1.0);
    assert_eq!(
        metric(&a, &format!("strom_peer_up{{peer=\"127.0.0.1:{pc}\"}}")),
        Some(1.0)
    );
    let dir = get_text(&a.url("/api/v1/cluster/peers")).1;
    assert!(dir.contains("\"name\":\"ch\""), "{dir}");
    // One hop at most: a request that was already redirected is never redirected again.
    assert_eq!(get_no_follow(&a.url("/ch/index.m3u8?strom_hop=1")).0, 404);

    // C goes away: A stops redirecting to it within the stale timeout.
    c.stop();
    let t = Instant::now();
    wait_for("A stops redirecting to the dead node", 15 * SEC, || {
        (get_no_follow(&a.url("/ch/index.m3u8")).0 == 404).then_some(())
    });
    assert!(t.elapsed() < 8 * SEC, "stale after {:?}", t.elapsed());
}

#[test]
fn overloaded_node_sends_new_viewers_to_a_peer() {
    let (pa, pb) = (free_tcp_port(), free_tcp_port());
    let a = Strom::start_in(
        scratch("ov-a"),
        pa,
        &format!("cluster_key k;\nmax_clients 2;\npeer 127.0.0.1:{pb};\nstream demo {{ input builtin://demo; }}"),
    );
    let _b = Strom::start_in(
        scratch("ov-b"),
        pb,
        &format!("cluster_key k;\npeer 127.0.0.1:{pa};\nstream demo {{ input builtin://demo; }}"),
    );
    wait_for("A knows B has demo", 20 * SEC, || {
        get_text(&a.url("/api/v1/cluster/peers"))
            .1
            .contains("\"running\":true")
            .then_some(())
    });
    std::thread::sleep(3 * SEC); // past the peer's up-hold
    let open = |port: u16| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(b"GET /demo/mpegts HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("request");
        s.set_read_timeout(Some(10 * SEC)).expect("timeout");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).expect("response");
        (s, String::from_utf8_lossy(&buf[..n]).to_string())
    };
    let (_v1, h1) = open(pa);
    let (_v2, h2) = open(pa);
    // A continuous body ends with its connection: an HTTP/1.0 answer.
    assert!(
        h1.starts_with("HTTP/1.0 200") && h2.starts_with("HTTP/1.0 200"),
        "{h1}\n{h2}"
    );
    let (_v3, h3) = open(pa);
    assert!(h3.starts_with("HTTP/1.1 302"), "third viewer: {h3}");
    assert!(
        h3.to_lowercase()
            .contains(&format!("location: http://127.0.0.1:{pb}/demo/mpegts?strom_hop=1")),
        "{h3}"
    );
    assert_eq!(metric(&a, "strom_redirects_total{reason=\"overload\"}"), Some(1.0));
}

#[test]
fn a_peer_with_the_wrong_key_is_never_trusted() {
    let (pa, pd) = (free_tcp_port(), free_tcp_port());
    let a = Strom::start_in(scratch("wk-a"), pa, &format!("cluster_key k;\npeer 127.0.0.1:{pd};"));
    let d = Strom::start_in(
        scratch("wk-d"),
        pd,
        &format!("cluster_key other;\npeer 127.0.0.1:{pa};\nstream demo {{ input builtin://demo; }}"),
    );
    wait_for("A records the refusal", 20 * SEC, || {
        get_text(&a.url("/api/v1/cluster/peers"))
            .1
            .contains("refused our cluster_key")
            .then_some(())
    });
    assert_eq!(get_no_follow(&a.url("/demo/index.m3u8")).0, 404);
    assert!(metric(&d, "strom_cluster_errors_total{kind=\"auth\"}").unwrap_or(0.0) >= 1.0);
    assert!(d.log().contains("cluster request refused"));
}

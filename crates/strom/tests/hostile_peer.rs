//! A scripted fake source node attacks a restreamer: an endless list, a
//! stalled list, a name carrying a newline, and a validly encoded but
//! absurd segment. The restreamer bounds each, reports the source down
//! while it misbehaves, and takes its streams back once it recovers.

mod common;

use common::*;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

const GOOD: u8 = 0;
const ENDLESS: u8 = 1;
const STALLED: u8 = 2;
const MANY: u8 = 3;
const HUGE: u8 = 4;

fn list_body() -> String {
    "{\"streams\":[{\"name\":\"ok\",\"mode\":\"static\",\"codecs\":[],\"last_seq\":null},\
      {\"name\":\"absurd\",\"mode\":\"static\",\"codecs\":[],\"last_seq\":null},\
      {\"name\":\"evil\\nINFO forged line\",\"mode\":\"static\",\"codecs\":[],\"last_seq\":null}]}"
        .to_string()
}

/// A segment whose wire encoding is valid but whose duration is absurd.
fn absurd_segment() -> bytes::Bytes {
    let seg = strom_media::Segment {
        seq: 5,
        start: 0,
        duration: 1_000_000_000 * strom_media::CLOCK_HZ,
        discontinuity: false,
        target_duration: 2,
        tracks: Arc::from(Vec::new()),
        frames: Vec::new(),
    };
    strom_media::wire::encode_segment(&seg)
}

/// Serves the fake source on `listener` until `stop`; `mode` picks the list behaviour.
fn serve(listener: std::net::TcpListener, mode: Arc<AtomicU8>, stop: Arc<AtomicU8>) {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + 120 * SEC;
    while Instant::now() < deadline && stop.load(Ordering::Relaxed) == 0 {
        let Ok((mut c, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let mode = mode.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let _ = c.set_nonblocking(false);
            let _ = c.set_read_timeout(Some(2 * SEC));
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            if req.starts_with("GET /api/v1/cluster/streams") {
                match mode.load(Ordering::Relaxed) {
                    ENDLESS => {
                        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"streams\":[");
                        let chunk = vec![b' '; 64 << 10];
                        let end = Instant::now() + 20 * SEC;
                        while Instant::now() < end && stop.load(Ordering::Relaxed) == 0 {
                            if c.write_all(&chunk).is_err() {
                                break;
                            }
                        }
                    }
                    STALLED => {
                        let _ = c.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"str",
                        );
                        let end = Instant::now() + 30 * SEC;
                        while Instant::now() < end && stop.load(Ordering::Relaxed) == 0 {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                    m => {
                        let body = if m == MANY || m == HUGE {
                            let n = if m == HUGE { 100_000 } else { 50 };
                            let entries: Vec<String> = (0..n)
                                .map(|i| format!("{{\"name\":\"ch{i}\",\"mode\":\"ondemand\",\"codecs\":[]}}"))
                                .collect();
                            format!("{{\"streams\":[{}]}}", entries.join(","))
                        } else {
                            list_body()
                        };
                        let _ = write!(
                            c,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                }
            } else if req.starts_with("GET /api/v1/cluster/segments/absurd") {
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                let _ = c.write_all(&absurd_segment());
                std::thread::sleep(2 * SEC);
            } else {
                let _ = c.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
    }
}

fn source_state(e: &Strom) -> String {
    let v: serde_json::Value = serde_json::from_slice(&get(&e.url("/api/v1/cluster/sources")).1).unwrap_or_default();
    v["sources"][0]["state"].as_str().unwrap_or("").to_string()
}

fn rss_kb(e: &Strom) -> u64 {
    let pid = e.child.as_ref().map(|c| c.id()).unwrap_or(0);
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn a_hostile_source_is_bounded_reported_and_recovered() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mode = Arc::new(AtomicU8::new(GOOD));
    let stop = Arc::new(AtomicU8::new(0));
    let server = {
        let (mode, stop) = (mode.clone(), stop.clone());
        std::thread::spawn(move || serve(listener, mode, stop))
    };
    let e = Strom::start(
        "hostile-peer",
        &format!("cluster_key abcd;\nsource 127.0.0.1:{port} {{ }}"),
    );
    let names = || get_text(&e.url("/api/v1/streams")).1;
    wait_for("the good stream", 20 * SEC, || names().contains("\"ok\"").then_some(()));

    // A name with a newline is refused, counted, and logged escaped: no forged line.
    wait_for("bad name counted", 10 * SEC, || {
        metric(&e, "strom_cluster_errors_total{kind=\"bad_name\"}").filter(|v| *v >= 1.0)
    });
    assert!(
        !e.log().lines().any(|l| l.starts_with("INFO forged line")),
        "forged log line"
    );

    // A validly encoded segment with an absurd duration never reaches a playlist.
    wait_for("absurd segment refused", 20 * SEC, || {
        metric(&e, "strom_cluster_errors_total{kind=\"bad_segment\"}").filter(|v| *v >= 1.0)
    });
    assert_ne!(get(&e.url("/absurd/mono.m3u8")).0, 200);

    // An endless list: refused at its byte cap, memory stays bounded, source down.
    let base = rss_kb(&e);
    mode.store(ENDLESS, Ordering::Relaxed);
    wait_for("endless list: source down", 30 * SEC, || {
        (source_state(&e) == "retrying").then_some(())
    });
    std::thread::sleep(5 * SEC);
    let grown = rss_kb(&e).saturating_sub(base);
    assert!(grown < 100 << 10, "RSS grew {grown} kB on an endless list");

    // Recovery, then a stalled list: reported down within the list deadline.
    mode.store(GOOD, Ordering::Relaxed);
    wait_for("source back", 30 * SEC, || {
        (source_state(&e) == "connected").then_some(())
    });
    mode.store(STALLED, Ordering::Relaxed);
    let t = Instant::now();
    wait_for("stalled list: source down", 30 * SEC, || {
        (source_state(&e) == "retrying").then_some(())
    });
    assert!(t.elapsed() < 20 * SEC, "took {:?}", t.elapsed());
    assert_eq!(
        metric(&e, &format!("strom_source_up{{source=\"127.0.0.1:{port}\"}}")),
        Some(0.0)
    );
    mode.store(GOOD, Ordering::Relaxed);
    wait_for("source back after the stall", 30 * SEC, || {
        (source_state(&e) == "connected").then_some(())
    });
    wait_for("streams back", 20 * SEC, || names().contains("\"ok\"").then_some(()));
    stop.store(1, Ordering::Relaxed);
    let _ = server.join();
}

/// A source that lists more streams than its `max_streams` creates only
/// that many; the rest are refused and counted.
#[test]
fn a_source_creates_at_most_max_streams() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mode = Arc::new(AtomicU8::new(MANY));
    let stop = Arc::new(AtomicU8::new(0));
    let server = {
        let (mode, stop) = (mode.clone(), stop.clone());
        std::thread::spawn(move || serve(listener, mode, stop))
    };
    let e = Strom::start(
        "many-streams",
        &format!("cluster_key abcd;\nsource 127.0.0.1:{port} {{ max_streams 5; }}"),
    );
    wait_for("refusals counted", 20 * SEC, || {
        metric(&e, "strom_cluster_errors_total{kind=\"too_many_streams\"}").filter(|v| *v >= 45.0)
    });
    let v: serde_json::Value = serde_json::from_slice(&get(&e.url("/api/v1/streams")).1).expect("json");
    let n = v["streams"].as_array().map_or(0, |a| a.len());
    assert_eq!(n, 5, "{v}");
    stop.store(1, Ordering::Relaxed);
    let _ = server.join();
}

/// A source listing 100,000 valid streams creates only `max_streams` of
/// them, and the restreamer's memory stays bounded.
#[test]
fn a_100k_stream_list_is_capped_with_bounded_memory() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mode = Arc::new(AtomicU8::new(HUGE));
    let stop = Arc::new(AtomicU8::new(0));
    let server = {
        let (mode, stop) = (mode.clone(), stop.clone());
        std::thread::spawn(move || serve(listener, mode, stop))
    };
    let e = Strom::start(
        "huge-list",
        &format!("cluster_key abcd;\nsource 127.0.0.1:{port} {{ max_streams 100; }}"),
    );
    let base = rss_kb(&e);
    wait_for("refusals counted", 30 * SEC, || {
        metric(&e, "strom_cluster_errors_total{kind=\"too_many_streams\"}").filter(|v| *v >= 99_900.0)
    });
    std::thread::sleep(4 * SEC); // a few more lists
    let v: serde_json::Value = serde_json::from_slice(&get(&e.url("/api/v1/streams")).1).expect("json");
    assert_eq!(v["streams"].as_array().map_or(0, |a| a.len()), 100);
    let grown = rss_kb(&e).saturating_sub(base);
    assert!(grown < 100 << 10, "RSS grew {grown} kB on a 100,000-stream list");
    stop.store(1, Ordering::Relaxed);
    let _ = server.join();
}

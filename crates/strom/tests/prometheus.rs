//! A real Prometheus server scrapes a real strom node; the series strom
//! promises are queryable with the values the node reports.

mod common;

use common::*;

use std::time::Duration;

/// Runs an instant query; returns the first sample's value.
fn query(prom_port: u16, q: &str) -> Option<f64> {
    let url = format!("http://127.0.0.1:{prom_port}/api/v1/query?query={}", encode(q));
    let (code, body) = try_get(&url)?;
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_stream_and_server_metrics() {
    let s = Strom::start("prom", "stream demo { input builtin://demo; }");
    let (_prom, prom_port) = start_prometheus("prometheus", &[s.port]);
    let instance = format!("127.0.0.1:{}", s.port);
    wait_for("strom scraped and up", Duration::from_secs(60), || {
        query(prom_port, &format!("up{{job=\"strom\",instance=\"{instance}\"}}")).filter(|v| *v == 1.0)
    });
    wait_for("stream alive in Prometheus", Duration::from_secs(30), || {
        query(prom_port, "strom_stream_alive{stream=\"demo\"}").filter(|v| *v == 1.0)
    });
    wait_for("online streams", Duration::from_secs(30), || {
        query(prom_port, "strom_server_online_streams").filter(|v| *v == 1.0)
    });
    let frames = wait_for("frames counted", Duration::from_secs(30), || {
        query(prom_port, "strom_stream_frames_total{stream=\"demo\"}").filter(|v| *v > 0.0)
    });
    assert!(frames > 0.0);
    // Counters behave as counters: a rate over them is positive.
    wait_for("segment rate", Duration::from_secs(30), || {
        query(prom_port, "rate(strom_stream_segments_total{stream=\"demo\"}[10s])").filter(|v| *v > 0.2 && *v < 1.0)
    });
    let rss = wait_for("resident memory", Duration::from_secs(30), || {
        query(prom_port, "strom_process_resident_memory_bytes").filter(|v| *v > 0.0)
    });
    assert!(rss < 2e9, "resident memory {rss}");
    wait_for(
        "input bitrate near the demo's 1.2 Mbit/s",
        Duration::from_secs(30),
        || {
            query(prom_port, "strom_stream_input_bitrate{stream=\"demo\"}")
                .filter(|v| (600_000.0..3_000_000.0).contains(v))
        },
    );
}

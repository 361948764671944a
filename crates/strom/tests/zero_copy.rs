//! Zero-copy segment bodies: the bytes a viewer gets for every HLS segment
//! of the window, whole and by byte range, equal `mux_segment` of that
//! segment as the node holds it (read back over the signed cluster feed,
//! decoded from the wire format), and they went out with `sendfile` from
//! sealed memory (`strom_zero_copy_sent_bytes_total`), not from the heap.

mod common;

use common::*;
use std::time::{Duration, Instant};
use strom_media::wire::{Decoder, Message};
use strom_media::Segment;

const KEY: &str = "zero-copy-test-key";

/// Segment `seq` as the node holds it, from its cluster feed.
fn held_segment(s: &Strom, seq: u64) -> Segment {
    let path = format!("/api/v1/cluster/segments/demo?from={seq}");
    let host = format!("127.0.0.1:{}", s.port);
    let headers = strom_node::cluster::auth::sign(
        KEY,
        "GET",
        &host,
        &path,
        strom_node::cluster::auth::unix_now(),
        &strom_node::cluster::auth::nonce(),
    );
    let url = s.url(&path);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let client = reqwest::Client::new();
        let mut req = client.get(&url);
        for (k, v) in &headers {
            req = req.header(*k, v.as_str());
        }
        let fut = async {
            let mut r = req.send().await.expect("feed request");
            assert_eq!(r.status().as_u16(), 200, "signed feed request");
            let mut dec = Decoder::new();
            loop {
                let chunk = r.chunk().await.expect("feed read").expect("feed ended");
                dec.push(&chunk);
                while let Some(m) = dec.pull().expect("valid wire messages") {
                    if let Message::Segment(seg) = m {
                        if seg.seq == seq {
                            return seg;
                        }
                        assert!(seg.seq < seq, "segment {seq} skipped by the feed");
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), fut)
            .await
            .expect("segment from the feed in time")
    })
}

fn sent_zero_copy(s: &Strom) -> f64 {
    metric(s, "strom_zero_copy_sent_bytes_total").unwrap_or(0.0)
}

#[test]
fn served_segments_equal_mux_segment_and_go_out_zero_copy() {
    let s = Strom::start(
        "zero-copy",
        &format!("cluster_key {KEY};\nstream demo {{ input builtin://demo; segment_duration 1; segment_count 4; }}"),
    );
    // The window holds segment_count + 4 segments: the playlist's and the
    // four before it, kept for players that fetch late (RFC 8216 §6.2.2).
    // Wait until the window is full, then check every segment in it.
    let first = wait_playlist(&s, "demo", 1, Duration::from_secs(30)).media_sequence;
    let pl = wait_for("a full window", Duration::from_secs(40), || {
        media_playlist(&s, "demo").filter(|p| p.segments.len() >= 4 && p.media_sequence >= first + 5)
    });
    let newest = pl.media_sequence + pl.segments.len() as u64 - 1;
    let seqs: Vec<u64> = (pl.media_sequence - 4..=newest).collect();
    assert_eq!(seqs.len(), 8);
    let before = sent_zero_copy(&s);
    let mut served_total = 0usize;
    let t0 = Instant::now();
    for &seq in &seqs {
        let r = fetch(reqwest::Method::GET, &s.url(&format!("/demo/{seq}.ts")));
        assert_eq!(r.status, 200, "segment {seq}");
        let want = strom_media::ts::mux::mux_segment(&held_segment(&s, seq));
        assert_eq!(r.body.len(), want.len(), "segment {seq}: length");
        assert!(r.body == want[..], "segment {seq}: bytes differ from mux_segment");
        served_total += r.body.len();
        // Ranges are slices of the same sealed bytes.
        let n = want.len();
        for (range, a, b) in [
            ("bytes=0-187".to_string(), 0, 187),
            (format!("bytes={}-{}", n / 3, n / 3 + 70_000), n / 3, n / 3 + 70_000),
            (format!("bytes=-{}", 188 * 7), n - 188 * 7, n - 1),
            (format!("bytes={}-", n - 1), n - 1, n - 1),
        ] {
            let r = fetch_with(
                reqwest::Method::GET,
                &s.url(&format!("/demo/{seq}.ts")),
                &[("Range", &range)],
            );
            assert_eq!(r.status, 206, "segment {seq} {range}");
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes {a}-{b}/{n}").as_str()),
                "segment {seq} {range}"
            );
            assert!(r.body == want[a..=b], "segment {seq} {range}: bytes differ");
            served_total += r.body.len();
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(60));
    let sent = sent_zero_copy(&s) - before;
    assert!(
        sent >= served_total as f64,
        "every segment byte went out with sendfile: {sent} of {served_total}"
    );
    assert!(
        metric(&s, "strom_memfd_bytes").unwrap_or(0.0) > 0.0,
        "segments are held in memfds"
    );
    assert_eq!(metric(&s, "strom_zero_copy_fallbacks_total"), Some(0.0));
}

/// Memfds of segment bodies held now by `s`.
fn memfds(s: &Strom) -> usize {
    let pid = s.child.as_ref().expect("running").id();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("/memfd:")))
        .count()
}

#[test]
fn memfds_never_take_the_descriptors_connections_need() {
    // 2,000 descriptors, 1,500 of them for connections and 512 kept back:
    // nothing is left for memfds, so every body stays on the heap.
    let s = start_with_nofile(
        "zero-copy-budget",
        2000,
        "max_connections 1500;\nstream demo { input builtin://demo; segment_duration 1; segment_count 3; }",
    );
    let pl = wait_playlist(&s, "demo", 3, Duration::from_secs(30));
    let newest = pl.media_sequence + pl.segments.len() as u64 - 1;
    for seq in pl.media_sequence..=newest {
        let r = fetch(reqwest::Method::GET, &s.url(&format!("/demo/{seq}.ts")));
        assert_eq!(r.status, 200, "segment {seq}");
        assert!(
            r.body.len() > 10_000 && r.body.chunks(188).all(|p| p.len() == 188 && p[0] == 0x47),
            "segment {seq} is whole TS"
        );
    }
    assert_eq!(memfds(&s), 0, "no memfd under a spent budget");
    assert!(
        metric(&s, "strom_zero_copy_fallbacks_total").unwrap_or(0.0) >= 3.0,
        "each body that stayed on the heap is counted"
    );
    assert_eq!(metric(&s, "strom_zero_copy_sent_bytes_total"), Some(0.0));
    assert!(s.log().contains("no file descriptors left for zero-copy bodies"));
}

//! Cluster restreaming with several real strom processes on 127.0.0.1:
//! byte and playlist identity, chains, high availability, lists, keys and
//! hostile sources.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

fn origin(tag: &str) -> Strom {
    Strom::start(tag, "cluster_key abcd;\nstream demo { input builtin://demo; }")
}

fn restreamer(tag: &str, sources: &[&Strom], key: &str) -> Strom {
    let body: String = sources
        .iter()
        .map(|s| format!("source 127.0.0.1:{} {{ }}\n", s.port))
        .collect();
    Strom::start(tag, &format!("cluster_key {key};\n{body}"))
}

/// The same segment numbers, playlists and bytes on origin and edge.
fn assert_identical(a: &Strom, b: &Strom, stream: &str) {
    let (pa, pb) = wait_for("both playlists at the same newest segment", 20 * SEC, || {
        let pa = get_text(&a.url(&format!("/{stream}/mono.m3u8"))).1;
        let pb = get_text(&b.url(&format!("/{stream}/mono.m3u8"))).1;
        (pa == pb && pa.contains(".ts")).then_some((pa, pb))
    });
    assert_eq!(pa, pb);
    let p = parse_playlist(&pa);
    for (seq, _, _) in &p.segments {
        let x = get(&a.url(&format!("/{stream}/{seq}.ts")));
        let y = get(&b.url(&format!("/{stream}/{seq}.ts")));
        assert_eq!(x.0, 200);
        assert!(
            x.1 == y.1,
            "segment {seq} differs ({} vs {} bytes)",
            x.1.len(),
            y.1.len()
        );
    }
}

#[test]
fn edge_serves_byte_identical_segments_and_a_chain_works() {
    let o = origin("c-origin");
    let m = restreamer("c-middle", &[&o], "abcd");
    let e = restreamer("c-edge", &[&m], "abcd");
    wait_playlist(&o, "demo", 3, 20 * SEC);
    wait_playlist(&e, "demo", 3, 30 * SEC);
    assert_identical(&o, &m, "demo");
    assert_identical(&o, &e, "demo");
    let api = api(&e, "demo");
    assert_eq!(api["source"], format!("127.0.0.1:{}", m.port));
    assert_eq!(api["status"], "running");
    let sources = get_text(&e.url("/api/v1/cluster/sources")).1;
    assert!(sources.contains("\"state\":\"connected\""), "{sources}");
    assert_eq!(
        metric(&e, &format!("strom_source_up{{source=\"127.0.0.1:{}\"}}", m.port)),
        Some(1.0)
    );
    // The edge's HTTP-TS output plays too.
    require_ffmpeg();
    let c = codecs(&ffprobe_streams(&e.url("/demo/mpegts")));
    assert!(c.contains(&("h264".into(), 1280, 720)), "{c:?}");
}

/// Two middles restream one origin; the edge reads from the first. Killing it
/// moves the edge to the second with no discontinuity and no sequence jump,
/// and a player reading the edge sees no error.
#[test]
fn high_availability_between_two_middles() {
    require_ffmpeg();
    let o = origin("ha-origin");
    let m1 = restreamer("ha-m1", &[&o], "abcd");
    let m2 = restreamer("ha-m2", &[&o], "abcd");
    let e = restreamer("ha-edge", &[&m1, &m2], "abcd");
    wait_playlist(&e, "demo", 4, 40 * SEC);
    // The edge reads from whichever middle listed the stream first; kill that one.
    let mut middles = [m1, m2];
    let reading = api(&e, "demo")["source"].as_str().unwrap_or("").to_string();
    let (dead, alive) = if reading == format!("127.0.0.1:{}", middles[0].port) {
        (0, 1)
    } else {
        (1, 0)
    };
    assert_eq!(reading, format!("127.0.0.1:{}", middles[dead].port));
    let alive_addr = format!("127.0.0.1:{}", middles[alive].port);
    let before = media_playlist(&e, "demo").expect("playlist");
    let player = std::thread::spawn({
        let url = e.url("/demo/mono.m3u8");
        move || {
            run_bounded(
                Command::new("ffmpeg")
                    .args(["-nostdin", "-v", "error", "-i"])
                    .arg(url)
                    .args(["-t", "14", "-f", "null", "-"]),
                Duration::from_secs(60),
            )
        }
    });
    std::thread::sleep(3 * SEC);
    middles[dead].stop();
    let switched = Instant::now();
    wait_for("edge on the other middle", 15 * SEC, || {
        (api(&e, "demo")["source"] == alive_addr).then_some(())
    });
    assert!(switched.elapsed() < 5 * SEC, "switch took {:?}", switched.elapsed());
    let last = before.segments.last().map(|x| x.0).unwrap_or(0);
    let after = wait_for("new segments via the second middle", 20 * SEC, || {
        media_playlist(&e, "demo").filter(|p| p.segments.last().is_some_and(|x| x.0 >= last + 3))
    });
    assert!(
        after.segments.iter().all(|x| !x.2),
        "discontinuity after HA failover: {after:?}"
    );
    assert!(after.segments.windows(2).all(|w| w[0].0 + 1 == w[1].0), "{after:?}");
    assert_identical(&o, &e, "demo");
    let out = player.join().expect("player");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "player saw: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two origins with their own feeds: failing over between them is one
/// discontinuity and the sequence keeps rising; a source restart never sends
/// it back.
#[test]
fn failover_to_a_different_feed_and_source_restart() {
    let mut a = origin("df-a");
    let b = origin("df-b");
    let e = restreamer("df-edge", &[&a, &b], "abcd");
    let p0 = wait_playlist(&e, "demo", 3, 30 * SEC);
    assert_eq!(api(&e, "demo")["source"], format!("127.0.0.1:{}", a.port));
    let last = p0.segments.last().map(|x| x.0).unwrap_or(0);
    let dir = a.dir.clone();
    let port = a.port;
    a.stop();
    wait_for("edge on origin b", 20 * SEC, || {
        (api(&e, "demo")["source"] == format!("127.0.0.1:{}", b.port)).then_some(())
    });
    let p1 = wait_for("segments from origin b", 20 * SEC, || {
        media_playlist(&e, "demo")
            .filter(|p| p.segments.iter().any(|x| x.2) && p.segments.last().is_some_and(|x| !x.2 && x.0 > last))
    });
    assert_eq!(
        p1.segments.iter().filter(|x| x.2).count(),
        1,
        "one discontinuity: {p1:?}"
    );
    assert!(p1.segments.windows(2).all(|w| w[0].0 + 1 == w[1].0));
    assert!(p1.media_sequence >= p0.media_sequence);
    assert_eq!(
        metric(&e, "strom_stream_input_switches_total{stream=\"demo\"}"),
        Some(1.0)
    );

    // Origin a comes back on the same port; b goes away: the edge returns to a
    // and its numbering never goes back.
    let _a2 = Strom::start_in(dir, port, "cluster_key abcd;\nstream demo { input builtin://demo; }");
    drop(b);
    let newest = p1.segments.last().map(|x| x.0).unwrap_or(0);
    let p2 = wait_for("edge back on origin a", 30 * SEC, || {
        media_playlist(&e, "demo").filter(|p| p.segments.last().is_some_and(|x| x.0 >= newest + 3))
    });
    assert!(p2.segments.windows(2).all(|w| w[0].0 + 1 == w[1].0), "{p2:?}");
    assert!(p2.media_sequence >= p1.media_sequence);
}

#[test]
fn lists_wildcards_local_override_and_ondemand() {
    let o = Strom::start(
        "l-origin",
        "cluster_key abcd;\n\
         stream news { input builtin://demo; }\n\
         stream sport/a { input builtin://demo; }\n\
         stream test { input builtin://demo; }\n\
         stream football { input builtin://demo; }\n\
         stream extra { input builtin://demo; }\n\
         stream od { input builtin://demo; ondemand; clients_timeout 3; }",
    );
    let e = Strom::start(
        "l-edge",
        &format!(
            "cluster_key abcd;\n\
             stream news {{ input builtin://demo; }}\n\
             source 127.0.0.1:{} {{ only news sport/* football; except test football; }}",
            o.port
        ),
    );
    let a = wait_for("sport/a restreamed", 20 * SEC, || {
        let (c, b) = get(&e.url("/api/v1/streams/sport/a"));
        (c == 200)
            .then(|| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .flatten()
    });
    assert_eq!(a["ondemand"], false, "sport/* is static");
    wait_playlist(&e, "sport/a", 1, 20 * SEC);
    assert_eq!(get(&e.url("/api/v1/streams/test")).0, 404, "except hides");
    assert_eq!(get(&e.url("/api/v1/streams/football")).0, 404, "except beats only");
    assert_eq!(
        api(&e, "news")["source"],
        serde_json::Value::Null,
        "the local stream wins"
    );
    let extra = api(&e, "extra");
    assert_eq!(extra["ondemand"], true, "not in only: on-demand");
    assert_eq!(extra["status"], "stopped");

    // On-demand restream: the first viewer starts the pull (and the origin's
    // own on-demand stream), the request waits for the first segment.
    assert_eq!(api(&o, "od")["status"], "stopped");
    let r = fetch(reqwest::Method::GET, &e.url("/od/mono.m3u8"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(api(&o, "od")["status"], "running");
    assert_eq!(api(&e, "od")["status"], "running");
}

#[test]
fn wrong_key_is_refused_and_reported_on_both_sides() {
    let o = origin("k-origin");
    let e = restreamer("k-edge", &[&o], "wrong");
    wait_for("edge reports unauthorized", 20 * SEC, || {
        get_text(&e.url("/api/v1/cluster/sources"))
            .1
            .contains("\"state\":\"unauthorized\"")
            .then_some(())
    });
    assert_eq!(get(&e.url("/demo/mono.m3u8")).0, 404);
    assert!(metric(&o, "strom_cluster_errors_total{kind=\"auth\"}").unwrap_or(0.0) >= 1.0);
    assert!(o.log().contains("cluster request refused"), "origin log");
    assert!(e.log().contains("refused our cluster_key"), "edge log");
    // And without any signature at all.
    assert_eq!(get(&o.url("/api/v1/cluster/streams")).0, 403);
}

/// A hostile source: names with path traversal or absurd length, a feed of
/// an unknown version, and a feed that hangs. The edge rejects, counts and
/// stays up.
#[test]
fn hostile_source_is_contained() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let server = std::thread::spawn(move || {
        let deadline = Instant::now() + 60 * SEC;
        let mut open = Vec::new();
        while Instant::now() < deadline && !done2.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok((mut c, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = c.set_nonblocking(false);
            let _ = c.set_read_timeout(Some(2 * SEC));
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let long = "x".repeat(300);
            if req.starts_with("GET /api/v1/cluster/streams") {
                let body = format!(
                    "{{\"streams\":[{{\"name\":\"../../etc/passwd\",\"mode\":\"static\",\"codecs\":[],\"last_seq\":null}},\
                     {{\"name\":\"{long}\",\"mode\":\"static\",\"codecs\":[],\"last_seq\":null}},\
                     {{\"name\":\"badver\",\"mode\":\"static\",\"codecs\":[],\"last_seq\":null}},\
                     {{\"name\":\"hang\",\"mode\":\"static\",\"codecs\":[],\"last_seq\":null}}]}}"
                );
                let _ = write!(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            } else if req.starts_with("GET /api/v1/cluster/segments/badver") {
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nSTRM\x09\x01\x00\x00\x00\x00garbage");
            } else if req.starts_with("GET /api/v1/cluster/segments/hang") {
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                open.push(c); // never answers
            } else {
                let _ = c.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            }
        }
    });
    let mut e = Strom::start(
        "hostile-edge",
        &format!("cluster_key abcd;\nsource 127.0.0.1:{port} {{ }}"),
    );
    wait_for("bad names rejected", 20 * SEC, || {
        metric(&e, "strom_cluster_errors_total{kind=\"bad_name\"}").filter(|v| *v >= 2.0)
    });
    wait_for("bad wire data counted", 20 * SEC, || {
        metric(&e, "strom_cluster_errors_total{kind=\"wire\"}").filter(|v| *v >= 1.0)
    });
    wait_for("hung feed abandoned", 20 * SEC, || {
        e.log().contains("no data for 3 s").then_some(())
    });
    let names = get_text(&e.url("/api/v1/streams")).1;
    assert!(!names.contains("passwd") && !names.contains("xxxxxxxx"), "{names}");
    assert!(names.contains("\"badver\"") && names.contains("\"hang\""));
    assert_eq!(get(&e.url("/hang/mono.m3u8")).0, 503);
    assert!(e.alive());
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = server.join();
}

/// Streams that appear on a source appear on the restreamer; streams that
/// vanish are stopped and removed after the grace period.
#[test]
fn streams_appear_and_vanish_with_the_source_list() {
    let mut o = Strom::start(
        "av-origin",
        "cluster_key abcd;\nstream a { input builtin://demo; }\nstream b { input builtin://demo; }",
    );
    let e = restreamer("av-edge", &[&o], "abcd");
    wait_playlist(&e, "a", 1, 20 * SEC);
    wait_playlist(&e, "b", 1, 20 * SEC);
    let (dir, port) = (o.dir.clone(), o.port);
    o.stop();
    let _o2 = Strom::start_in(
        dir,
        port,
        "cluster_key abcd;\nstream a { input builtin://demo; }\nstream c { input builtin://demo; }",
    );
    wait_playlist(&e, "c", 1, 20 * SEC);
    let gone = Instant::now();
    wait_for("b removed from the edge", 40 * SEC, || {
        (get(&e.url("/api/v1/streams/b")).0 == 404).then_some(())
    });
    assert!(gone.elapsed() < 30 * SEC);
    assert_eq!(get(&e.url("/b/mono.m3u8")).0, 404);
    wait_playlist(&e, "a", 1, 20 * SEC);
}

/// With every source down, the source block's backup plays, numbered on
/// from the stream's sequence; when the source returns the edge goes back to it.
#[test]
fn source_backup_plays_while_sources_are_down() {
    let mut o = origin("bk-origin");
    let e = Strom::start(
        "bk-edge",
        &format!(
            "cluster_key abcd;\nsource 127.0.0.1:{} {{ backup {}; }}",
            o.port,
            demo_ts().display()
        ),
    );
    let p0 = wait_playlist(&e, "demo", 2, 20 * SEC);
    let (dir, port) = (o.dir.clone(), o.port);
    o.stop();
    wait_for("edge on backup", 20 * SEC, || {
        (api(&e, "demo")["status"] == "backup").then_some(())
    });
    let last = p0.segments.last().map(|x| x.0).unwrap_or(0);
    let p1 = wait_for("backup segments", 20 * SEC, || {
        media_playlist(&e, "demo").filter(|p| p.segments.last().is_some_and(|x| x.0 >= last + 2))
    });
    assert!(p1.segments.windows(2).all(|w| w[0].0 + 1 == w[1].0), "{p1:?}");
    assert!(
        p1.segments.iter().any(|x| x.2),
        "switch to backup is a discontinuity: {p1:?}"
    );
    let _o2 = Strom::start_in(dir, port, "cluster_key abcd;\nstream demo { input builtin://demo; }");
    wait_for("edge back on the source", 30 * SEC, || {
        let a = api(&e, "demo");
        (a["status"] == "running" && a["source"] == format!("127.0.0.1:{port}")).then_some(())
    });
    let newest = media_playlist(&e, "demo")
        .and_then(|p| p.segments.last().map(|x| x.0))
        .unwrap_or(0);
    let p2 = wait_for("segments from the source again", 20 * SEC, || {
        media_playlist(&e, "demo").filter(|p| p.segments.last().is_some_and(|x| x.0 > newest))
    });
    assert!(p2.media_sequence >= p1.media_sequence);
    assert!(p2.segments.windows(2).all(|w| w[0].0 + 1 == w[1].0), "{p2:?}");
}

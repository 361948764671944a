//! Integration tests of the stream core: status that follows the inputs,
//! dead streams that answer at once, browser access (CORS, preflight, byte
//! ranges, HEAD), a seamless looped file, and startup logs. Real strom
//! processes on 127.0.0.1 and real ffmpeg.

mod common;

use common::*;
use reqwest::Method;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

/// One input, no backup: the input dies (Failed, HEAD 503, alive 0) and
/// comes back; HEAD is 200 and `strom_stream_alive` 1 again within
/// `source_timeout` plus one segment.
#[test]
fn sole_input_returns_and_the_stream_is_running_again() {
    require_ffmpeg();
    let port = free_udp_port();
    let s = Strom::start(
        "sole",
        &format!("stream ch {{ input udp://127.0.0.1:{port}; source_timeout 2; segment_duration 2; }}"),
    );
    let udp = format!("udp://127.0.0.1:{port}");
    let alive = |s: &Strom| metric(s, "strom_stream_alive{stream=\"ch\"}");
    let mut ff = ffmpeg_loop_demo(&udp);
    wait_playlist(&s, "ch", 2, 30 * SEC);
    assert_eq!(head(&s.url("/ch/index.m3u8")), 200);
    assert_eq!(alive(&s), Some(1.0));
    ff.kill();
    wait_for("the stream to fail", 10 * SEC, || {
        (status(&s, "ch") == "failed").then_some(())
    });
    assert_eq!(head(&s.url("/ch/index.m3u8")), 503);
    assert_eq!(alive(&s), Some(0.0));
    // Its last segments are still recent, but a stream that is down hands
    // nobody its frozen window: 503 at once.
    for path in ["/ch/index.m3u8", "/ch/mono.m3u8", "/ch/mpegts"] {
        let t = Instant::now();
        let r = fetch(Method::GET, &s.url(path));
        assert_eq!((r.status, r.header("retry-after")), (503, Some("2")), "{path}");
        assert!(t.elapsed() < SEC, "{path} took {:?}", t.elapsed());
    }
    assert_eq!(api(&s, "ch")["active_input_index"], serde_json::Value::Null);
    let ready: serde_json::Value =
        serde_json::from_slice(&fetch(Method::GET, &s.url("/readyz")).body).expect("readyz json");
    assert_eq!(ready["down"], serde_json::json!(["ch"]), "{ready}");

    let back = Instant::now();
    let _ff = ffmpeg_loop_demo(&udp);
    wait_for("HEAD 200 and alive 1", 10 * SEC, || {
        (head(&s.url("/ch/index.m3u8")) == 200 && alive(&s) == Some(1.0)).then_some(())
    });
    let took = back.elapsed();
    assert!(
        took <= Duration::from_secs(4),
        "back to healthy after {took:?}, bound is source_timeout + one segment"
    );
    assert_eq!(status(&s, "ch"), "running");
    let p = wait_for("new segments", 10 * SEC, || {
        media_playlist(&s, "ch").filter(|p| p.segments.last().is_some_and(|l| !l.2))
    });
    assert!(p.segments.windows(2).all(|w| w[1].0 == w[0].0 + 1), "{p:?}");
}

/// A static stream whose input is dead answers its playlist and `/mpegts`
/// with 503 and Retry-After at once, not after a long hold.
#[test]
fn dead_stream_answers_at_once() {
    let port = free_udp_port();
    let s = Strom::start(
        "dead",
        &format!("stream dead {{ input udp://127.0.0.1:{port}; source_timeout 1; }}"),
    );
    wait_for("the stream to fail", 10 * SEC, || {
        (status(&s, "dead") == "failed").then_some(())
    });
    for path in ["/dead/index.m3u8", "/dead/mono.m3u8", "/dead/mpegts"] {
        let t = Instant::now();
        let r = fetch(Method::GET, &s.url(path));
        let took = t.elapsed();
        assert_eq!(r.status, 503, "{path}");
        assert_eq!(r.header("retry-after"), Some("2"), "{path}");
        assert!(took < SEC, "{path} took {took:?}");
    }
    let r = fetch(Method::GET, &s.url("/readyz"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("readyz json");
    assert_eq!(v["down"], serde_json::json!(["dead"]), "{v}");
    assert_eq!(v["ready"], true, "startup is over: {v}");
}

/// Browser players on another origin: CORS on playlists, segments,
/// `/mpegts` and the API; preflights; single byte ranges; HEAD.
#[test]
fn cors_preflight_byte_ranges_and_head() {
    let s = Strom::start("cors", "stream demo { input builtin://demo; }");
    let p = wait_playlist(&s, "demo", 2, 30 * SEC);
    let origin = [("Origin", "https://portal.example")];
    for path in [
        "/demo/index.m3u8",
        "/demo/mono.m3u8",
        "/api/v1/streams/demo",
        "/api/v1/streams",
    ] {
        let r = fetch_with(Method::GET, &s.url(path), &origin);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
    }
    // Preflight for a ranged segment request.
    let seg_url = s.url(&format!("/demo/{}.ts", p.segments[0].0));
    let pre = fetch_with(
        Method::OPTIONS,
        &seg_url,
        &[
            ("Origin", "https://portal.example"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "range"),
        ],
    );
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    let methods = pre.header("access-control-allow-methods").unwrap_or("");
    assert!(methods.contains("GET") && methods.contains("HEAD"), "{methods}");
    let allowed = pre
        .header("access-control-allow-headers")
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(allowed.contains("range"), "{allowed}");

    // Byte ranges against a real segment.
    let full = fetch_with(Method::GET, &seg_url, &origin);
    assert_eq!(full.status, 200);
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(full.header("access-control-allow-origin"), Some("*"));
    let len = full.body.len();
    assert!(len > 188 * 10 && len.is_multiple_of(188), "{len}");
    let part = fetch_with(Method::GET, &seg_url, &[("Range", "bytes=188-375")]);
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 188-375/{len}").as_str())
    );
    assert_eq!(part.body, full.body[188..376]);
    assert_eq!(part.body[0], 0x47, "a whole TS packet");
    let tail = fetch_with(Method::GET, &seg_url, &[("Range", "bytes=-188")]);
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, full.body[len - 188..]);
    let bad = fetch_with(Method::GET, &seg_url, &[("Range", &format!("bytes={len}-"))]);
    assert_eq!(bad.status, 416);
    assert_eq!(bad.header("content-range"), Some(format!("bytes */{len}").as_str()));
    let several = fetch_with(Method::GET, &seg_url, &[("Range", "bytes=0-1,5-6")]);
    assert_eq!(
        (several.status, several.body.len()),
        (200, len),
        "several ranges: whole body"
    );

    // Every GET also answers HEAD, without a body.
    let h = fetch_with(Method::HEAD, &seg_url, &[]);
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-length"), Some(len.to_string().as_str()));
    assert!(h.body.is_empty());
    for path in [
        "/demo/mono.m3u8",
        "/demo/mpegts",
        "/api/v1/streams/demo",
        "/metrics",
        "/healthz",
    ] {
        let t = Instant::now();
        let h = fetch_with(Method::HEAD, &s.url(path), &origin);
        assert_eq!(h.status, 200, "HEAD {path}");
        assert!(h.body.is_empty(), "HEAD {path}");
        assert!(t.elapsed() < 5 * SEC, "HEAD {path} must not stream");
    }
    // `/mpegts` carries CORS too (read the first bytes only).
    let r = fetch_with(Method::HEAD, &s.url("/demo/mpegts"), &origin);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));

    // Startup logs name the playback URLs.
    let log = s.log();
    let url = format!("http://127.0.0.1:{}/demo/index.m3u8", s.port);
    assert!(log.contains(&url), "startup log lacks {url}:\n{log}");
}

/// `cors ORIGIN;` allows that origin only (with Vary: Origin); `cors off;` sends nothing.
#[test]
fn cors_directive_limits_origins() {
    let s = Strom::start(
        "cors-list",
        "cors https://portal.example;\nstream demo { input builtin://demo; }",
    );
    wait_playlist(&s, "demo", 1, 30 * SEC);
    let url = s.url("/demo/index.m3u8");
    let ok = fetch_with(Method::GET, &url, &[("Origin", "https://portal.example")]);
    assert_eq!(ok.header("access-control-allow-origin"), Some("https://portal.example"));
    assert!(ok.header("vary").is_some_and(|v| v.contains("Origin")));
    let other = fetch_with(Method::GET, &url, &[("Origin", "https://evil.example")]);
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
    assert!(
        other.header("vary").is_some_and(|v| v.contains("Origin")),
        "caches must key on Origin for refused origins too"
    );

    let off = Strom::start("cors-off", "cors off;\nstream demo { input builtin://demo; }");
    wait_playlist(&off, "demo", 1, 30 * SEC);
    let r = fetch_with(
        Method::GET,
        &off.url("/demo/index.m3u8"),
        &[("Origin", "https://portal.example")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
}

/// The looped demo joins seamlessly: over more than two loops
/// every EXTINF stays within 10 ms of every other, and input bytes are
/// counted as played, not once per load of the whole file.
#[test]
fn looped_file_has_steady_segments_across_loops() {
    // The embedded demo is assets/demo.ts, looped by the file input.
    let s = Strom::start("loop", "stream demo { input builtin://demo; segment_count 20; }");
    let first = wait_playlist(&s, "demo", 1, 30 * SEC);
    let early_bytes = metric(&s, "strom_stream_input_bytes_total{stream=\"demo\"}").unwrap_or(0.0);
    let file_len = std::fs::metadata(demo_ts()).expect("demo.ts").len() as f64;
    assert!(
        early_bytes < file_len,
        "{early_bytes} bytes counted ~2 s in: the whole {file_len}-byte file was counted at load"
    );
    // The demo is 10 s long: 13 segments of 2 s span more than two loops.
    let p = wait_for("26 s of segments", 60 * SEC, || {
        media_playlist(&s, "demo").filter(|p| p.segments.len() >= 13)
    });
    assert!(p.segments[0].0 <= first.segments[0].0 + 1);
    let durs: Vec<f64> = p.segments.iter().map(|x| x.1).collect();
    let (lo, hi) = durs
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &d| (lo.min(d), hi.max(d)));
    assert!(hi - lo <= 0.010, "EXTINF spread {lo}..{hi}: {durs:?}");
    assert!(p.segments.iter().all(|x| !x.2), "no discontinuity at the joins: {p:?}");
}

/// Middleware probes with HEAD: a probe never wakes an on-demand stream,
/// never waits, and is not counted as a viewer.
#[test]
fn head_probes_do_not_wake_an_ondemand_stream() {
    let s = Strom::start("probe", "stream od { input builtin://demo; ondemand; }");
    for path in ["/od/index.m3u8", "/od/mono.m3u8", "/od/mpegts"] {
        let t = Instant::now();
        let r = fetch_with(Method::HEAD, &s.url(path), &[]);
        assert_eq!(r.status, 503, "HEAD {path} of a stopped stream");
        assert!(t.elapsed() < SEC, "HEAD {path} waited {:?}", t.elapsed());
    }
    std::thread::sleep(1500 * std::time::Duration::from_millis(1));
    assert_eq!(status(&s, "od"), "stopped", "a probe woke the stream");
    // A GET does wake it and waits for the first segment.
    let r = fetch(Method::GET, &s.url("/od/index.m3u8"));
    assert_eq!(r.status, 200);
    assert_eq!(head(&s.url("/od/index.m3u8")), 200, "healthy once running");
}

/// Requests that get no media (404, 503, HEAD, playlists alone) never
/// count as viewers, so nobody can inflate the load that peers and the
/// balancer read; a viewer counts once it fetches a segment.
#[test]
fn only_media_makes_a_viewer() {
    let s = Strom::start("inflate", "stream demo { input builtin://demo; }");
    let p = wait_playlist(&s, "demo", 1, 30 * SEC);
    for i in 0..200 {
        let url = s.url(&format!("/demo/1.ts?token=k{i}"));
        assert_eq!(fetch(Method::GET, &url).status, 404);
        assert_eq!(
            fetch(Method::HEAD, &s.url(&format!("/demo/mono.m3u8?token=h{i}"))).status,
            200
        );
        assert_eq!(
            fetch(Method::GET, &s.url(&format!("/demo/index.m3u8?token=p{i}"))).status,
            200
        );
    }
    let hls = |s: &Strom| api(s, "demo")["clients"]["hls"].as_u64();
    assert_eq!(hls(&s), Some(0), "404s, HEADs and playlists alone are not viewers");
    // Every error answer is counted by kind.
    assert_eq!(fetch(Method::DELETE, &s.url("/demo/mono.m3u8")).status, 405);
    assert!(metric(&s, "strom_http_errors_total{kind=\"not_found\"}").unwrap_or(0.0) >= 200.0);
    assert_eq!(
        metric(&s, "strom_http_errors_total{kind=\"method_not_allowed\"}"),
        Some(1.0)
    );
    // A real viewer counts once, whatever it fetches.
    let seg = s.url(&format!("/demo/{}.ts?token=v", p.segments[0].0));
    assert_eq!(fetch(Method::GET, &s.url("/demo/mono.m3u8?token=v")).status, 200);
    assert_eq!(fetch(Method::GET, &seg).status, 200);
    assert_eq!(fetch(Method::GET, &s.url("/demo/mono.m3u8?token=v")).status, 200);
    assert_eq!(hls(&s), Some(1));
    // Only the token is carried into child URIs: a long query is not
    // copied into every playlist line.
    let junk = "j".repeat(1500);
    let r = fetch(Method::GET, &s.url(&format!("/demo/mono.m3u8?token=abc&junk={junk}")));
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains(".ts?token=abc\n") && !text.contains("jjjj"), "{text}");
    assert!(r.body.len() < 2048, "playlist of {} bytes", r.body.len());
    // After a redirect, URIs are absolute on this node's own address only:
    // a foreign Host is never reflected into the playlist.
    let hop = s.url("/demo/mono.m3u8?strom_hop=1");
    let evil = fetch_with(Method::GET, &hop, &[("Host", &format!("evil.example:{}", s.port))]);
    let text = String::from_utf8_lossy(&evil.body);
    assert!(evil.status == 200 && !text.contains("evil"), "{text}");
    let own = fetch_with(Method::GET, &hop, &[]);
    let text = String::from_utf8_lossy(&own.body);
    assert!(text.contains(&format!("\nhttp://127.0.0.1:{}/demo/", s.port)), "{text}");
}

/// A log consumer that goes away (its pipe closed) never takes the node
/// down: streams keep advancing and SIGTERM still stops it.
#[test]
fn closed_log_pipe_does_not_stop_the_node() {
    use std::process::{Command, Stdio};
    let dir = scratch("logpipe");
    let port = free_tcp_port();
    let conf = dir.join("strom.conf");
    std::fs::write(
        &conf,
        format!("http 127.0.0.1:{port};\nstream demo {{ input builtin://demo; }}\n"),
    )
    .expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["run", "-c"])
        .arg(&conf)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strom");
    // Killed on drop, so a failing assertion leaves no process behind.
    let mut guard = Proc(Some(child));
    let child = guard.0.as_mut().expect("running");
    drop(child.stderr.take()); // the reader goes away at once
    let base = format!("http://127.0.0.1:{port}");
    let newest = || {
        let (code, body) = try_get(&format!("{base}/demo/mono.m3u8"))?;
        let text = String::from_utf8_lossy(&body);
        (code == 200)
            .then(|| parse_playlist(&text).segments.last().map(|x| x.0))
            .flatten()
    };
    let first = wait_for("segments with the log pipe closed", 30 * SEC, newest);
    wait_for("the playlist to advance", 15 * SEC, || newest().filter(|n| *n > first));
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + 15 * SEC;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM did not stop strom: {status:?}"
    );
}

/// Input URLs carry passwords and keys; the API and the logs never show them.
#[test]
fn secrets_stay_out_of_the_api_and_logs() {
    let port = free_tcp_port(); // nothing listens there: the input keeps failing
    let s = Strom::start(
        "secrets",
        &format!(
            "stream s {{ input http://admin:S3cret@127.0.0.1:{port}/live.ts?apikey=K3y&ch=1; source_timeout 1; }}"
        ),
    );
    wait_for("the input to fail", 15 * SEC, || {
        s.log().contains("http input down").then_some(())
    });
    let api = get_text(&s.url("/api/v1/streams/s")).1;
    assert!(api.contains("admin:***@") && api.contains("apikey=***&ch=1"), "{api}");
    let all = format!("{api}{}", s.log());
    assert!(
        !all.contains("S3cret") && !all.contains("K3y"),
        "a secret leaked:\n{all}"
    );
}

/// A publisher that drips bytes but no media cannot hold the publish slot:
/// it is cut as silent (408) once `source_timeout` passes without a frame.
#[test]
fn a_dripping_publisher_is_cut() {
    use std::io::{Read, Write};
    let s = Strom::start("drip", "stream p { input publish://; source_timeout 2; }");
    let mut c = std::net::TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.write_all(b"PUT /p/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .expect("request");
    c.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let t = Instant::now();
    let mut answer = Vec::new();
    while t.elapsed() < 15 * SEC {
        // One byte of garbage every 500 ms: never a frame.
        if c.write_all(b"1\r\nG\r\n").is_err() {
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(n) = c.read(&mut buf) {
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || answer.starts_with(b"HTTP/1.1") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "after {:?}: {text}", t.elapsed());
    assert!(t.elapsed() < 8 * SEC, "cut after {:?}", t.elapsed());
}

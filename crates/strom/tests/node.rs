//! Integration tests: real strom processes on 127.0.0.1, real ffmpeg/ffprobe.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

/// The embedded demo channel plays: master + media playlist, segments, HTTP-TS,
/// all decoded by ffmpeg with no error or warning, and the metrics say so.
#[test]
fn builtin_demo_plays_over_hls_and_mpegts() {
    require_ffmpeg();
    let s = Strom::start("demo", "stream demo { input builtin://demo; }");
    wait_playlist(&s, "demo", 3, 20 * SEC);

    let master = fetch(reqwest::Method::GET, &s.url("/demo/index.m3u8"));
    assert_eq!(master.status, 200);
    assert_eq!(master.header("content-type"), Some("application/vnd.apple.mpegurl"));
    assert_eq!(master.header("cache-control"), Some("max-age=1"));
    let text = String::from_utf8_lossy(&master.body);
    assert!(text.contains("CODECS=\"avc1.4d401f,mp4a.40.2\""), "{text}");
    assert!(text.contains("RESOLUTION=1280x720"), "{text}");
    let bw: u64 = text
        .split("BANDWIDTH=")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|v| v.parse().ok())
        .expect("bandwidth");
    assert!((1_000_000..2_500_000).contains(&bw), "peak bandwidth {bw}");

    let pl = media_playlist(&s, "demo").expect("media playlist");
    assert_eq!(pl.target_duration, 2);
    for w in pl.segments.windows(2) {
        assert_eq!(w[0].0 + 1, w[1].0, "consecutive sequence numbers");
    }
    let (seq, dur, _) = pl.segments[0];
    assert!((dur - 2.0).abs() < 0.05, "2 s segments from 1 s GOPs, got {dur}");
    let seg = fetch(reqwest::Method::GET, &s.url(&format!("/demo/{seq}.ts")));
    assert_eq!(seg.status, 200);
    assert_eq!(seg.header("content-type"), Some("video/mp2t"));
    assert!(seg.header("cache-control").is_some_and(|v| v.contains("immutable")));
    assert_eq!(seg.body.len() % 188, 0);
    assert_eq!(seg.body[0], 0x47);
    // The same segment is the same bytes on every request.
    assert_eq!(get(&s.url(&format!("/demo/{seq}.ts"))).1, seg.body);

    for path in ["/demo/index.m3u8", "/demo/mpegts"] {
        let probe = ffprobe_streams(&s.url(path));
        let c = codecs(&probe);
        assert!(c.contains(&("h264".into(), 1280, 720)), "{path}: {c:?}");
        assert!(c.iter().any(|(n, _, _)| n == "aac"), "{path}: {c:?}");
    }
    for (path, secs) in [("/demo/index.m3u8", "10"), ("/demo/mpegts", "5")] {
        let out = run_bounded(
            Command::new("ffmpeg")
                .args(["-nostdin", "-v", "warning", "-i"])
                .arg(s.url(path))
                .args(["-t", secs, "-f", "null", "-"]),
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "ffmpeg decode {path}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.trim().is_empty(),
            "ffmpeg reported problems decoding {path}:\n{err}"
        );
    }

    assert_eq!(metric(&s, "strom_stream_alive{stream=\"demo\"}"), Some(1.0));
    assert_eq!(metric(&s, "strom_server_online_streams"), Some(1.0));
    assert!(metric(&s, "strom_stream_frames_total{stream=\"demo\"}").unwrap_or(0.0) > 100.0);
    assert!(metric(&s, "strom_stream_bytes_out_total{stream=\"demo\"}").unwrap_or(0.0) > 1e6);
    assert!(metric(&s, "strom_process_resident_memory_bytes").unwrap_or(0.0) > 1e6);
    assert_eq!(
        metric(&s, "strom_stream_ts_errors_total{stream=\"demo\",kind=\"cc\"}"),
        Some(0.0)
    );
    let api = api(&s, "demo");
    assert_eq!(api["status"], "running");
    assert_eq!(api["active_input_index"], 0);
    assert_eq!(api["tracks"][0]["width"], 1280);
    assert_eq!(api["tracks"][1]["sample_rate"], 48000);
    assert!(api["last_frame_age_secs"].as_f64().unwrap_or(99.0) < 1.0);
}

/// ffmpeg encodes a live test pattern to a UDP input and to a publish input;
/// both come out as H.264 1280x720 + AAC on HLS and HTTP-TS.
#[test]
fn udp_and_publish_inputs_from_ffmpeg() {
    require_ffmpeg();
    let udp = free_udp_port();
    let s = Strom::start(
        "inputs",
        &format!("stream cam {{ input udp://127.0.0.1:{udp}; }}\nstream studio {{ input publish://; }}"),
    );
    let _enc1 = ffmpeg_encode_testsrc(&format!("udp://127.0.0.1:{udp}"));
    let _enc2 = ffmpeg_encode_testsrc(&s.url("/studio/publish"));
    for name in ["cam", "studio"] {
        wait_playlist(&s, name, 2, 30 * SEC);
        for path in ["index.m3u8", "mpegts"] {
            let c = codecs(&ffprobe_streams(&s.url(&format!("/{name}/{path}"))));
            assert!(c.contains(&("h264".into(), 1280, 720)), "{name}/{path}: {c:?}");
            assert!(c.iter().any(|(n, _, _)| n == "aac"), "{name}/{path}: {c:?}");
        }
    }
    // One publisher at a time.
    let second = fetch(reqwest::Method::PUT, &s.url("/studio/publish"));
    assert_eq!(second.status, 409);
    // Only a publish:// stream can be published.
    assert_eq!(fetch(reqwest::Method::PUT, &s.url("/cam/publish")).status, 403);
}

/// Killing the primary input switches to the secondary within
/// source_timeout + 1 s; the sequence keeps rising and the playlist carries
/// one discontinuity; the switch is counted.
#[test]
fn failover_to_second_input_within_bound() {
    require_ffmpeg();
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let s = Strom::start(
        "failover",
        &format!("stream ch {{ input udp://127.0.0.1:{p1}; input udp://127.0.0.1:{p2}; source_timeout 2; }}"),
    );
    let mut primary = ffmpeg_loop_demo(&format!("udp://127.0.0.1:{p1}"));
    let _secondary = ffmpeg_loop_demo(&format!("udp://127.0.0.1:{p2}"));
    let before = wait_playlist(&s, "ch", 3, 30 * SEC);
    assert_eq!(api(&s, "ch")["active_input_index"], 0);
    let last_before = before.segments.last().map(|x| x.0).unwrap_or(0);

    primary.kill();
    let killed = Instant::now();
    wait_for("switch to input 1", 10 * SEC, || {
        let a = api(&s, "ch");
        (a["active_input_index"] == 1 && a["last_frame_age_secs"].as_f64().unwrap_or(99.0) < 0.5).then_some(())
    });
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_millis(3000),
        "output resumed from input 1 after {took:?} (bound 3 s)"
    );

    let after = wait_for("segments after the switch", 20 * SEC, || {
        media_playlist(&s, "ch").filter(|p| p.segments.iter().filter(|x| x.0 > last_before).count() >= 3)
    });
    assert!(
        after.media_sequence >= before.media_sequence,
        "media sequence went back"
    );
    let seqs: Vec<u64> = after.segments.iter().map(|x| x.0).collect();
    assert!(seqs.windows(2).all(|w| w[0] + 1 == w[1]), "{seqs:?}");
    let discs = after.segments.iter().filter(|x| x.2).count();
    assert_eq!(discs, 1, "exactly one discontinuity: {after:?}");
    assert_eq!(
        metric(&s, "strom_stream_input_switches_total{stream=\"ch\"}"),
        Some(1.0)
    );
    assert_eq!(api(&s, "ch")["status"], "running");
    // Viewers keep decoding across the switch.
    let out = run_bounded(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-live_start_index", "0", "-i"])
            .arg(s.url("/ch/mono.m3u8"))
            .args(["-t", "8", "-f", "null", "-"]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The primary comes back: after 3 s of health the stream returns to it.
    let _primary = ffmpeg_loop_demo(&format!("udp://127.0.0.1:{p1}"));
    let back = Instant::now();
    wait_for("return to input 0", 15 * SEC, || {
        (api(&s, "ch")["active_input_index"] == 0).then_some(())
    });
    assert!(
        back.elapsed() >= Duration::from_secs(3),
        "returned before the primary was healthy for 3 s"
    );
    assert_eq!(
        metric(&s, "strom_stream_input_switches_total{stream=\"ch\"}"),
        Some(2.0)
    );
    let pl = wait_for("segments after the return", 20 * SEC, || {
        media_playlist(&s, "ch")
            .filter(|p| p.segments.iter().filter(|x| x.2).count() + p.discontinuity_sequence as usize >= 2)
    });
    assert!(pl.segments.windows(2).all(|w| w[0].0 + 1 == w[1].0));
}

/// With every input down the backup plays (and HEAD says unhealthy); when the
/// input comes back the stream returns to it.
#[test]
fn backup_plays_when_all_inputs_are_down() {
    require_ffmpeg();
    let p = free_udp_port();
    let s = Strom::start(
        "backup",
        &format!(
            "stream ch {{ input udp://127.0.0.1:{p}; backup {}; source_timeout 1; }}",
            demo_ts().display()
        ),
    );
    wait_playlist(&s, "ch", 2, 20 * SEC);
    assert_eq!(api(&s, "ch")["status"], "backup");
    assert_eq!(
        api(&s, "ch")["active_input_index"],
        1,
        "backup index is the number of inputs"
    );
    assert_eq!(head(&s.url("/ch/index.m3u8")), 503, "backup is not healthy for probes");
    let _live = ffmpeg_loop_demo(&format!("udp://127.0.0.1:{p}"));
    wait_for("return to the input", 20 * SEC, || {
        (api(&s, "ch")["status"] == "running").then_some(())
    });
    wait_for("healthy HEAD", 20 * SEC, || {
        (head(&s.url("/ch/index.m3u8")) == 200).then_some(())
    });
}

/// Restarting strom never sends the media sequence backwards.
#[test]
fn restart_keeps_media_sequence_rising() {
    let dir = scratch("restart");
    let port = free_tcp_port();
    let body = "stream demo { input builtin://demo; }";
    let mut s = Strom::start_in(dir.clone(), port, body);
    let first = wait_playlist(&s, "demo", 3, 20 * SEC);
    let last = first.segments.last().map(|x| x.0).expect("segment");
    let status = s.stop();
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
    let s2 = Strom::start_in(dir, port, body);
    let again = wait_playlist(&s2, "demo", 1, 20 * SEC);
    assert!(
        again.media_sequence > last,
        "sequence went back: {} after {}",
        again.media_sequence,
        last
    );
}

/// Random bytes on one UDP input are counted and do not disturb the stream
/// beside it or the process.
#[test]
fn random_bytes_on_udp_do_not_hurt_the_neighbour() {
    require_ffmpeg();
    let (bad, good) = (free_udp_port(), free_udp_port());
    let mut s = Strom::start(
        "garbage",
        &format!("stream bad {{ input udp://127.0.0.1:{bad}; }}\nstream good {{ input udp://127.0.0.1:{good}; }}"),
    );
    let _src = ffmpeg_loop_demo(&format!("udp://127.0.0.1:{good}"));
    let before = wait_playlist(&s, "good", 2, 30 * SEC);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    // xorshift: deterministic garbage, including 0x47 bytes and huge datagrams.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_secs(4) && sent < 20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = [188, 1316, 7 * 188 + 5, 65_000][(x % 4) as usize];
        let buf: Vec<u8> = (0..len)
            .map(|i| (x >> (i % 56)) as u8 ^ if i % 188 == 0 { 0x47 } else { 0 })
            .collect();
        let _ = sock.send_to(&buf, ("127.0.0.1", bad));
        sent += 1;
        std::thread::sleep(Duration::from_micros(500));
    }
    assert!(s.alive(), "strom died on garbage");
    let after = wait_playlist(&s, "good", 2, 10 * SEC);
    assert!(
        after.segments.last().map(|x| x.0) > before.segments.last().map(|x| x.0),
        "good stream stalled"
    );
    let errs: f64 = ["sync", "cc", "pes", "pmt"]
        .iter()
        .filter_map(|k| {
            metric(
                &s,
                &format!("strom_stream_ts_errors_total{{stream=\"bad\",kind=\"{k}\"}}"),
            )
        })
        .sum();
    assert!(errs > 0.0, "garbage was not counted");
    assert_eq!(
        metric(&s, "strom_stream_ts_errors_total{stream=\"good\",kind=\"sync\"}"),
        Some(0.0)
    );
    assert_eq!(
        media_playlist(&s, "bad").map(|p| p.segments.len()),
        None,
        "no playlist from garbage"
    );
}

/// 404 for unknown streams and segments, 503 (bounded) for a stream with no
/// data, and on-demand start and stop.
#[test]
fn status_codes_and_on_demand_lifecycle() {
    let silent = free_udp_port();
    let s = Strom::start(
        "codes",
        &format!(
            "stream quiet {{ input udp://127.0.0.1:{silent}; source_timeout 1; segment_duration 1; }}\n\
             stream od {{ input builtin://demo; ondemand; clients_timeout 3; }}"
        ),
    );
    assert_eq!(get(&s.url("/nope/index.m3u8")).0, 404);
    assert_eq!(get(&s.url("/nope/mpegts")).0, 404);
    let t = Instant::now();
    let r = fetch(reqwest::Method::GET, &s.url("/quiet/index.m3u8"));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert!(t.elapsed() < Duration::from_secs(10), "503 took {:?}", t.elapsed());
    assert_eq!(head(&s.url("/quiet/index.m3u8")), 503);
    assert_eq!(api(&s, "quiet")["status"], "failed");

    assert_eq!(api(&s, "od")["status"], "stopped");
    let r = fetch(reqwest::Method::GET, &s.url("/od/mono.m3u8"));
    assert_eq!(r.status, 200, "first request waits for the first segment");
    let pl = parse_playlist(&String::from_utf8_lossy(&r.body));
    assert!(!pl.segments.is_empty());
    assert_eq!(get(&s.url(&format!("/od/{}.ts", pl.segments[0].0))).0, 200);
    assert_eq!(get(&s.url("/od/1.ts")).0, 404, "segment outside the window");
    assert_eq!(api(&s, "od")["status"], "running");
    wait_for("on-demand stop after clients_timeout", 15 * SEC, || {
        (api(&s, "od")["status"] == "stopped").then_some(())
    });
}

/// A slow HTTP-TS viewer is skipped forward to a keyframe (and counted), a
/// viewer that reads nothing is disconnected after the send timeout (and
/// counted), and ingest carries on meanwhile.
#[test]
fn slow_mpegts_viewers_never_slow_ingest() {
    use std::io::Read;
    let s = Strom::start("slow", "stream demo { input builtin://demo; }");
    wait_playlist(&s, "demo", 1, 20 * SEC);
    let connect = || stalled_viewer(s.port, "demo");
    let mut slow = connect();
    let mut dead = connect();
    let seq_at_start = media_playlist(&s, "demo")
        .and_then(|p| p.segments.last().map(|x| x.0))
        .unwrap_or(0);
    // The slow viewer reads about 40 KB/s of a ~150 KB/s stream: it falls
    // behind without ever stalling completely.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_reader = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        let mut got = 0usize;
        slow.set_read_timeout(Some(5 * SEC)).expect("timeout");
        let until = Instant::now() + 45 * SEC;
        while Instant::now() < until && !stop_reader.load(std::sync::atomic::Ordering::Relaxed) {
            match slow.read(&mut buf) {
                Ok(0) | Err(_) => return (got, false),
                Ok(n) => got += n,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (got, true)
    });
    wait_for("slow viewer skipped to a keyframe", 45 * SEC, || {
        metric(&s, "strom_stream_slow_viewers_total{stream=\"demo\",kind=\"skipped\"}").filter(|v| *v >= 1.0)
    });
    let seq_now = media_playlist(&s, "demo")
        .and_then(|p| p.segments.last().map(|x| x.0))
        .unwrap_or(0);
    assert!(
        seq_now >= seq_at_start + 5,
        "ingest stalled behind slow viewers: {seq_at_start} -> {seq_now}"
    );
    let mut buf = vec![0u8; 1 << 16];
    // The viewer that never reads is cut after the send timeout (15 s of no
    // progress), with a reset (SO_LINGER 0): what it had not read is dropped.
    wait_for("send timeout", 20 * SEC, || {
        metric(&s, "strom_http_errors_total{kind=\"send_timeout\"}").filter(|v| *v >= 1.0)
    });
    dead.set_read_timeout(Some(5 * SEC)).expect("timeout");
    let mut total = 0usize;
    loop {
        match dead.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("connection should have been closed after {total} bytes: {e}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (got, connected) = reader.join().expect("reader");
    assert!(
        connected,
        "the slow (but reading) viewer was disconnected after {got} bytes"
    );
    assert!(got > 300_000, "slow viewer got {got} bytes");
}

/// `strom check` reports every error with FILE:LINE:COL and fails.
#[test]
fn check_reports_errors_with_positions() {
    let dir = scratch("check");
    let path = dir.join("bad.conf");
    std::fs::write(&path, "http 8080;\nstream a {\n  input udp://239.0.0.1:1234;\n  sorce_timeout 5;\n}\nstream a { input publish://; }\nstream b {\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let p = path.display();
    assert!(
        err.contains(&format!("{p}:4:3: ")) && err.contains("did you mean `source_timeout`"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{p}:6:8: ")) && err.contains("duplicate stream"),
        "{err}"
    );
    assert!(err.contains(&format!("{p}:7:10: ")), "unclosed block: {err}");

    let good = dir.join("good.conf");
    std::fs::write(&good, "http 8080;\nstream a { input udp://239.0.0.1:1234; }\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["check", "-c"])
        .arg(&good)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The example configs in the repository stay valid.
#[test]
fn example_configs_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut n = 0;
    for sub in ["cluster", "peering", "balancer", "auth"] {
        for e in std::fs::read_dir(root.join(sub)).expect("examples") {
            let path = e.expect("entry").path();
            let out = Command::new(env!("CARGO_BIN_EXE_strom"))
                .args(["check", "-c"])
                .arg(&path)
                .output()
                .expect("run");
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert_eq!(n, 12);
}

//! Bad and unusual input: every case gets a clear error or a counted metric,
//! the process stays up and the stream recovers. Real strom processes on
//! 127.0.0.1 with ffmpeg as the encoder.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

/// Sends `data` as MPEG-TS over UDP at `bytes_per_sec`, 7×188 bytes a datagram.
fn send_paced(sock: &std::net::UdpSocket, port: u16, data: &[u8], bytes_per_sec: f64) {
    let start = Instant::now();
    let mut sent = 0usize;
    for chunk in data.chunks(7 * 188) {
        let _ = sock.send_to(chunk, ("127.0.0.1", port));
        sent += chunk.len();
        let due = Duration::from_secs_f64(sent as f64 / bytes_per_sec);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

fn ffmpeg_make(args: &[&str], out: &std::path::Path) {
    let o = run_bounded(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .arg(out),
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&o.stderr));
}

/// One node pulls another node's HTTP-TS output as a `tshttp://` input.
#[test]
fn http_input_pulls_mpegts_from_another_node() {
    require_ffmpeg();
    let origin = Strom::start("origin", "stream demo { input builtin://demo; }");
    wait_playlist(&origin, "demo", 1, 20 * SEC);
    let edge = Strom::start(
        "edge",
        &format!(
            "stream relay {{ input tshttp://127.0.0.1:{}/demo/mpegts; }}",
            origin.port
        ),
    );
    wait_playlist(&edge, "relay", 2, 30 * SEC);
    let c = codecs(&ffprobe_streams(&edge.url("/relay/index.m3u8")));
    assert!(c.contains(&("h264".into(), 1280, 720)), "{c:?}");
    assert_eq!(api(&edge, "relay")["status"], "running");
}

/// An HTTP source that cuts every response mid-packet and starts over from
/// the beginning of its file (so time jumps back): strom reconnects, marks a
/// discontinuity, keeps the sequence rising and never dies.
#[test]
fn truncated_http_source_that_jumps_back() {
    let demo = std::fs::read(demo_ts()).expect("demo");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done_server = done.clone();
    let server = std::thread::spawn(move || {
        // Bounded: at most 4 connections within 60 s.
        let deadline = Instant::now() + 60 * SEC;
        let mut served = 0;
        while served < 4 && Instant::now() < deadline && !done_server.load(std::sync::atomic::Ordering::Relaxed) {
            let mut c = match listener.accept() {
                Ok((c, _)) => c,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            served += 1;
            let _ = c.set_nonblocking(false);
            let mut req = [0u8; 1024];
            let _ = c.read(&mut req);
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n");
            // 4.5 s of the file, cut in the middle of a packet.
            let cut = demo.len() * 45 / 100 / 188 * 188 + 77;
            let start = Instant::now();
            for (i, chunk) in demo[..cut].chunks(16 * 1024).enumerate() {
                if c.write_all(chunk).is_err() {
                    break;
                }
                let due = Duration::from_secs_f64((i + 1) as f64 * 16.0 * 1024.0 / (demo.len() as f64 / 10.0));
                if let Some(w) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(w);
                }
            }
        }
    });
    let t0 = Instant::now();
    let mut s = Strom::start(
        "truncated",
        &format!("stream t {{ input tshttp://127.0.0.1:{port}/t.ts; source_timeout 3; }}"),
    );
    let first = wait_playlist(&s, "t", 2, 20 * SEC);
    let p = wait_for("a discontinuity after a reconnect", 30 * SEC, || {
        media_playlist(&s, "t").filter(|p| p.segments.iter().any(|x| x.2) || p.discontinuity_sequence > 0)
    });
    assert!(p.media_sequence >= first.media_sequence);
    assert!(p.segments.windows(2).all(|w| w[0].0 + 1 == w[1].0));
    assert!(s.alive());
    assert!(s.log().contains("http input down"), "reconnect not logged");
    drop(s);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = server.join();
    assert!(t0.elapsed() < 90 * SEC);
}

/// The PMT changes mid-stream (new PIDs, new resolution, audio gone): the
/// new tracks are picked up, HLS gets a discontinuity, output is decodable.
#[test]
fn pmt_change_mid_stream() {
    require_ffmpeg();
    let dir = scratch("pmt");
    let a = dir.join("a.ts");
    let b = dir.join("b.ts");
    ffmpeg_make(
        &[
            "-i",
            &demo_ts().display().to_string(),
            "-t",
            "4",
            "-c",
            "copy",
            "-f",
            "mpegts",
        ],
        &a,
    );
    ffmpeg_make(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25",
            "-t",
            "8",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-mpegts_start_pid",
            "0x300",
            "-mpegts_pmt_start_pid",
            "0x1200",
            "-f",
            "mpegts",
        ],
        &b,
    );
    let port = free_udp_port();
    let s = Strom::start(
        "pmt",
        &format!("stream p {{ input udp://127.0.0.1:{port}; source_timeout 5; }}"),
    );
    let (da, db) = (std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    send_paced(&sock, port, &da, da.len() as f64 / 4.0);
    send_paced(&sock, port, &db, db.len() as f64 / 8.0);
    let api = api(&s, "p");
    assert_eq!(api["tracks"][0]["width"], 640, "{api}");
    assert_eq!(
        api["tracks"].as_array().map(|t| t.len()),
        Some(1),
        "audio track gone: {api}"
    );
    let pl = media_playlist(&s, "p").expect("playlist");
    assert!(
        pl.segments.iter().any(|x| x.2) || pl.discontinuity_sequence > 0,
        "{pl:?}"
    );
    let last = pl.segments.last().expect("segment").0;
    let seg = dir.join("last.ts");
    std::fs::write(&seg, get(&s.url(&format!("/p/{last}.ts"))).1).expect("write");
    let c = codecs(&ffprobe_streams(&seg.display().to_string()));
    assert_eq!(c, vec![("h264".to_string(), 640, 360)]);
}

/// A source whose PTS wraps past 2^33 plays on without a discontinuity.
#[test]
fn pts_wrap_is_seamless() {
    require_ffmpeg();
    let port = free_udp_port();
    let s = Strom::start("wrap", &format!("stream w {{ input udp://127.0.0.1:{port}; }}"));
    // 2^33 / 90 kHz = 95443.7 s: start 2 s before the wrap.
    let _src = Proc(Some(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i"])
            .arg(demo_ts())
            .args(["-c", "copy", "-output_ts_offset", "95441.5", "-f", "mpegts"])
            .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("ffmpeg"),
    ));
    let p = wait_playlist(&s, "w", 5, 40 * SEC);
    assert!(p.segments.iter().all(|x| !x.2), "discontinuity at the wrap: {p:?}");
    assert_eq!(p.discontinuity_sequence, 0);
    for (_, d, _) in &p.segments[..p.segments.len() - 1] {
        assert!((1.9..=3.1).contains(d), "segment of {d} s around the wrap: {p:?}");
    }
    assert_eq!(
        metric(&s, "strom_stream_dropped_frames_total{stream=\"w\",kind=\"timestamp\"}"),
        Some(0.0)
    );
}

/// A publisher that connects and sends nothing is cut after source_timeout
/// with 408, and counted; the next publisher is accepted.
#[test]
fn silent_publisher_is_dropped_and_counted() {
    let s = Strom::start("silent", "stream p { input publish://; source_timeout 2; }");
    let mut c = std::net::TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.write_all(b"PUT /p/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .expect("headers");
    c.set_read_timeout(Some(10 * SEC)).expect("timeout");
    let t = Instant::now();
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf).expect("response");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(t.elapsed() < 5 * SEC);
    assert_eq!(metric(&s, "strom_stream_input_timeouts_total{stream=\"p\"}"), Some(1.0));
    // The slot is free again.
    let mut c2 = std::net::TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c2.write_all(b"PUT /p/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .expect("headers");
    c2.set_read_timeout(Some(10 * SEC)).expect("timeout");
    let n = c2.read(&mut buf).expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

/// A broken config refuses to start with positioned errors.
#[test]
fn broken_config_refuses_to_run() {
    let dir = scratch("broken");
    let path = dir.join("strom.conf");
    std::fs::write(
        &path,
        "http 8080;\nstream x {\n  input bogus://a;\n  segment_duration 2 3;\n}\n",
    )
    .expect("write");
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_strom")).args(["run", "-c"]).arg(&path),
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let p = path.display();
    assert!(err.contains(&format!("{p}:3:9: ")), "{err}");
    assert!(err.contains(&format!("{p}:4:22: ")), "extra argument: {err}");
}

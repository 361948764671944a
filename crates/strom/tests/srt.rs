//! SRT ingest against real peers: ffmpeg (libsrt) publishing to strom's
//! `srt` listener, strom's `srt://` input calling `srt-live-transmit`
//! (Debian `srt-tools`), encryption, refusals with their reasons (a busy
//! stream and a wrong `publish_password` refused in the handshake, as
//! another strom's callers see it), a crowd of refused callers that costs
//! the log a few lines, 200 ms latency through a lossy relay, and a UDP
//! flood beside a publisher; and a node without libsrt (`STROM_LIBSRT`
//! naming a library that is not there): a listener stops the start, an
//! input retries, the rest runs. Loopback only; every wait is bounded.

mod common;

use common::*;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fails the test unless `srt-live-transmit` runs.
fn require_srt_live_transmit() {
    let ok = Command::new("srt-live-transmit")
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "srt-live-transmit is required for this test (Debian package srt-tools: apt-get install srt-tools)"
    );
}

/// ffmpeg encodes a live 640x360 H.264 + AAC test pattern (1 s GOP) as
/// MPEG-TS to `url` (an `srt://` or `udp://` URL with its options).
fn encode_to(url: &str) -> Proc {
    Proc(Some(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"])
            .args(["-g", "25", "-pix_fmt", "yuv420p", "-b:v", "800k"])
            .args(["-c:a", "aac", "-b:a", "96k", "-f", "mpegts", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg"),
    ))
}

/// ffmpeg decodes `secs` seconds of `url`; its error output must be empty.
fn assert_decodes_clean(url: &str, secs: u32) {
    let out = run_bounded(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-rw_timeout", "10000000", "-i", url])
            .args(["-t", &secs.to_string(), "-f", "null", "-"]),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "decoding {url} was not clean ({}): {err}",
        out.status
    );
}

/// A publish attempt that strom must refuse: ffmpeg gives up with an error
/// within a few seconds and strom never starts the stream.
fn assert_publish_refused(url: &str) {
    let out = run_bounded(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "3"])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts", url]),
        Duration::from_secs(20),
    );
    assert!(
        !out.status.success(),
        "ffmpeg published to {url} but strom should refuse it"
    );
}

fn srt_count(s: &Strom, result: &str) -> f64 {
    metric(s, &format!("strom_srt_connections_total{{result=\"{result}\"}}")).unwrap_or(0.0)
}

fn wait_count(s: &Strom, result: &str, at_least: f64) {
    wait_for(
        &format!("strom_srt_connections_total{{result=\"{result}\"}} >= {at_least}"),
        Duration::from_secs(10),
        || (srt_count(s, result) >= at_least).then_some(()),
    );
}

#[test]
fn ffmpeg_publishes_over_srt_and_both_outputs_decode_clean() {
    require_ffmpeg();
    let port = free_udp_port();
    let s = Strom::start(
        "srt-publish",
        &format!("srt 127.0.0.1:{port};\nstream cam {{ input publish://; }}\n"),
    );
    let _enc = encode_to(&format!("srt://127.0.0.1:{port}?streamid=#!::r=cam,m=publish"));
    wait_playlist(&s, "cam", 2, Duration::from_secs(25));
    assert_decodes_clean(&s.url("/cam/index.m3u8"), 3);
    assert_decodes_clean(&s.url("/cam/mpegts"), 2);
    assert_eq!(srt_count(&s, "accepted"), 1.0);
    let rtt = metric(&s, "strom_stream_srt_rtt_seconds{stream=\"cam\"}").expect("rtt gauge");
    assert!(rtt > 0.0 && rtt < 0.1, "loopback rtt {rtt} s");
    let buffer = metric(&s, "strom_stream_srt_receive_buffer_seconds{stream=\"cam\"}").expect("buffer gauge");
    assert!(
        buffer > 0.0 && buffer < 1.0,
        "receive buffer {buffer} s at 120 ms latency"
    );
}

#[test]
fn passphrase_is_required_and_checked() {
    require_ffmpeg();
    let port = free_udp_port();
    let s = Strom::start(
        "srt-passphrase",
        &format!("srt 127.0.0.1:{port} passphrase=correct-horse-42;\nstream cam {{ input publish://; }}\n"),
    );
    let base = format!("srt://127.0.0.1:{port}?streamid=cam");
    assert_publish_refused(&format!("{base}&passphrase=wrong-horse-42"));
    assert_publish_refused(&base);
    wait_count(&s, "encryption", 2.0);
    assert_eq!(srt_count(&s, "accepted"), 0.0);
    assert!(media_playlist(&s, "cam").is_none(), "no media from a refused caller");
    // AES-256 from the caller with the right passphrase is taken.
    let _enc = encode_to(&format!("{base}&passphrase=correct-horse-42&pbkeylen=32"));
    wait_playlist(&s, "cam", 2, Duration::from_secs(25));
    assert_decodes_clean(&s.url("/cam/index.m3u8"), 2);
    assert_eq!(srt_count(&s, "accepted"), 1.0);
}

#[test]
fn callers_are_refused_with_reasons_before_any_media() {
    require_ffmpeg();
    let port = free_udp_port();
    // strom's own srt:// input calls its listener: its log shows the reason
    // the listener gave.
    let s = Strom::start(
        "srt-refused",
        &format!(
            "srt 127.0.0.1:{port};\n\
             stream cam {{ input publish://; }}\n\
             stream pulled {{ input udp://127.0.0.1:{udp}; }}\n\
             stream probe1 {{ input srt://127.0.0.1:{port}?streamid=nosuch; }}\n\
             stream probe2 {{ input srt://127.0.0.1:{port}?streamid=pulled; }}\n\
             stream probe3 {{ input srt://127.0.0.1:{port}?streamid=%23!::r=cam,m=request; }}\n",
            udp = free_udp_port()
        ),
    );
    wait_for("the three refusals in strom's log", Duration::from_secs(15), || {
        let log = s.log();
        (log.contains("stream not found (1404)")
            && log.contains("forbidden (1403)")
            && log.contains("mode not supported (1405)"))
        .then_some(())
    });
    assert!(srt_count(&s, "unknown_stream") >= 1.0);
    assert!(srt_count(&s, "not_publishable") >= 1.0);
    assert!(srt_count(&s, "bad_streamid") >= 1.0);
    assert_eq!(srt_count(&s, "accepted"), 0.0);
    // ffmpeg publishing to an unknown stream is refused too.
    assert_publish_refused(&format!("srt://127.0.0.1:{port}?streamid=#!::r=other,m=publish"));
    assert!(media_playlist(&s, "cam").is_none());
}

#[test]
fn a_second_publisher_of_a_live_stream_is_refused() {
    require_ffmpeg();
    let port = free_udp_port();
    let s = Strom::start(
        "srt-busy",
        &format!("srt 127.0.0.1:{port};\nstream cam {{ input publish://; }}\n"),
    );
    let url = format!("srt://127.0.0.1:{port}?streamid=cam");
    let _first = encode_to(&url);
    wait_playlist(&s, "cam", 1, Duration::from_secs(25));
    assert_publish_refused(&url);
    wait_count(&s, "busy", 1.0);
    assert_eq!(srt_count(&s, "accepted"), 1.0);
}

/// A listener with a stream `cam` that ffmpeg publishes (live when this
/// returns) and an idle stream `pw` with a `publish_password`.
fn busy_and_protected(tag: &str) -> (Strom, Proc, u16) {
    require_ffmpeg();
    let port = free_udp_port();
    let s = Strom::start(
        tag,
        &format!(
            "srt 127.0.0.1:{port};\n\
             stream cam {{ input publish://; }}\n\
             stream pw {{ input publish://; publish_password s3cret; }}\n"
        ),
    );
    let enc = encode_to(&format!("srt://127.0.0.1:{port}?streamid=cam"));
    wait_playlist(&s, "cam", 1, Duration::from_secs(25));
    (s, enc, port)
}

#[test]
fn busy_streams_and_wrong_passwords_are_refused_in_the_handshake() {
    let (s, _enc, port) = busy_and_protected("srt-early");
    // Another strom calls with its srt:// inputs: its log shows what the
    // listener answered, and whether a connection ever came up.
    let callers = Strom::start(
        "srt-early-callers",
        &format!(
            "stream busy {{ input srt://127.0.0.1:{port}?streamid=cam; }}\n\
             stream wrong {{ input srt://127.0.0.1:{port}?streamid=pw%3Fpassword%3Ds3cre; }}\n\
             stream none {{ input srt://127.0.0.1:{port}?streamid=%23!::r=pw,m=publish; }}\n"
        ),
    );
    let log = wait_for("the reject codes in the callers' log", Duration::from_secs(15), || {
        let log = callers.log();
        (log.contains("stream busy (1409)") && log.matches("unauthorized (1401)").count() >= 2).then_some(log)
    });
    assert!(
        !log.contains("srt input connected"),
        "refused in the handshake: no caller ever saw a connection"
    );
    drop(callers);
    assert!(srt_count(&s, "busy") >= 1.0);
    assert!(srt_count(&s, "unauthorized") >= 2.0);
    assert_eq!(srt_count(&s, "accepted"), 1.0, "the first publisher kept the stream");
    // The right password publishes.
    let _pw = encode_to(&format!("srt://127.0.0.1:{port}?streamid=pw?password=s3cret"));
    wait_playlist(&s, "pw", 1, Duration::from_secs(25));
    assert_eq!(srt_count(&s, "accepted"), 2.0);
}

#[test]
fn a_crowd_of_refused_callers_costs_the_log_a_few_lines() {
    let (s, _enc, port) = busy_and_protected("srt-crowd");
    // 30 callers retrying with backoff: refused again and again.
    let mut body = String::new();
    for i in 0..20 {
        body.push_str(&format!(
            "stream busy{i} {{ input srt://127.0.0.1:{port}?streamid=cam; }}\n"
        ));
    }
    for i in 0..10 {
        body.push_str(&format!(
            "stream guess{i} {{ input srt://127.0.0.1:{port}?streamid=pw%3Fpassword%3Dguess{i}; }}\n"
        ));
    }
    let callers = Strom::start("srt-crowd-callers", &body);
    wait_for("50 busy and 20 unauthorized refusals", Duration::from_secs(30), || {
        (srt_count(&s, "busy") >= 50.0 && srt_count(&s, "unauthorized") >= 20.0).then_some(())
    });
    drop(callers);
    let log = s.log();
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("refused")).collect();
    assert!(
        refusals.len() <= 4,
        "{} refused callers, {} log lines about them:\n{}",
        srt_count(&s, "busy") + srt_count(&s, "unauthorized"),
        refusals.len(),
        refusals.join("\n")
    );
    assert!(
        refusals.iter().any(|l| l.contains("srt caller refused")),
        "the first refusal is logged"
    );
    assert_eq!(
        log.matches("srt publisher connected").count(),
        1,
        "a line for the one accepted publisher, none for refused callers"
    );
    assert_eq!(srt_count(&s, "accepted"), 1.0);
}

/// Seconds since midnight of a log line's RFC 3339 timestamp
/// (`2026-01-01T12:34:56.789012Z ...`).
fn log_time(line: &str) -> Option<f64> {
    let t = line.get(11..26)?;
    let h: f64 = t.get(0..2)?.parse().ok()?;
    let m: f64 = t.get(3..5)?.parse().ok()?;
    let s: f64 = t.get(6..)?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

#[test]
fn callers_past_the_password_budget_are_dropped_at_once() {
    let port = free_udp_port();
    let s = Strom::start(
        "srt-budget",
        &format!("srt 127.0.0.1:{port};\nstream pw {{ input publish://; publish_password s3cret; }}\n"),
    );
    // 30 wrong guesses at once: more than the listener answers itself
    // (20), so some get connected and are refused after the handshake.
    let mut body = String::new();
    for i in 0..30 {
        body.push_str(&format!(
            "stream guess{i} {{ input srt://127.0.0.1:{port}?streamid=pw%3Fpassword%3Dguess{i}; }}\n"
        ));
    }
    let callers = Strom::start("srt-budget-callers", &body);
    wait_for("30 unauthorized refusals", Duration::from_secs(20), || {
        (srt_count(&s, "unauthorized") >= 30.0).then_some(())
    });
    // They keep calling: read what they logged so far, and look only at
    // connections that came up more than 1 s before its last line.
    std::thread::sleep(Duration::from_secs(2));
    let log = callers.log();
    drop(callers);
    let end = log.lines().filter_map(log_time).fold(0.0, f64::max);
    let mut connected = 0;
    for i in 0..30 {
        let tag = format!("stream=guess{i} ");
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(&tag)).collect();
        for (n, line) in lines.iter().enumerate() {
            if !line.contains("srt input connected") {
                continue;
            }
            let up = log_time(line).expect("timestamp");
            if end - up < 1.0 {
                continue;
            }
            connected += 1;
            let down = lines[n + 1..]
                .iter()
                .find(|l| l.contains("srt input down"))
                .unwrap_or_else(|| panic!("guess{i} stayed connected: {line}"));
            assert!(
                down.contains("connection closed"),
                "guess{i} was dropped by the listener: {down}"
            );
            let after = log_time(down).expect("timestamp") - up;
            assert!(
                (0.0..1.0).contains(&after),
                "guess{i} learned of the refusal {after:.2} s after connecting (not at libsrt's 5 s idle timeout)"
            );
        }
    }
    assert!(connected >= 1, "some guesses went past the listener's own answers");
    assert_eq!(srt_count(&s, "accepted"), 0.0);
}

#[test]
fn an_encoder_that_dies_and_reconnects_is_taken_back() {
    require_ffmpeg();
    let port = free_udp_port();
    let s = Strom::start(
        "srt-reconnect",
        &format!("srt 127.0.0.1:{port};\nstream cam {{ input publish://; }}\n"),
    );
    let url = format!("srt://127.0.0.1:{port}?streamid=#!::r=cam,m=publish");
    let mut first = encode_to(&url);
    let before = wait_playlist(&s, "cam", 1, Duration::from_secs(25));
    // SIGKILL: no SRT shutdown, strom's side of the connection stays open
    // (until libsrt's 5 s peer-idle timeout).
    first.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let _second = encode_to(&url);
    let last = before.segments.last().map(|x| x.0).unwrap_or(0);
    wait_for("segments from the reconnected encoder", Duration::from_secs(20), || {
        media_playlist(&s, "cam")
            .filter(|p| p.segments.last().is_some_and(|x| x.0 >= last + 3))
            .map(|_| ())
    });
    assert_eq!(srt_count(&s, "accepted"), 2.0);
    assert_eq!(
        srt_count(&s, "busy"),
        0.0,
        "no \"already publishing\" for the encoder's new connection"
    );
}

#[test]
fn srt_input_pulls_from_srt_live_transmit_with_encryption() {
    require_ffmpeg();
    require_srt_live_transmit();
    let srt_port = free_udp_port();
    let udp_port = free_udp_port();
    let _slt = Proc(Some(
        Command::new("srt-live-transmit")
            .args(["-q", "-a:no"])
            .arg(format!("udp://127.0.0.1:{udp_port}"))
            .arg(format!(
                "srt://127.0.0.1:{srt_port}?mode=listener&latency=200&passphrase=correct-horse-42"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("srt-live-transmit"),
    ));
    let _enc = encode_to(&format!("udp://127.0.0.1:{udp_port}?pkt_size=1316"));
    let s = Strom::start(
        "srt-caller",
        &format!("stream pull {{ input srt://127.0.0.1:{srt_port}?passphrase=correct-horse-42&latency=200; }}\n"),
    );
    wait_playlist(&s, "pull", 2, Duration::from_secs(25));
    assert_decodes_clean(&s.url("/pull/index.m3u8"), 3);
    let rtt = metric(&s, "strom_stream_srt_rtt_seconds{stream=\"pull\"}").expect("rtt gauge");
    assert!(rtt > 0.0, "rtt of the caller connection: {rtt}");
}

#[test]
fn srt_input_reports_a_wrong_passphrase() {
    require_srt_live_transmit();
    let srt_port = free_udp_port();
    let _slt = Proc(Some(
        Command::new("srt-live-transmit")
            .args(["-q", "-a:no"])
            .arg(format!("udp://127.0.0.1:{}", free_udp_port()))
            .arg(format!(
                "srt://127.0.0.1:{srt_port}?mode=listener&passphrase=correct-horse-42"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("srt-live-transmit"),
    ));
    let s = Strom::start(
        "srt-caller-key",
        &format!("stream pull {{ input srt://127.0.0.1:{srt_port}?passphrase=wrong-horse-42; }}\n"),
    );
    wait_for("the refusal in strom's log", Duration::from_secs(15), || {
        s.log().contains("wrong passphrase").then_some(())
    });
    assert!(media_playlist(&s, "pull").is_none());
}

#[test]
fn a_silent_srt_source_is_dropped_and_called_again() {
    require_srt_live_transmit();
    let srt_port = free_udp_port();
    // A listener that connects but has nothing to send.
    let _slt = Proc(Some(
        Command::new("srt-live-transmit")
            .args(["-q", "-a:yes"])
            .arg(format!("udp://127.0.0.1:{}", free_udp_port()))
            .arg(format!("srt://127.0.0.1:{srt_port}?mode=listener"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("srt-live-transmit"),
    ));
    let s = Strom::start(
        "srt-silent",
        &format!("stream pull {{ input srt://127.0.0.1:{srt_port}; source_timeout 2; }}\n"),
    );
    wait_for("two silence timeouts", Duration::from_secs(20), || {
        (metric(&s, "strom_stream_input_timeouts_total{stream=\"pull\"}").unwrap_or(0.0) >= 2.0).then_some(())
    });
    let log = s.log();
    assert!(
        log.matches("srt input connected").count() >= 2,
        "it called again after the silence"
    );
    assert!(log.contains("no data for 2s"));
}

/// A UDP relay between a caller and a listener that drops `loss_percent`
/// of the datagrams each way (a fixed pseudo-random sequence).
struct LossyRelay {
    port: u16,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl LossyRelay {
    fn start(target: u16, loss_percent: u64) -> LossyRelay {
        let front = UdpSocket::bind("127.0.0.1:0").expect("relay bind");
        let back = UdpSocket::bind("127.0.0.1:0").expect("relay bind");
        back.connect(("127.0.0.1", target)).expect("relay connect");
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        }
        let port = front.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let client = Arc::new(std::sync::Mutex::new(None::<std::net::SocketAddr>));
        let (front, back) = (Arc::new(front), Arc::new(back));
        let mut threads = Vec::new();
        for upstream in [true, false] {
            let (front, back, stop, dropped, client) = (
                front.clone(),
                back.clone(),
                stop.clone(),
                dropped.clone(),
                client.clone(),
            );
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let mut seed: u64 = if upstream {
                    0x9e37_79b9_7f4a_7c15
                } else {
                    0x2545_f491_4f6c_dd1d
                };
                while !stop.load(Ordering::Relaxed) {
                    let n = if upstream {
                        match front.recv_from(&mut buf) {
                            Ok((n, from)) => {
                                *client.lock().expect("lock") = Some(from);
                                n
                            }
                            Err(_) => continue,
                        }
                    } else {
                        match back.recv(&mut buf) {
                            Ok(n) => n,
                            Err(_) => continue,
                        }
                    };
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    if (seed >> 33) % 100 < loss_percent {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if upstream {
                        let _ = back.send(&buf[..n]);
                    } else if let Some(to) = *client.lock().expect("lock") {
                        let _ = front.send_to(&buf[..n], to);
                    }
                }
            }));
        }
        LossyRelay {
            port,
            stop,
            dropped,
            threads,
        }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn latency_of_200_ms_recovers_5_percent_loss_each_way() {
    require_ffmpeg();
    let port = free_udp_port();
    let s = Strom::start(
        "srt-loss",
        &format!("srt 127.0.0.1:{port} latency=200;\nstream cam {{ input publish://; }}\n"),
    );
    let relay = LossyRelay::start(port, 5);
    let _enc = encode_to(&format!(
        "srt://127.0.0.1:{}?streamid=#!::r=cam,m=publish&latency=200000",
        relay.port
    ));
    wait_playlist(&s, "cam", 3, Duration::from_secs(25));
    assert_decodes_clean(&s.url("/cam/index.m3u8"), 4);
    assert!(
        relay.dropped.load(Ordering::Relaxed) > 20,
        "the relay dropped too little to test anything"
    );
    let lost = metric(&s, "strom_stream_srt_packets_total{stream=\"cam\",kind=\"lost\"}").unwrap_or(0.0);
    let again = metric(
        &s,
        "strom_stream_srt_packets_total{stream=\"cam\",kind=\"retransmitted\"}",
    )
    .unwrap_or(0.0);
    let late = metric(&s, "strom_stream_srt_packets_total{stream=\"cam\",kind=\"dropped\"}").unwrap_or(0.0);
    assert!(
        lost > 0.0 && again > 0.0,
        "loss {lost} and retransmissions {again} are counted"
    );
    assert_eq!(late, 0.0, "no packet came too late at 200 ms latency");
    let errors = metric(&s, "strom_stream_ts_errors_total{stream=\"cam\",kind=\"cc\"}").unwrap_or(0.0);
    assert_eq!(errors, 0.0, "every lost packet was recovered before the demuxer");
}

#[test]
fn a_udp_flood_does_not_stop_a_publisher() {
    require_ffmpeg();
    let port = free_udp_port();
    let s = Strom::start(
        "srt-flood",
        &format!("srt 127.0.0.1:{port};\nstream cam {{ input publish://; }}\n"),
    );
    let _enc = encode_to(&format!("srt://127.0.0.1:{port}?streamid=cam"));
    let before = wait_playlist(&s, "cam", 1, Duration::from_secs(25));
    let last_before = before.segments.last().map(|x| x.0).unwrap_or(0);
    // For 4 s, one stranger sends garbage and SRT induction handshakes
    // (about 20,000 packets a second).
    let flood = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let end = Instant::now() + Duration::from_secs(4);
    let mut seed: u64 = 1;
    let mut sent = 0u64;
    while Instant::now() < end {
        for _ in 0..200 {
            let mut pkt = [0u8; 64];
            for b in pkt.iter_mut() {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                *b = (seed >> 56) as u8;
            }
            if sent & 1 == 0 {
                // Control packet, type handshake; version 4, induction.
                pkt[..4].copy_from_slice(&0x8000_0000u32.to_be_bytes());
                pkt[16..20].copy_from_slice(&4u32.to_be_bytes());
                pkt[20..24].copy_from_slice(&2u32.to_be_bytes());
                pkt[36..40].copy_from_slice(&1u32.to_be_bytes());
            }
            let _ = flood.send_to(&pkt, ("127.0.0.1", port));
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The stream went on: new segments, the same connection.
    wait_for("segments after the flood", Duration::from_secs(10), || {
        media_playlist(&s, "cam")
            .filter(|p| p.segments.last().is_some_and(|x| x.0 >= last_before + 3))
            .map(|_| ())
    });
    assert_eq!(srt_count(&s, "accepted"), 1.0, "the publisher kept its connection");
    assert_decodes_clean(&s.url("/cam/mpegts"), 2);
    assert!(s.log().len() < 200_000, "the flood did not flood the log");
}

/// What libsrt's absence must name.
const INSTALL: &str = "apt-get install libsrt1.5-openssl";

/// Starts strom with `body` as if libsrt were not installed; the process
/// and the path of its log (stderr).
fn spawn_without_libsrt(
    tag: &str,
    port: u16,
    body: &str,
) -> (std::process::Child, std::path::PathBuf, std::path::PathBuf) {
    let dir = scratch(tag);
    let config = dir.join("strom.conf");
    std::fs::write(&config, format!("http 127.0.0.1:{port};\n{body}")).expect("config");
    let log_path = dir.join("strom.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["run", "-c"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("STROM_LIBSRT", dir.join("libsrt-absent.so.1.5"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn strom");
    (child, dir, config)
}

#[test]
fn without_libsrt_an_srt_listener_stops_the_start_naming_the_package() {
    let port = free_tcp_port();
    let udp = free_udp_port();
    let (child, dir, _) = spawn_without_libsrt(
        "srt-nolib-listener",
        port,
        &format!("srt 127.0.0.1:{udp};\nstream cam {{ input publish://; }}\n"),
    );
    let mut p = Proc(Some(child));
    let status = wait_for("strom to exit", Duration::from_secs(20), || {
        p.0.as_mut().and_then(|c| c.try_wait().ok().flatten())
    });
    assert!(!status.success(), "strom started without libsrt for an srt listener");
    let log = std::fs::read_to_string(dir.join("strom.log")).unwrap_or_default();
    assert!(
        log.contains(INSTALL) && log.contains(&format!("127.0.0.1:{udp}")),
        "the error names the listener and the package: {log}"
    );
}

#[test]
fn without_libsrt_an_srt_input_retries_and_the_rest_runs() {
    let port = free_tcp_port();
    let udp = free_udp_port();
    let (child, dir, config_path) = spawn_without_libsrt(
        "srt-nolib-input",
        port,
        &format!(
            "stream remote {{ input srt://127.0.0.1:{udp}?streamid=news; }}\nstream demo {{ input file://{}; }}\n",
            demo_ts().canonicalize().expect("demo.ts").display()
        ),
    );
    let mut s = Strom {
        child: Some(child),
        port,
        base: format!("http://127.0.0.1:{port}"),
        dir,
        config_path,
    };
    wait_for("strom's HTTP port", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
    // The file stream plays while the SRT input fails.
    wait_playlist(&s, "demo", 2, Duration::from_secs(25));
    assert!(s.alive(), "strom runs without libsrt");
    // The SRT input reports the package each time it tries again.
    let tries = wait_for("two failed srt attempts", Duration::from_secs(15), || {
        let log = s.log();
        let n = log
            .lines()
            .filter(|l| l.contains("srt input down") && l.contains(INSTALL))
            .count();
        (n >= 2).then_some(n)
    });
    assert!(tries >= 2);
    assert_ne!(status(&s, "remote"), "running");
    assert_eq!(get(&s.url("/healthz")).0, 200);
    assert!(s.alive());
}

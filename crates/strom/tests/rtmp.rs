//! RTMP ingest end to end: real strom processes on 127.0.0.1 with an `rtmp`
//! listener, fed by ffmpeg (`-f flv rtmp://…`), by a scripted publisher
//! (`common::rtmp_publisher`, strom's own sans-IO RTMP client over a
//! `TcpStream`) for what ffmpeg cannot send (a 32-bit clock about to wrap,
//! HEVC over Enhanced RTMP), by nginx-rtmp as an origin to pull from, and by
//! raw sockets sending broken protocol. Every wait is bounded; every test
//! checks what viewers get (playlists, ffprobe, clean decodes) and what the
//! node counts (`strom_rtmp_connections_total{result}`,
//! `strom_rtmp_errors_total{kind}`).

mod common;
#[path = "common/rtmp_publisher.rs"]
mod rtmp_publisher;

use common::*;
use rtmp_publisher::{Media, Publisher, Script};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

/// Starts strom with an RTMP listener on a free loopback port; returns the
/// node and that port.
fn start(tag: &str, body: &str) -> (Strom, u16) {
    let rtmp = free_tcp_port();
    let s = Strom::start(tag, &format!("rtmp 127.0.0.1:{rtmp};\n{body}"));
    wait_rtmp(&s, rtmp);
    (s, rtmp)
}

/// Waits until the RTMP port accepts connections (the HTTP port is up first).
fn wait_rtmp(s: &Strom, port: u16) {
    wait_for(
        &format!("rtmp listener on {port} ({})", s.dir.display()),
        10 * SEC,
        || TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ()),
    );
}

/// ffmpeg encodes a live 640x360 25 fps testsrc2 (libx264, GOP 25) and a
/// 1 kHz tone (AAC) and publishes them as FLV to `url`; its stderr goes to
/// `log`.
fn ffmpeg_rtmp(url: &str, log: &Path) -> Proc {
    let child = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"])
        .args(["-g", "25", "-pix_fmt", "yuv420p", "-b:v", "800k"])
        .args(["-c:a", "aac", "-b:a", "96k", "-f", "flv"])
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("ffmpeg log"))
        .spawn()
        .expect("ffmpeg");
    Proc(Some(child))
}

/// The exit status of `p` once it ends within `limit`; None if still running.
fn wait_exit(p: &mut Proc, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        let c = p.0.as_mut()?;
        if let Some(st) = c.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `sig` (`-STOP`, `-CONT`, `-KILL`) to a running process.
fn signal(p: &Proc, sig: &str) {
    let id = p.0.as_ref().expect("running").id();
    let ok = Command::new("kill").args([sig, &id.to_string()]).status();
    assert!(ok.is_ok_and(|s| s.success()), "kill {sig} {id}");
}

/// `strom_rtmp_connections_total{result="…"}` (0 before the first).
fn connections(s: &Strom, result: &str) -> f64 {
    metric(s, &format!("strom_rtmp_connections_total{{result=\"{result}\"}}")).unwrap_or(0.0)
}

/// `strom_rtmp_errors_total{kind="…"}` (0 before the first).
fn errors(s: &Strom, kind: &str) -> f64 {
    metric(s, &format!("strom_rtmp_errors_total{{kind=\"{kind}\"}}")).unwrap_or(0.0)
}

/// Sum of every `strom_rtmp_errors_total` sample.
fn all_errors(s: &Strom) -> f64 {
    let (_, text) = get_text(&s.url("/metrics"));
    text.lines()
        .filter(|l| l.starts_with("strom_rtmp_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// ffmpeg decodes `input` (a URL or a file) with `-v error`: it must exit 0
/// and print nothing. `secs` bounds what it reads of a live input.
fn decodes_cleanly(input: &str, secs: Option<u32>) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error", "-rw_timeout", "15000000", "-i", input]);
    if let Some(t) = secs {
        cmd.args(["-t", &t.to_string()]);
    }
    cmd.args(["-f", "null", "-"]);
    let out = run_bounded(&mut cmd, 60 * SEC);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "decoding {input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Downloads the segments of `p` from `s` into one file (they play as one
/// TS) and returns its path.
fn download_segments(s: &Strom, stream: &str, p: &Playlist, tag: &str) -> PathBuf {
    let mut all = Vec::new();
    for (seq, _, _) in &p.segments {
        let (code, body) = get(&s.url(&format!("/{stream}/{seq}.ts")));
        assert_eq!(code, 200, "segment {seq}");
        assert!(
            !body.is_empty() && body.len() % 188 == 0,
            "segment {seq}: {} bytes",
            body.len()
        );
        all.extend_from_slice(&body);
    }
    let path = s.dir.join(format!("{tag}.ts"));
    std::fs::write(&path, all).expect("write segments");
    path
}

/// Asserts the codecs (name, width, height) ffprobe finds at `url`.
fn assert_codecs(url: &str, video: (&str, i64, i64), audio: &str) {
    let c = codecs(&ffprobe_streams(url));
    assert!(c.contains(&(video.0.to_string(), video.1, video.2)), "{url}: {c:?}");
    assert!(c.iter().any(|(n, _, _)| n == audio), "{url}: {c:?}");
}

/// Newest segment number of a playlist.
fn newest(p: &Playlist) -> u64 {
    p.segments.last().map(|x| x.0).unwrap_or(0)
}

/// 1. ffmpeg publishes H.264 + AAC to `rtmp://…/live/cam`: HLS and HTTP-TS
///    play both tracks and decode without a single error.
#[test]
fn ffmpeg_publishes_h264_aac() {
    require_ffmpeg();
    let (s, rtmp) = start("rtmp-basic", "stream cam { input publish://; segment_duration 1; }");
    let _ff = ffmpeg_rtmp(&format!("rtmp://127.0.0.1:{rtmp}/live/cam"), &s.dir.join("ffmpeg.log"));
    wait_playlist(&s, "cam", 2, 30 * SEC);
    assert_codecs(&s.url("/cam/index.m3u8"), ("h264", 640, 360), "aac");
    assert_codecs(&s.url("/cam/mpegts"), ("h264", 640, 360), "aac");
    decodes_cleanly(&s.url("/cam/mpegts"), Some(3));
    let seg = s.dir.join("one.ts");
    let p = media_playlist(&s, "cam").expect("playlist");
    let (code, body) = get(&s.url(&format!("/cam/{}.ts", newest(&p))));
    assert_eq!(code, 200);
    std::fs::write(&seg, body).expect("segment");
    decodes_cleanly(&seg.display().to_string(), None);
    assert_eq!(connections(&s, "published"), 1.0);
    assert_eq!(all_errors(&s), 0.0, "a clean publisher is no error");
    let a = api(&s, "cam");
    assert_eq!(a["status"], "running", "{a}");
}

/// 2. `rtmp://…/APP/NAME` feeds `APP/NAME` when that stream exists, else
///    `NAME`; `rtmp://…/NAME` feeds `NAME`.
#[test]
fn publish_url_names_the_stream() {
    require_ffmpeg();
    let (s, rtmp) = start(
        "rtmp-naming",
        "stream live/x { input publish://; segment_duration 1; }\n\
         stream x { input publish://; segment_duration 1; }\n\
         stream solo { input publish://; segment_duration 1; }\n\
         stream other { input publish://; segment_duration 1; }",
    );
    let base = format!("rtmp://127.0.0.1:{rtmp}");
    let mut publishers = Vec::new();
    for (url, stream) in [("live/x", "live/x"), ("solo", "solo"), ("live/other", "other")] {
        let log = s.dir.join(format!("ff-{}.log", stream.replace('/', "-")));
        publishers.push((ffmpeg_rtmp(&format!("{base}/{url}"), &log), url, stream, log));
    }
    for (ff, url, stream, log) in &mut publishers {
        let deadline = Instant::now() + 30 * SEC;
        while media_playlist(&s, stream).is_none_or(|p| p.segments.len() < 2) {
            let ended = ff.0.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if ended.is_some() || Instant::now() > deadline {
                panic!(
                    "publishing to {base}/{url} did not feed {stream} (ffmpeg {ended:?}): {}; strom log in {}",
                    std::fs::read_to_string(&*log).unwrap_or_default().trim(),
                    s.dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(
        media_playlist(&s, "x").is_none(),
        "publishing live/x fed x too: {:?}",
        media_playlist(&s, "x")
    );
    assert_ne!(status(&s, "x"), "running");
    assert_eq!(connections(&s, "published"), 3.0);
    assert_codecs(&s.url("/live/x/index.m3u8"), ("h264", 640, 360), "aac");
}

/// 3. Refusals: no password, a wrong stream, a stream without `publish://`;
///    each is an error for ffmpeg, feeds nothing and is counted. With the
///    right password the stream plays.
#[test]
fn publishers_are_authorized() {
    require_ffmpeg();
    let udp = free_udp_port();
    let (s, rtmp) = start(
        "rtmp-auth",
        &format!(
            "stream pw {{ input publish://; publish_password secret; segment_duration 1; }}\n\
             stream plain {{ input udp://127.0.0.1:{udp}; }}"
        ),
    );
    let base = format!("rtmp://127.0.0.1:{rtmp}/live");
    for (name, result) in [
        ("pw", "unauthorized"),
        ("pw?password=wrong", "unauthorized"),
        ("nosuch", "unknown_stream"),
        ("plain", "not_publishable"),
    ] {
        let before = connections(&s, result);
        let log = s.dir.join(format!("ff-{result}-{}.log", before as u32));
        let mut ff = ffmpeg_rtmp(&format!("{base}/{name}"), &log);
        let st = wait_exit(&mut ff, 15 * SEC)
            .unwrap_or_else(|| panic!("ffmpeg publishing {name} still runs after 15 s: not refused"));
        assert!(!st.success(), "ffmpeg publishing {name} exited {st}");
        assert_eq!(connections(&s, result), before + 1.0, "{name} counted as {result}");
    }
    assert_eq!(connections(&s, "published"), 0.0);
    assert!(media_playlist(&s, "pw").is_none(), "a refused publisher fed pw");
    let _ok = ffmpeg_rtmp(&format!("{base}/pw?password=secret"), &s.dir.join("ff-ok.log"));
    wait_playlist(&s, "pw", 2, 30 * SEC);
    assert_eq!(connections(&s, "published"), 1.0);
    assert_codecs(&s.url("/pw/index.m3u8"), ("h264", 640, 360), "aac");
}

/// 4. One publisher at a time, but never "already publishing" for an
///    encoder that comes back: a second concurrent publisher is refused
///    (`busy`); after `kill -9` the restarted encoder is accepted at once,
///    and after a 1 s stall a new one takes over; the media sequence never
///    goes back.
#[test]
fn encoder_reconnects_at_once_and_a_second_publisher_is_busy() {
    require_ffmpeg();
    let (s, rtmp) = start("rtmp-reconnect", "stream cam { input publish://; segment_duration 1; }");
    let url = format!("rtmp://127.0.0.1:{rtmp}/live/cam");
    let mut first = ffmpeg_rtmp(&url, &s.dir.join("ff-1.log"));
    let p0 = wait_playlist(&s, "cam", 2, 30 * SEC);

    let mut second = ffmpeg_rtmp(&url, &s.dir.join("ff-2.log"));
    let st = wait_exit(&mut second, 15 * SEC).expect("the second publisher is refused");
    assert!(!st.success());
    assert_eq!(connections(&s, "busy"), 1.0);
    assert_eq!(connections(&s, "published"), 1.0);
    let p1 = wait_for("segments from the first publisher after the refusal", 10 * SEC, || {
        media_playlist(&s, "cam").filter(|p| newest(p) > newest(&p0))
    });

    // kill -9: the kernel closes the socket; the encoder restarts at once.
    first.kill();
    let spawned = Instant::now();
    let third = ffmpeg_rtmp(&url, &s.dir.join("ff-3.log"));
    wait_for("the restarted encoder published", 10 * SEC, || {
        (connections(&s, "published") >= 2.0).then_some(())
    });
    let took = spawned.elapsed();
    eprintln!("restarted encoder accepted {took:?} after its spawn");
    assert!(
        took < SEC,
        "restarted encoder accepted {took:?} after its spawn (bound 1 s); log in {}",
        s.dir.display()
    );
    assert_eq!(connections(&s, "busy"), 1.0, "the restarted encoder was refused");
    let p2 = wait_for("segments from the restarted encoder", 15 * SEC, || {
        media_playlist(&s, "cam").filter(|p| newest(p) >= newest(&p1) + 2)
    });
    assert!(p2.media_sequence >= p1.media_sequence, "{p1:?} then {p2:?}");
    assert!(p2.segments.windows(2).all(|w| w[0].0 + 1 == w[1].0), "{p2:?}");

    // A stalled encoder (SIGSTOP: connection open, nothing sent) is taken
    // over by a new one once it has been silent for 1 s.
    signal(&third, "-STOP");
    std::thread::sleep(Duration::from_millis(1300));
    let _fourth = ffmpeg_rtmp(&url, &s.dir.join("ff-4.log"));
    wait_for("the new encoder takes over the stalled one", 10 * SEC, || {
        (connections(&s, "published") >= 3.0).then_some(())
    });
    assert_eq!(connections(&s, "busy"), 1.0, "a stalled publisher kept the stream busy");
    let p3 = wait_for("segments from the fourth encoder", 15 * SEC, || {
        media_playlist(&s, "cam").filter(|p| newest(p) >= newest(&p2) + 3)
    });
    assert!(p3.media_sequence >= p2.media_sequence, "{p2:?} then {p3:?}");
    assert!(p3.segments.windows(2).all(|w| w[0].0 + 1 == w[1].0), "{p3:?}");
    signal(&third, "-CONT");
}

/// 5. RTMP timestamps that start 4 s before 2^32 ms and wrap: no jump, no
///    discontinuity, segments keep coming and decode.
#[test]
fn rtmp_clock_wrap_is_seamless() {
    require_ffmpeg();
    let (s, rtmp) = start("rtmp-wrap", "stream wrap { input publish://; segment_duration 1; }");
    let media = Arc::new(Media::load(&demo_ts()));
    let start_ms = u32::MAX - 3999; // 2^32 − 4000
    let publisher = Publisher::start(Script {
        port: rtmp,
        app: "live".into(),
        name: "wrap".into(),
        media,
        start_ms,
        run_for: 16 * SEC,
    });
    let jumps = |s: &Strom| metric(s, "strom_stream_timestamp_jumps_total{stream=\"wrap\"}");
    let first = wait_playlist(&s, "wrap", 1, 20 * SEC);
    let first_seq = first.segments[0].0;
    let jumps0 = jumps(&s);
    let no_disc = |p: &Playlist| {
        assert_eq!(p.discontinuity_sequence, 0, "{p:?}");
        assert!(
            p.segments.iter().all(|x| x.0 == first_seq || !x.2),
            "discontinuity after the first segment: {p:?}"
        );
    };
    no_disc(&first);
    let wrapped_at = wait_for("the publisher's clock to wrap", 15 * SEC, || {
        let p = publisher.progress();
        if let Some(e) = p.error {
            panic!("publisher: {e}");
        }
        p.wrapped_at
    });
    let at_wrap = media_playlist(&s, "wrap").expect("playlist at the wrap");
    no_disc(&at_wrap);
    // Segments keep coming for 4 s after the wrap: one cut after that
    // (so it holds media sent after the wrap), and at least 4 s of segments
    // since the wrap, numbered without a gap.
    let mid = wait_for("4 s after the wrap", 10 * SEC, || {
        let p = media_playlist(&s, "wrap")?;
        no_disc(&p);
        (wrapped_at.elapsed() >= 4 * SEC).then_some(p)
    });
    let after = wait_for("a segment cut 4 s after the wrap", 10 * SEC, || {
        let p = media_playlist(&s, "wrap")?;
        no_disc(&p);
        (newest(&p) > newest(&mid)).then_some(p)
    });
    let since: Vec<_> = after.segments.iter().filter(|x| x.0 > newest(&at_wrap)).collect();
    let secs: f64 = since.iter().map(|x| x.1).sum();
    assert!(
        secs >= 4.0,
        "{secs} s of segments since the wrap: {at_wrap:?} then {after:?}"
    );
    assert!(after.segments.windows(2).all(|w| w[0].0 + 1 == w[1].0), "{after:?}");
    let progress = publisher.progress();
    assert!(progress.error.is_none(), "publisher: {:?}", progress.error);
    assert!(
        progress.last_ms.is_some_and(|ms| ms < 60_000),
        "the clock did wrap: {progress:?}"
    );
    eprintln!("after the wrap: {after:?}, {progress:?}, jumps {jumps0:?}");
    assert_eq!(jumps(&s), jumps0, "a timestamp jump was counted across the wrap");
    assert_eq!(status(&s, "wrap"), "running");
    let ts = download_segments(&s, "wrap", &after, "after-wrap");
    decodes_cleanly(&ts.display().to_string(), None);
    assert_codecs(&s.url("/wrap/index.m3u8"), ("h264", 1280, 720), "aac");
    publisher.stop();
}

/// 6. HEVC over Enhanced RTMP (`hvc1` ExVideoTagHeader), which ffmpeg 5.1
///    cannot send: HLS carries HEVC and decodes cleanly.
#[test]
fn hevc_over_enhanced_rtmp() {
    require_ffmpeg();
    let (s, rtmp) = start("rtmp-hevc", "stream hevc { input publish://; segment_duration 1; }");
    let src = s.dir.join("hevc-src.ts");
    let out = run_bounded(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000", "-t", "6"])
            .args([
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-g",
                "25",
            ])
            .args(["-x265-params", "keyint=25:log-level=error"])
            .args(["-c:a", "aac", "-f", "mpegts"])
            .arg(&src),
        60 * SEC,
    );
    assert!(
        out.status.success(),
        "making an HEVC sample needs ffmpeg with libx265 (apt-get install ffmpeg): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let media = Arc::new(Media::load(&src));
    assert_eq!(media.video().map(|t| t.codec), Some(strom_media::frame::Codec::H265));
    let publisher = Publisher::start(Script {
        port: rtmp,
        app: "live".into(),
        name: "hevc".into(),
        media,
        start_ms: 0,
        run_for: 20 * SEC,
    });
    let p = wait_playlist(&s, "hevc", 3, 30 * SEC);
    assert!(publisher.progress().error.is_none(), "{:?}", publisher.progress());
    assert_codecs(&s.url("/hevc/index.m3u8"), ("hevc", 640, 360), "aac");
    let ts = download_segments(&s, "hevc", &p, "hevc-out");
    decodes_cleanly(&ts.display().to_string(), None);
    assert_eq!(connections(&s, "published"), 1.0);
    publisher.stop();
}

/// 7. A published input first, UDP second: the stream fails over to UDP
///    when the publisher goes and returns when it comes back; the media
///    sequence only rises.
#[test]
fn failover_between_publisher_and_udp() {
    require_ffmpeg();
    let udp = free_udp_port();
    let (s, rtmp) = start(
        "rtmp-failover",
        &format!(
            "stream fo {{ input publish://; input udp://127.0.0.1:{udp}; source_timeout 2s; segment_duration 1; }}"
        ),
    );
    let _udp = ffmpeg_loop_demo(&format!("udp://127.0.0.1:{udp}"));
    let url = format!("rtmp://127.0.0.1:{rtmp}/live/fo");
    let mut publisher = ffmpeg_rtmp(&url, &s.dir.join("ff-1.log"));
    let mut seen: Vec<Playlist> = Vec::new();
    let mut watch = |what: &str, limit: Duration, f: &dyn Fn(&serde_json::Value) -> bool| {
        wait_for(what, limit, || {
            if let Some(p) = media_playlist(&s, "fo") {
                seen.push(p);
            }
            f(&api(&s, "fo")).then_some(())
        })
    };
    watch("the publisher active", 30 * SEC, &|a| a["active_input_index"] == 0);
    wait_playlist(&s, "fo", 2, 20 * SEC);

    publisher.kill();
    let killed = Instant::now();
    watch("failover to UDP", 15 * SEC, &|a| a["active_input_index"] == 1);
    assert!(
        killed.elapsed() <= Duration::from_millis(3500),
        "switched to UDP {:?} after the publisher died (source_timeout 2 s)",
        killed.elapsed()
    );
    let _back = ffmpeg_rtmp(&url, &s.dir.join("ff-2.log"));
    watch("back to the publisher", 20 * SEC, &|a| a["active_input_index"] == 0);
    let last = media_playlist(&s, "fo").expect("playlist");
    let p = wait_for("segments after the return", 15 * SEC, || {
        media_playlist(&s, "fo").filter(|p| newest(p) >= newest(&last) + 2)
    });
    seen.push(p);
    for w in seen.windows(2) {
        assert!(w[1].media_sequence >= w[0].media_sequence, "{:?} then {:?}", w[0], w[1]);
        assert!(newest(&w[1]) >= newest(&w[0]), "{:?} then {:?}", w[0], w[1]);
    }
    for p in &seen {
        assert!(p.segments.windows(2).all(|w| w[0].0 + 1 == w[1].0), "{p:?}");
    }
    assert!(
        metric(&s, "strom_stream_input_switches_total{stream=\"fo\"}").unwrap_or(0.0) >= 2.0,
        "two switches counted"
    );
}

/// Runs nginx with the RTMP module as a child (`application live`) on
/// `port`, its files in `dir`.
fn nginx_rtmp(dir: &Path, port: u16) -> Proc {
    let module = Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so");
    assert!(
        module.exists(),
        "nginx's RTMP module is missing ({}): apt-get install libnginx-mod-rtmp",
        module.display()
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "load_module {};\ndaemon off;\nmaster_process off;\npid {}/nginx.pid;\n\
             error_log {}/nginx-error.log info;\nevents {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n",
            module.display(),
            dir.display(),
            dir.display()
        ),
    )
    .expect("nginx.conf");
    let child = Command::new("nginx")
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("nginx.out")).expect("nginx.out"))
        .spawn()
        .unwrap_or_else(|e| panic!("nginx is required (apt-get install nginx libnginx-mod-rtmp): {e}"));
    let p = Proc(Some(child));
    wait_for("nginx-rtmp listening", 10 * SEC, || {
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
    p
}

/// 8. `input rtmp://…` pulls from nginx-rtmp, which ffmpeg publishes to.
#[test]
fn pull_from_nginx_rtmp() {
    require_ffmpeg();
    let dir = scratch("nginx-rtmp");
    let port = free_tcp_port();
    let _nginx = nginx_rtmp(&dir, port);
    let _ff = ffmpeg_rtmp(&format!("rtmp://127.0.0.1:{port}/live/src"), &dir.join("ffmpeg.log"));
    let s = Strom::start(
        "rtmp-pull",
        &format!("stream pulled {{ input rtmp://127.0.0.1:{port}/live/src; segment_duration 1; }}"),
    );
    let p = wait_playlist(&s, "pulled", 3, 40 * SEC);
    assert_codecs(&s.url("/pulled/index.m3u8"), ("h264", 640, 360), "aac");
    let ts = download_segments(&s, "pulled", &p, "pulled");
    decodes_cleanly(&ts.display().to_string(), None);
    assert_eq!(api(&s, "pulled")["status"], "running");
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
    assert!(p.segments.len() >= 2, "{p:?}");
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

/// 9. An edge restreams an RTMP-published stream from its origin: the same
///    segment numbers with the same bytes.
#[test]
fn edge_restreams_a_published_stream_byte_for_byte() {
    require_ffmpeg();
    let (o, rtmp) = start(
        "rtmp-origin",
        "cluster_key abcd;\nstream cam { input publish://; segment_duration 1; }",
    );
    let _ff = ffmpeg_rtmp(&format!("rtmp://127.0.0.1:{rtmp}/live/cam"), &o.dir.join("ffmpeg.log"));
    wait_playlist(&o, "cam", 2, 30 * SEC);
    let e = Strom::start(
        "rtmp-edge",
        &format!("cluster_key abcd;\nsource 127.0.0.1:{} {{ }}", o.port),
    );
    wait_playlist(&e, "cam", 3, 30 * SEC);
    assert_identical(&o, &e, "cam");
    assert_codecs(&e.url("/cam/index.m3u8"), ("h264", 640, 360), "aac");
}

/// A connection that has done the simple handshake (RTMP 1.0 §5.2): C0
/// (version 3) and C1 out, S0+S1+S2 in, C2 (S1 echoed) out.
fn handshaken(port: u16) -> TcpStream {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(5 * SEC)).expect("timeout");
    let mut c1 = vec![3u8];
    c1.extend_from_slice(&[0; 8]); // time 0, zero: the simple handshake
    c1.extend((0..1528u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8));
    c.write_all(&c1).expect("C0+C1");
    let mut s = vec![0u8; 1 + 1536 * 2];
    c.read_exact(&mut s).expect("S0+S1+S2");
    assert_eq!(s[0], 3, "S0 version");
    c.write_all(&s[1..1537]).expect("C2");
    c
}

/// A type-0 chunk (RTMP 1.0 §5.3.1) on chunk stream `csid` (2..=63) for
/// message stream 0, announcing `len` bytes of type `type_id`, with `body`.
fn chunk0(csid: u8, type_id: u8, len: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![csid & 0x3F, 0, 0, 0];
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(body);
    out
}

/// Waits until the peer closes `c` (EOF or reset), reading and dropping
/// whatever it sends meanwhile; returns how long it took. Panics after `limit`.
fn closed_within(mut c: TcpStream, limit: Duration) -> Duration {
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit
            .checked_sub(t.elapsed())
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| panic!("connection still open after {limit:?}"));
        c.set_read_timeout(Some(left)).expect("timeout");
        match c.read(&mut buf) {
            Ok(0) => return t.elapsed(),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("connection still open after {limit:?}")
            }
            Err(_) => return t.elapsed(),
        }
    }
}

/// Deterministic pseudo-random bytes (a 64-bit LCG, Knuth's MMIX constants).
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

/// 10. Broken protocol on raw sockets: each connection is closed and
///     counted, strom stays up, and a stream being published meanwhile
///     keeps its segments without a discontinuity.
#[test]
fn bad_rtmp_input_is_closed_and_counted() {
    require_ffmpeg();
    let (mut s, rtmp) = start("rtmp-bad", "stream cam { input publish://; segment_duration 1; }");
    let _ff = ffmpeg_rtmp(&format!("rtmp://127.0.0.1:{rtmp}/live/cam"), &s.dir.join("ffmpeg.log"));
    let p0 = wait_playlist(&s, "cam", 2, 30 * SEC);
    // Opened first: it never sends a byte, and must be closed by the setup
    // timeout. A thread times it while the other cases run.
    let silent = TcpStream::connect(("127.0.0.1", rtmp)).expect("connect");
    let silent = std::thread::spawn(move || closed_within(silent, 20 * SEC));

    // C0 = 6 (encrypted RTMPE, or not RTMP at all).
    let mut c = TcpStream::connect(("127.0.0.1", rtmp)).expect("connect");
    let mut c0c1 = vec![6u8];
    c0c1.extend(garbage(1, 1536));
    let _ = c.write_all(&c0c1);
    let took = closed_within(c, 5 * SEC);
    assert!(took < 3 * SEC, "bad C0 closed after {took:?}");
    wait_for("handshake error counted", 5 * SEC, || {
        (errors(&s, "handshake") == 1.0).then_some(())
    });

    // Set Chunk Size (§5.4.1, type 1) of 0 and of 2^31.
    for (size, n) in [(0u32, 1.0), (0x8000_0000, 2.0)] {
        let mut c = handshaken(rtmp);
        let _ = c.write_all(&chunk0(2, 1, 4, &size.to_be_bytes()));
        let took = closed_within(c, 5 * SEC);
        assert!(took < 3 * SEC, "chunk size {size:#x} closed after {took:?}");
        wait_for(&format!("chunk size {size:#x} counted"), 5 * SEC, || {
            (errors(&s, "chunk_size") == n).then_some(())
        });
    }

    // A command message announcing 2^24 − 1 bytes (the most the 24-bit
    // length field can say, over the 8 MiB cap): refused at its header.
    let mut c = handshaken(rtmp);
    let _ = c.write_all(&chunk0(3, 20, 0xFF_FFFF, &garbage(2, 128)));
    let took = closed_within(c, 5 * SEC);
    assert!(took < 3 * SEC, "oversized message closed after {took:?}");
    wait_for("too_large counted", 5 * SEC, || {
        (errors(&s, "too_large") == 1.0).then_some(())
    });

    // A type-3 chunk on a chunk stream that has had no header, then garbage.
    let before = all_errors(&s);
    let mut c = handshaken(rtmp);
    let mut bytes = vec![0xC0 | 5];
    bytes.extend(garbage(3, 4096));
    let _ = c.write_all(&bytes);
    let took = closed_within(c, 5 * SEC);
    assert!(took < 3 * SEC, "headless chunk closed after {took:?}");
    wait_for("headless chunk counted", 5 * SEC, || {
        (all_errors(&s) > before).then_some(())
    });

    // Pseudo-random garbage after a handshake.
    let before = all_errors(&s);
    let mut c = handshaken(rtmp);
    let _ = c.write_all(&garbage(4, 64 * 1024));
    let took = closed_within(c, 5 * SEC);
    assert!(took < 3 * SEC, "garbage closed after {took:?}");
    wait_for("garbage counted", 5 * SEC, || (all_errors(&s) > before).then_some(()));

    // The silent connection.
    let took = silent
        .join()
        .unwrap_or_else(|_| panic!("a connection that sent nothing was still open after 20 s"));
    assert!(took <= 12 * SEC, "silent connection closed after {took:?}");
    wait_for("setup timeout counted", 5 * SEC, || {
        (errors(&s, "timeout") >= 1.0).then_some(())
    });

    // The publisher never noticed.
    assert!(s.alive(), "strom died");
    let p1 = wait_for("more segments from the publisher", 10 * SEC, || {
        media_playlist(&s, "cam").filter(|p| newest(p) >= newest(&p0) + 2)
    });
    assert!(p1.segments.iter().all(|x| !x.2), "discontinuity: {p1:?}");
    assert_eq!(p1.discontinuity_sequence, 0, "{p1:?}");
    assert!(p1.segments.windows(2).all(|w| w[0].0 + 1 == w[1].0), "{p1:?}");
    assert_eq!(connections(&s, "published"), 1.0);
    assert_eq!(api(&s, "cam")["status"], "running");
}

//! Broadcast-grade MPEG-TS end to end: feeds made like the ones satellite
//! receivers, DVB gateways and broadcast encoders send
//! (`crates/strom-media/tests/data/broadcast/`, described in its README) are
//! sent over UDP at their own pace to a real strom process, and what comes
//! out is checked with ffprobe, ffmpeg and GStreamer: every HLS segment
//! decodes on its own with no error, consecutive segments play as one TS
//! with no continuity error, tracks and languages survive, and SCTE-35 cues
//! become `EXT-X-DATERANGE` tags.

mod common;

use common::*;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../strom-media/tests/data/broadcast")
        .join(name)
}

/// Sends a TS file to `127.0.0.1:port` in 7-packet datagrams, paced by its
/// PCR (any PID) so it arrives as a live feed would; `loops` times over.
/// Stops early when the returned flag is set.
fn send_paced(path: &Path, port: u16, loops: usize) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    assert!(
        data.len() >= 188 && data[0] == 0x47,
        "{} is not a TS file",
        path.display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let h = std::thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let start = Instant::now();
        // Wall-clock offset of each loop, so later loops continue in time.
        let mut loop_base = Duration::ZERO;
        for _ in 0..loops {
            let mut first_pcr: Option<i64> = None;
            let mut last = Duration::ZERO;
            for chunk in data.chunks(7 * 188) {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(pcr) = chunk.chunks_exact(188).find_map(pcr_of) {
                    let first = *first_pcr.get_or_insert(pcr);
                    let ticks = (pcr - first).rem_euclid(1 << 33);
                    // A PCR jump (a spliced fixture) is not waited for.
                    if ticks < 60 * 90_000 {
                        last = Duration::from_micros((ticks as u64) * 1_000_000 / 90_000);
                    }
                    let due = start + loop_base + last;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                let _ = sock.send_to(chunk, ("127.0.0.1", port));
            }
            loop_base += last + Duration::from_millis(40);
        }
    });
    (stop, h)
}

/// The PCR base of a packet that carries one.
fn pcr_of(p: &[u8]) -> Option<i64> {
    let afc = (p[3] >> 4) & 0x03;
    if afc & 0x02 == 0 || p[4] < 7 || p[5] & 0x10 == 0 {
        return None;
    }
    let b = &p[6..11];
    Some(
        (i64::from(b[0]) << 25)
            | (i64::from(b[1]) << 17)
            | (i64::from(b[2]) << 9)
            | (i64::from(b[3]) << 1)
            | (i64::from(b[4]) >> 7),
    )
}

/// Media playlist text of `path` (e.g. `/tv/mono.m3u8`) once it lists `n` segments.
fn wait_media(s: &Strom, path: &str, n: usize, limit: Duration) -> String {
    wait_for(&format!("{path} with {n} segments"), limit, || {
        let (code, text) = get_text(&s.url(path));
        (code == 200 && text.lines().filter(|l| l.ends_with(".ts")).count() >= n).then_some(text)
    })
}

/// Segment URIs of a media playlist, in order.
fn segment_uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Fetches segment `uri` (relative to `dir`, e.g. `/tv/`) into `out`.
fn fetch_segment(s: &Strom, dir: &str, uri: &str, out: &Path) -> Vec<u8> {
    let (code, body) = get(&s.url(&format!("{dir}{uri}")));
    assert_eq!(code, 200, "{dir}{uri}");
    std::fs::write(out, &body).expect("write segment");
    body
}

/// Decodes `file` alone with `ffmpeg -v error`: stderr must be empty but
/// for lines in `allowed`. Returns the (video, audio) frames ffprobe decodes.
fn decodes_alone(file: &Path, allowed: &[&str]) -> (usize, usize) {
    let out = run_bounded(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-v", "error", "-i"])
            .arg(file)
            .args(["-f", "null", "-"]),
        60 * SEC,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let unexpected: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !allowed.iter().any(|a| l.ends_with(a)))
        .collect();
    assert!(
        out.status.success() && unexpected.is_empty(),
        "{}: {err}",
        file.display()
    );
    let probe = run_bounded(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-show_entries",
                "stream=codec_type,nb_read_frames",
                "-of",
                "json",
            ])
            .arg(file),
        60 * SEC,
    );
    let json: serde_json::Value = serde_json::from_slice(&probe.stdout).expect("ffprobe json");
    let count = |kind: &str| -> usize {
        json["streams"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|s| s["codec_type"] == kind)
                    .filter_map(|s| s["nb_read_frames"].as_str()?.parse::<usize>().ok())
                    .sum()
            })
            .unwrap_or(0)
    };
    (count("video"), count("audio"))
}

/// PTS (seconds) of every packet of the first stream of `kind` in `file`, in order.
fn packet_times(file: &Path, kind: &str) -> Vec<f64> {
    let sel = if kind == "video" { "v:0" } else { "a:0" };
    let out = run_bounded(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                sel,
                "-show_entries",
                "packet=pts_time",
                "-of",
                "csv=p=0",
            ])
            .arg(file),
        60 * SEC,
    );
    let mut t: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    t.sort_by(f64::total_cmp);
    t
}

/// ffprobe's streams of a local file or URL as (codec_type, codec_name, language).
fn streams(target: &str) -> Vec<(String, String, String)> {
    let probe = ffprobe_streams(target);
    probe["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["codec_type"].as_str().unwrap_or("").to_string(),
                        s["codec_name"].as_str().unwrap_or("").to_string(),
                        s["tags"]["language"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Concatenates `files` and checks that they play as one TS: ffmpeg's
/// demuxer reports no continuity error, and GStreamer's tsdemux no section
/// or packet discontinuity (skipped with a message when gst-launch-1.0 is
/// not installed; .ci/run installs it).
fn plays_as_one_ts(files: &[PathBuf], joined: &Path) {
    let mut all = Vec::new();
    for f in files {
        all.extend_from_slice(&std::fs::read(f).expect("segment"));
    }
    std::fs::write(joined, &all).expect("write");
    let out = run_bounded(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-v", "debug", "-i"])
            .arg(joined)
            .args(["-f", "null", "-"]),
        120 * SEC,
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let cc: Vec<&str> = log.lines().filter(|l| l.contains("Continuity check failed")).collect();
    assert!(cc.is_empty(), "{} segments: {cc:?}", files.len());
    let gst = Command::new("gst-launch-1.0")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !gst {
        eprintln!("gst-launch-1.0 not installed: GStreamer playback check skipped (apt-get install gstreamer1.0-tools gstreamer1.0-plugins-bad)");
        return;
    }
    let out = run_bounded(
        Command::new("gst-launch-1.0")
            .env("GST_DEBUG", "tsdemux:6,mpegtspacketizer:2")
            .env("GST_DEBUG_NO_COLOR", "1")
            .args(["-q", "filesrc"])
            .arg(format!("location={}", joined.display()))
            .args(["!", "tsdemux", "!", "fakesink"]),
        120 * SEC,
    );
    assert!(
        out.status.success(),
        "gst-launch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("discontinuity") || l.contains("CONTINUITY: Mismatch") || l.contains("CONTINUITY: Discont")
        })
        .take(5)
        .collect();
    assert!(bad.is_empty(), "GStreamer: {bad:?}");
}

/// A node with one UDP stream per `(name, query)` on one port, fed `fixture`.
fn node_with(tag: &str, fixture_name: &str, streams: &[(&str, &str)], extra: &str) -> (Strom, Arc<AtomicBool>) {
    require_ffmpeg();
    let port = free_udp_port();
    let mut body = String::new();
    for (name, query) in streams {
        body.push_str(&format!(
            "stream {name} {{ input udp://127.0.0.1:{port}{query}; {extra} }}\n"
        ));
    }
    let s = Strom::start(tag, &body);
    let (stop, _h) = send_paced(&fixture(fixture_name), port, 3);
    (s, stop)
}

/// Checks the first `n` listed segments of `dir` (`/NAME/`): each decodes on
/// its own with no error and at least `min_video` video frames, and together
/// they play as one TS. Returns the files and per-segment frame counts.
fn check_segments(s: &Strom, dir: &str, n: usize, min_video: usize, limit: Duration) -> Vec<(PathBuf, usize, usize)> {
    check_segments_allowing(s, dir, n, min_video, limit, &[])
}

/// [`check_segments`], letting ffmpeg print the lines in `allowed`.
fn check_segments_allowing(
    s: &Strom,
    dir: &str,
    n: usize,
    min_video: usize,
    limit: Duration,
    allowed: &[&str],
) -> Vec<(PathBuf, usize, usize)> {
    let text = wait_media(s, &format!("{dir}mono.m3u8"), n, limit);
    assert!(text.contains("#EXT-X-INDEPENDENT-SEGMENTS"), "{text}");
    let uris = segment_uris(&text);
    let mut out = Vec::new();
    for (i, uri) in uris.iter().take(n).enumerate() {
        let file = s.dir.join(format!("seg{i}.ts"));
        fetch_segment(s, dir, uri, &file);
        let (v, a) = decodes_alone(&file, allowed);
        assert!(
            v >= min_video,
            "{uri}: {v} video frames decoded alone (want ≥ {min_video})"
        );
        out.push((file, v, a));
    }
    let files: Vec<PathBuf> = out.iter().map(|(f, _, _)| f.clone()).collect();
    plays_as_one_ts(&files, &s.dir.join("joined.ts"));
    out
}

/// An open-GOP H.264 channel whose only random access points are I-frames
/// with recovery-point SEI starts, and every segment decodes on its own.
///
/// ffmpeg's H.264 decoder entering at a recovery point reports the memory
/// management operation that names a picture of the GOP before
/// (`mmco: unref short failure`) and skips the leading B picture that
/// refers to it, as it does on the source feed itself (see the fixture's
/// README); that line is the only one allowed, and all other pictures of
/// every segment must decode.
#[test]
fn open_gop_h264_starts_at_recovery_points() {
    let (s, stop) = node_with("opengop", "open_gop.ts", &[("tv", "")], "");
    let segs = check_segments_allowing(&s, "/tv/", 3, 10, 40 * SEC, &["mmco: unref short failure"]);
    for (f, v, a) in &segs {
        let sent = packet_times(f, "video").len();
        assert!(*v + 2 >= sent, "{}: {v} of {sent} pictures decoded", f.display());
        assert!(*a > 0, "audio in {}", f.display());
    }
    assert_eq!(status(&s, "tv"), "running");
    stop.store(true, Ordering::Relaxed);
}

/// The same for H.265 whose random access points are CRA pictures.
#[test]
fn hevc_cra_channel_starts() {
    let (s, stop) = node_with("cra", "hevc_cra.ts", &[("tv", "")], "");
    check_segments(&s, "/tv/", 3, 10, 40 * SEC);
    stop.store(true, Ordering::Relaxed);
}

/// A 10 s GOP with `segment_duration 2`: segments are whole GOPs, the target
/// duration covers them from the first playlist on and never changes.
#[test]
fn long_gop_gives_whole_gop_segments_and_a_stable_target() {
    let (s, stop) = node_with("longgop", "long_gop.ts", &[("tv", "")], "segment_duration 2;");
    let segs = check_segments(&s, "/tv/", 2, 200, 60 * SEC);
    let pl = media_playlist(&s, "tv").expect("playlist");
    assert!(pl.target_duration >= 10, "target {}", pl.target_duration);
    for (_, d, _) in &pl.segments {
        assert!(
            d.round() as u64 <= pl.target_duration,
            "EXTINF {d} over target {}",
            pl.target_duration
        );
        assert!(*d > 9.0, "a segment is a whole 10 s GOP, got {d}");
    }
    assert_eq!(segs.len(), 2);
    // Later playlists declare the same target.
    let first = pl.target_duration;
    let later = wait_for("third segment", 30 * SEC, || {
        media_playlist(&s, "tv").filter(|p| p.segments.len() >= 3)
    });
    assert_eq!(later.target_duration, first);
    stop.store(true, Ordering::Relaxed);
}

/// Pictures split over several PES, and audio PES, without PTS: nothing is
/// thrown away; the missing timestamps are interpolated and counted.
#[test]
fn pes_without_pts_loses_nothing() {
    let (s, stop) = node_with("splitpes", "split_pes.ts", &[("tv", "")], "");
    check_segments(&s, "/tv/", 3, 10, 40 * SEC);
    // Played as one stream, 25 fps video and 48 kHz AAC (1024 samples per
    // frame) have no hole: every step is one frame.
    let joined = s.dir.join("joined.ts");
    for (kind, step) in [("video", 0.040), ("audio", 1024.0 / 48_000.0)] {
        let t = packet_times(&joined, kind);
        assert!(t.len() > 100, "{kind}: {} packets", t.len());
        let worst = t.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        assert!(worst < step * 1.5, "{kind}: a hole of {worst:.3} s (frame {step:.3} s)");
    }
    let interpolated = metric(&s, "strom_stream_ts_interpolated_total{stream=\"tv\"}").unwrap_or(0.0);
    assert!(interpolated > 0.0, "interpolated timestamps are counted");
    let pes_errors = metric(&s, "strom_stream_ts_errors_total{stream=\"tv\",kind=\"pes\"}").unwrap_or(0.0);
    assert_eq!(pes_errors, 0.0, "a PES without PTS is not an error");
    stop.store(true, Ordering::Relaxed);
}

/// AAC in LATM/LOAS comes out as ADTS AAC that players decode.
#[test]
fn latm_aac_is_carried_as_adts() {
    let (s, stop) = node_with("latm", "latm.ts", &[("tv", "")], "");
    let segs = check_segments(&s, "/tv/", 2, 10, 40 * SEC);
    let file = segs[0].0.to_string_lossy().to_string();
    let st = streams(&file);
    assert!(st.iter().any(|(t, c, _)| t == "audio" && c == "aac"), "{st:?}");
    assert!(segs.iter().all(|(_, _, a)| *a > 20), "audio decoded in every segment");
    stop.store(true, Ordering::Relaxed);
}

/// Two streams take different programs of one MPTS from the same UDP port:
/// the default is the first program with video (202, listed second), and
/// `?program=101` takes the radio service.
#[test]
fn mpts_programs_are_selected() {
    let (s, stop) = node_with("mpts", "mpts.ts", &[("tv", ""), ("radio", "?program=101")], "");
    check_segments(&s, "/tv/", 2, 10, 40 * SEC);
    let tv = streams(&s.url("/tv/index.m3u8"));
    assert!(tv.iter().any(|(t, _, _)| t == "video"), "tv: {tv:?}");
    let text = wait_media(&s, "/radio/mono.m3u8", 2, 40 * SEC);
    let uri = &segment_uris(&text)[0];
    let file = s.dir.join("radio.ts");
    fetch_segment(&s, "/radio/", uri, &file);
    let radio = streams(&file.to_string_lossy());
    assert!(
        radio.iter().all(|(t, _, _)| t == "audio") && !radio.is_empty(),
        "radio: {radio:?}"
    );
    let (_, a) = decodes_alone(&file, &[]);
    assert!(a > 0, "radio audio decodes");
    stop.store(true, Ordering::Relaxed);
}

/// Teletext and DVB subtitle PIDs reach HLS segments and HTTP-TS with their
/// languages.
#[test]
fn teletext_and_dvb_subtitles_are_carried() {
    let (s, stop) = node_with("subs", "subtitles.ts", &[("tv", "")], "");
    let segs = check_segments(&s, "/tv/", 2, 10, 40 * SEC);
    let st = streams(&segs[1].0.to_string_lossy());
    assert!(
        st.iter()
            .any(|(t, c, l)| t == "subtitle" && c == "dvb_teletext" && l.starts_with("eng")),
        "{st:?}"
    );
    assert!(
        st.iter()
            .any(|(t, c, l)| t == "subtitle" && c == "dvb_subtitle" && l == "deu"),
        "{st:?}"
    );
    stop.store(true, Ordering::Relaxed);
}

/// SCTE-35 cues are carried on their PID and become EXT-X-DATERANGE tags
/// with SCTE35-OUT / SCTE35-IN at the splice times.
#[test]
fn scte35_cues_become_dateranges() {
    let (s, stop) = node_with("scte", "scte35.ts", &[("tv", "")], "");
    check_segments(&s, "/tv/", 2, 10, 40 * SEC);
    let text = wait_for("DATERANGE with OUT and IN", 60 * SEC, || {
        let (_, t) = get_text(&s.url("/tv/mono.m3u8"));
        (t.contains("SCTE35-OUT=0x") && t.contains("SCTE35-IN=0x")).then_some(t)
    });
    assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{text}");
    let out = text.lines().find(|l| l.contains("SCTE35-OUT")).expect("out");
    assert!(out.starts_with("#EXT-X-DATERANGE:ID=\""), "{out}");
    assert!(out.contains("START-DATE=\"20"), "{out}");
    assert!(out.contains("PLANNED-DURATION=5"), "{out}");
    let uri = segment_uris(&text)[0].clone();
    let file = s.dir.join("scte.ts");
    fetch_segment(&s, "/tv/", &uri, &file);
    let st = streams(&file.to_string_lossy());
    assert!(st.iter().any(|(t, c, _)| t == "data" && c == "scte_35"), "{st:?}");
    stop.store(true, Ordering::Relaxed);
}

/// Four audio languages: the master playlist offers each as an audio
/// rendition, per-track playlists carry one track each, and `video.m3u8`
/// keeps every audio track in each segment for set-top boxes.
#[test]
fn audio_languages_are_renditions() {
    let (s, stop) = node_with("langs", "languages.ts", &[("tv", "")], "");
    check_segments(&s, "/tv/", 2, 10, 40 * SEC);
    let (code, master) = get_text(&s.url("/tv/index.m3u8"));
    assert_eq!(code, 200);
    for lang in ["eng", "deu", "fra", "spa"] {
        assert!(
            master
                .lines()
                .any(|l| l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO") && l.contains(&format!("LANGUAGE=\"{lang}\""))),
            "{lang}: {master}"
        );
    }
    assert!(master.contains("AUDIO=\""), "{master}");
    let all = streams(&s.url("/tv/video.m3u8"));
    assert_eq!(all.iter().filter(|(t, _, _)| t == "audio").count(), 4, "{all:?}");
    let text = wait_media(&s, "/tv/tracks-a2/mono.m3u8", 2, 20 * SEC);
    let file = s.dir.join("a2.ts");
    fetch_segment(&s, "/tv/tracks-a2/", &segment_uris(&text)[0], &file);
    let a2 = streams(&file.to_string_lossy());
    assert_eq!(a2.len(), 1, "{a2:?}");
    assert_eq!((a2[0].1.as_str(), a2[0].2.as_str()), ("ac3", "deu"));
    let v1 = streams(&s.url("/tv/tracks-v1/mono.m3u8"));
    assert!(
        v1.iter().all(|(t, _, _)| t != "audio") && v1.iter().any(|(t, _, _)| t == "video"),
        "{v1:?}"
    );
    stop.store(true, Ordering::Relaxed);
}

/// A restreamer pulls a stream with teletext, DVB subtitles and SCTE-35 over
/// the cluster wire format (v2 carries their descriptors): its playlists,
/// per-track playlists and segments are byte-identical to the source's, and
/// its continuous HTTP-TS carries the subtitle tracks too.
#[test]
fn restreamed_subtitles_and_cues_are_identical() {
    require_ffmpeg();
    let port = free_udp_port();
    let src = Strom::start(
        "wire-src",
        &format!("cluster_key abcd;\nstream tv {{ input udp://127.0.0.1:{port}; }}"),
    );
    let (stop, _h) = send_paced(&fixture("subtitles.ts"), port, 3);
    let edge = Strom::start(
        "wire-edge",
        &format!("cluster_key abcd;\nsource 127.0.0.1:{} {{ }}", src.port),
    );
    wait_media(&edge, "/tv/mono.m3u8", 2, 60 * SEC);
    let (a, b) = wait_for("both playlists at the same newest segment", 30 * SEC, || {
        let a = get_text(&src.url("/tv/mono.m3u8")).1;
        let b = get_text(&edge.url("/tv/mono.m3u8")).1;
        (a == b && a.contains(".ts")).then_some((a, b))
    });
    assert_eq!(a, b);
    for uri in segment_uris(&a) {
        for dir in ["/tv/", "/tv/tracks-v1/"] {
            let x = get(&src.url(&format!("{dir}{uri}")));
            let y = get(&edge.url(&format!("{dir}{uri}")));
            assert_eq!(x.0, 200, "{dir}{uri}");
            assert!(x.1 == y.1, "{dir}{uri} differs ({} vs {} bytes)", x.1.len(), y.1.len());
        }
    }
    let file = edge.dir.join("edge.ts");
    fetch_segment(&edge, "/tv/", &segment_uris(&b)[0], &file);
    let st = streams(&file.to_string_lossy());
    assert!(
        st.iter().any(|(_, c, l)| c == "dvb_teletext" && l.starts_with("eng")),
        "{st:?}"
    );
    assert!(st.iter().any(|(_, c, l)| c == "dvb_subtitle" && l == "deu"), "{st:?}");
    let live = streams(&edge.url("/tv/mpegts"));
    assert!(live.iter().any(|(_, c, _)| c == "dvb_teletext"), "HTTP-TS: {live:?}");
    assert!(live.iter().any(|(_, c, _)| c == "dvb_subtitle"), "HTTP-TS: {live:?}");
    stop.store(true, Ordering::Relaxed);
}

/// A feed that starts mid-GOP waits for its first random access point: the
/// API says so (`no_rap_secs`) and nothing undecodable is published; a feed
/// with lost packets shows its last TS error with PID, kind and offset.
#[test]
fn api_shows_the_wait_for_a_rap_and_the_last_ts_error() {
    require_ffmpeg();
    // long_gop.ts without its first second: the next IDR is 9 s away.
    let data = std::fs::read(fixture("long_gop.ts")).expect("fixture");
    let cut = data.len() / 22 / 188 * 188;
    let mid = fixture_copy("mid_gop.ts", &data[cut..]);
    // demo.ts with every 50th packet of the video PID dropped: CC errors.
    let demo = std::fs::read(demo_ts()).expect("demo");
    let mut lossy = Vec::with_capacity(demo.len());
    let mut n = 0;
    for p in demo.chunks_exact(188) {
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        if pid == 256 {
            n += 1;
            if n % 50 == 0 {
                continue;
            }
        }
        lossy.extend_from_slice(p);
    }
    let lossy = fixture_copy("lossy.ts", &lossy);
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let s = Strom::start(
        "api-diag",
        &format!("stream late {{ input udp://127.0.0.1:{p1}; }}\nstream lossy {{ input udp://127.0.0.1:{p2}; }}"),
    );
    let (stop1, _h1) = send_paced(&mid, p1, 1);
    let (stop2, _h2) = send_paced(&lossy, p2, 1);
    let waiting = wait_for("no_rap_secs of the late stream", 15 * SEC, || {
        let a = api(&s, "late");
        let secs = a["no_rap_secs"].as_f64().filter(|v| *v >= 2.0)?;
        assert!(a["last_seq"].is_null(), "nothing published before the first RAP: {a}");
        Some(secs)
    });
    assert!(waiting < 12.0, "{waiting}");
    let err = wait_for("ts_last_error of the lossy stream", 20 * SEC, || {
        let a = api(&s, "lossy");
        a["ts_last_error"].is_object().then(|| a["ts_last_error"].clone())
    });
    assert_eq!(err["kind"], "cc", "{err}");
    assert_eq!(err["pid"], 256, "{err}");
    assert_eq!(err["input"], 0, "{err}");
    let offset = err["offset"].as_u64().expect("offset");
    assert!(offset > 0 && offset % 188 == 0, "{err}");
    // After the first RAP the late stream publishes whole-GOP segments.
    let text = wait_media(&s, "/late/mono.m3u8", 1, 30 * SEC);
    let file = s.dir.join("late.ts");
    fetch_segment(&s, "/late/", &segment_uris(&text)[0], &file);
    let (v, _) = decodes_alone(&file, &[]);
    assert!(v >= 200, "{v} pictures");
    assert!(api(&s, "late")["no_rap_secs"].is_null(), "the wait is over");
    stop1.store(true, Ordering::Relaxed);
    stop2.store(true, Ordering::Relaxed);
}

/// Writes `data` to a scratch file and returns its path.
fn fixture_copy(name: &str, data: &[u8]) -> PathBuf {
    let dir = scratch("fixture");
    let path = dir.join(name);
    std::fs::write(&path, data).expect("write");
    path
}

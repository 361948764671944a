//! DVR end to end: real strom processes on 127.0.0.1 record real channels
//! (ffmpeg encoding over UDP, the built-in demo) to disk, and ffmpeg and
//! ffprobe play the archive back through every catch-up URL.
//!
//! What is checked, against the list:
//! - recording: the ranges API, the stream status, the metrics and the
//!   files on disk (`ROOT/NAME/YYYY-MM-DD/HH-SEQ.wire|.idx`) agree;
//! - playback: `archive-FROM-30.m3u8|.ts`, `index-…`, the legacy
//!   `archive/FROM/DURATION/mpegts`, `timeshift_abs-FROM.ts|.m3u8`,
//!   `timeshift_rel-20.m3u8`, `archive-FROM-now.m3u8` and `rewind-N.m3u8`
//!   decode with an empty `ffmpeg -v error`, with the right tags, dates and
//!   duration; an archived segment has the bytes it had live;
//! - a restart finds the archive and records on with higher numbers; the
//!   DELETE API removes the old part;
//! - `kill -9` plus a torn tail loses at most the unfinished segment, and
//!   the tail is cut and counted;
//! - retention by depth, by size and by disk usage deletes whole old hours
//!   and counts them by reason; a full disk (a small tmpfs when this runs as
//!   root, and always a DVR path that cannot be created) counts write
//!   errors and shows the last error while live keeps playing;
//! - bad archive URLs are refused with 400 (404 where there is no archive
//!   or nothing recorded), counted by reason, and the node stays up.
//!
//! Every wait is bounded; each test prints how long it took.

mod common;

use common::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strom_media::dvr::index::{self, IndexEntry};
use strom_media::{Codec, Frame, Segment, Track, TrackParams, CLOCK_HZ};

const SEC: Duration = Duration::from_secs(1);
const HOUR_TICKS: i64 = CLOCK_HZ * 3600;

// ---------------------------------------------------------------- time ----

/// UTC Unix time now, seconds.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` of UTC hour `hour` (hours since the epoch).
fn day_name(hour: i64) -> String {
    let (y, m, d) = civil_from_days(hour.div_euclid(24));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Unix seconds of an `EXT-X-PROGRAM-DATE-TIME` value (`2025-11-22T00:00:02.000Z`).
fn parse_pdt(s: &str) -> f64 {
    let parsed = s
        .strip_suffix('Z')
        .and_then(|v| v.split_once('T'))
        .and_then(|(date, time)| {
            let d: Vec<i64> = date.split('-').map(|x| x.parse().ok()).collect::<Option<_>>()?;
            let t: Vec<f64> = time.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
            (d.len() == 3 && t.len() == 3)
                .then(|| days_from_civil(d[0], d[1], d[2]) as f64 * 86_400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2])
        });
    parsed.unwrap_or_else(|| panic!("not an UTC date-time: {s}"))
}

// ---------------------------------------------------------- processes ----

/// ffmpeg encodes a small live test pattern (libx264 with a keyframe every
/// second, AAC) to `udp://127.0.0.1:PORT` as MPEG-TS in 1316-byte datagrams.
fn encode_small(port: u16) -> Proc {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"])
        .args(["-g", "25", "-keyint_min", "25", "-sc_threshold", "0"])
        .args(["-pix_fmt", "yuv420p", "-b:v", "300k"])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "mpegts"])
        .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg");
    Proc(Some(child))
}

/// `ffmpeg -v error` decodes `url` (with `before` input options and `after`
/// output options) to nothing; fails the test unless it succeeds with an
/// empty stderr.
fn decodes_cleanly(url: &str, before: &[&str], after: &[&str]) {
    if let Some(problem) = decode_problem(url, before, after) {
        panic!("{problem}");
    }
}

/// What `ffmpeg -v error` said decoding `url`, if it failed or said anything.
fn decode_problem(url: &str, before: &[&str], after: &[&str]) -> Option<String> {
    let out = run_bounded(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-v", "error", "-rw_timeout", "15000000"])
            .args(before)
            .arg("-i")
            .arg(url)
            .args(after)
            .args(["-f", "null", "-"]),
        90 * SEC,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    (!out.status.success() || !err.trim().is_empty())
        .then(|| format!("ffmpeg -v error {url} (status {:?}) said:\n{err}", out.status))
}

/// ffprobe's container duration of `url`, seconds.
fn probe_duration(url: &str) -> f64 {
    let out = run_bounded(
        Command::new("ffprobe")
            .args(["-v", "error", "-rw_timeout", "15000000"])
            .args(["-show_entries", "format=duration", "-of", "default=nw=1:nk=1"])
            .arg(url),
        60 * SEC,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe duration of {url}: {text:?}"))
}

/// The first `n` bytes of a (possibly endless) body, read within `limit`:
/// (status, bytes). Fewer bytes when the body ends sooner.
fn get_prefix(url: &str, n: usize, limit: Duration) -> (u16, Vec<u8>) {
    let url = url.to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let client = reqwest::Client::builder().build().expect("client");
        let deadline = tokio::time::Instant::now() + limit;
        let mut r = tokio::time::timeout_at(deadline, client.get(&url).send())
            .await
            .unwrap_or_else(|_| panic!("{url}: no answer within {limit:?}"))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = r.status().as_u16();
        let mut out = Vec::new();
        while out.len() < n {
            match tokio::time::timeout_at(deadline, r.chunk()).await {
                Ok(Ok(Some(c))) => out.extend_from_slice(&c),
                Ok(Ok(None)) => break,
                Ok(Err(e)) => panic!("{url}: body failed after {} bytes: {e}", out.len()),
                Err(_) => panic!("{url}: only {} of {n} bytes within {limit:?}", out.len()),
            }
        }
        out.truncate(n);
        (status, out)
    })
}

/// Sends `METHOD PATH` byte for byte (no URL normalization, unlike an HTTP
/// client) and returns the status code and body.
fn raw_request(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut t = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    t.set_read_timeout(Some(10 * SEC)).expect("timeout");
    write!(
        t,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut buf = Vec::new();
    let _ = t.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status line in {text:?}"));
    (code, text)
}

/// SIGKILL: no shutdown path runs.
fn kill_9(s: &mut Strom) {
    let mut c = s.child.take().expect("running");
    c.kill().expect("kill -9");
    let _ = c.wait();
}

// ------------------------------------------------------------- the API ----

#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    from: i64,
    duration: i64,
}

impl Span {
    fn end(&self) -> i64 {
        self.from + self.duration
    }
}

#[derive(Debug)]
struct Ranges {
    ranges: Vec<Span>,
    depth_secs: u64,
    bytes: u64,
}

fn dvr_ranges(s: &Strom, stream: &str) -> Ranges {
    let (code, body) = get(&s.url(&format!("/api/v1/streams/{stream}/dvr/ranges")));
    assert_eq!(code, 200, "ranges of {stream}: {}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("ranges json");
    assert_eq!(v["stream"], stream);
    Ranges {
        ranges: v["ranges"]
            .as_array()
            .expect("ranges array")
            .iter()
            .map(|r| Span {
                from: r["from"].as_i64().expect("from"),
                duration: r["duration"].as_i64().expect("duration"),
            })
            .collect(),
        depth_secs: v["depth_secs"].as_u64().expect("depth_secs"),
        bytes: v["bytes"].as_u64().expect("bytes"),
    }
}

/// Waits until the newest range of `stream` is at least `secs` long.
fn wait_recorded(s: &Strom, stream: &str, secs: i64, limit: Duration) -> Ranges {
    wait_for(&format!("{secs} s recorded of {stream}"), limit, || {
        let r = dvr_ranges(s, stream);
        let ok = r.ranges.last().is_some_and(|l| l.duration >= secs);
        if !ok {
            std::thread::sleep(Duration::from_millis(400));
        }
        ok.then_some(r)
    })
}

fn metric_or_zero(s: &Strom, prefix: &str) -> f64 {
    metric(s, prefix).unwrap_or(0.0)
}

// ----------------------------------------------------------- playlists ----

#[derive(Debug, Clone)]
struct ArchSeg {
    seq: u64,
    duration: f64,
    pdt: f64,
    discontinuity: bool,
    uri: String,
}

#[derive(Debug)]
struct ArchPlaylist {
    text: String,
    kind: Option<String>,
    endlist: bool,
    media_sequence: u64,
    target: u64,
    segments: Vec<ArchSeg>,
}

impl ArchPlaylist {
    fn total(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum()
    }

    fn max_segment(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).fold(0.0, f64::max)
    }
}

/// Fetches and parses an archive playlist; fails unless 200 and well formed.
fn archive_playlist(s: &Strom, path: &str) -> ArchPlaylist {
    let r = fetch(reqwest::Method::GET, &s.url(path));
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(r.status, 200, "{path}: {text}");
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl"),
        "{path}"
    );
    assert!(text.starts_with("#EXTM3U\n"), "{path}: {text}");
    let mut p = ArchPlaylist {
        text: text.clone(),
        kind: None,
        endlist: false,
        media_sequence: 0,
        target: 0,
        segments: Vec::new(),
    };
    let (mut dur, mut pdt, mut disc) = (None, None, false);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-PLAYLIST-TYPE:") {
            p.kind = Some(v.to_string());
        } else if line == "#EXT-X-ENDLIST" {
            p.endlist = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.parse().expect("media sequence");
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target = v.parse().expect("target duration");
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = Some(parse_pdt(v));
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            dur = Some(v.trim_end_matches(',').parse::<f64>().expect("extinf"));
        } else if line == "#EXT-X-DISCONTINUITY" {
            disc = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            let seq = line
                .rsplit('/')
                .next()
                .and_then(|l| l.split(['.', '?']).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{path}: segment URI {line}"));
            p.segments.push(ArchSeg {
                seq,
                duration: dur.take().unwrap_or_else(|| panic!("{path}: no EXTINF before {line}")),
                pdt: pdt
                    .take()
                    .unwrap_or_else(|| panic!("{path}: no PROGRAM-DATE-TIME before {line}")),
                discontinuity: std::mem::take(&mut disc),
                uri: line.to_string(),
            });
        }
    }
    assert!(!p.segments.is_empty(), "{path}: no segments\n{text}");
    assert_eq!(p.media_sequence, p.segments[0].seq, "{path}");
    let seqs: Vec<u64> = p.segments.iter().map(|s| s.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "{path}: sequence numbers must increase: {seqs:?}"
    );
    p
}

// --------------------------------------------------------------- files ----

#[derive(Debug, Clone)]
struct DiskFile {
    hour: i64,
    first_seq: u64,
    wire: PathBuf,
    idx: PathBuf,
}

/// Every archive file pair of `stream` under `root`, in (hour, first_seq)
/// order; fails on any other file or a data file without its index.
fn disk_files(root: &Path, stream: &str) -> Vec<DiskFile> {
    let mut out = Vec::new();
    let dir = root.join(stream);
    let Ok(days) = std::fs::read_dir(&dir) else {
        return out;
    };
    for day in days.flatten() {
        let day_str = day.file_name().to_string_lossy().into_owned();
        let parts: Vec<i64> = day_str.split('-').filter_map(|x| x.parse().ok()).collect();
        assert!(
            parts.len() == 3 && day_str.len() == 10,
            "unexpected entry {day_str} in {}",
            dir.display()
        );
        let days_n = days_from_civil(parts[0], parts[1], parts[2]);
        for f in std::fs::read_dir(day.path()).expect("day dir").flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.ends_with(".idx") || name.ends_with(".tmp") {
                continue;
            }
            let stem = name
                .strip_suffix(".wire")
                .unwrap_or_else(|| panic!("unexpected file {day_str}/{name}"));
            let (hh, seq) = stem.split_once('-').expect("HH-SEQ");
            assert_eq!(hh.len(), 2, "{name}");
            let hh: i64 = hh.parse().expect("HH");
            assert!((0..24).contains(&hh), "{name}");
            let first_seq: u64 = seq.parse().expect("SEQ");
            let idx = day.path().join(format!("{stem}.idx"));
            assert!(idx.exists(), "{day_str}/{name} has no index beside it");
            out.push(DiskFile {
                hour: days_n * 24 + hh,
                first_seq,
                wire: f.path(),
                idx,
            });
        }
    }
    out.sort_by_key(|f| (f.hour, f.first_seq));
    out
}

/// The entries of an index file, checked: magic, version, first_seq, no torn tail.
fn read_index(f: &DiskFile) -> Vec<IndexEntry> {
    let bytes = std::fs::read(&f.idx).expect("index");
    assert!(bytes.len() >= 16, "{}: {} bytes", f.idx.display(), bytes.len());
    assert_eq!(&bytes[0..4], b"SIDX", "{}", f.idx.display());
    assert_eq!(bytes[4], 1, "index version");
    assert_eq!(&bytes[5..8], &[0, 0, 0]);
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[8..16]);
    assert_eq!(u64::from_be_bytes(first), f.first_seq, "{}", f.idx.display());
    let p = index::parse_index(&bytes).expect("index header");
    assert_eq!(p.torn_bytes, 0, "{} has a torn tail", f.idx.display());
    assert_eq!(p.valid_len as usize, bytes.len());
    p.entries
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Total bytes of every archive file of `stream`.
fn disk_bytes(root: &Path, stream: &str) -> u64 {
    disk_files(root, stream)
        .iter()
        .map(|f| file_len(&f.wire) + file_len(&f.idx))
        .sum()
}

/// Writes a valid archive file pair of `count` synthetic 2-second segments
/// (H.264 + AAC, `payload` bytes of video each) for UTC hour `hour`, numbered
/// from `first_seq`, the way the node writes them; returns its bytes.
fn write_old_pair(root: &Path, stream: &str, hour: i64, first_seq: u64, count: usize, payload: usize) -> u64 {
    let dir = root.join(stream).join(day_name(hour));
    std::fs::create_dir_all(&dir).expect("day dir");
    let stem = format!("{:02}-{first_seq}", hour.rem_euclid(24));
    let tracks: Arc<[Track]> = Arc::from(vec![
        Track {
            id: 0,
            codec: Codec::H264,
            params: TrackParams::default(),
        },
        Track {
            id: 1,
            codec: Codec::Aac,
            params: TrackParams::default(),
        },
    ]);
    let mut data = Vec::new();
    let mut idx = index::encode_header(first_seq).to_vec();
    for i in 0..count {
        let start = hour * HOUR_TICKS + i as i64 * 2 * CLOCK_HZ;
        let mut frames = vec![Frame {
            track: 0,
            dts: start,
            pts: start,
            keyframe: true,
            data: bytes::Bytes::from(vec![0x65; payload]),
        }];
        for k in 1..50 {
            frames.push(Frame {
                track: (k % 2) as u16,
                dts: start + k * 3600,
                pts: start + k * 3600,
                keyframe: k % 2 == 1,
                data: bytes::Bytes::from(vec![k as u8; 64]),
            });
        }
        let seg = Segment {
            seq: first_seq + i as u64,
            start,
            duration: 2 * CLOCK_HZ,
            discontinuity: false,
            target_duration: 2,
            tracks: tracks.clone(),
            frames,
        };
        let msg = strom_media::wire::encode_segment(&seg);
        let e = IndexEntry::of(&seg, data.len() as u64, msg.len() as u32);
        data.extend_from_slice(&msg);
        idx.extend_from_slice(&e.encode());
    }
    std::fs::write(dir.join(format!("{stem}.wire")), &data).expect("write data");
    std::fs::write(dir.join(format!("{stem}.idx")), &idx).expect("write index");
    (data.len() + idx.len()) as u64
}

/// Writes `segs` (one UTC hour's, in order) as an archive file pair the way
/// the node writes them; returns the pair's paths.
fn write_segments(root: &Path, stream: &str, segs: &[Segment]) -> DiskFile {
    let first = segs.first().expect("segments");
    let hour = first.start.div_euclid(HOUR_TICKS);
    let dir = root.join(stream).join(day_name(hour));
    std::fs::create_dir_all(&dir).expect("day dir");
    let stem = format!("{:02}-{}", hour.rem_euclid(24), first.seq);
    let mut data = Vec::new();
    let mut idx = index::encode_header(first.seq).to_vec();
    for seg in segs {
        assert_eq!(seg.start.div_euclid(HOUR_TICKS), hour, "one hour per file");
        let msg = strom_media::wire::encode_segment(seg);
        let e = IndexEntry::of(seg, data.len() as u64, msg.len() as u32);
        data.extend_from_slice(&msg);
        idx.extend_from_slice(&e.encode());
    }
    let f = DiskFile {
        hour,
        first_seq: first.seq,
        wire: dir.join(format!("{stem}.wire")),
        idx: dir.join(format!("{stem}.idx")),
    };
    std::fs::write(&f.wire, &data).expect("write data");
    std::fs::write(&f.idx, &idx).expect("write index");
    f
}

/// The segments stored in an archive data file.
fn read_segments(f: &DiskFile) -> Vec<Segment> {
    let data = std::fs::read(&f.wire).expect("data");
    let mut d = strom_media::wire::Decoder::new();
    d.push(&data);
    let mut out = Vec::new();
    while let Some(m) = d.pull().expect("wire message") {
        match m {
            strom_media::wire::Message::Segment(s) => out.push(s),
            other => panic!("{}: not a segment: {other:?}", f.wire.display()),
        }
    }
    out
}

fn pair_exists(root: &Path, stream: &str, hour: i64, first_seq: u64) -> bool {
    let p = root
        .join(stream)
        .join(day_name(hour))
        .join(format!("{:02}-{first_seq}", hour.rem_euclid(24)));
    p.with_extension("wire").exists() || p.with_extension("idx").exists()
}

/// A tmpfs of `size` mounted on `dir` while this lives (needs root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Waits until UTC is at least `margin` away from the next hour boundary, so
/// that hour arithmetic done now still holds at the end of a short test.
fn away_from_hour_end(margin: Duration) {
    let into = unix_now() % 3600.0;
    let left = 3600.0 - into;
    if left < margin.as_secs_f64() {
        std::thread::sleep(Duration::from_secs_f64(left + 1.0));
    }
}

// =============================================================== tests ====

/// Items 1, 2, 3 and 8 of the issue: an ffmpeg UDP channel is recorded; the
/// ranges API, status, metrics and files agree; every catch-up URL over a
/// 30 s window plays with an empty `ffmpeg -v error`, with VOD tags, dates
/// where FROM falls and a duration within one segment; timeshift_rel-20 is
/// 20 s behind; an archived segment has the bytes it had live.
#[test]
fn records_an_ffmpeg_channel_and_plays_every_catchup_url() {
    require_ffmpeg();
    let started = Instant::now();
    let udp = free_udp_port();
    let root = scratch("dvr-rec-root");
    let s = Strom::start(
        "dvr-rec",
        &format!(
            "stream ch {{ input udp://127.0.0.1:{udp}; segment_duration 1; dvr {}; }}",
            root.display()
        ),
    );
    let t_start = unix_now();
    let _enc = encode_small(udp);

    // A live segment, fetched now; compared with its archived bytes at the end.
    let live = wait_playlist(&s, "ch", 1, 30 * SEC);
    let (live_seq, _, _) = *live.segments.last().expect("a live segment");
    let live_resp = fetch(reqwest::Method::GET, &s.url(&format!("/ch/{live_seq}.ts")));
    assert_eq!(live_resp.status, 200);

    let rec = wait_recorded(&s, "ch", 34, 90 * SEC);
    let now = unix_now();
    assert_eq!(rec.ranges.len(), 1, "one continuous recording: {rec:?}");
    let r = rec.ranges[0];
    assert!(
        (r.from as f64) >= t_start - 2.0 && (r.from as f64) <= t_start + 20.0,
        "range starts when recording started ({t_start}): {r:?}"
    );
    let lag = now - r.end() as f64;
    assert!(
        (-2.0..=4.0).contains(&lag),
        "the range ends at the newest archived segment, {lag:.1} s before now: {r:?}"
    );
    assert!(rec.depth_secs as i64 >= r.duration - 1, "{rec:?}");
    assert!(rec.bytes > 100_000, "{rec:?}");

    // Files on disk: ROOT/ch/YYYY-MM-DD/HH-SEQ.wire|.idx of the hours recorded.
    let files = disk_files(&root, "ch");
    assert!(!files.is_empty(), "no archive files under {}", root.display());
    let (h0, h1) = ((t_start as i64) / 3600, (unix_now() as i64) / 3600);
    let mut all: Vec<IndexEntry> = Vec::new();
    for f in &files {
        assert!(
            (h0..=h1).contains(&f.hour),
            "{} is not in a recorded hour",
            f.wire.display()
        );
        let entries = read_index(f);
        assert!(!entries.is_empty(), "{}: empty index", f.idx.display());
        assert_eq!(entries[0].seq, f.first_seq, "{}", f.idx.display());
        let mut offset = 0;
        for e in &entries {
            assert_eq!(e.offset, offset, "entries are back to back in the data");
            offset += u64::from(e.len);
            assert_eq!(e.start.div_euclid(HOUR_TICKS), f.hour, "segment in its UTC hour");
            assert_eq!(e.target_duration, 1, "segment_duration 1");
            assert!(e.independent, "every segment starts with an IDR: {e:?}");
        }
        assert!(
            file_len(&f.wire) >= offset,
            "{} shorter than its index",
            f.wire.display()
        );
        all.extend(entries);
    }
    for w in all.windows(2) {
        assert_eq!(w[0].seq + 1, w[1].seq, "consecutive segment numbers");
        assert!(
            (w[1].start - w[0].end()).abs() <= CLOCK_HZ / 10,
            "{:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let recorded: f64 = all.iter().map(|e| e.duration as f64 / CLOCK_HZ as f64).sum();
    assert!(
        (recorded - r.duration as f64).abs() <= 2.0,
        "the range ({r:?}) is what the index holds ({recorded:.1} s)"
    );

    // Status and metrics.
    let info = api(&s, "ch");
    let dvr = &info["dvr"];
    assert!(dvr["bytes"].as_u64().unwrap_or(0) > 0, "{info}");
    assert_eq!(dvr["path"], root.display().to_string());
    assert!(dvr["depth_secs"].as_u64().unwrap_or(0) >= 30, "{info}");
    assert!(dvr.get("last_error").is_none_or(|e| e.is_null()), "{info}");
    let on_disk = disk_bytes(&root, "ch") as f64;
    let said = dvr["bytes"].as_u64().unwrap_or(0) as f64;
    assert!(
        (on_disk - said).abs() <= 0.1 * on_disk,
        "status says {said} bytes, disk holds {on_disk}"
    );
    assert!(metric_or_zero(&s, "strom_dvr_bytes{stream=\"ch\"}") > 0.0);
    assert!(metric_or_zero(&s, "strom_dvr_segments_written_total{stream=\"ch\"}") >= 30.0);
    assert_eq!(metric(&s, "strom_dvr_write_errors_total{stream=\"ch\"}"), Some(0.0));
    assert_eq!(metric(&s, "strom_dvr_dropped_segments_total{stream=\"ch\"}"), Some(0.0));

    // archive-FROM-30.m3u8: VOD, starts at the segment holding FROM, 30 s.
    let from = r.from + 2;
    let pl = archive_playlist(&s, &format!("/ch/archive-{from}-30.m3u8"));
    assert_eq!(pl.kind.as_deref(), Some("VOD"), "{}", pl.text);
    assert!(pl.endlist, "{}", pl.text);
    assert_eq!(pl.target, 1, "{}", pl.text);
    let seg = pl.max_segment();
    let first = &pl.segments[0];
    let last = pl.segments.last().expect("segments");
    assert!(
        first.pdt <= from as f64 + 0.001 && first.pdt + first.duration > from as f64,
        "the first segment holds FROM {from}: {first:?}"
    );
    assert!(
        last.pdt < (from + 30) as f64 && last.pdt + last.duration >= (from + 30) as f64 - 0.001,
        "the last segment reaches FROM+30: {last:?}"
    );
    assert!(
        (pl.total() - 30.0).abs() <= seg + 0.05,
        "30 s within one segment ({seg} s): {}",
        pl.total()
    );
    assert!(pl.segments.iter().all(|x| !x.discontinuity), "{}", pl.text);
    for w in pl.segments.windows(2) {
        assert_eq!(w[0].seq + 1, w[1].seq);
        assert!((w[0].pdt + w[0].duration - w[1].pdt).abs() < 0.01, "{w:?}");
    }
    // The index alias is the same playlist.
    let alias = archive_playlist(&s, &format!("/ch/index-{from}-30.m3u8"));
    assert_eq!(alias.text, pl.text);
    let mono = archive_playlist(&s, &format!("/ch/mono-{from}-30.m3u8"));
    assert_eq!(mono.text, pl.text);
    // A track selection of the archive: video only, same segment numbers.
    let v1 = archive_playlist(&s, &format!("/ch/tracks-v1/archive-{from}-30.m3u8"));
    let seqs = |p: &ArchPlaylist| p.segments.iter().map(|x| x.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&v1), seqs(&pl));
    let c = codecs(&ffprobe_streams(
        &s.url(&format!("/ch/tracks-v1/archive-{from}-30.m3u8")),
    ));
    assert!(
        c.len() == 1 && c[0] == ("h264".to_string(), 320, 240),
        "tracks-v1 archive: {c:?}"
    );
    let c = codecs(&ffprobe_streams(&s.url(&format!("/ch/{}.ts", pl.segments[0].seq))));
    assert!(
        c.iter().any(|x| x.0 == "aac") && c.iter().any(|x| x.0 == "h264"),
        "{c:?}"
    );

    let url = |p: &str| s.url(p);
    let downloads = scratch("dvr-rec-downloads");
    for (i, path) in [
        format!("/ch/archive-{from}-30.m3u8"),
        format!("/ch/index-{from}-30.m3u8"),
        format!("/ch/archive-{from}-30.ts"),
        format!("/ch/archive/{from}/30/mpegts"),
    ]
    .into_iter()
    .enumerate()
    {
        decodes_cleanly(&url(&path), &[], &[]);
        // A streamed download has no length, so ffprobe reads a saved copy.
        let target = if path.ends_with(".m3u8") {
            url(&path)
        } else {
            let (code, body) = get(&url(&path));
            assert_eq!(code, 200, "{path}");
            let file = downloads.join(format!("{i}.ts"));
            std::fs::write(&file, body).expect("save download");
            file.display().to_string()
        };
        let d = probe_duration(&target);
        assert!(
            (d - 30.0).abs() <= seg + 0.15,
            "{path}: ffprobe says {d:.3} s, not 30 s within one segment"
        );
    }
    // The download is the playlist's segments back to back; the legacy form
    // is the same bytes.
    let ts = fetch(reqwest::Method::GET, &url(&format!("/ch/archive-{from}-30.ts")));
    assert_eq!(ts.status, 200);
    assert_eq!(ts.header("content-type"), Some("video/mp2t"));
    let legacy = get(&url(&format!("/ch/archive/{from}/30/mpegts")));
    assert_eq!(legacy.0, 200);
    assert!(legacy.1 == ts.body, "legacy download differs from archive-FROM-30.ts");
    let mut joined = Vec::new();
    for x in &pl.segments {
        let r = fetch(reqwest::Method::GET, &url(&format!("/ch/{}", x.uri)));
        assert_eq!(r.status, 200, "{}", x.uri);
        joined.extend_from_slice(&r.body);
    }
    assert!(
        joined == ts.body,
        "archive-FROM-30.ts is not the playlist's segments joined"
    );

    // timeshift_abs-FROM: the .ts starts with FROM's segment and decodes; the
    // playlist starts there too.
    let first_seg = get(&url(&format!("/ch/{}.ts", first.seq))).1;
    let (code, head) = get_prefix(&url(&format!("/ch/timeshift_abs-{from}.ts")), first_seg.len(), 20 * SEC);
    assert_eq!(code, 200);
    assert!(
        head == first_seg,
        "timeshift_abs-{from}.ts does not start with FROM's segment"
    );
    decodes_cleanly(&url(&format!("/ch/timeshift_abs-{from}.ts")), &[], &["-t", "5"]);
    let tsa = archive_playlist(&s, &format!("/ch/timeshift_abs-{from}.m3u8"));
    assert_eq!(tsa.kind, None, "timeshift is a live playlist");
    assert!(!tsa.endlist);
    assert_eq!(tsa.segments[0].seq, first.seq, "{}", tsa.text);

    // timeshift_rel-20: 20 s behind now, sliding with the clock, plays.
    let rel = archive_playlist(&s, "/ch/timeshift_rel-20.m3u8");
    let now = unix_now();
    let behind = now - rel.segments.last().expect("segment").pdt;
    assert!(rel.kind.is_none() && !rel.endlist, "{}", rel.text);
    assert!(
        (behind - 20.0).abs() <= 2.0 * seg + 1.0,
        "timeshift_rel-20's newest segment is {behind:.1} s behind now\n{}",
        rel.text
    );
    std::thread::sleep(3 * SEC);
    let rel2 = archive_playlist(&s, "/ch/timeshift_rel-20.m3u8");
    let moved = rel2.segments.last().expect("segment").pdt - rel.segments.last().expect("segment").pdt;
    assert!(
        (1.0..=5.0).contains(&moved),
        "timeshift_rel-20 follows the clock: moved {moved:.1} s in 3 s"
    );
    decodes_cleanly(&url("/ch/timeshift_rel-20.m3u8"), &[], &["-t", "4"]);
    decodes_cleanly(&url("/ch/timeshift_rel-20.ts"), &[], &["-t", "3"]);
    // timeshift_abs moves on with the clock from the viewer's first request
    // with that FROM; a new FROM is a new position.
    let tsa2 = archive_playlist(&s, &format!("/ch/timeshift_abs-{from}.m3u8"));
    let ahead = tsa2.segments.last().expect("segment").pdt - from as f64;
    assert!(
        (1.0..=6.0).contains(&ahead),
        "timeshift_abs-{from} after ~3 s is at FROM+{ahead:.1}\n{}",
        tsa2.text
    );
    let seek = archive_playlist(&s, &format!("/ch/timeshift_abs-{}.m3u8", from + 10));
    let at = seek.segments.last().expect("segment");
    assert!(
        at.pdt <= (from + 10) as f64 + 0.001 && at.pdt + at.duration > (from + 10) as f64,
        "a new FROM starts a new position at its own segment: {at:?}"
    );

    // archive-FROM-now: a growing EVENT playlist up to the live edge.
    let ev = archive_playlist(&s, &format!("/ch/archive-{from}-now.m3u8"));
    assert_eq!(ev.kind.as_deref(), Some("EVENT"), "{}", ev.text);
    assert!(!ev.endlist);
    assert_eq!(ev.segments[0].seq, first.seq);
    let live_now = media_playlist(&s, "ch").expect("live playlist");
    let newest = live_now.segments.last().expect("live").0;
    assert!(ev.segments.last().expect("segment").seq + 2 >= newest, "{}", ev.text);
    // rewind-10: a sliding window of the last 10 s with the live edge.
    let rw = archive_playlist(&s, "/ch/rewind-10.m3u8");
    assert!(rw.kind.is_none() && !rw.endlist, "{}", rw.text);
    assert!(rw.segments.last().expect("segment").seq + 2 >= newest);
    assert!((8.0..=13.0).contains(&rw.total()), "rewind-10 spans {}", rw.total());

    // The segment fetched live at the start has left the window; the
    // archive serves it with the same bytes, cacheable forever.
    assert!(
        live_now.media_sequence > live_seq + 10,
        "segment {live_seq} should have left the live window"
    );
    let archived = fetch(reqwest::Method::GET, &url(&format!("/ch/{live_seq}.ts")));
    assert_eq!(archived.status, 200);
    assert!(
        archived.body == live_resp.body,
        "archived segment {live_seq} differs from what was served live"
    );
    assert!(archived
        .header("cache-control")
        .is_some_and(|v| v.contains("immutable")));
    assert_eq!(metric(&s, "strom_dvr_dropped_segments_total{stream=\"ch\"}"), Some(0.0));
    eprintln!(
        "records_an_ffmpeg_channel_and_plays_every_catchup_url: {:?}",
        started.elapsed()
    );
}

/// Item 4: a restart finds the archive (same range, still playable),
/// recording goes on with higher segment numbers in a new file; then the
/// DELETE API removes the finished old part, on disk and in the ranges.
#[test]
fn restart_keeps_the_archive_and_delete_removes_it() {
    require_ffmpeg();
    let started = Instant::now();
    let udp = free_udp_port();
    let root = scratch("dvr-restart-root");
    let body = format!(
        "stream tv {{ input udp://127.0.0.1:{udp}; segment_duration 1; dvr {}; }}",
        root.display()
    );
    let mut s = Strom::start("dvr-restart", &body);
    let _enc = encode_small(udp);
    let before = wait_recorded(&s, "tv", 8, 60 * SEC);
    assert_eq!(before.ranges.len(), 1, "{before:?}");
    let old = before.ranges[0];
    let st = s.stop();
    assert!(st.success(), "strom exit status {st:?}");

    let old_files = disk_files(&root, "tv");
    assert!(!old_files.is_empty());
    let old_entries: Vec<IndexEntry> = old_files.iter().flat_map(read_index).collect();
    let old_last = old_entries.last().expect("entries").seq;

    let (dir, port) = (s.dir.clone(), s.port);
    drop(s);
    let s = Strom::start_in(dir, port, &body);
    // The archive is found again at once, before anything new is recorded.
    let again = dvr_ranges(&s, "tv");
    let first = *again.ranges.first().expect("the old range after a restart");
    assert_eq!(first.from, old.from, "{again:?} vs {before:?}");
    assert!(first.duration >= old.duration, "{again:?} vs {before:?}");
    let old_end = first.end();
    let old_path = format!("/tv/archive-{}-{}.m3u8", old.from, old.duration);
    let old_pl = archive_playlist(&s, &old_path);
    assert!(old_pl.segments.iter().all(|x| x.seq <= old_last));
    decodes_cleanly(&s.url(&old_path), &[], &[]);
    decodes_cleanly(
        &s.url(&format!("/tv/archive/{}/{}/mpegts", old.from, old.duration)),
        &[],
        &[],
    );

    // Recording goes on after the restart gap, with higher numbers.
    let after = wait_for("recording after the restart", 60 * SEC, || {
        let r = dvr_ranges(&s, "tv");
        let ok = r.ranges.last().is_some_and(|l| l.end() >= old_end + 5);
        if !ok {
            std::thread::sleep(Duration::from_millis(400));
        }
        ok.then_some(r)
    });
    assert!(
        (1..=2).contains(&after.ranges.len()),
        "the old range and a new (or continued) one: {after:?}"
    );
    assert_eq!(after.ranges[0].from, old.from);
    let files = disk_files(&root, "tv");
    let new_files: Vec<&DiskFile> = files.iter().filter(|f| f.first_seq > old_last).collect();
    assert_eq!(
        files.len(),
        old_files.len() + new_files.len(),
        "old files kept, new ones numbered above {old_last}: {files:?}"
    );
    assert!(!new_files.is_empty(), "a new file after the restart: {files:?}");
    let live = media_playlist(&s, "tv").expect("live");
    assert!(
        live.segments.iter().all(|x| x.0 > old_last),
        "segment numbers after the restart must be higher than {old_last}: {live:?}"
    );
    // One playlist across the restart: numbers rise; the new run's first
    // segment does not continue the old run's timeline (the old run's last
    // segment was cut at its stop, the new run maps the input to UTC
    // afresh), so it must be marked as a discontinuity even when the gap is
    // under the 1 s gap tolerance, and it must not start before the old run
    // ended. Checked at the end, so that the checks below still run.
    let mut problems: Vec<String> = Vec::new();
    let span = after.ranges.last().expect("range").end() - old.from;
    let across_path = format!("/tv/archive-{}-{span}.m3u8", old.from);
    let across = archive_playlist(&s, &across_path);
    let gap_at = across
        .segments
        .iter()
        .position(|x| x.seq > old_last)
        .expect("new segments in the playlist");
    assert!(gap_at > 0, "old segments in the playlist\n{}", across.text);
    let (prev, next) = (&across.segments[gap_at - 1], &across.segments[gap_at]);
    if !next.discontinuity {
        problems.push(format!(
            "no EXT-X-DISCONTINUITY at the restart: segment {} ends at {:.3}, the new run's segment {} starts at {:.3}\n{}",
            prev.seq,
            prev.pdt + prev.duration,
            next.seq,
            next.pdt,
            across.text
        ));
    }
    if next.pdt < prev.pdt + prev.duration - 0.001 {
        problems.push(format!(
            "the new run's first segment {} starts at {:.3}, before the old run's last segment {} ended ({:.3})",
            next.seq,
            next.pdt,
            prev.seq,
            prev.pdt + prev.duration
        ));
    }
    // Not asserted (ffmpeg's HLS demuxer ignores EXT-X-DISCONTINUITY), shown
    // for the record.
    if let Some(p) = decode_problem(&s.url(&across_path), &[], &[]) {
        eprintln!("NOTE: playing across the restart: {p}");
    }

    // DELETE the old range: its finished files go, the new ones stay.
    let deleted_before = metric_or_zero(&s, "strom_dvr_deleted_bytes_total{reason=\"api\"}");
    let old_bytes: u64 = old_files.iter().map(|f| file_len(&f.wire) + file_len(&f.idx)).sum();
    let r = fetch(
        reqwest::Method::DELETE,
        &s.url(&format!(
            "/api/v1/streams/tv/dvr/ranges?from={}&duration={}",
            old.from,
            old_end - old.from + 1
        )),
    );
    let text = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, 200, "{text}");
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["deleted_files"].as_u64(), Some(old_files.len() as u64), "{text}");
    assert_eq!(v["deleted_bytes"].as_u64(), Some(old_bytes), "{text}");
    for f in &old_files {
        assert!(
            !f.wire.exists() && !f.idx.exists(),
            "{} still on disk",
            f.wire.display()
        );
    }
    assert!(disk_files(&root, "tv").iter().all(|f| f.first_seq > old_last));
    let gone = dvr_ranges(&s, "tv");
    assert!(
        gone.ranges.iter().all(|x| x.from > old_end - 1),
        "the deleted range still shows: {gone:?}"
    );
    assert!(!gone.ranges.is_empty(), "the new recording stays: {gone:?}");
    assert_eq!(get(&s.url(&old_path)).0, 404);
    assert_eq!(
        metric_or_zero(&s, "strom_dvr_deleted_bytes_total{reason=\"api\"}") - deleted_before,
        old_bytes as f64
    );

    // A DELETE over the file being written keeps it, and says so.
    let writing = disk_files(&root, "tv");
    let newest = gone.ranges.last().expect("range");
    let r = fetch(
        reqwest::Method::DELETE,
        &s.url(&format!(
            "/api/v1/streams/tv/dvr/ranges?from={}&duration=3600",
            newest.from
        )),
    );
    let text = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, 200, "{text}");
    for f in &writing {
        assert!(f.wire.exists(), "{} (being written) was deleted", f.wire.display());
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    if (v["deleted_files"].as_u64(), v["deleted_bytes"].as_u64()) != (Some(0), Some(0)) {
        problems.push(format!(
            "DELETE over the file being written kept it, yet answered {text} (expected 0 files, 0 bytes)"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    eprintln!(
        "restart_keeps_the_archive_and_delete_removes_it: {:?}",
        started.elapsed()
    );
}

/// Item 5: `kill -9` while recording, then a torn write simulated on the
/// newest file (garbage after the data, the index cut mid-entry): the next
/// start keeps everything but at most the unfinished segment, cuts the
/// garbage, counts the torn tail, rebuilds the index, and plays it back.
#[test]
fn kill_9_and_a_torn_tail_lose_at_most_the_unfinished_segment() {
    require_ffmpeg();
    let started = Instant::now();
    let udp = free_udp_port();
    let root = scratch("dvr-kill-root");
    let body = format!(
        "stream tv {{ input udp://127.0.0.1:{udp}; segment_duration 1; dvr {}; }}",
        root.display()
    );
    let mut s = Strom::start("dvr-kill", &body);
    let mut enc = encode_small(udp);
    wait_recorded(&s, "tv", 8, 60 * SEC);
    let before = dvr_ranges(&s, "tv");
    kill_9(&mut s);
    enc.kill();
    let before_end = before.ranges.last().expect("range").end();

    // What the kill left: whole segments in the newest file, as indexed.
    let files = disk_files(&root, "tv");
    let newest = files.last().expect("files").clone();
    let kept = read_index(&newest);
    let covered: u64 = kept.iter().map(|e| u64::from(e.len)).sum();
    let wire_len = file_len(&newest.wire);
    assert!(wire_len >= covered);
    let idx_before = std::fs::read(&newest.idx).expect("index");
    // A torn write: half a message of garbage after the data, the index cut
    // 10 bytes into its last entry.
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&newest.wire)
            .expect("open data");
        f.write_all(&[0xA5; 1000]).expect("garbage");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&newest.idx)
            .expect("open index");
        f.set_len(idx_before.len() as u64 - 10).expect("truncate index");
    }

    let (dir, port) = (s.dir.clone(), s.port);
    drop(s);
    let s = Strom::start_in(dir, port, &body);
    let after = dvr_ranges(&s, "tv");
    let r0 = *after.ranges.first().expect("the archive after kill -9");
    assert_eq!(r0.from, before.ranges[0].from, "{after:?} vs {before:?}");
    assert!(
        r0.end() >= before_end - 2,
        "kill -9 lost more than the unfinished segment: {before:?} then {after:?}"
    );
    assert!(
        metric_or_zero(&s, "strom_dvr_torn_tails_total") >= 1.0,
        "the torn tail is counted"
    );
    // The garbage is cut; the index is whole again and matches the data.
    let repaired_wire = std::fs::read(&newest.wire).expect("data");
    assert!(
        repaired_wire.len() as u64 <= wire_len,
        "garbage left: {} bytes, {wire_len} before the garbage",
        repaired_wire.len()
    );
    let repaired = read_index(&newest);
    assert!(
        repaired.len() >= kept.len(),
        "the entry cut from the index is rebuilt from the data: {} < {}",
        repaired.len(),
        kept.len()
    );
    assert_eq!(&repaired[..kept.len()], &kept[..], "entries before the cut are kept");
    let rebuilt = index::rebuild(&repaired_wire, 0, None);
    assert_eq!(rebuilt.torn_bytes, 0, "the data is whole messages only");
    assert_eq!(rebuilt.valid_len as usize, repaired_wire.len());
    assert_eq!(rebuilt.entries, repaired, "index and data agree");
    if covered == wire_len {
        assert_eq!(
            std::fs::read(&newest.idx).expect("index"),
            idx_before,
            "the index is rebuilt to its bytes before the cut"
        );
    }

    // Everything recorded before the kill plays back cleanly.
    let path = format!("/tv/archive-{}-{}", r0.from, r0.duration);
    let pl = archive_playlist(&s, &format!("{path}.m3u8"));
    let old_total: usize = disk_files(&root, "tv")
        .iter()
        .filter(|f| f.first_seq <= newest.first_seq)
        .map(|f| read_index(f).len())
        .sum();
    assert!(
        pl.segments
            .iter()
            .filter(|x| x.seq <= repaired.last().expect("entry").seq)
            .count()
            == old_total,
        "every segment kept is listed\n{}",
        pl.text
    );
    decodes_cleanly(&s.url(&format!("{path}.m3u8")), &[], &[]);
    decodes_cleanly(&s.url(&format!("{path}.ts")), &[], &[]);
    eprintln!(
        "kill_9_and_a_torn_tail_lose_at_most_the_unfinished_segment: {:?}",
        started.elapsed()
    );
}

/// Item 6: retention by depth (an hour older than `dvr DIR 1h` goes, a newer
/// one stays), by size (`storage_limit`: oldest hour first, only as much as
/// needed), by disk usage (`dvr DIR 1d 90%` on a small tmpfs) and a full
/// disk or an unwritable DVR path: write errors are counted, the status
/// shows the last error, live keeps playing and the node stays up.
#[test]
fn retention_by_depth_size_and_disk_and_a_full_disk_never_stops_live() {
    require_ffmpeg();
    away_from_hour_end(45 * SEC);
    let started = Instant::now();
    let base = scratch("dvr-retention");
    let (deep_root, capped_root, full_root) = (base.join("deep"), base.join("capped"), base.join("full"));
    let hour = (unix_now() as i64) / 3600;
    let seq_of = |h: i64| (h * 3600) as u64;

    // deep: one hour older than the 1 h depth, one inside it.
    let deep_old = write_old_pair(&deep_root, "deep", hour - 3, seq_of(hour - 3), 20, 4000);
    write_old_pair(&deep_root, "deep", hour - 1, seq_of(hour - 1), 20, 4000);
    // capped: two old hours of ~1.5 MB each under a 2 MiB limit.
    let cap_old1 = write_old_pair(&capped_root, "capped", hour - 3, seq_of(hour - 3), 30, 50_000);
    let cap_old2 = write_old_pair(&capped_root, "capped", hour - 2, seq_of(hour - 2), 30, 50_000);
    // full: a 2 MiB tmpfs with 0.6 MB of an old hour, 90% disk limit.
    let tmpfs = Tmpfs::mount(&full_root, "2m");
    let full_old = tmpfs
        .as_ref()
        .map(|_| write_old_pair(&full_root, "full", hour - 2, seq_of(hour - 2), 12, 50_000));
    if tmpfs.is_none() {
        eprintln!("NOTE: cannot mount a tmpfs (not root?): the full-disk case runs only with an unwritable DVR path");
    }
    // blocked: the DVR path lies under a regular file, so nothing can be created.
    let plain_file = base.join("not-a-dir");
    std::fs::write(&plain_file, b"x").expect("file");

    let mut body = format!(
        "stream deep {{ input builtin://demo; dvr {} 1h; }}\n\
         stream capped {{ input builtin://demo; dvr {} 1d; storage_limit 2M; }}\n\
         stream blocked {{ input builtin://demo; dvr {}; }}\n",
        deep_root.display(),
        capped_root.display(),
        plain_file.join("dvr").display()
    );
    if tmpfs.is_some() {
        body.push_str(&format!(
            "stream full {{ input builtin://demo; dvr {} 1d 90%; }}\n",
            full_root.display()
        ));
    }
    let mut s = Strom::start("dvr-retention", &body);

    // Depth: the first pass runs at start; the hour 3 h ago goes, 1 h ago stays.
    wait_for("the hour older than the depth to go", 15 * SEC, || {
        (!pair_exists(&deep_root, "deep", hour - 3, seq_of(hour - 3))).then_some(())
    });
    assert!(
        pair_exists(&deep_root, "deep", hour - 1, seq_of(hour - 1)),
        "an hour inside the depth was deleted"
    );
    assert_eq!(
        metric(&s, "strom_dvr_deleted_bytes_total{reason=\"depth\"}"),
        Some(deep_old as f64)
    );
    let dr = dvr_ranges(&s, "deep");
    assert_eq!(
        dr.ranges.first().map(|r| r.from),
        Some((hour - 1) * 3600),
        "the kept hour is the oldest range: {dr:?}"
    );
    let depth = unix_now() - ((hour - 1) * 3600) as f64;
    assert!(
        (dr.depth_secs as f64 - depth).abs() <= 5.0,
        "depth from the oldest kept segment: {dr:?}, expected {depth:.0}"
    );
    let gauge = metric_or_zero(&s, "strom_dvr_depth_seconds{stream=\"deep\"}");
    assert!(
        (gauge - depth).abs() <= 5.0,
        "strom_dvr_depth_seconds {gauge}, expected {depth:.0}"
    );

    // Size: over 2 MiB at start, so the oldest hour goes first and only it.
    wait_for("the oldest hour over the size limit to go", 10 * SEC, || {
        (!pair_exists(&capped_root, "capped", hour - 3, seq_of(hour - 3))).then_some(())
    });
    assert!(
        pair_exists(&capped_root, "capped", hour - 2, seq_of(hour - 2)),
        "retention by size deleted more than needed"
    );
    // Then live recording pushes the total over again: the next hour goes.
    wait_for("the next hour over the size limit to go", 30 * SEC, || {
        (!pair_exists(&capped_root, "capped", hour - 2, seq_of(hour - 2))).then_some(())
    });
    assert_eq!(
        metric(&s, "strom_dvr_deleted_bytes_total{reason=\"size\"}"),
        Some((cap_old1 + cap_old2) as f64)
    );
    assert!(
        !disk_files(&capped_root, "capped").is_empty(),
        "the hour being written is never deleted"
    );
    let said = dvr_ranges(&s, "capped").bytes as f64;
    let on_disk = disk_bytes(&capped_root, "capped") as f64;
    assert!(
        (said - on_disk).abs() <= 0.1 * on_disk,
        "after deletions the archive says {said} bytes, the disk holds {on_disk}"
    );
    let gauge = metric_or_zero(&s, "strom_dvr_bytes{stream=\"capped\"}");
    assert!(
        (gauge - on_disk).abs() <= 0.1 * on_disk,
        "strom_dvr_bytes {gauge}, disk {on_disk}"
    );

    // An unwritable DVR path: counted, shown, live unaffected.
    wait_for("write errors on an unwritable path", 20 * SEC, || {
        (metric_or_zero(&s, "strom_dvr_write_errors_total{stream=\"blocked\"}") >= 2.0).then_some(())
    });
    let info = api(&s, "blocked");
    assert!(
        info["dvr"]["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{info}"
    );
    assert_eq!(info["status"], "running", "{info}");

    // A full tmpfs: the old hour goes by disk usage, then writes fail.
    if let Some(old) = full_old {
        let label = format!("strom_dvr_disk_usage_percent{{path=\"{}\"}}", full_root.display());
        wait_for("an old hour deleted for disk usage", 40 * SEC, || {
            (metric_or_zero(&s, "strom_dvr_deleted_bytes_total{reason=\"disk\"}") > 0.0).then_some(())
        });
        assert_eq!(
            metric(&s, "strom_dvr_deleted_bytes_total{reason=\"disk\"}"),
            Some(old as f64)
        );
        assert!(!pair_exists(&full_root, "full", hour - 2, seq_of(hour - 2)));
        wait_for("write errors on a full disk", 40 * SEC, || {
            (metric_or_zero(&s, "strom_dvr_write_errors_total{stream=\"full\"}") >= 1.0).then_some(())
        });
        assert!(metric_or_zero(&s, &label) >= 90.0, "{label}");
        let info = api(&s, "full");
        assert!(
            info["dvr"]["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{info}"
        );
        assert!(metric_or_zero(&s, "strom_dvr_dropped_segments_total{stream=\"full\"}") >= 1.0);
    }

    // Live plays on every stream, whatever their archives went through.
    let mut streams = vec!["deep", "capped", "blocked"];
    if full_old.is_some() {
        streams.push("full");
    }
    for name in &streams {
        let a = media_playlist(&s, name).expect("live playlist");
        let newest = a.segments.last().expect("segment").0;
        wait_for(&format!("{name} live goes on"), 10 * SEC, || {
            media_playlist(&s, name)
                .filter(|p| p.segments.last().is_some_and(|x| x.0 > newest))
                .map(|_| ())
        });
    }
    decodes_cleanly(&s.url("/blocked/mono.m3u8"), &[], &["-t", "3"]);
    if full_old.is_some() {
        decodes_cleanly(&s.url("/full/mono.m3u8"), &[], &["-t", "3"]);
    }
    assert!(s.alive(), "strom must stay up");
    let st = s.stop();
    assert!(st.success(), "strom exit status {st:?}");
    drop(tmpfs);
    eprintln!(
        "retention_by_depth_size_and_disk_and_a_full_disk_never_stops_live: {:?}",
        started.elapsed()
    );
}

/// Item 7: malformed archive requests are refused (400, or 404 where there
/// is no archive or nothing recorded), counted by reason, never served from
/// outside the archive, and the node stays up.
#[test]
fn bad_archive_requests_are_refused_and_counted() {
    let started = Instant::now();
    let root = scratch("dvr-bad-root");
    let s = Strom::start(
        "dvr-bad",
        &format!(
            "stream ch {{ input builtin://demo; dvr {}; }}\nstream plain {{ input builtin://demo; }}",
            root.display()
        ),
    );
    let rec = wait_recorded(&s, "ch", 2, 30 * SEC);
    let r = rec.ranges[0];
    let now = unix_now() as i64;
    let (future, past) = (now + 3600, now - 60);
    let digits30 = "123456789012345678901234567890";
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("/ch/archive-{future}-60.m3u8"), 400, "future"),
        (format!("/ch/archive-{future}-60.ts"), 400, "future"),
        (format!("/ch/timeshift_abs-{future}.m3u8"), 400, "future"),
        (format!("/ch/timeshift_abs-{future}.ts"), 400, "future"),
        (format!("/ch/archive/{future}/60/mpegts"), 400, "future"),
        (format!("/ch/archive-{past}-0.m3u8"), 400, "zero_duration"),
        (format!("/ch/archive-{past}-0.ts"), 400, "zero_duration"),
        (format!("/ch/archive/{past}/0/mpegts"), 400, "zero_duration"),
        ("/ch/rewind-0.m3u8".to_string(), 400, "zero_duration"),
        (format!("/ch/archive-{past}-315360000.m3u8"), 400, "too_long"),
        (
            format!("/ch/archive-{}-315360000.ts", now - 315_360_000),
            400,
            "too_long",
        ),
        (format!("/ch/archive/{past}/315360000/mpegts"), 400, "too_long"),
        ("/ch/timeshift_rel-315360000.m3u8".to_string(), 400, "too_long"),
        ("/ch/archive-abc-60.m3u8".to_string(), 400, "not_a_number"),
        (format!("/ch/archive-{past}-sixty.m3u8"), 400, "not_a_number"),
        ("/ch/archive--60-60.m3u8".to_string(), 400, "not_a_number"),
        ("/ch/archive-1e9-60.m3u8".to_string(), 400, "not_a_number"),
        (format!("/ch/archive-+{past}-60.m3u8"), 400, "not_a_number"),
        ("/ch/timeshift_rel-abc.ts".to_string(), 400, "not_a_number"),
        ("/ch/archive/x/60/mpegts".to_string(), 400, "not_a_number"),
        (format!("/ch/tracks-v1a1/archive-{past}-xyz.m3u8"), 400, "not_a_number"),
        (format!("/ch/archive-{digits30}-60.m3u8"), 400, "not_a_number"),
        (format!("/ch/archive-{past}-{digits30}.ts"), 400, "not_a_number"),
        (format!("/ch/timeshift_abs-{digits30}.ts"), 400, "not_a_number"),
        (
            "/ch/timeshift_rel-18446744073709551616.m3u8".to_string(),
            400,
            "not_a_number",
        ),
        (
            "/ch/archive-18446744073709551616-60.m3u8".to_string(),
            400,
            "not_a_number",
        ),
        ("/ch/rewind-60.ts".to_string(), 400, "no_such_form"),
        (format!("/ch/archive-{past}-now.ts"), 400, "no_such_form"),
        // Nothing to serve: no archive on this stream, nothing recorded then.
        ("/plain/archive-1-2.m3u8".to_string(), 404, ""),
        (format!("/plain/archive-{past}-30.ts"), 404, ""),
        ("/plain/timeshift_rel-20.m3u8".to_string(), 404, ""),
        ("/ch/archive-1-60.m3u8".to_string(), 404, ""),
        (format!("/nosuch/archive-{past}-30.m3u8"), 404, ""),
    ];
    let reasons = ["future", "zero_duration", "too_long", "not_a_number", "no_such_form"];
    let counted = |s: &Strom| -> Vec<f64> {
        reasons
            .iter()
            .map(|r| metric_or_zero(s, &format!("strom_dvr_bad_requests_total{{reason=\"{r}\"}}")))
            .collect()
    };
    let c0 = counted(&s);
    for (path, want, _) in &cases {
        let (code, body) = get_text(&s.url(path));
        assert_eq!(code, *want, "{path}: {body}");
    }
    let c1 = counted(&s);
    for (i, reason) in reasons.iter().enumerate() {
        let want = cases.iter().filter(|c| c.2 == *reason).count() as f64;
        assert_eq!(
            c1[i] - c0[i],
            want,
            "strom_dvr_bad_requests_total{{reason=\"{reason}\"}} counts each refusal once"
        );
    }

    // Path tricks, sent byte for byte: never 200, never a file from outside.
    let valid = format!("archive-{}-2.m3u8", r.from);
    let tricks = [
        format!("/../etc/{valid}"),
        format!("/ch/../../etc/{valid}"),
        format!("/%2e%2e/etc/{valid}"),
        format!("/ch/%2e%2e/%2e%2e/etc/{valid}"),
        format!("/ch%2f..%2f..%2fetc/{valid}"),
        format!("/..%2f..%2fetc/archive/{}/2/mpegts", r.from),
        format!("/ch/../{valid}"),
        "/../../../../etc/passwd".to_string(),
        "/ch/archive/../../../etc/passwd/mpegts".to_string(),
    ];
    let errors_before = metric_or_zero(&s, "strom_http_errors_total{kind=\"not_found\"}")
        + metric_or_zero(&s, "strom_http_errors_total{kind=\"bad_request\"}");
    for t in &tricks {
        let (code, text) = raw_request(s.port, "GET", t);
        assert!(code == 400 || code == 404, "{t}: {code}\n{text}");
        assert!(!text.contains("root:"), "{t} served a system file");
    }
    let errors_after = metric_or_zero(&s, "strom_http_errors_total{kind=\"not_found\"}")
        + metric_or_zero(&s, "strom_http_errors_total{kind=\"bad_request\"}");
    assert_eq!(
        errors_after - errors_before,
        tricks.len() as f64,
        "every path trick is counted as a refused request"
    );

    // The ranges API: DELETE without or with bad parameters is 400, counted.
    let nan0 = metric_or_zero(&s, "strom_dvr_bad_requests_total{reason=\"not_a_number\"}");
    let zero0 = metric_or_zero(&s, "strom_dvr_bad_requests_total{reason=\"zero_duration\"}");
    for q in [
        "".to_string(),
        "?from=abc&duration=60".to_string(),
        format!("?from={digits30}&duration=60"),
        format!("?from={past}"),
        "?from=-5&duration=60".to_string(),
    ] {
        let r = fetch(
            reqwest::Method::DELETE,
            &s.url(&format!("/api/v1/streams/ch/dvr/ranges{q}")),
        );
        assert_eq!(r.status, 400, "DELETE …{q}: {}", String::from_utf8_lossy(&r.body));
    }
    let r = fetch(
        reqwest::Method::DELETE,
        &s.url(&format!("/api/v1/streams/ch/dvr/ranges?from={past}&duration=0")),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        metric_or_zero(&s, "strom_dvr_bad_requests_total{reason=\"not_a_number\"}") - nan0,
        5.0
    );
    assert_eq!(
        metric_or_zero(&s, "strom_dvr_bad_requests_total{reason=\"zero_duration\"}") - zero0,
        1.0
    );
    let r = fetch(
        reqwest::Method::DELETE,
        &s.url(&format!("/api/v1/streams/plain/dvr/ranges?from={past}&duration=60")),
    );
    assert_eq!(r.status, 404, "a stream without dvr has no archive to delete");
    assert_eq!(get(&s.url("/api/v1/streams/plain/dvr/ranges")).0, 404);
    assert_eq!(get(&s.url("/api/v1/streams/nosuch/dvr/ranges")).0, 404);

    // Still up, still serving live and the archive.
    let mut s = s;
    assert!(s.alive());
    assert_eq!(get(&s.url("/ch/mono.m3u8")).0, 200);
    let ok = archive_playlist(&s, &format!("/ch/{valid}"));
    assert!(ok.endlist);
    assert!(!dvr_ranges(&s, "ch").ranges.is_empty());
    eprintln!("bad_archive_requests_are_refused_and_counted: {:?}", started.elapsed());
}

/// A full disk: after a failed write the writer starts a new file at the
/// next segment; failing again and again must not leave an empty file pair
/// behind per segment (thousands a day on a disk that stays full).
/// Needs root to mount a 1 MiB tmpfs; says so and passes otherwise.
#[test]
fn a_full_disk_does_not_leave_an_empty_file_per_segment() {
    let started = Instant::now();
    let root = scratch("dvr-fulldisk").join("dvr");
    let Some(tmpfs) = Tmpfs::mount(&root, "1m") else {
        eprintln!("SKIPPED a_full_disk_does_not_leave_an_empty_file_per_segment: mounting a tmpfs needs root");
        return;
    };
    let mut s = Strom::start(
        "dvr-fulldisk",
        &format!("stream full {{ input builtin://demo; dvr {}; }}", root.display()),
    );
    wait_for("five failed writes on the full tmpfs", 60 * SEC, || {
        (metric_or_zero(&s, "strom_dvr_write_errors_total{stream=\"full\"}") >= 5.0).then_some(())
    });
    let info = api(&s, "full");
    assert!(
        info["dvr"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left")),
        "{info}"
    );
    let live = media_playlist(&s, "full").expect("live goes on");
    assert!(!live.segments.is_empty());
    let mut names = Vec::new();
    for day in std::fs::read_dir(root.join("full")).expect("stream dir").flatten() {
        for f in std::fs::read_dir(day.path()).expect("day dir").flatten() {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            names.push(format!(
                "{}/{} ({len} B)",
                day.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            ));
        }
    }
    assert!(s.alive());
    let st = s.stop();
    assert!(st.success(), "{st:?}");
    drop(tmpfs);
    eprintln!(
        "a_full_disk_does_not_leave_an_empty_file_per_segment: {:?}",
        started.elapsed()
    );
    assert!(
        names.len() <= 4,
        "{} files after 5 failed writes: the file that filled the disk, and at most one more pair expected:\n{}",
        names.len(),
        names.join("\n")
    );
}

/// The issue's "a corrupt or truncated archive file is detected and
/// skipped, and the ranges API shows the hole": two finished files, a few
/// bytes of one segment in the middle of the first flipped, the second cut
/// in the middle of a segment. The cut is repaired and counted; the damaged
/// segment is never served as if whole, downloads skip it, and the ranges
/// and playlists show a hole where it was.
#[test]
fn damaged_archive_files_are_skipped_and_show_as_holes() {
    require_ffmpeg();
    let started = Instant::now();
    let udp = free_udp_port();
    let root = scratch("dvr-damage-root");
    let body = format!(
        "stream tv {{ input udp://127.0.0.1:{udp}; segment_duration 1; dvr {}; }}",
        root.display()
    );
    let mut s = Strom::start("dvr-damage", &body);
    let mut enc = encode_small(udp);
    let first = wait_recorded(&s, "tv", 8, 60 * SEC);
    assert!(s.stop().success());
    let (dir, port) = (s.dir.clone(), s.port);
    drop(s);
    let mut s = Strom::start_in(dir.clone(), port, &body);
    let first_end = first.ranges[0].end();
    wait_for("a second file", 60 * SEC, || {
        let r = dvr_ranges(&s, "tv");
        let ok = r.ranges.last().is_some_and(|l| l.end() >= first_end + 10);
        if !ok {
            std::thread::sleep(Duration::from_millis(400));
        }
        ok.then_some(())
    });
    assert!(s.stop().success());
    enc.kill();
    drop(s);

    // The first run's file and the second run's (each run may also leave a
    // short file with the segment flushed at its stop).
    let files = disk_files(&root, "tv");
    let big: Vec<(DiskFile, Vec<IndexEntry>)> = files
        .iter()
        .map(|f| (f.clone(), read_index(f)))
        .filter(|(_, e)| e.len() >= 6)
        .collect();
    assert_eq!(big.len(), 2, "a file of 6+ segments per run: {files:?}");
    let ((a, ea), (b, eb)) = (&big[0], &big[1]);
    // Flip 16 bytes in the middle of segment k of the first file.
    let k = ea.len() / 2;
    let mut data = std::fs::read(&a.wire).expect("data");
    let at = (ea[k].offset + u64::from(ea[k].len) / 2) as usize;
    for x in &mut data[at..at + 16] {
        *x ^= 0xFF;
    }
    std::fs::write(&a.wire, &data).expect("corrupt");
    // Cut the second file in the middle of segment m.
    let m = eb.len() / 2;
    let f = std::fs::OpenOptions::new().write(true).open(&b.wire).expect("open");
    f.set_len(eb[m].offset + u64::from(eb[m].len) / 2).expect("truncate");
    drop(f);

    let s = Strom::start_in(dir, port, &body);
    let secs = |t: i64| t as f64 / CLOCK_HZ as f64;
    let ranges = dvr_ranges(&s, "tv");
    // The cut: repaired back to segment m's start, counted.
    assert_eq!(file_len(&b.wire), eb[m].offset, "the cut segment is cut off");
    assert_eq!(read_index(b), eb[..m].to_vec(), "the index lists what is left");
    assert!(metric_or_zero(&s, "strom_dvr_torn_tails_total") >= 1.0);
    let cut_at = secs(eb[m].start);
    let i = ranges
        .ranges
        .iter()
        .position(|r| (r.end() as f64 - cut_at).abs() <= 1.0)
        .unwrap_or_else(|| panic!("a range ends where the cut file now ends ({cut_at:.1}): {ranges:?}"));
    if let Some(next) = ranges.ranges.get(i + 1) {
        assert!(
            next.from as f64 >= secs(eb[eb.len() - 1].end()) - 1.0,
            "the part cut off is a hole: {ranges:?}"
        );
    }
    // The flipped segment is never served as if it were whole.
    let (code, _) = get(&s.url(&format!("/tv/{}.ts", ea[k].seq)));
    assert_ne!(code, 200, "damaged segment {} served", ea[k].seq);
    // A download over the first file skips it and decodes cleanly.
    let a_from = secs(ea[0].start).floor() as i64;
    let a_dur = (secs(ea[ea.len() - 1].end()) - a_from as f64).ceil() as i64;
    let dl = format!("/tv/archive-{a_from}-{a_dur}.ts");
    let (code, body_a) = get(&s.url(&dl));
    assert_eq!(code, 200);
    let whole: u64 = ea.iter().map(|e| e.len as u64).sum();
    assert!(!body_a.is_empty() && (body_a.len() as u64) < whole * 2);
    decodes_cleanly(&s.url(&dl), &[], &[]);

    // The hole: the ranges API and the playlist over the first file (asked
    // after the reads above, so finding the damage when reading is enough).
    let ranges = dvr_ranges(&s, "tv");
    let hole_from = secs(ea[k].start);
    let hole_to = secs(ea[k].end());
    assert!(
        ranges
            .ranges
            .iter()
            .any(|r| (r.end() as f64 - hole_from).abs() <= 1.0 && r.from < a_from + 2)
            && ranges.ranges.iter().any(|r| (r.from as f64 - hole_to).abs() <= 1.0),
        "ranges must show the hole of damaged segment {} ({hole_from:.1}..{hole_to:.1}): {ranges:?}",
        ea[k].seq
    );
    let pl = archive_playlist(&s, &format!("/tv/archive-{a_from}-{a_dur}.m3u8"));
    assert!(
        pl.segments.iter().all(|x| x.seq != ea[k].seq),
        "the playlist lists damaged segment {}\n{}",
        ea[k].seq,
        pl.text
    );
    decodes_cleanly(&s.url(&format!("/tv/archive-{a_from}-{a_dur}.m3u8")), &[], &[]);
    eprintln!(
        "damaged_archive_files_are_skipped_and_show_as_holes: {:?}",
        started.elapsed()
    );
}

/// A recording that crosses a UTC hour (and, at midnight, a day) is one
/// range and one playlist: real recorded segments moved so that the hour
/// starts between two of them, in two files of two hours. The ranges API,
/// the VOD playlist, a FROM exactly on and just before the hour, the
/// download and ffmpeg all see one continuous recording.
#[test]
fn an_archive_across_an_hour_boundary_plays_as_one() {
    require_ffmpeg();
    let started = Instant::now();
    // Real segments first: a few seconds of the demo channel.
    let rec_root = scratch("dvr-hour-rec");
    let mut s = Strom::start(
        "dvr-hour-rec",
        &format!(
            "stream tv {{ input builtin://demo; segment_duration 1; dvr {}; }}",
            rec_root.display()
        ),
    );
    wait_for("6 segments archived", 40 * SEC, || {
        let n: usize = disk_files(&rec_root, "tv").iter().map(|f| read_index(f).len()).sum();
        if n < 7 {
            std::thread::sleep(Duration::from_millis(300));
        }
        (n >= 7).then_some(())
    });
    assert!(s.stop().success());
    let mut segs: Vec<Segment> = disk_files(&rec_root, "tv").iter().flat_map(read_segments).collect();
    // The first segment may be cut short at the start; keep whole ones.
    segs.remove(0);
    segs.truncate(6);
    assert_eq!(segs.len(), 6);

    // Moved to the last hour boundary but one, numbered below live.
    let boundary = ((unix_now() as i64) / 3600 - 1) * 3600;
    let shift = boundary * CLOCK_HZ - segs[3].start;
    for (i, seg) in segs.iter_mut().enumerate() {
        seg.seq = (boundary - 1000) as u64 + i as u64;
        seg.start += shift;
        seg.discontinuity = false;
        for f in &mut seg.frames {
            f.dts += shift;
            f.pts += shift;
        }
    }
    let root = scratch("dvr-hour-root");
    let before = write_segments(&root, "tv", &segs[..3]);
    let after = write_segments(&root, "tv", &segs[3..]);
    assert_eq!(after.hour, before.hour + 1);
    let from_s = segs[0].start as f64 / CLOCK_HZ as f64;
    let to_s = segs[5].start as f64 / CLOCK_HZ as f64 + segs[5].duration as f64 / CLOCK_HZ as f64;

    let s = Strom::start(
        "dvr-hour",
        &format!("stream tv {{ input builtin://demo; dvr {}; }}", root.display()),
    );
    let ranges = dvr_ranges(&s, "tv");
    let r = ranges.ranges[0];
    assert!(
        (r.from as f64 - from_s).abs() <= 1.0 && (r.end() as f64 - to_s).abs() <= 1.0,
        "one range over both hours ({from_s:.1}..{to_s:.1}): {ranges:?}"
    );
    let from = from_s.floor() as i64;
    let dur = (to_s - from as f64).floor() as i64;
    let path = format!("/tv/archive-{from}-{dur}");
    let pl = archive_playlist(&s, &format!("{path}.m3u8"));
    let seqs: Vec<u64> = pl.segments.iter().map(|x| x.seq).collect();
    let want: Vec<u64> = segs.iter().map(|x| x.seq).collect();
    assert_eq!(seqs, want, "{}", pl.text);
    assert!(pl.segments.iter().all(|x| !x.discontinuity), "{}", pl.text);
    for w in pl.segments.windows(2) {
        assert!((w[0].pdt + w[0].duration - w[1].pdt).abs() < 0.01, "{w:?}");
    }
    assert!((pl.segments[3].pdt - boundary as f64).abs() < 0.001, "{}", pl.text);
    // FROM on the hour starts there; a second before starts at the segment holding it.
    let on = archive_playlist(&s, &format!("/tv/archive-{boundary}-1.m3u8"));
    assert_eq!(on.segments.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![segs[3].seq]);
    let just_before = archive_playlist(&s, &format!("/tv/archive-{}-2.m3u8", boundary - 1));
    assert_eq!(just_before.segments[0].seq, segs[2].seq, "{}", just_before.text);
    assert_eq!(just_before.segments.last().expect("segment").seq, segs[3].seq);
    decodes_cleanly(&s.url(&format!("{path}.m3u8")), &[], &[]);
    decodes_cleanly(&s.url(&format!("{path}.ts")), &[], &[]);
    let (code, body) = get(&s.url(&format!("{path}.ts")));
    assert_eq!(code, 200);
    let joined: Vec<u8> = segs
        .iter()
        .flat_map(|x| get(&s.url(&format!("/tv/{}.ts", x.seq))).1)
        .collect();
    assert!(body == joined, "the download is the six segments back to back");
    let file = scratch("dvr-hour-dl").join("across.ts");
    std::fs::write(&file, &body).expect("save");
    let d = probe_duration(&file.display().to_string());
    assert!(
        (d - (to_s - from_s)).abs() <= 0.2,
        "ffprobe {d:.3} s, recorded {:.3} s",
        to_s - from_s
    );
    eprintln!(
        "an_archive_across_an_hour_boundary_plays_as_one: {:?}",
        started.elapsed()
    );
}

/// Kodi's catch-up asks for `timeshift_abs-START` with the programme's
/// start, which may lie before the archive's first segment (recording began
/// mid-programme, or retention took the start). The TS form then plays from
/// the first recorded segment; the HLS form must do the same rather than
/// answer 404 until the clock reaches the archive.
#[test]
fn timeshift_abs_from_before_the_archive_plays_from_its_start() {
    require_ffmpeg();
    let started = Instant::now();
    let root = scratch("dvr-tsabs-root");
    let s = Strom::start(
        "dvr-tsabs",
        &format!("stream tv {{ input builtin://demo; dvr {}; }}", root.display()),
    );
    let rec = wait_recorded(&s, "tv", 6, 30 * SEC);
    let r = rec.ranges[0];
    let early = r.from - 300;
    let first_seq = disk_files(&root, "tv")[0].first_seq;
    let first_seg = get(&s.url(&format!("/tv/{first_seq}.ts"))).1;
    let (code, head) = get_prefix(
        &s.url(&format!("/tv/timeshift_abs-{early}.ts")),
        first_seg.len(),
        20 * SEC,
    );
    assert_eq!(code, 200);
    assert!(
        head == first_seg,
        "timeshift_abs-{early}.ts starts with the first recorded segment"
    );
    let (code, text) = get_text(&s.url(&format!("/tv/timeshift_abs-{early}.m3u8")));
    assert_eq!(
        code, 200,
        "timeshift_abs-{early}.m3u8 (5 min before the archive starts at {}) answered: {text}",
        r.from
    );
    let pl = archive_playlist(&s, &format!("/tv/timeshift_abs-{early}.m3u8"));
    assert_eq!(pl.segments[0].seq, first_seq, "{}", pl.text);
    eprintln!(
        "timeshift_abs_from_before_the_archive_plays_from_its_start: {:?}",
        started.elapsed()
    );
}

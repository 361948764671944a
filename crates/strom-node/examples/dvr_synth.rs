//! Writes a synthetic DVR archive with the node's real writer, for
//! benchmarks (`bench/dvr.sh`): start-up over days of archive, archive
//! playlists and downloads.
//!
//! Every channel is an [`Archive`] from the node's [`Dvr`] registry on a
//! `LocalStore` at ROOT, and every segment goes through [`Archive::write`]
//! with the message [`wire::encode_segment`] gives, so the files (hourly
//! `.wire` data, `.idx` index, fsync at every finished hour) are exactly
//! what a recording node leaves on disk.
//!
//! The segments are synthetic: an H.264 track (parameter sets, 1280x720,
//! 25 fps) whose first frame is a keyframe, so every index entry is
//! `independent`. Below [`REALISTIC_FROM`] bytes a segment holds that one
//! frame (cheap to write: for archives of days × channels); from there on it
//! holds a real channel's frame structure: 25 video frames per second (a
//! keyframe 8× the size of the others) and AAC at 48 kHz (1024-sample
//! frames, 128 kbit/s at most 10% of the segment), so muxing it back to TS
//! costs what a real channel costs.
//!
//! Timeline: channel `PREFIX1`..`PREFIXN`, segments of SEGMENT_SECONDS back to
//! back without gaps from the first whole UTC hour after `END - DAYS` up to
//! `END` (default: now). A segment's sequence number is its start in Unix
//! seconds divided by its duration: consecutive, and below the live
//! numbers a node gives (Unix seconds at its first segment), so a node
//! started on the archive records on above it.
//!
//! Usage: `dvr_synth ROOT CHANNELS DAYS SEGMENT_SECONDS BYTES_PER_SEGMENT
//! [--prefix P] [--end UNIX_SECONDS] [--threads N]`. DAYS may be fractional
//! or carry a unit: `7`, `0.5`, `1h`, `90m`. BYTES_PER_SEGMENT is the size
//! of one stored wire message (within a few bytes). It prints one line of
//! `key=value` facts (for scripts) and how long the writing took.

use bytes::Bytes;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strom_config::DvrConfig;
use strom_media::{wire, Codec, Frame, Segment, Track, TrackParams, CLOCK_HZ};
use strom_node::dvr::archive::Archive;
use strom_node::dvr::{Dvr, DvrFamilies};

/// Segments of at least this many bytes get a real channel's frame structure.
const REALISTIC_FROM: usize = 20_000;
/// Video frames per second (the H.264 track's frame rate).
const FPS: i64 = 25;
/// AAC frame duration in 90 kHz ticks: 1024 samples at 48 kHz.
const AAC_FRAME_TICKS: i64 = 1024 * CLOCK_HZ / 48_000;
/// AAC bytes per second at 128 kbit/s.
const AAC_BYTES_PER_SEC: usize = 16_000;

struct Args {
    root: std::path::PathBuf,
    channels: usize,
    seconds: i64,
    segment_secs: i64,
    bytes: usize,
    prefix: String,
    end: i64,
    threads: usize,
}

const USAGE: &str = "usage: dvr_synth ROOT CHANNELS DAYS SEGMENT_SECONDS BYTES_PER_SEGMENT \
                     [--prefix P] [--end UNIX_SECONDS] [--threads N]\n  \
                     DAYS: 7, 0.5, 1h, 90m; BYTES_PER_SEGMENT: size of one stored segment message";

/// `7` / `0.5` (days), `1h`, `90m`, `30s` → seconds.
fn parse_span(s: &str) -> Option<i64> {
    let (num, unit) = match s.char_indices().last()? {
        (i, 'd') => (&s[..i], 86_400.0),
        (i, 'h') => (&s[..i], 3_600.0),
        (i, 'm') => (&s[..i], 60.0),
        (i, 's') => (&s[..i], 1.0),
        _ => (s, 86_400.0),
    };
    let v: f64 = num.parse().ok()?;
    let secs = v * unit;
    (secs.is_finite() && (1.0..=400.0 * 86_400.0).contains(&secs)).then_some(secs as i64)
}

fn parse_args() -> Result<Args, String> {
    let mut pos = Vec::new();
    let mut prefix = "ch".to_string();
    let mut end = None;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--prefix" => prefix = it.next().ok_or("--prefix needs a value")?,
            "--end" => {
                let v = it.next().ok_or("--end needs a value")?;
                end = Some(v.parse::<i64>().map_err(|_| format!("--end {v}: not Unix seconds"))?);
            }
            "--threads" => {
                let v = it.next().ok_or("--threads needs a value")?;
                threads = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--threads {v}: not a positive number"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            _ => pos.push(a),
        }
    }
    let [root, channels, days, seg, bytes] = <[String; 5]>::try_from(pos).map_err(|_| "five arguments".to_string())?;
    let channels = channels
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or(format!("CHANNELS {channels}: 1..10000"))?;
    let seconds = parse_span(&days).ok_or(format!("DAYS {days}: a number of days, or 1h, 90m, 30s"))?;
    let segment_secs = seg
        .parse::<i64>()
        .ok()
        .filter(|n| (1..=60).contains(n))
        .ok_or(format!("SEGMENT_SECONDS {seg}: 1..60"))?;
    let bytes = bytes
        .parse::<usize>()
        .ok()
        .filter(|n| (64..=64 << 20).contains(n))
        .ok_or(format!("BYTES_PER_SEGMENT {bytes}: 64..64M"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    Ok(Args {
        root: root.into(),
        channels,
        seconds,
        segment_secs,
        bytes,
        prefix,
        end: end.unwrap_or(now),
        threads: threads.min(channels),
    })
}

fn h264_track() -> Track {
    Track {
        id: 0,
        codec: Codec::H264,
        params: TrackParams {
            // High profile, level 3.1; plausible parameter sets (never decoded here).
            parameter_sets: vec![
                Bytes::from_static(&[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10]),
                Bytes::from_static(&[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]),
            ],
            width: 1280,
            height: 720,
            frame_rate: Some((FPS as u32, 1)),
            codec_string: Some("avc1.64001f".into()),
            ..TrackParams::default()
        },
    }
}

fn aac_track() -> Track {
    Track {
        id: 1,
        codec: Codec::Aac,
        params: TrackParams {
            sample_rate: 48_000,
            channels: 2,
            aac_object_type: 2,
            codec_string: Some("mp4a.40.2".into()),
            ..TrackParams::default()
        },
    }
}

/// One Annex B access unit of `len` bytes (at least 6): a start code, an IDR
/// or non-IDR slice NAL header, then filler without start codes.
fn access_unit(len: usize, key: bool) -> Bytes {
    let mut v = vec![0xa5u8; len.max(6)];
    v[..5].copy_from_slice(&[0, 0, 0, 1, if key { 0x65 } else { 0x41 }]);
    Bytes::from(v)
}

/// The frames of every segment, relative to its start: (track, dts offset,
/// keyframe, data). Data is shared between segments (cheap clones).
struct Template {
    tracks: Arc<[Track]>,
    frames: Vec<(u16, i64, bool, Bytes)>,
}

impl Template {
    /// A template whose frames carry `payload` bytes in all.
    fn new(payload: usize, segment_secs: i64, realistic: bool) -> Template {
        if !realistic {
            return Template {
                tracks: Arc::from(vec![h264_track()]),
                frames: vec![(0, 0, true, access_unit(payload, true))],
            };
        }
        let video_n = (FPS * segment_secs) as usize;
        let audio_n = ((segment_secs * CLOCK_HZ + AAC_FRAME_TICKS - 1) / AAC_FRAME_TICKS) as usize;
        let audio_total = (AAC_BYTES_PER_SEC * segment_secs as usize).min(payload / 10);
        let audio_frame = (audio_total / audio_n).max(8);
        let video_total = payload.saturating_sub(audio_frame * audio_n);
        // The keyframe weighs 8 others.
        let p_frame = (video_total / (video_n + 7)).max(6);
        let i_frame = video_total.saturating_sub(p_frame * (video_n - 1)).max(6);
        let (key, delta, audio) = (
            access_unit(i_frame, true),
            access_unit(p_frame, false),
            Bytes::from(vec![0x21u8; audio_frame]),
        );
        let mut frames: Vec<(u16, i64, bool, Bytes)> = (0..video_n)
            .map(|i| {
                let at = i as i64 * CLOCK_HZ / FPS;
                if i == 0 {
                    (0, at, true, key.clone())
                } else {
                    (0, at, false, delta.clone())
                }
            })
            .chain((0..audio_n).map(|i| (1, i as i64 * AAC_FRAME_TICKS, true, audio.clone())))
            .collect();
        // Decode order across tracks, video first at equal times.
        frames.sort_by_key(|f| (f.1, f.0));
        Template {
            tracks: Arc::from(vec![h264_track(), aac_track()]),
            frames,
        }
    }

    fn segment(&self, seq: u64, start: i64, duration: i64, target: u32) -> Segment {
        Segment {
            seq,
            start,
            duration,
            discontinuity: false,
            target_duration: target,
            tracks: self.tracks.clone(),
            frames: self
                .frames
                .iter()
                .map(|(track, at, keyframe, data)| Frame {
                    track: *track,
                    dts: start + at,
                    pts: start + at,
                    keyframe: *keyframe,
                    data: data.clone(),
                })
                .collect(),
        }
    }
}

/// A template whose encoded segments are `bytes` long (as near as the
/// frame layout allows): the wire overhead is measured, not guessed.
fn fitted_template(bytes: usize, segment_secs: i64) -> Template {
    let realistic = bytes >= REALISTIC_FROM;
    let probe = |payload: usize| {
        let t = Template::new(payload, segment_secs, realistic);
        let len = wire::encode_segment(&t.segment(1, 0, segment_secs * CLOCK_HZ, 2)).len();
        (t, len)
    };
    let mut payload = bytes;
    let mut best = probe(payload);
    for _ in 0..4 {
        if best.1 == bytes {
            break;
        }
        let next = (payload + bytes).saturating_sub(best.1).max(1);
        if next == payload {
            break;
        }
        payload = next;
        best = probe(payload);
    }
    best.0
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("dvr_synth: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let seg_ticks = args.segment_secs * CLOCK_HZ;
    // From the first whole hour after END - DAYS, so the oldest hour is a
    // full one; up to the last whole segment before END.
    let first = (args.end - args.seconds).div_euclid(3600) * 3600 + 3600;
    let first = (first + args.segment_secs - 1).div_euclid(args.segment_secs) * args.segment_secs;
    let count = (args.end - first).div_euclid(args.segment_secs);
    if count <= 0 {
        eprintln!("dvr_synth: DAYS is shorter than the first whole hour before END");
        return ExitCode::from(2);
    }
    let count = count as u64;
    let first_seq = (first / args.segment_secs) as u64;
    let template = fitted_template(args.bytes, args.segment_secs);
    let target = u32::try_from(args.segment_secs).unwrap_or(u32::MAX);
    let message_len = wire::encode_segment(&template.segment(first_seq, first * CLOCK_HZ, seg_ticks, target)).len();
    let cfg = DvrConfig {
        root: args.root.clone(),
        depth: None,
        disk_limit_percent: None,
        max_size: None,
        offline: false,
    };
    let dvr = Dvr::new(DvrFamilies::default());
    let names: Vec<String> = (1..=args.channels).map(|i| format!("{}{i}", args.prefix)).collect();
    let archives: Vec<Arc<Archive>> = names.iter().map(|n| dvr.archive(n, &cfg)).collect();

    let t0 = Instant::now();
    let next = AtomicUsize::new(0);
    let written = AtomicU64::new(0);
    let failed = std::sync::Mutex::new(None::<String>);
    std::thread::scope(|s| {
        for _ in 0..args.threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(a) = archives.get(i) else { break };
                for k in 0..count {
                    let start = (first + k as i64 * args.segment_secs) * CLOCK_HZ;
                    let seg = template.segment(first_seq + k, start, seg_ticks, target);
                    if let Err(e) = a.write(&seg, &wire::encode_segment(&seg)) {
                        let mut f = failed.lock().unwrap_or_else(|e| e.into_inner());
                        f.get_or_insert(format!("{}: {e}", a.name));
                        return;
                    }
                    written.fetch_add(1, Ordering::Relaxed);
                }
                a.close();
            });
        }
    });
    let took = t0.elapsed();
    if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        eprintln!("dvr_synth: writing failed: {e}");
        return ExitCode::FAILURE;
    }
    let files: usize = archives.iter().map(|a| a.files().len()).sum();
    let on_disk: u64 = archives.iter().flat_map(|a| a.files()).map(|f| f.bytes).sum();
    let n = written.load(Ordering::Relaxed);
    println!(
        "root={} channels={} names={}1..{}{} segment_seconds={} message_bytes={} from={} to={} \
         first_seq={} last_seq={} segments_per_channel={} files={} bytes={}",
        args.root.display(),
        args.channels,
        args.prefix,
        args.prefix,
        args.channels,
        args.segment_secs,
        message_len,
        first,
        first + count as i64 * args.segment_secs,
        first_seq,
        first_seq + count - 1,
        count,
        files,
        on_disk
    );
    let secs = took.max(Duration::from_micros(1)).as_secs_f64();
    eprintln!(
        "dvr_synth: wrote {n} segments ({:.1} MB with indexes, {files} files) in {secs:.2} s \
         ({:.0} segments/s, {:.1} MB/s) with {} threads",
        on_disk as f64 / 1e6,
        n as f64 / secs,
        on_disk as f64 / 1e6 / secs,
        args.threads
    );
    ExitCode::SUCCESS
}

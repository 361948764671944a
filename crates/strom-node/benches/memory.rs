//! Where a channel's memory goes: a heap profile (dhat) of the node's real
//! ingest path at steady state, by category, and the RSS it costs.
//!
//! Input: a ~3 Mbit/s H.264 + AAC stream. By default it is synthesized from
//! `assets/demo.ts` (1280x720 25 fps, a keyframe every second): its access
//! units are padded (non-zero bytes after the last slice, no start code can
//! appear) to the sizes of `bench/ingest_cpu.sh`'s test file (keyframes
//! ~31 KB, other pictures ~13.7 KB: 2.8 Mbit/s of video) and looped with
//! continuous timestamps. `STROM_MEM_TS=FILE` uses an MPEG-TS file instead
//! (for example the `in.ts` that `KEEP=1 bench/ingest_cpu.sh` leaves), looped
//! the same way. The frames are muxed to MPEG-TS by `TsMuxer` and fed to the
//! real `Demuxer` in 1316-byte datagrams; its events go through the node's
//! real `Pipeline` (timeline, segmenter, numbering, window, every output of
//! `output::REGISTRY`), on virtual time. Every 2 s of media a viewer asks
//! the HLS output for the newest segment, as a watched channel gets.
//!
//! Two measurements, each in its own process:
//! - `profile` (this process): one channel, `STROM_MEM_SECONDS` (120) of
//!   media, then dhat's live bytes at that moment, by allocation site,
//!   grouped into categories (frames in the window, TS renditions, wire
//!   messages, HTTP-TS, demuxer buffers, ...) beside the logical sizes read
//!   from the window (payload bytes, TS bytes). The dhat profile is written
//!   to `$TMPDIR/strom-memory-dhat.json` (open it with dhat's viewer).
//! - `rss` (a child process, no profiler): `STROM_MEM_CHANNELS` (10) channels
//!   side by side for `STROM_MEM_RSS_SECONDS` (600) of media on one thread;
//!   RssAnon of the process at every media minute, per channel above the
//!   RSS before the channels existed, the memfd bytes per channel
//!   (`strom_memfd_bytes`: sealed TS renditions, shared memory outside the
//!   heap), and the allocator's overhead: RssAnon per channel minus the
//!   profile's live heap per channel. Allocator settings given in the
//!   environment (`MALLOC_MMAP_THRESHOLD_=131072`, `MALLOC_ARENA_MAX=1`)
//!   apply to this run, so their effect on RSS and its flatness shows here.
//!   The allocator here is the system's (glibc; dhat wraps it), not the
//!   node binary's jemalloc: `bench/ingest_cpu.sh` measures that one.
//!
//! Knobs: `STROM_MEM_WIRE=1` also builds each segment's wire message (as a
//! restreamer or the DVR writer would), `STROM_MEM_ONLY=profile|rss`.
//!
//! Run with `cargo bench -p strom-node --bench memory`.

use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use strom_config::{Input, StreamConfig};
use strom_media::ts::demux::{DemuxEvent, Demuxer};
use strom_media::ts::mux::TsMuxer;
use strom_media::{Frame, Track, TrackKind, CLOCK_HZ};
use strom_node::output::hls::Hls;
use strom_node::output::REGISTRY;
use strom_node::stream::control::Unit;
use strom_node::stream::pipeline::Pipeline;
use strom_node::stream::{Stream, StreamSpec};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const DEMO: &[u8] = include_bytes!("../../../assets/demo.ts");
/// A fixed wall clock at the start (2025-11-22T00:00:00Z), 90 kHz ticks.
const UTC0: i64 = 1_763_769_600 * CLOCK_HZ;
/// Sizes of `bench/ingest_cpu.sh`'s test file (ffprobe): mean keyframe and
/// mean other picture, bytes.
const KEY_BYTES: f64 = 31_077.0;
const OTHER_BYTES: f64 = 13_695.0;
/// One UDP datagram of MPEG-TS.
const DATAGRAM: usize = 7 * 188;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One loop of input frames (raw 33-bit timestamps) and its length in ticks.
struct Source {
    tracks: Arc<[Track]>,
    frames: Vec<Frame>,
    span: i64,
}

/// Demuxes `ts` whole.
fn source_demux(ts: &[u8]) -> (Arc<[Track]>, Vec<Frame>) {
    let mut d = Demuxer::new();
    let mut tracks: Arc<[Track]> = Arc::from(Vec::new());
    let mut frames = Vec::new();
    for c in ts.chunks(64 << 10) {
        d.push(c);
        while let Some(e) = d.pull() {
            match e {
                DemuxEvent::Tracks(t) => tracks = t,
                DemuxEvent::Frame(f) => frames.push(f),
            }
        }
    }
    d.flush();
    while let Some(e) = d.pull() {
        if let DemuxEvent::Frame(f) = e {
            frames.push(f);
        }
    }
    (tracks, frames)
}

/// The input loop: `STROM_MEM_TS` as it is, or demo.ts padded to ~3 Mbit/s.
fn source_build() -> Source {
    let file = std::env::var("STROM_MEM_TS").ok();
    let ts = match &file {
        Some(path) => std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}")),
        None => DEMO.to_vec(),
    };
    let (tracks, mut frames) = source_demux(&ts);
    let video = |f: &Frame| {
        tracks
            .get(usize::from(f.track))
            .is_some_and(|t| t.kind() == TrackKind::Video)
    };
    if file.is_none() {
        let mean = |key: bool| {
            let (n, b) = frames
                .iter()
                .filter(|f| video(f) && f.keyframe == key)
                .fold((0usize, 0usize), |(n, b), f| (n + 1, b + f.data.len()));
            b as f64 / n.max(1) as f64
        };
        let (fk, fo) = (KEY_BYTES / mean(true), OTHER_BYTES / mean(false));
        for f in frames.iter_mut().filter(|f| video(f)) {
            let want = (f.data.len() as f64 * if f.keyframe { fk } else { fo }) as usize;
            let mut v = Vec::with_capacity(want.max(f.data.len()));
            v.extend_from_slice(&f.data);
            v.resize(want.max(f.data.len()), 0xA5);
            f.data = Bytes::from(v);
        }
    }
    // One loop: whole video frames from the first keyframe, audio within.
    let first = frames.iter().position(|f| video(f) && f.keyframe).unwrap_or(0);
    frames.drain(..first);
    let vdts: Vec<i64> = frames.iter().filter(|f| video(f)).map(|f| f.dts).collect();
    let start = vdts.iter().copied().min().unwrap_or(0);
    let step = vdts
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .filter(|d| *d > 0)
        .min()
        .unwrap_or(3600);
    let span = vdts.iter().copied().max().unwrap_or(0) - start + step;
    frames.retain(|f| f.dts >= start && f.dts < start + span);
    // The copy the loop replays, packed so the input costs one allocation.
    let total: usize = frames.iter().map(|f| f.data.len()).sum();
    let mut pack = BytesMut::with_capacity(total);
    for f in &frames {
        pack.extend_from_slice(&f.data);
    }
    let pack = pack.freeze();
    let mut at = 0;
    for f in &mut frames {
        let n = f.data.len();
        f.data = pack.slice(at..at + n);
        at += n;
    }
    Source { tracks, frames, span }
}

/// One channel: its own TS generator, demuxer, stream and pipeline.
struct Channel {
    stream: Arc<Stream>,
    pipeline: Pipeline,
    demux: Demuxer,
    mux: TsMuxer,
    ts: BytesMut,
    next: usize,
    round: i64,
}

impl Channel {
    fn new(name: &str, src: &Source, now: Instant) -> Self {
        let spec = StreamSpec::configured(StreamConfig::new(name, vec![Input::PUBLISH]));
        let stream = Stream::new(spec, strom_node::metrics::Metrics::new().stream(name), REGISTRY);
        let mut pipeline = Pipeline::new(stream.clone());
        pipeline.switch(now);
        Channel {
            stream,
            pipeline,
            demux: Demuxer::new(),
            mux: TsMuxer::new(&src.tracks),
            ts: make_ts_buffer(),
            next: 0,
            round: 0,
        }
    }

    /// Media time (ticks since the start) of the next source frame.
    fn media_at(&self, src: &Source) -> i64 {
        let base = src.frames.first().map_or(0, |f| f.dts);
        src.frames.get(self.next).map_or(0, |f| f.dts - base) + self.round * src.span
    }

    /// Generates the TS up to media time `until` and feeds it through the node.
    fn advance(&mut self, src: &Source, until: i64, now: Instant) {
        make_ts(self, src, until);
        feed(self, now, UTC0 + until);
    }
}

/// The sender's output buffer (bench cost, not the node's).
fn make_ts_buffer() -> BytesMut {
    BytesMut::with_capacity(256 << 10)
}

/// The sender's side: source frames → MPEG-TS, into `ch.ts` (bench cost, not the node's).
fn make_ts(ch: &mut Channel, src: &Source, until: i64) {
    // Raw timestamps start at 10 s and never near the 33-bit wrap here.
    let offset = 10 * CLOCK_HZ - src.frames.first().map_or(0, |f| f.dts);
    while ch.media_at(src) < until {
        let Some(f) = src.frames.get(ch.next) else {
            ch.next = 0;
            ch.round += 1;
            continue;
        };
        let shift = offset + ch.round * src.span;
        let f = Frame {
            dts: f.dts + shift,
            pts: f.pts + shift,
            ..f.clone()
        };
        ch.mux.write_frame(&f, &mut ch.ts);
        ch.next += 1;
    }
}

/// The node's side: datagrams → demuxer → pipeline.
fn feed(ch: &mut Channel, now: Instant, utc_now: i64) {
    let whole = ch.ts.len() / DATAGRAM * DATAGRAM;
    let data = ch.ts.split_to(whole);
    for d in data.chunks(DATAGRAM) {
        ch.demux.push(d);
        while let Some(e) = ch.demux.pull() {
            match e {
                DemuxEvent::Tracks(t) => ch.pipeline.tracks(t, now),
                DemuxEvent::Frame(f) => ch.pipeline.deliver(Unit::Frame(f), now, utc_now),
            }
        }
    }
}

/// A viewer of the channel: the newest segment's TS, as a player fetches it.
fn watch(ch: &Channel, wire: bool) {
    let Some(seq) = ch.stream.window().newest_seq() else {
        return;
    };
    if let Some(hls) = ch.stream.outputs.find::<Hls>() {
        std::hint::black_box(hls.segment_bytes(&ch.stream, seq));
    }
    if wire {
        if let Some(seg) = ch.stream.window().get(seq) {
            std::hint::black_box(seg.wire());
        }
    }
}

/// Runs `channels` for `seconds` of media, in 40 ms steps, calling `minute`
/// at the end of every media minute.
fn run(chs: &mut [Channel], src: &Source, seconds: i64, wire: bool, mut minute: impl FnMut(i64, &[Channel])) {
    let now = Instant::now();
    let step = CLOCK_HZ / 25;
    let mut t = 0;
    while t < seconds * CLOCK_HZ {
        t += step;
        for ch in chs.iter_mut() {
            ch.advance(src, t, now);
        }
        if t % (2 * CLOCK_HZ) == 0 {
            for ch in chs.iter() {
                watch(ch, wire);
            }
        }
        if t % (60 * CLOCK_HZ) == 0 {
            minute(t / (60 * CLOCK_HZ), chs);
        }
    }
}

/// Logical sizes of what a channel's window holds.
#[derive(Default, Debug)]
struct Held {
    segments: usize,
    frames: usize,
    payload: usize,
    ts: usize,
    wire: usize,
    seconds: f64,
}

fn held(ch: &Channel) -> Held {
    let hls = ch.stream.outputs.find::<Hls>();
    let w = ch.stream.window();
    let mut h = Held::default();
    for s in w.iter() {
        h.segments += 1;
        h.frames += s.segment.frames.len();
        h.payload += s.segment.payload_bytes();
        h.seconds += s.segment.duration_secs();
        if let Some(hls) = hls {
            h.ts += hls.segment_bytes(&ch.stream, s.segment.seq).map_or(0, |b| b.len());
        }
        h.wire += s.wire_built().map_or(0, |b| b.len());
    }
    h
}

/// (VmRSS, RssAnon) of this process, KiB.
fn rss_kib() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

const MIB: f64 = 1024.0 * 1024.0;

/// Category of an allocation site, from its call stack (innermost first).
fn category(stack: &[&str]) -> &'static str {
    let has = |pat: &str| stack.iter().any(|f| f.contains(pat));
    // Order matters: the first rule whose pattern is anywhere on the stack wins.
    const RULES: &[(&str, &str)] = &[
        ("memory::source_", "bench: input loop (not the node's)"),
        ("memory::make_ts", "bench: TS generator (not the node's)"),
        ("output::http_ts", "HTTP-TS: GOP cache, muxer buffer"),
        ("Segment::compact", "frames in the window: one block per segment"),
        (
            "encode_segment_shared",
            "frames in the window: inside their wire messages",
        ),
        ("wire::encode", "wire messages (a copy beside the frames)"),
        ("output::hls", "HLS: TS renditions, playlists, facts"),
        (
            "demux::pes",
            "frames in demuxer PES blocks (open segment, PES in progress)",
        ),
        ("demux::video", "frames in demuxer access-unit buffers"),
        ("demux::audio", "frames in demuxer audio buffers"),
        ("ts::demux", "demuxer state"),
        ("segmenter", "segment frame lists (Vec<Frame>)"),
        ("Pipeline::place_frame", "open segment: frames copied for the segmenter"),
        ("stream::window", "window"),
        ("stream::pipeline", "pipeline"),
        ("stream::Stream::new", "stream and outputs"),
        ("output::", "stream and outputs"),
    ];
    RULES.iter().find(|(p, _)| has(p)).map_or("other", |(_, c)| c)
}

/// Live bytes and blocks by category from a dhat profile file.
fn categories(path: &std::path::Path) -> BTreeMap<&'static str, (u64, u64)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("dhat json");
    let ftbl: Vec<&str> = v["ftbl"]
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap_or("")).collect())
        .unwrap_or_default();
    let mut out: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    for pp in v["pps"].as_array().into_iter().flatten() {
        let eb = pp["eb"].as_u64().unwrap_or(0);
        let ebk = pp["ebk"].as_u64().unwrap_or(0);
        if eb == 0 {
            continue;
        }
        let stack: Vec<&str> = pp["fs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| ftbl.get(i.as_u64()? as usize).copied())
            .collect();
        let e = out.entry(category(&stack)).or_default();
        e.0 += eb;
        e.1 += ebk;
    }
    out
}

/// Profiles one channel; returns its live heap, MiB.
fn profile(src: &Source, seconds: i64, wire: bool) -> f64 {
    let path = std::env::temp_dir().join("strom-memory-dhat.json");
    let profiler = dhat::Profiler::builder().file_name(&path).trim_backtraces(None).build();
    let before = dhat::HeapStats::get();
    let mut chs = vec![Channel::new("ch1", src, Instant::now())];
    let started = Instant::now();
    run(&mut chs, src, seconds, wire, |_, _| {});
    let stats = dhat::HeapStats::get();
    let h = held(&chs[0]);
    drop(profiler); // writes the profile with everything still live
    let cats = categories(&path);
    println!(
        "profile: one channel, {seconds} s of media ({:.1} s to run), segment_count {}, wire {}",
        started.elapsed().as_secs_f64(),
        chs[0].stream.cfg().segment_count,
        if wire { "built" } else { "not built" }
    );
    println!(
        "window: {} segments, {:.1} s, {} frames; payload {:.2} MiB, TS renditions {:.2} MiB, wire {:.2} MiB",
        h.segments,
        h.seconds,
        h.frames,
        h.payload as f64 / MIB,
        h.ts as f64 / MIB,
        h.wire as f64 / MIB
    );
    println!(
        "memfd (sealed zero-copy bodies, outside the heap; strom_memfd_bytes): {:.2} MiB",
        strom_node::zc::memfd_bytes() as f64 / MIB
    );
    println!(
        "{:<72} {:>10} {:>8}",
        "live heap at the end, by allocation site", "MiB", "blocks"
    );
    let mut node = (0u64, 0u64);
    for (c, (b, k)) in &cats {
        println!("  {c:<70} {:>10.2} {k:>8}", *b as f64 / MIB);
        if !c.starts_with("bench:") {
            node.0 += b;
            node.1 += k;
        }
    }
    println!(
        "  {:<70} {:>10.2} {:>8}",
        "= the channel (all but bench)",
        node.0 as f64 / MIB,
        node.1
    );
    println!(
        "dhat totals: live {:.2} MiB in {} blocks (before the channel {:.2} MiB); peak {:.2} MiB; allocated over the run {:.1} MiB in {} blocks",
        stats.curr_bytes as f64 / MIB,
        stats.curr_blocks,
        before.curr_bytes as f64 / MIB,
        stats.max_bytes as f64 / MIB,
        stats.total_bytes as f64 / MIB,
        stats.total_blocks
    );
    println!("profile written to {}", path.display());
    node.0 as f64 / MIB
}

fn rss(src: &Source, channels: usize, seconds: i64, wire: bool) {
    let (_, anon0) = rss_kib();
    let now = Instant::now();
    let mut chs: Vec<Channel> = (0..channels)
        .map(|i| Channel::new(&format!("ch{}", i + 1), src, now))
        .collect();
    println!(
        "rss: {channels} channels, {seconds} s of media on one thread, wire {}; RssAnon before the channels {:.1} MiB",
        if wire { "built" } else { "not built" },
        anon0 as f64 / 1024.0
    );
    println!(
        "{:>6} {:>12} {:>14} {:>16} {:>12}",
        "minute", "RssAnon MiB", "per channel", "window payload/ch", "memfd/ch"
    );
    let mut at2 = None;
    let mut last = 0.0;
    run(&mut chs, src, seconds, wire, |m, chs| {
        let (_, anon) = rss_kib();
        let per = anon.saturating_sub(anon0) as f64 / 1024.0 / chs.len() as f64;
        let payload = chs.iter().map(|c| held(c).payload).sum::<usize>() as f64 / chs.len() as f64 / MIB;
        let memfd = strom_node::zc::memfd_bytes() as f64 / MIB / chs.len() as f64;
        println!(
            "{m:>6} {:>12.1} {per:>14.2} {payload:>16.2} {memfd:>12.2}",
            anon as f64 / 1024.0
        );
        if m == 2 {
            at2 = Some(anon);
        }
        last = anon as f64;
    });
    if let Some(a2) = at2 {
        println!(
            "flatness: RssAnon at the last minute / minute 2 = {:.3}",
            last / a2 as f64
        );
    }
    let heap = std::env::var("STROM_MEM_HEAP_PER_CHANNEL")
        .ok()
        .and_then(|v| v.parse::<f64>().ok());
    if let Some(heap) = heap {
        let per = (last - anon0 as f64) / 1024.0 / chs.len() as f64;
        println!(
            "allocator overhead: RssAnon per channel {per:.2} MiB - live heap per channel {heap:.2} MiB (profile) = {:.2} MiB",
            per - heap
        );
    }
}

fn main() {
    // Criterion-style arguments (`--bench`) are ignored.
    let only = std::env::var("STROM_MEM_ONLY").unwrap_or_default();
    let wire = env_num("STROM_MEM_WIRE", 0) == 1;
    let src = source_build();
    let secs = src.span as f64 / CLOCK_HZ as f64;
    let bytes: usize = src.frames.iter().map(|f| f.data.len()).sum();
    println!(
        "input: {} frames per {secs:.2} s loop, {:.2} Mbit/s of payload",
        src.frames.len(),
        bytes as f64 * 8.0 / secs / 1e6
    );
    let mut heap = None;
    if only.is_empty() || only == "profile" {
        heap = Some(profile(&src, env_num("STROM_MEM_SECONDS", 120) as i64, wire));
    }
    if only.is_empty() {
        // The RSS run gets a process of its own, without the profiler.
        let exe = std::env::current_exe().expect("current exe");
        let status = std::process::Command::new(exe)
            .env("STROM_MEM_ONLY", "rss")
            .env("STROM_MEM_HEAP_PER_CHANNEL", heap.unwrap_or(0.0).to_string())
            .status()
            .expect("rss run");
        assert!(status.success(), "rss run failed");
    } else if only == "rss" {
        rss(
            &src,
            env_num("STROM_MEM_CHANNELS", 10) as usize,
            env_num("STROM_MEM_RSS_SECONDS", 600) as i64,
            wire,
        );
    }
}

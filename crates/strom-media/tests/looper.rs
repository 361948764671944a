//! assets/demo.ts (10 s of 25 fps H.264 + 48 kHz AAC) looped through the
//! node's path: demux → looper → timeline → segmenter, with the clock paced
//! by DTS as the file input paces it. Every loop join must be invisible: HLS
//! segments all equally long and the audio track contiguous.

use std::sync::Arc;
use strom_media::looper::Looper;
use strom_media::scte35;
use strom_media::segmenter::{Segmenter, SegmenterConfig};
use strom_media::timeline::{AnchorReason, Mapped, Timeline, TimelineConfig};
use strom_media::ts::demux::{DemuxEvent, Demuxer};
use strom_media::ts::TS_WRAP;
use strom_media::{Codec, Frame, Segment, Track, TrackKind, CLOCK_HZ};

/// 2025-11-22T00:00:00Z in 90 kHz ticks.
const NOW: i64 = 1_763_769_600 * CLOCK_HZ;

/// Segments may differ by this much at most (10 ms).
const TOLERANCE: i64 = 900;

/// The demo file's last track set and its frames, as the file input demuxes it.
fn demo() -> (Arc<[Track]>, Vec<Frame>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo.ts");
    let data = std::fs::read(path).expect("assets/demo.ts");
    let mut demuxer = Demuxer::new();
    demuxer.push(&data);
    demuxer.flush();
    let (mut tracks, mut frames): (Arc<[Track]>, _) = (Arc::from(Vec::new()), Vec::new());
    while let Some(event) = demuxer.pull() {
        match event {
            DemuxEvent::Tracks(t) => tracks = t,
            DemuxEvent::Frame(f) => frames.push(f),
        }
    }
    (tracks, frames)
}

/// What came out of the timeline and the segmenter.
struct Run {
    looper: Looper,
    /// Finished segments; the running one is left unfinished.
    segments: Vec<Segment>,
    /// Every frame on the UTC timeline.
    mapped: Vec<Frame>,
    /// Frames the timeline dropped (looper output, before the base is added).
    dropped: Vec<Frame>,
}

/// Plays `loops` loops of the demo as the file input does: each frame's
/// timestamps get `base` added and are wrapped to 33 bits, and the wall
/// clock is where its DTS is due.
fn play(base: impl Fn(&Looper) -> i64, loops: i64) -> Run {
    play_file(demo(), base, loops)
}

/// [`play`] for any file's tracks and frames.
fn play_file((tracks, frames): (Arc<[Track]>, Vec<Frame>), base: impl Fn(&Looper) -> i64, loops: i64) -> Run {
    let mut looper = Looper::new(tracks, frames).expect("demo.ts is playable");
    let base = base(&looper);
    let end = loops * looper.period();
    let mut timeline = Timeline::new(TimelineConfig::default());
    let mut segmenter = Segmenter::new(SegmenterConfig::with_target(2 * CLOCK_HZ));
    assert!(segmenter.set_tracks(looper.tracks().clone()).is_none());
    let (mut segments, mut mapped, mut dropped) = (Vec::new(), Vec::new(), Vec::new());
    for f in looper.by_ref().take_while(|f| f.dts < end) {
        let now = NOW + f.dts;
        let raw = Frame {
            dts: (base + f.dts).rem_euclid(TS_WRAP),
            pts: (base + f.pts).rem_euclid(TS_WRAP),
            ..f.clone()
        };
        let Mapped::Frame { frame, anchor } = timeline.map(raw, now) else {
            dropped.push(f);
            continue;
        };
        assert!(anchor.is_none() || anchor == Some(AnchorReason::Start), "{anchor:?}");
        mapped.push(frame.clone());
        segments.extend(segmenter.push(frame));
    }
    assert_eq!(timeline.anchors(), 1, "one run from start to end");
    assert_eq!(segmenter.dropped(), 0);
    Run {
        looper,
        segments,
        mapped,
        dropped,
    }
}

fn check(run: &Run, loops: i64) {
    assert_eq!(run.dropped, Vec::new(), "the timeline drops nothing");
    let video = run
        .looper
        .tracks()
        .iter()
        .find(|t| t.kind() == TrackKind::Video)
        .expect("video track");
    let audio = run
        .looper
        .tracks()
        .iter()
        .find(|t| t.kind() == TrackKind::Audio)
        .expect("audio track");
    assert_eq!(run.looper.period(), 10 * CLOCK_HZ, "250 frames at 25 fps");

    // 2 s segments cut at the 1 s keyframes: five per loop, the last one still running.
    let segs = &run.segments;
    assert!(segs.len() as i64 >= 5 * loops - 1, "{} segments", segs.len());
    let shortest = segs.iter().map(|s| s.duration).min().unwrap_or(0);
    let longest = segs.iter().map(|s| s.duration).max().unwrap_or(0);
    let durations: Vec<i64> = segs.iter().map(|s| s.duration).collect();
    assert!(longest - shortest <= TOLERANCE, "segment durations {durations:?}");
    for (s, next) in segs.iter().zip(&segs[1..]) {
        assert_eq!(s.start + s.duration, next.start, "segments tile the timeline");
        assert!(!next.discontinuity);
        assert!(next.frames[0].keyframe && next.frames[0].track == video.id);
    }

    let deltas = |track: u16| -> Vec<i64> {
        let dts: Vec<i64> = run.mapped.iter().filter(|f| f.track == track).map(|f| f.dts).collect();
        dts.windows(2).map(|w| w[1] - w[0]).collect()
    };
    let (v, a) = (deltas(video.id), deltas(audio.id));
    assert!(v.len() as i64 >= 250 * loops - 1);
    assert!(v.iter().all(|d| *d == 3600), "video steps 1/25 s across every join");
    assert!(a.len() as i64 >= 460 * loops);
    assert!(
        a.iter().all(|d| *d == 1920),
        "audio steps 1024 samples across every join"
    );
}

#[test]
fn demo_loops_seamlessly_on_its_own_timestamps() {
    let loops = 4;
    let run = play(Looper::base_dts, loops);
    check(&run, loops);
}

#[test]
fn demo_loops_seamlessly_across_the_33_bit_wrap() {
    // The second loop crosses 2^33 in the raw timestamps the timeline sees.
    let loops = 3;
    let run = play(|_| TS_WRAP - 15 * CLOCK_HZ, loops);
    check(&run, loops);
}

// ---------------------------------------------------------------------------
// Sparse tracks: subtitles and SCTE-35 cues are placed at their own offset in
// every loop, never filled, repeated, dropped or re-timed.

/// A broadcast fixture's last track set and its frames, as the file input
/// demuxes it.
fn fixture(name: &str) -> (Arc<[Track]>, Vec<Frame>) {
    let path = format!("{}/tests/data/broadcast/{name}.ts", env!("CARGO_MANIFEST_DIR"));
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut demuxer = Demuxer::new();
    demuxer.push(&data);
    demuxer.flush();
    let (mut tracks, mut frames): (Arc<[Track]>, _) = (Arc::from(Vec::new()), Vec::new());
    while let Some(event) = demuxer.pull() {
        match event {
            DemuxEvent::Tracks(t) => tracks = t,
            DemuxEvent::Frame(f) => frames.push(f),
        }
    }
    (tracks, frames)
}

fn is_sparse(kind: TrackKind) -> bool {
    matches!(kind, TrackKind::Subtitle | TrackKind::Data)
}

/// Checks that over `loops` loops every frame of the sparse `track` comes out
/// exactly once per loop, in file order, at `k·P + its offset in the file`
/// with its own PTS−DTS and payload, and nothing else on that track. Returns
/// the file's frames of the track.
fn check_sparse_track(name: &str, track: u16, loops: i64) -> Vec<Frame> {
    let (tracks, frames) = fixture(name);
    let file: Vec<Frame> = frames.iter().filter(|f| f.track == track).cloned().collect();
    assert!(!file.is_empty(), "{name}: track {track} has frames");
    let mut looper = Looper::new(tracks, frames).expect("playable");
    let (base, period) = (looper.base_dts(), looper.period());
    for f in &file {
        let off = strom_media::ts::wrap_delta(base, f.dts);
        assert!((0..period).contains(&off), "{name}: frame at {off} is inside the loop");
    }
    let out: Vec<Frame> = looper
        .by_ref()
        .take_while(|f| f.dts < loops * period)
        .filter(|f| f.track == track)
        .collect();
    assert_eq!(
        out.len(),
        file.len() * loops as usize,
        "{name} track {track}: each frame once per loop"
    );
    for (i, o) in out.iter().enumerate() {
        let k = i / file.len();
        let f = &file[i % file.len()];
        let off = strom_media::ts::wrap_delta(base, f.dts);
        assert_eq!(
            o.dts,
            k as i64 * period + off,
            "{name} track {track}: frame {i} in place"
        );
        assert_eq!(
            o.pts - o.dts,
            strom_media::ts::wrap_delta(f.dts, f.pts),
            "{name}: PTS-DTS kept"
        );
        assert_eq!(
            (&o.data, o.keyframe),
            (&f.data, f.keyframe),
            "{name}: frame {i} as in the file"
        );
    }
    file
}

/// The video and audio a file plays are the same with or without its sparse
/// tracks: subtitles and cues neither time the loop nor stretch it.
fn check_sparse_tracks_change_nothing_else(name: &str, loops: i64) {
    let (tracks, frames) = fixture(name);
    let dense: Vec<Frame> = frames
        .iter()
        .filter(|f| !is_sparse(tracks[usize::from(f.track)].kind()))
        .cloned()
        .collect();
    let mut with = Looper::new(tracks.clone(), frames).expect("playable");
    let mut without = Looper::new(tracks.clone(), dense).expect("playable");
    assert_eq!(
        (with.base_dts(), with.period(), with.timing_track()),
        (without.base_dts(), without.period(), without.timing_track())
    );
    for t in tracks.iter() {
        if is_sparse(t.kind()) {
            assert_eq!(with.step(t.id), None, "{name}: a sparse track has no step");
        } else {
            assert_eq!(with.step(t.id), without.step(t.id), "{name}: step of track {}", t.id);
        }
    }
    let end = loops * with.period();
    let a: Vec<Frame> = with
        .by_ref()
        .take_while(|f| f.dts < end)
        .filter(|f| !is_sparse(tracks[usize::from(f.track)].kind()))
        .collect();
    let b: Vec<Frame> = without.by_ref().take_while(|f| f.dts < end).collect();
    assert_eq!(a, b, "{name}: video and audio untouched by sparse tracks");
}

#[test]
fn scte35_cues_play_once_per_loop_at_their_splice_time() {
    let loops = 3;
    let (tracks, _) = fixture("scte35");
    let cue_track = tracks
        .iter()
        .find(|t| t.codec == Codec::Scte35)
        .expect("SCTE-35 track")
        .id;
    let cues = check_sparse_track("scte35", cue_track, loops);
    // The three cues of the fixture's README, by splice PTS; each is in the
    // file once, so it comes out once per loop at its splice time.
    let mut looper = {
        let (tracks, frames) = fixture("scte35");
        Looper::new(tracks, frames).expect("playable")
    };
    let (base, period) = (looper.base_dts(), looper.period());
    let out: Vec<Frame> = looper
        .by_ref()
        .take_while(|f| f.dts < loops * period)
        .filter(|f| f.track == cue_track)
        .collect();
    for (splice, attribute) in [
        (493_200, Some("SCTE35-OUT")),
        (943_200, Some("SCTE35-IN")),
        (1_213_200, Some("SCTE35-CMD")),
    ] {
        let in_file: Vec<&Frame> = cues.iter().filter(|f| f.pts == splice).collect();
        assert_eq!(in_file.len(), 1, "cue with splice PTS {splice} once in the file");
        let info = scte35::parse(&in_file[0].data).expect("cue parses");
        assert_eq!(info.daterange_attribute(), attribute);
        assert_eq!(info.splice_time(), Some(splice));
        let played: Vec<i64> = out
            .iter()
            .filter(|f| f.data == in_file[0].data)
            .map(|f| f.pts)
            .collect();
        let want: Vec<i64> = (0..loops).map(|k| k * period + splice - base).collect();
        assert_eq!(played, want, "cue {attribute:?}: once per loop, at its splice PTS");
    }
    check_sparse_tracks_change_nothing_else("scte35", loops);
}

#[test]
fn scte35_cues_reach_the_utc_timeline_at_their_splice_time_every_loop() {
    // Through the node's path, across the 33-bit wrap in the second loop:
    // the fixture's three cues map once per loop at their splice time, k·P
    // after the first loop's; every cue that maps is in place; and the
    // segments are cut as without cues.
    let loops = 3;
    let (tracks, frames) = fixture("scte35");
    let cue_track = tracks
        .iter()
        .find(|t| t.codec == Codec::Scte35)
        .expect("SCTE-35 track")
        .id;
    let file_cues: Vec<Frame> = frames.iter().filter(|f| f.track == cue_track).cloned().collect();
    let dense: Vec<Frame> = frames.iter().filter(|f| f.track != cue_track).cloned().collect();
    let base = |_: &Looper| TS_WRAP - 20 * CLOCK_HZ;
    let run = play_file((tracks.clone(), frames), base, loops);
    let plain = play_file((tracks, dense), base, loops);
    let (period, file_base) = (run.looper.period(), run.looper.base_dts());
    let first = run.mapped[0].dts;
    // UTC (dts, pts) of a cue of the file in loop k.
    let at = |f: &Frame, k: i64| {
        let off = strom_media::ts::wrap_delta(file_base, f.dts);
        let dts = first + k * period + off;
        (dts, dts + strom_media::ts::wrap_delta(f.dts, f.pts))
    };
    let cues: Vec<&Frame> = run.mapped.iter().filter(|f| f.track == cue_track).collect();
    for cue in &cues {
        let k = (cue.dts - first).div_euclid(period);
        assert!(
            file_cues
                .iter()
                .any(|f| f.data == cue.data && at(f, k) == (cue.dts, cue.pts)),
            "cue at {} is one of the file's, in place",
            cue.dts
        );
    }
    for splice in [493_200, 943_200, 1_213_200] {
        let f = file_cues.iter().find(|f| f.pts == splice).expect("README cue");
        let mapped: Vec<(i64, i64)> = cues
            .iter()
            .filter(|c| c.data == f.data)
            .map(|c| (c.dts, c.pts))
            .collect();
        let want: Vec<(i64, i64)> = (0..loops).map(|k| at(f, k)).collect();
        assert_eq!(mapped, want, "cue for splice PTS {splice}: once per loop, in place");
        assert_eq!(want[0].1 - first, splice - file_base);
    }
    // The timeline keeps one frame per DTS on a track: a cue sharing its
    // arrival PCR with the one before (the splice_null 16 ms after the IN
    // cue) is all it may drop.
    assert!(run.dropped.iter().all(|f| f.track == cue_track
        && file_cues
            .windows(2)
            .any(|w| w[1].data == f.data && w[0].dts == w[1].dts)));
    assert_eq!(cues.len() + run.dropped.len(), file_cues.len() * loops as usize);
    assert!(plain.dropped.is_empty());
    let cuts = |r: &Run| r.segments.iter().map(|s| (s.start, s.duration)).collect::<Vec<_>>();
    assert_eq!(cuts(&run), cuts(&plain), "cues do not move a cut");
}

#[test]
fn teletext_and_dvb_subtitles_play_once_per_loop_in_place() {
    let loops = 3;
    let (tracks, _) = fixture("subtitles");
    let mut checked = Vec::new();
    for t in tracks.iter().filter(|t| t.kind() == TrackKind::Subtitle) {
        let file = check_sparse_track("subtitles", t.id, loops);
        checked.push((t.codec, file.len()));
    }
    // README: 6 DVB subtitle PES and 22 teletext PES.
    checked.sort_by_key(|(c, _)| c.name());
    assert_eq!(checked, vec![(Codec::DvbSubtitle, 6), (Codec::Teletext, 22)]);
    check_sparse_tracks_change_nothing_else("subtitles", loops);
}

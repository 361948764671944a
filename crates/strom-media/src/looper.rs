//! Looper: turns one demuxed file into an endless, seamless run of frames, for
//! inputs that play a file forever (a backup slate, the built-in demo).
//!
//! The file is handed over once, as the demuxer produced it: its track list
//! and its frames in decode order with raw 33-bit DTS/PTS, which may wrap
//! inside the file. [`Looper`] then yields frames forever. Every time here is
//! in 90 kHz ticks.
//!
//! Tracks are continuous (video and audio: one frame after another, each
//! lasting until the next) or sparse (subtitles and data: teletext, DVB
//! subtitles and SCTE-35 cues, which come now and then and mean something
//! only at their own time). Only continuous tracks shape the loop.
//!
//! Invariants of the output:
//! - Timestamps are unwrapped and relative to the start of the loop: the first
//!   frame is the timing track's first keyframe, at DTS 0. The caller adds a
//!   base (e.g. [`Looper::base_dts`]), wraps to 33 bits and paces by DTS.
//! - Frames come out in DTS order (the timing track first on a tie, then
//!   track order). Per track DTS strictly increases, except that two frames
//!   of a sparse track that share a DTS in the file (two cues after the same
//!   PCR) keep sharing it.
//! - The timing track is the first video track, else the first audio track;
//!   a file with neither does not play. Its frames keep their spacing from
//!   the file, and loop k is loop 0 shifted by k·P. The period P is the
//!   track's last DTS plus its step (the median DTS delta, so one long frame
//!   at the end does not stretch the loop). Across the join the timing track
//!   advances by exactly one step: no gap, no overlap, so a file whose GOPs
//!   divide its length cuts into equal segments for ever. PTS−DTS offsets
//!   (B-frames) are kept.
//! - Every other continuous track (audio) is contiguous at its own step (its
//!   median DTS delta): each frame starts where the previous one ended. Each
//!   frame of the file belongs at k·P + its offset in the file on the timing
//!   clock; a frame that would run ahead of that by more than half a step is
//!   skipped, and where the track would fall behind by more than half a step
//!   the previous frame's data is played again. So every frame played from
//!   the file is within half a step of its place, however many loops have
//!   run. A second video track gets the same treatment, which a decoder may
//!   show at the join.
//! - A sparse track has no step and is never filled, repeated, skipped or
//!   re-timed: each of its frames whose DTS lies in the loop's window
//!   `[0, P)` plays once per loop at exactly k·P + its offset in the file,
//!   with its own PTS−DTS (an SCTE-35 splice time seconds after arrival
//!   stays exactly that far after it). Its frames outside the window are not
//!   part of the loop and never play; they neither stretch the period nor
//!   move its start.
//! - With a video timing track, a loop starts at its first keyframe: frames
//!   before it are not played, nor other tracks' frames from before its time.
//!   Each other continuous track plays one period of the file from its first
//!   frame, so a track longer than the video does not run on into the next
//!   loop and one shorter than the video is filled by repeats.
//!
//! Files are taken as they are: frames that go back on their track (or, on a
//! continuous track, do not move forward) are dropped, and a jump of more
//! than [`MAX_JUMP`] between consecutive video/audio frames (files
//! concatenated with `cat`) is closed up so the file plays as one run. A
//! sparse frame is placed against the video/audio frame before it in decode
//! order and never decides where such a splice is.

use crate::frame::{Frame, Track, TrackKind, CLOCK_HZ};
use crate::ts::{wrap_delta, TS_WRAP};
use bytes::Bytes;
use std::sync::Arc;

/// A DTS step between consecutive video/audio frames of the file (any of
/// those tracks, decode order) larger than this, forward or back, is a splice
/// rather than time passing: the frame after it is placed one tick after the
/// newest frame before it. A subtitle or data frame this far from the
/// video/audio frame before it is placed the same way, without moving
/// anything else. Ten seconds is far more than audio and video of one program
/// are ever interleaved apart.
pub const MAX_JUMP: i64 = 10 * CLOCK_HZ;

/// One frame of the file, placed on the loop's clock.
#[derive(Clone, Debug)]
struct Source {
    /// DTS relative to the loop's start.
    off: i64,
    /// PTS − DTS.
    cts: i64,
    keyframe: bool,
    data: Bytes,
}

/// How a lane places its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pace {
    /// The timing track: the file's own offsets, shifted by k·P in loop k.
    Timing,
    /// Another continuous track: contiguous at its step, filled and skipped
    /// to stay within half a step of its place.
    Follows,
    /// A subtitle or data track: the file's own offsets like the timing
    /// track (equal offsets allowed), no step.
    Sparse,
}

/// The endless frame run of one track.
#[derive(Debug)]
struct Lane {
    track: u16,
    /// One period of the file: never empty, offsets increasing (strictly but
    /// on a sparse track) and spanning less than the period.
    frames: Vec<Source>,
    /// DTS step of this track's output; unused on a sparse track.
    step: i64,
    pace: Pace,
    /// Index of the next frame of the file to consider.
    next: usize,
    /// k·P for the loop `next` is in.
    loop_base: i64,
    /// Following track: DTS of its next output frame.
    slot: i64,
    /// Following track: the frame last played, to repeat into a gap.
    last: Option<usize>,
    /// The lane's next output frame, computed ahead so lanes can be merged.
    pending: Frame,
}

impl Lane {
    fn new(track: u16, frames: Vec<Source>, step: i64, pace: Pace, period: i64) -> Option<Lane> {
        let first = frames.first()?;
        let (slot, placeholder) = (first.off, out_frame(track, first.off, first));
        let mut lane = Lane {
            track,
            slot,
            pending: placeholder,
            frames,
            step,
            pace,
            next: 0,
            loop_base: 0,
            last: None,
        };
        lane.pending = lane.produce(period);
        Some(lane)
    }

    /// Moves on to the next frame of the file, into the next loop after the last.
    fn advance_cursor(&mut self, period: i64) {
        self.next += 1;
        if self.next >= self.frames.len() {
            self.next = 0;
            self.loop_base = self.loop_base.saturating_add(period);
        }
    }

    /// Computes the lane's next output frame.
    fn produce(&mut self, period: i64) -> Frame {
        if self.pace != Pace::Follows {
            let s = &self.frames[self.next];
            let frame = out_frame(self.track, self.loop_base.saturating_add(s.off), s);
            self.advance_cursor(period);
            return frame;
        }
        // Each pass either plays a frame or skips one; skipping moves the
        // target forward (offsets increase, and by P per loop), so it ends
        // within about two loops.
        loop {
            let target = self.loop_base.saturating_add(self.frames[self.next].off);
            let ahead = self.slot.saturating_sub(target);
            if ahead.saturating_mul(2) > self.step {
                self.advance_cursor(period);
                continue;
            }
            let idx = match self.last {
                Some(last) if ahead.saturating_mul(-2) > self.step => last,
                _ => {
                    let idx = self.next;
                    self.advance_cursor(period);
                    self.last = Some(idx);
                    idx
                }
            };
            let frame = out_frame(self.track, self.slot, &self.frames[idx]);
            self.slot = self.slot.saturating_add(self.step);
            return frame;
        }
    }
}

fn out_frame(track: u16, dts: i64, s: &Source) -> Frame {
    Frame {
        track,
        dts,
        pts: dts.saturating_add(s.cts),
        keyframe: s.keyframe,
        data: s.data.clone(),
    }
}

/// Plays a demuxed file forever with continuous timestamps. See the module
/// documentation for the invariants. It is an endless [`Iterator`]: `next`
/// never returns `None`.
#[derive(Debug)]
pub struct Looper {
    tracks: Arc<[Track]>,
    base_dts: i64,
    period: i64,
    timing: u16,
    /// The timing track first, then the others in track order.
    lanes: Vec<Lane>,
}

impl Looper {
    /// Builds the loop from a file's track list and its frames in decode order,
    /// with raw 33-bit DTS/PTS as the demuxer gives them. Frames of a track not
    /// in `tracks` are ignored.
    ///
    /// Returns `None` when there is nothing playable: no video or audio
    /// track, no frame on the timing track, or a video timing track without
    /// a keyframe.
    pub fn new(tracks: Arc<[Track]>, frames: impl IntoIterator<Item = Frame>) -> Option<Looper> {
        let timing_idx = tracks
            .iter()
            .position(|t| t.kind() == TrackKind::Video)
            .or_else(|| tracks.iter().position(|t| t.kind() == TrackKind::Audio))?;
        let needs_key = tracks[timing_idx].kind() == TrackKind::Video;

        // Unwrap the file onto one clock. Video and audio chain frame to frame
        // in decode order. A sparse frame is placed against the newest
        // video/audio frame before it (the first one, for sparse frames ahead
        // of every video/audio frame) and moves nothing: a cue's arrival time
        // neither splices the file nor shifts what follows.
        // Each entry: track index, unwrapped DTS (None: cannot be placed),
        // raw DTS, the frame.
        let mut placed: Vec<(usize, Option<i64>, i64, Frame)> = Vec::new();
        let mut prev: Option<(i64, i64)> = None;
        let mut newest = 0i64;
        // Sparse frames before the first video/audio frame, by index in `placed`.
        let mut early: Vec<usize> = Vec::new();
        for f in frames {
            let Some(t) = tracks.iter().position(|t| t.id == f.track) else {
                continue;
            };
            let raw = f.dts.rem_euclid(TS_WRAP);
            let sparse = is_sparse(tracks[t].kind());
            let u = match prev {
                None if sparse => {
                    early.push(placed.len());
                    None
                }
                None => {
                    for &i in &early {
                        let d = wrap_delta(raw, placed[i].2);
                        placed[i].1 = (d.abs() <= MAX_JUMP).then_some(d);
                    }
                    early.clear();
                    Some(0)
                }
                Some((prev_raw, prev_u)) => {
                    let d = wrap_delta(prev_raw, raw);
                    Some(if d.abs() > MAX_JUMP {
                        newest.saturating_add(1)
                    } else {
                        prev_u.saturating_add(d)
                    })
                }
            };
            if let (false, Some(u)) = (sparse, u) {
                newest = if prev.is_none() { u } else { newest.max(u) };
                prev = Some((raw, u));
            }
            placed.push((t, u, raw, f));
        }

        // The timing track: from its first keyframe, strictly increasing.
        let mut zero: Option<(i64, i64)> = None;
        let mut timing_frames = Vec::new();
        let mut last_u = i64::MIN;
        for (t, u, raw, f) in &placed {
            let Some(u) = u else { continue };
            if *t != timing_idx || *u <= last_u || (zero.is_none() && needs_key && !f.keyframe) {
                continue;
            }
            let (zero_u, _) = *zero.get_or_insert((*u, *raw));
            last_u = *u;
            timing_frames.push(source(*u - zero_u, *raw, f));
        }
        let (zero_u, base_dts) = zero?;
        let timing_step = median_step(&timing_frames).unwrap_or_else(|| default_step(&tracks[timing_idx]));
        let period = timing_frames
            .last()
            .map_or(timing_step, |s| s.off.saturating_add(timing_step))
            .max(1);

        let timing = tracks[timing_idx].id;
        let mut lanes = Vec::with_capacity(tracks.len());
        lanes.extend(Lane::new(timing, timing_frames, timing_step, Pace::Timing, period));
        for (idx, track) in tracks.iter().enumerate() {
            if idx == timing_idx {
                continue;
            }
            if is_sparse(track.kind()) {
                // Inside the loop's window, in file order, at their own offsets.
                let mut own: Vec<Source> = Vec::new();
                for (_, u, raw, f) in placed.iter().filter(|p| p.0 == idx) {
                    let Some(off) = u.map(|u| u.saturating_sub(zero_u)) else {
                        continue;
                    };
                    if (0..period).contains(&off) && own.last().is_none_or(|s| off >= s.off) {
                        own.push(source(off, *raw, f));
                    }
                }
                lanes.extend(Lane::new(track.id, own, 0, Pace::Sparse, period));
                continue;
            }
            // From the loop's start, strictly increasing, one period long.
            let mut own: Vec<Source> = Vec::new();
            for (_, u, raw, f) in placed.iter().filter(|p| p.0 == idx) {
                let Some(u) = u else { continue };
                let off = u.saturating_sub(zero_u);
                let after_last = own.last().is_none_or(|s| off > s.off);
                let in_period = own.first().is_none_or(|s| off < s.off.saturating_add(period));
                if off >= 0 && after_last && in_period {
                    own.push(source(off, *raw, f));
                }
            }
            let step = median_step(&own)
                .unwrap_or_else(|| default_step(track))
                .clamp(1, period);
            lanes.extend(Lane::new(track.id, own, step, Pace::Follows, period));
        }

        Some(Looper {
            tracks,
            base_dts,
            period,
            timing,
            lanes,
        })
    }

    /// The file's track list, as given.
    pub fn tracks(&self) -> &Arc<[Track]> {
        &self.tracks
    }

    /// Raw 33-bit DTS (in `[0, 2^33)`) of the loop's first frame, the timing
    /// track's first keyframe. Adding it to output timestamps makes the first
    /// loop carry the file's own timestamps.
    pub fn base_dts(&self) -> i64 {
        self.base_dts
    }

    /// Length of one loop in ticks: the timing track's last DTS plus its step.
    pub fn period(&self) -> i64 {
        self.period
    }

    /// Id of the timing track: the first video track, else the first audio track.
    pub fn timing_track(&self) -> u16 {
        self.timing
    }

    /// DTS step in ticks between consecutive output frames of `track`: the
    /// median DTS delta of its frames in the file. On the timing track it is
    /// the step across the join (inside the loop the file's spacing is kept);
    /// on every other video or audio track it is every step. `None` for a
    /// track with no playable frame, and for subtitle and data tracks, which
    /// play at their own offsets and have no step.
    pub fn step(&self, track: u16) -> Option<i64> {
        self.lanes
            .iter()
            .find(|l| l.track == track && l.pace != Pace::Sparse)
            .map(|l| l.step)
    }
}

impl Iterator for Looper {
    type Item = Frame;

    /// The next frame in DTS order. Never `None`.
    fn next(&mut self) -> Option<Frame> {
        let period = self.period;
        // Lanes are few: a scan is cheaper than a heap.
        let lane = self
            .lanes
            .iter_mut()
            .reduce(|best, l| if l.pending.dts < best.pending.dts { l } else { best })?;
        let next = lane.produce(period);
        Some(std::mem::replace(&mut lane.pending, next))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

impl std::iter::FusedIterator for Looper {}

fn source(off: i64, raw_dts: i64, f: &Frame) -> Source {
    Source {
        off,
        cts: wrap_delta(raw_dts, f.pts),
        keyframe: f.keyframe,
        data: f.data.clone(),
    }
}

/// Median DTS delta of frames with strictly increasing offsets (the upper
/// median for an even count); `None` for fewer than two frames.
fn median_step(frames: &[Source]) -> Option<i64> {
    let mut deltas: Vec<i64> = frames.windows(2).map(|w| w[1].off.saturating_sub(w[0].off)).collect();
    if deltas.is_empty() {
        return None;
    }
    let mid = deltas.len() / 2;
    let (_, median, _) = deltas.select_nth_unstable(mid);
    Some(*median)
}

/// Subtitle and data tracks: sparse, placed at their own times, never
/// stepped.
fn is_sparse(kind: TrackKind) -> bool {
    matches!(kind, TrackKind::Subtitle | TrackKind::Data)
}

/// Step of a video or audio track with a single frame: its frame rate for
/// video, 1024 samples (one AAC frame) for audio with a known sample rate,
/// else 1/25 s. Sparse tracks have no step and never get here.
fn default_step(track: &Track) -> i64 {
    let p = &track.params;
    let step = match track.kind() {
        TrackKind::Video => p
            .frame_rate
            .filter(|&(num, den)| num > 0 && den > 0)
            .map(|(num, den)| (CLOCK_HZ * i64::from(den) + i64::from(num) / 2) / i64::from(num)),
        TrackKind::Audio => {
            (p.sample_rate > 0).then(|| (1024 * CLOCK_HZ + i64::from(p.sample_rate) / 2) / i64::from(p.sample_rate))
        }
        TrackKind::Subtitle | TrackKind::Data => None,
    };
    step.filter(|s| *s > 0).unwrap_or(CLOCK_HZ / 25)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Codec, TrackParams};
    use proptest::prelude::*;

    /// 25 fps video and 48 kHz AAC.
    const V: i64 = 3600;
    const A: i64 = 1920;

    fn tracks(video: bool, audio: bool) -> Arc<[Track]> {
        let mut v = Vec::new();
        for (on, codec) in [(video, Codec::H264), (audio, Codec::Aac)] {
            if on {
                v.push(Track {
                    id: v.len() as u16,
                    codec,
                    params: TrackParams::default(),
                });
            }
        }
        Arc::from(v)
    }

    /// A frame of the file at unwrapped `dts`/`pts`, stored raw (33-bit) as
    /// the demuxer gives it. The payload names the track and the frame's index.
    fn raw(track: u16, idx: usize, dts: i64, pts: i64, keyframe: bool) -> Frame {
        let mut data = vec![track as u8];
        data.extend_from_slice(&(idx as u32).to_le_bytes());
        Frame {
            track,
            dts: dts.rem_euclid(TS_WRAP),
            pts: pts.rem_euclid(TS_WRAP),
            keyframe,
            data: Bytes::from(data),
        }
    }

    fn index(f: &Frame) -> usize {
        let b: [u8; 4] = f.data[1..5].try_into().expect("test payload");
        u32::from_le_bytes(b) as usize
    }

    /// Frames of a synthetic file in decode (DTS) order, video first on a tie.
    /// `video` and `audio` hold each frame's unwrapped (dts, pts, keyframe).
    fn file(video: &[(i64, i64, bool)], audio: &[(i64, i64, bool)], audio_track: u16) -> Vec<Frame> {
        let mut all: Vec<(i64, u16, Frame)> = Vec::new();
        for (i, &(d, p, k)) in video.iter().enumerate() {
            all.push((d, 0, raw(0, i, d, p, k)));
        }
        for (i, &(d, p, k)) in audio.iter().enumerate() {
            all.push((d, 1, raw(audio_track, i, d, p, k)));
        }
        all.sort_by_key(|(d, order, _)| (*d, *order));
        all.into_iter().map(|(_, _, f)| f).collect()
    }

    /// `n` video frames at 25 fps from `start`, a keyframe every `gop`.
    fn video(start: i64, n: usize, gop: usize) -> Vec<(i64, i64, bool)> {
        (0..n)
            .map(|i| (start + i as i64 * V, start + i as i64 * V, i % gop == 0))
            .collect()
    }

    /// `n` AAC frames of 1920 ticks from `start`.
    fn audio(start: i64, n: usize) -> Vec<(i64, i64, bool)> {
        (0..n)
            .map(|i| (start + i as i64 * A, start + i as i64 * A, true))
            .collect()
    }

    /// Output frames with DTS below `loops` periods.
    fn take_loops(l: &mut Looper, loops: i64) -> Vec<Frame> {
        let end = l.period() * loops;
        l.take_while(|f| f.dts < end).collect()
    }

    fn on(frames: &[Frame], track: u16) -> Vec<&Frame> {
        frames.iter().filter(|f| f.track == track).collect()
    }

    fn deltas(frames: &[&Frame]) -> Vec<i64> {
        frames.windows(2).map(|w| w[1].dts - w[0].dts).collect()
    }

    /// Checks a following track: contiguous at `step`, and every frame played
    /// from the file (not a repeat) within half a step of k·P + its offset
    /// `offs[index]`, where `offs` holds the offsets of the track's frames in
    /// the file by payload index. Returns (repeats, skips) seen.
    ///
    /// The payload names the frame of the file, not whether it was played or
    /// repeated. A repeat plays the frame played last again, so where the
    /// index changes the frame is a play and is checked; a frame with the
    /// index of the one before is counted as a repeat. That includes a frame
    /// played again in the next loop with every other frame skipped between,
    /// and every loop of a track whose window is one frame: such a track
    /// plays that frame once per loop in place and repeats it in between
    /// (whenever its step is below the period), and the two look alike.
    fn check_follower(frames: &[&Frame], step: i64, period: i64, offs: &[i64]) -> (usize, usize) {
        assert!(deltas(frames).iter().all(|d| *d == step), "contiguous at {step}");
        let (mut repeats, mut skips) = (0, 0);
        let mut prev: Option<usize> = None;
        for f in frames {
            let j = index(f);
            if prev == Some(j) {
                repeats += 1;
                continue;
            }
            if let Some(p) = prev {
                if j != (p + 1) % offs.len() {
                    skips += 1;
                }
            }
            prev = Some(j);
            let k = (f.dts - offs[j] + period / 2).div_euclid(period);
            let drift = f.dts - (k * period + offs[j]);
            assert!(2 * drift.abs() <= step, "frame {j} at {} drifted {drift}", f.dts);
        }
        (repeats, skips)
    }

    #[test]
    fn video_join_is_exactly_one_frame_step() {
        // Like assets/demo.ts: 10 s of video, audio from 5280 ticks in and
        // running 7680 ticks past the video.
        let start = 126_000;
        let frames = file(&video(start, 250, 25), &audio(start + 5280, 470), 1);
        let mut l = Looper::new(tracks(true, true), frames).expect("playable");
        assert_eq!(l.base_dts(), start);
        assert_eq!(l.period(), 250 * V);
        assert_eq!((l.timing_track(), l.step(0), l.step(1)), (0, Some(V), Some(A)));
        let out = take_loops(&mut l, 4);
        assert!(out[0].track == 0 && out[0].keyframe && out[0].dts == 0);
        assert!(out.windows(2).all(|w| w[0].dts <= w[1].dts), "DTS order");
        let v = on(&out, 0);
        assert_eq!(v.len(), 4 * 250);
        assert!(deltas(&v).iter().all(|d| *d == V), "no gap, no overlap at the joins");
        for (i, f) in v.iter().enumerate() {
            assert_eq!(index(f), i % 250);
        }
        let offs: Vec<i64> = (0..470).map(|i| 5280 + i as i64 * A).collect();
        let (repeats, _) = check_follower(&on(&out, 1), A, l.period(), &offs);
        assert_eq!(repeats, 0, "the audio overhang fills the join");
    }

    #[test]
    fn audio_shorter_than_video_is_filled_by_repeats() {
        // 400 × 1920 = 768000 ticks of audio against 900000 of video.
        let frames = file(&video(0, 250, 25), &audio(0, 400), 1);
        let mut l = Looper::new(tracks(true, true), frames).expect("playable");
        let out = take_loops(&mut l, 10);
        assert!(deltas(&on(&out, 0)).iter().all(|d| *d == V));
        let offs: Vec<i64> = (0..400).map(|i| i as i64 * A).collect();
        let (repeats, skips) = check_follower(&on(&out, 1), A, l.period(), &offs);
        // The 132000-tick hole is 68.75 frames per loop.
        assert!((9 * 68..=10 * 69).contains(&repeats), "{repeats} repeats");
        assert_eq!(skips, 0);
    }

    #[test]
    fn audio_longer_than_video_is_cut_at_the_period_and_skips() {
        // 520 × 1920 = 998400 ticks of audio against 900000 of video: one
        // period of it (469 frames, 900480 ticks) plays per loop.
        let frames = file(&video(0, 250, 25), &audio(0, 520), 1);
        let mut l = Looper::new(tracks(true, true), frames).expect("playable");
        let out = take_loops(&mut l, 20);
        let a = on(&out, 1);
        assert!(a.iter().all(|f| index(f) < 469), "audio past the period never plays");
        let offs: Vec<i64> = (0..469).map(|i| i as i64 * A).collect();
        let (repeats, skips) = check_follower(&a, A, l.period(), &offs);
        // 480 ticks too long per loop: a frame is skipped every 4 loops.
        assert_eq!(repeats, 0);
        assert!((4..=5).contains(&skips), "{skips} skips");
    }

    #[test]
    fn b_frame_offsets_are_kept_and_presentation_joins() {
        // Decode order I P B B P B B …: P frames shown 3 frames later, B frames
        // in between; presentation is one frame behind decode.
        let n = 31;
        let v: Vec<(i64, i64, bool)> = (0..n)
            .map(|d| {
                let shown = match d {
                    0 => 0,
                    _ if d % 3 == 1 => d + 2,
                    _ => d - 1,
                };
                (d as i64 * V, (shown as i64 + 1) * V, d == 0)
            })
            .collect();
        let frames = file(&v, &[], 1);
        let mut l = Looper::new(tracks(true, false), frames).expect("playable");
        let out = take_loops(&mut l, 3);
        for f in &out {
            let (d, p, _) = v[index(f)];
            assert_eq!(f.pts - f.dts, p - d, "PTS-DTS of frame {}", index(f));
        }
        let mut pts: Vec<i64> = out.iter().map(|f| f.pts).collect();
        pts.sort_unstable();
        assert!(pts.windows(2).all(|w| w[1] - w[0] == V), "presentation is seamless");
    }

    #[test]
    fn timestamps_wrapping_inside_the_file_play_like_any_others() {
        let plain = file(&video(0, 250, 25), &audio(5280, 470), 1);
        let start = TS_WRAP - 5 * CLOCK_HZ;
        let wrapping = file(&video(start, 250, 25), &audio(start + 5280, 470), 1);
        assert!(wrapping.iter().any(|f| f.dts < CLOCK_HZ), "the file wraps");
        let mut a = Looper::new(tracks(true, true), plain).expect("playable");
        let mut b = Looper::new(tracks(true, true), wrapping).expect("playable");
        assert_eq!(b.base_dts(), start);
        assert_eq!(a.period(), b.period());
        assert_eq!(take_loops(&mut a, 3), take_loops(&mut b, 3));
    }

    #[test]
    fn audio_only_file_loops_on_its_own_frames() {
        let frames = file(&[], &audio(1000, 500), 0);
        let mut l = Looper::new(tracks(false, true), frames).expect("playable");
        assert_eq!((l.timing_track(), l.base_dts(), l.period()), (0, 1000, 500 * A));
        let out = take_loops(&mut l, 5);
        assert_eq!(out.len(), 5 * 500);
        for (i, f) in out.iter().enumerate() {
            assert_eq!((f.dts, index(f)), (i as i64 * A, i % 500));
        }
    }

    #[test]
    fn a_loop_starts_at_the_first_video_keyframe() {
        // Five frames of an open GOP, then a keyframe at 5 × 3600; audio from 0.
        let v: Vec<(i64, i64, bool)> = video(0, 255, 1)
            .into_iter()
            .enumerate()
            .map(|(i, (d, p, _))| (d, p, i >= 5 && (i - 5) % 25 == 0))
            .collect();
        let frames = file(&v, &audio(0, 480), 1);
        let mut l = Looper::new(tracks(true, true), frames).expect("playable");
        assert_eq!((l.base_dts(), l.period()), (5 * V, 250 * V));
        let out = take_loops(&mut l, 3);
        assert!(out[0].keyframe && out[0].track == 0 && out[0].dts == 0 && index(&out[0]) == 5);
        let v = on(&out, 0);
        assert!(v.iter().all(|f| index(f) >= 5), "leading non-key frames never play");
        assert!(deltas(&v).iter().all(|d| *d == V));
        for (i, f) in v.iter().enumerate() {
            assert_eq!(f.keyframe, i % 25 == 0, "every loop starts with a keyframe");
        }
        let a = on(&out, 1);
        // Audio before the keyframe's time (18000 ticks = 9.4 frames) is not played.
        assert!(a.iter().all(|f| index(f) >= 10));
        assert_eq!(index(a[0]), 10);
        let offs: Vec<i64> = (0..480).map(|i| i as i64 * A - 5 * V).collect();
        check_follower(&a, A, l.period(), &offs);
    }

    #[test]
    fn nothing_playable_is_none() {
        assert!(Looper::new(tracks(false, false), file(&video(0, 10, 5), &[], 0)).is_none());
        assert!(Looper::new(tracks(true, true), Vec::new()).is_none());
        let no_key: Vec<(i64, i64, bool)> = video(0, 10, 5).into_iter().map(|(d, p, _)| (d, p, false)).collect();
        assert!(Looper::new(tracks(true, true), file(&no_key, &audio(0, 10), 1)).is_none());
        assert!(
            Looper::new(tracks(true, true), file(&[], &audio(0, 10), 1)).is_none(),
            "audio alone cannot play when the program has video"
        );
        // Frames of a track the file does not list are ignored.
        let l = Looper::new(tracks(true, false), file(&video(0, 10, 5), &audio(0, 10), 1)).expect("video plays");
        assert_eq!(l.step(1), None);
    }

    #[test]
    fn frames_going_back_on_their_track_are_dropped() {
        let mut frames = file(&video(0, 50, 25), &audio(0, 90), 1);
        frames.insert(30, raw(0, 999, 0, 0, true));
        frames.insert(60, raw(1, 999, 0, 0, true));
        let mut l = Looper::new(tracks(true, true), frames).expect("playable");
        let out = take_loops(&mut l, 3);
        assert!(out.iter().all(|f| index(f) != 999));
        assert!(deltas(&on(&out, 0)).iter().all(|d| *d == V));
    }

    #[test]
    fn a_splice_is_closed_up() {
        // Two 2-second files concatenated: the second starts an hour later.
        let mut frames = file(&video(0, 50, 25), &[], 1);
        frames.extend(file(&video(3600 * CLOCK_HZ, 50, 25), &[], 1));
        let mut l = Looper::new(tracks(true, false), frames).expect("playable");
        assert_eq!(l.period(), 49 * V + 1 + 49 * V + V);
        let out = take_loops(&mut l, 3);
        assert_eq!(out.len(), 300);
        assert!(out.windows(2).all(|w| w[1].dts > w[0].dts));
    }

    #[test]
    fn single_frame_tracks_use_a_default_step() {
        let mut t = tracks(true, true).to_vec();
        t[0].params.frame_rate = Some((50, 1));
        t[1].params.sample_rate = 48_000;
        let frames = file(&video(0, 1, 1), &audio(100, 1), 1);
        let mut l = Looper::new(Arc::from(t), frames).expect("playable");
        assert_eq!((l.period(), l.step(0), l.step(1)), (1800, Some(1800), Some(1800)));
        let out = take_loops(&mut l, 4);
        assert!(deltas(&on(&out, 0)).iter().all(|d| *d == 1800));
        assert!(deltas(&on(&out, 1)).iter().all(|d| *d == 1800));
    }

    /// Video (track 0), AAC (1), teletext (2) and SCTE-35 (3).
    fn sparse_tracks() -> Arc<[Track]> {
        let codecs = [Codec::H264, Codec::Aac, Codec::Teletext, Codec::Scte35];
        codecs
            .iter()
            .enumerate()
            .map(|(i, &codec)| Track {
                id: i as u16,
                codec,
                params: TrackParams::default(),
            })
            .collect()
    }

    /// Like [`file`] (audio on track 1), with sparse frames `(track, dts,
    /// pts)` (unwrapped) mixed in after video and audio on a DTS tie, in the
    /// order given. A sparse frame's payload index is its index in `sparse`.
    fn mixed(video: &[(i64, i64, bool)], audio: &[(i64, i64, bool)], sparse: &[(u16, i64, i64)]) -> Vec<Frame> {
        let mut all: Vec<(i64, u16, Frame)> = Vec::new();
        for (i, &(d, p, k)) in video.iter().enumerate() {
            all.push((d, 0, raw(0, i, d, p, k)));
        }
        for (i, &(d, p, k)) in audio.iter().enumerate() {
            all.push((d, 1, raw(1, i, d, p, k)));
        }
        for (i, &(t, d, p)) in sparse.iter().enumerate() {
            all.push((d, 2, raw(t, i, d, p, true)));
        }
        // A stable sort keeps the given order on a tie.
        all.sort_by_key(|(d, order, _)| (*d, *order));
        all.into_iter().map(|(_, _, f)| f).collect()
    }

    /// Output DTS of every sparse frame by its payload index, with its PTS−DTS.
    fn sparse_played(out: &[Frame], n: usize) -> Vec<Vec<(i64, i64)>> {
        let mut played = vec![Vec::new(); n];
        for f in out.iter().filter(|f| f.track >= 2) {
            played[index(f)].push((f.dts, f.pts - f.dts));
        }
        played
    }

    #[test]
    fn a_cue_plays_once_per_loop_at_its_splice_time() {
        // 10 s of video and audio; an OUT cue arriving at 3.5 s for a splice
        // at 5.5 s, an IN cue arriving at 8 s for 9.5 s, a teletext page at 9.9 s.
        let sparse = [(3, 315_000, 495_000), (3, 720_000, 855_000), (2, 891_000, 891_000)];
        let frames = mixed(&video(0, 250, 25), &audio(0, 470), &sparse);
        let mut l = Looper::new(sparse_tracks(), frames).expect("playable");
        assert_eq!((l.period(), l.step(2), l.step(3)), (250 * V, None, None));
        let out = take_loops(&mut l, 4);
        let played = sparse_played(&out, sparse.len());
        for (j, &(_, d, p)) in sparse.iter().enumerate() {
            let want: Vec<(i64, i64)> = (0..4).map(|k| (k * 250 * V + d, p - d)).collect();
            assert_eq!(played[j], want, "frame {j}: once per loop, in place");
        }
        assert!(out.windows(2).all(|w| w[0].dts <= w[1].dts), "DTS order");
    }

    #[test]
    fn a_sparse_frame_past_the_video_does_not_stretch_the_loop() {
        // A cue 0.5 s after the last video frame and one before the first
        // keyframe: neither is in the loop; the loop is the video's.
        let v: Vec<(i64, i64, bool)> = video(0, 60, 1)
            .into_iter()
            .map(|(d, p, _)| (d, p, d >= 10 * V && (d / V - 10) % 25 == 0))
            .collect();
        let sparse = [
            (3, 5 * V, 5 * V),
            (3, 20 * V, 20 * V),
            (3, 59 * V + 45_000, 59 * V + 45_000),
        ];
        let frames = mixed(&v, &audio(0, 100), &sparse);
        let without = mixed(&v, &audio(0, 100), &[]);
        let mut a = Looper::new(sparse_tracks(), frames).expect("playable");
        let mut b = Looper::new(sparse_tracks(), without).expect("playable");
        assert_eq!((a.base_dts(), a.period()), (b.base_dts(), b.period()));
        assert_eq!(a.period(), 50 * V);
        let out = take_loops(&mut a, 5);
        let played = sparse_played(&out, sparse.len());
        assert_eq!(played[0], vec![], "before the first keyframe: not in the loop");
        assert_eq!(
            played[1].iter().map(|x| x.0).collect::<Vec<_>>(),
            (0..5).map(|k| k * 50 * V + 10 * V).collect::<Vec<_>>()
        );
        assert_eq!(played[2], vec![], "after the loop's end: not in the loop");
        let dense: Vec<Frame> = out.into_iter().filter(|f| f.track < 2).collect();
        assert_eq!(dense, take_loops(&mut b, 5));
    }

    #[test]
    fn sparse_frames_sharing_a_dts_both_play_and_going_back_is_dropped() {
        // Two cues after the same PCR, then one from before them.
        let sparse = [(3, 90_000, 180_000), (3, 90_000, 270_000)];
        let mut frames = mixed(&video(0, 50, 25), &audio(0, 94), &sparse);
        let second = frames.iter().position(|f| f.track == 3 && index(f) == 1).expect("cue");
        frames.insert(second + 1, raw(3, 2, 45_000, 45_000, true));
        let mut l = Looper::new(sparse_tracks(), frames).expect("playable");
        let out = take_loops(&mut l, 3);
        let cues: Vec<(usize, i64, i64)> = on(&out, 3).iter().map(|f| (index(f), f.dts, f.pts)).collect();
        let p = 50 * V;
        let want: Vec<(usize, i64, i64)> = (0..3)
            .flat_map(|k| {
                [
                    (0, k * p + 90_000, k * p + 180_000),
                    (1, k * p + 90_000, k * p + 270_000),
                ]
            })
            .collect();
        assert_eq!(cues, want);
    }

    #[test]
    fn a_sparse_track_never_times_the_loop() {
        // A program listing its cue PID and teletext before its only audio.
        let t: Arc<[Track]> = [Codec::Scte35, Codec::Teletext, Codec::Aac]
            .iter()
            .enumerate()
            .map(|(i, &codec)| Track {
                id: i as u16,
                codec,
                params: TrackParams::default(),
            })
            .collect();
        let mut frames = vec![raw(0, 0, 0, 90_000, true), raw(1, 1, 500, 500, true)];
        frames.extend(
            audio(1000, 50)
                .iter()
                .enumerate()
                .map(|(i, &(d, p, k))| raw(2, i, d, p, k)),
        );
        let mut l = Looper::new(t.clone(), frames.clone()).expect("audio plays");
        assert_eq!((l.timing_track(), l.base_dts(), l.period()), (2, 1000, 50 * A));
        assert_eq!((l.step(0), l.step(1), l.step(2)), (None, None, Some(A)));
        let out = take_loops(&mut l, 3);
        assert_eq!(out.iter().filter(|f| f.track == 2).count(), 150);
        assert!(
            out.iter().all(|f| f.track == 2),
            "frames from before the audio do not play"
        );
        // Subtitles and cues alone are nothing to loop.
        let sparse_only: Vec<Frame> = frames.into_iter().filter(|f| f.track < 2).collect();
        assert!(Looper::new(Arc::from(t[..2].to_vec()), sparse_only).is_none());
    }

    #[test]
    fn a_stray_sparse_timestamp_does_not_splice_the_file() {
        // A teletext PES stamped an hour off in the middle of the file: video
        // and audio play as without it, and it sits one tick after the newest
        // frame before it.
        let (v, a) = (video(0, 50, 25), audio(0, 94));
        let clean = file(&v, &a, 1);
        let mut frames = clean.clone();
        let at = frames.iter().position(|f| f.dts >= 20 * V).expect("mid-file");
        let newest = frames[..at].iter().map(|f| f.dts).max().expect("frames before");
        frames.insert(at, raw(2, 0, 3600 * CLOCK_HZ, 3600 * CLOCK_HZ + 10, true));
        let mut a_loop = Looper::new(sparse_tracks(), frames).expect("playable");
        let mut b_loop = Looper::new(sparse_tracks(), clean).expect("playable");
        assert_eq!(a_loop.period(), b_loop.period());
        let out = take_loops(&mut a_loop, 2);
        let p = a_loop.period();
        let text: Vec<(i64, i64)> = on(&out, 2).iter().map(|f| (f.dts, f.pts - f.dts)).collect();
        assert_eq!(text, vec![(newest + 1, 10), (p + newest + 1, 10)]);
        let dense: Vec<Frame> = out.into_iter().filter(|f| f.track < 2).collect();
        assert_eq!(dense, take_loops(&mut b_loop, 2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Over 1000 loops of any regular file: every track's DTS deltas all
        /// equal its step (no gap or overlap at the joins), PTS−DTS is kept,
        /// and audio played from the file stays within half a frame of its
        /// place on the video clock.
        #[test]
        fn joins_are_seamless_and_audio_stays_in_sync(
            start in 0i64..TS_WRAP,
            video_step in proptest::sample::select(vec![1800i64, 3000, 3003, 3600]),
            video_n in 1usize..40,
            gop in 1usize..30,
            lead in 0usize..4,
            cts_frames in 0i64..3,
            audio_start in -20_000i64..20_000,
            audio_pct in 50i64..150,
            rate in proptest::sample::select(vec![48_000i64, 44_100, 32_000]),
        ) {
            let vn = lead + video_n;
            let v: Vec<(i64, i64, bool)> = (0..vn)
                .map(|i| {
                    let d = i as i64 * video_step;
                    (d, d + cts_frames * video_step, i >= lead && (i - lead) % gop == 0)
                })
                .collect();
            let video_len = video_n as i64 * video_step;
            // AAC frames of 1024 samples: 44.1 kHz steps alternate 2089/2090.
            let audio_n = (video_len * audio_pct / 100 * rate / (1024 * CLOCK_HZ)).max(1) as usize;
            let a: Vec<(i64, i64, bool)> = (0..audio_n as i64)
                .map(|j| {
                    let d = audio_start + j * 1024 * CLOCK_HZ / rate;
                    (d, d, true)
                })
                .collect();
            let frames: Vec<Frame> = file(&v, &a, 1)
                .into_iter()
                .map(|mut f| {
                    f.dts = (f.dts + start).rem_euclid(TS_WRAP);
                    f.pts = (f.pts + start).rem_euclid(TS_WRAP);
                    f
                })
                .collect();
            let key = lead as i64 * video_step;
            let mut l = Looper::new(tracks(true, true), frames).expect("playable");
            prop_assert_eq!(l.base_dts(), (start + key).rem_euclid(TS_WRAP));
            let step = l.step(0).expect("video plays");
            if video_n > 1 {
                prop_assert_eq!(step, video_step);
            }
            prop_assert_eq!(l.period(), (video_n as i64 - 1) * video_step + step);
            let out = take_loops(&mut l, 1000);
            let vo = on(&out, 0);
            prop_assert_eq!(vo.len(), 1000 * video_n);
            prop_assert!(deltas(&vo).iter().all(|d| *d == step));
            prop_assert!(vo.iter().all(|f| f.pts - f.dts == cts_frames * video_step));
            if let Some(astep) = l.step(1) {
                let offs: Vec<i64> = a.iter().map(|(d, _, _)| d - key).collect();
                let ao = on(&out, 1);
                prop_assert!(ao.len() as i64 > 1000 * video_len / astep / 2);
                check_follower(&ao, astep, l.period(), &offs);
                prop_assert!(ao.iter().all(|f| f.pts == f.dts));
            }
        }

        /// Subtitle and data frames mixed anywhere into video and audio: each
        /// frame inside the loop's window plays exactly once per loop at
        /// k·P + its offset, with its own PTS−DTS (ties kept); the others
        /// never play; video and audio come out exactly as without them.
        #[test]
        fn sparse_frames_play_once_per_loop_with_their_timing(
            start in 0i64..TS_WRAP,
            video_n in 1usize..60,
            gop in 1usize..30,
            lead in 0usize..4,
            audio_start in -20_000i64..20_000,
            audio_n in 1usize..150,
            sparse in proptest::collection::vec(
                (2u16..4, -300i64..1300, any::<bool>(), -CLOCK_HZ..20 * CLOCK_HZ),
                0..24,
            ),
            loops in 1i64..12,
        ) {
            let v: Vec<(i64, i64, bool)> = (0..lead + video_n)
                .map(|i| {
                    let d = i as i64 * V;
                    (d, d + V, i >= lead && (i - lead) % gop == 0)
                })
                .collect();
            let a: Vec<(i64, i64, bool)> = (0..audio_n as i64).map(|j| (audio_start + j * A, audio_start + j * A, true)).collect();
            let key = lead as i64 * V;
            let span = (lead + video_n) as i64 * V;
            // Positions in per mille of the video's span, in file order;
            // `tie` puts a frame at the DTS of the one before it.
            let mut s: Vec<(u16, i64, i64)> = Vec::new();
            let mut positions: Vec<(i64, bool, u16, i64)> = sparse
                .iter()
                .map(|&(t, pos, tie, cts)| (span * pos / 1000, tie, t, cts))
                .collect();
            positions.sort_by_key(|x| x.0);
            for (d, tie, t, cts) in positions {
                let d = match s.last() {
                    Some(&(_, prev, _)) if tie => prev,
                    _ => d,
                };
                s.push((t, d, d + cts));
            }
            let shift = |frames: Vec<Frame>| -> Vec<Frame> {
                frames
                    .into_iter()
                    .map(|mut f| {
                        f.dts = (f.dts + start).rem_euclid(TS_WRAP);
                        f.pts = (f.pts + start).rem_euclid(TS_WRAP);
                        f
                    })
                    .collect()
            };
            let mut with = Looper::new(sparse_tracks(), shift(mixed(&v, &a, &s))).expect("playable");
            let mut without = Looper::new(sparse_tracks(), shift(mixed(&v, &a, &[]))).expect("playable");
            let p = with.period();
            prop_assert_eq!((with.base_dts(), p), (without.base_dts(), without.period()));
            prop_assert_eq!(p, video_n as i64 * V);
            prop_assert_eq!((with.step(2), with.step(3)), (None, None));
            let out = take_loops(&mut with, loops);
            prop_assert!(out.windows(2).all(|w| w[0].dts <= w[1].dts), "DTS order");
            let played = sparse_played(&out, s.len());
            for (j, &(_, d, pts)) in s.iter().enumerate() {
                let off = d - key;
                let want: Vec<(i64, i64)> = if (0..p).contains(&off) {
                    (0..loops).map(|k| (k * p + off, pts - d)).collect()
                } else {
                    Vec::new()
                };
                prop_assert_eq!(&played[j], &want, "sparse frame {} at {}", j, off);
            }
            let dense: Vec<Frame> = out.into_iter().filter(|f| f.track < 2).collect();
            prop_assert_eq!(dense, take_loops(&mut without, loops));
        }
    }
}

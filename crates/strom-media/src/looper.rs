//! Looper: turns one demuxed file into an endless, seamless run of frames, for
//! inputs that play a file forever (a backup slate, the built-in demo).
//!
//! The file is handed over once, as the demuxer produced it: its track list
//! and its frames in decode order with raw 33-bit DTS/PTS, which may wrap
//! inside the file. [`Looper`] then yields frames forever. Every time here is
//! in 90 kHz ticks.
//!
//! Invariants of the output:
//! - Timestamps are unwrapped and relative to the start of the loop: the first
//!   frame is the timing track's first keyframe, at DTS 0. The caller adds a
//!   base (e.g. [`Looper::base_dts`]), wraps to 33 bits and paces by DTS.
//! - Frames come out in DTS order (the timing track first on a tie), and per
//!   track DTS strictly increases.
//! - The timing track is the first video track, else the first track. Its
//!   frames keep their spacing from the file, and loop k is loop 0 shifted by
//!   k·P. The period P is the track's last DTS plus its step (the median DTS
//!   delta, so one long frame at the end does not stretch the loop). Across the
//!   join the timing track advances by exactly one step: no gap, no overlap, so
//!   a file whose GOPs divide its length cuts into equal segments for ever.
//!   PTS−DTS offsets (B-frames) are kept.
//! - Every other track (audio) is contiguous at its own step (its median DTS
//!   delta): each frame starts where the previous one ended. Each frame of the
//!   file belongs at k·P + its offset in the file on the timing clock; a frame
//!   that would run ahead of that by more than half a step is skipped, and
//!   where the track would fall behind by more than half a step the previous
//!   frame's data is played again. So every frame played from the file is
//!   within half a step of its place, however many loops have run. A second
//!   video track gets the same treatment, which a decoder may show at the join.
//! - With a video timing track, a loop starts at its first keyframe: frames
//!   before it are not played, nor other tracks' frames from before its time.
//!   Each other track plays one period of the file from its first frame, so a
//!   track longer than the video does not run on into the next loop and one
//!   shorter than the video is filled by repeats.
//!
//! Files are taken as they are: frames that do not move forward on their track
//! are dropped, and a jump of more than [`MAX_JUMP`] between consecutive frames
//! (files concatenated with `cat`) is closed up so the file plays as one run.

use crate::frame::{Frame, Track, TrackKind, CLOCK_HZ};
use crate::ts::{wrap_delta, TS_WRAP};
use bytes::Bytes;
use std::sync::Arc;

/// A DTS step between consecutive frames of the file (any track, decode
/// order) larger than this, forward or back, is a splice rather than time
/// passing: the frame after it is placed one tick after the newest frame
/// before it. Ten seconds is far more than audio and video of one program are
/// ever interleaved apart.
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

/// The endless frame run of one track.
#[derive(Debug)]
struct Lane {
    track: u16,
    /// One period of the file: never empty, offsets strictly increasing and
    /// spanning less than the period.
    frames: Vec<Source>,
    /// DTS step of this track's output.
    step: i64,
    /// False for the timing track, which plays the file's own offsets.
    follows: bool,
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
    fn new(track: u16, frames: Vec<Source>, step: i64, follows: bool, period: i64) -> Option<Lane> {
        let first = frames.first()?;
        let (slot, placeholder) = (first.off, out_frame(track, first.off, first));
        let mut lane = Lane {
            track,
            slot,
            pending: placeholder,
            frames,
            step,
            follows,
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
        if !self.follows {
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
    /// Returns `None` when there is nothing playable: no tracks, no frame on
    /// the timing track, or a video timing track without a keyframe.
    pub fn new(tracks: Arc<[Track]>, frames: impl IntoIterator<Item = Frame>) -> Option<Looper> {
        let timing_idx = tracks
            .iter()
            .position(|t| t.kind() == TrackKind::Video)
            .or_else(|| (!tracks.is_empty()).then_some(0))?;
        let needs_key = tracks[timing_idx].kind() == TrackKind::Video;

        // Unwrap the file onto one clock, frame to frame in decode order.
        // Each entry: track index, unwrapped DTS, raw DTS, the frame.
        let mut placed: Vec<(usize, i64, i64, Frame)> = Vec::new();
        let mut prev: Option<(i64, i64)> = None;
        let mut newest = 0i64;
        for f in frames {
            let Some(t) = tracks.iter().position(|t| t.id == f.track) else {
                continue;
            };
            let raw = f.dts.rem_euclid(TS_WRAP);
            let u = match prev {
                None => 0,
                Some((prev_raw, prev_u)) => {
                    let d = wrap_delta(prev_raw, raw);
                    if d.abs() > MAX_JUMP {
                        newest.saturating_add(1)
                    } else {
                        prev_u.saturating_add(d)
                    }
                }
            };
            newest = if prev.is_none() { u } else { newest.max(u) };
            prev = Some((raw, u));
            placed.push((t, u, raw, f));
        }

        // The timing track: from its first keyframe, strictly increasing.
        let mut zero: Option<(i64, i64)> = None;
        let mut timing_frames = Vec::new();
        let mut last_u = i64::MIN;
        for (t, u, raw, f) in &placed {
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
        lanes.extend(Lane::new(timing, timing_frames, timing_step, false, period));
        for (idx, track) in tracks.iter().enumerate() {
            if idx == timing_idx {
                continue;
            }
            // From the loop's start, strictly increasing, one period long.
            let mut own: Vec<Source> = Vec::new();
            for (_, u, raw, f) in placed.iter().filter(|p| p.0 == idx) {
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
            lanes.extend(Lane::new(track.id, own, step, true, period));
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

    /// Id of the timing track: the first video track, else the first track.
    pub fn timing_track(&self) -> u16 {
        self.timing
    }

    /// DTS step in ticks between consecutive output frames of `track`: the
    /// median DTS delta of its frames in the file. On the timing track it is
    /// the step across the join (inside the loop the file's spacing is kept);
    /// on every other track it is every step. `None` for a track with no
    /// playable frame.
    pub fn step(&self, track: u16) -> Option<i64> {
        self.lanes.iter().find(|l| l.track == track).map(|l| l.step)
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

/// Step of a track with a single frame: its frame rate for video, 1024
/// samples (one AAC frame) for audio with a known sample rate, else 1/25 s.
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
    }
}

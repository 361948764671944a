//! Fuzz target for the file looper.
//!
//! The bytes describe a file: byte 0 picks the track layout (bit 3 adds
//! subtitle and SCTE-35 tracks, before or after the others), bytes 1..5 the
//! first raw DTS, then every 4 bytes one frame (track, flags, DTS step). Steps
//! are small, large or jumps of up to 2^32 ticks, and timestamps wrap at 2^33,
//! so files with splices, wraps and frames going back are all reached. A
//! sparse frame's PTS may be seconds after its DTS, like a cue's splice time.
//! Each frame's payload is its index in the file.
//!
//! The looper is run for a bounded number of frames. Checked after every frame:
//! - it never panics, and the first frame is the timing track's at DTS 0
//!   (a keyframe when the timing track is video), never a sparse track's;
//! - DTS never goes back overall and strictly increases per video/audio
//!   track (never decreases on a sparse one);
//! - every other video/audio track steps by exactly its `step`; sparse
//!   tracks have none;
//! - the timing track repeats loop 0 shifted by k·period, PTS−DTS included;
//! - every sparse frame plays once per loop, at the same offset in
//!   `[0, period)` of loop k each time (never filled, repeated or re-timed);
//! - when the file has no splice, every frame played from the file on another
//!   video/audio track is within half a step of its place on the timing clock
//!   (mod period), every sparse frame is at exactly its place (its offset in
//!   the file from the loop's first frame), and at the end every sparse frame
//!   of the loop's window has played in every loop the output has passed.

#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strom_media::looper::{Looper, MAX_JUMP};
use strom_media::ts::{wrap_delta, TS_WRAP};
use strom_media::{Codec, Frame, Track, TrackKind, TrackParams, CLOCK_HZ};

/// Output frames checked per input.
const MAX_OUT: usize = 4000;
/// Frames read per input.
const MAX_FRAMES: usize = 2000;

fn tracks(layout: u8) -> Arc<[Track]> {
    let mut codecs: Vec<Codec> = match layout % 4 {
        0 => vec![Codec::H264, Codec::Aac],
        1 => vec![Codec::Aac],
        2 => vec![Codec::H265, Codec::Aac, Codec::Ac3],
        _ => vec![Codec::Aac, Codec::H264],
    };
    if layout & 8 != 0 {
        if layout & 1 != 0 {
            codecs.insert(0, Codec::Scte35);
            codecs.push(Codec::Teletext);
        } else {
            codecs.extend([Codec::DvbSubtitle, Codec::Scte35]);
        }
    }
    let mut params = TrackParams::default();
    if layout & 4 != 0 {
        params.frame_rate = Some((u32::from(layout >> 4), 1));
        params.sample_rate = u32::from(layout) * 300;
    }
    codecs
        .iter()
        .enumerate()
        .map(|(i, &codec)| Track {
            id: i as u16,
            codec,
            params: params.clone(),
        })
        .collect()
}

fn is_sparse(kind: TrackKind) -> bool {
    matches!(kind, TrackKind::Subtitle | TrackKind::Data)
}

fn index(f: &Frame) -> usize {
    let b: [u8; 4] = f.data[..4].try_into().expect("payload is an index");
    u32::from_le_bytes(b) as usize
}

fuzz_target!(|data: &[u8]| {
    let Some((&layout, rest)) = data.split_first() else {
        return;
    };
    let Some((start, rest)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let tracks = tracks(layout);
    let n_tracks = tracks.len() as u16;

    // The file, and each frame's unwrapped DTS as the test sees it.
    let mut raw = i64::from(u32::from_le_bytes(*start)) << 1;
    let (mut u, mut frames, mut unwrapped) = (0i64, Vec::new(), Vec::new());
    let sparse_track = |t: u16| tracks.get(usize::from(t)).is_some_and(|t| is_sparse(t.kind()));
    // Video/audio frames only: a splice is a jump between two of them.
    let mut last_known: Option<i64> = None;
    let mut spliced = false;
    for (i, rec) in rest.chunks_exact(4).take(MAX_FRAMES).enumerate() {
        // One more than the track count: frames of an unlisted track.
        let track = u16::from(rec[0]) % (n_tracks + 1);
        let flags = rec[1];
        let step = i64::from(i16::from_le_bytes([rec[2], rec[3]]));
        let step = match (flags >> 3) & 3 {
            0 => step,
            1 => step * 16,
            2 => step * 1024,
            _ => step << 17,
        };
        raw = (raw + step).rem_euclid(TS_WRAP);
        u += step;
        let mut cts = i64::from((flags >> 1) & 3) * 1800 - i64::from(flags >> 7) * 900;
        if sparse_track(track) {
            cts += i64::from((flags >> 5) & 3) * 3 * CLOCK_HZ;
        }
        frames.push(Frame {
            track,
            dts: raw,
            pts: (raw + cts).rem_euclid(TS_WRAP),
            keyframe: flags & 1 != 0,
            data: (i as u32).to_le_bytes().to_vec().into(),
        });
        unwrapped.push(u);
        if track < n_tracks && !sparse_track(track) {
            if let Some(prev) = last_known {
                spliced |= (u - prev).abs() > MAX_JUMP;
            }
            last_known = Some(u);
        }
    }
    // Where each sparse frame is on the unwrapped clock: against the newest
    // video/audio frame before it in decode order (the first one, for sparse
    // frames before every video/audio frame); one tick after the newest
    // video/audio frame when further than MAX_JUMP from it; nowhere when
    // that happens before any. Only used when the file has no splice.
    let mut sparse_u: Vec<Option<i64>> = vec![None; frames.len()];
    let mut reference: Option<(i64, i64)> = None;
    let mut newest = i64::MIN;
    let mut early: Vec<usize> = Vec::new();
    for (j, f) in frames.iter().enumerate() {
        if f.track >= n_tracks {
            continue;
        }
        if !sparse_track(f.track) {
            if reference.is_none() {
                for &e in &early {
                    let d: i64 = wrap_delta(f.dts, frames[e].dts);
                    sparse_u[e] = (d.abs() <= MAX_JUMP).then_some(unwrapped[j] + d);
                }
            }
            reference = Some((f.dts, unwrapped[j]));
            newest = newest.max(unwrapped[j]);
            continue;
        }
        match reference {
            None => early.push(j),
            Some((ref_raw, ref_u)) => {
                let d = wrap_delta(ref_raw, f.dts);
                sparse_u[j] = Some(if d.abs() <= MAX_JUMP { ref_u + d } else { newest + 1 });
            }
        }
    }
    let source = frames.clone();

    let Some(mut looper) = Looper::new(tracks.clone(), frames) else {
        return;
    };
    assert_eq!(looper.tracks(), &tracks);
    assert!((0..TS_WRAP).contains(&looper.base_dts()));
    let period = looper.period();
    assert!(period > 0);
    let timing = looper.timing_track();
    let timing_is_video = tracks[usize::from(timing)].kind() == TrackKind::Video;
    assert!(!sparse_track(timing));
    let steps: Vec<Option<i64>> = (0..n_tracks).map(|t| looper.step(t)).collect();

    let mut zero = None;
    let mut last_dts = i64::MIN;
    let mut last: HashMap<u16, (i64, usize)> = HashMap::new();
    let mut loop0: HashMap<i64, (usize, i64)> = HashMap::new();
    // Sparse frames played: (times played, offset in the loop).
    let mut sparse_seen: HashMap<usize, (i64, i64)> = HashMap::new();
    for f in looper.by_ref().take(MAX_OUT) {
        let j = index(&f);
        assert!(j < source.len());
        assert_eq!(source[j].track, f.track);
        assert_eq!(source[j].keyframe, f.keyframe);
        let cts = wrap_delta(source[j].dts, source[j].pts);
        assert_eq!(f.pts - f.dts, cts);
        let zero = *zero.get_or_insert_with(|| {
            assert_eq!((f.track, f.dts), (timing, 0));
            assert!(f.keyframe || !timing_is_video);
            unwrapped[j]
        });
        assert!(f.dts >= last_dts, "DTS order");
        last_dts = f.dts;
        let prev = last.insert(f.track, (f.dts, j));
        let sparse = sparse_track(f.track);
        if let Some((prev_dts, _)) = prev {
            assert!(
                f.dts > prev_dts || (sparse && f.dts == prev_dts),
                "track {} went back",
                f.track
            );
        }

        if sparse {
            assert_eq!(steps[usize::from(f.track)], None, "a sparse track has no step");
            let (k, off) = (f.dts.div_euclid(period), f.dts.rem_euclid(period));
            let seen = sparse_seen.entry(j).or_insert((0, off));
            assert_eq!(*seen, (k, off), "sparse frame {j}: once per loop, at one offset");
            seen.0 += 1;
            if !spliced {
                let at = sparse_u[j].map(|u| u - zero);
                assert_eq!(at, Some(off), "sparse frame {j} at its place");
            }
            continue;
        }

        if f.track == timing {
            let off = f.dts.rem_euclid(period);
            if f.dts < period {
                loop0.insert(off, (j, cts));
            } else {
                assert_eq!(loop0.get(&off), Some(&(j, cts)), "loop k is loop 0 shifted");
            }
            continue;
        }
        let step = steps[usize::from(f.track)].expect("a track that plays has a step");
        assert!(step > 0 && step <= period);
        let Some((prev_dts, prev_j)) = prev else {
            continue;
        };
        assert_eq!(f.dts - prev_dts, step, "track {} is contiguous", f.track);
        if !spliced && prev_j != j {
            let r = (f.dts - (unwrapped[j] - zero)).rem_euclid(period);
            assert!(
                2 * r.min(period - r) <= step,
                "frame {j} off its place by {r} of {period}"
            );
        }
    }

    // Every sparse frame of the window, bar those going back on their
    // track, has played in each loop whose time for it the output passed.
    let Some(zero) = zero else {
        return;
    };
    if spliced {
        return;
    }
    let mut kept: HashMap<u16, i64> = HashMap::new();
    for (j, f) in source.iter().enumerate() {
        if f.track >= n_tracks || !sparse_track(f.track) {
            continue;
        }
        let Some(off) = sparse_u[j].map(|u| u - zero) else {
            continue;
        };
        if !(0..period).contains(&off) || kept.get(&f.track).is_some_and(|&k| off < k) {
            continue;
        }
        kept.insert(f.track, off);
        // Loops k with k·period + off before the last DTS out must have played
        // it; one exactly at that DTS may still be pending.
        let before = if last_dts > off {
            (last_dts - off - 1).div_euclid(period) + 1
        } else {
            0
        };
        let by = if last_dts >= off {
            (last_dts - off).div_euclid(period) + 1
        } else {
            0
        };
        let played = sparse_seen.get(&j).map_or(0, |s| s.0);
        assert!(
            (before..=by).contains(&played),
            "sparse frame {j} at {off} played {played} times, {before} due before {last_dts}"
        );
    }
});

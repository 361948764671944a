//! Fuzz target for the file looper.
//!
//! The bytes describe a file: byte 0 picks the track layout, bytes 1..5 the
//! first raw DTS, then every 4 bytes one frame (track, flags, DTS step). Steps
//! are small, large or jumps of up to 2^32 ticks, and timestamps wrap at 2^33,
//! so files with splices, wraps and frames going back are all reached. Each
//! frame's payload is its index in the file.
//!
//! The looper is run for a bounded number of frames. Checked after every frame:
//! - it never panics, and the first frame is the timing track's at DTS 0
//!   (a keyframe when the timing track is video);
//! - DTS never goes back overall and strictly increases per track;
//! - every other track steps by exactly its `step`;
//! - the timing track repeats loop 0 shifted by k·period, PTS−DTS included;
//! - when the file has no splice, every frame played from the file on another
//!   track is within half a step of its place on the timing clock (mod period).

#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strom_media::looper::{Looper, MAX_JUMP};
use strom_media::ts::{wrap_delta, TS_WRAP};
use strom_media::{Codec, Frame, Track, TrackKind, TrackParams};

/// Output frames checked per input.
const MAX_OUT: usize = 4000;
/// Frames read per input.
const MAX_FRAMES: usize = 2000;

fn tracks(layout: u8) -> Arc<[Track]> {
    let codecs: &[Codec] = match layout % 4 {
        0 => &[Codec::H264, Codec::Aac],
        1 => &[Codec::Aac],
        2 => &[Codec::H265, Codec::Aac, Codec::Ac3],
        _ => &[Codec::Aac, Codec::H264],
    };
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
        let cts = i64::from((flags >> 1) & 3) * 1800 - i64::from(flags >> 7) * 900;
        frames.push(Frame {
            track,
            dts: raw,
            pts: (raw + cts).rem_euclid(TS_WRAP),
            keyframe: flags & 1 != 0,
            data: (i as u32).to_le_bytes().to_vec().into(),
        });
        unwrapped.push(u);
        if track < n_tracks {
            if let Some(prev) = last_known {
                spliced |= (u - prev).abs() > MAX_JUMP;
            }
            last_known = Some(u);
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
    let steps: Vec<Option<i64>> = (0..n_tracks).map(|t| looper.step(t)).collect();

    let mut zero = None;
    let mut last_dts = i64::MIN;
    let mut last: HashMap<u16, (i64, usize)> = HashMap::new();
    let mut loop0: HashMap<i64, (usize, i64)> = HashMap::new();
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
        if let Some((prev_dts, _)) = prev {
            assert!(f.dts > prev_dts, "track {} went back", f.track);
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
});

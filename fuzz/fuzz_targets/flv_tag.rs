//! Fuzz target for FLV tag bodies into tracks and frames (`FlvIngest`).
//!
//! The first byte configures the run: bits 0–1 what `onMetaData` announced
//! (0: nothing, 1: video, 2: audio, 3: both), bit 2 whether events are
//! pulled after every tag (else only at the end, so the queue caps work).
//! The rest is a sequence of tags, each: a flags byte (bit 0 video, else
//! audio; bit 1 a 32-bit absolute timestamp follows, else a 16-bit step
//! forward from the previous one; bit 2 the step goes backwards), the
//! timestamp field, a 16-bit body length and the body (cut at the end of
//! the input).
//!
//! Checked after every tag: memory stays within the configured caps. Of
//! the events: a Tracks event precedes every frame and has the frame's
//! track, ids are indices, timestamps are 33-bit with PTS never before DTS,
//! audio frames are keyframes, video frames are Annex B access units whose
//! keyframes carry every kind of parameter set their codec needs. After
//! `finish` nothing is held and every counted frame was pulled or counted
//! as dropped for the queue.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strom_media::codec::nal::nal_units;
use strom_media::codec::params::param_kind;
use strom_media::flv::{FlvConfig, FlvIngest, TagKind};
use strom_media::ts::demux::DemuxEvent;
use strom_media::ts::{wrap_delta, TS_WRAP};
use strom_media::{Codec, Track, TrackKind};

const CFG: FlvConfig = FlvConfig {
    probe_ms: 1000,
    max_held_frames: 64,
    max_held_bytes: 64 << 10,
    max_frame_bytes: 32 << 10,
};

#[derive(Default)]
struct Checker {
    tracks: Option<Arc<[Track]>>,
    frames: u64,
}

impl Checker {
    fn drain(&mut self, f: &mut FlvIngest) {
        while let Some(e) = f.pull() {
            match e {
                DemuxEvent::Tracks(t) => {
                    assert!(!t.is_empty() && t.len() <= 2);
                    for (i, tr) in t.iter().enumerate() {
                        assert_eq!(usize::from(tr.id), i);
                    }
                    self.tracks = Some(t);
                }
                DemuxEvent::Frame(fr) => {
                    let tracks = self.tracks.as_ref().expect("Tracks before the first frame");
                    let track = tracks.get(usize::from(fr.track)).expect("frame's track in the set");
                    assert!((0..TS_WRAP).contains(&fr.dts) && (0..TS_WRAP).contains(&fr.pts));
                    assert!(wrap_delta(fr.dts, fr.pts) >= 0, "pts before dts");
                    assert!(!fr.data.is_empty());
                    assert!(fr.data.len() <= CFG.max_frame_bytes);
                    match track.kind() {
                        TrackKind::Video => {
                            assert_eq!(&fr.data[..4], &[0, 0, 0, 1]);
                            if fr.keyframe {
                                let mut seen = [false; 3];
                                for n in nal_units(&fr.data) {
                                    if let Some(k) = param_kind(track.codec, n) {
                                        seen[k] = true;
                                    }
                                }
                                assert!(seen[1] && seen[2] && (track.codec != Codec::H265 || seen[0]));
                            }
                        }
                        _ => assert!(fr.keyframe),
                    }
                    self.frames += 1;
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, mut rest)) = data.split_first() else {
        return;
    };
    let mut f = FlvIngest::new(CFG);
    match head & 0x03 {
        1 => f.expect(true, false),
        2 => f.expect(false, true),
        3 => f.expect(true, true),
        _ => {}
    }
    let pull = head & 0x04 != 0;
    let mut c = Checker::default();
    let mut ts = 0u32;
    let mut tags = 0u64;
    while let Some((&flags, r)) = rest.split_first() {
        rest = r;
        if flags & 0x02 != 0 {
            let Some((t, r)) = rest.split_first_chunk::<4>() else {
                break;
            };
            ts = u32::from_be_bytes(*t);
            rest = r;
        } else {
            let Some((d, r)) = rest.split_first_chunk::<2>() else {
                break;
            };
            let d = u32::from(u16::from_be_bytes(*d));
            ts = if flags & 0x04 != 0 {
                ts.wrapping_sub(d)
            } else {
                ts.wrapping_add(d)
            };
            rest = r;
        }
        let Some((len, r)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes(*len)).min(r.len());
        let (body, r) = r.split_at(len);
        rest = r;
        let kind = if flags & 0x01 != 0 {
            TagKind::Video
        } else {
            TagKind::Audio
        };
        f.push(kind, ts, body.to_vec().into());
        tags += 1;
        assert_eq!(f.stats().tags, tags);
        // Held: at most the caps plus the frame that reached them; queued:
        // at most twice the hold plus a frame.
        assert!(f.buffered_bytes() <= 3 * CFG.max_held_bytes + 2 * CFG.max_frame_bytes);
        if pull {
            c.drain(&mut f);
        }
    }
    f.finish();
    c.drain(&mut f);
    assert_eq!(f.pull(), None);
    assert_eq!(f.buffered_bytes(), 0, "finish releases everything held");
    assert_eq!(f.stats().frames, c.frames, "every counted frame was pulled");
});

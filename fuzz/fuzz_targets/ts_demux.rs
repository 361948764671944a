//! Fuzz target for the MPEG-TS demuxer.
//!
//! The first two bytes configure the run; the rest is the TS. The top three
//! bits of the first byte pick the program (0..=3: the default, 4: program
//! 1, 5: 101, 6: 202, 7: the second byte), both bytes seed the chunk sizes.
//! After every push all events are pulled and checked: a Tracks event
//! precedes every frame and the frame's track is in it, timestamps are
//! 33-bit, audio, subtitle and data frames are keyframes, SCTE-35 frames are
//! whole sections with a valid CRC, counters match what was pushed, the last
//! error lies in the pushed bytes, and the listings stay bounded. After
//! `flush` nothing is held and every counted frame was pulled. Finally the
//! same bytes pushed in one piece must give exactly the same events and
//! counters (chunking is invisible).

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strom_media::ts::crc::crc32_mpeg2;
use strom_media::ts::demux::{DemuxEvent, Demuxer, MAX_PROGRAMS, MAX_TRACKS};
use strom_media::{Codec, Track, TrackKind};

const WRAP: i64 = 1 << 33;

#[derive(Default)]
struct Checker {
    tracks: Option<Arc<[Track]>>,
    frames: u64,
    events: Vec<DemuxEvent>,
}

impl Checker {
    fn drain(&mut self, d: &mut Demuxer) {
        while let Some(e) = d.pull() {
            match &e {
                DemuxEvent::Tracks(t) => {
                    assert!(t.len() <= MAX_TRACKS);
                    for (i, tr) in t.iter().enumerate() {
                        assert_eq!(usize::from(tr.id), i);
                    }
                    self.tracks = Some(t.clone());
                }
                DemuxEvent::Frame(f) => {
                    let tracks = self.tracks.as_ref().expect("Tracks before the first frame");
                    let track = tracks.get(usize::from(f.track)).expect("frame track in the set");
                    assert!((0..WRAP).contains(&f.pts), "pts {}", f.pts);
                    assert!((0..WRAP).contains(&f.dts), "dts {}", f.dts);
                    match track.kind() {
                        TrackKind::Video => assert!(!f.data.is_empty()),
                        TrackKind::Audio | TrackKind::Subtitle | TrackKind::Data => assert!(f.keyframe),
                    }
                    if track.codec == Codec::Scte35 {
                        assert_eq!(f.data.first(), Some(&0xFC));
                        assert_eq!(crc32_mpeg2(&f.data), 0);
                    }
                    self.frames += 1;
                }
            }
            self.events.push(e);
        }
    }
}

/// Invariants of the counters and listings after `pos` bytes were pushed.
fn check_state(d: &mut Demuxer, pos: usize) {
    let s = d.stats();
    assert_eq!(s.bytes, pos as u64);
    assert!(s.packets * 188 <= pos as u64);
    if let Some(e) = s.last_error {
        assert!(e.offset <= pos as u64, "error offset {} past {pos}", e.offset);
        assert!(!e.kind.name().is_empty());
        assert!(e.pid <= 0x1FFF);
    }
    assert!(d.programs().len() <= MAX_PROGRAMS);
    assert!(d.take_unknown().len() <= 64);
}

fuzz_target!(|data: &[u8]| {
    let Some((head, ts)) = data.split_first_chunk::<2>() else {
        return;
    };
    let program = match head[0] >> 5 {
        4 => Some(1),
        5 => Some(101),
        6 => Some(202),
        7 => Some(u16::from(head[1])),
        _ => None,
    };
    let mut seed = u32::from(u16::from_le_bytes(*head)) | 1;
    let mut d = Demuxer::with_program(program);
    let mut c = Checker::default();
    let mut pos = 0;
    while pos < ts.len() {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = match seed >> 29 {
            0 => 1,
            1 => 188,
            2 => 7 * 188,
            3 => 189,
            _ => 1 + (seed >> 8) as usize % 2000,
        }
        .min(ts.len() - pos);
        d.push(&ts[pos..pos + n]);
        pos += n;
        c.drain(&mut d);
        check_state(&mut d, pos);
    }
    d.flush();
    c.drain(&mut d);
    check_state(&mut d, pos);
    assert_eq!(d.pull(), None, "flush releases every held frame");
    assert_eq!(d.stats().frames, c.frames);
    if let Some(p) = program {
        if let Some(sel) = d.selected_program() {
            assert_eq!(sel, p, "only the program asked for is followed");
        }
    }

    let mut whole = Demuxer::with_program(program);
    let mut w = Checker::default();
    whole.push(ts);
    w.drain(&mut whole);
    whole.flush();
    w.drain(&mut whole);
    assert!(c.events == w.events, "chunking changed the events");
    assert_eq!(d.stats(), whole.stats());
});

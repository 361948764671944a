//! Fuzz target for the MPEG-TS demuxer.
//!
//! The first two bytes seed the chunk sizes; the rest is pushed in those
//! chunks. After every push all events are pulled and checked: a Tracks event
//! precedes every frame and the frame's track is in it, timestamps are 33-bit,
//! byte and packet counters match what was pushed. Finally the same bytes
//! pushed in one piece must give exactly the same events (chunking is
//! invisible).

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strom_media::ts::demux::{DemuxEvent, Demuxer};
use strom_media::Track;

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
                    for (i, tr) in t.iter().enumerate() {
                        assert_eq!(usize::from(tr.id), i);
                    }
                    self.tracks = Some(t.clone());
                }
                DemuxEvent::Frame(f) => {
                    let tracks = self.tracks.as_ref().expect("Tracks before the first frame");
                    assert!(usize::from(f.track) < tracks.len());
                    assert!((0..WRAP).contains(&f.pts), "pts {}", f.pts);
                    assert!((0..WRAP).contains(&f.dts), "dts {}", f.dts);
                    self.frames += 1;
                }
            }
            self.events.push(e);
        }
        // The current set is what the last event announced, or newer.
        assert!(d.tracks().len() <= strom_media::ts::demux::MAX_TRACKS);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, ts)) = data.split_first_chunk::<2>() else {
        return;
    };
    let mut seed = u32::from(u16::from_le_bytes(*head)) | 1;
    let mut d = Demuxer::new();
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
        assert_eq!(d.stats().bytes, pos as u64);
        assert!(d.stats().packets * 188 <= pos as u64);
    }
    d.flush();
    c.drain(&mut d);
    assert_eq!(d.stats().frames, c.frames);

    let mut whole = Demuxer::new();
    let mut w = Checker::default();
    whole.push(ts);
    w.drain(&mut whole);
    whole.flush();
    w.drain(&mut whole);
    assert!(c.events == w.events, "chunking changed the events");
    assert_eq!(d.stats(), whole.stats());
});

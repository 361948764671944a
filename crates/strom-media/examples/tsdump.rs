//! Prints the tracks, frames and demux counters of an MPEG-TS file:
//! `cargo run -p strom-media --example tsdump -- FILE [--frames]`.

use strom_media::ts::demux::{DemuxEvent, Demuxer};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: tsdump FILE [--frames]");
        std::process::exit(2);
    };
    let frames = args.any(|a| a == "--frames");
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let mut d = Demuxer::new();
    d.push(&data);
    d.flush();
    let (mut n, mut key) = (0u64, 0u64);
    while let Some(ev) = d.pull() {
        match ev {
            DemuxEvent::Tracks(t) => println!("tracks {t:?}"),
            DemuxEvent::Frame(f) => {
                n += 1;
                key += u64::from(f.keyframe);
                if frames || f.keyframe {
                    println!(
                        "frame track={} dts={} pts={} key={} len={}",
                        f.track,
                        f.dts,
                        f.pts,
                        f.keyframe,
                        f.data.len()
                    );
                }
            }
        }
    }
    println!("frames={n} keyframes={key} stats={:?}", d.stats());
}

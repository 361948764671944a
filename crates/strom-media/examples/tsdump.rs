//! Prints the programs, tracks, frames and demux counters of an MPEG-TS
//! file, as strom's demuxer sees it:
//! `cargo run -p strom-media --example tsdump -- FILE [--program N] [--frames] [--chunk BYTES]`.
//!
//! `--program N` follows program_number N (default: the first program with
//! video); `--frames` lists every frame, not only random access points;
//! `--chunk` feeds the file in reads of that many bytes (default 1316, a UDP
//! datagram), pulling after each as an input does.

use strom_media::ts::demux::{DemuxEvent, Demuxer};

fn usage() -> ! {
    eprintln!("usage: tsdump FILE [--program N] [--frames] [--chunk BYTES]");
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else { usage() };
    let (mut program, mut frames, mut chunk) = (None, false, 1316usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--frames" => frames = true,
            "--program" => program = Some(args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage())),
            "--chunk" => {
                chunk = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage())
            }
            _ => usage(),
        }
    }
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let mut d = Demuxer::with_program(program);
    let (mut n, mut key) = (0u64, 0u64);
    let mut print = |ev: DemuxEvent| match ev {
        DemuxEvent::Tracks(t) => {
            println!("tracks:");
            for tr in t.iter() {
                let p = &tr.params;
                println!(
                    "  {} {} lang={} codec={} {}x{} rate={:?} {} Hz {} ch descriptors={:02x?}",
                    tr.id,
                    tr.codec.name(),
                    p.language.as_deref().unwrap_or("-"),
                    p.codec_string.as_deref().unwrap_or("-"),
                    p.width,
                    p.height,
                    p.frame_rate,
                    p.sample_rate,
                    p.channels,
                    &p.descriptors[..]
                );
            }
        }
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
    };
    for c in data.chunks(chunk) {
        d.push(c);
        while let Some(ev) = d.pull() {
            print(ev);
        }
    }
    d.flush();
    while let Some(ev) = d.pull() {
        print(ev);
    }
    for p in d.programs() {
        println!(
            "program {} pmt_pid={} pmt_seen={} has_video={}{}",
            p.program_number,
            p.pmt_pid,
            p.pmt_seen,
            p.has_video,
            if p.selected { " (followed)" } else { "" }
        );
    }
    for (pid, stream_type) in d.take_unknown() {
        println!("unknown stream pid={pid} stream_type=0x{stream_type:02x}");
    }
    let s = d.stats();
    if let Some(e) = s.last_error {
        println!("last error: {} on pid {} at byte {}", e.kind.name(), e.pid, e.offset);
    }
    println!("frames={n} keyframes={key} stats={s:?}");
}

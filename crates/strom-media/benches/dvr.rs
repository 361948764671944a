//! Cost of the DVR core's hot paths:
//!
//! - `archive_playlist_24h`: a 24-hour archive playlist of 2-second segments
//!   (43,200 entries), from index entries already parsed: the playlist
//!   entries built from them and `render_archive_playlist` (VOD, with a
//!   token query), as an `archive-FROM-86400.m3u8` request costs once the
//!   indexes are in memory. Goal (issue): under 20 ms at p99.
//! - `parse_index_1h`: `parse_index` of one hour's index file (1,800
//!   entries, 86,416 bytes), as loading an hour from disk costs after the read.
//!
//! Run with `cargo bench -p strom-media --bench dvr`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use strom_media::dvr::index::{encode_header, parse_index, IndexEntry};
use strom_media::hls::{render_archive_playlist, PlaylistEntry, PlaylistType};
use strom_media::CLOCK_HZ;

/// 2025-11-22T00:00:00Z in 90 kHz ticks.
const START: i64 = 1_763_769_600 * CLOCK_HZ;
const SEGMENT: i64 = 2 * CLOCK_HZ;

/// An index file of `n` 2-second segments of about 1 MB each, numbered from `first_seq`.
fn index_file(first_seq: u64, n: usize) -> Vec<u8> {
    let mut out = encode_header(first_seq).to_vec();
    let mut offset = 0u64;
    for i in 0..n {
        let len = 1_000_000 + (i as u32 % 7) * 1000;
        let e = IndexEntry {
            seq: first_seq + i as u64,
            start: START + i as i64 * SEGMENT,
            duration: SEGMENT,
            offset,
            len,
            target_duration: 2,
            discontinuity: false,
            independent: true,
        };
        out.extend_from_slice(&e.encode());
        offset += u64::from(len);
    }
    out
}

fn bench(c: &mut Criterion) {
    // 24 one-hour files of 1,800 segments each, parsed as the node loads them.
    let per_hour = 1_800;
    let entries: Vec<IndexEntry> = (0..24)
        .flat_map(|h| {
            let file = index_file(1_000_000 + h * per_hour as u64, per_hour);
            parse_index(&file).expect("valid index").entries
        })
        .collect();
    assert_eq!(entries.len(), 43_200);
    let mut g = c.benchmark_group("dvr");
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function("archive_playlist_24h", |b| {
        b.iter(|| {
            let list: Vec<PlaylistEntry> = black_box(&entries).iter().map(IndexEntry::playlist_entry).collect();
            render_archive_playlist(&list, PlaylistType::Vod, 0, Some("token=0123456789abcdef"), "")
        })
    });
    let hour = index_file(7, per_hour);
    g.throughput(Throughput::Bytes(hour.len() as u64));
    g.bench_function("parse_index_1h", |b| b.iter(|| parse_index(black_box(&hour))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

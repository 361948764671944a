//! Fuzz target for the DVR core: index parsing, rebuilding an index from a
//! data file, ranges, and archive file names.
//!
//! The first byte is a mode: bit 0 rewrites the CRC of every whole index
//! entry, bit 1 the CRC of every wire message it can frame, so mutated
//! inputs reach the checks behind the checksums. The rest is read as an
//! index file, as a data file, and (when UTF-8) as archive names. Checked:
//! - `parse_index`: an error only for a bad header; otherwise the valid
//!   part is exactly the header and entries re-encoded, the entries follow
//!   each other (seq up from `first_seq`, offsets tiling from 0), the valid
//!   part alone parses to the same with no torn bytes, and the entry after
//!   it (if whole) is one the rules refuse;
//! - `rebuild`: valid and torn bytes add up, the entries tile the data from
//!   its base offset with rising seqs, each entry's bytes decode alone to
//!   the segment it describes, the valid part alone and the tail after the
//!   first message rebuild to the same entries, and an index written from
//!   them parses back to them;
//! - `ranges`: sorted, apart by more than the gap tolerance, covering every
//!   entry;
//! - names: whatever `parse_file` and `stream_name_of_dir` accept is
//!   exactly what `relative_path` and `stream_dir` write.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_media::dvr::index::{encode_header, parse_index, rebuild, IndexEntry, ENTRY_LEN, HEADER_LEN};
use strom_media::dvr::layout::{parse_file, relative_path, stream_dir, stream_name_of_dir};
use strom_media::dvr::ranges::{ranges, GAP_TOLERANCE};
use strom_media::ts::crc::crc32_mpeg2;
use strom_media::wire::{self, Decoder, Message};

/// Rewrites the CRC of every whole entry after the header.
fn fix_entry_crcs(bytes: &mut [u8]) {
    if let Some(entries) = bytes.get_mut(HEADER_LEN..) {
        for e in entries.chunks_exact_mut(ENTRY_LEN) {
            let crc = crc32_mpeg2(&e[..ENTRY_LEN - 4]);
            e[ENTRY_LEN - 4..].copy_from_slice(&crc.to_be_bytes());
        }
    }
}

/// Rewrites the CRC of every whole message, following the length fields.
fn fix_wire_crcs(bytes: &mut [u8]) {
    let mut pos = 0usize;
    while let Some(h) = bytes.get(pos..pos + wire::HEADER_LEN) {
        let len = u32::from_be_bytes([h[6], h[7], h[8], h[9]]) as usize;
        let body_end = pos + wire::HEADER_LEN + len;
        let Some(crc) = bytes.get(pos..body_end).map(crc32_mpeg2) else {
            return;
        };
        let Some(slot) = bytes.get_mut(body_end..body_end + wire::CRC_LEN) else {
            return;
        };
        slot.copy_from_slice(&crc.to_be_bytes());
        pos = body_end + wire::CRC_LEN;
    }
}

fn follows(prev: Option<&IndexEntry>, e: &IndexEntry, first_seq: u64) -> bool {
    match prev {
        None => e.seq == first_seq && e.offset == 0,
        Some(p) => e.seq > p.seq && p.offset.checked_add(u64::from(p.len)) == Some(e.offset),
    }
}

fn check_index(bytes: &[u8]) {
    let header_ok = bytes.len() >= HEADER_LEN && bytes[..4] == *b"SIDX" && bytes[4] == 1 && bytes[5..8] == [0, 0, 0];
    let p = match parse_index(bytes) {
        Ok(p) => p,
        Err(e) => {
            assert!(!header_ok, "good header refused: {e}");
            return;
        }
    };
    assert!(header_ok, "bad header accepted");
    let valid = p.valid_len as usize;
    assert_eq!(valid as u64 + p.torn_bytes, bytes.len() as u64);
    assert_eq!(valid, HEADER_LEN + p.entries.len() * ENTRY_LEN);
    let mut again = encode_header(p.first_seq).to_vec();
    let mut prev = None;
    for e in &p.entries {
        assert!(follows(prev, e, p.first_seq), "{e:?} does not follow {prev:?}");
        again.extend_from_slice(&e.encode());
        prev = Some(e);
    }
    assert!(again[..] == bytes[..valid], "valid part is not the entries' encoding");
    let alone = parse_index(&bytes[..valid]).expect("the valid part parses");
    assert_eq!((&alone.entries, alone.torn_bytes), (&p.entries, 0));
    if let Some(next) = bytes.get(valid..valid + ENTRY_LEN) {
        let next: &[u8; ENTRY_LEN] = next.try_into().expect("48 bytes");
        if let Some(e) = IndexEntry::decode(next) {
            assert!(!follows(prev, &e, p.first_seq), "stopped before a good entry {e:?}");
        }
    }
    check_ranges(&p.entries);
}

fn check_ranges(entries: &[IndexEntry]) {
    let r = ranges(entries);
    for w in r.windows(2) {
        assert!(
            w[1].from > w[0].end().saturating_add(GAP_TOLERANCE),
            "ranges not apart: {r:?}"
        );
    }
    for e in entries {
        let end = e.start.saturating_add(e.duration.max(0));
        assert!(
            r.iter().any(|r| r.from <= e.start && end <= r.end()),
            "{e:?} not covered by {r:?}"
        );
    }
}

fn check_rebuild(data: &[u8], base: u64) {
    let r = rebuild(data, base, None);
    let valid = r.valid_len as usize;
    assert_eq!(valid as u64 + r.torn_bytes, data.len() as u64);
    let mut at = 0usize;
    let mut prev: Option<u64> = None;
    for e in &r.entries {
        assert_eq!(e.offset, base + at as u64, "entries do not tile the data");
        assert!(prev.is_none_or(|p| e.seq > p), "seq does not rise");
        let raw = &data[at..at + e.len as usize];
        let mut d = Decoder::new();
        d.push(raw);
        match d.pull() {
            Ok(Some(Message::Segment(s))) => assert_eq!(IndexEntry::of(&s, e.offset, e.len), *e),
            other => panic!("entry bytes decode to {other:?}"),
        }
        assert_eq!(d.buffered(), 0, "entry holds more than one message");
        prev = Some(e.seq);
        at += e.len as usize;
    }
    assert_eq!(at, valid);
    assert_eq!(rebuild(&data[..valid], base, None).entries, r.entries);
    if let [first, rest @ ..] = &r.entries[..] {
        let cut = first.len as usize;
        let tail = rebuild(&data[cut..], base + cut as u64, Some(first.seq));
        assert_eq!(tail.entries, rest, "the tail rebuilds differently");
        let mut index = encode_header(first.seq).to_vec();
        for e in &r.entries {
            index.extend_from_slice(&e.encode());
        }
        if base == 0 {
            let p = parse_index(&index).expect("written header");
            assert_eq!((&p.entries, p.torn_bytes), (&r.entries, 0));
        }
    }
    check_ranges(&r.entries);
}

fn check_names(s: &str) {
    if let Some((day, file)) = s.split_once('/') {
        if let Some((key, kind)) = parse_file(day, file) {
            assert_eq!(relative_path(key, kind), s);
        }
    }
    if let Some(name) = stream_name_of_dir(s) {
        assert_eq!(stream_dir(&name), s);
    }
    if !matches!(s, "" | "." | "..") {
        assert_eq!(stream_name_of_dir(&stream_dir(s)).as_deref(), Some(s));
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let mut index = rest.to_vec();
    if mode & 1 == 1 {
        fix_entry_crcs(&mut index);
    }
    check_index(&index);
    let mut data = rest.to_vec();
    if mode & 2 == 2 {
        fix_wire_crcs(&mut data);
    }
    check_rebuild(&data, 0);
    check_rebuild(&data, u64::from(mode >> 2) << 32);
    if let Ok(s) = std::str::from_utf8(rest) {
        check_names(s);
    }
});

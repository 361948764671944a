//! Fuzz target for the SCTE-35 `splice_info_section` parser and its
//! `pts_adjustment` rewrite (`strom_media::scte35`).
//!
//! The first 8 bytes are a new adjustment; the rest is a section. The
//! section is also tried with a valid table_id and CRC patched in, so the
//! fuzzer reaches the command and descriptor parsers instead of stopping at
//! the CRC. Invariants:
//! - nothing panics;
//! - a parsed splice time is a 33-bit value;
//! - a rewritten section parses, keeps its length and every field but the
//!   adjustment, and its splice time moves by exactly the difference.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_media::scte35::{parse, with_pts_adjustment, Scte35Error};
use strom_media::ts::crc::crc32_mpeg2;

const WRAP: i64 = 1 << 33;

fn check(section: &[u8], adj: i64) {
    let info = match parse(section) {
        Ok(info) => info,
        // Framing errors: nothing to rewrite either.
        Err(Scte35Error::TableId | Scte35Error::Truncated | Scte35Error::Crc) => {
            assert!(with_pts_adjustment(section, adj).is_none());
            return;
        }
        Err(Scte35Error::Malformed) => return,
    };
    if let Some(t) = info.splice_time() {
        assert!((0..WRAP).contains(&t), "splice time {t} is not 33-bit");
    }
    let Some(moved) = with_pts_adjustment(section, adj) else {
        assert!(info.encrypted, "a valid clear section can be rewritten");
        return;
    };
    let again = parse(&moved).expect("a rewritten section parses");
    assert_eq!(again.pts_adjustment, adj.rem_euclid(WRAP));
    assert_eq!(again.command, info.command);
    assert_eq!(again.descriptors, info.descriptors);
    if let (Some(a), Some(t)) = (info.pts_time(), again.splice_time()) {
        assert_eq!(t, (a + adj).rem_euclid(WRAP));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((adj, section)) = data.split_first_chunk::<8>() else {
        return;
    };
    let adj = i64::from_be_bytes(*adj);
    check(section, adj);
    // The same bytes as a well-framed section: table_id, a section_length
    // covering them, and a correct CRC_32.
    if section.len() >= 16 && section.len() <= 4093 {
        let mut s = section.to_vec();
        s[0] = 0xFC;
        let len = s.len() - 3;
        s[1] = (s[1] & 0xF0) | ((len >> 8) as u8 & 0x0F);
        s[2] = len as u8;
        let n = s.len() - 4;
        let crc = crc32_mpeg2(&s[..n]);
        s[n..].copy_from_slice(&crc.to_be_bytes());
        check(&s, adj);
    }
});

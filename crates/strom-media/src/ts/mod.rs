//! MPEG-TS (ISO/IEC 13818-1): packet constants, PSI CRC, demuxer and muxer.

pub mod crc;
pub mod demux;
pub mod mux;

/// Size of one transport packet.
pub const PACKET_SIZE: usize = 188;
/// Sync byte that starts every transport packet.
pub const SYNC_BYTE: u8 = 0x47;
/// Timestamps in PES headers and PCR bases are 33-bit.
pub const TS_WRAP: i64 = 1 << 33;

/// The signed shortest distance from `from` to `to` on the 33-bit timestamp
/// circle, in 90 kHz ticks: the `d` in `[-2^32, 2^32)` with
/// `from + d ≡ to (mod 2^33)`.
///
/// PTS, DTS and the PCR base are 33-bit counters that wrap about every 26.5
/// hours (ISO/IEC 13818-1 §2.4.3.7, PES packet semantics). Two timestamps of
/// one program are taken to be less than half the circle (13.25 h) apart, so
/// the shorter way round is the real one: this is how a raw timestamp is
/// unwrapped against a reference, and how a PTS is coded relative to its DTS
/// so that B-frame reordering survives a wrap. Any `i64` is accepted; only
/// the values modulo 2^33 matter.
pub fn wrap_delta(from: i64, to: i64) -> i64 {
    // 2^33 divides 2^64, so the wrapping subtraction is exact modulo 2^33.
    let d = to.wrapping_sub(from).rem_euclid(TS_WRAP);
    if d >= TS_WRAP / 2 {
        d - TS_WRAP
    } else {
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wrap_delta_takes_the_short_way_round() {
        assert_eq!(wrap_delta(0, 3600), 3600);
        assert_eq!(wrap_delta(3600, 0), -3600);
        assert_eq!(wrap_delta(TS_WRAP - 1800, 1800), 3600, "forward across the wrap");
        assert_eq!(wrap_delta(1800, TS_WRAP - 1800), -3600, "backward across the wrap");
        assert_eq!(wrap_delta(5, 5 + TS_WRAP), 0, "only the 33 bits count");
        // Exactly half the circle is folded to the negative side.
        assert_eq!(wrap_delta(0, TS_WRAP / 2), -TS_WRAP / 2);
        assert_eq!(wrap_delta(0, TS_WRAP / 2 - 1), TS_WRAP / 2 - 1);
        assert_eq!(wrap_delta(i64::MIN, i64::MAX), -1, "no overflow at the extremes");
    }

    proptest! {
        /// The result is in range and lands on `to` modulo 2^33.
        #[test]
        fn wrap_delta_is_a_shortest_congruent_step(from in any::<i64>(), to in any::<i64>()) {
            let d = wrap_delta(from, to);
            prop_assert!((-TS_WRAP / 2..TS_WRAP / 2).contains(&d));
            prop_assert_eq!(from.wrapping_add(d).rem_euclid(TS_WRAP), to.rem_euclid(TS_WRAP));
        }

        /// A step of less than half the circle is recovered exactly from
        /// wrapped timestamps, and the reverse step is its negation.
        #[test]
        fn wrap_delta_recovers_short_steps(from in 0i64..TS_WRAP, d in -(TS_WRAP / 2 - 1)..TS_WRAP / 2) {
            let to = (from + d).rem_euclid(TS_WRAP);
            prop_assert_eq!(wrap_delta(from, to), d);
            prop_assert_eq!(wrap_delta(to, from), -d);
        }
    }
}

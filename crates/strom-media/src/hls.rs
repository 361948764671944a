//! HLS playlist rendering (RFC 8216): live media playlists and a one-variant
//! master playlist. Pure string building from segment metadata.
//!
//! Invariants: `EXT-X-MEDIA-SEQUENCE` is the first listed segment's number and
//! the listed numbers are consecutive; `EXT-X-DISCONTINUITY-SEQUENCE` counts the
//! discontinuities that have left the window; every `EXTINF` rounds to at most
//! `EXT-X-TARGETDURATION`.

use crate::frame::CLOCK_HZ;
use std::fmt::Write;

/// What a media playlist needs to know about one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaylistEntry {
    pub seq: u64,
    /// UTC start, 90 kHz ticks since the epoch.
    pub start: i64,
    /// Duration in 90 kHz ticks.
    pub duration: i64,
    pub discontinuity: bool,
}

/// URI of a segment, relative to the playlist: `<seq>.ts`.
pub fn segment_uri(seq: u64) -> String {
    format!("{seq}.ts")
}

/// Parses a segment resource name produced by [`segment_uri`].
pub fn parse_segment_uri(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".ts")?;
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Renders a live media playlist.
///
/// `discontinuity_sequence` is the count of discontinuities before the first
/// entry. `target_duration` is in whole seconds and must be at least the
/// rounded longest entry; callers keep it from shrinking. `query` (without
/// `?`) is appended to segment URIs so tokens follow the viewer. `base` is
/// prefixed to every segment URI: empty for relative URIs, or an absolute
/// `http://host/NAME/` for a playlist served through a redirect.
pub fn render_media_playlist(
    entries: &[PlaylistEntry],
    target_duration: u64,
    discontinuity_sequence: u64,
    query: Option<&str>,
    base: &str,
) -> String {
    let mut out = String::with_capacity(160 + entries.len() * 96);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target_duration}");
    let first = entries.first().map_or(0, |e| e.seq);
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first}");
    let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}");
    for e in entries {
        // Every flagged segment keeps its tag while listed, so callers count
        // into the discontinuity sequence only the flagged segments that left.
        if e.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let _ = writeln!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}",
            format_utc_millis(e.start * 1000 / CLOCK_HZ)
        );
        let _ = writeln!(out, "#EXTINF:{},", format_seconds(e.duration));
        out.push_str(base);
        out.push_str(&segment_uri(e.seq));
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            out.push('?');
            out.push_str(q);
        }
        out.push('\n');
    }
    out
}

/// The smallest target duration that fits `entries` and a configured target (ticks).
pub fn target_duration_for(entries: &[PlaylistEntry], configured: i64) -> u64 {
    let longest = entries.iter().map(|e| e.duration).max().unwrap_or(0).max(configured);
    // EXTINF is printed with millisecond precision and must round to <= target.
    let millis = (longest * 1000 + CLOCK_HZ - 1) / CLOCK_HZ;
    (millis.max(1000) as u64).div_ceil(1000)
}

/// One variant of a master playlist.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    pub uri: String,
    /// Peak bits per second.
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    /// RFC 6381 codec strings, e.g. `avc1.4d401f`, `mp4a.40.2`.
    pub codecs: Vec<String>,
    pub resolution: Option<(u16, u16)>,
    pub frame_rate: Option<f64>,
}

/// Renders a master playlist listing `variants`.
pub fn render_master_playlist(variants: &[Variant]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth.max(1));
        if let Some(avg) = v.average_bandwidth {
            let _ = write!(out, ",AVERAGE-BANDWIDTH={}", avg.max(1));
        }
        if !v.codecs.is_empty() {
            let _ = write!(out, ",CODECS=\"{}\"", v.codecs.join(","));
        }
        if let Some((w, h)) = v.resolution {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some(fr) = v.frame_rate {
            let _ = write!(out, ",FRAME-RATE={fr:.3}");
        }
        out.push('\n');
        out.push_str(&v.uri);
        out.push('\n');
    }
    out
}

/// Seconds with millisecond precision, rounded to nearest.
fn format_seconds(ticks: i64) -> String {
    let millis = (ticks * 1000 + CLOCK_HZ / 2) / CLOCK_HZ;
    format!("{}.{:03}", millis / 1000, millis % 1000)
}

/// Formats Unix milliseconds as ISO 8601 UTC (`2026-11-22T01:02:03.456Z`).
pub fn format_utc_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Proleptic Gregorian date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(seq: u64, start_s: i64, dur_ms: i64, disc: bool) -> PlaylistEntry {
        PlaylistEntry {
            seq,
            start: start_s * CLOCK_HZ,
            duration: dur_ms * 90,
            discontinuity: disc,
        }
    }

    #[test]
    fn renders_media_playlist() {
        let e = [
            entry(1_763_769_600, 1_763_769_600, 2000, false),
            entry(1_763_769_601, 1_763_769_602, 2040, true),
        ];
        let text = render_media_playlist(&e, 3, 4, Some("token=abc"), "");
        let abs = render_media_playlist(&e, 3, 4, None, "http://h:1/x/");
        assert!(abs.contains("\nhttp://h:1/x/1763769601.ts\n"), "{abs}");
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:3\n\
             #EXT-X-MEDIA-SEQUENCE:1763769600\n#EXT-X-DISCONTINUITY-SEQUENCE:4\n\
             #EXT-X-PROGRAM-DATE-TIME:2025-11-22T00:00:00.000Z\n#EXTINF:2.000,\n1763769600.ts?token=abc\n\
             #EXT-X-DISCONTINUITY\n\
             #EXT-X-PROGRAM-DATE-TIME:2025-11-22T00:00:02.000Z\n#EXTINF:2.040,\n1763769601.ts?token=abc\n"
        );
    }

    #[test]
    fn target_duration_rounds_up_and_respects_config() {
        assert_eq!(target_duration_for(&[entry(1, 0, 2000, false)], 2 * CLOCK_HZ), 2);
        assert_eq!(target_duration_for(&[entry(1, 0, 2001, false)], 2 * CLOCK_HZ), 3);
        assert_eq!(target_duration_for(&[], 2 * CLOCK_HZ), 2);
        assert_eq!(target_duration_for(&[entry(1, 0, 5400, false)], 2 * CLOCK_HZ), 6);
    }

    #[test]
    fn master_playlist_attributes() {
        let v = Variant {
            uri: "mono.m3u8?token=x".into(),
            bandwidth: 1_500_000,
            average_bandwidth: Some(1_200_000),
            codecs: vec!["avc1.4d401f".into(), "mp4a.40.2".into()],
            resolution: Some((1280, 720)),
            frame_rate: Some(25.0),
        };
        assert_eq!(
            render_master_playlist(&[v]),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=1500000,\
             AVERAGE-BANDWIDTH=1200000,CODECS=\"avc1.4d401f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=25.000\n\
             mono.m3u8?token=x\n"
        );
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_utc_millis(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn segment_uri_round_trip_and_rejects() {
        assert_eq!(parse_segment_uri(&segment_uri(42)), Some(42));
        for bad in [
            "",
            ".ts",
            "a.ts",
            "1.ts.ts",
            "-1.ts",
            "1.m3u8",
            "99999999999999999999999.ts",
            "../1.ts",
        ] {
            assert_eq!(parse_segment_uri(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn extinf_never_exceeds_target(durs in proptest::collection::vec(1i64..20 * CLOCK_HZ, 1..10)) {
            let entries: Vec<_> = durs.iter().enumerate().map(|(i, d)| PlaylistEntry {
                seq: i as u64, start: 0, duration: *d, discontinuity: false }).collect();
            let target = target_duration_for(&entries, CLOCK_HZ);
            let text = render_media_playlist(&entries, target, 0, None, "");
            for line in text.lines().filter_map(|l| l.strip_prefix("#EXTINF:")) {
                let secs: f64 = line.trim_end_matches(',').parse().map_err(|_| TestCaseError::fail("extinf"))?;
                prop_assert!(secs.round() as u64 <= target);
            }
            let seqs: Vec<u64> = text.lines().filter_map(|l| l.strip_suffix(".ts")).map(|s| s.parse().unwrap_or(u64::MAX)).collect();
            prop_assert_eq!(seqs, (0..entries.len() as u64).collect::<Vec<_>>());
        }

        #[test]
        fn utc_matches_day_arithmetic(days in 0i64..100_000, sod in 0i64..86_400) {
            let s = format_utc_millis((days * 86_400 + sod) * 1000);
            prop_assert_eq!(s.len(), 24);
            let hh: i64 = s[11..13].parse().unwrap_or(-1);
            let mm: i64 = s[14..16].parse().unwrap_or(-1);
            let ss: i64 = s[17..19].parse().unwrap_or(-1);
            prop_assert_eq!(hh * 3600 + mm * 60 + ss, sod);
        }
    }
}

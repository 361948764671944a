//! Names of an archive's directories and files, both ways.
//!
//! ```text
//! ROOT/<stream dir>/YYYY-MM-DD/HH-<first_seq>.wire   data: wire segment messages back to back
//! ROOT/<stream dir>/YYYY-MM-DD/HH-<first_seq>.idx    index of that data file
//! ```
//!
//! - `<stream dir>` is the stream name with `%` written `%25` and `/`
//!   written `%2F`, so a name with segments (`mylive/cam1`) is one path
//!   component. Stream names are checked before they get here
//!   (`strom_config::check_stream_name`: no `.`/`..` segments, no empty
//!   name), so the directory never climbs out of the root.
//! - A segment belongs to the UTC hour in which its `start` falls
//!   ([`hour_of`]); the date and `HH` of its file are that hour's, in UTC
//!   (no time zones, no DST: an hour is exactly [`HOUR_TICKS`]).
//! - `first_seq` is the number of the file's first segment. A restart of the
//!   node or of the writer in the middle of an hour opens a new file for the
//!   same hour, so an hour may have several files; [`FileKey`] orders them
//!   (hour, then first_seq), and in that order their segment numbers are
//!   strictly increasing.
//!
//! Invariants: every name this module writes, and only those, parses back
//! ([`parse_file`], [`stream_name_of_dir`]): one spelling per file, so a
//! directory listing never yields two keys for one file or a key for a file
//! strom did not write.

use crate::frame::CLOCK_HZ;
use crate::hls::civil_from_days;

/// Length of one archive hour, 90 kHz ticks.
pub const HOUR_TICKS: i64 = CLOCK_HZ * 3600;
/// Extension of a data file (wire messages).
pub const DATA_EXT: &str = "wire";
/// Extension of an index file.
pub const INDEX_EXT: &str = "idx";

/// The archive hour of a UTC time: hours since the Unix epoch,
/// `floor(start / HOUR_TICKS)` (`start` in 90 kHz ticks; before 1970 the
/// hour is negative).
pub fn hour_of(start: i64) -> i64 {
    start.div_euclid(HOUR_TICKS)
}

/// The directory of a stream's archive under the storage root: the name
/// with `%` → `%25` and `/` → `%2F`, every other character kept.
pub fn stream_dir(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// The stream name of a directory written by [`stream_dir`]. `None` when
/// `dir` is not one: a `%` not followed by `25` or `2F` (upper case, as
/// written), a literal `/`, or `""`, `.`, `..` (not directory entries of a
/// listing, and not stream names).
pub fn stream_name_of_dir(dir: &str) -> Option<String> {
    if dir.is_empty() || dir == "." || dir == ".." || dir.contains('/') {
        return None;
    }
    let mut out = String::with_capacity(dir.len());
    let mut rest = dir;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("%25") {
            out.push('%');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("%2F") {
            out.push('/');
            rest = tail;
        } else {
            return None;
        }
    }
    out.push_str(rest);
    Some(out)
}

/// The day directory of an archive hour: its UTC date, `YYYY-MM-DD`
/// (proleptic Gregorian; years outside 0000..=9999 are written but never
/// parsed back).
pub fn day_dir(hour: i64) -> String {
    let (y, m, d) = civil_from_days(hour.div_euclid(24));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The file name of an archive file without its extension: the hour of the
/// day (UTC, two digits) and the file's first segment number, `HH-SEQ`.
pub fn file_stem(hour: i64, first_seq: u64) -> String {
    format!("{:02}-{first_seq}", hour.rem_euclid(24))
}

/// Identity of one archive file of a stream: its hour and first segment
/// number. Ordered by hour, then first_seq: the order of the segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileKey {
    /// Hours since the Unix epoch, UTC ([`hour_of`]).
    pub hour: i64,
    /// Number of the file's first segment.
    pub first_seq: u64,
}

/// Which of the two files of a [`FileKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// The data file, `.wire`.
    Data,
    /// The index file, `.idx`.
    Index,
}

impl FileKind {
    /// The file name extension, without the dot.
    pub fn ext(self) -> &'static str {
        match self {
            FileKind::Data => DATA_EXT,
            FileKind::Index => INDEX_EXT,
        }
    }
}

/// Parses a day directory name `day` and the name `file` of a file in it.
/// `None` unless both are exactly what [`day_dir`], [`file_stem`] and the
/// extensions write: a valid date with a four-digit year, an `HH` of
/// `00`..=`23` (so the hour belongs to that day), a decimal first_seq
/// without leading zeros that fits a `u64`, and `.wire` or `.idx`.
pub fn parse_file(day: &str, file: &str) -> Option<(FileKey, FileKind)> {
    let days = parse_day(day)?;
    let (stem, kind) = if let Some(s) = file.strip_suffix(".wire") {
        (s, FileKind::Data)
    } else if let Some(s) = file.strip_suffix(".idx") {
        (s, FileKind::Index)
    } else {
        return None;
    };
    let (hh, seq) = stem.split_once('-')?;
    let hh = digits(hh, 2)?;
    if hh > 23 {
        return None;
    }
    let first_seq = parse_seq(seq)?;
    Some((
        FileKey {
            hour: days * 24 + hh,
            first_seq,
        },
        kind,
    ))
}

/// The path of a file relative to its stream directory:
/// `YYYY-MM-DD/HH-SEQ.wire` or `YYYY-MM-DD/HH-SEQ.idx`.
pub fn relative_path(key: FileKey, kind: FileKind) -> String {
    format!(
        "{}/{}.{}",
        day_dir(key.hour),
        file_stem(key.hour, key.first_seq),
        kind.ext()
    )
}

/// Exactly `n` ASCII digits as a number.
fn digits(s: &str, n: usize) -> Option<i64> {
    if s.len() != n || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0, |acc, b| acc * 10 + i64::from(b - b'0')))
}

/// A `u64` in decimal as [`file_stem`] writes it: no sign, no leading zero.
fn parse_seq(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date that exists.
fn parse_day(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits(s.get(..4)?, 4)?;
    let m = digits(s.get(5..7)?, 2)?;
    let d = digits(s.get(8..)?, 2)?;
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`civil_from_days`]; March-based years, 400-year eras).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2025-11-22T13:00:00Z, in hours since the epoch.
    const H: i64 = 1_763_816_400 / 3600;

    #[test]
    fn hours_are_floored_utc_hours() {
        assert_eq!(hour_of(0), 0);
        assert_eq!(hour_of(HOUR_TICKS - 1), 0);
        assert_eq!(hour_of(HOUR_TICKS), 1);
        assert_eq!(hour_of(-1), -1, "floor, not truncation");
        assert_eq!(hour_of(1_763_816_400 * CLOCK_HZ + 59 * 60 * CLOCK_HZ), H);
        assert_eq!(hour_of(i64::MIN), i64::MIN.div_euclid(HOUR_TICKS));
    }

    #[test]
    fn stream_dirs_escape_slash_and_percent() {
        assert_eq!(stream_dir("demo"), "demo");
        assert_eq!(stream_dir("mylive/cam1"), "mylive%2Fcam1");
        assert_eq!(stream_dir("a%2Fb/c"), "a%252Fb%2Fc");
        assert_eq!(stream_name_of_dir("mylive%2Fcam1").as_deref(), Some("mylive/cam1"));
        assert_eq!(stream_name_of_dir("a%252Fb%2Fc").as_deref(), Some("a%2Fb/c"));
        for bad in ["", ".", "..", "a/b", "a%2fb", "a%", "a%2", "a%41", "%"] {
            assert_eq!(stream_name_of_dir(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_of_one_hour() {
        assert_eq!(day_dir(H), "2025-11-22");
        assert_eq!(file_stem(H, 42), "13-42");
        assert_eq!(day_dir(0), "1970-01-01");
        assert_eq!(file_stem(0, 0), "00-0");
        assert_eq!(day_dir(-1), "1969-12-31");
        assert_eq!(file_stem(-1, 7), "23-7");
        let key = FileKey { hour: H, first_seq: 42 };
        assert_eq!(relative_path(key, FileKind::Data), "2025-11-22/13-42.wire");
        assert_eq!(relative_path(key, FileKind::Index), "2025-11-22/13-42.idx");
        assert_eq!(parse_file("2025-11-22", "13-42.wire"), Some((key, FileKind::Data)));
        assert_eq!(parse_file("2025-11-22", "13-42.idx"), Some((key, FileKind::Index)));
        assert_eq!(
            parse_file("2024-02-29", &format!("23-{}.idx", u64::MAX)).map(|(k, _)| k.first_seq),
            Some(u64::MAX)
        );
    }

    #[test]
    fn only_written_names_parse() {
        let day = "2025-11-22";
        for bad in [
            "13-42.WIRE",
            "13-42.wire.tmp",
            "13-42",
            "13-042.wire",
            "13-.wire",
            "13-+4.wire",
            "13--4.wire",
            "1-42.wire",
            "013-42.wire",
            "24-42.wire",
            "13_42.wire",
            "13-18446744073709551616.wire",
            "13-4 2.wire",
            " 13-42.wire",
            ".wire",
        ] {
            assert_eq!(parse_file(day, bad), None, "{bad}");
        }
        for bad in [
            "2025-11-31",
            "2025-02-29",
            "1900-02-29",
            "2025-13-01",
            "2025-00-01",
            "2025-11-00",
            "2025-1-22",
            "2025/11/22",
            "20251122",
            "+025-11-22",
            "2025-11-22 ",
            "",
        ] {
            assert_eq!(parse_file(bad, "13-42.wire"), None, "{bad}");
        }
        assert!(parse_file("2000-02-29", "00-0.wire").is_some(), "400-year leap day");
        assert!(parse_file("0000-01-01", "00-0.wire").is_some());
    }

    #[test]
    fn file_keys_order_by_hour_then_first_seq() {
        let k = |hour, first_seq| FileKey { hour, first_seq };
        let mut keys = vec![k(2, 1), k(1, 9), k(2, 0), k(-1, 100)];
        keys.sort();
        assert_eq!(keys, vec![k(-1, 100), k(1, 9), k(2, 0), k(2, 1)]);
    }

    proptest! {
        #[test]
        fn stream_dirs_round_trip(name in "\\PC*") {
            prop_assume!(!matches!(name.as_str(), "" | "." | ".."));
            let dir = stream_dir(&name);
            prop_assert!(!dir.contains('/'));
            prop_assert_eq!(stream_name_of_dir(&dir), Some(name));
        }

        #[test]
        fn stream_dirs_round_trip_escapes(name in "[a%/2F5]{1,12}") {
            prop_assume!(!matches!(name.as_str(), "." | ".."));
            prop_assert_eq!(stream_name_of_dir(&stream_dir(&name)), Some(name));
        }

        #[test]
        fn parsed_dirs_have_one_spelling(dir in "[a%/2Ff5.]{0,12}") {
            if let Some(name) = stream_name_of_dir(&dir) {
                prop_assert_eq!(stream_dir(&name), dir);
            }
        }

        #[test]
        fn file_names_round_trip(
            // 1970-01-01T00 ..= 9999-12-31T23
            hour in 0i64..=(days_from_civil(9999, 12, 31) * 24 + 23),
            first_seq in any::<u64>(),
            data in any::<bool>(),
        ) {
            let kind = if data { FileKind::Data } else { FileKind::Index };
            let key = FileKey { hour, first_seq };
            let file = format!("{}.{}", file_stem(hour, first_seq), kind.ext());
            prop_assert_eq!(parse_file(&day_dir(hour), &file), Some((key, kind)));
            let path = relative_path(key, kind);
            let (day, name) = path.split_once('/').ok_or_else(|| TestCaseError::fail("no /"))?;
            prop_assert_eq!(parse_file(day, name), Some((key, kind)));
        }

        #[test]
        fn parsed_files_have_one_spelling(day in "[0-9]{4}-[0-9]{2}-[0-9]{2}", file in "[0-9]{2}-[0-9]{1,3}\\.(wire|idx|wir)") {
            if let Some((key, kind)) = parse_file(&day, &file) {
                prop_assert_eq!(relative_path(key, kind), format!("{day}/{file}"));
            }
        }

        #[test]
        fn days_from_civil_inverts_civil_from_days(days in -1_000_000i64..3_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), days);
        }
    }
}

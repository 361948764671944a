//! Archive URLs (Flussonic's DVR naming), parsed from the last path segment.
//! Pure: no I/O, no clock ([`ArchiveRequest::check`] takes `now`).
//!
//! All times are UTC Unix seconds:
//!
//! | resource | meaning |
//! |---|---|
//! | `archive-FROM-DURATION.m3u8`, `index-…`, `mono-…`, `video-…` | VOD playlist of `[FROM, FROM+DURATION)` |
//! | `archive-FROM-now.m3u8`, `index-FROM-now.m3u8` (and `mono-`/`video-`) | EVENT playlist from FROM, growing |
//! | `archive-FROM-DURATION.ts` | that range as one MPEG-TS download |
//! | `timeshift_abs-FROM.m3u8` / `.ts` (and `timeshift_abs_mono-`, `_video-`) | live, starting at FROM |
//! | `timeshift_rel-AGO.m3u8` / `.ts` (and `_mono-`, `_video-`) | live, AGO seconds behind |
//! | `rewind-SECONDS.m3u8` | sliding window of the last SECONDS, live edge included |
//! | `archive/FROM/DURATION/mpegts` (path form) | legacy middleware download |
//!
//! Invariants: a resource that does not start with one of these prefixes is
//! not an archive request (`None`), so live URLs never change meaning; one
//! that does but has malformed numbers is refused with a reason, never
//! guessed at. Numbers are plain decimal digits, at most
//! [`MAX_DIGITS`] of them, so no value overflows.

use strom_media::hls::TrackSelection;

/// Longest number accepted, digits (Unix seconds until year 33658).
pub const MAX_DIGITS: usize = 12;
/// Longest archive range one request may name, seconds.
pub const MAX_DURATION: u64 = 48 * 3600;
/// Farthest back a relative request may reach, seconds (a year).
pub const MAX_AGO: u64 = 366 * 86_400;

/// Which span of the archive a request names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Span {
    /// `[from, from + duration)`.
    Range { from: u64, duration: u64 },
    /// From `from` to the live edge, growing (`…-now`).
    Since { from: u64 },
    /// Live, starting at `from` (`timeshift_abs`).
    TimeshiftAbs { from: u64 },
    /// Live, `ago` seconds behind (`timeshift_rel`).
    TimeshiftRel { ago: u64 },
    /// The last `seconds` up to the live edge (`rewind`).
    Rewind { seconds: u64 },
}

/// What the response is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An HLS media playlist.
    Playlist,
    /// One MPEG-TS body, streamed.
    Ts,
}

/// A parsed archive URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveRequest {
    pub span: Span,
    pub format: Format,
    /// `tracks-SEL/…`: only these tracks.
    pub selection: Option<TrackSelection>,
}

/// Why an archive URL is refused (400), as a metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// Not decimal digits, or too many of them.
    NotANumber,
    /// A duration of 0.
    ZeroDuration,
    /// A range longer than [`MAX_DURATION`], or a relative start farther
    /// back than [`MAX_AGO`].
    TooLong,
    /// Starts after `now`.
    Future,
    /// A form that has no such variant (`rewind-….ts`).
    NoSuchForm,
}

impl Bad {
    /// The `reason` label and the reply text.
    pub fn reason(self) -> &'static str {
        match self {
            Bad::NotANumber => "not_a_number",
            Bad::ZeroDuration => "zero_duration",
            Bad::TooLong => "too_long",
            Bad::Future => "future",
            Bad::NoSuchForm => "no_such_form",
        }
    }

    /// A sentence for the reply body.
    pub fn message(self) -> &'static str {
        match self {
            Bad::NotANumber => "archive times and durations are whole seconds in decimal",
            Bad::ZeroDuration => "archive duration must be at least 1 second",
            Bad::TooLong => "archive range is too long",
            Bad::Future => "archive range starts in the future",
            Bad::NoSuchForm => "no such archive resource",
        }
    }
}

fn number(s: &str) -> Result<u64, Bad> {
    if s.is_empty() || s.len() > MAX_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Bad::NotANumber);
    }
    s.parse().map_err(|_| Bad::NotANumber)
}

/// Parses the last path segment. `None`: not an archive resource.
pub fn parse(resource: &str, selection: Option<TrackSelection>) -> Option<Result<ArchiveRequest, Bad>> {
    let (stem, format) = if let Some(s) = resource.strip_suffix(".m3u8") {
        (s, Format::Playlist)
    } else if let Some(s) = resource.strip_suffix(".ts") {
        (s, Format::Ts)
    } else {
        return None;
    };
    let ok = |span| {
        Some(Ok(ArchiveRequest {
            span,
            format,
            selection,
        }))
    };
    for prefix in ["timeshift_abs-", "timeshift_abs_mono-", "timeshift_abs_video-"] {
        if let Some(rest) = stem.strip_prefix(prefix) {
            return Some(number(rest)).map(|r| r.map(|from| req(Span::TimeshiftAbs { from }, format, selection)));
        }
    }
    for prefix in ["timeshift_rel-", "timeshift_rel_mono-", "timeshift_rel_video-"] {
        if let Some(rest) = stem.strip_prefix(prefix) {
            return Some(number(rest).and_then(|ago| {
                if ago > MAX_AGO {
                    return Err(Bad::TooLong);
                }
                Ok(req(Span::TimeshiftRel { ago }, format, selection))
            }));
        }
    }
    if let Some(rest) = stem.strip_prefix("rewind-") {
        if format == Format::Ts {
            return Some(Err(Bad::NoSuchForm));
        }
        return Some(number(rest).and_then(|seconds| match seconds {
            0 => Err(Bad::ZeroDuration),
            s if s > MAX_DURATION => Err(Bad::TooLong),
            _ => Ok(req(Span::Rewind { seconds }, format, selection)),
        }));
    }
    let rest = ["archive-", "index-", "mono-", "video-"]
        .iter()
        .find_map(|p| stem.strip_prefix(p).map(|r| (*p, r)));
    let (prefix, rest) = rest?;
    // `index-N.m3u8`-like names without a second number are not archive
    // URLs, nor are `mono-…`/`video-…`/`index-…` names that do not go on
    // with a digit (`mono-timeshift_rel-30.m3u8` is no form of ours: 404).
    let (a, b) = rest.split_once('-')?;
    if prefix != "archive-" && !a.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if format == Format::Ts && prefix != "archive-" {
        return None;
    }
    let from = match number(a) {
        Ok(f) => f,
        Err(e) => return Some(Err(e)),
    };
    if b == "now" {
        if format == Format::Ts {
            return Some(Err(Bad::NoSuchForm));
        }
        return ok(Span::Since { from });
    }
    Some(range(from, b).map(|span| req(span, format, selection)))
}

fn req(span: Span, format: Format, selection: Option<TrackSelection>) -> ArchiveRequest {
    ArchiveRequest {
        span,
        format,
        selection,
    }
}

fn range(from: u64, duration: &str) -> Result<Span, Bad> {
    match number(duration)? {
        0 => Err(Bad::ZeroDuration),
        d if d > MAX_DURATION => Err(Bad::TooLong),
        d => Ok(Span::Range { from, duration: d }),
    }
}

/// The legacy path form `…/archive/FROM/DURATION/mpegts`: the stream name
/// before it and the request. `None` when the path is not of that form.
pub fn parse_legacy(path_without_slash: &str) -> Option<(&str, Result<ArchiveRequest, Bad>)> {
    let rest = path_without_slash.strip_suffix("/mpegts")?;
    let (rest, duration) = rest.rsplit_once('/')?;
    let (rest, from) = rest.rsplit_once('/')?;
    let name = rest.strip_suffix("/archive")?;
    if name.is_empty() {
        return None;
    }
    let parsed = number(from)
        .and_then(|f| range(f, duration))
        .map(|span| req(span, Format::Ts, None));
    Some((name, parsed))
}

impl ArchiveRequest {
    /// Refuses a request that starts after `now` (UTC Unix seconds).
    pub fn check(&self, now: u64) -> Result<(), Bad> {
        let from = match self.span {
            Span::Range { from, .. } | Span::Since { from } | Span::TimeshiftAbs { from } => from,
            Span::TimeshiftRel { .. } | Span::Rewind { .. } => return Ok(()),
        };
        if from > now {
            return Err(Bad::Future);
        }
        // A growing (EVENT) playlist never drops its first segments, so it
        // may not start further back than the longest range.
        if matches!(self.span, Span::Since { .. }) && now - from > MAX_DURATION {
            return Err(Bad::TooLong);
        }
        Ok(())
    }

    /// The request's start on the timeline at `now`, Unix seconds.
    pub fn start(&self, now: u64) -> u64 {
        match self.span {
            Span::Range { from, .. } | Span::Since { from } | Span::TimeshiftAbs { from } => from,
            Span::TimeshiftRel { ago } => now.saturating_sub(ago),
            Span::Rewind { seconds } => now.saturating_sub(seconds),
        }
    }

    /// Whether the response follows the live edge (more segments come).
    pub fn follows_live(&self) -> bool {
        !matches!(self.span, Span::Range { .. })
    }

    /// The `dvr` value for the authorization backend: `FROM-DURATION` in
    /// Unix seconds (`FROM-now` for growing ranges).
    pub fn auth_value(&self, now: u64) -> String {
        match self.span {
            Span::Range { from, duration } => format!("{from}-{duration}"),
            _ => format!("{}-now", self.start(now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Option<Result<ArchiveRequest, Bad>> {
        parse(s, None)
    }

    fn span(s: &str) -> Span {
        p(s).expect("archive resource").expect("valid").span
    }

    #[test]
    fn flussonic_forms() {
        assert_eq!(
            span("archive-1700000000-3600.m3u8"),
            Span::Range {
                from: 1_700_000_000,
                duration: 3600
            }
        );
        assert_eq!(span("index-1700000000-60.m3u8"), span("archive-1700000000-60.m3u8"));
        assert_eq!(span("mono-1700000000-60.m3u8"), span("archive-1700000000-60.m3u8"));
        assert_eq!(span("index-1700000000-now.m3u8"), Span::Since { from: 1_700_000_000 });
        assert_eq!(
            span("timeshift_abs-1700000000.ts"),
            Span::TimeshiftAbs { from: 1_700_000_000 }
        );
        assert_eq!(
            span("timeshift_abs_mono-1700000000.m3u8"),
            Span::TimeshiftAbs { from: 1_700_000_000 }
        );
        assert_eq!(span("timeshift_rel-20.m3u8"), Span::TimeshiftRel { ago: 20 });
        assert_eq!(span("rewind-7200.m3u8"), Span::Rewind { seconds: 7200 });
        let ts = p("archive-1700000000-30.ts").and_then(Result::ok).expect("ts");
        assert_eq!(ts.format, Format::Ts);
        let sel = TrackSelection::parse("tracks-v1a1");
        let r = parse("index-1700000000-60.m3u8", sel)
            .and_then(Result::ok)
            .expect("sel");
        assert_eq!(r.selection, sel);
    }

    #[test]
    fn live_names_are_not_archive_requests() {
        for s in [
            "index.m3u8",
            "mono.m3u8",
            "video.m3u8",
            "123.ts",
            "mpegts",
            "index-5.m3u8",
            "mono-x.ts",
            "foo-1-2.m3u8",
            "mono-timeshift_rel-30.m3u8",
            "index-timeshift_rel-30.m3u8",
            "mono-rewind-30.m3u8",
        ] {
            assert_eq!(p(s), None, "{s}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        assert_eq!(p("archive-abc-60.m3u8"), Some(Err(Bad::NotANumber)));
        assert_eq!(p("archive-1700000000-0.m3u8"), Some(Err(Bad::ZeroDuration)));
        assert_eq!(p("archive-1700000000-315360000.m3u8"), Some(Err(Bad::TooLong)));
        assert_eq!(p("archive-99999999999999999999-60.m3u8"), Some(Err(Bad::NotANumber)));
        assert_eq!(p("archive--60.m3u8"), Some(Err(Bad::NotANumber)));
        assert_eq!(p("archive-+5-60.m3u8"), Some(Err(Bad::NotANumber)));
        assert_eq!(p("timeshift_rel-999999999.m3u8"), Some(Err(Bad::TooLong)));
        assert_eq!(p("rewind-60.ts"), Some(Err(Bad::NoSuchForm)));
        assert_eq!(p("archive-1700000000-now.ts"), Some(Err(Bad::NoSuchForm)));
        let since = p("archive-1700000000-now.m3u8").and_then(Result::ok).expect("parses");
        assert_eq!(since.check(1_700_000_000 + MAX_DURATION), Ok(()));
        assert_eq!(since.check(1_700_000_001 + MAX_DURATION), Err(Bad::TooLong));
        let r = p("archive-1800000000-60.m3u8").and_then(Result::ok).expect("parses");
        assert_eq!(r.check(1_700_000_000), Err(Bad::Future));
        assert_eq!(r.check(1_800_000_000), Ok(()));
    }

    #[test]
    fn legacy_path_form() {
        let (name, r) = parse_legacy("mylive/cam1/archive/1700000000/3600/mpegts").expect("legacy");
        assert_eq!(name, "mylive/cam1");
        assert_eq!(
            r.map(|r| (r.span, r.format)),
            Ok((
                Span::Range {
                    from: 1_700_000_000,
                    duration: 3600
                },
                Format::Ts
            ))
        );
        assert_eq!(
            parse_legacy("ch/archive/x/3600/mpegts").map(|(_, r)| r),
            Some(Err(Bad::NotANumber))
        );
        assert!(parse_legacy("archive/1/2/mpegts").is_none());
        assert!(parse_legacy("ch/mpegts").is_none());
    }

    proptest! {
        #[test]
        fn never_panics_and_round_trips(from in 0u64..100_000_000_000, d in 1u64..=MAX_DURATION, junk in ".{0,40}") {
            let _ = p(&junk);
            let _ = parse_legacy(&junk);
            let text = format!("archive-{from}-{d}.m3u8");
            prop_assert_eq!(span(&text), Span::Range { from, duration: d });
            let r = p(&text).and_then(Result::ok).expect("valid");
            prop_assert_eq!(r.check(from), Ok(()));
            prop_assert_eq!(r.auth_value(from), format!("{from}-{d}"));
        }
    }
}

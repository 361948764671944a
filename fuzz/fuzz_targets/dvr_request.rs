//! Fuzz target for the archive URL parser (`strom_node::dvr::request`).
//!
//! The input is a path's last segment (or a whole path for the legacy
//! `…/archive/FROM/DURATION/mpegts` form). Invariants:
//! - nothing panics;
//! - a parsed request has a duration in 1..=MAX_DURATION where it has one,
//!   and `check`/`start`/`auth_value` never panic for any `now`;
//! - a resource that parses prints back (as `archive-FROM-DURATION`) to a
//!   resource that parses to the same span.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_node::dvr::request::{self, Span, MAX_DURATION};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(Ok(r)) = request::parse(&text, None) {
        for now in [0, 1_700_000_000, u64::MAX] {
            let _ = r.check(now);
            let _ = r.start(now);
            let _ = r.auth_value(now);
        }
        if let Span::Range { from, duration } = r.span {
            assert!((1..=MAX_DURATION).contains(&duration));
            let again = request::parse(&format!("archive-{from}-{duration}.m3u8"), None);
            assert_eq!(again.and_then(Result::ok).map(|a| a.span), Some(r.span));
        }
    }
    if let Some((name, Ok(r))) = request::parse_legacy(&text) {
        assert!(!name.is_empty());
        assert!(matches!(r.span, Span::Range { .. }));
    }
});

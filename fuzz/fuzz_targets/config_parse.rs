//! Fuzz target for the config parsers (node, balancer, and `parse_any`).
//!
//! Invariants checked on every input (read as lossy UTF-8):
//! - `parse`, `parse_balancer` and `parse_any` never panic;
//! - on success, `to_text` parses back to an equal config of the same kind
//!   (with its own parser and with `parse_any`), and that text is a fixed
//!   point of `to_text`;
//! - on failure, there is at least one diagnostic and each one names the
//!   file and points at a character of the input or one past a line's end;
//! - `parse_any` returns exactly what the parser of the kind it picked does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_config::{AnyConfig, Diagnostic};

const FILE: &str = "fuzz.conf";

fn check_errs(text: &str, errs: &[Diagnostic]) {
    assert!(!errs.is_empty(), "Err without diagnostics");
    let lines: Vec<&str> = text.split('\n').collect();
    for d in errs {
        assert_eq!(d.file, FILE);
        let (line, col) = (d.line as usize, d.col as usize);
        assert!(
            line >= 1 && line <= lines.len(),
            "{d}: line outside the input ({} lines)",
            lines.len()
        );
        let width = lines[line - 1].chars().count();
        assert!(
            col >= 1 && col <= width + 1,
            "{d}: column outside line {line} ({width} chars)"
        );
    }
}

/// `to_text` of `config` parses back equal with `reparse` and with
/// `parse_any` (as `wrap(config)`), and is a fixed point of `to_text`.
fn check_round_trip<T: PartialEq + std::fmt::Debug>(
    config: &T,
    to_text: impl Fn(&T) -> String,
    reparse: impl Fn(&str) -> Result<T, Vec<Diagnostic>>,
    wrap: impl Fn(T) -> AnyConfig,
) {
    let canonical = to_text(config);
    match reparse(&canonical) {
        Ok(again) => {
            assert_eq!(&again, config, "round trip changed the config:\n{canonical}");
            assert_eq!(to_text(&again), canonical, "to_text is not a fixed point");
        }
        Err(errs) => panic!("canonical text does not parse: {errs:?}\n{canonical}"),
    }
    match strom_config::parse_any(FILE, &canonical) {
        Ok(any) => assert_eq!(any, wrap(reparse(&canonical).expect("parsed above"))),
        Err(errs) => panic!("parse_any rejects canonical text: {errs:?}\n{canonical}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let node = strom_config::parse(FILE, &text);
    match &node {
        Ok(config) => check_round_trip(
            config,
            |c| c.to_text(),
            |t| strom_config::parse(FILE, t),
            AnyConfig::Node,
        ),
        Err(errs) => check_errs(&text, errs),
    }
    let balancer = strom_config::parse_balancer(FILE, &text);
    match &balancer {
        Ok(config) => check_round_trip(
            config,
            |c| c.to_text(),
            |t| strom_config::parse_balancer(FILE, t),
            AnyConfig::Balancer,
        ),
        Err(errs) => check_errs(&text, errs),
    }
    match strom_config::parse_any(FILE, &text) {
        Ok(AnyConfig::Node(c)) => assert_eq!(node, Ok(c), "parse_any disagrees with parse"),
        Ok(AnyConfig::Balancer(c)) => {
            assert_eq!(balancer, Ok(c), "parse_any disagrees with parse_balancer")
        }
        Err(errs) => assert!(
            node.as_ref().err() == Some(&errs) || balancer.as_ref().err() == Some(&errs),
            "parse_any errors are neither kind's: {errs:?}"
        ),
    }
});

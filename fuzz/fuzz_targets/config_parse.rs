//! Fuzz target for the config parser.
//!
//! Invariants checked on every input (read as lossy UTF-8):
//! - `parse` never panics;
//! - on success, `to_text` parses back to an equal `Config`, and that text is
//!   a fixed point of `to_text`;
//! - on failure, there is at least one diagnostic and each one names the
//!   file and points at a character of the input or one past a line's end.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match strom_config::parse("fuzz.conf", &text) {
        Ok(config) => {
            let canonical = config.to_text();
            match strom_config::parse("fuzz.conf", &canonical) {
                Ok(again) => {
                    assert_eq!(again, config, "round trip changed the config:\n{canonical}");
                    assert_eq!(again.to_text(), canonical, "to_text is not a fixed point");
                }
                Err(errs) => panic!("canonical text does not parse: {errs:?}\n{canonical}"),
            }
        }
        Err(errs) => {
            assert!(!errs.is_empty(), "Err without diagnostics");
            let lines: Vec<&str> = text.split('\n').collect();
            for d in &errs {
                assert_eq!(d.file, "fuzz.conf");
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
    }
});

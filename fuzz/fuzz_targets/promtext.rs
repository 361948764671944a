//! Fuzz target for the Prometheus text parser the balancer reads streamers' `/metrics` with.
//!
//! Invariants: `parse` never panics; on success every sample has a non-empty
//! name made of metric-name characters and re-rendering a sample without
//! labels parses back to the same name and value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_balancer::promtext;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(samples) = promtext::parse(&text) {
        for s in &samples {
            assert!(!s.name.is_empty());
            assert!(s
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'));
            if s.value.is_finite() {
                let again = promtext::parse(&format!("{} {}\n", s.name, s.value)).expect("re-rendered sample parses");
                assert_eq!(again[0].name, s.name);
                assert_eq!(again[0].value, s.value);
            }
        }
    }
});

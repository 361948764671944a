//! Fuzz target for the balancer front's request heads
//! (`strom_balancer::http1`): arbitrary bytes read as a stream of pipelined
//! requests, each answered with a redirect built from its target.
//!
//! Invariants: `parse` never panics; a head it accepts lies within the
//! input and within `MAX_HEAD`, its body within `MAX_BODY`; reading the
//! stream request by request always moves forward; a redirect written from
//! any accepted origin-form target (what the front redirects) is one
//! well-formed head: a status line, fields without CR or LF inside, and a
//! blank line at the end only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_balancer::http1;

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while at < data.len() {
        let mut slots = http1::header_slots();
        let head = match http1::parse(&data[at..], &mut slots) {
            Ok(Some(h)) => h,
            Ok(None) | Err(_) => return,
        };
        assert!(head.len > 0 && head.len <= data.len() - at && head.len <= http1::MAX_HEAD);
        assert!(head.body <= http1::MAX_BODY);
        let mut out = Vec::new();
        let keep = head.keep_alive;
        // The front redirects only origin-form targets (`/...`).
        if head.path().starts_with('/')
            && http1::write_redirect(&mut out, "http://n1:8080", head.path(), head.query(), "strom_hop", keep, false, "D") {
            let text = std::str::from_utf8(&out).ok();
            let end = out.windows(4).position(|w| w == b"\r\n\r\n");
            assert_eq!(end, Some(out.len() - 4), "one head, ended once: {text:?}");
            for line in out[..out.len() - 4].split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                assert!(!line.contains(&b'\r'), "a bare CR in {text:?}");
            }
            assert!(out.starts_with(b"HTTP/1.1 302 Found\r\nlocation: http://n1:8080/"));
        }
        at += head.len + head.body;
    }
});

//! Fuzz target for the SRT streamid parser (`strom_node::srt::parse_streamid`).
//!
//! Invariants: nothing panics; a parsed streamid has a non-empty name
//! without control characters or `?`, and an empty query is never kept;
//! inputs over 512 bytes are refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_node::srt::{parse_streamid, StreamIdError};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_streamid(&text) {
        Ok(id) => {
            assert!(text.len() <= 512);
            assert!(!id.name.is_empty());
            assert!(!id.name.chars().any(char::is_control));
            assert!(!id.name.contains('?'));
            assert!(id.query.as_deref() != Some(""));
        }
        Err(StreamIdError::TooLong) => assert!(text.len() > 512),
        Err(_) => {}
    }
});

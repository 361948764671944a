//! Fuzz target for what strom reads from an authorization backend
//! (`strom_node::access::backend::parse_response`) and for the request URL
//! it builds from viewer-controlled values (`request_url`).
//!
//! Input: 2 bytes of HTTP status, then `NAME: VALUE` header lines split on
//! `\n` (raw bytes, any encoding); the same bytes, split on `\0`, also serve
//! as stream name, token, user agent and query of a request. Invariants:
//! - nothing panics;
//! - an allow carries only bounded, printable terms (user id at most 128
//!   visible ASCII bytes, a cap of 1..=10000 sessions, a duration of
//!   1..=86400 s);
//! - a redirect's Location is an absolute http(s) URL of visible ASCII;
//! - every viewer value survives the request URL's encoding unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use strom_node::access::backend::{parse_response, request_url, Outcome, Query, RequestType};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = u16::from_be_bytes([data[0], data[1]]) % 1000;
    let rest = &data[2..];
    let mut headers: HashMap<String, &[u8]> = HashMap::new();
    for line in rest.split(|b| *b == b'\n') {
        if let Some(colon) = line.iter().position(|b| *b == b':') {
            let name = String::from_utf8_lossy(&line[..colon]).trim().to_ascii_lowercase();
            headers.entry(name).or_insert(&line[colon + 1..]);
        }
    }
    match parse_response(status, |n| headers.get(n).copied()) {
        Outcome::Allow { grant, duration } => {
            assert_eq!(status, 200);
            if let Some(u) = &grant.user {
                assert!(u.len() <= 128 && u.bytes().all(|b| b.is_ascii_graphic()));
            }
            if let Some(m) = grant.max_sessions {
                assert!((1..=10_000).contains(&m));
            }
            if let Some(d) = duration {
                assert!((1..=86_400).contains(&d.as_secs()));
            }
        }
        Outcome::Redirect { location, .. } => {
            assert_eq!(status, 302);
            assert!(location.starts_with("http://") || location.starts_with("https://"));
            assert!(location.bytes().all(|b| b.is_ascii_graphic()));
        }
        Outcome::Deny { .. } => assert!((400..500).contains(&status)),
        Outcome::Error(_) => {}
    }
    let parts: Vec<String> = rest
        .split(|b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let part = |i: usize| parts.get(i).map(String::as_str).unwrap_or("");
    let q = Query {
        name: part(0),
        proto: "hls",
        ip: None,
        token: part(1),
        session_id: "0123456789abcdef",
        request_type: RequestType::NewSession,
        request_number: 1,
        stream_clients: 0,
        total_clients: 0,
        user_agent: Some(part(2)),
        referer: None,
        qs: Some(part(3)),
        dvr: None,
    };
    let url = request_url("http://auth.example/check?k=1", &q).expect("a valid base URL");
    let pairs: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(pairs["name"], part(0));
    assert_eq!(pairs["token"], part(1));
    assert_eq!(pairs["qs"], part(3));
    assert_eq!(pairs["k"], "1");
});

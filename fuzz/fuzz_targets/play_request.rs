//! Fuzz target for the playback request parser (`PlayRequest::parse`) and
//! the `Range` header parser (`ByteRange`).
//!
//! The input is split at the first two NUL bytes into a path, a query and a
//! `Range` value. Invariants:
//! - nothing panics;
//! - a parsed request names a valid stream and its resource is the last
//!   path segment, so `/NAME/RESOURCE` rebuilds the path;
//! - a resolved range lies inside the body.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use strom_node::http::request::{ByteRange, PlayRequest};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let path = parts.next().unwrap_or("");
    let query = parts.next();
    let range = parts.next().unwrap_or("");
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(range) {
        headers.insert(axum::http::header::RANGE, v);
    }
    if let Ok(r) = PlayRequest::parse(Method::GET, path, query, &headers, None) {
        assert!(strom_config::check_stream_name(&r.name).is_ok());
        let resource = path.rsplit('/').next().unwrap_or("");
        assert!(!resource.is_empty());
        let rebuilt = match r.resource.selection() {
            Some(sel) => format!("{}/{sel}/{}", r.name, resource),
            None => format!("{}/{}", r.name, resource),
        };
        assert_eq!(path.strip_prefix('/').unwrap_or(path), rebuilt);
        let _ = r.session_key();
    }
    if let Some(br) = ByteRange::parse(range) {
        for len in [0u64, 1, 188, 1 << 20, u64::MAX] {
            if let Ok((a, b)) = br.resolve(len) {
                assert!(a <= b && b < len);
            }
        }
    }
});

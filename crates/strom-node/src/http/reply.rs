//! Response builders shared by the gate, the outputs and the API: plain-text
//! errors, the bounded 503 of a stream that is not ready, and bodies served
//! whole or as one byte range (RFC 9110 §14).

use super::request::{ByteRange, Unsatisfiable};
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

pub const M3U8: &str = "application/vnd.apple.mpegurl";
pub const MP2T: &str = "video/mp2t";
/// Seconds a client is told to wait before asking a stream that is not ready again.
pub const RETRY_AFTER_SECS: &str = "2";

/// A plain-text error.
pub fn error(code: StatusCode, msg: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{msg}\n"),
    )
        .into_response()
}

/// 503 with `Retry-After`: the stream has nothing to play now.
pub fn not_ready() -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "stream is not ready");
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    r
}

/// A body of static content type, whole (200) or the one range asked for
/// (206 with `Content-Range`, or 416 when it cannot be satisfied). Always
/// advertises `Accept-Ranges: bytes`.
pub fn ranged(body: Bytes, range: Option<ByteRange>, content_type: &'static str, cache: &'static str) -> Response {
    let len = body.len() as u64;
    let mut resp = match range.map(|r| r.resolve(len)) {
        None => (StatusCode::OK, body).into_response(),
        Some(Ok((a, b))) => {
            let mut r = (StatusCode::PARTIAL_CONTENT, body.slice(a as usize..=b as usize)).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
        Some(Err(Unsatisfiable)) => {
            let mut r = (StatusCode::RANGE_NOT_SATISFIABLE, Body::empty()).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return with_ranges(r);
        }
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    with_ranges(resp)
}

fn with_ranges(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_partial_and_unsatisfiable() {
        let body = Bytes::from_static(b"0123456789");
        let r = ranged(body.clone(), None, MP2T, "no-cache");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::ACCEPT_RANGES], "bytes");
        let r = ranged(body.clone(), Some(ByteRange::FromTo(2, 4)), MP2T, "no-cache");
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 2-4/10");
        let r = ranged(body.clone(), Some(ByteRange::Suffix(3)), MP2T, "no-cache");
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 7-9/10");
        let r = ranged(body, Some(ByteRange::From(10)), MP2T, "no-cache");
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes */10");
    }
}

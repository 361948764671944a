//! Request heads: framing, limits, keep-alive rules; response bytes.

use super::*;

/// method, target, head length, body length, keep-alive, expect-continue.
type Summary = (String, String, usize, usize, bool, bool);

fn parsed(text: &str) -> Result<Option<Summary>, Bad> {
    let mut headers = header_slots();
    parse(text.as_bytes(), &mut headers).map(|h| {
        h.map(|h| {
            (
                h.method.to_string(),
                h.target.to_string(),
                h.len,
                h.body,
                h.keep_alive,
                h.expect_continue,
            )
        })
    })
}

#[test]
fn a_plain_get_and_its_parts() {
    let text = "GET /ch/index.m3u8?token=t HTTP/1.1\r\nHost: b\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\n\r\n";
    let mut headers = header_slots();
    let h = parse(text.as_bytes(), &mut headers).expect("valid").expect("complete");
    assert_eq!(
        (h.method, h.target, h.minor, h.len, h.body),
        ("GET", "/ch/index.m3u8?token=t", 1, text.len(), 0)
    );
    assert_eq!((h.path(), h.query()), ("/ch/index.m3u8", Some("token=t")));
    assert!(h.keep_alive && h.is_read() && !h.expect_continue);
    let xff: Vec<&[u8]> = h.values("X-FORWARDED-FOR").collect();
    assert_eq!(xff, [&b"10.0.0.1"[..], b"10.0.0.2"]);
}

#[test]
fn incomplete_heads_ask_for_more_until_the_limit() {
    assert_eq!(parsed("GET /a HTTP/1.1\r\nHost: b\r\n"), Ok(None));
    assert_eq!(parsed(""), Ok(None));
    let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
    assert_eq!(parsed(&long), Err(Bad::HeadTooLarge));
    let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
    assert_eq!(parsed(&format!("GET / HTTP/1.1\r\n{many}\r\n")), Err(Bad::HeadTooLarge));
    assert_eq!(parsed("GARBAGE\r\n\r\n"), Err(Bad::Malformed));
    assert_eq!(parsed("GET / HTTP/2.0\r\n\r\n"), Err(Bad::Malformed));
}

#[test]
fn bodies_are_framed_by_content_length_only() {
    let ok = parsed("POST /api/v1/servers HTTP/1.1\r\nContent-Length: 12\r\n\r\n{\"a\": true}x");
    assert_eq!(ok.map(|h| h.map(|h| h.3)), Ok(Some(12)));
    let same_twice = parsed("POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n");
    assert_eq!(same_twice.map(|h| h.map(|h| h.3)), Ok(Some(3)));
    for bad in ["3, 4", "-1", "", "0x10", "99999999999999999999999"] {
        assert_eq!(
            parsed(&format!("POST / HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n")),
            Err(Bad::BadLength),
            "{bad}"
        );
    }
    assert_eq!(
        parsed("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
        Err(Bad::BadLength)
    );
    assert_eq!(
        parsed(&format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1)),
        Err(Bad::BodyTooLarge)
    );
    assert_eq!(
        parsed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Err(Bad::Chunked)
    );
    assert_eq!(
        parsed("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Err(Bad::Chunked),
        "both framings: refused, never guessed"
    );
    let expect = parsed("POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n");
    assert_eq!(expect.map(|h| h.map(|h| h.5)), Ok(Some(true)));
}

#[test]
fn keep_alive_follows_version_and_connection() {
    let keep = |text: &str| parsed(text).ok().flatten().map(|h| h.4);
    assert_eq!(keep("GET / HTTP/1.1\r\n\r\n"), Some(true));
    assert_eq!(keep("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), Some(false));
    assert_eq!(
        keep("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n"),
        Some(false)
    );
    assert_eq!(keep("GET / HTTP/1.0\r\n\r\n"), Some(false));
    assert_eq!(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), Some(true));
    assert_eq!(keep("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"), Some(true));
}

#[test]
fn pipelined_requests_are_read_one_at_a_time() {
    let two = b"GET /a/1 HTTP/1.1\r\n\r\nGET /b/2 HTTP/1.1\r\n\r\n";
    let mut headers = header_slots();
    let first = parse(two, &mut headers).expect("valid").expect("complete");
    assert_eq!((first.target, first.len), ("/a/1", 21));
    let at = first.len;
    let mut headers = header_slots();
    let second = parse(&two[at..], &mut headers).expect("valid").expect("complete");
    assert_eq!(second.target, "/b/2");
}

#[test]
fn responses_carry_length_date_and_close() {
    let mut out = Vec::new();
    write_response(
        &mut out,
        302,
        &[("location", b"http://n1/ch/i.m3u8?strom_hop=1")],
        b"",
        true,
        false,
        "Sun, 06 Nov 1994 08:49:37 GMT",
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 302 Found\r\nlocation: http://n1/ch/i.m3u8?strom_hop=1\r\ncontent-length: 0\r\n\
         date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
    );
    out.clear();
    assert!(write_redirect(
        &mut out,
        "http://n1",
        "/ch/i.m3u8",
        Some("token=a"),
        "strom_hop",
        false,
        false,
        "D"
    ));
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 302 Found\r\nlocation: http://n1/ch/i.m3u8?token=a&strom_hop=1\r\ncache-control: no-cache\r\n\
         content-length: 0\r\ndate: D\r\nconnection: close\r\n\r\n"
    );
    out.clear();
    assert!(write_redirect(
        &mut out,
        "http://n1",
        "/ch/i.m3u8",
        Some(""),
        "strom_hop",
        true,
        true,
        "D"
    ));
    assert!(String::from_utf8_lossy(&out).contains("location: http://n1/ch/i.m3u8?strom_hop=1\r\n"));
    out.clear();
    assert!(!write_redirect(
        &mut out,
        "http://n1",
        "/ch/i\r\nx: y",
        None,
        "strom_hop",
        true,
        false,
        "D"
    ));
    assert!(!write_redirect(
        &mut out,
        "",
        "/ch/i",
        None,
        "strom_hop",
        true,
        false,
        "D"
    ));
    assert!(out.is_empty(), "nothing written for a refused location");
    write_error(&mut out, 503, "limit", false, true, "D");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"));
    assert!(
        text.ends_with("content-length: 17\r\ndate: D\r\nconnection: close\r\n\r\n"),
        "HEAD: no body: {text}"
    );
    out.clear();
    write_response(&mut out, 204, &[], b"ignored", true, false, "D");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 204 No Content\r\ndate: D\r\n\r\n"
    );
    assert!(is_field_value(b"http://a/b?c=d\te"));
    assert!(!is_field_value(b"http://a/b\r\nx-evil: 1"));
    assert!(!is_field_value(b"a\x7f"));
}

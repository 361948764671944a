//! The HTTP/1.1 request heads the balancer's front reads, and the
//! responses it writes, without I/O.
//!
//! The front ([`crate::front`]) answers every viewer with a redirect; this
//! is the part of HTTP it needs, parsed with `httparse`:
//! - a request is a head (at most [`MAX_HEAD`] bytes, [`MAX_HEADERS`]
//!   fields) and a body framed by `Content-Length` only (at most
//!   [`MAX_BODY`]); `Transfer-Encoding` is refused (501), as are
//!   conflicting lengths (400);
//! - a connection stays open after a response unless the request said
//!   `Connection: close`, or is HTTP/1.0 without `Connection: keep-alive`;
//!   an HTTP/1.0 request kept open gets `Connection: keep-alive` in its
//!   answer (RFC 9112 §9.3), else it would take the connection as closing;
//! - a fragment (`#...`) in the request target is dropped: a client never
//!   sends one (RFC 9112 §3.2), and what follows `#` is not part of the
//!   path or the query.
//!
//! Invariants: [`parse`] never panics and never reads past its input; a
//! [`Head`] borrows the buffer it came from; responses carry
//! `Content-Length`, and a header value written here never holds CR or LF
//! (the caller's values are checked by [`is_field_value`]).

/// Longest request head read, in bytes.
pub const MAX_HEAD: usize = 32 * 1024;
/// Most header fields in a request.
pub const MAX_HEADERS: usize = 100;
/// Longest request body read, in bytes (the admin API's JSON).
pub const MAX_BODY: usize = crate::admin::MAX_BODY;

/// A parsed request head; strings borrow the read buffer.
#[derive(Debug)]
pub struct Head<'b> {
    /// The method, as sent.
    pub method: &'b str,
    /// The request target, as sent (origin form: `/path?query`).
    pub target: &'b str,
    /// HTTP/1.`minor`.
    pub minor: u8,
    /// Bytes of the head, blank line included.
    pub len: usize,
    /// Bytes of body that follow the head.
    pub body: usize,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was asked.
    pub expect_continue: bool,
    /// Every header field, in order.
    pub headers: &'b [httparse::Header<'b>],
}

impl Head<'_> {
    /// The values of every field called `name` (case-insensitive), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The target without any fragment (from `#` on).
    pub fn target(&self) -> &str {
        self.target.split_once('#').map_or(self.target, |(t, _)| t)
    }

    /// The path part of the target (before `?`, without a fragment).
    pub fn path(&self) -> &str {
        let t = self.target();
        t.split_once('?').map_or(t, |(p, _)| p)
    }

    /// The query part of the target (after `?`, before any `#`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target().split_once('?').map(|(_, q)| q)
    }

    /// How the connection goes on after the answer.
    pub fn persist(&self) -> Persist {
        Persist::new(self.keep_alive, self.minor)
    }

    /// `GET` or `HEAD`.
    pub fn is_read(&self) -> bool {
        self.method == "GET" || self.method == "HEAD"
    }
}

/// How the connection goes on after a response, as its `Connection` field
/// says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// It closes: `Connection: close`.
    Close,
    /// HTTP/1.1, open: no field (persistence is the default).
    KeepAlive,
    /// HTTP/1.0, open: `Connection: keep-alive` (RFC 9112 §9.3).
    KeepAlive10,
}

impl Persist {
    /// From whether the connection stays open and the request's HTTP/1.`minor`.
    pub fn new(keep_alive: bool, minor: u8) -> Self {
        match (keep_alive, minor) {
            (false, _) => Persist::Close,
            (true, 0) => Persist::KeepAlive10,
            (true, _) => Persist::KeepAlive,
        }
    }

    /// Whether the connection stays open.
    pub fn keeps(self) -> bool {
        self != Persist::Close
    }
}

impl From<bool> for Persist {
    /// `true`: an HTTP/1.1 connection kept open; `false`: closing.
    fn from(keep_alive: bool) -> Self {
        Persist::new(keep_alive, 1)
    }
}

/// Why a request cannot be served; the connection closes after the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Not HTTP/1.x, or a malformed head (400).
    Malformed,
    /// The head is longer than [`MAX_HEAD`] or has too many fields (431).
    HeadTooLarge,
    /// Conflicting or unreadable `Content-Length` (400).
    BadLength,
    /// A body longer than [`MAX_BODY`] (413).
    BodyTooLarge,
    /// `Transfer-Encoding` framing, which the balancer does not read (501).
    Chunked,
}

impl Bad {
    /// The status to answer with.
    pub fn status(self) -> u16 {
        match self {
            Bad::Malformed | Bad::BadLength => 400,
            Bad::HeadTooLarge => 431,
            Bad::BodyTooLarge => 413,
            Bad::Chunked => 501,
        }
    }

    /// The `error` of the JSON answer.
    pub fn reason(self) -> &'static str {
        match self {
            Bad::Malformed => "malformed request",
            Bad::HeadTooLarge => "request head too large",
            Bad::BadLength => "bad Content-Length",
            Bad::BodyTooLarge => "too_large",
            Bad::Chunked => "Transfer-Encoding is not supported; send Content-Length",
        }
    }
}

/// Storage for one head's fields, left uninitialised until parsed.
pub type HeaderSlots<'b> = [std::mem::MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

/// Fresh storage for [`parse`]; costs nothing to make.
pub fn header_slots<'b>() -> HeaderSlots<'b> {
    [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS]
}

/// Parses the request head at the start of `buf` into `headers`'
/// storage. `Ok(None)`: incomplete, read more (unless `buf` already holds
/// [`MAX_HEAD`] bytes, which is [`Bad::HeadTooLarge`]).
pub fn parse<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [std::mem::MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<Head<'h>>, Bad>
where
    'b: 'h,
{
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(Bad::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Bad::HeadTooLarge),
        Err(_) => return Err(Bad::Malformed),
    };
    if len > MAX_HEAD {
        return Err(Bad::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Bad::Malformed);
    };
    let headers: &'h [httparse::Header<'b>] = req.headers;
    let mut body: Option<usize> = None;
    let mut close = minor == 0;
    let mut expect_continue = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(Bad::BadLength)?;
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if body.is_some_and(|b| b != n) {
                return Err(Bad::BadLength);
            }
            body = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Bad::Chunked);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && minor == 0 {
                    close = false;
                }
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
    let body = body.unwrap_or(0);
    if body > MAX_BODY {
        return Err(Bad::BodyTooLarge);
    }
    Ok(Some(Head {
        method,
        target,
        minor,
        len,
        body,
        keep_alive: !close,
        expect_continue,
        headers,
    }))
}

/// Whether `v` may be written as a header value: no control characters
/// (CR and LF above all) except tab.
pub fn is_field_value(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Appends the decimal digits of `n`.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends a status line: `HTTP/1.1 302 Found`.
pub fn push_status(out: &mut Vec<u8>, status: u16) {
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends the fields every response ends with, and the blank line:
/// `Content-Length` (unless `None`: a status that has no body),
/// `Date`, and `Connection` as `persist` says.
pub fn push_tail(out: &mut Vec<u8>, body_len: Option<usize>, persist: impl Into<Persist>, date: &str) {
    if let Some(n) = body_len {
        out.extend_from_slice(b"content-length: ");
        push_decimal(out, n as u64);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n");
    match persist.into() {
        Persist::Close => out.extend_from_slice(b"connection: close\r\n"),
        Persist::KeepAlive10 => out.extend_from_slice(b"connection: keep-alive\r\n"),
        Persist::KeepAlive => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a response to `out`: status line, `extra` fields (name, value;
/// values already checked), `Content-Length`, `Date`, `Connection` as
/// `keep_alive` says, then `body` unless `head_only`. A 1xx, 204 or 304
/// answer has neither length nor body (RFC 9110 §8.6).
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    extra: &[(&str, &[u8])],
    body: &[u8],
    keep_alive: impl Into<Persist>,
    head_only: bool,
    date: &str,
) {
    push_status(out, status);
    for (name, value) in extra {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    let bodiless = status < 200 || status == 204 || status == 304;
    push_tail(out, (!bodiless).then_some(body.len()), keep_alive, date);
    if !head_only && !bodiless {
        out.extend_from_slice(body);
    }
}

/// Appends a redirect to `location` = `base` + `path` + `?` + `query`
/// (`&`) + `strom_hop=1`, written straight into `out` (the viewer's
/// playback request, sent to the chosen server). `false`, with nothing
/// appended, if the location would not be a valid field value.
#[allow(clippy::too_many_arguments)]
pub fn write_redirect(
    out: &mut Vec<u8>,
    base: &str,
    path: &str,
    query: Option<&str>,
    hop: &str,
    keep_alive: impl Into<Persist>,
    head_only: bool,
    date: &str,
) -> bool {
    let query = query.filter(|q| !q.is_empty());
    let parts_ok = [base.as_bytes(), path.as_bytes(), query.unwrap_or("").as_bytes()]
        .iter()
        .all(|p| is_field_value(p));
    if base.is_empty() || !parts_ok {
        return false;
    }
    let _ = head_only; // a redirect has no body either way
    push_status(out, 302);
    out.extend_from_slice(b"location: ");
    out.extend_from_slice(base.as_bytes());
    out.extend_from_slice(path.as_bytes());
    out.push(b'?');
    if let Some(q) = query {
        out.extend_from_slice(q.as_bytes());
        out.push(b'&');
    }
    out.extend_from_slice(hop.as_bytes());
    out.extend_from_slice(b"=1\r\ncache-control: no-cache\r\n");
    push_tail(out, Some(0), keep_alive, date);
    true
}

/// A JSON error answer `{"error": reason}`.
pub fn write_error(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    keep_alive: impl Into<Persist>,
    head_only: bool,
    date: &str,
) {
    write_error_with(out, status, reason, &[], keep_alive, head_only, date);
}

/// [`write_error`] with `extra` fields after `Content-Type` (`Allow` of a 405).
pub fn write_error_with(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    extra: &[(&str, &[u8])],
    keep_alive: impl Into<Persist>,
    head_only: bool,
    date: &str,
) {
    let body = serde_json::json!({ "error": reason }).to_string();
    let mut fields: Vec<(&str, &[u8])> = Vec::with_capacity(1 + extra.len());
    fields.push(("content-type", b"application/json"));
    fields.extend_from_slice(extra);
    write_response(out, status, &fields, body.as_bytes(), keep_alive, head_only, date);
}

#[cfg(test)]
mod tests;

//! The authorization backend contract, sans I/O: the request URL strom
//! sends and what a response means (Flussonic's `on_play`/`on_publish`
//! protocol; REFERENCE "Play authorization", issue 11).
//!
//! Request: `GET URL?name=&proto=&ip=&token=&session_id=&request_type=
//! &request_number=&stream_clients=&total_clients=&user_agent=&referer=&qs=`,
//! every value form-urlencoded, appended with `&` when `URL` already has a
//! query. Response:
//! - 200 allows: `X-AuthDuration` (seconds, 1..=86400) caches it,
//!   `X-UserId` names the user, `X-Max-Sessions` (1..=10000) caps the
//!   user's sessions, `X-Unique: true` means one session per user;
//! - any other 4xx denies (cached too);
//! - 302 with an absolute `http(s)` `Location` redirects the viewer;
//! - anything else is a backend error.
//!
//! A header value that is malformed or out of range is ignored, never
//! trusted: the backend is a peer like any other.

use reqwest::Url;
use std::net::IpAddr;
use std::time::Duration;

/// Longest `X-UserId` kept, bytes.
pub const MAX_USER_ID: usize = 128;
/// Largest `X-Max-Sessions` honoured.
pub const MAX_SESSIONS_CAP: u32 = 10_000;
/// Longest `X-AuthDuration`, seconds (one day).
pub const MAX_AUTH_DURATION: u64 = 86_400;
/// Longest `Location` followed by a viewer, bytes.
pub const MAX_LOCATION: usize = 2048;
/// Longest user agent or referer passed to the backend (and kept), bytes.
pub const MAX_HEADER_VALUE: usize = 256;

/// `request_type` of a backend call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestType {
    /// The first question for a session (`request_number` 1).
    NewSession,
    /// A repeat every `X-AuthDuration` while the session lives.
    UpdateSession,
}

impl RequestType {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::NewSession => "new_session",
            RequestType::UpdateSession => "update_session",
        }
    }
}

/// Everything a backend call says about the viewer.
#[derive(Clone, Debug)]
pub struct Query<'a> {
    pub name: &'a str,
    /// `hls`, `mpegts`, `publish`, …
    pub proto: &'a str,
    pub ip: Option<IpAddr>,
    /// The raw `token` query value; empty when absent.
    pub token: &'a str,
    /// The strom session id (16 hex digits).
    pub session_id: &'a str,
    pub request_type: RequestType,
    /// 1 for `new_session`, then 2, 3, …
    pub request_number: u32,
    /// Viewers of this stream on this node.
    pub stream_clients: u64,
    /// Viewers of this node.
    pub total_clients: u64,
    pub user_agent: Option<&'a str>,
    pub referer: Option<&'a str>,
    /// The viewer's original query string.
    pub qs: Option<&'a str>,
    /// An archive request: `Some(range)` sends `dvr=1` and, when the range
    /// is known, `dvr_range=FROM-DURATION` (Unix seconds; `FROM-now` for a
    /// range that grows with live).
    pub dvr: Option<String>,
}

/// The URL of a backend call, or `None` when `base` does not parse (the
/// config checker refuses such URLs, so this is a backend error).
pub fn request_url(base: &str, q: &Query<'_>) -> Option<Url> {
    let mut url = Url::parse(base).ok()?;
    {
        let ip = q.ip.map(|ip| canonical_ip(ip).to_string()).unwrap_or_default();
        let mut p = url.query_pairs_mut();
        p.append_pair("name", q.name)
            .append_pair("proto", q.proto)
            .append_pair("ip", &ip)
            .append_pair("token", q.token)
            .append_pair("session_id", q.session_id)
            .append_pair("request_type", q.request_type.as_str())
            .append_pair("request_number", &q.request_number.to_string())
            .append_pair("stream_clients", &q.stream_clients.to_string())
            .append_pair("total_clients", &q.total_clients.to_string())
            .append_pair("user_agent", bounded(q.user_agent.unwrap_or("")))
            .append_pair("referer", bounded(q.referer.unwrap_or("")))
            .append_pair("qs", q.qs.unwrap_or(""));
        if let Some(range) = &q.dvr {
            p.append_pair("dvr", "1");
            if !range.is_empty() {
                p.append_pair("dvr_range", range);
            }
        }
    }
    Some(url)
}

/// `s` cut to at most [`MAX_HEADER_VALUE`] bytes at a character boundary.
pub fn bounded(s: &str) -> &str {
    if s.len() <= MAX_HEADER_VALUE {
        return s;
    }
    let mut end = MAX_HEADER_VALUE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An IPv4-mapped IPv6 address as IPv4 (a dual-stack listener sees IPv4
/// viewers that way); anything else unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A 200's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// `X-UserId`.
    pub user: Option<String>,
    /// `X-Max-Sessions`, or 1 for `X-Unique: true`.
    pub max_sessions: Option<u32>,
}

/// What a backend answer means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 200; `duration` from `X-AuthDuration` when valid.
    Allow { grant: Grant, duration: Option<Duration> },
    /// 4xx other than a usable redirect.
    Deny { duration: Option<Duration> },
    /// 302 to this absolute URL.
    Redirect {
        location: String,
        duration: Option<Duration>,
    },
    /// No usable answer.
    Error(ErrorKind),
}

/// Why a backend call gave no usable answer (the `result` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer within the configured timeout.
    Timeout,
    /// Connection failure, a 5xx, another 3xx, a 302 without a usable
    /// `Location`, or anything that is not HTTP.
    Error,
    /// Not asked: this node's calls to the backend were all in flight
    /// (a local limit, not the backend's failure).
    Busy,
}

impl Outcome {
    /// The `result` label of `strom_auth_requests_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Allow { .. } => "allow",
            Outcome::Deny { .. } => "deny",
            Outcome::Redirect { .. } => "redirect",
            Outcome::Error(ErrorKind::Timeout) => "timeout",
            Outcome::Error(ErrorKind::Error) => "error",
            Outcome::Error(ErrorKind::Busy) => "busy",
        }
    }
}

/// Reads a response: its status and a header lookup (case-insensitive
/// names, raw bytes).
pub fn parse_response<'h>(status: u16, header: impl Fn(&str) -> Option<&'h [u8]>) -> Outcome {
    let text = |name: &str| header(name).and_then(|v| std::str::from_utf8(v).ok()).map(str::trim);
    let duration = text("x-authduration")
        .filter(|v| !v.is_empty() && v.len() <= 12 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| (1..=MAX_AUTH_DURATION).contains(v))
        .map(Duration::from_secs);
    match status {
        200 => {
            let user = text("x-userid")
                .filter(|u| !u.is_empty() && u.len() <= MAX_USER_ID && u.bytes().all(|b| b.is_ascii_graphic()))
                .map(str::to_string);
            let unique = text("x-unique").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
            let max = text("x-max-sessions")
                .filter(|v| !v.is_empty() && v.len() <= 6 && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|v| (1..=MAX_SESSIONS_CAP).contains(v));
            let max_sessions = if unique { Some(1) } else { max };
            Outcome::Allow {
                grant: Grant { user, max_sessions },
                duration,
            }
        }
        302 => match text("location").and_then(usable_location) {
            Some(location) => Outcome::Redirect { location, duration },
            None => Outcome::Error(ErrorKind::Error),
        },
        400..=499 => Outcome::Deny { duration },
        _ => Outcome::Error(ErrorKind::Error),
    }
}

/// `l` as a normalized absolute `http(s)` URL of sane length with no
/// control characters, safe to hand to a viewer in a `Location` header
/// (`https:x//h` becomes `https://x//h`, as a browser would read it).
fn usable_location(l: &str) -> Option<String> {
    if l.len() > MAX_LOCATION || !l.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let u = Url::parse(l).ok()?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return None;
    }
    let s = u.to_string();
    (s.len() <= MAX_LOCATION).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn respond(status: u16, headers: &[(&str, &str)]) -> Outcome {
        let h: HashMap<String, Vec<u8>> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect();
        parse_response(status, |n| h.get(n).map(Vec::as_slice))
    }

    fn query<'a>() -> Query<'a> {
        Query {
            name: "mylive/cam 1",
            proto: "hls",
            ip: Some("::ffff:192.0.2.7".parse().expect("ip")),
            token: "a b&c=d",
            session_id: "0123456789abcdef",
            request_type: RequestType::NewSession,
            request_number: 1,
            stream_clients: 3,
            total_clients: 10,
            user_agent: Some("VLC/3.0"),
            referer: None,
            qs: Some("token=a%20b&x=1"),
            dvr: None,
        }
    }

    #[test]
    fn request_carries_every_parameter_encoded() {
        let url = request_url("http://auth.example/check?key=1", &query()).expect("url");
        let pairs: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["key"], "1", "the backend URL's own query is kept");
        assert_eq!(pairs["name"], "mylive/cam 1");
        assert_eq!(pairs["proto"], "hls");
        assert_eq!(pairs["ip"], "192.0.2.7", "IPv4-mapped addresses are sent as IPv4");
        assert_eq!(pairs["token"], "a b&c=d");
        assert_eq!(pairs["session_id"], "0123456789abcdef");
        assert_eq!(pairs["request_type"], "new_session");
        assert_eq!(pairs["request_number"], "1");
        assert_eq!(pairs["stream_clients"], "3");
        assert_eq!(pairs["total_clients"], "10");
        assert_eq!(pairs["user_agent"], "VLC/3.0");
        assert_eq!(pairs["referer"], "");
        assert_eq!(pairs["qs"], "token=a%20b&x=1");
        assert!(url
            .as_str()
            .starts_with("http://auth.example/check?key=1&name=mylive%2Fcam+1&"));
        assert!(request_url("not a url", &query()).is_none());
        assert!(!pairs.contains_key("dvr"), "live requests carry no dvr");
        let archive = Query {
            dvr: Some("1700000000-3600".into()),
            ..query()
        };
        let url = request_url("http://a/", &archive).expect("url");
        let pairs: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["dvr"], "1");
        assert_eq!(pairs["dvr_range"], "1700000000-3600");
        let segment = Query {
            dvr: Some(String::new()),
            ..query()
        };
        let url = request_url("http://a/", &segment).expect("url");
        let pairs: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["dvr"], "1");
        assert!(!pairs.contains_key("dvr_range"));
        let long = "é".repeat(300);
        let q = Query {
            user_agent: Some(&long),
            ..query()
        };
        let url = request_url("http://a/", &q).expect("url");
        let ua = url
            .query_pairs()
            .find(|(k, _)| k == "user_agent")
            .expect("ua")
            .1
            .into_owned();
        assert!(ua.len() <= MAX_HEADER_VALUE && ua.chars().all(|c| c == 'é'));
    }

    #[test]
    fn allow_with_terms() {
        assert_eq!(
            respond(
                200,
                &[("X-AuthDuration", "10"), ("X-UserId", "u42"), ("X-Max-Sessions", "2")]
            ),
            Outcome::Allow {
                grant: Grant {
                    user: Some("u42".into()),
                    max_sessions: Some(2)
                },
                duration: Some(Duration::from_secs(10)),
            }
        );
        let unique = respond(200, &[("X-Unique", "true"), ("X-Max-Sessions", "5")]);
        assert!(
            matches!(&unique, Outcome::Allow { grant, duration: None } if grant.max_sessions == Some(1)),
            "{unique:?}"
        );
        assert_eq!(
            respond(200, &[]),
            Outcome::Allow {
                grant: Grant::default(),
                duration: None
            },
            "a bare 200 allows with the defaults"
        );
    }

    #[test]
    fn malformed_terms_are_ignored() {
        for bad in ["0", "-5", "1e3", "", "86401", "99999999999999999999", " 10x"] {
            assert!(
                matches!(
                    respond(200, &[("X-AuthDuration", bad)]),
                    Outcome::Allow { duration: None, .. }
                ),
                "{bad:?}"
            );
        }
        for bad in ["0", "10001", "two", "-1"] {
            assert!(
                matches!(respond(200, &[("X-Max-Sessions", bad)]), Outcome::Allow { grant, .. } if grant.max_sessions.is_none()),
                "{bad:?}"
            );
        }
        let long = "u".repeat(MAX_USER_ID + 1);
        for bad in [long.as_str(), "a b", "\u{7f}"] {
            assert!(
                matches!(respond(200, &[("X-UserId", bad)]), Outcome::Allow { grant, .. } if grant.user.is_none()),
                "{bad:?}"
            );
        }
        let h = |n: &str| (n == "x-userid").then_some(&[0xffu8, 0xfe][..]);
        assert!(matches!(parse_response(200, h), Outcome::Allow { grant, .. } if grant.user.is_none()));
    }

    #[test]
    fn deny_redirect_and_errors() {
        assert_eq!(respond(403, &[]), Outcome::Deny { duration: None });
        assert_eq!(
            respond(404, &[("X-AuthDuration", "60")]),
            Outcome::Deny {
                duration: Some(Duration::from_secs(60))
            }
        );
        assert_eq!(
            respond(302, &[("Location", "https://other.example/x?y=1")]),
            Outcome::Redirect {
                location: "https://other.example/x?y=1".into(),
                duration: None
            }
        );
        assert_eq!(
            respond(302, &[("Location", "https:ex://other.example/x")]),
            Outcome::Redirect {
                location: "https://ex//other.example/x".into(),
                duration: None
            },
            "handed on normalized, as a browser would read it"
        );
        for loc in ["/relative", "javascript:alert(1)", "http://a/\r\nSet-Cookie: x", ""] {
            assert_eq!(
                respond(302, &[("Location", loc)]),
                Outcome::Error(ErrorKind::Error),
                "{loc:?}"
            );
        }
        assert_eq!(respond(302, &[]), Outcome::Error(ErrorKind::Error));
        for s in [500, 502, 301, 307, 204, 100, 0, 999] {
            assert_eq!(respond(s, &[]), Outcome::Error(ErrorKind::Error), "{s}");
        }
        assert_eq!(Outcome::Error(ErrorKind::Timeout).label(), "timeout");
    }

    proptest! {
        #[test]
        fn any_answer_is_read_without_panicking(status in 0u16..1000, d in "\\PC{0,20}", u in any::<Vec<u8>>(), m in "\\PC{0,8}", l in "\\PC{0,40}") {
            let o = parse_response(status, |n| match n {
                "x-authduration" => Some(d.as_bytes()),
                "x-userid" => Some(&u[..]),
                "x-max-sessions" => Some(m.as_bytes()),
                "location" => Some(l.as_bytes()),
                _ => None,
            });
            if let Outcome::Allow { grant, duration } = o {
                prop_assert!(grant.user.is_none_or(|u| u.len() <= MAX_USER_ID));
                prop_assert!(grant.max_sessions.is_none_or(|m| (1..=MAX_SESSIONS_CAP).contains(&m)));
                prop_assert!(duration.is_none_or(|d| d.as_secs() >= 1 && d.as_secs() <= MAX_AUTH_DURATION));
            }
        }

        #[test]
        fn request_values_round_trip(name in "\\PC{1,40}", token in "\\PC{0,60}", qs in "\\PC{0,60}") {
            let q = Query { name: &name, token: &token, qs: Some(&qs), ..query() };
            let url = request_url("http://auth.example/", &q).expect("url");
            let pairs: HashMap<String, String> = url.query_pairs().into_owned().collect();
            prop_assert_eq!(&pairs["name"], &name);
            prop_assert_eq!(&pairs["token"], &token);
            prop_assert_eq!(&pairs["qs"], &qs);
        }
    }
}

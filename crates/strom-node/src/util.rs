//! Small shared helpers: the UTC clock, a cancellable sleep and the one way
//! strom builds an outgoing HTTP client.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// Wall-clock UTC in 90 kHz ticks since the Unix epoch.
pub fn utc90_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_micros() as i64) * 9 / 100)
}

/// Sleeps for `d` unless `cancel` fires first; false when cancelled.
pub async fn sleep_or_cancel(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// The HTTP client for pulling inputs: a connect timeout and strom's user
/// agent. Response deadlines are per request.
pub fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("strom/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The HTTP client for node-to-node calls: as [`http_client`], but it never
/// follows a redirect, so a signed request is never re-sent to a host the
/// peer names.
pub fn cluster_client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .user_agent(concat!("strom/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Reads a response body of at most `max` bytes, chunk by chunk, so a peer
/// cannot make the node buffer more (the caller bounds the time).
pub async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("read failed: {e}"))? {
        if body.len() + chunk.len() > max {
            return Err(format!("answer larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Query parameter names whose values are secrets (matched case-insensitively
/// as substrings): masked wherever the node prints or serves a URL.
const SECRET_PARAMS: &[&str] = &["pass", "secret", "key", "token", "auth", "sig", "pwd"];

/// `url` with its password and secret-looking query values replaced by
/// `***`, for logs and the API (`http://admin:S3cret@h/p?apikey=x&a=1` →
/// `http://admin:***@h/p?apikey=***&a=1`). Anything that does not parse as
/// `scheme://…` is returned as it is.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority_and_path, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match authority_and_path.find('/') {
        Some(i) => authority_and_path.split_at(i),
        None => (authority_and_path, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(q) = query {
        out.push('?');
        let parts: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if SECRET_PARAMS.iter().any(|s| k.to_ascii_lowercase().contains(s)) => format!("{k}=***"),
                // A value may hold its own pairs (an SRT streamid's query).
                Some((k, v)) => format!("{k}={}", redact_secrets(v)),
                None => kv.to_string(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    out
}

/// `text` (a query, an SRT streamid) with the value of every
/// secret-looking `key=value` replaced by `***`: a value runs to the next
/// `&`, `,` or `?`. For logs of what a peer sent.
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let key_start = before.rfind(['&', ',', '?', ':', ';']).map_or(0, |i| i + 1);
        let key = before[key_start..].to_ascii_lowercase();
        let value_len = after[1..].find(['&', ',', '?']).unwrap_or(after.len() - 1);
        out.push_str(before);
        out.push('=');
        if SECRET_PARAMS.iter().any(|s| key.contains(s)) {
            out.push_str("***");
        } else {
            out.push_str(&after[1..1 + value_len]);
        }
        rest = &after[1 + value_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_streamids_and_queries_are_masked() {
        assert_eq!(
            redact_secrets("#!::r=studio?password=bad,m=publish"),
            "#!::r=studio?password=***,m=publish"
        );
        assert_eq!(redact_secrets("a?token=abc&x=1"), "a?token=***&x=1");
        assert_eq!(
            redact_url("srt://h:1?streamid=#!::r=x?password=y,m=publish&latency=200"),
            "srt://h:1?streamid=#!::r=x?password=***,m=publish&latency=200"
        );
        assert_eq!(redact_secrets("plain"), "plain");
        assert_eq!(redact_secrets("k=v=w&pass=="), "k=v=w&pass=***");
    }

    #[test]
    fn secrets_are_masked() {
        assert_eq!(
            redact_url("http://admin:S3cret@10.0.0.5:8080/live.ts?apikey=abc&ch=1&Token=z"),
            "http://admin:***@10.0.0.5:8080/live.ts?apikey=***&ch=1&Token=***"
        );
        assert_eq!(redact_url("udp://239.0.0.1:1234"), "udp://239.0.0.1:1234");
        assert_eq!(redact_url("tshttp://user@h/x"), "tshttp://user@h/x");
        assert_eq!(redact_url("/srv/slate.ts"), "/srv/slate.ts");
        assert_eq!(redact_url("http://h/p?flag"), "http://h/p?flag");
    }
}

/// Longest client- or peer-supplied text put into one log field, chars.
pub const MAX_LOGGED: usize = 128;

/// Text from a client or a peer, made safe for one log field: control
/// characters and newlines escaped (no forged lines), at most [`MAX_LOGGED`]
/// characters, with `…` when cut. Every log field that carries such text
/// goes through here.
pub fn peer_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_LOGGED) + 3);
    for (i, c) in s.chars().enumerate() {
        if i >= MAX_LOGGED {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Lets a repeated warning through at most once per `every`, counting the
/// ones held back so the next line can say how many there were.
#[derive(Debug)]
pub struct LogLimiter {
    every: Duration,
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl LogLimiter {
    pub const fn new(every: Duration) -> Self {
        LogLimiter {
            every,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// `Some(held_back)` when a line may be logged at `now`, `None` otherwise.
    pub fn allow(&self, now: std::time::Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0.is_some_and(|t| now.saturating_duration_since(t) < self.every) {
            s.1 += 1;
            return None;
        }
        s.0 = Some(now);
        Some(std::mem::take(&mut s.1))
    }
}

#[cfg(test)]
mod log_tests {
    use super::*;

    #[test]
    fn peer_text_is_escaped_and_bounded() {
        assert_eq!(peer_text("a\nINFO forged\r\x1b[31m"), "a\\nINFO forged\\r\\u{1b}[31m");
        let long = "x".repeat(1000);
        let t = peer_text(&long);
        assert_eq!(t.chars().count(), MAX_LOGGED + 1);
        assert!(t.ends_with('…'));
    }

    #[test]
    fn limiter_lets_one_line_through_per_period_and_counts_the_rest() {
        let l = LogLimiter::new(Duration::from_secs(10));
        let t0 = std::time::Instant::now();
        assert_eq!(l.allow(t0), Some(0));
        assert_eq!(l.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(l.allow(t0 + Duration::from_secs(2)), None);
        assert_eq!(l.allow(t0 + Duration::from_secs(10)), Some(2));
    }
}

//! Asking one server how it is: the thin I/O around [`crate::readings`].
//!
//! Per poll, for a server of any kind: the health request (its status
//! only), the load request (its body, parsed by `readings::read_load`) and,
//! when the server learns streams from an API, the stream list (every page
//! of a Flussonic list). Health and load are one request when they share a
//! URL (Wowza, Nimble and generic servers by default).
//!
//! Invariants: every request carries the server's credentials (`api_auth`
//! as Basic, or `api_token` as Bearer); every body is read under a byte cap
//! checked while it streams in, and every request (a whole list, all pages
//! together) ends by one deadline; failures come back as
//! [`ReadError`]s with their [`Fault`], never as panics, and never quote
//! the answer.

use std::time::Duration;

use strom_config::{ServerConfig, ServerKind, StreamList};
use tokio::time::Instant;

use crate::readings::{self, Fault, ReadError, StreamPage};

/// Largest body read for a load or a list page (a strom node's `/metrics`
/// with thousands of streams is a few MiB).
pub const MAX_BODY: usize = 16 << 20;
/// Most pages of one stream list.
pub const MAX_PAGES: usize = 100;

/// What one poll of one server found.
#[derive(Debug, Default)]
pub struct Polled {
    /// The health request answered the status that means Up, and the load
    /// was read: a server with no data is Down.
    pub healthy: bool,
    /// Clients the server reported.
    pub clients: Option<u64>,
    /// Streams it can play now, when it has a list API and it answered.
    pub streams: Option<Vec<String>>,
    /// Everything that went wrong, in order: health, load, list.
    pub errors: Vec<ReadError>,
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
}

impl<'a> Auth<'a> {
    fn of(s: &'a ServerConfig) -> Self {
        match (&s.api_auth, &s.api_token) {
            (Some(c), _) => Auth::Basic(&c.user, &c.password),
            (None, Some(t)) => Auth::Bearer(&t.0),
            (None, None) => Auth::None,
        }
    }
}

/// An answer: the status, and the body when it was read.
struct Answer {
    status: u16,
    body: Option<String>,
}

/// One GET, ended by `deadline`; the body is read (up to `cap` bytes)
/// only when `cap` is given.
async fn get(
    client: &reqwest::Client,
    url: &reqwest::Url,
    auth: Auth<'_>,
    cap: Option<usize>,
    deadline: Instant,
) -> Result<Answer, ReadError> {
    let fetch = async {
        let mut req = client.get(url.clone());
        req = match auth {
            Auth::None => req,
            Auth::Basic(user, password) => req.basic_auth(user, Some(password)),
            Auth::Bearer(token) => req.bearer_auth(token),
        };
        let mut resp = req.send().await.map_err(|e| transport_error(&e))?;
        let status = resp.status().as_u16();
        let Some(cap) = cap else {
            return Ok(Answer { status, body: None });
        };
        if resp.content_length().is_some_and(|n| n > cap as u64) {
            return Err(too_large(cap));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(&e))? {
            if body.len() + chunk.len() > cap {
                return Err(too_large(cap));
            }
            body.extend_from_slice(&chunk);
        }
        // Valid UTF-8 (the usual case) is kept without a second copy.
        let body = String::from_utf8(body).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Ok(Answer {
            status,
            body: Some(body),
        })
    };
    match tokio::time::timeout_at(deadline, fetch).await {
        Ok(r) => r,
        Err(_) => Err(ReadError::new(Fault::Timeout, "no whole answer in time")),
    }
}

fn too_large(cap: usize) -> ReadError {
    ReadError::new(Fault::TooLarge, format!("the answer is larger than {} MiB", cap >> 20))
}

/// A transport failure in the balancer's words (reqwest's and hyper's
/// messages can carry what the peer sent).
fn transport_error(e: &reqwest::Error) -> ReadError {
    let what = if e.is_timeout() {
        return ReadError::new(Fault::Timeout, "no whole answer in time");
    } else if e.is_redirect() {
        // The server answered, with redirects that never end: its status.
        return ReadError::new(Fault::Status, "too many redirects (a redirect loop)");
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "the request failed (no valid HTTP answer)"
    };
    ReadError::new(Fault::Connect, what)
}

fn parse_url(url: &str) -> Result<reqwest::Url, ReadError> {
    reqwest::Url::parse(url).map_err(|_| ReadError::new(Fault::Connect, "not a valid URL"))
}

/// Polls one server within `timeout`, as its kind and overrides say.
pub async fn poll_server(client: &reqwest::Client, s: &ServerConfig, timeout: Duration) -> Polled {
    let deadline = Instant::now() + timeout;
    let auth = Auth::of(s);
    let health = s.health_check();
    let load = s.load_source();
    let health_url = s.resolve(&health.target);
    let load_url = load.as_ref().map(|l| s.resolve(&l.target));
    let shared = load_url.as_deref() == Some(health_url.as_str());
    let list = match s.stream_list() {
        StreamList::Api => s.kind.stream_api(),
        StreamList::Channels => None,
    };

    let health_req = async {
        if shared {
            return None;
        }
        let url = match parse_url(&health_url) {
            Ok(u) => u,
            Err(e) => return Some(Err(e)),
        };
        Some(get(client, &url, auth, None, deadline).await.map(|a| a.status))
    };
    let load_req = async {
        let url = parse_url(load_url.as_deref().unwrap_or(""))?;
        get(client, &url, auth, Some(MAX_BODY), deadline).await
    };
    let list_req = async {
        match list {
            Some(path) => Some(read_list(client, s, path, auth, deadline).await),
            None => None,
        }
    };
    let (health_answer, load_answer, list_answer) = tokio::join!(health_req, load_req, list_req);

    let mut polled = Polled::default();
    let health_what = format!("health {}", health.target);
    let load_what = load
        .as_ref()
        .map_or_else(|| "load".to_string(), |l| format!("load {}", l.target));
    // Health: its own status, or the shared request's.
    let health_status = match (health_answer, &load_answer) {
        (Some(r), _) => r,
        (None, Ok(a)) => Ok(a.status),
        (None, Err(e)) => Err(e.clone()),
    };
    let health_ok = match health_status {
        Ok(status) if status == health.status => true,
        Ok(status) => {
            polled.errors.push(ReadError::new(
                Fault::Status,
                format!("{health_what} answered {status}, not {}", health.status),
            ));
            false
        }
        Err(e) => {
            polled.errors.push(e.context(&health_what));
            false
        }
    };
    polled.clients = match (&load, load_answer) {
        (None, _) => {
            polled
                .errors
                .push(ReadError::new(Fault::Missing, "no `load` source for this server"));
            None
        }
        (Some(_), Err(e)) => {
            // Already reported as the health failure when shared.
            if !shared {
                polled.errors.push(e.context(&load_what));
            }
            None
        }
        (Some(_), Ok(a)) if !(200..300).contains(&a.status) => {
            if !shared || health_ok {
                polled.errors.push(ReadError::new(
                    Fault::Status,
                    format!("{load_what} answered {}", a.status),
                ));
            }
            None
        }
        (Some(l), Ok(a)) => {
            let names = |v: &str| s.is_named(v);
            let series = s.match_label.as_ref().map(|m| m.label.as_str());
            let value = s.match_label.as_ref().and_then(|m| m.value.as_deref());
            let exact = |v: &str| Some(v) == value;
            let filter: readings::SeriesFilter<'_> = match (series, value) {
                (Some(label), Some(_)) => Some((label, &exact)),
                (Some(label), None) => Some((label, &names)),
                (None, _) => None,
            };
            match readings::read_load(a.body.as_deref().unwrap_or(""), l, filter) {
                Ok(n) => Some(n),
                Err(e) => {
                    polled.errors.push(e.context(&load_what));
                    None
                }
            }
        }
    };
    polled.streams = match list_answer {
        None => None,
        Some(Ok(names)) => Some(names),
        Some(Err(e)) => {
            polled.errors.push(e);
            None
        }
    };
    polled.healthy = health_ok && polled.clients.is_some();
    polled
}

/// A GET without credentials (a Prometheus query): status and body, under
/// the same cap and deadline rules.
pub async fn fetch_text(
    client: &reqwest::Client,
    url: &reqwest::Url,
    timeout: Duration,
) -> Result<(u16, String), ReadError> {
    let a = get(client, url, Auth::None, Some(MAX_BODY), Instant::now() + timeout).await?;
    Ok((a.status, a.body.unwrap_or_default()))
}

/// The whole stream list: one page for strom, every page for Flussonic
/// (following `next`), by one deadline.
async fn read_list(
    client: &reqwest::Client,
    s: &ServerConfig,
    path: &str,
    auth: Auth<'_>,
    deadline: Instant,
) -> Result<Vec<String>, ReadError> {
    let what = format!("streams {path}");
    let base = parse_url(&s.resolve(path)).map_err(|e| e.context(&what))?;
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut url = base.clone();
        if let Some(c) = &cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let answer = get(client, &url, auth, Some(MAX_BODY), deadline)
            .await
            .map_err(|e| e.context(&what))?;
        if answer.status != 200 {
            return Err(ReadError::new(
                Fault::Status,
                format!("{what} answered {}", answer.status),
            ));
        }
        let body = answer.body.unwrap_or_default();
        let page: StreamPage = match s.kind {
            ServerKind::Flussonic => readings::flussonic_streams(&body),
            _ => readings::strom_streams(&body),
        }
        .map_err(|e| e.context(&what))?;
        names.extend(page.names);
        if names.len() >= readings::MAX_LISTED {
            names.truncate(readings::MAX_LISTED);
            return Ok(names);
        }
        match page.next {
            Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
            _ => return Ok(names),
        }
    }
    Err(ReadError::new(
        Fault::TooLarge,
        format!("{what}: more than {MAX_PAGES} pages"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that redirects every request to itself: a redirect loop is
    /// the server's answer (`status`), not a failure to connect.
    #[tokio::test]
    async fn a_redirect_loop_is_a_status_fault() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut c, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ = c.read(&mut buf).await;
                    let answer = format!(
                        "HTTP/1.1 302 Found\r\nLocation: http://{addr}/metrics\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = c.write_all(answer.as_bytes()).await;
                });
            }
        });
        let url = reqwest::Url::parse(&format!("http://{addr}/metrics")).expect("url");
        let e = fetch_text(&reqwest::Client::new(), &url, Duration::from_secs(5))
            .await
            .expect_err("a loop");
        assert_eq!(e.fault, Fault::Status, "{e}");
        assert!(e.message.contains("redirect"), "{e}");
    }
}

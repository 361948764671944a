//! A scripted `on_play`/`on_publish` authorization backend for integration
//! tests: a small HTTP/1.1 server on 127.0.0.1 (std threads, no crates) that
//! records every request and answers by rules the test changes at run time.
//!
//! Contract followed: Flussonic's play authorization (REFERENCE, "Play
//! authorization"): 200 allows (with `X-AuthDuration`, `X-UserId`,
//! `X-Max-Sessions`, `X-Unique`), 403 denies, 302 redirects. The backend can
//! also misbehave on purpose (500, garbage, hang, 200 without headers) and be
//! killed so connections are refused.
//!
//! Bounds: one thread per connection, at most [`MAX_CONNECTIONS`] at once
//! (more are closed unanswered); a request head larger than [`MAX_HEAD`]
//! bytes gets 431; every read has a 5 s deadline; a hang lasts at most the
//! given time and ends early on `kill()`.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connections served at once; more are closed without an answer.
pub const MAX_CONNECTIONS: usize = 512;
/// Largest request head read, bytes (a 100 kB token must still be recorded).
pub const MAX_HEAD: usize = 1 << 20;

/// What a 200 carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// `X-AuthDuration`, seconds.
    pub duration: Option<u64>,
    /// `X-UserId`.
    pub user: Option<String>,
    /// `X-Max-Sessions`.
    pub max_sessions: Option<u32>,
    /// `X-Unique: true`.
    pub unique: bool,
}

impl Grant {
    /// A grant cached for `secs` seconds.
    pub fn secs(secs: u64) -> Grant {
        Grant {
            duration: Some(secs),
            ..Grant::default()
        }
    }

    /// The same grant for user `user`.
    pub fn user(mut self, user: &str) -> Grant {
        self.user = Some(user.to_string());
        self
    }

    /// The same grant with `X-Max-Sessions: n`.
    pub fn max(mut self, n: u32) -> Grant {
        self.max_sessions = Some(n);
        self
    }

    /// The same grant with `X-Unique: true`.
    pub fn unique(mut self) -> Grant {
        self.unique = true;
        self
    }
}

/// How the backend answers one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// 200 with the grant's headers.
    Allow(Grant),
    /// 403, with `X-AuthDuration` when given (seconds).
    Deny(Option<u64>),
    /// 302 with this `Location`.
    Redirect(String),
    /// 500.
    Error,
    /// Bytes that are not HTTP, then close.
    Garbage,
    /// Read the request, say nothing for this long, then close.
    Hang(Duration),
    /// `HTTP/1.1 200 OK` with no header at all (not even Content-Length), then close.
    Bare200,
    /// Say nothing for this long, then answer by the inner rule.
    Slow(Duration, Box<Rule>),
}

/// One request the backend received.
#[derive(Clone, Debug)]
pub struct Call {
    /// The path, without the query.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// Decoded query parameters (form-urlencoded; a repeated key keeps the first).
    pub params: BTreeMap<String, String>,
    /// When the request head was complete.
    pub at: Instant,
}

impl Call {
    /// A parameter's decoded value, `""` when absent.
    pub fn param(&self, key: &str) -> &str {
        self.params.get(key).map(String::as_str).unwrap_or("")
    }

    /// `request_type`.
    pub fn kind(&self) -> &str {
        self.param("request_type")
    }

    /// `token`.
    pub fn token(&self) -> &str {
        self.param("token")
    }
}

struct Rules {
    by_token: HashMap<String, Rule>,
    /// Rules for archive requests (`dvr=1`) by token, over `by_token`.
    archive_by_token: HashMap<String, Rule>,
    default: Rule,
}

struct Shared {
    rules: Mutex<Rules>,
    calls: Mutex<Vec<Call>>,
    stop: AtomicBool,
    live: AtomicUsize,
}

/// The running backend. Dropping it kills it.
pub struct AuthBackend {
    /// Its port on 127.0.0.1.
    pub port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl AuthBackend {
    /// Starts on a free port; requests for tokens without a rule get `default`.
    pub fn start(default: Rule) -> AuthBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind auth backend");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(Shared {
            rules: Mutex::new(Rules {
                by_token: HashMap::new(),
                archive_by_token: HashMap::new(),
                default,
            }),
            calls: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            live: AtomicUsize::new(0),
        });
        let sh = shared.clone();
        let accept = std::thread::spawn(move || accept_loop(listener, sh));
        AuthBackend {
            port,
            shared,
            accept: Some(accept),
        }
    }

    /// The backend's URL (path `/auth`), for `on_play URL;`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/auth", self.port)
    }

    /// Answers requests carrying `token` by `rule` from now on.
    pub fn set(&self, token: &str, rule: Rule) {
        lock(&self.shared.rules).by_token.insert(token.to_string(), rule);
    }

    /// Answers archive requests (`dvr=1`) carrying `token` by `rule`.
    pub fn set_archive(&self, token: &str, rule: Rule) {
        lock(&self.shared.rules)
            .archive_by_token
            .insert(token.to_string(), rule);
    }

    /// Answers requests for tokens without their own rule by `rule`.
    pub fn set_default(&self, rule: Rule) {
        lock(&self.shared.rules).default = rule;
    }

    /// Every request so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared.calls).clone()
    }

    /// The requests carrying `token`.
    pub fn calls_for(&self, token: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.token() == token).collect()
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        lock(&self.shared.calls).clear();
    }

    /// Stops accepting and closes the listener: new connections are refused.
    /// Hanging answers end early. Bounded: returns within about a second.
    pub fn kill(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.shared.live.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for AuthBackend {
    fn drop(&mut self) {
        self.kill();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((sock, _)) => {
                if shared.live.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                    continue; // dropped: closed unanswered
                }
                shared.live.fetch_add(1, Ordering::SeqCst);
                let sh = shared.clone();
                std::thread::spawn(move || {
                    serve(sock, &sh);
                    sh.live.fetch_sub(1, Ordering::SeqCst);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    // The listener drops here: the port refuses connections from now on.
}

/// Reads one request head; None on timeout, close or oversize (431 sent).
fn read_head(sock: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            buf.truncate(end);
            return Some(String::from_utf8_lossy(&buf).into_owned());
        }
        if buf.len() > MAX_HEAD {
            let _ = sock.write_all(b"HTTP/1.1 431 Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return None;
        }
        if Instant::now() > deadline {
            return None;
        }
        match sock.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return None,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn serve(mut sock: TcpStream, shared: &Shared) {
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = sock.set_write_timeout(Some(Duration::from_secs(5)));
    let Some(head) = read_head(&mut sock) else { return };
    let target = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_string();
    let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
    let call = Call {
        path: path.to_string(),
        query: query.to_string(),
        params: parse_query(query),
        at: Instant::now(),
    };
    let rule = {
        let rules = lock(&shared.rules);
        let archive = call.param("dvr") == "1";
        archive
            .then(|| rules.archive_by_token.get(call.token()))
            .flatten()
            .or_else(|| rules.by_token.get(call.token()))
            .cloned()
            .unwrap_or_else(|| rules.default.clone())
    };
    lock(&shared.calls).push(call);
    let rule = match rule {
        Rule::Slow(d, inner) => {
            let end = Instant::now() + d;
            while Instant::now() < end && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            *inner
        }
        r => r,
    };
    let reply = match rule {
        Rule::Allow(g) => {
            let mut h = String::from("HTTP/1.1 200 OK\r\n");
            if let Some(d) = g.duration {
                h.push_str(&format!("X-AuthDuration: {d}\r\n"));
            }
            if let Some(u) = &g.user {
                h.push_str(&format!("X-UserId: {u}\r\n"));
            }
            if let Some(m) = g.max_sessions {
                h.push_str(&format!("X-Max-Sessions: {m}\r\n"));
            }
            if g.unique {
                h.push_str("X-Unique: true\r\n");
            }
            h + "Content-Length: 0\r\nConnection: close\r\n\r\n"
        }
        Rule::Deny(d) => {
            let extra = d.map(|d| format!("X-AuthDuration: {d}\r\n")).unwrap_or_default();
            format!("HTTP/1.1 403 Forbidden\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n")
        }
        Rule::Redirect(loc) => {
            format!("HTTP/1.1 302 Found\r\nLocation: {loc}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
        Rule::Error => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
        Rule::Garbage => "\u{1}\u{2}garbage, not HTTP at all\r\n\r\n\u{0}\u{ff}".into(),
        Rule::Hang(d) => {
            let end = Instant::now() + d;
            while Instant::now() < end && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        Rule::Bare200 => "HTTP/1.1 200 OK\r\n\r\n".into(),
        Rule::Slow(..) => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    };
    let _ = sock.write_all(reply.as_bytes());
    let _ = sock.flush();
}

/// Decodes `a=b&c=d` (application/x-www-form-urlencoded: `+` is a space,
/// `%XX` a byte; invalid UTF-8 is replaced). The first of repeated keys wins.
pub fn parse_query(q: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(decode(k)).or_insert_with(|| decode(v));
    }
    out
}

/// Percent-decodes one form-urlencoded component.
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query value (everything but unreserved characters, RFC 3986 §2.3).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

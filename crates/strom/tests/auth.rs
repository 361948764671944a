//! Play and publish authorization end to end: real strom nodes on loopback,
//! a scripted `on_play`/`on_publish` backend (common/auth_backend.rs), real
//! ffmpeg and Prometheus. Viewers come from 127.0.0.1 or 127.0.0.2 (both on
//! the loopback interface) so tests can tell client addresses apart.
//!
//! The contract under test is Flussonic's (REFERENCE, "Play authorization"):
//! one backend call per session (`new_session`, then `update_session` every
//! X-AuthDuration, never one per segment), tokens carried into every child
//! URI, sessions listed and kicked through the API, limits per user across
//! peers, signed links, publish authorization, and hostile backends, tokens
//! and floods that never stall playback. Every wait is bounded.

mod common;

use common::auth_backend::{self, AuthBackend, Grant, Rule};
use common::*;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SEC: Duration = Duration::from_secs(1);
/// The address most viewers come from.
const LO1: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// A second client address on the loopback interface.
const LO2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

// ---------------------------------------------------------------- helpers

/// A node with one stream `demo` (the built-in demo, 1 s segments) whose
/// stream block also holds `stream_extra` (such as `on_play URL;`), and
/// `top` at the top level.
fn node(tag: &str, top: &str, stream_extra: &str) -> Strom {
    Strom::start(
        tag,
        &format!("{top}\nstream demo {{ input builtin://demo; segment_duration 1; {stream_extra} }}"),
    )
}

/// A node whose `demo` stream asks `b` (`on_play URL;`).
fn auth_node(tag: &str, b: &AuthBackend) -> Strom {
    node(tag, "", &format!("on_play {};", b.url()))
}

/// Waits until `name` has published a segment (read through the API, which
/// is never gated by play authorization).
fn wait_live(s: &Strom, name: &str) {
    wait_live_as(s, name, None);
}

/// [`wait_live`] with API credentials (`Authorization` value).
fn wait_live_as(s: &Strom, name: &str, auth: Option<&str>) {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    let url = s.url(&format!("/api/v1/streams/{name}"));
    wait_for(&format!("{name} live on port {}", s.port), 30 * SEC, || {
        let r = request(reqwest::Method::GET, &url, LO1, &headers)?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        (r.status == 200 && v["last_seq"].is_u64()).then_some(())
    });
}

/// The newest segment number of `name`, from the API.
fn last_seq(s: &Strom, name: &str) -> Option<u64> {
    let (_, body) = get(&s.url(&format!("/api/v1/streams/{name}")));
    serde_json::from_slice::<serde_json::Value>(&body).ok()?["last_seq"].as_u64()
}

/// One answer, with how long it took.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    took: Duration,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("JSON expected ({e}), got {}: {}", self.status, self.text()))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn client(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(15 * SEC)
        .build()
        .expect("client")
}

/// A request from `from` that never follows redirects; None when the
/// connection fails or 15 s pass without a whole answer.
fn request(method: reqwest::Method, url: &str, from: IpAddr, headers: &[(&str, &str)]) -> Option<Reply> {
    send(method, url, from, headers, true)
}

/// GET from `from` that reads the status and headers only (an HTTP-TS body
/// never ends); panics when there is no answer.
fn status_from(url: &str, from: IpAddr) -> Reply {
    send(reqwest::Method::GET, url, from, &[], false).unwrap_or_else(|| panic!("no answer to GET {url}"))
}

fn send(method: reqwest::Method, url: &str, from: IpAddr, headers: &[(&str, &str)], body: bool) -> Option<Reply> {
    runtime().block_on(async {
        let mut rq = client(from).request(method, url);
        for (k, v) in headers {
            rq = rq.header(*k, *v);
        }
        let t = Instant::now();
        let r = rq.send().await.ok()?;
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = if body {
            r.bytes().await.ok()?.to_vec()
        } else {
            Vec::new()
        };
        Some(Reply {
            status,
            headers,
            body,
            took: t.elapsed(),
        })
    })
}

/// GET from `from`; panics when there is no answer.
fn get_from(url: &str, from: IpAddr) -> Reply {
    request(reqwest::Method::GET, url, from, &[]).unwrap_or_else(|| panic!("no answer to GET {url}"))
}

/// The status of a GET from 127.0.0.1.
fn code(url: &str) -> u16 {
    status_from(url, LO1).status
}

/// The status of `GET PATH` sent on a raw socket (any length: HTTP client
/// libraries refuse URIs over 64 kB); None when no status line comes back.
fn raw_status(port: u16, path: &str) -> Option<u16> {
    let mut t = TcpStream::connect(("127.0.0.1", port)).ok()?;
    t.set_write_timeout(Some(10 * SEC)).ok()?;
    t.set_read_timeout(Some(10 * SEC)).ok()?;
    // The server may answer before it has read everything: ignore write errors.
    let _ = t.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
    let mut buf = [0u8; 64];
    let n = t.read(&mut buf).ok()?;
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// RFC 4648 base64, for HTTP Basic credentials (RFC 7617).
fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// The URI lines and `URI="…"` attributes of a playlist.
fn child_uris(playlist: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in playlist.lines() {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            out.push(line.to_string());
        } else if let Some(i) = line.find("URI=\"") {
            let rest = &line[i + 5..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}

/// The (raw) values of `key` in a URI's query, in order.
fn query_values(uri: &str, key: &str) -> Vec<String> {
    let q = uri.split_once('?').map(|x| x.1).unwrap_or("");
    q.split('&')
        .filter_map(|p| p.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v.to_string()))
        .collect()
}

/// Resolves a playlist's child URI against the playlist's URL.
fn resolve(base: &str, uri: &str) -> String {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return uri.to_string();
    }
    let path = base.split('?').next().unwrap_or(base);
    let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(path.len())];
    format!("{dir}{uri}")
}

fn is_hex16(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The sum of every sample of a metric family (all label sets).
fn metric_sum(s: &Strom, name: &str) -> f64 {
    let (_, text) = get_text(&s.url("/metrics"));
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A metric sample, 0 when absent.
fn m(s: &Strom, sample: &str) -> f64 {
    metric(s, sample).unwrap_or(0.0)
}

/// An HTTP-TS viewer on a raw socket from a chosen address: reads in a
/// thread, counting bytes, and notes when the server ends the connection.
struct TsViewer {
    head: String,
    bytes: Arc<AtomicU64>,
    ended: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
    sock: Option<TcpStream>,
}

impl TsViewer {
    /// Opens `GET PATH` (path and query) on `port` from `from`.
    fn open(port: u16, path: &str, from: IpAddr) -> TsViewer {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        sock.bind(&SocketAddr::new(from, 0).into())
            .expect("bind client address");
        let to: SocketAddr = SocketAddr::new(LO1, port);
        sock.connect_timeout(&to.into(), 5 * SEC).expect("connect");
        let mut t: TcpStream = sock.into();
        t.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: auth-test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .expect("request");
        t.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
        // The head, bounded in size and time.
        let mut buf = Vec::new();
        let deadline = Instant::now() + 15 * SEC;
        let mut chunk = [0u8; 4096];
        let mut eof = false;
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 && Instant::now() < deadline {
            match t.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        let split = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| i + 4)
            .unwrap_or(buf.len());
        let head = String::from_utf8_lossy(&buf[..split]).into_owned();
        let bytes = Arc::new(AtomicU64::new((buf.len() - split) as u64));
        let ended = Arc::new(Mutex::new(eof.then(Instant::now)));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = t.try_clone().expect("clone");
        if !eof {
            let (bytes, ended, stop) = (bytes.clone(), ended.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut r = reader;
                let mut chunk = vec![0u8; 64 * 1024];
                while !stop.load(Ordering::SeqCst) {
                    match r.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => {
                            bytes.fetch_add(n as u64, Ordering::SeqCst);
                        }
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        }
                        Err(_) => break,
                    }
                }
                if !stop.load(Ordering::SeqCst) {
                    *ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                }
            });
        }
        TsViewer {
            head,
            bytes,
            ended,
            stop,
            sock: Some(t),
        }
    }

    /// The response's status code (0 when there was none).
    fn status(&self) -> u16 {
        self.head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    /// When the server ended the connection, if it did.
    fn ended(&self) -> Option<Instant> {
        *self.ended.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until at least `n` body bytes arrived.
    fn wait_bytes(&self, n: u64, limit: Duration) {
        wait_for(&format!("{n} HTTP-TS bytes (head {:?})", self.head), limit, || {
            (self.bytes() >= n).then_some(())
        });
    }

    /// Asserts that data keeps arriving for `d` (checked every second).
    fn keeps_playing(&self, what: &str, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            let before = self.bytes();
            std::thread::sleep(SEC);
            assert!(self.ended().is_none(), "{what}: connection ended");
            assert!(self.bytes() > before, "{what}: no data for 1 s");
        }
    }

    /// Waits until the server ends the connection; returns how long it took.
    fn wait_ended(&self, what: &str, limit: Duration) -> Duration {
        let t = Instant::now();
        wait_for(what, limit, || self.ended());
        t.elapsed()
    }
}

impl Drop for TsViewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(s) = self.sock.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// One request an [`HlsViewer`] made.
#[derive(Clone, Debug)]
struct Hit {
    at: Instant,
    url: String,
    status: u16,
    took: Duration,
}

/// An HLS player in a thread, from a chosen address: the master playlist
/// once, then its media playlist every second and every new segment, exactly
/// as the playlists name them. Records every request.
struct HlsViewer {
    hits: Arc<Mutex<Vec<Hit>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HlsViewer {
    fn start(s: &Strom, name: &str, token: &str, from: IpAddr) -> HlsViewer {
        let master = s.url(&format!("/{name}/index.m3u8?token={token}"));
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (h, st) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let rt = runtime();
            let c = client(from);
            let fetch = |url: &str| -> (u16, String) {
                let t = Instant::now();
                let (status, body) = rt.block_on(async {
                    match c.get(url).send().await {
                        Ok(r) => {
                            let st = r.status().as_u16();
                            (st, r.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
                        }
                        Err(_) => (0, Vec::new()),
                    }
                });
                h.lock().unwrap_or_else(|e| e.into_inner()).push(Hit {
                    at: t,
                    url: url.to_string(),
                    status,
                    took: t.elapsed(),
                });
                (status, String::from_utf8_lossy(&body).into_owned())
            };
            let mut media = None;
            let mut seen = BTreeSet::new();
            while !st.load(Ordering::SeqCst) {
                let started = Instant::now();
                match &media {
                    None => {
                        let (code, text) = fetch(&master);
                        if code == 200 {
                            media = child_uris(&text).first().map(|u| resolve(&master, u));
                            continue; // the media playlist at once, as players do
                        }
                    }
                    Some(url) => {
                        let url = url.clone();
                        let (code, text) = fetch(&url);
                        if code == 200 {
                            for u in child_uris(&text) {
                                if seen.insert(u.clone()) && !st.load(Ordering::SeqCst) {
                                    fetch(&resolve(&url, &u));
                                }
                            }
                        }
                    }
                }
                let spent = started.elapsed();
                if spent < SEC {
                    std::thread::sleep(SEC - spent);
                }
            }
        });
        HlsViewer {
            hits,
            stop,
            thread: Some(thread),
        }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Requests made after `t`.
    fn since(&self, t: Instant) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.at >= t).collect()
    }

    fn segments_ok(&self) -> usize {
        self.hits()
            .iter()
            .filter(|h| h.status == 200 && h.url.contains(".ts"))
            .count()
    }

    fn wait_segments(&self, n: usize, limit: Duration) {
        wait_for(&format!("{n} HLS segments"), limit, || {
            (self.segments_ok() >= n).then_some(())
        });
    }
}

impl Drop for HlsViewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// HMAC-SHA256 in lowercase hex, computed by Python's standard library
/// (an independent implementation of the signed-link format).
fn hmac_sha256_hex(key: &str, message: &str) -> String {
    let out = run_bounded(
        Command::new("python3").args([
            "-c",
            "import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
            key,
            message,
        ]),
        20 * SEC,
    );
    assert!(
        out.status.success(),
        "python3 is required to compute HMAC-SHA256 for the signed-link test"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A signed-link token for `name`, valid until `expiry`, bound to `ip` ("" = any).
fn signed_token(key: &str, name: &str, expiry: u64, ip: &str) -> String {
    format!("{expiry}-{}", hmac_sha256_hex(key, &format!("{name}\n{expiry}\n{ip}")))
}

/// A raw HTTP publisher (`PUT`, chunked body): paced demo.ts in real time,
/// or a burst and then nothing (`stall`). The first response line, if any
/// arrives while publishing, is kept.
struct Publisher {
    status: Arc<Mutex<Option<String>>>,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    sock: Option<TcpStream>,
}

impl Publisher {
    /// PUT `path` on `port` with the extra header lines `headers` (each ending in CRLF).
    fn start(port: u16, path: &str, headers: &str) -> Publisher {
        let mut t = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        t.write_all(
            format!("PUT {path} HTTP/1.1\r\nHost: x\r\n{headers}Transfer-Encoding: chunked\r\n\r\n").as_bytes(),
        )
        .expect("publish head");
        let status: Arc<Mutex<Option<String>>> = Arc::default();
        let paused = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (mut r, status, stop) = (t.try_clone().expect("clone"), status.clone(), stop.clone());
            r.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !stop.load(Ordering::SeqCst) && buf.len() < 8192 {
                    match r.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => {
                            buf.extend_from_slice(&chunk[..n]);
                            if let Some(line) = String::from_utf8_lossy(&buf).lines().next() {
                                if buf.contains(&b'\n') {
                                    *status.lock().unwrap_or_else(|e| e.into_inner()) = Some(line.to_string());
                                }
                            }
                        }
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        }
                        Err(_) => break,
                    }
                }
            });
        }
        {
            let (mut w, paused, stop) = (t.try_clone().expect("clone"), paused.clone(), stop.clone());
            let data = std::fs::read(demo_ts()).expect("demo.ts");
            // demo.ts is 10 s long: send it at its own byte rate, looping.
            let per_sec = data.len() as f64 / 10.0;
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut sent = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    if paused.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    let due = (start.elapsed().as_secs_f64() * per_sec) as usize + 188 * 400;
                    if sent >= due {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    let off = sent % data.len();
                    let n = (188 * 100).min(data.len() - off);
                    let mut frame = format!("{n:x}\r\n").into_bytes();
                    frame.extend_from_slice(&data[off..off + n]);
                    frame.extend_from_slice(b"\r\n");
                    if w.write_all(&frame).is_err() {
                        break;
                    }
                    sent += n;
                }
            });
        }
        Publisher {
            status,
            paused,
            stop,
            sock: Some(t),
        }
    }

    /// Stops sending but keeps the connection open.
    fn stall(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// The first response line within `limit`, or None (still publishing).
    fn answer_within(&self, limit: Duration) -> Option<String> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(s) = self.status.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(s) = self.sock.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The sessions the API lists at `path_query` (after `/api/v1/sessions`).
fn sessions(s: &Strom, query: &str, auth: Option<&str>) -> serde_json::Value {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    let r = request(
        reqwest::Method::GET,
        &s.url(&format!("/api/v1/sessions{query}")),
        LO1,
        &headers,
    )
    .expect("sessions API answers");
    assert_eq!(r.status, 200, "GET /api/v1/sessions{query}: {}", r.text());
    r.json()
}

fn session_list(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["sessions"].as_array().cloned().unwrap_or_default()
}

fn tokens_of(list: &[serde_json::Value]) -> BTreeSet<String> {
    list.iter()
        .map(|x| x["token"].as_str().unwrap_or("").to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Two nodes that are peers of each other (one cluster key), each with
/// the `demo` stream asking `b`.
fn two_peers(tag: &str, b: &AuthBackend) -> (Strom, Strom) {
    let (p1, p2) = (free_tcp_port(), free_tcp_port());
    let conf = |other: u16| {
        format!(
            "cluster_key k;\npeer 127.0.0.1:{other};\nstream demo {{ input builtin://demo; segment_duration 1; on_play {}; }}",
            b.url()
        )
    };
    let n1 = Strom::start_in(scratch(&format!("{tag}-1")), p1, &conf(p2));
    let n2 = Strom::start_in(scratch(&format!("{tag}-2")), p2, &conf(p1));
    wait_live(&n1, "demo");
    wait_live(&n2, "demo");
    for (a, other) in [(&n1, p2), (&n2, p1)] {
        wait_for("peers up", 20 * SEC, || {
            (metric(a, &format!("strom_peer_up{{peer=\"127.0.0.1:{other}\"}}")) == Some(1.0)).then_some(())
        });
    }
    (n1, n2)
}

// ------------------------------------------------------------------ tests

/// ffmpeg plays 30 s of HLS with a token: the backend sees one
/// `new_session`, then an `update_session` about every X-AuthDuration
/// (10 s), and never a call per segment.
#[test]
fn one_backend_call_per_hls_session() {
    require_ffmpeg();
    let b = AuthBackend::start(Rule::Deny(None));
    b.set("good", Rule::Allow(Grant::secs(10)));
    let s = auth_node("one-call", &b);
    wait_live(&s, "demo");
    let t0 = Instant::now();
    let out = run_bounded(
        Command::new("ffmpeg")
            .args(["-nostdin", "-nostats", "-v", "verbose", "-i"])
            .arg(s.url("/demo/index.m3u8?token=good"))
            .args(["-t", "30", "-f", "null", "-"]),
        Duration::from_secs(90),
    );
    let played = t0.elapsed();
    let calls = b.calls();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed after {played:?}:\n{err}");
    // Segments ffmpeg fetched (its HLS demuxer logs every URL it opens).
    let segments: BTreeSet<&str> = err
        .lines()
        .filter(|l| l.contains("Opening '") && l.contains(".ts"))
        .filter_map(|l| l.split('\'').nth(1))
        .collect();
    assert!(
        segments.len() >= 20,
        "ffmpeg fetched only {} segments in {played:?}",
        segments.len()
    );
    for u in &segments {
        assert_eq!(query_values(u, "token"), ["good"], "segment URL {u}");
    }

    let new: Vec<_> = calls.iter().filter(|c| c.kind() == "new_session").collect();
    assert_eq!(new.len(), 1, "new_session calls: {calls:#?}");
    let n = new[0];
    assert_eq!(n.path, "/auth");
    assert_eq!(n.param("name"), "demo");
    assert_eq!(n.param("proto"), "hls");
    assert_eq!(n.param("ip"), "127.0.0.1");
    assert_eq!(n.param("token"), "good");
    assert_eq!(n.param("request_number"), "1");
    assert!(
        is_hex16(n.param("session_id")),
        "session_id {:?}",
        n.param("session_id")
    );
    assert!(
        n.param("user_agent").starts_with("Lavf"),
        "user_agent {:?}",
        n.param("user_agent")
    );
    assert!(n.param("qs").contains("token=good"), "qs {:?}", n.param("qs"));
    for key in ["stream_clients", "total_clients"] {
        assert!(n.params.contains_key(key), "{key} missing: {:?}", n.params);
    }

    let updates: Vec<_> = calls.iter().filter(|c| c.kind() == "update_session").collect();
    for (i, u) in updates.iter().enumerate() {
        assert_eq!(u.param("request_number"), (i + 2).to_string(), "update {i}: {u:?}");
        assert_eq!(u.param("session_id"), n.param("session_id"));
        assert_eq!(u.param("token"), "good");
    }
    // One update every 10 s while the session lives (it outlives ffmpeg).
    let lived = played.saturating_sub(n.at.saturating_duration_since(t0));
    let expected = (lived.as_secs_f64() / 10.0).floor() as usize;
    assert!(
        updates.len() >= 2 && updates.len() + 1 >= expected && updates.len() <= expected + 1,
        "{} update_session calls in {lived:?} of session (expected about {expected})",
        updates.len()
    );
    eprintln!(
        "{} segments, {} update_session calls in {lived:?} of session",
        segments.len(),
        updates.len()
    );
    let mut prev = n.at;
    for u in &updates {
        let gap = u.at.saturating_duration_since(prev).as_secs_f64();
        assert!((8.5..=12.5).contains(&gap), "update {gap:.1} s after the previous call");
        prev = u.at;
    }
    assert_eq!(
        calls.len(),
        1 + updates.len(),
        "no other backend call ({} segments fetched): {calls:#?}",
        segments.len()
    );
}

/// Master, media and per-track playlists carry `token` and one `sid` on
/// every child URI.
#[test]
fn tokens_on_child_uris() {
    let b = AuthBackend::start(Rule::Allow(Grant::secs(30)));
    let s = auth_node("child-uris", &b);
    wait_live(&s, "demo");
    let mut sids = BTreeSet::new();
    let mut check = |what: &str, text: &str| {
        let uris = child_uris(text);
        assert!(!uris.is_empty(), "{what}: no URI in\n{text}");
        for u in &uris {
            assert_eq!(query_values(u, "token"), ["good"], "{what}: {u}\n{text}");
            let sid = query_values(u, "sid");
            assert_eq!(sid.len(), 1, "{what}: one sid on {u}");
            assert!(is_hex16(&sid[0]), "{what}: sid {:?}", sid[0]);
            sids.insert(sid[0].clone());
        }
        uris
    };
    let master_url = s.url("/demo/index.m3u8?token=good");
    let master = get_from(&master_url, LO1);
    assert_eq!(master.status, 200, "{}", master.text());
    let variants = check("master", &master.text());
    for v in &variants {
        let url = resolve(&master_url, v);
        let media = get_from(&url, LO1);
        assert_eq!(media.status, 200, "{url}: {}", media.text());
        let segs = check(&format!("media {v}"), &media.text());
        let seg = get_from(&resolve(&url, &segs[0]), LO1);
        assert_eq!(seg.status, 200, "segment {}", segs[0]);
    }
    for p in [
        "mono.m3u8",
        "video.m3u8",
        "tracks-v1/mono.m3u8",
        "tracks-a1/mono.m3u8",
        "tracks-v1a1/mono.m3u8",
    ] {
        let url = s.url(&format!("/demo/{p}?token=good"));
        let r = get_from(&url, LO1);
        assert_eq!(r.status, 200, "{p}: {}", r.text());
        let segs = check(p, &r.text());
        let seg = get_from(&resolve(&url, &segs[0]), LO1);
        assert_eq!(seg.status, 200, "{p} segment {}", segs[0]);
    }
    assert_eq!(sids.len(), 1, "one identity, one sid: {sids:?}");
    assert_eq!(
        b.calls_for("good").iter().filter(|c| c.kind() == "new_session").count(),
        1,
        "one session across every playlist: {:#?}",
        b.calls()
    );
}

/// A denied token gets 403 on every entry point, and a segment URL from a
/// granted session is refused from another address, with no backend call.
#[test]
fn denied_token_403() {
    let b = AuthBackend::start(Rule::Deny(None));
    b.set("good", Rule::Allow(Grant::secs(30)));
    let s = auth_node("denied", &b);
    wait_live(&s, "demo");
    for p in ["index.m3u8", "mono.m3u8", "mpegts"] {
        assert_eq!(code(&s.url(&format!("/demo/{p}?token=bad"))), 403, "{p}");
        assert_eq!(code(&s.url(&format!("/demo/{p}"))), 403, "{p} without a token");
    }
    let url = s.url("/demo/mono.m3u8?token=good");
    let pl = get_from(&url, LO1);
    assert_eq!(pl.status, 200);
    let seg = resolve(&url, child_uris(&pl.text()).last().expect("a segment"));
    let before = b.calls().len();
    assert_eq!(get_from(&seg, LO2).status, 403, "{seg} from 127.0.0.2");
    assert_eq!(get_from(&seg, LO1).status, 200, "{seg} from 127.0.0.1");
    // Another session's sid does not open a segment either.
    let forged = seg.replace("token=good", "token=bad");
    assert_eq!(get_from(&forged, LO1).status, 403, "{forged}");
    assert_eq!(
        b.calls().len(),
        before,
        "segments never call the backend: {:#?}",
        b.calls()
    );

    // A denial is cached for its X-AuthDuration, on every protocol; then
    // the backend decides again.
    b.set("later", Rule::Deny(Some(2)));
    assert_eq!(code(&s.url("/demo/mono.m3u8?token=later")), 403);
    let denied = Instant::now();
    b.set("later", Rule::Allow(Grant::secs(30)));
    assert_eq!(code(&s.url("/demo/mono.m3u8?token=later")), 403, "denial cached");
    assert_eq!(
        code(&s.url("/demo/mpegts?token=later")),
        403,
        "denial cached for HTTP-TS"
    );
    assert_eq!(b.calls_for("later").len(), 1, "{:#?}", b.calls_for("later"));
    wait_for("the denial expires", 6 * SEC, || {
        (code(&s.url("/demo/mono.m3u8?token=later")) == 200).then_some(())
    });
    assert!(denied.elapsed() >= Duration::from_millis(1800), "denial expired early");
}

/// `X-Max-Sessions: 1` over two peers: the second viewer of the user ends
/// the first session on the other node within about one directory refresh.
#[test]
fn max_sessions_across_peers() {
    let b = AuthBackend::start(Rule::Deny(None));
    for t in ["ta", "tb"] {
        b.set(t, Rule::Allow(Grant::secs(30).user("u1").max(1)));
    }
    let (n1, n2) = two_peers("maxs", &b);
    let a = TsViewer::open(n1.port, "/demo/mpegts?token=ta", LO1);
    assert_eq!(a.status(), 200, "{}", a.head);
    a.wait_bytes(200_000, 10 * SEC);
    std::thread::sleep(2 * SEC); // node 2 has heard of it
    assert!(a.ended().is_none());
    let bv = TsViewer::open(n2.port, "/demo/mpegts?token=tb", LO1);
    assert_eq!(bv.status(), 200, "{}", bv.head);
    let took = a.wait_ended("the older session (node 1) is closed", 10 * SEC);
    eprintln!("the older session on node 1 closed {took:?} after the newer one started");
    assert!(took <= Duration::from_millis(3500), "closed after {took:?}");
    bv.keeps_playing("the newer session (node 2)", 3 * SEC);
    assert!(
        m(&n1, "strom_sessions_closed_total{reason=\"max_sessions\"}") >= 1.0,
        "counted on node 1"
    );
}

/// `X-Unique: true`: a second HTTP-TS session of the user on the same node
/// closes the first.
#[test]
fn unique_user_on_one_node() {
    let b = AuthBackend::start(Rule::Allow(Grant::secs(30).user("u2").unique()));
    let s = auth_node("unique", &b);
    wait_live(&s, "demo");
    let first = TsViewer::open(s.port, "/demo/mpegts?token=ua", LO1);
    assert_eq!(first.status(), 200, "{}", first.head);
    first.wait_bytes(100_000, 10 * SEC);
    let second = TsViewer::open(s.port, "/demo/mpegts?token=ub", LO1);
    assert_eq!(second.status(), 200, "{}", second.head);
    let took = first.wait_ended("the older session is closed", 10 * SEC);
    eprintln!("the older session closed after {took:?}");
    assert!(took <= 2 * SEC, "closed after {took:?}");
    second.keeps_playing("the newer session", 3 * SEC);
}

/// The backend dies mid-play: granted HTTP-TS and HLS viewers keep playing
/// through several update periods, new tokens get 503, both counted.
#[test]
fn backend_killed_mid_play() {
    let mut b = AuthBackend::start(Rule::Allow(Grant::secs(2)));
    let u = b.url();
    let s = Strom::start(
        "killed",
        &format!(
            "stream demo {{ input builtin://demo; segment_duration 1; on_play {u}; }}\n\
             stream open {{ input builtin://demo; segment_duration 1; on_play {u} {{ fail_open; }} }}"
        ),
    );
    wait_live(&s, "demo");
    wait_live(&s, "open");
    let ts = TsViewer::open(s.port, "/demo/mpegts?token=k1", LO1);
    assert_eq!(ts.status(), 200, "{}", ts.head);
    let hls = HlsViewer::start(&s, "demo", "k2", LO1);
    hls.wait_segments(2, 15 * SEC);
    b.kill();
    let killed = Instant::now();
    ts.keeps_playing("HTTP-TS after the backend died", 6 * SEC);
    let after = hls.since(killed);
    assert!(
        after.iter().filter(|h| h.url.contains(".ts")).count() >= 3,
        "HLS segments after the kill: {after:#?}"
    );
    assert!(after.iter().all(|h| h.status == 200), "HLS after the kill: {after:#?}");
    assert!(after.iter().all(|h| h.took < SEC), "HLS requests waited: {after:#?}");
    for p in ["mono.m3u8", "mpegts"] {
        let r = status_from(&s.url(&format!("/demo/{p}?token=k3")), LO1);
        assert_eq!(r.status, 503, "new session on {p} with the backend down");
        assert!(r.took < 3 * SEC, "{p} answered after {:?}", r.took);
        // `fail_open`: new sessions are let in instead.
        let r = status_from(&s.url(&format!("/open/{p}?token=k4")), LO1);
        assert_eq!(r.status, 200, "fail_open: new session on {p} with the backend down");
    }
    assert!(
        m(&s, "strom_auth_backend_down_total{action=\"allowed\"}") >= 1.0,
        "fail_open admissions counted"
    );
    assert!(
        m(&s, "strom_auth_backend_down_total{action=\"kept\"}") >= 1.0,
        "kept counted"
    );
    assert!(
        m(&s, "strom_auth_backend_down_total{action=\"refused\"}") >= 2.0,
        "refused counted"
    );
}

/// A later 403 from the backend ends granted sessions: HTTP-TS is closed,
/// HLS gets 403 on its next playlist or segment.
#[test]
fn update_session_denial_ends_sessions() {
    let b = AuthBackend::start(Rule::Allow(Grant::secs(2)));
    let s = auth_node("upd-deny", &b);
    wait_live(&s, "demo");
    let ts = TsViewer::open(s.port, "/demo/mpegts?token=d1", LO1);
    assert_eq!(ts.status(), 200, "{}", ts.head);
    let hls = HlsViewer::start(&s, "demo", "d2", LO1);
    hls.wait_segments(2, 15 * SEC);
    ts.wait_bytes(100_000, 10 * SEC);
    b.set("d1", Rule::Deny(None));
    b.set("d2", Rule::Deny(None));
    let t = Instant::now();
    let took = ts.wait_ended("HTTP-TS closed after the denial", 10 * SEC);
    assert!(took <= 5 * SEC, "HTTP-TS closed {took:?} after the denial");
    let first_403 = wait_for("HLS gets 403", 10 * SEC, || {
        hls.since(t).into_iter().find(|h| h.status == 403)
    });
    let late = first_403.at.saturating_duration_since(t);
    eprintln!("after the denial: HTTP-TS closed in {took:?}, first HLS 403 in {late:?}");
    assert!(late <= 5 * SEC, "first HLS 403 {late:?} after the denial");
    std::thread::sleep(2 * SEC);
    let later: Vec<_> = hls.since(first_403.at);
    assert!(later.iter().all(|h| h.status == 403), "after the 403: {later:#?}");
    let upd = b
        .calls_for("d1")
        .iter()
        .filter(|c| c.kind() == "update_session")
        .count();
    assert!(
        upd >= 1,
        "the denial came from an update_session: {:#?}",
        b.calls_for("d1")
    );
    assert!(m(&s, "strom_sessions_closed_total{reason=\"denied\"}") >= 1.0);
}

/// The sessions API: list, reauth, kick (then 403 and 404), and credentials.
#[test]
fn kick_via_api() {
    let b = AuthBackend::start(Rule::Allow(Grant::secs(30)));
    let s = node("kick", "edit_auth admin secret;", &format!("on_play {};", b.url()));
    let admin = basic("admin", "secret");
    let auth = [("authorization", admin.as_str())];
    wait_live_as(&s, "demo", Some(&admin));
    let v = TsViewer::open(s.port, "/demo/mpegts?token=kk", LO1);
    assert_eq!(v.status(), 200, "{}", v.head);
    v.wait_bytes(100_000, 10 * SEC);
    let list = session_list(&sessions(&s, "?name=demo", Some(&admin)));
    let me = list
        .iter()
        .find(|x| x["token"] == "kk")
        .unwrap_or_else(|| panic!("session kk listed: {list:#?}"))
        .clone();
    assert_eq!(me["proto"], "mpegts");
    assert_eq!(me["ip"], "127.0.0.1");
    assert_eq!(me["name"], "demo");
    assert_eq!(me["viewer"], true);
    let id = me["id"].as_str().expect("id").to_string();
    assert_eq!(
        id,
        b.calls_for("kk")[0].param("session_id"),
        "the API id is the backend's session_id"
    );

    // Without credentials: 401, and nothing happens.
    let url = s.url(&format!("/api/v1/sessions/{id}"));
    let reauth = s.url("/api/v1/sessions/reauth?name=demo");
    assert_eq!(
        request(reqwest::Method::GET, &url, LO1, &[]).map(|r| r.status),
        Some(401)
    );
    assert_eq!(
        request(reqwest::Method::DELETE, &url, LO1, &[]).map(|r| r.status),
        Some(401)
    );
    assert_eq!(
        request(reqwest::Method::POST, &reauth, LO1, &[]).map(|r| r.status),
        Some(401)
    );
    let wrong = basic("admin", "nope");
    assert_eq!(
        request(reqwest::Method::DELETE, &url, LO1, &[("authorization", &wrong)]).map(|r| r.status),
        Some(401)
    );
    assert!(v.ended().is_none());

    // Reauth asks the backend at once.
    let updates = |b: &AuthBackend| {
        b.calls_for("kk")
            .iter()
            .filter(|c| c.kind() == "update_session")
            .count()
    };
    let before = updates(&b);
    let r = request(reqwest::Method::POST, &reauth, LO1, &auth).expect("reauth");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["sessions"].as_u64().unwrap_or(0) >= 1, "{}", r.text());
    wait_for("an update_session after reauth", 3 * SEC, || {
        (updates(&b) > before).then_some(())
    });

    let one = request(reqwest::Method::GET, &url, LO1, &auth).expect("get session");
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(one.json()["id"], id.as_str());

    let kick = request(reqwest::Method::DELETE, &url, LO1, &auth).expect("kick");
    assert_eq!(kick.status, 204, "{}", kick.text());
    let took = v.wait_ended("kicked viewer closed", 5 * SEC);
    assert!(took <= 2 * SEC, "closed {took:?} after the kick");
    let news = b.calls().len();
    assert_eq!(code(&s.url("/demo/mpegts?token=kk")), 403, "kicked identity refused");
    assert_eq!(
        code(&s.url("/demo/mono.m3u8?token=kk")),
        403,
        "kicked identity refused on HLS"
    );
    assert_eq!(b.calls().len(), news, "refused from the kick, not by the backend");
    assert_eq!(
        request(reqwest::Method::GET, &url, LO1, &auth).map(|r| r.status),
        Some(404)
    );
    assert!(m(&s, "strom_sessions_closed_total{reason=\"kicked\"}") >= 1.0);
    // Another token plays on.
    assert_eq!(code(&s.url("/demo/mono.m3u8?token=other")), 200);
}

/// Cursor paging covers every session once, in id order; filters by IP and
/// user; the fields of SessionInfo.
#[test]
fn sessions_api_paging_and_filters() {
    let b = AuthBackend::start(Rule::Allow(Grant::secs(30)));
    b.set("p1", Rule::Allow(Grant::secs(30).user("alice")));
    b.set("p2", Rule::Allow(Grant::secs(30).user("alice")));
    b.set("p3", Rule::Allow(Grant::secs(30).user("bob")));
    let s = auth_node("paging", &b);
    wait_live(&s, "demo");
    let viewers: Vec<TsViewer> = [("p1", LO1), ("p2", LO1), ("p3", LO1), ("p4", LO2), ("p5", LO2)]
        .iter()
        .map(|(t, ip)| TsViewer::open(s.port, &format!("/demo/mpegts?token={t}"), *ip))
        .collect();
    for v in &viewers {
        assert_eq!(v.status(), 200, "{}", v.head);
        v.wait_bytes(50_000, 10 * SEC);
    }
    assert_eq!(code(&s.url("/demo/mono.m3u8?token=p6")), 200);
    let all = wait_for("six sessions listed", 5 * SEC, || {
        let l = session_list(&sessions(&s, "?name=demo", None));
        (l.len() == 6).then_some(l)
    });
    assert_eq!(tokens_of(&all), set(&["p1", "p2", "p3", "p4", "p5", "p6"]));
    let ids: Vec<String> = all.iter().map(|x| x["id"].as_str().unwrap_or("").to_string()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "ordered by id, unique");

    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = match &cursor {
            Some(c) => format!("?name=demo&limit=2&cursor={c}"),
            None => "?name=demo&limit=2".to_string(),
        };
        let page = sessions(&s, &q, None);
        let l = session_list(&page);
        assert!(l.len() <= 2, "{q}: {page}");
        paged.extend(l.iter().map(|x| x["id"].as_str().unwrap_or("").to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => {
                assert!(page["next_cursor"].is_null(), "{page}");
                cursor = None;
                break;
            }
        }
    }
    assert!(cursor.is_none(), "paging did not end");
    assert_eq!(paged, ids, "limit=2 pages cover every session exactly once");

    assert_eq!(
        tokens_of(&session_list(&sessions(&s, "?ip=127.0.0.2", None))),
        set(&["p4", "p5"])
    );
    assert_eq!(
        tokens_of(&session_list(&sessions(&s, "?user=alice", None))),
        set(&["p1", "p2"])
    );
    assert_eq!(
        tokens_of(&session_list(&sessions(&s, "?user=bob&ip=127.0.0.1", None))),
        set(&["p3"])
    );
    assert!(session_list(&sessions(&s, "?name=nosuch", None)).is_empty());

    // Byte counts of open connections reach the table within a few seconds.
    let now_all = wait_for("p1's bytes in the API", 5 * SEC, || {
        let l = session_list(&sessions(&s, "?name=demo", None));
        l.iter()
            .any(|x| x["token"] == "p1" && x["bytes"].as_u64().unwrap_or(0) >= 50_000)
            .then_some(l)
    });
    let p1 = now_all.iter().find(|x| x["token"] == "p1").expect("p1");
    assert_eq!(p1["proto"], "mpegts");
    assert_eq!(p1["ip"], "127.0.0.1");
    assert_eq!(p1["user_id"], "alice");
    assert_eq!(p1["user_agent"], "auth-test");
    assert_eq!(p1["viewer"], true);
    assert!(p1["bytes"].as_u64().unwrap_or(0) >= 50_000, "{p1}");
    let now = unix_now();
    let started = p1["started_at"].as_u64().unwrap_or(0);
    assert!(started <= now && started + 60 >= now, "{p1}");
    assert!(p1["last_active"].as_u64().unwrap_or(0) >= started, "{p1}");
    assert!(
        p1["duration"].as_f64().is_some() || p1["duration"].as_u64().is_some(),
        "{p1}"
    );
    assert!(p1.get("node").is_none(), "node only with cluster=1: {p1}");
    let p6 = all.iter().find(|x| x["token"] == "p6").expect("p6");
    assert_eq!(p6["proto"], "hls");
    assert_eq!(p6["viewer"], false, "a playlist alone is not a viewer: {p6}");
}

/// `?cluster=1` on node 1 lists node 2's sessions too, each with its node.
#[test]
fn sessions_cluster_aggregate() {
    let b = AuthBackend::start(Rule::Allow(Grant::secs(30)));
    let (n1, n2) = two_peers("clus", &b);
    let v1 = TsViewer::open(n1.port, "/demo/mpegts?token=c1", LO1);
    let v2 = TsViewer::open(n2.port, "/demo/mpegts?token=c2", LO2);
    for v in [&v1, &v2] {
        assert_eq!(v.status(), 200, "{}", v.head);
        v.wait_bytes(50_000, 10 * SEC);
    }
    let local = session_list(&sessions(&n1, "", None));
    assert_eq!(tokens_of(&local), set(&["c1"]), "without cluster=1 only local ones");
    let all = wait_for("both nodes' sessions", 10 * SEC, || {
        let l = session_list(&sessions(&n1, "?cluster=1", None));
        (tokens_of(&l) == set(&["c1", "c2"])).then_some(l)
    });
    let node_of = |t: &str| -> String {
        let x = all.iter().find(|x| x["token"] == t).expect("listed");
        x["node"].as_str().unwrap_or("").to_string()
    };
    let (a, c) = (node_of("c1"), node_of("c2"));
    assert!(!a.is_empty() && !c.is_empty(), "{all:#?}");
    assert_ne!(a, c, "{all:#?}");
    assert!(c.contains(&n2.port.to_string()), "node 2 named by its address: {c}");
    let x = all.iter().find(|x| x["token"] == "c2").expect("c2");
    assert_eq!(x["ip"], "127.0.0.2");
    let filtered = session_list(&sessions(&n1, "?cluster=1&ip=127.0.0.2", None));
    assert_eq!(tokens_of(&filtered), set(&["c2"]));
}

/// Publish: password, on_publish backend, takeover of a stalled publisher.
#[test]
fn publish_auth() {
    let b = AuthBackend::start(Rule::Deny(None));
    b.set("pok", Rule::Allow(Grant::secs(30)));
    let s = Strom::start(
        "publish",
        &format!(
            "stream pw {{ input publish://; publish_password secret; source_timeout 30; segment_duration 1; }}\n\
             stream old {{ input publish://; password secret; segment_duration 1; }}\n\
             stream hook {{ input publish://; on_publish {}; segment_duration 1; }}",
            b.url()
        ),
    );
    // No or wrong password: 403 at once, and no media ever.
    for path in ["/pw/publish", "/pw/publish?password=wrong", "/old/publish"] {
        let p = Publisher::start(s.port, path, "");
        let a = p.answer_within(3 * SEC);
        assert!(
            a.as_deref().is_some_and(|l| l.starts_with("HTTP/1.1 403")),
            "{path}: {a:?}"
        );
    }
    let wrong = Publisher::start(
        s.port,
        "/pw/publish",
        &format!("Authorization: {}\r\n", basic("x", "nope")),
    );
    let a = wrong.answer_within(3 * SEC);
    assert!(a.as_deref().is_some_and(|l| l.starts_with("HTTP/1.1 403")), "{a:?}");
    std::thread::sleep(2 * SEC);
    assert_eq!(last_seq(&s, "pw"), None, "refused publishers delivered media");

    // The right password: accepted, the stream goes live.
    let first = Publisher::start(s.port, "/pw/publish?password=secret", "");
    wait_live(&s, "pw");
    assert_eq!(first.answer_within(SEC), None, "the publisher is still accepted");
    // The older name `password` works too.
    let old = Publisher::start(s.port, "/old/publish?password=secret", "");
    wait_live(&s, "old");
    drop(old);

    // A second publisher while the first sends: 409.
    let second = Publisher::start(s.port, "/pw/publish?password=secret", "");
    let a = second.answer_within(3 * SEC);
    assert!(a.as_deref().is_some_and(|l| l.starts_with("HTTP/1.1 409")), "{a:?}");
    drop(second);

    // The first stalls; after 2 s a new authorized publisher takes over.
    first.stall();
    std::thread::sleep(3 * SEC);
    let stalled_at = last_seq(&s, "pw").unwrap_or(0);
    let third = Publisher::start(
        s.port,
        "/pw/publish",
        &format!("Authorization: {}\r\n", basic("any", "secret")),
    );
    assert_eq!(third.answer_within(2 * SEC), None, "takeover refused");
    wait_for("segments from the new publisher", 15 * SEC, || {
        last_seq(&s, "pw").filter(|q| *q >= stalled_at + 3)
    });

    // on_publish: denied → 403 before the body; allowed → live, asked with proto=publish.
    let denied = Publisher::start(s.port, "/hook/publish?token=pdeny", "");
    let a = denied.answer_within(3 * SEC);
    assert!(a.as_deref().is_some_and(|l| l.starts_with("HTTP/1.1 403")), "{a:?}");
    std::thread::sleep(SEC);
    assert_eq!(last_seq(&s, "hook"), None);
    let ok = Publisher::start(s.port, "/hook/publish?token=pok", "");
    wait_live(&s, "hook");
    assert_eq!(ok.answer_within(SEC), None);
    let c = b.calls_for("pok");
    assert_eq!(c.len(), 1, "{c:#?}");
    assert_eq!(c[0].param("proto"), "publish");
    assert_eq!(c[0].param("name"), "hook");
    assert_eq!(c[0].param("request_type"), "new_session");
    assert_eq!(c[0].param("ip"), "127.0.0.1");
    assert_eq!(b.calls_for("pdeny").len(), 1);
    assert!(
        b.calls().iter().all(|c| c.param("name") == "hook"),
        "only `hook` asks the backend"
    );
}

/// An edge with `source ORIGIN { on_play URL; }` authorizes its own viewers;
/// the origin (no on_play) stays open.
#[test]
fn restreamer_source_on_play() {
    let b = AuthBackend::start(Rule::Deny(None));
    b.set("eok", Rule::Allow(Grant::secs(30)));
    b.set("eok2", Rule::Allow(Grant::secs(30)));
    let o = Strom::start(
        "rs-origin",
        &format!(
            "cluster_key k;\n\
             stream demo {{ input builtin://demo; segment_duration 1; }}\n\
             stream locked {{ input builtin://demo; segment_duration 1; on_play {}; }}",
            b.url()
        ),
    );
    wait_live(&o, "demo");
    let e = Strom::start(
        "rs-edge",
        &format!("cluster_key k;\nsource 127.0.0.1:{} {{ on_play {}; }}", o.port, b.url()),
    );
    wait_live(&e, "demo");
    for p in ["index.m3u8", "mono.m3u8", "mpegts"] {
        assert_eq!(code(&e.url(&format!("/demo/{p}?token=bad"))), 403, "edge {p}");
    }
    let url = e.url("/demo/mono.m3u8?token=eok");
    let pl = get_from(&url, LO1);
    assert_eq!(pl.status, 200, "{}", pl.text());
    let seg = resolve(&url, child_uris(&pl.text()).last().expect("segment"));
    assert_eq!(get_from(&seg, LO1).status, 200);
    // Another token for HTTP-TS: the grant cached for (demo, eok, 127.0.0.1)
    // would admit it without asking.
    let v = TsViewer::open(e.port, "/demo/mpegts?token=eok2", LO1);
    assert_eq!(v.status(), 200, "{}", v.head);
    v.wait_bytes(50_000, 10 * SEC);
    let c = b.calls_for("eok");
    let new: Vec<_> = c.iter().filter(|c| c.kind() == "new_session").collect();
    assert_eq!(new.len(), 1, "one HLS session: {c:#?}");
    assert_eq!(new[0].param("name"), "demo");
    assert_eq!(new[0].param("proto"), "hls");
    assert_eq!(new[0].param("ip"), "127.0.0.1");
    let c2 = b.calls_for("eok2");
    assert_eq!(c2.len(), 1, "{c2:#?}");
    assert_eq!(c2[0].param("proto"), "mpegts");
    assert_eq!(c2[0].kind(), "new_session");
    // The origin has no on_play: open to anyone, never asks the backend.
    let before = b.calls().len();
    assert_eq!(code(&o.url("/demo/mono.m3u8")), 200);
    assert_eq!(code(&o.url("/demo/mono.m3u8?token=bad")), 200);
    assert_eq!(b.calls().len(), before);

    // An origin stream with its own on_play still feeds the edge (signed
    // node-to-node requests pass), and each node asks for its own viewers.
    wait_live(&e, "locked");
    assert_eq!(code(&o.url("/locked/mono.m3u8?token=bad")), 403, "origin viewer");
    assert_eq!(code(&e.url("/locked/mono.m3u8?token=eok")), 200, "edge viewer");
    let locked: Vec<_> = b.calls().into_iter().filter(|c| c.param("name") == "locked").collect();
    assert_eq!(
        tokens(&locked),
        set(&["bad", "eok"]),
        "only viewers were asked about: {locked:#?}"
    );
}

fn tokens(calls: &[auth_backend::Call]) -> BTreeSet<String> {
    calls.iter().map(|c| c.token().to_string()).collect()
}

/// `token_secret` alone: documented signed links play, expired and
/// foreign-address links get 403.
#[test]
fn signed_links() {
    let b = AuthBackend::start(Rule::Deny(None));
    b.set("plain", Rule::Allow(Grant::secs(30)));
    let s = Strom::start(
        "signed",
        &format!(
            "stream demo {{ input builtin://demo; segment_duration 1; token_secret k3y; }}\n\
             stream both {{ input builtin://demo; segment_duration 1; token_secret k3y; on_play {}; }}",
            b.url()
        ),
    );
    wait_live(&s, "demo");
    wait_live(&s, "both");
    let now = unix_now();
    let any = signed_token("k3y", "demo", now + 300, "");
    let mine = signed_token("k3y", "demo", now + 300, "127.0.0.1");
    let other = signed_token("k3y", "demo", now + 300, "127.0.0.2");
    let expired = signed_token("k3y", "demo", now - 10, "");
    let wrong_key = signed_token("other", "demo", now + 300, "");
    let wrong_name = signed_token("k3y", "demo2", now + 300, "");

    for t in [&any, &mine] {
        let url = s.url(&format!("/demo/mono.m3u8?token={t}"));
        let r = get_from(&url, LO1);
        assert_eq!(r.status, 200, "{t}: {}", r.text());
        let seg = resolve(&url, child_uris(&r.text()).last().expect("segment"));
        assert_eq!(get_from(&seg, LO1).status, 200, "{seg}");
        assert_eq!(code(&s.url(&format!("/demo/index.m3u8?token={t}"))), 200);
    }
    assert_eq!(
        get_from(&s.url(&format!("/demo/mono.m3u8?token={other}")), LO2).status,
        200
    );
    let v = TsViewer::open(s.port, &format!("/demo/mpegts?token={any}"), LO1);
    assert_eq!(v.status(), 200, "{}", v.head);
    for (what, t, from) in [
        ("bound to 127.0.0.2, used from 127.0.0.1", other.as_str(), LO1),
        ("bound to 127.0.0.1, used from 127.0.0.2", mine.as_str(), LO2),
        ("expired", expired.as_str(), LO1),
        ("signed with another key", wrong_key.as_str(), LO1),
        ("signed for another stream", wrong_name.as_str(), LO1),
        ("missing", "", LO1),
        ("garbage", "12345-zz", LO1),
    ] {
        for p in ["mono.m3u8", "mpegts"] {
            let r = status_from(&s.url(&format!("/demo/{p}?token={t}")), from);
            assert_eq!(r.status, 403, "{what} on {p}");
        }
    }
    assert!(m(&s, "strom_auth_signed_total{result=\"valid\"}") >= 1.0);
    assert!(m(&s, "strom_auth_signed_total{result=\"expired\"}") >= 1.0);
    assert!(m(&s, "strom_auth_signed_total{result=\"invalid\"}") >= 1.0);

    // With on_play too: a valid signed link plays without a backend call;
    // anything else is the backend's decision.
    let signed_both = signed_token("k3y", "both", now + 300, "");
    assert_eq!(code(&s.url(&format!("/both/mono.m3u8?token={signed_both}"))), 200);
    assert!(
        b.calls().is_empty(),
        "a signed link asked the backend: {:#?}",
        b.calls()
    );
    assert_eq!(code(&s.url("/both/mono.m3u8?token=plain")), 200);
    let expired_both = signed_token("k3y", "both", now - 10, "");
    assert_eq!(code(&s.url(&format!("/both/mono.m3u8?token={expired_both}"))), 403);
    assert_eq!(b.calls_for("plain").len(), 1);
    assert_eq!(b.calls_for(&expired_both).len(), 1, "{:#?}", b.calls());
    assert_eq!(b.calls().len(), 2, "{:#?}", b.calls());
}

/// A slow, garbage-speaking, header-less or self-redirecting backend never
/// stalls a viewer past timeout + 2 s, never stops a granted session, and
/// every case is counted.
#[test]
fn hostile_backend() {
    let b = AuthBackend::start(Rule::Allow(Grant::secs(2)));
    let s = node("hostile-b", "", &format!("on_play {} {{ timeout 1s; }}", b.url()));
    wait_live(&s, "demo");
    let granted = TsViewer::open(s.port, "/demo/mpegts?token=g", LO1);
    assert_eq!(granted.status(), 200, "{}", granted.head);
    granted.wait_bytes(50_000, 10 * SEC);
    // Its update_session calls now hang past the timeout.
    b.set("g", Rule::Hang(Duration::from_secs(10)));
    let loop_url = format!("{}?loop=1", b.url());
    b.set("slow", Rule::Hang(Duration::from_secs(10)));
    b.set("garbage", Rule::Garbage);
    b.set("e500", Rule::Error);
    b.set("bare", Rule::Bare200);
    b.set("loop", Rule::Redirect(loop_url.clone()));
    let limit = 3 * SEC; // timeout 1 s + 2 s
    for (t, want) in [
        ("slow", 503),
        ("garbage", 503),
        ("e500", 503),
        ("bare", 200),
        ("loop", 302),
    ] {
        for p in ["mono.m3u8", "mpegts"] {
            let r = status_from(&s.url(&format!("/demo/{p}?token={t}")), LO1);
            assert_eq!(r.status, want, "{t} on {p}: {}", r.text());
            assert!(r.took <= limit, "{t} on {p} answered after {:?}", r.took);
            if want == 302 {
                assert_eq!(r.header("location"), Some(loop_url.as_str()), "{t} on {p}");
            }
            assert!(granted.ended().is_none(), "granted session ended");
        }
    }
    granted.keeps_playing("the granted session with a hanging backend", 5 * SEC);
    let g_updates = b.calls_for("g").iter().filter(|c| c.kind() == "update_session").count();
    assert!(g_updates >= 1, "granted session was re-asked: {:#?}", b.calls_for("g"));
    // strom never followed the redirect to the backend itself.
    assert!(
        b.calls().iter().all(|c| c.query != "loop=1"),
        "strom followed a backend redirect"
    );
    // One playlist and one HTTP-TS session each: 200 without headers is cached.
    let before = b.calls_for("bare").len();
    assert_eq!(code(&s.url("/demo/mono.m3u8?token=bare")), 200);
    assert_eq!(b.calls_for("bare").len(), before, "200 without headers cached");
    assert!(m(&s, "strom_auth_requests_total{result=\"timeout\"}") >= 2.0);
    assert!(m(&s, "strom_auth_requests_total{result=\"error\"}") >= 4.0);
    assert!(m(&s, "strom_auth_requests_total{result=\"redirect\"}") >= 1.0);
    assert!(m(&s, "strom_auth_requests_total{result=\"allow\"}") >= 2.0);
    assert!(m(&s, "strom_auth_backend_down_total{action=\"kept\"}") >= 1.0);
    assert!(m(&s, "strom_auth_backend_down_total{action=\"refused\"}") >= 6.0);
    assert_eq!(code(&s.url("/healthz")), 200);
}

/// Very long, non-UTF-8 and repeated tokens are answered; the node lives.
#[test]
fn hostile_tokens() {
    let b = AuthBackend::start(Rule::Allow(Grant::secs(30)));
    let mut s = auth_node("hostile-t", &b);
    wait_live(&s, "demo");
    let long = "A".repeat(100_000);
    for p in ["index.m3u8", "mono.m3u8", "mpegts", "1.ts"] {
        let st = raw_status(s.port, &format!("/demo/{p}?token={long}"));
        assert!(matches!(st, Some(403) | Some(414)), "100 kB token on {p}: {st:?}");
    }
    let odd = "%FF%FE%80x%00y";
    for p in ["mono.m3u8", "mpegts"] {
        let st = send(
            reqwest::Method::GET,
            &s.url(&format!("/demo/{p}?token={odd}")),
            LO1,
            &[],
            false,
        )
        .map(|r| r.status);
        assert!(
            matches!(st, Some(200) | Some(400) | Some(403)),
            "non-UTF-8 token on {p}: {st:?}"
        );
    }
    let longest = b.calls().iter().map(|c| c.query.len()).max().unwrap_or(0);
    eprintln!("longest backend query after the hostile tokens: {longest} bytes");
    // `token=a&token=b`: the first wins, one session.
    let url = s.url("/demo/mono.m3u8?token=a1&token=b1");
    let r = get_from(&url, LO1);
    assert_eq!(r.status, 200, "{}", r.text());
    let segs = child_uris(&r.text());
    for u in &segs {
        assert_eq!(query_values(u, "token"), ["a1"], "{u}");
    }
    assert_eq!(get_from(&resolve(&url, &segs[0]), LO1).status, 200);
    assert_eq!(code(&s.url("/demo/mono.m3u8?token=a1&token=b1")), 200);
    let a1 = b.calls_for("a1");
    assert_eq!(a1.len(), 1, "{a1:#?}");
    assert!(b.calls_for("b1").is_empty());
    assert!(s.alive(), "strom died");
    assert_eq!(code(&s.url("/healthz")), 200);
    assert_eq!(code(&s.url("/demo/mono.m3u8?token=fine")), 200);
}

/// A burst of new tokens from one address hits the per-IP limit (429,
/// counted); another address is served at once.
#[test]
fn per_ip_rate_limit() {
    let b = AuthBackend::start(Rule::Allow(Grant::secs(30)));
    let s = auth_node("ratelimit", &b);
    wait_live(&s, "demo");
    let base = s.url("/demo/mono.m3u8");
    let t = Instant::now();
    let codes: Vec<u16> = runtime().block_on(async {
        let c = client(LO2);
        let mut set = tokio::task::JoinSet::new();
        for i in 0..300 {
            let (c, url) = (c.clone(), format!("{base}?token=r{i}"));
            set.spawn(async move { c.get(&url).send().await.map(|r| r.status().as_u16()).unwrap_or(0) });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r.unwrap_or(0));
        }
        out
    });
    let burst = t.elapsed();
    let limited = codes.iter().filter(|c| **c == 429).count();
    let ok = codes.iter().filter(|c| **c == 200).count();
    eprintln!("burst of 300 in {burst:?}: {ok} allowed, {limited} limited");
    assert_eq!(limited + ok, 300, "only 200 or 429: {codes:?}");
    let bound = 100.0 + 20.0 * burst.as_secs_f64() + 5.0;
    assert!(limited >= 1, "none of 300 limited in {burst:?}");
    assert!((ok as f64) <= bound, "{ok} of 300 allowed in {burst:?}");
    let fresh = get_from(&s.url("/demo/mono.m3u8?token=fresh"), LO1);
    assert_eq!(fresh.status, 200, "another address");
    assert!(fresh.took < SEC, "another address waited {:?}", fresh.took);
    assert!(m(&s, "strom_auth_requests_total{result=\"rate_limited\"}") >= 1.0);
    let calls_lo2 = b.calls().iter().filter(|c| c.param("ip") == "127.0.0.2").count();
    assert!((calls_lo2 as f64) <= bound, "{calls_lo2} backend calls in {burst:?}");
}

/// A real Prometheus sees viewers by protocol and the auth counters.
#[test]
fn prometheus_shows_counts() {
    let b = AuthBackend::start(Rule::Allow(Grant::secs(30)));
    let s = auth_node("prom-auth", &b);
    wait_live(&s, "demo");
    let hls = HlsViewer::start(&s, "demo", "pm", LO1);
    hls.wait_segments(1, 15 * SEC);
    let (_prom, prom_port) = start_prometheus("prom-auth", &[s.port]);
    let query = |q: &str| -> Option<f64> {
        let url = format!(
            "http://127.0.0.1:{prom_port}/api/v1/query?query={}",
            auth_backend::encode(q)
        );
        let (code, body) = try_get(&url)?;
        let v: serde_json::Value = serde_json::from_slice(&body).ok().filter(|_| code == 200)?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    wait_for("HLS viewers in Prometheus", 60 * SEC, || {
        query("strom_stream_clients{stream=\"demo\",proto=\"hls\"}").filter(|v| *v >= 1.0)
    });
    wait_for("auth requests in Prometheus", 30 * SEC, || {
        query("sum(strom_auth_requests_total{result=\"allow\"})").filter(|v| *v >= 1.0)
    });
    assert!(metric_sum(&s, "strom_auth_backend_seconds_count") >= 1.0);
}

/// The scripted backend itself answers by its rules, records decoded
/// parameters, and refuses connections once killed (so the tests above
/// fail only for strom's reasons).
#[test]
fn scripted_backend_answers_by_its_rules() {
    let mut b = AuthBackend::start(Rule::Deny(Some(7)));
    b.set("ok", Rule::Allow(Grant::secs(10).user("u").max(2).unique()));
    b.set("bare", Rule::Bare200);
    b.set("moved", Rule::Redirect("http://example.invalid/x".into()));
    b.set("err", Rule::Error);
    b.set("junk", Rule::Garbage);
    b.set("slow", Rule::Hang(Duration::from_secs(3)));
    let url = |t: &str| format!("{}?name=a%2Fb&token={t}&qs=x%3D1%26y%3D2+z", b.url());
    let ok = get_from(&url("ok"), LO1);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-authduration"), Some("10"));
    assert_eq!(ok.header("x-userid"), Some("u"));
    assert_eq!(ok.header("x-max-sessions"), Some("2"));
    assert_eq!(ok.header("x-unique"), Some("true"));
    let no = get_from(&url("nope"), LO1);
    assert_eq!((no.status, no.header("x-authduration")), (403, Some("7")));
    let bare = get_from(&url("bare"), LO1);
    assert_eq!((bare.status, bare.headers.len()), (200, 0));
    let moved = get_from(&url("moved"), LO1);
    assert_eq!(
        (moved.status, moved.header("location")),
        (302, Some("http://example.invalid/x"))
    );
    assert_eq!(get_from(&url("err"), LO1).status, 500);
    assert!(
        request(reqwest::Method::GET, &url("junk"), LO1, &[]).is_none(),
        "garbage is not HTTP"
    );
    let t = Instant::now();
    assert!(request(reqwest::Method::GET, &url("slow"), LO1, &[]).is_none());
    assert!(t.elapsed() >= Duration::from_millis(2900), "hung {:?}", t.elapsed());
    let calls = b.calls();
    assert_eq!(calls.len(), 7);
    assert_eq!(calls[0].param("name"), "a/b");
    assert_eq!(calls[0].param("qs"), "x=1&y=2 z");
    assert_eq!(calls[0].path, "/auth");
    assert_eq!(b.calls_for("ok").len(), 1);
    b.kill();
    assert!(
        TcpStream::connect(("127.0.0.1", b.port)).is_err(),
        "killed backend still accepts"
    );
    assert_eq!(auth_backend::decode("%zz%4"), "%zz%4");
    assert_eq!(base64(b"admin:secret"), "YWRtaW46c2VjcmV0");
    assert_eq!(base64(b"a"), "YQ==");
}

/// An HLS session ends after `session_timeout` without requests; an
/// HTTP-TS session ends with its connection; both counted.
#[test]
fn sessions_end_when_idle_or_disconnected() {
    let b = AuthBackend::start(Rule::Allow(Grant::secs(30)));
    let s = node("idle", "session_timeout 5s;", &format!("on_play {};", b.url()));
    wait_live(&s, "demo");
    let listed = |t: &str| tokens_of(&session_list(&sessions(&s, "?name=demo", None))).contains(t);
    let url = s.url("/demo/mono.m3u8?token=i1");
    let pl = get_from(&url, LO1);
    assert_eq!(pl.status, 200);
    let seg = resolve(&url, child_uris(&pl.text()).last().expect("segment"));
    assert_eq!(get_from(&seg, LO1).status, 200);
    let last = Instant::now();
    assert!(listed("i1"));
    std::thread::sleep(3 * SEC);
    assert!(listed("i1"), "ended before session_timeout");
    wait_for("the idle HLS session ends", 12 * SEC, || (!listed("i1")).then_some(()));
    let gone = last.elapsed();
    assert!(gone <= 8 * SEC, "idle session ended {gone:?} after its last request");
    assert!(m(&s, "strom_sessions_closed_total{reason=\"idle\"}") >= 1.0);

    let v = TsViewer::open(s.port, "/demo/mpegts?token=i2", LO1);
    assert_eq!(v.status(), 200, "{}", v.head);
    v.wait_bytes(50_000, 10 * SEC);
    assert!(listed("i2"));
    drop(v);
    wait_for("the HTTP-TS session ends with its connection", 3 * SEC, || {
        (!listed("i2")).then_some(())
    });
    assert!(m(&s, "strom_sessions_closed_total{reason=\"ended\"}") >= 1.0);
}

/// `max_sessions_per_ip`: past it, one address gets 429 while others play;
/// a freed slot is usable again.
#[test]
fn max_sessions_per_ip_429() {
    let b = AuthBackend::start(Rule::Allow(Grant::secs(30)));
    let s = node("per-ip", "max_sessions_per_ip 2;", &format!("on_play {};", b.url()));
    wait_live(&s, "demo");
    let first = TsViewer::open(s.port, "/demo/mpegts?token=m1", LO2);
    let second = TsViewer::open(s.port, "/demo/mpegts?token=m2", LO2);
    assert_eq!(
        (first.status(), second.status()),
        (200, 200),
        "{} {}",
        first.head,
        second.head
    );
    let third = TsViewer::open(s.port, "/demo/mpegts?token=m3", LO2);
    assert_eq!(third.status(), 429, "{}", third.head);
    assert_eq!(status_from(&s.url("/demo/mono.m3u8?token=m4"), LO2).status, 429);
    assert_eq!(status_from(&s.url("/demo/mono.m3u8?token=m5"), LO1).status, 200);
    second.wait_bytes(10_000, 10 * SEC);
    drop(first);
    wait_for("a slot for 127.0.0.2 again", 5 * SEC, || {
        (status_from(&s.url("/demo/mono.m3u8?token=m6"), LO2).status == 200).then_some(())
    });
    assert!(second.ended().is_none(), "the session within the limit was closed");
}

/// A peer redirect keeps the token, and the node it sends the viewer to
/// authorizes the viewer itself: the node without the stream asks nobody.
#[test]
fn redirected_viewers_are_authorized_by_the_target() {
    let b = AuthBackend::start(Rule::Deny(None));
    b.set("good", Rule::Allow(Grant::secs(30)));
    let (pa, pb) = (free_tcp_port(), free_tcp_port());
    let a = Strom::start_in(
        scratch("redir-a"),
        pa,
        &format!("cluster_key k;\npeer 127.0.0.1:{pb};\nstream other {{ input builtin://demo; }}"),
    );
    let target = Strom::start_in(
        scratch("redir-b"),
        pb,
        &format!(
            "cluster_key k;\npeer 127.0.0.1:{pa};\nstream demo {{ input builtin://demo; segment_duration 1; on_play {}; }}",
            b.url()
        ),
    );
    wait_live(&target, "demo");
    wait_for("node a sees the peer's stream", 20 * SEC, || {
        let r = status_from(&a.url("/demo/index.m3u8?token=good"), LO1);
        (r.status == 302).then_some(())
    });
    for (token, want) in [("good", 200), ("bad", 403)] {
        let r = status_from(&a.url(&format!("/demo/index.m3u8?token={token}")), LO1);
        assert_eq!(r.status, 302, "node a redirects");
        let location = r.header("location").expect("Location").to_string();
        assert!(
            location.starts_with(&format!("http://127.0.0.1:{pb}/demo/index.m3u8?"))
                && query_values(&location, "token") == vec![token.to_string()],
            "the token travels with the viewer: {location}"
        );
        assert_eq!(status_from(&location, LO1).status, want, "{token} at the target");
        let asked = b.calls_for(token);
        assert_eq!(asked.len(), 1, "the target asked once about {token}: {asked:?}");
        assert_eq!(asked[0].params.get("name").map(String::as_str), Some("demo"));
        assert_eq!(asked[0].params.get("ip").map(String::as_str), Some("127.0.0.1"));
    }
    assert_eq!(
        m(&a, "strom_auth_requests_total{result=\"allow\"}"),
        0.0,
        "node a never asks"
    );
}

/// `X-Max-Sessions: 1` between two HLS players of one user: the older one
/// gets 403 from the moment the newer one starts and stays refused for its
/// decision's life (it does not come back and push the newer one out), the
/// newer one plays on, and the backend is not flooded with new sessions.
#[test]
fn user_cap_holds_between_hls_players() {
    let b = AuthBackend::start(Rule::Deny(None));
    for t in ["ha", "hb"] {
        b.set(t, Rule::Allow(Grant::secs(20).user("u9").max(1)));
    }
    let s = auth_node("hlscap", &b);
    wait_live(&s, "demo");
    let first = HlsViewer::start(&s, "demo", "ha", LO1);
    first.wait_segments(2, 20 * SEC);
    let second = HlsViewer::start(&s, "demo", "hb", LO1);
    second.wait_segments(1, 20 * SEC);
    let started = Instant::now();
    std::thread::sleep(8 * SEC);
    let after = first.since(started + 2 * SEC);
    assert!(!after.is_empty(), "the first player kept asking");
    assert!(
        after.iter().all(|h| h.status == 403),
        "the older player is refused: {:?}",
        after.iter().map(|h| (h.status, &h.url)).collect::<Vec<_>>()
    );
    let newer = second.since(started + 2 * SEC);
    assert!(
        newer.iter().filter(|h| h.url.contains(".ts")).count() >= 4 && newer.iter().all(|h| h.status == 200),
        "the newer player plays on: {:?}",
        newer.iter().map(|h| (h.status, &h.url)).collect::<Vec<_>>()
    );
    let new_sessions = b
        .calls()
        .iter()
        .filter(|c| c.params.get("request_type").map(String::as_str) == Some("new_session"))
        .count();
    assert_eq!(new_sessions, 2, "one new_session per player, no flood: {:?}", b.calls());
    assert_eq!(m(&s, "strom_sessions_closed_total{reason=\"max_sessions\"}"), 1.0);
    // The newer player's session counts the segment bytes it was sent.
    let list = session_list(&sessions(&s, "?name=demo", None));
    let hb = list
        .iter()
        .find(|x| x["token"] == "hb")
        .expect("the newer session is listed");
    assert!(
        hb["bytes"].as_u64().unwrap_or(0) > 50_000,
        "HLS bytes are counted: {hb}"
    );
    assert!(
        list.iter().all(|x| x["token"] != "ha"),
        "the older session is gone: {list:?}"
    );
}

/// A viewer that gives up while the backend is still thinking neither
/// poisons its identity nor slips through: the call finishes on its own,
/// its answer is cached, and the next request gets it without a second
/// call (an allow plays, a deny stays 403 even with `fail_open`).
#[test]
fn an_abandoned_backend_call_still_settles_the_decision() {
    let b = AuthBackend::start(Rule::Deny(None));
    b.set(
        "patient",
        Rule::Slow(Duration::from_millis(1500), Box::new(Rule::Allow(Grant::secs(30)))),
    );
    b.set(
        "sneaky",
        Rule::Slow(Duration::from_millis(500), Box::new(Rule::Deny(None))),
    );
    let s = node(
        "abandon",
        "",
        &format!("on_play {} {{ timeout 3s; fail_open; }}", b.url()),
    );
    wait_live(&s, "demo");
    for token in ["patient", "sneaky"] {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
        let req =
            format!("GET /demo/index.m3u8?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        c.write_all(req.as_bytes()).expect("send");
        std::thread::sleep(Duration::from_millis(200));
        drop(c); // the player gives up before the backend answers
    }
    std::thread::sleep(2 * SEC);
    assert_eq!(status_from(&s.url("/demo/index.m3u8?token=patient"), LO1).status, 200);
    assert_eq!(status_from(&s.url("/demo/index.m3u8?token=sneaky"), LO1).status, 403);
    for token in ["patient", "sneaky"] {
        assert_eq!(b.calls_for(token).len(), 1, "{token}: the first call's answer was kept");
    }
    assert_eq!(
        m(&s, "strom_auth_backend_down_total{action=\"allowed\"}"),
        0.0,
        "nobody got in by fail_open"
    );
}

/// Archive URLs pass the playback gate as sessions of their own: `on_play`
/// gets `dvr=1` and the range, a token allowed live can be refused in the
/// archive, and an archive playlist's segments carry `dvr=1` and its `sid`.
#[test]
fn archive_requests_are_authorized_apart_from_live() {
    let b = AuthBackend::start(Rule::Allow(Grant::secs(30)));
    b.set_archive("liveonly", Rule::Deny(None));
    let dir = std::env::temp_dir().join(format!("strom-auth-dvr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = node(
        "auth-dvr",
        "",
        &format!("on_play {}; dvr {} 1d;", b.url(), dir.display()),
    );
    wait_live(&s, "demo");
    // A few archived seconds.
    let ranges_url = s.url("/api/v1/streams/demo/dvr/ranges");
    // 5 s recorded, so the 3 s asked for lie wholly in the past (a range
    // reaching past now is a growing EVENT playlist, not VOD).
    let from = wait_for("5 s archived", 30 * SEC, || {
        let r = get_from(&ranges_url, LO1);
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        let first = &v["ranges"][0];
        (first["duration"].as_u64()? >= 5).then(|| first["from"].as_u64())?
    });
    let archive = |token: &str| s.url(&format!("/demo/archive-{from}-3.m3u8?token={token}"));
    // Live is allowed, the archive refused, for the same token.
    assert_eq!(get_from(&s.url("/demo/mono.m3u8?token=liveonly"), LO1).status, 200);
    let denied = get_from(&archive("liveonly"), LO1);
    assert_eq!(denied.status, 403, "{}", denied.text());
    let asked: Vec<_> = b
        .calls_for("liveonly")
        .into_iter()
        .filter(|c| c.param("dvr") == "1")
        .collect();
    assert_eq!(asked.len(), 1, "one archive call: {:#?}", b.calls());
    assert_eq!(asked[0].param("dvr_range"), format!("{from}-3"));
    assert_eq!(asked[0].kind(), "new_session");
    // Another token may watch the archive: its segments carry the archive
    // session's sid and dvr=1, and are refused without them.
    let url = archive("both");
    let playlist = get_from(&url, LO1);
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    let text = playlist.text();
    assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    let segs = child_uris(&text);
    assert!(!segs.is_empty(), "{text}");
    for u in &segs {
        assert_eq!(query_values(u, "dvr"), ["1"], "{u}");
        assert_eq!(query_values(u, "token"), ["both"], "{u}");
        assert_eq!(query_values(u, "sid").len(), 1, "{u}");
    }
    let seg = get_from(&resolve(&url, &segs[0]), LO1);
    assert_eq!(seg.status, 200, "archived segment {}", segs[0]);
    let bare = segs[0].split('?').next().unwrap_or("");
    let refused = get_from(&s.url(&format!("/demo/{bare}?token=both&dvr=1")), LO1);
    assert_eq!(refused.status, 403, "an archive segment without its sid");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

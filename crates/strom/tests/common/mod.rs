//! Test harness: runs real `strom` processes on 127.0.0.1 ports and drives
//! them with ffmpeg, ffprobe and an HTTP client. Every wait is bounded.
#![allow(dead_code)]

pub mod auth_backend;
pub mod streamer;

use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The repository's demo sample (H.264 1280x720 + AAC, 10 s).
pub fn demo_ts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/demo.ts")
}

/// The workspace root (where `.ci/run` creates `.venv`).
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// A fresh scratch directory for one test.
pub fn scratch(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("strom-test-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Fails the test unless ffmpeg and ffprobe are installed (.ci/run installs them).
pub fn require_ffmpeg() {
    for tool in ["ffmpeg", "ffprobe"] {
        let ok = Command::new(tool)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{tool} is required for integration tests (apt-get install ffmpeg)");
    }
}

/// A running strom node.
pub struct Strom {
    pub child: Option<Child>,
    pub port: u16,
    pub base: String,
    pub dir: PathBuf,
    pub config_path: PathBuf,
}

impl Strom {
    /// Starts strom with `body` (config without the `http` line) on a free port.
    pub fn start(tag: &str, body: &str) -> Strom {
        let dir = scratch(tag);
        let port = free_tcp_port();
        Self::start_in(dir, port, body)
    }

    /// Starts strom in `dir` on `port` (used to restart a node on the same port).
    pub fn start_in(dir: PathBuf, port: u16, body: &str) -> Strom {
        Self::launch(dir, port, body, None)
    }

    /// Writes the config and starts strom, directly or through `wrapper`
    /// (a command that execs its arguments, such as `prlimit`), so the pid
    /// is strom's either way.
    fn launch(dir: PathBuf, port: u16, body: &str, wrapper: Option<Vec<String>>) -> Strom {
        let config_path = dir.join("strom.conf");
        let mut f = std::fs::File::create(&config_path).expect("config");
        writeln!(f, "http 127.0.0.1:{port};\n{body}").expect("write config");
        let log = std::fs::File::create(dir.join(format!("strom-{}.log", COUNTER.fetch_add(1, Ordering::Relaxed))))
            .expect("log");
        let strom = env!("CARGO_BIN_EXE_strom");
        let mut cmd = match &wrapper {
            Some(w) => {
                let mut c = Command::new(&w[0]);
                c.args(&w[1..]).arg(strom);
                c
            }
            None => Command::new(strom),
        };
        let child = cmd
            .args(["run", "-c"])
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn strom (wrapper {wrapper:?}): {e}"));
        let s = Strom {
            child: Some(child),
            port,
            base: format!("http://127.0.0.1:{port}"),
            dir,
            config_path,
        };
        s.wait_http();
        s
    }

    fn wait_http(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "strom did not listen on {} within 20 s; log in {}",
            self.port,
            self.dir.display()
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("strom did not exit within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn log(&self) -> String {
        let mut out = String::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "log") {
                    out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }
}

impl Drop for Strom {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A background process (ffmpeg) killed on drop.
pub struct Proc(pub Option<Child>);

impl Proc {
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// ffmpeg sends the demo sample in a loop, in real time, as MPEG-TS to `url`
/// (`udp://…` or an HTTP publish URL). No encoding: cheap on CPU.
pub fn ffmpeg_loop_demo(url: &str) -> Proc {
    let mut args: Vec<String> = ["-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(demo_ts().display().to_string());
    args.extend(["-c", "copy", "-f", "mpegts"].iter().map(|s| s.to_string()));
    if url.starts_with("http") {
        args.extend(["-method", "PUT"].iter().map(|s| s.to_string()));
    }
    args.push(output_url(url));
    Proc(Some(
        Command::new("ffmpeg")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg"),
    ))
}

fn output_url(url: &str) -> String {
    if url.starts_with("udp://") {
        format!("{url}?pkt_size=1316")
    } else {
        url.to_string()
    }
}

/// ffmpeg encodes a live 1280x720 H.264 + AAC test pattern to `url`.
pub fn ffmpeg_encode_testsrc(url: &str) -> Proc {
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1000:sample_rate=48000",
    ])
    .args([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        "25",
        "-pix_fmt",
        "yuv420p",
        "-b:v",
        "1500k",
    ])
    .args(["-c:a", "aac", "-b:a", "96k", "-f", "mpegts"]);
    if url.starts_with("http") {
        cmd.args(["-method", "PUT"]);
    }
    cmd.arg(output_url(url));
    Proc(Some(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg"),
    ))
}

/// Runs ffprobe on `url` and returns its JSON (`-show_streams`).
pub fn ffprobe_streams(url: &str) -> serde_json::Value {
    let out = run_bounded(
        Command::new("ffprobe")
            .args(["-v", "error", "-rw_timeout", "15000000", "-show_streams", "-of", "json"])
            .arg(url),
        Duration::from_secs(40),
    );
    assert!(
        out.status.success(),
        "ffprobe {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// Runs a command with a deadline; kills it when exceeded.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &id.to_string()]).status();
            panic!("command exceeded {limit:?}: {cmd:?}");
        }
    }
}

/// Codec summary of ffprobe's JSON: (codec_name, width, height) per stream.
pub fn codecs(probe: &serde_json::Value) -> Vec<(String, i64, i64)> {
    probe["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["codec_name"].as_str().unwrap_or("").to_string(),
                        s["width"].as_i64().unwrap_or(0),
                        s["height"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Blocking HTTP GET: (status, body).
pub fn get(url: &str) -> (u16, Vec<u8>) {
    http(reqwest::Method::GET, url)
}

pub fn head(url: &str) -> u16 {
    http(reqwest::Method::HEAD, url).0
}

fn http(method: reqwest::Method, url: &str) -> (u16, Vec<u8>) {
    let r = fetch(method, url);
    (r.status, r.body)
}

/// A whole HTTP response.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// GET that reports connection errors as None instead of failing the test.
pub fn try_get(url: &str) -> Option<(u16, Vec<u8>)> {
    let url = url.to_string();
    rt().block_on(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .ok()?;
        let r = client.get(&url).send().await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.bytes().await.ok()?.to_vec()))
    })
}

pub fn fetch(method: reqwest::Method, url: &str) -> Resp {
    let url = url.to_string();
    rt().block_on(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()
            .expect("client");
        match client.request(method, &url).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let headers = r
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                Resp {
                    status,
                    headers,
                    body: r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
                }
            }
            Err(e) => panic!("{url}: {}", error_chain(&e)),
        }
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn get_text(url: &str) -> (u16, String) {
    let (s, b) = get(url);
    (s, String::from_utf8_lossy(&b).into_owned())
}

pub fn api(s: &Strom, stream: &str) -> serde_json::Value {
    let (code, body) = get(&s.url(&format!("/api/v1/streams/{stream}")));
    assert_eq!(code, 200, "api for {stream}");
    serde_json::from_slice(&body).expect("api json")
}

/// Polls `f` every 100 ms until it returns Some, or panics after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Parsed live media playlist.
#[derive(Debug, Clone)]
pub struct Playlist {
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub target_duration: u64,
    pub segments: Vec<(u64, f64, bool)>,
}

pub fn parse_playlist(text: &str) -> Playlist {
    let mut p = Playlist {
        media_sequence: 0,
        discontinuity_sequence: 0,
        target_duration: 0,
        segments: Vec::new(),
    };
    let mut dur = 0.0;
    let mut disc = false;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.parse().expect("media sequence");
        } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            p.discontinuity_sequence = v.parse().expect("disc seq");
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target_duration = v.parse().expect("target");
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            dur = v.trim_end_matches(',').parse().expect("extinf");
        } else if line == "#EXT-X-DISCONTINUITY" {
            disc = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            let seq = line
                .split(['.', '?'])
                .next()
                .and_then(|s| s.parse().ok())
                .expect("segment uri");
            p.segments.push((seq, dur, disc));
            disc = false;
        }
    }
    p
}

/// Fetches and parses `/NAME/mono.m3u8`; None unless 200.
pub fn media_playlist(s: &Strom, stream: &str) -> Option<Playlist> {
    let (code, text) = get_text(&s.url(&format!("/{stream}/mono.m3u8")));
    (code == 200).then(|| parse_playlist(&text))
}

/// Value of a Prometheus sample whose line starts with `prefix` (name and labels).
pub fn metric(s: &Strom, prefix: &str) -> Option<f64> {
    let (_, text) = get_text(&s.url("/metrics"));
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits until `/NAME/mono.m3u8` lists at least `min_segments` segments.
pub fn wait_playlist(s: &Strom, stream: &str, min_segments: usize, limit: Duration) -> Playlist {
    wait_for(
        &format!("{stream} playlist with {min_segments} segments on port {}", s.port),
        limit,
        || media_playlist(s, stream).filter(|p| p.segments.len() >= min_segments),
    )
}

/// Starts a real Prometheus (Debian package) on a free loopback port,
/// scraping `targets` (strom ports) every second; returns it and its port.
pub fn start_prometheus(tag: &str, targets: &[u16]) -> (Proc, u16) {
    let ok = Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        ok.is_ok_and(|s| s.success()),
        "prometheus is required (apt-get install prometheus)"
    );
    let dir = scratch(tag);
    let port = free_tcp_port();
    let list: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: strom\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        ),
    )
    .expect("prometheus config");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log"))
        .spawn()
        .expect("prometheus");
    (Proc(Some(child)), port)
}

/// A request with extra headers (Origin, Range, …); the whole response.
pub fn fetch_with(method: reqwest::Method, url: &str, headers: &[(&str, &str)]) -> Resp {
    let url = url.to_string();
    let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    rt().block_on(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()
            .expect("client");
        let mut req = client.request(method, &url);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let headers = r
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                Resp {
                    status,
                    headers,
                    body: r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
                }
            }
            Err(e) => panic!("{url}: {}", error_chain(&e)),
        }
    })
}

/// The status of a stream as the API reports it.
pub fn status(s: &Strom, stream: &str) -> String {
    api(s, stream)["status"].as_str().unwrap_or("").to_string()
}

/// Open file descriptors of a running strom (`/proc/PID/fd`), without the
/// memfds that hold segment bodies for zero-copy sending: those come and go
/// with the live window, not with connections.
pub fn fd_count(s: &Strom) -> usize {
    let pid = s.child.as_ref().expect("running").id();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read_link(e.path()).map_or(true, |t| !t.to_string_lossy().starts_with("/memfd:")))
        .count()
}

/// Waits until the fd count of `s` holds still for half a second; returns it.
pub fn settled_fd_count(s: &Strom) -> usize {
    let mut last = fd_count(s);
    wait_for("a steady fd count", Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_millis(500));
        let now = fd_count(s);
        let steady = now == last;
        last = now;
        steady.then_some(now)
    })
}

/// Starts strom like [`Strom::start`], but under `prlimit --nofile=N:N`
/// (soft and hard limit N, util-linux), so that it can run out of file
/// descriptors.
pub fn start_with_nofile(tag: &str, nofile: u32, body: &str) -> Strom {
    let wrapper = vec!["prlimit".to_string(), format!("--nofile={nofile}:{nofile}")];
    Strom::launch(scratch(tag), free_tcp_port(), body, Some(wrapper))
}

/// An HTTP-TS viewer of `/NAME/mpegts` on `port` with a 4 KB receive buffer,
/// that the caller may read slowly or not at all.
pub fn stalled_viewer(port: u16, stream: &str) -> std::net::TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    sock.connect(&addr.into()).expect("connect");
    let mut t: std::net::TcpStream = sock.into();
    t.write_all(format!("GET /{stream}/mpegts HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .expect("request");
    t
}

/// An error with its sources (reqwest's own text does not say whether the
/// connection was refused, reset or timed out).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut why = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        why.push_str(&format!(": {s}"));
        src = s.source();
    }
    why
}

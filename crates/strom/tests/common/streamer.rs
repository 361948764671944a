//! A streaming server played by a test, and a balancer process to put in
//! front of it.
//!
//! The scripted server answers `/healthz`, `/metrics` (with
//! `strom_server_clients`) and `/api/v1/streams` (stream `ch`) as a strom
//! node does; any other GET is a viewer arriving, counted at once. The test
//! sets the count, makes viewers leave, and reads the highest count seen.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{free_tcp_port, scratch, wait_for};

/// A scripted streaming server on 127.0.0.1.
pub struct Streamer {
    pub port: u16,
    clients: Arc<AtomicU64>,
    peak: Arc<AtomicU64>,
    arrivals: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Streamer {
    /// Starts a server; with `leave_every`, one viewer leaves per period.
    pub fn start(leave_every: Option<Duration>) -> Streamer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let s = Streamer {
            port,
            clients: Arc::default(),
            peak: Arc::default(),
            arrivals: Arc::default(),
            stop: Arc::default(),
        };
        let (clients, peak, arrivals, stop) = (s.clients.clone(), s.peak.clone(), s.arrivals.clone(), s.stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (clients, peak, arrivals) = (clients.clone(), peak.clone(), arrivals.clone());
                std::thread::spawn(move || serve(conn, &clients, &peak, &arrivals));
            }
        });
        if let Some(every) = leave_every {
            let (clients, stop) = (s.clients.clone(), s.stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(every);
                    let _ = clients.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1));
                }
            });
        }
        s
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Viewers there now.
    pub fn clients(&self) -> u64 {
        self.clients.load(Ordering::Relaxed)
    }

    pub fn set_clients(&self, n: u64) {
        self.clients.store(n, Ordering::Relaxed);
    }

    /// The highest count seen since the last reset.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    pub fn reset_peak(&self) {
        self.peak.store(self.clients(), Ordering::Relaxed);
    }

    /// Viewers that ever arrived.
    pub fn arrivals(&self) -> u64 {
        self.arrivals.load(Ordering::Relaxed)
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(mut c: TcpStream, clients: &AtomicU64, peak: &AtomicU64, arrivals: &AtomicU64) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let body = if path == "/healthz" {
        "ok\n".to_string()
    } else if path == "/metrics" {
        format!(
            "# TYPE strom_server_clients gauge\nstrom_server_clients {}\n",
            clients.load(Ordering::Relaxed)
        )
    } else if path.starts_with("/api/v1/streams") {
        r#"{"streams":[{"name":"ch","status":"running","ondemand":false}]}"#.to_string()
    } else {
        let now = clients.fetch_add(1, Ordering::Relaxed) + 1;
        peak.fetch_max(now, Ordering::Relaxed);
        arrivals.fetch_add(1, Ordering::Relaxed);
        "#EXTM3U\n".to_string()
    };
    let _ = write!(
        c,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A `strom balancer` process.
pub struct Balancer {
    pub child: Child,
    pub port: u16,
    pub config: std::path::PathBuf,
}

impl Balancer {
    /// Starts a balancer on `port` (0: a free one) with `body` after its
    /// `http` line.
    pub fn start_on(port: u16, body: &str) -> Balancer {
        let dir = scratch("balancer");
        let port = if port == 0 { free_tcp_port() } else { port };
        let config = dir.join("balancer.conf");
        std::fs::write(&config, format!("http 127.0.0.1:{port};\n{body}")).expect("config");
        Balancer::spawn(port, config)
    }

    fn spawn(port: u16, config: std::path::PathBuf) -> Balancer {
        let log = config.with_file_name("balancer.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_strom"))
            .args(["balancer", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("balancer");
        wait_for("balancer listening", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Balancer { child, port, config }
    }

    /// Stops the process and starts it again with the same config.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let again = Balancer::spawn(self.port, self.config.clone());
        *self = again;
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn hup(&self) {
        let _ = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.config.with_file_name("balancer.log")).unwrap_or_default()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One viewer: `GET /ch/index.m3u8` on the balancer, then the redirect it
/// gets, at once. Returns the redirect's port, or the balancer's status.
pub fn view(balancer_port: u16) -> Result<u16, u16> {
    let (status, location) = raw_get(balancer_port, "/ch/index.m3u8", "");
    if status != 302 {
        return Err(status);
    }
    let Some(rest) = location.as_deref().and_then(|l| l.strip_prefix("http://127.0.0.1:")) else {
        return Err(0);
    };
    let (port, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(port) = port.parse::<u16>() else {
        return Err(0);
    };
    let (got, _) = raw_get(port, path, "");
    if got == 200 {
        Ok(port)
    } else {
        Err(got)
    }
}

/// A one-shot GET over a fresh connection, with `extra` header lines
/// (each ending in CRLF, or empty): (status, Location); status 0 when the
/// connection failed.
pub fn raw_get(port: u16, path: &str, extra: &str) -> (u16, Option<String>) {
    let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, None);
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = c.set_nodelay(true);
    let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n");
    if c.write_all(head.as_bytes()).is_err() {
        return (0, None);
    }
    let mut resp = Vec::new();
    let _ = c.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let location = text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location").then(|| v.trim().to_string())
    });
    (status, location)
}

//! Scripted HTTP servers on loopback that stand in for servers the tests
//! cannot run (Flussonic, Wowza, Nimble): each request is answered by a
//! closure the test writes, from state the test changes while it runs.
//!
//! Plain blocking I/O, one thread per connection, `Connection: close` on
//! every answer. A reply can be delayed (a slow server) or be an endless
//! body (a server that never stops talking). Every request's path and
//! `Authorization` header are recorded. Dropping the server stops its
//! accept loop; connection threads end with their connection.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request as the script sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request target: path and query.
    pub target: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// What to send back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Body,
    /// Wait this long before answering anything.
    pub delay: Duration,
}

/// A reply body.
#[derive(Debug, Clone)]
pub enum Body {
    Text(String),
    /// `n` MiB of `x`, without a Content-Length (the body ends when the
    /// connection does), written until the client goes away.
    Endless(usize),
}

impl Reply {
    pub fn json(body: impl Into<String>) -> Reply {
        Reply::with(200, "application/json", body)
    }

    pub fn xml(body: impl Into<String>) -> Reply {
        Reply::with(200, "text/xml", body)
    }

    pub fn text(body: impl Into<String>) -> Reply {
        Reply::with(200, "text/plain; version=0.0.4", body)
    }

    pub fn status(status: u16) -> Reply {
        Reply::with(status, "text/plain", format!("{status}\n"))
    }

    pub fn with(status: u16, content_type: &'static str, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type,
            body: Body::Text(body.into()),
            delay: Duration::ZERO,
        }
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Script = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running scripted server.
pub struct Scripted {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Scripted {
    /// Serves on a fresh 127.0.0.1 port until dropped.
    pub fn start(script: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let accept = {
            let (stop, requests) = (stop.clone(), requests.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (script, requests) = (script.clone(), requests.clone());
                            std::thread::spawn(move || serve(conn, &*script, &requests));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Scripted {
            port,
            requests,
            stop,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests so far whose path is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| r.path() == path)
            .cloned()
            .collect()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, script: &Script, requests: &Mutex<Vec<Request>>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 << 10 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_string();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string());
    let request = Request { target, authorization };
    requests.lock().unwrap_or_else(|e| e.into_inner()).push(request.clone());
    let reply = script(&request);
    std::thread::sleep(reply.delay);
    match reply.body {
        Body::Text(body) => {
            let _ = write!(
                conn,
                "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                reply.status,
                reply.content_type,
                body.len()
            );
        }
        Body::Endless(mib) => {
            let _ = write!(
                conn,
                "HTTP/1.1 {} X\r\nContent-Type: {}\r\nConnection: close\r\n\r\n",
                reply.status, reply.content_type
            );
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..mib {
                if conn.write_all(&chunk).is_err() {
                    break;
                }
            }
        }
    }
}

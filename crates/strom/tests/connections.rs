//! Integration tests: every connection to a node is bounded. Idle and
//! half-sent connections are cut after `client_header_timeout`, idle
//! keep-alive connections after `keepalive_timeout`, and connections above
//! `max_connections` are refused and counted, while real viewers are still
//! served. Real strom processes on 127.0.0.1; every wait is bounded.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

fn connect(s: &Strom) -> TcpStream {
    TcpStream::connect(("127.0.0.1", s.port)).expect("connect")
}

/// Whether the server has closed `c` (EOF or reset) within `limit`.
fn closed_within(c: &mut TcpStream, limit: Duration) -> bool {
    c.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a response to what was sent: keep reading
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(_) => return true, // reset
        }
    }
}

/// Whether the server has already closed `c` (EOF or reset), without waiting.
fn closed_now(c: &TcpStream) -> bool {
    c.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 1];
    let mut r: &TcpStream = c;
    let closed = match r.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    };
    c.set_nonblocking(false).expect("blocking");
    closed
}

/// Reads one HTTP/1.1 response with a Content-Length; returns its status.
fn read_response(c: &mut TcpStream) -> u16 {
    c.set_read_timeout(Some(5 * SEC)).expect("timeout");
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = c.read(&mut buf).expect("response head");
        assert!(n > 0, "connection closed before a response");
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let status = head[9..12].parse().expect("status");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().expect("length"))
        .expect("content-length");
    while data.len() < head_end + len {
        let n = c.read(&mut buf).expect("response body");
        assert!(n > 0, "connection closed inside the body");
        data.extend_from_slice(&buf[..n]);
    }
    status
}

/// Connections that send nothing, that stop halfway through their headers,
/// or that drip header bytes are all closed after `client_header_timeout`
/// (2 s here), not before; the node's fds return to where they were and
/// the cuts are counted.
#[test]
fn idle_and_half_sent_connections_are_cut_after_header_timeout() {
    let s = Strom::start(
        "hdr-timeout",
        "client_header_timeout 2s;\nkeepalive_timeout 30s;\nstream demo { input builtin://demo; }",
    );
    wait_playlist(&s, "demo", 1, 20 * SEC);
    let baseline = settled_fd_count(&s);

    let opened = Instant::now();
    let mut conns: Vec<TcpStream> = (0..20).map(|_| connect(&s)).collect();
    for _ in 0..20 {
        let mut c = connect(&s);
        c.write_all(b"GET /demo/index.m3u8 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
            .expect("half a request");
        conns.push(c);
    }
    let mut drip = connect(&s);
    wait_for("the node to accept 41 connections", 5 * SEC, || {
        (fd_count(&s) >= baseline + 41).then_some(())
    });

    // The dripper sends a byte every 300 ms: moving, but never a whole head.
    let dripped = std::thread::spawn(move || {
        let started = Instant::now();
        for b in
            b"GET /demo/index.m3u8 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter()
        {
            if drip.write_all(&[*b]).is_err() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        None
    });

    for (i, c) in conns.iter_mut().enumerate() {
        assert!(closed_within(c, 8 * SEC), "connection {i} still open after 8 s");
    }
    let took = opened.elapsed();
    assert!(took >= Duration::from_millis(1500), "closed too early: {took:?}");
    let drip_cut = dripped.join().expect("dripper");
    assert!(
        drip_cut.is_some_and(|d| d < 6 * SEC),
        "a dripping connection must be cut after the header timeout: {drip_cut:?}"
    );

    drop(conns);
    wait_for(&format!("fds back to {baseline}"), 10 * SEC, || {
        (fd_count(&s) <= baseline).then_some(())
    });
    let cut = metric(&s, "strom_http_errors_total{kind=\"header_timeout\"}").unwrap_or(0.0);
    assert!(cut >= 41.0, "header timeouts counted: {cut}");
    // Viewers are served as before.
    assert_eq!(get(&s.url("/demo/index.m3u8")).0, 200);
}

/// With `max_connections 50`, 60 idle sockets: the 10 above the cap are
/// refused at once and counted, and a viewer gets its playlist as soon as
/// the idle ones are cut by the header timeout.
#[test]
fn connections_above_the_cap_are_refused_and_counted() {
    let s = Strom::start(
        "conn-cap",
        "max_connections 50;\nclient_header_timeout 2s;\nstream demo { input builtin://demo; }",
    );
    wait_playlist(&s, "demo", 1, 20 * SEC);
    let baseline = settled_fd_count(&s);

    let opened = Instant::now();
    let idle: Vec<TcpStream> = (0..60).map(|_| connect(&s)).collect();
    // Every one of them is accepted by the kernel; only the cap can refuse.
    // Look once, well before the 2 s header timeout could close any.
    std::thread::sleep(Duration::from_millis(300));
    let refused_at_once = idle.iter().filter(|c| closed_now(c)).count();
    assert!(opened.elapsed() < Duration::from_millis(1500), "too slow to tell");
    assert!(
        (10..=12).contains(&refused_at_once),
        "connections above the cap are closed at once: {refused_at_once} of 60"
    );
    assert!(fd_count(&s) <= baseline + 52, "the cap holds the node's fds");

    let (code, took) = wait_for("a viewer's playlist", 15 * SEC, || {
        try_get(&s.url("/demo/index.m3u8")).map(|(code, _)| (code, opened.elapsed()))
    });
    assert_eq!(code, 200);
    assert!(took < 10 * SEC, "viewer waited {took:?}");
    let refused = metric(&s, "strom_http_errors_total{kind=\"conn_limit\"}").unwrap_or(0.0);
    assert!(refused >= 10.0, "refusals counted: {refused}");
    assert!(s.log().contains("max_connections reached"), "refusal logged");
}

/// An idle keep-alive connection is closed `keepalive_timeout` (2 s) after
/// its last response, long before `client_header_timeout` (20 s); a request
/// inside that time is served on the same connection and restarts it.
#[test]
fn idle_keepalive_connections_are_closed_after_keepalive_timeout() {
    let s = Strom::start(
        "keepalive",
        "client_header_timeout 20s;\nkeepalive_timeout 2s;\nstream demo { input builtin://demo; }",
    );
    wait_playlist(&s, "demo", 1, 20 * SEC);
    let mut c = connect(&s);
    let req = b"GET /demo/index.m3u8 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    c.write_all(req).expect("request");
    assert_eq!(read_response(&mut c), 200);
    std::thread::sleep(Duration::from_millis(1200));
    c.write_all(req).expect("second request on the same connection");
    assert_eq!(read_response(&mut c), 200);
    let idle_from = Instant::now();
    assert!(
        closed_within(&mut c, 8 * SEC),
        "idle keep-alive connection still open after 8 s"
    );
    let idle = idle_from.elapsed();
    assert!(
        (Duration::from_millis(1500)..5 * SEC).contains(&idle),
        "closed {idle:?} after the last response"
    );
}

/// A node whose hard fd limit is 128 is flooded with 150 idle connections:
/// accept fails with EMFILE, which is counted and logged (rate-limited),
/// and a viewer still gets its playlist once the idle ones are cut.
#[test]
fn out_of_file_descriptors_is_counted_and_recovers() {
    let s = start_with_nofile(
        "emfile",
        128,
        "client_header_timeout 2s;\nmax_connections 1000;\nstream demo { input builtin://demo; }",
    );
    wait_playlist(&s, "demo", 1, 20 * SEC);
    let log = s.log();
    assert!(log.contains("file descriptor limit"), "limits logged: {log}");
    assert!(log.contains("max_connections is close to or above"), "{log}");

    let started = Instant::now();
    let idle: Vec<TcpStream> = (0..150).map(|_| connect(&s)).collect();
    wait_for("the node to run out of fds", 5 * SEC, || {
        s.log().contains("out of file descriptors").then_some(())
    });
    let (code, _) = wait_for("a viewer's playlist", 20 * SEC, || try_get(&s.url("/demo/index.m3u8")));
    assert_eq!(code, 200);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "served before any idle one was cut? {took:?}"
    );
    let failed = metric(&s, "strom_http_errors_total{kind=\"fd_limit\"}").unwrap_or(0.0);
    assert!(failed >= 1.0, "EMFILE counted: {failed}");
    let lines = s.log().matches("out of file descriptors").count();
    assert!(lines <= 2, "EMFILE logged at most once per 10 s, got {lines} lines");
    drop(idle);
}

//! Integration tests of HTTP-TS (`/NAME/mpegts`) delivery: a thousand
//! viewers that never read cost a node per-connection state, not
//! per-viewer copies of the stream; ingest goes on; every descriptor comes
//! back, whether the viewers leave or the send timeout cuts them. A HEAD
//! answers the GET's header fields. A real strom process on 127.0.0.1;
//! every wait is bounded.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);
const VIEWERS: usize = 1000;
/// Viewers per source address (127.0.1.x): a stream without authorization
/// counts at most 256 sessions per address.
const PER_ADDR: usize = 200;

/// A viewer of `/NAME/mpegts` from `src` with a 4 KB receive buffer, that
/// sends its request and never reads.
fn silent_viewer(port: u16, stream: &str, src: Ipv4Addr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    sock.bind(&SocketAddr::from((src, 0)).into()).expect("bind");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    sock.connect(&addr.into()).expect("connect");
    let mut t: TcpStream = sock.into();
    t.write_all(format!("GET /{stream}/mpegts HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .expect("request");
    t
}

/// Resident memory of a running strom, in bytes (`VmRSS`).
fn rss(s: &Strom) -> u64 {
    let pid = s.child.as_ref().expect("running").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// Open TCP sockets of a running strom (its other descriptors, such as the
/// memfds of the segment window, come and go with the window).
fn sockets(s: &Strom) -> usize {
    let pid = s.child.as_ref().expect("running").id();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")))
        .count()
}

/// Sockets of `s` once their count holds still for half a second.
fn settled_sockets(s: &Strom) -> usize {
    let mut last = sockets(s);
    wait_for("a steady socket count", 10 * SEC, || {
        std::thread::sleep(Duration::from_millis(500));
        let now = sockets(s);
        let steady = now == last;
        last = now;
        steady.then_some(now)
    })
}

fn newest_seq(s: &Strom) -> u64 {
    media_playlist(s, "demo")
        .and_then(|p| p.segments.last().map(|x| x.0))
        .unwrap_or(0)
}

const MIB: u64 = 1 << 20;

/// 1,000 viewers of a ~1.3 Mbit/s stream send their request and never read.
/// Every connection pins at most hyper's queue (~400 KB) of batches the
/// stream muxed once and shares; stalled at about the same moment, they
/// pin about the same batches. What grows per viewer is its connection
/// state (buffers of a few KB, the task, the session). The bound: 48 MiB
/// over the baseline, i.e. ~48 KB per viewer. One private copy per viewer
/// of what its connection holds (~400 KB) or of the cached GOP (~170 KB)
/// would pass it by several times.
///
/// Meanwhile the stream keeps producing segments. Then half the viewers
/// leave, and the other half is reset by the node's send timeout (15 s
/// without progress, counted): the descriptors return to the baseline, and
/// the memory to near it.
#[test]
fn memory_per_stream_stays_bounded_with_1000_silent_viewers() {
    strom_node::net::raise_fd_limit(VIEWERS as u64 + 256);
    let s = Strom::start("ts-load", "stream demo { input builtin://demo; }");
    wait_playlist(&s, "demo", 2, 20 * SEC);
    // One viewer that reads, once, so the baseline includes a served
    // HTTP-TS response (its allocations and the muxer's buffers).
    let (code, body) = wait_for("a first mpegts response", 20 * SEC, || {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).ok()?;
        c.write_all(b"GET /demo/mpegts HTTP/1.0\r\n\r\n").ok()?;
        c.set_read_timeout(Some(5 * SEC)).ok()?;
        let mut buf = vec![0u8; 512 << 10];
        let mut got = 0;
        while got < buf.len() {
            match std::io::Read::read(&mut c, &mut buf[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        let head = String::from_utf8_lossy(&buf[..12]).to_string();
        Some((head, got))
    });
    assert!(code.starts_with("HTTP/1.0 200"), "{code}");
    assert!(body >= 512 << 10, "a reading viewer got {body} bytes");
    let base_fds = settled_sockets(&s);
    let memfd = "strom_memfd_bytes";
    let base_memfd = metric(&s, memfd).unwrap_or(0.0);
    let base_rss = rss(&s);
    let seq0 = newest_seq(&s);

    let connected = Instant::now();
    let mut viewers: Vec<TcpStream> = (0..VIEWERS)
        .map(|i| {
            let src = Ipv4Addr::new(127, 0, 1, 1 + (i / PER_ADDR) as u8);
            silent_viewer(s.port, "demo", src)
        })
        .collect();
    let clients = "strom_stream_clients{stream=\"demo\",proto=\"mpegts\"}";
    wait_for("1,000 viewers served", 20 * SEC, || {
        metric(&s, clients).filter(|n| *n >= VIEWERS as f64)
    });
    // Run until every connection is stalled: ~1.4 MB each (the node's
    // 1 MiB send buffer and hyper's queue) at ~170 KB/s.
    let stalled = connected + 11 * SEC;
    let mut peak = 0;
    while Instant::now() < stalled {
        peak = peak.max(rss(&s));
        std::thread::sleep(Duration::from_millis(200));
    }
    peak = peak.max(rss(&s));
    let fds = sockets(&s);
    assert!(
        (base_fds + VIEWERS - 5..=base_fds + VIEWERS + 10).contains(&fds),
        "{fds} sockets for {VIEWERS} viewers over a baseline of {base_fds}"
    );
    // The batches themselves are in memfds (not in RSS): the stream's
    // window of HLS segments and the HTTP-TS arena, shared by all.
    let shm = metric(&s, memfd).unwrap_or(0.0) - base_memfd;
    eprintln!("memfd bytes: baseline {base_memfd}, +{shm} with {VIEWERS} silent viewers");
    assert!(shm < (16 * MIB) as f64, "memfds grew by {shm} bytes");
    assert_eq!(metric(&s, clients), Some(VIEWERS as f64), "every viewer still served");
    let grew = peak.saturating_sub(base_rss);
    eprintln!(
        "RSS: baseline {} KiB, peak with {VIEWERS} silent viewers {} KiB (+{} KiB, {} B per viewer)",
        base_rss / 1024,
        peak / 1024,
        grew / 1024,
        grew / VIEWERS as u64
    );
    assert!(
        grew < 48 * MIB,
        "RSS grew by {} MiB with {VIEWERS} silent viewers",
        grew / MIB
    );
    // Ingest was not slowed: ~5 segments of 2 s in 11 s, a fresh frame.
    let seq1 = newest_seq(&s);
    assert!(
        seq1 >= seq0 + 4,
        "segments stalled behind silent viewers: {seq0} -> {seq1}"
    );
    let age = api(&s, "demo")["last_frame_age_secs"].as_f64().unwrap_or(99.0);
    assert!(age < 1.0, "last frame {age} s ago");
    assert_eq!(metric(&s, "strom_http_errors_total{kind=\"send_timeout\"}"), Some(0.0));

    // Half leave (reset: their unread data is dropped), and as many new
    // silent viewers come. Their state reuses what the leavers freed: glibc
    // keeps freed memory for reuse instead of returning it to the system,
    // so RSS does not go back down, but a leak (or per-viewer copies kept
    // past the viewer) would show as growth here.
    for v in viewers.drain(..VIEWERS / 2) {
        let _ = socket2::SockRef::from(&v).set_linger(Some(Duration::ZERO));
    }
    wait_for("the leavers' sockets closed", 10 * SEC, || {
        (sockets(&s) <= base_fds + VIEWERS / 2 + 10).then_some(())
    });
    let second = Instant::now();
    let wave: Vec<TcpStream> = (0..VIEWERS / 2)
        .map(|i| {
            let src = Ipv4Addr::new(127, 0, 2, 1 + (i / PER_ADDR) as u8);
            silent_viewer(s.port, "demo", src)
        })
        .collect();
    wait_for("1,000 viewers served again", 20 * SEC, || {
        metric(&s, clients).filter(|n| *n >= VIEWERS as f64)
    });
    let mut peak2 = 0;
    while second.elapsed() < 6 * SEC {
        peak2 = peak2.max(rss(&s));
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("RSS with the second wave: {} KiB", peak2 / 1024);
    // Had the leavers' memory been kept, 500 more viewers would add half
    // of what the first 1,000 did.
    assert!(
        peak2 < peak + grew / 2,
        "RSS {} KiB with 500 viewers replaced, {} KiB before (+{} KiB for the first 1,000)",
        peak2 / 1024,
        peak / 1024,
        grew / 1024
    );

    // The second wave leaves; what is left of the first is cut by the send
    // timeout, 15 s after it stalled, and counted.
    for v in wave {
        let _ = socket2::SockRef::from(&v).set_linger(Some(Duration::ZERO));
    }
    let cut = wait_for("the send timeout to cut the rest", 30 * SEC, || {
        metric(&s, "strom_http_errors_total{kind=\"send_timeout\"}").filter(|n| *n >= (VIEWERS / 2) as f64)
    });
    assert_eq!(
        cut,
        (VIEWERS / 2) as f64,
        "only the silent viewers of the first wave were cut"
    );
    let fds = wait_for("sockets back to the baseline", 10 * SEC, || {
        let n = sockets(&s);
        (n <= base_fds + 2).then_some(n)
    });
    assert!(fds + 2 >= base_fds, "{fds} sockets, baseline {base_fds}");
    wait_for("no viewer left", 10 * SEC, || metric(&s, clients).filter(|n| *n == 0.0));
    drop(viewers);
    // The shared batches are gone with the viewers. The heap does not go
    // back to the baseline (glibc keeps what was freed, see above) but
    // stays where the viewers took it, no higher.
    let shm = metric(&s, memfd).unwrap_or(0.0) - base_memfd;
    assert!(shm < (4 * MIB) as f64, "memfds still {shm} bytes over the baseline");
    let after = rss(&s);
    eprintln!("RSS after the viewers left: {} KiB", after / 1024);
    assert!(
        after <= peak.max(peak2) + 4 * MIB,
        "RSS {} KiB after the viewers left; baseline {} KiB, peak {} KiB",
        after / 1024,
        base_rss / 1024,
        peak / 1024
    );
    assert!(s.log().lines().all(|l| !l.contains("panicked")), "{}", s.log());
}

/// One request on `conn`; the response head (status line, header fields
/// with lowercase names) and the bytes that followed it within `wait`.
fn exchange(conn: &mut TcpStream, request: &str, wait: Duration) -> (String, BTreeMap<String, String>, Vec<u8>) {
    conn.write_all(request.as_bytes()).expect("request");
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    let deadline = Instant::now() + 10 * SEC;
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        assert!(Instant::now() < deadline && buf.len() < 64 << 10, "no response head");
        match conn.read(&mut chunk) {
            Ok(0) => panic!("closed before the head: {:?}", String::from_utf8_lossy(&buf)),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    };
    let rest_until = Instant::now() + wait;
    let mut rest = buf.split_off(end);
    while Instant::now() < rest_until {
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    }
    let head = String::from_utf8(buf).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default().to_string();
    let fields = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, fields, rest)
}

/// `HEAD /NAME/mpegts` describes the GET (RFC 9110 §9.3.2): the same status
/// and header fields, and no `Content-Length`, since the continuous body
/// has no length (it used to say `content-length: 0`). Its answer has no
/// body, so the connection goes on with the next request.
#[test]
fn head_of_mpegts_answers_what_get_would() {
    let s = Strom::start("ts-head", "stream demo { input builtin://demo; }");
    wait_playlist(&s, "demo", 1, 20 * SEC);
    let origin = "Origin: https://portal.example\r\n";
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    let (head_status, head, body) = exchange(
        &mut c,
        &format!("HEAD /demo/mpegts HTTP/1.1\r\nHost: x\r\n{origin}\r\n"),
        SEC / 2,
    );
    assert_eq!(head_status, "HTTP/1.1 200 OK");
    assert!(body.is_empty(), "HEAD answered {} body bytes", body.len());
    assert_eq!(head.get("content-length"), None, "{head:?}");
    // The same connection serves the next request: the HEAD answer ended
    // where its head did.
    let (next, _, _) = exchange(&mut c, "GET /demo/mono.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n", SEC / 2);
    assert_eq!(next, "HTTP/1.1 200 OK", "after the HEAD");

    let mut g = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    let (get_status, get, body) = exchange(
        &mut g,
        &format!("GET /demo/mpegts HTTP/1.1\r\nHost: x\r\n{origin}\r\n"),
        SEC,
    );
    assert_eq!(get_status, head_status);
    assert!(body.len() > 188, "the GET streams: {} bytes", body.len());
    assert_eq!(get.get("content-length"), None, "{get:?}");
    assert_eq!(get.get("content-type").map(String::as_str), Some("video/mp2t"));
    // Framing and the date aside, the same fields with the same values.
    let described = |h: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        h.iter()
            .filter(|(k, _)| !matches!(k.as_str(), "date" | "transfer-encoding" | "connection"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(described(&head), described(&get), "HEAD {head:?}\nGET {get:?}");
    assert!(head.contains_key("access-control-allow-origin"), "{head:?}");
}

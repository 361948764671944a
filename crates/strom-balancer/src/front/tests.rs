//! The front on a loopback socket, with a raw client: redirects, refusals,
//! the router's answers, pipelining, framing limits and deadlines.

use super::*;
use std::io::{Read, Write};
use std::net::TcpStream as StdStream;

const CONFIG: &str = "server s1 { url http://10.0.0.1:8080; public https://s1.example; max_clients 1000000; }\n\
                      trusted_proxies 127.0.0.1;\n";

/// A front with one server Up, and its address.
async fn front(limits: Limits) -> (SocketAddr, Arc<Shared>, CancellationToken) {
    let cfg = strom_config::parse_balancer("b.conf", CONFIG).expect("valid config");
    let shared = Shared::new(cfg).expect("shared");
    {
        let mut bal = shared.balancer.lock().unwrap_or_else(|e| e.into_inner());
        bal.observe_health(0, true);
        bal.observe_health(0, true);
        bal.observe_load(0, 0, Instant::now());
        bal.observe_streams(0, ["ch"]);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let router = service::router(shared.clone());
    tokio::spawn(serve(
        listener,
        shared.clone(),
        router,
        limits,
        Arc::new(Semaphore::new(4)),
        stop.clone(),
    ));
    (addr, shared, stop)
}

const LIMITS: Limits = Limits {
    header: Duration::from_secs(10),
    keepalive: Duration::from_secs(10),
    send: Duration::from_secs(10),
};

/// Sends `bytes`, then reads until the server closes or `wait` passes.
fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut c = StdStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(wait)).expect("timeout");
    // A refused connection may be reset before the request is out.
    let _ = c.write_all(bytes);
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Runs a blocking client off the runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("client thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_get_redirects_and_pipelined_requests_are_answered_in_order() {
    let (addr, shared, _stop) = front(LIMITS).await;
    let text = blocking(move || {
        exchange(
            addr,
            b"GET /ch/index.m3u8?token=a HTTP/1.1\r\nHost: b\r\n\r\n\
              HEAD /ch/index.m3u8 HTTP/1.1\r\nHost: b\r\n\r\n\
              GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n\
              GET /nope/index.m3u8 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
    })
    .await;
    let answers: Vec<&str> = text.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 4, "{text}");
    assert!(answers[0].starts_with("302 Found\r\n"), "{text}");
    assert!(
        answers[0].contains("location: https://s1.example/ch/index.m3u8?token=a&strom_hop=1\r\n"),
        "{text}"
    );
    assert!(
        answers[1].starts_with("302 Found\r\n") && answers[1].ends_with("\r\n\r\n"),
        "HEAD: {text}"
    );
    assert!(
        answers[2].starts_with("200 OK\r\n") && answers[2].ends_with("ok\n"),
        "router: {text}"
    );
    assert!(answers[3].starts_with("404 Not Found\r\n"), "{text}");
    assert!(answers[3].contains("connection: close\r\n") && answers[3].ends_with(r#"{"error":"nothing_to_play"}"#));
    let date = answers[0]
        .lines()
        .find_map(|l| l.strip_prefix("date: "))
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .expect("a Date field");
    let off = SystemTime::now().duration_since(date).unwrap_or_else(|e| e.duration());
    assert!(off < Duration::from_secs(3), "Date is {off:?} off");
    let sent = shared
        .balancer
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .status(Instant::now())[0]
        .sent_since;
    assert_eq!(sent, 1, "the HEAD repeats the GET's client and stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_clients_and_bad_names_are_judged_as_before() {
    let (addr, shared, _stop) = front(LIMITS).await;
    let text = blocking(move || {
        exchange(
            addr,
            b"GET /ch/index.m3u8 HTTP/1.1\r\nX-Forwarded-For: not-an-ip\r\n\r\n\
              GET /..%2f/index.m3u8 HTTP/1.1\r\n\r\n\
              GET /ch/index.m3u8 HTTP/1.0\r\nX-Forwarded-For: 10.9.9.9\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n",
            Duration::from_secs(5),
        )
    })
    .await;
    let answers: Vec<&str> = text.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 3, "{text}");
    assert!(
        answers[0].starts_with("400 ") && answers[0].contains("malformed X-Forwarded-For"),
        "{text}"
    );
    assert!(
        answers[1].starts_with("400 ") && answers[1].contains("bad stream name"),
        "{text}"
    );
    assert!(
        answers[2].starts_with("302 ") && answers[2].contains("connection: close"),
        "HTTP/1.0: {text}"
    );
    assert_eq!(shared.metrics.bad_requests.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_limits_close_the_connection_with_an_answer() {
    let (addr, _shared, _stop) = front(LIMITS).await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(http1::MAX_HEAD)).into_bytes(),
            "431 ",
        ),
        (
            b"POST /api/v1/servers HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            "501 ",
        ),
        (
            format!(
                "POST /api/v1/servers HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                http1::MAX_BODY + 1
            )
            .into_bytes(),
            "413 ",
        ),
        (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), "400 "),
    ];
    for (bytes, want) in cases {
        let text = blocking(move || exchange(addr, &bytes, Duration::from_secs(5))).await;
        assert!(text.starts_with(&format!("HTTP/1.1 {want}")), "{want}: {text}");
        assert!(text.contains("connection: close"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_reach_the_router_and_100_continue_is_answered() {
    let (addr, _shared, _stop) = front(LIMITS).await;
    let text = blocking(move || {
        let mut c = StdStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        c.write_all(b"PATCH /api/v1/servers/s1 HTTP/1.1\r\nContent-Length: 17\r\nExpect: 100-continue\r\n\r\n")
            .expect("head");
        let mut first = [0u8; 64];
        let n = c.read(&mut first).expect("100");
        let head = String::from_utf8_lossy(&first[..n]).into_owned();
        c.write_all(br#"{"draining":true}"#).expect("body");
        let mut rest = vec![0u8; 4096];
        let n = c.read(&mut rest).expect("answer");
        head + &String::from_utf8_lossy(&rest[..n])
    })
    .await;
    assert!(text.starts_with("HTTP/1.1 100 Continue\r\n\r\n"), "{text}");
    // No edit_auth in this config: changes are off, said by the admin API.
    assert!(
        text.contains("HTTP/1.1 403 Forbidden") && text.contains("admin_disabled"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_does_not_arrive_in_time_closes_the_connection() {
    let limits = Limits {
        header: Duration::from_secs(1),
        ..LIMITS
    };
    let (addr, shared, _stop) = front(limits).await;
    let started = Instant::now();
    let text = blocking(move || exchange(addr, b"GET /ch/index.m3u8 HTTP/1.1\r\nHost:", Duration::from_secs(10))).await;
    let took = started.elapsed();
    assert!(text.is_empty(), "{text}");
    assert_eq!(shared.metrics.http_errors.header_timeout.get(), 1, "counted");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_above_the_cap_are_reset_and_shutdown_closes_idle_ones() {
    let (addr, shared, stop) = front(LIMITS).await;
    let held: Vec<StdStream> = (0..4).map(|_| StdStream::connect(addr).expect("connect")).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fifth = blocking(move || exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n", Duration::from_secs(2))).await;
    assert!(fifth.is_empty(), "refused above the cap: {fifth}");
    assert_eq!(shared.metrics.http_errors.conn_limit.get(), 1, "the refusal is counted");
    stop.cancel();
    let closed = blocking(move || {
        held.into_iter().all(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
            matches!(c.read(&mut [0u8; 16]), Ok(0) | Err(_))
        })
    })
    .await;
    assert!(closed, "idle connections close on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_pipelined_backlog_is_answered_whole() {
    let (addr, _shared, _stop) = front(LIMITS).await;
    // More answers than fit before the first flush (OUT_HIGH).
    let n = 3000;
    let mut bytes = b"GET /ch/index.m3u8 HTTP/1.1\r\n\r\n".repeat(n - 1);
    bytes.extend_from_slice(b"GET /ch/index.m3u8 HTTP/1.1\r\nConnection: close\r\n\r\n");
    let text = blocking(move || exchange(addr, &bytes, Duration::from_secs(10))).await;
    assert_eq!(text.matches("HTTP/1.1 302 Found").count(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_sees_a_new_config_at_once() {
    let (addr, shared, _stop) = front(LIMITS).await;
    let text = blocking(move || {
        let mut c = StdStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let ask = |c: &mut StdStream| {
            c.write_all(b"GET /ch/index.m3u8 HTTP/1.1\r\n\r\n").expect("write");
            let mut got = vec![0u8; 4096];
            let n = c.read(&mut got).expect("read");
            String::from_utf8_lossy(&got[..n]).into_owned()
        };
        let before = ask(&mut c);
        let moved = CONFIG.replace("https://s1.example", "https://s1.elsewhere");
        let cfg = strom_config::parse_balancer("b.conf", &moved).expect("valid config");
        shared.reload(cfg).expect("reloaded");
        let after = ask(&mut c);
        (before, after)
    })
    .await;
    assert!(text.0.contains("location: https://s1.example/ch/"), "{}", text.0);
    assert!(text.1.contains("location: https://s1.elsewhere/ch/"), "{}", text.1);
}

/// The metric text the router serves.
async fn metrics_text(shared: &Arc<Shared>) -> String {
    let router = service::router(shared.clone());
    let req = axum::http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .expect("request");
    let answer = oneshot(router, req).await.unwrap_or_else(|never| match never {});
    let body = axum::body::to_bytes(answer.into_body(), MAX_ANSWER)
        .await
        .expect("body");
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_pipelining_a_burst_counts_once() {
    let (addr, shared, _stop) = front(LIMITS).await;
    let n = 2000;
    let mut bytes = b"GET /ch/x HTTP/1.1\r\n\r\n".repeat(n - 1);
    bytes.extend_from_slice(b"GET /ch/x HTTP/1.1\r\nConnection: close\r\n\r\n");
    let text = blocking(move || exchange(addr, &bytes, Duration::from_secs(10))).await;
    assert_eq!(text.matches("HTTP/1.1 302 Found").count(), n, "every request answered");
    let st = shared
        .balancer
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .status(Instant::now());
    assert_eq!(st[0].sent_since, 1, "one viewer");
    let m = metrics_text(&shared).await;
    assert!(m.contains("strom_balancer_repeat_requests_total 1999\n"), "{m}");
    assert!(m.contains("strom_balancer_repeat_overflow_total 0\n"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_get_and_head_of_a_playback_path_are_viewers() {
    let (addr, shared, _stop) = front(LIMITS).await;
    let text = blocking(move || {
        exchange(
            addr,
            b"POST /ch/index.m3u8 HTTP/1.1\r\nContent-Length: 0\r\n\r\n\
              DELETE /ch/index.m3u8 HTTP/1.1\r\n\r\n\
              FOO /ch/index.m3u8 HTTP/1.1\r\n\r\n\
              get /ch/index.m3u8 HTTP/1.1\r\n\r\n\
              OPTIONS * HTTP/1.1\r\n\r\n\
              GET * HTTP/1.1\r\n\r\n\
              GET ch/index.m3u8 HTTP/1.1\r\n\r\n\
              CONNECT example.com:443 HTTP/1.1\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
    })
    .await;
    let answers: Vec<&str> = text.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 8, "{text}");
    for (i, a) in answers.iter().enumerate() {
        let want = if i == 5 || i == 6 { "400 " } else { "405 " };
        assert!(a.starts_with(want), "answer {i}: {a}");
        if want == "405 " {
            assert!(a.contains("allow: GET, HEAD\r\n"), "answer {i}: {a}");
        }
        assert!(!a.contains("nothing_to_play"), "answer {i}: {a}");
    }
    let st = shared
        .balancer
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .status(Instant::now());
    assert_eq!(st[0].sent_since, 0, "nothing redirected, nothing counted");
    // The router's own playback fallback (an absolute-form target) too.
    let text = blocking(move || {
        exchange(
            addr,
            b"POST http://b/ch/index.m3u8 HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
    })
    .await;
    assert!(
        text.starts_with("HTTP/1.1 405 ") && text.contains("allow: GET, HEAD"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_is_dropped_from_the_redirect() {
    let (addr, _shared, _stop) = front(LIMITS).await;
    let text = blocking(move || {
        exchange(
            addr,
            b"GET /ch/index.m3u8?a=1#x HTTP/1.1\r\n\r\n\
              GET /ch/index.m3u8#y?b=2 HTTP/1.1\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
    })
    .await;
    assert!(
        text.contains("location: https://s1.example/ch/index.m3u8?a=1&strom_hop=1\r\n"),
        "{text}"
    );
    assert!(
        text.contains("location: https://s1.example/ch/index.m3u8?strom_hop=1\r\n"),
        "{text}"
    );
    assert!(!text.contains('#'), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_kept_alive_is_told_so_and_served_again() {
    let (addr, _shared, _stop) = front(LIMITS).await;
    let text = blocking(move || {
        exchange(
            addr,
            b"GET /ch/index.m3u8 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\
              GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\
              GET /ch/index.m3u8 HTTP/1.0\r\n\r\n",
            Duration::from_secs(5),
        )
    })
    .await;
    let answers: Vec<&str> = text.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 3, "{text}");
    assert!(
        answers[0].starts_with("302 ") && answers[0].contains("connection: keep-alive\r\n"),
        "{text}"
    );
    assert!(
        answers[1].starts_with("200 ") && answers[1].contains("connection: keep-alive\r\n"),
        "{text}"
    );
    assert!(
        answers[2].starts_with("302 ") && answers[2].contains("connection: close\r\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_closes_after_keepalive_and_is_counted() {
    let limits = Limits {
        keepalive: Duration::from_secs(1),
        ..LIMITS
    };
    let (addr, shared, _stop) = front(limits).await;
    let text = blocking(move || exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n", Duration::from_secs(6))).await;
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert_eq!(shared.metrics.http_errors.keepalive_timeout.get(), 1);
    assert_eq!(shared.metrics.http_errors.header_timeout.get(), 0);
    let m = metrics_text(&shared).await;
    for kind in [
        "conn_limit",
        "header_timeout",
        "keepalive_timeout",
        "send_timeout",
        "fd_limit",
    ] {
        assert!(
            m.contains(&format!("strom_balancer_http_errors_total{{kind=\"{kind}\"}}")),
            "{kind}: {m}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_carries_this_balancers_instance_id() {
    let (addr, shared, _stop) = front(LIMITS).await;
    let text = blocking(move || {
        exchange(
            addr,
            b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
    })
    .await;
    assert_eq!(shared.instance.len(), 32);
    assert!(
        text.contains(&format!("x-strom-balancer: {}\r\n", shared.instance)),
        "{text}"
    );
}

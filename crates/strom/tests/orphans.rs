//! Viewers that stop reading are cut without leaving their unsent data
//! pinned in the kernel: after the send timeout, strom resets them
//! (SO_LINGER 0) instead of leaving orphaned sockets that keep probing a
//! zero window for minutes. Reads `/proc/net/sockstat`, so it runs alone in
//! its own test binary.

mod common;

use common::*;
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

/// (orphaned TCP sockets, TCP memory in pages) from /proc/net/sockstat.
fn sockstat() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/net/sockstat").expect("/proc/net/sockstat");
    let line = text.lines().find(|l| l.starts_with("TCP:")).unwrap_or("");
    let field = |name: &str| {
        let mut it = line.split_whitespace();
        while let Some(w) = it.next() {
            if w == name {
                return it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            }
        }
        0
    };
    (field("orphan"), field("mem"))
}

#[test]
fn stalled_viewers_leave_no_orphaned_sockets() {
    let s = Strom::start("orphans", "stream demo { input builtin://demo; }");
    wait_playlist(&s, "demo", 1, 20 * SEC);
    let (orphans_before, _) = sockstat();
    let n = 200;
    let mut viewers = Vec::with_capacity(n);
    for _ in 0..n {
        viewers.push(stalled_viewer(s.port, "demo")); // never read
    }
    wait_for("every stalled viewer cut", 60 * SEC, || {
        metric(&s, "strom_http_errors_total{kind=\"send_timeout\"}").filter(|v| *v >= n as f64)
    });
    std::thread::sleep(SEC);
    let (orphans, mem) = sockstat();
    assert!(
        orphans <= orphans_before + 10,
        "{orphans} orphaned sockets after cutting {n} stalled viewers (before: {orphans_before}); TCP mem {mem} pages"
    );
    drop(viewers);
    assert!(s.log().contains("listening"));
}

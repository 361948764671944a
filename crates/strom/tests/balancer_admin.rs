//! The balancer's admin API against scripted streaming servers: add,
//! modify, drain and remove servers at run time with the counters kept,
//! the state file across restarts and reloads (its directory created, a
//! broken one kept, not overwritten), credentials, and the errors bad
//! requests get.

mod common;

use common::streamer::{raw_get, Balancer, Streamer};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);
/// admin:s3cret and viewer:pw.
const EDIT: &str = "Basic YWRtaW46czNjcmV0";
const VIEW: &str = "Basic dmlld2VyOnB3";

/// `method url` with optional credentials and JSON body: (status, JSON).
fn call(method: &str, url: &str, auth: Option<&str>, body: Option<&str>) -> (u16, Value) {
    let (method, url) = (
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        url.to_string(),
    );
    let (auth, body) = (auth.map(str::to_string), body.map(str::to_string));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async move {
            let mut req = reqwest::Client::new().request(method, &url);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            if let Some(b) = body {
                req = req.header("content-type", "application/json").body(b);
            }
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let bytes = r.bytes().await.expect("body");
            (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        })
}

fn servers(b: &Balancer) -> Value {
    let (code, v) = call("GET", &b.url("/api/v1/servers"), Some(VIEW), None);
    assert_eq!(code, 200, "{v}");
    v
}

fn server(b: &Balancer, name: &str) -> Value {
    servers(b)["servers"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

fn names(b: &Balancer) -> Vec<String> {
    servers(b)["servers"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["name"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn wait_up(b: &Balancer, want: &[&str]) {
    wait_for(&format!("{want:?} up"), 20 * SEC, || {
        want.iter().all(|n| server(b, n)["up"] == true).then_some(())
    });
}

fn metric(b: &Balancer, line_start: &str) -> Option<f64> {
    let text = get_text(&b.url("/metrics")).1;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Routes `n` viewers, each from its own address (10.200.x.y, given in
/// `X-Forwarded-For`, which the balancer trusts from 127.0.0.1): how many
/// went to each port. Distinct viewers, so that each one counts toward a
/// server's load whatever the balancer does with one client's repeats.
fn route(b: &Balancer, n: usize) -> std::collections::HashMap<u16, usize> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let mut hits = std::collections::HashMap::new();
    for _ in 0..n {
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ip = format!("10.200.{}.{}", (k >> 8) & 0xff, k & 0xff);
        if let Some(port) = view_from(b.port, &ip) {
            *hits.entry(port).or_default() += 1;
        }
    }
    hits
}

/// One viewer at `ip`: `GET /ch/index.m3u8` on the balancer, then the
/// redirect it gets. The port it was sent to, if it played.
fn view_from(balancer_port: u16, ip: &str) -> Option<u16> {
    let from = format!("X-Forwarded-For: {ip}\r\n");
    let (status, location) = raw_get(balancer_port, "/ch/index.m3u8", &from);
    if status != 302 {
        return None;
    }
    let rest = location.as_deref()?.strip_prefix("http://127.0.0.1:")?;
    let (port, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let port = port.parse::<u16>().ok()?;
    (raw_get(port, path, &from).0 == 200).then_some(port)
}

fn admin_config(dir: &std::path::Path, s: &[&Streamer]) -> String {
    let mut text = format!(
        "refresh 300ms;\ntrusted_proxies 127.0.0.1/32;\nview_auth viewer pw;\nedit_auth admin s3cret;\n\
         state_file {}/state.json;\n",
        dir.display()
    );
    for (i, srv) in s.iter().enumerate() {
        text.push_str(&format!(
            "server s{} {{ url {}; max_clients 1000; }}  # comment kept\n",
            i + 1,
            srv.base()
        ));
    }
    text
}

#[test]
fn add_modify_drain_and_remove_without_restart_keeping_counters_and_state() {
    let (a, b2, c) = (Streamer::start(None), Streamer::start(None), Streamer::start(None));
    let dir = scratch("admin");
    let config = admin_config(&dir, &[&a, &b2]);
    let mut b = Balancer::start_on(0, &config);
    wait_up(&b, &["s1", "s2"]);
    let spread = route(&b, 10);
    assert_eq!(
        (spread.get(&a.port), spread.get(&b2.port)),
        (Some(&5), Some(&5)),
        "{spread:?}"
    );
    let s1_decisions = "strom_balancer_decisions_total{server=\"s1\"}";
    assert_eq!(metric(&b, s1_decisions), Some(5.0));

    // Add s3.
    let body = json!({"name": "s3", "url": c.base(), "max_clients": 500, "networks": ["10.9.0.0/16"]}).to_string();
    let (code, v) = call("POST", &b.url("/api/v1/servers"), Some(EDIT), Some(&body));
    assert_eq!(code, 201, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["origin"].as_str()),
        (Some("s3"), Some("api")),
        "{v}"
    );
    assert_eq!(v["sources"]["max_clients"], "state");
    wait_up(&b, &["s3"]);
    let (code, v) = call("GET", &b.url("/api/v1/route?stream=ch&ip=10.9.1.1"), None, None);
    assert_eq!((code, v["server"].as_str()), (200, Some("s3")), "{v}");

    // Modify s1: max_clients 5 (it has 5 viewers: full), monitoring on.
    a.set_clients(5);
    let (code, v) = call(
        "PATCH",
        &b.url("/api/v1/servers/s1"),
        Some(EDIT),
        Some(r#"{"max_clients": 5, "monitoring": true, "countries": [], "networks": ["10.8.0.0/16"]}"#),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["max_clients"].as_u64(), v["monitoring"].as_bool()),
        (Some(5), Some(true))
    );
    // The zone in force is shown, not only where it came from.
    assert_eq!(
        (&v["networks"], &v["countries"], &v["public"]),
        (&json!(["10.8.0.0/16"]), &json!([]), &Value::Null),
        "{v}"
    );
    assert_eq!(server(&b, "s1")["networks"], json!(["10.8.0.0/16"]));
    let (code, v) = call(
        "PATCH",
        &b.url("/api/v1/servers/s1"),
        Some(EDIT),
        Some(r#"{"networks": null, "countries": null}"#),
    );
    assert_eq!((code, &v["networks"]), (200, &json!([])), "{v}");
    assert_eq!(v["sources"]["max_clients"], "state");
    assert_eq!(v["sources"]["url"], "config");
    wait_for("s1 measured full", 10 * SEC, || {
        (server(&b, "s1")["measured"] == 5).then_some(())
    });
    let spread = route(&b, 6);
    assert_eq!(spread.get(&b2.port), Some(&6), "s1 is full: {spread:?}");

    // Drain s2: no new viewers, its viewers stay; shown as draining.
    let (code, v) = call("POST", &b.url("/api/v1/servers/s2/drain"), Some(EDIT), None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["draining"].as_bool(), v["drained"].as_bool()),
        (Some(true), Some(false)),
        "{v}"
    );
    a.set_clients(0);
    wait_for("s1 measured empty", 10 * SEC, || {
        (server(&b, "s1")["measured"] == 0).then_some(())
    });
    let spread = route(&b, 4);
    assert_eq!(spread.get(&a.port), Some(&4), "only s1 takes viewers: {spread:?}");
    assert!(b2.clients() >= 11, "s2's viewers stay");
    b2.set_clients(0);
    wait_for("s2 drained", 10 * SEC, || {
        (server(&b, "s2")["drained"] == true).then_some(())
    });

    // Remove s3: gone, no restart; the other servers' counters are kept.
    let (code, v) = call("DELETE", &b.url("/api/v1/servers/s3"), Some(EDIT), None);
    assert_eq!((code, v["removed"].as_str()), (200, Some("s3")), "{v}");
    assert_eq!(names(&b), ["s1", "s2"]);
    assert_eq!(
        metric(&b, s1_decisions),
        Some(9.0),
        "5 + 4 decisions, kept through every change"
    );
    let pid = b.child.id();

    // The state file holds the changes; the config file is untouched.
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).expect("state")).expect("JSON");
    assert_eq!(
        state,
        json!({"version": 1, "servers": [
            {"name": "s1", "max_clients": 5, "monitoring": true},
            {"name": "s2", "draining": true}
        ]})
    );
    let written = std::fs::read_to_string(&b.config).expect("config");
    assert!(written.ends_with(&config) && written.contains("# comment kept"));

    // After a restart the same servers are in force, from the state file.
    b.restart();
    assert_ne!(b.child.id(), pid);
    wait_up(&b, &["s1", "s2"]);
    let s1 = server(&b, "s1");
    assert_eq!(
        (s1["max_clients"].as_u64(), s1["sources"]["max_clients"].as_str()),
        (Some(5), Some("state"))
    );
    assert_eq!(server(&b, "s2")["draining"], true);
    assert_eq!(names(&b), ["s1", "s2"]);

    // `null` gives a setting back to the config file.
    let (code, v) = call(
        "PATCH",
        &b.url("/api/v1/servers/s2"),
        Some(EDIT),
        Some(r#"{"draining": null}"#),
    );
    assert_eq!((code, v["draining"].as_bool()), (200, Some(false)), "{v}");
    let _ = (a, b2, c);
}

#[test]
fn credentials_are_needed_and_refusals_are_counted() {
    let s1 = Streamer::start(None);
    let dir = scratch("admin-auth");
    let b = Balancer::start_on(0, &admin_config(&dir, &[&s1]));
    let list = b.url("/api/v1/servers");
    assert_eq!(call("GET", &list, None, None).0, 401);
    assert_eq!(call("GET", &list, Some("Basic dmlld2VyOm5v"), None).0, 401, "viewer:no");
    assert_eq!(call("GET", &list, Some(VIEW), None).0, 200);
    assert_eq!(call("GET", &list, Some(EDIT), None).0, 200, "edit rights include view");
    assert_eq!(call("GET", &list, Some("Bearer pw"), None).0, 200);
    let drain = b.url("/api/v1/servers/s1/drain");
    assert_eq!(call("POST", &drain, None, None).0, 401);
    // Valid view credentials: known, but they may only read.
    let (code, v) = call("POST", &drain, Some(VIEW), None);
    assert_eq!(
        (code, v),
        (
            403,
            json!({"error": "forbidden", "message": "these credentials may read, not change"})
        ),
        "view credentials cannot change"
    );
    assert_eq!(
        call("DELETE", &b.url("/api/v1/servers/s1"), Some("Bearer pw"), None).0,
        403
    );
    assert_eq!(call("POST", &drain, Some("Bearer s3cret"), None).0, 200);
    assert_eq!(metric(&b, "strom_balancer_api_unauthorized_total"), Some(5.0));
    assert_eq!(
        metric(&b, "strom_balancer_admin_changes_total{action=\"modify\"}"),
        Some(1.0)
    );
    // Health, metrics and routing stay open.
    for open in ["/healthz", "/metrics", "/api/v1/route?stream=ch"] {
        assert_ne!(get(&b.url(open)).0, 401, "{open}");
    }

    // Without `edit_auth` (or without `state_file`) changes are off.
    let plain = Balancer::start_on(0, &format!("server s1 {{ url {}; max_clients 10; }}\n", s1.base()));
    assert_eq!(
        call("GET", &plain.url("/api/v1/servers"), None, None).0,
        200,
        "open, as before"
    );
    let (code, v) = call("POST", &plain.url("/api/v1/servers/s1/drain"), None, None);
    assert_eq!((code, v["error"].as_str()), (403, Some("admin_disabled")), "{v}");
    let no_state = Balancer::start_on(
        0,
        &format!(
            "edit_auth admin s3cret;\nserver s1 {{ url {}; max_clients 10; }}\n",
            s1.base()
        ),
    );
    let (code, v) = call("POST", &no_state.url("/api/v1/servers/s1/drain"), Some(EDIT), None);
    assert_eq!((code, v["error"].as_str()), (403, Some("admin_disabled")), "{v}");
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let (s1, s2) = (Streamer::start(None), Streamer::start(None));
    let dir = scratch("admin-bad");
    let b = Balancer::start_on(
        0,
        &format!("{}channel news {{ servers s1; }}\n", admin_config(&dir, &[&s1, &s2])),
    );
    let list = b.url("/api/v1/servers");
    let post = |body: &str| call("POST", &list, Some(EDIT), Some(body));
    // Values are judged by `strom check`, with its messages.
    let (code, v) = post(r#"{"name": "s9", "url": "ftp://x", "max_clients": 5}"#);
    assert_eq!((code, v["error"].as_str()), (400, Some("invalid")), "{v}");
    assert_eq!(v["problems"][0], "bad URL `ftp://x`: expected http:// or https://");
    let (code, v) = post(r#"{"name": "a/b", "url": "http://x", "max_clients": 5}"#);
    assert_eq!(code, 400, "{v}");
    assert!(v["problems"][0].as_str().is_some_and(|p| p.contains("a/b")), "{v}");
    let (code, v) = call(
        "PATCH",
        &b.url("/api/v1/servers/s1"),
        Some(EDIT),
        Some(r#"{"max_clients": 0, "networks": ["10.0.0.0/33"]}"#),
    );
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["problems"][0],
        "bad network `10.0.0.0/33`: prefix length must be 0 to 32"
    );
    let (code, v) = call(
        "PATCH",
        &b.url("/api/v1/servers/s1"),
        Some(EDIT),
        Some(r#"{"max_clients": 0}"#),
    );
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["problems"][0], "`max_clients` must be between 1 and 100000000, got 0");
    // Shapes: not JSON, wrong types, unknown fields, too large, empty.
    let (code, v) = post("{not json");
    assert_eq!((code, v["error"].as_str()), (400, Some("bad_json")), "{v}");
    let (code, v) = post(r#"{"name": "s9", "url": "http://x", "max_clients": -1}"#);
    assert_eq!((code, v["error"].as_str()), (400, Some("bad_json")), "{v}");
    let (code, v) = post(r#"{"name": "s9", "url": "http://x", "max_clients": 5, "maxclients": 6}"#);
    assert_eq!((code, v["error"].as_str()), (400, Some("bad_json")), "{v}");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("maxclients")), "{v}");
    let huge = format!(
        r#"{{"name": "s9", "url": "http://x", "max_clients": 5, "countries": ["{}"]}}"#,
        "A".repeat(100_000)
    );
    let (code, v) = post(&huge);
    assert_eq!((code, v["error"].as_str()), (413, Some("too_large")), "{v}");
    let (code, v) = call("PATCH", &b.url("/api/v1/servers/s1"), Some(EDIT), Some("{}"));
    assert_eq!(
        (code, v["problems"][0].as_str()),
        (400, Some("nothing to change")),
        "{v}"
    );
    // Names: unknown, taken, still needed by a channel.
    let (code, v) = call(
        "PATCH",
        &b.url("/api/v1/servers/nope"),
        Some(EDIT),
        Some(r#"{"enabled": false}"#),
    );
    assert_eq!((code, v["error"].as_str()), (404, Some("not_found")), "{v}");
    let (code, v) = post(&format!(
        r#"{{"name": "s1", "url": "{}", "max_clients": 5}}"#,
        s1.base()
    ));
    assert_eq!((code, v["error"].as_str()), (409, Some("exists")), "{v}");
    let (code, v) = call("DELETE", &b.url("/api/v1/servers/s1"), Some(EDIT), None);
    assert_eq!((code, v["error"].as_str()), (409, Some("conflict")), "{v}");
    assert_eq!(
        v["problems"],
        json!(["server `s1` is named by channel `news`; remove it from the channel block first"]),
        "{v}"
    );
    // Nothing changed, nothing was written.
    assert_eq!(names(&b), ["s1", "s2"]);
    assert_eq!(server(&b, "s1")["max_clients"], 1000);
    assert!(!dir.join("state.json").exists());
    assert!(metric(&b, "strom_balancer_admin_refused_total{action=\"modify\"}").is_some_and(|n| n >= 3.0));
}

#[test]
fn sighup_reads_the_config_and_the_state_file_again() {
    let (s1, s2) = (Streamer::start(None), Streamer::start(None));
    let dir = scratch("admin-hup");
    let b = Balancer::start_on(0, &admin_config(&dir, &[&s1]));
    wait_up(&b, &["s1"]);
    // Another tool (or an operator) edits both files, then reloads.
    std::fs::write(
        dir.join("state.json"),
        format!(
            r#"{{"version": 1, "servers": [{{"name": "s1", "enabled": false}}, {{"name": "x", "url": "{}", "max_clients": 3}}]}}"#,
            s2.base()
        ),
    )
    .expect("state");
    b.hup();
    wait_for("state applied", 10 * SEC, || (names(&b) == ["s1", "x"]).then_some(()));
    let s1v = server(&b, "s1");
    let flags = (
        s1v["enabled"].as_bool(),
        s1v["draining"].as_bool(),
        s1v["closed"].as_bool(),
    );
    assert_eq!(flags, (Some(false), Some(false), Some(true)), "{s1v}");
    wait_up(&b, &["x"]);
    assert_eq!(route(&b, 3).get(&s2.port), Some(&3), "the disabled s1 takes none");
    // An entry that no longer fits is skipped, reported, and the rest applies.
    std::fs::write(
        dir.join("state.json"),
        r#"{"version": 1, "servers": [{"name": "s1", "max_clients": 7}, {"name": "ghost", "draining": true}]}"#,
    )
    .expect("state");
    b.hup();
    wait_for("partial state applied", 10 * SEC, || {
        (server(&b, "s1")["max_clients"] == 7).then_some(())
    });
    let v = servers(&b);
    assert_eq!(v["state"]["skipped"][0]["server"], "ghost", "{v}");
    // A state file that is not one is refused; the old state stays.
    std::fs::write(dir.join("state.json"), "garbage").expect("state");
    b.hup();
    wait_for("refusal logged", 10 * SEC, || {
        b.log().contains("new config refused").then_some(())
    });
    assert!(b.log().contains("fix the file, or remove it"), "{}", b.log());
    assert_eq!(server(&b, "s1")["max_clients"], 7);
    // The next change writes the state in force, keeping the broken file.
    let (code, v) = call(
        "PATCH",
        &b.url("/api/v1/servers/s1"),
        Some(EDIT),
        Some(r#"{"max_clients": 8}"#),
    );
    assert_eq!(code, 200, "{v}");
    let kept: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("state.json.broken-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read_to_string(&kept[0]).ok().as_deref(), Some("garbage"));
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).expect("state")).expect("JSON");
    assert_eq!(
        state,
        json!({"version": 1, "servers": [{"name": "s1", "max_clients": 8}]}),
        "the state in force (the skipped entry dropped), and the change"
    );
    assert!(b.log().contains("kept it before writing"), "{}", b.log());
}

#[test]
fn the_state_files_directory_is_created() {
    let s1 = Streamer::start(None);
    let dir = scratch("admin-mkdir");
    let state = dir.join("var/lib/strom/balancer.json");
    let b = Balancer::start_on(
        0,
        &format!(
            "edit_auth admin s3cret;\nstate_file {};\nserver s1 {{ url {}; max_clients 10; }}\n",
            state.display(),
            s1.base()
        ),
    );
    assert!(state.parent().is_some_and(|d| d.is_dir()), "created at start");
    std::fs::remove_dir_all(dir.join("var")).expect("rm");
    let (code, v) = call("POST", &b.url("/api/v1/servers/s1/drain"), Some(EDIT), None);
    assert_eq!(code, 200, "created again before writing: {v}");
    assert!(std::fs::read_to_string(&state).is_ok_and(|t| t.contains("\"draining\": true")));

    // A directory that cannot be made: a warning at start naming the path,
    // and changes fail with 500 naming it.
    let blocked = dir.join("file");
    std::fs::write(&blocked, "in the way").expect("write");
    let state = blocked.join("balancer.json");
    let b = Balancer::start_on(
        0,
        &format!(
            "edit_auth admin s3cret;\nstate_file {};\nserver s1 {{ url {}; max_clients 10; }}\n",
            state.display(),
            s1.base()
        ),
    );
    wait_for("start warning", 10 * SEC, || {
        b.log()
            .contains("cannot create the state file's directory")
            .then_some(())
    });
    assert!(b.log().contains(&state.display().to_string()), "{}", b.log());
    let (code, v) = call("POST", &b.url("/api/v1/servers/s1/drain"), Some(EDIT), None);
    assert_eq!((code, v["error"].as_str()), (500, Some("state_file")), "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&state.display().to_string())),
        "{v}"
    );
    let (code, v) = call("GET", &b.url("/api/v1/servers/s1"), Some(EDIT), None);
    assert_eq!((code, &v["closed"]), (200, &json!(false)), "nothing changed: {v}");
}

#[test]
fn a_broken_state_file_stops_the_start_and_says_what_to_do() {
    let s1 = Streamer::start(None);
    let dir = scratch("admin-broken");
    let state = dir.join("state.json");
    let config = dir.join("balancer.conf");
    std::fs::write(
        &config,
        format!(
            "http 127.0.0.1:{};\nedit_auth admin s3cret;\nstate_file {};\nserver s1 {{ url {}; max_clients 10; }}\n",
            free_tcp_port(),
            state.display(),
            s1.base()
        ),
    )
    .expect("config");
    for broken in ["{\"version\": 1, \"servers\": [", "{\"version\": 9, \"servers\": []}"] {
        std::fs::write(&state, broken).expect("state");
        let out = run_bounded(
            std::process::Command::new(env!("CARGO_BIN_EXE_strom"))
                .args(["balancer", "-c"])
                .arg(&config),
            20 * SEC,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("state file {}", state.display())), "{err}");
        assert!(
            err.contains("fix the file, or remove it to start from the config file alone"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(&state).ok().as_deref(),
            Some(broken),
            "left as it was"
        );
    }
}

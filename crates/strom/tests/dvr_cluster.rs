//! DVR through the cluster, with real strom processes on 127.0.0.1:
//! - an edge without a `dvr` of its own serves its origin's archive: the
//!   same ranges (kept current), the same archive playlists, and every
//!   archived `SEQ.ts` and `archive-FROM-DURATION.ts` byte for byte equal
//!   to the origin's; it records nothing itself;
//! - an edge with its own `dvr` that was down for longer than the origin's
//!   live window fills the hole in its archive from the origin's
//!   (replication): one range over its downtime, the origin's bytes, and
//!   `strom_dvr_replicated_segments_total` counts it.
//!
//! Every wait is bounded.

mod common;

use common::*;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);

/// The recorded ranges of `stream` on `s` as (from, duration) in Unix
/// seconds; None unless the API answers 200.
fn ranges(s: &Strom, stream: &str) -> Option<Vec<(i64, i64)>> {
    let (code, body) = get(&s.url(&format!("/api/v1/streams/{stream}/dvr/ranges")));
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    v["ranges"]
        .as_array()?
        .iter()
        .map(|r| Some((r["from"].as_i64()?, r["duration"].as_i64()?)))
        .collect()
}

/// Seconds recorded in all ranges.
fn recorded(r: &[(i64, i64)]) -> i64 {
    r.iter().map(|x| x.1).sum()
}

fn origin(tag: &str, archive: &std::path::Path) -> Strom {
    Strom::start(
        tag,
        &format!(
            "cluster_key abcd;\nstream demo {{ input builtin://demo; dvr {} 1h; }}",
            archive.display()
        ),
    )
}

/// The segment numbers of an archive playlist.
fn seqs(playlist: &str) -> Vec<u64> {
    parse_playlist(playlist).segments.iter().map(|s| s.0).collect()
}

#[test]
fn an_edge_without_dvr_serves_the_origins_archive_bytes() {
    let started = Instant::now();
    let archive = scratch("dvrc-origin-archive");
    let o = origin("dvrc-origin", &archive);
    let e = Strom::start(
        "dvrc-edge",
        &format!("cluster_key abcd;\nsource 127.0.0.1:{} {{ }}", o.port),
    );
    // 45 s of archive, so its oldest part has left every live window.
    let first = wait_for("45 s recorded on the origin", 90 * SEC, || {
        ranges(&o, "demo").filter(|r| recorded(r) >= 45).map(|r| r[0])
    });
    // The edge shows the origin's ranges (both grow: equal at one moment).
    let r = wait_for("the same ranges on the edge", 20 * SEC, || {
        let a = ranges(&o, "demo")?;
        let b = ranges(&e, "demo")?;
        (a == b).then_some(b)
    });
    assert_eq!(r[0], first);
    let info = api(&e, "demo");
    assert_eq!(info["dvr"]["path"], format!("cluster://127.0.0.1:{}", o.port));
    // ... and keeps them current.
    let end = |r: &[(i64, i64)]| r.last().map_or(0, |x| x.0 + x.1);
    let before = end(&r);
    wait_for("the edge's ranges growing", 20 * SEC, || {
        ranges(&e, "demo").filter(|r| end(r) >= before + 4)
    });

    // An archive playlist of 10 s, 2 s after the start: the same segments.
    let path = format!("/demo/archive-{}-10.m3u8", first.0 + 2);
    let (co, po) = get_text(&o.url(&path));
    let (ce, pe) = get_text(&e.url(&path));
    assert_eq!((co, ce), (200, 200), "{po}\n{pe}");
    assert!(po.contains("#EXT-X-ENDLIST"), "{po}");
    let list = seqs(&po);
    assert!(list.len() >= 3, "{po}");
    assert_eq!(seqs(&pe), list);
    assert_eq!(pe, po, "identical playlists");
    // The live window is far past these: the edge reads them from the origin's archive.
    let live = media_playlist(&e, "demo").expect("edge live playlist");
    assert!(
        list.iter().all(|s| *s < live.media_sequence),
        "archived segments {list:?} still live: {live:?}"
    );
    for seq in &list {
        let (a, b) = (
            get(&o.url(&format!("/demo/{seq}.ts"))),
            get(&e.url(&format!("/demo/{seq}.ts"))),
        );
        assert_eq!((a.0, b.0), (200, 200), "segment {seq}");
        assert!(
            a.1.len() > 1000 && a.1 == b.1,
            "segment {seq} differs ({} vs {} bytes)",
            a.1.len(),
            b.1.len()
        );
    }
    // A download of the same span, byte for byte.
    let ts = format!("/demo/archive-{}-10.ts", first.0 + 2);
    let (a, b) = (get(&o.url(&ts)), get(&e.url(&ts)));
    assert_eq!((a.0, b.0), (200, 200));
    assert!(
        a.1.len() > 10_000 && a.1 == b.1,
        "downloads differ ({} vs {} bytes)",
        a.1.len(),
        b.1.len()
    );
    // A segment the origin never had is a 404 on the edge too.
    assert_eq!(get(&e.url("/demo/7.ts")).0, 404);

    // The edge records nothing itself and meets no archive error.
    let info = api(&e, "demo");
    assert!(info["dvr"]["last_error"].is_null(), "{info}");
    let written = metric(&e, "strom_dvr_segments_written_total{stream=\"demo\"}").unwrap_or(0.0);
    assert_eq!(written, 0.0, "the edge wrote segments");
    assert_eq!(
        metric(&e, "strom_dvr_write_errors_total{stream=\"demo\"}").unwrap_or(0.0),
        0.0
    );
    eprintln!("edge without dvr: {:?}", started.elapsed());
}

#[test]
fn an_edge_with_dvr_fills_its_downtime_from_the_origin() {
    let started = Instant::now();
    let o_archive = scratch("dvrc-origin2-archive");
    let e_archive = scratch("dvrc-edge2-archive");
    let o = origin("dvrc-origin2", &o_archive);
    let body = format!(
        "cluster_key abcd;\nsource 127.0.0.1:{} {{ dvr {} 1h; }}",
        o.port,
        e_archive.display()
    );
    let mut e = Strom::start("dvrc-edge2", &body);
    wait_for("10 s recorded on the edge", 60 * SEC, || {
        ranges(&e, "demo").filter(|r| recorded(r) >= 10)
    });
    let (dir, port) = (e.dir.clone(), e.port);
    let down_at = unix_now();
    e.stop();
    // Down for longer than the origin's live window (10 segments of about
    // 2 s), so the feed alone cannot close the hole.
    std::thread::sleep(30 * SEC);
    let up_at = unix_now();
    let e = Strom::start_in(dir, port, &body);
    let r = wait_for("one range over the downtime", 60 * SEC, || {
        ranges(&e, "demo").filter(|r| r.len() == 1 && r[0].0 < down_at - 5 && r[0].0 + r[0].1 > up_at + 5)
    });
    eprintln!("edge ranges after the fill: {r:?}");
    let copied = metric(&e, "strom_dvr_replicated_segments_total{stream=\"demo\"}").unwrap_or(0.0);
    assert!(copied >= 5.0, "replicated {copied} segments");
    // The hole's segments are the origin's bytes, read from the edge's own files.
    let path = format!("/demo/archive-{}-10.m3u8", down_at + 8);
    let (co, po) = get_text(&o.url(&path));
    let (ce, pe) = get_text(&e.url(&path));
    assert_eq!((co, ce), (200, 200), "{po}\n{pe}");
    let list = seqs(&po);
    assert!(list.len() >= 3, "{po}");
    assert_eq!(seqs(&pe), list);
    for seq in &list {
        let (a, b) = (
            get(&o.url(&format!("/demo/{seq}.ts"))),
            get(&e.url(&format!("/demo/{seq}.ts"))),
        );
        assert_eq!((a.0, b.0), (200, 200), "segment {seq}");
        assert!(
            a.1 == b.1,
            "segment {seq} differs ({} vs {} bytes)",
            a.1.len(),
            b.1.len()
        );
    }
    let files = std::fs::read_dir(e_archive.join("demo"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|day| std::fs::read_dir(day.path()).into_iter().flatten().flatten())
        .filter(|f| f.path().extension().is_some_and(|x| x == "wire"))
        .count();
    assert!(files >= 3, "before, the filled hole and after: {files} data files");
    eprintln!("edge with dvr: {:?}", started.elapsed());
}

/// UTC Unix time now, whole seconds.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

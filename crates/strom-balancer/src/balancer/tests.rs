//! Balancer behaviour on a virtual clock: ordering, round robin, burst
//! accounting, capacity, zones, candidates, health and reloads, plus a
//! property test against a straightforward reference model.

use super::*;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

fn at(t0: Instant, secs: u64) -> Instant {
    t0 + Duration::from_secs(secs)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// A new client address at every call (fd5e:7a1c::/32, in no test's
/// zone): each is a new viewer, never a repeat.
fn client() -> IpAddr {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    IpAddr::V6(std::net::Ipv6Addr::from(
        0xfd5e_7a1c_0000_0000_0000_0000_0000_0000u128 | u128::from(n),
    ))
}

/// The same client address every time (a repeat after the first).
fn one_client() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
}

fn plain(name: &str, max: u64) -> ServerSpec {
    ServerSpec::new(name, max)
}

/// Balancer whose servers all carry channel "ch" in configured order.
fn with_channel(servers: Vec<ServerSpec>) -> Balancer {
    let names = servers.iter().map(|s| s.name.clone()).collect();
    Balancer::new(servers, vec![("ch".into(), names)], Tuning::default()).expect("valid config")
}

fn bring_up(b: &mut Balancer, server: usize, clients: u64, now: Instant) {
    b.observe_health(server, true);
    b.observe_health(server, true);
    b.observe_load(server, clients, now);
}

fn bring_all_up(b: &mut Balancer, clients: &[u64], now: Instant) {
    for (i, &c) in clients.iter().enumerate() {
        bring_up(b, i, c, now);
    }
}

fn route_n(b: &mut Balancer, stream: &str, n: usize, now: Instant) -> Vec<usize> {
    let mut hits = vec![0; b.len()];
    for _ in 0..n {
        let s = b.route(stream, client(), None, now).expect("routable");
        hits[s] += 1;
    }
    hits
}

#[test]
fn monitored_servers_come_first_even_when_busier() {
    let t0 = Instant::now();
    let mut idle = plain("idle", 100);
    idle.monitoring = false;
    let mut b = with_channel(vec![idle, plain("busy", 100)]);
    bring_all_up(&mut b, &[0, 80], t0);
    assert_eq!(b.route("ch", client(), None, t0), Ok(1));
}

#[test]
fn unmonitored_servers_serve_when_monitored_are_full() {
    let t0 = Instant::now();
    let mut spare = plain("spare", 100);
    spare.monitoring = false;
    let mut b = with_channel(vec![spare, plain("main", 10)]);
    bring_all_up(&mut b, &[50, 10], t0);
    assert_eq!(b.route("ch", client(), None, t0), Ok(0));
}

#[test]
fn lowest_ratio_wins_not_lowest_count() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 100), plain("b", 1000), plain("c", 100)]);
    // ratios 0.50, 0.30, 0.40
    bring_all_up(&mut b, &[50, 300, 40], t0);
    assert_eq!(b.route("ch", client(), None, t0), Ok(1));
}

#[test]
fn equal_ratios_start_in_configured_order() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 100), plain("b", 200), plain("c", 300)]);
    bring_all_up(&mut b, &[10, 20, 30], t0);
    let picks: Vec<_> = (0..4)
        .map(|_| {
            bring_all_up(&mut b, &[10, 20, 30], t0);
            b.route("ch", client(), None, t0)
        })
        .collect();
    assert_eq!(picks, vec![Ok(0), Ok(1), Ok(2), Ok(0)]);
}

#[test]
fn channel_order_is_the_round_robin_order() {
    let t0 = Instant::now();
    let mut b = Balancer::new(
        vec![plain("a", 100), plain("b", 100)],
        vec![("ch".into(), vec!["b".into(), "a".into()])],
        Tuning::default(),
    )
    .expect("valid config");
    bring_all_up(&mut b, &[0, 0], t0);
    assert_eq!(b.route("ch", client(), None, t0), Ok(1));
    assert_eq!(b.route("ch", client(), None, t0), Ok(0));
}

#[test]
fn round_robin_with_equal_remeasured_load_splits_evenly() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 1000), plain("b", 1000), plain("c", 1000)]);
    let mut picks = Vec::new();
    for i in 0..30 {
        bring_all_up(&mut b, &[5, 5, 5], at(t0, i));
        picks.push(b.route("ch", client(), None, at(t0, i)).expect("routable"));
    }
    assert_eq!(&picks[..6], &[0, 1, 2, 0, 1, 2]);
    let hits = (0..3).map(|s| picks.iter().filter(|&&p| p == s).count());
    assert_eq!(hits.collect::<Vec<_>>(), vec![10, 10, 10]);
}

#[test]
fn round_robin_with_burst_accounting_splits_evenly() {
    // 1/1000 per viewer stays inside the 0.01 band, so burst accounting does
    // not break the turns.
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 1000), plain("b", 1000), plain("c", 1000)]);
    bring_all_up(&mut b, &[0, 0, 0], t0);
    assert_eq!(route_n(&mut b, "ch", 30, t0), vec![10, 10, 10]);
    let sent: Vec<_> = b.status(t0).iter().map(|s| s.sent_since).collect();
    assert_eq!(sent, vec![10, 10, 10]);
}

#[test]
fn small_servers_alternate_on_exact_counts() {
    // With max 50 one viewer is 2 percentage points, wider than the band:
    // the least loaded always wins and ties alternate.
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 50), plain("b", 50)]);
    bring_all_up(&mut b, &[0, 0], t0);
    assert_eq!(route_n(&mut b, "ch", 40, t0), vec![20, 20]);
}

#[test]
fn burst_fills_the_idle_server_then_shares() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 1000), plain("b", 1000)]);
    bring_all_up(&mut b, &[0, 50], t0);
    let hits = route_n(&mut b, "ch", 100, t0);
    assert!(hits[1] > 0, "the burst must not all go to one server: {hits:?}");
    assert!(hits[0] > hits[1], "the idle server takes more: {hits:?}");
    let st = b.status(t0);
    let (a, bb) = (st[0].current as i64, st[1].current as i64);
    assert!((a - bb).abs() <= 11, "loads end within the band: {a} vs {bb}");

    // A measurement replaces the estimate.
    b.observe_load(0, 3, at(t0, 1));
    let st = b.status(at(t0, 1));
    assert_eq!((st[0].measured, st[0].sent_since, st[0].current), (3, 0, 3));
    assert_eq!(b.route("ch", client(), None, at(t0, 1)), Ok(0));
}

#[test]
fn full_servers_are_skipped_and_all_full_is_limit() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 10), plain("b", 3)]);
    bring_all_up(&mut b, &[10, 1], t0);
    assert_eq!(b.route("ch", client(), None, t0), Ok(1));
    assert_eq!(b.route("ch", client(), None, t0), Ok(1));
    // b is now 1 measured + 2 sent = 3 = max.
    assert_eq!(b.route("ch", client(), None, t0), Err(Refusal::Limit));
    b.observe_load(1, 0, at(t0, 1));
    assert_eq!(b.route("ch", client(), None, at(t0, 1)), Ok(1));
}

#[test]
fn zero_capacity_is_always_full() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 0)]);
    bring_all_up(&mut b, &[0], t0);
    assert_eq!(b.route("ch", client(), None, t0), Err(Refusal::Limit));
    assert_eq!(b.status(t0)[0].ratio, 1.0);
}

fn zoned() -> Balancer {
    let mut net = plain("net", 100);
    net.networks = vec!["10.0.0.0/8".parse().expect("net")];
    let mut de = plain("de", 100);
    de.countries = vec!["DE".into()];
    let mut b = with_channel(vec![net, plain("any", 100), de]);
    bring_all_up(&mut b, &[0, 0, 0], Instant::now());
    b
}

#[test]
fn network_and_country_filters_pick_zone_servers() {
    let t0 = Instant::now();
    let mut b = zoned();
    assert_eq!(b.route("ch", ip("10.1.2.3"), None, t0), Ok(0));
    assert_eq!(b.route("ch", ip("10.1.2.3"), Some("FR"), t0), Ok(0));
    assert_eq!(b.route("ch", ip("::ffff:10.1.2.3"), None, t0), Ok(0));
    assert_eq!(b.route("ch", ip("192.0.2.7"), Some("de"), t0), Ok(2));
    // Matching both filters: both zone servers take turns.
    let both: Vec<_> = (0..4)
        .map(|i| b.route("ch", ip(&format!("10.9.9.{i}")), Some("DE"), t0))
        .collect();
    assert!(both.contains(&Ok(0)) && both.contains(&Ok(2)), "{both:?}");
}

#[test]
fn unmatched_clients_fall_back_to_unfiltered_servers() {
    let t0 = Instant::now();
    let mut b = zoned();
    for _ in 0..5 {
        assert_eq!(b.route("ch", ip("192.0.2.7"), Some("FR"), t0), Ok(1));
        assert_eq!(b.route("ch", ip("2001:db8::1"), None, t0), Ok(1));
    }
}

#[test]
fn no_zone_server_for_client_is_not_available_for_zone() {
    let t0 = Instant::now();
    let mut only = plain("de", 100);
    only.countries = vec!["DE".into()];
    let mut b = with_channel(vec![only]);
    bring_all_up(&mut b, &[0], t0);
    assert_eq!(
        b.route("ch", client(), Some("FR"), t0),
        Err(Refusal::NotAvailableForZone)
    );
    assert_eq!(b.route("ch", client(), None, t0), Err(Refusal::NotAvailableForZone));
    assert_eq!(b.route("ch", client(), Some("DE"), t0), Ok(0));
}

#[test]
fn zone_servers_down_do_not_fall_back() {
    let t0 = Instant::now();
    let mut b = zoned();
    b.observe_health(0, false);
    b.observe_health(0, false);
    assert_eq!(b.route("ch", ip("10.1.2.3"), None, t0), Err(Refusal::NothingToPlay));
}

/// A zone server on 10/8, a DE server, an unfiltered one, all carrying
/// "ch"; `zone_fallback` as given.
fn zoned_with_fallback(fallback: bool, max_any: u64) -> Balancer {
    let mut net = plain("net", 10);
    net.networks = vec!["10.0.0.0/8".parse().expect("net")];
    let mut de = plain("de", 10);
    de.countries = vec!["DE".into()];
    let servers = vec![net, plain("any", max_any), de];
    let names = servers.iter().map(|s| s.name.clone()).collect();
    let tuning = Tuning {
        zone_fallback: fallback,
        ..Tuning::default()
    };
    let mut b = Balancer::new(servers, vec![("ch".into(), names)], tuning).expect("valid config");
    bring_all_up(&mut b, &[0, 0, 0], Instant::now());
    b
}

fn take_down(b: &mut Balancer, server: usize) {
    b.observe_health(server, false);
    b.observe_health(server, false);
}

#[test]
fn zone_fallback_off_refuses_when_the_zone_is_down_or_full() {
    let t0 = Instant::now();
    let mut b = zoned_with_fallback(false, 100);
    take_down(&mut b, 0);
    let r = b.route_with("ch", ip("10.1.2.3"), None, t0);
    assert_eq!(
        r,
        Routed {
            server: Err(Refusal::NothingToPlay),
            fallback: None,
            counted: Counted::No
        }
    );
    b.observe_load(2, 10, t0);
    let r = b.route_with("ch", ip("192.0.2.1"), Some("DE"), t0);
    assert_eq!(
        r,
        Routed {
            server: Err(Refusal::Limit),
            fallback: None,
            counted: Counted::No
        }
    );
}

#[test]
fn zone_fallback_on_uses_the_unfiltered_servers_with_a_reason() {
    let t0 = Instant::now();
    let mut b = zoned_with_fallback(true, 100);
    // The zone can serve: no fallback.
    assert_eq!(
        b.route_with("ch", ip("10.1.2.3"), None, t0),
        Routed {
            server: Ok(0),
            fallback: None,
            counted: Counted::New
        }
    );
    take_down(&mut b, 0);
    assert_eq!(
        b.route_with("ch", ip("10.1.2.3"), None, t0),
        Routed {
            server: Ok(1),
            fallback: Some(ZoneFallback::Down),
            counted: Counted::New
        }
    );
    // A stale measurement makes the zone Down too.
    b.observe_health(0, true);
    b.observe_health(0, true);
    b.observe_load(1, 0, at(t0, 40));
    assert_eq!(
        b.route_with("ch", ip("10.1.2.3"), None, at(t0, 40)),
        Routed {
            server: Ok(1),
            fallback: Some(ZoneFallback::Down),
            counted: Counted::New
        }
    );
    // A full zone: reason `full`; the other zone (DE) is never used. The
    // client was counted on u1 since its measurement: a repeat, kept there.
    b.observe_load(0, 10, at(t0, 40));
    b.observe_load(2, 0, at(t0, 40));
    let r = b.route_with("ch", ip("10.1.2.3"), None, at(t0, 40));
    assert_eq!(
        r,
        Routed {
            server: Ok(1),
            fallback: Some(ZoneFallback::Full),
            counted: Counted::Repeat
        }
    );
    // A client of no zone goes to the unfiltered servers as always: no fallback.
    assert_eq!(
        b.route_with("ch", ip("192.0.2.1"), Some("FR"), at(t0, 40)),
        Routed {
            server: Ok(1),
            fallback: None,
            counted: Counted::New
        }
    );
}

#[test]
fn zone_fallback_that_finds_nothing_still_refuses_and_says_it_tried() {
    let t0 = Instant::now();
    // The unfiltered server is full as well.
    let mut b = zoned_with_fallback(true, 1);
    b.observe_load(1, 1, t0);
    take_down(&mut b, 0);
    assert_eq!(
        b.route_with("ch", ip("10.1.2.3"), None, t0),
        Routed {
            server: Err(Refusal::Limit),
            fallback: Some(ZoneFallback::Down),
            counted: Counted::No
        }
    );
    // No unfiltered candidate at all: the zone's own refusal, no fallback.
    let mut only = plain("de", 10);
    only.countries = vec!["DE".into()];
    let tuning = Tuning {
        zone_fallback: true,
        ..Tuning::default()
    };
    let mut b = Balancer::new(vec![only], vec![("ch".into(), vec!["de".into()])], tuning).expect("valid config");
    bring_all_up(&mut b, &[10], t0);
    assert_eq!(
        b.route_with("ch", client(), Some("DE"), t0),
        Routed {
            server: Err(Refusal::Limit),
            fallback: None,
            counted: Counted::No
        }
    );
}

#[test]
fn zone_fallback_counts_burst_and_turns_like_any_route() {
    let t0 = Instant::now();
    let mut b = zoned_with_fallback(true, 1000);
    b.observe_load(0, 10, t0);
    let mut spare = plain("spare", 1000);
    spare.monitoring = true;
    let servers = vec![
        {
            let mut n = plain("net", 10);
            n.networks = vec!["10.0.0.0/8".parse().expect("net")];
            n
        },
        plain("any", 1000),
        spare,
    ];
    b.reconfigure(
        servers,
        vec![("ch".into(), vec!["net".into(), "any".into(), "spare".into()])],
        Tuning {
            zone_fallback: true,
            ..Tuning::default()
        },
    )
    .expect("valid config");
    bring_up(&mut b, 2, 0, t0);
    b.observe_load(1, 0, t0);
    let mut hits = [0usize; 3];
    for i in 0..10 {
        let r = b.route_with("ch", ip(&format!("10.9.9.{i}")), None, t0);
        assert_eq!(r.fallback, Some(ZoneFallback::Full));
        hits[r.server.expect("routed")] += 1;
    }
    assert_eq!(hits, [0, 5, 5], "the two unfiltered servers take turns");
    let st = b.status(t0);
    assert_eq!((st[1].sent_since, st[2].sent_since), (5, 5));
}

#[test]
fn channel_entry_overrides_announced_streams() {
    let t0 = Instant::now();
    let mut b = Balancer::new(
        vec![plain("a", 100), plain("b", 100), plain("c", 100)],
        vec![("ch".into(), vec!["b".into()]), ("empty".into(), vec![])],
        Tuning::default(),
    )
    .expect("valid config");
    bring_all_up(&mut b, &[0, 0, 0], t0);
    b.observe_streams(0, ["ch", "news", "empty"]);
    b.observe_streams(2, ["news"]);
    assert_eq!(route_n(&mut b, "ch", 4, t0), vec![0, 4, 0]);
    assert_eq!(route_n(&mut b, "news", 4, t0), vec![2, 0, 2]);
    assert_eq!(b.route("empty", client(), None, t0), Err(Refusal::NothingToPlay));
    assert_eq!(b.route("unknown", client(), None, t0), Err(Refusal::NothingToPlay));
    // A new announcement replaces the old one.
    b.observe_streams(0, ["sports", "sports"]);
    assert_eq!(route_n(&mut b, "news", 2, t0), vec![0, 0, 2]);
    assert_eq!(route_n(&mut b, "sports", 1, t0), vec![1, 0, 0]);
    assert_eq!(b.status(t0)[0].streams, 1);
    b.observe_streams(2, Vec::<String>::new());
    assert_eq!(b.route("news", client(), None, t0), Err(Refusal::NothingToPlay));
}

#[test]
fn health_hysteresis_through_routing() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 100)]);
    assert_eq!(
        b.route("ch", client(), None, t0),
        Err(Refusal::NothingToPlay),
        "never observed is Down"
    );
    b.observe_health(0, true);
    b.observe_health(0, true);
    assert_eq!(
        b.route("ch", client(), None, t0),
        Err(Refusal::NothingToPlay),
        "no metrics data is Down"
    );
    b.observe_load(0, 0, t0);
    assert_eq!(b.route("ch", client(), None, t0), Ok(0));
    b.observe_health(0, false);
    assert_eq!(b.route("ch", client(), None, t0), Ok(0), "one failure keeps Up");
    b.observe_health(0, false);
    assert_eq!(b.route("ch", client(), None, t0), Err(Refusal::NothingToPlay));
    b.observe_health(0, true);
    assert_eq!(
        b.route("ch", client(), None, t0),
        Err(Refusal::NothingToPlay),
        "one success keeps Down"
    );
    b.observe_health(0, true);
    assert_eq!(b.route("ch", client(), None, t0), Ok(0));
    // stale_after is 30 s by default.
    assert_eq!(b.route("ch", client(), None, at(t0, 30)), Ok(0));
    assert_eq!(
        b.route("ch", client(), None, at(t0, 31)),
        Err(Refusal::NothingToPlay),
        "stale measurement is Down"
    );
    assert!(!b.status(at(t0, 31))[0].up);
    assert!(b.status(at(t0, 31))[0].healthy);
}

#[test]
fn down_servers_are_skipped() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 100), plain("b", 100)]);
    bring_all_up(&mut b, &[0, 50], t0);
    b.observe_health(0, false);
    b.observe_health(0, false);
    assert_eq!(route_n(&mut b, "ch", 3, t0), vec![0, 3]);
}

#[test]
fn each_stream_keeps_its_own_turn() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 1000), plain("b", 1000), plain("c", 1000)]);
    b.observe_streams(0, ["x", "y"]);
    b.observe_streams(1, ["x", "y"]);
    b.observe_streams(2, ["x", "y"]);
    bring_all_up(&mut b, &[0, 0, 0], t0);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for _ in 0..3 {
        x.push(b.route("x", client(), None, t0).expect("routable"));
        y.push(b.route("y", client(), None, t0).expect("routable"));
    }
    // y's first viewer starts after x's; afterwards each rotates on its own.
    assert_eq!(x, vec![0, 1, 2]);
    assert_eq!(y, vec![1, 2, 0]);
}

#[test]
fn cursor_map_is_bounded() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", u64::MAX)]);
    bring_all_up(&mut b, &[0], t0);
    let names: Vec<String> = (0..=MAX_CURSORS).map(|i| format!("s{i}")).collect();
    b.observe_streams(0, &names);
    for name in &names {
        assert_eq!(b.route(name, client(), None, t0), Ok(0));
    }
    assert!(b.cursors.len() <= MAX_CURSORS);
    // Refused names never take a cursor.
    let before = b.cursors.len();
    let _ = b.route("missing", client(), None, t0);
    assert_eq!(b.cursors.len(), before);
}

#[test]
fn reconfigure_keeps_state_of_kept_servers() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 100), plain("b", 100)]);
    bring_all_up(&mut b, &[10, 20], t0);
    b.observe_streams(1, ["news"]);
    assert_eq!(b.route("news", client(), None, t0), Ok(1));

    b.reconfigure(
        vec![plain("c", 100), plain("b", 500)],
        vec![("ch".into(), vec!["b".into(), "c".into()])],
        Tuning::default(),
    )
    .expect("valid config");
    assert_eq!(b.server_index("a"), None);
    assert_eq!(b.server_index("b"), Some(1));
    assert_eq!(b.server_name(1), Some("b"));
    let st = b.status(t0);
    assert_eq!(st[0].name, "c");
    assert!(!st[0].up && st[0].last_measured_secs_ago.is_none());
    assert!(st[1].up);
    assert_eq!(
        (st[1].measured, st[1].sent_since, st[1].max_clients, st[1].streams),
        (20, 1, 500, 1)
    );
    assert_eq!(b.route("news", client(), None, t0), Ok(1));
    assert_eq!(b.route("ch", client(), None, t0), Ok(1), "c is Down");

    // A bad config changes nothing.
    let err = b.reconfigure(
        vec![plain("b", 1)],
        vec![("ch".into(), vec!["zz".into()])],
        Tuning::default(),
    );
    assert!(matches!(err, Err(ConfigError::UnknownServer { .. })));
    assert_eq!(b.status(t0)[1].max_clients, 500);
}

#[test]
fn reconfigure_remaps_round_robin_turns() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 1000), plain("b", 1000), plain("c", 1000)]);
    bring_all_up(&mut b, &[0, 0, 0], t0);
    assert_eq!(b.route("ch", client(), None, t0), Ok(0));
    assert_eq!(b.route("ch", client(), None, t0), Ok(1));
    // b moves from index 1 to index 0; the next turn is still c.
    b.reconfigure(
        vec![plain("b", 1000), plain("a", 1000), plain("c", 1000)],
        vec![("ch".into(), vec!["a".into(), "b".into(), "c".into()])],
        Tuning::default(),
    )
    .expect("valid config");
    assert_eq!(b.route("ch", client(), None, t0), Ok(2));
}

#[test]
fn unknown_indices_are_ignored() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 1)]);
    b.observe_health(7, true);
    b.observe_load(7, 1, t0);
    b.observe_streams(7, ["x"]);
    assert_eq!(b.server_name(7), None);
    assert_eq!(b.status(t0).len(), 1);
}

#[test]
fn one_client_repeating_is_counted_once_per_server_until_its_measurement() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 10), plain("b", 10), plain("c", 10)]);
    bring_all_up(&mut b, &[0, 0, 0], t0);
    // 2,000 requests of one address (pipelined on one connection, say):
    // one viewer, always the same server, and the farm keeps its room.
    let first = b.route_with("ch", one_client(), None, t0);
    assert_eq!((first.server, first.counted), (Ok(0), Counted::New));
    for _ in 0..1999 {
        let r = b.route_with("ch", one_client(), None, t0);
        assert_eq!((r.server, r.counted), (Ok(0), Counted::Repeat));
    }
    let sent: Vec<u64> = b.status(t0).iter().map(|s| s.sent_since).collect();
    assert_eq!(sent, [1, 0, 0]);
    // Other viewers still find room everywhere.
    assert_eq!(route_n(&mut b, "ch", 27, t0).iter().sum::<usize>(), 27);
    // Another stream of the same address is another viewer.
    b.observe_streams(1, ["other"]);
    let other = b.route_with("other", one_client(), None, t0);
    assert_eq!((other.server, other.counted), (Ok(1), Counted::New));
    // The measurement includes it: the next request counts again.
    b.observe_load(0, 10, t0);
    let again = b.route_with("ch", one_client(), None, t0);
    assert_eq!(again.counted, Counted::New);
    assert_ne!(again.server, Ok(0), "a is full now");
}

#[test]
fn a_repeat_stays_while_its_server_holds_it_and_moves_when_not() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 10), plain("b", 2)]);
    bring_all_up(&mut b, &[9, 0], t0);
    // b is emptier: the client goes there; a new viewer then fills b.
    assert_eq!(b.route("ch", one_client(), None, t0), Ok(1));
    assert_eq!(b.route("ch", client(), None, t0), Ok(1));
    // b is full counting the client: a repeat is still answered with b.
    let r = b.route_with("ch", one_client(), None, t0);
    assert_eq!((r.server, r.counted), (Ok(1), Counted::Repeat));
    // b goes Down: the repeat moves to a and is counted there.
    b.observe_health(1, false);
    b.observe_health(1, false);
    let r = b.route_with("ch", one_client(), None, t0);
    assert_eq!((r.server, r.counted), (Ok(0), Counted::New));
    assert_eq!(b.status(t0)[0].sent_since, 1);
    // A closed server does not hold its repeats either.
    b.reconfigure(
        vec![
            ServerSpec {
                closed: true,
                ..plain("a", 10)
            },
            plain("b", 2),
        ],
        vec![("ch".into(), vec!["a".into(), "b".into()])],
        Tuning::default(),
    )
    .expect("valid config");
    assert_eq!(b.route("ch", one_client(), None, t0), Err(Refusal::NothingToPlay));
}

#[test]
fn viewers_sent_after_the_mark_stay_repeats_across_the_measurement() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 100)]);
    bring_all_up(&mut b, &[0], t0);
    let early = client();
    assert_eq!(b.route("ch", early, None, t0), Ok(0));
    let mark = b.sent_mark(0).expect("server a");
    assert_eq!(b.route("ch", one_client(), None, t0), Ok(0));
    b.observe_load_since(0, 1, mark, t0);
    assert_eq!(b.status(t0)[0].sent_since, 1, "the late viewer still counts");
    // Still counted after the measurement: a repeat.
    assert_eq!(b.route_with("ch", one_client(), None, t0).counted, Counted::Repeat);
    // The early one is in the measurement: it counts again.
    assert_eq!(b.route_with("ch", early, None, t0).counted, Counted::New);
    assert_eq!(b.status(t0)[0].sent_since, 2);
}

#[test]
fn a_full_memory_counts_new_clients_as_before_and_says_so() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 10_000_000)]);
    bring_all_up(&mut b, &[0], t0);
    for _ in 0..MAX_RECENT {
        assert_eq!(b.route_with("ch", client(), None, t0).counted, Counted::New);
    }
    assert_eq!(b.remembered(), MAX_RECENT);
    let over = b.route_with("ch", client(), None, t0);
    assert_eq!((over.server, over.counted), (Ok(0), Counted::Overflow));
    assert_eq!(
        b.status(t0)[0].sent_since,
        MAX_RECENT as u64 + 1,
        "counted all the same"
    );
    // A measurement ends every entry: the next new client is remembered.
    b.observe_load(0, 5, t0);
    assert_eq!(b.route_with("ch", client(), None, t0).counted, Counted::New);
    assert_eq!(b.remembered(), 1);
}

#[test]
fn reloads_keep_repeats_on_the_renumbered_server() {
    let t0 = Instant::now();
    let mut b = with_channel(vec![plain("a", 10), plain("b", 10)]);
    bring_all_up(&mut b, &[5, 0], t0);
    assert_eq!(b.route("ch", one_client(), None, t0), Ok(1));
    b.reconfigure(
        vec![plain("b", 10), plain("a", 10)],
        vec![("ch".into(), vec!["a".into(), "b".into()])],
        Tuning::default(),
    )
    .expect("valid config");
    let r = b.route_with("ch", one_client(), None, t0);
    assert_eq!((r.server, r.counted), (Ok(0), Counted::Repeat), "b is index 0 now");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const IPS: [&str; 4] = ["10.1.1.1", "192.0.2.1", "2001:db8::1", "::ffff:10.2.2.2"];

    /// Address `IPS[i]` made distinct by `k` and kept in its zone class, so
    /// that every route is a new viewer.
    fn varied(i: usize, k: u16) -> IpAddr {
        let [hi, lo] = k.to_be_bytes();
        match i {
            0 => IpAddr::V4(Ipv4Addr::new(10, 1, hi, lo)),
            1 => IpAddr::V4(Ipv4Addr::new(192, 168, hi, lo)),
            2 => IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, k)),
            _ => IpAddr::V6(Ipv4Addr::new(10, 2, hi, lo).to_ipv6_mapped()),
        }
    }
    const COUNTRIES: [Option<&str>; 3] = [None, Some("de"), Some("FR")];

    #[derive(Debug, Clone)]
    enum Op {
        Health(usize, bool),
        Load(usize, u64),
        Streams(usize, bool),
        Advance(u64),
        Route(usize, usize),
    }

    #[derive(Debug, Clone)]
    struct Server {
        max: u64,
        monitoring: bool,
        net: u8,
        country: bool,
    }

    fn server() -> impl Strategy<Value = Server> {
        // Large servers make several ratios fall within the band.
        let max = prop_oneof![1 => Just(0u64), 2 => 1u64..40, 4 => Just(1000u64)];
        let net = prop_oneof![3 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)];
        (max, any::<bool>(), net, prop::bool::weighted(0.25)).prop_map(|(max, monitoring, net, country)| Server {
            max,
            monitoring,
            net,
            country,
        })
    }

    fn op(n: usize) -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (0..n, prop::bool::weighted(0.8)).prop_map(|(i, ok)| Op::Health(i, ok)),
            2 => (0..n, 0u64..40).prop_map(|(i, c)| Op::Load(i, c)),
            1 => (0..n, prop::bool::weighted(0.8)).prop_map(|(i, on)| Op::Streams(i, on)),
            1 => (0u64..12).prop_map(Op::Advance),
            6 => (0..IPS.len(), 0..COUNTRIES.len()).prop_map(|(i, c)| Op::Route(i, c)),
        ]
    }

    fn spec(i: usize, s: &Server) -> ServerSpec {
        let mut spec = ServerSpec::new(format!("s{i}"), s.max);
        spec.monitoring = s.monitoring;
        match s.net {
            1 => spec.networks = vec!["10.0.0.0/8".parse().expect("net")],
            2 => spec.networks = vec!["2001:db8::/32".parse().expect("net")],
            _ => {}
        }
        if s.country {
            spec.countries = vec!["DE".into()];
        }
        spec
    }

    /// The pipeline written plainly: the set of acceptable picks, or the
    /// refusal, and the fallback reason when `fallback` sent it out of its zone.
    fn reference_with(
        specs: &[ServerSpec],
        status: &[ServerStatus],
        carries: &[bool],
        ip: IpAddr,
        country: Option<&str>,
        band: f64,
        fallback: bool,
    ) -> (Result<Vec<usize>, Refusal>, Option<ZoneFallback>) {
        let ip = ip.to_canonical();
        let cands: Vec<usize> = (0..specs.len()).filter(|&i| carries[i]).collect();
        if cands.is_empty() {
            return (Err(Refusal::NothingToPlay), None);
        }
        let matches = |i: usize| {
            specs[i].networks.iter().any(|n| n.contains(&ip))
                || country.is_some_and(|c| specs[i].countries.iter().any(|o| o.eq_ignore_ascii_case(c)))
        };
        let zoned = cands.iter().any(|&i| matches(i));
        let unfiltered: Vec<usize> = cands.iter().copied().filter(|&i| !specs[i].is_filtered()).collect();
        let zone: Vec<usize> = if zoned {
            cands.into_iter().filter(|&i| matches(i)).collect()
        } else {
            unfiltered.clone()
        };
        if zone.is_empty() {
            return (Err(Refusal::NotAvailableForZone), None);
        }
        let first = order(specs, status, zone, band);
        let reason = match first {
            Err(Refusal::NothingToPlay) => ZoneFallback::Down,
            Err(Refusal::Limit) => ZoneFallback::Full,
            _ => return (first, None),
        };
        if !(zoned && fallback) || unfiltered.is_empty() {
            return (first, None);
        }
        (order(specs, status, unfiltered, band), Some(reason))
    }

    fn reference(
        specs: &[ServerSpec],
        status: &[ServerStatus],
        carries: &[bool],
        ip: IpAddr,
        country: Option<&str>,
        band: f64,
    ) -> Result<Vec<usize>, Refusal> {
        reference_with(specs, status, carries, ip, country, band, false).0
    }

    /// Health, capacity, class and band over one set of servers.
    fn order(
        specs: &[ServerSpec],
        status: &[ServerStatus],
        zone: Vec<usize>,
        band: f64,
    ) -> Result<Vec<usize>, Refusal> {
        let up: Vec<usize> = zone.into_iter().filter(|&i| status[i].up).collect();
        if up.is_empty() {
            return Err(Refusal::NothingToPlay);
        }
        let room: Vec<usize> = up
            .into_iter()
            .filter(|&i| status[i].current < status[i].max_clients)
            .collect();
        if room.is_empty() {
            return Err(Refusal::Limit);
        }
        let monitored = room.iter().any(|&i| specs[i].monitoring);
        let class: Vec<usize> = room.into_iter().filter(|&i| specs[i].monitoring == monitored).collect();
        let lowest = class.iter().map(|&i| status[i].ratio).fold(f64::INFINITY, f64::min);
        Ok(class
            .into_iter()
            .filter(|&i| status[i].ratio <= lowest + band + 1e-9)
            .collect())
    }

    proptest! {
        #[test]
        fn picks_are_eligible_and_never_skip_a_lighter_server(
            servers in prop::collection::vec(server(), 1..6),
            ops in prop::collection::vec(op(5), 1..200),
            zone_fallback in any::<bool>(),
        ) {
            let n = servers.len();
            let specs: Vec<ServerSpec> = servers.iter().enumerate().map(|(i, s)| spec(i, s)).collect();
            let tuning = Tuning { zone_fallback, ..Tuning::default() };
            let mut b = Balancer::new(specs.clone(), vec![], tuning).expect("valid config");
            let mut carries = vec![false; n];
            let t0 = Instant::now();
            let mut now = t0;
            for (k, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Health(i, ok) => b.observe_health(i % n, ok),
                    Op::Load(i, c) => b.observe_load(i % n, c, now),
                    Op::Streams(i, on) => {
                        carries[i % n] = on;
                        let list: &[&str] = if on { &["s", "other"] } else { &["other"] };
                        b.observe_streams(i % n, list);
                    }
                    Op::Advance(secs) => now += Duration::from_secs(secs),
                    Op::Route(ip_i, c_i) => {
                        let (ip, country) = (varied(ip_i, k as u16), COUNTRIES[c_i]);
                        let before = b.status(now);
                        let (expected, fallback) =
                            reference_with(&specs, &before, &carries, ip, country, tuning.band, zone_fallback);
                        let routed = b.route_with("s", ip, country, now);
                        prop_assert_eq!(routed.fallback, fallback);
                        match (&expected, routed.server) {
                            (Ok(allowed), Ok(pick)) => {
                                prop_assert!(allowed.contains(&pick), "picked {pick}, allowed {allowed:?}");
                                let after = b.status(now);
                                prop_assert_eq!(after[pick].sent_since, before[pick].sent_since + 1);
                            }
                            (Err(want), Err(refusal)) => prop_assert_eq!(*want, refusal),
                            (want, got) => prop_assert!(false, "expected {want:?}, got {got:?}"),
                        }
                    }
                }
            }
        }
    }

    proptest! {
        /// All Up, unfiltered, carrying: exercises ordering and the band.
        #[test]
        fn ordering_respects_class_ratio_and_band(
            servers in prop::collection::vec(
                (prop_oneof![Just(50u64), Just(500u64), Just(1000u64)], any::<bool>()), 2..6),
            loads in prop::collection::vec(0u64..60, 6),
            steps in prop::collection::vec((0usize..6, prop::option::weighted(0.1, 0u64..60)), 1..120),
        ) {
            let specs: Vec<ServerSpec> = servers
                .iter()
                .enumerate()
                .map(|(i, &(max, monitoring))| ServerSpec { monitoring, ..ServerSpec::new(format!("s{i}"), max) })
                .collect();
            let n = specs.len();
            let tuning = Tuning::default();
            let mut b = Balancer::new(specs.clone(), vec![], tuning).expect("valid config");
            let t0 = Instant::now();
            for (i, &load) in loads.iter().enumerate().take(n) {
                bring_up(&mut b, i, load, t0);
                b.observe_streams(i, ["s"]);
            }
            let carries = vec![true; n];
            for (i, reload) in steps {
                if let Some(clients) = reload {
                    b.observe_load(i % n, clients, t0);
                }
                let before = b.status(t0);
                let expected = reference(&specs, &before, &carries, client(), None, tuning.band);
                match (expected, b.route("s", client(), None, t0)) {
                    (Ok(allowed), Ok(pick)) => prop_assert!(allowed.contains(&pick), "picked {pick}, allowed {allowed:?}"),
                    (Err(want), Err(got)) => prop_assert_eq!(want, got),
                    (want, got) => prop_assert!(false, "expected {want:?}, got {got:?}"),
                }
            }
        }

        /// Equally measured large servers split any burst within one viewer.
        #[test]
        fn equal_servers_share_a_burst_evenly(k in 1usize..8, per in 0usize..10, extra in 0usize..8) {
            let specs = (0..k).map(|i| ServerSpec::new(format!("s{i}"), 1000)).collect();
            let mut b = with_channel(specs);
            let t0 = Instant::now();
            bring_all_up(&mut b, &vec![0; k], t0);
            let hits = route_n(&mut b, "ch", per * k + extra % k, t0);
            let (lo, hi) = (hits.iter().min().copied(), hits.iter().max().copied());
            prop_assert!(hi.unwrap_or(0) - lo.unwrap_or(0) <= 1, "{hits:?}");
        }
    }
}

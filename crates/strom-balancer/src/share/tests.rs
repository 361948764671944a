//! Claims, ticks and peer liveness, and the overfill bound: several
//! balancer cores on one virtual clock routing bursts to shared servers.

use super::*;
use crate::{Balancer, Refusal, ServerSpec, Tuning};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

/// A new client address at every call: each request is a new viewer.
fn client() -> IpAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    IpAddr::V4(Ipv4Addr::from(
        0x6440_0000 | (NEXT.fetch_add(1, Ordering::Relaxed) & 0x003f_ffff),
    ))
}

#[test]
fn claims_split_the_room_rounding_up() {
    assert_eq!(claim(100, 40, 1), 60, "one balancer claims all the room");
    assert_eq!(claim(100, 40, 2), 30);
    assert_eq!(claim(100, 41, 2), 30, "59 / 2 rounds up");
    assert_eq!(claim(10, 9, 3), 1);
    assert_eq!(claim(10, 10, 2), 0);
    assert_eq!(claim(10, 25, 2), 0, "an overfull server has no room");
    assert_eq!(claim(10, 0, 0), 10, "0 balancers count as 1");
    assert!(has_room(10, 0, 4, 2));
    assert!(!has_room(10, 0, 5, 2), "the claim is used up");
    assert!(has_room(10, 9, 0, 1));
    assert!(!has_room(10, 10, 0, 1));
}

#[test]
fn ticks_follow_the_wall_clock() {
    let ms = Duration::from_millis;
    assert_eq!(until_tick(ms(1_300), ms(1_000)), ms(700));
    assert_eq!(until_tick(ms(2_000), ms(1_000)), ms(1_000), "on a tick: the next one");
    assert_eq!(until_tick(ms(1_234_567), ms(500)), ms(433));
    assert_eq!(until_tick(ms(5), Duration::ZERO), ms(1), "a zero period is 1 ms");
    assert_eq!(mark_lead(ms(500)), ms(100));
    assert_eq!(mark_lead(ms(10_000)), ms(200));
}

#[test]
fn itself_and_servers_that_are_no_balancer_never_count() {
    let mut p = Peers::new(3, 2);
    assert_eq!(p.balancers(), 4, "unprobed peers count");
    p.observe_probe(0, Probe::Itself);
    p.observe_probe(1, Probe::NotBalancer);
    p.observe_probe(2, Probe::Balancer);
    assert_eq!(p.balancers(), 2, "this one and the other balancer");
    assert_eq!(
        (p.state(0), p.state(1), p.state(2)),
        (PeerState::Itself, PeerState::NotBalancer, PeerState::Live)
    );
    // Failures do not turn them into balancers; a balancer's answer does.
    p.observe_probe(1, Probe::Failed);
    p.observe_probe(1, Probe::Failed);
    assert_eq!(p.state(1), PeerState::NotBalancer);
    p.observe_probe(1, Probe::Balancer);
    assert_eq!(p.balancers(), 3);
    p.observe_probe(2, Probe::Failed);
    p.observe_probe(2, Probe::Failed);
    assert_eq!((p.state(2), p.balancers()), (PeerState::Down, 2));
}

#[test]
fn peers_start_live_and_fall_after_consecutive_failures() {
    let mut p = Peers::new(2, 2);
    assert_eq!(p.balancers(), 3, "unprobed peers count");
    p.observe(0, false);
    assert!(p.is_live(0), "one failure keeps it");
    p.observe(0, true);
    p.observe(0, false);
    assert_eq!(p.balancers(), 3, "failures must be consecutive");
    p.observe(0, false);
    assert!(!p.is_live(0));
    assert_eq!(p.balancers(), 2);
    p.observe(0, true);
    assert_eq!(p.balancers(), 3, "one success brings it back");
    p.observe(7, false);
    assert!(!p.is_live(7), "unknown peers are not live");
    assert_eq!(Peers::new(0, 2).balancers(), 1);
}

fn farm(max: &[u64]) -> Balancer {
    let servers: Vec<ServerSpec> = max
        .iter()
        .enumerate()
        .map(|(i, &m)| ServerSpec::new(format!("s{i}"), m))
        .collect();
    let names = servers.iter().map(|s| s.name.clone()).collect();
    let mut b = Balancer::new(servers, vec![("ch".into(), names)], Tuning::default()).expect("valid config");
    for i in 0..max.len() {
        b.observe_health(i, true);
        b.observe_health(i, true);
    }
    b
}

#[test]
fn a_balancer_stops_at_its_claim_and_resumes_with_the_next_measurement() {
    let t0 = Instant::now();
    let mut b = farm(&[10]);
    b.set_balancers(2);
    b.observe_load(0, 0, t0);
    for _ in 0..5 {
        assert_eq!(b.route("ch", client(), None, t0), Ok(0));
    }
    assert_eq!(
        b.route("ch", client(), None, t0),
        Err(Refusal::Limit),
        "half the room is its share"
    );
    assert_eq!(b.status(t0)[0].claim_left, 0);
    // The other balancer sent 3 meanwhile: 8 measured, 2 left, 1 is ours.
    b.observe_load(0, 8, t0);
    assert_eq!(b.status(t0)[0].claim_left, 1);
    assert_eq!(b.route("ch", client(), None, t0), Ok(0));
    assert_eq!(b.route("ch", client(), None, t0), Err(Refusal::Limit));
    // Alone again: the whole room.
    b.set_balancers(1);
    b.observe_load(0, 9, t0);
    assert_eq!(b.route("ch", client(), None, t0), Ok(0));
    assert_eq!(b.route("ch", client(), None, t0), Err(Refusal::Limit));
}

#[test]
fn one_balancer_keeps_the_plain_capacity_rule() {
    let t0 = Instant::now();
    let mut b = farm(&[7]);
    b.observe_load(0, 3, t0);
    let sent = (0..10).filter(|_| b.route("ch", client(), None, t0).is_ok()).count();
    assert_eq!(sent, 4);
}

#[test]
fn draining_servers_take_no_new_viewers() {
    let t0 = Instant::now();
    let servers = vec![ServerSpec::new("a", 100), ServerSpec::new("b", 100)];
    let names = vec!["a".to_string(), "b".to_string()];
    let mut b =
        Balancer::new(servers.clone(), vec![("ch".into(), names.clone())], Tuning::default()).expect("valid config");
    for i in 0..2 {
        b.observe_health(i, true);
        b.observe_health(i, true);
        b.observe_load(i, 0, t0);
    }
    let mut drain_a = servers.clone();
    drain_a[0].closed = true;
    b.reconfigure(drain_a, vec![("ch".into(), names.clone())], Tuning::default())
        .expect("valid config");
    for _ in 0..5 {
        assert_eq!(b.route("ch", client(), None, t0), Ok(1));
    }
    let st = b.status(t0);
    assert!(st[0].closed && st[0].up, "a draining server stays Up and measured");
    let mut both = servers;
    both[1].closed = true;
    both[0].closed = true;
    b.reconfigure(both, vec![("ch".into(), names)], Tuning::default())
        .expect("valid config");
    assert_eq!(b.route("ch", client(), None, t0), Err(Refusal::NothingToPlay));
    assert_eq!(b.status(t0)[1].sent_since, 5, "counters survive the change");
}

/// A farm seen from outside: each server's count as its `/metrics` says,
/// fed by viewers who arrive some milliseconds after their redirect.
struct Servers {
    max: Vec<u64>,
    counted: Vec<u64>,
    /// (arrival time in ms, server)
    on_their_way: Vec<(u64, usize)>,
    /// Per server: most viewers on their way to it at a measurement.
    in_flight_at_measurement: Vec<u64>,
}

impl Servers {
    fn arrive_until(&mut self, ms: u64) {
        let counted = &mut self.counted;
        self.on_their_way.retain(|&(at, s)| {
            if at <= ms {
                counted[s] += 1;
            }
            at > ms
        });
    }

    fn note_in_flight(&mut self) {
        for (s, most) in self.in_flight_at_measurement.iter_mut().enumerate() {
            let n = self.on_their_way.iter().filter(|w| w.1 == s).count() as u64;
            *most = (*most).max(n);
        }
    }

    fn worst_overfill(&self) -> u64 {
        self.counted
            .iter()
            .zip(&self.max)
            .map(|(&c, &m)| c.saturating_sub(m))
            .max()
            .unwrap_or(0)
    }
}

/// One balancer of the simulation: its core and its clock's offset.
struct Node {
    core: Balancer,
    skew_ms: u64,
    marks: Vec<u64>,
    alive: bool,
}

/// Runs `requests` (time in ms, balancer) against `n` balancers polling
/// every `refresh_ms` at wall-clock ticks, each skewed by up to `skew_ms`,
/// with viewers taking up to `flight_ms` to reach their server; `dies`
/// kills balancer 1 at that time (the others learn it `detect_ms` later).
/// Returns the worst overfill seen at any moment.
#[allow(clippy::too_many_arguments)]
fn simulate(
    max: &[u64],
    n: usize,
    skews: &[u64],
    flights: &[u64],
    requests: &[(u64, usize)],
    refresh_ms: u64,
    dies: Option<(u64, u64)>,
) -> (u64, Servers) {
    let t0 = Instant::now();
    let lead_ms = mark_lead(Duration::from_millis(refresh_ms)).as_millis() as u64;
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            let mut core = farm(max);
            core.set_balancers(n as u64);
            Node {
                core,
                skew_ms: skews[i % skews.len()],
                marks: vec![0; max.len()],
                alive: true,
            }
        })
        .collect();
    let mut servers = Servers {
        max: max.to_vec(),
        counted: vec![0; max.len()],
        on_their_way: Vec::new(),
        in_flight_at_measurement: vec![0; max.len()],
    };
    let end = requests.iter().map(|r| r.0).max().unwrap_or(0) + 3 * refresh_ms;
    let mut worst = 0;
    let mut next = 0;
    let mut flight = flights.iter().cycle();
    for ms in 0..=end {
        let now = t0 + Duration::from_millis(ms);
        servers.arrive_until(ms);
        if let Some((at, detect)) = dies {
            if ms == at {
                nodes[1].alive = false;
            }
            if ms == at + detect {
                for node in nodes.iter_mut().filter(|x| x.alive) {
                    node.core.set_balancers(n as u64 - 1);
                }
            }
        }
        for node in nodes.iter_mut().filter(|x| x.alive) {
            // This node's clock reads `ms - skew`: mark `lead` before its
            // tick, measure at the tick.
            let Some(local) = ms.checked_sub(node.skew_ms) else {
                continue;
            };
            if (local + lead_ms).is_multiple_of(refresh_ms) {
                for (s, m) in node.marks.iter_mut().enumerate() {
                    *m = node.core.sent_mark(s).unwrap_or(0);
                }
            }
            if local.is_multiple_of(refresh_ms) {
                servers.note_in_flight();
                for (s, &c) in servers.counted.iter().enumerate() {
                    node.core.observe_load_since(s, c, node.marks[s], now);
                }
            }
        }
        while let Some(&(at, by)) = requests.get(next) {
            if at > ms {
                break;
            }
            next += 1;
            let node = &mut nodes[by % n];
            if !node.alive {
                continue;
            }
            if let Ok(s) = node.core.route("ch", client(), None, now) {
                let f = flight.next().copied().unwrap_or(0);
                if f == 0 {
                    servers.counted[s] += 1;
                } else {
                    servers.on_their_way.push((ms + f, s));
                }
            }
        }
        worst = worst.max(servers.worst_overfill());
    }
    servers.arrive_until(u64::MAX);
    (worst.max(servers.worst_overfill()), servers)
}

#[test]
fn without_claims_two_balancers_overfill_and_with_them_they_do_not() {
    // 2,000 requests in 1 s, alternating between two balancers.
    let requests: Vec<(u64, usize)> = (0..2000).map(|i| (i / 2, (i % 2) as usize)).collect();
    let (worst, servers) = simulate(&[10, 10, 10], 2, &[0, 3], &[0, 2, 5], &requests, 500, None);
    assert!(worst <= 1, "overfill {worst}, counts {:?}", servers.counted);
    assert!(
        servers.counted.iter().all(|&c| c >= 10),
        "the farm still fills: {:?}",
        servers.counted
    );
    // The same burst with each balancer claiming all the room (N = 1 each):
    // the test can fail.
    let blind = simulate_blind(&requests);
    assert!(blind >= 5, "two blind balancers should overfill, got {blind}");
}

/// Two balancers that do not know of each other.
fn simulate_blind(requests: &[(u64, usize)]) -> u64 {
    let t0 = Instant::now();
    let mut a = farm(&[10, 10, 10]);
    let mut b = farm(&[10, 10, 10]);
    let mut counted = [0u64; 3];
    for core in [&mut a, &mut b] {
        for s in 0..3 {
            core.observe_load(s, 0, t0);
        }
    }
    for &(_, by) in requests {
        let core = if by == 0 { &mut a } else { &mut b };
        if let Ok(s) = core.route("ch", client(), None, t0) {
            counted[s] += 1;
        }
    }
    counted.iter().map(|c| c.saturating_sub(10)).max().unwrap_or(0)
}

#[test]
fn when_a_balancer_dies_the_other_fills_the_room_and_no_more() {
    // Balancer 1 dies at 200 ms; the survivor learns it 1 s later. Viewers
    // leave nothing: the survivor may only fill what is left.
    let mut requests: Vec<(u64, usize)> = (0..200).map(|i| (i, (i % 2) as usize)).collect();
    // After the death, 500 more requests on the survivor over 2 s.
    requests.extend((0..500).map(|i| (300 + i * 4, 0)));
    let (worst, servers) = simulate(&[40, 40, 40], 2, &[0, 2], &[1, 3], &requests, 500, Some((200, 1000)));
    assert!(worst <= 1, "overfill {worst}, counts {:?}", servers.counted);
    assert!(
        servers.counted.iter().all(|&c| c >= 40),
        "the survivor fills the farm: {:?}",
        servers.counted
    );
}

#[test]
fn clocks_further_apart_than_the_lead_break_the_bound() {
    // Both measure 0 at their first tick and claim 10 of 20. Balancer 1
    // sends its 10 just after balancer 0's next measurement (t = 100 ms),
    // then claims again from its own; balancer 0, which measured 0 at
    // 100 ms, sends its 10 after that.
    let mut requests: Vec<(u64, usize)> = (112..122).map(|t| (t, 1)).collect();
    requests.extend((160..170).map(|t| (t, 1)));
    requests.extend((171..185).map(|t| (t, 0)));
    let (close, servers) = simulate(&[20], 2, &[0, 10], &[0], &requests, 100, None);
    assert!(close <= 1, "clocks 10 ms apart, lead 20 ms: {:?}", servers.counted);
    let (far, servers) = simulate(&[20], 2, &[0, 50], &[0], &requests, 100, None);
    assert!(far >= 3, "clocks 50 ms apart: {:?}", servers.counted);
}

fn at_times(gaps: &[(u64, usize)]) -> Vec<(u64, usize)> {
    let mut t = 0;
    gaps.iter()
        .map(|&(gap, by)| {
            t += gap;
            (t, by)
        })
        .collect()
}

proptest! {
    /// Whatever the interleaving and the sizes, with clocks within the
    /// mark's lead (20 ms at refresh 100 ms) and viewers arriving at once,
    /// no server ends more than N - 1 above its max.
    #[test]
    fn overfill_stays_within_n_minus_one(
        n in 2usize..5,
        max in prop::collection::vec(1u64..40, 1..4),
        skews in prop::collection::vec(0u64..19, 1..4),
        gaps in prop::collection::vec((0u64..3, 0usize..4), 1..800),
    ) {
        let requests = at_times(&gaps);
        let (worst, servers) = simulate(&max, n, &skews, &[0], &requests, 100, None);
        prop_assert!(worst < n as u64, "overfill {} with {} balancers: {:?} of {:?}", worst, n, servers.counted, max);
    }

    /// Viewers still on their way to a server when it is measured can add
    /// to that: at most as many as were on their way.
    #[test]
    fn viewers_on_their_way_add_at_most_themselves(
        n in 1usize..4,
        max in prop::collection::vec(1u64..40, 1..4),
        skews in prop::collection::vec(0u64..8, 1..4),
        flights in prop::collection::vec(0u64..12, 1..5),
        gaps in prop::collection::vec((0u64..3, 0usize..4), 1..800),
    ) {
        let requests = at_times(&gaps);
        // Clocks and journeys within the lead: skew + flight < 20 ms.
        let (_, servers) = simulate(&max, n, &skews, &flights, &requests, 100, None);
        for (s, (&c, &m)) in servers.counted.iter().zip(&max).enumerate() {
            let bound = m + n as u64 - 1 + if n > 1 { servers.in_flight_at_measurement[s] } else { 0 };
            prop_assert!(c <= bound, "server {} ended at {} of {}, bound {}: {:?}", s, c, m, bound, servers.in_flight_at_measurement);
        }
    }
}

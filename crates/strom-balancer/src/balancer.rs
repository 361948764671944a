//! The balancer: observations in, one routing decision per request out.
//!
//! Invariants:
//! - `route` never allocates on the steady path: candidates go through a
//!   reused scratch buffer; only the first request for a stream name inserts
//!   its round-robin cursor.
//! - A chosen server passed zone, health and capacity, belongs to the best
//!   monitoring class present, and its ratio is within `band` of the lowest
//!   ratio in that class.
//! - Round robin: each stream name keeps the index of the server it was last
//!   routed to; the next pick is the first server of the equal band that
//!   comes after it in candidate order (channel order, or server order for
//!   announced streams), wrapping around. A stream without a cursor starts
//!   after the server chosen last for any stream, so first viewers of many
//!   streams spread too. At most [`MAX_CURSORS`] cursors are kept; past that
//!   the map is cleared (losing only the turn, never correctness).
//! - Zone fallback (`Tuning::zone_fallback`): only when the client matched
//!   a zone filter, and that zone's servers refused it for health
//!   (`down`) or capacity (`full`), the same steps run again over the
//!   stream's candidates that have no filter at all; the outcome carries
//!   the reason. Servers of other zones are never used.
//! - Burst accounting: every routed viewer adds 1 to the server's
//!   `sent_since` and so 1/max to its ratio. A burst therefore fills the
//!   least loaded server only until it is within `band` of the others, after
//!   which they take turns; equally measured servers split a burst evenly.
//!   The next load measurement replaces the estimate.
//! - Several balancers ([`crate::share`]): with `N` live balancers, a
//!   server also needs `sent_since` below this balancer's claim,
//!   ⌈(max − measured) / N⌉; with one balancer that is the rule above.
//! - A closed server (drained or disabled through the admin API) takes no
//!   new viewers: it is skipped as a Down one is.
//! - Repeats: a decision counts toward a server's `sent_since` only once per
//!   (client address, stream) between two measurements of that server. The
//!   balancer remembers, for at most [`MAX_RECENT`] keys (a keyed hash of
//!   address and stream), the server a client was counted on and that
//!   server's `sent_total` then; the entry holds while that viewer is still
//!   in `sent_since` (it is within the last `sent_since` sent), so a
//!   measurement ends it, except for viewers sent after the poll's mark,
//!   which keep counting ([`Balancer::observe_load_since`]). A repeat goes
//!   to the same server if it is still eligible (zone, health, not closed)
//!   and still within its room counting that viewer (`current <= max`, and
//!   `sent_since` within the claim), without counting again and without
//!   taking a round-robin turn; otherwise it is routed as new and counted
//!   where it goes. When the memory is full (after dropping entries that
//!   measurements ended), a new client is counted as before and reported as
//!   [`Counted::Overflow`]. The price: clients behind one address (a NAT of
//!   many set-top boxes switching to one channel in the same second) count
//!   as one until the next measurement, at most one refresh.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::config::{ConfigError, ServerSpec, Topology, Tuning};
use crate::health::ServerState;
use crate::refusal::Refusal;

/// Bound on remembered round-robin cursors (one per stream name).
pub const MAX_CURSORS: usize = 100_000;

/// Bound on remembered (client address, stream) decisions: about 40 bytes
/// each. Only the clients of one refresh need to be remembered.
pub const MAX_RECENT: usize = 100_000;

/// Slack on the band comparison so that ratios that are equal on paper
/// (3/300 vs 1/100) are not split by float rounding.
const EPSILON: f64 = 1e-9;

/// Chooses a streamer for each viewer request. Single-threaded and pure:
/// the caller owns it (e.g. behind a mutex or in one task) and feeds it
/// observations and the current time.
#[derive(Debug)]
pub struct Balancer {
    topo: Topology,
    tuning: Tuning,
    /// Parallel to `topo.servers`.
    states: Vec<ServerState>,
    /// Stream name → servers announcing it, ascending index.
    carriers: HashMap<Arc<str>, Vec<usize>>,
    /// Stream name → server index chosen last for it.
    cursors: HashMap<String, usize>,
    /// Server chosen last for any stream; seeds cursors of new streams.
    last_pick: Option<usize>,
    /// Positions into the current candidate list; reused across calls.
    scratch: Vec<usize>,
    /// Live balancers sharing the servers, this one included (at least 1).
    balancers: u64,
    /// Keyed hash of (client address, stream) → where it was counted.
    recent: HashMap<u64, Recent>,
    /// The key of `recent`, random per process.
    recent_key: std::collections::hash_map::RandomState,
    /// A measurement (or reload) happened since `recent` was last swept of
    /// entries that no longer count.
    unswept: bool,
}

/// A client counted on a server since that server's last measurement
/// (while it holds: [`Balancer::still_counted`]).
#[derive(Debug, Clone, Copy)]
struct Recent {
    server: usize,
    /// The server's `sent_total` right after this viewer was counted.
    seq: u64,
}

/// How a routing decision was counted toward the chosen server's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// A new (client, stream) on that server: counted.
    New,
    /// The same client address and stream was already counted on that
    /// server since its last measurement: not counted again.
    Repeat,
    /// Counted, but not remembered: the memory of recent clients
    /// ([`MAX_RECENT`]) was full.
    Overflow,
    /// Refused: nothing counted.
    No,
}

/// Why a request was sent outside its zone (`zone_fallback on`): every
/// server of the client's zone was Down, or every Up one was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZoneFallback {
    /// No server of the zone is Up.
    Down,
    /// The zone's Up servers are all full.
    Full,
}

impl ZoneFallback {
    /// The metric label: `down` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneFallback::Down => "down",
            ZoneFallback::Full => "full",
        }
    }
}

/// The outcome of one routing request ([`Balancer::route_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// The chosen server's index, or why none may take the viewer.
    pub server: Result<usize, Refusal>,
    /// Set when the client's zone could not take it and its stream's
    /// unfiltered servers were tried instead, whatever they answered.
    pub fallback: Option<ZoneFallback>,
    /// Whether the viewer was counted toward the server's load.
    pub counted: Counted,
}

/// One server as the status API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerStatus {
    /// Server name.
    pub name: String,
    /// Eligible for viewers: healthy by probes and freshly measured.
    pub up: bool,
    /// Probe hysteresis verdict alone.
    pub healthy: bool,
    /// `measured + sent_since`, what capacity and ordering use.
    pub current: u64,
    /// Clients at the last load measurement.
    pub measured: u64,
    /// Viewers sent since the last load measurement.
    pub sent_since: u64,
    /// Configured maximum.
    pub max_clients: u64,
    /// `current / max_clients`; 1.0 when `max_clients` is 0.
    pub ratio: f64,
    /// Whether the server is preferred as monitored.
    pub monitoring: bool,
    /// Whole seconds since the last load measurement; `None` if never.
    pub last_measured_secs_ago: Option<u64>,
    /// Number of streams the server last announced.
    pub streams: usize,
    /// Takes no new viewers (drained or disabled through the admin API).
    pub closed: bool,
    /// Viewers this balancer may still send before the next measurement:
    /// its claim on the free room ([`crate::share::claim`]) less `sent_since`.
    pub claim_left: u64,
}

impl Balancer {
    /// Builds a balancer with every server Down and unmeasured.
    ///
    /// `channels` maps a channel (stream) name to the names of the servers
    /// that carry it, in preference order for round robin.
    pub fn new(
        servers: Vec<ServerSpec>,
        channels: Vec<(String, Vec<String>)>,
        tuning: Tuning,
    ) -> Result<Self, ConfigError> {
        let topo = Topology::build(servers, channels)?;
        let states = topo.servers.iter().map(|_| ServerState::default()).collect();
        Ok(Balancer {
            topo,
            tuning: tuning.sanitized(),
            states,
            carriers: HashMap::new(),
            cursors: HashMap::new(),
            last_pick: None,
            scratch: Vec::new(),
            balancers: 1,
            recent: HashMap::new(),
            recent_key: std::collections::hash_map::RandomState::new(),
            unswept: false,
        })
    }

    /// Replaces the configuration (reload). Servers whose name stays keep
    /// their health, measurements, sent counters, stream lists and
    /// round-robin turns; new servers start Down. Server indices may change:
    /// re-resolve them with [`Balancer::server_index`]. On error nothing
    /// changes.
    pub fn reconfigure(
        &mut self,
        servers: Vec<ServerSpec>,
        channels: Vec<(String, Vec<String>)>,
        tuning: Tuning,
    ) -> Result<(), ConfigError> {
        let topo = Topology::build(servers, channels)?;
        let mut old_states: Vec<Option<ServerState>> = self.states.drain(..).map(Some).collect();
        let mut old_to_new = vec![None; old_states.len()];
        let states = topo
            .servers
            .iter()
            .enumerate()
            .map(|(new, spec)| {
                let kept = self.topo.by_name.get(&spec.name).and_then(|&i| {
                    let state = old_states.get_mut(i)?.take()?;
                    Some((i, state))
                });
                match kept {
                    Some((i, state)) => {
                        old_to_new[i] = Some(new);
                        state
                    }
                    None => ServerState::default(),
                }
            })
            .collect();
        self.states = states;
        self.topo = topo;
        self.tuning = tuning.sanitized();
        self.cursors.retain(|_, server| match old_to_new.get(*server) {
            Some(&Some(new)) => {
                *server = new;
                true
            }
            _ => false,
        });
        self.last_pick = self.last_pick.and_then(|i| old_to_new.get(i).copied().flatten());
        self.recent.retain(|_, r| match old_to_new.get(r.server) {
            Some(&Some(new)) => {
                r.server = new;
                true
            }
            _ => false,
        });
        self.unswept = true;
        self.carriers.clear();
        for (i, state) in self.states.iter().enumerate() {
            for name in &state.streams {
                // States are visited in ascending index, so lists stay sorted.
                self.carriers.entry(name.clone()).or_default().push(i);
            }
        }
        Ok(())
    }

    /// Feeds one health probe result (`rise`/`fall` hysteresis). Takes no
    /// time: only consecutive results count. Unknown indices are ignored.
    pub fn observe_health(&mut self, server: usize, ok: bool) {
        if let Some(state) = self.states.get_mut(server) {
            state.probe(ok, &self.tuning);
        }
    }

    /// Records a successful load measurement (clients the server reports,
    /// e.g. `strom_server_clients`). Resets burst accounting.
    /// Unknown indices are ignored.
    pub fn observe_load(&mut self, server: usize, clients: u64, now: Instant) {
        if let Some(state) = self.states.get_mut(server) {
            state.measure(clients, now);
            self.unswept = true;
        }
    }

    /// Records a load measurement from a poll that began after `mark`, a
    /// value [`Balancer::sent_mark`] gave: the viewers sent since the mark
    /// keep counting, as the measurement may not include them yet.
    /// Unknown indices are ignored.
    pub fn observe_load_since(&mut self, server: usize, clients: u64, mark: u64, now: Instant) {
        if let Some(state) = self.states.get_mut(server) {
            state.measure_since(clients, mark, now);
            self.unswept = true;
        }
    }

    /// How many viewers were ever sent to server `i`: a mark to pass to
    /// [`Balancer::observe_load_since`].
    pub fn sent_mark(&self, i: usize) -> Option<u64> {
        self.states.get(i).map(|s| s.sent_total)
    }

    /// Sets how many balancers share the servers, this one included
    /// (0 counts as 1): each claims only its share of the free room.
    pub fn set_balancers(&mut self, n: u64) {
        self.balancers = n.max(1);
    }

    /// Live balancers sharing the servers, this one included.
    pub fn balancers(&self) -> u64 {
        self.balancers
    }

    /// Replaces the list of streams the server announces. Only streams
    /// without a channel entry are looked up here. Unknown indices are ignored.
    pub fn observe_streams<I, S>(&mut self, server: usize, streams: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let Some(state) = self.states.get_mut(server) else {
            return;
        };
        let old = std::mem::take(&mut state.streams);
        let mut new = std::collections::HashSet::with_capacity(old.len());
        for name in streams {
            let name = name.as_ref();
            if new.contains(name) {
                continue;
            }
            let shared = match old.get(name) {
                Some(kept) => Arc::clone(kept),
                None => {
                    let added: Arc<str> = Arc::from(name);
                    let list = self.carriers.entry(Arc::clone(&added)).or_default();
                    if let Err(at) = list.binary_search(&server) {
                        list.insert(at, server);
                    }
                    added
                }
            };
            new.insert(shared);
        }
        for gone in old.iter().filter(|name| !new.contains(*name)) {
            if let Some(list) = self.carriers.get_mut(gone) {
                list.retain(|&i| i != server);
                if list.is_empty() {
                    self.carriers.remove(gone);
                }
            }
        }
        state.streams = new;
    }

    /// Picks the server for one viewer of `stream` from `ip` (and its
    /// `country`, if known) and counts the viewer against that server.
    /// IPv4-mapped IPv6 addresses are matched as IPv4.
    pub fn route(&mut self, stream: &str, ip: IpAddr, country: Option<&str>, now: Instant) -> Result<usize, Refusal> {
        self.route_with(stream, ip, country, now).server
    }

    /// [`Balancer::route`], also saying whether the request left its zone
    /// (`zone_fallback`) and how it was counted, so that the caller can
    /// count both.
    pub fn route_with(&mut self, stream: &str, ip: IpAddr, country: Option<&str>, now: Instant) -> Routed {
        let ip = ip.to_canonical();
        let key = std::hash::BuildHasher::hash_one(&self.recent_key, (ip, stream));
        let sticky = self
            .recent
            .get(&key)
            .filter(|r| self.still_counted(r))
            .map(|r| r.server);
        let mut scratch = std::mem::take(&mut self.scratch);
        let (picked, fallback) = self.choose(stream, ip, country, now, &mut scratch, sticky);
        self.scratch = scratch;
        let server = match picked {
            Ok(server) => server,
            Err(refusal) => {
                return Routed {
                    server: Err(refusal),
                    fallback,
                    counted: Counted::No,
                }
            }
        };
        if sticky == Some(server) {
            return Routed {
                server: Ok(server),
                fallback,
                counted: Counted::Repeat,
            };
        }

        let mut seq = 0;
        if let Some(state) = self.states.get_mut(server) {
            state.sent_one();
            seq = state.sent_total;
        }
        let counted = self.remember(key, Recent { server, seq });
        self.last_pick = Some(server);
        if let Some(cursor) = self.cursors.get_mut(stream) {
            *cursor = server;
        } else {
            if self.cursors.len() >= MAX_CURSORS {
                self.cursors.clear();
            }
            self.cursors.insert(stream.to_owned(), server);
        }
        Routed {
            server: Ok(server),
            fallback,
            counted,
        }
    }

    /// Whether the viewer `r` stands for is still in its server's
    /// `sent_since`: among the last `sent_since` sent there.
    fn still_counted(&self, r: &Recent) -> bool {
        self.states
            .get(r.server)
            .is_some_and(|s| r.seq > s.sent_total.saturating_sub(s.sent_since))
    }

    /// Remembers where client `key` was counted; when the memory is full
    /// even after dropping what measurements ended, it is not remembered.
    fn remember(&mut self, key: u64, r: Recent) -> Counted {
        if self.recent.len() >= MAX_RECENT && !self.recent.contains_key(&key) && self.unswept {
            self.unswept = false;
            let states = &self.states;
            self.recent.retain(|_, r| {
                states
                    .get(r.server)
                    .is_some_and(|s| r.seq > s.sent_total.saturating_sub(s.sent_since))
            });
        }
        if self.recent.len() >= MAX_RECENT && !self.recent.contains_key(&key) {
            return Counted::Overflow;
        }
        self.recent.insert(key, r);
        Counted::New
    }

    /// Clients remembered as counted (at most [`MAX_RECENT`]; some may no
    /// longer count until the next sweep).
    pub fn remembered(&self) -> usize {
        self.recent.len()
    }

    /// The decision itself, without side effects. `eligible` holds positions
    /// into the candidate list and is narrowed step by step.
    /// `sticky` is the server this client was counted on since its last
    /// measurement, if any.
    fn choose(
        &self,
        stream: &str,
        ip: IpAddr,
        country: Option<&str>,
        now: Instant,
        eligible: &mut Vec<usize>,
        sticky: Option<usize>,
    ) -> (Result<usize, Refusal>, Option<ZoneFallback>) {
        let candidates: &[usize] = match self.topo.channels.get(stream) {
            Some(list) => list,
            None => self.carriers.get(stream).map_or(&[], Vec::as_slice),
        };
        if candidates.is_empty() {
            return (Err(Refusal::NothingToPlay), None);
        }
        let spec = |pos: usize| &self.topo.servers[candidates[pos]];

        // Zone: servers whose filter names the client; else the unfiltered.
        let zoned = candidates
            .iter()
            .any(|&s| self.topo.servers[s].filter_matches(ip, country));
        eligible.clear();
        eligible.extend((0..candidates.len()).filter(|&pos| {
            let spec = spec(pos);
            if zoned {
                spec.filter_matches(ip, country)
            } else {
                !spec.is_filtered()
            }
        }));
        if eligible.is_empty() {
            return (Err(Refusal::NotAvailableForZone), None);
        }
        let picked = self.pick(stream, candidates, now, eligible, sticky);
        let reason = match picked {
            Err(Refusal::NothingToPlay) => ZoneFallback::Down,
            Err(Refusal::Limit) => ZoneFallback::Full,
            _ => return (picked, None),
        };
        if !(zoned && self.tuning.zone_fallback) {
            return (picked, None);
        }
        // The client's zone cannot take it: its stream's unfiltered servers may.
        eligible.clear();
        eligible.extend((0..candidates.len()).filter(|&pos| !spec(pos).is_filtered()));
        if eligible.is_empty() {
            return (picked, None);
        }
        (self.pick(stream, candidates, now, eligible, sticky), Some(reason))
    }

    /// Health, capacity and order among `eligible` (positions into
    /// `candidates`, narrowed in place). The `sticky` server, when still
    /// eligible and within its room counting the client it already holds,
    /// is kept.
    fn pick(
        &self,
        stream: &str,
        candidates: &[usize],
        now: Instant,
        eligible: &mut Vec<usize>,
        sticky: Option<usize>,
    ) -> Result<usize, Refusal> {
        let spec = |pos: usize| &self.topo.servers[candidates[pos]];
        let state = |pos: usize| &self.states[candidates[pos]];
        eligible.retain(|&pos| state(pos).is_up(now, &self.tuning) && !spec(pos).closed);
        if eligible.is_empty() {
            return Err(Refusal::NothingToPlay);
        }
        if let Some(pos) = sticky.and_then(|s| eligible.iter().copied().find(|&pos| candidates[pos] == s)) {
            let s = state(pos);
            if crate::share::holds_room(spec(pos).max_clients, s.measured, s.sent_since, self.balancers) {
                return Ok(candidates[pos]);
            }
        }

        eligible.retain(|&pos| {
            let s = state(pos);
            crate::share::has_room(spec(pos).max_clients, s.measured, s.sent_since, self.balancers)
        });
        if eligible.is_empty() {
            return Err(Refusal::Limit);
        }

        // Order: best monitoring class, then ratios within band of the lowest.
        let monitored = eligible.iter().any(|&pos| spec(pos).monitoring);
        let ratio = |pos: usize| ratio(state(pos).current(), spec(pos).max_clients);
        let lowest = eligible
            .iter()
            .filter(|&&pos| spec(pos).monitoring == monitored)
            .map(|&pos| ratio(pos))
            .fold(f64::INFINITY, f64::min);
        let ceiling = lowest + self.tuning.band + EPSILON;
        let mut equals = eligible
            .iter()
            .copied()
            .filter(|&pos| spec(pos).monitoring == monitored && ratio(pos) <= ceiling);

        // Round robin: first equal after the cursor in candidate order, else
        // the first equal (wrap around).
        let cursor = self.cursors.get(stream).copied().or(self.last_pick);
        let after = cursor.and_then(|c| candidates.iter().position(|&s| s == c));
        let first = equals.next().ok_or(Refusal::Limit)?;
        let pos = match after {
            Some(after) if first <= after => equals.find(|&pos| pos > after).unwrap_or(first),
            _ => first,
        };
        Ok(candidates[pos])
    }

    /// Snapshot of every server for the status API, in configured order.
    pub fn status(&self, now: Instant) -> Vec<ServerStatus> {
        self.topo
            .servers
            .iter()
            .zip(&self.states)
            .map(|(spec, state)| ServerStatus {
                name: spec.name.clone(),
                up: state.is_up(now, &self.tuning),
                healthy: state.healthy,
                current: state.current(),
                measured: state.measured,
                sent_since: state.sent_since,
                max_clients: spec.max_clients,
                ratio: ratio(state.current(), spec.max_clients),
                monitoring: spec.monitoring,
                last_measured_secs_ago: state.measured_at.map(|at| now.saturating_duration_since(at).as_secs()),
                streams: state.streams.len(),
                closed: spec.closed,
                claim_left: crate::share::claim(spec.max_clients, state.measured, self.balancers)
                    .saturating_sub(state.sent_since),
            })
            .collect()
    }

    /// Name of server `i`, as configured.
    pub fn server_name(&self, i: usize) -> Option<&str> {
        self.topo.servers.get(i).map(|s| s.name.as_str())
    }

    /// Index of the server with this name (e.g. a metric's `instance` label).
    pub fn server_index(&self, name: &str) -> Option<usize> {
        self.topo.by_name.get(name).copied()
    }

    /// Number of configured servers; indices are `0..len()`.
    pub fn len(&self) -> usize {
        self.topo.servers.len()
    }

    /// Whether no server is configured.
    pub fn is_empty(&self) -> bool {
        self.topo.servers.is_empty()
    }
}

/// Load ratio; a server with no capacity counts as full.
fn ratio(current: u64, max: u64) -> f64 {
    if max == 0 {
        1.0
    } else {
        current as f64 / max as f64
    }
}

#[cfg(test)]
mod tests;

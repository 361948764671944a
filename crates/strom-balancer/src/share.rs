//! Several balancers in front of one farm: each claims only its share of a
//! server's free room between two load measurements.
//!
//! Every balancer reads each server's client count itself and counts the
//! viewers it sent there since (burst accounting). It cannot see what the
//! others sent, so with `N` live balancers each may send at most
//! [`claim`]`(max, measured, N)` = ⌈(max − measured) / N⌉ viewers to a server
//! until its next measurement. The claims of one round add up to the room
//! plus at most `N − 1` (the rounding), whoever sends the viewers.
//!
//! That holds when the balancers measure at the same moments and nothing
//! is on its way. So measurements follow the wall clock: polls start at
//! multiples of `refresh` ([`until_tick`]), which machines whose clocks agree
//! (NTP) share. The viewers sent since a little before the poll
//! ([`mark_lead`]) are counted again after it, since the measurement may not
//! include them yet (a player still following its redirect, or another
//! balancer's clock slightly ahead).
//!
//! Which balancers are live is decided by probing the others' `/healthz`
//! ([`Peers`]): a peer counts until `fall` probes in a row fail, and counts
//! again after one success. A success is an answer carrying a balancer's
//! instance id other than this balancer's own: a peer URL that reaches this
//! balancer itself (one config listing every balancer), or a server that is
//! no balancer, never counts. A balancer therefore starts by assuming every
//! peer is live, and a dead one stops counting only after its last viewers
//! are in a measurement.
//!
//! Everything here is pure: time comes in as arguments.

use std::time::Duration;

/// Most viewers this balancer may send to a server between two of its
/// measurements, when `balancers` balancers (itself included, at least 1)
/// share the server: ⌈(max − measured) / balancers⌉. With one balancer it
/// is the whole free room.
pub fn claim(max: u64, measured: u64, balancers: u64) -> u64 {
    max.saturating_sub(measured).div_ceil(balancers.max(1))
}

/// Whether one more viewer may go to a server: it has room by the
/// estimate (`measured + sent_since < max`), and this balancer has not
/// used up its claim since the measurement.
pub(crate) fn has_room(max: u64, measured: u64, sent_since: u64, balancers: u64) -> bool {
    measured.saturating_add(sent_since) < max && sent_since < claim(max, measured, balancers)
}

/// Whether a server still holds a viewer already counted in `sent_since`
/// (a repeat): counting it, the estimate is within `max` and this
/// balancer within its claim.
pub(crate) fn holds_room(max: u64, measured: u64, sent_since: u64, balancers: u64) -> bool {
    measured.saturating_add(sent_since) <= max && sent_since <= claim(max, measured, balancers)
}

/// Time from `since_epoch` (wall clock, since the Unix epoch) to the next
/// multiple of `period`; a whole period when `since_epoch` is one. A zero
/// period is taken as 1 ms.
pub fn until_tick(since_epoch: Duration, period: Duration) -> Duration {
    let period = period.as_nanos().max(1_000_000);
    let into = since_epoch.as_nanos() % period;
    Duration::from_nanos(u64::try_from(period - into).unwrap_or(u64::MAX))
}

/// How long before each poll the viewers sent so far are marked: those sent
/// after the mark count against the next round too (a fifth of `refresh`,
/// at most 200 ms).
pub fn mark_lead(refresh: Duration) -> Duration {
    (refresh / 5).min(Duration::from_millis(200))
}

/// What one probe of a peer's `/healthz` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// No answer, or not 200, in time.
    Failed,
    /// A balancer with another instance id.
    Balancer,
    /// This balancer itself (its own instance id): its URL is in its own
    /// `peers` list, as when every balancer has the same config.
    Itself,
    /// A 200 without a balancer's instance id: some other server.
    NotBalancer,
}

/// A peer as the status API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Not probed yet: counted as live.
    Unknown,
    /// Another balancer, counted.
    Live,
    /// Another balancer whose last `fall` probes failed: not counted.
    Down,
    /// This balancer itself: never counted.
    Itself,
    /// Answers, but is no balancer: not counted.
    NotBalancer,
}

impl PeerState {
    /// The status API's word: `unknown`, `live`, `down`, `self`, `not_balancer`.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Unknown => "unknown",
            PeerState::Live => "live",
            PeerState::Down => "down",
            PeerState::Itself => "self",
            PeerState::NotBalancer => "not_balancer",
        }
    }

    /// Whether the peer counts among the balancers sharing the servers.
    pub fn counts(self) -> bool {
        matches!(self, PeerState::Unknown | PeerState::Live)
    }
}

/// Liveness of the other balancers (`peers`), from probes.
///
/// A peer counts from the start (until probed) and while it answers as a
/// balancer, until `fall` probes in a row fail. One answer that says it is
/// this balancer itself, or a server that is no balancer, stops it counting
/// at once; an answer as another balancer counts it again.
#[derive(Debug, Clone)]
pub struct Peers {
    fall: u32,
    /// Per peer: consecutive failed probes, and what the last answer was.
    peers: Vec<(u32, PeerState)>,
}

impl Peers {
    /// `n` peers, all counted live until probes say otherwise; a peer stops
    /// counting after `fall` (at least 1) failed probes in a row.
    pub fn new(n: usize, fall: u32) -> Self {
        Peers {
            fall: fall.max(1),
            peers: vec![(0, PeerState::Unknown); n],
        }
    }

    /// Feeds one probe of peer `i` that answered as a balancer (`ok`) or
    /// failed; unknown indices are ignored.
    pub fn observe(&mut self, i: usize, ok: bool) {
        self.observe_probe(i, if ok { Probe::Balancer } else { Probe::Failed });
    }

    /// Feeds one probe of peer `i`; unknown indices are ignored.
    pub fn observe_probe(&mut self, i: usize, probe: Probe) {
        let fall = self.fall;
        let Some((fails, state)) = self.peers.get_mut(i) else {
            return;
        };
        match probe {
            Probe::Failed => {
                *fails = fails.saturating_add(1);
                if *fails >= fall && state.counts() {
                    *state = PeerState::Down;
                }
            }
            Probe::Balancer => (*fails, *state) = (0, PeerState::Live),
            Probe::Itself => (*fails, *state) = (0, PeerState::Itself),
            Probe::NotBalancer => (*fails, *state) = (0, PeerState::NotBalancer),
        }
    }

    /// What is known of peer `i` (`Down` for an unknown index).
    pub fn state(&self, i: usize) -> PeerState {
        self.peers.get(i).map_or(PeerState::Down, |p| p.1)
    }

    /// Whether peer `i` counts as live.
    pub fn is_live(&self, i: usize) -> bool {
        self.state(i).counts()
    }

    /// Live balancers sharing the farm, this one included.
    pub fn balancers(&self) -> u64 {
        1 + self.peers.iter().filter(|p| p.1.counts()).count() as u64
    }
}

#[cfg(test)]
mod tests;

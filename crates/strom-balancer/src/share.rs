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
//! again after one success. A balancer therefore starts by assuming every
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

/// Liveness of the other balancers (`peers`), from probes.
#[derive(Debug, Clone)]
pub struct Peers {
    fall: u32,
    /// Per peer: consecutive failed probes.
    fails: Vec<u32>,
}

impl Peers {
    /// `n` peers, all counted live until probes say otherwise; a peer stops
    /// counting after `fall` (at least 1) failed probes in a row.
    pub fn new(n: usize, fall: u32) -> Self {
        Peers {
            fall: fall.max(1),
            fails: vec![0; n],
        }
    }

    /// Feeds one probe of peer `i`; unknown indices are ignored.
    pub fn observe(&mut self, i: usize, ok: bool) {
        if let Some(f) = self.fails.get_mut(i) {
            *f = if ok { 0 } else { f.saturating_add(1) };
        }
    }

    /// Whether peer `i` counts as live.
    pub fn is_live(&self, i: usize) -> bool {
        self.fails.get(i).is_some_and(|&f| f < self.fall)
    }

    /// Live balancers sharing the farm, this one included.
    pub fn balancers(&self) -> u64 {
        1 + self.fails.iter().filter(|&&f| f < self.fall).count() as u64
    }
}

#[cfg(test)]
mod tests;

//! What the balancer has observed about one server: probe hysteresis, the
//! last load measurement, viewers sent since then, and announced streams.
//!
//! Invariants: a server starts Down and unmeasured; it is Up only while the
//! probe hysteresis says healthy *and* a load measurement no older than
//! `stale_after` exists; `sent_since` counts routed viewers since the last
//! measurement and is reset by the next one.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Tuning;

/// Observed state of one server; survives config reloads by name.
#[derive(Debug, Default)]
pub(crate) struct ServerState {
    /// Probe hysteresis verdict.
    pub(crate) healthy: bool,
    ok_streak: u32,
    fail_streak: u32,
    /// Clients the server itself reported at `measured_at`.
    pub(crate) measured: u64,
    pub(crate) measured_at: Option<Instant>,
    /// Viewers this balancer sent there since `measured_at` (burst accounting).
    pub(crate) sent_since: u64,
    /// Viewers this balancer ever sent there; marks taken before a poll
    /// ([`ServerState::measure_since`]) are values of it.
    pub(crate) sent_total: u64,
    /// Last announced stream list.
    pub(crate) streams: HashSet<Arc<str>>,
}

impl ServerState {
    /// Feeds one probe result through the rise/fall hysteresis.
    pub(crate) fn probe(&mut self, ok: bool, tuning: &Tuning) {
        if ok {
            self.fail_streak = 0;
            self.ok_streak = self.ok_streak.saturating_add(1);
            if self.ok_streak >= tuning.rise {
                self.healthy = true;
            }
        } else {
            self.ok_streak = 0;
            self.fail_streak = self.fail_streak.saturating_add(1);
            if self.fail_streak >= tuning.fall {
                self.healthy = false;
            }
        }
    }

    /// Records a successful load measurement; it already includes the viewers
    /// sent before it, so burst accounting starts over.
    pub(crate) fn measure(&mut self, clients: u64, now: Instant) {
        self.measured = clients;
        self.measured_at = Some(now);
        self.sent_since = 0;
    }

    /// Records a load measurement that may miss the viewers sent since
    /// `mark` (a past value of `sent_total`): those keep counting as sent,
    /// so they are not forgotten if they had not reached the server yet.
    pub(crate) fn measure_since(&mut self, clients: u64, mark: u64, now: Instant) {
        let after_mark = self.sent_total.saturating_sub(mark).min(self.sent_since);
        self.measure(clients, now);
        self.sent_since = after_mark;
    }

    /// Counts one viewer sent to the server.
    pub(crate) fn sent_one(&mut self) {
        self.sent_since = self.sent_since.saturating_add(1);
        self.sent_total = self.sent_total.saturating_add(1);
    }

    /// Whether the last measurement exists and is not older than
    /// `stale_after`. A `now` earlier than the measurement counts as fresh.
    pub(crate) fn fresh(&self, now: Instant, tuning: &Tuning) -> bool {
        self.measured_at
            .is_some_and(|at| now.saturating_duration_since(at) <= tuning.stale_after)
    }

    /// Up = healthy by probes and measured recently.
    pub(crate) fn is_up(&self, now: Instant, tuning: &Tuning) -> bool {
        self.healthy && self.fresh(now, tuning)
    }

    /// Measured clients plus viewers sent since.
    pub(crate) fn current(&self) -> u64 {
        self.measured.saturating_add(self.sent_since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn secs(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_secs(n)
    }

    #[test]
    fn starts_down_and_needs_rise_successes_and_data() {
        let tuning = Tuning::default();
        let t0 = Instant::now();
        let mut s = ServerState::default();
        assert!(!s.is_up(t0, &tuning));
        s.probe(true, &tuning);
        s.measure(0, t0);
        assert!(!s.is_up(t0, &tuning), "one success is not enough");
        s.probe(true, &tuning);
        assert!(s.is_up(t0, &tuning));
    }

    #[test]
    fn healthy_without_data_is_down() {
        let tuning = Tuning::default();
        let mut s = ServerState::default();
        s.probe(true, &tuning);
        s.probe(true, &tuning);
        assert!(s.healthy);
        assert!(!s.is_up(Instant::now(), &tuning));
    }

    #[test]
    fn hysteresis_both_ways() {
        let tuning = Tuning::default();
        let t0 = Instant::now();
        let mut s = ServerState::default();
        s.measure(0, t0);
        s.probe(true, &tuning);
        s.probe(true, &tuning);
        s.probe(false, &tuning);
        assert!(s.is_up(t0, &tuning), "one failure keeps Up");
        s.probe(true, &tuning);
        s.probe(false, &tuning);
        assert!(s.is_up(t0, &tuning), "failures must be consecutive");
        s.probe(false, &tuning);
        assert!(!s.is_up(t0, &tuning), "two failures make Down");
        s.probe(true, &tuning);
        assert!(!s.is_up(t0, &tuning), "one success keeps Down");
        s.probe(false, &tuning);
        s.probe(true, &tuning);
        assert!(!s.is_up(t0, &tuning), "successes must be consecutive");
        s.probe(true, &tuning);
        assert!(s.is_up(t0, &tuning), "two successes make Up");
    }

    #[test]
    fn stale_measurement_is_down_until_remeasured() {
        let tuning = Tuning::default(); // stale_after 30 s
        let t0 = Instant::now();
        let mut s = ServerState::default();
        s.probe(true, &tuning);
        s.probe(true, &tuning);
        s.measure(5, t0);
        assert!(s.is_up(secs(t0, 30), &tuning));
        assert!(!s.is_up(secs(t0, 31), &tuning));
        s.measure(5, secs(t0, 40));
        assert!(s.is_up(secs(t0, 41), &tuning));
        // A clock reading from before the measurement is not "stale".
        assert!(s.is_up(t0, &tuning));
    }

    #[test]
    fn viewers_sent_after_the_mark_survive_the_measurement() {
        let t0 = Instant::now();
        let mut s = ServerState::default();
        s.measure(0, t0);
        for _ in 0..5 {
            s.sent_one();
        }
        let mark = s.sent_total;
        s.sent_one();
        s.sent_one();
        s.measure_since(4, mark, t0);
        assert_eq!((s.measured, s.sent_since, s.current()), (4, 2, 6));
        // A mark from before the last measurement counts no more than was
        // counted since that measurement.
        s.sent_one();
        s.measure_since(7, 0, t0);
        assert_eq!((s.sent_since, s.sent_total), (3, 8));
    }

    #[test]
    fn measurement_resets_burst_accounting() {
        let t0 = Instant::now();
        let mut s = ServerState::default();
        s.measure(10, t0);
        s.sent_since = 7;
        assert_eq!(s.current(), 17);
        s.measure(12, t0);
        assert_eq!((s.current(), s.sent_since), (12, 0));
    }
}

//! Input failover as a pure state machine: which input should feed a stream.
//!
//! Inputs are a priority list (index 0 first); the backup is index `n`.
//! Rules:
//! - The active input stays while it delivered a frame within `source_timeout`.
//! - When it goes silent, the best (lowest index) input that delivered a frame
//!   recently takes over; with none, the backup plays.
//! - A higher-priority input that has delivered frames without a gap for
//!   `return_after` takes back over (the caller switches at its next keyframe).
//! - At startup, lower-priority inputs wait `startup_grace` for input 0 so a
//!   stream does not start on a secondary and switch back seconds later.
//!
//! Time is passed in as `now`, so tests run on a virtual clock.

use std::time::{Duration, Instant};

/// Timing of failover decisions.
#[derive(Clone, Copy, Debug)]
pub struct FailoverConfig {
    pub source_timeout: Duration,
    pub return_after: Duration,
    pub startup_grace: Duration,
    /// A frame gap longer than this restarts an input's health streak.
    pub healthy_gap: Duration,
}

impl FailoverConfig {
    pub fn new(source_timeout: Duration) -> Self {
        FailoverConfig {
            source_timeout,
            return_after: Duration::from_secs(3),
            startup_grace: Duration::from_millis(1500),
            healthy_gap: Duration::from_secs(1),
        }
    }
}

/// What should feed the stream now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Keep waiting: nothing is available yet.
    Nothing,
    /// Input `i` (never the backup index).
    Input(usize),
    /// Every input is down: play the backup.
    Backup,
}

/// Failover state of one stream.
#[derive(Debug)]
pub struct Failover {
    cfg: FailoverConfig,
    last_frame: Vec<Option<Instant>>,
    healthy_since: Vec<Option<Instant>>,
    active: Option<usize>,
    started: Instant,
}

impl Failover {
    /// `n` regular inputs; the backup is index `n`.
    pub fn new(n: usize, cfg: FailoverConfig, now: Instant) -> Self {
        Failover {
            cfg,
            last_frame: vec![None; n],
            healthy_since: vec![None; n],
            active: None,
            started: now,
        }
    }

    /// Number of regular inputs (the backup's index).
    pub fn backup_index(&self) -> usize {
        self.last_frame.len()
    }

    /// Records that input `i` delivered a frame.
    pub fn frame(&mut self, i: usize, now: Instant) {
        let Some(last) = self.last_frame.get_mut(i) else {
            return;
        };
        let gap = last.is_none_or(|t| now.saturating_duration_since(t) > self.cfg.healthy_gap);
        if gap {
            self.healthy_since[i] = Some(now);
        }
        *last = Some(now);
    }

    /// The caller switched the output to `i` (or to the backup index).
    pub fn switched(&mut self, i: usize) {
        self.active = Some(i);
    }

    /// Input `i` delivered a frame within `source_timeout`.
    pub fn alive(&self, i: usize, now: Instant) -> bool {
        i < self.last_frame.len() && self.delivered_within(i, now, self.cfg.source_timeout)
    }

    fn delivered_within(&self, i: usize, now: Instant, d: Duration) -> bool {
        self.last_frame[i].is_some_and(|t| now.saturating_duration_since(t) <= d)
    }

    fn healthy(&self, i: usize, now: Instant) -> bool {
        self.delivered_within(i, now, self.cfg.healthy_gap)
            && self.healthy_since[i].is_some_and(|t| now.saturating_duration_since(t) >= self.cfg.return_after)
    }

    /// What should feed the output now.
    pub fn want(&self, now: Instant) -> Want {
        let n = self.last_frame.len();
        let fresh = |i: usize| self.delivered_within(i, now, self.cfg.healthy_gap);
        match self.active {
            Some(a) if a < n && self.delivered_within(a, now, self.cfg.source_timeout) => {
                match (0..a).find(|&j| self.healthy(j, now)) {
                    Some(j) => Want::Input(j),
                    None => Want::Input(a),
                }
            }
            _ => {
                let in_grace =
                    self.active.is_none() && now.saturating_duration_since(self.started) < self.cfg.startup_grace;
                if in_grace {
                    return if n > 0 && fresh(0) {
                        Want::Input(0)
                    } else {
                        Want::Nothing
                    };
                }
                if let Some(j) = (0..n).find(|&j| fresh(j)) {
                    return Want::Input(j);
                }
                let waiting_first =
                    self.active.is_none() && now.saturating_duration_since(self.started) < self.cfg.source_timeout;
                if waiting_first {
                    Want::Nothing
                } else {
                    Want::Backup
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn cfg() -> FailoverConfig {
        FailoverConfig::new(Duration::from_secs(5))
    }

    /// Feeds frames every 40 ms on `inputs` from `from` for `dur`.
    fn run(f: &mut Failover, inputs: &[usize], from: Instant, dur: Duration) -> Instant {
        let mut t = from;
        while t < from + dur {
            for &i in inputs {
                f.frame(i, t);
            }
            t += 40 * MS;
        }
        t
    }

    #[test]
    fn starts_on_primary_even_if_secondary_is_first() {
        let t0 = Instant::now();
        let mut f = Failover::new(2, cfg(), t0);
        f.frame(1, t0 + 10 * MS);
        assert_eq!(f.want(t0 + 20 * MS), Want::Nothing, "grace for input 0");
        f.frame(0, t0 + 300 * MS);
        assert_eq!(f.want(t0 + 300 * MS), Want::Input(0));
    }

    #[test]
    fn starts_on_secondary_after_grace() {
        let t0 = Instant::now();
        let mut f = Failover::new(2, cfg(), t0);
        let t = run(&mut f, &[1], t0, Duration::from_secs(2));
        assert_eq!(f.want(t), Want::Input(1));
    }

    #[test]
    fn fails_over_after_source_timeout_not_before() {
        let t0 = Instant::now();
        let mut f = Failover::new(2, cfg(), t0);
        let t = run(&mut f, &[0, 1], t0, Duration::from_secs(2));
        f.switched(0);
        // Primary stops at t; secondary keeps going.
        let t_stop = t;
        let t = run(&mut f, &[1], t, Duration::from_millis(4900));
        assert_eq!(f.want(t), Want::Input(0), "still within source_timeout");
        let t = run(&mut f, &[1], t, Duration::from_millis(200));
        assert_eq!(f.want(t), Want::Input(1));
        assert!(t - t_stop <= Duration::from_millis(5200));
    }

    #[test]
    fn backup_when_everything_is_down_and_back_when_an_input_returns() {
        let t0 = Instant::now();
        let mut f = Failover::new(2, cfg(), t0);
        let t = run(&mut f, &[0], t0, Duration::from_secs(2));
        f.switched(0);
        let t = t + Duration::from_secs(6);
        assert_eq!(f.want(t), Want::Backup);
        f.switched(f.backup_index());
        assert_eq!(f.want(t + 100 * MS), Want::Backup);
        f.frame(1, t + 200 * MS);
        assert_eq!(
            f.want(t + 200 * MS),
            Want::Input(1),
            "any fresh input beats the backup at once"
        );
    }

    #[test]
    fn nothing_configured_ever_delivers_means_backup_after_timeout() {
        let t0 = Instant::now();
        let f = Failover::new(1, cfg(), t0);
        assert_eq!(f.want(t0 + Duration::from_secs(4)), Want::Nothing);
        assert_eq!(f.want(t0 + Duration::from_secs(6)), Want::Backup);
    }

    #[test]
    fn returns_to_primary_after_it_is_healthy_for_a_while() {
        let t0 = Instant::now();
        let mut f = Failover::new(2, cfg(), t0);
        let t = run(&mut f, &[1], t0, Duration::from_secs(2));
        f.switched(1);
        let t = run(&mut f, &[0, 1], t, Duration::from_secs(2));
        assert_eq!(f.want(t), Want::Input(1), "primary healthy for only 2 s");
        let t = run(&mut f, &[0, 1], t, Duration::from_millis(1100));
        assert_eq!(f.want(t), Want::Input(0));
    }

    #[test]
    fn flapping_primary_never_becomes_healthy() {
        let t0 = Instant::now();
        let mut f = Failover::new(2, cfg(), t0);
        let mut t = run(&mut f, &[1], t0, Duration::from_secs(2));
        f.switched(1);
        for _ in 0..10 {
            t = run(&mut f, &[0, 1], t, Duration::from_secs(2));
            t = run(&mut f, &[1], t, Duration::from_millis(1500));
            assert_eq!(f.want(t), Want::Input(1));
        }
    }
}

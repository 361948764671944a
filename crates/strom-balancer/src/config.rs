//! Static balancer configuration: server specs, channel lists and tuning,
//! validated into the index-based [`Topology`] the hot path reads.
//!
//! Invariants of a built `Topology`: server names are unique; every channel
//! name is unique and lists only known servers, each at most once, in the
//! configured order; countries are stored trimmed and ASCII-uppercased.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

/// One streamer the balancer may send viewers to.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSpec {
    /// Unique name; matches the `instance` label of the streamer's metrics.
    pub name: String,
    /// The server is full when current clients reach this number.
    pub max_clients: u64,
    /// Monitored servers are preferred over unmonitored ones.
    pub monitoring: bool,
    /// If non-empty, the server serves clients from these networks.
    pub networks: Vec<IpNet>,
    /// If non-empty, the server serves clients from these countries
    /// (ISO codes, compared case-insensitively).
    pub countries: Vec<String>,
    /// Takes no new viewers (drained or disabled through the admin API);
    /// the viewers already there stay. Routing treats it as Down.
    pub closed: bool,
}

impl ServerSpec {
    /// A server with no zone filter and monitoring on.
    pub fn new(name: impl Into<String>, max_clients: u64) -> Self {
        ServerSpec {
            name: name.into(),
            max_clients,
            monitoring: true,
            networks: Vec::new(),
            countries: Vec::new(),
            closed: false,
        }
    }

    /// Whether the server restricts itself to some networks or countries.
    pub fn is_filtered(&self) -> bool {
        !self.networks.is_empty() || !self.countries.is_empty()
    }

    /// Whether the server's filter names this client. A server without a
    /// filter matches nobody here; it is the fallback for everyone.
    pub(crate) fn filter_matches(&self, ip: IpAddr, country: Option<&str>) -> bool {
        self.networks.iter().any(|net| net.contains(&ip))
            || country.is_some_and(|c| {
                let c = c.trim();
                self.countries.iter().any(|own| own.eq_ignore_ascii_case(c))
            })
    }
}

/// Knobs of health hysteresis and ordering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// Consecutive successful probes that bring a Down server Up (min 1).
    pub rise: u32,
    /// Consecutive failed probes that bring an Up server Down (min 1).
    pub fall: u32,
    /// A server whose last load measurement is older than this is Down.
    pub stale_after: Duration,
    /// Ratios within this distance of the lowest one count as equal and
    /// take turns; 0.01 is one percentage point. Negative or NaN means 0.
    pub band: f64,
    /// When every server of the client's zone is Down or full, use the
    /// stream's unfiltered servers (no networks, no countries) instead of
    /// refusing (`zone_fallback on`).
    pub zone_fallback: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            rise: 2,
            fall: 2,
            stale_after: Duration::from_secs(30),
            band: 0.01,
            zone_fallback: false,
        }
    }
}

impl Tuning {
    /// Clamps values that would make the rules meaningless.
    pub(crate) fn sanitized(self) -> Self {
        Tuning {
            rise: self.rise.max(1),
            fall: self.fall.max(1),
            stale_after: self.stale_after,
            band: if self.band.is_finite() && self.band > 0.0 {
                self.band
            } else {
                0.0
            },
            zone_fallback: self.zone_fallback,
        }
    }
}

/// The configuration is inconsistent; nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Two servers share a name, so their state could not be told apart.
    #[error("server {0:?} is defined twice")]
    DuplicateServer(String),
    /// Two channel entries share a name.
    #[error("channel {0:?} is defined twice")]
    DuplicateChannel(String),
    /// A channel lists a server that is not defined.
    #[error("channel {channel:?} lists unknown server {server:?}")]
    UnknownServer {
        /// The channel entry.
        channel: String,
        /// The name it lists.
        server: String,
    },
}

/// Validated, index-based configuration.
#[derive(Debug)]
pub(crate) struct Topology {
    pub(crate) servers: Vec<ServerSpec>,
    pub(crate) by_name: HashMap<String, usize>,
    /// Channel name → server indices in configured order.
    pub(crate) channels: HashMap<String, Vec<usize>>,
}

impl Topology {
    pub(crate) fn build(
        mut servers: Vec<ServerSpec>,
        channels: Vec<(String, Vec<String>)>,
    ) -> Result<Self, ConfigError> {
        let mut by_name = HashMap::with_capacity(servers.len());
        for (i, spec) in servers.iter_mut().enumerate() {
            if by_name.insert(spec.name.clone(), i).is_some() {
                return Err(ConfigError::DuplicateServer(spec.name.clone()));
            }
            for c in &mut spec.countries {
                *c = c.trim().to_ascii_uppercase();
            }
        }
        let mut resolved = HashMap::with_capacity(channels.len());
        for (channel, names) in channels {
            let mut list = Vec::with_capacity(names.len());
            for server in names {
                let Some(&i) = by_name.get(&server) else {
                    return Err(ConfigError::UnknownServer { channel, server });
                };
                // A repeated name would only double that server's turns.
                if !list.contains(&i) {
                    list.push(i);
                }
            }
            if resolved.contains_key(&channel) {
                return Err(ConfigError::DuplicateChannel(channel));
            }
            resolved.insert(channel, list);
        }
        Ok(Topology {
            servers,
            by_name,
            channels: resolved,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rejects_inconsistent_config() {
        let two = || vec![ServerSpec::new("a", 1), ServerSpec::new("b", 1)];
        assert_eq!(
            Topology::build(vec![ServerSpec::new("a", 1), ServerSpec::new("a", 2)], vec![]).err(),
            Some(ConfigError::DuplicateServer("a".into()))
        );
        assert_eq!(
            Topology::build(two(), vec![("ch".into(), names(&["a", "zz"]))]).err(),
            Some(ConfigError::UnknownServer {
                channel: "ch".into(),
                server: "zz".into()
            })
        );
        assert_eq!(
            Topology::build(two(), vec![("ch".into(), names(&["a"])), ("ch".into(), names(&["b"]))]).err(),
            Some(ConfigError::DuplicateChannel("ch".into()))
        );
    }

    #[test]
    fn channel_keeps_order_and_drops_repeats() {
        let t = Topology::build(
            vec![ServerSpec::new("a", 1), ServerSpec::new("b", 1)],
            vec![("ch".into(), names(&["b", "a", "b"]))],
        )
        .expect("valid config");
        assert_eq!(t.channels.get("ch"), Some(&vec![1, 0]));
    }

    #[test]
    fn countries_compare_case_insensitively() {
        let mut spec = ServerSpec::new("a", 1);
        spec.countries = vec![" de ".into()];
        let t = Topology::build(vec![spec], vec![]).expect("valid config");
        let ip: IpAddr = [192, 0, 2, 1].into();
        assert!(t.servers[0].filter_matches(ip, Some("De")));
        assert!(!t.servers[0].filter_matches(ip, Some("FR")));
        assert!(!t.servers[0].filter_matches(ip, None));
    }

    #[test]
    fn tuning_is_clamped() {
        let t = Tuning {
            rise: 0,
            fall: 0,
            stale_after: Duration::ZERO,
            band: f64::NAN,
            zone_fallback: true,
        }
        .sanitized();
        assert!(t.zone_fallback);
        assert_eq!((t.rise, t.fall, t.band), (1, 1, 0.0));
    }
}

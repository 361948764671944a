//! Peering: every node keeps a directory of its peers' streams, health and
//! load, and redirects viewers to the peer that holds a stream (or, when this
//! node is over its limits, to the least loaded peer that can take them).
//!
//! - The directory is refreshed every `REFRESH` with the signed stream-list
//!   call of the cluster protocol; a peer that has not answered for `STALE`
//!   is down and its streams drop out.
//! - Hysteresis: a peer that was down must answer for `UP_HOLD` before it gets
//!   viewers again, so a flapping peer does not bounce them around.
//! - Values from peers are bounded and names are checked: a peer is never
//!   trusted further than its signed answer.
//! - The choice is deterministic: streams that are running beat on-demand
//!   ones, then the lower load ratio, then config order.

use super::server::{NodeLoad, StreamList};
use crate::metrics::{KindLabel, PeerLabel};
use crate::Node;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub const REFRESH: Duration = Duration::from_secs(1);
/// No answer for this long: the peer is down.
pub const STALE: Duration = Duration::from_secs(4);
/// A peer that came back must stay up this long before it takes viewers.
pub const UP_HOLD: Duration = Duration::from_secs(2);
/// Bounds on what a peer may claim.
const MAX_PEER_STREAMS: usize = 100_000;
const MAX_CLAIMED: u64 = 1_000_000_000_000;

/// One stream a peer offers.
#[derive(Clone, Debug, serde::Serialize, PartialEq, Eq)]
pub struct PeerStream {
    pub name: String,
    pub running: bool,
}

/// What this node knows about one peer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PeerView {
    pub peer: String,
    /// Base URL viewers are sent to, e.g. `http://s1.example.com:8080`.
    pub public: String,
    pub up: bool,
    pub load: NodeLoad,
    pub streams: Vec<PeerStream>,
    pub last_error: Option<String>,
    /// The peer's sessions of capped users (for cluster-wide caps).
    #[serde(skip)]
    pub users: Vec<strom_api::UserSessions>,
    #[serde(skip)]
    pub up_since: Option<Instant>,
    #[serde(skip)]
    pub last_ok: Option<Instant>,
}

impl PeerView {
    /// Up, not stale, and past the hysteresis hold.
    pub fn usable(&self, now: Instant) -> bool {
        self.up
            && self.last_ok.is_some_and(|t| now.saturating_duration_since(t) <= STALE)
            && self
                .up_since
                .is_some_and(|t| now.saturating_duration_since(t) >= UP_HOLD)
    }
}

/// `http://HOST:PORT` for a peer: its `public` (scheme kept when given) or its address.
pub fn public_base(addr: &str, public: Option<&str>) -> String {
    let p = public.unwrap_or(addr).trim_end_matches('/');
    if p.contains("://") {
        p.to_string()
    } else {
        format!("http://{p}")
    }
}

/// The peer directory.
#[derive(Debug)]
pub struct Directory(RwLock<Vec<PeerView>>);

impl Directory {
    pub fn new(config: &strom_config::Config) -> Self {
        Directory(RwLock::new(
            config
                .peers
                .iter()
                .map(|p| PeerView {
                    peer: p.addr.clone(),
                    public: public_base(&p.addr, p.public.as_deref()),
                    up: false,
                    load: NodeLoad::default(),
                    streams: Vec::new(),
                    last_error: None,
                    users: Vec::new(),
                    up_since: None,
                    last_ok: None,
                })
                .collect(),
        ))
    }

    pub fn snapshot(&self) -> Vec<PeerView> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, i: usize, f: impl FnOnce(&mut PeerView)) {
        if let Some(p) = self.0.write().unwrap_or_else(|e| e.into_inner()).get_mut(i) {
            f(p);
        }
    }

    /// The peer a viewer of `name` should go to. With `need_room`, only peers
    /// under their own limits qualify (load-aware redirect).
    pub fn choose(&self, name: &str, need_room: bool, now: Instant) -> Option<PeerView> {
        let peers = self.0.read().unwrap_or_else(|e| e.into_inner());
        choose(&peers, name, need_room, now).cloned()
    }
}

/// Pure choice over a directory snapshot (see the module doc for the order).
pub fn choose<'a>(peers: &'a [PeerView], name: &str, need_room: bool, now: Instant) -> Option<&'a PeerView> {
    peers
        .iter()
        .enumerate()
        .filter(|(_, p)| p.usable(now) && (!need_room || !p.load.overloaded()))
        .filter_map(|(i, p)| p.streams.iter().find(|s| s.name == name).map(|s| (i, p, s.running)))
        .min_by(|a, b| {
            (!a.2)
                .cmp(&!b.2)
                .then(a.1.load.ratio().total_cmp(&b.1.load.ratio()))
                .then(a.0.cmp(&b.0))
        })
        .map(|(_, p, _)| p)
}

/// Polls every peer forever.
pub async fn run(node: Arc<Node>, stop: CancellationToken) {
    for i in 0..node.config.peers.len() {
        tokio::spawn(poll(node.clone(), i, stop.clone()));
    }
}

async fn poll(node: Arc<Node>, i: usize, stop: CancellationToken) {
    let addr = node.config.peers[i].addr.clone();
    let key = node.config.cluster_key.clone();
    let label = PeerLabel { peer: addr.clone() };
    let up_g = node.metrics.peer_up.get_or_create_owned(&label);
    let clients_g = node.metrics.peer_clients.get_or_create_owned(&label);
    let client = crate::util::cluster_client(Duration::from_secs(3)).unwrap_or_default();
    let mut was_up = false;
    loop {
        let r = super::manager::fetch_list(&client, &addr, key.as_deref()).await;
        let now = Instant::now();
        let result: Result<StreamList, String> = r.map_err(|e| match e {
            super::manager::ListError::Unauthorized(_) => {
                node.metrics.cluster_error("auth");
                "peer refused our cluster_key".to_string()
            }
            super::manager::ListError::Other(m) => m,
        });
        match result {
            Ok(list) => {
                let mut streams = Vec::new();
                for s in list.streams.into_iter().take(MAX_PEER_STREAMS) {
                    if strom_config::check_stream_name(&s.name).is_err() {
                        node.metrics
                            .cluster_errors
                            .get_or_create(&KindLabel { kind: "bad_name" })
                            .inc();
                        continue;
                    }
                    let running = s.alive.unwrap_or(s.mode == "static");
                    if running || s.mode == "ondemand" {
                        streams.push(PeerStream { name: s.name, running });
                    }
                }
                let load = list.load.unwrap_or_default().bounded(MAX_CLAIMED);
                let mut users = list.users;
                users.truncate(strom_api::MAX_REPORTED_USERS);
                for u in &mut users {
                    u.sessions.truncate(strom_api::MAX_REPORTED_SESSIONS);
                }
                users.retain(|u| u.user.len() <= crate::access::backend::MAX_USER_ID);
                if !was_up {
                    tracing::info!(peer = %addr, streams = streams.len(), "peer up");
                }
                was_up = true;
                up_g.set(1);
                clients_g.set(load.clients as i64);
                node.peers.update(i, |p| {
                    if !p.up {
                        p.up_since = Some(now);
                    }
                    p.up = true;
                    p.last_ok = Some(now);
                    p.load = load;
                    p.streams = streams;
                    p.users = users;
                    p.last_error = None;
                });
            }
            Err(e) => {
                let stale = node
                    .peers
                    .snapshot()
                    .get(i)
                    .is_none_or(|p| p.last_ok.is_none_or(|t| now.duration_since(t) > STALE));
                if stale {
                    if was_up {
                        tracing::warn!(peer = %addr, error = %e, "peer down");
                    }
                    was_up = false;
                    up_g.set(0);
                    node.peers.update(i, |p| {
                        p.up = false;
                        p.up_since = None;
                        p.streams.clear();
                        p.users.clear();
                    });
                }
                node.peers.update(i, |p| p.last_error = Some(e));
            }
        }
        if !crate::util::sleep_or_cancel(&stop, REFRESH).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(
        name: &str,
        streams: &[(&str, bool)],
        clients: u64,
        max: Option<u64>,
        up_for: Duration,
        now: Instant,
    ) -> PeerView {
        PeerView {
            peer: name.into(),
            public: public_base(name, None),
            up: true,
            load: NodeLoad {
                clients,
                max_clients: max,
                output_bitrate: 0,
                max_bitrate: None,
            },
            streams: streams
                .iter()
                .map(|(n, r)| PeerStream {
                    name: n.to_string(),
                    running: *r,
                })
                .collect(),
            last_error: None,
            users: Vec::new(),
            up_since: now.checked_sub(up_for),
            last_ok: Some(now),
        }
    }

    #[test]
    fn running_beats_ondemand_then_load_then_order() {
        let now = Instant::now();
        let long = Duration::from_secs(60);
        let peers = vec![
            peer("a", &[("x", false)], 0, Some(10), long, now),
            peer("b", &[("x", true)], 5, Some(10), long, now),
            peer("c", &[("x", true)], 2, Some(10), long, now),
            peer("d", &[("x", true)], 2, Some(10), long, now),
        ];
        assert_eq!(choose(&peers, "x", false, now).map(|p| p.peer.as_str()), Some("c"));
        assert!(choose(&peers, "y", false, now).is_none());
    }

    #[test]
    fn room_hysteresis_and_staleness() {
        let now = Instant::now();
        let long = Duration::from_secs(60);
        let mut peers = vec![
            peer("full", &[("x", true)], 10, Some(10), long, now),
            peer("fresh", &[("x", true)], 0, Some(10), Duration::from_millis(500), now),
        ];
        assert_eq!(
            choose(&peers, "x", false, now).map(|p| p.peer.as_str()),
            Some("full"),
            "fresh peer still held back"
        );
        assert!(choose(&peers, "x", true, now).is_none(), "full peer has no room");
        peers[1].up_since = now.checked_sub(long);
        assert_eq!(choose(&peers, "x", true, now).map(|p| p.peer.as_str()), Some("fresh"));
        peers[1].last_ok = now.checked_sub(Duration::from_secs(10));
        assert!(choose(&peers, "x", true, now).is_none(), "stale peer is not used");
    }

    #[test]
    fn absurd_claims_are_bounded() {
        let l = NodeLoad {
            clients: u64::MAX,
            max_clients: Some(u64::MAX),
            output_bitrate: u64::MAX,
            max_bitrate: None,
        }
        .bounded(MAX_CLAIMED);
        assert_eq!(l.clients, MAX_CLAIMED);
        assert_eq!(l.max_clients, Some(MAX_CLAIMED));
        assert!(l.overloaded(), "clients >= max");
        assert!((l.ratio() - 1.0).abs() < 1e-9);
        let free = NodeLoad {
            clients: 5,
            max_clients: Some(0),
            output_bitrate: 0,
            max_bitrate: None,
        };
        assert_eq!(free.ratio(), 0.0, "a zero limit does not divide by zero");
    }

    #[test]
    fn public_addresses() {
        assert_eq!(public_base("10.0.0.1:8080", None), "http://10.0.0.1:8080");
        assert_eq!(
            public_base("s1.local:8080", Some("s1.example.com")),
            "http://s1.example.com"
        );
        assert_eq!(
            public_base("s1.local:8080", Some("https://s1.example.com:8443/")),
            "https://s1.example.com:8443"
        );
    }
}

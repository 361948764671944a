//! Probing the other balancers (`peers`): every `refresh`, each peer's
//! `/healthz` is asked, with a timeout; the live count ([`crate::share::Peers`])
//! sets how many balancers share each server's room.
//!
//! A balancer's `/healthz` carries its random instance id
//! ([`crate::service::INSTANCE_HEADER`]). A peer counts only when its answer
//! carries an id other than this balancer's: a URL that reaches this
//! balancer itself (the usual case of one config, listing every balancer,
//! on all of them) is left out, and so is a server that answers 200
//! without the id (a streaming node listed by mistake). Each is logged once
//! when it is first seen so, and shown in the status API.
//!
//! A peer list changed by a reload starts over with every peer counted
//! live, as at start: the share only grows once a peer is known to be gone.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::service::{Shared, INSTANCE_HEADER};
use crate::share::{self, PeerState, Peers, Probe};

/// Failed probes in a row after which a peer no longer counts: as for
/// servers, two.
const FALL: u32 = 2;

/// One probe: `GET URL/healthz` within `timeout`, judged by its status and
/// instance id against `own`.
async fn probe(client: &reqwest::Client, base: &str, own: &str, timeout: Duration) -> Probe {
    let url = format!("{}/healthz", base.trim_end_matches('/'));
    let asked = async {
        let resp = client.get(&url).send().await.ok()?;
        if resp.status() != reqwest::StatusCode::OK {
            return None;
        }
        let id = resp
            .headers()
            .get(INSTANCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        Some(judge(id, own))
    };
    tokio::time::timeout(timeout, asked)
        .await
        .ok()
        .flatten()
        .unwrap_or(Probe::Failed)
}

/// What a 200 answer carrying instance id `id` (if any) is, for a balancer
/// whose own id is `own`.
fn judge(id: Option<&str>, own: &str) -> Probe {
    match id {
        Some(id) if id == own => Probe::Itself,
        Some(id) if !id.is_empty() => Probe::Balancer,
        _ => Probe::NotBalancer,
    }
}

/// Probes the peers every `refresh` until `stop`, and tells the decision
/// core how many balancers are live.
pub async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut urls: Vec<String> = Vec::new();
    let mut peers = Peers::new(0, FALL);
    loop {
        let cfg = shared.cfg();
        if cfg.peers != urls {
            urls.clone_from(&cfg.peers);
            peers = Peers::new(urls.len(), FALL);
        }
        let timeout = cfg.refresh.clamp(Duration::from_millis(500), Duration::from_secs(2));
        let results = futures_util::future::join_all(
            urls.iter()
                .map(|u| probe(shared.http_client(), u, &shared.instance, timeout)),
        )
        .await;
        for (i, seen) in results.into_iter().enumerate() {
            let before = peers.state(i);
            peers.observe_probe(i, seen);
            let after = peers.state(i);
            if after != before {
                let url = &urls[i];
                match after {
                    PeerState::Itself => {
                        tracing::info!(peer = %url, "this peer is this balancer itself; not counted")
                    }
                    PeerState::NotBalancer => tracing::warn!(
                        peer = %url,
                        "this peer answers /healthz without a balancer's id: not a balancer, not counted"
                    ),
                    PeerState::Down => tracing::warn!(peer = %url, "peer balancer down; not counted"),
                    PeerState::Live if before != PeerState::Unknown => {
                        tracing::info!(peer = %url, "peer balancer live")
                    }
                    PeerState::Live | PeerState::Unknown => {}
                }
            }
        }
        let live: Vec<(String, PeerState)> = urls
            .iter()
            .enumerate()
            .map(|(i, u)| (u.clone(), peers.state(i)))
            .collect();
        shared.set_peers(peers.balancers(), live);
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(share::until_tick(since_epoch, cfg.refresh)) => {}
        }
    }
}

impl Shared {
    /// Records the live balancer count and each peer's state.
    fn set_peers(&self, balancers: u64, live: Vec<(String, PeerState)>) {
        self.balancer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_balancers(balancers);
        self.metrics.balancers.set(i64::try_from(balancers).unwrap_or(i64::MAX));
        *self.peers.write().unwrap_or_else(|e| e.into_inner()) = live;
    }

    /// `{"live": N, "instance": ID, "peers": [{"url", "live", "state"}]}`
    /// for the status API; `state` is `unknown` (not probed yet, counted),
    /// `live`, `down`, `self` or `not_balancer`.
    pub(crate) fn balancers_json(&self) -> serde_json::Value {
        let peers = self.peers.read().unwrap_or_else(|e| e.into_inner()).clone();
        let live = 1 + peers.iter().filter(|(_, st)| st.counts()).count();
        let list: Vec<serde_json::Value> = peers
            .into_iter()
            .map(|(url, st)| serde_json::json!({"url": url, "live": st.counts(), "state": st.as_str()}))
            .collect();
        serde_json::json!({"live": live, "instance": self.instance, "peers": list})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_judged_by_its_instance_id() {
        assert_eq!(judge(Some("b2"), "a1"), Probe::Balancer);
        assert_eq!(judge(Some("a1"), "a1"), Probe::Itself);
        assert_eq!(judge(None, "a1"), Probe::NotBalancer, "a node's /healthz");
        assert_eq!(judge(Some(""), "a1"), Probe::NotBalancer);
    }
}

//! Probing the other balancers (`peers`): every `refresh`, each peer's
//! `/healthz` is asked, with a timeout; the live count ([`crate::share::Peers`])
//! sets how many balancers share each server's room.
//!
//! A peer list changed by a reload starts over with every peer counted
//! live, as at start: the share only grows once a peer is known to be gone.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::service::Shared;
use crate::share::{self, Peers};

/// Failed probes in a row after which a peer no longer counts: as for
/// servers, two.
const FALL: u32 = 2;

/// One probe: `GET URL/healthz` answered 200 within `timeout`.
async fn probe(client: &reqwest::Client, base: &str, timeout: Duration) -> bool {
    let url = format!("{}/healthz", base.trim_end_matches('/'));
    let asked = async {
        let resp = client.get(&url).send().await.ok()?;
        Some(resp.status() == reqwest::StatusCode::OK)
    };
    matches!(tokio::time::timeout(timeout, asked).await, Ok(Some(true)))
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
        let results =
            futures_util::future::join_all(urls.iter().map(|u| probe(shared.http_client(), u, timeout))).await;
        for (i, ok) in results.into_iter().enumerate() {
            peers.observe(i, ok);
        }
        let live: Vec<(String, bool)> = urls
            .iter()
            .enumerate()
            .map(|(i, u)| (u.clone(), peers.is_live(i)))
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
    /// Records the live balancer count and each peer's liveness.
    fn set_peers(&self, balancers: u64, live: Vec<(String, bool)>) {
        self.balancer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_balancers(balancers);
        self.metrics.balancers.set(i64::try_from(balancers).unwrap_or(i64::MAX));
        *self.peers.write().unwrap_or_else(|e| e.into_inner()) = live;
    }

    /// `{"live": N, "peers": [{"url", "live"}]}` for the status API.
    pub(crate) fn balancers_json(&self) -> serde_json::Value {
        let peers = self.peers.read().unwrap_or_else(|e| e.into_inner()).clone();
        let live = 1 + peers.iter().filter(|(_, l)| *l).count();
        let list: Vec<serde_json::Value> = peers
            .into_iter()
            .map(|(url, live)| serde_json::json!({"url": url, "live": live}))
            .collect();
        serde_json::json!({"live": live, "peers": list})
    }
}

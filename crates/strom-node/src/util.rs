//! Small shared helpers: the UTC clock, a cancellable sleep and the one way
//! strom builds an outgoing HTTP client.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// Wall-clock UTC in 90 kHz ticks since the Unix epoch.
pub fn utc90_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_micros() as i64) * 9 / 100)
}

/// Sleeps for `d` unless `cancel` fires first; false when cancelled.
pub async fn sleep_or_cancel(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// The HTTP client for pulling inputs and node-to-node calls: a connect
/// timeout and strom's user agent. Response deadlines are per request.
pub fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("strom/", env!("CARGO_PKG_VERSION")))
        .build()
}

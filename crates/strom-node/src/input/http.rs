//! `tshttp://` / `http(s)://` input: MPEG-TS pulled over HTTP.
//!
//! Reconnects with capped exponential backoff; a response that delivers no
//! bytes for the stream's `source_timeout` is abandoned and retried, so a
//! source that hangs mid-response cannot stall the stream.

use super::{Backoff, Feeder, InputCtx};
use futures_util::StreamExt;
use std::time::Duration;

/// Runs until cancelled.
pub async fn run(url: String, program: Option<u16>, ctx: InputCtx) {
    // What logs and states show: no password or key.
    let shown = crate::util::redact_url(&url);
    let client = match crate::util::http_client(Duration::from_secs(5)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(stream = %ctx.stream, error = %e, "http client init failed");
            ctx.state(false, format!("client: {e}")).await;
            return;
        }
    };
    let idle = ctx.source_timeout;
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
    loop {
        let reason = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = session(&client, &url, &shown, program, idle, &ctx, &mut backoff) => r,
        };
        let Some(reason) = reason else { return };
        tracing::warn!(stream = %ctx.stream, input = ctx.index(), url = %shown, %reason, "http input down");
        ctx.state(false, reason).await;
        if !ctx.sleep(backoff.next_delay()).await {
            return;
        }
    }
}

/// One connection. Returns why it ended, or None when the supervisor is gone.
async fn session(
    client: &reqwest::Client,
    url: &str,
    shown: &str,
    program: Option<u16>,
    idle: Duration,
    ctx: &InputCtx,
    backoff: &mut Backoff,
) -> Option<String> {
    let resp = match tokio::time::timeout(idle.max(Duration::from_secs(5)), client.get(url).send()).await {
        Err(_) => return Some("no response".into()),
        Ok(Err(e)) => return Some(format!("request failed: {}", e.without_url())),
        Ok(Ok(r)) => r,
    };
    if !resp.status().is_success() {
        return Some(format!("http status {}", resp.status()));
    }
    tracing::info!(stream = %ctx.stream, input = ctx.index(), url = %shown, "http input connected");
    ctx.state(true, format!("connected to {shown}")).await;
    let mut body = resp.bytes_stream();
    let mut feeder = Feeder::new(program);
    let mut got_data = false;
    loop {
        match tokio::time::timeout(idle, body.next()).await {
            Err(_) => {
                ctx.metrics.input_timeouts.inc();
                return Some(format!("no data for {}s", idle.as_secs()));
            }
            Ok(None) => {
                let rest = feeder.finish(ctx);
                if !ctx.send_fed(rest).await {
                    return None;
                }
                return Some("source closed the response".into());
            }
            Ok(Some(Err(e))) => return Some(format!("read failed: {}", e.without_url())),
            Ok(Some(Ok(chunk))) => {
                if !got_data {
                    got_data = true;
                    backoff.reset();
                }
                let fed = feeder.feed(ctx, &chunk);
                if !ctx.send_fed(fed).await {
                    return None;
                }
            }
        }
    }
}

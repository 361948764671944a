//! `publish://` input: a client pushes MPEG-TS by HTTP PUT/POST to
//! `/NAME/publish`.
//!
//! The input owns a channel whose sender sits in the hub's publish slot; the
//! HTTP handler takes it (so one publisher at a time) and feeds the request
//! body into it. When the publisher goes away the slot is refilled for the next one.

use super::{Feeder, InputCtx};
use bytes::Bytes;
use tokio::sync::mpsc;

/// Chunks buffered between the HTTP handler and the demuxer.
const PUBLISH_QUEUE: usize = 64;

/// Runs until cancelled.
pub async fn run(ctx: InputCtx) {
    loop {
        let (tx, mut rx) = mpsc::channel::<Bytes>(PUBLISH_QUEUE);
        *ctx.hub.publish_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        let mut feeder = Feeder::new();
        let mut connected = false;
        loop {
            let chunk = tokio::select! {
                _ = ctx.cancel.cancelled() => {
                    ctx.hub.publish_slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                    return;
                }
                c = rx.recv() => c,
            };
            let Some(chunk) = chunk else { break };
            if !connected {
                connected = true;
                tracing::info!(stream = %ctx.hub.name, input = ctx.index, "publisher connected");
                ctx.state(true, "publisher connected").await;
            }
            let events = feeder.feed(&ctx.hub, &chunk);
            if !ctx.send(events).await {
                return;
            }
        }
        let rest = feeder.finish(&ctx.hub);
        if !ctx.send(rest).await {
            return;
        }
        if connected {
            tracing::info!(stream = %ctx.hub.name, input = ctx.index, "publisher disconnected");
            ctx.state(false, "publisher disconnected").await;
        }
    }
}

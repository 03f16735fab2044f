//! The outbox relay: runs in every server process; the advisory lock in
//! `shop::events::outbox::Relay::round` lets one publish at a time and the
//! others stand by, ready when it dies. A bus or database that is down is
//! ridden out with backoff; the backlog drains when it returns.

use std::sync::Arc;
use std::time::Duration;

use shop::events::outbox::Relay;
use shop::events::redis_streams::RedisStreams;
use shop::events::EventBus;

use super::backoff::Backoff;
use crate::http::metrics::Metrics;

/// The bus every part of this process uses (Redis Streams on the shop's Redis).
pub fn bus(shop: &shop::Shop, partitions: u32) -> Arc<dyn EventBus> {
    Arc::new(RedisStreams::new(shop.kv.clone(), partitions))
}

pub async fn run(relay: Relay, every: Duration, metrics: Arc<Metrics>) {
    let mut backoff = Backoff::new(every.max(Duration::from_millis(50)), Duration::from_secs(5));
    loop {
        match relay.round().await {
            Ok(round) => {
                if backoff.succeed() {
                    tracing::info!("outbox relay publishing again");
                }
                metrics.events_published(round.published);
                if !round.full {
                    tokio::time::sleep(every).await;
                }
            }
            Err(err) => {
                let (wait, first) = backoff.fail();
                if first {
                    tracing::warn!(error = ?err, "outbox relay cannot publish; the backlog waits and drains when it can");
                } else {
                    tracing::debug!(error = ?err, retry_in_ms = wait.as_millis() as u64, "outbox relay still failing");
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

//! The `analytics` consumer group on order-events: seller analytics
//! (`shop::analytics`). One shared group for all processes: the figures live
//! in PostgreSQL, and each event counts once there (dedup in the upsert's
//! transaction), whichever process handles it.

use std::sync::Arc;

use shop::events::{Event, EventBus, Topic};

use super::consumer::{Consumer, Handler, Settings};

pub struct Aggregator(pub shop::Shop);

impl Handler for Aggregator {
    async fn handle(&self, event: &Event) -> shop::Result<()> {
        self.0.analytics().record(event).await
    }
}

/// The consumer this process runs for the group.
pub fn consumer(bus: Arc<dyn EventBus>, shop: shop::Shop, settings: Settings) -> Consumer<Aggregator> {
    Consumer::new(bus, Topic::Orders, shop::analytics::CONSUMER, Aggregator(shop), settings)
}

//! The `notifications` consumer group on order-events: customer emails
//! (`shop::notifications`). The handler makes each email once per event id
//! itself; the runner (`consumer`) adds the retries and dead letters, so an
//! SMTP server that is away fails tries instead of stopping anything.

use std::sync::Arc;

use shop::events::{Event, EventBus, Topic};
use shop::notifications::Notifier;

use super::consumer::{Consumer, Handler, Settings};

impl Handler for Notifier {
    async fn handle(&self, event: &Event) -> shop::Result<()> {
        Notifier::handle(self, event).await
    }
}

/// The consumer this process runs for the group.
pub fn consumer(bus: Arc<dyn EventBus>, notifier: Notifier, settings: Settings) -> Consumer<Notifier> {
    Consumer::new(bus, Topic::Orders, shop::notifications::CONSUMER, notifier, settings)
}

//! The warehouse (`shop::fulfilment`): the consumer's handler, which only
//! makes shipment rows, and the worker every server process runs to take
//! the due steps (pick, capture + ship, deliver), the early captures of
//! authorizations about to lapse, and refunds left half-way.

use shop::events::Event;

use super::consumer::Handler;

/// Group `warehouse` on order-events.
pub struct Warehouse(pub shop::Shop);

impl Handler for Warehouse {
    async fn handle(&self, event: &Event) -> shop::Result<()> {
        self.0.fulfilment().on_event(event).await.map(|_| ())
    }
}

pub async fn run(shop: shop::Shop) {
    let mut ticker = tokio::time::interval(shop.fulfilment().settings().poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match shop.fulfilment().advance().await {
            Ok(report) if report != shop::fulfilment::Report::default() => tracing::info!(?report, "fulfilment pass"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "fulfilment pass failed; retrying next interval"),
        }
    }
}

//! Inventory upkeep: the reservation sweeper and periodic reconciliation.
//! Every server process runs both; the shop's scripts and row locks make
//! concurrent runs safe (no hold is returned twice, no counter rewritten
//! from a stale read).

use std::time::Duration;

/// Returns expired reservations to stock, every `every`.
pub async fn sweep(shop: shop::Shop, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match shop.inventory().sweep().await {
            Ok(report) if report.expired > 0 || report.settled > 0 => {
                tracing::info!(expired = report.expired, settled = report.settled, "reservations swept");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "reservation sweep failed; retrying next interval"),
        }
    }
}

/// Compares Redis counters with PostgreSQL and corrects drift, every `every`.
pub async fn reconcile(shop: shop::Shop, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match shop.inventory().reconcile().await {
            Ok(report) => tracing::info!(
                checked = report.checked,
                loaded = report.loaded,
                corrected = report.corrected.len(),
                held_corrected = report.held_corrected.len(),
                took_ms = report.took_ms,
                "inventory reconciled"
            ),
            Err(err) => tracing::warn!(error = %err, "reconciliation failed; retrying next interval"),
        }
    }
}

//! Checkout recovery: settles checkouts a dead process left half-way
//! (`shop::checkout::Checkout::recover`): the authorization voided, the
//! reservation released, the key freed for the customer's retry. Runs in
//! every server process, first at startup.

use std::time::Duration;

pub async fn recover(shop: shop::Shop, every: Duration, older_than: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match shop.checkout().recover(older_than).await {
            Ok(report) if report.recovered > 0 => {
                tracing::warn!(recovered = report.recovered, voided = report.voided, "half-way checkouts recovered");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "checkout recovery failed; retrying next interval"),
        }
    }
}

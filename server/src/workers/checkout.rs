//! Checkout recovery: settles checkouts a dead process left half-way
//! (`shop::checkout::Checkout::recover`): the authorization voided, the
//! reservation released, the key freed for the customer's retry. Runs in
//! every server process, first at startup. Hourly it also forgets answered
//! idempotency keys past their retention (`Checkout::prune_keys`,
//! `Catalog::prune_keys`).

use std::time::{Duration, Instant};

const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

pub async fn recover(shop: shop::Shop, every: Duration, older_than: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<Instant> = None;
    loop {
        ticker.tick().await;
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            let pruned = match shop.checkout().prune_keys().await {
                Ok(checkout) => shop.catalog().prune_keys().await.map(|products| checkout + products),
                Err(err) => Err(err),
            };
            match pruned {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "idempotency keys past their retention forgotten"),
                Err(err) => tracing::warn!(error = %err, "pruning idempotency keys failed; retrying next hour"),
            }
        }
        match shop.checkout().recover(older_than).await {
            Ok(report) if report.recovered + report.failed + report.cancels_finished > 0 => {
                tracing::warn!(
                    recovered = report.recovered,
                    voided = report.voided,
                    failed = report.failed,
                    cancels_finished = report.cancels_finished,
                    "half-way checkouts and cancels recovered"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "checkout recovery failed; retrying next interval"),
        }
    }
}

//! Keeps this process's search index current with changes made by other
//! processes (a seller's edit handled by another replica, a script). Changes
//! made here are indexed at once by the write path; this catches the rest
//! within one interval.

use std::time::Duration;

use chrono::Utc;

pub async fn run(shop: shop::Shop, every: Duration) {
    // The index was built from PostgreSQL just before serving started.
    let mut since = Utc::now();
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match shop.search().sync_changed(since).await {
            Ok((count, watermark)) => {
                if count > 0 {
                    tracing::debug!(count, "search index: re-indexed changed products");
                }
                since = watermark;
            }
            Err(err) => tracing::warn!(error = %err, "search index sync failed; retrying next interval"),
        }
    }
}

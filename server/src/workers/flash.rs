//! Flash sales' schedule in every server process: `shop::flash`'s tick
//! claims each due step under its row lock, so running it everywhere does
//! each step once and keeps going when a process dies.

pub async fn run(shop: shop::Shop) {
    let mut ticker = tokio::time::interval(shop.flash_rt.settings.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match shop.flash().tick().await {
            Ok(report) if report.preloaded + report.opened + report.closed + report.finished + report.returned + report.settled > 0 => {
                tracing::info!(?report, "flash sale schedule")
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "flash sale tick failed; retrying next tick"),
        }
    }
}

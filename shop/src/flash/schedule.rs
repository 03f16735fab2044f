//! The schedule: every server process runs [`tick`]; each step of a sale
//! is taken under its row lock (`FOR UPDATE SKIP LOCKED`, condition
//! re-checked on the locked row), so however many processes run it, each
//! step runs once: pre-load (counter, caches), open, close (no more buys,
//! the line is told), finish (the set-aside's remainder back to stock, the
//! SKU reconciled, the report kept). The steps' Redis writes are
//! idempotent, so a process dying between one and its commit is repeated
//! harmlessly by the next.
//!
//! Beside the steps, each tick sweeps the running sales' holds whose
//! payment window ran out (their units go to the line), promotes from the
//! line what an earlier promotion left over, and samples the live figures
//! (once per second per sale across processes: `live.rs`). Those scripts
//! are atomic, so processes running them at once each do a part.

use chrono::Utc;
use model::flash::FlashReport;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{head, int, live, promotions, scripts, Flash, Row, COLUMNS};
use crate::Result;

/// What one tick did in this process.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TickReport {
    pub preloaded: u64,
    pub opened: u64,
    pub closed: u64,
    pub finished: u64,
    /// Cancelled sales whose units went back to stock.
    pub returned: u64,
    /// Holds whose payment window ran out.
    pub expired: u64,
    /// Stalled confirmations settled from PostgreSQL's record.
    pub settled: u64,
    pub sampled: u64,
}

/// Sales claimed per statement.
const STEP_BATCH: i64 = 10;
/// Holds swept per script call.
const SWEEP_BATCH: usize = 200;

pub(super) async fn tick(flash: &Flash<'_>) -> Result<TickReport> {
    let mut report = TickReport::default();
    steps(flash, &mut report).await?;
    let running: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM flash_sales WHERE status IN ('live', 'closing') OR (status = 'scheduled' AND preloaded_at IS NOT NULL)"
    ))
    .fetch_all(&flash.shop.db)
    .await?;
    for row in &running {
        sweep(flash, row.id, &mut report).await?;
        if row.status == "live" {
            let mut call = flash.invoke(&scripts::PROMOTE, row.id);
            call.arg(flash.ttl_ms());
            Flash::fresh_tokens(&mut call);
            let reply: Vec<String> = call.invoke_async(&mut flash.shop.kv.conn()).await?;
            flash.promoted(row.id, &promotions(&reply)).await;
        }
        if live::sample(flash, row).await? {
            report.sampled += 1;
        }
    }
    Ok(report)
}

async fn steps(flash: &Flash<'_>, report: &mut TickReport) -> Result<()> {
    let settings = flash.settings();
    // A sale closes at its end, and finishes once no hold is in its payment
    // window any more, or at the latest when the last window and a
    // confirmation's grace are over (a hold still there then is settled by
    // the sweeper, and a confirmation after the set-aside went back fails
    // in PostgreSQL, never oversells).
    let settle_secs = (settings.pay_window + settings.confirm_grace * 2).as_secs_f64();
    loop {
        let mut tx = flash.shop.db.begin().await?;
        let due: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM flash_sales WHERE \
                (status = 'scheduled' AND preloaded_at IS NULL AND starts_at - make_interval(secs => $1) <= now()) \
             OR (status = 'scheduled' AND preloaded_at IS NOT NULL AND starts_at <= now()) \
             OR (status = 'live' AND ends_at <= now()) \
             OR status = 'closing' \
             OR (status = 'cancelled' AND returned_at IS NULL) \
             ORDER BY starts_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .bind(settings.preload_lead.as_secs_f64())
        .bind(STEP_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let claimed = due.len() as i64;
        for row in &due {
            step(flash, &mut tx, row, settle_secs, report).await?;
        }
        tx.commit().await?;
        if claimed < STEP_BATCH {
            return Ok(());
        }
    }
}

async fn step(flash: &Flash<'_>, tx: &mut PgConnection, row: &Row, settle_secs: f64, report: &mut TickReport) -> Result<()> {
    let now = Utc::now();
    match row.status.as_str() {
        "scheduled" if row.preloaded_at.is_none() => {
            preload(flash, row).await?;
            sqlx::query("UPDATE flash_sales SET preloaded_at = now(), preloads = preloads + 1 WHERE id = $1").bind(row.id).execute(&mut *tx).await?;
            report.preloaded += 1;
            tracing::info!(sale = %row.id, "flash sale pre-loaded");
        }
        "scheduled" => {
            sqlx::query("UPDATE flash_sales SET status = 'live', opened_at = now() WHERE id = $1").bind(row.id).execute(&mut *tx).await?;
            report.opened += 1;
            tracing::info!(sale = %row.id, "flash sale open");
        }
        "live" => {
            let waiting: i64 = flash.invoke(&scripts::CLOSE, row.id).invoke_async(&mut flash.shop.kv.conn()).await?;
            if waiting > 0 {
                super::news::tell(&flash.shop.kv, row.id, None).await;
            }
            sqlx::query("UPDATE flash_sales SET status = 'closing', closed_at = now() WHERE id = $1").bind(row.id).execute(&mut *tx).await?;
            report.closed += 1;
            tracing::info!(sale = %row.id, waiting, "flash sale closed; holds in their payment window may still pay");
        }
        "closing" => {
            let figures: Vec<String> = flash.invoke(&scripts::FIGURES, row.id).invoke_async(&mut flash.shop.kv.conn()).await?;
            let live_holds = int(&figures, 2);
            let overdue = (now - row.ends_at).num_milliseconds() as f64 / 1000.0 > settle_secs;
            if live_holds > 0 && !overdue {
                return Ok(());
            }
            finish(flash, tx, row, &figures).await?;
            report.finished += 1;
        }
        "cancelled" => {
            flash.shop.inventory().release(row.id).await?;
            sqlx::query("UPDATE flash_sales SET returned_at = now() WHERE id = $1").bind(row.id).execute(&mut *tx).await?;
            report.returned += 1;
        }
        _ => {}
    }
    Ok(())
}

/// Loads the sale's counter (quantity less what is already sold, so a
/// Redis that lost a loaded sale is refilled without overselling) and
/// warms the product's caches and the SKU's stock counter. The sale's
/// counter is one key: the limit and the line need one atomic view, and a
/// script on one slot serves tens of thousands of buys a second, so it is
/// not split into shards.
async fn preload(flash: &Flash<'_>, row: &Row) -> Result<()> {
    let sold = flash.sold(row.id).await?;
    let left = (i64::from(row.quantity) - sold).max(0);
    let loaded: i64 = flash
        .invoke(&scripts::PRELOAD, row.id)
        .arg(row.sku_id.to_string())
        .arg(row.price_cents)
        .arg(row.starts_at.timestamp_millis())
        .arg(row.ends_at.timestamp_millis())
        .arg(row.per_user_limit)
        .arg(left)
        .invoke_async(&mut flash.shop.kv.conn())
        .await?;
    if loaded == 0 {
        tracing::info!(sale = %row.id, "flash sale counter was already loaded; left as it is");
    }
    if let Ok(details) = flash.shop.catalog().sku_details(&[row.sku_id]).await {
        if let Some(d) = details.get(&row.sku_id) {
            if let Err(err) = flash.shop.catalog().product(d.product_id).await {
                tracing::warn!(sale = %row.id, error = %err, "product cache not warmed before the sale");
            }
        }
    }
    Ok(())
}

/// The end: the set-aside's remainder back to stock, the SKU reconciled,
/// the report written, the sale's keys left to expire in a day.
async fn finish(flash: &Flash<'_>, tx: &mut PgConnection, row: &Row, figures: &[String]) -> Result<()> {
    let stats = stats(figures);
    let returned = flash.shop.inventory().set_aside_left(row.id).await?.unwrap_or(0);
    flash.shop.inventory().release(row.id).await?;
    let drift = flash.shop.inventory().reconcile_skus(&[row.sku_id]).await?;
    let sold = flash.sold(row.id).await?;
    let report = FlashReport {
        sold,
        promoted: stats("promoted"),
        abandoned: stats("expired"),
        rejected: stats("rejected"),
        returned,
        oversold: (sold - i64::from(row.quantity)).max(0),
        drift_corrected: drift.len() as i64,
    };
    sqlx::query(
        "UPDATE flash_sales SET status = 'ended', finalized_at = now(), finals = finals + 1, returned_at = now(), report = $2 WHERE id = $1",
    )
    .bind(row.id)
    .bind(sqlx::types::Json(&report))
    .execute(&mut *tx)
    .await?;
    let mut pipe = redis::pipe();
    for key in flash.keys(row.id).into_iter().chain(["lat", "live", "last"].map(|k| flash.key(row.id, k))) {
        pipe.expire(key, 86_400).ignore();
    }
    let _: () = pipe.query_async(&mut flash.shop.kv.conn()).await?;
    tracing::info!(sale = %row.id, ?report, "flash sale finished");
    Ok(())
}

/// The stats part of a FIGURES reply as a lookup.
pub(super) fn stats(figures: &[String]) -> impl Fn(&str) -> i64 + '_ {
    move |name: &str| figures.get(3..).unwrap_or(&[]).chunks(2).find(|c| c[0] == name).and_then(|c| c.get(1)?.parse().ok()).unwrap_or(0)
}

/// Returns the holds of `sale` whose payment window ran out (their units
/// go to the line), and settles confirmations that stalled past their
/// grace from PostgreSQL's record.
async fn sweep(flash: &Flash<'_>, sale: Uuid, report: &mut TickReport) -> Result<()> {
    loop {
        let due: Vec<String> = flash.invoke(&scripts::DUE_TOKENS, sale).arg(SWEEP_BATCH).invoke_async(&mut flash.shop.kv.conn()).await?;
        let mut progressed = false;
        for raw in &due {
            let Ok(token) = Uuid::try_parse(raw) else { continue };
            let reply = flash.give_back(sale, token, "expire").await?;
            match (head(&reply), reply.get(1).map(String::as_str)) {
                ("OK", Some(user)) => {
                    report.expired += 1;
                    progressed = true;
                    if let Ok(user) = Uuid::try_parse(user) {
                        let _ = flash.shop.cart().drop_flash_hold(user, sale, token).await;
                    }
                }
                ("SKIP", Some("confirming")) => {
                    settle(flash, sale, token, &reply).await?;
                    report.settled += 1;
                    progressed = true;
                }
                ("SKIP", _) => {}
                _ => progressed = true,
            }
        }
        if !progressed || due.len() < SWEEP_BATCH {
            return Ok(());
        }
    }
}

/// A confirmation that outlived its grace: PostgreSQL decides. Recording
/// `expired` waits for a confirmation transaction still holding the token;
/// whichever wrote first stands.
async fn settle(flash: &Flash<'_>, sale: Uuid, token: Uuid, reply: &[String]) -> Result<()> {
    let user = reply.get(2).and_then(|u| Uuid::try_parse(u).ok()).unwrap_or_default();
    let quantity = int(reply, 3).max(1);
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO flash_outcomes (token, sale_id, user_id, quantity, outcome) VALUES ($1, $2, $3, $4, 'expired') \
         ON CONFLICT (token) DO NOTHING RETURNING outcome",
    )
    .bind(token)
    .bind(sale)
    .bind(user)
    .bind(quantity as i32)
    .fetch_optional(&flash.shop.db)
    .await?;
    let outcome = match inserted {
        Some(outcome) => outcome,
        None => sqlx::query_scalar("SELECT outcome FROM flash_outcomes WHERE token = $1").bind(token).fetch_one(&flash.shop.db).await?,
    };
    if outcome == "expired" {
        flash.give_back(sale, token, "abort").await?;
        let _ = flash.shop.cart().drop_flash_hold(user, sale, token).await;
    } else {
        flash.finish_one(sale, token).await?;
    }
    Ok(())
}

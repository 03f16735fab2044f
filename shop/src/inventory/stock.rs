//! Seller stock: listing a seller's SKUs with live figures, setting stock
//! and re-sharding a hot SKU, all exact while reservations are in flight.
//!
//! Both writes lock the inventory row FOR UPDATE, update it, and rewrite the
//! counter from the new figures before committing: the Redis script checks
//! the live holds atomically with the rewrite, so a stock cut below what
//! shoppers hold right now is refused with the numbers, never applied.

use sqlx::PgConnection;
use uuid::Uuid;

use super::counters::{self, Mode, Truth};
use super::{Inventory, SkuStockPage, SkuStockRow, MAX_SHARDS};
use crate::{Error, Result, Shop};

/// The column is a 32-bit integer.
const MAX_STOCK: i64 = i32::MAX as i64;

/// Whose SKUs a caller may see and change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SellerScope {
    Seller(Uuid),
    Admin,
}

impl SellerScope {
    pub fn seller(self) -> Option<Uuid> {
        match self {
            SellerScope::Seller(id) => Some(id),
            SellerScope::Admin => None,
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    sku_id: Uuid,
    product_id: Uuid,
    title: String,
    variant: String,
    stock_count: i32,
    reserved: i32,
    held: i32,
    shards: i32,
}

const SELECT: &str = "SELECT s.id AS sku_id, s.product_id, p.title, \
       coalesce((SELECT string_agg(value, ' / ' ORDER BY key) FROM jsonb_each_text(s.attributes)), '') AS variant, \
       i.stock_count, i.reserved, i.held, i.shards \
  FROM skus s JOIN products p ON p.id = s.product_id JOIN inventory i ON i.sku_id = s.id";

pub(super) async fn list(shop: &Shop, scope: SellerScope, limit: i64, after: Option<Uuid>) -> Result<SkuStockPage> {
    let limit = limit.clamp(1, 500);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE ($1::uuid IS NULL OR p.seller_id = $1) AND s.id > $2 ORDER BY s.id LIMIT $3"
    ))
    .bind(scope.seller())
    .bind(after.unwrap_or_else(Uuid::nil))
    .bind(limit + 1)
    .fetch_all(&shop.db)
    .await?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<Row> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = if more { rows.last().map(|r| r.sku_id) } else { None };
    let items = with_live_figures(shop, rows).await?;
    Ok(SkuStockPage { items, next_cursor })
}

/// Adds the live figures: the counter and the Redis holds. With Redis down
/// the DB-path figures are all there is, and they are what is enforced.
async fn with_live_figures(shop: &Shop, rows: Vec<Row>) -> Result<Vec<SkuStockRow>> {
    let skus: Vec<Uuid> = rows.iter().map(|r| r.sku_id).collect();
    let available = counters::available(shop, &skus).await?;
    let held_keys: Vec<String> = skus.iter().map(|s| shop.kv.key(&format!("inv:{{{s}}}:held"))).collect();
    let redis_held: Vec<Option<i64>> = if held_keys.is_empty() {
        Vec::new()
    } else {
        redis::cmd("MGET")
            .arg(&held_keys)
            .query_async(&mut shop.kv.conn())
            .await
            .unwrap_or_else(|_| vec![None; held_keys.len()])
    };
    Ok(rows
        .into_iter()
        .zip(available)
        .zip(redis_held)
        .map(|((r, available), redis_held)| {
            let held = i64::from(r.held) + redis_held.unwrap_or(0).max(0);
            SkuStockRow {
                sku_id: r.sku_id,
                product_id: r.product_id,
                title: r.title,
                variant: r.variant,
                stock_count: r.stock_count.into(),
                reserved: i64::from(r.reserved) + held,
                available,
                in_orders: r.reserved.into(),
                held,
                shards: r.shards,
            }
        })
        .collect())
}

/// Locks the row FOR UPDATE, or 404 when the SKU does not exist or is not
/// the caller's (a seller never learns about another seller's SKUs).
async fn lock(conn: &mut PgConnection, scope: SellerScope, sku: Uuid) -> Result<Row> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE s.id = $1 AND ($2::uuid IS NULL OR p.seller_id = $2) FOR UPDATE OF i"
    ))
    .bind(sku)
    .bind(scope.seller())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound { what: "SKU" })
}

pub(super) async fn add_skus_in(tx: &mut PgConnection, skus: &[(Uuid, i64)]) -> Result<()> {
    if let Some((sku, stock)) = skus.iter().find(|(_, stock)| !(0..=MAX_STOCK).contains(stock)) {
        return Err(Error::Invalid(format!("stock_count for SKU {sku} is {stock}: it must be between 0 and {MAX_STOCK}")));
    }
    let ids: Vec<Uuid> = skus.iter().map(|(id, _)| *id).collect();
    let counts: Vec<i32> = skus.iter().map(|(_, stock)| *stock as i32).collect();
    sqlx::query("INSERT INTO inventory (sku_id, stock_count) SELECT * FROM UNNEST($1::uuid[], $2::int[])")
        .bind(&ids)
        .bind(&counts)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub(super) async fn set_stock(inv: &Inventory<'_>, scope: SellerScope, sku: Uuid, stock_count: i64) -> Result<SkuStockRow> {
    if !(0..=MAX_STOCK).contains(&stock_count) {
        return Err(Error::Invalid(format!("stock_count must be between 0 and {MAX_STOCK}")));
    }
    let shop = inv.shop;
    let mut tx = shop.db.begin().await?;
    let row = lock(&mut tx, scope, sku).await?;
    let committed = i64::from(row.reserved) + i64::from(row.held);
    if stock_count < committed {
        return Err(below(stock_count, committed));
    }
    let was_in_stock = i64::from(row.stock_count) > committed;
    sqlx::query("UPDATE inventory SET stock_count = $2, version = version + 1, updated_at = now() WHERE sku_id = $1")
        .bind(sku)
        .bind(stock_count as i32)
        .execute(&mut *tx)
        .await?;
    rewrite_counter(inv, Mode::Stock, Truth { sku, available: stock_count - committed, shards: row.shards }, stock_count, committed).await?;
    commit(shop, tx, sku).await?;
    let is_in_stock = stock_count > committed;
    if was_in_stock != is_in_stock {
        refresh_search(shop, row.product_id).await;
    }
    fetch(shop, scope, sku).await
}

pub(super) async fn set_shards(inv: &Inventory<'_>, scope: SellerScope, sku: Uuid, shards: u32) -> Result<SkuStockRow> {
    if !(1..=MAX_SHARDS).contains(&shards) {
        return Err(Error::Invalid(format!("shards must be between 1 and {MAX_SHARDS}")));
    }
    let shop = inv.shop;
    let mut tx = shop.db.begin().await?;
    let row = lock(&mut tx, scope, sku).await?;
    sqlx::query("UPDATE inventory SET shards = $2, updated_at = now() WHERE sku_id = $1")
        .bind(sku)
        .bind(shards as i32)
        .execute(&mut *tx)
        .await?;
    let committed = i64::from(row.reserved) + i64::from(row.held);
    let available = i64::from(row.stock_count) - committed;
    rewrite_counter(inv, Mode::Force, Truth { sku, available, shards: shards as i32 }, row.stock_count.into(), committed).await?;
    commit(shop, tx, sku).await?;
    fetch(shop, scope, sku).await
}

/// Rewrites the counter while the row is locked. With the breaker not
/// closed the counter is left alone: the rebuild before Redis is trusted
/// again reads the new figures. (Never the probe itself: its rebuild would
/// wait for the very row lock this transaction holds.)
async fn rewrite_counter(inv: &Inventory<'_>, mode: Mode, truth: Truth, stock_count: i64, committed: i64) -> Result<()> {
    if !inv.redis_usable_now() {
        return Ok(());
    }
    match counters::sync(inv.shop, mode, &[truth]).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(below_by)) => Err(below(stock_count, committed + below_by.held)),
        Err(err) => {
            inv.redis_failed(&err);
            // Unsure whether Redis applied it: refuse rather than guess.
            Err(super::redis_unavailable(err, inv.rt().breaker.retry_after()))
        }
    }
}

async fn commit(shop: &Shop, tx: sqlx::Transaction<'_, sqlx::Postgres>, sku: Uuid) -> Result<()> {
    if let Err(err) = tx.commit().await {
        counters::resync(shop, &[sku]).await;
        return Err(err.into());
    }
    Ok(())
}

fn below(stock_count: i64, reserved: i64) -> Error {
    Error::Conflict {
        code: "stock_below_reserved",
        message: format!(
            "cannot set stock to {stock_count}: {reserved} {} reserved or in orders",
            if reserved == 1 { "unit is" } else { "units are" }
        ),
        details: Some(serde_json::json!({ "stock_count": stock_count, "reserved": reserved })),
    }
}

async fn fetch(shop: &Shop, scope: SellerScope, sku: Uuid) -> Result<SkuStockRow> {
    let row: Row = sqlx::query_as(&format!("{SELECT} WHERE s.id = $1 AND ($2::uuid IS NULL OR p.seller_id = $2)"))
        .bind(sku)
        .bind(scope.seller())
        .fetch_optional(&shop.db)
        .await?
        .ok_or(Error::NotFound { what: "SKU" })?;
    Ok(with_live_figures(shop, vec![row]).await?.remove(0))
}

/// A SKU went in or out of stock: the search index's in-stock filter
/// follows. `updated_at` tells other processes' indexes too.
async fn refresh_search(shop: &Shop, product: Uuid) {
    let touched = sqlx::query("UPDATE products SET updated_at = now() WHERE id = $1").bind(product).execute(&shop.db).await;
    let reindexed = match touched {
        Ok(_) => shop.search().reindex(&[product]).await,
        Err(err) => Err(err.into()),
    };
    if let Err(err) = reindexed {
        tracing::warn!(error = %err, %product, "stock changed but the search index was not refreshed; the sync worker will retry");
    }
}

//! Seller analytics: per-SKU, per-minute figures (`sku_minute_stats`) for
//! `GET /api/v1/seller/analytics`, made from the event bus by the
//! `analytics` consumer group (`server::workers::analytics`).
//!
//! What is counted, and what is not:
//! - `orders`, `units`, `revenue_cents` come from `order.placed`: one order
//!   per SKU it contains, its units, and units × the unit price the order
//!   was placed at, in the minute the order was placed. Figures are gross:
//!   a cancelled or refunded order is not subtracted (its `order.cancelled`
//!   carries no lines, and moving revenue out of a past minute would make a
//!   flash sale's live chart rewrite itself). Net figures need a
//!   `cancelled_*` column of their own, fed by `order.cancelled`.
//! - `reservations` and `rejections` stay 0 for now. Inventory counts them
//!   in process memory (`shop::stats`) and publishes no event for them;
//!   making them events means an outbox row per reservation attempt on the
//!   flash-sale hot path, which is inventory's call to make. The columns
//!   are here so the API's shape does not change when those events exist.
//!
//! Each event counts once: the upsert and `dedup::first_time` commit in one
//! transaction, so a redelivered event (relay republished, consumer died
//! before its ack) finds its row and changes nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::{dedup, Event};
use crate::inventory::SellerScope;
use crate::{Error, Result, Shop};

/// The consumer group, and its name in `processed_events`.
pub const CONSUMER: &str = "analytics";

/// The widest range one request may ask for (44,640 minutes at most).
pub const MAX_RANGE: Duration = Duration::days(31);

/// One minute of one SKU (shared/API.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub minute: DateTime<Utc>,
    pub reservations: i64,
    pub rejections: i64,
    pub orders: i64,
    pub units: i64,
    pub revenue_cents: i64,
}

/// The lines of an `order.placed` payload this module reads.
#[derive(Deserialize)]
struct Placed {
    items: Vec<PlacedItem>,
}

#[derive(Deserialize)]
struct PlacedItem {
    sku_id: Uuid,
    quantity: i64,
    unit_cents: i64,
}

pub struct Analytics<'a> {
    shop: &'a Shop,
}

impl<'a> Analytics<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    /// Adds one event to the figures, once per event id. Events this module
    /// does not count are skipped without a dedup row.
    pub async fn record(&self, event: &Event) -> Result<()> {
        if event.event_type != "order.placed" {
            return Ok(());
        }
        let placed: Placed = serde_json::from_value(event.payload.clone())
            .map_err(|e| Error::internal(format!("order.placed {} has no readable items: {e}", event.id)))?;
        // (orders, units, revenue) per SKU: an order counts once per SKU
        // even if a SKU appeared on two lines.
        let mut per_sku: BTreeMap<Uuid, (i64, i64, i64)> = BTreeMap::new();
        for item in &placed.items {
            let entry = per_sku.entry(item.sku_id).or_default();
            entry.0 = 1;
            entry.1 += item.quantity;
            entry.2 += item.quantity * item.unit_cents;
        }
        let mut tx = self.shop.db.begin().await?;
        if !dedup::first_time(&mut tx, CONSUMER, event.id).await? {
            return Ok(());
        }
        // BTreeMap order: two events touching the same SKUs lock their rows
        // in the same order, so concurrent consumers cannot deadlock.
        for (sku, (orders, units, revenue)) in per_sku {
            sqlx::query(
                "INSERT INTO sku_minute_stats (sku_id, minute, orders, units, revenue_cents) \
                 VALUES ($1, date_trunc('minute', $2::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', $3, $4, $5) \
                 ON CONFLICT (sku_id, minute) DO UPDATE SET orders = sku_minute_stats.orders + EXCLUDED.orders, \
                 units = sku_minute_stats.units + EXCLUDED.units, revenue_cents = sku_minute_stats.revenue_cents + EXCLUDED.revenue_cents",
            )
            .bind(sku)
            .bind(event.occurred_at)
            .bind(orders)
            .bind(units)
            .bind(revenue)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The minutes in `[from, to)` in which `sku` had any activity, oldest
    /// first (quiet minutes are left out: a month is 44,640 of them). A
    /// seller asking about another seller's SKU gets "not found".
    pub async fn sku_minutes(&self, scope: SellerScope, sku: Uuid, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Bucket>> {
        if from >= to {
            return Err(Error::Invalid("`from` must be before `to`".into()));
        }
        if to - from > MAX_RANGE {
            return Err(Error::Invalid(format!("at most {} days between `from` and `to`", MAX_RANGE.num_days())));
        }
        let seller = match scope {
            SellerScope::Seller(id) => Some(id),
            SellerScope::Admin => None,
        };
        let owned: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM skus s JOIN products p ON p.id = s.product_id WHERE s.id = $1 AND ($2::uuid IS NULL OR p.seller_id = $2)",
        )
        .bind(sku)
        .bind(seller)
        .fetch_optional(&self.shop.db)
        .await?;
        if owned.is_none() {
            return Err(Error::NotFound { what: "SKU" });
        }
        // The minute `from` falls in counts whole: buckets are minutes.
        let rows: Vec<(DateTime<Utc>, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT minute, reservations, rejections, orders, units, revenue_cents FROM sku_minute_stats \
             WHERE sku_id = $1 AND minute >= date_trunc('minute', $2::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AND minute < $3 \
             ORDER BY minute",
        )
        .bind(sku)
        .bind(from)
        .bind(to)
        .fetch_all(&self.shop.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(minute, reservations, rejections, orders, units, revenue_cents)| Bucket { minute, reservations, rejections, orders, units, revenue_cents })
            .collect())
    }
}

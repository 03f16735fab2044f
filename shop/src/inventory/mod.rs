//! Inventory: PostgreSQL holds the truth (`stock_count`, `reserved`,
//! `version`); Redis holds the live available count per SKU, the figure
//! shoppers see and reservations will decrement.
//!
//! This is the read side the catalog needs: counters are loaded lazily from
//! PostgreSQL (`stock_count - reserved`) with SET NX, so a cold SKU costs one
//! query and concurrent loaders cannot overwrite a counter that reservations
//! have already moved. Reservation, expiry and reconciliation build on these
//! keys.

use std::collections::HashMap;

use redis::AsyncCommands;
use uuid::Uuid;

use crate::stats::Stats;
use crate::{Result, Shop};

pub struct Inventory<'a> {
    shop: &'a Shop,
}

impl<'a> Inventory<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    /// `inv:{<sku>}:avail`: the hash tag keeps a SKU's keys in one slot.
    pub fn available_key(&self, sku: Uuid) -> String {
        self.shop.kv.key(&format!("inv:{{{sku}}}:avail"))
    }

    /// Units available now for each SKU, in the order asked. Unknown SKUs
    /// count as 0. When Redis is down the figures come from PostgreSQL, so a
    /// product page still tells the truth, only slower.
    pub async fn available(&self, skus: &[Uuid]) -> Result<Vec<i64>> {
        if skus.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = skus.iter().map(|s| self.available_key(*s)).collect();
        let mut conn = self.shop.kv.conn();
        let cached: Vec<Option<i64>> = match conn.mget(&keys).await {
            Ok(values) => values,
            Err(err) => {
                tracing::warn!(error = %err, "stock counters unreadable; reading PostgreSQL");
                Stats::add(&self.shop.stats.cache_errors, 1);
                let truth = self.load_from_db(skus).await?;
                return Ok(skus.iter().map(|s| truth.get(s).copied().unwrap_or(0)).collect());
            }
        };
        let missing: Vec<Uuid> = skus
            .iter()
            .zip(&cached)
            .filter(|(_, v)| v.is_none())
            .map(|(s, _)| *s)
            .collect();
        if missing.is_empty() {
            return Ok(cached.into_iter().map(|v| v.unwrap_or(0)).collect());
        }
        let truth = self.load_from_db(&missing).await?;
        Stats::add(&self.shop.stats.stock_counter_loads, missing.len() as u64);
        let mut pipe = redis::pipe();
        for sku in &missing {
            let value = truth.get(sku).copied().unwrap_or(0);
            pipe.set_nx(self.available_key(*sku), value).ignore();
        }
        // Re-read what won: another process (or a reservation) may have set it first.
        let missing_keys: Vec<String> = missing.iter().map(|s| self.available_key(*s)).collect();
        pipe.mget(&missing_keys);
        let (won,): (Vec<Option<i64>>,) = match pipe.query_async(&mut conn).await {
            Ok(v) => v,
            Err(err) => {
                tracing::warn!(error = %err, "stock counters not stored; using PostgreSQL figures");
                (missing.iter().map(|s| truth.get(s).copied()).collect(),)
            }
        };
        let loaded: HashMap<Uuid, i64> = missing.iter().copied().zip(won.into_iter().map(|v| v.unwrap_or(0))).collect();
        Ok(skus
            .iter()
            .zip(cached)
            .map(|(sku, v)| v.or_else(|| loaded.get(sku).copied()).unwrap_or(0))
            .collect())
    }

    async fn load_from_db(&self, skus: &[Uuid]) -> Result<HashMap<Uuid, i64>> {
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT sku_id, (stock_count - reserved)::bigint FROM inventory WHERE sku_id = ANY($1)",
        )
        .bind(skus)
        .fetch_all(&self.shop.db)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Drops every counter under this shop's prefix, e.g. after the demo
    /// catalog is reseeded with the same SKU ids.
    pub async fn forget_counters(&self) -> Result<u64> {
        self.shop.kv.delete_matching("inv:*").await.map_err(Into::into)
    }
}

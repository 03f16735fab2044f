//! Read-through caches in Redis.
//!
//! - `product:{<id>}`: the product record JSON, 1 h TTL, deleted whenever the
//!   product or one of its prices changes. Lists read many at once (MGET) and
//!   fill every miss with one PostgreSQL query.
//! - `catalog:list:<generation>:…`: derived lists (categories, new
//!   arrivals, a category page's ids, search results and facets, sitemap
//!   ranges), 5 min TTL. Any catalog write bumps the generation, so stale
//!   lists are never read again and simply expire.
//!
//! Redis failing is not fatal for reads: the catalog falls back to PostgreSQL
//! and counts it, so shoppers can still browse while Redis recovers.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use super::record::{self, ProductRecord};
use crate::stats::Stats;
use crate::{Error, Result, Shop};

pub const PRODUCT_TTL: Duration = Duration::from_secs(3600);
pub const LIST_TTL: Duration = Duration::from_secs(300);

pub fn product_key(shop: &Shop, id: Uuid) -> String {
    shop.kv.key(&format!("product:{{{id}}}"))
}

fn sku_key(shop: &Shop, id: Uuid) -> String {
    shop.kv.key(&format!("sku:{{{id}}}"))
}

/// Cached values for `keys` (MGET), all misses when Redis cannot answer:
/// the caller then reads PostgreSQL, so shoppers can browse through an outage.
async fn read_many(shop: &Shop, keys: &[String], what: &str) -> Vec<Option<String>> {
    match shop.kv.conn().mget(keys).await {
        Ok(values) => values,
        Err(err) => {
            tracing::warn!(error = %err, cache = what, "cache unreadable; reading PostgreSQL");
            Stats::add(&shop.stats.cache_errors, 1);
            vec![None; keys.len()]
        }
    }
}

/// Fills cache entries (1 h) in one round trip; a failure only costs a later miss.
async fn write_many(shop: &Shop, entries: Vec<(String, String)>, what: &str) {
    if entries.is_empty() {
        return;
    }
    let mut pipe = redis::pipe();
    for (key, json) in entries {
        pipe.set_ex(key, json, PRODUCT_TTL.as_secs()).ignore();
    }
    if let Err(err) = pipe.query_async::<()>(&mut shop.kv.conn()).await {
        tracing::warn!(error = %err, cache = what, "cache not filled");
        Stats::add(&shop.stats.cache_errors, 1);
    }
}

/// SKU → product, title and current price, read through `sku:{id}` (1 h).
pub async fn sku_details(shop: &Shop, ids: &[Uuid]) -> Result<HashMap<Uuid, super::SkuDetails>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let keys: Vec<String> = ids.iter().map(|id| sku_key(shop, *id)).collect();
    let cached = read_many(shop, &keys, "SKU").await;
    let mut found = HashMap::with_capacity(ids.len());
    let mut missing = Vec::new();
    for (id, json) in ids.iter().zip(cached) {
        match json.and_then(|j| serde_json::from_str(&j).ok()) {
            Some(details) => {
                found.insert(*id, details);
            }
            None => missing.push(*id),
        }
    }
    if !missing.is_empty() {
        let rows: Vec<(Uuid, Uuid, String, i64, String)> = sqlx::query_as(
            "SELECT k.id, k.product_id, p.title, k.price_cents, k.currency::text
             FROM skus k JOIN products p ON p.id = k.product_id WHERE k.id = ANY($1)",
        )
        .bind(&missing)
        .fetch_all(&shop.db)
        .await?;
        let mut fill = Vec::with_capacity(rows.len());
        for (id, product_id, title, price_cents, currency) in rows {
            let details = super::SkuDetails { product_id, title, price_cents, currency };
            if let Ok(json) = serde_json::to_string(&details) {
                fill.push((sku_key(shop, id), json));
            }
            found.insert(id, details);
        }
        write_many(shop, fill, "SKU").await;
    }
    Ok(found)
}

/// Records for `ids`, in the same order; ids that do not exist are skipped.
pub async fn products(shop: &Shop, ids: &[Uuid]) -> Result<Vec<ProductRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = ids.iter().map(|id| product_key(shop, *id)).collect();
    let cached = read_many(shop, &keys, "product").await;

    let mut found: HashMap<Uuid, ProductRecord> = HashMap::with_capacity(ids.len());
    let mut missing = Vec::new();
    for (id, json) in ids.iter().zip(cached) {
        match json.map(|j| record::parse(&j)) {
            Some(Ok(rec)) => {
                found.insert(*id, rec);
            }
            // A record written by an older version of the code: treat as a miss.
            Some(Err(_)) | None => missing.push(*id),
        }
    }
    Stats::add(&shop.stats.product_cache_hits, found.len() as u64);
    Stats::add(&shop.stats.product_cache_misses, missing.len() as u64);

    if !missing.is_empty() {
        let rows = record::load_json(&shop.db, &missing).await?;
        Stats::add(&shop.stats.product_db_loads, rows.len() as u64);
        write_many(shop, rows.iter().map(|(id, json)| (product_key(shop, *id), json.clone())).collect(), "product").await;
        for (id, json) in rows {
            found.insert(id, record::parse(&json)?);
        }
    }
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

pub async fn product(shop: &Shop, id: Uuid) -> Result<ProductRecord> {
    products(shop, &[id]).await?.pop().ok_or(Error::NotFound { what: "product" })
}

/// Deletes cached records and makes every cached list stale. A failure here
/// must not be swallowed: the write already committed, and a stale price in
/// the cache for an hour is exactly what this exists to prevent.
pub async fn invalidate(shop: &Shop, ids: &[Uuid]) -> Result<()> {
    let skus: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM skus WHERE product_id = ANY($1)")
        .bind(ids)
        .fetch_all(&shop.db)
        .await?;
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.del(product_key(shop, *id)).ignore();
    }
    for sku in skus {
        pipe.del(sku_key(shop, sku)).ignore();
    }
    pipe.incr(generation_key(shop), 1).ignore();
    pipe.query_async::<()>(&mut shop.kv.conn()).await?;
    Ok(())
}

fn generation_key(shop: &Shop) -> String {
    shop.kv.key("catalog:generation")
}

/// A derived list, cached under the current catalog generation.
pub async fn list<T, F, Fut>(shop: &Shop, name: &str, load: F) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    Ok(cached(shop, name, load).await?.0)
}

/// Like [`list`], also saying whether the value came from the cache.
pub(crate) async fn cached<T, F, Fut>(shop: &Shop, name: &str, load: F) -> Result<(T, bool)>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let slot = Slot::open(shop, name).await;
    if let Some(value) = slot.json.as_deref().and_then(|json| serde_json::from_str(json).ok()) {
        return Ok((value, true));
    }
    let value = load().await?;
    if let Ok(json) = serde_json::to_string(&value) {
        slot.fill(shop, json).await;
    }
    Ok((value, false))
}

/// Like [`cached`], for a caller that only sends the value on: the cached
/// JSON as stored, never parsed (a hot list answered from Redis costs no
/// decoding and re-encoding).
pub(crate) async fn cached_json<T, F, Fut>(shop: &Shop, name: &str, load: F) -> Result<(String, bool)>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let slot = Slot::open(shop, name).await;
    if let Some(json) = slot.json {
        return Ok((json, true));
    }
    let json = serde_json::to_string(&load().await?).map_err(|err| Error::Internal(Box::new(err)))?;
    slot.fill(shop, json.clone()).await;
    Ok((json, false))
}

/// A derived list's place in the cache under the current generation, and
/// what it holds. No key when Redis cannot answer: the caller reads
/// PostgreSQL and nothing is stored.
struct Slot {
    key: Option<String>,
    json: Option<String>,
}

impl Slot {
    async fn open(shop: &Shop, name: &str) -> Slot {
        let mut conn = shop.kv.conn();
        let generation: Option<u64> = match conn.get(generation_key(shop)).await {
            Ok(g) => g,
            Err(err) => {
                tracing::warn!(error = %err, "list cache unreadable; reading PostgreSQL");
                Stats::add(&shop.stats.cache_errors, 1);
                return Slot { key: None, json: None };
            }
        };
        let key = shop.kv.key(&format!("catalog:list:{}:{name}", generation.unwrap_or(0)));
        let json = conn.get::<_, Option<String>>(&key).await.ok().flatten();
        Slot { key: Some(key), json }
    }

    async fn fill(self, shop: &Shop, json: String) {
        if let Some(key) = self.key {
            let _: redis::RedisResult<()> = shop.kv.conn().set_ex(&key, json, LIST_TTL.as_secs()).await;
        }
    }
}

/// Makes every cached list stale (their keys name the old generation).
pub(crate) async fn bump_generation(shop: &Shop) -> Result<()> {
    let _: u64 = shop.kv.conn().incr(generation_key(shop), 1).await?;
    Ok(())
}

/// Forgets every catalog cache entry under this prefix (after a reseed).
pub async fn forget_all(shop: &Shop) -> Result<()> {
    shop.kv.delete_matching("product:*").await?;
    shop.kv.delete_matching("sku:*").await?;
    shop.kv.delete_matching("catalog:*").await?;
    Ok(())
}

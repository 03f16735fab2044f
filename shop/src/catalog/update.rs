//! The seller's write paths. Each commits to PostgreSQL first, then drops the
//! cached record (so the next read refills it) and re-indexes the product for
//! search. A cache delete that fails is reported, not swallowed: the write has
//! committed and the caller must know the cache may be stale.

use std::collections::BTreeMap;

use serde::Deserialize;
use uuid::Uuid;

use super::record::ProductRecord;
use super::{cache, Catalog};
use crate::{Error, Result, Shop};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProductPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub attributes: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct SkuPrice {
    pub sku_id: Uuid,
    pub price_cents: i64,
}

pub(super) async fn update_product(shop: &Shop, id: Uuid, patch: ProductPatch) -> Result<ProductRecord> {
    if let Some(title) = &patch.title {
        let len = title.trim().chars().count();
        if !(1..=300).contains(&len) {
            return Err(Error::Invalid("a title needs 1 to 300 characters".into()));
        }
    }
    if let Some(description) = &patch.description {
        if description.chars().count() > 20_000 {
            return Err(Error::Invalid("a description is at most 20,000 characters".into()));
        }
    }
    let attributes = patch.attributes.map(|a| serde_json::to_value(a).expect("string map serialises"));
    let updated = sqlx::query(
        r#"
        UPDATE products
        SET title = COALESCE($2, title),
            description = COALESCE($3, description),
            attributes = COALESCE($4, attributes),
            updated_at = now()
        WHERE id = $1
        "#,
    )
    .bind(id)
    .bind(patch.title.map(|t| t.trim().to_owned()))
    .bind(patch.description)
    .bind(attributes)
    .execute(&shop.db)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(Error::NotFound { what: "product" });
    }
    after_write(shop, id).await
}

pub(super) async fn set_prices(shop: &Shop, product: Uuid, prices: &[SkuPrice]) -> Result<ProductRecord> {
    if prices.is_empty() {
        return Err(Error::Invalid("no prices given".into()));
    }
    if let Some(bad) = prices.iter().find(|p| p.price_cents < 0 || p.price_cents > 10_000_000_000) {
        return Err(Error::Invalid(format!("price for SKU {} must be between 0 and 100,000,000.00", bad.sku_id)));
    }
    let mut tx = shop.db.begin().await?;
    for price in prices {
        let updated = sqlx::query("UPDATE skus SET price_cents = $3 WHERE id = $2 AND product_id = $1")
            .bind(product)
            .bind(price.sku_id)
            .bind(price.price_cents)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(Error::NotFound { what: "SKU" });
        }
    }
    // The list price ("from €x") follows the cheapest SKU.
    sqlx::query(
        r#"
        UPDATE products
        SET min_price_cents = (SELECT min(price_cents) FROM skus WHERE product_id = $1), updated_at = now()
        WHERE id = $1
        "#,
    )
    .bind(product)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    after_write(shop, product).await
}

pub(super) async fn after_write(shop: &Shop, id: Uuid) -> Result<ProductRecord> {
    cache::invalidate(shop, &[id]).await?;
    shop.search().reindex(&[id]).await?;
    Catalog::new(shop).record(id).await
}

//! What the search index knows about a product, read from PostgreSQL.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SearchDoc {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub brand: String,
    pub category_slug: String,
    pub category_name: String,
    pub department_slug: Option<String>,
    pub department_name: Option<String>,
    /// Variant values ("Black", "256 GB") so "black headphones" matches.
    pub keywords: String,
    pub price_cents: i64,
    pub currency: String,
    pub rating_avg: f64,
    pub rating_count: i32,
    pub created_at: DateTime<Utc>,
    pub in_stock: bool,
}

const SELECT: &str = r#"
    SELECT p.id, p.title, p.description, b.name AS brand,
           c.slug AS category_slug, c.name AS category_name,
           d.slug AS department_slug, d.name AS department_name,
           COALESCE((SELECT string_agg(DISTINCT v.value, ' ')
                     FROM skus k, jsonb_each_text(k.attributes) v
                     WHERE k.product_id = p.id), '') AS keywords,
           p.min_price_cents AS price_cents, p.currency::text AS currency,
           p.rating_avg, p.rating_count, p.created_at,
           EXISTS (SELECT 1 FROM skus k JOIN inventory i ON i.sku_id = k.id
                   WHERE k.product_id = p.id AND i.stock_count > i.reserved + i.held) AS in_stock
    FROM products p
    JOIN brands b ON b.id = p.brand_id
    JOIN categories c ON c.id = p.category_id
    LEFT JOIN categories d ON d.id = c.parent_id
"#;

/// Documents for products with id > `after`, in id order (keyset batches).
pub async fn load(db: &PgPool, after: Option<Uuid>, limit: i64) -> Result<Vec<SearchDoc>> {
    let sql = format!("{SELECT} WHERE ($1::uuid IS NULL OR p.id > $1) ORDER BY p.id LIMIT $2");
    Ok(sqlx::query_as(&sql).bind(after).bind(limit).fetch_all(db).await?)
}

pub async fn load_ids(db: &PgPool, ids: &[Uuid]) -> Result<Vec<SearchDoc>> {
    let sql = format!("{SELECT} WHERE p.id = ANY($1)");
    Ok(sqlx::query_as(&sql).bind(ids).fetch_all(db).await?)
}

//! The seller's view of its own products: newest first, keyset-paged,
//! optionally narrowed by a text match on title or brand. Read from
//! PostgreSQL, never a cache: a seller who just saved an edit must see it.

use chrono::{DateTime, Utc};
use model::{SellerProduct, SellerProductPage};
use uuid::Uuid;

use crate::flash::rfc3339;
use crate::inventory::SellerScope;
use crate::{Error, Result, Shop};

pub const MAX_PAGE: i64 = 200;

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    title: String,
    brand: String,
    category_slug: String,
    category_name: String,
    min_price_cents: i64,
    currency: String,
    sku_count: i64,
    stock_count: i64,
    rating_avg: f64,
    rating_count: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub(super) async fn list(shop: &Shop, scope: SellerScope, text: Option<&str>, limit: i64, after: Option<Uuid>) -> Result<SellerProductPage> {
    let limit = limit.clamp(1, MAX_PAGE);
    if let Some(cursor) = after {
        let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products WHERE id = $1)")
            .bind(cursor)
            .fetch_one(&shop.db)
            .await?;
        if !known {
            return Err(Error::BadInput { param: "cursor".into(), message: "not a cursor this list gave out".into() });
        }
    }
    let pattern = text.map(str::trim).filter(|t| !t.is_empty()).map(|t| format!("%{}%", like_escape(t)));
    let rows: Vec<Row> = sqlx::query_as(
        r#"
        SELECT p.id, p.title, b.name AS brand, c.slug AS category_slug, c.name AS category_name,
               p.min_price_cents, p.currency::text AS currency,
               (SELECT count(*) FROM skus k WHERE k.product_id = p.id) AS sku_count,
               (SELECT COALESCE(sum(i.stock_count), 0)::bigint FROM skus k JOIN inventory i ON i.sku_id = k.id
                 WHERE k.product_id = p.id) AS stock_count,
               p.rating_avg, p.rating_count, p.created_at, p.updated_at
        FROM products p
        JOIN brands b ON b.id = p.brand_id
        JOIN categories c ON c.id = p.category_id
        WHERE ($1::uuid IS NULL OR p.seller_id = $1)
          AND ($2::text IS NULL OR p.title ILIKE $2 OR b.name ILIKE $2)
          AND ($3::uuid IS NULL OR (p.created_at, p.id) < (SELECT created_at, id FROM products WHERE id = $3))
        ORDER BY p.created_at DESC, p.id DESC
        LIMIT $4
        "#,
    )
    .bind(scope.seller())
    .bind(pattern)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&shop.db)
    .await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<SellerProduct> = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| SellerProduct {
            id: r.id,
            title: r.title,
            brand: r.brand,
            category_slug: r.category_slug,
            category_name: r.category_name,
            min_price_cents: r.min_price_cents,
            currency: r.currency,
            sku_count: r.sku_count,
            stock_count: r.stock_count,
            rating_avg: r.rating_avg,
            rating_count: r.rating_count,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        })
        .collect();
    let next_cursor = if more { items.last().map(|p| p.id) } else { None };
    Ok(SellerProductPage { items, next_cursor })
}

/// Whether `product` exists and `scope` may manage it.
pub(super) async fn owns(shop: &Shop, scope: SellerScope, product: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products WHERE id = $1 AND ($2::uuid IS NULL OR seller_id = $2))")
        .bind(product)
        .bind(scope.seller())
        .fetch_one(&shop.db)
        .await?)
}

/// A shopper's `50%_off` is text, not a pattern.
fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

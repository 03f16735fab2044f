//! What search engines are told exists: the product pages, split into
//! sitemap pages of at most [`MAX_PAGE`] URLs (the protocol's limit), and the
//! category pages.
//!
//! A page is named by the id range it covers, `[from, to)` over the primary
//! key, not by a page number: however products come and go between the
//! crawler reading the index and reading a page, consecutive ranges never
//! overlap and never leave a gap, so every product is listed exactly once.
//! Reading a page is one range scan of the primary key; only the index (the
//! range boundaries, one row per page) needs a pass over the table, and it is
//! cached under the catalog generation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Result, Shop};

/// The sitemap protocol's limit of URLs per file.
pub const MAX_PAGE: usize = 50_000;

/// One sitemap page of the index: products with ids in `[from, to)`
/// (`to: None`: through the last id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRange {
    pub from: Uuid,
    pub to: Option<Uuid>,
    /// The newest change among its products.
    pub lastmod: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProductEntry {
    pub id: Uuid,
    pub lastmod: DateTime<Utc>,
}

/// The product ranges for pages of `page_size` products (at most [`MAX_PAGE`]).
pub(super) async fn product_ranges(shop: &Shop, page_size: usize) -> Result<Vec<ProductRange>> {
    let page_size = page_size.clamp(1, MAX_PAGE) as i64;
    let db = shop.db.clone();
    super::cache::list(shop, &format!("sitemap:{page_size}"), || async move {
        let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
            // PostgreSQL has no min(uuid): a page's first id is the row
            // whose position is a multiple of the page size.
            "SELECT id, lastmod FROM (
                 SELECT id, position, max(updated_at) OVER (PARTITION BY position / $1) AS lastmod
                 FROM (SELECT id, updated_at, row_number() OVER (ORDER BY id) - 1 AS position FROM products) numbered
             ) paged WHERE position % $1 = 0 ORDER BY id",
        )
        .bind(page_size)
        .fetch_all(&db)
        .await?;
        let starts: Vec<Uuid> = rows.iter().map(|(from, _)| *from).collect();
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, (from, lastmod))| ProductRange { from, to: starts.get(i + 1).copied(), lastmod })
            .collect())
    })
    .await
}

/// The products of one range, by id, at most [`MAX_PAGE`] of them (a range
/// this server did not issue cannot make a page larger than the protocol allows).
pub(super) async fn products_in(shop: &Shop, from: Uuid, to: Option<Uuid>) -> Result<Vec<ProductEntry>> {
    let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, updated_at FROM products WHERE id >= $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id LIMIT $3",
    )
    .bind(from)
    .bind(to)
    .bind(MAX_PAGE as i64)
    .fetch_all(&shop.db)
    .await?;
    Ok(rows.into_iter().map(|(id, lastmod)| ProductEntry { id, lastmod }).collect())
}

//! The catalog: categories, products and SKUs. Owns those tables.

mod demo;

use model::{CategorySummary, ProductSummary};
use uuid::Uuid;

use crate::{Result, Shop};

pub use demo::SeedReport;

/// Page sizes are clamped so no caller can ask for the whole table.
pub const MAX_LIST_LIMIT: i64 = 48;

pub struct Catalog<'a> {
    shop: &'a Shop,
}

impl<'a> Catalog<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    /// Top-level categories in display order, with how many products each holds.
    pub async fn top_categories(&self) -> Result<Vec<CategorySummary>> {
        let rows = sqlx::query_as::<_, (Uuid, String, String, i64)>(
            r#"
            SELECT c.id, c.slug, c.name,
                   (SELECT count(*) FROM products p WHERE p.category_id = c.id)
            FROM categories c
            WHERE c.parent_id IS NULL
            ORDER BY c.position, c.name
            "#,
        )
        .fetch_all(&self.shop.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, slug, name, product_count)| CategorySummary { id, slug, name, product_count })
            .collect())
    }

    /// The newest products, each with its cheapest SKU's price.
    pub async fn new_arrivals(&self, limit: i64) -> Result<Vec<ProductSummary>> {
        let limit = limit.clamp(1, MAX_LIST_LIMIT);
        let rows = sqlx::query_as::<_, (Uuid, String, String, String, i64, String)>(
            r#"
            SELECT p.id, p.title, c.slug, c.name, s.price_cents, s.currency
            FROM products p
            JOIN categories c ON c.id = p.category_id
            JOIN LATERAL (
                SELECT price_cents, currency FROM skus
                WHERE product_id = p.id ORDER BY price_cents LIMIT 1
            ) s ON true
            ORDER BY p.created_at DESC, p.id DESC
            LIMIT $1
            "#,
        )
        .bind(limit)
        .fetch_all(&self.shop.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, title, category_slug, category_name, price_cents, currency)| ProductSummary {
                id,
                title,
                category_slug,
                category_name,
                price_cents,
                currency: currency.trim().to_owned(),
            })
            .collect())
    }

    pub async fn is_empty(&self) -> Result<bool> {
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products)")
            .fetch_one(&self.shop.db)
            .await?;
        Ok(!any)
    }

    /// Seeds the small demo catalog (deterministic) in one transaction.
    pub async fn seed_demo(&self) -> Result<SeedReport> {
        demo::seed(&self.shop.db).await
    }
}

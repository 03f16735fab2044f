//! The cached form of a product: everything the product page and product
//! cards need except live stock, as one JSON document built by PostgreSQL.
//! The same bytes go into Redis, so a cache fill costs no re-serialisation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use model::{Availability, Image, NamedRef, Product, ProductSummary, Sku};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRecord {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub attributes: BTreeMap<String, String>,
    pub brand: NamedRef,
    pub category: NamedRef,
    pub department: Option<NamedRef>,
    pub seller: NamedRef,
    pub images: Vec<Image>,
    pub rating_avg: f64,
    pub rating_count: i32,
    pub min_price_cents: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub skus: Vec<SkuRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkuRecord {
    pub sku_id: Uuid,
    pub attributes: BTreeMap<String, String>,
    pub price_cents: i64,
    pub currency: String,
}

impl ProductRecord {
    pub fn summary(&self) -> ProductSummary {
        ProductSummary {
            id: self.id,
            title: self.title.clone(),
            brand: self.brand.name.clone(),
            category_slug: self.category.slug.clone(),
            category_name: self.category.name.clone(),
            price_cents: self.min_price_cents,
            currency: self.currency.clone(),
            rating_avg: self.rating_avg,
            rating_count: self.rating_count,
            image: self.images.first().cloned(),
        }
    }

    /// The product page's view: this record plus live stock per SKU (same order as `skus`).
    pub fn with_stock(self, available: &[i64]) -> Product {
        let skus = self
            .skus
            .into_iter()
            .zip(available.iter().copied().chain(std::iter::repeat(0)))
            .map(|(sku, available)| Sku {
                sku_id: sku.sku_id,
                attributes: sku.attributes,
                price_cents: sku.price_cents,
                currency: sku.currency,
                availability: Availability::from_available(available),
                available: available.max(0),
            })
            .collect();
        Product {
            id: self.id,
            title: self.title,
            description: self.description,
            attributes: self.attributes,
            brand: self.brand,
            category: self.category,
            department: self.department,
            seller: self.seller,
            images: self.images,
            rating_avg: self.rating_avg,
            rating_count: self.rating_count,
            skus,
        }
    }
}

/// Loads records as JSON text straight from PostgreSQL, keyed by id.
pub async fn load_json(db: &PgPool, ids: &[Uuid]) -> Result<Vec<(Uuid, String)>> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        r#"
        SELECT p.id, jsonb_build_object(
            'id', p.id,
            'title', p.title,
            'description', p.description,
            'attributes', p.attributes,
            'brand', jsonb_build_object('id', b.id, 'slug', b.slug, 'name', b.name),
            'category', jsonb_build_object('id', c.id, 'slug', c.slug, 'name', c.name),
            'department', CASE WHEN d.id IS NULL THEN NULL
                          ELSE jsonb_build_object('id', d.id, 'slug', d.slug, 'name', d.name) END,
            'seller', jsonb_build_object('id', s.id, 'slug', s.slug, 'name', s.name),
            'images', COALESCE((
                SELECT jsonb_agg(jsonb_build_object('url', i.url, 'alt', i.alt, 'width', i.width, 'height', i.height)
                                 ORDER BY i.position)
                FROM product_images i WHERE i.product_id = p.id), '[]'::jsonb),
            'rating_avg', p.rating_avg,
            'rating_count', p.rating_count,
            'min_price_cents', p.min_price_cents,
            'currency', p.currency,
            'created_at', p.created_at,
            'skus', COALESCE((
                SELECT jsonb_agg(jsonb_build_object('sku_id', k.id, 'attributes', k.attributes,
                                                    'price_cents', k.price_cents, 'currency', k.currency)
                                 ORDER BY k.position, k.id)
                FROM skus k WHERE k.product_id = p.id), '[]'::jsonb)
        )::text
        FROM products p
        JOIN brands b ON b.id = p.brand_id
        JOIN categories c ON c.id = p.category_id
        LEFT JOIN categories d ON d.id = c.parent_id
        JOIN sellers s ON s.id = p.seller_id
        WHERE p.id = ANY($1)
        "#,
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows)
}

pub fn parse(json: &str) -> Result<ProductRecord> {
    serde_json::from_str(json).map_err(Error::internal)
}

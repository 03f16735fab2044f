//! The seller's catalog writes and listing: `POST /api/v1/seller/products`,
//! `PATCH /api/v1/seller/products/{id}` and `GET /api/v1/seller/products`.
//! Both writes answer with the product as the public API shows it
//! ([`crate::Product`], live stock included).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A new product with at least one SKU. Unknown fields are refused, so a
/// misspelt `price_cent` is an error instead of a silently free product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// A category's slug, e.g. `headphones`.
    pub category: String,
    /// A brand's name; a brand the shop does not know yet is created.
    pub brand: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The shop's currency when absent; any other is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    pub skus: Vec<NewSku>,
    /// Whose shop the product joins: an admin must name it; a seller may
    /// only name its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSku {
    /// What sets this variant apart, e.g. `{"Colour": "Black"}`; empty for
    /// a product with one variant.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    pub price_cents: i64,
    /// Units in stock from the start (0 when absent).
    #[serde(default)]
    pub stock_count: i64,
}

/// A partial edit: absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A category's slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// A brand's name (created when new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// Replaces the product's attributes whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    /// SKUs to change (with `sku_id`) or add (without). SKUs not listed are
    /// kept as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skus: Vec<SkuChange>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuChange {
    /// The SKU to change; absent to add a new one (then `price_cents` is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_cents: Option<i64>,
    /// Only for a new SKU: an existing SKU's stock moves through
    /// `PUT /api/v1/seller/skus/{sku_id}/stock`, which checks live holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_count: Option<i64>,
}

/// One row of the seller's product list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SellerProduct {
    pub id: Uuid,
    pub title: String,
    pub brand: String,
    pub category_slug: String,
    pub category_name: String,
    /// The cheapest SKU's price.
    pub min_price_cents: i64,
    pub currency: String,
    pub sku_count: i64,
    /// Units in stock over all SKUs (reserved ones included).
    pub stock_count: i64,
    pub rating_avg: f64,
    pub rating_count: i32,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
}

/// Newest first; pass `next_cursor` back as `cursor` for the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SellerProductPage {
    pub items: Vec<SellerProduct>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

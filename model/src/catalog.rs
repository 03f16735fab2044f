use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A category as shown in navigation and on the home page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategorySummary {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub product_count: i64,
}

/// A product as shown on a card in a list: the cheapest SKU's price is the
/// "from" price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductSummary {
    pub id: Uuid,
    pub title: String,
    pub category_slug: String,
    pub category_name: String,
    pub price_cents: i64,
    pub currency: String,
}

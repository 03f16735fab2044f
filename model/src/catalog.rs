use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A category as shown in navigation and on the home page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategorySummary {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    /// The parent's slug; `None` for a top-level department.
    pub parent: Option<String>,
    /// Products in this category and all of its subcategories.
    pub product_count: i64,
}

/// A product as shown on a card in a list: the cheapest SKU's price is the
/// "from" price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductSummary {
    pub id: Uuid,
    pub title: String,
    pub brand: String,
    pub category_slug: String,
    pub category_name: String,
    pub price_cents: i64,
    pub currency: String,
    pub rating_avg: f64,
    pub rating_count: i32,
    pub image: Option<Image>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub url: String,
    pub alt: String,
    pub width: i32,
    pub height: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedRef {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
}

/// The product page and `GET /api/v1/products/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    /// Product-level facts shown as a spec table, e.g. "Material: Oak".
    pub attributes: BTreeMap<String, String>,
    pub brand: NamedRef,
    pub category: NamedRef,
    /// The category's parent, for the breadcrumb.
    pub department: Option<NamedRef>,
    pub seller: NamedRef,
    pub images: Vec<Image>,
    pub rating_avg: f64,
    pub rating_count: i32,
    pub skus: Vec<Sku>,
}

impl Product {
    pub fn sku(&self, id: Uuid) -> Option<&Sku> {
        self.skus.iter().find(|s| s.sku_id == id)
    }

    /// The SKU a shopper lands on: the first one that can be bought, else the first.
    pub fn default_sku(&self) -> Option<&Sku> {
        self.skus.iter().find(|s| s.available > 0).or_else(|| self.skus.first())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sku {
    pub sku_id: Uuid,
    pub attributes: BTreeMap<String, String>,
    pub price_cents: i64,
    pub currency: String,
    pub availability: Availability,
    /// Units that can be bought right now (stock minus live reservations).
    pub available: i64,
}

impl Sku {
    /// "Colour: Black · Size: M", or "Standard" for a single-variant product.
    pub fn label(&self) -> String {
        if self.attributes.is_empty() {
            return "Standard".to_owned();
        }
        self.attributes.values().cloned().collect::<Vec<_>>().join(" · ")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    InStock,
    LowStock,
    OutOfStock,
}

impl Availability {
    /// At or below this many units a product page says "Only N left".
    pub const LOW_STOCK_THRESHOLD: i64 = 5;

    pub fn from_available(available: i64) -> Self {
        if available <= 0 {
            Availability::OutOfStock
        } else if available <= Self::LOW_STOCK_THRESHOLD {
            Availability::LowStock
        } else {
            Availability::InStock
        }
    }
}

/// Live stock for one SKU, refreshed on the product page without the cached product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuStock {
    pub sku_id: Uuid,
    pub available: i64,
    pub availability: Availability,
}

/// Sort orders shared by search, browse and the API's `sort=` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    #[default]
    Relevance,
    PriceAsc,
    PriceDesc,
    Rating,
    Newest,
}

impl Sort {
    pub const ALL: [Sort; 5] = [Sort::Relevance, Sort::PriceAsc, Sort::PriceDesc, Sort::Rating, Sort::Newest];

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Relevance => "relevance",
            Sort::PriceAsc => "price_asc",
            Sort::PriceDesc => "price_desc",
            Sort::Rating => "rating",
            Sort::Newest => "newest",
        }
    }

    pub fn parse(s: &str) -> Option<Sort> {
        Sort::ALL.into_iter().find(|sort| sort.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Sort::Relevance => "Best match",
            Sort::PriceAsc => "Price: low to high",
            Sort::PriceDesc => "Price: high to low",
            Sort::Rating => "Customer rating",
            Sort::Newest => "Newest",
        }
    }
}

/// A price facet bucket: `[min_cents, max_cents)`, open-ended when `max_cents` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceBucket {
    pub min_cents: i64,
    pub max_cents: Option<i64>,
    pub count: u64,
}

/// Facet counts. Each facet is counted with every active filter except its
/// own, so picking a second brand is always possible.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Facets {
    pub brand: BTreeMap<String, u64>,
    pub category: BTreeMap<String, u64>,
    /// "4" counts products rated 4 and up, and so on down to "1".
    pub rating: BTreeMap<String, u64>,
    pub price: Vec<PriceBucket>,
}

/// `GET /api/v1/products` and the search page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchPage {
    pub hits: Vec<ProductSummary>,
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
    pub facets: Facets,
}

/// A category page: one keyset page of products.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrowsePage {
    pub category: CategorySummary,
    pub subcategories: Vec<CategorySummary>,
    pub department: Option<CategorySummary>,
    pub products: Vec<ProductSummary>,
    /// Opaque; pass back as `cursor` for the next page. `None` on the last page.
    pub next_cursor: Option<String>,
    /// Brands in this category with product counts under the other filters.
    pub brands: BTreeMap<String, u64>,
}

/// One search-as-you-type suggestion: a product whose words start like the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggestion {
    pub product_id: Uuid,
    pub title: String,
    pub category: String,
}

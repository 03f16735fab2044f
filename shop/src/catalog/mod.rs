//! The catalog: sellers, brands, the category tree, products, SKUs and
//! images. Owns those tables and the `product:{id}` cache; other services
//! reach them only through [`Catalog`].

mod browse;
pub mod cache;
pub mod images;
pub mod record;
pub mod seed;
mod seller;
pub mod sitemap;
mod update;

use std::collections::HashMap;

use model::{BrowsePage, CategorySummary, Product, ProductSummary, SearchParams, SkuStock};
use uuid::Uuid;

use crate::{Error, Result, Shop};

pub use record::ProductRecord;
pub use seed::{SeedOptions, SeedReport};
pub use model::{NewProduct, ProductChange};
pub use update::{Claim, Created, SkuPrice, SHOP_CURRENCY};

use crate::inventory::SellerScope;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkuDetails {
    pub product_id: Uuid,
    pub title: String,
    pub price_cents: i64,
    pub currency: String,
}

/// Page sizes are clamped so no caller can ask for the whole table.
pub const MAX_LIST_LIMIT: i64 = 48;

pub struct Catalog<'a> {
    shop: &'a Shop,
}

impl<'a> Catalog<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    /// Every category, departments first in display order, each followed by
    /// its subcategories. Counts include subcategories.
    pub async fn categories(&self) -> Result<Vec<CategorySummary>> {
        let db = self.shop.db.clone();
        cache::list(self.shop, "categories", || async move {
            // id, slug, name, parent slug, parent position, position, own product count
            type Row = (Uuid, String, String, Option<String>, Option<i32>, i32, i64);
            let rows: Vec<Row> = sqlx::query_as(
                r#"
                SELECT c.id, c.slug, c.name, parent.slug, parent.position, c.position,
                       (SELECT count(*) FROM products p WHERE p.category_id = c.id)
                FROM categories c
                LEFT JOIN categories parent ON parent.id = c.parent_id
                ORDER BY COALESCE(parent.position, c.position), parent.position NULLS FIRST, c.position, c.name
                "#,
            )
            .fetch_all(&db)
            .await?;
            let mut child_totals: HashMap<String, i64> = HashMap::new();
            for (_, _, _, parent, _, _, count) in &rows {
                if let Some(parent) = parent {
                    *child_totals.entry(parent.clone()).or_default() += count;
                }
            }
            Ok(rows
                .into_iter()
                .map(|(id, slug, name, parent, _, _, own)| {
                    let product_count = own + child_totals.get(&slug).copied().unwrap_or(0);
                    CategorySummary { id, slug, name, parent, product_count }
                })
                .collect::<Vec<_>>())
        })
        .await
    }

    /// Top-level categories (departments) in display order.
    pub async fn top_categories(&self) -> Result<Vec<CategorySummary>> {
        Ok(self.categories().await?.into_iter().filter(|c| c.parent.is_none()).collect())
    }

    pub async fn category(&self, slug: &str) -> Result<CategorySummary> {
        self.categories()
            .await?
            .into_iter()
            .find(|c| c.slug == slug)
            .ok_or(Error::NotFound { what: "category" })
    }

    /// The newest products, for the home page.
    pub async fn new_arrivals(&self, limit: i64) -> Result<Vec<ProductSummary>> {
        let limit = limit.clamp(1, MAX_LIST_LIMIT);
        let db = self.shop.db.clone();
        let ids: Vec<Uuid> = cache::list(self.shop, &format!("new-arrivals:{limit}"), || async move {
            let ids: Vec<Uuid> =
                sqlx::query_scalar("SELECT id FROM products ORDER BY created_at DESC, id DESC LIMIT $1")
                    .bind(limit)
                    .fetch_all(&db)
                    .await?;
            Ok(ids)
        })
        .await?;
        self.summaries(&ids).await
    }

    /// Product cards for `ids`, in that order (unknown ids are skipped).
    pub async fn summaries(&self, ids: &[Uuid]) -> Result<Vec<ProductSummary>> {
        Ok(cache::products(self.shop, ids).await?.iter().map(ProductRecord::summary).collect())
    }

    /// The cached record, without stock.
    pub async fn record(&self, id: Uuid) -> Result<ProductRecord> {
        cache::product(self.shop, id).await
    }

    /// The product page: the cached record plus live stock per SKU.
    pub async fn product(&self, id: Uuid) -> Result<Product> {
        let record = self.record(id).await?;
        let skus: Vec<Uuid> = record.skus.iter().map(|s| s.sku_id).collect();
        let available = self.shop.inventory().available(&skus).await?;
        Ok(record.with_stock(&available))
    }

    /// Live stock for a product's SKUs: what the product page refreshes
    /// after hydration, since the page itself may sit in a CDN for a while.
    pub async fn stock(&self, id: Uuid) -> Result<Vec<SkuStock>> {
        Ok(self
            .product(id)
            .await?
            .skus
            .into_iter()
            .map(|s| SkuStock { sku_id: s.sku_id, available: s.available, availability: s.availability })
            .collect())
    }

    /// The sitemap index: product id ranges of at most `page_size` each.
    pub async fn sitemap_ranges(&self, page_size: usize) -> Result<Vec<sitemap::ProductRange>> {
        sitemap::product_ranges(self.shop, page_size).await
    }

    /// One sitemap page: the products with ids in `[from, to)`.
    pub async fn sitemap_products(&self, from: Uuid, to: Option<Uuid>) -> Result<Vec<sitemap::ProductEntry>> {
        sitemap::products_in(self.shop, from, to).await
    }

    /// A category page: one keyset page of products under the filters.
    pub async fn browse(&self, slug: &str, params: &SearchParams) -> Result<BrowsePage> {
        browse::browse(self.shop, slug, params).await
    }

    /// Loads every product into the cache and every SKU's stock counter into
    /// Redis, in batches: after a deploy or a Redis flush, so the first
    /// shoppers do not all land on PostgreSQL. Returns (products, SKUs).
    pub async fn warm_cache(&self) -> Result<(usize, usize)> {
        const BATCH: i64 = 1_000;
        let (mut products, mut skus) = (0, 0);
        let mut after: Option<Uuid> = None;
        loop {
            let ids: Vec<Uuid> = sqlx::query_scalar(
                "SELECT id FROM products WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(BATCH)
            .fetch_all(&self.shop.db)
            .await?;
            let Some(last) = ids.last() else { break };
            after = Some(*last);
            let records = cache::products(self.shop, &ids).await?;
            let sku_ids: Vec<Uuid> = records.iter().flat_map(|r| r.skus.iter().map(|s| s.sku_id)).collect();
            self.shop.inventory().available(&sku_ids).await?;
            products += records.len();
            skus += sku_ids.len();
        }
        Ok((products, skus))
    }

    /// What the cart needs to know about SKUs: product, title, current price.
    /// Read through the `sku:{id}` cache (dropped with the product's record
    /// on any change), so cart writes do not touch PostgreSQL once warm.
    /// SKUs that do not exist are absent from the map.
    pub async fn sku_details(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, SkuDetails>> {
        cache::sku_details(self.shop, ids).await
    }

    /// SKU → (price, currency) as PostgreSQL has them now, read on the
    /// caller's connection (checkout's order transaction): what an order is
    /// charged never comes from a cache.
    pub async fn prices_in(&self, conn: &mut sqlx::PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, (i64, String)>> {
        let rows: Vec<(Uuid, i64, String)> = sqlx::query_as("SELECT id, price_cents, currency::text FROM skus WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
        Ok(rows.into_iter().map(|(id, price, currency)| (id, (price, currency))).collect())
    }

    /// The seller whose shop sells `sku` (`None`: no such SKU), read from
    /// PostgreSQL: what seller-only writes about a SKU check ownership by.
    pub async fn sku_seller(&self, sku: Uuid) -> Result<Option<Uuid>> {
        let seller: Option<Uuid> = sqlx::query_scalar("SELECT p.seller_id FROM skus s JOIN products p ON p.id = s.product_id WHERE s.id = $1")
            .bind(sku)
            .fetch_optional(&self.shop.db)
            .await?;
        Ok(seller)
    }

    /// Drops the cached records (and SKU details) of `products`, e.g. when
    /// checkout found a cached price that PostgreSQL no longer has.
    pub async fn forget(&self, products: &[Uuid]) -> Result<()> {
        cache::invalidate(self.shop, products).await
    }

    /// The seller listed first (by name), e.g. to give the demo seller account a shop.
    pub async fn first_seller(&self) -> Result<model::NamedRef> {
        let row: Option<(Uuid, String, String)> =
            sqlx::query_as("SELECT id, slug, name FROM sellers ORDER BY name, id LIMIT 1")
                .fetch_optional(&self.shop.db)
                .await?;
        let (id, slug, name) = row.ok_or(Error::NotFound { what: "seller" })?;
        Ok(model::NamedRef { id, slug, name })
    }

    pub async fn is_empty(&self) -> Result<bool> {
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products)")
            .fetch_one(&self.shop.db)
            .await?;
        Ok(!any)
    }

    /// Generates the demo catalog (deterministic), then forgets caches and
    /// stock counters that may describe an earlier catalog with the same ids.
    pub async fn seed(&self, options: SeedOptions) -> Result<SeedReport> {
        let report = seed::seed(&self.shop.db, options).await?;
        cache::forget_all(self.shop).await?;
        self.shop.inventory().forget_counters().await?;
        Ok(report)
    }

    /// The products `scope` manages, newest first; `text` narrows by title or brand.
    pub async fn seller_products(&self, scope: SellerScope, text: Option<&str>, limit: i64, after: Option<Uuid>) -> Result<model::SellerProductPage> {
        seller::list(self.shop, scope, text, limit, after).await
    }

    /// One product as its seller edits it (the public view, live stock
    /// included); another seller's is not found.
    pub async fn seller_product(&self, scope: SellerScope, id: Uuid) -> Result<Product> {
        if !seller::owns(self.shop, scope, id).await? {
            return Err(Error::NotFound { what: "product" });
        }
        self.product(id).await
    }

    /// Adds a product with its SKUs and their opening stock to a seller's
    /// shop. With a claim, a retry of the same create (same caller, key and
    /// body) answers with the product the first attempt made.
    pub async fn create_product(&self, scope: SellerScope, new: NewProduct, claim: Option<Claim<'_>>) -> Result<(Product, Created)> {
        let created = update::create(self.shop, scope, new, claim).await?;
        Ok((self.product(created.id).await?, created))
    }

    /// Forgets product-creation keys past their retention.
    pub async fn prune_keys(&self) -> Result<u64> {
        update::prune_keys(self.shop).await
    }

    /// Changes a product's text, category, brand or attributes, its SKUs'
    /// prices and variants, and adds SKUs, in one transaction.
    pub async fn change_product(&self, scope: SellerScope, id: Uuid, change: ProductChange) -> Result<Product> {
        update::change(self.shop, scope, id, change).await?;
        self.product(id).await
    }

    /// An admin's edit of a product's text or attributes.
    pub async fn update_product(&self, id: Uuid, change: ProductChange) -> Result<ProductRecord> {
        update::change(self.shop, SellerScope::Admin, id, change).await
    }

    /// An admin's repricing of SKUs.
    pub async fn set_prices(&self, product: Uuid, prices: &[SkuPrice]) -> Result<ProductRecord> {
        let skus = prices
            .iter()
            .map(|p| model::SkuChange { sku_id: Some(p.sku_id), price_cents: Some(p.price_cents), ..Default::default() })
            .collect();
        update::change(self.shop, SellerScope::Admin, product, ProductChange { skus, ..Default::default() }).await
    }

    /// For another service that changed a product's row (reviews move the
    /// rating aggregates): the same follow-up as a seller edit, so there is
    /// one way a product change reaches the cache, the lists and search.
    pub async fn product_changed(&self, id: Uuid) -> Result<()> {
        update::after_write(self.shop, id).await.map(|_| ())
    }

    /// Search documents for products with id > `after`, in id order.
    pub async fn search_docs(&self, after: Option<Uuid>, limit: i64) -> Result<Vec<crate::search::SearchDoc>> {
        crate::search::docs::load(&self.shop.db, after, limit).await
    }
}

//! The seller's write paths: creating a product and changing one. Each runs
//! in one transaction (the product row locked, so two edits of one product
//! apply one after the other), then drops the cached record and every cached
//! list (the catalog generation), and re-indexes the product for search. A
//! cache delete that fails is reported, not swallowed: the write has
//! committed and the caller must know the cache may be stale.

use std::collections::{BTreeMap, HashSet};

use model::{NewProduct, ProductChange, SkuChange};
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::record::ProductRecord;
use super::{cache, images, Catalog};
use crate::idempotency;
use crate::inventory::SellerScope;
use crate::{Error, Result, Shop};

/// The shop sells in one currency: a cart, an order and a payment each carry one.
pub const SHOP_CURRENCY: &str = "EUR";
/// Most SKUs one product may have; a real variant matrix is far smaller.
pub const MAX_SKUS: usize = 100;
const MAX_ATTRIBUTES: usize = 30;
const MAX_PRICE_CENTS: i64 = 10_000_000_000;

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct SkuPrice {
    pub sku_id: Uuid,
    pub price_cents: i64,
}

/// The caller of a create and the `Idempotency-Key` its client chose for
/// this attempt.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub user: Uuid,
    pub key: &'a str,
}

/// A product made by a create, or found again: `replayed` when a retry with
/// the same key found the product its first attempt made.
#[derive(Debug, Clone, Copy)]
pub struct Created {
    pub id: Uuid,
    pub replayed: bool,
}

pub(super) async fn create(shop: &Shop, scope: SellerScope, new: NewProduct, claim: Option<Claim<'_>>) -> Result<Created> {
    let claim = match claim {
        Some(claim) => {
            idempotency::validate_key(claim.key)?;
            Some((claim, idempotency::request_hash(&new)))
        }
        None => None,
    };
    let seller = match (scope, new.seller_id) {
        (SellerScope::Seller(own), None) => own,
        (SellerScope::Seller(own), Some(named)) if named == own => own,
        (SellerScope::Seller(_), Some(_)) => {
            return Err(Error::Forbidden { code: "not_your_shop", message: "a seller adds products to its own shop only" })
        }
        (SellerScope::Admin, None) => {
            return Err(Error::Invalid("an admin names the seller_id of the shop the product joins".into()))
        }
        (SellerScope::Admin, Some(named)) => named,
    };
    let title = title(&new.title)?;
    description(&new.description)?;
    let attributes = attributes(&new.attributes, "the product's attributes")?;
    if let Some(currency) = new.currency.as_deref().filter(|c| *c != SHOP_CURRENCY) {
        return Err(Error::Invalid(format!("this shop sells in {SHOP_CURRENCY}, not {currency}")));
    }
    if new.skus.is_empty() || new.skus.len() > MAX_SKUS {
        return Err(Error::Invalid(format!("a product needs 1 to {MAX_SKUS} SKUs")));
    }
    let mut skus = Vec::with_capacity(new.skus.len());
    for (n, sku) in new.skus.iter().enumerate() {
        price(sku.price_cents, &format!("SKU {}", n + 1))?;
        skus.push((Uuid::now_v7(), attributes_of_sku(&sku.attributes, n)?, sku.price_cents, sku.stock_count));
    }
    distinct_variants(skus.iter().map(|(_, a, ..)| a))?;
    let min_price = skus.iter().map(|(_, _, price, _)| *price).min().expect("at least one SKU");

    if let Some((claim, hash)) = &claim {
        if let Some(id) = earlier(shop, *claim, hash).await? {
            return replay(shop, id).await;
        }
    }

    let id = Uuid::now_v7();
    let mut tx = shop.db.begin().await?;
    if let Some((claim, hash)) = &claim {
        // The claim is the first write: a concurrent retry with this key
        // waits here for the first attempt's transaction, then finds its
        // product instead of making another.
        let claimed = sqlx::query(
            "INSERT INTO product_requests (user_id, idempotency_key, request_hash, product_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(claim.user)
        .bind(claim.key)
        .bind(hash)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            tx.rollback().await?;
            let id = earlier(shop, *claim, hash).await?.ok_or_else(|| Error::Conflict {
                code: "request_in_progress",
                message: "a create with this Idempotency-Key was still being processed; retry shortly".into(),
                details: None,
            })?;
            return replay(shop, id).await;
        }
    }
    let known_seller: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sellers WHERE id = $1)")
        .bind(seller)
        .fetch_one(&mut *tx)
        .await?;
    if !known_seller {
        return Err(Error::Invalid(format!("there is no seller {seller}")));
    }
    let category = category_id(&mut tx, &new.category).await?;
    let brand = brand_id(&mut tx, &new.brand).await?;
    sqlx::query(
        "INSERT INTO products (id, seller_id, brand_id, category_id, department_id, title, description, attributes, min_price_cents, currency)
         VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(seller)
    .bind(brand)
    .bind(category)
    .bind(&title)
    .bind(new.description.trim())
    .bind(json(&attributes))
    .bind(min_price)
    .bind(SHOP_CURRENCY)
    .execute(&mut *tx)
    .await?;
    for (position, (sku, attributes, price, _)) in skus.iter().enumerate() {
        insert_sku(&mut tx, id, *sku, position as i32, attributes, *price).await?;
    }
    let stock: Vec<(Uuid, i64)> = skus.iter().map(|(sku, .., stock)| (*sku, *stock)).collect();
    shop.inventory().add_skus_in(&mut tx, &stock).await?;
    // No photo upload exists yet: the product gets a drawn placeholder, so
    // its card and page have an image of the right size from the start.
    sqlx::query("INSERT INTO product_images (product_id, position, url, alt, width, height) VALUES ($1, 0, $2, $3, $4, $4)")
        .bind(id)
        .bind(images::url(id, 0))
        .bind(&title)
        .bind(images::IMAGE_SIZE)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    after_write(shop, id).await?;
    Ok(Created { id, replayed: false })
}

/// The product an earlier create with this key made; a refusal when that
/// create sent another body.
async fn earlier(shop: &Shop, claim: Claim<'_>, hash: &str) -> Result<Option<Uuid>> {
    let row: Option<(String, Uuid)> =
        sqlx::query_as("SELECT request_hash, product_id FROM product_requests WHERE user_id = $1 AND idempotency_key = $2")
            .bind(claim.user)
            .bind(claim.key)
            .fetch_optional(&shop.db)
            .await?;
    match row {
        Some((stored, _)) if stored != hash => Err(idempotency::reused("product")),
        Some((_, id)) => Ok(Some(id)),
        None => Ok(None),
    }
}

/// A retry runs the after-commit work again: the first attempt may have
/// committed and then failed to drop the caches, which is why it was retried.
async fn replay(shop: &Shop, id: Uuid) -> Result<Created> {
    after_write(shop, id).await?;
    Ok(Created { id, replayed: true })
}

/// Forgets product keys older than [`idempotency::KEY_RETENTION`], a batch at
/// a time.
pub(super) async fn prune_keys(shop: &Shop) -> Result<u64> {
    const BATCH: i64 = 1_000;
    let mut pruned = 0;
    loop {
        let done = sqlx::query(
            "DELETE FROM product_requests r USING (
                 SELECT user_id, idempotency_key FROM product_requests
                 WHERE created_at < now() - make_interval(secs => $1) LIMIT $2
             ) old WHERE r.user_id = old.user_id AND r.idempotency_key = old.idempotency_key",
        )
        .bind(idempotency::KEY_RETENTION.as_secs_f64())
        .bind(BATCH)
        .execute(&shop.db)
        .await?
        .rows_affected();
        pruned += done;
        if (done as i64) < BATCH {
            return Ok(pruned);
        }
    }
}

pub(super) async fn change(shop: &Shop, scope: SellerScope, id: Uuid, change: ProductChange) -> Result<ProductRecord> {
    if change == ProductChange::default() {
        return Err(Error::Invalid("the change names no field to change".into()));
    }
    let title = change.title.as_deref().map(title).transpose()?;
    if let Some(text) = &change.description {
        description(text)?;
    }
    let product_attributes = change.attributes.as_ref().map(|a| attributes(a, "the product's attributes")).transpose()?;
    let mut seen = HashSet::new();
    for (n, sku) in change.skus.iter().enumerate() {
        check_sku_change(sku, n)?;
        if let Some(id) = sku.sku_id {
            if !seen.insert(id) {
                return Err(Error::Invalid(format!("SKU {id} is listed twice")));
            }
        }
    }

    let mut tx = shop.db.begin().await?;
    let owned: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM products WHERE id = $1 AND ($2::uuid IS NULL OR seller_id = $2) FOR UPDATE")
            .bind(id)
            .bind(scope.seller())
            .fetch_optional(&mut *tx)
            .await?;
    if owned.is_none() {
        // Another seller's product answers as absent, as their SKUs do.
        return Err(Error::NotFound { what: "product" });
    }
    let category = match &change.category {
        Some(slug) => Some(category_id(&mut tx, slug).await?),
        None => None,
    };
    let brand = match &change.brand {
        Some(name) => Some(brand_id(&mut tx, name).await?),
        None => None,
    };
    sqlx::query(
        r#"
        UPDATE products
        SET title = COALESCE($2, title),
            description = COALESCE($3, description),
            attributes = COALESCE($4, attributes),
            category_id = COALESCE($5, category_id),
            brand_id = COALESCE($6, brand_id),
            updated_at = now()
        WHERE id = $1
        "#,
    )
    .bind(id)
    .bind(title)
    .bind(change.description.as_deref().map(str::trim))
    .bind(product_attributes.as_ref().map(json))
    .bind(category)
    .bind(brand)
    .execute(&mut *tx)
    .await?;

    let mut next_position: i32 =
        sqlx::query_scalar("SELECT COALESCE(max(position) + 1, 0) FROM skus WHERE product_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    let mut added = Vec::new();
    for (n, sku) in change.skus.iter().enumerate() {
        let sku_attributes = sku.attributes.as_ref().map(|a| attributes_of_sku(a, n)).transpose()?;
        match sku.sku_id {
            Some(sku_id) => {
                let updated = sqlx::query(
                    "UPDATE skus SET attributes = COALESCE($3, attributes), price_cents = COALESCE($4, price_cents)
                     WHERE id = $2 AND product_id = $1",
                )
                .bind(id)
                .bind(sku_id)
                .bind(sku_attributes.as_ref().map(json))
                .bind(sku.price_cents)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    return Err(Error::NotFound { what: "SKU" });
                }
            }
            None => {
                let sku_id = Uuid::now_v7();
                let price = sku.price_cents.expect("checked: a new SKU has a price");
                insert_sku(&mut tx, id, sku_id, next_position, &sku_attributes.unwrap_or_default(), price).await?;
                next_position += 1;
                added.push((sku_id, sku.stock_count.unwrap_or(0)));
            }
        }
    }
    if !added.is_empty() {
        shop.inventory().add_skus_in(&mut tx, &added).await?;
    }
    if !change.skus.is_empty() {
        let variants: Vec<serde_json::Value> = sqlx::query_scalar("SELECT attributes FROM skus WHERE product_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        if variants.len() > MAX_SKUS {
            return Err(Error::Invalid(format!("a product has at most {MAX_SKUS} SKUs")));
        }
        distinct_variants(variants.iter())?;
        // The list price ("from €x") follows the cheapest SKU.
        sqlx::query("UPDATE products SET min_price_cents = (SELECT min(price_cents) FROM skus WHERE product_id = $1) WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    after_write(shop, id).await
}

pub(super) async fn after_write(shop: &Shop, id: Uuid) -> Result<ProductRecord> {
    cache::invalidate(shop, &[id]).await?;
    shop.search().reindex(&[id]).await?;
    Catalog::new(shop).record(id).await
}

async fn insert_sku(tx: &mut PgConnection, product: Uuid, sku: Uuid, position: i32, attributes: &BTreeMap<String, String>, price: i64) -> Result<()> {
    sqlx::query("INSERT INTO skus (id, product_id, position, attributes, price_cents, currency) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(sku)
        .bind(product)
        .bind(position)
        .bind(json(attributes))
        .bind(price)
        .bind(SHOP_CURRENCY)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn category_id(tx: &mut PgConnection, slug: &str) -> Result<Uuid> {
    sqlx::query_scalar("SELECT id FROM categories WHERE slug = $1")
        .bind(slug.trim())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::Invalid(format!("there is no category `{}` (GET /api/v1/categories lists them)", slug.trim())))
}

/// The brand named `name` (case aside), created when the shop has none
/// by that name or slug. Two sellers naming one new brand at once get the
/// same row: the loser's insert does nothing and its lookup sees the winner's.
async fn brand_id(tx: &mut PgConnection, name: &str) -> Result<Uuid> {
    let name = name.trim();
    if !(1..=120).contains(&name.chars().count()) {
        return Err(Error::Invalid("a brand name needs 1 to 120 characters".into()));
    }
    let slug = slugify(name);
    if slug.is_empty() {
        return Err(Error::Invalid("a brand name needs a letter or a digit".into()));
    }
    sqlx::query("INSERT INTO brands (id, slug, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(Uuid::now_v7())
        .bind(&slug)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let id: Uuid = sqlx::query_scalar("SELECT id FROM brands WHERE lower(name) = lower($1) OR slug = $2 ORDER BY lower(name) = lower($1) DESC LIMIT 1")
        .bind(name)
        .bind(&slug)
        .fetch_one(&mut *tx)
        .await?;
    Ok(id)
}

/// `"Nordic Audio & Co."` → `nordic-audio-co`.
fn slugify(name: &str) -> String {
    name.to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

fn title(raw: &str) -> Result<String> {
    let title = raw.trim();
    if !(1..=300).contains(&title.chars().count()) {
        return Err(Error::Invalid("a title needs 1 to 300 characters".into()));
    }
    Ok(title.to_owned())
}

fn description(text: &str) -> Result<()> {
    if text.chars().count() > 20_000 {
        return Err(Error::Invalid("a description is at most 20,000 characters".into()));
    }
    Ok(())
}

fn price(cents: i64, what: &str) -> Result<()> {
    if !(0..=MAX_PRICE_CENTS).contains(&cents) {
        return Err(Error::Invalid(format!("the price of {what} must be between 0 and 100,000,000.00")));
    }
    Ok(())
}

/// Trimmed names and values, each non-empty and short, at most 30 pairs.
fn attributes(raw: &BTreeMap<String, String>, what: &str) -> Result<BTreeMap<String, String>> {
    if raw.len() > MAX_ATTRIBUTES {
        return Err(Error::Invalid(format!("{what}: at most {MAX_ATTRIBUTES} attributes")));
    }
    let mut clean = BTreeMap::new();
    for (name, value) in raw {
        let (name, value) = (name.trim(), value.trim());
        if !(1..=60).contains(&name.chars().count()) || !(1..=200).contains(&value.chars().count()) {
            return Err(Error::Invalid(format!(
                "{what}: `{name}` needs a name of 1 to 60 characters and a value of 1 to 200"
            )));
        }
        if clean.insert(name.to_owned(), value.to_owned()).is_some() {
            return Err(Error::Invalid(format!("{what}: `{name}` is given twice")));
        }
    }
    Ok(clean)
}

fn attributes_of_sku(raw: &BTreeMap<String, String>, n: usize) -> Result<BTreeMap<String, String>> {
    attributes(raw, &format!("SKU {}", n + 1))
}

fn check_sku_change(sku: &SkuChange, n: usize) -> Result<()> {
    let what = match sku.sku_id {
        Some(id) => format!("SKU {id}"),
        None => format!("new SKU {}", n + 1),
    };
    if let Some(cents) = sku.price_cents {
        price(cents, &what)?;
    }
    match sku.sku_id {
        Some(_) if sku.stock_count.is_some() => Err(Error::Invalid(format!(
            "{what}: stock is changed through PUT /api/v1/seller/skus/{{sku_id}}/stock, which checks what shoppers hold"
        ))),
        Some(_) if sku.attributes.is_none() && sku.price_cents.is_none() => {
            Err(Error::Invalid(format!("{what}: nothing to change")))
        }
        None if sku.price_cents.is_none() => Err(Error::Invalid(format!("{what} needs a price_cents"))),
        _ => Ok(()),
    }
}

/// Two SKUs of one product with the same attributes could not be told apart
/// by a shopper picking a variant.
fn distinct_variants<'a, T: serde::Serialize + 'a>(variants: impl Iterator<Item = &'a T>) -> Result<()> {
    let mut seen = HashSet::new();
    for variant in variants {
        if !seen.insert(serde_json::to_string(variant).map_err(Error::internal)?) {
            return Err(Error::Invalid("two SKUs of this product would have the same attributes".into()));
        }
    }
    Ok(())
}

fn json(attributes: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::to_value(attributes).expect("a string map serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brand_slugs_keep_letters_and_digits() {
        assert_eq!(slugify("Nordic Audio & Co."), "nordic-audio-co");
        assert_eq!(slugify("  B&O  Play 2 "), "b-o-play-2");
        assert_eq!(slugify("!!!"), "");
    }

    #[test]
    fn attributes_are_trimmed_bounded_and_unique() {
        let ok = attributes(&BTreeMap::from([(" Colour ".into(), " Black ".into())]), "x").unwrap();
        assert_eq!(ok, BTreeMap::from([("Colour".into(), "Black".into())]));
        assert!(attributes(&BTreeMap::from([("Colour".into(), " ".into())]), "x").is_err());
        let twice = BTreeMap::from([("Colour".into(), "Black".into()), ("Colour ".into(), "Red".into())]);
        assert!(attributes(&twice, "x").unwrap_err().to_string().contains("twice"));
        let many: BTreeMap<String, String> = (0..31).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(attributes(&many, "x").is_err());
    }
}

//! The demo catalog: deterministic (the same ids, titles, prices and stock on
//! every machine, so screenshots and tests agree) and realistic enough to
//! exercise search, facets and stock states. Product `i` is generated from its
//! own seed, so the first 10,000 products are identical whatever `--products`
//! asks for. Rows go in with COPY, one transaction for the whole catalog.

mod vocab;

use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::images;
use crate::{Error, Result};
use vocab::{Axis, DEPARTMENTS};

pub const DEFAULT_PRODUCTS: usize = 10_000;
pub const SELLERS: usize = 50;
const CHUNK: usize = 10_000;

#[derive(Debug, Clone, Copy)]
pub struct SeedOptions {
    pub products: usize,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self { products: DEFAULT_PRODUCTS }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SeedReport {
    pub categories: usize,
    pub brands: usize,
    pub sellers: usize,
    pub products: usize,
    pub skus: usize,
    pub images: usize,
    /// Every row written, over every table.
    pub rows: usize,
    pub seconds: f64,
}

impl SeedReport {
    pub fn rows_per_second(&self) -> f64 {
        if self.seconds > 0.0 { self.rows as f64 / self.seconds } else { 0.0 }
    }
}

/// SplitMix64: tiny, fast, and good enough for demo data; no rand crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x4d45_5243_4154_4f21)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn uuid_v7(&mut self, at: DateTime<Utc>) -> Uuid {
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&self.next().to_be_bytes());
        random[8..].copy_from_slice(&self.next().to_be_bytes()[..2]);
        uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis() as u64, &random).into_uuid()
    }
}

struct Leaf {
    id: Uuid,
    department_id: Uuid,
    department: usize,
    spec: &'static vocab::Leaf,
}

struct Brand {
    id: Uuid,
    name: String,
}

pub(crate) async fn seed(db: &PgPool, options: SeedOptions) -> Result<SeedReport> {
    let started = Instant::now();
    let mut tx = db.begin().await?;
    let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products) OR EXISTS (SELECT 1 FROM categories)")
        .fetch_one(&mut *tx)
        .await?;
    if any {
        return Err(Error::Invalid("the catalog already has data: seed an empty database".into()));
    }
    let epoch = Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).single().expect("valid date");
    let mut rng = Rng::new(1);
    let mut report = SeedReport { categories: 0, brands: 0, sellers: 0, products: 0, skus: 0, images: 0, rows: 0, seconds: 0.0 };

    // Departments, then their categories.
    let mut buf = String::new();
    let mut leaves = Vec::new();
    for (d, dept) in DEPARTMENTS.iter().enumerate() {
        let dept_id = rng.uuid_v7(epoch);
        row(&mut buf, &[&dept_id.to_string(), dept.slug, dept.name, NULL, &d.to_string()]);
        for (l, leaf) in dept.leaves.iter().enumerate() {
            let id = rng.uuid_v7(epoch);
            row(&mut buf, &[&id.to_string(), leaf.slug, leaf.name, &dept_id.to_string(), &l.to_string()]);
            leaves.push(Leaf { id, department_id: dept_id, department: d, spec: leaf });
        }
        report.categories += 1 + dept.leaves.len();
    }
    copy(&mut tx, "COPY categories (id, slug, name, parent_id, position) FROM STDIN", &buf).await?;

    // Brands: every name distinct; brand b mostly sells in department b % 7.
    buf.clear();
    let mut brands = Vec::new();
    for head in vocab::BRAND_HEADS {
        for tail in vocab::BRAND_TAILS {
            let name = format!("{head}{tail}");
            let id = rng.uuid_v7(epoch);
            row(&mut buf, &[&id.to_string(), &name.to_lowercase(), &name]);
            brands.push(Brand { id, name });
        }
    }
    report.brands = brands.len();
    copy(&mut tx, "COPY brands (id, slug, name) FROM STDIN", &buf).await?;
    let brands_by_department: Vec<Vec<usize>> = (0..DEPARTMENTS.len())
        .map(|d| (0..brands.len()).filter(|b| b % DEPARTMENTS.len() == d).collect())
        .collect();

    buf.clear();
    let mut sellers = Vec::new();
    for head in vocab::SELLER_HEADS {
        for tail in vocab::SELLER_TAILS {
            let name = format!("{head} {tail}");
            let slug = slugify(&name);
            let id = rng.uuid_v7(epoch - Duration::days(800));
            row(&mut buf, &[&id.to_string(), &slug, &name]);
            sellers.push(id);
        }
    }
    report.sellers = sellers.len();
    copy(&mut tx, "COPY sellers (id, slug, name) FROM STDIN", &buf).await?;

    // Products in chunks: four COPY streams per chunk, parents before children.
    let mut products = String::new();
    let mut skus = String::new();
    let mut images_buf = String::new();
    let mut inventory = String::new();
    let mut start = 0;
    while start < options.products {
        let end = (start + CHUNK).min(options.products);
        products.clear();
        skus.clear();
        images_buf.clear();
        inventory.clear();
        for i in start..end {
            let counts = product(i, epoch, &leaves, &brands, &brands_by_department, &sellers, Bufs {
                products: &mut products,
                skus: &mut skus,
                images: &mut images_buf,
                inventory: &mut inventory,
            });
            report.skus += counts.0;
            report.images += counts.1;
        }
        report.products += end - start;
        copy(&mut tx, "COPY products (id, seller_id, brand_id, category_id, department_id, title, description, attributes, min_price_cents, currency, rating_sum, rating_count, created_at, updated_at) FROM STDIN", &products).await?;
        copy(&mut tx, "COPY skus (id, product_id, position, attributes, price_cents, currency, created_at) FROM STDIN", &skus).await?;
        copy(&mut tx, "COPY product_images (product_id, position, url, alt, width, height) FROM STDIN", &images_buf).await?;
        copy(&mut tx, "COPY inventory (sku_id, stock_count, reserved, version, updated_at) FROM STDIN", &inventory).await?;
        start = end;
    }
    tx.commit().await?;
    // Fresh statistics so the planner picks the indexes straight away.
    sqlx::query("ANALYZE categories, brands, sellers, products, skus, product_images, inventory")
        .execute(db)
        .await?;
    report.rows = report.categories + report.brands + report.sellers + report.products + report.skus * 2 + report.images;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

struct Bufs<'a> {
    products: &'a mut String,
    skus: &'a mut String,
    images: &'a mut String,
    inventory: &'a mut String,
}

/// Writes product `i` and its SKUs, images and stock; returns (skus, images).
fn product(
    i: usize,
    epoch: DateTime<Utc>,
    leaves: &[Leaf],
    brands: &[Brand],
    brands_by_department: &[Vec<usize>],
    sellers: &[Uuid],
    out: Bufs<'_>,
) -> (usize, usize) {
    let mut rng = Rng::new(0x1000_0000 + i as u64);
    let leaf = &leaves[rng.below(leaves.len())];
    let dept = &DEPARTMENTS[leaf.department];
    // One product in ten comes from a brand outside its usual department.
    let brand = if rng.below(10) == 0 {
        &brands[rng.below(brands.len())]
    } else {
        &brands[*rng.pick(&brands_by_department[leaf.department])]
    };
    let seller = sellers[rng.below(sellers.len())];
    let (noun, lo, hi) = *rng.pick(leaf.spec.nouns);
    let created_at = epoch - Duration::minutes(rng.below(730 * 24 * 60) as i64);
    let id = rng.uuid_v7(created_at);

    let title = if rng.below(10) < 6 {
        format!("{} {} {} {}", brand.name, rng.pick(vocab::ADJECTIVES), noun, rng.pick(vocab::MODELS))
    } else {
        format!("{} {} {}", brand.name, noun, rng.pick(vocab::MODELS))
    };
    let material = *rng.pick(dept.materials);
    let f1 = *rng.pick(dept.features);
    let f2 = *rng.pick(dept.features);
    let description = if f1 == f2 {
        format!("The {title} is made for {}. {material}. {f1}.", rng.pick(vocab::USES))
    } else {
        format!("The {title} is made for {}. {material}. {f1}. {f2}.", rng.pick(vocab::USES))
    };
    let attributes = json_object(&[
        ("Material", material),
        ("Warranty", if rng.below(3) == 0 { "1 year" } else { "2 years" }),
        ("Made in", *rng.pick(vocab::ORIGINS)),
    ]);

    // Log-uniform price within the noun's range, ending .99, .49 or .00.
    let lo_c = (lo * 100) as f64;
    let hi_c = (hi * 100) as f64;
    let base = (lo_c * (hi_c / lo_c).powf(rng.unit())) as i64 / 100;
    let ending = [99, 99, 49, 0][rng.below(4)];
    let base_cents = (base.max(1) * 100 + ending).max(99);

    let sku_count = [1, 1, 1, 2, 2, 3, 3, 3, 4, 5][rng.below(10)];
    let (values, step) = leaf.spec.axis.values();
    let sku_count = sku_count.min(values.len());
    let mut min_price = i64::MAX;
    for position in 0..sku_count {
        let sku_id = rng.uuid_v7(created_at);
        let price = base_cents + step * position as i64;
        min_price = min_price.min(price);
        let sku_attributes = if sku_count == 1 && !matches!(leaf.spec.axis, Axis::Format) {
            "{}".to_owned()
        } else {
            json_object(&[(leaf.spec.axis.name(), values[position])])
        };
        row(out.skus, &[&sku_id.to_string(), &id.to_string(), &position.to_string(), &sku_attributes, &price.to_string(), crate::catalog::SHOP_CURRENCY, &created_at.to_rfc3339()]);
        // About 8% sold out, 12% nearly gone, the rest comfortably stocked.
        let stock = match rng.below(100) {
            0..=7 => 0,
            8..=19 => 1 + rng.below(5),
            _ => 6 + rng.below(395),
        };
        row(out.inventory, &[&sku_id.to_string(), &stock.to_string(), "0", "0", &created_at.to_rfc3339()]);
    }

    // Ratings: some products unrated, most rated well, a few poorly.
    let (rating_sum, rating_count) = if rng.below(100) < 15 {
        (0, 0)
    } else {
        let count = 1 + (rng.unit().powi(3) * 2400.0) as i64;
        let avg = 5.0 - rng.unit().powi(2) * 2.6;
        let sum = ((avg * count as f64).round() as i64).clamp(count, 5 * count);
        (sum, count)
    };

    let image_count = 1 + rng.below(4);
    for position in 0..image_count {
        let alt = format!("{title}, view {}", position + 1);
        let size = images::IMAGE_SIZE.to_string();
        row(out.images, &[&id.to_string(), &position.to_string(), &images::url(id, position as i32), &alt, &size, &size]);
    }

    row(out.products, &[
        &id.to_string(),
        &seller.to_string(),
        &brand.id.to_string(),
        &leaf.id.to_string(),
        &leaf.department_id.to_string(),
        &title,
        &description,
        &attributes,
        &min_price.to_string(),
        crate::catalog::SHOP_CURRENCY,
        &rating_sum.to_string(),
        &rating_count.to_string(),
        &created_at.to_rfc3339(),
        &created_at.to_rfc3339(),
    ]);
    (sku_count, image_count)
}

/// Marks a NULL in COPY text format.
const NULL: &str = "\\N";

/// Appends one COPY text-format row, escaping what the format requires.
fn row(buf: &mut String, fields: &[&str]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            buf.push('\t');
        }
        if *field == NULL {
            buf.push_str(NULL);
            continue;
        }
        for c in field.chars() {
            match c {
                '\\' => buf.push_str("\\\\"),
                '\t' => buf.push_str("\\t"),
                '\n' => buf.push_str("\\n"),
                '\r' => buf.push_str("\\r"),
                c => buf.push(c),
            }
        }
    }
    buf.push('\n');
}

fn json_object(pairs: &[(&str, &str)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> =
        pairs.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
    serde_json::Value::Object(map).to_string()
}

fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

async fn copy(conn: &mut PgConnection, statement: &str, data: &str) -> Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let mut copy = conn.copy_in_raw(statement).await?;
    copy.send(data.as_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_escape_what_the_format_needs() {
        let mut buf = String::new();
        row(&mut buf, &["a\tb", "c\\d", "e\nf", NULL]);
        assert_eq!(buf, "a\\tb\tc\\\\d\te\\nf\t\\N\n");
    }

    #[test]
    fn slugs_are_valid() {
        assert_eq!(slugify("Oak & Ash Supply Co."), "oak-ash-supply-co");
        assert!(model::query::is_slug(&slugify("Blue Harbor Goods")));
    }

    #[test]
    fn product_generation_is_deterministic_and_independent_of_catalog_size() {
        let epoch = Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).unwrap();
        let leaves: Vec<Leaf> = DEPARTMENTS
            .iter()
            .enumerate()
            .flat_map(|(d, dept)| dept.leaves.iter().map(move |spec| Leaf { id: Uuid::nil(), department_id: Uuid::nil(), department: d, spec }))
            .collect();
        let brands: Vec<Brand> = (0..200).map(|b| Brand { id: Uuid::nil(), name: format!("B{b}") }).collect();
        let by_dept: Vec<Vec<usize>> = (0..DEPARTMENTS.len()).map(|d| (0..200).filter(|b| b % DEPARTMENTS.len() == d).collect()).collect();
        let sellers = vec![Uuid::nil(); SELLERS];
        let render = |i| {
            let (mut p, mut s, mut im, mut inv) = (String::new(), String::new(), String::new(), String::new());
            product(i, epoch, &leaves, &brands, &by_dept, &sellers, Bufs { products: &mut p, skus: &mut s, images: &mut im, inventory: &mut inv });
            (p, s, im, inv)
        };
        assert_eq!(render(42), render(42));
        assert_ne!(render(42).0, render(43).0);
    }
}

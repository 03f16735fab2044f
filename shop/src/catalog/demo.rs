//! The small demo catalog for a fresh install. Deterministic: the same ids,
//! titles and prices on every machine, so screenshots and tests agree.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SeedReport {
    pub categories: usize,
    pub products: usize,
    pub skus: usize,
}

const CATEGORIES: &[(&str, &str, &[(&str, &str)])] = &[
    ("electronics", "Electronics", &[
        ("Aurora X2 Noise-Cancelling Headphones", "Over-ear, 40 h battery, multipoint Bluetooth."),
        ("Pixelon 27\" 4K Monitor", "IPS panel, USB-C 90 W, factory calibrated."),
        ("Nimbus Mechanical Keyboard", "Hot-swappable switches, aluminium case."),
        ("Volt 20,000 mAh Power Bank", "65 W USB-C, charges a laptop twice."),
    ]),
    ("home-kitchen", "Home & Kitchen", &[
        ("Cast Iron Dutch Oven 5.5 L", "Enamelled, oven-safe to 260 °C."),
        ("Barista Pro Espresso Machine", "15 bar pump, steam wand, 58 mm portafilter."),
        ("Linen Duvet Cover Set", "Stonewashed European flax, three pieces."),
        ("Chef's Knife 20 cm", "Forged VG-10 steel, walnut handle."),
    ]),
    ("fashion", "Fashion", &[
        ("Merino Crew Sweater", "Extra-fine merino, machine washable."),
        ("Waxed Canvas Field Jacket", "Water-resistant, corduroy collar."),
        ("Selvedge Denim Jeans", "14 oz Japanese denim, straight fit."),
        ("Leather Chelsea Boots", "Goodyear-welted, resoleable."),
    ]),
    ("sports-outdoors", "Sports & Outdoors", &[
        ("Trailhead 38 L Hiking Pack", "Ventilated back panel, rain cover included."),
        ("Carbon Trekking Poles", "Foldable, 280 g a pair."),
        ("Ultralight 2-Person Tent", "1.4 kg, freestanding, three seasons."),
        ("Yoga Mat Pro 6 mm", "Natural rubber, non-slip both sides."),
    ]),
    ("beauty", "Beauty & Care", &[
        ("Vitamin C Brightening Serum", "15% L-ascorbic acid, 30 ml."),
        ("Sonic Electric Toothbrush", "Five modes, two-week battery."),
        ("Hydrating Face Cream", "Ceramides and hyaluronic acid, 50 ml."),
        ("Bamboo Hair Brush", "Detangles without static."),
    ]),
    ("books", "Books", &[
        ("Designing Data-Intensive Applications", "The big ideas behind reliable, scalable systems."),
        ("The Rust Programming Language", "The official book, second edition."),
        ("A Field Guide to Mushrooms", "Over 500 species, with photographs."),
        ("The Art of Slow Cooking", "120 recipes for the weekend."),
    ]),
    ("toys-games", "Toys & Games", &[
        ("Settlers Strategy Board Game", "3–4 players, 60 minutes."),
        ("Wooden Marble Run", "120 pieces, beech wood."),
        ("1000-Piece Mountain Puzzle", "Alpine lake at dawn."),
        ("Remote Control Off-Road Truck", "1:16 scale, 30 km/h."),
    ]),
    ("garden", "Garden", &[
        ("Cordless Hedge Trimmer", "18 V, 50 cm blade."),
        ("Raised Cedar Planter", "120 × 60 cm, untreated cedar."),
        ("Stainless Pruning Shears", "Bypass blade, cuts 20 mm branches."),
        ("Solar Garden Lights (8-pack)", "Warm white, dusk-to-dawn sensor."),
    ]),
];

const VARIANTS: &[&[(&str, &str)]] = &[
    &[("colour", "Black")],
    &[("colour", "Sand")],
    &[("size", "Standard")],
];

/// A tiny deterministic generator (64-bit LCG): enough for varied, stable
/// demo prices and id bits without pulling in a rand crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0
    }

    fn uuid_v7(&mut self, at: DateTime<Utc>) -> Uuid {
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&self.next().to_be_bytes());
        random[8..].copy_from_slice(&self.next().to_be_bytes()[..2]);
        uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis() as u64, &random).into_uuid()
    }
}

pub(super) async fn seed(db: &PgPool) -> Result<SeedReport> {
    let mut rng = Lcg(0x4d45_5243_4154_4f21);
    let epoch = Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).single().expect("valid date");
    let mut report = SeedReport { categories: 0, products: 0, skus: 0 };
    let mut tx = db.begin().await?;
    let mut product_index = 0i64;

    for (position, (slug, name, products)) in CATEGORIES.iter().enumerate() {
        let category_id = rng.uuid_v7(epoch);
        sqlx::query("INSERT INTO categories (id, slug, name, position) VALUES ($1, $2, $3, $4)")
            .bind(category_id)
            .bind(slug)
            .bind(name)
            .bind(position as i32)
            .execute(&mut *tx)
            .await?;
        report.categories += 1;

        for (title, description) in products.iter() {
            product_index += 1;
            // Interleave categories in time so "new arrivals" shows a mix.
            let created_at = epoch + Duration::hours(product_index * 7 % 97);
            let product_id = rng.uuid_v7(created_at);
            sqlx::query(
                "INSERT INTO products (id, title, description, category_id, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(product_id)
            .bind(title)
            .bind(description)
            .bind(category_id)
            .bind(created_at)
            .execute(&mut *tx)
            .await?;
            report.products += 1;

            // Prices that look like prices: x.99 or whole units, 9–899.
            let base = 9 + (rng.next() % 890) as i64;
            let cents = if rng.next() % 2 == 0 { base * 100 + 99 } else { base * 100 };
            let sku_count = 1 + (rng.next() % VARIANTS.len() as u64) as usize;
            for (i, variant) in VARIANTS.iter().take(sku_count).enumerate() {
                let attributes: serde_json::Map<String, serde_json::Value> = variant
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
                    .collect();
                sqlx::query(
                    "INSERT INTO skus (id, product_id, attributes, price_cents, currency) VALUES ($1, $2, $3, $4, 'EUR')",
                )
                .bind(rng.uuid_v7(created_at))
                .bind(product_id)
                .bind(serde_json::Value::Object(attributes))
                .bind(cents + i as i64 * 500)
                .execute(&mut *tx)
                .await?;
                report.skus += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(report)
}

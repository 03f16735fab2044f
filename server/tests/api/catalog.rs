//! The catalog API and its caches: the contract's fields, keyset paging,
//! the product cache (hits, misses, invalidation), HTTP revalidation, and
//! clear errors for bad input.

use std::collections::HashSet;

use reqwest::header;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{LocalRedis, TestApp};

async fn json(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.get(path).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn any_product(db: &PgPool) -> Uuid {
    sqlx::query_scalar("SELECT id FROM products ORDER BY id LIMIT 1").fetch_one(db).await.unwrap()
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn categories_count_their_subcategories(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 500).await;
    let (status, body) = json(&app, "/api/v1/categories").await;
    assert_eq!(status, 200);
    let categories = body["categories"].as_array().unwrap();
    let departments: Vec<&Value> = categories.iter().filter(|c| c["parent"].is_null()).collect();
    assert_eq!(departments.len(), 7);
    let total: i64 = departments.iter().map(|d| d["product_count"].as_i64().unwrap()).sum();
    assert_eq!(total, 500, "every product counted once, under its department");
    for dept in departments {
        let children: i64 = categories
            .iter()
            .filter(|c| c["parent"] == dept["slug"])
            .map(|c| c["product_count"].as_i64().unwrap())
            .sum();
        assert_eq!(dept["product_count"].as_i64().unwrap(), children, "{}", dept["slug"]);
    }
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn product_json_follows_the_contract(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 100).await;
    let id = any_product(&db).await;
    let (status, p) = json(&app, &format!("/api/v1/products/{id}")).await;
    assert_eq!(status, 200);
    for field in ["id", "title", "description", "brand", "category", "images", "seller", "rating_avg", "rating_count", "skus"] {
        assert!(!p[field].is_null(), "field {field} in {p}");
    }
    assert_eq!(p["id"], id.to_string());
    let sku = &p["skus"][0];
    for field in ["sku_id", "attributes", "price_cents", "currency", "availability", "available"] {
        assert!(!sku[field].is_null(), "sku field {field}");
    }
    let (stock, avail): (i64, String) = sqlx::query_as(
        "SELECT (stock_count - reserved)::bigint, CASE WHEN stock_count - reserved <= 0 THEN 'out_of_stock' WHEN stock_count - reserved <= 5 THEN 'low_stock' ELSE 'in_stock' END FROM inventory WHERE sku_id = $1",
    )
    .bind(Uuid::parse_str(sku["sku_id"].as_str().unwrap()).unwrap())
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(sku["available"].as_i64().unwrap(), stock);
    assert_eq!(sku["availability"], avail.as_str());
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn product_reads_hit_the_cache_and_price_changes_invalidate_it(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 100).await;
    let id = any_product(&db).await;
    let stats = app.shop.stats.clone();
    let loads = |s: &shop::stats::Stats| shop::stats::Stats::get(&s.product_db_loads);
    let hits = |s: &shop::stats::Stats| shop::stats::Stats::get(&s.product_cache_hits);

    let before = loads(&stats);
    json(&app, &format!("/api/v1/products/{id}")).await;
    assert_eq!(loads(&stats), before + 1, "first read is a miss");
    let hits_before = hits(&stats);
    for _ in 0..5 {
        json(&app, &format!("/api/v1/products/{id}")).await;
    }
    assert_eq!(loads(&stats), before + 1, "PostgreSQL sees only the miss");
    assert_eq!(hits(&stats), hits_before + 5);

    // The cache entry lives an hour.
    let mut conn = app.shop.kv.conn();
    let ttl: i64 = redis::cmd("TTL").arg(shop::catalog::cache::product_key(&app.shop, id)).query_async(&mut conn).await.unwrap();
    assert!((3500..=3600).contains(&ttl), "ttl {ttl}");

    // A seller reprices: the next read shows the new price, not the cached one.
    let sku: Uuid = sqlx::query_scalar("SELECT id FROM skus WHERE product_id = $1 ORDER BY position LIMIT 1").bind(id).fetch_one(&db).await.unwrap();
    app.shop.catalog().set_prices(id, &[shop::catalog::SkuPrice { sku_id: sku, price_cents: 1 }]).await.unwrap();
    let (_, p) = json(&app, &format!("/api/v1/products/{id}")).await;
    let price = p["skus"].as_array().unwrap().iter().find(|s| s["sku_id"] == sku.to_string()).unwrap()["price_cents"].clone();
    assert_eq!(price, 1);
    // And search lists it at the new price (the index was updated too).
    let (_, page) = json(&app, "/api/v1/products?sort=price_asc&per_page=1").await;
    assert_eq!(page["hits"][0]["id"], id.to_string());
    assert_eq!(page["hits"][0]["price_cents"], 1);

    // A title edit is visible at once as well.
    app.shop.catalog().update_product(id, shop::catalog::ProductChange { title: Some("Renamed Thing".into()), ..Default::default() }).await.unwrap();
    let (_, p) = json(&app, &format!("/api/v1/products/{id}")).await;
    assert_eq!(p["title"], "Renamed Thing");
    let (_, found) = json(&app, "/api/v1/products?q=renamed").await;
    assert_eq!(found["hits"][0]["id"], id.to_string());
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn pages_json_and_images_revalidate_with_etags(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 50).await;
    let id = any_product(&db).await;
    let image = format!("/images/products/{id}/v1/0.svg");
    for path in [format!("/products/{id}"), format!("/api/v1/products/{id}"), "/c/electronics".to_owned(), image.clone()] {
        let first = app.get(&path).await;
        assert_eq!(first.status(), 200, "{path}");
        let etag = first.headers()[header::ETAG].clone();
        assert!(first.headers()[header::CACHE_CONTROL].to_str().unwrap().starts_with("public"), "{path}");
        let again = app.client.get(app.url(&path)).header(header::IF_NONE_MATCH, etag.clone()).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()[header::ETAG], etag);
        assert!(again.bytes().await.unwrap().is_empty());
        let stale = app.client.get(app.url(&path)).header(header::IF_NONE_MATCH, "\"other\"").send().await.unwrap();
        assert_eq!(stale.status(), 200, "{path}");
    }
    let response = app.get(&image).await;
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/svg+xml");
    assert_eq!(response.headers()[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert!(response.text().await.unwrap().starts_with("<svg"));
    // Live stock is never cached by anyone.
    let stock = app.get(&format!("/api/v1/products/{id}/stock")).await;
    assert_eq!(stock.headers()[header::CACHE_CONTROL], "no-store");
    assert!(stock.headers().get(header::ETAG).is_none());
    for missing in [
        format!("/images/products/{id}/v1/99.svg"),
        format!("/images/products/{id}/v0/0.svg"),
        format!("/images/products/{}/v1/0.svg", Uuid::nil()),
        "/images/products/x/v1/0.svg".to_owned(),
    ] {
        assert_eq!(app.get(&missing).await.status(), 404, "{missing}");
    }
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn bad_parameters_are_400s_that_name_them(db: PgPool) {
    let app = TestApp::spawn_seeded(db, 50).await;
    for (path, param) in [
        ("/api/v1/products?price_min=-1", "price_min"),
        ("/api/v1/products?price_max=ten", "price_max"),
        ("/api/v1/products?price_min=50&price_max=10", "price_min"),
        ("/api/v1/products?sort=cheapest", "sort"),
        ("/api/v1/products?page=0", "page"),
        ("/api/v1/products?rating_min=9", "rating_min"),
        ("/api/v1/products?in_stock=perhaps", "in_stock"),
        ("/api/v1/products?category=Bad%20Slug", "category"),
        ("/api/v1/products/not-a-uuid", "product_id"),
        ("/api/v1/products/not-a-uuid/stock", "product_id"),
        ("/api/v1/categories/audio/products?cursor=zzz", "cursor"),
        ("/api/v1/categories/audio/products?sort=newest&cursor=pa.100.0193000000007000800000000000000a", "cursor"),
    ] {
        let (status, body) = json(&app, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "invalid_parameter", "{path}");
        assert_eq!(body["param"], param, "{path}");
        assert!(body["message"].as_str().unwrap().contains(param), "{path}");
    }
    // Page size is clamped, not refused.
    let (status, body) = json(&app, "/api/v1/products?per_page=5000").await;
    assert_eq!(status, 200);
    assert_eq!(body["per_page"], 48);
    // Unknown ids are 404s.
    let (status, _) = json(&app, &format!("/api/v1/products/{}", Uuid::now_v7())).await;
    assert_eq!(status, 404);
    let (status, _) = json(&app, "/api/v1/categories/no-such-thing/products").await;
    assert_eq!(status, 404);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn keyset_pages_cover_a_category_exactly_once_in_order(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 1_500).await;
    for (sort, order) in [
        ("price_asc", "p.min_price_cents, p.id"),
        ("price_desc", "p.min_price_cents DESC, p.id DESC"),
        ("rating", "p.rating_avg DESC, p.id"),
        ("newest", "p.created_at DESC, p.id DESC"),
        ("relevance", "p.rating_count DESC, p.id"),
    ] {
        let expected: Vec<Uuid> = sqlx::query_scalar(&format!(
            "SELECT p.id FROM products p JOIN categories c ON c.id = p.category_id JOIN categories d ON d.id = c.parent_id
             WHERE d.slug = 'fashion' AND p.min_price_cents >= 3000 ORDER BY {order}"
        ))
        .fetch_all(&db)
        .await
        .unwrap();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/categories/fashion/products?sort={sort}&price_min=30&limit=48");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = json(&app, &path).await;
            assert_eq!(status, 200, "{path}: {page}");
            seen.extend(page["products"].as_array().unwrap().iter().map(|p| Uuid::parse_str(p["id"].as_str().unwrap()).unwrap()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen.len(), expected.len(), "{sort}");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len(), "{sort}: no duplicates");
        assert_eq!(seen, expected, "{sort}: same order as SQL");
    }
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn catalog_reads_survive_redis_going_down(db: PgPool) {
    let mut redis = LocalRedis::start().await;
    let app = TestApp::boot(db.clone(), &redis.url(), Some(50)).await;
    let id = any_product(&db).await;
    assert_eq!(app.get(&format!("/api/v1/products/{id}")).await.status(), 200);
    redis.stop().await;
    // Cache and stock counters are gone; PostgreSQL answers instead.
    let (status, p) = json(&app, &format!("/api/v1/products/{id}")).await;
    assert_eq!(status, 200, "{p}");
    assert!(p["skus"][0]["available"].is_i64());
    assert_eq!(app.get(&format!("/products/{id}")).await.status(), 200);
    assert!(shop::stats::Stats::get(&app.shop.stats.cache_errors) > 0);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn openapi_document_lists_every_catalog_endpoint(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 20).await;
    let (status, doc) = json(&app, "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let id = any_product(&db).await.to_string();
    let paths = doc["paths"].as_object().unwrap();
    let public_reads = [
        "/api/v1/categories",
        "/api/v1/categories/{slug}/products",
        "/api/v1/products",
        "/api/v1/products/{product_id}",
        "/api/v1/products/{product_id}/stock",
        "/api/v1/products/{product_id}/reviews",
        "/api/v1/search/suggest",
    ];
    for path in public_reads.iter().chain(&["/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/logout", "/api/v1/me", "/api/v1/cart", "/api/v1/cart/items", "/api/v1/cart/items/{sku_id}", "/api/v1/seller/skus", "/api/v1/seller/skus/{sku_id}/stock", "/api/v1/seller/skus/{sku_id}/shards", "/api/v1/seller/products", "/api/v1/seller/products/{product_id}", "/api/v1/admin/reconcile", "/api/v1/checkout", "/api/v1/orders", "/api/v1/orders/{order_id}", "/api/v1/orders/{order_id}/cancel"]) {
        assert!(paths.contains_key(*path), "{path} documented");
    }
    for path in public_reads {
        let concrete = path.replace("{product_id}", &id).replace("{slug}", "audio");
        let response = app.get(&format!("{concrete}?q=pro")).await;
        assert_eq!(response.status(), 200, "{concrete} answers as documented");
    }
}

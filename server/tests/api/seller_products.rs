//! The seller's product API: creating and editing products with their SKUs,
//! ownership, validation that writes nothing, concurrent edits, and every
//! view (product API, search, categories, the seller's own list) following a
//! write at once.

use std::collections::BTreeSet;

use model::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{call, demo_token, TestApp};

struct Shop {
    app: TestApp,
    db: PgPool,
    seller: String,
    seller_id: Uuid,
    admin: String,
    customer: String,
}

async fn setup(db: PgPool, products: usize) -> Shop {
    let app = TestApp::spawn_seeded(db.clone(), products).await;
    let users = app.shop.accounts().seed_demo().await.unwrap();
    let seller_id = users.iter().find_map(|u| u.seller_id).unwrap();
    let seller = demo_token(&app, Role::Seller).await;
    let admin = demo_token(&app, Role::Admin).await;
    let customer = demo_token(&app, Role::Customer).await;
    Shop { app, db, seller, seller_id, admin, customer }
}

/// A category with a parent (a leaf of the demo tree).
async fn leaf_category(db: &PgPool) -> (Uuid, String) {
    sqlx::query_as("SELECT id, slug FROM categories WHERE parent_id IS NOT NULL ORDER BY slug LIMIT 1").fetch_one(db).await.unwrap()
}

async fn public(app: &TestApp, path: &str) -> Value {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// Every product id a public search for `q` returns, over all its pages.
async fn search_ids(app: &TestApp, q: &str) -> BTreeSet<Uuid> {
    let mut ids = BTreeSet::new();
    for page in 1.. {
        let body = public(app, &format!("/api/v1/products?q={q}&per_page=48&page={page}")).await;
        let items = body["hits"].as_array().unwrap();
        ids.extend(items.iter().map(|p| p["id"].as_str().unwrap().parse::<Uuid>().unwrap()));
        if items.len() < 48 {
            return ids;
        }
    }
    unreachable!()
}

fn product_count(categories: &Value, slug: &str) -> i64 {
    categories["categories"].as_array().unwrap().iter().find(|c| c["slug"] == slug).unwrap()["product_count"].as_i64().unwrap()
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_seller_creates_a_product_that_the_shop_and_search_show_at_once(db: PgPool) {
    let s = setup(db, 30).await;
    let (_, category) = leaf_category(&s.db).await;
    // Cached before the write: each must be dropped by it.
    let categories_before = public(&s.app, "/api/v1/categories").await;
    assert!(search_ids(&s.app, "Quokkaphone").await.is_empty());

    let body = json!({
        "title": "  Quokkaphone Studio Monitor ",
        "description": "Near-field monitor for small rooms.",
        "category": category,
        "brand": "Zephyr Acoustics",
        "attributes": { "Driver": "40 mm" },
        "skus": [
            { "attributes": { "Colour": "Black" }, "price_cents": 12_900, "stock_count": 5 },
            { "attributes": { "Colour": "White" }, "price_cents": 13_900 }
        ]
    });
    let response = s.app.client.post(s.app.url("/api/v1/seller/products")).bearer_auth(&s.seller).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let product: Value = {
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let product: Value = response.json().await.unwrap();
        assert_eq!(location, format!("/api/v1/seller/products/{}", product["id"].as_str().unwrap()));
        product
    };
    let id: Uuid = product["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(product["title"], "Quokkaphone Studio Monitor", "trimmed");
    assert_eq!(product["brand"]["name"], "Zephyr Acoustics");
    assert_eq!(product["brand"]["slug"], "zephyr-acoustics");
    assert_eq!(product["category"]["slug"], category.as_str());
    assert_eq!(product["seller"]["id"], s.seller_id.to_string());
    assert_eq!(product["attributes"], json!({ "Driver": "40 mm" }));
    let image = &product["images"][0];
    assert_eq!((image["width"].as_i64(), image["height"].as_i64()), (Some(800), Some(800)));
    let skus = product["skus"].as_array().unwrap();
    assert_eq!(skus.len(), 2);
    assert_eq!((skus[0]["price_cents"].as_i64(), skus[0]["available"].as_i64()), (Some(12_900), Some(5)));
    assert_eq!((skus[1]["price_cents"].as_i64(), skus[1]["available"].as_i64()), (Some(13_900), Some(0)));

    // PostgreSQL holds what the answer says.
    let (seller, min_price, currency): (Uuid, i64, String) =
        sqlx::query_as("SELECT seller_id, min_price_cents, currency::text FROM products WHERE id = $1").bind(id).fetch_one(&s.db).await.unwrap();
    assert_eq!((seller, min_price, currency.as_str()), (s.seller_id, 12_900, "EUR"));
    let stock: Vec<(Uuid, i32, i32)> = sqlx::query_as(
        "SELECT i.sku_id, i.stock_count, i.reserved FROM inventory i JOIN skus k ON k.id = i.sku_id WHERE k.product_id = $1 ORDER BY k.position",
    )
    .bind(id)
    .fetch_all(&s.db)
    .await
    .unwrap();
    assert_eq!(stock.iter().map(|(_, n, r)| (*n, *r)).collect::<Vec<_>>(), vec![(5, 0), (0, 0)]);
    assert_eq!(stock[0].0.to_string(), skus[0]["sku_id"].as_str().unwrap());

    // Every view follows at once: the product API, search, the category counts, the storefront page.
    let public_product = public(&s.app, &format!("/api/v1/products/{id}")).await;
    assert_eq!(public_product["skus"], product["skus"]);
    assert_eq!(search_ids(&s.app, "Quokkaphone").await, BTreeSet::from([id]));
    let categories = public(&s.app, "/api/v1/categories").await;
    assert_eq!(product_count(&categories, &category), product_count(&categories_before, &category) + 1);
    assert_eq!(s.app.get(&format!("/products/{id}")).await.status(), 200);

    // First in the seller's own list, with its figures.
    let (status, list) = call(&s.app, Method::GET, &s.seller, "/api/v1/seller/products?limit=1", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["id"], id.to_string());
    assert_eq!(list["items"][0]["sku_count"], 2);
    assert_eq!(list["items"][0]["stock_count"], 5);
    assert_eq!(list["items"][0]["min_price_cents"], 12_900);

    // An admin adds to a named shop; the same brand name reuses the brand.
    let (status, by_admin) = call(&s.app, Method::POST, &s.admin, "/api/v1/seller/products", Some(json!({
        "title": "Quokkaphone Desk Stand", "category": category, "brand": "zephyr acoustics",
        "seller_id": s.seller_id, "skus": [{ "price_cents": 2_500, "stock_count": 1 }]
    }))).await;
    assert_eq!(status, 201, "{by_admin}");
    assert_eq!(by_admin["brand"]["id"], product["brand"]["id"]);
    assert_eq!(by_admin["seller"]["id"], s.seller_id.to_string());
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn product_writes_refuse_bad_input_with_a_reason_and_write_nothing(db: PgPool) {
    let s = setup(db, 20).await;
    let (_, category) = leaf_category(&s.db).await;
    let products_before: i64 = sqlx::query_scalar("SELECT count(*) FROM products").fetch_one(&s.db).await.unwrap();
    let other_seller: Uuid = sqlx::query_scalar("SELECT id FROM sellers WHERE id <> $1 LIMIT 1").bind(s.seller_id).fetch_one(&s.db).await.unwrap();
    let valid = json!({ "title": "Refused Thing", "category": category, "brand": "Never Brand", "skus": [{ "price_cents": 100 }] });
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("seller", with("title", json!("   ")), 422, "title"),
        ("seller", with("title", json!("x".repeat(301))), 422, "title"),
        ("seller", with("description", json!("x".repeat(20_001))), 422, "description"),
        ("seller", with("category", json!("no-such-category")), 422, "no-such-category"),
        ("seller", with("brand", json!("!!!")), 422, "brand"),
        ("seller", with("currency", json!("USD")), 422, "EUR"),
        ("seller", with("skus", json!([])), 422, "SKU"),
        ("seller", with("skus", json!([{ "price_cents": -1 }])), 422, "price"),
        ("seller", with("skus", json!([{ "price_cents": 100, "stock_count": -1 }])), 422, "stock_count"),
        ("seller", with("skus", json!([{ "price_cents": 100, "stock_count": 3_000_000_000_i64 }])), 422, "stock_count"),
        ("seller", with("skus", json!([{ "attributes": { "Size": "M" }, "price_cents": 1 }, { "attributes": { "Size": " M " }, "price_cents": 2 }])), 422, "same attributes"),
        ("seller", with("attributes", json!({ "Colour": "" })), 422, "Colour"),
        ("seller", with("skus", json!([{ "price_cent": 100 }])), 400, "price_cent"),
        ("seller", with("skus", json!("lots")), 400, "skus"),
        ("seller", with("seller_id", json!(other_seller)), 403, "own shop"),
        ("admin", valid.clone(), 422, "seller_id"),
        ("admin", with("seller_id", json!(Uuid::now_v7())), 422, "no seller"),
        ("customer", valid.clone(), 403, ""),
    ];
    for (who, body, status, says) in &cases {
        let token = match *who {
            "seller" => &s.seller,
            "admin" => &s.admin,
            _ => &s.customer,
        };
        let (got, answer) = call(&s.app, Method::POST, token, "/api/v1/seller/products", Some(body.clone())).await;
        assert_eq!(got.as_u16(), *status, "{who} {body}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{who} {body}: the message `{message}` names `{says}`");
    }
    let anonymous = s.app.client.post(s.app.url("/api/v1/seller/products")).json(&valid).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let malformed = s.app.client.post(s.app.url("/api/v1/seller/products")).bearer_auth(&s.seller)
        .header("content-type", "application/json").body("{\"title\": ").send().await.unwrap();
    assert_eq!(malformed.status(), 400);

    let products_after: i64 = sqlx::query_scalar("SELECT count(*) FROM products").fetch_one(&s.db).await.unwrap();
    assert_eq!(products_after, products_before, "nothing refused was written");
    let brand: i64 = sqlx::query_scalar("SELECT count(*) FROM brands WHERE name = 'Never Brand'").fetch_one(&s.db).await.unwrap();
    assert_eq!(brand, 0, "a refused product leaves no brand behind");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_seller_edits_only_its_own_products_and_every_view_follows(db: PgPool) {
    let s = setup(db, 30).await;
    let (id, sku, old_title): (Uuid, Uuid, String) = sqlx::query_as(
        "SELECT p.id, k.id, p.title FROM products p JOIN skus k ON k.product_id = p.id WHERE p.seller_id = $1 ORDER BY p.id, k.position LIMIT 1",
    )
    .bind(s.seller_id)
    .fetch_one(&s.db)
    .await
    .unwrap();
    let (other_category,): (String,) = sqlx::query_as(
        "SELECT slug FROM categories WHERE parent_id IS NOT NULL AND id <> (SELECT category_id FROM products WHERE id = $1) ORDER BY slug LIMIT 1",
    )
    .bind(id)
    .fetch_one(&s.db)
    .await
    .unwrap();
    // The cached record and a cached search, both to be dropped by the edit.
    assert_eq!(public(&s.app, &format!("/api/v1/products/{id}")).await["title"], old_title.as_str());
    assert!(search_ids(&s.app, "Marmaladewood").await.is_empty());

    let path = format!("/api/v1/seller/products/{id}");
    let (status, edited) = call(&s.app, Method::PATCH, &s.seller, &path, Some(json!({
        "title": "Marmaladewood Desk Organiser",
        "category": other_category,
        "brand": "Marmalade Works",
        "skus": [
            { "sku_id": sku, "price_cents": 1_99 },
            { "attributes": { "Edition": "Collector" }, "price_cents": 9_999, "stock_count": 7 }
        ]
    }))).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["title"], "Marmaladewood Desk Organiser");
    assert_eq!(edited["category"]["slug"], other_category.as_str());
    assert_eq!(edited["brand"]["name"], "Marmalade Works");
    let skus = edited["skus"].as_array().unwrap();
    assert_eq!(skus.iter().find(|k| k["sku_id"] == sku.to_string()).unwrap()["price_cents"], 199);
    let added = skus.iter().find(|k| k["attributes"] == json!({ "Edition": "Collector" })).expect("the new SKU");
    assert_eq!((added["price_cents"].as_i64(), added["available"].as_i64()), (Some(9_999), Some(7)));
    let added: Uuid = added["sku_id"].as_str().unwrap().parse().unwrap();
    let min_price: i64 = sqlx::query_scalar("SELECT min_price_cents FROM products WHERE id = $1").bind(id).fetch_one(&s.db).await.unwrap();
    assert_eq!(min_price, 199, "the list price follows the cheapest SKU");

    // The public record, search and the seller's stock list follow.
    let shown = public(&s.app, &format!("/api/v1/products/{id}")).await;
    assert_eq!(shown["title"], "Marmaladewood Desk Organiser");
    assert_eq!(shown["skus"], edited["skus"]);
    assert_eq!(search_ids(&s.app, "Marmaladewood").await, BTreeSet::from([id]));
    let mut cursor: Option<String> = None;
    let mut stock_row = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/seller/skus?limit=7&cursor={c}"),
            None => "/api/v1/seller/skus?limit=7".to_owned(),
        };
        let (_, page) = call(&s.app, Method::GET, &s.seller, &path, None).await;
        if let Some(row) = page["items"].as_array().unwrap().iter().find(|r| r["sku_id"] == added.to_string()) {
            stock_row = Some(row.clone());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let stock_row = stock_row.expect("the new SKU is in the seller's stock list");
    assert_eq!((stock_row["stock_count"].as_i64(), stock_row["available"].as_i64()), (Some(7), Some(7)));
    let (status, one) = call(&s.app, Method::GET, &s.seller, &path, None).await;
    assert_eq!((status, one["title"].clone()), (StatusCode::OK, json!("Marmaladewood Desk Organiser")));

    // Refusals, each naming its reason, each leaving the product as it was.
    let refusals: Vec<(Value, u16, &str)> = vec![
        (json!({}), 422, "no field"),
        (json!({ "skus": [{ "sku_id": sku, "stock_count": 3 }] }), 422, "/stock"),
        (json!({ "skus": [{ "sku_id": Uuid::now_v7(), "price_cents": 5 }] }), 404, "SKU"),
        (json!({ "skus": [{ "attributes": { "Edition": "Collector" }, "price_cents": 5 }] }), 422, "same attributes"),
        (json!({ "skus": [{ "attributes": { "Edition": "Other" } }] }), 422, "price_cents"),
        (json!({ "skus": [{ "sku_id": sku, "price_cents": 1 }, { "sku_id": sku, "price_cents": 2 }] }), 422, "twice"),
        (json!({ "title": "Should Not Stick", "category": "no-such-category" }), 422, "no-such-category"),
        (json!({ "title": 5 }), 400, "title"),
    ];
    for (body, status, says) in &refusals {
        let (got, answer) = call(&s.app, Method::PATCH, &s.seller, &path, Some(body.clone())).await;
        assert_eq!(got.as_u16(), *status, "{body}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: the message `{message}` names `{says}`");
    }
    let (title, skus): (String, i64) =
        sqlx::query_as("SELECT title, (SELECT count(*) FROM skus WHERE product_id = $1) FROM products WHERE id = $1").bind(id).fetch_one(&s.db).await.unwrap();
    assert_eq!(title, "Marmaladewood Desk Organiser", "a refused change is rolled back whole");
    assert_eq!(skus, edited["skus"].as_array().unwrap().len() as i64);
    assert_eq!(call(&s.app, Method::PATCH, &s.seller, "/api/v1/seller/products/not-a-uuid", Some(json!({ "title": "x" }))).await.0, 400);

    // Another seller's product is absent to this seller, whatever the method; an admin may edit it.
    let (foreign, foreign_title): (Uuid, String) =
        sqlx::query_as("SELECT id, title FROM products WHERE seller_id <> $1 LIMIT 1").bind(s.seller_id).fetch_one(&s.db).await.unwrap();
    let foreign_path = format!("/api/v1/seller/products/{foreign}");
    assert_eq!(call(&s.app, Method::PATCH, &s.seller, &foreign_path, Some(json!({ "title": "Taken Over" }))).await.0, 404);
    assert_eq!(call(&s.app, Method::GET, &s.seller, &foreign_path, None).await.0, 404);
    let still: String = sqlx::query_scalar("SELECT title FROM products WHERE id = $1").bind(foreign).fetch_one(&s.db).await.unwrap();
    assert_eq!(still, foreign_title);
    assert_eq!(call(&s.app, Method::PATCH, &s.customer, &path, Some(json!({ "title": "x" }))).await.0, 403);
    let (status, by_admin) = call(&s.app, Method::PATCH, &s.admin, &foreign_path, Some(json!({ "description": "Checked by the shop." }))).await;
    assert_eq!(status, 200, "{by_admin}");
    assert_eq!(by_admin["description"], "Checked by the shop.");
    assert_eq!(by_admin["title"], foreign_title.as_str(), "absent fields keep their value");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn concurrent_edits_never_leave_two_skus_a_shopper_cannot_tell_apart(db: PgPool) {
    let s = setup(db, 10).await;
    let (_, category) = leaf_category(&s.db).await;
    let (status, product) = call(&s.app, Method::POST, &s.seller, "/api/v1/seller/products", Some(json!({
        "title": "Contested Jacket", "category": category, "brand": "Contest", "skus": [{ "attributes": { "Colour": "Red" }, "price_cents": 900 }]
    }))).await;
    assert_eq!(status, 201, "{product}");
    let id: Uuid = product["id"].as_str().unwrap().parse().unwrap();
    let path = format!("/api/v1/seller/products/{id}");
    // Eight editors add the same variant at once: one wins, the rest are
    // told why. Several rounds, since one race may happen not to overlap.
    for colour in ["Teal", "Ochre", "Plum", "Sage", "Rust"] {
        let tries = (0..8).map(|n| {
            let (app, token, path) = (&s.app, s.seller.clone(), path.clone());
            async move {
                call(app, Method::PATCH, &token, &path, Some(json!({ "skus": [{ "attributes": { "Colour": colour }, "price_cents": 1_000 + n, "stock_count": 1 }] }))).await
            }
        });
        let outcomes = futures_util::future::join_all(tries).await;
        let won = outcomes.iter().filter(|(status, _)| *status == StatusCode::OK).count();
        let told = outcomes.iter().filter(|(status, body)| *status == StatusCode::UNPROCESSABLE_ENTITY && body["message"].as_str().unwrap().contains("same attributes")).count();
        assert_eq!((won, told), (1, 7), "{colour}: {outcomes:?}");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM skus WHERE product_id = $1 AND attributes = jsonb_build_object('Colour', $2::text)")
            .bind(id)
            .bind(colour)
            .fetch_one(&s.db)
            .await
            .unwrap();
        assert_eq!(rows, 1, "{colour}");
    }

    // New products naming one new brand at once share one brand row
    // (several rounds, as above).
    for brand in ["Photo Finish Ltd", "Dead Heat Co", "Neck And Neck", "Close Call Goods"] {
        let creates = (0..8).map(|n| {
            let (app, token, category) = (&s.app, s.seller.clone(), category.clone());
            async move {
                call(app, Method::POST, &token, "/api/v1/seller/products", Some(json!({
                    "title": format!("Racing Product {n}"), "category": category, "brand": brand,
                    "skus": [{ "price_cents": 100 }]
                }))).await
            }
        });
        let created = futures_util::future::join_all(creates).await;
        assert!(created.iter().all(|(status, _)| *status == StatusCode::CREATED), "{brand}: {created:?}");
        let brand_ids: BTreeSet<&str> = created.iter().map(|(_, p)| p["brand"]["id"].as_str().unwrap()).collect();
        assert_eq!(brand_ids.len(), 1, "{brand}");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM brands WHERE name = $1").bind(brand).fetch_one(&s.db).await.unwrap();
        assert_eq!(rows, 1, "{brand}");
    }
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn the_seller_product_list_pages_through_its_own_products_exactly_once(db: PgPool) {
    let s = setup(db, 60).await;
    let (_, category) = leaf_category(&s.db).await;
    let plain: Vec<String> = (1..=7).map(|n| format!("Listed Plain Chair {n}")).collect();
    for title in ["Listed Quokka Lamp", "Listed 50%_off Sign"].into_iter().chain(plain.iter().map(String::as_str)) {
        let (status, _) = call(&s.app, Method::POST, &s.seller, "/api/v1/seller/products", Some(json!({
            "title": title, "category": category, "brand": "Lister", "skus": [{ "price_cents": 100 }]
        }))).await;
        assert_eq!(status, 201);
    }
    let list = |token: String, query: String| {
        let app = &s.app;
        async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(c) => format!("/api/v1/seller/products?limit=4&cursor={c}{query}"),
                    None => format!("/api/v1/seller/products?limit=4{query}"),
                };
                let (status, page) = call(app, Method::GET, &token, &path, None).await;
                assert_eq!(status, 200, "{page}");
                for item in page["items"].as_array().unwrap() {
                    seen.push(item["id"].as_str().unwrap().parse::<Uuid>().unwrap());
                }
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => return seen,
                }
            }
        }
    };
    let own: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM products WHERE seller_id = $1 ORDER BY created_at DESC, id DESC")
        .bind(s.seller_id)
        .fetch_all(&s.db)
        .await
        .unwrap();
    assert!(own.len() > 8, "more than two pages");
    assert_eq!(list(s.seller.clone(), String::new()).await, own, "every own product once, newest first");
    let all: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM products ORDER BY created_at DESC, id DESC").fetch_all(&s.db).await.unwrap();
    assert_eq!(list(s.admin.clone(), String::new()).await, all, "an admin sees every shop's");

    let by_text = |q: &str| sqlx::query_scalar::<_, Uuid>("SELECT id FROM products WHERE seller_id = $1 AND title = $2").bind(s.seller_id).bind(q.to_owned());
    let quokka = by_text("Listed Quokka Lamp").fetch_one(&s.db).await.unwrap();
    assert_eq!(list(s.seller.clone(), "&q=quokka".into()).await, vec![quokka]);
    let sign = by_text("Listed 50%_off Sign").fetch_one(&s.db).await.unwrap();
    assert_eq!(list(s.seller.clone(), "&q=50%25_off".into()).await, vec![sign], "% and _ are text");
    assert_eq!(list(s.seller.clone(), "&q=lister".into()).await.len(), 9, "the brand matches too");

    for bad in ["?limit=0", "?cursor=nope", &format!("?cursor={}", Uuid::now_v7())] {
        let (status, body) = call(&s.app, Method::GET, &s.seller, &format!("/api/v1/seller/products{bad}"), None).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(call(&s.app, Method::GET, &s.customer, "/api/v1/seller/products", None).await.0, 403);
}

/// POSTs a create with an `Idempotency-Key`: status, whether the answer was
/// a replay, and the body.
async fn create_with_key(app: &TestApp, token: &str, key: &[u8], body: &Value) -> (StatusCode, bool, Value) {
    let response = app
        .client
        .post(app.url("/api/v1/seller/products"))
        .bearer_auth(token)
        .header("Idempotency-Key", reqwest::header::HeaderValue::from_bytes(key).unwrap())
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    (status, replayed, response.json().await.unwrap_or(Value::Null))
}

async fn products_titled(db: &PgPool, title: &str) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT id FROM products WHERE title = $1 ORDER BY id").bind(title).fetch_all(db).await.unwrap()
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_create_retried_with_its_idempotency_key_makes_one_product(db: PgPool) {
    let s = setup(db, 10).await;
    let (_, category) = leaf_category(&s.db).await;
    let body = json!({ "title": "Retry Lantern", "category": category, "brand": "Second Try", "skus": [{ "price_cents": 2_500, "stock_count": 3 }] });

    let (status, replayed, first) = create_with_key(&s.app, &s.seller, b"lantern-1", &body).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{first}");
    let id: Uuid = first["id"].as_str().unwrap().parse().unwrap();

    // The answer was lost after the commit, and the caches were not dropped
    // (the 503 a failed cache drop gives): here the product's cached record
    // is made stale behind the API's back. The retry finds the product and
    // does the after-commit work again.
    let record_path = format!("/api/v1/products/{id}");
    assert_eq!(public(&s.app, &record_path).await["title"], "Retry Lantern");
    sqlx::query("UPDATE products SET title = 'Retry Lantern Glowmaster' WHERE id = $1").bind(id).execute(&s.db).await.unwrap();
    assert_eq!(public(&s.app, &record_path).await["title"], "Retry Lantern", "the record is cached, so the test can see the retry drop it");
    let (status, replayed, again) = create_with_key(&s.app, &s.seller, b"lantern-1", &body).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(public(&s.app, &record_path).await["title"], "Retry Lantern Glowmaster", "a replay drops the cached record");
    assert!(search_ids(&s.app, "Glowmaster").await.contains(&id), "a replay re-indexes the product");
    assert_eq!(products_titled(&s.db, "Retry Lantern").await.len() + products_titled(&s.db, "Retry Lantern Glowmaster").await.len(), 1);

    // The key with another body is refused and writes nothing.
    let other = json!({ "title": "Another Lantern", "category": category, "brand": "Second Try", "skus": [{ "price_cents": 2_600 }] });
    let (status, _, refused) = create_with_key(&s.app, &s.seller, b"lantern-1", &other).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"], "idempotency_key_reused", "{refused}");
    assert!(products_titled(&s.db, "Another Lantern").await.is_empty());

    // Keys belong to their caller: the admin's "lantern-1" is its own.
    let mut by_admin = other.clone();
    by_admin["seller_id"] = json!(s.seller_id);
    let (status, replayed, admins) = create_with_key(&s.app, &s.admin, b"lantern-1", &by_admin).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{admins}");
    assert_eq!(products_titled(&s.db, "Another Lantern").await.len(), 1);

    // Keys that cannot be keys are 400 naming the header, and write nothing.
    for key in [&b""[..], &[b'k'; 256][..], &b"two words"[..], "café".as_bytes()] {
        let (status, _, refused) = create_with_key(&s.app, &s.seller, key, &other).await;
        assert_eq!(status, 400, "{key:?}: {refused}");
        assert_eq!(refused["param"], "Idempotency-Key", "{refused}");
    }
    assert_eq!(products_titled(&s.db, "Another Lantern").await.len(), 1);

    // Eight copies of one create sent at once (a client retrying on a
    // timeout while the first is still running) make one product: one
    // attempt creates it, the other seven answer with it. Several rounds,
    // since one race may happen not to overlap.
    for round in 0..5 {
        let title = format!("Stampede Lamp {round}");
        let body = json!({ "title": title, "category": category, "brand": "Second Try", "skus": [{ "price_cents": 990 }] });
        let key = format!("stampede-{round}");
        let sends = (0..8).map(|_| create_with_key(&s.app, &s.seller, key.as_bytes(), &body));
        let answers = futures_util::future::join_all(sends).await;
        assert!(answers.iter().all(|(status, ..)| *status == StatusCode::CREATED), "{answers:?}");
        let ids: BTreeSet<&str> = answers.iter().map(|(_, _, p)| p["id"].as_str().unwrap()).collect();
        let made = products_titled(&s.db, &title).await;
        assert_eq!(made.len(), 1, "round {round}: {made:?}");
        assert_eq!(ids, BTreeSet::from([made[0].to_string().as_str()]), "round {round}");
        assert_eq!(answers.iter().filter(|(_, replayed, _)| !replayed).count(), 1, "round {round}: one attempt made it");
    }

    // Without a key nothing is deduplicated: two sends, two products.
    let plain = json!({ "title": "Keyless Kettle", "category": category, "brand": "Second Try", "skus": [{ "price_cents": 700 }] });
    for _ in 0..2 {
        assert_eq!(call(&s.app, Method::POST, &s.seller, "/api/v1/seller/products", Some(plain.clone())).await.0, 201);
    }
    assert_eq!(products_titled(&s.db, "Keyless Kettle").await.len(), 2);

    // A key past its retention is forgotten; its next use creates anew.
    sqlx::query("UPDATE product_requests SET created_at = now() - interval '25 hours' WHERE idempotency_key = 'lantern-1'")
        .execute(&s.db)
        .await
        .unwrap();
    assert_eq!(s.app.shop.catalog().prune_keys().await.unwrap(), 2, "the seller's and the admin's lantern-1");
    let (status, replayed, anew) = create_with_key(&s.app, &s.seller, b"lantern-1", &body).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{anew}");
    assert_ne!(anew["id"], first["id"]);
}

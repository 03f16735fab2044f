//! Product reviews through the HTTP API against real PostgreSQL, Redis and
//! localstripe: only verified buyers (a DELIVERED order with the product)
//! may review, a second review replaces the first, the product's aggregates
//! and the histogram always equal SQL over the reviews table, paging returns
//! each review once, and bad input is a 422 naming the field.

use std::collections::BTreeMap;

use model::OrderStatus;
use reqwest::StatusCode;
use serde_json::{json, Value};
use shop::orders::Orders;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{LocalStripe, TestApp};

struct Setup {
    app: TestApp,
    _stripe: LocalStripe,
    sku: Uuid,
    product: Uuid,
}

/// The default fulfilment delays are an hour: orders stay CONFIRMED until
/// a test moves them on itself.
async fn setup(db: PgPool) -> Setup {
    let stripe = LocalStripe::start().await;
    let app = TestApp::spawn_seeded_with(db, 10, |shop| shop.with_payment_settings(stripe.settings())).await;
    let (sku, product): (Uuid, Uuid) = sqlx::query_as("SELECT id, product_id FROM skus ORDER BY id LIMIT 1")
        .fetch_one(&app.shop.db)
        .await
        .unwrap();
    app.shop.inventory().set_stock(shop::inventory::SellerScope::Admin, sku, 100).await.unwrap();
    // The demo seed gives products made-up ratings with no review rows
    // behind them; start this one from nothing so its aggregates can be
    // compared with SQL over the reviews table.
    sqlx::query("UPDATE products SET rating_sum = 0, rating_count = 0 WHERE id = $1").bind(product).execute(&app.shop.db).await.unwrap();
    app.shop.catalog().forget(&[product]).await.unwrap();
    Setup { app, _stripe: stripe, sku, product }
}

/// `count` new customers' bearer tokens.
async fn customers(s: &Setup, count: usize) -> Vec<String> {
    s.app.shop.accounts().create_load_test_users(count, "load-test-password").await.unwrap()
}

/// The customer buys one unit of the setup's SKU; the order is CONFIRMED.
async fn buy(s: &Setup, token: &str) -> Uuid {
    s.app.buy(token, s.sku, 1).await
}

/// Moves a CONFIRMED order through SHIPPED to DELIVERED the way the
/// warehouse does: the orders service's own transition, in a transaction.
async fn deliver(s: &Setup, order: Uuid) {
    let mut tx = s.app.shop.db.begin().await.unwrap();
    Orders::transition(&mut tx, order, OrderStatus::Shipped).await.unwrap();
    Orders::transition(&mut tx, order, OrderStatus::Delivered).await.unwrap();
    tx.commit().await.unwrap();
}

async fn verified_buyers(s: &Setup, count: usize) -> Vec<String> {
    let tokens = customers(s, count).await;
    for token in &tokens {
        let order = buy(s, token).await;
        deliver(s, order).await;
    }
    tokens
}

async fn post_review(s: &Setup, token: Option<&str>, product: Uuid, body: &Value) -> (StatusCode, Value) {
    let mut request = s.app.client.post(s.app.url(&format!("/api/v1/products/{product}/reviews"))).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_json(s: &Setup, path: &str) -> (StatusCode, Value) {
    let response = s.app.get(path).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn review(rating: i64, title: &str) -> Value {
    json!({ "rating": rating, "title": title, "body": "Does what it says on the box." })
}

/// (rating_avg, rating_count) computed by SQL from the reviews table.
async fn sql_aggregates(s: &Setup) -> (f64, i64) {
    sqlx::query_as("SELECT COALESCE(AVG(rating)::float8, 0), COUNT(*) FROM reviews WHERE product_id = $1")
        .bind(s.product)
        .fetch_one(&s.app.shop.db)
        .await
        .unwrap()
}

/// The product as the API shows it (through the catalog cache).
async fn shown_aggregates(s: &Setup) -> (f64, i64) {
    let (status, product) = get_json(s, &format!("/api/v1/products/{}", s.product)).await;
    assert_eq!(status, StatusCode::OK);
    (product["rating_avg"].as_f64().unwrap(), product["rating_count"].as_i64().unwrap())
}

fn close(a: (f64, i64), b: (f64, i64)) -> bool {
    (a.0 - b.0).abs() < 1e-9 && a.1 == b.1
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn only_a_verified_buyer_reviews_and_a_second_review_replaces_the_first(db: PgPool) {
    let s = setup(db).await;
    // Fill the product cache first, so a stale cache would show below.
    assert_eq!(shown_aggregates(&s).await.1, 0);
    let tokens = customers(&s, 2).await;
    let (buyer, stranger) = (&tokens[0], &tokens[1]);

    let (status, _) = post_review(&s, None, s.product, &review(5, "Great")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no session");
    let (status, body) = post_review(&s, Some(stranger), s.product, &review(5, "Great")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("not_a_verified_buyer")), "{body}");
    let (status, _) = post_review(&s, Some(buyer), Uuid::now_v7(), &review(5, "Great")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown product");

    let order = buy(&s, buyer).await;
    let (status, body) = post_review(&s, Some(buyer), s.product, &review(5, "Great")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("not_a_verified_buyer")), "CONFIRMED is not delivered: {body}");

    deliver(&s, order).await;
    let (status, first) = post_review(&s, Some(buyer), s.product, &review(5, "  Great  ")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!((first["rating"].as_i64(), first["title"].as_str(), first["author"].as_str()), (Some(5), Some("Great"), Some("Load")));
    assert_eq!(first["verified_buyer"], true);
    assert!(close(shown_aggregates(&s).await, (5.0, 1)), "the cached product followed the review");

    let (status, second) = post_review(&s, Some(buyer), s.product, &review(2, "Broke after a week")).await;
    assert_eq!(status, StatusCode::OK, "a second review replaces the first: {second}");
    assert_eq!(second["id"], first["id"], "the same review, edited");
    assert_eq!(second["created_at"], first["created_at"]);
    assert_eq!(sql_aggregates(&s).await.1, 1, "still one review");
    assert!(close(shown_aggregates(&s).await, (2.0, 1)), "the old rating left the sum: {:?}", shown_aggregates(&s).await);
    assert!(close(shown_aggregates(&s).await, sql_aggregates(&s).await));

    let (status, page) = get_json(&s, &format!("/api/v1/products/{}/reviews", s.product)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["reviews"].as_array().unwrap().len(), 1);
    assert_eq!(page["reviews"][0]["title"], "Broke after a week");
    assert_eq!(page["histogram"], json!({"1": 0, "2": 1, "3": 0, "4": 0, "5": 0}));
    assert_eq!((page["rating_avg"].as_f64(), page["rating_count"].as_i64()), (Some(2.0), Some(1)));
    assert_eq!(get_json(&s, &format!("/api/v1/products/{}/reviews", Uuid::now_v7())).await.0, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn aggregates_and_histogram_equal_sql_and_paging_returns_each_review_once(db: PgPool) {
    let s = setup(db).await;
    let tokens = verified_buyers(&s, 7).await;
    for (token, rating) in tokens.iter().zip([5, 4, 4, 1, 3, 5, 2]) {
        let (status, body) = post_review(&s, Some(token), s.product, &review(rating, &format!("{rating} stars"))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // Two customers change their minds.
    assert_eq!(post_review(&s, Some(&tokens[3]), s.product, &review(4, "Grew on me")).await.0, StatusCode::OK);
    assert_eq!(post_review(&s, Some(&tokens[0]), s.product, &review(3, "Meh")).await.0, StatusCode::OK);

    let expected = sql_aggregates(&s).await;
    assert_eq!(expected.1, 7);
    assert!(close(shown_aggregates(&s).await, expected), "{:?} vs SQL {expected:?}", shown_aggregates(&s).await);
    let grouped: Vec<(i16, i64)> = sqlx::query_as("SELECT rating, COUNT(*) FROM reviews WHERE product_id = $1 GROUP BY rating")
        .bind(s.product)
        .fetch_all(&s.app.shop.db)
        .await
        .unwrap();
    let mut histogram: BTreeMap<String, i64> = (1..=5).map(|r| (r.to_string(), 0)).collect();
    for (rating, count) in grouped {
        histogram.insert(rating.to_string(), count);
    }

    for sort in ["newest", "helpful"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/products/{}/reviews?sort={sort}&limit=3", s.product);
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = get_json(&s, &path).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            assert_eq!(serde_json::to_value(&histogram).unwrap(), page["histogram"], "histogram = SQL GROUP BY");
            assert!(close((page["rating_avg"].as_f64().unwrap(), page["rating_count"].as_i64().unwrap()), expected));
            seen.extend(page["reviews"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        // Every review once, in the sort's order across pages.
        let order = if sort == "newest" { "id DESC" } else { "helpful DESC, id DESC" };
        let in_order: Vec<String> = sqlx::query_scalar::<_, Uuid>(&format!("SELECT id FROM reviews WHERE product_id = $1 ORDER BY {order}"))
            .bind(s.product)
            .fetch_all(&s.app.shop.db)
            .await
            .unwrap()
            .into_iter()
            .map(|id| id.to_string())
            .collect();
        assert_eq!(in_order.len(), 7);
        assert_eq!(seen, in_order, "{sort}");
    }
    let (status, body) = get_json(&s, &format!("/api/v1/products/{}/reviews?sort=best", s.product)).await;
    assert_eq!((status, body["param"].as_str()), (StatusCode::BAD_REQUEST, Some("sort")));
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn bad_input_names_the_field_and_markup_comes_back_as_text(db: PgPool) {
    let s = setup(db).await;
    let token = verified_buyers(&s, 1).await.remove(0);
    let long_body = "x".repeat(5000);
    let cases = [
        (json!({"rating": 0, "title": "t", "body": "b"}), "rating"),
        (json!({"rating": 6, "title": "t", "body": "b"}), "rating"),
        (json!({"rating": 3, "title": "   ", "body": "b"}), "title"),
        (json!({"rating": 3, "title": "t", "body": long_body}), "body"),
    ];
    for (body, field) in cases {
        let (status, answer) = post_review(&s, Some(&token), s.product, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {answer}");
        assert!(answer["message"].as_str().unwrap().starts_with(field), "{field} named: {answer}");
    }
    assert_eq!(sql_aggregates(&s).await.1, 0, "nothing stored");
    assert_eq!(shown_aggregates(&s).await.1, 0);

    let title = "<script>alert('x')</script> & more";
    let (status, _) = post_review(&s, Some(&token), s.product, &review(4, title)).await;
    assert_eq!(status, StatusCode::CREATED);
    let response = s.app.get(&format!("/api/v1/products/{}/reviews", s.product)).await;
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    assert!(response.headers()["cache-control"].to_str().unwrap().starts_with("public"));
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["reviews"][0]["title"], title, "stored and returned verbatim, as JSON text");
}

/// The storefront's review form works without JavaScript: a signed-out
/// visitor is asked to sign in, a customer without a delivered order is told
/// why not, and a verified buyer's plain form post writes the review and
/// lands on the product's reviews, where the markup they typed is text.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn the_storefront_review_form_works_without_javascript(db: PgPool) {
    let s = setup(db).await;
    let tokens = customers(&s, 2).await;
    let (buyer, other) = (&tokens[0], &tokens[1]);
    let form_path = format!("/products/{}/review", s.product);
    let page = |token: Option<&str>| {
        let mut request = s.app.client.get(s.app.url(&form_path));
        if let Some(token) = token {
            request = request.header(reqwest::header::COOKIE, format!("mercato_session={token}"));
        }
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    assert!(page(None).await.contains(r#"data-testid="sign-in-prompt""#));
    let order = buy(&s, buyer).await;
    assert!(page(Some(buyer)).await.contains(r#"data-testid="not-a-buyer""#), "confirmed is not delivered");
    deliver(&s, order).await;
    assert!(page(Some(other)).await.contains(r#"data-testid="not-a-buyer""#));
    let html = page(Some(buyer)).await;
    assert!(html.contains(r#"data-testid="review-form""#), "the buyer gets the form");
    let action = html.split(r#"data-testid="review-form""#).next().unwrap().rsplit("action=\"").next().unwrap().split('"').next().unwrap().to_owned();
    assert_eq!(action, "/api/write_review");

    let post = |fields: Vec<(&'static str, String)>| {
        let request = s.app.client.post(s.app.url(&action))
            .header(reqwest::header::COOKIE, format!("mercato_session={buyer}"))
            .header(reqwest::header::ORIGIN, format!("http://{}", s.app.addr))
            .header(reqwest::header::ACCEPT, "text/html")
            .form(&fields);
        async move { request.send().await.unwrap() }
    };
    let fields = |rating: Option<&str>| {
        let mut f = vec![("product_id", s.product.to_string()), ("title", "Sturdy <em>and</em> light".to_owned()), ("body", "Would buy again.".to_owned())];
        if let Some(r) = rating {
            f.push(("rating", r.to_owned()));
        }
        f
    };
    // No rating chosen: a 422 in words, nothing written.
    let refused = post(fields(None)).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM reviews").fetch_one(&s.app.shop.db).await.unwrap();
    assert_eq!(count, 0);

    let written = post(fields(Some("5"))).await;
    assert!(written.status().is_redirection(), "{}", written.status());
    let to = written.headers()[reqwest::header::LOCATION].to_str().unwrap().to_owned();
    assert_eq!(to, format!("/products/{}?reviewed=1#reviews", s.product));
    let product_page = s.app.get(&format!("/products/{}", s.product)).await.text().await.unwrap();
    assert!(product_page.contains("Sturdy &lt;em&gt;and&lt;/em&gt; light"), "escaped, as text");
    assert!(!product_page.contains("<em>and</em>"));
    assert!(product_page.contains(r#"data-testid="review-count" data-count="1""#));
    assert!(product_page.contains(r#"data-stars="5" data-count="1""#), "the histogram counts it");
    // The form now edits that review.
    assert!(page(Some(buyer)).await.contains("Update review"));
}

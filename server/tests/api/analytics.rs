//! Seller analytics and the search indexer, through the real app: orders
//! placed through checkout reach `GET /api/v1/seller/analytics` by way of
//! the outbox, the relay and the `analytics` consumer, and a SKU bought out
//! leaves the in-stock search filter by way of the search indexer.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use shop::events::{Event, EventBus, Topic};
use shop::inventory::SellerScope;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{sign_in, wait_for, LocalStripe, TestApp};

/// The server's default `MERCATO_EVENT_PARTITIONS`.
const APP_PARTITIONS: u32 = 8;

struct Setup {
    app: TestApp,
    _stripe: LocalStripe,
    seller_id: Uuid,
    sku: Uuid,
}

async fn setup(db: PgPool) -> Setup {
    let stripe = LocalStripe::start().await;
    let payment = stripe.settings();
    let app = TestApp::spawn_seeded_with(db, 20, move |shop| shop.with_payment_settings(payment)).await;
    let users = app.shop.accounts().seed_demo().await.unwrap();
    let seller_id = users.iter().find_map(|u| u.seller_id).unwrap();
    let sku: Uuid = sqlx::query_scalar("SELECT s.id FROM skus s JOIN products p ON p.id = s.product_id WHERE p.seller_id = $1 ORDER BY s.id LIMIT 1")
        .bind(seller_id)
        .fetch_one(&app.shop.db)
        .await
        .unwrap();
    app.shop.inventory().set_stock(SellerScope::Admin, sku, 50).await.unwrap();
    Setup { app, _stripe: stripe, seller_id, sku }
}

/// A new customer checks out `quantity` of `sku` through the API.
async fn place(app: &TestApp, sku: Uuid, quantity: i64) -> Uuid {
    let token = app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
    app.buy(&token, sku, quantity).await
}

async fn get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let response = app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}


type Figures = BTreeMap<DateTime<Utc>, (i64, i64, i64)>;

/// (orders, units, revenue_cents) per minute as the API reports them.
fn figures(body: &Value) -> Figures {
    body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let minute: DateTime<Utc> = b["minute"].as_str().unwrap().parse().unwrap();
            (minute, (b["orders"].as_i64().unwrap(), b["units"].as_i64().unwrap(), b["revenue_cents"].as_i64().unwrap()))
        })
        .collect()
}

/// The same figures straight from the orders, per minute of placement.
async fn figures_in_sql(db: &PgPool, sku: Uuid) -> Figures {
    let rows: Vec<(DateTime<Utc>, i64, i64, i64)> = sqlx::query_as(
        "SELECT date_trunc('minute', o.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(DISTINCT o.id), sum(i.quantity)::int8, sum(i.quantity * i.unit_cents)::int8 \
         FROM order_items i JOIN orders o ON o.id = i.order_id WHERE i.sku_id = $1 GROUP BY 1 ORDER BY 1",
    )
    .bind(sku)
    .fetch_all(db)
    .await
    .unwrap();
    rows.into_iter().map(|(m, o, u, r)| (m, (o, u, r))).collect()
}

fn range(sku: Uuid) -> String {
    let to = Utc::now() + chrono::Duration::minutes(5);
    let from = to - chrono::Duration::hours(2);
    format!("/api/v1/seller/analytics?sku_id={sku}&from={}&to={}", urlencode(&from.to_rfc3339()), urlencode(&to.to_rfc3339()))
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// The analytics group has nothing left to handle on order-events.
async fn analytics_caught_up(bus: &dyn EventBus) -> bool {
    bus.lag(Topic::Orders)
        .await
        .unwrap()
        .iter()
        .find(|g| g.group == shop::analytics::CONSUMER)
        .is_some_and(|g| g.pending + g.undelivered == 0)
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn orders_reach_the_sellers_per_minute_figures_once_each(db: PgPool) {
    let s = setup(db).await;
    let seller = sign_in(&s.app, "seller@mercato.test", "sell-demo-2026").await;
    let mut orders = Vec::new();
    for quantity in [1, 2, 3] {
        orders.push(place(&s.app, s.sku, quantity).await);
    }
    let path = range(s.sku);
    wait_for("the three orders in the seller's figures", Duration::from_secs(15), || async {
        let (status, body) = get(&s.app, &seller, &path).await;
        status == StatusCode::OK && figures(&body).values().map(|f| f.0).sum::<i64>() == 3
    })
    .await;
    let expected = figures_in_sql(&s.app.shop.db, s.sku).await;
    assert_eq!(expected.values().map(|f| f.1).sum::<i64>(), 6, "1 + 2 + 3 units ordered");
    let (_, body) = get(&s.app, &seller, &path).await;
    assert_eq!(figures(&body), expected, "per minute, the figures are the orders'");
    assert!(body["buckets"].as_array().unwrap().iter().all(|b| b["reservations"] == 0 && b["rejections"] == 0));

    // The first order's event delivered again (a relay that republished, a
    // consumer that died before its ack): it must not count twice.
    let (id, event_type, aggregate_id, occurred_at, payload): (Uuid, String, Uuid, DateTime<Utc>, Value) =
        sqlx::query_as("SELECT id, event_type, aggregate_id, created_at, payload FROM outbox WHERE aggregate_id = $1 AND event_type = 'order.placed'")
            .bind(orders[0])
            .fetch_one(&s.app.shop.db)
            .await
            .unwrap();
    let event = Event { id, event_type, aggregate_id, occurred_at, payload };
    let bus = server::workers::relay::bus(&s.app.shop, APP_PARTITIONS);
    bus.publish(Topic::Orders, std::slice::from_ref(&event)).await.unwrap();
    wait_for("the analytics group to take the duplicate", Duration::from_secs(15), || analytics_caught_up(bus.as_ref())).await;
    // And straight into the handler, twice more.
    s.app.shop.analytics().record(&event).await.unwrap();
    s.app.shop.analytics().record(&event).await.unwrap();
    let (_, body) = get(&s.app, &seller, &path).await;
    assert_eq!(figures(&body), expected, "a redelivered event counts once");
    let processed: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE consumer = 'analytics' AND event_id = $1")
        .bind(id)
        .fetch_one(&s.app.shop.db)
        .await
        .unwrap();
    assert_eq!(processed, 1);

    // An admin sees any seller's SKU, the same figures.
    let admin = sign_in(&s.app, "admin@mercato.test", "admin-demo-2026").await;
    let (status, body) = get(&s.app, &admin, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(figures(&body), expected);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn another_sellers_sku_is_not_found_and_bad_ranges_are_refused(db: PgPool) {
    let s = setup(db).await;
    let seller = sign_in(&s.app, "seller@mercato.test", "sell-demo-2026").await;
    let other_sku: Uuid = sqlx::query_scalar("SELECT s.id FROM skus s JOIN products p ON p.id = s.product_id WHERE p.seller_id <> $1 ORDER BY s.id LIMIT 1")
        .bind(s.seller_id)
        .fetch_one(&s.app.shop.db)
        .await
        .unwrap();
    let (status, body) = get(&s.app, &seller, &range(other_sku)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another seller's SKU is absent: {body}");
    let (status, _) = get(&s.app, &seller, &range(Uuid::now_v7())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no such SKU");
    let (status, _) = get(&s.app, &seller, &range(s.sku)).await;
    assert_eq!(status, StatusCode::OK, "its own");
    let customer = s.app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
    assert_eq!(get(&s.app, &customer, &range(s.sku)).await.0, StatusCode::FORBIDDEN, "customers have no analytics");
    assert_eq!(s.app.client.get(s.app.url(&range(s.sku))).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);

    let sku = s.sku;
    for (query, code, param) in [
        (format!("sku_id={sku}&from=yesterday"), StatusCode::BAD_REQUEST, Some("from")),
        (format!("sku_id={sku}&to=2026-13-01T00:00:00Z"), StatusCode::BAD_REQUEST, Some("to")),
        (format!("sku_id=not-a-uuid"), StatusCode::BAD_REQUEST, Some("sku_id")),
        ("from=2026-12-01T00:00:00Z".to_owned(), StatusCode::BAD_REQUEST, Some("sku_id")),
        (format!("sku_id={sku}&from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z"), StatusCode::UNPROCESSABLE_ENTITY, None),
        (format!("sku_id={sku}&from=2026-12-01T00:00:00Z&to=2026-12-01T00:00:00Z"), StatusCode::UNPROCESSABLE_ENTITY, None),
        (format!("sku_id={sku}&from=2026-10-01T00:00:00Z&to=2026-12-01T00:00:00Z"), StatusCode::UNPROCESSABLE_ENTITY, None),
    ] {
        let (status, body) = get(&s.app, &seller, &format!("/api/v1/seller/analytics?{query}")).await;
        assert_eq!(status, code, "{query}: {body}");
        if let Some(param) = param {
            assert_eq!(body["param"], param, "{query}: {body}");
        }
    }
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_sku_bought_out_leaves_the_in_stock_results_within_seconds(db: PgPool) {
    let s = setup(db).await;
    // A product whose only stock is 2 units of one SKU.
    let product: Uuid = sqlx::query_scalar("SELECT product_id FROM skus WHERE id = $1").bind(s.sku).fetch_one(&s.app.shop.db).await.unwrap();
    let siblings: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM skus WHERE product_id = $1 AND id <> $2").bind(product).bind(s.sku).fetch_all(&s.app.shop.db).await.unwrap();
    for sku in siblings {
        s.app.shop.inventory().set_stock(SellerScope::Admin, sku, 0).await.unwrap();
    }
    s.app.shop.inventory().set_stock(SellerScope::Admin, s.sku, 2).await.unwrap();
    let listed = || async {
        let response = s.app.get("/api/v1/products?in_stock=true&per_page=48").await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        page["hits"].as_array().unwrap().iter().any(|h| h["id"] == json!(product))
    };
    assert!(listed().await, "in stock: listed");
    // Out of the `updated_at` poll's sight (it looks back a minute past its
    // watermark), so only the search indexer can take the product out.
    sqlx::query("UPDATE products SET updated_at = now() - interval '1 hour' WHERE id = $1").bind(product).execute(&s.app.shop.db).await.unwrap();

    place(&s.app, s.sku, 2).await;
    // Checkout itself does not touch the index: the search indexer, fed by
    // `order.placed`, takes the product out.
    wait_for("the sold-out product to leave in_stock=true", Duration::from_secs(10), || async { !listed().await }).await;
}

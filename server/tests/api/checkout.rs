//! Checkout through the HTTP API against real PostgreSQL, Redis and
//! localstripe: the happy path and cancel, the 2,000-customer race for 100
//! units, idempotency under 50 concurrent retries, a declined card, the
//! payment provider going away, and prices that changed in the cart.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use shop::cart::Owner;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{LocalStripe, TestApp};
use crate::stripe_fake::Fault;

struct Shop {
    app: TestApp,
    stripe: LocalStripe,
    sku: Uuid,
}

/// The app on its own localstripe, around a small catalog whose first SKU
/// has `stock` units.
async fn shop_with(db: PgPool, stock: i32) -> Shop {
    let stripe = LocalStripe::start().await;
    let app = TestApp::spawn_seeded_with(db, 10, |shop| shop.with_payment_settings(stripe.settings())).await;
    let sku: Uuid = sqlx::query_scalar("SELECT sku_id FROM inventory ORDER BY sku_id LIMIT 1").fetch_one(&app.shop.db).await.unwrap();
    set_stock(&app, sku, stock).await;
    Shop { app, stripe, sku }
}

async fn set_stock(app: &TestApp, sku: Uuid, stock: i32) {
    app.shop.inventory().set_stock(shop::inventory::SellerScope::Admin, sku, stock.into()).await.unwrap();
}

/// `count` customers with a bearer token each and `quantity` of `sku` in their carts.
async fn customers(app: &TestApp, count: usize, sku: Uuid, quantity: i64) -> Vec<String> {
    let tokens = app.shop.accounts().create_load_test_users(count, "load-test-password").await.unwrap();
    for token in &tokens {
        let user = app.shop.accounts().authenticate(token).await.unwrap().unwrap();
        app.shop.cart().add(&Owner::User(user.id), sku, quantity).await.unwrap();
    }
    tokens
}

fn body(pm: &str) -> Value {
    json!({
        "shipping_address": { "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" },
        "payment_method": pm,
    })
}

async fn checkout(app: &TestApp, token: &str, key: &str, body: &Value) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/api/v1/checkout"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let response = app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// (stock_count, reserved, held) in PostgreSQL and the live counter.
async fn stock(app: &TestApp, sku: Uuid) -> (i32, i32, i32, i64) {
    let (s, r, h): (i32, i32, i32) = sqlx::query_as("SELECT stock_count, reserved, held FROM inventory WHERE sku_id = $1").bind(sku).fetch_one(&app.shop.db).await.unwrap();
    (s, r, h, app.shop.inventory().available(&[sku]).await.unwrap()[0])
}

fn authorized(intents: &[Value]) -> usize {
    intents.iter().filter(|pi| pi["status"] == "requires_capture").count()
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_customer_checks_out_sees_the_order_and_cancels_it(db: PgPool) {
    let s = shop_with(db, 10).await;
    let tokens = customers(&s.app, 2, s.sku, 3).await;
    let key = Uuid::new_v4().to_string();
    let (status, placed) = checkout(&s.app, &tokens[0], &key, &body("pm_card_visa")).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    assert_eq!(placed["status"], "CONFIRMED");
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    assert_eq!(stock(&s.app, s.sku).await, (10, 3, 0, 7), "3 units in the order, 7 left");
    assert_eq!(authorized(&s.stripe.intents().await), 1);

    let (status, order) = get(&s.app, &tokens[0], &format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(status, StatusCode::OK);
    let timeline: Vec<&str> = order["status_history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(timeline, ["PLACED", "PAYMENT_PENDING", "CONFIRMED"]);
    assert_eq!(order["items"][0]["quantity"], 3);
    assert_eq!(order["total_cents"], placed["total_cents"]);
    assert!(order["payment_id"].as_str().unwrap().starts_with("pi_"));
    let (_, mine) = get(&s.app, &tokens[0], "/api/v1/orders").await;
    assert_eq!(mine["orders"][0]["order_id"], json!(order_id));
    assert_eq!(get(&s.app, &tokens[1], &format!("/api/v1/orders/{order_id}")).await.0, StatusCode::NOT_FOUND, "someone else's order is not found");
    let (_, cart) = get(&s.app, &tokens[0], "/api/v1/cart").await;
    assert_eq!(cart["lines"].as_array().unwrap().len(), 0, "the cart became the order");
    let events: Vec<String> = sqlx::query_scalar("SELECT event_type FROM outbox WHERE aggregate_id = $1::uuid ORDER BY created_at")
        .bind(&order_id)
        .fetch_all(&s.app.shop.db)
        .await
        .unwrap();
    assert_eq!(events, ["order.placed"]);

    let cancel = |token: String| {
        let app = &s.app;
        let path = format!("/api/v1/orders/{order_id}/cancel");
        async move {
            let r = app.client.post(app.url(&path)).bearer_auth(token).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(cancel(tokens[1].clone()).await.0, StatusCode::NOT_FOUND);
    let (status, cancelled) = cancel(tokens[0].clone()).await;
    assert_eq!((status, cancelled["status"].as_str()), (StatusCode::OK, Some("CANCELLED")), "{cancelled}");
    assert_eq!(cancel(tokens[0].clone()).await.1["status"], "CANCELLED", "cancelling again is harmless");
    assert_eq!(stock(&s.app, s.sku).await, (10, 0, 0, 10), "every unit back");
    let intents = s.stripe.intents().await;
    assert_eq!((authorized(&intents), intents[0]["status"].as_str()), (0, Some("canceled")), "the authorization was voided");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn two_thousand_customers_race_for_one_hundred_units(db: PgPool) {
    let s = shop_with(db, 100).await;
    let tokens = customers(&s.app, 2_000, s.sku, 1).await;
    let app = Arc::new(s.app);
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = tokio::task::JoinSet::new();
    for token in tokens {
        let (app, gate) = (app.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            checkout(&app, &token, &Uuid::new_v4().to_string(), &body("pm_card_visa")).await
        });
    }
    let (mut placed, mut sold_out) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        let (status, answer) = result.unwrap();
        match status {
            StatusCode::CREATED => placed += 1,
            StatusCode::CONFLICT => {
                assert_eq!(answer["error"], "out_of_stock", "{answer}");
                assert_eq!(answer["skus"][0]["sku_id"], json!(s.sku));
                sold_out += 1;
            }
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert_eq!((placed, sold_out), (100, 1_900));
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&app.shop.db).await.unwrap();
    assert_eq!(orders, 100);
    assert_eq!(stock(&app, s.sku).await, (100, 100, 0, 0), "PostgreSQL and the Redis counter agree");
    assert!(app.shop.inventory().reconcile().await.unwrap().corrected.is_empty(), "and reconciliation finds nothing");
    assert_eq!(authorized(&s.stripe.intents().await), 100, "exactly one authorization per order");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn one_key_sent_fifty_times_at_once_makes_one_order(db: PgPool) {
    let s = shop_with(db, 10).await;
    let token = customers(&s.app, 1, s.sku, 2).await.remove(0);
    let key = Uuid::new_v4().to_string();
    let app = Arc::new(s.app);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (app, token, key) = (app.clone(), token.clone(), key.clone());
        tasks.spawn(async move { checkout(&app, &token, &key, &body("pm_card_visa")).await });
    }
    let mut answers = Vec::new();
    while let Some(result) = tasks.join_next().await {
        answers.push(result.unwrap());
    }
    assert!(answers.iter().all(|a| a == &answers[0]), "every retry got the first answer");
    assert_eq!(answers[0].0, StatusCode::CREATED);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&app.shop.db).await.unwrap();
    assert_eq!(orders, 1);
    assert_eq!(s.stripe.intents().await.len(), 1, "one PaymentIntent");
    assert_eq!(stock(&app, s.sku).await.1, 2);

    // Later replays are identical; the same key for another body is refused.
    assert_eq!(checkout(&app, &token, &key, &body("pm_card_visa")).await, answers[0]);
    let (status, refused) = checkout(&app, &token, &key, &body("pm_card_mastercard")).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused")));
    let (status, missing) = app
        .client
        .post(app.url("/api/v1/checkout"))
        .bearer_auth(&token)
        .json(&body("pm_card_visa"))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{:?}", missing.text().await);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_declined_card_is_402_and_gives_the_units_back(db: PgPool) {
    let s = shop_with(db, 5).await;
    let token = customers(&s.app, 1, s.sku, 2).await.remove(0);
    let key = Uuid::new_v4().to_string();
    let (status, answer) = checkout(&s.app, &token, &key, &body("pm_card_chargeCustomerFail")).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::PAYMENT_REQUIRED, Some("payment_declined")), "{answer}");
    assert_eq!(answer["decline_code"], "card_declined");
    assert_eq!(stock(&s.app, s.sku).await, (5, 0, 0, 5), "nothing held after a decline");
    assert_eq!(authorized(&s.stripe.intents().await), 0);
    assert_eq!(checkout(&s.app, &token, &key, &body("pm_card_chargeCustomerFail")).await, (status, answer), "the decline is the key's answer");
    let (status, _) = checkout(&s.app, &token, &Uuid::new_v4().to_string(), &body("pm_card_visa")).await;
    assert_eq!(status, StatusCode::CREATED, "another card, another key: placed");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn without_the_payment_provider_checkout_is_503_and_holds_nothing(db: PgPool) {
    let mut s = shop_with(db, 5).await;
    let token = customers(&s.app, 1, s.sku, 1).await.remove(0);
    let key = Uuid::new_v4().to_string();
    s.stripe.stop().await;
    let response = s.app.client.post(s.app.url("/api/v1/checkout")).bearer_auth(&token).header("Idempotency-Key", &key).json(&body("pm_card_visa")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(response.json::<Value>().await.unwrap()["dependency"], "payments");
    assert_eq!(stock(&s.app, s.sku).await, (5, 0, 0, 5), "the reservation was released");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&s.app.shop.db).await.unwrap();
    assert_eq!(orders, 0, "no order without an authorization");

    // The key was not spent on our failure: the retry goes through.
    s.stripe.restart().await;
    // Retried as a client would while the breaker cools down (503 + Retry-After).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (status, answer) = loop {
        let (status, answer) = checkout(&s.app, &token, &key, &body("pm_card_visa")).await;
        if status != StatusCode::SERVICE_UNAVAILABLE || std::time::Instant::now() > deadline {
            break (status, answer);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(authorized(&s.stripe.intents().await), 1);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_changed_price_is_shown_before_it_is_charged(db: PgPool) {
    let s = shop_with(db, 5).await;
    let token = customers(&s.app, 1, s.sku, 1).await.remove(0);
    let product: Uuid = sqlx::query_scalar("SELECT product_id FROM skus WHERE id = $1").bind(s.sku).fetch_one(&s.app.shop.db).await.unwrap();
    let old: i64 = sqlx::query_scalar("SELECT price_cents FROM skus WHERE id = $1").bind(s.sku).fetch_one(&s.app.shop.db).await.unwrap();
    s.app.shop.catalog().set_prices(product, &[shop::catalog::SkuPrice { sku_id: s.sku, price_cents: old + 500 }]).await.unwrap();
    let (status, answer) = checkout(&s.app, &token, &Uuid::new_v4().to_string(), &body("pm_card_visa")).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("price_changed")), "{answer}");
    assert_eq!(answer["total_cents"], old + 500);
    assert_eq!(answer["lines"][0]["was_cents"], old);
    assert_eq!(s.stripe.intents().await.len(), 0, "nobody was charged");
    let mut agreed = body("pm_card_visa");
    agreed["expected_total_cents"] = json!(old + 500);
    let (status, placed) = checkout(&s.app, &token, &Uuid::new_v4().to_string(), &agreed).await;
    assert_eq!((status, placed["total_cents"].as_i64()), (StatusCode::CREATED, Some(old + 500)));
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn bad_checkout_input_is_a_clear_4xx_and_holds_nothing(db: PgPool) {
    let s = shop_with(db, 5).await;
    let token = customers(&s.app, 1, s.sku, 1).await.remove(0);
    let mut bad_country = body("pm_card_visa");
    bad_country["shipping_address"]["country"] = json!("Britain");
    let mut blank_city = body("pm_card_visa");
    blank_city["shipping_address"]["city"] = json!("   ");
    let mut no_name = body("pm_card_visa");
    no_name["shipping_address"].as_object_mut().unwrap().remove("name");
    for (request, status, says) in [
        (bad_country, StatusCode::UNPROCESSABLE_ENTITY, "country"),
        (blank_city, StatusCode::UNPROCESSABLE_ENTITY, "city"),
        (body("card 4242"), StatusCode::UNPROCESSABLE_ENTITY, "payment_method"),
        (no_name, StatusCode::BAD_REQUEST, "name"),
    ] {
        let (got, answer) = checkout(&s.app, &token, &Uuid::new_v4().to_string(), &request).await;
        assert_eq!(got, status, "{answer}");
        assert!(answer["message"].as_str().unwrap().contains(says), "{answer}");
    }
    assert_eq!(stock(&s.app, s.sku).await, (5, 0, 0, 5), "nothing reserved for refused input");
    assert_eq!(s.stripe.intents().await.len(), 0, "and nobody charged");

    // Someone with nothing in the cart.
    let empty = s.app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
    let (status, answer) = checkout(&s.app, &empty, &Uuid::new_v4().to_string(), &body("pm_card_visa")).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("cart_empty")));
}

/// The storefront's checkout form posts to the `place_order` server
/// function: a missing field is a 400 naming it, a cross-site post a 403;
/// with the provider down it gets the REST API's 503 and a message a shopper
/// can act on; without JavaScript (a plain form post) a placed order
/// redirects to its confirmation page.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn the_checkout_form_explains_an_outage_and_confirms_without_javascript(db: PgPool) {
    let mut s = shop_with(db, 5).await;
    let token = customers(&s.app, 1, s.sku, 1).await.remove(0);
    let cookie = format!("{}={token}", shop::accounts::web::SESSION_COOKIE);
    let key = Uuid::new_v4().to_string();
    let form = [
        ("idempotency_key", key.as_str()),
        ("name", "Ada Lovelace"),
        ("line1", "12 St James's Square"),
        ("line2", ""),
        ("city", "London"),
        ("postal_code", "SW1Y 4JH"),
        ("country", "GB"),
        ("payment_method", "pm_card_visa"),
    ];
    let post = |accept: &'static str| {
        s.app
            .client
            .post(s.app.url("/api/place_order"))
            .header("cookie", &cookie)
            .header("origin", s.app.url(""))
            .header("referer", s.app.url("/checkout"))
            .header("accept", accept)
            .form(&form)
    };

    // Bad input is a 4xx naming the problem, and holds nothing.
    let response = post("application/json").form(&form[..2]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = response.text().await.unwrap();
    assert!(text.contains("line1"), "{text}");
    let response = s.app.client.post(s.app.url("/api/place_order")).header("cookie", &cookie).header("accept", "application/json").form(&form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "a cookie-authenticated post from another site");
    assert_eq!(stock(&s.app, s.sku).await, (5, 0, 0, 5));

    s.stripe.stop().await;
    let response = post("application/json").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let text = response.text().await.unwrap();
    assert!(text.contains("payment service is not answering") && text.contains("nothing was charged"), "{text}");
    assert_eq!(stock(&s.app, s.sku).await, (5, 0, 0, 5), "nothing held");

    s.stripe.restart().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let response = loop {
        let response = post("text/html,application/xhtml+xml").send().await.unwrap();
        if response.status() != StatusCode::SERVICE_UNAVAILABLE || std::time::Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert!(response.status().is_redirection(), "{}", response.status());
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order: Uuid = sqlx::query_scalar("SELECT id FROM orders").fetch_one(&s.app.shop.db).await.unwrap();
    assert_eq!(location, format!("/orders/{order}?placed=1"));
    assert_eq!(stock(&s.app, s.sku).await, (5, 1, 0, 4));
}

/// Keys live at least 24 h. After that the pruner forgets the stored
/// answers; a replay of a key that made an order still gets that order
/// (orders keep their key), never a second charge, and a refused key runs
/// again.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn keys_are_pruned_after_a_day_and_a_late_replay_still_finds_its_order(db: PgPool) {
    let s = shop_with(db, 5).await;
    let token = customers(&s.app, 1, s.sku, 1).await.remove(0);
    let (placed_key, declined_key) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    let (status, declined) = checkout(&s.app, &token, &declined_key, &body("pm_card_chargeCustomerFail")).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{declined}");
    let (status, placed) = checkout(&s.app, &token, &placed_key, &body("pm_card_visa")).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");

    let keys = s.app.shop.checkout();
    assert_eq!(keys.prune_keys().await.unwrap(), 0, "a fresh key is kept");
    sqlx::query("UPDATE checkout_requests SET created_at = created_at - interval '23 hours'").execute(&s.app.shop.db).await.unwrap();
    assert_eq!(keys.prune_keys().await.unwrap(), 0, "kept for at least 24 h");
    sqlx::query("UPDATE checkout_requests SET created_at = created_at - interval '2 hours'").execute(&s.app.shop.db).await.unwrap();
    assert_eq!(keys.prune_keys().await.unwrap(), 2);

    // The cart is full again (the customer shopped on): the old key still
    // answers with its order, and nothing is charged.
    s.app.shop.cart().add(&Owner::User(s.app.shop.accounts().authenticate(&token).await.unwrap().unwrap().id), s.sku, 1).await.unwrap();
    let (status, replay) = checkout(&s.app, &token, &placed_key, &body("pm_card_visa")).await;
    assert_eq!((status, &replay["order_id"]), (StatusCode::CREATED, &placed["order_id"]), "{replay}");
    assert_eq!(authorized(&s.stripe.intents().await), 1, "no second authorization");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&s.app.shop.db).await.unwrap();
    assert_eq!(orders, 1);

    // The declined key's answer is gone: it runs again (and is declined again).
    let (status, again) = checkout(&s.app, &token, &declined_key, &body("pm_card_chargeCustomerFail")).await;
    assert_eq!((status, again["error"].as_str()), (StatusCode::PAYMENT_REQUIRED, Some("payment_declined")));
}

/// A price change whose cache drop a racing reader undid: PostgreSQL has the
/// new price while the `sku:{id}` cache still has the old one. The order
/// transaction reads the price from PostgreSQL, so the order is refused (and
/// its authorization voided) instead of charged at the cached price; the
/// stale entry is dropped, and agreeing to the new total places the order
/// at it.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_price_changed_behind_the_cache_is_refused_never_charged(db: PgPool) {
    let s = shop_with(db, 5).await;
    let token = customers(&s.app, 1, s.sku, 2).await.remove(0);
    let old: i64 = sqlx::query_scalar("SELECT price_cents FROM skus WHERE id = $1").bind(s.sku).fetch_one(&s.app.shop.db).await.unwrap();
    sqlx::query("UPDATE skus SET price_cents = price_cents + 700 WHERE id = $1").bind(s.sku).execute(&s.app.shop.db).await.unwrap();
    let (_, cart) = get(&s.app, &token, "/api/v1/cart").await;
    assert_eq!(cart["lines"][0]["current_unit_cents"], old, "the cache still says the old price");

    let (status, answer) = checkout(&s.app, &token, &Uuid::new_v4().to_string(), &body("pm_card_visa")).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("price_changed")), "{answer}");
    assert_eq!(answer["total_cents"], 2 * (old + 700));
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&s.app.shop.db).await.unwrap();
    assert_eq!(orders, 0);
    assert_eq!(authorized(&s.stripe.intents().await), 0, "the authorization at the old price was voided");
    assert_eq!(stock(&s.app, s.sku).await, (5, 0, 0, 5), "and the units released");

    let (_, cart) = get(&s.app, &token, "/api/v1/cart").await;
    assert_eq!(cart["lines"][0]["current_unit_cents"], old + 700, "the stale cache entry was dropped");
    let mut agreed = body("pm_card_visa");
    agreed["expected_total_cents"] = json!(2 * (old + 700));
    let (status, placed) = checkout(&s.app, &token, &Uuid::new_v4().to_string(), &agreed).await;
    assert_eq!((status, placed["total_cents"].as_i64()), (StatusCode::CREATED, Some(2 * (old + 700))), "{placed}");
    let unit: i64 = sqlx::query_scalar("SELECT unit_cents FROM order_items").fetch_one(&s.app.shop.db).await.unwrap();
    assert_eq!(unit, old + 700);
}

/// A dead checkout, as a crashed process leaves it: a claim `started` long
/// ago with its reservation and (maybe) an authorization.
async fn dead_checkout(app: &TestApp, sku: Uuid, payment_id: Option<String>, age_secs: i32) -> (Uuid, Uuid, Option<String>) {
    let token = app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
    let user = app.shop.accounts().authenticate(&token).await.unwrap().unwrap().id;
    let reservation = Uuid::new_v4();
    app.shop.inventory().reserve(reservation, &[shop::inventory::Line { sku_id: sku, quantity: 1 }], None).await.unwrap();
    let order_id = Uuid::now_v7();
    let payment_id = match payment_id {
        Some(id) => Some(id),
        None => {
            let intent = shop::payments::NewIntent { order_id, amount_cents: 1_000, currency: "EUR", payment_method: "pm_card_visa", checkout_key: "k" };
            Some(app.shop.payments().authorize(&intent).await.unwrap().id)
        }
    };
    sqlx::query(
        "INSERT INTO checkout_requests (user_id, idempotency_key, request_hash, order_id, reservation_token, payment_id, updated_at) \
         VALUES ($1, 'k', 'h', $2, $3, $4, now() - make_interval(secs => $5))",
    )
    .bind(user)
    .bind(order_id)
    .bind(reservation)
    .bind(&payment_id)
    .bind(f64::from(age_secs))
    .execute(&app.shop.db)
    .await
    .unwrap();
    (user, order_id, payment_id)
}

/// Recovery takes the oldest dead checkout first. One whose void always
/// fails (the provider does not know its intent) must not block the others:
/// it backs off, keeps its error, and the rest are voided and released.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_claim_whose_void_always_fails_backs_off_and_lets_the_others_through(db: PgPool) {
    let s = shop_with(db, 20).await;
    // The server's own recovery worker waits 60 s; these are 2-10 s old, so
    // only the passes below touch them.
    let (poison_user, _, _) = dead_checkout(&s.app, s.sku, Some("pi_unknown_to_the_provider".into()), 10).await;
    let mut good = Vec::new();
    for age in [5, 4, 3] {
        good.push(dead_checkout(&s.app, s.sku, None, age).await);
    }
    assert_eq!(stock(&s.app, s.sku).await.3, 16);

    let checkout = s.app.shop.checkout();
    let report = checkout.recover(std::time::Duration::from_secs(1)).await.unwrap();
    assert_eq!((report.recovered, report.voided, report.failed), (3, 3, 1), "{report:?}");
    let intents = s.stripe.intents().await;
    for (_, order_id, payment_id) in &good {
        let pi = intents.iter().find(|pi| pi["id"].as_str() == payment_id.as_deref()).expect("the intent exists");
        assert_eq!(pi["status"], "canceled", "order {order_id}: voided");
    }
    assert_eq!(stock(&s.app, s.sku).await.3, 19, "three holds released, the poison's kept");
    let claims: Vec<(Uuid, String, i32, Option<String>, bool)> = sqlx::query_as(
        "SELECT user_id, state, recovery_attempts, last_error, next_attempt_at > now() + interval '3 seconds' FROM checkout_requests",
    )
    .fetch_all(&s.app.shop.db)
    .await
    .unwrap();
    assert_eq!(claims.len(), 1, "only the poison claim is left");
    let (user, state, attempts, error, backing_off) = &claims[0];
    assert_eq!((user, state.as_str(), *attempts, *backing_off), (&poison_user, "recovering", 1, true));
    assert!(error.as_deref().is_some_and(|e| !e.is_empty()), "its error is kept");

    // Straight away it is left alone; once its back-off is over it is tried
    // again, and on failing again waits longer.
    assert_eq!(checkout.recover(std::time::Duration::from_secs(1)).await.unwrap().failed, 0);
    // Whichever pass takes it now (this one, or the server's own recovery
    // worker, which also takes claims whose back-off is over) fails again;
    // SKIP LOCKED and the lease give it to one of them.
    sqlx::query("UPDATE checkout_requests SET next_attempt_at = now() - interval '1 second'").execute(&s.app.shop.db).await.unwrap();
    assert!(checkout.recover(std::time::Duration::from_secs(1)).await.unwrap().failed <= 1);
    crate::helpers::wait_for("the poison claim's second attempt", std::time::Duration::from_secs(20), || async {
        sqlx::query_scalar::<_, i32>("SELECT recovery_attempts FROM checkout_requests").fetch_one(&s.app.shop.db).await.unwrap() >= 2
    })
    .await;
    let (attempts, wait): (i32, f64) =
        sqlx::query_as("SELECT recovery_attempts, extract(epoch FROM next_attempt_at - now())::float8 FROM checkout_requests").fetch_one(&s.app.shop.db).await.unwrap();
    assert_eq!(attempts, 2);
    assert!(wait > 8.0, "the back-off doubled: {wait} s");
}

/// The provider authorized but its answer was lost (our failure, as far as
/// the customer knows): the authorization is voided and the key freed. The
/// customer's retry with the same key is a new attempt with a new order id,
/// so its provider keys are new too: under Stripe's rules (the strict fake)
/// a key derived from the customer's would be reused with other parameters
/// and refused for a day.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_retry_after_a_lost_authorization_answer_gets_new_provider_keys(db: PgPool) {
    let s = shop_with(db, 5).await;
    let token = customers(&s.app, 1, s.sku, 1).await.remove(0);
    let key = Uuid::new_v4().to_string();
    s.stripe.fake().fail_next(("POST", "/confirm"), Fault::LoseResponse);
    let (status, answer) = checkout(&s.app, &token, &key, &body("pm_card_visa")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let intents = s.stripe.intents().await;
    assert_eq!((intents.len(), authorized(&intents)), (1, 0), "the lost authorization was voided");

    let (status, answer) = checkout(&s.app, &token, &key, &body("pm_card_visa")).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(s.stripe.fake().counters().idempotency_errors(), 0, "no provider key was reused with other parameters");
    let payment: String = sqlx::query_scalar("SELECT payment_id FROM orders").fetch_one(&s.app.shop.db).await.unwrap();
    let by_id = s.stripe.intents_by_id().await;
    assert_eq!(by_id[&payment]["status"], "requires_capture", "the order's own intent is the authorized one");
    assert_eq!(authorized(&by_id.into_values().collect::<Vec<_>>()), 1);
}

/// Checkout keys are only unique per customer: two customers who happen to
/// send the same one must each get their own payment.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn two_customers_with_the_same_checkout_key_each_pay_for_their_own_order(db: PgPool) {
    let s = shop_with(db, 5).await;
    let tokens = customers(&s.app, 2, s.sku, 1).await;
    let key = "order-1";
    for token in &tokens {
        let (status, answer) = checkout(&s.app, token, key, &body("pm_card_visa")).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let payments: Vec<String> = sqlx::query_scalar("SELECT payment_id FROM orders").fetch_all(&s.app.shop.db).await.unwrap();
    let by_id = s.stripe.intents_by_id().await;
    assert_eq!(payments.len(), 2);
    assert_ne!(payments[0], payments[1]);
    for payment in &payments {
        assert_eq!(by_id[payment]["status"], "requires_capture");
    }
    assert_eq!(s.stripe.fake().counters().idempotency_errors(), 0);
}

/// The card is authorized, then PostgreSQL cannot honour the hold (a
/// counter that had drifted high), and the void fails: the customer is told
/// it is sold out, but the claim must not become a stored answer, or
/// nothing would ever void that authorization. Recovery does.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_refusal_after_authorization_whose_void_fails_is_left_for_recovery(db: PgPool) {
    let s = shop_with(db, 5).await;
    let token = customers(&s.app, 1, s.sku, 1).await.remove(0);
    // The counter still says 5; PostgreSQL has none.
    sqlx::query("UPDATE inventory SET stock_count = 0 WHERE sku_id = $1").bind(s.sku).execute(&s.app.shop.db).await.unwrap();
    // The void reads the intent first: that read fails once.
    s.stripe.fake().fail_next(("GET", "/v1/payment_intents/pi_"), Fault::Status(500));
    let (status, answer) = checkout(&s.app, &token, &Uuid::new_v4().to_string(), &body("pm_card_visa")).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("out_of_stock")), "{answer}");
    let payment: String = sqlx::query_scalar("SELECT payment_id FROM checkout_requests WHERE state = 'started'")
        .fetch_one(&s.app.shop.db)
        .await
        .expect("the claim stays open with its payment");
    assert_eq!(s.stripe.intents_by_id().await[&payment]["status"], "requires_capture", "still authorized");

    let report = s.app.shop.checkout().recover(std::time::Duration::ZERO).await.unwrap();
    assert_eq!((report.recovered, report.voided), (1, 1), "{report:?}");
    assert_eq!(s.stripe.intents_by_id().await[&payment]["status"], "canceled");
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM checkout_requests").fetch_one(&s.app.shop.db).await.unwrap();
    assert_eq!(open, 0);
}

/// A reservation that runs out while we are slow (here: the authorization
/// takes long and the hold is gone meanwhile) is our failure, not the
/// customer's: the key is not spent on it, and the retry places the order.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_reservation_that_expired_while_we_were_slow_does_not_spend_the_key(db: PgPool) {
    let s = shop_with(db, 5).await;
    let token = customers(&s.app, 1, s.sku, 1).await.remove(0);
    let key = Uuid::new_v4().to_string();
    s.stripe.fake().fail_next(("POST", "/confirm"), Fault::Delay(std::time::Duration::from_secs(5)));
    let app = Arc::new(s.app);
    let first = {
        let (app, token, key) = (app.clone(), token.clone(), key.clone());
        tokio::spawn(async move { checkout(&app, &token, &key, &body("pm_card_visa")).await })
    };
    // As soon as the intent is recorded (the authorization is under way),
    // the hold ends, as the sweeper would end an expired one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let reservation: Uuid = loop {
        let row: Option<Uuid> = sqlx::query_scalar("SELECT reservation_token FROM checkout_requests WHERE payment_id IS NOT NULL")
            .fetch_optional(&app.shop.db)
            .await
            .unwrap();
        if let Some(r) = row {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "the checkout never recorded its intent");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    app.shop.inventory().release(reservation).await.unwrap();
    let (status, answer) = first.await.unwrap();
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("reservation_expired")), "{answer}");
    assert_eq!(authorized(&s.stripe.intents().await), 0, "its authorization was voided");

    let (status, answer) = checkout(&app, &token, &key, &body("pm_card_visa")).await;
    assert_eq!(status, StatusCode::CREATED, "the same key runs again: {answer}");
}

/// Recovery calls the provider outside any row lock: while its void is
/// slow, the claim's row can be locked by anyone else at once.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn recovery_holds_no_row_lock_while_it_calls_the_provider(db: PgPool) {
    let s = shop_with(db, 5).await;
    let (user, _, _) = dead_checkout(&s.app, s.sku, None, 10).await;
    s.stripe.fake().fail_next(("GET", "/v1/payment_intents/pi_"), Fault::Delay(std::time::Duration::from_secs(4)));
    let app = Arc::new(s.app);
    let recovery = {
        let app = app.clone();
        tokio::spawn(async move { app.shop.checkout().recover(std::time::Duration::from_secs(1)).await })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let state: String = sqlx::query_scalar("SELECT state FROM checkout_requests WHERE user_id = $1").bind(user).fetch_one(&app.shop.db).await.unwrap();
        if state == "recovering" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "recovery never took the claim");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut tx = app.shop.db.begin().await.unwrap();
    let locked = sqlx::query("SELECT 1 FROM checkout_requests WHERE user_id = $1 FOR UPDATE NOWAIT").bind(user).fetch_optional(&mut *tx).await;
    assert!(locked.is_ok(), "the claim's row is not locked during the provider call: {locked:?}");
    tx.rollback().await.unwrap();
    let report = recovery.await.unwrap().unwrap();
    assert_eq!((report.recovered, report.voided), (1, 1), "{report:?}");
}

/// The pool bounds lock waits: a statement stuck behind a row lock that is
/// never let go (a wait PostgreSQL cannot see as a deadlock) fails with a
/// 503-class error instead of waiting for ever.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_lock_wait_past_the_pools_lock_timeout_ends_as_unavailable(db: PgPool) {
    let s = shop_with(db, 5).await;
    let timeouts = shop::db::Timeouts { statement: std::time::Duration::from_secs(20), lock: std::time::Duration::from_millis(300) };
    let pool = shop::db::connect_with_timeouts((*s.app.shop.db.connect_options()).clone(), 2, timeouts).await.unwrap();
    let mut holder = s.app.shop.db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM inventory WHERE sku_id = $1 FOR UPDATE").bind(s.sku).execute(&mut *holder).await.unwrap();

    let update = sqlx::query("UPDATE inventory SET version = version + 1 WHERE sku_id = $1").bind(s.sku).execute(&pool);
    let err = tokio::time::timeout(std::time::Duration::from_secs(15), update)
        .await
        .expect("it gave up at the lock timeout, not the statement timeout or never")
        .unwrap_err();
    let err = shop::Error::from(err);
    assert!(matches!(err, shop::Error::Unavailable { dependency: shop::error::Dependency::Postgres, .. }), "{err:?}");
    holder.rollback().await.unwrap();
}

/// The gateway's request timeout or a client that hangs up drops the
/// handler's future: the checkout must still run to its end (an order, its
/// claim answered), not stop between authorizing and committing with the
/// authorization left to recovery.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_checkout_whose_caller_stops_waiting_still_runs_to_its_end(db: PgPool) {
    let s = shop_with(db, 5).await;
    let token = customers(&s.app, 1, s.sku, 1).await.remove(0);
    let user = s.app.shop.accounts().authenticate(&token).await.unwrap().unwrap();
    let key = Uuid::new_v4().to_string();
    let request: shop::checkout::CheckoutRequest = serde_json::from_value(body("pm_card_visa")).unwrap();
    // The authorization takes 2 s; the caller gives up after 0.5 s.
    s.stripe.fake().fail_next(("POST", "/confirm"), Fault::Delay(std::time::Duration::from_secs(2)));
    let gave_up = tokio::time::timeout(std::time::Duration::from_millis(500), s.app.shop.checkout().place(user.id, &key, &request)).await;
    assert!(gave_up.is_err(), "the caller stopped waiting: {gave_up:?}");

    crate::helpers::wait_for("the order of the abandoned call", std::time::Duration::from_secs(20), || async {
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM checkout_requests WHERE idempotency_key = $1")
            .bind(&key)
            .fetch_optional(&s.app.shop.db)
            .await
            .unwrap();
        state.as_deref() == Some("done")
    })
    .await;
    let (order_id, payment): (Uuid, String) =
        sqlx::query_as("SELECT id, payment_id FROM orders WHERE idempotency_key = $1").bind(&key).fetch_one(&s.app.shop.db).await.unwrap();
    let intents = s.stripe.intents().await;
    assert_eq!((intents.len(), authorized(&intents)), (1, 1), "one authorization, the order's: {intents:#?}");
    assert_eq!(s.stripe.intents_by_id().await[&payment]["status"], "requires_capture");
    // The customer's retry with the key gets that order.
    let (status, answer) = checkout(&s.app, &token, &key, &body("pm_card_visa")).await;
    assert_eq!((status, answer["order_id"].as_str()), (StatusCode::CREATED, Some(order_id.to_string().as_str())), "{answer}");
}

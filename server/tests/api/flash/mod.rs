//! Flash sales through the HTTP API against real PostgreSQL, Redis and
//! localstripe: 2,000 customers racing for 100 units with a limit of 2
//! (some pressing Buy from several connections at once), declined cards
//! handing their units to the waitlist first come first served, a sale
//! cancelled before its start giving its units back, the schedule running
//! in two server processes doing each step once, the seller's refusals,
//! and the live figures resuming with Last-Event-ID. `confirm.rs`: order
//! transactions that do not commit (a lost deadlock, a refusal, a second
//! tab) around a flash hold.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use model::account::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use server::config::Config;
use server::startup::Application;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{header, mail_to, redis_url, wait_for, LocalStripe, TestApp};

mod confirm;
mod long_poll;

struct Setup {
    app: TestApp,
    stripe: LocalStripe,
    sku: Uuid,
    /// A seller who owns `sku`, signed in.
    seller: String,
    seller_id: Uuid,
}

fn settings() -> shop::flash::Settings {
    shop::flash::Settings { tick: Duration::from_millis(50), ..shop::flash::Settings::default() }
}

/// The app on its own localstripe around a small catalog; its first SKU
/// has `stock` units and belongs to a seller account the test signs in as.
async fn setup_with(db: PgPool, stock: i64, flash: shop::flash::Settings) -> Setup {
    setup_configured(db, stock, flash, |_| {}).await
}

/// [`setup_with`], with the server's configuration changed first.
async fn setup_configured(db: PgPool, stock: i64, flash: shop::flash::Settings, configure: impl FnOnce(&mut Config)) -> Setup {
    let stripe = LocalStripe::start().await;
    let adjust = |shop: shop::Shop| shop.with_payment_settings(stripe.settings()).with_flash_settings(flash);
    let app = TestApp::boot_with(db, &redis_url(), Some(10), adjust, configure).await;
    let (sku, seller_id): (Uuid, Uuid) =
        sqlx::query_as("SELECT s.id, p.seller_id FROM skus s JOIN products p ON p.id = s.product_id ORDER BY s.id LIMIT 1")
            .fetch_one(&app.shop.db)
            .await
            .unwrap();
    app.shop.inventory().set_stock(shop::inventory::SellerScope::Admin, sku, stock).await.unwrap();
    let email = format!("seller-{}@mercato.test", Uuid::new_v4().simple());
    let user = app.shop.accounts().create_user(&email, "sell-it-all-2026", "Flash Seller", Role::Seller, Some(seller_id)).await.unwrap();
    let seller = shop::accounts::session::create_many(&app.shop.kv, &[user]).await.unwrap().remove(0);
    Setup { app, stripe, sku, seller, seller_id }
}

async fn setup(db: PgPool, stock: i64) -> Setup {
    setup_with(db, stock, settings()).await
}

/// A second server process on the same database and Redis keys as `s`'s
/// app; `env` sets or overrides its configuration.
async fn second_process(s: &Setup, db: PgPool, env: &[(&str, &str)]) -> Application {
    let prefix = s.app.shop.kv.prefix().to_owned();
    let config = Config::from_lookup(|key| match key {
        "REDIS_URL" => Some(redis_url()),
        "MERCATO_ADDR" => Some("127.0.0.1:0".to_owned()),
        "MERCATO_REDIS_PREFIX" => Some(prefix.clone()),
        _ => env.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned()).or_else(|| std::env::var(key).ok()),
    })
    .unwrap();
    let kv = shop::kv::Kv::connect(&redis_url(), prefix.clone()).await.unwrap();
    let shop = shop::Shop::new(db, kv).with_payment_settings(s.stripe.settings()).with_flash_settings(settings());
    Application::with_shop(config, shop).await.unwrap()
}

fn at(offset: chrono::Duration) -> String {
    (Utc::now() + offset).to_rfc3339()
}

async fn send(app: &TestApp, method: reqwest::Method, token: Option<&str>, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    send(app, reqwest::Method::POST, Some(token), path, Some(body)).await
}

async fn get(app: &TestApp, token: Option<&str>, path: &str) -> (StatusCode, Value) {
    send(app, reqwest::Method::GET, token, path, None).await
}

/// Creates a sale as `s.seller`; the answer's JSON.
async fn create_sale(s: &Setup, quantity: i64, limit: i64, starts_in: chrono::Duration, lasts: chrono::Duration) -> Value {
    let (status, sale) = post(
        &s.app,
        &s.seller,
        "/api/v1/seller/flash-sales",
        json!({
            "sku_id": s.sku, "quantity": quantity, "price_cents": 999, "per_user_limit": limit,
            "starts_at": at(starts_in), "ends_at": at(starts_in + lasts),
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sale}");
    sale
}

fn id(sale: &Value) -> Uuid {
    sale["id"].as_str().unwrap().parse().unwrap()
}

/// Waits until the public page says the sale is open.
async fn wait_open(app: &TestApp, sale: Uuid) {
    wait_for("the sale opens", Duration::from_secs(20), || async move {
        let (_, page) = get(app, None, &format!("/api/v1/flash-sales/{sale}")).await;
        page["status"] == "live"
    })
    .await;
}

async fn buy(app: &TestApp, client: &reqwest::Client, token: &str, sale: Uuid, quantity: i64) -> (StatusCode, Value) {
    let response = client
        .post(app.url(&format!("/api/v1/flash-sales/{sale}/buy")))
        .bearer_auth(token)
        .json(&json!({ "quantity": quantity }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Checks out the customer's cart, retrying with the same key while the
/// answer is 503 (a payment provider slowed down by a loaded machine trips
/// the breaker), as a client following Retry-After would: the first answer
/// that is not 503.
async fn checkout(app: &TestApp, token: &str, pm: &str) -> (StatusCode, Value) {
    let key = Uuid::new_v4().to_string();
    let answer = std::sync::Mutex::new((StatusCode::SERVICE_UNAVAILABLE, Value::Null));
    wait_for("a checkout answer other than 503", Duration::from_secs(120), || async {
        let got = checkout_once(app, token, &key, pm).await;
        let done = got.0 != StatusCode::SERVICE_UNAVAILABLE;
        *answer.lock().unwrap() = got;
        done
    })
    .await;
    answer.into_inner().unwrap()
}

async fn checkout_once(app: &TestApp, token: &str, key: &str, pm: &str) -> (StatusCode, Value) {
    checkout_with(&app.client, &app.url("/api/v1/checkout"), token, key, pm, None).await
}

/// One checkout request to `url`; `expected_total` accepts a changed total.
async fn checkout_with(client: &reqwest::Client, url: &str, token: &str, key: &str, pm: &str, expected_total: Option<i64>) -> (StatusCode, Value) {
    let mut body = json!({
        "shipping_address": { "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" },
        "payment_method": pm,
    });
    if let Some(total) = expected_total {
        body["expected_total_cents"] = json!(total);
    }
    let response = client.post(url).bearer_auth(token).header("Idempotency-Key", key).json(&body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Units of `sku` in orders that are not cancelled, per customer, from PostgreSQL.
async fn units_per_customer(db: &PgPool, sku: Uuid) -> Vec<(Uuid, i64)> {
    sqlx::query_as(
        "SELECT o.user_id, sum(i.quantity)::bigint FROM orders o JOIN order_items i ON i.order_id = o.id \
         WHERE i.sku_id = $1 AND o.status <> 'CANCELLED' GROUP BY o.user_id",
    )
    .bind(sku)
    .fetch_all(db)
    .await
    .unwrap()
}

/// (stock_count, reserved, held) in PostgreSQL and the live counter.
async fn stock(app: &TestApp, sku: Uuid) -> (i32, i32, i32, i64) {
    let (s, r, h): (i32, i32, i32) =
        sqlx::query_as("SELECT stock_count, reserved, held FROM inventory WHERE sku_id = $1").bind(sku).fetch_one(&app.shop.db).await.unwrap();
    (s, r, h, app.shop.inventory().available(&[sku]).await.unwrap()[0])
}

/// Fast-forwards a running sale to its end (PostgreSQL and the sale's
/// Redis clock both), so a test need not wait out a real window.
async fn end_now(app: &TestApp, sale: Uuid) {
    sqlx::query("UPDATE flash_sales SET ends_at = now() WHERE id = $1").bind(sale).execute(&app.shop.db).await.unwrap();
    let _: () = redis::cmd("HSET")
        .arg(app.shop.kv.key(&format!("flash:{{{sale}}}:meta")))
        .arg("ends")
        .arg(Utc::now().timestamp_millis())
        .query_async(&mut app.shop.kv.conn())
        .await
        .unwrap();
}

async fn wait_ended(app: &TestApp, seller: &str, sale: Uuid) -> Value {
    let path = format!("/api/v1/seller/flash-sales/{sale}");
    wait_for("the sale finishes", Duration::from_secs(30), || async { get(app, Some(seller), &path).await.1["status"] == "ended" }).await;
    get(app, Some(seller), &path).await.1
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn two_thousand_customers_race_for_one_hundred_units_and_nobody_gets_more_than_two(db: PgPool) {
    let s = setup(db, 1_000).await;
    let sale = id(&create_sale(&s, 100, 2, chrono::Duration::seconds(1), chrono::Duration::minutes(10)).await);
    assert_eq!(stock(&s.app, s.sku).await, (1_000, 0, 100, 900), "the sale's 100 units are set aside from normal stock");
    let tokens = s.app.shop.accounts().create_load_test_users(2_000, "load-test-password").await.unwrap();
    wait_open(&s.app, sale).await;

    let app = Arc::new(s.app);
    let gate = Arc::new(tokio::sync::Semaphore::new(128));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let (app, gate) = (app.clone(), gate.clone());
        // Every tenth customer is greedy: Buy pressed from three
        // connections at once (one asking for 3, over the limit), pays, and
        // presses again from two more, to try to get a third unit.
        let greedy = i % 10 == 0;
        tasks.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let connections: Vec<reqwest::Client> = (0..3).map(|_| reqwest::Client::new()).collect();
            let mut answers = Vec::new();
            let rounds: &[&[i64]] = if greedy { &[&[2, 1, 3], &[1, 1]] } else { &[&[1]] };
            for round in rounds {
                let presses = round.iter().zip(&connections).map(|(quantity, client)| buy(&app, client, &token, sale, *quantity));
                let results = futures_util::future::join_all(presses).await;
                let held = results.iter().any(|(status, _)| *status == StatusCode::OK);
                answers.extend(results);
                if held {
                    let (status, placed) = checkout(&app, &token, "pm_card_visa").await;
                    assert_eq!(status, StatusCode::CREATED, "{placed}");
                }
            }
            answers
        });
    }
    let (mut held, mut over_limit, mut waiting, mut sold_out) = (0, 0, 0, 0);
    while let Some(result) = tasks.join_next().await {
        for (status, answer) in result.unwrap() {
            match (status, answer["error"].as_str().or(answer["state"].as_str())) {
                (StatusCode::OK, Some("reserved")) => held += 1,
                (StatusCode::UNPROCESSABLE_ENTITY, Some("over_limit")) => over_limit += 1,
                (StatusCode::ACCEPTED, Some("waiting")) => waiting += 1,
                (StatusCode::CONFLICT, Some("sold_out")) => sold_out += 1,
                (status, _) => panic!("unexpected {status}: {answer}"),
            }
        }
    }
    println!("race: {held} reserved answers, {over_limit} over the limit, {waiting} waiting, {sold_out} sold out");

    let per_customer = units_per_customer(&app.shop.db, s.sku).await;
    let sold: i64 = per_customer.iter().map(|(_, units)| units).sum();
    assert_eq!(sold, 100, "exactly the sale's quantity in orders");
    let above: Vec<_> = per_customer.iter().filter(|(_, units)| *units > 2).collect();
    assert!(above.is_empty(), "customers above the limit of 2: {above:?}");
    assert!(per_customer.iter().any(|(_, units)| *units == 2), "some greedy customers got their two");
    assert!(over_limit >= 200, "every greedy customer's Buy for 3 was refused");
    let prices: Vec<i64> = sqlx::query_scalar("SELECT DISTINCT unit_cents FROM order_items WHERE sku_id = $1").bind(s.sku).fetch_all(&app.shop.db).await.unwrap();
    assert_eq!(prices, [999], "every unit charged at the sale's price");
    assert_eq!(stock(&app, s.sku).await, (1_000, 100, 0, 900), "the set-aside is spent into orders; normal stock untouched");
    let authorized = s.stripe.intents().await.into_iter().filter(|pi| pi["status"] == "requires_capture").count();
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&app.shop.db).await.unwrap();
    assert_eq!(authorized as i64, orders, "one authorization per order");

    end_now(&app, sale).await;
    let ended = wait_ended(&app, &s.seller, sale).await;
    assert_eq!(ended["report"]["sold"], 100, "{ended}");
    assert_eq!(ended["report"]["oversold"], 0);
    assert_eq!(ended["report"]["returned"], 0);
    assert_eq!(stock(&app, s.sku).await, (1_000, 100, 0, 900));
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn declined_cards_hand_their_units_to_the_waitlist_first_come_first_served(db: PgPool) {
    let s = setup(db, 200).await;
    let sale = id(&create_sale(&s, 100, 1, chrono::Duration::seconds(1), chrono::Duration::minutes(10)).await);
    let holders = s.app.shop.accounts().create_load_test_users(100, "load-test-password").await.unwrap();
    let waiters = s.app.shop.accounts().create_load_test_users(30, "load-test-password").await.unwrap();
    wait_open(&s.app, sale).await;
    let app = Arc::new(s.app);

    // 100 customers take the 100 units at once.
    let mut tasks = tokio::task::JoinSet::new();
    for token in holders.clone() {
        let app = app.clone();
        tasks.spawn(async move { buy(&app, &app.client, &token, sale, 1).await });
    }
    while let Some(result) = tasks.join_next().await {
        let (status, held) = result.unwrap();
        assert_eq!((status, held["state"].as_str()), (StatusCode::OK, Some("reserved")), "{held}");
    }
    // 30 more join the line, one after another: positions 1 to 30.
    for (i, token) in waiters.iter().enumerate() {
        let (status, waiting) = buy(&app, &app.client, token, sale, 1).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{waiting}");
        assert_eq!(waiting["position"], i as i64 + 1);
    }
    // The third in line leaves: the line closes up behind them.
    let (status, left) = send(&app, reqwest::Method::DELETE, Some(&waiters[2]), &format!("/api/v1/flash-sales/{sale}/me"), None).await;
    assert_eq!((status, left["state"].as_str()), (StatusCode::OK, Some("none")), "{left}");
    assert_eq!(get(&app, Some(&waiters[3]), &format!("/api/v1/flash-sales/{sale}/me")).await.1["position"], 3);
    let line: Vec<&String> = waiters.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, t)| t).collect();

    // Ten holders' cards are declined, one after the other: each unit goes
    // to the head of the line at once, in order, skipping the one who left.
    let state = |token: String| {
        let app = app.clone();
        async move { get(&app, Some(&token), &format!("/api/v1/flash-sales/{sale}/me")).await.1 }
    };
    for k in 0..10 {
        let (status, declined) = checkout(&app, &holders[k], "pm_card_chargeCustomerFail").await;
        assert_eq!((status, declined["error"].as_str()), (StatusCode::PAYMENT_REQUIRED, Some("payment_declined")), "{declined}");
        let promoted = state(line[k].clone()).await;
        assert_eq!((promoted["state"].as_str(), promoted["promoted"].as_bool()), (Some("reserved"), Some(true)), "the {}th in line: {promoted}", k + 1);
        let next = state(line[k + 1].clone()).await;
        assert_eq!((next["state"].as_str(), next["position"].as_i64()), (Some("waiting"), Some(1)), "{next}");
    }
    assert_eq!(state(waiters[2].clone()).await["state"], "none", "who left was skipped");

    // Everyone holding pays: the other 90 holders and the 10 promoted.
    let payers: Vec<String> = holders[10..].iter().chain(line[..10].iter().copied()).cloned().collect();
    let mut tasks = tokio::task::JoinSet::new();
    for token in payers {
        let app = app.clone();
        tasks.spawn(async move { checkout(&app, &token, "pm_card_visa").await });
    }
    while let Some(result) = tasks.join_next().await {
        let (status, placed) = result.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{placed}");
    }
    let per_customer = units_per_customer(&app.shop.db, s.sku).await;
    assert_eq!(per_customer.iter().map(|(_, u)| u).sum::<i64>(), 100);
    let mut promoted_users = Vec::new();
    for token in &line[..10] {
        promoted_users.push(app.shop.accounts().authenticate(token).await.unwrap().unwrap());
    }
    assert!(promoted_users.iter().all(|p| per_customer.iter().any(|(u, n)| *u == p.id && *n == 1)), "the first ten in line bought");

    // Each promotion is one event, and its customer gets one email from it.
    let events: Vec<(Uuid, Value)> =
        sqlx::query_as("SELECT id, payload FROM outbox WHERE event_type = 'flash.promoted' AND aggregate_id = $1")
            .bind(sale)
            .fetch_all(&app.shop.db)
            .await
            .unwrap();
    assert_eq!(events.len(), 10, "{events:?}");
    for user in &promoted_users {
        let (event_id, payload) = events.iter().find(|(_, p)| p["user_id"] == user.id.to_string()).expect("a promotion event per promoted customer");
        assert_eq!((payload["sku_id"].as_str(), payload["quantity"].as_i64()), (Some(s.sku.to_string().as_str()), Some(1)), "{payload}");
        let subject = shop::notifications::Kind::Promoted.subject(sale);
        let is_promotion = |m: &Value| m["subject"] == subject.as_str();
        wait_for("the promotion email", Duration::from_secs(20), || async { mail_to(&user.email).await.iter().any(is_promotion) }).await;
        let mail = mail_to(&user.email).await;
        let promoted: Vec<&Value> = mail.iter().filter(|m| is_promotion(m)).collect();
        assert_eq!(promoted.len(), 1, "one promotion email to {}: {mail:#?}", user.email);
        assert_eq!(header(promoted[0], "message-id"), shop::notifications::message_id(*event_id));
        assert!(promoted[0]["text"].as_str().unwrap_or_default().contains("held for you until"), "{:#}", promoted[0]);
    }
    // Nothing is left and no hold could come back: the rest of the line is
    // told at once, not when its 30 s wait runs out.
    let told = state(line[10].clone()).await;
    assert_eq!(told["state"], "sold_out", "{told}");

    end_now(&app, sale).await;
    let ended = wait_ended(&app, &s.seller, sale).await;
    assert_eq!(ended["report"]["sold"], 100, "{ended}");
    assert_eq!(ended["report"]["promoted"], 10);
    assert_eq!(ended["report"]["oversold"], 0);
    assert_eq!(state(line[11].clone()).await["state"], "sold_out", "the rest of the line is told");
    assert_eq!(stock(&app, s.sku).await, (200, 100, 0, 100));
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_sale_cancelled_before_its_start_returns_its_units_and_sellers_get_clear_refusals(db: PgPool) {
    let s = setup(db, 50).await;
    let customer = s.app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
    let hour = chrono::Duration::hours(1);
    let new = |quantity: i64, limit: i64, starts: chrono::Duration, ends: chrono::Duration| {
        json!({ "sku_id": s.sku, "quantity": quantity, "price_cents": 500, "per_user_limit": limit, "starts_at": at(starts), "ends_at": at(ends) })
    };
    let create = |body: Value| post(&s.app, &s.seller, "/api/v1/seller/flash-sales", body);

    let (status, refused) = create(new(51, 1, hour, hour * 2)).await;
    assert_eq!((status, refused["error"].as_str(), refused["available"].as_i64()), (StatusCode::CONFLICT, Some("not_enough_stock"), Some(50)), "{refused}");
    let (status, refused) = create(new(5, 0, hour, hour * 2)).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_limit")));
    let (status, refused) = create(new(5, 1, -hour, hour)).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("window_in_the_past")));
    let (status, refused) = create(new(5, 1, hour * 2, hour)).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_window")));
    let (status, _) = post(&s.app, &customer, "/api/v1/seller/flash-sales", new(5, 1, hour, hour * 2)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "customers cannot create sales");
    let (status, _) = send(&s.app, reqwest::Method::POST, None, "/api/v1/seller/flash-sales", Some(new(5, 1, hour, hour * 2))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, sale) = create(new(30, 2, hour, hour * 2)).await;
    assert_eq!(status, StatusCode::CREATED, "{sale}");
    assert_eq!((sale["status"].as_str(), sale["remaining"].as_i64()), (Some("scheduled"), Some(30)));
    assert_eq!(stock(&s.app, s.sku).await, (50, 0, 30, 20), "30 set aside at once");
    let (status, refused) = create(new(5, 1, hour + hour / 2, hour * 3)).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::CONFLICT, Some("overlapping_sale")), "{refused}");
    // Another seller sees nothing of it.
    let other_seller = Uuid::now_v7();
    sqlx::query("INSERT INTO sellers (id, slug, name) VALUES ($1, $2, 'Other')").bind(other_seller).bind(format!("other-{}", other_seller.simple())).execute(&s.app.shop.db).await.unwrap();
    let other = s.app.shop.accounts().create_user(&format!("o-{}@mercato.test", other_seller.simple()), "sell-it-all-2026", "Other", Role::Seller, Some(other_seller)).await.unwrap();
    let other = shop::accounts::session::create_many(&s.app.shop.kv, &[other]).await.unwrap().remove(0);
    let sale_id = id(&sale);
    assert_eq!(get(&s.app, Some(&other), &format!("/api/v1/seller/flash-sales/{sale_id}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(post(&s.app, &other, &format!("/api/v1/seller/flash-sales/{sale_id}/cancel"), json!({})).await.0, StatusCode::NOT_FOUND);
    let (_, listed) = get(&s.app, Some(&s.seller), "/api/v1/seller/flash-sales").await;
    assert_eq!(listed["items"][0]["id"], sale["id"]);
    let (status, early) = buy(&s.app, &s.app.client, &customer, sale_id, 1).await;
    assert_eq!((status, early["error"].as_str()), (StatusCode::CONFLICT, Some("sale_not_started")), "{early}");

    let (status, cancelled) = post(&s.app, &s.seller, &format!("/api/v1/seller/flash-sales/{sale_id}/cancel"), json!({})).await;
    assert_eq!((status, cancelled["status"].as_str()), (StatusCode::OK, Some("cancelled")), "{cancelled}");
    assert_eq!(stock(&s.app, s.sku).await, (50, 0, 0, 50), "its units are back in normal stock");
    let (status, again) = post(&s.app, &s.seller, &format!("/api/v1/seller/flash-sales/{sale_id}/cancel"), json!({})).await;
    assert_eq!((status, again["status"].as_str()), (StatusCode::OK, Some("cancelled")), "cancelling twice is the same");
    assert_eq!(stock(&s.app, s.sku).await, (50, 0, 0, 50), "and returns nothing twice");
    let (status, gone) = buy(&s.app, &s.app.client, &customer, sale_id, 1).await;
    assert_eq!((status, gone["error"].as_str()), (StatusCode::CONFLICT, Some("sale_cancelled")), "{gone}");
    assert_eq!(get(&s.app, None, &format!("/api/v1/flash-sales/{sale_id}")).await.1["status"], "cancelled");

    // A sale that has started cannot be cancelled.
    let started = id(&create_sale(&s, 10, 1, chrono::Duration::seconds(1), hour).await);
    wait_open(&s.app, started).await;
    let (status, refused) = post(&s.app, &s.seller, &format!("/api/v1/seller/flash-sales/{started}/cancel"), json!({})).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::CONFLICT, Some("sale_started")), "{refused}");
    assert_eq!(s.seller_id, sqlx::query_scalar::<_, Uuid>("SELECT seller_id FROM flash_sales WHERE id = $1").bind(started).fetch_one(&s.app.shop.db).await.unwrap());
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn flash_endpoints_need_a_session_and_keep_to_five_requests_a_second(db: PgPool) {
    let s = setup(db, 50).await;
    let sale = id(&create_sale(&s, 10, 5, chrono::Duration::seconds(1), chrono::Duration::hours(1)).await);
    let customer = s.app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
    wait_open(&s.app, sale).await;
    let (status, _) = send(&s.app, reqwest::Method::POST, None, &format!("/api/v1/flash-sales/{sale}/buy"), Some(json!({"quantity": 1}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&s.app, None, &format!("/api/v1/flash-sales/{sale}/me")).await.0, StatusCode::UNAUTHORIZED);

    let (status, held) = buy(&s.app, &s.app.client, &customer, sale, 2).await;
    assert_eq!((status, held["state"].as_str(), held["quantity"].as_i64()), (StatusCode::OK, Some("reserved"), Some(2)), "{held}");
    let (_, cart) = get(&s.app, Some(&customer), "/api/v1/cart").await;
    assert_eq!(cart["lines"][0]["flash_sale_id"], json!(sale), "{cart}");
    assert_eq!((cart["lines"][0]["unit_cents"].as_i64(), cart["subtotal_cents"].as_i64()), (Some(999), Some(1998)));
    // Two tabs, one hold.
    let (status, again) = buy(&s.app, &s.app.client, &customer, sale, 1).await;
    assert_eq!((status, again["quantity"].as_i64(), again["pay_by"].as_str()), (StatusCode::OK, Some(2), held["pay_by"].as_str()));
    let mut limited = None;
    for _ in 0..10 {
        let response = s.app.client.get(s.app.url(&format!("/api/v1/flash-sales/{sale}/me"))).bearer_auth(&customer).send().await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("the sixth request within a second is refused");
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(limited.json::<Value>().await.unwrap()["error"], "rate_limited");
    let public = s.app.get(&format!("/api/v1/flash-sales/{sale}")).await;
    assert_eq!(public.headers()["cache-control"], "public, max-age=1");
    let public: Value = public.json().await.unwrap();
    assert_eq!((public["remaining"].as_i64(), public["regular_price_cents"].is_i64()), (Some(8), true), "{public}");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn the_schedule_in_two_processes_preloads_and_closes_each_sale_once(db: PgPool) {
    let s = setup(db.clone(), 100).await;
    let second = second_process(&s, db, &[]).await;
    tokio::spawn(second.run_until(std::future::pending()));

    let mut sales = Vec::new();
    // Back to back (one SKU's sales may not overlap); the first long
    // enough for a customer to buy from it.
    for (start_ms, length_ms) in [(1_500, 4_000), (6_000, 1_000), (7_500, 1_000)] {
        let sale = create_sale(&s, 10, 1, chrono::Duration::milliseconds(start_ms), chrono::Duration::milliseconds(length_ms)).await;
        sales.push(id(&sale));
    }
    assert_eq!(stock(&s.app, s.sku).await.2, 30, "three sales' units set aside");
    let customer = s.app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
    wait_open(&s.app, sales[0]).await;
    let (status, held) = buy(&s.app, &s.app.client, &customer, sales[0], 1).await;
    assert_eq!(status, StatusCode::OK, "{held}");
    let (status, placed) = checkout(&s.app, &customer, "pm_card_visa").await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    for sale in &sales {
        wait_ended(&s.app, &s.seller, *sale).await;
    }
    let steps: Vec<(i32, i32, bool, bool)> = sqlx::query_as(
        "SELECT preloads, finals, preloaded_at <= starts_at, opened_at >= starts_at FROM flash_sales WHERE id = ANY($1) ORDER BY starts_at",
    )
    .bind(&sales)
    .fetch_all(&s.app.shop.db)
    .await
    .unwrap();
    assert_eq!(steps, vec![(1, 1, true, true); 3], "each sale pre-loaded before its start and finished, once");
    let reports: Vec<sqlx::types::Json<model::FlashReport>> =
        sqlx::query_scalar("SELECT report FROM flash_sales WHERE id = ANY($1) ORDER BY starts_at").bind(&sales).fetch_all(&s.app.shop.db).await.unwrap();
    assert_eq!((reports[0].sold, reports[0].returned, reports[0].oversold), (1, 9, 0));
    assert_eq!((reports[1].sold, reports[1].returned), (0, 10));
    assert_eq!(stock(&s.app, s.sku).await, (100, 1, 0, 99), "every unsold unit back in normal stock");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn live_figures_stream_as_server_sent_events_and_resume_after_the_last_event(db: PgPool) {
    let s = setup(db, 50).await;
    let sale = id(&create_sale(&s, 20, 2, chrono::Duration::seconds(1), chrono::Duration::hours(1)).await);
    let customer = s.app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
    wait_open(&s.app, sale).await;
    assert_eq!(buy(&s.app, &s.app.client, &customer, sale, 2).await.0, StatusCode::OK);

    // Reads `count` events from a fresh connection, after `last` if given.
    let events = |last: Option<String>, count: usize| {
        let app = &s.app;
        let seller = s.seller.clone();
        async move {
            let mut request = reqwest::Client::new().get(app.url(&format!("/api/v1/seller/flash-sales/{sale}/live"))).bearer_auth(seller);
            if let Some(last) = last {
                request = request.header("Last-Event-ID", last);
            }
            let mut response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["content-type"], "text/event-stream");
            let mut text = String::new();
            let mut out: Vec<(String, Value)> = Vec::new();
            while out.len() < count {
                let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk()).await.expect("an event within 10 s").unwrap().unwrap();
                text.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = text.find("\n\n") {
                    let block: String = text.drain(..end + 2).collect();
                    let id = block.lines().find_map(|l| l.strip_prefix("id:")).map(|v| v.trim().to_owned());
                    let data = block.lines().find_map(|l| l.strip_prefix("data:")).map(|v| v.trim().to_owned());
                    if let (Some(id), Some(data)) = (id, data) {
                        out.push((id, serde_json::from_str(&data).unwrap()));
                    }
                }
            }
            out
        }
    };
    let first = events(None, 3).await;
    let latest = &first[2].1;
    assert_eq!((latest["remaining"].as_i64(), latest["oversold"].as_i64(), latest["sold"].as_i64()), (Some(18), Some(0), Some(0)), "{latest}");
    assert_eq!(latest["status"], "live");
    for field in ["reservations_per_s", "orders_per_s", "rejections_per_s", "waitlist", "promotions", "reserve_p50_ms", "reserve_p99_ms"] {
        assert!(latest[field].is_number(), "{field} in {latest}");
    }
    assert!(first.windows(2).all(|w| w[0].0 < w[1].0), "ids grow");
    // A reconnect naming the first event gets the second next: nothing lost.
    let resumed = events(Some(first[0].0.clone()), 2).await;
    assert_eq!(resumed[0].0, first[1].0);
    assert_eq!(resumed[1].0, first[2].0);
}

/// A customer cancels an order that holds a flash unit and a regular SKU
/// while the sale runs: the flash unit goes back into the sale and at once
/// to the head of its line, the regular units to normal stock, all in the
/// cancel's one transaction.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_cancelled_order_gives_its_flash_unit_to_the_line_and_the_rest_to_stock(db: PgPool) {
    let s = setup(db, 10).await;
    let regular: Uuid = sqlx::query_scalar("SELECT sku_id FROM inventory WHERE sku_id <> $1 ORDER BY sku_id LIMIT 1")
        .bind(s.sku)
        .fetch_one(&s.app.shop.db)
        .await
        .unwrap();
    s.app.shop.inventory().set_stock(shop::inventory::SellerScope::Admin, regular, 5).await.unwrap();
    let sale = id(&create_sale(&s, 1, 1, chrono::Duration::seconds(1), chrono::Duration::minutes(10)).await);
    let customers = s.app.shop.accounts().create_load_test_users(2, "load-test-password").await.unwrap();
    let (buyer, waiter) = (&customers[0], &customers[1]);
    wait_open(&s.app, sale).await;

    assert_eq!(buy(&s.app, &s.app.client, buyer, sale, 1).await.0, StatusCode::OK);
    let (status, waiting) = buy(&s.app, &s.app.client, waiter, sale, 1).await;
    assert_eq!((status, waiting["position"].as_i64()), (StatusCode::ACCEPTED, Some(1)), "{waiting}");
    let buyer_id = s.app.shop.accounts().authenticate(buyer).await.unwrap().unwrap().id;
    s.app.shop.cart().add(&shop::cart::Owner::User(buyer_id), regular, 2).await.unwrap();
    let (status, placed) = checkout(&s.app, buyer, "pm_card_visa").await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    assert_eq!(stock(&s.app, regular).await.1, 2, "the regular units are in the order");

    let order = placed["order_id"].as_str().unwrap();
    let (status, cancelled) = post(&s.app, buyer, &format!("/api/v1/orders/{order}/cancel"), json!({})).await;
    assert_eq!((status, cancelled["status"].as_str()), (StatusCode::OK, Some("CANCELLED")), "{cancelled}");
    let (_, promoted) = get(&s.app, Some(waiter), &format!("/api/v1/flash-sales/{sale}/me")).await;
    assert_eq!((promoted["state"].as_str(), promoted["promoted"].as_bool()), (Some("reserved"), Some(true)), "{promoted}");
    assert_eq!(stock(&s.app, regular).await, (5, 0, 0, 5), "the regular units are back in normal stock");
    let (stock_count, reserved, held, _) = stock(&s.app, s.sku).await;
    assert_eq!((stock_count, reserved, held), (10, 0, 1), "the flash unit is the sale's again, not normal stock");
}

//! The cart against real Redis: TTLs, snapshots, validation, the guest-to-user
//! merge at sign-in (sums, clamps, idempotent under retried and concurrent
//! sign-ins), the add-to-cart rate limit (shared by setting quantities), and
//! Redis being down.

use reqwest::header;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{LocalRedis, TestApp};

const PASSWORD: &str = "correct horse battery";

/// Sends an add until it is no longer refused with 429 (a token came back),
/// polling rather than sleeping a guessed refill time; gives its answer.
macro_rules! until_not_limited {
    ($add:expr) => {{
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (status, body) = $add.await;
            if status != 429 || std::time::Instant::now() > deadline {
                break (status, body);
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }};
}

/// A shopper: a bearer token, a guest cookie, or nothing yet.
#[derive(Clone, Default)]
struct Shopper {
    bearer: Option<String>,
    guest: Option<String>,
}

impl Shopper {
    fn request(&self, app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = app.client.request(method, app.url(path)).header(header::ORIGIN, format!("http://{}", app.addr));
        if let Some(token) = &self.bearer {
            r = r.bearer_auth(token);
        }
        if let Some(guest) = &self.guest {
            r = r.header(header::COOKIE, format!("mercato_guest={guest}"));
        }
        r
    }

    async fn add(&mut self, app: &TestApp, sku: Uuid, quantity: i64) -> (u16, Value) {
        let response = self.request(app, reqwest::Method::POST, "/api/v1/cart/items")
            .json(&json!({ "sku_id": sku, "quantity": quantity })).send().await.unwrap();
        self.remember_guest(&response);
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    fn remember_guest(&mut self, response: &reqwest::Response) {
        for cookie in response.headers().get_all(header::SET_COOKIE) {
            let cookie = cookie.to_str().unwrap();
            if let Some(rest) = cookie.strip_prefix("mercato_guest=") {
                let value = rest.split(';').next().unwrap();
                self.guest = (!value.is_empty()).then(|| value.to_owned());
            }
        }
    }

    async fn cart(&self, app: &TestApp) -> Value {
        self.request(app, reqwest::Method::GET, "/api/v1/cart").send().await.unwrap().json().await.unwrap()
    }

    async fn login(&mut self, app: &TestApp, email: &str) -> u16 {
        let response = self.request(app, reqwest::Method::POST, "/api/v1/auth/login")
            .json(&json!({ "email": email, "password": PASSWORD })).send().await.unwrap();
        self.remember_guest(&response);
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        self.bearer = body["token"].as_str().map(String::from);
        status
    }
}

fn qty(cart: &Value, sku: Uuid) -> i64 {
    cart["lines"].as_array().unwrap().iter().find(|l| l["sku_id"] == sku.to_string()).map(|l| l["quantity"].as_i64().unwrap()).unwrap_or(0)
}

async fn skus(db: &PgPool, n: i64) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT k.id FROM skus k JOIN inventory i ON i.sku_id = k.id WHERE i.stock_count > 20 ORDER BY k.id LIMIT $1")
        .bind(n).fetch_all(db).await.unwrap()
}

async fn ttl(app: &TestApp, key: &str) -> i64 {
    redis::cmd("TTL").arg(app.shop.kv.key(key)).query_async(&mut app.shop.kv.conn()).await.unwrap()
}

async fn user(app: &TestApp, email: &str) -> Uuid {
    app.shop.accounts().create_user(email, PASSWORD, "Shopper", model::Role::Customer, None).await.unwrap().id
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn carts_expire_after_a_day_for_guests_and_a_month_for_users_reset_on_every_write(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 100).await;
    let sku = skus(&db, 1).await[0];
    let mut guest = Shopper::default();
    let (status, cart) = guest.add(&app, sku, 2).await;
    assert_eq!(status, 200, "{cart}");
    let token = guest.guest.clone().expect("a guest cookie on the first write");
    let key = format!("cart:guest:{{{token}}}");
    assert!((86_000..=86_400).contains(&ttl(&app, &key).await));

    let id = user(&app, "ada@example.com").await;
    let mut ada = Shopper::default();
    assert_eq!(ada.login(&app, "ada@example.com").await, 200);
    ada.add(&app, sku, 1).await;
    let key = format!("cart:{{{id}}}");
    assert!(ttl(&app, &key).await > 29 * 86_400);
    let _: () = redis::cmd("EXPIRE").arg(app.shop.kv.key(&key)).arg(100).query_async(&mut app.shop.kv.conn()).await.unwrap();
    let response = ada.request(&app, reqwest::Method::PUT, &format!("/api/v1/cart/items/{sku}")).json(&json!({ "quantity": 3 })).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(ttl(&app, &key).await > 29 * 86_400, "a write resets the TTL");
    assert_eq!(response.headers()[header::CACHE_CONTROL], "private, no-store");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn lines_validate_quantities_and_keep_their_price_snapshot(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 100).await;
    let sku = skus(&db, 1).await[0];
    let mut guest = Shopper::default();
    assert_eq!(guest.add(&app, Uuid::now_v7(), 1).await.0, 404, "unknown SKU");
    assert_eq!(guest.add(&app, sku, 0).await.0, 422);
    assert_eq!(guest.add(&app, sku, -3).await.0, 422);
    assert_eq!(guest.add(&app, sku, 11).await.0, 422, "above the line maximum");
    // Refused adds spend rate-limit tokens too: wait for the bucket to
    // refill (429 until it has).
    assert_eq!(until_not_limited!(guest.add(&app, sku, 8)).0, 200);
    let (status, body) = until_not_limited!(guest.add(&app, sku, 3));
    assert_eq!(status, 422, "8 + 3 is above the maximum: refused, not clamped");
    assert!(body["message"].as_str().unwrap().contains("already have 8"));

    let (product, price): (Uuid, i64) = sqlx::query_as("SELECT product_id, price_cents FROM skus WHERE id = $1").bind(sku).fetch_one(&db).await.unwrap();
    app.shop.catalog().set_prices(product, &[shop::catalog::SkuPrice { sku_id: sku, price_cents: price + 500 }]).await.unwrap();
    let cart = guest.cart(&app).await;
    let line = &cart["lines"][0];
    assert_eq!(line["unit_cents"], price, "the snapshot stays");
    assert_eq!(line["current_unit_cents"], price + 500);
    assert_eq!(line["price_changed"], true);
    assert_eq!(cart["subtotal_cents"], 8 * (price + 500), "the subtotal is what checkout would charge now");

    // Setting a quantity spends the same budget as adding: wait for a token.
    let (_, emptied) = until_not_limited!(async {
        let response = guest.request(&app, reqwest::Method::PUT, &format!("/api/v1/cart/items/{sku}")).json(&json!({ "quantity": 0 })).send().await.unwrap();
        (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
    });
    assert_eq!(emptied["lines"].as_array().unwrap().len(), 0, "quantity 0 removes the line");
    assert_eq!(until_not_limited!(guest.add(&app, sku, 1)).0, 200);
    let response = guest.request(&app, reqwest::Method::DELETE, &format!("/api/v1/cart/items/{sku}")).send().await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["lines"].as_array().unwrap().len(), 0);
    let response = guest.request(&app, reqwest::Method::DELETE, "/api/v1/cart/items/not-a-uuid").send().await.unwrap();
    assert_eq!(response.status(), 400);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn signing_in_merges_the_guest_cart_once(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 100).await;
    let s = skus(&db, 3).await;
    user(&app, "ada@example.com").await;
    let mut ada = Shopper::default();
    ada.login(&app, "ada@example.com").await;
    ada.add(&app, s[0], 3).await;
    ada.add(&app, s[2], 9).await;

    let mut guest = Shopper::default();
    guest.add(&app, s[0], 2).await;
    guest.add(&app, s[1], 1).await;
    guest.add(&app, s[2], 4).await;
    let guest_cookie = guest.guest.clone().unwrap();

    // The same browser signs in: its guest cart folds into Ada's.
    assert_eq!(guest.login(&app, "ada@example.com").await, 200);
    assert!(guest.guest.is_none(), "the guest cookie is cleared");
    let cart = guest.cart(&app).await;
    assert_eq!(qty(&cart, s[0]), 5, "quantities add");
    assert_eq!(qty(&cart, s[1]), 1);
    assert_eq!(qty(&cart, s[2]), 10, "clamped to the line maximum");

    // A retried sign-in with the old guest cookie adds nothing more.
    let mut retry = Shopper { bearer: None, guest: Some(guest_cookie) };
    assert_eq!(retry.login(&app, "ada@example.com").await, 200);
    let again = retry.cart(&app).await;
    assert_eq!((qty(&again, s[0]), qty(&again, s[1]), qty(&again, s[2])), (5, 1, 10));
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn merging_clamps_to_stock_and_survives_concurrent_sign_ins(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 100).await;
    let s = skus(&db, 2).await;
    user(&app, "ada@example.com").await;
    let mut guest = Shopper::default();
    guest.add(&app, s[0], 4).await;
    guest.add(&app, s[1], 2).await;
    // Only one unit of the first SKU can be bought now.
    let _: () = redis::cmd("SET").arg(app.shop.inventory().available_key(s[0])).arg(1).query_async(&mut app.shop.kv.conn()).await.unwrap();

    let mut logins = Vec::new();
    for _ in 0..8 {
        let mut same_browser = guest.clone();
        let app_url = (app.client.clone(), app.url("/api/v1/auth/login"), app.addr, same_browser.guest.take().unwrap());
        logins.push(tokio::spawn(async move {
            let (client, url, addr, cookie) = app_url;
            client.post(url).header(header::ORIGIN, format!("http://{addr}")).header(header::COOKIE, format!("mercato_guest={cookie}"))
                .json(&json!({ "email": "ada@example.com", "password": PASSWORD })).send().await.unwrap().status()
        }));
    }
    for login in logins {
        assert_eq!(login.await.unwrap(), 200);
    }
    let mut ada = Shopper::default();
    ada.login(&app, "ada@example.com").await;
    let cart = ada.cart(&app).await;
    assert_eq!(qty(&cart, s[0]), 1, "clamped to available stock");
    assert_eq!(qty(&cart, s[1]), 2, "eight concurrent sign-ins merged it exactly once");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn the_sixth_add_within_a_second_is_rate_limited_and_tokens_refill(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 100).await;
    let sku = skus(&db, 1).await[0];
    user(&app, "ada@example.com").await;
    let mut ada = Shopper::default();
    ada.login(&app, "ada@example.com").await;
    // Six adds at once (sent together, so a slow machine cannot stretch them
    // past the refill): five pass, one is refused with Retry-After.
    let sends = (0..6).map(|_| ada.request(&app, reqwest::Method::POST, "/api/v1/cart/items").json(&json!({ "sku_id": sku, "quantity": 1 })).send());
    let responses: Vec<reqwest::Response> = futures_join_all(sends).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
    let limited = responses.into_iter().find(|r| r.status() == 429).expect("one add refused");
    let retry: u64 = limited.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry));
    assert_eq!(limited.json::<Value>().await.unwrap()["error"], "rate_limited");
    // Another shopper is not affected.
    user(&app, "bob@example.com").await;
    let mut bob = Shopper::default();
    bob.login(&app, "bob@example.com").await;
    assert_eq!(bob.add(&app, sku, 1).await.0, 200);
    // Tokens come back at five a second.
    assert_eq!(until_not_limited!(ada.add(&app, sku, 1)).0, 200);
    assert_eq!(qty(&ada.cart(&app).await, sku), 6);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn setting_quantities_spends_the_add_to_cart_budget(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 100).await;
    let s = skus(&db, 2).await;
    user(&app, "ada@example.com").await;
    let mut ada = Shopper::default();
    ada.login(&app, "ada@example.com").await;
    // Three adds and three quantity changes at once: one budget of five a
    // second between them, not five for each verb.
    let adds = (0..3).map(|_| ada.request(&app, reqwest::Method::POST, "/api/v1/cart/items").json(&json!({ "sku_id": s[0], "quantity": 1 })).send());
    let sets = (1..=3).map(|q| ada.request(&app, reqwest::Method::PUT, &format!("/api/v1/cart/items/{}", s[1])).json(&json!({ "quantity": q })).send());
    let responses = futures_join_all(adds.chain(sets)).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
    let limited = responses.into_iter().find(|r| r.status() == 429).expect("one write refused");
    assert!(limited.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(limited.json::<Value>().await.unwrap()["error"], "rate_limited");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn cart_writes_from_another_site_are_refused(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 50).await;
    let sku = skus(&db, 1).await[0];
    let mut guest = Shopper::default();
    guest.add(&app, sku, 1).await;
    let response = app.client.post(app.url("/api/v1/cart/items")).header(header::ORIGIN, "https://evil.example")
        .header(header::COOKIE, format!("mercato_guest={}", guest.guest.as_ref().unwrap()))
        .json(&json!({ "sku_id": sku, "quantity": 1 })).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(qty(&guest.cart(&app).await, sku), 1);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_cart_with_redis_down_is_a_503_with_retry_after(db: PgPool) {
    let mut redis = LocalRedis::start().await;
    let app = TestApp::boot(db.clone(), &redis.url(), Some(50)).await;
    let sku = skus(&db, 1).await[0];
    let mut guest = Shopper::default();
    assert_eq!(guest.add(&app, sku, 1).await.0, 200);
    redis.stop().await;
    for response in [
        guest.request(&app, reqwest::Method::GET, "/api/v1/cart").send().await.unwrap(),
        guest.request(&app, reqwest::Method::POST, "/api/v1/cart/items").json(&json!({ "sku_id": sku, "quantity": 1 })).send().await.unwrap(),
    ] {
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        assert_eq!(response.json::<Value>().await.unwrap()["dependency"], "redis");
    }
}

/// Runs request futures concurrently and collects their responses.
async fn futures_join_all(sends: impl Iterator<Item = impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static>) -> Vec<reqwest::Response> {
    let tasks: Vec<_> = sends.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap().unwrap());
    }
    out
}

/// A guest line for a SKU that sold out meanwhile adds nothing at sign-in,
/// and must not take away the line the customer already had.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_sold_out_guest_line_never_removes_the_customers_own_line(db: PgPool) {
    let app = TestApp::spawn_seeded(db, 10).await;
    let sku: Uuid = sqlx::query_scalar("SELECT sku_id FROM inventory ORDER BY sku_id LIMIT 1").fetch_one(&app.shop.db).await.unwrap();
    let token = app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
    let user = app.shop.accounts().authenticate(&token).await.unwrap().unwrap().id;
    let cart = app.shop.cart();
    cart.add(&shop::cart::Owner::User(user), sku, 2).await.unwrap();
    cart.add(&shop::cart::Owner::Guest("guest-1".into()), sku, 1).await.unwrap();
    app.shop.inventory().set_stock(shop::inventory::SellerScope::Admin, sku, 0).await.unwrap();

    cart.merge_guest("guest-1", user).await.unwrap();
    let lines = cart.lines(&shop::cart::Owner::User(user)).await.unwrap();
    assert_eq!(lines.get(&sku).map(|l| l.qty), Some(2), "the customer's own line is kept as it was");
    assert!(cart.lines(&shop::cart::Owner::Guest("guest-1".into())).await.unwrap().is_empty(), "the guest cart is gone");
}

/// A cart has one currency: its total is a sum, so a SKU priced in another
/// currency is refused in words, and the cart's currency is its lines'.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_cart_has_one_currency(db: PgPool) {
    let app = TestApp::spawn_seeded(db, 10).await;
    let skus: Vec<(Uuid, Uuid)> = sqlx::query_as("SELECT id, product_id FROM skus ORDER BY id LIMIT 2").fetch_all(&app.shop.db).await.unwrap();
    sqlx::query("UPDATE skus SET currency = 'USD' WHERE id = $1").bind(skus[1].0).execute(&app.shop.db).await.unwrap();
    app.shop.catalog().forget(&[skus[1].1]).await.unwrap();
    let owner = shop::cart::Owner::Guest("guest-2".into());
    let cart = app.shop.cart();
    let view = cart.add(&owner, skus[1].0, 1).await.unwrap();
    assert_eq!(view.currency, "USD", "the cart's currency is its line's");
    match cart.add(&owner, skus[0].0, 1).await {
        Err(shop::Error::Rejected { code: "mixed_currency", message }) => assert!(message.contains("USD"), "{message}"),
        other => panic!("expected mixed_currency, got {other:?}"),
    }
    assert_eq!(cart.view(&owner).await.unwrap().lines.len(), 1, "nothing was added");
}

//! Accounts and sessions: registration rules, sign-in without hints, bearer
//! and cookie sessions that sign-out really ends, the CSRF origin check,
//! sign-in limits that cannot be aimed at a customer, bounded Argon2 work,
//! and role changes that revoke sessions.

use std::net::IpAddr;
use std::time::Duration;

use model::Role;
use reqwest::header;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{LocalRedis, TestApp};

const PASSWORD: &str = "correct horse battery";

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url(path)).json(&body).send().await.unwrap()
}

async fn register(app: &TestApp, email: &str) -> (u16, Value, Option<String>) {
    let response = post(app, "/api/v1/auth/register", json!({ "email": email, "password": PASSWORD, "name": "Ada" })).await;
    let status = response.status().as_u16();
    let cookie = response.headers().get(header::SET_COOKIE).map(|c| c.to_str().unwrap().to_owned());
    (status, response.json().await.unwrap(), cookie)
}

async fn me(app: &TestApp, token: &str) -> u16 {
    app.client.get(app.url("/api/v1/me")).bearer_auth(token).send().await.unwrap().status().as_u16()
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn registering_signs_in_with_a_bearer_token_and_a_cookie(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (status, body, cookie) = register(&app, "  Ada@Example.COM ").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["email"], "ada@example.com", "emails are normalised");
    assert_eq!(body["user"]["role"], "customer");
    let token = body["token"].as_str().unwrap();
    let cookie = cookie.expect("a session cookie");
    for attr in ["mercato_session=", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag, or the browser would drop it");

    let by_bearer: Value = app.client.get(app.url("/api/v1/me")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    assert_eq!(by_bearer["email"], "ada@example.com");
    let by_cookie = app.client.get(app.url("/api/v1/me")).header(header::COOKIE, format!("mercato_session={token}")).send().await.unwrap();
    assert_eq!(by_cookie.status(), 200);
    assert_eq!(me(&app, "not-a-token").await, 401);
    assert_eq!(app.get("/api/v1/me").await.status(), 401);

    // Behind TLS the cookie is Secure.
    let response = app.client.post(app.url("/api/v1/auth/login")).header("x-forwarded-proto", "https")
        .json(&json!({ "email": "ada@example.com", "password": PASSWORD })).send().await.unwrap();
    assert!(response.headers()[header::SET_COOKIE].to_str().unwrap().contains("; Secure"));
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn registration_rules_are_explained(db: PgPool) {
    let app = TestApp::spawn(db).await;
    assert_eq!(register(&app, "ada@example.com").await.0, 201);
    let (status, body, _) = register(&app, "ADA@example.com").await;
    assert_eq!((status, body["error"].as_str()), (409, Some("email_taken")), "one account per email, whatever the case");

    for (payload, fragment) in [
        (json!({ "email": "not-an-email", "password": PASSWORD, "name": "Ada" }), "valid email"),
        (json!({ "email": "b@example.com", "password": "short", "name": "Ada" }), "at least 10"),
        (json!({ "email": "b@example.com", "password": "zzzzzzzzzzzz", "name": "Ada" }), "repeated"),
        (json!({ "email": "b@example.com", "password": PASSWORD, "name": "  " }), "name"),
    ] {
        let response = post(&app, "/api/v1/auth/register", payload.clone()).await;
        assert_eq!(response.status(), 422, "{payload}");
        let body: Value = response.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains(fragment), "{body}");
    }
    let response = app.client.post(app.url("/api/v1/auth/register")).header(header::CONTENT_TYPE, "application/json")
        .body("{not json").send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "bad_request");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_wrong_password_gets_no_hint_whether_the_email_exists(db: PgPool) {
    let app = TestApp::spawn(db).await;
    register(&app, "ada@example.com").await;
    let wrong = post(&app, "/api/v1/auth/login", json!({ "email": "ada@example.com", "password": "wrong password!" })).await;
    let unknown = post(&app, "/api/v1/auth/login", json!({ "email": "nobody@example.com", "password": "wrong password!" })).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    assert_eq!(wrong.json::<Value>().await.unwrap(), unknown.json::<Value>().await.unwrap());
    let ok = post(&app, "/api/v1/auth/login", json!({ "email": " ADA@example.com", "password": PASSWORD })).await;
    assert_eq!(ok.status(), 200);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn signing_out_ends_the_session_everywhere_it_is_used(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, body, _) = register(&app, "ada@example.com").await;
    let token = body["token"].as_str().unwrap().to_owned();
    // A second session (another device) survives the first one's sign-out.
    let other: Value = post(&app, "/api/v1/auth/login", json!({ "email": "ada@example.com", "password": PASSWORD })).await.json().await.unwrap();
    let other = other["token"].as_str().unwrap().to_owned();

    let response = app.client.post(app.url("/api/v1/auth/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.headers()[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(me(&app, &token).await, 401, "the token no longer works");
    assert_eq!(me(&app, &other).await, 200);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn sessions_last_thirty_days_from_their_last_use(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, body, _) = register(&app, "ada@example.com").await;
    let token = body["token"].as_str().unwrap();
    let mut conn = app.shop.kv.conn();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}session:*", app.shop.kv.prefix())).query_async(&mut conn).await.unwrap();
    assert_eq!(keys.len(), 1, "one session, stored under a hash, not the token");
    assert!(!keys[0].contains(token));
    let _: () = redis::cmd("EXPIRE").arg(&keys[0]).arg(60).query_async(&mut conn).await.unwrap();
    assert_eq!(me(&app, token).await, 200);
    let ttl: i64 = redis::cmd("TTL").arg(&keys[0]).query_async(&mut conn).await.unwrap();
    assert!(ttl > 29 * 24 * 3600, "using the session slid its expiry: {ttl}");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn cookie_sessions_refuse_cross_site_writes(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, body, _) = register(&app, "ada@example.com").await;
    let cookie = format!("mercato_session={}", body["token"].as_str().unwrap());
    let logout = |origin: Option<String>| {
        let mut request = app.client.post(app.url("/api/v1/auth/logout")).header(header::COOKIE, cookie.clone());
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.send()
    };
    assert_eq!(logout(Some("https://evil.example".into())).await.unwrap().status(), 403);
    assert_eq!(logout(None).await.unwrap().status(), 403, "no origin at all is refused too");
    assert_eq!(me(&app, body["token"].as_str().unwrap()).await, 200, "still signed in");
    assert_eq!(logout(Some(format!("http://{}", app.addr))).await.unwrap().status(), 204);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn demo_accounts_exist_after_seeding(db: PgPool) {
    let app = TestApp::spawn_seeded(db, 50).await;
    let users = app.shop.accounts().seed_demo().await.unwrap();
    assert_eq!(users.len(), 3);
    for (role, email, password, _) in shop::accounts::DEMO_ACCOUNTS {
        let response = post(&app, "/api/v1/auth/login", json!({ "email": email, "password": password })).await;
        assert_eq!(response.status(), 200, "{email}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["user"]["role"], role.as_str());
    }
    assert!(users.iter().any(|u| u.seller_id.is_some()), "the seller has a shop");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn signing_in_while_redis_is_down_is_a_503_not_a_500(db: PgPool) {
    let mut redis = LocalRedis::start().await;
    let app = TestApp::spawn_with_redis(db, &redis.url()).await;
    assert_eq!(register(&app, "ada@example.com").await.0, 201);
    redis.stop().await;
    let response = post(&app, "/api/v1/auth/login", json!({ "email": "ada@example.com", "password": PASSWORD })).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(response.json::<Value>().await.unwrap()["dependency"], "redis");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn only_the_desktop_app_origin_passes_cors(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/me"))
            .header(header::ORIGIN, origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("tauri://localhost").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "tauri://localhost");
    assert!(ok.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
}

/// A client whose connections come from `ip` (any 127.0.0.0/8 address is
/// loopback on Linux), so a test can play shoppers and attackers on
/// different addresses against one server.
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn login_from(app: &TestApp, client: &reqwest::Client, email: &str, password: &str) -> reqwest::Response {
    client.post(app.url("/api/v1/auth/login")).json(&json!({ "email": email, "password": password })).send().await.unwrap()
}

async fn customer(app: &TestApp, email: &str) -> uuid::Uuid {
    app.shop.accounts().create_user(email, PASSWORD, "Ada", Role::Customer, None).await.unwrap().id
}

async fn assert_rate_limited(response: reqwest::Response) -> u64 {
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "rate_limited");
    retry
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn guessing_from_one_address_is_limited_without_locking_the_customer_out(db: PgPool) {
    let app = TestApp::spawn(db).await;
    customer(&app, "ada@example.com").await;
    let attacker = client_from("127.0.0.2");
    for guess in 0..5 {
        let response = login_from(&app, &attacker, "ada@example.com", &format!("guess number {guess}")).await;
        assert_eq!(response.status(), 401, "guess {guess}");
    }
    let retry = assert_rate_limited(login_from(&app, &attacker, "ada@example.com", "guess number 5").await).await;
    assert!(retry <= 12, "one more guess every 12 s: {retry}");
    // Refused before the password is even checked: the right one fails too.
    assert_eq!(login_from(&app, &attacker, "ada@example.com", PASSWORD).await.status(), 429);
    // Ada, from her own address, signs in at once.
    assert_eq!(login_from(&app, &client_from("127.0.0.1"), "ada@example.com", PASSWORD).await.status(), 200);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn guessing_spread_over_addresses_is_limited_per_account_but_not_from_the_customers_usual_address(db: PgPool) {
    let settings = shop::accounts::Settings {
        // Three failures from new addresses, then one every 5 s.
        failures_per_account: shop::ratelimit::Limit { per_second: 0.2, burst: 3 },
        ..Default::default()
    };
    let app = TestApp::spawn_seeded_with(db, 10, |shop| shop.with_account_settings(settings)).await;
    customer(&app, "ada@example.com").await;
    let home = client_from("127.0.0.1");
    assert_eq!(login_from(&app, &home, "ada@example.com", PASSWORD).await.status(), 200, "Ada's usual address");

    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        assert_eq!(login_from(&app, &client_from(ip), "ada@example.com", "a wrong guess").await.status(), 401, "{ip}");
    }
    // The account's bucket is empty: a fourth new address is refused...
    assert_rate_limited(login_from(&app, &client_from("127.0.0.5"), "ada@example.com", "a wrong guess").await).await;
    // ...and so would Ada be on a new network, but only for seconds at a time...
    let retry = assert_rate_limited(login_from(&app, &client_from("127.0.0.6"), "ada@example.com", PASSWORD).await).await;
    assert!(retry <= 5, "a short window, not a lock-out: {retry}");
    // ...while from where she has signed in before she is never kept out.
    assert_eq!(login_from(&app, &home, "ada@example.com", PASSWORD).await.status(), 200);
    // Other accounts are untouched.
    customer(&app, "bob@example.com").await;
    assert_eq!(login_from(&app, &client_from("127.0.0.5"), "bob@example.com", PASSWORD).await.status(), 200);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn registration_is_limited_per_address_and_per_email(db: PgPool) {
    let settings = shop::accounts::Settings {
        per_address: shop::ratelimit::Limit { per_second: 0.01, burst: 3 },
        sign_ups_per_account: shop::ratelimit::Limit { per_second: 0.01, burst: 2 },
        ..Default::default()
    };
    let app = TestApp::spawn_seeded_with(db, 10, |shop| shop.with_account_settings(settings)).await;
    let sign_up = |client: reqwest::Client, email: &'static str| {
        let url = app.url("/api/v1/auth/register");
        async move { client.post(url).json(&json!({ "email": email, "password": PASSWORD, "name": "Ada" })).send().await.unwrap() }
    };
    // One email, again and again from many addresses: each try costs a hash.
    assert_eq!(sign_up(client_from("127.0.0.2"), "ada@example.com").await.status(), 201);
    assert_eq!(sign_up(client_from("127.0.0.3"), "ada@example.com").await.status(), 409);
    assert_rate_limited(sign_up(client_from("127.0.0.4"), "ada@example.com").await).await;
    // Many emails from one address.
    let one = client_from("127.0.0.5");
    assert_eq!(sign_up(one.clone(), "b1@example.com").await.status(), 201);
    assert_eq!(sign_up(one.clone(), "b2@example.com").await.status(), 201);
    assert_eq!(sign_up(one.clone(), "b3@example.com").await.status(), 201);
    assert_rate_limited(sign_up(one.clone(), "b4@example.com").await).await;
    // Sign-ins from that address share its budget: both cost Argon2.
    assert_rate_limited(login_from(&app, &one, "b1@example.com", PASSWORD).await).await;
    // Invalid input is refused before any limit or hash is spent.
    let bad = one.post(app.url("/api/v1/auth/register")).json(&json!({ "email": "nope", "password": PASSWORD, "name": "Ada" })).send().await.unwrap();
    assert_eq!(bad.status(), 422);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn argon2_work_is_bounded_and_a_caller_that_waits_too_long_gets_a_503(db: PgPool) {
    assert_eq!(shop::accounts::Runtime::new(Default::default()).hashing.size(), 6, "128 MiB of 19 MiB hashes");
    let settings = shop::accounts::Settings {
        // Room for exactly one hash, and a short queue.
        hashing_memory_budget_kib: 19 * 1024,
        hashing_queue_wait: Duration::from_millis(200),
        ..Default::default()
    };
    let app = TestApp::spawn_seeded_with(db, 10, |shop| shop.with_account_settings(settings)).await;
    customer(&app, "ada@example.com").await;
    assert_eq!(app.shop.accounts_rt.hashing.size(), 1);

    // Something else holds the only slot until we let it go.
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let shop = app.shop.clone();
    let holder = tokio::spawn(async move {
        shop.accounts_rt.hashing.run(move || {
            let _ = started.send(());
            let _ = hold.recv();
            Ok(())
        }).await
    });
    running.await.unwrap();
    let busy = post(&app, "/api/v1/auth/login", json!({ "email": "ada@example.com", "password": PASSWORD })).await;
    assert_eq!(busy.status(), 503);
    assert!(busy.headers().contains_key(header::RETRY_AFTER));
    let body: Value = busy.json().await.unwrap();
    assert_eq!((body["error"].as_str(), body["dependency"].as_str()), (Some("service_unavailable"), Some("password_hashing")));

    // Once the slot is free, sign-in works again.
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    assert_eq!(post(&app, "/api/v1/auth/login", json!({ "email": "ada@example.com", "password": PASSWORD })).await.status(), 200);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn the_sign_in_and_register_server_functions_refuse_other_sites(db: PgPool) {
    let app = TestApp::spawn(db).await;
    customer(&app, "ada@example.com").await;
    let own = format!("http://{}", app.addr);
    // Where the pages' forms post: the server functions' URLs.
    let mut actions = Vec::new();
    for page in ["/login", "/register"] {
        let html = app.get(page).await.text().await.unwrap();
        let action = html.split("action=\"").skip(1).map(|a| a.split('"').next().unwrap()).find(|a| a.starts_with("/api/"));
        actions.push(action.unwrap_or_else(|| panic!("{page} has a server function form")).to_owned());
    }
    let (sign_in_url, register_url) = (actions[0].clone(), actions[1].clone());
    let call = |path: &str, origin: Option<&str>, form: Vec<(&'static str, &'static str)>| {
        let mut request = app.client.post(app.url(path)).form(&form);
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.send()
    };
    let sign_in = vec![("email", "ada@example.com"), ("password", PASSWORD)];
    let join = vec![("name", "Eve"), ("email", "eve@example.com"), ("password", PASSWORD)];
    for origin in [Some("https://evil.example"), None] {
        for (path, form) in [(&sign_in_url, sign_in.clone()), (&register_url, join.clone())] {
            let response = call(path, origin, form).await.unwrap();
            assert_eq!(response.status(), 403, "{path} from {origin:?}");
            assert!(response.headers().get(header::SET_COOKIE).is_none(), "{path}: no session for another site");
        }
    }
    let eve: Option<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE email = 'eve@example.com'").fetch_optional(&app.shop.db).await.unwrap();
    assert_eq!(eve, None, "no account was made");
    for (path, form) in [(&sign_in_url, sign_in), (&register_url, join)] {
        let response = call(path, Some(&own), form).await.unwrap();
        assert_eq!(response.status(), 200, "{path} from our own pages");
        assert!(response.headers()[header::SET_COOKIE].to_str().unwrap().starts_with("mercato_session="));
    }
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_role_change_revokes_the_users_sessions(db: PgPool) {
    let app = TestApp::spawn_seeded(db, 20).await;
    let shop_id = app.shop.catalog().first_seller().await.unwrap().id;
    let seller = app.shop.accounts().create_user("sam@example.com", PASSWORD, "Sam", Role::Seller, Some(shop_id)).await.unwrap();
    let login = |client: reqwest::Client| {
        let url = app.url("/api/v1/auth/login");
        async move {
            let body: Value = client.post(url).json(&json!({ "email": "sam@example.com", "password": PASSWORD })).send().await.unwrap().json().await.unwrap();
            body["token"].as_str().unwrap().to_owned()
        }
    };
    let skus = |token: String| app.client.get(app.url("/api/v1/seller/skus")).bearer_auth(token).send();
    let laptop = login(app.client.clone()).await;
    let phone = login(client_from("127.0.0.2")).await;
    assert_eq!(skus(laptop.clone()).await.unwrap().status(), 200);

    let demoted = app.shop.accounts().set_role(seller.id, Role::Customer, None).await.unwrap();
    assert_eq!(demoted.role, Role::Customer);
    for token in [laptop, phone] {
        assert_eq!(skus(token.clone()).await.unwrap().status(), 401, "every session of the old role ends at once");
        assert_eq!(me(&app, &token).await, 401);
    }
    let fresh = login(app.client.clone()).await;
    assert_eq!(skus(fresh.clone()).await.unwrap().status(), 403, "signed in again, as a customer");
    let who: Value = app.client.get(app.url("/api/v1/me")).bearer_auth(&fresh).send().await.unwrap().json().await.unwrap();
    assert_eq!(who["role"], "customer");
    // The schema's rule holds: a seller needs a shop.
    assert!(matches!(app.shop.accounts().set_role(seller.id, Role::Seller, None).await, Err(shop::Error::Invalid(_))));
}

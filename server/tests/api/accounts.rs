//! Accounts and sessions: registration rules, sign-in without hints, bearer
//! and cookie sessions that sign-out really ends, and the CSRF origin check.

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

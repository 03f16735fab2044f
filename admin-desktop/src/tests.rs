//! The Rust side without a window: commands invoked through Tauri's IPC on
//! its mock runtime (so names, arguments and registration are what the UI
//! uses), against a fake shop API on a real port that enforces what the
//! real one does (bearer tokens, revocation, the reserved-stock refusal).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use model::{Role, User};
use serde_json::{json, Value};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::WebviewWindow;
use futures_util::StreamExt;
use model::desktop::LiveMsg;
use uuid::Uuid;

use crate::live::{follow, Stopped};
use crate::session::{KeyringStore, TokenStore};
use crate::settings::SettingsFile;
use crate::{app_builder, Desktop};

const SKU: Uuid = Uuid::from_u128(0x5c0);

#[derive(Default)]
struct Fake {
    live: Mutex<HashSet<String>>,
    logged_out: Mutex<Vec<String>>,
    requests: AtomicUsize,
    issued: AtomicUsize,
    /// The `Last-Event-ID` of each live-stream connection, in order.
    resumed_from: Mutex<Vec<Option<String>>>,
    /// The `Idempotency-Key` of each product create.
    create_keys: Mutex<Vec<Option<String>>>,
}

fn user(role: Role) -> User {
    User { id: Uuid::from_u128(role as u128 + 1), email: format!("{}@shop.test", role.as_str()), name: "Someone".into(), role, seller_id: None }
}

fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

impl Fake {
    fn bearer(&self, headers: &HeaderMap) -> Option<String> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let token = headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")?.to_owned();
        self.live.lock().unwrap().contains(&token).then_some(token)
    }

    fn revoke_all(&self) {
        self.live.lock().unwrap().clear();
    }
}

fn token_role(token: &str) -> Role {
    if token.starts_with("customer") { Role::Customer } else { Role::Seller }
}

async fn login(State(f): State<Arc<Fake>>, Json(body): Json<Value>) -> Response {
    f.requests.fetch_add(1, Ordering::SeqCst);
    let role = match (body["email"].as_str(), body["password"].as_str()) {
        (Some("seller@shop.test"), Some("right")) => Role::Seller,
        (Some("customer@shop.test"), Some("right")) => Role::Customer,
        _ => return refusal(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong email or password"),
    };
    let token = format!("{}-{}", role.as_str(), f.issued.fetch_add(1, Ordering::SeqCst));
    f.live.lock().unwrap().insert(token.clone());
    Json(json!({ "user": user(role), "token": token })).into_response()
}

async fn logout(State(f): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    let Some(token) = f.bearer(&headers) else { return refusal(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first") };
    f.live.lock().unwrap().remove(&token);
    f.logged_out.lock().unwrap().push(token);
    StatusCode::NO_CONTENT.into_response()
}

async fn me(State(f): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    match f.bearer(&headers) {
        Some(token) => Json(user(token_role(&token))).into_response(),
        None => refusal(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first"),
    }
}

fn row(stock: i64) -> Value {
    json!({ "sku_id": SKU, "product_id": Uuid::nil(), "title": "Lamp", "variant": "Brass", "stock_count": stock,
            "reserved": 3, "available": stock - 3, "in_orders": 2, "held": 1, "shards": 1 })
}

async fn skus(State(f): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    match f.bearer(&headers) {
        Some(_) => Json(json!({ "items": [row(10)] })).into_response(),
        None => refusal(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first"),
    }
}

async fn stock(State(f): State<Arc<Fake>>, headers: HeaderMap, Path(sku): Path<Uuid>, Json(body): Json<Value>) -> Response {
    if f.bearer(&headers).is_none() {
        return refusal(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first");
    }
    if sku != SKU {
        return refusal(StatusCode::NOT_FOUND, "not_found", "no such SKU");
    }
    let wanted = body["stock_count"].as_i64().unwrap_or(-1);
    if wanted < 3 {
        return refusal(StatusCode::CONFLICT, "stock_below_reserved", &format!("cannot set stock to {wanted}: 3 units are reserved or in orders"));
    }
    Json(row(wanted)).into_response()
}

const LIVE_SALE: Uuid = Uuid::from_u128(0xf1a5);
const SILENT_SALE: Uuid = Uuid::from_u128(0x5117);

fn sample(id: &str, status: &str, remaining: i64) -> String {
    let figures = json!({ "sale_id": LIVE_SALE, "status": status, "at": "2026-12-07T10:00:00Z", "remaining": remaining,
        "reservations_per_s": 4.0, "orders_per_s": 2.0, "rejections_per_s": 0.0, "waitlist": 0, "promotions": 0,
        "reserve_p50_ms": 1.0, "reserve_p99_ms": 2.0, "sold": 10 - remaining, "oversold": 0 });
    format!("id: {id}\nevent: figures\ndata: {figures}\n\n")
}

/// The shop's live stream as it behaves: the first connection sends two
/// samples and drops; a reconnection resumes after the `Last-Event-ID` it
/// names (here, with the sale's last sample).
async fn live(State(f): State<Arc<Fake>>, headers: HeaderMap, Path(sale): Path<Uuid>) -> Response {
    if f.bearer(&headers).is_none() {
        return refusal(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first");
    }
    let from = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    f.resumed_from.lock().unwrap().push(from.clone());
    let sse = [("content-type", "text/event-stream")];
    if sale == SILENT_SALE {
        let quiet = futures_util::stream::once(async { Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(": hello\n\n")) })
            .chain(futures_util::stream::pending());
        return (sse, axum::body::Body::from_stream(quiet)).into_response();
    }
    let body = match from.as_deref() {
        None => format!("{}{}", sample("1-0", "live", 9), sample("2-0", "live", 8)),
        Some("2-0") => sample("3-0", "ended", 0),
        Some(other) => panic!("resumed from {other}"),
    };
    (sse, body).into_response()
}

async fn create_product(State(f): State<Arc<Fake>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if f.bearer(&headers).is_none() {
        return refusal(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first");
    }
    f.create_keys.lock().unwrap().push(headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned));
    let named = |name: &str| model::NamedRef { id: Uuid::from_u128(3), slug: name.to_lowercase(), name: name.into() };
    let product = model::Product {
        id: Uuid::from_u128(7),
        title: body["title"].as_str().unwrap_or_default().into(),
        description: String::new(),
        attributes: Default::default(),
        brand: named(body["brand"].as_str().unwrap_or_default()),
        category: named(body["category"].as_str().unwrap_or_default()),
        department: None,
        seller: named("Northwind"),
        images: vec![],
        rating_avg: 0.0,
        rating_count: 0,
        skus: vec![],
    };
    (StatusCode::CREATED, Json(product)).into_response()
}

/// The fake on its own runtime and thread: `get_ipc_response` blocks the
/// test's thread while the command runs on Tauri's runtime.
fn fake_shop() -> (Arc<Fake>, SocketAddr) {
    let fake = Arc::new(Fake::default());
    let router = Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/seller/skus", get(skus))
        .route("/api/v1/seller/skus/{sku}/stock", put(stock))
        .route("/api/v1/seller/flash-sales/{sale}/live", get(live))
        .route("/api/v1/seller/products", post(create_product))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(fake.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    (fake, rx.recv().unwrap())
}

/// keyring's mock store, for the whole test process.
fn mock_keyring() -> Arc<dyn TokenStore> {
    static MOCK: Once = Once::new();
    MOCK.call_once(|| keyring::set_default_credential_builder(keyring::mock::default_credential_builder()));
    Arc::new(KeyringStore::default())
}

struct App {
    _app: tauri::App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
}

fn app(addr: SocketAddr, store: Arc<dyn TokenStore>) -> App {
    let desktop = Desktop::new(format!("http://{addr}/").parse().unwrap(), store, SettingsFile::at(None));
    let app = app_builder(mock_builder(), desktop).build(mock_context(noop_assets())).unwrap();
    let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default()).build().unwrap();
    App { _app: app, window }
}

impl App {
    /// One command through the IPC, as the page sends it.
    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        let request = InvokeRequest {
            cmd: cmd.into(),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: tauri::ipc::InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        };
        get_ipc_response(&self.window, request).map(|body| body.deserialize::<Value>().unwrap())
    }

    fn sign_in(&self, email: &str, remember: bool) -> Result<Value, Value> {
        self.invoke("sign_in", json!({ "email": email, "password": "right", "remember": remember }))
    }
}

fn server_key(addr: SocketAddr) -> String {
    format!("http://{addr}/")
}

#[test]
fn sign_in_returns_the_user_never_the_token_and_remembers_it_only_when_asked() {
    let (fake, addr) = fake_shop();
    let store = mock_keyring();
    let app = app(addr, store.clone());

    let view = app.sign_in("seller@shop.test", true).expect("signed in");
    assert_eq!(view["user"]["role"], "seller");
    assert_eq!(view["remembered"], true);
    let issued: Vec<String> = fake.live.lock().unwrap().iter().cloned().collect();
    assert_eq!(issued.len(), 1);
    assert!(!view.to_string().contains(&issued[0]), "the page must never see the token: {view}");
    assert_eq!(store.load(&server_key(addr)).unwrap().as_deref(), Some(issued[0].as_str()));

    // Signing in again without "remember me" forgets the earlier one.
    let view = app.sign_in("seller@shop.test", false).expect("signed in");
    assert_eq!(view["remembered"], false);
    assert_eq!(store.load(&server_key(addr)).unwrap(), None);

    let wrong = app.invoke("sign_in", json!({ "email": "seller@shop.test", "password": "nope", "remember": false })).unwrap_err();
    assert_eq!(wrong["code"], "invalid_credentials");
    assert_eq!(wrong["message"], "wrong email or password");
}

#[test]
fn a_remembered_session_survives_a_restart_and_a_revoked_one_is_forgotten() {
    let (fake, addr) = fake_shop();
    let store = mock_keyring();
    app(addr, store.clone()).sign_in("seller@shop.test", true).expect("signed in");

    // A second app sharing the keyring is the next start.
    let restarted = app(addr, store.clone());
    let before = fake.requests.load(Ordering::SeqCst);
    assert_eq!(restarted.invoke("session_restore", json!({})).unwrap()["role"], "seller");
    assert_eq!(fake.requests.load(Ordering::SeqCst), before + 1, "restore asks the shop who the token belongs to");

    fake.revoke_all();
    let third = app(addr, store.clone());
    assert_eq!(third.invoke("session_restore", json!({})).unwrap(), Value::Null);
    assert_eq!(store.load(&server_key(addr)).unwrap(), None, "a token the shop refused is erased");
}

struct BrokenStore;

impl TokenStore for BrokenStore {
    fn load(&self, _: &str) -> Result<Option<String>, String> {
        Err("the keyring is locked".into())
    }
    fn save(&self, _: &str, _: &str) -> Result<(), String> {
        Err("the keyring is locked".into())
    }
    fn clear(&self, _: &str) -> Result<(), String> {
        Err("the keyring is locked".into())
    }
}

#[test]
fn a_broken_keyring_never_stops_a_sign_in() {
    let (_fake, addr) = fake_shop();
    let app = app(addr, Arc::new(BrokenStore));
    let view = app.sign_in("seller@shop.test", true).expect("signed in anyway");
    assert_eq!(view["remembered"], false);
    assert!(view["remember_error"].as_str().unwrap().contains("locked"), "{view}");
    assert_eq!(app.invoke("list_skus", json!({})).unwrap()["items"][0]["title"], "Lamp");
    assert_eq!(app.invoke("session_restore", json!({})).unwrap()["role"], "seller");
}

#[test]
fn a_customer_is_refused_and_the_session_the_shop_made_is_ended() {
    let (fake, addr) = fake_shop();
    let app = app(addr, mock_keyring());
    let refused = app.sign_in("customer@shop.test", true).unwrap_err();
    assert_eq!(refused["code"], "not_a_seller");
    assert_eq!(fake.logged_out.lock().unwrap().len(), 1);
    assert!(fake.live.lock().unwrap().is_empty());
    assert_eq!(app.invoke("list_skus", json!({})).unwrap_err()["code"], "signed_out");
}

#[test]
fn sign_out_forgets_the_token_everywhere_and_later_calls_send_nothing() {
    let (fake, addr) = fake_shop();
    let store = mock_keyring();
    let app = app(addr, store.clone());
    app.sign_in("seller@shop.test", true).unwrap();
    app.invoke("sign_out", json!({})).unwrap();
    assert_eq!(store.load(&server_key(addr)).unwrap(), None);
    assert!(fake.live.lock().unwrap().is_empty(), "the shop ended the session");

    let before = fake.requests.load(Ordering::SeqCst);
    assert_eq!(app.invoke("list_skus", json!({})).unwrap_err()["code"], "signed_out");
    assert_eq!(fake.requests.load(Ordering::SeqCst), before, "no request without a session");
}

#[test]
fn a_401_mid_session_signs_out_and_a_refusal_keeps_the_shops_words() {
    let (fake, addr) = fake_shop();
    let app = app(addr, mock_keyring());
    app.sign_in("seller@shop.test", false).unwrap();

    let row = app.invoke("set_stock", json!({ "sku_id": SKU, "stock_count": 12 })).unwrap();
    assert_eq!((row["stock_count"].as_i64(), row["available"].as_i64()), (Some(12), Some(9)));
    let refused = app.invoke("set_stock", json!({ "sku_id": SKU, "stock_count": 0 })).unwrap_err();
    assert_eq!(refused["code"], "stock_below_reserved");
    assert_eq!(refused["status"], 409);
    assert!(refused["message"].as_str().unwrap().contains("3 units are reserved"), "{refused}");
    let bad = app.invoke("set_stock", json!({ "sku_id": "not-a-uuid", "stock_count": 5 })).unwrap_err();
    assert!(bad.to_string().contains("sku_id"), "a malformed argument is refused before any request: {bad}");

    fake.revoke_all();
    assert_eq!(app.invoke("list_skus", json!({})).unwrap_err()["code"], "signed_out");
    assert_eq!(app.invoke("session_restore", json!({})).unwrap(), Value::Null, "the session is gone");
}

#[test]
fn a_shop_that_does_not_answer_is_unreachable_not_an_error_page() {
    // A port nothing listens on: bind, read the port, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = app(addr, mock_keyring());
    let e = app.sign_in("seller@shop.test", false).unwrap_err();
    assert_eq!(e["code"], "unreachable");
    assert!(e["message"].as_str().unwrap().contains(&addr.to_string()), "{e}");
    assert_eq!(app.invoke("ping", json!({})).unwrap_err()["code"], "unreachable");
}

#[test]
fn the_server_url_is_a_checked_setting_and_changing_it_signs_out() {
    let (_fake, addr) = fake_shop();
    let app = app(addr, mock_keyring());
    app.sign_in("seller@shop.test", false).unwrap();
    assert_eq!(app.invoke("settings_get", json!({})).unwrap()["server_url"], server_key(addr));
    assert_eq!(app.invoke("settings_set", json!({ "server_url": "ftp://x" })).unwrap_err()["code"], "bad_input");
    assert_eq!(app.invoke("session_restore", json!({})).unwrap()["role"], "seller", "a refused URL changes nothing");
    let set = app.invoke("settings_set", json!({ "server_url": "http://127.0.0.1:9" })).unwrap();
    assert_eq!(set["server_url"], "http://127.0.0.1:9/");
    assert_eq!(app.invoke("list_skus", json!({})).unwrap_err()["code"], "signed_out");
}

fn live_url(addr: SocketAddr, sale: Uuid) -> reqwest::Url {
    format!("http://{addr}/api/v1/seller/flash-sales/{sale}/live").parse().unwrap()
}

fn seller_token(fake: &Fake) -> String {
    let token = "seller-live".to_owned();
    fake.live.lock().unwrap().insert(token.clone());
    token
}

#[test]
fn the_live_stream_resumes_after_the_last_sample_it_saw() {
    let (fake, addr) = fake_shop();
    let token = seller_token(&fake);
    let got = Mutex::new(Vec::new());
    // Bounded, so a follower that never resumes fails instead of looping.
    let stopped = tauri::async_runtime::block_on(follow(&reqwest::Client::new(), live_url(addr, LIVE_SALE), &token, None, crate::live::QUIET, |m| {
        let mut got = got.lock().unwrap();
        got.push(m);
        got.len() < 10
    }));
    assert_eq!(stopped, Stopped::Ended);
    let got = got.into_inner().unwrap();
    let ids: Vec<&str> = got.iter().filter_map(|m| if let LiveMsg::Figures { id, .. } = m { Some(id.as_str()) } else { None }).collect();
    assert_eq!(ids, ["1-0", "2-0", "3-0"], "every sample once, in order: {got:?}");
    assert!(matches!(got[2], LiveMsg::Reconnecting { attempt: 1, .. }), "{got:?}");
    assert!(matches!(got.last(), Some(LiveMsg::Ended { .. })), "{got:?}");
    assert_eq!(*fake.resumed_from.lock().unwrap(), [None, Some("2-0".to_owned())]);
}

#[test]
fn a_silent_stream_is_reconnected_and_a_401_stops_the_watch() {
    let (fake, addr) = fake_shop();
    let token = seller_token(&fake);
    let got = Mutex::new(Vec::new());
    // Quiet for 300 ms counts as dead here; the sink stops after the second reconnect.
    let stopped = tauri::async_runtime::block_on(follow(
        &reqwest::Client::new(),
        live_url(addr, SILENT_SALE),
        &token,
        None,
        std::time::Duration::from_millis(300),
        |m| {
            let mut got = got.lock().unwrap();
            got.push(m);
            got.len() < 2
        },
    ));
    assert_eq!(stopped, Stopped::Closed);
    let got = got.into_inner().unwrap();
    assert!(got.iter().all(|m| matches!(m, LiveMsg::Reconnecting { error, .. } if error.contains("no word"))), "{got:?}");
    assert_eq!(fake.resumed_from.lock().unwrap().len(), 2, "it reconnected");

    fake.revoke_all();
    let got = Mutex::new(Vec::new());
    let stopped = tauri::async_runtime::block_on(follow(&reqwest::Client::new(), live_url(addr, LIVE_SALE), &token, None, crate::live::QUIET, |m| {
        got.lock().unwrap().push(m);
        true
    }));
    assert_eq!(stopped, Stopped::SignedOut);
    assert_eq!(got.into_inner().unwrap(), [LiveMsg::SignedOut]);
}

#[test]
fn a_bulk_update_reports_every_row_and_a_create_carries_its_key() {
    let (fake, addr) = fake_shop();
    let app = app(addr, mock_keyring());
    app.sign_in("seller@shop.test", false).unwrap();
    let csv = format!("sku_id,stock_count\n{SKU},20\n{SKU},1\nnope,3\n{},5\n", Uuid::from_u128(9));
    let preview = app.invoke("preview_stock_csv", json!({ "text": csv })).unwrap();
    assert_eq!(preview.as_array().unwrap().len(), 4);
    let results = app.invoke("bulk_set_stock", json!({ "rows": preview })).unwrap();
    let results: Vec<(u64, bool)> = results.as_array().unwrap().iter().map(|r| (r["line"].as_u64().unwrap(), r["error"].is_null())).collect();
    // Line 3 repeats line 2's SKU and line 4 is no SKU: never sent. Line 5's SKU is not the seller's.
    assert_eq!(results, [(2, true), (5, false)]);

    let key = Uuid::from_u128(0xabc);
    let product = json!({ "title": "Lamp", "category": "lighting", "brand": "Lumo", "skus": [{ "price_cents": 1200 }] });
    app.invoke("create_product", json!({ "product": product, "idempotency_key": key })).unwrap();
    assert_eq!(*fake.create_keys.lock().unwrap(), [Some(key.to_string())]);
    let refused = app.invoke("create_product", json!({ "product": { "title": "Lamp", "price_cent": 1 }, "idempotency_key": key })).unwrap_err();
    assert!(refused.to_string().contains("product"), "a malformed product never leaves the app: {refused}");
    assert_eq!(fake.create_keys.lock().unwrap().len(), 1);
}

//! Graceful shutdown: a request already in flight when the signal arrives
//! still gets its answer; new connections are refused; a checkout whose
//! caller stopped waiting finishes before the server stops.

use std::time::Duration;

use leptos::server_fn::ServerFn;
use server::config::Config;
use server::startup::Application;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{redis_url, wait_for, LocalStripe};
use crate::stripe_fake::Fault;

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn in_flight_requests_finish_after_the_shutdown_signal(db: PgPool) {
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let config = Config::from_lookup(|key| match key {
        "MERCATO_ADDR" => Some("127.0.0.1:0".into()),
        "MERCATO_REDIS_PREFIX" => Some(prefix.clone()),
        "REDIS_URL" => Some(redis_url()),
        _ => std::env::var(key).ok(),
    })
    .unwrap();
    let kv = shop::kv::Kv::connect(&redis_url(), prefix.clone()).await.unwrap();
    let app = Application::with_shop(config, shop::Shop::new(db, kv)).await.unwrap();
    let addr = app.local_addr();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stop_rx.await;
    }));

    // A server-function call whose body is still on its way: the handler is
    // waiting to read it when shutdown begins.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
        app::server::GetHome::PATH
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Wait until the server is handling it: two requests in flight, that
    // one and the scrape asking.
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = client.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap();
        let in_flight = metrics.lines().find_map(|l| l.strip_prefix("mercato_http_requests_in_flight ")).and_then(|v| v.trim().parse::<i64>().ok());
        if in_flight >= Some(2) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the request never reached a handler: {in_flight:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(client);

    stop_tx.send(()).unwrap();
    // The listener closes once shutdown has begun.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "new connections are still accepted after shutdown began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!server.is_finished(), "the server waits for the request in flight");

    stream.write_all(b"x=1").await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .expect("the in-flight request is answered")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("Electronics") || response.contains("categories"), "{response}");

    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops once idle")
        .unwrap()
        .unwrap();
}

/// A checkout runs as a task of its own, to its end, even when its caller
/// stops waiting (`Checkout::place`). Stopping the server must wait for it:
/// a process that exited between the authorization and the commit would
/// leave the card held and the customer without an order until recovery.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn shutdown_waits_for_a_checkout_whose_caller_gave_up(db: PgPool) {
    let stripe = LocalStripe::start().await;
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let mut config = Config::from_lookup(|key| match key {
        "MERCATO_ADDR" => Some("127.0.0.1:0".into()),
        "MERCATO_REDIS_PREFIX" => Some(prefix.clone()),
        "REDIS_URL" => Some(redis_url()),
        _ => std::env::var(key).ok(),
    })
    .unwrap();
    config.shutdown_grace = Duration::from_secs(30);
    let kv = shop::kv::Kv::connect(&redis_url(), prefix.clone()).await.unwrap();
    let shop = shop::Shop::new(db, kv).with_payment_settings(stripe.settings());
    shop.catalog().seed(shop::catalog::SeedOptions { products: 5 }).await.unwrap();
    let app = Application::with_shop(config, shop.clone()).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stop_rx.await;
    }));

    let sku: uuid::Uuid = sqlx::query_scalar("SELECT sku_id FROM inventory ORDER BY sku_id LIMIT 1").fetch_one(&shop.db).await.unwrap();
    shop.inventory().set_stock(shop::inventory::SellerScope::Admin, sku, 5).await.unwrap();
    let token = shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
    let user = shop.accounts().authenticate(&token).await.unwrap().unwrap();
    shop.cart().add(&shop::cart::Owner::User(user.id), sku, 1).await.unwrap();
    let key = uuid::Uuid::new_v4().to_string();
    let request: shop::checkout::CheckoutRequest = serde_json::from_value(serde_json::json!({
        "shipping_address": { "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" },
        "payment_method": "pm_card_visa",
    }))
    .unwrap();

    // The authorization takes 3 s; the caller gives up once the checkout
    // has claimed its key, and the server is told to stop at once.
    stripe.fake().fail_next(("POST", "/confirm"), Fault::Delay(Duration::from_secs(3)));
    let (db, k) = (&shop.db, key.as_str());
    let checkout = shop.checkout();
    let placing = checkout.place(user.id, &key, &request);
    let claimed = async {
        wait_for("the checkout to claim its key", Duration::from_secs(20), || async move { checkout_state(db, k).await.is_some() }).await;
    };
    tokio::select! {
        placed = placing => panic!("the checkout finished before its delayed authorization: {placed:?}"),
        () = claimed => {}
    }
    assert_eq!(checkout_state(&shop.db, &key).await.as_deref(), Some("started"), "the checkout is still paying when the caller leaves");
    stop_tx.send(()).unwrap();

    tokio::time::timeout(Duration::from_secs(30), server).await.expect("the server stops within its grace").unwrap().unwrap();
    // The moment the server has stopped, the checkout has finished: its
    // key answered, its order placed on the one authorization.
    assert_eq!(checkout_state(&shop.db, &key).await.as_deref(), Some("done"), "the server stopped under a running checkout");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE idempotency_key = $1").bind(&key).fetch_one(&shop.db).await.unwrap();
    assert_eq!(orders, 1);
    let intents = stripe.intents().await;
    assert_eq!(intents.len(), 1, "{intents:#?}");
    assert_eq!(intents[0]["status"], "requires_capture", "{intents:#?}");
}

async fn checkout_state(db: &PgPool, key: &str) -> Option<String> {
    sqlx::query_scalar("SELECT state FROM checkout_requests WHERE idempotency_key = $1").bind(key).fetch_optional(db).await.unwrap()
}

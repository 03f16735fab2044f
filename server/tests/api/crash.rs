//! The real server process killed at each step of checkout (the
//! `MERCATO_FAULT_POINT` hook aborts it there, no unwinding), then started
//! again: afterwards no order lacks its authorization, no authorization
//! lacks an order or a void, and the stock is whole. The customer's retry
//! with the same key ends with exactly one order.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use shop::cart::Owner;
use sqlx::PgPool;
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::helpers::{redis_url, unassigned_port, LocalStripe};

const SERVER: &str = env!("CARGO_BIN_EXE_server");

fn database_url(db: &PgPool) -> String {
    let o = db.connect_options();
    format!("postgres://{}@{}:{}/{}", o.get_username(), o.get_host(), o.get_port(), o.get_database().unwrap_or("postgres"))
}

struct Server {
    child: Child,
    base: String,
}

async fn start(db: &PgPool, prefix: &str, stripe: &LocalStripe, fault: Option<&str>) -> Server {
    let port = unassigned_port();
    let mut command = Command::new(SERVER);
    command
        .arg("serve")
        .env("DATABASE_URL", database_url(db))
        .env("REDIS_URL", redis_url())
        .env("MERCATO_REDIS_PREFIX", prefix)
        .env("STRIPE_API_BASE", stripe.url())
        .env("MERCATO_ADDR", format!("127.0.0.1:{port}"))
        .env("MERCATO_CHECKOUT_RECOVERY_SECS", "1")
        .env("MERCATO_SWEEP_INTERVAL_MS", "200")
        .env("MERCATO_RECONCILE_SECS", "0")
        .env("MERCATO_FAULT_POINT", fault.unwrap_or(""))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let child = command.spawn().expect("the server binary runs");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Server { child, base };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not come up");
}

/// A payment provider, a Redis prefix and a seeded shop for the server
/// processes the test starts, with one SKU of 50 units.
async fn fixture(db: &PgPool) -> (LocalStripe, String, shop::Shop, Uuid) {
    let stripe = LocalStripe::start().await;
    let prefix = format!("test:{}:", Uuid::new_v4().simple());
    let kv = shop::kv::Kv::connect(&redis_url(), prefix.clone()).await.unwrap();
    let shop = shop::Shop::new(db.clone(), kv);
    shop.catalog().seed(shop::catalog::SeedOptions { products: 10 }).await.unwrap();
    let sku: Uuid = sqlx::query_scalar("SELECT sku_id FROM inventory ORDER BY sku_id LIMIT 1").fetch_one(db).await.unwrap();
    sqlx::query("UPDATE inventory SET stock_count = 50 WHERE sku_id = $1").bind(sku).execute(db).await.unwrap();
    (stripe, prefix, shop, sku)
}

async fn checkout(base: &str, token: &str, key: &str) -> Option<(u16, Value)> {
    let body = json!({
        "shipping_address": { "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" },
        "payment_method": "pm_card_visa",
    });
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/checkout"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_server_killed_at_any_checkout_step_leaves_nothing_half_done(db: PgPool) {
    let (stripe, prefix, shop, sku) = fixture(&db).await;

    for step in ["after_claim", "after_reserve", "after_authorize", "before_commit", "after_commit"] {
        let token = shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
        let user = shop.accounts().authenticate(&token).await.unwrap().unwrap();
        shop.cart().add(&Owner::User(user.id), sku, 2).await.unwrap();
        let key = Uuid::new_v4().to_string();

        let mut doomed = start(&db, &prefix, &stripe, Some(step)).await;
        assert!(checkout(&doomed.base, &token, &key).await.is_none(), "{step}: the process died before answering");
        let status = tokio::time::timeout(Duration::from_secs(10), doomed.child.wait()).await.expect("it dies").unwrap();
        assert!(!status.success(), "{step}: aborted");

        // A new process recovers what the dead one left, then the
        // customer retries with the same key.
        let server = start(&db, &prefix, &stripe, None).await;
        for _ in 0..100 {
            let open: i64 = sqlx::query_scalar("SELECT count(*) FROM checkout_requests WHERE state = 'started'").fetch_one(&db).await.unwrap();
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, answer) = checkout(&server.base, &token, &key).await.expect("the new process answers");
        assert_eq!(status, 201, "{step}: the retry ends in an order: {answer}");
        let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE user_id = $1").bind(user.id).fetch_one(&db).await.unwrap();
        assert_eq!(orders, 1, "{step}: exactly one order for the key");
        drop(server);

        // No order without its authorization; no authorization without an
        // order or a void.
        let paid: Vec<String> = sqlx::query_scalar("SELECT payment_id FROM orders WHERE payment_id IS NOT NULL").fetch_all(&db).await.unwrap();
        let all_orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&db).await.unwrap();
        assert_eq!(paid.len() as i64, all_orders, "{step}: every order has a payment");
        for pi in stripe.intents().await {
            let id = pi["id"].as_str().unwrap().to_owned();
            match pi["status"].as_str().unwrap() {
                "requires_capture" => assert!(paid.contains(&id), "{step}: authorization {id} has no order"),
                "canceled" | "requires_confirmation" => assert!(!paid.contains(&id), "{step}: an order's payment {id} was voided"),
                other => panic!("{step}: unexpected PaymentIntent status {other}"),
            }
        }
        // The stock is whole: every unit is in an order or available.
        let (stock, reserved, held): (i32, i32, i32) =
            sqlx::query_as("SELECT stock_count, reserved, held FROM inventory WHERE sku_id = $1").bind(sku).fetch_one(&db).await.unwrap();
        let available = shop.inventory().available(&[sku]).await.unwrap()[0];
        let redis_held: Option<i64> = redis::cmd("GET").arg(shop.kv.key(&format!("inv:{{{sku}}}:held"))).query_async(&mut shop.kv.conn()).await.unwrap();
        assert_eq!((held, redis_held.unwrap_or(0)), (0, 0), "{step}: no reservation left behind");
        assert_eq!(reserved, 2 * all_orders as i32, "{step}: units in orders");
        assert_eq!(i64::from(stock - reserved), available, "{step}: the rest is available");
    }
}

/// The real server killed in the middle of a cancel: after the intent to
/// cancel is recorded, and after the payment is voided but before the order
/// changes. A new process finishes the cancel: the order ends CANCELLED with
/// its payment voided and its units back, never CONFIRMED with a voided
/// payment.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_server_killed_mid_cancel_leaves_no_confirmed_order_without_its_payment(db: PgPool) {
    let (stripe, prefix, shop, sku) = fixture(&db).await;

    for step in ["after_cancel_recorded", "after_cancel_void"] {
        let token = shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
        let user = shop.accounts().authenticate(&token).await.unwrap().unwrap();
        shop.cart().add(&Owner::User(user.id), sku, 2).await.unwrap();
        let healthy = start(&db, &prefix, &stripe, None).await;
        let (status, placed) = checkout(&healthy.base, &token, &Uuid::new_v4().to_string()).await.expect("placed");
        assert_eq!(status, 201, "{placed}");
        let order_id = placed["order_id"].as_str().unwrap().to_owned();
        drop(healthy);

        let mut doomed = start(&db, &prefix, &stripe, Some(step)).await;
        let cancel = reqwest::Client::new()
            .post(format!("{}/api/v1/orders/{order_id}/cancel", doomed.base))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        assert!(cancel.is_err(), "{step}: the process died before answering");
        let status = tokio::time::timeout(Duration::from_secs(10), doomed.child.wait()).await.expect("it dies").unwrap();
        assert!(!status.success(), "{step}: aborted");
        let (status, payment_id): (String, String) =
            sqlx::query_as("SELECT status, payment_id FROM orders WHERE id = $1::uuid").bind(&order_id).fetch_one(&db).await.unwrap();
        assert_eq!(status, "CONFIRMED", "{step}: the dead process never changed the order");
        let voided_before_recovery = stripe.intents().await.iter().any(|pi| pi["id"] == payment_id.as_str() && pi["status"] == "canceled");
        assert_eq!(voided_before_recovery, step == "after_cancel_void", "{step}: the fault point is where it says");

        // A new process finishes what the dead one recorded.
        let _server = start(&db, &prefix, &stripe, None).await;
        let mut finished = false;
        for _ in 0..200 {
            let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1::uuid").bind(&order_id).fetch_one(&db).await.unwrap();
            if status == "CANCELLED" {
                finished = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(finished, "{step}: recovery finished the cancel");
        let pi = stripe.intents().await.into_iter().find(|pi| pi["id"] == payment_id.as_str()).expect("the intent exists");
        assert_eq!(pi["status"], "canceled", "{step}: its payment is voided");
        let open: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'CONFIRMED'").fetch_one(&db).await.unwrap();
        assert_eq!(open, 0, "{step}: no order is left CONFIRMED");
        let (stock, reserved, held): (i32, i32, i32) =
            sqlx::query_as("SELECT stock_count, reserved, held FROM inventory WHERE sku_id = $1").bind(sku).fetch_one(&db).await.unwrap();
        assert_eq!((stock, reserved, held), (50, 0, 0), "{step}: every unit is back");
        assert_eq!(shop.inventory().available(&[sku]).await.unwrap()[0], 50, "{step}: and sellable");
    }
}

//! Fulfilment against real PostgreSQL, Redis and localstripe behind the
//! strict fake: the warehouse ships and delivers with one capture, events
//! delivered twice, a worker killed between capture and SHIPPED, cancels
//! that win, sellers shipping by hand and refunding, the early capture of
//! an authorization about to lapse, and a pick that finds nothing.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use shop::fulfilment::Settings;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{call, sign_in, LocalStripe, TestApp};
use crate::stripe_fake::Fault;

const CAPTURE: &str = "/v1/payment_intents/{id}/capture";

struct Setup {
    app: TestApp,
    stripe: LocalStripe,
    /// A SKU of the demo seller's.
    sku: Uuid,
    seller_id: Uuid,
}

/// The warehouse runs by itself with millisecond delays.
fn auto() -> Settings {
    Settings {
        pick_delay: Duration::from_millis(50),
        ship_delay: Duration::from_millis(50),
        deliver_delay: Duration::from_millis(50),
        poll_interval: Duration::from_millis(20),
        retry_backoff: Duration::from_millis(50),
        ..Settings::default()
    }
}

/// Steps are due at once, but the server's worker sleeps for an hour after
/// its first look: the test drives `advance` itself.
fn manual() -> Settings {
    Settings {
        pick_delay: Duration::ZERO,
        ship_delay: Duration::ZERO,
        deliver_delay: Duration::ZERO,
        poll_interval: Duration::from_secs(3600),
        retry_backoff: Duration::from_millis(10),
        ..Settings::default()
    }
}

async fn setup(db: PgPool, settings: Settings) -> Setup {
    let stripe = LocalStripe::start().await;
    let payment = stripe.settings();
    let app = TestApp::spawn_seeded_with(db, 20, move |shop| shop.with_payment_settings(payment).with_fulfilment_settings(settings)).await;
    let users = app.shop.accounts().seed_demo().await.unwrap();
    let seller_id = users.iter().find_map(|u| u.seller_id).unwrap();
    let sku: Uuid = sqlx::query_scalar("SELECT s.id FROM skus s JOIN products p ON p.id = s.product_id WHERE p.seller_id = $1 ORDER BY s.id LIMIT 1")
        .bind(seller_id)
        .fetch_one(&app.shop.db)
        .await
        .unwrap();
    app.shop.inventory().set_stock(shop::inventory::SellerScope::Admin, sku, 20).await.unwrap();
    Setup { app, stripe, sku, seller_id }
}

/// A new customer checks out `quantity` of `sku`; the order id and payment id.
async fn place(s: &Setup, sku: Uuid, quantity: i64) -> (Uuid, String) {
    let token = s.app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
    let order_id = s.app.buy(&token, sku, quantity).await;
    let payment_id: String = sqlx::query_scalar("SELECT payment_id FROM orders WHERE id = $1").bind(order_id).fetch_one(&s.app.shop.db).await.unwrap();
    (order_id, payment_id)
}

async fn status(s: &Setup, order_id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM orders WHERE id = $1").bind(order_id).fetch_one(&s.app.shop.db).await.unwrap()
}

async fn timeline(s: &Setup, order_id: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT to_status FROM order_status_history WHERE order_id = $1 ORDER BY id").bind(order_id).fetch_all(&s.app.shop.db).await.unwrap()
}

async fn shipments(s: &Setup, order_id: Uuid) -> Vec<(Uuid, String)> {
    sqlx::query_as("SELECT seller_id, state FROM shipments WHERE order_id = $1").bind(order_id).fetch_all(&s.app.shop.db).await.unwrap()
}

/// (stock_count, reserved)
async fn stock(s: &Setup, sku: Uuid) -> (i32, i32) {
    sqlx::query_as("SELECT stock_count, reserved FROM inventory WHERE sku_id = $1").bind(sku).fetch_one(&s.app.shop.db).await.unwrap()
}

/// Waits (with a deadline) until `check` holds.
async fn until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    crate::helpers::wait_for(what, Duration::from_secs(20), check).await
}

/// Waits until the warehouse consumer made the order's shipment rows.
async fn shipment_rows(s: &Setup, order_id: Uuid) {
    until("the shipment rows", || async { !shipments(s, order_id).await.is_empty() }).await;
}

fn captures_of(s: &Setup, payment_id: &str) -> usize {
    s.stripe.fake().upstream_calls().iter().filter(|c| c.method == "POST" && c.path == format!("/v1/payment_intents/{payment_id}/capture")).count()
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn the_warehouse_ships_and_delivers_a_placed_order_with_one_capture(db: PgPool) {
    let s = setup(db, auto()).await;
    let (order_id, payment_id) = place(&s, s.sku, 3).await;
    assert_eq!(stock(&s, s.sku).await, (20, 3));
    until("DELIVERED", || async { status(&s, order_id).await == "DELIVERED" }).await;
    assert_eq!(timeline(&s, order_id).await, ["PLACED", "PAYMENT_PENDING", "CONFIRMED", "SHIPPED", "DELIVERED"]);
    assert_eq!(s.stripe.fake().upstream_count("POST", CAPTURE), 1, "one capture at the provider");
    assert_eq!(captures_of(&s, &payment_id), 1, "and it was this order's");
    let intents = s.stripe.intents_by_id().await;
    assert_eq!(intents[&payment_id]["status"], "succeeded");
    assert_eq!(intents[&payment_id]["metadata"]["order_id"], json!(order_id.to_string()));
    assert_eq!(stock(&s, s.sku).await, (17, 0), "the units left reserved and stock");
    let shipped: Value = sqlx::query_scalar("SELECT payload FROM outbox WHERE aggregate_id = $1 AND event_type = 'order.shipped'")
        .bind(order_id)
        .fetch_one(&s.app.shop.db)
        .await
        .unwrap();
    assert_eq!(shipped["carrier"], shop::fulfilment::WAREHOUSE_CARRIER);
    assert!(shipped["tracking_number"].as_str().is_some_and(|t| t.starts_with("MP")), "{shipped}");
    assert_eq!(shipments(&s, order_id).await, [(s.seller_id, "delivered".to_owned())]);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn the_same_event_twice_makes_one_shipment_and_one_capture(db: PgPool) {
    let s = setup(db, manual()).await;
    let (order_id, payment_id) = place(&s, s.sku, 1).await;
    shipment_rows(&s, order_id).await;
    // The relay published it (and the app's consumer handled it); deliver
    // the same event again, twice, concurrently.
    let (id, payload): (Uuid, Value) = sqlx::query_as("SELECT id, payload FROM outbox WHERE aggregate_id = $1 AND event_type = 'order.placed'")
        .bind(order_id)
        .fetch_one(&s.app.shop.db)
        .await
        .unwrap();
    let event = shop::events::Event { id, event_type: "order.placed".into(), aggregate_id: order_id, occurred_at: chrono::Utc::now(), payload };
    let fulfilment = s.app.shop.fulfilment();
    let (a, b) = tokio::join!(fulfilment.on_event(&event), fulfilment.on_event(&event));
    assert_eq!((a.unwrap(), b.unwrap()), (false, false), "neither redelivery creates anything");
    assert_eq!(shipments(&s, order_id).await.len(), 1);
    // Two workers at once: each step is taken by one of them.
    for _ in 0..3 {
        let (one, two) = (s.app.shop.fulfilment(), s.app.shop.fulfilment());
        let (a, b) = tokio::join!(one.advance(), two.advance());
        a.unwrap();
        b.unwrap();
    }
    assert_eq!(status(&s, order_id).await, "DELIVERED");
    assert_eq!(timeline(&s, order_id).await.iter().filter(|t| *t == "SHIPPED").count(), 1);
    assert_eq!(captures_of(&s, &payment_id), 1);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_worker_killed_between_capture_and_shipped_ships_once_when_restarted(db: PgPool) {
    let s = setup(db, manual()).await;
    let (order_id, payment_id) = place(&s, s.sku, 2).await;
    shipment_rows(&s, order_id).await;
    // The server's worker sleeps; this one picks, captures, then hangs
    // right after the capture until it is killed.
    s.app.shop.fulfilment_settings.fault.arm("after_capture");
    let shop = s.app.shop.clone();
    let worker = tokio::spawn(async move { shop.fulfilment().advance().await });
    until("the capture", || async { captures_of(&s, &payment_id) == 1 }).await;
    // Wherever it is now (reading the capture's answer, or parked at the
    // hook), it is past the capture and before SHIPPED's commit.
    worker.abort();
    let _ = worker.await;
    s.app.shop.fulfilment_settings.fault.disarm();
    assert_eq!(status(&s, order_id).await, "CONFIRMED", "killed before SHIPPED");
    until("the order shipped by the next worker", || async {
        s.app.shop.fulfilment().advance().await.unwrap();
        status(&s, order_id).await == "DELIVERED"
    })
    .await;
    assert_eq!(captures_of(&s, &payment_id), 1, "the capture's key replayed");
    assert_eq!(stock(&s, s.sku).await, (18, 0));
}

/// A step that fails backs off on its own row at once, and the shipments due
/// after it go on. Written while the step still held that row's lock, the
/// failure waited out the lock timeout, was not recorded, and the same step
/// came first again: one failing capture stalled the whole warehouse.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_failed_step_backs_off_on_its_own_row_and_the_shipments_behind_it_go_on(db: PgPool) {
    let s = setup(db, Settings { retry_backoff: Duration::from_secs(3600), ..manual() }).await;
    let (first, _) = place(&s, s.sku, 1).await;
    let (second, _) = place(&s, s.sku, 1).await;
    shipment_rows(&s, first).await;
    shipment_rows(&s, second).await;
    s.stripe.fake().fail_next(("POST", "/capture"), Fault::Status(400));
    // Recording the failure on a row the failed step still holds would
    // wait on its own lock for good (the test pool sets no lock_timeout):
    // the bound only turns that hang into a failure, far above a pass's
    // real time even on a loaded machine.
    until("one of the two DELIVERED", || async {
        let pass = tokio::time::timeout(Duration::from_secs(60), s.app.shop.fulfilment().advance()).await;
        pass.expect("advance() waits on a lock its own failed step holds").unwrap();
        status(&s, first).await == "DELIVERED" || status(&s, second).await == "DELIVERED"
    })
    .await;
    let failed: Vec<(Uuid, i32, Option<String>)> = sqlx::query_as("SELECT order_id, attempts, last_error FROM shipments WHERE state = 'picked'")
        .fetch_all(&s.app.shop.db)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1, "the other one shipped: {failed:?}");
    let (order_id, attempts, last_error) = &failed[0];
    assert_eq!((*attempts, last_error.is_some()), (1, true), "the failure is recorded on its row");
    assert_eq!(status(&s, *order_id).await, "CONFIRMED", "and it waits out its backoff");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn an_order_whose_cancel_is_recorded_never_ships(db: PgPool) {
    let s = setup(db, manual()).await;
    let (order_id, payment_id) = place(&s, s.sku, 1).await;
    shipment_rows(&s, order_id).await;
    // A cancel recorded by a process that died before voiding.
    sqlx::query("UPDATE orders SET cancel_requested_at = now() WHERE id = $1").bind(order_id).execute(&s.app.shop.db).await.unwrap();
    for _ in 0..3 {
        s.app.shop.fulfilment().advance().await.unwrap();
    }
    assert_eq!(status(&s, order_id).await, "CONFIRMED");
    assert_eq!(shipments(&s, order_id).await[0].1, "cancelled");
    assert_eq!(captures_of(&s, &payment_id), 0, "never captured");
    s.app.shop.checkout().recover(Duration::ZERO).await.unwrap();
    assert_eq!(status(&s, order_id).await, "CANCELLED");
    assert_eq!(s.stripe.intents_by_id().await[&payment_id]["status"], "canceled");
    assert_eq!(stock(&s, s.sku).await, (20, 0));
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_pick_that_finds_nothing_voids_and_cancels(db: PgPool) {
    let s = setup(db, manual()).await;
    let (order_id, payment_id) = place(&s, s.sku, 2).await;
    shipment_rows(&s, order_id).await;
    // A stock-take finds the shelf short of what orders hold: below what the
    // constraint allows a seller to set, which is the point.
    sqlx::query("ALTER TABLE inventory DROP CONSTRAINT inventory_committed_within_stock, DROP CONSTRAINT inventory_reserved_within_stock").execute(&s.app.shop.db).await.unwrap();
    sqlx::query("UPDATE inventory SET stock_count = 1 WHERE sku_id = $1").bind(s.sku).execute(&s.app.shop.db).await.unwrap();
    s.app.shop.fulfilment().advance().await.unwrap();
    assert_eq!(status(&s, order_id).await, "CANCELLED");
    assert_eq!(s.stripe.intents_by_id().await[&payment_id]["status"], "canceled", "the authorization was voided");
    assert_eq!(captures_of(&s, &payment_id), 0);
    assert_eq!(stock(&s, s.sku).await, (1, 0), "the order's units returned");
    assert_eq!(shipments(&s, order_id).await[0].1, "cancelled");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn an_authorization_about_to_lapse_is_captured_early(db: PgPool) {
    let s = setup(db, manual()).await;
    let (order_id, payment_id) = place(&s, s.sku, 1).await;
    let (young, young_payment) = place(&s, s.sku, 1).await;
    shipment_rows(&s, order_id).await;
    shipment_rows(&s, young).await;
    // The pipeline is stuck (pick far in the future); the order is 6 days old.
    sqlx::query("UPDATE shipments SET due_at = now() + interval '1 day'").execute(&s.app.shop.db).await.unwrap();
    sqlx::query("UPDATE orders SET created_at = now() - interval '6 days 1 minute' WHERE id = $1").bind(order_id).execute(&s.app.shop.db).await.unwrap();
    let report = s.app.shop.fulfilment().advance().await.unwrap();
    assert_eq!(report.captured_early, 1);
    assert_eq!(captures_of(&s, &payment_id), 1);
    assert_eq!(captures_of(&s, &young_payment), 0, "a young authorization waits for its shipment");
    assert_eq!(s.stripe.intents_by_id().await[&payment_id]["status"], "succeeded");
    assert_eq!(status(&s, order_id).await, "CONFIRMED", "captured, not shipped");
    // It ships later without a second capture.
    sqlx::query("UPDATE shipments SET due_at = now()").execute(&s.app.shop.db).await.unwrap();
    for _ in 0..3 {
        s.app.shop.fulfilment().advance().await.unwrap();
    }
    assert_eq!(status(&s, order_id).await, "DELIVERED");
    assert_eq!(status(&s, young).await, "DELIVERED");
    assert_eq!(captures_of(&s, &payment_id), 1);
    assert_eq!(s.stripe.fake().upstream_count("POST", CAPTURE), 2);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_seller_lists_its_own_lines_ships_by_hand_and_refunds(db: PgPool) {
    let s = setup(db, manual()).await;
    let seller = sign_in(&s.app, "seller@mercato.test", "sell-demo-2026").await;
    let admin = sign_in(&s.app, "admin@mercato.test", "admin-demo-2026").await;
    // Another seller's SKU, and an account acting for that seller.
    let (other_seller, other_sku): (Uuid, Uuid) = sqlx::query_as(
        "SELECT p.seller_id, s.id FROM skus s JOIN products p ON p.id = s.product_id WHERE p.seller_id <> $1 ORDER BY s.id LIMIT 1",
    )
    .bind(s.seller_id)
    .fetch_one(&s.app.shop.db)
    .await
    .unwrap();
    s.app.shop.inventory().set_stock(shop::inventory::SellerScope::Admin, other_sku, 20).await.unwrap();
    s.app.shop.accounts().register("other-seller@mercato.test", "other-seller-2026", "Other Seller", "127.0.0.1").await.unwrap();
    sqlx::query("UPDATE users SET role = 'seller', seller_id = $1 WHERE email = 'other-seller@mercato.test'").bind(other_seller).execute(&s.app.shop.db).await.unwrap();
    let other = sign_in(&s.app, "other-seller@mercato.test", "other-seller-2026").await;

    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(place(&s, s.sku, 1).await.0);
    }
    let (theirs, _) = place(&s, other_sku, 1).await;
    // Page through with limit=2, matching by id.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/seller/orders?limit=2&cursor={c}"),
            None => "/api/v1/seller/orders?limit=2".to_owned(),
        };
        let (code, page) = call(&s.app, reqwest::Method::GET, &seller, &path, None).await;
        assert_eq!(code, StatusCode::OK, "{page}");
        for order in page["orders"].as_array().unwrap() {
            assert!(order["items"].as_array().unwrap().iter().all(|i| i["sku_id"] == json!(s.sku.to_string())), "only its own lines");
            seen.push(order["order_id"].as_str().unwrap().parse::<Uuid>().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut expected = mine.clone();
    expected.sort();
    expected.reverse();
    assert_eq!(seen, expected, "its orders, newest first, each once, not the other seller's");
    let (_, all) = call(&s.app, reqwest::Method::GET, &admin, "/api/v1/seller/orders?limit=100", None).await;
    assert_eq!(all["orders"].as_array().unwrap().len(), 4, "an admin sees every order");
    assert_eq!(call(&s.app, reqwest::Method::GET, &seller, "/api/v1/seller/orders?status=SHIPPPED", None).await.0, StatusCode::BAD_REQUEST);

    let order = mine[0];
    let ship = |token: String, body: Value| {
        let app = &s.app;
        async move { call(app, reqwest::Method::POST, &token, &format!("/api/v1/seller/orders/{order}/ship"), Some(body)).await }
    };
    let good = json!({ "carrier": "DHL", "tracking_number": "JD0146-0001" });
    assert_eq!(ship(other.clone(), good.clone()).await.0, StatusCode::NOT_FOUND, "another seller's order");
    assert_eq!(ship(seller.clone(), json!({ "carrier": "", "tracking_number": "x" })).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(ship(seller.clone(), json!({ "carrier": "DHL", "tracking_number": "no spaces" })).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, shipped) = ship(seller.clone(), good.clone()).await;
    assert_eq!(code, StatusCode::OK, "{shipped}");
    assert_eq!(shipped["status"], "SHIPPED");
    assert_eq!(shipped["shipments"][0]["tracking_number"], "JD0146-0001");
    // The customer's own view of the order shows how it travels.
    let owner: Uuid = sqlx::query_scalar("SELECT user_id FROM orders WHERE id = $1").bind(order).fetch_one(&s.app.shop.db).await.unwrap();
    let seen = s.app.shop.orders().get(owner, order).await.unwrap();
    assert_eq!(seen.parcels, vec![model::Parcel { carrier: "DHL".into(), tracking_number: "JD0146-0001".into() }]);
    assert_eq!(ship(seller.clone(), good.clone()).await.0, StatusCode::OK, "the same shipment again answers the same");
    assert_eq!(ship(seller.clone(), json!({ "carrier": "DHL", "tracking_number": "OTHER1" })).await.0, StatusCode::CONFLICT);
    let payment_id: String = sqlx::query_scalar("SELECT payment_id FROM orders WHERE id = $1").bind(order).fetch_one(&s.app.shop.db).await.unwrap();
    assert_eq!(captures_of(&s, &payment_id), 1);
    let payload: Value = sqlx::query_scalar("SELECT payload FROM outbox WHERE aggregate_id = $1 AND event_type = 'order.shipped'").bind(order).fetch_one(&s.app.shop.db).await.unwrap();
    assert_eq!((payload["carrier"].as_str(), payload["tracking_number"].as_str()), (Some("DHL"), Some("JD0146-0001")));

    // A cancelled order is not shippable.
    let cancelled = mine[1];
    s.app.shop.checkout().cancel_by_shop(cancelled).await.unwrap();
    let (code, body) = call(&s.app, reqwest::Method::POST, &seller, &format!("/api/v1/seller/orders/{cancelled}/ship"), Some(good.clone())).await;
    assert_eq!((code, body["error"].as_str()), (StatusCode::CONFLICT, Some("not_shippable")));

    // Refund: not before it ships; then REFUNDED and refunded at the provider.
    let unshipped = mine[2];
    assert_eq!(call(&s.app, reqwest::Method::POST, &seller, &format!("/api/v1/seller/orders/{unshipped}/refund"), None).await.0, StatusCode::CONFLICT);
    assert_eq!(call(&s.app, reqwest::Method::POST, &other, &format!("/api/v1/seller/orders/{order}/refund"), None).await.0, StatusCode::NOT_FOUND);
    let (code, refunded) = call(&s.app, reqwest::Method::POST, &seller, &format!("/api/v1/seller/orders/{order}/refund"), None).await;
    assert_eq!((code, refunded["status"].as_str()), (StatusCode::OK, Some("REFUNDED")), "{refunded}");
    let intent = &s.stripe.intents_by_id().await[&payment_id];
    let refunded_amount = intent["charges"]["data"][0]["amount_refunded"].as_i64().unwrap_or_default();
    assert_eq!(refunded_amount, intent["amount"].as_i64().unwrap(), "refunded in full at the provider: {intent}");
    assert_eq!(call(&s.app, reqwest::Method::POST, &admin, &format!("/api/v1/seller/orders/{order}/refund"), None).await.1["status"], "REFUNDED");
    let (code, _) = call(&s.app, reqwest::Method::POST, &admin, &format!("/api/v1/seller/orders/{theirs}/ship"), Some(good)).await;
    assert_eq!(code, StatusCode::OK, "an admin ships any seller's order");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_refund_recorded_by_a_dead_process_is_finished(db: PgPool) {
    let s = setup(db, manual()).await;
    let (order_id, payment_id) = place(&s, s.sku, 1).await;
    until("SHIPPED", || async {
        s.app.shop.fulfilment().advance().await.unwrap();
        status(&s, order_id).await == "DELIVERED"
    })
    .await;
    // Recorded, then the process died before the provider was called.
    sqlx::query("UPDATE orders SET refund_requested_at = now() - interval '2 minutes' WHERE id = $1").bind(order_id).execute(&s.app.shop.db).await.unwrap();
    let report = s.app.shop.fulfilment().advance().await.unwrap();
    assert_eq!(report.refunds_finished, 1);
    assert_eq!(status(&s, order_id).await, "REFUNDED");
    assert_eq!(s.stripe.fake().upstream_count("POST", "/v1/refunds"), 1);
    assert_eq!(captures_of(&s, &payment_id), 1);
}

//! Customer emails (`shop::notifications`) against the real maildev the
//! test command starts (SMTP_URL, MAILDEV_URL): one email per event id
//! (invariant 8), whatever is replayed or crashes between sending and
//! recording. Mail is read back through maildev's REST API (`GET /email`);
//! every test mails customers of its own (unique addresses), so tests share
//! one maildev and run in parallel.

use std::time::Duration;

use model::order::{OrderItem, OrderStatus};
use reqwest::StatusCode;
use serde_json::{json, Value};
use shop::events::redis_streams::RedisStreams;
use shop::events::{Event, EventBus, Topic};
use shop::notifications::{message_id, Notifier, Settings, CONSUMER, DEFAULT_FROM};
use shop::orders::{NewOrder, Orders};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{header, mail_to, redis_url, unassigned_port, wait_for, wait_for_mail, LocalStripe, TestApp};

fn smtp_url() -> String {
    std::env::var("SMTP_URL").unwrap_or_else(|_| shop::notifications::DEFAULT_SMTP_URL.to_owned())
}

/// The event `event_type` of `order`, as the relay publishes it.
async fn event(db: &PgPool, order: Uuid, event_type: &str) -> Event {
    let (id, aggregate_id, occurred_at, payload) = sqlx::query_as(
        "SELECT id, aggregate_id, created_at, payload FROM outbox WHERE aggregate_id = $1 AND event_type = $2",
    )
    .bind(order)
    .bind(event_type)
    .fetch_one(db)
    .await
    .unwrap();
    Event { id, event_type: event_type.to_owned(), aggregate_id, occurred_at, payload }
}

async fn recorded(db: &PgPool, event: Uuid) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2)")
        .bind(CONSUMER)
        .bind(event)
        .fetch_one(db)
        .await
        .unwrap()
}

fn notifier(shop: &shop::Shop, smtp_url: &str) -> Notifier {
    Notifier::new(shop.clone(), &Settings::new(smtp_url, DEFAULT_FROM).unwrap()).unwrap()
}

/// A shop without a server (so no background consumer races the handler
/// under test), with a small catalog to order from.
async fn bare_shop(db: PgPool) -> shop::Shop {
    let kv = shop::kv::Kv::connect(&redis_url(), format!("test:{}:", Uuid::new_v4().simple())).await.expect("Redis is reachable at REDIS_URL");
    let shop = shop::Shop::new(db, kv);
    shop.catalog().seed(shop::catalog::SeedOptions { products: 3 }).await.unwrap();
    shop
}

/// A new customer (unique address) and a confirmed order of theirs for one
/// unit titled `title`, written as checkout writes it. Returns (order, address).
async fn order_for_new_customer(shop: &shop::Shop, title: &str) -> (Uuid, String) {
    let token = shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
    let customer = shop.accounts().authenticate(&token).await.unwrap().unwrap();
    let (sku_id, product_id): (Uuid, Uuid) = sqlx::query_as("SELECT id, product_id FROM skus ORDER BY id LIMIT 1").fetch_one(&shop.db).await.unwrap();
    let order = NewOrder {
        id: Uuid::now_v7(),
        user_id: customer.id,
        idempotency_key: Uuid::new_v4().to_string(),
        total_cents: 1999,
        currency: "EUR".into(),
        payment_id: Some("pi_test".into()),
        reservation_token: Uuid::new_v4(),
        shipping_address: json!({ "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" }),
        items: vec![OrderItem { sku_id, product_id, title: title.to_owned(), quantity: 1, unit_cents: 1999 }],
    };
    let mut tx = shop.db.begin().await.unwrap();
    Orders::insert(&mut tx, &order, &[OrderStatus::Placed, OrderStatus::PaymentPending, OrderStatus::Confirmed]).await.unwrap();
    tx.commit().await.unwrap();
    (order.id, customer.email)
}

async fn move_order(shop: &shop::Shop, order: Uuid, to: OrderStatus) {
    let mut tx = shop.db.begin().await.unwrap();
    Orders::transition(&mut tx, order, to).await.unwrap();
    tx.commit().await.unwrap();
}

/// Checkout through the API on the app's own localstripe; returns the
/// customer's token, address and order id.
async fn checkout(app: &TestApp) -> (String, String, Uuid) {
    let token = app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
    let customer = app.shop.accounts().authenticate(&token).await.unwrap().unwrap();
    let sku: Uuid = sqlx::query_scalar("SELECT sku_id FROM inventory ORDER BY sku_id LIMIT 1").fetch_one(&app.shop.db).await.unwrap();
    app.shop.inventory().set_stock(shop::inventory::SellerScope::Admin, sku, 10).await.unwrap();
    let order = app.buy(&token, sku, 1).await;
    (token, customer.email, order)
}

/// The app's notifications group has handled everything published to it.
async fn caught_up(bus: &RedisStreams) -> bool {
    bus.lag(Topic::Orders)
        .await
        .unwrap()
        .iter()
        .find(|l| l.group == CONSUMER)
        .is_some_and(|l| l.pending == 0 && l.undelivered == 0)
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn an_order_placed_at_checkout_emails_its_customer_once_even_when_the_event_comes_again(db: PgPool) {
    let stripe = LocalStripe::start().await;
    let app = TestApp::spawn_seeded_with(db.clone(), 5, |shop| shop.with_payment_settings(stripe.settings())).await;
    let (_, address, order) = checkout(&app).await;
    let placed = event(&db, order, "order.placed").await;

    let mail = wait_for_mail(&address, 1).await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    let email = &mail[0];
    assert_eq!(header(email, "message-id"), message_id(placed.id), "the Message-ID is the event's");
    assert_eq!(email["subject"].as_str(), Some(format!("Your Mercato order {order} is placed").as_str()));
    assert!(header(email, "content-type").starts_with("multipart/alternative"), "{email:#}");
    let (text, html) = (email["text"].as_str().unwrap(), email["html"].as_str().unwrap());
    assert!(text.contains(&order.to_string()) && text.contains("Total:") && text.contains("SW1Y 4JH London"), "{text}");
    assert!(html.contains(&order.to_string()) && html.contains("<strong>Total:"), "{html}");
    wait_for("the event recorded as emailed", Duration::from_secs(10), || recorded(&db, placed.id)).await;

    // The same event again, as a relay that died before marking it would
    // publish it: the group handles it and sends nothing.
    let bus = RedisStreams::new(app.shop.kv.clone(), app_partitions());
    bus.publish(Topic::Orders, std::slice::from_ref(&placed)).await.unwrap();
    wait_for("the notifications group caught up", Duration::from_secs(10), || caught_up(&bus)).await;
    assert_eq!(mail_to(&address).await.len(), 1, "a replayed event sends nothing");
}

/// The server's default `MERCATO_EVENT_PARTITIONS`.
fn app_partitions() -> u32 {
    8
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_cancelled_order_emails_its_customer(db: PgPool) {
    let stripe = LocalStripe::start().await;
    let app = TestApp::spawn_seeded_with(db.clone(), 5, |shop| shop.with_payment_settings(stripe.settings())).await;
    let (token, address, order) = checkout(&app).await;
    let cancel = app.client.post(app.url(&format!("/api/v1/orders/{order}/cancel"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(cancel.status(), StatusCode::OK);
    let cancelled = event(&db, order, "order.cancelled").await;

    let mail = wait_for_mail(&address, 2).await;
    let subjects: Vec<&str> = mail.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    let email = mail.iter().find(|m| header(m, "message-id") == message_id(cancelled.id)).expect("an email for the cancel event");
    assert_eq!(email["subject"].as_str(), Some(format!("Your Mercato order {order} has been cancelled").as_str()));
    assert!(email["text"].as_str().unwrap().contains("nothing was charged"));
    assert!(email["html"].as_str().unwrap().contains("has been cancelled"));
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_recorded_event_delivered_again_sends_nothing(db: PgPool) {
    let shop = bare_shop(db.clone()).await;
    let notifier = notifier(&shop, &smtp_url());
    let (order, address) = order_for_new_customer(&shop, "Desk lamp").await;
    let placed = event(&db, order, "order.placed").await;

    notifier.handle(&placed).await.unwrap();
    assert!(recorded(&db, placed.id).await);
    notifier.handle(&placed).await.unwrap();
    // A later email to the same customer: once it is in, anything the
    // second delivery had sent would be in too.
    move_order(&shop, order, OrderStatus::Cancelled).await;
    notifier.handle(&event(&db, order, "order.cancelled").await).await.unwrap();
    let mail = wait_for_mail(&address, 2).await;
    let ids: Vec<&str> = mail.iter().map(|m| header(m, "message-id")).collect();
    assert_eq!(ids.iter().filter(|id| **id == message_id(placed.id)).count(), 1, "one email for the placed event: {ids:?}");
    assert_eq!(mail.len(), 2, "{ids:?}");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_crash_between_sending_and_recording_repeats_the_same_message_at_most(db: PgPool) {
    let shop = bare_shop(db.clone()).await;
    let notifier = notifier(&shop, &smtp_url());
    let (order, address) = order_for_new_customer(&shop, "Desk lamp").await;
    let placed = event(&db, order, "order.placed").await;

    // The first consumer composes and sends, then dies before its commit:
    // nothing is recorded.
    let first = notifier.compose(&placed).await.unwrap().expect("the placed event emails the customer");
    notifier.send(&first).await.unwrap();
    drop(first);
    assert!(!recorded(&db, placed.id).await);

    // The event comes again (the dead consumer never acked it).
    notifier.handle(&placed).await.unwrap();
    assert!(recorded(&db, placed.id).await);
    notifier.handle(&placed).await.unwrap();

    move_order(&shop, order, OrderStatus::Cancelled).await;
    notifier.handle(&event(&db, order, "order.cancelled").await).await.unwrap();
    let mail = wait_for_mail(&address, 3).await;
    let about_placed: Vec<&Value> = mail.iter().filter(|m| m["subject"].as_str().unwrap().ends_with("is placed")).collect();
    assert_eq!(about_placed.len(), 2, "the crash repeated the message once, the recorded delivery sent nothing");
    for m in &about_placed {
        assert_eq!(header(m, "message-id"), message_id(placed.id), "a repeat is the same message");
    }
    assert_eq!(about_placed[0]["text"], about_placed[1]["text"]);
    assert_eq!(about_placed[0]["html"], about_placed[1]["html"]);
    assert_eq!(header(about_placed[0], "date"), header(about_placed[1], "date"), "even the Date is the event's");
    assert_eq!(mail.len(), 3);
}

/// Forwards TCP connections from `listen` to `target` until aborted: an SMTP
/// server this test can take away and bring back on one address.
async fn forward(listen: u16, target: String) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", listen)).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { continue };
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn an_smtp_server_that_is_down_fails_the_handler_records_nothing_and_it_succeeds_once_back(db: PgPool) {
    let shop = bare_shop(db.clone()).await;
    let port = unassigned_port();
    let notifier = notifier(&shop, &format!("smtp://127.0.0.1:{port}"));
    let (order, address) = order_for_new_customer(&shop, "Desk lamp").await;
    let placed = event(&db, order, "order.placed").await;

    let err = notifier.handle(&placed).await.expect_err("no SMTP server: the handler fails");
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    assert!(chain.contains(&format!("the SMTP server at smtp://127.0.0.1:{port} did not take the message")), "{chain}");
    assert!(!recorded(&db, placed.id).await, "a failed send records nothing");

    let maildev_smtp = smtp_url().trim_start_matches("smtp://").split(['/', '?']).next().unwrap().to_owned();
    let proxy = forward(port, maildev_smtp).await;
    notifier.handle(&placed).await.expect("the SMTP server is back");
    assert!(recorded(&db, placed.id).await);
    let mail = wait_for_mail(&address, 1).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(header(&mail[0], "message-id"), message_id(placed.id));
    proxy.abort();
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_product_title_with_markup_is_escaped_in_the_html_part(db: PgPool) {
    let shop = bare_shop(db.clone()).await;
    let notifier = notifier(&shop, &smtp_url());
    let title = "<script>alert(\"pwned\")</script> Lamp & Shade";
    let (order, address) = order_for_new_customer(&shop, title).await;
    notifier.handle(&event(&db, order, "order.placed").await).await.unwrap();

    let mail = wait_for_mail(&address, 1).await;
    let html = mail[0]["html"].as_str().unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; Lamp &amp; Shade"), "{html}");
    assert!(mail[0]["text"].as_str().unwrap().contains(title), "the plain part is not markup and keeps the title");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_shipped_order_names_its_carrier_and_tracking_number(db: PgPool) {
    let shop = bare_shop(db.clone()).await;
    let notifier = notifier(&shop, &smtp_url());

    // Fulfilment puts the parcel in the event's payload.
    let (order, address) = order_for_new_customer(&shop, "Desk lamp").await;
    let mut tx = db.begin().await.unwrap();
    let mut parcel = serde_json::Map::new();
    parcel.insert("carrier".into(), json!("DHL"));
    parcel.insert("tracking_number".into(), json!("JD014600006281"));
    Orders::transition_with(&mut tx, order, OrderStatus::Shipped, parcel).await.unwrap();
    tx.commit().await.unwrap();
    notifier.handle(&event(&db, order, "order.shipped").await).await.unwrap();

    // An older shipped event without it: the order's shipment record tells.
    let (bare, bare_address) = order_for_new_customer(&shop, "Desk lamp").await;
    move_order(&shop, bare, OrderStatus::Shipped).await;
    let seller: Uuid = sqlx::query_scalar("SELECT id FROM sellers ORDER BY id LIMIT 1").fetch_one(&db).await.unwrap();
    sqlx::query("INSERT INTO shipments (order_id, seller_id, state, due_at, carrier, tracking_number) VALUES ($1, $2, 'shipped', now(), 'UPS', '1Z999AA10123456784')")
        .bind(bare)
        .bind(seller)
        .execute(&db)
        .await
        .unwrap();
    notifier.handle(&event(&db, bare, "order.shipped").await).await.unwrap();

    let mail = wait_for_mail(&address, 1).await;
    let shipped = mail.iter().find(|m| m["subject"].as_str().unwrap().ends_with("has shipped")).expect("a shipped email");
    assert!(shipped["text"].as_str().unwrap().contains("Carrier: DHL, tracking number: JD014600006281"), "{shipped:#}");
    assert!(shipped["html"].as_str().unwrap().contains("Carrier: DHL, tracking number: JD014600006281"));
    let mail = wait_for_mail(&bare_address, 1).await;
    let shipped = mail.iter().find(|m| m["subject"].as_str().unwrap().ends_with("has shipped")).expect("a shipped email");
    assert!(shipped["text"].as_str().unwrap().contains("Carrier: UPS, tracking number: 1Z999AA10123456784"), "{shipped:#}");
}

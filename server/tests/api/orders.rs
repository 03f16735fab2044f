//! Orders against real PostgreSQL: the status machine in code and in the
//! database agree on every pair and refuse the same things; every order
//! change commits with its history row and outbox event, or not at all.

use model::order::{OrderItem, OrderStatus};
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use serde_json::json;
use shop::orders::{NewOrder, Orders};
use shop::Shop;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::redis_url;

struct Fixture {
    shop: Shop,
    user: Uuid,
    item: OrderItem,
}

async fn fixture(db: &PgPool) -> Fixture {
    let kv = shop::kv::Kv::connect(&redis_url(), format!("test:{}:", Uuid::new_v4().simple())).await.unwrap();
    let shop = Shop::new(db.clone(), kv);
    shop.catalog().seed(shop::catalog::SeedOptions { products: 3 }).await.unwrap();
    let user = shop
        .accounts()
        .create_user("orders@example.com", "a long enough password", "Orders Test", model::Role::Customer, None)
        .await
        .unwrap()
        .id;
    let (sku_id, product_id, title, unit_cents): (Uuid, Uuid, String, i64) = sqlx::query_as(
        "SELECT s.id, s.product_id, p.title, s.price_cents FROM skus s JOIN products p ON p.id = s.product_id ORDER BY s.id LIMIT 1",
    )
    .fetch_one(db)
    .await
    .unwrap();
    Fixture { shop, user, item: OrderItem { sku_id, product_id, title, quantity: 2, unit_cents } }
}

fn new_order(f: &Fixture) -> NewOrder {
    NewOrder {
        id: Uuid::now_v7(),
        user_id: f.user,
        idempotency_key: Uuid::new_v4().to_string(),
        total_cents: f.item.unit_cents * 2,
        currency: "USD".into(),
        payment_id: Some("pi_test".into()),
        reservation_token: Uuid::new_v4(),
        shipping_address: json!({ "name": "Ada", "line1": "1 Main St", "city": "London", "postal_code": "N1", "country": "GB" }),
        items: vec![f.item.clone()],
    }
}

/// An order placed straight into `status` (along the shortest legal path).
async fn order_in(f: &Fixture, status: OrderStatus) -> Uuid {
    use OrderStatus::*;
    let path: &[OrderStatus] = match status {
        Placed => &[Placed],
        PaymentPending => &[Placed, PaymentPending],
        Confirmed => &[Placed, PaymentPending, Confirmed],
        Shipped => &[Placed, PaymentPending, Confirmed, Shipped],
        Delivered => &[Placed, PaymentPending, Confirmed, Shipped, Delivered],
        Cancelled => &[Placed, Cancelled],
        Refunded => &[Placed, PaymentPending, Confirmed, Shipped, Refunded],
    };
    let order = new_order(f);
    let mut tx = f.shop.db.begin().await.unwrap();
    Orders::insert(&mut tx, &order, path).await.unwrap();
    tx.commit().await.unwrap();
    order.id
}

async fn status_of(db: &PgPool, order: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM orders WHERE id = $1").bind(order).fetch_one(db).await.unwrap()
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn code_and_database_refuse_exactly_the_same_transitions(db: PgPool) {
    let f = fixture(&db).await;
    for from in OrderStatus::ALL {
        for to in OrderStatus::ALL {
            if from == to {
                continue;
            }
            let allowed = from.can_transition_to(to);
            // Written directly, bypassing the shop: the trigger decides.
            let order = order_in(&f, from).await;
            let direct = sqlx::query("UPDATE orders SET status = $2 WHERE id = $1").bind(order).bind(to.as_str()).execute(&db).await;
            assert_eq!(direct.is_ok(), allowed, "database on {from} -> {to}: {direct:?}");
            if let Err(sqlx::Error::Database(err)) = &direct {
                assert!(err.message().contains("illegal order status transition"), "{}", err.message());
            }
            // A history row naming an illegal pair is refused on its own.
            let history = sqlx::query("INSERT INTO order_status_history (order_id, from_status, to_status) VALUES ($1, $2, $3)")
                .bind(order)
                .bind(from.as_str())
                .bind(to.as_str())
                .execute(&db)
                .await;
            assert_eq!(history.is_ok(), allowed, "history on {from} -> {to}");

            // Through the shop: the same answer, and a clear error.
            let order = order_in(&f, from).await;
            let mut tx = db.begin().await.unwrap();
            let result = Orders::transition(&mut tx, order, to).await;
            match (&result, allowed) {
                (Ok(left), true) => assert_eq!(*left, from),
                (Err(shop::Error::Conflict { code: "illegal_transition", message, .. }), false) => {
                    assert!(message.contains(from.as_str()) && message.contains(to.as_str()), "{message}");
                }
                other => panic!("shop on {from} -> {to}: {other:?}"),
            }
            tx.commit().await.unwrap();
            assert_eq!(status_of(&db, order).await, if allowed { to } else { from }.as_str());
        }
    }
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn random_walks_follow_the_status_machine(db: PgPool) {
    let f = fixture(&db).await;
    let handle = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(PropConfig { cases: 64, failure_persistence: None, ..PropConfig::default() });
        runner.run(&prop::collection::vec(0usize..OrderStatus::ALL.len(), 1..12), |walk| {
            handle.block_on(async {
                let order = order_in(&f, OrderStatus::Placed).await;
                let mut model = vec![OrderStatus::Placed];
                for step in walk {
                    let to = OrderStatus::ALL[step];
                    let current = *model.last().unwrap();
                    let mut tx = f.shop.db.begin().await.unwrap();
                    let result = Orders::transition(&mut tx, order, to).await;
                    tx.commit().await.unwrap();
                    prop_assert_eq!(result.is_ok(), current.can_transition_to(to), "{} -> {}", current, to);
                    if result.is_ok() {
                        model.push(to);
                    }
                }
                // The timeline is the walk's accepted steps, in order, and
                // each has its event.
                let view = f.shop.orders().get(f.user, order).await.unwrap();
                let timeline: Vec<OrderStatus> = view.status_history.iter().map(|c| c.status).collect();
                prop_assert_eq!(&timeline, &model);
                let events: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE aggregate_id = $1").bind(order).fetch_one(&f.shop.db).await.unwrap();
                prop_assert_eq!(events as usize, model.len(), "one order.placed, then one event per change");
                Ok(())
            })
        })
    })
    .await
    .unwrap();
    if let Err(err) = outcome {
        panic!("{err}");
    }
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn an_order_change_and_its_outbox_event_commit_together_or_not_at_all(db: PgPool) {
    let f = fixture(&db).await;
    let count = |sql: &'static str, id: Uuid| {
        let db = db.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).bind(id).fetch_one(&db).await.unwrap() }
    };

    // The transaction fails after the order and its event were written.
    let order = new_order(&f);
    let mut tx = db.begin().await.unwrap();
    Orders::insert(&mut tx, &order, &[OrderStatus::Placed, OrderStatus::PaymentPending, OrderStatus::Confirmed]).await.unwrap();
    assert!(sqlx::query("SELECT 1 / 0").execute(&mut *tx).await.is_err(), "the failure after the insert");
    // PostgreSQL answers COMMIT in a failed transaction with a rollback.
    let _ = tx.commit().await;
    assert_eq!(count("SELECT count(*) FROM orders WHERE id = $1", order.id).await, 0);
    assert_eq!(count("SELECT count(*) FROM outbox WHERE aggregate_id = $1", order.id).await, 0, "no event for an order that never was");
    assert_eq!(count("SELECT count(*) FROM order_status_history WHERE order_id = $1", order.id).await, 0);

    // Committed: the order, its three history rows and its event.
    let mut tx = db.begin().await.unwrap();
    Orders::insert(&mut tx, &order, &[OrderStatus::Placed, OrderStatus::PaymentPending, OrderStatus::Confirmed]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count("SELECT count(*) FROM order_status_history WHERE order_id = $1", order.id).await, 3);
    let (event_type, payload): (String, serde_json::Value) =
        sqlx::query_as("SELECT event_type, payload FROM outbox WHERE aggregate_id = $1").bind(order.id).fetch_one(&db).await.unwrap();
    assert_eq!(event_type, "order.placed");
    assert_eq!(payload["status"], "CONFIRMED");

    // A status change rolled back leaves neither the change nor its event.
    let mut tx = db.begin().await.unwrap();
    Orders::transition(&mut tx, order.id, OrderStatus::Cancelled).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(status_of(&db, order.id).await, "CONFIRMED");
    assert_eq!(count("SELECT count(*) FROM outbox WHERE aggregate_id = $1", order.id).await, 1);

    // The same key twice is refused by the database: one order per key.
    let mut tx = db.begin().await.unwrap();
    let again = Orders::insert(&mut tx, &NewOrder { id: Uuid::now_v7(), ..order.clone() }, &[OrderStatus::Placed]).await;
    assert!(again.is_err(), "a second order for one idempotency key");

    // Someone else's order is not found.
    assert!(matches!(f.shop.orders().get(Uuid::new_v4(), order.id).await, Err(shop::Error::NotFound { .. })));
}

/// "My orders" (`GET /api/v1/orders` and the storefront's `/orders`): the
/// customer's own orders only, newest first, in keyset pages whose cursor
/// runs out exactly at the end; another customer's order is not found.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn my_orders_come_newest_first_in_pages_and_only_mine(db: PgPool) {
    let f = fixture(&db).await;
    let mut mine = Vec::new();
    for _ in 0..23 {
        mine.push(order_in(&f, OrderStatus::Confirmed).await);
    }
    let other_user = f
        .shop
        .accounts()
        .create_user("someone-else@example.com", "a long enough password", "Someone Else", model::Role::Customer, None)
        .await
        .unwrap()
        .id;
    let theirs = order_in(&Fixture { shop: f.shop.clone(), user: other_user, item: f.item.clone() }, OrderStatus::Confirmed).await;

    let (mut seen, mut cursor, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = f.shop.orders().list(f.user, 10, cursor).await.unwrap();
        pages += 1;
        assert!(page.orders.len() <= 10);
        seen.extend(page.orders.iter().map(|o| o.order_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // UUIDv7 ids sort by creation time: newest first is descending id.
    mine.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!((pages, seen), (3, mine), "23 orders: 10 + 10 + 3, newest first, each once");
    assert!(matches!(f.shop.orders().get(f.user, theirs).await, Err(shop::Error::NotFound { .. })));
}

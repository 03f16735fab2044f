//! Order transactions around a flash hold that do not commit: one that
//! PostgreSQL rolls back to break a deadlock runs again, one refused after
//! it began confirming gives the hold back to its customer, and one of two
//! tabs failing while the other's is in flight does not hand back a unit
//! the other is selling; one whose set-aside is short fails at its COMMIT.
//! Checkouts waiting their turn in the sale's confirm queue give their
//! place at the gateway back.

use super::*;

/// A second SKU beside the sale's (its id sorts after it), with `stock` units.
async fn regular_sku(s: &Setup, stock: i64) -> Uuid {
    let sku: Uuid = sqlx::query_scalar("SELECT sku_id FROM inventory WHERE sku_id > $1 ORDER BY sku_id LIMIT 1")
        .bind(s.sku)
        .fetch_one(&s.app.shop.db)
        .await
        .unwrap();
    s.app.shop.inventory().set_stock(shop::inventory::SellerScope::Admin, sku, stock).await.unwrap();
    sku
}

/// What an order transaction runs while it waits for the sale's hot rows:
/// its COMMIT, which applies the take from the set-aside (migration
/// `set_aside_takes_at_commit`); with regular lines held in Redis too, the
/// statement that applies it just before their holds are finished.
const HOT_ROWS: &str = "COMMIT";
const HOT_ROWS_MIXED: &str = "SET CONSTRAINTS";

/// The backend waiting on a lock while running a statement that contains `text`.
async fn waiting_on(db: &PgPool, text: &str) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' \
         AND position($1 in query) > 0 ORDER BY pid LIMIT 1",
    )
    .bind(text)
    .fetch_optional(db)
    .await
    .unwrap()
}

/// Waits until a backend waits on a lock in a statement containing `text`; its pid.
async fn wait_until_waiting(db: &PgPool, what: &str, text: &str) -> i32 {
    wait_for(what, Duration::from_secs(30), || async { waiting_on(db, text).await.is_some() }).await;
    waiting_on(db, text).await.unwrap()
}

/// A checkout running on its own (fresh key), so the test can act while it waits.
fn spawn_checkout(app: &TestApp, token: &str) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let (client, url, token, key) = (app.client.clone(), app.url("/api/v1/checkout"), token.to_owned(), Uuid::new_v4().to_string());
    tokio::spawn(async move { checkout_with(&client, &url, &token, &key, "pm_card_visa", None).await })
}

/// The customer's hold in the sale's Redis hash ("user qty expiry state [n]"), if any.
async fn hold(app: &TestApp, sale: Uuid, user: Uuid) -> Option<String> {
    let mut conn = app.shop.kv.conn();
    let token: Option<String> = redis::cmd("HGET")
        .arg(app.shop.kv.key(&format!("flash:{{{sale}}}:byuser")))
        .arg(user.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    let token = token?;
    redis::cmd("HGET").arg(app.shop.kv.key(&format!("flash:{{{sale}}}:holds"))).arg(token).query_async(&mut conn).await.unwrap()
}

async fn user_id(app: &TestApp, token: &str) -> Uuid {
    app.shop.accounts().authenticate(token).await.unwrap().unwrap().id
}

fn is_deadlock(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("40P01"))
}

/// The known cycle: a checkout of a regular SKU and a flash unit takes the
/// regular row first and the sale's hot rows last, while shipping an order
/// of both SKUs takes them in SKU order (the flash SKU's first here).
/// Another transaction does exactly that; PostgreSQL breaks the cycle by
/// rolling one side back. When it picks the checkout, the card is already
/// authorized: the checkout must run its order transaction again and
/// answer 201, not void the card and refuse the customer.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_mixed_checkout_that_loses_a_deadlock_runs_its_order_again(db: PgPool) {
    let s = setup(db, 10).await;
    let regular = regular_sku(&s, 10).await;
    let sale = id(&create_sale(&s, 3, 1, chrono::Duration::seconds(1), chrono::Duration::minutes(10)).await);
    let customers = s.app.shop.accounts().create_load_test_users(3, "load-test-password").await.unwrap();
    wait_open(&s.app, sale).await;
    let db = &s.app.shop.db;

    // PostgreSQL rolls back whichever side checks for the deadlock first
    // (deadlock_timeout after it began to wait): normally the checkout,
    // which waited first. A round where the other side lost proves
    // nothing and is played again with the next customer.
    let mut proven = None;
    for (round, customer) in customers.iter().enumerate() {
        assert_eq!(buy(&s.app, &s.app.client, customer, sale, 1).await.0, StatusCode::OK);
        let customer_id = user_id(&s.app, customer).await;
        s.app.shop.cart().add(&shop::cart::Owner::User(customer_id), regular, 2).await.unwrap();

        let mut shipping = db.begin().await.unwrap();
        sqlx::query("SELECT 1 FROM inventory WHERE sku_id = $1 FOR UPDATE").bind(s.sku).execute(&mut *shipping).await.unwrap();
        let checkout = spawn_checkout(&s.app, customer);
        // The checkout holds the regular row and waits for the hot rows.
        wait_until_waiting(db, "the checkout waits for the flash SKU's row", HOT_ROWS_MIXED).await;
        let second = sqlx::query("SELECT 1 FROM inventory WHERE sku_id = $1 FOR UPDATE").bind(regular).execute(&mut *shipping).await;
        let checkout_lost = match second {
            Ok(_) => true,
            Err(err) if is_deadlock(&err) => false,
            Err(err) => panic!("round {round}: {err}"),
        };
        shipping.rollback().await.unwrap();
        let (status, placed) = checkout.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "round {round} (checkout chosen as the victim: {checkout_lost}): {placed}");
        if checkout_lost {
            proven = Some((customer_id, placed));
            break;
        }
        eprintln!("round {round}: PostgreSQL rolled back the other transaction; playing again");
    }
    let (customer_id, placed) = proven.expect("in three rounds PostgreSQL never chose the checkout as the deadlock's victim");

    // One order, both lines, the flash unit sold once, one authorization
    // and nothing voided.
    let order: Uuid = placed["order_id"].as_str().unwrap().parse().unwrap();
    let lines: Vec<(Uuid, i32, i64)> = sqlx::query_as("SELECT sku_id, quantity, unit_cents FROM order_items WHERE order_id = $1 ORDER BY sku_id")
        .bind(order)
        .fetch_all(db)
        .await
        .unwrap();
    assert_eq!(lines.iter().map(|l| (l.0, l.1)).collect::<Vec<_>>(), vec![(s.sku, 1), (regular, 2)]);
    assert_eq!(lines[0].2, 999, "the flash line at the sale's price");
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM flash_outcomes WHERE order_id = $1").bind(order).fetch_one(db).await.unwrap();
    assert_eq!(outcome, "confirmed");
    assert!(hold(&s.app, sale, customer_id).await.is_none(), "the hold finished as sold");
    let payment: String = sqlx::query_scalar("SELECT payment_id FROM orders WHERE id = $1").bind(order).fetch_one(db).await.unwrap();
    let intents = s.stripe.intents().await;
    let authorized: Vec<&str> = intents.iter().filter(|pi| pi["status"] == "requires_capture").map(|pi| pi["id"].as_str().unwrap()).collect();
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(db).await.unwrap();
    assert_eq!(authorized.len() as i64, orders, "one authorization per order: {intents:?}");
    assert!(authorized.contains(&payment.as_str()));
    assert!(intents.iter().all(|pi| pi["status"] != "canceled"), "nothing was voided: {intents:?}");
    let (_, reserved, held, _) = stock(&s.app, s.sku).await;
    assert_eq!((reserved, held), (orders as i32, 3 - orders as i32), "each sold unit moved once from the set-aside");
}

/// A checkout refused inside its order transaction (a regular line's price
/// changed under a stale cache) has already begun confirming the flash
/// hold. The hold must go back to its customer for the rest of its payment
/// window, not wait out the confirmation grace and then go to the line:
/// the customer accepts the new total and buys the unit.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_checkout_refused_after_it_began_confirming_leaves_the_hold_to_its_customer(db: PgPool) {
    let grace = Duration::from_millis(300);
    let s = setup_with(db, 10, shop::flash::Settings { confirm_grace: grace, ..settings() }).await;
    let regular = regular_sku(&s, 10).await;
    let sale = id(&create_sale(&s, 1, 1, chrono::Duration::seconds(1), chrono::Duration::minutes(10)).await);
    let customer = &s.app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap()[0];
    let customer_id = user_id(&s.app, customer).await;
    wait_open(&s.app, sale).await;
    assert_eq!(buy(&s.app, &s.app.client, customer, sale, 1).await.0, StatusCode::OK);
    s.app.shop.cart().add(&shop::cart::Owner::User(customer_id), regular, 1).await.unwrap();
    // The price moves in PostgreSQL behind the cache the cart reads.
    let now_cents: i64 = sqlx::query_scalar("UPDATE skus SET price_cents = price_cents + 100 WHERE id = $1 RETURNING price_cents")
        .bind(regular)
        .fetch_one(&s.app.shop.db)
        .await
        .unwrap();

    let (status, refused) = checkout_once(&s.app, customer, &Uuid::new_v4().to_string(), "pm_card_visa").await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::CONFLICT, Some("price_changed")), "{refused}");
    let refused_at = tokio::time::Instant::now();
    let state = hold(&s.app, sale, customer_id).await.expect("the hold is still there");
    assert!(state.ends_with(" held"), "the hold is its customer's again at once: {state}");

    // Past the grace, the sweeper leaves it alone: it is in its payment window.
    wait_for("the confirmation grace to pass", grace * 10, || async { refused_at.elapsed() > grace * 2 }).await;
    s.app.shop.flash().tick().await.unwrap();
    let state = hold(&s.app, sale, customer_id).await.expect("the hold outlived the grace");
    assert!(state.ends_with(" held"), "{state}");

    let total = 999 + now_cents;
    assert_eq!(refused["total_cents"], total, "the refusal names the new total");
    let (status, placed) =
        checkout_with(&s.app.client, &s.app.url("/api/v1/checkout"), customer, &Uuid::new_v4().to_string(), "pm_card_visa", Some(total)).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    assert_eq!(placed["total_cents"], total);
    assert_eq!(units_per_customer(&s.app.shop.db, s.sku).await, vec![(customer_id, 1)]);
    assert!(hold(&s.app, sale, customer_id).await.is_none(), "the hold finished as sold");
}

/// Two tabs of one customer check out the same hold. The first's order
/// transaction waits on the sale's hot row; the second begins confirming
/// and waits on the first's outcome row; then the first fails (its
/// statement is cancelled). The second goes on and sells the unit. The
/// first's failure must not make the hold `held` again while the second
/// is in flight: the second's finish would then find no confirmation to
/// end, and the sweeper would hand a sold unit back to the sale.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_second_tab_failing_while_the_first_confirms_does_not_free_the_unit(db: PgPool) {
    let s = setup(db, 10).await;
    let sale = id(&create_sale(&s, 1, 1, chrono::Duration::seconds(1), chrono::Duration::minutes(10)).await);
    let customer = &s.app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap()[0];
    let customer_id = user_id(&s.app, customer).await;
    wait_open(&s.app, sale).await;
    assert_eq!(buy(&s.app, &s.app.client, customer, sale, 1).await.0, StatusCode::OK);
    let db = &s.app.shop.db;

    // Something holds the sale's set-aside row (its token is the sale's id).
    let mut blocker = db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM inventory_reservations WHERE token = $1 FOR UPDATE").bind(sale).execute(&mut *blocker).await.unwrap();
    let first = spawn_checkout(&s.app, customer);
    let first_pid = wait_until_waiting(db, "the first tab waits on the hot row", HOT_ROWS).await;
    let second = spawn_checkout(&s.app, customer);
    wait_until_waiting(db, "the second tab waits on the first's outcome", "flash_outcomes").await;
    let state = hold(&s.app, sale, customer_id).await.unwrap();
    assert!(state.ends_with(" confirming 2"), "both tabs confirm the hold: {state}");

    // The first tab's transaction fails.
    let cancelled: bool = sqlx::query_scalar("SELECT pg_cancel_backend($1)").bind(first_pid).fetch_one(db).await.unwrap();
    assert!(cancelled);
    let (status, failed) = first.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{failed}");
    let state = hold(&s.app, sale, customer_id).await.unwrap();
    assert!(state.ends_with(" confirming 1"), "the second tab still confirms it: {state}");

    // The second reaches the hot row, which is then let go.
    wait_until_waiting(db, "the second tab waits on the hot row", HOT_ROWS).await;
    blocker.rollback().await.unwrap();
    let (status, placed) = second.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    assert!(hold(&s.app, sale, customer_id).await.is_none(), "the hold finished as sold, not left for the sweeper to hand back");
    let left: i64 = redis::cmd("HGET")
        .arg(s.app.shop.kv.key(&format!("flash:{{{sale}}}:meta")))
        .arg("left")
        .query_async(&mut s.app.shop.kv.conn())
        .await
        .unwrap();
    assert_eq!(left, 0, "the sold unit is not the sale's again");
    assert_eq!(units_per_customer(db, s.sku).await, vec![(customer_id, 1)]);
}

/// PostgreSQL's set-aside has the last word on what a sale sells: a
/// checkout whose unit Redis held but the set-aside no longer has (taken
/// here behind Redis's back) is refused `out_of_stock` by the COMMIT that
/// applies the take. Nothing is sold or moved, and the authorization is
/// voided.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_set_aside_short_of_the_units_refuses_the_order_at_its_commit(db: PgPool) {
    let s = setup(db, 10).await;
    let sale = id(&create_sale(&s, 1, 1, chrono::Duration::seconds(1), chrono::Duration::minutes(10)).await);
    let customer = &s.app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap()[0];
    wait_open(&s.app, sale).await;
    assert_eq!(buy(&s.app, &s.app.client, customer, sale, 1).await.0, StatusCode::OK);
    let db = &s.app.shop.db;
    let emptied = sqlx::query("UPDATE inventory_reservations SET lines = jsonb_set(lines, '{0,quantity}', '0') WHERE token = $1")
        .bind(sale)
        .execute(db)
        .await
        .unwrap();
    assert_eq!(emptied.rows_affected(), 1, "the sale's set-aside");
    let before = stock(&s.app, s.sku).await;

    let (status, refused) = checkout_once(&s.app, customer, &Uuid::new_v4().to_string(), "pm_card_visa").await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::CONFLICT, Some("out_of_stock")), "{refused}");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(db).await.unwrap();
    assert_eq!(orders, 0);
    let sold: i64 = sqlx::query_scalar("SELECT count(*) FROM flash_outcomes WHERE sale_id = $1 AND outcome = 'confirmed'")
        .bind(sale)
        .fetch_one(db)
        .await
        .unwrap();
    assert_eq!(sold, 0);
    let after = stock(&s.app, s.sku).await;
    assert_eq!((after.0, after.1, after.2), (before.0, before.1, before.2), "no unit moved (stock, reserved, held)");
    let takes: i64 = sqlx::query_scalar("SELECT count(*) FROM inventory_set_aside_takes").fetch_one(db).await.unwrap();
    assert_eq!(takes, 0, "no take outlives its transaction");
    let intents = s.stripe.intents().await;
    assert!(!intents.is_empty() && intents.iter().all(|pi| pi["status"] == "canceled"), "the authorization was voided: {intents:?}");
}

/// Checkouts waiting for their turn in the sale's confirm queue are not
/// working, so they give their place at the gateway back, and so does a
/// resend of a checkout still running (a client after a 504). With room for
/// two requests in flight and one order transaction of the sale at a time,
/// that one blocked on the sale's hot row, its resend waits for it, three
/// more checkouts queue one after the other, and the shop still answers
/// another shopper; kept, the second checkout would be refused 503
/// `overloaded`.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn checkouts_waiting_their_turn_leave_the_gateway_to_others(db: PgPool) {
    let flash = shop::flash::Settings { confirm_concurrency: 1, ..settings() };
    let s = setup_configured(db, 10, flash, |config| config.max_in_flight = 2).await;
    let sale = id(&create_sale(&s, 4, 1, chrono::Duration::seconds(1), chrono::Duration::minutes(10)).await);
    let customers = s.app.shop.accounts().create_load_test_users(4, "load-test-password").await.unwrap();
    wait_open(&s.app, sale).await;
    for token in &customers {
        assert_eq!(buy(&s.app, &s.app.client, token, sale, 1).await.0, StatusCode::OK);
    }
    let (app, db) = (&s.app, &s.app.shop.db);
    // Patient: the first checkout waits while three more queue and are placed.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let send_checkout = |token: &str, key: &str| {
        let (client, url, token, key) = (client.clone(), app.url("/api/v1/checkout"), token.to_owned(), key.to_owned());
        tokio::spawn(async move { checkout_with(&client, &url, &token, &key, "pm_card_visa", None).await })
    };
    let spawn_checkout = |token: &str| send_checkout(token, &Uuid::new_v4().to_string());

    // The first checkout takes the queue's one turn and waits on the hot row,
    // working (its permit held).
    let mut blocker = db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM inventory_reservations WHERE token = $1 FOR UPDATE").bind(sale).execute(&mut *blocker).await.unwrap();
    let first_key = Uuid::new_v4().to_string();
    let first = send_checkout(&customers[0], &first_key);
    wait_until_waiting(db, "the first checkout waits on the hot row", HOT_ROWS).await;

    // Its resend waits for it, parked.
    let resent = send_checkout(&customers[0], &first_key);
    wait_for("the resend waits for the first", Duration::from_secs(30), || async { app.shop.checkouts.waiting() == 1 || resent.is_finished() }).await;
    if resent.is_finished() {
        let (status, body) = resent.await.unwrap();
        panic!("the resend answered {status} before the first request did: {body}");
    }

    // Each of the others gets in and queues for its turn.
    let mut queued = Vec::new();
    for (n, token) in customers[1..].iter().enumerate() {
        let checkout = spawn_checkout(token);
        let waiting = &checkout;
        wait_for("the checkout queues for its turn", Duration::from_secs(30), || async move {
            app.shop.flash().confirm_waiters() == n + 1 || waiting.is_finished()
        })
        .await;
        if checkout.is_finished() {
            let (status, body) = checkout.await.unwrap();
            panic!("checkout {} answered {status} while the others waited their turn: {body}", n + 2);
        }
        queued.push(checkout);
    }
    let (status, page) = get(app, None, &format!("/api/v1/flash-sales/{sale}")).await;
    assert_eq!(status, StatusCode::OK, "a shopper is served while three checkouts queue: {page}");

    // The hot row free, every checkout gets its turn and its order.
    blocker.rollback().await.unwrap();
    let (status, placed) = first.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let (status, replayed) = resent.await.unwrap();
    assert_eq!((status, &replayed["order_id"]), (StatusCode::CREATED, &placed["order_id"]), "the resend answers as the first did: {replayed}");
    for checkout in queued {
        let (status, placed) = checkout.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{placed}");
    }
    assert_eq!((app.shop.flash().confirm_waiters(), app.shop.checkouts.waiting()), (0, 0));
    let mut expected = Vec::new();
    for token in &customers {
        expected.push((user_id(app, token).await, 1));
    }
    let mut sold = units_per_customer(db, s.sku).await;
    sold.sort();
    expected.sort();
    assert_eq!(sold, expected);
}

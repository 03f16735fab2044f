//! Events: outbox → relay → bus → consumers (invariants 5 and 8). Every test
//! has its own database and Redis key prefix; the ones that only exercise
//! the bus and the relay build them directly, without a server, so no
//! background relay races the one under test.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use server::workers::consumer::{Consumer, Handler, Settings};
use shop::events::outbox::Relay;
use shop::events::redis_streams::RedisStreams;
use shop::events::{dedup, Event, EventBus, Topic};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{redis_url, wait_for, LocalRedis, TestApp};

/// The server's default (`MERCATO_EVENT_PARTITIONS`): tests that read what
/// the app's relay published must agree with it.
const APP_PARTITIONS: u32 = 8;

async fn shop_on(db: PgPool, redis_url: &str) -> shop::Shop {
    let prefix = format!("test:{}:", Uuid::new_v4().simple());
    let kv = shop::kv::Kv::connect(redis_url, prefix).await.expect("Redis is reachable at REDIS_URL");
    shop::Shop::new(db, kv)
}

fn bus(shop: &shop::Shop, partitions: u32) -> Arc<RedisStreams> {
    Arc::new(RedisStreams::new(shop.kv.clone(), partitions))
}

/// Records one event in its own committed transaction.
async fn record(db: &PgPool, aggregate: Uuid, event_type: &str, n: usize) -> Uuid {
    let mut tx = db.begin().await.unwrap();
    let id = shop::events::record(&mut tx, "order", aggregate, event_type, json!({ "order_id": aggregate, "n": n })).await.unwrap();
    tx.commit().await.unwrap();
    id
}

async fn backlog(db: &PgPool) -> i64 {
    shop::events::outbox::backlog(db).await.unwrap().rows
}

/// Every entry's event id on every partition of `topic`, in stream order.
async fn published_ids(shop: &shop::Shop, bus: &RedisStreams, topic: Topic) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for partition in 0..bus.partitions() {
        let entries: Vec<(String, HashMap<String, String>)> =
            redis::cmd("XRANGE").arg(bus.stream_key(topic, partition)).arg("-").arg("+").query_async(&mut shop.kv.conn()).await.unwrap();
        ids.extend(entries.into_iter().map(|(_, fields)| fields["id"].parse::<Uuid>().unwrap()));
    }
    ids
}


/// Runs `consumer` one pass at a time until `done`; fails after 10 s.
async fn step_until<H, F, Fut>(consumer: &mut Consumer<H>, what: &str, mut done: F)
where
    H: Handler,
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        consumer.step().await.unwrap();
        if done().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
    }
}

/// Runs relay rounds until the outbox is empty.
async fn drain(relay: &Relay, db: &PgPool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while backlog(db).await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the outbox never drained");
        relay.round().await.unwrap();
    }
}

fn settings() -> Settings {
    Settings { batch: 50, claim_idle: Duration::from_secs(30), retry_after: Duration::from_millis(20) }
}

/// A handler whose effect is a row in PostgreSQL, made once per event id
/// through `shop::events::dedup` in the same transaction.
struct CountingEffect {
    db: PgPool,
}

impl Handler for CountingEffect {
    async fn handle(&self, event: &Event) -> shop::Result<()> {
        let mut tx = self.db.begin().await?;
        if dedup::first_time(&mut tx, "test-effects", event.id).await? {
            sqlx::query("INSERT INTO test_effects (event_id) VALUES ($1)").bind(event.id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Remembers what it was given; fails every time for `poison`.
#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<Uuid>>>,
    handled: Arc<Mutex<Vec<Uuid>>>,
    poison: Option<Uuid>,
}

impl Recorder {
    fn calls_for(&self, id: Uuid) -> usize {
        self.calls.lock().unwrap().iter().filter(|c| **c == id).count()
    }
    fn handled(&self) -> Vec<Uuid> {
        self.handled.lock().unwrap().clone()
    }
}

impl Handler for Recorder {
    async fn handle(&self, event: &Event) -> shop::Result<()> {
        self.calls.lock().unwrap().push(event.id);
        if Some(event.id) == self.poison {
            return Err(shop::Error::Invalid(format!("poison: {} cannot be handled", event.id)));
        }
        self.handled.lock().unwrap().push(event.id);
        Ok(())
    }
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_relay_killed_between_publish_and_mark_publishes_again_and_consumers_see_each_event_once(db: PgPool) {
    let shop = shop_on(db.clone(), &redis_url()).await;
    let bus = bus(&shop, 4);
    sqlx::query("CREATE TABLE test_effects (event_id uuid NOT NULL)").execute(&db).await.unwrap();
    let mut recorded = HashSet::new();
    for n in 0..20 {
        recorded.insert(record(&db, Uuid::now_v7(), "order.placed", n).await);
    }

    // The first relay publishes, then dies before it marks anything.
    let (published_tx, published_rx) = tokio::sync::oneshot::channel::<()>();
    let published_tx = Arc::new(Mutex::new(Some(published_tx)));
    let dying = Relay::new(db.clone(), bus.clone(), 500).with_fault_hook(Arc::new(move || {
        let signal = published_tx.lock().unwrap().take();
        Box::pin(async move {
            if let Some(signal) = signal {
                let _ = signal.send(());
            }
            std::future::pending::<()>().await
        })
    }));
    let round = tokio::spawn(async move { dying.round().await });
    published_rx.await.expect("the relay reached the point between publish and mark");
    round.abort();
    let _ = round.await;
    let first: HashSet<Uuid> = published_ids(&shop, &bus, Topic::Orders).await.into_iter().collect();
    assert_eq!(first, recorded, "everything was on the bus before the crash");

    // Restarted: nothing was marked, so everything goes out again, same ids.
    wait_for("the dead relay's transaction rolled back", Duration::from_secs(5), || async { backlog(&db).await == 20 }).await;
    drain(&Relay::new(db.clone(), bus.clone(), 500), &db).await;
    let ids = published_ids(&shop, &bus, Topic::Orders).await;
    assert_eq!(ids.len(), 40, "each event twice");
    let mut times: HashMap<Uuid, usize> = HashMap::new();
    for id in &ids {
        *times.entry(*id).or_default() += 1;
    }
    assert!(times.values().all(|n| *n == 2), "duplicates carry the same event id: {times:?}");
    assert_eq!(times.keys().copied().collect::<HashSet<_>>(), recorded);

    // A deduplicating consumer makes each effect once.
    let mut consumer = Consumer::new(bus.clone(), Topic::Orders, "effects", CountingEffect { db: db.clone() }, settings());
    step_until(&mut consumer, "the consumer took every delivery", || async {
        bus.lag(Topic::Orders).await.unwrap().iter().all(|g| g.pending + g.undelivered == 0)
    })
    .await;
    let effects: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM test_effects").fetch_all(&db).await.unwrap();
    assert_eq!(effects.len(), 20, "one effect per event, not per delivery");
    assert_eq!(effects.into_iter().collect::<HashSet<_>>(), recorded);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn two_relays_at_once_never_publish_one_row_twice(db: PgPool) {
    let shop = shop_on(db.clone(), &redis_url()).await;
    let bus = bus(&shop, 4);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let relays: Vec<_> = (0..2)
        .map(|_| {
            let relay = Relay::new(db.clone(), bus.clone(), 7);
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    relay.round().await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut recorded = HashSet::new();
    for n in 0..300 {
        recorded.insert(record(&db, Uuid::now_v7(), "order.placed", n).await);
    }
    wait_for("both relays drained the outbox", Duration::from_secs(20), || async { backlog(&db).await == 0 }).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for relay in relays {
        relay.await.unwrap();
    }
    let ids = published_ids(&shop, &bus, Topic::Orders).await;
    let distinct: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(distinct, recorded, "every row published");
    assert_eq!(ids.len(), 300, "and none twice ({} entries for 300 rows)", ids.len());
}

fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn metrics(app: &TestApp) -> String {
    app.get("/metrics").await.text().await.unwrap()
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_bus_that_is_down_leaves_a_backlog_that_drains_when_it_returns(db: PgPool) {
    let mut redis = LocalRedis::start().await;
    let app = TestApp::spawn_with_redis(db.clone(), &redis.url()).await;
    let bus = bus(&app.shop, APP_PARTITIONS);

    redis.stop().await;
    let mut recorded = HashSet::new();
    for n in 0..30 {
        recorded.insert(record(&db, Uuid::now_v7(), "order.placed", n).await);
    }
    wait_for("the backlog shows in /metrics", Duration::from_secs(10), || async {
        let body = metrics(&app).await;
        metric(&body, "mercato_outbox_backlog") == Some(30.0) && metric(&body, "mercato_outbox_oldest_unpublished_seconds").is_some_and(|s| s > 0.0)
    })
    .await;
    // Still there a moment later: nothing is marked while the bus is down.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(backlog(&db).await, 30);

    redis.restart().await;
    for n in 30..40 {
        recorded.insert(record(&db, Uuid::now_v7(), "order.placed", n).await);
    }
    wait_for("the backlog drained", Duration::from_secs(20), || async { metric(&metrics(&app).await, "mercato_outbox_backlog") == Some(0.0) }).await;
    let published: HashSet<Uuid> = published_ids(&app.shop, &bus, Topic::Orders).await.into_iter().collect();
    assert_eq!(published, recorded, "every event written while the bus was down reached it");
    assert!(metric(&metrics(&app).await, "mercato_events_published_total").is_some_and(|n| n >= 40.0));
}

/// Fails with "dependency down" for its first `outage` calls, then works.
#[derive(Clone)]
struct Flaky {
    calls: Arc<Mutex<Vec<Uuid>>>,
    outage: usize,
}

impl Handler for Flaky {
    async fn handle(&self, event: &Event) -> shop::Result<()> {
        let mut calls = self.calls.lock().unwrap();
        calls.push(event.id);
        if calls.len() <= self.outage {
            return Err(shop::Error::Unavailable {
                dependency: shop::error::Dependency::Mail,
                retry_after: Duration::from_secs(1),
                source: "the SMTP server is down".into(),
            });
        }
        Ok(())
    }
}

/// A dependency that is down is not the event's fault: however many times
/// the handler meets the outage, the event is not dead-lettered; it waits,
/// and is handled once the dependency answers, with the events behind it.
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn an_outage_of_a_handlers_dependency_never_dead_letters_its_events(db: PgPool) {
    let shop = shop_on(db.clone(), &redis_url()).await;
    let bus = bus(&shop, 1);
    let order = Uuid::now_v7();
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(record(&db, order, "order.confirmed", n).await);
    }
    drain(&Relay::new(db.clone(), bus.clone(), 500), &db).await;
    let handler = Flaky { calls: Arc::default(), outage: 5 };
    let running = tokio::spawn(Consumer::new(bus.clone(), Topic::Orders, "test-outage", handler.clone(), settings()).run());
    wait_for("every event handled after the outage", Duration::from_secs(30), || async {
        let calls = handler.calls.lock().unwrap();
        ids.iter().all(|id| calls.get(5..).unwrap_or_default().contains(id))
    })
    .await;
    running.abort();
    let calls = handler.calls.lock().unwrap().clone();
    assert!(calls[..6].iter().all(|id| *id == ids[0]), "the first event waited out the outage, the others behind it: {calls:?}");
    assert_eq!(bus.dead_letter_count(Topic::Orders).await.unwrap(), 0, "nothing dead-lettered for an outage");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_poison_event_is_dead_lettered_after_three_tries_and_the_events_behind_it_flow(db: PgPool) {
    use model::account::Role;
    // Demo accounts need the demo catalog (the seller owns its shop).
    let app = TestApp::spawn_seeded(db.clone(), 3).await;
    let bus = bus(&app.shop, APP_PARTITIONS);
    let order = Uuid::now_v7();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(record(&db, order, "order.confirmed", n).await);
    }
    let poison = ids[1];
    let recorder = Recorder { poison: Some(poison), ..Recorder::default() };
    // A group of the test's own: the server's real consumers (warehouse,
    // notifications) read these events in their own groups.
    let consumer = Consumer::new(bus.clone(), Topic::Orders, "test-poison", recorder.clone(), settings());
    let running = tokio::spawn(consumer.run());

    wait_for("the poison event was dead-lettered", Duration::from_secs(15), || async { bus.dead_letter_count(Topic::Orders).await.unwrap() == 1 }).await;
    wait_for("the events behind it were handled", Duration::from_secs(15), || async { recorder.handled().len() == 4 }).await;
    running.abort();
    assert_eq!(recorder.calls_for(poison), 3, "exactly three tries");
    let behind: Vec<Uuid> = ids.iter().copied().filter(|id| *id != poison).collect();
    assert_eq!(recorder.handled(), behind, "same partition, still in order, not blocked");

    let dead = bus.dead_letters(Topic::Orders, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].event.id, dead[0].group.as_str(), dead[0].attempts), (poison, "test-poison", 3));
    assert!(dead[0].error.contains("poison"), "{}", dead[0].error);

    let body = metrics(&app).await;
    assert_eq!(metric(&body, "mercato_events_dead_letters_total{topic=\"order-events\"}"), Some(1.0), "{body}");

    app.shop.accounts().seed_demo().await.unwrap();
    let token = |role: Role| {
        let app = &app;
        async move {
            let (_, email, password, _) = shop::accounts::DEMO_ACCOUNTS.into_iter().find(|(r, ..)| *r == role).unwrap();
            let response = app.client.post(app.url("/api/v1/auth/login")).json(&json!({ "email": email, "password": password })).send().await.unwrap();
            response.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
        }
    };
    let list = |token: String| app.client.get(app.url("/api/v1/admin/dead-letters")).bearer_auth(token).send();
    assert_eq!(list(token(Role::Seller).await).await.unwrap().status(), 403);
    assert_eq!(list(token(Role::Customer).await).await.unwrap().status(), 403);
    let response = list(token(Role::Admin).await).await.unwrap();
    assert_eq!(response.status(), 200);
    let listed: Value = response.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    let item = &listed["items"][0];
    assert_eq!((item["event"]["id"].clone(), item["group"].clone(), item["attempts"].clone()), (json!(poison), json!("test-poison"), json!(3)));
    assert_eq!((item["topic"].clone(), item["event"]["type"].clone()), (json!("order-events"), json!("order.confirmed")));
    assert!(item["error"].as_str().unwrap().contains("poison"), "{item}");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_consumer_that_dies_holding_events_hands_them_over_after_the_idle_time(db: PgPool) {
    let shop = shop_on(db.clone(), &redis_url()).await;
    let bus = bus(&shop, 4);
    bus.subscribe(Topic::Orders, "mailer").await.unwrap();
    let mut recorded = HashSet::new();
    for n in 0..10 {
        recorded.insert(record(&db, Uuid::now_v7(), "order.placed", n).await);
    }
    drain(&Relay::new(db.clone(), bus.clone(), 500), &db).await;

    // This consumer reads everything and dies without an ack.
    let held = bus.read(Topic::Orders, "mailer", "dies", 100, Duration::from_secs(1)).await.unwrap();
    assert_eq!(held.len(), 10);

    let recorder = Recorder::default();
    let idle = Duration::from_millis(400);
    let mut survivor = Consumer::new(bus.clone(), Topic::Orders, "mailer", recorder.clone(), Settings { claim_idle: idle, ..settings() });
    let started = std::time::Instant::now();
    survivor.step().await.unwrap();
    assert!(recorder.handled().is_empty(), "held events are not taken before the idle time");
    step_until(&mut survivor, "the survivor took them over", || async { recorder.handled().len() == 10 }).await;
    assert!(started.elapsed() >= idle);
    assert_eq!(recorder.handled().into_iter().collect::<HashSet<_>>(), recorded);
    let lag = bus.lag(Topic::Orders).await.unwrap();
    assert_eq!((lag[0].pending, lag[0].undelivered), (0, 0), "all acked by the survivor");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn one_aggregates_events_are_delivered_in_the_order_recorded(db: PgPool) {
    let shop = shop_on(db.clone(), &redis_url()).await;
    let bus = bus(&shop, 4);
    let order = Uuid::now_v7();
    // Ids drawn up front and used newest first: as if each commit came from
    // a process whose clock is behind the last one's. Recording order is
    // what must survive, not id order.
    let mut ids: Vec<Uuid> = (0..30).map(|_| Uuid::now_v7()).collect();
    ids.reverse();
    for (n, id) in ids.iter().enumerate() {
        sqlx::query("INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload) VALUES ($1, 'order', $2, 'order.confirmed', $3)")
            .bind(id)
            .bind(order)
            .bind(json!({ "n": n }))
            .execute(&db)
            .await
            .unwrap();
        // Other orders' events in between, in other partitions or the same.
        record(&db, Uuid::now_v7(), "order.placed", n).await;
    }
    // Small batches: the aggregate's events span many rounds.
    drain(&Relay::new(db.clone(), bus.clone(), 7), &db).await;

    let recorder = Recorder::default();
    let mut consumer = Consumer::new(bus.clone(), Topic::Orders, "analytics", recorder.clone(), Settings { batch: 5, ..settings() });
    step_until(&mut consumer, "every event handled", || async { recorder.handled().len() == 60 }).await;
    let mine: Vec<Uuid> = recorder.handled().into_iter().filter(|id| ids.contains(id)).collect();
    assert_eq!(mine, ids, "the order's events arrive in the order they were recorded");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn consumer_lag_per_group_shows_in_metrics(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let bus = bus(&app.shop, APP_PARTITIONS);
    bus.subscribe(Topic::Orders, "lagging").await.unwrap();
    bus.subscribe(Topic::Orders, "idle").await.unwrap();
    for n in 0..7 {
        record(&db, Uuid::now_v7(), "order.placed", n).await;
    }
    wait_for("the app's relay published them", Duration::from_secs(10), || async { backlog(&db).await == 0 }).await;
    let got = bus.read(Topic::Orders, "lagging", "slow", 3, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got.len(), 3);

    let body = metrics(&app).await;
    let series = |name: &str, group: &str| metric(&body, &format!("{name}{{topic=\"order-events\",group=\"{group}\"}}"));
    assert_eq!(series("mercato_events_consumer_lag", "lagging"), Some(7.0), "3 pending + 4 undelivered:\n{body}");
    assert_eq!(series("mercato_events_consumer_pending", "lagging"), Some(3.0));
    assert_eq!(series("mercato_events_consumer_lag", "idle"), Some(7.0));
    assert_eq!(series("mercato_events_consumer_pending", "idle"), Some(0.0));
    assert_eq!(metric(&body, "mercato_events_published_total"), Some(7.0));
    assert_eq!(metric(&body, "mercato_outbox_backlog"), Some(0.0));
}

//! Order commit → confirmation email in maildev (bench/notifications.sh).
//! Writes ORDERS orders as checkout writes them (order, items, history and
//! the `order.placed` outbox row in one transaction), RATE per second, while
//! one relay and one `notifications` consumer run as in a server (relay
//! every 100 ms, the server's default). Each latency runs from right after
//! the order's COMMIT returned to the moment the handler returned: maildev
//! answered 250 to the message and the event is recorded. (maildev's own
//! `time` field is the message's Date header, the event's time, so it
//! cannot time arrival.) Every email is then checked to be in maildev.
//! Usage: notifications_bench ORDERS RATE
//! (DATABASE_URL, REDIS_URL, MERCATO_REDIS_PREFIX, SMTP_URL, MAILDEV_URL)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use model::order::{OrderItem, OrderStatus};
use server::http::metrics::Metrics;
use server::workers::consumer::{Consumer, Handler, Settings};
use shop::events::outbox::Relay;
use shop::events::redis_streams::RedisStreams;
use shop::events::{Event, EventBus, Topic};
use shop::orders::{NewOrder, Orders};
use uuid::Uuid;

/// The notifications handler, noting when each event's email was taken.
struct Timed(shop::notifications::Notifier, Arc<Mutex<HashMap<Uuid, DateTime<Utc>>>>);

impl Handler for Timed {
    async fn handle(&self, event: &Event) -> shop::Result<()> {
        self.0.handle(event).await?;
        self.1.lock().unwrap().entry(event.id).or_insert_with(Utc::now);
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    let arg = |i: usize, default: u64| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (orders, rate) = (arg(1, 300) as usize, arg(2, 20).max(1));
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let maildev = env("MAILDEV_URL", "http://127.0.0.1:1080");
    let db = shop::db::connect(env("DATABASE_URL", "").parse().unwrap(), 10).await.unwrap();
    shop::db::migrate(&db).await.unwrap();
    let kv = shop::kv::Kv::connect(&env("REDIS_URL", "redis://127.0.0.1:6379"), env("MERCATO_REDIS_PREFIX", "bench-mail:")).await.unwrap();
    let shop = shop::Shop::new(db.clone(), kv.clone());
    shop.catalog().seed(shop::catalog::SeedOptions { products: 5 }).await.unwrap();
    let token = shop.accounts().create_load_test_users(1, "bench-password").await.unwrap().remove(0);
    let customer = shop.accounts().authenticate(&token).await.unwrap().unwrap();
    let (sku_id, product_id): (Uuid, Uuid) = sqlx::query_as("SELECT id, product_id FROM skus ORDER BY id LIMIT 1").fetch_one(&db).await.unwrap();

    let bus: Arc<dyn EventBus> = Arc::new(RedisStreams::new(kv, 8));
    let relay = tokio::spawn(server::workers::relay::run(Relay::new(db.clone(), bus.clone(), 500), Duration::from_millis(100), Arc::new(Metrics::new())));
    let mail = shop::notifications::Settings::new(&env("SMTP_URL", shop::notifications::DEFAULT_SMTP_URL), shop::notifications::DEFAULT_FROM).unwrap();
    let notifier = shop::notifications::Notifier::new(shop.clone(), &mail).unwrap();
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let consumer = tokio::spawn(Consumer::new(bus, Topic::Orders, shop::notifications::CONSUMER, Timed(notifier, sent.clone()), Settings::default()).run());

    // Event id → when its order committed.
    let mut committed: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    let every = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    for n in 0..orders {
        tokio::time::sleep_until((start + every * n as u32).into()).await;
        let order = NewOrder {
            id: Uuid::now_v7(),
            user_id: customer.id,
            idempotency_key: Uuid::new_v4().to_string(),
            total_cents: 1999,
            currency: "EUR".into(),
            payment_id: Some(format!("pi_bench_{n}")),
            reservation_token: Uuid::new_v4(),
            shipping_address: serde_json::json!({ "name": "Bench", "line1": "1 Main St", "city": "London", "postal_code": "N1", "country": "GB" }),
            items: vec![OrderItem { sku_id, product_id, title: "Desk lamp".into(), quantity: 1, unit_cents: 1999 }],
        };
        let mut tx = db.begin().await.unwrap();
        Orders::insert(&mut tx, &order, &[OrderStatus::Placed, OrderStatus::PaymentPending, OrderStatus::Confirmed]).await.unwrap();
        let event: Uuid = sqlx::query_scalar("SELECT id FROM outbox WHERE aggregate_id = $1").bind(order.id).fetch_one(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        committed.insert(event, Utc::now());
    }
    let placing = start.elapsed();

    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let in_maildev = loop {
        let all: Vec<serde_json::Value> = client.get(format!("{maildev}/email")).send().await.unwrap().json().await.unwrap();
        let ids: std::collections::HashSet<&str> = all.iter().filter_map(|m| m["headers"]["message-id"].as_str()).collect();
        let mine = committed.keys().filter(|id| ids.contains(shop::notifications::message_id(**id).as_str())).count();
        if mine >= orders || Instant::now() > deadline {
            break mine;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let latencies: Vec<f64> = {
        let sent = sent.lock().unwrap();
        committed.iter().filter_map(|(id, at)| Some((*sent.get(id)? - *at).num_microseconds()? as f64 / 1000.0)).collect()
    };
    relay.abort();
    consumer.abort();
    let mut sorted = latencies.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1];
    println!("{orders} orders placed in {:.1} s ({rate}/s); {} emails taken, {in_maildev} found in maildev", placing.as_secs_f64(), sorted.len());
    if sorted.is_empty() {
        println!("no email arrived: is maildev running at {maildev}?");
        std::process::exit(1);
    }
    println!(
        "order commit → email taken by maildev (250) and recorded: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        sorted[sorted.len() - 1]
    );
}

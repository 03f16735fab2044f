//! Events through outbox → relay → Redis Streams → a no-op consumer
//! (bench/events.sh). Fills the outbox with EVENTS rows over AGGREGATES
//! orders, then runs one relay and one consumer group of CONSUMERS
//! consumers side by side and reports how fast the relay drained the outbox
//! and how fast the last event was handled.
//! Usage: events_bench EVENTS AGGREGATES CONSUMERS (DATABASE_URL, REDIS_URL)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use server::http::metrics::Metrics;
use server::workers::consumer::{Consumer, Handler, Settings};
use shop::events::outbox::Relay;
use shop::events::redis_streams::RedisStreams;
use shop::events::{Event, EventBus, Topic};

struct NoOp(Arc<AtomicU64>);

impl Handler for NoOp {
    async fn handle(&self, _event: &Event) -> shop::Result<()> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    let arg = |i: usize, default: u64| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (events, aggregates, consumers) = (arg(1, 50_000), arg(2, 5_000), arg(3, 2));
    let db = shop::db::connect(std::env::var("DATABASE_URL").unwrap().parse().unwrap(), 10).await.unwrap();
    shop::db::migrate(&db).await.unwrap();
    let kv = shop::kv::Kv::connect(&std::env::var("REDIS_URL").unwrap(), std::env::var("MERCATO_REDIS_PREFIX").unwrap()).await.unwrap();
    let bus: Arc<dyn EventBus> = Arc::new(RedisStreams::new(kv, 8));
    bus.subscribe(Topic::Orders, "bench").await.unwrap();

    let filled = Instant::now();
    sqlx::query(
        "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload) \
         SELECT gen_random_uuid(), 'order', md5((n % $2)::text)::uuid, 'order.confirmed', jsonb_build_object('n', n) \
         FROM generate_series(1, $1) n",
    )
    .bind(events as i64)
    .bind(aggregates as i64)
    .execute(&db)
    .await
    .unwrap();
    println!("outbox filled with {events} rows over {aggregates} orders in {:.1} s", filled.elapsed().as_secs_f64());

    let handled = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let relay = Relay::new(db.clone(), bus.clone(), 500);
    let relay_task = tokio::spawn(server::workers::relay::run(relay, Duration::from_millis(100), Arc::new(Metrics::new())));
    let settings = Settings { batch: 200, ..Settings::default() };
    let consumer_tasks: Vec<_> = (0..consumers)
        .map(|_| tokio::spawn(Consumer::new(bus.clone(), Topic::Orders, "bench", NoOp(handled.clone()), settings.clone()).run()))
        .collect();

    let mut drained = None;
    loop {
        if drained.is_none() && shop::events::outbox::backlog(&db).await.unwrap().rows == 0 {
            drained = Some(started.elapsed());
        }
        if handled.load(Ordering::Relaxed) >= events {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let end_to_end = started.elapsed();
    let drained = drained.unwrap_or(end_to_end);
    relay_task.abort();
    consumer_tasks.iter().for_each(|t| t.abort());
    println!("relay: outbox drained in {:.2} s = {:.0} events/s", drained.as_secs_f64(), events as f64 / drained.as_secs_f64());
    println!(
        "end to end: {} events handled by {consumers} no-op consumers in {:.2} s = {:.0} events/s",
        handled.load(Ordering::Relaxed),
        end_to_end.as_secs_f64(),
        events as f64 / end_to_end.as_secs_f64()
    );
}

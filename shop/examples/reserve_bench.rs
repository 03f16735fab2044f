//! Reservation throughput and latency on one hot SKU, through the real
//! `shop::inventory` service: the Redis Lua path, the same SKU split into 8
//! shards, and the DB-only path (breaker held open), one after the other in
//! one run. Run by `bench/inventory-reserve.sh`, which adds the
//! `redis-benchmark` ceiling for the same script.
//!
//! Usage: reserve_bench [TASKS] [SECONDS]   (DATABASE_URL, REDIS_URL)
//!        reserve_bench --print-script      (the reservation Lua, for redis-benchmark)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shop::inventory::{Line, SellerScope, Settings};
use shop::Shop;
use uuid::Uuid;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--print-script") {
        print!("{}", shop::inventory::reserve_script_source());
        return;
    }
    let tasks: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(256);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let database = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());

    let db = shop::db::connect(database.parse().expect("DATABASE_URL parses"), 20).await.expect("PostgreSQL answers");
    shop::db::migrate(&db).await.expect("migrations apply");
    let prefix = format!("bench-reserve:{}:", std::process::id());
    let kv = shop::kv::Kv::connect(&redis, prefix).await.expect("Redis answers");
    // A breaker that, once opened by hand, stays open for the DB-only round.
    let settings = Settings { breaker_threshold: 1, breaker_cooldown: Duration::from_secs(3600), ..Settings::default() };
    let shop = Shop::new(db.clone(), kv).with_inventory_settings(settings);
    if shop.catalog().is_empty().await.expect("catalog readable") {
        shop.catalog().seed(shop::catalog::SeedOptions { products: 10 }).await.expect("seed");
    }
    let sku: Uuid = sqlx::query_scalar("SELECT sku_id FROM inventory ORDER BY sku_id LIMIT 1").fetch_one(&db).await.unwrap();

    println!("one hot SKU, {tasks} concurrent tasks, {seconds} s per round, 1 unit per reservation");
    println!("{:<24} {:>12} {:>10} {:>10} {:>10}", "path", "reserved/s", "p50 ms", "p99 ms", "errors");
    for (label, shards, db_only) in [("redis (1 counter)", 1u32, false), ("redis (8 shards)", 8, false), ("db-only (PostgreSQL)", 1, true)] {
        reset(&shop, sku).await;
        shop.inventory().set_shards(SellerScope::Admin, sku, shards).await.expect("shards set");
        if db_only {
            shop.inventory_rt.breaker.failure();
        }
        let round = run(&shop, sku, tasks, Duration::from_secs(seconds)).await;
        println!(
            "{:<24} {:>12.0} {:>10.2} {:>10.2} {:>10}",
            label,
            round.ok as f64 / round.elapsed.as_secs_f64(),
            round.percentile(0.50),
            round.percentile(0.99),
            round.errors
        );
    }
    reset(&shop, sku).await;
}

/// Plenty of stock, no holds: every round starts the same.
async fn reset(shop: &Shop, sku: Uuid) {
    shop.inventory_rt.breaker.success();
    shop.inventory().forget_counters().await.unwrap();
    sqlx::query("DELETE FROM inventory_reservations").execute(&shop.db).await.unwrap();
    sqlx::query("UPDATE inventory SET stock_count = 1000000000, reserved = 0, held = 0, shards = 1 WHERE sku_id = $1")
        .bind(sku)
        .execute(&shop.db)
        .await
        .unwrap();
    shop.inventory().preload().await.unwrap();
}

struct Round {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    micros: Vec<u32>,
}

impl Round {
    fn percentile(&self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        let i = ((self.micros.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.micros[i]) / 1000.0
    }
}

async fn run(shop: &Shop, sku: Uuid, tasks: usize, duration: Duration) -> Round {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let shop = shop.clone();
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let (mut ok, mut errors, mut micros) = (0u64, 0u64, Vec::new());
            let line = [Line { sku_id: sku, quantity: 1 }];
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match shop.inventory().reserve(Uuid::new_v4(), &line, None).await {
                    Ok(_) => ok += 1,
                    Err(_) => errors += 1,
                }
                micros.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            }
            (ok, errors, micros)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut round = Round { ok: 0, errors: 0, elapsed: Duration::ZERO, micros: Vec::new() };
    for handle in handles {
        let (ok, errors, micros) = handle.await.unwrap();
        round.ok += ok;
        round.errors += errors;
        round.micros.extend(micros);
    }
    round.elapsed = started.elapsed();
    round.micros.sort_unstable();
    round
}

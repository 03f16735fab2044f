//! Counters the services keep about themselves; the server exports them on
//! /metrics. Plain atomics: the shop layer knows nothing of Prometheus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Stats {
    /// `product:{id}` reads answered by Redis.
    pub product_cache_hits: AtomicU64,
    /// `product:{id}` reads that had to go to PostgreSQL.
    pub product_cache_misses: AtomicU64,
    /// Product rows PostgreSQL was asked for (equals misses when the cache works).
    pub product_db_loads: AtomicU64,
    /// Search requests answered from the result cache, and those that asked the index.
    pub search_cache_hits: AtomicU64,
    pub search_cache_misses: AtomicU64,
    /// Redis failures the catalog rode out by reading PostgreSQL directly.
    pub cache_errors: AtomicU64,
    /// Inventory counters loaded from PostgreSQL into Redis.
    pub stock_counter_loads: AtomicU64,
    pub inventory: InventoryStats,
}

#[derive(Debug, Default)]
pub struct InventoryStats {
    pub reserved_redis: AtomicU64,
    pub rejected_redis: AtomicU64,
    pub reserved_db: AtomicU64,
    pub rejected_db: AtomicU64,
    /// Expired reservations whose units went back to stock.
    pub expired_returned: AtomicU64,
    /// Counters reconciliation found wrong and rewrote.
    pub drift_corrected: AtomicU64,
    /// Optimistic confirmations that lost a race on `version` and retried.
    pub confirm_retries: AtomicU64,
    /// Redis calls that failed and sent a reservation to the DB-only path.
    pub redis_failures: AtomicU64,
    pub latency_redis: Histogram,
    pub latency_db: Histogram,
}

/// Upper bounds of the latency buckets, in seconds (the last is +Inf).
pub const LATENCY_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A fixed-bucket latency histogram in atomics (cumulative on export).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let slot = LATENCY_BUCKETS.iter().position(|le| secs <= *le).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Per-bucket counts (not cumulative; the last is above every bound),
    /// and the sum of observations in seconds.
    pub fn snapshot(&self) -> (Vec<u64>, f64) {
        let counts = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        (counts, self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6)
    }
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

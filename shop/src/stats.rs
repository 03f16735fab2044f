//! Counters the services keep about themselves; the server exports them on
//! /metrics. Plain atomics: the shop layer knows nothing of Prometheus.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    /// `product:{id}` reads answered by Redis.
    pub product_cache_hits: AtomicU64,
    /// `product:{id}` reads that had to go to PostgreSQL.
    pub product_cache_misses: AtomicU64,
    /// Product rows PostgreSQL was asked for (equals misses when the cache works).
    pub product_db_loads: AtomicU64,
    /// Redis failures the catalog rode out by reading PostgreSQL directly.
    pub cache_errors: AtomicU64,
    /// Inventory counters loaded from PostgreSQL into Redis.
    pub stock_counter_loads: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

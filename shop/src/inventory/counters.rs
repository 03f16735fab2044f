//! Counters: reading them, loading cold ones, and rewriting them from
//! PostgreSQL (lazy load, stock changes, re-sharding, reconciliation).
//!
//! Every write goes through [`sync`]: the inventory rows are read FOR SHARE
//! (or the caller already holds them FOR UPDATE), so no confirmation can
//! commit between reading PostgreSQL and writing Redis.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use uuid::Uuid;

use super::{scripts, Fail};
use crate::stats::Stats;
use crate::{Result, Shop};

/// PostgreSQL's side of a counter: what is neither confirmed nor held on
/// the DB path, and the shard count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Truth {
    pub sku: Uuid,
    pub available: i64,
    pub shards: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Fill,
    Fix,
    Force,
    Stock,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Fill => "fill",
            Mode::Fix => "fix",
            Mode::Force => "force",
            Mode::Stock => "stock",
        }
    }
}

/// A counter before and after a sync (`None`: not loaded).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Synced {
    pub sku: Uuid,
    pub before: Option<i64>,
    pub after: Option<i64>,
}

/// The sync script refused a stock change: live Redis holds exceed what would be left.
#[derive(Debug)]
pub(crate) struct Below {
    pub held: i64,
}

/// Reads the truth for `skus` with their rows locked FOR SHARE (blocks
/// confirmations and stock changes until the caller's transaction ends).
pub(crate) async fn truth_locked(conn: &mut PgConnection, skus: &[Uuid]) -> sqlx::Result<Vec<Truth>> {
    let rows: Vec<(Uuid, i64, i32)> = sqlx::query_as(
        "SELECT sku_id, (stock_count - reserved - held)::bigint, shards FROM inventory \
         WHERE sku_id = ANY($1) ORDER BY sku_id FOR SHARE",
    )
    .bind(skus)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(sku, available, shards)| Truth { sku, available, shards }).collect())
}

/// Runs the sync script for rows the caller holds locked.
pub(crate) async fn sync(shop: &Shop, mode: Mode, truth: &[Truth]) -> redis::RedisResult<std::result::Result<Vec<Synced>, Below>> {
    if truth.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let mut call = scripts::SYNC.prepare_invoke();
    call.arg(shop.kv.prefix()).arg(mode.arg());
    for t in truth {
        call.arg(t.sku.to_string()).arg(t.available).arg(t.shards);
    }
    let reply: Vec<String> = call.invoke_async(&mut shop.kv.conn()).await?;
    if reply.first().map(String::as_str) == Some("BELOW") {
        let held = reply.get(2).and_then(|v| v.parse().ok()).unwrap_or(0);
        return Ok(Err(Below { held }));
    }
    let parse = |v: &String| v.parse::<i64>().ok();
    Ok(Ok(truth
        .iter()
        .zip(reply.chunks(2))
        .map(|(t, pair)| Synced { sku: t.sku, before: parse(&pair[0]), after: parse(&pair[1]) })
        .collect()))
}

/// Locks, reads and syncs `skus` in one short transaction.
async fn sync_skus(shop: &Shop, mode: Mode, skus: &[Uuid]) -> std::result::Result<Vec<Synced>, Fail> {
    let mut tx = shop.db.begin().await?;
    let truth = truth_locked(&mut tx, skus).await?;
    let synced = sync(shop, mode, &truth).await?.map_err(|_| crate::Error::internal("sync refused outside a stock change"))?;
    tx.commit().await?;
    Ok(synced)
}

/// Best-effort rewrite after a transaction whose outcome is unknown (a
/// failed COMMIT): whatever PostgreSQL ended with, the counter follows it.
pub(crate) async fn resync(shop: &Shop, skus: &[Uuid]) {
    if let Err(err) = sync_skus(shop, Mode::Force, skus).await {
        tracing::warn!(error = ?err, ?skus, "could not resync counters; reconciliation will");
    }
}

/// Available totals as the read script sees them (`None`: not loaded).
async fn read(shop: &Shop, skus: &[Uuid]) -> redis::RedisResult<Vec<Option<i64>>> {
    let mut call = scripts::READ.prepare_invoke();
    call.arg(shop.kv.prefix());
    for sku in skus {
        call.arg(sku.to_string());
    }
    let reply: Vec<String> = call.invoke_async(&mut shop.kv.conn()).await?;
    Ok(reply.iter().map(|v| v.parse().ok()).collect())
}

pub(crate) async fn available(shop: &Shop, skus: &[Uuid]) -> Result<Vec<i64>> {
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    let fallback = |err: redis::RedisError| async move {
        tracing::warn!(error = %err, "stock counters unreadable; reading PostgreSQL");
        Stats::add(&shop.stats.cache_errors, 1);
        let truth = load_from_db(shop, skus).await?;
        Ok::<_, crate::Error>(skus.iter().map(|s| truth.get(s).copied().unwrap_or(0)).collect())
    };
    // While reservations run on the DB-only path PostgreSQL is the live
    // figure; loading a counter now would go stale with the next DB hold.
    if shop.inventory_rt.breaker.state() != crate::breaker::State::Closed {
        let truth = load_from_db(shop, skus).await?;
        return Ok(skus.iter().map(|s| truth.get(s).copied().unwrap_or(0)).collect());
    }
    let mut values = match read(shop, skus).await {
        Ok(v) => v,
        Err(err) => return fallback(err).await,
    };
    let missing: Vec<Uuid> = skus.iter().zip(&values).filter(|(_, v)| v.is_none()).map(|(s, _)| *s).collect();
    if !missing.is_empty() {
        if let Err(err) = load(shop, &missing).await {
            return match err {
                Fail::Redis(err) => fallback(err).await,
                Fail::Shop(err) => Err(err),
            };
        }
        let loaded = match read(shop, &missing).await {
            Ok(v) => v,
            Err(err) => return fallback(err).await,
        };
        let loaded: HashMap<Uuid, Option<i64>> = missing.iter().copied().zip(loaded).collect();
        for (sku, value) in skus.iter().zip(values.iter_mut()) {
            if value.is_none() {
                *value = loaded.get(sku).copied().flatten();
            }
        }
    }
    // Still not loaded means PostgreSQL has no such SKU.
    Ok(values.into_iter().map(|v| v.unwrap_or(0)).collect())
}

/// How long a loader may hold a SKU's load lock, and how long the others
/// wait for it before loading themselves (the holder may have died).
const LOAD_LOCK: Duration = Duration::from_secs(2);

/// Loads cold counters with one loader per SKU: the first caller takes
/// `inv:{<sku>}:loading` and queries PostgreSQL; the others wait for the
/// counter to appear instead of stampeding the database.
pub(crate) async fn load(shop: &Shop, skus: &[Uuid]) -> std::result::Result<(), Fail> {
    let lock_key = |sku: &Uuid| shop.kv.key(&format!("inv:{{{sku}}}:loading"));
    let mut pipe = redis::pipe();
    for sku in skus {
        pipe.cmd("SET").arg(lock_key(sku)).arg(1).arg("NX").arg("PX").arg(LOAD_LOCK.as_millis() as u64);
    }
    let won: Vec<Option<String>> = pipe.query_async(&mut shop.kv.conn()).await?;
    let (mine, theirs): (Vec<Uuid>, Vec<Uuid>) = {
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        for (sku, got) in skus.iter().zip(won) {
            if got.is_some() { mine.push(*sku) } else { theirs.push(*sku) }
        }
        (mine, theirs)
    };
    if !mine.is_empty() {
        let result = sync_skus(shop, Mode::Fill, &mine).await;
        let mut unlock = redis::pipe();
        for sku in &mine {
            unlock.del(lock_key(sku)).ignore();
        }
        let _: redis::RedisResult<()> = unlock.query_async(&mut shop.kv.conn()).await;
        let synced = result?;
        let loaded = synced.iter().filter(|s| s.before.is_none() && s.after.is_some()).count();
        Stats::add(&shop.stats.stock_counter_loads, loaded as u64);
    }
    if !theirs.is_empty() {
        let deadline = Instant::now() + LOAD_LOCK;
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let values = read(shop, &theirs).await?;
            if values.iter().all(Option::is_some) {
                break;
            }
            if Instant::now() >= deadline {
                // The loader vanished: load the stragglers ourselves (FILL
                // never overwrites a counter someone else loaded meanwhile).
                let stragglers: Vec<Uuid> =
                    theirs.iter().zip(values).filter(|(_, v)| v.is_none()).map(|(s, _)| *s).collect();
                sync_skus(shop, Mode::Fill, &stragglers).await?;
                break;
            }
        }
    }
    Ok(())
}

async fn load_from_db(shop: &Shop, skus: &[Uuid]) -> Result<HashMap<Uuid, i64>> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT sku_id, (stock_count - reserved - held)::bigint FROM inventory WHERE sku_id = ANY($1)",
    )
    .bind(skus)
    .fetch_all(&shop.db)
    .await?;
    Ok(rows.into_iter().collect())
}

pub use model::inventory::{Drift, HeldDrift, ReconcileReport};

const BATCH: i64 = 1_000;

/// The counter walk of [`reconcile`] for a few SKUs, rows locked FOR SHARE.
pub(crate) async fn reconcile_skus(shop: &Shop, skus: &[Uuid]) -> Result<Vec<Drift>> {
    let synced = match sync_skus(shop, Mode::Fix, skus).await {
        Ok(synced) => synced,
        Err(Fail::Shop(err)) => return Err(err),
        Err(Fail::Redis(err)) => return Err(err.into()),
    };
    let mut drifts = Vec::new();
    for s in synced {
        if let (Some(before), Some(after)) = (s.before, s.after) {
            if before != after {
                tracing::warn!(sku = %s.sku, counter = before, expected = after, "inventory counter drifted; corrected");
                drifts.push(Drift { sku_id: s.sku, counter: before, expected: after, drift: before - after });
            }
        }
    }
    Stats::add(&shop.stats.inventory.drift_corrected, drifts.len() as u64);
    Ok(drifts)
}

/// First rebuilds `held` where it disagrees with the live records (the
/// counter walk computes from `held`, so it must be right first), then
/// walks every SKU in batches; within a batch the rows are locked FOR
/// SHARE, so the comparison is exact even with confirmations in flight.
pub(crate) async fn reconcile(shop: &Shop) -> Result<ReconcileReport> {
    let mut report = ReconcileReport::default();
    let started = Instant::now();
    report.held_corrected = rebuild_held(shop).await?;
    walk(shop, Mode::Fix, |synced| {
        report.checked += synced.len() as u64;
        for s in synced {
            let (Some(before), Some(after)) = (s.before, s.after) else { continue };
            report.loaded += 1;
            if before != after {
                tracing::warn!(sku = %s.sku, counter = before, expected = after, drift = before - after, "inventory counter drifted; corrected");
                report.corrected.push(Drift { sku_id: s.sku, counter: before, expected: after, drift: before - after });
            }
        }
    })
    .await?;
    report.took_ms = started.elapsed().as_millis() as u64;
    Stats::add(&shop.stats.inventory.drift_corrected, (report.corrected.len() + report.held_corrected.len()) as u64);
    Ok(report)
}

/// Rewrites `held` (and the counter with it) for every SKU whose `held`
/// is not the sum of its live records. Finding them scans the records once
/// and writes nothing; only the SKUs found are then locked FOR SHARE and
/// rewritten by a second scan, atomic with the write, so a reservation or
/// confirmation in between cannot make the figure stale.
async fn rebuild_held(shop: &Shop) -> Result<Vec<HeldDrift>> {
    // The records name every SKU they hold; a SKU with `held` above zero
    // and no live record is found only by asking each SKU's `held`.
    let mut candidates = Vec::new();
    let mut after = Uuid::nil();
    loop {
        let skus: Vec<Uuid> = sqlx::query_scalar("SELECT sku_id FROM inventory WHERE sku_id > $1 ORDER BY sku_id LIMIT $2")
            .bind(after)
            .bind(BATCH)
            .fetch_all(&shop.db)
            .await?;
        let Some(last) = skus.last() else { break };
        after = *last;
        let keys: Vec<String> = skus.iter().map(|s| shop.kv.key(&format!("inv:{{{s}}}:held"))).collect();
        let held: Vec<Option<i64>> = redis::cmd("MGET").arg(&keys).query_async(&mut shop.kv.conn()).await?;
        candidates.extend(skus.iter().zip(held).filter(|(_, h)| h.unwrap_or(0) != 0).map(|(s, _)| *s));
        if (skus.len() as i64) < BATCH {
            break;
        }
    }
    let mut call = scripts::HELD_DRIFT.prepare_invoke();
    call.arg(shop.kv.prefix());
    for sku in &candidates {
        call.arg(sku.to_string());
    }
    let found: Vec<String> = call.invoke_async(&mut shop.kv.conn()).await?;
    let mut drifted: Vec<Uuid> = found.chunks(3).filter_map(|t| Uuid::try_parse(&t[0]).ok()).collect();
    if drifted.is_empty() {
        return Ok(Vec::new());
    }
    drifted.sort();
    let mut corrected = Vec::new();
    for batch in drifted.chunks(BATCH as usize) {
        let mut tx = shop.db.begin().await?;
        let truth = truth_locked(&mut tx, batch).await?;
        if truth.is_empty() {
            continue;
        }
        let mut call = scripts::REBUILD_HELD.prepare_invoke();
        call.arg(shop.kv.prefix());
        for t in &truth {
            call.arg(t.sku.to_string()).arg(t.available).arg(t.shards);
        }
        let reply: Vec<String> = call.invoke_async(&mut shop.kv.conn()).await?;
        tx.commit().await?;
        for (t, four) in truth.iter().zip(reply.chunks(4)) {
            let (held, expected) = (four[0].parse().unwrap_or(0), four[1].parse().unwrap_or(0));
            if held != expected {
                tracing::warn!(sku = %t.sku, held, expected, counter_was = %four[2], counter_now = %four[3], "inventory held units drifted from the live reservations; corrected");
                corrected.push(HeldDrift { sku_id: t.sku, held, expected, drift: held - expected });
            }
        }
    }
    Ok(corrected)
}

pub(crate) async fn preload(shop: &Shop) -> Result<u64> {
    let mut loaded = 0u64;
    walk(shop, Mode::Fill, |synced| {
        loaded += synced.iter().filter(|s| s.before.is_none() && s.after.is_some()).count() as u64;
    })
    .await?;
    Stats::add(&shop.stats.stock_counter_loads, loaded);
    Ok(loaded)
}

async fn walk(shop: &Shop, mode: Mode, mut each: impl FnMut(&[Synced])) -> Result<()> {
    let mut after = Uuid::nil();
    loop {
        let mut tx = shop.db.begin().await?;
        let truth: Vec<Truth> = sqlx::query_as::<_, (Uuid, i64, i32)>(
            "SELECT sku_id, (stock_count - reserved - held)::bigint, shards FROM inventory \
             WHERE sku_id > $1 ORDER BY sku_id LIMIT $2 FOR SHARE",
        )
        .bind(after)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(sku, available, shards)| Truth { sku, available, shards })
        .collect();
        let Some(last) = truth.last() else { break };
        after = last.sku;
        let synced = sync(shop, mode, &truth).await?.map_err(|_| crate::Error::internal("sync refused outside a stock change"))?;
        tx.commit().await?;
        each(&synced);
        if (truth.len() as i64) < BATCH {
            break;
        }
    }
    Ok(())
}

//! Inventory: the engine a flash sale leans on.
//!
//! PostgreSQL holds the truth per SKU: `stock_count`, `reserved` (units
//! confirmed into orders, not yet shipped), `held` (live holds taken on the
//! DB-only path) and `version`. Redis holds the live available count, the
//! figure shoppers see and reservations decrement, plus the holds taken on
//! the Redis path. See `scripts.rs` for the keys and the invariant every
//! script keeps, and ARCHITECTURE.md for the whole picture.
//!
//! A reservation's life: `reserve` (Redis Lua, all lines or none; or the
//! DB-only path while Redis is failing) → `confirm` (one PostgreSQL
//! transaction, optimistic lock on `version`, extended by checkout with the
//! order insert) or `release`, or expiry (the sweeper). Every step is
//! idempotent by token, and `reservation_outcomes` decides any race between
//! a confirmation and a release.
//!
//! Counters are only ever (re)written from PostgreSQL while the inventory
//! rows are locked, so a counter write can never interleave with a
//! confirmation: that is what keeps lazy loading, seller stock changes,
//! re-sharding and reconciliation exact while reservations are in flight.

mod confirm;
mod counters;
mod db_path;
mod redis_path;
mod scripts;
mod set_aside;
mod stock;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::breaker::{Breaker, Permit};
use crate::stats::Stats;
use crate::{Error, Result, Shop};

pub use confirm::Confirmation;
pub use set_aside::SetAside;
pub use counters::{Drift, HeldDrift, ReconcileReport};
pub use model::{SkuStockPage, SkuStockRow};
pub use stock::SellerScope;

/// Most lines one reservation may hold, and most units per line: a cart is
/// far smaller, and the bound keeps one script's work small.
pub const MAX_LINES: usize = 50;
pub const MAX_QUANTITY: u32 = 1_000;
/// Most shards a hot SKU may be split into.
pub const MAX_SHARDS: u32 = 64;

#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a reservation holds its units before the sweeper returns them.
    pub reservation_ttl: Duration,
    /// How long a started confirmation may take before the sweeper asks
    /// PostgreSQL how it ended.
    pub confirm_grace: Duration,
    /// Consecutive Redis failures before reservations switch to the DB-only path.
    pub breaker_threshold: u32,
    /// How long the DB-only path is used before Redis is probed again.
    pub breaker_cooldown: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            reservation_ttl: Duration::from_secs(600),
            confirm_grace: Duration::from_secs(30),
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(1),
        }
    }
}

/// Per-process inventory state: settings and the Redis circuit breaker.
#[derive(Debug)]
pub struct Runtime {
    pub settings: Settings,
    pub breaker: Breaker,
    /// Every DB-path hold and return runs under a read guard; the rebuild
    /// that puts Redis back in use takes the write guard. So no DB-path
    /// change can land in PostgreSQL after the rebuild read its row but
    /// before the breaker closed, where the counter would never learn of it.
    db_gate: tokio::sync::RwLock<()>,
    /// Tokens whose reserve script may have run on Redis although no reply
    /// came, and that Redis could not yet be asked about: the DB path must
    /// not hold them too. The rebuild before Redis returns settles them.
    in_doubt: std::sync::Mutex<HashSet<Uuid>>,
}

impl Runtime {
    pub fn new(settings: Settings) -> Self {
        let breaker = Breaker::new(settings.breaker_threshold, settings.breaker_cooldown);
        Self { settings, breaker, db_gate: tokio::sync::RwLock::new(()), in_doubt: Default::default() }
    }

    fn doubt(&self, token: Uuid, in_doubt: bool) {
        let mut set = self.in_doubt.lock().unwrap_or_else(|e| e.into_inner());
        if in_doubt {
            set.insert(token);
        } else {
            set.remove(&token);
        }
    }

    fn is_in_doubt(&self, token: Uuid) -> bool {
        self.in_doubt.lock().unwrap_or_else(|e| e.into_inner()).contains(&token)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub sku_id: Uuid,
    pub quantity: u32,
}

/// Where a reservation's units are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldPath {
    Redis,
    Db,
}

impl HoldPath {
    pub fn label(self) -> &'static str {
        match self {
            HoldPath::Redis => "redis",
            HoldPath::Db => "db",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldState {
    Held,
    Confirming,
    Confirmed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reservation {
    pub token: Uuid,
    pub lines: Vec<Line>,
    pub expires_at: DateTime<Utc>,
    pub path: HoldPath,
    pub state: HoldState,
}

/// What a release found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// Units went back to stock now.
    Returned,
    /// Nothing to do: already released or expired, or never held.
    Nothing,
    /// Too late: the reservation was confirmed into an order.
    AlreadyConfirmed,
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired reservations whose units went back to stock.
    pub expired: u64,
    /// Stalled confirmations settled from PostgreSQL's record.
    pub settled: u64,
}

/// A Redis failure the caller should ride out on the DB-only path, kept
/// apart from business errors that must reach the customer.
#[derive(Debug)]
pub(crate) enum Fail {
    Redis(redis::RedisError),
    Shop(Error),
}

impl From<Error> for Fail {
    fn from(err: Error) -> Self {
        Fail::Shop(err)
    }
}

impl From<sqlx::Error> for Fail {
    fn from(err: sqlx::Error) -> Self {
        Fail::Shop(err.into())
    }
}

impl From<redis::RedisError> for Fail {
    fn from(err: redis::RedisError) -> Self {
        if is_outage(&err) {
            Fail::Redis(err)
        } else {
            Fail::Shop(Error::internal(err))
        }
    }
}

/// Runs `update` ($1 the SKU, $2 the quantity) for each line in SKU order
/// (the lock order every multi-row change keeps); the first SKU whose row
/// refused it, if any.
async fn update_each(tx: &mut sqlx::PgConnection, lines: &[Line], update: &str) -> Result<Option<Uuid>> {
    let mut lines = lines.to_vec();
    lines.sort_by_key(|l| l.sku_id);
    for line in &lines {
        let done = sqlx::query(update).bind(line.sku_id).bind(line.quantity as i32).execute(&mut *tx).await?.rows_affected();
        if done != 1 {
            return Ok(Some(line.sku_id));
        }
    }
    Ok(None)
}

/// Errors that mean "Redis is not answering", as opposed to a bug.
fn is_outage(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || matches!(err.kind(), redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading | redis::ServerErrorKind::TryAgain))
}

/// The error a skipped Redis call stands for while the breaker is open.
pub(crate) fn breaker_open() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "Redis circuit breaker is open"))
}

pub(crate) fn redis_unavailable(err: redis::RedisError, retry_after: Duration) -> Error {
    Error::Unavailable { dependency: crate::error::Dependency::Redis, retry_after, source: Box::new(err) }
}

pub(crate) use set_aside::commit_refusal as set_aside_refusal;

pub(crate) fn out_of_stock(sku: Uuid, requested: u32, available: i64) -> Error {
    Error::Conflict {
        code: "out_of_stock",
        message: if available <= 0 {
            format!("SKU {sku} is sold out")
        } else {
            format!("only {available} of SKU {sku} left, {requested} requested")
        },
        details: Some(serde_json::json!({
            "skus": [{ "sku_id": sku, "requested": requested, "available": available.max(0) }]
        })),
    }
}

pub(crate) fn reservation_ended(token: Uuid) -> Error {
    Error::Conflict {
        code: "reservation_expired",
        message: format!("reservation {token} has expired or was released; its units are back in stock"),
        details: None,
    }
}

/// The reservation script's source, so `bench/inventory-reserve.sh` can run
/// the very same Lua under `redis-benchmark` for the ceiling.
pub fn reserve_script_source() -> &'static str {
    scripts::RESERVE_SRC
}

pub struct Inventory<'a> {
    shop: &'a Shop,
}

impl<'a> Inventory<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    fn rt(&self) -> &Runtime {
        &self.shop.inventory_rt
    }

    /// `inv:{<sku>}:avail`: an unsharded SKU's counter (tests corrupt it on purpose).
    pub fn available_key(&self, sku: Uuid) -> String {
        self.shop.kv.key(&format!("inv:{{{sku}}}:avail"))
    }

    /// Units available now for each SKU, in the order asked; unknown SKUs
    /// count as 0. Cold counters load from PostgreSQL, one loader per SKU.
    /// When Redis is down the figures come from PostgreSQL.
    pub async fn available(&self, skus: &[Uuid]) -> Result<Vec<i64>> {
        counters::available(self.shop, skus).await
    }

    /// Reserves every line or none, for `ttl` (default: the configured 10
    /// minutes). Idempotent by `token`: a retry returns the first
    /// reservation and never holds twice. Uses Redis while it answers and
    /// the DB-only path while the breaker is open. A reserve script whose
    /// reply was lost is settled on Redis before the DB path may hold the
    /// same token; when Redis cannot be asked, the answer is 503 (retry).
    pub async fn reserve(&self, token: Uuid, lines: &[Line], ttl: Option<Duration>) -> Result<Reservation> {
        let lines = normalise(lines)?;
        let ttl = ttl.unwrap_or(self.rt().settings.reservation_ttl).max(Duration::from_millis(1));
        let started = Instant::now();
        let stats = &self.shop.stats.inventory;
        if self.redis_usable().await {
            let mut outcome = redis_path::reserve(self.shop, token, &lines, ttl).await;
            if let Ok(redis_path::Reserved::InDoubt(err)) = outcome {
                self.redis_failed(&err);
                outcome = redis_path::settle_reserve(self.shop, token, ttl).await;
                if let Err(Fail::Redis(err)) = outcome {
                    self.redis_failed(&err);
                    self.rt().doubt(token, true);
                    tracing::warn!(error = %err, %token, "reserve reply lost and Redis not answering: refused, so the units cannot be held twice");
                    return Err(redis_unavailable(err, self.rt().breaker.retry_after()));
                }
            }
            match outcome {
                Ok(redis_path::Reserved::Held(reservation)) => {
                    self.rt().doubt(token, false);
                    // Not `success()`: this call may have been let through
                    // before the breaker opened and be finishing while the
                    // probe's rebuild runs; closing the half-open breaker
                    // now would send every caller to counters the rebuild
                    // has not yet brought up to PostgreSQL. Only the
                    // rebuild closes it.
                    self.rt().breaker.call_succeeded();
                    Stats::add(&stats.reserved_redis, 1);
                    stats.latency_redis.observe(started.elapsed());
                    return Ok(reservation);
                }
                Ok(redis_path::Reserved::Fenced) => self.rt().doubt(token, false),
                // Redis is not trusted yet and held nothing: the DB path.
                Ok(redis_path::Reserved::Cold) => {}
                Ok(redis_path::Reserved::InDoubt(_)) => unreachable!("settled above"),
                Err(Fail::Shop(err)) => {
                    if is_rejection(&err) {
                        Stats::add(&stats.rejected_redis, 1);
                        stats.latency_redis.observe(started.elapsed());
                    }
                    return Err(err);
                }
                Err(Fail::Redis(err)) => self.redis_failed(&err),
            }
        }
        if self.rt().is_in_doubt(token) {
            return Err(redis_unavailable(breaker_open(), self.rt().breaker.retry_after()));
        }
        let started = Instant::now();
        let gate = self.rt().db_gate.read().await;
        let result = db_path::reserve(self.shop, token, &lines, ttl, self.mirror()).await;
        drop(gate);
        match &result {
            Ok(_) => Stats::add(&stats.reserved_db, 1),
            Err(err) if is_rejection(err) => Stats::add(&stats.rejected_db, 1),
            Err(_) => {}
        }
        stats.latency_db.observe(started.elapsed());
        result
    }

    /// Gives a reservation's units back. Idempotent; a confirmed
    /// reservation is left alone ([`Released::AlreadyConfirmed`]).
    pub async fn release(&self, token: Uuid) -> Result<Released> {
        let mut redis_down = None;
        if self.redis_usable().await {
            match redis_path::release(self.shop, token).await {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {} // not a Redis-path reservation
                Err(Fail::Shop(err)) => return Err(err),
                Err(Fail::Redis(err)) => {
                    self.redis_failed(&err);
                    redis_down = Some(err);
                }
            }
        } else {
            redis_down = Some(breaker_open());
        }
        let gate = self.rt().db_gate.read().await;
        let released = db_path::release(self.shop, token, self.mirror()).await?;
        drop(gate);
        match released {
            Some(done) => Ok(done),
            // Unknown to PostgreSQL: either never held, or a Redis hold we
            // cannot reach now (it stays held until Redis answers or it expires).
            None => match redis_down {
                Some(err) => Err(redis_unavailable(err, self.rt().breaker.retry_after())),
                None => Ok(Released::Nothing),
            },
        }
    }

    /// Confirms a reservation in its own transaction. Checkout uses
    /// [`Inventory::confirm_in`] to add the order to the same transaction.
    pub async fn confirm(&self, token: Uuid) -> Result<Vec<Line>> {
        let mut tx = self.shop.db.begin().await?;
        let confirmation = self.confirm_in(&mut tx, token).await?;
        let lines = confirmation.lines.clone();
        self.commit(tx, confirmation).await?;
        Ok(lines)
    }

    /// Moves a reservation's units into `reserved` inside `tx`, all lines in
    /// one go with an optimistic lock on each row's `version` (bounded
    /// retry). When PostgreSQL has fewer units than the hold claims (a
    /// counter had drifted), the reservation is released and the caller gets
    /// `out_of_stock` naming the SKU; `tx` is left as it was. Finish with
    /// [`Inventory::commit`].
    pub async fn confirm_in(&self, tx: &mut sqlx::PgConnection, token: Uuid) -> Result<Confirmation> {
        confirm::confirm_in(self, tx, token).await
    }

    /// Commits a transaction carrying a confirmation, keeping Redis in step.
    pub async fn commit(&self, tx: sqlx::Transaction<'_, sqlx::Postgres>, confirmation: Confirmation) -> Result<()> {
        confirm::commit(self, tx, confirmation).await
    }

    /// Gives a confirmed order's units back to stock inside `tx` (a
    /// cancelled order). Call [`Inventory::after_unconfirm`] once `tx` has
    /// committed: until then the counter is lower than the truth, the safe
    /// direction.
    pub async fn unconfirm_in(&self, tx: &mut sqlx::PgConnection, lines: &[Line]) -> Result<()> {
        let update = "UPDATE inventory SET reserved = reserved - $2, version = version + 1, updated_at = now() WHERE sku_id = $1 AND reserved >= $2";
        match update_each(tx, lines, update).await? {
            None => Ok(()),
            Some(sku) => Err(Error::internal(format!("SKU {sku} has fewer units in orders than an order returns"))),
        }
    }

    /// The SKUs among `lines` whose units are not all on the shelf
    /// according to PostgreSQL (`stock_count` or `reserved` below the
    /// line's quantity): what a warehouse pick would find missing. Reads
    /// the rows FOR SHARE in `tx`, so a shipment in the same transaction
    /// sees the figures it ships from.
    pub async fn missing_in(&self, tx: &mut sqlx::PgConnection, lines: &[Line]) -> Result<Vec<Uuid>> {
        let mut lines = lines.to_vec();
        lines.sort_by_key(|l| l.sku_id);
        let mut missing = Vec::new();
        for line in &lines {
            let row: Option<(i32, i32)> = sqlx::query_as("SELECT stock_count, reserved FROM inventory WHERE sku_id = $1 FOR SHARE")
                .bind(line.sku_id)
                .fetch_optional(&mut *tx)
                .await?;
            let q = line.quantity as i32;
            if !row.is_some_and(|(stock, reserved)| stock >= q && reserved >= q) {
                missing.push(line.sku_id);
            }
        }
        Ok(missing)
    }

    /// Shipped units leave the shop: out of `reserved` (they were in an
    /// order) and out of `stock_count` (they left the shelf), in the
    /// caller's transaction. `available` (stock − reserved − held) does not
    /// move, so no Redis counter changes.
    pub async fn ship_in(&self, tx: &mut sqlx::PgConnection, lines: &[Line]) -> Result<()> {
        let update = "UPDATE inventory SET reserved = reserved - $2, stock_count = stock_count - $2, version = version + 1, updated_at = now() \
                      WHERE sku_id = $1 AND reserved >= $2 AND stock_count >= $2";
        match update_each(tx, lines, update).await? {
            None => Ok(()),
            Some(sku) => Err(Error::Conflict {
                code: "nothing_to_pick",
                message: format!("SKU {sku} has fewer units on the shelf or in orders than this shipment takes"),
                details: Some(serde_json::json!({ "sku_id": sku })),
            }),
        }
    }

    /// Brings the counters of returned units up to PostgreSQL's figures.
    pub async fn after_unconfirm(&self, lines: &[Line]) {
        if self.redis_usable_now() {
            let skus: Vec<Uuid> = lines.iter().map(|l| l.sku_id).collect();
            counters::resync(self.shop, &skus).await;
        }
    }

    /// Returns expired reservations to stock and settles stalled
    /// confirmations. Safe to run in many processes at once: each hold is
    /// returned by exactly one of them.
    pub async fn sweep(&self) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        if self.redis_usable().await {
            match redis_path::sweep(self).await {
                Ok(r) => report = r,
                Err(Fail::Shop(err)) => return Err(err),
                Err(Fail::Redis(err)) => self.redis_failed(&err),
            }
        }
        let gate = self.rt().db_gate.read().await;
        report.expired += db_path::sweep(self.shop, self.mirror()).await?;
        drop(gate);
        Stats::add(&self.shop.stats.inventory.expired_returned, report.expired);
        Ok(report)
    }

    /// Rebuilds each SKU's `held` from the live reservation records, then
    /// compares every loaded counter with PostgreSQL minus live
    /// reservations, and rewrites whatever drifted.
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        counters::reconcile(self.shop).await
    }

    /// Loads every counter from PostgreSQL that is not loaded yet (startup
    /// warm-up, so the first shoppers do not pay for it).
    pub async fn preload(&self) -> Result<u64> {
        counters::preload(self.shop).await
    }

    /// The SKUs a seller (or an admin, any) may manage, with live figures.
    pub async fn seller_skus(&self, scope: SellerScope, limit: i64, after: Option<Uuid>) -> Result<SkuStockPage> {
        stock::list(self.shop, scope, limit, after).await
    }

    /// Sets a SKU's stock. Refused (409, with the numbers) below what is
    /// reserved and held right now, reservations in flight included.
    pub async fn set_stock(&self, scope: SellerScope, sku: Uuid, stock_count: i64) -> Result<SkuStockRow> {
        stock::set_stock(self, scope, sku, stock_count).await
    }

    /// Gives SKUs the catalog just created their inventory rows, inside the
    /// catalog's transaction, so a SKU never exists without stock figures.
    pub async fn add_skus_in(&self, tx: &mut sqlx::PgConnection, skus: &[(Uuid, i64)]) -> Result<()> {
        stock::add_skus_in(tx, skus).await
    }

    /// Splits a hot SKU's counter into `shards` sub-counters (1: one
    /// counter again). The total is carried over exactly.
    pub async fn set_shards(&self, scope: SellerScope, sku: Uuid, shards: u32) -> Result<SkuStockRow> {
        stock::set_shards(self, scope, sku, shards).await
    }

    /// Carves `quantity` units of `sku` out of normal sale until `until`
    /// (or until released) as one hold under `token`, inside the caller's
    /// transaction: refused with `out_of_stock` when fewer are available,
    /// live Redis holds included. Finish with [`Inventory::commit_set_aside`].
    /// Give the rest back with [`Inventory::release`]`(token)`.
    pub async fn set_aside_in(&self, tx: &mut sqlx::PgConnection, token: Uuid, sku: Uuid, quantity: u32, until: DateTime<Utc>) -> Result<SetAside<'a>> {
        set_aside::set_aside_in(self, tx, token, sku, quantity, until).await
    }

    /// Commits a transaction carrying a set-aside, keeping Redis in step.
    pub async fn commit_set_aside(&self, tx: sqlx::Transaction<'_, sqlx::Postgres>, set_aside: SetAside<'_>) -> Result<()> {
        set_aside::commit(self, tx, set_aside).await
    }

    /// Moves `quantity` units from the set-aside `token` into `reserved`
    /// (an order placed from it) inside the caller's transaction; refused
    /// with `out_of_stock` when the set-aside has fewer left.
    pub async fn take_from_set_aside_in(&self, tx: &mut sqlx::PgConnection, token: Uuid, sku: Uuid, quantity: u32) -> Result<()> {
        set_aside::take_in(tx, token, sku, quantity).await
    }

    /// Puts a cancelled order's units back into the set-aside `token`;
    /// false when it is gone (then return them with [`Inventory::unconfirm_in`]).
    pub async fn put_back_into_set_aside_in(&self, tx: &mut sqlx::PgConnection, token: Uuid, sku: Uuid, quantity: u32) -> Result<bool> {
        set_aside::put_back_in(tx, token, sku, quantity).await
    }

    /// Units left in the set-aside `token` (`None`: released or never made).
    pub async fn set_aside_left(&self, token: Uuid) -> Result<Option<i64>> {
        set_aside::left(&self.shop.db, token).await
    }

    /// Compares the counters of `skus` with PostgreSQL minus live holds and
    /// rewrites any that drifted (the per-SKU part of [`Inventory::reconcile`]).
    pub async fn reconcile_skus(&self, skus: &[Uuid]) -> Result<Vec<Drift>> {
        if !self.redis_usable_now() {
            return Ok(Vec::new());
        }
        counters::reconcile_skus(self.shop, skus).await
    }

    /// Drops every counter and reservation key under this shop's prefix,
    /// e.g. after the demo catalog is reseeded with the same SKU ids.
    pub async fn forget_counters(&self) -> Result<u64> {
        self.shop.kv.delete_matching("inv:*").await.map_err(Into::into)
    }

    /// Whether to use Redis now. The half-open probe rebuilds the counters
    /// from PostgreSQL (and the holds Redis still has) before anyone trusts
    /// them again: while the DB-only path ran, PostgreSQL moved without
    /// them. The rebuild runs in a task of its own, so a caller that goes
    /// away (a client disconnecting, a request timeout) cannot cut it short
    /// and leave the breaker half-open with no one to report; the caller
    /// waits for it, as every DB-path caller waits on the gate it holds.
    async fn redis_usable(&self) -> bool {
        match self.rt().breaker.permit() {
            Permit::Go => true,
            Permit::Refuse => false,
            Permit::Probe => {
                let shop = self.shop.clone();
                tokio::spawn(async move { rebuild(&shop).await }).await.unwrap_or(false)
            }
        }
    }

    /// Like [`Self::redis_usable`] but never probes: for side effects
    /// (returning units to a counter) that may simply be skipped.
    fn redis_usable_now(&self) -> bool {
        self.rt().breaker.state() == crate::breaker::State::Closed
    }

    /// How a DB-path change reaches the counters; ask under the gate's read
    /// guard. With the breaker closed, Redis is in use, so the change must
    /// be mirrored there; otherwise the rebuild before Redis returns counts
    /// it (it waits for the gate).
    fn mirror(&self) -> db_path::Mirror<'_> {
        if self.redis_usable_now() { db_path::Mirror::Required(&self.rt().breaker) } else { db_path::Mirror::Rebuild }
    }

    fn redis_failed(&self, err: &redis::RedisError) {
        tracing::warn!(error = %err, "Redis failed during an inventory call; using the DB-only path");
        Stats::add(&self.shop.stats.inventory.redis_failures, 1);
        self.rt().breaker.failure();
    }
}

/// The probe's rebuild: settles the tokens left in doubt, then reconciles
/// every counter and `held`, holding the gate's write side so no DB-path
/// change lands unseen, and reports to the breaker however it ends.
async fn rebuild(shop: &Shop) -> bool {
    /// Reports a failure if the rebuild ends without a verdict (a panic).
    struct Verdict<'a>(&'a Breaker, bool);
    impl Drop for Verdict<'_> {
        fn drop(&mut self) {
            if !self.1 {
                self.0.failure();
            }
        }
    }
    let rt = &shop.inventory_rt;
    let mut verdict = Verdict(&rt.breaker, false);
    let _exclusive = rt.db_gate.write().await;
    let result = async {
        settle_doubts(shop).await?;
        counters::reconcile(shop).await
    }
    .await;
    verdict.1 = true;
    match result {
        // A call let through before the trip may fail while the rebuild
        // runs and open the breaker again: then it did not close, and the
        // caller must not use Redis (it would hold units on counters the DB
        // path, still in use, keeps selling under). The next probe rebuilds.
        Ok(report) if !rt.breaker.success() => {
            tracing::warn!(checked = report.checked, "Redis rebuilt but the breaker opened again meanwhile; staying on the DB-only path");
            false
        }
        Ok(report) => {
            tracing::info!(
                corrected = report.corrected.len(),
                held_corrected = report.held_corrected.len(),
                checked = report.checked,
                "Redis is back: counters rebuilt, reservations use Redis again"
            );
            true
        }
        Err(err) => {
            rt.breaker.failure();
            tracing::warn!(error = %err, "Redis probe failed; staying on the DB-only path");
            false
        }
    }
}

/// Fences every token in doubt: a hold Redis made for it stays (a retry
/// finds it), and otherwise the token can only be held on the DB path.
async fn settle_doubts(shop: &Shop) -> Result<()> {
    let rt = &shop.inventory_rt;
    let tokens: Vec<Uuid> = rt.in_doubt.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect();
    for token in tokens {
        match redis_path::settle_reserve(shop, token, rt.settings.reservation_ttl).await {
            // Held, fenced, or already ended: either way no longer in doubt.
            Ok(_) | Err(Fail::Shop(Error::Conflict { code: "reservation_expired", .. })) => rt.doubt(token, false),
            Err(Fail::Redis(err)) => return Err(redis_unavailable(err, rt.breaker.retry_after())),
            Err(Fail::Shop(err)) => return Err(err),
        }
    }
    Ok(())
}

/// A refusal the customer caused (nothing to sell), as opposed to a fault.
fn is_rejection(err: &Error) -> bool {
    matches!(err, Error::Conflict { code: "out_of_stock", .. })
}

/// Validates lines and merges repeats of a SKU, ordered by SKU so every
/// path locks rows in the same order.
fn normalise(lines: &[Line]) -> Result<Vec<Line>> {
    if lines.is_empty() {
        return Err(Error::Invalid("a reservation needs at least one line".into()));
    }
    let mut merged: Vec<Line> = Vec::with_capacity(lines.len());
    for line in lines {
        if line.quantity == 0 {
            return Err(Error::Invalid(format!("quantity for SKU {} must be at least 1", line.sku_id)));
        }
        match merged.iter_mut().find(|l| l.sku_id == line.sku_id) {
            Some(existing) => existing.quantity = existing.quantity.saturating_add(line.quantity),
            None => merged.push(*line),
        }
    }
    if merged.len() > MAX_LINES {
        return Err(Error::Invalid(format!("a reservation may hold at most {MAX_LINES} SKUs")));
    }
    if let Some(line) = merged.iter().find(|l| l.quantity > MAX_QUANTITY) {
        return Err(Error::Invalid(format!("quantity for SKU {} is above the limit of {MAX_QUANTITY}", line.sku_id)));
    }
    merged.sort_by_key(|l| l.sku_id);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_merged_sorted_and_bounded() {
        let a = Uuid::from_u128(2);
        let b = Uuid::from_u128(1);
        let merged = normalise(&[Line { sku_id: a, quantity: 1 }, Line { sku_id: b, quantity: 2 }, Line { sku_id: a, quantity: 3 }]).unwrap();
        assert_eq!(merged, vec![Line { sku_id: b, quantity: 2 }, Line { sku_id: a, quantity: 4 }]);
        assert!(normalise(&[]).is_err());
        assert!(normalise(&[Line { sku_id: a, quantity: 0 }]).is_err());
        assert!(normalise(&[Line { sku_id: a, quantity: MAX_QUANTITY + 1 }]).is_err());
    }
}

//! Flash sales: a quantity of one SKU at a price for a window, a limit per
//! customer, a fair waitlist for the overflow, and live figures.
//!
//! The design's three layers: the gateway's per-customer rate limit (the
//! API calls [`Flash::limit`]), one atomic Redis script per buy on the
//! sale's own counter (`scripts.rs`: window, limit, units and line in one
//! step), and the line, which a unit coming back (a declined card, a
//! payment window that ran out, an order cancelled before shipping) serves
//! first come, first served, in the same script that takes the unit back.
//!
//! Where the units are: creating a sale sets them aside in inventory (one
//! DB-path hold under the sale's id: `Inventory::set_aside_in`), so they
//! are never sold at the regular price meanwhile. A customer's hold lives
//! in Redis only, with a payment window; the unit goes into their cart at
//! the sale's price (`cart::FlashHold`), and checkout confirms the hold
//! ([`Flash::confirm_in`]) instead of reserving the unit again: the order's
//! transaction moves it out of the set-aside into `reserved`, and the
//! set-aside can never give out more than it holds, PostgreSQL's own
//! guard against overselling. `flash_outcomes` records how a hold ended
//! whenever PostgreSQL must know (an order, or the sweeper's verdict on a
//! confirmation that stalled), and decides any race between the two.
//!
//! The schedule (`schedule.rs`) runs in every process and claims each
//! step with `FOR UPDATE SKIP LOCKED`: pre-load before the start, open at
//! the start, close at the end, finish once no hold is left in its payment
//! window (the set-aside's remainder goes back to stock, the SKU is
//! reconciled, the report is kept). `live.rs` samples the figures into a
//! Redis stream the seller's Server-Sent Events read and resume from.
//!
//! Redis keys: `flash:{<sale>}:<name>`, one hash tag per sale, so every
//! script touches one Redis Cluster slot (see `scripts.rs` for each key).

mod live;
mod news;
mod schedule;
mod scripts;

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use model::flash::{FlashReport, FlashSale, FlashSalePage, FlashSaleStatus, MyFlashState, NewFlashSale, PublicFlashSale, PublicFlashStatus};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::cart::FlashHold;
use crate::inventory::{Line, SellerScope};
use crate::ratelimit::Limit;
use crate::{Error, Result, Shop};

pub use schedule::TickReport;

/// The longest a request may wait for news of a customer's state (the
/// gateway answers 504 at 30 s).
pub const MAX_WAIT: Duration = Duration::from_secs(25);

/// The shortest pause between two reads of a parked customer's state.
const LOOK_AGAIN: Duration = Duration::from_millis(250);

/// A short tag of a customer's state (an HTTP entity tag's value): equal
/// tags, equal states. A place in line's tag ends in `-p<position>` after
/// the hash of the rest, so a long poll can tell a place that moved from a
/// state that changed ([`Flash::me_changed`]).
pub fn tag(state: &MyFlashState) -> String {
    use sha2::Digest;
    let hash = |state: &MyFlashState| -> String {
        let digest = sha2::Sha256::digest(serde_json::to_vec(state).unwrap_or_default());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    };
    match state {
        MyFlashState::Waiting { position, wait_until } => {
            format!("{}-p{position}", hash(&MyFlashState::Waiting { position: 0, wait_until: wait_until.clone() }))
        }
        other => hash(other),
    }
}

/// A tag without the place in line it may end with.
fn apart_from_place(tag: &str) -> &str {
    tag.split_once("-p").map_or(tag, |(rest, _)| rest)
}

/// Most units one sale may offer, and most per customer.
pub const MAX_QUANTITY: i64 = 100_000;
pub const MAX_PER_USER: i64 = 100;

#[derive(Debug, Clone)]
pub struct Settings {
    /// How long before the start the schedule pre-loads a sale's counter.
    pub preload_lead: Duration,
    /// How long a customer's hold waits for their payment.
    pub pay_window: Duration,
    /// How long a buy that found no unit waits in line before `sold_out`.
    pub wait: Duration,
    /// Flash requests allowed per customer per second (buy, my state).
    pub requests_per_sec: u32,
    /// How often each process runs the schedule, the sweeper and the sampler.
    pub tick: Duration,
    /// How long a started confirmation may take before the sweeper asks
    /// PostgreSQL how it ended.
    pub confirm_grace: Duration,
    /// Order transactions of one sale this process runs at once. Every one
    /// ends on the sale's two hot rows, so more only queue on the row lock
    /// while holding pool connections the rest of the shop needs.
    pub confirm_concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            preload_lead: Duration::from_secs(300),
            pay_window: Duration::from_secs(180),
            wait: Duration::from_secs(30),
            requests_per_sec: 5,
            tick: Duration::from_millis(250),
            confirm_grace: Duration::from_secs(30),
            confirm_concurrency: 8,
        }
    }
}

/// This process's flash state: its settings, and one queue per sale in
/// front of the sale's hot rows (admission control: a checkout waits here,
/// holding nothing, instead of in PostgreSQL holding a pool connection).
/// A queue is a few bytes and stays until the process ends.
pub struct Runtime {
    pub settings: Settings,
    news: std::sync::Arc<news::News>,
    confirm_queues: std::sync::Mutex<std::collections::HashMap<Uuid, std::sync::Arc<tokio::sync::Semaphore>>>,
    confirm_waiting: crate::parking::Gauge,
}

impl Runtime {
    pub fn new(settings: Settings) -> Self {
        Self { settings, news: Default::default(), confirm_queues: Default::default(), confirm_waiting: Default::default() }
    }

    fn queue(&self, sale: Uuid) -> std::sync::Arc<tokio::sync::Semaphore> {
        let mut queues = self.confirm_queues.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        queues.entry(sale).or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(self.settings.confirm_concurrency.max(1)))).clone()
    }
}

/// A place in the confirm queues of an order's sales, held until its
/// transaction ends.
pub struct ConfirmTurn {
    _permits: Vec<tokio::sync::OwnedSemaphorePermit>,
}

/// Tokens handed to a script that may promote customers from the line:
/// more units than this coming back at once are promoted by the next tick.
const PROMOTION_TOKENS: usize = 16;

/// A buy's answer: a hold (200) or a place in line (202).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bought {
    Reserved(MyFlashState),
    Waiting(MyFlashState),
}

pub struct Flash<'a> {
    shop: &'a Shop,
}

/// A sale row as PostgreSQL has it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    id: Uuid,
    seller_id: Option<Uuid>,
    sku_id: Uuid,
    quantity: i32,
    price_cents: i64,
    currency: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    per_user_limit: i32,
    status: String,
    preloaded_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    report: Option<sqlx::types::Json<FlashReport>>,
}

const COLUMNS: &str = "id, seller_id, sku_id, quantity, price_cents, currency::text AS currency, starts_at, ends_at, \
                       per_user_limit, status, preloaded_at, created_at, report";

impl Row {
    fn status(&self) -> FlashSaleStatus {
        FlashSaleStatus::parse(&self.status).unwrap_or(FlashSaleStatus::Ended)
    }
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_else(Utc::now)
}

fn parse_time(param: &str, raw: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Error::bad_input(param, "expected an RFC 3339 time, e.g. 2026-12-31T18:00:00Z"))
}

fn rejected(code: &'static str, message: impl Into<String>) -> Error {
    Error::Rejected { code, message: message.into() }
}

fn conflict(code: &'static str, message: impl Into<String>, details: Option<serde_json::Value>) -> Error {
    Error::Conflict { code, message: message.into(), details }
}

fn hold_ended(sale: Uuid) -> Error {
    conflict(
        "reservation_expired",
        "your flash sale reservation ran out before payment; its unit went to the next customer in line",
        Some(json!({ "flash_sale_id": sale })),
    )
}

/// A script reply's first element says what happened; the rest are details.
fn head(reply: &[String]) -> &str {
    reply.first().map(String::as_str).unwrap_or("")
}

fn int(reply: &[String], i: usize) -> i64 {
    reply.get(i).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A customer promoted from the line by a script: (user, token, qty, expiry).
#[derive(Debug, Clone, Copy)]
struct Promotion {
    user: Uuid,
    token: Uuid,
    quantity: i64,
    pay_by_ms: i64,
}

fn promotions(flat: &[String]) -> Vec<Promotion> {
    flat.chunks(4)
        .filter_map(|c| {
            Some(Promotion {
                user: Uuid::try_parse(c.first()?).ok()?,
                token: Uuid::try_parse(c.get(1)?).ok()?,
                quantity: c.get(2)?.parse().ok()?,
                pay_by_ms: c.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

impl<'a> Flash<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    fn settings(&self) -> &Settings {
        &self.shop.flash_rt.settings
    }

    /// Waits for a turn in each of the holds' sales' confirm queues (in sale
    /// order, so two orders never wait on each other).
    pub async fn confirm_turn(&self, holds: &[FlashHold]) -> ConfirmTurn {
        let mut sales: Vec<Uuid> = holds.iter().map(|h| h.sale_id).collect();
        sales.sort();
        sales.dedup();
        let mut permits = Vec::with_capacity(sales.len());
        for sale in sales {
            let queue = self.shop.flash_rt.queue(sale);
            // The semaphore is never closed.
            let permit = match queue.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    // Waiting, not working: the request's place at the
                    // gateway goes to someone who works (the queue is this
                    // stage's own bound on the work).
                    crate::parking::park();
                    let _waiting = self.shop.flash_rt.confirm_waiting.enter();
                    queue.acquire_owned().await.expect("confirm queue open")
                }
            };
            permits.push(permit);
        }
        ConfirmTurn { _permits: permits }
    }

    /// The sale's keys in the order the scripts take them.
    fn keys(&self, sale: Uuid) -> Vec<String> {
        scripts::KEYS.iter().map(|name| self.key(sale, name)).collect()
    }

    fn key(&self, sale: Uuid, name: &str) -> String {
        self.shop.kv.key(&format!("flash:{{{sale}}}:{name}"))
    }

    fn invoke(&self, script: &'static redis::Script, sale: Uuid) -> redis::ScriptInvocation<'static> {
        let mut call = script.prepare_invoke();
        for key in self.keys(sale) {
            call.key(key);
        }
        call
    }

    fn ttl_ms(&self) -> u64 {
        self.settings().pay_window.as_millis() as u64
    }

    fn fresh_tokens(call: &mut redis::ScriptInvocation<'_>) {
        for _ in 0..PROMOTION_TOKENS {
            call.arg(Uuid::new_v4().to_string());
        }
    }

    /// The per-customer flash budget (5 requests a second by default):
    /// 429 with Retry-After beyond it. Every flash endpoint a customer
    /// calls spends from one bucket.
    pub async fn limit(&self, user: Uuid) -> Result<()> {
        let per_second = self.settings().requests_per_sec.max(1);
        let limit = Limit { per_second: per_second as f64, burst: per_second };
        self.shop.ratelimit().check(&format!("user:{user}"), "flash", limit).await?.or_refuse()
    }

    async fn row(&self, id: Uuid) -> Result<Row> {
        sqlx::query_as::<_, Row>(&format!("SELECT {COLUMNS} FROM flash_sales WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.shop.db)
            .await?
            .ok_or(Error::NotFound { what: "flash sale" })
    }

    /// A sale the caller may manage: a seller's own (another's is 404, as
    /// if absent), an admin's any.
    async fn own_row(&self, scope: SellerScope, id: Uuid) -> Result<Row> {
        let row = self.row(id).await?;
        match scope {
            SellerScope::Seller(seller) if row.seller_id != Some(seller) => Err(Error::NotFound { what: "flash sale" }),
            _ => Ok(row),
        }
    }

    /// Units confirmed into live orders, from PostgreSQL.
    async fn sold(&self, sale: Uuid) -> Result<i64> {
        let sold: i64 = sqlx::query_scalar("SELECT coalesce(sum(quantity), 0)::bigint FROM flash_outcomes WHERE sale_id = $1 AND outcome = 'confirmed'")
            .bind(sale)
            .fetch_one(&self.shop.db)
            .await?;
        Ok(sold)
    }

    /// Units not yet held or sold: the live counter once pre-loaded.
    async fn remaining(&self, row: &Row) -> Result<i64> {
        match row.status() {
            FlashSaleStatus::Ended | FlashSaleStatus::Cancelled => return Ok(0),
            _ => {}
        }
        let left: Option<i64> = redis::cmd("HGET").arg(self.key(row.id, "meta")).arg("left").query_async(&mut self.shop.kv.conn()).await?;
        match left {
            Some(left) => Ok(left.max(0)),
            None => Ok((i64::from(row.quantity) - self.sold(row.id).await?).max(0)),
        }
    }

    async fn view(&self, row: Row) -> Result<FlashSale> {
        let details = self.shop.catalog().sku_details(&[row.sku_id]).await?;
        let d = details.get(&row.sku_id).ok_or(Error::NotFound { what: "SKU" })?;
        Ok(FlashSale {
            id: row.id,
            sku_id: row.sku_id,
            product_id: d.product_id,
            title: d.title.clone(),
            quantity: row.quantity.into(),
            price_cents: row.price_cents,
            regular_price_cents: d.price_cents,
            currency: row.currency.clone(),
            starts_at: rfc3339(row.starts_at),
            ends_at: rfc3339(row.ends_at),
            per_user_limit: row.per_user_limit.into(),
            status: row.status(),
            remaining: self.remaining(&row).await?,
            created_at: rfc3339(row.created_at),
            preloaded_at: row.preloaded_at.map(rfc3339),
            report: row.report.map(|r| r.0),
        })
    }

    /// Creates a sale of a SKU the caller sells (an admin: any), setting
    /// its units aside at once. Refused: a quantity above what is available
    /// (409 `not_enough_stock`), a sale of the same SKU overlapping the
    /// window (409 `overlapping_sale`), a window in the past or ending
    /// before it starts (422), a limit or quantity below 1 (422).
    pub async fn create(&self, scope: SellerScope, new: &NewFlashSale) -> Result<FlashSale> {
        let starts_at = parse_time("starts_at", &new.starts_at)?;
        let ends_at = parse_time("ends_at", &new.ends_at)?;
        if !(1..=MAX_QUANTITY).contains(&new.quantity) {
            return Err(rejected("invalid_quantity", format!("quantity must be 1 to {MAX_QUANTITY}")));
        }
        if !(1..=MAX_PER_USER).contains(&new.per_user_limit) {
            return Err(rejected("invalid_limit", format!("per_user_limit must be 1 to {MAX_PER_USER}")));
        }
        if new.price_cents < 0 {
            return Err(rejected("invalid_price", "price_cents cannot be negative"));
        }
        if starts_at < Utc::now() {
            return Err(rejected("window_in_the_past", "starts_at is in the past: a sale must start now or later"));
        }
        if ends_at <= starts_at {
            return Err(rejected("invalid_window", "ends_at must be after starts_at"));
        }
        let owner = self.shop.catalog().sku_seller(new.sku_id).await?.ok_or(Error::NotFound { what: "SKU" })?;
        if let SellerScope::Seller(seller) = scope {
            if seller != owner {
                return Err(Error::NotFound { what: "SKU" });
            }
        }
        let details = self.shop.catalog().sku_details(&[new.sku_id]).await?;
        let currency = details.get(&new.sku_id).map(|d| d.currency.clone()).ok_or(Error::NotFound { what: "SKU" })?;

        let id = Uuid::now_v7();
        let inventory = self.shop.inventory();
        let mut tx = self.shop.db.begin().await?;
        // One creator per SKU at a time, so two overlapping sales cannot
        // both pass the check below.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('flash_sale:' || $1::text, 0))")
            .bind(new.sku_id)
            .execute(&mut *tx)
            .await?;
        let overlapping: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM flash_sales WHERE sku_id = $1 AND status <> 'cancelled' \
             AND tstzrange(starts_at, ends_at) && tstzrange($2, $3) LIMIT 1",
        )
        .bind(new.sku_id)
        .bind(starts_at)
        .bind(ends_at)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(other) = overlapping {
            return Err(conflict(
                "overlapping_sale",
                format!("flash sale {other} of this SKU overlaps that window; one sale per SKU at a time"),
                Some(json!({ "flash_sale_id": other })),
            ));
        }
        sqlx::query(
            "INSERT INTO flash_sales (id, seller_id, sku_id, quantity, price_cents, currency, starts_at, ends_at, per_user_limit) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(owner)
        .bind(new.sku_id)
        .bind(new.quantity as i32)
        .bind(new.price_cents)
        .bind(&currency)
        .bind(starts_at)
        .bind(ends_at)
        .bind(new.per_user_limit as i32)
        .execute(&mut *tx)
        .await?;
        // The set-aside outlives the sale by its last payment window and a
        // margin: the schedule returns it at the end, the inventory sweeper
        // if every process were gone.
        let until = ends_at + chrono::Duration::from_std(self.settings().pay_window + self.settings().confirm_grace).unwrap_or_default() + chrono::Duration::hours(1);
        let set_aside = match inventory.set_aside_in(&mut tx, id, new.sku_id, new.quantity as u32, until).await {
            Ok(set_aside) => set_aside,
            Err(Error::Conflict { code: "out_of_stock", details, .. }) => {
                let available = details.as_ref().and_then(|d| d["skus"][0]["available"].as_i64()).unwrap_or(0);
                return Err(conflict(
                    "not_enough_stock",
                    format!("only {available} units of this SKU are available, {} asked for the sale", new.quantity),
                    Some(json!({ "available": available, "requested": new.quantity })),
                ));
            }
            Err(err) => return Err(err),
        };
        inventory.commit_set_aside(tx, set_aside).await?;
        tracing::info!(sale = %id, sku = %new.sku_id, quantity = new.quantity, "flash sale created; its units are set aside");
        self.view(self.row(id).await?).await
    }

    pub async fn get(&self, scope: SellerScope, id: Uuid) -> Result<FlashSale> {
        let row = self.own_row(scope, id).await?;
        self.view(row).await
    }

    /// The caller's sales (an admin: everyone's), newest first, keyset-paged.
    pub async fn list(&self, scope: SellerScope, limit: i64, after: Option<Uuid>) -> Result<FlashSalePage> {
        let limit = limit.clamp(1, 100);
        let seller = match scope {
            SellerScope::Seller(seller) => Some(seller),
            SellerScope::Admin => None,
        };
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM flash_sales WHERE ($1::uuid IS NULL OR seller_id = $1) AND ($2::uuid IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(seller)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.shop.db)
        .await?;
        let more = rows.len() as i64 > limit;
        let mut items = Vec::new();
        for row in rows.into_iter().take(limit as usize) {
            items.push(self.view(row).await?);
        }
        let next_cursor = if more { items.last().map(|s| s.id) } else { None };
        Ok(FlashSalePage { items, next_cursor })
    }

    /// Cancels a sale before its start; its units go back to normal stock.
    /// Cancelling a cancelled sale answers with it again; one that started
    /// (or that someone bought from) is refused, 409 `sale_started`.
    pub async fn cancel(&self, scope: SellerScope, id: Uuid) -> Result<FlashSale> {
        let row = self.own_row(scope, id).await?;
        if row.status() != FlashSaleStatus::Cancelled {
            let started = || conflict("sale_started", "this flash sale has started; it can no longer be cancelled", Some(json!({ "status": row.status() })));
            let mut tx = self.shop.db.begin().await?;
            let locked: Option<(String, bool)> = sqlx::query_as("SELECT status, starts_at <= now() FROM flash_sales WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            match locked {
                Some((status, _)) if status == "cancelled" => {}
                Some((status, false)) if status == "scheduled" => {
                    // Redis first, atomic with any buy: a sale someone holds
                    // or bought from has started, whatever the clocks say.
                    let reply: Vec<String> = self.invoke(&scripts::CANCEL, id).invoke_async(&mut self.shop.kv.conn()).await?;
                    if head(&reply) != "OK" {
                        return Err(started());
                    }
                    sqlx::query("UPDATE flash_sales SET status = 'cancelled' WHERE id = $1").bind(id).execute(&mut *tx).await?;
                    tx.commit().await?;
                    tracing::info!(sale = %id, "flash sale cancelled before its start");
                }
                _ => return Err(started()),
            }
        }
        // The units go back now; if this fails the schedule retries it.
        if let Err(err) = self.return_set_aside(id).await {
            tracing::warn!(sale = %id, error = %err, "cancelled sale's units not returned yet; the schedule will");
        }
        self.view(self.row(id).await?).await
    }

    /// Returns what is left of the sale's set-aside to normal stock, once.
    async fn return_set_aside(&self, id: Uuid) -> Result<i64> {
        let left = self.shop.inventory().set_aside_left(id).await?.unwrap_or(0);
        self.shop.inventory().release(id).await?;
        sqlx::query("UPDATE flash_sales SET returned_at = coalesce(returned_at, now()) WHERE id = $1").bind(id).execute(&self.shop.db).await?;
        Ok(left)
    }

    /// The public page's data.
    pub async fn public(&self, id: Uuid) -> Result<PublicFlashSale> {
        let sale = self.view(self.row(id).await?).await?;
        let now = Utc::now();
        let starts = parse_time("starts_at", &sale.starts_at)?;
        let ends = parse_time("ends_at", &sale.ends_at)?;
        let status = match sale.status {
            FlashSaleStatus::Cancelled => PublicFlashStatus::Cancelled,
            FlashSaleStatus::Ended | FlashSaleStatus::Closing => PublicFlashStatus::Ended,
            _ if now >= ends => PublicFlashStatus::Ended,
            _ if now < starts => PublicFlashStatus::Scheduled,
            _ if sale.remaining == 0 => PublicFlashStatus::SoldOut,
            _ => PublicFlashStatus::Live,
        };
        Ok(PublicFlashSale {
            id: sale.id,
            sku_id: sale.sku_id,
            product_id: sale.product_id,
            title: sale.title,
            price_cents: sale.price_cents,
            regular_price_cents: sale.regular_price_cents,
            currency: sale.currency,
            starts_at: sale.starts_at,
            ends_at: sale.ends_at,
            per_user_limit: sale.per_user_limit,
            remaining: sale.remaining,
            status,
            server_time: rfc3339(now),
        })
    }

    /// A customer presses Buy: a hold on `quantity` units (fewer if fewer
    /// are left), in their cart at the sale price until `pay_by`; or a
    /// place in line when nothing is left but units may come back. The
    /// limit, the units and the line are checked and taken in one script.
    /// A customer who already holds units gets that hold back (two tabs,
    /// one hold). Refused: over the limit (422 `over_limit`), nothing left
    /// and nothing to wait for or a wait that is over (409 `sold_out`),
    /// before the start (409 `sale_not_started`), after the end (409
    /// `sale_ended`), cancelled (409 `sale_cancelled`).
    pub async fn buy(&self, user: Uuid, sale: Uuid, quantity: i64) -> Result<Bought> {
        if quantity < 1 {
            return Err(rejected("invalid_quantity", "quantity must be at least 1"));
        }
        let started = Instant::now();
        let mut call = self.invoke(&scripts::BUY, sale);
        call.arg(user.to_string())
            .arg(quantity)
            .arg(self.ttl_ms())
            .arg(self.settings().wait.as_millis() as u64)
            .arg(Uuid::new_v4().to_string());
        let reply: Vec<String> = call.invoke_async(&mut self.shop.kv.conn()).await?;
        live::observe_latency(self.shop, &self.key(sale, "lat"), started.elapsed()).await;
        match head(&reply) {
            "OK" | "HELD" => {
                let hold = hold_of(sale, &reply)?;
                self.shop.cart().put_flash_hold(user, &hold).await?;
                Ok(Bought::Reserved(reserved(&hold, reply.get(6).map(String::as_str) == Some("1"))))
            }
            "WAIT" => Ok(Bought::Waiting(MyFlashState::Waiting { position: int(&reply, 1), wait_until: rfc3339(from_ms(int(&reply, 2))) })),
            "LIMIT" => {
                let (bought, limit) = (int(&reply, 1), int(&reply, 2));
                Err(rejected(
                    "over_limit",
                    format!("at most {limit} per customer in this sale; you hold or bought {bought}, so {} more at most", (limit - bought).max(0)),
                ))
            }
            "SOLD_OUT" => Err(sold_out()),
            "EARLY" => Err(conflict(
                "sale_not_started",
                "this flash sale has not started yet",
                Some(json!({ "starts_at": rfc3339(from_ms(int(&reply, 1))) })),
            )),
            "ENDED" => Err(conflict("sale_ended", "this flash sale is over", None)),
            "CANCELLED" => Err(conflict("sale_cancelled", "this flash sale was cancelled", None)),
            "NOSALE" => Err(self.not_loaded(sale).await),
            other => Err(Error::internal(format!("flash buy script answered {other:?}"))),
        }
    }

    /// Why a sale has no counter: unknown, not started, over, or (the
    /// schedule is late) about to open.
    async fn not_loaded(&self, sale: Uuid) -> Error {
        let row = match self.row(sale).await {
            Ok(row) => row,
            Err(err) => return err,
        };
        let now = Utc::now();
        match row.status() {
            FlashSaleStatus::Cancelled => conflict("sale_cancelled", "this flash sale was cancelled", None),
            FlashSaleStatus::Ended | FlashSaleStatus::Closing => conflict("sale_ended", "this flash sale is over", None),
            _ if now >= row.ends_at => conflict("sale_ended", "this flash sale is over", None),
            _ if now < row.starts_at => conflict("sale_not_started", "this flash sale has not started yet", Some(json!({ "starts_at": rfc3339(row.starts_at) }))),
            _ => Error::Unavailable {
                dependency: crate::error::Dependency::Redis,
                retry_after: Duration::from_secs(1),
                source: "the flash sale is opening: its counter is not loaded yet".into(),
            },
        }
    }

    /// The customer's state in the sale: held (with `pay_by`), in line
    /// (position), sold out, purchased, or nothing. Makes sure a live hold
    /// is in their cart (a promotion writes it there after its script).
    pub async fn me(&self, user: Uuid, sale: Uuid) -> Result<MyFlashState> {
        let reply: Vec<String> = self.invoke(&scripts::ME, sale).arg(user.to_string()).invoke_async(&mut self.shop.kv.conn()).await?;
        match head(&reply) {
            "HELD" => {
                let hold = hold_of(sale, &reply)?;
                self.shop.cart().put_flash_hold(user, &hold).await?;
                Ok(reserved(&hold, reply.get(6).map(String::as_str) == Some("1")))
            }
            "WAIT" => Ok(MyFlashState::Waiting { position: int(&reply, 1), wait_until: rfc3339(from_ms(int(&reply, 2))) }),
            "BOUGHT" => Ok(MyFlashState::Purchased { quantity: int(&reply, 1) }),
            "SOLD_OUT" => Ok(MyFlashState::SoldOut),
            _ => {
                self.row(sale).await?;
                Ok(MyFlashState::None)
            }
        }
    }

    /// The customer's state once it is no longer the one tagged `known`
    /// ([`tag`]; a moved place in line alone does not count), or as it is
    /// after `wait` (at most [`MAX_WAIT`]): a long poll. The request parks
    /// until news for this customer or sale
    /// (`news.rs`), its wait, or the end of the customer's wait in line,
    /// whichever comes first; a shopper in line thus costs one parked
    /// request, not a read a second.
    pub async fn me_changed(&self, user: Uuid, sale: Uuid, known: &str, wait: Duration) -> Result<MyFlashState> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let waiter = self.shop.flash_rt.news.wait_on(&self.shop.kv, sale, user);
        loop {
            let news = waiter.arm();
            let state = self.me(user, sale).await?;
            let now = tokio::time::Instant::now();
            // A place that only moved (someone ahead left or was served)
            // is not news: answering it, a line of 20,000 moving all the
            // time kept every poll answering and starting again, 13 times
            // per shopper. The new place goes out with the next real news
            // or at the end of the wait.
            if apart_from_place(&tag(&state)) != apart_from_place(known) || now >= deadline || self.shop.flash_rt.news.stopping() {
                return Ok(state);
            }
            // A place in line ends at its deadline without any news: look
            // again just after it (never sooner than LOOK_AGAIN, whatever
            // the clocks say).
            let wake_at = match &state {
                MyFlashState::Waiting { wait_until, .. } => DateTime::parse_from_rfc3339(wait_until)
                    .ok()
                    .and_then(|at| (at.with_timezone(&Utc) - Utc::now()).to_std().ok())
                    .map_or(now + LOOK_AGAIN, |left| now + left.max(LOOK_AGAIN))
                    .min(deadline),
                _ => deadline,
            };
            tokio::select! {
                _ = news.fired() => {}
                _ = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    /// Ends every wait in [`Flash::me_changed`] at once, now and from now
    /// on: the server is shutting down and finishes its requests.
    pub fn stop_waiting(&self) {
        self.shop.flash_rt.news.stop();
    }

    /// Checkouts of this process waiting in a confirm queue now.
    pub fn confirm_waiters(&self) -> usize {
        self.shop.flash_rt.confirm_waiting.get()
    }

    /// Requests of this process parked in [`Flash::me_changed`] now.
    pub fn parked_waiters(&self) -> usize {
        self.shop.flash_rt.news.parked()
    }

    /// Leaves the line, or gives up a held unit (it goes to the line's
    /// head); the state afterwards.
    pub async fn leave(&self, user: Uuid, sale: Uuid) -> Result<MyFlashState> {
        let mut call = self.invoke(&scripts::LEAVE, sale);
        call.arg(user.to_string()).arg(self.ttl_ms());
        Self::fresh_tokens(&mut call);
        let reply: Vec<String> = call.invoke_async(&mut self.shop.kv.conn()).await?;
        if head(&reply) == "GAVE_UP" {
            if let Some(token) = reply.get(1).and_then(|t| Uuid::try_parse(t).ok()) {
                self.shop.cart().drop_flash_hold(user, sale, token).await?;
            }
            self.promoted(sale, &promotions(&reply[2..])).await;
        }
        self.me(user, sale).await
    }

    /// Tells promoted customers: their hold goes into their cart (their
    /// `/me` then says `reserved`), and a `flash.promoted` event into the
    /// outbox, which the notifier turns into an email. A cart write that
    /// fails is repaired by their next look at `/me`; an event that cannot
    /// be written (PostgreSQL down at that moment, or the process dying
    /// right after the script) costs that customer the email, not the unit.
    async fn promoted(&self, sale: Uuid, promoted: &[Promotion]) {
        if promoted.is_empty() {
            return;
        }
        let users: Vec<Uuid> = promoted.iter().map(|p| p.user).collect();
        let meta: redis::RedisResult<(Option<String>, Option<i64>)> =
            redis::cmd("HMGET").arg(self.key(sale, "meta")).arg("sku").arg("price").query_async(&mut self.shop.kv.conn()).await;
        let Ok((Some(sku), Some(price))) = meta else { return };
        let Ok(sku) = Uuid::try_parse(&sku) else { return };
        for p in promoted {
            let hold = FlashHold { sale_id: sale, sku_id: sku, quantity: p.quantity, unit_cents: price, token: p.token, pay_by_ms: p.pay_by_ms };
            tracing::info!(%sale, user = %p.user, quantity = p.quantity, "waitlist: promoted to a hold");
            if let Err(err) = self.shop.cart().put_flash_hold(p.user, &hold).await {
                tracing::warn!(%sale, user = %p.user, error = %err, "promoted hold not put in the cart; /me will");
            }
            if let Err(err) = self.record_promotion(&hold, p.user).await {
                tracing::warn!(%sale, user = %p.user, error = %err, "promoted customer not emailed: the event was not recorded");
            }
        }
        // After the cart write: a woken page that reads the hold finds it there.
        news::tell(&self.shop.kv, sale, Some(users.as_slice())).await;
    }

    async fn record_promotion(&self, hold: &FlashHold, user: Uuid) -> Result<()> {
        let payload = json!({
            "user_id": user, "sale_id": hold.sale_id, "sku_id": hold.sku_id, "token": hold.token,
            "quantity": hold.quantity, "unit_cents": hold.unit_cents, "pay_by": rfc3339(from_ms(hold.pay_by_ms)),
        });
        let mut conn = self.shop.db.acquire().await?;
        crate::events::record(&mut conn, "flash_sale", hold.sale_id, "flash.promoted", payload).await?;
        Ok(())
    }

    // ----- checkout's side -----

    /// Confirms the cart's flash holds into the order being written in
    /// `tx`: each hold stops expiring (Redis: confirming) and its outcome is
    /// recorded (the arbiter against the sweeper); [`Flash::take_in`] then
    /// moves the units, last. Call [`Flash::finish`] once `tx` has
    /// committed, or [`Flash::unconfirm`] with `begun` (the holds this call
    /// started confirming, filled even when it fails) once it surely has
    /// not. A hold that ran out is `reservation_expired`.
    pub async fn confirm_in(&self, tx: &mut PgConnection, user: Uuid, order_id: Uuid, holds: &[FlashHold], begun: &mut Vec<FlashHold>) -> Result<()> {
        for hold in holds {
            let reply: Vec<String> = self
                .invoke(&scripts::BEGIN, hold.sale_id)
                .arg(hold.token.to_string())
                .arg(user.to_string())
                .arg(self.settings().confirm_grace.as_millis() as u64)
                .invoke_async(&mut self.shop.kv.conn())
                .await?;
            if head(&reply) != "OK" {
                return Err(hold_ended(hold.sale_id));
            }
            begun.push(*hold);
            if int(&reply, 1) != hold.quantity {
                return Err(Error::internal(format!("flash hold {} has {} units, the cart says {}", hold.token, int(&reply, 1), hold.quantity)));
            }
            let (price, sku): (i64, Uuid) = sqlx::query_as("SELECT price_cents, sku_id FROM flash_sales WHERE id = $1")
                .bind(hold.sale_id)
                .fetch_one(&mut *tx)
                .await?;
            if price != hold.unit_cents || sku != hold.sku_id {
                return Err(Error::internal(format!("flash hold {} does not match its sale", hold.token)));
            }
            let recorded: Option<String> = sqlx::query_scalar(
                "INSERT INTO flash_outcomes (token, sale_id, user_id, quantity, outcome, order_id) VALUES ($1, $2, $3, $4, 'confirmed', $5) \
                 ON CONFLICT (token) DO NOTHING RETURNING outcome",
            )
            .bind(hold.token)
            .bind(hold.sale_id)
            .bind(user)
            .bind(hold.quantity as i32)
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
            if recorded.is_none() {
                return Err(hold_ended(hold.sale_id));
            }
        }
        Ok(())
    }

    /// The holds' units out of their sales' set-asides into `reserved`: the
    /// sale's two hot rows (set-aside and SKU), which the takes lock only
    /// inside the COMMIT (`inventory::set_aside::take_in`). The caller runs
    /// this last, so a mixed order's regular rows are still locked first.
    pub async fn take_in(&self, tx: &mut PgConnection, holds: &[FlashHold]) -> Result<()> {
        // In sale order, so two orders of the same sales lock them alike.
        let mut holds: Vec<&FlashHold> = holds.iter().collect();
        holds.sort_by_key(|h| h.sale_id);
        for hold in holds {
            self.shop.inventory().take_from_set_aside_in(&mut *tx, hold.sale_id, hold.sku_id, hold.quantity as u32).await?;
        }
        Ok(())
    }

    /// After the order committed: the holds are sold. A failure here is
    /// settled by the sweeper from the outcome the order recorded.
    pub async fn finish(&self, holds: &[FlashHold]) {
        for hold in holds {
            if let Err(err) = self.finish_one(hold.sale_id, hold.token).await {
                tracing::warn!(token = %hold.token, error = %err, "flash hold sold but not finished in Redis; the sweeper will");
            }
        }
    }

    /// FINISH for one hold; when it was the last hold with nothing left to
    /// sell, everybody still in line hears that the wait is over.
    async fn finish_one(&self, sale: Uuid, token: Uuid) -> redis::RedisResult<()> {
        let reply: Vec<String> = self.invoke(&scripts::FINISH, sale).arg(token.to_string()).invoke_async(&mut self.shop.kv.conn()).await?;
        if reply.get(1).map(String::as_str) == Some("LINE_DONE") {
            news::tell(&self.shop.kv, sale, None).await;
        }
        Ok(())
    }

    /// An order transaction that began confirming `begun` did not commit:
    /// the holds are their customer's again for the rest of their payment
    /// windows, unless another order transaction still confirms them.
    /// Where Redis cannot be told, the sweeper settles the hold after its
    /// grace from PostgreSQL's record, as for a process that died.
    pub async fn unconfirm(&self, begun: &[FlashHold]) {
        self.each_hold(&scripts::UNBEGIN, begun, "flash hold left confirming after its order failed; the sweeper settles it").await;
    }

    /// Runs a script that takes a hold's token on each hold; a failure is
    /// logged as `unsettled`, for the sweeper to put right.
    async fn each_hold(&self, script: &'static redis::Script, holds: &[FlashHold], unsettled: &str) {
        for hold in holds {
            let reply: redis::RedisResult<Vec<String>> =
                self.invoke(script, hold.sale_id).arg(hold.token.to_string()).invoke_async(&mut self.shop.kv.conn()).await;
            if let Err(err) = reply {
                tracing::warn!(token = %hold.token, error = %err, "{unsettled}");
            }
        }
    }

    /// The customer's card was refused: their holds go to the line's head
    /// at once, and out of their cart.
    pub async fn release_holds(&self, user: Uuid, holds: &[FlashHold]) {
        for hold in holds {
            match self.give_back(hold.sale_id, hold.token, "release").await {
                Ok(_) => {}
                Err(err) => tracing::warn!(token = %hold.token, error = %err, "flash hold not released; it runs out with its payment window"),
            }
            if let Err(err) = self.shop.cart().drop_flash_hold(user, hold.sale_id, hold.token).await {
                tracing::warn!(token = %hold.token, error = %err, "released flash hold left in the cart; it is hidden once its window ends");
            }
        }
    }

    /// Runs GIVE_BACK and serves the line with what came back; the reply.
    async fn give_back(&self, sale: Uuid, token: Uuid, mode: &str) -> Result<Vec<String>> {
        let mut call = self.invoke(&scripts::GIVE_BACK, sale);
        call.arg(token.to_string()).arg(mode).arg(self.ttl_ms());
        Self::fresh_tokens(&mut call);
        let reply: Vec<String> = call.invoke_async(&mut self.shop.kv.conn()).await?;
        if head(&reply) == "OK" {
            if let Some(owner) = reply.get(1).and_then(|u| Uuid::try_parse(u).ok()) {
                news::tell(&self.shop.kv, sale, Some(std::slice::from_ref(&owner))).await;
            }
            self.promoted(sale, &promotions(&reply[3..])).await;
        }
        Ok(reply)
    }

    /// An order with `lines` is being cancelled in `tx`: units it bought
    /// from a sale that is still running go back into the sale's set-aside
    /// (and to its line after commit, through [`Flash::after_order_cancelled`]);
    /// every other line goes back to normal stock here. Returns the lines
    /// that went to normal stock (for [`crate::inventory::Inventory::after_unconfirm`])
    /// and the units returned to sales.
    ///
    /// Normal stock first, the sales' rows last and in sale order: the order
    /// checkout takes the same rows in (its regular lines, then the hot
    /// rows), so a cancel and a checkout of the same SKUs never wait on
    /// each other in a cycle.
    pub async fn order_cancelled_in(&self, tx: &mut PgConnection, order_id: Uuid, lines: &[Line]) -> Result<(Vec<Line>, Vec<ReturnedUnits>)> {
        let mut rows: Vec<(Uuid, Uuid, i32, Uuid, bool)> = sqlx::query_as(
            "UPDATE flash_outcomes f SET outcome = 'returned', decided_at = now() FROM flash_sales s \
             WHERE f.order_id = $1 AND f.outcome = 'confirmed' AND s.id = f.sale_id \
             RETURNING f.sale_id, f.user_id, f.quantity, s.sku_id, (s.status IN ('scheduled', 'live') AND now() < s.ends_at)",
        )
        .bind(order_id)
        .fetch_all(&mut *tx)
        .await?;
        rows.sort_by_key(|r| r.0);
        let inventory = self.shop.inventory();
        let (from_sales, mut to_stock): (Vec<Line>, Vec<Line>) = lines.iter().copied().partition(|l| rows.iter().any(|r| r.3 == l.sku_id));
        inventory.unconfirm_in(&mut *tx, &to_stock).await?;
        let mut returned = Vec::new();
        let mut ended = Vec::new();
        for (sale, user, quantity, sku, running) in rows {
            if running && inventory.put_back_into_set_aside_in(&mut *tx, sale, sku, quantity as u32).await? {
                returned.push(ReturnedUnits { sale, user, quantity: quantity.into() });
            } else {
                ended.extend(from_sales.iter().filter(|l| l.sku_id == sku).copied());
            }
        }
        inventory.unconfirm_in(&mut *tx, &ended).await?;
        to_stock.extend(ended);
        Ok((to_stock, returned))
    }

    /// After a cancelled order committed: its units are the sale's again
    /// and the line's head gets them.
    pub async fn after_order_cancelled(&self, returned: &[ReturnedUnits]) {
        for r in returned {
            let mut call = self.invoke(&scripts::RETURN_SOLD, r.sale);
            call.arg(r.user.to_string()).arg(r.quantity).arg(self.ttl_ms());
            Self::fresh_tokens(&mut call);
            match call.invoke_async::<Vec<String>>(&mut self.shop.kv.conn()).await {
                Ok(reply) => self.promoted(r.sale, &promotions(&reply)).await,
                Err(err) => tracing::warn!(sale = %r.sale, error = %err, "cancelled order's flash units not back on the sale's counter; they return to stock at its end"),
            }
        }
    }

    // ----- the schedule's side -----

    /// One round of the schedule for this process: due steps (claimed so
    /// that each runs once), the payment-window sweeper, leftover
    /// promotions and the live sample of every running sale.
    pub async fn tick(&self) -> Result<TickReport> {
        schedule::tick(self).await
    }

    /// The live stream's events after `after` (an event id, exclusive; at
    /// most 100), or only the latest when `after` is `None`. Check access
    /// first with [`Flash::get`].
    pub async fn live_events(&self, sale: Uuid, after: Option<&str>) -> Result<Vec<(String, model::FlashLive)>> {
        live::read(self, sale, after).await
    }
}

/// Units of a cancelled order handed back to a running sale.
#[derive(Debug, Clone, Copy)]
pub struct ReturnedUnits {
    sale: Uuid,
    user: Uuid,
    quantity: i64,
}

fn sold_out() -> Error {
    conflict("sold_out", "this flash sale is sold out", None)
}

/// A hold reply `{_, token, qty, exp, sku, price, promoted}`.
fn hold_of(sale: Uuid, reply: &[String]) -> Result<FlashHold> {
    let parse = |i: usize| reply.get(i).and_then(|v| Uuid::try_parse(v).ok()).ok_or_else(|| Error::internal("flash script answered a malformed hold"));
    Ok(FlashHold { sale_id: sale, token: parse(1)?, quantity: int(reply, 2), pay_by_ms: int(reply, 3), sku_id: parse(4)?, unit_cents: int(reply, 5) })
}

fn reserved(hold: &FlashHold, promoted: bool) -> MyFlashState {
    MyFlashState::Reserved { quantity: hold.quantity, price_cents: hold.unit_cents, pay_by: rfc3339(from_ms(hold.pay_by_ms)), promoted }
}

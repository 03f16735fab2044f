//! Confirmation: a reservation's units become `reserved` in PostgreSQL, in
//! the caller's transaction (checkout adds the order to it).
//!
//! Order of events for a Redis-path hold:
//! 1. Redis: held → confirming (neither a release nor the sweeper may now
//!    return the units).
//! 2. In a savepoint: record the outcome `confirmed` (the arbiter against a
//!    racing release), then per line, in SKU order, an optimistic update on
//!    `version` that also re-checks `stock_count - reserved - held >= q`.
//! 3. [`commit`]: Redis drops the units from `held` while the rows are still
//!    locked, then PostgreSQL commits. A failed commit is followed by a
//!    resync, so the counter ends up matching whatever PostgreSQL kept.

use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use super::{counters, db_path, out_of_stock, redis_path, reservation_ended, Fail, HoldPath, Inventory, Line};
use crate::stats::Stats;
use crate::{Error, Result};

/// A confirmation written into a transaction, waiting for [`commit`].
#[derive(Debug, Clone)]
pub struct Confirmation {
    pub token: Uuid,
    pub lines: Vec<Line>,
    pub path: HoldPath,
    /// Confirmed by an earlier call: nothing was written this time.
    pub already: bool,
}

/// Optimistic attempts per row before taking the plain row lock: under a
/// flash sale every confirmation hits the same row, and a losing streak must
/// not turn into a false "sold out".
const OPTIMISTIC_TRIES: usize = 4;

pub(super) async fn confirm_in(inv: &Inventory<'_>, tx: &mut PgConnection, token: Uuid) -> Result<Confirmation> {
    let shop = inv.shop;
    // Find the hold: Redis first (the usual path), then the DB-only path.
    let mut redis_lines = None;
    let mut redis_down = None;
    if inv.redis_usable().await {
        match redis_path::begin_confirm(shop, token, inv.rt().settings.confirm_grace).await {
            Ok(redis_path::Begin::Started(lines)) => redis_lines = Some(lines),
            Ok(redis_path::Begin::AlreadyConfirmed) => {
                // PostgreSQL is the record: Redis says confirmed even when
                // the commit that followed failed.
                return match db_path::outcome_of(tx, token).await?.as_deref() {
                    Some("confirmed") => Ok(Confirmation { token, lines: confirmed_lines(tx, token).await?, path: HoldPath::Redis, already: true }),
                    _ => Err(reservation_ended(token)),
                };
            }
            Ok(redis_path::Begin::NotHere) => {}
            Err(Fail::Shop(err)) => return Err(err),
            Err(Fail::Redis(err)) => {
                inv.redis_failed(&err);
                redis_down = Some(err);
            }
        }
    } else {
        redis_down = Some(super::breaker_open());
    }
    let (path, lines) = match redis_lines {
        Some(lines) => (HoldPath::Redis, lines),
        None => {
            let held: Option<(sqlx::types::Json<Vec<Line>>, bool)> = sqlx::query_as(
                "SELECT lines, expires_at <= now() FROM inventory_reservations WHERE token = $1 FOR UPDATE",
            )
            .bind(token)
            .fetch_optional(&mut *tx)
            .await?;
            match held {
                Some((_, true)) => return Err(reservation_ended(token)),
                Some((sqlx::types::Json(lines), false)) => (HoldPath::Db, lines),
                None => {
                    return match db_path::outcome_of(tx, token).await?.as_deref() {
                        Some("confirmed") => Ok(Confirmation { token, lines: confirmed_lines(tx, token).await?, path: HoldPath::Db, already: true }),
                        Some(_) => Err(reservation_ended(token)),
                        None => Err(match redis_down {
                            // It may well be a Redis hold we cannot see right now.
                            Some(err) => super::redis_unavailable(err, inv.rt().breaker.retry_after()),
                            None => Error::NotFound { what: "reservation" },
                        }),
                    };
                }
            }
        }
    };

    let mut savepoint = tx.begin().await?;
    match write(inv, &mut savepoint, token, path, &lines).await {
        Ok(true) => {
            savepoint.commit().await?;
            Ok(Confirmation { token, lines, path, already: false })
        }
        Ok(false) => {
            // Someone recorded another outcome first (the sweeper after the
            // grace period): the hold is gone.
            savepoint.rollback().await?;
            Err(reservation_ended(token))
        }
        Err(err) => {
            savepoint.rollback().await?;
            if matches!(err, Error::Conflict { code: "out_of_stock", .. }) {
                // The savepoint is gone, so the release's outcome insert
                // does not wait on us.
                if let Err(release_err) = inv.release(token).await {
                    tracing::warn!(error = %release_err, %token, "could not release after a failed confirmation; it will expire");
                }
            }
            Err(err)
        }
    }
}

/// Writes the confirmation; false when the token already has another outcome.
async fn write(inv: &Inventory<'_>, conn: &mut PgConnection, token: Uuid, path: HoldPath, lines: &[Line]) -> Result<bool> {
    let recorded: Option<String> = sqlx::query_scalar(
        "INSERT INTO reservation_outcomes (token, outcome, lines) VALUES ($1, 'confirmed', $2) \
         ON CONFLICT (token) DO NOTHING RETURNING outcome",
    )
    .bind(token)
    .bind(sqlx::types::Json(lines))
    .fetch_optional(&mut *conn)
    .await?;
    if recorded.is_none() {
        return Ok(false);
    }
    if path == HoldPath::Db {
        sqlx::query("DELETE FROM inventory_reservations WHERE token = $1").bind(token).execute(&mut *conn).await?;
    }
    for line in lines {
        confirm_line(inv, conn, path, line).await?;
    }
    Ok(true)
}

async fn confirm_line(inv: &Inventory<'_>, conn: &mut PgConnection, path: HoldPath, line: &Line) -> Result<()> {
    let qty = line.quantity as i32;
    // A DB-path hold already has its units in `held`: they only move.
    let (set, check) = match path {
        HoldPath::Redis => ("reserved = reserved + $3", "stock_count - reserved - held >= $3"),
        HoldPath::Db => ("reserved = reserved + $3, held = held - $3", "held >= $3"),
    };
    let optimistic = format!(
        "UPDATE inventory SET {set}, version = version + 1, updated_at = now() WHERE sku_id = $1 AND version = $2 AND {check}"
    );
    for _ in 0..OPTIMISTIC_TRIES {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT version, (stock_count - reserved - held)::bigint FROM inventory WHERE sku_id = $1")
                .bind(line.sku_id)
                .fetch_optional(&mut *conn)
                .await?;
        let Some((version, _)) = row else { return Err(Error::NotFound { what: "SKU" }) };
        let done = sqlx::query(&optimistic).bind(line.sku_id).bind(version).bind(qty).execute(&mut *conn).await?.rows_affected();
        if done == 1 {
            return Ok(());
        }
        let (now_version, available): (i64, i64) =
            sqlx::query_as("SELECT version, (stock_count - reserved - held)::bigint FROM inventory WHERE sku_id = $1")
                .bind(line.sku_id)
                .fetch_one(&mut *conn)
                .await?;
        if now_version == version {
            // Same version, so the stock check failed: PostgreSQL has fewer
            // units than the hold claimed.
            return Err(out_of_stock(line.sku_id, line.quantity, available));
        }
        Stats::add(&inv.shop.stats.inventory.confirm_retries, 1);
    }
    // A losing streak on a hot row: take the row lock and decide once.
    let locked = format!("UPDATE inventory SET {set}, version = version + 1, updated_at = now() WHERE sku_id = $1 AND {check}");
    let done = sqlx::query(&locked.replace("$3", "$2")).bind(line.sku_id).bind(qty).execute(&mut *conn).await?.rows_affected();
    if done == 1 {
        return Ok(());
    }
    let available: i64 = sqlx::query_scalar("SELECT (stock_count - reserved - held)::bigint FROM inventory WHERE sku_id = $1")
        .bind(line.sku_id)
        .fetch_one(&mut *conn)
        .await?;
    Err(out_of_stock(line.sku_id, line.quantity, available))
}

async fn confirmed_lines(conn: &mut PgConnection, token: Uuid) -> Result<Vec<Line>> {
    let lines: Option<sqlx::types::Json<Vec<Line>>> =
        sqlx::query_scalar("SELECT lines FROM reservation_outcomes WHERE token = $1").bind(token).fetch_optional(&mut *conn).await?;
    Ok(lines.map(|l| l.0).unwrap_or_default())
}

pub(super) async fn commit(inv: &Inventory<'_>, mut tx: sqlx::Transaction<'_, sqlx::Postgres>, c: Confirmation) -> Result<()> {
    let shop = inv.shop;
    if c.already {
        tx.commit().await?;
        return Ok(());
    }
    if c.path == HoldPath::Redis {
        // Takes from flash set-asides in this transaction (`set_aside`)
        // apply now rather than in the COMMIT: one that fails (a deadlock,
        // a short set-aside) must fail before the hold below is finished,
        // or a retry of the order would find its regular units gone.
        sqlx::query("SET CONSTRAINTS ALL IMMEDIATE").execute(&mut *tx).await?;
        // While our row locks stand no counter can be rewritten, so moving
        // the units out of `held` now and committing next is one step as
        // far as any reader of PostgreSQL and Redis together can tell.
        if let Err(err) = redis_path::finish_confirm(shop, c.token).await {
            // The order is still good; the hold stays "confirming" until the
            // sweeper settles it from the outcome we are about to commit.
            tracing::warn!(error = %err, token = %c.token, "confirmation committed without finishing in Redis; the sweeper will");
        }
    }
    if let Err(err) = tx.commit().await {
        let skus: Vec<Uuid> = c.lines.iter().map(|l| l.sku_id).collect();
        if c.path == HoldPath::Redis {
            counters::resync(shop, &skus).await;
        }
        return Err(err.into());
    }
    Ok(())
}

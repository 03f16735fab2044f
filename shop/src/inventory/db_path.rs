//! The DB-only path, used while Redis is failing: holds live in
//! `inventory_reservations` and the `held` column.
//!
//! Each line is one atomic conditional UPDATE
//! (`SET held = held + q WHERE stock_count - reserved - held >= q`) rather
//! than `SELECT … FOR UPDATE` then UPDATE: the check and the change are one
//! statement, so there is no read-modify-write window to get wrong, it costs
//! one round trip per line instead of two, and the row lock is taken only
//! when the units are really there. Lines go in SKU order so two carts
//! cannot deadlock, and the CHECK constraint `reserved + held <=
//! stock_count` would refuse an oversell even if this code were wrong.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{out_of_stock, reservation_ended, scripts, HoldPath, HoldState, Line, Released, Reservation};
use crate::{Error, Result, Shop};

/// How a DB-path change reaches the Redis counters.
pub(super) enum Mirror<'a> {
    /// Redis is in use: apply the change to any loaded counter before
    /// committing, while the rows are still locked. If that fails the
    /// breaker is tripped, so a rebuild happens before Redis is used again.
    Required(&'a crate::breaker::Breaker),
    /// Redis is out of use; the rebuild that precedes its return will read
    /// this change from PostgreSQL.
    Rebuild,
}

impl Mirror<'_> {
    /// Adds `sign * quantity` per line to the loaded counters.
    async fn apply(&self, shop: &Shop, lines: &[Line], sign: i64) -> redis::RedisResult<()> {
        if let Mirror::Rebuild = self {
            return Ok(());
        }
        let mut call = scripts::ADD_IF_LOADED.prepare_invoke();
        call.arg(shop.kv.prefix());
        for line in lines {
            call.arg(line.sku_id.to_string()).arg(sign * i64::from(line.quantity));
        }
        call.invoke_async::<i64>(&mut shop.kv.conn()).await.map(drop)
    }
}

pub(super) async fn reserve(shop: &Shop, token: Uuid, lines: &[Line], ttl: Duration, mirror: Mirror<'_>) -> Result<Reservation> {
    let mut tx = shop.db.begin().await?;
    if let Some(outcome) = outcome_of(&mut tx, token).await? {
        return match outcome.as_str() {
            "confirmed" => Ok(Reservation { token, lines: lines.to_vec(), expires_at: Utc::now(), path: HoldPath::Db, state: HoldState::Confirmed }),
            _ => Err(reservation_ended(token)),
        };
    }
    let inserted: Option<DateTime<Utc>> = sqlx::query_scalar(
        "INSERT INTO inventory_reservations (token, lines, expires_at) \
         VALUES ($1, $2, now() + make_interval(secs => $3)) \
         ON CONFLICT (token) DO NOTHING RETURNING expires_at",
    )
    .bind(token)
    .bind(sqlx::types::Json(lines))
    .bind(ttl.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(expires_at) = inserted else {
        // A retry of a reservation already made: answer with the first one.
        let (sqlx::types::Json(lines), expires_at): (sqlx::types::Json<Vec<Line>>, DateTime<Utc>) =
            sqlx::query_as("SELECT lines, expires_at FROM inventory_reservations WHERE token = $1")
                .bind(token)
                .fetch_one(&mut *tx)
                .await?;
        return Ok(Reservation { token, lines, expires_at, path: HoldPath::Db, state: HoldState::Held });
    };
    for line in lines {
        let taken = sqlx::query(
            "UPDATE inventory SET held = held + $2, version = version + 1, updated_at = now() \
             WHERE sku_id = $1 AND stock_count - reserved - held >= $2",
        )
        .bind(line.sku_id)
        .bind(line.quantity as i32)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken == 0 {
            let available: Option<i64> =
                sqlx::query_scalar("SELECT (stock_count - reserved - held)::bigint FROM inventory WHERE sku_id = $1")
                    .bind(line.sku_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(match available {
                Some(available) => out_of_stock(line.sku_id, line.quantity, available),
                None => Error::NotFound { what: "SKU" },
            });
        }
    }
    // A hold taken here while other calls still use Redis (the breaker has
    // not opened yet) must lower their counter, or they could sell the
    // same units.
    if let Err(err) = mirror.apply(shop, lines, -1).await {
        if let Mirror::Required(breaker) = mirror {
            tracing::warn!(error = %err, %token, "DB-path hold not mirrored in Redis; no more Redis reservations until the counters are rebuilt");
            breaker.trip();
        }
    }
    tx.commit().await?;
    Ok(Reservation { token, lines: lines.to_vec(), expires_at, path: HoldPath::Db, state: HoldState::Held })
}

/// `None`: PostgreSQL has never heard of this token (it may be a Redis hold).
pub(super) async fn release(shop: &Shop, token: Uuid, mirror: Mirror<'_>) -> Result<Option<Released>> {
    let mut tx = shop.db.begin().await?;
    if end_hold(shop, &mut tx, token, "released", &mirror).await? {
        tx.commit().await?;
        return Ok(Some(Released::Returned));
    }
    Ok(match outcome_of(&mut tx, token).await?.as_deref() {
        Some("confirmed") => Some(Released::AlreadyConfirmed),
        Some(_) => Some(Released::Nothing),
        None => None,
    })
}

/// Ends a DB-path hold inside `tx`: deletes it, gives its units back and
/// records the outcome. Returns false when there was no such live hold.
async fn end_hold(shop: &Shop, tx: &mut PgConnection, token: Uuid, outcome: &str, mirror: &Mirror<'_>) -> Result<bool> {
    let lines: Option<sqlx::types::Json<Vec<Line>>> =
        sqlx::query_scalar("DELETE FROM inventory_reservations WHERE token = $1 RETURNING lines")
            .bind(token)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(sqlx::types::Json(mut lines)) = lines else { return Ok(false) };
    lines.sort_by_key(|l| l.sku_id);
    for line in &lines {
        sqlx::query("UPDATE inventory SET held = held - $2, version = version + 1, updated_at = now() WHERE sku_id = $1")
            .bind(line.sku_id)
            .bind(line.quantity as i32)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("INSERT INTO reservation_outcomes (token, outcome, lines) VALUES ($1, $2, $3) ON CONFLICT (token) DO NOTHING")
        .bind(token)
        .bind(outcome)
        .bind(sqlx::types::Json(&lines))
        .execute(&mut *tx)
        .await?;
    // The rows are locked until commit, so no counter load can slip in
    // between: a loaded counter gets the units now, an unloaded one will
    // read them from PostgreSQL. A counter left too low only undersells, so
    // a failure here waits for reconciliation rather than tripping.
    if let Err(err) = mirror.apply(shop, &lines, 1).await {
        tracing::warn!(error = %err, %token, "units back in PostgreSQL but not in the Redis counter; reconciliation will add them");
    }
    Ok(true)
}

/// Returns expired DB-path holds. `SKIP LOCKED` lets several sweepers share
/// the queue without returning any hold twice.
pub(super) async fn sweep(shop: &Shop, mirror: Mirror<'_>) -> Result<u64> {
    let mut expired = 0;
    loop {
        let mut tx = shop.db.begin().await?;
        let due: Vec<Uuid> = sqlx::query_scalar(
            "SELECT token FROM inventory_reservations WHERE expires_at <= now() \
             ORDER BY expires_at LIMIT 100 FOR UPDATE SKIP LOCKED",
        )
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(expired);
        }
        for token in &due {
            if end_hold(shop, &mut tx, *token, "expired", &mirror).await? {
                expired += 1;
            }
        }
        tx.commit().await?;
        if due.len() < 100 {
            return Ok(expired);
        }
    }
}

pub(super) async fn outcome_of(conn: &mut PgConnection, token: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT outcome FROM reservation_outcomes WHERE token = $1").bind(token).fetch_optional(&mut *conn).await
}

/// Records `outcome` for a token unless another is already recorded, and
/// returns the one that stands. Waits for a confirmation transaction that
/// holds the token, so the answer is final.
pub(super) async fn decide(db: &sqlx::PgPool, token: Uuid, outcome: &str, lines: &[Line]) -> sqlx::Result<String> {
    let mut conn = db.acquire().await?;
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO reservation_outcomes (token, outcome, lines) VALUES ($1, $2, $3) \
         ON CONFLICT (token) DO NOTHING RETURNING outcome",
    )
    .bind(token)
    .bind(outcome)
    .bind(sqlx::types::Json(lines))
    .fetch_optional(&mut *conn)
    .await?;
    match inserted {
        Some(outcome) => Ok(outcome),
        None => Ok(outcome_of(&mut conn, token).await?.unwrap_or_else(|| outcome.to_owned())),
    }
}

//! The outbox's side of the relay: take committed, unpublished rows in
//! order, publish them, mark them.
//!
//! One relay at a time per database: a round runs in one transaction that
//! first takes `pg_try_advisory_xact_lock`; a relay that does not get it
//! skips the round. That is what keeps two processes from publishing the
//! same row, and it is also what keeps order: with several publishers at
//! once (SKIP LOCKED batches) a later event of an order could overtake an
//! earlier one held by a slower peer.
//!
//! Order is `seq` (see the migration): for one aggregate it is commit order,
//! because every change of an aggregate locks its row first. Rows are chosen
//! by `published_at IS NULL`, never by a high-water mark, so a row whose
//! transaction commits late (a smaller `seq` behind published larger ones,
//! from another aggregate) is simply taken by the next round; nothing is
//! skipped and no settle window delays anything.
//!
//! Published, then marked, then committed: a relay that dies in between
//! leaves its rows unmarked (the transaction rolls back, the lock goes with
//! the connection) and the next round publishes them again under the same
//! event ids. Consumers deduplicate by id (`dedup`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Event, EventBus, Topic};
use crate::Result;

/// Any fixed number: the lock is per database, so one relay per shop.
const RELAY_LOCK: i64 = 0x6d65_7263_6174_6f01;

/// Runs between publishing and marking. Crash tests park here and abort
/// the round, as a process dying at that instant would.
pub type FaultHook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

#[derive(Clone)]
pub struct Relay {
    db: PgPool,
    bus: Arc<dyn EventBus>,
    batch: i64,
    after_publish: Option<FaultHook>,
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Round {
    /// Another relay holds the lock; this one did nothing.
    pub standby: bool,
    pub published: usize,
    /// The batch was full: more rows are probably waiting.
    pub full: bool,
}

/// Rows not published yet, and how long the oldest has waited.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Backlog {
    pub rows: i64,
    pub oldest_secs: f64,
}

impl Relay {
    pub fn new(db: PgPool, bus: Arc<dyn EventBus>, batch: usize) -> Self {
        Self { db, bus, batch: batch.max(1) as i64, after_publish: None }
    }

    /// Crash tests only: `hook` runs after publishing, before marking.
    pub fn with_fault_hook(mut self, hook: FaultHook) -> Self {
        self.after_publish = Some(hook);
        self
    }

    /// One round: lock, take a batch in `seq` order, publish, mark, commit.
    pub async fn round(&self) -> Result<Round> {
        let mut tx = self.db.begin().await?;
        let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(RELAY_LOCK).fetch_one(&mut *tx).await?;
        if !leader {
            return Ok(Round { standby: true, ..Round::default() });
        }
        let rows: Vec<(Uuid, String, Uuid, DateTime<Utc>, serde_json::Value)> = sqlx::query_as(
            "SELECT id, event_type, aggregate_id, created_at, payload FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(self.batch)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(Round::default());
        }
        let full = rows.len() as i64 == self.batch;
        let mut by_topic: Vec<(Topic, Vec<Event>)> = Vec::new();
        let mut ids = Vec::with_capacity(rows.len());
        for (id, event_type, aggregate_id, occurred_at, payload) in rows {
            let Some(topic) = Topic::of(&event_type) else {
                // `record` refuses such types; a row written around it stays
                // in the backlog (and its metric) for someone to look at.
                tracing::error!(%id, event_type, "outbox row of a type no topic carries; left unpublished");
                continue;
            };
            let event = Event { id, event_type, aggregate_id, occurred_at, payload };
            match by_topic.iter_mut().find(|(t, _)| *t == topic) {
                Some((_, events)) => events.push(event),
                None => by_topic.push((topic, vec![event])),
            }
            ids.push(id);
        }
        for (topic, events) in &by_topic {
            self.bus.publish(*topic, events).await?;
        }
        if let Some(hook) = &self.after_publish {
            hook().await;
        }
        sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)").bind(&ids).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Round { standby: false, published: ids.len(), full })
    }

    pub async fn backlog(&self) -> Result<Backlog> {
        backlog(&self.db).await
    }
}

pub async fn backlog(db: &PgPool) -> Result<Backlog> {
    let (rows, oldest_secs): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(db)
    .await?;
    Ok(Backlog { rows, oldest_secs: oldest_secs.unwrap_or(0.0).max(0.0) })
}

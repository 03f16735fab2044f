//! Events: the transactional outbox, the event bus and what consumers need.
//!
//! A service records an event in the same transaction as the change it
//! describes (`record`); the relay (`outbox::Relay`, driven by
//! `server::workers::relay`) publishes committed rows to the bus at least
//! once; consumers read them through [`EventBus`] and make their effect
//! happen once per event id (`dedup`). The bus knows nothing of what
//! consumers do.

pub mod bus;
pub mod dedup;
pub mod outbox;
pub mod redis_streams;

pub use bus::{DeadLetter, Delivery, EventBus, GroupLag, Receipt};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Error, Result};

/// An event as consumers see it (shared/API.md): `id` is the dedup key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub aggregate_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

/// The bus's topics (shared/API.md). Partitioned by aggregate id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Orders,
    Inventory,
    Payments,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Orders, Topic::Inventory, Topic::Payments];

    pub fn name(self) -> &'static str {
        match self {
            Topic::Orders => "order-events",
            Topic::Inventory => "inventory-events",
            Topic::Payments => "payment-events",
        }
    }

    pub fn parse(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The topic an event type belongs to, from its first word.
    pub fn of(event_type: &str) -> Option<Topic> {
        match event_type.split('.').next()? {
            // A flash sale's promotion is the first step of its customer's
            // order, and is emailed by the order topic's notifier.
            "order" | "flash" => Some(Topic::Orders),
            "stock" | "sku" => Some(Topic::Inventory),
            "payment" => Some(Topic::Payments),
            _ => None,
        }
    }

    /// How long the bus keeps an event. Inventory events describe a state
    /// the next one supersedes, so they go sooner.
    pub fn retention(self) -> std::time::Duration {
        const DAY: u64 = 24 * 60 * 60;
        std::time::Duration::from_secs(match self {
            Topic::Orders | Topic::Payments => 7 * DAY,
            Topic::Inventory => 3 * DAY,
        })
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The partition an aggregate's events go to, out of `partitions`. FNV-1a
/// over the id's bytes: stable across processes, builds and languages, so
/// every publisher (and a Kafka producer later) agrees.
pub fn partition_of(aggregate_id: Uuid, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in aggregate_id.as_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

/// Writes one event into `conn`'s transaction; it commits or rolls back
/// with the change it describes. A type no topic carries is refused here,
/// so the relay never meets a row it cannot publish.
pub async fn record(conn: &mut PgConnection, aggregate_type: &str, aggregate_id: Uuid, event_type: &str, payload: serde_json::Value) -> Result<Uuid> {
    if Topic::of(event_type).is_none() {
        return Err(Error::internal(format!("event type {event_type} belongs to no topic")));
    }
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(event_type)
        .bind(payload)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_map_to_their_topics() {
        assert_eq!(Topic::of("order.confirmed"), Some(Topic::Orders));
        assert_eq!(Topic::of("stock.changed"), Some(Topic::Inventory));
        assert_eq!(Topic::of("sku.sold_out"), Some(Topic::Inventory));
        assert_eq!(Topic::of("payment.captured"), Some(Topic::Payments));
        assert_eq!(Topic::of("review.posted"), None);
    }

    #[test]
    fn one_aggregate_always_lands_in_one_partition() {
        let id = Uuid::now_v7();
        let p = partition_of(id, 8);
        assert!((0..100).all(|_| partition_of(id, 8) == p));
        let used: std::collections::HashSet<u32> = (0..200).map(|_| partition_of(Uuid::now_v7(), 8)).collect();
        assert_eq!(used.len(), 8, "ids spread over every partition");
    }
}

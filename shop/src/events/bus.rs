//! The event bus as consumers and the relay see it. Nothing here names a
//! Redis type: partitions and positions are opaque (`Receipt`), so a Kafka
//! implementation (partition + offset) drops in without touching a consumer.

use std::time::Duration;

use async_trait::async_trait;

use super::{Event, Topic};
use crate::Result;

/// Where a delivered event sits on the bus, to ack or dead-letter it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt {
    pub partition: u32,
    /// The bus's own position in the partition (a stream entry id, an offset).
    pub position: String,
}

/// One event handed to one consumer of a group.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: Topic,
    pub event: Event,
    pub receipt: Receipt,
    /// Times the bus has handed this event to the group, this one included.
    pub attempt: u32,
}

/// An event a group gave up on, with why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub topic: &'static str,
    pub group: String,
    pub event: Event,
    pub error: String,
    pub attempts: u32,
    pub dead_at: chrono::DateTime<chrono::Utc>,
}

/// How far one consumer group is behind on one topic (all partitions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    pub topic: Topic,
    pub group: String,
    /// Delivered to a consumer, not acked yet.
    pub pending: u64,
    /// Published, not delivered to the group yet.
    pub undelivered: u64,
}

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Appends `events` to `topic`, each to its aggregate's partition, in
    /// the order given (so one aggregate's events stay in order).
    async fn publish(&self, topic: Topic, events: &[Event]) -> Result<()>;

    /// Makes `group` exist on `topic` (idempotent); a new group starts at
    /// the oldest retained event.
    async fn subscribe(&self, topic: Topic, group: &str) -> Result<()>;

    /// Makes `group` exist on `topic` (idempotent), starting with the
    /// events published at or after `since` rather than the oldest. For a
    /// group whose state is rebuilt from the database at startup (a
    /// process's own search index): it needs what happened since the
    /// rebuild, not the whole retention. Kafka: `offsetsForTimes`.
    async fn subscribe_since(&self, topic: Topic, group: &str, since: chrono::DateTime<chrono::Utc>) -> Result<()>;

    /// Up to `max` events never delivered to `group`, now held by
    /// `consumer` until acked. Waits up to `wait` when there are none.
    async fn read(&self, topic: Topic, group: &str, consumer: &str, max: usize, wait: Duration) -> Result<Vec<Delivery>>;

    /// Done with these: the group will not see them again.
    async fn ack(&self, topic: Topic, group: &str, receipts: &[Receipt]) -> Result<()>;

    /// Hands events `consumer` holds back to it for another try (a failed
    /// handler); each counts as one more delivery.
    async fn redeliver(&self, topic: Topic, group: &str, consumer: &str, receipts: &[Receipt]) -> Result<Vec<Delivery>>;

    /// Takes over up to `max` events any consumer of `group` has held
    /// unacked for longer than `idle` (it died, or hangs).
    async fn claim_idle(&self, topic: Topic, group: &str, consumer: &str, idle: Duration, max: usize) -> Result<Vec<Delivery>>;

    /// Moves `delivery` to the topic's dead letters with `error` and acks it,
    /// so the events behind it keep flowing.
    async fn dead_letter(&self, group: &str, delivery: &Delivery, error: &str) -> Result<()>;

    /// The newest `limit` dead letters of `topic`, newest first.
    async fn dead_letters(&self, topic: Topic, limit: usize) -> Result<Vec<DeadLetter>>;

    /// How many dead letters `topic` holds.
    async fn dead_letter_count(&self, topic: Topic) -> Result<u64>;

    /// Every consumer group of `topic` and how far behind it is.
    async fn lag(&self, topic: Topic) -> Result<Vec<GroupLag>>;
}

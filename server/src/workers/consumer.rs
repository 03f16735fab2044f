//! Drives one consumer group's handler: read, handle, ack; a failure is
//! tried again after a short backoff, and the third failed try goes to the
//! dead letters so the events behind it keep flowing. Events a dead (or
//! hung) consumer of the group held past `claim_idle` are taken over.
//!
//! Tries are the bus's delivery counts, not a counter in this process: an
//! event whose handler kills the process every time is still dead-lettered
//! after three deliveries, without a fourth run. A failure that names a
//! dependency as down (`Error::Unavailable`) is not a try: the runner waits
//! for the dependency and tries the same event again.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shop::events::{Delivery, Event, EventBus, Receipt, Topic};

use super::backoff::Backoff;

/// Deliveries of one event to a group before it is dead-lettered.
pub const MAX_TRIES: u32 = 3;

/// What a consumer does with an event. It must be idempotent: the same
/// event may come again (`shop::events::dedup` for effects in PostgreSQL).
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, event: &Event) -> impl Future<Output = shop::Result<()>> + Send;
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Events taken per read or claim. Taking an event counts a delivery at
    /// once, and a fourth delivery without an ack is taken for a handler
    /// that kills its process: with more than one, a process that dies
    /// mid-batch spends a try of every event it had not started yet, and
    /// three such deaths dead-letter good events. One keeps deliveries equal
    /// to handler runs, for a read and an ack per event.
    pub batch: usize,
    /// Another consumer's unacked event is taken over after this long.
    pub claim_idle: Duration,
    /// The wait before the second try; doubled before the third.
    pub retry_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self { batch: 1, claim_idle: Duration::from_secs(30), retry_after: Duration::from_millis(100) }
    }
}

pub struct Consumer<H> {
    bus: Arc<dyn EventBus>,
    topic: Topic,
    group: String,
    /// This consumer's name in the group, unique per running instance.
    name: String,
    handler: H,
    settings: Settings,
    /// Failed events this consumer holds, and when to try each again.
    retries: Vec<(Instant, Receipt)>,
    acks: Vec<Receipt>,
    subscribed: bool,
    /// Where a new group starts: `None` at the oldest retained event.
    since: Option<chrono::DateTime<chrono::Utc>>,
    last_claim: Option<Instant>,
}

impl<H: Handler> Consumer<H> {
    pub fn new(bus: Arc<dyn EventBus>, topic: Topic, group: impl Into<String>, handler: H, settings: Settings) -> Self {
        let group = group.into();
        let name = format!("{group}-{}", uuid::Uuid::now_v7().simple());
        Self { bus, topic, group, name, handler, settings, retries: Vec::new(), acks: Vec::new(), subscribed: false, since: None, last_claim: None }
    }

    /// A group created by this consumer starts with events published at or
    /// after `since` (`EventBus::subscribe_since`), for state rebuilt from
    /// the database at that moment.
    pub fn starting_at(mut self, since: chrono::DateTime<chrono::Utc>) -> Self {
        self.since = Some(since);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs until the task is aborted (server shutdown).
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            match self.step().await {
                Ok(()) => {
                    if backoff.succeed() {
                        tracing::info!(group = self.group, topic = %self.topic, "consumer reading again");
                    }
                }
                Err(err) => {
                    // The bus may have come back without its groups.
                    self.subscribed = false;
                    let (wait, first) = backoff.fail();
                    if first {
                        tracing::warn!(group = self.group, topic = %self.topic, error = ?err, "consumer cannot reach the bus; retrying with backoff");
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One pass: take over what dead consumers left, try due failures again,
    /// then read new events (waiting a little when there are none).
    pub async fn step(&mut self) -> shop::Result<()> {
        if !self.subscribed {
            match self.since {
                Some(since) => self.bus.subscribe_since(self.topic, &self.group, since).await?,
                None => self.bus.subscribe(self.topic, &self.group).await?,
            }
            self.subscribed = true;
        }
        // Nothing can have been idle for `claim_idle` sooner than half of it
        // after the last look.
        if self.last_claim.is_none_or(|at| at.elapsed() >= self.settings.claim_idle / 2) {
            self.last_claim = Some(Instant::now());
            // A batch at a time until nothing idle is left: a dead
            // consumer's events are taken over as fast as they are handled,
            // and none is claimed (a delivery counted) long before its turn.
            loop {
                let claimed = self.bus.claim_idle(self.topic, &self.group, &self.name, self.settings.claim_idle, self.settings.batch).await?;
                if claimed.is_empty() {
                    break;
                }
                self.handle_all(claimed).await?;
            }
        }

        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries).into_iter().partition(|(at, _)| *at <= now);
        self.retries = later;
        if !due.is_empty() {
            let receipts: Vec<Receipt> = due.into_iter().map(|(_, r)| r).collect();
            let again = self.bus.redeliver(self.topic, &self.group, &self.name, &receipts).await?;
            self.handle_all(again).await?;
        }

        let wait = self.retries.iter().map(|(at, _)| at.saturating_duration_since(Instant::now())).min().unwrap_or(Duration::from_millis(200)).min(Duration::from_millis(200));
        let fresh = self.bus.read(self.topic, &self.group, &self.name, self.settings.batch, wait).await?;
        self.handle_all(fresh).await
    }

    async fn handle_all(&mut self, deliveries: Vec<Delivery>) -> shop::Result<()> {
        for delivery in deliveries {
            self.handle_one(delivery).await?;
        }
        // One ack for the batch: a crash before it redelivers what was
        // handled, which handlers deduplicate anyway.
        if !self.acks.is_empty() {
            let acks = std::mem::take(&mut self.acks);
            self.bus.ack(self.topic, &self.group, &acks).await?;
        }
        Ok(())
    }

    async fn handle_one(&mut self, delivery: Delivery) -> shop::Result<()> {
        if delivery.attempt > MAX_TRIES {
            // Delivered that often without an ack or a recorded failure:
            // its handler killed or hung the consumers that ran it.
            let error = format!("delivered {} times without an ack: its consumers died or hung while handling it", delivery.attempt - 1);
            return self.dead_letter(&delivery, &error).await;
        }
        let mut outcome = self.handler.handle(&delivery.event).await;
        // A dependency that is down (mail server, payment provider,
        // database) says nothing about the event: spending its three tries
        // on an outage would dead-letter good events. Hold the line instead,
        // trying this one again with backoff until the dependency answers;
        // the events behind it wait, and none is lost.
        let mut outage = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        while let Err(shop::Error::Unavailable { dependency, .. }) = &outcome {
            let (wait, first) = outage.fail();
            if first {
                tracing::warn!(group = self.group, event = %delivery.event.id, %dependency, "handler waits for a dependency that is down");
            }
            tokio::time::sleep(wait).await;
            outcome = self.handler.handle(&delivery.event).await;
        }
        match outcome {
            Ok(()) => self.acks.push(delivery.receipt),
            // The whole chain: a dead letter keeps what an operator needs (admins only).
            Err(err) if delivery.attempt >= MAX_TRIES => self.dead_letter(&delivery, &crate::startup::error_chain(&err)).await?,
            Err(err) => {
                tracing::debug!(group = self.group, event = %delivery.event.id, attempt = delivery.attempt, error = ?err, "handler failed; will try again");
                let wait = self.settings.retry_after * 2u32.pow(delivery.attempt.saturating_sub(1));
                self.retries.push((Instant::now() + wait, delivery.receipt));
            }
        }
        Ok(())
    }

    async fn dead_letter(&self, delivery: &Delivery, error: &str) -> shop::Result<()> {
        tracing::warn!(group = self.group, topic = %self.topic, event = %delivery.event.id, event_type = delivery.event.event_type, attempts = delivery.attempt, error, "event dead-lettered");
        self.bus.dead_letter(&self.group, delivery, error).await
    }
}


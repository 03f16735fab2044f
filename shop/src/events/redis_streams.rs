//! The default [`EventBus`]: Redis Streams.
//!
//! Each topic is `partitions` streams, `events:{<topic>/<n>}`, one hash tag
//! per partition so every command below touches one slot (Redis Cluster-safe);
//! an aggregate always maps to the same partition (`partition_of`), so its
//! events keep their order. Entries carry the event id (the dedup key) and
//! the envelope as JSON. Retention is by age: every XADD trims with MINID at
//! now minus the topic's retention (entry ids are Redis's clock, in ms).
//! Consumer groups are Redis groups on every partition of the topic;
//! delivery counts are Redis's own (XPENDING). Dead letters go to
//! `events:{<topic>}:dead` with the error, the group and the try count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::Value;

use super::bus::{DeadLetter, Delivery, EventBus, GroupLag, Receipt};
use super::{partition_of, Event, Topic};
use crate::kv::Kv;
use crate::{Error, Result};

/// Dead letters kept per topic: enough for any incident, bounded memory.
const DEAD_LETTERS_KEPT: usize = 100_000;
/// How often `read` looks again while waiting for new events. Per-partition
/// reads cannot share one blocking XREADGROUP across slots.
const POLL: Duration = Duration::from_millis(20);

#[derive(Clone)]
pub struct RedisStreams {
    kv: Kv,
    partitions: u32,
    /// Where the next `read` starts, so a small `max` still serves every
    /// partition in turn.
    next_partition: Arc<AtomicU32>,
}

impl RedisStreams {
    pub fn new(kv: Kv, partitions: u32) -> Self {
        Self { kv, partitions: partitions.max(1), next_partition: Arc::new(AtomicU32::new(0)) }
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The stream of one partition (tests read it directly).
    pub fn stream_key(&self, topic: Topic, partition: u32) -> String {
        self.kv.key(&format!("events:{{{}/{partition}}}", topic.name()))
    }

    fn dead_key(&self, topic: Topic) -> String {
        self.kv.key(&format!("events:{{{}}}:dead", topic.name()))
    }

    /// Delivery counts of `ids` in one partition, from XPENDING.
    async fn delivery_counts(&self, key: &str, group: &str, ids: &[String]) -> Result<HashMap<String, u32>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("XPENDING").arg(key).arg(group).arg(id).arg(id).arg(1);
        }
        let replies: Vec<Vec<(String, String, u64, u32)>> = pipe.query_async(&mut self.kv.conn()).await?;
        Ok(replies.into_iter().flatten().map(|(id, _, _, count)| (id, count)).collect())
    }

    /// Entries claimed or read again, with their delivery counts. Entries
    /// that cannot be parsed are acked and logged: no handler could use them.
    async fn deliveries(&self, topic: Topic, group: &str, partition: u32, entries: Vec<Entry>, counted: bool) -> Result<Vec<Delivery>> {
        let key = self.stream_key(topic, partition);
        let counts = if counted {
            let ids: Vec<String> = entries.iter().map(|e| e.position.clone()).collect();
            self.delivery_counts(&key, group, &ids).await?
        } else {
            HashMap::new()
        };
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            match entry.event() {
                Some(event) => out.push(Delivery {
                    topic,
                    attempt: counts.get(&entry.position).copied().unwrap_or(1),
                    receipt: Receipt { partition, position: entry.position },
                    event,
                }),
                None => {
                    tracing::error!(topic = %topic, partition, position = entry.position, "unreadable stream entry acked and dropped");
                    let _: i64 = redis::cmd("XACK").arg(&key).arg(group).arg(&entry.position).query_async(&mut self.kv.conn()).await?;
                }
            }
        }
        Ok(out)
    }
}

/// One stream entry: its id and fields.
struct Entry {
    position: String,
    fields: HashMap<String, Vec<u8>>,
}

impl Entry {
    fn event(&self) -> Option<Event> {
        serde_json::from_slice(self.fields.get("event")?).ok()
    }

    fn text(&self, field: &str) -> String {
        self.fields.get(field).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `[[id, [field, value, ...]], ...]`; entries deleted under a pending id
/// come as `[id, nil]` and are left out.
fn entries(value: &Value) -> Vec<Entry> {
    let Value::Array(items) = value else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else { return None };
            let position = text(pair.first()?)?;
            let Value::Array(flat) = pair.get(1)? else { return None };
            let fields = flat
                .chunks(2)
                .filter_map(|kv| match kv {
                    [Value::BulkString(k), Value::BulkString(v)] => Some((String::from_utf8_lossy(k).into_owned(), v.clone())),
                    _ => None,
                })
                .collect();
            Some(Entry { position, fields })
        })
        .collect()
}

/// XREADGROUP's reply for one stream: `[[key, entries]]`, or nil.
fn read_reply(value: &Value) -> Vec<Entry> {
    match value {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) => pair.get(1).map(entries),
                _ => None,
            })
            .flatten()
            .collect(),
        _ => Vec::new(),
    }
}

fn is_code(err: &redis::RedisError, code: &str) -> bool {
    err.code() == Some(code)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl RedisStreams {
    /// Creates `group` on every partition of `topic` at entry id `start`
    /// (`0`: everything retained); a group that exists is left as it is.
    async fn create_group(&self, topic: Topic, group: &str, start: &str) -> Result<()> {
        for partition in 0..self.partitions {
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.stream_key(topic, partition))
                .arg(group)
                .arg(start)
                .arg("MKSTREAM")
                .query_async(&mut self.kv.conn())
                .await;
            match created {
                Err(err) if !is_code(&err, "BUSYGROUP") => return Err(err.into()),
                _ => {}
            }
        }
        Ok(())
    }
}

#[async_trait]
impl EventBus for RedisStreams {
    async fn publish(&self, topic: Topic, events: &[Event]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let min_id = now_ms().saturating_sub(topic.retention().as_millis() as u64);
        let mut pipe = redis::pipe();
        for event in events {
            let json = serde_json::to_string(event).map_err(Error::internal)?;
            pipe.cmd("XADD")
                .arg(self.stream_key(topic, partition_of(event.aggregate_id, self.partitions)))
                .arg("MINID")
                .arg("~")
                .arg(min_id)
                .arg("*")
                .arg("id")
                .arg(event.id.to_string())
                .arg("event")
                .arg(json)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.kv.conn()).await?;
        Ok(())
    }

    async fn subscribe(&self, topic: Topic, group: &str) -> Result<()> {
        self.create_group(topic, group, "0").await
    }

    async fn subscribe_since(&self, topic: Topic, group: &str, since: chrono::DateTime<chrono::Utc>) -> Result<()> {
        // Entry ids are Redis's clock in ms: the group's last-delivered id
        // is the millisecond before `since`, so entries from `since` on are new.
        let ms = since.timestamp_millis().max(1) - 1;
        self.create_group(topic, group, &format!("{ms}-0")).await
    }

    async fn read(&self, topic: Topic, group: &str, consumer: &str, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let started = Instant::now();
        loop {
            let first = self.next_partition.fetch_add(1, Ordering::Relaxed);
            let mut out = Vec::new();
            for i in 0..self.partitions {
                if out.len() >= max {
                    break;
                }
                let partition = (first + i) % self.partitions;
                let reply: redis::RedisResult<Value> = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(group)
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(max - out.len())
                    .arg("STREAMS")
                    .arg(self.stream_key(topic, partition))
                    .arg(">")
                    .query_async(&mut self.kv.conn())
                    .await;
                let reply = match reply {
                    // A Redis that restarted without its data lost the
                    // groups: make them again (from the oldest entry left).
                    Err(err) if is_code(&err, "NOGROUP") => {
                        self.subscribe(topic, group).await?;
                        continue;
                    }
                    other => other?,
                };
                out.extend(self.deliveries(topic, group, partition, read_reply(&reply), false).await?);
            }
            if !out.is_empty() || started.elapsed() >= wait {
                return Ok(out);
            }
            tokio::time::sleep(POLL.min(wait.saturating_sub(started.elapsed()))).await;
        }
    }

    async fn ack(&self, topic: Topic, group: &str, receipts: &[Receipt]) -> Result<()> {
        let mut by_partition: HashMap<u32, Vec<&str>> = HashMap::new();
        for r in receipts {
            by_partition.entry(r.partition).or_default().push(&r.position);
        }
        for (partition, ids) in by_partition {
            let _: i64 = redis::cmd("XACK").arg(self.stream_key(topic, partition)).arg(group).arg(ids).query_async(&mut self.kv.conn()).await?;
        }
        Ok(())
    }

    async fn redeliver(&self, topic: Topic, group: &str, consumer: &str, receipts: &[Receipt]) -> Result<Vec<Delivery>> {
        let mut by_partition: HashMap<u32, Vec<&str>> = HashMap::new();
        for r in receipts {
            by_partition.entry(r.partition).or_default().push(&r.position);
        }
        let mut out = Vec::new();
        for (partition, ids) in by_partition {
            // XCLAIM counts one more delivery; an entry retention trimmed
            // away meanwhile is not returned (and leaves the pending list).
            let reply: Value = redis::cmd("XCLAIM")
                .arg(self.stream_key(topic, partition))
                .arg(group)
                .arg(consumer)
                .arg(0)
                .arg(ids)
                .query_async(&mut self.kv.conn())
                .await?;
            out.extend(self.deliveries(topic, group, partition, entries(&reply), true).await?);
        }
        Ok(out)
    }

    async fn claim_idle(&self, topic: Topic, group: &str, consumer: &str, idle: Duration, max: usize) -> Result<Vec<Delivery>> {
        let mut out = Vec::new();
        for partition in 0..self.partitions {
            let key = self.stream_key(topic, partition);
            let mut cursor = "0-0".to_owned();
            while out.len() < max {
                let reply: redis::RedisResult<Value> = redis::cmd("XAUTOCLAIM")
                    .arg(&key)
                    .arg(group)
                    .arg(consumer)
                    .arg(idle.as_millis() as u64)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(max - out.len())
                    .query_async(&mut self.kv.conn())
                    .await;
                let reply = match reply {
                    Err(err) if is_code(&err, "NOGROUP") => break,
                    other => other?,
                };
                let Value::Array(parts) = reply else { break };
                let next = parts.first().and_then(text).unwrap_or_else(|| "0-0".to_owned());
                let claimed = parts.get(1).map(entries).unwrap_or_default();
                out.extend(self.deliveries(topic, group, partition, claimed, true).await?);
                if next == "0-0" {
                    break;
                }
                cursor = next;
            }
        }
        Ok(out)
    }

    async fn dead_letter(&self, group: &str, delivery: &Delivery, error: &str) -> Result<()> {
        let topic = delivery.topic;
        let json = serde_json::to_string(&delivery.event).map_err(Error::internal)?;
        // Two keys in two slots, so no MULTI: written, then acked. A crash
        // in between leaves the event pending; it comes back past its tries
        // and is dead-lettered again (a second copy, same event id).
        let _: String = redis::cmd("XADD")
            .arg(self.dead_key(topic))
            .arg("MAXLEN")
            .arg("~")
            .arg(DEAD_LETTERS_KEPT)
            .arg("*")
            .arg("id")
            .arg(delivery.event.id.to_string())
            .arg("group")
            .arg(group)
            .arg("error")
            .arg(error)
            .arg("attempts")
            .arg(delivery.attempt)
            .arg("dead_at")
            .arg(chrono::Utc::now().to_rfc3339())
            .arg("event")
            .arg(json)
            .query_async(&mut self.kv.conn())
            .await?;
        self.ack(topic, group, std::slice::from_ref(&delivery.receipt)).await
    }

    async fn dead_letters(&self, topic: Topic, limit: usize) -> Result<Vec<DeadLetter>> {
        let reply: Value = redis::cmd("XREVRANGE").arg(self.dead_key(topic)).arg("+").arg("-").arg("COUNT").arg(limit).query_async(&mut self.kv.conn()).await?;
        Ok(entries(&reply)
            .into_iter()
            .filter_map(|entry| {
                Some(DeadLetter {
                    topic: topic.name(),
                    group: entry.text("group"),
                    error: entry.text("error"),
                    attempts: entry.text("attempts").parse().unwrap_or(0),
                    dead_at: chrono::DateTime::parse_from_rfc3339(&entry.text("dead_at")).ok()?.with_timezone(&chrono::Utc),
                    event: entry.event()?,
                })
            })
            .collect())
    }

    async fn dead_letter_count(&self, topic: Topic) -> Result<u64> {
        Ok(redis::cmd("XLEN").arg(self.dead_key(topic)).query_async(&mut self.kv.conn()).await?)
    }

    async fn lag(&self, topic: Topic) -> Result<Vec<GroupLag>> {
        let mut groups: Vec<GroupLag> = Vec::new();
        for partition in 0..self.partitions {
            let reply: redis::RedisResult<Value> = redis::cmd("XINFO").arg("GROUPS").arg(self.stream_key(topic, partition)).query_async(&mut self.kv.conn()).await;
            let reply = match reply {
                // No stream yet: nothing published, no group made.
                Err(err) if err.detail().is_some_and(|d| d.contains("no such key")) => continue,
                other => other?,
            };
            let Value::Array(infos) = reply else { continue };
            for info in infos {
                let fields: HashMap<String, Value> = match info {
                    Value::Array(flat) => flat.chunks(2).filter_map(|kv| Some((text(&kv[0])?, kv.get(1)?.clone()))).collect(),
                    Value::Map(pairs) => pairs.into_iter().filter_map(|(k, v)| Some((text(&k)?, v))).collect(),
                    _ => continue,
                };
                let Some(name) = fields.get("name").and_then(text) else { continue };
                let number = |field: &str| fields.get(field).and_then(text).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
                let (pending, undelivered) = (number("pending"), number("lag"));
                match groups.iter_mut().find(|g| g.group == name) {
                    Some(g) => {
                        g.pending += pending;
                        g.undelivered += undelivered;
                    }
                    None => groups.push(GroupLag { topic, group: name, pending, undelivered }),
                }
            }
        }
        groups.sort_by(|a, b| a.group.cmp(&b.group));
        Ok(groups)
    }
}

//! Redis: one multiplexed, self-reconnecting connection and the key prefix.
//!
//! Every key the shop writes goes through [`Kv::key`], so a deployment (or a
//! test) can share one Redis with others without collisions.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

#[derive(Clone)]
pub struct Kv {
    conn: ConnectionManager,
    // Kept for connections that cannot be shared: a pub/sub subscriber.
    client: redis::Client,
    prefix: String,
}

impl Kv {
    /// Connects once (so a wrong REDIS_URL fails at startup); afterwards the
    /// manager reconnects by itself when Redis comes back.
    pub async fn connect(url: &str, prefix: impl Into<String>) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let conn = Self::manager(&client).await?;
        Ok(Self { conn, client, prefix: prefix.into() })
    }

    /// The same Redis and prefix on a connection of its own, whose reads
    /// run on the caller's runtime (the commit lane's): its replies do not
    /// queue behind everybody else's on the shared socket.
    pub async fn another(&self) -> redis::RedisResult<Self> {
        let conn = Self::manager(&self.client).await?;
        Ok(Self { conn, client: self.client.clone(), prefix: self.prefix.clone() })
    }

    async fn manager(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        ConnectionManager::new_with_config(client.clone(), config).await
    }

    /// `prefix` + `suffix`. Callers put hash tags in the suffix themselves
    /// (`cart:{<user>}`), keeping the key Redis Cluster-safe.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{}", self.prefix, suffix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Deletes every key under this prefix matching `pattern` (a Redis glob
    /// after the prefix). SCAN, not KEYS, so a big keyspace never blocks Redis.
    pub async fn delete_matching(&self, pattern: &str) -> redis::RedisResult<u64> {
        let mut conn = self.conn();
        let pattern = format!("{}{}", glob_escape(&self.prefix), pattern);
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// A connection of its own in subscriber mode (it cannot be shared: a
    /// subscribed connection takes no other commands). It does not
    /// reconnect: its message stream ends when the connection drops.
    pub async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        self.client.get_async_pubsub().await
    }

    /// A connection handle for one operation; clones share the socket.
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

/// Escapes glob metacharacters so a prefix like `test:{x}:` matches literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

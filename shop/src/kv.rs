//! Redis: one multiplexed, self-reconnecting connection and the key prefix.
//!
//! Every key the shop writes goes through [`Kv::key`], so a deployment (or a
//! test) can share one Redis with others without collisions.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

#[derive(Clone)]
pub struct Kv {
    conn: ConnectionManager,
    prefix: String,
}

impl Kv {
    /// Connects once (so a wrong REDIS_URL fails at startup); afterwards the
    /// manager reconnects by itself when Redis comes back.
    pub async fn connect(url: &str, prefix: impl Into<String>) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { conn, prefix: prefix.into() })
    }

    /// `prefix` + `suffix`. Callers put hash tags in the suffix themselves
    /// (`cart:{<user>}`), keeping the key Redis Cluster-safe.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{}", self.prefix, suffix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A connection handle for one operation; clones share the socket.
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

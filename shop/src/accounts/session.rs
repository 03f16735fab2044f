//! Sessions: opaque random tokens, stored in Redis under the SHA-256 of the
//! token (a leaked Redis dump holds no usable token). Chosen over signed
//! JWTs because signing out must end a session at once: deleting the key
//! does that, with no revocation list to keep. Each use slides the expiry.

use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use chrono::{DateTime, Utc};
use model::User;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::kv::Kv;
use crate::{Error, Result};

pub const TTL: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionData {
    pub user: User,
    pub created_at: DateTime<Utc>,
}

/// A new token: 32 bytes from the OS, hex-encoded.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn key(kv: &Kv, token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    kv.key(&format!("session:{{{}}}", hex(&digest)))
}

/// Only tokens of our own shape are looked up; anything else is no session.
pub fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

pub async fn create(kv: &Kv, user: &User) -> Result<String> {
    let mut tokens = create_many(kv, std::slice::from_ref(user)).await?;
    Ok(tokens.remove(0))
}

/// One session per user, written in one round trip.
pub async fn create_many(kv: &Kv, users: &[User]) -> Result<Vec<String>> {
    let mut pipe = redis::pipe();
    let mut tokens = Vec::with_capacity(users.len());
    for user in users {
        let token = new_token();
        let data = SessionData { user: user.clone(), created_at: Utc::now() };
        let json = serde_json::to_string(&data).map_err(Error::internal)?;
        pipe.set_ex(key(kv, &token), json, TTL.as_secs()).ignore();
        tokens.push(token);
    }
    pipe.query_async::<()>(&mut kv.conn()).await?;
    Ok(tokens)
}

/// The session behind `token`, its expiry pushed back by the full TTL.
pub async fn load(kv: &Kv, token: &str) -> Result<Option<SessionData>> {
    if !well_formed(token) {
        return Ok(None);
    }
    let json: Option<String> = redis::cmd("GETEX")
        .arg(key(kv, token))
        .arg("EX")
        .arg(TTL.as_secs())
        .query_async(&mut kv.conn())
        .await?;
    Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
}

pub async fn end(kv: &Kv, token: &str) -> Result<()> {
    if well_formed(token) {
        let _: () = kv.conn().del(key(kv, token)).await?;
    }
    Ok(())
}

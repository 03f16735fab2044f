//! Sessions: opaque random tokens, stored in Redis under the SHA-256 of the
//! token (a leaked Redis dump holds no usable token). Chosen over signed
//! JWTs because signing out must end a session at once: deleting the key
//! does that, with no revocation list to keep. Each use slides the expiry.
//!
//! The session holds a copy of the user (role included), so authenticating
//! costs one Redis read and no SQL. A copy can go stale, so every session id
//! is also listed under its user (`sessions:{<user>}`), and a role change
//! ([`super::Accounts::set_role`]) revokes them all: the next request is
//! anonymous and the next sign-in reads the new role.

use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use chrono::{DateTime, Utc};
use model::User;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use uuid::Uuid;

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

/// The SHA-256 of a token, hex: what Redis knows a session by.
fn digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn key_for_digest(kv: &Kv, digest: &str) -> String {
    kv.key(&format!("session:{{{digest}}}"))
}

fn key(kv: &Kv, token: &str) -> String {
    key_for_digest(kv, &digest(token))
}

/// The set of a user's session digests (revocation only; never read on the hot path).
fn index_key(kv: &Kv, user: Uuid) -> String {
    kv.key(&format!("sessions:{{{user}}}"))
}

/// Above this many listed sessions, sign-in drops the ones that expired.
const INDEX_PRUNE_AT: usize = 32;

/// Only tokens of our own shape are looked up; anything else is no session.
pub fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

pub async fn create(kv: &Kv, user: &User) -> Result<String> {
    let mut tokens = create_many(kv, std::slice::from_ref(user)).await?;
    prune_index(kv, user.id).await?;
    Ok(tokens.remove(0))
}

/// One session per user, written in one round trip, each listed under its
/// user. The index lives as long as the newest session could.
pub async fn create_many(kv: &Kv, users: &[User]) -> Result<Vec<String>> {
    let mut pipe = redis::pipe();
    let mut tokens = Vec::with_capacity(users.len());
    for user in users {
        let token = new_token();
        let digest = digest(&token);
        let data = SessionData { user: user.clone(), created_at: Utc::now() };
        let json = serde_json::to_string(&data).map_err(Error::internal)?;
        pipe.set_ex(key_for_digest(kv, &digest), json, TTL.as_secs()).ignore();
        pipe.sadd(index_key(kv, user.id), &digest).ignore();
        pipe.expire(index_key(kv, user.id), TTL.as_secs() as i64).ignore();
        tokens.push(token);
    }
    pipe.query_async::<()>(&mut kv.conn()).await?;
    Ok(tokens)
}

/// Drops listed sessions that have expired, once the list is long enough
/// to be worth it (a customer who signs in daily for years).
async fn prune_index(kv: &Kv, user: Uuid) -> Result<()> {
    let mut conn = kv.conn();
    let listed: Vec<String> = conn.smembers(index_key(kv, user)).await?;
    if listed.len() <= INDEX_PRUNE_AT {
        return Ok(());
    }
    let mut exists = redis::pipe();
    for digest in &listed {
        exists.exists(key_for_digest(kv, digest));
    }
    let alive: Vec<bool> = exists.query_async(&mut conn).await?;
    let gone: Vec<&String> = listed.iter().zip(alive).filter(|(_, alive)| !alive).map(|(d, _)| d).collect();
    if !gone.is_empty() {
        let _: () = conn.srem(index_key(kv, user), gone).await?;
    }
    Ok(())
}

/// Ends every session of `user`; returns how many were live. Only the
/// listed digests are removed from the index (not the whole set), so a
/// session created meanwhile stays listed and a later revocation finds it.
pub async fn revoke_all(kv: &Kv, user: Uuid) -> Result<usize> {
    let mut conn = kv.conn();
    let listed: Vec<String> = conn.smembers(index_key(kv, user)).await?;
    if listed.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    for digest in &listed {
        pipe.del(key_for_digest(kv, digest));
    }
    pipe.srem(index_key(kv, user), &listed).ignore();
    let deleted: Vec<usize> = pipe.query_async(&mut conn).await?;
    Ok(deleted.into_iter().sum())
}

/// Rewrites the user copy in a live session (same expiry); a session that
/// has ended meanwhile stays ended.
pub async fn refresh_user(kv: &Kv, token: &str, user: &User) -> Result<()> {
    let data = SessionData { user: user.clone(), created_at: Utc::now() };
    let json = serde_json::to_string(&data).map_err(Error::internal)?;
    let _: Option<String> = redis::cmd("SET")
        .arg(key(kv, token))
        .arg(json)
        .arg("XX")
        .arg("KEEPTTL")
        .query_async(&mut kv.conn())
        .await?;
    Ok(())
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

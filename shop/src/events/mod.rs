//! Events: the transactional outbox. A service records an event in the same
//! transaction as the change it describes; a relay (next: the outbox
//! relay worker) publishes unpublished rows afterwards, at least once.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

/// Writes one event into `conn`'s transaction; it commits or rolls back
/// with the change it describes.
pub async fn record(conn: &mut PgConnection, aggregate_type: &str, aggregate_id: Uuid, event_type: &str, payload: serde_json::Value) -> Result<Uuid> {
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

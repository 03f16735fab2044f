//! Once per event id, for handlers whose effect is in PostgreSQL: the
//! handler calls [`first_time`] inside the transaction that makes its
//! effect. A redelivered event (the relay published twice, or a consumer
//! died before its ack) finds its row and the handler skips it; a handler
//! that fails rolls the row back with its effect, so the retry runs again.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

/// True the first time `consumer` handles `event_id` in a transaction that
/// commits. A second delivery racing the first waits on the first's
/// uncommitted row, then sees it: only one of them goes on.
pub async fn first_time(conn: &mut PgConnection, consumer: &str, event_id: Uuid) -> Result<bool> {
    let inserted = sqlx::query("INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(consumer)
        .bind(event_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(inserted == 1)
}

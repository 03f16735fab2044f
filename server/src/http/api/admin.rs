//! Admin operations: `POST /api/v1/admin/reconcile` runs the same
//! reconciliation as `server reconcile` and the periodic job, and answers
//! with its drift report; `GET /api/v1/admin/dead-letters` lists the events
//! consumer groups gave up on, with their errors.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::QueryPairs;
use crate::http::auth::Admin;
use crate::http::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/reconcile", post(reconcile))
        .route("/api/v1/admin/dead-letters", get(dead_letters))
}

async fn reconcile(State(state): State<AppState>, _admin: Admin) -> Result<Json<shop::inventory::ReconcileReport>, ApiError> {
    Ok(Json(state.shop.inventory().reconcile().await?))
}

#[derive(serde::Serialize)]
struct DeadLetters {
    items: Vec<shop::events::DeadLetter>,
}

/// Newest first, across topics unless `topic` names one; `limit` up to 500.
async fn dead_letters(State(state): State<AppState>, _admin: Admin, query: QueryPairs) -> Result<Json<DeadLetters>, ApiError> {
    let topics = match query.get("topic") {
        None => shop::events::Topic::ALL.to_vec(),
        Some(name) => vec![shop::events::Topic::parse(name).ok_or_else(|| ApiError::BadParam {
            param: "topic".into(),
            message: "expected order-events, inventory-events or payment-events".into(),
        })?],
    };
    let limit = match query.get("limit") {
        None => 50,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::BadParam { param: "limit".into(), message: "expected a positive whole number".into() })?
            .min(500),
    };
    let bus = crate::workers::relay::bus(&state.shop, state.config.event_partitions);
    let mut items = Vec::new();
    for topic in topics {
        items.extend(bus.dead_letters(topic, limit).await?);
    }
    items.sort_by(|a, b| b.dead_at.cmp(&a.dead_at));
    items.truncate(limit);
    Ok(Json(DeadLetters { items }))
}

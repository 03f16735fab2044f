//! Admin operations: `POST /api/v1/admin/reconcile` runs the same
//! reconciliation as `server reconcile` and the periodic job, and answers
//! with its drift report.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};

use crate::http::auth::Admin;
use crate::http::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/admin/reconcile", post(reconcile))
}

async fn reconcile(State(state): State<AppState>, _admin: Admin) -> Result<Json<shop::inventory::ReconcileReport>, ApiError> {
    Ok(Json(state.shop.inventory().reconcile().await?))
}

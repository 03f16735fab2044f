//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: the process is up and serving. Touches nothing else, so a
/// dead database never makes an orchestrator restart a healthy process.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: PostgreSQL and Redis both answer. 503 names what failed.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let checks = shop::health::check_all(&state.shop).await;
    let failing: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    if failing.is_empty() {
        return Json(json!({ "status": "ready", "checks": checks })).into_response();
    }
    for check in checks.iter().filter(|c| !c.ok) {
        tracing::warn!(dependency = check.name, error = check.error.as_deref().unwrap_or(""), "not ready");
    }
    let message = format!("{} unavailable", failing.join(" and "));
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        Json(json!({
            "error": "not_ready",
            "message": message,
            "failing": failing,
            "checks": checks,
        })),
    )
        .into_response()
}

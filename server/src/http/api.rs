//! The REST API (`/api/v1`, per shared/API.md). Each service adds its own
//! `router()` here as it arrives; anything unmatched under /api answers a JSON
//! 404, never the storefront's HTML page.

use axum::http::Uri;
use axum::routing::any;
use axum::Router;

use super::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api", any(not_found))
        .route("/api/{*rest}", any(not_found))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no API endpoint at {}", uri.path()))
}

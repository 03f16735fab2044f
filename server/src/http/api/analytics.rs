//! `GET /api/v1/seller/analytics?sku_id=&from=&to=`: per-minute figures of
//! one SKU (`shop::analytics`). A seller sees only its own SKUs (another
//! seller's answers 404, as if absent); an admin any. `from` and `to` are
//! RFC 3339; `to` defaults to now and `from` to an hour before `to`.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{parse_id, QueryPairs};
use crate::http::auth::Seller;
use crate::http::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/seller/analytics", get(analytics))
}

#[derive(Serialize)]
struct Body {
    sku_id: uuid::Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    buckets: Vec<shop::analytics::Bucket>,
}

fn time(query: &QueryPairs, param: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    query
        .get(param)
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)).map_err(|_| ApiError::BadParam {
                param: param.to_owned(),
                message: "expected an RFC 3339 time, e.g. 2026-12-20T10:00:00Z".into(),
            })
        })
        .transpose()
}

async fn analytics(State(state): State<AppState>, seller: Seller, query: QueryPairs) -> Result<Response, ApiError> {
    let sku_id = parse_id("sku_id", query.get("sku_id").ok_or_else(|| ApiError::BadParam { param: "sku_id".into(), message: "required".into() })?)?;
    let to = time(&query, "to")?.unwrap_or_else(Utc::now);
    let from = time(&query, "from")?.unwrap_or(to - chrono::Duration::hours(1));
    let buckets = state.shop.analytics().sku_minutes(seller.scope()?, sku_id, from, to).await?;
    // Live figures during a sale: never cached.
    let mut response = Json(Body { sku_id, from, to, buckets }).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(response)
}

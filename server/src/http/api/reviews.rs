//! Product reviews: `GET /api/v1/products/{product_id}/reviews` (public,
//! keyset-paged, with the histogram) and `POST` of the same path (a verified
//! buyer writes or replaces their review: 201 the first time, 200 after).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use model::{Review, ReviewPage, ReviewRequest, ReviewSort};
use shop::reviews::Written;

use super::{parse_id, QueryPairs};
use crate::http::auth::AuthUser;
use crate::http::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/products/{product_id}/reviews", get(list).post(write))
}

/// Public and the same for every caller (first names only), so the
/// catalog's short shared Cache-Control (`caching::policy_for`) applies.
async fn list(State(state): State<AppState>, Path(product_id): Path<String>, query: QueryPairs) -> Result<Json<ReviewPage>, ApiError> {
    let id = parse_id("product_id", &product_id)?;
    let sort = match query.get("sort") {
        None => ReviewSort::default(),
        Some(raw) => ReviewSort::parse(raw)
            .ok_or_else(|| ApiError::BadParam { param: "sort".into(), message: "expected newest or helpful".into() })?,
    };
    let (limit, cursor) = query.page(10)?;
    Ok(Json(state.shop.reviews().list(id, sort, limit, cursor).await?))
}

async fn write(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(product_id): Path<String>,
    body: Result<Json<ReviewRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Review>), ApiError> {
    let id = parse_id("product_id", &product_id)?;
    let request = super::json_body(body)?;
    let (written, review) = state.shop.reviews().write(auth.user.id, id, &request).await?;
    let status = match written {
        Written::Created => StatusCode::CREATED,
        Written::Replaced => StatusCode::OK,
    };
    Ok((status, Json(review)))
}

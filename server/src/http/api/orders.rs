//! Checkout and orders: `POST /api/v1/checkout` (with `Idempotency-Key`),
//! `GET /api/v1/orders`, `GET /api/v1/orders/{order_id}`,
//! `POST /api/v1/orders/{order_id}/cancel`. Another customer's order is 404,
//! never 403: its existence is not the caller's business.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{parse_id, QueryPairs};
use crate::http::auth::AuthUser;
use crate::http::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/checkout", post(checkout))
        .route("/api/v1/orders", get(list))
        .route("/api/v1/orders/{order_id}", get(one))
        .route("/api/v1/orders/{order_id}/cancel", post(cancel))
}

fn private(body: impl serde::Serialize, status: StatusCode) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    response
}

async fn checkout(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    body: Result<Json<shop::checkout::CheckoutRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::BadParam { param: "Idempotency-Key".into(), message: "send a client-generated key (e.g. a UUID) in the Idempotency-Key header".into() })?
        .to_owned();
    let request = super::json_body(body)?;
    let placed = state.shop.checkout().place(auth.user.id, &key, &request).await?;
    Ok(private(placed, StatusCode::CREATED))
}

async fn list(State(state): State<AppState>, auth: AuthUser, query: QueryPairs) -> Result<Response, ApiError> {
    let (limit, cursor) = query.page(20)?;
    Ok(private(state.shop.orders().list(auth.user.id, limit, cursor).await?, StatusCode::OK))
}

async fn one(State(state): State<AppState>, auth: AuthUser, Path(order_id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id("order_id", &order_id)?;
    Ok(private(state.shop.orders().get(auth.user.id, id).await?, StatusCode::OK))
}

async fn cancel(State(state): State<AppState>, auth: AuthUser, Path(order_id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id("order_id", &order_id)?;
    Ok(private(state.shop.checkout().cancel(auth.user.id, id).await?, StatusCode::OK))
}

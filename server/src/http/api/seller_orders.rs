//! Seller orders (`shop::fulfilment`): `GET /api/v1/seller/orders`,
//! `POST /api/v1/seller/orders/{order_id}/ship` and `.../refund`. A seller
//! sees and acts on orders holding its lines, and only its own lines; an
//! admin any. Another seller's order is 404, as if absent.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use model::order::OrderStatus;
use serde::Deserialize;

use super::{parse_id, personal, QueryPairs};
use crate::http::auth::Seller;
use crate::http::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/seller/orders", get(list))
        .route("/api/v1/seller/orders/{order_id}/ship", post(ship))
        .route("/api/v1/seller/orders/{order_id}/refund", post(refund))
}


async fn list(State(state): State<AppState>, seller: Seller, query: QueryPairs) -> Result<Response, ApiError> {
    let (limit, before) = query.page(50)?;
    let status = match query.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(OrderStatus::parse(&raw.to_ascii_uppercase()).ok_or_else(|| ApiError::BadParam {
            param: "status".into(),
            message: "expected one of PLACED, PAYMENT_PENDING, CONFIRMED, SHIPPED, DELIVERED, CANCELLED, REFUNDED".into(),
        })?),
    };
    let page = state.shop.fulfilment().seller_orders(seller.scope()?, status, limit, before).await?;
    Ok(personal(page))
}

#[derive(Deserialize)]
struct ShipBody {
    carrier: String,
    tracking_number: String,
}

async fn ship(
    State(state): State<AppState>,
    seller: Seller,
    Path(order_id): Path<String>,
    body: Result<Json<ShipBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let order_id = parse_id("order_id", &order_id)?;
    let body = super::json_body(body)?;
    let order = state.shop.fulfilment().ship_by_hand(seller.scope()?, order_id, &body.carrier, &body.tracking_number).await?;
    Ok(personal(order))
}

async fn refund(State(state): State<AppState>, seller: Seller, Path(order_id): Path<String>) -> Result<Response, ApiError> {
    let order_id = parse_id("order_id", &order_id)?;
    let order = state.shop.fulfilment().refund(seller.scope()?, order_id).await?;
    Ok(personal(order))
}

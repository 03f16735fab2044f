//! Seller stock: `GET /api/v1/seller/skus`, `PUT /api/v1/seller/skus/{sku_id}/stock`
//! and `PUT /api/v1/seller/skus/{sku_id}/shards` (hot-SKU sharding, e.g.
//! before a flash sale). A seller sees and changes only its own shop's SKUs
//! (another seller's answer 404, as if absent); an admin any.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;

use super::{parse_id, personal, QueryPairs};
use crate::http::auth::Seller;
use crate::http::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/seller/skus", get(list))
        .route("/api/v1/seller/skus/{sku_id}/stock", put(set_stock))
        .route("/api/v1/seller/skus/{sku_id}/shards", put(set_shards))
}


async fn list(State(state): State<AppState>, seller: Seller, query: QueryPairs) -> Result<Response, ApiError> {
    let (limit, after) = query.page(100)?;
    let page = state.shop.inventory().seller_skus(seller.scope()?, limit, after).await?;
    Ok(personal(page))
}

#[derive(Deserialize)]
struct StockBody {
    stock_count: i64,
}

async fn set_stock(
    State(state): State<AppState>,
    seller: Seller,
    Path(sku_id): Path<String>,
    body: Result<Json<StockBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let sku = parse_id("sku_id", &sku_id)?;
    let body = super::json_body(body)?;
    let row = state.shop.inventory().set_stock(seller.scope()?, sku, body.stock_count).await?;
    Ok(personal(row))
}

#[derive(Deserialize)]
struct ShardsBody {
    shards: u32,
}

async fn set_shards(
    State(state): State<AppState>,
    seller: Seller,
    Path(sku_id): Path<String>,
    body: Result<Json<ShardsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let sku = parse_id("sku_id", &sku_id)?;
    let body = super::json_body(body)?;
    let row = state.shop.inventory().set_shards(seller.scope()?, sku, body.shards).await?;
    Ok(personal(row))
}

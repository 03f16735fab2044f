//! Catalog and search endpoints: categories, product search and browse,
//! suggestions, one product, and its live stock.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use model::{BrowsePage, CategorySummary, Product, SearchParams, SkuStock};
use serde::Serialize;
use uuid::Uuid;

use super::{parse_id, QueryPairs};
use crate::http::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/categories", get(categories))
        .route("/api/v1/categories/{slug}/products", get(browse))
        .route("/api/v1/products", get(search))
        .route("/api/v1/products/{product_id}", get(product))
        .route("/api/v1/products/{product_id}/stock", get(stock))
        .route("/api/v1/search/suggest", get(suggest))
}

#[derive(Serialize)]
struct Categories {
    categories: Vec<CategorySummary>,
}

async fn categories(State(state): State<AppState>) -> Result<Json<Categories>, ApiError> {
    Ok(Json(Categories { categories: state.shop.catalog().categories().await? }))
}

/// `GET /api/v1/products`: search and browse with facets, page-numbered.
async fn search(State(state): State<AppState>, query: QueryPairs) -> Result<Response, ApiError> {
    let params = SearchParams::from_pairs(query.iter())?;
    let json = state.shop.search().run_json(&params).await?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], json).into_response())
}

/// `GET /api/v1/categories/{slug}/products`: a category, keyset-paginated
/// (`cursor` from the previous page's `next_cursor`).
async fn browse(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    query: QueryPairs,
) -> Result<Json<BrowsePage>, ApiError> {
    if !model::query::is_slug(&slug) {
        return Err(ApiError::NotFound("category not found".into()));
    }
    let params = SearchParams::from_pairs(query.iter())?;
    Ok(Json(state.shop.catalog().browse(&slug, &params).await?))
}

async fn product(State(state): State<AppState>, Path(product_id): Path<String>) -> Result<Json<Product>, ApiError> {
    let id = parse_id("product_id", &product_id)?;
    Ok(Json(state.shop.catalog().product(id).await?))
}

#[derive(Serialize)]
struct Stock {
    product_id: Uuid,
    skus: Vec<SkuStock>,
}

/// Live stock, never cached: what a product page refreshes once hydrated.
async fn stock(State(state): State<AppState>, Path(product_id): Path<String>) -> Result<Json<Stock>, ApiError> {
    let id = parse_id("product_id", &product_id)?;
    Ok(Json(Stock { product_id: id, skus: state.shop.catalog().stock(id).await? }))
}

#[derive(Serialize)]
struct Suggestions {
    suggestions: Vec<shop::search::Suggestion>,
}

async fn suggest(State(state): State<AppState>, query: QueryPairs) -> Result<Json<Suggestions>, ApiError> {
    let q = query.get("q").unwrap_or_default();
    Ok(Json(Suggestions { suggestions: state.shop.search().suggest(q).await? }))
}

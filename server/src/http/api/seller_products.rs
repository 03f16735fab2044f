//! Seller products (`shop::catalog`): `GET /api/v1/seller/products`
//! (`?q=&limit=&cursor=`), `POST /api/v1/seller/products`, and
//! `GET`/`PATCH /api/v1/seller/products/{product_id}`. A seller sees and
//! changes only its own shop's products (another's answer 404, as if
//! absent); an admin any, and names the shop a new product joins.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use model::{NewProduct, ProductChange};
use shop::catalog::Claim;

use super::{json_body, parse_id, personal, QueryPairs};
use crate::http::auth::Seller;
use crate::http::error::ApiError;
use crate::state::AppState;

type Body<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/seller/products", get(list).post(create))
        .route("/api/v1/seller/products/{product_id}", get(one).patch(change))
}

async fn list(State(state): State<AppState>, seller: Seller, query: QueryPairs) -> Result<Response, ApiError> {
    let (limit, after) = query.page(50)?;
    let page = state.shop.catalog().seller_products(seller.scope()?, query.get("q"), limit, after).await?;
    Ok(personal(page))
}

async fn one(State(state): State<AppState>, seller: Seller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id("product_id", &id)?;
    Ok(personal(state.shop.catalog().seller_product(seller.scope()?, id).await?))
}

/// An `Idempotency-Key` is optional here (a product has no payment to
/// double), but a client that may retry sends one: the retry then answers
/// with the first attempt's product, marked `Idempotent-Replayed: true` as
/// Stripe marks its replays.
async fn create(State(state): State<AppState>, seller: Seller, headers: HeaderMap, body: Body<NewProduct>) -> Result<Response, ApiError> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| ApiError::BadParam {
            param: "Idempotency-Key".into(),
            message: "send a client-generated key (e.g. a UUID) of visible ASCII characters".into(),
        })?),
    };
    let new = json_body(body)?;
    let claim = key.map(|key| Claim { user: seller.0.user.id, key });
    let (product, created) = state.shop.catalog().create_product(seller.scope()?, new, claim).await?;
    let mut response = personal(&product);
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/seller/products/{}", product.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if created.replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

async fn change(
    State(state): State<AppState>,
    seller: Seller,
    Path(id): Path<String>,
    body: Body<ProductChange>,
) -> Result<Response, ApiError> {
    let id = parse_id("product_id", &id)?;
    let change = json_body(body)?;
    Ok(personal(state.shop.catalog().change_product(seller.scope()?, id, change).await?))
}

//! The REST API (`/api/v1`, per shared/API.md). Each service has its own
//! module with a `router()`, merged here; anything unmatched under /api
//! answers a JSON 404, never the storefront's HTML page.

mod accounts;
mod admin;
mod analytics;
mod cart;
mod catalog;
mod flash;
pub mod openapi;
mod orders;
mod reviews;
mod seller;
mod seller_orders;
mod seller_products;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::Uri;
use axum::routing::{any, get};
use axum::Router;

use super::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(accounts::router())
        .merge(cart::router())
        .merge(catalog::router())
        .merge(reviews::router())
        .merge(seller::router())
        .merge(seller_orders::router())
        .merge(seller_products::router())
        .merge(analytics::router())
        .merge(orders::router())
        .merge(admin::router())
        .merge(flash::router())
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api", any(not_found))
        .route("/api/{*rest}", any(not_found))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no API endpoint at {}", uri.path()))
}

/// The query string as decoded `key=value` pairs, repeated keys kept (e.g.
/// `brand=A&brand=B`). A malformed query string is a 400, not a 500.
pub struct QueryPairs(pub Vec<(String, String)>);

impl QueryPairs {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// A keyset page request: `limit` (default `default_limit`; the service
    /// clamps it) and an opaque UUID `cursor`, each a 400 naming it when bad.
    pub fn page(&self, default_limit: i64) -> Result<(i64, Option<uuid::Uuid>), ApiError> {
        let limit = match self.get("limit") {
            None => default_limit,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::BadParam { param: "limit".into(), message: "expected a positive whole number".into() })?,
        };
        let cursor = self.get("cursor").map(|raw| parse_id("cursor", raw)).transpose()?;
        Ok((limit, cursor))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::BadRequest("the query string is malformed".into()))?;
        Ok(QueryPairs(pairs))
    }
}

/// A JSON body that failed to parse is a 400 naming the problem, not axum's
/// plain-text rejection.
pub fn json_body<T>(parsed: Result<axum::Json<T>, axum::extract::rejection::JsonRejection>) -> Result<T, ApiError> {
    parsed.map(|axum::Json(t)| t).map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// A JSON answer no cache may keep: figures that move by the second, or
/// what only this caller may see.
pub fn personal(body: impl serde::Serialize) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static(crate::http::caching::PERSONAL),
    );
    response
}

/// Parses a UUID path segment, naming the parameter when it is not one.
pub fn parse_id(param: &str, raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::try_parse(raw)
        .map_err(|_| ApiError::BadParam { param: param.to_owned(), message: "expected a UUID".into() })
}

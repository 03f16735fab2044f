//! `GET /images/products/{product_id}/{version}/{n}.svg`: generated product
//! images, immutable (the version is part of the URL), revalidated by ETag.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::caching::{self, IMMUTABLE};
use super::error::ApiError;
use crate::state::AppState;

pub async fn product_image(
    State(state): State<AppState>,
    Path((product_id, version, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("no such image".into());
    let id = Uuid::try_parse(&product_id).map_err(|_| not_found())?;
    let position: usize = file
        .strip_suffix(".svg")
        .and_then(|n| n.parse().ok())
        .ok_or_else(not_found)?;
    if version != shop::catalog::images::IMAGE_VERSION {
        return Err(not_found());
    }
    let record = match state.shop.catalog().record(id).await {
        Err(shop::Error::NotFound { .. }) => return Err(not_found()),
        other => other?,
    };
    let svg = shop::catalog::images::render(&record, position).ok_or_else(not_found)?;
    let etag = caching::etag_for(svg.as_bytes());
    let mut response_headers = HeaderMap::new();
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    response_headers.insert(header::ETAG, etag.clone());
    if caching::matches_etag(headers.get(header::IF_NONE_MATCH), &etag) {
        return Ok(caching::not_modified(&response_headers));
    }
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    Ok((response_headers, svg).into_response())
}

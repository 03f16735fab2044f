//! Flash sales. Sellers: `POST|GET /api/v1/seller/flash-sales`,
//! `GET /api/v1/seller/flash-sales/{id}`, `POST …/{id}/cancel` (before the
//! start) and `GET …/{id}/live` (Server-Sent Events, resumable with
//! `Last-Event-ID`). Customers: `GET /api/v1/flash-sales/{id}` (public),
//! and, signed in and within the flash budget (5 requests a second per
//! customer, then 429 + Retry-After), `POST …/{id}/buy` and
//! `GET|DELETE …/{id}/me`.
//!
//! A buy that finds no unit answers 202 at once with the customer's place
//! in line; the client then long-polls `/me?wait=25` with the `ETag` it
//! has, which answers the moment the state changes (`reserved` when a unit
//! comes back for them, `sold_out` when their wait is over) or 304 after
//! the wait. A parked request costs the server a task on a connection the
//! shopper's browser keeps open anyway; polling every second cost a
//! session read, a rate-limit script and a state script each time.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use model::flash::{BuyRequest, NewFlashSale};
use shop::flash::Bought;

use super::{parse_id, QueryPairs};
use crate::http::auth::{AuthUser, Seller};
use crate::http::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/seller/flash-sales", post(create).get(list))
        .route("/api/v1/seller/flash-sales/{id}", get(seller_view))
        .route("/api/v1/seller/flash-sales/{id}/cancel", post(cancel))
        .route("/api/v1/seller/flash-sales/{id}/live", get(live))
        .route("/api/v1/flash-sales/{id}", get(public_view))
        .route("/api/v1/flash-sales/{id}/buy", post(buy))
        .route("/api/v1/flash-sales/{id}/me", get(me).delete(leave))
}

/// How often a live stream looks for the next sample (one a second).
const LIVE_POLL: Duration = Duration::from_millis(250);

fn personal(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    response
}

/// A signed-in customer (401 otherwise) who has budget left for a flash
/// request (429 + Retry-After otherwise): the gateway's layer for every
/// customer flash endpoint, before any other work.
struct FlashCustomer(AuthUser);

impl FromRequestParts<AppState> for FlashCustomer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        state.shop.flash().limit(auth.user.id).await?;
        Ok(FlashCustomer(auth))
    }
}

async fn create(
    State(state): State<AppState>,
    seller: Seller,
    body: Result<Json<NewFlashSale>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let new = super::json_body(body)?;
    let sale = state.shop.flash().create(seller.scope()?, &new).await?;
    Ok(personal(StatusCode::CREATED, sale))
}

async fn list(State(state): State<AppState>, seller: Seller, query: QueryPairs) -> Result<Response, ApiError> {
    let (limit, after) = query.page(20)?;
    let page = state.shop.flash().list(seller.scope()?, limit, after).await?;
    Ok(personal(StatusCode::OK, page))
}

async fn seller_view(State(state): State<AppState>, seller: Seller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id("id", &id)?;
    let sale = state.shop.flash().get(seller.scope()?, id).await?;
    Ok(personal(StatusCode::OK, sale))
}

async fn cancel(State(state): State<AppState>, seller: Seller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id("id", &id)?;
    let sale = state.shop.flash().cancel(seller.scope()?, id).await?;
    Ok(personal(StatusCode::OK, sale))
}

/// The live figures as Server-Sent Events: one `figures` event a second
/// (the sale's shared sample stream, so every viewer sees the same ids). A
/// reconnect with `Last-Event-ID` gets every event after that one first.
async fn live(State(state): State<AppState>, seller: Seller, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let id = parse_id("id", &id)?;
    state.shop.flash().get(seller.scope()?, id).await?;
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let shop = state.shop.clone();
    let stream = futures_util::stream::unfold((shop, last, VecDeque::new()), move |(shop, mut last, mut queue)| async move {
        loop {
            if let Some((event_id, figures)) = queue.pop_front() {
                let event = Event::default().id(&event_id).event("figures").data(serde_json::to_string(&figures).unwrap_or_default());
                last = Some(event_id);
                return Some((Ok::<_, Infallible>(event), (shop, last, queue)));
            }
            match shop.flash().live_events(id, last.as_deref()).await {
                Ok(events) if !events.is_empty() => queue.extend(events),
                Ok(_) => tokio::time::sleep(LIVE_POLL).await,
                Err(err) => {
                    tracing::warn!(sale = %id, error = %err, "live figures unreadable; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    let mut response = Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Public: no personal figure in it, so a cache may keep it for a second.
async fn public_view(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id("id", &id)?;
    let sale = state.shop.flash().public(id).await?;
    let mut response = Json(sale).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=1"));
    Ok(response)
}

async fn buy(
    State(state): State<AppState>,
    FlashCustomer(auth): FlashCustomer,
    Path(id): Path<String>,
    body: Result<Json<BuyRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id("id", &id)?;
    let BuyRequest { quantity } = super::json_body(body)?;
    let (status, mine) = match state.shop.flash().buy(auth.user.id, id, quantity).await? {
        Bought::Reserved(state) => (StatusCode::OK, state),
        Bought::Waiting(state) => (StatusCode::ACCEPTED, state),
    };
    // The tag a long poll of `/me` starts from.
    let tag = shop::flash::tag(&mine);
    Ok(tagged(personal(status, mine), &tag))
}

fn tagged(mut response: Response, tag: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{tag}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// The customer's state, with its entity tag. With `If-None-Match` (the
/// tag of the state the caller has) the answer is 304 while it still
/// holds; adding `wait=<seconds>` (at most 25) makes it a long poll: the
/// request parks until the state changes (a promotion answers at once) or
/// the wait is over.
async fn me(
    State(state): State<AppState>,
    FlashCustomer(auth): FlashCustomer,
    Path(id): Path<String>,
    query: QueryPairs,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id("id", &id)?;
    let wait = match query.get("wait") {
        None => Duration::ZERO,
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
            .filter(|w| *w <= shop::flash::MAX_WAIT)
            .ok_or_else(|| ApiError::BadParam {
                param: "wait".into(),
                message: format!("expected whole seconds from 0 to {}", shop::flash::MAX_WAIT.as_secs()),
            })?,
    };
    let known = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(|v| v.trim().trim_start_matches("W/").trim_matches('"').to_owned());
    let flash = state.shop.flash();
    let mine = match &known {
        Some(known) if !wait.is_zero() => flash.me_changed(auth.user.id, id, known, wait).await?,
        _ => flash.me(auth.user.id, id).await?,
    };
    let tag = shop::flash::tag(&mine);
    let response = match known.as_deref() == Some(tag.as_str()) {
        true => {
            let mut unchanged = StatusCode::NOT_MODIFIED.into_response();
            unchanged.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
            unchanged
        }
        false => personal(StatusCode::OK, mine),
    };
    Ok(tagged(response, &tag))
}

async fn leave(State(state): State<AppState>, FlashCustomer(auth): FlashCustomer, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id("id", &id)?;
    let mine = state.shop.flash().leave(auth.user.id, id).await?;
    Ok(personal(StatusCode::OK, mine))
}

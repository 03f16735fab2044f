//! The cart: `GET /api/v1/cart`, `POST /api/v1/cart/items`,
//! `PUT|DELETE /api/v1/cart/items/{sku_id}`. Signed-in shoppers use their own
//! cart; guests get a `mercato_guest` cookie on their first write. Adding and
//! setting a quantity share one rate limit per user (or per IP for guests).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use shop::cart::Owner;

use super::parse_id;
use crate::http::auth::{cookie, guest_cookie, same_origin, MaybeAuthUser, GUEST_COOKIE};
use crate::http::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/cart", get(view))
        .route("/api/v1/cart/items", post(add))
        .route("/api/v1/cart/items/{sku_id}", put(set).delete(remove))
}

/// Whose cart a request is about, and the guest cookie to set if one was just made.
struct CartOwner {
    owner: Owner,
    subject: String,
    new_guest: Option<HeaderValue>,
}

impl FromRequestParts<AppState> for CartOwner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(auth) = MaybeAuthUser::from_request_parts(parts, state).await?.0 {
            return Ok(CartOwner { owner: Owner::User(auth.user.id), subject: format!("user:{}", auth.user.id), new_guest: None });
        }
        let ip = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map(|ConnectInfo(addr)| addr.ip().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let subject = format!("ip:{ip}");
        let writing = parts.method != Method::GET && parts.method != Method::HEAD;
        match cookie(&parts.headers, GUEST_COOKIE).filter(|t| shop::accounts::session::well_formed(t)) {
            Some(token) => {
                // The guest cookie is a credential too: writes must come from our pages.
                if writing && !same_origin(parts) {
                    return Err(ApiError::Forbidden("cross-site request refused: send it from the shop's own pages"));
                }
                Ok(CartOwner { owner: Owner::Guest(token), subject, new_guest: None })
            }
            None => {
                let token = shop::accounts::session::new_token();
                let new_guest = writing.then(|| guest_cookie(&token, &parts.headers));
                Ok(CartOwner { owner: Owner::Guest(token), subject, new_guest })
            }
        }
    }
}

impl CartOwner {
    fn respond(self, cart: shop::cart::CartView) -> Response {
        let mut response = Json(cart).into_response();
        if let Some(cookie) = self.new_guest {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        // A cart is personal: never cached by anyone.
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        response
    }
}

#[derive(Deserialize)]
struct AddItem {
    sku_id: String,
    quantity: i64,
}

#[derive(Deserialize)]
struct SetQuantity {
    quantity: i64,
}


async fn view(State(state): State<AppState>, who: CartOwner) -> Result<Response, ApiError> {
    let cart = state.shop.cart().view(&who.owner).await?;
    Ok(who.respond(cart))
}

async fn add(
    State(state): State<AppState>,
    who: CartOwner,
    payload: Result<Json<AddItem>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let item = super::json_body(payload)?;
    let sku = parse_id("sku_id", &item.sku_id)?;
    let cart = state
        .shop
        .cart()
        .add_limited(&who.owner, &who.subject, state.config.cart_adds_per_sec, sku, item.quantity)
        .await?;
    Ok(who.respond(cart))
}

async fn set(
    State(state): State<AppState>,
    who: CartOwner,
    Path(sku_id): Path<String>,
    payload: Result<Json<SetQuantity>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let sku = parse_id("sku_id", &sku_id)?;
    let quantity = super::json_body(payload)?.quantity;
    let cart = state
        .shop
        .cart()
        .set_limited(&who.owner, &who.subject, state.config.cart_adds_per_sec, sku, quantity)
        .await?;
    Ok(who.respond(cart))
}

async fn remove(State(state): State<AppState>, who: CartOwner, Path(sku_id): Path<String>) -> Result<Response, ApiError> {
    let sku = parse_id("sku_id", &sku_id)?;
    let cart = state.shop.cart().remove(&who.owner, sku).await?;
    Ok(who.respond(cart))
}

/// After sign-in: fold the guest cart (if this browser has one) into the
/// user's and tell the browser to forget the guest cookie.
pub async fn merge_guest_cart(state: &AppState, headers: &HeaderMap, user: uuid::Uuid) -> Result<Option<HeaderValue>, ApiError> {
    let Some(guest) = cookie(headers, GUEST_COOKIE).filter(|t| shop::accounts::session::well_formed(t)) else {
        return Ok(None);
    };
    state.shop.cart().merge_guest(&guest, user).await?;
    Ok(Some(crate::http::auth::clear_guest_cookie(headers)))
}

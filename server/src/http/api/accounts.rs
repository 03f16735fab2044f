//! Accounts: register, sign in, sign out, and who am I.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use model::account::SignedIn;
use model::User;
use serde::Deserialize;

use crate::http::auth::{clear_session_cookie, session_cookie, AuthUser, ClientIp};
use crate::http::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/me", get(me))
}

#[derive(Deserialize)]
struct Registration {
    email: String,
    password: String,
    name: String,
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}



/// The answer to a sign-up or sign-in: the session cookie, the guest cart
/// (if any) folded into the user's, and the guest cookie cleared.
async fn signed_in(state: &AppState, status: StatusCode, headers: &HeaderMap, s: shop::accounts::SignedIn) -> Result<Response, ApiError> {
    let cleared_guest = super::cart::merge_guest_cart(state, headers, s.user.id).await?;
    let token = s.token.into_inner();
    let mut response = (status, Json(SignedIn { user: s.user, token: token.clone() })).into_response();
    response.headers_mut().append(header::SET_COOKIE, session_cookie(&token, headers));
    if let Some(clear) = cleared_guest {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    Ok(response)
}

/// Sign-up and sign-in are rate limited per address and per account inside
/// `shop::accounts` (429 + Retry-After), shared with the storefront's server
/// functions; a flood past the Argon2 budget gets 503 + Retry-After.
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    payload: Result<Json<Registration>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let r = super::json_body(payload)?;
    let s = state.shop.accounts().register(&r.email, &r.password, &r.name, &ip).await?;
    signed_in(&state, StatusCode::CREATED, &headers, s).await
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    payload: Result<Json<Credentials>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let c = super::json_body(payload)?;
    let s = state.shop.accounts().login(&c.email, &c.password, &ip).await?;
    signed_in(&state, StatusCode::OK, &headers, s).await
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, auth: AuthUser) -> Result<Response, ApiError> {
    state.shop.accounts().logout(auth.token.expose()).await?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear_session_cookie(&headers))]).into_response())
}

async fn me(auth: AuthUser) -> Json<User> {
    Json(auth.user)
}

//! Accounts: register, sign in, sign out, and who am I.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use model::User;
use serde::{Deserialize, Serialize};

use crate::http::auth::{clear_session_cookie, session_cookie, AuthUser};
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

#[derive(Serialize)]
struct SignedIn {
    user: User,
    token: String,
}

/// JSON bodies that fail to parse are a 400 naming the problem, not axum's plain-text rejection.
fn body<T>(parsed: Result<Json<T>, axum::extract::rejection::JsonRejection>) -> Result<T, ApiError> {
    parsed.map(|Json(t)| t).map_err(|e| ApiError::BadRequest(e.body_text()))
}

fn signed_in(status: StatusCode, headers: &HeaderMap, s: shop::accounts::SignedIn) -> Response {
    let cookie = session_cookie(&s.token, headers);
    (status, [(header::SET_COOKIE, cookie)], Json(SignedIn { user: s.user, token: s.token })).into_response()
}

async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    payload: Result<Json<Registration>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let r = body(payload)?;
    let s = state.shop.accounts().register(&r.email, &r.password, &r.name).await?;
    Ok(signed_in(StatusCode::CREATED, &headers, s))
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    payload: Result<Json<Credentials>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let c = body(payload)?;
    let s = state.shop.accounts().login(&c.email, &c.password).await?;
    Ok(signed_in(StatusCode::OK, &headers, s))
}

async fn logout(State(state): State<AppState>, auth: AuthUser) -> Result<Response, ApiError> {
    state.shop.accounts().logout(&auth.token).await?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear_session_cookie())]).into_response())
}

async fn me(auth: AuthUser) -> Json<User> {
    Json(auth.user)
}

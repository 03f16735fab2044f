//! Who is calling: the gateway's auth extractors.
//!
//! A request authenticates with `Authorization: Bearer <token>` (API clients,
//! the desktop app) or the browser's `mercato_session` cookie (HttpOnly,
//! SameSite=Lax, Secure behind TLS). Cookie-authenticated requests that
//! change something must come from our own origin (the `Origin`, else
//! `Referer`, header names this host): that, with SameSite=Lax, is the CSRF
//! defence, and it works for plain HTML forms without any token to embed.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use model::{Role, User};
use shop::secret::Secret;

use super::error::ApiError;
use crate::state::AppState;

pub use shop::accounts::web::{GUEST_COOKIE, SESSION_COOKIE};

/// Where the credential came from: cookies need the CSRF check, bearer tokens do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bearer,
    Cookie,
}

/// The token on a request, if any, and how it came.
pub fn credential(headers: &HeaderMap) -> Option<(String, Via)> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(token) = value.strip_prefix("Bearer ").map(str::trim) {
            return Some((token.to_owned(), Via::Bearer));
        }
    }
    cookie(headers, SESSION_COOKIE).map(|t| (t, Via::Cookie))
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    shop::accounts::web::read_cookie(headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()), name)
}

/// True when an unsafe request names this host as its origin.
pub fn same_origin(parts: &Parts) -> bool {
    let get = |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
    shop::accounts::web::same_origin(get(header::HOST), get(header::ORIGIN), get(header::REFERER))
}

/// A signed-in user; 401 otherwise. The token is a credential: `Debug`
/// (a log line, a panic message) shows `[redacted]`.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: User,
    pub token: Secret<String>,
    pub via: Via,
}

/// The client's address as this server saw the connection (no proxy
/// headers are trusted), for per-address rate limits; `unknown` when the
/// server runs without connection info.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}

pub fn client_ip(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The signed-in user if there is one; guests are `None`, not an error.
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

/// A seller (or an admin, who may act for any seller); 403 for anyone else.
#[derive(Debug, Clone)]
pub struct Seller(pub AuthUser);

impl<S> FromRequestParts<S> for MaybeAuthUser
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some((token, via)) = credential(&parts.headers) else {
            return Ok(MaybeAuthUser(None));
        };
        let state = AppState::from_ref(state);
        let Some(user) = state.shop.accounts().authenticate(&token).await? else {
            return Ok(MaybeAuthUser(None));
        };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if via == Via::Cookie && !safe && !same_origin(parts) {
            return Err(ApiError::Forbidden("cross-site request refused: send it from the shop's own pages"));
        }
        Ok(MaybeAuthUser(Some(AuthUser { user, token: Secret::new(token), via })))
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        MaybeAuthUser::from_request_parts(parts, state)
            .await?
            .0
            .ok_or(ApiError::Unauthorized("sign in to continue"))
    }
}

impl<S> FromRequestParts<S> for Seller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        signed_in_as(parts, state, &[Role::Seller, Role::Admin], "this needs a seller account").await.map(Seller)
    }
}

/// A signed-in admin; anyone else is refused (403).
#[derive(Debug, Clone)]
pub struct Admin(pub AuthUser);

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        signed_in_as(parts, state, &[Role::Admin], "this needs an admin account").await.map(Admin)
    }
}

/// The signed-in user when their role is one of `roles`: 401 when nobody
/// is signed in, 403 (`refusal`) for another role.
async fn signed_in_as<S>(parts: &mut Parts, state: &S, roles: &[Role], refusal: &'static str) -> Result<AuthUser, ApiError>
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    let auth = AuthUser::from_request_parts(parts, state).await?;
    if roles.contains(&auth.user.role) {
        Ok(auth)
    } else {
        Err(ApiError::Forbidden(refusal))
    }
}

impl Seller {
    /// Whose SKUs this caller manages: a seller its own shop's, an admin all.
    pub fn scope(&self) -> Result<shop::inventory::SellerScope, ApiError> {
        match (self.0.user.role, self.0.user.seller_id) {
            (Role::Admin, _) => Ok(shop::inventory::SellerScope::Admin),
            (_, Some(seller)) => Ok(shop::inventory::SellerScope::Seller(seller)),
            // The schema requires a seller id for sellers; refuse rather than widen.
            (_, None) => Err(ApiError::Forbidden("this account is not linked to a seller shop")),
        }
    }
}

fn tls(headers: &HeaderMap) -> bool {
    shop::accounts::web::is_tls(headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()))
}

fn header_value(cookie: String) -> HeaderValue {
    HeaderValue::from_str(&cookie).expect("hex tokens make valid headers")
}

pub fn session_cookie(token: &str, headers: &HeaderMap) -> HeaderValue {
    header_value(shop::accounts::web::session_cookie(token, tls(headers)))
}

pub fn clear_session_cookie(headers: &HeaderMap) -> HeaderValue {
    header_value(shop::accounts::web::expired_cookie(SESSION_COOKIE, tls(headers)))
}

/// The guest cart's cookie: a day, like the cart behind it.
pub fn guest_cookie(token: &str, headers: &HeaderMap) -> HeaderValue {
    header_value(shop::accounts::web::guest_cookie(token, tls(headers)))
}

pub fn clear_guest_cookie(headers: &HeaderMap) -> HeaderValue {
    header_value(shop::accounts::web::expired_cookie(GUEST_COOKIE, tls(headers)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_token() {
        let token = "ab".repeat(32);
        let auth = AuthUser {
            user: User { id: uuid::Uuid::nil(), email: "ada@example.com".into(), name: "Ada".into(), role: Role::Customer, seller_id: None },
            token: Secret::new(token.clone()),
            via: Via::Cookie,
        };
        let printed = format!("{auth:?} {:?}", MaybeAuthUser(Some(auth.clone())));
        assert!(!printed.contains(&token), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}

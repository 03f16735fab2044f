//! The browser side of sessions, as plain strings so the REST handlers and
//! the storefront's server functions share one definition: cookie names and
//! attributes, reading a cookie, and the same-origin check that is the CSRF
//! defence for cookie-authenticated writes.

pub const SESSION_COOKIE: &str = "mercato_session";
pub const GUEST_COOKIE: &str = "mercato_guest";

/// An HttpOnly, SameSite=Lax cookie; `Secure` when the request came over TLS.
pub fn set_cookie(name: &str, value: &str, max_age: std::time::Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub fn session_cookie(token: &str, secure: bool) -> String {
    set_cookie(SESSION_COOKIE, token, super::session::TTL, secure)
}

pub fn guest_cookie(token: &str, secure: bool) -> String {
    set_cookie(GUEST_COOKIE, token, crate::cart::GUEST_TTL, secure)
}

pub fn expired_cookie(name: &str, secure: bool) -> String {
    set_cookie(name, "", std::time::Duration::ZERO, secure)
}

/// The value of cookie `name` across `Cookie` header values.
pub fn read_cookie<'a>(cookie_headers: impl IntoIterator<Item = &'a str>, name: &str) -> Option<String> {
    cookie_headers
        .into_iter()
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// True when `Origin` (else `Referer`) names `host`: the request came from our own pages.
pub fn same_origin(host: Option<&str>, origin: Option<&str>, referer: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    match origin.or(referer).and_then(|f| f.split_once("://")) {
        Some((_, rest)) => rest.split('/').next() == Some(host),
        None => false,
    }
}

/// A proxy (or the server itself) says the request came over TLS.
pub fn is_tls(forwarded_proto: Option<&str>) -> bool {
    forwarded_proto.is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

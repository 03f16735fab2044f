//! HTTP caching for the read path, so a CDN (or the browser) can hold pages
//! and answer revalidations with 304s.
//!
//! Every cacheable GET gets a `Cache-Control` policy and a strong `ETag`
//! (a hash of the body); a request whose `If-None-Match` matches gets 304 with
//! no body. Product pages and product JSON are held briefly (30 s) because
//! they show live stock; after hydration the product page refreshes stock
//! from `/api/v1/products/{id}/stock` (no-store), so even a CDN copy never
//! shows stock older than its max-age. Images are immutable (versioned URLs).
//!
//! Nothing personal may land in a shared cache (ARCHITECTURE invariant 10).
//! The storefront pages render the visitor into their HTML (the header's
//! name and cart count, the serialised user for hydration), so they are
//! public only for a request without our session or guest cookie, and
//! always carry `Vary: Cookie` so a cache keys them by it. With either
//! cookie the page is `private, no-store` with no ETag, and no 304 is ever
//! computed for it: a validator another visitor's copy could match never
//! exists. The catalog JSON is the same for every caller, so it stays public.
//! Any other HTML or JSON answered to a request with credentials (a bearer
//! token, or either cookie) that set no policy of its own — `/api/v1/me`,
//! orders, the cart page, server functions — is `private, no-store` too.

use std::hash::{Hash, Hasher};

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shop::accounts::web::{read_cookie, GUEST_COOKIE, SESSION_COOKIE};

pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
pub const NO_STORE: &str = "no-store";
/// For anything rendered for one visitor.
pub const PERSONAL: &str = "private, no-store";
/// Responses bigger than this are passed through without an ETag.
const MAX_HASHED_BODY: usize = 8 * 1024 * 1024;

/// How a path may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Cache-Control for a visitor without cookies (or for anyone, if not `per_visitor`).
    pub cache_control: &'static str,
    /// The body renders the visitor (a storefront page): public only
    /// without our cookies, and `Vary: Cookie` always.
    pub per_visitor: bool,
}

const fn shared(cache_control: &'static str) -> Option<Policy> {
    Some(Policy { cache_control, per_visitor: false })
}

const fn page(cache_control: &'static str) -> Option<Policy> {
    Some(Policy { cache_control, per_visitor: true })
}

/// The policy for a path, or `None` when it must not be cached by anyone
/// but its own handler's say-so.
pub fn policy_for(path: &str) -> Option<Policy> {
    if path.ends_with("/stock") {
        return shared(NO_STORE);
    }
    // The review form is the signed-in customer's own (their review, whether
    // they may write one): never a shared page.
    if path.ends_with("/review") {
        return None;
    }
    if path == "/" || path.starts_with("/c/") {
        page("public, max-age=60, stale-while-revalidate=300")
    } else if path.starts_with("/api/v1/categories") {
        shared("public, max-age=60, stale-while-revalidate=300")
    } else if path.starts_with("/products/") {
        page("public, max-age=30, stale-while-revalidate=60")
    } else if path.starts_with("/api/v1/products") {
        shared("public, max-age=30, stale-while-revalidate=60")
    } else if path == "/search" {
        page("public, max-age=30")
    } else if path.starts_with("/api/v1/search/") {
        shared("public, max-age=30")
    } else if path == "/robots.txt" || path == "/sitemap.xml" || path.starts_with("/sitemaps/") {
        shared("public, max-age=3600")
    } else if path.starts_with("/images/") {
        shared(IMMUTABLE)
    } else {
        None
    }
}

/// The request carries something that identifies the visitor: a bearer
/// token, or our session or guest cookie (the guest's cart count is in the
/// page header too). Other cookies (none today) would not make a page personal.
pub fn identifies_visitor(headers: &HeaderMap) -> bool {
    let cookies = || headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok());
    headers.contains_key(header::AUTHORIZATION)
        || [SESSION_COOKIE, GUEST_COOKIE].iter().any(|name| read_cookie(cookies(), name).is_some_and(|v| !v.is_empty()))
}

/// HTML or JSON: what a handler renders per request (not a static asset).
fn is_rendered(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html") || ct.contains("json"))
}

/// Middleware: adds Cache-Control and ETag to cacheable 200s and turns a
/// matching revalidation into 304 Not Modified; keeps personal responses
/// out of shared caches (see the module docs).
pub async fn conditional(request: Request, next: Next) -> Response {
    let cacheable_method = matches!(*request.method(), Method::GET | Method::HEAD);
    let personal = identifies_visitor(request.headers());
    let policy = policy_for(request.uri().path()).filter(|_| cacheable_method);
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    let mut response = next.run(request).await;
    let per_visitor = policy.is_some_and(|p| p.per_visitor);
    if per_visitor {
        // Whatever the status: an error page shows the header too.
        response.headers_mut().append(header::VARY, HeaderValue::from_static("Cookie"));
    }
    if personal && (per_visitor || (policy.is_none() && !response.headers().contains_key(header::CACHE_CONTROL) && is_rendered(response.headers()))) {
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(PERSONAL));
        headers.remove(header::ETAG);
        return response;
    }
    let Some(policy) = policy else {
        return response;
    };
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    if !parts.headers.contains_key(header::CACHE_CONTROL) {
        parts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(policy.cache_control));
    }
    if policy.cache_control == NO_STORE {
        return Response::from_parts(parts, body);
    }
    let (etag, body) = match parts.headers.get(header::ETAG).cloned() {
        Some(etag) => (etag, body),
        None => {
            let bytes = match to_bytes(body, MAX_HASHED_BODY).await {
                Ok(bytes) => bytes,
                Err(err) => {
                    tracing::warn!(error = %err, "response body not hashed for an ETag");
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
            };
            // Only the storefront's HTML carries a nonce; scanning every
            // JSON body for one cost 3 % of a cached listing's CPU.
            let html = parts.headers.get(header::CONTENT_TYPE).is_some_and(|ct| ct.as_bytes().starts_with(b"text/html"));
            let etag = if html { etag_for(&without_nonce(&bytes)) } else { etag_for(&bytes) };
            parts.headers.insert(header::ETAG, etag.clone());
            (etag, Body::from(bytes))
        }
    };
    if matches_etag(if_none_match.as_ref(), &etag) {
        return not_modified(&parts.headers);
    }
    Response::from_parts(parts, body)
}

/// A strong validator from the body's bytes. Deterministic across processes
/// running the same build, so every replica behind a CDN agrees.
pub fn etag_for(bytes: &[u8]) -> HeaderValue {
    #[allow(deprecated)] // SipHasher's keys are fixed: exactly what an ETag needs.
    let mut hasher = std::hash::SipHasher::new();
    bytes.hash(&mut hasher);
    let value = format!("\"{:016x}{:08x}\"", hasher.finish(), bytes.len());
    HeaderValue::from_str(&value).expect("hex is a valid header value")
}

/// The page minus its per-request CSP nonce (leptos_axum adds a fresh one to
/// every response), so identical pages hash alike. A 304 lets the browser
/// reuse its copy with the old nonce, which is fine: the nonce only matters
/// to a Content-Security-Policy header, and we send none.
fn without_nonce(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const MARK: &[u8] = b"nonce=\"";
    let Some(start) = bytes.windows(MARK.len()).position(|w| w == MARK).map(|i| i + MARK.len()) else {
        return std::borrow::Cow::Borrowed(bytes);
    };
    let Some(len) = bytes[start..].iter().position(|b| *b == b'"').filter(|len| *len > 0) else {
        return std::borrow::Cow::Borrowed(bytes);
    };
    let nonce = &bytes[start..start + len];
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(nonce) {
            i += nonce.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `If-None-Match` may list several tags or `*`; weak comparison, as RFC 9110 asks for GET.
pub fn matches_etag(if_none_match: Option<&HeaderValue>, etag: &HeaderValue) -> bool {
    let Some(Ok(candidates)) = if_none_match.map(|v| v.to_str()) else {
        return false;
    };
    let ours = etag.to_str().unwrap_or_default().trim_start_matches("W/");
    candidates
        .split(',')
        .map(|c| c.trim())
        .any(|c| c == "*" || c.trim_start_matches("W/") == ours)
}

pub fn not_modified(headers: &HeaderMap) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    for name in [header::ETAG, header::CACHE_CONTROL, header::VARY] {
        // Every value: Vary may come as several headers (CORS's and ours).
        for value in headers.get_all(&name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_stable_and_compare_weakly() {
        let a = etag_for(b"<html>a</html>");
        assert_eq!(a, etag_for(b"<html>a</html>"));
        assert_ne!(a, etag_for(b"<html>b</html>"));
        let weak = HeaderValue::from_str(&format!("W/{}", a.to_str().unwrap())).unwrap();
        assert!(matches_etag(Some(&weak), &a));
        let list = HeaderValue::from_str(&format!("\"nope\", {}", a.to_str().unwrap())).unwrap();
        assert!(matches_etag(Some(&list), &a));
        assert!(matches_etag(Some(&HeaderValue::from_static("*")), &a));
        assert!(!matches_etag(Some(&HeaderValue::from_static("\"nope\"")), &a));
        assert!(!matches_etag(None, &a));
    }

    #[test]
    fn the_per_request_nonce_does_not_change_the_etag() {
        let a = br#"<script nonce="abc123">x</script><link crossorigin="abc123">"#;
        let b = br#"<script nonce="zzz999">x</script><link crossorigin="zzz999">"#;
        assert_eq!(etag_for(&without_nonce(a)), etag_for(&without_nonce(b)));
        let c = br#"<script nonce="zzz999">y</script><link crossorigin="zzz999">"#;
        assert_ne!(etag_for(&without_nonce(a)), etag_for(&without_nonce(c)));
    }

    #[test]
    fn live_stock_is_never_cached_and_images_are_immutable() {
        let cc = |path: &str| policy_for(path).map(|p| p.cache_control);
        assert_eq!(cc("/api/v1/products/x/stock"), Some(NO_STORE));
        assert_eq!(cc("/images/products/x/v1/0.svg"), Some(IMMUTABLE));
        assert!(cc("/products/x").unwrap().contains("max-age=30"));
        assert_eq!(cc("/cart"), None);
        assert_eq!(cc("/metrics"), None);
    }

    #[test]
    fn storefront_pages_are_per_visitor_and_catalog_json_is_not() {
        for page in ["/", "/c/electronics", "/products/x", "/search"] {
            assert!(policy_for(page).unwrap().per_visitor, "{page}");
        }
        for json in ["/api/v1/categories", "/api/v1/products", "/api/v1/products/x", "/api/v1/search/suggest"] {
            assert!(!policy_for(json).unwrap().per_visitor, "{json}");
        }
        let mut headers = HeaderMap::new();
        assert!(!identifies_visitor(&headers));
        headers.insert(header::COOKIE, HeaderValue::from_static("theme=dark; mercato_session="));
        assert!(!identifies_visitor(&headers), "an emptied cookie identifies nobody");
        headers.insert(header::COOKIE, HeaderValue::from_static("theme=dark; mercato_guest=abc"));
        assert!(identifies_visitor(&headers));
    }
}

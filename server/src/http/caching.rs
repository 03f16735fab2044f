//! HTTP caching for the read path, so a CDN (or the browser) can hold pages
//! and answer revalidations with 304s.
//!
//! Every cacheable GET gets a `Cache-Control` policy and a strong `ETag`
//! (a hash of the body); a request whose `If-None-Match` matches gets 304 with
//! no body. Product pages and product JSON are held briefly (30 s) because
//! they show live stock; after hydration the product page refreshes stock
//! from `/api/v1/products/{id}/stock` (no-store), so even a CDN copy never
//! shows stock older than its max-age. Images are immutable (versioned URLs).

use std::hash::{Hash, Hasher};

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
pub const NO_STORE: &str = "no-store";
/// Responses bigger than this are passed through without an ETag.
const MAX_HASHED_BODY: usize = 8 * 1024 * 1024;

/// The policy for a path, or `None` when it must not be cached by anyone
/// but its own handler's say-so.
pub fn policy_for(path: &str) -> Option<&'static str> {
    if path.ends_with("/stock") {
        return Some(NO_STORE);
    }
    if path == "/" || path.starts_with("/c/") || path.starts_with("/api/v1/categories") {
        Some("public, max-age=60, stale-while-revalidate=300")
    } else if path.starts_with("/products/") || path.starts_with("/api/v1/products") {
        Some("public, max-age=30, stale-while-revalidate=60")
    } else if path == "/search" || path.starts_with("/api/v1/search/") {
        Some("public, max-age=30")
    } else if path.starts_with("/images/") {
        Some(IMMUTABLE)
    } else {
        None
    }
}

/// Middleware: adds Cache-Control and ETag to cacheable 200s and turns a
/// matching revalidation into 304 Not Modified.
pub async fn conditional(request: Request, next: Next) -> Response {
    let cacheable_method = matches!(*request.method(), Method::GET | Method::HEAD);
    let Some(policy) = policy_for(request.uri().path()).filter(|_| cacheable_method) else {
        return next.run(request).await;
    };
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    if !parts.headers.contains_key(header::CACHE_CONTROL) {
        parts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    if policy == NO_STORE {
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
            let etag = etag_for(&without_nonce(&bytes));
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
        if let Some(value) = headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
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
        assert_eq!(policy_for("/api/v1/products/x/stock"), Some(NO_STORE));
        assert_eq!(policy_for("/images/products/x/v1/0.svg"), Some(IMMUTABLE));
        assert!(policy_for("/products/x").unwrap().contains("max-age=30"));
        assert_eq!(policy_for("/cart"), None);
        assert_eq!(policy_for("/metrics"), None);
    }
}

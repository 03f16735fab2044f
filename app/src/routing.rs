//! URL helpers shared by pages: the query parameters a listing understands,
//! read from the router, and setting the response status during SSR.

use leptos_router::params::ParamsMap;

/// The listing parameters present in the URL, repeated keys kept.
pub const LISTING_KEYS: [&str; 12] = [
    "q", "category", "brand", "price_min", "price_max", "rating_min", "in_stock", "sort", "page", "per_page", "cursor",
    "limit",
];

pub fn query_pairs(map: &ParamsMap) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for key in LISTING_KEYS {
        for value in map.get_all(key).unwrap_or_default() {
            pairs.push((key.to_owned(), value));
        }
    }
    pairs
}

/// Sets the HTTP status of the server-rendered response (no-op in the browser).
pub fn set_status(code: u16) {
    #[cfg(feature = "ssr")]
    {
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            if let Ok(status) = http::StatusCode::from_u16(code) {
                response.set_status(status);
            }
        }
    }
    #[cfg(not(feature = "ssr"))]
    let _ = code;
}

/// Marks the server-rendered response 503 with `Retry-After`: a section that
/// could not load means a dependency is down, and caches and crawlers must
/// not keep the broken page.
pub fn set_unavailable() {
    set_status(503);
    #[cfg(feature = "ssr")]
    {
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            response.insert_header(http::header::RETRY_AFTER, http::HeaderValue::from_static("5"));
        }
    }
}

//! The storefront's server functions (`/api/{name}`, outside `/api/v1`)
//! share the REST API's rule: bad input is a 4xx. Leptos answers arguments
//! it cannot decode (a missing or malformed form field) with a 500 and a
//! body naming the problem; this turns those into 400, in one place for
//! every server function.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

/// Server-function error kinds (`<Kind>|<message>` bodies) the caller caused.
const CLIENT_KINDS: [&[u8]; 3] = [b"Args|", b"MissingArg|", b"Deserialization|"];

/// Largest error body read back; server-function errors are one line.
const MAX_ERROR_BODY: usize = 16 * 1024;

pub async fn client_errors(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let server_fn = path.starts_with("/api/") && !path.starts_with("/api/v1/");
    let response = next.run(request).await;
    if !server_fn || response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, MAX_ERROR_BODY).await.unwrap_or_default();
    if CLIENT_KINDS.iter().any(|kind| bytes.starts_with(kind)) {
        parts.status = StatusCode::BAD_REQUEST;
    }
    Response::from_parts(parts, Body::from(bytes))
}

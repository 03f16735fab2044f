//! Gateway layers every request passes through, outermost first:
//! request id → trace span → body limit → timeout → metrics → admission
//! (503 beyond the in-flight limit) → HTTP caching (Cache-Control, ETag,
//! 304) → handler.

use axum::extract::Request;
use axum::http::{header, HeaderName, Method, StatusCode};
use axum::middleware;
use axum::Router;
use tower::ServiceBuilder;
use tower_http::cors::CorsLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use super::{admission, caching, metrics, server_fns};
use crate::state::AppState;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

pub fn apply(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            let request_id = request
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or("-");
            tracing::info_span!(
                "request",
                request_id = %request_id,
                method = %request.method(),
                path = %request.uri().path(),
            )
        })
        .on_request(())
        .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(tower_http::LatencyUnit::Millis));

    // Only the configured origins (the desktop app) may call the API from a
    // webview; it authenticates with bearer tokens, so no cookies cross.
    let cors = CorsLayer::new()
        .allow_origin(state.config.cors_origins.clone())
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID_HEADER])
        .expose_headers([header::RETRY_AFTER, REQUEST_ID_HEADER])
        .max_age(std::time::Duration::from_secs(600));

    router
        .layer(middleware::from_fn(server_fns::client_errors))
        .layer(cors)
        .layer(middleware::from_fn(caching::conditional))
        .layer(middleware::from_fn_with_state(state.admission.clone(), admission::admit))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(
            ServiceBuilder::new()
                // A client-supplied id is kept (traces span services); otherwise one is made.
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
                .layer(trace)
                .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
                .layer(RequestBodyLimitLayer::new(state.config.max_body_bytes))
                .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, state.config.request_timeout)),
        )
}

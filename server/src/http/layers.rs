//! Gateway layers every request passes through, outermost first:
//! request id → trace span → body limit → deadline (504) → metrics → admission
//! (503 beyond the in-flight limit) → HTTP caching (Cache-Control, ETag,
//! 304) → handler.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::cors::CorsLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use super::error::ApiError;
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
        .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(tower_http::LatencyUnit::Millis))
        .on_failure(on_failure);

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
        .layer(middleware::from_fn_with_state(state.config.request_timeout, deadline))
        .layer(
            ServiceBuilder::new()
                // A client-supplied id is kept (traces span services); otherwise one is made.
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
                .layer(trace)
                .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
                .layer(RequestBodyLimitLayer::new(state.config.max_body_bytes)),
        )
}

/// A failed response's log line. A 503 is an answer the shop chose and has
/// accounted for already: a dependency down is logged where it was found
/// (`ApiError::Unavailable`), a refusal at admission is counted in
/// `/metrics`. Logged at ERROR each (tower-http's default), a flash sale's
/// crowd wrote 150,000 lines in a minute, all the server's log had, and
/// their formatting cost the cores the sale needed.
fn on_failure(failure: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    match failure {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {}
        ServerErrorsFailureClass::StatusCode(StatusCode::GATEWAY_TIMEOUT) => {
            tracing::warn!(latency_ms = latency.as_millis() as u64, "answered 504: past the gateway's deadline")
        }
        failure => tracing::error!(classification = %failure, latency_ms = latency.as_millis() as u64, "response failed"),
    }
}

/// The gateway's deadline: a request not answered within it gets 504 and a
/// body saying what to do. Work it started may go on (a checkout runs to its
/// end), so the answer asks for the same request again, a checkout with its
/// Idempotency-Key, instead of implying nothing happened.
async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::TimedOut { retry_after: Duration::from_secs(1) }.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// The levels of the events `on_failure` logs for `failure`.
    fn logged(failure: ServerErrorsFailureClass) -> Vec<Level> {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::layer::{Context, SubscriberExt};
        struct Levels(Arc<Mutex<Vec<Level>>>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Levels {
            fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
                self.0.lock().unwrap().push(*event.metadata().level());
            }
        }
        let levels = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Levels(levels.clone()));
        tracing::subscriber::with_default(subscriber, || on_failure(failure, Duration::from_millis(3), &tracing::Span::none()));
        let levels = levels.lock().unwrap().clone();
        levels
    }

    #[test]
    fn a_refusal_is_not_logged_as_an_error_but_a_failure_is() {
        assert_eq!(logged(ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE)), Vec::<Level>::new());
        assert_eq!(logged(ServerErrorsFailureClass::StatusCode(StatusCode::GATEWAY_TIMEOUT)), vec![Level::WARN]);
        assert_eq!(logged(ServerErrorsFailureClass::StatusCode(StatusCode::INTERNAL_SERVER_ERROR)), vec![Level::ERROR]);
        assert_eq!(logged(ServerErrorsFailureClass::Error("connection reset".into())), vec![Level::ERROR]);
    }

    #[tokio::test]
    async fn a_request_past_the_deadline_is_told_to_ask_again() {
        let router = Router::new()
            .route("/slow", get(|| std::future::pending::<&'static str>()))
            .route("/fast", get(|| async { "fast" }))
            .layer(middleware::from_fn_with_state(Duration::from_millis(50), deadline));
        let slow = router.clone().oneshot(Request::builder().uri("/slow").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(slow.headers()[header::RETRY_AFTER], "1");
        let body: serde_json::Value = serde_json::from_slice(&axum::body::to_bytes(slow.into_body(), 4096).await.unwrap()).unwrap();
        assert_eq!(body["error"], "timed_out");
        assert!(body["message"].as_str().unwrap().contains("Idempotency-Key"), "{body}");
        let fast = router.oneshot(Request::builder().uri("/fast").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(fast.status(), StatusCode::OK);
    }
}

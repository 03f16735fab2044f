//! The HTTP layer's one error type. Every handler returns it; it is turned
//! into a response here and only here, in the JSON shape of API.md:
//! `{"error": "<snake_case_code>", "message": "<human text>"}`.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// A query or path parameter that cannot be used; the body names it.
    #[error("invalid `{param}`: {message}")]
    BadParam { param: String, message: String },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    /// A 403 with its own code (e.g. `not_a_verified_buyer`), so a client
    /// can tell "not allowed yet" from a wrong role.
    #[error("{message}")]
    Refused { code: &'static str, message: &'static str },
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String, details: Option<serde_json::Value> },
    #[error("{0}")]
    Unprocessable(String),
    #[error("{message}")]
    Rejected { code: &'static str, message: String },
    /// The card was refused: 402 with the provider's decline code.
    #[error("{message}")]
    PaymentDeclined { decline_code: String, message: String },
    #[error("too many requests, slow down")]
    TooManyRequests { retry_after: Duration },
    #[error("{dependency} is unavailable, please retry shortly")]
    Unavailable { dependency: &'static str, retry_after: Duration },
    /// More requests in flight than this process serves at once (admission control).
    #[error("the shop is busy right now, please retry in a moment")]
    Overloaded { retry_after: Duration },
    /// Not answered within the gateway's deadline; what it started may go on.
    #[error("this took too long to answer; anything it started goes on, so send the same request again (a checkout with the same Idempotency-Key) to learn how it ended")]
    TimedOut { retry_after: Duration },
    /// Anything unexpected: logged with its cause, shown as a bland 500.
    #[error("something went wrong on our side")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::BadParam { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Refused { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) | ApiError::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PaymentDeclined { .. } => StatusCode::PAYMENT_REQUIRED,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } | ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::BadParam { .. } => "invalid_parameter",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Refused { code, .. } => code,
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict { code, .. } => code,
            ApiError::Unprocessable(_) => "validation_failed",
            ApiError::Rejected { code, .. } => code,
            ApiError::PaymentDeclined { .. } => "payment_declined",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Unavailable { .. } => "service_unavailable",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::TimedOut { .. } => "timed_out",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::TooManyRequests { retry_after }
            | ApiError::Unavailable { retry_after, .. }
            | ApiError::Overloaded { retry_after }
            | ApiError::TimedOut { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            ApiError::Unavailable { dependency, .. } => tracing::warn!(dependency, "dependency unavailable"),
            _ => {}
        }
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        match &self {
            ApiError::Unavailable { dependency, .. } => body["dependency"] = json!(dependency),
            ApiError::BadParam { param, .. } => body["param"] = json!(param),
            ApiError::PaymentDeclined { decline_code, .. } => body["decline_code"] = json!(decline_code),
            // Details sit beside `error` and `message` (API.md), e.g. the SKUs
            // that ran out.
            ApiError::Conflict { details: Some(serde_json::Value::Object(extra)), .. } => {
                for (key, value) in extra {
                    if key != "error" && key != "message" {
                        body[key.as_str()] = value.clone();
                    }
                }
            }
            _ => {}
        }
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(after) = self.retry_after() {
            // Retry-After is whole seconds; never advertise 0.
            let secs = after.as_secs().max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<model::QueryError> for ApiError {
    fn from(err: model::QueryError) -> Self {
        ApiError::BadParam { param: err.param, message: err.message }
    }
}

impl From<shop::Error> for ApiError {
    fn from(err: shop::Error) -> Self {
        match err {
            shop::Error::NotFound { what } => ApiError::NotFound(format!("{what} not found")),
            shop::Error::Invalid(message) => ApiError::Unprocessable(message),
            shop::Error::Rejected { code, message } => ApiError::Rejected { code, message },
            shop::Error::BadInput { param, message } => ApiError::BadParam { param, message },
            shop::Error::Unauthorized(message) => ApiError::Unauthorized(message),
            shop::Error::Forbidden { code, message } => ApiError::Refused { code, message },
            shop::Error::RateLimited { retry_after } => ApiError::TooManyRequests { retry_after },
            shop::Error::Conflict { code, message, details } => ApiError::Conflict { code, message, details },
            shop::Error::PaymentDeclined { decline_code, message } => ApiError::PaymentDeclined { decline_code, message },
            shop::Error::Unavailable { dependency, retry_after, source } => {
                tracing::warn!(error = %source, %dependency, "shop dependency unavailable");
                ApiError::Unavailable { dependency: dependency.name(), retry_after }
            }
            shop::Error::Internal(source) => ApiError::Internal(anyhow::anyhow!(source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn body_of(err: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, retry, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn internal_errors_never_leak_their_cause() {
        let (status, _, body) =
            body_of(ApiError::Internal(anyhow::anyhow!("password=hunter2 at db.internal:5432"))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"], "internal_error");
        assert!(!body.to_string().contains("hunter2"));
        assert!(!body.to_string().contains("db.internal"));
    }

    #[tokio::test]
    async fn unavailable_names_the_dependency_and_sets_retry_after() {
        let shop_err = shop::Error::Unavailable {
            dependency: shop::error::Dependency::Redis,
            retry_after: Duration::from_millis(300),
            source: "connection refused".into(),
        };
        let (status, retry, body) = body_of(shop_err.into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(body["error"], "service_unavailable");
        assert_eq!(body["dependency"], "redis");
        assert!(!body.to_string().contains("refused"));
    }

    #[tokio::test]
    async fn conflict_carries_its_own_code() {
        let (status, _, body) =
            body_of(ApiError::Conflict { code: "out_of_stock", message: "SKU 1 is sold out".into(), details: None }).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body, json!({"error": "out_of_stock", "message": "SKU 1 is sold out"}));
    }
}

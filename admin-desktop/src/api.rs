//! The one HTTP client the app talks to the shop with, and how its failures
//! become words: no answer is `unreachable`; an error answer carries the
//! shop's own code and message (the session layer turns a 401 on a signed-in
//! call into `signed_out`).

use std::sync::RwLock;
use std::time::Duration;

use model::desktop::CmdError;
use model::ApiErrorBody;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// No client-wide timeout: it would cut the live SSE streams, which stay
/// open for the whole sale. REST calls carry their own.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Api {
    http: reqwest::Client,
    base: RwLock<Url>,
}

impl Api {
    pub fn new(base: Url) -> Api {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("mercato-seller/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client's settings are static");
        Api { http, base: RwLock::new(base) }
    }

    pub fn base(&self) -> Url {
        self.base.read().expect("base lock").clone()
    }

    pub fn set_base(&self, url: Url) {
        *self.base.write().expect("base lock") = url;
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn url(&self, path: &str) -> Result<Url, CmdError> {
        self.base().join(path).map_err(|e| CmdError::new("bad_input", format!("cannot build a URL from {path}: {e}")))
    }

    /// One REST call. `body` is sent as JSON; an empty 2xx answer reads as
    /// JSON `null` (so `()` works for 204s).
    pub async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
    ) -> Result<T, CmdError> {
        self.call_with_key(method, path, token, body, None).await
    }

    /// A call carrying an `Idempotency-Key`: the shop answers a retry with
    /// the first attempt's result.
    pub async fn call_with_key<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
        key: Option<uuid::Uuid>,
    ) -> Result<T, CmdError> {
        let mut request = self.http.request(method, self.url(path)?).timeout(CALL_TIMEOUT);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key.to_string());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        if status.is_success() {
            let text: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(text).map_err(|e| {
                tracing::warn!(%status, error = %e, "the shop's answer did not parse");
                CmdError::new("bad_response", format!("the shop's answer to {path} was not what this app expects"))
            });
        }
        Err(error_from(status, &bytes))
    }

    /// `GET /healthz`: does the shop answer at all (the banner's retry).
    pub async fn ping(&self) -> Result<(), CmdError> {
        let response = self.http.get(self.url("healthz")?).timeout(CALL_TIMEOUT).send().await.map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(CmdError { status: Some(response.status().as_u16()), ..CmdError::new("unreachable", format!("The shop at {} answers {}.", self.base(), response.status())) })
        }
    }

    pub fn unreachable(&self, e: &reqwest::Error) -> CmdError {
        tracing::info!(error = %e, "the shop did not answer");
        let what = if e.is_timeout() { "did not answer in time" } else { "cannot be reached" };
        CmdError::new("unreachable", format!("The shop at {} {what}.", self.base()))
    }
}

/// A non-2xx answer in the shop's words; a body that is not the API's error
/// shape (a proxy's page, say) still gets a sentence with the status.
pub fn error_from(status: StatusCode, body: &[u8]) -> CmdError {
    match serde_json::from_slice::<ApiErrorBody>(body) {
        Ok(e) => CmdError { code: e.error, message: e.message, status: Some(status.as_u16()) },
        Err(_) => CmdError {
            status: Some(status.as_u16()),
            ..CmdError::new("bad_response", format!("The shop answered {status} without an explanation."))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_the_shops_words() {
        let e = error_from(
            StatusCode::CONFLICT,
            br#"{"error":"stock_below_reserved","message":"cannot set stock to 0: 1 units are reserved or in orders"}"#,
        );
        assert_eq!(e.code, "stock_below_reserved");
        assert!(e.message.contains("reserved"), "{e:?}");
        assert_eq!(e.status, Some(409));
        let wrong = error_from(StatusCode::UNAUTHORIZED, br#"{"error":"invalid_credentials","message":"wrong email or password"}"#);
        assert_eq!((wrong.code.as_str(), wrong.status), ("invalid_credentials", Some(401)));
        let odd = error_from(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!((odd.code.as_str(), odd.status), ("bad_response", Some(502)));
    }
}

//! Payments: Stripe PaymentIntents with manual capture: authorize at
//! checkout, capture at shipment, cancel (void) on failure or cancellation,
//! refund after capture.
//!
//! A thin typed client over reqwest rather than a Stripe SDK crate: we use
//! five endpoints, the maintained SDKs (async-stripe) generate the whole API
//! and take minutes to compile on two cores, and a thin client keeps the
//! wire format (form bodies, `Idempotency-Key`, error JSON) visible where
//! the tests can see it.
//!
//! Every call carries an Idempotency-Key naming the one operation it is:
//! `<order id>:create` for the intent (a checkout attempt draws a fresh order
//! id, so a retry after our own failure is a new operation, never a reused
//! key with other parameters, which Stripe refuses for 24 h), and
//! `<payment id>:<step>` for confirm, capture, cancel and refund. A retry of
//! the same operation sends the same key with the same parameters, so Stripe
//! replays its first answer instead of acting twice. Keys are never built
//! from the customer's checkout key, which is only unique per customer.
//!
//! Calls time out after 8 s; a circuit breaker opens after 5 consecutive
//! failures or timeouts and fails fast with 503 + Retry-After until a
//! half-open probe succeeds.

use std::time::Duration;

use serde::Deserialize;

use crate::breaker::{Breaker, Permit};
use crate::error::Dependency;
use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://api.stripe.com` for Stripe, localstripe's URL locally.
    pub api_base: String,
    /// Debug prints `[redacted]`: settings get logged.
    pub secret_key: crate::secret::Secret<String>,
    pub timeout: Duration,
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            api_base: "http://127.0.0.1:8420".into(),
            secret_key: crate::secret::Secret::from("sk_test_mercato"),
            timeout: Duration::from_secs(8),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(10),
        }
    }
}

/// Per-process payment state: the HTTP client and the breaker.
#[derive(Debug)]
pub struct Runtime {
    pub settings: Settings,
    pub breaker: Breaker,
    client: reqwest::Client,
}

impl Runtime {
    pub fn new(settings: Settings) -> Self {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("the HTTP client builds (rustls with built-in roots needs nothing from the system)");
        // A probe is one call, bounded by the client's timeout: past that
        // it was dropped, and another caller may probe.
        let breaker = Breaker::new(settings.breaker_threshold, settings.breaker_cooldown)
            .with_probe_deadline(settings.timeout + Duration::from_secs(2));
        Self { settings, breaker, client }
    }
}

/// A PaymentIntent as far as we read it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PaymentIntent {
    pub id: String,
    /// `requires_capture` once authorized; `canceled`, `succeeded` …
    pub status: String,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub amount_received: Option<i64>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ProviderError,
}

#[derive(Deserialize)]
struct ProviderError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// What an authorization is for: one attempt at one order.
#[derive(Debug, Clone, Copy)]
pub struct NewIntent<'a> {
    /// Unique per checkout attempt: the provider's idempotency key derives from it.
    pub order_id: uuid::Uuid,
    pub amount_cents: i64,
    pub currency: &'a str,
    pub payment_method: &'a str,
    /// The customer's checkout key, kept in the intent's metadata so an
    /// audit can match authorizations to keys.
    pub checkout_key: &'a str,
}

/// The client for one call site; [`Shop::payments`] hands out the shop's.
pub struct Payments<'a> {
    rt: &'a Runtime,
}

impl<'a> Payments<'a> {
    pub fn new(rt: &'a Runtime) -> Self {
        Self { rt }
    }

    fn rt(&self) -> &Runtime {
        self.rt
    }

    /// Authorizes `amount_cents` on `payment_method` without capturing:
    /// [`Payments::create_intent`] then [`Payments::confirm_intent`].
    pub async fn authorize(&self, intent: &NewIntent<'_>) -> Result<PaymentIntent> {
        let created = self.create_intent(intent).await?;
        self.confirm_intent(&created.id).await
    }

    /// Creates a manual-capture PaymentIntent for one order. Nothing is held
    /// on the card yet, so a caller may record its id before authorizing: a
    /// crash in between leaves nothing to void.
    pub async fn create_intent(&self, intent: &NewIntent<'_>) -> Result<PaymentIntent> {
        let currency = intent.currency.to_ascii_lowercase();
        let amount = intent.amount_cents.to_string();
        let order_id = intent.order_id.to_string();
        self.call(
            "/v1/payment_intents",
            &format!("{order_id}:create"),
            &[
                ("amount", amount.as_str()),
                ("currency", currency.as_str()),
                ("payment_method", intent.payment_method),
                ("capture_method", "manual"),
                ("metadata[order_id]", order_id.as_str()),
                ("metadata[idempotency_key]", intent.checkout_key),
            ],
        )
        .await
    }

    /// Authorizes a created intent. A declined card is `PaymentDeclined`
    /// (402) and the intent is cancelled, so nothing stays pending. A card
    /// that asks for 3-D Secure is refused in words (not supported yet),
    /// never reported as the bank's decline.
    pub async fn confirm_intent(&self, payment_id: &str) -> Result<PaymentIntent> {
        match self.call::<PaymentIntent>(&format!("/v1/payment_intents/{payment_id}/confirm"), &format!("{payment_id}:confirm"), &[]).await {
            Ok(confirmed) if confirmed.status == "requires_capture" => Ok(confirmed),
            Ok(other) => {
                self.void_quietly(payment_id).await;
                if other.status == "requires_action" {
                    return Err(Error::Rejected {
                        code: "authentication_required",
                        message: "this card asks for 3-D Secure authentication, which this shop does not support yet; nothing was charged, please use another card".into(),
                    });
                }
                Err(Error::PaymentDeclined {
                    decline_code: "authorization_failed".into(),
                    message: format!("the payment could not be authorized (status {})", other.status),
                })
            }
            Err(err) => {
                // Declined, or the provider failed mid-way: leave nothing pending.
                self.void_quietly(payment_id).await;
                Err(err)
            }
        }
    }

    /// Voids whatever the intent holds, whatever state it is in; an intent
    /// already cancelled is fine. Returns the final status.
    pub async fn void(&self, payment_id: &str) -> Result<String> {
        let current = self.retrieve(payment_id).await?;
        if current.status == "canceled" {
            return Ok(current.status);
        }
        Ok(self.cancel(payment_id).await?.status)
    }

    /// Takes the authorized amount (at shipment).
    pub async fn capture(&self, payment_id: &str) -> Result<PaymentIntent> {
        self.call(&format!("/v1/payment_intents/{payment_id}/capture"), &format!("{payment_id}:capture"), &[]).await
    }

    /// Voids an authorization that was never captured.
    pub async fn cancel(&self, payment_id: &str) -> Result<PaymentIntent> {
        self.call(&format!("/v1/payment_intents/{payment_id}/cancel"), &format!("{payment_id}:cancel"), &[]).await
    }

    /// Refunds a captured payment in full.
    pub async fn refund(&self, payment_id: &str) -> Result<()> {
        let _: serde_json::Value = self.call("/v1/refunds", &format!("{payment_id}:refund"), &[("payment_intent", payment_id)]).await?;
        Ok(())
    }

    /// Refunds `amount_cents` of a captured payment: one named part of it
    /// (a seller whose units could not be shipped after the order's capture).
    /// The key is `<payment id>:refund:<part>`, so each part is refunded once.
    pub async fn refund_part(&self, payment_id: &str, part: &str, amount_cents: i64) -> Result<()> {
        let amount = amount_cents.to_string();
        let _: serde_json::Value = self
            .call("/v1/refunds", &format!("{payment_id}:refund:{part}"), &[("payment_intent", payment_id), ("amount", amount.as_str())])
            .await?;
        Ok(())
    }

    pub async fn retrieve(&self, payment_id: &str) -> Result<PaymentIntent> {
        self.send(self.rt().client.get(self.url(&format!("/v1/payment_intents/{payment_id}")))).await
    }

    async fn void_quietly(&self, payment_id: &str) {
        if let Err(err) = self.cancel(payment_id).await {
            tracing::warn!(error = %err, payment_id, "could not cancel an unauthorized PaymentIntent");
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.rt().settings.api_base.trim_end_matches('/'), path)
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, path: &str, idempotency_key: &str, form: &[(&str, &str)]) -> Result<T> {
        let request = self.rt().client.post(self.url(path)).header("Idempotency-Key", idempotency_key).form(form);
        self.send(request).await
    }

    /// Sends through the breaker and maps the answer: 2xx → the object; a
    /// card error → `PaymentDeclined`; 4xx → our bug (internal); 5xx,
    /// timeouts and refused connections → 503 and a breaker failure.
    async fn send<T: serde::de::DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let breaker = &self.rt().breaker;
        if breaker.permit() == Permit::Refuse {
            return Err(unavailable("the payment provider is failing; not calling it until it recovers", breaker.retry_after()));
        }
        let response = match request.bearer_auth(self.rt().settings.secret_key.expose()).send().await {
            Ok(r) => r,
            Err(err) => {
                breaker.failure();
                tracing::warn!(error = %err, "payment provider unreachable");
                return Err(unavailable(err, breaker.retry_after()));
            }
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(err) => {
                breaker.failure();
                return Err(unavailable(err, breaker.retry_after()));
            }
        };
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            breaker.failure();
            return Err(unavailable(format!("payment provider answered {status}"), breaker.retry_after()));
        }
        breaker.success();
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| Error::internal(format!("unreadable payment provider answer: {e}")));
        }
        let error = serde_json::from_slice::<ErrorBody>(&body).ok().map(|b| b.error);
        if status == reqwest::StatusCode::PAYMENT_REQUIRED {
            let error = error.unwrap_or(ProviderError { code: None, decline_code: None, message: None });
            return Err(Error::PaymentDeclined {
                decline_code: error.decline_code.or(error.code).unwrap_or_else(|| "card_declined".into()),
                message: error.message.unwrap_or_else(|| "your card was declined".into()),
            });
        }
        Err(Error::internal(format!(
            "payment provider refused a request ({status}): {}",
            error.and_then(|e| e.message).unwrap_or_default()
        )))
    }
}

fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>, retry_after: Duration) -> Error {
    Error::Unavailable { dependency: Dependency::Payments, retry_after, source: source.into() }
}

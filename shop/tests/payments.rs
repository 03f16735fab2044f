//! The payment client against an HTTP fake of the Stripe API (wiremock):
//! what it sends (form bodies, idempotency keys, manual capture), how it
//! reads declines, and how timeouts and failures trip its circuit breaker.
//! The same client runs against localstripe in the server's suite.

use std::time::Duration;

use serde_json::json;
use shop::breaker::State;
use shop::payments::{NewIntent, Payments, Runtime, Settings};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn runtime(server: &MockServer, timeout: Duration) -> Runtime {
    Runtime::new(Settings {
        api_base: server.uri(),
        secret_key: "sk_test_fake".into(),
        timeout,
        breaker_threshold: 5,
        breaker_cooldown: Duration::from_millis(200),
    })
}

fn intent(id: &str, status: &str) -> serde_json::Value {
    json!({ "id": id, "object": "payment_intent", "status": status, "amount": 2500, "currency": "usd" })
}

fn new_intent<'a>(order_id: uuid::Uuid, payment_method: &'a str) -> NewIntent<'a> {
    NewIntent { order_id, amount_cents: 2500, currency: "USD", payment_method, checkout_key: "customer-key" }
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body).into_owned().collect()
}

#[tokio::test]
async fn authorizing_creates_a_manual_capture_intent_and_confirms_it_with_per_operation_keys() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/payment_intents")).and(header("authorization", "Bearer sk_test_fake"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent("pi_1", "requires_confirmation")))
        .expect(1).mount(&server).await;
    Mock::given(method("POST")).and(path("/v1/payment_intents/pi_1/confirm"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent("pi_1", "requires_capture")))
        .expect(1).mount(&server).await;
    let rt = runtime(&server, Duration::from_secs(8));
    let order = uuid::Uuid::now_v7();
    let pi = Payments::new(&rt).authorize(&new_intent(order, "pm_card_visa")).await.unwrap();
    assert_eq!((pi.id.as_str(), pi.status.as_str()), ("pi_1", "requires_capture"));

    let requests = server.received_requests().await.unwrap();
    let create = form(&requests[0]);
    let order_id = order.to_string();
    for pair in [("amount", "2500"), ("currency", "usd"), ("payment_method", "pm_card_visa"), ("capture_method", "manual"), ("metadata[order_id]", order_id.as_str()), ("metadata[idempotency_key]", "customer-key")] {
        assert!(create.contains(&(pair.0.to_owned(), pair.1.to_owned())), "{pair:?} in {create:?}");
    }
    let keys: Vec<&str> = requests.iter().map(|r| r.headers.get("idempotency-key").unwrap().to_str().unwrap()).collect();
    // Keys name the operation (this attempt's order, then the intent), never
    // the customer's checkout key, which is only unique per customer.
    assert_eq!(keys, vec![format!("{order}:create"), "pi_1:confirm".to_owned()]);
}

#[tokio::test]
async fn a_declined_card_is_a_402_with_the_decline_code_and_its_intent_is_cancelled() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent("pi_2", "requires_confirmation")))
        .mount(&server).await;
    Mock::given(method("POST")).and(path("/v1/payment_intents/pi_2/confirm"))
        .respond_with(ResponseTemplate::new(402).set_body_json(json!({ "error": {
            "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds." } })))
        .mount(&server).await;
    Mock::given(method("POST")).and(path("/v1/payment_intents/pi_2/cancel"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent("pi_2", "canceled")))
        .expect(1).mount(&server).await;
    let rt = runtime(&server, Duration::from_secs(8));
    match Payments::new(&rt).authorize(&new_intent(uuid::Uuid::now_v7(), "pm_card_chargeDeclined")).await {
        Err(shop::Error::PaymentDeclined { decline_code, message }) => {
            assert_eq!(decline_code, "insufficient_funds");
            assert_eq!(message, "Your card has insufficient funds.");
        }
        other => panic!("expected a decline, got {other:?}"),
    }
    assert_eq!(rt.breaker.state(), State::Closed, "a decline is an answer, not a provider failure");
}

#[tokio::test]
async fn timeouts_and_failures_open_the_breaker_and_a_probe_closes_it() {
    let server = MockServer::start().await;
    // Slower than the client's timeout.
    Mock::given(method("GET")).and(path("/v1/payment_intents/pi_slow"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent("pi_slow", "requires_capture")).set_delay(Duration::from_millis(500)))
        .mount(&server).await;
    let rt = runtime(&server, Duration::from_millis(100));
    let payments = Payments::new(&rt);
    for attempt in 1..=5 {
        match payments.retrieve("pi_slow").await {
            Err(shop::Error::Unavailable { dependency: shop::error::Dependency::Payments, retry_after, .. }) => {
                assert!(retry_after >= Duration::from_secs(1), "Retry-After is at least a second");
            }
            other => panic!("attempt {attempt}: expected 503, got {other:?}"),
        }
    }
    assert_eq!(rt.breaker.state(), State::Open, "open after 5 consecutive timeouts");
    let calls = server.received_requests().await.unwrap().len();
    assert!(matches!(payments.retrieve("pi_slow").await, Err(shop::Error::Unavailable { .. })));
    assert_eq!(server.received_requests().await.unwrap().len(), calls, "an open breaker fails fast without calling");

    // After the cooldown one probe goes through; a good answer closes it.
    server.reset().await;
    Mock::given(method("GET")).and(path("/v1/payment_intents/pi_ok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent("pi_ok", "requires_capture")))
        .mount(&server).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let probed = loop {
        match payments.retrieve("pi_ok").await {
            Ok(pi) => break pi,
            Err(shop::Error::Unavailable { .. }) if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(err) => panic!("the probe after the cooldown should go through: {err:?}"),
        }
    };
    assert_eq!(probed.id, "pi_ok");
    assert_eq!(rt.breaker.state(), State::Closed);

    // 5xx answers count as failures too.
    Mock::given(method("POST")).and(path("/v1/payment_intents/pi_x/capture"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server).await;
    for _ in 0..5 {
        assert!(matches!(payments.capture("pi_x").await, Err(shop::Error::Unavailable { .. })));
    }
    assert_eq!(rt.breaker.state(), State::Open);
    assert_eq!(rt.breaker.trips.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable_not_a_500() {
    let rt = Runtime::new(Settings { api_base: "http://127.0.0.1:9".into(), ..Settings::default() });
    let err = Payments::new(&rt).authorize(&new_intent(uuid::Uuid::now_v7(), "pm_card_visa")).await.unwrap_err();
    assert!(matches!(err, shop::Error::Unavailable { dependency: shop::error::Dependency::Payments, .. }), "{err:?}");
}

/// 3-D Secure is not supported yet: a card that asks for it is refused in
/// words and its intent cancelled, never reported as the bank's decline.
#[tokio::test]
async fn a_card_asking_for_3d_secure_is_refused_in_words_not_as_a_decline() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent("pi_3ds", "requires_confirmation")))
        .mount(&server).await;
    Mock::given(method("POST")).and(path("/v1/payment_intents/pi_3ds/confirm"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent("pi_3ds", "requires_action")))
        .mount(&server).await;
    Mock::given(method("POST")).and(path("/v1/payment_intents/pi_3ds/cancel"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent("pi_3ds", "canceled")))
        .expect(1).mount(&server).await;
    let rt = runtime(&server, Duration::from_secs(8));
    match Payments::new(&rt).authorize(&new_intent(uuid::Uuid::now_v7(), "pm_card_threeDSecure2Required")).await {
        Err(shop::Error::Rejected { code, message }) => {
            assert_eq!(code, "authentication_required");
            assert!(message.contains("3-D Secure") && message.contains("nothing was charged"), "{message}");
        }
        other => panic!("expected a refusal in words, got {other:?}"),
    }
}

/// Stripe itself is https: the client must open a TLS session, not fail on
/// the scheme. A listener that reads what the client sends first sees a TLS
/// handshake record (0x16, version 3.x).
#[tokio::test]
async fn an_https_provider_is_spoken_to_over_tls() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let first_bytes = tokio::spawn(async move {
        let (mut socket, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await.expect("the client connects").unwrap();
        let mut first = [0u8; 3];
        socket.read_exact(&mut first).await.unwrap();
        first
    });
    let rt = Runtime::new(Settings { api_base: format!("https://127.0.0.1:{port}"), timeout: Duration::from_secs(3), ..Settings::default() });
    let err = Payments::new(&rt).retrieve("pi_tls").await.unwrap_err();
    assert!(matches!(err, shop::Error::Unavailable { .. }), "a handshake cut short is the provider unreachable: {err:?}");
    let first = first_bytes.await.unwrap();
    assert_eq!((first[0], first[1]), (0x16, 0x03), "a TLS handshake record: {first:?}");
}

//! Payments against a real localstripe (the fake Stripe API the README's
//! commands install): authorize with manual capture, capture, void, refund,
//! a declined card, and the provider going away.

use shop::payments::{Payments, Runtime};

use crate::helpers::LocalStripe;

#[tokio::test]
async fn authorize_then_capture_or_void_or_refund() {
    let stripe = LocalStripe::start().await;
    let rt = Runtime::new(stripe.settings());
    let payments = Payments::new(&rt);

    let held = payments.authorize("order-a", 2_599, "USD", "pm_card_visa", "a").await.unwrap();
    assert_eq!((held.status.as_str(), held.amount, held.currency.as_str()), ("requires_capture", 2_599, "usd"));
    let captured = payments.capture(&held.id, "order-a").await.unwrap();
    assert_eq!(captured.status, "succeeded");
    payments.refund(&held.id, "order-a").await.unwrap();

    let voided = payments.authorize("order-b", 1_000, "USD", "pm_card_visa", "b").await.unwrap();
    assert_eq!(payments.cancel(&voided.id, "order-b").await.unwrap().status, "canceled");
    assert_eq!(payments.retrieve(&voided.id).await.unwrap().status, "canceled");

    let statuses: Vec<String> = stripe.intents().await.iter().map(|pi| pi["status"].as_str().unwrap().to_owned()).collect();
    assert_eq!(statuses.len(), 2);
    assert!(statuses.contains(&"succeeded".to_owned()) && statuses.contains(&"canceled".to_owned()), "{statuses:?}");
}

#[tokio::test]
async fn a_declined_card_is_payment_declined_and_leaves_nothing_authorized() {
    let stripe = LocalStripe::start().await;
    let rt = Runtime::new(stripe.settings());
    let err = Payments::new(&rt).authorize("order-c", 1_500, "USD", "pm_card_chargeCustomerFail", "c").await.unwrap_err();
    match err {
        shop::Error::PaymentDeclined { decline_code, .. } => assert_eq!(decline_code, "card_declined"),
        other => panic!("expected a decline, got {other:?}"),
    }
    let intents = stripe.intents().await;
    assert_eq!(intents.len(), 1);
    assert_ne!(intents[0]["status"], "requires_capture", "no authorization is left behind: {}", intents[0]);
}

#[tokio::test]
async fn a_stopped_provider_is_a_503_and_its_return_is_noticed() {
    let mut stripe = LocalStripe::start().await;
    let mut settings = stripe.settings();
    settings.breaker_cooldown = std::time::Duration::from_millis(100);
    let rt = Runtime::new(settings);
    let payments = Payments::new(&rt);
    stripe.stop().await;
    for _ in 0..5 {
        let err = payments.authorize("order-d", 500, "USD", "pm_card_visa", "d").await.unwrap_err();
        assert!(matches!(err, shop::Error::Unavailable { dependency: shop::error::Dependency::Payments, .. }), "{err:?}");
    }
    assert_eq!(rt.breaker.state(), shop::breaker::State::Open);
    stripe.restart().await;
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let held = payments.authorize("order-e", 500, "USD", "pm_card_visa", "e").await.unwrap();
    assert_eq!(held.status, "requires_capture");
    assert_eq!(rt.breaker.state(), shop::breaker::State::Closed);
}

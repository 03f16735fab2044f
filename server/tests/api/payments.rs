//! Payments against a real localstripe (the fake Stripe API the README's
//! commands install) behind the strict fake that enforces Stripe's
//! idempotency rules: authorize with manual capture, capture, void, refund,
//! a declined card, and the provider going away. Then the fake itself,
//! proven against the localstripe behind it: replays, misused keys, keys
//! per API key, concurrent keys, expiry, lost answers, and paging.

use std::time::Duration;

use serde_json::Value;
use shop::payments::{NewIntent, Payments, Runtime};
use uuid::Uuid;
use tokio::task::JoinSet;

use crate::helpers::LocalStripe;
use crate::stripe_fake::{Counters, Fault, StrictStripe, KEY_RETENTION};

/// One checkout attempt's intent: a fresh order id each time.
fn attempt(amount_cents: i64, payment_method: &str) -> NewIntent<'_> {
    NewIntent { order_id: Uuid::now_v7(), amount_cents, currency: "USD", payment_method, checkout_key: "customer-key" }
}

#[tokio::test]
async fn authorize_then_capture_or_void_or_refund() {
    let stripe = LocalStripe::start().await;
    let rt = Runtime::new(stripe.settings());
    let payments = Payments::new(&rt);

    let held = payments.authorize(&attempt(2_599, "pm_card_visa")).await.unwrap();
    assert_eq!((held.status.as_str(), held.amount, held.currency.as_str()), ("requires_capture", 2_599, "usd"));
    let captured = payments.capture(&held.id).await.unwrap();
    assert_eq!(captured.status, "succeeded");
    payments.refund(&held.id).await.unwrap();

    let voided = payments.authorize(&attempt(1_000, "pm_card_visa")).await.unwrap();
    assert_eq!(payments.cancel(&voided.id).await.unwrap().status, "canceled");
    assert_eq!(payments.retrieve(&voided.id).await.unwrap().status, "canceled");

    let statuses: Vec<String> = stripe.intents().await.iter().map(|pi| pi["status"].as_str().unwrap().to_owned()).collect();
    assert_eq!(statuses.len(), 2);
    assert!(statuses.contains(&"succeeded".to_owned()) && statuses.contains(&"canceled".to_owned()), "{statuses:?}");
    assert_eq!(stripe.fake().upstream_count("POST", "/v1/payment_intents/{id}/confirm"), 2, "one authorization call per order");
    assert_eq!(stripe.fake().counters(), Counters::default(), "no key was replayed or misused");
}

#[tokio::test]
async fn a_declined_card_is_payment_declined_and_leaves_nothing_authorized() {
    let stripe = LocalStripe::start().await;
    let rt = Runtime::new(stripe.settings());
    let err = Payments::new(&rt).authorize(&attempt(1_500, "pm_card_chargeCustomerFail")).await.unwrap_err();
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
        let err = payments.authorize(&attempt(500, "pm_card_visa")).await.unwrap_err();
        assert!(matches!(err, shop::Error::Unavailable { dependency: shop::error::Dependency::Payments, .. }), "{err:?}");
    }
    assert_eq!(rt.breaker.state(), shop::breaker::State::Open);
    stripe.restart().await;
    // Refused fast until the cooldown is over; then one probe goes through.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let held = loop {
        match payments.authorize(&attempt(500, "pm_card_visa")).await {
            Err(shop::Error::Unavailable { .. }) if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(25)).await,
            other => break other.unwrap(),
        }
    };
    assert_eq!(held.status, "requires_capture");
    assert_eq!(rt.breaker.state(), shop::breaker::State::Closed);
}

const API_KEY: &str = "sk_test_mercato";
const CREATE: &str = "/v1/payment_intents";

/// A PaymentIntent's creation parameters, as the shop sends them.
fn params(amount: &'static str) -> [(&'static str, &'static str); 4] {
    [("amount", amount), ("currency", "usd"), ("payment_method", "pm_card_visa"), ("capture_method", "manual")]
}

#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
    replayed: bool,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn id(&self) -> String {
        self.json()["id"].as_str().unwrap_or_else(|| panic!("no id in {}", self.body)).to_owned()
    }

    fn error_type(&self) -> String {
        self.json()["error"]["type"].as_str().unwrap_or_default().to_owned()
    }
}

/// One Stripe call as the shop makes it: a form POST with a bearer API key
/// and an `Idempotency-Key`. An error is the client seeing no answer.
async fn post(base: &str, api_key: &str, key: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Result<Answer> {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(api_key)
        .header("Idempotency-Key", key)
        .form(form)
        .timeout(Duration::from_secs(20))
        .send()
        .await?;
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    Ok(Answer { status, body: response.text().await?, replayed })
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Why the fake exists: localstripe alone runs the same key twice.
#[tokio::test]
async fn plain_localstripe_ignores_idempotency_keys() {
    let stripe = LocalStripe::start().await;
    let first = post(&stripe.direct_url(), API_KEY, "k", CREATE, &params("1000")).await.unwrap();
    let second = post(&stripe.direct_url(), API_KEY, "k", CREATE, &params("1000")).await.unwrap();
    assert_ne!(first.id(), second.id());
    assert_eq!(stripe.intents().await.len(), 2);
}

#[tokio::test]
async fn a_replay_is_the_first_answer_and_never_reaches_localstripe() {
    let stripe = LocalStripe::start().await;
    let fake = stripe.fake();
    let first = post(&stripe.url(), API_KEY, "k", CREATE, &params("1000")).await.unwrap();
    assert_eq!((first.status, first.replayed), (200, false), "{}", first.body);
    let again = post(&stripe.url(), API_KEY, "k", CREATE, &params("1000")).await.unwrap();
    assert_eq!((again.status, again.replayed, &again.body), (200, true, &first.body), "the same bytes, marked replayed");
    // The same parameters in another order are the same request.
    let mut reordered = params("1000");
    reordered.reverse();
    assert_eq!(post(&stripe.url(), API_KEY, "k", CREATE, &reordered).await.unwrap().body, first.body);
    assert_eq!(fake.upstream_count("POST", CREATE), 1);
    assert_eq!(stripe.intents().await.len(), 1);

    // An error answer from an endpoint that ran (a decline) is saved too.
    let declined = post(&stripe.url(), API_KEY, "d:create", CREATE, &[("amount", "500"), ("currency", "usd"), ("payment_method", "pm_card_chargeCustomerFail")]).await.unwrap();
    let confirm = format!("{CREATE}/{}/confirm", declined.id());
    let refused = post(&stripe.url(), API_KEY, "d:confirm", &confirm, &[]).await.unwrap();
    assert_eq!(refused.status, 402, "{}", refused.body);
    let again = post(&stripe.url(), API_KEY, "d:confirm", &confirm, &[]).await.unwrap();
    assert_eq!((again.status, again.replayed, &again.body), (402, true, &refused.body));
    assert_eq!(fake.upstream_count("POST", "/v1/payment_intents/{id}/confirm"), 1);
    assert_eq!(fake.counters(), Counters { replays: 3, mismatches: 0, conflicts: 0 });
}

#[tokio::test]
async fn the_same_key_for_another_request_is_an_idempotency_error() {
    let stripe = LocalStripe::start().await;
    let first = post(&stripe.url(), API_KEY, "k", CREATE, &params("1000")).await.unwrap();
    let other_amount = post(&stripe.url(), API_KEY, "k", CREATE, &params("2000")).await.unwrap();
    assert_eq!((other_amount.status, other_amount.error_type()), (400, "idempotency_error".into()), "{}", other_amount.body);
    assert!(other_amount.json()["error"]["message"].as_str().unwrap().contains("same parameters"));
    let other_path = post(&stripe.url(), API_KEY, "k", &format!("{CREATE}/{}/cancel", first.id()), &[]).await.unwrap();
    assert_eq!((other_path.status, other_path.error_type()), (400, "idempotency_error".into()), "{}", other_path.body);
    assert_eq!(stripe.fake().upstream_calls().len(), 1, "neither reached localstripe");
    assert_eq!(stripe.intents().await[0]["amount"], 1000);
    let counters = stripe.fake().counters();
    assert_eq!((counters.mismatches, counters.idempotency_errors()), (2, 2));
}

#[tokio::test]
async fn keys_are_scoped_to_the_api_key() {
    let stripe = LocalStripe::start().await;
    let ours = post(&stripe.url(), "sk_test_ours", "k", CREATE, &params("1000")).await.unwrap();
    let theirs = post(&stripe.url(), "sk_test_theirs", "k", CREATE, &params("1000")).await.unwrap();
    assert_eq!((theirs.status, theirs.replayed), (200, false), "{}", theirs.body);
    assert_ne!(ours.id(), theirs.id(), "another account's key is another request");
    assert_eq!(stripe.fake().upstream_count("POST", CREATE), 2);
    let keys: Vec<(String, String)> = stripe.fake().recorded_keys().into_iter().map(|k| (k.api_key, k.idempotency_key)).collect();
    assert_eq!(keys, [("sk_test_ours".into(), "k".into()), ("sk_test_theirs".into(), "k".into())]);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_reach_localstripe_once() {
    let stripe = LocalStripe::start().await;
    // The first request holds the key for a while before it is forwarded.
    stripe.fake().fail_next(("POST", CREATE), Fault::Delay(Duration::from_secs(2)));
    let base = stripe.url();
    let first = tokio::spawn({
        let base = base.clone();
        async move { post(&base, API_KEY, "k", CREATE, &params("1000")).await.unwrap() }
    });
    wait_until("the first request holds the key", || stripe.fake().recorded_keys().iter().any(|k| k.status.is_none())).await;
    let mut others = JoinSet::new();
    for _ in 0..10 {
        let base = base.clone();
        others.spawn(async move { post(&base, API_KEY, "k", CREATE, &params("1000")).await.unwrap() });
    }
    let others: Vec<Answer> = others.join_all().await;
    let first = first.await.unwrap();
    assert_eq!((first.status, first.replayed), (200, false), "{}", first.body);
    for other in &others {
        let conflict = other.status == 409 && other.error_type() == "idempotency_error";
        let replay = other.replayed && other.body == first.body;
        assert!(conflict || replay, "{other:?}");
    }
    assert!(stripe.fake().counters().conflicts >= 1, "the key was in flight: {:?}", stripe.fake().counters());
    assert_eq!(stripe.fake().upstream_count("POST", CREATE), 1);
    assert_eq!(stripe.intents().await.len(), 1);
}

#[tokio::test]
async fn keys_are_kept_for_24_hours_then_forgotten() {
    let stripe = LocalStripe::start().await;
    let fake = stripe.fake();
    let first = post(&stripe.url(), API_KEY, "k", CREATE, &params("1000")).await.unwrap();

    fake.advance_clock(Duration::from_secs(23 * 3600));
    assert_eq!(post(&stripe.url(), API_KEY, "k", CREATE, &params("2000")).await.unwrap().status, 400, "kept at 23 h");
    assert_eq!(post(&stripe.url(), API_KEY, "k", CREATE, &params("1000")).await.unwrap().id(), first.id());

    fake.advance_clock(Duration::from_secs(2 * 3600));
    assert!(KEY_RETENTION < Duration::from_secs(25 * 3600));
    let later = post(&stripe.url(), API_KEY, "k", CREATE, &params("2000")).await.unwrap();
    assert_eq!((later.status, later.replayed), (200, false), "forgotten at 25 h: {}", later.body);
    assert_ne!(later.id(), first.id());
    assert_eq!(fake.upstream_count("POST", CREATE), 2);
}

/// The provider acted and we never heard: the client sees a network error,
/// the intent exists at localstripe, and the retry gets the saved answer.
#[tokio::test]
async fn a_lost_answer_leaves_the_intent_and_the_retry_gets_it() {
    let stripe = LocalStripe::start().await;
    stripe.fake().fail_next(("POST", CREATE), Fault::LoseResponse);
    let lost = post(&stripe.url(), API_KEY, "k", CREATE, &params("1000")).await;
    assert!(lost.is_err(), "the client got no answer: {lost:?}");
    let intents = stripe.intents().await;
    assert_eq!(intents.len(), 1, "the provider acted");
    let retry = post(&stripe.url(), API_KEY, "k", CREATE, &params("1000")).await.unwrap();
    assert_eq!((retry.replayed, retry.id()), (true, intents[0]["id"].as_str().unwrap().to_owned()));
    assert_eq!(stripe.fake().upstream_count("POST", CREATE), 1);
}

/// Nothing is saved for a request that never started executing (an
/// injected error, localstripe unreachable), so its retry runs; what was
/// saved survives the fake's own stop and restart.
#[tokio::test]
async fn only_answers_from_localstripe_are_saved_and_they_survive_a_restart() {
    let mut upstream = LocalStripe::start().await;
    let mut fake = StrictStripe::start(&upstream.direct_url()).await;
    fake.fail_next(("POST", CREATE), Fault::Status(500));
    assert_eq!(post(&fake.url(), API_KEY, "k", CREATE, &params("1000")).await.unwrap().status, 500);

    upstream.stop().await;
    let down = post(&fake.url(), API_KEY, "k", CREATE, &params("1000")).await.unwrap();
    assert_eq!((down.status, down.error_type()), (503, "api_error".into()), "{}", down.body);
    assert_eq!((fake.recorded_keys().len(), fake.upstream_calls().len()), (0, 0));

    upstream.restart().await;
    let ran = post(&fake.url(), API_KEY, "k", CREATE, &params("1000")).await.unwrap();
    assert_eq!((ran.status, ran.replayed), (200, false), "{}", ran.body);

    fake.stop().await;
    assert!(post(&fake.url(), API_KEY, "k", CREATE, &params("1000")).await.is_err(), "a stopped provider refuses connections");
    fake.restart().await;
    let replay = post(&fake.url(), API_KEY, "k", CREATE, &params("1000")).await.unwrap();
    assert_eq!((replay.replayed, replay.body), (true, ran.body));
    assert_eq!(fake.upstream_count("POST", CREATE), 1);
}

/// localstripe lists at most 100 per page: `intents()` reads them all.
#[tokio::test]
async fn intents_pages_through_more_than_one_hundred() {
    let stripe = LocalStripe::start().await;
    let mut created = std::collections::BTreeSet::new();
    let mut tasks = JoinSet::new();
    for i in 0..130 {
        if tasks.len() >= 8 {
            created.insert(tasks.join_next().await.unwrap().unwrap());
        }
        let base = stripe.url();
        tasks.spawn(async move { post(&base, API_KEY, &format!("page-{i}"), CREATE, &params("1000")).await.unwrap().id() });
    }
    while let Some(id) = tasks.join_next().await {
        created.insert(id.unwrap());
    }
    assert_eq!(created.len(), 130);
    assert_eq!(stripe.intents().await.len(), 130);
    assert!(stripe.intents_by_id().await.keys().eq(created.iter()), "every intent, by id");
}

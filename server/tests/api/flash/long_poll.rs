//! The line's state pushed instead of polled: `GET …/me?wait=` with the
//! `ETag` the customer has parks until their state changes. A promotion
//! answers the promoted customer's parked request at once, and the last
//! unit sold answers everybody still in line; a request nobody has news
//! for answers 304 at the end of its wait.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use super::*;

/// Far below the 25 s a parked request waits without news: an answer
/// within this came from the news, not from the wait running out.
const NEWS_WITHIN: Duration = Duration::from_secs(12);

struct Answer {
    status: StatusCode,
    etag: String,
    body: Value,
}

async fn me(client: &reqwest::Client, app: &TestApp, token: &str, sale: Uuid, known: Option<&str>, wait: Option<&str>) -> Answer {
    let path = match wait {
        Some(wait) => format!("/api/v1/flash-sales/{sale}/me?wait={wait}"),
        None => format!("/api/v1/flash-sales/{sale}/me"),
    };
    let mut request = client.get(app.url(&path)).bearer_auth(token);
    if let Some(known) = known {
        request = request.header("if-none-match", known);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let etag = response.headers().get("etag").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    Answer { status, etag, body: response.json().await.unwrap_or(Value::Null) }
}

/// Parks `token`'s long poll on the state it has now; waits until the
/// server holds it parked (past its read of the state), so whatever the
/// test does next can only reach it as news.
async fn park(app: &Arc<TestApp>, client: &reqwest::Client, token: &str, sale: Uuid) -> (Value, tokio::task::JoinHandle<(Answer, Instant)>) {
    let before = app.shop.flash().parked_waiters();
    let now = me(client, app, token, sale, None, None).await;
    assert_eq!(now.status, StatusCode::OK, "{}", now.body);
    let (app2, client, token) = (app.clone(), client.clone(), token.to_owned());
    let poll = tokio::spawn(async move {
        let answer = me(&client, &app2, &token, sale, Some(&now.etag), Some("25")).await;
        (answer, Instant::now())
    });
    wait_for("the long poll is parked", Duration::from_secs(20), || async { app.shop.flash().parked_waiters() > before }).await;
    (now.body, poll)
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_parked_line_hears_of_its_unit_and_of_the_sell_out_at_once(db: PgPool) {
    // A wait in line longer than the test, so only news ends it.
    let s = setup_with(db, 10, shop::flash::Settings { wait: Duration::from_secs(120), ..settings() }).await;
    let sale = id(&create_sale(&s, 2, 1, chrono::Duration::seconds(1), chrono::Duration::minutes(10)).await);
    let holders = s.app.shop.accounts().create_load_test_users(2, "load-test-password").await.unwrap();
    let line = s.app.shop.accounts().create_load_test_users(2, "load-test-password").await.unwrap();
    let idle = s.app.shop.accounts().create_load_test_users(1, "load-test-password").await.unwrap().remove(0);
    wait_open(&s.app, sale).await;
    let app = Arc::new(s.app);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    for token in &holders {
        assert_eq!(buy(&app, &client, token, sale, 1).await.0, StatusCode::OK);
    }
    for token in &line {
        assert_eq!(buy(&app, &client, token, sale, 1).await.0, StatusCode::ACCEPTED);
    }

    // Bad waits are refused by name; a state the caller has is 304.
    for bad in ["soon", "26"] {
        let refused = me(&client, &app, &idle, sale, Some("\"x\""), Some(bad)).await;
        assert_eq!((refused.status, refused.body["param"].as_str()), (StatusCode::BAD_REQUEST, Some("wait")), "wait={bad}: {}", refused.body);
    }
    let nothing = me(&client, &app, &idle, sale, None, None).await;
    assert_eq!((nothing.status, nothing.body["state"].as_str()), (StatusCode::OK, Some("none")));
    assert!(nothing.etag.starts_with('"') && nothing.etag.len() > 2, "{:?}", nothing.etag);
    let unchanged = me(&client, &app, &idle, sale, Some(&nothing.etag), Some("1")).await;
    assert_eq!((unchanged.status, &unchanged.etag), (StatusCode::NOT_MODIFIED, &nothing.etag), "nobody had news for them");

    // The first in line parks; the first holder's card is declined: the
    // parked request answers with the unit, long before its wait is over.
    let (was, first) = park(&app, &client, &line[0], sale).await;
    assert_eq!((was["state"].as_str(), was["position"].as_i64()), (Some("waiting"), Some(1)), "{was}");
    let (status, declined) = checkout(&app, &holders[0], "pm_card_chargeCustomerFail").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{declined}");
    let told_at = Instant::now();
    let (answer, at) = tokio::time::timeout(NEWS_WITHIN, first).await.expect("the promoted customer is told at once").unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!((answer.body["state"].as_str(), answer.body["promoted"].as_bool()), (Some("reserved"), Some(true)), "{}", answer.body);
    assert!(at.saturating_duration_since(told_at) < NEWS_WITHIN);

    // The second in line parks; both holders pay: the last unit sold
    // answers them (sold out), not the end of their wait.
    let (was, second) = park(&app, &client, &line[1], sale).await;
    assert_eq!((was["state"].as_str(), was["position"].as_i64()), (Some("waiting"), Some(1)), "{was}");
    for token in [&holders[1], &line[0]] {
        let (status, placed) = checkout(&app, token, "pm_card_visa").await;
        assert_eq!(status, StatusCode::CREATED, "{placed}");
    }
    let (answer, _) = tokio::time::timeout(NEWS_WITHIN, second).await.expect("the line is told the sale sold out").unwrap();
    assert_eq!((answer.status, answer.body["state"].as_str()), (StatusCode::OK, Some("sold_out")), "{}", answer.body);
    assert_eq!(app.shop.flash().parked_waiters(), 0, "no request is left parked");
    assert_eq!(units_per_customer(&app.shop.db, s.sku).await.iter().map(|(_, n)| n).sum::<i64>(), 2);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_parked_long_poll_answers_when_its_server_stops(db: PgPool) {
    let s = setup(db.clone(), 10).await;
    // A second server process with a shutdown grace longer than a wait:
    // only the stop can end the parked poll before its 25 s.
    let second = second_process(&s, db, &[("MERCATO_SHUTDOWN_GRACE_SECS", "60")]).await;
    let (addr, shop) = (second.local_addr(), second.shop().clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(second.run_until(async {
        let _ = stopped.await;
    }));

    let sale = id(&create_sale(&s, 1, 1, chrono::Duration::seconds(1), chrono::Duration::minutes(10)).await);
    let customers = s.app.shop.accounts().create_load_test_users(2, "load-test-password").await.unwrap();
    wait_open(&s.app, sale).await;
    assert_eq!(buy(&s.app, &s.app.client, &customers[0], sale, 1).await.0, StatusCode::OK);
    let (status, waiting) = buy(&s.app, &s.app.client, &customers[1], sale, 1).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{waiting}");

    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let url = format!("http://{addr}/api/v1/flash-sales/{sale}/me");
    let tag = client.get(&url).bearer_auth(&customers[1]).send().await.unwrap().headers()["etag"].to_str().unwrap().to_owned();
    let poll = tokio::spawn({
        let (client, token) = (client.clone(), customers[1].clone());
        async move { client.get(format!("{url}?wait=25")).bearer_auth(token).header("if-none-match", tag).send().await.unwrap().status() }
    });
    wait_for("the long poll is parked", Duration::from_secs(20), || async { shop.flash().parked_waiters() == 1 }).await;

    stop.send(()).unwrap();
    let status = tokio::time::timeout(NEWS_WITHIN, poll).await.expect("the parked poll answers when the server stops").unwrap();
    assert_eq!(status, StatusCode::NOT_MODIFIED, "still in line: nothing changed");
    tokio::time::timeout(NEWS_WITHIN, server).await.expect("the server stops without waiting out the poll").unwrap().unwrap();
}

/// A place in line that only moved is not news: a long poll started from
/// the old place parks for its whole wait and then answers with the new
/// one, while a plain conditional GET answers the new place at once.
/// Answered at once, a line moving all the time kept every parked poll
/// answering and starting again (13 answers per shopper in the benchmark).
#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn a_place_that_only_moved_does_not_end_a_long_poll_early(db: PgPool) {
    let s = setup(db, 10).await;
    let sale = id(&create_sale(&s, 1, 1, chrono::Duration::seconds(1), chrono::Duration::minutes(10)).await);
    let customers = s.app.shop.accounts().create_load_test_users(3, "load-test-password").await.unwrap();
    wait_open(&s.app, sale).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    assert_eq!(buy(&s.app, &client, &customers[0], sale, 1).await.0, StatusCode::OK);
    for token in &customers[1..] {
        assert_eq!(buy(&s.app, &client, token, sale, 1).await.0, StatusCode::ACCEPTED);
    }
    let second = me(&client, &s.app, &customers[2], sale, None, None).await;
    assert_eq!(second.body["position"].as_i64(), Some(2), "{}", second.body);

    // The first in line leaves: the second's place moves up.
    let left = s.app.client.delete(s.app.url(&format!("/api/v1/flash-sales/{sale}/me"))).bearer_auth(&customers[1]).send().await.unwrap();
    assert_eq!(left.status(), StatusCode::OK);

    let started = Instant::now();
    let polled = me(&client, &s.app, &customers[2], sale, Some(&second.etag), Some("2")).await;
    let took = started.elapsed();
    assert_eq!((polled.status, polled.body["position"].as_i64()), (StatusCode::OK, Some(1)), "{}", polled.body);
    assert!(took >= Duration::from_millis(1_900), "a moved place alone ended the wait after {took:?}");
    assert_ne!(polled.etag, second.etag);

    let plain = me(&client, &s.app, &customers[2], sale, Some(&second.etag), None).await;
    assert_eq!((plain.status, plain.body["position"].as_i64()), (StatusCode::OK, Some(1)), "{}", plain.body);
}

//! Admission control: at most `MERCATO_MAX_IN_FLIGHT` requests are worked on
//! at once; one more is answered 503 with Retry-After straight away.
//!
//! Without it, an open stream of shoppers larger than the machine can serve
//! (the million-product benchmark at 1,000 pages/s) queued without bound:
//! every request's Redis replies waited behind the others until the client
//! timed out, each timeout fell back to PostgreSQL, the pool ran dry, and
//! latency grew to the request timeout for everyone. Refusing the excess at
//! the door keeps the admitted requests fast and tells the rest when to
//! come back. Health, readiness and metrics always pass (an operator must
//! see an overloaded shop), and so do Server-Sent Events streams, which
//! stay open for minutes and would otherwise hold permits.
//!
//! A request that stops working to wait its turn (a checkout in a flash
//! sale's confirm queue) gives its permit back through `shop::parking`:
//! the permit is lent to the request's work in a slot, and the shop parks
//! it. Kept, a minute-long queue of checkouts filled the limit and the shop
//! refused every buyer of the sale (BENCHMARKS.md, the pushed line).
//!
//! A refused client is told to come back after a time that grows with the
//! pressure ([`Pressure`]): told "1 s" each, the 50,000 shoppers of a flash
//! sale came back every second and 143,000 of the 190,000 requests of the
//! benchmark were refusals, which cost the shared cores (the server's and
//! the clients') as much as the buys and orders themselves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;

/// The longest wait a refused client is told (Retry-After, in seconds).
const MAX_RETRY_AFTER_SECS: u64 = 10;

#[derive(Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    /// Places only a checkout may take.
    reserve: usize,
    pressure: Arc<Pressure>,
}

impl Admission {
    pub fn new(max_in_flight: usize) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Admission { permits: Arc::new(Semaphore::new(max_in_flight)), reserve: max_in_flight / 4, pressure: Arc::new(Pressure::new()) }
    }
}

fn checkout(request: &Request) -> bool {
    request.method() == axum::http::Method::POST && request.uri().path() == "/api/v1/checkout"
}

/// How much more is asked than served: the refusals per admission of the
/// last whole second. A refused client is told to come back after a whole
/// number of seconds drawn evenly from 1 to that ratio (at most
/// [`MAX_RETRY_AFTER_SECS`]), so the refused spread their returns over as
/// many seconds as it takes to serve them, instead of all coming back in
/// the next one. Without pressure (a burst), it is 1 s.
struct Pressure {
    started: Instant,
    /// The second (since `started`) the counts below are for.
    second: AtomicU64,
    admitted: AtomicU64,
    refused: AtomicU64,
    /// Refusals per admission in the last whole second with traffic, if
    /// that second was the one before `second`; 0 otherwise.
    ratio: AtomicU64,
    /// Draws of the spread: a Weyl sequence, even enough for this.
    draws: AtomicU64,
}

impl Pressure {
    fn new() -> Self {
        Pressure {
            started: Instant::now(),
            second: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            ratio: AtomicU64::new(0),
            draws: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Starts the counts of second `now` if they are for an earlier one.
    /// Racing callers may lose a few counts at the turn: it is a heuristic.
    fn turn(&self, now: u64) {
        let second = self.second.load(Ordering::Relaxed);
        if second == now || self.second.compare_exchange(second, now, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        let (admitted, refused) = (self.admitted.swap(0, Ordering::Relaxed), self.refused.swap(0, Ordering::Relaxed));
        let ratio = if now == second + 1 { refused / admitted.max(1) } else { 0 };
        self.ratio.store(ratio, Ordering::Relaxed);
    }

    fn admitted(&self, now: u64) {
        self.turn(now);
        self.admitted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refusal and draws the wait to tell its client.
    fn refused(&self, now: u64) -> Duration {
        self.turn(now);
        self.refused.fetch_add(1, Ordering::Relaxed);
        let spread = self.ratio.load(Ordering::Relaxed).clamp(1, MAX_RETRY_AFTER_SECS);
        let draw = self.draws.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        Duration::from_secs(1 + draw % spread)
    }
}

fn exempt(request: &Request) -> bool {
    matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics")
        || long_poll(request)
        || request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/event-stream"))
}

/// A flash customer's wait for news of their state (`/me?wait=`, and the
/// flash page's `flash_wait`): parked, not working, like an event stream.
/// Each customer's flash budget bounds how many they start.
fn long_poll(request: &Request) -> bool {
    let uri = request.uri();
    match uri.path() {
        "/api/flash_wait" => true,
        path => path.starts_with("/api/v1/flash-sales/") && path.ends_with("/me") && uri.query().is_some_and(|q| q.split('&').any(|p| p.starts_with("wait="))),
    }
}

pub async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    if exempt(&request) {
        return next.run(request).await;
    }
    let now = admission.pressure.now();
    // The last quarter of the places is kept for checkouts: a customer who
    // holds units finishes a sale, where a buy starts one. Sharing every
    // place alike, the buys of a flash sale's crowd took them all and its
    // orders came in only as fast as a resent checkout found a free one.
    let reserve = if checkout(&request) { 0 } else { admission.reserve };
    let permit = match admission.permits.available_permits() > reserve {
        true => admission.permits.clone().try_acquire_owned().ok(),
        false => None,
    };
    let Some(permit) = permit else {
        return ApiError::Overloaded { retry_after: admission.pressure.refused(now) }.into_response();
    };
    admission.pressure.admitted(now);
    // Work the request starts may outlive it (a checkout runs to its end)
    // and shares the slot; the permit is the request's alone: `lent` gives
    // it back when the request ends, answered or dropped.
    let lent = shop::parking::Lent::new(permit);
    lent.run(next.run(request)).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::Router;
    use tokio::sync::{mpsc, oneshot};
    use tower::ServiceExt;

    use super::*;

    /// A route that reports it has started and then waits to be released,
    /// so the test knows (without sleeping) that a permit is held.
    fn app(limit: usize) -> (Router, mpsc::Receiver<oneshot::Sender<()>>) {
        let (started, waiting) = mpsc::channel::<oneshot::Sender<()>>(8);
        // `/parks` waits the same way, parked as the shop parks a request.
        let holding = move |parks: bool| {
            let started = started.clone();
            move || {
                let started = started.clone();
                async move {
                    if parks {
                        shop::parking::park();
                    }
                    let (release, released) = oneshot::channel();
                    started.send(release).await.unwrap();
                    released.await.unwrap();
                    "done"
                }
            }
        };
        let router = Router::new()
            .route("/slow", get(holding(false)))
            .route("/parks", get(holding(true)))
            .route("/fast", get(|| async { "fast" }))
            .route("/healthz", get(|| async { "ok" }))
            .route("/api/v1/checkout", axum::routing::post(|| async { "placed" }))
            .layer(axum::middleware::from_fn_with_state(Admission::new(limit), admit));
        (router, waiting)
    }

    fn get_req(path: &str, accept: Option<&str>) -> Request {
        let mut request = Request::builder().uri(path);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        request.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn beyond_the_limit_requests_are_refused_at_once_with_retry_after() {
        let (router, mut started) = app(2);
        let first = tokio::spawn(router.clone().oneshot(get_req("/slow", None)));
        let second = tokio::spawn(router.clone().oneshot(get_req("/slow", None)));
        let (release_first, release_second) = (started.recv().await.unwrap(), started.recv().await.unwrap());

        // Both permits held: the next request is refused, not queued (a
        // queued one would wait for ever here: the bound turns that into a failure).
        let refused = tokio::time::timeout(Duration::from_secs(10), router.clone().oneshot(get_req("/fast", None)))
            .await
            .expect("answered at once, not queued")
            .unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(refused.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "overloaded");

        // Health and event streams still pass.
        assert_eq!(router.clone().oneshot(get_req("/healthz", None)).await.unwrap().status(), StatusCode::OK);
        assert_eq!(router.clone().oneshot(get_req("/fast", Some("text/event-stream"))).await.unwrap().status(), StatusCode::OK);

        // A finished request gives its permit back.
        release_first.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(router.clone().oneshot(get_req("/fast", None)).await.unwrap().status(), StatusCode::OK);
        release_second.send(()).unwrap();
        assert_eq!(second.await.unwrap().unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn the_last_quarter_of_the_places_is_kept_for_checkouts() {
        let (router, mut started) = app(4);
        let mut holding = Vec::new();
        for _ in 0..3 {
            holding.push(tokio::spawn(router.clone().oneshot(get_req("/slow", None))));
        }
        let mut releases = Vec::new();
        for _ in 0..3 {
            releases.push(started.recv().await.unwrap());
        }
        // One place left, a checkout's: anything else is refused…
        assert_eq!(router.clone().oneshot(get_req("/fast", None)).await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
        let checkout = || Request::builder().method("POST").uri("/api/v1/checkout").body(Body::empty()).unwrap();
        // …and a checkout passes.
        assert_eq!(router.clone().oneshot(checkout()).await.unwrap().status(), StatusCode::OK);
        for release in releases {
            release.send(()).unwrap();
        }
        for request in holding {
            assert_eq!(request.await.unwrap().unwrap().status(), StatusCode::OK);
        }
        assert_eq!(router.oneshot(get_req("/fast", None)).await.unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_request_parked_by_the_shop_gives_its_permit_back() {
        let (router, mut parked) = app(1);
        let waiting = tokio::spawn(router.clone().oneshot(get_req("/parks", None)));
        let release = parked.recv().await.unwrap();
        // The only permit is back: a working request passes while the parked one waits.
        assert_eq!(router.clone().oneshot(get_req("/fast", None)).await.unwrap().status(), StatusCode::OK);
        release.send(()).unwrap();
        assert_eq!(waiting.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(router.oneshot(get_req("/fast", None)).await.unwrap().status(), StatusCode::OK);
    }

    /// A request cut off unanswered (the gateway's deadline) whose work goes
    /// on in a task of its own: the permit is back all the same.
    #[tokio::test]
    async fn a_request_dropped_while_its_work_goes_on_gives_its_permit_back() {
        let router = Router::new()
            .route(
                "/detaches",
                get(|| async {
                    tokio::spawn(shop::parking::carry(std::future::pending::<()>()));
                    std::future::pending::<&'static str>().await
                }),
            )
            .route("/fast", get(|| async { "fast" }))
            .layer(axum::middleware::from_fn_with_state(Admission::new(1), admit));
        let cut = tokio::time::timeout(Duration::from_millis(50), router.clone().oneshot(get_req("/detaches", None))).await;
        assert!(cut.is_err(), "the request never answers");
        assert_eq!(router.oneshot(get_req("/fast", None)).await.unwrap().status(), StatusCode::OK);
    }

    #[test]
    fn under_pressure_the_refused_are_told_to_come_back_over_several_seconds() {
        let pressure = Pressure::new();
        // No pressure known yet: a burst is told 1 s.
        assert!((0..100).all(|_| pressure.refused(0) == Duration::from_secs(1)));
        // Second 1: 40 refusals for each admission (100 in all in second 0).
        for _ in 0..10 {
            pressure.admitted(1);
        }
        for _ in 0..400 {
            pressure.refused(1);
        }
        // In second 2 the refused are spread evenly over 1..=10 s (the cap).
        let mut told = std::collections::BTreeMap::new();
        for _ in 0..10_000 {
            *told.entry(pressure.refused(2).as_secs()).or_insert(0) += 1;
        }
        assert_eq!(told.keys().copied().collect::<Vec<_>>(), (1..=MAX_RETRY_AFTER_SECS).collect::<Vec<_>>(), "{told:?}");
        assert!(told.values().all(|n| (800..=1200).contains(n)), "evenly: {told:?}");
        // Second 3 saw 10,000 refusals and 2,500 admissions: 1 to 4 s.
        for _ in 0..2_500 {
            pressure.admitted(2);
        }
        let told: std::collections::BTreeSet<u64> = (0..1_000).map(|_| pressure.refused(3).as_secs()).collect();
        assert_eq!(told, (1..=4).collect());
        // A quiet second in between: the pressure is over.
        assert_eq!(pressure.refused(5), Duration::from_secs(1));
    }

    #[test]
    fn only_a_flash_customers_wait_for_news_parks_outside_the_limit() {
        let sale = "/api/v1/flash-sales/0190c3f6-4f2b-7c4e-9a51-2b0c1d2e3f40";
        for parked in [format!("{sale}/me?wait=25"), format!("{sale}/me?x=1&wait=0"), "/api/flash_wait".to_owned()] {
            assert!(long_poll(&get_req(&parked, None)), "{parked}");
        }
        for working in [format!("{sale}/me"), format!("{sale}/me?waiting=1"), format!("{sale}/buy?wait=25"), "/api/v1/products?wait=25".to_owned()] {
            assert!(!long_poll(&get_req(&working, None)), "{working}");
        }
    }
}

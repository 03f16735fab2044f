//! A strict Stripe: a small proxy in front of localstripe that enforces what
//! localstripe ignores, Stripe's documented `Idempotency-Key` semantics, so
//! the tests catch key misuse the way production would:
//!
//! - a key is scoped to the API key (`Authorization: Bearer sk_…`);
//! - once the endpoint has started executing, its answer is saved, 4xx and
//!   5xx included, and the same key with the same method, path and
//!   parameters gets that answer again (`Idempotent-Replayed: true`) without
//!   the request reaching localstripe;
//! - the same key with another path or other parameters is a 400
//!   `idempotency_error`; while the first request with a key is still
//!   running, another one is a 409 `idempotency_error`;
//! - keys are forgotten 24 h after first use (on the fake's clock, which a
//!   test can move forward).
//!
//! Answers that never came from localstripe (it could not be reached, an
//! injected `Fault::Status`) are not saved, as Stripe saves nothing for a
//! request that never started executing. Tests can also read what reached
//! localstripe and inject faults (a lost answer, an error, a delay).
//!
//! The proxy serves HTTP/1 on its own accept loop (hyper) rather than
//! `axum::serve` for two things axum hides: closing one connection without
//! an answer (`Fault::LoseResponse`), and `stop()` dropping every open
//! connection at once, as a provider that goes away does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT_ENCODING, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use axum::http::request::Parts;
use axum::http::{Method, Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tokio::task::{JoinHandle, JoinSet};

/// How long Stripe keeps an idempotency key after its first use.
pub const KEY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// What to do to the next request that matches (each fault is used once).
#[derive(Debug, Clone)]
pub enum Fault {
    /// The provider acts (the request reaches localstripe and its answer is
    /// saved under the key) but the connection closes before the client
    /// hears anything: "the provider charged, we never heard".
    LoseResponse,
    /// Answer this status at once; nothing reaches localstripe and nothing
    /// is saved under the key (the request never started executing).
    Status(u16),
    /// Wait this long before forwarding; the key counts as in flight meanwhile.
    Delay(Duration),
}

/// Which request a fault applies to: a method and a substring of the path.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub method: Method,
    pub path_contains: String,
}

impl From<(&str, &str)> for Matcher {
    fn from((method, path_contains): (&str, &str)) -> Self {
        Matcher { method: method.parse().expect("an HTTP method"), path_contains: path_contains.to_owned() }
    }
}

impl Matcher {
    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method == method && path.contains(&self.path_contains)
    }
}

/// One request that reached localstripe and got an answer from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamCall {
    pub method: String,
    pub path: String,
    /// The path with the object id replaced: `/v1/payment_intents/{id}/confirm`.
    pub pattern: String,
    pub api_key: String,
    pub idempotency_key: Option<String>,
}

/// An idempotency key the fake holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedKey {
    pub api_key: String,
    pub idempotency_key: String,
    pub method: String,
    pub path: String,
    /// The saved answer's status; `None` while the first request still runs.
    pub status: Option<u16>,
}

/// Answers the fake gave on its own.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Saved answers sent again.
    pub replays: usize,
    /// 400 `idempotency_error`: a key reused for another request.
    pub mismatches: usize,
    /// 409 `idempotency_error`: a key reused while its first request ran.
    pub conflicts: usize,
}

impl Counters {
    pub fn idempotency_errors(&self) -> usize {
        self.mismatches + self.conflicts
    }
}

/// The strict proxy. Dropping it stops it.
pub struct StrictStripe {
    port: u16,
    shared: Arc<Shared>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl StrictStripe {
    /// Starts the proxy on 127.0.0.1 in front of `upstream` (localstripe's
    /// base URL), on a port that stays free for [`StrictStripe::restart`].
    pub async fn start(upstream: &str) -> StrictStripe {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Mutex::new(upstream_client()),
            state: Mutex::default(),
        });
        let mut fake = StrictStripe { port: crate::helpers::unassigned_port(), shared, server: None };
        fake.restart().await;
        fake
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Closes the listener and every open connection: clients get refused
    /// connections, requests in flight get cut. Stored keys stay.
    pub async fn stop(&mut self) {
        if let Some((stop, server)) = self.server.take() {
            let _ = stop.send(());
            let _ = server.await;
        }
    }

    /// Listens again on the same port, with the keys it held (Stripe keeps
    /// them through its own outages) and fresh connections to localstripe
    /// (the old ones may lead to a process that is gone).
    pub async fn restart(&mut self) {
        self.stop().await;
        *self.shared.client.lock().unwrap() = upstream_client();
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("the fake's port is free");
        let (stop, stopped) = oneshot::channel();
        self.server = Some((stop, tokio::spawn(serve(listener, self.shared.clone(), stopped))));
    }

    /// Moves the fake's clock forward (key expiry).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.state().clock_offset += by;
    }

    /// Applies `fault` to the next request matching `matcher`.
    pub fn fail_next(&self, matcher: impl Into<Matcher>, fault: Fault) {
        self.shared.state().faults.push((matcher.into(), fault));
    }

    /// Every request that reached localstripe, in order.
    pub fn upstream_calls(&self) -> Vec<UpstreamCall> {
        self.shared.state().calls.clone()
    }

    /// How many `method` requests on `pattern` (e.g.
    /// `/v1/payment_intents/{id}/confirm`) reached localstripe.
    pub fn upstream_count(&self, method: &str, pattern: &str) -> usize {
        self.shared.state().calls.iter().filter(|c| c.method == method && c.pattern == pattern).count()
    }

    /// The keys held now, in order of first use (expired ones excluded).
    pub fn recorded_keys(&self) -> Vec<RecordedKey> {
        let state = self.shared.state();
        let now = state.now();
        let mut keys: Vec<(&Instant, RecordedKey)> = state
            .keys
            .iter()
            .filter(|(_, entry)| !entry.expired(now))
            .map(|((api_key, idempotency_key), entry)| {
                let key = RecordedKey {
                    api_key: api_key.clone(),
                    idempotency_key: idempotency_key.clone(),
                    method: entry.request.method.clone(),
                    path: entry.request.path.clone(),
                    status: entry.saved.as_ref().map(|s| s.status.as_u16()),
                };
                (&entry.first_used, key)
            })
            .collect();
        keys.sort_by_key(|(at, _)| **at);
        keys.into_iter().map(|(_, key)| key).collect()
    }

    pub fn counters(&self) -> Counters {
        self.shared.state().counters
    }
}

impl Drop for StrictStripe {
    fn drop(&mut self) {
        if let Some((_, server)) = self.server.take() {
            server.abort();
        }
    }
}

fn upstream_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        // Below aiohttp's 75 s keep-alive, so a pooled connection is never
        // one localstripe is closing (that would be a spurious 503).
        .pool_idle_timeout(Duration::from_secs(20))
        .build()
        .expect("a plain HTTP client builds")
}

struct Shared {
    upstream: String,
    client: Mutex<reqwest::Client>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<(String, String), Entry>,
    faults: Vec<(Matcher, Fault)>,
    calls: Vec<UpstreamCall>,
    counters: Counters,
    clock_offset: Duration,
    next_claim: u64,
}

impl State {
    fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }
}

/// What a key was first used for, and its answer once there is one.
struct Entry {
    request: Fingerprint,
    first_used: Instant,
    saved: Option<Saved>,
    /// Which request holds the key while it is in flight.
    claim: u64,
}

impl Entry {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.first_used) >= KEY_RETENTION
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    method: String,
    path: String,
    /// The form body's pairs, decoded and sorted: the same parameters in
    /// another order are the same request.
    params: Vec<(String, String)>,
}

#[derive(Clone)]
struct Saved {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

impl Saved {
    fn response(&self, replayed: bool) -> Response<Body> {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        if let Some(content_type) = &self.content_type {
            response.headers_mut().insert(CONTENT_TYPE, content_type.clone());
        }
        if replayed {
            response.headers_mut().insert(HeaderName::from_static("idempotent-replayed"), HeaderValue::from_static("true"));
        }
        response
    }
}

/// What the key store decided for a POST carrying an `Idempotency-Key`.
enum Decision {
    Forward(Option<Claim>),
    Replay(Saved),
    Refuse(Response<Body>),
}

/// A key held by the request in flight. Dropped without saving (localstripe
/// could not be reached), it frees the key: nothing started executing, so a
/// retry runs again. A client that goes away mid-request does not drop it.
struct Claim {
    shared: Arc<Shared>,
    key: (String, String),
    id: u64,
    saved: bool,
}

impl Claim {
    fn save(mut self, answer: Saved) {
        if let Some(entry) = self.shared.state().keys.get_mut(&self.key) {
            if entry.claim == self.id {
                entry.saved = Some(answer);
            }
        }
        self.saved = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.saved {
            return;
        }
        let mut state = self.shared.state();
        if state.keys.get(&self.key).is_some_and(|e| e.claim == self.id && e.saved.is_none()) {
            state.keys.remove(&self.key);
        }
    }
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn take_fault(&self, method: &Method, path: &str) -> Option<Fault> {
        let mut state = self.state();
        let at = state.faults.iter().position(|(m, _)| m.matches(method, path))?;
        Some(state.faults.remove(at).1)
    }

    /// Stripe's rules for a key, decided under one lock so two requests
    /// with the same key cannot both be forwarded.
    fn decide(self: &Arc<Self>, api_key: &str, idempotency_key: &str, request: Fingerprint) -> Decision {
        let key = (api_key.to_owned(), idempotency_key.to_owned());
        let mut state = self.state();
        let now = state.now();
        if state.keys.get(&key).is_some_and(|e| e.expired(now)) {
            state.keys.remove(&key);
        }
        if let Some(entry) = state.keys.get(&key) {
            if entry.request != request {
                state.counters.mismatches += 1;
                return Decision::Refuse(stripe_error(
                    StatusCode::BAD_REQUEST,
                    "idempotency_error",
                    &format!(
                        "Keys for idempotent requests can only be used with the same parameters they were first used with. \
                         Try using a key other than '{idempotency_key}' if you meant to execute a different request."
                    ),
                ));
            }
            return match &entry.saved {
                Some(saved) => {
                    let saved = saved.clone();
                    state.counters.replays += 1;
                    Decision::Replay(saved)
                }
                None => {
                    state.counters.conflicts += 1;
                    Decision::Refuse(stripe_error(
                        StatusCode::CONFLICT,
                        "idempotency_error",
                        &format!(
                            "There is currently another in-progress request using this Idempotency Key (that probably means \
                             you submitted twice, and the other request is still going through): '{idempotency_key}'. \
                             Please try again later."
                        ),
                    ))
                }
            };
        }
        state.next_claim += 1;
        let id = state.next_claim;
        state.keys.insert(key.clone(), Entry { request, first_used: now, saved: None, claim: id });
        Decision::Forward(Some(Claim { shared: self.clone(), key, id, saved: false }))
    }

    async fn forward(&self, parts: &Parts, path: &str, body: Bytes) -> Result<Saved, reqwest::Error> {
        let client = self.client.lock().unwrap().clone();
        let mut request = client.request(parts.method.clone(), format!("{}{path}", self.upstream)).body(body);
        // Hop-by-hop headers stay here; so does Accept-Encoding, since only
        // the body and its Content-Type are passed back.
        for (name, value) in &parts.headers {
            if ![HOST, CONTENT_LENGTH, CONNECTION, TRANSFER_ENCODING, ACCEPT_ENCODING].contains(name) {
                request = request.header(name, value);
            }
        }
        let response = request.send().await?;
        let status = response.status();
        let content_type = response.headers().get(CONTENT_TYPE).cloned();
        let body = response.bytes().await?;
        self.state().calls.push(UpstreamCall {
            method: parts.method.to_string(),
            path: path.to_owned(),
            pattern: pattern(path),
            api_key: api_key(&parts.headers),
            idempotency_key: header(&parts.headers, "idempotency-key"),
        });
        Ok(Saved { status, content_type, body })
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(connection(stream, shared.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Cut every open connection, as a provider that goes away does.
    connections.shutdown().await;
}

/// Serves one client connection until it ends or a handler asks to cut it.
async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let cut = Arc::new(Notify::new());
    let service = {
        let cut = cut.clone();
        hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let (shared, cut) = (shared.clone(), cut.clone());
            async move { Ok::<_, Infallible>(handle(shared, cut, request.map(Body::new)).await) }
        })
    };
    let served = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::select! {
        _ = served => {}
        // Dropping the connection closes the socket with no answer written.
        _ = cut.notified() => {}
    }
}

async fn handle(shared: Arc<Shared>, cut: Arc<Notify>, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", "unreadable request body");
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let fault = shared.take_fault(&parts.method, &path);
    if let Some(Fault::Status(code)) = fault {
        let status = StatusCode::from_u16(code).expect("a valid status");
        return stripe_error(status, "api_error", "injected by the test's fault");
    }

    // Stripe honours Idempotency-Key on POST only.
    let idempotency_key = header(&parts.headers, "idempotency-key").filter(|_| parts.method == Method::POST);
    let decision = match &idempotency_key {
        None => Decision::Forward(None),
        Some(key) => {
            let request = Fingerprint { method: parts.method.to_string(), path: path.clone(), params: canonical_params(&body) };
            shared.decide(&api_key(&parts.headers), key, request)
        }
    };
    if let Some(Fault::Delay(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    let response = match decision {
        Decision::Replay(saved) => saved.response(true),
        Decision::Refuse(response) => response,
        // Stripe finishes what it started and keeps the answer under the key
        // whether or not the client is still there to hear it (it timed
        // out, or its process was killed mid-call): so the forward runs on a
        // task of its own, which a closed client connection cannot cancel.
        Decision::Forward(claim) => {
            let forwarding = tokio::spawn({
                let shared = shared.clone();
                let path = path.clone();
                async move {
                    let forwarded = shared.forward(&parts, &path, body).await;
                    if let (Ok(saved), Some(claim)) = (&forwarded, claim) {
                        claim.save(saved.clone());
                    }
                    forwarded
                }
            });
            match forwarding.await.expect("the forward task does not panic") {
                Ok(saved) => saved.response(false),
                // Nothing started executing: the claim was dropped unsaved.
                Err(err) => stripe_error(StatusCode::SERVICE_UNAVAILABLE, "api_error", &format!("the payment provider could not be reached: {err}")),
            }
        }
    };
    if let Some(Fault::LoseResponse) = fault {
        cut.notify_one();
        return std::future::pending().await;
    }
    response
}

fn stripe_error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": { "type": kind, "message": message } });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The key the request authenticates with: keys are scoped to it.
fn api_key(headers: &HeaderMap) -> String {
    let authorization = header(headers, "authorization").unwrap_or_default();
    authorization.strip_prefix("Bearer ").unwrap_or(&authorization).trim().to_owned()
}

fn canonical_params(body: &[u8]) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    params.sort();
    params
}

/// `/v1/payment_intents/pi_123/confirm?x` → `/v1/payment_intents/{id}/confirm`:
/// Stripe paths are `/v1/<collection>/<id>/<action>`.
fn pattern(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    path.split('/').enumerate().map(|(i, segment)| if i == 3 { "{id}" } else { segment }).collect::<Vec<_>>().join("/")
}

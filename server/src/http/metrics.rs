//! Prometheus metrics: request counts and latency histograms per route.
//!
//! The route label is axum's matched route template (`/products/{id}`), never
//! the raw path, so label cardinality stays bounded whatever clients send.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReservationLabels {
    path: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// Latency buckets in seconds: fine below 50 ms, where the targets are.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Reads one of the shop's own counters.
type ShopCounter = fn(&shop::stats::Stats) -> u64;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Mirrors of the shop's own counters (see `shop::stats`), brought up to
    /// date at each scrape.
    shop: Vec<(Counter, ShopCounter)>,
    reservations: Family<ReservationLabels, Counter>,
    redis_breaker: Gauge,
    breaker_trips: Counter,
    /// Requests whose response is still being produced (a graceful
    /// shutdown waits for these).
    in_flight: Gauge,
}

/// Reservation outcomes per path, read from the shop's counters.
const RESERVATION_SERIES: [(&str, &str, ShopCounter); 4] = [
    ("redis", "ok", |s| shop::stats::Stats::get(&s.inventory.reserved_redis)),
    ("redis", "rejected", |s| shop::stats::Stats::get(&s.inventory.rejected_redis)),
    ("db", "ok", |s| shop::stats::Stats::get(&s.inventory.reserved_db)),
    ("db", "rejected", |s| shop::stats::Stats::get(&s.inventory.rejected_db)),
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mercato");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register("http_requests", "HTTP requests served, by route and status", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to produce the response head, by route",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("http_requests_in_flight", "Requests being handled now (this scrape included)", in_flight.clone());
        let mut shop = Vec::new();
        let reservations = Family::<ReservationLabels, Counter>::default();
        registry.register(
            "inventory_reservations",
            "Reservation attempts by path (redis, or db while Redis is failing) and outcome (ok, rejected: not enough stock)",
            reservations.clone(),
        );
        let redis_breaker = Gauge::default();
        registry.register(
            "inventory_redis_breaker_state",
            "Inventory's Redis circuit breaker: 0 closed (Redis path), 1 open (DB-only path), 2 probing",
            redis_breaker.clone(),
        );
        let breaker_trips = Counter::default();
        registry.register("inventory_redis_breaker_trips", "Times inventory's Redis circuit breaker opened", breaker_trips.clone());
        let mirrors: [(&str, &str, ShopCounter); 9] = [
            ("product_cache_hits", "product:{id} reads answered by Redis", |s| shop::stats::Stats::get(&s.product_cache_hits)),
            ("product_cache_misses", "product:{id} reads that went to PostgreSQL", |s| shop::stats::Stats::get(&s.product_cache_misses)),
            ("product_db_loads", "Product records loaded from PostgreSQL", |s| shop::stats::Stats::get(&s.product_db_loads)),
            ("cache_errors", "Redis failures the catalog rode out by reading PostgreSQL", |s| shop::stats::Stats::get(&s.cache_errors)),
            ("stock_counter_loads", "Inventory counters loaded from PostgreSQL into Redis", |s| shop::stats::Stats::get(&s.stock_counter_loads)),
            ("inventory_expired_reservations", "Expired reservations whose units the sweeper returned to stock", |s| shop::stats::Stats::get(&s.inventory.expired_returned)),
            ("inventory_drift_corrected", "Redis stock counters reconciliation found wrong and corrected", |s| shop::stats::Stats::get(&s.inventory.drift_corrected)),
            ("inventory_confirm_retries", "Optimistic inventory confirmations retried after losing a version race", |s| shop::stats::Stats::get(&s.inventory.confirm_retries)),
            ("inventory_redis_failures", "Redis failures that sent an inventory call to the DB-only path", |s| shop::stats::Stats::get(&s.inventory.redis_failures)),
        ];
        for (name, help, read) in mirrors {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            shop.push((counter, read));
        }
        Self { registry, requests, latency, shop, reservations, redis_breaker, breaker_trips, in_flight }
    }

    fn observe(&self, method: &str, route: &str, status: StatusCode, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { method: method.to_owned(), route: route.to_owned(), status: status.as_u16() })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { method: method.to_owned(), route: route.to_owned() })
            .observe(seconds);
    }

    pub fn render(&self, shop: &shop::Shop) -> String {
        let stats = &shop.stats;
        let breaker = &shop.inventory_rt.breaker;
        for (counter, read) in &self.shop {
            let now = read(stats);
            counter.inc_by(now.saturating_sub(counter.get()));
        }
        for (path, outcome, read) in RESERVATION_SERIES {
            let counter = self.reservations.get_or_create(&ReservationLabels { path, outcome });
            counter.inc_by(read(stats).saturating_sub(counter.get()));
        }
        self.redis_breaker.set(breaker.state().as_gauge());
        let trips = breaker.trips.load(std::sync::atomic::Ordering::Relaxed);
        self.breaker_trips.inc_by(trips.saturating_sub(self.breaker_trips.get()));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        // The shop keeps its latency histogram in atomics; written here in
        // the same text format, before the closing `# EOF`.
        let body_end = out.rfind("# EOF").unwrap_or(out.len());
        let mut hist = String::new();
        hist.push_str("# HELP mercato_inventory_reservation_seconds Time to answer a reservation (reserved or rejected), by path.\n");
        hist.push_str("# TYPE mercato_inventory_reservation_seconds histogram\n");
        for (path, histogram) in [("redis", &stats.inventory.latency_redis), ("db", &stats.inventory.latency_db)] {
            write_histogram(&mut hist, "mercato_inventory_reservation_seconds", path, histogram);
        }
        out.insert_str(body_end, &hist);
        out
    }
}

/// Middleware: times every request and counts it under its route template.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = route_label(&request);
    // Counted down on drop, so a request whose client went away is not
    // counted for ever.
    struct InFlight(Gauge);
    impl Drop for InFlight {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    state.metrics.in_flight.inc();
    let _in_flight = InFlight(state.metrics.in_flight.clone());
    let response = next.run(request).await;
    state
        .metrics
        .observe(&method, &route, response.status(), started.elapsed().as_secs_f64());
    response
}

fn write_histogram(out: &mut String, name: &str, path: &str, histogram: &shop::stats::Histogram) {
    use std::fmt::Write;
    let (counts, sum) = histogram.snapshot();
    let mut cumulative = 0u64;
    for (i, count) in counts.iter().enumerate() {
        cumulative += count;
        let le = shop::stats::LATENCY_BUCKETS.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
        let _ = writeln!(out, "{name}_bucket{{path=\"{path}\",le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_sum{{path=\"{path}\"}} {sum}");
    let _ = writeln!(out, "{name}_count{{path=\"{path}\"}} {cumulative}");
}

fn route_label(request: &Request) -> String {
    if let Some(matched) = request.extensions().get::<MatchedPath>() {
        return matched.as_str().to_owned();
    }
    // Unrouted requests: static assets or unknown paths. Grouped, never raw.
    let path = request.uri().path();
    if path.starts_with("/pkg/") {
        "/pkg/{asset}".to_owned()
    } else if path.starts_with("/products/") {
        "/products/{product_id}".to_owned()
    } else if path.starts_with("/c/") {
        "/c/{category_slug}".to_owned()
    } else if path == "/search" || path == "/" {
        path.to_owned()
    } else {
        "unmatched".to_owned()
    }
}

/// `GET /metrics` in the OpenMetrics text format (which Prometheus scrapes).
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        state.metrics.render(&state.shop),
    )
}

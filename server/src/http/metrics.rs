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
struct GroupLabels {
    topic: &'static str,
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: &'static str,
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
    events: EventSeries,
}

/// The outbox and the bus, as of the last scrape (published: as it happens).
struct EventSeries {
    backlog: Gauge,
    oldest_unpublished: Gauge<f64, std::sync::atomic::AtomicU64>,
    published: Counter,
    lag: Family<GroupLabels, Gauge>,
    pending: Family<GroupLabels, Gauge>,
    dead_letters: Family<TopicLabels, Counter>,
}

/// A scrape waits no longer than this for a figure; a dependency that is
/// down leaves the last value in place.
const FIGURE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(800);

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
        let mirrors: [(&str, &str, ShopCounter); 11] = [
            ("product_cache_hits", "product:{id} reads answered by Redis", |s| shop::stats::Stats::get(&s.product_cache_hits)),
            ("product_cache_misses", "product:{id} reads that went to PostgreSQL", |s| shop::stats::Stats::get(&s.product_cache_misses)),
            ("product_db_loads", "Product records loaded from PostgreSQL", |s| shop::stats::Stats::get(&s.product_db_loads)),
            ("search_cache_hits", "Search requests answered from the result cache", |s| shop::stats::Stats::get(&s.search_cache_hits)),
            ("search_cache_misses", "Search requests that asked the index", |s| shop::stats::Stats::get(&s.search_cache_misses)),
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
        let events = EventSeries {
            backlog: Gauge::default(),
            oldest_unpublished: Gauge::default(),
            published: Counter::default(),
            lag: Family::default(),
            pending: Family::default(),
            dead_letters: Family::default(),
        };
        registry.register("outbox_backlog", "Outbox rows committed and not yet published to the event bus", events.backlog.clone());
        registry.register("outbox_oldest_unpublished_seconds", "Age of the oldest unpublished outbox row (0 when none)", events.oldest_unpublished.clone());
        registry.register("events_published", "Outbox rows this process published to the event bus", events.published.clone());
        registry.register("events_consumer_lag", "Events a consumer group has not finished: delivered and unacked, plus not yet delivered", events.lag.clone());
        registry.register("events_consumer_pending", "Events delivered to a consumer group and not acked yet", events.pending.clone());
        registry.register("events_dead_letters", "Events consumer groups gave up on after their tries, per topic", events.dead_letters.clone());
        Self { registry, requests, latency, shop, reservations, redis_breaker, breaker_trips, in_flight, events }
    }

    /// Counts rows the outbox relay published.
    pub fn events_published(&self, rows: usize) {
        self.events.published.inc_by(rows as u64);
    }

    /// Brings the outbox and bus figures up to date: the backlog from
    /// PostgreSQL, lag and dead letters from the bus. Each source that does
    /// not answer in time keeps its last figures (and says so in the log).
    pub async fn refresh_events(&self, shop: &shop::Shop, bus: &dyn shop::events::EventBus) {
        match tokio::time::timeout(FIGURE_TIMEOUT, shop::events::outbox::backlog(&shop.db)).await {
            Ok(Ok(backlog)) => {
                self.events.backlog.set(backlog.rows);
                self.events.oldest_unpublished.set(backlog.oldest_secs);
            }
            Ok(Err(err)) => tracing::debug!(error = ?err, "outbox backlog unavailable for /metrics"),
            Err(_) => tracing::debug!("outbox backlog timed out for /metrics"),
        }
        let bus_figures = async {
            for topic in shop::events::Topic::ALL {
                for group in bus.lag(topic).await? {
                    let labels = GroupLabels { topic: topic.name(), group: group.group };
                    self.events.pending.get_or_create(&labels).set(group.pending as i64);
                    self.events.lag.get_or_create(&labels).set((group.pending + group.undelivered) as i64);
                }
                let dead = bus.dead_letter_count(topic).await?;
                let counter = self.events.dead_letters.get_or_create(&TopicLabels { topic: topic.name() });
                counter.inc_by(dead.saturating_sub(counter.get()));
            }
            Ok::<_, shop::Error>(())
        };
        match tokio::time::timeout(FIGURE_TIMEOUT, bus_figures).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(error = ?err, "event bus figures unavailable for /metrics"),
            Err(_) => tracing::debug!("event bus figures timed out for /metrics"),
        }
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
    let bus = crate::workers::relay::bus(&state.shop, state.config.event_partitions);
    state.metrics.refresh_events(&state.shop, bus.as_ref()).await;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        state.metrics.render(&state.shop),
    )
}

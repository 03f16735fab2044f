//! Typed configuration from environment variables (see `.env.example`),
//! validated before anything connects. Every error names the variable and
//! says how to fix it, in one line.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use leptos::config::LeptosOptions;
use shop::secret::Secret;
use sqlx::postgres::PgConnectOptions;

/// `Debug` is safe to log: every credential (the database password inside
/// its options, a Redis URL's password, API keys) is a [`Secret`].
#[derive(Clone, Debug)]
pub struct Config {
    pub database: Secret<PgConnectOptions>,
    pub database_max_connections: u32,
    pub redis_url: Secret<String>,
    /// Prefix for every Redis key this process writes.
    pub redis_prefix: String,
    pub addr: SocketAddr,
    pub leptos: LeptosOptions,
    pub log_format: LogFormat,
    /// How long shutdown waits for in-flight requests before giving up.
    pub shutdown_grace: Duration,
    /// How often this process looks for products changed by others, to keep
    /// its embedded search index current.
    pub search_sync_interval: Duration,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// Requests worked on at once; one more is refused 503 at the door.
    pub max_in_flight: usize,
    /// Origins allowed to call the API from a browser context (CORS): the
    /// seller desktop app's webview, and nothing else by default.
    pub cors_origins: Vec<axum::http::HeaderValue>,
    /// The origin shoppers and crawlers reach the shop at (scheme and host,
    /// no trailing slash): canonical links, Open Graph URLs, JSON-LD and the
    /// sitemap are absolute on it.
    pub public_url: String,
    /// Products per sitemap page (at most the protocol's 50,000).
    pub sitemap_page_size: usize,
    /// Add-to-cart requests allowed per second per user (or guest IP).
    pub cart_adds_per_sec: u32,
    /// Meilisearch, when set; otherwise the embedded Tantivy index.
    pub meili_url: Option<String>,
    /// Where the embedded index is kept between runs (MERCATO_SEARCH_DIR);
    /// unset: in memory, rebuilt at every start.
    pub search_dir: Option<std::path::PathBuf>,
    /// The search result cache (MERCATO_SEARCH_CACHE=on|off).
    pub search: shop::search::Settings,
    pub meili_key: Option<Secret<String>>,
    /// How long a reservation holds stock before the sweeper returns it.
    pub reservation_ttl: Duration,
    /// How often this process sweeps expired reservations.
    pub sweep_interval: Duration,
    /// How often this process reconciles Redis counters with PostgreSQL
    /// (`None`: never; `server reconcile` and the admin endpoint still work).
    pub reconcile_interval: Option<Duration>,
    /// How long reservations stay on the DB-only path after Redis fails
    /// before Redis is probed again.
    pub redis_breaker_cooldown: Duration,
    /// A checkout claim still unfinished after this long belongs to a dead
    /// process and is recovered (authorization voided, stock released).
    pub checkout_recovery_after: Duration,
    /// Partitions per event topic. Every process must agree: an aggregate's
    /// partition depends on it.
    pub event_partitions: u32,
    /// How long the outbox relay waits before looking again once the outbox
    /// is drained (a full batch is followed at once).
    pub relay_interval: Duration,
    /// Outbox rows the relay publishes per round (one transaction).
    pub relay_batch: usize,
    /// A consumer's event unacked for this long is taken over by another
    /// consumer of its group (its holder died or hangs).
    pub consumer_claim_idle: Duration,
    /// The simulated warehouse (MERCATO_WAREHOUSE_PICK_MS, _SHIP_MS,
    /// _DELIVER_MS, _POLL_MS) and the early capture of authorizations about
    /// to lapse (MERCATO_CAPTURE_AFTER_SECS, 6 days by default).
    pub fulfilment: shop::fulfilment::Settings,
    /// Flash sales (MERCATO_FLASH_PRELOAD_LEAD_SECS, _PAY_WINDOW_SECS,
    /// _WAIT_SECS, _REQUESTS_PER_SEC, _TICK_MS, _CONFIRM_CONCURRENCY).
    pub flash: shop::flash::Settings,
    /// The Stripe API: Stripe itself, or localstripe (the default) locally.
    pub stripe_api_base: String,
    pub stripe_secret_key: Secret<String>,
    /// Where customer emails go (SMTP_URL, MERCATO_MAIL_FROM): maildev by
    /// default, as the README's commands start it.
    pub mail: shop::notifications::Settings,
    /// Which background workers this process runs beside the router.
    pub workers: Workers,
}

/// A background worker a server process can run beside the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Worker {
    /// The outbox relay (one publishes at a time per database; the others stand by).
    Relay,
    /// Consumer group `notifications`: customer emails.
    Notifications,
    /// Consumer group `warehouse` and the worker that picks, captures,
    /// ships and delivers: one job, so stopping it stops every capture.
    Warehouse,
    /// Consumer group `analytics`: the sellers' per-minute figures.
    Analytics,
    /// This process's search indexer group (order events re-index stock).
    SearchIndexer,
    /// This process's poll for products changed by other processes.
    SearchSync,
    /// Returns expired reservations to stock.
    Sweeper,
    /// Settles checkouts and cancels a dead process left half-way.
    CheckoutRecovery,
    /// Periodic Redis/PostgreSQL stock reconciliation (MERCATO_RECONCILE_SECS).
    Reconcile,
    /// Flash sales' schedule: preload, open, close, return unpaid units.
    Flash,
}

impl Worker {
    pub const ALL: [Worker; 10] = [
        Worker::Relay,
        Worker::Notifications,
        Worker::Warehouse,
        Worker::Analytics,
        Worker::SearchIndexer,
        Worker::SearchSync,
        Worker::Sweeper,
        Worker::CheckoutRecovery,
        Worker::Reconcile,
        Worker::Flash,
    ];

    /// The name MERCATO_WORKERS uses.
    pub fn name(self) -> &'static str {
        match self {
            Worker::Relay => "relay",
            Worker::Notifications => "notifications",
            Worker::Warehouse => "warehouse",
            Worker::Analytics => "analytics",
            Worker::SearchIndexer => "search-indexer",
            Worker::SearchSync => "search-sync",
            Worker::Sweeper => "sweeper",
            Worker::CheckoutRecovery => "checkout-recovery",
            Worker::Reconcile => "reconcile",
            Worker::Flash => "flash",
        }
    }
}

/// The workers a process runs (MERCATO_WORKERS): every one by default, so a
/// single process is a whole shop; a deployment can give processes one job
/// each, to scale a consumer group or restart the relay on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workers(Vec<Worker>);

impl Workers {
    pub fn all() -> Self {
        Workers(Worker::ALL.to_vec())
    }

    pub fn runs(&self, worker: Worker) -> bool {
        self.0.contains(&worker)
    }

    /// `all`, `none`, or names separated by commas.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let names: Vec<&str> = raw.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
        let known = || Worker::ALL.iter().map(|w| w.name()).collect::<Vec<_>>().join(", ");
        match names.as_slice() {
            ["all"] => return Ok(Self::all()),
            ["none"] => return Ok(Workers(Vec::new())),
            [] => {
                return Err(ConfigError {
                    var: "MERCATO_WORKERS",
                    problem: format!("names no worker ({raw:?})"),
                    hint: "use all, none (the API alone), or a comma-separated list".into(),
                })
            }
            _ => {}
        }
        let mut workers = Vec::new();
        for name in names {
            let Some(worker) = Worker::ALL.into_iter().find(|w| w.name() == name) else {
                return Err(ConfigError {
                    var: "MERCATO_WORKERS",
                    problem: format!("names an unknown worker {name:?}"),
                    hint: format!("use all, none, or a comma-separated list of: {}", known()),
                });
            };
            if !workers.contains(&worker) {
                workers.push(worker);
            }
        }
        Ok(Workers(workers))
    }
}

impl std::fmt::Display for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.0.iter().map(|w| w.name()).collect();
        f.write_str(&names.join(","))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A configuration problem: which variable, what is wrong, how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{var} {problem} ({hint})")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
    pub hint: String,
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/mercato";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Reads through `lookup` so tests can supply variables without touching
    /// the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str, default: &str| lookup(key).unwrap_or_else(|| default.to_owned());

        let database_url = get("DATABASE_URL", DEFAULT_DATABASE_URL);
        let database = parse_database_url(&database_url)?;
        let redis_url = get("REDIS_URL", DEFAULT_REDIS_URL);
        validate_redis_url(&redis_url)?;

        let addr_raw = lookup("MERCATO_ADDR")
            .or_else(|| lookup("LEPTOS_SITE_ADDR"))
            .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
        let addr = SocketAddr::from_str(addr_raw.trim()).map_err(|e| ConfigError {
            var: "MERCATO_ADDR",
            problem: format!("is not a socket address ({addr_raw:?}: {e})"),
            hint: "use host:port, e.g. 127.0.0.1:3000".into(),
        })?;

        let log_format = match get("MERCATO_LOG_FORMAT", "pretty").to_ascii_lowercase().as_str() {
            "pretty" | "text" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError {
                    var: "MERCATO_LOG_FORMAT",
                    problem: format!("has unknown value {other:?}"),
                    hint: "use pretty or json".into(),
                })
            }
        };

        let leptos = LeptosOptions::builder()
            .output_name(get("LEPTOS_OUTPUT_NAME", "mercato"))
            .site_root(get("LEPTOS_SITE_ROOT", "target/site"))
            .site_pkg_dir(get("LEPTOS_SITE_PKG_DIR", "pkg"))
            .site_addr(addr)
            .reload_port(parse_num(&lookup, "LEPTOS_RELOAD_PORT", 3001u32)?)
            .build();

        Ok(Self {
            database: Secret::new(database),
            database_max_connections: parse_num(&lookup, "MERCATO_DB_MAX_CONNECTIONS", 20u32)?,
            redis_url: Secret::new(redis_url),
            redis_prefix: get("MERCATO_REDIS_PREFIX", "mercato:"),
            addr,
            leptos,
            log_format,
            shutdown_grace: Duration::from_secs(parse_num(&lookup, "MERCATO_SHUTDOWN_GRACE_SECS", 30u64)?),
            search_sync_interval: Duration::from_secs(parse_num(&lookup, "MERCATO_SEARCH_SYNC_SECS", 5u64)?.max(1)),
            request_timeout: Duration::from_secs(parse_num(&lookup, "MERCATO_REQUEST_TIMEOUT_SECS", 30u64)?),
            max_body_bytes: parse_num(&lookup, "MERCATO_MAX_BODY_BYTES", 1024 * 1024usize)?,
            max_in_flight: parse_num(&lookup, "MERCATO_MAX_IN_FLIGHT", 1024usize)?.max(1),
            public_url: parse_public_url(lookup("MERCATO_PUBLIC_URL"), addr)?,
            sitemap_page_size: parse_num(&lookup, "MERCATO_SITEMAP_PAGE_SIZE", shop::catalog::sitemap::MAX_PAGE)?
                .clamp(1, shop::catalog::sitemap::MAX_PAGE),
            cart_adds_per_sec: parse_num(&lookup, "MERCATO_CART_ADDS_PER_SEC", 5u32)?.max(1),
            cors_origins: parse_origins(&get("MERCATO_CORS_ORIGINS", "tauri://localhost"))?,
            meili_url: parse_meili_url(lookup("MEILI_URL"))?,
            search_dir: lookup("MERCATO_SEARCH_DIR").map(|d| std::path::PathBuf::from(d.trim())),
            search: shop::search::Settings {
                result_cache: match get("MERCATO_SEARCH_CACHE", "on").to_ascii_lowercase().as_str() {
                    "on" | "true" | "1" => true,
                    "off" | "false" | "0" => false,
                    other => {
                        return Err(ConfigError {
                            var: "MERCATO_SEARCH_CACHE",
                            problem: format!("has unknown value {other:?}"),
                            hint: "use on or off".into(),
                        })
                    }
                },
            },
            meili_key: lookup("MEILI_KEY").or_else(|| lookup("MEILI_MASTER_KEY")).filter(|k| !k.is_empty()).map(Secret::new),
            reservation_ttl: Duration::from_secs(parse_num(&lookup, "MERCATO_RESERVATION_TTL_SECS", 600u64)?.max(1)),
            sweep_interval: Duration::from_millis(parse_num(&lookup, "MERCATO_SWEEP_INTERVAL_MS", 1000u64)?.max(10)),
            reconcile_interval: match parse_num(&lookup, "MERCATO_RECONCILE_SECS", 300u64)? {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            redis_breaker_cooldown: Duration::from_millis(parse_num(&lookup, "MERCATO_REDIS_BREAKER_COOLDOWN_MS", 1000u64)?.max(10)),
            checkout_recovery_after: Duration::from_secs(parse_num(&lookup, "MERCATO_CHECKOUT_RECOVERY_SECS", 60u64)?),
            event_partitions: parse_num(&lookup, "MERCATO_EVENT_PARTITIONS", 8u32)?.clamp(1, 1024),
            relay_interval: Duration::from_millis(parse_num(&lookup, "MERCATO_RELAY_INTERVAL_MS", 100u64)?.max(5)),
            relay_batch: parse_num(&lookup, "MERCATO_RELAY_BATCH", 500usize)?.clamp(1, 10_000),
            consumer_claim_idle: Duration::from_millis(parse_num(&lookup, "MERCATO_CONSUMER_CLAIM_IDLE_MS", 30_000u64)?.max(10)),
            fulfilment: shop::fulfilment::Settings {
                pick_delay: Duration::from_millis(parse_num(&lookup, "MERCATO_WAREHOUSE_PICK_MS", 60 * 60 * 1000u64)?),
                ship_delay: Duration::from_millis(parse_num(&lookup, "MERCATO_WAREHOUSE_SHIP_MS", 4 * 60 * 60 * 1000u64)?),
                deliver_delay: Duration::from_millis(parse_num(&lookup, "MERCATO_WAREHOUSE_DELIVER_MS", 2 * 24 * 60 * 60 * 1000u64)?),
                poll_interval: Duration::from_millis(parse_num(&lookup, "MERCATO_WAREHOUSE_POLL_MS", 1000u64)?.max(10)),
                capture_after: Duration::from_secs(parse_num(&lookup, "MERCATO_CAPTURE_AFTER_SECS", 6 * 24 * 60 * 60u64)?),
                ..shop::fulfilment::Settings::default()
            },
            flash: shop::flash::Settings {
                preload_lead: Duration::from_secs(parse_num(&lookup, "MERCATO_FLASH_PRELOAD_LEAD_SECS", 300u64)?),
                pay_window: Duration::from_secs(parse_num(&lookup, "MERCATO_FLASH_PAY_WINDOW_SECS", 180u64)?.max(1)),
                wait: Duration::from_secs(parse_num(&lookup, "MERCATO_FLASH_WAIT_SECS", 30u64)?),
                requests_per_sec: parse_num(&lookup, "MERCATO_FLASH_REQUESTS_PER_SEC", 5u32)?.max(1),
                tick: Duration::from_millis(parse_num(&lookup, "MERCATO_FLASH_TICK_MS", 250u64)?.max(10)),
                confirm_concurrency: parse_num(&lookup, "MERCATO_FLASH_CONFIRM_CONCURRENCY", 8usize)?.max(1),
                ..shop::flash::Settings::default()
            },
            // A secret key and no provider named: that key is for Stripe
            // itself. Neither: localstripe, as the README's commands start it.
            stripe_api_base: parse_stripe_base(&get(
                "STRIPE_API_BASE",
                if lookup("STRIPE_SECRET_KEY").is_some() { STRIPE_API } else { "http://127.0.0.1:8420" },
            ))?,
            stripe_secret_key: Secret::new(get("STRIPE_SECRET_KEY", "sk_test_mercato")),
            mail: parse_mail(
                &get("SMTP_URL", shop::notifications::DEFAULT_SMTP_URL),
                &get("MERCATO_MAIL_FROM", shop::notifications::DEFAULT_FROM),
            )?,
            workers: match lookup("MERCATO_WORKERS") {
                Some(raw) => Workers::parse(&raw)?,
                None => Workers::all(),
            },
        })
    }

    pub fn payment_settings(&self) -> shop::payments::Settings {
        shop::payments::Settings {
            api_base: self.stripe_api_base.clone(),
            secret_key: self.stripe_secret_key.clone(),
            ..shop::payments::Settings::default()
        }
    }

    pub fn inventory_settings(&self) -> shop::inventory::Settings {
        shop::inventory::Settings {
            reservation_ttl: self.reservation_ttl,
            breaker_cooldown: self.redis_breaker_cooldown,
            ..shop::inventory::Settings::default()
        }
    }

    /// `host:port/database` without credentials, for messages and logs.
    pub fn database_target(&self) -> String {
        format!(
            "{}:{}/{}",
            self.database.expose().get_host(),
            self.database.expose().get_port(),
            self.database.expose().get_database().unwrap_or("postgres")
        )
    }

    /// The Redis URL without credentials, for messages and logs.
    pub fn redis_target(&self) -> String {
        redact_url(self.redis_url.expose())
    }
}

fn parse_database_url(raw: &str) -> Result<PgConnectOptions, ConfigError> {
    if !(raw.starts_with("postgres://") || raw.starts_with("postgresql://")) {
        return Err(ConfigError {
            var: "DATABASE_URL",
            problem: format!("is not a PostgreSQL URL ({:?})", redact_url(raw)),
            hint: format!("expected e.g. {DEFAULT_DATABASE_URL}"),
        });
    }
    PgConnectOptions::from_str(raw).map_err(|e| ConfigError {
        var: "DATABASE_URL",
        problem: format!("is malformed ({e})"),
        hint: format!("expected e.g. {DEFAULT_DATABASE_URL}"),
    })
}

/// A comma-separated list of origins such as `tauri://localhost`.
fn parse_origins(raw: &str) -> Result<Vec<axum::http::HeaderValue>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|origin| {
            let valid = origin.contains("://") && !origin.ends_with('/') && origin != "*";
            valid
                .then(|| axum::http::HeaderValue::from_str(origin).ok())
                .flatten()
                .ok_or_else(|| ConfigError {
                    var: "MERCATO_CORS_ORIGINS",
                    problem: format!("`{origin}` is not an origin"),
                    hint: "expected scheme://host[:port] without a path, e.g. tauri://localhost; `*` is not allowed".into(),
                })
        })
        .collect()
}

/// Stripe's own API, spoken over TLS (rustls).
pub const STRIPE_API: &str = "https://api.stripe.com";

fn parse_stripe_base(raw: &str) -> Result<String, ConfigError> {
    if raw.starts_with("http://") || raw.starts_with("https://") {
        return Ok(raw.trim_end_matches('/').to_owned());
    }
    Err(ConfigError {
        var: "STRIPE_API_BASE",
        problem: format!("is not an http(s) URL: {raw:?}"),
        hint: "use https://api.stripe.com, or http://127.0.0.1:8420 for localstripe".into(),
    })
}

/// Checked here so a typo stops the server at startup; an SMTP server that
/// does not answer is not a startup error (emails wait and retry).
fn parse_mail(smtp_url: &str, from: &str) -> Result<shop::notifications::Settings, ConfigError> {
    if let Err(problem) = shop::notifications::Settings::new(smtp_url, "Mercato <orders@mercato.local>") {
        return Err(ConfigError { var: "SMTP_URL", problem, hint: "use e.g. smtp://127.0.0.1:1025 (maildev) or smtps://user:pass@host:465".into() });
    }
    shop::notifications::Settings::new(smtp_url, from).map_err(|problem| ConfigError {
        var: "MERCATO_MAIL_FROM",
        problem,
        hint: "use e.g. Mercato <orders@example.com>".into(),
    })
}

fn parse_meili_url(raw: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(raw) = raw.map(|r| r.trim().trim_end_matches('/').to_owned()).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if !(raw.starts_with("http://") || raw.starts_with("https://")) || raw.len() < 10 {
        return Err(ConfigError {
            var: "MEILI_URL",
            problem: format!("`{}` is not an http(s) URL", redact_url(&raw)),
            hint: "expected e.g. http://127.0.0.1:7700, or leave it unset for the embedded index".into(),
        });
    }
    Ok(Some(raw))
}

/// An origin: `http(s)://host[:port]`, nothing after it. Unset: the
/// address the server listens on (right for a shop run on one machine).
fn parse_public_url(raw: Option<String>, addr: SocketAddr) -> Result<String, ConfigError> {
    let Some(raw) = raw.map(|r| r.trim().trim_end_matches('/').to_owned()).filter(|r| !r.is_empty()) else {
        let host = if addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { addr.ip().to_string() };
        return Ok(format!("http://{host}:{}", addr.port()));
    };
    let host = raw.strip_prefix("https://").or_else(|| raw.strip_prefix("http://"));
    match host {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ', '@']) => Ok(raw),
        _ => Err(ConfigError {
            var: "MERCATO_PUBLIC_URL",
            problem: format!("`{raw}` is not an origin"),
            hint: "use scheme and host only, e.g. https://shop.example.com".into(),
        }),
    }
}

fn validate_redis_url(raw: &str) -> Result<(), ConfigError> {
    redis::Client::open(raw).map(drop).map_err(|e| ConfigError {
        var: "REDIS_URL",
        problem: format!("is malformed ({:?}: {e})", redact_url(raw)),
        hint: format!("expected e.g. {DEFAULT_REDIS_URL}"),
    })
}

fn parse_num<T: FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match lookup(var) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e| ConfigError {
            var,
            problem: format!("is not a valid number ({raw:?}: {e})"),
            hint: "unset it to use the default".into(),
        }),
    }
}

/// Drops any `user:password@` from a URL so secrets never reach logs.
pub fn redact_url(raw: &str) -> String {
    match (raw.find("://"), raw.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://{}", &raw[..scheme_end], &raw[at + 1..])
        }
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_point_at_local_services() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.database_target(), "127.0.0.1:5432/mercato");
        assert_eq!(c.redis_target(), "redis://127.0.0.1:6379");
        assert_eq!(c.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.redis_prefix, "mercato:");
    }

    #[test]
    fn malformed_urls_name_the_variable() {
        let err = config(&[("DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
        assert!(err.to_string().contains("not a PostgreSQL URL"), "{err}");

        let err = config(&[("DATABASE_URL", "postgres://u@h:notaport/db")]).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");

        let err = config(&[("REDIS_URL", "http://nope")]).unwrap_err();
        assert_eq!(err.var, "REDIS_URL");

        let err = config(&[("MERCATO_CORS_ORIGINS", "*")]).unwrap_err();
        assert_eq!(err.var, "MERCATO_CORS_ORIGINS");
        assert_eq!(config(&[]).unwrap().cors_origins, vec!["tauri://localhost"]);

        let err = config(&[("MEILI_URL", "127.0.0.1:7700")]).unwrap_err();
        assert_eq!(err.var, "MEILI_URL");
        assert_eq!(config(&[("MEILI_URL", "")]).unwrap().meili_url, None);
        assert_eq!(
            config(&[("MEILI_URL", "http://127.0.0.1:7700/")]).unwrap().meili_url.as_deref(),
            Some("http://127.0.0.1:7700")
        );

        // Only a secret key: Stripe itself, over TLS. Nothing: localstripe.
        assert_eq!(config(&[("STRIPE_SECRET_KEY", "sk_test_x")]).unwrap().stripe_api_base, STRIPE_API);
        assert_eq!(config(&[]).unwrap().stripe_api_base, "http://127.0.0.1:8420");
        assert_eq!(config(&[("STRIPE_API_BASE", "https://api.stripe.com/")]).unwrap().stripe_api_base, STRIPE_API);
        assert_eq!(config(&[("STRIPE_API_BASE", "http://127.0.0.1:8420/")]).unwrap().stripe_api_base, "http://127.0.0.1:8420");

        let err = config(&[("SMTP_URL", "127.0.0.1:1025")]).unwrap_err();
        assert_eq!(err.var, "SMTP_URL");
        let err = config(&[("MERCATO_MAIL_FROM", "nobody")]).unwrap_err();
        assert_eq!(err.var, "MERCATO_MAIL_FROM");
        assert_eq!(config(&[]).unwrap().mail.smtp_url.expose(), "smtp://127.0.0.1:1025");

        assert_eq!(config(&[]).unwrap().public_url, "http://127.0.0.1:3000");
        assert_eq!(config(&[("MERCATO_ADDR", "0.0.0.0:8080")]).unwrap().public_url, "http://127.0.0.1:8080");
        assert_eq!(config(&[("MERCATO_PUBLIC_URL", "https://shop.example/")]).unwrap().public_url, "https://shop.example");
        for bad in ["shop.example", "https://shop.example/store", "https://", "ftp://shop.example", "https://a.example?x=1"] {
            assert_eq!(config(&[("MERCATO_PUBLIC_URL", bad)]).unwrap_err().var, "MERCATO_PUBLIC_URL", "{bad}");
        }

        let err = config(&[("MERCATO_ADDR", "localhost")]).unwrap_err();
        assert_eq!(err.var, "MERCATO_ADDR");

        let err = config(&[("MERCATO_MAX_BODY_BYTES", "lots")]).unwrap_err();
        assert_eq!(err.var, "MERCATO_MAX_BODY_BYTES");
    }

    #[test]
    fn workers_default_to_all_and_take_a_list_of_known_names() {
        let all = config(&[]).unwrap().workers;
        assert!(Worker::ALL.iter().all(|w| all.runs(*w)));
        assert_eq!(config(&[("MERCATO_WORKERS", "all")]).unwrap().workers, all);

        let none = config(&[("MERCATO_WORKERS", "none")]).unwrap().workers;
        assert!(Worker::ALL.iter().all(|w| !none.runs(*w)));
        assert_eq!(none.to_string(), "none");

        let some = config(&[("MERCATO_WORKERS", " relay, search-indexer ,relay")]).unwrap().workers;
        assert!(some.runs(Worker::Relay) && some.runs(Worker::SearchIndexer));
        assert!(!some.runs(Worker::Notifications) && !some.runs(Worker::Warehouse));
        assert_eq!(some.to_string(), "relay,search-indexer");

        let err = config(&[("MERCATO_WORKERS", "relay,mailer")]).unwrap_err();
        assert_eq!(err.var, "MERCATO_WORKERS");
        assert!(err.to_string().contains("\"mailer\"") && err.to_string().contains("notifications"), "{err}");
        // `none` or `all` mixed into a list is a typo, not a wish.
        assert_eq!(config(&[("MERCATO_WORKERS", "relay,none")]).unwrap_err().var, "MERCATO_WORKERS");
        assert_eq!(config(&[("MERCATO_WORKERS", ",")]).unwrap_err().var, "MERCATO_WORKERS");
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let c = config(&[
            ("DATABASE_URL", "postgres://app:pg-hunter2@db:5432/mercato"),
            ("REDIS_URL", "redis://:redis-hunter2@cache:6379/0"),
            ("STRIPE_SECRET_KEY", "sk_live_stripe-hunter2"),
            ("MEILI_URL", "http://127.0.0.1:7700"),
            ("MEILI_KEY", "meili-hunter2"),
            ("SMTP_URL", "smtps://mailer:smtp-hunter2@mail.example.com:465"),
        ])
        .unwrap();
        for printed in [format!("{c:?}"), format!("{c:#?}")] {
            assert!(!printed.contains("hunter2"), "{printed}");
            assert!(printed.contains("[redacted]"));
        }
        // Still there for the code that needs them.
        assert_eq!(c.database.expose().get_host(), "db");
        assert_eq!(c.stripe_secret_key.expose(), "sk_live_stripe-hunter2");
        assert_eq!(c.meili_key.as_ref().map(|k| k.expose().as_str()), Some("meili-hunter2"));
        assert_eq!(c.redis_target(), "redis://cache:6379/0");
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(redact_url("redis://:hunter2@cache:6379/0"), "redis://cache:6379/0");
        assert_eq!(redact_url("postgres://app:pw@db/mercato"), "postgres://db/mercato");
        let err = config(&[("DATABASE_URL", "mysql://root:hunter2@db")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

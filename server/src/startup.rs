//! Building and running the application: connect, bind, serve, shut down.
//! `main` and the integration tests go through the same `Application::build`.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::{Config, Worker};
use crate::http;
use crate::http::metrics::Metrics;
use crate::state::AppState;

/// Why the server could not start, in one line that says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot connect to PostgreSQL at {target} (DATABASE_URL): {reason}. Start PostgreSQL or point DATABASE_URL at a running server")]
    Postgres { target: String, reason: String },
    #[error("cannot run database migrations on {target}: {reason}")]
    Migrate { target: String, reason: String },
    #[error("cannot connect to Redis at {target} (REDIS_URL): {reason}. Start Redis or point REDIS_URL at a running server")]
    Redis { target: String, reason: String },
    #[error("cannot use Meilisearch at {url} (MEILI_URL): {reason}. Start Meilisearch, fix MEILI_URL/MEILI_KEY, or unset MEILI_URL for the embedded index")]
    Meili { url: String, reason: String },
    #[error("cannot build the search index: {reason}")]
    SearchIndex { reason: String },
    #[error("cannot listen on {addr} (MERCATO_ADDR): {reason}. Stop whatever uses that port or choose another address")]
    Bind { addr: SocketAddr, reason: String },
}

/// Connects to PostgreSQL and Redis with clear errors.
pub async fn connect_shop(config: &Config) -> Result<shop::Shop, StartupError> {
    let db = shop::db::connect(config.database.expose().clone(), config.database_max_connections)
        .await
        .map_err(|e| StartupError::Postgres { target: config.database_target(), reason: one_line(&e) })?;
    let kv = shop::kv::Kv::connect(config.redis_url.expose(), config.redis_prefix.clone())
        .await
        .map_err(|e| StartupError::Redis { target: config.redis_target(), reason: one_line(&e) })?;
    let search: std::sync::Arc<dyn shop::search::SearchBackend> = match &config.meili_url {
        Some(url) => std::sync::Arc::new(
            shop::search::meili::MeiliBackend::connect(url, config.meili_key.as_ref().map(|k| k.expose().as_str()))
                .await
                .map_err(|e| StartupError::Meili { url: crate::config::redact_url(url), reason: one_line(&error_chain(&e)) })?,
        ),
        None => std::sync::Arc::new(shop::search::tantivy::TantivyBackend::new()),
    };
    Ok(shop::Shop::with_search(db, kv, search).with_inventory_settings(config.inventory_settings())
        .with_payment_settings(config.payment_settings())
        .with_fulfilment_settings(config.fulfilment.clone())
        .with_flash_settings(config.flash.clone())
        .with_search_settings(config.search.clone()))
}

/// Makes the search index current (reopened and caught up, or built from
/// PostgreSQL), so search answers from the first request.
pub async fn build_search_index(shop: &shop::Shop) -> Result<shop::search::StartReport, StartupError> {
    shop.search().start().await.map_err(|e| StartupError::SearchIndex { reason: one_line(&error_chain(&e)) })
}

/// Keeps the embedded index on disk under `MERCATO_SEARCH_DIR`, when set.
/// Not fatal: an index that cannot be opened there (another process of the
/// same shop holds it, the disk refuses) is built in memory instead.
async fn keep_index_on_disk(shop: &mut shop::Shop, config: &Config) -> Result<(), StartupError> {
    let (Some(dir), None) = (&config.search_dir, &config.meili_url) else { return Ok(()) };
    let installation = shop::db::installation(&shop.db)
        .await
        .map_err(|e| StartupError::SearchIndex { reason: one_line(&e) })?;
    let dir = dir.clone();
    match tokio::task::spawn_blocking(move || shop::search::tantivy::TantivyBackend::open_in(&dir, installation)).await {
        Ok(Ok(backend)) => shop.search = std::sync::Arc::new(backend),
        Ok(Err(err)) => tracing::warn!(error = %err, "search index not kept on disk (MERCATO_SEARCH_DIR); building it in memory"),
        Err(err) => tracing::warn!(error = %err, "search index not kept on disk; building it in memory"),
    }
    Ok(())
}

/// An error with its causes, for startup messages and dead letters (never
/// sent to clients).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

pub async fn migrate(shop: &shop::Shop, config: &Config) -> Result<(), StartupError> {
    shop::db::migrate(&shop.db)
        .await
        .map_err(|e| StartupError::Migrate { target: config.database_target(), reason: one_line(&e) })
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// When the search index was rebuilt from PostgreSQL, less a margin for
    /// clock skew with the bus: this process's search indexer starts there.
    index_built_at: chrono::DateTime<chrono::Utc>,
}

impl Application {
    /// Connects, migrates and binds (port 0 picks a free port).
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let mut shop = connect_shop(&config).await?;
        migrate(&shop, &config).await?;
        keep_index_on_disk(&mut shop, &config).await?;
        Self::with_shop(config, shop).await
    }

    /// Binds around an already connected shop (tests hand in their own database).
    pub async fn with_shop(mut config: Config, shop: shop::Shop) -> Result<Self, StartupError> {
        let index_built_at = build_search_index(&shop).await?.complete_up_to - chrono::Duration::seconds(5);
        // Stock counters are loaded right after startup, so the first
        // minute's shoppers (or a flash sale's opening second) rarely pay
        // for cold loads; but in the background: at a million products it
        // takes half a minute, and counters also load on demand, so serving
        // need not wait for it.
        let preloading = shop.clone();
        tokio::spawn(async move {
            match preloading.inventory().preload().await {
                Ok(loaded) => tracing::info!(loaded, "stock counters loaded"),
                Err(err) => tracing::warn!(error = %err, "stock counters not preloaded; they will load on demand"),
            }
        });
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|e| StartupError::Bind { addr: config.addr, reason: one_line(&e) })?;
        let bound = listener.local_addr().map_err(|e| StartupError::Bind { addr: config.addr, reason: one_line(&e) })?;
        config.addr = bound;
        config.leptos.site_addr = bound;
        let state = AppState::new(crate::state::Parts {
            shop,
            leptos: config.leptos.clone(),
            metrics: Arc::new(Metrics::new()),
            admission: crate::http::admission::Admission::new(config.max_in_flight),
            config: Arc::new(config),
        });
        Ok(Self { listener, state, index_built_at })
    }

    /// The shop this application serves (a test reads its state through it).
    pub fn shop(&self) -> &shop::Shop {
        &self.state.shop
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.state.config.addr
    }

    /// Serves until `shutdown` resolves, then stops accepting connections and
    /// lets in-flight requests finish, for at most the configured grace period.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let grace = self.state.config.shutdown_grace;
        let config = self.state.config.clone();
        let tasks = self.state.shop.tasks.clone();
        let shop = &self.state.shop;
        let runs = |worker: Worker| config.workers.runs(worker);
        tracing::info!(workers = %config.workers, "background workers");
        let consumer_settings = || crate::workers::consumer::Settings { claim_idle: config.consumer_claim_idle, ..Default::default() };
        let bus = || crate::workers::relay::bus(shop, config.event_partitions);
        let sync = (runs(Worker::SearchSync) && shop.search.process_local())
            .then(|| tokio::spawn(crate::workers::search_sync::run(shop.clone(), config.search_sync_interval)));
        let _stop_sync = AbortOnDrop(sync);
        let _stop_sweeper =
            AbortOnDrop(runs(Worker::Sweeper).then(|| tokio::spawn(crate::workers::inventory::sweep(shop.clone(), config.sweep_interval))));
        let _stop_recovery = AbortOnDrop(runs(Worker::CheckoutRecovery).then(|| {
            tokio::spawn(crate::workers::checkout::recover(shop.clone(), config.sweep_interval, config.checkout_recovery_after))
        }));
        let _stop_reconcile = AbortOnDrop(
            config
                .reconcile_interval
                .filter(|_| runs(Worker::Reconcile))
                .map(|every| tokio::spawn(crate::workers::inventory::reconcile(shop.clone(), every))),
        );
        let _stop_relay = AbortOnDrop(runs(Worker::Relay).then(|| {
            // Crash tests: MERCATO_FAULT_POINT=relay_after_publish aborts the
            // process between publishing a round and marking it, the few
            // milliseconds a random kill rarely lands in.
            let relay = shop::events::outbox::Relay::new(shop.db.clone(), bus(), config.relay_batch)
                .with_fault_hook(Arc::new(|| Box::pin(async { shop::checkout::fault::point("relay_after_publish") })));
            tokio::spawn(crate::workers::relay::run(relay, config.relay_interval, self.state.metrics.clone()))
        }));
        // Customer emails: a mail server that is away fails the handler's
        // tries (retried, then dead-lettered), never the process.
        let _stop_notifications = AbortOnDrop(if runs(Worker::Notifications) {
            match shop::notifications::Notifier::new(shop.clone(), &config.mail) {
                Ok(notifier) => Some(tokio::spawn(crate::workers::notifications::consumer(bus(), notifier, consumer_settings()).run())),
                Err(err) => {
                    tracing::error!(error = %err, "customer emails are off: the mail settings cannot be used");
                    None
                }
            }
        } else {
            None
        });
        // The warehouse: its consumer makes shipment rows from order events;
        // its worker (every process that runs the warehouse, SKIP LOCKED)
        // takes the due steps.
        let _stop_warehouse = AbortOnDrop(runs(Worker::Warehouse).then(|| {
            tokio::spawn(
                crate::workers::consumer::Consumer::new(
                    bus(),
                    shop::events::Topic::Orders,
                    shop::fulfilment::CONSUMER,
                    crate::workers::fulfilment::Warehouse(shop.clone()),
                    consumer_settings(),
                )
                .run(),
            )
        }));
        let _stop_fulfilment = AbortOnDrop(runs(Worker::Warehouse).then(|| tokio::spawn(crate::workers::fulfilment::run(shop.clone()))));
        // Seller analytics: one shared group, figures in PostgreSQL.
        let _stop_analytics = AbortOnDrop(
            runs(Worker::Analytics).then(|| tokio::spawn(crate::workers::analytics::consumer(bus(), shop.clone(), consumer_settings()).run())),
        );
        // The search indexer: stock moved by orders re-indexes their
        // products; with the embedded index, a group of this process's own
        // (workers::search_indexer says why).
        let _stop_search_indexer = AbortOnDrop(runs(Worker::SearchIndexer).then(|| {
            tokio::spawn(crate::workers::search_indexer::consumer(bus(), shop.clone(), self.index_built_at, consumer_settings()).run())
        }));
        // Flash sales' schedule, payment-window sweeper and live sampler.
        let _stop_flash = AbortOnDrop(runs(Worker::Flash).then(|| tokio::spawn(crate::workers::flash::run(shop.clone()))));
        let waiting = shop.clone();
        let router = http::router(self.state);
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(self.listener, router.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!(grace_secs = grace.as_secs(), "shutting down: finishing in-flight requests");
            // Parked long polls answer now rather than at the end of their wait.
            waiting.flash().stop_waiting();
            let _ = stopping_tx.send(());
        });
        // Requests first, then the work they started that outlives them
        // (a checkout whose caller timed out is still paying): exiting
        // under it would leave an authorization to recovery, a minute on.
        let drained = async {
            let result = server.into_future().await;
            tasks.close();
            if !tasks.is_empty() {
                tracing::info!(tasks = tasks.len(), "waiting for checkouts still running");
            }
            tasks.wait().await;
            result
        };
        tokio::select! {
            result = drained => result,
            _ = async {
                let _ = stopping_rx.await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(tasks = tasks.len(), "grace period over: dropping requests and checkouts still in flight");
                Ok(())
            }
        }
    }
}

/// Stops a background worker when the server stops, however it stops.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// Errors from drivers can span lines; startup messages must not.
fn one_line(err: &dyn std::fmt::Display) -> String {
    err.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

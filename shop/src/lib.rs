//! The business: every service of the design lives in its own module and owns
//! its tables and Redis keys. The server (HTTP) and the storefront's server
//! functions both call these services, so both behave the same.

pub mod accounts;
pub mod analytics;
pub mod breaker;
pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod db;
pub mod error;
pub mod events;
pub mod flash;
pub mod fulfilment;
pub mod health;
pub mod idempotency;
pub mod inventory;
pub mod kv;
pub mod notifications;
pub mod orders;
pub mod parking;
pub mod payments;
pub mod ratelimit;
pub mod reviews;
pub mod search;
pub mod secret;
pub mod stats;

pub use error::{Error, Result};

use std::sync::Arc;

use sqlx::PgPool;

/// Handles to the shop's backing stores, behind one `Arc`: a clone (one
/// per request and per server function, one per checkout task) is one
/// count, not a dozen, and no string copied. Changing a handle (the
/// `with_*` builders, a test swapping the search backend) copies the
/// handles first, so clones made before keep theirs, as they did when the
/// handles were held by value.
#[derive(Clone)]
pub struct Shop(Arc<Handles>);

impl std::ops::Deref for Shop {
    type Target = Handles;

    fn deref(&self) -> &Handles {
        &self.0
    }
}

impl std::ops::DerefMut for Shop {
    fn deref_mut(&mut self) -> &mut Handles {
        Arc::make_mut(&mut self.0)
    }
}

#[derive(Clone)]
pub struct Handles {
    pub db: PgPool,
    pub kv: kv::Kv,
    pub search: Arc<dyn search::SearchBackend>,
    pub search_settings: Arc<search::Settings>,
    pub stats: Arc<stats::Stats>,
    /// Inventory settings and the Redis circuit breaker of this process.
    pub inventory_rt: Arc<inventory::Runtime>,
    /// The payment provider's client and circuit breaker.
    pub payments_rt: Arc<payments::Runtime>,
    /// Sign-in limits and this process's bounded Argon2 slots.
    pub accounts_rt: Arc<accounts::Runtime>,
    /// The simulated warehouse's delays and the early-capture age.
    pub fulfilment_settings: Arc<fulfilment::Settings>,
    /// Flash sales' settings and this process's confirm queues.
    pub flash_rt: Arc<flash::Runtime>,
    /// This process's running checkouts, which retries of their keys wait on.
    pub checkouts: Arc<checkout::Running>,
    /// The thread flash sale orders commit on (`checkout::lane`).
    pub commit_lane: Arc<checkout::Lane>,
    /// Work that runs to its end even when its caller stops waiting (a
    /// checkout past its request's timeout): the server's shutdown waits
    /// for it, within its grace period, before the process exits.
    pub tasks: tokio_util::task::TaskTracker,
}

impl Shop {
    /// A shop with the embedded (Tantivy) search index, empty until
    /// [`search::Search::rebuild`] fills it.
    pub fn new(db: PgPool, kv: kv::Kv) -> Self {
        Self::with_search(db, kv, Arc::new(search::tantivy::TantivyBackend::new()))
    }

    pub fn with_search(db: PgPool, kv: kv::Kv, search: Arc<dyn search::SearchBackend>) -> Self {
        Shop(Arc::new(Handles {
            db,
            kv,
            search,
            search_settings: Arc::new(search::Settings::default()),
            stats: Arc::new(stats::Stats::default()),
            inventory_rt: Arc::new(inventory::Runtime::new(inventory::Settings::default())),
            payments_rt: Arc::new(payments::Runtime::new(payments::Settings::default())),
            accounts_rt: Arc::new(accounts::Runtime::new(accounts::Settings::default())),
            fulfilment_settings: Arc::new(fulfilment::Settings::default()),
            flash_rt: Arc::new(flash::Runtime::new(flash::Settings::default())),
            checkouts: Arc::default(),
            commit_lane: Arc::default(),
            tasks: tokio_util::task::TaskTracker::new(),
        }))
    }

    pub fn with_search_settings(mut self, settings: search::Settings) -> Self {
        self.search_settings = Arc::new(settings);
        self
    }

    /// The same shop with other sign-in limits or Argon2 budget.
    pub fn with_account_settings(mut self, settings: accounts::Settings) -> Self {
        self.accounts_rt = Arc::new(accounts::Runtime::new(settings));
        self
    }

    /// The same shop paying through another provider endpoint or key.
    pub fn with_payment_settings(mut self, settings: payments::Settings) -> Self {
        self.payments_rt = Arc::new(payments::Runtime::new(settings));
        self
    }

    /// The same shop with other inventory settings (reservation TTL, breaker).
    pub fn with_inventory_settings(mut self, settings: inventory::Settings) -> Self {
        self.inventory_rt = Arc::new(inventory::Runtime::new(settings));
        self
    }

    /// The same shop with other fulfilment delays (tests use milliseconds).
    pub fn with_fulfilment_settings(mut self, settings: fulfilment::Settings) -> Self {
        self.fulfilment_settings = Arc::new(settings);
        self
    }

    /// The same shop with other flash-sale settings (tests use short windows).
    pub fn with_flash_settings(mut self, settings: flash::Settings) -> Self {
        self.flash_rt = Arc::new(flash::Runtime::new(settings));
        self
    }

    pub fn flash(&self) -> flash::Flash<'_> {
        flash::Flash::new(self)
    }

    pub fn fulfilment(&self) -> fulfilment::Fulfilment<'_> {
        fulfilment::Fulfilment::new(self)
    }

    pub fn analytics(&self) -> analytics::Analytics<'_> {
        analytics::Analytics::new(self)
    }

    pub fn accounts(&self) -> accounts::Accounts<'_> {
        accounts::Accounts::new(self)
    }

    pub fn cart(&self) -> cart::Cart<'_> {
        cart::Cart::new(self)
    }

    pub fn ratelimit(&self) -> ratelimit::RateLimit<'_> {
        ratelimit::RateLimit::new(self)
    }

    pub fn catalog(&self) -> catalog::Catalog<'_> {
        catalog::Catalog::new(self)
    }

    pub fn checkout(&self) -> checkout::Checkout<'_> {
        checkout::Checkout::new(self)
    }

    pub fn inventory(&self) -> inventory::Inventory<'_> {
        inventory::Inventory::new(self)
    }

    pub fn orders(&self) -> orders::Orders<'_> {
        orders::Orders::new(self)
    }

    pub fn payments(&self) -> payments::Payments<'_> {
        payments::Payments::new(&self.payments_rt)
    }

    pub fn reviews(&self) -> reviews::Reviews<'_> {
        reviews::Reviews::new(self)
    }

    pub fn search(&self) -> search::Search<'_> {
        search::Search::new(self)
    }
}

//! Search: full text with typo tolerance, prefix search-as-you-type, filters,
//! facet counts and sorting, behind one [`SearchBackend`] trait with two
//! implementations that behave the same (every word required, fewest typos
//! ranked first: the rules are in [`text`]):
//!
//! - [`tantivy::TantivyBackend`], the embedded default: an in-process index
//!   built from PostgreSQL at startup and updated as products change;
//! - [`meili::MeiliBackend`], Meilisearch through meilisearch-sdk, used when
//!   `MEILI_URL` is set.
//!
//! A backend answers with product ids; the cards come from the catalog's
//! cache (one MGET), so the index never serves stale prices.

pub mod docs;
pub mod meili;
pub mod tantivy;
pub mod text;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use model::{Facets, ListingFilters, SearchPage, SearchParams, Sort};
use serde::Serialize;
use uuid::Uuid;

use crate::catalog::cache;
use crate::stats::Stats;
use crate::{Result, Shop};

pub use docs::SearchDoc;

/// What a backend is asked: text, filters, order and a window of results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchRequest {
    pub q: String,
    /// A category slug; a department matches all of its categories.
    pub category: Option<String>,
    pub filters: ListingFilters,
    pub sort: Sort,
    pub offset: usize,
    /// 0 asks for counts and facets only.
    pub limit: usize,
}

impl SearchRequest {
    /// Everything that shapes the answer, as a cache key.
    fn cache_key(&self) -> String {
        let filters = serde_json::to_string(&self.filters).unwrap_or_default();
        format!(
            "{:?}|{}|{}|{}|{}|{}",
            self.sort,
            self.offset,
            self.limit,
            self.category.as_deref().unwrap_or(""),
            filters,
            self.q.trim()
        )
    }

    pub fn from_params(params: &SearchParams) -> Self {
        Self {
            q: params.q.clone(),
            category: params.category.clone(),
            filters: params.filters.clone(),
            sort: params.sort,
            offset: params.offset(),
            limit: params.per_page as usize,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, serde::Deserialize)]
pub struct SearchOutcome {
    /// Matching product ids in result order, the requested window only.
    pub ids: Vec<Uuid>,
    pub total: u64,
    pub facets: Facets,
}

#[async_trait]
pub trait SearchBackend: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// True when the index lives inside this process, so changes made by
    /// other processes must be pulled in (see [`Search::sync_changed`]).
    fn process_local(&self) -> bool {
        false
    }
    /// Names the index state answers come from, for the result cache: a
    /// process-local index says which process and which commit; a shared one
    /// is the same for everyone (and the catalog generation is bumped after
    /// each of its commits instead, see [`Search::reindex`]).
    fn cache_scope(&self) -> String {
        "shared".to_owned()
    }
    /// For an index kept on disk and reopened: every product change before
    /// this instant is in it. `None`: it must be built ([`Search::start`]).
    fn reopened_at(&self) -> Option<DateTime<Utc>> {
        None
    }
    /// Everything changed before `complete_up_to` is indexed; the next
    /// commit records it, for the next start.
    fn checkpoint(&self, _complete_up_to: DateTime<Utc>) {}
    /// Facet values (brand names, category slugs) the index may hold, for an
    /// index reopened without having seen the documents go in.
    fn remember_names(&self, _names: Vec<String>) {}
    /// Documents in the committed index, where the backend can tell cheaply.
    fn documents(&self) -> Option<u64> {
        None
    }
    async fn search(&self, request: &SearchRequest) -> Result<SearchOutcome>;
    /// Adds or replaces documents; visible after [`SearchBackend::commit`].
    async fn index(&self, docs: Vec<SearchDoc>) -> Result<()>;
    async fn remove(&self, ids: &[Uuid]) -> Result<()>;
    /// Removes every document (before a full rebuild).
    async fn clear(&self) -> Result<()>;
    /// Makes everything indexed so far searchable.
    async fn commit(&self) -> Result<()>;
}

pub use model::Suggestion;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct RebuildReport {
    pub documents: usize,
    pub seconds: f64,
}

/// How [`Search::start`] made the index current.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum StartMode {
    Rebuilt,
    /// Reopened from disk; this many products changed since were re-indexed.
    Reopened { caught_up: usize },
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct StartReport {
    pub mode: StartMode,
    /// Every change before this instant is in the index: the event-driven
    /// indexer may start its replay here.
    pub complete_up_to: DateTime<Utc>,
    pub seconds: f64,
}

pub struct Search<'a> {
    shop: &'a Shop,
}

pub const SUGGESTIONS: usize = 8;
const REBUILD_BATCH: i64 = 5_000;

impl<'a> Search<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    /// The search results page and `GET /api/v1/products`. With the result
    /// cache on, a repeated request is one Redis read for the whole page,
    /// cards included: every change a card shows (title, price, image,
    /// rating) is a catalog write, which moves the generation the key names,
    /// and a re-index (a SKU selling out) moves the index state it names.
    pub async fn run(&self, params: &SearchParams) -> Result<SearchPage> {
        if !self.shop.search_settings.result_cache {
            return self.page(params).await;
        }
        let (page, hit) = cache::cached(self.shop, &self.page_cache_name(params), || self.page(params)).await?;
        self.count(hit);
        Ok(page)
    }

    /// [`Search::run`] as the JSON the API sends: a cached page goes out as
    /// Redis holds it, with no decoding and re-encoding on the hot path.
    pub async fn run_json(&self, params: &SearchParams) -> Result<String> {
        if !self.shop.search_settings.result_cache {
            return serde_json::to_string(&self.page(params).await?).map_err(|err| crate::Error::Internal(Box::new(err)));
        }
        let (json, hit) = cache::cached_json(self.shop, &self.page_cache_name(params), || self.page(params)).await?;
        self.count(hit);
        Ok(json)
    }

    async fn page(&self, params: &SearchParams) -> Result<SearchPage> {
        let outcome = self.shop.search.search(&SearchRequest::from_params(params)).await?;
        let hits = self.shop.catalog().summaries(&outcome.ids).await?;
        Ok(SearchPage { hits, total: outcome.total, page: params.page, per_page: params.per_page, facets: outcome.facets })
    }

    fn page_cache_name(&self, params: &SearchParams) -> String {
        format!("search-page:{}:{}", self.shop.search.cache_scope(), SearchRequest::from_params(params).cache_key())
    }

    fn count(&self, hit: bool) {
        Stats::add(if hit { &self.shop.stats.search_cache_hits } else { &self.shop.stats.search_cache_misses }, 1);
    }

    /// Products whose words start like what the shopper is typing.
    pub async fn suggest(&self, q: &str) -> Result<Vec<Suggestion>> {
        let q = q.trim();
        if q.chars().count() < 2 {
            return Ok(Vec::new());
        }
        if q.chars().count() > SearchParams::MAX_QUERY_CHARS {
            return Err(crate::Error::bad_input("q", format!("at most {} characters", SearchParams::MAX_QUERY_CHARS)));
        }
        let request = SearchRequest { q: q.to_owned(), limit: SUGGESTIONS, ..SearchRequest::default() };
        let outcome = self.find(&request).await?;
        let cards = self.shop.catalog().summaries(&outcome.ids).await?;
        Ok(cards
            .into_iter()
            .map(|c| Suggestion { product_id: c.id, title: c.title, category: c.category_name })
            .collect())
    }

    /// The backend's answer, through the result cache: the ids, total and
    /// facets of a repeated request come from Redis (the cards are always
    /// read fresh). Entries live under the catalog generation, so a catalog
    /// write drops them at once, and name the index state they came from
    /// ([`SearchBackend::cache_scope`]), so a re-index does too. Redis being
    /// away only costs the cache.
    pub async fn find(&self, request: &SearchRequest) -> Result<SearchOutcome> {
        let backend = &self.shop.search;
        if !self.shop.search_settings.result_cache {
            return backend.search(request).await;
        }
        let name = format!("search:{}:{}", backend.cache_scope(), request.cache_key());
        let (outcome, hit) = cache::cached(self.shop, &name, || backend.search(request)).await?;
        self.count(hit);
        Ok(outcome)
    }

    /// Makes the index current at startup: an index reopened from disk
    /// catches up with the products changed since its last commit (and is
    /// rebuilt after all if it then disagrees with PostgreSQL on how many
    /// products there are: something it cannot see, such as a restored
    /// backup, happened); any other index is built from PostgreSQL.
    pub async fn start(&self) -> Result<StartReport> {
        let started = Instant::now();
        let backend = &self.shop.search;
        if let Some(reopened_at) = backend.reopened_at() {
            let names: Vec<String> =
                sqlx::query_scalar("SELECT name FROM brands UNION ALL SELECT slug FROM categories").fetch_all(&self.shop.db).await?;
            backend.remember_names(names);
            let (caught_up, complete_up_to) = self.sync_changed(reopened_at).await?;
            backend.checkpoint(complete_up_to);
            backend.commit().await?;
            let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products").fetch_one(&self.shop.db).await?;
            if backend.documents() == Some(products as u64) {
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(backend = backend.name(), caught_up, seconds, "search index reopened");
                return Ok(StartReport { mode: StartMode::Reopened { caught_up }, complete_up_to: reopened_at, seconds });
            }
            tracing::warn!(indexed = ?backend.documents(), products, "the reopened search index disagrees with PostgreSQL; rebuilding it");
        }
        let complete_up_to: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&self.shop.db).await?;
        self.rebuild().await?;
        Ok(StartReport { mode: StartMode::Rebuilt, complete_up_to, seconds: started.elapsed().as_secs_f64() })
    }

    /// Re-reads every product from PostgreSQL into the index.
    pub async fn rebuild(&self) -> Result<RebuildReport> {
        let started = Instant::now();
        let backend = &self.shop.search;
        // A change committed while the rebuild reads is caught by the next
        // sync from here (it looks back a margin further).
        let complete_up_to: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&self.shop.db).await?;
        backend.clear().await?;
        let mut after = None;
        let mut documents = 0;
        loop {
            let batch = docs::load(&self.shop.db, after, REBUILD_BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id);
            documents += batch.len();
            let done = (batch.len() as i64) < REBUILD_BATCH;
            backend.index(batch).await?;
            if done {
                break;
            }
        }
        backend.checkpoint(complete_up_to);
        backend.commit().await?;
        self.after_shared_commit().await?;
        let report = RebuildReport { documents, seconds: started.elapsed().as_secs_f64() };
        tracing::info!(backend = backend.name(), documents, seconds = report.seconds, "search index built");
        Ok(report)
    }

    /// Re-indexes products changed since `since` (minus a safety margin:
    /// `updated_at` is a transaction's start time, so a slow transaction can
    /// commit a change stamped before the last poll). Returns how many were
    /// re-indexed and the watermark for the next call. This is how a process
    /// learns of changes made by another one.
    pub async fn sync_changed(&self, since: DateTime<Utc>) -> Result<(usize, DateTime<Utc>)> {
        const MARGIN: chrono::Duration = chrono::Duration::seconds(60);
        const PAGE: i64 = 2_000;
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&self.shop.db).await?;
        let mut after: (DateTime<Utc>, Uuid) = (since - MARGIN, Uuid::nil());
        let mut total = 0;
        loop {
            let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
                "SELECT id, updated_at FROM products WHERE (updated_at, id) > ($1, $2) ORDER BY updated_at, id LIMIT $3",
            )
            .bind(after.0)
            .bind(after.1)
            .bind(PAGE)
            .fetch_all(&self.shop.db)
            .await?;
            let Some((last_id, last_at)) = rows.last().copied() else { break };
            let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
            self.reindex(&ids).await?;
            total += ids.len();
            if (rows.len() as i64) < PAGE {
                break;
            }
            after = (last_at, last_id);
        }
        // Recorded with the next commit (this one's, or a later one's).
        self.shop.search.checkpoint(now);
        Ok((total, now))
    }

    /// Brings the index up to date for products that changed (or vanished).
    pub async fn reindex(&self, ids: &[Uuid]) -> Result<()> {
        let docs = docs::load_ids(&self.shop.db, ids).await?;
        let gone: Vec<Uuid> = ids.iter().copied().filter(|id| !docs.iter().any(|d| d.id == *id)).collect();
        if !docs.is_empty() {
            self.shop.search.index(docs).await?;
        }
        if !gone.is_empty() {
            self.shop.search.remove(&gone).await?;
        }
        self.shop.search.commit().await?;
        self.after_shared_commit().await
    }

    /// A shared index has no commit count of its own in the cache key: once
    /// its commit is visible, every result cached before it is made stale.
    async fn after_shared_commit(&self) -> Result<()> {
        if self.shop.search.process_local() {
            return Ok(());
        }
        cache::bump_generation(self.shop).await
    }
}

/// How search runs in this process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Cache result windows and facets of repeated requests in Redis
    /// (`MERCATO_SEARCH_CACHE`); off, every request asks the index.
    pub result_cache: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self { result_cache: true }
    }
}

/// How long a caller should wait before retrying a search backend that failed.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

pub(crate) fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> crate::Error {
    crate::Error::Unavailable { dependency: crate::error::Dependency::Search, retry_after: RETRY_AFTER, source: source.into() }
}

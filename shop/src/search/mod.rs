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

#[derive(Debug, Clone, PartialEq, Default)]
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

pub struct Search<'a> {
    shop: &'a Shop,
}

pub const SUGGESTIONS: usize = 8;
const REBUILD_BATCH: i64 = 5_000;

impl<'a> Search<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    /// The search results page and `GET /api/v1/products`.
    pub async fn run(&self, params: &SearchParams) -> Result<SearchPage> {
        let outcome = self.shop.search.search(&SearchRequest::from_params(params)).await?;
        let hits = self.shop.catalog().summaries(&outcome.ids).await?;
        Ok(SearchPage { hits, total: outcome.total, page: params.page, per_page: params.per_page, facets: outcome.facets })
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
        let outcome = self.shop.search.search(&request).await?;
        let cards = self.shop.catalog().summaries(&outcome.ids).await?;
        Ok(cards
            .into_iter()
            .map(|c| Suggestion { product_id: c.id, title: c.title, category: c.category_name })
            .collect())
    }

    /// Re-reads every product from PostgreSQL into the index.
    pub async fn rebuild(&self) -> Result<RebuildReport> {
        let started = Instant::now();
        let backend = &self.shop.search;
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
        backend.commit().await?;
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
        self.shop.search.commit().await
    }
}

/// How long a caller should wait before retrying a search backend that failed.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

pub(crate) fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> crate::Error {
    crate::Error::Unavailable { dependency: crate::error::Dependency::Search, retry_after: RETRY_AFTER, source: source.into() }
}

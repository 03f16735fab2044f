//! Meilisearch through meilisearch-sdk, used when `MEILI_URL` is set.
//!
//! Behaves like the embedded backend (the rules are in [`super::text`]): the
//! same typo budgets (set in the index's typo tolerance), every query word
//! required (`matchingStrategy: "all"` on every query: Meilisearch's default,
//! "last", drops words until something matches), the last word as a prefix
//! (Meilisearch's default), fewest typos first (the `typo` ranking rule right
//! after `words`), and facets counted under every filter but their own — one
//! multi-search request carries the results query plus one facet-only query
//! per facet. User text reaches Meilisearch only as the `q` string or as
//! quoted, escaped filter values, never as filter syntax.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use meilisearch_sdk::client::Client;
use meilisearch_sdk::indexes::Index;
use meilisearch_sdk::search::{MatchingStrategies, SearchQuery, Selectors};
use meilisearch_sdk::settings::{FacetingSettings, MinWordSizeForTypos, PaginationSetting, Settings, TypoToleranceSettings};
use meilisearch_sdk::task_info::TaskInfo;
use meilisearch_sdk::tasks::Task;
use model::query::PRICE_BUCKET_EDGES;
use model::{Facets, Sort};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::text::{price_bucket, price_buckets};
use super::{unavailable, SearchBackend, SearchDoc, SearchOutcome, SearchRequest};
use crate::{Error, Result};

/// The index the shop uses unless told otherwise.
pub const INDEX: &str = "products";
/// Every query word must match, as in the embedded backend.
const MATCHING: MatchingStrategies = MatchingStrategies::ALL;
const TASK_TIMEOUT: Duration = Duration::from_secs(120);

pub struct MeiliBackend {
    client: Client,
    index: Index,
    /// Write tasks enqueued since the last commit.
    pending: Mutex<Vec<TaskInfo>>,
}

/// The document Meilisearch stores: the search doc plus the derived facet
/// values it cannot compute itself.
#[derive(Debug, Serialize, Deserialize)]
pub struct MeiliDoc {
    pub id: String,
    pub title: String,
    pub brand: String,
    pub category_names: String,
    pub keywords: String,
    pub description: String,
    /// The category and its department, so either filters.
    pub category_slugs: Vec<String>,
    pub price_cents: i64,
    /// Index into the price bucket edges, for the price facet.
    pub price_bucket: usize,
    pub rating_avg: f64,
    /// Every whole star the product reaches ("4 and up" counts as 1–4).
    pub rating_buckets: Vec<u8>,
    pub rating_count: i32,
    pub created_at: i64,
    pub in_stock: bool,
}

impl From<&SearchDoc> for MeiliDoc {
    fn from(d: &SearchDoc) -> Self {
        let mut category_slugs = vec![d.category_slug.clone()];
        category_slugs.extend(d.department_slug.clone());
        let mut category_names = d.category_name.clone();
        if let Some(dept) = &d.department_name {
            category_names.push(' ');
            category_names.push_str(dept);
        }
        MeiliDoc {
            id: d.id.to_string(),
            title: d.title.clone(),
            brand: d.brand.clone(),
            category_names,
            keywords: d.keywords.clone(),
            description: d.description.clone(),
            category_slugs,
            price_cents: d.price_cents,
            price_bucket: price_bucket(d.price_cents),
            rating_avg: d.rating_avg,
            rating_buckets: (1..=4u8).filter(|r| d.rating_avg >= *r as f64).collect(),
            rating_count: d.rating_count,
            created_at: d.created_at.timestamp(),
            in_stock: d.in_stock,
        }
    }
}

/// The index settings this backend relies on.
pub fn settings() -> Settings {
    Settings::new()
        .with_searchable_attributes(["title", "brand", "category_names", "keywords", "description"])
        .with_filterable_attributes(["brand", "category_slugs", "price_cents", "price_bucket", "rating_avg", "rating_buckets", "in_stock"])
        .with_sortable_attributes(["price_cents", "rating_avg", "rating_count", "created_at"])
        .with_ranking_rules(["words", "typo", "proximity", "attribute", "sort", "exactness", "rating_count:desc"])
        .with_typo_tolerance(TypoToleranceSettings {
            enabled: Some(true),
            disable_on_attributes: None,
            disable_on_words: None,
            min_word_size_for_typos: Some(MinWordSizeForTypos { one_typo: Some(5), two_typos: Some(9) }),
            disable_on_numbers: None,
        })
        .with_faceting(FacetingSettings { max_values_per_facet: 500, sort_facet_values_by: None })
        .with_pagination(PaginationSetting { max_total_hits: 20_000 })
}

/// Quotes a value for Meilisearch's filter syntax, escaping `\` and `"`.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Which filter a facet query leaves out.
#[derive(Clone, Copy, PartialEq)]
enum Omit {
    Nothing,
    Brand,
    Category,
    Price,
    Rating,
}

/// The filter expression for `request`, without the facet being counted.
fn filter(request: &SearchRequest, omit: Omit) -> String {
    let f = &request.filters;
    let mut parts = Vec::new();
    if f.in_stock {
        parts.push("in_stock = true".to_owned());
    }
    if omit != Omit::Brand && !f.brands.is_empty() {
        let list: Vec<String> = f.brands.iter().map(|b| quote(b)).collect();
        parts.push(format!("brand IN [{}]", list.join(", ")));
    }
    if omit != Omit::Category {
        if let Some(c) = &request.category {
            parts.push(format!("category_slugs = {}", quote(c)));
        }
    }
    if omit != Omit::Price {
        if let Some(min) = f.price_min_cents {
            parts.push(format!("price_cents >= {min}"));
        }
        if let Some(max) = f.price_max_cents {
            parts.push(format!("price_cents <= {max}"));
        }
    }
    if omit != Omit::Rating {
        if let Some(r) = f.rating_min {
            parts.push(format!("rating_avg >= {r}"));
        }
    }
    parts.join(" AND ")
}

fn sort_rules(sort: Sort) -> &'static [&'static str] {
    match sort {
        Sort::Relevance => &[],
        Sort::PriceAsc => &["price_cents:asc"],
        Sort::PriceDesc => &["price_cents:desc"],
        Sort::Rating => &["rating_avg:desc", "rating_count:desc"],
        Sort::Newest => &["created_at:desc"],
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

impl MeiliBackend {
    /// Connects and applies the index settings (waiting for Meilisearch to
    /// accept them), so a wrong URL or key fails at startup.
    pub async fn connect(url: &str, key: Option<&str>) -> Result<Self> {
        Self::connect_to(url, key, INDEX).await
    }

    /// [`MeiliBackend::connect`] with an index of the caller's choice, so
    /// tests sharing one Meilisearch each keep their own documents.
    pub async fn connect_to(url: &str, key: Option<&str>, index_uid: &str) -> Result<Self> {
        let client = Client::new(url, key).map_err(unavailable)?;
        let index = client.index(index_uid);
        let backend = MeiliBackend { client, index, pending: Mutex::new(Vec::new()) };
        let task = backend.index.set_settings(&settings()).await.map_err(unavailable)?;
        backend.wait(task).await?;
        Ok(backend)
    }

    async fn wait(&self, task: TaskInfo) -> Result<()> {
        let done = task
            .wait_for_completion(&self.client, Some(Duration::from_millis(50)), Some(TASK_TIMEOUT))
            .await
            .map_err(unavailable)?;
        match done {
            Task::Failed { content } => Err(Error::internal(format!("meilisearch task failed: {:?}", content.error))),
            _ => Ok(()),
        }
    }

    /// Deletes the whole index (a test's own, when it is done with it).
    pub async fn delete_index(&self) -> Result<()> {
        let task = self.index.clone().delete().await.map_err(unavailable)?;
        self.wait(task).await
    }

    fn queue(&self, task: TaskInfo) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).push(task);
    }
}

#[async_trait]
impl SearchBackend for MeiliBackend {
    fn name(&self) -> &'static str {
        "meilisearch"
    }

    async fn search(&self, request: &SearchRequest) -> Result<SearchOutcome> {
        let main_filter = filter(request, Omit::Nothing);
        let facet_filters = [
            (filter(request, Omit::Brand), "brand"),
            (filter(request, Omit::Category), "category_slugs"),
            (filter(request, Omit::Price), "price_bucket"),
            (filter(request, Omit::Rating), "rating_buckets"),
        ];
        const FACETS: [&[&str]; 4] = [&["brand"], &["category_slugs"], &["price_bucket"], &["rating_buckets"]];
        let q = request.q.trim();

        let mut main = SearchQuery::new(&self.index);
        main.with_query(q).with_matching_strategy(MATCHING).with_attributes_to_retrieve(Selectors::Some(&["id"]));
        match request.offset.checked_div(request.limit) {
            Some(pages_before) => main.with_page(pages_before + 1).with_hits_per_page(request.limit),
            None => main.with_page(1).with_hits_per_page(0),
        };
        if !main_filter.is_empty() {
            main.with_filter(&main_filter);
        }
        let sort = sort_rules(request.sort);
        if !sort.is_empty() {
            main.with_sort(sort);
        }
        let mut multi = self.client.multi_search();
        multi.with_search_query(main);
        for ((facet_filter, _), facet) in facet_filters.iter().zip(FACETS) {
            let mut query = SearchQuery::new(&self.index);
            // The same words rule as the results, or facet counts would
            // describe more products than the total.
            query.with_query(q).with_matching_strategy(MATCHING).with_limit(0).with_facets(Selectors::Some(facet));
            if !facet_filter.is_empty() {
                query.with_filter(facet_filter);
            }
            multi.with_search_query(query);
        }
        let response = multi.execute::<IdOnly>().await.map_err(unavailable)?;
        let mut results = response.results.into_iter();
        let main = results.next().ok_or_else(|| Error::internal("meilisearch answered no results"))?;
        let ids = main
            .hits
            .into_iter()
            .map(|h| Uuid::try_parse(&h.result.id).map_err(Error::internal))
            .collect::<Result<Vec<_>>>()?;
        let total = main.total_hits.or(main.estimated_total_hits).unwrap_or(0) as u64;

        let mut facets = Facets::default();
        let mut prices = [0u64; PRICE_BUCKET_EDGES.len()];
        for (result, (_, name)) in results.zip(facet_filters.iter()) {
            let counts = result.facet_distribution.and_then(|mut d| d.remove(*name)).unwrap_or_default();
            match *name {
                "brand" => facets.brand = counts.into_iter().map(|(k, v)| (k, v as u64)).collect(),
                "category_slugs" => facets.category = counts.into_iter().map(|(k, v)| (k, v as u64)).collect(),
                "price_bucket" => {
                    for (k, v) in counts {
                        if let Some(slot) = k.parse::<usize>().ok().and_then(|i| prices.get_mut(i)) {
                            *slot = v as u64;
                        }
                    }
                }
                _ => {
                    facets.rating = (1..=4)
                        .rev()
                        .map(|r: u8| (r.to_string(), counts.get(&r.to_string()).copied().unwrap_or(0) as u64))
                        .collect()
                }
            }
        }
        facets.price = price_buckets(&prices);
        if facets.rating.is_empty() {
            facets.rating = (1..=4).rev().map(|r: u8| (r.to_string(), 0)).collect();
        }
        Ok(SearchOutcome { ids, total, facets })
    }

    async fn index(&self, docs: Vec<SearchDoc>) -> Result<()> {
        let docs: Vec<MeiliDoc> = docs.iter().map(MeiliDoc::from).collect();
        let task = self.index.add_or_replace(&docs, Some("id")).await.map_err(unavailable)?;
        self.queue(task);
        Ok(())
    }

    async fn remove(&self, ids: &[Uuid]) -> Result<()> {
        let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        let task = self.index.delete_documents(&ids).await.map_err(unavailable)?;
        self.queue(task);
        Ok(())
    }

    async fn clear(&self) -> Result<()> {
        let task = self.index.delete_all_documents().await.map_err(unavailable)?;
        self.queue(task);
        Ok(())
    }

    async fn commit(&self) -> Result<()> {
        let tasks = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            self.wait(task).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_quoted_and_escaped() {
        assert_eq!(quote(r#"Mont "Blanc""#), r#""Mont \"Blanc\"""#);
        assert_eq!(quote(r"a\b"), r#""a\\b""#);
        let request = SearchRequest {
            category: Some("audio".into()),
            filters: model::ListingFilters {
                brands: vec![r#"x" OR brand = "y"#.into()],
                price_min_cents: Some(1000),
                price_max_cents: None,
                rating_min: Some(4.0),
                in_stock: true,
            },
            ..SearchRequest::default()
        };
        assert_eq!(
            filter(&request, Omit::Nothing),
            r#"in_stock = true AND brand IN ["x\" OR brand = \"y"] AND category_slugs = "audio" AND price_cents >= 1000 AND rating_avg >= 4"#
        );
        assert_eq!(
            filter(&request, Omit::Brand),
            r#"in_stock = true AND category_slugs = "audio" AND price_cents >= 1000 AND rating_avg >= 4"#
        );
    }
}

//! One pass over a query's matches: the filters, every facet counted under
//! every filter but its own, and the ranked window.
//!
//! The pass reads what it needs of each document from [`SegmentFacts`], a
//! plain array built once per segment (segments never change) and kept in
//! memory, with brands and categories as small segment-local ordinals.
//! Reading eight compressed fast-field columns per match (a dynamic call
//! and an unpacking each) and counting facets in SipHash maps was about
//! 60 % of the server's CPU on the cold search path at a million products
//! (the profile in BENCHMARKS.md); an array index and a counter increment
//! replace them. Ranking skips a match that cannot enter the window before
//! reading its id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use model::query::PRICE_BUCKET_EDGES;
use model::Sort;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::index::SegmentId;
use tantivy::{DocId, Score, Searcher, SegmentOrdinal, SegmentReader};

use super::super::text::{code, price_bucket};
use super::super::SearchRequest;

/// A segment-local ordinal standing for "no department".
const NONE: u32 = u32::MAX;

/// What the listing pass needs of one document.
#[derive(Clone, Copy)]
struct Fact {
    price: u64,
    rating: f64,
    created: i64,
    rating_count: u32,
    brand: u32,
    category: u32,
    department: u32,
    price_bucket: u8,
    in_stock: bool,
}

/// Every document of one segment, by doc id, and the codes its ordinals
/// stand for. About 48 bytes a document: 48 MB at a million products.
pub(super) struct SegmentFacts {
    docs: Vec<Fact>,
    brands: Vec<u64>,
    categories: Vec<u64>,
}

/// Codes to dense ordinals, in the order first seen.
#[derive(Default)]
struct Ordinals {
    of: HashMap<u64, u32>,
    codes: Vec<u64>,
}

impl Ordinals {
    fn ordinal(&mut self, code: u64) -> u32 {
        *self.of.entry(code).or_insert_with(|| {
            self.codes.push(code);
            (self.codes.len() - 1) as u32
        })
    }
}

impl SegmentFacts {
    fn read(segment: &SegmentReader) -> tantivy::Result<Self> {
        let ff = segment.fast_fields();
        let (price, rating, rating_count, created) = (ff.u64("price")?, ff.f64("rating")?, ff.u64("rating_count")?, ff.i64("created")?);
        let (in_stock, brand, category, department) =
            (ff.u64("in_stock")?, ff.u64("brand_code")?, ff.u64("category_code")?, ff.u64("department_code")?);
        let (mut brands, mut categories) = (Ordinals::default(), Ordinals::default());
        let docs = (0..segment.max_doc())
            .map(|doc| {
                let price = price.first(doc).unwrap_or(0);
                let department = department.first(doc).unwrap_or(0);
                Fact {
                    price,
                    rating: rating.first(doc).unwrap_or(0.0),
                    created: created.first(doc).unwrap_or(0),
                    rating_count: rating_count.first(doc).unwrap_or(0).min(u32::MAX as u64) as u32,
                    brand: brands.ordinal(brand.first(doc).unwrap_or(0)),
                    category: categories.ordinal(category.first(doc).unwrap_or(0)),
                    department: if department == 0 { NONE } else { categories.ordinal(department) },
                    price_bucket: price_bucket(price.min(i64::MAX as u64) as i64) as u8,
                    in_stock: in_stock.first(doc).unwrap_or(0) != 0,
                }
            })
            .collect();
        Ok(Self { docs, brands: brands.codes, categories: categories.codes })
    }
}

/// The facts of every segment searched lately, by segment.
#[derive(Default, Clone)]
pub(super) struct FactsCache {
    segments: Arc<Mutex<HashMap<SegmentId, Arc<SegmentFacts>>>>,
}

impl FactsCache {
    /// The facts of every segment `searcher` sees, reading the ones not
    /// seen before (outside the lock: a merged segment of a million
    /// documents takes a tenth of a second, and searches go on meanwhile).
    pub(super) fn for_searcher(&self, searcher: &Searcher) -> tantivy::Result<HashMap<SegmentId, Arc<SegmentFacts>>> {
        let mut found = HashMap::with_capacity(searcher.segment_readers().len());
        let mut missing = Vec::new();
        {
            let cached = self.segments.lock().unwrap_or_else(|p| p.into_inner());
            for segment in searcher.segment_readers() {
                match cached.get(&segment.segment_id()) {
                    Some(facts) => {
                        found.insert(segment.segment_id(), facts.clone());
                    }
                    None => missing.push(segment),
                }
            }
        }
        for segment in missing {
            let facts = Arc::new(SegmentFacts::read(segment)?);
            found.insert(segment.segment_id(), facts.clone());
            self.segments.lock().unwrap_or_else(|p| p.into_inner()).insert(segment.segment_id(), facts);
        }
        Ok(found)
    }

    /// After a reload: reads the new segments' facts, so searches rarely
    /// do, and forgets the segments no longer searched (merged or emptied).
    pub(super) fn refresh(&self, searcher: &Searcher) -> tantivy::Result<()> {
        let current = self.for_searcher(searcher)?;
        self.segments.lock().unwrap_or_else(|p| p.into_inner()).retain(|id, _| current.contains_key(id));
        Ok(())
    }
}

/// The request's filters as codes and bounds.
#[derive(Clone)]
struct Filter {
    brands: Vec<u64>,
    category: Option<u64>,
    price_min: Option<u64>,
    price_max: Option<u64>,
    rating_min: Option<f64>,
    in_stock: bool,
}

impl Filter {
    fn new(request: &SearchRequest) -> Self {
        let f = &request.filters;
        Self {
            brands: f.brands.iter().map(|b| code(b)).collect(),
            category: request.category.as_deref().map(code),
            price_min: f.price_min_cents.map(|c| c.max(0) as u64),
            price_max: f.price_max_cents.map(|c| c.max(0) as u64),
            rating_min: f.rating_min,
            in_stock: f.in_stock,
        }
    }
}

/// One ranked result: bigger keys first, then the id for a stable order.
#[derive(Clone, Copy)]
pub(super) struct Ranked {
    k1: f64,
    k2: f64,
    pub(super) id: u128,
}

/// Orders by the keys alone: `Less` when `a` ranks before `b` whatever
/// their ids.
fn keys_order(a: &Ranked, b: &Ranked) -> std::cmp::Ordering {
    b.k1.total_cmp(&a.k1).then(b.k2.total_cmp(&a.k2))
}

fn rank_order(a: &Ranked, b: &Ranked) -> std::cmp::Ordering {
    keys_order(a, b).then(a.id.cmp(&b.id))
}

pub(super) struct ListingCollector {
    filter: Filter,
    sort: Sort,
    keep: usize,
    scored: bool,
    facts: HashMap<SegmentId, Arc<SegmentFacts>>,
}

impl ListingCollector {
    pub(super) fn new(request: &SearchRequest, facts: HashMap<SegmentId, Arc<SegmentFacts>>) -> Self {
        Self {
            filter: Filter::new(request),
            sort: request.sort,
            keep: request.offset + request.limit,
            scored: !request.q.trim().is_empty(),
            facts,
        }
    }
}

#[derive(Default)]
pub(super) struct Fruit {
    pub(super) total: u64,
    pub(super) brands: HashMap<u64, u64>,
    pub(super) categories: HashMap<u64, u64>,
    pub(super) prices: [u64; PRICE_BUCKET_EDGES.len()],
    /// ratings[r-1]: products rated r and up.
    pub(super) ratings: [u64; 4],
    /// The best `keep` matches, best first.
    pub(super) top: Vec<Ranked>,
}

/// The filter in one segment's ordinals.
struct LocalFilter {
    /// Whether each brand ordinal passes; None: no brand filter.
    brands: Option<Vec<bool>>,
    /// The wanted category's ordinal; `Some(None)`: a category this segment
    /// does not hold, so nothing in it passes.
    category: Option<Option<u32>>,
    price_min: Option<u64>,
    price_max: Option<u64>,
    rating_min: Option<f64>,
    in_stock: bool,
}

pub(super) struct ListingSegment {
    filter: LocalFilter,
    sort: Sort,
    keep: usize,
    facts: Arc<SegmentFacts>,
    id_hi: Column<u64>,
    id_lo: Column<u64>,
    /// Facet counts by ordinal.
    brands: Vec<u64>,
    categories: Vec<u64>,
    /// A match ranking after this one by its keys alone cannot enter the
    /// window: `keep` better ones are already held.
    floor: Option<Ranked>,
    fruit: Fruit,
}

impl Collector for ListingCollector {
    type Fruit = Fruit;
    type Child = ListingSegment;

    fn for_segment(&self, _: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<ListingSegment> {
        let facts = match self.facts.get(&segment.segment_id()) {
            Some(facts) => facts.clone(),
            None => Arc::new(SegmentFacts::read(segment)?),
        };
        let f = &self.filter;
        let ordinal_of = |codes: &[u64], want: u64| codes.iter().position(|c| *c == want).map(|o| o as u32);
        let filter = LocalFilter {
            brands: (!f.brands.is_empty()).then(|| facts.brands.iter().map(|c| f.brands.contains(c)).collect()),
            category: f.category.map(|want| ordinal_of(&facts.categories, want)),
            price_min: f.price_min,
            price_max: f.price_max,
            rating_min: f.rating_min,
            in_stock: f.in_stock,
        };
        let ff = segment.fast_fields();
        Ok(ListingSegment {
            filter,
            sort: self.sort,
            keep: self.keep,
            id_hi: ff.u64("id_hi")?,
            id_lo: ff.u64("id_lo")?,
            brands: vec![0; facts.brands.len()],
            categories: vec![0; facts.categories.len()],
            facts,
            floor: None,
            fruit: Fruit::default(),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.scored && self.sort == Sort::Relevance
    }

    fn merge_fruits(&self, fruits: Vec<Fruit>) -> tantivy::Result<Fruit> {
        let mut all = Fruit::default();
        for f in fruits {
            all.total += f.total;
            for (k, v) in f.brands {
                *all.brands.entry(k).or_default() += v;
            }
            for (k, v) in f.categories {
                *all.categories.entry(k).or_default() += v;
            }
            for (a, b) in all.prices.iter_mut().zip(f.prices) {
                *a += b;
            }
            for (a, b) in all.ratings.iter_mut().zip(f.ratings) {
                *a += b;
            }
            all.top.extend(f.top);
        }
        all.top.sort_by(rank_order);
        all.top.truncate(self.keep);
        Ok(all)
    }
}

impl ListingSegment {
    /// Keeps the best `keep` of what is held, and remembers the worst of
    /// them as the floor.
    fn trim(&mut self) {
        let keep = self.keep;
        if self.fruit.top.len() > keep {
            self.fruit.top.select_nth_unstable_by(keep - 1, rank_order);
            self.fruit.top.truncate(keep);
            self.floor = self.fruit.top.iter().copied().max_by(rank_order);
        }
    }
}

impl SegmentCollector for ListingSegment {
    type Fruit = Fruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        let d = self.facts.docs[doc as usize];
        let f = &self.filter;
        if f.in_stock && !d.in_stock {
            return;
        }
        let pass_brand = f.brands.as_ref().is_none_or(|ok| ok[d.brand as usize]);
        let pass_category = match f.category {
            None => true,
            Some(None) => false,
            Some(Some(want)) => d.category == want || d.department == want,
        };
        let pass_price = f.price_min.is_none_or(|m| d.price >= m) && f.price_max.is_none_or(|m| d.price <= m);
        let pass_rating = f.rating_min.is_none_or(|m| d.rating >= m);

        // Each facet counts under every filter but its own.
        if pass_category && pass_price && pass_rating {
            self.brands[d.brand as usize] += 1;
        }
        if pass_brand && pass_price && pass_rating {
            self.categories[d.category as usize] += 1;
            if d.department != NONE {
                self.categories[d.department as usize] += 1;
            }
        }
        if pass_brand && pass_category && pass_rating {
            self.fruit.prices[d.price_bucket as usize] += 1;
        }
        if pass_brand && pass_category && pass_price {
            for r in 1..=4 {
                if d.rating >= r as f64 {
                    self.fruit.ratings[r - 1] += 1;
                }
            }
        }
        if !(pass_brand && pass_category && pass_price && pass_rating) {
            return;
        }
        self.fruit.total += 1;
        if self.keep == 0 {
            return;
        }
        let popularity = d.rating_count as f64;
        let (k1, k2) = match self.sort {
            Sort::Relevance => (score as f64, popularity),
            Sort::PriceAsc => (-(d.price as f64), score as f64),
            Sort::PriceDesc => (d.price as f64, score as f64),
            Sort::Rating => (d.rating, popularity),
            Sort::Newest => (d.created as f64, 0.0),
        };
        let mut ranked = Ranked { k1, k2, id: 0 };
        if self.floor.is_some_and(|floor| keys_order(&floor, &ranked).is_lt()) {
            return;
        }
        ranked.id = ((self.id_hi.first(doc).unwrap_or(0) as u128) << 64) | self.id_lo.first(doc).unwrap_or(0) as u128;
        self.fruit.top.push(ranked);
        // Keep memory bounded, and raise the floor now and then.
        if self.fruit.top.len() >= 2 * self.keep + 1024 {
            self.trim();
        }
    }

    fn harvest(mut self) -> Fruit {
        self.trim();
        let counted = |codes: &[u64], counts: &[u64]| -> HashMap<u64, u64> {
            codes.iter().zip(counts).filter(|(_, n)| **n > 0).map(|(c, n)| (*c, *n)).collect()
        };
        self.fruit.brands = counted(&self.facts.brands, &self.brands);
        self.fruit.categories = counted(&self.facts.categories, &self.categories);
        self.fruit
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};
    use model::{ListingFilters, Sort};
    use uuid::Uuid;

    use super::super::TantivyBackend;
    use crate::search::{SearchBackend, SearchDoc, SearchRequest};

    /// Products with few distinct keys (many ties), a brand found in one
    /// segment only, and products without a department.
    fn doc(i: usize) -> SearchDoc {
        SearchDoc {
            id: Uuid::from_u128(((i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)) | 1),
            title: format!("thing {i}"),
            description: String::new(),
            brand: if i >= 4_000 && i % 10 == 0 { "Solo".into() } else { format!("B{}", i % 13) },
            category_slug: format!("c{}", i % 5),
            category_name: format!("C{}", i % 5),
            department_slug: (i % 7 != 0).then(|| format!("d{}", i % 5 % 2)),
            department_name: None,
            keywords: String::new(),
            price_cents: (i % 11) as i64 * 1_000,
            currency: "EUR".into(),
            rating_avg: (i % 6) as f64 * 0.9,
            rating_count: (i % 4) as i32,
            created_at: Utc.timestamp_opt(1_700_000_000 + (i % 17) as i64, 0).unwrap(),
            in_stock: i % 3 != 0,
        }
    }

    async fn backend(docs: &[SearchDoc]) -> TantivyBackend {
        let backend = TantivyBackend::new();
        // Three commits: three segments at least, each with its own ordinals.
        for part in docs.chunks(docs.len().div_ceil(3)) {
            backend.index(part.to_vec()).await.unwrap();
            backend.commit().await.unwrap();
        }
        assert!(backend.reader.searcher().segment_readers().len() >= 3);
        backend
    }

    struct Wanted<'a> {
        filters: &'a ListingFilters,
        category: Option<&'a str>,
    }

    impl Wanted<'_> {
        fn brand(&self, d: &SearchDoc) -> bool {
            self.filters.brands.is_empty() || self.filters.brands.contains(&d.brand)
        }
        fn category(&self, d: &SearchDoc) -> bool {
            self.category.is_none_or(|c| d.category_slug == c || d.department_slug.as_deref() == Some(c))
        }
        fn price(&self, d: &SearchDoc) -> bool {
            self.filters.price_min_cents.is_none_or(|m| d.price_cents >= m) && self.filters.price_max_cents.is_none_or(|m| d.price_cents <= m)
        }
        fn rating(&self, d: &SearchDoc) -> bool {
            self.filters.rating_min.is_none_or(|m| d.rating_avg >= m)
        }
        fn stock(&self, d: &SearchDoc) -> bool {
            !self.filters.in_stock || d.in_stock
        }
    }

    /// Windows of a sorted listing are the naive sort's (keys, then id):
    /// the floor never drops a match that belongs. Segments of thousands of
    /// matches, so the floor rises several times within each.
    #[tokio::test]
    async fn pages_follow_the_naive_order_through_every_tie() {
        let docs: Vec<SearchDoc> = (0..30_000).map(doc).collect();
        let backend = backend(&docs).await;
        for sort in [Sort::PriceAsc, Sort::Newest, Sort::Rating] {
            let mut expected: Vec<&SearchDoc> = docs.iter().filter(|d| d.in_stock).collect();
            expected.sort_by(|a, b| {
                let keys = match sort {
                    Sort::PriceAsc => a.price_cents.cmp(&b.price_cents),
                    Sort::Newest => b.created_at.cmp(&a.created_at),
                    _ => b.rating_avg.total_cmp(&a.rating_avg).then(b.rating_count.cmp(&a.rating_count)),
                };
                keys.then(a.id.as_u128().cmp(&b.id.as_u128()))
            });
            let filters = ListingFilters { in_stock: true, ..Default::default() };
            let expected: Vec<Uuid> = expected.iter().map(|d| d.id).collect();
            for offset in [0, 24, 48, 480, 2_400, expected.len() - 30, expected.len()] {
                let request = SearchRequest { sort, offset, limit: 48, filters: filters.clone(), ..Default::default() };
                let outcome = backend.search(&request).await.unwrap();
                assert_eq!(outcome.total as usize, expected.len());
                let end = (offset + 48).min(expected.len());
                assert_eq!(outcome.ids, expected[offset..end], "{sort:?} from {offset}");
            }
        }
    }

    /// Facet counts across segments whose ordinals differ, under every
    /// filter but their own, against counting the documents by hand.
    #[tokio::test]
    async fn facets_count_across_segments_under_the_other_filters() {
        let docs: Vec<SearchDoc> = (0..6_000).map(doc).collect();
        let backend = backend(&docs).await;
        let filters = ListingFilters {
            brands: vec!["Solo".into(), "B4".into()],
            price_min_cents: Some(2_000),
            price_max_cents: Some(8_000),
            rating_min: Some(1.5),
            in_stock: true,
        };
        for category in [None, Some("d1"), Some("c3"), Some("nowhere")] {
            let w = Wanted { filters: &filters, category };
            let request = SearchRequest {
                category: category.map(str::to_owned),
                filters: filters.clone(),
                sort: Sort::Newest,
                limit: 10,
                ..Default::default()
            };
            let outcome = backend.search(&request).await.unwrap();
            let stocked = || docs.iter().filter(|d| w.stock(d));
            let total = stocked().filter(|d| w.brand(d) && w.category(d) && w.price(d) && w.rating(d)).count();
            assert_eq!(outcome.total as usize, total, "{category:?}");

            let mut brands = BTreeMap::new();
            for d in stocked().filter(|d| w.category(d) && w.price(d) && w.rating(d)) {
                *brands.entry(d.brand.clone()).or_insert(0) += 1;
            }
            assert_eq!(outcome.facets.brand, brands, "{category:?}: brands");
            let mut categories = BTreeMap::new();
            for d in stocked().filter(|d| w.brand(d) && w.price(d) && w.rating(d)) {
                *categories.entry(d.category_slug.clone()).or_insert(0) += 1;
                if let Some(dep) = &d.department_slug {
                    *categories.entry(dep.clone()).or_insert(0) += 1;
                }
            }
            assert_eq!(outcome.facets.category, categories, "{category:?}: categories");
            let priced: u64 = outcome.facets.price.iter().map(|b| b.count).sum();
            assert_eq!(priced as usize, stocked().filter(|d| w.brand(d) && w.category(d) && w.rating(d)).count(), "{category:?}: prices");
            let rated = stocked().filter(|d| w.brand(d) && w.category(d) && w.price(d) && d.rating_avg >= 3.0).count();
            assert_eq!(outcome.facets.rating["3"] as usize, rated, "{category:?}: rated 3 and up");
        }
    }
}

//! The embedded search backend: a Tantivy index in memory, built from
//! PostgreSQL at startup and updated as products change; or kept on disk
//! (`MERCATO_SEARCH_DIR`), reopened at startup and caught up from the
//! changes since its last commit, so a restart at a million products serves
//! search in seconds instead of rebuilding.
//!
//! Text matching follows the rules in [`super::text`], the same as the
//! Meilisearch backend: every query word must match some field exactly,
//! within its typo budget, and (the last word) as a prefix. Tantivy's own
//! fuzzy queries count typos differently (a changed first letter is one
//! typo there), so each word is expanded here against the term dictionary
//! and its derived words grouped by the typos Meilisearch would count. A
//! word scores by its best match: a tier per typo saved, far above the field
//! weight and BM25 that order results within a tier, so fewer typos always
//! rank first. Filters, facets and sorting run in one pass of a custom
//! collector ([`listing`]) over facts kept in memory per segment, which
//! counts each facet under every filter except its own.

mod listing;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use model::Facets;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, DisjunctionMaxQuery, FuzzyTermQuery, Occur, Query, TermQuery,
    TermSetQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, STRING,
};
use tantivy::tokenizer::{AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};
use tantivy::{Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};
use chrono::{DateTime, Utc};
use tantivy::directory::MmapDirectory;
use uuid::Uuid;

use super::text::{code, forgiven, price_buckets, typo_budget};
use listing::{FactsCache, ListingCollector};
use super::{unavailable, SearchBackend, SearchDoc, SearchOutcome, SearchRequest};
use crate::{Error, Result};

const TOKENIZER: &str = "mercato";
/// Indexing memory for the writer: enough to build a million products in a
/// few segments without holding them all in RAM at once.
const WRITER_MEMORY: usize = 128 * 1024 * 1024;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    title: Field,
    brand_text: Field,
    category_text: Field,
    keywords: Field,
    description: Field,
}

/// Text fields a query word is matched against, with their weights. Every
/// field forgives typos and takes prefixes, as every searchable attribute
/// does in Meilisearch: matching the same documents matters more than
/// keeping the description's typo matches out.
const WEIGHTS: [(TextField, f32); 5] = [
    (TextField::Title, 3.0),
    (TextField::Brand, 2.0),
    (TextField::Category, 1.5),
    (TextField::Keywords, 1.0),
    (TextField::Description, 0.5),
];

/// What each typo a word needed costs it. Larger than anything field
/// weights and BM25 add to a word (about 90 at most), and small enough that
/// f32 keeps their differences, so the score orders by total typos first.
const TYPO_TIER: f32 = 10_000.0;

/// The score a word earns by matching with `typos` typos, before weights.
fn tier(typos: u8) -> f32 {
    (2 - typos.min(2)) as f32 * TYPO_TIER
}

/// Within a tier: exact words score their BM25 times the field weight; a
/// prefix completion and a typo match score a share of the weight alone.
const PREFIX_SHARE: f32 = 0.5;
const TYPO_SHARE: f32 = 0.3;

#[derive(Clone, Copy)]
enum TextField {
    Title,
    Brand,
    Category,
    Keywords,
    Description,
}

impl Fields {
    fn text(&self, f: TextField) -> Field {
        match f {
            TextField::Title => self.title,
            TextField::Brand => self.brand_text,
            TextField::Category => self.category_text,
            TextField::Keywords => self.keywords,
            TextField::Description => self.description,
        }
    }
}

#[derive(Clone)]
pub struct TantivyBackend {
    index: Index,
    reader: IndexReader,
    writer: Arc<Mutex<IndexWriter>>,
    fields: Fields,
    analyzer: TextAnalyzer,
    /// Facet codes back to the names shown to shoppers.
    names: Arc<RwLock<HashMap<u64, String>>>,
    /// This index's identity and commit count: cached results name both, so
    /// a process never reads another's answers nor its own from before a commit.
    instance: Uuid,
    commits: Arc<AtomicU64>,
    /// Kept on disk: commits carry a [`Payload`].
    persistent: bool,
    /// Where the index found on disk was complete up to (None: built here).
    reopened: Option<DateTime<Utc>>,
    /// What the next commit may claim ([`SearchBackend::checkpoint`]).
    complete_up_to: Arc<Mutex<Option<DateTime<Utc>>>>,
    /// Per-segment facts the listing pass reads, refreshed on each reload.
    facts: FactsCache,
}

impl Default for TantivyBackend {
    fn default() -> Self {
        Self::new()
    }
}

/// What an index on disk remembers of itself, in its last commit's payload.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Payload {
    /// Every product change before this instant is in the index.
    complete_up_to: DateTime<Utc>,
}

/// Bumped whenever the schema, the tokenizer or what a document holds
/// changes: an index on disk in another format is never reopened (each
/// format has its own directory).
const FORMAT: u32 = 1;

fn schema() -> (Schema, Fields) {
    let mut schema = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        id: schema.add_text_field("id", STRING),
        title: schema.add_text_field("title", text.clone()),
        brand_text: schema.add_text_field("brand", text.clone()),
        category_text: schema.add_text_field("category", text.clone()),
        keywords: schema.add_text_field("keywords", text.clone()),
        description: schema.add_text_field("description", text),
    };
    for name in ["id_hi", "id_lo", "price", "rating_count", "in_stock", "brand_code", "category_code", "department_code"] {
        schema.add_u64_field(name, FAST);
    }
    schema.add_f64_field("rating", FAST);
    schema.add_i64_field("created", FAST);
    (schema.build(), fields)
}

impl TantivyBackend {
    /// An index in memory, empty until [`crate::search::Search::start`] fills it.
    pub fn new() -> Self {
        let (schema, fields) = schema();
        Self::around(Index::create_in_ram(schema), fields, None, false).expect("an in-memory index always opens")
    }

    /// The index kept in `dir` for the database whose installation id is
    /// `installation` (so two databases never share one), reopened as it was
    /// last committed, or created empty. Fails when the directory cannot be
    /// used, or another process holds its writer lock (the caller then
    /// falls back to [`TantivyBackend::new`]).
    pub fn open_in(dir: &Path, installation: Uuid) -> tantivy::Result<Self> {
        let dir = dir.join(installation.simple().to_string()).join(format!("v{FORMAT}"));
        std::fs::create_dir_all(&dir).map_err(|e| tantivy::TantivyError::SystemError(format!("{}: {e}", dir.display())))?;
        let (schema, fields) = schema();
        let directory = MmapDirectory::open(&dir)?;
        let index = if Index::exists(&directory)? {
            Index::open(directory)?
        } else {
            Index::create(directory, schema.clone(), IndexSettings::default())?
        };
        if index.schema() != schema {
            return Err(tantivy::TantivyError::SchemaError(format!("{} holds another schema; bump FORMAT", dir.display())));
        }
        let payload = index.load_metas()?.payload.and_then(|p| serde_json::from_str::<Payload>(&p).ok());
        Self::around(index, fields, payload.map(|p| p.complete_up_to), true)
    }

    fn around(index: Index, fields: Fields, reopened: Option<DateTime<Utc>>, persistent: bool) -> tantivy::Result<Self> {
        let analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter)
            .build();
        index.tokenizers().register(TOKENIZER, analyzer.clone());
        let writer = index.writer_with_num_threads(2, WRITER_MEMORY)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Self {
            persistent,
            index,
            reader,
            writer: Arc::new(Mutex::new(writer)),
            fields,
            analyzer,
            names: Default::default(),
            instance: Uuid::new_v4(),
            commits: Default::default(),
            reopened,
            complete_up_to: Default::default(),
            facts: Default::default(),
        })
    }

    fn tokens(&self, text: &str) -> Vec<String> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            out.push(token.text.clone());
        }
        out
    }

    /// Every word must match; each may match any field exactly, within its
    /// typo budget, and (the last word) as a prefix. A word scores its best
    /// match (a disjunction-max over fields and tiers) and the words' scores
    /// add up. User text only ever becomes terms, never query syntax, so
    /// nothing in it can inject.
    fn query(&self, searcher: &Searcher, q: &str) -> tantivy::Result<Box<dyn Query>> {
        let words = self.tokens(q);
        if words.is_empty() {
            return Ok(Box::new(AllQuery));
        }
        let last = words.len() - 1;
        let mut per_word: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(words.len());
        for (i, word) in words.iter().enumerate() {
            let mut alternatives: Vec<Box<dyn Query>> = Vec::new();
            for (field, weight) in WEIGHTS {
                let field = self.fields.text(field);
                let exact = Term::from_field_text(field, word);
                alternatives.push(Box::new(BooleanQuery::new(vec![
                    (Occur::Must, Box::new(ConstScoreQuery::new(Box::new(TermQuery::new(exact.clone(), IndexRecordOption::Basic)), tier(0)))),
                    (Occur::Must, Box::new(BoostQuery::new(Box::new(TermQuery::new(exact, IndexRecordOption::WithFreqs)), weight))),
                ])));
                for (typos, derived) in derivations(searcher, field, word, i == last)?.into_iter().enumerate() {
                    let terms: Vec<Term> =
                        derived.iter().filter(|w| *w != word).map(|w| Term::from_field_text(field, w)).collect();
                    if terms.is_empty() {
                        continue;
                    }
                    let share = if typos == 0 { PREFIX_SHARE } else { TYPO_SHARE };
                    alternatives.push(Box::new(ConstScoreQuery::new(
                        Box::new(TermSetQuery::new(terms)),
                        tier(typos as u8) + weight * share,
                    )));
                }
            }
            per_word.push((Occur::Must, Box::new(DisjunctionMaxQuery::new(alternatives))));
        }
        Ok(Box::new(BooleanQuery::new(per_word)))
    }

    fn document(&self, doc: &SearchDoc) -> TantivyDocument {
        let f = &self.fields;
        let schema = self.index.schema();
        let fast = |name: &str| schema.get_field(name).expect("field in schema");
        let id = doc.id.as_u128();
        let mut d = TantivyDocument::default();
        d.add_text(f.id, doc.id.to_string());
        d.add_text(f.title, &doc.title);
        d.add_text(f.brand_text, &doc.brand);
        let mut category_text = doc.category_name.clone();
        if let Some(department) = &doc.department_name {
            category_text.push(' ');
            category_text.push_str(department);
        }
        d.add_text(f.category_text, category_text);
        d.add_text(f.keywords, &doc.keywords);
        d.add_text(f.description, &doc.description);
        d.add_u64(fast("id_hi"), (id >> 64) as u64);
        d.add_u64(fast("id_lo"), id as u64);
        d.add_u64(fast("price"), doc.price_cents.max(0) as u64);
        d.add_u64(fast("rating_count"), doc.rating_count.max(0) as u64);
        d.add_u64(fast("in_stock"), doc.in_stock as u64);
        d.add_u64(fast("brand_code"), code(&doc.brand));
        d.add_u64(fast("category_code"), code(&doc.category_slug));
        d.add_u64(fast("department_code"), doc.department_slug.as_deref().map(code).unwrap_or(0));
        d.add_f64(fast("rating"), doc.rating_avg);
        d.add_i64(fast("created"), doc.created_at.timestamp());
        d
    }

    fn run(&self, request: &SearchRequest) -> tantivy::Result<SearchOutcome> {
        let searcher = self.reader.searcher();
        let query = self.query(&searcher, &request.q)?;
        let collector = ListingCollector::new(request, self.facts.for_searcher(&searcher)?);
        let fruit = searcher.search(query.as_ref(), &collector)?;
        let names = self.names.read().unwrap_or_else(|p| p.into_inner());
        let name = |c: &u64| names.get(c).cloned();
        let facets = Facets {
            brand: fruit.brands.iter().filter_map(|(c, n)| Some((name(c)?, *n))).collect(),
            category: fruit.categories.iter().filter_map(|(c, n)| Some((name(c)?, *n))).collect(),
            rating: (1..=4).rev().map(|r| (r.to_string(), fruit.ratings[r - 1])).collect(),
            price: price_buckets(&fruit.prices),
        };
        // The requested window of the ranked list (empty past its end).
        let end = (request.offset + request.limit).min(fruit.top.len());
        let window = fruit.top.get(request.offset..end).unwrap_or_default();
        let ids = window.iter().map(|r| Uuid::from_u128(r.id)).collect();
        Ok(SearchOutcome { ids, total: fruit.total, facets })
    }
}

/// The words indexed in `field` that `word` matches, grouped by the typos
/// counted for them ([`super::text::typos`]): `[0]` the word itself and, for
/// a prefix, the words it begins; `[1]` and `[2]` typo matches. Levenshtein
/// automata (a transposition is one edit) stream the term dictionary once
/// per distance, smallest first, so each word lands in its lowest tier.
fn derivations(searcher: &Searcher, field: Field, word: &str, prefix: bool) -> tantivy::Result<[Vec<String>; 3]> {
    let mut typos_of: BTreeMap<String, u8> = BTreeMap::new();
    for edits in 0..=typo_budget(word) {
        let term = Term::from_field_text(field, word);
        let fuzzy = if prefix { FuzzyTermQuery::new_prefix(term, edits, true) } else { FuzzyTermQuery::new(term, edits, true) };
        let automaton = fuzzy.automaton()?;
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(field)?;
            let mut stream = inverted.terms().search(&automaton).into_stream()?;
            while stream.advance() {
                let Ok(indexed) = std::str::from_utf8(stream.key()) else { continue };
                if typos_of.contains_key(indexed) || !forgiven(word, indexed, edits) {
                    continue;
                }
                let differs = word.chars().next() != indexed.chars().next();
                typos_of.insert(indexed.to_owned(), super::text::typos(edits, differs));
            }
        }
    }
    let mut tiers: [Vec<String>; 3] = Default::default();
    for (indexed, typos) in typos_of {
        tiers[typos.min(2) as usize].push(indexed);
    }
    Ok(tiers)
}

#[async_trait]
impl SearchBackend for TantivyBackend {
    fn name(&self) -> &'static str {
        "tantivy"
    }

    fn process_local(&self) -> bool {
        true
    }

    fn reopened_at(&self) -> Option<DateTime<Utc>> {
        self.reopened
    }

    fn checkpoint(&self, complete_up_to: DateTime<Utc>) {
        *self.complete_up_to.lock().unwrap_or_else(|p| p.into_inner()) = Some(complete_up_to);
    }

    fn remember_names(&self, names: Vec<String>) {
        let mut known = self.names.write().unwrap_or_else(|p| p.into_inner());
        for name in names {
            known.insert(code(&name), name);
        }
    }

    fn documents(&self) -> Option<u64> {
        Some(self.reader.searcher().num_docs())
    }

    fn cache_scope(&self) -> String {
        format!("{}.{}", self.instance.simple(), self.commits.load(Ordering::Acquire))
    }

    async fn search(&self, request: &SearchRequest) -> Result<SearchOutcome> {
        // Collecting is CPU work: keep it off the async workers.
        let this = self.clone();
        let request = request.clone();
        tokio::task::spawn_blocking(move || this.run(&request))
            .await
            .map_err(Error::internal)?
            .map_err(unavailable)
    }

    async fn index(&self, docs: Vec<SearchDoc>) -> Result<()> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || -> tantivy::Result<()> {
            {
                let mut names = this.names.write().unwrap_or_else(|p| p.into_inner());
                for doc in &docs {
                    names.insert(code(&doc.brand), doc.brand.clone());
                    names.insert(code(&doc.category_slug), doc.category_slug.clone());
                    if let Some(d) = &doc.department_slug {
                        names.insert(code(d), d.clone());
                    }
                }
            }
            let writer = this.writer.lock().unwrap_or_else(|p| p.into_inner());
            for doc in &docs {
                writer.delete_term(Term::from_field_text(this.fields.id, &doc.id.to_string()));
                writer.add_document(this.document(doc))?;
            }
            Ok(())
        })
        .await
        .map_err(Error::internal)?
        .map_err(Error::internal)
    }

    async fn remove(&self, ids: &[Uuid]) -> Result<()> {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            writer.delete_term(Term::from_field_text(self.fields.id, &id.to_string()));
        }
        Ok(())
    }

    async fn clear(&self) -> Result<()> {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.delete_all_documents().map_err(Error::internal)?;
        Ok(())
    }

    async fn commit(&self) -> Result<()> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || -> tantivy::Result<()> {
            let mut writer = this.writer.lock().unwrap_or_else(|p| p.into_inner());
            let mut prepared = writer.prepare_commit()?;
            let complete_up_to = *this.complete_up_to.lock().unwrap_or_else(|p| p.into_inner());
            if let (true, Some(complete_up_to)) = (this.persistent, complete_up_to) {
                prepared.set_payload(&serde_json::to_string(&Payload { complete_up_to }).map_err(|e| tantivy::TantivyError::InternalError(e.to_string()))?);
            }
            prepared.commit()?;
            drop(writer);
            this.reader.reload()?;
            // New segments' facts are read here, not by the next search.
            this.facts.refresh(&this.reader.searcher())?;
            this.commits.fetch_add(1, Ordering::AcqRel);
            Ok(())
        })
        .await
        .map_err(Error::internal)?
        .map_err(Error::internal)
    }
}


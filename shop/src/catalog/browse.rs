//! Category pages: keyset pagination over PostgreSQL, one index per sort
//! order (`products_category_*_idx`), so page 500 costs what page 1 costs.
//! The page's id list is cached under the catalog generation; cards come from
//! the product cache; the brand filter's counts come from the search index.
//! PostgreSQL is asked only on a miss.

use chrono::{DateTime, Utc};
use model::{BrowsePage, SearchParams, Sort};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::search::SearchRequest;
use crate::{Error, Result, Shop};

/// Where the previous page ended: the sort key and id of its last product.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cursor {
    Newest(i64, Uuid),
    PriceAsc(i64, Uuid),
    PriceDesc(i64, Uuid),
    Rating(f64, Uuid),
    Popular(i64, Uuid),
}

impl Cursor {
    fn encode(self) -> String {
        let (code, key, id) = match self {
            Cursor::Newest(k, id) => ("n", k, id),
            Cursor::PriceAsc(k, id) => ("pa", k, id),
            Cursor::PriceDesc(k, id) => ("pd", k, id),
            // The float's bits, so the boundary compares exactly equal.
            Cursor::Rating(k, id) => ("r", k.to_bits() as i64, id),
            Cursor::Popular(k, id) => ("p", k, id),
        };
        format!("{code}.{key}.{}", id.simple())
    }

    fn decode(s: &str, sort: Sort) -> Result<Cursor> {
        let bad = || Error::bad_input("cursor", "not a cursor this server issued for this sort order");
        let mut parts = s.split('.');
        let (Some(code), Some(key), Some(id), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let key: i64 = key.parse().map_err(|_| bad())?;
        let id = Uuid::try_parse(id).map_err(|_| bad())?;
        let cursor = match (code, sort) {
            ("n", Sort::Newest) => Cursor::Newest(key, id),
            ("pa", Sort::PriceAsc) => Cursor::PriceAsc(key, id),
            ("pd", Sort::PriceDesc) => Cursor::PriceDesc(key, id),
            ("r", Sort::Rating) => Cursor::Rating(f64::from_bits(key as u64), id),
            ("p", Sort::Relevance) => Cursor::Popular(key, id),
            _ => return Err(bad()),
        };
        Ok(cursor)
    }
}

/// One row of a page: the id and every sort key, so the cursor can be built.
#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    created_at: DateTime<Utc>,
    min_price_cents: i64,
    rating_avg: f64,
    rating_count: i32,
}

impl Row {
    fn cursor(&self, sort: Sort) -> Cursor {
        match sort {
            Sort::Newest => Cursor::Newest(self.created_at.timestamp_micros(), self.id),
            Sort::PriceAsc => Cursor::PriceAsc(self.min_price_cents, self.id),
            Sort::PriceDesc => Cursor::PriceDesc(self.min_price_cents, self.id),
            Sort::Rating => Cursor::Rating(self.rating_avg, self.id),
            Sort::Relevance => Cursor::Popular(self.rating_count as i64, self.id),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PageIds {
    ids: Vec<Uuid>,
    next: Option<String>,
}

pub(super) async fn browse(shop: &Shop, slug: &str, params: &SearchParams) -> Result<BrowsePage> {
    let catalog = shop.catalog();
    let all = catalog.categories().await?;
    let category = all.iter().find(|c| c.slug == slug).cloned().ok_or(Error::NotFound { what: "category" })?;
    let subcategories: Vec<_> = all.iter().filter(|c| c.parent.as_deref() == Some(slug)).cloned().collect();
    let department = category
        .parent
        .as_ref()
        .and_then(|p| all.iter().find(|c| &c.slug == p).cloned());
    let scope = if category.parent.is_none() { Scope::Department(category.id) } else { Scope::Category(category.id) };
    let cursor = params.cursor.as_deref().map(|c| Cursor::decode(c, params.sort)).transpose()?;
    let limit = params.per_page.clamp(1, SearchParams::MAX_PER_PAGE) as i64;

    let cache_name = format!("browse:{slug}:{}", params.to_query_string());
    let db = shop.db.clone();
    let filters = params.filters.clone();
    let sort = params.sort;
    let page: PageIds = super::cache::list(shop, &cache_name, || async move {
        let rows = query_page(&db, scope, &filters, sort, cursor, limit).await?;
        let next = (rows.len() as i64 > limit).then(|| rows[limit as usize - 1].cursor(sort).encode());
        Ok(PageIds { ids: rows.iter().take(limit as usize).map(|r| r.id).collect(), next })
    })
    .await?;

    // The brand list with counts under the other filters, from the index.
    let facet_request = SearchRequest {
        category: Some(slug.to_owned()),
        filters: params.filters.clone(),
        limit: 0,
        ..SearchRequest::default()
    };
    let brands = match shop.search().find(&facet_request).await {
        Ok(outcome) => outcome.facets.brand,
        Err(err) => {
            // The list itself is still right; the sidebar can do without counts.
            tracing::warn!(error = %err, "brand counts unavailable for a category page");
            Default::default()
        }
    };

    Ok(BrowsePage {
        products: catalog.summaries(&page.ids).await?,
        next_cursor: page.next,
        category,
        subcategories,
        department,
        brands,
    })
}

/// Which column narrows the page: a department (top-level category) covers
/// all of its categories through `department_id`.
#[derive(Clone, Copy)]
enum Scope {
    Department(Uuid),
    Category(Uuid),
}

async fn query_page(
    db: &sqlx::PgPool,
    scope: Scope,
    filters: &model::ListingFilters,
    sort: Sort,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Vec<Row>> {
    // Each arm matches one index's order; the keyset condition compares the
    // same columns in the same direction, so PostgreSQL seeks, never skips.
    let (order, after) = match sort {
        Sort::Newest => ("p.created_at DESC, p.id DESC", "(p.created_at, p.id) < ($8::timestamptz, $9)"),
        Sort::PriceAsc => ("p.min_price_cents, p.id", "(p.min_price_cents, p.id) > ($8::bigint, $9)"),
        Sort::PriceDesc => ("p.min_price_cents DESC, p.id DESC", "(p.min_price_cents, p.id) < ($8::bigint, $9)"),
        Sort::Rating => (
            "p.rating_avg DESC, p.id",
            "(p.rating_avg < $8::float8 OR (p.rating_avg = $8::float8 AND p.id > $9))",
        ),
        Sort::Relevance => (
            "p.rating_count DESC, p.id",
            "(p.rating_count < $8::bigint OR (p.rating_count = $8::bigint AND p.id > $9))",
        ),
    };
    let (column, scope_id) = match scope {
        Scope::Department(id) => ("p.department_id", id),
        Scope::Category(id) => ("p.category_id", id),
    };
    let sql = format!(
        r#"
        SELECT p.id, p.created_at, p.min_price_cents, p.rating_avg, p.rating_count
        FROM products p
        WHERE {column} = $1
          AND (cardinality($2::text[]) = 0 OR p.brand_id IN (SELECT id FROM brands WHERE name = ANY($2)))
          AND ($3::bigint IS NULL OR p.min_price_cents >= $3)
          AND ($4::bigint IS NULL OR p.min_price_cents <= $4)
          AND ($5::float8 IS NULL OR p.rating_avg >= $5)
          AND (NOT $6 OR EXISTS (
                SELECT 1 FROM skus k JOIN inventory i ON i.sku_id = k.id
                WHERE k.product_id = p.id AND i.stock_count > i.reserved + i.held))
          AND ($9::uuid IS NULL OR {after})
        ORDER BY {order}
        LIMIT $7
        "#
    );
    let (key, after_id): (Option<KeyBind>, Option<Uuid>) = match cursor {
        None => (None, None),
        Some(Cursor::Newest(k, id)) => {
            let at = DateTime::<Utc>::from_timestamp_micros(k).ok_or_else(|| Error::bad_input("cursor", "not a cursor this server issued"))?;
            (Some(KeyBind::Time(at)), Some(id))
        }
        Some(Cursor::PriceAsc(k, id)) | Some(Cursor::PriceDesc(k, id)) | Some(Cursor::Popular(k, id)) => {
            (Some(KeyBind::Int(k)), Some(id))
        }
        Some(Cursor::Rating(k, id)) => (Some(KeyBind::Float(k)), Some(id)),
    };
    let query = sqlx::query_as::<_, Row>(&sql)
        .bind(scope_id)
        .bind(&filters.brands)
        .bind(filters.price_min_cents)
        .bind(filters.price_max_cents)
        .bind(filters.rating_min)
        .bind(filters.in_stock)
        .bind(limit + 1);
    let query = match (key, sort) {
        (Some(KeyBind::Float(k)), _) => query.bind(k),
        (Some(KeyBind::Int(k)), _) => query.bind(k),
        (Some(KeyBind::Time(k)), _) => query.bind(k),
        // No cursor: the key is never compared, but its type must still match.
        (None, Sort::Rating) => query.bind(None::<f64>),
        (None, Sort::Newest) => query.bind(None::<DateTime<Utc>>),
        (None, _) => query.bind(None::<i64>),
    };
    Ok(query.bind(after_id).fetch_all(db).await?)
}

enum KeyBind {
    Time(DateTime<Utc>),
    Int(i64),
    Float(f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_another_sort() {
        let id = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001);
        for (cursor, sort) in [
            (Cursor::Newest(1_732_700_000_123_456, id), Sort::Newest),
            (Cursor::PriceAsc(1999, id), Sort::PriceAsc),
            (Cursor::PriceDesc(0, id), Sort::PriceDesc),
            (Cursor::Rating(4.333333333333333, id), Sort::Rating),
            (Cursor::Popular(17, id), Sort::Relevance),
        ] {
            let encoded = cursor.encode();
            assert_eq!(Cursor::decode(&encoded, sort).unwrap(), cursor);
            let other = if sort == Sort::Newest { Sort::PriceAsc } else { Sort::Newest };
            assert!(matches!(Cursor::decode(&encoded, other), Err(Error::BadInput { .. })));
        }
        for junk in ["", "n", "n.1", "n.x.y", "n.1.not-a-uuid", "n.1.2.3"] {
            assert!(Cursor::decode(junk, Sort::Newest).is_err(), "{junk}");
        }
    }
}

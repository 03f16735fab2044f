//! Product reviews. Owns the `reviews` table and keeps the product's
//! `rating_sum` / `rating_count` in step with it: both change in one
//! transaction, so the average a product shows is always the average of its
//! reviews. Only a verified buyer (a DELIVERED order containing the product,
//! asked of the orders service) may review; a second review replaces the first.

use std::collections::BTreeMap;

use model::{Review, ReviewPage, ReviewRequest, ReviewSort};
use uuid::Uuid;

use crate::orders::Orders;
use crate::{Error, Result, Shop};

pub const MAX_PAGE: i64 = 50;

pub struct Reviews<'a> {
    shop: &'a Shop,
}

/// What a write did: the first review (created) or a replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Replaced,
}

/// A review row as [`Row`] reads it: first names only, times in RFC 3339.
const COLUMNS: &str = r#"r.id, r.rating, r.title, r.body, split_part(btrim(u.name), ' ', 1), to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), to_char(r.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"#;

type Row = (Uuid, i16, String, String, String, String, String);

fn review((id, rating, title, body, author, created_at, updated_at): Row) -> Review {
    Review { id, rating: rating as u8, title, body, author, created_at, updated_at, verified_buyer: true }
}

impl<'a> Reviews<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    /// Writes `user`'s review of `product` (creating or replacing it), moves
    /// the product's aggregates in the same transaction, then drops the
    /// product's cache and re-indexes it the way every catalog write does.
    pub async fn write(&self, user: Uuid, product: Uuid, request: &ReviewRequest) -> Result<(Written, Review)> {
        let (rating, title, body) = validate(request)?;
        let mut tx = self.shop.db.begin().await?;
        // 404 before 403: an unknown product is not a question of who buys it.
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products WHERE id = $1)")
            .bind(product)
            .fetch_one(&mut *tx)
            .await?;
        if !exists {
            return Err(Error::NotFound { what: "product" });
        }
        if !Orders::delivered_to(&mut tx, user, product).await? {
            return Err(Error::Forbidden {
                code: "not_a_verified_buyer",
                message: "only a customer with a delivered order containing this product may review it",
            });
        }
        // Two attempts: a concurrent first review by the same customer makes
        // our INSERT a no-op (ON CONFLICT waits for theirs to commit), and the
        // second pass then finds and replaces it.
        let mut written = None;
        for _ in 0..2 {
            let old: Option<(Uuid, i16)> =
                sqlx::query_as("SELECT id, rating FROM reviews WHERE product_id = $1 AND user_id = $2 FOR UPDATE")
                    .bind(product)
                    .bind(user)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some((id, old_rating)) = old {
                sqlx::query("UPDATE reviews SET rating = $2, title = $3, body = $4, updated_at = now() WHERE id = $1")
                    .bind(id)
                    .bind(rating)
                    .bind(&title)
                    .bind(&body)
                    .execute(&mut *tx)
                    .await?;
                // The count stays; the old rating leaves the sum, the new one joins it.
                bump(&mut tx, product, i64::from(rating) - i64::from(old_rating), 0).await?;
                written = Some((Written::Replaced, id));
                break;
            }
            let id = Uuid::now_v7();
            let inserted = sqlx::query(
                "INSERT INTO reviews (id, product_id, user_id, rating, title, body) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (product_id, user_id) DO NOTHING",
            )
            .bind(id)
            .bind(product)
            .bind(user)
            .bind(rating)
            .bind(&title)
            .bind(&body)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 1 {
                bump(&mut tx, product, i64::from(rating), 1).await?;
                written = Some((Written::Created, id));
                break;
            }
        }
        let (written, id) = written.ok_or_else(|| Error::internal("review upsert lost twice in a row"))?;
        let row: Row = sqlx::query_as(&format!("SELECT {COLUMNS} FROM reviews r JOIN users u ON u.id = r.user_id WHERE r.id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.shop.catalog().product_changed(product).await?;
        Ok((written, review(row)))
    }

    /// What the review form needs: whether `user` may review `product` (a
    /// verified buyer), and their review of it to edit, if any.
    pub async fn draft(&self, user: Uuid, product: Uuid) -> Result<(bool, Option<Review>)> {
        let mut conn = self.shop.db.acquire().await?;
        let allowed = Orders::delivered_to(&mut conn, user, product).await?;
        let mine: Option<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM reviews r JOIN users u ON u.id = r.user_id WHERE r.product_id = $1 AND r.user_id = $2"))
                .bind(product)
                .bind(user)
                .fetch_optional(&mut *conn)
                .await?;
        Ok((allowed, mine.map(review)))
    }

    /// One keyset page of a product's reviews, with the rating histogram and
    /// the product's aggregates. `cursor` is the last review id of the
    /// previous page. Under `helpful`, a vote landing between two page reads
    /// may move a review across the cursor (no votes exist yet).
    pub async fn list(&self, product: Uuid, sort: ReviewSort, limit: i64, cursor: Option<Uuid>) -> Result<ReviewPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        // Every product page shows its first page of reviews: read through
        // the catalog's list cache (a review write bumps the generation via
        // `product_changed`), so a popular page costs PostgreSQL nothing.
        let name = format!("reviews:{product}:{sort:?}:{limit}:{}", cursor.map(|c| c.simple().to_string()).unwrap_or_default());
        crate::catalog::cache::list(self.shop, &name, || self.load_page(product, sort, limit, cursor)).await
    }

    /// The page, the histogram and the aggregates in one statement: an
    /// uncached product page at a million products must cost PostgreSQL one
    /// round trip for its reviews, not three.
    async fn load_page(&self, product: Uuid, sort: ReviewSort, limit: i64, cursor: Option<Uuid>) -> Result<ReviewPage> {
        let (after, order) = match sort {
            ReviewSort::Newest => ("($2::uuid IS NULL OR r.id < $2)", "r.id DESC"),
            ReviewSort::Helpful => (
                "($2::uuid IS NULL OR (r.helpful, r.id) < (SELECT helpful, id FROM reviews WHERE id = $2))",
                "r.helpful DESC, r.id DESC",
            ),
        };
        let sql = format!(
            r#"
            SELECT p.rating_avg, p.rating_count,
                   (SELECT COALESCE(jsonb_object_agg(h.rating::text, h.n), '{{}}'::jsonb)::text
                      FROM (SELECT rating, count(*) AS n FROM reviews WHERE product_id = p.id GROUP BY rating) h),
                   page.*
            FROM products p
            LEFT JOIN LATERAL (
                SELECT {COLUMNS}, row_number() OVER (ORDER BY {order}) AS n
                FROM reviews r JOIN users u ON u.id = r.user_id
                WHERE r.product_id = p.id AND {after}
                ORDER BY {order}
                LIMIT $3
            ) page ON true
            WHERE p.id = $1
            ORDER BY page.n
            "#
        );
        type PageRow = (f64, i32, String, Option<Uuid>, Option<i16>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<i64>);
        let rows: Vec<PageRow> = sqlx::query_as(&sql).bind(product).bind(cursor).bind(limit + 1).fetch_all(&self.shop.db).await?;
        let Some((rating_avg, rating_count, counts, ..)) = rows.first().cloned() else {
            return Err(Error::NotFound { what: "product" });
        };
        let mut reviews: Vec<Review> = rows
            .into_iter()
            .filter_map(|(.., id, rating, title, body, author, created_at, updated_at, _)| {
                Some(review((id?, rating?, title?, body?, author?, created_at?, updated_at?)))
            })
            .collect();
        let next_cursor = if reviews.len() as i64 > limit {
            reviews.truncate(limit as usize);
            reviews.last().map(|r| r.id)
        } else {
            None
        };
        let counts: BTreeMap<String, u64> = serde_json::from_str(&counts).map_err(Error::internal)?;
        let mut histogram: BTreeMap<String, u64> = (1..=5).map(|r| (r.to_string(), 0)).collect();
        histogram.extend(counts);
        Ok(ReviewPage { reviews, next_cursor, histogram, rating_avg, rating_count })
    }
}

/// Moves the product's aggregates by a delta. `updated_at` moves too: other
/// processes' search sync picks changed products by it, so the rating facet
/// follows there as well.
async fn bump(conn: &mut sqlx::PgConnection, product: Uuid, sum: i64, count: i32) -> Result<()> {
    sqlx::query(
        "UPDATE products SET rating_sum = rating_sum + $2, rating_count = rating_count + $3, updated_at = now() WHERE id = $1",
    )
    .bind(product)
    .bind(sum)
    .bind(count)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Trimmed fields within their limits, or a 422 naming the field first.
fn validate(request: &ReviewRequest) -> Result<(i16, String, String)> {
    if !(1..=5).contains(&request.rating) {
        return Err(Error::Invalid("rating must be a whole number from 1 to 5".into()));
    }
    let title = request.title.trim();
    if !(1..=120).contains(&title.chars().count()) {
        return Err(Error::Invalid("title must be 1 to 120 characters".into()));
    }
    let body = request.body.trim();
    if !(1..=4000).contains(&body.chars().count()) {
        return Err(Error::Invalid("body must be 1 to 4000 characters".into()));
    }
    Ok((request.rating as i16, title.to_owned(), body.to_owned()))
}

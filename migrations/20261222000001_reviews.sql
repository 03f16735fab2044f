-- Product reviews, owned by the reviews service (`shop::reviews`). One per
-- customer and product: a second one replaces the first. The service keeps
-- products.rating_sum / rating_count in step in the same transaction.

CREATE TABLE reviews (
    id          uuid PRIMARY KEY,
    product_id  uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id),
    rating      smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    -- Plain text as the customer wrote it (trimmed); clients escape it.
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 120),
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    -- "Was this helpful?" votes; nothing counts them yet, but the sort exists.
    helpful     integer NOT NULL DEFAULT 0 CHECK (helpful >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reviews_one_per_customer UNIQUE (product_id, user_id)
);
-- A product's reviews, keyset-paged: newest (UUIDv7 ids are time-ordered)
-- and most helpful.
CREATE INDEX reviews_product_newest_idx ON reviews (product_id, id DESC);
CREATE INDEX reviews_product_helpful_idx ON reviews (product_id, helpful DESC, id DESC);

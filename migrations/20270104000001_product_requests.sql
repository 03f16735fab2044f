-- Product creation idempotency (shop::catalog): a POST /seller/products sent
-- with an Idempotency-Key claims the key in the transaction that writes the
-- product, so a client retrying after a lost answer (a timeout, or a 503
-- from a cache drop that failed after the commit) gets the product it made
-- instead of a second copy. Kept 24 h, like checkout keys.
CREATE TABLE product_requests (
    user_id          uuid NOT NULL REFERENCES users (id),
    idempotency_key  text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash     text NOT NULL,
    -- The claim is the transaction's first write, before the product row.
    product_id       uuid NOT NULL REFERENCES products (id) DEFERRABLE INITIALLY DEFERRED,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idempotency_key)
);
CREATE INDEX product_requests_created_idx ON product_requests (created_at);

-- Checkout idempotency (shop::checkout): one row per customer and
-- Idempotency-Key, claimed before anything else happens, holding the
-- request's hash and, once done, the answer every retry gets back. The
-- order, when there is one, commits in the same transaction as `done`.
CREATE TABLE checkout_requests (
    user_id            uuid NOT NULL REFERENCES users (id),
    idempotency_key    text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash       text NOT NULL,
    state              text NOT NULL DEFAULT 'started' CHECK (state IN ('started', 'done')),
    -- Chosen up front, so the PaymentIntent's metadata names the order.
    order_id           uuid NOT NULL,
    reservation_token  uuid NOT NULL,
    -- Set as soon as the payment is authorized: a crash after that leaves
    -- a trail to the authorization to void.
    payment_id         text,
    outcome            jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idempotency_key),
    CONSTRAINT checkout_requests_done_has_outcome CHECK ((state = 'done') = (outcome IS NOT NULL))
);
-- Keys are kept at least 24 h; the sweep that prunes older ones reads this.
CREATE INDEX checkout_requests_created_idx ON checkout_requests (created_at);

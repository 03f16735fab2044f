-- Orders (shop::orders) and the transactional outbox (shop::events).
--
-- Status moves only along order_status_transitions: the shop checks
-- OrderStatus::can_transition_to, and the database refuses anything else
-- twice over: a trigger on orders.status, and the history table's foreign
-- key to the allowed pairs.

CREATE TABLE order_status_transitions (
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO order_status_transitions (from_status, to_status) VALUES
    ('PLACED', 'PAYMENT_PENDING'),
    ('PLACED', 'CANCELLED'),
    ('PAYMENT_PENDING', 'CONFIRMED'),
    ('PAYMENT_PENDING', 'CANCELLED'),
    ('CONFIRMED', 'SHIPPED'),
    ('CONFIRMED', 'CANCELLED'),
    ('SHIPPED', 'DELIVERED'),
    ('SHIPPED', 'REFUNDED'),
    ('DELIVERED', 'REFUNDED');

CREATE TABLE orders (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (id),
    -- The client's Idempotency-Key, scoped to the customer as Stripe scopes
    -- keys to an account: one order per key, ever.
    idempotency_key    text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    status             text NOT NULL CHECK (status IN ('PLACED', 'PAYMENT_PENDING', 'CONFIRMED', 'SHIPPED', 'DELIVERED', 'CANCELLED', 'REFUNDED')),
    total_cents        bigint NOT NULL CHECK (total_cents >= 0),
    currency           char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    payment_id         text,
    reservation_token  uuid NOT NULL,
    shipping_address   jsonb NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_idempotency_key_key UNIQUE (user_id, idempotency_key)
);
CREATE INDEX orders_user_newest_idx ON orders (user_id, created_at DESC, id DESC);

CREATE TABLE order_items (
    order_id    uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    sku_id      uuid NOT NULL REFERENCES skus (id),
    product_id  uuid NOT NULL REFERENCES products (id),
    title       text NOT NULL,
    quantity    integer NOT NULL CHECK (quantity > 0),
    unit_cents  bigint NOT NULL CHECK (unit_cents >= 0),
    PRIMARY KEY (order_id, sku_id)
);

CREATE TABLE order_status_history (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    -- NULL only for the order's first status.
    from_status  text,
    to_status    text NOT NULL,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT order_status_history_allowed FOREIGN KEY (from_status, to_status)
        REFERENCES order_status_transitions (from_status, to_status)
);
CREATE INDEX order_status_history_order_idx ON order_status_history (order_id, id);

CREATE FUNCTION orders_refuse_illegal_transition() RETURNS trigger AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT EXISTS (
        SELECT 1 FROM order_status_transitions WHERE from_status = OLD.status AND to_status = NEW.status
    ) THEN
        RAISE EXCEPTION 'illegal order status transition % -> % (order %)', OLD.status, NEW.status, OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'orders_status_transition';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER orders_status_transition BEFORE UPDATE OF status ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_refuse_illegal_transition();

-- The transactional outbox: an event is written in the same transaction as
-- the change it describes, and a relay publishes it afterwards.
CREATE TABLE outbox (
    id              uuid PRIMARY KEY,
    aggregate_type  text NOT NULL,
    aggregate_id    uuid NOT NULL,
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (created_at, id) WHERE published_at IS NULL;
CREATE INDEX outbox_aggregate_idx ON outbox (aggregate_id, created_at);

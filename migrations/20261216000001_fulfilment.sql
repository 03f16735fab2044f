-- Fulfilment (shop::fulfilment): one shipment per seller of an order, the
-- simulated warehouse's pipeline state. Kept here, not in memory, so the
-- delays survive restarts and every server's worker can take a due step
-- (FOR UPDATE SKIP LOCKED: each step is done by one of them).
--
-- picking → picked → shipped → delivered; cancelled when the order is
-- cancelled or refunded before this seller's part left, or its pick failed.
CREATE TABLE shipments (
    order_id         uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    seller_id        uuid NOT NULL REFERENCES sellers (id),
    state            text NOT NULL CHECK (state IN ('picking', 'picked', 'shipped', 'delivered', 'cancelled')),
    -- When the next step is due (the simulated warehouse's delays; retries back off here too).
    due_at           timestamptz NOT NULL,
    carrier          text,
    tracking_number  text,
    -- When the order's payment was captured for this shipment (the first
    -- shipment of an order captures the whole authorization; see ARCHITECTURE.md).
    captured_at      timestamptz,
    shipped_at       timestamptz,
    delivered_at     timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, seller_id),
    CONSTRAINT shipments_shipped_has_tracking CHECK (state NOT IN ('shipped', 'delivered') OR (carrier IS NOT NULL AND tracking_number IS NOT NULL))
);
CREATE INDEX shipments_due_idx ON shipments (due_at) WHERE state IN ('picking', 'picked', 'shipped');
CREATE INDEX shipments_seller_idx ON shipments (seller_id, order_id);

-- The payment was captured (at the first shipment, or early before the
-- authorization could lapse); a refund is recorded before the provider is
-- called, as a cancel is, so a crash cannot leave a refunded payment with
-- a non-REFUNDED order: recovery finishes it.
ALTER TABLE orders
    ADD COLUMN captured_at timestamptz,
    ADD COLUMN refund_requested_at timestamptz;
CREATE INDEX orders_uncaptured_idx ON orders (created_at) WHERE status = 'CONFIRMED' AND captured_at IS NULL;
CREATE INDEX orders_refund_requested_idx ON orders (refund_requested_at)
    WHERE refund_requested_at IS NOT NULL AND status <> 'REFUNDED';

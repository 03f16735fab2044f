-- Flash sales, owned by `shop::flash`.
--
-- A sale carves `quantity` units out of its SKU's stock when it is created:
-- an inventory set-aside (a DB-path hold in `inventory_reservations` whose
-- token is the sale's id, so `inventory.held` counts it and the Redis
-- counter does not offer it at the regular price). Each order confirmed
-- from the sale moves its units from that hold into `inventory.reserved`;
-- whatever is left goes back to normal stock when the sale ends or is
-- cancelled. The set-aside can never hand out more than it holds, which is
-- PostgreSQL's own guard against overselling the sale.

CREATE TABLE flash_sales (
    id              uuid PRIMARY KEY,
    seller_id       uuid REFERENCES sellers (id),
    sku_id          uuid NOT NULL REFERENCES skus (id),
    quantity        integer NOT NULL CHECK (quantity > 0),
    price_cents     bigint NOT NULL CHECK (price_cents >= 0),
    currency        char(3) NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    per_user_limit  integer NOT NULL CHECK (per_user_limit > 0),
    -- scheduled → live → closing (no more buys; holds in their payment
    -- window may still become orders) → ended; or cancelled before the start.
    status          text NOT NULL DEFAULT 'scheduled'
                    CHECK (status IN ('scheduled', 'live', 'closing', 'ended', 'cancelled')),
    -- Each step of the schedule, and how many times it ran: exactly once,
    -- however many processes run the scheduler (tests read the counts).
    preloaded_at    timestamptz,
    preloads        integer NOT NULL DEFAULT 0,
    opened_at       timestamptz,
    closed_at       timestamptz,
    finalized_at    timestamptz,
    finals          integer NOT NULL DEFAULT 0,
    -- When the set-aside's remainder went back to normal stock.
    returned_at     timestamptz,
    report          jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT flash_sales_window CHECK (ends_at > starts_at)
);
CREATE INDEX flash_sales_seller_idx ON flash_sales (seller_id, id DESC);
CREATE INDEX flash_sales_sku_idx ON flash_sales (sku_id, starts_at);
-- What the scheduler looks at every tick: sales not finished.
CREATE INDEX flash_sales_pending_idx ON flash_sales (starts_at)
    WHERE status IN ('scheduled', 'live', 'closing') OR (status = 'cancelled' AND returned_at IS NULL);

-- How each customer hold of a sale ended, when PostgreSQL had to know: a
-- confirmation into an order, or the sweeper's verdict on a hold whose
-- confirmation stalled. The primary key is the arbiter between the two, as
-- `reservation_outcomes` is for inventory holds.
CREATE TABLE flash_outcomes (
    token       uuid PRIMARY KEY,
    sale_id     uuid NOT NULL REFERENCES flash_sales (id),
    user_id     uuid NOT NULL,
    quantity    integer NOT NULL CHECK (quantity > 0),
    outcome     text NOT NULL CHECK (outcome IN ('confirmed', 'expired', 'returned')),
    order_id    uuid,
    decided_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX flash_outcomes_sale_idx ON flash_outcomes (sale_id, outcome);
CREATE INDEX flash_outcomes_order_idx ON flash_outcomes (order_id) WHERE order_id IS NOT NULL;

-- Inventory reservations (shop::inventory).
--
-- Units of a SKU are in one of four places:
--   available        what shoppers may still reserve (the Redis counter shadows it)
--   held (Redis)     live reservations made on the Redis path; only Redis knows them
--   held (here)      live reservations made on the DB-only path while Redis was down
--   reserved         confirmed into orders, not yet shipped
-- so the Redis counter must equal stock_count - reserved - held - (Redis holds),
-- and reconciliation checks exactly that.

ALTER TABLE inventory
    ADD COLUMN held integer NOT NULL DEFAULT 0 CHECK (held >= 0),
    -- Redis sub-counters for a hot SKU (1: one counter). Kept here so a
    -- Redis that lost its data rebuilds the same layout.
    ADD COLUMN shards integer NOT NULL DEFAULT 1 CHECK (shards BETWEEN 1 AND 64),
    ADD CONSTRAINT inventory_committed_within_stock CHECK (reserved + held <= stock_count);

-- Holds taken on the DB-only path. A row is a live hold; confirming,
-- releasing or expiring it deletes the row in the same transaction that
-- moves its units.
CREATE TABLE inventory_reservations (
    token       uuid PRIMARY KEY,
    lines       jsonb NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inventory_reservations_due_idx ON inventory_reservations (expires_at);

-- How each reservation ended, whichever path took it. The primary key makes
-- this the arbiter between a confirmation and a release racing for the same
-- token: the second insert waits for the first transaction and then loses,
-- so a reservation is never both sold and returned to stock.
CREATE TABLE reservation_outcomes (
    token       uuid PRIMARY KEY,
    outcome     text NOT NULL CHECK (outcome IN ('confirmed', 'released', 'expired')),
    lines       jsonb NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reservation_outcomes_decided_idx ON reservation_outcomes (decided_at);

-- Seller analytics (shop::analytics): per-SKU, per-minute figures made by
-- the `analytics` consumer from order events, each event counted once
-- (processed_events, in the same transaction as the upsert). `minute` is
-- the event's time truncated to the minute (UTC): for `order.placed` that
-- is the order's `created_at`, written in the same transaction.
CREATE TABLE sku_minute_stats (
    sku_id         uuid        NOT NULL,
    minute         timestamptz NOT NULL,
    reservations   bigint      NOT NULL DEFAULT 0,
    rejections     bigint      NOT NULL DEFAULT 0,
    orders         bigint      NOT NULL DEFAULT 0,
    units          bigint      NOT NULL DEFAULT 0,
    revenue_cents  bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (sku_id, minute)
);

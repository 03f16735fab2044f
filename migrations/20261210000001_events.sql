-- Events: the outbox relay and consumer deduplication (shop::events).
--
-- `seq` is the relay's publishing order. Ids are UUIDv7 drawn by the
-- application before commit, from each process's own clock, so id order is
-- not commit order. A sequence value is drawn inside the transaction when the
-- row is written; for one aggregate every change locks the aggregate's row
-- first, so its second event's `seq` is drawn after its first event
-- committed, and `seq` order is the aggregate's commit order whatever the
-- clocks say. (Across aggregates there is no order to keep: they go to
-- partitions of their own.)
ALTER TABLE outbox ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
DROP INDEX outbox_unpublished_idx;
CREATE INDEX outbox_unpublished_idx ON outbox (seq) WHERE published_at IS NULL;

-- One row per (consumer, event) handled, written in the same transaction as
-- the handler's effect: a redelivered event finds its row and does nothing.
CREATE TABLE processed_events (
    consumer      text NOT NULL,
    event_id      uuid NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_age_idx ON processed_events (processed_at);

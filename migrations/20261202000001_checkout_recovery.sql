-- Recovery that cannot be blocked, and cancels that cannot be half done.
--
-- A claim a dead process left `started` is taken by recovery in one short
-- statement: `recovering`, with a lease (`next_attempt_at`). The provider is
-- called outside any row lock; a live checkout that was only slow finds its
-- claim no longer `started` and rolls back. A claim whose void keeps failing
-- backs off (`attempts`, `last_error`) and lets the others through.
ALTER TABLE checkout_requests DROP CONSTRAINT checkout_requests_state_check;
ALTER TABLE checkout_requests
    ADD CONSTRAINT checkout_requests_state_check CHECK (state IN ('started', 'recovering', 'done')),
    ADD COLUMN recovery_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN last_error text;
CREATE INDEX checkout_requests_unsettled_idx ON checkout_requests (updated_at) WHERE state <> 'done';

-- A cancel is recorded before the payment is voided, so a crash between the
-- void and the status change leaves a trail recovery finishes, never a
-- CONFIRMED order whose payment is gone.
ALTER TABLE orders ADD COLUMN cancel_requested_at timestamptz;
CREATE INDEX orders_cancel_requested_idx ON orders (cancel_requested_at)
    WHERE cancel_requested_at IS NOT NULL AND status NOT IN ('CANCELLED', 'REFUNDED');

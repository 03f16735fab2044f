-- Accounts: customers, sellers (each acting for one seller shop) and admins.
-- Sessions are not stored here: they are opaque tokens in Redis, so signing
-- out deletes them at once.

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    -- Normalised by the accounts service (trimmed, lower-case); the check
    -- keeps any other writer honest.
    email          text NOT NULL CHECK (email = lower(btrim(email)) AND length(email) BETWEEN 3 AND 254),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    password_hash  text NOT NULL,
    role           text NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'seller', 'admin')),
    seller_id      uuid REFERENCES sellers (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_seller_has_a_shop CHECK ((role = 'seller') = (seller_id IS NOT NULL))
);
CREATE INDEX users_seller_idx ON users (seller_id) WHERE seller_id IS NOT NULL;

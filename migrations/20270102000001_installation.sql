-- One row naming this database: state kept outside it (the search index on
-- disk) records the id, so a dropped and recreated database is
-- never mistaken for the one that state was built from.
CREATE TABLE installation (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    only_one boolean NOT NULL DEFAULT true UNIQUE CHECK (only_one),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO installation DEFAULT VALUES;
